//! Dynamic tasks and array nodes (map tasks), against an in-test backend: "calc" tasks write
//! `outputs.pb` (sum of their integer inputs + an offset), "dyn" tasks write a `futures.pb`
//! built by the test, and map sub-tasks with a container read the array node's whole inputs
//! and pick their element by index, as `pyflyte-map-execute` does.

mod engine_support;
use engine_support::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use flyte_engine::{Engine, ExecKey, ExecutionRequest, MemorySink, NodePhase, WorkflowPhase};
use flyteidl::core::*;
use flyteidl::event::{node_execution_event, task_execution_event};
use prost::Message;
use tokio::sync::mpsc;

// ------------------------------------------------------------------ backend

type DynFn = Arc<dyn Fn(&LiteralMap) -> DynamicJobSpec + Send + Sync>;

#[derive(Clone, Default)]
struct Behavior {
    /// Output `o0` = sum of the integer inputs + `add`.
    add: i64,
    sleep: Duration,
    /// Array indices that fail (not retryable).
    fail_indices: HashSet<u32>,
    /// Every attempt fails (not retryable).
    fail_always: bool,
    /// Array indices that fail (retryable) on their first attempt.
    flaky_indices: HashSet<u32>,
    /// Array indices that sleep this long (instead of `sleep`).
    slow_indices: HashMap<u32, Duration>,
    /// Inputs a map sub-task takes whole when it reads the array's inputs (flytekit's bound vars).
    bound: HashSet<String>,
    /// Dynamic: the futures file to write.
    dynamic: Option<DynFn>,
}

#[derive(Default)]
struct Seen {
    starts: Vec<AttemptKey>,
    attempts: Vec<TaskAttempt>,
}

struct TestBackend {
    blob: BlobStore,
    behaviors: Mutex<HashMap<String, Behavior>>,
    seen: Mutex<Seen>,
    /// Keep whole attempts (small tests only).
    keep_attempts: std::sync::atomic::AtomicBool,
    running: Arc<Mutex<HashMap<String, usize>>>,
    max_running: Arc<Mutex<HashMap<String, usize>>>,
    cancel: Mutex<HashMap<AttemptKey, tokio::sync::oneshot::Sender<()>>>,
    /// Decoded whole inputs of array nodes, by path: every map sub-task reads the same file,
    /// and decoding it n times would measure this backend, not the engine.
    whole_inputs: Arc<Mutex<HashMap<String, Arc<LiteralMap>>>>,
}

impl TestBackend {
    fn new(blob: BlobStore) -> Arc<Self> {
        Arc::new(Self {
            blob,
            behaviors: Default::default(),
            seen: Default::default(),
            keep_attempts: std::sync::atomic::AtomicBool::new(true),
            running: Default::default(),
            max_running: Default::default(),
            cancel: Default::default(),
            whole_inputs: Default::default(),
        })
    }
    fn set(&self, task: &str, b: Behavior) {
        self.behaviors.lock().unwrap().insert(task.into(), b);
    }
    fn starts_of(&self, node: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.starts.iter().filter(|k| k.node_id == node).count()
    }
    fn starts(&self) -> Vec<AttemptKey> {
        self.seen.lock().unwrap().starts.clone()
    }
    fn max_running_of(&self, task: &str) -> usize {
        *self.max_running.lock().unwrap().get(task).unwrap_or(&0)
    }
}

fn list_lit(v: Vec<Literal>) -> Literal {
    Literal {
        value: Some(literal::Value::Collection(LiteralCollection {
            literals: v,
        })),
        ..Default::default()
    }
}

fn as_int(l: &Literal) -> Option<i64> {
    match &l.value {
        Some(literal::Value::Scalar(s)) => match &s.value {
            Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })) => Some(*i),
            _ => None,
        },
        Some(literal::Value::Collection(c)) => c.literals.iter().map(as_int).sum(),
        _ => None,
    }
}

fn is_none(l: &Literal) -> bool {
    matches!(&l.value, Some(literal::Value::Scalar(s)) if matches!(s.value, Some(scalar::Value::NoneType(_))))
}

fn list_of(l: &Literal) -> &[Literal] {
    match &l.value {
        Some(literal::Value::Collection(c)) => &c.literals,
        other => panic!("not a collection: {other:?}"),
    }
}

#[async_trait]
impl TaskBackend for TestBackend {
    fn name(&self) -> &'static str {
        "test"
    }
    fn handles(&self, t: &TaskTemplate) -> bool {
        t.r#type == "calc" || t.r#type == "dyn"
    }
    async fn start(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<(), BackendError> {
        let name = attempt.template.id.as_ref().unwrap().name.clone();
        let b = self
            .behaviors
            .lock()
            .unwrap()
            .get(&name)
            .cloned()
            .unwrap_or_default();
        {
            let mut seen = self.seen.lock().unwrap();
            seen.starts.push(attempt.key.clone());
            if self.keep_attempts.load(Ordering::SeqCst) {
                seen.attempts.push(attempt.clone());
            }
        }
        {
            let mut r = self.running.lock().unwrap();
            let now = r.entry(name.clone()).or_default();
            *now += 1;
            let now = *now;
            let mut m = self.max_running.lock().unwrap();
            let e = m.entry(name.clone()).or_default();
            *e = (*e).max(now);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.cancel.lock().unwrap().insert(attempt.key.clone(), tx);
        let blob = self.blob.clone();
        let running = self.running.clone();
        let whole_inputs = self.whole_inputs.clone();
        tokio::spawn(async move {
            let key = attempt.key.clone();
            let done = |running: &Arc<Mutex<HashMap<String, usize>>>| {
                *running.lock().unwrap().get_mut(&name).unwrap() -= 1;
            };
            let _ = updates.send((
                key.clone(),
                AttemptUpdate::Running {
                    logs: vec![TaskLog {
                        uri: format!("http://logs/{}/{}", key.node_id, key.retry_attempt),
                        name: "log".into(),
                        ..Default::default()
                    }],
                },
            ));
            let sleep = attempt
                .array_index
                .and_then(|i| b.slow_indices.get(&i).copied())
                .unwrap_or(b.sleep);
            if !sleep.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    _ = rx => {
                        done(&running);
                        let _ = updates.send((key, AttemptUpdate::Finished(AttemptOutcome::Aborted)));
                        return;
                    }
                }
            }
            done(&running);
            let index = attempt.array_index;
            let fail = |retryable: bool| {
                AttemptUpdate::Finished(AttemptOutcome::Failed {
                    error: ExecutionError {
                        code: "Boom".into(),
                        message: format!("index {index:?} failed"),
                        kind: execution_error::ErrorKind::User as i32,
                        ..Default::default()
                    },
                    retryable,
                    logs: vec![],
                })
            };
            if b.fail_always {
                let _ = updates.send((key, fail(false)));
                return;
            }
            if let Some(i) = index {
                if b.fail_indices.contains(&i) {
                    let _ = updates.send((key, fail(false)));
                    return;
                }
                if b.flaky_indices.contains(&i) && key.retry_attempt == 0 {
                    let _ = updates.send((key, fail(true)));
                    return;
                }
            }
            let in_key = blob.path_from_native_url(&attempt.paths.inputs).unwrap();
            let read = |k: String| {
                let blob = blob.clone();
                async move {
                    match blob.get(&k).await {
                        Ok(b) => LiteralMap::decode(b).unwrap(),
                        Err(_) => LiteralMap::default(),
                    }
                }
            };
            // pyflyte-map-execute: a container map task reads the whole inputs and takes its
            // element (bound inputs whole).
            let inputs = if let (Some(i), Some(task_template::Target::Container(_))) =
                (index, &attempt.template.target)
            {
                let cached = whole_inputs.lock().unwrap().get(&in_key).cloned();
                let whole = match cached {
                    Some(w) => w,
                    None => {
                        let w = Arc::new(read(in_key.clone()).await);
                        whole_inputs
                            .lock()
                            .unwrap()
                            .insert(in_key.clone(), w.clone());
                        w
                    }
                };
                let mut mine = LiteralMap::default();
                for (k, v) in &whole.literals {
                    let v = match &v.value {
                        Some(literal::Value::Collection(c)) if !b.bound.contains(k) => {
                            c.literals[i as usize].clone()
                        }
                        _ => v.clone(),
                    };
                    mine.literals.insert(k.clone(), v);
                }
                mine
            } else {
                read(in_key).await
            };
            let out_prefix = blob
                .path_from_native_url(&attempt.paths.output_prefix)
                .unwrap();
            if let Some(f) = &b.dynamic {
                let spec = f(&inputs);
                blob.put(
                    &format!("{out_prefix}/futures.pb"),
                    Bytes::from(spec.encode_to_vec()),
                )
                .await
                .unwrap();
            } else {
                let sum: i64 = inputs.literals.values().filter_map(as_int).sum();
                let outputs = LiteralMap {
                    literals: BTreeMap::from([("o0".to_string(), int_lit(sum + b.add))]),
                };
                blob.put(
                    &format!("{out_prefix}/outputs.pb"),
                    Bytes::from(outputs.encode_to_vec()),
                )
                .await
                .unwrap();
            }
            let _ = updates.send((
                key,
                AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs: vec![] }),
            ));
        });
        Ok(())
    }
    async fn abort(&self, key: &AttemptKey) {
        if let Some(tx) = self.cancel.lock().unwrap().remove(key) {
            let _ = tx.send(());
        }
    }
}

// ------------------------------------------------------------------ builders

fn task(
    name: &str,
    ty: &str,
    inputs: &[(&str, LiteralType)],
    outputs: &[(&str, LiteralType)],
) -> TaskTemplate {
    TaskTemplate {
        id: Some(ident(ResourceType::Task, name)),
        r#type: ty.into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(iface(inputs, outputs)),
        ..Default::default()
    }
}
fn calc(name: &str, inputs: &[(&str, LiteralType)]) -> TaskTemplate {
    task(name, "calc", inputs, &[("o0", int_t())])
}
/// A map task as flytekit registers it: list inputs and outputs, a container.
fn map_calc(name: &str, inputs: &[(&str, LiteralType)], retries: u32) -> TaskTemplate {
    let mut t = task(name, "calc", inputs, &[("o0", list_t(int_t()))]);
    t.metadata = Some(TaskMetadata {
        retries: Some(RetryStrategy { retries }),
        ..Default::default()
    });
    t.target = Some(task_template::Target::Container(Container {
        image: "img".into(),
        args: vec![
            "pyflyte-map-execute".into(),
            "--inputs".into(),
            "{{.input}}".into(),
        ],
        ..Default::default()
    }));
    t
}
fn scalar_int(i: i64) -> BindingData {
    BindingData {
        value: Some(binding_data::Value::Scalar(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })),
        })),
        ..Default::default()
    }
}
fn collection(items: Vec<BindingData>) -> BindingData {
    BindingData {
        value: Some(binding_data::Value::Collection(BindingDataCollection {
            bindings: items,
        })),
        ..Default::default()
    }
}
fn bind(var: &str, data: BindingData) -> Binding {
    Binding {
        var: var.into(),
        binding: Some(data),
    }
}
fn task_node(id: &str, task: &str, inputs: Vec<Binding>) -> Node {
    Node {
        id: id.into(),
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
fn array_node(
    id: &str,
    task: &str,
    inputs: Vec<Binding>,
    parallelism: Option<u32>,
    criteria: Option<array_node::SuccessCriteria>,
    bound: &[&str],
) -> Node {
    let sub = task_node(id, task, vec![]);
    Node {
        id: id.into(),
        inputs,
        target: Some(node::Target::ArrayNode(Box::new(ArrayNode {
            node: Some(Box::new(sub)),
            parallelism_option: parallelism.map(array_node::ParallelismOption::Parallelism),
            success_criteria: criteria,
            bound_inputs: bound.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }))),
        ..Default::default()
    }
}
fn workflow(
    name: &str,
    inputs: &[(&str, LiteralType)],
    nodes: Vec<Node>,
    outputs: Vec<Binding>,
    out_vars: &[(&str, LiteralType)],
) -> WorkflowTemplate {
    WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, name)),
        interface: Some(iface(inputs, out_vars)),
        nodes,
        outputs,
        metadata: Some(WorkflowMetadata::default()),
        ..Default::default()
    }
}
fn compile(wf: &WorkflowTemplate, tasks: &[TaskTemplate]) -> CompiledWorkflowClosure {
    let resolved = Resolved {
        tasks: tasks
            .iter()
            .map(|t| (IdKey::from(t.id.as_ref().unwrap()), t.clone()))
            .collect(),
        ..Default::default()
    };
    compile_workflow_template(wf, &[], &resolved).unwrap_or_else(|e| panic!("compile: {e}"))
}

struct Env {
    _dir: tempfile::TempDir,
    blob: BlobStore,
    sink: Arc<MemorySink>,
    backend: Arc<TestBackend>,
    engine: Engine,
}

fn new_engine(blob: &BlobStore, sink: &Arc<MemorySink>, backend: &Arc<TestBackend>) -> Engine {
    Engine::new(engine_support::deps(blob, vec![backend.clone()], sink))
}

fn env() -> Env {
    env_on(None)
}

/// The large tests keep their data in memory: on a local disk, creating tens of thousands of
/// small files costs far more than the engine does (and measures the file system).
fn env_in_memory() -> Env {
    env_on(Some("memory:///"))
}

fn env_on(url: Option<&str>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(url.unwrap_or(dir.path().to_str().unwrap())).unwrap();
    let sink = MemorySink::new();
    let backend = TestBackend::new(blob.clone());
    let engine = new_engine(&blob, &sink, &backend);
    Env {
        _dir: dir,
        blob,
        sink,
        backend,
        engine,
    }
}

async fn run(env: &Env, req: ExecutionRequest) -> WorkflowPhase {
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    tokio::time::timeout(Duration::from_secs(120), env.engine.wait(&id))
        .await
        .expect("execution did not finish")
        .expect("no final phase")
}

async fn wf_output(env: &Env, sink: &MemorySink, name: &str) -> LiteralMap {
    let evs = sink.workflow_events(name);
    let last = evs.last().unwrap();
    let uri = match &last.output_result {
        Some(flyteidl::event::workflow_execution_event::OutputResult::OutputUri(uri)) => uri,
        Some(flyteidl::event::workflow_execution_event::OutputResult::OutputData(m)) => {
            return m.clone();
        }
        _ => panic!("no outputs in {last:?}"),
    };
    let key = env.blob.path_from_native_url(uri).unwrap();
    LiteralMap::decode(env.blob.get(&key).await.unwrap()).unwrap()
}

fn wf_error(sink: &MemorySink, name: &str) -> ExecutionError {
    let evs = sink.workflow_events(name);
    match &evs.last().unwrap().output_result {
        Some(flyteidl::event::workflow_execution_event::OutputResult::Error(e)) => e.clone(),
        other => panic!("no error: {other:?}"),
    }
}

/// A dynamic job spec: `n` calc nodes `dn<i>` (input x = base + i), a `sum` node adding them
/// all, and the workflow output `o0` bound to it.
fn fan_out_spec(n: usize, base: i64, leaf: &TaskTemplate, sum: &TaskTemplate) -> DynamicJobSpec {
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            task_node(
                &format!("dn{i}"),
                &leaf.id.as_ref().unwrap().name,
                vec![bind("x", scalar_int(base + i as i64))],
            )
        })
        .collect();
    nodes.push(task_node(
        "sum",
        &sum.id.as_ref().unwrap().name,
        vec![bind(
            "xs",
            collection((0..n).map(|i| promise(&format!("dn{i}"), "o0")).collect()),
        )],
    ));
    DynamicJobSpec {
        nodes,
        outputs: vec![bind("o0", promise("sum", "o0"))],
        tasks: vec![leaf.clone(), sum.clone()],
        ..Default::default()
    }
}

fn input_int(inputs: &LiteralMap, name: &str) -> i64 {
    as_int(&inputs.literals[name]).unwrap()
}

/// One dynamic task node `n0` in a workflow: `wf(x) -> dyn(x)`.
fn dyn_workflow(dyn_task: &TaskTemplate) -> WorkflowTemplate {
    workflow(
        "dynwf",
        &[("x", int_t())],
        vec![task_node(
            "n0",
            &dyn_task.id.as_ref().unwrap().name,
            vec![bind("x", promise("start-node", "x"))],
        )],
        vec![bind("o", promise("n0", "o0"))],
        &[("o", int_t())],
    )
}

/// The size of the large tests: 10,000, or `FLYTE_ENGINE_TEST_SIZE` (to see how they scale).
fn size_from_env(default: usize) -> usize {
    std::env::var("FLYTE_ENGINE_TEST_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

// ------------------------------------------------------------------ dynamic

/// A dynamic task whose one child node has a 200 ms deadline on a slow task, and a fast one
/// whose child fails outright; both dynamic tasks have one retry.
fn dynamic_with_one_child(env: &Env, dyn_name: &str, child_task: &TaskTemplate, deadline: bool) {
    let child = child_task.clone();
    env.backend.set(
        dyn_name,
        Behavior {
            dynamic: Some(Arc::new(move |_| {
                let mut node = task_node(
                    "dn0",
                    &child.id.as_ref().unwrap().name,
                    vec![bind("x", scalar_int(1))],
                );
                if deadline {
                    node.metadata = Some(NodeMetadata {
                        name: "dn0".into(),
                        timeout: Some(pbjson_types::Duration {
                            seconds: 0,
                            nanos: 200_000_000,
                        }),
                        ..Default::default()
                    });
                }
                DynamicJobSpec {
                    nodes: vec![node],
                    outputs: vec![bind("o0", promise("dn0", "o0"))],
                    tasks: vec![child.clone()],
                    ..Default::default()
                }
            })),
            ..Default::default()
        },
    );
}

#[tokio::test]
async fn a_dynamic_task_is_retried_when_its_workflow_times_out_not_when_it_fails() {
    let env = env();
    let slow = calc("slow", &[("x", int_t())]);
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_secs(600),
            ..Default::default()
        },
    );
    let broken = calc("broken", &[("x", int_t())]);
    dynamic_with_one_child(&env, "dyn_slow", &slow, true);
    dynamic_with_one_child(&env, "dyn_broken", &broken, false);
    let with_retry = |name: &str| {
        let mut t = task(name, "dyn", &[("x", int_t())], &[("o0", int_t())]);
        t.metadata = Some(TaskMetadata {
            retries: Some(RetryStrategy { retries: 1 }),
            ..Default::default()
        });
        t
    };

    // Timed out: the dynamic task runs again (attempt 1 builds n0-1-dn0), then its retries
    // are exhausted.
    let t = with_retry("dyn_slow");
    let req = request(
        "dyntimeout",
        compile(&dyn_workflow(&t), &[t]),
        &[("x", int_lit(1))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Failed);
    assert_eq!(env.backend.starts_of("n0"), 2);
    assert_eq!(env.backend.starts_of("n0-0-dn0"), 1);
    assert_eq!(env.backend.starts_of("n0-1-dn0"), 1);
    let error = wf_error(&env.sink, "dyntimeout");
    assert!(error.code.contains("Timeout"), "{error:?}");
    assert!(error.message.contains("[2/2]"), "{error:?}");
    let attempts: Vec<(u32, i32)> = env
        .sink
        .task_events("dyntimeout")
        .iter()
        .filter(|e| e.parent_node_execution_id.as_ref().unwrap().node_id == "n0")
        .map(|e| (e.retry_attempt, e.phase))
        .collect();
    let succeeded = task_execution::Phase::Succeeded as i32;
    assert!(
        attempts.contains(&(0, succeeded)) && attempts.contains(&(1, succeeded)),
        "both attempts of the dynamic task are reported as tasks that succeeded: {attempts:?}"
    );
    use node_execution::Phase as P;
    let phases: Vec<i32> = env
        .sink
        .node_events("dyntimeout")
        .iter()
        .filter(|e| e.id.as_ref().unwrap().node_id == "n0")
        .map(|e| e.phase)
        .collect();
    assert_eq!(
        phases,
        [
            P::Queued,
            P::Running,
            P::DynamicRunning,
            P::Running,
            P::DynamicRunning,
            P::Failed
        ]
        .map(|p| p as i32),
        "each attempt's workflow is reported"
    );

    // Failed: not retried.
    env.backend.set(
        "broken",
        Behavior {
            fail_always: true,
            ..Default::default()
        },
    );
    let t = with_retry("dyn_broken");
    let req = request(
        "dynfail",
        compile(&dyn_workflow(&t), &[t]),
        &[("x", int_lit(1))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Failed);
    assert_eq!(
        env.backend.starts_of("n0"),
        2 + 1,
        "one more start: the new execution's"
    );
}

#[tokio::test]
async fn dynamic_fan_out_runs_children_and_reports_the_closure() {
    let env = env();
    let leaf = calc("leaf", &[("x", int_t())]);
    let sum = calc("sum", &[("xs", list_t(int_t()))]);
    env.backend.set(
        "leaf",
        Behavior {
            add: 100,
            ..Default::default()
        },
    );
    let (l2, s2) = (leaf.clone(), sum.clone());
    env.backend.set(
        "dyn",
        Behavior {
            dynamic: Some(Arc::new(move |inputs| {
                fan_out_spec(input_int(inputs, "x") as usize, 0, &l2, &s2)
            })),
            ..Default::default()
        },
    );
    let dyn_task = task("dyn", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = dyn_workflow(&dyn_task);
    let req = request("dyn1", compile(&wf, &[dyn_task]), &[("x", int_lit(4))]);
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    // leaves: 100..103, summed.
    let out = wf_output(&env, &env.sink, "dyn1").await;
    assert_eq!(as_int(&out.literals["o"]), Some(100 + 101 + 102 + 103));

    // Children ran with nested ids.
    assert_eq!(env.backend.starts_of("n0"), 1);
    assert_eq!(env.backend.starts_of("n0-0-dn2"), 1);
    assert_eq!(env.backend.starts_of("n0-0-sum"), 1);

    // The parent's events: DYNAMIC_RUNNING with the compiled closure, then SUCCEEDED.
    use node_execution::Phase as P;
    let evs = env.sink.node_events("dyn1");
    let parent: Vec<_> = evs
        .iter()
        .filter(|e| e.id.as_ref().unwrap().node_id == "n0")
        .collect();
    let phases: Vec<i32> = parent.iter().map(|e| e.phase).collect();
    assert_eq!(
        phases,
        vec![
            P::Queued as i32,
            P::Running as i32,
            P::DynamicRunning as i32,
            P::Succeeded as i32
        ]
    );
    let dyn_ev = parent[2];
    assert!(dyn_ev.is_dynamic && dyn_ev.is_parent);
    let Some(node_execution_event::TargetMetadata::TaskNodeMetadata(tm)) = &dyn_ev.target_metadata
    else {
        panic!("no task node metadata")
    };
    let dw = tm.dynamic_workflow.as_ref().expect("dynamic_workflow");
    let closure = dw.compiled_workflow.as_ref().unwrap();
    let prim = closure.primary.as_ref().unwrap().template.as_ref().unwrap();
    assert_eq!(prim.nodes.len(), 4 + 1 + 2, "4 leaves, sum, start, end");
    assert_eq!(dw.id.as_ref().unwrap().name, "dynamic_n0");
    assert!(dw.dynamic_job_spec_uri.ends_with("/n0/data/0/futures.pb"));
    assert!(parent[3].is_dynamic && parent[3].is_parent);

    // Children: parent metadata, retry group, dynamic chain; not top-level.
    let child = evs
        .iter()
        .find(|e| e.id.as_ref().unwrap().node_id == "n0-0-dn1")
        .unwrap();
    assert_eq!(child.parent_node_metadata.as_ref().unwrap().node_id, "n0");
    assert_eq!(child.retry_group, "0");
    assert_eq!(child.spec_node_id, "dn1");
    assert!(child.is_in_dynamic_chain);

    // The compiled closure is stored next to futures.pb and its path is journaled.
    let path = "metadata/p-d-dyn1/n0/data/0/dynamic_compiled.pb";
    let stored = CompiledWorkflowClosure::decode(env.blob.get(path).await.unwrap()).unwrap();
    assert_eq!(&stored, closure);
    let rec = env
        .sink
        .node_record(
            &ExecKey {
                project: "p".into(),
                domain: "d".into(),
                name: "dyn1".into(),
            },
            "n0",
        )
        .unwrap();
    assert_eq!(rec.dynamic_closure_path, path);
    // The parent's outputs are the end node's.
    let own = LiteralMap::decode(
        env.blob
            .get("metadata/p-d-dyn1/n0/data/0/outputs.pb")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(as_int(&own.literals["o0"]), Some(406));
}

#[tokio::test]
async fn nested_dynamic() {
    let env = env();
    let leaf = calc("leaf", &[("x", int_t())]);
    let sum = calc("sum", &[("xs", list_t(int_t()))]);
    let inner = task("inner", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let (l2, s2) = (leaf.clone(), sum.clone());
    // inner(x): x leaves with inputs 0..x, summed: 0+1+..+(x-1).
    env.backend.set(
        "inner",
        Behavior {
            dynamic: Some(Arc::new(move |inputs| {
                fan_out_spec(input_int(inputs, "x") as usize, 0, &l2, &s2)
            })),
            ..Default::default()
        },
    );
    // outer(x): inner(2), inner(3), inner(x), summed.
    let (i2, s3) = (inner.clone(), sum.clone());
    env.backend.set(
        "outer",
        Behavior {
            dynamic: Some(Arc::new(move |inputs| {
                let x = input_int(inputs, "x");
                let sizes = [2, 3, x];
                let mut nodes: Vec<Node> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        task_node(&format!("in{i}"), "inner", vec![bind("x", scalar_int(*n))])
                    })
                    .collect();
                nodes.push(task_node(
                    "total",
                    "sum",
                    vec![bind(
                        "xs",
                        collection((0..3).map(|i| promise(&format!("in{i}"), "o0")).collect()),
                    )],
                ));
                DynamicJobSpec {
                    nodes,
                    outputs: vec![bind("o0", promise("total", "o0"))],
                    tasks: vec![i2.clone(), s3.clone()],
                    ..Default::default()
                }
            })),
            ..Default::default()
        },
    );
    let outer = task("outer", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = dyn_workflow(&outer);
    let req = request("nest", compile(&wf, &[outer]), &[("x", int_lit(4))]);
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    // (0+1) + (0+1+2) + (0+1+2+3)
    let out = wf_output(&env, &env.sink, "nest").await;
    assert_eq!(as_int(&out.literals["o"]), Some(1 + 3 + 6));
    assert_eq!(env.backend.starts_of("n0-0-in1-0-dn2"), 1);
    let evs = env.sink.node_events("nest");
    let inner_parent = evs
        .iter()
        .find(|e| {
            e.id.as_ref().unwrap().node_id == "n0-0-in1"
                && e.phase == node_execution::Phase::DynamicRunning as i32
        })
        .expect("inner dynamic event");
    assert_eq!(
        inner_parent.parent_node_metadata.as_ref().unwrap().node_id,
        "n0"
    );
    assert!(inner_parent.is_in_dynamic_chain && inner_parent.is_dynamic);
    let grandchild = evs
        .iter()
        .find(|e| e.id.as_ref().unwrap().node_id == "n0-0-in1-0-dn2")
        .unwrap();
    assert_eq!(
        grandchild.parent_node_metadata.as_ref().unwrap().node_id,
        "n0-0-in1"
    );
}

#[tokio::test]
async fn dynamic_build_failure_fails_the_node() {
    let env = env();
    // The spec refers to a launch plan the resolver does not know.
    env.backend.set(
        "dyn",
        Behavior {
            dynamic: Some(Arc::new(|_| DynamicJobSpec {
                nodes: vec![Node {
                    id: "lp".into(),
                    target: Some(node::Target::WorkflowNode(WorkflowNode {
                        reference: Some(workflow_node::Reference::LaunchplanRef(ident(
                            ResourceType::LaunchPlan,
                            "missing",
                        ))),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        },
    );
    let dyn_task = task("dyn", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = dyn_workflow(&dyn_task);
    let req = request("dynbad", compile(&wf, &[dyn_task]), &[("x", int_lit(1))]);
    assert_eq!(run(&env, req).await, WorkflowPhase::Failed);
    let err = wf_error(&env.sink, "dynbad");
    assert_eq!(err.code, "DynamicWorkflowBuildFailed", "{err:?}");
    assert!(err.message.contains("missing"), "{}", err.message);
}

/// A dynamic task emitting 10,000 nodes (plus a node gathering them all) runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_with_ten_thousand_nodes() {
    let env = env_in_memory();
    env.backend
        .keep_attempts
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let n = size_from_env(10_000);
    let leaf = calc("leaf", &[("x", int_t())]);
    let sum = calc("sum", &[("xs", list_t(int_t()))]);
    let (l2, s2) = (leaf.clone(), sum.clone());
    env.backend.set(
        "dyn",
        Behavior {
            dynamic: Some(Arc::new(move |_| fan_out_spec(n, 1, &l2, &s2))),
            ..Default::default()
        },
    );
    let dyn_task = task("dyn", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = dyn_workflow(&dyn_task);
    let req = request("dyn10k", compile(&wf, &[dyn_task]), &[("x", int_lit(0))]);
    let t = Instant::now();
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let elapsed = t.elapsed();
    let out = wf_output(&env, &env.sink, "dyn10k").await;
    // leaves 1..=n
    assert_eq!(as_int(&out.literals["o"]), Some((n * (n + 1) / 2) as i64));
    assert_eq!(env.backend.starts().len(), n + 2);
    println!(
        "dynamic with {n} nodes: {elapsed:?} ({:?}/node), {} batches",
        elapsed / n as u32,
        env.sink.batches().len()
    );
}

#[tokio::test]
async fn dynamic_resumes_after_crash_from_the_stored_closure() {
    let env = env();
    let leaf = calc("leaf", &[("x", int_t())]);
    let slow = calc("slow", &[("x", int_t())]);
    env.backend.set(
        "leaf",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    env.backend.set(
        "slow",
        Behavior {
            add: 10,
            sleep: Duration::from_millis(800),
            ..Default::default()
        },
    );
    // dyn(x): a -> b(slow) -> c, output c.
    env.backend.set(
        "dyn",
        Behavior {
            dynamic: Some(Arc::new(|inputs| {
                let x = input_int(inputs, "x");
                DynamicJobSpec {
                    nodes: vec![
                        task_node("a", "leaf", vec![bind("x", scalar_int(x))]),
                        task_node("b", "slow", vec![bind("x", promise("a", "o0"))]),
                        task_node("c", "leaf", vec![bind("x", promise("b", "o0"))]),
                    ],
                    outputs: vec![bind("o0", promise("c", "o0"))],
                    tasks: vec![
                        calc("leaf", &[("x", int_t())]),
                        calc("slow", &[("x", int_t())]),
                    ],
                    ..Default::default()
                }
            })),
            ..Default::default()
        },
    );
    let _ = (leaf, slow);
    let dyn_task = task("dyn", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = dyn_workflow(&dyn_task);
    let req = request("dyncrash", compile(&wf, &[dyn_task]), &[("x", int_lit(5))]);
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    for _ in 0..500 {
        if env.backend.starts_of("n0-0-b") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(env.backend.starts_of("n0-0-b"), 1);
    env.engine.crash();
    let journal = env.sink.snapshot();
    let engine2 = new_engine(&env.blob, &journal, &env.backend);
    assert_eq!(engine2.resume_all().await.unwrap(), 1);
    let phase = tokio::time::timeout(Duration::from_secs(20), engine2.wait(&id))
        .await
        .unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    // The dynamic task and the child that succeeded did not run again.
    assert_eq!(env.backend.starts_of("n0"), 1, "the dynamic task ran again");
    assert_eq!(env.backend.starts_of("n0-0-a"), 1);
    assert_eq!(env.backend.starts_of("n0-0-b"), 2);
    assert_eq!(env.backend.starts_of("n0-0-c"), 1);
    let out = wf_output(&env, &journal, "dyncrash").await;
    assert_eq!(as_int(&out.literals["o"]), Some(5 + 1 + 10 + 1));
}

/// The memory sink, refusing (as unavailable) every batch after the first one that records
/// a child of the dynamic node: the process then dies with its scope half opened.
struct StopsAfterFirstChildren {
    inner: Arc<MemorySink>,
    children_recorded: std::sync::atomic::AtomicBool,
    refused: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl flyte_engine::EventSink for StopsAfterFirstChildren {
    async fn record(
        &self,
        batch: &flyte_engine::EventBatch,
    ) -> Result<(), flyte_engine::SinkError> {
        if self.children_recorded.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(flyte_engine::SinkError::Transient(
                "the disk went away".into(),
            ));
        }
        let has_children = batch.node_events.iter().any(|e| {
            e.id.as_ref()
                .is_some_and(|id| id.node_id.starts_with("n0-0-dn"))
        });
        self.inner.record(batch).await?;
        if has_children {
            self.children_recorded.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Issue 21 item 3: a scope of many children opens over several batches; a restart between
/// them neither loses the children not yet recorded nor runs a recorded one twice at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_fan_out_half_opened_when_the_process_died_resumes_every_child_once() {
    let env = env_in_memory();
    env.backend.keep_attempts.store(false, Ordering::SeqCst);
    let n = 10_000usize;
    let leaf = calc("leaf", &[("x", int_t())]);
    let sum = calc("sum", &[("xs", list_t(int_t()))]);
    env.backend.set(
        "leaf",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    env.backend.set("sum", Behavior::default());
    let (l, s) = (leaf.clone(), sum.clone());
    env.backend.set(
        "dyn",
        Behavior {
            dynamic: Some(Arc::new(move |inputs| {
                fan_out_spec(n, input_int(inputs, "x"), &l, &s)
            })),
            ..Default::default()
        },
    );
    let dyn_task = task("dyn", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = dyn_workflow(&dyn_task);
    let req = request("halfopen", compile(&wf, &[dyn_task]), &[("x", int_lit(3))]);
    let id = req.id.clone();

    let sink = Arc::new(StopsAfterFirstChildren {
        inner: env.sink.clone(),
        children_recorded: Default::default(),
        refused: Default::default(),
    });
    let mut deps = engine_support::deps(&env.blob, vec![env.backend.clone()], &env.sink);
    deps.sink = sink.clone();
    let first = Engine::new(deps);
    first.start_execution(req).await.expect("starts");
    while sink.refused.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.crash();
    let journal = env.sink.snapshot();
    let key = ExecKey::of(&id);
    let recorded: HashSet<String> = (0..n)
        .map(|i| format!("n0-0-dn{i}"))
        .filter(|c| journal.node_record(&key, c).is_some())
        .collect();
    assert!(
        !recorded.is_empty() && recorded.len() < n,
        "{} of {n} children were recorded before the crash: the scope did not open over \
         several batches",
        recorded.len()
    );
    let started_before: HashMap<String, usize> = recorded
        .iter()
        .map(|c| (c.clone(), env.backend.starts_of(c)))
        .collect();

    let second = new_engine(&env.blob, &journal, &env.backend);
    assert_eq!(second.resume_all().await.unwrap(), 1);
    let phase = tokio::time::timeout(Duration::from_secs(120), second.wait(&id))
        .await
        .expect("the resumed execution finished");
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    // Every child ran: the sum of all of them.
    let out = wf_output(&env, &journal, "halfopen").await;
    let expected: i64 = (0..n as i64).map(|i| 3 + i + 1).sum();
    assert_eq!(as_int(&out.literals["o"]), Some(expected));
    for i in 0..n {
        let child = format!("n0-0-dn{i}");
        let rec = journal.node_record(&key, &child).expect("journaled");
        assert_eq!(rec.node_phase(), NodePhase::Succeeded, "{child}");
        let starts = env.backend.starts_of(&child);
        match started_before.get(&child) {
            // Not recorded before the crash: never started by the first process.
            None => assert_eq!(starts, 1, "{child} started {starts} times"),
            // Recorded: the resumed process starts it again at most once.
            Some(&before) => assert!(
                starts <= before + 1,
                "{child} started {starts} times ({before} before the crash)"
            ),
        }
    }
    assert_eq!(env.backend.starts_of("n0"), 1, "the dynamic task ran again");
}

/// Issue 11 item 1: a `@dynamic` task that returns a 10,000-node chain (the shape that
/// crashed the server, and again at every restart while it resumed) survives the process
/// dying twice in the middle of the chain: each new engine resumes it from the stored
/// closure, the dynamic task and the nodes that had succeeded do not run again, and the
/// value is carried through every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_10000_node_chain_resumes_after_crashes_midway() {
    let env = env_in_memory();
    env.backend.keep_attempts.store(false, Ordering::SeqCst);
    let n = 10_000;
    env.backend.set(
        "leaf",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    // dyn(x): c0(x) -> c1 -> … -> c9999, each adding 1; output the last.
    env.backend.set(
        "dyn",
        Behavior {
            dynamic: Some(Arc::new(move |inputs| {
                let x = input_int(inputs, "x");
                let nodes = (0..n)
                    .map(|i| {
                        let input = if i == 0 {
                            scalar_int(x)
                        } else {
                            promise(&format!("c{}", i - 1), "o0")
                        };
                        task_node(&format!("c{i}"), "leaf", vec![bind("x", input)])
                    })
                    .collect();
                DynamicJobSpec {
                    nodes,
                    outputs: vec![bind("o0", promise(&format!("c{}", n - 1), "o0"))],
                    tasks: vec![calc("leaf", &[("x", int_t())])],
                    ..Default::default()
                }
            })),
            ..Default::default()
        },
    );
    let dyn_task = task("dyn", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = dyn_workflow(&dyn_task);
    let req = request("dynchain", compile(&wf, &[dyn_task]), &[("x", int_lit(5))]);
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    let last = format!("n0-0-c{}", n - 1);
    let mut engine = None;
    let mut sink = env.sink.clone();
    let runs = |starts: Vec<AttemptKey>| {
        let mut runs: HashMap<String, usize> = HashMap::new();
        for k in starts {
            *runs.entry(k.node_id).or_default() += 1;
        }
        runs
    };
    // Per crash: how often each node had started, and the journal the restart found.
    let mut crashes = Vec::new();
    for (crash_after, at) in [("n0-0-c3000", "first"), ("n0-0-c7000", "second")] {
        tokio::time::timeout(Duration::from_secs(600), async {
            while env.backend.starts_of(crash_after) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{crash_after} never started before the {at} crash"));
        engine.as_ref().unwrap_or(&env.engine).crash();
        assert_eq!(
            env.backend.starts_of(&last),
            0,
            "the chain ended before the {at} crash: nothing was resumed mid-way"
        );
        // The journal first, then the starts: an aborted actor may still be finishing its
        // last poll on the other worker, and what it starts after the copy must count as
        // started before the restart.
        sink = sink.snapshot();
        // A copy of its own: the restarted engine writes on into `sink`.
        let journal = sink.snapshot();
        crashes.push((runs(env.backend.starts()), journal));
        let restarted = new_engine(&env.blob, &sink, &env.backend);
        assert_eq!(restarted.resume_all().await.unwrap(), 1, "{at} restart");
        engine = Some(restarted);
    }
    let engine = engine.unwrap();
    let phase = tokio::time::timeout(Duration::from_secs(600), engine.wait(&id))
        .await
        .expect("the execution finishes");
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    assert_eq!(env.backend.starts_of("n0"), 1, "the dynamic task ran again");
    // A node may run again only if its success had not been journaled when the process died.
    let key = ExecKey::of(&id);
    let total = runs(env.backend.starts());
    let (_, second) = &crashes[1];
    assert_eq!(
        second
            .node_record(&key, "n0-0-c3000")
            .map(|r| r.node_phase()),
        Some(NodePhase::Succeeded),
        "the journal names chain nodes as the backend does"
    );
    for (c, (at_crash, journal)) in crashes.iter().enumerate() {
        for (node, &before) in at_crash {
            if total[node] > before {
                let rec = journal.node_record(&key, node);
                let phase = rec.as_ref().map(|r| r.node_phase());
                assert_ne!(
                    phase,
                    Some(NodePhase::Succeeded),
                    "{node} had succeeded and ran again (crash {c}: {before} starts then, {} in all; \
                     {rec:?})",
                    total[node]
                );
            }
        }
    }
    let out = wf_output(&env, &sink, "dynchain").await;
    assert_eq!(as_int(&out.literals["o"]), Some(5 + n as i64));
}

// ------------------------------------------------------------------ arrays

fn ints(v: impl IntoIterator<Item = i64>) -> Literal {
    list_lit(v.into_iter().map(int_lit).collect())
}

/// `wf(xs) -> map(t)(x=xs)`, output the array's `o0`.
fn map_workflow(array: Node) -> WorkflowTemplate {
    workflow(
        "mapwf",
        &[("xs", list_t(int_t())), ("ys", list_t(int_t()))],
        vec![array],
        vec![bind("o", promise("a", "o0"))],
        &[("o", list_t(int_t()))],
    )
}

fn array_events(sink: &MemorySink, name: &str) -> Vec<flyteidl::event::TaskExecutionEvent> {
    sink.task_events(name)
        .into_iter()
        .filter(|e| e.parent_node_execution_id.as_ref().unwrap().node_id == "a")
        .collect()
}

#[tokio::test]
async fn map_all_succeed_with_external_resources() {
    let env = env();
    env.backend.set(
        "m",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let t = map_calc("m", &[("x", list_t(int_t()))], 0);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        None,
        None,
        &[],
    ));
    let req = request(
        "map1",
        compile(&wf, &[t]),
        &[("xs", ints([10, 20, 30, 40, 50])), ("ys", ints([]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let out = wf_output(&env, &env.sink, "map1").await;
    let got: Vec<i64> = list_of(&out.literals["o"])
        .iter()
        .map(|l| as_int(l).unwrap())
        .collect();
    assert_eq!(got, vec![11, 21, 31, 41, 51]);

    // Sub-tasks: index set, the array node's whole inputs, output dirs per index and attempt.
    let attempts = env.backend.seen.lock().unwrap().attempts.clone();
    assert_eq!(attempts.len(), 5);
    let a3 = attempts.iter().find(|a| a.array_index == Some(3)).unwrap();
    assert_eq!(a3.key.node_id, "a-0-n3");
    assert!(
        a3.paths
            .inputs
            .ends_with("/metadata/p-d-map1/a/data/inputs.pb")
    );
    assert!(
        a3.paths
            .output_prefix
            .ends_with("/metadata/p-d-map1/a/data/0/3/0")
    );
    assert_eq!(a3.env["FLYTE_K8S_ARRAY_INDEX"], "3");
    assert_eq!(
        a3.env["BATCH_JOB_ARRAY_INDEX_VAR_NAME"],
        "FLYTE_K8S_ARRAY_INDEX"
    );
    // The sub-task's template has singular outputs.
    let o0 = &a3
        .template
        .interface
        .as_ref()
        .unwrap()
        .outputs
        .as_ref()
        .unwrap()
        .variables["o0"];
    assert_eq!(o0.r#type, Some(int_t()));

    // Events: sub-nodes send no node events; the array node is is_array; its task events
    // carry the sub-nodes as external resources, all of them at the end.
    let nevs = env.sink.node_events("map1");
    assert!(
        nevs.iter()
            .all(|e| !e.id.as_ref().unwrap().node_id.starts_with("a-"))
    );
    assert!(
        nevs.iter()
            .filter(|e| e.id.as_ref().unwrap().node_id == "a")
            .all(|e| e.is_array)
    );
    let tevs = array_events(&env.sink, "map1");
    assert_eq!(tevs.len(), env.sink.task_events("map1").len());
    let first = tevs.first().unwrap();
    assert_eq!(first.phase, task_execution::Phase::Queued as i32);
    assert_eq!(first.metadata.as_ref().unwrap().external_resources.len(), 5);
    assert_eq!(first.task_id.as_ref().unwrap().name, "m");
    let last = tevs.last().unwrap();
    assert_eq!(last.phase, task_execution::Phase::Succeeded as i32);
    let eris = &last.metadata.as_ref().unwrap().external_resources;
    assert_eq!(eris.len(), 5);
    assert!(eris.iter().enumerate().all(|(i, e)| e.index == i as u32
        && e.phase == task_execution::Phase::Succeeded as i32
        && e.external_id.ends_with(&format!("-n{i}-0"))));
    assert!(matches!(
        last.output_result,
        Some(task_execution_event::OutputResult::OutputUri(_))
    ));
    // Versions grow within a phase.
    let running: Vec<u32> = tevs
        .iter()
        .filter(|e| e.phase == task_execution::Phase::Running as i32)
        .map(|e| e.phase_version)
        .collect();
    assert!(!running.is_empty());
    assert!(running.windows(2).all(|w| w[1] == w[0] + 1), "{running:?}");
}

#[tokio::test]
async fn map_partial_success_fills_none_and_retries_per_index() {
    let env = env();
    env.backend.set(
        "m",
        Behavior {
            add: 1,
            fail_indices: HashSet::from([1, 3]),
            flaky_indices: HashSet::from([2]),
            ..Default::default()
        },
    );
    let t = map_calc("m", &[("x", list_t(int_t()))], 1);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        None,
        Some(array_node::SuccessCriteria::MinSuccessRatio(0.5)),
        &[],
    ));
    let req = request(
        "mappart",
        compile(&wf, std::slice::from_ref(&t)),
        &[("xs", ints([0, 1, 2, 3, 4, 5])), ("ys", ints([]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let out = wf_output(&env, &env.sink, "mappart").await;
    let got = list_of(&out.literals["o"]);
    assert_eq!(got.len(), 6);
    assert!(is_none(&got[1]) && is_none(&got[3]));
    assert_eq!(as_int(&got[2]), Some(3));
    assert_eq!(as_int(&got[5]), Some(6));
    // Index 2 retried once (its own budget); failed indices used their budget too (not
    // retryable: once).
    assert_eq!(env.backend.starts_of("a-0-n2"), 2);
    assert_eq!(env.backend.starts_of("a-0-n1"), 1);
    let last = array_events(&env.sink, "mappart").pop().unwrap();
    let eris = &last.metadata.as_ref().unwrap().external_resources;
    assert_eq!(eris[1].phase, task_execution::Phase::Failed as i32);
    assert_eq!(eris[2].retry_attempt, 1);
    assert_eq!(eris[2].phase, task_execution::Phase::Succeeded as i32);

    // Too many failures for min_successes: the array node fails with the grouped messages.
    env.backend.set(
        "m",
        Behavior {
            fail_indices: HashSet::from([0, 1, 2, 4]),
            ..Default::default()
        },
    );
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        None,
        Some(array_node::SuccessCriteria::MinSuccesses(3)),
        &[],
    ));
    let req = request(
        "mapfail",
        compile(&wf, &[t]),
        &[("xs", ints([0, 1, 2, 3, 4, 5])), ("ys", ints([]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Failed);
    let err = wf_error(&env.sink, "mapfail");
    assert!(
        err.message.contains("index Some(0) failed"),
        "{}",
        err.message
    );
    let last = array_events(&env.sink, "mapfail").pop().unwrap();
    assert_eq!(last.phase, task_execution::Phase::Failed as i32);
}

#[tokio::test]
async fn map_bound_input_is_broadcast() {
    let env = env();
    env.backend.set(
        "m",
        Behavior {
            bound: HashSet::from(["ys".to_string()]),
            ..Default::default()
        },
    );
    let t = map_calc("m", &[("x", list_t(int_t())), ("ys", list_t(int_t()))], 0);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![
            bind("x", promise("start-node", "xs")),
            bind("ys", promise("start-node", "ys")),
        ],
        None,
        None,
        &["ys"],
    ));
    let req = request(
        "mapbound",
        compile(&wf, &[t]),
        &[("xs", ints([1, 2, 3])), ("ys", ints([100, 1000]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let out = wf_output(&env, &env.sink, "mapbound").await;
    let got: Vec<i64> = list_of(&out.literals["o"])
        .iter()
        .map(|l| as_int(l).unwrap())
        .collect();
    // x + sum(ys): the bound list reached every index whole (its length differs from xs).
    assert_eq!(got, vec![1101, 1102, 1103]);

    // An in-engine (non-container) sub-task gets its own sliced inputs.pb.
    env.backend.set("plain", Behavior::default());
    let mut plain = calc("plain", &[("x", list_t(int_t())), ("ys", list_t(int_t()))]);
    plain.interface.as_mut().unwrap().outputs = Some(vars(&[("o0", list_t(int_t()))]));
    let wf = map_workflow(array_node(
        "a",
        "plain",
        vec![
            bind("x", promise("start-node", "xs")),
            bind("ys", promise("start-node", "ys")),
        ],
        None,
        None,
        &["ys"],
    ));
    let req = request(
        "mapsliced",
        compile(&wf, &[plain]),
        &[("xs", ints([1, 2, 3])), ("ys", ints([100, 1000]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let out = wf_output(&env, &env.sink, "mapsliced").await;
    let got: Vec<i64> = list_of(&out.literals["o"])
        .iter()
        .map(|l| as_int(l).unwrap())
        .collect();
    assert_eq!(got, vec![1101, 1102, 1103]);
    let sliced = LiteralMap::decode(
        env.blob
            .get("metadata/p-d-mapsliced/a/data/0/1/inputs.pb")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(as_int(&sliced.literals["x"]), Some(2));
    assert_eq!(list_of(&sliced.literals["ys"]).len(), 2);
}

#[tokio::test]
async fn map_parallelism_is_respected() {
    let env = env();
    env.backend.set(
        "m",
        Behavior {
            sleep: Duration::from_millis(40),
            ..Default::default()
        },
    );
    let t = map_calc("m", &[("x", list_t(int_t()))], 0);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        Some(2),
        None,
        &[],
    ));
    let req = request(
        "mappar",
        compile(&wf, &[t]),
        &[("xs", ints(0..8)), ("ys", ints([]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    assert_eq!(env.backend.max_running_of("m"), 2);
    assert_eq!(env.backend.starts().len(), 8);

    // Unset parallelism: unlimited by default (the array node itself takes one workflow slot).
    let t2 = map_calc("m2", &[("x", list_t(int_t()))], 0);
    env.backend.set(
        "m2",
        Behavior {
            sleep: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let wf = map_workflow(array_node(
        "a",
        "m2",
        vec![bind("x", promise("start-node", "xs"))],
        None,
        None,
        &[],
    ));
    let mut req = request(
        "mapunl",
        compile(&wf, &[t2]),
        &[("xs", ints(0..6)), ("ys", ints([]))],
    );
    req.max_parallelism = 1;
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    assert_eq!(env.backend.max_running_of("m2"), 6);
}

/// A 10,000-item map runs; time per item is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_with_ten_thousand_items() {
    let env = env_in_memory();
    env.backend
        .keep_attempts
        .store(false, std::sync::atomic::Ordering::SeqCst);
    env.backend.set(
        "m",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let n = size_from_env(10_000) as i64;
    let t = map_calc("m", &[("x", list_t(int_t()))], 0);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        None,
        None,
        &[],
    ));
    let req = request(
        "map10k",
        compile(&wf, &[t]),
        &[("xs", ints(0..n)), ("ys", ints([]))],
    );
    let t0 = Instant::now();
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let elapsed = t0.elapsed();
    let out = wf_output(&env, &env.sink, "map10k").await;
    let got = list_of(&out.literals["o"]);
    assert_eq!(got.len(), n as usize);
    assert_eq!(as_int(&got[n as usize - 1]), Some(n));
    let tevs = array_events(&env.sink, "map10k");
    let batches = env.sink.batches().len();
    println!(
        "map over {n} items: {elapsed:?} ({:?}/item), {} array task events, {batches} batches",
        elapsed / n as u32,
        tevs.len()
    );
    // Batched: far fewer events than sub-node transitions (3 per index).
    assert!(tevs.len() < 3 * n as usize);
    assert_eq!(
        tevs.last()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .external_resources
            .len(),
        n as usize
    );
}

#[tokio::test]
async fn map_resumes_after_crash() {
    let env = env();
    env.backend.set(
        "m",
        Behavior {
            add: 1,
            sleep: Duration::from_millis(300),
            ..Default::default()
        },
    );
    let t = map_calc("m", &[("x", list_t(int_t()))], 0);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        Some(2),
        None,
        &[],
    ));
    let req = request(
        "mapcrash",
        compile(&wf, &[t]),
        &[("xs", ints(0..5)), ("ys", ints([]))],
    );
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    // Wait until the second pair started (the first two succeeded), then crash.
    for _ in 0..500 {
        if env.backend.starts_of("a-0-n2") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    env.engine.crash();
    let journal = env.sink.snapshot();
    let engine2 = new_engine(&env.blob, &journal, &env.backend);
    assert_eq!(engine2.resume_all().await.unwrap(), 1);
    let phase = tokio::time::timeout(Duration::from_secs(20), engine2.wait(&id))
        .await
        .unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    assert_eq!(env.backend.starts_of("a-0-n0"), 1);
    assert_eq!(env.backend.starts_of("a-0-n1"), 1);
    assert_eq!(env.backend.starts_of("a-0-n2"), 2);
    assert_eq!(env.backend.starts_of("a-0-n4"), 1);
    let out = wf_output(&env, &journal, "mapcrash").await;
    let got: Vec<i64> = list_of(&out.literals["o"])
        .iter()
        .map(|l| as_int(l).unwrap())
        .collect();
    assert_eq!(got, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn map_inside_dynamic() {
    let env = env();
    env.backend.set(
        "m",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let m = map_calc("m", &[("x", list_t(int_t()))], 0);
    let sum = calc("sum", &[("xs", list_t(int_t()))]);
    let (m2, s2) = (m.clone(), sum.clone());
    env.backend.set(
        "dyn",
        Behavior {
            dynamic: Some(Arc::new(move |inputs| {
                let x = input_int(inputs, "x");
                DynamicJobSpec {
                    nodes: vec![
                        array_node(
                            "mp",
                            "m",
                            vec![bind("x", collection((0..x).map(scalar_int).collect()))],
                            None,
                            None,
                            &[],
                        ),
                        task_node("s", "sum", vec![bind("xs", promise("mp", "o0"))]),
                    ],
                    outputs: vec![bind("o0", promise("s", "o0"))],
                    tasks: vec![m2.clone(), s2.clone()],
                    ..Default::default()
                }
            })),
            ..Default::default()
        },
    );
    let dyn_task = task("dyn", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = dyn_workflow(&dyn_task);
    let req = request("dynmap", compile(&wf, &[dyn_task]), &[("x", int_lit(4))]);
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let out = wf_output(&env, &env.sink, "dynmap").await;
    assert_eq!(as_int(&out.literals["o"]), Some(1 + 2 + 3 + 4));
    assert_eq!(env.backend.starts_of("n0-0-mp-0-n3"), 1);
}

#[tokio::test]
async fn map_sub_task_timeouts_are_per_index() {
    let env = env();
    env.backend.set(
        "m",
        Behavior {
            add: 1,
            slow_indices: HashMap::from([(1, Duration::from_secs(60))]),
            ..Default::default()
        },
    );
    let mut t = map_calc("m", &[("x", list_t(int_t()))], 0);
    t.metadata.as_mut().unwrap().timeout = Some(pbjson_types::Duration {
        seconds: 0,
        nanos: 300_000_000,
    });
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        None,
        Some(array_node::SuccessCriteria::MinSuccesses(2)),
        &[],
    ));
    let req = request(
        "maptimeout",
        compile(&wf, &[t]),
        &[("xs", ints([1, 2, 3])), ("ys", ints([]))],
    );
    // Index 1 would sleep 60 s: it shows up as timed out (None) only if its timeout fired.
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let out = wf_output(&env, &env.sink, "maptimeout").await;
    let got = list_of(&out.literals["o"]);
    assert_eq!(as_int(&got[0]), Some(2));
    assert!(is_none(&got[1]));
    assert_eq!(as_int(&got[2]), Some(4));
    let events = array_events(&env.sink, "maptimeout");
    let last = events.last().unwrap();
    let eris = &last.metadata.as_ref().unwrap().external_resources;
    assert_eq!(eris[1].phase, task_execution::Phase::Failed as i32);
    // Logs are reported per index, named after it, while the item runs (the admin keeps them
    // on its entry; an item's node, and its logs, are gone from the engine once it ended).
    let logs: Vec<_> = events
        .iter()
        .flat_map(|e| e.metadata.as_ref().unwrap().external_resources.iter())
        .filter(|r| r.index == 2)
        .flat_map(|r| r.logs.iter())
        .collect();
    assert_eq!(logs[0].name, "log-2");
    assert_eq!(logs[0].uri, "http://logs/a-0-n2/0");
}

#[tokio::test]
async fn abort_reaches_array_sub_tasks_and_dynamic_children() {
    let env = env();
    env.backend.set(
        "m",
        Behavior {
            sleep: Duration::from_secs(30),
            ..Default::default()
        },
    );
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_secs(30),
            ..Default::default()
        },
    );
    let m = map_calc("m", &[("x", list_t(int_t()))], 0);
    env.backend.set(
        "dyn",
        Behavior {
            dynamic: Some(Arc::new(|_| DynamicJobSpec {
                nodes: vec![task_node("s", "slow", vec![bind("x", scalar_int(1))])],
                outputs: vec![bind("o0", promise("s", "o0"))],
                tasks: vec![calc("slow", &[("x", int_t())])],
                ..Default::default()
            })),
            ..Default::default()
        },
    );
    let dyn_task = task("dyn", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = workflow(
        "both",
        &[("xs", list_t(int_t()))],
        vec![
            array_node(
                "a",
                "m",
                vec![bind("x", promise("start-node", "xs"))],
                None,
                None,
                &[],
            ),
            task_node("d", "dyn", vec![bind("x", scalar_int(1))]),
        ],
        vec![],
        &[],
    );
    let req = request(
        "abortall",
        compile(&wf, &[m, dyn_task]),
        &[("xs", ints([1, 2, 3]))],
    );
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    for _ in 0..500 {
        if env.backend.starts_of("d-0-s") > 0 && env.backend.starts_of("a-0-n2") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.engine.abort(&id, "stop").unwrap();
    let phase = tokio::time::timeout(Duration::from_secs(10), env.engine.wait(&id))
        .await
        .unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Aborted));
    let last = array_events(&env.sink, "abortall").pop().unwrap();
    assert_eq!(last.phase, task_execution::Phase::Aborted as i32);
    let eris = &last.metadata.as_ref().unwrap().external_resources;
    assert_eq!(eris.len(), 3);
    assert!(
        eris.iter()
            .all(|e| e.phase == task_execution::Phase::Aborted as i32)
    );
    let nevs = env.sink.node_events("abortall");
    let last_of = |id: &str| {
        nevs.iter()
            .rfind(|e| e.id.as_ref().unwrap().node_id == id)
            .unwrap()
            .phase
    };
    use node_execution::Phase as P;
    assert_eq!(last_of("d-0-s"), P::Aborted as i32);
    assert_eq!(last_of("d"), P::Aborted as i32);
    assert_eq!(last_of("a"), P::Aborted as i32);
    // The dynamic parent's (succeeded) task attempt got no ABORTED event afterwards.
    let d_task: Vec<i32> = env
        .sink
        .task_events("abortall")
        .iter()
        .filter(|e| e.parent_node_execution_id.as_ref().unwrap().node_id == "d")
        .map(|e| e.phase)
        .collect();
    assert_eq!(
        d_task.last(),
        Some(&(task_execution::Phase::Succeeded as i32))
    );
}

#[tokio::test]
async fn array_over_a_subworkflow_gets_sliced_inputs() {
    let env = env();
    env.backend.set(
        "inc",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let inc = calc("inc", &[("x", int_t())]);
    let sub = workflow(
        "sw",
        &[("x", int_t())],
        vec![task_node(
            "t",
            "inc",
            vec![bind("x", promise("start-node", "x"))],
        )],
        vec![bind("o0", promise("t", "o0"))],
        &[("o0", int_t())],
    );
    let sub_node = Node {
        id: "a".into(),
        target: Some(node::Target::WorkflowNode(WorkflowNode {
            reference: Some(workflow_node::Reference::SubWorkflowRef(ident(
                ResourceType::Workflow,
                "sw",
            ))),
        })),
        ..Default::default()
    };
    let array = Node {
        id: "a".into(),
        inputs: vec![bind("x", promise("start-node", "xs"))],
        target: Some(node::Target::ArrayNode(Box::new(ArrayNode {
            node: Some(Box::new(sub_node)),
            is_original_sub_node_interface: Some(pbjson_types::BoolValue { value: true }),
            ..Default::default()
        }))),
        ..Default::default()
    };
    let wf = map_workflow(array);
    let resolved = Resolved {
        tasks: [(IdKey::from(inc.id.as_ref().unwrap()), inc.clone())].into(),
        ..Default::default()
    };
    let compiled = compile_workflow_template(&wf, &[sub], &resolved).unwrap();
    let req = request(
        "mapsw",
        compiled,
        &[("xs", ints([5, 6, 7])), ("ys", ints([]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let out = wf_output(&env, &env.sink, "mapsw").await;
    let got: Vec<i64> = list_of(&out.literals["o"])
        .iter()
        .map(|l| as_int(l).unwrap())
        .collect();
    assert_eq!(got, vec![6, 7, 8]);
    assert_eq!(env.backend.starts_of("a-0-n1-0-t"), 1);
    // Nothing under the array node reports node events of its own.
    assert!(
        env.sink.node_events("mapsw").iter().all(|e| !e
            .id
            .as_ref()
            .unwrap()
            .node_id
            .starts_with("a-"))
    );
    let last = array_events(&env.sink, "mapsw").pop().unwrap();
    assert_eq!(last.phase, task_execution::Phase::Succeeded as i32);
    assert_eq!(
        last.metadata.as_ref().unwrap().external_resources[1].phase,
        task_execution::Phase::Succeeded as i32
    );
}

// --- the size bound (engine.max_nodes_per_execution) ------------------------------------------

/// An engine whose executions may hold at most `max` nodes.
fn env_with_max_nodes(max: usize) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let backend = TestBackend::new(blob.clone());
    let mut deps = engine_support::deps(&blob, vec![backend.clone()], &sink);
    deps.config.max_nodes_per_execution = max;
    let engine = Engine::new(deps);
    Env {
        _dir: dir,
        blob,
        sink,
        backend,
        engine,
    }
}

/// A map task past the bound fails its node with an error naming the bound, and no item
/// runs: the server does not build a node per item it cannot hold (a 1,000,000-item map
/// task took the server past 12 GB before it had the bound).
#[tokio::test]
async fn a_map_task_past_the_node_bound_fails_with_the_limit_named() {
    let env = env_with_max_nodes(20);
    let t = map_calc("m", &[("x", list_t(int_t()))], 0);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        None,
        None,
        &[],
    ));
    let req = request(
        "bigmap",
        compile(&wf, &[t]),
        &[("xs", ints(0..30)), ("ys", ints([]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Failed);
    let err = wf_error(&env.sink, "bigmap");
    assert_eq!(err.code, "ArrayTooLarge", "{err:?}");
    assert!(
        err.message.contains("engine.max_nodes_per_execution") && err.message.contains("20"),
        "{}",
        err.message
    );
    assert!(env.backend.seen.lock().unwrap().attempts.is_empty());

    // Within the bound the same map task runs.
    let env = env_with_max_nodes(20);
    env.backend.set(
        "m",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let t = map_calc("m", &[("x", list_t(int_t()))], 0);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        None,
        None,
        &[],
    ));
    let req = request(
        "smallmap",
        compile(&wf, &[t]),
        &[("xs", ints(0..10)), ("ys", ints([]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
}

/// The bound counts the nodes a map task has in flight, not its items: a map of 100 items
/// with a concurrency of 5 runs within a bound of 20 nodes (an item's node is built when it
/// starts and released when it ends), every item once, every output gathered in order.
#[tokio::test]
async fn a_map_task_of_more_items_than_the_node_bound_runs_within_its_concurrency() {
    let env = env_with_max_nodes(20);
    env.backend.set(
        "m",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let t = map_calc("m", &[("x", list_t(int_t()))], 0);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        Some(5),
        None,
        &[],
    ));
    let req = request(
        "lazymap",
        compile(&wf, &[t]),
        &[("xs", ints(0..100)), ("ys", ints([]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let out = wf_output(&env, &env.sink, "lazymap").await;
    let got: Vec<_> = list_of(&out.literals["o"]).iter().map(as_int).collect();
    assert_eq!(got, (1..=100).map(Some).collect::<Vec<_>>());
    for i in 0..100 {
        assert_eq!(env.backend.starts_of(&format!("a-0-n{i}")), 1, "item {i}");
    }
    // The final event lists every item, succeeded, released or not.
    let last = array_events(&env.sink, "lazymap").pop().unwrap();
    let eris = &last.metadata.as_ref().unwrap().external_resources;
    assert_eq!(eris.len(), 100);
    assert!(
        eris.iter()
            .all(|r| r.phase == task_execution::Phase::Succeeded as i32)
    );
    // Every item's node record reached the journal (what a resume rebuilds the items from).
    let key = ExecKey {
        project: "p".into(),
        domain: "d".into(),
        name: "lazymap".into(),
    };
    for i in 0..100 {
        let id = format!("a-0-n{i}");
        let rec = env.sink.node_record(&key, &id).expect("journaled");
        assert_eq!(rec.node_phase(), NodePhase::Succeeded, "{id}");
    }
}

/// A map task of more items than `engine.max_map_items` fails its node with the limit named
/// (a user error), before any item runs.
#[tokio::test]
async fn a_map_task_past_the_item_bound_fails_with_the_limit_named() {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let backend = TestBackend::new(blob.clone());
    let mut deps = engine_support::deps(&blob, vec![backend.clone()], &sink);
    deps.config.max_map_items = 50;
    let env = Env {
        _dir: dir,
        blob,
        sink,
        backend,
        engine: Engine::new(deps),
    };
    let t = map_calc("m", &[("x", list_t(int_t()))], 0);
    let wf = map_workflow(array_node(
        "a",
        "m",
        vec![bind("x", promise("start-node", "xs"))],
        Some(5),
        None,
        &[],
    ));
    let req = request(
        "toomany",
        compile(&wf, &[t]),
        &[("xs", ints(0..51)), ("ys", ints([]))],
    );
    assert_eq!(run(&env, req).await, WorkflowPhase::Failed);
    let err = wf_error(&env.sink, "toomany");
    assert_eq!(err.code, "ArrayTooLarge", "{err:?}");
    assert_eq!(err.kind, execution_error::ErrorKind::User as i32);
    assert!(
        err.message.contains("engine.max_map_items") && err.message.contains("50"),
        "{}",
        err.message
    );
    assert!(env.backend.seen.lock().unwrap().attempts.is_empty());
}

/// A `@dynamic` task that emits more nodes than the bound: its node fails with the bound
/// named (a user error, not retried), none of the children runs.
#[tokio::test]
async fn a_dynamic_workflow_past_the_node_bound_fails_with_the_limit_named() {
    let env = env_with_max_nodes(20);
    let leaf = calc("leaf", &[("x", int_t())]);
    let sum = calc("sum", &[("xs", list_t(int_t()))]);
    let (l2, s2) = (leaf.clone(), sum.clone());
    env.backend.set(
        "dyn",
        Behavior {
            dynamic: Some(Arc::new(move |inputs| {
                fan_out_spec(input_int(inputs, "x") as usize, 0, &l2, &s2)
            })),
            ..Default::default()
        },
    );
    let dyn_task = task("dyn", "dyn", &[("x", int_t())], &[("o0", int_t())]);
    let wf = dyn_workflow(&dyn_task);
    let req = request("bigdyn", compile(&wf, &[dyn_task]), &[("x", int_lit(30))]);
    assert_eq!(run(&env, req).await, WorkflowPhase::Failed);
    let err = wf_error(&env.sink, "bigdyn");
    assert!(
        err.message.contains("engine.max_nodes_per_execution"),
        "{}",
        err.message
    );
    assert_eq!(env.backend.starts_of("n0"), 1, "not retried");
    assert_eq!(env.backend.starts_of("n0-0-dn0"), 0);
}
