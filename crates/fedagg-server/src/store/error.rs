//! The store's one error type; `crate::error` maps it to an HTTP status.

use std::fmt;

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness constraint refused the write (a concurrent insert won).
    Conflict(String),
    /// No such row where one was required.
    NotFound(String),
    /// The database cannot be reached right now (retryable).
    Unavailable(String),
    /// The database configuration is unusable (URL, TLS files).
    Config(String),
    /// Anything else: a failed statement, a full disk, an unreadable row.
    Internal(String),
}

impl StoreError {
    pub(crate) fn conflict(detail: impl Into<String>) -> Self {
        StoreError::Conflict(detail.into())
    }
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        StoreError::NotFound(detail.into())
    }
    pub(crate) fn unavailable(detail: impl Into<String>) -> Self {
        StoreError::Unavailable(detail.into())
    }
    pub(crate) fn config(detail: impl Into<String>) -> Self {
        StoreError::Config(detail.into())
    }
    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        StoreError::Internal(detail.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict(s)
            | StoreError::NotFound(s)
            | StoreError::Unavailable(s)
            | StoreError::Config(s)
            | StoreError::Internal(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for StoreError {}
