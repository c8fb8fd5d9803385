//! Memory of building a big `@dynamic` workflow (issue 21 item 3): a 100,000-node fan-out
//! peaked over 2 GiB for a few seconds while the engine decoded, compiled, recorded and
//! started the workflow, because copies of it (the decoded spec, the template, the compiled
//! closure, the event's copy of it, encoded buffers) were alive at once.
//!
//! Through the engine's real path — a task attempt succeeds with a `futures.pb`, the engine
//! reads, compiles and stores it, reports DYNAMIC_RUNNING with the compiled workflow and
//! starts the children — the allocator of this test binary counts live bytes and their
//! peak. The peak above the baseline is compared with the size of the encoded futures file.
//! The leaves never finish, so the measure ends with every child started.

mod engine_support;
use engine_support::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use flyte_engine::{Engine, EventBatch, EventSink, MemorySink, SinkError};
use flyteidl::core::*;
use prost::Message;
use tokio::sync::mpsc;

use flyte_test_alloc::{LIVE, PEAK};

#[global_allocator]
static ALLOCATOR: flyte_test_alloc::Counting = flyte_test_alloc::Counting;

/// In-engine tasks (as the bench's `core-sleep` leaves): the `dyn` task writes the futures
/// file it was given; every other attempt stays running (counted).
struct Backend {
    blob: BlobStore,
    futures: Bytes,
    started: AtomicUsize,
}

#[async_trait]
impl TaskBackend for Backend {
    fn name(&self) -> &'static str {
        "test"
    }
    fn handles(&self, _: &TaskTemplate) -> bool {
        true
    }
    fn writes_decks(&self) -> bool {
        false
    }
    fn reads_attempt_files(&self) -> bool {
        false
    }
    fn starts_before_commit(&self) -> bool {
        true
    }
    async fn start(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<(), BackendError> {
        if attempt.template.r#type != "dyn" {
            self.started.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        let prefix = self
            .blob
            .path_from_native_url(&attempt.paths.output_prefix)
            .expect("output prefix in the store");
        self.blob
            .put(&format!("{prefix}/futures.pb"), self.futures.clone())
            .await
            .expect("write futures.pb");
        let _ = updates.send((
            attempt.key,
            AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs: vec![] }),
        ));
        Ok(())
    }
    async fn abort(&self, _: &AttemptKey) {}
}

/// As the admin does with a batch: the DYNAMIC_RUNNING event's compiled workflow is encoded
/// (its stored form) and nothing is kept.
struct EncodingSink {
    compiled_len: AtomicUsize,
}

#[async_trait]
impl EventSink for EncodingSink {
    async fn record(&self, batch: &EventBatch) -> Result<(), SinkError> {
        for ev in &batch.node_events {
            if let Some(dw) = dynamic_workflow(ev) {
                let bytes = dw.encode_to_vec();
                self.compiled_len.fetch_max(bytes.len(), Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

fn dynamic_workflow(ev: &flyteidl::event::NodeExecutionEvent) -> Option<&CompiledWorkflowClosure> {
    use flyteidl::event::node_execution_event::TargetMetadata;
    match &ev.target_metadata {
        Some(TargetMetadata::TaskNodeMetadata(t)) => {
            t.dynamic_workflow.as_ref()?.compiled_workflow.as_ref()
        }
        _ => None,
    }
}

fn task(name: &str, ty: &str, inputs: &[(&str, LiteralType)]) -> TaskTemplate {
    TaskTemplate {
        id: Some(ident(ResourceType::Task, name)),
        r#type: ty.into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(iface(inputs, &[])),
        ..Default::default()
    }
}

fn task_node(id: &str, task: &str, inputs: Vec<Binding>) -> Node {
    Node {
        id: id.into(),
        metadata: Some(NodeMetadata {
            name: task.into(),
            ..Default::default()
        }),
        inputs,
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(ident(
                ResourceType::Task,
                task,
            ))),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn int_binding(var: &str, i: i64) -> Binding {
    Binding {
        var: var.into(),
        binding: Some(BindingData {
            value: Some(binding_data::Value::Scalar(Scalar {
                value: Some(scalar::Value::Primitive(Primitive {
                    value: Some(primitive::Value::Integer(i)),
                })),
            })),
            ..Default::default()
        }),
    }
}

/// The bench's `fan-out` shape: `n` independent leaves, each with its input as a value.
fn fan_out(n: usize, leaf: &TaskTemplate) -> DynamicJobSpec {
    let name = &leaf.id.as_ref().expect("leaf id").name;
    DynamicJobSpec {
        nodes: (0..n)
            .map(|i| task_node(&format!("dn{i}"), name, vec![int_binding("x", i as i64)]))
            .collect(),
        tasks: vec![leaf.clone()],
        ..Default::default()
    }
}

fn size_from_env(default: usize) -> usize {
    std::env::var("FLYTE_ENGINE_TEST_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const MB: f64 = 1024.0 * 1024.0;

/// Building and starting a 20,000-node `@dynamic` fan-out peaks at a bounded multiple of its
/// futures file: no more copies of the workflow than the engine needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_dynamic_workflow_is_built_without_extra_copies() {
    let n = size_from_env(20_000);
    let leaf = task("leaf", "leaf", &[("x", int_t())]);
    let futures = Bytes::from(fan_out(n, &leaf).encode_to_vec());
    let futures_len = futures.len();

    let dir = tempfile::tempdir().expect("tempdir");
    let blob = BlobStore::from_url("memory:///").expect("memory store");
    let backend = Arc::new(Backend {
        blob: blob.clone(),
        futures,
        started: AtomicUsize::new(0),
    });
    let sink = Arc::new(EncodingSink {
        compiled_len: AtomicUsize::new(0),
    });
    let journal = MemorySink::new();
    let mut deps = deps(&blob, vec![backend.clone()], &journal);
    deps.sink = sink.clone();
    let engine = Engine::new(deps);

    let dyn_task = task("dyn", "dyn", &[("x", int_t())]);
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "dynwf")),
        interface: Some(iface(&[("x", int_t())], &[])),
        nodes: vec![task_node(
            "n0",
            "dyn",
            vec![Binding {
                var: "x".into(),
                binding: Some(BindingData {
                    value: Some(binding_data::Value::Promise(OutputReference {
                        node_id: "start-node".into(),
                        var: "x".into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
            }],
        )],
        metadata: Some(WorkflowMetadata::default()),
        ..Default::default()
    };
    let resolved = Resolved {
        tasks: [(IdKey::from(dyn_task.id.as_ref().expect("id")), dyn_task)]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let compiled = compile_workflow_template(&wf, &[], &resolved).expect("compiles");
    let req = request("dynmem", compiled, &[("x", int_lit(0))]);

    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    engine.start_execution(req).await.expect("started");
    // Waits for the children and the recorded event (no time bound: the harness has one).
    while backend.started.load(Ordering::SeqCst) < n
        || sink.compiled_len.load(Ordering::SeqCst) == 0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let peak = PEAK.load(Ordering::SeqCst) - baseline;
    let batch_written = LIVE.load(Ordering::SeqCst).saturating_sub(baseline);
    // What stays once the batch starting the children is gone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = LIVE.load(Ordering::SeqCst).saturating_sub(baseline);
    let compiled_len = sink.compiled_len.load(Ordering::SeqCst);

    let ratio = peak as f64 / futures_len as f64;
    println!(
        "{n} nodes: futures.pb {:.1} MB, compiled {:.1} MB; peak above baseline {:.1} MB \
         ({ratio:.1}x futures); live when the batch was written {:.1} MB, after {:.1} MB \
         ({:.0} B/node)",
        futures_len as f64 / MB,
        compiled_len as f64 / MB,
        peak as f64 / MB,
        batch_written as f64 / MB,
        live as f64 / MB,
        live as f64 / n as f64,
    );
    // 479x before NodeExecutionEvent lost its inline compiled workflow (boxed), 415x after,
    // 174x once the compiler shared one interface per task instead of two copies per node.
    assert!(
        ratio < 250.0,
        "building and starting the workflow peaked at {:.1} MB, {ratio:.1}x its futures file",
        peak as f64 / MB
    );
    drop(dir);
}
