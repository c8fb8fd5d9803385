//! How the admin hands an accepted execution to the engine, and asks it to abort one.
//! [`ExecutionLauncher`] is implemented here for `flyte_engine::Engine` and its weak
//! `EngineHandle`; [`with_engine`] builds the engine over the admin's store and puts its
//! handle in [`crate::AdminState::launcher`]. Without a launcher, executions are recorded
//! (QUEUED) and nothing runs them.

use std::sync::Arc;

use async_trait::async_trait;
use flyte_engine::backend::TaskBackend;
use flyte_engine::external::ExternalServices;
use flyte_engine::{Engine, EngineConfig, EngineDeps, EngineHandle};
use flyteidl::core::WorkflowExecutionIdentifier;

use crate::service::admin::event_sink::{engine_journal, event_sink};
use crate::service::admin::{EngineServices, StoreEntityResolver};
use crate::state::AdminState;

/// One execution to run (the engine's own request type).
pub use flyte_engine::ExecutionRequest as LaunchRequest;

#[async_trait]
pub trait ExecutionLauncher: Send + Sync + 'static {
    /// Starts running an execution that was just recorded (its request is already journaled
    /// with it, so a crash before the engine's first write still resumes it).
    async fn start(&self, request: LaunchRequest) -> Result<(), String>;
    /// Aborts a running execution (its running task attempts are killed); the engine then
    /// reports ABORTED with the cause. `Ok(false)`: the engine is not running it.
    async fn abort(&self, id: &WorkflowExecutionIdentifier, cause: &str) -> Result<bool, String>;
    /// A signal of `execution` was just set (SetSignal): wake the gate node waiting for it, so
    /// it reads the value now (`flyte_engine::external::SignalStore`) instead of at its next
    /// poll. The default does nothing (an engine that polls).
    async fn signal_set(&self, execution: &WorkflowExecutionIdentifier, signal_id: &str) {
        let _ = (execution, signal_id);
    }
    /// Where the executions it runs announce their committed changes (the watch endpoints,
    /// `crate::live`); `None`: nothing is announced.
    fn live(&self) -> Option<crate::live::LiveHub> {
        None
    }
}

#[async_trait]
impl ExecutionLauncher for flyte_engine::Engine {
    async fn start(&self, request: LaunchRequest) -> Result<(), String> {
        match self.start_execution(request).await {
            Ok(()) | Err(flyte_engine::EngineError::AlreadyRunning(_)) => Ok(()),
            Err(err) => Err(err.to_string()),
        }
    }

    async fn abort(&self, id: &WorkflowExecutionIdentifier, cause: &str) -> Result<bool, String> {
        // Here, or at the replica that owns it (replicas on one PostgreSQL).
        self.abort_anywhere(id, cause)
            .await
            .map_err(|err| err.to_string())
    }

    async fn signal_set(&self, execution: &WorkflowExecutionIdentifier, signal_id: &str) {
        self.signal_set_anywhere(execution, signal_id).await;
    }
}

#[async_trait]
impl ExecutionLauncher for EngineHandle {
    async fn start(&self, request: LaunchRequest) -> Result<(), String> {
        match self.engine() {
            Some(engine) => ExecutionLauncher::start(&engine, request).await,
            None => Err(flyte_engine::EngineError::ShuttingDown.to_string()),
        }
    }

    async fn abort(&self, id: &WorkflowExecutionIdentifier, cause: &str) -> Result<bool, String> {
        match self.engine() {
            Some(engine) => ExecutionLauncher::abort(&engine, id, cause).await,
            // Stopped: as after a shutdown, nothing runs here.
            None => Ok(false),
        }
    }

    async fn signal_set(&self, execution: &WorkflowExecutionIdentifier, signal_id: &str) {
        if let Some(engine) = self.engine() {
            ExecutionLauncher::signal_set(&engine, execution, signal_id).await;
        }
    }
}

/// What the engine needs besides what the admin gives it.
pub struct EngineParts {
    pub config: EngineConfig,
    /// Tried in order: an attempt goes to the first whose `handles()` is true.
    pub backends: Vec<Arc<dyn TaskBackend>>,
    /// Task output caching (`None`: `cache=True` tasks run every time).
    pub cache: Option<Arc<dyn flyte_cache::TaskCache>>,
}

/// The engine over `state`'s store and blobs, built whole: its events and journal go to the
/// store, dynamic workflows resolve entities from it, and gates, launch-plan nodes and
/// recoveries use [`EngineServices`]. The admin↔engine cycle (child launches go through the
/// executions service, which starts them on this engine) is closed by the engine's weak
/// handle, which becomes the returned state's launcher before the engine exists
/// (docs/adr-005-service-layer.md). Not yet resumed.
pub fn with_engine(mut state: AdminState, parts: EngineParts) -> (AdminState, Arc<Engine>) {
    // Replicas: every batch is fenced by this replica's lease on the execution.
    let fence = parts
        .config
        .ownership
        .as_ref()
        .map(|o| o.replica_id().to_owned());
    // Committed batches are announced to the watch endpoints (crate::live).
    let hub = crate::live::LiveHub::new();
    let engine = Engine::new_cyclic(|handle| {
        state.launcher = Some(Arc::new(crate::live::LiveLauncher::new(
            handle,
            hub.clone(),
        )));
        EngineDeps {
            config: parts.config,
            blob: state.blob.clone(),
            backends: parts.backends,
            sink: crate::live::PublishingSink::wrap(event_sink(&state, fence), hub),
            journal: engine_journal(&state),
            resolver: StoreEntityResolver::new(state.clone()),
            external: ExternalServices::from(EngineServices::new(state.clone())),
            cache: parts.cache,
        }
    });
    (state, Arc::new(engine))
}
