//! Events (flyteadmin `CreateWorkflowEvent`, `CreateNodeEvent`, `CreateTaskEvent`): an event
//! reported by a producer (propeller upstream; here the admin's clients) is applied to its
//! record with the phase rules of [`crate::service::admin::events`], read, decided and written
//! in one transition of the execution, so concurrent events see each other's writes (no
//! duplicate applied twice, no phase going back). The engine's own events take the same rules
//! through its event sink (`service/admin/event_sink.rs`).

use flyte_store::{EngineChange, NodeExecutionKey, StateBatch, StateRead, StoreError};
use flyteidl::event::{NodeExecutionEvent, TaskExecutionEvent, WorkflowExecutionEvent};

use crate::error::AdminError;
use crate::service::admin::events::{self, Rejection};
use crate::state::AdminState;

/// Why an event was not recorded: refused by the event rules (its gRPC answer carries
/// flyteadmin's `EventFailureReason` details where it has one), or failed like any command.
#[derive(Debug)]
pub enum EventError {
    Rejected(Rejection),
    Failed(AdminError),
}

impl EventError {
    /// ALREADY_EXISTS and terminal-state refusals: producers treat them as success.
    pub fn is_benign(&self) -> bool {
        matches!(self, Self::Rejected(r) if r.is_benign())
    }
}

impl From<Rejection> for EventError {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(rejection)
    }
}

impl From<AdminError> for EventError {
    fn from(err: AdminError) -> Self {
        Self::Failed(err)
    }
}

impl From<StoreError> for EventError {
    fn from(err: StoreError) -> Self {
        Self::Failed(err.into())
    }
}

impl From<EventError> for tonic::Status {
    fn from(err: EventError) -> Self {
        match err {
            EventError::Rejected(rejection) => rejection.into(),
            EventError::Failed(err) => err.into(),
        }
    }
}

/// Event commands. Cheap to clone.
#[derive(Clone)]
pub struct EventService {
    state: AdminState,
}

impl EventService {
    pub fn new(state: AdminState) -> Self {
        Self { state }
    }

    /// Applies a workflow execution event to its execution; a terminal phase also ends the
    /// engine's record of it.
    pub async fn workflow_event(&self, event: &WorkflowExecutionEvent) -> Result<(), EventError> {
        let key = events::execution_key(event.execution_id.as_ref())?;
        let finished = events::is_workflow_terminal(event.phase);
        let mut refused = None;
        let written = self
            .state
            .store
            .transition(
                StateRead {
                    execution: key.clone(),
                    ..Default::default()
                },
                Box::new(
                    |snapshot| match events::workflow_event(&snapshot.execution, event) {
                        Ok(next) => {
                            let mut batch = StateBatch {
                                executions: vec![next],
                                ..Default::default()
                            };
                            if finished {
                                batch.engine.push(EngineChange::Finished {
                                    execution: key.clone(),
                                });
                            }
                            batch
                        }
                        Err(rejection) => {
                            refused = Some(rejection);
                            StateBatch::default()
                        }
                    },
                ),
            )
            .await;
        match written {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(Rejection::NotFound(format!("{key} not found")).into());
            }
            Err(err) => return Err(err.into()),
        }
        match refused {
            Some(rejection) => Err(rejection.into()),
            None => Ok(()),
        }
    }

    /// Applies a node execution event (creating the node's record at its first event); a
    /// node with a parent needs the parent's record.
    pub async fn node_event(&self, event: &NodeExecutionEvent) -> Result<(), EventError> {
        let key = events::node_key(event.id.as_ref())?;
        let parent_id = event
            .parent_node_metadata
            .as_ref()
            .map(|p| p.node_id.clone())
            .filter(|id| !id.is_empty());
        let mut node_ids = vec![key.node_id.clone()];
        node_ids.extend(parent_id.clone());
        let mut refused: Option<EventError> = None;
        let written = self
            .state
            .store
            .transition(
                StateRead {
                    execution: key.execution.clone(),
                    node_ids,
                    task_node_ids: Vec::new(),
                },
                Box::new(|snapshot| {
                    let current = snapshot
                        .node_executions
                        .iter()
                        .find(|n| n.key.node_id == key.node_id);
                    if current.is_none()
                        && let Some(parent) = &parent_id
                        && !snapshot
                            .node_executions
                            .iter()
                            .any(|n| &n.key.node_id == parent)
                    {
                        let parent_key = NodeExecutionKey {
                            execution: key.execution.clone(),
                            node_id: parent.clone(),
                        };
                        refused =
                            Some(AdminError::NotFound(format!("{parent_key} not found")).into());
                        return StateBatch::default();
                    }
                    match events::node_event(current, event) {
                        Ok(next) => StateBatch {
                            node_executions: vec![next],
                            ..Default::default()
                        },
                        Err(rejection) => {
                            refused = Some(rejection.into());
                            StateBatch::default()
                        }
                    }
                }),
            )
            .await;
        match written {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(Rejection::NotFound(format!(
                    "Failed to get existing execution id: {} not found",
                    key.execution
                ))
                .into());
            }
            Err(err) => return Err(err.into()),
        }
        match refused {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Applies a task execution event to its attempt's record; its node must have a record.
    pub async fn task_event(&self, event: &TaskExecutionEvent) -> Result<(), EventError> {
        let key = events::task_key(
            event.parent_node_execution_id.as_ref(),
            event.task_id.as_ref(),
            event.retry_attempt,
        )?;
        let mut refused: Option<Rejection> = None;
        let written = self
            .state
            .store
            .transition(
                StateRead {
                    execution: key.node.execution.clone(),
                    node_ids: vec![key.node.node_id.clone()],
                    task_node_ids: vec![key.node.node_id.clone()],
                },
                Box::new(|snapshot| {
                    if snapshot.node_executions.is_empty() {
                        refused = Some(Rejection::NotFound(format!("{} not found", key.node)));
                        return StateBatch::default();
                    }
                    let current = snapshot.task_executions.iter().find(|t| t.key == key);
                    match events::task_event(current, event) {
                        Ok(next) => StateBatch {
                            task_executions: vec![next],
                            ..Default::default()
                        },
                        Err(rejection) => {
                            refused = Some(rejection);
                            StateBatch::default()
                        }
                    }
                }),
            )
            .await;
        match written {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(Rejection::NotFound(format!("{} not found", key.node)).into());
            }
            Err(err) => return Err(err.into()),
        }
        match refused {
            Some(rejection) => Err(rejection.into()),
            None => Ok(()),
        }
    }
}
