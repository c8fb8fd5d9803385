//! flyteadmin's event rules, as pure functions: the current record (if any) and one event in,
//! the new record or a [`Rejection`] out. The Create*Event RPCs and the engine's event sink
//! both use them, so an event means the same thing whichever way it arrives.
//!
//! Semantics follow flyteadmin (`execution_manager.go::CreateWorkflowEvent`,
//! `node_execution_manager.go::CreateNodeEvent`, `task_execution_manager.go`, and the
//! transformers in `repositories/transformers`): a duplicate phase is ALREADY_EXISTS, leaving a
//! terminal phase is FAILED_PRECONDITION carrying `admin.EventFailureReason
//! {already_in_terminal_state{current_phase}}` in the status details, RUNNING→QUEUED and
//! ABORTING→non-terminal are refused. Outputs given inline are kept inline in the closure
//! (flyteadmin's `InlineEventDataPolicyStoreInline`).

#![allow(deprecated)] // flytekit still reads the deprecated closure fields.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use flyte_store::{
    EntityKey, ExecutionKey, ExecutionRecord, NodeExecutionKey, NodeExecutionRecord, ResourceType,
    TaskExecutionKey, TaskExecutionRecord,
};
use flyteidl::admin::{
    self, EventErrorAlreadyInTerminalState, EventFailureReason, ExecutionClosure, LiteralMapBlob,
    NodeExecutionClosure, NodeExecutionMetaData, TaskExecutionClosure, event_failure_reason,
    execution_closure, literal_map_blob, node_execution_closure, task_execution_closure,
};
use flyteidl::core::{self, TaskLog, node_execution, task_execution, workflow_execution};
use flyteidl::event::{
    ExternalResourceInfo, NodeExecutionEvent, TaskExecutionEvent, WorkflowExecutionEvent,
    node_execution_event, task_execution_event, workflow_execution_event,
};
use prost::Message;

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// This phase was already recorded (benign for producers).
    AlreadyExists(String),
    /// The record is in a terminal phase and cannot change (benign for producers).
    AlreadyTerminal {
        message: String,
        current_phase: String,
    },
    /// An invalid transition (RUNNING→QUEUED, ABORTING→non-terminal).
    FailedPrecondition(String),
    InvalidArgument(String),
    NotFound(String),
    Internal(String),
}

impl Rejection {
    /// ALREADY_EXISTS and terminal-state refusals: producers treat them as success.
    pub fn is_benign(&self) -> bool {
        matches!(self, Self::AlreadyExists(_) | Self::AlreadyTerminal { .. })
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadyExists(m)
            | Self::FailedPrecondition(m)
            | Self::InvalidArgument(m)
            | Self::NotFound(m)
            | Self::Internal(m) => f.write_str(m),
            Self::AlreadyTerminal { message, .. } => f.write_str(message),
        }
    }
}

/// `google.rpc.Status`, for the `grpc-status-details-bin` trailer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<RpcAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

impl From<Rejection> for tonic::Status {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::AlreadyExists(m) => tonic::Status::already_exists(m),
            Rejection::FailedPrecondition(m) => tonic::Status::failed_precondition(m),
            Rejection::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            Rejection::NotFound(m) => tonic::Status::not_found(m),
            Rejection::Internal(m) => {
                tracing::error!(error = %m, "internal error answered to a client");
                tonic::Status::internal(format!("internal error: {m}"))
            }
            Rejection::AlreadyTerminal {
                message,
                current_phase,
            } => {
                // As grpc-go's status.WithDetails: a google.rpc.Status with the detail as Any.
                let reason = EventFailureReason {
                    reason: Some(event_failure_reason::Reason::AlreadyInTerminalState(
                        EventErrorAlreadyInTerminalState { current_phase },
                    )),
                };
                let status = RpcStatus {
                    code: tonic::Code::FailedPrecondition as i32,
                    message: message.clone(),
                    details: vec![RpcAny {
                        type_url: "type.googleapis.com/flyteidl.admin.EventFailureReason".into(),
                        value: reason.encode_to_vec(),
                    }],
                };
                tonic::Status::with_details(
                    tonic::Code::FailedPrecondition,
                    message,
                    Bytes::from(status.encode_to_vec()),
                )
            }
        }
    }
}

/// The `admin.EventFailureReason` carried by a status, if any (tests, clients).
pub fn failure_reason(status: &tonic::Status) -> Option<EventFailureReason> {
    let details = RpcStatus::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .find(|d| d.type_url.ends_with("/flyteidl.admin.EventFailureReason"))
        .and_then(|d| EventFailureReason::decode(d.value.as_slice()).ok())
}

// --- phases and time ----------------------------------------------------------------------

pub fn workflow_phase_name(phase: i32) -> String {
    workflow_execution::Phase::try_from(phase)
        .map(|p| p.as_str_name().to_string())
        .unwrap_or_else(|_| phase.to_string())
}

pub fn node_phase_name(phase: i32) -> String {
    node_execution::Phase::try_from(phase)
        .map(|p| p.as_str_name().to_string())
        .unwrap_or_else(|_| phase.to_string())
}

pub fn task_phase_name(phase: i32) -> String {
    task_execution::Phase::try_from(phase)
        .map(|p| p.as_str_name().to_string())
        .unwrap_or_else(|_| phase.to_string())
}

fn workflow_phase(name: &str) -> workflow_execution::Phase {
    workflow_execution::Phase::from_str_name(name).unwrap_or(workflow_execution::Phase::Undefined)
}

pub fn is_workflow_terminal(phase: i32) -> bool {
    use workflow_execution::Phase as P;
    matches!(
        P::try_from(phase),
        Ok(P::Succeeded | P::Failed | P::TimedOut | P::Aborted)
    )
}

pub fn is_workflow_terminal_name(name: &str) -> bool {
    is_workflow_terminal(workflow_phase(name) as i32)
}

pub fn is_node_terminal(phase: i32) -> bool {
    use node_execution::Phase as P;
    matches!(
        P::try_from(phase),
        Ok(P::Succeeded | P::Failed | P::TimedOut | P::Aborted | P::Skipped | P::Recovered)
    )
}

pub fn is_task_terminal(phase: i32) -> bool {
    use task_execution::Phase as P;
    matches!(
        P::try_from(phase),
        Ok(P::Succeeded | P::Failed | P::Aborted)
    )
}

pub fn to_chrono(ts: &pbjson_types::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(ts.seconds, ts.nanos.clamp(0, 999_999_999) as u32).unwrap_or_default()
}

pub fn to_proto(at: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> pbjson_types::Duration {
    let d = to - from;
    let micros = d.num_microseconds().unwrap_or(0).max(0);
    pbjson_types::Duration {
        seconds: micros / 1_000_000,
        nanos: ((micros % 1_000_000) * 1000) as i32,
    }
}

/// `occurred_at`, or now if the producer left it out.
fn occurred(ts: Option<&pbjson_types::Timestamp>) -> (pbjson_types::Timestamp, DateTime<Utc>) {
    match ts {
        Some(ts) if ts.seconds != 0 || ts.nanos != 0 => (*ts, to_chrono(ts)),
        _ => {
            let now = Utc::now();
            (to_proto(now), now)
        }
    }
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, Rejection> {
    M::decode(bytes)
        .map_err(|e| Rejection::Internal(format!("stored {what} cannot be decoded: {e}")))
}

pub fn execution_key(
    id: Option<&core::WorkflowExecutionIdentifier>,
) -> Result<ExecutionKey, Rejection> {
    let id = id.ok_or_else(|| Rejection::InvalidArgument("missing execution id".into()))?;
    if id.project.is_empty() || id.domain.is_empty() || id.name.is_empty() {
        return Err(Rejection::InvalidArgument(format!(
            "execution id needs project, domain and name (got {}/{}/{})",
            id.project, id.domain, id.name
        )));
    }
    Ok(ExecutionKey {
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: id.name.clone(),
    })
}

pub fn node_key(id: Option<&core::NodeExecutionIdentifier>) -> Result<NodeExecutionKey, Rejection> {
    let id = id.ok_or_else(|| Rejection::InvalidArgument("missing node execution id".into()))?;
    if id.node_id.is_empty() {
        return Err(Rejection::InvalidArgument(
            "node execution id needs a node_id".into(),
        ));
    }
    Ok(NodeExecutionKey {
        execution: execution_key(id.execution_id.as_ref())?,
        node_id: id.node_id.clone(),
    })
}

pub fn task_key(
    node: Option<&core::NodeExecutionIdentifier>,
    task: Option<&core::Identifier>,
    retry_attempt: u32,
) -> Result<TaskExecutionKey, Rejection> {
    let task = task.ok_or_else(|| Rejection::InvalidArgument("missing task_id".into()))?;
    if task.project.is_empty() || task.domain.is_empty() || task.name.is_empty() {
        return Err(Rejection::InvalidArgument(
            "task_id needs project, domain and name".into(),
        ));
    }
    Ok(TaskExecutionKey {
        node: node_key(node)?,
        task: EntityKey {
            resource: ResourceType::Task,
            project: task.project.clone(),
            domain: task.domain.clone(),
            name: task.name.clone(),
            version: task.version.clone(),
        },
        retry_attempt,
    })
}

// --- workflow events ----------------------------------------------------------------------

/// Applies a workflow execution event to the execution.
pub fn workflow_event(
    current: &ExecutionRecord,
    event: &WorkflowExecutionEvent,
) -> Result<ExecutionRecord, Rejection> {
    use workflow_execution::Phase as P;
    let id = &current.key;
    let cur = workflow_phase(&current.phase);
    let new = P::try_from(event.phase).unwrap_or(P::Undefined);
    // Repeated QUEUED events (cluster reassignment) are permitted.
    if new != P::Queued && cur == new {
        return Err(Rejection::AlreadyExists(format!(
            "This phase {} was already recorded for workflow execution {}/{}/{}",
            cur.as_str_name(),
            id.project,
            id.domain,
            id.name
        )));
    }
    if is_workflow_terminal(cur as i32) {
        return Err(Rejection::AlreadyTerminal {
            message: format!(
                "Invalid phase change from {} to {} for workflow execution {}/{}/{}",
                cur.as_str_name(),
                new.as_str_name(),
                id.project,
                id.domain,
                id.name
            ),
            current_phase: cur.as_str_name().to_string(),
        });
    }
    if cur == P::Running && new == P::Queued {
        return Err(Rejection::FailedPrecondition(format!(
            "Cannot go from RUNNING to QUEUED for workflow execution {}/{}/{}",
            id.project, id.domain, id.name
        )));
    }
    if cur == P::Aborting && !is_workflow_terminal(new as i32) {
        return Err(Rejection::FailedPrecondition(format!(
            "Invalid phase change from aborting to {} for workflow execution {}/{}/{}",
            new.as_str_name(),
            id.project,
            id.domain,
            id.name
        )));
    }

    let mut closure: ExecutionClosure = decode(&current.closure, "execution closure")?;
    let (at_proto, at) = occurred(event.occurred_at.as_ref());
    let mut next = current.clone();
    closure.phase = new as i32;
    closure.updated_at = Some(at_proto);
    next.phase = new.as_str_name().to_string();
    next.updated_at = at;
    if new == P::Running {
        next.started_at = Some(at);
        closure.started_at = Some(at_proto);
    } else if is_workflow_terminal(new as i32)
        && let Some(started) = current.started_at
    {
        closure.duration = Some(duration(started, at));
        // The indexed duration lists filter on (`duration`, in seconds there).
        next.duration_ms = (at - started).num_milliseconds().max(0);
    }
    match &event.output_result {
        Some(workflow_execution_event::OutputResult::OutputUri(uri)) if !uri.is_empty() => {
            closure.output_result =
                Some(execution_closure::OutputResult::Outputs(LiteralMapBlob {
                    data: Some(literal_map_blob::Data::Uri(uri.clone())),
                }));
        }
        Some(workflow_execution_event::OutputResult::OutputData(data)) => {
            closure.output_result = Some(execution_closure::OutputResult::OutputData(data.clone()));
        }
        Some(workflow_execution_event::OutputResult::Error(error)) => {
            closure.output_result = Some(execution_closure::OutputResult::Error(error.clone()));
            next.error_code = error.code.clone();
        }
        _ => {}
    }
    next.closure = closure.encode_to_vec();
    Ok(next)
}

// --- node events --------------------------------------------------------------------------

/// Applies a node execution event: creates the record on its first event, updates it after.
pub fn node_event(
    current: Option<&NodeExecutionRecord>,
    event: &NodeExecutionEvent,
) -> Result<NodeExecutionRecord, Rejection> {
    use node_execution::Phase as P;
    let key = node_key(event.id.as_ref())?;
    let new = P::try_from(event.phase).unwrap_or(P::Undefined);
    let (at_proto, at) = occurred(event.occurred_at.as_ref());
    let (reported_proto, reported) = match event.reported_at.as_ref() {
        Some(ts) if ts.seconds != 0 || ts.nanos != 0 => (*ts, to_chrono(ts)),
        _ => (at_proto, at),
    };

    let (mut record, mut closure, mut metadata) = match current {
        Some(current) => {
            let cur = P::from_str_name(&current.phase).unwrap_or(P::Undefined);
            if cur == new {
                return Err(Rejection::AlreadyExists(format!(
                    "This phase was already recorded {} for {}",
                    cur.as_str_name(),
                    key
                )));
            }
            if is_node_terminal(cur as i32) {
                return Err(Rejection::AlreadyTerminal {
                    message: format!(
                        "Invalid phase change from {} to {} for {}",
                        cur.as_str_name(),
                        new.as_str_name(),
                        key
                    ),
                    current_phase: cur.as_str_name().to_string(),
                });
            }
            let closure: NodeExecutionClosure = decode(&current.closure, "node execution closure")?;
            let metadata: NodeExecutionMetaData =
                decode(&current.metadata, "node execution metadata")?;
            (current.clone(), closure, metadata)
        }
        None => {
            let record = NodeExecutionRecord {
                key: key.clone(),
                parent_node_id: event
                    .parent_node_metadata
                    .as_ref()
                    .map(|p| p.node_id.clone())
                    .filter(|p| !p.is_empty()),
                phase: String::new(),
                closure: Vec::new(),
                metadata: Vec::new(),
                input_uri: String::new(),
                dynamic_workflow: None,
                created_at: at,
                updated_at: reported,
                started_at: None,
                retry_group: String::new(),
            };
            let closure = NodeExecutionClosure {
                created_at: Some(at_proto),
                ..Default::default()
            };
            let metadata = NodeExecutionMetaData {
                retry_group: event.retry_group.clone(),
                spec_node_id: event.spec_node_id.clone(),
                ..Default::default()
            };
            (record, closure, metadata)
        }
    };

    record.phase = new.as_str_name().to_string();
    record.updated_at = reported;
    closure.phase = new as i32;
    closure.updated_at = Some(reported_proto);
    match &event.input_value {
        Some(node_execution_event::InputValue::InputUri(uri)) if !uri.is_empty() => {
            record.input_uri = uri.clone();
        }
        // Kept in the row rather than offloaded to a blob as flyteadmin does (inline_inputs).
        Some(node_execution_event::InputValue::InputData(data)) => {
            record.input_uri = super::inline_inputs::encode(data);
        }
        _ => {}
    }
    if new == P::Running {
        record.started_at = Some(at);
        closure.started_at = Some(at_proto);
        closure.deck_uri = event.deck_uri.clone();
    }
    if is_node_terminal(new as i32) {
        // A node that ends without running (start and end nodes, a cache hit) started when
        // its outcome was decided: it has a real start time, and no duration.
        if record.started_at.is_none() {
            record.started_at = Some(at);
            closure.started_at = Some(at_proto);
        }
        if let Some(started) = record.started_at {
            closure.duration = Some(duration(started, at));
        }
        match &event.output_result {
            Some(node_execution_event::OutputResult::OutputUri(uri)) if !uri.is_empty() => {
                closure.output_result =
                    Some(node_execution_closure::OutputResult::OutputUri(uri.clone()));
            }
            Some(node_execution_event::OutputResult::OutputData(data)) => {
                closure.output_result = Some(node_execution_closure::OutputResult::OutputData(
                    data.clone(),
                ));
            }
            Some(node_execution_event::OutputResult::Error(error)) => {
                closure.output_result =
                    Some(node_execution_closure::OutputResult::Error(error.clone()));
            }
            _ => {}
        }
        closure.deck_uri = event.deck_uri.clone();
    }
    match &event.target_metadata {
        Some(node_execution_event::TargetMetadata::WorkflowNodeMetadata(wf))
            if closure.target_metadata.is_none() =>
        {
            closure.target_metadata = Some(
                node_execution_closure::TargetMetadata::WorkflowNodeMetadata(
                    admin::WorkflowNodeMetadata {
                        execution_id: wf.execution_id.clone(),
                    },
                ),
            );
        }
        Some(node_execution_event::TargetMetadata::TaskNodeMetadata(task)) => {
            let mut meta = admin::TaskNodeMetadata {
                checkpoint_uri: task.checkpoint_uri.clone(),
                ..Default::default()
            };
            if task.catalog_key.is_some() {
                meta.cache_status = task.cache_status;
                meta.catalog_key = task.catalog_key.clone();
            }
            closure.target_metadata = Some(
                node_execution_closure::TargetMetadata::TaskNodeMetadata(meta),
            );
            if let Some(dynamic) = &task.dynamic_workflow {
                if !dynamic.dynamic_job_spec_uri.is_empty() {
                    closure.dynamic_job_spec_uri = dynamic.dynamic_job_spec_uri.clone();
                }
                if dynamic.compiled_workflow.is_some() {
                    // Stored as admin.DynamicWorkflowNodeMetadata, whose fields have the event
                    // message's numbers and types: encoding the event's own message gives the
                    // same bytes without a copy of a compiled workflow that may hold 100,000
                    // nodes (hundreds of MB in memory).
                    record.dynamic_workflow = Some(dynamic.encode_to_vec());
                }
            }
        }
        _ => {}
    }
    // Flags are only ever set: not every event repeats them.
    metadata.is_parent_node |= event.is_parent;
    metadata.is_dynamic |= event.is_dynamic;
    metadata.is_array |= event.is_array;
    metadata.is_eager |= event.is_eager;
    if metadata.spec_node_id.is_empty() {
        metadata.spec_node_id = event.spec_node_id.clone();
    }
    if metadata.retry_group.is_empty() {
        metadata.retry_group = event.retry_group.clone();
    }
    // Indexed too: ListNodeExecutionsForTask lists one attempt's children in the query.
    record.retry_group = metadata.retry_group.clone();
    record.closure = closure.encode_to_vec();
    record.metadata = metadata.encode_to_vec();
    Ok(record)
}

// --- task events --------------------------------------------------------------------------

/// Applies a task execution event (keyed by node execution, task id and retry attempt).
pub fn task_event(
    current: Option<&TaskExecutionRecord>,
    event: &TaskExecutionEvent,
) -> Result<TaskExecutionRecord, Rejection> {
    use task_execution::Phase as P;
    let key = task_key(
        event.parent_node_execution_id.as_ref(),
        event.task_id.as_ref(),
        event.retry_attempt,
    )?;
    let new = P::try_from(event.phase).unwrap_or(P::Undefined);
    let (at_proto, at) = occurred(event.occurred_at.as_ref());
    let (reported_proto, reported) = match event.reported_at.as_ref() {
        Some(ts) if ts.seconds != 0 || ts.nanos != 0 => (*ts, to_chrono(ts)),
        _ => (at_proto, at),
    };

    let (mut record, mut closure, previous_phase) = match current {
        Some(current) => {
            let cur = P::from_str_name(&current.phase).unwrap_or(P::Undefined);
            if cur == new && current.phase_version >= event.phase_version {
                return Err(Rejection::AlreadyExists(format!(
                    "have already recorded task execution phase {} (version: {}) for {}",
                    new.as_str_name(),
                    event.phase_version,
                    key
                )));
            }
            if is_task_terminal(cur as i32) {
                return Err(Rejection::AlreadyTerminal {
                    message: format!(
                        "invalid phase change from {} to {} for {}",
                        cur.as_str_name(),
                        new.as_str_name(),
                        key
                    ),
                    current_phase: cur.as_str_name().to_string(),
                });
            }
            let closure: TaskExecutionClosure = decode(&current.closure, "task execution closure")?;
            (current.clone(), closure, Some(cur))
        }
        None => {
            let record = TaskExecutionRecord {
                key,
                phase: String::new(),
                phase_version: 0,
                closure: Vec::new(),
                created_at: at,
                updated_at: reported,
                started_at: None,
            };
            let closure = TaskExecutionClosure {
                created_at: Some(at_proto),
                task_type: event.task_type.clone(),
                ..Default::default()
            };
            (record, closure, None)
        }
    };

    record.phase = new.as_str_name().to_string();
    record.phase_version = event.phase_version;
    record.updated_at = reported;
    closure.phase = new as i32;
    closure.updated_at = Some(reported_proto);
    if !event.task_type.is_empty() {
        closure.task_type = event.task_type.clone();
    }
    let merged = merge_logs(std::mem::take(&mut closure.logs), &event.logs);
    closure.logs = filter_logs_by_phase(merged, new);
    if !event.reasons.is_empty() {
        for reason in &event.reasons {
            closure.reasons.push(admin::Reason {
                occurred_at: reason.occurred_at,
                message: reason.reason.clone(),
            });
        }
        closure.reason = event
            .reasons
            .last()
            .map(|r| r.reason.clone())
            .unwrap_or_default();
    } else if !event.reason.is_empty() {
        if closure.reason != event.reason {
            closure.reasons.push(admin::Reason {
                occurred_at: Some(at_proto),
                message: event.reason.clone(),
            });
        }
        closure.reason = event.reason.clone();
    }
    if previous_phase != Some(P::Running) && new == P::Running && record.started_at.is_none() {
        record.started_at = Some(at);
        closure.started_at = Some(at_proto);
    }
    if is_task_terminal(new as i32) {
        if let Some(started) = record.started_at {
            closure.duration = Some(duration(started, at));
        }
        match &event.output_result {
            Some(task_execution_event::OutputResult::OutputUri(uri)) if !uri.is_empty() => {
                closure.output_result =
                    Some(task_execution_closure::OutputResult::OutputUri(uri.clone()));
            }
            Some(task_execution_event::OutputResult::OutputData(data)) => {
                closure.output_result = Some(task_execution_closure::OutputResult::OutputData(
                    data.clone(),
                ));
            }
            Some(task_execution_event::OutputResult::Error(error)) => {
                closure.output_result =
                    Some(task_execution_closure::OutputResult::Error(error.clone()));
            }
            _ => {}
        }
    }
    if let Some(custom) = &event.custom_info {
        match &mut closure.custom_info {
            Some(existing) => existing.fields.extend(custom.fields.clone()),
            None => closure.custom_info = Some(custom.clone()),
        }
    }
    if let Some(meta) = &event.metadata {
        match &mut closure.metadata {
            Some(existing) => {
                if !meta.generated_name.is_empty() {
                    existing.generated_name = meta.generated_name.clone();
                }
                if !meta.plugin_identifier.is_empty() {
                    existing.plugin_identifier = meta.plugin_identifier.clone();
                }
                merge_external_resources(
                    &mut existing.external_resources,
                    &meta.external_resources,
                );
                if !meta.resource_pool_info.is_empty() {
                    existing.resource_pool_info = meta.resource_pool_info.clone();
                }
                existing.instance_class = meta.instance_class;
            }
            None => {
                let mut meta = meta.clone();
                meta.external_resources
                    .sort_by_key(|r| (r.index, r.retry_attempt));
                closure.metadata = Some(meta);
            }
        }
    }
    if event.event_version > closure.event_version {
        closure.event_version = event.event_version;
    }
    if event.log_context.is_some() {
        closure.log_context = event.log_context.clone();
    }
    record.closure = closure.encode_to_vec();
    Ok(record)
}

/// flyteadmin's `mergeExternalResources`: each event may report only the sub-tasks (map
/// indices) that changed, so resources are kept sorted by (index, retry attempt); a reported
/// one updates its entry (external id, phase, cache status unless disabled, logs, custom info)
/// or is inserted in order.
fn merge_external_resources(
    existing: &mut Vec<ExternalResourceInfo>,
    latest: &[ExternalResourceInfo],
) {
    for reported in latest {
        let key = (reported.index, reported.retry_attempt);
        match existing.binary_search_by_key(&key, |r| (r.index, r.retry_attempt)) {
            Ok(at) => {
                let entry = &mut existing[at];
                if !reported.external_id.is_empty() {
                    entry.external_id = reported.external_id.clone();
                }
                entry.phase = reported.phase;
                if reported.cache_status != core::CatalogCacheStatus::CacheDisabled as i32 {
                    entry.cache_status = reported.cache_status;
                }
                entry.logs = merge_logs(std::mem::take(&mut entry.logs), &reported.logs);
                if reported.custom_info.is_some() {
                    entry.custom_info = reported.custom_info.clone();
                }
            }
            Err(at) => existing.insert(at, reported.clone()),
        }
    }
}

/// flyteadmin's `mergeLogs`: the latest logs, plus earlier ones not replaced by URI or name.
fn merge_logs(existing: Vec<TaskLog>, latest: &[TaskLog]) -> Vec<TaskLog> {
    if latest.is_empty() {
        return existing;
    }
    let mut logs = latest.to_vec();
    for old in existing {
        let replaced = latest
            .iter()
            .any(|l| l.uri == old.uri || (!l.name.is_empty() && l.name == old.name));
        if !replaced {
            logs.push(old);
        }
    }
    logs
}

/// flyteadmin's `filterLogsByPhase`.
fn filter_logs_by_phase(logs: Vec<TaskLog>, phase: task_execution::Phase) -> Vec<TaskLog> {
    use task_execution::Phase as P;
    logs.into_iter()
        .filter(|l| !(is_task_terminal(phase as i32) && l.hide_once_finished))
        .filter(|l| !matches!(phase, P::Queued | P::Initializing) || l.show_while_pending)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use workflow_execution::Phase as P;

    fn resource(index: u32, retry: u32, phase: i32, id: &str) -> ExternalResourceInfo {
        ExternalResourceInfo {
            external_id: id.into(),
            index,
            retry_attempt: retry,
            phase,
            ..Default::default()
        }
    }

    #[test]
    fn map_indices_reported_a_few_at_a_time_accumulate() {
        // A map task's events carry only the indices that changed: none may be lost.
        let mut kept = vec![resource(0, 0, 1, "a-0"), resource(2, 0, 1, "a-2")];
        merge_external_resources(
            &mut kept,
            &[
                resource(1, 0, 1, "a-1"),
                resource(2, 0, 3, ""),
                resource(0, 1, 1, "a-0-r1"),
            ],
        );
        let keys: Vec<_> = kept
            .iter()
            .map(|r| (r.index, r.retry_attempt, r.phase))
            .collect();
        assert_eq!(keys, [(0, 0, 1), (0, 1, 1), (1, 0, 1), (2, 0, 3)]);
        // An update without an external id keeps the one it had.
        assert_eq!(kept[3].external_id, "a-2");
    }

    fn record(phase: P) -> ExecutionRecord {
        let now = Utc::now();
        ExecutionRecord {
            key: ExecutionKey {
                project: "p".into(),
                domain: "d".into(),
                name: "n".into(),
            },
            launch_plan: None,
            workflow: None,
            task: None,
            phase: phase.as_str_name().into(),
            mode: 0,
            state: 0,
            principal: String::new(),
            parent: None,
            spec: Vec::new(),
            closure: ExecutionClosure {
                phase: phase as i32,
                ..Default::default()
            }
            .encode_to_vec(),
            inputs_uri: String::new(),
            user_inputs_uri: String::new(),
            created_at: now,
            updated_at: now,
            started_at: None,
            error_code: String::new(),
            duration_ms: 0,
            tags: Vec::new(),
            notify_phases: Vec::new(),
        }
    }

    fn event(phase: P) -> WorkflowExecutionEvent {
        WorkflowExecutionEvent {
            phase: phase as i32,
            occurred_at: Some(to_proto(Utc::now())),
            ..Default::default()
        }
    }

    #[test]
    fn workflow_transitions() {
        assert!(workflow_event(&record(P::Queued), &event(P::Queued)).is_ok());
        assert!(workflow_event(&record(P::Queued), &event(P::Running)).is_ok());
        assert!(matches!(
            workflow_event(&record(P::Running), &event(P::Running)),
            Err(Rejection::AlreadyExists(_))
        ));
        assert!(matches!(
            workflow_event(&record(P::Running), &event(P::Queued)),
            Err(Rejection::FailedPrecondition(_))
        ));
        assert!(matches!(
            workflow_event(&record(P::Aborting), &event(P::Running)),
            Err(Rejection::FailedPrecondition(_))
        ));
        let aborted = workflow_event(&record(P::Aborting), &event(P::Aborted)).unwrap();
        assert_eq!(aborted.phase, "ABORTED");
        match workflow_event(&aborted, &event(P::Running)) {
            Err(Rejection::AlreadyTerminal { current_phase, .. }) => {
                assert_eq!(current_phase, "ABORTED")
            }
            other => panic!("{other:?}"),
        }
        let running = workflow_event(&record(P::Queued), &event(P::Running)).unwrap();
        assert!(running.started_at.is_some());
    }

    #[test]
    fn a_node_that_ends_without_running_has_a_start_time() {
        // Start and end nodes and cache hits go from nothing (or QUEUED) straight to SUCCEEDED.
        let at = Utc::now();
        let ev = NodeExecutionEvent {
            id: Some(core::NodeExecutionIdentifier {
                node_id: "end-node".into(),
                execution_id: Some(core::WorkflowExecutionIdentifier {
                    project: "p".into(),
                    domain: "d".into(),
                    name: "e".into(),
                    ..Default::default()
                }),
            }),
            phase: node_execution::Phase::Succeeded as i32,
            occurred_at: Some(to_proto(at)),
            ..Default::default()
        };
        let rec = node_event(None, &ev).unwrap();
        assert_eq!(rec.started_at, Some(at));
        let closure = NodeExecutionClosure::decode(rec.closure.as_slice()).unwrap();
        assert_eq!(closure.started_at, Some(to_proto(at)));
    }

    #[test]
    fn terminal_rejection_carries_the_detail() {
        let status = tonic::Status::from(Rejection::AlreadyTerminal {
            message: "m".into(),
            current_phase: "SUCCEEDED".into(),
        });
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        match failure_reason(&status).and_then(|r| r.reason) {
            Some(event_failure_reason::Reason::AlreadyInTerminalState(s)) => {
                assert_eq!(s.current_phase, "SUCCEEDED")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn logs_merge_by_uri_and_name() {
        let log = |name: &str, uri: &str| TaskLog {
            name: name.into(),
            uri: uri.into(),
            ..Default::default()
        };
        let merged = merge_logs(
            vec![log("a", "u1"), log("b", "u2"), log("c", "u3")],
            &[log("a", "u1b"), log("x", "u2")],
        );
        let names: Vec<_> = merged.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "x", "c"]);
    }
}
