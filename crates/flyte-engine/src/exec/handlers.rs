//! Node handlers: what a node of each kind does when it starts, when the actor resumes it
//! after a restart, when its children are rebuilt from the journal, and when it is aborted.
//! Each kind's steps live in its own module (`task`, `dynamic`, `array`, `subworkflow`,
//! `sleep`, `external_nodes` for gates and launch plans, branches here); these functions are
//! the one place those steps dispatch on the node's kind. The actor keeps what is common to
//! every node: the graph and its scopes, readiness, parallelism, timers, events and the
//! journal flush.

use flyteidl::core::{WorkflowExecutionIdentifier, execution_error::ErrorKind, node_execution};

use super::array::ArrayState;
use super::cache::NodeCache;
use super::{ExecActor, Kind, NodePhase, branch_child_spec};

/// What a node's kind keeps beyond the record every node has: its handler's state, made
/// when first needed (most nodes never need any, so most nodes carry none).
#[derive(Default)]
pub(super) enum KindState {
    #[default]
    None,
    Task(Box<TaskState>),
    LaunchPlan(Box<LaunchPlanState>),
    /// A gate whose signal is read again by a backstop timer.
    Gate {
        poll_armed: bool,
    },
    /// An array node's sub-node bookkeeping (once started).
    Array(Box<ArrayState>),
}

#[derive(Default)]
pub(super) struct TaskState {
    /// Cacheable tasks: the cache state of the current execution of the node.
    cache: Option<NodeCache>,
    /// Recovery: the task's checkpoint in the original, as the first attempt's previous one.
    recovered_checkpoint: Option<String>,
}

#[derive(Default)]
pub(super) struct LaunchPlanState {
    /// Recovery: the child execution the node launched in the original.
    recovered_child: Option<WorkflowExecutionIdentifier>,
    /// A backstop timer looks at the child again.
    poll_armed: bool,
}

impl KindState {
    fn task(&mut self) -> &mut TaskState {
        if !matches!(self, KindState::Task(_)) {
            *self = KindState::Task(Box::default());
        }
        match self {
            KindState::Task(t) => t,
            _ => unreachable!("just made a task state"),
        }
    }

    fn launch_plan(&mut self) -> &mut LaunchPlanState {
        if !matches!(self, KindState::LaunchPlan(_)) {
            *self = KindState::LaunchPlan(Box::default());
        }
        match self {
            KindState::LaunchPlan(l) => l,
            _ => unreachable!("just made a launch-plan state"),
        }
    }

    pub(super) fn array_ref(&self) -> Option<&ArrayState> {
        match self {
            KindState::Array(a) => Some(a),
            _ => None,
        }
    }

    pub(super) fn array_mut(&mut self) -> Option<&mut ArrayState> {
        match self {
            KindState::Array(a) => Some(a),
            _ => None,
        }
    }

    pub(super) fn set_array(&mut self, array: Box<ArrayState>) {
        *self = KindState::Array(array);
    }

    /// Takes an array node's state out (to be put back with [`KindState::set_array`]).
    pub(super) fn take_array(&mut self) -> Option<Box<ArrayState>> {
        match std::mem::take(self) {
            KindState::Array(a) => Some(a),
            other => {
                *self = other;
                None
            }
        }
    }

    pub(super) fn cache(&self) -> Option<&NodeCache> {
        match self {
            KindState::Task(t) => t.cache.as_ref(),
            _ => None,
        }
    }

    pub(super) fn cache_mut(&mut self) -> Option<&mut NodeCache> {
        match self {
            KindState::Task(t) => t.cache.as_mut(),
            _ => None,
        }
    }

    pub(super) fn set_cache(&mut self, cache: Option<NodeCache>) {
        if cache.is_none() && !matches!(self, KindState::Task(_)) {
            return;
        }
        self.task().cache = cache;
    }

    pub(super) fn recovered_checkpoint(&self) -> Option<&String> {
        match self {
            KindState::Task(t) => t.recovered_checkpoint.as_ref(),
            _ => None,
        }
    }

    pub(super) fn set_recovered_checkpoint(&mut self, checkpoint: String) {
        self.task().recovered_checkpoint = Some(checkpoint);
    }

    pub(super) fn recovered_child(&self) -> Option<&WorkflowExecutionIdentifier> {
        match self {
            KindState::LaunchPlan(l) => l.recovered_child.as_ref(),
            _ => None,
        }
    }

    pub(super) fn set_recovered_child(&mut self, child: WorkflowExecutionIdentifier) {
        self.launch_plan().recovered_child = Some(child);
    }

    /// Gates and launch-plan nodes: whether a backstop timer is armed.
    pub(super) fn poll_armed(&self) -> bool {
        match self {
            KindState::Gate { poll_armed } => *poll_armed,
            KindState::LaunchPlan(l) => l.poll_armed,
            _ => false,
        }
    }

    /// Gates and launch-plan nodes (`kind`): arms or disarms the backstop timer's mark.
    pub(super) fn set_poll_armed(&mut self, kind: &Kind, armed: bool) {
        match (kind, &mut *self) {
            (Kind::LaunchPlan(_), _) => self.launch_plan().poll_armed = armed,
            (Kind::Gate(_), KindState::Gate { poll_armed }) => *poll_armed = armed,
            (Kind::Gate(_), _) => *self = KindState::Gate { poll_armed: armed },
            _ => {}
        }
    }
}

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
