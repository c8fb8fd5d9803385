//! AdminService over gRPC against SQLite: registration, idempotence, refusals, reads, lists.

mod admin_support;

use admin_support::*;
use flyteidl::admin::{self, *};
use flyteidl::core::{Identifier, ResourceType};
use tonic::Code;

fn named(project: &str, domain: &str, name: &str) -> NamedEntityIdentifier {
    NamedEntityIdentifier {
        project: project.into(),
        domain: domain.into(),
        name: name.into(),
        ..Default::default()
    }
}

fn list_request(name: &str, limit: u32) -> ResourceListRequest {
    ResourceListRequest {
        id: Some(named(PROJECT, DOMAIN, name)),
        limit,
        ..Default::default()
    }
}

#[tokio::test]
async fn registers_and_reads_back_task_workflow_and_launch_plan() {
    let mut server = start().await;
    let c = &mut server.client;
    let (task_id, wf_id, lp_id) = register_all(c, "v1").await;

    let task = c.get_task(get(&task_id)).await.unwrap().into_inner();
    assert_eq!(task.id.as_ref(), Some(&task_id));
    assert_eq!(task.short_description, "the t task");
    let closure = task.closure.unwrap();
    assert!(closure.created_at.is_some());
    let template = closure.compiled_task.unwrap().template.unwrap();
    assert_eq!(template, task_template("t", "v1", "img:1"));

    let wf = c.get_workflow(get(&wf_id)).await.unwrap().into_inner();
    let compiled = wf.closure.unwrap().compiled_workflow.unwrap();
    let primary = compiled.primary.unwrap();
    assert_eq!(primary.template.unwrap().id.as_ref(), Some(&wf_id));
    assert!(primary.connections.is_some());
    assert_eq!(compiled.tasks.len(), 1);
    assert_eq!(
        compiled.tasks[0].template.as_ref().unwrap().id.as_ref(),
        Some(&task_id)
    );

    let lp = c.get_launch_plan(get(&lp_id)).await.unwrap().into_inner();
    assert_eq!(lp.spec.unwrap().workflow_id.as_ref(), Some(&wf_id));
    let closure = lp.closure.unwrap();
    assert_eq!(closure.state, LaunchPlanState::Inactive as i32);
    assert!(
        closure
            .expected_inputs
            .unwrap()
            .parameters
            .contains_key("x")
    );
    assert!(
        closure
            .expected_outputs
            .unwrap()
            .variables
            .contains_key("o")
    );
    assert!(closure.created_at.is_some() && closure.updated_at.is_some());
}

#[tokio::test]
async fn identical_reregistration_is_already_exists_and_different_content_is_invalid() {
    let mut server = start().await;
    let c = &mut server.client;
    let (task_id, wf_id, _) = register_all(c, "v1").await;

    let err = c.create_task(task_request("t", "v1")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(
        err.message(),
        "task with identical structure already exists"
    );
    let err = c
        .create_workflow(workflow_request("wf", "v1", &task_id, "n0"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = c
        .create_launch_plan(launch_plan_request("wf", "v1", &wf_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");

    let mut changed = task_request("t", "v1");
    changed.spec.as_mut().unwrap().template = Some(task_template("t", "v1", "img:2"));
    let err = c.create_task(changed).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("different structure"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("register a new version"),
        "{}",
        err.message()
    );

    // The first version is unchanged.
    let task = c.get_task(get(&task_id)).await.unwrap().into_inner();
    let template = task
        .closure
        .unwrap()
        .compiled_task
        .unwrap()
        .template
        .unwrap();
    assert_eq!(template, task_template("t", "v1", "img:1"));
}

#[tokio::test]
async fn workflow_with_unregistered_task_is_refused_naming_it_and_not_stored() {
    let mut server = start().await;
    let c = &mut server.client;
    let missing = id(ResourceType::Task, "not.there", "v9");
    let wf = workflow_request("wf", "v1", &missing, "n0");
    let wf_id = wf.id.clone().unwrap();
    let err = c.create_workflow(wf).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("not.there"), "{}", err.message());
    assert!(
        err.message().contains("not registered"),
        "{}",
        err.message()
    );
    let err = c.get_workflow(get(&wf_id)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn binding_to_an_unknown_node_is_refused_naming_the_node_and_not_stored() {
    let mut server = start().await;
    let c = &mut server.client;
    let (task_id, _, _) = register_all(c, "v1").await;
    let wf = workflow_request("bad", "v1", &task_id, "no-such-node");
    let wf_id = wf.id.clone().unwrap();
    let err = c.create_workflow(wf).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("no-such-node"), "{}", err.message());
    assert_eq!(
        c.get_workflow(get(&wf_id)).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn unknown_project_or_domain_and_bad_ids_are_invalid_argument_and_not_stored() {
    let mut server = start().await;
    let c = &mut server.client;

    let mut req = task_request("t", "v1");
    req.id.as_mut().unwrap().project = "nope".into();
    req.spec.as_mut().unwrap().template.as_mut().unwrap().id = req.id.clone();
    let err = c.create_task(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("project 'nope'"),
        "{}",
        err.message()
    );

    let mut req = task_request("t", "v1");
    req.id.as_mut().unwrap().domain = "qa".into();
    let err = c.create_task(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("domain 'qa'"), "{}", err.message());

    let mut req = task_request("t", "v 1");
    req.id.as_mut().unwrap().version = "v 1".into();
    let err = c.create_task(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("version"), "{}", err.message());

    let mut req = task_request("t", "v1");
    req.id.as_mut().unwrap().resource_type = ResourceType::Workflow as i32;
    let err = c.create_task(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("resource_type"), "{}", err.message());

    let req = TaskCreateRequest {
        id: task_request("t", "v1").id,
        spec: None,
    };
    let err = c.create_task(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("spec"), "{}", err.message());

    let ids = c
        .list_task_ids(NamedEntityIdentifierListRequest {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ids.entities.is_empty(), "{ids:?}");
}

#[tokio::test]
async fn launch_plan_requires_its_workflow() {
    let mut server = start().await;
    let c = &mut server.client;
    let wf_id = id(ResourceType::Workflow, "ghost", "v1");
    let err = c
        .create_launch_plan(launch_plan_request("lp", "v1", &wf_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("ghost"), "{}", err.message());
}

#[tokio::test]
async fn lists_paginate_filter_and_sort() {
    let mut server = start().await;
    let c = &mut server.client;
    for v in ["v1", "v2", "v3"] {
        c.create_task(task_request("t", v)).await.unwrap();
    }
    c.create_task(task_request("other", "v1")).await.unwrap();

    // Pages of two, sorted by version ascending, over all names.
    let mut request = list_request("", 2);
    request.sort_by = Some(Sort {
        key: "version".into(),
        direction: sort::Direction::Ascending as i32,
    });
    request.filters = "eq(name,t)".into();
    let first = c.list_tasks(request.clone()).await.unwrap().into_inner();
    let versions: Vec<_> = first
        .tasks
        .iter()
        .map(|t| t.id.as_ref().unwrap().version.clone())
        .collect();
    assert_eq!(versions, ["v1", "v2"]);
    assert!(!first.token.is_empty());
    request.token = first.token;
    let second = c.list_tasks(request).await.unwrap().into_inner();
    let versions: Vec<_> = second
        .tasks
        .iter()
        .map(|t| t.id.as_ref().unwrap().version.clone())
        .collect();
    assert_eq!(versions, ["v3"]);
    assert!(
        second.tasks[0]
            .closure
            .as_ref()
            .unwrap()
            .compiled_task
            .is_some()
    );

    // One name through the id, newest first (flytekit's "latest version" lookup).
    let mut request = list_request("t", 1);
    request.sort_by = Some(Sort {
        key: "created_at".into(),
        direction: sort::Direction::Descending as i32,
    });
    let latest = c.list_tasks(request).await.unwrap().into_inner();
    assert_eq!(latest.tasks[0].id.as_ref().unwrap().version, "v3");

    // Filters with the entity prefix work; other prefixes, unknown fields and sort keys are refused.
    let mut request = list_request("", 10);
    request.filters = "eq(task.name,other)".into();
    let other = c.list_tasks(request.clone()).await.unwrap().into_inner();
    assert_eq!(other.tasks.len(), 1);
    for bad in ["eq(workflow.name,t)", "eq(color,red)", "eq(name"] {
        request.filters = bad.into();
        let err = c.list_tasks(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
    }
    let mut request = list_request("", 10);
    request.sort_by = Some(Sort {
        key: "color".into(),
        direction: 0,
    });
    assert_eq!(
        c.list_tasks(request).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let err = c.list_tasks(list_request("", 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("limit"));

    let ids = c
        .list_task_ids(NamedEntityIdentifierListRequest {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            limit: 10,
            sort_by: Some(Sort {
                key: "name".into(),
                direction: sort::Direction::Ascending as i32,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = ids.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["other", "t"]);
}

/// flytekit sorts by `updated_at` (`pyflyte get launchplan`: `Sort("updated_at", DESCENDING)`),
/// which flyteadmin accepts on every entity list.
#[tokio::test]
async fn every_entity_list_sorts_by_updated_at() {
    let mut server = start().await;
    let c = &mut server.client;
    register_all(c, "v1").await;
    register_all(c, "v2").await;
    let newest_first = Some(Sort {
        key: "updated_at".into(),
        direction: sort::Direction::Descending as i32,
    });
    let mut request = list_request("", 10);
    request.sort_by = newest_first.clone();
    let lps = c
        .list_launch_plans(request.clone())
        .await
        .unwrap()
        .into_inner();
    let versions: Vec<_> = lps
        .launch_plans
        .iter()
        .map(|lp| lp.id.as_ref().unwrap().version.as_str())
        .collect();
    assert_eq!(versions, ["v2", "v1"]);
    let tasks = c.list_tasks(request.clone()).await.unwrap().into_inner();
    assert_eq!(tasks.tasks.len(), 2);
    let wfs = c
        .list_workflows(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wfs.workflows.len(), 2);
    let ids = NamedEntityIdentifierListRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        limit: 10,
        sort_by: newest_first.clone(),
        ..Default::default()
    };
    assert_eq!(
        c.list_launch_plan_ids(ids.clone())
            .await
            .unwrap()
            .into_inner()
            .entities
            .len(),
        1
    );
    c.list_task_ids(ids.clone()).await.unwrap();
    c.list_workflow_ids(ids).await.unwrap();
    let named = c
        .list_named_entities(NamedEntityListRequest {
            resource_type: ResourceType::LaunchPlan as i32,
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            limit: 10,
            sort_by: newest_first.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(named.entities.len(), 1);
    let projects = c
        .list_projects(ProjectListRequest {
            limit: 10,
            sort_by: newest_first,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!projects.projects.is_empty());
}

fn lp_update(lp: &Identifier, state: LaunchPlanState) -> LaunchPlanUpdateRequest {
    LaunchPlanUpdateRequest {
        id: Some(lp.clone()),
        state: state as i32,
    }
}

#[tokio::test]
async fn activating_a_launch_plan_version_deactivates_the_previous_one() {
    let mut server = start().await;
    let c = &mut server.client;
    let (_, _, lp1) = register_all(c, "v1").await;
    let (_, _, lp2) = register_all(c, "v2").await;
    let active_request = ActiveLaunchPlanRequest {
        id: Some(named(PROJECT, DOMAIN, "wf")),
    };
    let err = c
        .get_active_launch_plan(active_request.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    c.update_launch_plan(lp_update(&lp1, LaunchPlanState::Active))
        .await
        .unwrap();
    let active = c
        .get_active_launch_plan(active_request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.id.as_ref(), Some(&lp1));
    assert_eq!(
        active.closure.unwrap().state,
        LaunchPlanState::Active as i32
    );

    c.update_launch_plan(lp_update(&lp2, LaunchPlanState::Active))
        .await
        .unwrap();
    let active = c
        .get_active_launch_plan(active_request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.id.as_ref(), Some(&lp2));
    let old = c.get_launch_plan(get(&lp1)).await.unwrap().into_inner();
    assert_eq!(old.closure.unwrap().state, LaunchPlanState::Inactive as i32);

    let list = c
        .list_active_launch_plans(ActiveLaunchPlanListRequest {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.launch_plans.len(), 1);
    assert_eq!(list.launch_plans[0].id.as_ref(), Some(&lp2));

    let missing = id(ResourceType::LaunchPlan, "wf", "v9");
    let err = c
        .update_launch_plan(lp_update(&missing, LaunchPlanState::Active))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn named_entities_and_descriptions() {
    let mut server = start().await;
    let c = &mut server.client;
    let (task_id, _, _) = register_all(c, "v1").await;

    let list = c
        .list_named_entities(NamedEntityListRequest {
            resource_type: ResourceType::Workflow as i32,
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.entities.len(), 1);
    assert_eq!(list.entities[0].id.as_ref().unwrap().name, "wf");

    let wf_named = named(PROJECT, DOMAIN, "wf");
    c.update_named_entity(NamedEntityUpdateRequest {
        resource_type: ResourceType::Workflow as i32,
        id: Some(wf_named.clone()),
        metadata: Some(admin::NamedEntityMetadata {
            description: "my workflow".into(),
            state: NamedEntityState::NamedEntityArchived as i32,
        }),
    })
    .await
    .unwrap();
    let entity = c
        .get_named_entity(NamedEntityGetRequest {
            resource_type: ResourceType::Workflow as i32,
            id: Some(wf_named),
        })
        .await
        .unwrap()
        .into_inner();
    let metadata = entity.metadata.unwrap();
    assert_eq!(metadata.description, "my workflow");
    assert_eq!(metadata.state, NamedEntityState::NamedEntityArchived as i32);

    for (filter, expected) in [
        ("eq(state,0)", 0),
        ("eq(state,1)", 1),
        ("eq(named_entity_metadata.state,1)", 1),
    ] {
        let list = c
            .list_named_entities(NamedEntityListRequest {
                resource_type: ResourceType::Workflow as i32,
                project: PROJECT.into(),
                domain: DOMAIN.into(),
                limit: 10,
                filters: filter.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list.entities.len(), expected, "{filter}");
    }

    let err = c
        .get_named_entity(NamedEntityGetRequest {
            resource_type: ResourceType::Task as i32,
            id: Some(named(PROJECT, DOMAIN, "nothing")),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let description = c
        .get_description_entity(get(&task_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(description.short_description, "the t task");
    assert_eq!(description.id.as_ref(), Some(&task_id));
    let descriptions = c
        .list_description_entities(DescriptionEntityListRequest {
            resource_type: ResourceType::Task as i32,
            id: Some(named(PROJECT, DOMAIN, "t")),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(descriptions.description_entities.len(), 1);
}

#[tokio::test]
async fn projects_and_domains() {
    let mut server = start().await;
    let c = &mut server.client;
    let project = Project {
        id: "ml".into(),
        name: "Machine learning".into(),
        labels: Some(Labels {
            values: [("team".to_string(), "ml-infra".to_string())].into(),
        }),
        ..Default::default()
    };
    c.register_project(ProjectRegisterRequest {
        project: Some(project.clone()),
    })
    .await
    .unwrap();
    let err = c
        .register_project(ProjectRegisterRequest {
            project: Some(project.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    let bad = Project {
        id: "Bad_Id".into(),
        name: "x".into(),
        ..Default::default()
    };
    let err = c
        .register_project(ProjectRegisterRequest { project: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let got = c
        .get_project(ProjectGetRequest {
            id: "ml".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, "Machine learning");
    assert_eq!(got.labels, project.labels);
    assert_eq!(got.domains.len(), 3);

    c.update_project(Project {
        description: "models".into(),
        ..project.clone()
    })
    .await
    .unwrap();
    let err = c
        .update_project(Project {
            id: "ghost".into(),
            ..project
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let all = c
        .list_projects(ProjectListRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = all.projects.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["flytesnacks", "ml"]);
    assert_eq!(all.projects[1].description, "models");
    let filtered = c
        .list_projects(ProjectListRequest {
            limit: 10,
            filters: "eq(name,Machine learning)".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filtered.projects.len(), 1);

    let domains = c
        .get_domains(GetDomainRequest {})
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = domains.domains.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["development", "staging", "production"]);

    let version = c
        .get_version(GetVersionRequest {})
        .await
        .unwrap()
        .into_inner();
    // Flyte's release tags, as flyteadmin reports them (`v1.16.0`); "unknown" only when unset.
    let version = version.control_plane_version.unwrap();
    assert_eq!(version.version, concat!("v", env!("CARGO_PKG_VERSION")));
    assert!(!version.build.is_empty() && !version.build_time.is_empty());
}

#[tokio::test]
async fn metrics_and_attributes_refuse_a_bad_request() {
    let mut server = start().await;
    let c = &mut server.client;
    // Relaunch is served (executions_recovery.rs); an empty request is refused as such.
    let err = c
        .relaunch_execution(ExecutionRelaunchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c
        .get_execution_metrics(WorkflowExecutionGetMetricsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("id"), "{}", err.message());
    let err = c
        .get_project_attributes(ProjectAttributesGetRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("project"), "{}", err.message());
}
