//! Read-decide-write races on one execution's records ([`MetadataStore::transition`]):
//! terminate against success, archive against finish, duplicate and out-of-order events, each
//! raced many times from separate tasks on a multi-threaded runtime (so on separate pool
//! connections). The decisions here are a small stand-in for the admin's event rules
//! (terminal phases are final, a phase already recorded is a duplicate): what the store must
//! guarantee is that each decision sees what the previous one wrote.

use std::sync::Arc;

use flyte_store::{MetadataStore, StateBatch, StateRead, StateSnapshot};
use tokio::sync::Barrier;

use super::{ekey, execution, node, task_exec};
use crate::t;

/// Races per test: each a fresh execution. The old read-then-write code lost one in a few.
const ROUNDS: usize = 40;

fn terminal(phase: &str) -> bool {
    matches!(phase, "SUCCEEDED" | "FAILED" | "ABORTED" | "TIMED_OUT")
}

fn read(name: &str, nodes: &[&str]) -> StateRead {
    let ids: Vec<String> = nodes.iter().map(|n| (*n).to_owned()).collect();
    StateRead {
        execution: ekey(name),
        node_ids: ids.clone(),
        task_node_ids: ids,
    }
}

async fn running_execution(store: &Arc<dyn MetadataStore>, name: &str, with_node: bool) {
    let mut e = execution(name, "lp", "RUNNING", t(1));
    e.started_at = Some(t(1));
    store.create_execution(e, None).await.unwrap();
    if with_node {
        store
            .apply(StateBatch {
                node_executions: vec![node(name, "n0", None, "RUNNING", t(1))],
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// The execution and its node `n0` move to `phase` unless the execution is already terminal;
/// whether it did.
async fn finish(store: &Arc<dyn MetadataStore>, name: &str, phase: &'static str) -> bool {
    let mut applied = false;
    store
        .transition(
            read(name, &["n0"]),
            Box::new(|s: StateSnapshot| {
                if terminal(&s.execution.phase) {
                    return StateBatch::default();
                }
                applied = true;
                let mut e = s.execution;
                e.phase = phase.into();
                e.updated_at = t(3);
                let nodes = s
                    .node_executions
                    .into_iter()
                    .filter(|n| !terminal(&n.phase))
                    .map(|mut n| {
                        n.phase = phase.into();
                        n
                    })
                    .collect();
                StateBatch {
                    executions: vec![e],
                    node_executions: nodes,
                    ..Default::default()
                }
            }),
        )
        .await
        .unwrap();
    applied
}

/// A terminate (refused once the execution is terminal, else ABORTING and then, as the engine
/// reports, ABORTED) against the success of the execution and its node: exactly one of them
/// decides the end, and the execution and its node agree on it.
pub async fn race_terminate_and_success(store: Arc<dyn MetadataStore>) {
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("term{round}");
        running_execution(&store, &name, true).await;
        let barrier = Arc::new(Barrier::new(2));
        let terminate = tokio::spawn({
            let (store, name, barrier) = (store.clone(), name.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                let mut accepted = false;
                store
                    .transition(
                        read(&name, &[]),
                        Box::new(|s: StateSnapshot| {
                            if terminal(&s.execution.phase) {
                                return StateBatch::default();
                            }
                            accepted = true;
                            let mut e = s.execution;
                            e.phase = "ABORTING".into();
                            e.closure = b"abort requested".to_vec();
                            StateBatch {
                                executions: vec![e],
                                ..Default::default()
                            }
                        }),
                    )
                    .await
                    .unwrap();
                accepted && finish(&store, &name, "ABORTED").await
            }
        });
        let succeed = tokio::spawn({
            let (store, name, barrier) = (store.clone(), name.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                finish(&store, &name, "SUCCEEDED").await
            }
        });
        let aborted = terminate.await.unwrap();
        let succeeded = succeed.await.unwrap();
        let e = store.get_execution(&ekey(&name)).await.unwrap();
        let n = store
            .get_node_execution(&flyte_store::NodeExecutionKey {
                execution: ekey(&name),
                node_id: "n0".into(),
            })
            .await
            .unwrap();
        // Exactly one of them ends it, and both records show that end.
        let expected = if succeeded { "SUCCEEDED" } else { "ABORTED" };
        if aborted == succeeded || e.phase != expected || n.phase != expected {
            lost.push(format!(
                "round {round}: aborted {aborted}, succeeded {succeeded}, execution {}, node {}",
                e.phase, n.phase
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} races lost: {lost:#?}",
        lost.len()
    );
}

/// An archive (state 1, phase kept) against the execution's success: both stay.
pub async fn race_archive_and_finish(store: Arc<dyn MetadataStore>) {
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("arch{round}");
        running_execution(&store, &name, false).await;
        let barrier = Arc::new(Barrier::new(2));
        let archive = tokio::spawn({
            let (store, name, barrier) = (store.clone(), name.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                store
                    .transition(
                        read(&name, &[]),
                        Box::new(|s: StateSnapshot| {
                            let mut e = s.execution;
                            e.state = 1;
                            StateBatch {
                                executions: vec![e],
                                ..Default::default()
                            }
                        }),
                    )
                    .await
                    .unwrap();
            }
        });
        let succeed = tokio::spawn({
            let (store, name, barrier) = (store.clone(), name.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                finish(&store, &name, "SUCCEEDED").await
            }
        });
        archive.await.unwrap();
        assert!(succeed.await.unwrap());
        let e = store.get_execution(&ekey(&name)).await.unwrap();
        if e.phase != "SUCCEEDED" || e.state != 1 {
            lost.push(format!(
                "round {round}: phase {}, state {}",
                e.phase, e.state
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} races lost: {lost:#?}",
        lost.len()
    );
}

/// One delivery of a node event (with its task's) under the event rules: the first event
/// creates the records, a phase already recorded is a duplicate, a terminal phase is final.
/// Each applied event appends a byte to the node's metadata. Whether it was applied.
async fn deliver(store: &Arc<dyn MetadataStore>, name: &str, phase: &'static str) -> bool {
    let mut applied = false;
    store
        .transition(
            read(name, &["n0"]),
            Box::new(|s: StateSnapshot| {
                let current = s.node_executions.into_iter().next();
                let mut next = match current {
                    Some(n) if n.phase == phase || terminal(&n.phase) => {
                        return StateBatch::default();
                    }
                    Some(n) => n,
                    None => {
                        let mut n = node(name, "n0", None, phase, t(2));
                        n.metadata.clear();
                        n
                    }
                };
                applied = true;
                next.phase = phase.into();
                next.metadata.push(1);
                let version = next.metadata.len() as u32;
                StateBatch {
                    node_executions: vec![next],
                    task_executions: vec![task_exec(name, "n0", 0, phase, version, t(2))],
                    ..Default::default()
                }
            }),
        )
        .await
        .unwrap();
    applied
}

/// Duplicate and out-of-order deliveries of a node's RUNNING and SUCCEEDED at once: SUCCEEDED
/// is applied exactly once and stays; every applied event is in the record.
pub async fn race_duplicate_events(store: Arc<dyn MetadataStore>) {
    const DELIVERIES: [&str; 4] = ["RUNNING", "SUCCEEDED", "SUCCEEDED", "RUNNING"];
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("dup{round}");
        running_execution(&store, &name, false).await;
        let barrier = Arc::new(Barrier::new(DELIVERIES.len()));
        let tasks: Vec<_> = DELIVERIES
            .iter()
            .map(|&phase| {
                let (store, name, barrier) = (store.clone(), name.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    (phase, deliver(&store, &name, phase).await)
                })
            })
            .collect();
        let mut applied = Vec::new();
        for task in tasks {
            let (phase, done) = task.await.unwrap();
            if done {
                applied.push(phase);
            }
        }
        let key = flyte_store::NodeExecutionKey {
            execution: ekey(&name),
            node_id: "n0".into(),
        };
        let n = store.get_node_execution(&key).await.unwrap();
        let tasks = store
            .get_task_executions_of_nodes(&ekey(&name), &["n0".into()])
            .await
            .unwrap();
        let succeeded = applied.iter().filter(|p| **p == "SUCCEEDED").count();
        let consistent = succeeded == 1
            && n.phase == "SUCCEEDED"
            && n.metadata.len() == applied.len()
            && tasks.len() == 1
            && tasks[0].phase == "SUCCEEDED"
            && tasks[0].phase_version as usize == applied.len();
        if !consistent {
            lost.push(format!(
                "round {round}: applied {applied:?}, node {} with {} applied, task {:?}",
                n.phase,
                n.metadata.len(),
                tasks
                    .iter()
                    .map(|t| (t.phase.clone(), t.phase_version))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} races lost: {lost:#?}",
        lost.len()
    );
}

/// The decision sees the records inside the transaction; an unknown execution is `NotFound`
/// and a batch touching another execution is refused, writing nothing.
pub async fn transition_reads_and_guards(store: Arc<dyn MetadataStore>) {
    running_execution(&store, "tr", true).await;
    running_execution(&store, "other", false).await;
    let mut seen = None;
    store
        .transition(
            read("tr", &["n0", "missing"]),
            Box::new(|s: StateSnapshot| {
                seen = Some((
                    s.execution.phase.clone(),
                    s.node_executions
                        .iter()
                        .map(|n| n.key.node_id.clone())
                        .collect::<Vec<_>>(),
                ));
                StateBatch::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(seen, Some(("RUNNING".to_owned(), vec!["n0".to_owned()])));

    let err = store
        .transition(
            read("nope", &[]),
            Box::new(|_: StateSnapshot| StateBatch::default()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, flyte_store::StoreError::NotFound(m) if m.contains("nope")),
        "{err:?}"
    );

    let err = store
        .transition(
            read("tr", &[]),
            Box::new(|s: StateSnapshot| {
                let mut e = s.execution;
                e.phase = "SUCCEEDED".into();
                let mut other = execution("other", "lp", "SUCCEEDED", t(2));
                other.started_at = Some(t(1));
                StateBatch {
                    executions: vec![e, other],
                    ..Default::default()
                }
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, flyte_store::StoreError::InvalidArgument(m) if m.contains("other")),
        "{err:?}"
    );
    assert_eq!(
        store.get_execution(&ekey("tr")).await.unwrap().phase,
        "RUNNING"
    );
    assert_eq!(
        store.get_execution(&ekey("other")).await.unwrap().phase,
        "RUNNING"
    );
}
