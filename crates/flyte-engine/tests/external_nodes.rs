//! Gate nodes, launch-plan nodes and recovery against in-memory implementations of the
//! engine's external services ([`flyte_engine::external`]), with in-engine `echo` tasks.

mod engine_support;
use engine_support::*;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::external::{
    ChildExecutions, ChildLaunch, ChildStatus, ExternalError, ExternalServices, RecoveredNode,
    RecoveredOutputs, RecoveryLookup, SignalStore, child_execution_id,
};
use flyte_engine::{
    Engine, EngineConfig, EngineDeps, ExecutionRequest, MemorySink, VirtualClock, WorkflowPhase,
};
use flyteidl::core::*;
use flyteidl::event::workflow_execution_event::OutputResult;
use prost::Message;

// ------------------------------------------------------------------ in-memory services

#[derive(Default)]
struct Services {
    engine: Mutex<Option<Engine>>,
    sink: Mutex<Option<Arc<MemorySink>>>,
    blob: Mutex<Option<BlobStore>>,
    /// (execution name, signal id) → value (None: created, unset).
    signals: Mutex<HashMap<(String, String), Option<Literal>>>,
    asked: Mutex<Vec<(String, String)>>,
    /// Launch plans children may run, by name.
    launch_plans: Mutex<HashMap<String, CompiledWorkflowClosure>>,
    aborted: Mutex<Vec<String>>,
    /// (original execution, node id) → what it did.
    recovered: Mutex<HashMap<(String, String), RecoveredNode>>,
}

impl Services {
    fn engine(&self) -> Engine {
        self.engine.lock().unwrap().clone().unwrap()
    }
    fn set(&self, exec: &str, signal: &str, v: Literal) {
        self.signals
            .lock()
            .unwrap()
            .insert((exec.into(), signal.into()), Some(v));
        self.engine().signal_set(&exec_id(exec), signal);
    }
}

#[async_trait]
impl SignalStore for Services {
    async fn get_or_create(
        &self,
        execution: &WorkflowExecutionIdentifier,
        signal_id: &str,
        _t: &LiteralType,
    ) -> Result<Option<Literal>, ExternalError> {
        let key = (execution.name.clone(), signal_id.to_string());
        self.asked.lock().unwrap().push(key.clone());
        Ok(self
            .signals
            .lock()
            .unwrap()
            .entry(key)
            .or_insert(None)
            .clone())
    }
}

#[async_trait]
impl ChildExecutions for Services {
    async fn create_child(
        &self,
        launch: ChildLaunch,
    ) -> Result<WorkflowExecutionIdentifier, ExternalError> {
        let id = child_execution_id(&launch.parent, launch.attempt);
        let compiled = self
            .launch_plans
            .lock()
            .unwrap()
            .get(&launch.launch_plan.name)
            .cloned()
            .ok_or_else(|| ExternalError::NotFound("no such launch plan".into()))?;
        let req = ExecutionRequest {
            id: id.clone(),
            compiled,
            inputs: launch.inputs,
            ..Default::default()
        };
        match self.engine().start_execution(req).await {
            Ok(()) | Err(flyte_engine::EngineError::AlreadyRunning(_)) => Ok(id),
            Err(e) => Err(ExternalError::Unavailable(e.to_string())),
        }
    }

    async fn status(
        &self,
        child: &WorkflowExecutionIdentifier,
    ) -> Result<ChildStatus, ExternalError> {
        let sink = self.sink.lock().unwrap().clone().unwrap();
        let events = sink.workflow_events(&child.name);
        let last = events
            .last()
            .ok_or_else(|| ExternalError::NotFound(child.name.clone()))?;
        use workflow_execution::Phase as P;
        let terminal = [P::Succeeded, P::Failed, P::Aborted, P::TimedOut]
            .iter()
            .any(|p| *p as i32 == last.phase);
        let mut status = ChildStatus {
            phase: last.phase,
            terminal,
            outputs: None,
            error: None,
        };
        match &last.output_result {
            Some(OutputResult::OutputUri(uri)) => {
                let blob = self.blob.lock().unwrap().clone().unwrap();
                let key = blob.path_from_native_url(uri).unwrap();
                status.outputs = Some(LiteralMap::decode(blob.get(&key).await.unwrap()).unwrap());
            }
            Some(OutputResult::OutputData(d)) => status.outputs = Some(d.clone()),
            Some(OutputResult::Error(e)) => status.error = Some(e.clone()),
            _ => {}
        }
        Ok(status)
    }

    async fn abort(
        &self,
        child: &WorkflowExecutionIdentifier,
        cause: &str,
    ) -> Result<(), ExternalError> {
        self.aborted.lock().unwrap().push(child.name.clone());
        let _ = self.engine().abort(child, cause);
        Ok(())
    }
}

#[async_trait]
impl RecoveryLookup for Services {
    async fn recover_node(
        &self,
        original: &WorkflowExecutionIdentifier,
        node: &str,
    ) -> Result<Option<RecoveredNode>, ExternalError> {
        Ok(self
            .recovered
            .lock()
            .unwrap()
            .get(&(original.name.clone(), node.to_string()))
            .cloned())
    }
}

// ------------------------------------------------------------------ builders

fn echo() -> TaskTemplate {
    TaskTemplate {
        id: Some(ident(ResourceType::Task, "echo")),
        r#type: "echo".into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(iface(&[("a", int_t())], &[("b", int_t())])),
        ..Default::default()
    }
}
fn bool_lit(b: bool) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Boolean(b)),
            })),
        }))),
        ..Default::default()
    }
}
fn bind(var: &str, data: BindingData) -> Binding {
    Binding {
        var: var.into(),
        binding: Some(data),
    }
}
fn echo_node(id: &str, input: BindingData) -> Node {
    Node {
        id: id.into(),
        inputs: vec![bind("a", input)],
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(ident(
                ResourceType::Task,
                "echo",
            ))),
            ..Default::default()
        })),
        ..Default::default()
    }
}
fn gate(id: &str, c: gate_node::Condition, inputs: Vec<Binding>) -> Node {
    Node {
        id: id.into(),
        inputs,
        target: Some(node::Target::GateNode(GateNode { condition: Some(c) })),
        ..Default::default()
    }
}
fn compile(name: &str, nodes: Vec<Node>, out: BindingData) -> CompiledWorkflowClosure {
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, name)),
        interface: Some(iface(&[("x", int_t())], &[("o", int_t())])),
        nodes,
        outputs: vec![bind("o", out)],
        metadata: Some(WorkflowMetadata::default()),
        ..Default::default()
    };
    let mut resolved = Resolved::default();
    let t = echo();
    resolved
        .tasks
        .insert(IdKey::from(t.id.as_ref().unwrap()), t);
    resolved.launch_plans.insert(
        IdKey::from(&ident(ResourceType::LaunchPlan, "child")),
        iface(&[("x", int_t())], &[("o", int_t())]),
    );
    compile_workflow_template(&wf, &[], &resolved).unwrap_or_else(|e| panic!("compile: {e}"))
}

fn exec_id(name: &str) -> WorkflowExecutionIdentifier {
    WorkflowExecutionIdentifier {
        project: "p".into(),
        domain: "d".into(),
        name: name.into(),
        ..Default::default()
    }
}

struct Env {
    _dir: tempfile::TempDir,
    blob: BlobStore,
    sink: Arc<MemorySink>,
    engine: Engine,
    svc: Arc<Services>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let svc = Arc::new(Services::default());
    let engine = Engine::new(EngineDeps {
        external: ExternalServices::from(svc.clone()),
        ..engine_support::deps(
            &blob,
            vec![Arc::new(BuiltinBackend::new(blob.clone()))],
            &sink,
        )
    });
    *svc.engine.lock().unwrap() = Some(engine.clone());
    *svc.sink.lock().unwrap() = Some(sink.clone());
    *svc.blob.lock().unwrap() = Some(blob.clone());
    Env {
        _dir: dir,
        blob,
        sink,
        engine,
        svc,
    }
}

/// [`env`] on virtual time: the engine's clock follows tokio's, so under
/// `#[tokio::test(start_paused = true)]` a timeout fires as soon as nothing else can move.
fn virtual_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let svc = Arc::new(Services::default());
    let mut deps = engine_support::deps(
        &blob,
        vec![Arc::new(BuiltinBackend::new(blob.clone()))],
        &sink,
    );
    deps.config = EngineConfig {
        clock: Arc::new(VirtualClock::new()),
        ..deps.config
    };
    let engine = Engine::new(EngineDeps {
        external: ExternalServices::from(svc.clone()),
        ..deps
    });
    *svc.engine.lock().unwrap() = Some(engine.clone());
    *svc.sink.lock().unwrap() = Some(sink.clone());
    *svc.blob.lock().unwrap() = Some(blob.clone());
    Env {
        _dir: dir,
        blob,
        sink,
        engine,
        svc,
    }
}

async fn start(env: &Env, name: &str, compiled: CompiledWorkflowClosure, x: i64) {
    start_req(
        env,
        ExecutionRequest {
            id: exec_id(name),
            compiled,
            inputs: LiteralMap {
                literals: [("x".to_string(), int_lit(x))].into(),
            },
            ..Default::default()
        },
    )
    .await
}

async fn start_req(env: &Env, req: ExecutionRequest) {
    env.engine.start_execution(req).await.unwrap();
}

async fn wait(env: &Env, name: &str) -> WorkflowPhase {
    tokio::time::timeout(Duration::from_secs(30), env.engine.wait(&exec_id(name)))
        .await
        .expect("execution did not finish")
        .expect("no final phase")
}

async fn output(env: &Env, name: &str) -> i64 {
    let events = env.sink.workflow_events(name);
    let m = reported_outputs(&env.blob, events.last().unwrap()).await;
    match &m.literals["o"].value {
        Some(literal::Value::Scalar(s)) => match &s.value {
            Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })) => *i,
            _ => panic!(),
        },
        _ => panic!(),
    }
}

fn error_code(env: &Env, name: &str) -> String {
    match &env.sink.workflow_events(name).last().unwrap().output_result {
        Some(OutputResult::Error(e)) => e.code.clone(),
        other => panic!("no error: {other:?}"),
    }
}

async fn asked(env: &Env, exec: &str, signal: &str) {
    for _ in 0..400 {
        if env
            .svc
            .asked
            .lock()
            .unwrap()
            .contains(&(exec.to_string(), signal.to_string()))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{exec} never asked for {signal}");
}

fn approve_wf() -> CompiledWorkflowClosure {
    compile(
        "approve",
        vec![
            echo_node("n0", promise("start-node", "x")),
            gate(
                "n1",
                gate_node::Condition::Approve(ApproveCondition {
                    signal_id: "ok".into(),
                }),
                vec![bind("b", promise("n0", "b"))],
            ),
            echo_node("n2", promise("n1", "b")),
        ],
        promise("n2", "b"),
    )
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_gates_wake_on_the_signal() {
    let env = env();
    start(&env, "yes", approve_wf(), 4).await;
    start(&env, "no", approve_wf(), 4).await;
    asked(&env, "yes", "ok").await;
    asked(&env, "no", "ok").await;
    env.svc.set("yes", "ok", bool_lit(true));
    env.svc.set("no", "ok", bool_lit(false));
    assert_eq!(wait(&env, "yes").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&env, "yes").await, 4);
    assert_eq!(wait(&env, "no").await, WorkflowPhase::Failed);
    assert_eq!(error_code(&env, "no"), "ReceivedRejectSignal");
    // Only two asks each: no polling.
    let asks = env.svc.asked.lock().unwrap().len();
    assert!(asks <= 4, "{asks} asks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_set_before_the_gate_asks_is_read_at_once() {
    let env = env();
    env.svc
        .signals
        .lock()
        .unwrap()
        .insert(("early".into(), "y".into()), Some(int_lit(5)));
    let wf = compile(
        "signal",
        vec![
            gate(
                "n0",
                gate_node::Condition::Signal(SignalCondition {
                    signal_id: "y".into(),
                    r#type: Some(int_t()),
                    output_variable_name: "y".into(),
                }),
                vec![],
            ),
            echo_node("n1", promise("n0", "y")),
        ],
        promise("n1", "b"),
    );
    start(&env, "early", wf, 0).await;
    assert_eq!(wait(&env, "early").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&env, "early").await, 5);
}

/// A `wait_for_input` gate with an hour's timeout whose signal never comes, in virtual time:
/// the gate ends TIMED_OUT an hour after it started (by the engine's clock), after asking for
/// its signal, and the workflow fails without running what comes after it.
#[tokio::test(start_paused = true)]
async fn an_hour_long_gate_timeout_fires_after_an_hour_of_virtual_time() {
    let env = virtual_env();
    let mut waiting = gate(
        "n0",
        gate_node::Condition::Signal(SignalCondition {
            signal_id: "never".into(),
            r#type: Some(int_t()),
            output_variable_name: "y".into(),
        }),
        vec![],
    );
    waiting.metadata = Some(NodeMetadata {
        name: "wait".into(),
        timeout: Some(pbjson_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        ..Default::default()
    });
    let wf = compile(
        "gate_timeout",
        vec![waiting, echo_node("n1", promise("n0", "y"))],
        promise("n1", "b"),
    );
    start(&env, "late", wf, 0).await;
    let phase = tokio::time::timeout(
        Duration::from_secs(7 * 24 * 3600),
        env.engine.wait(&exec_id("late")),
    )
    .await
    .expect("execution did not finish")
    .expect("no final phase");
    assert_eq!(phase, WorkflowPhase::Failed);
    assert!(
        env.svc
            .asked
            .lock()
            .unwrap()
            .contains(&("late".to_string(), "never".to_string()))
    );
    use node_execution::Phase as P;
    let us = |t: &Option<pbjson_types::Timestamp>| {
        let t = t.as_ref().unwrap();
        t.seconds * 1_000_000 + i64::from(t.nanos) / 1000
    };
    let events = env.sink.node_events("late");
    let of = |node: &str| -> Vec<(i32, i64)> {
        events
            .iter()
            .filter(|e| e.id.as_ref().unwrap().node_id == node)
            .map(|e| (e.phase, us(&e.occurred_at)))
            .collect()
    };
    let n0 = of("n0");
    let phases: Vec<i32> = n0.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        phases,
        [P::Queued as i32, P::Running as i32, P::TimedOut as i32]
    );
    assert_eq!(n0[2].1 - n0[0].1, 3_600_000_000, "{n0:?}");
    assert!(of("n1").is_empty(), "nothing after the gate ran");
}

fn lp_parent() -> CompiledWorkflowClosure {
    compile(
        "parent",
        vec![
            Node {
                id: "n0".into(),
                inputs: vec![bind("x", promise("start-node", "x"))],
                target: Some(node::Target::WorkflowNode(WorkflowNode {
                    reference: Some(workflow_node::Reference::LaunchplanRef(ident(
                        ResourceType::LaunchPlan,
                        "child",
                    ))),
                })),
                ..Default::default()
            },
            echo_node("n1", promise("n0", "o")),
        ],
        promise("n1", "b"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_plan_nodes_run_children_and_abort_them() {
    let env = env();
    // The child: waits for approval of its input.
    env.svc
        .launch_plans
        .lock()
        .unwrap()
        .insert("child".into(), {
            let mut c = approve_wf();
            c.primary.as_mut().unwrap().template.as_mut().unwrap().id =
                Some(ident(ResourceType::Workflow, "child"));
            c
        });
    start(&env, "par", lp_parent(), 8).await;
    asked(&env, "par-n0-0", "ok").await;
    assert!(env.engine.is_running(&exec_id("par-n0-0")));
    env.svc.set("par-n0-0", "ok", bool_lit(true));
    assert_eq!(wait(&env, "par").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&env, "par").await, 8);
    // The node's events name the child.
    let ev = env
        .sink
        .node_events("par")
        .into_iter()
        .find(|e| e.id.as_ref().unwrap().node_id == "n0" && e.target_metadata.is_some())
        .unwrap();
    assert!(format!("{:?}", ev.target_metadata).contains("par-n0-0"));

    // A rejected child fails the node.
    start(&env, "par2", lp_parent(), 8).await;
    asked(&env, "par2-n0-0", "ok").await;
    env.svc.set("par2-n0-0", "ok", bool_lit(false));
    assert_eq!(wait(&env, "par2").await, WorkflowPhase::Failed);
    assert!(error_code(&env, "par2").contains("RemoteChildWorkflowExecutionFailed"));

    // Aborting the parent aborts the child.
    start(&env, "par3", lp_parent(), 8).await;
    asked(&env, "par3-n0-0", "ok").await;
    env.engine.abort(&exec_id("par3"), "stop").unwrap();
    assert_eq!(wait(&env, "par3").await, WorkflowPhase::Aborted);
    assert_eq!(wait(&env, "par3-n0-0").await, WorkflowPhase::Aborted);
    assert!(
        env.svc
            .aborted
            .lock()
            .unwrap()
            .contains(&"par3-n0-0".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_reuses_what_succeeded() {
    let env = env();
    let wf = compile(
        "chain",
        vec![
            echo_node("n0", promise("start-node", "x")),
            echo_node("n1", promise("n0", "b")),
            echo_node("n2", promise("n1", "b")),
        ],
        promise("n2", "b"),
    );
    // In the original, n0 and n1 succeeded with b = 100.
    for n in ["n0", "n1"] {
        env.svc.recovered.lock().unwrap().insert(
            ("orig".into(), n.into()),
            RecoveredNode::Succeeded(Box::new(RecoveredOutputs {
                outputs: LiteralMap {
                    literals: [("b".to_string(), int_lit(100))].into(),
                },
                ..Default::default()
            })),
        );
    }
    start_req(
        &env,
        ExecutionRequest {
            id: exec_id("rec"),
            compiled: wf,
            inputs: LiteralMap {
                literals: [("x".to_string(), int_lit(1))].into(),
            },
            recover_from: Some(exec_id("orig")),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(wait(&env, "rec").await, WorkflowPhase::Succeeded);
    assert_eq!(output(&env, "rec").await, 100);
    let tasks: Vec<String> = env
        .sink
        .task_events("rec")
        .iter()
        .map(|t| t.parent_node_execution_id.as_ref().unwrap().node_id.clone())
        .collect();
    assert!(tasks.iter().all(|n| n == "n2"), "{tasks:?}");
    let recovered: Vec<String> = env
        .sink
        .node_events("rec")
        .iter()
        .filter(|e| e.phase == node_execution::Phase::Recovered as i32)
        .map(|e| e.id.as_ref().unwrap().node_id.clone())
        .collect();
    assert_eq!(recovered, vec!["n0", "n1"]);
}
