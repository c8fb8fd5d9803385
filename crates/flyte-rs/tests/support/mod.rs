//! Helpers shared by the flyte-rs integration tests: a gRPC client for a [`TestServer`],
//! identifiers, types and literals, launch-plan inputs, execution requests and polling, and
//! a small real disk ([`SmallDisk`]).
//! Each test binary uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flyte_rs::testing::TestServer;
use flyteidl::admin::{
    Execution, ExecutionCreateRequest, ExecutionSpec, LaunchPlanCreateRequest, LaunchPlanSpec,
    TaskCreateRequest, TaskSpec, WorkflowCreateRequest, WorkflowExecutionGetRequest, WorkflowSpec,
};
use flyteidl::core::{
    BindingData, Identifier, Literal, LiteralMap, LiteralType, OutputReference, Parameter,
    ParameterMap, Primitive, ResourceType, Scalar, SimpleType, TaskTemplate, TypedInterface,
    Variable, VariableMap, WorkflowExecutionIdentifier, WorkflowTemplate, binding_data, literal,
    literal_type, parameter, primitive, scalar, workflow_execution::Phase,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

pub const PROJECT: &str = "flytesnacks";
pub const DOMAIN: &str = "development";

pub async fn grpc(server: &TestServer) -> AdminServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("gRPC connects");
    AdminServiceClient::new(channel)
}

/// `PROJECT/DOMAIN/name` at version `v1`.
pub fn id(rt: ResourceType, name: &str) -> Identifier {
    Identifier {
        resource_type: rt as i32,
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: name.into(),
        version: "v1".into(),
        ..Default::default()
    }
}

pub fn simple(t: SimpleType) -> LiteralType {
    LiteralType {
        r#type: Some(literal_type::Type::Simple(t as i32)),
        ..Default::default()
    }
}

pub fn int() -> LiteralType {
    simple(SimpleType::Integer)
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

/// A binding to output `var` of `node` (`start-node` for the workflow's inputs).
pub fn promise(node: &str, var: &str) -> Option<BindingData> {
    Some(BindingData {
        value: Some(binding_data::Value::Promise(OutputReference {
            node_id: node.into(),
            var: var.into(),
            ..Default::default()
        })),
        ..Default::default()
    })
}

/// A launch plan's default inputs: every one of `inputs` required.
pub fn required_inputs(inputs: &[(&str, LiteralType)]) -> ParameterMap {
    let parameters = inputs
        .iter()
        .map(|(v, t)| {
            let p = Parameter {
                var: Some(Variable {
                    r#type: Some(t.clone()),
                    ..Default::default()
                }),
                behavior: Some(parameter::Behavior::Required(true)),
            };
            (v.to_string(), p)
        })
        .collect();
    ParameterMap { parameters }
}

/// CreateTask of `template` under its own id.
pub fn task_request(template: TaskTemplate) -> TaskCreateRequest {
    TaskCreateRequest {
        id: template.id.clone(),
        spec: Some(TaskSpec {
            template: Some(template),
            description: None,
        }),
    }
}

/// CreateWorkflow of `template` (no sub-workflows) under its own id.
pub fn workflow_request(template: WorkflowTemplate) -> WorkflowCreateRequest {
    WorkflowCreateRequest {
        id: template.id.clone(),
        spec: Some(WorkflowSpec {
            template: Some(template),
            sub_workflows: vec![],
            description: None,
        }),
    }
}

/// CreateLaunchPlan `lp` of workflow `wf`, every one of `inputs` required.
pub fn launch_plan_request(
    lp: &Identifier,
    wf: &Identifier,
    inputs: &[(&str, LiteralType)],
) -> LaunchPlanCreateRequest {
    LaunchPlanCreateRequest {
        id: Some(lp.clone()),
        spec: Some(LaunchPlanSpec {
            workflow_id: Some(wf.clone()),
            default_inputs: Some(required_inputs(inputs)),
            ..Default::default()
        }),
    }
}

/// CreateExecution of launch plan `lp` in `PROJECT/DOMAIN` with `inputs`.
pub fn execution_request(lp: &Identifier, inputs: &[(&str, Literal)]) -> ExecutionCreateRequest {
    #[allow(deprecated)]
    ExecutionCreateRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        spec: Some(ExecutionSpec {
            launch_plan: Some(lp.clone()),
            ..Default::default()
        }),
        inputs: Some(LiteralMap {
            literals: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }),
        ..Default::default()
    }
}

/// Polls GetExecution every `poll` (as FlyteRemote.wait does) until the execution is
/// terminal. `timeout` only bounds a hung test; it asserts nothing about speed.
pub async fn wait_terminal(
    client: &mut AdminServiceClient<Channel>,
    id: &WorkflowExecutionIdentifier,
    timeout: Duration,
    poll: Duration,
) -> Execution {
    let deadline = Instant::now() + timeout;
    loop {
        let execution = client
            .get_execution(WorkflowExecutionGetRequest {
                id: Some(id.clone()),
            })
            .await
            .expect("GetExecution")
            .into_inner();
        let phase = execution.closure.as_ref().map_or(0, |c| c.phase);
        if [
            Phase::Succeeded,
            Phase::Failed,
            Phase::Aborted,
            Phase::TimedOut,
        ]
        .iter()
        .any(|p| *p as i32 == phase)
        {
            return execution;
        }
        assert!(
            Instant::now() < deadline,
            "execution {} still {phase} after {timeout:?}",
            id.name
        );
        tokio::time::sleep(poll).await;
    }
}

/// A tmpfs of a given size mounted on a temp dir, unmounted on drop. Mounting needs root (CI
/// and the dev machines run as root): without it the test fails at the mount, never skips.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Self {
        let disk = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        disk.run_mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]);
        disk
    }

    /// Remounts with `options` (e.g. `ro`).
    pub fn remount(&self, options: &str) {
        self.run_mount(&["-o", &format!("remount,{options}")]);
    }

    fn run_mount(&self, args: &[&str]) {
        let out = Command::new("mount")
            .args(args)
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount {args:?} failed (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left with a file; its path.
    pub fn fill(&self) -> PathBuf {
        let ballast = self.path().join("ballast");
        let mut file = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let _ = file.sync_all();
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
