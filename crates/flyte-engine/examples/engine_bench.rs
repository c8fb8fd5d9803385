//! Engine-only per-node cost: a chain and a fan-out of in-engine `echo` nodes, with the
//! in-memory blob store and sink, so what is timed is the engine's own work per node (the
//! actor's dispatch, bindings, events, journal), not a store or a task process.
//!
//! `cargo run --release -p flyte-engine --example engine_bench -- [CHAIN] [FAN_OUT] [REPEAT]`
//! (defaults 2000 5000 3). Prints µs per node for each run.

#[path = "../tests/engine_support/mod.rs"]
mod engine_support;
use engine_support::*;

use std::sync::Arc;
use std::time::Instant;

use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::{Engine, MemorySink, WorkflowPhase};
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

/// `len` echo nodes; `chain`: each reads the one before, else each reads the input.
fn workflow(len: usize, chain: bool) -> CompiledWorkflowClosure {
    let task = echo_task();
    let nodes = (0..len)
        .map(|i| {
            let (from, var) = if i == 0 || !chain {
                ("start-node".to_string(), "x")
            } else {
                (format!("n{}", i - 1), "a")
            };
            Node {
                id: format!("n{i}"),
                inputs: vec![Binding {
                    var: "a".into(),
                    binding: promise(&from, var),
                }],
                target: Some(node::Target::TaskNode(TaskNode {
                    reference: Some(task_node::Reference::ReferenceId(task.id.clone().unwrap())),
                    ..Default::default()
                })),
                ..Default::default()
            }
        })
        .collect();
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "bench")),
        interface: Some(iface(&[("x", int_t())], &[("o", int_t())])),
        nodes,
        outputs: vec![Binding {
            var: "o".into(),
            binding: promise(&format!("n{}", len - 1), "a"),
        }],
        ..Default::default()
    };
    let mut resolved = Resolved::default();
    resolved
        .tasks
        .insert(IdKey::from(task.id.as_ref().unwrap()), task);
    compile_workflow_template(&wf, &[], &resolved).expect("compiles")
}

async fn time_one(name: &str, compiled: CompiledWorkflowClosure, len: usize) -> f64 {
    let blob = BlobStore::from_url("memory:///").expect("memory store");
    let sink = MemorySink::new();
    let engine = Engine::new(deps(
        &blob,
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
        &sink,
    ));
    let req = request(name, compiled, &[("x", int_lit(7))]);
    let id = req.id.clone();
    let t = Instant::now();
    engine.start_execution(req).await.expect("starts");
    let phase = engine.wait(&id).await;
    let took = t.elapsed();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    took.as_secs_f64() * 1e6 / len as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let chain = args.first().copied().unwrap_or(2000);
    let fan = args.get(1).copied().unwrap_or(5000);
    let repeat = args.get(2).copied().unwrap_or(3);
    for r in 0..repeat {
        let c = time_one(&format!("chain{r}"), workflow(chain, true), chain).await;
        let f = time_one(&format!("fan{r}"), workflow(fan, false), fan).await;
        println!("run {r}: chain-{chain} {c:.1} µs/node, fan-out-{fan} {f:.1} µs/node");
    }
}
