//! The task container contract with the real client: flytekit 1.16.31's `pyflyte-fast-execute`
//! and `pyflyte-execute`, run by the local-process backend from the repo's virtual environment
//! (`scripts/setup-python.sh` makes `.venv`). The code bundle, inputs, outputs, raw data and
//! errors all go through `file://` native URLs of a tempdir blob store.
//!
//! Skipped, with a note, when `.venv` is absent.

mod backend_support;

use std::path::PathBuf;
use std::time::Duration;

use backend_support::*;
use bytes::Bytes;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, LocalProcessBackend, LocalProcessConfig, TaskBackend,
};
use flyteidl::core::{
    BlobType, LiteralType, SimpleType, TaskTemplate, execution_error, literal, literal_type, scalar,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(240);

const MODULE: &str = r#"
import os

import flytekit
from flytekit import task
from flytekit.exceptions.user import FlyteRecoverableException
from flytekit.types.file import FlyteFile


@task
def add_one(x: int) -> int:
    print(f"adding one to {x}")
    return x + 1


@task
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


@task(retries=2)
def flaky(x: int) -> int:
    raise FlyteRecoverableException(f"try again {x}")


@task
def write_file(x: int) -> FlyteFile:
    p = os.path.join(flytekit.current_context().working_directory, "f.txt")
    with open(p, "w") as f:
        f.write(f"value {x}")
    return FlyteFile(p)
"#;

/// The repository's venv with the real flytekit. Missing, the test fails: it never skips
/// (scripts/test.sh creates the venv before `cargo test`).
fn venv() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
    assert!(
        venv.join("bin/pyflyte-execute").exists(),
        "no .venv with flytekit at {}: run scripts/setup-python.sh first",
        venv.display()
    );
    std::fs::canonicalize(venv).expect("canonical .venv path")
}

/// The container args flytekit serializes for a fast-registered python task.
fn flytekit_task(bundle_url: &str, task_name: &str, output: LiteralType) -> TaskTemplate {
    let args = [
        "pyflyte-fast-execute",
        "--additional-distribution",
        bundle_url,
        "--dest-dir",
        ".",
        "--",
        "pyflyte-execute",
        "--inputs",
        "{{.input}}",
        "--output-prefix",
        "{{.outputPrefix}}",
        "--raw-output-data-prefix",
        "{{.rawOutputDataPrefix}}",
        "--checkpoint-path",
        "{{.checkpointOutputPrefix}}",
        "--prev-checkpoint",
        "{{.prevCheckpointPrefix}}",
        "--resolver",
        "flytekit.core.python_auto_container.default_task_resolver",
        "--",
        "task-module",
        "wf_mod",
        "task-name",
        task_name,
    ];
    let mut t = container_task(
        "python-task",
        &args,
        &[("FLYTE_SDK_LOGGING_LEVEL", "20")],
        interface(&[("x", SimpleType::Integer)], &[]),
    );
    t.id = task_id(&format!("wf_mod.{task_name}"));
    if let Some(iface) = t.interface.as_mut() {
        iface.outputs = Some(flyteidl::core::VariableMap {
            variables: [(
                "o0".to_string(),
                flyteidl::core::Variable {
                    r#type: Some(output),
                    ..Default::default()
                },
            )]
            .into(),
        });
    }
    t
}

#[tokio::test]
async fn flytekit_runs_fast_registered_tasks_through_file_urls() {
    let venv = venv();
    let f = Fixture::new();
    let mut config = LocalProcessConfig::new(f.data_dir(), "http://127.0.0.1:30080");
    config.venv = Some(venv);
    config.max_concurrency = 4;
    let b = LocalProcessBackend::new(config, f.store.clone());

    // The code bundle, as `pyflyte register` uploads it.
    let src = f.data_dir().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("wf_mod.py"), MODULE).unwrap();
    let tarball = f.data_dir().join("fast.tar.gz");
    let status = std::process::Command::new("tar")
        .args([
            "-czf",
            tarball.to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
            "wf_mod.py",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let bundle_key = "uploads/flytesnacks/development/ABCDEF/fastabc123.tar.gz";
    f.store
        .put(bundle_key, Bytes::from(std::fs::read(&tarball).unwrap()))
        .await
        .unwrap();
    let bundle_url = f.store.native_url(bundle_key);

    let int_type = simple(SimpleType::Integer);
    let file_type = LiteralType {
        r#type: Some(literal_type::Type::Blob(BlobType {
            format: String::new(),
            dimensionality: 0,
        })),
        ..Default::default()
    };
    let cases: Vec<(AttemptKey, TaskTemplate)> = vec![
        (
            key("fk1", "n0", 0),
            flytekit_task(&bundle_url, "add_one", int_type.clone()),
        ),
        (
            key("fk1", "n1", 0),
            flytekit_task(&bundle_url, "boom", int_type.clone()),
        ),
        (
            key("fk1", "n2", 1),
            flytekit_task(&bundle_url, "flaky", int_type),
        ),
        (
            key("fk1", "n3", 0),
            flytekit_task(&bundle_url, "write_file", file_type),
        ),
    ];
    let mut receivers = Vec::new();
    for (k, t) in &cases {
        f.write_inputs(k, &literal_map(&[("x", int(41))])).await;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut attempt = f.attempt(k.clone(), t.clone());
        attempt.env.insert(
            "FLYTE_INTERNAL_EXECUTION_WORKFLOW".into(),
            "wf_mod.wf".into(),
        );
        b.start(attempt, tx).await.unwrap();
        receivers.push(rx);
    }
    let mut outcomes = Vec::new();
    for ((k, _), rx) in cases.iter().zip(receivers.iter_mut()) {
        let (_, outcome) = until_finished(rx, k, WAIT).await;
        let log = std::fs::read_to_string(b.log_layout().log_file_for(k)).unwrap_or_default();
        outcomes.push((outcome, log));
    }

    // add_one: outputs.pb with o0 = 42, written by flytekit to our file:// output prefix.
    let (outcome, log) = &outcomes[0];
    assert!(
        matches!(outcome, AttemptOutcome::Succeeded { .. }),
        "{outcome:?}\n{log}"
    );
    assert_eq!(
        f.read_outputs(&cases[0].0).await.unwrap(),
        literal_map(&[("o0", int(42))]),
        "{log}"
    );
    assert!(log.contains("adding one to 41"), "{log}");

    // boom: error.pb, exit 0: a non-recoverable USER error with the message.
    let (outcome, log) = &outcomes[1];
    let (error, retryable) = failure(outcome);
    assert!(!retryable, "{outcome:?}\n{log}");
    assert_eq!(
        error.kind,
        execution_error::ErrorKind::User as i32,
        "{error:?}"
    );
    assert!(error.message.contains("boom 41"), "{}", error.message);

    // flaky: FlyteRecoverableException is retryable.
    let (outcome, log) = &outcomes[2];
    let (error, retryable) = failure(outcome);
    assert!(retryable, "{outcome:?}\n{log}");
    assert_eq!(
        error.kind,
        execution_error::ErrorKind::User as i32,
        "{error:?}"
    );
    assert!(error.message.contains("try again 41"), "{}", error.message);

    // write_file: the file is uploaded under the raw output data prefix.
    let (outcome, log) = &outcomes[3];
    assert!(
        matches!(outcome, AttemptOutcome::Succeeded { .. }),
        "{outcome:?}\n{log}"
    );
    let outputs = f.read_outputs(&cases[3].0).await.unwrap();
    let uri = match outputs.literals["o0"].value.as_ref() {
        Some(literal::Value::Scalar(s)) => match s.value.as_ref() {
            Some(scalar::Value::Blob(blob)) => blob.uri.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    // A plain path: the local backend hands flytekit raw-data prefixes as paths (flytekit
    // cannot read a FlyteFile back from a file:// URI).
    let raw = f.paths(&cases[3].0).raw_output_prefix;
    let raw = raw.strip_prefix("file://").unwrap_or(&raw);
    assert!(uri.starts_with(raw), "{uri} not under {raw}");
    let file = std::fs::read_to_string(uri.strip_prefix("file://").unwrap_or(&uri)).unwrap();
    assert_eq!(file, "value 41");
}
