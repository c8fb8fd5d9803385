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
