//! Executions through the whole server (TestServer): register over gRPC, CreateExecution, the
//! engine runs it (an in-engine `echo` task; a local-process task whose log is served over
//! HTTP at the link in its task execution), GetExecution / GetExecutionData read the result.

use std::time::Duration;

use flyte_rs::testing::TestServer;
use flyteidl::admin::*;
use flyteidl::core::{
    self, Binding, Container, Identifier, Literal, LiteralType, Node, NodeExecutionIdentifier,
    ResourceType, TaskNode, TaskTemplate, WorkflowExecutionIdentifier, WorkflowMetadata,
    WorkflowTemplate, node, task_node, task_template, workflow_execution::Phase,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

mod support;

use support::{grpc, id, iface, int, int_lit, promise};

/// Named types of an interface side.
type Vars<'a> = &'a [(&'a str, LiteralType)];

/// Registers `template` as a task, a one-node workflow around it and its launch plan, all
/// named `name`. `wf_inputs` are the workflow's (and the task's) inputs, bound by name.
async fn register(
    client: &mut AdminServiceClient<Channel>,
    name: &str,
    mut template: TaskTemplate,
    io: (Vars<'_>, Vars<'_>),
    outputs: &[(&str, &str)],
) -> Identifier {
    let task_id = id(ResourceType::Task, name);
    template.id = Some(task_id.clone());
    template.interface = Some(iface(io.0, io.1));
    template.metadata.get_or_insert_default().runtime = Some(core::RuntimeMetadata {
        version: "1.16.31".into(),
        flavor: "python".into(),
        ..Default::default()
    });
    client
        .create_task(support::task_request(template))
        .await
        .expect("CreateTask");
    let wf_id = id(ResourceType::Workflow, name);
    let node = Node {
        id: "n0".into(),
        inputs: io
            .0
            .iter()
            .map(|(v, _)| Binding {
                var: v.to_string(),
                binding: promise("start-node", v),
            })
            .collect(),
        metadata: Some(core::NodeMetadata {
            name: name.into(),
            ..Default::default()
        }),
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(task_id)),
            ..Default::default()
        })),
        ..Default::default()
    };
    let wf_outputs: Vec<(&str, LiteralType)> = outputs.iter().map(|(o, _)| (*o, int())).collect();
    let template = WorkflowTemplate {
        id: Some(wf_id.clone()),
        metadata: Some(WorkflowMetadata::default()),
        interface: Some(iface(io.0, &wf_outputs)),
        nodes: vec![node],
        outputs: outputs
            .iter()
            .map(|(o, from)| Binding {
                var: o.to_string(),
                binding: promise("n0", from),
            })
            .collect(),
        ..Default::default()
    };
    client
        .create_workflow(support::workflow_request(template))
        .await
        .expect("CreateWorkflow");
    let lp_id = id(ResourceType::LaunchPlan, name);
    client
        .create_launch_plan(support::launch_plan_request(&lp_id, &wf_id, io.0))
        .await
        .expect("CreateLaunchPlan");
    lp_id
}

async fn launch(
    client: &mut AdminServiceClient<Channel>,
    lp: &Identifier,
    inputs: &[(&str, Literal)],
) -> WorkflowExecutionIdentifier {
    client
        .create_execution(support::execution_request(lp, inputs))
        .await
        .expect("CreateExecution")
        .into_inner()
        .id
        .expect("an execution id")
}

/// Polls GetExecution every 50 ms until the execution is terminal.
async fn wait_terminal(
    client: &mut AdminServiceClient<Channel>,
    id: &WorkflowExecutionIdentifier,
    timeout: Duration,
) -> Execution {
    support::wait_terminal(client, id, timeout, Duration::from_millis(50)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_task_execution_runs_through_the_whole_server() {
    let server = TestServer::start().await.unwrap();
    let mut client = grpc(&server).await;
    let template = TaskTemplate {
        r#type: "echo".into(),
        ..Default::default()
    };
    let lp = register(
        &mut client,
        "echo",
        template,
        (&[("a", int())], &[("b", int())]),
        &[("o", "b")],
    )
    .await;
    let id = launch(&mut client, &lp, &[("a", int_lit(41))]).await;
    let execution = wait_terminal(&mut client, &id, Duration::from_secs(30)).await;
    let closure = execution.closure.unwrap();
    assert_eq!(
        closure.phase,
        Phase::Succeeded as i32,
        "error: {:?}",
        closure.output_result
    );
    assert!(closure.started_at.is_some() && closure.duration.is_some());
    let data = client
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        data.full_outputs.unwrap().literals.get("o"),
        Some(&int_lit(41))
    );
    assert_eq!(
        data.full_inputs.unwrap().literals.get("a"),
        Some(&int_lit(41))
    );
    // The echo task ran in the engine: one attempt, no process, no log.
    let attempts = client
        .list_task_executions(TaskExecutionListRequest {
            node_execution_id: Some(NodeExecutionIdentifier {
                node_id: "n0".into(),
                execution_id: Some(id),
            }),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_executions;
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].closure.as_ref().unwrap().logs.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_process_task_log_is_served_at_its_link() {
    let server = TestServer::start().await.unwrap();
    let mut client = grpc(&server).await;
    let template = TaskTemplate {
        r#type: "raw-container".into(),
        target: Some(task_template::Target::Container(Container {
            image: "docker.io/library/alpine:3".into(),
            command: vec!["sh".into(), "-c".into()],
            args: vec![
                "echo \"hello from $FLYTE_INTERNAL_EXECUTION_ID at $FLYTE_PLATFORM_URL insecure=$FLYTE_PLATFORM_INSECURE\"".into(),
            ],
            ..Default::default()
        })),
        ..Default::default()
    };
    let lp = register(&mut client, "shell", template, (&[], &[]), &[]).await;
    let id = launch(&mut client, &lp, &[]).await;
    let execution = wait_terminal(&mut client, &id, Duration::from_secs(60)).await;
    let closure = execution.closure.unwrap();
    assert_eq!(
        closure.phase,
        Phase::Succeeded as i32,
        "error: {:?}",
        closure.output_result
    );

    let attempt = client
        .list_task_executions(TaskExecutionListRequest {
            node_execution_id: Some(NodeExecutionIdentifier {
                node_id: "n0".into(),
                execution_id: Some(id.clone()),
            }),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .task_executions
        .pop()
        .expect("one attempt");
    let task_execution = client
        .get_task_execution(TaskExecutionGetRequest { id: attempt.id })
        .await
        .unwrap()
        .into_inner();
    let logs = task_execution.closure.unwrap().logs;
    let uri = &logs.first().expect("a log link").uri;
    assert!(uri.starts_with(&server.url("/logs/")), "{uri}");
    let response = reqwest::get(uri).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let expected = format!(
        "hello from {} at 127.0.0.1:{} insecure=true",
        id.name,
        server.addr().port()
    );
    assert!(text.contains(&expected), "log: {text:?}");

    // Only canonical log paths are served.
    for bad in [
        "/logs/../flyte.db",
        "/logs/flytesnacks/development/x/n0/01.log",
        "/logs/nope",
    ] {
        let status = reqwest::get(server.url(bad)).await.unwrap().status();
        assert_eq!(status, 404, "{bad}");
    }
    server.shutdown().await.unwrap();
}
