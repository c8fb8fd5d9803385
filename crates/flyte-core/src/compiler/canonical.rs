//! The canonical form of a workflow spec, for content digests: what the compiler would treat
//! as the same workflow must digest the same. flytekit emits `upstream_node_ids` in set order,
//! which changes from process to process, so two `pyflyte register` runs of one workflow
//! differ there; the compiler sorts them anyway.

use flyteidl::admin::WorkflowSpec;
use flyteidl::core::{Node, WorkflowTemplate, if_else_block, node};

/// A copy of `spec` with every node's `upstream_node_ids` sorted, nested nodes included.
pub fn canonical_spec(spec: &WorkflowSpec) -> WorkflowSpec {
    let mut spec = spec.clone();
    spec.template.iter_mut().for_each(canonical_template);
    spec.sub_workflows.iter_mut().for_each(canonical_template);
    spec
}

fn canonical_template(template: &mut WorkflowTemplate) {
    template.nodes.iter_mut().for_each(canonical_node);
    template.failure_node.iter_mut().for_each(canonical_node);
}

fn canonical_node(node: &mut Node) {
    node.upstream_node_ids.sort();
    match node.target.as_mut() {
        Some(node::Target::BranchNode(branch)) => {
            if let Some(if_else) = branch.if_else.as_mut() {
                let blocks = if_else
                    .case
                    .iter_mut()
                    .map(|b| &mut **b)
                    .chain(if_else.other.iter_mut());
                for block in blocks {
                    block.then_node.iter_mut().for_each(|n| canonical_node(n));
                }
                if let Some(if_else_block::Default::ElseNode(else_node)) = if_else.default.as_mut()
                {
                    canonical_node(else_node);
                }
            }
        }
        Some(node::Target::ArrayNode(array)) => {
            array.node.iter_mut().for_each(|n| canonical_node(n))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_with_upstream(id: &str, upstream: &[&str]) -> Node {
        Node {
            id: id.into(),
            upstream_node_ids: upstream.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn upstream_order_does_not_change_the_canonical_form() {
        let spec = |upstream: &[&str]| WorkflowSpec {
            template: Some(WorkflowTemplate {
                nodes: vec![node_with_upstream("n2", upstream)],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            canonical_spec(&spec(&["n1", "n0"])),
            canonical_spec(&spec(&["n0", "n1"]))
        );
        assert_ne!(
            canonical_spec(&spec(&["n0"])),
            canonical_spec(&spec(&["n0", "n1"]))
        );
    }
}
