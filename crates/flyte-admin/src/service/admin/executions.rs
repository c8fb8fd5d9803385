//! Executions (flyteadmin `execution_manager.go`): CreateExecution from a launch plan or a
//! task (single-task executions get a synthesized `.flytegen.<task>` workflow and launch plan,
//! as `util/single_task_execution.go` makes them), Get/List/Update/Terminate, GetExecutionData,
//! and the workflow events that move an execution along.

#![allow(deprecated)] // ExecutionSpec.inputs, ExecutionCreateRequest.inputs, closure outputs

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::Utc;
use flyte_core::ids::ResourceType;
use flyte_core::types::{display_type, literal_is_instance, literal_type_of};
use flyte_store::{
    EngineChange, EntityKey, ExecutionKey, ExecutionRecord, ExecutionScope, StateBatch, StateRead,
    StoreError,
};
use flyteidl::admin::{
    self, Execution, ExecutionClosure, ExecutionCreateRequest, ExecutionCreateResponse,
    ExecutionList, ExecutionSpec, ExecutionStateChangeDetails, ExecutionTerminateRequest,
    ExecutionTerminateResponse, ExecutionUpdateRequest, ExecutionUpdateResponse, LaunchPlanSpec,
    NamedEntityIdentifier, NamedEntityMetadata, NamedEntityUpdateRequest, ResourceListRequest,
    UrlBlob, WorkflowClosure, WorkflowCreateRequest, WorkflowExecutionEventRequest,
    WorkflowExecutionEventResponse, WorkflowExecutionGetDataRequest,
    WorkflowExecutionGetDataResponse, WorkflowExecutionGetRequest, WorkflowSpec, execution_closure,
    literal_map_blob,
};
use flyteidl::core::{
    self, Binding, BindingData, Identifier, LiteralMap, Node, NodeMetadata, OutputReference,
    ParameterMap, RetryStrategy, TaskNode, VariableMap, WorkflowExecutionIdentifier,
    WorkflowTemplate, binding_data, node, task_node,
};
use prost::Message;
use rand::Rng;

use super::common::{
    checked_scope, decode_stored, ensure_project_domain, entity_key, identifier, missing,
};
use super::entities::Encoded;
use super::events::{self, Rejection, is_workflow_terminal_name, to_proto};
use super::lists::{self, ListArgs, ListFields};
use super::{launch_plans, named_entities, tasks, workflows};
use crate::error::{AdminError, AdminResult, quoted};
use crate::fidelity;
use crate::launcher::LaunchRequest;
use crate::state::AdminState;

/// `ExecutionCreateRequest.spec`.
const CREATE_SPEC_FIELD: u32 = 4;
/// `Execution.spec`.
const EXECUTION_SPEC_FIELD: u32 = 2;
/// flyteadmin's `allowedExecutionNameLength` (a Kubernetes label value).
const MAX_NAME_LENGTH: usize = 63;
/// flyteadmin's `ExecutionIDLength`.
const GENERATED_NAME_LENGTH: usize = 20;
/// `admin.ExecutionState`.
const EXECUTION_ACTIVE: i32 = 0;
const EXECUTION_ARCHIVED: i32 = 1;

pub(super) fn execution_key(id: Option<&WorkflowExecutionIdentifier>) -> AdminResult<ExecutionKey> {
    events::execution_key(id).map_err(|r| AdminError::InvalidArgument(r.to_string()))
}

fn wf_exec_id(key: &ExecutionKey) -> WorkflowExecutionIdentifier {
    WorkflowExecutionIdentifier {
        project: key.project.clone(),
        domain: key.domain.clone(),
        name: key.name.clone(),
        ..Default::default()
    }
}

/// `a` followed by 19 random lowercase letters and digits (flyteadmin's `GetExecutionName`).
pub fn generate_name() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let mut name = String::with_capacity(GENERATED_NAME_LENGTH);
    name.push('a');
    for _ in 1..GENERATED_NAME_LENGTH {
        name.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    name
}

/// flyteadmin's `CheckValidExecutionID`: `^[a-z][a-z\-0-9]*$` (checked lowercased), at most
/// 63 characters.
pub fn validate_name(name: &str) -> AdminResult<()> {
    if name.len() > MAX_NAME_LENGTH {
        return Err(AdminError::InvalidArgument(format!(
            "execution name {} is {} characters long; at most {MAX_NAME_LENGTH} are allowed",
            quoted(name),
            name.len()
        )));
    }
    let lower = name.to_lowercase();
    let mut chars = lower.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(AdminError::InvalidArgument(format!(
            "invalid execution name {}: it must start with a letter and contain only \
             letters, digits and '-' (regex '^[a-z][a-z\\-0-9]*$')",
            quoted(name)
        )));
    }
    Ok(())
}

/// flyteadmin's `CheckAndFetchInputsForExecution`: user inputs must be expected and of the
/// expected type, required ones present, defaults filled in, fixed inputs not overridden.
pub fn merge_inputs(
    user: &LiteralMap,
    fixed: Option<&LiteralMap>,
    expected: Option<&ParameterMap>,
) -> AdminResult<LiteralMap> {
    // Before anything walks them (type checks recurse): the documented nesting bound.
    for (name, value) in &user.literals {
        flyte_core::types::check_literal_depth(value)
            .map_err(|e| AdminError::InvalidArgument(format!("input {}: {e}", quoted(name))))?;
    }
    let empty = BTreeMap::new();
    let expected = expected.map(|p| &p.parameters).unwrap_or(&empty);
    let mut out: BTreeMap<String, core::Literal> = BTreeMap::new();
    let mut unknown: Vec<&str> = user
        .literals
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .map(String::as_str)
        .collect();
    if let Some(fixed) = fixed {
        for name in fixed.literals.keys() {
            if user.literals.contains_key(name) {
                return Err(AdminError::InvalidArgument(format!(
                    "fixed input {} of the launch plan cannot be overridden",
                    quoted(name)
                )));
            }
        }
        unknown.retain(|k| !fixed.literals.contains_key(*k));
    }
    if !unknown.is_empty() {
        unknown.sort();
        let mut known: Vec<&str> = expected.keys().map(String::as_str).collect();
        known.sort();
        return Err(AdminError::InvalidArgument(format!(
            "invalid input(s) {}: the launch plan has no such input (its inputs: {})",
            unknown.join(", "),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    let mut missing_inputs = Vec::new();
    for name in names {
        let parameter = &expected[name];
        match user.literals.get(name) {
            Some(value) => {
                let expected_type = parameter.var.as_ref().and_then(|v| v.r#type.as_ref());
                if let Some(t) = expected_type
                    && !literal_is_instance(value, t)
                {
                    return Err(AdminError::InvalidArgument(format!(
                        "invalid {name} input wrong type. Expected {}, but got {}",
                        display_type(t),
                        display_type(&literal_type_of(value))
                    )));
                }
                out.insert(name.clone(), value.clone());
            }
            None => match &parameter.behavior {
                Some(core::parameter::Behavior::Required(true)) => {
                    missing_inputs.push(name.as_str())
                }
                Some(core::parameter::Behavior::Default(default)) => {
                    out.insert(name.clone(), default.clone());
                }
                _ => {}
            },
        }
    }
    if !missing_inputs.is_empty() {
        return Err(AdminError::InvalidArgument(format!(
            "missing required input(s): {}",
            missing_inputs.join(", ")
        )));
    }
    if let Some(fixed) = fixed {
        for (name, value) in &fixed.literals {
            out.insert(name.clone(), value.clone());
        }
    }
    Ok(LiteralMap { literals: out })
}

// --- CreateExecution ----------------------------------------------------------------------

pub(super) async fn create(
    state: &AdminState,
    request: tonic::Request<ExecutionCreateRequest>,
) -> AdminResult<tonic::Response<ExecutionCreateResponse>> {
    let raw_spec = fidelity::raw_field(&request, &[CREATE_SPEC_FIELD], |r| {
        r.spec
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default()
    });
    let request = request.into_inner();
    if request.project.is_empty() {
        return Err(missing("project"));
    }
    if request.domain.is_empty() {
        return Err(missing("domain"));
    }
    if !request.name.is_empty() {
        validate_name(&request.name)?;
    }
    ensure_project_domain(state, &request.project, &request.domain).await?;
    let spec = request.spec.as_ref().ok_or_else(|| missing("spec"))?;
    let target = spec
        .launch_plan
        .as_ref()
        .ok_or_else(|| missing("spec.launch_plan"))?;
    if target.project.is_empty()
        || target.domain.is_empty()
        || target.name.is_empty()
        || target.version.is_empty()
    {
        return Err(AdminError::InvalidArgument(format!(
            "spec.launch_plan needs project, domain, name and version (got {}/{}/{}@{})",
            target.project, target.domain, target.name, target.version
        )));
    }
    let resource = match core::ResourceType::try_from(target.resource_type) {
        Ok(core::ResourceType::LaunchPlan) => ResourceType::LaunchPlan,
        Ok(core::ResourceType::Task) => ResourceType::Task,
        _ => {
            return Err(AdminError::InvalidArgument(format!(
                "invalid reference entity resource type {} in spec.launch_plan: only LAUNCH_PLAN \
                 and TASK can be executed",
                target.resource_type
            )));
        }
    };
    let user_inputs = request
        .inputs
        .clone()
        .or_else(|| spec.inputs.clone())
        .unwrap_or_default();

    // The launch plan (synthesized for a task), its workflow, and the merged inputs.
    let (launch_plan_id, task_key) = match resource {
        ResourceType::Task => {
            let task = entity_key(ResourceType::Task, target);
            (
                single_task_launch_plan(state, &task, spec).await?,
                Some(task),
            )
        }
        _ => (entity_key(ResourceType::LaunchPlan, target), None),
    };
    let lp_record = match state.store.get_entity(&launch_plan_id).await {
        Ok(record) => record,
        Err(StoreError::NotFound(_)) => {
            return Err(AdminError::NotFound(format!(
                "{launch_plan_id} not found: register it before executing it"
            )));
        }
        Err(err) => return Err(err.into()),
    };
    let lp_spec: LaunchPlanSpec = decode_stored(&lp_record.spec, "launch plan spec")?;
    let lp_closure: admin::LaunchPlanClosure =
        decode_stored(&lp_record.closure, "launch plan closure")?;
    let inputs = merge_inputs(
        &user_inputs,
        lp_spec.fixed_inputs.as_ref(),
        lp_closure.expected_inputs.as_ref(),
    )?;
    let workflow_id = lp_spec
        .workflow_id
        .as_ref()
        .ok_or_else(|| AdminError::Internal(format!("{launch_plan_id} has no workflow id")))?;
    let workflow_key = entity_key(ResourceType::Workflow, workflow_id);
    let workflow = state.store.get_entity(&workflow_key).await?;
    let workflow_closure: WorkflowClosure = decode_stored(&workflow.closure, "workflow closure")?;
    let compiled = workflow_closure
        .compiled_workflow
        .ok_or_else(|| AdminError::Internal(format!("{workflow_key} has no compiled workflow")))?;

    // Name, offloaded inputs, record, engine.
    let name = if request.name.is_empty() {
        generate_name()
    } else {
        request.name.clone()
    };
    let key = ExecutionKey {
        project: request.project.clone(),
        domain: request.domain.clone(),
        name,
    };
    let id = wf_exec_id(&key);
    if let Ok(existing) = state.store.get_execution(&key).await {
        return Err(AdminError::AlreadyExists(format!(
            "{} already exists",
            existing.key
        )));
    }
    let inputs_uri = offload(state, &key, "inputs", &inputs).await?;
    let user_inputs_uri = offload(state, &key, "user_inputs", &user_inputs).await?;

    let now = Utc::now();
    let metadata = spec.metadata.clone().unwrap_or_default();
    let principal = metadata.principal.clone();
    let closure = ExecutionClosure {
        phase: core::workflow_execution::Phase::Queued as i32,
        created_at: Some(to_proto(now)),
        updated_at: Some(to_proto(now)),
        workflow_id: Some(identifier(&workflow_key)),
        state_change_details: Some(ExecutionStateChangeDetails {
            state: EXECUTION_ACTIVE,
            occurred_at: Some(to_proto(now)),
            principal: principal.clone(),
        }),
        ..Default::default()
    };
    let parent = metadata
        .parent_node_execution
        .as_ref()
        .and_then(|p| events::node_key(Some(p)).ok());
    let launch = launch_request(&id, compiled, inputs, &lp_spec, spec, &launch_plan_id);
    let engine_bytes = state.launcher.as_ref().map(|_| launch.to_bytes());
    let record = ExecutionRecord {
        key: key.clone(),
        launch_plan: Some(launch_plan_id.clone()),
        workflow: Some(workflow_key),
        task: task_key,
        phase: "QUEUED".into(),
        mode: metadata.mode,
        state: EXECUTION_ACTIVE,
        principal,
        parent,
        spec: raw_spec.to_vec(),
        closure: closure.encode_to_vec(),
        inputs_uri,
        user_inputs_uri,
        created_at: now,
        updated_at: now,
        started_at: None,
    };
    match state.store.create_execution(record, engine_bytes).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(what)) => {
            return Err(AdminError::AlreadyExists(format!("{what} already exists")));
        }
        Err(err) => return Err(err.into()),
    }
    tracing::info!(execution = %key, launch_plan = %launch_plan_id, "execution created");
    match &state.launcher {
        Some(launcher) => {
            if let Err(err) = launcher.start(launch).await {
                tracing::error!(execution = %key, error = %err, "the engine did not take the execution");
            }
        }
        None => {
            tracing::warn!(execution = %key, "no engine configured: the execution stays QUEUED")
        }
    }
    Ok(tonic::Response::new(ExecutionCreateResponse {
        id: Some(id),
    }))
}

fn launch_request(
    id: &WorkflowExecutionIdentifier,
    compiled: core::CompiledWorkflowClosure,
    inputs: LiteralMap,
    lp: &LaunchPlanSpec,
    spec: &ExecutionSpec,
    launch_plan: &EntityKey,
) -> LaunchRequest {
    let pairs = |kv: &[core::KeyValuePair]| -> BTreeMap<String, String> {
        kv.iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect()
    };
    let mut envs = lp
        .envs
        .as_ref()
        .map(|e| pairs(&e.values))
        .unwrap_or_default();
    envs.extend(
        spec.envs
            .as_ref()
            .map(|e| pairs(&e.values))
            .unwrap_or_default(),
    );
    let mut labels: BTreeMap<String, String> = lp
        .labels
        .as_ref()
        .map(|l| l.values.clone().into_iter().collect())
        .unwrap_or_default();
    labels.extend(
        spec.labels
            .as_ref()
            .map(|l| l.values.clone())
            .unwrap_or_default(),
    );
    let mut annotations: BTreeMap<String, String> = lp
        .annotations
        .as_ref()
        .map(|l| l.values.clone().into_iter().collect())
        .unwrap_or_default();
    annotations.extend(
        spec.annotations
            .as_ref()
            .map(|l| l.values.clone())
            .unwrap_or_default(),
    );
    let max_parallelism = if spec.max_parallelism > 0 {
        spec.max_parallelism
    } else {
        lp.max_parallelism
    };
    let raw = spec
        .raw_output_data_config
        .as_ref()
        .or(lp.raw_output_data_config.as_ref())
        .map(|c| c.output_location_prefix.clone())
        .filter(|p| !p.is_empty());
    LaunchRequest {
        id: id.clone(),
        compiled,
        inputs,
        launch_plan: Some(identifier(launch_plan)),
        envs,
        max_parallelism: max_parallelism.max(0) as u32,
        overwrite_cache: spec.overwrite_cache || lp.overwrite_cache,
        interruptible: spec
            .interruptible
            .as_ref()
            .or(lp.interruptible.as_ref())
            .map(|b| b.value),
        raw_output_data_prefix: raw,
        labels,
        annotations,
        principal: spec
            .metadata
            .as_ref()
            .map(|m| m.principal.clone())
            .unwrap_or_default(),
        // As flyteadmin: a RECOVERED execution with a reference execution recovers from it,
        // however it was created (RecoverExecution, or a launch-plan node of one).
        recover_from: spec
            .metadata
            .as_ref()
            .filter(|m| m.mode == admin::execution_metadata::ExecutionMode::Recovered as i32)
            .and_then(|m| m.reference_execution.clone()),
    }
}

/// Writes a literal map where flyteadmin offloads execution data:
/// `metadata/<project>/<domain>/<name>/<what>`; the native URL of the object.
async fn offload(
    state: &AdminState,
    key: &ExecutionKey,
    what: &str,
    map: &LiteralMap,
) -> AdminResult<String> {
    let path = format!(
        "metadata/{}/{}/{}/{what}",
        key.project, key.domain, key.name
    );
    state
        .blob
        .put(&path, Bytes::from(map.encode_to_vec()))
        .await
        .map_err(|e| match e {
            full @ flyte_blob::BlobError::StorageFull { .. } => {
                AdminError::ResourceExhausted(full.to_string())
            }
            e => AdminError::Internal(format!("offloading {what} of {key}: {e}")),
        })?;
    Ok(state.blob.native_url(&path))
}

/// The `.flytegen.<task>` workflow and launch plan of a single-task execution, registered on
/// first use (`util/single_task_execution.go`): one node running the task, its inputs bound to
/// the workflow's, its outputs the workflow's.
async fn single_task_launch_plan(
    state: &AdminState,
    task_key: &EntityKey,
    spec: &ExecutionSpec,
) -> AdminResult<EntityKey> {
    let task = match state.store.get_entity(task_key).await {
        Ok(task) => task,
        Err(StoreError::NotFound(_)) => {
            return Err(AdminError::NotFound(format!(
                "{task_key} not found: register it before executing it"
            )));
        }
        Err(err) => return Err(err.into()),
    };
    let template = tasks::stored_template(&task)?;
    let interface = template.interface.clone().unwrap_or_default();
    let generated = format!(".flytegen.{}", task_key.name);
    let workflow_id = Identifier {
        resource_type: core::ResourceType::Workflow as i32,
        project: task_key.project.clone(),
        domain: task_key.domain.clone(),
        name: generated.clone(),
        version: task_key.version.clone(),
        ..Default::default()
    };
    let lp_id = Identifier {
        resource_type: core::ResourceType::LaunchPlan as i32,
        ..workflow_id.clone()
    };
    let lp_key = entity_key(ResourceType::LaunchPlan, &lp_id);
    match state.store.get_entity(&lp_key).await {
        Ok(_) => return Ok(lp_key),
        Err(StoreError::NotFound(_)) => {}
        Err(err) => return Err(err.into()),
    }

    let node_id = node_name_from_task(&task_key.name);
    let bindings = |vars: Option<&VariableMap>, node: &str| -> Vec<Binding> {
        let mut names: Vec<&String> = vars
            .map(|v| v.variables.keys().collect())
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|var| Binding {
                var: var.clone(),
                binding: Some(BindingData {
                    value: Some(binding_data::Value::Promise(OutputReference {
                        node_id: node.to_string(),
                        var: var.clone(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
            })
            .collect()
    };
    let retries = template
        .metadata
        .as_ref()
        .and_then(|m| m.retries)
        .unwrap_or(RetryStrategy { retries: 3 });
    let workflow_spec = WorkflowSpec {
        template: Some(WorkflowTemplate {
            id: Some(workflow_id.clone()),
            interface: Some(interface.clone()),
            nodes: vec![Node {
                id: node_id.clone(),
                metadata: Some(NodeMetadata {
                    name: node_id.clone(),
                    retries: Some(retries),
                    ..Default::default()
                }),
                // flyteadmin binds to node "" (the start node); named explicitly here.
                inputs: bindings(interface.inputs.as_ref(), "start-node"),
                target: Some(node::Target::TaskNode(TaskNode {
                    reference: Some(task_node::Reference::ReferenceId(identifier(task_key))),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            outputs: bindings(interface.outputs.as_ref(), &node_id),
            ..Default::default()
        }),
        ..Default::default()
    };
    match workflows::create(
        state,
        tonic::Request::new(WorkflowCreateRequest {
            id: Some(workflow_id.clone()),
            spec: Some(workflow_spec),
        }),
    )
    .await
    {
        Ok(_) | Err(AdminError::AlreadyExists(_)) => {}
        Err(err) => return Err(err),
    }
    let lp_spec = LaunchPlanSpec {
        workflow_id: Some(workflow_id.clone()),
        entity_metadata: Some(Default::default()),
        default_inputs: Some(Default::default()),
        fixed_inputs: Some(Default::default()),
        labels: Some(Default::default()),
        annotations: Some(Default::default()),
        auth_role: spec.auth_role.clone(),
        security_context: spec.security_context.clone(),
        ..Default::default()
    };
    match launch_plans::create(
        state,
        tonic::Request::new(admin::LaunchPlanCreateRequest {
            id: Some(lp_id),
            spec: Some(lp_spec),
        }),
    )
    .await
    {
        Ok(_) | Err(AdminError::AlreadyExists(_)) => {}
        Err(err) => return Err(err),
    }
    for resource in [core::ResourceType::Workflow, core::ResourceType::LaunchPlan] {
        let update = NamedEntityUpdateRequest {
            resource_type: resource as i32,
            id: Some(NamedEntityIdentifier {
                project: task_key.project.clone(),
                domain: task_key.domain.clone(),
                name: generated.clone(),
                ..Default::default()
            }),
            metadata: Some(NamedEntityMetadata {
                state: admin::NamedEntityState::SystemGenerated as i32,
                ..Default::default()
            }),
        };
        if let Err(err) = named_entities::update(state, &update).await {
            tracing::warn!(error = %err, "cannot mark {generated} system-generated");
        }
    }
    Ok(lp_key)
}

/// flyteadmin's `generateNodeNameFromTask`: the last 63 characters, letters, digits and `-`.
fn node_name_from_task(task: &str) -> String {
    let chars: Vec<char> = task.chars().collect();
    let start = chars.len().saturating_sub(63);
    chars[start..]
        .iter()
        .filter(|c| **c == '-' || c.is_alphanumeric())
        .collect()
}

// --- relaunch and recover ------------------------------------------------------------------

/// The user inputs of a recorded execution, read in full (relaunch and recover start from them
/// and merge the launch plan's defaults again, as flyteadmin does).
async fn user_inputs(
    state: &AdminState,
    record: &ExecutionRecord,
    spec: &ExecutionSpec,
) -> AdminResult<LiteralMap> {
    if record.user_inputs_uri.is_empty() {
        // Executions recorded before inputs were offloaded kept them in the spec.
        return Ok(spec.inputs.clone().unwrap_or_default());
    }
    read_full_literal_map(state, &record.user_inputs_uri)
        .await?
        .ok_or_else(|| {
            AdminError::Internal(format!(
                "the inputs of {} are missing at {}",
                record.key, record.user_inputs_uri
            ))
        })
}

/// The original's spec made the base of a new execution (flyteadmin's `RelaunchExecution` and
/// `RecoverExecution`): same launch plan (or task) and settings, new mode, a reference to the
/// original.
fn derived_spec(
    record: &ExecutionRecord,
    mode: admin::execution_metadata::ExecutionMode,
) -> AdminResult<ExecutionSpec> {
    let mut spec: ExecutionSpec = decode_stored(&record.spec, "execution spec")?;
    let metadata = spec.metadata.get_or_insert_with(Default::default);
    metadata.mode = mode as i32;
    metadata.reference_execution = Some(wf_exec_id(&record.key));
    Ok(spec)
}

/// RelaunchExecution: a new execution with the same spec and (user) inputs, mode RELAUNCH,
/// `reference_execution` the original; `name` as given or generated.
pub(super) async fn relaunch(
    state: &AdminState,
    request: &admin::ExecutionRelaunchRequest,
) -> AdminResult<tonic::Response<ExecutionCreateResponse>> {
    let key = execution_key(request.id.as_ref())?;
    if !request.name.is_empty() {
        validate_name(&request.name)?;
    }
    let original = get_record(state, &key).await?;
    let mut spec = derived_spec(
        &original,
        admin::execution_metadata::ExecutionMode::Relaunch,
    )?;
    spec.overwrite_cache = request.overwrite_cache;
    let inputs = user_inputs(state, &original, &spec).await?;
    let created = create(
        state,
        tonic::Request::new(ExecutionCreateRequest {
            project: key.project.clone(),
            domain: key.domain.clone(),
            name: request.name.clone(),
            spec: Some(spec),
            inputs: Some(inputs),
            ..Default::default()
        }),
    )
    .await?;
    tracing::info!(original = %key, relaunched = ?created.get_ref().id, "execution relaunched");
    Ok(created)
}

/// RecoverExecution: a new execution of the same spec and inputs, mode RECOVERED with
/// `reference_execution` the original; the engine reuses the outputs of every node that
/// succeeded in the original and runs the rest. The original must have finished: recovering a
/// running execution would race it (flyteadmin does not check; its propeller then copies
/// whatever happens to have finished).
pub(super) async fn recover(
    state: &AdminState,
    request: &admin::ExecutionRecoverRequest,
) -> AdminResult<tonic::Response<ExecutionCreateResponse>> {
    let key = execution_key(request.id.as_ref())?;
    if !request.name.is_empty() {
        validate_name(&request.name)?;
    }
    let original = get_record(state, &key).await?;
    if !is_workflow_terminal_name(&original.phase) {
        return Err(AdminError::FailedPrecondition(format!(
            "cannot recover a running execution: {key} is {}; recover it once it has finished \
             (or terminate it first)",
            original.phase
        )));
    }
    let mut spec = derived_spec(
        &original,
        admin::execution_metadata::ExecutionMode::Recovered,
    )?;
    if let Some(metadata) = &request.metadata {
        // A launch-plan node recovering its child: the new child belongs to the new parent.
        spec.metadata
            .get_or_insert_with(Default::default)
            .parent_node_execution = metadata.parent_node_execution.clone();
    }
    let inputs = user_inputs(state, &original, &spec).await?;
    let created = create(
        state,
        tonic::Request::new(ExecutionCreateRequest {
            project: key.project.clone(),
            domain: key.domain.clone(),
            name: request.name.clone(),
            spec: Some(spec),
            inputs: Some(inputs),
            ..Default::default()
        }),
    )
    .await?;
    tracing::info!(original = %key, recovered = ?created.get_ref().id, "execution recovered");
    Ok(created)
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

pub(super) async fn get_record(
    state: &AdminState,
    key: &ExecutionKey,
) -> AdminResult<ExecutionRecord> {
    state.store.get_execution(key).await.map_err(|e| match e {
        StoreError::NotFound(_) => AdminError::NotFound(format!("{key} not found")),
        other => other.into(),
    })
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
    prefixes: &["execution", "launch_plan", "workflow", "task"],
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
    ],
    sort_fields: &[
        "name",
        "phase",
        "mode",
        "state",
        "created_at",
        "updated_at",
        "started_at",
    ],
};

/// The store column of a (possibly entity-prefixed) execution filter field.
fn execution_column(entity: Option<&str>, field: &str) -> AdminResult<String> {
    Ok(match (entity, field) {
        (Some(e @ ("launch_plan" | "workflow" | "task")), f @ ("name" | "version")) => {
            format!("{e}_{f}")
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
                "unknown filter field '{}' for listing executions (supported: {})",
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

// --- updates ------------------------------------------------------------------------------

/// Runs one read-decide-write of an execution as a store transition (the row locked, the
/// decision on what the previous transition wrote); `NotFound` naming it if it does not exist.
/// `decide` returns the changes, or an outcome for the caller that writes nothing.
async fn transition<T: Send>(
    state: &AdminState,
    key: &ExecutionKey,
    decide: impl FnOnce(ExecutionRecord) -> Result<(StateBatch, T), T> + Send,
) -> AdminResult<T> {
    let mut outcome = None;
    state
        .store
        .transition(
            StateRead {
                execution: key.clone(),
                ..Default::default()
            },
            Box::new(|snapshot| match decide(snapshot.execution) {
                Ok((batch, answer)) => {
                    outcome = Some(answer);
                    batch
                }
                Err(answer) => {
                    outcome = Some(answer);
                    StateBatch::default()
                }
            }),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => AdminError::NotFound(format!("{key} not found")),
            other => other.into(),
        })?;
    outcome.ok_or_else(|| AdminError::Internal(format!("the transition of {key} decided nothing")))
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

/// flyteadmin's `TerminateExecution`: an execution already in a terminal phase is refused
/// (FAILED_PRECONDITION with `AlreadyInTerminalState`), any other becomes ABORTING with the
/// cause, decided and written in one transition, so a success recorded meanwhile is never
/// overwritten; the engine then stops it and reports ABORTED (which the event rules refuse
/// if it ended first).
pub(super) async fn terminate(
    state: &AdminState,
    request: &ExecutionTerminateRequest,
) -> AdminResult<Result<tonic::Response<ExecutionTerminateResponse>, tonic::Status>> {
    let key = execution_key(request.id.as_ref())?;
    let refused = transition(state, &key, |mut record| {
        if is_workflow_terminal_name(&record.phase) {
            return Err(Ok(Some(Rejection::AlreadyTerminal {
                message: format!(
                    "Cannot abort an already terminated workflow execution {}/{}/{} (phase {})",
                    key.project, key.domain, key.name, record.phase
                ),
                current_phase: record.phase.clone(),
            })));
        }
        let mut closure: ExecutionClosure =
            decode_stored(&record.closure, "execution closure").map_err(Err)?;
        closure.output_result = Some(execution_closure::OutputResult::AbortMetadata(
            admin::AbortMetadata {
                cause: request.cause.clone(),
                principal: String::new(),
            },
        ));
        closure.phase = core::workflow_execution::Phase::Aborting as i32;
        record.phase = "ABORTING".into();
        record.closure = closure.encode_to_vec();
        Ok((
            StateBatch {
                executions: vec![record],
                engine: vec![EngineChange::PendingAbort {
                    execution: key.clone(),
                    cause: request.cause.clone(),
                }],
                ..Default::default()
            },
            Ok(None),
        ))
    })
    .await??;
    if let Some(rejection) = refused {
        return Ok(Err(rejection.into()));
    }
    tracing::info!(execution = %key, cause = %request.cause, "execution aborting");
    let running = match &state.launcher {
        Some(launcher) => match launcher.abort(&wf_exec_id(&key), &request.cause).await {
            Ok(running) => running,
            Err(err) => {
                tracing::error!(execution = %key, error = %err, "the engine did not abort the execution");
                true
            }
        },
        None => false,
    };
    if !running {
        // Nothing will report ABORTED: finish it here, as propeller's last event would.
        let event = flyteidl::event::WorkflowExecutionEvent {
            execution_id: Some(wf_exec_id(&key)),
            phase: core::workflow_execution::Phase::Aborted as i32,
            occurred_at: Some(to_proto(Utc::now())),
            ..Default::default()
        };
        transition(state, &key, |current| {
            match events::workflow_event(&current, &event) {
                Ok(next) => Ok((
                    StateBatch {
                        executions: vec![next],
                        engine: vec![EngineChange::Finished {
                            execution: key.clone(),
                        }],
                        ..Default::default()
                    },
                    (),
                )),
                Err(rejection) => {
                    tracing::debug!(execution = %key, %rejection, "not marked aborted");
                    Err(())
                }
            }
        })
        .await?;
    }
    Ok(Ok(tonic::Response::new(ExecutionTerminateResponse {})))
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

/// Reads a literal map by native URL in full, whatever its size (the engine's services need
/// the values, not a link). `None` if the object does not exist.
pub(super) async fn read_full_literal_map(
    state: &AdminState,
    url: &str,
) -> AdminResult<Option<LiteralMap>> {
    let path = state.blob.path_from_native_url(url).ok_or_else(|| {
        AdminError::Internal(format!("{url} is outside this server's blob store"))
    })?;
    match state.blob.get(&path).await {
        Ok(bytes) => LiteralMap::decode(bytes)
            .map(Some)
            .map_err(|e| AdminError::Internal(format!("{url} is not a literal map: {e}"))),
        Err(flyte_blob::BlobError::NotFound(_)) => Ok(None),
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
    let key = events::execution_key(event.execution_id.as_ref())?;
    let finished = events::is_workflow_terminal(event.phase);
    let mut refused = None;
    let written = state
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
            return Err(tonic::Status::not_found(format!("{key} not found")));
        }
        Err(err) => return Err(AdminError::from(err).into()),
    }
    if let Some(rejection) = refused {
        return Err(rejection.into());
    }
    Ok(tonic::Response::new(WorkflowExecutionEventResponse {}))
}
