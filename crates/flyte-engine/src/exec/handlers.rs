//! Node handlers: what a node of each kind does when it starts, when the actor resumes it
//! after a restart, when its children are rebuilt from the journal, and when it is aborted.
//! Each kind's steps live in its own module (`task`, `dynamic`, `array`, `subworkflow`,
//! `sleep`, `external_nodes` for gates and launch plans, branches here); these functions are
//! the one place those steps dispatch on the node's kind. The actor keeps what is common to
//! every node: the graph and its scopes, readiness, parallelism, timers, events and the
//! journal flush.

use flyteidl::core::{execution_error::ErrorKind, node_execution};

use super::{ExecActor, Kind, NodePhase, branch_child_spec};

impl ExecActor {
    /// Starts a ready node (its generic checks done: not blocked, not recovered).
    pub(super) async fn start_kind(&mut self, idx: usize) {
        match self.nodes[idx].kind.clone() {
            Kind::Start => self.run_start_node(idx).await,
            Kind::End => self.run_end_node(idx).await,
            Kind::Task(_) => self.start_task(idx).await,
            Kind::Branch => self.start_branch(idx).await,
            Kind::SubWorkflow(wf) => self.start_subworkflow(idx, wf).await,
            Kind::Sleep(d) => self.start_sleep(idx, d).await,
            Kind::Gate(_) => self.start_gate(idx).await,
            Kind::LaunchPlan(lp) => self.start_launch_plan(idx, lp).await,
            Kind::Array(spec) => self.start_array(idx, spec).await,
            Kind::Unsupported(msg) => {
                self.mark_queued(idx);
                let err = self.exec_error(ErrorKind::User, "UnsupportedNode", msg);
                self.node_terminal(idx, NodePhase::Failed, Some(err));
            }
        }
    }

    /// Picks up a node that was queued or running when the engine stopped (its active
    /// deadline already re-armed).
    pub(super) async fn resume_kind(&mut self, idx: usize) {
        match self.nodes[idx].kind.clone() {
            Kind::Task(_) => self.resume_task(idx).await,
            Kind::Sleep(d) => self.resume_sleep(idx, d),
            Kind::Gate(_) => self.resume_gate(idx),
            Kind::LaunchPlan(_) => self.resume_launch_plan(idx).await,
            Kind::Array(_) => self.resume_array(idx),
            Kind::Start
            | Kind::End
            | Kind::Branch
            | Kind::SubWorkflow(_)
            | Kind::Unsupported(_) => {}
        }
    }

    /// Rebuilds the children of a resumed node that was queued or running (a subworkflow's
    /// scope, a branch's taken node, a dynamic node's workflow, an array's sub-nodes).
    pub(super) fn restore_kind(&mut self, idx: usize) {
        match self.nodes[idx].kind.clone() {
            Kind::SubWorkflow(wf) => {
                let s = self.open_subworkflow(idx, wf, None);
                self.restore_sub_failure_node(s);
            }
            Kind::Branch => self.restore_branch(idx),
            Kind::Task(_) => self.restore_dynamic(idx),
            Kind::Array(spec) => self.restore_array(idx, spec),
            Kind::Start
            | Kind::End
            | Kind::Sleep(_)
            | Kind::Gate(_)
            | Kind::LaunchPlan(_)
            | Kind::Unsupported(_) => {}
        }
    }

    /// What aborting a queued or running node stops besides its children's scope and its
    /// branch's taken node (which the actor aborts for every kind).
    pub(super) fn abort_kind(&mut self, idx: usize, reason: &str) {
        match self.nodes[idx].kind {
            Kind::Task(_) => self.abort_task(idx, reason),
            Kind::Array(_) => self.abort_array(idx, reason),
            Kind::LaunchPlan(_) => self.abort_child(idx, reason),
            Kind::Start
            | Kind::End
            | Kind::Branch
            | Kind::SubWorkflow(_)
            | Kind::Sleep(_)
            | Kind::Gate(_)
            | Kind::Unsupported(_) => {}
        }
    }

    // ------------------------------------------------------------ branches

    /// Decides which case runs; the taken node waits for its own upstream nodes.
    async fn start_branch(&mut self, idx: usize) {
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
    fn restore_branch(&mut self, idx: usize) {
        if self.nodes[idx].rec.branch_taken.is_empty() {
            return;
        }
        let taken = self.nodes[idx].rec.branch_taken.clone();
        if let Some(child) = branch_child_spec(&self.nodes[idx].spec, &taken) {
            let c = self.add_branch_child(idx, child);
            self.restore_children(c);
        }
    }
}
