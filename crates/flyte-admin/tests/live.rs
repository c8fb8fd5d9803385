//! The watch endpoint (server-sent events, `flyte_admin::live`) over the whole admin router
//! with the real engine: a client sees the execution's and its nodes' phases as the engine
//! commits them, and the stream ends with the execution.

mod admin_support;

use std::time::Duration;

use admin_support::*;
use flyteidl::admin::*;
use flyteidl::core::{
    self, Identifier, Node, NodeMetadata, Primitive, ResourceType, Scalar, TaskNode,
    WorkflowMetadata, WorkflowTemplate, node, primitive, scalar, task_node,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

fn duration_type() -> core::LiteralType {
    core::LiteralType {
        r#type: Some(core::literal_type::Type::Simple(
            core::SimpleType::Duration as i32,
        )),
        ..Default::default()
    }
}

fn seconds(s: i64) -> core::BindingData {
    core::BindingData {
        value: Some(core::binding_data::Value::Scalar(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Duration(pbjson_types::Duration {
                    seconds: s,
                    nanos: 0,
                })),
            })),
        })),
        ..Default::default()
    }
}

/// Workflow `napping`: n0 sleeps `nap` seconds (in-engine `core-sleep`), then n1 echoes x.
async fn register_napping(client: &mut AdminServiceClient<Channel>, nap: i64) -> Identifier {
    let sleep_id = id(ResourceType::Task, "nap", "v1");
    let mut sleep = task_request("nap", "v1");
    let template = sleep.spec.as_mut().unwrap().template.as_mut().unwrap();
    template.r#type = "core-sleep".into();
    template.target = None;
    template.interface = Some(iface(&[("d", duration_type())], &[]));
    client.create_task(sleep).await.unwrap();
    let echo = echo_task_request("echo", "v1");
    let echo_id = echo.id.clone().unwrap();
    client.create_task(echo).await.unwrap();

    let wf_id = id(ResourceType::Workflow, "napping", "v1");
    let task_node = |id: &str, task: &Identifier, inputs| Node {
        id: id.into(),
        inputs,
        metadata: Some(NodeMetadata {
            name: id.into(),
            ..Default::default()
        }),
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(task.clone())),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut n1 = task_node("n1", &echo_id, vec![bind("a", promise("start-node", "x"))]);
    n1.upstream_node_ids = vec!["n0".into()];
    let template = WorkflowTemplate {
        id: Some(wf_id.clone()),
        metadata: Some(WorkflowMetadata::default()),
        interface: Some(iface(&[("x", int())], &[("o", int())])),
        nodes: vec![
            task_node("n0", &sleep_id, vec![bind("d", seconds(nap))]),
            n1,
        ],
        outputs: vec![bind("o", promise("n1", "b"))],
        ..Default::default()
    };
    client
        .create_workflow(WorkflowCreateRequest {
            id: Some(wf_id.clone()),
            spec: Some(WorkflowSpec {
                template: Some(template),
                sub_workflows: vec![],
                description: None,
            }),
        })
        .await
        .unwrap();
    let lp = launch_plan_request("napping", "v1", &wf_id);
    let lp_id = lp.id.clone().unwrap();
    client.create_launch_plan(lp).await.unwrap();
    lp_id
}

/// The whole admin router (gRPC and HTTP on one port) over `state`.
async fn serve_router(state: flyte_admin::AdminState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = flyte_admin::router::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// `(event, data)` of every event in an SSE body, comments skipped.
fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.trim_start().to_string());
                }
            }
            (!data.is_empty()).then(|| (name, data.join("\n")))
        })
        .collect()
}

#[tokio::test]
async fn a_watch_sees_the_phases_the_engine_commits_and_ends_with_the_execution() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _engine) = engine_state(dir.path()).await;
    let base = serve_router(state).await;
    let mut client = AdminServiceClient::new(
        Channel::from_shared(base.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let lp = register_napping(&mut client, 3).await;
    client
        .create_execution(execution_request(&lp, "watched", 7))
        .await
        .unwrap();

    // Opened while n0 sleeps; read to its end (the server closes it after SUCCEEDED).
    let http = reqwest::Client::new();
    let mut response = http
        .get(format!(
            "{base}/api/v1/watch/executions/{PROJECT}/{DOMAIN}/watched"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = String::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the stream did not end after the execution ended");

    let events = events(&body);
    assert_eq!(events[0].0, "ready", "{body}");
    let ready: serde_json::Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(ready["phase"], "RUNNING", "{body}");
    let updates: Vec<serde_json::Value> = events
        .iter()
        .filter(|(name, _)| name == "update")
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    let node_phases = |node: &str| -> Vec<String> {
        updates
            .iter()
            .flat_map(|u| u["nodes"].as_array().cloned().unwrap_or_default())
            .filter(|n| n["nodeId"] == node)
            .map(|n| n["phase"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        node_phases("n0").contains(&"SUCCEEDED".to_string()),
        "{body}"
    );
    assert!(
        node_phases("n1").contains(&"SUCCEEDED".to_string()),
        "{body}"
    );
    let attempts: Vec<&serde_json::Value> = updates
        .iter()
        .flat_map(|u| u["tasks"].as_array().into_iter().flatten())
        .filter(|t| t["nodeId"] == "n1")
        .collect();
    assert!(
        attempts
            .iter()
            .any(|t| t["phase"] == "SUCCEEDED" && t["retryAttempt"] == 0),
        "{body}"
    );
    // The last event is the update that ended the execution.
    let last = updates.last().expect("no update");
    assert_eq!(last["phase"], "SUCCEEDED", "{body}");
    assert_eq!(events.last().unwrap().0, "update");

    // A finished execution: its phase, and the stream ends at once.
    let body = http
        .get(format!(
            "{base}/api/v1/watch/executions/{PROJECT}/{DOMAIN}/watched"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = self::events(&body);
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0].0, "ready");
    assert!(events[0].1.contains("SUCCEEDED"), "{body}");
}

#[tokio::test]
async fn watching_an_unknown_execution_is_a_404_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _engine) = engine_state(dir.path()).await;
    let base = serve_router(state).await;
    let response = reqwest::get(format!(
        "{base}/api/v1/watch/executions/{PROJECT}/{DOMAIN}/nope"
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        format!("execution {PROJECT}/{DOMAIN}/nope not found")
    );
}

/// The body of a followed log, read to its end.
async fn follow(file: &std::path::Path, last_event_id: Option<&str>) -> Vec<(String, String)> {
    use http_body_util::BodyExt;
    let dir = file.parent().unwrap();
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.display()))
        .await
        .unwrap();
    let attempt = flyte_engine::backend::AttemptKey {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        execution: "gone".into(),
        node_id: "n0".into(),
        retry_attempt: 0,
    };
    let mut headers = http::HeaderMap::new();
    if let Some(id) = last_event_id {
        headers.insert("last-event-id", id.parse().unwrap());
    }
    let response = flyte_admin::live::follow_log(store, file.to_path_buf(), attempt, &headers);
    let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("the stream did not end")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    // `id:` lines kept as ("id", value) to check the offsets.
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                out.push(("id".to_string(), v.trim().to_string()));
            }
        }
    }
    out.extend(events(&text));
    out
}

#[tokio::test]
async fn a_followed_log_sends_whole_lines_then_the_rest_and_ends_with_its_execution() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0.log");
    std::fs::write(&file, "line one\nline two\npartial").unwrap();
    // The execution is not in the store (gone): the attempt has ended, so after the whole
    // lines comes the unfinished last one, then `end`.
    let got = follow(&file, None).await;
    let logs: Vec<String> = got
        .iter()
        .filter(|(k, _)| k == "log")
        .map(|(_, d)| serde_json::from_str::<String>(d).unwrap())
        .collect();
    assert_eq!(logs, vec!["line one\nline two\n", "partial"], "{got:?}");
    let ids: Vec<&str> = got
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(ids, vec!["18", "25"], "byte offsets after each piece");
    assert_eq!(got.last().unwrap().0, "end");

    // A reconnect with Last-Event-ID gets only what follows that offset.
    let again = follow(&file, Some("18")).await;
    let logs: Vec<String> = again
        .iter()
        .filter(|(k, _)| k == "log")
        .map(|(_, d)| serde_json::from_str::<String>(d).unwrap())
        .collect();
    assert_eq!(logs, vec!["partial"], "{again:?}");
}
