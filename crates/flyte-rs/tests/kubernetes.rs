//! `kubernetes.enabled`: a python-task of an execution runs as a pod, through the whole server
//! (gRPC CreateExecution, the engine, the Kubernetes backend) against the API double of
//! crates/flyte-kube/tests/double (no Kubernetes runs here; docs/kubernetes.md).

use std::time::{Duration, Instant};

use flyte_rs::testing::TestServer;
use flyteidl::core::{
    self, Container, Node, ResourceType, TaskNode, TaskTemplate, WorkflowMetadata,
    WorkflowTemplate, node, task_node, task_template, workflow_execution::Phase,
};
use serde_json::json;

#[path = "../../flyte-kube/tests/double/mod.rs"]
#[allow(dead_code)] // the error and deletion helpers serve flyte-kube's own tests
mod double;
mod support;

use support::{grpc, id, iface};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_task_runs_as_a_pod_when_kubernetes_is_enabled() {
    let api = double::ApiDouble::start().await;
    let ns = format!("{}-{}", support::PROJECT, support::DOMAIN);
    api.add_namespace(&ns);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let server = TestServer::start_with(|c| {
        c.kubernetes.enabled = true;
        c.kubernetes.kubeconfig = Some(kubeconfig);
        c.kubernetes.delete_finished_pods_after_secs = 0;
    })
    .await
    .unwrap();
    let mut client = grpc(&server).await;

    let task_id = id(ResourceType::Task, "k8s_hello");
    let template = TaskTemplate {
        id: Some(task_id.clone()),
        r#type: "python-task".into(),
        interface: Some(iface(&[], &[])),
        metadata: Some(core::TaskMetadata {
            runtime: Some(core::RuntimeMetadata {
                version: "1.16.31".into(),
                flavor: "python".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        target: Some(task_template::Target::Container(Container {
            image: "cr.flyte.org/flyteorg/flytekit:py3.12-1.16.31".into(),
            args: [
                "pyflyte-execute",
                "--inputs",
                "{{.input}}",
                "--output-prefix",
                "{{.outputPrefix}}",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        })),
        ..Default::default()
    };
    client
        .create_task(support::task_request(template))
        .await
        .unwrap();
    let wf_id = id(ResourceType::Workflow, "k8s_hello");
    let workflow = WorkflowTemplate {
        id: Some(wf_id.clone()),
        metadata: Some(WorkflowMetadata::default()),
        interface: Some(iface(&[], &[])),
        nodes: vec![Node {
            id: "n0".into(),
            metadata: Some(core::NodeMetadata {
                name: "k8s_hello".into(),
                ..Default::default()
            }),
            target: Some(node::Target::TaskNode(TaskNode {
                reference: Some(task_node::Reference::ReferenceId(task_id)),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    };
    client
        .create_workflow(support::workflow_request(workflow))
        .await
        .unwrap();
    let lp = id(ResourceType::LaunchPlan, "k8s_hello");
    client
        .create_launch_plan(support::launch_plan_request(&lp, &wf_id, &[]))
        .await
        .unwrap();
    // The execution's labels, annotations and service account go onto its pods (propeller's
    // addObjectMetadata and GetServiceAccountNameFromTaskExecutionMetadata).
    let mut request = support::execution_request(&lp, &[]);
    let spec = request.spec.as_mut().unwrap();
    spec.labels = Some(flyteidl::admin::Labels {
        values: [("team", "ml"), ("execution-id", "not-this-one")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
    });
    spec.annotations = Some(flyteidl::admin::Annotations {
        values: [("owner".to_string(), "alice@example.com".to_string())].into(),
    });
    spec.security_context = Some(core::SecurityContext {
        run_as: Some(core::Identity {
            k8s_service_account: "ml-runner".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let exec = client
        .create_execution(request)
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();

    // The engine creates the pod: wait for it (bounded only so a broken run fails).
    let deadline = Instant::now() + Duration::from_secs(60);
    let name = loop {
        if let Some((_, name)) = api.pod_names().into_iter().find(|(n, _)| *n == ns) {
            break name;
        }
        assert!(Instant::now() < deadline, "no pod created in {ns}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(name, format!("{}-n0-0", exec.name));
    let pod = api.pod(&ns, &name).unwrap();
    let env = pod["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        env.iter()
            .any(|e| e["name"] == "FLYTE_INTERNAL_EXECUTION_ID" && e["value"] == json!(exec.name)),
        "{env:?}"
    );

    assert_eq!(pod["metadata"]["labels"]["team"], "ml", "{pod}");
    assert_eq!(pod["metadata"]["labels"]["execution-id"], json!(exec.name));
    assert_eq!(
        pod["metadata"]["annotations"]["owner"], "alice@example.com",
        "{pod}"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "ml-runner", "{pod}");
    // Owned by the execution's ConfigMap (garbage collection; docs/adr-012-kubernetes-pod-owner.md).
    let owner_name = format!("flyte-rs-exec-{}", exec.name);
    let owner = api.config_map(&ns, &owner_name).expect("the pods' owner");
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["uid"], owner["metadata"]["uid"],
        "{pod}"
    );

    // The kubelet's part: the container ran and exited 0.
    api.set_status(
        &ns,
        &name,
        json!({"phase": "Succeeded", "containerStatuses": [{"name": name, "ready": false,
            "restartCount": 0, "image": "i", "imageID": "",
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
    );
    let execution = support::wait_terminal(
        &mut client,
        &exec,
        Duration::from_secs(60),
        Duration::from_millis(50),
    )
    .await;
    let closure = execution.closure.unwrap();
    assert_eq!(
        closure.phase,
        Phase::Succeeded as i32,
        "error: {:?}",
        closure.output_result
    );
    // The execution ended: its owner goes (the garbage collector takes what pods are left).
    let mut waited = 0;
    while api.config_map(&ns, &owner_name).is_some() {
        waited += 1;
        assert!(
            waited < 1200,
            "the ended execution's owner was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await.unwrap();
}

/// Registers a one-task workflow (a `python-task` running `sh -c 'exit 0'`) and its launch
/// plan in `PROJECT/domain`; the launch plan's id.
async fn register_plain(
    client: &mut flyteidl::service::admin_service_client::AdminServiceClient<
        tonic::transport::Channel,
    >,
    domain: &str,
) -> core::Identifier {
    let in_domain = |rt, name: &str| core::Identifier {
        domain: domain.into(),
        ..id(rt, name)
    };
    let task_id = in_domain(ResourceType::Task, "plain");
    let template = TaskTemplate {
        id: Some(task_id.clone()),
        r#type: "python-task".into(),
        interface: Some(iface(&[], &[])),
        metadata: Some(core::TaskMetadata::default()),
        target: Some(task_template::Target::Container(Container {
            image: "busybox".into(),
            args: ["sh", "-c", "exit 0"].map(String::from).to_vec(),
            ..Default::default()
        })),
        ..Default::default()
    };
    client
        .create_task(support::task_request(template))
        .await
        .unwrap();
    let wf_id = in_domain(ResourceType::Workflow, "plain");
    let workflow = WorkflowTemplate {
        id: Some(wf_id.clone()),
        metadata: Some(WorkflowMetadata::default()),
        interface: Some(iface(&[], &[])),
        nodes: vec![Node {
            id: "n0".into(),
            metadata: Some(core::NodeMetadata {
                name: "plain".into(),
                ..Default::default()
            }),
            target: Some(node::Target::TaskNode(TaskNode {
                reference: Some(task_node::Reference::ReferenceId(task_id)),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    };
    client
        .create_workflow(support::workflow_request(workflow))
        .await
        .unwrap();
    let lp = in_domain(ResourceType::LaunchPlan, "plain");
    client
        .create_launch_plan(support::launch_plan_request(&lp, &wf_id, &[]))
        .await
        .unwrap();
    lp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_overrides_choose_pods_or_local_processes_per_project_and_domain() {
    use flyteidl::admin::{
        MatchingAttributes, PluginOverride, PluginOverrides, ProjectDomainAttributes,
        ProjectDomainAttributesUpdateRequest, matching_attributes::Target,
        plugin_override::MissingPluginBehavior,
    };
    let api = double::ApiDouble::start().await;
    for domain in ["development", "staging", "production"] {
        api.add_namespace(&format!("{}-{domain}", support::PROJECT));
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    // python-task runs as pods by configuration (the default task types).
    let server = TestServer::start_with(|c| {
        c.kubernetes.enabled = true;
        c.kubernetes.kubeconfig = Some(kubeconfig);
        c.engine.auto_venv = false;
    })
    .await
    .unwrap();
    let mut client = grpc(&server).await;
    // As `flytectl update plugin-override` sets them.
    let set = |domain: &str, ids: &[&str]| ProjectDomainAttributesUpdateRequest {
        attributes: Some(ProjectDomainAttributes {
            project: support::PROJECT.into(),
            domain: domain.into(),
            matching_attributes: Some(MatchingAttributes {
                target: Some(Target::PluginOverrides(PluginOverrides {
                    overrides: vec![PluginOverride {
                        task_type: "python-task".into(),
                        plugin_id: ids.iter().map(|s| s.to_string()).collect(),
                        missing_plugin_behavior: MissingPluginBehavior::Fail as i32,
                    }],
                })),
            }),
            org: String::new(),
        }),
    };
    client
        .update_project_domain_attributes(set("staging", &["local"]))
        .await
        .unwrap();
    client
        .update_project_domain_attributes(set("production", &["spark"]))
        .await
        .unwrap();

    let mut run = async |domain: &str| {
        let lp = register_plain(&mut client, domain).await;
        let mut request = support::execution_request(&lp, &[]);
        request.domain = domain.into();
        client
            .create_execution(request)
            .await
            .unwrap()
            .into_inner()
            .id
            .unwrap()
    };
    let dev = run("development").await;
    let staging = run("staging").await;
    let production = run("production").await;

    // staging: a local process, no pod.
    let done = support::wait_terminal(
        &mut client,
        &staging,
        Duration::from_secs(60),
        Duration::from_millis(50),
    )
    .await
    .closure
    .unwrap();
    assert_eq!(
        done.phase,
        Phase::Succeeded as i32,
        "{:?}",
        done.output_result
    );
    // production: the override names no backend there is, and FAIL says so.
    let done = support::wait_terminal(
        &mut client,
        &production,
        Duration::from_secs(60),
        Duration::from_millis(50),
    )
    .await
    .closure
    .unwrap();
    assert_eq!(done.phase, Phase::Failed as i32);
    let message = format!("{:?}", done.output_result);
    assert!(
        message.contains("NoTaskBackend") && message.contains("\\\"spark\\\""),
        "{message}"
    );
    // development (no override): the configured choice, a pod.
    let deadline = Instant::now() + Duration::from_secs(60);
    while api
        .pod(
            &format!("{}-development", support::PROJECT),
            &format!("{}-n0-0", dev.name),
        )
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "no pod for the development execution"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let namespaces: Vec<String> = api.pod_names().into_iter().map(|(ns, _)| ns).collect();
    assert_eq!(
        namespaces,
        [format!("{}-development", support::PROJECT)],
        "pods only where no override sends the task elsewhere"
    );
    server.shutdown().await.unwrap();
}
