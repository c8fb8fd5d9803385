//! A server whose metadata store's disk fills up: API writes answer RESOURCE_EXHAUSTED
//! saying the disk is full, `/readyz` answers 503 with the reason, and once space is freed
//! both recover without a restart.
//!
//! An execution running while the disk is full (metadata store and blobs, or the blobs alone)
//! is neither lost nor failed for it: the engine waits, and it finishes by itself once space
//! is freed.
//!
//! The disk is a real, small tmpfs filled with a ballast file; deleting it frees the space.
//! Mounting needs root (CI and the dev machines run as root): without it the test fails at
//! the mount, it never skips.

use std::time::Duration;

use flyte_rs::testing::TestServer;
use flyteidl::admin::*;
use flyteidl::core::{
    Binding, Identifier, Node, ResourceType, RuntimeMetadata, SimpleType, TaskMetadata, TaskNode,
    TaskTemplate, WorkflowExecutionIdentifier, WorkflowMetadata, WorkflowTemplate, node,
    node_execution, primitive, task_node, workflow_execution,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

mod support;

use support::{SmallDisk, execution_request, grpc, iface, prim, promise, simple};

fn project(id: &str) -> ProjectRegisterRequest {
    ProjectRegisterRequest {
        project: Some(Project {
            id: id.to_string(),
            name: id.to_string(),
            description: "x".repeat(300),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn a_full_metadata_disk_is_resource_exhausted_and_not_ready_until_space_is_freed() {
    let disk = SmallDisk::mount("8m");
    let db = disk.path().join("flyte.db");
    let server = TestServer::start_with(|c| {
        c.storage.metadata_url = Some(format!("sqlite://{}", db.display()));
    })
    .await
    .unwrap();
    let mut client = grpc(&server).await;
    client.register_project(project("before")).await.unwrap();

    let ballast = disk.fill();
    let status = client
        .register_project(project("while-full"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("disk is full"),
        "{}",
        status.message()
    );
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let reason = r.text().await.unwrap();
    assert!(reason.contains("disk is full"), "{reason}");

    std::fs::remove_file(&ballast).unwrap();
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    for i in 0..10 {
        client
            .register_project(project(&format!("after-{i}")))
            .await
            .unwrap_or_else(|s| panic!("write {i} after space was freed: {s:?}"));
    }
    server.shutdown().await.unwrap();
}

// --- an execution across a full disk ---------------------------------------------------------

fn task_node(id: &str, task: &str, upstream: &[&str], inputs: Vec<Binding>) -> Node {
    Node {
        id: id.into(),
        upstream_node_ids: upstream.iter().map(|u| u.to_string()).collect(),
        inputs,
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(support::id(
                ResourceType::Task,
                task,
            ))),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// `wf(a: int, d: duration) -> o: int`: `nap` sleeps `d` in the engine (core-sleep), then
/// `copy` echoes `a` into `o`, so after the sleep the engine must write `copy`'s inputs and
/// outputs (blobs) and every state change (metadata store).
async fn register_nap_then_copy(client: &mut AdminServiceClient<Channel>) -> Identifier {
    let int = simple(SimpleType::Integer);
    let duration = simple(SimpleType::Duration);
    let runtime = Some(TaskMetadata {
        runtime: Some(RuntimeMetadata {
            version: "1.16.31".into(),
            flavor: "python".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    for (name, kind, interface) in [
        (
            "nap",
            "core-sleep",
            Some(iface(&[("d", duration.clone())], &[])),
        ),
        (
            "copy",
            "echo",
            Some(iface(&[("a", int.clone())], &[("a", int.clone())])),
        ),
    ] {
        let id = support::id(ResourceType::Task, name);
        let template = TaskTemplate {
            id: Some(id.clone()),
            r#type: kind.into(),
            metadata: runtime.clone(),
            interface,
            ..Default::default()
        };
        client
            .create_task(support::task_request(template))
            .await
            .expect("CreateTask");
    }
    let wf_id = support::id(ResourceType::Workflow, "nap-then-copy");
    let template = WorkflowTemplate {
        id: Some(wf_id.clone()),
        metadata: Some(WorkflowMetadata::default()),
        interface: Some(iface(
            &[("a", int.clone()), ("d", duration.clone())],
            &[("o", int.clone())],
        )),
        nodes: vec![
            task_node(
                "n0",
                "nap",
                &[],
                vec![Binding {
                    var: "d".into(),
                    binding: promise("start-node", "d"),
                }],
            ),
            task_node(
                "n1",
                "copy",
                &["n0"],
                vec![Binding {
                    var: "a".into(),
                    binding: promise("start-node", "a"),
                }],
            ),
        ],
        outputs: vec![Binding {
            var: "o".into(),
            binding: promise("n1", "a"),
        }],
        ..Default::default()
    };
    client
        .create_workflow(support::workflow_request(template))
        .await
        .expect("CreateWorkflow");
    let lp_id = support::id(ResourceType::LaunchPlan, "nap-then-copy");
    client
        .create_launch_plan(support::launch_plan_request(
            &lp_id,
            &wf_id,
            &[("a", int), ("d", duration)],
        ))
        .await
        .expect("CreateLaunchPlan");
    lp_id
}

async fn phase_of(
    client: &mut AdminServiceClient<Channel>,
    id: &WorkflowExecutionIdentifier,
) -> workflow_execution::Phase {
    let execution = client
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(id.clone()),
        })
        .await
        .expect("GetExecution (reads work on a full disk)")
        .into_inner();
    workflow_execution::Phase::try_from(execution.closure.map_or(0, |c| c.phase))
        .unwrap_or(workflow_execution::Phase::Undefined)
}

async fn node_phase(
    client: &mut AdminServiceClient<Channel>,
    id: &WorkflowExecutionIdentifier,
    node: &str,
) -> Option<i32> {
    let nodes = client
        .list_node_executions(NodeExecutionListRequest {
            workflow_execution_id: Some(id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("ListNodeExecutions")
        .into_inner()
        .node_executions;
    nodes
        .into_iter()
        .find(|n| n.id.as_ref().is_some_and(|i| i.node_id == node))
        .and_then(|n| n.closure.map(|c| c.phase))
}

/// A counter's value in `/metrics` (0 before it is first counted).
async fn counter(server: &TestServer, name: &str) -> f64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` every 100 ms until it holds; `what` names it if it never does (a bound on
/// a hung test, not a timing assertion).
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..1200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not after 120 s");
}

/// Issue 11 item 3: an execution running when the disk fills is not lost or failed for it.
/// Metadata store and blobs on one disk (the embedded default): the engine cannot record
/// the nap's end, retries with backoff, and once space is freed the execution finishes by
/// itself, SUCCEEDED with the right outputs, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_running_when_the_disk_fills_finishes_once_space_is_freed() {
    let retried = run_through_a_full_disk(Layout::OneDisk).await;
    assert!(
        retried.sink > 0.0,
        "the engine's progress records met the full disk and were retried"
    );
}

/// The same with only the blob store's disk full: the metadata store records the nap's end,
/// and the in-engine copy's `outputs.pb` meets the full disk; the attempt stays running and
/// its write is retried until space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_output_written_to_a_full_blob_disk_waits_until_space_is_freed() {
    let retried = run_through_a_full_disk(Layout::BlobsOnly).await;
    assert!(
        retried.blob > 0.0,
        "the engine's own blob writes met the full disk and were retried"
    );
}

/// What is on the small disk.
enum Layout {
    OneDisk,
    BlobsOnly,
}

/// The engine's retries while the disk was full.
struct Retried {
    blob: f64,
    sink: f64,
}

async fn run_through_a_full_disk(layout: Layout) -> Retried {
    let disk = SmallDisk::mount("8m");
    let elsewhere = tempfile::tempdir().unwrap();
    let db = match layout {
        Layout::OneDisk => disk.path().join("flyte.db"),
        Layout::BlobsOnly => elsewhere.path().join("flyte.db"),
    };
    let blobs = disk.path().join("blobs");
    std::fs::create_dir(&blobs).unwrap();
    let server = TestServer::start_with(|c| {
        c.storage.metadata_url = Some(format!("sqlite://{}", db.display()));
        c.storage.blob_url = Some(format!("file://{}", blobs.display()));
    })
    .await
    .unwrap();
    let mut client = grpc(&server).await;
    let lp = register_nap_then_copy(&mut client).await;
    let request = execution_request(
        &lp,
        &[
            ("a", prim(primitive::Value::Integer(41))),
            (
                "d",
                prim(primitive::Value::Duration(pbjson_types::Duration {
                    seconds: 2,
                    nanos: 0,
                })),
            ),
        ],
    );
    let id = client
        .create_execution(request)
        .await
        .expect("CreateExecution")
        .into_inner()
        .id
        .unwrap();

    let running = node_execution::Phase::Running as i32;
    until("the nap node runs", || {
        let (mut client, id) = (client.clone(), id.clone());
        async move { node_phase(&mut client, &id, "n0").await == Some(running) }
    })
    .await;
    let sink_retries = counter(&server, "flyte_engine_sink_retries_total").await;
    let ballast = disk.fill();
    // The nap ends while the disk is full: the engine tries to record its progress (metadata
    // store) or, with that elsewhere, the copy's outputs (a blob), and cannot.
    until("the engine meets the full disk", || async {
        counter(&server, "flyte_engine_blob_retries_total").await > 0.0
            || counter(&server, "flyte_engine_sink_retries_total").await > sink_retries
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let reason = r.text().await.unwrap();
    assert!(reason.contains("disk is full"), "{reason}");
    assert_eq!(
        phase_of(&mut client, &id).await,
        workflow_execution::Phase::Running,
        "the execution while the disk is full"
    );

    std::fs::remove_file(&ballast).unwrap();
    until("the execution ends after space is freed", || {
        let (mut client, id) = (client.clone(), id.clone());
        async move {
            !matches!(
                phase_of(&mut client, &id).await,
                workflow_execution::Phase::Running
                    | workflow_execution::Phase::Queued
                    | workflow_execution::Phase::Undefined
            )
        }
    })
    .await;
    let execution = client
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let closure = execution.closure.unwrap();
    assert_eq!(
        closure.phase,
        workflow_execution::Phase::Succeeded as i32,
        "{:?}",
        closure.output_result
    );
    let data = client
        .get_execution_data(WorkflowExecutionGetDataRequest { id: Some(id) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        data.full_outputs.unwrap().literals.get("o"),
        Some(&prim(primitive::Value::Integer(41)))
    );
    let retried = Retried {
        blob: counter(&server, "flyte_engine_blob_retries_total").await,
        sink: counter(&server, "flyte_engine_sink_retries_total").await - sink_retries,
    };
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    server.shutdown().await.unwrap();
    retried
}
