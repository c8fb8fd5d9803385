//! Live execution updates as server-sent events (the console's, and anyone's: docs/console.md
//! "Live updates"). The engine's event batches, once committed by the store's sink, are
//! published on a [`LiveHub`]; `GET /api/v1/watch/executions/{project}/{domain}[/{name}]`
//! streams what each batch changed (execution phase, node and task-attempt phases), so a
//! page re-reads over REST only what changed instead of polling.
//!
//! The hub sees what this process's engine commits, and, on PostgreSQL, what other replicas'
//! engines commit ([`relay`]; such a change is sent as `resync`). Changes made elsewhere
//! (events posted over the API) are noticed by a coarse re-read of the execution record,
//! which also sends `resync`.

pub mod relay;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flyte_engine::sink::{EventBatch, EventSink, SinkError};
use flyte_store::{ExecutionKey, StoreError};
use flyteidl::core::WorkflowExecutionIdentifier;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::gateway::error_response;
use crate::launcher::{ExecutionLauncher, LaunchRequest};
use crate::service::admin::events::{
    is_workflow_terminal_name, node_phase_name, task_phase_name, workflow_phase_name,
};
use crate::state::AdminState;

/// Updates of one execution.
pub const EXECUTION_ROUTE: &str = "/api/v1/watch/executions/{project}/{domain}/{name}";
/// Phase changes of every execution of a project and domain.
pub const EXECUTIONS_ROUTE: &str = "/api/v1/watch/executions/{project}/{domain}";

/// How often a watch re-reads the execution record to notice changes the hub cannot see.
const RECHECK: Duration = Duration::from_secs(5);
/// Batches a slow watcher may fall behind before it is told to `resync`.
const CAPACITY: usize = 4096;

/// What one committed batch changed, as sent in an `update` event.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    #[serde(skip)]
    pub execution: ExecutionKey,
    /// The execution's phase after the batch, when the batch moved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskChange>,
    /// Committed by another replica ([`relay`]): which nodes changed is not known here.
    #[serde(skip)]
    pub remote: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeChange {
    pub node_id: String,
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_node_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskChange {
    pub node_id: String,
    pub retry_attempt: u32,
    pub phase: String,
}

impl Change {
    /// What `batch` changes; `None` for a batch without events (journal only).
    pub fn of(batch: &EventBatch) -> Option<Self> {
        let id = &batch.execution;
        let phase = batch
            .workflow_events
            .last()
            .map(|e| workflow_phase_name(e.phase));
        let nodes: Vec<NodeChange> = batch
            .node_events
            .iter()
            .filter_map(|e| {
                Some(NodeChange {
                    node_id: e.id.as_ref()?.node_id.clone(),
                    phase: node_phase_name(e.phase),
                    parent_node_id: e
                        .parent_node_metadata
                        .as_ref()
                        .map(|p| p.node_id.clone())
                        .filter(|p| !p.is_empty()),
                })
            })
            .collect();
        let tasks: Vec<TaskChange> = batch
            .task_events
            .iter()
            .filter_map(|e| {
                Some(TaskChange {
                    node_id: e.parent_node_execution_id.as_ref()?.node_id.clone(),
                    retry_attempt: e.retry_attempt,
                    phase: task_phase_name(e.phase),
                })
            })
            .collect();
        if phase.is_none() && nodes.is_empty() && tasks.is_empty() {
            return None;
        }
        Some(Self {
            execution: ExecutionKey {
                project: id.project.clone(),
                domain: id.domain.clone(),
                name: id.name.clone(),
            },
            phase,
            nodes,
            tasks,
            remote: false,
        })
    }
}

/// Where committed batches are announced to watchers (cheap to clone).
#[derive(Clone)]
pub struct LiveHub {
    tx: broadcast::Sender<Arc<Change>>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveHub {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    pub fn publish(&self, batch: &EventBatch) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        if let Some(change) = Change::of(batch) {
            self.publish_change(change);
        }
    }

    /// Announces a change made elsewhere (another replica's, [`relay`]).
    pub fn publish_change(&self, change: Change) {
        // No receiver left meanwhile: nothing to tell.
        let _ = self.tx.send(Arc::new(change));
    }
}

/// The store's sink, announcing each batch on the hub once it is committed.
pub struct PublishingSink {
    inner: Arc<dyn EventSink>,
    hub: LiveHub,
}

impl PublishingSink {
    pub fn wrap(inner: Arc<dyn EventSink>, hub: LiveHub) -> Arc<dyn EventSink> {
        Arc::new(Self { inner, hub })
    }
}

#[async_trait]
impl EventSink for PublishingSink {
    async fn record(&self, batch: &EventBatch) -> Result<(), SinkError> {
        self.inner.record(batch).await?;
        self.hub.publish(batch);
        Ok(())
    }
}

/// A launcher that also hands out the hub its engine's batches are announced on.
pub struct LiveLauncher<L> {
    inner: L,
    hub: LiveHub,
}

impl<L> LiveLauncher<L> {
    pub fn new(inner: L, hub: LiveHub) -> Self {
        Self { inner, hub }
    }
}

#[async_trait]
impl<L: ExecutionLauncher> ExecutionLauncher for LiveLauncher<L> {
    async fn start(&self, request: LaunchRequest) -> Result<(), String> {
        self.inner.start(request).await
    }

    async fn abort(&self, id: &WorkflowExecutionIdentifier, cause: &str) -> Result<bool, String> {
        self.inner.abort(id, cause).await
    }

    async fn signal_set(&self, execution: &WorkflowExecutionIdentifier, signal_id: &str) {
        self.inner.signal_set(execution, signal_id).await;
    }

    fn live(&self) -> Option<LiveHub> {
        Some(self.hub.clone())
    }
}

/// The watch endpoints (merged into the admin router).
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(EXECUTION_ROUTE, get(watch_execution))
        .route(EXECUTIONS_ROUTE, get(watch_executions))
        .with_state(state)
}

type Events = mpsc::Receiver<Event>;

fn sse(rx: Events) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event("resync").data("{}"))
}

fn store_failure(err: StoreError, key: &ExecutionKey) -> Response {
    match err {
        StoreError::NotFound(_) => error_response(
            http::StatusCode::NOT_FOUND,
            tonic::Code::NotFound,
            &format!("{key} not found"),
            Vec::new(),
        ),
        other => {
            tracing::error!(execution = %key, error = %other, "cannot read an execution to watch");
            error_response(
                http::StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                "the metadata store cannot be read now; try again",
                Vec::new(),
            )
        }
    }
}

/// `GET /api/v1/watch/executions/{project}/{domain}/{name}`: `ready` (the phase now), then an
/// `update` per committed change, `resync` when changes may have been missed; the stream ends
/// after the update that makes the execution terminal (or at once if it already is).
async fn watch_execution(
    State(state): State<AdminState>,
    Path((project, domain, name)): Path<(String, String, String)>,
) -> Response {
    let key = ExecutionKey {
        project,
        domain,
        name,
    };
    // Subscribed before the read, so nothing committed after it is missed.
    let mut updates = state
        .launcher
        .as_ref()
        .and_then(|l| l.live())
        .map(|h| h.subscribe());
    let record = match state.store.get_execution(&key).await {
        Ok(record) => record,
        Err(err) => return store_failure(err, &key),
    };
    let (tx, rx) = mpsc::channel(64);
    let ready = Event::default()
        .event("ready")
        .json_data(serde_json::json!({ "phase": record.phase }));
    let done = is_workflow_terminal_name(&record.phase);
    tokio::spawn(async move {
        let Ok(ready) = ready else { return };
        if tx.send(ready).await.is_err() || done {
            return;
        }
        let mut last_seen = record.updated_at;
        let mut heard = false;
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        loop {
            let event = tokio::select! {
                () = tx.closed() => return,
                change = recv(&mut updates) => match change {
                    Ok(change) if change.execution == key => {
                        heard = true;
                        let terminal = change.phase.as_deref().is_some_and(is_workflow_terminal_name);
                        let event = if change.remote {
                            json_event("resync", &serde_json::json!({ "phase": change.phase }))
                        } else {
                            json_event("update", &*change)
                        };
                        if tx.send(event).await.is_err() || terminal {
                            return;
                        }
                        continue;
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(execution = %key, missed, "watcher fell behind; resync");
                        Event::default().event("resync").data("{}")
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        updates = None;
                        continue;
                    }
                },
                _ = recheck.tick() => {
                    let Ok(now) = state.store.get_execution(&key).await else { continue };
                    let changed = now.updated_at != last_seen;
                    last_seen = now.updated_at;
                    let unheard = std::mem::take(&mut heard);
                    if is_workflow_terminal_name(&now.phase) {
                        let _ = tx.send(json_event("resync", &serde_json::json!({ "phase": now.phase }))).await;
                        return;
                    }
                    if !changed || unheard {
                        continue;
                    }
                    json_event("resync", &serde_json::json!({ "phase": now.phase }))
                }
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    sse(rx)
}

/// The next change, or never when there is no hub.
async fn recv(
    updates: &mut Option<broadcast::Receiver<Arc<Change>>>,
) -> Result<Arc<Change>, broadcast::error::RecvError> {
    match updates {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the list watch sends per change of an execution's phase.
#[derive(Serialize)]
struct PhaseChange<'a> {
    name: &'a str,
    phase: &'a str,
}

/// `GET /api/v1/watch/executions/{project}/{domain}`: `ready`, then an `update`
/// (`{"name","phase"}`) whenever an execution of the project and domain changes phase here,
/// `resync` when some may have been missed. Never ends by itself.
async fn watch_executions(
    State(state): State<AdminState>,
    Path((project, domain)): Path<(String, String)>,
) -> Response {
    let mut updates = state
        .launcher
        .as_ref()
        .and_then(|l| l.live())
        .map(|h| h.subscribe());
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        if tx
            .send(Event::default().event("ready").data("{}"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let event = tokio::select! {
                () = tx.closed() => return,
                change = recv(&mut updates) => match change {
                    Ok(change) => {
                        let Some(phase) = change.phase.as_deref() else { continue };
                        if change.execution.project != project || change.execution.domain != domain {
                            continue;
                        }
                        json_event("update", &PhaseChange { name: &change.execution.name, phase })
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        Event::default().event("resync").data("{}")
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        updates = None;
                        continue;
                    }
                },
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    sse(rx)
}

/// Whether a request to a task log asks for its live stream (`Accept: text/event-stream`,
/// what a browser's `EventSource` sends) rather than its bytes.
pub fn wants_events(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// Largest piece of a log sent in one event.
const LOG_CHUNK: u64 = 256 * 1024;
/// How often a followed log that did not grow is looked at again.
const LOG_POLL: Duration = Duration::from_millis(250);
/// How often, while a log does not grow, the store is asked whether the attempt ended.
const LOG_END_CHECK: Duration = Duration::from_secs(1);

/// `GET /logs/…/<attempt>.log` with `Accept: text/event-stream`: the attempt's log as it is
/// written, as `log` events (data: the new text as a JSON string, whole lines while the task
/// runs; id: the byte offset after it, so a reconnecting `EventSource` resumes from its
/// `Last-Event-ID`), then `end` once the attempt (or its execution) has ended and everything
/// written was sent (`end` with `{"error": …}` if the file cannot be read).
pub fn follow_log(
    store: Arc<dyn flyte_store::MetadataStore>,
    file: std::path::PathBuf,
    attempt: flyte_engine::backend::AttemptKey,
    headers: &http::HeaderMap,
) -> Response {
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move { tail_log(store, file, attempt, from, tx).await });
    sse(rx)
}

async fn tail_log(
    store: Arc<dyn flyte_store::MetadataStore>,
    file: std::path::PathBuf,
    attempt: flyte_engine::backend::AttemptKey,
    mut offset: u64,
    tx: mpsc::Sender<Event>,
) {
    let mut ended = false;
    let mut checked = tokio::time::Instant::now();
    loop {
        let bytes = match read_from(&file, offset).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(path = %file.display(), error = %e, "cannot follow a task log");
                let end = serde_json::json!({ "error": "the log cannot be read" });
                let _ = tx.send(json_event("end", &end)).await;
                return;
            }
        };
        // Whole lines while the task writes; everything once it has ended (or a full chunk).
        let cut = if ended || bytes.len() as u64 >= LOG_CHUNK {
            bytes.len()
        } else {
            bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
        };
        if cut > 0 {
            offset += cut as u64;
            let text = String::from_utf8_lossy(&bytes[..cut]);
            let event = json_event("log", &text).id(offset.to_string());
            if tx.send(event).await.is_err() {
                return;
            }
            continue;
        }
        if ended {
            let _ = tx.send(Event::default().event("end").data("{}")).await;
            return;
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(LOG_POLL) => {}
        }
        if checked.elapsed() >= LOG_END_CHECK {
            checked = tokio::time::Instant::now();
            ended = attempt_ended(store.as_ref(), &attempt).await;
        }
    }
}

/// Up to [`LOG_CHUNK`] bytes of `file` from `offset` (none while it does not exist yet).
async fn read_from(file: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = match tokio::fs::File::open(file).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if f.metadata().await?.len() <= offset {
        return Ok(Vec::new());
    }
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut buf = Vec::new();
    f.take(LOG_CHUNK).read_to_end(&mut buf).await?;
    Ok(buf)
}

/// Whether the attempt can write no more: its task execution ended, a later attempt exists,
/// or its execution ended (or is gone).
async fn attempt_ended(
    store: &dyn flyte_store::MetadataStore,
    attempt: &flyte_engine::backend::AttemptKey,
) -> bool {
    let execution = ExecutionKey {
        project: attempt.project.clone(),
        domain: attempt.domain.clone(),
        name: attempt.execution.clone(),
    };
    match store.get_execution(&execution).await {
        Ok(record) if is_workflow_terminal_name(&record.phase) => return true,
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => return true,
        Err(_) => return false,
    }
    let Ok(tasks) = store
        .get_task_executions_of_nodes(&execution, std::slice::from_ref(&attempt.node_id))
        .await
    else {
        return false;
    };
    tasks.iter().any(|t| {
        t.key.retry_attempt > attempt.retry_attempt
            || (t.key.retry_attempt == attempt.retry_attempt
                && matches!(
                    t.phase.as_str(),
                    "SUCCEEDED" | "FAILED" | "ABORTED" | "RETRYABLE_FAILED"
                ))
    })
}
