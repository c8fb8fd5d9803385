//! How the engine reports and persists: one [`EventBatch`] per wake of an execution, carrying
//! the flyteidl events exactly as propeller would send them to flyteadmin *and* the engine's
//! own durable state (the journal delta). A sink applies a batch in one transaction, so a
//! crash never separates an event from the state that produced it.
//!
//! Ordering contract: the engine writes a batch *before* it acts on it (starts or aborts task
//! attempts), and never acts on an attempt that no committed batch knows about.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flyteidl::core::{ExecutionError, WorkflowExecutionIdentifier};
use flyteidl::event::{NodeExecutionEvent, TaskExecutionEvent, WorkflowExecutionEvent};

use crate::request::{ExecKey, ExecutionRequest};

/// Everything one wake of one execution produced.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    pub execution: WorkflowExecutionIdentifier,
    /// In order of occurrence within each kind. Apply workflow events, then node events, then
    /// task events (a node's first event precedes its task's; a workflow's RUNNING precedes
    /// its nodes'; terminal workflow events come after the nodes' terminal events in time,
    /// but admin does not depend on that order).
    pub workflow_events: Vec<WorkflowExecutionEvent>,
    pub node_events: Vec<NodeExecutionEvent>,
    pub task_events: Vec<TaskExecutionEvent>,
    /// Engine state to persist in the same transaction.
    pub journal: JournalDelta,
}

impl EventBatch {
    pub fn is_empty(&self) -> bool {
        self.workflow_events.is_empty()
            && self.node_events.is_empty()
            && self.task_events.is_empty()
            && self.journal.is_empty()
    }
}

/// The engine's durable state changes in one batch.
#[derive(Debug, Clone, Default)]
pub struct JournalDelta {
    /// Set in the first batch of a new execution: persist it (as [`ExecutionRequest::to_bytes`])
    /// so [`EngineJournal::load_running`] can return it.
    pub started: Option<Arc<ExecutionRequest>>,
    /// Upserts, keyed by (execution, `NodeStateRecord::node_id`).
    pub nodes: Vec<NodeStateRecord>,
    /// Upsert of the execution-level state.
    pub workflow: Option<WorkflowStateRecord>,
    /// The execution reached a terminal phase: it is no longer "running" (its node records
    /// may be dropped).
    pub finished: bool,
}

impl JournalDelta {
    pub fn is_empty(&self) -> bool {
        self.started.is_none() && self.nodes.is_empty() && self.workflow.is_none() && !self.finished
    }
}

/// Engine-internal phase of a node (a superset of what events show).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum NodePhase {
    NotYetStarted = 0,
    Queued = 1,
    Running = 2,
    Succeeded = 3,
    Failed = 4,
    Skipped = 5,
    TimedOut = 6,
    Aborted = 7,
}

impl NodePhase {
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Queued,
            2 => Self::Running,
            3 => Self::Succeeded,
            4 => Self::Failed,
            5 => Self::Skipped,
            6 => Self::TimedOut,
            7 => Self::Aborted,
            _ => Self::NotYetStarted,
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::TimedOut | Self::Aborted
        )
    }
    pub fn is_success(self) -> bool {
        matches!(self, Self::Succeeded | Self::Skipped)
    }
}

/// Durable state of one node instance (protobuf-encodable: [`NodeStateRecord::to_bytes`]).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeStateRecord {
    /// The node's unique id within the execution (nested ids for sub-nodes).
    #[prost(string, tag = "1")]
    pub node_id: String,
    /// The node's id in its workflow template.
    #[prost(string, tag = "2")]
    pub spec_node_id: String,
    /// Unique id of the parent node (subworkflow / branch), empty at top level.
    #[prost(string, tag = "3")]
    pub parent_node_id: String,
    /// [`NodePhase`] as i32.
    #[prost(int32, tag = "4")]
    pub phase: i32,
    /// Current (or last) attempt number.
    #[prost(uint32, tag = "5")]
    pub attempt: u32,
    #[prost(uint32, tag = "6")]
    pub user_failures: u32,
    #[prost(uint32, tag = "7")]
    pub system_failures: u32,
    /// Branch nodes: spec id of the taken child.
    #[prost(string, tag = "8")]
    pub branch_taken: String,
    /// Store key of the node's `outputs.pb` once succeeded (empty: no outputs file).
    #[prost(string, tag = "9")]
    pub output_path: String,
    #[prost(message, optional, tag = "10")]
    pub error: Option<ExecutionError>,
    /// Unix micros.
    #[prost(int64, tag = "11")]
    pub queued_at_us: i64,
    #[prost(int64, tag = "12")]
    pub started_at_us: i64,
    #[prost(int64, tag = "13")]
    pub updated_at_us: i64,
    /// Start of the current attempt (per-attempt timeout), unix micros.
    #[prost(int64, tag = "14")]
    pub attempt_started_at_us: i64,
    /// The current attempt was handed to a backend (committed before the start call).
    #[prost(bool, tag = "15")]
    pub attempt_in_flight: bool,
    /// Interruptible as decided for the node.
    #[prost(bool, tag = "16")]
    pub interruptible: bool,
    /// Attempt-level phase version of the last task event (for `phase_version`).
    #[prost(uint32, tag = "17")]
    pub task_phase_version: u32,
    /// Dynamic nodes: store key of the compiled dynamic workflow (`dynamic_compiled.pb` next
    /// to `futures.pb`) once built; its child nodes run from it (and resume from it).
    #[prost(string, tag = "18")]
    pub dynamic_closure_path: String,
    /// Array nodes: the number of sub-nodes, once the array started.
    #[prost(uint32, optional, tag = "19")]
    pub array_size: Option<u32>,
    /// Launch-plan nodes: the child execution (its deterministic name, recorded before it is
    /// created).
    #[prost(message, optional, tag = "20")]
    pub child_execution: Option<WorkflowExecutionIdentifier>,
    /// Start and end nodes: the outputs are in no file (`output_path` is empty) but were
    /// small enough to go inline in the node's events (and the workflow's); after a restart
    /// they are derived again (the scope's inputs, the end node's bindings).
    #[prost(bool, tag = "21")]
    pub outputs_inline: bool,
}

impl NodeStateRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        prost::Message::decode(bytes)
    }
    pub fn node_phase(&self) -> NodePhase {
        NodePhase::from_i32(self.phase)
    }
}

/// Engine-internal phase of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum WorkflowPhase {
    Queued = 0,
    Running = 1,
    /// A node failed; waiting for running nodes (FAIL_AFTER_EXECUTABLE_NODES_COMPLETE) or aborting them.
    Failing = 2,
    HandlingFailureNode = 3,
    Succeeded = 4,
    Failed = 5,
    Aborted = 6,
    TimedOut = 7,
}

impl WorkflowPhase {
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Running,
            2 => Self::Failing,
            3 => Self::HandlingFailureNode,
            4 => Self::Succeeded,
            5 => Self::Failed,
            6 => Self::Aborted,
            7 => Self::TimedOut,
            _ => Self::Queued,
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Aborted | Self::TimedOut
        )
    }
}

/// Durable execution-level state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkflowStateRecord {
    /// [`WorkflowPhase`] as i32.
    #[prost(int32, tag = "1")]
    pub phase: i32,
    /// The error that made it fail (kept while the failure node runs).
    #[prost(message, optional, tag = "2")]
    pub error: Option<ExecutionError>,
    /// Abort requested with this cause.
    #[prost(string, optional, tag = "3")]
    pub abort_cause: Option<String>,
    #[prost(int64, tag = "4")]
    pub started_at_us: i64,
    #[prost(int64, tag = "5")]
    pub updated_at_us: i64,
    /// Store key of the workflow's outputs (the end node's `outputs.pb`).
    #[prost(string, tag = "6")]
    pub output_path: String,
}

impl WorkflowStateRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(self)
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        prost::Message::decode(bytes)
    }
    pub fn workflow_phase(&self) -> WorkflowPhase {
        WorkflowPhase::from_i32(self.phase)
    }
}

/// An execution to resume, as the journal kept it.
#[derive(Debug, Clone)]
pub struct RunningExecution {
    pub request: ExecutionRequest,
    /// The last committed execution-level state (None if no batch beyond `started` committed).
    pub workflow: Option<WorkflowStateRecord>,
    /// The last committed record of every node instance the engine wrote.
    pub nodes: Vec<NodeStateRecord>,
    /// An abort the admin accepted (TerminateExecution) that the engine may not have
    /// committed yet: the engine aborts the execution with this cause on resume.
    pub pending_abort: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Try again later (store unavailable, lock contention …).
    #[error("event sink unavailable: {0}")]
    Transient(String),
    /// The batch can never be applied (the execution is gone …); the engine drops it and
    /// stops the execution.
    #[error("event sink rejected the batch: {0}")]
    Rejected(String),
    /// This replica no longer holds the execution's lease (replicas; the write is fenced):
    /// nothing was written. The engine stops the execution here without aborting anything,
    /// as for a lease lost at a heartbeat; its new owner carries on from the journal.
    #[error("execution lease lost: {0}")]
    LeaseLost(String),
}

/// Where batches go. Implemented by the admin (Flyte's event rules applied to the store,
/// one transaction per batch: ALREADY_EXISTS-type duplicates are accepted silently).
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// By reference: the engine keeps the batch to send it again after a transient failure.
    async fn record(&self, batch: &EventBatch) -> Result<(), SinkError>;
}

/// Where the engine finds its running executions after a restart.
#[async_trait]
pub trait EngineJournal: Send + Sync + 'static {
    /// Every execution with a committed `started` and no committed `finished`.
    async fn load_running(&self) -> Result<Vec<RunningExecution>, SinkError>;
}

/// In-memory sink and journal (tests, benchmarks): keeps every event and the journal state.
#[derive(Default)]
pub struct MemorySink {
    inner: Mutex<MemoryState>,
    /// Fail the next N `record` calls with `Transient` (tests of the retry path).
    fail_next: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct MemoryState {
    batches: Vec<EventBatch>,
    executions: HashMap<ExecKey, MemoryExecution>,
}

#[derive(Default, Clone)]
struct MemoryExecution {
    request: Option<ExecutionRequest>,
    workflow: Option<WorkflowStateRecord>,
    nodes: BTreeMap<String, Vec<u8>>,
    finished: bool,
    pending_abort: Option<String>,
}

impl MemorySink {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes the next `n` writes fail transiently.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every committed batch, in commit order.
    pub fn batches(&self) -> Vec<EventBatch> {
        self.inner.lock().unwrap().batches.clone()
    }

    pub fn workflow_events(&self, name: &str) -> Vec<WorkflowExecutionEvent> {
        self.batches()
            .into_iter()
            .filter(|b| b.execution.name == name)
            .flat_map(|b| b.workflow_events)
            .collect()
    }

    pub fn node_events(&self, name: &str) -> Vec<NodeExecutionEvent> {
        self.batches()
            .into_iter()
            .filter(|b| b.execution.name == name)
            .flat_map(|b| b.node_events)
            .collect()
    }

    pub fn task_events(&self, name: &str) -> Vec<TaskExecutionEvent> {
        self.batches()
            .into_iter()
            .filter(|b| b.execution.name == name)
            .flat_map(|b| b.task_events)
            .collect()
    }

    /// The journal's current record of one node.
    pub fn node_record(&self, exec: &ExecKey, node_id: &str) -> Option<NodeStateRecord> {
        let g = self.inner.lock().unwrap();
        g.executions
            .get(exec)?
            .nodes
            .get(node_id)
            .and_then(|b| NodeStateRecord::from_bytes(b).ok())
    }

    /// Records an accepted-but-uncommitted abort, as the admin would on TerminateExecution.
    pub fn set_pending_abort(&self, exec: &ExecKey, cause: &str) {
        let mut g = self.inner.lock().unwrap();
        if let Some(e) = g.executions.get_mut(exec) {
            e.pending_abort = Some(cause.to_string());
        }
    }

    /// Deep copy of the journal (not the event log), as a restarted process would find it.
    pub fn snapshot(&self) -> Arc<Self> {
        let g = self.inner.lock().unwrap();
        Arc::new(Self {
            inner: Mutex::new(MemoryState {
                batches: Vec::new(),
                executions: g.executions.clone(),
            }),
            fail_next: Default::default(),
        })
    }
}

#[async_trait]
impl EventSink for MemorySink {
    async fn record(&self, batch: &EventBatch) -> Result<(), SinkError> {
        use std::sync::atomic::Ordering;
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SinkError::Transient("injected failure".into()));
        }
        let mut g = self.inner.lock().unwrap();
        let key = ExecKey::of(&batch.execution);
        let e = g.executions.entry(key).or_default();
        if let Some(req) = &batch.journal.started {
            e.request = Some((**req).clone());
        }
        for n in &batch.journal.nodes {
            e.nodes.insert(n.node_id.clone(), n.to_bytes());
        }
        if let Some(w) = &batch.journal.workflow {
            e.workflow = Some(w.clone());
        }
        if batch.journal.finished {
            e.finished = true;
        }
        g.batches.push(batch.clone());
        Ok(())
    }
}

#[async_trait]
impl EngineJournal for MemorySink {
    async fn load_running(&self) -> Result<Vec<RunningExecution>, SinkError> {
        let g = self.inner.lock().unwrap();
        let mut out: Vec<_> = g
            .executions
            .values()
            .filter(|e| !e.finished)
            .filter_map(|e| {
                Some(RunningExecution {
                    request: e.request.clone()?,
                    workflow: e.workflow.clone(),
                    nodes: e
                        .nodes
                        .values()
                        .filter_map(|b| NodeStateRecord::from_bytes(b).ok())
                        .collect(),
                    pending_abort: e.pending_abort.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.request.id.name.cmp(&b.request.id.name));
        Ok(out)
    }
}
