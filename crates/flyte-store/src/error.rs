use thiserror::Error;

/// Store failures, as the layers above need to branch on them.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    /// A unique key is taken (e.g. an entity version registered twice).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The query cannot be run as asked (unknown filter field, bad value or token).
    #[error("{0}")]
    InvalidArgument(String),
    /// The database's disk is full (SQLite `SQLITE_FULL`, PostgreSQL SQLSTATE 53100); nothing
    /// partial was committed. The store writes again by itself once space is freed.
    #[error("the metadata store's disk is full: {0}")]
    StorageFull(String),
    /// A fenced transition's owner no longer holds the execution's lease (it expired by the
    /// database's clock or another replica took it); nothing was committed.
    #[error("lease of {0} lost")]
    LeaseLost(String),
    /// The database failed; nothing partial was committed.
    #[error("metadata store: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}
