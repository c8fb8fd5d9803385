//! Named entities (flyteadmin `named_entity_manager.go`): the names under which versions of a
//! task, workflow or launch plan are registered, with their shared metadata.

use flyte_core::filters::{Filter, FilterOp};
use flyte_core::ids::ResourceType;
use flyte_store::{EntityScope, ListQuery, NamedEntityKey, NamedEntityMetadata};
use flyteidl::admin::{
    self, NamedEntity, NamedEntityGetRequest, NamedEntityIdentifier, NamedEntityList,
    NamedEntityListRequest, NamedEntityUpdateRequest, NamedEntityUpdateResponse,
};

use super::common::{checked_named_id, checked_resource_type, checked_scope, missing};
use super::entities::noun;
use super::lists::{self, ListArgs, ListFields};
use crate::error::{AdminError, AdminResult, quoted};
use crate::state::AdminState;

const STATE_FIELD: &str = "state";

const FIELDS: ListFields = ListFields {
    what: "named entities",
    prefixes: &[
        "entities",
        "named_entity_metadata",
        "task",
        "workflow",
        "launch_plan",
    ],
    filter_fields: &["name", "project", "domain", STATE_FIELD],
    sort_fields: &["name", "created_at", "updated_at"],
};

pub(super) async fn list(
    state: &AdminState,
    request: &NamedEntityListRequest,
) -> AdminResult<tonic::Response<NamedEntityList>> {
    let resource = checked_resource_type(request.resource_type)?;
    checked_scope(&request.project, &request.domain)?;
    let mut query = lists::query(
        ListArgs {
            limit: request.limit,
            token: &request.token,
            filters: &request.filters,
            sort_by: request.sort_by.as_ref(),
        },
        &FIELDS,
    )?;
    // System-generated workflows (the `.flytegen` wrappers of single-task executions) are
    // hidden from named-entity lists, as flyteadmin does.
    if resource == ResourceType::Workflow {
        query.filters.push(Filter {
            entity: None,
            field: STATE_FIELD.into(),
            op: FilterOp::Ne,
            values: vec![(admin::NamedEntityState::SystemGenerated as i32).to_string()],
        });
    }
    let page = state
        .store
        .list_named_entities(resource, &request.project, &request.domain, &query)
        .await?;
    let entities = page
        .items
        .into_iter()
        .map(|record| named_entity(record.key, record.metadata))
        .collect();
    Ok(tonic::Response::new(NamedEntityList {
        entities,
        token: page.next_token,
    }))
}

pub(super) async fn get(
    state: &AdminState,
    request: &NamedEntityGetRequest,
) -> AdminResult<tonic::Response<NamedEntity>> {
    let resource = checked_resource_type(request.resource_type)?;
    let id = checked_named_id(request.id.as_ref())?;
    ensure_exists(state, resource, id).await?;
    let key = named_key(resource, &id.project, &id.domain, &id.name);
    let metadata = state.store.get_named_entity_metadata(&key).await?;
    Ok(tonic::Response::new(named_entity(key, metadata)))
}

pub(crate) async fn update(
    state: &AdminState,
    request: &NamedEntityUpdateRequest,
) -> AdminResult<tonic::Response<NamedEntityUpdateResponse>> {
    let resource = checked_resource_type(request.resource_type)?;
    let id = checked_named_id(request.id.as_ref())?;
    let metadata = request
        .metadata
        .as_ref()
        .ok_or_else(|| missing("metadata"))?;
    if admin::NamedEntityState::try_from(metadata.state).is_err() {
        return Err(AdminError::InvalidArgument(format!(
            "invalid metadata.state {}: expected 0 (active), 1 (archived) or 2 (system generated)",
            metadata.state
        )));
    }
    ensure_exists(state, resource, id).await?;
    let metadata = NamedEntityMetadata {
        description: metadata.description.clone(),
        state: metadata.state,
    };
    state
        .store
        .update_named_entity_metadata(
            &named_key(resource, &id.project, &id.domain, &id.name),
            metadata,
        )
        .await?;
    Ok(tonic::Response::new(NamedEntityUpdateResponse {}))
}

/// A named entity exists once a version is registered under the name.
async fn ensure_exists(
    state: &AdminState,
    resource: ResourceType,
    id: &NamedEntityIdentifier,
) -> AdminResult<()> {
    let scope = EntityScope {
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: Some(id.name.clone()),
    };
    let query = ListQuery {
        limit: 1,
        ..Default::default()
    };
    let page = state.store.list_entities(resource, &scope, &query).await?;
    if page.items.is_empty() {
        return Err(AdminError::NotFound(format!(
            "no {} named {} is registered",
            noun(resource),
            quoted(&format!("{}/{}/{}", id.project, id.domain, id.name))
        )));
    }
    Ok(())
}

fn named_key(resource: ResourceType, project: &str, domain: &str, name: &str) -> NamedEntityKey {
    NamedEntityKey {
        resource,
        project: project.to_string(),
        domain: domain.to_string(),
        name: name.to_string(),
    }
}

fn named_entity(key: NamedEntityKey, metadata: NamedEntityMetadata) -> NamedEntity {
    NamedEntity {
        resource_type: key.resource as i32,
        id: Some(NamedEntityIdentifier {
            project: key.project,
            domain: key.domain,
            name: key.name,
            org: String::new(),
        }),
        metadata: Some(admin::NamedEntityMetadata {
            description: metadata.description,
            state: metadata.state,
        }),
    }
}
