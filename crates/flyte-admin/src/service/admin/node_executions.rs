//! Node executions (flyteadmin `node_execution_manager.go`): reads, lists (top level, or the
//! children of one parent node), data, dynamic workflows, and node events.

#![allow(deprecated)] // closure output fields

use flyte_store::{NodeExecutionKey, NodeExecutionRecord, StoreError};
use flyteidl::admin::{
    DynamicNodeWorkflowResponse, DynamicWorkflowNodeMetadata, GetDynamicNodeWorkflowRequest,
    NodeExecution, NodeExecutionClosure, NodeExecutionEventRequest, NodeExecutionEventResponse,
    NodeExecutionGetDataRequest, NodeExecutionGetDataResponse, NodeExecutionGetRequest,
    NodeExecutionList, NodeExecutionListRequest, NodeExecutionMetaData, UrlBlob,
    node_execution_closure,
};
use flyteidl::core::NodeExecutionIdentifier;
use prost::Message;

use super::common::{decode_stored, missing};
use super::events;
use super::executions::read_literal_map;
use super::lists::{self, ListArgs, ListFields};
use crate::error::{AdminError, AdminResult, quoted};
use crate::services::EventService;
use crate::services::executions::{self, execution_key};
use crate::state::AdminState;

pub(super) const NODE_LIST_FIELDS: ListFields = ListFields {
    what: "node executions",
    prefixes: &["node_execution"],
    filter_fields: &["node_id", "phase", "created_at", "updated_at", "started_at"],
    sort_fields: &["node_id", "phase", "created_at", "updated_at", "started_at"],
};

pub(super) fn node_key(id: Option<&NodeExecutionIdentifier>) -> AdminResult<NodeExecutionKey> {
    events::node_key(id).map_err(|r| AdminError::InvalidArgument(r.to_string()))
}

pub(super) fn to_node_execution(record: &NodeExecutionRecord) -> AdminResult<NodeExecution> {
    let closure: NodeExecutionClosure = decode_stored(&record.closure, "node execution closure")?;
    let metadata: NodeExecutionMetaData =
        decode_stored(&record.metadata, "node execution metadata")?;
    let e = &record.key.execution;
    Ok(NodeExecution {
        id: Some(NodeExecutionIdentifier {
            node_id: record.key.node_id.clone(),
            execution_id: Some(flyteidl::core::WorkflowExecutionIdentifier {
                project: e.project.clone(),
                domain: e.domain.clone(),
                name: e.name.clone(),
                ..Default::default()
            }),
        }),
        input_uri: super::inline_inputs::public_uri(&record.input_uri),
        closure: Some(closure),
        metadata: Some(metadata),
    })
}

pub(super) async fn get_record(
    state: &AdminState,
    key: &NodeExecutionKey,
) -> AdminResult<NodeExecutionRecord> {
    state
        .store
        .get_node_execution(key)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => AdminError::NotFound(format!(
                "node execution {} not found",
                quoted(&format!(
                    "{}/{}/{}/{}",
                    key.execution.project, key.execution.domain, key.execution.name, key.node_id
                ))
            )),
            other => other.into(),
        })
}

pub(super) async fn get(
    state: &AdminState,
    request: &NodeExecutionGetRequest,
) -> AdminResult<tonic::Response<NodeExecution>> {
    let key = node_key(request.id.as_ref())?;
    let record = get_record(state, &key).await?;
    Ok(tonic::Response::new(to_node_execution(&record)?))
}

pub(super) async fn list(
    state: &AdminState,
    request: &NodeExecutionListRequest,
) -> AdminResult<tonic::Response<NodeExecutionList>> {
    let execution = execution_key(request.workflow_execution_id.as_ref())?;
    executions::get_record(state, &execution).await?;
    let query = lists::query(
        ListArgs {
            limit: request.limit,
            token: &request.token,
            filters: &request.filters,
            sort_by: request.sort_by.as_ref(),
        },
        &NODE_LIST_FIELDS,
    )?;
    let parent =
        (!request.unique_parent_id.is_empty()).then_some(request.unique_parent_id.as_str());
    if let Some(parent) = parent {
        // As flyteadmin: the parent must exist.
        get_record(
            state,
            &NodeExecutionKey {
                execution: execution.clone(),
                node_id: parent.to_string(),
            },
        )
        .await?;
    }
    let page = state
        .store
        .list_node_executions(&execution, parent, &query)
        .await?;
    let node_executions = page
        .items
        .iter()
        .map(to_node_execution)
        .collect::<AdminResult<_>>()?;
    Ok(tonic::Response::new(NodeExecutionList {
        node_executions,
        token: page.next_token,
    }))
}

pub(super) async fn get_data(
    state: &AdminState,
    request: &NodeExecutionGetDataRequest,
) -> AdminResult<tonic::Response<NodeExecutionGetDataResponse>> {
    let key = node_key(request.id.as_ref())?;
    let record = get_record(state, &key).await?;
    let closure: NodeExecutionClosure = decode_stored(&record.closure, "node execution closure")?;
    let (full_inputs, inputs) = read_literal_map(state, &record.input_uri).await?;
    let (full_outputs, outputs) = match &closure.output_result {
        Some(node_execution_closure::OutputResult::OutputUri(uri)) => {
            read_literal_map(state, uri).await?
        }
        Some(node_execution_closure::OutputResult::OutputData(data)) => (
            Some(data.clone()),
            Some(UrlBlob {
                url: String::new(),
                bytes: data.encoded_len() as i64,
            }),
        ),
        _ => (None, None),
    };
    let dynamic_workflow = match &record.dynamic_workflow {
        Some(bytes) => Some(decode_stored::<DynamicWorkflowNodeMetadata>(
            bytes,
            "dynamic workflow",
        )?),
        None => None,
    };
    Ok(tonic::Response::new(NodeExecutionGetDataResponse {
        inputs,
        outputs,
        full_inputs,
        full_outputs,
        dynamic_workflow,
        // As flyteadmin: the flyte:// URLs `pyflyte fetch` and `FlyteRemote.get` read.
        flyte_urls: Some(super::data_access::node_flyte_urls(
            &key,
            !closure.deck_uri.is_empty(),
        )),
    }))
}

pub(super) async fn get_dynamic_workflow(
    state: &AdminState,
    request: &GetDynamicNodeWorkflowRequest,
) -> AdminResult<tonic::Response<DynamicNodeWorkflowResponse>> {
    let key = node_key(request.id.as_ref())?;
    let record = get_record(state, &key).await?;
    let compiled_workflow = match &record.dynamic_workflow {
        Some(bytes) => {
            decode_stored::<DynamicWorkflowNodeMetadata>(bytes, "dynamic workflow")?
                .compiled_workflow
        }
        None => None,
    };
    Ok(tonic::Response::new(DynamicNodeWorkflowResponse {
        compiled_workflow,
    }))
}

pub(super) async fn create_event(
    state: &AdminState,
    request: &NodeExecutionEventRequest,
) -> Result<tonic::Response<NodeExecutionEventResponse>, tonic::Status> {
    let event = request
        .event
        .as_ref()
        .ok_or_else(|| missing("event"))
        .map_err(tonic::Status::from)?;
    EventService::new(state.clone()).node_event(event).await?;
    Ok(tonic::Response::new(NodeExecutionEventResponse {}))
}
