//! The notification outbox: a terminal phase written in a transition adds one row per
//! (execution, phase), rewriting it adds none; claims are leased, exclusive and fenced.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use flyte_store::{
    MetadataStore, NotificationState, NotificationUpdate, StateBatch, StateRead, StateSnapshot,
};

use crate::t;
use crate::tests::{ekey, execution};

async fn set_phase(store: &Arc<dyn MetadataStore>, name: &str, phase: &'static str, at: i64) {
    store
        .transition(
            StateRead {
                execution: ekey(name),
                ..Default::default()
            },
            Box::new(move |s: StateSnapshot| {
                let mut e = s.execution;
                e.phase = phase.into();
                e.updated_at = t(at);
                StateBatch {
                    executions: vec![e],
                    ..Default::default()
                }
            }),
        )
        .await
        .unwrap();
}

pub async fn notifications_outbox_once_per_phase_leased(store: Arc<dyn MetadataStore>) {
    store
        .create_execution(execution("n1", "lp", "QUEUED", t(0)), None)
        .await
        .unwrap();
    set_phase(&store, "n1", "RUNNING", 1).await;
    assert!(
        store
            .list_notifications(&ekey("n1"))
            .await
            .unwrap()
            .is_empty(),
        "a running execution has nothing to notify"
    );
    set_phase(&store, "n1", "SUCCEEDED", 2).await;
    // Written again (archive, a replayed event): still one row.
    set_phase(&store, "n1", "SUCCEEDED", 3).await;
    let rows = store.list_notifications(&ekey("n1")).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].phase, "SUCCEEDED");
    assert_eq!(rows[0].state, NotificationState::Pending);
    assert_eq!(rows[0].due_at, t(2), "due when the phase was written");

    // Not due before its time; then exactly one of two owners gets it.
    let lease = StdDuration::from_secs(60);
    assert!(
        store
            .claim_notifications("a", t(1), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let got = store
        .claim_notifications("a", t(5), lease, 10)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        store
            .claim_notifications("b", t(5), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "a leased row must not be claimed twice"
    );

    // A retry: pending again later, one destination delivered.
    let retry = NotificationUpdate {
        state: NotificationState::Pending,
        attempts: 1,
        due_at: t(10),
        delivered: vec!["email:ops@example.com".into()],
        last_error: "connection refused".into(),
    };
    assert!(
        !store
            .finish_notification(&ekey("n1"), "SUCCEEDED", "b", retry.clone())
            .await
            .unwrap(),
        "only the owner may write the outcome"
    );
    assert!(
        store
            .finish_notification(&ekey("n1"), "SUCCEEDED", "a", retry)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_notifications("b", t(9), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due until its retry time"
    );
    let got = store
        .claim_notifications("b", t(10), lease, 10)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attempts, 1);
    assert_eq!(got[0].delivered, vec!["email:ops@example.com".to_owned()]);
    assert_eq!(got[0].last_error, "connection refused");

    // An owner that died: its lease runs out and another takes the row over.
    let later = t(10) + Duration::seconds(61);
    let got = store
        .claim_notifications("c", later, lease, 10)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "an expired lease is taken over");
    assert!(
        !store
            .finish_notification(
                &ekey("n1"),
                "SUCCEEDED",
                "b",
                NotificationUpdate {
                    state: NotificationState::Delivered,
                    attempts: 2,
                    due_at: later,
                    delivered: vec![],
                    last_error: String::new(),
                },
            )
            .await
            .unwrap(),
        "the previous owner is fenced off"
    );
    assert!(
        store
            .finish_notification(
                &ekey("n1"),
                "SUCCEEDED",
                "c",
                NotificationUpdate {
                    state: NotificationState::Delivered,
                    attempts: 2,
                    due_at: later,
                    delivered: vec!["email:ops@example.com".into(), "slack:#ops".into()],
                    last_error: String::new(),
                },
            )
            .await
            .unwrap()
    );
    // Delivered: never claimed again, and rewriting the phase adds nothing.
    set_phase(&store, "n1", "SUCCEEDED", 20).await;
    assert!(
        store
            .claim_notifications("d", t(100), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let rows = store.list_notifications(&ekey("n1")).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, NotificationState::Delivered);
    assert_eq!(rows[0].delivered.len(), 2);

    // A blind apply of another terminal phase (an abort) is a separate phase change.
    let mut e = store.get_execution(&ekey("n1")).await.unwrap();
    e.phase = "ABORTED".into();
    e.updated_at = t(30);
    store
        .apply(StateBatch {
            executions: vec![e],
            ..Default::default()
        })
        .await
        .unwrap();
    let rows = store.list_notifications(&ekey("n1")).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].phase, "ABORTED");
}

/// Only the terminal phases an execution asks to be notified of get an outbox row.
pub async fn notifications_outbox_only_for_wanted_phases(store: Arc<dyn MetadataStore>) {
    let mut quiet = execution("quiet", "lp", "QUEUED", t(0));
    quiet.notify_phases = Vec::new();
    store.create_execution(quiet, None).await.unwrap();
    let mut on_failure = execution("on-failure", "lp", "QUEUED", t(0));
    on_failure.notify_phases = vec!["FAILED".into(), "TIMED_OUT".into()];
    store
        .create_execution(on_failure.clone(), None)
        .await
        .unwrap();
    on_failure.key = ekey("on-failure-2");
    store.create_execution(on_failure, None).await.unwrap();

    set_phase(&store, "quiet", "SUCCEEDED", 1).await;
    set_phase(&store, "on-failure", "SUCCEEDED", 1).await;
    set_phase(&store, "on-failure-2", "TIMED_OUT", 1).await;
    assert!(
        store
            .list_notifications(&ekey("quiet"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_notifications(&ekey("on-failure"))
            .await
            .unwrap()
            .is_empty()
    );
    let rows = store
        .list_notifications(&ekey("on-failure-2"))
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(),
        ["TIMED_OUT"]
    );
    assert_eq!(
        store
            .get_execution(&ekey("on-failure"))
            .await
            .unwrap()
            .notify_phases,
        ["FAILED", "TIMED_OUT"]
    );
    let got = store
        .claim_notifications("a", t(100), StdDuration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
}

/// Closed rows (delivered, given up) are pruned once closed before the cutoff, at most
/// `limit` per call; pending rows never.
pub async fn notifications_pruned_in_batches(store: Arc<dyn MetadataStore>) {
    let lease = StdDuration::from_secs(60);
    for (i, name) in ["p0", "p1", "p2", "p3", "p4"].into_iter().enumerate() {
        store
            .create_execution(execution(name, "lp", "QUEUED", t(0)), None)
            .await
            .unwrap();
        set_phase(&store, name, "FAILED", i as i64).await;
    }
    let claimed = store
        .claim_notifications("a", t(10), lease, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5);
    // p0, p1, p2 delivered at 20, p3 given up at 20, p4 retried later (still pending).
    for row in &claimed {
        let (state, due_at) = match row.execution.name.as_str() {
            "p3" => (NotificationState::Failed, t(20)),
            "p4" => (NotificationState::Pending, t(1000)),
            _ => (NotificationState::Delivered, t(20)),
        };
        let update = NotificationUpdate {
            state,
            attempts: 1,
            due_at,
            delivered: vec![],
            last_error: String::new(),
        };
        assert!(
            store
                .finish_notification(&row.execution, &row.phase, "a", update)
                .await
                .unwrap()
        );
    }
    assert_eq!(store.prune_notifications(t(20), 10).await.unwrap(), 0);
    assert_eq!(store.prune_notifications(t(21), 3).await.unwrap(), 3);
    assert_eq!(store.prune_notifications(t(21), 3).await.unwrap(), 1);
    assert_eq!(store.prune_notifications(t(5000), 3).await.unwrap(), 0);
    let left: Vec<String> = {
        let mut v = Vec::new();
        for name in ["p0", "p1", "p2", "p3", "p4"] {
            for r in store.list_notifications(&ekey(name)).await.unwrap() {
                v.push(r.execution.name);
            }
        }
        v
    };
    assert_eq!(left, ["p4"], "only the pending row is kept");
}
