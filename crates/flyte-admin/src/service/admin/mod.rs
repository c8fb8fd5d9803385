//! AdminService: projects, registration of tasks, workflows and launch plans, and reads.
//!
//! One submodule per resource; `entities` holds the create/get/list plumbing that tasks,
//! workflows and launch plans share, `lists` the list-request handling every list uses.
//! `executions`, `node_executions` and `task_executions` serve executions and their events,
//! with flyteadmin's event rules in `events`, relaunch and recover; `engine_services` serves the
//! engine (signals, child executions, recovery lookups). `data_access` serves what the data
//! proxy reads back (flyte:// URLs, decks) and `ListNodeExecutionsForTask`, `metrics`
//! `GetExecutionMetrics`, `attributes` the matchable attributes.

mod attributes;
pub(crate) mod common;
pub(crate) mod data_access;
mod descriptions;
mod engine_services;
mod entities;
pub mod event_sink;
pub mod events;
mod executions;
pub(crate) mod inline_inputs;
pub(crate) mod launch_plans;
pub(crate) mod lists;
mod metrics;
pub(crate) mod named_entities;
mod node_executions;
mod projects;
mod resolver;
mod task_executions;
pub(crate) mod tasks;
pub(crate) mod workflows;

pub use crate::services::executions::{generate_name, merge_inputs, validate_name};
pub use engine_services::EngineServices;
pub use resolver::StoreEntityResolver;

use flyteidl::admin;
use flyteidl::service::admin_service_server::{AdminService, AdminServiceServer};
use tonic::{Request, Response, Status};

use self::common::run;
use self::launch_plans::LaunchPlans;
use self::tasks::Tasks;
use self::workflows::Workflows;
use crate::services::attributes::AttributesService;
use crate::services::executions::ExecutionService;
use crate::state::AdminState;

/// The AdminService implementation over the shared admin state.
#[derive(Clone)]
pub struct AdminApi {
    state: AdminState,
    executions: ExecutionService,
    attributes: AttributesService,
}

impl AdminApi {
    pub fn new(state: AdminState) -> Self {
        Self {
            executions: ExecutionService::new(state.clone()),
            attributes: AttributesService::new(state.clone()),
            state,
        }
    }
}

/// The tonic server for [`AdminApi`], accepting requests up to `config.max_request_bytes`.
/// Wrap it in [`crate::fidelity::layer`] so unknown fields survive (see that module).
pub fn admin_service(state: AdminState) -> AdminServiceServer<AdminApi> {
    let max = state.config.max_request_bytes;
    AdminServiceServer::new(AdminApi::new(state))
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
}

/// Project and domain of a versioned identifier, for spans.
fn scope_of(id: Option<&flyteidl::core::Identifier>) -> (&str, &str) {
    id.map_or(("", ""), |id| (id.project.as_str(), id.domain.as_str()))
}

fn exec_scope_of(id: Option<&flyteidl::core::WorkflowExecutionIdentifier>) -> (&str, &str) {
    id.map_or(("", ""), |id| (id.project.as_str(), id.domain.as_str()))
}

fn node_scope_of(id: Option<&flyteidl::core::NodeExecutionIdentifier>) -> (&str, &str) {
    exec_scope_of(id.and_then(|id| id.execution_id.as_ref()))
}

fn named_scope_of(id: Option<&admin::NamedEntityIdentifier>) -> (&str, &str) {
    id.map_or(("", ""), |id| (id.project.as_str(), id.domain.as_str()))
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    // --- tasks ------------------------------------------------------------------------------

    async fn create_task(
        &self,
        request: Request<admin::TaskCreateRequest>,
    ) -> Result<Response<admin::TaskCreateResponse>, Status> {
        let (p, d) = scope_of(request.get_ref().id.as_ref());
        let (p, d) = (p.to_owned(), d.to_owned());
        run("CreateTask", &p, &d, tasks::create(&self.state, request)).await
    }

    async fn get_task(
        &self,
        request: Request<admin::ObjectGetRequest>,
    ) -> Result<Response<admin::Task>, Status> {
        let id = request.get_ref().id.as_ref();
        let (p, d) = scope_of(id);
        run("GetTask", p, d, entities::get::<Tasks>(&self.state, id)).await
    }

    async fn list_task_ids(
        &self,
        request: Request<admin::NamedEntityIdentifierListRequest>,
    ) -> Result<Response<admin::NamedEntityIdentifierList>, Status> {
        let r = request.get_ref();
        run(
            "ListTaskIds",
            &r.project,
            &r.domain,
            entities::list_ids::<Tasks>(&self.state, r),
        )
        .await
    }

    async fn list_tasks(
        &self,
        request: Request<admin::ResourceListRequest>,
    ) -> Result<Response<admin::TaskList>, Status> {
        let r = request.get_ref();
        let (p, d) = named_scope_of(r.id.as_ref());
        run("ListTasks", p, d, entities::list::<Tasks>(&self.state, r)).await
    }

    // --- workflows --------------------------------------------------------------------------

    async fn create_workflow(
        &self,
        request: Request<admin::WorkflowCreateRequest>,
    ) -> Result<Response<admin::WorkflowCreateResponse>, Status> {
        let (p, d) = scope_of(request.get_ref().id.as_ref());
        let (p, d) = (p.to_owned(), d.to_owned());
        run(
            "CreateWorkflow",
            &p,
            &d,
            workflows::create(&self.state, request),
        )
        .await
    }

    async fn get_workflow(
        &self,
        request: Request<admin::ObjectGetRequest>,
    ) -> Result<Response<admin::Workflow>, Status> {
        let id = request.get_ref().id.as_ref();
        let (p, d) = scope_of(id);
        run(
            "GetWorkflow",
            p,
            d,
            entities::get::<Workflows>(&self.state, id),
        )
        .await
    }

    async fn list_workflow_ids(
        &self,
        request: Request<admin::NamedEntityIdentifierListRequest>,
    ) -> Result<Response<admin::NamedEntityIdentifierList>, Status> {
        let r = request.get_ref();
        run(
            "ListWorkflowIds",
            &r.project,
            &r.domain,
            entities::list_ids::<Workflows>(&self.state, r),
        )
        .await
    }

    async fn list_workflows(
        &self,
        request: Request<admin::ResourceListRequest>,
    ) -> Result<Response<admin::WorkflowList>, Status> {
        let r = request.get_ref();
        let (p, d) = named_scope_of(r.id.as_ref());
        run(
            "ListWorkflows",
            p,
            d,
            entities::list::<Workflows>(&self.state, r),
        )
        .await
    }

    // --- launch plans -----------------------------------------------------------------------

    async fn create_launch_plan(
        &self,
        request: Request<admin::LaunchPlanCreateRequest>,
    ) -> Result<Response<admin::LaunchPlanCreateResponse>, Status> {
        let (p, d) = scope_of(request.get_ref().id.as_ref());
        let (p, d) = (p.to_owned(), d.to_owned());
        run(
            "CreateLaunchPlan",
            &p,
            &d,
            launch_plans::create(&self.state, request),
        )
        .await
    }

    async fn get_launch_plan(
        &self,
        request: Request<admin::ObjectGetRequest>,
    ) -> Result<Response<admin::LaunchPlan>, Status> {
        let id = request.get_ref().id.as_ref();
        let (p, d) = scope_of(id);
        run(
            "GetLaunchPlan",
            p,
            d,
            entities::get::<LaunchPlans>(&self.state, id),
        )
        .await
    }

    async fn get_active_launch_plan(
        &self,
        request: Request<admin::ActiveLaunchPlanRequest>,
    ) -> Result<Response<admin::LaunchPlan>, Status> {
        let r = request.get_ref();
        let (p, d) = named_scope_of(r.id.as_ref());
        run(
            "GetActiveLaunchPlan",
            p,
            d,
            launch_plans::get_active(&self.state, r),
        )
        .await
    }

    async fn list_active_launch_plans(
        &self,
        request: Request<admin::ActiveLaunchPlanListRequest>,
    ) -> Result<Response<admin::LaunchPlanList>, Status> {
        let r = request.get_ref();
        run(
            "ListActiveLaunchPlans",
            &r.project,
            &r.domain,
            launch_plans::list_active(&self.state, r),
        )
        .await
    }

    async fn list_launch_plan_ids(
        &self,
        request: Request<admin::NamedEntityIdentifierListRequest>,
    ) -> Result<Response<admin::NamedEntityIdentifierList>, Status> {
        let r = request.get_ref();
        run(
            "ListLaunchPlanIds",
            &r.project,
            &r.domain,
            entities::list_ids::<LaunchPlans>(&self.state, r),
        )
        .await
    }

    async fn list_launch_plans(
        &self,
        request: Request<admin::ResourceListRequest>,
    ) -> Result<Response<admin::LaunchPlanList>, Status> {
        let r = request.get_ref();
        let (p, d) = named_scope_of(r.id.as_ref());
        run(
            "ListLaunchPlans",
            p,
            d,
            entities::list::<LaunchPlans>(&self.state, r),
        )
        .await
    }

    async fn update_launch_plan(
        &self,
        request: Request<admin::LaunchPlanUpdateRequest>,
    ) -> Result<Response<admin::LaunchPlanUpdateResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = scope_of(r.id.as_ref());
        run(
            "UpdateLaunchPlan",
            p,
            d,
            launch_plans::update(&self.state, r),
        )
        .await
    }

    // --- projects and domains ---------------------------------------------------------------

    async fn register_project(
        &self,
        request: Request<admin::ProjectRegisterRequest>,
    ) -> Result<Response<admin::ProjectRegisterResponse>, Status> {
        let project = request
            .get_ref()
            .project
            .as_ref()
            .map(|p| p.id.clone())
            .unwrap_or_default();
        run(
            "RegisterProject",
            &project,
            "",
            projects::register(&self.state, request.into_inner()),
        )
        .await
    }

    async fn update_project(
        &self,
        request: Request<admin::Project>,
    ) -> Result<Response<admin::ProjectUpdateResponse>, Status> {
        let project = request.get_ref().id.clone();
        run(
            "UpdateProject",
            &project,
            "",
            projects::update(&self.state, request.into_inner()),
        )
        .await
    }

    async fn get_project(
        &self,
        request: Request<admin::ProjectGetRequest>,
    ) -> Result<Response<admin::Project>, Status> {
        let r = request.get_ref();
        run("GetProject", &r.id, "", projects::get(&self.state, r)).await
    }

    async fn list_projects(
        &self,
        request: Request<admin::ProjectListRequest>,
    ) -> Result<Response<admin::Projects>, Status> {
        let mut response = run(
            "ListProjects",
            "",
            "",
            projects::list(&self.state, request.get_ref()),
        )
        .await?;
        // Authorization on: only the projects the caller may read (crate::authz).
        if let Some(visible) = crate::authz::project_filter(request.extensions()) {
            response.get_mut().projects.retain(|p| visible(&p.id));
        }
        Ok(response)
    }

    async fn get_domains(
        &self,
        _request: Request<admin::GetDomainRequest>,
    ) -> Result<Response<admin::GetDomainsResponse>, Status> {
        Ok(projects::get_domains(&self.state))
    }

    // --- named entities and descriptions ----------------------------------------------------

    async fn list_named_entities(
        &self,
        request: Request<admin::NamedEntityListRequest>,
    ) -> Result<Response<admin::NamedEntityList>, Status> {
        let r = request.get_ref();
        run(
            "ListNamedEntities",
            &r.project,
            &r.domain,
            named_entities::list(&self.state, r),
        )
        .await
    }

    async fn get_named_entity(
        &self,
        request: Request<admin::NamedEntityGetRequest>,
    ) -> Result<Response<admin::NamedEntity>, Status> {
        let r = request.get_ref();
        let (p, d) = named_scope_of(r.id.as_ref());
        run("GetNamedEntity", p, d, named_entities::get(&self.state, r)).await
    }

    async fn update_named_entity(
        &self,
        request: Request<admin::NamedEntityUpdateRequest>,
    ) -> Result<Response<admin::NamedEntityUpdateResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = named_scope_of(r.id.as_ref());
        run(
            "UpdateNamedEntity",
            p,
            d,
            named_entities::update(&self.state, r),
        )
        .await
    }

    async fn get_description_entity(
        &self,
        request: Request<admin::ObjectGetRequest>,
    ) -> Result<Response<admin::DescriptionEntity>, Status> {
        let r = request.get_ref();
        let (p, d) = scope_of(r.id.as_ref());
        run(
            "GetDescriptionEntity",
            p,
            d,
            descriptions::get(&self.state, r),
        )
        .await
    }

    async fn list_description_entities(
        &self,
        request: Request<admin::DescriptionEntityListRequest>,
    ) -> Result<Response<admin::DescriptionEntityList>, Status> {
        let r = request.get_ref();
        let (p, d) = named_scope_of(r.id.as_ref());
        run(
            "ListDescriptionEntities",
            p,
            d,
            descriptions::list(&self.state, r),
        )
        .await
    }

    async fn get_version(
        &self,
        _request: Request<admin::GetVersionRequest>,
    ) -> Result<Response<admin::GetVersionResponse>, Status> {
        // As flyteadmin reports it (flytestdlib/version): a release tag (`v1.16.0`), and
        // "unknown" for what the build did not record. FLYTERS_* are build-time variables.
        Ok(Response::new(admin::GetVersionResponse {
            control_plane_version: Some(admin::Version {
                build: option_env!("FLYTERS_GIT_SHA")
                    .unwrap_or("unknown")
                    .to_string(),
                version: concat!("v", env!("CARGO_PKG_VERSION")).to_string(),
                build_time: option_env!("FLYTERS_BUILD_TIME")
                    .unwrap_or("unknown")
                    .to_string(),
            }),
        }))
    }

    // --- not available yet -----------------------------------------------------------------

    async fn create_execution(
        &self,
        request: Request<admin::ExecutionCreateRequest>,
    ) -> Result<Response<admin::ExecutionCreateResponse>, Status> {
        let (p, d) = (
            request.get_ref().project.clone(),
            request.get_ref().domain.clone(),
        );
        run(
            "CreateExecution",
            &p,
            &d,
            executions::create(&self.executions, request),
        )
        .await
    }

    async fn relaunch_execution(
        &self,
        request: Request<admin::ExecutionRelaunchRequest>,
    ) -> Result<Response<admin::ExecutionCreateResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = exec_scope_of(r.id.as_ref());
        run(
            "RelaunchExecution",
            p,
            d,
            executions::relaunch(&self.executions, r),
        )
        .await
    }

    async fn recover_execution(
        &self,
        request: Request<admin::ExecutionRecoverRequest>,
    ) -> Result<Response<admin::ExecutionCreateResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = exec_scope_of(r.id.as_ref());
        run(
            "RecoverExecution",
            p,
            d,
            executions::recover(&self.executions, r),
        )
        .await
    }

    async fn get_execution(
        &self,
        request: Request<admin::WorkflowExecutionGetRequest>,
    ) -> Result<Response<admin::Execution>, Status> {
        let r = request.get_ref();
        let (p, d) = exec_scope_of(r.id.as_ref());
        run("GetExecution", p, d, executions::get(&self.state, r)).await
    }

    async fn update_execution(
        &self,
        request: Request<admin::ExecutionUpdateRequest>,
    ) -> Result<Response<admin::ExecutionUpdateResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = exec_scope_of(r.id.as_ref());
        run("UpdateExecution", p, d, executions::update(&self.state, r)).await
    }

    async fn get_execution_data(
        &self,
        request: Request<admin::WorkflowExecutionGetDataRequest>,
    ) -> Result<Response<admin::WorkflowExecutionGetDataResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = exec_scope_of(r.id.as_ref());
        run(
            "GetExecutionData",
            p,
            d,
            executions::get_data(&self.state, r),
        )
        .await
    }

    async fn list_executions(
        &self,
        request: Request<admin::ResourceListRequest>,
    ) -> Result<Response<admin::ExecutionList>, Status> {
        let r = request.get_ref();
        let (p, d) = named_scope_of(r.id.as_ref());
        run("ListExecutions", p, d, executions::list(&self.state, r)).await
    }

    async fn terminate_execution(
        &self,
        request: Request<admin::ExecutionTerminateRequest>,
    ) -> Result<Response<admin::ExecutionTerminateResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = exec_scope_of(r.id.as_ref());
        let _ = (p, d);
        match executions::terminate(&self.executions, r).await {
            Ok(answer) => answer,
            Err(err) => Err(err.into()),
        }
    }

    async fn get_node_execution(
        &self,
        request: Request<admin::NodeExecutionGetRequest>,
    ) -> Result<Response<admin::NodeExecution>, Status> {
        let r = request.get_ref();
        let (p, d) = node_scope_of(r.id.as_ref());
        run(
            "GetNodeExecution",
            p,
            d,
            node_executions::get(&self.state, r),
        )
        .await
    }

    async fn get_dynamic_node_workflow(
        &self,
        request: Request<admin::GetDynamicNodeWorkflowRequest>,
    ) -> Result<Response<admin::DynamicNodeWorkflowResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = node_scope_of(r.id.as_ref());
        run(
            "GetDynamicNodeWorkflow",
            p,
            d,
            node_executions::get_dynamic_workflow(&self.state, r),
        )
        .await
    }

    async fn list_node_executions(
        &self,
        request: Request<admin::NodeExecutionListRequest>,
    ) -> Result<Response<admin::NodeExecutionList>, Status> {
        let r = request.get_ref();
        let (p, d) = exec_scope_of(r.workflow_execution_id.as_ref());
        run(
            "ListNodeExecutions",
            p,
            d,
            node_executions::list(&self.state, r),
        )
        .await
    }

    async fn list_node_executions_for_task(
        &self,
        request: Request<admin::NodeExecutionForTaskListRequest>,
    ) -> Result<Response<admin::NodeExecutionList>, Status> {
        let r = request.get_ref();
        let (p, d) = node_scope_of(
            r.task_execution_id
                .as_ref()
                .and_then(|t| t.node_execution_id.as_ref()),
        );
        run(
            "ListNodeExecutionsForTask",
            p,
            d,
            data_access::list_for_task(&self.state, r),
        )
        .await
    }

    async fn get_node_execution_data(
        &self,
        request: Request<admin::NodeExecutionGetDataRequest>,
    ) -> Result<Response<admin::NodeExecutionGetDataResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = node_scope_of(r.id.as_ref());
        run(
            "GetNodeExecutionData",
            p,
            d,
            node_executions::get_data(&self.state, r),
        )
        .await
    }

    async fn create_workflow_event(
        &self,
        request: Request<admin::WorkflowExecutionEventRequest>,
    ) -> Result<Response<admin::WorkflowExecutionEventResponse>, Status> {
        executions::create_workflow_event(&self.state, request.get_ref()).await
    }

    async fn create_node_event(
        &self,
        request: Request<admin::NodeExecutionEventRequest>,
    ) -> Result<Response<admin::NodeExecutionEventResponse>, Status> {
        node_executions::create_event(&self.state, request.get_ref()).await
    }

    async fn create_task_event(
        &self,
        request: Request<admin::TaskExecutionEventRequest>,
    ) -> Result<Response<admin::TaskExecutionEventResponse>, Status> {
        task_executions::create_event(&self.state, request.get_ref()).await
    }

    async fn get_task_execution(
        &self,
        request: Request<admin::TaskExecutionGetRequest>,
    ) -> Result<Response<admin::TaskExecution>, Status> {
        let r = request.get_ref();
        run(
            "GetTaskExecution",
            "",
            "",
            task_executions::get(&self.state, r),
        )
        .await
    }

    async fn list_task_executions(
        &self,
        request: Request<admin::TaskExecutionListRequest>,
    ) -> Result<Response<admin::TaskExecutionList>, Status> {
        let r = request.get_ref();
        let (p, d) = node_scope_of(r.node_execution_id.as_ref());
        run(
            "ListTaskExecutions",
            p,
            d,
            task_executions::list(&self.state, r),
        )
        .await
    }

    async fn get_task_execution_data(
        &self,
        request: Request<admin::TaskExecutionGetDataRequest>,
    ) -> Result<Response<admin::TaskExecutionGetDataResponse>, Status> {
        let r = request.get_ref();
        run(
            "GetTaskExecutionData",
            "",
            "",
            task_executions::get_data(&self.state, r),
        )
        .await
    }

    async fn update_project_domain_attributes(
        &self,
        request: Request<admin::ProjectDomainAttributesUpdateRequest>,
    ) -> Result<Response<admin::ProjectDomainAttributesUpdateResponse>, Status> {
        let r = request.into_inner();
        let a = r.attributes.as_ref();
        let (p, d) = a.map_or((String::new(), String::new()), |a| {
            (a.project.clone(), a.domain.clone())
        });
        run(
            "UpdateProjectDomainAttributes",
            &p,
            &d,
            attributes::update_project_domain(&self.attributes, r),
        )
        .await
    }

    async fn get_project_domain_attributes(
        &self,
        request: Request<admin::ProjectDomainAttributesGetRequest>,
    ) -> Result<Response<admin::ProjectDomainAttributesGetResponse>, Status> {
        let r = request.get_ref();
        run(
            "GetProjectDomainAttributes",
            &r.project,
            &r.domain,
            attributes::get_project_domain(&self.attributes, r),
        )
        .await
    }

    async fn delete_project_domain_attributes(
        &self,
        request: Request<admin::ProjectDomainAttributesDeleteRequest>,
    ) -> Result<Response<admin::ProjectDomainAttributesDeleteResponse>, Status> {
        let r = request.get_ref();
        run(
            "DeleteProjectDomainAttributes",
            &r.project,
            &r.domain,
            attributes::delete_project_domain(&self.attributes, r),
        )
        .await
    }

    async fn update_project_attributes(
        &self,
        request: Request<admin::ProjectAttributesUpdateRequest>,
    ) -> Result<Response<admin::ProjectAttributesUpdateResponse>, Status> {
        let r = request.into_inner();
        let p = r
            .attributes
            .as_ref()
            .map(|a| a.project.clone())
            .unwrap_or_default();
        run(
            "UpdateProjectAttributes",
            &p,
            "",
            attributes::update_project(&self.attributes, r),
        )
        .await
    }

    async fn get_project_attributes(
        &self,
        request: Request<admin::ProjectAttributesGetRequest>,
    ) -> Result<Response<admin::ProjectAttributesGetResponse>, Status> {
        let r = request.get_ref();
        run(
            "GetProjectAttributes",
            &r.project,
            "",
            attributes::get_project(&self.attributes, r),
        )
        .await
    }

    async fn delete_project_attributes(
        &self,
        request: Request<admin::ProjectAttributesDeleteRequest>,
    ) -> Result<Response<admin::ProjectAttributesDeleteResponse>, Status> {
        let r = request.get_ref();
        run(
            "DeleteProjectAttributes",
            &r.project,
            "",
            attributes::delete_project(&self.attributes, r),
        )
        .await
    }

    async fn update_workflow_attributes(
        &self,
        request: Request<admin::WorkflowAttributesUpdateRequest>,
    ) -> Result<Response<admin::WorkflowAttributesUpdateResponse>, Status> {
        let r = request.into_inner();
        let a = r.attributes.as_ref();
        let (p, d) = a.map_or((String::new(), String::new()), |a| {
            (a.project.clone(), a.domain.clone())
        });
        run(
            "UpdateWorkflowAttributes",
            &p,
            &d,
            attributes::update_workflow(&self.attributes, r),
        )
        .await
    }

    async fn get_workflow_attributes(
        &self,
        request: Request<admin::WorkflowAttributesGetRequest>,
    ) -> Result<Response<admin::WorkflowAttributesGetResponse>, Status> {
        let r = request.get_ref();
        run(
            "GetWorkflowAttributes",
            &r.project,
            &r.domain,
            attributes::get_workflow(&self.attributes, r),
        )
        .await
    }

    async fn delete_workflow_attributes(
        &self,
        request: Request<admin::WorkflowAttributesDeleteRequest>,
    ) -> Result<Response<admin::WorkflowAttributesDeleteResponse>, Status> {
        let r = request.get_ref();
        run(
            "DeleteWorkflowAttributes",
            &r.project,
            &r.domain,
            attributes::delete_workflow(&self.attributes, r),
        )
        .await
    }

    async fn list_matchable_attributes(
        &self,
        request: Request<admin::ListMatchableAttributesRequest>,
    ) -> Result<Response<admin::ListMatchableAttributesResponse>, Status> {
        let r = request.get_ref();
        run(
            "ListMatchableAttributes",
            "",
            "",
            attributes::list(&self.attributes, r),
        )
        .await
    }

    async fn get_execution_metrics(
        &self,
        request: Request<admin::WorkflowExecutionGetMetricsRequest>,
    ) -> Result<Response<admin::WorkflowExecutionGetMetricsResponse>, Status> {
        let r = request.get_ref();
        let (p, d) = exec_scope_of(r.id.as_ref());
        run("GetExecutionMetrics", p, d, metrics::get(&self.state, r)).await
    }
}
