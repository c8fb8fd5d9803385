//! Warm Python workers (issue 18): attempts whose command is flytekit's entrypoint are forked
//! from a pre-started interpreter, through the real flytekit 1.16.31 of the repository's
//! `.venv` (scripts/setup-python.sh). What one attempt does to its interpreter (globals,
//! environment, a crash, a memory hog) never reaches another, two versions of a module run
//! side by side, and abort kills the task's whole process group.

mod backend_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use backend_support::*;
use bytes::Bytes;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, BackendError, LocalProcessBackend, LocalProcessConfig,
    PythonEnvironment, TaskBackend,
};
use flyteidl::core::resources::{ResourceEntry, ResourceName};
use flyteidl::core::{
    LiteralType, Resources, SimpleType, TaskTemplate, execution_error, literal, scalar,
    task_template,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(240);

/// The module of the test tasks; `{VERSION}` differs between the two code bundles.
const MODULE: &str = r#"
import os
import signal
import subprocess
import sys
import time

import flytekit
from flytekit import task

VERSION = "{VERSION}"
STATE = []


def _parent():
    # A warm task's parent is the reaper forked from the template interpreter.
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
        return "warm" if b"warm_template.py" in f.read() else "plain"


@task
def mutate(x: int) -> str:
    STATE.append(x)
    seen = hasattr(flytekit, "_touched_by_a_task")
    flytekit._touched_by_a_task = True
    return f"{len(STATE)} {seen} {_parent()}"


@task
def env(x: int) -> str:
    seen = os.environ.get("SET_BY_A_TASK", "unset")
    os.environ["SET_BY_A_TASK"] = "set"
    return f"{seen} {os.environ.get('ONLY_FIRST', 'unset')} {_parent()}"


@task
def segv(x: int) -> str:
    os.kill(os.getpid(), signal.SIGSEGV)
    return "survived"


@task
def hog(x: int) -> str:
    b = b"x" * (400 << 20)
    time.sleep(60)
    return str(len(b))


@task
def hold(x: int) -> str:
    # Long enough for the memory sampler to look several times.
    time.sleep(1.5)
    return _parent()


@task
def version(x: int) -> str:
    # Both versions run at once: each waits (bounded) for the other's mark.
    d = os.environ["BARRIER_DIR"]
    open(os.path.join(d, VERSION), "w").close()
    deadline = time.time() + 60
    while len(os.listdir(d)) < 2 and time.time() < deadline:
        time.sleep(0.02)
    return f"{VERSION} {len(os.listdir(d))} {_parent()}"


@task
def prefix(x: int) -> str:
    return f"{sys.prefix} {os.environ.get('VIRTUAL_ENV')} {_parent()}"


@task
def spawn_and_wait(x: int) -> str:
    p = subprocess.Popen(["sleep", "300"])
    with open(os.environ["PID_FILE"], "w") as f:
        f.write(f"{os.getpid()} {p.pid}\n")
    time.sleep(300)
    return "not aborted"
"#;

fn venv() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
    assert!(
        venv.join("bin/pyflyte-execute").exists(),
        "no .venv with flytekit at {}: run scripts/setup-python.sh first",
        venv.display()
    );
    std::fs::canonicalize(venv).expect("canonical .venv path")
}

fn backend(f: &Fixture, warm: bool) -> LocalProcessBackend {
    let mut config = LocalProcessConfig::new(f.data_dir(), "http://127.0.0.1:30080");
    config.venv = Some(venv());
    config.max_concurrency = 4;
    config.kill_grace_period = Duration::from_secs(2);
    config.warm_workers = warm;
    LocalProcessBackend::new(config, f.store.clone())
}

/// Uploads a code bundle of `iso_mod.py` at `version`; returns its native URL.
async fn bundle(f: &Fixture, version: &str) -> String {
    let src = f.data_dir().join(format!("src-{version}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("iso_mod.py"), MODULE.replace("{VERSION}", version)).unwrap();
    let tarball = f.data_dir().join(format!("fast-{version}.tar.gz"));
    let status = std::process::Command::new("tar")
        .args([
            "-czf",
            tarball.to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
        ])
        .arg("iso_mod.py")
        .status()
        .unwrap();
    assert!(status.success());
    let key = format!("uploads/flytesnacks/development/{version}/fast{version}.tar.gz");
    f.store
        .put(&key, Bytes::from(std::fs::read(&tarball).unwrap()))
        .await
        .unwrap();
    f.store.native_url(&key)
}

/// A fast-registered python task of `iso_mod` returning a string, as flytekit serialises it.
fn task(bundle_url: &str, name: &str) -> TaskTemplate {
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
        "iso_mod",
        "task-name",
        name,
    ];
    let mut t = container_task(
        "python-task",
        &args,
        &[],
        interface(&[("x", SimpleType::Integer)], &[]),
    );
    t.id = task_id(&format!("iso_mod.{name}"));
    if let Some(iface) = t.interface.as_mut() {
        iface.outputs = Some(flyteidl::core::VariableMap {
            variables: [(
                "o0".to_string(),
                flyteidl::core::Variable {
                    r#type: Some(LiteralType {
                        r#type: Some(flyteidl::core::literal_type::Type::Simple(
                            SimpleType::String as i32,
                        )),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )]
            .into(),
        });
    }
    t
}

/// Starts one attempt of `template` with `env` added; its updates come on the receiver.
async fn start(
    f: &Fixture,
    b: &LocalProcessBackend,
    k: &AttemptKey,
    template: TaskTemplate,
    env: &[(&str, &str)],
) -> Updates {
    f.write_inputs(k, &literal_map(&[("x", int(1))])).await;
    let mut attempt = f.attempt(k.clone(), template);
    for (name, value) in env {
        attempt.env.insert(name.to_string(), value.to_string());
    }
    let (tx, rx) = mpsc::unbounded_channel();
    b.start(attempt, tx).await.unwrap();
    rx
}

/// Runs one attempt to its end: its string output, or the failure with its log.
async fn run(
    f: &Fixture,
    b: &LocalProcessBackend,
    k: &AttemptKey,
    template: TaskTemplate,
    env: &[(&str, &str)],
) -> Result<String, (AttemptOutcome, String)> {
    let mut rx = start(f, b, k, template, env).await;
    finish(f, b, k, &mut rx).await
}

async fn finish(
    f: &Fixture,
    b: &LocalProcessBackend,
    k: &AttemptKey,
    rx: &mut Updates,
) -> Result<String, (AttemptOutcome, String)> {
    let (_, outcome) = until_finished(rx, k, WAIT).await;
    let log = std::fs::read_to_string(b.log_layout().log_file_for(k)).unwrap_or_default();
    if !matches!(outcome, AttemptOutcome::Succeeded { .. }) {
        return Err((outcome, log));
    }
    let outputs = f.read_outputs(k).await.expect("outputs.pb");
    match outputs.literals["o0"].value.as_ref() {
        Some(literal::Value::Scalar(s)) => match s.value.as_ref() {
            Some(scalar::Value::Primitive(p)) => match &p.value {
                Some(flyteidl::core::primitive::Value::StringValue(s)) => Ok(s.clone()),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_tasks_globals_and_environment_do_not_reach_the_next_attempt() {
    let f = Fixture::new();
    let b = backend(&f, true);
    let url = bundle(&f, "v1").await;
    for n in 0..3 {
        let k = key("warm1", &format!("m{n}"), 0);
        let out = run(&f, &b, &k, task(&url, "mutate"), &[]).await;
        // A fresh module each time, flytekit untouched by the previous attempt.
        assert_eq!(out.as_deref(), Ok("1 False warm"), "{out:?}");
    }
    let k = key("warm1", "e0", 0);
    let out = run(&f, &b, &k, task(&url, "env"), &[("ONLY_FIRST", "yes")]).await;
    assert_eq!(out.as_deref(), Ok("unset yes warm"), "{out:?}");
    let k = key("warm1", "e1", 0);
    let out = run(&f, &b, &k, task(&url, "env"), &[]).await;
    assert_eq!(out.as_deref(), Ok("unset unset warm"), "{out:?}");
}

#[tokio::test]
async fn a_segfaulting_task_fails_with_its_signal_and_the_pool_keeps_serving() {
    let f = Fixture::new();
    let b = backend(&f, true);
    let url = bundle(&f, "v1").await;
    let k = key("warm2", "s0", 0);
    let (outcome, log) = run(&f, &b, &k, task(&url, "segv"), &[]).await.unwrap_err();
    let (error, retryable) = failure(&outcome);
    assert!(retryable, "{outcome:?}\n{log}");
    assert_eq!(
        error.kind,
        execution_error::ErrorKind::User as i32,
        "{error:?}"
    );
    assert!(
        error.message.contains("SIGSEGV") || error.message.contains("139"),
        "{}",
        error.message
    );
    let k = key("warm2", "s1", 0);
    let out = run(&f, &b, &k, task(&url, "mutate"), &[]).await;
    assert_eq!(out.as_deref(), Ok("1 False warm"), "{out:?}");
}

#[tokio::test]
async fn a_task_over_its_memory_limit_is_oom_killed_and_the_pool_keeps_serving() {
    let f = Fixture::new();
    let b = backend(&f, true);
    let url = bundle(&f, "v1").await;
    let k = key("warm3", "h0", 0);
    let mut hog = task(&url, "hog");
    if let Some(task_template::Target::Container(c)) = &mut hog.target {
        c.resources = Some(Resources {
            requests: vec![],
            limits: vec![ResourceEntry {
                name: ResourceName::Memory as i32,
                value: "300Mi".into(),
            }],
        });
    }
    let (outcome, log) = run(&f, &b, &k, hog, &[]).await.unwrap_err();
    let (error, retryable) = failure(&outcome);
    assert_eq!(error.code, "OOMKilled", "{}\n{log}", error.message);
    assert!(retryable);
    // Forked from the pool, the task still lands in its attempt's memory cgroup (the reaper
    // is moved in before its go byte): the kernel, not the sampler, stopped it.
    if b.memory_cgroups().is_some() {
        assert!(
            error.message.contains("the kernel killed it (OOMKilled)"),
            "{}",
            error.message
        );
    }
    // A task of the pool is not charged twice for the interpreter it was forked from.
    let k = key("warm3", "h1", 0);
    let mut small = task(&url, "hold");
    if let Some(task_template::Target::Container(c)) = &mut small.target {
        c.resources = Some(Resources {
            requests: vec![],
            limits: vec![ResourceEntry {
                name: ResourceName::Memory as i32,
                // What a plain pyflyte-execute process of this task fits in (below), while
                // the reaper and the task hold the interpreter's heap twice over (~150 MiB
                // counted by resident anonymous memory).
                value: "100Mi".into(),
            }],
        });
    }
    let out = run(&f, &b, &k, small.clone(), &[]).await;
    assert_eq!(out.as_deref(), Ok("warm"), "{out:?}");
    let plain = backend(&f, false);
    let k = key("warm3", "h2", 0);
    let out = run(&f, &plain, &k, small, &[]).await;
    assert_eq!(out.as_deref(), Ok("plain"), "{out:?}");
}

#[tokio::test]
async fn two_code_versions_of_one_module_run_side_by_side() {
    let f = Fixture::new();
    let b = backend(&f, true);
    let (v1, v2) = (bundle(&f, "v1").await, bundle(&f, "v2").await);
    let barrier = f.data_dir().join("barrier");
    std::fs::create_dir_all(&barrier).unwrap();
    let barrier = barrier.to_str().unwrap();
    let (k1, k2) = (key("warm4", "a", 0), key("warm4", "b", 0));
    let mut rx1 = start(
        &f,
        &b,
        &k1,
        task(&v1, "version"),
        &[("BARRIER_DIR", barrier)],
    )
    .await;
    let mut rx2 = start(
        &f,
        &b,
        &k2,
        task(&v2, "version"),
        &[("BARRIER_DIR", barrier)],
    )
    .await;
    let out1 = finish(&f, &b, &k1, &mut rx1).await;
    let out2 = finish(&f, &b, &k2, &mut rx2).await;
    // Each saw its own code, and both marks: they ran at the same time.
    assert_eq!(out1.as_deref(), Ok("v1 2 warm"), "{out1:?}");
    assert_eq!(out2.as_deref(), Ok("v2 2 warm"), "{out2:?}");
}

#[tokio::test]
async fn abort_kills_the_whole_group_of_a_warm_task() {
    let f = Fixture::new();
    let b = backend(&f, true);
    let url = bundle(&f, "v1").await;
    let pid_file = f.data_dir().join("pids");
    let k = key("warm5", "x", 0);
    let mut rx = start(
        &f,
        &b,
        &k,
        task(&url, "spawn_and_wait"),
        &[("PID_FILE", pid_file.to_str().unwrap())],
    )
    .await;
    let pids = wait_for_file(&pid_file, WAIT).await;
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|p| alive(*p)), "{pids:?}");
    b.abort(&k).await;
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert_eq!(outcome, AttemptOutcome::Aborted);
    for pid in pids {
        assert!(!alive(pid), "process {pid} of the aborted task still runs");
    }
}

#[tokio::test]
async fn switched_off_every_attempt_is_a_plain_process() {
    let f = Fixture::new();
    let b = backend(&f, false);
    let url = bundle(&f, "v1").await;
    let k = key("warm6", "p", 0);
    let out = run(&f, &b, &k, task(&url, "mutate"), &[]).await;
    assert_eq!(out.as_deref(), Ok("1 False plain"), "{out:?}");
}

#[tokio::test]
async fn an_environment_without_flytekit_runs_plain_processes() {
    let f = Fixture::new();
    // A "venv" whose pyflyte-execute names an interpreter without flytekit.
    let fake = f.data_dir().join("fake-venv");
    std::fs::create_dir_all(fake.join("bin")).unwrap();
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("a system python3");
    let no_flytekit = std::process::Command::new(python)
        .args(["-c", "import flytekit"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!no_flytekit.success(), "{} has flytekit", python.display());
    let script = fake.join("bin/pyflyte-execute");
    std::fs::write(
        &script,
        format!("#!{}\nprint('plain interpreter ran')\n", python.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = LocalProcessConfig::new(f.data_dir(), "http://127.0.0.1:30080");
    config.venv = Some(fake);
    let b = LocalProcessBackend::new(config, f.store.clone());
    let k = key("warm7", "p", 0);
    let t = container_task("python-task", &["pyflyte-execute"], &[], None);
    let (outcome, log) = {
        let mut rx = start(&f, &b, &k, t, &[]).await;
        let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
        let log = std::fs::read_to_string(b.log_layout().log_file_for(&k)).unwrap_or_default();
        (outcome, log)
    };
    // It ran (and, writing no outputs for a task without outputs, succeeded).
    assert!(log.contains("plain interpreter ran"), "{outcome:?}\n{log}");
}

/// The template interpreters serving the backend of `f` (by their script's path).
fn templates(f: &Fixture) -> Vec<i32> {
    let script = f.data_dir().join("work/.warm/warm_template.py");
    let script = script.to_str().unwrap().as_bytes().to_vec();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(script.len()).any(|w| w == script.as_slice()))
        })
        // Reapers and tasks are forks of it too: the template is this process's child.
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                let fields: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
                fields[1] == std::process::id().to_string() && fields[0] != "Z"
            })
        })
        .collect()
}

#[tokio::test]
async fn a_template_that_dies_is_replaced() {
    let f = Fixture::new();
    let b = backend(&f, true);
    let url = bundle(&f, "v1").await;
    let k = key("warm8", "a", 0);
    let out = run(&f, &b, &k, task(&url, "mutate"), &[]).await;
    assert_eq!(out.as_deref(), Ok("1 False warm"), "{out:?}");
    let pids = templates(&f);
    assert_eq!(pids.len(), 1, "{pids:?}");
    // SAFETY: kill only sends a signal to the template this test's backend started.
    unsafe {
        libc::kill(pids[0], libc::SIGKILL);
    }
    let k = key("warm8", "b", 0);
    let out = run(&f, &b, &k, task(&url, "mutate"), &[]).await;
    assert_eq!(out.as_deref(), Ok("1 False warm"), "{out:?}");
    let now = templates(&f);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, pids);
}

#[tokio::test]
async fn a_template_retires_after_its_forks_and_another_serves() {
    let f = Fixture::new();
    let mut config = LocalProcessConfig::new(f.data_dir(), "http://127.0.0.1:30080");
    config.venv = Some(venv());
    config.warm.max_forks = 1;
    let b = LocalProcessBackend::new(config, f.store.clone());
    let url = bundle(&f, "v1").await;
    for n in 0..3 {
        let k = key("warm9", &format!("n{n}"), 0);
        let out = run(&f, &b, &k, task(&url, "mutate"), &[]).await;
        assert_eq!(out.as_deref(), Ok("1 False warm"), "{out:?}");
    }
    // One log per template started: one per fork, and the next one already waiting.
    let logs = std::fs::read_dir(f.data_dir().join("work/.warm"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .count();
    assert!(logs >= 3, "{logs} templates started");
}

/// The handshake of a server that dies between the fork and recording it: the reaper sees the
/// connection close without the go byte, drops the record it was given and runs nothing.
#[tokio::test]
async fn a_fork_never_released_runs_nothing_and_drops_its_record() {
    use std::io::{BufRead, Write};
    let f = Fixture::new();
    let b = backend(&f, true);
    let url = bundle(&f, "v1").await;
    let k = key("warm10", "a", 0);
    let out = run(&f, &b, &k, task(&url, "mutate"), &[]).await;
    assert_eq!(out.as_deref(), Ok("1 False warm"), "{out:?}");
    let socket = std::fs::read_dir(f.data_dir().join("work/.warm"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "sock"))
        .expect("the template's socket");
    let dir = f.data_dir().join("manual");
    std::fs::create_dir_all(&dir).unwrap();
    let (log, exit, pid_file) = (dir.join("a.log"), dir.join("a.exit"), dir.join("a.pid"));
    let request = serde_json::json!({
        "entry": "pyflyte-execute",
        "argv": [venv().join("bin/pyflyte-execute"), "--help"],
        "env": {"PATH": "/usr/bin:/bin"},
        "cwd": dir,
        "log": log,
        "exit_file": exit,
        "pid_file": pid_file,
    });
    // `record(pid)`: what the server writes in the pid file once it has the reply.
    let abandon = async |record: &dyn Fn(u32) -> String| {
        let mut conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        conn.write_all(format!("{request}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        std::io::BufReader::new(&conn)
            .read_line(&mut reply)
            .unwrap();
        let pid: u32 = reply.split(' ').nth(1).unwrap().parse().unwrap();
        std::fs::write(&pid_file, record(pid)).unwrap();
        drop(conn);
        let deadline = std::time::Instant::now() + WAIT;
        while alive(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "reaper {pid} still runs"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    abandon(&|pid| format!("{pid} 1\n")).await;
    assert!(!pid_file.exists(), "the reaper left its record");
    assert!(!exit.exists(), "an exit status without a task");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.is_empty(), "the task ran: {text}");
    // A record that is not the reaper's (the attempt went on as a plain process) stays.
    abandon(&|_| "1234567 1\n".to_string()).await;
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), "1234567 1\n");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.is_empty(), "the task ran: {text}");
}

/// A second real Python environment, made in a second: a venv over the same base interpreter
/// whose site-packages reach `.venv`'s through a `.pth` file, with flytekit's entrypoint
/// scripts naming its own interpreter (as `pip install` in it would write them).
fn second_venv(dir: &Path) -> PathBuf {
    let made = std::process::Command::new(venv().join("bin/python"))
        .args(["-m", "venv", "--without-pip"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(made.success());
    let site = |v: &Path| -> PathBuf {
        let out = std::process::Command::new(v.join("bin/python"))
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ])
            .output()
            .unwrap();
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    };
    std::fs::write(
        site(dir).join("main_venv.pth"),
        format!("{}\n", site(&venv()).display()),
    )
    .unwrap();
    for entry in [
        "pyflyte-execute",
        "pyflyte-fast-execute",
        "pyflyte-map-execute",
    ] {
        let script = std::fs::read_to_string(venv().join("bin").join(entry)).unwrap();
        let body = script.split_once('\n').unwrap().1;
        let own = dir.join("bin").join(entry);
        std::fs::write(
            &own,
            format!("#!{}\n{body}", dir.join("bin/python").display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir.to_path_buf()
}

fn with_image(mut t: TaskTemplate, image: &str) -> TaskTemplate {
    if let Some(task_template::Target::Container(c)) = t.target.as_mut() {
        c.image = image.into();
    }
    t
}

/// A backend whose `ghcr.io/acme/ml:*` images run in `other` (and a later entry that never
/// wins for them); every other image runs in `.venv`.
fn mapped_backend(f: &Fixture, other: &Path, warm: bool) -> LocalProcessBackend {
    let mut config = LocalProcessConfig::new(f.data_dir(), "http://127.0.0.1:30080");
    config.venv = Some(venv());
    config.python_environments = vec![
        PythonEnvironment {
            image: "ghcr.io/acme/ml:*".into(),
            venv: other.to_path_buf(),
        },
        PythonEnvironment {
            image: "ghcr.io/acme/*".into(),
            venv: f.data_dir().join("never-used"),
        },
    ];
    config.warm_workers = warm;
    LocalProcessBackend::new(config, f.store.clone())
}

#[tokio::test]
async fn a_tasks_image_picks_its_python_environment_and_its_own_warm_template() {
    let f = Fixture::new();
    let other = second_venv(&f.data_dir().join("ml-venv"));
    let b = mapped_backend(&f, &other, true);
    let url = bundle(&f, "v1").await;
    let main = venv();
    for n in 0..2 {
        let k = key("env1", &format!("ml{n}"), 0);
        let t = with_image(task(&url, "prefix"), "ghcr.io/acme/ml:v3");
        let out = run(&f, &b, &k, t, &[]).await;
        let want = format!("{0} {0} warm", other.display());
        assert_eq!(out.as_deref(), Ok(want.as_str()), "{out:?}");
        let k = key("env1", &format!("main{n}"), 0);
        let out = run(&f, &b, &k, task(&url, "prefix"), &[]).await;
        let want = format!("{0} {0} warm", main.display());
        assert_eq!(out.as_deref(), Ok(want.as_str()), "{out:?}");
    }
    // One template per environment, each serving its own attempts.
    let pids = templates(&f);
    assert_eq!(pids.len(), 2, "{pids:?}");
}

#[tokio::test]
async fn pool_off_a_tasks_image_picks_its_python_environment() {
    let f = Fixture::new();
    let other = second_venv(&f.data_dir().join("ml-venv"));
    let b = mapped_backend(&f, &other, false);
    let url = bundle(&f, "v1").await;
    let k = key("env2", "ml", 0);
    let t = with_image(task(&url, "prefix"), "ghcr.io/acme/ml:v3");
    let out = run(&f, &b, &k, t, &[]).await;
    let want = format!("{0} {0} plain", other.display());
    assert_eq!(out.as_deref(), Ok(want.as_str()), "{out:?}");
}

#[tokio::test]
async fn an_image_mapped_to_a_missing_environment_fails_naming_it() {
    let f = Fixture::new();
    let other = f.data_dir().join("not-made");
    let b = mapped_backend(&f, &other, true);
    let url = bundle(&f, "v1").await;
    let k = key("env3", "ml", 0);
    f.write_inputs(&k, &literal_map(&[("x", int(1))])).await;
    let t = with_image(task(&url, "prefix"), "ghcr.io/acme/ml:v3");
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = b.start(f.attempt(k, t), tx).await.unwrap_err();
    let BackendError::Unsupported(message) = &err else {
        panic!("{err:?}");
    };
    for part in [
        "ghcr.io/acme/ml:v3",
        other.to_str().unwrap(),
        "engine.python_environments",
    ] {
        assert!(message.contains(part), "{part} not in {message}");
    }
}
