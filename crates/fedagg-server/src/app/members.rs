//! Enrollment, tokens, the key holder's public key and model downloads: the federation's
//! membership and what its members read.

use fedagg_api::{
    f32_bytes, Enrolled, EnrollmentCode, Frame, FrameKind, Mode, PublicKeyBody, Role, Roster,
    RosterEntry, SignedRoster,
};

use super::App;
use crate::auth;
use crate::error::ApiError;

impl App {
    /// A single-use enrollment code for `role` in federation `fid`.
    pub fn enrollment_code(
        &self,
        fid: i64,
        role: Role,
        label: Option<&str>,
    ) -> Result<EnrollmentCode, ApiError> {
        if role == Role::Admin {
            return Err(ApiError::invalid(
                "enrollment codes grant participant or key_holder",
            ));
        }
        let fed = self.federation(fid)?;
        // A participant of a Paillier or lattice federation pins the key it will encrypt under.
        let key = match fed.spec.mode.is_he() && role == Role::Participant {
            true => Some(self.public_key_text(fid).map_err(|_| {
                ApiError::conflict(
                    "participant codes pin the key holder's public key: publish it first",
                )
            })?),
            false => None,
        };
        let pin = fedagg_api::trust::Pin::new(fid, &fed.spec, key.as_deref());
        let code = auth::new_secret("fe_");
        self.store
            .insert_code(&auth::hash(&code), fid, role, label)?;
        Ok(EnrollmentCode {
            bundle: fedagg_api::trust::bundle(&code, &pin),
            code,
            federation_id: fid,
            role,
        })
    }

    /// Redeem an enrollment code for a fresh bearer token, recording the participant's identity
    /// key when it gives one (checked before the code is used up).
    pub fn enroll(&self, code: &str, identity_key: Option<&str>) -> Result<Enrolled, ApiError> {
        if let Some(k) = identity_key {
            fedagg_api::trust::identity_key(k).map_err(|e| ApiError::invalid(e.0))?;
        }
        let token = auth::new_secret("ft_");
        let (pid, fid, role) = self
            .store
            .enroll(
                &auth::hash(code),
                &auth::hash(&token),
                identity_key,
                self.now_ms(),
            )?
            .ok_or_else(|| ApiError::unauthorized("unknown or already used enrollment code"))?;
        self.bump(fid);
        Ok(Enrolled {
            participant_id: pid,
            federation_id: fid,
            role,
            token,
        })
    }

    /// Replace participant `pid`'s token; the old one stops working.
    pub fn rotate_token(&self, fid: i64, pid: i64) -> Result<Enrolled, ApiError> {
        let (_, role) = self
            .store
            .participant(pid)?
            .filter(|(f, _)| *f == fid)
            .ok_or_else(|| {
                ApiError::not_found(format!("no participant {pid} in federation {fid}"))
            })?;
        let token = auth::new_secret("ft_");
        self.store.rotate_token(pid, &auth::hash(&token))?;
        Ok(Enrolled {
            participant_id: pid,
            federation_id: fid,
            role,
            token,
        })
    }

    /// Federation `fid`'s roster: who enrolled with an identity key, and the last signed roster.
    pub fn roster(&self, fid: i64) -> Result<Roster, ApiError> {
        self.check_federation(fid)?;
        let (enrolled, signed) = self.store.roster(fid)?;
        let signed = signed
            .map(|text| serde_json::from_str::<SignedRoster>(&text))
            .transpose()
            .map_err(|e| ApiError::internal(format!("stored roster: {e}")))?;
        Ok(Roster {
            federation_id: fid,
            enrolled: enrolled
                .into_iter()
                .map(|(participant_id, identity_key)| RosterEntry {
                    participant_id,
                    identity_key,
                })
                .collect(),
            signed,
        })
    }

    /// The identity keys of federation `fid`'s signed roster, verified again under its
    /// `roster_authority` (the store is not trusted to have kept it intact); `None` when there is
    /// no authority or no signed roster yet.
    pub fn verified_roster(
        &self,
        fid: i64,
        spec: &fedagg_api::FederationSpec,
    ) -> Result<Option<fedagg_round::plan::Identities>, ApiError> {
        let (Some(authority), (_, Some(text))) = (&spec.roster_authority, self.store.roster(fid)?)
        else {
            return Ok(None);
        };
        let signed: SignedRoster = serde_json::from_str(&text)
            .map_err(|e| ApiError::internal(format!("stored roster: {e}")))?;
        fedagg_api::trust::verify_roster(authority, fid, &signed)
            .map_err(|e| ApiError::internal(format!("stored roster: {e}")))?;
        Ok(Some(
            signed
                .members
                .into_iter()
                .map(|m| (m.participant_id, m.identity_key))
                .collect(),
        ))
    }

    /// Store a roster the federation's enrollment authority signed: the signature must verify
    /// under the federation's `roster_authority`, and each member be enrolled with that key.
    pub fn set_roster(&self, fid: i64, signed: &SignedRoster) -> Result<(), ApiError> {
        let fed = self.federation(fid)?;
        let Some(authority) = &fed.spec.roster_authority else {
            return Err(ApiError::conflict(
                "this federation has no roster authority",
            ));
        };
        fedagg_api::trust::verify_roster(authority, fid, signed)
            .map_err(|e| ApiError::invalid(e.0))?;
        let (enrolled, _) = self.store.roster(fid)?;
        for m in &signed.members {
            let known = enrolled
                .iter()
                .any(|(pid, key)| *pid == m.participant_id && *key == m.identity_key);
            if !known {
                return Err(ApiError::invalid(format!(
                    "participant {} is not enrolled in federation {fid} with identity key {}",
                    m.participant_id, m.identity_key
                )));
            }
        }
        let text = serde_json::to_string(signed).map_err(|e| ApiError::internal(e.to_string()))?;
        self.store.set_roster(fid, &text)?;
        self.bump(fid);
        Ok(())
    }

    /// The key holder's published key, as stored.
    fn public_key_text(&self, fid: i64) -> Result<String, ApiError> {
        self.store
            .federation(fid)?
            .ok_or_else(|| ApiError::not_found(format!("no federation {fid}")))?
            .public_key
            .ok_or_else(|| ApiError::not_found("no public key published yet"))
    }

    /// The key holder's published key, in the field of the federation's mode.
    pub fn public_key(&self, fid: i64) -> Result<PublicKeyBody, ApiError> {
        let fed = self.federation(fid)?;
        let key = self.public_key_text(fid)?;
        Ok(match fed.spec.mode {
            Mode::Lattice { .. } => PublicKeyBody {
                lattice: Some(key),
                ..Default::default()
            },
            _ => PublicKeyBody {
                paillier: Some(key),
                ..Default::default()
            },
        })
    }

    /// Model `version` (the current one when `None`) as an f32 frame.
    pub fn model_frame(&self, fid: i64, version: Option<u64>) -> Result<Vec<u8>, ApiError> {
        let (row, _) = self.federation_spec(fid)?;
        let v = version.unwrap_or(row.model_version);
        let data = self
            .store
            .model(fid, v)?
            .ok_or_else(|| ApiError::not_found(format!("no model version {v}")))?;
        Ok(Frame::encode(FrameKind::F32, v, &data))
    }

    /// SCAFFOLD's control variate stored with model `version` (the current one when `None`) as
    /// an f32 frame: zeros when none was stored with it (before the first SCAFFOLD round).
    pub fn controls_frame(&self, fid: i64, version: Option<u64>) -> Result<Vec<u8>, ApiError> {
        let (row, spec) = self.federation_spec(fid)?;
        if !spec.scaffold {
            return Err(ApiError::conflict(
                "the federation does not use SCAFFOLD: it keeps no control variate",
            ));
        }
        let v = version.unwrap_or(row.model_version);
        let data = self
            .store
            .model_controls(fid, v)?
            .ok_or_else(|| ApiError::not_found(format!("no model version {v}")))?
            .unwrap_or_else(|| f32_bytes(&vec![0.0; spec.vector_len]));
        Ok(Frame::encode(FrameKind::F32, v, &data))
    }
}
