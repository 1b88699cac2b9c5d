//! Bearer tokens: 32 random bytes from the OS CSPRNG, shown once, stored as SHA-256 hashes and
//! compared in constant time. Every route names the role it needs and the federation it acts on.

use axum::http::HeaderMap;
use fedagg_api::Role;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

impl Principal {
    /// Require the admin role.
    pub fn admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this route needs the admin role"))
        }
    }

    /// Require membership of `federation_id` with `role` (admins pass for read-only routes when
    /// `admin_ok`).
    pub fn member(&self, federation_id: i64, role: Role, admin_ok: bool) -> Result<i64, ApiError> {
        if admin_ok && self.role == Role::Admin {
            return Ok(0);
        }
        if self.federation_id != Some(federation_id) {
            return Err(ApiError::forbidden(format!(
                "this token does not belong to federation {federation_id}"
            )));
        }
        if self.role != role {
            return Err(ApiError::forbidden(format!(
                "this route needs the {role} role, the token has {}",
                self.role
            )));
        }
        self.participant_id
            .ok_or_else(|| ApiError::forbidden("the token names no participant"))
    }

    /// Read access to a federation: admin, or any member of it.
    pub fn reader(&self, federation_id: i64) -> Result<(), ApiError> {
        if self.role == Role::Admin || self.federation_id == Some(federation_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token does not belong to federation {federation_id}"
            )))
        }
    }
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
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
    let h = hash(token);
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
