//! The workflow compiler: WorkflowSpec + referenced tasks and launch plans → CompiledWorkflowClosure.
//!
//! Mirrors flytepropeller's `pkg/compiler`: it validates every node and binding, infers the
//! interfaces of branch and array nodes, adds the `start-node` and `end-node`, fills each node's
//! `upstream_node_ids` and the graph's connections, and checks the graph is acyclic.

use std::collections::{BTreeSet, HashMap};

use flyteidl::admin::WorkflowSpec;
use flyteidl::core::{
    CompiledTask, CompiledWorkflow, CompiledWorkflowClosure, ParameterMap, TaskTemplate,
    TypedInterface, WorkflowTemplate,
};

pub use crate::ids::IdKey;

mod bindings;
mod canonical;
mod errors;
mod graph;
mod launch_plan;
mod refs;
mod task;
#[cfg(test)]
mod tests;

pub use canonical::canonical_spec;
pub use errors::{CompileError, CompileErrorKind, CompileErrors};
pub use launch_plan::validate_launch_plan;
pub use refs::referenced_entities;
pub use task::compile_task;

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
    /// Optional: a launch plan's expected inputs (its closure's `expected_inputs`). When
    /// given, a launch-plan node must bind only the required ones, as in propeller; without
    /// it, every input of the interface is treated as optional for the node.
    pub launch_plan_inputs: HashMap<IdKey, ParameterMap>,
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
///
/// The closure holds the compiled primary, every sub-workflow (compiled when used, as given
/// otherwise), and a `CompiledTask` for each task the workflows reference.
pub fn compile_workflow_template(
    primary: &WorkflowTemplate,
    sub_workflows: &[WorkflowTemplate],
    resolved: &Resolved,
) -> Result<CompiledWorkflowClosure, CompileErrors> {
    let mut compiler = graph::Compiler {
        resolved,
        sub_workflows: sub_workflows
            .iter()
            .filter_map(|w| Some((IdKey::from(w.id.as_ref()?), w)))
            .collect(),
        compiled_subs: Default::default(),
        errors: Vec::new(),
        task_ifaces: HashMap::new(),
    };
    let compiled = compiler.compile_template(primary);
    let mut errors = compiler.errors;
    dedup(&mut errors);
    let primary = match compiled {
        Some(p) if errors.is_empty() => p,
        _ => return Err(CompileErrors(errors)),
    };

    let sub_workflows = sub_workflows
        .iter()
        .map(|w| {
            let key = w.id.as_ref().map(IdKey::from);
            key.and_then(|k| compiler.compiled_subs.get(&k).cloned().flatten())
                .unwrap_or_else(|| CompiledWorkflow {
                    template: Some(w.clone()),
                    connections: None,
                })
        })
        .collect();

    let mut refs = References::default();
    refs::collect_template(
        primary
            .template
            .as_ref()
            .unwrap_or(&WorkflowTemplate::default()),
        &mut refs,
    );
    for w in compiler.compiled_subs.values().flatten() {
        if let Some(t) = &w.template {
            refs::collect_template(t, &mut refs);
        }
    }
    let tasks = refs
        .tasks
        .iter()
        .filter_map(|k| resolved.tasks.get(k))
        .map(|t| CompiledTask {
            template: Some(t.clone()),
        })
        .collect();

    Ok(CompiledWorkflowClosure {
        primary: Some(primary),
        sub_workflows,
        tasks,
        launch_plans: Vec::new(),
    })
}

/// The same problem can be found along two paths (e.g. a sub-workflow used twice).
fn dedup(errors: &mut Vec<CompileError>) {
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.to_string()));
}
