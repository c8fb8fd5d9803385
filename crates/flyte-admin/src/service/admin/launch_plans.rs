//! Launch plans (flyteadmin `launch_plan_manager.go`): created INACTIVE against a registered
//! workflow; activating a version deactivates the previously active one.

use chrono::Utc;
use flyte_core::compiler::validate_launch_plan;
use flyte_core::filters::{Filter, FilterOp};
use flyte_core::ids::ResourceType;
use flyte_store::{EntityRecord, EntityScope, LaunchPlanState};
use flyteidl::admin::{
    self, ActiveLaunchPlanListRequest, ActiveLaunchPlanRequest, LaunchPlan, LaunchPlanClosure,
    LaunchPlanCreateRequest, LaunchPlanCreateResponse, LaunchPlanList, LaunchPlanSpec,
    LaunchPlanUpdateRequest, LaunchPlanUpdateResponse,
};
use prost::Message;

use super::common::{
    checked_id, checked_named_id, checked_scope, decode_stored, entity_key, identifier, missing,
    timestamp,
};
use super::entities::{self, Encoded, Kind, NewVersion};
use super::lists::{self, LAUNCH_PLAN_FIELDS, ListArgs, ListFields};
use super::workflows;
use crate::error::{AdminError, AdminResult};
use crate::services::registration::{RegisterLaunchPlan, RegistrationService};
use crate::state::AdminState;

/// `LaunchPlan.spec`.
const ENTITY_SPEC_FIELD: u32 = 2;

pub(super) struct LaunchPlans;

impl Kind for LaunchPlans {
    const RESOURCE: ResourceType = ResourceType::LaunchPlan;
    const NOUN: &'static str = "launch plan";
    const LIST_FIELDS: ListFields = ListFields {
        what: "launch plans",
        prefixes: &["launch_plan"],
        filter_fields: LAUNCH_PLAN_FIELDS,
        sort_fields: LAUNCH_PLAN_FIELDS,
    };
    type Entity = LaunchPlan;
    type List = LaunchPlanList;

    /// The spec goes back as the client sent it; the closure's state is the store's current one.
    fn entity(record: &EntityRecord) -> AdminResult<Encoded<LaunchPlan>> {
        let spec: LaunchPlanSpec = decode_stored(&record.spec, "launch plan spec")?;
        let mut closure: LaunchPlanClosure = decode_stored(&record.closure, "launch plan closure")?;
        closure.state = proto_state(record.state.unwrap_or(LaunchPlanState::Inactive));
        let launch_plan = LaunchPlan {
            id: Some(identifier(&record.key)),
            spec: Some(spec),
            closure: Some(closure),
        };
        Ok(Encoded::spliced(
            launch_plan,
            &[ENTITY_SPEC_FIELD],
            &record.spec,
        ))
    }

    fn list(launch_plans: Vec<LaunchPlan>, token: String) -> LaunchPlanList {
        LaunchPlanList {
            launch_plans,
            token,
        }
    }
}

fn proto_state(state: LaunchPlanState) -> i32 {
    match state {
        LaunchPlanState::Inactive => admin::LaunchPlanState::Inactive as i32,
        LaunchPlanState::Active => admin::LaunchPlanState::Active as i32,
    }
}

/// The gRPC adapter: the request's shape (an id and a spec), then [`RegistrationService`].
pub(super) async fn create(
    state: &AdminState,
    request: tonic::Request<LaunchPlanCreateRequest>,
) -> AdminResult<tonic::Response<LaunchPlanCreateResponse>> {
    let raw_spec = entities::raw_spec(&request, |r| r.spec.as_ref());
    let LaunchPlanCreateRequest { id, spec } = request.into_inner();
    let command = entities::logging_refusal::<LaunchPlans, _>(id.as_ref(), async {
        Ok(RegisterLaunchPlan {
            id: id.clone().ok_or_else(|| missing("id"))?,
            spec: spec.ok_or_else(|| missing("spec"))?,
            raw_spec: Some(raw_spec),
        })
    })
    .await?;
    RegistrationService::new(state.clone())
        .register_launch_plan(command)
        .await?;
    Ok(tonic::Response::new(LaunchPlanCreateResponse {}))
}

/// Registers a new version (the domain command behind [`RegistrationService`]); refusals are
/// logged once.
pub(crate) async fn register(state: &AdminState, command: RegisterLaunchPlan) -> AdminResult<()> {
    let id = command.id.clone();
    entities::logging_refusal::<LaunchPlans, _>(Some(&id), register_version(state, command)).await
}

async fn register_version(state: &AdminState, command: RegisterLaunchPlan) -> AdminResult<()> {
    let RegisterLaunchPlan { id, spec, raw_spec } = command;
    let raw_spec = raw_spec.unwrap_or_else(|| spec.encode_to_vec().into());
    let (_, key) = entities::checked_new_id::<LaunchPlans>(state, Some(&id)).await?;
    let workflow_id = checked_id(spec.workflow_id.as_ref(), ResourceType::Workflow)
        .map_err(|e| AdminError::InvalidArgument(format!("spec.workflow_id: {e}")))?;
    let digest = entities::digest(&spec)?;
    entities::ensure_new::<LaunchPlans>(state, &key, &digest).await?;

    let workflow =
        entities::referenced(state, &key, entity_key(ResourceType::Workflow, workflow_id)).await?;
    let interface = workflows::stored_interface(&workflow)?;
    let (expected_inputs, expected_outputs) = validate_launch_plan(&spec, &interface)
        .map_err(|e| entities::compile_error::<LaunchPlans>(&key, e))?;
    let created_at = Utc::now();
    let closure = LaunchPlanClosure {
        state: admin::LaunchPlanState::Inactive as i32,
        expected_inputs: Some(expected_inputs),
        expected_outputs: Some(expected_outputs),
        created_at: Some(timestamp(created_at)),
        updated_at: Some(timestamp(created_at)),
    };
    let version = NewVersion {
        key,
        digest,
        raw_spec,
        closure: closure.encode_to_vec(),
        state: Some(LaunchPlanState::Inactive),
        created_at,
    };
    entities::insert::<LaunchPlans>(state, version).await
}

/// Sets a version ACTIVE or INACTIVE; the store deactivates the other versions in the same
/// transaction, so at most one version of a launch plan is active.
pub(super) async fn update(
    state: &AdminState,
    request: &LaunchPlanUpdateRequest,
) -> AdminResult<tonic::Response<LaunchPlanUpdateResponse>> {
    let id = checked_id(request.id.as_ref(), ResourceType::LaunchPlan)?;
    let new_state = match admin::LaunchPlanState::try_from(request.state) {
        Ok(admin::LaunchPlanState::Active) => LaunchPlanState::Active,
        Ok(admin::LaunchPlanState::Inactive) => LaunchPlanState::Inactive,
        Err(_) => {
            return Err(AdminError::InvalidArgument(format!(
                "invalid launch plan state {} (expected ACTIVE or INACTIVE)",
                request.state
            )));
        }
    };
    let key = entity_key(ResourceType::LaunchPlan, id);
    state.store.set_launch_plan_state(&key, new_state).await?;
    tracing::info!(name = %key.name, version = %key.version, state = ?new_state, "launch plan state set");
    Ok(tonic::Response::new(LaunchPlanUpdateResponse {}))
}

pub(super) async fn get_active(
    state: &AdminState,
    request: &ActiveLaunchPlanRequest,
) -> AdminResult<tonic::Response<LaunchPlan>> {
    let id = checked_named_id(request.id.as_ref())?;
    let record = state
        .store
        .get_active_launch_plan(&id.project, &id.domain, &id.name)
        .await?;
    Ok(LaunchPlans::entity(&record)?.into_response())
}

/// The active versions in a project and domain: a launch plan list filtered on `state`.
pub(super) async fn list_active(
    state: &AdminState,
    request: &ActiveLaunchPlanListRequest,
) -> AdminResult<tonic::Response<LaunchPlanList>> {
    checked_scope(&request.project, &request.domain)?;
    let mut query = lists::query(
        ListArgs {
            limit: request.limit,
            token: &request.token,
            filters: "",
            sort_by: request.sort_by.as_ref(),
        },
        &LaunchPlans::LIST_FIELDS,
    )?;
    query.filters.push(Filter {
        entity: None,
        field: "state".into(),
        op: FilterOp::Eq,
        values: vec![(admin::LaunchPlanState::Active as i32).to_string()],
    });
    let scope = EntityScope {
        project: request.project.clone(),
        domain: request.domain.clone(),
        name: None,
    };
    entities::list_scope::<LaunchPlans>(state, &scope, &query).await
}
