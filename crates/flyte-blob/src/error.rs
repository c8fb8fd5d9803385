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
    /// No space left where the blobs are (ENOSPC or a quota); nothing was written. Writes
    /// succeed again once space is freed.
    #[error("the blob store's disk is full: cannot write {path}: {reason}")]
    StorageFull { path: String, reason: String },
    /// The backend failed (I/O, network).
    #[error("blob store: {0}")]
    Backend(#[source] object_store::Error),
}

impl BlobError {
    pub(crate) fn from_backend(path: &str, err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { .. } => Self::NotFound(path.to_string()),
            other => match out_of_space(&other) {
                Some(io) => Self::StorageFull {
                    path: path.to_string(),
                    reason: io.to_string(),
                },
                None => Self::Backend(other),
            },
        }
    }
}

/// The I/O error somewhere in `err`'s sources that says the disk (or quota) is full.
fn out_of_space<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        {
            return Some(io);
        }
        next = e.source();
    }
    None
}
