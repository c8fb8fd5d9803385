//! The local-process backend with real processes (`/bin/sh` scripts): rendered templates,
//! environment, logs, exit handling, error.pb precedence, timeouts and aborts killing whole
//! process groups, and the concurrency limit.

mod backend_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backend_support::*;
use flyte_engine::backend::{
    AttemptOutcome, AttemptUpdate, BackendError, LocalProcessBackend, LocalProcessConfig,
    LogLayout, Reattach, TaskBackend,
};
use flyteidl::core::{
    ContainerError, ErrorDocument, SimpleType, TaskTemplate, container_error, execution_error,
};
use prost::Message;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);

fn backend(f: &Fixture, tweak: impl FnOnce(&mut LocalProcessConfig)) -> LocalProcessBackend {
    let mut config = LocalProcessConfig::new(f.data_dir(), "http://127.0.0.1:30080/");
    config.kill_grace_period = Duration::from_millis(500);
    tweak(&mut config);
    LocalProcessBackend::new(config, f.store.clone())
}

/// Strips `file://` from a rendered native URL inside a shell script.
const FS: &str = r#"fs() { printf '%s' "${1#file://}"; }"#;

#[tokio::test]
async fn handles_container_tasks_but_not_builtin_types() {
    let f = Fixture::new();
    let b = backend(&f, |_| {});
    assert!(b.handles(&shell_task("true", None)));
    assert!(b.handles(&container_task("container", &["x"], &[], None)));
    let mut echo = shell_task("true", None);
    echo.r#type = "echo".into();
    assert!(!b.handles(&echo));
    assert!(!b.handles(&plugin_task("python-task", None)));
    assert_eq!(b.name(), "local-process");
    assert!(b.concurrency_limit() >= 1);
}

#[tokio::test]
async fn renders_templates_sets_the_environment_and_keeps_logs() {
    let f = Fixture::new();
    let b = backend(&f, |_| {});
    let k = key("exec1", "n0", 0);
    f.write_inputs(
        &k,
        &literal_map(&[
            ("x", int(41)),
            (
                "name",
                prim(flyteidl::core::primitive::Value::StringValue(
                    "world".into(),
                )),
            ),
        ]),
    )
    .await;
    // The outputs the task copies into its output prefix.
    let expected = literal_map(&[("o0", int(42))]);
    let expected_file = f.data_dir().join("expected.pb");
    std::fs::write(&expected_file, expected.encode_to_vec()).unwrap();
    let report = f.data_dir().join("report.txt");

    let script = format!(
        r#"{FS}
out=$(fs "{{{{.outputPrefix}}}}")
mkdir -p "$out" && cp "{expected}" "$out/outputs.pb"
{{
  echo "input={{{{ .Input }}}}"
  echo "inputPrefix={{{{.INPUTPREFIX}}}}"
  echo "outputPrefix={{{{$outputPrefix}}}}"
  echo "raw={{{{.rawOutputDataPrefix}}}}"
  echo "ckpt={{{{.checkpointOutputPrefix}}}}"
  echo 'prev={{{{.prevCheckpointPrefix}}}}'
  echo "key={{{{.perRetryUniqueKey}}}}"
  echo "tpl={{{{.taskTemplatePath}}}}"
  echo "x={{{{.Inputs.x}}}} name={{{{ .inputs.name }}}}"
  echo "exec=$FLYTE_INTERNAL_EXECUTION_ID attempt=$FLYTE_ATTEMPT_NUMBER task=$FLYTE_INTERNAL_TASK_NAME"
  echo "mine=$MINE clash=$CLASH engine=$ENGINE_VAR"
  echo "index=$FLYTE_K8S_ARRAY_INDEX via=$BATCH_JOB_ARRAY_INDEX_VAR_NAME"
  echo "cwd=$(pwd)"
}} > "{report}"
echo to-stdout
echo to-stderr >&2
"#,
        expected = expected_file.display(),
        report = report.display(),
    );
    let mut template = container_task(
        "python-task",
        &["sh", "-c", &script],
        &[("MINE", "from-task"), ("CLASH", "task")],
        interface(
            &[("x", SimpleType::Integer)],
            &[("o0", SimpleType::Integer)],
        ),
    );
    template.id = task_id("my.module.my_task");
    let mut attempt = f.attempt(k.clone(), template.clone());
    attempt.env.insert("CLASH".into(), "engine".into());
    attempt.env.insert("ENGINE_VAR".into(), "yes".into());
    attempt.array_index = Some(3);
    let paths = attempt.paths.clone();

    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(attempt, tx).await.unwrap();
    let (updates, outcome) = until_finished(&mut rx, &k, WAIT).await;

    let log_url = "http://127.0.0.1:30080/logs/flytesnacks/development/exec1/n0/0.log";
    match &outcome {
        AttemptOutcome::Succeeded { logs } => assert_eq!(logs[0].uri, log_url),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&updates[..], [AttemptUpdate::Running { logs }] if logs[0].uri == log_url),
        "{updates:?}"
    );
    assert_eq!(f.read_outputs(&k).await.unwrap(), expected);

    let report = std::fs::read_to_string(&report).unwrap();
    let line = |name: &str| {
        report
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing in {report}"))
            .to_string()
    };
    assert_eq!(line("input"), paths.inputs);
    assert_eq!(line("inputPrefix"), paths.input_prefix);
    assert_eq!(line("outputPrefix"), paths.output_prefix);
    // Raw-data prefixes are handed to the task as plain paths (flytekit cannot read a
    // FlyteFile back from a file:// URI); the others stay URLs.
    assert_eq!(line("raw"), plain(&paths.raw_output_prefix));
    assert_eq!(line("ckpt"), plain(&paths.checkpoint_prefix));
    assert_eq!(
        line("prev"),
        "\"\"",
        "first attempt: a literal empty quoted string"
    );
    assert_eq!(line("key"), "exec1_n0_0");
    assert_eq!(line("tpl"), paths.task_template);
    assert_eq!(line("x"), "41 name=world");
    assert_eq!(line("exec"), "exec1 attempt=0 task=my.module.my_task");
    assert_eq!(
        line("mine"),
        "from-task clash=engine engine=yes",
        "the engine's env wins over the container's"
    );
    assert_eq!(line("index"), "3 via=FLYTE_K8S_ARRAY_INDEX");
    let cwd = PathBuf::from(line("cwd"));
    assert!(
        cwd.starts_with(f.data_dir().join("work")),
        "{}",
        cwd.display()
    );
    assert!(!cwd.exists(), "the working directory is removed afterwards");

    // task.pb was written because the template asked for it.
    let task_pb = f
        .get_optional(&paths.task_template)
        .await
        .expect("task.pb written");
    assert_eq!(TaskTemplate::decode(task_pb).unwrap(), template);

    // The log keeps stdout and stderr; its URL maps back to the file.
    let log_file = b.log_layout().log_file_for(&k);
    assert_eq!(
        log_file,
        f.data_dir()
            .join("logs/flytesnacks/development/exec1/n0/0.log")
    );
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        log.contains("to-stdout") && log.contains("to-stderr"),
        "{log}"
    );
    let tail = log_url
        .strip_prefix("http://127.0.0.1:30080/logs/")
        .unwrap();
    assert_eq!(b.log_layout().file_for_url_path(tail), Some(log_file));
    assert_eq!(LogLayout::key_for_url_path(tail), Some(k));
    assert_eq!(b.active(), 0);
}

#[tokio::test]
async fn later_attempts_get_the_previous_checkpoint() {
    let f = Fixture::new();
    let b = backend(&f, |_| {});
    let k = key("exec2", "n1", 2);
    let report = f.data_dir().join("prev.txt");
    let script = format!(
        r#"echo "{{{{.prevCheckpointPrefix}}}} {{{{.perRetryUniqueKey}}}}" > "{}""#,
        report.display()
    );
    let attempt = f.attempt(k.clone(), shell_task(&script, None));
    let prev = plain(&attempt.paths.prev_checkpoint_prefix.clone().unwrap()).to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(attempt, tx).await.unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert!(
        matches!(outcome, AttemptOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&report).unwrap().trim(),
        format!("{prev} exec2_n1_2")
    );
}

#[tokio::test]
async fn a_virtual_environment_goes_in_front_of_path() {
    let f = Fixture::new();
    let venv = f.data_dir().join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    let tool = venv.join("bin/my-tool");
    std::fs::write(
        &tool,
        "#!/bin/sh\necho \"tool ran with VIRTUAL_ENV=$VIRTUAL_ENV\" > \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let b = backend(&f, |c| {
        c.venv = Some(venv.clone());
        c.path = Some("/usr/bin:/bin".into());
    });
    let k = key("exec3", "n0", 0);
    let out = f.data_dir().join("tool.txt");
    let template = container_task(
        "python-task",
        &["my-tool", out.to_str().unwrap()],
        &[],
        None,
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), template), tx).await.unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert!(
        matches!(outcome, AttemptOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        format!("tool ran with VIRTUAL_ENV={}", venv.display())
    );
}

#[tokio::test]
async fn non_zero_exit_is_a_retryable_user_error_with_the_log_tail() {
    let f = Fixture::new();
    let b = backend(&f, |_| {});
    let k = key("exec4", "n0", 0);
    let script = "for i in $(seq 1 200); do echo \"noise $i\"; done; echo 'Traceback: something broke' >&2; exit 3";
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), shell_task(script, None)), tx)
        .await
        .unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let (error, retryable) = failure(&outcome);
    assert!(retryable);
    assert_eq!(error.kind, execution_error::ErrorKind::User as i32);
    assert_eq!(error.code, "Error");
    assert!(
        error.message.contains("terminated with exit code (3)"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("Traceback: something broke"),
        "{}",
        error.message
    );
    assert!(
        !error.message.contains("noise 1\n"),
        "only the tail: {}",
        error.message
    );
    assert!(matches!(&outcome, AttemptOutcome::Failed { logs, .. } if logs.len() == 1));
}

#[tokio::test]
async fn killed_by_sigkill_is_a_retryable_system_error() {
    let f = Fixture::new();
    let b = backend(&f, |_| {});
    let k = key("exec5", "n0", 0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(
        f.attempt(k.clone(), shell_task("echo dying; kill -9 $$", None)),
        tx,
    )
    .await
    .unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let (error, retryable) = failure(&outcome);
    assert!(retryable);
    assert_eq!(error.kind, execution_error::ErrorKind::System as i32);
    assert_eq!(error.code, "Interrupted");
    assert!(
        error.message.contains("(137)") && error.message.contains("SIGKILL"),
        "{}",
        error.message
    );
}

fn error_doc(
    kind: container_error::Kind,
    origin: execution_error::ErrorKind,
    code: &str,
    message: &str,
) -> Vec<u8> {
    ErrorDocument {
        error: Some(ContainerError {
            code: code.into(),
            message: message.into(),
            kind: kind as i32,
            origin: origin as i32,
            worker: "worker-0".into(),
            ..Default::default()
        }),
    }
    .encode_to_vec()
}

/// A task that writes `error.pb` (and `outputs.pb`) and exits with `code`.
async fn run_with_error_file(doc: &[u8], exit: i32) -> AttemptOutcome {
    let f = Fixture::new();
    let b = backend(&f, |_| {});
    let k = key("exec6", "n0", 0);
    let doc_file = f.data_dir().join("error.pb");
    std::fs::write(&doc_file, doc).unwrap();
    let outputs_file = f.data_dir().join("outputs.pb");
    std::fs::write(
        &outputs_file,
        literal_map(&[("o0", int(1))]).encode_to_vec(),
    )
    .unwrap();
    let script = format!(
        r#"{FS}
out=$(fs "{{{{.outputPrefix}}}}"); mkdir -p "$out"
cp "{}" "$out/error.pb"; cp "{}" "$out/outputs.pb"; exit {exit}"#,
        doc_file.display(),
        outputs_file.display()
    );
    let template = shell_task(&script, interface(&[], &[("o0", SimpleType::Integer)]));
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), template), tx).await.unwrap();
    until_finished(&mut rx, &k, WAIT).await.1
}

#[tokio::test]
async fn error_pb_is_read_before_outputs() {
    // flytekit: a user error, error.pb written, exit 0.
    let outcome = run_with_error_file(
        &error_doc(
            container_error::Kind::NonRecoverable,
            execution_error::ErrorKind::User,
            "USER:ValueError",
            "bad value",
        ),
        0,
    )
    .await;
    let (error, retryable) = failure(&outcome);
    assert!(!retryable);
    assert_eq!(error.kind, execution_error::ErrorKind::User as i32);
    assert_eq!(
        (
            error.code.as_str(),
            error.message.as_str(),
            error.worker.as_str()
        ),
        ("USER:ValueError", "bad value", "worker-0")
    );

    let outcome = run_with_error_file(
        &error_doc(
            container_error::Kind::Recoverable,
            execution_error::ErrorKind::System,
            "SYSTEM:Flaky",
            "try again",
        ),
        0,
    )
    .await;
    let (error, retryable) = failure(&outcome);
    assert!(retryable);
    assert_eq!(error.kind, execution_error::ErrorKind::System as i32);
    assert_eq!(error.code, "SYSTEM:Flaky");

    // FLYTE_FAIL_ON_ERROR=true: error.pb and a non-zero exit; the document wins.
    let outcome = run_with_error_file(
        &error_doc(
            container_error::Kind::Recoverable,
            execution_error::ErrorKind::User,
            "USER:Recoverable",
            "again",
        ),
        1,
    )
    .await;
    let (error, retryable) = failure(&outcome);
    assert!(retryable);
    assert_eq!(
        (error.code.as_str(), error.kind),
        ("USER:Recoverable", execution_error::ErrorKind::User as i32)
    );

    // A document without an error: recoverable SYSTEM ErrorFileBadFormat.
    let outcome = run_with_error_file(&ErrorDocument { error: None }.encode_to_vec(), 0).await;
    let (error, retryable) = failure(&outcome);
    assert!(retryable);
    assert_eq!(
        (error.code.as_str(), error.kind),
        (
            "ErrorFileBadFormat",
            execution_error::ErrorKind::System as i32
        )
    );
}

#[tokio::test]
async fn missing_outputs_futures_and_no_outputs() {
    let f = Fixture::new();
    let b = backend(&f, |_| {});

    // Outputs declared, none written: retryable OutputsNotFound.
    let k1 = key("exec7", "n0", 0);
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let declared = interface(&[], &[("o0", SimpleType::Integer)]);
    b.start(
        f.attempt(k1.clone(), shell_task("true", declared.clone())),
        tx1,
    )
    .await
    .unwrap();
    // No outputs declared: success without outputs.pb.
    let k2 = key("exec7", "n1", 0);
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    b.start(f.attempt(k2.clone(), shell_task("true", None)), tx2)
        .await
        .unwrap();
    // A dynamic task: futures.pb instead of outputs.pb.
    let k3 = key("exec7", "n2", 0);
    let (tx3, mut rx3) = mpsc::unbounded_channel();
    let script = format!(
        r#"{FS}; out=$(fs "{{{{.outputPrefix}}}}"); mkdir -p "$out"; printf '' > "$out/futures.pb""#
    );
    b.start(f.attempt(k3.clone(), shell_task(&script, declared)), tx3)
        .await
        .unwrap();

    let (_, o1) = until_finished(&mut rx1, &k1, WAIT).await;
    let (error, retryable) = failure(&o1);
    assert!(retryable);
    assert_eq!(error.code, "OutputsNotFound");
    let (_, o2) = until_finished(&mut rx2, &k2, WAIT).await;
    assert!(matches!(o2, AttemptOutcome::Succeeded { .. }), "{o2:?}");
    let (_, o3) = until_finished(&mut rx3, &k3, WAIT).await;
    assert!(matches!(o3, AttemptOutcome::Succeeded { .. }), "{o3:?}");
}

/// A script that starts a background child (its pid in `children`), writes its own pid, and
/// sleeps; with `ignore_term` it ignores SIGTERM so only SIGKILL stops it.
fn sleeper(dir: &std::path::Path, ignore_term: bool) -> (String, PathBuf) {
    let pids = dir.join("pids.txt");
    let trap = if ignore_term { "trap '' TERM" } else { "" };
    let script = format!(
        r#"{trap}
sleep 1000 &
echo "$! $$" > "{pids}.tmp"; mv "{pids}.tmp" "{pids}"
echo started
sleep 1000
wait"#,
        pids = pids.display()
    );
    (script, pids)
}

fn parse_pids(s: &str) -> Vec<u32> {
    s.split_whitespace().map(|p| p.parse().unwrap()).collect()
}

async fn assert_all_dead(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "processes {pids:?} still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let f = Fixture::new();
    let b = backend(&f, |_| {});
    let k = key("exec8", "n0", 0);
    let (script, pids) = sleeper(&f.data_dir(), true);
    let mut attempt = f.attempt(k.clone(), shell_task(&script, None));
    attempt.timeout = Some(Duration::from_millis(800));
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(attempt, tx).await.unwrap();
    let pids = parse_pids(&wait_for_file(&pids, WAIT).await);
    assert!(pids.iter().all(|p| alive(*p)));
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let elapsed = started.elapsed();
    let (error, retryable) = failure(&outcome);
    assert!(retryable);
    assert_eq!(
        (error.code.as_str(), error.kind),
        ("TimeoutExpired", execution_error::ErrorKind::User as i32)
    );
    assert!(error.message.contains("[800ms]"), "{}", error.message);
    // SIGTERM is ignored: SIGKILL after the 500 ms grace period.
    assert!(elapsed >= Duration::from_millis(1300), "{elapsed:?}");
    assert_all_dead(&pids).await;
}

#[tokio::test]
async fn abort_kills_the_whole_process_group() {
    let f = Fixture::new();
    // A grace period longer than WAIT: finishing within WAIT means SIGTERM did it.
    let b = backend(&f, |c| c.kill_grace_period = Duration::from_secs(120));
    let k = key("exec9", "n0", 0);
    let (script, pids) = sleeper(&f.data_dir(), false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), shell_task(&script, None)), tx)
        .await
        .unwrap();
    let pids = parse_pids(&wait_for_file(&pids, WAIT).await);
    assert_eq!(b.active(), 1);
    b.abort(&k).await;
    let (updates, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert_eq!(outcome, AttemptOutcome::Aborted);
    assert!(
        matches!(updates[..], [AttemptUpdate::Running { .. }]),
        "{updates:?}"
    );
    assert_all_dead(&pids).await;
    assert_eq!(b.active(), 0);
    // Aborting what is not running is a no-op.
    b.abort(&k).await;
    // The log is kept.
    let log = std::fs::read_to_string(b.log_layout().log_file_for(&k)).unwrap();
    assert!(log.contains("started"), "{log}");
}

#[tokio::test]
async fn leftover_background_processes_die_with_the_task() {
    let f = Fixture::new();
    let b = backend(&f, |_| {});
    let k = key("exec10", "n0", 0);
    let pids = f.data_dir().join("bg.txt");
    let script = format!(
        r#"sleep 1000 & echo "$!" > "{p}.tmp"; mv "{p}.tmp" "{p}"; exit 0"#,
        p = pids.display()
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), shell_task(&script, None)), tx)
        .await
        .unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert!(
        matches!(outcome, AttemptOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    assert_all_dead(&parse_pids(&std::fs::read_to_string(&pids).unwrap())).await;
}

#[tokio::test]
async fn the_concurrency_limit_queues_attempts() {
    let f = Fixture::new();
    let b = backend(&f, |c| c.max_concurrency = 1);
    assert_eq!(b.concurrency_limit(), 1);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let k1 = key("exec11", "n0", 0);
    let k2 = key("exec11", "n1", 0);
    let k3 = key("exec11", "n2", 0);
    // The second succeeds only if the first's process has ended when it starts.
    let done = f.data_dir().join("k1.done");
    let first = format!(r#"sleep 0.5; touch "{}""#, done.display());
    let second = format!(r#"test -f "{}""#, done.display());
    b.start(f.attempt(k1.clone(), shell_task(&first, None)), tx.clone())
        .await
        .unwrap();
    b.start(f.attempt(k2.clone(), shell_task(&second, None)), tx.clone())
        .await
        .unwrap();
    b.start(f.attempt(k3.clone(), shell_task("true", None)), tx)
        .await
        .unwrap();
    assert_eq!(b.active(), 3);
    // The third is aborted while it waits: it never runs.
    let mut order = Vec::new();
    let mut aborted_k3 = false;
    while order
        .iter()
        .filter(|(_, u)| matches!(u, AttemptUpdate::Finished(_)))
        .count()
        < 3
    {
        let (k, u) = next(&mut rx, WAIT).await;
        if k == k3 && matches!(u, AttemptUpdate::Queued { .. }) && !aborted_k3 {
            b.abort(&k3).await;
            aborted_k3 = true;
        }
        order.push((k, u));
    }
    let pos = |k: &flyte_engine::backend::AttemptKey, pred: fn(&AttemptUpdate) -> bool| {
        order
            .iter()
            .position(|(kk, u)| kk == k && pred(u))
            .unwrap_or_else(|| panic!("{k:?} in {order:?}"))
    };
    let queued = |u: &AttemptUpdate| matches!(u, AttemptUpdate::Queued { .. });
    let running = |u: &AttemptUpdate| matches!(u, AttemptUpdate::Running { .. });
    let finished = |u: &AttemptUpdate| matches!(u, AttemptUpdate::Finished(_));
    assert!(
        order.iter().all(|(k, u)| k != &k1 || !queued(u)),
        "the first runs at once: {order:?}"
    );
    assert!(pos(&k2, queued) < pos(&k1, finished));
    assert!(pos(&k2, running) > pos(&k2, queued), "{order:?}");
    assert!(matches!(
        order[pos(&k3, finished)].1,
        AttemptUpdate::Finished(AttemptOutcome::Aborted)
    ));
    assert!(
        order.iter().all(|(k, u)| k != &k3 || !running(u)),
        "{order:?}"
    );
    assert!(
        matches!(
            order[pos(&k2, finished)].1,
            AttemptUpdate::Finished(AttemptOutcome::Succeeded { .. })
        ),
        "the second ran after the first: {order:?}"
    );
}

#[tokio::test]
async fn start_errors() {
    let f = Fixture::new();
    let b = backend(&f, |_| {});
    let (tx, mut rx) = mpsc::unbounded_channel();

    // A missing input in {{.Inputs.x}}: refused at start, as a user error.
    let k = key("exec12", "n0", 0);
    let err = b
        .start(
            f.attempt(k.clone(), shell_task("echo {{.Inputs.nope}}", None)),
            tx.clone(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::Unsupported(m) if m.contains("nope")),
        "{err}"
    );
    assert_eq!(b.active(), 0);

    // No container.
    let err = b
        .start(
            f.attempt(k.clone(), plugin_task("python-task", None)),
            tx.clone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Unsupported(_)), "{err}");

    // A command that is not on PATH: a permanent StartError, explained in the log too.
    let template = container_task(
        "python-task",
        &["pyflyte-no-such-command", "--x"],
        &[],
        None,
    );
    b.start(f.attempt(k.clone(), template), tx.clone())
        .await
        .unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let (error, retryable) = failure(&outcome);
    assert!(!retryable);
    assert_eq!(
        (error.code.as_str(), error.kind),
        ("StartError", execution_error::ErrorKind::User as i32)
    );
    assert!(
        error.message.contains("pyflyte-no-such-command"),
        "{}",
        error.message
    );
    let log = std::fs::read_to_string(b.log_layout().log_file_for(&k)).unwrap();
    assert!(log.contains("not found on PATH"), "{log}");

    // The same attempt twice at once.
    let k = key("exec12", "n1", 0);
    b.start(
        f.attempt(k.clone(), shell_task("sleep 5", None)),
        tx.clone(),
    )
    .await
    .unwrap();
    let err = b
        .start(f.attempt(k.clone(), shell_task("sleep 5", None)), tx)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Internal(_)), "{err}");
    b.abort(&k).await;
    assert_eq!(
        until_finished(&mut rx, &k, WAIT).await.1,
        AttemptOutcome::Aborted
    );
}

/// Issue 12 item 4: a new backend (the server restarted) leaves the processes an earlier one
/// started running and re-attaches to them; aborting a re-attached attempt stops its whole
/// group. An attempt with no process recorded never started. Process groups recorded by
/// servers from before re-attach (`.pgid`) are still killed, and only when they work there.
#[tokio::test]
async fn a_new_backend_reattaches_to_processes_an_earlier_one_left_running() {
    let f = Fixture::new();
    let first = backend(&f, |_| {});
    let k = key("exec13", "n0", 0);
    let (script, pids) = sleeper(&f.data_dir(), true);
    let attempt = f.attempt(k.clone(), shell_task(&script, None));
    let (tx, mut rx) = mpsc::unbounded_channel();
    first.start(attempt.clone(), tx).await.unwrap();
    let pids = parse_pids(&wait_for_file(&pids, WAIT).await);

    // A process group recorded the old way under the work dir that does not work there is
    // left alone.
    let mut bystander = std::process::Command::new("sleep");
    std::os::unix::process::CommandExt::process_group(&mut bystander, 0);
    let mut bystander = bystander.arg("100").current_dir("/").spawn().unwrap();
    let stray = f
        .data_dir()
        .join("work/flytesnacks/development/other/n0/0.pgid");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, bystander.id().to_string()).unwrap();

    // The server restarts after a crash: a new backend over the same data dir.
    let second = backend(&f, |_| {});
    assert!(alive(bystander.id()), "an unrelated group survives");
    assert!(!stray.exists());
    bystander.kill().unwrap();
    let _ = bystander.wait();
    assert!(
        pids.iter().all(|p| alive(*p)),
        "the task survives the restart"
    );

    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let never = f.attempt(key("exec13", "n1", 0), shell_task("exit 0", None));
    assert_eq!(
        second.reattach(never, tx2.clone()).await.unwrap(),
        Reattach::NotStarted
    );
    assert_eq!(
        second.reattach(attempt, tx2).await.unwrap(),
        Reattach::Attached
    );
    assert_eq!(second.active(), 1);
    second.abort(&k).await;
    let (_, outcome) = until_finished(&mut rx2, &k, WAIT).await;
    assert_eq!(outcome, AttemptOutcome::Aborted);
    // SIGTERM is ignored: SIGKILL after the grace period, to the whole group.
    assert_all_dead(&pids).await;
    assert_eq!(second.active(), 0);

    // The first backend (in a real restart, gone) sees its process killed from outside.
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert_eq!(failure(&outcome).0.code, "Interrupted");
}

/// A re-attached attempt that ends by itself is evaluated as after `start`: a non-zero exit
/// is a retryable user error with the log's tail, death by SIGKILL a system `Interrupted`.
#[test]
fn a_reattached_attempt_reports_how_its_process_ended() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    for (script, code, kind, says) in [
        (
            "echo oops; exit 3",
            "Error",
            execution_error::ErrorKind::User,
            "oops",
        ),
        (
            "echo dying; kill -9 $$",
            "Interrupted",
            execution_error::ErrorKind::System,
            "SIGKILL",
        ),
    ] {
        let f = Fixture::new();
        let release = f.data_dir().join("release");
        let k = key("exec14", "n0", 0);
        let script = format!(
            r#"echo started > "{s}"; while [ ! -f "{r}" ]; do sleep 0.05; done; {script}"#,
            s = f.data_dir().join("started").display(),
            r = release.display()
        );
        let attempt = f.attempt(k.clone(), shell_task(&script, None));
        // The first server dies with its runtime; the process is left running.
        let first = runtime();
        first.block_on(async {
            let b = backend(&f, |_| {});
            let (tx, _rx) = mpsc::unbounded_channel();
            b.start(attempt.clone(), tx).await.unwrap();
            wait_for_file(&f.data_dir().join("started"), WAIT).await;
        });
        first.shutdown_background();
        runtime().block_on(async {
            let second = backend(&f, |_| {});
            let (tx, mut rx) = mpsc::unbounded_channel();
            assert_eq!(
                second.reattach(attempt, tx).await.unwrap(),
                Reattach::Attached
            );
            std::fs::write(&release, "").unwrap();
            let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
            let (error, retryable) = failure(&outcome);
            assert!(retryable);
            assert_eq!((error.code.as_str(), error.kind), (code, kind as i32));
            assert!(error.message.contains(says), "{}", error.message);
        });
    }
}

/// Issue 15: a raw container (copilot's data directories) running across a server restart is
/// collected by the new server as by the one that started it: its outputs are read from its
/// output directory (it was retried as "outputs not generated" before), and its data
/// directories go with it.
#[test]
fn a_reattached_raw_container_is_collected_with_its_outputs() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let f = Fixture::new();
    let release = f.data_dir().join("release");
    let k = key("exec15", "n0", 0);
    let script = format!(
        r#"echo started > "{s}"; while [ ! -f "{r}" ]; do sleep 0.05; done; echo $(( $(cat /var/inputs/x) + 1 )) > /var/outputs/y"#,
        s = f.data_dir().join("started").display(),
        r = release.display()
    );
    let mut template = container_task(
        "raw-container",
        &["sh", "-c", &script],
        &[],
        interface(&[("x", SimpleType::Integer)], &[("y", SimpleType::Integer)]),
    );
    if let Some(flyteidl::core::task_template::Target::Container(c)) = template.target.as_mut() {
        c.data_config = Some(flyteidl::core::DataLoadingConfig {
            enabled: true,
            input_path: "/var/inputs".into(),
            output_path: "/var/outputs".into(),
            format: flyteidl::core::data_loading_config::LiteralMapFormat::Json as i32,
            ..Default::default()
        });
    }
    let attempt = f.attempt(k.clone(), template);
    // The first server dies with its runtime; the process is left running.
    let first = runtime();
    first.block_on(async {
        f.write_inputs(&k, &literal_map(&[("x", int(41))])).await;
        let b = backend(&f, |_| {});
        let (tx, _rx) = mpsc::unbounded_channel();
        b.start(attempt.clone(), tx).await.unwrap();
        wait_for_file(&f.data_dir().join("started"), WAIT).await;
    });
    first.shutdown_background();
    runtime().block_on(async {
        let second = backend(&f, |_| {});
        let (tx, mut rx) = mpsc::unbounded_channel();
        assert_eq!(
            second.reattach(attempt, tx).await.unwrap(),
            Reattach::Attached
        );
        std::fs::write(&release, "").unwrap();
        let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
        assert!(
            matches!(outcome, AttemptOutcome::Succeeded { .. }),
            "{outcome:?}"
        );
        let outputs = f.read_outputs(&k).await.expect("outputs.pb");
        assert_eq!(outputs, literal_map(&[("y", int(42))]));
    });
    let work = f.data_dir().join("work/flytesnacks/development/exec15/n0");
    assert!(!work.join("0.data").exists() && !work.join("0").exists());
}

/// A `file://` URL as the plain path the local backend renders for raw-data prefixes.
fn plain(url: &str) -> &str {
    url.strip_prefix("file://").unwrap_or(url)
}

/// A fast-registered task: `pyflyte-fast-execute --additional-distribution <bundle> --dest-dir
/// /root -- <task command>`. The backend unpacks the bundle into the attempt's working
/// directory and runs the task command itself, as flytekit's wrapper would after unpacking
/// (`--dynamic-*` before `--resolver`, `--dynamic-dest-dir` the registered `--dest-dir` so
/// that what the task registers does not depend on where it ran, the working directory on
/// `PYTHONPATH`); switched off, the
/// wrapper runs. A stand-in `pyflyte-fast-execute` on `PATH` records whether it ran.
#[tokio::test]
async fn fast_execute_bundles_are_unpacked_in_the_working_directory() {
    let f = Fixture::new();
    // The bundle: a tar.gz holding `pkg/hello.txt`, uploaded where pyflyte would put it.
    let mut tarball = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let body = b"hello from the bundle\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tarball
        .append_data(&mut header, "pkg/hello.txt", &body[..])
        .unwrap();
    let gz = tarball.into_inner().unwrap().finish().unwrap();
    f.store
        .put("uploads/fastabc123.tar.gz", bytes::Bytes::from(gz))
        .await
        .unwrap();
    // What the data proxy handed pyflyte for the local store: a plain path.
    let distribution = f
        .store
        .native_url("uploads/fastabc123.tar.gz")
        .trim_start_matches("file://")
        .to_string();

    let bin = f.data_dir().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper_ran = f.data_dir().join("wrapper-ran");
    std::fs::write(
        bin.join("pyflyte-fast-execute"),
        format!("#!/bin/sh\ntouch '{}'\n", wrapper_ran.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("pyflyte-fast-execute"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let report = f.data_dir().join("report.txt");
    let script = format!(
        r#"{{ cat pkg/hello.txt; echo "pwd=$(pwd)"; echo "pythonpath=$PYTHONPATH"; echo "args=$*"; }} > '{}'"#,
        report.display()
    );
    let template = container_task(
        "python-task",
        &[
            "pyflyte-fast-execute",
            "--additional-distribution",
            &distribution,
            "--dest-dir",
            "/root",
            "--",
            "/bin/sh",
            "-c",
            &script,
            "sh",
            "--inputs",
            "in.pb",
            "--resolver",
            "flytekit.core.python_auto_container.default_task_resolver",
        ],
        &[("PYTHONPATH", "/opt/site")],
        None,
    );

    for unpack in [true, false] {
        let b = backend(&f, |c| {
            c.unpack_code_bundles = unpack;
            c.keep_work_dirs = true;
            c.path = Some(format!("{}:/usr/bin:/bin", bin.display()).into());
        });
        let k = key(if unpack { "fast1" } else { "fast2" }, "n0", 0);
        let (tx, mut rx) = mpsc::unbounded_channel();
        b.start(f.attempt(k.clone(), template.clone()), tx)
            .await
            .unwrap();
        let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
        assert!(
            matches!(outcome, AttemptOutcome::Succeeded { .. }),
            "{outcome:?}"
        );
        if !unpack {
            assert!(
                wrapper_ran.exists(),
                "switched off, flytekit's wrapper runs"
            );
            assert!(!report.exists());
            break;
        }
        assert!(!wrapper_ran.exists(), "the wrapper did not run");
        let work_dir = f.data_dir().join("work/flytesnacks/development/fast1/n0/0");
        let got = std::fs::read_to_string(&report).unwrap();
        let expected = format!(
            "hello from the bundle\npwd={wd}\npythonpath=/opt/site:{wd}\n\
             args=--inputs in.pb --dynamic-addl-distro {distribution} --dynamic-dest-dir /root \
             --resolver flytekit.core.python_auto_container.default_task_resolver\n",
            wd = work_dir.display()
        );
        assert_eq!(got, expected);
        std::fs::remove_file(&report).unwrap();
    }
}

/// The log lines written while the guard lives (this thread; the tests' runtime is
/// single-threaded, so the backend's tasks log here too).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

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

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Issues 11.9 and 14.1: without `pyflyte-execute` on the task `PATH`, a Python task fails
/// with a message (and an ERROR line) naming the fix.
#[tokio::test]
async fn a_missing_python_entry_point_is_reported_with_the_fix() {
    let (logs, _guard) = Captured::start();
    let f = Fixture::new();
    let empty = f.data_dir().join("no-python");
    std::fs::create_dir_all(&empty).unwrap();
    let b = backend(&f, |c| c.path = Some(empty.clone().into_os_string()));

    let k = key("exec-nopy", "n0", 0);
    let template = container_task(
        "python-task",
        &["pyflyte-execute", "--inputs", "{{.input}}"],
        &[],
        None,
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), template), tx).await.unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let (error, retryable) = failure(&outcome);
    assert!(!retryable);
    assert_eq!(error.code, "StartError");
    for fix in [
        "pyflyte-execute",
        "engine.python_venv",
        "FLYTE_RS_ENGINE__PYTHON_VENV",
    ] {
        assert!(error.message.contains(fix), "{}", error.message);
    }
    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| l.contains("ERROR")
            && l.contains("cannot start")
            && l.contains("engine.python_venv")),
        "no ERROR line: {lines:#?}"
    );
}
