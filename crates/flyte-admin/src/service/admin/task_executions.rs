//! Task executions (flyteadmin `task_execution_manager.go`): reads, lists per node, data, and
//! task events.

#![allow(deprecated)] // closure output fields

use flyte_store::{StoreError, TaskExecutionKey, TaskExecutionRecord};
use flyteidl::admin::{
    TaskExecution, TaskExecutionClosure, TaskExecutionEventRequest, TaskExecutionEventResponse,
    TaskExecutionGetDataRequest, TaskExecutionGetDataResponse, TaskExecutionGetRequest,
    TaskExecutionList, TaskExecutionListRequest, UrlBlob, task_execution_closure,
};
use flyteidl::core::{NodeExecutionIdentifier, TaskExecutionIdentifier};
use prost::Message;

use super::common::{decode_stored, identifier, missing};
use super::events;
use super::executions::read_literal_map;
use super::lists::{self, ListArgs, ListFields};
use super::node_executions::{self, node_key};
use crate::error::{AdminError, AdminResult, quoted};
use crate::services::EventService;
use crate::state::AdminState;

const TASK_LIST_FIELDS: ListFields = ListFields {
    what: "task executions",
    prefixes: &["task_execution"],
    filter_fields: &[
        "phase",
        "retry_attempt",
        "created_at",
        "updated_at",
        "started_at",
    ],
    sort_fields: &[
        "phase",
        "retry_attempt",
        "created_at",
        "updated_at",
        "started_at",
    ],
};

fn task_key(id: Option<&TaskExecutionIdentifier>) -> AdminResult<TaskExecutionKey> {
    let id = id.ok_or_else(|| missing("id"))?;
    events::task_key(
        id.node_execution_id.as_ref(),
        id.task_id.as_ref(),
        id.retry_attempt,
    )
    .map_err(|r| AdminError::InvalidArgument(r.to_string()))
}

fn to_task_execution(record: &TaskExecutionRecord, input_uri: &str) -> AdminResult<TaskExecution> {
    let closure: TaskExecutionClosure = decode_stored(&record.closure, "task execution closure")?;
    let e = &record.key.node.execution;
    Ok(TaskExecution {
        id: Some(TaskExecutionIdentifier {
            task_id: Some(identifier(&record.key.task)),
            node_execution_id: Some(NodeExecutionIdentifier {
                node_id: record.key.node.node_id.clone(),
                execution_id: Some(flyteidl::core::WorkflowExecutionIdentifier {
                    project: e.project.clone(),
                    domain: e.domain.clone(),
                    name: e.name.clone(),
                    ..Default::default()
                }),
            }),
            retry_attempt: record.key.retry_attempt,
        }),
        input_uri: super::inline_inputs::public_uri(input_uri),
        closure: Some(closure),
        is_parent: false,
    })
}

async fn get_record(
    state: &AdminState,
    key: &TaskExecutionKey,
) -> AdminResult<TaskExecutionRecord> {
    state
        .store
        .get_task_execution(key)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => AdminError::NotFound(format!(
                "task execution {} of task {} attempt {} not found",
                quoted(&format!(
                    "{}/{}/{}/{}",
                    key.node.execution.project,
                    key.node.execution.domain,
                    key.node.execution.name,
                    key.node.node_id
                )),
                quoted(&format!(
                    "{}/{}/{}@{}",
                    key.task.project, key.task.domain, key.task.name, key.task.version
                )),
                key.retry_attempt
            )),
            other => other.into(),
        })
}

/// The task attempt reads its node's inputs.
async fn node_input_uri(state: &AdminState, key: &TaskExecutionKey) -> String {
    state
        .store
        .get_node_execution(&key.node)
        .await
        .map(|n| n.input_uri)
        .unwrap_or_default()
}

pub(super) async fn get(
    state: &AdminState,
    request: &TaskExecutionGetRequest,
) -> AdminResult<tonic::Response<TaskExecution>> {
    let key = task_key(request.id.as_ref())?;
    let record = get_record(state, &key).await?;
    let input_uri = node_input_uri(state, &key).await;
    Ok(tonic::Response::new(to_task_execution(
        &record, &input_uri,
    )?))
}

pub(super) async fn list(
    state: &AdminState,
    request: &TaskExecutionListRequest,
) -> AdminResult<tonic::Response<TaskExecutionList>> {
    let node = node_key(request.node_execution_id.as_ref())?;
    let node_record = node_executions::get_record(state, &node).await?;
    let query = lists::query(
        ListArgs {
            limit: request.limit,
            token: &request.token,
            filters: &request.filters,
            sort_by: request.sort_by.as_ref(),
        },
        &TASK_LIST_FIELDS,
    )?;
    let page = state.store.list_task_executions(&node, &query).await?;
    let task_executions = page
        .items
        .iter()
        .map(|r| to_task_execution(r, &node_record.input_uri))
        .collect::<AdminResult<_>>()?;
    Ok(tonic::Response::new(TaskExecutionList {
        task_executions,
        token: page.next_token,
    }))
}

pub(super) async fn get_data(
    state: &AdminState,
    request: &TaskExecutionGetDataRequest,
) -> AdminResult<tonic::Response<TaskExecutionGetDataResponse>> {
    let key = task_key(request.id.as_ref())?;
    let record = get_record(state, &key).await?;
    let closure: TaskExecutionClosure = decode_stored(&record.closure, "task execution closure")?;
    let input_uri = node_input_uri(state, &key).await;
    let (full_inputs, inputs) = read_literal_map(state, &input_uri).await?;
    let (full_outputs, outputs) = match &closure.output_result {
        Some(task_execution_closure::OutputResult::OutputUri(uri)) => {
            read_literal_map(state, uri).await?
        }
        Some(task_execution_closure::OutputResult::OutputData(data)) => (
            Some(data.clone()),
            Some(UrlBlob {
                url: String::new(),
                bytes: data.encoded_len() as i64,
            }),
        ),
        _ => (None, None),
    };
    Ok(tonic::Response::new(TaskExecutionGetDataResponse {
        inputs,
        outputs,
        full_inputs,
        full_outputs,
        flyte_urls: None,
    }))
}

pub(super) async fn create_event(
    state: &AdminState,
    request: &TaskExecutionEventRequest,
) -> Result<tonic::Response<TaskExecutionEventResponse>, tonic::Status> {
    let event = request
        .event
        .as_ref()
        .ok_or_else(|| tonic::Status::from(missing("event")))?;
    EventService::new(state.clone()).task_event(event).await?;
    Ok(tonic::Response::new(TaskExecutionEventResponse {}))
}
