//! Executions over gRPC (flyteadmin `execution_manager.go`): CreateExecution, Relaunch,
//! Recover and Terminate convert the request into a command of the execution service
//! ([`crate::services::executions`], which owns the lifecycle) at the edge; Get/List/Update,
//! GetExecutionData and the workflow events that move an execution along are served here.

#![allow(deprecated)] // ExecutionCreateRequest.inputs, closure outputs

use chrono::Utc;
use flyte_core::ids::ResourceType;
use flyte_store::{ExecutionRecord, ExecutionScope, StateBatch};
use flyteidl::admin::{
    self, Execution, ExecutionClosure, ExecutionCreateRequest, ExecutionCreateResponse,
    ExecutionList, ExecutionSpec, ExecutionStateChangeDetails, ExecutionTerminateRequest,
    ExecutionTerminateResponse, ExecutionUpdateRequest, ExecutionUpdateResponse,
    ResourceListRequest, UrlBlob, WorkflowExecutionEventRequest, WorkflowExecutionEventResponse,
    WorkflowExecutionGetDataRequest, WorkflowExecutionGetDataResponse, WorkflowExecutionGetRequest,
    execution_closure, literal_map_blob,
};
use flyteidl::core::{self, LiteralMap};
use prost::Message;

use super::common::{checked_scope, decode_stored, entity_key, missing};
use super::entities::Encoded;
use super::events::{Rejection, to_proto};
use super::lists::{self, ListArgs, ListFields};
use crate::error::{AdminError, AdminResult};
use crate::fidelity;
use crate::services::EventService;
use crate::services::executions::{
    CreateExecution, EXECUTION_ACTIVE, ExecutionService, ExecutionSource, RecoverExecution,
    RelaunchExecution, TerminateExecution, Terminated, execution_key, get_record, transition,
    wf_exec_id,
};
use crate::state::AdminState;

/// `ExecutionCreateRequest.spec`.
const CREATE_SPEC_FIELD: u32 = 4;
/// `Execution.spec`.
const EXECUTION_SPEC_FIELD: u32 = 2;
/// `admin.ExecutionState`.
const EXECUTION_ARCHIVED: i32 = 1;

// --- commands -------------------------------------------------------------------------------

/// CreateExecution: the request as an [`CreateExecution`] command (the spec's bytes as the
/// client sent them kept, so unknown fields survive).
pub(super) async fn create(
    executions: &ExecutionService,
    request: tonic::Request<ExecutionCreateRequest>,
) -> AdminResult<tonic::Response<ExecutionCreateResponse>> {
    let raw_spec = fidelity::raw_field(&request, &[CREATE_SPEC_FIELD], |r| {
        r.spec
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default()
    });
    let request = request.into_inner();
    let spec = request.spec.ok_or_else(|| missing("spec"))?;
    let target = spec
        .launch_plan
        .as_ref()
        .ok_or_else(|| missing("spec.launch_plan"))?;
    let source = match core::ResourceType::try_from(target.resource_type) {
        Ok(core::ResourceType::LaunchPlan) => {
            ExecutionSource::LaunchPlan(entity_key(ResourceType::LaunchPlan, target))
        }
        Ok(core::ResourceType::Task) => {
            ExecutionSource::Task(entity_key(ResourceType::Task, target))
        }
        _ => {
            return Err(AdminError::InvalidArgument(format!(
                "invalid reference entity resource type {} in spec.launch_plan: only LAUNCH_PLAN \
                 and TASK can be executed",
                target.resource_type
            )));
        }
    };
    let inputs = request
        .inputs
        .or_else(|| spec.inputs.clone())
        .unwrap_or_default();
    let id = executions
        .create(CreateExecution {
            project: request.project,
            domain: request.domain,
            name: Some(request.name).filter(|n| !n.is_empty()),
            source,
            inputs,
            spec,
            raw_spec: Some(raw_spec),
        })
        .await?;
    Ok(tonic::Response::new(ExecutionCreateResponse {
        id: Some(id),
    }))
}

pub(super) async fn relaunch(
    executions: &ExecutionService,
    request: &admin::ExecutionRelaunchRequest,
) -> AdminResult<tonic::Response<ExecutionCreateResponse>> {
    let id = executions
        .relaunch(RelaunchExecution {
            original: execution_key(request.id.as_ref())?,
            name: Some(request.name.clone()).filter(|n| !n.is_empty()),
            overwrite_cache: request.overwrite_cache,
        })
        .await?;
    Ok(tonic::Response::new(ExecutionCreateResponse {
        id: Some(id),
    }))
}

pub(super) async fn recover(
    executions: &ExecutionService,
    request: &admin::ExecutionRecoverRequest,
) -> AdminResult<tonic::Response<ExecutionCreateResponse>> {
    let id = executions
        .recover(RecoverExecution {
            original: execution_key(request.id.as_ref())?,
            name: Some(request.name.clone()).filter(|n| !n.is_empty()),
            parent_node_execution: request
                .metadata
                .as_ref()
                .and_then(|m| m.parent_node_execution.clone()),
        })
        .await?;
    Ok(tonic::Response::new(ExecutionCreateResponse {
        id: Some(id),
    }))
}

/// TerminateExecution; an execution already finished is refused with FAILED_PRECONDITION and
/// flyteadmin's `AlreadyInTerminalState` details.
pub(super) async fn terminate(
    executions: &ExecutionService,
    request: &ExecutionTerminateRequest,
) -> AdminResult<Result<tonic::Response<ExecutionTerminateResponse>, tonic::Status>> {
    let command = TerminateExecution {
        id: execution_key(request.id.as_ref())?,
        cause: request.cause.clone(),
    };
    Ok(match executions.terminate(command).await? {
        Terminated::Aborting => Ok(tonic::Response::new(ExecutionTerminateResponse {})),
        Terminated::AlreadyFinished { message, phase } => Err(Rejection::AlreadyTerminal {
            message,
            current_phase: phase,
        }
        .into()),
    })
}

// --- reads ----------------------------------------------------------------------------------

pub(super) fn to_execution(record: &ExecutionRecord) -> AdminResult<Encoded<Execution>> {
    let spec: ExecutionSpec = decode_stored(&record.spec, "execution spec")?;
    let closure: ExecutionClosure = decode_stored(&record.closure, "execution closure")?;
    let execution = Execution {
        id: Some(wf_exec_id(&record.key)),
        spec: Some(spec),
        closure: Some(closure),
    };
    Ok(Encoded::spliced(
        execution,
        &[EXECUTION_SPEC_FIELD],
        &record.spec,
    ))
}

pub(super) async fn get(
    state: &AdminState,
    request: &WorkflowExecutionGetRequest,
) -> AdminResult<tonic::Response<Execution>> {
    let key = execution_key(request.id.as_ref())?;
    let record = get_record(state, &key).await?;
    Ok(to_execution(&record)?.into_response())
}

const EXECUTION_LIST_FIELDS: ListFields = ListFields {
    what: "executions",
    prefixes: &["execution", "launch_plan", "workflow", "task", "admin_tag"],
    filter_fields: &[
        "name",
        "phase",
        "mode",
        "state",
        "user",
        "principal",
        "created_at",
        "updated_at",
        "started_at",
        "version",
        "launch_plan_name",
        "launch_plan_version",
        "workflow_name",
        "workflow_version",
        "task_name",
        "task_version",
        "error_code",
        "duration",
    ],
    sort_fields: &[
        "name",
        "phase",
        "mode",
        "state",
        "created_at",
        "updated_at",
        "started_at",
        "duration",
    ],
};

/// The store column of a (possibly entity-prefixed) execution filter field.
fn execution_column(entity: Option<&str>, field: &str) -> AdminResult<String> {
    Ok(match (entity, field) {
        (Some(e @ ("launch_plan" | "workflow" | "task")), f @ ("name" | "version")) => {
            format!("{e}_{f}")
        }
        // flyteadmin's tag filter: `admin_tag.name`, matched against ExecutionSpec.tags.
        (Some("admin_tag"), "name") => "admin_tag".to_string(),
        (Some("admin_tag"), f) => {
            return Err(AdminError::InvalidArgument(format!(
                "executions can be filtered on their tags as admin_tag.name, not admin_tag.{f}"
            )));
        }
        (Some("launch_plan" | "workflow" | "task"), f) => {
            return Err(AdminError::InvalidArgument(format!(
                "executions can be filtered on the name and version of their launch entity, not \
                 on '{f}'"
            )));
        }
        (_, "user") => "principal".to_string(),
        (_, f) => f.to_string(),
    })
}

pub(super) async fn list(
    state: &AdminState,
    request: &ResourceListRequest,
) -> AdminResult<tonic::Response<ExecutionList>> {
    let id = request.id.as_ref().ok_or_else(|| missing("id"))?;
    checked_scope(&id.project, &id.domain)?;
    if request.limit == 0 {
        return Err(AdminError::InvalidArgument(
            "invalid value for limit: 0; listing executions needs a limit of at least 1".into(),
        ));
    }
    // Prefixes choose the column, so they are resolved here rather than dropped.
    let parsed = flyte_core::filters::parse(&request.filters)
        .map_err(|e| AdminError::InvalidArgument(e.to_string()))?;
    let mut filters = Vec::with_capacity(parsed.len());
    let mut has_state = false;
    for mut f in parsed {
        if let Some(entity) = f.entity.as_deref()
            && !EXECUTION_LIST_FIELDS.prefixes.contains(&entity)
        {
            return Err(AdminError::InvalidArgument(format!(
                "filter field '{entity}.{}' cannot be used when listing executions",
                f.field
            )));
        }
        if !EXECUTION_LIST_FIELDS
            .filter_fields
            .contains(&f.field.as_str())
        {
            return Err(AdminError::InvalidArgument(format!(
                "unknown filter field '{}' for listing executions (supported: {}; tags: \
                 admin_tag.name)",
                f.field,
                EXECUTION_LIST_FIELDS.filter_fields.join(", ")
            )));
        }
        let column = execution_column(f.entity.as_deref(), &f.field)?;
        if column == "version" {
            return Err(AdminError::InvalidArgument(
                "filter on version needs an entity: launch_plan.version, workflow.version or \
                 task.version"
                    .into(),
            ));
        }
        has_state |= column == "state";
        f.entity = None;
        f.field = column;
        filters.push(f);
    }
    // flyteadmin lists ACTIVE executions unless a state filter says otherwise.
    if !has_state {
        filters.push(flyte_core::filters::Filter {
            entity: None,
            field: "state".into(),
            op: flyte_core::filters::FilterOp::Eq,
            values: vec![EXECUTION_ACTIVE.to_string()],
        });
    }
    let sort = lists::query(
        ListArgs {
            limit: request.limit,
            token: &request.token,
            filters: "",
            sort_by: request.sort_by.as_ref(),
        },
        &EXECUTION_LIST_FIELDS,
    )?;
    let query = flyte_store::ListQuery { filters, ..sort };
    let scope = ExecutionScope {
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: (!id.name.is_empty()).then(|| id.name.clone()),
        // flyteadmin lists child executions (launch-plan nodes) too; filter on `mode` to
        // leave them out.
        top_level_only: false,
    };
    let page = state.store.list_executions(&scope, &query).await?;
    let encoded = page
        .items
        .iter()
        .map(to_execution)
        .collect::<AdminResult<Vec<_>>>()?;
    let (typed, bytes): (Vec<_>, Vec<_>) = encoded.into_iter().map(|e| (e.typed, e.bytes)).unzip();
    let mut out = ExecutionList {
        executions: Vec::new(),
        token: page.next_token.clone(),
    }
    .encode_to_vec();
    out.extend(fidelity::repeated(1, &bytes));
    Ok(fidelity::respond(
        ExecutionList {
            executions: typed,
            token: page.next_token,
        },
        out,
    ))
}

pub(super) async fn update(
    state: &AdminState,
    request: &ExecutionUpdateRequest,
) -> AdminResult<tonic::Response<ExecutionUpdateResponse>> {
    let key = execution_key(request.id.as_ref())?;
    if request.state != EXECUTION_ACTIVE && request.state != EXECUTION_ARCHIVED {
        return Err(AdminError::InvalidArgument(format!(
            "invalid execution state {} (expected EXECUTION_ACTIVE or EXECUTION_ARCHIVED)",
            request.state
        )));
    }
    let occurred_at = to_proto(Utc::now());
    transition(state, &key, |mut record| {
        let mut closure: ExecutionClosure =
            decode_stored(&record.closure, "execution closure").map_err(Err)?;
        closure.state_change_details = Some(ExecutionStateChangeDetails {
            state: request.state,
            occurred_at: Some(occurred_at),
            principal: String::new(),
        });
        record.state = request.state;
        record.closure = closure.encode_to_vec();
        Ok((
            StateBatch {
                executions: vec![record],
                ..Default::default()
            },
            Ok(()),
        ))
    })
    .await??;
    Ok(tonic::Response::new(ExecutionUpdateResponse {}))
}

// --- data -----------------------------------------------------------------------------------

/// Reads a literal map by URL: inline (`full`) and as a `UrlBlob` (native URL and size).
pub(super) async fn read_literal_map(
    state: &AdminState,
    url: &str,
) -> AdminResult<(Option<LiteralMap>, Option<UrlBlob>)> {
    if url.is_empty() {
        return Ok((None, None));
    }
    if let Some(map) = super::inline_inputs::decode(url) {
        return map.map(super::inline_inputs::data_response);
    }
    let Some(path) = state.blob.path_from_native_url(url) else {
        // Outside our store: the client reads it itself.
        return Ok((
            None,
            Some(UrlBlob {
                url: url.to_string(),
                bytes: 0,
            }),
        ));
    };
    match state.blob.get(&path).await {
        Ok(bytes) => {
            let blob = UrlBlob {
                url: url.to_string(),
                bytes: bytes.len() as i64,
            };
            if bytes.len() > state.config.max_inline_bytes {
                return Ok((None, Some(blob)));
            }
            let map = LiteralMap::decode(bytes)
                .map_err(|e| AdminError::Internal(format!("{url} is not a literal map: {e}")))?;
            Ok((Some(map), Some(blob)))
        }
        Err(flyte_blob::BlobError::NotFound(_)) => Ok((None, None)),
        Err(err) => Err(AdminError::Internal(format!("reading {url}: {err}"))),
    }
}

pub(super) async fn get_data(
    state: &AdminState,
    request: &WorkflowExecutionGetDataRequest,
) -> AdminResult<tonic::Response<WorkflowExecutionGetDataResponse>> {
    let key = execution_key(request.id.as_ref())?;
    let record = get_record(state, &key).await?;
    let closure: ExecutionClosure = decode_stored(&record.closure, "execution closure")?;
    let (full_inputs, inputs) = read_literal_map(state, &record.inputs_uri).await?;
    let (full_outputs, outputs) = match &closure.output_result {
        Some(execution_closure::OutputResult::OutputData(data)) => (
            Some(data.clone()),
            Some(UrlBlob {
                url: String::new(),
                bytes: data.encoded_len() as i64,
            }),
        ),
        Some(execution_closure::OutputResult::Outputs(blob)) => match &blob.data {
            Some(literal_map_blob::Data::Values(values)) => (Some(values.clone()), None),
            Some(literal_map_blob::Data::Uri(uri)) => read_literal_map(state, uri).await?,
            None => (None, None),
        },
        _ => (None, None),
    };
    Ok(tonic::Response::new(WorkflowExecutionGetDataResponse {
        outputs,
        inputs,
        full_inputs,
        full_outputs,
    }))
}

// --- events ---------------------------------------------------------------------------------

pub(super) async fn create_workflow_event(
    state: &AdminState,
    request: &WorkflowExecutionEventRequest,
) -> Result<tonic::Response<WorkflowExecutionEventResponse>, tonic::Status> {
    let event = request.event.as_ref().ok_or_else(|| {
        tonic::Status::invalid_argument("Workflow event handler was called without event")
    })?;
    EventService::new(state.clone())
        .workflow_event(event)
        .await?;
    Ok(tonic::Response::new(WorkflowExecutionEventResponse {}))
}
