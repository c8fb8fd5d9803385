//! The metadata store: one interface ([`MetadataStore`]) with two implementations chosen by
//! URL — SQLite (`sqlite://…`, the embedded default) and PostgreSQL (`postgres://…`) — and one
//! conformance suite that runs against both.
//!
//! Records are plain Rust types. Protobuf payloads (specs as the client sent them, closures)
//! are opaque bytes here: the store indexes the columns that lists filter and sort on, and
//! never decodes a payload.
//!
//! Behaviour both backends share (and the conformance suite in `tests/` checks):
//! * every write is one transaction; a failure commits nothing;
//! * a change decided on an execution's current records (phase transitions, archive,
//!   terminate, events) is one [`MetadataStore::transition`]: read, decision and write in one
//!   transaction under the execution's row lock, so concurrent ones never overwrite each other;
//! * a taken unique key is [`StoreError::AlreadyExists`] naming the thing
//!   (`task flytesnacks/development/my.task@v1`), a missing row or an unknown project is
//!   [`StoreError::NotFound`], a bad list query is [`StoreError::InvalidArgument`] naming the
//!   field and the valid ones, a full disk is [`StoreError::StorageFull`] (the store writes
//!   again by itself once space is freed), anything else is [`StoreError::Internal`];
//! * timestamps are kept with microsecond precision;
//! * lists: filters on whitelisted, typed fields (values always bound as parameters), sort
//!   by a whitelisted key (default `created_at` descending) with a deterministic tiebreak,
//!   `token` is an opaque offset and `next_token` is empty on the last page;
//! * text compares bytewise, `contains` is case-sensitive.
//!
//! Latency of every operation is recorded as [`metrics::QUERY_DURATION_SECONDS`]; call
//! [`metrics::describe`] once at startup for help texts.

mod binding_model;
mod cache_model;
mod error;
pub mod metrics;
mod migrations;
mod model;
mod notification_model;
mod schedule_model;
mod sql;

pub use binding_model::*;
pub use cache_model::*;
pub use error::StoreError;
pub use model::*;
pub use notification_model::*;
pub use schedule_model::*;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens (creating if needed) the metadata store at `url` and brings its schema up to date
/// with the embedded migrations.
///
/// * `sqlite://data/flyte.db` (relative), `sqlite:///abs/flyte.db`, `sqlite::memory:` —
///   the file and its directory are created if missing; WAL, `synchronous=NORMAL`,
///   a busy timeout and foreign keys are on.
/// * `postgres://user@host:port/db` (or `postgresql://`) — the database is created if
///   missing and the user may do so.
///
/// A new store holds the project `flytesnacks`. Domains are configuration, not stored.
///
/// The future is boxed so that crates awaiting it do not code-generate the connection code and
/// every `SqlStore` method behind the trait object again: an `async fn`'s body is compiled in
/// each crate that awaits it (docs/benchmarks.md, "Release build time").
pub fn open(url: &str) -> OpenFuture<'_> {
    Box::pin(open_inner(url))
}

/// What [`open`] returns.
pub type OpenFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<dyn MetadataStore>>> + Send + 'a>>;

async fn open_inner(url: &str) -> Result<Arc<dyn MetadataStore>> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => sql::connect::open_sqlite(url).await,
        "postgres" | "postgresql" => sql::connect::open_postgres(url).await,
        _ => Err(StoreError::InvalidArgument(format!(
            "unsupported metadata store URL scheme {scheme:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB"
        ))),
    }
}

/// Everything the control plane persists. Implementations are cheap to clone and share.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    // --- projects and domains -------------------------------------------------------------

    /// Creates a project; `AlreadyExists` if the id is taken.
    async fn create_project(&self, project: ProjectRecord) -> Result<()>;
    /// Replaces name, description, labels and state of an existing project; `NotFound` otherwise.
    async fn update_project(&self, project: ProjectRecord) -> Result<()>;
    async fn get_project(&self, id: &str) -> Result<ProjectRecord>;
    /// Filter and sort fields: `identifier`, `name`, `state`, `created_at`, `updated_at` (the
    /// creation time) (prefix `project.`).
    async fn list_projects(&self, query: &ListQuery) -> Result<Page<ProjectRecord>>;

    // --- tasks, workflows, launch plans --------------------------------------------------

    /// Inserts a new immutable entity version. `AlreadyExists` if the key exists (whatever
    /// its content: the caller compares digests to tell identical from different).
    async fn create_entity(&self, entity: EntityRecord) -> Result<()>;
    async fn get_entity(&self, key: &EntityKey) -> Result<EntityRecord>;
    /// Entities of one type in `project`/`domain`, optionally one `name`. Filter and sort
    /// fields: `name`, `version`, `created_at`, `updated_at` (= `created_at`: versions are
    /// immutable), `state` (launch plans), `project`, `domain`.
    async fn list_entities(
        &self,
        resource: ResourceType,
        scope: &EntityScope,
        query: &ListQuery,
    ) -> Result<Page<EntityRecord>>;
    /// Distinct entity names of one type in a project/domain (`List*Ids`, named entities).
    /// Filter fields: `name`, `project`, `domain`; sort keys `name`, `created_at` and `updated_at` (the
    /// newest version's).
    async fn list_entity_names(
        &self,
        resource: ResourceType,
        project: &str,
        domain: &str,
        query: &ListQuery,
    ) -> Result<Page<String>>;

    /// Sets a launch plan version's state. Activating one version deactivates every other
    /// version of the same launch plan in the same transaction. `NotFound` if absent.
    async fn set_launch_plan_state(&self, key: &EntityKey, state: LaunchPlanState) -> Result<()>;
    /// The active version of a launch plan, `NotFound` if none is active.
    async fn get_active_launch_plan(
        &self,
        project: &str,
        domain: &str,
        name: &str,
    ) -> Result<EntityRecord>;

    // --- role bindings made over the API (docs/auth.md) -----------------------------------

    /// Every stored role binding, oldest first.
    async fn list_role_bindings(&self) -> Result<Vec<RoleBindingRecord>>;
    /// Stores a binding (its `id` is ignored) and returns it with its id; `AlreadyExists` if
    /// the same subject already has the same role on the same project and domain.
    async fn create_role_binding(&self, binding: RoleBindingRecord) -> Result<RoleBindingRecord>;
    /// Removes binding `id`; `NotFound` if there is none.
    async fn delete_role_binding(&self, id: i64) -> Result<()>;

    // --- the audit trail (docs/auth.md, "Audit") -------------------------------------------

    /// Appends audited calls (their `id`s are assigned).
    async fn insert_audit_records(&self, records: Vec<AuditRecord>) -> Result<()>;
    /// Audited calls matching `query`, newest first.
    async fn list_audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Deletes the records before `older_than`; how many.
    async fn prune_audit_records(&self, older_than: chrono::DateTime<chrono::Utc>) -> Result<u64>;

    // --- launch-plan schedules (the scheduler) -------------------------------------------

    /// The schedule state of every active launch plan version (activating a version records
    /// its activation time, in the activating transaction; versions without a schedule are
    /// included: the caller reads the schedule from the spec).
    async fn list_active_schedules(&self) -> Result<Vec<ScheduleRecord>>;
    /// Records that the tick at `tick` of `launch_plan` was launched (or, with an `error`,
    /// given up on), if `launch_plan` is still in the activation of `activated_at` and `tick`
    /// is later than the last one recorded; true if it was recorded. Ticks only move forward.
    async fn record_schedule_tick(
        &self,
        launch_plan: &EntityKey,
        activated_at: chrono::DateTime<chrono::Utc>,
        tick: chrono::DateTime<chrono::Utc>,
        error: &str,
    ) -> Result<bool>;

    // --- notification outbox (crates/flyte-notify) ------------------------------------------

    /// Claims up to `limit` pending outbox rows due by `now` whose lease is free or ran out,
    /// for `owner` until `now + lease`. Concurrent callers never get the same row. Rows are
    /// added by the store itself when an execution is written in a terminal phase
    /// ([`NOTIFY_PHASES`]) it asks to be notified of ([`ExecutionRecord::notify_phases`]),
    /// once per (execution, phase).
    async fn claim_notifications(
        &self,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>>;
    /// Writes the outcome of an attempt on a row `owner` claimed and frees its lease; false
    /// (nothing written) if `owner` no longer holds it.
    async fn finish_notification(
        &self,
        execution: &ExecutionKey,
        phase: &str,
        owner: &str,
        update: NotificationUpdate,
    ) -> Result<bool>;
    /// Deletes up to `limit` closed outbox rows (delivered or given up) whose `due_at` — the
    /// time the notifier closed them — is before `closed_before`; how many. Pending rows are
    /// never deleted. Bounded, so the caller prunes in batches without a long lock.
    async fn prune_notifications(
        &self,
        closed_before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<u64>;
    /// The outbox rows of one execution (status, tests).
    async fn list_notifications(&self, execution: &ExecutionKey)
    -> Result<Vec<NotificationRecord>>;

    // --- named entity metadata -----------------------------------------------------------

    /// Metadata of a named entity; the default (empty description, ACTIVE) if never set.
    async fn get_named_entity_metadata(&self, id: &NamedEntityKey) -> Result<NamedEntityMetadata>;
    /// Named entities of one type in a project/domain — one per registered name — with their
    /// metadata (the default where never set), in one query, so filters on `state` page
    /// correctly. Filter fields: `name`, `project`, `domain`, `state` (the metadata's); sort
    /// keys `name`, `created_at` (the newest version's). Prefixes: the resource's
    /// (`workflow.name`) or `named_entity`.
    ///
    /// The default implementation (for test doubles) lists names, then reads each metadata,
    /// and does not support `state` filters.
    async fn list_named_entities(
        &self,
        resource: ResourceType,
        project: &str,
        domain: &str,
        query: &ListQuery,
    ) -> Result<Page<NamedEntityRecord>> {
        let names = self
            .list_entity_names(resource, project, domain, query)
            .await?;
        let mut items = Vec::with_capacity(names.items.len());
        for name in names.items {
            let key = NamedEntityKey {
                resource,
                project: project.to_owned(),
                domain: domain.to_owned(),
                name,
            };
            let metadata = self.get_named_entity_metadata(&key).await?;
            items.push(NamedEntityRecord { key, metadata });
        }
        Ok(Page {
            items,
            next_token: names.next_token,
        })
    }

    /// Creates or replaces the metadata of a named entity. `NotFound` if the project is unknown.
    async fn update_named_entity_metadata(
        &self,
        id: &NamedEntityKey,
        metadata: NamedEntityMetadata,
    ) -> Result<()>;

    // --- executions ------------------------------------------------------------------------

    /// Records a new execution and, if given, the engine's run request for it, in one
    /// transaction (so an accepted execution is never lost to a crash before the engine's
    /// first write). `AlreadyExists` if the name is taken in the project/domain, `NotFound` if
    /// the project is unknown, `InvalidArgument` if it is archived (checked by the insert
    /// itself: no read of the project before it).
    async fn create_execution(
        &self,
        execution: ExecutionRecord,
        engine_request: Option<Vec<u8>>,
    ) -> Result<()>;
    async fn get_execution(&self, key: &ExecutionKey) -> Result<ExecutionRecord>;
    /// Filter fields: `name`, `phase`, `mode`, `state`, `principal`, `created_at`,
    /// `updated_at`, `started_at`, `launch_plan_name`, `launch_plan_version`,
    /// `workflow_name`, `workflow_version`, `task_name`, `task_version` (prefix `execution`);
    /// sort keys the same.
    async fn list_executions(
        &self,
        scope: &ExecutionScope,
        query: &ListQuery,
    ) -> Result<Page<ExecutionRecord>>;
    /// Writes a batch of state changes in one transaction (see [`StateBatch`]); nothing is
    /// written if any part fails. A blind write: a change decided on the current records is a
    /// [`MetadataStore::transition`].
    async fn apply(&self, batch: StateBatch) -> Result<()>;

    /// One read-decide-write of an execution's records as one transaction: locks the
    /// execution's row (PostgreSQL `SELECT … FOR UPDATE`, SQLite's `BEGIN IMMEDIATE` write
    /// lock), reads the records `read` names, calls `decide` with them and writes the batch it
    /// returns. Transitions of one execution thus run one after the other and each decides on
    /// what the previous one wrote: no change is lost or made on stale state. The batch may
    /// change only this execution and its node and task executions (`InvalidArgument`
    /// otherwise); `NotFound` if the execution does not exist.
    async fn transition(&self, read: StateRead, decide: Decide<'_>) -> Result<()>;
    /// A [`MetadataStore::transition`] fenced by an execution lease (engine replicas): in the
    /// same transaction it checks that `owner` holds the execution's lease, unexpired by the
    /// database's clock, and keeps that lease row locked until the commit so no takeover
    /// slips in between; otherwise `LeaseLost` and nothing is written.
    async fn transition_fenced(
        &self,
        read: StateRead,
        owner: &str,
        decide: Decide<'_>,
    ) -> Result<()>;

    async fn get_node_execution(&self, key: &NodeExecutionKey) -> Result<NodeExecutionRecord>;
    /// The node executions of `execution` among `node_ids` (those that exist), in one query.
    async fn get_node_executions(
        &self,
        execution: &ExecutionKey,
        node_ids: &[String],
    ) -> Result<Vec<NodeExecutionRecord>>;
    /// Node executions of an execution whose parent is `parent_node_id` (`None`: top level).
    /// Filter fields: `node_id`, `phase`, `created_at`, `updated_at`, `started_at` (prefix
    /// `node_execution`); sort keys the same. The records carry no `dynamic_workflow`
    /// (`get_node_execution` does).
    async fn list_node_executions(
        &self,
        execution: &ExecutionKey,
        parent_node_id: Option<&str>,
        query: &ListQuery,
    ) -> Result<Page<NodeExecutionRecord>>;

    /// Every node execution of `execution`, at any depth, in one query (in no set order).
    async fn get_all_node_executions(
        &self,
        execution: &ExecutionKey,
    ) -> Result<Vec<NodeExecutionRecord>>;
    /// Every task execution of `execution`, in one query (in no set order).
    async fn get_all_task_executions(
        &self,
        execution: &ExecutionKey,
    ) -> Result<Vec<TaskExecutionRecord>>;

    async fn get_task_execution(&self, key: &TaskExecutionKey) -> Result<TaskExecutionRecord>;
    /// Every task execution of the given nodes of `execution`, in one query.
    async fn get_task_executions_of_nodes(
        &self,
        execution: &ExecutionKey,
        node_ids: &[String],
    ) -> Result<Vec<TaskExecutionRecord>>;
    /// Task executions of one node execution. Filter fields: `phase`, `retry_attempt`,
    /// `task_name`, `task_version`, `created_at`, `updated_at`, `started_at` (prefix
    /// `task_execution`); sort keys the same.
    async fn list_task_executions(
        &self,
        node: &NodeExecutionKey,
        query: &ListQuery,
    ) -> Result<Page<TaskExecutionRecord>>;

    /// Every execution the engine started and has not finished, with its engine state.
    async fn load_engine_state(&self) -> Result<Vec<EngineExecutionState>>;

    // --- signals -------------------------------------------------------------------------

    /// Creates `signal` (its type, no value) unless a signal with its key exists, and returns
    /// the stored signal either way: an existing one keeps its type and value (flyteadmin's
    /// `FirstOrCreate`). `NotFound` naming the execution if it does not exist.
    async fn get_or_create_signal(&self, signal: SignalRecord) -> Result<SignalRecord>;
    async fn get_signal(&self, key: &SignalKey) -> Result<SignalRecord>;
    /// Signals of one execution. Filter fields: `signal_id`, `created_at`, `updated_at`
    /// (prefix `signal`); sort keys the same.
    async fn list_signals(
        &self,
        execution: &ExecutionKey,
        query: &ListQuery,
    ) -> Result<Page<SignalRecord>>;
    /// Sets (or replaces: flyteadmin's `Update` does) the value of a signal and returns it;
    /// `NotFound` if no such signal exists. The caller checks the value against the type.
    async fn set_signal_value(
        &self,
        key: &SignalKey,
        value: Vec<u8>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<SignalRecord>;

    // --- matchable attributes -------------------------------------------------------------

    /// Creates or replaces the attributes of one scope and type and returns them as stored
    /// (a replaced row keeps its `created_at`). `InvalidArgument` for a scope flyteadmin
    /// refuses (a workflow without a project, a launch plan without a workflow).
    async fn put_attributes(&self, record: AttributesRecord) -> Result<AttributesRecord>;
    /// The attributes stored for exactly this scope and type; `NotFound` otherwise.
    async fn get_attributes(&self, key: &AttributesKey) -> Result<AttributesRecord>;
    /// The most specific attributes of `key.resource_type` that apply to the scope: each part
    /// of a stored scope is either `key`'s or empty ("any"), and launch plan, then workflow,
    /// then domain, then project level wins (flyteadmin's `ResourceRepo.Get`). `None` if none.
    async fn resolve_attributes(&self, key: &AttributesKey) -> Result<Option<AttributesRecord>>;
    /// Every stored record of `resource_types` whose scope applies to this one (each part
    /// equal or empty, as for [`Self::resolve_attributes`]), most specific first: what an
    /// execution's creation needs of several types and levels, in one round trip.
    async fn applying_attributes(
        &self,
        project: &str,
        domain: &str,
        workflow: &str,
        launch_plan: &str,
        resource_types: &[i32],
    ) -> Result<Vec<AttributesRecord>>;
    /// Deletes the attributes of exactly this scope and type; `NotFound` if there were none.
    async fn delete_attributes(&self, key: &AttributesKey) -> Result<()>;
    /// Every stored scope of one type, most specific first (ListMatchableAttributes).
    async fn list_attributes(&self, resource_type: i32) -> Result<Vec<AttributesRecord>>;

    // --- cache catalog (datacatalog) ------------------------------------------------------

    /// Creates a dataset with its partition keys; `AlreadyExists` naming it if the key is taken.
    async fn create_dataset(&self, dataset: DatasetRecord) -> Result<()>;
    async fn get_dataset(&self, key: &DatasetKey) -> Result<DatasetRecord>;
    /// Datasets matching every given field, by creation time (newest first unless
    /// `page.ascending`); `next_token` is the offset of the next page, empty on the last.
    async fn list_datasets(
        &self,
        filter: &DatasetFilter,
        page: &CatalogPage,
    ) -> Result<Page<DatasetRecord>>;
    /// Creates an artifact of an existing dataset with its data and partitions. `NotFound`
    /// naming the dataset, `AlreadyExists` naming the artifact if its id is taken in the dataset.
    async fn create_artifact(&self, artifact: ArtifactRecord) -> Result<()>;
    /// An artifact with its data, partitions and tags; `NotFound` naming the dataset, the
    /// artifact or the tag.
    async fn get_artifact(&self, dataset: &DatasetKey, by: &ArtifactRef) -> Result<ArtifactRecord>;
    /// The task cache's lookup: the artifact tagged `tag` in `dataset` with its data and
    /// metadata (no partitions; `tags` holds `tag` only), in one statement; `None` if there is
    /// no such dataset or tag.
    async fn lookup_cached_artifact(
        &self,
        dataset: &DatasetKey,
        tag: &str,
    ) -> Result<Option<ArtifactRecord>>;
    /// Artifacts of a dataset matching the filter (tag name, partition key/values), by creation
    /// time; `NotFound` if the dataset does not exist.
    async fn list_artifacts(
        &self,
        dataset: &DatasetKey,
        filter: &ArtifactFilter,
        page: &CatalogPage,
    ) -> Result<Page<ArtifactRecord>>;
    /// Tags an artifact. `NotFound` naming the dataset or the artifact; `AlreadyExists` if the
    /// tag name is taken in the dataset (whichever artifact it names).
    async fn add_tag(
        &self,
        dataset: &DatasetKey,
        tag: &str,
        artifact_id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()>;
    /// Replaces the data and metadata of an artifact found by id or tag (datacatalog
    /// `UpdateArtifact`, used when a cache is overwritten) and returns it; `NotFound` if absent.
    async fn update_artifact(
        &self,
        dataset: &DatasetKey,
        by: &ArtifactRef,
        data: Vec<ArtifactDataRecord>,
        metadata: Vec<u8>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<ArtifactRecord>;
    /// The task cache's put, in one transaction: creates the dataset unless it exists (an
    /// existing one keeps its metadata), then, if `tag` is free, the artifact and the tag
    /// ([`PutOutcome::Created`]); if `tag` is taken, replaces the tagged artifact's data,
    /// metadata and source execution when `overwrite` ([`PutOutcome::Replaced`]) or keeps it
    /// ([`PutOutcome::Kept`]).
    async fn put_cached_artifact(
        &self,
        dataset: DatasetRecord,
        artifact: ArtifactRecord,
        tag: &str,
        overwrite: bool,
    ) -> Result<PutOutcome>;
    /// Artifacts selected by `selector` (cache listing per task, version, execution), newest
    /// first, with data, partitions and tags. `InvalidArgument` if the selector is empty.
    async fn list_cached_artifacts(
        &self,
        selector: &ArtifactSelector,
        page: &CatalogPage,
    ) -> Result<Page<ArtifactRecord>>;
    /// Deletes the selected artifacts with their data, partitions and tags (eviction) and
    /// returns how many; datasets stay. `InvalidArgument` if the selector is empty.
    async fn delete_artifacts(&self, selector: &ArtifactSelector) -> Result<u64>;
    /// Acquires, extends or reports a reservation (datacatalog `GetOrExtendReservation`): if
    /// there is none, or it expired by `now`, or `owner_id` holds it, `owner_id` gets it until
    /// `expires_at`; otherwise the current holder's reservation is returned unchanged. Atomic:
    /// of two owners asking at once, exactly one gets it.
    async fn get_or_extend_reservation(
        &self,
        key: &ReservationKey,
        owner_id: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<ReservationRecord>;
    /// Releases a reservation held by `owner_id`; `NotFound` if there is no such reservation
    /// held by that owner.
    async fn release_reservation(&self, key: &ReservationKey, owner_id: &str) -> Result<()>;

    // --- execution leases (engine replicas) -----------------------------------------------

    /// Takes the lease of `execution` for `owner_id` for `ttl` if there is none, it expired
    /// or `owner_id` holds it; true if `owner_id` holds it now. Atomic: of two owners claiming
    /// at once, exactly one gets it. Lease times are the database's clock (`expires_at` = its
    /// now + `ttl`, expiry judged by its now), never the caller's: replicas' clocks may differ.
    async fn claim_lease(
        &self,
        execution: &ExecutionKey,
        owner_id: &str,
        ttl: std::time::Duration,
    ) -> Result<bool>;
    /// Extends every unexpired lease `owner_id` holds to `ttl` from now; returns the
    /// executions renewed. A lease that expired is not renewed, even if no one took it: its
    /// holder must stop running that execution.
    async fn renew_leases(
        &self,
        owner_id: &str,
        ttl: std::time::Duration,
    ) -> Result<Vec<ExecutionKey>>;
    /// Gives up a lease `owner_id` holds: deleted when the execution `finished`, otherwise
    /// expired now so another replica may take the execution over at once. Nothing if
    /// `owner_id` does not hold it.
    async fn release_lease(
        &self,
        execution: &ExecutionKey,
        owner_id: &str,
        finished: bool,
    ) -> Result<()>;
    /// Expires every live lease `owner_id` holds (a graceful stop); how many.
    async fn release_all_leases(&self, owner_id: &str) -> Result<u64>;
    /// Takes up to `limit` expired leases for `owner_id` for `ttl` and returns their
    /// executions. Concurrent callers never get the same one.
    async fn take_expired_leases(
        &self,
        owner_id: &str,
        ttl: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<ExecutionKey>>;
    /// Who holds an unexpired lease of `execution`, if anyone.
    async fn lease_holder(&self, execution: &ExecutionKey) -> Result<Option<String>>;
    /// Sends `payload` (under 8000 bytes) to the listeners of `channel` in every process
    /// (PostgreSQL `NOTIFY`, delivered after the sender's transactions commit); nothing on
    /// SQLite, where only one process runs.
    async fn notify(&self, channel: &str, payload: &str) -> Result<()>;
    /// What other processes (and this one) [`MetadataStore::notify`] on `channel` from now
    /// on; `None` on SQLite. An empty payload: the connection was lost and notifications may
    /// have been missed.
    async fn listen(&self, channel: &str) -> Result<Option<tokio::sync::mpsc::Receiver<String>>>;

    // --- operations ----------------------------------------------------------------------

    /// One round trip to the database (health checks).
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
    /// Whether the store can serve reads *and* writes now: after a write failed for a full
    /// disk this probes with a write (`StorageFull` until space is freed), otherwise a ping.
    async fn ready(&self) -> Result<()> {
        self.ping().await
    }
    /// Closes the connections (graceful shutdown); later calls fail.
    async fn close(&self) {}
    /// `sqlite` or `postgres` (logs, metrics).
    fn backend_name(&self) -> &'static str {
        "unknown"
    }
}
