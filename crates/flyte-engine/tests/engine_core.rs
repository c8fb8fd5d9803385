//! Engine core: workflows of every shape run against a small in-test backend ("calc" tasks
//! that write `outputs.pb` like a real task would), with events and journal checked.

mod engine_support;
use engine_support::*;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use flyte_engine::{
    Engine, ExecKey, ExecutionRequest, MemorySink, NodePhase, VirtualClock, WorkflowPhase,
};
use flyteidl::core::literal_type::Type;
use flyteidl::core::*;
use prost::Message;
use tokio::sync::mpsc;

// ------------------------------------------------------------------ backend

#[derive(Clone, Default)]
struct Behavior {
    /// Fail this many attempts first.
    fail_times: u32,
    fail_kind: i32,
    retryable: bool,
    /// Sleep before finishing.
    sleep: Duration,
    /// Output value of the `o0` output = sum of integer inputs + add.
    add: i64,
}

struct CalcBackend {
    blob: BlobStore,
    behaviors: Mutex<HashMap<String, Behavior>>,
    starts: Mutex<Vec<AttemptKey>>,
    aborts: Mutex<Vec<AttemptKey>>,
    running: Arc<AtomicUsize>,
    max_running: AtomicUsize,
    cancel: Mutex<HashMap<AttemptKey, tokio::sync::oneshot::Sender<()>>>,
}

impl CalcBackend {
    fn new(blob: BlobStore) -> Arc<Self> {
        Arc::new(Self {
            blob,
            behaviors: Default::default(),
            starts: Default::default(),
            aborts: Default::default(),
            running: Arc::new(AtomicUsize::new(0)),
            max_running: AtomicUsize::new(0),
            cancel: Default::default(),
        })
    }
    fn set(&self, task: &str, b: Behavior) {
        self.behaviors.lock().unwrap().insert(task.into(), b);
    }
    fn starts_of(&self, node: &str) -> usize {
        self.starts
            .lock()
            .unwrap()
            .iter()
            .filter(|k| k.node_id == node)
            .count()
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

#[async_trait]
impl TaskBackend for CalcBackend {
    fn name(&self) -> &'static str {
        "calc"
    }
    fn handles(&self, t: &TaskTemplate) -> bool {
        t.r#type == "calc"
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
        self.starts.lock().unwrap().push(attempt.key.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.cancel.lock().unwrap().insert(attempt.key.clone(), tx);
        let blob = self.blob.clone();
        let key = attempt.key.clone();
        let running = self.running.clone();
        tokio::spawn(async move {
            let _ = updates.send((key.clone(), AttemptUpdate::Running { logs: vec![] }));
            tokio::select! {
                _ = tokio::time::sleep(b.sleep) => {}
                _ = rx => {
                    running.fetch_sub(1, Ordering::SeqCst);
                    let _ = updates.send((key, AttemptUpdate::Finished(AttemptOutcome::Aborted)));
                    return;
                }
            }
            running.fetch_sub(1, Ordering::SeqCst);
            if attempt.key.retry_attempt < b.fail_times {
                let error = ExecutionError {
                    code: "Boom".into(),
                    message: format!("attempt {} failed", attempt.key.retry_attempt),
                    kind: b.fail_kind,
                    ..Default::default()
                };
                let _ = updates.send((
                    key,
                    AttemptUpdate::Finished(AttemptOutcome::Failed {
                        error,
                        retryable: b.retryable,
                        logs: vec![],
                    }),
                ));
                return;
            }
            let in_key = blob.path_from_native_url(&attempt.paths.inputs).unwrap();
            let inputs = LiteralMap::decode(blob.get(&in_key).await.unwrap()).unwrap();
            let sum: i64 = inputs.literals.values().filter_map(as_int).sum();
            let outputs = LiteralMap {
                literals: BTreeMap::from([("o0".to_string(), int_lit(sum + b.add))]),
            };
            let out_key = blob
                .path_from_native_url(&format!("{}/outputs.pb", attempt.paths.output_prefix))
                .unwrap();
            blob.put(&out_key, Bytes::from(outputs.encode_to_vec()))
                .await
                .unwrap();
            let _ = updates.send((
                key,
                AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs: vec![] }),
            ));
        });
        Ok(())
    }
    async fn abort(&self, key: &AttemptKey) {
        self.aborts.lock().unwrap().push(key.clone());
        if let Some(tx) = self.cancel.lock().unwrap().remove(key) {
            let _ = tx.send(());
        }
    }
}

// ------------------------------------------------------------------ builders

fn calc_task(
    name: &str,
    inputs: &[(&str, LiteralType)],
    retries: u32,
    timeout: Option<Duration>,
) -> TaskTemplate {
    TaskTemplate {
        id: Some(ident(ResourceType::Task, name)),
        r#type: "calc".into(),
        metadata: Some(TaskMetadata {
            retries: Some(RetryStrategy { retries }),
            timeout: timeout.map(|d| pbjson_types::Duration {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            }),
            ..Default::default()
        }),
        interface: Some(iface(inputs, &[("o0", int_t())])),
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
fn compile(
    wf: &WorkflowTemplate,
    subs: &[WorkflowTemplate],
    tasks: &[TaskTemplate],
) -> CompiledWorkflowClosure {
    let resolved = Resolved {
        tasks: tasks
            .iter()
            .map(|t| (IdKey::from(t.id.as_ref().unwrap()), t.clone()))
            .collect(),
        ..Default::default()
    };
    compile_workflow_template(wf, subs, &resolved).unwrap_or_else(|e| panic!("compile: {e:?}"))
}

struct Env {
    _dir: tempfile::TempDir,
    blob: BlobStore,
    sink: Arc<MemorySink>,
    backend: Arc<CalcBackend>,
    engine: Engine,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let backend = CalcBackend::new(blob.clone());
    let engine = new_engine(&blob, &sink, &backend);
    Env {
        _dir: dir,
        blob,
        sink,
        backend,
        engine,
    }
}

fn new_engine(blob: &BlobStore, sink: &Arc<MemorySink>, backend: &Arc<CalcBackend>) -> Engine {
    Engine::new(engine_support::deps(blob, vec![backend.clone()], sink))
}

/// An engine on virtual time: its clock follows tokio's, so under
/// `#[tokio::test(start_paused = true)]` timeouts fire as soon as nothing else can move.
fn virtual_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let backend = CalcBackend::new(blob.clone());
    let mut deps = engine_support::deps(&blob, vec![backend.clone()], &sink);
    deps.config.clock = Arc::new(VirtualClock::new());
    Env {
        _dir: dir,
        blob,
        sink,
        backend,
        engine: Engine::new(deps),
    }
}

/// [`run`] in virtual time: the bound is a week of it, so a hang fails instead of waiting.
async fn run_virtual(env: &Env, req: ExecutionRequest) -> WorkflowPhase {
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    tokio::time::timeout(Duration::from_secs(7 * 24 * 3600), env.engine.wait(&id))
        .await
        .expect("execution did not finish")
        .expect("no final phase")
}

async fn run(env: &Env, req: ExecutionRequest) -> WorkflowPhase {
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), env.engine.wait(&id))
        .await
        .expect("execution did not finish")
        .expect("no final phase")
}

async fn wf_output(env: &Env, name: &str) -> LiteralMap {
    let evs = env.sink.workflow_events(name);
    reported_outputs(&env.blob, evs.last().unwrap()).await
}

fn wf_error(env: &Env, name: &str) -> ExecutionError {
    let evs = env.sink.workflow_events(name);
    match &evs.last().unwrap().output_result {
        Some(flyteidl::event::workflow_execution_event::OutputResult::Error(e)) => e.clone(),
        other => panic!("no error: {other:?}"),
    }
}

fn node_phases(env: &Env, name: &str, node: &str) -> Vec<i32> {
    env.sink
        .node_events(name)
        .iter()
        .filter(|e| e.id.as_ref().unwrap().node_id == node)
        .map(|e| e.phase)
        .collect()
}

fn chain(n: usize) -> (WorkflowTemplate, Vec<TaskTemplate>) {
    let t = calc_task("inc", &[("x", int_t())], 0, None);
    let mut nodes = Vec::new();
    for i in 0..n {
        let input = if i == 0 {
            promise("start-node", "x")
        } else {
            promise(&format!("n{}", i - 1), "o0")
        };
        nodes.push(task_node(&format!("n{i}"), "inc", vec![bind("x", input)]));
    }
    let wf = workflow(
        "chain",
        &[("x", int_t())],
        nodes,
        vec![bind("o", promise(&format!("n{}", n - 1), "o0"))],
        &[("o", int_t())],
    );
    (wf, vec![t])
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn linear_chain_passes_outputs_and_reports_events() {
    let env = env();
    env.backend.set(
        "inc",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let (wf, tasks) = chain(3);
    let phase = run(
        &env,
        request("chain1", compile(&wf, &[], &tasks), &[("x", int_lit(10))]),
    )
    .await;
    assert_eq!(phase, WorkflowPhase::Succeeded);
    let out = wf_output(&env, "chain1").await;
    assert_eq!(as_int(&out.literals["o"]), Some(13));
    use node_execution::Phase as P;
    assert_eq!(
        node_phases(&env, "chain1", "start-node"),
        vec![P::Succeeded as i32]
    );
    assert_eq!(
        node_phases(&env, "chain1", "n1"),
        vec![P::Queued as i32, P::Running as i32, P::Succeeded as i32]
    );
    let wf_phases: Vec<i32> = env
        .sink
        .workflow_events("chain1")
        .iter()
        .map(|e| e.phase)
        .collect();
    use workflow_execution::Phase as W;
    assert_eq!(
        wf_phases,
        vec![W::Running as i32, W::Succeeding as i32, W::Succeeded as i32]
    );
    // Layout: the node's inputs and per-attempt outputs where Flyte puts them.
    assert!(
        env.blob
            .head("metadata/p-d-chain1/n1/data/inputs.pb")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        env.blob
            .head("metadata/p-d-chain1/n1/data/0/outputs.pb")
            .await
            .unwrap()
            .is_some()
    );
    // The start and end nodes' small maps are in their events, not in files nobody reads.
    for file in [
        "start-node/data/0/outputs.pb",
        "end-node/data/inputs.pb",
        "end-node/data/0/outputs.pb",
    ] {
        let key = format!("metadata/p-d-chain1/{file}");
        assert!(env.blob.head(&key).await.unwrap().is_none(), "{key}");
    }
    let events = env.sink.node_events("chain1");
    let inline_outputs = |node: &str| {
        events
            .iter()
            .filter(|e| e.id.as_ref().is_some_and(|i| i.node_id == node))
            .find_map(|e| match &e.output_result {
                Some(flyteidl::event::node_execution_event::OutputResult::OutputData(m)) => {
                    Some(m.clone())
                }
                _ => None,
            })
    };
    let start = inline_outputs("start-node").expect("the start node's outputs inline");
    assert_eq!(as_int(&start.literals["x"]), Some(10));
    let end = inline_outputs("end-node").expect("the end node's outputs inline");
    assert_eq!(as_int(&end.literals["o"]), Some(13));
    // Task events: QUEUED, RUNNING, SUCCEEDED per node, with producer and type.
    let tev: Vec<_> = env
        .sink
        .task_events("chain1")
        .into_iter()
        .filter(|e| e.parent_node_execution_id.as_ref().unwrap().node_id == "n0")
        .collect();
    assert_eq!(
        tev.iter().map(|e| e.phase).collect::<Vec<_>>(),
        vec![
            task_execution::Phase::Queued as i32,
            task_execution::Phase::Running as i32,
            task_execution::Phase::Succeeded as i32
        ]
    );
    assert!(
        tev.iter()
            .all(|e| e.producer_id == "flyte-rs" && e.task_type == "calc")
    );
    assert_eq!(
        tev[0].metadata.as_ref().unwrap().generated_name,
        "chain1-n0-0"
    );
    // Journal: finished, node records succeeded.
    let rec = env
        .sink
        .node_record(
            &ExecKey {
                project: "p".into(),
                domain: "d".into(),
                name: "chain1".into(),
            },
            "n2",
        )
        .unwrap();
    assert_eq!(rec.node_phase(), NodePhase::Succeeded);
}

#[tokio::test]
async fn fan_out_fan_in_with_collection_binding_and_max_parallelism() {
    let env = env();
    env.backend.set(
        "inc",
        Behavior {
            add: 1,
            sleep: Duration::from_millis(20),
            ..Default::default()
        },
    );
    env.backend.set("sum", Behavior::default());
    let inc = calc_task("inc", &[("x", int_t())], 0, None);
    let sum = calc_task("sum", &[("xs", list_t(int_t()))], 0, None);
    let n = 12;
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            task_node(
                &format!("f{i}"),
                "inc",
                vec![bind("x", promise("start-node", "x"))],
            )
        })
        .collect();
    let coll = BindingData {
        value: Some(binding_data::Value::Collection(BindingDataCollection {
            bindings: (0..n).map(|i| promise(&format!("f{i}"), "o0")).collect(),
        })),
        ..Default::default()
    };
    nodes.push(task_node("total", "sum", vec![bind("xs", coll)]));
    let wf = workflow(
        "fan",
        &[("x", int_t())],
        nodes,
        vec![bind("o", promise("total", "o0"))],
        &[("o", int_t())],
    );
    let mut req = request("fan1", compile(&wf, &[], &[inc, sum]), &[("x", int_lit(1))]);
    req.max_parallelism = 3;
    assert_eq!(run(&env, req).await, WorkflowPhase::Succeeded);
    let out = wf_output(&env, "fan1").await;
    assert_eq!(as_int(&out.literals["o"]), Some(2 * n as i64));
    let max = env.backend.max_running.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "max running {max}");
}

fn branch_wf(else_fail: bool) -> (WorkflowTemplate, Vec<TaskTemplate>) {
    let t = calc_task("inc", &[("x", int_t())], 0, None);
    let cond = BooleanExpression {
        expr: Some(boolean_expression::Expr::Comparison(ComparisonExpression {
            operator: comparison_expression::Operator::Gt as i32,
            left_value: Some(Operand {
                val: Some(operand::Val::Var("x".into())),
            }),
            right_value: Some(Operand {
                val: Some(operand::Val::Scalar(Scalar {
                    value: Some(scalar::Value::Primitive(Primitive {
                        value: Some(primitive::Value::Integer(5)),
                    })),
                })),
            }),
        })),
    };
    let then_node = task_node("big", "inc", vec![bind("x", promise("start-node", "x"))]);
    let else_node = task_node("small", "inc", vec![bind("x", promise("start-node", "x"))]);
    let default = if else_fail {
        if_else_block::Default::Error(Error {
            failed_node_id: "b".into(),
            message: "x is too small".into(),
        })
    } else {
        if_else_block::Default::ElseNode(Box::new(else_node))
    };
    let branch = Node {
        id: "b".into(),
        inputs: vec![bind("x", promise("start-node", "x"))],
        target: Some(node::Target::BranchNode(Box::new(BranchNode {
            if_else: Some(Box::new(IfElseBlock {
                case: Some(Box::new(IfBlock {
                    condition: Some(cond),
                    then_node: Some(Box::new(then_node)),
                })),
                other: vec![],
                default: Some(default),
            })),
        }))),
        ..Default::default()
    };
    let wf = workflow(
        "br",
        &[("x", int_t())],
        vec![branch],
        vec![bind("o", promise("b", "o0"))],
        &[("o", int_t())],
    );
    (wf, vec![t])
}

#[tokio::test]
async fn branch_taken_skipped_and_fail() {
    let env = env();
    env.backend.set(
        "inc",
        Behavior {
            add: 100,
            ..Default::default()
        },
    );
    let (wf, tasks) = branch_wf(false);
    let compiled = compile(&wf, &[], &tasks);
    assert_eq!(
        run(
            &env,
            request("br-big", compiled.clone(), &[("x", int_lit(7))])
        )
        .await,
        WorkflowPhase::Succeeded
    );
    assert_eq!(
        as_int(&wf_output(&env, "br-big").await.literals["o"]),
        Some(107)
    );
    // The taken child runs under the branch: nested id, parent metadata.
    let child: Vec<_> = env
        .sink
        .node_events("br-big")
        .into_iter()
        .filter(|e| e.spec_node_id == "b-big")
        .collect();
    assert!(!child.is_empty());
    assert_eq!(child[0].id.as_ref().unwrap().node_id, "b-0-b-big");
    assert_eq!(child[0].parent_node_metadata.as_ref().unwrap().node_id, "b");
    assert_eq!(child[0].retry_group, "0");
    let key = ExecKey {
        project: "p".into(),
        domain: "d".into(),
        name: "br-big".into(),
    };
    assert_eq!(
        env.sink
            .node_record(&key, "b-0-b-small")
            .unwrap()
            .node_phase(),
        NodePhase::Skipped
    );
    assert!(
        env.sink
            .node_events("br-big")
            .iter()
            .all(|e| e.spec_node_id != "b-small")
    );
    assert!(
        env.blob
            .head("metadata/p-d-br-big/b/data/0/outputs.pb")
            .await
            .unwrap()
            .is_some()
    );

    assert_eq!(
        run(&env, request("br-small", compiled, &[("x", int_lit(2))])).await,
        WorkflowPhase::Succeeded
    );
    assert_eq!(
        as_int(&wf_output(&env, "br-small").await.literals["o"]),
        Some(102)
    );

    let (wf, tasks) = branch_wf(true);
    assert_eq!(
        run(
            &env,
            request("br-fail", compile(&wf, &[], &tasks), &[("x", int_lit(2))])
        )
        .await,
        WorkflowPhase::Failed
    );
    let err = wf_error(&env, "br-fail");
    assert!(err.message.contains("x is too small"), "{err:?}");
    assert_eq!(err.kind, execution_error::ErrorKind::User as i32);
}

/// As flytekit serialises `s = slow(x=x); conditional(..).if_(x > 5).then(inc(x=s))...`: the
/// condition reads only a workflow input, the cases read the output of `n0`, a task that runs
/// before the conditional (inner ids `n0`/`n1` renamed `b-n0`/`b-n1` by the compiler).
fn branch_after_upstream_wf(
    policy: workflow_metadata::OnFailurePolicy,
) -> (WorkflowTemplate, Vec<TaskTemplate>) {
    let inc = calc_task("inc", &[("x", int_t())], 0, None);
    let slow = calc_task("slow", &[("x", int_t())], 0, None);
    let (wf, _) = branch_wf(false);
    let mut branch = wf.nodes[0].clone();
    let Some(node::Target::BranchNode(b)) = &mut branch.target else {
        unreachable!()
    };
    let if_else = b.if_else.as_deref_mut().unwrap();
    let mut then_node = task_node("n0", "inc", vec![bind("x", promise("n0", "o0"))]);
    then_node.upstream_node_ids = vec!["n0".into()];
    let mut else_node = task_node("n1", "inc", vec![bind("x", promise("n0", "o0"))]);
    else_node.upstream_node_ids = vec!["n0".into()];
    if_else.case.as_mut().unwrap().then_node = Some(Box::new(then_node));
    if_else.default = Some(if_else_block::Default::ElseNode(Box::new(else_node)));
    let upstream = task_node("n0", "slow", vec![bind("x", promise("start-node", "x"))]);
    let mut wf = workflow(
        "br-up",
        &[("x", int_t())],
        vec![upstream, branch],
        vec![bind("o", promise("b", "o0"))],
        &[("o", int_t())],
    );
    wf.metadata = Some(WorkflowMetadata {
        on_failure: policy as i32,
        ..Default::default()
    });
    (wf, vec![inc, slow])
}

#[tokio::test]
async fn branch_taken_node_waits_for_its_upstream_nodes() {
    use workflow_metadata::OnFailurePolicy as F;
    let env = env();
    env.backend.set(
        "inc",
        Behavior {
            add: 100,
            ..Default::default()
        },
    );
    // The upstream task is still running when the branch decides.
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_millis(300),
            add: 10,
            ..Default::default()
        },
    );
    let (wf, tasks) = branch_after_upstream_wf(F::FailImmediately);
    let compiled = compile(&wf, &[], &tasks);
    for (name, x, want) in [("bu-big", 7, 117), ("bu-small", 2, 112)] {
        let phase = run(&env, request(name, compiled.clone(), &[("x", int_lit(x))])).await;
        assert_eq!(
            phase,
            WorkflowPhase::Succeeded,
            "{name}: {:?}",
            env.sink.workflow_events(name).last()
        );
        assert_eq!(
            as_int(&wf_output(&env, name).await.literals["o"]),
            Some(want)
        );
    }
    // The taken node read n0's output: it started once, after n0.
    assert_eq!(env.backend.starts_of("b-0-b-n0"), 1);
    assert_eq!(env.backend.starts_of("b-0-b-n1"), 1);

    // The upstream fails while the taken node waits: the workflow fails with its error (it
    // neither hangs nor runs the taken node), under both failure policies.
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_millis(300),
            fail_times: 1,
            fail_kind: 1,
            ..Default::default()
        },
    );
    for (name, policy) in [
        ("bu-fi", F::FailImmediately),
        ("bu-fa", F::FailAfterExecutableNodesComplete),
    ] {
        let (wf, tasks) = branch_after_upstream_wf(policy);
        let compiled = compile(&wf, &[], &tasks);
        assert_eq!(
            run(&env, request(name, compiled, &[("x", int_lit(7))])).await,
            WorkflowPhase::Failed,
            "{name}"
        );
        assert_eq!(wf_error(&env, name).message, "attempt 0 failed", "{name}");
        assert!(
            env.sink
                .node_events(name)
                .iter()
                .all(|e| e.spec_node_id != "b-n0"),
            "{name}: the taken node never started"
        );
    }
}

#[tokio::test]
async fn branch_taken_node_still_waits_for_its_upstream_after_a_restart() {
    use workflow_metadata::OnFailurePolicy as F;
    let env = env();
    env.backend.set(
        "inc",
        Behavior {
            add: 100,
            ..Default::default()
        },
    );
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_millis(800),
            add: 10,
            ..Default::default()
        },
    );
    let (wf, tasks) = branch_after_upstream_wf(F::FailImmediately);
    let req = request("bu-crash", compile(&wf, &[], &tasks), &[("x", int_lit(7))]);
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    // Crash once the branch has decided (journaled) while n0 still runs.
    let key = ExecKey {
        project: "p".into(),
        domain: "d".into(),
        name: "bu-crash".into(),
    };
    for _ in 0..200 {
        if env
            .sink
            .node_record(&key, "b")
            .is_some_and(|r| !r.branch_taken.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(env.backend.starts_of("n0"), 1);
    env.engine.crash();
    let journal = env.sink.snapshot();
    let engine2 = new_engine(&env.blob, &journal, &env.backend);
    assert_eq!(engine2.resume_all().await.unwrap(), 1);
    let phase = tokio::time::timeout(Duration::from_secs(10), engine2.wait(&id))
        .await
        .unwrap();
    let last = journal.workflow_events("bu-crash").last().cloned();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded), "{last:?}");
    assert_eq!(env.backend.starts_of("b-0-b-n0"), 1);
    let out = reported_outputs(&env.blob, &last.expect("a workflow event")).await;
    assert_eq!(as_int(&out.literals["o"]), Some(117));
}

#[tokio::test]
async fn subworkflow_nested_ids_and_outputs() {
    let env = env();
    env.backend.set(
        "inc",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let (mut sub, tasks) = chain(2);
    sub.id = Some(ident(ResourceType::Workflow, "sub"));
    let outer_node = Node {
        id: "s".into(),
        inputs: vec![bind("x", promise("start-node", "x"))],
        target: Some(node::Target::WorkflowNode(WorkflowNode {
            reference: Some(workflow_node::Reference::SubWorkflowRef(ident(
                ResourceType::Workflow,
                "sub",
            ))),
        })),
        ..Default::default()
    };
    let after = task_node("after", "inc", vec![bind("x", promise("s", "o"))]);
    let wf = workflow(
        "outer",
        &[("x", int_t())],
        vec![outer_node, after],
        vec![bind("o", promise("after", "o0"))],
        &[("o", int_t())],
    );
    let compiled = compile(&wf, &[sub], &tasks);
    assert_eq!(
        run(&env, request("sub1", compiled, &[("x", int_lit(0))])).await,
        WorkflowPhase::Succeeded
    );
    assert_eq!(
        as_int(&wf_output(&env, "sub1").await.literals["o"]),
        Some(3)
    );
    let evs = env.sink.node_events("sub1");
    let parent = evs
        .iter()
        .find(|e| e.id.as_ref().unwrap().node_id == "s")
        .unwrap();
    assert!(parent.is_parent);
    let child = evs.iter().find(|e| e.spec_node_id == "n1").unwrap();
    assert_eq!(child.id.as_ref().unwrap().node_id, "s-0-n1");
    assert_eq!(child.parent_node_metadata.as_ref().unwrap().node_id, "s");
    assert!(
        env.blob
            .head("metadata/p-d-sub1/s/data/0/n1/0/outputs.pb")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        env.blob
            .head("metadata/p-d-sub1/s/data/0/outputs.pb")
            .await
            .unwrap()
            .is_some()
    );
}

fn single(task: TaskTemplate) -> CompiledWorkflowClosure {
    let name = task.id.as_ref().unwrap().name.clone();
    let wf = workflow(
        "single",
        &[("x", int_t())],
        vec![task_node(
            "n0",
            &name,
            vec![bind("x", promise("start-node", "x"))],
        )],
        vec![bind("o", promise("n0", "o0"))],
        &[("o", int_t())],
    );
    compile(&wf, &[], &[task])
}

#[tokio::test]
async fn retries_use_user_and_system_budgets() {
    let env = env();
    // Recoverable user error twice, retries=2: third attempt succeeds.
    env.backend.set(
        "flaky",
        Behavior {
            fail_times: 2,
            fail_kind: 1,
            retryable: true,
            ..Default::default()
        },
    );
    let c = single(calc_task("flaky", &[("x", int_t())], 2, None));
    assert_eq!(
        run(&env, request("r-user", c, &[("x", int_lit(1))])).await,
        WorkflowPhase::Succeeded
    );
    assert_eq!(env.backend.starts_of("n0"), 3);
    let attempts: Vec<u32> = env
        .sink
        .task_events("r-user")
        .iter()
        .map(|e| e.retry_attempt)
        .collect();
    assert_eq!(*attempts.iter().max().unwrap(), 2);
    // Node stayed RUNNING through retries (no node event per retry).
    use node_execution::Phase as P;
    assert_eq!(
        node_phases(&env, "r-user", "n0"),
        vec![P::Queued as i32, P::Running as i32, P::Succeeded as i32]
    );

    // Retryable user errors beyond the budget: RetriesExhausted.
    let env = self::env();
    env.backend.set(
        "bad",
        Behavior {
            fail_times: 10,
            fail_kind: 1,
            retryable: true,
            ..Default::default()
        },
    );
    let c = single(calc_task("bad", &[("x", int_t())], 1, None));
    assert_eq!(
        run(&env, request("r-exh", c, &[("x", int_lit(1))])).await,
        WorkflowPhase::Failed
    );
    assert_eq!(env.backend.starts_of("n0"), 2);
    let err = wf_error(&env, "r-exh");
    assert_eq!(err.code, "RetriesExhausted|Boom");
    assert!(
        err.message
            .contains("[2/2] currentAttempt done. Last Error: USER::attempt 1 failed"),
        "{}",
        err.message
    );

    // System errors: their own budget (3 retries), even with retries=0.
    let env = self::env();
    env.backend.set(
        "sys",
        Behavior {
            fail_times: 2,
            fail_kind: 2,
            retryable: true,
            ..Default::default()
        },
    );
    let c = single(calc_task("sys", &[("x", int_t())], 0, None));
    assert_eq!(
        run(&env, request("r-sys", c, &[("x", int_lit(1))])).await,
        WorkflowPhase::Succeeded
    );
    assert_eq!(env.backend.starts_of("n0"), 3);
    let env = self::env();
    env.backend.set(
        "sys",
        Behavior {
            fail_times: 10,
            fail_kind: 2,
            retryable: true,
            ..Default::default()
        },
    );
    let c = single(calc_task("sys", &[("x", int_t())], 5, None));
    assert_eq!(
        run(&env, request("r-sys2", c, &[("x", int_lit(1))])).await,
        WorkflowPhase::Failed
    );
    assert_eq!(env.backend.starts_of("n0"), 4);

    // Non-retryable user error: one attempt, message reaches the workflow error.
    let env = self::env();
    env.backend.set(
        "fatal",
        Behavior {
            fail_times: 10,
            fail_kind: 1,
            retryable: false,
            ..Default::default()
        },
    );
    let c = single(calc_task("fatal", &[("x", int_t())], 3, None));
    assert_eq!(
        run(&env, request("r-fatal", c, &[("x", int_lit(1))])).await,
        WorkflowPhase::Failed
    );
    assert_eq!(env.backend.starts_of("n0"), 1);
    assert_eq!(wf_error(&env, "r-fatal").message, "attempt 0 failed");
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_is_a_retryable_user_error() {
    let env = virtual_env();
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_secs(30),
            ..Default::default()
        },
    );
    let c = single(calc_task(
        "slow",
        &[("x", int_t())],
        1,
        Some(Duration::from_millis(150)),
    ));
    // The attempts sleep 30 s, far longer than the timeout: failing at all means they timed
    // out (in virtual time: nothing waits for real).
    assert_eq!(
        run_virtual(&env, request("t1", c, &[("x", int_lit(1))])).await,
        WorkflowPhase::Failed
    );
    assert_eq!(env.backend.starts_of("n0"), 2);
    assert!(env.backend.aborts.lock().unwrap().len() >= 2);
    let err = wf_error(&env, "t1");
    assert_eq!(err.code, "RetriesExhausted|TimeoutExpired");
}

/// An hour-long task timeout, tested in virtual time: each attempt is aborted an hour after
/// it started, by the engine's clock, and the events say so.
#[tokio::test(start_paused = true)]
async fn an_hour_long_task_timeout_fires_after_an_hour_of_virtual_time() {
    let env = virtual_env();
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_secs(24 * 3600),
            ..Default::default()
        },
    );
    let hour = Duration::from_secs(3600);
    let c = single(calc_task("slow", &[("x", int_t())], 1, Some(hour)));
    assert_eq!(
        run_virtual(&env, request("t-hour", c, &[("x", int_lit(1))])).await,
        WorkflowPhase::Failed
    );
    assert_eq!(env.backend.starts_of("n0"), 2);
    let err = wf_error(&env, "t-hour");
    assert_eq!(err.code, "RetriesExhausted|TimeoutExpired");
    assert!(err.message.contains("[1h0m0s]"), "{err:?}");
    // Each attempt: RUNNING, then FAILED one hour later.
    let us = |t: &Option<pbjson_types::Timestamp>| {
        let t = t.as_ref().unwrap();
        t.seconds * 1_000_000 + i64::from(t.nanos) / 1000
    };
    let events = env.sink.task_events("t-hour");
    for attempt in 0..2 {
        let at = |phase: task_execution::Phase| {
            events
                .iter()
                .find(|e| e.retry_attempt == attempt && e.phase == phase as i32)
                .map(|e| us(&e.occurred_at))
                .unwrap_or_else(|| panic!("no {phase:?} event of attempt {attempt}"))
        };
        let ran = at(task_execution::Phase::Failed) - at(task_execution::Phase::Running);
        assert_eq!(ran, 3_600_000_000, "attempt {attempt} ran {ran} µs");
    }
    let wf = env.sink.workflow_events("t-hour");
    let took = us(&wf.last().unwrap().occurred_at) - us(&wf[0].occurred_at);
    assert!(
        (7_200_000_000..7_300_000_000).contains(&took),
        "two attempts of an hour took {took} µs of the engine's time"
    );
}

fn two_parallel(
    policy: workflow_metadata::OnFailurePolicy,
    failure_node: bool,
) -> (WorkflowTemplate, Vec<TaskTemplate>) {
    let fast = calc_task("fastfail", &[("x", int_t())], 0, None);
    let slow = calc_task("slow", &[("x", int_t())], 0, None);
    let clean = calc_task("cleanup", &[("err", int_t())], 0, None);
    let mut wf = workflow(
        "par",
        &[("x", int_t())],
        vec![
            task_node("a", "fastfail", vec![bind("x", promise("start-node", "x"))]),
            task_node("b", "slow", vec![bind("x", promise("start-node", "x"))]),
        ],
        vec![],
        &[],
    );
    wf.metadata = Some(WorkflowMetadata {
        on_failure: policy as i32,
        ..Default::default()
    });
    if failure_node {
        let zero = BindingData {
            value: Some(binding_data::Value::Scalar(Scalar {
                value: Some(scalar::Value::Primitive(Primitive {
                    value: Some(primitive::Value::Integer(0)),
                })),
            })),
            ..Default::default()
        };
        wf.failure_node = Some(task_node("fn", "cleanup", vec![bind("err", zero)]));
    }
    (wf, vec![fast, slow, clean])
}

#[tokio::test]
async fn failure_policies() {
    use workflow_metadata::OnFailurePolicy as F;
    let env = env();
    env.backend.set(
        "fastfail",
        Behavior {
            fail_times: 1,
            fail_kind: 1,
            ..Default::default()
        },
    );
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_millis(400),
            ..Default::default()
        },
    );
    let (wf, tasks) = two_parallel(F::FailImmediately, false);
    assert_eq!(
        run(
            &env,
            request("fi", compile(&wf, &[], &tasks), &[("x", int_lit(1))])
        )
        .await,
        WorkflowPhase::Failed
    );
    use node_execution::Phase as P;
    assert_eq!(
        node_phases(&env, "fi", "b").last(),
        Some(&(P::Aborted as i32))
    );
    assert!(
        env.backend
            .aborts
            .lock()
            .unwrap()
            .iter()
            .any(|k| k.node_id == "b")
    );

    let (wf, tasks) = two_parallel(F::FailAfterExecutableNodesComplete, false);
    assert_eq!(
        run(
            &env,
            request("fa", compile(&wf, &[], &tasks), &[("x", int_lit(1))])
        )
        .await,
        WorkflowPhase::Failed
    );
    assert_eq!(
        node_phases(&env, "fa", "b").last(),
        Some(&(P::Succeeded as i32))
    );
    assert_eq!(wf_error(&env, "fa").message, "attempt 0 failed");
}

#[tokio::test]
async fn failure_node_runs_then_workflow_fails() {
    use workflow_metadata::OnFailurePolicy as F;
    let env = env();
    env.backend.set(
        "fastfail",
        Behavior {
            fail_times: 1,
            fail_kind: 1,
            ..Default::default()
        },
    );
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_millis(50),
            ..Default::default()
        },
    );
    let (wf, tasks) = two_parallel(F::FailImmediately, true);
    assert_eq!(
        run(
            &env,
            request("fnode", compile(&wf, &[], &tasks), &[("x", int_lit(1))])
        )
        .await,
        WorkflowPhase::Failed
    );
    use node_execution::Phase as P;
    assert_eq!(
        node_phases(&env, "fnode", "fn").last(),
        Some(&(P::Succeeded as i32))
    );
    let phases: Vec<i32> = env
        .sink
        .workflow_events("fnode")
        .iter()
        .map(|e| e.phase)
        .collect();
    use workflow_execution::Phase as W;
    assert_eq!(
        phases,
        vec![W::Running as i32, W::Failing as i32, W::Failed as i32]
    );
    assert_eq!(wf_error(&env, "fnode").message, "attempt 0 failed");
    // The failure node got the error as its `err` input.
    let inputs = LiteralMap::decode(
        env.blob
            .get("metadata/p-d-fnode/fn/data/inputs.pb")
            .await
            .unwrap(),
    )
    .unwrap();
    let Some(literal::Value::Scalar(s)) = &inputs.literals["err"].value else {
        panic!()
    };
    let Some(scalar::Value::Union(u)) = &s.value else {
        panic!("{s:?}")
    };
    let Some(literal::Value::Scalar(e)) = &u.value.as_ref().unwrap().value else {
        panic!()
    };
    let Some(scalar::Value::Error(e)) = &e.value else {
        panic!()
    };
    assert_eq!(e.message, "attempt 0 failed");
}

#[tokio::test]
async fn abort_stops_running_attempts() {
    let env = env();
    env.backend.set(
        "slow",
        Behavior {
            sleep: Duration::from_secs(30),
            ..Default::default()
        },
    );
    let c = single(calc_task("slow", &[("x", int_t())], 0, None));
    let req = request("ab", c, &[("x", int_lit(1))]);
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.engine.abort(&id, "user asked").unwrap();
    assert_eq!(env.engine.wait(&id).await, Some(WorkflowPhase::Aborted));
    assert_eq!(env.backend.aborts.lock().unwrap().len(), 1);
    use node_execution::Phase as P;
    let evs = env.sink.node_events("ab");
    let last = evs
        .iter()
        .rev()
        .find(|e| e.id.as_ref().unwrap().node_id == "n0")
        .unwrap();
    assert_eq!(last.phase, P::Aborted as i32);
    assert!(
        matches!(&last.output_result, Some(flyteidl::event::node_execution_event::OutputResult::Error(e)) if e.message == "user asked")
    );
    assert!(env.engine.abort(&id, "again").is_err());
}

#[tokio::test]
async fn resume_after_crash_reruns_nothing_that_succeeded() {
    let env = env();
    env.backend.set(
        "inc",
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
    let inc = calc_task("inc", &[("x", int_t())], 0, None);
    let slow = calc_task("slow", &[("x", int_t())], 0, None);
    let wf = workflow(
        "crash",
        &[("x", int_t())],
        vec![
            task_node("n0", "inc", vec![bind("x", promise("start-node", "x"))]),
            task_node("n1", "slow", vec![bind("x", promise("n0", "o0"))]),
            task_node("n2", "inc", vec![bind("x", promise("n1", "o0"))]),
        ],
        vec![bind("o", promise("n2", "o0"))],
        &[("o", int_t())],
    );
    let req = request("cr", compile(&wf, &[], &[inc, slow]), &[("x", int_lit(0))]);
    let id = req.id.clone();
    env.engine.start_execution(req).await.unwrap();
    // Wait until n1 is running, then crash.
    for _ in 0..200 {
        if env.backend.starts_of("n1") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.engine.crash();
    let journal = env.sink.snapshot();
    // A new process: same blob dir, the journal as committed.
    let engine2 = new_engine(&env.blob, &journal, &env.backend);
    assert_eq!(engine2.resume_all().await.unwrap(), 1);
    let phase = tokio::time::timeout(Duration::from_secs(10), engine2.wait(&id))
        .await
        .unwrap();
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));
    assert_eq!(env.backend.starts_of("n0"), 1, "a succeeded node ran again");
    assert_eq!(env.backend.starts_of("n1"), 2);
    assert_eq!(env.backend.starts_of("n2"), 1);
    // The stale attempt was aborted and the new one is attempt 1.
    assert!(
        env.backend
            .aborts
            .lock()
            .unwrap()
            .iter()
            .any(|k| k.node_id == "n1" && k.retry_attempt == 0)
    );
    let evs = journal.workflow_events("cr");
    let out = reported_outputs(&env.blob, evs.last().unwrap()).await;
    assert_eq!(as_int(&out.literals["o"]), Some(12));
}

#[tokio::test]
async fn attribute_paths_and_map_bindings() {
    let env = env();
    env.backend.set(
        "inc",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let inc = calc_task("inc", &[("x", int_t())], 0, None);
    let sum = calc_task(
        "summap",
        &[(
            "m",
            LiteralType {
                r#type: Some(Type::MapValueType(Box::new(int_t()))),
                ..Default::default()
            },
        )],
        0,
        None,
    );
    env.backend.set("summap", Behavior::default());
    // Workflow input: a list of ints; n0 takes element [1] through an attribute path.
    let mut p = OutputReference {
        node_id: "start-node".into(),
        var: "xs".into(),
        ..Default::default()
    };
    p.attr_path = vec![PromiseAttribute {
        value: Some(promise_attribute::Value::IntValue(1)),
    }];
    let n0 = task_node(
        "n0",
        "inc",
        vec![bind(
            "x",
            BindingData {
                value: Some(binding_data::Value::Promise(p)),
                ..Default::default()
            },
        )],
    );
    let map = BindingData {
        value: Some(binding_data::Value::Map(BindingDataMap {
            bindings: BTreeMap::from([
                ("a".to_string(), promise("n0", "o0")),
                (
                    "b".to_string(),
                    BindingData {
                        value: Some(binding_data::Value::Scalar(Scalar {
                            value: Some(scalar::Value::Primitive(Primitive {
                                value: Some(primitive::Value::Integer(100)),
                            })),
                        })),
                        ..Default::default()
                    },
                ),
            ]),
        })),
        ..Default::default()
    };
    let n1 = task_node("n1", "summap", vec![bind("m", map)]);
    let wf = workflow(
        "attr",
        &[("xs", list_t(int_t()))],
        vec![n0, n1],
        vec![bind("o", promise("n1", "o0"))],
        &[("o", int_t())],
    );
    let xs = Literal {
        value: Some(literal::Value::Collection(LiteralCollection {
            literals: vec![int_lit(5), int_lit(7)],
        })),
        ..Default::default()
    };
    let compiled = compile(&wf, &[], &[inc, sum]);
    assert_eq!(
        run(&env, request("attr1", compiled, &[("xs", xs)])).await,
        WorkflowPhase::Succeeded
    );
    // n0 = 7 + 1; n1 sums its map input? the calc backend sums top-level ints only.
    let key = "metadata/p-d-attr1/n1/data/inputs.pb";
    let inputs = LiteralMap::decode(env.blob.get(key).await.unwrap()).unwrap();
    let Some(literal::Value::Map(m)) = &inputs.literals["m"].value else {
        panic!()
    };
    assert_eq!(as_int(&m.literals["a"]), Some(8));
    assert_eq!(as_int(&m.literals["b"]), Some(100));
}

/// A size check, not a benchmark: a 500-node chain and a 2,000-node fan-out finish, and the
/// per-node engine cost is printed (`--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_chain_and_fan_out_finish() {
    let env = env();
    env.backend.set(
        "inc",
        Behavior {
            add: 1,
            ..Default::default()
        },
    );
    let (wf, tasks) = chain(500);
    let t = std::time::Instant::now();
    let phase = run(
        &env,
        request("big-chain", compile(&wf, &[], &tasks), &[("x", int_lit(0))]),
    )
    .await;
    assert_eq!(phase, WorkflowPhase::Succeeded);
    let chain_time = t.elapsed();
    assert_eq!(
        as_int(&wf_output(&env, "big-chain").await.literals["o"]),
        Some(500)
    );

    let n = 2000;
    env.backend.set("sum", Behavior::default());
    let inc = calc_task("inc", &[("x", int_t())], 0, None);
    let sum = calc_task("sum", &[("xs", list_t(int_t()))], 0, None);
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            task_node(
                &format!("f{i}"),
                "inc",
                vec![bind("x", promise("start-node", "x"))],
            )
        })
        .collect();
    let coll = BindingData {
        value: Some(binding_data::Value::Collection(BindingDataCollection {
            bindings: (0..n).map(|i| promise(&format!("f{i}"), "o0")).collect(),
        })),
        ..Default::default()
    };
    nodes.push(task_node("total", "sum", vec![bind("xs", coll)]));
    let wf = workflow(
        "fan",
        &[("x", int_t())],
        nodes,
        vec![bind("o", promise("total", "o0"))],
        &[("o", int_t())],
    );
    let compiled = compile(&wf, &[], &[inc, sum]);
    let t = std::time::Instant::now();
    assert_eq!(
        run(&env, request("big-fan", compiled, &[("x", int_lit(1))])).await,
        WorkflowPhase::Succeeded
    );
    let fan_time = t.elapsed();
    assert_eq!(
        as_int(&wf_output(&env, "big-fan").await.literals["o"]),
        Some(2 * n as i64)
    );
    println!(
        "chain(500): {chain_time:?} ({:?}/node); fan-out({n}): {fan_time:?} ({:?}/node); batches: {}",
        chain_time / 500,
        fan_time / n as u32,
        env.sink.batches().len()
    );
}
