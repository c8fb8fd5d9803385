//! The execution service: the lifecycle of an execution as plain Rust commands, whoever asks
//! (the gRPC and REST adapters in `service::admin`, the engine's launch-plan nodes, relaunch and
//! recover). A command is validated here, its launch plan (or the single-task launch plan of a
//! task) read, the inputs merged and offloaded, the execution recorded and handed to the engine
//! (flyteadmin `execution_manager.go`). Errors are [`AdminError`]s carrying their code; the
//! adapters convert protobuf requests into commands at the edge and nothing else.

#![allow(deprecated)] // ExecutionSpec.inputs

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::Utc;
use flyte_core::ids::ResourceType;
use flyte_core::types::{display_type, literal_is_instance, literal_type_of};
use flyte_engine::external::{ChildLaunch, child_execution_id};
use flyte_store::{
    EngineChange, EntityKey, ExecutionKey, ExecutionRecord, StateBatch, StateRead, StoreError,
};
use flyteidl::admin::{
    self, ExecutionClosure, ExecutionMetadata, ExecutionSpec, ExecutionStateChangeDetails,
    LaunchPlanSpec, NamedEntityIdentifier, NamedEntityMetadata, NamedEntityUpdateRequest,
    WorkflowClosure, WorkflowSpec, execution_closure,
};
use flyteidl::core::{
    self, Binding, BindingData, Identifier, LiteralMap, Node, NodeMetadata, OutputReference,
    ParameterMap, RetryStrategy, TaskNode, VariableMap, WorkflowExecutionIdentifier,
    WorkflowTemplate, binding_data, node, task_node,
};
use prost::Message;
use rand::Rng;

use crate::error::{AdminError, AdminResult, quoted};
use crate::launcher::LaunchRequest;
use crate::service::admin::common::{
    decode_stored, ensure_domain, ensure_project_domain, entity_key, identifier, missing,
};
use crate::service::admin::events::{self, is_workflow_terminal_name, to_proto};
use crate::service::admin::{named_entities, tasks};
use crate::services::attributes::{self, ExecutionAttributes};
use crate::services::registration::{RegisterLaunchPlan, RegisterWorkflow, RegistrationService};
use crate::state::AdminState;

/// flyteadmin's `allowedExecutionNameLength` (a Kubernetes label value).
const MAX_NAME_LENGTH: usize = 63;
/// flyteadmin's `ExecutionIDLength`.
const GENERATED_NAME_LENGTH: usize = 20;
/// `admin.ExecutionState`.
pub(crate) const EXECUTION_ACTIVE: i32 = 0;

/// The store key of an execution id; INVALID_ARGUMENT naming what is missing.
pub(crate) fn execution_key(id: Option<&WorkflowExecutionIdentifier>) -> AdminResult<ExecutionKey> {
    events::execution_key(id).map_err(|r| AdminError::InvalidArgument(r.to_string()))
}

/// The protobuf id of an execution key.
pub(crate) fn wf_exec_id(key: &ExecutionKey) -> WorkflowExecutionIdentifier {
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
            unknown
                .iter()
                .map(|name| quoted(name))
                .collect::<Vec<_>>()
                .join(", "),
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

// --- commands -------------------------------------------------------------------------------

/// What an execution runs: a launch plan, or a task (run through its generated single-task
/// launch plan `.flytegen.<task>`).
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutionSource {
    LaunchPlan(EntityKey),
    Task(EntityKey),
}

impl ExecutionSource {
    fn key(&self) -> &EntityKey {
        match self {
            Self::LaunchPlan(key) | Self::Task(key) => key,
        }
    }

    fn identifier(&self) -> Identifier {
        let resource = match self {
            Self::LaunchPlan(_) => core::ResourceType::LaunchPlan,
            Self::Task(_) => core::ResourceType::Task,
        };
        Identifier {
            resource_type: resource as i32,
            ..identifier(self.key())
        }
    }
}

/// Create an execution (CreateExecution, a relaunch, a recovery, a launch-plan node's child).
#[derive(Debug, Clone)]
pub struct CreateExecution {
    pub project: String,
    pub domain: String,
    /// `None`: a generated name.
    pub name: Option<String>,
    pub source: ExecutionSource,
    /// The user's inputs; the launch plan's defaults and fixed inputs are merged in.
    pub inputs: LiteralMap,
    /// The settings (metadata, labels, annotations, envs, security context, …); its
    /// `launch_plan` is set from `source`.
    pub spec: ExecutionSpec,
    /// The spec exactly as a client encoded it (fields this server does not know survive a
    /// round trip); `None`: `spec` encoded here. An adapter passes the bytes of the same spec
    /// it converted, so the two never disagree.
    pub raw_spec: Option<Bytes>,
}

/// Terminate a running execution with a cause.
#[derive(Debug, Clone)]
pub struct TerminateExecution {
    pub id: ExecutionKey,
    pub cause: String,
}

/// What a terminate did.
#[derive(Debug, Clone, PartialEq)]
pub enum Terminated {
    /// The execution is ABORTING (or already ABORTED when no engine was running it).
    Aborting,
    /// It had already finished in `phase`; nothing changed (flyteadmin answers
    /// FAILED_PRECONDITION with `AlreadyInTerminalState`).
    AlreadyFinished { message: String, phase: String },
}

/// Relaunch an execution: same spec and user inputs, mode RELAUNCH.
#[derive(Debug, Clone)]
pub struct RelaunchExecution {
    pub original: ExecutionKey,
    /// `None`: a generated name.
    pub name: Option<String>,
    pub overwrite_cache: bool,
}

/// Recover a finished execution: same spec and user inputs, mode RECOVERED; the engine reuses
/// what succeeded in the original.
#[derive(Debug, Clone)]
pub struct RecoverExecution {
    pub original: ExecutionKey,
    /// `None`: a generated name.
    pub name: Option<String>,
    /// A launch-plan node recovering its child: the new child belongs to this node.
    pub parent_node_execution: Option<core::NodeExecutionIdentifier>,
}

// --- the service ----------------------------------------------------------------------------

/// The execution lifecycle over the admin state. Cheap to clone.
#[derive(Clone)]
pub struct ExecutionService {
    state: AdminState,
    entities: Arc<EntityCache>,
}

/// What a creation reads of a launch plan: its spec and expected inputs.
struct CachedLaunchPlan {
    spec: LaunchPlanSpec,
    expected_inputs: Option<ParameterMap>,
}

/// Launch plans and workflows a creation reads, decoded, by id. Both are immutable once
/// registered (registering an id again with other content is ALREADY_EXISTS; of a launch plan
/// only its active state changes, which a creation does not read), so each is read and
/// decoded once instead of on every CreateExecution (two store reads and the decoding of the
/// workflow closure each time, issue 21 item 4). Only found entities are kept; past
/// [`EntityCache::MAX`] entries a map starts over.
#[derive(Default)]
struct EntityCache {
    launch_plans: Mutex<HashMap<EntityKey, Arc<CachedLaunchPlan>>>,
    workflows: Mutex<HashMap<EntityKey, Arc<core::CompiledWorkflowClosure>>>,
}

impl EntityCache {
    const MAX: usize = 4096;

    fn get<V>(map: &Mutex<HashMap<EntityKey, Arc<V>>>, key: &EntityKey) -> Option<Arc<V>> {
        // A poisoned lock only means a panic elsewhere mid-insert: the map is still whole.
        map.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .cloned()
    }

    fn put<V>(map: &Mutex<HashMap<EntityKey, Arc<V>>>, key: &EntityKey, value: Arc<V>) {
        let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key.clone(), value);
    }

    async fn launch_plan(
        &self,
        state: &AdminState,
        key: &EntityKey,
    ) -> AdminResult<Arc<CachedLaunchPlan>> {
        if let Some(found) = Self::get(&self.launch_plans, key) {
            return Ok(found);
        }
        let record = match state.store.get_entity(key).await {
            Ok(record) => record,
            Err(StoreError::NotFound(_)) => {
                return Err(AdminError::NotFound(format!(
                    "{key} not found: register it before executing it"
                )));
            }
            Err(err) => return Err(err.into()),
        };
        let spec: LaunchPlanSpec = decode_stored(&record.spec, "launch plan spec")?;
        let closure: admin::LaunchPlanClosure =
            decode_stored(&record.closure, "launch plan closure")?;
        let found = Arc::new(CachedLaunchPlan {
            spec,
            expected_inputs: closure.expected_inputs,
        });
        Self::put(&self.launch_plans, key, found.clone());
        Ok(found)
    }

    async fn workflow(
        &self,
        state: &AdminState,
        key: &EntityKey,
    ) -> AdminResult<Arc<core::CompiledWorkflowClosure>> {
        if let Some(found) = Self::get(&self.workflows, key) {
            return Ok(found);
        }
        let record = state.store.get_entity(key).await?;
        let closure: WorkflowClosure = decode_stored(&record.closure, "workflow closure")?;
        let compiled = closure
            .compiled_workflow
            .ok_or_else(|| AdminError::Internal(format!("{key} has no compiled workflow")))?;
        let found = Arc::new(compiled);
        Self::put(&self.workflows, key, found.clone());
        Ok(found)
    }
}

impl ExecutionService {
    pub fn new(state: AdminState) -> Self {
        Self {
            state,
            entities: Arc::default(),
        }
    }

    pub fn state(&self) -> &AdminState {
        &self.state
    }

    /// Validates, records (QUEUED, with the engine's request journaled in the same write) and
    /// starts an execution; its id. ALREADY_EXISTS if the name is taken.
    pub async fn create(
        &self,
        command: CreateExecution,
    ) -> AdminResult<WorkflowExecutionIdentifier> {
        create(&self.state, &self.entities, command).await
    }

    /// flyteadmin's `TerminateExecution`: an execution already in a terminal phase is left as
    /// it is ([`Terminated::AlreadyFinished`]), any other becomes ABORTING with the cause,
    /// decided and written in one transition, so a success recorded meanwhile is never
    /// overwritten; the engine then stops it and reports ABORTED (which the event rules refuse
    /// if it ended first).
    pub async fn terminate(&self, command: TerminateExecution) -> AdminResult<Terminated> {
        terminate(&self.state, command).await
    }

    /// RelaunchExecution: a new execution with the same spec and (user) inputs, mode RELAUNCH,
    /// `reference_execution` the original.
    pub async fn relaunch(
        &self,
        command: RelaunchExecution,
    ) -> AdminResult<WorkflowExecutionIdentifier> {
        relaunch(&self.state, &self.entities, command).await
    }

    /// RecoverExecution: a new execution of the same spec and inputs, mode RECOVERED with
    /// `reference_execution` the original; the engine reuses the outputs of every node that
    /// succeeded in the original and runs the rest. The original must have finished:
    /// recovering a running execution would race it (flyteadmin does not check; its
    /// propeller then copies whatever happens to have finished).
    pub async fn recover(
        &self,
        command: RecoverExecution,
    ) -> AdminResult<WorkflowExecutionIdentifier> {
        recover(&self.state, &self.entities, command).await
    }

    /// A launch-plan node's child execution (propeller `launchplan/admin.go` `Launch`): named
    /// after the node and attempt, created as CreateExecution would with the parent's
    /// settings, or recovered from the original's child when the parent is a recovery. A
    /// child created before (the node retried after a crash) is the same child: its id.
    pub async fn launch_child(
        &self,
        launch: ChildLaunch,
    ) -> AdminResult<WorkflowExecutionIdentifier> {
        let child = child_execution_id(&launch.parent, launch.attempt);
        let parent_key = execution_key(launch.parent.execution_id.as_ref())?;
        let parent = get_record(&self.state, &parent_key).await?;
        let parent_spec: ExecutionSpec = decode_stored(&parent.spec, "execution spec")?;
        let child_key = execution_key(Some(&child))?;

        if let Some(original) = &launch.recover_from {
            let command = RecoverExecution {
                original: execution_key(Some(original))?,
                name: Some(child_key.name.clone()),
                parent_node_execution: Some(launch.parent.clone()),
            };
            match self.recover(command).await {
                Ok(_) | Err(AdminError::AlreadyExists(_)) => return Ok(child),
                // As propeller: the original child is gone, launch afresh.
                Err(AdminError::NotFound(m)) => {
                    tracing::warn!(child = %child.name, reason = %m, "cannot recover the child execution; launching it instead");
                }
                Err(err) => return Err(err),
            }
        }

        let command = CreateExecution {
            project: child_key.project,
            domain: child_key.domain,
            name: Some(child_key.name),
            source: ExecutionSource::LaunchPlan(entity_key(
                ResourceType::LaunchPlan,
                &launch.launch_plan,
            )),
            inputs: launch.inputs.clone(),
            spec: child_spec(&launch, &parent_spec),
            raw_spec: None,
        };
        match self.create(command).await {
            // ALREADY_EXISTS: created before (the node retried after a crash); the same child.
            Ok(_) | Err(AdminError::AlreadyExists(_)) => Ok(child),
            Err(err) => Err(err),
        }
    }
}

/// The spec of a launch-plan node's child (propeller `launchplan/admin.go` `Launch`): the
/// parent's settings, mode CHILD_WORKFLOW, nesting one deeper than the parent's, the parent's
/// security context.
fn child_spec(launch: &ChildLaunch, parent: &ExecutionSpec) -> ExecutionSpec {
    let pairs = |m: &BTreeMap<String, String>| -> Vec<core::KeyValuePair> {
        m.iter()
            .map(|(k, v)| core::KeyValuePair {
                key: k.clone(),
                value: v.clone(),
            })
            .collect()
    };
    let parent_metadata = parent.metadata.clone().unwrap_or_default();
    ExecutionSpec {
        launch_plan: Some(launch.launch_plan.clone()),
        metadata: Some(ExecutionMetadata {
            mode: admin::execution_metadata::ExecutionMode::ChildWorkflow as i32,
            principal: if launch.principal.is_empty() {
                parent_metadata.principal.clone()
            } else {
                launch.principal.clone()
            },
            nesting: parent_metadata.nesting + 1,
            parent_node_execution: Some(launch.parent.clone()),
            ..Default::default()
        }),
        labels: Some(admin::Labels {
            values: launch.labels.clone().into_iter().collect(),
        }),
        annotations: Some(admin::Annotations {
            values: launch.annotations.clone().into_iter().collect(),
        }),
        // The parent's (its spec's, else the one it resolved from its launch plan).
        security_context: parent.security_context.clone().or_else(|| {
            (!launch.service_account.is_empty()).then(|| core::SecurityContext {
                run_as: Some(core::Identity {
                    k8s_service_account: launch.service_account.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }),
        auth_role: parent.auth_role.clone(),
        max_parallelism: launch.max_parallelism.min(i32::MAX as u32) as i32,
        raw_output_data_config: launch.raw_output_data_prefix.as_ref().map(|p| {
            admin::RawOutputDataConfig {
                output_location_prefix: p.clone(),
            }
        }),
        interruptible: launch
            .interruptible
            .map(|value| pbjson_types::BoolValue { value }),
        overwrite_cache: launch.overwrite_cache,
        envs: Some(admin::Envs {
            values: pairs(&launch.envs),
        }),
        ..Default::default()
    }
}

// --- create ---------------------------------------------------------------------------------

async fn create(
    state: &AdminState,
    entities: &EntityCache,
    command: CreateExecution,
) -> AdminResult<WorkflowExecutionIdentifier> {
    if command.project.is_empty() {
        return Err(missing("project"));
    }
    if command.domain.is_empty() {
        return Err(missing("domain"));
    }
    if let Some(name) = &command.name {
        validate_name(name)?;
    }
    let (project, domain) = (command.project.clone(), command.domain.clone());
    match create_in_project(state, entities, command).await {
        // The project is checked by the insert, not read before it (one store round trip
        // less per creation); a failure on the way names the project's problem first, as
        // when it was read first. A taken name implies the project takes executions.
        Err(err) if !matches!(err, AdminError::AlreadyExists(_)) => {
            ensure_project_domain(state, &project, &domain).await?;
            Err(err)
        }
        created => created,
    }
}

/// [`create`] once the request's names are valid.
async fn create_in_project(
    state: &AdminState,
    entities: &EntityCache,
    command: CreateExecution,
) -> AdminResult<WorkflowExecutionIdentifier> {
    let CreateExecution {
        project,
        domain,
        name,
        source,
        inputs: user_inputs,
        mut spec,
        raw_spec,
    } = command;
    match source {
        // Its launch plan is registered on the way: the project must be known first.
        ExecutionSource::Task(_) => ensure_project_domain(state, &project, &domain).await?,
        ExecutionSource::LaunchPlan(_) => ensure_domain(state, &domain)?,
    }
    let target = source.key();
    if target.project.is_empty()
        || target.domain.is_empty()
        || target.name.is_empty()
        || target.version.is_empty()
    {
        return Err(AdminError::InvalidArgument(format!(
            "spec.launch_plan needs project, domain, name and version (got {})",
            quoted(&format!(
                "{}/{}/{}@{}",
                target.project, target.domain, target.name, target.version
            ))
        )));
    }
    spec.launch_plan = Some(source.identifier());
    let raw_spec = raw_spec.unwrap_or_else(|| spec.encode_to_vec().into());

    // The launch plan (synthesized for a task), its workflow, and the merged inputs.
    let (launch_plan_id, task_key) = match source {
        ExecutionSource::Task(task) => (
            single_task_launch_plan(state, &task, &spec).await?,
            Some(task),
        ),
        ExecutionSource::LaunchPlan(launch_plan) => (launch_plan, None),
    };
    let launch_plan = entities.launch_plan(state, &launch_plan_id).await?;
    let lp_spec = &launch_plan.spec;
    let inputs = merge_inputs(
        &user_inputs,
        lp_spec.fixed_inputs.as_ref(),
        launch_plan.expected_inputs.as_ref(),
    )?;
    let workflow_id = lp_spec
        .workflow_id
        .as_ref()
        .ok_or_else(|| AdminError::Internal(format!("{launch_plan_id} has no workflow id")))?;
    let workflow_key = entity_key(ResourceType::Workflow, workflow_id);
    let mut compiled =
        core::CompiledWorkflowClosure::clone(&*entities.workflow(state, &workflow_key).await?);

    // Matchable attributes and the server's defaults fill what request and launch plan leave
    // unset; what they add is appended to the stored spec (protobuf merges it), so the
    // request's own bytes are kept.
    let matched = ExecutionAttributes::read(state, &project, &domain, &workflow_key.name).await?;
    attributes::apply_task_resources(state, &matched, &mut compiled)?;
    let raw_spec = match attributes::execution_defaults(state, &matched, &spec, lp_spec)? {
        Some(added) => {
            let added = added.encode_to_vec();
            spec.merge(added.as_slice())
                .map_err(|e| AdminError::Internal(format!("execution defaults: {e}")))?;
            let mut merged = raw_spec.to_vec();
            merged.extend_from_slice(&added);
            Bytes::from(merged)
        }
        None => raw_spec,
    };

    // Name, offloaded inputs, record, engine.
    let key = ExecutionKey {
        project,
        domain,
        name: name.unwrap_or_else(generate_name),
    };
    let id = wf_exec_id(&key);
    let inline_max = state.config.inline_inputs_max_bytes;
    let inline = |map: &LiteralMap| map.encoded_len() <= inline_max;
    if !(inline(&inputs) && inline(&user_inputs)) {
        // Offloading writes under the execution's name: never over a taken name's inputs,
        // nor for a project that takes none. Inline inputs need neither check: the insert
        // refuses a taken name and checks the project.
        ensure_project_domain(state, &key.project, &key.domain).await?;
        if let Ok(existing) = state.store.get_execution(&key).await {
            return Err(AdminError::AlreadyExists(format!(
                "{} already exists",
                existing.key
            )));
        }
    }
    let inputs_uri = store_inputs(state, &key, "inputs", &inputs, inline_max).await?;
    let user_inputs_uri =
        store_inputs(state, &key, "user_inputs", &user_inputs, inline_max).await?;

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
    let mut launch = launch_request(&id, compiled, inputs, lp_spec, &spec, &launch_plan_id);
    launch.plugin_overrides = matched.plugin_overrides()?;
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
        error_code: String::new(),
        duration_ms: 0,
        tags: spec.tags.clone(),
        notify_phases: notify_phases(&spec, lp_spec),
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
    Ok(id)
}

/// The terminal phases the execution asks to be notified of, resolved as flyteadmin does
/// (and as crates/flyte-notify resolves them again at delivery): the execution's own list if
/// it has one, none with `disable_all`, else the launch plan's. The store writes a
/// notification outbox row only for these.
fn notify_phases(spec: &ExecutionSpec, lp: &LaunchPlanSpec) -> Vec<String> {
    use admin::execution_spec::NotificationOverrides;
    let notifications = match &spec.notification_overrides {
        Some(NotificationOverrides::Notifications(list)) if !list.notifications.is_empty() => {
            &list.notifications
        }
        Some(NotificationOverrides::DisableAll(true)) => return Vec::new(),
        _ => match &lp.entity_metadata {
            Some(metadata) => &metadata.notifications,
            None => return Vec::new(),
        },
    };
    flyte_store::NOTIFY_PHASES
        .iter()
        .filter(|name| {
            core::workflow_execution::Phase::from_str_name(name).is_some_and(|phase| {
                notifications
                    .iter()
                    .any(|n| n.r#type.is_some() && n.phases.contains(&(phase as i32)))
            })
        })
        .map(|name| (*name).to_owned())
        .collect()
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
        // flyteadmin's `addPermissions`: the resolved security context's service account (the
        // spec's, which matchable attributes filled in, else the launch plan's).
        service_account: [spec.security_context.as_ref(), lp.security_context.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|s| s.run_as.as_ref())
            .map(|r| r.k8s_service_account.clone())
            .find(|s| !s.is_empty())
            .unwrap_or_default(),
        // As flyteadmin: a RECOVERED execution with a reference execution recovers from it,
        // however it was created (RecoverExecution, or a launch-plan node of one).
        recover_from: spec
            .metadata
            .as_ref()
            .filter(|m| m.mode == admin::execution_metadata::ExecutionMode::Recovered as i32)
            .and_then(|m| m.reference_execution.clone()),
        // From the matchable attributes, by the caller.
        plugin_overrides: Vec::new(),
    }
}

/// Where an execution's literal map is kept: small ones in its row, as an inline `data:` URL
/// (no directory and file per execution; GetExecutionData and relaunch decode it), larger
/// ones offloaded as flyteadmin offloads them all.
async fn store_inputs(
    state: &AdminState,
    key: &ExecutionKey,
    what: &str,
    map: &LiteralMap,
    inline_max: usize,
) -> AdminResult<String> {
    if map.encoded_len() <= inline_max {
        return Ok(crate::service::admin::inline_inputs::encode(map));
    }
    offload(state, key, what, map).await
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
    let registration = RegistrationService::new(state.clone());
    let workflow = RegisterWorkflow {
        id: workflow_id.clone(),
        spec: workflow_spec,
        raw_spec: None,
    };
    match registration.register_workflow(workflow).await {
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
    let launch_plan = RegisterLaunchPlan {
        id: lp_id,
        spec: lp_spec,
        raw_spec: None,
    };
    match registration.register_launch_plan(launch_plan).await {
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

async fn relaunch(
    state: &AdminState,
    entities: &EntityCache,
    command: RelaunchExecution,
) -> AdminResult<WorkflowExecutionIdentifier> {
    let key = command.original;
    if let Some(name) = &command.name {
        validate_name(name)?;
    }
    let original = get_record(state, &key).await?;
    let mut spec = derived_spec(
        &original,
        admin::execution_metadata::ExecutionMode::Relaunch,
    )?;
    spec.overwrite_cache = command.overwrite_cache;
    let inputs = user_inputs(state, &original, &spec).await?;
    let created = create(
        state,
        entities,
        derived_command(&original, command.name, spec, inputs)?,
    )
    .await?;
    tracing::info!(original = %key, relaunched = %created.name, "execution relaunched");
    Ok(created)
}

async fn recover(
    state: &AdminState,
    entities: &EntityCache,
    command: RecoverExecution,
) -> AdminResult<WorkflowExecutionIdentifier> {
    let key = command.original;
    if let Some(name) = &command.name {
        validate_name(name)?;
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
    if let Some(parent) = command.parent_node_execution {
        // A launch-plan node recovering its child: the new child belongs to the new parent.
        spec.metadata
            .get_or_insert_with(Default::default)
            .parent_node_execution = Some(parent);
    }
    let inputs = user_inputs(state, &original, &spec).await?;
    let created = create(
        state,
        entities,
        derived_command(&original, command.name, spec, inputs)?,
    )
    .await?;
    tracing::info!(original = %key, recovered = %created.name, "execution recovered");
    Ok(created)
}

/// The create command of a relaunch or recovery: what the original ran (its task, or its
/// launch plan), in its project and domain.
fn derived_command(
    original: &ExecutionRecord,
    name: Option<String>,
    spec: ExecutionSpec,
    inputs: LiteralMap,
) -> AdminResult<CreateExecution> {
    let target = spec.launch_plan.as_ref().ok_or_else(|| {
        AdminError::Internal(format!("the spec of {} has no launch plan", original.key))
    })?;
    let source = match core::ResourceType::try_from(target.resource_type) {
        Ok(core::ResourceType::Task) => {
            ExecutionSource::Task(entity_key(ResourceType::Task, target))
        }
        _ => ExecutionSource::LaunchPlan(entity_key(ResourceType::LaunchPlan, target)),
    };
    Ok(CreateExecution {
        project: original.key.project.clone(),
        domain: original.key.domain.clone(),
        name,
        source,
        inputs,
        spec,
        raw_spec: None,
    })
}

// --- terminate ------------------------------------------------------------------------------

async fn terminate(state: &AdminState, command: TerminateExecution) -> AdminResult<Terminated> {
    let TerminateExecution { id: key, cause } = command;
    let refused = transition(state, &key, |mut record| {
        if is_workflow_terminal_name(&record.phase) {
            return Err(Ok(Some(Terminated::AlreadyFinished {
                message: format!(
                    "Cannot abort an already terminated workflow execution {}/{}/{} (phase {})",
                    key.project, key.domain, key.name, record.phase
                ),
                phase: record.phase.clone(),
            })));
        }
        let mut closure: ExecutionClosure =
            decode_stored(&record.closure, "execution closure").map_err(Err)?;
        closure.output_result = Some(execution_closure::OutputResult::AbortMetadata(
            admin::AbortMetadata {
                cause: cause.clone(),
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
                    cause: cause.clone(),
                }],
                ..Default::default()
            },
            Ok(None),
        ))
    })
    .await??;
    if let Some(finished) = refused {
        return Ok(finished);
    }
    tracing::info!(execution = %key, cause = %cause, "execution aborting");
    let running = match &state.launcher {
        Some(launcher) => match launcher.abort(&wf_exec_id(&key), &cause).await {
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
    Ok(Terminated::Aborting)
}

// --- records --------------------------------------------------------------------------------

/// An execution's record; NOT_FOUND naming it.
pub(crate) async fn get_record(
    state: &AdminState,
    key: &ExecutionKey,
) -> AdminResult<ExecutionRecord> {
    state.store.get_execution(key).await.map_err(|e| match e {
        StoreError::NotFound(_) => AdminError::NotFound(format!("{key} not found")),
        other => other.into(),
    })
}

/// Runs one read-decide-write of an execution as a store transition (the row locked, the
/// decision on what the previous transition wrote); `NotFound` naming it if it does not exist.
/// `decide` returns the changes, or an outcome for the caller that writes nothing.
pub(crate) async fn transition<T: Send>(
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

/// Reads a literal map by native URL in full, whatever its size (the engine's services need
/// the values, not a link). `None` if the object does not exist.
pub(crate) async fn read_full_literal_map(
    state: &AdminState,
    url: &str,
) -> AdminResult<Option<LiteralMap>> {
    if let Some(map) = crate::service::admin::inline_inputs::decode(url) {
        return map.map(Some);
    }
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

#[cfg(test)]
mod tests {
    use super::core::workflow_execution::Phase;
    use super::*;
    use admin::execution_spec::NotificationOverrides;

    fn email(phases: &[Phase]) -> admin::Notification {
        admin::Notification {
            phases: phases.iter().map(|p| *p as i32).collect(),
            r#type: Some(admin::notification::Type::Email(admin::EmailNotification {
                recipients_email: vec!["ops@example.com".into()],
                ..Default::default()
            })),
        }
    }

    fn lp(notifications: Vec<admin::Notification>) -> LaunchPlanSpec {
        LaunchPlanSpec {
            entity_metadata: Some(admin::LaunchPlanMetadata {
                notifications,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn notify_phases_resolve_as_flyteadmin() {
        let none = ExecutionSpec::default();
        // Nothing asked: no phase, so no outbox row at all.
        assert!(notify_phases(&none, &LaunchPlanSpec::default()).is_empty());
        // The launch plan's.
        let on_failure = lp(vec![email(&[Phase::Failed, Phase::TimedOut])]);
        assert_eq!(notify_phases(&none, &on_failure), ["FAILED", "TIMED_OUT"]);
        // The execution's own list wins over the launch plan's.
        let own = ExecutionSpec {
            notification_overrides: Some(NotificationOverrides::Notifications(
                admin::NotificationList {
                    notifications: vec![email(&[Phase::Succeeded]), email(&[Phase::Aborted])],
                },
            )),
            ..Default::default()
        };
        assert_eq!(notify_phases(&own, &on_failure), ["SUCCEEDED", "ABORTED"]);
        // disable_all turns off the launch plan's.
        let disabled = ExecutionSpec {
            notification_overrides: Some(NotificationOverrides::DisableAll(true)),
            ..Default::default()
        };
        assert!(notify_phases(&disabled, &on_failure).is_empty());
        // Non-terminal phases never notify.
        assert!(notify_phases(&none, &lp(vec![email(&[Phase::Running])])).is_empty());
    }
}
