//! Memory of a big map task (issue 21 item 3): a map task built an engine node per item up
//! front (~23 KB each in the server), so 100,000 Python items held 2.4 GB from the start and a
//! million could not run. Items are lazy now: a few bytes each, and a node only while in
//! flight.
//!
//! Through the engine's real path — a map task over an in-engine task whose attempts succeed
//! at once, with a window of 100 items in flight — the allocator of this test binary counts
//! live bytes and their peak. The events and journal go to a sink that keeps nothing, so
//! what grows with the item count is what the engine keeps per item (and the input list).

mod engine_support;
use engine_support::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use flyte_engine::{Engine, EventBatch, EventSink, MemorySink, SinkError, WorkflowPhase};
use flyteidl::core::*;
use tokio::sync::mpsc;

use flyte_test_alloc::{LIVE, PEAK};

#[global_allocator]
static ALLOCATOR: flyte_test_alloc::Counting = flyte_test_alloc::Counting;

/// An in-engine task (as the bench's `core-sleep`): every attempt succeeds at once, with no
/// outputs.
struct Instant;

#[async_trait]
impl TaskBackend for Instant {
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
        let _ = updates.send((
            attempt.key,
            AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs: vec![] }),
        ));
        Ok(())
    }
    async fn abort(&self, _: &AttemptKey) {}
}

/// Keeps nothing of what it is given but the number of items the final event listed.
struct Discard {
    items_reported: AtomicUsize,
}

#[async_trait]
impl EventSink for Discard {
    async fn record(&self, batch: &EventBatch) -> Result<(), SinkError> {
        for ev in &batch.task_events {
            if let Some(m) = &ev.metadata {
                self.items_reported
                    .fetch_max(m.external_resources.len(), Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

fn size_from_env(default: usize) -> usize {
    std::env::var("FLYTE_ENGINE_TEST_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A map task over `n` items of the in-engine task `leaf`, each item an int.
fn map_request(name: &str, n: usize) -> flyte_engine::ExecutionRequest {
    let leaf = TaskTemplate {
        id: Some(ident(ResourceType::Task, "leaf")),
        r#type: "leaf".into(),
        metadata: Some(TaskMetadata::default()),
        // A map task's interface: its inputs are the lists it is mapped over.
        interface: Some(iface(&[("x", list_t(int_t()))], &[])),
        ..Default::default()
    };
    let sub = Node {
        id: "a".into(),
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(ident(
                ResourceType::Task,
                "leaf",
            ))),
            ..Default::default()
        })),
        ..Default::default()
    };
    let array = Node {
        id: "a".into(),
        inputs: vec![Binding {
            var: "x".into(),
            binding: Some(BindingData {
                value: Some(binding_data::Value::Promise(OutputReference {
                    node_id: "start-node".into(),
                    var: "xs".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
        }],
        target: Some(node::Target::ArrayNode(Box::new(ArrayNode {
            node: Some(Box::new(sub)),
            ..Default::default()
        }))),
        ..Default::default()
    };
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "mapwf")),
        interface: Some(iface(&[("xs", list_t(int_t()))], &[])),
        nodes: vec![array],
        metadata: Some(WorkflowMetadata::default()),
        ..Default::default()
    };
    let resolved = Resolved {
        tasks: [(IdKey::from(leaf.id.as_ref().expect("id")), leaf)]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let compiled = compile_workflow_template(&wf, &[], &resolved).expect("compiles");
    let xs = Literal {
        value: Some(literal::Value::Collection(LiteralCollection {
            literals: (0..n as i64).map(int_lit).collect(),
        })),
        ..Default::default()
    };
    request(name, compiled, &[("xs", xs)])
}

/// Peak bytes above the baseline while a map of `n` items runs to its end.
async fn peak_of_map(engine: &Engine, sink: &Discard, name: &str, n: usize) -> usize {
    let req = map_request(name, n);
    let id = req.id.clone();
    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    engine.start_execution(req).await.expect("started");
    let phase = engine.wait(&id).await;
    assert_eq!(phase, Some(WorkflowPhase::Succeeded), "{name}");
    assert_eq!(sink.items_reported.load(Ordering::SeqCst), n, "{name}");
    PEAK.load(Ordering::SeqCst) - baseline
}

/// Peak bytes above the baseline per item beyond the first tenth, for maps of `n / 10` and
/// `n` items with `in_flight` items in flight at most (0: all).
async fn per_item_peak(n: usize, in_flight: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let blob = BlobStore::from_url(dir.path().to_str().expect("utf-8")).expect("file store");
    let sink = Arc::new(Discard {
        items_reported: AtomicUsize::new(0),
    });
    let journal = MemorySink::new();
    let mut deps = deps(&blob, vec![Arc::new(Instant)], &journal);
    deps.sink = sink.clone();
    deps.config.map_items_in_flight = in_flight;
    deps.config.max_nodes_per_execution = 0;
    let engine = Engine::new(deps);
    let small = peak_of_map(&engine, &sink, "small", n / 10).await;
    let big = peak_of_map(&engine, &sink, "big", n).await;
    let per_item = big.saturating_sub(small) as f64 / (n - n / 10) as f64;
    println!(
        "{in_flight} in flight: map of {} items peaks at {:.1} MB, of {n} at {:.1} MB: \
         {per_item:.0} B per extra item",
        n / 10,
        small as f64 / 1e6,
        big as f64 / 1e6,
    );
    per_item
}

/// The peak of a map task grows by what each item needs (its share of the input list, a few
/// bytes of state, its entry in the first and last events), not by a node per item: with
/// 100 items in flight, a small fraction of what the same map costs with every item in
/// flight at once (a node each, as every map had before items were lazy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_map_holds_nodes_only_for_the_items_in_flight() {
    let n = size_from_env(10_000);
    let windowed = per_item_peak(n, 100).await;
    let all = per_item_peak(n, 0).await;
    assert!(
        windowed * 2.0 < all,
        "{windowed:.0} B per item with 100 in flight against {all:.0} B with all in flight: \
         nodes are kept for more than the items in flight"
    );
}
