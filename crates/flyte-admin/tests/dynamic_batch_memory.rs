//! Memory of starting a big `@dynamic` fan-out through the admin's real event sink and
//! SQLite store (issue 21 item 3). A 100,000-node fan-out peaked at 2.4 GB in the release
//! binary while the engine-only measure (flyte-engine's dynamic_build_memory) had shrunk: the
//! rest was the store side of the batch that records and starts every child (their QUEUED and
//! RUNNING node events, task events and journal records turned into rows at once).
//!
//! CreateExecution runs a workflow whose one task (`dyn`) ends with a `futures.pb` of `n`
//! in-engine leaves; the leaves never finish. The allocator of this test binary counts live
//! bytes and their peak; a wrapper around the admin's sink splits the peak into what the
//! engine gathered before each batch reached the sink and what writing the batch added.

mod admin_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admin_support::*;
use async_trait::async_trait;
use bytes::Bytes;
use flyte_admin::live::{LiveHub, LiveLauncher};
use flyte_admin::service::admin::event_sink::{engine_journal, event_sink};
use flyte_admin::{AdminConfig, AdminState};
use flyte_blob::BlobStore;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use flyte_engine::external::ExternalServices;
use flyte_engine::{Engine, EngineConfig, EngineDeps, EventBatch, EventSink, SinkError};
use flyteidl::core::*;
use prost::Message;
use tokio::sync::mpsc;

use flyte_test_alloc::{LIVE, PEAK};

#[global_allocator]
static ALLOCATOR: flyte_test_alloc::Counting = flyte_test_alloc::Counting;

/// `dyn` attempts write the futures file they were given and succeed; every other attempt
/// (the leaves) stays running, counted. In-engine: started before their batch commits.
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

/// One batch as the sink saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    node_events: usize,
    /// Peak of live bytes since the previous batch reached the sink (the engine gathering).
    peak_before: usize,
    /// Live bytes when the batch reached the sink.
    live_at: usize,
    /// Peak while the admin's sink applied and wrote it.
    peak_during: usize,
}

/// The admin's real sink, with the allocator's peak split at each batch.
struct Measuring {
    inner: Arc<dyn EventSink>,
    baseline: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    node_events: AtomicUsize,
}

#[async_trait]
impl EventSink for Measuring {
    async fn record(&self, batch: &EventBatch) -> Result<(), SinkError> {
        let base = self.baseline.load(Ordering::SeqCst);
        let live_at = LIVE.load(Ordering::SeqCst);
        let peak_before = PEAK.swap(live_at, Ordering::SeqCst);
        let result = self.inner.record(batch).await;
        let peak_during = PEAK.load(Ordering::SeqCst);
        self.seen.lock().expect("lock").push(Seen {
            node_events: batch.node_events.len(),
            peak_before: peak_before.saturating_sub(base),
            live_at: live_at.saturating_sub(base),
            peak_during: peak_during.saturating_sub(base),
        });
        if result.is_ok() {
            self.node_events
                .fetch_add(batch.node_events.len(), Ordering::SeqCst);
        }
        result
    }
}

fn leaf_task() -> TaskTemplate {
    TaskTemplate {
        id: Some(id(ResourceType::Task, "leaf", "v1")),
        r#type: "leaf".into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(iface(&[("x", int())], &[])),
        ..Default::default()
    }
}

/// The bench's `fan-out` shape: `n` independent leaves, each with its input as a value; the
/// parent's output `b` is a constant.
fn fan_out(n: usize) -> DynamicJobSpec {
    let leaf = leaf_task();
    let leaf_id = leaf.id.clone().expect("id");
    DynamicJobSpec {
        nodes: (0..n)
            .map(|i| Node {
                id: format!("dn{i}"),
                metadata: Some(NodeMetadata {
                    name: "leaf".into(),
                    ..Default::default()
                }),
                inputs: vec![bind(
                    "x",
                    BindingData {
                        value: Some(binding_data::Value::Scalar(Scalar {
                            value: Some(scalar::Value::Primitive(Primitive {
                                value: Some(primitive::Value::Integer(i as i64)),
                            })),
                        })),
                        ..Default::default()
                    },
                )],
                target: Some(node::Target::TaskNode(TaskNode {
                    reference: Some(task_node::Reference::ReferenceId(leaf_id.clone())),
                    ..Default::default()
                })),
                ..Default::default()
            })
            .collect(),
        tasks: vec![leaf],
        outputs: vec![bind(
            "b",
            BindingData {
                value: Some(binding_data::Value::Scalar(Scalar {
                    value: Some(scalar::Value::Primitive(Primitive {
                        value: Some(primitive::Value::Integer(0)),
                    })),
                })),
                ..Default::default()
            },
        )],
        ..Default::default()
    }
}

fn size_from_env(default: usize) -> usize {
    std::env::var("FLYTE_ADMIN_TEST_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const MB: f64 = 1024.0 * 1024.0;

fn mb(b: usize) -> f64 {
    b as f64 / MB
}

/// Starting a 20,000-node `@dynamic` fan-out through the admin's sink and SQLite peaks at a
/// bounded number of bytes per child: the children are recorded in bounded batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_dynamic_fan_out_is_recorded_in_bounded_batches() {
    let n = size_from_env(20_000);
    let futures = Bytes::from(fan_out(n).encode_to_vec());
    let futures_len = futures.len();

    let dir = tempfile::tempdir().expect("tempdir");
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .expect("store");
    let blob =
        BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).expect("blob store");
    let mut state = AdminState {
        store,
        blob: blob.clone(),
        config: Arc::new(AdminConfig::default()),
        launcher: None,
    };
    let backend = Arc::new(Backend {
        blob: blob.clone(),
        futures,
        started: AtomicUsize::new(0),
    });
    let measuring = Arc::new(Measuring {
        inner: event_sink(&state, None),
        baseline: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
        node_events: AtomicUsize::new(0),
    });
    let hub = LiveHub::new();
    let engine = Engine::new_cyclic(|handle| {
        state.launcher = Some(Arc::new(LiveLauncher::new(handle, hub.clone())));
        EngineDeps {
            config: EngineConfig::default(),
            blob: state.blob.clone(),
            backends: vec![backend.clone()],
            sink: measuring.clone(),
            journal: engine_journal(&state),
            resolver: flyte_admin::service::admin::StoreEntityResolver::new(state.clone()),
            external: ExternalServices::from(flyte_admin::service::admin::EngineServices::new(
                state.clone(),
            )),
            cache: None,
        }
    });
    let (_, mut client) = serve(state.clone()).await;
    let mut dyn_task = echo_task_request("t", "v1");
    dyn_task
        .spec
        .as_mut()
        .and_then(|s| s.template.as_mut())
        .expect("template")
        .r#type = "dyn".into();
    let (_, _, lp) = register_with(&mut client, dyn_task, "wf", "v1").await;

    let baseline = LIVE.load(Ordering::SeqCst);
    measuring.baseline.store(baseline, Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    client
        .create_execution(execution_request(&lp, "big", 0))
        .await
        .expect("created");
    // Every child started and its QUEUED/RUNNING recorded (2 per child, with the dynamic
    // node's own and the workflow's); no time bound: the harness has one.
    while backend.started.load(Ordering::SeqCst) < n
        || measuring.node_events.load(Ordering::SeqCst) < 2 * n
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let end_peak = PEAK.load(Ordering::SeqCst).saturating_sub(baseline);
    let live = LIVE.load(Ordering::SeqCst).saturating_sub(baseline);
    let seen = measuring.seen.lock().expect("lock").clone();
    let peak = seen
        .iter()
        .flat_map(|s| [s.peak_before, s.peak_during])
        .chain([end_peak])
        .max()
        .unwrap_or(0);

    println!(
        "{n} nodes: futures.pb {:.1} MB; peak above baseline {:.1} MB ({:.0} B/child); \
         live after {:.1} MB; {} batches",
        mb(futures_len),
        mb(peak),
        peak as f64 / n as f64,
        mb(live),
        seen.len()
    );
    for (i, s) in seen.iter().enumerate() {
        if s.node_events > 100 || s.peak_before > peak / 4 || s.peak_during > peak / 4 {
            println!(
                "  batch {i}: {} node events; engine gathering peak {:.1} MB, live at the sink \
                 {:.1} MB, peak while written {:.1} MB",
                s.node_events,
                mb(s.peak_before),
                mb(s.live_at),
                mb(s.peak_during)
            );
        }
    }
    // One batch held all 40,002 node events before the engine bounded them (4,096 now).
    let largest = seen.iter().map(|s| s.node_events).max().unwrap_or(0);
    assert!(
        largest <= 5_000,
        "one batch recorded {largest} node events: the children were not recorded in bounded \
         batches"
    );
    // 24,367 B per child before (one batch: 464.8 MB), 22,305 with bounded batches (the
    // compile then peaked), 19,457 with the compiler's interfaces freed and no template copy,
    // 9,581 with one interface per task shared by its nodes (the compile is no longer the peak).
    let per_child = peak / n;
    assert!(
        per_child < 12_000,
        "starting {n} children peaked at {:.1} MB above the baseline ({per_child} B per child)",
        mb(peak)
    );
    drop(engine);
}
