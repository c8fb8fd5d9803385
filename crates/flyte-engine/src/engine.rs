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
use crate::external::{ChildExecutions, RecoveryLookup, SignalStore};
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
    /// Launch plans and tasks dynamic workflows refer to (set once by the admin).
    pub resolver: std::sync::OnceLock<Arc<dyn EntityResolver>>,
    /// Task output caching (set once by the binary); without one nothing is cached.
    pub cache: std::sync::OnceLock<Arc<dyn flyte_cache::TaskCache>>,
    /// Signals, child executions and recovery lookups from the admin (set once).
    pub external: std::sync::OnceLock<External>,
    /// Child executions of launch-plan nodes → (parent execution, the node's unique id): a
    /// child that ends wakes its parent.
    pub children: Mutex<HashMap<ExecKey, (ExecKey, String)>>,
}

impl Shared {
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

/// The admin's services for gate nodes, launch-plan nodes and recovery.
#[derive(Clone)]
pub(crate) struct External {
    pub signals: Arc<dyn SignalStore>,
    pub children: Arc<dyn ChildExecutions>,
    pub recovery: Arc<dyn RecoveryLookup>,
}

pub(crate) struct ExecHandle {
    pub control: mpsc::UnboundedSender<Control>,
    pub done: watch::Receiver<Option<WorkflowPhase>>,
    pub task: tokio::task::JoinHandle<()>,
}

/// The execution engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    journal: Arc<dyn EngineJournal>,
}

impl Engine {
    /// `backends` are tried in order: an attempt goes to the first whose `handles()` is true.
    pub fn new(
        config: EngineConfig,
        blob: BlobStore,
        backends: Vec<Arc<dyn TaskBackend>>,
        sink: Arc<dyn EventSink>,
        journal: Arc<dyn EngineJournal>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                blob,
                backends,
                sink,
                executions: Mutex::new(HashMap::new()),
                finished: Mutex::new(HashMap::new()),
                shutting_down: Default::default(),
                storage_abandoned: Default::default(),
                resolver: Default::default(),
                cache: Default::default(),
                external: Default::default(),
                children: Mutex::new(HashMap::new()),
            }),
            journal,
        }
    }

    /// Sets where dynamic workflows find the launch plans and tasks they refer to but do not
    /// carry (call once, before executions start). Returns false if one was already set.
    /// Without one, a dynamic workflow may use only the tasks its `DynamicJobSpec` carries or
    /// its execution already has, and no launch plans.
    pub fn set_resolver(&self, resolver: Arc<dyn EntityResolver>) -> bool {
        self.shared.resolver.set(resolver).is_ok()
    }

    /// Sets the admin's services the engine calls at run time (call once, before executions
    /// start): signals for `wait_for_input`/`approve` gates, child executions for launch-plan
    /// nodes, and what nodes did in the original execution of a recovery. Returns false if
    /// they were already set. Without them such gate and launch-plan nodes fail, and
    /// recoveries run every node.
    pub fn set_external(
        &self,
        signals: Arc<dyn SignalStore>,
        children: Arc<dyn ChildExecutions>,
        recovery: Arc<dyn RecoveryLookup>,
    ) -> bool {
        self.shared
            .external
            .set(External {
                signals,
                children,
                recovery,
            })
            .is_ok()
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

    /// Sets the task output cache (call once, before executions start). Returns false if one
    /// was already set. Without one, `cache=True` tasks run every time (CACHE_DISABLED).
    pub fn set_cache(&self, cache: Arc<dyn flyte_cache::TaskCache>) -> bool {
        self.shared.cache.set(cache).is_ok()
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
        let running = self.journal.load_running().await?;
        let mut n = 0;
        for r in running {
            let key = r.request.key();
            match self.spawn(exec::Start::Resume(Box::new(r))).await {
                Ok(()) => n += 1,
                Err(EngineError::AlreadyRunning(_)) => {}
                Err(e) => tracing::error!(execution = %key, error = %e, "cannot resume execution"),
            }
        }
        Ok(n)
    }

    async fn spawn(&self, start: exec::Start) -> Result<(), EngineError> {
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
                map.remove(&actor_key);
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
                    fin.insert(actor_key, p);
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
