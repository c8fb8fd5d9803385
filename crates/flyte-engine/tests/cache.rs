//! Task output caching in the engine, over `StoreTaskCache` on SQLite: a hit does not run the
//! task (the backend counts runs), a changed input misses, failures are not cached,
//! `overwrite_cache` reruns, `cache_serialize` runs the body once for concurrent executions,
//! and the node events carry the cache status and catalog key.

mod engine_support;
use engine_support::*;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use flyte_blob::BlobStore;
use flyte_cache::StoreTaskCache;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use flyte_engine::{Engine, EngineDeps, ExecutionRequest, MemorySink, WorkflowPhase};
use flyteidl::core::*;
use flyteidl::event::node_execution_event::TargetMetadata;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

/// Outputs `o0 = x + 1` after `sleep`; fails while `fail` is set. Counts runs, and the most
/// bodies running at once (an aborted body stops, as a killed process does).
struct Counting {
    blob: BlobStore,
    runs: AtomicUsize,
    sleep: Duration,
    fail: Mutex<bool>,
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
    bodies: Arc<Mutex<HashMap<AttemptKey, oneshot::Sender<()>>>>,
}

impl Counting {
    fn new(blob: BlobStore, sleep: Duration) -> Self {
        Self {
            blob,
            runs: AtomicUsize::new(0),
            sleep,
            fail: Mutex::new(false),
            active: Default::default(),
            max_active: Default::default(),
            bodies: Default::default(),
        }
    }
}

fn as_int(l: &Literal) -> i64 {
    match &l.value {
        Some(literal::Value::Scalar(s)) => match &s.value {
            Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })) => *i,
            _ => 0,
        },
        _ => 0,
    }
}

#[async_trait]
impl TaskBackend for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn handles(&self, _: &TaskTemplate) -> bool {
        true
    }
    async fn start(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<(), BackendError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        let (killed_tx, killed) = oneshot::channel();
        self.bodies
            .lock()
            .unwrap()
            .insert(attempt.key.clone(), killed_tx);
        let (active, bodies) = (self.active.clone(), self.bodies.clone());
        let fail = *self.fail.lock().unwrap();
        let blob = self.blob.clone();
        let sleep = self.sleep;
        tokio::spawn(async move {
            let key = attempt.key.clone();
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                // Counted out by `abort`, as a killed process is gone when it is killed.
                _ = killed => return,
            }
            let finished = if fail {
                let error = ExecutionError {
                    code: "Boom".into(),
                    kind: execution_error::ErrorKind::User as i32,
                    ..Default::default()
                };
                AttemptOutcome::Failed {
                    error,
                    retryable: false,
                    logs: vec![],
                }
            } else {
                let in_key = blob.path_from_native_url(&attempt.paths.inputs).unwrap();
                let inputs = LiteralMap::decode(blob.get(&in_key).await.unwrap()).unwrap();
                let x = inputs.literals.get("x").map(as_int).unwrap_or_default();
                let outputs = LiteralMap {
                    literals: BTreeMap::from([("o0".to_string(), int_lit(x + 1))]),
                };
                let out_key = blob
                    .path_from_native_url(&format!("{}/outputs.pb", attempt.paths.output_prefix))
                    .unwrap();
                blob.put(&out_key, Bytes::from(outputs.encode_to_vec()))
                    .await
                    .unwrap();
                AttemptOutcome::Succeeded { logs: vec![] }
            };
            // The body ends before the engine hears of it.
            if bodies.lock().unwrap().remove(&key).is_some() {
                active.fetch_sub(1, Ordering::SeqCst);
            }
            let _ = updates.send((key, AttemptUpdate::Finished(finished)));
        });
        Ok(())
    }
    async fn abort(&self, key: &AttemptKey) {
        if let Some(kill) = self.bodies.lock().unwrap().remove(key) {
            self.active.fetch_sub(1, Ordering::SeqCst);
            let _ = kill.send(());
        }
    }
}

fn vars(v: &[&str]) -> VariableMap {
    VariableMap {
        variables: v
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    Variable {
                        r#type: Some(int_t()),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    }
}

fn cached_task(cache_version: &str, serialize: bool) -> TaskTemplate {
    TaskTemplate {
        id: Some(ident(ResourceType::Task, "t")),
        r#type: "python-task".into(),
        metadata: Some(TaskMetadata {
            discoverable: true,
            discovery_version: cache_version.into(),
            cache_serializable: serialize,
            ..Default::default()
        }),
        interface: Some(TypedInterface {
            inputs: Some(vars(&["x"])),
            outputs: Some(vars(&["o0"])),
        }),
        ..Default::default()
    }
}

fn closure(task: TaskTemplate) -> CompiledWorkflowClosure {
    let promise = |node: &str, var: &str| BindingData {
        value: Some(binding_data::Value::Promise(OutputReference {
            node_id: node.into(),
            var: var.into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "wf")),
        interface: Some(TypedInterface {
            inputs: Some(vars(&["x"])),
            outputs: Some(vars(&["o"])),
        }),
        nodes: vec![Node {
            id: "n0".into(),
            inputs: vec![Binding {
                var: "x".into(),
                binding: Some(promise("start-node", "x")),
            }],
            target: Some(node::Target::TaskNode(TaskNode {
                reference: Some(task_node::Reference::ReferenceId(ident(
                    ResourceType::Task,
                    "t",
                ))),
                ..Default::default()
            })),
            ..Default::default()
        }],
        outputs: vec![Binding {
            var: "o".into(),
            binding: Some(promise("n0", "o0")),
        }],
        metadata: Some(WorkflowMetadata::default()),
        ..Default::default()
    };
    let resolved = Resolved {
        tasks: [(IdKey::from(task.id.as_ref().unwrap()), task.clone())]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    compile_workflow_template(&wf, &[], &resolved).unwrap()
}

struct Env {
    _dir: tempfile::TempDir,
    sink: Arc<MemorySink>,
    backend: Arc<Counting>,
    engine: Engine,
}

async fn env(sleep: Duration) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().join("blob").to_str().unwrap()).unwrap();
    let url = format!("sqlite://{}", dir.path().join("flyte.db").display());
    let store = flyte_store::open(&url).await.unwrap();
    let sink = MemorySink::new();
    let backend = Arc::new(Counting::new(blob.clone(), sleep));
    let engine = Engine::new(EngineDeps {
        cache: Some(Arc::new(StoreTaskCache::new(store))),
        ..engine_support::deps(&blob, vec![backend.clone()], &sink)
    });
    Env {
        _dir: dir,
        sink,
        backend,
        engine,
    }
}

fn request(name: &str, task: TaskTemplate, x: i64, overwrite: bool) -> ExecutionRequest {
    ExecutionRequest {
        id: WorkflowExecutionIdentifier {
            project: "p".into(),
            domain: "d".into(),
            name: name.into(),
            ..Default::default()
        },
        compiled: closure(task),
        inputs: LiteralMap {
            literals: BTreeMap::from([("x".to_string(), int_lit(x))]),
        },
        overwrite_cache: overwrite,
        ..Default::default()
    }
}

async fn run(env: &Env, req: ExecutionRequest) -> WorkflowPhase {
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), env.engine.wait(&id))
        .await
        .expect("execution did not finish")
        .expect("no final phase")
}

/// The cache status and catalog key of n0's SUCCEEDED event.
fn n0_cache(env: &Env, name: &str) -> (CatalogCacheStatus, Option<CatalogMetadata>) {
    let ev = env
        .sink
        .node_events(name)
        .into_iter()
        .filter(|e| e.id.as_ref().unwrap().node_id == "n0")
        .find(|e| e.phase == node_execution::Phase::Succeeded as i32)
        .expect("n0 succeeded");
    match ev.target_metadata {
        Some(TargetMetadata::TaskNodeMetadata(m)) => (m.cache_status(), m.catalog_key),
        other => panic!("no task node metadata: {other:?}"),
    }
}

fn runs(env: &Env) -> usize {
    env.backend.runs.load(Ordering::SeqCst)
}

#[tokio::test]
async fn hit_skips_the_run_and_reports_the_catalog_key() {
    let env = env(Duration::ZERO).await;
    let t = cached_task("1.0", false);
    assert_eq!(
        run(&env, request("e1", t.clone(), 1, false)).await,
        WorkflowPhase::Succeeded
    );
    assert_eq!(runs(&env), 1);
    let (status, key) = n0_cache(&env, "e1");
    assert_eq!(status, CatalogCacheStatus::CachePopulated);
    let key = key.expect("catalog key");
    assert!(key.artifact_tag.unwrap().name.starts_with("flyte_cached-"));
    assert_eq!(key.dataset_id.unwrap().name, "flyte_task-t");

    assert_eq!(
        run(&env, request("e2", t.clone(), 1, false)).await,
        WorkflowPhase::Succeeded
    );
    assert_eq!(runs(&env), 1, "a hit does not run the task");
    let (status, key) = n0_cache(&env, "e2");
    assert_eq!(status, CatalogCacheStatus::CacheHit);
    let source = key.unwrap().source_execution.expect("source execution");
    let flyteidl::core::catalog_metadata::SourceExecution::SourceTaskExecution(src) = source;
    assert_eq!(
        src.node_execution_id.unwrap().execution_id.unwrap().name,
        "e1"
    );
    // The workflow output came from the cache.
    let wf = env.sink.workflow_events("e2");
    assert!(wf.last().unwrap().output_result.is_some());

    // A changed input misses; a changed cache version misses.
    run(&env, request("e3", t.clone(), 2, false)).await;
    assert_eq!(runs(&env), 2);
    run(&env, request("e4", cached_task("2.0", false), 1, false)).await;
    assert_eq!(runs(&env), 3);
    // overwrite_cache reruns and replaces.
    run(&env, request("e5", t.clone(), 1, true)).await;
    assert_eq!(runs(&env), 4);
    assert_eq!(n0_cache(&env, "e5").0, CatalogCacheStatus::CachePopulated);
    run(&env, request("e6", t, 1, false)).await;
    assert_eq!(runs(&env), 4);
    let (_, key) = n0_cache(&env, "e6");
    let Some(flyteidl::core::catalog_metadata::SourceExecution::SourceTaskExecution(src)) =
        key.unwrap().source_execution
    else {
        panic!("no source")
    };
    assert_eq!(
        src.node_execution_id.unwrap().execution_id.unwrap().name,
        "e5",
        "the overwritten entry is served"
    );
}

#[tokio::test]
async fn failures_are_not_cached_and_uncached_tasks_are_disabled() {
    let env = env(Duration::ZERO).await;
    *env.backend.fail.lock().unwrap() = true;
    let t = cached_task("1.0", false);
    assert_eq!(
        run(&env, request("f1", t.clone(), 1, false)).await,
        WorkflowPhase::Failed
    );
    *env.backend.fail.lock().unwrap() = false;
    assert_eq!(
        run(&env, request("f2", t, 1, false)).await,
        WorkflowPhase::Succeeded
    );
    assert_eq!(runs(&env), 2, "a failure is never a hit");
    assert_eq!(n0_cache(&env, "f2").0, CatalogCacheStatus::CachePopulated);

    let mut plain = cached_task("1.0", false);
    plain.metadata.as_mut().unwrap().discoverable = false;
    run(&env, request("f3", plain.clone(), 5, false)).await;
    run(&env, request("f4", plain, 5, false)).await;
    assert_eq!(runs(&env), 4);
    assert_eq!(
        n0_cache(&env, "f4"),
        (CatalogCacheStatus::CacheDisabled, None)
    );
}

#[tokio::test]
async fn cache_serialize_runs_concurrent_identical_executions_once() {
    let env = env(Duration::from_millis(800)).await;
    let t = cached_task("1.0", true);
    let names = ["s1", "s2", "s3"];
    for n in names {
        env.engine
            .start_execution(request(n, t.clone(), 7, false))
            .await
            .unwrap();
    }
    for n in names {
        let id = request(n, t.clone(), 7, false).id;
        let phase = tokio::time::timeout(Duration::from_secs(30), env.engine.wait(&id))
            .await
            .unwrap();
        assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    }
    assert_eq!(runs(&env), 1, "the body ran once");
    let statuses: Vec<_> = names.iter().map(|n| n0_cache(&env, n).0).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == CatalogCacheStatus::CachePopulated)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == CatalogCacheStatus::CacheHit)
            .count(),
        2,
        "{statuses:?}"
    );
}

/// A cacheable node running when the server dies is run again after the restart; its outputs
/// are then stored (status POPULATED), so the next execution hits.
#[tokio::test]
async fn a_node_running_across_a_restart_still_stores_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().join("blob").to_str().unwrap()).unwrap();
    let url = format!("sqlite://{}", dir.path().join("flyte.db").display());
    let store = flyte_store::open(&url).await.unwrap();
    let backend = Arc::new(Counting::new(blob.clone(), Duration::from_millis(300)));
    let engine_over = |sink: &Arc<MemorySink>| {
        Engine::new(EngineDeps {
            cache: Some(Arc::new(StoreTaskCache::new(store.clone()))),
            ..engine_support::deps(&blob, vec![backend.clone()], sink)
        })
    };
    let sink = MemorySink::new();
    let engine = engine_over(&sink);
    let t = cached_task("1.0", true);
    let req = request("r1", t.clone(), 5, false);
    let id = req.id.clone();
    engine.start_execution(req).await.unwrap();
    for _ in 0..200 {
        if backend.runs.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.crash();

    let journal = sink.snapshot();
    let engine = engine_over(&journal);
    assert_eq!(engine.resume_all().await.unwrap(), 1);
    let phase = tokio::time::timeout(Duration::from_secs(30), engine.wait(&id))
        .await
        .unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    assert_eq!(
        backend.runs.load(Ordering::SeqCst),
        2,
        "run again after the restart"
    );
    let status = journal
        .node_events("r1")
        .into_iter()
        .filter(|e| e.id.as_ref().unwrap().node_id == "n0")
        .find(|e| e.phase == node_execution::Phase::Succeeded as i32)
        .and_then(|e| match e.target_metadata {
            Some(TargetMetadata::TaskNodeMetadata(m)) => Some(m.cache_status()),
            _ => None,
        });
    assert_eq!(status, Some(CatalogCacheStatus::CachePopulated));

    // The next execution with the same input is a hit.
    let req = request("r2", t, 5, false);
    let id = req.id.clone();
    engine.start_execution(req).await.unwrap();
    let phase = tokio::time::timeout(Duration::from_secs(30), engine.wait(&id))
        .await
        .unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    assert_eq!(
        backend.runs.load(Ordering::SeqCst),
        2,
        "a hit does not run the task"
    );
}

/// One data directory (blob store, SQLite cache) that engines are built over again, as a
/// server restarted on the same data dir is.
struct Restartable {
    _dir: tempfile::TempDir,
    blob: BlobStore,
    store: Arc<dyn flyte_store::MetadataStore>,
    backend: Arc<Counting>,
}

impl Restartable {
    async fn new(sleep: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let blob = BlobStore::from_url(dir.path().join("blob").to_str().unwrap()).unwrap();
        let url = format!("sqlite://{}", dir.path().join("flyte.db").display());
        let store = flyte_store::open(&url).await.unwrap();
        let backend = Arc::new(Counting::new(blob.clone(), sleep));
        Self {
            _dir: dir,
            blob,
            store,
            backend,
        }
    }

    fn engine(&self, sink: &Arc<MemorySink>) -> Engine {
        Engine::new(EngineDeps {
            cache: Some(Arc::new(StoreTaskCache::new(self.store.clone()))),
            ..engine_support::deps(&self.blob, vec![self.backend.clone()], sink)
        })
    }
}

/// Polls (up to 10 s) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

async fn wait_phase(engine: &Engine, name: &str) -> Option<WorkflowPhase> {
    let id = WorkflowExecutionIdentifier {
        project: "p".into(),
        domain: "d".into(),
        name: name.into(),
        ..Default::default()
    };
    tokio::time::timeout(Duration::from_secs(60), engine.wait(&id))
        .await
        .expect("execution did not finish")
}

fn n0_running(sink: &MemorySink, name: &str) -> bool {
    sink.node_events(name).iter().any(|e| {
        e.id.as_ref().unwrap().node_id == "n0" && e.phase == node_execution::Phase::Running as i32
    })
}

/// Issue 11.8: A runs a `cache_serialize` task, B (same key) waits on A's reservation, the
/// server dies. After the restart B still waits for A (the bodies never overlap), then takes
/// A's cached outputs without running.
#[tokio::test]
async fn cache_serialize_holds_across_a_restart() {
    let data = Restartable::new(Duration::from_millis(1500)).await;
    let sink = MemorySink::new();
    let engine = data.engine(&sink);
    let t = cached_task("1.0", true);
    engine
        .start_execution(request("a", t.clone(), 7, false))
        .await
        .unwrap();
    until("A's body runs", || {
        data.backend.runs.load(Ordering::SeqCst) == 1
    })
    .await;
    engine
        .start_execution(request("b", t.clone(), 7, false))
        .await
        .unwrap();
    until("B's node runs (waiting on the reservation)", || {
        n0_running(&sink, "b")
    })
    .await;
    engine.crash();

    let journal = sink.snapshot();
    let engine = data.engine(&journal);
    assert_eq!(engine.resume_all().await.unwrap(), 2);
    assert_eq!(
        wait_phase(&engine, "a").await,
        Some(WorkflowPhase::Succeeded)
    );
    assert_eq!(
        wait_phase(&engine, "b").await,
        Some(WorkflowPhase::Succeeded)
    );
    assert_eq!(
        data.backend.max_active.load(Ordering::SeqCst),
        1,
        "two bodies ran at once"
    );
    assert_eq!(
        data.backend.runs.load(Ordering::SeqCst),
        2,
        "A's body before the crash and again after it; B's never"
    );
    let status = |name: &str| {
        journal
            .node_events(name)
            .into_iter()
            .filter(|e| e.id.as_ref().unwrap().node_id == "n0")
            .find(|e| e.phase == node_execution::Phase::Succeeded as i32)
            .and_then(|e| match e.target_metadata {
                Some(TargetMetadata::TaskNodeMetadata(m)) => Some(m.cache_status()),
                _ => None,
            })
    };
    assert_eq!(status("a"), Some(CatalogCacheStatus::CachePopulated));
    assert_eq!(status("b"), Some(CatalogCacheStatus::CacheHit));
}

/// Issue 11.8: a node running when the server dies whose outputs another execution has
/// cached meanwhile takes them after the restart instead of running its body again.
#[tokio::test]
async fn a_resumed_node_looks_the_cache_up_again() {
    use flyte_cache::{CacheKey, TaskCache};
    let data = Restartable::new(Duration::from_secs(5)).await;
    let sink = MemorySink::new();
    let engine = data.engine(&sink);
    let t = cached_task("1.0", false);
    engine
        .start_execution(request("c", t.clone(), 7, false))
        .await
        .unwrap();
    until("C's body runs", || {
        data.backend.runs.load(Ordering::SeqCst) == 1
    })
    .await;
    // Another execution stores the outputs for the same key.
    let inputs = LiteralMap {
        literals: BTreeMap::from([("x".to_string(), int_lit(7))]),
    };
    let key = CacheKey::for_task(&t, &inputs).unwrap().unwrap();
    let cached = LiteralMap {
        literals: BTreeMap::from([("o0".to_string(), int_lit(100))]),
    };
    StoreTaskCache::new(data.store.clone())
        .put(&key, &cached, &TaskExecutionIdentifier::default(), false)
        .await
        .unwrap();
    engine.crash();

    let journal = sink.snapshot();
    let engine = data.engine(&journal);
    assert_eq!(engine.resume_all().await.unwrap(), 1);
    assert_eq!(
        wait_phase(&engine, "c").await,
        Some(WorkflowPhase::Succeeded)
    );
    assert_eq!(
        data.backend.runs.load(Ordering::SeqCst),
        1,
        "the body did not run again"
    );
    let out = journal
        .workflow_events("c")
        .last()
        .and_then(|e| e.output_result.clone());
    let o = match out {
        Some(flyteidl::event::workflow_execution_event::OutputResult::OutputData(o)) => o,
        Some(flyteidl::event::workflow_execution_event::OutputResult::OutputUri(uri)) => {
            let path = data.blob.path_from_native_url(&uri).unwrap();
            LiteralMap::decode(data.blob.get(&path).await.unwrap()).unwrap()
        }
        other => panic!("no outputs: {other:?}"),
    };
    assert_eq!(as_int(&o.literals["o"]), 100, "the cached outputs");
}
