//! What every AdminService handler shares: identifier checks, the project/domain check that
//! guards every create, timestamps, and turning handler results into gRPC answers.

use std::future::Future;

use chrono::{DateTime, Utc};
use flyte_core::ids::{self, ResourceType, ValidationError};
use flyte_store::{EntityKey, StoreError};
use flyteidl::admin::NamedEntityIdentifier;
use flyteidl::core::Identifier;
use tracing::Instrument;

use crate::error::{AdminError, AdminResult, quoted};
use crate::state::AdminState;

/// `flyteidl.admin.Project.ProjectState.ARCHIVED`: such projects take no new registrations.
const PROJECT_ARCHIVED: i32 = 1;

/// Runs a handler inside a span carrying the RPC, project and domain, and converts its error
/// into the gRPC status (the only place handler errors leave the admin service).
pub(crate) async fn run<T>(
    rpc: &'static str,
    project: &str,
    domain: &str,
    handler: impl Future<Output = AdminResult<tonic::Response<T>>>,
) -> Result<tonic::Response<T>, tonic::Status> {
    let span = tracing::info_span!("admin", rpc, project, domain);
    async move {
        handler.await.map_err(|err| {
            tracing::debug!(error = %err, "request refused");
            tonic::Status::from(err)
        })
    }
    .instrument(span)
    .await
}

pub(super) fn invalid(err: ValidationError) -> AdminError {
    AdminError::InvalidArgument(err.to_string())
}

pub(crate) fn missing(field: &str) -> AdminError {
    AdminError::InvalidArgument(format!("missing {field}"))
}

/// A versioned identifier of the expected resource type, checked as flyteadmin does.
pub(super) fn checked_id(
    id: Option<&Identifier>,
    expected: ResourceType,
) -> AdminResult<&Identifier> {
    ids::validate_core_identifier(id, expected).map_err(invalid)?;
    id.ok_or_else(|| missing("id"))
}

/// A `NamedEntityIdentifier` with project, domain and name.
pub(super) fn checked_named_id(
    id: Option<&NamedEntityIdentifier>,
) -> AdminResult<&NamedEntityIdentifier> {
    let id = id.ok_or_else(|| missing("id"))?;
    ids::validate_named_entity(&id.project, &id.domain, &id.name).map_err(invalid)?;
    Ok(id)
}

/// Project and domain of a list request: required, and well-formed.
pub(super) fn checked_scope(project: &str, domain: &str) -> AdminResult<()> {
    ids::validate_project(project).map_err(invalid)?;
    ids::validate_domain(domain).map_err(invalid)
}

/// The resource type of a named-entity or description-entity request.
pub(super) fn checked_resource_type(value: i32) -> AdminResult<ResourceType> {
    ResourceType::from_proto(value).ok_or_else(|| {
        AdminError::InvalidArgument(format!(
            "invalid value for resource_type: {value} (expected TASK, WORKFLOW or LAUNCH_PLAN)"
        ))
    })
}

pub(crate) fn entity_key(resource: ResourceType, id: &Identifier) -> EntityKey {
    EntityKey {
        resource,
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: id.name.clone(),
        version: id.version.clone(),
    }
}

pub(crate) fn identifier(key: &EntityKey) -> Identifier {
    Identifier {
        resource_type: key.resource as i32,
        project: key.project.clone(),
        domain: key.domain.clone(),
        name: key.name.clone(),
        version: key.version.clone(),
        ..Default::default()
    }
}

/// flyteadmin's `ValidateProjectAndDomain`: every create names a registered, active project
/// and one of the configured domains, so nothing lands in a scope no one can list.
pub(crate) async fn ensure_project_domain(
    state: &AdminState,
    project: &str,
    domain: &str,
) -> AdminResult<()> {
    let record = match state.store.get_project(project).await {
        Ok(record) => record,
        Err(StoreError::NotFound(_)) => {
            return Err(AdminError::InvalidArgument(format!(
                "project {0} is not registered; register it first \
                 (RegisterProject, e.g. `flytectl create project --id {0}`)",
                quoted(project)
            )));
        }
        Err(err) => return Err(err.into()),
    };
    if record.state == PROJECT_ARCHIVED {
        return Err(AdminError::InvalidArgument(format!(
            "project {} is archived and takes no new registrations",
            quoted(project)
        )));
    }
    ensure_domain(state, domain)
}

/// The domain half of [`ensure_project_domain`], for a write whose insert checks the project
/// itself (CreateExecution: its foreign key and the archived state).
pub(crate) fn ensure_domain(state: &AdminState, domain: &str) -> AdminResult<()> {
    if !state.config.domains.iter().any(|(id, _)| id == domain) {
        let known: Vec<&str> = state
            .config
            .domains
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        return Err(AdminError::InvalidArgument(format!(
            "domain {} is not configured on this server (known domains: {})",
            quoted(domain),
            known.join(", ")
        )));
    }
    Ok(())
}

pub(super) fn timestamp(at: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// Decodes a payload this server stored; failing to is a server fault, not the client's.
pub(crate) fn decode_stored<M: prost::Message + Default>(
    bytes: &[u8],
    what: &str,
) -> AdminResult<M> {
    M::decode(bytes)
        .map_err(|err| AdminError::Internal(format!("stored {what} cannot be decoded: {err}")))
}
