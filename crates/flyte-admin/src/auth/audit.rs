//! The audit trail kept in the store (docs/auth.md, "Audit"): every audited call (the
//! `audit` log line of crate::authz) is also queued here and written in batches by one
//! background task, so a call never waits for it; `GET /api/v1/auth/audit` reads it back.
//! Records older than `auth.audit.retention_days` are deleted (at start, then hourly).

use std::sync::Arc;
use std::time::Duration;

use flyte_store::{AuditRecord, MetadataStore};
use tokio::sync::{mpsc, oneshot};

/// Calls queued and not written yet beyond this are dropped (logged, counted in the log
/// line): a store that cannot keep up must not hold calls back or grow memory without bound.
const QUEUE: usize = 10_000;
/// Records written per transaction at most.
const BATCH: usize = 500;

enum Msg {
    Record(Box<AuditRecord>),
    /// Answered once everything queued before it is written (tests, shutdown).
    Flush(oneshot::Sender<()>),
}

/// Queues audit records for the store. Cheap to share (`Arc`), put into each request's
/// extensions by the auth edge.
#[derive(Debug)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit message")
    }
}

impl AuditSink {
    /// Starts the writer over `store`; `retention`: how long records are kept.
    pub fn start(store: Arc<dyn MetadataStore>, retention: Duration) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(store, retention, rx));
        Arc::new(Self { tx })
    }

    /// Queues one record; never waits.
    pub fn record(&self, record: AuditRecord) {
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.tx.try_send(Msg::Record(Box::new(record)))
        {
            tracing::warn!(
                queued = QUEUE,
                "the audit store is behind: an audit record was dropped (its log line stays)"
            );
        }
    }

    /// Waits until every record queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_loop(
    store: Arc<dyn MetadataStore>,
    retention: Duration,
    mut rx: mpsc::Receiver<Msg>,
) {
    let mut prune = tokio::time::interval(Duration::from_secs(3600));
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let mut next = Some(msg);
                // Take what is queued already, up to a batch.
                while let Some(m) = next {
                    match m {
                        Msg::Record(r) => batch.push(*r),
                        Msg::Flush(done) => flushes.push(done),
                    }
                    next = if batch.len() < BATCH { rx.try_recv().ok() } else { None };
                }
                if !batch.is_empty() {
                    let n = batch.len();
                    if let Err(err) = store.insert_audit_records(std::mem::take(&mut batch)).await {
                        tracing::error!(error = %err, records = n, "cannot store audit records (their log lines stay)");
                    }
                }
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
            _ = prune.tick() => {
                let cutoff = chrono::Utc::now()
                    - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(90));
                match store.prune_audit_records(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "audit records past their retention deleted"),
                    Err(err) => tracing::warn!(error = %err, "cannot delete old audit records"),
                }
            }
        }
    }
}
