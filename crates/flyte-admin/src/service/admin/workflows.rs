//! CreateWorkflow / GetWorkflow / ListWorkflows / ListWorkflowIds (flyteadmin
//! `workflow_manager.go`): the spec is compiled against the registered tasks and launch plans
//! it refers to, and the compiled closure is what reads return.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::Utc;
use flyte_core::compiler::{self, IdKey, References, Resolved};
use flyte_core::ids::ResourceType;
use flyte_store::{EntityKey, EntityRecord};
use flyteidl::admin::{
    LaunchPlanClosure, Workflow, WorkflowClosure, WorkflowCreateRequest, WorkflowCreateResponse,
    WorkflowList, WorkflowSpec,
};
use flyteidl::core::{CompiledWorkflowClosure, TypedInterface, VariableMap};
use prost::Message;

use super::common::{decode_stored, identifier, missing, timestamp};
use super::entities::{self, Encoded, Kind, NewVersion};
use super::lists::{ENTITY_FIELDS, ListFields};
use super::tasks;
use crate::error::AdminResult;
use crate::fidelity;
use crate::services::registration::{RegisterWorkflow, RegistrationService};
use crate::state::AdminState;

/// `WorkflowClosure.compiled_workflow` → `CompiledWorkflowClosure.tasks`.
const CLOSURE_TASKS_PATH: &[u32] = &[1, 3];
/// `Workflow.closure`.
const ENTITY_CLOSURE_FIELD: u32 = 2;

pub(super) struct Workflows;

impl Kind for Workflows {
    const RESOURCE: ResourceType = ResourceType::Workflow;
    const NOUN: &'static str = "workflow";
    const LIST_FIELDS: ListFields = ListFields {
        what: "workflows",
        prefixes: &["workflow"],
        filter_fields: ENTITY_FIELDS,
        sort_fields: ENTITY_FIELDS,
    };
    type Entity = Workflow;
    type List = WorkflowList;

    fn entity(record: &EntityRecord) -> AdminResult<Encoded<Workflow>> {
        let closure: WorkflowClosure = decode_stored(&record.closure, "workflow closure")?;
        let spec: WorkflowSpec = decode_stored(&record.spec, "workflow spec")?;
        let workflow = Workflow {
            id: Some(identifier(&record.key)),
            closure: Some(closure),
            short_description: spec
                .description
                .map(|d| d.short_description)
                .unwrap_or_default(),
        };
        Ok(Encoded::spliced(
            workflow,
            &[ENTITY_CLOSURE_FIELD],
            &record.closure,
        ))
    }

    fn list(workflows: Vec<Workflow>, token: String) -> WorkflowList {
        WorkflowList { workflows, token }
    }
}

/// The gRPC adapter: the request's shape (an id and a spec), then [`RegistrationService`].
pub(super) async fn create(
    state: &AdminState,
    request: tonic::Request<WorkflowCreateRequest>,
) -> AdminResult<tonic::Response<WorkflowCreateResponse>> {
    let raw_spec = entities::raw_spec(&request, |r| r.spec.as_ref());
    let WorkflowCreateRequest { id, spec } = request.into_inner();
    let command = entities::logging_refusal::<Workflows, _>(id.as_ref(), async {
        Ok(RegisterWorkflow {
            id: id.clone().ok_or_else(|| missing("id"))?,
            spec: spec.ok_or_else(|| missing("spec"))?,
            raw_spec: Some(raw_spec),
        })
    })
    .await?;
    RegistrationService::new(state.clone())
        .register_workflow(command)
        .await?;
    Ok(tonic::Response::new(WorkflowCreateResponse {}))
}

/// Registers a new version (the domain command behind [`RegistrationService`]); refusals are
/// logged once.
pub(crate) async fn register(state: &AdminState, command: RegisterWorkflow) -> AdminResult<()> {
    let id = command.id.clone();
    entities::logging_refusal::<Workflows, _>(Some(&id), register_version(state, command)).await
}

async fn register_version(state: &AdminState, command: RegisterWorkflow) -> AdminResult<()> {
    let RegisterWorkflow {
        id,
        mut spec,
        raw_spec,
    } = command;
    let raw_spec = raw_spec.unwrap_or_else(|| spec.encode_to_vec().into());
    let (id, key) = entities::checked_new_id::<Workflows>(state, Some(&id)).await?;
    let template = spec
        .template
        .as_mut()
        .ok_or_else(|| missing("spec.template"))?;
    // flyteadmin's setDefaults: the primary template carries the request's identifier.
    template.id = Some(id.clone());
    // The workflow's structure only (as flyteadmin digests the compiled workflow): the
    // description does not count.
    let canonical = compiler::canonical_spec(&spec);
    let digest = entities::digest(&(&canonical.template, &canonical.sub_workflows))?;
    entities::ensure_new::<Workflows>(state, &key, &digest).await?;

    let references = resolve(state, &key, &compiler::referenced_entities(&spec)).await?;
    let compiled = compiler::compile_workflow(&spec, &references.resolved)
        .map_err(|e| entities::compile_error::<Workflows>(&key, e))?;
    let created_at = Utc::now();
    let closure = closure_bytes(compiled, &references.raw_tasks, timestamp(created_at));
    let version = NewVersion {
        key,
        digest,
        raw_spec,
        closure,
        state: None,
        created_at,
    };
    entities::insert::<Workflows>(state, version).await
}

/// The referenced entities, typed for the compiler, and the tasks' compiled bytes as stored.
struct ResolvedRefs {
    resolved: Resolved,
    raw_tasks: HashMap<IdKey, Bytes>,
}

/// Fetches every referenced task and launch plan; one that is not registered is refused by
/// name.
async fn resolve(
    state: &AdminState,
    workflow: &EntityKey,
    refs: &References,
) -> AdminResult<ResolvedRefs> {
    let mut out = ResolvedRefs {
        resolved: Resolved::default(),
        raw_tasks: HashMap::new(),
    };
    for id in &refs.tasks {
        let record =
            entities::referenced(state, workflow, store_key(ResourceType::Task, id)).await?;
        out.resolved
            .tasks
            .insert(id.clone(), tasks::stored_template(&record)?);
        if let Some(raw) = tasks::raw_compiled_task(&record) {
            out.raw_tasks.insert(id.clone(), raw);
        }
    }
    for id in &refs.launch_plans {
        let record =
            entities::referenced(state, workflow, store_key(ResourceType::LaunchPlan, id)).await?;
        let closure: LaunchPlanClosure = decode_stored(&record.closure, "launch plan closure")?;
        out.resolved
            .launch_plans
            .insert(id.clone(), launch_plan_interface(closure));
    }
    Ok(out)
}

fn store_key(resource: ResourceType, id: &IdKey) -> EntityKey {
    EntityKey {
        resource,
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: id.name.clone(),
        version: id.version.clone(),
    }
}

/// What a launch plan node binds to: the launch plan's expected inputs and outputs (inputs
/// fixed by the launch plan are not among the expected ones).
fn launch_plan_interface(closure: LaunchPlanClosure) -> TypedInterface {
    let inputs = closure.expected_inputs.unwrap_or_default().parameters;
    TypedInterface {
        inputs: Some(VariableMap {
            variables: inputs
                .into_iter()
                .filter_map(|(name, p)| p.var.map(|v| (name, v)))
                .collect(),
        }),
        outputs: closure.expected_outputs,
    }
}

/// The stored closure: the compiled workflow, with each embedded task template as its client
/// sent it (so GetWorkflow returns the same task templates as GetTask).
fn closure_bytes(
    compiled: CompiledWorkflowClosure,
    raw_tasks: &HashMap<IdKey, Bytes>,
    created_at: pbjson_types::Timestamp,
) -> Vec<u8> {
    let tasks: Vec<Vec<u8>> = compiled
        .tasks
        .iter()
        .map(|task| {
            let raw = task
                .template
                .as_ref()
                .and_then(|t| t.id.as_ref())
                .and_then(|id| raw_tasks.get(&IdKey::from(id)));
            match raw {
                Some(raw) => raw.to_vec(),
                None => task.encode_to_vec(),
            }
        })
        .collect();
    let closure = WorkflowClosure {
        compiled_workflow: Some(compiled),
        created_at: Some(created_at),
    };
    fidelity::splice_repeated(closure.encode_to_vec(), CLOSURE_TASKS_PATH, &tasks)
}

/// The typed interface of a stored workflow (for launch plans).
pub(super) fn stored_interface(record: &EntityRecord) -> AdminResult<TypedInterface> {
    let closure: WorkflowClosure = decode_stored(&record.closure, "workflow closure")?;
    Ok(closure
        .compiled_workflow
        .and_then(|c| c.primary)
        .and_then(|p| p.template)
        .and_then(|t| t.interface)
        .unwrap_or_default())
}
