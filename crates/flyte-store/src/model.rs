//! Plain records the store reads and writes.

use chrono::{DateTime, Utc};

pub use flyte_core::filters::{Filter, FilterOp, SortDirection, SortKey};
pub use flyte_core::ids::ResourceType;

/// One page of a list, with the token for the next (empty when there is no more).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: String,
}

/// A list request in store terms. `token` is the opaque string a previous page returned
/// (empty for the first page); `limit` is at least 1 (the API layer applies defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    pub sort: Option<SortKey>,
    pub limit: u32,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Encoded `flyteidl.admin.Labels` (empty if none).
    pub labels: Vec<u8>,
    /// `flyteidl.admin.Project.ProjectState`: 0 active, 1 archived, 2 system generated.
    pub state: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey {
    pub resource: ResourceType,
    pub project: String,
    pub domain: String,
    pub name: String,
    pub version: String,
}

/// Which entities a list covers: always one project and domain, optionally one name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityScope {
    pub project: String,
    pub domain: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchPlanState {
    Inactive = 0,
    Active = 1,
}

/// An immutable, versioned task, workflow or launch plan.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRecord {
    pub key: EntityKey,
    /// Digest of the registered content, to tell an identical re-registration from a conflict.
    pub digest: Vec<u8>,
    /// The spec exactly as the client sent it (unknown fields included).
    pub spec: Vec<u8>,
    /// The encoded closure computed at registration (compiled task/workflow, LP closure).
    pub closure: Vec<u8>,
    /// Launch plans only; `None` for tasks and workflows.
    pub state: Option<LaunchPlanState>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamedEntityKey {
    pub resource: ResourceType,
    pub project: String,
    pub domain: String,
    pub name: String,
}

/// `flyteidl.admin.NamedEntityMetadata` in plain terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamedEntityMetadata {
    pub description: String,
    /// `flyteidl.admin.NamedEntityState`: 0 active, 1 archived, 2 system generated.
    pub state: i32,
}

impl LaunchPlanState {
    /// The `flyteidl.admin.LaunchPlanState` value.
    pub fn from_proto(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::Inactive),
            1 => Some(Self::Active),
            _ => None,
        }
    }
}

/// A named entity (a name under which versions are registered) with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedEntityRecord {
    pub key: NamedEntityKey,
    pub metadata: NamedEntityMetadata,
}

/// `task flytesnacks/development/my.task@v1`: how errors name an entity version.
impl std::fmt::Display for EntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}/{}@{}",
            self.resource.as_str(),
            self.project,
            self.domain,
            self.name,
            self.version
        )
    }
}

/// `workflow flytesnacks/development/my.wf`: how errors name a named entity.
impl std::fmt::Display for NamedEntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}/{}",
            self.resource.as_str(),
            self.project,
            self.domain,
            self.name
        )
    }
}

// --- executions ---------------------------------------------------------------------------

/// A workflow execution's identity: project, domain, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ExecutionKey {
    pub project: String,
    pub domain: String,
    pub name: String,
}

/// `execution flytesnacks/development/abc`: how errors name an execution.
impl std::fmt::Display for ExecutionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "execution {}/{}/{}",
            self.project, self.domain, self.name
        )
    }
}

/// One node instance of an execution (`node_id` is the unique id: nested ids for sub-nodes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeExecutionKey {
    pub execution: ExecutionKey,
    pub node_id: String,
}

impl std::fmt::Display for NodeExecutionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node execution {}/{}/{}/{}",
            self.execution.project, self.execution.domain, self.execution.name, self.node_id
        )
    }
}

/// One attempt of one task of one node instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskExecutionKey {
    pub node: NodeExecutionKey,
    /// The task's identifier (`resource` is always [`ResourceType::Task`]).
    pub task: EntityKey,
    pub retry_attempt: u32,
}

impl std::fmt::Display for TaskExecutionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "task execution {}/{}/{}/{} of task {}/{}/{}@{} attempt {}",
            self.node.execution.project,
            self.node.execution.domain,
            self.node.execution.name,
            self.node.node_id,
            self.task.project,
            self.task.domain,
            self.task.name,
            self.task.version,
            self.retry_attempt
        )
    }
}

/// A workflow execution. Payloads are opaque: `spec` is the `admin.ExecutionSpec` as
/// recorded, `closure` the current `admin.ExecutionClosure`; the other fields are the indexed
/// columns lists filter and sort on, kept in step with the closure by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    pub key: ExecutionKey,
    pub launch_plan: Option<EntityKey>,
    pub workflow: Option<EntityKey>,
    /// Single-task executions: the task launched.
    pub task: Option<EntityKey>,
    /// The `core.WorkflowExecution.Phase` name (`QUEUED`, `RUNNING`, …).
    pub phase: String,
    /// `admin.ExecutionMetadata.ExecutionMode`.
    pub mode: i32,
    /// `admin.ExecutionState`: 0 active, 1 archived.
    pub state: i32,
    pub principal: String,
    /// The node that launched this execution (launch-plan nodes), if any.
    pub parent: Option<NodeExecutionKey>,
    pub spec: Vec<u8>,
    pub closure: Vec<u8>,
    /// Where the (merged) inputs were offloaded.
    pub inputs_uri: String,
    /// Where the user's own inputs were offloaded.
    pub user_inputs_uri: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    /// The error code of a failed execution (`closure.error.code`), empty otherwise.
    pub error_code: String,
    /// How long it ran once it ended, in milliseconds; 0 before (as flyteadmin's column).
    pub duration_ms: i64,
    /// `ExecutionSpec.tags`, written when the execution is created (list filter
    /// `admin_tag.name`) and read back sorted, once each, by gets, lists and transitions;
    /// later writes of the execution leave them as they are.
    pub tags: Vec<String>,
    /// The terminal phases ([`crate::NOTIFY_PHASES`]) the execution asks to be notified of,
    /// resolved by the caller at creation; the store writes a notification outbox row only
    /// when the execution reaches one of these. Fixed at creation like the tags.
    pub notify_phases: Vec<String>,
}

/// Which executions a list covers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecutionScope {
    pub project: String,
    pub domain: String,
    /// Only executions with this name (ResourceListRequest.id.name).
    pub name: Option<String>,
    /// Leave out executions launched by a node of another execution.
    pub top_level_only: bool,
}

/// A node execution: `closure` is the `admin.NodeExecutionClosure`, `metadata` the
/// `admin.NodeExecutionMetaData`, `dynamic_workflow` the `core.CompiledWorkflowClosure` a
/// dynamic node produced.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeExecutionRecord {
    pub key: NodeExecutionKey,
    /// Unique id of the parent node (sub-workflow, dynamic, branch children); `None` at top level.
    pub parent_node_id: Option<String>,
    /// The `core.NodeExecution.Phase` name.
    pub phase: String,
    pub closure: Vec<u8>,
    pub metadata: Vec<u8>,
    pub input_uri: String,
    pub dynamic_workflow: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    /// The parent's attempt this node was made under (`NodeExecutionMetaData.retry_group`),
    /// empty at top level: `ListNodeExecutionsForTask` lists one attempt's children.
    pub retry_group: String,
}

/// A task execution: `closure` is the `admin.TaskExecutionClosure`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskExecutionRecord {
    pub key: TaskExecutionKey,
    /// The `core.TaskExecution.Phase` name.
    pub phase: String,
    pub phase_version: u32,
    pub closure: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
}

/// The engine's durable state of one execution, as it is written.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineChange {
    /// The execution's run request (upsert; an abort already requested is kept).
    Started {
        execution: ExecutionKey,
        request: Vec<u8>,
    },
    /// The execution-level state (upsert; needs `Started`).
    Workflow {
        execution: ExecutionKey,
        state: Vec<u8>,
    },
    /// One node instance's state (upsert).
    Node {
        execution: ExecutionKey,
        node_id: String,
        state: Vec<u8>,
    },
    /// An abort was requested with this cause (kept until the engine finishes).
    PendingAbort {
        execution: ExecutionKey,
        cause: String,
    },
    /// The execution reached a terminal phase: its engine state is dropped.
    Finished { execution: ExecutionKey },
}

/// A batch of state changes written in one transaction: execution updates, node and task
/// execution upserts, then engine state, in that order. Within each list, a later record with
/// the same key replaces an earlier one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateBatch {
    /// Updates of existing executions (every column but the key, `created_at` and the
    /// launch entities); `NotFound` if one does not exist.
    pub executions: Vec<ExecutionRecord>,
    /// Upserts (`created_at` is kept on update); the execution must exist.
    pub node_executions: Vec<NodeExecutionRecord>,
    /// Upserts (`created_at` is kept on update); the node execution must exist.
    pub task_executions: Vec<TaskExecutionRecord>,
    pub engine: Vec<EngineChange>,
}

impl StateBatch {
    pub fn is_empty(&self) -> bool {
        self.executions.is_empty()
            && self.node_executions.is_empty()
            && self.task_executions.is_empty()
            && self.engine.is_empty()
    }
}

/// What one read-decide-write of an execution's records reads (see
/// [`crate::MetadataStore::transition`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateRead {
    /// The execution whose row is locked and read.
    pub execution: ExecutionKey,
    /// Its node executions to read (those that exist are returned).
    pub node_ids: Vec<String>,
    /// Read every task execution of these nodes of it.
    pub task_node_ids: Vec<String>,
}

/// The records a [`StateRead`] names, as they are inside the transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSnapshot {
    pub execution: ExecutionRecord,
    pub node_executions: Vec<NodeExecutionRecord>,
    pub task_executions: Vec<TaskExecutionRecord>,
}

/// The decision of a [`crate::MetadataStore::transition`]: the changes to write given the
/// current records (an empty batch writes nothing). It runs inside the transaction, so it
/// must not wait on anything; what it decided beyond the batch it reports through what it
/// captures.
pub type Decide<'a> = Box<dyn FnOnce(StateSnapshot) -> StateBatch + Send + 'a>;

/// What the engine needs to resume one execution after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineExecutionState {
    pub execution: ExecutionKey,
    pub request: Vec<u8>,
    pub workflow: Option<Vec<u8>>,
    pub pending_abort: Option<String>,
    /// (node id, state), in node id order.
    pub nodes: Vec<(String, Vec<u8>)>,
}

// --- signals ------------------------------------------------------------------------------

/// A signal of an execution (a gate node's `wait_for_input` or `approve`): the execution and
/// the signal id, as `core.SignalIdentifier` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SignalKey {
    pub execution: ExecutionKey,
    pub signal_id: String,
}

/// `signal approve-1 of execution flytesnacks/development/abc`: how errors name a signal.
impl std::fmt::Display for SignalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "signal {} of {}", self.signal_id, self.execution)
    }
}

/// A signal: `type` is the encoded `core.LiteralType` it was created with (immutable), `value`
/// the encoded `core.Literal` once set.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRecord {
    pub key: SignalKey,
    pub r#type: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// --- matchable attributes -----------------------------------------------------------------

/// The scope and type of one set of matchable attributes (flyteadmin's `ResourceID`). An empty
/// string means "any": `project`/''/''/'' is project level, `project`/`domain`/''/'' project-
/// domain level, with `workflow` workflow level. `resource_type` is `admin.MatchableResource`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AttributesKey {
    pub project: String,
    pub domain: String,
    pub workflow: String,
    pub launch_plan: String,
    pub resource_type: i32,
}

/// `attributes of type 1 for project flytesnacks, domain development`: how errors name them.
impl std::fmt::Display for AttributesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "attributes of type {} for project {:?}",
            self.resource_type, self.project
        )?;
        for (what, v) in [
            ("domain", &self.domain),
            ("workflow", &self.workflow),
            ("launch plan", &self.launch_plan),
        ] {
            if !v.is_empty() {
                write!(f, ", {what} {v:?}")?;
            }
        }
        Ok(())
    }
}

/// One stored set of matchable attributes: `attributes` is the encoded
/// `admin.MatchingAttributes`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributesRecord {
    pub key: AttributesKey,
    pub attributes: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
