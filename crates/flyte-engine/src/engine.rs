//! The engine: one actor (tokio task) per running execution, woken by messages only —
//! attempt updates from backends, abort requests, its own timers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flyte_blob::BlobStore;
use flyteidl::core::WorkflowExecutionIdentifier;
use tokio::sync::{mpsc, oneshot, watch};

use crate::backend::TaskBackend;
use crate::config::EngineConfig;
use crate::exec::{self, Control, ExecActor};
use crate::external::ExternalServices;
use crate::request::{ExecKey, ExecutionRequest};
use crate::resolver::EntityResolver;
use crate::sink::{EngineJournal, EventSink, RunningExecution, SinkError, WorkflowPhase};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("execution {0} is already running")]
    AlreadyRunning(String),
    #[error("execution {0} is not running")]
    NotRunning(String),
    #[error("invalid execution request: {0}")]
    InvalidRequest(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// Another replica holds the execution's lease (engine replicas on one database).
    #[error("execution {0} is owned by another replica")]
    OwnedElsewhere(String),
    #[error("execution leases: {0}")]
    Lease(String),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Shared by the engine and its actors.
pub(crate) struct Shared {
    pub config: EngineConfig,
    pub blob: BlobStore,
    pub backends: Vec<Arc<dyn TaskBackend>>,
    pub sink: Arc<dyn EventSink>,
    pub executions: Mutex<HashMap<ExecKey, ExecHandle>>,
    /// Final phases of finished executions (for [`Engine::wait`]); bounded.
    pub finished: Mutex<HashMap<ExecKey, WorkflowPhase>>,
    pub shutting_down: std::sync::atomic::AtomicBool,
    /// A blob write waiting out a full disk was given up for shutdown: rounds from then on
    /// are not committed (the node would be failed for the outage), so they resume at the
    /// next start.
    pub storage_abandoned: std::sync::atomic::AtomicBool,
    pub journal: Arc<dyn EngineJournal>,
    /// Launch plans and tasks dynamic workflows refer to.
    pub resolver: Arc<dyn EntityResolver>,
    /// Task output caching; without one nothing is cached.
    pub cache: Option<Arc<dyn flyte_cache::TaskCache>>,
    /// Signals, child executions and recovery lookups from the admin.
    pub external: ExternalServices,
    /// Child executions of launch-plan nodes → (parent execution, the node's unique id): a
    /// child that ends wakes its parent.
    pub children: Mutex<HashMap<ExecKey, (ExecKey, String)>>,
}

impl Shared {
    fn new(deps: EngineDeps) -> Self {
        Self {
            config: deps.config,
            blob: deps.blob,
            backends: deps.backends,
            sink: deps.sink,
            journal: deps.journal,
            executions: Mutex::new(HashMap::new()),
            finished: Mutex::new(HashMap::new()),
            shutting_down: Default::default(),
            storage_abandoned: Default::default(),
            resolver: deps.resolver,
            cache: deps.cache,
            external: deps.external,
            children: Mutex::new(HashMap::new()),
        }
    }

    /// Writes a blob of an execution, waiting out a full disk as the sink's batches do
    /// ([`crate::retry`]) rather than failing the node; a shutdown stops the wait.
    pub(crate) async fn put_blob(
        &self,
        path: &str,
        data: bytes::Bytes,
    ) -> Result<(), flyte_blob::BlobError> {
        let stop = Some(&self.shutting_down);
        let written =
            crate::retry::put_blob(&self.blob, path, data, self.config.sink_retry_delay, stop)
                .await;
        if let Err(flyte_blob::BlobError::StorageFull { .. }) = &written {
            self.storage_abandoned
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        written
    }
}

pub(crate) struct ExecHandle {
    pub control: mpsc::UnboundedSender<Control>,
    pub done: watch::Receiver<Option<WorkflowPhase>>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Everything an [`Engine`] needs, given at construction: an engine is never half-wired.
pub struct EngineDeps {
    pub config: EngineConfig,
    pub blob: BlobStore,
    /// Tried in order: an attempt goes to the first whose `handles()` is true.
    pub backends: Vec<Arc<dyn TaskBackend>>,
    pub sink: Arc<dyn EventSink>,
    pub journal: Arc<dyn EngineJournal>,
    /// Where dynamic workflows find the launch plans and tasks they refer to but do not carry.
    pub resolver: Arc<dyn EntityResolver>,
    /// The admin's services the engine calls at run time: signals for gate nodes, child
    /// executions for launch-plan nodes, what nodes did in the original of a recovery.
    pub external: ExternalServices,
    /// Task output caching. `None` is a real configuration (the engine's own tests, a
    /// deployment without a catalog): `cache=True` tasks then run every time
    /// (CACHE_DISABLED).
    pub cache: Option<Arc<dyn flyte_cache::TaskCache>>,
}

/// The execution engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
}

/// A handle to an engine that does not keep it alive, given to whatever the engine's own
/// dependencies need to reach it (the admin's executions service starts and aborts children
/// on it). Made before the engine by [`Engine::new_cyclic`]; once the engine is dropped its
/// calls answer [`EngineError::ShuttingDown`] / not running.
#[derive(Clone)]
pub struct EngineHandle {
    shared: std::sync::Weak<Shared>,
}

impl EngineHandle {
    /// The engine, while it exists.
    pub fn engine(&self) -> Option<Engine> {
        Some(Engine {
            shared: self.shared.upgrade()?,
        })
    }
}

impl Engine {
    pub fn new(deps: EngineDeps) -> Self {
        Self::from_shared(Arc::new(Shared::new(deps)))
    }

    /// Builds an engine whose dependencies need to reach the engine itself (the admin's
    /// services launch child executions on it): `deps` gets a weak [`EngineHandle`] first.
    /// The handle cannot reach the engine before this returns, so nothing sees it half-built.
    pub fn new_cyclic(deps: impl FnOnce(EngineHandle) -> EngineDeps) -> Self {
        Self::from_shared(Arc::new_cyclic(|weak| {
            Shared::new(deps(EngineHandle {
                shared: weak.clone(),
            }))
        }))
    }

    fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// A handle that does not keep this engine alive.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// A signal of `execution` was set: its gate nodes waiting for `signal_id` read it now.
    /// Returns false if the execution is not running here.
    pub fn signal_set(&self, execution: &WorkflowExecutionIdentifier, signal_id: &str) -> bool {
        let map = self.shared.executions.lock().unwrap();
        map.get(&ExecKey::of(execution)).is_some_and(|h| {
            h.control
                .send(Control::Signal(signal_id.to_string()))
                .is_ok()
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Starts an execution. Returns once its first batch (RUNNING, the journal's `started`)
    /// is committed to the sink, so a crash after this returns loses nothing.
    pub async fn start_execution(&self, req: ExecutionRequest) -> Result<(), EngineError> {
        self.spawn(exec::Start::New(Box::new(req))).await
    }

    /// Resumes every execution the journal says is running (call once at start-up, before
    /// accepting new executions). Returns how many were resumed.
    pub async fn resume_all(&self) -> Result<usize, EngineError> {
        let running = self.shared.journal.load_running().await?;
        let mut n = 0;
        for r in running {
            let key = r.request.key();
            match self.spawn(exec::Start::Resume(Box::new(r))).await {
                Ok(()) => n += 1,
                // Another replica runs it (or will take it over when its lease expires).
                Err(EngineError::AlreadyRunning(_) | EngineError::OwnedElsewhere(_)) => {}
                Err(e) => tracing::error!(execution = %key, error = %e, "cannot resume execution"),
            }
        }
        Ok(n)
    }

    pub(crate) async fn spawn(&self, start: exec::Start) -> Result<(), EngineError> {
        if self
            .shared
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(EngineError::ShuttingDown);
        }
        let req = match &start {
            exec::Start::New(r) => r.as_ref(),
            exec::Start::Resume(r) => &r.request,
        };
        exec::validate(req).map_err(EngineError::InvalidRequest)?;
        let key = req.key();
        if let Some(own) = self.ownership() {
            // Runs only under this replica's lease (replicas on one database).
            own.claim(&key).await?;
        }
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = watch::channel(None);
        let (ready_tx, ready_rx) = oneshot::channel();
        {
            let mut map = self.shared.executions.lock().unwrap();
            if map.contains_key(&key) {
                return Err(EngineError::AlreadyRunning(key.to_string()));
            }
            let shared = self.shared.clone();
            let actor_key = key.clone();
            let task = tokio::spawn(async move {
                let phase = match ExecActor::build(shared.clone(), start, control_rx).await {
                    Ok(actor) => actor.run(ready_tx).await,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        None
                    }
                };
                let mut map = shared.executions.lock().unwrap();
                // Only its own entry: after a lost lease the key may run again under a new
                // actor here.
                if map
                    .get(&actor_key)
                    .is_some_and(|h| h.task.id() == tokio::task::id())
                {
                    map.remove(&actor_key);
                }
                // A child execution of a launch-plan node ended: wake the parent's node.
                if phase.is_some()
                    && let Some((parent, node)) = shared.children.lock().unwrap().remove(&actor_key)
                    && let Some(h) = map.get(&parent)
                {
                    let _ = h.control.send(Control::ChildEnded(node));
                }
                if let Some(p) = phase {
                    let mut fin = shared.finished.lock().unwrap();
                    if fin.len() > 100_000 {
                        fin.clear();
                    }
                    fin.insert(actor_key.clone(), p);
                }
                drop(map);
                if phase.is_some() {
                    let shared = shared.clone();
                    let key = actor_key.clone();
                    tokio::spawn(async move {
                        for b in &shared.backends {
                            b.execution_ended(&key).await;
                        }
                    });
                }
                if let Some(own) = shared.config.ownership.clone() {
                    let key = actor_key.clone();
                    if phase.is_some() {
                        tokio::spawn(async move { own.ended(&key, true).await });
                    }
                }
                let _ = done_tx.send(phase);
            });
            map.insert(
                key.clone(),
                ExecHandle {
                    control: control_tx,
                    done: done_rx,
                    task,
                },
            );
        }
        match ready_rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(EngineError::ShuttingDown),
        }
    }

    /// Aborts a running execution: running attempts are aborted, nodes and the execution end
    /// ABORTED. Returns once the request is delivered (see [`Engine::wait`]).
    pub fn abort(&self, id: &WorkflowExecutionIdentifier, cause: &str) -> Result<(), EngineError> {
        let key = ExecKey::of(id);
        let map = self.shared.executions.lock().unwrap();
        let h = map
            .get(&key)
            .ok_or_else(|| EngineError::NotRunning(key.to_string()))?;
        h.control
            .send(Control::Abort(cause.to_string()))
            .map_err(|_| EngineError::NotRunning(key.to_string()))
    }

    pub fn is_running(&self, id: &WorkflowExecutionIdentifier) -> bool {
        self.shared
            .executions
            .lock()
            .unwrap()
            .contains_key(&ExecKey::of(id))
    }

    /// Executions this replica may run, among replicas on one database (`None`: all it runs).
    pub(crate) fn ownership(&self) -> Option<Arc<crate::ownership::Ownership>> {
        self.shared.config.ownership.clone()
    }

    /// Number of executions running in this engine.
    pub fn running_count(&self) -> usize {
        self.shared.executions.lock().unwrap().len()
    }

    /// Waits until the execution ends; its final phase (None if unknown to this engine or
    /// stopped by shutdown).
    pub async fn wait(&self, id: &WorkflowExecutionIdentifier) -> Option<WorkflowPhase> {
        let key = ExecKey::of(id);
        let rx = {
            let map = self.shared.executions.lock().unwrap();
            match map.get(&key) {
                Some(h) => h.done.clone(),
                None => return self.shared.finished.lock().unwrap().get(&key).copied(),
            }
        };
        let mut rx = rx;
        loop {
            if let Some(p) = *rx.borrow() {
                return Some(p);
            }
            if rx.changed().await.is_err() {
                return (*rx.borrow())
                    .or_else(|| self.shared.finished.lock().unwrap().get(&key).copied());
            }
        }
    }

    /// Stops every actor without aborting anything: running executions stay running in the
    /// journal and resume on the next start ([`Engine::resume_all`]).
    pub async fn shutdown(&self) {
        self.shared
            .shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let tasks: Vec<_> = {
            let mut map = self.shared.executions.lock().unwrap();
            map.drain()
                .map(|(_, h)| {
                    let _ = h.control.send(Control::Shutdown);
                    h.task
                })
                .collect()
        };
        for t in tasks {
            let _ = t.await;
        }
        if let Some(own) = self.ownership() {
            // Other replicas take these executions over at once instead of after the lease.
            own.release_all().await;
        }
    }

    /// Kills every actor at once, as a crash would (tests): nothing more is committed.
    pub fn crash(&self) {
        self.shared
            .shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut map = self.shared.executions.lock().unwrap();
        for (_, h) in map.drain() {
            h.task.abort();
        }
    }
}

// Keep the type reachable for users matching on resume inputs.
#[allow(dead_code)]
fn _assert_types(_: RunningExecution) {}
