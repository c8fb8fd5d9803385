//! Matchable attributes over gRPC and the REST gateway, as flytectl's `update/get/delete
//! *-attributes` call them, and their effect on executions created afterwards (what the
//! engine is asked to run and the execution spec GetExecution returns).

mod admin_support;
mod launch_support;

use flyteidl::admin::{
    self, ExecutionQueueAttributes, MatchableResource, MatchingAttributes, PluginOverride,
    PluginOverrides, ProjectAttributes, ProjectAttributesGetRequest,
    ProjectAttributesUpdateRequest, ProjectDomainAttributes, ProjectDomainAttributesDeleteRequest,
    ProjectDomainAttributesGetRequest, ProjectDomainAttributesUpdateRequest,
    TaskResourceAttributes, TaskResourceSpec, WorkflowAttributes, WorkflowAttributesDeleteRequest,
    WorkflowAttributesGetRequest, WorkflowAttributesUpdateRequest, WorkflowExecutionConfig,
    matching_attributes::Target,
};
use flyteidl::core::{self, resources::ResourceName};
use launch_support::{DOMAIN, PROJECT, Server};
use serde_json::json;
use std::collections::BTreeMap;
use tonic::Code;

const WEC: i32 = MatchableResource::WorkflowExecutionConfig as i32;

fn wec(max_parallelism: i32, labels: &[(&str, &str)]) -> MatchingAttributes {
    MatchingAttributes {
        target: Some(Target::WorkflowExecutionConfig(WorkflowExecutionConfig {
            max_parallelism,
            labels: (!labels.is_empty()).then(|| admin::Labels {
                values: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            ..Default::default()
        })),
    }
}

fn pd_update(attributes: MatchingAttributes) -> ProjectDomainAttributesUpdateRequest {
    ProjectDomainAttributesUpdateRequest {
        attributes: Some(ProjectDomainAttributes {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            matching_attributes: Some(attributes),
            org: String::new(),
        }),
    }
}

fn wf_update(workflow: &str, attributes: MatchingAttributes) -> WorkflowAttributesUpdateRequest {
    WorkflowAttributesUpdateRequest {
        attributes: Some(WorkflowAttributes {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            workflow: workflow.into(),
            matching_attributes: Some(attributes),
            org: String::new(),
        }),
    }
}

async fn execute(server: &mut Server, name: &str) -> admin::ExecutionSpec {
    let lp = admin_support::id(core::ResourceType::LaunchPlan, "wf", "v1");
    server
        .admin
        .create_execution(admin_support::execution_request(&lp, name, 1))
        .await
        .unwrap();
    server
        .admin
        .get_execution(admin::WorkflowExecutionGetRequest {
            id: Some(core::WorkflowExecutionIdentifier {
                project: PROJECT.into(),
                domain: DOMAIN.into(),
                name: name.into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .spec
        .unwrap()
}

#[tokio::test]
async fn grpc_update_get_delete_with_precedence() {
    let mut server = launch_support::start().await;
    let admin = &mut server.admin;

    // Nothing set yet: NOT_FOUND naming what is missing.
    let err = admin
        .get_project_domain_attributes(ProjectDomainAttributesGetRequest {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            resource_type: WEC,
            org: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("WORKFLOW_EXECUTION_CONFIG"),
        "{}",
        err.message()
    );

    admin
        .update_project_domain_attributes(pd_update(wec(7, &[("team", "pd")])))
        .await
        .unwrap();
    let got = admin
        .get_project_domain_attributes(ProjectDomainAttributesGetRequest {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            resource_type: WEC,
            org: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .attributes
        .unwrap();
    assert_eq!(got.matching_attributes, Some(wec(7, &[("team", "pd")])));

    // A workflow without its own attributes gets the project-domain ones; with, its own.
    let wf_get = |workflow: &str| WorkflowAttributesGetRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        workflow: workflow.into(),
        resource_type: WEC,
        org: String::new(),
    };
    let inherited = admin
        .get_workflow_attributes(wf_get("wf"))
        .await
        .unwrap()
        .into_inner()
        .attributes
        .unwrap();
    assert_eq!(
        inherited.matching_attributes,
        Some(wec(7, &[("team", "pd")]))
    );
    assert_eq!(inherited.workflow, "", "it says where it came from");
    admin
        .update_workflow_attributes(wf_update("wf", wec(2, &[("team", "wf")])))
        .await
        .unwrap();
    let own = admin
        .get_workflow_attributes(wf_get("wf"))
        .await
        .unwrap()
        .into_inner()
        .attributes
        .unwrap();
    assert_eq!(own.matching_attributes, Some(wec(2, &[("team", "wf")])));
    assert_eq!(own.workflow, "wf");

    // Listing: every scope, most specific first.
    let listed = admin
        .list_matchable_attributes(admin::ListMatchableAttributesRequest {
            resource_type: WEC,
            org: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .configurations;
    let scopes: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|c| (c.project.as_str(), c.domain.as_str(), c.workflow.as_str()))
        .collect();
    assert_eq!(scopes, [(PROJECT, DOMAIN, "wf"), (PROJECT, DOMAIN, "")]);

    // Deleting the workflow's falls back to the project-domain's; deleting twice is NOT_FOUND.
    let wf_delete = WorkflowAttributesDeleteRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        workflow: "wf".into(),
        resource_type: WEC,
        org: String::new(),
    };
    admin
        .delete_workflow_attributes(wf_delete.clone())
        .await
        .unwrap();
    let err = admin
        .delete_workflow_attributes(wf_delete)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let back = admin
        .get_workflow_attributes(wf_get("wf"))
        .await
        .unwrap()
        .into_inner()
        .attributes
        .unwrap();
    assert_eq!(back.matching_attributes, Some(wec(7, &[("team", "pd")])));

    admin
        .delete_project_domain_attributes(ProjectDomainAttributesDeleteRequest {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            resource_type: WEC,
            org: String::new(),
        })
        .await
        .unwrap();
    let err = admin
        .get_workflow_attributes(wf_get("wf"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn bad_requests_are_invalid_argument_with_the_reason() {
    let mut server = launch_support::start().await;
    let admin = &mut server.admin;
    let cases: Vec<(ProjectDomainAttributesUpdateRequest, &str)> = vec![
        (
            ProjectDomainAttributesUpdateRequest { attributes: None },
            "missing attributes",
        ),
        (
            ProjectDomainAttributesUpdateRequest {
                attributes: Some(ProjectDomainAttributes {
                    project: PROJECT.into(),
                    domain: DOMAIN.into(),
                    matching_attributes: None,
                    org: String::new(),
                }),
            },
            "missing matching_attributes",
        ),
        (
            pd_update(MatchingAttributes { target: None }),
            "sets no attribute",
        ),
        (pd_update(wec(-1, &[])), "max_parallelism"),
        (
            pd_update(MatchingAttributes {
                target: Some(Target::TaskResourceAttributes(TaskResourceAttributes {
                    defaults: Some(TaskResourceSpec {
                        cpu: "lots".into(),
                        ..Default::default()
                    }),
                    limits: None,
                })),
            }),
            "task_resource_attributes.defaults.cpu",
        ),
        (
            ProjectDomainAttributesUpdateRequest {
                attributes: Some(ProjectDomainAttributes {
                    project: "nosuchproject".into(),
                    domain: DOMAIN.into(),
                    matching_attributes: Some(wec(1, &[])),
                    org: String::new(),
                }),
            },
            "not registered",
        ),
        (
            ProjectDomainAttributesUpdateRequest {
                attributes: Some(ProjectDomainAttributes {
                    project: PROJECT.into(),
                    domain: "nosuchdomain".into(),
                    matching_attributes: Some(wec(1, &[])),
                    org: String::new(),
                }),
            },
            "known domains",
        ),
    ];
    for (request, expected) in cases {
        let err = admin
            .update_project_domain_attributes(request.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{request:?}: {err:?}");
        assert!(
            err.message().contains(expected),
            "{expected:?} not in {:?}",
            err.message()
        );
    }
    let err = admin
        .update_workflow_attributes(wf_update("", wec(1, &[])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("workflow"), "{}", err.message());
    let err = admin
        .list_matchable_attributes(admin::ListMatchableAttributesRequest {
            resource_type: 42,
            org: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("resource_type 42"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn plugin_overrides_merge_by_task_type_and_queues_are_returned() {
    let mut server = launch_support::start().await;
    let admin = &mut server.admin;
    let overrides = |o: &[(&str, &str)]| MatchingAttributes {
        target: Some(Target::PluginOverrides(PluginOverrides {
            overrides: o
                .iter()
                .map(|(t, p)| PluginOverride {
                    task_type: t.to_string(),
                    plugin_id: vec![p.to_string()],
                    missing_plugin_behavior: 0,
                })
                .collect(),
        })),
    };
    admin
        .update_project_domain_attributes(pd_update(overrides(&[("spark", "a"), ("ray", "b")])))
        .await
        .unwrap();
    admin
        .update_project_domain_attributes(pd_update(overrides(&[("spark", "c")])))
        .await
        .unwrap();
    let got = admin
        .get_project_domain_attributes(ProjectDomainAttributesGetRequest {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            resource_type: MatchableResource::PluginOverride as i32,
            org: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.attributes.unwrap().matching_attributes,
        Some(overrides(&[("ray", "b"), ("spark", "c")]))
    );

    let queue = MatchingAttributes {
        target: Some(Target::ExecutionQueueAttributes(ExecutionQueueAttributes {
            tags: vec!["gpu".into()],
        })),
    };
    admin
        .update_project_attributes(ProjectAttributesUpdateRequest {
            attributes: Some(ProjectAttributes {
                project: PROJECT.into(),
                matching_attributes: Some(queue.clone()),
                org: String::new(),
            }),
        })
        .await
        .unwrap();
    let got = admin
        .get_project_attributes(ProjectAttributesGetRequest {
            project: PROJECT.into(),
            resource_type: MatchableResource::ExecutionQueue as i32,
            org: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.attributes.unwrap().matching_attributes, Some(queue));
}

/// The JSON flytectl sends (grpc-gateway, proto field names) on the paths of flyteidl's
/// `google.api.http` annotations.
#[tokio::test]
async fn rest_gateway_paths_and_json_shapes() {
    let server = launch_support::start().await;
    let http = &server.http;
    let url = |p: &str| format!("{}{p}", server.base);
    let send = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = http
            .request(method, url(path))
            .header("accept", "application/json");
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str::<serde_json::Value>(&text).unwrap_or(json!(text)),
            )
        }
    };

    let body = json!({
        "attributes": {
            "project": PROJECT,
            "domain": DOMAIN,
            "matching_attributes": {
                "workflow_execution_config": {
                    "max_parallelism": 5,
                    "labels": {"values": {"team": "ml"}},
                    "envs": {"values": [{"key": "MODE", "value": "fast"}]}
                }
            }
        }
    });
    let (status, answer) = send(
        reqwest::Method::PUT,
        &format!("/api/v1/project_domain_attributes/{PROJECT}/{DOMAIN}"),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    let (status, answer) = send(
        reqwest::Method::GET,
        &format!(
            "/api/v1/project_domain_attributes/{PROJECT}/{DOMAIN}?resource_type=WORKFLOW_EXECUTION_CONFIG"
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let config = &answer["attributes"]["matching_attributes"]["workflow_execution_config"];
    assert_eq!(config["max_parallelism"], 5, "{answer}");
    assert_eq!(config["labels"]["values"]["team"], "ml", "{answer}");

    let wf_body = json!({
        "attributes": {
            "project": PROJECT, "domain": DOMAIN, "workflow": "wf",
            "matching_attributes": {"execution_cluster_label": {"value": "gpu-cluster"}}
        }
    });
    let (status, answer) = send(
        reqwest::Method::PUT,
        &format!("/api/v1/workflow_attributes/{PROJECT}/{DOMAIN}/wf"),
        Some(wf_body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = send(
        reqwest::Method::GET,
        &format!(
            "/api/v1/workflow_attributes/{PROJECT}/{DOMAIN}/wf?resource_type=EXECUTION_CLUSTER_LABEL"
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["attributes"]["matching_attributes"]["execution_cluster_label"]["value"],
        "gpu-cluster"
    );

    let (status, answer) = send(
        reqwest::Method::GET,
        "/api/v1/matchable_attributes?resource_type=WORKFLOW_EXECUTION_CONFIG",
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["configurations"].as_array().unwrap().len(),
        1,
        "{answer}"
    );

    // Project level: flytectl's `update project attributes` shape.
    let (status, answer) = send(
        reqwest::Method::PUT,
        &format!("/api/v1/project_attributes/{PROJECT}"),
        Some(
            json!({"attributes": {"project": PROJECT, "matching_attributes": {
            "task_resource_attributes": {"defaults": {"cpu": "1", "memory": "1Gi"}}}}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // DELETE carries its body (grpc-gateway `body: "*"`).
    let (status, answer) = send(
        reqwest::Method::DELETE,
        &format!("/api/v1/workflow_attributes/{PROJECT}/{DOMAIN}/wf"),
        Some(json!({"resource_type": "EXECUTION_CLUSTER_LABEL"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = send(
        reqwest::Method::GET,
        &format!(
            "/api/v1/workflow_attributes/{PROJECT}/{DOMAIN}/wf?resource_type=EXECUTION_CLUSTER_LABEL"
        ),
        None,
    )
    .await;
    assert_eq!(status, 404, "{answer}");

    // A bad body: 400 with the reason.
    let (status, answer) = send(
        reqwest::Method::PUT,
        &format!("/api/v1/project_domain_attributes/{PROJECT}/{DOMAIN}"),
        Some(json!({"attributes": {"project": PROJECT, "domain": DOMAIN}})),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.to_string().contains("matching_attributes"),
        "{answer}"
    );
}

#[tokio::test]
async fn executions_pick_up_attributes_workflow_over_project_domain() {
    let mut server = launch_support::start().await;
    admin_support::register_all(&mut server.admin, "v1").await;

    // Before any attributes: nothing added.
    let spec = execute(&mut server, "plain").await;
    assert_eq!(spec.max_parallelism, 0);
    assert!(spec.labels.is_none_or(|l| l.values.is_empty()));

    let mut pd = wec(4, &[("team", "pd")]);
    if let Some(Target::WorkflowExecutionConfig(c)) = &mut pd.target {
        c.envs = Some(admin::Envs {
            values: vec![core::KeyValuePair {
                key: "MODE".into(),
                value: "pd".into(),
            }],
        });
        c.annotations = Some(admin::Annotations {
            values: [("note".to_string(), "x".to_string())].into(),
        });
        c.raw_output_data_config = Some(admin::RawOutputDataConfig {
            output_location_prefix: "file:///tmp/raw-pd".into(),
        });
        c.interruptible = Some(true.into());
        c.overwrite_cache = true;
    }
    server
        .admin
        .update_project_domain_attributes(pd_update(pd))
        .await
        .unwrap();
    let spec = execute(&mut server, "frompd").await;
    assert_eq!(spec.max_parallelism, 4);
    assert_eq!(spec.labels.unwrap().values["team"], "pd");
    assert_eq!(spec.annotations.unwrap().values["note"], "x");
    assert_eq!(spec.envs.unwrap().values[0].value, "pd");
    assert_eq!(
        spec.raw_output_data_config.unwrap().output_location_prefix,
        "file:///tmp/raw-pd"
    );
    assert_eq!(spec.interruptible.map(|b| b.value), Some(true));
    assert!(spec.overwrite_cache);
    let started = server.launcher.started("frompd");
    assert_eq!(started.max_parallelism, 4);
    assert_eq!(started.labels["team"], "pd");
    assert_eq!(started.envs["MODE"], "pd");
    assert_eq!(started.interruptible, Some(true));
    assert!(started.overwrite_cache);
    assert_eq!(
        started.raw_output_data_prefix.as_deref(),
        Some("file:///tmp/raw-pd")
    );

    // The workflow's own attributes win over the project-domain's, as a whole (flyteadmin
    // takes the most specific set, then fills from the project level only).
    server
        .admin
        .update_workflow_attributes(wf_update("wf", wec(9, &[("team", "wf")])))
        .await
        .unwrap();
    let spec = execute(&mut server, "fromwf").await;
    assert_eq!(spec.max_parallelism, 9);
    assert_eq!(spec.labels.unwrap().values["team"], "wf");
    assert!(spec.envs.is_none_or(|e| e.values.is_empty()));

    // What the request sets wins over any attributes.
    let lp = admin_support::id(core::ResourceType::LaunchPlan, "wf", "v1");
    let mut request = admin_support::execution_request(&lp, "own", 1);
    let s = request.spec.as_mut().unwrap();
    s.max_parallelism = 1;
    s.labels = Some(admin::Labels {
        values: [("team".to_string(), "mine".to_string())].into(),
    });
    server.admin.create_execution(request).await.unwrap();
    let started = server.launcher.started("own");
    assert_eq!(started.max_parallelism, 1);
    assert_eq!(started.labels["team"], "mine");
}

#[tokio::test]
async fn task_resources_and_global_defaults_apply() {
    // The configured global level (admin.attributes in the binary's config).
    let mut server = launch_support::start_with(|config| {
        config.default_execution_config = WorkflowExecutionConfig {
            max_parallelism: 3,
            labels: Some(admin::Labels {
                values: [("origin".to_string(), "config".to_string())].into(),
            }),
            ..Default::default()
        };
        config.default_task_resources = TaskResourceAttributes {
            defaults: Some(TaskResourceSpec {
                cpu: "250m".into(),
                memory: "128Mi".into(),
                ..Default::default()
            }),
            limits: Some(TaskResourceSpec {
                cpu: "2".into(),
                memory: "1Gi".into(),
                ..Default::default()
            }),
        };
    })
    .await;
    admin_support::register_all(&mut server.admin, "v1").await;

    let spec = execute(&mut server, "global").await;
    assert_eq!(spec.max_parallelism, 3);
    assert_eq!(spec.labels.unwrap().values["origin"], "config");
    assert_eq!(
        resources(&server, "global"),
        resources_of(&[("cpu", "250m", "250m"), ("memory", "128Mi", "128Mi")])
    );

    // GetProjectAttributes of WORKFLOW_EXECUTION_CONFIG with nothing stored: the global level.
    let got = server
        .admin
        .get_project_attributes(ProjectAttributesGetRequest {
            project: PROJECT.into(),
            resource_type: WEC,
            org: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.attributes.unwrap().matching_attributes,
        Some(wec(3, &[("origin", "config")]))
    );

    // Stored TASK_RESOURCE attributes replace the configured ones; limits cap the defaults.
    server
        .admin
        .update_project_domain_attributes(pd_update(MatchingAttributes {
            target: Some(Target::TaskResourceAttributes(TaskResourceAttributes {
                defaults: Some(TaskResourceSpec {
                    cpu: "4".into(),
                    memory: "256Mi".into(),
                    ..Default::default()
                }),
                limits: Some(TaskResourceSpec {
                    cpu: "1".into(),
                    ..Default::default()
                }),
            })),
        }))
        .await
        .unwrap();
    execute(&mut server, "stored").await;
    assert_eq!(
        resources(&server, "stored"),
        resources_of(&[("cpu", "1", "1"), ("memory", "256Mi", "256Mi")])
    );
}

/// (resource, request, limit) of the task of execution `name` as the engine was asked to run it.
fn resources(server: &Server, name: &str) -> BTreeMap<String, (String, String)> {
    let started = server.launcher.started(name);
    let task = &started.compiled.tasks[0];
    let Some(core::task_template::Target::Container(c)) =
        task.template.as_ref().unwrap().target.as_ref()
    else {
        panic!("no container")
    };
    let r = c.resources.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for name in [ResourceName::Cpu, ResourceName::Memory] {
        let find = |e: &[core::resources::ResourceEntry]| {
            e.iter()
                .find(|e| e.name == name as i32)
                .map(|e| e.value.clone())
                .unwrap_or_default()
        };
        let key = if name == ResourceName::Cpu {
            "cpu"
        } else {
            "memory"
        };
        out.insert(key.to_string(), (find(&r.requests), find(&r.limits)));
    }
    out
}

fn resources_of(v: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String)> {
    v.iter()
        .map(|(k, r, l)| (k.to_string(), (r.to_string(), l.to_string())))
        .collect()
}
