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
use crate::error::{AdminError, AdminResult};
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
    sort_fields: &["name", "created_at"],
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
    let state_filter = take_state_filter(&mut query, resource)?;
    let page = state
        .store
        .list_entity_names(resource, &request.project, &request.domain, &query)
        .await?;
    let mut entities = Vec::with_capacity(page.items.len());
    for name in page.items {
        let entity = named_entity(state, resource, &request.project, &request.domain, name).await?;
        let entity_state = entity.metadata.as_ref().map_or(0, |m| m.state);
        if state_filter.matches(entity_state) {
            entities.push(entity);
        }
    }
    Ok(tonic::Response::new(NamedEntityList {
        entities,
        token: page.next_token,
    }))
}

/// Which metadata states a list keeps. The store lists names only, so the state (kept apart,
/// with a default for names never updated) is filtered here, page by page.
enum StateFilter {
    Any,
    Only(Vec<i32>),
    Not(Vec<i32>),
}

impl StateFilter {
    fn matches(&self, state: i32) -> bool {
        match self {
            Self::Any => true,
            Self::Only(states) => states.contains(&state),
            Self::Not(states) => !states.contains(&state),
        }
    }
}

/// Takes the `state` filter out of the store query. Without one, system-generated workflows
/// (the `.flytegen` wrappers of single-task executions) are hidden, as flyteadmin does.
fn take_state_filter(query: &mut ListQuery, resource: ResourceType) -> AdminResult<StateFilter> {
    let (state_filters, rest): (Vec<Filter>, Vec<Filter>) = query
        .filters
        .drain(..)
        .partition(|f| f.field == STATE_FIELD);
    query.filters = rest;
    let Some(filter) = state_filters.into_iter().last() else {
        return Ok(match resource {
            ResourceType::Workflow => {
                StateFilter::Not(vec![admin::NamedEntityState::SystemGenerated as i32])
            }
            _ => StateFilter::Any,
        });
    };
    let values = filter
        .values
        .iter()
        .map(|v| {
            v.trim().parse::<i32>().map_err(|_| {
                AdminError::InvalidArgument(format!(
                    "invalid state '{v}' in filter: expected 0 (active), 1 (archived) or 2 (system generated)"
                ))
            })
        })
        .collect::<AdminResult<Vec<_>>>()?;
    match filter.op {
        FilterOp::Eq | FilterOp::ValueIn => Ok(StateFilter::Only(values)),
        FilterOp::Ne | FilterOp::ValueNotIn => Ok(StateFilter::Not(values)),
        op => Err(AdminError::InvalidArgument(format!(
            "filter function '{}' cannot be used on state (use eq, ne, value_in or value_not_in)",
            op.name()
        ))),
    }
}

pub(super) async fn get(
    state: &AdminState,
    request: &NamedEntityGetRequest,
) -> AdminResult<tonic::Response<NamedEntity>> {
    let resource = checked_resource_type(request.resource_type)?;
    let id = checked_named_id(request.id.as_ref())?;
    ensure_exists(state, resource, id).await?;
    let entity = named_entity(state, resource, &id.project, &id.domain, id.name.clone()).await?;
    Ok(tonic::Response::new(entity))
}

pub(super) async fn update(
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
            "no {} named {}/{}/{} is registered",
            noun(resource),
            id.project,
            id.domain,
            id.name
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

async fn named_entity(
    state: &AdminState,
    resource: ResourceType,
    project: &str,
    domain: &str,
    name: String,
) -> AdminResult<NamedEntity> {
    let metadata = state
        .store
        .get_named_entity_metadata(&named_key(resource, project, domain, &name))
        .await?;
    Ok(NamedEntity {
        resource_type: resource as i32,
        id: Some(NamedEntityIdentifier {
            project: project.to_string(),
            domain: domain.to_string(),
            name,
            org: String::new(),
        }),
        metadata: Some(admin::NamedEntityMetadata {
            description: metadata.description,
            state: metadata.state,
        }),
    })
}
