//! The execution actor: owns one execution's in-memory state and advances it on every wake.
//!
//! A wake drains the messages that woke it (attempt updates, control, timers), then runs
//! ready nodes until nothing more can move without outside input, commits one batch (events
//! and journal) to the sink, and only then acts on the world (starts/aborts task attempts).
//! Ready nodes are tracked with per-node pending-upstream counters, so a wake costs time in
//! proportion to what changed, not to the size of the workflow.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use flyte_core::compiler::{END_NODE_ID, START_NODE_ID};
use flyte_core::ids::IdKey;
use flyteidl::core::{
    CompiledWorkflow, ExecutionError, Identifier, LiteralMap, Node, NodeExecutionIdentifier,
    TaskLog, TaskTemplate, WorkflowExecutionIdentifier, WorkflowTemplate,
    execution_error::ErrorKind, gate_node, node, node_execution, task_node, workflow_execution,
    workflow_metadata::OnFailurePolicy, workflow_node,
};
use flyteidl::event::{
    NodeExecutionEvent, ParentNodeExecutionMetadata, WorkflowExecutionEvent, node_execution_event,
    workflow_execution_event,
};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::backend::{AttemptKey, AttemptUpdate, BackendError, Reattach, TaskAttempt};
use crate::bindings;
use crate::engine::{EngineError, Shared};
use crate::layout;
use crate::metrics as m;
use crate::request::ExecutionRequest;
use crate::sink::{
    EventBatch, NodePhase, NodeStateRecord, RunningExecution, SinkError, WorkflowPhase,
    WorkflowStateRecord,
};

mod array;
mod branch_node;
mod cache;
mod dynamic;
mod external_nodes;
mod handlers;
mod recovery;
mod sleep;
mod subworkflow;
mod task;

use array::ArraySpec;
use external_nodes::{ExtMsg, GateSpec};

pub(crate) enum Start {
    New(Box<ExecutionRequest>),
    Resume(Box<RunningExecution>),
}

pub(crate) enum Control {
    Abort(String),
    Shutdown,
    /// A signal of this execution was set (its id).
    Signal(String),
    /// The child execution of a launch-plan node ended (the node's unique id).
    ChildEnded(String),
}

const AUTO_ABORT_REASON: &str = "Some node execution failed, auto-abort.";

/// Checks what the engine needs from a request before accepting it.
pub(crate) fn validate(req: &ExecutionRequest) -> Result<(), String> {
    if req.id.project.is_empty() || req.id.domain.is_empty() || req.id.name.is_empty() {
        return Err("execution id needs project, domain and name".into());
    }
    let primary = req
        .compiled
        .primary
        .as_ref()
        .and_then(|p| p.template.as_ref())
        .ok_or("the compiled workflow has no primary template")?;
    let has = |id: &str| primary.nodes.iter().any(|n| n.id == id);
    if !has(START_NODE_ID) || !has(END_NODE_ID) {
        return Err("the compiled workflow has no start-node/end-node (not compiled?)".into());
    }
    Ok(())
}

fn key_of(id: &Identifier) -> IdKey {
    IdKey {
        resource: 0,
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: id.name.clone(),
        version: id.version.clone(),
    }
}

fn ts(us: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

fn duration_of(d: &Option<pbjson_types::Duration>) -> Option<Duration> {
    let d = d.as_ref()?;
    if d.seconds < 0 || (d.seconds == 0 && d.nanos <= 0) {
        return None;
    }
    Some(Duration::new(d.seconds as u64, d.nanos.max(0) as u32))
}

fn go_duration(d: Duration) -> String {
    // Go's Duration.String() for whole seconds / minutes / hours.
    let s = d.as_secs();
    let frac = d.subsec_nanos();
    if frac != 0 || s == 0 {
        return format!("{}s", d.as_secs_f64());
    }
    let (h, mi, se) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{mi}m{se}s")
    } else if mi > 0 {
        format!("{mi}m{se}s")
    } else {
        format!("{se}s")
    }
}

/// An execution error stamped at `at_us` (the engine clock's time).
fn error_at(
    at_us: i64,
    kind: ErrorKind,
    code: impl Into<String>,
    message: impl Into<String>,
) -> ExecutionError {
    ExecutionError {
        code: code.into(),
        message: message.into(),
        kind: kind as i32,
        timestamp: Some(ts(at_us)),
        ..Default::default()
    }
}

#[derive(Clone)]
enum Kind {
    Start,
    End,
    /// A task node; it becomes a dynamic node when its attempt leaves a `futures.pb`.
    Task(Arc<TaskTemplate>),
    Branch,
    SubWorkflow(Arc<CompiledWorkflow>),
    Sleep(Duration),
    /// `approve` and `wait_for_input` gates.
    Gate(Arc<GateSpec>),
    /// A node that launches a launch plan as a child execution.
    LaunchPlan(Arc<Identifier>),
    Array(Arc<ArraySpec>),
    Unsupported(String),
}

/// The tasks and sub-workflows nodes of a scope may refer to: the execution's closure, or a
/// dynamic workflow's.
#[derive(Default)]
pub(crate) struct Catalog {
    tasks: HashMap<IdKey, Arc<TaskTemplate>>,
    subworkflows: HashMap<IdKey, Arc<CompiledWorkflow>>,
}

impl Catalog {
    fn of(closure: &flyteidl::core::CompiledWorkflowClosure) -> Self {
        Self {
            tasks: closure
                .tasks
                .iter()
                .filter_map(|t| t.template.as_ref())
                .filter_map(|t| Some((key_of(t.id.as_ref()?), Arc::new(t.clone()))))
                .collect(),
            subworkflows: closure
                .sub_workflows
                .iter()
                .filter_map(|w| {
                    let id = w.template.as_ref()?.id.as_ref()?;
                    Some((key_of(id), Arc::new(w.clone())))
                })
                .collect(),
        }
    }
}

impl Kind {
    /// A task node's template (dynamic nodes are task nodes).
    fn task(&self) -> Option<&Arc<TaskTemplate>> {
        match self {
            Kind::Task(t) => Some(t),
            _ => None,
        }
    }

    fn array(&self) -> Option<&Arc<ArraySpec>> {
        match self {
            Kind::Array(a) => Some(a),
            _ => None,
        }
    }

    fn gate(&self) -> Option<&Arc<GateSpec>> {
        match self {
            Kind::Gate(g) => Some(g),
            _ => None,
        }
    }

    fn launch_plan(&self) -> Option<&Arc<Identifier>> {
        match self {
            Kind::LaunchPlan(lp) => Some(lp),
            _ => None,
        }
    }

    fn is_subworkflow(&self) -> bool {
        matches!(self, Kind::SubWorkflow(_))
    }

    fn label(&self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::End => "end",
            Kind::Task(_) => "task",
            Kind::Branch => "branch",
            Kind::SubWorkflow(_) => "subworkflow",
            Kind::Sleep(_) | Kind::Gate(_) => "gate",
            Kind::LaunchPlan(_) => "launchplan",
            Kind::Array(_) => "array",
            Kind::Unsupported(_) => "unsupported",
        }
    }
}

struct NodeInst {
    spec: Arc<Node>,
    kind: Kind,
    /// Scope whose nodes the bindings name.
    scope: usize,
    /// Scope this node is a member of (counted for completion); None for branch children
    /// and the failure node.
    member_of: Option<usize>,
    /// Parent node (subworkflow owner, branch) for nested ids and parent metadata.
    parent: Option<usize>,
    data_dir: String,
    downstream: Vec<usize>,
    pending: usize,
    rec: NodeStateRecord,
    is_failure_node: bool,
    active_deadline: Option<Duration>,
    /// Time the node became ready (for transition latency).
    ready_at: Option<Instant>,
    /// Holds one slot of the workflow's `max_parallelism`.
    wf_slot: bool,
    /// Inside an array node: (array node, index of the sub-node this one is or is under).
    /// Such nodes report through the array node's task events, not their own.
    array_ctx: Option<(usize, u32)>,
    /// Under a dynamic node (`is_in_dynamic_chain`).
    in_dynamic: bool,
    /// The node's `tracing` span, open from its first active phase to its terminal one
    /// (child of its parent node's span, or of the execution's); attempts run inside it.
    span: tracing::Span,
    /// What the node's kind keeps beyond the record every node has (its handler's state:
    /// a task's backend and attempt, a branch's taken node, a subworkflow's scope, ...).
    state: handlers::KindState,
    /// Which node holds this slot: slots of released nodes (map items that ended) are reused,
    /// and a timer armed for the slot's former node must not fire for the next one.
    incarnation: u64,
}

impl NodeInst {
    fn phase(&self) -> NodePhase {
        self.rec.node_phase()
    }
    fn output_dir(&self) -> String {
        layout::output_dir(&self.data_dir, self.rec.attempt)
    }
    fn inputs_file(&self) -> String {
        layout::inputs_file(&self.data_dir)
    }
}

struct Scope {
    owner: Option<usize>,
    template: Arc<WorkflowTemplate>,
    catalog: Arc<Catalog>,
    by_spec: HashMap<String, usize>,
    start: usize,
    end: usize,
    total: usize,
    succeeded: usize,
    /// Member nodes queued, running, or ready to start.
    active: usize,
    error: Option<ExecutionError>,
    fail_immediately: bool,
    done: bool,
    /// Subworkflow scopes: the owner's resolved inputs (the start node's outputs).
    inputs: Option<Arc<LiteralMap>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Timer {
    ExecDeadline {
        node: usize,
        attempt: u32,
    },
    ActiveDeadline {
        node: usize,
    },
    Sleep {
        node: usize,
    },
    /// Backstop: look at a waiting gate's signal again.
    GatePoll {
        node: usize,
    },
    /// Backstop: look at a launch-plan node's child again.
    ChildPoll {
        node: usize,
    },
    /// Create a launch-plan node's child again (the admin could not answer).
    ChildLaunch {
        node: usize,
    },
}

impl Timer {
    fn node(self) -> usize {
        match self {
            Timer::ExecDeadline { node, .. }
            | Timer::ActiveDeadline { node }
            | Timer::Sleep { node }
            | Timer::GatePoll { node }
            | Timer::ChildPoll { node }
            | Timer::ChildLaunch { node } => node,
        }
    }
}

enum Done {
    /// A node finished; propagate to its parent / scope.
    Node(usize, Result<(), ExecutionError>),
    /// A scope finished.
    Scope(usize, Result<(), ExecutionError>),
    /// Re-evaluate whether a scope finished (after a resume).
    Check(usize),
    /// Re-evaluate an array node (start sub-nodes, decide success or failure).
    ArrayCheck(usize),
    /// An array node's sub-nodes are done and it succeeds: gather their outputs.
    ArrayGather(usize),
}

/// Node events after which a wake stops starting ready nodes until its batch is sent: each
/// started node costs a few KB until its batch is written (its QUEUED/RUNNING events, task
/// event, journal record and their rows), so one batch starting every child of a 100,000-node
/// `@dynamic` held gigabytes. About 2,000 nodes (QUEUED + RUNNING each) per transaction.
const MAX_BATCH_NODE_EVENTS: usize = 4096;

/// Task outputs bigger than this in their file are not kept in memory after they are read
/// ([`ExecActor::cache_outputs`]).
const CACHED_OUTPUTS_MAX_BYTES: usize = 1 << 20;

pub(crate) struct ExecActor {
    shared: Arc<Shared>,
    req: Arc<ExecutionRequest>,
    id: WorkflowExecutionIdentifier,
    exec_dir: String,
    raw_prefix: String,
    catalog: Arc<Catalog>,
    nodes: Vec<NodeInst>,
    /// Slots of released nodes, reused by the next nodes made ([`Self::release_node`]).
    free_nodes: Vec<usize>,
    /// Incarnations handed out so far.
    node_seq: u64,
    by_unique: HashMap<String, usize>,
    scopes: Vec<Scope>,
    wf: WorkflowStateRecord,
    wf_dirty: bool,
    ready: VecDeque<usize>,
    waiting_parallelism: VecDeque<usize>,
    running_tasks: usize,
    completions: VecDeque<(usize, Vec<TaskLog>)>,
    done_queue: VecDeque<Done>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Each timer with the incarnation of the node it was armed for.
    timer_payload: HashMap<u64, (Timer, u64)>,
    timer_seq: u64,
    outputs: HashMap<usize, Arc<LiteralMap>>,
    batch: EventBatch,
    dirty: BTreeSet<usize>,
    to_start: Vec<(usize, TaskAttempt)>,
    to_abort: Vec<(usize, AttemptKey)>,
    updates_tx: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    updates_rx: mpsc::UnboundedReceiver<(AttemptKey, AttemptUpdate)>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    /// Records loaded by a resume, consumed while the graph is rebuilt.
    resume_records: HashMap<String, NodeStateRecord>,
    resumed: bool,
    pending_abort: Option<String>,
    /// Dynamic closures loaded for a resume, by the dynamic node's unique id.
    resume_closures: HashMap<String, Arc<flyteidl::core::CompiledWorkflowClosure>>,
    /// Array nodes with sub-node changes to report in this wake's batch.
    array_dirty: BTreeSet<usize>,
    /// Results of admin calls made off the actor.
    ext_tx: mpsc::UnboundedSender<ExtMsg>,
    ext_rx: mpsc::UnboundedReceiver<ExtMsg>,
    /// Gate nodes whose signal is to be read.
    gate_checks: VecDeque<usize>,
    /// Launch-plan nodes whose child's status is to be read.
    child_checks: VecDeque<usize>,
    /// Launch-plan nodes whose child is to be created again.
    child_relaunches: VecDeque<usize>,
    /// Children to create / abort once the batch commits.
    to_launch: Vec<crate::external::ChildLaunch>,
    to_abort_children: Vec<(WorkflowExecutionIdentifier, String)>,
    /// Recovery: nodes already looked up in the original execution.
    recovery_checked: HashSet<usize>,
    /// The batch being written, if any. The actor goes on deciding while it is (the next
    /// batch gathers meanwhile), so one store round trip covers every step taken during it.
    commit: Option<Commit>,
    /// What the batch being written lets the actor do once it has committed.
    committing: Acts,
    /// Rounds sealed into `batch` since it was last sent (more than one: a node may appear
    /// in its journal more than once).
    sealed_rounds: u32,
}

/// The write of one batch (retried while the sink is transiently unavailable), on its own
/// task so that it goes on while the actor works; dropped, it stops (shutdown).
struct Commit(tokio::task::JoinHandle<Result<(), SinkError>>);

impl Drop for Commit {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::future::Future for Commit {
    type Output = Result<(), SinkError>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.get_mut().0).poll(cx).map(|r| {
            r.unwrap_or_else(|e| {
                Err(SinkError::Rejected(format!(
                    "writing the batch failed: {e}"
                )))
            })
        })
    }
}

/// Decisions that wait for the batch recording them to commit.
#[derive(Default)]
struct Acts {
    start: Vec<(usize, TaskAttempt)>,
    abort: Vec<(usize, AttemptKey)>,
    launch: Vec<crate::external::ChildLaunch>,
    abort_children: Vec<(WorkflowExecutionIdentifier, String)>,
}

impl ExecActor {
    /// The engine clock's wall time (records, events, error timestamps).
    fn now_us(&self) -> i64 {
        self.shared.config.clock.now_us()
    }

    fn exec_error(
        &self,
        kind: ErrorKind,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> ExecutionError {
        error_at(self.now_us(), kind, code, message)
    }

    pub(crate) async fn build(
        shared: Arc<Shared>,
        start: Start,
        control_rx: mpsc::UnboundedReceiver<Control>,
    ) -> Result<Self, EngineError> {
        let (req, resume) = match start {
            Start::New(r) => (*r, None),
            Start::Resume(r) => {
                let r = *r;
                (r.request, Some((r.workflow, r.nodes, r.pending_abort)))
            }
        };
        let id = req.id.clone();
        let exec_dir = layout::execution_dir(
            &shared.config.metadata_prefix,
            &id.project,
            &id.domain,
            &id.name,
        );
        let raw_base = req
            .raw_output_data_prefix
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| shared.config.raw_output_prefix.clone());
        let raw_prefix = if raw_base.contains("://") {
            raw_base.trim_end_matches('/').to_string()
        } else {
            shared.blob.native_url(&raw_base)
        };
        let catalog = Arc::new(Catalog::of(&req.compiled));
        let (updates_tx, updates_rx) = mpsc::unbounded_channel();
        let (ext_tx, ext_rx) = mpsc::unbounded_channel();
        let mut actor = Self {
            shared,
            req: Arc::new(req),
            id,
            exec_dir,
            raw_prefix,
            catalog,
            nodes: Vec::new(),
            free_nodes: Vec::new(),
            node_seq: 0,
            by_unique: HashMap::new(),
            scopes: Vec::new(),
            wf: WorkflowStateRecord::default(),
            wf_dirty: true,
            ready: VecDeque::new(),
            waiting_parallelism: VecDeque::new(),
            running_tasks: 0,
            completions: VecDeque::new(),
            done_queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            timer_payload: HashMap::new(),
            timer_seq: 0,
            outputs: HashMap::new(),
            batch: EventBatch::default(),
            dirty: BTreeSet::new(),
            to_start: Vec::new(),
            to_abort: Vec::new(),
            updates_tx,
            updates_rx,
            control_rx,
            resume_records: HashMap::new(),
            resumed: resume.is_some(),
            pending_abort: None,
            resume_closures: HashMap::new(),
            array_dirty: BTreeSet::new(),
            ext_tx,
            ext_rx,
            gate_checks: VecDeque::new(),
            child_checks: VecDeque::new(),
            child_relaunches: VecDeque::new(),
            to_launch: Vec::new(),
            to_abort_children: Vec::new(),
            commit: None,
            committing: Acts::default(),
            sealed_rounds: 0,
            recovery_checked: HashSet::new(),
        };
        actor.batch.execution = actor.id.clone();
        match resume {
            None => actor.init_new(),
            Some((wf, nodes, pending_abort)) => actor.init_resume(wf, nodes, pending_abort).await?,
        }
        Ok(actor)
    }

    fn primary(&self) -> Arc<WorkflowTemplate> {
        Arc::new(
            self.req
                .compiled
                .primary
                .as_ref()
                .and_then(|p| p.template.clone())
                .unwrap_or_default(),
        )
    }

    fn init_new(&mut self) {
        let now = self.now_us();
        self.wf = WorkflowStateRecord {
            phase: WorkflowPhase::Running as i32,
            started_at_us: now,
            updated_at_us: now,
            ..Default::default()
        };
        self.batch.journal.started = Some(self.req.clone());
        self.batch.workflow_events.push(WorkflowExecutionEvent {
            execution_id: Some(self.id.clone()),
            producer_id: self.shared.config.producer_id.clone(),
            phase: workflow_execution::Phase::Running as i32,
            occurred_at: Some(ts(now)),
            output_result: None,
        });
        m::execution_phase("RUNNING");
        let template = self.primary();
        let connections = self
            .req
            .compiled
            .primary
            .as_ref()
            .and_then(|p| p.connections.clone());
        let catalog = self.catalog.clone();
        let s = self.new_scope(None, template, connections.as_ref(), None, catalog);
        let start = self.scopes[s].start;
        self.make_ready(start);
    }

    async fn init_resume(
        &mut self,
        wf: Option<WorkflowStateRecord>,
        records: Vec<NodeStateRecord>,
        pending_abort: Option<String>,
    ) -> Result<(), EngineError> {
        let now = self.now_us();
        self.wf = wf.unwrap_or(WorkflowStateRecord {
            phase: WorkflowPhase::Running as i32,
            started_at_us: now,
            updated_at_us: now,
            ..Default::default()
        });
        self.resume_records = records
            .into_iter()
            .map(|r| (r.node_id.clone(), r))
            .collect();
        self.pending_abort = pending_abort.or_else(|| self.wf.abort_cause.clone());
        self.load_dynamic_closures().await;
        let template = self.primary();
        let connections = self
            .req
            .compiled
            .primary
            .as_ref()
            .and_then(|p| p.connections.clone());
        let catalog = self.catalog.clone();
        let s = self.new_scope(None, template, connections.as_ref(), None, catalog);
        // Failure node (created only if the workflow was handling it).
        if self.wf.workflow_phase() == WorkflowPhase::HandlingFailureNode {
            self.scopes[s].error = self.wf.error.clone();
            self.scopes[s].done = true;
            self.create_failure_node();
        }
        // Recompute counters and the ready set from the restored phases.
        let n_scopes = self.scopes.len();
        for s in 0..n_scopes {
            self.recount_scope(s);
        }
        // Branch-taken nodes decided but not started yet.
        for idx in 0..self.nodes.len() {
            if let Some(p) = self.nodes[idx].parent
                && self.nodes[p].state.branch_child() == Some(idx)
                && self.nodes[idx].phase() == NodePhase::NotYetStarted
                && self.nodes[p].phase() == NodePhase::Running
                && self.nodes[idx].pending == 0
            {
                self.make_ready(idx);
            }
        }
        // Re-arm or re-run whatever was in flight.
        for idx in 0..self.nodes.len() {
            let phase = self.nodes[idx].phase();
            if !matches!(phase, NodePhase::Queued | NodePhase::Running) {
                continue;
            }
            if let Some(d) = self.nodes[idx].active_deadline {
                let queued = self.nodes[idx].rec.queued_at_us;
                self.arm_timer_at_us(queued, d, Timer::ActiveDeadline { node: idx });
            }
            self.resume_kind(idx).await;
        }
        self.resume_records.clear();
        self.resume_closures.clear();
        Ok(())
    }

    /// Builds a scope's node instances (restoring resumed records, recursively).
    fn new_scope(
        &mut self,
        owner: Option<usize>,
        mut template: Arc<WorkflowTemplate>,
        connections: Option<&flyteidl::core::ConnectionSet>,
        inputs: Option<Arc<LiteralMap>>,
        catalog: Arc<Catalog>,
    ) -> usize {
        let s = self.scopes.len();
        // The nodes live on in the node instances; a template nothing else holds gives them
        // up instead of keeping a second copy (10,000-node dynamic workflows).
        let nodes = match Arc::get_mut(&mut template) {
            Some(t) => std::mem::take(&mut t.nodes),
            None => template.nodes.clone(),
        };
        let fail_immediately = template
            .metadata
            .as_ref()
            .map(|m| m.on_failure != OnFailurePolicy::FailAfterExecutableNodesComplete as i32)
            .unwrap_or(true);
        self.scopes.push(Scope {
            owner,
            template: template.clone(),
            catalog,
            by_spec: HashMap::with_capacity(nodes.len()),
            start: usize::MAX,
            end: usize::MAX,
            total: 0,
            succeeded: 0,
            active: 0,
            error: None,
            fail_immediately,
            done: false,
            inputs,
        });
        let parent_out = owner.map(|o| self.nodes[o].output_dir());
        let mut members = Vec::with_capacity(nodes.len());
        for n in nodes {
            let data_dir = match &parent_out {
                None => layout::top_node_data_dir(&self.exec_dir, &n.id),
                Some(out) => layout::sub_node_data_dir(out, &n.id),
            };
            let id = n.id.clone();
            let idx = self.add_node(Arc::new(n), s, Some(s), owner, data_dir, false);
            members.push(idx);
            if id == START_NODE_ID {
                self.scopes[s].start = idx;
            } else if id == END_NODE_ID {
                self.scopes[s].end = idx;
            }
            self.scopes[s].by_spec.insert(id, idx);
        }
        self.scopes[s].total = members.len();
        // Edges: connections (authoritative when compiled), declared upstreams and promises.
        for &idx in &members {
            let spec = self.nodes[idx].spec.clone();
            if spec.id == START_NODE_ID {
                continue;
            }
            let mut ups: Vec<&str> = Vec::new();
            if let Some(c) = connections
                && let Some(list) = c.upstream.get(&spec.id)
            {
                ups.extend(list.ids.iter().map(String::as_str));
            }
            ups.extend(spec.upstream_node_ids.iter().map(String::as_str));
            bindings::promised_nodes(&spec.inputs, &mut ups);
            let mut seen = HashSet::new();
            let mut pending = 0;
            for u in ups {
                if u == spec.id || !seen.insert(u) {
                    continue;
                }
                if let Some(&ui) = self.scopes[s].by_spec.get(u) {
                    self.nodes[ui].downstream.push(idx);
                    pending += 1;
                }
            }
            if pending == 0 && self.scopes[s].start != usize::MAX {
                let st = self.scopes[s].start;
                self.nodes[st].downstream.push(idx);
                pending = 1;
            }
            self.nodes[idx].pending = pending;
        }
        // Restore nested instances of resumed parents.
        if self.resumed {
            for &idx in &members {
                self.restore_children(idx);
            }
        }
        s
    }

    fn restore_children(&mut self, idx: usize) {
        if !matches!(
            self.nodes[idx].phase(),
            NodePhase::Queued | NodePhase::Running
        ) {
            return;
        }
        self.restore_kind(idx);
    }

    fn add_node(
        &mut self,
        spec: Arc<Node>,
        scope: usize,
        member_of: Option<usize>,
        parent: Option<usize>,
        data_dir: String,
        is_failure_node: bool,
    ) -> usize {
        self.add_node_as(
            spec,
            None,
            None,
            scope,
            member_of,
            parent,
            data_dir,
            is_failure_node,
        )
    }

    /// [`Self::add_node`] with the node's id and kind given (array sub-nodes share one spec).
    #[allow(clippy::too_many_arguments)]
    fn add_node_as(
        &mut self,
        spec: Arc<Node>,
        spec_id: Option<String>,
        kind: Option<Kind>,
        scope: usize,
        member_of: Option<usize>,
        parent: Option<usize>,
        data_dir: String,
        is_failure_node: bool,
    ) -> usize {
        let spec_id = spec_id.unwrap_or_else(|| spec.id.clone());
        let parent_info =
            parent.map(|p| (self.nodes[p].rec.node_id.clone(), self.nodes[p].rec.attempt));
        let unique = layout::node_unique_id(
            parent_info.as_ref().map(|(id, a)| (id.as_str(), *a)),
            &spec_id,
        );
        let kind = kind.unwrap_or_else(|| {
            let catalog = self.scopes[scope].catalog.clone();
            self.kind_of(&spec, &catalog)
        });
        let (array_ctx, in_dynamic) = match parent {
            Some(p) => {
                let pn = &self.nodes[p];
                // A sub-node of an array is index `i` of it; what runs under one inherits it.
                let ctx = if pn.kind.array().is_some() {
                    spec_id
                        .strip_prefix('n')
                        .and_then(|i| i.parse::<u32>().ok())
                        .map(|i| (p, i))
                } else {
                    pn.array_ctx
                };
                let parent_is_dynamic = !pn.rec.dynamic_closure_path.is_empty();
                (ctx, pn.in_dynamic || parent_is_dynamic)
            }
            None => (None, false),
        };
        let task = kind.task().cloned();
        let active_deadline = spec
            .metadata
            .as_ref()
            .and_then(|m| duration_of(&m.timeout))
            .or(self.shared.config.default_active_deadline);
        let interruptible = spec
            .metadata
            .as_ref()
            .and_then(|m| m.interruptible_value.as_ref())
            .map(|flyteidl::core::node_metadata::InterruptibleValue::Interruptible(b)| *b)
            .or(self.req.interruptible)
            .or_else(|| {
                task.as_ref()
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.interruptible_value.as_ref())
                    .map(|flyteidl::core::task_metadata::InterruptibleValue::Interruptible(b)| *b)
            })
            .unwrap_or(false);
        let state = self.initial_state(&kind);
        let mut rec = NodeStateRecord {
            node_id: unique.clone(),
            spec_node_id: spec_id,
            parent_node_id: parent_info.map(|(id, _)| id).unwrap_or_default(),
            interruptible,
            ..Default::default()
        };
        if self.resumed
            && let Some(saved) = self.resume_records.remove(&unique)
        {
            rec = saved;
        }
        self.node_seq += 1;
        let inst = NodeInst {
            spec,
            kind,
            scope,
            member_of,
            parent,
            data_dir,
            downstream: Vec::new(),
            pending: 0,
            rec,
            is_failure_node,
            active_deadline,
            ready_at: None,
            wf_slot: false,
            array_ctx,
            in_dynamic,
            span: tracing::Span::none(),
            state,
            incarnation: self.node_seq,
        };
        let idx = match self.free_nodes.pop() {
            Some(free) => {
                self.nodes[free] = inst;
                free
            }
            None => {
                self.nodes.push(inst);
                self.nodes.len() - 1
            }
        };
        self.by_unique.insert(unique, idx);
        idx
    }

    /// Gives up the slot of an ended node nothing refers to any more (a map item whose array
    /// kept what it needs of it): its last record joins the batch now, and the next node
    /// made takes the slot. Attempt updates, starts and timers still on their way for it
    /// find another node id or incarnation there and are dropped.
    fn release_node(&mut self, idx: usize) {
        if self.dirty.remove(&idx) {
            self.track_node_span(idx);
            let mut rec = self.nodes[idx].rec.clone();
            rec.updated_at_us = self.now_us();
            self.batch.journal.nodes.push(rec);
            // An earlier round of this batch may hold the node too: keep its last record.
            self.sealed_rounds += 1;
        }
        self.outputs.remove(&idx);
        self.recovery_checked.remove(&idx);
        let spec = self.nodes[idx].spec.clone();
        let released = std::mem::replace(
            &mut self.nodes[idx],
            NodeInst {
                spec,
                kind: Kind::Unsupported(String::new()),
                scope: 0,
                member_of: None,
                parent: None,
                data_dir: String::new(),
                downstream: Vec::new(),
                pending: 0,
                rec: NodeStateRecord::default(),
                is_failure_node: false,
                active_deadline: None,
                ready_at: None,
                wf_slot: false,
                array_ctx: None,
                in_dynamic: false,
                span: tracing::Span::none(),
                state: handlers::KindState::None,
                incarnation: 0,
            },
        );
        self.by_unique.remove(&released.rec.node_id);
        self.free_nodes.push(idx);
    }

    /// How many attempts the node has for user errors: its own retries, else its task's,
    /// else the configured default.
    fn max_attempts(&self, idx: usize) -> u32 {
        let n = &self.nodes[idx];
        let meta_retries = n
            .spec
            .metadata
            .as_ref()
            .and_then(|m| m.retries.as_ref())
            .map(|r| r.retries);
        let task_retries = n
            .kind
            .task()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.retries.as_ref())
            .map(|r| r.retries);
        let retries = meta_retries
            .filter(|r| *r > 0)
            .or(task_retries)
            .unwrap_or(0);
        if retries > 0 {
            retries + 1
        } else {
            self.shared.config.default_max_attempts.max(1)
        }
    }

    /// Whether `kind` is a task whose backend runs it in the engine (reads no attempt files:
    /// its inputs are handed over in memory). The same choice as the node's `initial_state`.
    fn runs_in_engine(&self, kind: &Kind) -> bool {
        let Kind::Task(t) = kind else {
            return false;
        };
        crate::backend::choose(&self.shared.backends, t, &self.req.plugin_overrides)
            .ok()
            .flatten()
            .and_then(|b| self.shared.backends.get(b))
            .is_some_and(|b| !b.reads_attempt_files())
    }

    fn kind_of(&self, n: &Node, catalog: &Catalog) -> Kind {
        if n.id == START_NODE_ID {
            return Kind::Start;
        }
        if n.id == END_NODE_ID {
            return Kind::End;
        }
        match &n.target {
            Some(node::Target::TaskNode(t)) => match &t.reference {
                Some(task_node::Reference::ReferenceId(id)) => match catalog.tasks.get(&key_of(id))
                {
                    Some(t) => Kind::Task(t.clone()),
                    None => Kind::Unsupported(format!(
                        "task {} is not in the compiled workflow",
                        flyte_core::ids::display_identifier(id)
                    )),
                },
                None => Kind::Unsupported("task node without a task reference".into()),
            },
            Some(node::Target::BranchNode(_)) => Kind::Branch,
            Some(node::Target::WorkflowNode(w)) => match &w.reference {
                Some(workflow_node::Reference::SubWorkflowRef(id)) => {
                    match catalog.subworkflows.get(&key_of(id)) {
                        Some(wf) => Kind::SubWorkflow(wf.clone()),
                        None => Kind::Unsupported(format!(
                            "sub-workflow {} is not in the compiled workflow",
                            flyte_core::ids::display_identifier(id)
                        )),
                    }
                }
                Some(workflow_node::Reference::LaunchplanRef(id)) => {
                    Kind::LaunchPlan(Arc::new(id.clone()))
                }
                None => Kind::Unsupported("workflow node without a reference".into()),
            },
            Some(node::Target::GateNode(g)) => match &g.condition {
                Some(gate_node::Condition::Sleep(s)) => {
                    Kind::Sleep(duration_of(&s.duration).unwrap_or_default())
                }
                Some(c) => match GateSpec::of(c) {
                    Some(g) => Kind::Gate(Arc::new(g)),
                    None => Kind::Unsupported("gate node without a condition".into()),
                },
                None => Kind::Unsupported(
                    "gateNode does not have a supported condition reference".into(),
                ),
            },
            Some(node::Target::ArrayNode(a)) => match a.node.as_deref() {
                Some(sub) => {
                    let sub_kind = self.kind_of(sub, catalog);
                    let in_engine = self.runs_in_engine(&sub_kind);
                    Kind::Array(Arc::new(ArraySpec::new(a, sub, sub_kind, in_engine)))
                }
                None => Kind::Unsupported("array node without a sub-node".into()),
            },
            None => Kind::Unsupported("node without a target".into()),
        }
    }

    fn open_subworkflow(
        &mut self,
        idx: usize,
        wf: Arc<CompiledWorkflow>,
        inputs: Option<Arc<LiteralMap>>,
    ) -> usize {
        let template = Arc::new(wf.template.clone().unwrap_or_default());
        let catalog = self.scopes[self.nodes[idx].scope].catalog.clone();
        let s = self.new_scope(
            Some(idx),
            template,
            wf.connections.as_ref(),
            inputs,
            catalog,
        );
        self.nodes[idx].state.set_child_scope(Some(s));
        s
    }

    fn create_failure_node(&mut self) -> Option<usize> {
        let template = self.scopes[0].template.clone();
        let f = template.failure_node.as_ref()?;
        let data_dir = layout::top_node_data_dir(&self.exec_dir, &f.id);
        let idx = self.add_node(Arc::new(f.clone()), 0, None, None, data_dir, true);
        if !self.nodes[idx].phase().is_terminal()
            && self.nodes[idx].phase() == NodePhase::NotYetStarted
        {
            self.make_ready(idx);
        }
        Some(idx)
    }

    /// The failure node of a failed subworkflow scope, as propeller's subworkflow handler
    /// runs it: a child of the subworkflow node, bound to the subworkflow's inputs; the
    /// node fails once it has run. False if the subworkflow has none.
    fn create_sub_failure_node(&mut self, s: usize) -> bool {
        let (Some(owner), Some(f)) = (
            self.scopes[s].owner,
            self.scopes[s].template.failure_node.clone(),
        ) else {
            return false;
        };
        let data_dir = layout::sub_node_data_dir(&self.nodes[owner].output_dir(), &f.id);
        let idx = self.add_node(Arc::new(f), s, None, Some(owner), data_dir, true);
        match self.nodes[idx].phase() {
            NodePhase::NotYetStarted => self.make_ready(idx),
            // Restored after a restart: it already ended.
            p if p.is_success() => self.done_queue.push_back(Done::Node(idx, Ok(()))),
            p if p.is_terminal() => {
                let err = self.nodes[idx].rec.error.clone().unwrap_or_default();
                self.done_queue.push_back(Done::Node(idx, Err(err)));
            }
            _ => {}
        }
        true
    }

    /// After a restart: a subworkflow that was running its failure node goes on with it (the
    /// resume re-attaches or restarts it like any restored node) instead of deciding again.
    fn restore_sub_failure_node(&mut self, s: usize) {
        let (Some(owner), Some(f)) = (
            self.scopes[s].owner,
            self.scopes[s].template.failure_node.as_ref(),
        ) else {
            return;
        };
        let o = &self.nodes[owner].rec;
        let unique = layout::node_unique_id(Some((o.node_id.as_str(), o.attempt)), &f.id);
        if self.resume_records.contains_key(&unique) {
            // Its error comes back with the restored members (recount_scope).
            self.scopes[s].done = true;
            self.create_sub_failure_node(s);
        }
    }

    /// The failure node of a subworkflow scope, if it was created.
    fn sub_failure_node(&self, s: usize) -> Option<usize> {
        let owner = self.scopes[s].owner?;
        let f = self.scopes[s].template.failure_node.as_ref()?;
        let o = &self.nodes[owner].rec;
        let unique = layout::node_unique_id(Some((o.node_id.as_str(), o.attempt)), &f.id);
        self.by_unique.get(&unique).copied()
    }

    /// After a resume: counters, errors and ready nodes of one scope from restored phases.
    fn recount_scope(&mut self, s: usize) {
        let members: Vec<usize> = self.scopes[s].by_spec.values().copied().collect();
        let mut succeeded = 0;
        let mut active = 0;
        let mut error = self.scopes[s].error.clone();
        for &i in &members {
            match self.nodes[i].phase() {
                p if p.is_success() => succeeded += 1,
                NodePhase::Queued | NodePhase::Running => active += 1,
                NodePhase::Failed | NodePhase::TimedOut if error.is_none() => {
                    error = self.nodes[i].rec.error.clone();
                }
                _ => {}
            }
        }
        // A parent that is not running means its children are not either.
        let owner_running = self.scopes[s]
            .owner
            .map(|o| {
                matches!(
                    self.nodes[o].phase(),
                    NodePhase::Queued | NodePhase::Running
                )
            })
            .unwrap_or(true);
        self.scopes[s].succeeded = succeeded;
        self.scopes[s].active = active;
        if self.scopes[s].error.is_none() {
            self.scopes[s].error = error;
        }
        // pending = upstreams not yet succeeded
        let mut ready = Vec::new();
        for &i in &members {
            if self.nodes[i].phase() != NodePhase::NotYetStarted {
                continue;
            }
            self.nodes[i].pending = 0;
        }
        for &u in &members {
            let ok = self.nodes[u].phase().is_success();
            for di in 0..self.nodes[u].downstream.len() {
                let d = self.nodes[u].downstream[di];
                // Branch-taken nodes are not members: their pending was counted when wired.
                if !ok
                    && self.nodes[d].member_of == Some(s)
                    && self.nodes[d].phase() == NodePhase::NotYetStarted
                {
                    self.nodes[d].pending += 1;
                }
            }
        }
        for &i in &members {
            if self.nodes[i].phase() == NodePhase::NotYetStarted && self.nodes[i].pending == 0 {
                ready.push(i);
            }
        }
        let wf_phase = self.wf.workflow_phase();
        if owner_running && !self.scopes[s].done && !(s == 0 && wf_phase != WorkflowPhase::Running)
        {
            ready.sort_unstable();
            for i in ready {
                self.make_ready(i);
            }
            self.done_queue.push_back(Done::Check(s));
        }
    }

    fn make_ready(&mut self, idx: usize) {
        if let Some(s) = self.nodes[idx].member_of {
            self.scopes[s].active += 1;
        }
        self.nodes[idx].ready_at = Some(Instant::now());
        self.ready.push_back(idx);
    }

    // ---------------------------------------------------------------- the loop

    pub(crate) async fn run(
        mut self,
        ready_tx: oneshot::Sender<Result<(), EngineError>>,
    ) -> Option<WorkflowPhase> {
        let span = tracing::info_span!(
            "execution",
            project = %self.id.project,
            domain = %self.id.domain,
            execution = %self.id.name
        );
        async move {
            metrics::gauge!(m::EXECUTIONS_RUNNING).increment(1.0);
            let result = self.run_inner(ready_tx).await;
            metrics::gauge!(m::EXECUTIONS_RUNNING).decrement(1.0);
            result
        }
        .instrument(span)
        .await
    }

    async fn run_inner(
        &mut self,
        ready_tx: oneshot::Sender<Result<(), EngineError>>,
    ) -> Option<WorkflowPhase> {
        let mut ready_tx = Some(ready_tx);
        if let Some(cause) = self.pending_abort.take() {
            self.abort_execution(&cause);
        }
        loop {
            let round = Instant::now();
            self.process().await;
            metrics::histogram!(m::ROUND_TIME).record(round.elapsed().as_secs_f64());
            self.seal();
            self.start_uncommitted().await;
            if self.wf.workflow_phase().is_terminal() {
                return self.finish(&mut ready_tx).await;
            }
            if self.commit.is_none() && !self.begin_commit() {
                // Nothing to write: what was decided is committed.
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            if self.has_internal_work() {
                continue;
            }
            // Sleep until something happens.
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let sleep = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let commit = &mut self.commit;
            let committed = async {
                match commit.as_mut() {
                    Some(c) => c.await,
                    None => std::future::pending().await,
                }
            };
            let mut depth = 0usize;
            tokio::select! {
                biased;
                c = self.control_rx.recv() => match c {
                    Some(c) => if !self.on_control(c) {
                        return None;
                    },
                    None => return None,
                },
                r = committed => {
                    self.commit = None;
                    if !self.committed(r, &mut ready_tx).await {
                        return None;
                    }
                }
                m = self.ext_rx.recv() => {
                    if let Some(m) = m {
                        self.on_ext(m);
                    }
                }
                u = self.updates_rx.recv() => {
                    if let Some((k, u)) = u {
                        depth += 1;
                        self.on_update(k, u);
                    }
                }
                _ = sleep => {}
            }
            while let Ok((k, u)) = self.updates_rx.try_recv() {
                depth += 1;
                self.on_update(k, u);
            }
            while let Ok(c) = self.control_rx.try_recv() {
                if !self.on_control(c) {
                    return None;
                }
            }
            while let Ok(m) = self.ext_rx.try_recv() {
                self.on_ext(m);
            }
            metrics::histogram!(m::QUEUE_DEPTH).record(depth as f64);
            self.fire_timers();
        }
    }

    /// The workflow reached a terminal phase: writes what is still unwritten, acts on it
    /// (the aborts of what still runs) and ends.
    async fn finish(
        &mut self,
        ready_tx: &mut Option<oneshot::Sender<Result<(), EngineError>>>,
    ) -> Option<WorkflowPhase> {
        loop {
            if self.commit.is_none() && !self.begin_commit() {
                break;
            }
            let Some(mut commit) = self.commit.take() else {
                break;
            };
            let r = loop {
                tokio::select! {
                    biased;
                    c = self.control_rx.recv() => match c {
                        Some(c) => if !self.on_control(c) {
                            return None;
                        },
                        None => return None,
                    },
                    r = &mut commit => break r,
                }
            };
            if !self.committed(r, ready_tx).await {
                return None;
            }
            self.seal();
        }
        if let Some(tx) = ready_tx.take() {
            let _ = tx.send(Ok(()));
        }
        Some(self.wf.workflow_phase())
    }

    /// A batch's write ended: acts on what it recorded; false: the execution stops here.
    async fn committed(
        &mut self,
        result: Result<(), SinkError>,
        ready_tx: &mut Option<oneshot::Sender<Result<(), EngineError>>>,
    ) -> bool {
        if let Err(e) = result {
            if let SinkError::LeaseLost(_) = e {
                // Another replica owns it now: stop here, unaborted, as for a lease lost at
                // a heartbeat (the new owner resumes from the journal).
                tracing::warn!(error = %e, "lease lost while committing: the execution stops here (another replica takes it over)");
            } else {
                tracing::error!(error = %e, "event sink rejected a batch; stopping the execution");
            }
            if let Some(tx) = ready_tx.take() {
                let _ = tx.send(Err(EngineError::Sink(e)));
            }
            return false;
        }
        if let Some(tx) = ready_tx.take() {
            let _ = tx.send(Ok(()));
        }
        let acts = std::mem::take(&mut self.committing);
        self.act(acts).await;
        true
    }

    /// Handles a control message; false: stop the actor (shutdown).
    fn on_control(&mut self, c: Control) -> bool {
        match c {
            Control::Abort(cause) => self.abort_execution(&cause),
            Control::Shutdown => return false,
            Control::Signal(id) => self.on_signal_set(&id),
            Control::ChildEnded(node) => self.on_child_ended(&node),
        }
        true
    }

    /// Whether the batch being gathered has as many node events as one batch should hold:
    /// ready nodes then wait for it to be sent (a scope of 100,000 children opens over many
    /// batches instead of one holding every child's events, records and rows at once).
    fn batch_full(&self) -> bool {
        self.batch.node_events.len() >= MAX_BATCH_NODE_EVENTS
    }

    fn has_internal_work(&self) -> bool {
        (!self.ready.is_empty() && !self.batch_full())
            || !self.completions.is_empty()
            || !self.done_queue.is_empty()
            || !self.gate_checks.is_empty()
            || !self.child_checks.is_empty()
            || !self.child_relaunches.is_empty()
    }

    /// Advances everything that can move without outside input.
    async fn process(&mut self) {
        loop {
            if let Some((idx, logs)) = self.completions.pop_front() {
                self.complete_attempt(idx, logs).await;
                continue;
            }
            if let Some(d) = self.done_queue.pop_front() {
                match d {
                    Done::Node(idx, r) => self.on_node_done(idx, r).await,
                    Done::Check(s) => self.check_scope(s),
                    Done::Scope(s, r) => self.on_scope_done(s, r).await,
                    Done::ArrayCheck(a) => self.array_check(a),
                    Done::ArrayGather(a) => self.array_gather(a).await,
                }
                continue;
            }
            if !self.batch_full()
                && let Some(idx) = self.ready.pop_front()
            {
                self.start_node(idx).await;
                continue;
            }
            if let Some(idx) = self.gate_checks.pop_front() {
                self.check_gate(idx).await;
                continue;
            }
            if let Some(idx) = self.child_checks.pop_front() {
                self.check_child(idx).await;
                continue;
            }
            if let Some(idx) = self.child_relaunches.pop_front() {
                self.relaunch_child(idx).await;
                continue;
            }
            break;
        }
    }

    /// Puts the round's state changes into the batch being gathered.
    fn seal(&mut self) {
        if self.commit.is_none() {
            // One task event per array node per batch, not per round: while a batch is
            // written (a big map's first event is slow to merge), rounds gather their item
            // changes instead of queueing an event each, every one a merge for the admin.
            self.flush_array_events();
        }
        let now = self.now_us();
        let dirty = std::mem::take(&mut self.dirty);
        if !dirty.is_empty() {
            self.sealed_rounds += 1;
        }
        for idx in dirty {
            self.track_node_span(idx);
            let mut rec = self.nodes[idx].rec.clone();
            rec.updated_at_us = now;
            self.batch.journal.nodes.push(rec);
        }
        if self.wf_dirty {
            self.wf.updated_at_us = now;
            self.batch.journal.workflow = Some(self.wf.clone());
            self.wf_dirty = false;
        }
    }

    /// Starts the attempts of backends that need no commit first (in-engine tasks) now,
    /// while the batch recording them is still gathered or written.
    async fn start_uncommitted(&mut self) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.to_start)
            .into_iter()
            // Given up in this round (aborted, or a released map item's slot reused).
            .filter(|(idx, attempt)| self.is_current(*idx, &attempt.key))
            .partition(|(idx, _)| {
                self.nodes[*idx]
                    .state
                    .backend()
                    .is_some_and(|b| self.shared.backends[b].starts_before_commit())
            });
        self.to_start = later;
        if !now.is_empty() {
            self.start_attempts(now).await;
        }
    }

    /// Sends the gathered batch to the sink (false: nothing to write). What it decided waits
    /// for its commit ([`Self::committed`]).
    fn begin_commit(&mut self) -> bool {
        if self.batch.is_empty() {
            return false;
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.execution = self.id.clone();
        self.batch.execution = self.id.clone();
        if std::mem::take(&mut self.sealed_rounds) > 1 {
            // Several rounds: keep each node's last record (one upsert per row).
            let mut seen = HashSet::new();
            let mut nodes: Vec<_> = std::mem::take(&mut batch.journal.nodes)
                .into_iter()
                .rev()
                .filter(|n| seen.insert(n.node_id.clone()))
                .collect();
            nodes.reverse();
            batch.journal.nodes = nodes;
        }
        self.committing = Acts {
            start: std::mem::take(&mut self.to_start),
            abort: std::mem::take(&mut self.to_abort),
            launch: std::mem::take(&mut self.to_launch),
            abort_children: std::mem::take(&mut self.to_abort_children),
        };
        self.commit = Some(Commit(tokio::spawn(
            write_batch(self.shared.clone(), batch).instrument(tracing::Span::current()),
        )));
        true
    }

    /// Opens a node's span when it becomes active and closes it, with its final phase, when
    /// it ends. Called for every changed node once per round, the one place every phase
    /// change passes through.
    fn track_node_span(&mut self, idx: usize) {
        let phase = self.nodes[idx].phase();
        if phase.is_terminal() {
            let span = std::mem::replace(&mut self.nodes[idx].span, tracing::Span::none());
            span.record("phase", tracing::field::debug(phase));
        } else if phase != NodePhase::NotYetStarted && self.nodes[idx].span.is_none() {
            let parent = self.nodes[idx]
                .parent
                .map(|p| self.nodes[p].span.clone())
                .filter(|s| !s.is_none())
                .unwrap_or_else(tracing::Span::current);
            let n = &self.nodes[idx];
            self.nodes[idx].span = tracing::info_span!(
                parent: &parent,
                "node",
                node = %n.rec.node_id,
                kind = n.kind.label(),
                phase = tracing::field::Empty,
            );
        }
    }

    /// Acts on committed decisions: aborts, then starts.
    async fn act(&mut self, acts: Acts) {
        for (b, key) in acts.abort {
            self.shared.backends[b].abort(&key).await;
        }
        self.act_children(acts.launch, acts.abort_children);
        // While the batch was written the actor went on: an attempt it has since given up
        // (the execution aborted, the node timed out) is not started.
        let start: Vec<_> = acts
            .start
            .into_iter()
            .filter(|(idx, attempt)| self.is_current(*idx, &attempt.key))
            .collect();
        self.start_attempts(start).await;
    }

    async fn start_attempts(&mut self, attempts: Vec<(usize, TaskAttempt)>) {
        for (idx, attempt) in attempts {
            let Some(b) = self.nodes[idx].state.backend() else {
                continue;
            };
            let backend = self.shared.backends[b].clone();
            let Some(attempt) = self.cache_defer_start(idx, attempt, &backend) else {
                continue;
            };
            metrics::counter!(m::ATTEMPTS_STARTED, "backend" => backend.name()).increment(1);
            let key = attempt.key.clone();
            // The backend's attempt span (and its logs) nest under the node's.
            let node_span = self.nodes[idx].span.clone();
            let started = backend
                .start(attempt, self.updates_tx.clone())
                .instrument(node_span)
                .await;
            if let Err(e) = started {
                let (err, retryable) = match e {
                    BackendError::Unsupported(msg) => (
                        self.exec_error(ErrorKind::User, "TaskBackendUnsupported", msg),
                        false,
                    ),
                    BackendError::Internal(msg) => (
                        self.exec_error(ErrorKind::System, "TaskBackendError", msg),
                        true,
                    ),
                };
                if self.is_current(idx, &key) {
                    self.attempt_failed(idx, err, retryable, Vec::new());
                }
            }
        }
    }

    // ---------------------------------------------------------------- messages

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, seq))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some((t, incarnation)) = self.timer_payload.remove(&seq) else {
                continue;
            };
            if self.nodes[t.node()].incarnation != incarnation {
                // Armed for a released node whose slot another node holds now.
                continue;
            }
            match t {
                Timer::ExecDeadline { node, attempt } => self.on_exec_deadline(node, attempt),
                Timer::ActiveDeadline { node } => {
                    if matches!(
                        self.nodes[node].phase(),
                        NodePhase::Queued | NodePhase::Running
                    ) {
                        let d = self.nodes[node].active_deadline.unwrap_or_default();
                        let msg = format!("task active timeout [{}] expired", go_duration(d));
                        self.abort_node(node, &msg, false);
                        let err = self.exec_error(ErrorKind::User, "TimedOut", msg);
                        self.node_terminal(node, NodePhase::TimedOut, Some(err));
                    }
                }
                Timer::Sleep { node } => self.on_slept(node),
                Timer::GatePoll { node } => {
                    let n = &mut self.nodes[node];
                    n.state.set_poll_armed(&n.kind, false);
                    self.gate_checks.push_back(node);
                }
                Timer::ChildPoll { node } => {
                    let n = &mut self.nodes[node];
                    n.state.set_poll_armed(&n.kind, false);
                    self.child_checks.push_back(node);
                }
                Timer::ChildLaunch { node } => self.child_relaunches.push_back(node),
            }
        }
    }

    fn arm_timer(&mut self, after: Duration, t: Timer) {
        let seq = self.timer_seq;
        self.timer_seq += 1;
        self.timers.push(Reverse((Instant::now() + after, seq)));
        let incarnation = self.nodes[t.node()].incarnation;
        self.timer_payload.insert(seq, (t, incarnation));
    }

    fn arm_timer_at_us(&mut self, since_us: i64, d: Duration, t: Timer) {
        let elapsed = Duration::from_micros(self.now_us().saturating_sub(since_us).max(0) as u64);
        self.arm_timer(d.saturating_sub(elapsed), t);
    }

    // ---------------------------------------------------------------- node starts

    async fn start_node(&mut self, idx: usize) {
        if self.nodes[idx].phase() != NodePhase::NotYetStarted {
            return;
        }
        // A failed scope under FAIL_IMMEDIATELY, or an ending workflow, starts nothing more.
        let blocked = match self.nodes[idx].member_of {
            Some(s) => {
                self.scopes[s].done
                    || (self.scopes[s].error.is_some() && self.scopes[s].fail_immediately)
            }
            None => false,
        } || (self.wf.workflow_phase().is_terminal())
            || self.nodes[idx].parent.is_some_and(|p| {
                !matches!(
                    self.nodes[p].phase(),
                    NodePhase::Queued | NodePhase::Running
                )
            });
        if blocked {
            if let Some(s) = self.nodes[idx].member_of {
                self.scopes[s].active = self.scopes[s].active.saturating_sub(1);
                self.check_scope(s);
            }
            return;
        }
        if let Some(at) = self.nodes[idx].ready_at {
            metrics::histogram!(m::NODE_TRANSITION_LATENCY).record(at.elapsed().as_secs_f64());
        }
        if self.req.recover_from.is_some()
            && self.recovery_checked.insert(idx)
            && self.try_recover(idx).await
        {
            return;
        }
        self.start_kind(idx).await;
    }

    // ---------------------------------------------------------------- parallelism

    fn slot_free(&self) -> bool {
        let max = self.req.max_parallelism as usize;
        max == 0 || self.running_tasks < max
    }

    fn take_slot(&mut self, idx: usize) {
        if !self.nodes[idx].wf_slot {
            self.nodes[idx].wf_slot = true;
            self.running_tasks += 1;
        }
    }

    /// Frees the node's slot (if it holds one) and lets a waiting node have it.
    fn release_slot(&mut self, idx: usize) {
        if !self.nodes[idx].wf_slot {
            return;
        }
        self.nodes[idx].wf_slot = false;
        self.running_tasks = self.running_tasks.saturating_sub(1);
        while let Some(w) = self.waiting_parallelism.pop_front() {
            if self.nodes[w].phase() == NodePhase::NotYetStarted {
                self.ready.push_back(w);
                break;
            }
        }
    }

    fn mark_queued(&mut self, idx: usize) {
        let now = self.now_us();
        let r = &mut self.nodes[idx].rec;
        r.phase = NodePhase::Queued as i32;
        if r.queued_at_us == 0 {
            r.queued_at_us = now;
        }
        if r.started_at_us == 0 {
            r.started_at_us = now;
        }
        self.dirty.insert(idx);
    }

    fn set_phase(&mut self, idx: usize, p: NodePhase) {
        self.nodes[idx].rec.phase = p as i32;
        self.dirty.insert(idx);
    }

    async fn run_start_node(&mut self, idx: usize) {
        let inputs = self.scope_inputs(self.nodes[idx].scope).await;
        if self.fits_inline(&inputs) {
            self.mark_queued(idx);
            self.node_succeeded_inline(idx, inputs);
            return;
        }
        let out = layout::outputs_file(&self.nodes[idx].output_dir());
        if let Err(e) = self
            .shared
            .put_blob(&out, Bytes::from(inputs.encode_to_vec()))
            .await
        {
            let err = self.exec_error(
                ErrorKind::System,
                "StorageError",
                format!("failed to store the workflow inputs: {e}"),
            );
            self.mark_queued(idx);
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return;
        }
        self.mark_queued(idx);
        self.outputs.insert(idx, inputs);
        self.node_succeeded(idx, out, None);
    }

    /// The inputs of scope `s`, which its start node outputs: the execution's at the top,
    /// else what the owner opened it with, else (resumed) the owner's `inputs.pb`.
    async fn scope_inputs(&self, s: usize) -> Arc<LiteralMap> {
        match (self.scopes[s].owner, self.scopes[s].inputs.clone()) {
            (None, _) => Arc::new(self.req.inputs.clone()),
            (Some(_), Some(i)) => i,
            (Some(owner), None) => {
                let path = self.nodes[owner].inputs_file();
                match self.shared.blob.get(&path).await.map(LiteralMap::decode) {
                    Ok(Ok(m)) => Arc::new(m),
                    // No inputs file for the owner: nothing it runs reads its inputs.
                    _ => Arc::new(LiteralMap::default()),
                }
            }
        }
    }

    /// Whether a start or end node's map stays out of the blob store (inline in events).
    fn fits_inline(&self, map: &LiteralMap) -> bool {
        let max = self.shared.config.inline_max_bytes;
        max > 0 && map.encoded_len() <= max
    }

    /// A start or end node succeeds with outputs kept in memory and sent inline in its
    /// events; nothing is written (see `NodeStateRecord::outputs_inline`).
    fn node_succeeded_inline(&mut self, idx: usize, outputs: Arc<LiteralMap>) {
        self.nodes[idx].rec.outputs_inline = true;
        self.node_succeeded(idx, String::new(), Some(outputs));
    }

    async fn run_end_node(&mut self, idx: usize) {
        // An end node is never an array's sub-node itself: its bindings are its inputs.
        let Some(inputs) = self.resolve_inputs(idx).await else {
            return;
        };
        if self.fits_inline(&inputs) {
            let inputs = Arc::new(inputs);
            self.nodes[idx].rec.outputs_inline = true;
            // In memory before the QUEUED event, which carries them as the node's inputs.
            self.outputs.insert(idx, inputs.clone());
            self.mark_queued(idx);
            self.node_event(idx, node_execution::Phase::Queued, None);
            self.node_succeeded_inline(idx, inputs);
            return;
        }
        let Some(inputs) = self.store_node_inputs(idx, inputs).await else {
            return;
        };
        self.mark_queued(idx);
        self.node_event(idx, node_execution::Phase::Queued, None);
        let out = layout::outputs_file(&self.nodes[idx].output_dir());
        if let Err(e) = self
            .shared
            .put_blob(&out, Bytes::from(inputs.encode_to_vec()))
            .await
        {
            let err = self.exec_error(
                ErrorKind::System,
                "StorageError",
                format!("failed to store the outputs: {e}"),
            );
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return;
        }
        self.outputs.insert(idx, inputs);
        self.node_succeeded(idx, out, None);
    }

    /// Resolves a node's bindings and writes `inputs.pb`; on failure the node fails.
    async fn resolve_and_write_inputs(&mut self, idx: usize) -> Option<Arc<LiteralMap>> {
        if let Some((arr, i)) = self.nodes[idx].array_ctx
            && self.nodes[idx].parent == Some(arr)
        {
            return self.array_sub_inputs(arr, i, idx).await;
        }
        let inputs = self.resolve_inputs(idx).await?;
        self.store_node_inputs(idx, inputs).await
    }

    /// Resolves a node's bindings (not an array sub-node's); on failure the node fails.
    async fn resolve_inputs(&mut self, idx: usize) -> Option<LiteralMap> {
        let spec = self.nodes[idx].spec.clone();
        let mut inputs = match self.bound_inputs(idx).await {
            Ok(m) => m,
            Err(e) => {
                let err = self.exec_error(ErrorKind::System, "BindingResolutionFailure", e);
                self.mark_queued(idx);
                self.node_terminal(idx, NodePhase::Failed, Some(err));
                return None;
            }
        };
        if self.nodes[idx].is_failure_node {
            // A subworkflow's failure node sees the subworkflow's error.
            let error = match self.nodes[idx].parent {
                Some(_) => self.scopes[self.nodes[idx].scope].error.as_ref(),
                None => self.wf.error.as_ref(),
            };
            let msg = error.map(|e| e.message.clone()).unwrap_or_default();
            bindings::set_failure_error_input(&mut inputs, &spec.id, &msg);
        }
        Some(inputs)
    }

    /// A node's bindings over its upstream nodes' outputs (an end node's outputs too).
    async fn bound_inputs(&mut self, idx: usize) -> Result<LiteralMap, String> {
        let spec = self.nodes[idx].spec.clone();
        let scope = self.nodes[idx].scope;
        let mut promised = Vec::new();
        bindings::promised_nodes(&spec.inputs, &mut promised);
        let mut loaded: Vec<(String, Arc<LiteralMap>)> = Vec::with_capacity(promised.len());
        for p in promised {
            if let Some(&ui) = self.scopes[scope].by_spec.get(p) {
                loaded.push((p.to_string(), self.node_outputs(ui).await?));
            }
        }
        let view: HashMap<&str, &LiteralMap> = loaded
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref()))
            .collect();
        bindings::resolve(&spec.inputs, &view)
    }

    /// Writes a node's resolved inputs to its `inputs.pb`; a storage failure fails the node
    /// (a SYSTEM error) and gives `None`.
    pub(crate) async fn store_node_inputs(
        &mut self,
        idx: usize,
        inputs: LiteralMap,
    ) -> Option<Arc<LiteralMap>> {
        let path = self.nodes[idx].inputs_file();
        if let Err(e) = self
            .shared
            .put_blob(&path, Bytes::from(inputs.encode_to_vec()))
            .await
        {
            let err = self.exec_error(
                ErrorKind::System,
                "StorageError",
                format!("Failed to store inputs for Node: {e}"),
            );
            self.mark_queued(idx);
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return None;
        }
        Some(Arc::new(inputs))
    }

    /// A succeeded node's outputs, from memory or the store.
    async fn node_outputs(&mut self, idx: usize) -> Result<Arc<LiteralMap>, String> {
        if let Some(m) = self.outputs.get(&idx) {
            return Ok(m.clone());
        }
        if self.nodes[idx].rec.outputs_inline {
            // Resumed: a start or end node's inline outputs are derived again.
            let map = match self.nodes[idx].kind {
                Kind::End => Arc::new(Box::pin(self.bound_inputs(idx)).await?),
                _ => self.scope_inputs(self.nodes[idx].scope).await,
            };
            self.outputs.insert(idx, map.clone());
            return Ok(map);
        }
        let path = self.nodes[idx].rec.output_path.clone();
        if path.is_empty() {
            return Ok(Arc::new(LiteralMap::default()));
        }
        let bytes = self.shared.blob.get(&path).await.map_err(|e| {
            format!(
                "failed to read the outputs of [{}]: {e}",
                self.nodes[idx].rec.spec_node_id
            )
        })?;
        let encoded = bytes.len();
        let map =
            LiteralMap::decode(bytes).map_err(|e| format!("invalid outputs file {path}: {e}"))?;
        let map = Arc::new(map);
        self.cache_outputs(idx, &map, encoded);
        Ok(map)
    }

    /// Keeps a task's outputs read from their file for the nodes that read them next, unless
    /// they are big: decoded, a literal takes ~30 times its encoded bytes (a list of a million
    /// durations, 14 MB in its file, is ~450 MB), so big outputs are read again by each
    /// consumer (usually one: a map task over them) instead of being held for the whole run.
    pub(super) fn cache_outputs(&mut self, idx: usize, map: &Arc<LiteralMap>, encoded: usize) {
        if encoded <= CACHED_OUTPUTS_MAX_BYTES {
            self.outputs.insert(idx, map.clone());
        }
    }

    // ---------------------------------------------------------------- node endings

    fn node_succeeded(
        &mut self,
        idx: usize,
        output_path: String,
        outputs: Option<Arc<LiteralMap>>,
    ) {
        if let Some(o) = outputs {
            self.outputs.insert(idx, o);
        }
        self.nodes[idx].rec.output_path = output_path;
        self.nodes[idx].rec.error = None;
        self.release_slot(idx);
        self.set_phase(idx, NodePhase::Succeeded);
        self.node_event(idx, node_execution::Phase::Succeeded, None);
        self.drop_task_inputs(idx);
        m::node_phase("SUCCEEDED", self.nodes[idx].kind.label());
        self.done_queue.push_back(Done::Node(idx, Ok(())));
    }

    /// Ends a node in Failed / TimedOut / Aborted with an event.
    fn node_terminal(&mut self, idx: usize, phase: NodePhase, error: Option<ExecutionError>) {
        self.nodes[idx].rec.error = error.clone();
        self.cache_node_ended(idx);
        self.release_slot(idx);
        self.set_phase(idx, phase);
        let (ev, label) = match phase {
            NodePhase::TimedOut => (node_execution::Phase::TimedOut, "TIMED_OUT"),
            NodePhase::Aborted => (node_execution::Phase::Aborted, "ABORTED"),
            _ => (node_execution::Phase::Failed, "FAILED"),
        };
        self.node_event(idx, ev, error.clone());
        self.drop_task_inputs(idx);
        self.kind_ended(idx, phase, &error);
        m::node_phase(label, self.nodes[idx].kind.label());
        if phase != NodePhase::Aborted {
            let err = match phase {
                NodePhase::TimedOut => {
                    self.exec_error(ErrorKind::User, "Timeout", "Timeout in node")
                }
                _ => error.unwrap_or_else(|| {
                    self.exec_error(ErrorKind::Unknown, "UnknownError", "node failed")
                }),
            };
            self.done_queue.push_back(Done::Node(idx, Err(err)));
        }
    }

    async fn on_node_done(&mut self, idx: usize, result: Result<(), ExecutionError>) {
        if let Some((arr, i)) = self.nodes[idx].array_ctx
            && self.nodes[idx].parent == Some(arr)
        {
            self.array_child_done(arr, i, idx, result);
            return;
        }
        if self.nodes[idx].is_failure_node {
            let owner = self.nodes[idx].parent;
            let original = match owner {
                Some(_) => self.scopes[self.nodes[idx].scope].error.clone(),
                None => self.wf.error.clone(),
            };
            let err = match result {
                Ok(()) => original,
                Err(e) => Some(e),
            };
            match owner {
                Some(o)
                    if matches!(
                        self.nodes[o].phase(),
                        NodePhase::Queued | NodePhase::Running
                    ) =>
                {
                    self.node_terminal(o, NodePhase::Failed, err)
                }
                Some(_) => {}
                None => self.finish_workflow(WorkflowPhase::Failed, err),
            }
            return;
        }
        if let Some(parent) = self.nodes[idx].parent
            && self.nodes[parent].state.branch_child() == Some(idx)
        {
            self.branch_child_done(parent, idx, result).await;
            return;
        }
        let Some(s) = self.nodes[idx].member_of else {
            return;
        };
        self.scopes[s].active = self.scopes[s].active.saturating_sub(1);
        match result {
            Ok(()) => {
                self.scopes[s].succeeded += 1;
                for di in 0..self.nodes[idx].downstream.len() {
                    let d = self.nodes[idx].downstream[di];
                    let n = &mut self.nodes[d];
                    n.pending = n.pending.saturating_sub(1);
                    let ready = n.pending == 0 && n.phase() == NodePhase::NotYetStarted;
                    let branch_child = n.member_of.is_none();
                    if ready && (!branch_child || self.is_waiting_branch_child(d)) {
                        self.make_ready(d);
                    }
                }
            }
            Err(e) => {
                // A branch-taken node waiting for this one can never start: its branch node
                // ends (ABORTED, no error of its own) so the scope does not wait for it.
                let waiting: Vec<usize> = self.nodes[idx]
                    .downstream
                    .iter()
                    .copied()
                    .filter(|&d| self.is_waiting_branch_child(d))
                    .collect();
                for d in waiting {
                    if let Some(p) = self.nodes[d].parent {
                        let reason = format!(
                            "upstream node [{}] of the branch's taken node failed",
                            self.nodes[idx].spec.id
                        );
                        self.abort_node(p, &reason, true);
                    }
                }
                let first = self.scopes[s].error.is_none();
                if first || !self.scopes[s].fail_immediately {
                    self.scopes[s].error = Some(e);
                }
                if self.scopes[s].fail_immediately && first {
                    self.abort_scope(s, AUTO_ABORT_REASON);
                }
            }
        }
        self.check_scope(s);
    }

    fn check_scope(&mut self, s: usize) {
        let sc = &self.scopes[s];
        if sc.done {
            return;
        }
        let result = if sc.error.is_some() && (sc.fail_immediately || sc.active == 0) {
            Err(sc.error.clone().unwrap_or_default())
        } else if sc.succeeded >= sc.total && sc.error.is_none() {
            Ok(())
        } else {
            return;
        };
        self.scopes[s].done = true;
        self.done_queue.push_back(Done::Scope(s, result));
    }

    async fn on_scope_done(&mut self, s: usize, result: Result<(), ExecutionError>) {
        match self.scopes[s].owner {
            None => match result {
                Ok(()) => {
                    let end = self.scopes[s].end;
                    if self.nodes[end].rec.outputs_inline
                        && let Err(e) = self.node_outputs(end).await
                    {
                        // Resumed and the end node's bindings cannot be read again.
                        let err = self.exec_error(ErrorKind::System, "OutputsNotFound", e);
                        self.workflow_failing(err);
                        return;
                    }
                    self.wf.output_path = self.nodes[end].rec.output_path.clone();
                    self.finish_workflow(WorkflowPhase::Succeeded, None);
                }
                Err(e) => self.workflow_failing(e),
            },
            Some(owner) => {
                if !matches!(
                    self.nodes[owner].phase(),
                    NodePhase::Running | NodePhase::Queued
                ) {
                    return;
                }
                match result {
                    Ok(()) => {
                        let end = self.scopes[s].end;
                        let src = self.nodes[end].rec.output_path.clone();
                        let dst = layout::outputs_file(&self.nodes[owner].output_dir());
                        let outputs = self.node_outputs(end).await.ok();
                        let copied = match &outputs {
                            Some(o) => self
                                .shared
                                .put_blob(&dst, Bytes::from(o.encode_to_vec()))
                                .await
                                .map_err(|e| e.to_string()),
                            None => Err(format!("cannot read {src}")),
                        };
                        match copied {
                            Ok(()) => {
                                // A dynamic task's outputs exist only now: cache them here,
                                // as propeller caches a dynamic node when it succeeds.
                                if let Some(o) = &outputs
                                    && self.nodes[owner].kind.task().is_some()
                                {
                                    self.cache_after_success(owner, o).await;
                                }
                                self.node_succeeded(owner, dst, outputs)
                            }
                            Err(e) => {
                                let err = self.exec_error(
                                    ErrorKind::System,
                                    "OutputsNotFound",
                                    format!("failed to copy sub-workflow outputs: {e}"),
                                );
                                self.node_terminal(owner, NodePhase::Failed, Some(err));
                            }
                        }
                    }
                    Err(e) if self.is_dynamic_task(owner) && self.scope_timed_out(s) => {
                        self.retry_dynamic(owner, e)
                    }
                    Err(e) => {
                        // A subworkflow with its own failure node runs it first (what still
                        // runs in it stops); the node fails when it ends.
                        let has_failure_node = self.nodes[owner].kind.is_subworkflow()
                            && self.scopes[s].template.failure_node.is_some();
                        if has_failure_node {
                            self.scopes[s].error.get_or_insert(e);
                            self.abort_scope(s, AUTO_ABORT_REASON);
                            self.create_sub_failure_node(s);
                        } else {
                            self.node_terminal(owner, NodePhase::Failed, Some(e));
                        }
                    }
                }
            }
        }
    }

    fn workflow_failing(&mut self, error: ExecutionError) {
        if self.wf.workflow_phase().is_terminal() {
            return;
        }
        // Nothing may keep running once the workflow fails.
        self.abort_scope(0, AUTO_ABORT_REASON);
        self.wf.error = Some(error.clone());
        self.wf_dirty = true;
        if self.scopes[0].template.failure_node.is_some() {
            self.wf.phase = WorkflowPhase::HandlingFailureNode as i32;
            self.wf_event(workflow_execution::Phase::Failing, Some(error));
            self.create_failure_node();
        } else {
            self.wf_event(workflow_execution::Phase::Failing, Some(error.clone()));
            self.finish_workflow(WorkflowPhase::Failed, Some(error));
        }
    }

    fn finish_workflow(&mut self, phase: WorkflowPhase, error: Option<ExecutionError>) {
        if self.wf.workflow_phase().is_terminal() {
            return;
        }
        self.wf.phase = phase as i32;
        self.wf_dirty = true;
        self.batch.journal.finished = true;
        match phase {
            WorkflowPhase::Succeeded => {
                self.wf_event(workflow_execution::Phase::Succeeding, None);
                self.wf_event(workflow_execution::Phase::Succeeded, None);
                m::execution_phase("SUCCEEDED");
            }
            WorkflowPhase::Aborted => {
                self.wf_event(workflow_execution::Phase::Aborted, None);
                m::execution_phase("ABORTED");
            }
            _ => {
                let err = error.or_else(|| self.wf.error.clone());
                self.wf.error = err.clone();
                self.wf_event(workflow_execution::Phase::Failed, err);
                m::execution_phase("FAILED");
            }
        }
        self.timers.clear();
        self.timer_payload.clear();
    }

    /// Aborts the whole execution with a cause.
    fn abort_execution(&mut self, cause: &str) {
        if self.wf.workflow_phase().is_terminal() {
            return;
        }
        self.wf.abort_cause = Some(cause.to_string());
        self.wf_dirty = true;
        for idx in 0..self.nodes.len() {
            if self.nodes[idx].parent.is_none() {
                self.abort_node(idx, cause, true);
            }
        }
        self.ready.clear();
        self.waiting_parallelism.clear();
        self.finish_workflow(WorkflowPhase::Aborted, None);
    }

    /// Aborts the running members of a scope (and everything under them).
    fn abort_scope(&mut self, s: usize, reason: &str) {
        let members: Vec<usize> = self.scopes[s].by_spec.values().copied().collect();
        for idx in members {
            self.abort_node(idx, reason, true);
        }
        if let Some(f) = self.sub_failure_node(s) {
            self.abort_node(f, reason, true);
        }
    }

    /// Aborts a queued/running node and its children. `final_event`: end it ABORTED.
    fn abort_node(&mut self, idx: usize, reason: &str, final_event: bool) {
        if !matches!(
            self.nodes[idx].phase(),
            NodePhase::Queued | NodePhase::Running
        ) {
            return;
        }
        if let Some(c) = self.nodes[idx].state.branch_child() {
            self.abort_node(c, reason, true);
        }
        if let Some(s) = self.nodes[idx].state.child_scope() {
            self.scopes[s].done = true;
            self.abort_scope(s, reason);
        }
        self.abort_kind(idx, reason);
        if final_event {
            let err = ExecutionError {
                code: "NodeAborted".into(),
                message: reason.to_string(),
                ..Default::default()
            };
            self.node_terminal(idx, NodePhase::Aborted, Some(err));
            if let Some(s) = self.nodes[idx].member_of {
                self.scopes[s].active = self.scopes[s].active.saturating_sub(1);
            }
        }
    }

    // ---------------------------------------------------------------- events

    fn node_exec_id(&self, idx: usize) -> NodeExecutionIdentifier {
        NodeExecutionIdentifier {
            node_id: self.nodes[idx].rec.node_id.clone(),
            execution_id: Some(self.id.clone()),
        }
    }

    fn wf_event(&mut self, phase: workflow_execution::Phase, error: Option<ExecutionError>) {
        let output_result = match phase {
            workflow_execution::Phase::Succeeded
                if self.nodes[self.scopes[0].end].rec.outputs_inline =>
            {
                let end = self.scopes[0].end;
                self.outputs
                    .get(&end)
                    .map(|o| workflow_execution_event::OutputResult::OutputData((**o).clone()))
            }
            workflow_execution::Phase::Succeeded if !self.wf.output_path.is_empty() => {
                let end = self.scopes[0].end;
                match (self.shared.config.inline_outputs, self.outputs.get(&end)) {
                    (true, Some(o)) => Some(workflow_execution_event::OutputResult::OutputData(
                        (**o).clone(),
                    )),
                    _ => Some(workflow_execution_event::OutputResult::OutputUri(
                        self.shared.blob.native_url(&self.wf.output_path),
                    )),
                }
            }
            _ => error.map(workflow_execution_event::OutputResult::Error),
        };
        self.batch.workflow_events.push(WorkflowExecutionEvent {
            execution_id: Some(self.id.clone()),
            producer_id: self.shared.config.producer_id.clone(),
            phase: phase as i32,
            occurred_at: Some(ts(self.now_us())),
            output_result,
        });
    }

    fn node_event(
        &mut self,
        idx: usize,
        phase: node_execution::Phase,
        error: Option<ExecutionError>,
    ) {
        self.node_event_with(idx, phase, error, None);
    }

    fn node_event_with(
        &mut self,
        idx: usize,
        phase: node_execution::Phase,
        error: Option<ExecutionError>,
        dynamic_workflow: Option<flyteidl::event::DynamicWorkflowNodeMetadata>,
    ) {
        let n = &self.nodes[idx];
        if n.array_ctx.is_some() {
            // Array sub-nodes (and what runs under them) report through the array node's
            // task events (`external_resources`), as propeller's event version 0 does.
            return;
        }
        let now = ts(self.now_us());
        let is_dynamic = !n.rec.dynamic_closure_path.is_empty();
        let (parent_node_metadata, retry_group) = match n.parent {
            Some(p) => (
                Some(ParentNodeExecutionMetadata {
                    node_id: self.nodes[p].rec.node_id.clone(),
                }),
                self.nodes[p].rec.attempt.to_string(),
            ),
            None => (None, String::new()),
        };
        let shape = self.event_shape(idx, is_dynamic, dynamic_workflow);
        let output_result = match phase {
            node_execution::Phase::Succeeded if n.rec.outputs_inline => self
                .outputs
                .get(&idx)
                .map(|o| node_execution_event::OutputResult::OutputData((**o).clone())),
            node_execution::Phase::Succeeded if !n.rec.output_path.is_empty() => {
                match (self.shared.config.inline_outputs, self.outputs.get(&idx)) {
                    (true, Some(o)) => Some(node_execution_event::OutputResult::OutputData(
                        (**o).clone(),
                    )),
                    _ => Some(node_execution_event::OutputResult::OutputUri(
                        self.shared.blob.native_url(&n.rec.output_path),
                    )),
                }
            }
            _ => error.map(node_execution_event::OutputResult::Error),
        };
        let ev = NodeExecutionEvent {
            id: Some(self.node_exec_id(idx)),
            producer_id: self.shared.config.producer_id.clone(),
            phase: phase as i32,
            occurred_at: Some(now),
            parent_node_metadata,
            retry_group,
            spec_node_id: n.rec.spec_node_id.clone(),
            node_name: n
                .spec
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            event_version: 1,
            is_parent: shape.is_parent,
            is_dynamic,
            is_array: shape.is_array,
            is_in_dynamic_chain: n.in_dynamic,
            reported_at: Some(now),
            target_entity: shape.target_entity,
            input_value: match n.state.task().filter(|t| t.inputs_in_memory) {
                // A start node has no inputs of its own (no `inputs.pb` is ever written).
                None if matches!(n.kind, Kind::Start) => None,
                // An inline end node's inputs are its outputs.
                None if n.rec.outputs_inline => self
                    .outputs
                    .get(&idx)
                    .map(|i| node_execution_event::InputValue::InputData((**i).clone())),
                // The first event creates the node's row, which keeps them from then on.
                Some(t) if phase == node_execution::Phase::Queued => t
                    .inputs
                    .as_ref()
                    .map(|i| node_execution_event::InputValue::InputData((**i).clone())),
                Some(_) => None,
                None => Some(node_execution_event::InputValue::InputUri(
                    self.shared.blob.native_url(&n.inputs_file()),
                )),
            },
            output_result,
            target_metadata: shape.target_metadata,
            ..Default::default()
        };
        self.batch.node_events.push(ev);
    }
}

/// Writes one batch, retrying transient failures with a capped exponential backoff (logged
/// when the state changes rather than per retry: a store that cannot write for minutes, a
/// full disk, must not flood the log). Dropped, it stops retrying (shutdown).
async fn write_batch(shared: Arc<Shared>, batch: EventBatch) -> Result<(), SinkError> {
    if shared
        .storage_abandoned
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(SinkError::Transient(
            "shutting down while the disk is full; the execution resumes at the next start".into(),
        ));
    }
    let mut backoff = crate::retry::Backoff::new(shared.config.sink_retry_delay);
    loop {
        let t = Instant::now();
        match shared.sink.record(&batch).await {
            Ok(()) => {
                metrics::histogram!(m::SINK_WRITE_TIME).record(t.elapsed().as_secs_f64());
                if backoff.retries() > 0 {
                    let retries = backoff.retries();
                    tracing::info!(retries, "event sink available again; batch recorded");
                }
                return Ok(());
            }
            Err(SinkError::Transient(e)) => {
                metrics::counter!(m::SINK_RETRIES).increment(1);
                if backoff.retries() == 0 {
                    tracing::warn!(error = %e, "event sink unavailable; retrying the batch with backoff");
                } else {
                    let retries = backoff.retries();
                    tracing::debug!(error = %e, retries, "event sink still unavailable");
                }
                backoff.wait().await;
            }
            Err(e) => return Err(e),
        }
    }
}
