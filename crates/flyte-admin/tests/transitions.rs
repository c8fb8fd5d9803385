//! The admin's read-decide-writes under real concurrency, with the real event rules, on SQLite
//! and on PostgreSQL (`FLYTERS_TEST_POSTGRES_URL`; unset, the PostgreSQL tests fail):
//! TerminateExecution against a SUCCEEDED workflow event, UpdateExecution (archive) against
//! it and against the engine's event sink, and duplicate node events. Each race runs many times from tasks on a multi-threaded
//! runtime, so the calls use separate pool connections.

use std::sync::Arc;

use chrono::Utc;
use flyte_admin::service::admin::AdminApi;
use flyte_admin::service::admin::event_sink::StoreEventSink;
use flyte_admin::{AdminConfig, AdminState};
use flyte_blob::BlobStore;
use flyte_engine::{EventBatch, EventSink, JournalDelta, SinkError};
use flyte_store::{ExecutionKey, ExecutionRecord, MetadataStore, NodeExecutionKey};
use flyteidl::admin::{
    ExecutionClosure, ExecutionTerminateRequest, ExecutionUpdateRequest, NodeExecutionEventRequest,
    WorkflowExecutionEventRequest,
};
use flyteidl::core::workflow_execution::Phase as WfPhase;
use flyteidl::core::{NodeExecutionIdentifier, WorkflowExecutionIdentifier, node_execution};
use flyteidl::event::{NodeExecutionEvent, WorkflowExecutionEvent, workflow_execution_event};
use flyteidl::service::admin_service_server::AdminService;
use prost::Message;
use tokio::sync::Barrier;
use tonic::Request;

const ROUNDS: usize = 30;
const ARCHIVED: i32 = 1;

struct Harness {
    api: AdminApi,
    store: Arc<dyn MetadataStore>,
    _dir: tempfile::TempDir,
    /// PostgreSQL: the database to drop afterwards.
    pg: Option<(String, String)>,
}

impl Harness {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/db.sqlite", dir.path().display());
        Self::open(&url, dir, None).await
    }

    async fn postgres(test: &str) -> Self {
        let admin_url = std::env::var("FLYTERS_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "FLYTERS_TEST_POSTGRES_URL is not set: start PostgreSQL with \
                 `export FLYTERS_TEST_POSTGRES_URL=$(scripts/postgres.sh | tail -n 1)` or run scripts/test.sh"
            )
        });
        let name = format!(
            "flyte_admin_{test}_{}_{}",
            std::process::id(),
            Utc::now().timestamp_subsec_nanos()
        );
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        let dir = tempfile::tempdir().unwrap();
        Self::open(&url, dir, Some((admin_url.clone(), name))).await
    }

    async fn open(url: &str, dir: tempfile::TempDir, pg: Option<(String, String)>) -> Self {
        let store = flyte_store::open(url).await.unwrap();
        let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
        let state = AdminState {
            store: store.clone(),
            blob,
            config: Arc::new(AdminConfig::default()),
            launcher: None,
        };
        Self {
            api: AdminApi::new(state),
            store,
            _dir: dir,
            pg,
        }
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some((url, name)) = self.pg {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    /// A RUNNING execution, recorded as CreateExecution and the engine's RUNNING would.
    async fn running(&self, name: &str) -> WorkflowExecutionIdentifier {
        let at = Utc::now();
        let closure = ExecutionClosure {
            phase: WfPhase::Running as i32,
            ..Default::default()
        };
        self.store
            .create_execution(
                ExecutionRecord {
                    key: key(name),
                    launch_plan: None,
                    workflow: None,
                    task: None,
                    phase: "RUNNING".into(),
                    mode: 0,
                    state: 0,
                    principal: String::new(),
                    parent: None,
                    spec: Vec::new(),
                    closure: closure.encode_to_vec(),
                    inputs_uri: String::new(),
                    user_inputs_uri: String::new(),
                    created_at: at,
                    updated_at: at,
                    started_at: Some(at),
                    error_code: String::new(),
                    duration_ms: 0,
                    tags: Vec::new(),
                    notify_phases: Vec::new(),
                },
                None,
            )
            .await
            .unwrap();
        id(name)
    }

    async fn phase_and_state(&self, name: &str) -> (String, i32) {
        let e = self.store.get_execution(&key(name)).await.unwrap();
        let closure = ExecutionClosure::decode(e.closure.as_slice()).unwrap();
        assert_eq!(
            WfPhase::try_from(closure.phase).unwrap().as_str_name(),
            e.phase,
            "{name}: the closure's phase and the record's agree"
        );
        (e.phase, e.state)
    }
}

fn key(name: &str) -> ExecutionKey {
    ExecutionKey {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.into(),
    }
}

fn id(name: &str) -> WorkflowExecutionIdentifier {
    WorkflowExecutionIdentifier {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.into(),
        org: String::new(),
    }
}

fn now() -> Option<pbjson_types::Timestamp> {
    let t = Utc::now();
    Some(pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

fn succeeded_event(exec: &WorkflowExecutionIdentifier) -> WorkflowExecutionEventRequest {
    WorkflowExecutionEventRequest {
        request_id: String::new(),
        event: Some(WorkflowExecutionEvent {
            execution_id: Some(exec.clone()),
            phase: WfPhase::Succeeded as i32,
            occurred_at: now(),
            output_result: Some(workflow_execution_event::OutputResult::OutputUri(
                "s3://bucket/outputs.pb".into(),
            )),
            ..Default::default()
        }),
    }
}

fn node_event(
    exec: &WorkflowExecutionIdentifier,
    phase: node_execution::Phase,
) -> NodeExecutionEventRequest {
    NodeExecutionEventRequest {
        request_id: String::new(),
        event: Some(NodeExecutionEvent {
            id: Some(NodeExecutionIdentifier {
                node_id: "n0".into(),
                execution_id: Some(exec.clone()),
            }),
            phase: phase as i32,
            occurred_at: now(),
            ..Default::default()
        }),
    }
}

/// TerminateExecution against the execution's SUCCEEDED event: a success the rules accepted
/// stays (never ABORTED after SUCCEEDED); a refused terminate means it had succeeded.
async fn terminate_against_success(h: &Harness) {
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("term{round}");
        let exec = h.running(&name).await;
        let barrier = Arc::new(Barrier::new(2));
        let terminate = tokio::spawn({
            let (api, exec, barrier) = (h.api.clone(), exec.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                api.terminate_execution(Request::new(ExecutionTerminateRequest {
                    id: Some(exec),
                    cause: "stop".into(),
                }))
                .await
            }
        });
        let event = tokio::spawn({
            let (api, exec, barrier) = (h.api.clone(), exec.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                api.create_workflow_event(Request::new(succeeded_event(&exec)))
                    .await
            }
        });
        let terminated = terminate.await.unwrap();
        let event = event.await.unwrap();
        let (phase, _) = h.phase_and_state(&name).await;
        let expected = if event.is_ok() {
            "SUCCEEDED"
        } else {
            "ABORTED"
        };
        let refused_both = terminated.is_err() && event.is_err();
        if phase != expected || refused_both {
            lost.push(format!(
                "round {round}: terminate {:?}, SUCCEEDED event {:?}, phase {phase}",
                terminated.as_ref().map(|_| ()).map_err(|s| s.code()),
                event.as_ref().map(|_| ()).map_err(|s| s.code()),
            ));
        }
        if let Err(status) = &terminated {
            assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} races lost: {lost:#?}",
        lost.len()
    );
}

/// UpdateExecution (archive) against the SUCCEEDED event: both stay.
async fn archive_against_success(h: &Harness) {
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("arch{round}");
        let exec = h.running(&name).await;
        let barrier = Arc::new(Barrier::new(2));
        let archive = tokio::spawn({
            let (api, exec, barrier) = (h.api.clone(), exec.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                api.update_execution(Request::new(ExecutionUpdateRequest {
                    id: Some(exec),
                    state: ARCHIVED,
                }))
                .await
            }
        });
        let event = tokio::spawn({
            let (api, exec, barrier) = (h.api.clone(), exec.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                api.create_workflow_event(Request::new(succeeded_event(&exec)))
                    .await
            }
        });
        archive.await.unwrap().unwrap();
        event.await.unwrap().unwrap();
        let (phase, state) = h.phase_and_state(&name).await;
        if phase != "SUCCEEDED" || state != ARCHIVED {
            lost.push(format!("round {round}: phase {phase}, state {state}"));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} races lost: {lost:#?}",
        lost.len()
    );
}

/// UpdateExecution (archive) against the engine's event sink writing the success (with its
/// node's and the journal's end): both stay.
async fn archive_against_engine_success(h: &Harness) {
    let sink = StoreEventSink::new(h.store.clone());
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("sink{round}");
        let exec = h.running(&name).await;
        let barrier = Arc::new(Barrier::new(2));
        let archive = tokio::spawn({
            let (api, exec, barrier) = (h.api.clone(), exec.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                api.update_execution(Request::new(ExecutionUpdateRequest {
                    id: Some(exec),
                    state: ARCHIVED,
                }))
                .await
            }
        });
        let record = tokio::spawn({
            let (sink, exec, barrier) = (sink.clone(), exec.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                let succeeded = node_event(&exec, node_execution::Phase::Succeeded);
                sink.record(&EventBatch {
                    execution: exec.clone(),
                    workflow_events: succeeded_event(&exec).event.into_iter().collect(),
                    node_events: succeeded.event.into_iter().collect(),
                    journal: JournalDelta {
                        finished: true,
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .await
            }
        });
        archive.await.unwrap().unwrap();
        record.await.unwrap().unwrap();
        let (phase, state) = h.phase_and_state(&name).await;
        if phase != "SUCCEEDED" || state != ARCHIVED {
            lost.push(format!("round {round}: phase {phase}, state {state}"));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} races lost: {lost:#?}",
        lost.len()
    );
}

/// The same node SUCCEEDED event delivered twice at once, with a late RUNNING: SUCCEEDED is
/// accepted once (the other answer ALREADY_EXISTS) and stays.
async fn duplicate_node_events(h: &Harness) {
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("dup{round}");
        let exec = h.running(&name).await;
        h.api
            .create_node_event(Request::new(node_event(
                &exec,
                node_execution::Phase::Queued,
            )))
            .await
            .unwrap();
        let phases = [
            node_execution::Phase::Succeeded,
            node_execution::Phase::Succeeded,
            node_execution::Phase::Running,
        ];
        let barrier = Arc::new(Barrier::new(phases.len()));
        let tasks: Vec<_> = phases
            .iter()
            .map(|&phase| {
                let (api, exec, barrier) = (h.api.clone(), exec.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let answer = api
                        .create_node_event(Request::new(node_event(&exec, phase)))
                        .await;
                    (phase, answer.map(|_| ()).map_err(|s| s.code()))
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let accepted = answers
            .iter()
            .filter(|(p, a)| *p == node_execution::Phase::Succeeded && a.is_ok())
            .count();
        let node = h
            .store
            .get_node_execution(&NodeExecutionKey {
                execution: key(&name),
                node_id: "n0".into(),
            })
            .await
            .unwrap();
        if accepted != 1 || node.phase != "SUCCEEDED" {
            lost.push(format!(
                "round {round}: answers {answers:?}, node {}",
                node.phase
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} races lost: {lost:#?}",
        lost.len()
    );
}

/// Replicas: the engine's sink fenced by a replica's lease writes nothing once another
/// replica took the expired lease over (`LeaseLost`, which the engine's actor takes as "stop
/// here, unaborted"); the new owner's batch lands.
async fn fenced_sink_refuses_a_stale_owner(h: &Harness) {
    let exec = h.running("fenced").await;
    let k = key("fenced");
    let (a, b) = (
        StoreEventSink::new(h.store.clone()).fenced(Some("a".into())),
        StoreEventSink::new(h.store.clone()).fenced(Some("b".into())),
    );
    let batch = EventBatch {
        execution: exec.clone(),
        workflow_events: succeeded_event(&exec).event.into_iter().collect(),
        node_events: node_event(&exec, node_execution::Phase::Succeeded)
            .event
            .into_iter()
            .collect(),
        ..Default::default()
    };
    // a's lease ran out (by the database's clock) and b took it.
    assert!(
        h.store
            .claim_lease(&k, "a", std::time::Duration::ZERO)
            .await
            .unwrap()
    );
    let taken = h
        .store
        .take_expired_leases("b", std::time::Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(taken, vec![k.clone()]);

    let err = a.record(&batch).await.unwrap_err();
    assert!(matches!(err, SinkError::LeaseLost(_)), "{err:?}");
    assert_eq!(h.phase_and_state("fenced").await.0, "RUNNING");
    let nodes = h
        .store
        .get_node_executions(&k, &["n0".to_string()])
        .await
        .unwrap();
    assert!(nodes.is_empty(), "nothing of a's batch was written");

    b.record(&batch).await.unwrap();
    assert_eq!(h.phase_and_state("fenced").await.0, "SUCCEEDED");
    let nodes = h
        .store
        .get_node_executions(&k, &["n0".to_string()])
        .await
        .unwrap();
    assert_eq!(nodes.len(), 1, "b's batch wrote its node");
}

macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let h = crate::Harness::sqlite().await;
                    crate::$test(&h).await;
                    h.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let h = crate::Harness::postgres(stringify!($test)).await;
                    crate::$test(&h).await;
                    h.finish().await;
                }
            )*
        }
    };
}

on_both_stores!(
    terminate_against_success,
    archive_against_success,
    archive_against_engine_success,
    duplicate_node_events,
    fenced_sink_refuses_a_stale_owner,
);
