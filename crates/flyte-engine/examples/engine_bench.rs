//! Engine-only per-node cost: a chain and a fan-out of in-engine `echo` nodes, with the
//! in-memory blob store and sink, so what is timed is the engine's own work per node (the
//! actor's dispatch, bindings, events, journal), not a store or a task process.
//!
//! `cargo run --release -p flyte-engine --example engine_bench -- [CHAIN] [FAN_OUT] [REPEAT]
//! [--sleep] [--dir PATH]` (defaults 2000 5000 3). Prints µs per node for each run.
//! `--sleep`: 0 s `core-sleep` leaves (the shape of bench/'s fan-outs) instead of `echo`
//! (chained by order, not data); `--dir PATH`: a `file://` blob store under PATH instead of
//! memory, and the files and bytes each run left there; `--sink-us N`: each batch's write
//! takes N µs more (a store's transaction: the admin's SQLite commit is a few hundred), and
//! the batches each run wrote are printed.

#[path = "../tests/engine_support/mod.rs"]
mod engine_support;
use engine_support::*;

use std::sync::Arc;
use std::time::Instant;

use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::{Engine, EventBatch, EventSink, MemorySink, SinkError, WorkflowPhase};
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

fn sleep_task() -> TaskTemplate {
    TaskTemplate {
        id: Some(ident(ResourceType::Task, "sleep")),
        r#type: "core-sleep".into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(iface(&[("d", duration_t())], &[])),
        ..Default::default()
    }
}

fn duration_t() -> LiteralType {
    LiteralType {
        r#type: Some(literal_type::Type::Simple(SimpleType::Duration as i32)),
        ..Default::default()
    }
}

fn zero_duration() -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Duration(Default::default())),
            })),
        }))),
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

/// `len` echo nodes; `chain`: each reads the one before, else each reads the input. With
/// `sleep`, 0 s core-sleep nodes that all read the input (a chain runs them in order).
fn workflow(len: usize, chain: bool, sleep: bool) -> CompiledWorkflowClosure {
    let task = if sleep { sleep_task() } else { echo_task() };
    let nodes = (0..len)
        .map(|i| {
            let (from, var) = if i == 0 || !chain || sleep {
                ("start-node".to_string(), "x")
            } else {
                (format!("n{}", i - 1), "a")
            };
            Node {
                id: format!("n{i}"),
                inputs: vec![Binding {
                    var: if sleep { "d" } else { "a" }.into(),
                    binding: promise(&from, var),
                }],
                upstream_node_ids: if sleep && chain && i > 0 {
                    vec![format!("n{}", i - 1)]
                } else {
                    vec![]
                },
                target: Some(node::Target::TaskNode(TaskNode {
                    reference: Some(task_node::Reference::ReferenceId(task.id.clone().unwrap())),
                    ..Default::default()
                })),
                ..Default::default()
            }
        })
        .collect();
    let wf = if sleep {
        WorkflowTemplate {
            id: Some(ident(ResourceType::Workflow, "bench")),
            interface: Some(iface(&[("x", duration_t())], &[])),
            nodes,
            ..Default::default()
        }
    } else {
        WorkflowTemplate {
            id: Some(ident(ResourceType::Workflow, "bench")),
            interface: Some(iface(&[("x", int_t())], &[("o", int_t())])),
            nodes,
            outputs: vec![Binding {
                var: "o".into(),
                binding: promise(&format!("n{}", len - 1), "a"),
            }],
            ..Default::default()
        }
    };
    let mut resolved = Resolved::default();
    resolved
        .tasks
        .insert(IdKey::from(task.id.as_ref().unwrap()), task);
    compile_workflow_template(&wf, &[], &resolved).expect("compiles")
}

/// The in-memory sink behind a fixed write latency, counting the batches.
struct SlowSink {
    inner: Arc<MemorySink>,
    delay: std::time::Duration,
    batches: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl EventSink for SlowSink {
    async fn record(&self, batch: &EventBatch) -> Result<(), SinkError> {
        self.batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !self.delay.is_zero() {
            // Off the runtime, as sqlx's SQLite worker thread is (tokio's timer would round
            // it up to a millisecond).
            let delay = self.delay;
            let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
        }
        self.inner.record(batch).await
    }
}

/// Files and bytes under `dir`.
fn tally(dir: &std::path::Path) -> (u64, u64) {
    let mut found = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            let (f, b) = tally(&path);
            found = (found.0 + f, found.1 + b);
        } else if let Ok(m) = e.metadata() {
            found = (found.0 + 1, found.1 + m.len());
        }
    }
    found
}

async fn time_one(
    name: &str,
    compiled: CompiledWorkflowClosure,
    len: usize,
    input: Literal,
    dir: Option<&std::path::Path>,
    sink_us: u64,
) -> f64 {
    let blob = match dir {
        Some(d) => {
            let d = d.join(name);
            std::fs::create_dir_all(&d).expect("data dir");
            BlobStore::from_url(&format!("file://{}", d.display())).expect("file store")
        }
        None => BlobStore::from_url("memory:///").expect("memory store"),
    };
    let memory = MemorySink::new();
    let sink = Arc::new(SlowSink {
        inner: memory.clone(),
        delay: std::time::Duration::from_micros(sink_us),
        batches: Default::default(),
    });
    let mut d = deps(
        &blob,
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
        &memory,
    );
    d.sink = sink.clone();
    let engine = Engine::new(d);
    let req = request(name, compiled, &[("x", input)]);
    let id = req.id.clone();
    let t = Instant::now();
    engine.start_execution(req).await.expect("starts");
    let phase = engine.wait(&id).await;
    let took = t.elapsed();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    if let Some(d) = dir {
        let (files, bytes) = tally(&d.join(name));
        println!("{name}: {files} files, {bytes} bytes under the data dir");
    }
    let batches = sink.batches.load(std::sync::atomic::Ordering::Relaxed);
    println!("{name}: {batches} batches written");
    took.as_secs_f64() * 1e6 / len as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let sleep = raw.iter().any(|a| a == "--sleep");
    let dir = raw
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| raw.get(i + 1))
        .map(std::path::PathBuf::from);
    let sink_us: u64 = raw
        .iter()
        .position(|a| a == "--sink-us")
        .and_then(|i| raw.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let raw: Vec<String> = raw
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || raw[i - 1] != "--sink-us")
        .map(|(_, a)| a.clone())
        .collect();
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    let input = || if sleep { zero_duration() } else { int_lit(7) };
    let chain = args.first().copied().unwrap_or(2000);
    let fan = args.get(1).copied().unwrap_or(5000);
    let repeat = args.get(2).copied().unwrap_or(3);
    for r in 0..repeat {
        let (c, f) = (format!("chain{r}"), format!("fan{r}"));
        let c = time_one(
            &c,
            workflow(chain, true, sleep),
            chain,
            input(),
            dir.as_deref(),
            sink_us,
        )
        .await;
        let f = time_one(
            &f,
            workflow(fan, false, sleep),
            fan,
            input(),
            dir.as_deref(),
            sink_us,
        )
        .await;
        println!("run {r}: chain-{chain} {c:.1} µs/node, fan-out-{fan} {f:.1} µs/node");
    }
}
