//! Attempts while the Python task environment is being made (`engine.auto_venv`): they wait as
//! QUEUED, can be aborted while waiting, run on the real local-process backend once it is
//! ready, and fail naming the fix when it cannot be made. The making itself (python -m venv,
//! pip) runs for real in tests/e2e/test_first_run.py.

#[path = "../../flyte-engine/tests/backend_support/mod.rs"]
mod backend_support;

use std::sync::Arc;
use std::time::Duration;

use backend_support::*;
use flyte_engine::backend::{
    AttemptOutcome, AttemptUpdate, LocalProcessBackend, LocalProcessConfig, TaskBackend,
};
use flyte_rs::python_env::{AwaitPython, Status};
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(60);

fn local(f: &Fixture) -> Arc<dyn TaskBackend> {
    let config = LocalProcessConfig::new(f.data_dir(), "http://127.0.0.1:1");
    Arc::new(LocalProcessBackend::new(config, f.store.clone()))
}

#[tokio::test]
async fn attempts_wait_for_the_environment_and_can_be_aborted_meanwhile() {
    let f = Fixture::new();
    let (status, status_rx) = watch::channel(Status::Pending);
    let b = AwaitPython::new(local(&f), status_rx, "/data/python-venv".into());
    let (tx, mut rx) = mpsc::unbounded_channel();

    let waits = key("e1", "n0", 0);
    b.start(
        f.attempt(waits.clone(), shell_task("true", None)),
        tx.clone(),
    )
    .await
    .unwrap();
    match next(&mut rx, WAIT).await {
        (k, AttemptUpdate::Queued { reason }) => {
            assert_eq!(k, waits);
            assert!(reason.contains("/data/python-venv"), "{reason}");
        }
        other => panic!("expected QUEUED, got {other:?}"),
    }

    let aborted = key("e2", "n0", 0);
    b.start(
        f.attempt(aborted.clone(), shell_task("true", None)),
        tx.clone(),
    )
    .await
    .unwrap();
    b.abort(&aborted).await;
    let (_, outcome) = until_finished(&mut rx, &aborted, WAIT).await;
    assert_eq!(outcome, AttemptOutcome::Aborted);

    // Ready: the waiting attempt runs as a real process.
    status.send_replace(Status::Ready);
    let (_, outcome) = until_finished(&mut rx, &waits, WAIT).await;
    assert!(
        matches!(outcome, AttemptOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    // Later attempts go straight to the backend.
    let later = key("e3", "n0", 0);
    b.start(
        f.attempt(later.clone(), shell_task("exit 3", None)),
        tx.clone(),
    )
    .await
    .unwrap();
    let (updates, outcome) = until_finished(&mut rx, &later, WAIT).await;
    assert!(
        !updates.iter().any(
            |u| matches!(u, AttemptUpdate::Queued { reason } if reason.contains("python-venv"))
        ),
        "{updates:?}"
    );
    let (error, _) = failure(&outcome);
    assert!(!error.message.contains("python-venv"), "{error:?}");
}

#[tokio::test]
async fn when_the_environment_cannot_be_made_attempts_fail_naming_the_fix() {
    let f = Fixture::new();
    let (status, status_rx) = watch::channel(Status::Pending);
    let b = AwaitPython::new(local(&f), status_rx, "/data/python-venv".into());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let why = "the Python task environment could not be created in /data/python-venv: no python3. \
               Fix: set engine.python_venv";

    let waiting = key("e1", "n0", 0);
    b.start(
        f.attempt(waiting.clone(), shell_task("true", None)),
        tx.clone(),
    )
    .await
    .unwrap();
    status.send_replace(Status::Failed(why.into()));
    let (_, outcome) = until_finished(&mut rx, &waiting, WAIT).await;
    let (error, retryable) = failure(&outcome);
    assert_eq!(error.message, why);
    assert!(
        !retryable,
        "retrying cannot help until the server is restarted"
    );

    let after = key("e2", "n0", 0);
    b.start(
        f.attempt(after.clone(), shell_task("true", None)),
        tx.clone(),
    )
    .await
    .unwrap();
    let (_, outcome) = until_finished(&mut rx, &after, WAIT).await;
    assert_eq!(failure(&outcome).0.message, why);
}
