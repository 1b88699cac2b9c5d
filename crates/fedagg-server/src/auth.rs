//! Bearer tokens and the one place that decides who may call what.
//!
//! Tokens are 32 random bytes from the OS CSPRNG, shown once, stored as SHA-256 hashes and
//! compared in constant time. Every authenticated route takes a [`Caller<A, P>`] extractor: it
//! authenticates the bearer token, parses the path's ids (`P`) within their documented bounds,
//! and checks the access rule `A` against them, all before any body is read. The rules are the
//! [`Access`] variants, checked in [`Principal::allow`].

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use fedagg_api::Role;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::error::ApiError;
use crate::store::Store;

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// Role of the token.
    pub role: Role,
    /// Federation (none for admin).
    pub federation_id: Option<i64>,
    /// Participant (none for admin).
    pub participant_id: Option<i64>,
}

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The admin role.
    Admin,
    /// Read access to the path's federation: the admin, or any member of it.
    Reader,
    /// A member of the path's federation that takes part in rounds (participant or key holder;
    /// not the admin).
    Contributor,
    /// The key holder of the path's federation.
    KeyHolder,
    /// The admin, or the participant the path names, itself.
    SelfOrAdmin,
}

impl Principal {
    /// Check `access` for a request on federation `fid` (and participant `pid`) from the path.
    pub fn allow(
        &self,
        access: Access,
        fid: Option<i64>,
        pid: Option<i64>,
    ) -> Result<(), ApiError> {
        let admin = self.role == Role::Admin;
        let member = fid.is_some() && self.federation_id == fid;
        let foreign = || {
            ApiError::forbidden(format!(
                "this token does not belong to federation {}",
                fid.unwrap_or_default()
            ))
        };
        match access {
            Access::Admin if admin => Ok(()),
            Access::Admin => Err(ApiError::forbidden("this route needs the admin role")),
            Access::Reader if admin || member => Ok(()),
            Access::Contributor if admin => Err(ApiError::forbidden(
                "the admin takes no part in rounds; use a participant's token",
            )),
            Access::Contributor if member => Ok(()),
            Access::KeyHolder if member && self.role == Role::KeyHolder => Ok(()),
            Access::KeyHolder if member || admin => Err(ApiError::forbidden(format!(
                "this route needs the key_holder role, the token has {}",
                self.role
            ))),
            Access::SelfOrAdmin
                if admin || (member && pid.is_some() && self.participant_id == pid) =>
            {
                Ok(())
            }
            Access::SelfOrAdmin if member => Err(ApiError::forbidden(
                "only an admin or the participant itself rotates a token",
            )),
            _ => Err(foreign()),
        }
    }
}

/// An access rule as a type, for [`Caller`].
pub trait Requires: Send + Sync + 'static {
    /// The rule.
    const ACCESS: Access;
}

/// Marker types for [`Access`]'s variants.
pub mod access {
    use super::{Access, Requires};

    macro_rules! rules {
        ($($name:ident),*) => {$(
            #[doc = concat!("[`Access::", stringify!($name), "`].")]
            pub struct $name;
            impl Requires for $name {
                const ACCESS: Access = Access::$name;
            }
        )*};
    }
    rules!(Admin, Reader, Contributor, KeyHolder, SelfOrAdmin);
}

/// Ids in a route's path, parsed within the bounds the OpenAPI document states for them
/// (`1..=i64::MAX`, so that every id fits the store's integers).
pub trait PathIds: Sized + Send + 'static {
    /// Parse from the matched path's parameters.
    fn parse(params: &RawPathParams) -> Result<Self, ApiError>;
    /// The federation the path names.
    fn federation(&self) -> Option<i64>;
    /// The participant the path names.
    fn participant(&self) -> Option<i64> {
        None
    }
}

/// Largest id or round number in a path.
pub const MAX_ID: i64 = i64::MAX;

fn id(params: &RawPathParams, name: &str) -> Result<i64, ApiError> {
    let raw = params
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| ApiError::internal(format!("route has no {{{name}}} parameter")))?;
    raw.parse::<i64>()
        .ok()
        .filter(|v| (1..=MAX_ID).contains(v))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "path parameter {name} must be an integer in 1..={MAX_ID}"
            ))
        })
}

/// A path without ids.
impl PathIds for () {
    fn parse(_: &RawPathParams) -> Result<Self, ApiError> {
        Ok(())
    }
    fn federation(&self) -> Option<i64> {
        None
    }
}

/// `{fid}`.
#[derive(Debug, Clone, Copy, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FedPath {
    /// Federation id.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub fid: i64,
}

impl PathIds for FedPath {
    fn parse(p: &RawPathParams) -> Result<Self, ApiError> {
        Ok(FedPath { fid: id(p, "fid")? })
    }
    fn federation(&self) -> Option<i64> {
        Some(self.fid)
    }
}

/// `{fid}` and `{round}`.
#[derive(Debug, Clone, Copy, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RoundPath {
    /// Federation id.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub fid: i64,
    /// Round number.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub round: u64,
}

impl PathIds for RoundPath {
    fn parse(p: &RawPathParams) -> Result<Self, ApiError> {
        Ok(RoundPath {
            fid: id(p, "fid")?,
            round: id(p, "round")? as u64,
        })
    }
    fn federation(&self) -> Option<i64> {
        Some(self.fid)
    }
}

/// `{fid}` and `{pid}`.
#[derive(Debug, Clone, Copy, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ParticipantPath {
    /// Federation id.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub fid: i64,
    /// Participant id.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub pid: i64,
}

impl PathIds for ParticipantPath {
    fn parse(p: &RawPathParams) -> Result<Self, ApiError> {
        Ok(ParticipantPath {
            fid: id(p, "fid")?,
            pid: id(p, "pid")?,
        })
    }
    fn federation(&self) -> Option<i64> {
        Some(self.fid)
    }
    fn participant(&self) -> Option<i64> {
        Some(self.pid)
    }
}

/// An authenticated caller allowed by rule `A`, with the path's ids `P`.
pub struct Caller<A, P = ()> {
    /// Who is calling.
    pub who: Principal,
    /// The path's ids.
    pub path: P,
    rule: PhantomData<A>,
}

impl<A: Requires, P: PathIds> FromRequestParts<Arc<App>> for Caller<A, P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let who = {
            let app = app.clone();
            let headers = parts.headers.clone();
            tokio::task::spawn_blocking(move || authenticate(&app.store, &headers))
                .await
                .map_err(|e| ApiError::internal(format!("worker: {e}")))??
        };
        let params = RawPathParams::from_request_parts(parts, app)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let path = P::parse(&params)?;
        who.allow(A::ACCESS, path.federation(), path.participant())?;
        Ok(Caller {
            who,
            path,
            rule: PhantomData,
        })
    }
}

/// May this request read `/metrics`: the configured metrics token, or the admin's.
pub fn metrics_reader(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = bearer(headers)?;
    if let Some(t) = &app.config.metrics_token {
        if bool::from(hash(t).ct_eq(&hash(token))) {
            return Ok(());
        }
    }
    authenticate(&app.store, headers)?.allow(Access::Admin, None, None)
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))
}

/// A fresh secret: `prefix` followed by 64 hex digits.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// SHA-256 of a token or code.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Resolve the `Authorization: Bearer` header.
pub fn authenticate(store: &Store, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let h = hash(bearer(headers)?);
    // The lookup is by hash of a 256-bit secret, so its timing reveals nothing useful; the final
    // comparison is constant-time anyway.
    match store.token(&h)? {
        Some((stored, row)) if bool::from(stored.ct_eq(&h)) => Ok(Principal {
            role: row.role,
            federation_id: row.federation_id,
            participant_id: row.participant_id,
        }),
        _ => Err(ApiError::unauthorized("unknown token")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(role: Role, fid: Option<i64>, pid: Option<i64>) -> Principal {
        Principal {
            role,
            federation_id: fid,
            participant_id: pid,
        }
    }

    #[test]
    fn every_rule_admits_exactly_its_callers() {
        let admin = p(Role::Admin, None, None);
        let part = p(Role::Participant, Some(1), Some(5));
        let keys = p(Role::KeyHolder, Some(1), Some(6));
        let other = p(Role::Participant, Some(2), Some(7));
        let ok = |c: Principal, a: Access, pid: Option<i64>| c.allow(a, Some(1), pid).is_ok();
        assert!(admin.allow(Access::Admin, None, None).is_ok());
        assert!(part.allow(Access::Admin, None, None).is_err());
        for c in [admin, part, keys] {
            assert!(ok(c, Access::Reader, None));
        }
        assert!(!ok(other, Access::Reader, None));
        assert!(!ok(admin, Access::Contributor, None));
        assert!(ok(part, Access::Contributor, None) && ok(keys, Access::Contributor, None));
        assert!(!ok(other, Access::Contributor, None));
        assert!(ok(keys, Access::KeyHolder, None));
        assert!(!ok(part, Access::KeyHolder, None) && !ok(admin, Access::KeyHolder, None));
        assert!(ok(admin, Access::SelfOrAdmin, Some(9)) && ok(part, Access::SelfOrAdmin, Some(5)));
        assert!(
            !ok(part, Access::SelfOrAdmin, Some(6)) && !ok(other, Access::SelfOrAdmin, Some(7))
        );
        // Every refusal is a 403.
        let e = part.allow(Access::Admin, None, None).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
    }
}
