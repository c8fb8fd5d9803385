//! The in-engine task types: `echo` (outputs are the inputs) and `core-sleep` (sleeps for its
//! duration input, abortable), with no process.

mod backend_support;

use std::time::{Duration, Instant};

use backend_support::*;
use flyte_engine::backend::{AttemptOutcome, AttemptUpdate, BuiltinBackend, TaskBackend};
use flyteidl::core::{SimpleType, execution_error, primitive};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn handles_only_echo_and_core_sleep() {
    let f = Fixture::new();
    let b = BuiltinBackend::new(f.store.clone());
    assert!(b.handles(&plugin_task("echo", None)));
    assert!(b.handles(&plugin_task("core-sleep", None)));
    // flytekitplugins-sleep tasks are python function tasks: they carry a container, still ours.
    let mut sleep_with_container = shell_task("true", None);
    sleep_with_container.r#type = "core-sleep".into();
    assert!(b.handles(&sleep_with_container));
    assert!(!b.handles(&shell_task("true", None)));
    assert_eq!(b.name(), "builtin");
}

#[tokio::test]
async fn echo_copies_inputs_to_outputs() {
    let f = Fixture::new();
    let b = BuiltinBackend::new(f.store.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();

    // flytekit's Echo: one input `a`, one output `o0`.
    let k = key("e1", "n0", 0);
    let t = plugin_task(
        "echo",
        interface(
            &[("a", SimpleType::Integer)],
            &[("o0", SimpleType::Integer)],
        ),
    );
    f.write_inputs(&k, &literal_map(&[("a", int(5))])).await;
    b.start(f.attempt(k.clone(), t), tx.clone()).await.unwrap();
    let (updates, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert!(updates.is_empty(), "{updates:?}");
    assert_eq!(outcome, AttemptOutcome::Succeeded { logs: vec![] });
    assert_eq!(
        f.read_outputs(&k).await.unwrap(),
        literal_map(&[("o0", int(5))])
    );

    // Several, by name.
    let k = key("e1", "n1", 0);
    let both = [("a", SimpleType::Integer), ("b", SimpleType::String)];
    let t = plugin_task("echo", interface(&both, &both));
    let s = prim(primitive::Value::StringValue("x".into()));
    f.write_inputs(&k, &literal_map(&[("a", int(1)), ("b", s.clone())]))
        .await;
    b.start(f.attempt(k.clone(), t), tx.clone()).await.unwrap();
    assert!(matches!(
        until_finished(&mut rx, &k, WAIT).await.1,
        AttemptOutcome::Succeeded { .. }
    ));
    assert_eq!(
        f.read_outputs(&k).await.unwrap(),
        literal_map(&[("a", int(1)), ("b", s.clone())])
    );

    // Several, by type (flytekit names the outputs o0, o1 in input order).
    let k = key("e1", "n2", 0);
    let t = plugin_task(
        "echo",
        interface(
            &[("b", SimpleType::Integer), ("a", SimpleType::String)],
            &[("o0", SimpleType::Integer), ("o1", SimpleType::String)],
        ),
    );
    f.write_inputs(&k, &literal_map(&[("b", int(2)), ("a", s.clone())]))
        .await;
    b.start(f.attempt(k.clone(), t), tx.clone()).await.unwrap();
    assert!(matches!(
        until_finished(&mut rx, &k, WAIT).await.1,
        AttemptOutcome::Succeeded { .. }
    ));
    assert_eq!(
        f.read_outputs(&k).await.unwrap(),
        literal_map(&[("o0", int(2)), ("o1", s)])
    );

    // No inputs, no outputs (no inputs.pb either): an empty outputs.pb.
    let k = key("e1", "n3", 0);
    b.start(f.attempt(k.clone(), plugin_task("echo", None)), tx.clone())
        .await
        .unwrap();
    assert!(matches!(
        until_finished(&mut rx, &k, WAIT).await.1,
        AttemptOutcome::Succeeded { .. }
    ));
    assert_eq!(f.read_outputs(&k).await.unwrap(), literal_map(&[]));

    // An interface echo cannot map: a permanent BadTaskSpecification.
    let k = key("e1", "n4", 0);
    let t = plugin_task("echo", interface(&[("a", SimpleType::Integer)], &[]));
    b.start(f.attempt(k.clone(), t), tx.clone()).await.unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let (error, retryable) = failure(&outcome);
    assert!(!retryable);
    assert_eq!(
        (error.code.as_str(), error.kind),
        (
            "BadTaskSpecification",
            execution_error::ErrorKind::User as i32
        )
    );
    let k = key("e1", "n5", 0);
    let ambiguous = [("a", SimpleType::Integer), ("b", SimpleType::Integer)];
    let t = plugin_task(
        "echo",
        interface(
            &ambiguous,
            &[("o0", SimpleType::Integer), ("o1", SimpleType::Integer)],
        ),
    );
    b.start(f.attempt(k.clone(), t), tx).await.unwrap();
    assert!(!failure(&until_finished(&mut rx, &k, WAIT).await.1).1);
}

fn sleep_task() -> flyteidl::core::TaskTemplate {
    plugin_task(
        "core-sleep",
        interface(&[("duration", SimpleType::Duration)], &[]),
    )
}

#[tokio::test]
async fn core_sleep_sleeps_for_its_duration() {
    let f = Fixture::new();
    let b = BuiltinBackend::new(f.store.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let k = key("s1", "n0", 0);
    f.write_inputs(
        &k,
        &literal_map(&[("duration", duration(Duration::from_millis(300)))]),
    )
    .await;
    let started = Instant::now();
    b.start(f.attempt(k.clone(), sleep_task()), tx.clone())
        .await
        .unwrap();
    let (updates, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome, AttemptOutcome::Succeeded { logs: vec![] });
    assert!(
        matches!(updates[..], [AttemptUpdate::Running { .. }]),
        "{updates:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(
        f.read_outputs(&k).await.is_none(),
        "core-sleep has no outputs, like upstream it writes none"
    );
    assert_eq!(b.active(), 0);

    // Zero: done at once.
    let k = key("s1", "n1", 0);
    f.write_inputs(&k, &literal_map(&[("duration", duration(Duration::ZERO))]))
        .await;
    b.start(f.attempt(k.clone(), sleep_task()), tx)
        .await
        .unwrap();
    let (updates, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert!(updates.is_empty());
    assert_eq!(outcome, AttemptOutcome::Succeeded { logs: vec![] });
}

#[tokio::test]
async fn core_sleep_honours_abort_and_timeout() {
    let f = Fixture::new();
    let b = BuiltinBackend::new(f.store.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let k = key("s2", "n0", 0);
    f.write_inputs(
        &k,
        &literal_map(&[("duration", duration(Duration::from_secs(3600)))]),
    )
    .await;
    b.start(f.attempt(k.clone(), sleep_task()), tx.clone())
        .await
        .unwrap();
    let (_, running) = next(&mut rx, WAIT).await;
    assert!(matches!(running, AttemptUpdate::Running { .. }));
    // An hour's sleep that ends within WAIT: the abort stopped it.
    b.abort(&k).await;
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert_eq!(outcome, AttemptOutcome::Aborted);
    b.abort(&k).await; // not running: a no-op

    let k = key("s2", "n1", 0);
    f.write_inputs(
        &k,
        &literal_map(&[("duration", duration(Duration::from_secs(3600)))]),
    )
    .await;
    let mut attempt = f.attempt(k.clone(), sleep_task());
    attempt.timeout = Some(Duration::from_millis(200));
    b.start(attempt, tx).await.unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let (error, retryable) = failure(&outcome);
    assert!(retryable);
    assert_eq!(
        (error.code.as_str(), error.kind),
        ("TimeoutExpired", execution_error::ErrorKind::User as i32)
    );
}

#[tokio::test]
async fn core_sleep_rejects_bad_specifications() {
    let f = Fixture::new();
    let b = BuiltinBackend::new(f.store.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cases = [
        (
            plugin_task(
                "core-sleep",
                interface(&[("duration", SimpleType::Integer)], &[]),
            ),
            literal_map(&[("duration", int(1))]),
            "typed as duration",
        ),
        (
            plugin_task("core-sleep", interface(&[], &[])),
            literal_map(&[]),
            "exactly one duration input",
        ),
        (
            plugin_task(
                "core-sleep",
                interface(
                    &[("d", SimpleType::Duration)],
                    &[("o0", SimpleType::Integer)],
                ),
            ),
            literal_map(&[("d", duration(Duration::from_secs(1)))]),
            "does not support outputs",
        ),
        (sleep_task(), literal_map(&[]), "is missing"),
        (
            sleep_task(),
            literal_map(&[("duration", int(3))]),
            "must be a duration literal",
        ),
    ];
    for (i, (template, inputs, want)) in cases.into_iter().enumerate() {
        let k = key("s3", &format!("n{i}"), 0);
        f.write_inputs(&k, &inputs).await;
        b.start(f.attempt(k.clone(), template), tx.clone())
            .await
            .unwrap();
        let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
        let (error, retryable) = failure(&outcome);
        assert!(!retryable, "{i}");
        assert_eq!(error.code, "BadTaskSpecification", "{i}");
        assert!(error.message.contains(want), "{i}: {}", error.message);
    }
    // A negative duration.
    let k = key("s3", "neg", 0);
    let negative = prim(primitive::Value::Duration(pbjson_types::Duration {
        seconds: -1,
        nanos: 0,
    }));
    f.write_inputs(&k, &literal_map(&[("duration", negative)]))
        .await;
    b.start(f.attempt(k.clone(), sleep_task()), tx)
        .await
        .unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert!(failure(&outcome).0.message.contains("non-negative"));
}
