//! Gate nodes, launch-plan nodes, recovery and the entity resolver with the real store, the
//! admin's engine services (signals, child executions, recovery lookups) and the real engine,
//! through the gRPC API. Tasks run on an in-test backend that counts its starts.

#![allow(deprecated)]

mod admin_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admin_support::*;
use async_trait::async_trait;
use bytes::Bytes;
use flyte_admin::fidelity;
use flyte_admin::launcher::with_engine;
use flyte_admin::service::admin::admin_service;
use flyte_admin::service::signal::signal_service;
use flyte_admin::{AdminConfig, AdminState};
use flyte_blob::BlobStore;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use flyte_engine::{Engine, WorkflowPhase};
use flyteidl::admin::*;
use flyteidl::core::{
    self, ArrayNode, DynamicJobSpec, GateNode, Identifier, Literal, LiteralMap, LiteralType, Node,
    NodeMetadata, Primitive, ResourceType, Scalar, SignalIdentifier, TaskNode,
    WorkflowExecutionIdentifier, WorkflowMetadata, WorkflowNode, WorkflowTemplate, gate_node,
    literal, literal_type, node, primitive, scalar, task_node, workflow_node,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use flyteidl::service::signal_service_client::SignalServiceClient;
use prost::Message;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tower::Layer;

// ------------------------------------------------------------------ backend

/// `calc` tasks: `b = a + 1`; task `fragile` fails (not retryable) while `fail` is set, and so
/// does index 2 of a map over task `mapinc`; task `dyn` writes a futures file calling the
/// registered tasks `inc` (with `a = a * 10`) then `fragile`, not carried in the spec.
#[derive(Default)]
struct Calc {
    blob: Mutex<Option<BlobStore>>,
    fail: AtomicBool,
    starts: Mutex<HashMap<String, usize>>,
}

impl Calc {
    fn starts(&self, task: &str) -> usize {
        *self.starts.lock().unwrap().get(task).unwrap_or(&0)
    }
}

fn int_lit(v: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(v)),
            })),
        }))),
        ..Default::default()
    }
}

fn bool_lit(v: bool) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Boolean(v)),
            })),
        }))),
        ..Default::default()
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
impl TaskBackend for Calc {
    fn name(&self) -> &'static str {
        "calc"
    }
    fn handles(&self, t: &core::TaskTemplate) -> bool {
        t.r#type == "calc"
    }
    async fn start(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<(), BackendError> {
        let name = attempt.template.id.as_ref().unwrap().name.clone();
        *self.starts.lock().unwrap().entry(name.clone()).or_default() += 1;
        let blob = self.blob.lock().unwrap().clone().unwrap();
        let fail = self.fail.load(Ordering::SeqCst)
            && (name == "fragile" || (name == "mapinc" && attempt.array_index == Some(2)));
        tokio::spawn(async move {
            let key = attempt.key.clone();
            if fail {
                let _ = updates.send((
                    key,
                    AttemptUpdate::Finished(AttemptOutcome::Failed {
                        error: core::ExecutionError {
                            code: "Boom".into(),
                            message: format!("{name} failed"),
                            kind: core::execution_error::ErrorKind::User as i32,
                            ..Default::default()
                        },
                        retryable: false,
                        logs: vec![],
                    }),
                ));
                return;
            }
            let inputs = blob.path_from_native_url(&attempt.paths.inputs).unwrap();
            let inputs = LiteralMap::decode(blob.get(&inputs).await.unwrap()).unwrap();
            let a = inputs.literals.get("a").map(as_int).unwrap_or(0);
            let out = blob
                .path_from_native_url(&attempt.paths.output_prefix)
                .unwrap();
            if name == "dyn" {
                let spec = DynamicJobSpec {
                    nodes: vec![
                        calc_node("dn0", "inc", bind("a", scalar_int(a * 10))),
                        calc_node("dn1", "fragile", bind("a", promise("dn0", "b"))),
                    ],
                    min_successes: 2,
                    outputs: vec![bind("b", promise("dn1", "b"))],
                    ..Default::default()
                };
                blob.put(
                    &format!("{out}/futures.pb"),
                    Bytes::from(spec.encode_to_vec()),
                )
                .await
                .unwrap();
            } else {
                let outputs = LiteralMap {
                    literals: [("b".to_string(), int_lit(a + 1))].into(),
                };
                blob.put(
                    &format!("{out}/outputs.pb"),
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
    async fn abort(&self, _key: &AttemptKey) {}
}

// ------------------------------------------------------------------ server

struct Env {
    admin: AdminServiceClient<Channel>,
    signals: SignalServiceClient<Channel>,
    engine: Arc<Engine>,
    calc: Arc<Calc>,
    _dir: Arc<tempfile::TempDir>,
}

async fn start(dir: Arc<tempfile::TempDir>, calc: Arc<Calc>) -> Env {
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
    *calc.blob.lock().unwrap() = Some(blob.clone());
    let config = AdminConfig::default();
    let max = config.max_request_bytes;
    let state = AdminState {
        store,
        blob: blob.clone(),
        config: Arc::new(config),
        launcher: None,
    };
    let backends: Vec<Arc<dyn TaskBackend>> =
        vec![Arc::new(BuiltinBackend::new(blob)), calc.clone()];
    let (state, engine) = with_engine(state, admin_support::engine_parts(backends));
    engine.resume_all().await.unwrap();
    let admin = fidelity::layer(max).layer(admin_service(state.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(admin)
            .add_service(signal_service(state))
            .serve_with_incoming(incoming),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Env {
        admin: AdminServiceClient::new(channel.clone()),
        signals: SignalServiceClient::new(channel),
        engine,
        calc,
        _dir: dir,
    }
}

async fn env() -> Env {
    let env = start(
        Arc::new(tempfile::tempdir().unwrap()),
        Arc::new(Calc::default()),
    )
    .await;
    let mut env = env;
    register_tasks(&mut env.admin).await;
    env
}

// ------------------------------------------------------------------ builders

fn int_t() -> LiteralType {
    int()
}

fn list_t(t: LiteralType) -> LiteralType {
    LiteralType {
        r#type: Some(literal_type::Type::CollectionType(Box::new(t))),
        ..Default::default()
    }
}

fn scalar_int(v: i64) -> core::BindingData {
    core::BindingData {
        value: Some(core::binding_data::Value::Scalar(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(v)),
            })),
        })),
        ..Default::default()
    }
}

fn task_id(name: &str) -> Identifier {
    id(ResourceType::Task, name, "v1")
}

fn calc_node(node_id: &str, task: &str, input: core::Binding) -> Node {
    Node {
        id: node_id.into(),
        inputs: vec![input],
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(task_id(task))),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn gate(node_id: &str, c: gate_node::Condition, inputs: Vec<core::Binding>) -> Node {
    Node {
        id: node_id.into(),
        inputs,
        target: Some(node::Target::GateNode(GateNode { condition: Some(c) })),
        ..Default::default()
    }
}

fn approve(signal: &str) -> gate_node::Condition {
    gate_node::Condition::Approve(core::ApproveCondition {
        signal_id: signal.into(),
    })
}

fn signal(signal: &str, ty: LiteralType, out: &str) -> gate_node::Condition {
    gate_node::Condition::Signal(core::SignalCondition {
        signal_id: signal.into(),
        r#type: Some(ty),
        output_variable_name: out.into(),
    })
}

fn sleep(secs: i64) -> gate_node::Condition {
    gate_node::Condition::Sleep(core::SleepCondition {
        duration: Some(pbjson_types::Duration {
            seconds: secs,
            nanos: 0,
        }),
    })
}

fn lp_node(node_id: &str, lp: &Identifier, x: core::BindingData) -> Node {
    Node {
        id: node_id.into(),
        inputs: vec![bind("x", x)],
        target: Some(node::Target::WorkflowNode(WorkflowNode {
            reference: Some(workflow_node::Reference::LaunchplanRef(lp.clone())),
        })),
        ..Default::default()
    }
}

async fn register_tasks(c: &mut AdminServiceClient<Channel>) {
    for (name, list) in [
        ("inc", false),
        ("fragile", false),
        ("dyn", false),
        ("mapinc", true),
    ] {
        let mut t = task_request(name, "v1");
        let template = t.spec.as_mut().unwrap().template.as_mut().unwrap();
        template.r#type = "calc".into();
        template.target = None;
        if list {
            template.interface = Some(iface(&[("a", list_t(int_t()))], &[("b", list_t(int_t()))]));
        }
        c.create_task(t).await.unwrap();
    }
}

/// Registers workflow `name` (`x: int -> o: int`, `o` from `out`) and its launch plan.
async fn register_wf(
    c: &mut AdminServiceClient<Channel>,
    name: &str,
    nodes: Vec<Node>,
    out: core::BindingData,
) -> Identifier {
    register_wf_typed(c, name, nodes, out, int_t(), int_t()).await
}

async fn register_wf_typed(
    c: &mut AdminServiceClient<Channel>,
    name: &str,
    nodes: Vec<Node>,
    out: core::BindingData,
    x_type: LiteralType,
    o_type: LiteralType,
) -> Identifier {
    let wf_id = id(ResourceType::Workflow, name, "v1");
    let template = WorkflowTemplate {
        id: Some(wf_id.clone()),
        metadata: Some(WorkflowMetadata::default()),
        interface: Some(iface(&[("x", x_type.clone())], &[("o", o_type)])),
        nodes,
        outputs: vec![bind("o", out)],
        ..Default::default()
    };
    c.create_workflow(WorkflowCreateRequest {
        id: Some(wf_id.clone()),
        spec: Some(WorkflowSpec {
            template: Some(template),
            ..Default::default()
        }),
    })
    .await
    .unwrap_or_else(|e| panic!("register {name}: {e}"));
    let mut lp = launch_plan_request(name, "v1", &wf_id);
    if let Some(p) = lp
        .spec
        .as_mut()
        .and_then(|s| s.default_inputs.as_mut())
        .and_then(|d| d.parameters.get_mut("x"))
    {
        p.var.as_mut().unwrap().r#type = Some(x_type);
    }
    let lp_id = lp.id.clone().unwrap();
    c.create_launch_plan(lp).await.unwrap();
    lp_id
}

fn exec_id(name: &str) -> WorkflowExecutionIdentifier {
    WorkflowExecutionIdentifier {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        ..Default::default()
    }
}

async fn launch_with(env: &mut Env, lp: &Identifier, name: &str, x: Literal) {
    env.admin
        .create_execution(ExecutionCreateRequest {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            name: name.into(),
            spec: Some(ExecutionSpec {
                launch_plan: Some(lp.clone()),
                ..Default::default()
            }),
            inputs: Some(LiteralMap {
                literals: [("x".to_string(), x)].into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn launch(env: &mut Env, lp: &Identifier, name: &str, x: i64) {
    launch_with(env, lp, name, int_lit(x)).await
}

async fn wait(env: &Env, name: &str) -> WorkflowPhase {
    tokio::time::timeout(Duration::from_secs(60), env.engine.wait(&exec_id(name)))
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish"))
        .unwrap_or_else(|| panic!("{name}: no final phase"))
}

async fn execution(env: &mut Env, name: &str) -> Execution {
    env.admin
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(exec_id(name)),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn output(env: &mut Env, name: &str) -> i64 {
    let data = env
        .admin
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(exec_id(name)),
        })
        .await
        .unwrap()
        .into_inner();
    as_int(
        data.full_outputs
            .unwrap()
            .literals
            .get("o")
            .expect("output o"),
    )
}

fn error_of(e: &Execution) -> core::ExecutionError {
    match &e.closure.as_ref().unwrap().output_result {
        Some(execution_closure::OutputResult::Error(e)) => e.clone(),
        other => panic!("no error: {other:?}"),
    }
}

async fn nodes(env: &mut Env, name: &str, parent: &str) -> HashMap<String, NodeExecution> {
    env.admin
        .list_node_executions(NodeExecutionListRequest {
            workflow_execution_id: Some(exec_id(name)),
            limit: 1000,
            unique_parent_id: parent.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .node_executions
        .into_iter()
        .map(|n| (n.id.clone().unwrap().node_id, n))
        .collect()
}

fn phase(n: &NodeExecution) -> core::node_execution::Phase {
    core::node_execution::Phase::try_from(n.closure.as_ref().unwrap().phase).unwrap()
}

fn sid(exec: &str, signal: &str) -> Option<SignalIdentifier> {
    Some(SignalIdentifier {
        signal_id: signal.into(),
        execution_id: Some(exec_id(exec)),
    })
}

/// Waits until the engine has created signal `signal` of `exec` (the gate asked for it).
async fn wait_for_signal(env: &mut Env, exec: &str, signal: &str) {
    for _ in 0..400 {
        // NOT_FOUND until the execution (a child) exists.
        let list = env
            .signals
            .list_signals(SignalListRequest {
                workflow_execution_id: Some(exec_id(exec)),
                limit: 100,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
            .unwrap_or_default();
        if list
            .signals
            .iter()
            .any(|s| s.id.as_ref().unwrap().signal_id == signal)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("signal {signal} of {exec} was never created");
}

async fn set_signal(env: &mut Env, exec: &str, signal: &str, value: Literal) {
    env.signals
        .set_signal(SignalSetRequest {
            id: sid(exec, signal),
            value: Some(value),
        })
        .await
        .unwrap();
}

// ------------------------------------------------------------------ gates

async fn approve_wf(env: &mut Env) -> Identifier {
    register_wf(
        &mut env.admin,
        "approve_wf",
        vec![
            calc_node("n0", "inc", bind("a", promise("start-node", "x"))),
            gate("n1", approve("ok"), vec![bind("b", promise("n0", "b"))]),
            calc_node("n2", "inc", bind("a", promise("n1", "b"))),
        ],
        promise("n2", "b"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_true_continues_with_the_inputs_and_false_fails() {
    let mut env = env().await;
    let lp = approve_wf(&mut env).await;

    launch(&mut env, &lp, "yes", 5).await;
    wait_for_signal(&mut env, "yes", "ok").await;
    assert!(env.engine.is_running(&exec_id("yes")));
    set_signal(&mut env, "yes", "ok", bool_lit(true)).await;
    assert_eq!(wait(&env, "yes").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&mut env, "yes").await, 7);
    let n = nodes(&mut env, "yes", "").await;
    assert_eq!(phase(&n["n1"]), core::node_execution::Phase::Succeeded);

    launch(&mut env, &lp, "no", 5).await;
    wait_for_signal(&mut env, "no", "ok").await;
    set_signal(&mut env, "no", "ok", bool_lit(false)).await;
    assert_eq!(wait(&env, "no").await, WorkflowPhase::Failed);
    let e = execution(&mut env, "no").await;
    let err = error_of(&e);
    assert!(err.code.contains("ReceivedRejectSignal"), "{err:?}");
    let n = nodes(&mut env, "no", "").await;
    assert_eq!(phase(&n["n1"]), core::node_execution::Phase::Failed);
    assert!(!n.contains_key("n2"));
    assert_eq!(env.calc.starts("inc"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_signals_set_later_or_before_the_gate_asks() {
    let mut env = env().await;
    let lp = register_wf(
        &mut env.admin,
        "signal_wf",
        vec![
            gate("s", sleep(1), vec![]),
            gate("n0", signal("y", int_t(), "y"), vec![]),
            calc_node("n1", "inc", bind("a", promise("n0", "y"))),
        ],
        promise("n1", "b"),
    )
    .await;
    // n0 waits for the sleep gate (declared upstream).
    // Set later: the gate is waiting, SetSignal wakes it.
    launch(&mut env, &lp, "later", 0).await;
    wait_for_signal(&mut env, "later", "y").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(env.engine.is_running(&exec_id("later")));
    set_signal(&mut env, "later", "y", int_lit(41)).await;
    assert_eq!(wait(&env, "later").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&mut env, "later").await, 42);

    // Wrong type: refused by SignalService, the gate keeps waiting.
    launch(&mut env, &lp, "before", 0).await;
    env.signals
        .get_or_create_signal(SignalGetOrCreateRequest {
            id: sid("before", "y"),
            r#type: Some(int_t()),
        })
        .await
        .unwrap();
    let bad = env
        .signals
        .set_signal(SignalSetRequest {
            id: sid("before", "y"),
            value: Some(bool_lit(true)),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    // Set before the engine asks (the sleep gate still runs): read when the gate starts.
    set_signal(&mut env, "before", "y", int_lit(9)).await;
    assert_eq!(wait(&env, "before").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&mut env, "before").await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_times_out_and_a_sleep_gate_sleeps() {
    let mut env = env().await;
    let mut waiting = gate("n0", signal("never", int_t(), "y"), vec![]);
    waiting.metadata = Some(NodeMetadata {
        name: "wait".into(),
        timeout: Some(pbjson_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    });
    let lp = register_wf(
        &mut env.admin,
        "timeout_wf",
        vec![
            waiting,
            calc_node("n1", "inc", bind("a", promise("n0", "y"))),
        ],
        promise("n1", "b"),
    )
    .await;
    launch(&mut env, &lp, "late", 0).await;
    assert_eq!(wait(&env, "late").await, WorkflowPhase::Failed);
    let n = nodes(&mut env, "late", "").await;
    assert_eq!(phase(&n["n0"]), core::node_execution::Phase::TimedOut);

    let lp = register_wf(
        &mut env.admin,
        "sleep_wf",
        vec![
            gate("n0", sleep(1), vec![]),
            calc_node("n1", "inc", bind("a", promise("start-node", "x"))),
        ],
        promise("n1", "b"),
    )
    .await;
    let t = std::time::Instant::now();
    launch(&mut env, &lp, "nap", 20).await;
    assert_eq!(wait(&env, "nap").await, WorkflowPhase::Succeeded);
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(output(&mut env, "nap").await, 21);
}

// ------------------------------------------------------------------ launch plans

/// `child`: `x -> inc -> fragile? -> o`; `parent`: a launch-plan node calling it, then `inc`.
async fn parent_and_child(env: &mut Env, child_nodes: Vec<Node>, out: &str) -> Identifier {
    let child = register_wf(&mut env.admin, "child", child_nodes, promise(out, "b")).await;
    register_wf(
        &mut env.admin,
        "parent",
        vec![
            lp_node("n0", &child, promise("start-node", "x")),
            calc_node("n1", "inc", bind("a", promise("n0", "o"))),
        ],
        promise("n1", "b"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_plan_node_runs_a_child_execution_and_takes_its_outputs() {
    let mut env = env().await;
    let lp = parent_and_child(
        &mut env,
        vec![
            calc_node("c0", "inc", bind("a", promise("start-node", "x"))),
            calc_node("c1", "fragile", bind("a", promise("c0", "b"))),
        ],
        "c1",
    )
    .await;
    launch(&mut env, &lp, "ok", 1).await;
    assert_eq!(wait(&env, "ok").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&mut env, "ok").await, 4);
    let n = nodes(&mut env, "ok", "").await;
    let child_id = match &n["n0"].closure.as_ref().unwrap().target_metadata {
        Some(node_execution_closure::TargetMetadata::WorkflowNodeMetadata(w)) => {
            w.execution_id.clone().unwrap()
        }
        other => panic!("no workflow node metadata: {other:?}"),
    };
    assert_eq!(child_id.name, "ok-n0-0");
    let child = execution(&mut env, "ok-n0-0").await;
    let meta = child.spec.as_ref().unwrap().metadata.clone().unwrap();
    assert_eq!(
        meta.mode,
        execution_metadata::ExecutionMode::ChildWorkflow as i32
    );
    assert_eq!(
        meta.parent_node_execution.unwrap().node_id,
        "n0".to_string()
    );
    assert_eq!(
        child.closure.unwrap().phase,
        core::workflow_execution::Phase::Succeeded as i32
    );

    // The child fails: so does the node, with the child's error.
    env.calc.fail.store(true, Ordering::SeqCst);
    launch(&mut env, &lp, "bad", 1).await;
    assert_eq!(wait(&env, "bad").await, WorkflowPhase::Failed);
    let err = error_of(&execution(&mut env, "bad").await);
    assert!(
        err.code.contains("RemoteChildWorkflowExecutionFailed")
            && err.message.contains("fragile failed"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_the_parent_aborts_the_child_and_a_restart_keeps_waiting_for_it() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let calc = Arc::new(Calc::default());
    let mut env = start(dir.clone(), calc.clone()).await;
    register_tasks(&mut env.admin).await;
    let lp = parent_and_child(
        &mut env,
        vec![
            gate("c0", signal("go", int_t(), "y"), vec![]),
            calc_node("c1", "inc", bind("a", promise("c0", "y"))),
        ],
        "c1",
    )
    .await;

    launch(&mut env, &lp, "stop", 1).await;
    wait_for_signal(&mut env, "stop-n0-0", "go").await;
    env.admin
        .terminate_execution(ExecutionTerminateRequest {
            id: Some(exec_id("stop")),
            cause: "enough".into(),
        })
        .await
        .unwrap();
    assert_eq!(wait(&env, "stop").await, WorkflowPhase::Aborted);
    assert_eq!(wait(&env, "stop-n0-0").await, WorkflowPhase::Aborted);

    // A restart while the child waits: both resume, the signal ends the child, then the parent.
    launch(&mut env, &lp, "crash", 1).await;
    wait_for_signal(&mut env, "crash-n0-0", "go").await;
    env.engine.crash();
    drop(env);
    let mut env = start(dir, calc).await;
    assert!(env.engine.is_running(&exec_id("crash")));
    set_signal(&mut env, "crash-n0-0", "go", int_lit(10)).await;
    assert_eq!(wait(&env, "crash").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&mut env, "crash").await, 12);
}

// ------------------------------------------------------------------ recovery

async fn recover(env: &mut Env, original: &str, name: &str) {
    env.admin
        .recover_execution(ExecutionRecoverRequest {
            id: Some(exec_id(original)),
            name: name.into(),
            metadata: None,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_reruns_only_what_failed() {
    let mut env = env().await;
    let lp = register_wf(
        &mut env.admin,
        "chain",
        vec![
            calc_node("n0", "inc", bind("a", promise("start-node", "x"))),
            calc_node("n1", "inc", bind("a", promise("n0", "b"))),
            calc_node("n2", "fragile", bind("a", promise("n1", "b"))),
            calc_node("n3", "inc", bind("a", promise("n2", "b"))),
        ],
        promise("n3", "b"),
    )
    .await;
    env.calc.fail.store(true, Ordering::SeqCst);
    launch(&mut env, &lp, "orig", 1).await;
    assert_eq!(wait(&env, "orig").await, WorkflowPhase::Failed);
    assert_eq!((env.calc.starts("inc"), env.calc.starts("fragile")), (2, 1));

    env.calc.fail.store(false, Ordering::SeqCst);
    recover(&mut env, "orig", "rec").await;
    assert_eq!(wait(&env, "rec").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&mut env, "rec").await, 5);
    // n0 and n1 were not run again.
    assert_eq!((env.calc.starts("inc"), env.calc.starts("fragile")), (3, 2));
    let n = nodes(&mut env, "rec", "").await;
    use core::node_execution::Phase as P;
    assert_eq!(phase(&n["n0"]), P::Recovered);
    assert_eq!(phase(&n["n1"]), P::Recovered);
    assert_eq!(phase(&n["n2"]), P::Succeeded);
    assert_eq!(phase(&n["n3"]), P::Succeeded);
    let data = env
        .admin
        .get_node_execution_data(NodeExecutionGetDataRequest {
            id: n["n1"].id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data.full_outputs.unwrap().literals["b"], int_lit(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_through_a_dynamic_node_and_a_map_node() {
    let mut env = env().await;
    use core::node_execution::Phase as P;
    // `dyn` (a = x) emits dn0 = inc(10 x) -> dn1 = fragile, registered tasks it does not
    // carry (found through the resolver).
    let lp = register_wf(
        &mut env.admin,
        "dyn_wf",
        vec![calc_node(
            "n0",
            "dyn",
            bind("a", promise("start-node", "x")),
        )],
        promise("n0", "b"),
    )
    .await;
    launch(&mut env, &lp, "dok", 2).await;
    assert_eq!(wait(&env, "dok").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&mut env, "dok").await, 22);

    env.calc.fail.store(true, Ordering::SeqCst);
    launch(&mut env, &lp, "dfail", 3).await;
    assert_eq!(wait(&env, "dfail").await, WorkflowPhase::Failed);
    let before = (env.calc.starts("dyn"), env.calc.starts("inc"));
    env.calc.fail.store(false, Ordering::SeqCst);
    recover(&mut env, "dfail", "drec").await;
    assert_eq!(wait(&env, "drec").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&mut env, "drec").await, 32);
    // Neither the dynamic task nor dn0 ran again; only the fragile node did.
    assert_eq!((env.calc.starts("dyn"), env.calc.starts("inc")), before);
    let children = nodes(&mut env, "drec", "n0").await;
    assert_eq!(
        phase(&children["n0-0-dn0"]),
        P::Recovered,
        "{:?}",
        children.keys()
    );
    assert_eq!(phase(&children["n0-0-dn1"]), P::Succeeded);

    // A map over `mapinc` whose index 2 fails: only index 2 runs again.
    let map_node = Node {
        id: "n0".into(),
        inputs: vec![bind("a", promise("start-node", "x"))],
        target: Some(node::Target::ArrayNode(Box::new(ArrayNode {
            node: Some(Box::new(calc_node(
                "n0",
                "mapinc",
                bind("a", promise("start-node", "x")),
            ))),
            ..Default::default()
        }))),
        ..Default::default()
    };
    let mlp = register_wf_typed(
        &mut env.admin,
        "map_wf",
        vec![map_node],
        promise("n0", "b"),
        list_t(int_t()),
        list_t(int_t()),
    )
    .await;
    let xs = Literal {
        value: Some(literal::Value::Collection(core::LiteralCollection {
            literals: (1..=4).map(int_lit).collect(),
        })),
        ..Default::default()
    };
    env.calc.fail.store(true, Ordering::SeqCst);
    launch_with(&mut env, &mlp, "mfail", xs).await;
    assert_eq!(wait(&env, "mfail").await, WorkflowPhase::Failed);
    assert_eq!(env.calc.starts("mapinc"), 4);
    env.calc.fail.store(false, Ordering::SeqCst);
    recover(&mut env, "mfail", "mrec").await;
    assert_eq!(wait(&env, "mrec").await, WorkflowPhase::Succeeded);
    assert_eq!(env.calc.starts("mapinc"), 5);
    let data = env
        .admin
        .get_execution_data(WorkflowExecutionGetDataRequest {
            id: Some(exec_id("mrec")),
        })
        .await
        .unwrap()
        .into_inner();
    let o = data.full_outputs.unwrap().literals["o"].clone();
    let Some(literal::Value::Collection(c)) = o.value else {
        panic!("not a list: {o:?}");
    };
    assert_eq!(
        c.literals.iter().map(as_int).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
}
