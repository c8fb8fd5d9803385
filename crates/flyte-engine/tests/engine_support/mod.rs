//! Builders shared by the engine's integration tests (types, literals, interfaces, identifiers).
#![allow(dead_code)] // each test binary uses a different subset

use flyte_engine::ExecutionRequest;
use flyteidl::core::literal_type::Type;
use flyteidl::core::{
    CompiledWorkflowClosure, Identifier, Literal, LiteralMap, LiteralType, Primitive, ResourceType,
    Scalar, SimpleType, TypedInterface, Variable, VariableMap, WorkflowExecutionIdentifier,
    literal, primitive, scalar,
};

pub fn int_t() -> LiteralType {
    LiteralType {
        r#type: Some(Type::Simple(SimpleType::Integer as i32)),
        ..Default::default()
    }
}

pub fn list_t(t: LiteralType) -> LiteralType {
    LiteralType {
        r#type: Some(Type::CollectionType(Box::new(t))),
        ..Default::default()
    }
}

pub fn vars(v: &[(&str, LiteralType)]) -> VariableMap {
    VariableMap {
        variables: v
            .iter()
            .map(|(n, t)| {
                (
                    n.to_string(),
                    Variable {
                        r#type: Some(t.clone()),
                        ..Default::default()
                    },
                )
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

pub fn ident(rt: ResourceType, name: &str) -> Identifier {
    Identifier {
        resource_type: rt as i32,
        project: "p".into(),
        domain: "d".into(),
        name: name.into(),
        version: "v".into(),
        ..Default::default()
    }
}

pub fn int_lit(i: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })),
        }))),
        ..Default::default()
    }
}

/// An execution `p/d/<name>` of a compiled workflow with the given inputs.
pub fn request(
    name: &str,
    compiled: CompiledWorkflowClosure,
    inputs: &[(&str, Literal)],
) -> ExecutionRequest {
    ExecutionRequest {
        id: WorkflowExecutionIdentifier {
            project: "p".into(),
            domain: "d".into(),
            name: name.into(),
            ..Default::default()
        },
        compiled,
        inputs: LiteralMap {
            literals: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        },
        ..Default::default()
    }
}

// --- an engine without an admin -------------------------------------------------------------

/// Everything an engine needs when no admin stands behind it: events and journal in `sink`,
/// an empty resolver, no cache, and external services that know no signal, launch plan or
/// original execution ([`NoAdmin`]). Tests override fields (`cache`, `external`, `resolver`).
pub fn deps(
    blob: &flyte_blob::BlobStore,
    backends: Vec<std::sync::Arc<dyn flyte_engine::backend::TaskBackend>>,
    sink: &std::sync::Arc<flyte_engine::MemorySink>,
) -> flyte_engine::EngineDeps {
    flyte_engine::EngineDeps {
        config: flyte_engine::EngineConfig::default(),
        blob: blob.clone(),
        backends,
        sink: sink.clone(),
        journal: sink.clone(),
        resolver: flyte_engine::MemoryResolver::new(),
        external: flyte_engine::external::ExternalServices::from(std::sync::Arc::new(NoAdmin)),
        cache: None,
    }
}

/// External services of an engine with no admin: gates and launch-plan nodes fail (nothing
/// can set a signal or run a child), recoveries run every node.
pub struct NoAdmin;

const NO_ADMIN: &str = "this test engine has no admin";

#[async_trait::async_trait]
impl flyte_engine::external::SignalStore for NoAdmin {
    async fn get_or_create(
        &self,
        _: &WorkflowExecutionIdentifier,
        _: &str,
        _: &LiteralType,
    ) -> Result<Option<Literal>, flyte_engine::external::ExternalError> {
        Err(flyte_engine::external::ExternalError::Invalid(
            NO_ADMIN.into(),
        ))
    }
}

#[async_trait::async_trait]
impl flyte_engine::external::ChildExecutions for NoAdmin {
    async fn create_child(
        &self,
        _: flyte_engine::external::ChildLaunch,
    ) -> Result<WorkflowExecutionIdentifier, flyte_engine::external::ExternalError> {
        Err(flyte_engine::external::ExternalError::Invalid(
            NO_ADMIN.into(),
        ))
    }

    async fn status(
        &self,
        child: &WorkflowExecutionIdentifier,
    ) -> Result<flyte_engine::external::ChildStatus, flyte_engine::external::ExternalError> {
        Err(flyte_engine::external::ExternalError::NotFound(format!(
            "{}: {NO_ADMIN}",
            child.name
        )))
    }

    async fn abort(
        &self,
        _: &WorkflowExecutionIdentifier,
        _: &str,
    ) -> Result<(), flyte_engine::external::ExternalError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl flyte_engine::external::RecoveryLookup for NoAdmin {
    async fn recover_node(
        &self,
        _: &WorkflowExecutionIdentifier,
        _: &str,
    ) -> Result<Option<flyte_engine::external::RecoveredNode>, flyte_engine::external::ExternalError>
    {
        Ok(None)
    }
}

/// wf() -> o: int with one task node `n0`: a container task running `/bin/sh -c script` with
/// the attempt's output prefix as `$1` (the script writes `outputs.pb` there itself). The
/// re-attach and ownership tests drive real processes through it.
pub fn shell_task_workflow(script: &str) -> CompiledWorkflowClosure {
    use flyte_core::compiler::{Resolved, compile_workflow_template};
    use flyte_core::ids::IdKey;
    use flyteidl::core::*;
    let task_id = ident(ResourceType::Task, "waiter");
    let task = TaskTemplate {
        id: Some(task_id.clone()),
        r#type: "python-task".into(),
        metadata: Some(TaskMetadata::default()),
        interface: Some(iface(&[], &[("o", int_t())])),
        target: Some(task_template::Target::Container(Container {
            image: "img".into(),
            args: ["/bin/sh", "-c", script, "sh", "{{.outputPrefix}}"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let wf = WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, "wf")),
        interface: Some(iface(&[], &[("o", int_t())])),
        nodes: vec![Node {
            id: "n0".into(),
            target: Some(node::Target::TaskNode(TaskNode {
                reference: Some(task_node::Reference::ReferenceId(task_id)),
                ..Default::default()
            })),
            ..Default::default()
        }],
        outputs: vec![Binding {
            var: "o".into(),
            binding: Some(BindingData {
                value: Some(binding_data::Value::Promise(OutputReference {
                    node_id: "n0".into(),
                    var: "o".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
        }],
        ..Default::default()
    };
    let mut resolved = Resolved::default();
    resolved
        .tasks
        .insert(IdKey::from(task.id.as_ref().unwrap()), task);
    compile_workflow_template(&wf, &[], &resolved).expect("compiles")
}

/// Waits (up to a minute) until `path` exists.
pub async fn wait_for(path: &std::path::Path) {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while !path.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} never appeared", path.display()));
}

/// The outputs a workflow event reports: inline (`output_data`, small maps) or in the file its
/// `output_uri` names. Panics on an event without outputs.
pub async fn reported_outputs(
    blob: &flyte_blob::BlobStore,
    event: &flyteidl::event::WorkflowExecutionEvent,
) -> LiteralMap {
    use flyteidl::event::workflow_execution_event::OutputResult;
    match &event.output_result {
        Some(OutputResult::OutputData(m)) => m.clone(),
        Some(OutputResult::OutputUri(uri)) => {
            let key = blob.path_from_native_url(uri).expect("a URL of this store");
            let bytes = blob.get(&key).await.expect("the outputs file");
            prost::Message::decode(bytes).expect("a literal map")
        }
        other => panic!("no outputs in {other:?}"),
    }
}

/// A binding to output `var` of node `node`.
pub fn promise(node: &str, var: &str) -> flyteidl::core::BindingData {
    use flyteidl::core::{BindingData, OutputReference, binding_data};
    BindingData {
        value: Some(binding_data::Value::Promise(OutputReference {
            node_id: node.into(),
            var: var.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}
