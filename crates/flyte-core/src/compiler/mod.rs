//! The workflow compiler: WorkflowSpec + referenced tasks and launch plans → CompiledWorkflowClosure.
//!
//! Mirrors flytepropeller's `pkg/compiler`: it validates every node and binding, infers the
//! interfaces of branch and array nodes, adds the `start-node` and `end-node`, fills each node's
//! `upstream_node_ids` and the graph's connections, and checks the graph is acyclic.

use std::collections::{BTreeSet, HashMap};

use flyteidl::admin::{LaunchPlanSpec, WorkflowSpec};
use flyteidl::core::{
    CompiledTask, CompiledWorkflowClosure, ParameterMap, TaskTemplate, TypedInterface, VariableMap,
    WorkflowTemplate,
};

pub use crate::ids::IdKey;

mod errors;
pub use errors::{CompileError, CompileErrorKind, CompileErrors};

/// The node id of the synthetic start node; its "outputs" are the workflow inputs.
pub const START_NODE_ID: &str = "start-node";
/// The node id of the synthetic end node; its inputs are the workflow outputs.
pub const END_NODE_ID: &str = "end-node";

/// Entities a workflow spec refers to and that must be resolved before it can be compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    pub tasks: BTreeSet<IdKey>,
    pub launch_plans: BTreeSet<IdKey>,
}

/// The referenced entities, as fetched from the store.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub tasks: HashMap<IdKey, TaskTemplate>,
    /// A launch plan's interface: inputs are its workflow's inputs, outputs its outputs.
    pub launch_plans: HashMap<IdKey, TypedInterface>,
}

/// Every task and launch plan referenced by any node of the spec, nested nodes and
/// sub-workflows included.
pub fn referenced_entities(spec: &WorkflowSpec) -> References {
    let _ = spec;
    References::default()
}

/// Compiles a registered workflow spec.
pub fn compile_workflow(
    spec: &WorkflowSpec,
    resolved: &Resolved,
) -> Result<CompiledWorkflowClosure, CompileErrors> {
    let primary = spec.template.as_ref().ok_or_else(|| {
        CompileErrors::single(CompileError::workflow(CompileErrorKind::MissingTemplate))
    })?;
    compile_workflow_template(primary, &spec.sub_workflows, resolved)
}

/// Compiles a primary workflow template with its sub-workflows. Reused for dynamic workflows
/// (`DynamicJobSpec`) and for the synthesized `.flytegen.<task>` single-task workflow.
pub fn compile_workflow_template(
    primary: &WorkflowTemplate,
    sub_workflows: &[WorkflowTemplate],
    resolved: &Resolved,
) -> Result<CompiledWorkflowClosure, CompileErrors> {
    let _ = (primary, sub_workflows, resolved);
    Err(CompileErrors::single(CompileError::workflow(
        CompileErrorKind::MissingTemplate,
    )))
}

/// Validates a task template as flyteadmin does on CreateTask.
pub fn compile_task(template: &TaskTemplate) -> Result<CompiledTask, CompileErrors> {
    Ok(CompiledTask {
        template: Some(template.clone()),
    })
}

/// Validates a launch plan's fixed and default inputs against its workflow's interface and
/// computes the launch plan's expected inputs and outputs.
pub fn validate_launch_plan(
    spec: &LaunchPlanSpec,
    workflow_interface: &TypedInterface,
) -> Result<(ParameterMap, VariableMap), CompileErrors> {
    let _ = spec;
    Ok((
        ParameterMap::default(),
        workflow_interface.outputs.clone().unwrap_or_default(),
    ))
}
