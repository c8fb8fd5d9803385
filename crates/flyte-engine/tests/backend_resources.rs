//! Task resources on the local-process backend with real processes: admission by the CPU and
//! memory tasks request, requests no host can satisfy, eager tasks that wait for others, and
//! memory limits (issue 15 items 3 and 10).

mod backend_support;

use std::time::Duration;

use backend_support::*;
use flyte_engine::backend::resources::{Capacity, Need};
use flyte_engine::backend::{
    AttemptOutcome, AttemptUpdate, LocalProcessBackend, LocalProcessConfig, TaskBackend,
};
use flyteidl::core::resources::{ResourceEntry, ResourceName};
use flyteidl::core::{Resources, TaskMetadata, TaskTemplate, execution_error, task_template};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(60);
const GI: u64 = 1 << 30;

fn backend(f: &Fixture, cpus: u64) -> LocalProcessBackend {
    let mut config = LocalProcessConfig::new(f.data_dir(), "http://127.0.0.1:30080/");
    config.kill_grace_period = Duration::from_millis(500);
    config.capacity = Some(Capacity(Need {
        cpu_milli: cpus * 1000,
        memory: 4 * GI,
    }));
    LocalProcessBackend::new(config, f.store.clone())
}

fn with_resources(
    mut t: TaskTemplate,
    requests: &[(ResourceName, &str)],
    limits: &[(ResourceName, &str)],
) -> TaskTemplate {
    let entries = |list: &[(ResourceName, &str)]| {
        list.iter()
            .map(|(n, v)| ResourceEntry {
                name: *n as i32,
                value: v.to_string(),
            })
            .collect()
    };
    if let Some(task_template::Target::Container(c)) = &mut t.target {
        c.resources = Some(Resources {
            requests: entries(requests),
            limits: entries(limits),
        });
    }
    t
}

#[tokio::test]
async fn a_request_larger_than_the_host_fails_at_once() {
    let f = Fixture::new();
    let b = backend(&f, 2);
    let k = key("res1", "n0", 0);
    let template = with_resources(
        shell_task("true", None),
        &[(ResourceName::Cpu, "64"), (ResourceName::Memory, "1Ti")],
        &[],
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), template), tx).await.unwrap();
    let (updates, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert!(
        updates
            .iter()
            .all(|u| !matches!(u, AttemptUpdate::Running { .. })),
        "it never ran: {updates:?}"
    );
    let (error, retryable) = failure(&outcome);
    assert_eq!(error.code, "Unschedulable");
    assert_eq!(error.kind, execution_error::ErrorKind::User as i32);
    assert!(!retryable);
    for part in ["cpu=64", "memory=1Ti", "2 CPU and 4 GiB"] {
        assert!(error.message.contains(part), "{part}: {}", error.message);
    }
}

#[tokio::test]
async fn tasks_whose_requests_do_not_fit_together_take_turns() {
    let f = Fixture::new();
    let b = backend(&f, 2);
    let done = f.data_dir().join("first.done");
    let first = format!(r#"sleep 0.5; touch "{}""#, done.display());
    // Succeeds only if the first has ended when it starts.
    let second = format!(r#"test -f "{}""#, done.display());
    let two_cpus =
        |script: &str| with_resources(shell_task(script, None), &[(ResourceName::Cpu, "2")], &[]);
    let (k1, k2) = (key("res2", "n0", 0), key("res2", "n1", 0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k1.clone(), two_cpus(&first)), tx.clone())
        .await
        .unwrap();
    b.start(f.attempt(k2.clone(), two_cpus(&second)), tx)
        .await
        .unwrap();
    let mut finished = 0;
    let mut queued_reason = None;
    while finished < 2 {
        let (k, u) = next(&mut rx, WAIT).await;
        match u {
            AttemptUpdate::Queued { reason } if k == k2 => queued_reason = Some(reason),
            AttemptUpdate::Finished(outcome) => {
                assert!(
                    matches!(outcome, AttemptOutcome::Succeeded { .. }),
                    "{k:?}: {outcome:?}"
                );
                finished += 1;
            }
            _ => {}
        }
    }
    let reason = queued_reason.expect("the second waited");
    assert!(reason.contains("waiting for 2 CPU"), "{reason}");
}

#[tokio::test]
async fn an_eager_task_does_not_hold_capacity_while_it_waits() {
    // The eager task waits for a task that needs the only CPU; before, it held that CPU and
    // the other stayed QUEUED forever.
    let f = Fixture::new();
    let b = backend(&f, 1);
    let child_done = f.data_dir().join("child.done");
    let eager_script = format!(
        r#"while [ ! -f "{0}" ]; do sleep 0.05; done"#,
        child_done.display()
    );
    let mut eager = shell_task(&eager_script, None);
    eager.metadata = Some(TaskMetadata {
        is_eager: true,
        ..Default::default()
    });
    let child = shell_task(&format!(r#"touch "{}""#, child_done.display()), None);
    let (ke, kc) = (key("res3", "n0", 0), key("res3", "n1", 0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(ke.clone(), eager), tx.clone())
        .await
        .unwrap();
    b.start(f.attempt(kc.clone(), child), tx).await.unwrap();
    let mut finished = 0;
    while finished < 2 {
        let (k, u) = next(&mut rx, WAIT).await;
        if let AttemptUpdate::Finished(outcome) = u {
            assert!(
                matches!(outcome, AttemptOutcome::Succeeded { .. }),
                "{k:?}: {outcome:?}"
            );
            finished += 1;
        }
    }
}

#[tokio::test]
async fn a_task_over_its_memory_limit_is_oom_killed() {
    let f = Fixture::new();
    let b = backend(&f, 2);
    let k = key("res4", "n0", 0);
    // 300 MiB held for a minute, under a 100 MiB limit.
    let hog = r#"python3 -c 'import time; b = b"x" * (300 << 20); print("allocated", flush=True); time.sleep(60)'"#;
    let template = with_resources(
        shell_task(hog, None),
        &[],
        &[(ResourceName::Memory, "100Mi")],
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), template), tx).await.unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let (error, retryable) = failure(&outcome);
    assert_eq!(error.code, "OOMKilled", "{}", error.message);
    assert_eq!(error.kind, execution_error::ErrorKind::User as i32);
    assert!(retryable);
    assert!(
        error
            .message
            .contains("exit code (137). Reason [OOMKilled]"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("over its limit of 100 MiB"),
        "{}",
        error.message
    );

    // Within its limit the same task shape succeeds.
    let k = key("res4", "n1", 0);
    let small = r#"python3 -c 'b = b"x" * (10 << 20)'"#;
    let template = with_resources(
        shell_task(small, None),
        &[],
        &[(ResourceName::Memory, "100Mi")],
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), template), tx).await.unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert!(
        matches!(outcome, AttemptOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
}

/// A process re-attached after a restart is held to its memory limit too.
#[test]
fn a_reattached_attempt_over_its_memory_limit_is_oom_killed() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let f = Fixture::new();
    let (started, release) = (f.data_dir().join("started"), f.data_dir().join("release"));
    let k = key("res5", "n0", 0);
    let script = format!(
        r#"echo started > "{s}"; while [ ! -f "{r}" ]; do sleep 0.05; done; python3 -c 'import time; b = b"x" * (300 << 20); time.sleep(60)'"#,
        s = started.display(),
        r = release.display()
    );
    let template = with_resources(
        shell_task(&script, None),
        &[],
        &[(ResourceName::Memory, "100Mi")],
    );
    let attempt = f.attempt(k.clone(), template);
    // The first server dies with its runtime; the process is left running.
    let first = runtime();
    first.block_on(async {
        let b = backend(&f, 2);
        let (tx, _rx) = mpsc::unbounded_channel();
        b.start(attempt.clone(), tx).await.unwrap();
        wait_for_file(&started, WAIT).await;
    });
    first.shutdown_background();
    runtime().block_on(async {
        let second = backend(&f, 2);
        let (tx, mut rx) = mpsc::unbounded_channel();
        assert_eq!(
            second.reattach(attempt, tx).await.unwrap(),
            flyte_engine::backend::Reattach::Attached
        );
        std::fs::write(&release, "").unwrap();
        let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
        let (error, retryable) = failure(&outcome);
        assert_eq!(error.code, "OOMKilled", "{}", error.message);
        assert!(retryable);
    });
}
