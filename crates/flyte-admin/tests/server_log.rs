//! What the server's log says (issue 11.9): how each execution ended (phase, duration, and
//! the error's kind and message for a failure), and why a registration was refused — each
//! once. The admin runs with the real engine (in-engine `echo` tasks; a Python task, which no
//! backend here runs, fails), logging into a buffer.

mod admin_support;

use std::sync::{Arc, Mutex};

use admin_support::*;
use flyte_engine::{Engine, WorkflowPhase};
use flyteidl::core::{self, ResourceType};
use flyteidl::service::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

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
    let (state, engine) = engine_state(dir.path()).await;
    let (_, client) = serve(state).await;
    (client, engine)
}

/// Task `<name>` (echo when `echo`, else a Python task), workflow and launch plan `wf-<name>`.
async fn register(
    client: &mut AdminServiceClient<Channel>,
    name: &str,
    echo: bool,
) -> core::Identifier {
    let task = if echo {
        echo_task_request(name, "v1")
    } else {
        task_request(name, "v1")
    };
    register_with(client, task, &format!("wf-{name}"), "v1")
        .await
        .2
}

async fn run(
    client: &mut AdminServiceClient<Channel>,
    engine: &Engine,
    lp: &core::Identifier,
    name: &str,
) -> Option<WorkflowPhase> {
    let request = execution_request(lp, name, 3);
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
    let again = client
        .create_task(echo_task_request("echo", "v1"))
        .await
        .unwrap_err();
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
