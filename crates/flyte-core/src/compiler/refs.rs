//! Which tasks and launch plans a workflow spec refers to.

use flyteidl::admin::WorkflowSpec;
use flyteidl::core::{Node, WorkflowTemplate, node, task_node, workflow_node};

use super::{IdKey, References};

/// Walks every node of the primary template and of every sub-workflow, nested branch,
/// array and failure nodes included.
pub fn referenced_entities(spec: &WorkflowSpec) -> References {
    let mut refs = References::default();
    for template in spec.template.iter().chain(spec.sub_workflows.iter()) {
        collect_template(template, &mut refs);
    }
    refs
}

pub(crate) fn collect_template(template: &WorkflowTemplate, refs: &mut References) {
    for node in template.nodes.iter().chain(template.failure_node.iter()) {
        collect_node(node, refs);
    }
}

pub(crate) fn collect_node(node: &Node, refs: &mut References) {
    match &node.target {
        Some(node::Target::TaskNode(t)) => {
            if let Some(task_node::Reference::ReferenceId(id)) = &t.reference {
                refs.tasks.insert(IdKey::from(id));
            }
        }
        Some(node::Target::WorkflowNode(w)) => {
            if let Some(workflow_node::Reference::LaunchplanRef(id)) = &w.reference {
                refs.launch_plans.insert(IdKey::from(id));
            }
        }
        Some(node::Target::BranchNode(b)) => {
            for child in super::graph::branch_children(b) {
                collect_node(child, refs);
            }
        }
        Some(node::Target::ArrayNode(a)) => {
            if let Some(sub) = &a.node {
                collect_node(sub, refs);
            }
        }
        Some(node::Target::GateNode(_)) | None => {}
    }
}
