//! Shared by the admin_* integration tests: an AdminService over SQLite on a random port,
//! behind the fidelity layer as the binary serves it, and small spec builders.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use flyte_admin::fidelity;
use flyte_admin::launcher::{EngineParts, with_engine};
use flyte_admin::service::admin::admin_service;
use flyte_admin::{AdminConfig, AdminState};
use flyte_blob::BlobStore;
use flyte_engine::backend::TaskBackend;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::{Engine, EngineConfig};
use flyteidl::admin::{
    ExecutionCreateRequest, ExecutionSpec, LaunchPlanCreateRequest, LaunchPlanSpec,
    ObjectGetRequest, TaskCreateRequest, TaskSpec, WorkflowCreateRequest, WorkflowSpec,
};
use flyteidl::core::literal_type::Type;
use flyteidl::core::*;
use flyteidl::service::admin_service_client::AdminServiceClient;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tower::Layer;

pub const PROJECT: &str = "flytesnacks";
pub const DOMAIN: &str = "development";

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: AdminServiceClient<Channel>,
    pub state: AdminState,
    _dir: tempfile::TempDir,
}

pub async fn start() -> TestServer {
    start_with(AdminConfig::default()).await
}

pub async fn start_with(config: AdminConfig) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
    let state = AdminState {
        store,
        blob,
        config: Arc::new(config),
        launcher: None,
    };
    let (addr, client) = serve(state.clone()).await;
    TestServer {
        addr,
        client: client.max_decoding_message_size(usize::MAX),
        state,
        _dir: dir,
    }
}

/// Serves `state`'s AdminService behind the fidelity layer on 127.0.0.1:0; its address and a
/// client connected to it.
pub async fn serve(state: AdminState) -> (SocketAddr, AdminServiceClient<Channel>) {
    let max = state.config.max_request_bytes;
    let service = fidelity::layer(max).layer(admin_service(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (addr, AdminServiceClient::new(channel))
}

/// The admin's state over SQLite and file blobs in `dir`, with the real engine behind it
/// (in-engine tasks only: `echo`, `core-sleep`) as its launcher; the engine's events go
/// through the store-backed sink and journal. Not yet resumed nor served.
pub async fn engine_state(dir: &Path) -> (AdminState, Arc<Engine>) {
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.display()))
        .await
        .unwrap();
    let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.display())).unwrap();
    let state = AdminState {
        store,
        blob: blob.clone(),
        config: Arc::new(AdminConfig::default()),
        launcher: None,
    };
    let backends: Vec<Arc<dyn TaskBackend>> = vec![Arc::new(BuiltinBackend::new(blob))];
    with_engine(state, engine_parts(backends))
}

/// The engine's parts the binary gives it, with `backends` and no cache.
pub fn engine_parts(backends: Vec<Arc<dyn TaskBackend>>) -> EngineParts {
    EngineParts {
        config: EngineConfig::default(),
        backends,
        cache: None,
    }
}

impl TestServer {
    /// A client that sends and receives message bytes as they are (for unknown fields).
    pub async fn raw(&self) -> RawClient {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        RawClient {
            grpc: tonic::client::Grpc::new(channel),
        }
    }
}

pub struct RawClient {
    grpc: tonic::client::Grpc<Channel>,
}

impl RawClient {
    /// Calls `/flyteidl.service.AdminService/<method>` with `message` as the request bytes.
    pub async fn call(&mut self, method: &str, message: Vec<u8>) -> Result<Bytes, tonic::Status> {
        self.grpc.ready().await.unwrap();
        let path = format!("/flyteidl.service.AdminService/{method}")
            .parse()
            .unwrap();
        let response = self
            .grpc
            .unary(tonic::Request::new(Bytes::from(message)), path, BytesCodec)
            .await?;
        Ok(response.into_inner())
    }
}

#[derive(Clone, Copy, Default)]
pub struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;
    fn encoder(&mut self) -> Self::Encoder {
        BytesCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

// --- builders -----------------------------------------------------------------------------

pub fn int() -> LiteralType {
    LiteralType {
        r#type: Some(Type::Simple(SimpleType::Integer as i32)),
        ..Default::default()
    }
}

pub fn vars(v: &[(&str, LiteralType)]) -> VariableMap {
    VariableMap {
        variables: v
            .iter()
            .map(|(n, t)| {
                let var = Variable {
                    r#type: Some(t.clone()),
                    ..Default::default()
                };
                (n.to_string(), var)
            })
            .collect(),
    }
}

pub fn iface(i: &[(&str, LiteralType)], o: &[(&str, LiteralType)]) -> TypedInterface {
    TypedInterface {
        inputs: Some(vars(i)),
        outputs: Some(vars(o)),
    }
}

pub fn id(rt: ResourceType, name: &str, version: &str) -> Identifier {
    Identifier {
        resource_type: rt as i32,
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        version: version.into(),
        ..Default::default()
    }
}

/// A python task `a: int -> b: int`.
pub fn task_template(name: &str, version: &str, image: &str) -> TaskTemplate {
    TaskTemplate {
        id: Some(id(ResourceType::Task, name, version)),
        r#type: "python-task".into(),
        metadata: Some(TaskMetadata {
            runtime: Some(RuntimeMetadata {
                version: "1.16.31".into(),
                flavor: "python".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        interface: Some(iface(&[("a", int())], &[("b", int())])),
        target: Some(task_template::Target::Container(Container {
            image: image.into(),
            args: vec!["pyflyte-execute".into()],
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn task_request(name: &str, version: &str) -> TaskCreateRequest {
    TaskCreateRequest {
        id: Some(id(ResourceType::Task, name, version)),
        spec: Some(TaskSpec {
            template: Some(task_template(name, version, "img:1")),
            description: Some(flyteidl::admin::DescriptionEntity {
                short_description: format!("the {name} task"),
                ..Default::default()
            }),
        }),
    }
}

/// [`task_request`] as an in-engine `echo` task (no container).
pub fn echo_task_request(name: &str, version: &str) -> TaskCreateRequest {
    let mut task = task_request(name, version);
    let template = task.spec.as_mut().unwrap().template.as_mut().unwrap();
    template.r#type = "echo".into();
    template.target = None;
    task
}

pub fn int_lit(v: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(v)),
            })),
        }))),
        ..Default::default()
    }
}

pub fn promise(node: &str, var: &str) -> BindingData {
    BindingData {
        value: Some(binding_data::Value::Promise(OutputReference {
            node_id: node.into(),
            var: var.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn bind(var: &str, data: BindingData) -> Binding {
    Binding {
        var: var.into(),
        binding: Some(data),
    }
}

/// A workflow `x: int -> o: int` with one node `n0` calling `task`, whose output is read from
/// `output_node` (`n0` for a valid workflow).
pub fn workflow_request(
    name: &str,
    version: &str,
    task: &Identifier,
    output_node: &str,
) -> WorkflowCreateRequest {
    let wf_id = id(ResourceType::Workflow, name, version);
    let node = Node {
        id: "n0".into(),
        inputs: vec![bind("a", promise("start-node", "x"))],
        metadata: Some(NodeMetadata {
            name: "t".into(),
            ..Default::default()
        }),
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(task.clone())),
            ..Default::default()
        })),
        ..Default::default()
    };
    let template = WorkflowTemplate {
        id: Some(wf_id.clone()),
        metadata: Some(WorkflowMetadata::default()),
        interface: Some(iface(&[("x", int())], &[("o", int())])),
        nodes: vec![node],
        outputs: vec![bind("o", promise(output_node, "b"))],
        ..Default::default()
    };
    WorkflowCreateRequest {
        id: Some(wf_id),
        spec: Some(WorkflowSpec {
            template: Some(template),
            sub_workflows: vec![],
            description: None,
        }),
    }
}

pub fn launch_plan_request(
    name: &str,
    version: &str,
    workflow: &Identifier,
) -> LaunchPlanCreateRequest {
    LaunchPlanCreateRequest {
        id: Some(id(ResourceType::LaunchPlan, name, version)),
        spec: Some(LaunchPlanSpec {
            workflow_id: Some(workflow.clone()),
            default_inputs: Some(ParameterMap {
                parameters: [(
                    "x".to_string(),
                    Parameter {
                        var: Some(Variable {
                            r#type: Some(int()),
                            ..Default::default()
                        }),
                        behavior: Some(parameter::Behavior::Required(true)),
                    },
                )]
                .into(),
            }),
            ..Default::default()
        }),
    }
}

/// CreateExecution `name` (empty: the server names it) of launch plan `lp` with input `x`.
pub fn execution_request(lp: &Identifier, name: &str, x: i64) -> ExecutionCreateRequest {
    ExecutionCreateRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        spec: Some(ExecutionSpec {
            launch_plan: Some(lp.clone()),
            ..Default::default()
        }),
        #[allow(deprecated)]
        inputs: Some(LiteralMap {
            literals: [("x".to_string(), int_lit(x))].into(),
        }),
        ..Default::default()
    }
}

pub fn get(id: &Identifier) -> ObjectGetRequest {
    ObjectGetRequest {
        id: Some(id.clone()),
    }
}

/// Registers task `t`, workflow `wf` and launch plan `wf`, all at `version`.
pub async fn register_all(
    client: &mut AdminServiceClient<Channel>,
    version: &str,
) -> (Identifier, Identifier, Identifier) {
    register_with(client, task_request("t", version), "wf", version).await
}

/// Registers `task`, a workflow `wf` (see [`workflow_request`]) calling it and launch plan
/// `wf`, both at `version`; their ids: task, workflow, launch plan.
pub async fn register_with(
    client: &mut AdminServiceClient<Channel>,
    task: TaskCreateRequest,
    wf: &str,
    version: &str,
) -> (Identifier, Identifier, Identifier) {
    let task_id = task.id.clone().unwrap();
    client.create_task(task).await.unwrap();
    let wf = workflow_request(wf, version, &task_id, "n0");
    let wf_id = wf.id.clone().unwrap();
    client.create_workflow(wf).await.unwrap();
    let lp = launch_plan_request(&wf_id.name, version, &wf_id);
    let lp_id = lp.id.clone().unwrap();
    client.create_launch_plan(lp).await.unwrap();
    (task_id, wf_id, lp_id)
}
