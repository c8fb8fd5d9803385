//! Issue 11: a workflow graph is as deep as its longest chain. A 20,000-node linear chain of
//! in-engine `echo` nodes (twice the length that overflowed the stack) is compiled and run to
//! SUCCEEDED on ordinary tokio worker threads (2 MiB stacks), with the value passed along
//! every node. The 100,000-node chain runs through the whole server in
//! crates/flyte-rs/tests/limits.rs; running it here too would add three minutes to CI.

mod engine_support;
use engine_support::*;

use std::sync::Arc;
use std::time::Duration;

use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::{Engine, ExecKey, MemorySink, NodePhase, WorkflowPhase};
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

fn compiled_chain(len: usize) -> CompiledWorkflowClosure {
    let mut resolved = Resolved::default();
    let task = echo_task();
    resolved
        .tasks
        .insert(IdKey::from(task.id.as_ref().unwrap()), task);
    compile_workflow_template(&chain(len), &[], &resolved).expect("compiles")
}

fn echo_engine(blob: &BlobStore, sink: &Arc<MemorySink>) -> Engine {
    Engine::new(engine_support::deps(
        blob,
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
        sink,
    ))
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
async fn a_20000_node_echo_chain_runs_to_succeeded() {
    let len = 20_000;
    let mut resolved = Resolved::default();
    let task = echo_task();
    resolved
        .tasks
        .insert(IdKey::from(task.id.as_ref().unwrap()), task);
    let compiled = compile_workflow_template(&chain(len), &[], &resolved).expect("compiles");

    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let engine = Engine::new(engine_support::deps(
        &blob,
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
        &sink,
    ));
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

/// Issue 11 item 1: "the engine never resumes an execution into a crash". The process dies
/// twice in the middle of a 10,000-node chain (the length that overflowed the stack while
/// resuming); each new engine on the same journal and blobs resumes it, and it succeeds with
/// the value carried through every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10000_node_chain_resumes_after_crashes_midway_and_succeeds() {
    let len = 10_000;
    // In memory: the new engines share this store as a restarted process shares its disk.
    let blob = BlobStore::from_url("memory:///").unwrap();
    let mut sink = MemorySink::new();
    let mut engine = echo_engine(&blob, &sink);
    let req = request("chain", compiled_chain(len), &[("x", int_lit(7))]);
    let id = req.id.clone();
    let key = ExecKey::of(&id);
    engine.start_execution(req).await.expect("starts");
    let phase_of = |sink: &MemorySink, node: &str| {
        sink.node_record(&key, node)
            .map_or(NodePhase::NotYetStarted, |r| r.node_phase())
    };
    for (crash_after, at) in [("n3000", "first"), ("n7000", "second")] {
        tokio::time::timeout(Duration::from_secs(600), async {
            while phase_of(&sink, crash_after) != NodePhase::Succeeded {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{crash_after} never succeeded before the {at} crash"));
        engine.crash();
        let journal = sink.snapshot();
        let last = format!("n{}", len - 1);
        assert!(
            !phase_of(&journal, &last).is_terminal(),
            "the chain ended before the {at} crash: nothing was resumed mid-way"
        );
        engine = echo_engine(&blob, &journal);
        assert_eq!(
            engine.resume_all().await.expect("resumes"),
            1,
            "{at} restart"
        );
        sink = journal;
    }
    let phase = tokio::time::timeout(Duration::from_secs(600), engine.wait(&id))
        .await
        .expect("the execution finishes")
        .expect("a final phase");
    assert_eq!(phase, WorkflowPhase::Succeeded);
    let events = sink.workflow_events("chain");
    let outputs = reported_outputs(&blob, events.last().unwrap()).await;
    assert_eq!(outputs.literals.get("o"), Some(&int_lit(7)));
}
