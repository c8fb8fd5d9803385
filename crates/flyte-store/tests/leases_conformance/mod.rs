//! Execution leases (engine replicas) and notifications: who may run an execution.

use std::collections::BTreeSet;
use std::sync::Arc;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use flyte_store::{ExecutionKey, MetadataStore};

fn key(name: &str) -> ExecutionKey {
    ExecutionKey {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.into(),
    }
}

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
}

/// A lease far longer than any test: held throughout.
const LONG: Duration = Duration::from_secs(600);
/// A lease that ends as it is written (by the database's clock): expired at once.
const GONE: Duration = Duration::ZERO;

pub async fn lease_claim_renew_release(store: Arc<dyn MetadataStore>) {
    let e = key("e1");
    assert!(store.claim_lease(&e, "a", LONG).await.unwrap());
    // Held by a: b cannot take it; a may claim it again (extends it).
    assert!(!store.claim_lease(&e, "b", LONG).await.unwrap());
    assert_eq!(store.lease_holder(&e).await.unwrap().as_deref(), Some("a"));
    assert!(store.claim_lease(&e, "a", LONG).await.unwrap());
    // Renewal extends only a's live leases.
    assert_eq!(
        store.renew_leases("a", LONG).await.unwrap(),
        vec![e.clone()]
    );
    assert!(store.renew_leases("b", LONG).await.unwrap().is_empty());
    assert!(!store.claim_lease(&e, "b", LONG).await.unwrap());
    // A graceful stop expires it at once: b may take it.
    store.release_lease(&e, "a", false).await.unwrap();
    assert_eq!(store.lease_holder(&e).await.unwrap(), None);
    assert!(store.claim_lease(&e, "b", LONG).await.unwrap());
    // a no longer holds it: its release changes nothing.
    store.release_lease(&e, "a", true).await.unwrap();
    assert_eq!(store.lease_holder(&e).await.unwrap().as_deref(), Some("b"));
    // Finished: deleted, anyone may claim the key again.
    store.release_lease(&e, "b", true).await.unwrap();
    assert_eq!(store.lease_holder(&e).await.unwrap(), None);
    assert!(store.claim_lease(&e, "c", LONG).await.unwrap());
    // release_all expires every live lease of one owner.
    assert!(store.claim_lease(&key("e2"), "c", LONG).await.unwrap());
    assert!(store.claim_lease(&key("e3"), "d", LONG).await.unwrap());
    assert_eq!(store.release_all_leases("c").await.unwrap(), 2);
    assert_eq!(store.lease_holder(&e).await.unwrap(), None);
    assert_eq!(
        store.lease_holder(&key("e3")).await.unwrap().as_deref(),
        Some("d")
    );
}

/// The caller gives a lease's length, never a time: the database computes `expires_at` and
/// judges expiry by its own clock, so replicas whose clocks disagree still agree on leases.
pub async fn lease_expiry_is_the_databases_clock(store: Arc<dyn MetadataStore>) {
    let (held, gone, short) = (key("held"), key("gone"), key("short"));
    assert!(store.claim_lease(&held, "a", LONG).await.unwrap());
    assert!(store.claim_lease(&gone, "a", GONE).await.unwrap());
    assert!(
        store
            .claim_lease(&short, "a", Duration::from_secs(3))
            .await
            .unwrap()
    );
    assert_eq!(
        store.lease_holder(&held).await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(store.lease_holder(&gone).await.unwrap(), None);
    assert_eq!(
        store.lease_holder(&short).await.unwrap().as_deref(),
        Some("a")
    );
    assert!(!store.claim_lease(&held, "b", LONG).await.unwrap());
    assert!(store.claim_lease(&gone, "b", LONG).await.unwrap());
    // Well after the short lease's 3 s by any clock that runs: expired, b takes it over.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(store.lease_holder(&short).await.unwrap(), None);
    assert_eq!(
        store.take_expired_leases("b", LONG, 10).await.unwrap(),
        vec![short.clone()]
    );
    let mut renewed = store.renew_leases("b", LONG).await.unwrap();
    renewed.sort();
    assert_eq!(renewed, vec![gone, short]);
    assert_eq!(store.renew_leases("a", LONG).await.unwrap(), vec![held]);
}

pub async fn lease_renew_after_expiry_fails(store: Arc<dyn MetadataStore>) {
    let (e1, e2) = (key("e1"), key("e2"));
    assert!(store.claim_lease(&e1, "a", GONE).await.unwrap());
    assert!(store.claim_lease(&e2, "a", LONG).await.unwrap());
    // e1 expired (even though no one took it): only e2 is renewed.
    assert_eq!(
        store.renew_leases("a", LONG).await.unwrap(),
        vec![e2.clone()]
    );
    assert_eq!(store.lease_holder(&e1).await.unwrap(), None);
    // Taken by b meanwhile: a's renewals never get it back.
    assert_eq!(
        store.take_expired_leases("b", LONG, 10).await.unwrap(),
        vec![e1.clone()]
    );
    assert_eq!(
        store.renew_leases("a", LONG).await.unwrap(),
        vec![e2.clone()]
    );
    assert_eq!(store.lease_holder(&e1).await.unwrap().as_deref(), Some("b"));
}

pub async fn lease_take_only_expired(store: Arc<dyn MetadataStore>) {
    for (i, ttl) in [GONE, GONE, LONG, LONG].into_iter().enumerate() {
        let owner = if i % 2 == 0 { "a" } else { "b" };
        assert!(
            store
                .claim_lease(&key(&format!("e{i}")), owner, ttl)
                .await
                .unwrap()
        );
    }
    // e0 and e1 expired; e2 and e3 are live and stay with their holders.
    let mut taken = store.take_expired_leases("c", LONG, 10).await.unwrap();
    taken.sort();
    assert_eq!(taken, vec![key("e0"), key("e1")]);
    assert!(
        store
            .take_expired_leases("d", LONG, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.lease_holder(&key("e2")).await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(
        store.lease_holder(&key("e0")).await.unwrap().as_deref(),
        Some("c")
    );
    // The limit holds: with all four expired, two at a time.
    for (i, owner) in ["c", "c", "a", "b"].into_iter().enumerate() {
        assert!(
            store
                .claim_lease(&key(&format!("e{i}")), owner, GONE)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        store.take_expired_leases("d", LONG, 2).await.unwrap().len(),
        2
    );
    assert_eq!(
        store.take_expired_leases("d", LONG, 2).await.unwrap().len(),
        2
    );
    assert!(
        store
            .take_expired_leases("d", LONG, 2)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn lease_two_owners_race(store: Arc<dyn MetadataStore>) {
    // Fresh leases: two claimants, one winner per round, and both agree who.
    for round in 0..20 {
        let e = key(&format!("race-{round}"));
        let claim = |owner: &'static str| {
            let (store, e) = (store.clone(), e.clone());
            tokio::spawn(async move { store.claim_lease(&e, owner, LONG).await.unwrap() })
        };
        let (a, b) = (claim("a"), claim("b"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(
            a ^ b,
            "round {round}: exactly one of a ({a}) and b ({b}) holds it"
        );
        let winner = if a { "a" } else { "b" };
        let holder = store.lease_holder(&e).await.unwrap();
        assert_eq!(holder.as_deref(), Some(winner));
        // Expire it for the takeover race below.
        assert!(store.claim_lease(&e, winner, GONE).await.unwrap());
    }
    // Expired leases: two replicas taking over at once never get the same execution.
    let take = |owner: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store.take_expired_leases(owner, LONG, 3).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch);
            }
        })
    };
    let (a, b) = (take("a2"), take("b2"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
    assert_eq!(sa.len(), a.len());
    assert!(
        sa.is_disjoint(&sb),
        "both took {:?}",
        sa.intersection(&sb).collect::<Vec<_>>()
    );
    assert_eq!(sa.len() + sb.len(), 20, "every expired lease taken once");
}

/// PostgreSQL delivers a notification to every listener; SQLite has none to deliver to.
pub async fn lease_notify_reaches_listeners(store: Arc<dyn MetadataStore>) {
    let listener = store.listen("flyte_rs_test").await.unwrap();
    match (store.backend_name(), listener) {
        ("sqlite", None) => store.notify("flyte_rs_test", "ignored").await.unwrap(),
        ("postgres", Some(mut rx)) => {
            store.notify("flyte_rs_test", "abort\tx").await.unwrap();
            store.notify("other_channel", "not for us").await.unwrap();
            let got = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
                .await
                .expect("a notification within 30 s");
            assert_eq!(got.as_deref(), Some("abort\tx"));
            let too_big = "x".repeat(8000);
            assert!(store.notify("flyte_rs_test", &too_big).await.is_err());
        }
        (backend, rx) => panic!("{backend}: listener present: {}", rx.is_some()),
    }
}

/// A transition fenced by an owner commits only while that owner holds the execution's
/// lease by the database's clock: once it expired and another replica took it, the old
/// owner's batch is refused with `LeaseLost` and writes nothing (the new owner's lands).
pub async fn lease_fenced_transition_refused_after_takeover(store: Arc<dyn MetadataStore>) {
    use flyte_store::{StateBatch, StateRead, StoreError};

    let name = "fenced";
    let e = crate::executions_conformance::ekey(name);
    store
        .create_execution(
            crate::executions_conformance::execution(name, "lp", "QUEUED", at(0)),
            None,
        )
        .await
        .unwrap();
    let read = || StateRead {
        execution: e.clone(),
        node_ids: vec![],
        task_node_ids: vec![],
    };
    let to = |phase: &'static str| {
        Box::new(move |s: flyte_store::StateSnapshot| {
            let mut x = s.execution;
            x.phase = phase.into();
            StateBatch {
                executions: vec![x],
                ..Default::default()
            }
        }) as flyte_store::Decide<'static>
    };
    let phase = || async { store.get_execution(&e).await.unwrap().phase };
    // No such execution: NotFound, whatever the lease.
    let missing = StateRead {
        execution: crate::executions_conformance::ekey("missing"),
        node_ids: vec![],
        task_node_ids: vec![],
    };
    let err = store
        .transition_fenced(missing, "a", to("RUNNING"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // No lease at all: refused.
    let err = store
        .transition_fenced(read(), "a", to("RUNNING"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)), "{err:?}");
    assert_eq!(phase().await, "QUEUED");

    // a holds it: its batch lands.
    assert!(store.claim_lease(&e, "a", LONG).await.unwrap());
    store
        .transition_fenced(read(), "a", to("RUNNING"))
        .await
        .unwrap();
    assert_eq!(phase().await, "RUNNING");

    // a's lease expired (not yet taken): refused, even though a is still the row's owner.
    assert!(store.claim_lease(&e, "a", GONE).await.unwrap());
    let err = store
        .transition_fenced(read(), "a", to("FAILED"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)), "{err:?}");
    assert_eq!(phase().await, "RUNNING");

    // b takes the expired lease: a's batch is refused, b's lands.
    let taken = store.take_expired_leases("b", LONG, 100).await.unwrap();
    assert!(taken.contains(&e), "{taken:?}");
    let err = store
        .transition_fenced(read(), "a", to("FAILED"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)), "{err:?}");
    assert_eq!(phase().await, "RUNNING");
    store
        .transition_fenced(read(), "b", to("SUCCEEDED"))
        .await
        .unwrap();
    assert_eq!(phase().await, "SUCCEEDED");
}
