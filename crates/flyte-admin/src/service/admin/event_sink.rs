//! The engine's [`EventSink`] and [`EngineJournal`] over the metadata store: each
//! [`EventBatch`] (one wake of one execution) goes through the same event rules as the
//! Create*Event RPCs and is written, with the engine's journal delta, in ONE store
//! transition ([`flyte_store::MetadataStore::transition`]): the rules decide on the records as
//! they are under the execution's row lock, so a terminate, an archive or a duplicate event
//! racing the batch is never overwritten nor applied twice.
//!
//! Events the rules refuse as duplicates or as changes to a terminal record are dropped
//! silently (propeller treats those answers as success); other refusals are logged and dropped.
//! A batch for an execution the store does not know is rejected; store failures are transient
//! (the engine retries the batch).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use flyte_engine::{
    EngineJournal, EventBatch, EventSink, ExecutionRequest, NodeStateRecord, RunningExecution,
    SinkError, WorkflowStateRecord,
};
use flyte_store::{
    EngineChange, ExecutionKey, ExecutionRecord, MetadataStore, NodeExecutionRecord, StateBatch,
    StateRead, StateSnapshot, StoreError, TaskExecutionKey, TaskExecutionRecord,
};

use flyteidl::admin::ExecutionClosure;
use flyteidl::admin::execution_closure::OutputResult;
use prost::Message;

use super::events::{self, Rejection};
use crate::state::AdminState;

/// Applies engine batches to the store (cheap to clone).
#[derive(Clone)]
pub struct StoreEventSink {
    store: Arc<dyn MetadataStore>,
    /// Replicas: this replica's id; each batch commits only while it holds the execution's
    /// lease ([`MetadataStore::transition_fenced`]). None (one server, SQLite): unfenced.
    fence: Option<String>,
}

/// The engine's event sink over the admin's store; `fence`: this replica's id when engine
/// replicas share the database (each batch then commits only under its lease).
pub fn event_sink(state: &AdminState, fence: Option<String>) -> Arc<dyn EventSink> {
    Arc::new(StoreEventSink::new(state.store.clone()).fenced(fence))
}

/// The engine's journal over the admin's store (the same tables the sink writes).
pub fn engine_journal(state: &AdminState) -> Arc<dyn EngineJournal> {
    Arc::new(StoreEventSink::new(state.store.clone()))
}

fn store_error(err: StoreError) -> SinkError {
    match err {
        StoreError::NotFound(what) => SinkError::Rejected(format!("{what} not found")),
        StoreError::InvalidArgument(msg) => SinkError::Rejected(msg),
        StoreError::LeaseLost(what) => SinkError::LeaseLost(what),
        other => SinkError::Transient(other.to_string()),
    }
}

fn skipped(kind: &str, id: &dyn std::fmt::Display, rejection: &Rejection) {
    if rejection.is_benign() {
        tracing::debug!(%id, %rejection, "{kind} event already applied");
    } else {
        tracing::warn!(%id, %rejection, "{kind} event refused");
    }
}

impl StoreEventSink {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store, fence: None }
    }

    /// Fences every batch by `owner`'s execution lease (None: unfenced).
    pub fn fenced(mut self, owner: Option<String>) -> Self {
        self.fence = owner;
        self
    }

    /// What one batch reads: its execution, the nodes its events name and, if it has task
    /// events, their task executions.
    fn reads(batch: &EventBatch) -> Result<StateRead, SinkError> {
        let execution = events::execution_key(Some(&batch.execution))
            .map_err(|r| SinkError::Rejected(r.to_string()))?;
        let mut node_ids: Vec<String> = batch
            .node_events
            .iter()
            .filter_map(|e| e.id.as_ref().map(|id| id.node_id.clone()))
            .chain(batch.task_events.iter().filter_map(|e| {
                e.parent_node_execution_id
                    .as_ref()
                    .map(|id| id.node_id.clone())
            }))
            .collect();
        node_ids.sort();
        node_ids.dedup();
        let task_node_ids = if batch.task_events.is_empty() {
            Vec::new()
        } else {
            node_ids.clone()
        };
        Ok(StateRead {
            execution,
            node_ids,
            task_node_ids,
        })
    }

    /// The store changes one batch makes on the current records (the event rules; run inside
    /// the store's transition, so the records are the latest and stay so until it commits).
    pub fn changes(batch: &EventBatch, current: StateSnapshot) -> StateBatch {
        let StateSnapshot {
            execution,
            node_executions,
            task_executions,
        } = current;
        let key = execution.key.clone();
        let mut out = StateBatch::default();

        if !batch.workflow_events.is_empty() {
            let mut current = execution;
            let mut changed = false;
            for event in &batch.workflow_events {
                match events::workflow_event(&current, event) {
                    Ok(next) => {
                        current = next;
                        changed = true;
                    }
                    Err(rejection) => skipped("workflow", &key, &rejection),
                }
            }
            if changed {
                out.executions.push(current);
            }
        }

        // Node executions: the current records of every node the batch touches.
        let mut nodes: HashMap<String, NodeExecutionRecord> = node_executions
            .into_iter()
            .map(|record| (record.key.node_id.clone(), record))
            .collect();
        let mut changed_nodes: Vec<String> = Vec::new();
        for event in &batch.node_events {
            let Some(node_id) = event.id.as_ref().map(|id| id.node_id.clone()) else {
                continue;
            };
            match events::node_event(nodes.get(&node_id), event) {
                Ok(next) => {
                    if next.key.execution != key {
                        tracing::warn!(execution = %key, node = %next.key, "node event of another execution dropped");
                        continue;
                    }
                    nodes.insert(node_id.clone(), next);
                    changed_nodes.push(node_id);
                }
                Err(rejection) => skipped("node", &format!("{key}/{node_id}"), &rejection),
            }
        }
        changed_nodes.sort();
        changed_nodes.dedup();
        out.node_executions = changed_nodes
            .iter()
            .filter_map(|id| nodes.get(id).cloned())
            .collect();

        // Task executions of those nodes.
        if !batch.task_events.is_empty() {
            let mut tasks: HashMap<TaskExecutionKey, TaskExecutionRecord> = task_executions
                .into_iter()
                .map(|r| (r.key.clone(), r))
                .collect();
            let mut changed: Vec<TaskExecutionKey> = Vec::new();
            for event in &batch.task_events {
                let task_key = match events::task_key(
                    event.parent_node_execution_id.as_ref(),
                    event.task_id.as_ref(),
                    event.retry_attempt,
                ) {
                    Ok(k) => k,
                    Err(rejection) => {
                        skipped("task", &key, &rejection);
                        continue;
                    }
                };
                if task_key.node.execution != key || !nodes.contains_key(&task_key.node.node_id) {
                    tracing::warn!(task = %task_key, "task event for a node execution that does not exist dropped");
                    continue;
                }
                match events::task_event(tasks.get(&task_key), event) {
                    Ok(next) => {
                        tasks.insert(task_key.clone(), next);
                        changed.push(task_key);
                    }
                    Err(rejection) => skipped("task", &task_key, &rejection),
                }
            }
            changed.sort();
            changed.dedup();
            out.task_executions = changed
                .iter()
                .filter_map(|k| tasks.get(k).cloned())
                .collect();
        }

        let journal = &batch.journal;
        if let Some(request) = &journal.started {
            out.engine.push(EngineChange::Started {
                execution: key.clone(),
                request: request.to_bytes(),
            });
        }
        if let Some(workflow) = &journal.workflow {
            out.engine.push(EngineChange::Workflow {
                execution: key.clone(),
                state: workflow.to_bytes(),
            });
        }
        for node in &journal.nodes {
            out.engine.push(EngineChange::Node {
                execution: key.clone(),
                node_id: node.node_id.clone(),
                state: node.to_bytes(),
            });
        }
        if journal.finished {
            out.engine.push(EngineChange::Finished { execution: key });
        }
        out
    }
}

#[async_trait]
impl EventSink for StoreEventSink {
    async fn record(&self, batch: &EventBatch) -> Result<(), SinkError> {
        let read = Self::reads(batch)?;
        // The executions the batch changes, for the metrics and logs once it is stored.
        let mut executions = Vec::new();
        let decide: flyte_store::Decide<'_> = Box::new(|current| {
            let changes = Self::changes(batch, current);
            executions.clone_from(&changes.executions);
            changes
        });
        match &self.fence {
            None => self.store.transition(read, decide).await,
            Some(owner) => self.store.transition_fenced(read, owner, decide).await,
        }
        .map_err(store_error)?;
        let phases: Vec<_> = executions
            .iter()
            .map(|e| {
                let terminal = matches!(
                    e.phase.as_str(),
                    "SUCCEEDED" | "FAILED" | "ABORTED" | "TIMED_OUT"
                );
                let ran = e
                    .started_at
                    .filter(|_| terminal)
                    .map(|s| (e.updated_at - s).as_seconds_f64().max(0.0));
                (
                    e.key.project.clone(),
                    e.key.domain.clone(),
                    e.phase.clone(),
                    ran,
                )
            })
            .collect();
        let ended: Vec<_> = executions
            .iter()
            .filter(|e| {
                matches!(
                    e.phase.as_str(),
                    "SUCCEEDED" | "FAILED" | "ABORTED" | "TIMED_OUT"
                )
            })
            .cloned()
            .collect();
        for (project, domain, phase, ran) in phases {
            crate::router::metrics::execution_phase(&project, &domain, &phase, ran);
        }
        for execution in &ended {
            log_end(execution);
        }
        Ok(())
    }
}

/// The one log line of an execution's end, once it is stored: its phase, how long it ran,
/// and for a failure the error's kind, code and message (INFO; WARN for a failure).
fn log_end(e: &ExecutionRecord) {
    let started = e.started_at.unwrap_or(e.created_at);
    let duration_s = (e.updated_at - started).as_seconds_f64().max(0.0);
    let closure = ExecutionClosure::decode(e.closure.as_slice()).unwrap_or_default();
    let (project, domain, name) = (&e.key.project, &e.key.domain, &e.key.name);
    match closure.output_result {
        Some(OutputResult::Error(err)) => tracing::warn!(
            project = %project,
            domain = %domain,
            execution = %name,
            phase = %e.phase,
            duration_s,
            error_kind = err.kind().as_str_name(),
            error_code = %err.code,
            error = %err.message,
            "execution ended"
        ),
        Some(OutputResult::AbortMetadata(abort)) => tracing::info!(
            project = %project,
            domain = %domain,
            execution = %name,
            phase = %e.phase,
            duration_s,
            cause = %abort.cause,
            "execution ended"
        ),
        _ => tracing::info!(
            project = %project,
            domain = %domain,
            execution = %name,
            phase = %e.phase,
            duration_s,
            "execution ended"
        ),
    }
}

#[async_trait]
impl EngineJournal for StoreEventSink {
    async fn load_running(&self) -> Result<Vec<RunningExecution>, SinkError> {
        let states = self
            .store
            .load_engine_state()
            .await
            .map_err(|e| SinkError::Transient(e.to_string()))?;
        let mut out = Vec::with_capacity(states.len());
        for state in states {
            let execution: &ExecutionKey = &state.execution;
            let request = match ExecutionRequest::from_bytes(&state.request) {
                Ok(r) => r,
                Err(err) => {
                    tracing::error!(%execution, error = %err, "journaled request cannot be decoded; not resumed");
                    continue;
                }
            };
            let workflow = match state
                .workflow
                .as_deref()
                .map(WorkflowStateRecord::from_bytes)
            {
                Some(Ok(w)) => Some(w),
                Some(Err(err)) => {
                    tracing::error!(%execution, error = %err, "journaled workflow state cannot be decoded; not resumed");
                    continue;
                }
                None => None,
            };
            let mut nodes = Vec::with_capacity(state.nodes.len());
            for (node_id, bytes) in &state.nodes {
                match NodeStateRecord::from_bytes(bytes) {
                    Ok(n) => nodes.push(n),
                    Err(err) => {
                        tracing::error!(%execution, node = %node_id, error = %err, "journaled node state cannot be decoded; skipped")
                    }
                }
            }
            out.push(RunningExecution {
                request,
                workflow,
                nodes,
                pending_abort: state.pending_abort,
            });
        }
        Ok(out)
    }
}
