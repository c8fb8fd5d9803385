//! The admin with the real engine behind it: CreateExecution → the engine runs the workflow
//! (in-engine `echo` tasks) → events through the store-backed sink → GetExecution,
//! GetExecutionData, ListNodeExecutions and ListTaskExecutions show the result; terminate;
//! the journal in the store resumes an execution after a crash.

mod admin_support;

use std::sync::Arc;

use admin_support::*;
use flyte_engine::{Engine, WorkflowPhase};
use flyteidl::admin::*;
use flyteidl::core::{
    self, LiteralMap, NodeExecutionIdentifier, ResourceType, WorkflowExecutionIdentifier,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

struct Env {
    client: AdminServiceClient<Channel>,
    engine: Arc<Engine>,
    _dir: Arc<tempfile::TempDir>,
}

async fn start(dir: Arc<tempfile::TempDir>) -> Env {
    let (state, engine) = engine_state(dir.path()).await;
    engine.resume_all().await.unwrap();
    let (_, client) = serve(state).await;
    Env {
        client,
        engine,
        _dir: dir,
    }
}

/// Task `t` (echo `a` → `b`), workflow `wf` (`x` → n0 → `o`), launch plan `wf`.
async fn register(client: &mut AdminServiceClient<Channel>) -> core::Identifier {
    register_with(client, echo_task_request("t", "v1"), "wf", "v1")
        .await
        .2
}

fn exec_id(name: &str) -> WorkflowExecutionIdentifier {
    WorkflowExecutionIdentifier {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_through_the_engine_and_reads_back_like_flytekit() {
    let mut env = start(Arc::new(tempfile::tempdir().unwrap())).await;
    let lp = register(&mut env.client).await;
    let id = env
        .client
        .create_execution(execution_request(&lp, "", 7))
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    assert_eq!(env.engine.wait(&id).await, Some(WorkflowPhase::Succeeded));

    let c = &mut env.client;
    let exec = c
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let closure = exec.closure.unwrap();
    assert_eq!(
        closure.phase,
        core::workflow_execution::Phase::Succeeded as i32
    );
    assert!(closure.started_at.is_some() && closure.duration.is_some());
    let data = c
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        data.full_outputs.unwrap().literals.get("o"),
        Some(&int_lit(7))
    );

    let nodes = c
        .list_node_executions(NodeExecutionListRequest {
            workflow_execution_id: Some(id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let n0 = nodes
        .node_executions
        .iter()
        .find(|n| n.id.as_ref().unwrap().node_id == "n0")
        .expect("n0 listed");
    assert_eq!(
        n0.closure.as_ref().unwrap().phase,
        core::node_execution::Phase::Succeeded as i32
    );
    let node_id = NodeExecutionIdentifier {
        node_id: "n0".into(),
        execution_id: Some(id.clone()),
    };
    let node_data = c
        .get_node_execution_data(NodeExecutionGetDataRequest {
            id: Some(node_id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        node_data.full_inputs.unwrap().literals.get("a"),
        Some(&int_lit(7))
    );
    assert_eq!(
        node_data.full_outputs.unwrap().literals.get("b"),
        Some(&int_lit(7))
    );
    let tasks = c
        .list_task_executions(TaskExecutionListRequest {
            node_execution_id: Some(node_id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tasks.task_executions.len(), 1);
    let attempt = &tasks.task_executions[0];
    assert_eq!(
        attempt.closure.as_ref().unwrap().phase,
        core::task_execution::Phase::Succeeded as i32
    );
    let task_data = c
        .get_task_execution_data(TaskExecutionGetDataRequest {
            id: attempt.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        task_data.full_outputs.unwrap().literals.get("b"),
        Some(&int_lit(7))
    );

    // Single-task execution through the engine.
    let task_id = id_of(ResourceType::Task, "t");
    let single = c
        .create_execution(ExecutionCreateRequest {
            #[allow(deprecated)]
            inputs: Some(LiteralMap {
                literals: [("a".to_string(), int_lit(11))].into(),
            }),
            ..execution_request(&task_id, "", 0)
        })
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    assert_eq!(
        env.engine.wait(&single).await,
        Some(WorkflowPhase::Succeeded)
    );
    let data = env
        .client
        .get_execution_data(WorkflowExecutionGetDataRequest { id: Some(single) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        data.full_outputs.unwrap().literals.get("b"),
        Some(&int_lit(11))
    );
}

fn id_of(rt: ResourceType, name: &str) -> core::Identifier {
    id(rt, name, "v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_a_finished_execution_is_refused() {
    let mut env = start(Arc::new(tempfile::tempdir().unwrap())).await;
    let lp = register(&mut env.client).await;
    env.client
        .create_execution(execution_request(&lp, "done", 1))
        .await
        .unwrap();
    assert_eq!(
        env.engine.wait(&exec_id("done")).await,
        Some(WorkflowPhase::Succeeded)
    );
    let err = env
        .client
        .terminate_execution(ExecutionTerminateRequest {
            id: Some(exec_id("done")),
            cause: "late".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_execution_survives_a_crash_before_the_engine_ran_it() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // Record an execution the way CreateExecution does, with its engine request, but never
    // let an engine run it (the process "died" right after the commit).
    {
        let env = start(dir.clone()).await;
        let mut client = env.client.clone();
        let lp = register(&mut client).await;
        env.engine.shutdown().await;
        // The engine is shut down: the start fails, the record and its journal stay.
        let _ = client
            .create_execution(execution_request(&lp, "orphan", 5))
            .await;
    }
    // A new server on the same store resumes it.
    let mut env = start(dir).await;
    assert_eq!(
        env.engine.wait(&exec_id("orphan")).await,
        Some(WorkflowPhase::Succeeded)
    );
    let data = env
        .client
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(exec_id("orphan")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        data.full_outputs.unwrap().literals.get("o"),
        Some(&int_lit(5))
    );
}

/// Files named `name` under `dir` whose path has a directory `node`.
fn files_of_node(dir: &std::path::Path, node: &str, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            found.extend(files_of_node(&path, node, name));
        } else if path.file_name().is_some_and(|n| n == name)
            && path.components().any(|c| c.as_os_str() == node)
        {
            found.push(path);
        }
    }
    found
}

/// An in-engine task's inputs go to no blob (nothing reads one); the API still gives them:
/// node and task data inline, no `input_uri` naming a file that is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_engine_task_inputs_are_read_back_without_an_inputs_file() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut env = start(dir.clone()).await;
    let lp = register(&mut env.client).await;
    let id = env
        .client
        .create_execution(execution_request(&lp, "inline", 7))
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    assert_eq!(env.engine.wait(&id).await, Some(WorkflowPhase::Succeeded));
    let written = files_of_node(dir.path(), "n0", "inputs.pb");
    assert!(written.is_empty(), "the echo node wrote {written:?}");

    let c = &mut env.client;
    let node_id = NodeExecutionIdentifier {
        node_id: "n0".into(),
        execution_id: Some(id.clone()),
    };
    let node = c
        .get_node_execution(NodeExecutionGetRequest {
            id: Some(node_id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node.input_uri, "", "no file to point at");
    let node_data = c
        .get_node_execution_data(NodeExecutionGetDataRequest {
            id: Some(node_id.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        node_data.full_inputs.unwrap().literals.get("a"),
        Some(&int_lit(7))
    );
    #[allow(deprecated)]
    let inputs = node_data.inputs.expect("the inputs' size");
    assert!(inputs.url.is_empty() && inputs.bytes > 0, "{inputs:?}");
    let tasks = c
        .list_task_executions(TaskExecutionListRequest {
            node_execution_id: Some(node_id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let attempt = &tasks.task_executions[0];
    assert_eq!(attempt.input_uri, "");
    let task_data = c
        .get_task_execution_data(TaskExecutionGetDataRequest {
            id: attempt.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        task_data.full_inputs.unwrap().literals.get("a"),
        Some(&int_lit(7))
    );
}
