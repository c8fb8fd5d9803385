//! The SQL implementation of [`MetadataStore`], generic over a [`Backend`] so SQLite and
//! PostgreSQL share every statement, list translation and error mapping.
//!
//! Layout: [`backend`] runs statements on one database; [`list`] turns a [`ListQuery`] into
//! SQL; this module holds the statements and maps rows to records; [`connect`] opens pools
//! and runs migrations.
//!
//! Adding a table (executions, node/task executions, signals, cache): a migration file per
//! backend (same version), listed in `migrations.rs`; its statements and a [`ListSpec`]
//! here or in a sibling module; write paths run in one `B::Tx` (`begin` … `commit`), reads
//! on the pool. `Backend::LOCK_ROWS` locks rows read in a transaction on PostgreSQL
//! (SQLite write transactions are serial: `BEGIN IMMEDIATE`).

mod attributes;
mod audit;
pub(crate) mod backend;
mod bindings;
mod cache;
pub(crate) mod connect;
mod executions;
mod leases;
pub(crate) mod list;
mod notifications;
mod schedules;
mod signals;
mod sqlite_direct;

use std::future::Future;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use self::backend::{Backend, Col, DbErrorKind, Row, Stmt, Value, classify};
use self::list::{FieldType, ListSpec, SqlBuilder, field};
use crate::{
    ArtifactDataRecord, ArtifactFilter, ArtifactRecord, ArtifactRef, ArtifactSelector, CatalogPage,
    DatasetFilter, DatasetKey, DatasetRecord, PutOutcome, ReservationKey, ReservationRecord,
};
use crate::{AttributesKey, AttributesRecord, Decide, ScheduleRecord, StateRead};
use crate::{
    EngineExecutionState, EntityKey, EntityRecord, EntityScope, ExecutionKey, ExecutionRecord,
    ExecutionScope, LaunchPlanState, ListQuery, MetadataStore, NamedEntityKey, NamedEntityMetadata,
    NamedEntityRecord, NodeExecutionKey, NodeExecutionRecord, Page, ProjectRecord, ResourceType,
    Result, SignalKey, SignalRecord, StateBatch, StoreError, TaskExecutionKey, TaskExecutionRecord,
};
use crate::{NotificationRecord, NotificationUpdate};

pub(crate) struct SqlStore<B: Backend> {
    backend: B,
    /// Why the last write failed for want of space, until a write probe succeeds: readiness
    /// probes with a write only then (a full disk does not stop reads).
    write_blocked: std::sync::Mutex<Option<String>>,
    /// Creations waiting for a group commit (SQLite).
    creations: executions::Creations,
}

impl<B: Backend> SqlStore<B> {
    pub(crate) fn new(backend: B) -> Self {
        Self {
            backend,
            write_blocked: std::sync::Mutex::new(None),
            creations: Default::default(),
        }
    }

    fn set_write_blocked(&self, reason: Option<String>) {
        // A poisoned lock only means a panic elsewhere while setting a string: keep going.
        let mut blocked = self
            .write_blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match (&*blocked, &reason) {
            (None, Some(reason)) => tracing::error!(
                backend = self.backend.name(),
                reason = %reason,
                "metadata store cannot write: its disk is full; writes fail until space is freed"
            ),
            (Some(_), None) => tracing::info!(
                backend = self.backend.name(),
                "metadata store writes again: space was freed"
            ),
            _ => {}
        }
        *blocked = reason;
    }

    fn write_blocked(&self) -> bool {
        self.write_blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    }

    /// Runs one operation, recording its latency and outcome.
    async fn timed<T>(&self, op: &'static str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let start = Instant::now();
        let result = fut.await;
        let kind = result.as_ref().err().map(|e| match e {
            StoreError::NotFound(_) => "not_found",
            StoreError::AlreadyExists(_) => "already_exists",
            StoreError::InvalidArgument(_) => "invalid_argument",
            StoreError::StorageFull(_) => "storage_full",
            StoreError::Internal(_) => "internal",
            StoreError::LeaseLost(_) => "lease_lost",
        });
        crate::metrics::record(op, self.backend.name(), start.elapsed(), kind);
        match &result {
            Err(StoreError::Internal(err)) => {
                tracing::warn!(op, backend = self.backend.name(), error = %err, "metadata store operation failed");
            }
            // Logged once when the state changes, not per failed write.
            Err(StoreError::StorageFull(reason)) => self.set_write_blocked(Some(reason.clone())),
            _ => {}
        }
        result
    }

    /// The one row `stmt` selects by key; `NotFound(missing)` when there is none.
    async fn fetch_one(
        &self,
        stmt: Stmt,
        cols: &[Col],
        missing: impl FnOnce() -> String,
    ) -> Result<Row> {
        self.backend
            .fetch(stmt, cols)
            .await
            .map_err(internal)?
            .pop()
            .ok_or_else(|| StoreError::NotFound(missing()))
    }

    async fn begin(&self) -> Result<B::Tx> {
        self.backend.begin().await.map_err(internal)
    }

    /// Locks every version of a launch plan, in id order, so that concurrent activations of
    /// one launch plan queue up instead of deadlocking or tripping the one-active index.
    async fn lock_launch_plan(tx: &mut B::Tx, key: &EntityKey) -> Result<()> {
        let sql = format!(
            "SELECT id FROM entities WHERE resource_type = $1 AND project = $2 AND domain = $3 AND name = $4 \
             ORDER BY id{}",
            B::LOCK_ROWS
        );
        let mut args = key_args(key);
        args.truncate(4);
        B::tx_fetch(
            tx,
            Stmt {
                sql: sql.into(),
                args,
            },
            &[Col::BigInt],
        )
        .await
        .map_err(internal)?;
        Ok(())
    }
}

/// A database error that is not about the caller's input: a full disk is `StorageFull`,
/// anything else `Internal`.
pub(crate) fn internal(err: sqlx::Error) -> StoreError {
    match classify(&err) {
        DbErrorKind::StorageFull => StoreError::StorageFull(err.to_string()),
        _ => StoreError::Internal(Box::new(err)),
    }
}

/// Maps a failed write: a taken unique key is `AlreadyExists(what)`, a missing project (the
/// foreign key every scoped table has) is `NotFound`, anything else is internal.
fn write_error(err: sqlx::Error, what: impl FnOnce() -> String, project: &str) -> StoreError {
    match classify(&err) {
        DbErrorKind::UniqueViolation => StoreError::AlreadyExists(what()),
        DbErrorKind::ForeignKeyViolation => StoreError::NotFound(format!("project {project}")),
        DbErrorKind::StorageFull | DbErrorKind::Other => internal(err),
    }
}

/// Timestamps are stored with microsecond precision on both backends.
fn ts(t: DateTime<Utc>) -> Value {
    Value::Timestamp(t.trunc_subsecs(6))
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn resource(r: ResourceType) -> Value {
    Value::Int(r as i32)
}

/// Reads a row column by column, in SELECT order.
struct Reader(std::vec::IntoIter<Value>);

fn corrupt(what: &str, got: &Value) -> StoreError {
    StoreError::Internal(format!("unexpected value in column {what}: {got:?}").into())
}

impl Reader {
    fn new(row: Row) -> Self {
        Self(row.into_iter())
    }

    fn next(&mut self) -> Value {
        self.0.next().unwrap_or(Value::Null)
    }

    fn text(&mut self, what: &str) -> Result<String> {
        match self.next() {
            Value::Text(s) => Ok(s),
            other => Err(corrupt(what, &other)),
        }
    }

    fn int(&mut self, what: &str) -> Result<i32> {
        match self.next() {
            Value::Int(v) => Ok(v),
            other => Err(corrupt(what, &other)),
        }
    }

    fn bigint(&mut self, what: &str) -> Result<i64> {
        match self.next() {
            Value::BigInt(v) => Ok(v),
            other => Err(corrupt(what, &other)),
        }
    }

    fn opt_int(&mut self, what: &str) -> Result<Option<i32>> {
        match self.next() {
            Value::Int(v) => Ok(Some(v)),
            Value::Null => Ok(None),
            other => Err(corrupt(what, &other)),
        }
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>> {
        match self.next() {
            Value::Bytes(v) => Ok(v),
            other => Err(corrupt(what, &other)),
        }
    }

    fn opt_text(&mut self, what: &str) -> Result<Option<String>> {
        match self.next() {
            Value::Text(s) => Ok(Some(s)),
            Value::Null => Ok(None),
            other => Err(corrupt(what, &other)),
        }
    }

    fn opt_bytes(&mut self, what: &str) -> Result<Option<Vec<u8>>> {
        match self.next() {
            Value::Bytes(v) => Ok(Some(v)),
            Value::Null => Ok(None),
            other => Err(corrupt(what, &other)),
        }
    }

    fn opt_timestamp(&mut self, what: &str) -> Result<Option<DateTime<Utc>>> {
        match self.next() {
            Value::Timestamp(v) => Ok(Some(v)),
            Value::Null => Ok(None),
            other => Err(corrupt(what, &other)),
        }
    }

    fn timestamp(&mut self, what: &str) -> Result<DateTime<Utc>> {
        match self.next() {
            Value::Timestamp(v) => Ok(v),
            other => Err(corrupt(what, &other)),
        }
    }
}

// --- projects ---------------------------------------------------------------------------

macro_rules! project_select {
    () => {
        "SELECT identifier, name, description, labels, state, created_at FROM projects"
    };
}
const PROJECT_SELECT: &str = project_select!();
const PROJECT_COLS: &[Col] = &[
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Bytes,
    Col::Int,
    Col::Timestamp,
];

fn project_from_row(row: Row) -> Result<ProjectRecord> {
    let mut r = Reader::new(row);
    Ok(ProjectRecord {
        id: r.text("identifier")?,
        name: r.text("name")?,
        description: r.text("description")?,
        labels: r.bytes("labels")?,
        state: r.int("state")?,
        created_at: r.timestamp("created_at")?,
    })
}

const PROJECTS: ListSpec = ListSpec {
    what: "projects",
    prefixes: &["project"],
    filters: &[
        field("identifier", FieldType::Text),
        field("name", FieldType::Text),
        field("state", FieldType::Int),
        field("created_at", FieldType::Timestamp),
        list::updated_at_as("created_at"),
    ],
    sorts: &[
        field("identifier", FieldType::Text),
        field("name", FieldType::Text),
        field("state", FieldType::Int),
        field("created_at", FieldType::Timestamp),
        list::updated_at_as("created_at"),
    ],
    default_sort: "created_at",
    tiebreak: "identifier",
};

// --- entities ---------------------------------------------------------------------------

macro_rules! entity_select {
    () => {
        "SELECT resource_type, project, domain, name, version, digest, spec, closure, state, created_at FROM entities"
    };
}
macro_rules! entity_key_where {
    () => {
        " WHERE resource_type = $1 AND project = $2 AND domain = $3 AND name = $4 AND version = $5"
    };
}
const ENTITY_SELECT: &str = entity_select!();
const ENTITY_COLS: &[Col] = &[
    Col::Int,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Bytes,
    Col::Bytes,
    Col::Bytes,
    Col::Int,
    Col::Timestamp,
];

fn entity_from_row(row: Row) -> Result<EntityRecord> {
    let mut r = Reader::new(row);
    let rt = r.int("resource_type")?;
    let resource =
        ResourceType::from_proto(rt).ok_or_else(|| corrupt("resource_type", &Value::Int(rt)))?;
    let key = EntityKey {
        resource,
        project: r.text("project")?,
        domain: r.text("domain")?,
        name: r.text("name")?,
        version: r.text("version")?,
    };
    let digest = r.bytes("digest")?;
    let spec = r.bytes("spec")?;
    let closure = r.bytes("closure")?;
    let state = match r.opt_int("state")? {
        None => None,
        Some(s) => {
            Some(LaunchPlanState::from_proto(s).ok_or_else(|| corrupt("state", &Value::Int(s)))?)
        }
    };
    Ok(EntityRecord {
        key,
        digest,
        spec,
        closure,
        state,
        created_at: r.timestamp("created_at")?,
    })
}

fn key_args(key: &EntityKey) -> Vec<Value> {
    vec![
        resource(key.resource),
        text(&key.project),
        text(&key.domain),
        text(&key.name),
        text(&key.version),
    ]
}

const ENTITY_FIELDS: &[list::Field] = &[
    field("name", FieldType::Text),
    field("version", FieldType::Text),
    field("created_at", FieldType::Timestamp),
    list::updated_at_as("created_at"),
    field("project", FieldType::Text),
    field("domain", FieldType::Text),
];
const LAUNCH_PLAN_FIELDS: &[list::Field] = &[
    field("name", FieldType::Text),
    field("version", FieldType::Text),
    field("created_at", FieldType::Timestamp),
    list::updated_at_as("created_at"),
    field("project", FieldType::Text),
    field("domain", FieldType::Text),
    field("state", FieldType::Int),
];

const fn entity_spec(
    what: &'static str,
    prefixes: &'static [&'static str],
    fields: &'static [list::Field],
) -> ListSpec {
    ListSpec {
        what,
        prefixes,
        filters: fields,
        sorts: fields,
        default_sort: "created_at",
        tiebreak: "id",
    }
}

const TASKS: ListSpec = entity_spec("tasks", &["task"], ENTITY_FIELDS);
const WORKFLOWS: ListSpec = entity_spec("workflows", &["workflow"], ENTITY_FIELDS);
const LAUNCH_PLANS: ListSpec = entity_spec("launch plans", &["launch_plan"], LAUNCH_PLAN_FIELDS);

fn entity_list_spec(r: ResourceType) -> &'static ListSpec {
    match r {
        ResourceType::Task => &TASKS,
        ResourceType::Workflow => &WORKFLOWS,
        ResourceType::LaunchPlan => &LAUNCH_PLANS,
    }
}

const NAME_FILTERS: &[list::Field] = &[
    field("name", FieldType::Text),
    field("project", FieldType::Text),
    field("domain", FieldType::Text),
];
const NAME_SORTS: &[list::Field] = &[
    field("name", FieldType::Text),
    list::Field {
        name: "created_at",
        expr: "MAX(created_at)",
        ty: FieldType::Timestamp,
    },
    list::updated_at_as("MAX(created_at)"),
];

const fn names_spec(what: &'static str, prefixes: &'static [&'static str]) -> ListSpec {
    ListSpec {
        what,
        prefixes,
        filters: NAME_FILTERS,
        sorts: NAME_SORTS,
        default_sort: "created_at",
        tiebreak: "name",
    }
}

const TASK_NAMES: ListSpec = names_spec("task names", &["task"]);
const WORKFLOW_NAMES: ListSpec = names_spec("workflow names", &["workflow"]);
const LAUNCH_PLAN_NAMES: ListSpec = names_spec("launch plan names", &["launch_plan"]);

fn names_list_spec(r: ResourceType) -> &'static ListSpec {
    match r {
        ResourceType::Task => &TASK_NAMES,
        ResourceType::Workflow => &WORKFLOW_NAMES,
        ResourceType::LaunchPlan => &LAUNCH_PLAN_NAMES,
    }
}

const NAMED_ENTITY_FIELDS: &[list::Field] = &[
    list::Field {
        name: "name",
        expr: "e.name",
        ty: FieldType::Text,
    },
    list::Field {
        name: "project",
        expr: "e.project",
        ty: FieldType::Text,
    },
    list::Field {
        name: "domain",
        expr: "e.domain",
        ty: FieldType::Text,
    },
    list::Field {
        name: "state",
        expr: "COALESCE(m.state, 0)",
        ty: FieldType::Int,
    },
];
const NAMED_ENTITY_SORTS: &[list::Field] = &[
    list::Field {
        name: "name",
        expr: "e.name",
        ty: FieldType::Text,
    },
    list::Field {
        name: "created_at",
        expr: "MAX(e.created_at)",
        ty: FieldType::Timestamp,
    },
    list::updated_at_as("MAX(e.created_at)"),
];

const fn named_entities_spec(what: &'static str, prefixes: &'static [&'static str]) -> ListSpec {
    ListSpec {
        what,
        prefixes,
        filters: NAMED_ENTITY_FIELDS,
        sorts: NAMED_ENTITY_SORTS,
        default_sort: "created_at",
        tiebreak: "e.name",
    }
}

const NAMED_TASKS: ListSpec = named_entities_spec("named tasks", &["task", "named_entity"]);
const NAMED_WORKFLOWS: ListSpec =
    named_entities_spec("named workflows", &["workflow", "named_entity"]);
const NAMED_LAUNCH_PLANS: ListSpec =
    named_entities_spec("named launch plans", &["launch_plan", "named_entity"]);

fn named_entities_list_spec(r: ResourceType) -> &'static ListSpec {
    match r {
        ResourceType::Task => &NAMED_TASKS,
        ResourceType::Workflow => &NAMED_WORKFLOWS,
        ResourceType::LaunchPlan => &NAMED_LAUNCH_PLANS,
    }
}

/// Deactivates every active version of a launch plan except `version`.
fn deactivate_others(key: &EntityKey) -> Stmt {
    Stmt::new(
        "UPDATE entities SET state = 0 WHERE resource_type = $1 AND project = $2 AND domain = $3 AND name = $4 \
         AND version <> $5 AND state = 1",
        key_args(key),
    )
}

#[async_trait]
impl<B: Backend> MetadataStore for SqlStore<B> {
    async fn claim_lease(
        &self,
        key: &ExecutionKey,
        owner_id: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        self.timed("claim_lease", self.claim_lease_impl(key, owner_id, ttl))
            .await
    }

    async fn renew_leases(
        &self,
        owner_id: &str,
        ttl: std::time::Duration,
    ) -> Result<Vec<ExecutionKey>> {
        self.timed("renew_leases", self.renew_leases_impl(owner_id, ttl))
            .await
    }

    async fn release_lease(
        &self,
        key: &ExecutionKey,
        owner_id: &str,
        finished: bool,
    ) -> Result<()> {
        self.timed(
            "release_lease",
            self.release_lease_impl(key, owner_id, finished),
        )
        .await
    }

    async fn release_all_leases(&self, owner_id: &str) -> Result<u64> {
        self.timed("release_all_leases", self.release_all_leases_impl(owner_id))
            .await
    }

    async fn take_expired_leases(
        &self,
        owner_id: &str,
        ttl: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<ExecutionKey>> {
        self.timed(
            "take_expired_leases",
            self.take_expired_leases_impl(owner_id, ttl, limit),
        )
        .await
    }

    async fn lease_holder(&self, key: &ExecutionKey) -> Result<Option<String>> {
        self.timed("lease_holder", self.lease_holder_impl(key))
            .await
    }

    async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        self.timed("notify", self.notify_impl(channel, payload))
            .await
    }

    async fn listen(&self, channel: &str) -> Result<Option<tokio::sync::mpsc::Receiver<String>>> {
        self.timed("listen", async {
            self.backend.listen(channel).await.map_err(internal)
        })
        .await
    }

    async fn create_project(&self, project: ProjectRecord) -> Result<()> {
        self.timed("create_project", async {
            let stmt = Stmt::new(
                "INSERT INTO projects (identifier, name, description, labels, state, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    text(&project.id),
                    text(&project.name),
                    text(&project.description),
                    Value::Bytes(project.labels),
                    Value::Int(project.state),
                    ts(project.created_at),
                ],
            );
            let mut tx = self.begin().await?;
            B::tx_execute(&mut tx, stmt)
                .await
                .map_err(|e| write_error(e, || format!("project {}", project.id), &project.id))?;
            B::commit(tx).await.map_err(internal)
        })
        .await
    }

    async fn update_project(&self, project: ProjectRecord) -> Result<()> {
        self.timed("update_project", async {
            let stmt = Stmt::new(
                "UPDATE projects SET name = $2, description = $3, labels = $4, state = $5 WHERE identifier = $1",
                vec![
                    text(&project.id),
                    text(&project.name),
                    text(&project.description),
                    Value::Bytes(project.labels),
                    Value::Int(project.state),
                ],
            );
            let mut tx = self.begin().await?;
            let n = B::tx_execute(&mut tx, stmt).await.map_err(internal)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("project {}", project.id)));
            }
            B::commit(tx).await.map_err(internal)
        })
        .await
    }

    async fn get_project(&self, id: &str) -> Result<ProjectRecord> {
        self.timed("get_project", async {
            let stmt = Stmt::new(
                concat!(project_select!(), " WHERE identifier = $1"),
                vec![text(id)],
            );
            project_from_row(
                self.fetch_one(stmt, PROJECT_COLS, || format!("project {id}"))
                    .await?,
            )
        })
        .await
    }

    async fn list_projects(&self, query: &ListQuery) -> Result<Page<ProjectRecord>> {
        self.timed("list_projects", async {
            let paging = list::parse_paging(query)?;
            let mut b = SqlBuilder::new(PROJECT_SELECT);
            b.push(" WHERE 1 = 1");
            list::push_filters(&mut b, &PROJECTS, &query.filters)?;
            list::push_order_and_page(&mut b, &PROJECTS, query, paging)?;
            let rows = self
                .backend
                .fetch(b.build(), PROJECT_COLS)
                .await
                .map_err(internal)?;
            let (rows, next_token) = paging.page(rows);
            let items = rows
                .into_iter()
                .map(project_from_row)
                .collect::<Result<_>>()?;
            Ok(Page { items, next_token })
        })
        .await
    }

    async fn create_entity(&self, entity: EntityRecord) -> Result<()> {
        self.timed("create_entity", async {
            let key = &entity.key;
            // Launch plans always have a state (inactive unless asked); other entities none.
            let state = match key.resource {
                ResourceType::LaunchPlan => Some(entity.state.unwrap_or(LaunchPlanState::Inactive)),
                _ => None,
            };
            let mut tx = self.begin().await?;
            if state == Some(LaunchPlanState::Active) {
                Self::lock_launch_plan(&mut tx, key).await?;
                B::tx_execute(&mut tx, deactivate_others(key)).await.map_err(internal)?;
                B::tx_execute(&mut tx, schedules::schedule_activated::<B>(key)).await.map_err(internal)?;
            }
            let mut args = key_args(key);
            args.extend([
                Value::Bytes(entity.digest),
                Value::Bytes(entity.spec),
                Value::Bytes(entity.closure),
                state.map_or(Value::NullInt, |s| Value::Int(s as i32)),
                ts(entity.created_at),
            ]);
            let stmt = Stmt::new(
                "INSERT INTO entities (resource_type, project, domain, name, version, digest, spec, closure, state, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                args,
            );
            B::tx_execute(&mut tx, stmt).await.map_err(|e| write_error(e, || key.to_string(), &key.project))?;
            B::commit(tx).await.map_err(internal)
        })
        .await
    }

    async fn get_entity(&self, key: &EntityKey) -> Result<EntityRecord> {
        self.timed("get_entity", async {
            let stmt = Stmt::new(
                concat!(entity_select!(), entity_key_where!()),
                key_args(key),
            );
            entity_from_row(
                self.fetch_one(stmt, ENTITY_COLS, || key.to_string())
                    .await?,
            )
        })
        .await
    }

    async fn list_entities(
        &self,
        resource_type: ResourceType,
        scope: &EntityScope,
        query: &ListQuery,
    ) -> Result<Page<EntityRecord>> {
        self.timed("list_entities", async {
            let spec = entity_list_spec(resource_type);
            let paging = list::parse_paging(query)?;
            let mut b = SqlBuilder::new(ENTITY_SELECT);
            b.push(" WHERE resource_type = ")
                .bind(resource(resource_type))
                .push(" AND project = ")
                .bind(text(&scope.project))
                .push(" AND domain = ")
                .bind(text(&scope.domain));
            if let Some(name) = &scope.name {
                b.push(" AND name = ").bind(text(name));
            }
            list::push_filters(&mut b, spec, &query.filters)?;
            list::push_order_and_page(&mut b, spec, query, paging)?;
            let rows = self
                .backend
                .fetch(b.build(), ENTITY_COLS)
                .await
                .map_err(internal)?;
            let (rows, next_token) = paging.page(rows);
            let items = rows
                .into_iter()
                .map(entity_from_row)
                .collect::<Result<_>>()?;
            Ok(Page { items, next_token })
        })
        .await
    }

    async fn list_entity_names(
        &self,
        resource_type: ResourceType,
        project: &str,
        domain: &str,
        query: &ListQuery,
    ) -> Result<Page<String>> {
        self.timed("list_entity_names", async {
            let spec = names_list_spec(resource_type);
            let paging = list::parse_paging(query)?;
            let mut b = SqlBuilder::new("SELECT name FROM entities WHERE resource_type = ");
            b.bind(resource(resource_type))
                .push(" AND project = ")
                .bind(text(project))
                .push(" AND domain = ")
                .bind(text(domain));
            list::push_filters(&mut b, spec, &query.filters)?;
            b.push(" GROUP BY name");
            list::push_order_and_page(&mut b, spec, query, paging)?;
            let rows = self
                .backend
                .fetch(b.build(), &[Col::Text])
                .await
                .map_err(internal)?;
            let (rows, next_token) = paging.page(rows);
            let items = rows
                .into_iter()
                .map(|row| Reader::new(row).text("name"))
                .collect::<Result<_>>()?;
            Ok(Page { items, next_token })
        })
        .await
    }

    async fn list_named_entities(
        &self,
        resource_type: ResourceType,
        project: &str,
        domain: &str,
        query: &ListQuery,
    ) -> Result<Page<NamedEntityRecord>> {
        self.timed("list_named_entities", async {
            let spec = named_entities_list_spec(resource_type);
            let paging = list::parse_paging(query)?;
            let mut b = SqlBuilder::new(
                "SELECT e.name, COALESCE(m.description, ''), COALESCE(m.state, 0) FROM entities e \
                 LEFT JOIN named_entity_metadata m ON m.resource_type = e.resource_type \
                 AND m.project = e.project AND m.domain = e.domain AND m.name = e.name \
                 WHERE e.resource_type = ",
            );
            b.bind(resource(resource_type))
                .push(" AND e.project = ")
                .bind(text(project))
                .push(" AND e.domain = ")
                .bind(text(domain));
            list::push_filters(&mut b, spec, &query.filters)?;
            b.push(" GROUP BY e.name, m.description, m.state");
            list::push_order_and_page(&mut b, spec, query, paging)?;
            let rows = self
                .backend
                .fetch(b.build(), &[Col::Text, Col::Text, Col::Int])
                .await
                .map_err(internal)?;
            let (rows, next_token) = paging.page(rows);
            let items = rows
                .into_iter()
                .map(|row| {
                    let mut r = Reader::new(row);
                    Ok(NamedEntityRecord {
                        key: NamedEntityKey {
                            resource: resource_type,
                            project: project.to_owned(),
                            domain: domain.to_owned(),
                            name: r.text("name")?,
                        },
                        metadata: NamedEntityMetadata {
                            description: r.text("description")?,
                            state: r.int("state")?,
                        },
                    })
                })
                .collect::<Result<_>>()?;
            Ok(Page { items, next_token })
        })
        .await
    }

    async fn set_launch_plan_state(&self, key: &EntityKey, state: LaunchPlanState) -> Result<()> {
        self.timed("set_launch_plan_state", async {
            if key.resource != ResourceType::LaunchPlan {
                return Err(StoreError::InvalidArgument(format!(
                    "{key} is not a launch plan"
                )));
            }
            let mut tx = self.begin().await?;
            if state == LaunchPlanState::Active {
                Self::lock_launch_plan(&mut tx, key).await?;
                B::tx_execute(&mut tx, deactivate_others(key))
                    .await
                    .map_err(internal)?;
                B::tx_execute(&mut tx, schedules::schedule_activated::<B>(key))
                    .await
                    .map_err(internal)?;
            }
            let mut args = key_args(key);
            args.push(Value::Int(state as i32));
            let stmt = Stmt::new(
                concat!("UPDATE entities SET state = $6", entity_key_where!()),
                args,
            );
            let n = B::tx_execute(&mut tx, stmt).await.map_err(internal)?;
            if n == 0 {
                // Dropping the transaction rolls back the deactivation.
                return Err(StoreError::NotFound(key.to_string()));
            }
            B::commit(tx).await.map_err(internal)
        })
        .await
    }

    async fn list_role_bindings(&self) -> Result<Vec<crate::RoleBindingRecord>> {
        self.timed("list_role_bindings", self.list_role_bindings_impl())
            .await
    }

    async fn create_role_binding(
        &self,
        binding: crate::RoleBindingRecord,
    ) -> Result<crate::RoleBindingRecord> {
        self.timed(
            "create_role_binding",
            self.create_role_binding_impl(binding),
        )
        .await
    }

    async fn delete_role_binding(&self, id: i64) -> Result<()> {
        self.timed("delete_role_binding", self.delete_role_binding_impl(id))
            .await
    }

    async fn insert_audit_records(&self, records: Vec<crate::AuditRecord>) -> Result<()> {
        self.timed(
            "insert_audit_records",
            self.insert_audit_records_impl(records),
        )
        .await
    }

    async fn list_audit_records(
        &self,
        query: &crate::AuditQuery,
    ) -> Result<Vec<crate::AuditRecord>> {
        self.timed("list_audit_records", self.list_audit_records_impl(query))
            .await
    }

    async fn prune_audit_records(&self, older_than: DateTime<Utc>) -> Result<u64> {
        self.timed(
            "prune_audit_records",
            self.prune_audit_records_impl(older_than),
        )
        .await
    }

    async fn list_active_schedules(&self) -> Result<Vec<ScheduleRecord>> {
        self.timed("list_active_schedules", self.list_active_schedules_impl())
            .await
    }

    async fn record_schedule_tick(
        &self,
        launch_plan: &EntityKey,
        activated_at: DateTime<Utc>,
        tick: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        self.timed(
            "record_schedule_tick",
            self.record_schedule_tick_impl(launch_plan, activated_at, tick, error),
        )
        .await
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>> {
        self.timed(
            "claim_notifications",
            self.claim_notifications_impl(owner, now, lease, limit),
        )
        .await
    }

    async fn finish_notification(
        &self,
        execution: &ExecutionKey,
        phase: &str,
        owner: &str,
        update: NotificationUpdate,
    ) -> Result<bool> {
        self.timed(
            "finish_notification",
            self.finish_notification_impl(execution, phase, owner, update),
        )
        .await
    }

    async fn list_notifications(
        &self,
        execution: &ExecutionKey,
    ) -> Result<Vec<NotificationRecord>> {
        self.timed(
            "list_notifications",
            self.list_notifications_impl(execution),
        )
        .await
    }

    async fn prune_notifications(&self, closed_before: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.timed(
            "prune_notifications",
            self.prune_notifications_impl(closed_before, limit),
        )
        .await
    }

    async fn get_active_launch_plan(
        &self,
        project: &str,
        domain: &str,
        name: &str,
    ) -> Result<EntityRecord> {
        self.timed("get_active_launch_plan", async {
            let stmt = Stmt::new(
                concat!(
                    entity_select!(),
                    " WHERE resource_type = 3 AND project = $1 AND domain = $2 AND name = $3 AND state = 1"
                ),
                vec![text(project), text(domain), text(name)],
            );
            let missing = || format!("active launch plan {project}/{domain}/{name}");
            entity_from_row(self.fetch_one(stmt, ENTITY_COLS, missing).await?)
        })
        .await
    }

    async fn get_named_entity_metadata(&self, id: &NamedEntityKey) -> Result<NamedEntityMetadata> {
        self.timed("get_named_entity_metadata", async {
            let stmt = Stmt::new(
                "SELECT description, state FROM named_entity_metadata \
                 WHERE resource_type = $1 AND project = $2 AND domain = $3 AND name = $4",
                vec![
                    resource(id.resource),
                    text(&id.project),
                    text(&id.domain),
                    text(&id.name),
                ],
            );
            match self
                .backend
                .fetch(stmt, &[Col::Text, Col::Int])
                .await
                .map_err(internal)?
                .pop()
            {
                Some(row) => {
                    let mut r = Reader::new(row);
                    Ok(NamedEntityMetadata {
                        description: r.text("description")?,
                        state: r.int("state")?,
                    })
                }
                None => Ok(NamedEntityMetadata::default()),
            }
        })
        .await
    }

    async fn update_named_entity_metadata(
        &self,
        id: &NamedEntityKey,
        metadata: NamedEntityMetadata,
    ) -> Result<()> {
        self.timed("update_named_entity_metadata", async {
            let stmt = Stmt::new(
                "INSERT INTO named_entity_metadata (resource_type, project, domain, name, description, state) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (resource_type, project, domain, name) \
                 DO UPDATE SET description = excluded.description, state = excluded.state",
                vec![
                    resource(id.resource),
                    text(&id.project),
                    text(&id.domain),
                    text(&id.name),
                    Value::Text(metadata.description),
                    Value::Int(metadata.state),
                ],
            );
            let mut tx = self.begin().await?;
            B::tx_execute(&mut tx, stmt).await.map_err(|e| write_error(e, || id.to_string(), &id.project))?;
            B::commit(tx).await.map_err(internal)
        })
        .await
    }

    async fn create_execution(
        &self,
        execution: ExecutionRecord,
        engine_request: Option<Vec<u8>>,
    ) -> Result<()> {
        self.timed(
            "create_execution",
            self.create_execution_impl(execution, engine_request),
        )
        .await
    }

    async fn get_execution(&self, key: &ExecutionKey) -> Result<ExecutionRecord> {
        self.timed("get_execution", self.get_execution_impl(key))
            .await
    }

    async fn list_executions(
        &self,
        scope: &ExecutionScope,
        query: &ListQuery,
    ) -> Result<Page<ExecutionRecord>> {
        self.timed("list_executions", self.list_executions_impl(scope, query))
            .await
    }

    async fn apply(&self, batch: StateBatch) -> Result<()> {
        crate::metrics::batch(&batch);
        self.timed("apply", self.apply_batch(batch)).await
    }

    async fn transition(&self, read: StateRead, decide: Decide<'_>) -> Result<()> {
        self.timed("transition", self.transition_impl(read, None, decide))
            .await
    }

    async fn transition_fenced(
        &self,
        read: StateRead,
        owner: &str,
        decide: Decide<'_>,
    ) -> Result<()> {
        self.timed(
            "transition",
            self.transition_impl(read, Some(owner), decide),
        )
        .await
    }

    async fn get_node_execution(&self, key: &NodeExecutionKey) -> Result<NodeExecutionRecord> {
        self.timed("get_node_execution", self.get_node_execution_impl(key))
            .await
    }

    async fn get_node_executions(
        &self,
        execution: &ExecutionKey,
        node_ids: &[String],
    ) -> Result<Vec<NodeExecutionRecord>> {
        self.timed(
            "get_node_executions",
            self.get_node_executions_impl(execution, node_ids),
        )
        .await
    }

    async fn list_node_executions(
        &self,
        execution: &ExecutionKey,
        parent_node_id: Option<&str>,
        query: &ListQuery,
    ) -> Result<Page<NodeExecutionRecord>> {
        self.timed(
            "list_node_executions",
            self.list_node_executions_impl(execution, parent_node_id, query),
        )
        .await
    }

    async fn get_task_execution(&self, key: &TaskExecutionKey) -> Result<TaskExecutionRecord> {
        self.timed("get_task_execution", self.get_task_execution_impl(key))
            .await
    }

    async fn get_all_node_executions(
        &self,
        execution: &ExecutionKey,
    ) -> Result<Vec<NodeExecutionRecord>> {
        self.timed(
            "get_all_node_executions",
            self.get_all_node_executions_impl(execution),
        )
        .await
    }

    async fn get_all_task_executions(
        &self,
        execution: &ExecutionKey,
    ) -> Result<Vec<TaskExecutionRecord>> {
        self.timed(
            "get_all_task_executions",
            self.get_all_task_executions_impl(execution),
        )
        .await
    }

    async fn get_task_executions_of_nodes(
        &self,
        execution: &ExecutionKey,
        node_ids: &[String],
    ) -> Result<Vec<TaskExecutionRecord>> {
        self.timed(
            "get_task_executions_of_nodes",
            self.get_task_executions_of_nodes_impl(execution, node_ids),
        )
        .await
    }

    async fn list_task_executions(
        &self,
        node: &NodeExecutionKey,
        query: &ListQuery,
    ) -> Result<Page<TaskExecutionRecord>> {
        self.timed(
            "list_task_executions",
            self.list_task_executions_impl(node, query),
        )
        .await
    }

    async fn load_engine_state(&self) -> Result<Vec<EngineExecutionState>> {
        self.timed("load_engine_state", self.load_engine_state_impl())
            .await
    }

    async fn put_attributes(&self, record: AttributesRecord) -> Result<AttributesRecord> {
        self.timed("put_attributes", self.put_attributes_impl(record))
            .await
    }

    async fn get_attributes(&self, key: &AttributesKey) -> Result<AttributesRecord> {
        self.timed("get_attributes", self.get_attributes_impl(key))
            .await
    }

    async fn resolve_attributes(&self, key: &AttributesKey) -> Result<Option<AttributesRecord>> {
        self.timed("resolve_attributes", self.resolve_attributes_impl(key))
            .await
    }

    async fn applying_attributes(
        &self,
        project: &str,
        domain: &str,
        workflow: &str,
        launch_plan: &str,
        resource_types: &[i32],
    ) -> Result<Vec<AttributesRecord>> {
        self.timed(
            "applying_attributes",
            self.applying_attributes_impl(project, domain, workflow, launch_plan, resource_types),
        )
        .await
    }

    async fn delete_attributes(&self, key: &AttributesKey) -> Result<()> {
        self.timed("delete_attributes", self.delete_attributes_impl(key))
            .await
    }

    async fn list_attributes(&self, resource_type: i32) -> Result<Vec<AttributesRecord>> {
        self.timed("list_attributes", self.list_attributes_impl(resource_type))
            .await
    }

    async fn get_or_create_signal(&self, signal: SignalRecord) -> Result<SignalRecord> {
        self.timed(
            "get_or_create_signal",
            self.get_or_create_signal_impl(signal),
        )
        .await
    }

    async fn get_signal(&self, key: &SignalKey) -> Result<SignalRecord> {
        self.timed("get_signal", self.get_signal_impl(key)).await
    }

    async fn list_signals(
        &self,
        execution: &ExecutionKey,
        query: &ListQuery,
    ) -> Result<Page<SignalRecord>> {
        self.timed("list_signals", self.list_signals_impl(execution, query))
            .await
    }

    async fn set_signal_value(
        &self,
        key: &SignalKey,
        value: Vec<u8>,
        at: DateTime<Utc>,
    ) -> Result<SignalRecord> {
        self.timed(
            "set_signal_value",
            self.set_signal_value_impl(key, value, at),
        )
        .await
    }

    async fn create_dataset(&self, dataset: DatasetRecord) -> Result<()> {
        self.timed("create_dataset", self.create_dataset_impl(dataset))
            .await
    }

    async fn get_dataset(&self, key: &DatasetKey) -> Result<DatasetRecord> {
        self.timed("get_dataset", self.get_dataset_impl(key)).await
    }

    async fn list_datasets(
        &self,
        filter: &DatasetFilter,
        page: &CatalogPage,
    ) -> Result<Page<DatasetRecord>> {
        self.timed("list_datasets", self.list_datasets_impl(filter, page))
            .await
    }

    async fn create_artifact(&self, artifact: ArtifactRecord) -> Result<()> {
        self.timed("create_artifact", self.create_artifact_impl(artifact))
            .await
    }

    async fn get_artifact(&self, dataset: &DatasetKey, by: &ArtifactRef) -> Result<ArtifactRecord> {
        self.timed("get_artifact", self.get_artifact_impl(dataset, by))
            .await
    }

    async fn lookup_cached_artifact(
        &self,
        dataset: &DatasetKey,
        tag: &str,
    ) -> Result<Option<ArtifactRecord>> {
        self.timed(
            "lookup_cached_artifact",
            self.lookup_cached_artifact_impl(dataset, tag),
        )
        .await
    }

    async fn list_artifacts(
        &self,
        dataset: &DatasetKey,
        filter: &ArtifactFilter,
        page: &CatalogPage,
    ) -> Result<Page<ArtifactRecord>> {
        self.timed(
            "list_artifacts",
            self.list_artifacts_impl(dataset, filter, page),
        )
        .await
    }

    async fn add_tag(
        &self,
        dataset: &DatasetKey,
        tag: &str,
        artifact_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.timed("add_tag", self.add_tag_impl(dataset, tag, artifact_id, at))
            .await
    }

    async fn update_artifact(
        &self,
        dataset: &DatasetKey,
        by: &ArtifactRef,
        data: Vec<ArtifactDataRecord>,
        metadata: Vec<u8>,
        at: DateTime<Utc>,
    ) -> Result<ArtifactRecord> {
        self.timed(
            "update_artifact",
            self.update_artifact_impl(dataset, by, data, metadata, at),
        )
        .await
    }

    async fn put_cached_artifact(
        &self,
        dataset: DatasetRecord,
        artifact: ArtifactRecord,
        tag: &str,
        overwrite: bool,
    ) -> Result<PutOutcome> {
        self.timed(
            "put_cached_artifact",
            self.put_cached_artifact_impl(dataset, artifact, tag, overwrite),
        )
        .await
    }

    async fn list_cached_artifacts(
        &self,
        selector: &ArtifactSelector,
        page: &CatalogPage,
    ) -> Result<Page<ArtifactRecord>> {
        self.timed(
            "list_cached_artifacts",
            self.list_cached_artifacts_impl(selector, page),
        )
        .await
    }

    async fn delete_artifacts(&self, selector: &ArtifactSelector) -> Result<u64> {
        self.timed("delete_artifacts", self.delete_artifacts_impl(selector))
            .await
    }

    async fn get_or_extend_reservation(
        &self,
        key: &ReservationKey,
        owner_id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ReservationRecord> {
        self.timed(
            "get_or_extend_reservation",
            self.get_or_extend_reservation_impl(key, owner_id, expires_at, now),
        )
        .await
    }

    async fn release_reservation(&self, key: &ReservationKey, owner_id: &str) -> Result<()> {
        self.timed(
            "release_reservation",
            self.release_reservation_impl(key, owner_id),
        )
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.timed("ping", async {
            self.backend.ping().await.map_err(internal)
        })
        .await
    }

    async fn ready(&self) -> Result<()> {
        if !self.write_blocked() {
            return self.ping().await;
        }
        let probed = self.timed("probe_write", self.backend.probe_write()).await;
        if probed.is_ok() {
            self.set_write_blocked(None);
        }
        probed
    }

    async fn close(&self) {
        self.backend.close().await
    }

    fn backend_name(&self) -> &'static str {
        self.backend.name()
    }
}
