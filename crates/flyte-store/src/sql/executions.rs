//! Executions, node executions, task executions and the engine journal.
//!
//! Writes of the engine's rounds go through [`SqlStore::apply_batch`]: one transaction, with
//! node and task executions and engine node state written as multi-row upserts (chunked
//! below the backends' parameter limits, deduplicated by key because PostgreSQL refuses to
//! update one row twice in a statement).

use std::collections::BTreeMap;

use super::backend::{Backend, Col, DbErrorKind, Row, Stmt, Value, classify};
use super::list::{self, Field, FieldType, ListSpec, SqlBuilder, field};
use super::{Reader, SqlStore, corrupt, internal, text, ts};
use crate::{Decide, StateRead, StateSnapshot};
use crate::{
    EngineChange, EngineExecutionState, EntityKey, ExecutionKey, ExecutionRecord, ExecutionScope,
    ListQuery, NodeExecutionKey, NodeExecutionRecord, Page, ResourceType, Result, StateBatch,
    StoreError, TaskExecutionKey, TaskExecutionRecord,
};

/// Ids per `IN (…)` list.
const MAX_IN: usize = 500;

fn opt_text(v: Option<&str>) -> Value {
    v.map_or(Value::Null, text)
}

fn opt_ts(v: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    v.map_or(Value::NullTimestamp, ts)
}

fn opt_bytes(v: Option<Vec<u8>>) -> Value {
    v.map_or(Value::NullBytes, Value::Bytes)
}

fn exec_args(key: &ExecutionKey) -> Vec<Value> {
    vec![text(&key.project), text(&key.domain), text(&key.name)]
}

/// `INSERT INTO table (cols) VALUES (…), (…) ON CONFLICT (conflict) DO UPDATE SET c = excluded.c`
/// for every column not in `conflict` or `keep`, in chunks.
fn upserts(
    max_params: usize,
    table: &str,
    cols: &[&str],
    conflict: &[&str],
    keep: &[&str],
    rows: Vec<Vec<Value>>,
) -> Vec<Stmt> {
    let per_stmt = (max_params / cols.len()).max(1);
    let updates: Vec<String> = cols
        .iter()
        .filter(|c| !conflict.contains(c) && !keep.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let mut stmts = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut b = SqlBuilder::new(&format!(
            "INSERT INTO {table} ({}) VALUES ",
            cols.join(", ")
        ));
        for (i, row) in rows.by_ref().take(per_stmt).enumerate() {
            b.push(if i == 0 { "(" } else { ", (" });
            for (j, v) in row.into_iter().enumerate() {
                if j > 0 {
                    b.push(", ");
                }
                b.bind(v);
            }
            b.push(")");
        }
        b.push(&format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            conflict.join(", "),
            updates.join(", ")
        ));
        stmts.push(b.build());
    }
    stmts
}

/// Keeps the last of several items with the same key, in first-seen order.
fn dedup_last<T, K: Ord + Clone>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut index: BTreeMap<K, usize> = BTreeMap::new();
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        let k = key(&item);
        match index.get(&k) {
            Some(&i) => out[i] = item,
            None => {
                index.insert(k, out.len());
                out.push(item);
            }
        }
    }
    out
}

// --- executions ---------------------------------------------------------------------------

macro_rules! execution_columns {
    () => {
        "project, domain, name, launch_plan_project, launch_plan_domain, launch_plan_name, \
         launch_plan_version, workflow_project, workflow_domain, workflow_name, workflow_version, \
         task_project, task_domain, task_name, task_version, phase, mode, state, principal, \
         parent_execution, parent_node_id, spec, closure, inputs_uri, user_inputs_uri, created_at, \
         updated_at, started_at, error_code, duration_ms, notify_phases"
    };
}
/// The separator of the tags aggregated into one column (refused in tags at creation).
const TAG_SEPARATOR: char = '\u{1f}';
/// Executions with their tags, in one statement: a correlated aggregate over the tags'
/// primary key per row (SQLite 3.44+ and PostgreSQL both have `string_agg`).
macro_rules! execution_select {
    () => {
        concat!(
            "SELECT ",
            execution_columns!(),
            ", (SELECT string_agg(t.tag, '\u{1f}') FROM execution_tags t \
             WHERE t.project = executions.project AND t.domain = executions.domain \
             AND t.name = executions.name) AS tags FROM executions"
        )
    };
}
const EXECUTION_SELECT: &str = execution_select!();
/// The same columns without the tags' aggregate, for the engine's transitions: they lock the
/// row once per event batch and never look at the tags (kept in their own table, untouched).
const EXECUTION_SELECT_UNTAGGED: &str = concat!(
    "SELECT ",
    execution_columns!(),
    ", NULL AS tags FROM executions"
);
const EXECUTION_COLS: &[Col] = &[
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Int,
    Col::Int,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Bytes,
    Col::Bytes,
    Col::Text,
    Col::Text,
    Col::Timestamp,
    Col::Timestamp,
    Col::Timestamp,
    Col::Text,
    Col::BigInt,
    Col::Text,
    Col::Text,
];

fn entity_values(key: Option<&EntityKey>) -> [Value; 4] {
    match key {
        Some(k) => [
            text(&k.project),
            text(&k.domain),
            text(&k.name),
            text(&k.version),
        ],
        None => [Value::Null, Value::Null, Value::Null, Value::Null],
    }
}

fn read_entity(r: &mut Reader, resource: ResourceType, what: &str) -> Result<Option<EntityKey>> {
    let project = r.opt_text(what)?;
    let domain = r.opt_text(what)?;
    let name = r.opt_text(what)?;
    let version = r.opt_text(what)?;
    Ok(match (project, domain, name, version) {
        (Some(project), Some(domain), Some(name), Some(version)) => Some(EntityKey {
            resource,
            project,
            domain,
            name,
            version,
        }),
        _ => None,
    })
}

/// The parent execution is kept as `project/domain/name` (none of them contains a `/`).
fn parent_execution_text(parent: &NodeExecutionKey) -> String {
    let e = &parent.execution;
    format!("{}/{}/{}", e.project, e.domain, e.name)
}

fn execution_from_row(row: Row) -> Result<ExecutionRecord> {
    let mut r = Reader::new(row);
    let key = ExecutionKey {
        project: r.text("project")?,
        domain: r.text("domain")?,
        name: r.text("name")?,
    };
    let launch_plan = read_entity(&mut r, ResourceType::LaunchPlan, "launch_plan")?;
    let workflow = read_entity(&mut r, ResourceType::Workflow, "workflow")?;
    let task = read_entity(&mut r, ResourceType::Task, "task")?;
    let phase = r.text("phase")?;
    let mode = r.int("mode")?;
    let state = r.int("state")?;
    let principal = r.text("principal")?;
    let parent_execution = r.opt_text("parent_execution")?;
    let parent_node_id = r.opt_text("parent_node_id")?;
    let parent = match (parent_execution, parent_node_id) {
        (Some(exec), Some(node_id)) => {
            let mut parts = exec.splitn(3, '/');
            let (Some(project), Some(domain), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt("parent_execution", &Value::Text(exec.clone())));
            };
            Some(NodeExecutionKey {
                execution: ExecutionKey {
                    project: project.to_owned(),
                    domain: domain.to_owned(),
                    name: name.to_owned(),
                },
                node_id,
            })
        }
        _ => None,
    };
    Ok(ExecutionRecord {
        key,
        launch_plan,
        workflow,
        task,
        phase,
        mode,
        state,
        principal,
        parent,
        spec: r.bytes("spec")?,
        closure: r.bytes("closure")?,
        inputs_uri: r.text("inputs_uri")?,
        user_inputs_uri: r.text("user_inputs_uri")?,
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
        started_at: r.opt_timestamp("started_at")?,
        error_code: r.text("error_code")?,
        duration_ms: r.bigint("duration_ms")?,
        notify_phases: split_list(&r.text("notify_phases")?, ','),
        tags: {
            let mut tags = split_list(&r.opt_text("tags")?.unwrap_or_default(), TAG_SEPARATOR);
            tags.sort_unstable();
            tags
        },
    })
}

/// The non-empty parts of `joined`.
fn split_list(joined: &str, separator: char) -> Vec<String> {
    joined
        .split(separator)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `notify_phases` as stored: `,SUCCEEDED,FAILED,` (matched with `LIKE '%,PHASE,%'`).
fn joined_phases(phases: &[String]) -> String {
    if phases.is_empty() {
        return String::new();
    }
    format!(",{},", phases.join(","))
}

/// Sort and filter fields of executions; filters also take the tags ([`EXECUTION_FILTERS`]).
macro_rules! execution_fields {
    ($($extra:expr),*) => {
        &[
            field("name", FieldType::Text),
            field("phase", FieldType::Text),
            field("mode", FieldType::Int),
            field("state", FieldType::Int),
            field("principal", FieldType::Text),
            field("created_at", FieldType::Timestamp),
            field("updated_at", FieldType::Timestamp),
            field("started_at", FieldType::Timestamp),
            field("launch_plan_name", FieldType::Text),
            field("launch_plan_version", FieldType::Text),
            field("workflow_name", FieldType::Text),
            field("workflow_version", FieldType::Text),
            field("task_name", FieldType::Text),
            field("task_version", FieldType::Text),
            field("error_code", FieldType::Text),
            // Flyte filters and sorts durations in seconds.
            Field {
                name: "duration",
                expr: "(duration_ms / 1000)",
                ty: FieldType::Int,
            },
            $($extra),*
        ]
    };
}
const EXECUTION_FIELDS: &[list::Field] = execution_fields!();
const EXECUTION_FILTERS: &[list::Field] = execution_fields!(Field {
    name: "admin_tag",
    expr: "execution_tags",
    ty: FieldType::Tag,
});
const EXECUTIONS: ListSpec = ListSpec {
    what: "executions",
    prefixes: &["execution"],
    filters: EXECUTION_FILTERS,
    sorts: EXECUTION_FIELDS,
    default_sort: "created_at",
    tiebreak: "id",
};

fn update_execution_stmt(e: ExecutionRecord) -> Stmt {
    let mut args = exec_args(&e.key);
    args.extend([
        Value::Text(e.phase),
        Value::Int(e.mode),
        Value::Int(e.state),
        Value::Text(e.principal),
        Value::Bytes(e.spec),
        Value::Bytes(e.closure),
        Value::Text(e.inputs_uri),
        Value::Text(e.user_inputs_uri),
        ts(e.updated_at),
        opt_ts(e.started_at),
        Value::Text(e.error_code),
        Value::BigInt(e.duration_ms),
    ]);
    Stmt::new(
        "UPDATE executions SET phase = $4, mode = $5, state = $6, principal = $7, spec = $8, \
         closure = $9, inputs_uri = $10, user_inputs_uri = $11, updated_at = $12, started_at = $13, \
         error_code = $14, duration_ms = $15 WHERE project = $1 AND domain = $2 AND name = $3",
        args,
    )
}

// --- node executions ----------------------------------------------------------------------

const NODE_SELECT: &str = "SELECT project, domain, execution_name, node_id, parent_node_id, phase, closure, \
     metadata, input_uri, dynamic_workflow, created_at, updated_at, started_at, retry_group FROM node_executions";
/// As NODE_SELECT without the dynamic workflow (NULL in its place): a page of node executions
/// never needs it, and a 100,000-node `@dynamic` node's is ~20 MB.
const NODE_LIST_SELECT: &str = "SELECT project, domain, execution_name, node_id, parent_node_id, phase, closure, \
     metadata, input_uri, CAST(NULL AS BYTEA) AS dynamic_workflow, created_at, updated_at, started_at, retry_group FROM node_executions";
const NODE_COLS: &[Col] = &[
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Bytes,
    Col::Bytes,
    Col::Text,
    Col::Bytes,
    Col::Timestamp,
    Col::Timestamp,
    Col::Timestamp,
    Col::Text,
];
const NODE_INSERT_COLS: &[&str] = &[
    "project",
    "domain",
    "execution_name",
    "node_id",
    "parent_node_id",
    "phase",
    "closure",
    "metadata",
    "input_uri",
    "dynamic_workflow",
    "created_at",
    "updated_at",
    "started_at",
    "retry_group",
];
const NODE_KEY_COLS: &[&str] = &["project", "domain", "execution_name", "node_id"];

fn node_from_row(row: Row) -> Result<NodeExecutionRecord> {
    let mut r = Reader::new(row);
    Ok(NodeExecutionRecord {
        key: NodeExecutionKey {
            execution: ExecutionKey {
                project: r.text("project")?,
                domain: r.text("domain")?,
                name: r.text("execution_name")?,
            },
            node_id: r.text("node_id")?,
        },
        parent_node_id: r.opt_text("parent_node_id")?,
        phase: r.text("phase")?,
        closure: r.bytes("closure")?,
        metadata: r.bytes("metadata")?,
        input_uri: r.text("input_uri")?,
        dynamic_workflow: r.opt_bytes("dynamic_workflow")?,
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
        started_at: r.opt_timestamp("started_at")?,
        retry_group: r.text("retry_group")?,
    })
}

fn node_row(n: NodeExecutionRecord) -> Vec<Value> {
    let e = n.key.execution;
    vec![
        Value::Text(e.project),
        Value::Text(e.domain),
        Value::Text(e.name),
        Value::Text(n.key.node_id),
        opt_text(n.parent_node_id.as_deref()),
        Value::Text(n.phase),
        Value::Bytes(n.closure),
        Value::Bytes(n.metadata),
        Value::Text(n.input_uri),
        opt_bytes(n.dynamic_workflow),
        ts(n.created_at),
        ts(n.updated_at),
        opt_ts(n.started_at),
        Value::Text(n.retry_group),
    ]
}

const NODE_FIELDS: &[list::Field] = &[
    field("node_id", FieldType::Text),
    field("phase", FieldType::Text),
    field("created_at", FieldType::Timestamp),
    field("updated_at", FieldType::Timestamp),
    field("started_at", FieldType::Timestamp),
];
/// Filters also take the parent attempt a child was made under (ListNodeExecutionsForTask).
const NODE_FILTERS: &[list::Field] = &[
    field("node_id", FieldType::Text),
    field("phase", FieldType::Text),
    field("created_at", FieldType::Timestamp),
    field("updated_at", FieldType::Timestamp),
    field("started_at", FieldType::Timestamp),
    field("retry_group", FieldType::Text),
];
const NODE_EXECUTIONS: ListSpec = ListSpec {
    what: "node executions",
    prefixes: &["node_execution"],
    filters: NODE_FILTERS,
    sorts: NODE_FIELDS,
    default_sort: "created_at",
    tiebreak: "id",
};

// --- task executions ----------------------------------------------------------------------

const TASK_SELECT: &str = "SELECT project, domain, execution_name, node_id, task_project, task_domain, task_name, \
     task_version, retry_attempt, phase, phase_version, closure, created_at, updated_at, started_at \
     FROM task_executions";
const TASK_COLS: &[Col] = &[
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Int,
    Col::Text,
    Col::Int,
    Col::Bytes,
    Col::Timestamp,
    Col::Timestamp,
    Col::Timestamp,
];
const TASK_INSERT_COLS: &[&str] = &[
    "project",
    "domain",
    "execution_name",
    "node_id",
    "task_project",
    "task_domain",
    "task_name",
    "task_version",
    "retry_attempt",
    "phase",
    "phase_version",
    "closure",
    "created_at",
    "updated_at",
    "started_at",
];
const TASK_KEY_COLS: &[&str] = &[
    "project",
    "domain",
    "execution_name",
    "node_id",
    "task_project",
    "task_domain",
    "task_name",
    "task_version",
    "retry_attempt",
];

fn task_from_row(row: Row) -> Result<TaskExecutionRecord> {
    let mut r = Reader::new(row);
    let node = NodeExecutionKey {
        execution: ExecutionKey {
            project: r.text("project")?,
            domain: r.text("domain")?,
            name: r.text("execution_name")?,
        },
        node_id: r.text("node_id")?,
    };
    let task = EntityKey {
        resource: ResourceType::Task,
        project: r.text("task_project")?,
        domain: r.text("task_domain")?,
        name: r.text("task_name")?,
        version: r.text("task_version")?,
    };
    let retry_attempt = r.int("retry_attempt")? as u32;
    Ok(TaskExecutionRecord {
        key: TaskExecutionKey {
            node,
            task,
            retry_attempt,
        },
        phase: r.text("phase")?,
        phase_version: r.int("phase_version")? as u32,
        closure: r.bytes("closure")?,
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
        started_at: r.opt_timestamp("started_at")?,
    })
}

fn task_key_values(k: &TaskExecutionKey) -> Vec<Value> {
    let e = &k.node.execution;
    vec![
        text(&e.project),
        text(&e.domain),
        text(&e.name),
        text(&k.node.node_id),
        text(&k.task.project),
        text(&k.task.domain),
        text(&k.task.name),
        text(&k.task.version),
        Value::Int(k.retry_attempt as i32),
    ]
}

fn task_row(t: TaskExecutionRecord) -> Vec<Value> {
    let mut row = task_key_values(&t.key);
    row.extend([
        Value::Text(t.phase),
        Value::Int(t.phase_version as i32),
        Value::Bytes(t.closure),
        ts(t.created_at),
        ts(t.updated_at),
        opt_ts(t.started_at),
    ]);
    row
}

const TASK_FIELDS: &[list::Field] = &[
    field("phase", FieldType::Text),
    field("retry_attempt", FieldType::Int),
    field("task_name", FieldType::Text),
    field("task_version", FieldType::Text),
    field("created_at", FieldType::Timestamp),
    field("updated_at", FieldType::Timestamp),
    field("started_at", FieldType::Timestamp),
];
const TASK_EXECUTIONS: ListSpec = ListSpec {
    what: "task executions",
    prefixes: &["task_execution"],
    filters: TASK_FIELDS,
    sorts: TASK_FIELDS,
    default_sort: "created_at",
    tiebreak: "id",
};

/// One creation's statements in `tx`: the execution's row (its project checked by the same
/// statement), its tags and its engine request.
async fn insert_execution<B: Backend>(
    tx: &mut B::Tx,
    e: ExecutionRecord,
    engine_request: Option<Vec<u8>>,
) -> Result<()> {
    let key = e.key.clone();
    let mut args = exec_args(&e.key);
    args.extend(entity_values(e.launch_plan.as_ref()));
    args.extend(entity_values(e.workflow.as_ref()));
    args.extend(entity_values(e.task.as_ref()));
    args.extend([
        Value::Text(e.phase),
        Value::Int(e.mode),
        Value::Int(e.state),
        Value::Text(e.principal),
    ]);
    match &e.parent {
        Some(p) => args.extend([Value::Text(parent_execution_text(p)), text(&p.node_id)]),
        None => args.extend([Value::Null, Value::Null]),
    }
    args.extend([
        Value::Bytes(e.spec),
        Value::Bytes(e.closure),
        Value::Text(e.inputs_uri),
        Value::Text(e.user_inputs_uri),
        ts(e.created_at),
        ts(e.updated_at),
        opt_ts(e.started_at),
        Value::Text(e.error_code),
        Value::BigInt(e.duration_ms),
        Value::Text(joined_phases(&e.notify_phases)),
    ]);
    if let Some(tag) = e.tags.iter().find(|t| t.contains(TAG_SEPARATOR)) {
        return Err(StoreError::InvalidArgument(format!(
            "tag {tag:?} contains the control character U+001F; tags cannot contain it"
        )));
    }
    // The project check rides on the insert (no read before it): an unknown project fails
    // its foreign key, an archived one selects no row.
    args.push(text(&key.project));
    let stmt = Stmt::new(
        concat!(
            "INSERT INTO executions (",
            execution_columns!(),
            ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31 \
                 WHERE NOT EXISTS (SELECT 1 FROM projects WHERE identifier = $32 AND state = 1)"
        ),
        args,
    );
    let inserted = B::tx_execute(tx, stmt)
        .await
        .map_err(|err| super::write_error(err, || key.to_string(), &key.project))?;
    if inserted == 0 {
        return Err(StoreError::InvalidArgument(format!(
            "project {} is archived",
            key.project
        )));
    }
    let mut tags = e.tags;
    tags.sort_unstable();
    tags.dedup();
    for tag in tags {
        let mut args = exec_args(&key);
        args.push(Value::Text(tag));
        B::tx_execute(
            tx,
            Stmt::new(
                "INSERT INTO execution_tags (project, domain, name, tag) \
                     VALUES ($1, $2, $3, $4)",
                args,
            ),
        )
        .await
        .map_err(internal)?;
    }
    if let Some(request) = engine_request {
        let mut args = exec_args(&key);
        args.push(Value::Bytes(request));
        B::tx_execute(
                tx,
                Stmt::new(
                    "INSERT INTO engine_executions (project, domain, name, request) VALUES ($1, $2, $3, $4)",
                    args,
                ),
            )
            .await
            .map_err(internal)?;
    }
    Ok(())
}

/// Creations waiting for a group commit (`create_execution_grouped`).
#[derive(Default)]
pub(super) struct Creations {
    next: std::sync::atomic::AtomicU64,
    queue: std::sync::Mutex<Vec<PendingCreation>>,
}

struct PendingCreation {
    id: u64,
    execution: ExecutionRecord,
    engine_request: Option<Vec<u8>>,
    reply: tokio::sync::oneshot::Sender<Result<()>>,
}

/// A queued creation; dropped, it leaves the queue if no batch has taken it.
struct Queued<'a> {
    creations: &'a Creations,
    id: u64,
}

impl Creations {
    fn push(
        &self,
        execution: ExecutionRecord,
        engine_request: Option<Vec<u8>>,
        reply: tokio::sync::oneshot::Sender<Result<()>>,
    ) -> Queued<'_> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock().push(PendingCreation {
            id,
            execution,
            engine_request,
            reply,
        });
        Queued {
            creations: self,
            id,
        }
    }

    fn take_all(&self) -> Vec<PendingCreation> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PendingCreation>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.creations.lock().retain(|p| p.id != self.id);
    }
}

fn lost_creation() -> StoreError {
    StoreError::Internal("the write transaction of this creation was abandoned".into())
}

/// A failure of a whole batch's transaction, told to each of its creations.
fn shared_error(err: &StoreError) -> StoreError {
    match err {
        StoreError::StorageFull(reason) => StoreError::StorageFull(reason.clone()),
        other => StoreError::Internal(other.to_string().into()),
    }
}

/// A failed write in a batch: a missing execution or node execution (foreign keys) is
/// `NotFound(what)`, a taken key `AlreadyExists(what)`.
fn batch_error(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match classify(&err) {
        DbErrorKind::ForeignKeyViolation => StoreError::NotFound(what()),
        DbErrorKind::UniqueViolation => StoreError::AlreadyExists(what()),
        DbErrorKind::StorageFull | DbErrorKind::Other => internal(err),
    }
}

impl<B: Backend> SqlStore<B> {
    pub(super) async fn create_execution_impl(
        &self,
        e: ExecutionRecord,
        engine_request: Option<Vec<u8>>,
    ) -> Result<()> {
        if B::GROUP_COMMIT {
            return self.create_execution_grouped(e, engine_request).await;
        }
        let mut tx = self.begin().await?;
        insert_execution::<B>(&mut tx, e, engine_request).await?;
        B::commit(tx).await.map_err(internal)
    }

    /// Group commit (SQLite): concurrent creations share one write transaction and one
    /// COMMIT, each inside its own savepoint, so one that fails (a taken name, an unknown
    /// project) is rolled back alone and gets its own error while the others are stored.
    ///
    /// Each creation queues itself, then waits for the writer turn or its answer, whichever
    /// comes first. The one that gets the turn writes every creation queued by then, its
    /// own included, commits, and answers the others; a creation is answered only after the
    /// COMMIT that stored it. Nothing waits for a batch to fill: an idle server's creation
    /// takes the turn at once and commits alone, and under load a batch is what queued up
    /// while the previous writer held the turn. A creation whose caller gives up while it
    /// waits is taken off the queue (`Queued`'s drop), so it is either written in a batch
    /// already under way or not at all.
    async fn create_execution_grouped(
        &self,
        e: ExecutionRecord,
        engine_request: Option<Vec<u8>>,
    ) -> Result<()> {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let queued = self.creations.push(e, engine_request, reply);
        let tx = tokio::select! {
            biased;
            result = &mut answer => {
                return result.unwrap_or_else(|_| Err(lost_creation()));
            }
            tx = self.begin() => tx,
        };
        // Our answer may have come with the turn: a batch before ours took us.
        if let Ok(result) = answer.try_recv() {
            return result;
        }
        let mut tx = tx?;
        let batch = self.creations.take_all();
        drop(queued);
        if batch.is_empty() {
            // Ours is in a batch whose writer has just committed and is answering.
            drop(tx);
            return answer.await.unwrap_or_else(|_| Err(lost_creation()));
        }
        let mut answers = Vec::with_capacity(batch.len());
        let mut failed = None;
        for pending in batch {
            let result = async {
                B::tx_execute(&mut tx, Stmt::new("SAVEPOINT creation", Vec::new()))
                    .await
                    .map_err(internal)?;
                let result =
                    insert_execution::<B>(&mut tx, pending.execution, pending.engine_request).await;
                if result.is_err() {
                    B::tx_execute(&mut tx, Stmt::new("ROLLBACK TO creation", Vec::new()))
                        .await
                        .map_err(internal)?;
                }
                B::tx_execute(&mut tx, Stmt::new("RELEASE creation", Vec::new()))
                    .await
                    .map_err(internal)?;
                Ok::<_, StoreError>(result)
            }
            .await;
            match result {
                Ok(own) => answers.push((pending.reply, own)),
                Err(err) => {
                    // The transaction itself failed: nothing of the batch is kept.
                    answers.push((pending.reply, Err(shared_error(&err))));
                    failed = Some(err);
                    break;
                }
            }
        }
        let committed = match failed {
            Some(err) => Err(err),
            None => B::commit(tx).await.map_err(internal),
        };
        for (reply, result) in answers {
            let result = match &committed {
                Ok(()) => result,
                Err(err) => result.and(Err(shared_error(err))),
            };
            // A caller that gave up after its creation was taken has no receiver left.
            let _ = reply.send(result);
        }
        // Ours was in this batch, or in one that took it before ours began.
        answer.await.unwrap_or_else(|_| Err(lost_creation()))
    }

    pub(super) async fn get_execution_impl(&self, key: &ExecutionKey) -> Result<ExecutionRecord> {
        let stmt = Stmt::new(
            concat!(
                execution_select!(),
                " WHERE project = $1 AND domain = $2 AND name = $3"
            ),
            exec_args(key),
        );
        execution_from_row(
            self.fetch_one(stmt, EXECUTION_COLS, || key.to_string())
                .await?,
        )
    }

    pub(super) async fn list_executions_impl(
        &self,
        scope: &ExecutionScope,
        query: &ListQuery,
    ) -> Result<Page<ExecutionRecord>> {
        let paging = list::parse_paging(query)?;
        let mut b = SqlBuilder::new(EXECUTION_SELECT);
        b.push(" WHERE project = ")
            .bind(text(&scope.project))
            .push(" AND domain = ")
            .bind(text(&scope.domain));
        if let Some(name) = &scope.name {
            b.push(" AND name = ").bind(text(name));
        }
        if scope.top_level_only {
            b.push(" AND parent_node_id IS NULL");
        }
        list::push_filters(&mut b, &EXECUTIONS, &query.filters)?;
        list::push_order_and_page(&mut b, &EXECUTIONS, query, paging)?;
        let rows = self
            .backend
            .fetch(b.build(), EXECUTION_COLS)
            .await
            .map_err(internal)?;
        let (rows, next_token) = paging.page(rows);
        let items = rows
            .into_iter()
            .map(execution_from_row)
            .collect::<Result<_>>()?;
        Ok(Page { items, next_token })
    }

    pub(super) async fn apply_batch(&self, batch: StateBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        self.write_batch(&mut tx, batch).await?;
        B::commit(tx).await.map_err(internal)
    }

    async fn write_batch(&self, tx: &mut B::Tx, batch: StateBatch) -> Result<()> {
        let StateBatch {
            executions,
            node_executions,
            task_executions,
            engine,
        } = batch;

        for e in dedup_last(executions, |e| e.key.clone()) {
            let key = e.key.clone();
            // The notification outbox row, in this transaction (docs/notifications.md).
            let enqueue = super::notifications::enqueue_stmt(&e);
            let n = B::tx_execute(tx, update_execution_stmt(e))
                .await
                .map_err(internal)?;
            if n == 0 {
                return Err(StoreError::NotFound(key.to_string()));
            }
            if let Some(stmt) = enqueue {
                B::tx_execute(tx, stmt).await.map_err(internal)?;
            }
        }

        if !node_executions.is_empty() {
            let first = node_executions[0].key.execution.clone();
            let rows: Vec<_> = dedup_last(node_executions, |n| n.key.clone())
                .into_iter()
                .map(node_row)
                .collect();
            for stmt in upserts(
                B::BATCH_PARAMS,
                "node_executions",
                NODE_INSERT_COLS,
                NODE_KEY_COLS,
                &["created_at"],
                rows,
            ) {
                B::tx_execute(tx, stmt)
                    .await
                    .map_err(|err| batch_error(err, || first.to_string()))?;
            }
        }

        if !task_executions.is_empty() {
            let first = task_executions[0].key.node.clone();
            let rows: Vec<_> = dedup_last(task_executions, |t| t.key.clone())
                .into_iter()
                .map(task_row)
                .collect();
            for stmt in upserts(
                B::BATCH_PARAMS,
                "task_executions",
                TASK_INSERT_COLS,
                TASK_KEY_COLS,
                &["created_at"],
                rows,
            ) {
                B::tx_execute(tx, stmt)
                    .await
                    .map_err(|err| batch_error(err, || first.to_string()))?;
            }
        }

        self.apply_engine(tx, engine).await
    }

    /// One read-decide-write: the execution's row is locked first (PostgreSQL `FOR UPDATE`;
    /// a SQLite write transaction holds the database's write lock from `BEGIN IMMEDIATE`), so
    /// every transition of one execution waits for the one before it. Node and task rows need
    /// no lock of their own: only transitions of their execution decide on them.
    pub(super) async fn transition_impl(
        &self,
        read: StateRead,
        fence: Option<&str>,
        decide: Decide<'_>,
    ) -> Result<()> {
        let StateRead {
            execution: key,
            node_ids,
            task_node_ids,
        } = read;
        let mut tx = self.begin().await?;
        // On PostgreSQL the fence rides on the statement that locks the execution row (one
        // round trip less per batch): the row comes back only if `owner` holds an unexpired
        // lease, which stays share-locked until the commit (see `check_lease`).
        let folded = fence.filter(|_| !B::LOCK_ROWS.is_empty());
        let mut args = exec_args(&key);
        let lease = match folded {
            Some(owner) => {
                args.push(Value::Text(owner.to_owned()));
                " AND EXISTS (SELECT 1 FROM execution_leases WHERE project = $1 AND domain = $2 \
                 AND name = $3 AND owner_id = $4 AND expires_at > clock_timestamp() FOR SHARE)"
            }
            None => "",
        };
        let lock = Stmt {
            sql: format!(
                "{EXECUTION_SELECT_UNTAGGED} WHERE project = $1 AND domain = $2 AND name = $3{lease}{}",
                B::LOCK_ROWS
            )
            .into(),
            args,
        };
        let row = match B::tx_fetch(&mut tx, lock, EXECUTION_COLS)
            .await
            .map_err(internal)?
            .pop()
        {
            Some(row) => row,
            None if folded.is_some() => {
                // Tell a missing execution from a lost lease (the failure path only).
                let exists = Stmt {
                    sql: "SELECT name FROM executions WHERE project = $1 AND domain = $2 \
                          AND name = $3"
                        .into(),
                    args: exec_args(&key),
                };
                let found = B::tx_fetch(&mut tx, exists, &[Col::Text])
                    .await
                    .map_err(internal)?;
                return Err(if found.is_empty() {
                    StoreError::NotFound(key.to_string())
                } else {
                    StoreError::LeaseLost(key.to_string())
                });
            }
            None => return Err(StoreError::NotFound(key.to_string())),
        };
        let execution = execution_from_row(row)?;
        if let Some(owner) = fence.filter(|_| folded.is_none()) {
            self.check_lease(&mut tx, &key, owner).await?;
        }
        let mut node_executions = Vec::with_capacity(node_ids.len());
        for chunk in node_ids.chunks(MAX_IN) {
            let mut b = SqlBuilder::new(NODE_SELECT);
            push_exec_where(&mut b, &key);
            push_in(&mut b, "node_id", chunk);
            for row in B::tx_fetch(&mut tx, b.build(), NODE_COLS)
                .await
                .map_err(internal)?
            {
                node_executions.push(node_from_row(row)?);
            }
        }
        let mut task_executions = Vec::new();
        for chunk in task_node_ids.chunks(MAX_IN) {
            let mut b = SqlBuilder::new(TASK_SELECT);
            push_exec_where(&mut b, &key);
            push_in(&mut b, "node_id", chunk);
            for row in B::tx_fetch(&mut tx, b.build(), TASK_COLS)
                .await
                .map_err(internal)?
            {
                task_executions.push(task_from_row(row)?);
            }
        }
        let batch = decide(StateSnapshot {
            execution,
            node_executions,
            task_executions,
        });
        if batch.is_empty() {
            // Dropping the transaction rolls it back: nothing was written.
            return Ok(());
        }
        // The lock covers this execution only.
        let foreign = batch
            .executions
            .iter()
            .map(|e| &e.key)
            .chain(batch.node_executions.iter().map(|n| &n.key.execution))
            .chain(batch.task_executions.iter().map(|t| &t.key.node.execution))
            .find(|k| **k != key);
        if let Some(other) = foreign {
            return Err(StoreError::InvalidArgument(format!(
                "a transition of {key} cannot change {other}"
            )));
        }
        crate::metrics::batch(&batch);
        self.write_batch(&mut tx, batch).await?;
        B::commit(tx).await.map_err(internal)
    }

    /// The fence of a transition as its own statement (SQLite; PostgreSQL folds the same
    /// check into the execution row's lock): `owner` holds `key`'s lease, unexpired by the
    /// database's clock (replicas' clocks may disagree). On PostgreSQL the lease row stays share-locked
    /// until the commit, so a takeover (`FOR UPDATE SKIP LOCKED`, or a claim's upsert) waits
    /// or skips it; on SQLite the write transaction already excludes every other writer.
    async fn check_lease(&self, tx: &mut B::Tx, key: &ExecutionKey, owner: &str) -> Result<()> {
        let (now, lock) = if B::LOCK_ROWS.is_empty() {
            // SQLite stores microseconds since the epoch.
            (
                "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
                "",
            )
        } else {
            // clock_timestamp(), not now(): the transaction may have waited for the row lock.
            ("clock_timestamp()", " FOR SHARE")
        };
        let mut args = exec_args(key);
        args.push(Value::Text(owner.to_owned()));
        let stmt = Stmt {
            sql: format!(
                "SELECT owner_id FROM execution_leases WHERE project = $1 AND domain = $2 \
                 AND name = $3 AND owner_id = $4 AND expires_at > {now}{lock}"
            )
            .into(),
            args,
        };
        let rows = B::tx_fetch(tx, stmt, &[Col::Text])
            .await
            .map_err(internal)?;
        if rows.is_empty() {
            return Err(StoreError::LeaseLost(key.to_string()));
        }
        Ok(())
    }

    async fn apply_engine(&self, tx: &mut B::Tx, changes: Vec<EngineChange>) -> Result<()> {
        let mut nodes: Vec<(ExecutionKey, String, Vec<u8>)> = Vec::new();
        let mut finished: Vec<ExecutionKey> = Vec::new();
        for change in changes {
            match change {
                EngineChange::Started { execution, request } => {
                    let mut args = exec_args(&execution);
                    args.push(Value::Bytes(request));
                    B::tx_execute(
                        tx,
                        Stmt::new(
                            "INSERT INTO engine_executions (project, domain, name, request) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (project, domain, name) DO UPDATE SET request = excluded.request",
                            args,
                        ),
                    )
                    .await
                    .map_err(|err| batch_error(err, || execution.to_string()))?;
                    finished.retain(|f| f != &execution);
                }
                EngineChange::Workflow { execution, state } => {
                    let mut args = exec_args(&execution);
                    args.push(Value::Bytes(state));
                    let n = B::tx_execute(
                        tx,
                        Stmt::new(
                            "UPDATE engine_executions SET workflow_state = $4 \
                             WHERE project = $1 AND domain = $2 AND name = $3",
                            args,
                        ),
                    )
                    .await
                    .map_err(internal)?;
                    if n == 0 {
                        return Err(StoreError::NotFound(format!(
                            "engine state of {execution} (not started)"
                        )));
                    }
                }
                EngineChange::PendingAbort { execution, cause } => {
                    let mut args = exec_args(&execution);
                    args.push(Value::Text(cause));
                    // No row: the engine never started it or has finished it; nothing to keep.
                    B::tx_execute(
                        tx,
                        Stmt::new(
                            "UPDATE engine_executions SET pending_abort = $4 \
                             WHERE project = $1 AND domain = $2 AND name = $3",
                            args,
                        ),
                    )
                    .await
                    .map_err(internal)?;
                }
                EngineChange::Node {
                    execution,
                    node_id,
                    state,
                } => nodes.push((execution, node_id, state)),
                EngineChange::Finished { execution } => finished.push(execution),
            }
        }
        let rows: Vec<_> = dedup_last(nodes, |(e, n, _)| (e.clone(), n.clone()))
            .into_iter()
            .filter(|(e, _, _)| !finished.contains(e))
            .map(|(e, node_id, state)| {
                vec![
                    Value::Text(e.project),
                    Value::Text(e.domain),
                    Value::Text(e.name),
                    Value::Text(node_id),
                    Value::Bytes(state),
                ]
            })
            .collect();
        for stmt in upserts(
            B::BATCH_PARAMS,
            "engine_node_state",
            &["project", "domain", "execution_name", "node_id", "state"],
            &["project", "domain", "execution_name", "node_id"],
            &[],
            rows,
        ) {
            B::tx_execute(tx, stmt).await.map_err(internal)?;
        }
        for execution in finished {
            B::tx_execute(
                tx,
                Stmt::new(
                    "DELETE FROM engine_node_state WHERE project = $1 AND domain = $2 AND execution_name = $3",
                    exec_args(&execution),
                ),
            )
            .await
            .map_err(internal)?;
            B::tx_execute(
                tx,
                Stmt::new(
                    "DELETE FROM engine_executions WHERE project = $1 AND domain = $2 AND name = $3",
                    exec_args(&execution),
                ),
            )
            .await
            .map_err(internal)?;
        }
        Ok(())
    }

    pub(super) async fn get_node_execution_impl(
        &self,
        key: &NodeExecutionKey,
    ) -> Result<NodeExecutionRecord> {
        let mut b = SqlBuilder::new(NODE_SELECT);
        push_exec_where(&mut b, &key.execution);
        b.push(" AND node_id = ").bind(text(&key.node_id));
        node_from_row(
            self.fetch_one(b.build(), NODE_COLS, || key.to_string())
                .await?,
        )
    }

    pub(super) async fn get_all_node_executions_impl(
        &self,
        execution: &ExecutionKey,
    ) -> Result<Vec<NodeExecutionRecord>> {
        let mut b = SqlBuilder::new(NODE_SELECT);
        push_exec_where(&mut b, execution);
        let rows = self
            .backend
            .fetch(b.build(), NODE_COLS)
            .await
            .map_err(internal)?;
        rows.into_iter().map(node_from_row).collect()
    }

    pub(super) async fn get_all_task_executions_impl(
        &self,
        execution: &ExecutionKey,
    ) -> Result<Vec<TaskExecutionRecord>> {
        let mut b = SqlBuilder::new(TASK_SELECT);
        push_exec_where(&mut b, execution);
        let rows = self
            .backend
            .fetch(b.build(), TASK_COLS)
            .await
            .map_err(internal)?;
        rows.into_iter().map(task_from_row).collect()
    }

    pub(super) async fn get_node_executions_impl(
        &self,
        execution: &ExecutionKey,
        node_ids: &[String],
    ) -> Result<Vec<NodeExecutionRecord>> {
        let mut out = Vec::with_capacity(node_ids.len());
        for chunk in node_ids.chunks(MAX_IN) {
            let mut b = SqlBuilder::new(NODE_SELECT);
            push_exec_where(&mut b, execution);
            push_in(&mut b, "node_id", chunk);
            let rows = self
                .backend
                .fetch(b.build(), NODE_COLS)
                .await
                .map_err(internal)?;
            for row in rows {
                out.push(node_from_row(row)?);
            }
        }
        Ok(out)
    }

    pub(super) async fn list_node_executions_impl(
        &self,
        execution: &ExecutionKey,
        parent_node_id: Option<&str>,
        query: &ListQuery,
    ) -> Result<Page<NodeExecutionRecord>> {
        let paging = list::parse_paging(query)?;
        let mut b = SqlBuilder::new(NODE_LIST_SELECT);
        push_exec_where(&mut b, execution);
        match parent_node_id {
            Some(parent) => {
                b.push(" AND parent_node_id = ").bind(text(parent));
            }
            None => {
                b.push(" AND parent_node_id IS NULL");
            }
        }
        list::push_filters(&mut b, &NODE_EXECUTIONS, &query.filters)?;
        list::push_order_and_page(&mut b, &NODE_EXECUTIONS, query, paging)?;
        let rows = self
            .backend
            .fetch(b.build(), NODE_COLS)
            .await
            .map_err(internal)?;
        let (rows, next_token) = paging.page(rows);
        let items = rows.into_iter().map(node_from_row).collect::<Result<_>>()?;
        Ok(Page { items, next_token })
    }

    pub(super) async fn get_task_execution_impl(
        &self,
        key: &TaskExecutionKey,
    ) -> Result<TaskExecutionRecord> {
        let stmt = Stmt {
            sql: format!(
                "{TASK_SELECT} WHERE project = $1 AND domain = $2 AND execution_name = $3 AND node_id = $4 \
                 AND task_project = $5 AND task_domain = $6 AND task_name = $7 AND task_version = $8 \
                 AND retry_attempt = $9"
            )
            .into(),
            args: task_key_values(key),
        };
        task_from_row(self.fetch_one(stmt, TASK_COLS, || key.to_string()).await?)
    }

    pub(super) async fn get_task_executions_of_nodes_impl(
        &self,
        execution: &ExecutionKey,
        node_ids: &[String],
    ) -> Result<Vec<TaskExecutionRecord>> {
        let mut out = Vec::new();
        for chunk in node_ids.chunks(MAX_IN) {
            let mut b = SqlBuilder::new(TASK_SELECT);
            push_exec_where(&mut b, execution);
            push_in(&mut b, "node_id", chunk);
            let rows = self
                .backend
                .fetch(b.build(), TASK_COLS)
                .await
                .map_err(internal)?;
            for row in rows {
                out.push(task_from_row(row)?);
            }
        }
        Ok(out)
    }

    pub(super) async fn list_task_executions_impl(
        &self,
        node: &NodeExecutionKey,
        query: &ListQuery,
    ) -> Result<Page<TaskExecutionRecord>> {
        let paging = list::parse_paging(query)?;
        let mut b = SqlBuilder::new(TASK_SELECT);
        push_exec_where(&mut b, &node.execution);
        b.push(" AND node_id = ").bind(text(&node.node_id));
        list::push_filters(&mut b, &TASK_EXECUTIONS, &query.filters)?;
        list::push_order_and_page(&mut b, &TASK_EXECUTIONS, query, paging)?;
        let rows = self
            .backend
            .fetch(b.build(), TASK_COLS)
            .await
            .map_err(internal)?;
        let (rows, next_token) = paging.page(rows);
        let items = rows.into_iter().map(task_from_row).collect::<Result<_>>()?;
        Ok(Page { items, next_token })
    }

    pub(super) async fn load_engine_state_impl(&self) -> Result<Vec<EngineExecutionState>> {
        let rows = self
            .backend
            .fetch(
                Stmt::new(
                    "SELECT project, domain, name, request, workflow_state, pending_abort FROM engine_executions \
                     ORDER BY project, domain, name",
                    vec![],
                ),
                &[
                    Col::Text,
                    Col::Text,
                    Col::Text,
                    Col::Bytes,
                    Col::Bytes,
                    Col::Text,
                ],
            )
            .await
            .map_err(internal)?;
        let mut out: BTreeMap<ExecutionKey, EngineExecutionState> = BTreeMap::new();
        for row in rows {
            let mut r = Reader::new(row);
            let execution = ExecutionKey {
                project: r.text("project")?,
                domain: r.text("domain")?,
                name: r.text("name")?,
            };
            let state = EngineExecutionState {
                execution: execution.clone(),
                request: r.bytes("request")?,
                workflow: r.opt_bytes("workflow_state")?,
                pending_abort: r.opt_text("pending_abort")?,
                nodes: Vec::new(),
            };
            out.insert(execution, state);
        }
        let rows = self
            .backend
            .fetch(
                Stmt::new(
                    "SELECT n.project, n.domain, n.execution_name, n.node_id, n.state FROM engine_node_state n \
                     JOIN engine_executions e ON e.project = n.project AND e.domain = n.domain \
                     AND e.name = n.execution_name ORDER BY n.project, n.domain, n.execution_name, n.node_id",
                    vec![],
                ),
                &[Col::Text, Col::Text, Col::Text, Col::Text, Col::Bytes],
            )
            .await
            .map_err(internal)?;
        for row in rows {
            let mut r = Reader::new(row);
            let execution = ExecutionKey {
                project: r.text("project")?,
                domain: r.text("domain")?,
                name: r.text("execution_name")?,
            };
            let node_id = r.text("node_id")?;
            let state = r.bytes("state")?;
            if let Some(e) = out.get_mut(&execution) {
                e.nodes.push((node_id, state));
            }
        }
        Ok(out.into_values().collect())
    }
}

fn push_exec_where(b: &mut SqlBuilder, execution: &ExecutionKey) {
    b.push(" WHERE project = ")
        .bind(text(&execution.project))
        .push(" AND domain = ")
        .bind(text(&execution.domain))
        .push(" AND execution_name = ")
        .bind(text(&execution.name));
}

fn push_in(b: &mut SqlBuilder, column: &str, values: &[String]) {
    if values.is_empty() {
        b.push(" AND 1 = 0");
        return;
    }
    b.push(" AND ").push(column).push(" IN (");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind(text(v));
    }
    b.push(")");
}
