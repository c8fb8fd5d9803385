//! Issue 11: a workflow graph is as deep as its longest chain. A 100,000-node linear chain of
//! in-engine `echo` nodes is compiled and run to SUCCEEDED on ordinary tokio worker threads
//! (2 MiB stacks), with the value passed along every node.

mod engine_support;
use engine_support::*;

use std::sync::Arc;
use std::time::Duration;

use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::{Engine, EngineConfig, MemorySink, WorkflowPhase};
use flyteidl::core::*;

fn echo_task() -> TaskTemplate {
    TaskTemplate {
        id: Some(ident(ResourceType::Task, "echo")),
        r#type: "echo".into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(iface(&[("a", int_t())], &[("a", int_t())])),
        ..Default::default()
    }
}

fn promise(node: &str, var: &str) -> Option<BindingData> {
    Some(BindingData {
        value: Some(binding_data::Value::Promise(OutputReference {
            node_id: node.into(),
            var: var.into(),
            ..Default::default()
        })),
        ..Default::default()
    })
}

/// wf(x: int) -> o: int, `len` echo nodes each reading the one before.
fn chain(len: usize) -> WorkflowTemplate {
    let task = echo_task().id.unwrap();
    let nodes = (0..len)
        .map(|i| {
            let from = if i == 0 {
                "start-node".to_string()
            } else {
                format!("n{}", i - 1)
            };
            let var = if i == 0 { "x" } else { "a" };
            Node {
                id: format!("n{i}"),
                upstream_node_ids: if i == 0 { vec![] } else { vec![from.clone()] },
                inputs: vec![Binding {
                    var: "a".into(),
                    binding: promise(&from, var),
                }],
                target: Some(node::Target::TaskNode(TaskNode {
                    reference: Some(task_node::Reference::ReferenceId(task.clone())),
                    ..Default::default()
                })),
                ..Default::default()
            }
        })
        .collect();
    WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "chain")),
        interface: Some(iface(&[("x", int_t())], &[("o", int_t())])),
        nodes,
        outputs: vec![Binding {
            var: "o".into(),
            binding: promise(&format!("n{}", len - 1), "a"),
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100000_node_echo_chain_runs_to_succeeded() {
    let len = 100_000;
    let mut resolved = Resolved::default();
    let task = echo_task();
    resolved
        .tasks
        .insert(IdKey::from(task.id.as_ref().unwrap()), task);
    let compiled = compile_workflow_template(&chain(len), &[], &resolved).expect("compiles");

    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let engine = Engine::new(
        EngineConfig::default(),
        blob.clone(),
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
        sink.clone(),
        sink.clone(),
    );
    let req = request("chain", compiled, &[("x", int_lit(7))]);
    let id = req.id.clone();
    engine.start_execution(req).await.expect("starts");
    // Generous: it bounds a hung test, it asserts nothing about speed.
    let phase = tokio::time::timeout(Duration::from_secs(1800), engine.wait(&id))
        .await
        .expect("the execution finishes")
        .expect("a final phase");
    assert_eq!(phase, WorkflowPhase::Succeeded);
}
