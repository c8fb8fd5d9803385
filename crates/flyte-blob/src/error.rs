use thiserror::Error;

/// Blob store failures, as callers need to branch on them.
#[derive(Debug, Error)]
pub enum BlobError {
    /// The store URL is malformed or names a scheme this build does not support.
    #[error("invalid blob store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A key is not a valid object path (empty segments, `.`/`..`, …).
    #[error("invalid blob path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("blob {0} not found")]
    NotFound(String),
    /// The backend failed (I/O, network).
    #[error("blob store: {0}")]
    Backend(#[source] object_store::Error),
}

impl BlobError {
    pub(crate) fn from_backend(path: &str, err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { .. } => Self::NotFound(path.to_string()),
            other => Self::Backend(other),
        }
    }
}
