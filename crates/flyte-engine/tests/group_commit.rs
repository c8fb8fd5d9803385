//! The actor goes on while a batch is written: in-engine attempts (echo, core-sleep) start
//! before the batch recording them commits, so a chain of them takes one store round trip for
//! every step run during the previous one rather than one per step (issue 21 item 1: a
//! chain-500 spent ~0.6 ms a step waiting for the admin's SQLite commit). Attempts of other
//! backends still start only once their batch has committed.

mod engine_support;
use engine_support::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use flyte_engine::{
    Engine, EventBatch, EventSink, ExecKey, MemorySink, NodePhase, SinkError, WorkflowPhase,
};
use flyteidl::core::*;

use tokio::sync::{mpsc, watch};

/// Which writes to hold: by call number (from 0) and batch.
type Hold = Box<dyn Fn(usize, &EventBatch) -> bool + Send + Sync>;

/// The memory sink, with the writes chosen by `hold` kept waiting until `release`.
struct HeldSink {
    inner: Arc<MemorySink>,
    calls: AtomicUsize,
    hold: Hold,
    released: watch::Sender<bool>,
    /// Set once a held write is waiting.
    holding: watch::Sender<bool>,
}

impl HeldSink {
    fn new(hold: impl Fn(usize, &EventBatch) -> bool + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            inner: MemorySink::new(),
            calls: AtomicUsize::new(0),
            hold: Box::new(hold),
            released: watch::channel(false).0,
            holding: watch::channel(false).0,
        })
    }

    fn release(&self) {
        self.released.send_replace(true);
    }
}

#[async_trait]
impl EventSink for HeldSink {
    async fn record(&self, batch: &EventBatch) -> Result<(), SinkError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if (self.hold)(call, batch) {
            self.holding.send_replace(true);
            let mut released = self.released.subscribe();
            let _ = released.wait_for(|r| *r).await;
        }
        self.inner.record(batch).await
    }
}

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

fn task_node(id: &str, task: &TaskTemplate, from: (&str, &str)) -> Node {
    Node {
        id: id.into(),
        inputs: vec![Binding {
            var: "a".into(),
            binding: promise(from.0, from.1),
        }],
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(task.id.clone().unwrap())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn compile(nodes: Vec<Node>, last: &str, tasks: Vec<TaskTemplate>) -> CompiledWorkflowClosure {
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "wf")),
        interface: Some(iface(&[("x", int_t())], &[("o", int_t())])),
        nodes,
        outputs: vec![Binding {
            var: "o".into(),
            binding: promise(last, "a"),
        }],
        ..Default::default()
    };
    let mut resolved = Resolved::default();
    for t in tasks {
        resolved
            .tasks
            .insert(IdKey::from(t.id.as_ref().unwrap()), t);
    }
    compile_workflow_template(&wf, &[], &resolved).expect("compiles")
}

/// Echo nodes `n0` … `n{len-1}`, each reading the one before.
fn echo_chain(len: usize) -> CompiledWorkflowClosure {
    let echo = echo_task();
    let nodes = (0..len)
        .map(|i| {
            let from = if i == 0 {
                ("start-node".to_string(), "x")
            } else {
                (format!("n{}", i - 1), "a")
            };
            task_node(&format!("n{i}"), &echo, (&from.0, from.1))
        })
        .collect();
    compile(nodes, &format!("n{}", len - 1), vec![echo])
}

fn engine(blob: &BlobStore, sink: &Arc<HeldSink>, backends: Vec<Arc<dyn TaskBackend>>) -> Engine {
    let mut d = deps(blob, backends, &sink.inner);
    d.sink = sink.clone();
    Engine::new(d)
}

/// Every `outputs.pb` under `dir`.
fn outputs_files(dir: &std::path::Path, found: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            outputs_files(&path, found);
        } else if path.file_name().is_some_and(|n| n == "outputs.pb") {
            found.push(path.display().to_string());
        }
    }
}

/// How many of the nodes `n0` … `n{len-1}` wrote their `outputs.pb`.
fn nodes_with_outputs(dir: &std::path::Path, len: usize) -> usize {
    let mut found = Vec::new();
    outputs_files(dir, &mut found);
    (0..len)
        .filter(|i| found.iter().any(|f| f.contains(&format!("/n{i}/"))))
        .count()
}

#[tokio::test]
async fn a_chain_of_in_engine_leaves_runs_on_while_a_batch_is_being_written() {
    const LEN: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    // The first batch (the execution's start) goes through; every later one waits.
    let sink = HeldSink::new(|call, _| call >= 1);
    let eng = engine(
        &blob,
        &sink,
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
    );
    let req = request("chain", echo_chain(LEN), &[("x", int_lit(7))]);
    let id = req.id.clone();
    eng.start_execution(req).await.expect("starts");

    // Every echo of the chain runs while the second batch is still being written. Before,
    // none past the first did: each step waited for the commit of the one before. (The
    // bound only keeps the test from hanging on a regression.)
    let mut ran = 0;
    for _ in 0..600 {
        ran = nodes_with_outputs(dir.path(), LEN);
        if ran == LEN {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = *sink.holding.borrow();
    sink.release();
    assert!(held, "no batch write was held");
    assert_eq!(
        ran, LEN,
        "the chain's echoes that ran while a batch was being written"
    );
    assert_eq!(eng.wait(&id).await, Some(WorkflowPhase::Succeeded));

    // Fewer writes than steps, and every event and journal record is there, in order.
    let batches = sink.inner.batches();
    assert!(
        batches.len() < LEN,
        "{} batches for a chain of {LEN}",
        batches.len()
    );
    use flyteidl::core::node_execution::Phase as P;
    for i in 0..LEN {
        let node = format!("n{i}");
        let phases: Vec<i32> = sink
            .inner
            .node_events("chain")
            .into_iter()
            .filter(|e| e.id.as_ref().is_some_and(|n| n.node_id == node))
            .map(|e| e.phase)
            .collect();
        assert_eq!(
            phases,
            vec![P::Queued as i32, P::Running as i32, P::Succeeded as i32],
            "{node}'s events"
        );
        let rec = sink
            .inner
            .node_record(&ExecKey::of(&id), &node)
            .expect("journaled");
        assert_eq!(rec.node_phase(), NodePhase::Succeeded, "{node}'s journal");
    }
    // Each node's record appears once per batch (one upsert per row).
    for b in &batches {
        let mut ids: Vec<_> = b.journal.nodes.iter().map(|n| &n.node_id).collect();
        let all = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all, "a node journaled twice in one batch");
    }
    let wf: Vec<i32> = sink
        .inner
        .workflow_events("chain")
        .iter()
        .map(|e| e.phase)
        .collect();
    assert_eq!(
        wf.last().copied(),
        Some(flyteidl::core::workflow_execution::Phase::Succeeded as i32)
    );
}

/// A backend of "count" tasks (a stand-in for a process): counts its starts, succeeds with
/// the echo's outputs.
struct CountBackend {
    blob: BlobStore,
    starts: AtomicUsize,
}

#[async_trait]
impl TaskBackend for CountBackend {
    fn name(&self) -> &'static str {
        "count"
    }
    fn handles(&self, t: &TaskTemplate) -> bool {
        t.r#type == "count"
    }
    async fn start(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<(), BackendError> {
        use prost::Message;
        self.starts.fetch_add(1, Ordering::SeqCst);
        let outputs = LiteralMap {
            literals: [("a".to_string(), int_lit(1))].into(),
        };
        let key = self
            .blob
            .path_from_native_url(&format!("{}/outputs.pb", attempt.paths.output_prefix))
            .unwrap();
        self.blob
            .put(&key, bytes::Bytes::from(outputs.encode_to_vec()))
            .await
            .unwrap();
        let _ = updates.send((
            attempt.key,
            AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs: vec![] }),
        ));
        Ok(())
    }
    async fn abort(&self, _: &AttemptKey) {}
}

#[tokio::test]
async fn a_process_task_starts_only_once_the_batch_that_queues_it_has_committed() {
    let blob = BlobStore::from_url("memory:///").unwrap();
    let echo = echo_task();
    let count = TaskTemplate {
        id: Some(ident(ResourceType::Task, "count")),
        r#type: "count".into(),
        ..echo.clone()
    };
    let closure = compile(
        vec![
            task_node("n0", &echo, ("start-node", "x")),
            task_node("n1", &count, ("n0", "a")),
        ],
        "n1",
        vec![echo, count],
    );
    // Hold the write that queues n1.
    let sink = HeldSink::new(|_, b| {
        b.node_events.iter().any(|e| {
            e.id.as_ref().is_some_and(|n| n.node_id == "n1")
                && e.phase == flyteidl::core::node_execution::Phase::Queued as i32
        })
    });
    let counter = Arc::new(CountBackend {
        blob: blob.clone(),
        starts: AtomicUsize::new(0),
    });
    let eng = engine(
        &blob,
        &sink,
        vec![Arc::new(BuiltinBackend::new(blob.clone())), counter.clone()],
    );
    let req = request("proc", closure, &[("x", int_lit(7))]);
    let id = req.id.clone();
    eng.start_execution(req).await.expect("starts");
    let mut holding = sink.holding.subscribe();
    holding.wait_for(|h| *h).await.unwrap();
    // Give a wrong early start every chance to happen.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        counter.starts.load(Ordering::SeqCst),
        0,
        "started before its batch committed"
    );
    sink.release();
    assert_eq!(eng.wait(&id).await, Some(WorkflowPhase::Succeeded));
    assert_eq!(counter.starts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn in_engine_steps_lost_with_an_unwritten_batch_run_again_after_a_crash() {
    const LEN: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = HeldSink::new(|call, _| call >= 1);
    let first = engine(
        &blob,
        &sink,
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
    );
    let req = request("lost", echo_chain(LEN), &[("x", int_lit(7))]);
    let id = req.id.clone();
    first.start_execution(req).await.expect("starts");
    for _ in 0..600 {
        if nodes_with_outputs(dir.path(), LEN) == LEN {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(nodes_with_outputs(dir.path(), LEN), LEN, "the chain ran");
    // The process dies with every step after the first batch unwritten.
    first.crash();
    let journal = sink.inner.snapshot();
    assert!(
        journal
            .node_record(&ExecKey::of(&id), &format!("n{}", LEN - 1))
            .is_none_or(|r| r.node_phase() != NodePhase::Succeeded),
        "the last step was never committed"
    );
    let second = Engine::new(deps(
        &blob,
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
        &journal,
    ));
    assert_eq!(second.resume_all().await.unwrap(), 1);
    assert_eq!(second.wait(&id).await, Some(WorkflowPhase::Succeeded));
    for i in 0..LEN {
        let rec = journal
            .node_record(&ExecKey::of(&id), &format!("n{i}"))
            .expect("journaled");
        assert_eq!(rec.node_phase(), NodePhase::Succeeded, "n{i}");
    }
}
