//! The engine's external services (`flyte_engine::external`) over the admin's store and
//! Executions API: signals for gate nodes, child executions for launch-plan nodes, and the
//! recovery lookup of RecoverExecution. What propeller asks flyteadmin over gRPC, asked here
//! in-process: child executions are launched and aborted through the execution service
//! ([`crate::services::executions`]), so a child is created, validated and started exactly as
//! CreateExecution would.

#![allow(deprecated)] // closure output fields

use std::sync::Arc;

use async_trait::async_trait;
use flyte_engine::external::{
    ChildExecutions, ChildLaunch, ChildStatus, ExternalError, RecoveredNode, RecoveredOutputs,
    RecoveryLookup, SignalStore,
};
use flyte_store::{NodeExecutionKey, SignalKey, StoreError};
use flyteidl::admin::{
    DynamicWorkflowNodeMetadata, ExecutionClosure, NodeExecutionClosure, NodeExecutionMetaData,
    execution_closure, literal_map_blob, node_execution_closure,
};
use flyteidl::core::{
    self, ExecutionError, Literal, LiteralMap, LiteralType, WorkflowExecutionIdentifier,
    node_execution::Phase as NodePhase, workflow_execution::Phase as WorkflowPhase,
};

use super::common::decode_stored;
use super::events::is_workflow_terminal;
use crate::error::AdminError;
use crate::services::SignalService;
use crate::services::executions::{
    ExecutionService, TerminateExecution, execution_key, get_record, read_full_literal_map,
};
use crate::services::signals::GetOrCreateSignal;
use crate::state::AdminState;

/// [`SignalStore`], [`ChildExecutions`] and [`RecoveryLookup`] for the engine. Cheap to clone.
#[derive(Clone)]
pub struct EngineServices {
    state: AdminState,
    executions: ExecutionService,
    signals: SignalService,
}

impl EngineServices {
    pub fn new(state: AdminState) -> Arc<Self> {
        Arc::new(Self {
            executions: ExecutionService::new(state.clone()),
            signals: SignalService::new(state.clone()),
            state,
        })
    }
}

fn external(err: AdminError) -> ExternalError {
    match err {
        AdminError::NotFound(m) => ExternalError::NotFound(m),
        AdminError::InvalidArgument(m)
        | AdminError::AlreadyExists(m)
        | AdminError::FailedPrecondition(m)
        | AdminError::ResourceExhausted(m) => ExternalError::Invalid(m),
        AdminError::Unimplemented(m) | AdminError::Unauthenticated(m) => ExternalError::Invalid(m),
        AdminError::Internal(m) | AdminError::Unavailable(m) => ExternalError::Unavailable(m),
    }
}

fn store_error(err: StoreError) -> ExternalError {
    external(err.into())
}

// --- signals --------------------------------------------------------------------------------

#[async_trait]
impl SignalStore for EngineServices {
    async fn get_or_create(
        &self,
        execution: &WorkflowExecutionIdentifier,
        signal_id: &str,
        signal_type: &LiteralType,
    ) -> Result<Option<Literal>, ExternalError> {
        let key = SignalKey {
            execution: execution_key(Some(execution)).map_err(external)?,
            signal_id: signal_id.to_string(),
        };
        let command = GetOrCreateSignal {
            key,
            signal_type: signal_type.clone(),
        };
        let signal = self
            .signals
            .get_or_create(command)
            .await
            .map_err(external)?;
        // propeller: a signal counts as set when its literal has a value.
        Ok(signal.value.filter(|v| v.value.is_some()))
    }
}

// --- child executions ---------------------------------------------------------------------

#[async_trait]
impl ChildExecutions for EngineServices {
    async fn create_child(
        &self,
        launch: ChildLaunch,
    ) -> Result<WorkflowExecutionIdentifier, ExternalError> {
        self.executions.launch_child(launch).await.map_err(external)
    }

    async fn status(
        &self,
        child: &WorkflowExecutionIdentifier,
    ) -> Result<ChildStatus, ExternalError> {
        let key = execution_key(Some(child)).map_err(external)?;
        let record = get_record(&self.state, &key).await.map_err(external)?;
        let closure: ExecutionClosure =
            decode_stored(&record.closure, "execution closure").map_err(external)?;
        let phase = closure.phase;
        let mut status = ChildStatus {
            phase,
            terminal: is_workflow_terminal(phase),
            outputs: None,
            error: None,
        };
        match closure.output_result {
            Some(execution_closure::OutputResult::OutputData(data)) => {
                status.outputs = Some(data);
            }
            Some(execution_closure::OutputResult::Outputs(blob)) => match blob.data {
                Some(literal_map_blob::Data::Values(values)) => status.outputs = Some(values),
                Some(literal_map_blob::Data::Uri(uri)) => {
                    status.outputs = Some(
                        read_full_literal_map(&self.state, &uri)
                            .await
                            .map_err(external)?
                            .ok_or_else(|| {
                                ExternalError::Unavailable(format!(
                                    "the outputs of {key} are missing at {uri}"
                                ))
                            })?,
                    );
                }
                None => {}
            },
            Some(execution_closure::OutputResult::Error(error)) => status.error = Some(error),
            Some(execution_closure::OutputResult::AbortMetadata(abort)) => {
                status.error = Some(ExecutionError {
                    code: "ChildExecutionAborted".into(),
                    message: format!("the child execution {} was aborted: {}", key, abort.cause),
                    kind: core::execution_error::ErrorKind::User as i32,
                    ..Default::default()
                });
            }
            _ => {}
        }
        if phase == WorkflowPhase::Succeeded as i32 && status.outputs.is_none() {
            // A workflow without outputs.
            status.outputs = Some(LiteralMap::default());
        }
        Ok(status)
    }

    async fn abort(
        &self,
        child: &WorkflowExecutionIdentifier,
        cause: &str,
    ) -> Result<(), ExternalError> {
        let command = TerminateExecution {
            id: execution_key(Some(child)).map_err(external)?,
            cause: cause.to_string(),
        };
        match self.executions.terminate(command).await {
            // AlreadyFinished: nothing to abort (propeller's Kill ignores it).
            Ok(_) | Err(AdminError::NotFound(_)) => Ok(()),
            Err(err) => Err(external(err)),
        }
    }
}

// --- recovery -------------------------------------------------------------------------------

#[async_trait]
impl RecoveryLookup for EngineServices {
    async fn recover_node(
        &self,
        original: &WorkflowExecutionIdentifier,
        node_unique_id: &str,
    ) -> Result<Option<RecoveredNode>, ExternalError> {
        let key = NodeExecutionKey {
            execution: execution_key(Some(original)).map_err(external)?,
            node_id: node_unique_id.to_string(),
        };
        let record = match self.state.store.get_node_execution(&key).await {
            Ok(record) => record,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(err) => return Err(store_error(err)),
        };
        let closure: NodeExecutionClosure =
            decode_stored(&record.closure, "node execution closure").map_err(external)?;
        let metadata: NodeExecutionMetaData =
            decode_stored(&record.metadata, "node execution metadata").map_err(external)?;
        let read_inputs = async {
            if record.input_uri.is_empty() {
                return Ok(None);
            }
            if let Some(map) = super::inline_inputs::decode(&record.input_uri) {
                return map.map(Some).map_err(external);
            }
            read_full_literal_map(&self.state, &record.input_uri)
                .await
                .map_err(external)
        };
        let task_node_metadata = match &closure.target_metadata {
            Some(node_execution_closure::TargetMetadata::TaskNodeMetadata(t)) => Some(t.clone()),
            _ => None,
        };
        let phase = NodePhase::try_from(closure.phase).unwrap_or(NodePhase::Undefined);
        match phase {
            NodePhase::Succeeded | NodePhase::Recovered => {}
            NodePhase::Skipped => return Ok(None),
            _ => {
                // Partly reusable: a dynamic node whose parent task produced its spec, a task
                // with a checkpoint (propeller `attemptRecovery`).
                let dynamic_job_spec_uri = (metadata.is_dynamic
                    && !closure.dynamic_job_spec_uri.is_empty())
                .then(|| closure.dynamic_job_spec_uri.clone());
                let checkpoint_uri = task_node_metadata
                    .as_ref()
                    .map(|t| t.checkpoint_uri.clone())
                    .filter(|u| !u.is_empty());
                let launched_execution = match &closure.target_metadata {
                    Some(node_execution_closure::TargetMetadata::WorkflowNodeMetadata(w)) => {
                        w.execution_id.clone()
                    }
                    _ => None,
                };
                if dynamic_job_spec_uri.is_none()
                    && checkpoint_uri.is_none()
                    && launched_execution.is_none()
                {
                    return Ok(None);
                }
                let inputs = if dynamic_job_spec_uri.is_some() {
                    read_inputs.await?
                } else {
                    None
                };
                return Ok(Some(RecoveredNode::Partial {
                    dynamic_job_spec_uri,
                    checkpoint_uri,
                    inputs,
                    launched_execution,
                }));
            }
        }
        let (outputs, output_uri) = match &closure.output_result {
            Some(node_execution_closure::OutputResult::OutputData(data)) => (data.clone(), None),
            Some(node_execution_closure::OutputResult::OutputUri(uri)) if !uri.is_empty() => {
                let outputs = read_full_literal_map(&self.state, uri)
                    .await
                    .map_err(external)?
                    .ok_or_else(|| {
                        ExternalError::Unavailable(format!(
                            "the outputs of {key} are missing at {uri}"
                        ))
                    })?;
                (outputs, Some(uri.clone()))
            }
            // A node without outputs.
            _ => (LiteralMap::default(), None),
        };
        let dynamic_workflow = match &record.dynamic_workflow {
            Some(bytes) => Some(
                decode_stored::<DynamicWorkflowNodeMetadata>(bytes, "dynamic workflow")
                    .map_err(external)?,
            ),
            None => None,
        };
        let launched_execution = match &closure.target_metadata {
            Some(node_execution_closure::TargetMetadata::WorkflowNodeMetadata(w)) => {
                w.execution_id.clone()
            }
            _ => None,
        };
        Ok(Some(RecoveredNode::Succeeded(Box::new(RecoveredOutputs {
            outputs,
            output_uri,
            inputs: read_inputs.await?,
            deck_uri: Some(closure.deck_uri.clone()).filter(|u| !u.is_empty()),
            task_node_metadata,
            dynamic_workflow,
            launched_execution,
            is_dynamic: metadata.is_dynamic,
            is_array: metadata.is_array,
            is_parent_node: metadata.is_parent_node,
        }))))
    }
}
