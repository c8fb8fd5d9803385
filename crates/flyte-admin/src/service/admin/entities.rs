//! The plumbing tasks, workflows and launch plans share: registering an immutable version
//! idempotently, and reading one or a page back with the client's bytes spliced in.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use flyte_core::compiler::CompileErrors;
use flyte_core::ids::{self, ResourceType};
use flyte_store::{
    EntityKey, EntityRecord, EntityScope, LaunchPlanState, ListQuery, Page, StoreError,
};
use flyteidl::admin::{
    NamedEntityIdentifier, NamedEntityIdentifierList, NamedEntityIdentifierListRequest,
    ResourceListRequest,
};
use flyteidl::core::Identifier;
use prost::Message;

use super::common::{checked_id, checked_scope, ensure_project_domain, entity_key, missing};
use super::lists::{self, ListArgs, ListFields, NAME_FIELDS, NAME_SORT_FIELDS};
use crate::error::{AdminError, AdminResult, quoted};
use crate::fidelity;
use crate::state::AdminState;

/// The `spec` field of TaskCreateRequest, WorkflowCreateRequest and LaunchPlanCreateRequest.
pub(super) const CREATE_SPEC_FIELD: u32 = 2;
/// The items of TaskList, WorkflowList and LaunchPlanList.
const LIST_ITEMS_FIELD: u32 = 1;

/// One registered resource kind, as the shared plumbing sees it.
pub(super) trait Kind {
    const RESOURCE: ResourceType;
    /// How messages name the kind ("launch plan").
    const NOUN: &'static str;
    const LIST_FIELDS: ListFields;
    /// `admin.Task`, `admin.Workflow`, `admin.LaunchPlan`.
    type Entity: Message + Default;
    /// `admin.TaskList`, …: the entities as field 1, the token as field 2.
    type List: Message + Default;

    /// The entity of a stored version, typed and encoded with the stored raw bytes in place.
    fn entity(record: &EntityRecord) -> AdminResult<Encoded<Self::Entity>>;
    fn list(items: Vec<Self::Entity>, token: String) -> Self::List;
}

/// A response message and the bytes to send for it (see [`fidelity`]).
pub(super) struct Encoded<T> {
    pub typed: T,
    pub bytes: Vec<u8>,
}

impl<T: Message> Encoded<T> {
    /// `typed`, sent with the message field at `path` as `raw`.
    pub fn spliced(typed: T, path: &[u32], raw: &[u8]) -> Self {
        let bytes = fidelity::splice(typed.encode_to_vec(), path, raw);
        Self { typed, bytes }
    }

    pub fn into_response(self) -> tonic::Response<T> {
        fidelity::respond(self.typed, self.bytes)
    }
}

// --- registration -----------------------------------------------------------------------

/// The id of a create request: well-formed, of the kind's type, in a registered project and
/// a configured domain.
pub(super) async fn checked_new_id<K: Kind>(
    state: &AdminState,
    id: Option<&Identifier>,
) -> AdminResult<(Identifier, EntityKey)> {
    let id = checked_id(id, K::RESOURCE)?;
    ensure_project_domain(state, &id.project, &id.domain).await?;
    Ok((id.clone(), entity_key(K::RESOURCE, id)))
}

/// Runs a create handler and logs its refusal once, at WARN, with the id and the reason: a
/// failed `pyflyte register` must be explainable from the server's log. An identical
/// re-registration (ALREADY_EXISTS, which flytekit counts as success) is not a refusal, and
/// INTERNAL is logged at ERROR where it is answered ([`AdminError::answer`]).
pub(super) async fn logging_refusal<K: Kind, T>(
    id: Option<&Identifier>,
    handler: impl Future<Output = AdminResult<T>>,
) -> AdminResult<T> {
    let result = handler.await;
    if let Err(err) = &result {
        let id = id.map(ids::display_identifier).unwrap_or_default();
        match err {
            AdminError::AlreadyExists(_) => {
                tracing::debug!(kind = K::NOUN, %id, "already registered")
            }
            AdminError::Internal(_) => {}
            _ => tracing::warn!(
                kind = K::NOUN,
                %id,
                code = ?err.grpc_code(),
                reason = %err,
                "registration refused"
            ),
        }
    }
    result
}

/// The raw spec of a create request (field 2), as the client encoded it.
pub(super) fn raw_spec<R, S>(
    request: &tonic::Request<R>,
    spec: impl FnOnce(&R) -> Option<&S>,
) -> Bytes
where
    R: Message,
    S: Message,
{
    fidelity::raw_field(request, &[CREATE_SPEC_FIELD], |r| {
        spec(r).map(Message::encode_to_vec).unwrap_or_default()
    })
}

/// The digest of registered content (with the server's defaults applied): SHA-256 of its
/// canonical proto3-JSON form. Not the prost encoding: `google.protobuf.Struct` (dataclass
/// metadata, `TaskTemplate.custom`) is a hash map whose encoding order changes from process to
/// process, and flytekit's own bytes vary the same way; JSON objects are written with sorted
/// keys. Unknown fields do not take part, so a newer client re-registering is still "identical".
pub(super) fn digest(content: &impl serde::Serialize) -> AdminResult<Vec<u8>> {
    let value = serde_json::to_value(content)
        .map_err(|e| AdminError::Internal(format!("digest of registered content: {e}")))?;
    let mut canonical = Vec::new();
    write_canonical_json(&value, &mut canonical);
    Ok(ids::digest(&canonical).to_vec())
}

/// JSON with object keys sorted at every level, whatever map type serde_json was built with.
fn write_canonical_json(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(key.clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical_json(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// Refuses a version that exists, before any compile work: flytekit re-registers whole
/// packages, so this is the common path. Identical content is ALREADY_EXISTS (flytekit treats
/// it as success); different content is INVALID_ARGUMENT, as in flyteadmin.
pub(super) async fn ensure_new<K: Kind>(
    state: &AdminState,
    key: &EntityKey,
    digest: &[u8],
) -> AdminResult<()> {
    match state.store.get_entity(key).await {
        Ok(existing) => Err(exists_error::<K>(key, existing.digest == digest)),
        Err(StoreError::NotFound(_)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

fn exists_error<K: Kind>(key: &EntityKey, identical: bool) -> AdminError {
    let noun = K::NOUN;
    if identical {
        return AdminError::AlreadyExists(format!(
            "{noun} with identical structure already exists"
        ));
    }
    AdminError::InvalidArgument(format!(
        "{} {noun} with different structure already exists. (Please register a new version of \
         the {noun}): version {} of {} was registered with other content",
        quoted(&key.name),
        quoted(&key.version),
        quoted(&format!("{}/{}/{}", key.project, key.domain, key.name))
    ))
}

/// A new version, ready to store.
pub(super) struct NewVersion {
    pub key: EntityKey,
    pub digest: Vec<u8>,
    pub raw_spec: Bytes,
    pub closure: Vec<u8>,
    pub state: Option<LaunchPlanState>,
    pub created_at: DateTime<Utc>,
}

pub(super) async fn insert<K: Kind>(state: &AdminState, version: NewVersion) -> AdminResult<()> {
    let key = version.key.clone();
    let digest = version.digest.clone();
    let record = EntityRecord {
        key: version.key,
        digest: version.digest,
        spec: version.raw_spec.to_vec(),
        closure: version.closure,
        state: version.state,
        created_at: version.created_at,
    };
    match state.store.create_entity(record).await {
        Ok(()) => {
            tracing::info!(name = %key.name, version = %key.version, "{} registered", K::NOUN);
            Ok(())
        }
        // A concurrent registration of the same version won (flytekit registers tasks from a
        // thread pool and retries failed calls); answer as if it had come first.
        Err(StoreError::AlreadyExists(_)) => {
            ensure_new::<K>(state, &key, &digest).await?;
            Err(AdminError::Internal(format!(
                "{key} was reported to exist but cannot be read"
            )))
        }
        Err(err) => Err(err.into()),
    }
}

/// Compile errors as INVALID_ARGUMENT, one problem per line, under the entity they refuse.
pub(super) fn compile_error<K: Kind>(key: &EntityKey, errors: CompileErrors) -> AdminError {
    AdminError::InvalidArgument(format!(
        "{} {} is invalid:\n{errors}",
        K::NOUN,
        quoted_id(key)
    ))
}

/// A referenced entity that must already be registered; a missing one is the client's
/// mistake (INVALID_ARGUMENT naming it), not a NOT_FOUND of the entity being created.
pub(super) async fn referenced(
    state: &AdminState,
    referrer: &EntityKey,
    key: EntityKey,
) -> AdminResult<EntityRecord> {
    match state.store.get_entity(&key).await {
        Ok(record) => Ok(record),
        Err(StoreError::NotFound(_)) => Err(AdminError::InvalidArgument(format!(
            "{} {} refers to {} {}, which is not registered; register it first",
            noun(referrer.resource),
            quoted_id(referrer),
            noun(key.resource),
            quoted_id(&key)
        ))),
        Err(err) => Err(err.into()),
    }
}

pub(super) fn noun(resource: ResourceType) -> &'static str {
    match resource {
        ResourceType::Task => "task",
        ResourceType::Workflow => "workflow",
        ResourceType::LaunchPlan => "launch plan",
    }
}

// --- reads --------------------------------------------------------------------------------

pub(super) async fn get<K: Kind>(
    state: &AdminState,
    id: Option<&Identifier>,
) -> AdminResult<tonic::Response<K::Entity>> {
    // REST paths carry no resource type; flyteadmin's Get handlers fill an UNSPECIFIED one in.
    let mut id = id.cloned();
    if let Some(id) = id.as_mut().filter(|id| id.resource_type == 0) {
        id.resource_type = K::RESOURCE as i32;
    }
    let id = checked_id(id.as_ref(), K::RESOURCE)?;
    let record = state.store.get_entity(&entity_key(K::RESOURCE, id)).await?;
    Ok(K::entity(&record)?.into_response())
}

/// ListTasks / ListWorkflows / ListLaunchPlans: one project and domain, optionally one name.
pub(super) async fn list<K: Kind>(
    state: &AdminState,
    request: &ResourceListRequest,
) -> AdminResult<tonic::Response<K::List>> {
    let id = request.id.as_ref().ok_or_else(|| missing("id"))?;
    checked_scope(&id.project, &id.domain)?;
    let scope = EntityScope {
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: (!id.name.is_empty()).then(|| id.name.clone()),
    };
    let args = ListArgs {
        limit: request.limit,
        token: &request.token,
        filters: &request.filters,
        sort_by: request.sort_by.as_ref(),
    };
    let page = list_page_query(state, K::RESOURCE, &scope, args, &K::LIST_FIELDS).await?;
    encode_page::<K>(page)
}

/// One page of versions of a resource in a scope, for a list request's parameters.
pub(super) async fn list_page_query(
    state: &AdminState,
    resource: ResourceType,
    scope: &EntityScope,
    args: ListArgs<'_>,
    fields: &ListFields,
) -> AdminResult<Page<EntityRecord>> {
    let query = lists::query(args, fields)?;
    Ok(state.store.list_entities(resource, scope, &query).await?)
}

pub(super) async fn list_scope<K: Kind>(
    state: &AdminState,
    scope: &EntityScope,
    query: &ListQuery,
) -> AdminResult<tonic::Response<K::List>> {
    let page = state.store.list_entities(K::RESOURCE, scope, query).await?;
    encode_page::<K>(page)
}

/// The list message, typed and encoded: each entity's spliced bytes become one element of
/// the repeated field, after the typed rest (the token).
fn encode_page<K: Kind>(page: Page<EntityRecord>) -> AdminResult<tonic::Response<K::List>> {
    let entities = page
        .items
        .iter()
        .map(K::entity)
        .collect::<AdminResult<Vec<_>>>()?;
    let (typed, encoded): (Vec<_>, Vec<_>) =
        entities.into_iter().map(|e| (e.typed, e.bytes)).unzip();
    let mut bytes = K::list(Vec::new(), page.next_token.clone()).encode_to_vec();
    bytes.extend(fidelity::repeated(LIST_ITEMS_FIELD, &encoded));
    Ok(fidelity::respond(K::list(typed, page.next_token), bytes))
}

/// ListTaskIds / ListWorkflowIds / ListLaunchPlanIds: the distinct names.
pub(super) async fn list_ids<K: Kind>(
    state: &AdminState,
    request: &NamedEntityIdentifierListRequest,
) -> AdminResult<tonic::Response<NamedEntityIdentifierList>> {
    checked_scope(&request.project, &request.domain)?;
    let fields = ListFields {
        what: K::LIST_FIELDS.what,
        prefixes: K::LIST_FIELDS.prefixes,
        filter_fields: NAME_FIELDS,
        sort_fields: NAME_SORT_FIELDS,
    };
    let query = lists::query(
        ListArgs {
            limit: request.limit,
            token: &request.token,
            filters: &request.filters,
            sort_by: request.sort_by.as_ref(),
        },
        &fields,
    )?;
    let page = state
        .store
        .list_entity_names(K::RESOURCE, &request.project, &request.domain, &query)
        .await?;
    let entities = page
        .items
        .into_iter()
        .map(|name| NamedEntityIdentifier {
            project: request.project.clone(),
            domain: request.domain.clone(),
            name,
            org: String::new(),
        })
        .collect();
    Ok(tonic::Response::new(NamedEntityIdentifierList {
        entities,
        token: page.next_token,
    }))
}

/// `'project/domain/name@version'`, shortened as every echoed input is.
pub(super) fn quoted_id(key: &EntityKey) -> String {
    quoted(&format!(
        "{}/{}/{}@{}",
        key.project, key.domain, key.name, key.version
    ))
}
