//! The engine's hot path in isolation: [`StoreEventSink::record`] of the batches one task
//! node produces (QUEUED/RUNNING with its task RUNNING, then SUCCEEDED with the task's
//! SUCCEEDED, each with its journal entry), on a fresh SQLite store (the embedded default)
//! or on PostgreSQL.
//!
//! `cargo run -p flyte-admin --release --example sink_bench -- [NODES] [postgres://…] [fenced]`
//! prints batches per second and microseconds per node; `fenced`: each batch is fenced by
//! an execution lease, as engine replicas write (the cost of that check).

use std::time::Instant;

use chrono::Utc;
use flyte_admin::service::admin::event_sink::StoreEventSink;
use flyte_engine::{EventBatch, EventSink, JournalDelta, NodeStateRecord};
use flyte_store::{ExecutionKey, ExecutionRecord};
use flyteidl::core::{
    self, Identifier, NodeExecutionIdentifier, ResourceType, TaskExecutionIdentifier,
    WorkflowExecutionIdentifier,
};
use flyteidl::event::{NodeExecutionEvent, TaskExecutionEvent, WorkflowExecutionEvent};

fn now() -> pbjson_types::Timestamp {
    let t = Utc::now();
    pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn node_event(exec: &WorkflowExecutionIdentifier, node: &str, phase: i32) -> NodeExecutionEvent {
    NodeExecutionEvent {
        id: Some(NodeExecutionIdentifier {
            node_id: node.into(),
            execution_id: Some(exec.clone()),
        }),
        phase,
        occurred_at: Some(now()),
        ..Default::default()
    }
}

fn task_event(exec: &WorkflowExecutionIdentifier, node: &str, phase: i32) -> TaskExecutionEvent {
    let id = TaskExecutionIdentifier {
        task_id: Some(Identifier {
            resource_type: ResourceType::Task as i32,
            project: exec.project.clone(),
            domain: exec.domain.clone(),
            name: "bench.task".into(),
            version: "v1".into(),
            org: String::new(),
        }),
        node_execution_id: Some(NodeExecutionIdentifier {
            node_id: node.into(),
            execution_id: Some(exec.clone()),
        }),
        retry_attempt: 0,
    };
    TaskExecutionEvent {
        task_id: id.task_id.clone(),
        parent_node_execution_id: id.node_execution_id.clone(),
        retry_attempt: 0,
        phase,
        occurred_at: Some(now()),
        ..Default::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("flyte.db").display()));
    let fenced = args.next().as_deref() == Some("fenced");
    let store = flyte_store::open(&url).await.expect("open store");
    let sink = StoreEventSink::new(store.clone()).fenced(fenced.then(|| "bench".to_owned()));

    let name = format!("bench{}", std::process::id());
    let key = ExecutionKey {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.clone(),
    };
    let at = Utc::now();
    store
        .create_execution(
            ExecutionRecord {
                key: key.clone(),
                launch_plan: None,
                workflow: None,
                task: None,
                phase: "UNDEFINED".into(),
                mode: 0,
                state: 0,
                principal: String::new(),
                parent: None,
                spec: Vec::new(),
                closure: Vec::new(),
                inputs_uri: String::new(),
                user_inputs_uri: String::new(),
                created_at: at,
                updated_at: at,
                started_at: None,
                error_code: String::new(),
                duration_ms: 0,
                tags: Vec::new(),
                notify_phases: Vec::new(),
            },
            None,
        )
        .await
        .expect("create execution");
    if fenced {
        assert!(
            store
                .claim_lease(&key, "bench", std::time::Duration::from_secs(3600))
                .await
                .expect("claim lease")
        );
    }
    let exec = WorkflowExecutionIdentifier {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name,
        org: String::new(),
    };
    sink.record(&EventBatch {
        execution: exec.clone(),
        workflow_events: vec![WorkflowExecutionEvent {
            execution_id: Some(exec.clone()),
            phase: core::workflow_execution::Phase::Running as i32,
            occurred_at: Some(now()),
            ..Default::default()
        }],
        ..Default::default()
    })
    .await
    .expect("running");

    let started = Instant::now();
    for i in 0..nodes {
        let node = format!("n{i}");
        let journal = |phase: i32| JournalDelta {
            nodes: vec![NodeStateRecord {
                node_id: node.clone(),
                phase,
                ..Default::default()
            }],
            ..Default::default()
        };
        for (node_phase, task_phase) in [
            (
                core::node_execution::Phase::Running,
                core::task_execution::Phase::Running,
            ),
            (
                core::node_execution::Phase::Succeeded,
                core::task_execution::Phase::Succeeded,
            ),
        ] {
            let batch = EventBatch {
                execution: exec.clone(),
                node_events: vec![node_event(&exec, &node, node_phase as i32)],
                task_events: vec![task_event(&exec, &node, task_phase as i32)],
                journal: journal(node_phase as i32),
                ..Default::default()
            };
            sink.record(&batch).await.expect("record");
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{}{} on {}: {nodes} nodes, {} batches in {:.2} s: {:.0} batches/s, {:.0} µs per node",
        env!("CARGO_PKG_NAME"),
        if fenced { " (fenced)" } else { "" },
        store.backend_name(),
        nodes * 2,
        elapsed.as_secs_f64(),
        (nodes * 2) as f64 / elapsed.as_secs_f64(),
        elapsed.as_micros() as f64 / nodes as f64,
    );
    store.close().await;
}
