//! The engine-facing TaskCache over a real SQLite store: lookup/put/overwrite, reservations
//! with expiry, listing and eviction per task, version, execution and key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use flyte_cache::{
    CacheKey, CacheScope, ReservationConfig, StoreTaskCache, TaskCache, evict, list_entries,
};
use flyte_store::{CatalogPage, ExecutionKey, MetadataStore};
use flyteidl::core::{self, Literal, LiteralMap, Primitive, Scalar, literal, primitive, scalar};

fn int(i: i64) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Integer(i)),
            })),
        }))),
        ..Default::default()
    }
}

fn lmap(entries: &[(&str, i64)]) -> LiteralMap {
    LiteralMap {
        literals: entries
            .iter()
            .map(|(k, v)| (k.to_string(), int(*v)))
            .collect(),
    }
}

fn key(task: &str, cache_version: &str, a: i64) -> CacheKey {
    let id = core::Identifier {
        resource_type: core::ResourceType::Task as i32,
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: task.into(),
        version: "task-v1".into(),
        org: String::new(),
    };
    CacheKey::compute(&id, cache_version, None, &lmap(&[("a", a)]), &[]).unwrap()
}

fn source(exec: &str, node: &str, attempt: u32) -> core::TaskExecutionIdentifier {
    core::TaskExecutionIdentifier {
        task_id: Some(core::Identifier {
            resource_type: core::ResourceType::Task as i32,
            project: "flytesnacks".into(),
            domain: "development".into(),
            name: "wf.t".into(),
            version: "task-v1".into(),
            org: String::new(),
        }),
        node_execution_id: Some(core::NodeExecutionIdentifier {
            node_id: node.into(),
            execution_id: Some(core::WorkflowExecutionIdentifier {
                project: "flytesnacks".into(),
                domain: "development".into(),
                name: exec.into(),
                org: String::new(),
            }),
        }),
        retry_attempt: attempt,
    }
}

async fn sqlite() -> (Arc<dyn MetadataStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("flyte.db").display());
    (flyte_store::open(&url).await.unwrap(), dir)
}

#[tokio::test]
async fn miss_put_hit_keep_overwrite() {
    let (store, _dir) = sqlite().await;
    let cache = StoreTaskCache::new(store.clone());
    let k = key("wf.t", "1", 1);

    assert_eq!(cache.lookup(&k).await.unwrap(), None);
    let outputs = lmap(&[("o0", 10), ("o1", 11)]);
    let put = cache
        .put(&k, &outputs, &source("e1", "n0", 2), false)
        .await
        .unwrap();
    assert!(put.stored);
    let tag = put.catalog.artifact_tag.clone().unwrap();
    assert_eq!(tag.name, k.tag);
    let dataset = put.catalog.dataset_id.clone().unwrap();
    assert_eq!(dataset.resource_type, core::ResourceType::Dataset as i32);
    assert_eq!(dataset.version, k.dataset.version);
    assert_eq!(dataset.name, "flyte_task-wf.t");

    let hit = cache.lookup(&k).await.unwrap().expect("hit");
    assert_eq!(hit.outputs, outputs);
    assert_eq!(hit.source, source("e1", "n0", 2));
    assert_eq!(hit.catalog.artifact_tag, Some(tag.clone()));
    assert_eq!(
        hit.catalog.source_execution,
        Some(core::catalog_metadata::SourceExecution::SourceTaskExecution(source("e1", "n0", 2)))
    );
    // Other inputs, other cache version: misses.
    assert_eq!(cache.lookup(&key("wf.t", "1", 2)).await.unwrap(), None);
    assert_eq!(cache.lookup(&key("wf.t", "2", 1)).await.unwrap(), None);

    // A second put (a concurrent identical execution) keeps the first outputs.
    let again = cache
        .put(
            &k,
            &lmap(&[("o0", 99), ("o1", 99)]),
            &source("e2", "n0", 0),
            false,
        )
        .await
        .unwrap();
    assert!(!again.stored);
    assert_eq!(cache.lookup(&k).await.unwrap().unwrap().outputs, outputs);

    // overwrite_cache replaces them.
    let replaced = lmap(&[("o0", 20), ("o1", 21)]);
    let over = cache
        .put(&k, &replaced, &source("e3", "n0", 0), true)
        .await
        .unwrap();
    assert!(over.stored);
    let hit = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(hit.outputs, replaced);
    assert_eq!(hit.source, source("e3", "n0", 0));

    // Outputs of a task without outputs: an empty map hits as such.
    let none = key("wf.none", "1", 1);
    cache
        .put(&none, &LiteralMap::default(), &source("e1", "n1", 0), false)
        .await
        .unwrap();
    assert_eq!(
        cache.lookup(&none).await.unwrap().unwrap().outputs,
        LiteralMap::default()
    );
}

#[tokio::test]
async fn reservations_expire_and_release() {
    let (store, _dir) = sqlite().await;
    let now: Arc<Mutex<DateTime<Utc>>> = Arc::new(Mutex::new(
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    ));
    let clock_now = now.clone();
    let cache = StoreTaskCache::new(store)
        .with_reservation_config(ReservationConfig {
            grace_multiplier: 3,
            max_heartbeat: Duration::from_secs(10),
        })
        .with_clock(Arc::new(move || *clock_now.lock().unwrap()));
    let k = key("wf.t", "1", 1);
    let advance = |s: i64| *now.lock().unwrap() += chrono::Duration::seconds(s);

    let a = cache
        .get_or_extend_reservation(&k, "exec-a/n0", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(a.is_held_by("exec-a/n0"));
    assert_eq!(a.heartbeat_interval, Duration::from_secs(5));
    // Another owner waits while a holds it.
    advance(10);
    let b = cache
        .get_or_extend_reservation(&k, "exec-b/n0", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(b.is_held_by("exec-a/n0"));
    assert_eq!(b.heartbeat_interval, Duration::from_secs(10), "capped");
    // a's holder died: 3 missed heartbeats later b takes over.
    advance(6);
    let b = cache
        .get_or_extend_reservation(&k, "exec-b/n0", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(b.is_held_by("exec-b/n0"));
    // Release by a non-holder is a no-op; by the holder frees it.
    cache.release_reservation(&k, "exec-a/n0").await.unwrap();
    let still = cache
        .get_or_extend_reservation(&k, "exec-c/n0", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(still.is_held_by("exec-b/n0"));
    cache.release_reservation(&k, "exec-b/n0").await.unwrap();
    let c = cache
        .get_or_extend_reservation(&k, "exec-c/n0", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(c.is_held_by("exec-c/n0"));
}

#[tokio::test]
async fn list_and_evict_per_task_version_execution_key() {
    let (store, _dir) = sqlite().await;
    let cache = StoreTaskCache::new(store.clone());
    let out = lmap(&[("o0", 1)]);
    // t: cache versions "1" (inputs 1, 2) and "1-beta" (input 1); u: version "1".
    for (task, v, a, exec) in [
        ("wf.t", "1", 1, "e1"),
        ("wf.t", "1", 2, "e2"),
        ("wf.t", "1-beta", 1, "e1"),
        ("wf.u", "1", 1, "e1"),
    ] {
        cache
            .put(&key(task, v, a), &out, &source(exec, "n0", 0), false)
            .await
            .unwrap();
    }
    let task = |name: &str| CacheScope::Task {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.into(),
    };
    let page = CatalogPage {
        limit: 100,
        ..Default::default()
    };
    let listed = list_entries(store.as_ref(), &task("wf.t"), &page)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    assert!(listed.items.iter().all(|e| e.output_names == ["o0"]));

    // One key.
    let n = evict(store.as_ref(), &CacheScope::Key(key("wf.t", "1", 2)))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(cache.lookup(&key("wf.t", "1", 2)).await.unwrap().is_none());

    // Version "1" of t, not "1-beta".
    let version = CacheScope::TaskVersion {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: "wf.t".into(),
        cache_version: "1".into(),
    };
    assert_eq!(evict(store.as_ref(), &version).await.unwrap(), 1);
    assert!(cache.lookup(&key("wf.t", "1", 1)).await.unwrap().is_none());
    assert!(
        cache
            .lookup(&key("wf.t", "1-beta", 1))
            .await
            .unwrap()
            .is_some()
    );

    // Execution e1: t@1-beta and u.
    let exec = CacheScope::Execution(ExecutionKey {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: "e1".into(),
    });
    assert_eq!(
        list_entries(store.as_ref(), &exec, &page)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert_eq!(evict(store.as_ref(), &exec).await.unwrap(), 2);
    assert!(cache.lookup(&key("wf.u", "1", 1)).await.unwrap().is_none());
    assert_eq!(evict(store.as_ref(), &task("wf.t")).await.unwrap(), 0);

    // After eviction the next run misses and repopulates.
    cache
        .put(&key("wf.t", "1", 1), &out, &source("e9", "n0", 0), false)
        .await
        .unwrap();
    assert_eq!(evict(store.as_ref(), &task("wf.t")).await.unwrap(), 1);
}
