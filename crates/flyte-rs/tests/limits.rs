//! Issue 11, "one request kills the server": graphs as deep as they are long, and literals
//! and types nested past the documented bound, through the whole server (TestServer).
//!
//! A linear chain of 10,000 echo nodes overflowed a tokio worker's stack in the compiler's
//! recursive cycle check and aborted the process; 100,000 must register over gRPC and run
//! to SUCCEEDED.

use std::time::Duration;

use flyte_rs::testing::TestServer;
use flyteidl::admin::*;
use flyteidl::core::{
    self, Binding, Identifier, Literal, LiteralMap, LiteralType, Node, ResourceType, TaskNode,
    TaskTemplate, WorkflowExecutionIdentifier, WorkflowMetadata, WorkflowTemplate, literal,
    literal_type, node, task_node, workflow_execution::Phase,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

mod support;

use support::{execution_request, grpc, id, iface, int, int_lit, promise};

/// `echo(a: int) -> b: int`, run inside the engine.
async fn register_echo(client: &mut AdminServiceClient<Channel>) -> Identifier {
    let task_id = id(ResourceType::Task, "echo");
    let template = TaskTemplate {
        id: Some(task_id.clone()),
        r#type: "echo".into(),
        interface: Some(iface(&[("a", int())], &[("b", int())])),
        metadata: Some(core::TaskMetadata {
            runtime: Some(core::RuntimeMetadata {
                version: "1.16.31".into(),
                flavor: "python".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .create_task(support::task_request(template))
        .await
        .expect("CreateTask");
    task_id
}

/// `chain(x: int) -> o: int`: `len` echo nodes in series, each reading the one before
/// (data edge and explicit upstream id, as flytekit writes them).
fn chain_template(name: &str, task: &Identifier, len: usize) -> WorkflowTemplate {
    let nodes = (0..len)
        .map(|i| {
            let (from, var) = if i == 0 {
                ("start-node".to_string(), "x")
            } else {
                (format!("n{}", i - 1), "b")
            };
            Node {
                id: format!("n{i}"),
                upstream_node_ids: if i == 0 { vec![] } else { vec![from.clone()] },
                inputs: vec![Binding {
                    var: "a".into(),
                    binding: promise(&from, var),
                }],
                metadata: Some(core::NodeMetadata {
                    name: "echo".into(),
                    ..Default::default()
                }),
                target: Some(node::Target::TaskNode(TaskNode {
                    reference: Some(task_node::Reference::ReferenceId(task.clone())),
                    ..Default::default()
                })),
                ..Default::default()
            }
        })
        .collect();
    WorkflowTemplate {
        id: Some(id(ResourceType::Workflow, name)),
        metadata: Some(WorkflowMetadata::default()),
        interface: Some(iface(&[("x", int())], &[("o", int())])),
        nodes,
        outputs: vec![Binding {
            var: "o".into(),
            binding: promise(&format!("n{}", len - 1), "b"),
        }],
        ..Default::default()
    }
}

async fn register_workflow_and_lp(
    client: &mut AdminServiceClient<Channel>,
    template: WorkflowTemplate,
    inputs: &[(&str, LiteralType)],
) -> Result<Identifier, tonic::Status> {
    let wf_id = template.id.clone().unwrap();
    client
        .create_workflow(support::workflow_request(template))
        .await?;
    let lp_id = Identifier {
        resource_type: ResourceType::LaunchPlan as i32,
        ..wf_id.clone()
    };
    client
        .create_launch_plan(support::launch_plan_request(&lp_id, &wf_id, inputs))
        .await?;
    Ok(lp_id)
}

async fn launch(
    client: &mut AdminServiceClient<Channel>,
    lp: &Identifier,
    inputs: &[(&str, Literal)],
) -> Result<WorkflowExecutionIdentifier, tonic::Status> {
    Ok(client
        .create_execution(execution_request(lp, inputs))
        .await?
        .into_inner()
        .id
        .expect("an execution id"))
}

/// Polls GetExecution every 500 ms until the execution is terminal. The wait is generous:
/// it only bounds a hung test, it asserts nothing about speed.
async fn wait_terminal(
    client: &mut AdminServiceClient<Channel>,
    id: &WorkflowExecutionIdentifier,
) -> Execution {
    support::wait_terminal(
        client,
        id,
        Duration::from_secs(1800),
        Duration::from_millis(500),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100000_node_chain_registers_over_grpc_and_runs_to_succeeded() {
    let len = 100_000;
    let server = TestServer::start().await.unwrap();
    let mut client = grpc(&server).await;
    let task = register_echo(&mut client).await;
    let template = chain_template("chain", &task, len);
    let lp = register_workflow_and_lp(&mut client, template, &[("x", int())])
        .await
        .expect("a 100,000-node chain registers");
    let id = launch(&mut client, &lp, &[("x", int_lit(7))])
        .await
        .expect("CreateExecution");
    let execution = wait_terminal(&mut client, &id).await;
    let closure = execution.closure.unwrap();
    assert_eq!(
        closure.phase,
        Phase::Succeeded as i32,
        "error: {:?}",
        closure.output_result
    );
    let data = client
        .get_execution_data(WorkflowExecutionGetDataRequest { id: Some(id) })
        .await
        .expect("GetExecutionData")
        .into_inner();
    assert_eq!(
        data.full_outputs.unwrap().literals.get("o"),
        Some(&int_lit(7))
    );
    // The server is still there after the run, and serves the workflow back: its closure
    // is about 12.7 MB, past tonic's (and Python gRPC's) default 4 MiB receive limit, which
    // is the client's to raise; the server sends responses of any size.
    let mut client = client.max_decoding_message_size(64 << 20);
    client
        .get_workflow(ObjectGetRequest {
            id: Some(id_of_wf()),
        })
        .await
        .expect("the server still answers");
}

fn id_of_wf() -> Identifier {
    id(ResourceType::Workflow, "chain")
}

/// `levels` levels in all: maps (the costliest shape for the protobuf decoder: three nested
/// messages a level) around one integer.
fn nested_map_literal(levels: usize) -> Literal {
    (1..levels).fold(int_lit(1), |inner, _| Literal {
        value: Some(literal::Value::Map(LiteralMap {
            literals: [("k".to_string(), inner)].into(),
        })),
        ..Default::default()
    })
}

/// The documented bound (docs/error-handling.md, "Nesting bound").
const BOUND: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_literal_nested_past_the_bound_is_invalid_argument_over_grpc_and_rest() {
    let server = TestServer::start().await.unwrap();
    let mut client = grpc(&server).await;
    let task = register_echo(&mut client).await;
    let lp = register_workflow_and_lp(
        &mut client,
        chain_template("short", &task, 1),
        &[("x", int())],
    )
    .await
    .expect("registers");

    let too_deep = nested_map_literal(BOUND + 1);
    let status = client
        .create_execution(execution_request(&lp, &[("x", too_deep.clone())]))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.message(),
        "input 'x': literal nested deeper than 30 levels"
    );

    // The same request as proto3 JSON through the REST gateway.
    let body = serde_json::to_value(execution_request(&lp, &[("x", too_deep)])).unwrap();
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/executions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["code"], 3, "{json}");
    assert_eq!(
        json["message"], "input 'x': literal nested deeper than 30 levels",
        "{json}"
    );

    // Far deeper than the decoders allow (JSON 128 objects, protobuf 100 messages): still a
    // client error, and the server is still there.
    let body =
        serde_json::to_value(execution_request(&lp, &[("x", nested_map_literal(60))])).unwrap();
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/executions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let status = client
        .create_execution(execution_request(&lp, &[("x", nested_map_literal(60))]))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // At the bound the value is judged on its type like any other.
    let status = client
        .create_execution(execution_request(&lp, &[("x", nested_map_literal(BOUND))]))
        .await
        .expect_err("wrong type");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("wrong type"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_nested_past_the_bound_is_refused_at_registration() {
    let server = TestServer::start().await.unwrap();
    let mut client = grpc(&server).await;
    let deep = (1..=BOUND).fold(int(), |t, _| LiteralType {
        r#type: Some(literal_type::Type::CollectionType(Box::new(t))),
        ..Default::default()
    });
    let task_id = id(ResourceType::Task, "deep");
    let template = TaskTemplate {
        id: Some(task_id.clone()),
        r#type: "echo".into(),
        interface: Some(iface(&[("a", deep.clone())], &[("b", deep)])),
        metadata: Some(core::TaskMetadata::default()),
        ..Default::default()
    };
    let status = client
        .create_task(support::task_request(template))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("input 'a': type nested deeper than 30 levels"),
        "{status:?}"
    );
}
