//! The metadata store conformance suite: the same tests against every backend.
//!
//! SQLite always runs (a fresh file per test). PostgreSQL runs when
//! `FLYTERS_TEST_POSTGRES_URL` is set (e.g. `export FLYTERS_TEST_POSTGRES_URL=$(scripts/postgres.sh)`);
//! each test then gets its own fresh database, dropped afterwards, so tests run in parallel.
//! Unset, every PostgreSQL test fails (it never passes without running).

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use flyte_store::{
    EntityKey, EntityRecord, EntityScope, Filter, FilterOp, LaunchPlanState, ListQuery,
    MetadataStore, NamedEntityKey, NamedEntityMetadata, ProjectRecord, ResourceType, SortDirection,
    SortKey, StoreError,
};

mod harness {
    use super::*;

    pub const POSTGRES_ENV: &str = "FLYTERS_TEST_POSTGRES_URL";

    /// The PostgreSQL server to test against. Unset, the PostgreSQL tests fail rather than
    /// pass without running: scripts/test.sh always provides one.
    pub fn postgres_url() -> String {
        std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_ENV} is not set: start PostgreSQL with \
                 `export {POSTGRES_ENV}=$(scripts/postgres.sh | tail -n 1)` or run scripts/test.sh"
            )
        })
    }

    /// A fresh SQLite store; the directory lives as long as the returned guard.
    pub async fn sqlite() -> (Arc<dyn MetadataStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}",
            dir.path().join("nested/dir/flyte.db").display()
        );
        let store = flyte_store::open(&url).await.unwrap();
        assert_eq!(store.backend_name(), "sqlite");
        (store, dir)
    }

    /// A fresh PostgreSQL database for one test; dropped when it goes out of scope.
    pub struct PgDatabase {
        admin_url: String,
        name: String,
    }

    impl PgDatabase {
        pub async fn create(admin_url: &str, test: &str) -> (Arc<dyn MetadataStore>, Self) {
            let name = format!(
                "flyte_test_{}_{}_{}",
                test,
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
                    % 1_000_000_000
            );
            let url = with_database(admin_url, &name);
            // `open` creates the database.
            let store = flyte_store::open(&url)
                .await
                .unwrap_or_else(|e| panic!("open {url}: {e}"));
            assert_eq!(store.backend_name(), "postgres");
            (
                store,
                Self {
                    admin_url: admin_url.to_owned(),
                    name,
                },
            )
        }

        pub async fn drop_now(self, store: Arc<dyn MetadataStore>) {
            store.close().await;
            // Drop runs next.
        }
    }

    /// Drops the database even when the test panicked (`WITH (FORCE)` ends open connections).
    impl Drop for PgDatabase {
        fn drop(&mut self) {
            let (url, name) = (self.admin_url.clone(), self.name.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    use sqlx::Connection as _;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }

    /// Replaces the database name in a `postgres://…/db?params` URL.
    pub fn with_database(url: &str, db: &str) -> String {
        let (base, params) = match url.split_once('?') {
            Some((b, p)) => (b, Some(p)),
            None => (url, None),
        };
        let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
        let base = match base[after_scheme..].find('/') {
            Some(i) => &base[..after_scheme + i],
            None => base,
        };
        match params {
            Some(p) => format!("{base}/{db}?{p}"),
            None => format!("{base}/{db}"),
        }
    }
}

/// Instantiates every conformance test once per backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let (store, _dir) = crate::harness::sqlite().await;
                    crate::tests::$test(store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let url = crate::harness::postgres_url();
                    let (store, db) = crate::harness::PgDatabase::create(&url, stringify!($test)).await;
                    crate::tests::$test(store.clone()).await;
                    db.drop_now(store).await;
                }
            )*
        }
    };
}

conformance!(
    seeded_flytesnacks,
    role_bindings_create_list_delete,
    audit_records_insert_filter_page_prune,
    project_create_get_duplicate_update,
    project_list_filters_sort_pages,
    entity_create_get_duplicate_not_found,
    entity_requires_known_project,
    entity_list_each_filter_op,
    entity_list_sorting,
    every_list_sorts_by_updated_at,
    entity_list_pagination,
    entity_list_invalid_queries,
    entity_names,
    launch_plan_activation,
    named_entity_metadata,
    named_entities_list,
    concurrent_writes,
    execution_create_get_duplicate,
    concurrent_creations_each_own_outcome,
    creations_queued_behind_a_write_each_own_outcome,
    execution_list_filters_sort_pages,
    execution_tags_error_code_duration,
    execution_tags_read_back,
    node_children_by_retry_group,
    node_lists_leave_out_the_dynamic_workflow,
    all_nodes_and_tasks_of_one_execution,
    execution_state_batches,
    engine_journal,
    large_batches,
    race_terminate_and_success,
    race_archive_and_finish,
    race_duplicate_events,
    transition_reads_and_guards,
    signal_get_or_create_set,
    signal_list_filters_sort_pages,
    cache_dataset_artifact_tag_lifecycle,
    cache_put_cached_first_wins_and_overwrite,
    cache_eviction_by_task_version_execution,
    cache_reservations,
    cache_reservation_concurrent_owners,
    lease_claim_renew_release,
    lease_expiry_is_the_databases_clock,
    lease_renew_after_expiry_fails,
    lease_take_only_expired,
    lease_two_owners_race,
    lease_notify_reaches_listeners,
    lease_fenced_transition_refused_after_takeover,
    schedules_follow_activation_and_ticks,
    notifications_outbox_once_per_phase_leased,
    notifications_outbox_only_for_wanted_phases,
    notifications_pruned_in_batches,
    attributes_put_get_replace_delete,
    attributes_resolve_most_specific_and_list,
    attributes_applying_all_levels_and_types_at_once,
);

#[test]
fn with_database_replaces_the_name() {
    assert_eq!(
        harness::with_database("postgres://postgres@127.0.0.1:54329/postgres", "x"),
        "postgres://postgres@127.0.0.1:54329/x"
    );
    assert_eq!(
        harness::with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        harness::with_database("postgres://h:1", "x"),
        "postgres://h:1/x"
    );
}

/// SQLite only: the data is in the file, not in the process.
#[tokio::test]
async fn sqlite_reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("flyte.db").display());
    let store = flyte_store::open(&url).await.unwrap();
    store
        .create_project(tests::project("p1", t(1)))
        .await
        .unwrap();
    store
        .create_entity(tests::task("p1", "t", "v1", t(2)))
        .await
        .unwrap();
    // WAL journal: the write-ahead log sits next to the database while it is open.
    assert!(dir.path().join("flyte.db-wal").exists(), "journal_mode=WAL");
    store.close().await;
    drop(store);

    // Reopening runs the migrations again (nothing to do) and does not re-seed.
    let store = flyte_store::open(&url).await.unwrap();
    assert_eq!(
        store.get_project("p1").await.unwrap(),
        tests::project("p1", t(1))
    );
    assert_eq!(
        store
            .get_entity(&tests::key(ResourceType::Task, "p1", "t", "v1"))
            .await
            .unwrap(),
        tests::task("p1", "t", "v1", t(2))
    );
    let all = store.list_projects(&tests::q(100)).await.unwrap();
    assert_eq!(
        all.items.iter().filter(|p| p.id == "flytesnacks").count(),
        1
    );
    assert_eq!(store.backend_name(), "sqlite");
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = flyte_store::open("sqlite::memory:").await.unwrap();
    store.get_project("flytesnacks").await.unwrap();
    store
        .create_project(tests::project("p1", t(1)))
        .await
        .unwrap();
    store.get_project("p1").await.unwrap();
}

#[tokio::test]
async fn unsupported_url_is_invalid_argument() {
    let err = flyte_store::open("mysql://localhost/x")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
}

/// A fixed point in time, `n` minutes into 2024.
fn t(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
        + Duration::minutes(n)
        + Duration::microseconds(123_456)
}

mod attributes_conformance;
mod bindings_conformance;
mod cache_conformance;
mod executions_conformance;
mod leases_conformance;
mod notifications_conformance;
mod schedules_conformance;
mod signals_conformance;

mod tests {
    use super::*;
    pub use crate::attributes_conformance::*;
    pub use crate::bindings_conformance::*;
    pub use crate::cache_conformance::*;
    pub use crate::executions_conformance::*;
    pub use crate::leases_conformance::*;
    pub use crate::notifications_conformance::*;
    pub use crate::schedules_conformance::*;
    pub use crate::signals_conformance::*;

    pub const D: &str = "development";

    pub fn q(limit: u32) -> ListQuery {
        ListQuery {
            limit,
            ..Default::default()
        }
    }

    pub fn f(field: &str, op: FilterOp, values: &[&str]) -> Filter {
        Filter {
            entity: None,
            field: field.into(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    pub fn sort(field: &str, direction: SortDirection) -> Option<SortKey> {
        Some(SortKey {
            field: field.into(),
            direction,
        })
    }

    pub fn project(id: &str, created_at: DateTime<Utc>) -> ProjectRecord {
        ProjectRecord {
            id: id.into(),
            name: format!("{id} name"),
            description: format!("about {id}"),
            labels: vec![1, 2, 3],
            state: 0,
            created_at,
        }
    }

    pub fn key(resource: ResourceType, project: &str, name: &str, version: &str) -> EntityKey {
        EntityKey {
            resource,
            project: project.into(),
            domain: D.into(),
            name: name.into(),
            version: version.into(),
        }
    }

    pub fn entity(
        resource: ResourceType,
        project: &str,
        name: &str,
        version: &str,
        at: DateTime<Utc>,
    ) -> EntityRecord {
        EntityRecord {
            key: key(resource, project, name, version),
            digest: format!("digest of {name}@{version}").into_bytes(),
            spec: vec![0, 1, 2, 255, 0],
            closure: format!("closure {name}").into_bytes(),
            state: (resource == ResourceType::LaunchPlan).then_some(LaunchPlanState::Inactive),
            created_at: at,
        }
    }

    pub fn task(project: &str, name: &str, version: &str, at: DateTime<Utc>) -> EntityRecord {
        entity(ResourceType::Task, project, name, version, at)
    }

    fn scope(name: Option<&str>) -> EntityScope {
        EntityScope {
            project: "flytesnacks".into(),
            domain: D.into(),
            name: name.map(str::to_owned),
        }
    }

    fn versions(page: &flyte_store::Page<EntityRecord>) -> Vec<String> {
        page.items
            .iter()
            .map(|e| format!("{}@{}", e.key.name, e.key.version))
            .collect()
    }

    fn invalid(err: StoreError) -> String {
        match err {
            StoreError::InvalidArgument(msg) => msg,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    // ----------------------------------------------------------------------------------------

    pub async fn seeded_flytesnacks(store: Arc<dyn MetadataStore>) {
        let p = store.get_project("flytesnacks").await.unwrap();
        assert_eq!(p.name, "flytesnacks");
        assert_eq!(p.state, 0);
        assert!(!p.description.is_empty());
        assert!(p.created_at <= Utc::now() + Duration::seconds(5));
        let all = store.list_projects(&q(10)).await.unwrap();
        assert_eq!(all.items.len(), 1);
        assert_eq!(all.next_token, "");
        store.ping().await.unwrap();
    }

    pub async fn project_create_get_duplicate_update(store: Arc<dyn MetadataStore>) {
        let p = project("p1", t(1));
        store.create_project(p.clone()).await.unwrap();
        assert_eq!(store.get_project("p1").await.unwrap(), p);

        let err = store.create_project(project("p1", t(2))).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::AlreadyExists(w) if w == "project p1"),
            "{err:?}"
        );
        assert_eq!(
            store.get_project("p1").await.unwrap(),
            p,
            "the duplicate changed nothing"
        );

        let err = store.get_project("nope").await.unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(w) if w == "project nope"),
            "{err:?}"
        );

        let updated = ProjectRecord {
            name: "renamed".into(),
            description: String::new(),
            labels: vec![],
            state: 1,
            created_at: t(99), // ignored: creation time is kept
            ..p.clone()
        };
        store.update_project(updated.clone()).await.unwrap();
        assert_eq!(
            store.get_project("p1").await.unwrap(),
            ProjectRecord {
                created_at: p.created_at,
                ..updated
            }
        );

        let err = store
            .update_project(project("nope", t(1)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(w) if w == "project nope"),
            "{err:?}"
        );

        // Sub-microsecond precision is dropped on the way in.
        let precise = ProjectRecord {
            created_at: t(5) + Duration::nanoseconds(789),
            ..project("p2", t(5))
        };
        store.create_project(precise).await.unwrap();
        assert_eq!(store.get_project("p2").await.unwrap().created_at, t(5));
    }

    pub async fn project_list_filters_sort_pages(store: Arc<dyn MetadataStore>) {
        for (i, id) in ["alpha", "beta", "gamma", "delta"].iter().enumerate() {
            let mut p = project(id, t(10 + i as i64));
            p.state = if *id == "beta" { 1 } else { 0 };
            store.create_project(p).await.unwrap();
        }
        let ids = |page: flyte_store::Page<ProjectRecord>| {
            page.items.into_iter().map(|p| p.id).collect::<Vec<_>>()
        };

        // Default: newest first (flytesnacks was created now, after 2024).
        let page = store.list_projects(&q(10)).await.unwrap();
        assert_eq!(
            ids(page),
            ["flytesnacks", "delta", "gamma", "beta", "alpha"]
        );

        let query = ListQuery {
            filters: vec![f("state", FilterOp::Eq, &["1"])],
            ..q(10)
        };
        assert_eq!(ids(store.list_projects(&query).await.unwrap()), ["beta"]);

        let query = ListQuery {
            filters: vec![Filter {
                entity: Some("project".into()),
                ..f("name", FilterOp::Contains, &["ta n"])
            }],
            sort: sort("identifier", SortDirection::Ascending),
            ..q(10)
        };
        assert_eq!(
            ids(store.list_projects(&query).await.unwrap()),
            ["beta", "delta"]
        );

        let query = ListQuery {
            sort: sort("identifier", SortDirection::Ascending),
            ..q(2)
        };
        let first = store.list_projects(&query).await.unwrap();
        assert_eq!(first.next_token, "2");
        let second = store
            .list_projects(&ListQuery {
                token: first.next_token.clone(),
                ..query.clone()
            })
            .await
            .unwrap();
        let third = store
            .list_projects(&ListQuery {
                token: second.next_token.clone(),
                ..query.clone()
            })
            .await
            .unwrap();
        assert_eq!(ids(first), ["alpha", "beta"]);
        assert_eq!(ids(second), ["delta", "flytesnacks"]);
        assert_eq!(third.next_token, "");
        assert_eq!(ids(third), ["gamma"]);

        let err = store
            .list_projects(&ListQuery {
                filters: vec![f("digest", FilterOp::Eq, &["x"])],
                ..q(10)
            })
            .await;
        assert!(invalid(err.unwrap_err()).contains("digest"));
    }

    pub async fn entity_create_get_duplicate_not_found(store: Arc<dyn MetadataStore>) {
        for resource in [
            ResourceType::Task,
            ResourceType::Workflow,
            ResourceType::LaunchPlan,
        ] {
            let e = entity(resource, "flytesnacks", "my.entity", "v1", t(1));
            store.create_entity(e.clone()).await.unwrap();
            assert_eq!(store.get_entity(&e.key).await.unwrap(), e);

            let mut other = e.clone();
            other.digest = b"different".to_vec();
            let err = store.create_entity(other).await.unwrap_err();
            let expected = format!("{} flytesnacks/development/my.entity@v1", resource.as_str());
            assert!(
                matches!(&err, StoreError::AlreadyExists(w) if *w == expected),
                "{err:?}"
            );
            assert_eq!(
                store.get_entity(&e.key).await.unwrap(),
                e,
                "the duplicate changed nothing"
            );

            let missing = key(resource, "flytesnacks", "my.entity", "v2");
            let err = store.get_entity(&missing).await.unwrap_err();
            let expected = format!("{} flytesnacks/development/my.entity@v2", resource.as_str());
            assert!(
                matches!(&err, StoreError::NotFound(w) if *w == expected),
                "{err:?}"
            );
        }
        // The same name and version under another resource type or domain is another entity.
        let mut staging = task("flytesnacks", "my.entity", "v1", t(2));
        staging.key.domain = "staging".into();
        store.create_entity(staging.clone()).await.unwrap();
        assert_eq!(store.get_entity(&staging.key).await.unwrap(), staging);

        // Tasks and workflows carry no state even if one is passed; launch plans default to inactive.
        let mut odd = task("flytesnacks", "stateful", "v1", t(3));
        odd.state = Some(LaunchPlanState::Active);
        store.create_entity(odd.clone()).await.unwrap();
        assert_eq!(store.get_entity(&odd.key).await.unwrap().state, None);
        let mut lp = entity(
            ResourceType::LaunchPlan,
            "flytesnacks",
            "lp.default",
            "v1",
            t(3),
        );
        lp.state = None;
        store.create_entity(lp.clone()).await.unwrap();
        assert_eq!(
            store.get_entity(&lp.key).await.unwrap().state,
            Some(LaunchPlanState::Inactive)
        );

        // Empty payloads round-trip.
        let mut empty = task("flytesnacks", "empty", "v1", t(4));
        empty.spec.clear();
        empty.closure.clear();
        empty.digest.clear();
        store.create_entity(empty.clone()).await.unwrap();
        assert_eq!(store.get_entity(&empty.key).await.unwrap(), empty);
    }

    pub async fn entity_requires_known_project(store: Arc<dyn MetadataStore>) {
        let err = store
            .create_entity(task("ghost", "t", "v1", t(1)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(w) if w == "project ghost"),
            "{err:?}"
        );
        let id = NamedEntityKey {
            resource: ResourceType::Task,
            project: "ghost".into(),
            domain: D.into(),
            name: "t".into(),
        };
        let err = store
            .update_named_entity_metadata(&id, NamedEntityMetadata::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(w) if w == "project ghost"),
            "{err:?}"
        );
    }

    /// tasks a@v1..v3 and b@v1, c_x%@v1, created one minute apart.
    async fn seed_tasks(store: &Arc<dyn MetadataStore>) {
        let rows = [
            ("a", "v1"),
            ("a", "v2"),
            ("b", "v1"),
            ("a", "v3"),
            ("c_x%", "v1"),
        ];
        for (i, (name, version)) in rows.iter().enumerate() {
            store
                .create_entity(task("flytesnacks", name, version, t(i as i64)))
                .await
                .unwrap();
        }
        // Noise that no list below may return.
        store
            .create_entity(entity(
                ResourceType::Workflow,
                "flytesnacks",
                "a",
                "v9",
                t(50),
            ))
            .await
            .unwrap();
        let mut other_domain = task("flytesnacks", "a", "v9", t(51));
        other_domain.key.domain = "production".into();
        store.create_entity(other_domain).await.unwrap();
    }

    pub async fn entity_list_each_filter_op(store: Arc<dyn MetadataStore>) {
        seed_tasks(&store).await;
        let list = |filters: Vec<Filter>| {
            let store = store.clone();
            async move {
                let query = ListQuery {
                    filters,
                    sort: sort("created_at", SortDirection::Ascending),
                    ..q(100)
                };
                versions(
                    &store
                        .list_entities(ResourceType::Task, &scope(None), &query)
                        .await
                        .unwrap(),
                )
            }
        };
        assert_eq!(
            list(vec![]).await,
            ["a@v1", "a@v2", "b@v1", "a@v3", "c_x%@v1"]
        );
        assert_eq!(
            list(vec![f("name", FilterOp::Eq, &["a"])]).await,
            ["a@v1", "a@v2", "a@v3"]
        );
        assert_eq!(
            list(vec![f("name", FilterOp::Ne, &["a"])]).await,
            ["b@v1", "c_x%@v1"]
        );
        assert_eq!(
            list(vec![f("version", FilterOp::Gt, &["v1"])]).await,
            ["a@v2", "a@v3"]
        );
        assert_eq!(
            list(vec![f("version", FilterOp::Gte, &["v2"])]).await,
            ["a@v2", "a@v3"]
        );
        assert_eq!(
            list(vec![f("version", FilterOp::Lt, &["v2"])]).await,
            ["a@v1", "b@v1", "c_x%@v1"]
        );
        assert_eq!(
            list(vec![f("version", FilterOp::Lte, &["v1"])]).await,
            ["a@v1", "b@v1", "c_x%@v1"]
        );
        let at2 = t(2).to_rfc3339();
        assert_eq!(
            list(vec![f("created_at", FilterOp::Gte, &[&at2])]).await,
            ["b@v1", "a@v3", "c_x%@v1"]
        );
        assert_eq!(
            list(vec![f("created_at", FilterOp::Lt, &[&at2])]).await,
            ["a@v1", "a@v2"]
        );
        assert_eq!(
            list(vec![f("created_at", FilterOp::Eq, &[&at2])]).await,
            ["b@v1"]
        );
        // Another offset, same instant.
        let at2_plus1 = t(2)
            .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
            .to_rfc3339();
        assert_eq!(
            list(vec![f("created_at", FilterOp::Eq, &[&at2_plus1])]).await,
            ["b@v1"]
        );
        assert_eq!(
            list(vec![f("name", FilterOp::Contains, &["_x%"])]).await,
            ["c_x%@v1"]
        );
        assert_eq!(
            list(vec![f("name", FilterOp::Contains, &["%"])]).await,
            ["c_x%@v1"],
            "% is literal"
        );
        assert_eq!(
            list(vec![f("name", FilterOp::Contains, &["_"])]).await,
            ["c_x%@v1"],
            "_ is literal"
        );
        assert_eq!(
            list(vec![f("name", FilterOp::Contains, &["A"])]).await,
            Vec::<String>::new(),
            "case-sensitive"
        );
        assert_eq!(
            list(vec![f("version", FilterOp::ValueIn, &["v2", "v3"])]).await,
            ["a@v2", "a@v3"]
        );
        assert_eq!(
            list(vec![f("version", FilterOp::ValueNotIn, &["v1", "v3"])]).await,
            ["a@v2"]
        );
        assert_eq!(
            list(vec![f("version", FilterOp::ValueIn, &[])]).await,
            Vec::<String>::new()
        );
        // Filters combine with AND; prefixes naming the listed resource are accepted.
        let prefixed = Filter {
            entity: Some("task".into()),
            ..f("name", FilterOp::Eq, &["a"])
        };
        assert_eq!(
            list(vec![prefixed, f("version", FilterOp::Ne, &["v2"])]).await,
            ["a@v1", "a@v3"]
        );
        assert_eq!(
            list(vec![f("task.name", FilterOp::Eq, &["b"])]).await,
            ["b@v1"]
        );
        assert_eq!(
            list(vec![
                f("project", FilterOp::Eq, &["flytesnacks"]),
                f("domain", FilterOp::Eq, &[D])
            ])
            .await
            .len(),
            5
        );
        assert_eq!(
            list(vec![f("domain", FilterOp::Eq, &["production"])])
                .await
                .len(),
            0,
            "scope wins"
        );

        // Launch plans filter on state.
        for v in ["v1", "v2"] {
            store
                .create_entity(entity(
                    ResourceType::LaunchPlan,
                    "flytesnacks",
                    "lp",
                    v,
                    t(60),
                ))
                .await
                .unwrap();
        }
        store
            .set_launch_plan_state(
                &key(ResourceType::LaunchPlan, "flytesnacks", "lp", "v2"),
                LaunchPlanState::Active,
            )
            .await
            .unwrap();
        let query = ListQuery {
            filters: vec![f("state", FilterOp::Eq, &["1"])],
            ..q(10)
        };
        let page = store
            .list_entities(ResourceType::LaunchPlan, &scope(None), &query)
            .await
            .unwrap();
        assert_eq!(versions(&page), ["lp@v2"]);
        let query = ListQuery {
            filters: vec![f("launch_plan.state", FilterOp::ValueIn, &["0", "1"])],
            ..q(10)
        };
        assert_eq!(
            store
                .list_entities(ResourceType::LaunchPlan, &scope(Some("lp")), &query)
                .await
                .unwrap()
                .items
                .len(),
            2
        );
    }

    pub async fn entity_list_sorting(store: Arc<dyn MetadataStore>) {
        seed_tasks(&store).await;
        let list = |sort_key: Option<SortKey>, name: Option<&'static str>| {
            let store = store.clone();
            async move {
                let query = ListQuery {
                    sort: sort_key,
                    ..q(100)
                };
                versions(
                    &store
                        .list_entities(ResourceType::Task, &scope(name), &query)
                        .await
                        .unwrap(),
                )
            }
        };
        assert_eq!(
            list(None, None).await,
            ["c_x%@v1", "a@v3", "b@v1", "a@v2", "a@v1"],
            "default: created_at desc"
        );
        assert_eq!(
            list(sort("created_at", SortDirection::Ascending), Some("a")).await,
            ["a@v1", "a@v2", "a@v3"]
        );
        assert_eq!(
            list(sort("version", SortDirection::Descending), Some("a")).await,
            ["a@v3", "a@v2", "a@v1"]
        );
        assert_eq!(
            list(sort("task.version", SortDirection::Ascending), Some("a")).await,
            ["a@v1", "a@v2", "a@v3"]
        );
        // Equal keys: a deterministic tiebreak (creation order, in the sort's direction).
        assert_eq!(
            list(sort("name", SortDirection::Ascending), None).await,
            ["a@v1", "a@v2", "a@v3", "b@v1", "c_x%@v1"]
        );
        assert_eq!(
            list(sort("name", SortDirection::Descending), None).await,
            ["c_x%@v1", "b@v1", "a@v3", "a@v2", "a@v1"]
        );

        // Same created_at for all: the tiebreak still orders them.
        for v in ["x1", "x2", "x3"] {
            store
                .create_entity(task("flytesnacks", "same", v, t(100)))
                .await
                .unwrap();
        }
        assert_eq!(
            list(None, Some("same")).await,
            ["same@x3", "same@x2", "same@x1"]
        );
        assert_eq!(
            list(sort("created_at", SortDirection::Ascending), Some("same")).await,
            ["same@x1", "same@x2", "same@x3"]
        );
    }

    /// flytekit sorts by `updated_at` (`pyflyte get launchplan`: `Sort("updated_at", DESC)`),
    /// as flyteadmin allows on every list. Registered entities never change, so it orders as
    /// `created_at` does (the closures report `updated_at` = `created_at`).
    pub async fn every_list_sorts_by_updated_at(store: Arc<dyn MetadataStore>) {
        seed_tasks(&store).await;
        for (i, resource) in [ResourceType::Workflow, ResourceType::LaunchPlan]
            .into_iter()
            .enumerate()
        {
            for (j, name) in ["old", "new"].into_iter().enumerate() {
                store
                    .create_entity(entity(
                        resource,
                        "flytesnacks",
                        name,
                        "v1",
                        t(60 + 10 * i as i64 + j as i64),
                    ))
                    .await
                    .unwrap();
            }
        }
        let by = |key: &str, direction| ListQuery {
            sort: sort(key, direction),
            ..q(100)
        };
        let desc = by("updated_at", SortDirection::Descending);
        let tasks = store
            .list_entities(ResourceType::Task, &scope(Some("a")), &desc)
            .await
            .unwrap();
        assert_eq!(versions(&tasks), ["a@v3", "a@v2", "a@v1"]);
        let prefixed = by("task.updated_at", SortDirection::Ascending);
        let tasks = store
            .list_entities(ResourceType::Task, &scope(Some("a")), &prefixed)
            .await
            .unwrap();
        assert_eq!(versions(&tasks), ["a@v1", "a@v2", "a@v3"]);
        for resource in [ResourceType::Workflow, ResourceType::LaunchPlan] {
            let listed = store
                .list_entities(resource, &scope(None), &desc)
                .await
                .unwrap();
            let names: Vec<_> = listed.items.iter().map(|e| e.key.name.as_str()).collect();
            assert!(
                names.starts_with(&["new", "old"]),
                "{resource:?}: {names:?}"
            );
            let ids = store
                .list_entity_names(resource, "flytesnacks", D, &desc)
                .await
                .unwrap();
            assert!(
                ids.items
                    .starts_with(&["new".to_string(), "old".to_string()]),
                "{resource:?}: {:?}",
                ids.items
            );
            let named = store
                .list_named_entities(resource, "flytesnacks", D, &desc)
                .await
                .unwrap();
            assert_eq!(
                named.items.first().map(|n| n.key.name.as_str()),
                Some("new")
            );
        }
        let projects = store.list_projects(&desc).await.unwrap();
        assert!(!projects.items.is_empty());
    }

    pub async fn entity_list_pagination(store: Arc<dyn MetadataStore>) {
        for i in 0..7 {
            store
                .create_entity(task("flytesnacks", "paged", &format!("v{i}"), t(i)))
                .await
                .unwrap();
        }
        let base = ListQuery {
            sort: sort("created_at", SortDirection::Ascending),
            ..q(3)
        };
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let query = ListQuery {
                token: token.clone(),
                ..base.clone()
            };
            let page = store
                .list_entities(ResourceType::Task, &scope(Some("paged")), &query)
                .await
                .unwrap();
            pages += 1;
            seen.extend(page.items.iter().map(|e| e.key.version.clone()));
            if page.next_token.is_empty() {
                break;
            }
            token = page.next_token;
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, ["v0", "v1", "v2", "v3", "v4", "v5", "v6"]);

        // Exactly a full last page: no token pointing at an empty page.
        let query = ListQuery {
            limit: 7,
            ..base.clone()
        };
        assert_eq!(
            store
                .list_entities(ResourceType::Task, &scope(Some("paged")), &query)
                .await
                .unwrap()
                .next_token,
            ""
        );
        // Past the end: empty.
        let query = ListQuery {
            token: "100".into(),
            ..base.clone()
        };
        let page = store
            .list_entities(ResourceType::Task, &scope(Some("paged")), &query)
            .await
            .unwrap();
        assert!(page.items.is_empty() && page.next_token.is_empty());
        // Bad tokens.
        for token in ["abc", "-3", "1.5"] {
            let query = ListQuery {
                token: token.into(),
                ..base.clone()
            };
            let err = store
                .list_entities(ResourceType::Task, &scope(None), &query)
                .await
                .unwrap_err();
            assert!(invalid(err).contains("token"));
        }
    }

    pub async fn entity_list_invalid_queries(store: Arc<dyn MetadataStore>) {
        seed_tasks(&store).await;
        let list = |query: ListQuery| {
            let store = store.clone();
            async move {
                store
                    .list_entities(ResourceType::Task, &scope(None), &query)
                    .await
                    .map(|p| p.items.len())
            }
        };
        let msg = invalid(
            list(ListQuery {
                filters: vec![f("phase", FilterOp::Eq, &["x"])],
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        assert!(
            msg.contains("\"phase\"") && msg.contains("name, version, created_at"),
            "{msg}"
        );
        // `state` exists for launch plans only.
        let msg = invalid(
            list(ListQuery {
                filters: vec![f("state", FilterOp::Eq, &["1"])],
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        assert!(msg.contains("state"), "{msg}");
        // A prefix naming another resource.
        let wf_name = Filter {
            entity: Some("workflow".into()),
            ..f("name", FilterOp::Eq, &["a"])
        };
        let msg = invalid(
            list(ListQuery {
                filters: vec![wf_name],
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        assert!(msg.contains("workflow"), "{msg}");
        let msg = invalid(
            list(ListQuery {
                filters: vec![f("execution.name", FilterOp::Eq, &["a"])],
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        assert!(msg.contains("execution"), "{msg}");
        // Badly typed values.
        let msg = invalid(
            list(ListQuery {
                filters: vec![f("created_at", FilterOp::Gt, &["last week"])],
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        assert!(msg.contains("RFC 3339"), "{msg}");
        let msg = invalid(
            list(ListQuery {
                filters: vec![f(
                    "created_at",
                    FilterOp::ValueIn,
                    &[&t(1).to_rfc3339(), "x"],
                )],
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        assert!(msg.contains("\"x\""), "{msg}");
        let msg = invalid(
            list(ListQuery {
                filters: vec![f("created_at", FilterOp::Contains, &["2024"])],
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        assert!(msg.contains("text"), "{msg}");
        // Bad sort keys and limits.
        let msg = invalid(
            list(ListQuery {
                sort: sort("digest", SortDirection::Ascending),
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        assert!(
            msg.contains("digest") && msg.contains("valid keys"),
            "{msg}"
        );
        let msg = invalid(
            list(ListQuery {
                sort: sort("workflow.name", SortDirection::Ascending),
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        assert!(msg.contains("workflow"), "{msg}");
        invalid(list(q(0)).await.unwrap_err());
        // Values are bound, never spliced into SQL.
        let injection = f("name", FilterOp::Eq, &["a' OR '1'='1"]);
        assert_eq!(
            list(ListQuery {
                filters: vec![injection],
                ..q(10)
            })
            .await
            .unwrap(),
            0
        );
        assert_eq!(list(q(10)).await.unwrap(), 5, "still all there");
    }

    pub async fn entity_names(store: Arc<dyn MetadataStore>) {
        seed_tasks(&store).await;
        let names = |query: ListQuery| {
            let store = store.clone();
            async move {
                store
                    .list_entity_names(ResourceType::Task, "flytesnacks", D, &query)
                    .await
            }
        };
        // Default: by newest version, newest first (a@v3 at t(3), c at t(4)).
        assert_eq!(names(q(10)).await.unwrap().items, ["c_x%", "a", "b"]);
        assert_eq!(
            names(ListQuery {
                sort: sort("name", SortDirection::Ascending),
                ..q(10)
            })
            .await
            .unwrap()
            .items,
            ["a", "b", "c_x%"]
        );
        assert_eq!(
            names(ListQuery {
                sort: sort("created_at", SortDirection::Ascending),
                ..q(10)
            })
            .await
            .unwrap()
            .items,
            ["b", "a", "c_x%"]
        );
        let first = names(ListQuery {
            sort: sort("name", SortDirection::Ascending),
            ..q(2)
        })
        .await
        .unwrap();
        assert_eq!(
            (first.items.as_slice(), first.next_token.as_str()),
            (&["a".to_string(), "b".to_string()][..], "2")
        );
        let second = names(ListQuery {
            sort: sort("name", SortDirection::Ascending),
            token: first.next_token,
            ..q(2)
        })
        .await
        .unwrap();
        assert_eq!(
            (second.items, second.next_token),
            (vec!["c_x%".to_string()], String::new())
        );
        let filtered = names(ListQuery {
            filters: vec![f("name", FilterOp::ValueIn, &["a", "b", "zzz"])],
            ..q(10)
        })
        .await;
        assert_eq!(filtered.unwrap().items, ["a", "b"]);
        invalid(
            names(ListQuery {
                filters: vec![f("version", FilterOp::Eq, &["v1"])],
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        // Other resource types and domains have their own names.
        let wf = store
            .list_entity_names(ResourceType::Workflow, "flytesnacks", D, &q(10))
            .await
            .unwrap();
        assert_eq!(wf.items, ["a"]);
        let prod = store
            .list_entity_names(ResourceType::Task, "flytesnacks", "production", &q(10))
            .await
            .unwrap();
        assert_eq!(prod.items, ["a"]);
        let none = store
            .list_entity_names(ResourceType::LaunchPlan, "flytesnacks", D, &q(10))
            .await
            .unwrap();
        assert!(none.items.is_empty() && none.next_token.is_empty());
    }

    pub async fn launch_plan_activation(store: Arc<dyn MetadataStore>) {
        let lp = |v: &str| key(ResourceType::LaunchPlan, "flytesnacks", "lp", v);
        for (i, v) in ["v1", "v2", "v3"].iter().enumerate() {
            store
                .create_entity(entity(
                    ResourceType::LaunchPlan,
                    "flytesnacks",
                    "lp",
                    v,
                    t(i as i64),
                ))
                .await
                .unwrap();
        }
        store
            .create_entity(entity(
                ResourceType::LaunchPlan,
                "flytesnacks",
                "other",
                "v1",
                t(9),
            ))
            .await
            .unwrap();
        let state = |v: &'static str| {
            let store = store.clone();
            async move { store.get_entity(&lp(v)).await.unwrap().state.unwrap() }
        };
        let err = store
            .get_active_launch_plan("flytesnacks", D, "lp")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(w) if w.contains("flytesnacks/development/lp")),
            "{err:?}"
        );

        store
            .set_launch_plan_state(&lp("v1"), LaunchPlanState::Active)
            .await
            .unwrap();
        assert_eq!(
            store
                .get_active_launch_plan("flytesnacks", D, "lp")
                .await
                .unwrap()
                .key,
            lp("v1")
        );

        // Activating v2 deactivates v1.
        store
            .set_launch_plan_state(&lp("v2"), LaunchPlanState::Active)
            .await
            .unwrap();
        assert_eq!(
            store
                .get_active_launch_plan("flytesnacks", D, "lp")
                .await
                .unwrap()
                .key,
            lp("v2")
        );
        assert_eq!(state("v1").await, LaunchPlanState::Inactive);
        assert_eq!(state("v3").await, LaunchPlanState::Inactive);

        // Activating the active version again is fine.
        store
            .set_launch_plan_state(&lp("v2"), LaunchPlanState::Active)
            .await
            .unwrap();
        assert_eq!(state("v2").await, LaunchPlanState::Active);

        // Another launch plan is not affected.
        let other = key(ResourceType::LaunchPlan, "flytesnacks", "other", "v1");
        store
            .set_launch_plan_state(&other, LaunchPlanState::Active)
            .await
            .unwrap();
        assert_eq!(state("v2").await, LaunchPlanState::Active);
        let active = ListQuery {
            filters: vec![f("state", FilterOp::Eq, &["1"])],
            ..q(10)
        };
        let page = store
            .list_entities(ResourceType::LaunchPlan, &scope(None), &active)
            .await
            .unwrap();
        assert_eq!(versions(&page), ["other@v1", "lp@v2"]);

        // A missing version: NotFound, and the active one stays active (nothing partial).
        let err = store
            .set_launch_plan_state(&lp("v9"), LaunchPlanState::Active)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(w) if w == "launch_plan flytesnacks/development/lp@v9"),
            "{err:?}"
        );
        assert_eq!(state("v2").await, LaunchPlanState::Active);

        // Deactivating leaves none active.
        store
            .set_launch_plan_state(&lp("v2"), LaunchPlanState::Inactive)
            .await
            .unwrap();
        assert!(matches!(
            store.get_active_launch_plan("flytesnacks", D, "lp").await,
            Err(StoreError::NotFound(_))
        ));

        // Creating an active version deactivates the others too.
        store
            .set_launch_plan_state(&lp("v1"), LaunchPlanState::Active)
            .await
            .unwrap();
        let mut v4 = entity(ResourceType::LaunchPlan, "flytesnacks", "lp", "v4", t(20));
        v4.state = Some(LaunchPlanState::Active);
        store.create_entity(v4).await.unwrap();
        assert_eq!(
            store
                .get_active_launch_plan("flytesnacks", D, "lp")
                .await
                .unwrap()
                .key,
            lp("v4")
        );
        assert_eq!(state("v1").await, LaunchPlanState::Inactive);

        // Only launch plans have a state.
        let err = store
            .set_launch_plan_state(
                &key(ResourceType::Task, "flytesnacks", "lp", "v1"),
                LaunchPlanState::Active,
            )
            .await;
        invalid(err.unwrap_err());

        // Concurrent activations of different versions: exactly one ends up active.
        let mut handles = Vec::new();
        for v in ["v1", "v2", "v3", "v4"] {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..5 {
                    // Activations of one launch plan queue up: none fails.
                    store
                        .set_launch_plan_state(&lp(v), LaunchPlanState::Active)
                        .await
                        .unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let page = store
            .list_entities(ResourceType::LaunchPlan, &scope(Some("lp")), &active)
            .await
            .unwrap();
        assert_eq!(
            page.items.len(),
            1,
            "exactly one active version: {:?}",
            versions(&page)
        );
    }

    pub async fn named_entities_list(store: Arc<dyn MetadataStore>) {
        seed_tasks(&store).await;
        let named = |name: &str| NamedEntityKey {
            resource: ResourceType::Task,
            project: "flytesnacks".into(),
            domain: D.into(),
            name: name.into(),
        };
        let archived = NamedEntityMetadata {
            description: "old".into(),
            state: 1,
        };
        store
            .update_named_entity_metadata(&named("b"), archived.clone())
            .await
            .unwrap();
        // Metadata without any version is not a named entity.
        store
            .update_named_entity_metadata(&named("ghost"), archived.clone())
            .await
            .unwrap();

        let list = |query: ListQuery| {
            let store = store.clone();
            async move {
                store
                    .list_named_entities(ResourceType::Task, "flytesnacks", D, &query)
                    .await
                    .map(|p| (p.items, p.next_token))
            }
        };
        let (items, token) = list(q(10)).await.unwrap();
        assert_eq!(token, "");
        let rows: Vec<(String, NamedEntityMetadata)> = items
            .into_iter()
            .map(|r| (r.key.name.clone(), r.metadata))
            .collect();
        assert_eq!(
            rows,
            [
                ("c_x%".to_string(), NamedEntityMetadata::default()),
                ("a".to_string(), NamedEntityMetadata::default()),
                ("b".to_string(), archived.clone()),
            ]
        );
        let names = |items: Vec<flyte_store::NamedEntityRecord>| {
            items.into_iter().map(|r| r.key.name).collect::<Vec<_>>()
        };
        // State filters apply before paging, defaults included.
        let active = ListQuery {
            filters: vec![f("state", FilterOp::Eq, &["0"])],
            sort: sort("name", SortDirection::Ascending),
            ..q(1)
        };
        let (first, token) = list(active.clone()).await.unwrap();
        assert_eq!((names(first), token.as_str()), (vec!["a".to_string()], "1"));
        let (second, token) = list(ListQuery {
            token,
            ..active.clone()
        })
        .await
        .unwrap();
        assert_eq!(
            (names(second), token),
            (vec!["c_x%".to_string()], String::new())
        );
        let not_active = ListQuery {
            filters: vec![f("named_entity.state", FilterOp::ValueNotIn, &["0", "2"])],
            ..q(10)
        };
        assert_eq!(names(list(not_active).await.unwrap().0), ["b"]);
        let by_name = ListQuery {
            filters: vec![f("task.name", FilterOp::Contains, &["x"])],
            ..q(10)
        };
        assert_eq!(names(list(by_name).await.unwrap().0), ["c_x%"]);
        invalid(
            list(ListQuery {
                filters: vec![f("version", FilterOp::Eq, &["v1"])],
                ..q(10)
            })
            .await
            .unwrap_err(),
        );
        let wf = store
            .list_named_entities(ResourceType::Workflow, "flytesnacks", D, &q(10))
            .await
            .unwrap();
        assert_eq!(names(wf.items), ["a"]);
    }

    pub async fn named_entity_metadata(store: Arc<dyn MetadataStore>) {
        let id = NamedEntityKey {
            resource: ResourceType::Workflow,
            project: "flytesnacks".into(),
            domain: D.into(),
            name: "wf".into(),
        };
        assert_eq!(
            store.get_named_entity_metadata(&id).await.unwrap(),
            NamedEntityMetadata::default()
        );
        let meta = NamedEntityMetadata {
            description: "my workflow".into(),
            state: 1,
        };
        store
            .update_named_entity_metadata(&id, meta.clone())
            .await
            .unwrap();
        assert_eq!(store.get_named_entity_metadata(&id).await.unwrap(), meta);
        let meta2 = NamedEntityMetadata {
            description: "changed".into(),
            state: 0,
        };
        store
            .update_named_entity_metadata(&id, meta2.clone())
            .await
            .unwrap();
        assert_eq!(store.get_named_entity_metadata(&id).await.unwrap(), meta2);
        // Other resource types with the same name are separate.
        let task_id = NamedEntityKey {
            resource: ResourceType::Task,
            ..id.clone()
        };
        assert_eq!(
            store.get_named_entity_metadata(&task_id).await.unwrap(),
            NamedEntityMetadata::default()
        );
    }

    pub async fn concurrent_writes(store: Arc<dyn MetadataStore>) {
        // Many writers at once (SQLite: one writer at a time, waiting on the busy timeout).
        let mut handles = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..10 {
                    store
                        .create_entity(task(
                            "flytesnacks",
                            &format!("w{w}"),
                            &format!("v{i}"),
                            t(i),
                        ))
                        .await
                        .unwrap();
                }
            }));
        }
        // The same key from several writers: exactly one wins.
        let mut racers = Vec::new();
        for _ in 0..6 {
            let store = store.clone();
            racers.push(tokio::spawn(async move {
                store
                    .create_entity(task("flytesnacks", "race", "v1", t(0)))
                    .await
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let mut ok = 0;
        for r in racers {
            match r.await.unwrap() {
                Ok(()) => ok += 1,
                Err(StoreError::AlreadyExists(_)) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(ok, 1);
        let names = store
            .list_entity_names(ResourceType::Task, "flytesnacks", D, &q(100))
            .await
            .unwrap();
        assert_eq!(names.items.len(), 9);
        let all = store
            .list_entities(ResourceType::Task, &scope(None), &q(1000))
            .await
            .unwrap();
        assert_eq!(all.items.len(), 81);
    }
}
