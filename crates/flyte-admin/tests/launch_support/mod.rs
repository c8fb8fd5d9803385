//! Shared by the signals_* and executions_recovery* tests: the whole admin router (AdminService,
//! SignalService, the gateway) over SQLite, served by `axum::serve` on 127.0.0.1:0 as the
//! binary serves it, with a recording [`ExecutionLauncher`] in place of the engine (what it
//! was asked to start, and which signals it was told about). Plus literal and event builders.

#![allow(dead_code, deprecated)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flyte_admin::launcher::{ExecutionLauncher, LaunchRequest};
use flyte_admin::{AdminConfig, AdminState};
use flyte_blob::BlobStore;
use flyteidl::admin::*;
use flyteidl::core::{
    self, Literal, LiteralMap, NodeExecutionIdentifier, Primitive, Scalar,
    WorkflowExecutionIdentifier, literal, primitive, scalar,
};
use flyteidl::event::{
    NodeExecutionEvent, ParentNodeExecutionMetadata, WorkflowExecutionEvent, node_execution_event,
    workflow_execution_event,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use flyteidl::service::signal_service_client::SignalServiceClient;
use tonic::transport::Channel;

pub const PROJECT: &str = "flytesnacks";
pub const DOMAIN: &str = "development";

/// Records what the admin asks of the engine.
#[derive(Default)]
pub struct RecordingLauncher {
    pub started: Mutex<Vec<LaunchRequest>>,
    pub aborted: Mutex<Vec<(WorkflowExecutionIdentifier, String)>>,
    pub signals: Mutex<Vec<(WorkflowExecutionIdentifier, String)>>,
}

#[async_trait]
impl ExecutionLauncher for RecordingLauncher {
    async fn start(&self, request: LaunchRequest) -> Result<(), String> {
        self.started.lock().unwrap().push(request);
        Ok(())
    }

    async fn abort(&self, id: &WorkflowExecutionIdentifier, cause: &str) -> Result<bool, String> {
        self.aborted
            .lock()
            .unwrap()
            .push((id.clone(), cause.to_string()));
        // Not running: the admin finishes the execution as ABORTED itself.
        Ok(false)
    }

    async fn signal_set(&self, execution: &WorkflowExecutionIdentifier, signal_id: &str) {
        self.signals
            .lock()
            .unwrap()
            .push((execution.clone(), signal_id.to_string()));
    }
}

impl RecordingLauncher {
    pub fn started(&self, name: &str) -> LaunchRequest {
        self.started
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.id.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} was not started"))
    }
}

pub struct Server {
    pub base: String,
    pub state: AdminState,
    pub launcher: Arc<RecordingLauncher>,
    pub admin: AdminServiceClient<Channel>,
    pub signals: SignalServiceClient<Channel>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub async fn start() -> Server {
    start_with(|_| {}).await
}

/// [`start`] with the admin configuration changed by `edit` first.
pub async fn start_with(edit: impl FnOnce(&mut AdminConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let launcher = Arc::new(RecordingLauncher::default());
    let state = AdminState {
        store,
        blob,
        config: Arc::new({
            let mut config = AdminConfig {
                public_url: base.clone(),
                ..Default::default()
            };
            edit(&mut config);
            config
        }),
        launcher: Some(launcher.clone()),
    };
    let app = flyte_admin::router::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let channel = Channel::from_shared(base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    Server {
        base,
        state,
        launcher,
        admin: AdminServiceClient::new(channel.clone()),
        signals: SignalServiceClient::new(channel),
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

// --- literals -------------------------------------------------------------------------------

pub fn prim(value: primitive::Value) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive { value: Some(value) })),
        }))),
        ..Default::default()
    }
}

pub fn int_lit(v: i64) -> Literal {
    prim(primitive::Value::Integer(v))
}

pub fn bool_lit(v: bool) -> Literal {
    prim(primitive::Value::Boolean(v))
}

pub fn str_lit(v: &str) -> Literal {
    prim(primitive::Value::StringValue(v.into()))
}

pub fn simple(t: core::SimpleType) -> core::LiteralType {
    core::LiteralType {
        r#type: Some(core::literal_type::Type::Simple(t as i32)),
        ..Default::default()
    }
}

pub fn map(pairs: &[(&str, Literal)]) -> LiteralMap {
    LiteralMap {
        literals: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

pub fn exec_id(name: &str) -> WorkflowExecutionIdentifier {
    WorkflowExecutionIdentifier {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        ..Default::default()
    }
}

// --- executions and events ---------------------------------------------------------------------

pub fn create_request(
    target: &core::Identifier,
    name: &str,
    inputs: LiteralMap,
) -> ExecutionCreateRequest {
    ExecutionCreateRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        spec: Some(ExecutionSpec {
            launch_plan: Some(target.clone()),
            metadata: Some(ExecutionMetadata {
                principal: "alice".into(),
                ..Default::default()
            }),
            labels: Some(Labels {
                values: [("team".to_string(), "ml".to_string())].into(),
            }),
            ..Default::default()
        }),
        inputs: Some(inputs),
        ..Default::default()
    }
}

fn ts(seconds: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: 1_700_000_000 + seconds,
        nanos: 0,
    }
}

pub fn wf_event(
    name: &str,
    phase: core::workflow_execution::Phase,
    at: i64,
    output: Option<workflow_execution_event::OutputResult>,
) -> WorkflowExecutionEventRequest {
    WorkflowExecutionEventRequest {
        request_id: String::new(),
        event: Some(WorkflowExecutionEvent {
            execution_id: Some(exec_id(name)),
            producer_id: "test".into(),
            phase: phase as i32,
            occurred_at: Some(ts(at)),
            output_result: output,
        }),
    }
}

/// A node event; `parent` makes it a child node of that (unique) node id.
pub fn node_event(
    exec: &str,
    node: &str,
    parent: Option<&str>,
    phase: core::node_execution::Phase,
    at: i64,
) -> NodeExecutionEvent {
    NodeExecutionEvent {
        id: Some(NodeExecutionIdentifier {
            node_id: node.into(),
            execution_id: Some(exec_id(exec)),
        }),
        phase: phase as i32,
        occurred_at: Some(ts(at)),
        spec_node_id: node.rsplit('-').next().unwrap_or(node).into(),
        parent_node_metadata: parent.map(|p| ParentNodeExecutionMetadata { node_id: p.into() }),
        ..Default::default()
    }
}

pub fn node_req(event: NodeExecutionEvent) -> NodeExecutionEventRequest {
    NodeExecutionEventRequest {
        request_id: String::new(),
        event: Some(event),
    }
}

pub fn with_inputs(mut event: NodeExecutionEvent, uri: &str) -> NodeExecutionEvent {
    event.input_value = Some(node_execution_event::InputValue::InputUri(uri.into()));
    event
}

impl Server {
    /// Writes a literal map into the blob store; its native URL.
    pub async fn put_map(&self, path: &str, map: &LiteralMap) -> String {
        use prost::Message;
        self.state
            .blob
            .put(path, bytes::Bytes::from(map.encode_to_vec()))
            .await
            .unwrap();
        self.state.blob.native_url(path)
    }

    /// Moves an execution to RUNNING and then to `phase` (terminal), as the engine would.
    pub async fn finish(
        &mut self,
        name: &str,
        phase: core::workflow_execution::Phase,
        output: Option<workflow_execution_event::OutputResult>,
    ) {
        self.admin
            .create_workflow_event(wf_event(
                name,
                core::workflow_execution::Phase::Running,
                1,
                None,
            ))
            .await
            .unwrap();
        self.admin
            .create_workflow_event(wf_event(name, phase, 2, output))
            .await
            .unwrap();
    }

    pub async fn get(&mut self, name: &str) -> Execution {
        self.admin
            .get_execution(WorkflowExecutionGetRequest {
                id: Some(exec_id(name)),
            })
            .await
            .unwrap()
            .into_inner()
    }
}
