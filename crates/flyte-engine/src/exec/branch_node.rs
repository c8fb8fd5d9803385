//! Branch nodes: the case whose condition holds is decided from the branch node's inputs;
//! the taken node is a child of the branch node that waits for its own upstream nodes, and
//! the branch node ends as it ends. Untaken nodes are recorded SKIPPED.

use std::collections::HashSet;
use std::sync::Arc;

use flyteidl::core::{
    ExecutionError, LiteralMap, Node, execution_error::ErrorKind, node, node_execution,
};

use super::{ExecActor, NodePhase};
use crate::{bindings, branch, layout};

impl ExecActor {
    /// Decides which case runs; the taken node waits for its own upstream nodes.
    pub(super) async fn start_branch(&mut self, idx: usize) {
        let Some(inputs) = self.resolve_and_write_inputs(idx).await else {
            return;
        };
        self.mark_queued(idx);
        self.node_event(idx, node_execution::Phase::Queued, None);
        self.set_phase(idx, NodePhase::Running);
        self.node_event(idx, node_execution::Phase::Running, None);
        self.decide_branch(idx, &inputs);
    }

    /// A resumed branch that had decided: its taken node again.
    pub(super) fn restore_branch(&mut self, idx: usize) {
        if self.nodes[idx].rec.branch_taken.is_empty() {
            return;
        }
        let taken = self.nodes[idx].rec.branch_taken.clone();
        if let Some(child) = branch_child_spec(&self.nodes[idx].spec, &taken) {
            let c = self.add_branch_child(idx, child);
            self.restore_children(c);
        }
    }

    pub(super) fn add_branch_child(&mut self, branch: usize, child: Node) -> usize {
        let data_dir = layout::sub_node_data_dir(&self.nodes[branch].output_dir(), &child.id);
        let scope = self.nodes[branch].scope;
        let c = self.add_node(Arc::new(child), scope, None, Some(branch), data_dir, false);
        self.nodes[branch].state.set_branch_child(c);
        self.wire_branch_child(c);
        c
    }

    /// The taken node waits for its own upstream nodes, like any node (propeller: the child's
    /// `connections.upstream` plus the branch node): flytekit gives a case that reads a task
    /// run before the conditional that task as upstream, not the branch node. Its bindings and
    /// declared upstreams name nodes of the branch's scope; those not yet done hold it back.
    fn wire_branch_child(&mut self, c: usize) {
        let spec = self.nodes[c].spec.clone();
        let s = self.nodes[c].scope;
        let mut ups: Vec<&str> = spec.upstream_node_ids.iter().map(String::as_str).collect();
        bindings::promised_nodes(&spec.inputs, &mut ups);
        let mut seen = HashSet::new();
        let mut pending = 0;
        for u in ups {
            if !seen.insert(u) {
                continue;
            }
            let Some(&ui) = self.scopes[s].by_spec.get(u) else {
                continue;
            };
            self.nodes[ui].downstream.push(c);
            if !self.nodes[ui].phase().is_success() {
                pending += 1;
            }
        }
        self.nodes[c].pending = pending;
    }

    /// A branch-taken node whose branch node still runs (it may start once its upstreams
    /// are done); false for any other node.
    pub(super) fn is_waiting_branch_child(&self, idx: usize) -> bool {
        self.nodes[idx].parent.is_some_and(|p| {
            self.nodes[p].state.branch_child() == Some(idx)
                && self.nodes[idx].phase() == NodePhase::NotYetStarted
                && matches!(
                    self.nodes[p].phase(),
                    NodePhase::Queued | NodePhase::Running
                )
        })
    }

    pub(super) fn decide_branch(&mut self, idx: usize, inputs: &LiteralMap) {
        let spec = self.nodes[idx].spec.clone();
        let Some(node::Target::BranchNode(b)) = &spec.target else {
            return;
        };
        let Some(block) = b.if_else.as_deref() else {
            let err = self.exec_error(
                ErrorKind::System,
                "IllegalStateError",
                "branch node without if_else",
            );
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return;
        };
        let (taken, skipped, failure) = match branch::decide(block, inputs) {
            Ok(d) => (Some(d.taken.clone()), d.skipped, None),
            Err((e, skipped)) => (None, skipped, Some(e)),
        };
        for s in skipped {
            // Recorded (journal) but, as in propeller, no events for untaken nodes.
            let data_dir = layout::sub_node_data_dir(&self.nodes[idx].output_dir(), &s.id);
            let scope = self.nodes[idx].scope;
            let si = self.add_node(Arc::new(s.clone()), scope, None, Some(idx), data_dir, false);
            self.set_phase(si, NodePhase::Skipped);
        }
        if let Some(e) = failure {
            let err = self.exec_error(ErrorKind::User, e.code, e.message);
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return;
        }
        let Some(taken) = taken else {
            return;
        };
        self.nodes[idx].rec.branch_taken = taken.id.clone();
        self.dirty.insert(idx);
        let c = self.add_branch_child(idx, taken);
        if self.nodes[c].pending == 0 {
            self.make_ready(c);
        }
    }

    /// The taken node ended: the branch node ends the same way, with a copy of the child's
    /// outputs as its own.
    pub(super) async fn branch_child_done(
        &mut self,
        parent: usize,
        idx: usize,
        result: Result<(), ExecutionError>,
    ) {
        if !matches!(
            self.nodes[parent].phase(),
            NodePhase::Running | NodePhase::Queued
        ) {
            return;
        }
        match result {
            Ok(()) => {
                let child_out = self.nodes[idx].rec.output_path.clone();
                let mut own = String::new();
                if !child_out.is_empty() {
                    own = layout::outputs_file(&self.nodes[parent].output_dir());
                    let copied = match self.shared.blob.get(&child_out).await {
                        Ok(b) => self
                            .shared
                            .put_blob(&own, b)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = copied {
                        let err = self.exec_error(
                                ErrorKind::System,
                                "OutputsNotFound",
                                format!(
                                    "Failed to copy child node outputs from [{child_out}] to [{own}]: {e}"
                                ),
                            );
                        self.node_terminal(parent, NodePhase::Failed, Some(err));
                        return;
                    }
                }
                let outputs = self.outputs.get(&idx).cloned();
                self.node_succeeded(parent, own, outputs);
            }
            Err(e) => self.node_terminal(parent, NodePhase::Failed, Some(e)),
        }
    }
}

fn branch_child_spec(branch: &Node, child_id: &str) -> Option<Node> {
    use flyteidl::core::if_else_block::Default as D;
    let Some(node::Target::BranchNode(b)) = &branch.target else {
        return None;
    };
    let block = b.if_else.as_deref()?;
    let mut all: Vec<&Node> = Vec::new();
    if let Some(n) = block.case.as_ref().and_then(|c| c.then_node.as_deref()) {
        all.push(n);
    }
    all.extend(block.other.iter().filter_map(|c| c.then_node.as_deref()));
    if let Some(D::ElseNode(n)) = &block.default {
        all.push(n);
    }
    all.into_iter().find(|n| n.id == child_id).cloned()
}
