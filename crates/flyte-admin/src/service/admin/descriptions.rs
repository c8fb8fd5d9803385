//! Description entities (flyteadmin `description_entity_manager.go`). Flyte-RS keeps no table
//! for them: a version's description is the `description` of the spec its client registered
//! (TaskSpec.description, WorkflowSpec.description), returned as sent.

use flyte_core::ids::{self, ResourceType};
use flyte_store::{EntityRecord, EntityScope};
use flyteidl::admin::{
    DescriptionEntity, DescriptionEntityList, DescriptionEntityListRequest, ObjectGetRequest,
};
use prost::Message;

use super::common::{
    checked_named_id, checked_resource_type, decode_stored, entity_key, identifier, invalid,
    missing,
};
use super::entities::{Encoded, list_page_query, noun};
use super::lists::{ENTITY_FIELDS, ListArgs, ListFields};
use crate::error::{AdminError, AdminResult, quoted};
use crate::fidelity;
use crate::state::AdminState;

/// `DescriptionEntityList.description_entities`.
const LIST_ITEMS_FIELD: u32 = 1;

/// Where a resource's spec keeps its description; launch plans have none.
fn spec_description_field(resource: ResourceType) -> Option<u32> {
    match resource {
        ResourceType::Task => Some(2),
        ResourceType::Workflow => Some(3),
        ResourceType::LaunchPlan => None,
    }
}

pub(super) async fn get(
    state: &AdminState,
    request: &ObjectGetRequest,
) -> AdminResult<tonic::Response<DescriptionEntity>> {
    let id = request.id.as_ref().ok_or_else(|| missing("id"))?;
    let resource = checked_resource_type(id.resource_type)?;
    ids::validate_identifier(&id.project, &id.domain, &id.name, &id.version).map_err(invalid)?;
    let record = state.store.get_entity(&entity_key(resource, id)).await?;
    let description = description(&record)?.ok_or_else(|| {
        AdminError::NotFound(format!(
            "{} {} was registered without a description",
            noun(resource),
            quoted(&format!(
                "{}/{}/{}@{}",
                id.project, id.domain, id.name, id.version
            ))
        ))
    })?;
    Ok(description.into_response())
}

pub(super) async fn list(
    state: &AdminState,
    request: &DescriptionEntityListRequest,
) -> AdminResult<tonic::Response<DescriptionEntityList>> {
    let resource = checked_resource_type(request.resource_type)?;
    let id = checked_named_id(request.id.as_ref())?;
    let fields = ListFields {
        what: "description entities",
        prefixes: &["description_entity", "task", "workflow"],
        filter_fields: ENTITY_FIELDS,
        sort_fields: ENTITY_FIELDS,
    };
    let scope = EntityScope {
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: Some(id.name.clone()),
    };
    let args = ListArgs {
        limit: request.limit,
        token: &request.token,
        filters: &request.filters,
        sort_by: request.sort_by.as_ref(),
    };
    let page = list_page_query(state, resource, &scope, args, &fields).await?;
    let mut typed = Vec::new();
    let mut encoded = Vec::new();
    for record in &page.items {
        if let Some(description) = description(record)? {
            typed.push(description.typed);
            encoded.push(description.bytes);
        }
    }
    let mut bytes = DescriptionEntityList {
        description_entities: Vec::new(),
        token: page.next_token.clone(),
    }
    .encode_to_vec();
    bytes.extend(fidelity::repeated(LIST_ITEMS_FIELD, &encoded));
    let list = DescriptionEntityList {
        description_entities: typed,
        token: page.next_token,
    };
    Ok(fidelity::respond(list, bytes))
}

/// The description of a stored version: the client's bytes, with the version's id merged over
/// whatever id they carried.
fn description(record: &EntityRecord) -> AdminResult<Option<Encoded<DescriptionEntity>>> {
    let Some(field) = spec_description_field(record.key.resource) else {
        return Ok(None);
    };
    let Some(raw) = fidelity::sub_message(&record.spec, &[field]) else {
        return Ok(None);
    };
    let id_patch = DescriptionEntity {
        id: Some(identifier(&record.key)),
        ..Default::default()
    };
    let mut bytes = raw.to_vec();
    bytes.extend(id_patch.encode_to_vec());
    let typed = decode_stored(&bytes, "description entity")?;
    Ok(Some(Encoded { typed, bytes }))
}
