//! How the admin hands an accepted execution to the engine, and asks it to abort one.
//! [`ExecutionLauncher`] is implemented here for `flyte_engine::Engine`; the binary puts one
//! in [`crate::AdminState::launcher`]. Without one, executions are recorded (QUEUED) and
//! nothing runs them.

use async_trait::async_trait;
use flyteidl::core::WorkflowExecutionIdentifier;

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
        match flyte_engine::Engine::abort(self, id, cause) {
            Ok(()) => Ok(true),
            Err(flyte_engine::EngineError::NotRunning(_)) => Ok(false),
            Err(err) => Err(err.to_string()),
        }
    }

    async fn signal_set(&self, execution: &WorkflowExecutionIdentifier, signal_id: &str) {
        flyte_engine::Engine::signal_set(self, execution, signal_id);
    }
}
