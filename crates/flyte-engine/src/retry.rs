//! Waiting out storage that cannot take a write for now (a full disk): the engine's one
//! backoff, used for batches the sink refuses and for the blobs the engine writes itself
//! (node inputs, outputs, dynamic closures). Space comes back; an execution must not fail,
//! or lose its progress, for the outage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use flyte_blob::{BlobError, BlobStore};

/// Longest wait between two tries of a write storage refused for now.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(5);

/// Capped exponential backoff from `first` to [`MAX_DELAY`].
pub(crate) struct Backoff {
    delay: Duration,
    retries: u64,
}

impl Backoff {
    pub(crate) fn new(first: Duration) -> Self {
        Self {
            delay: first,
            retries: 0,
        }
    }

    /// Tries so far that were refused.
    pub(crate) fn retries(&self) -> u64 {
        self.retries
    }

    /// Sleeps before the next try.
    pub(crate) async fn wait(&mut self) {
        self.retries += 1;
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(MAX_DELAY);
    }
}

/// Writes a blob; while the store's disk is full, tries again with [`Backoff`] (logged when
/// the state changes, not per try) until it is written or `stop` is set (shutdown: the
/// `StorageFull` error is returned then). Other errors are returned at once.
pub(crate) async fn put_blob(
    store: &BlobStore,
    path: &str,
    data: Bytes,
    first_delay: Duration,
    stop: Option<&AtomicBool>,
) -> Result<(), BlobError> {
    let mut backoff = Backoff::new(first_delay);
    loop {
        match store.put(path, data.clone()).await {
            Ok(()) => {
                if backoff.retries() > 0 {
                    tracing::info!(
                        path,
                        retries = backoff.retries(),
                        "blob store writable again; blob written"
                    );
                }
                return Ok(());
            }
            Err(e @ BlobError::StorageFull { .. }) => {
                if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                    return Err(e);
                }
                metrics::counter!(crate::metrics::BLOB_RETRIES).increment(1);
                if backoff.retries() == 0 {
                    tracing::warn!(error = %e, "blob store full; retrying the write with backoff");
                } else {
                    tracing::debug!(error = %e, retries = backoff.retries(), "blob store still full");
                }
                backoff.wait().await;
            }
            Err(e) => return Err(e),
        }
    }
}
