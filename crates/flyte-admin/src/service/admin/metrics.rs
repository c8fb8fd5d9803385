//! `GetExecutionMetrics`: the span tree `pyflyte metrics dump/explain` and
//! `FlyteRemote.get_execution_metrics` show, built from the execution, node execution and task
//! execution records (flyteadmin `metrics_manager.go`'s categories: `WORKFLOW_SETUP`,
//! `NODE_SETUP`, `TASK_SETUP`, `TASK_RUNTIME`, `TASK_TEARDOWN`, `NODE_RESET`, `NODE_IDLE`,
//! `NODE_TEARDOWN`, `WORKFLOW_TEARDOWN`).
//!
//! A reference span (workflow, node, task attempt) covers its record's `created_at` to
//! `updated_at`; operation spans split that time. `depth` limits how many entity levels are
//! broken down, as in flyteadmin (0: the execution's span alone; negative: no limit). Unlike
//! flyteadmin, the time between an upstream node ending and a node being created
//! (`NODE_TRANSITION`) is not reported: the engine creates a node when it becomes ready.

#![allow(deprecated)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use flyte_store::{ExecutionKey, ExecutionRecord, NodeExecutionRecord, TaskExecutionRecord};
use flyteidl::admin::{
    NodeExecutionClosure, NodeExecutionMetaData, TaskExecutionClosure,
    WorkflowExecutionGetMetricsRequest, WorkflowExecutionGetMetricsResponse,
    node_execution_closure,
};
use flyteidl::core::{
    NodeExecutionIdentifier, Span, TaskExecutionIdentifier, WorkflowExecutionIdentifier, span,
};

use super::common::{decode_stored, identifier, timestamp};
use crate::error::AdminResult;
use crate::services::executions::{execution_key, get_record, wf_exec_id};
use crate::state::AdminState;

const START_NODE: &str = "start-node";
const END_NODE: &str = "end-node";

type SpanFuture<'a> = Pin<Box<dyn Future<Output = AdminResult<Span>> + Send + 'a>>;

fn op(start: DateTime<Utc>, end: DateTime<Utc>, name: &str) -> Span {
    Span {
        start_time: Some(timestamp(start)),
        end_time: Some(timestamp(end.max(start))),
        spans: Vec::new(),
        id: Some(span::Id::OperationId(name.to_string())),
    }
}

fn reference(start: DateTime<Utc>, end: DateTime<Utc>, id: span::Id, spans: Vec<Span>) -> Span {
    Span {
        start_time: Some(timestamp(start)),
        end_time: Some(timestamp(end.max(start))),
        spans,
        id: Some(id),
    }
}

pub(super) async fn get(
    state: &AdminState,
    request: &WorkflowExecutionGetMetricsRequest,
) -> AdminResult<tonic::Response<WorkflowExecutionGetMetricsResponse>> {
    let key = execution_key(request.id.as_ref())?;
    let record = get_record(state, &key).await?;
    let span = workflow_span(state, record, request.depth).await?;
    Ok(tonic::Response::new(WorkflowExecutionGetMetricsResponse {
        span: Some(span),
    }))
}

/// The node and task executions of one execution, each read in one query (a huge run is
/// two reads, not one per node), grouped by parent and by node.
#[derive(Default)]
struct Records {
    /// Node executions by parent node (`None`: top level), oldest first.
    children: HashMap<Option<String>, Vec<NodeExecutionRecord>>,
    /// Task executions by node, oldest first.
    tasks: HashMap<String, Vec<TaskExecutionRecord>>,
}

impl Records {
    async fn load(
        state: &AdminState,
        execution: &ExecutionKey,
        with_tasks: bool,
    ) -> AdminResult<Self> {
        let mut children: HashMap<Option<String>, Vec<NodeExecutionRecord>> = HashMap::new();
        for node in state.store.get_all_node_executions(execution).await? {
            children
                .entry(node.parent_node_id.clone())
                .or_default()
                .push(node);
        }
        for nodes in children.values_mut() {
            nodes.sort_by(|a, b| {
                (a.created_at, &a.key.node_id).cmp(&(b.created_at, &b.key.node_id))
            });
        }
        let mut tasks: HashMap<String, Vec<TaskExecutionRecord>> = HashMap::new();
        if with_tasks {
            for task in state.store.get_all_task_executions(execution).await? {
                tasks
                    .entry(task.key.node.node_id.clone())
                    .or_default()
                    .push(task);
            }
            for attempts in tasks.values_mut() {
                attempts.sort_by_key(|t| (t.created_at, t.key.retry_attempt));
            }
        }
        Ok(Self { children, tasks })
    }

    /// The node executions under `parent` (`None`: top level), oldest first.
    fn under(&self, parent: Option<&str>) -> &[NodeExecutionRecord] {
        self.children
            .get(&parent.map(str::to_owned))
            .map_or(&[], Vec::as_slice)
    }
}

fn spec_id(record: &NodeExecutionRecord) -> AdminResult<String> {
    let metadata: NodeExecutionMetaData =
        decode_stored(&record.metadata, "node execution metadata")?;
    Ok(if metadata.spec_node_id.is_empty() {
        record.key.node_id.clone()
    } else {
        metadata.spec_node_id
    })
}

/// Spans of the nodes of one (sub)workflow: its own nodes (not start and end), and the
/// start node's end as the time the workflow got going.
async fn scope_spans(
    state: &AdminState,
    records: &Records,
    nodes: &[NodeExecutionRecord],
    depth: i32,
) -> AdminResult<(Option<DateTime<Utc>>, Vec<Span>, Option<DateTime<Utc>>)> {
    let mut started = None;
    let mut spans = Vec::new();
    let mut last_end: Option<DateTime<Utc>> = None;
    for node in nodes {
        let spec = spec_id(node)?;
        if spec == START_NODE {
            started = Some(node.updated_at);
            continue;
        }
        if spec == END_NODE {
            continue;
        }
        last_end = Some(last_end.map_or(node.updated_at, |t| t.max(node.updated_at)));
        spans.push(node_span(state, records, node, depth).await?);
    }
    Ok((started, spans, last_end))
}

fn workflow_span(state: &AdminState, record: ExecutionRecord, depth: i32) -> SpanFuture<'_> {
    Box::pin(async move {
        let (created, updated) = (record.created_at, record.updated_at);
        let mut spans = Vec::new();
        if depth != 0 {
            // Task executions are read only if node spans are broken down.
            let records = Records::load(state, &record.key, depth - 1 != 0).await?;
            let nodes = records.under(None);
            let (started, children, last_end) =
                scope_spans(state, &records, nodes, depth - 1).await?;
            match started {
                None => spans.push(op(created, updated, "WORKFLOW_SETUP")),
                Some(started) => {
                    spans.push(op(created, started, "WORKFLOW_SETUP"));
                    spans.extend(children);
                    if let Some(end) = last_end
                        && updated >= end
                    {
                        spans.push(op(end, updated, "WORKFLOW_TEARDOWN"));
                    }
                }
            }
        }
        Ok(reference(
            created,
            updated,
            span::Id::WorkflowId(wf_exec_id(&record.key)),
            spans,
        ))
    })
}

fn task_span(task: &TaskExecutionRecord) -> AdminResult<Span> {
    let closure: TaskExecutionClosure = decode_stored(&task.closure, "task execution closure")?;
    let (created, updated) = (task.created_at, task.updated_at);
    let mut spans = Vec::new();
    match task.started_at {
        None => spans.push(op(created, updated, "TASK_SETUP")),
        Some(started) => {
            spans.push(op(created, started, "TASK_SETUP"));
            let ran = closure
                .duration
                .filter(|d| d.seconds > 0 || d.nanos > 0)
                .and_then(|d| {
                    chrono::Duration::try_seconds(d.seconds)
                        .map(|s| s + chrono::Duration::nanoseconds(i64::from(d.nanos)))
                });
            match ran {
                None => spans.push(op(started, updated, "TASK_RUNTIME")),
                Some(ran) => {
                    let end = started + ran;
                    spans.push(op(started, end, "TASK_RUNTIME"));
                    if updated >= end {
                        spans.push(op(end, updated, "TASK_TEARDOWN"));
                    }
                }
            }
        }
    }
    let node = &task.key.node;
    Ok(reference(
        created,
        updated,
        span::Id::TaskId(TaskExecutionIdentifier {
            task_id: Some(identifier(&task.key.task)),
            node_execution_id: Some(NodeExecutionIdentifier {
                node_id: node.node_id.clone(),
                execution_id: Some(WorkflowExecutionIdentifier {
                    project: node.execution.project.clone(),
                    domain: node.execution.domain.clone(),
                    name: node.execution.name.clone(),
                    ..Default::default()
                }),
            }),
            retry_attempt: task.key.retry_attempt,
        }),
        spans,
    ))
}

fn node_span<'a>(
    state: &'a AdminState,
    records: &'a Records,
    node: &'a NodeExecutionRecord,
    depth: i32,
) -> SpanFuture<'a> {
    Box::pin(async move {
        let (created, updated) = (node.created_at, node.updated_at);
        let mut spans = Vec::new();
        if depth != 0 {
            let closure: NodeExecutionClosure =
                decode_stored(&node.closure, "node execution closure")?;
            let metadata: NodeExecutionMetaData =
                decode_stored(&node.metadata, "node execution metadata")?;
            let child_execution = match &closure.target_metadata {
                Some(node_execution_closure::TargetMetadata::WorkflowNodeMetadata(w)) => {
                    w.execution_id.clone()
                }
                _ => None,
            };
            let tasks = records
                .tasks
                .get(&node.key.node_id)
                .map_or(&[][..], Vec::as_slice);
            let children = if metadata.is_parent_node {
                records.under(Some(&node.key.node_id))
            } else {
                &[]
            };
            if let Some(child) = child_execution {
                // A launch-plan node: the execution it launched, nested.
                match get_record(state, &execution_key(Some(&child))?).await {
                    Ok(record) => {
                        spans.push(op(created, record.created_at, "NODE_SETUP"));
                        let child_updated = record.updated_at;
                        spans.push(workflow_span(state, record, depth - 1).await?);
                        if updated >= child_updated {
                            spans.push(op(child_updated, updated, "NODE_TEARDOWN"));
                        }
                    }
                    Err(_) => spans.push(op(created, updated, "NODE_SETUP")),
                }
            } else if let Some(first) = tasks.first() {
                spans.push(op(created, first.created_at, "NODE_SETUP"));
                for (i, task) in tasks.iter().enumerate() {
                    if i > 0 {
                        spans.push(op(tasks[i - 1].updated_at, task.created_at, "NODE_RESET"));
                    }
                    if depth - 1 != 0 {
                        spans.push(task_span(task)?);
                    }
                }
                let last = tasks.last().map_or(created, |t| t.updated_at);
                if children.is_empty() {
                    if updated >= last {
                        spans.push(op(last, updated, "NODE_TEARDOWN"));
                    }
                } else {
                    // A dynamic task: the workflow it returned runs after it.
                    let (started, child_spans, last_end) =
                        scope_spans(state, records, children, depth - 1).await?;
                    spans.push(op(last, started.unwrap_or(last), "NODE_RESET"));
                    spans.extend(child_spans);
                    if let Some(end) = last_end
                        && updated >= end
                    {
                        spans.push(op(end, updated, "NODE_TEARDOWN"));
                    }
                }
            } else if !children.is_empty() {
                // A subworkflow or a branch: its nodes.
                let (started, child_spans, last_end) =
                    scope_spans(state, records, children, depth - 1).await?;
                let first = started.unwrap_or_else(|| children[0].created_at);
                spans.push(op(created, first, "NODE_SETUP"));
                spans.extend(child_spans);
                if let Some(end) = last_end
                    && updated >= end
                {
                    spans.push(op(end, updated, "NODE_TEARDOWN"));
                }
            } else {
                // Gates, sleeps, cache hits: waiting once started.
                match node.started_at {
                    Some(started) if started > created => {
                        spans.push(op(created, started, "NODE_SETUP"));
                        spans.push(op(started, updated, "NODE_IDLE"));
                    }
                    _ => spans.push(op(created, updated, "NODE_SETUP")),
                }
            }
        }
        let e = &node.key.execution;
        Ok(reference(
            created,
            updated,
            span::Id::NodeId(NodeExecutionIdentifier {
                node_id: node.key.node_id.clone(),
                execution_id: Some(WorkflowExecutionIdentifier {
                    project: e.project.clone(),
                    domain: e.domain.clone(),
                    name: e.name.clone(),
                    ..Default::default()
                }),
            }),
            spans,
        ))
    })
}
