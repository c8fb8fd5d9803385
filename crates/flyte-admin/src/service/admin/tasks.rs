//! CreateTask / GetTask / ListTasks / ListTaskIds (flyteadmin `task_manager.go`).

use bytes::Bytes;
use chrono::Utc;
use flyte_core::compiler::compile_task;
use flyte_core::ids::ResourceType;
use flyte_store::EntityRecord;
use flyteidl::admin::{
    Task, TaskClosure, TaskCreateRequest, TaskCreateResponse, TaskList, TaskSpec,
};
use flyteidl::core::{Identifier, TaskTemplate};
use prost::Message;

use super::common::{decode_stored, identifier, missing, timestamp};
use super::entities::{self, Encoded, Kind, NewVersion};
use super::lists::{ENTITY_FIELDS, ListFields};
use crate::error::AdminResult;
use crate::fidelity;
use crate::services::registration::{RegisterTask, RegistrationService};
use crate::state::AdminState;

/// `TaskSpec.template`.
const SPEC_TEMPLATE_FIELD: u32 = 1;
/// `TaskClosure.compiled_task` → `CompiledTask.template`.
const CLOSURE_TEMPLATE_PATH: &[u32] = &[1, 1];
/// `Task.closure`.
const ENTITY_CLOSURE_FIELD: u32 = 2;

pub(super) struct Tasks;

impl Kind for Tasks {
    const RESOURCE: ResourceType = ResourceType::Task;
    const NOUN: &'static str = "task";
    const LIST_FIELDS: ListFields = ListFields {
        what: "tasks",
        prefixes: &["task"],
        filter_fields: ENTITY_FIELDS,
        sort_fields: ENTITY_FIELDS,
    };
    type Entity = Task;
    type List = TaskList;

    /// The stored closure already holds the client's template bytes (see [`create`]).
    fn entity(record: &EntityRecord) -> AdminResult<Encoded<Task>> {
        let closure: TaskClosure = decode_stored(&record.closure, "task closure")?;
        let spec: TaskSpec = decode_stored(&record.spec, "task spec")?;
        let task = Task {
            id: Some(identifier(&record.key)),
            closure: Some(closure),
            short_description: short_description(&spec),
        };
        Ok(Encoded::spliced(
            task,
            &[ENTITY_CLOSURE_FIELD],
            &record.closure,
        ))
    }

    fn list(tasks: Vec<Task>, token: String) -> TaskList {
        TaskList { tasks, token }
    }
}

fn short_description(spec: &TaskSpec) -> String {
    spec.description
        .as_ref()
        .map(|d| d.short_description.clone())
        .unwrap_or_default()
}

/// The gRPC adapter: the request's shape (an id and a spec), then [`RegistrationService`].
pub(super) async fn create(
    state: &AdminState,
    request: tonic::Request<TaskCreateRequest>,
) -> AdminResult<tonic::Response<TaskCreateResponse>> {
    let raw_spec = entities::raw_spec(&request, |r| r.spec.as_ref());
    let TaskCreateRequest { id, spec } = request.into_inner();
    let command = entities::logging_refusal::<Tasks, _>(id.as_ref(), async {
        Ok(RegisterTask {
            id: id.clone().ok_or_else(|| missing("id"))?,
            spec: spec.ok_or_else(|| missing("spec"))?,
            raw_spec: Some(raw_spec),
        })
    })
    .await?;
    RegistrationService::new(state.clone())
        .register_task(command)
        .await?;
    Ok(tonic::Response::new(TaskCreateResponse {}))
}

/// Registers a new version (the domain command behind [`RegistrationService`]); refusals are
/// logged once.
pub(crate) async fn register(state: &AdminState, command: RegisterTask) -> AdminResult<()> {
    let id = command.id.clone();
    entities::logging_refusal::<Tasks, _>(Some(&id), register_version(state, command)).await
}

async fn register_version(state: &AdminState, command: RegisterTask) -> AdminResult<()> {
    let RegisterTask {
        id,
        mut spec,
        raw_spec,
    } = command;
    let raw_spec = raw_spec.unwrap_or_else(|| spec.encode_to_vec().into());
    let (id, key) = entities::checked_new_id::<Tasks>(state, Some(&id)).await?;
    // flyteadmin's setDefaults: the stored template carries the request's identifier.
    let template = spec
        .template
        .as_mut()
        .ok_or_else(|| missing("spec.template"))?;
    template.id = Some(id.clone());
    // As flyteadmin's GetTaskDigest: the template only, so the description does not count.
    let digest = entities::digest(&spec.template)?;
    entities::ensure_new::<Tasks>(state, &key, &digest).await?;

    let template = spec
        .template
        .as_ref()
        .ok_or_else(|| missing("spec.template"))?;
    let compiled = compile_task(template).map_err(|e| entities::compile_error::<Tasks>(&key, e))?;
    let created_at = Utc::now();
    let closure = TaskClosure {
        compiled_task: Some(compiled),
        created_at: Some(timestamp(created_at)),
    };
    // The closure is stored with the template as the client sent it, so reads return its
    // unknown fields too.
    let closure = fidelity::splice(
        closure.encode_to_vec(),
        CLOSURE_TEMPLATE_PATH,
        &raw_template(&raw_spec, &id),
    );
    let version = NewVersion {
        key,
        digest,
        raw_spec,
        closure,
        state: None,
        created_at,
    };
    entities::insert::<Tasks>(state, version).await
}

/// The client's template bytes followed by the request's id: protobuf merges the second `id`
/// over the first, which applies the same default as the typed path.
fn raw_template(raw_spec: &[u8], id: &Identifier) -> Vec<u8> {
    let mut raw = fidelity::sub_message(raw_spec, &[SPEC_TEMPLATE_FIELD])
        .unwrap_or_default()
        .to_vec();
    let id_patch = TaskTemplate {
        id: Some(id.clone()),
        ..Default::default()
    };
    raw.extend(id_patch.encode_to_vec());
    raw
}

/// The compiled task of a stored task, as the client sent its template (for workflow
/// closures, which embed the task templates they use).
pub(super) fn raw_compiled_task(record: &EntityRecord) -> Option<Bytes> {
    fidelity::sub_message(&record.closure, &CLOSURE_TEMPLATE_PATH[..1])
}

/// The typed template of a stored task.
pub(crate) fn stored_template(record: &EntityRecord) -> AdminResult<TaskTemplate> {
    let closure: TaskClosure = decode_stored(&record.closure, "task closure")?;
    Ok(closure
        .compiled_task
        .and_then(|c| c.template)
        .unwrap_or_default())
}
