//! Enrollment, tokens, the key holder's public key and model downloads: the federation's
//! membership and what its members read.

use fedagg_api::{Enrolled, EnrollmentCode, Frame, FrameKind, Mode, PublicKeyBody, Role};

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

    /// Redeem an enrollment code for a fresh bearer token.
    pub fn enroll(&self, code: &str) -> Result<Enrolled, ApiError> {
        let token = auth::new_secret("ft_");
        let (pid, fid, role) = self
            .store
            .enroll(&auth::hash(code), &auth::hash(&token), self.now_ms())?
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
}
