//! What the server's log says (issue 11.9): how each execution ended (phase, duration, and
//! the error's kind and message for a failure), and why a registration was refused — each
//! once. The admin runs with the real engine (in-engine `echo` tasks; a Python task, which no
//! backend here runs, fails), logging into a buffer.

mod admin_support;

use std::sync::{Arc, Mutex};

use admin_support::*;
use flyte_admin::fidelity;
use flyte_admin::service::admin::admin_service;
use flyte_admin::service::admin::event_sink::{engine_journal, event_sink};
use flyte_admin::{AdminConfig, AdminState};
use flyte_blob::BlobStore;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::{Engine, EngineConfig, WorkflowPhase};
use flyteidl::admin::*;
use flyteidl::core::{self, Literal, LiteralMap, ResourceType, literal, primitive, scalar};
use flyteidl::service::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;
use tower::Layer;

/// The log lines written while the guard lives. The runtime is single-threaded, so the
/// server's and the engine's tasks log on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let c = Self::default();
        let writer = c.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        (c, tracing::subscriber::set_default(subscriber))
    }

    /// The lines containing every one of `parts`.
    fn matching(&self, parts: &[&str]) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
            .collect()
    }

    fn all(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn start(dir: &tempfile::TempDir) -> (AdminServiceClient<Channel>, Arc<Engine>) {
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
    let config = AdminConfig::default();
    let max = config.max_request_bytes;
    let mut state = AdminState {
        store,
        blob: blob.clone(),
        config: Arc::new(config),
        launcher: None,
    };
    let engine = Arc::new(Engine::new(
        EngineConfig::default(),
        blob.clone(),
        vec![Arc::new(BuiltinBackend::new(blob))],
        event_sink(&state),
        engine_journal(&state),
    ));
    state.launcher = Some(engine.clone());
    let service = fidelity::layer(max).layer(admin_service(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (AdminServiceClient::new(channel), engine)
}

fn int_lit(v: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(core::Scalar {
            value: Some(scalar::Value::Primitive(core::Primitive {
                value: Some(primitive::Value::Integer(v)),
            })),
        }))),
        ..Default::default()
    }
}

fn task(name: &str, echo: bool) -> TaskCreateRequest {
    let mut task = task_request(name, "v1");
    if echo {
        let template = task.spec.as_mut().unwrap().template.as_mut().unwrap();
        template.r#type = "echo".into();
        template.target = None;
    }
    task
}

/// Task `<name>` (echo when `echo`, else a Python task), workflow and launch plan `wf-<name>`.
async fn register(
    client: &mut AdminServiceClient<Channel>,
    name: &str,
    echo: bool,
) -> core::Identifier {
    let task = task(name, echo);
    let task_id = task.id.clone().unwrap();
    client.create_task(task).await.unwrap();
    let wf = workflow_request(&format!("wf-{name}"), "v1", &task_id, "n0");
    let wf_id = wf.id.clone().unwrap();
    client.create_workflow(wf).await.unwrap();
    let lp = launch_plan_request(&format!("wf-{name}"), "v1", &wf_id);
    let lp_id = lp.id.clone().unwrap();
    client.create_launch_plan(lp).await.unwrap();
    lp_id
}

async fn run(
    client: &mut AdminServiceClient<Channel>,
    engine: &Engine,
    lp: &core::Identifier,
    name: &str,
) -> Option<WorkflowPhase> {
    let request = ExecutionCreateRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        spec: Some(ExecutionSpec {
            launch_plan: Some(lp.clone()),
            ..Default::default()
        }),
        #[allow(deprecated)]
        inputs: Some(LiteralMap {
            literals: [("x".to_string(), int_lit(3))].into(),
        }),
        ..Default::default()
    };
    let id = client
        .create_execution(request)
        .await
        .unwrap()
        .into_inner()
        .id
        .unwrap();
    engine.wait(&id).await
}

#[tokio::test]
async fn the_log_says_how_executions_end_and_why_registrations_are_refused() {
    let (logs, _guard) = Captured::start();
    let dir = tempfile::tempdir().unwrap();
    let (mut client, engine) = start(&dir).await;

    // Executions: one line each when they end.
    let echo = register(&mut client, "echo", true).await;
    let python = register(&mut client, "python", false).await;
    assert_eq!(
        run(&mut client, &engine, &echo, "ok1").await,
        Some(WorkflowPhase::Succeeded)
    );
    assert_eq!(
        run(&mut client, &engine, &python, "bad1").await,
        Some(WorkflowPhase::Failed)
    );
    let ok = logs.matching(&["execution ended", "execution=ok1"]);
    assert_eq!(ok.len(), 1, "{}", logs.all());
    for part in [
        "INFO",
        "project=flytesnacks",
        "domain=development",
        "phase=SUCCEEDED",
        "duration_s=",
    ] {
        assert!(ok[0].contains(part), "{part} missing: {}", ok[0]);
    }
    let failed = logs.matching(&["execution ended", "execution=bad1"]);
    assert_eq!(failed.len(), 1, "{}", logs.all());
    for part in [
        "WARN",
        "phase=FAILED",
        "duration_s=",
        "error_kind=\"USER\"",
        "error_code=NoTaskBackend",
        "no task backend runs tasks of type [python-task]",
    ] {
        assert!(failed[0].contains(part), "{part} missing: {}", failed[0]);
    }

    // Registrations: a refused one is logged once, with the id and the reason; an identical
    // re-registration (a success for flytekit) is not a refusal.
    let again = client.create_task(task("echo", true)).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists);
    let missing = core::Identifier {
        resource_type: ResourceType::Task as i32,
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: "never-registered".into(),
        version: "v1".into(),
        ..Default::default()
    };
    let err = client
        .create_workflow(workflow_request("broken", "v1", &missing, "n0"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let refused = logs.matching(&["registration refused"]);
    assert_eq!(refused.len(), 1, "{}", logs.all());
    for part in [
        "WARN",
        "workflow flytesnacks/development/broken@v1",
        "never-registered",
        "InvalidArgument",
    ] {
        assert!(refused[0].contains(part), "{part} missing: {}", refused[0]);
    }
}
