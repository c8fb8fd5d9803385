//! Node handlers: what a node of each kind does when it starts, when the actor resumes it
//! after a restart, when its children are rebuilt from the journal, when it is aborted, what
//! its events say about its kind and whether it takes a parallelism slot. Each kind's steps
//! live in its own module (`task`, `dynamic`, `array`, `subworkflow`, `branch_node`, `sleep`,
//! `external_nodes` for gates and launch plans); these functions are the one place those
//! steps dispatch on the node's kind, and [`KindState`] is the state each kind keeps. The
//! actor keeps what is common to every node: the graph and its scopes, readiness,
//! parallelism, timers, events and the journal flush.

use std::sync::Arc;
use std::time::Duration;

use flyteidl::core::{
    ExecutionError, Identifier, LiteralMap, TaskLog, WorkflowExecutionIdentifier,
    execution_error::ErrorKind,
};
use flyteidl::event::TaskNodeMetadata;
use flyteidl::event::node_execution_event::TargetMetadata;

use crate::layout;

use super::array::ArrayState;
use super::cache::NodeCache;
use super::{ExecActor, Kind, NodePhase, duration_of};

/// What a node's kind keeps beyond the record every node has: its handler's state. Task,
/// branch and subworkflow nodes get theirs when the node is made; launch-plan and gate nodes
/// when first needed; array nodes once started.
#[derive(Default)]
pub(super) enum KindState {
    #[default]
    None,
    /// Task nodes (and dynamic nodes, which are task nodes whose attempt left a workflow).
    Task(Box<TaskState>),
    /// A branch node: its taken node, once decided.
    Branch {
        taken: Option<usize>,
    },
    /// A subworkflow node: the scope of its nodes, once opened.
    SubWorkflow {
        scope: Option<usize>,
    },
    LaunchPlan(Box<LaunchPlanState>),
    /// A gate whose signal is read again by a backstop timer.
    Gate {
        poll_armed: bool,
    },
    /// An array node's sub-node bookkeeping (once started).
    Array(Box<ArrayState>),
}

pub(super) struct TaskState {
    /// Index of the task backend that runs the task (`None`: no backend handles its type).
    pub(super) backend: Option<usize>,
    /// The per-attempt execution deadline (the task's timeout, or the configured default).
    pub(super) exec_deadline: Option<Duration>,
    /// The last task phase reported for the current attempt (-1: none yet), for the
    /// events' phase version.
    pub(super) task_phase: i32,
    /// The current attempt's log links.
    pub(super) logs: Vec<TaskLog>,
    /// A dynamic node: the scope of the workflow its attempt left.
    pub(super) dynamic_scope: Option<usize>,
    /// Cacheable tasks: the cache state of the current execution of the node.
    cache: Option<NodeCache>,
    /// Recovery: the task's checkpoint in the original, as the first attempt's previous one.
    recovered_checkpoint: Option<String>,
    /// An in-engine task's resolved inputs, held from its start to its end instead of an
    /// `inputs.pb` that no process would read (`ExecActor::task_inputs`).
    pub(super) inputs: Option<Arc<LiteralMap>>,
    /// Its inputs went to no blob: its QUEUED event carries them (`input_data`), and the
    /// store's node execution row is where they live; after a restart they are resolved
    /// again from the upstream outputs.
    pub(super) inputs_in_memory: bool,
}

impl TaskState {
    fn new(backend: Option<usize>, exec_deadline: Option<Duration>) -> Self {
        Self {
            backend,
            exec_deadline,
            task_phase: -1,
            logs: Vec::new(),
            dynamic_scope: None,
            cache: None,
            recovered_checkpoint: None,
            inputs: None,
            inputs_in_memory: false,
        }
    }
}

/// The kind-specific part of a node execution event.
pub(super) struct EventShape {
    pub(super) target_entity: Option<Identifier>,
    pub(super) target_metadata: Option<TargetMetadata>,
    pub(super) is_parent: bool,
    pub(super) is_array: bool,
}

#[derive(Default)]
pub(super) struct LaunchPlanState {
    /// Recovery: the child execution the node launched in the original.
    recovered_child: Option<WorkflowExecutionIdentifier>,
    /// A backstop timer looks at the child again.
    poll_armed: bool,
}

impl KindState {
    pub(super) fn task(&self) -> Option<&TaskState> {
        match self {
            KindState::Task(t) => Some(t),
            _ => None,
        }
    }

    pub(super) fn task_mut(&mut self) -> Option<&mut TaskState> {
        match self {
            KindState::Task(t) => Some(t),
            _ => None,
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

    /// A task node's backend.
    pub(super) fn backend(&self) -> Option<usize> {
        self.task().and_then(|t| t.backend)
    }

    /// A task node's per-attempt execution deadline.
    pub(super) fn exec_deadline(&self) -> Option<Duration> {
        self.task().and_then(|t| t.exec_deadline)
    }

    /// The scope of the node's children: a subworkflow's, or a dynamic node's workflow.
    pub(super) fn child_scope(&self) -> Option<usize> {
        match self {
            KindState::Task(t) => t.dynamic_scope,
            KindState::SubWorkflow { scope } => *scope,
            _ => None,
        }
    }

    pub(super) fn set_child_scope(&mut self, s: Option<usize>) {
        match self {
            KindState::Task(t) => t.dynamic_scope = s,
            KindState::SubWorkflow { scope } => *scope = s,
            _ => {}
        }
    }

    /// A branch node's taken node.
    pub(super) fn branch_child(&self) -> Option<usize> {
        match self {
            KindState::Branch { taken } => *taken,
            _ => None,
        }
    }

    pub(super) fn set_branch_child(&mut self, c: usize) {
        if let KindState::Branch { taken } = self {
            *taken = Some(c);
        }
    }

    /// A task node whose current attempt is on a backend (not a dynamic node running its
    /// workflow): attempt updates are for it.
    pub(super) fn runs_attempt(&self) -> bool {
        matches!(self, KindState::Task(t) if t.dynamic_scope.is_none())
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
        self.task().and_then(|t| t.cache.as_ref())
    }

    pub(super) fn cache_mut(&mut self) -> Option<&mut NodeCache> {
        self.task_mut().and_then(|t| t.cache.as_mut())
    }

    pub(super) fn set_cache(&mut self, cache: Option<NodeCache>) {
        if let Some(t) = self.task_mut() {
            t.cache = cache;
        }
    }

    pub(super) fn recovered_checkpoint(&self) -> Option<&String> {
        self.task().and_then(|t| t.recovered_checkpoint.as_ref())
    }

    /// Only a task's attempts read a checkpoint.
    pub(super) fn set_recovered_checkpoint(&mut self, checkpoint: String) {
        if let Some(t) = self.task_mut() {
            t.recovered_checkpoint = Some(checkpoint);
        }
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
    /// The state a node of `kind` starts with: a task's backend and execution deadline are
    /// looked up once, here.
    pub(super) fn initial_state(&self, kind: &Kind) -> KindState {
        match kind {
            Kind::Task(t) => {
                let cfg = &self.shared.config;
                // `Err` (an override's FAIL): none, failed with the plugin ids when it starts.
                let backend =
                    crate::backend::choose(&self.shared.backends, t, &self.req.plugin_overrides)
                        .unwrap_or(None);
                let exec_deadline = t
                    .metadata
                    .as_ref()
                    .and_then(|m| duration_of(&m.timeout))
                    .or(cfg.default_execution_deadline);
                KindState::Task(Box::new(TaskState::new(backend, exec_deadline)))
            }
            Kind::Branch => KindState::Branch { taken: None },
            Kind::SubWorkflow(_) => KindState::SubWorkflow { scope: None },
            _ => KindState::None,
        }
    }

    /// Whether the node takes a slot of the workflow's `max_parallelism` (task nodes, and array
    /// nodes whose sub-nodes do not).
    pub(super) fn uses_wf_slot(&self, idx: usize) -> bool {
        let n = &self.nodes[idx];
        match (&n.kind, n.array_ctx) {
            (Kind::Array(spec), _) => {
                !spec.subnodes_share_wf_parallelism(self.shared.config.array_parallelism)
            }
            (Kind::Task(_), Some((arr, _))) => match &self.nodes[arr].kind {
                Kind::Array(spec) => {
                    spec.subnodes_share_wf_parallelism(self.shared.config.array_parallelism)
                }
                _ => true,
            },
            (Kind::Task(_), None) => true,
            _ => false,
        }
    }

    /// What a node's events say about its kind: the task it runs, its target metadata (a
    /// task's checkpoint and cache state, a launch plan's child), whether it is a parent.
    pub(super) fn event_shape(
        &self,
        idx: usize,
        is_dynamic: bool,
        dynamic_workflow: Option<flyteidl::event::DynamicWorkflowNodeMetadata>,
    ) -> EventShape {
        let n = &self.nodes[idx];
        let mut shape = EventShape {
            target_entity: None,
            target_metadata: None,
            is_parent: is_dynamic,
            is_array: false,
        };
        match &n.kind {
            Kind::Task(t) => {
                shape.target_entity = t.id.clone();
                shape.target_metadata = Some(TargetMetadata::TaskNodeMetadata(TaskNodeMetadata {
                    checkpoint_uri: layout::checkpoint_dir(&self.raw_dir(idx, n.rec.attempt)),
                    dynamic_workflow: dynamic_workflow.map(Box::new),
                    ..self.cache_metadata(idx)
                }));
            }
            Kind::LaunchPlan(_) => {
                shape.target_metadata = n.rec.child_execution.clone().map(|e| {
                    TargetMetadata::WorkflowNodeMetadata(flyteidl::event::WorkflowNodeMetadata {
                        execution_id: Some(e),
                    })
                });
            }
            Kind::SubWorkflow(_) => shape.is_parent = true,
            Kind::Array(_) => shape.is_array = true,
            Kind::Start
            | Kind::End
            | Kind::Branch
            | Kind::Sleep(_)
            | Kind::Gate(_)
            | Kind::Unsupported(_) => {}
        }
        shape
    }

    /// What a node's kind reports when the node ends without success (an array node's
    /// final task event).
    pub(super) fn kind_ended(
        &mut self,
        idx: usize,
        phase: NodePhase,
        error: &Option<ExecutionError>,
    ) {
        if let Kind::Array(_) = self.nodes[idx].kind {
            self.array_terminal_event(idx, phase, error.clone());
        }
    }

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
}
