//! How the admin hands an accepted execution to the engine, and asks it to abort one. The
//! binary implements [`ExecutionLauncher`] over `flyte_engine::Engine`; without one, executions
//! are recorded (QUEUED) and nothing runs them.

use std::collections::BTreeMap;

use async_trait::async_trait;
use flyteidl::core::{
    CompiledWorkflowClosure, Identifier, LiteralMap, WorkflowExecutionIdentifier,
};

/// One execution to run: field for field `flyte_engine::ExecutionRequest`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaunchRequest {
    pub id: WorkflowExecutionIdentifier,
    /// The compiled workflow (primary + sub-workflows + tasks).
    pub compiled: CompiledWorkflowClosure,
    /// Fully resolved inputs (launch plan defaults and fixed inputs merged).
    pub inputs: LiteralMap,
    pub launch_plan: Option<Identifier>,
    pub envs: BTreeMap<String, String>,
    pub max_parallelism: u32,
    pub overwrite_cache: bool,
    pub interruptible: Option<bool>,
    pub raw_output_data_prefix: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub principal: String,
}

#[async_trait]
pub trait ExecutionLauncher: Send + Sync + 'static {
    /// The engine's durable encoding of a request (stored with the execution in one
    /// transaction, so an accepted execution survives a crash before the engine's first write).
    fn encode(&self, request: &LaunchRequest) -> Option<Vec<u8>>;
    /// Starts running an execution that was just recorded.
    async fn start(&self, request: LaunchRequest) -> Result<(), String>;
    /// Aborts a running execution (its running task attempts are killed); the engine then
    /// reports ABORTED with the cause.
    async fn abort(&self, id: &WorkflowExecutionIdentifier, cause: &str) -> Result<(), String>;
}
