//! Conformance tests for the cache catalog (run on every backend by the `conformance!` macro).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use flyte_store::{
    ArtifactDataRecord, ArtifactFilter, ArtifactRecord, ArtifactRef, ArtifactSelector, CatalogPage,
    DatasetFilter, DatasetKey, DatasetRecord, ExecutionKey, MetadataStore, PutOutcome,
    ReservationKey, StoreError,
};

use crate::t;

fn dkey(name: &str, version: &str) -> DatasetKey {
    DatasetKey {
        project: "p".into(),
        domain: "d".into(),
        name: name.into(),
        version: version.into(),
    }
}

fn dataset(name: &str, version: &str, at: DateTime<Utc>) -> DatasetRecord {
    DatasetRecord {
        key: dkey(name, version),
        uuid: format!("uuid-{name}-{version}"),
        metadata: b"dataset md".to_vec(),
        partition_keys: Vec::new(),
        created_at: at,
    }
}

fn exec(name: &str) -> ExecutionKey {
    ExecutionKey {
        project: "p".into(),
        domain: "d".into(),
        name: name.into(),
    }
}

fn artifact(ds: &DatasetKey, id: &str, value: &[u8], at: DateTime<Utc>) -> ArtifactRecord {
    ArtifactRecord {
        dataset: ds.clone(),
        artifact_id: id.into(),
        data: vec![
            ArtifactDataRecord {
                name: "o0".into(),
                value: value.to_vec(),
            },
            ArtifactDataRecord {
                name: "a_second".into(),
                value: b"second".to_vec(),
            },
        ],
        metadata: format!("md of {id}").into_bytes(),
        partitions: Vec::new(),
        source_execution: Some(exec("e1")),
        tags: Vec::new(),
        created_at: at,
        updated_at: at,
    }
}

fn page(limit: u32) -> CatalogPage {
    CatalogPage {
        limit,
        ..Default::default()
    }
}

fn ids(items: &[ArtifactRecord]) -> Vec<&str> {
    items.iter().map(|a| a.artifact_id.as_str()).collect()
}

pub async fn cache_dataset_artifact_tag_lifecycle(store: Arc<dyn MetadataStore>) {
    let mut ds = dataset("flyte_task-t", "v1", t(1));
    ds.partition_keys = vec!["region".into(), "day".into()];
    store.create_dataset(ds.clone()).await.unwrap();
    assert_eq!(store.get_dataset(&ds.key).await.unwrap(), ds);
    let err = store.create_dataset(ds.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists(ref m) if m.contains("flyte_task-t")),
        "{err}"
    );
    let err = store.get_dataset(&dkey("nope", "v1")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");

    // Artifacts: data in order, partitions, metadata; unknown dataset, duplicate id.
    let mut a1 = artifact(&ds.key, "a1", b"one", t(2));
    a1.partitions = vec![("region".into(), "eu".into()), ("day".into(), "mon".into())];
    store.create_artifact(a1.clone()).await.unwrap();
    let err = store
        .create_artifact(artifact(&dkey("nope", "v1"), "x", b"", t(2)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref m) if m.contains("nope")),
        "{err}"
    );
    let err = store.create_artifact(a1.clone()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists(ref m) if m.contains("a1")),
        "{err}"
    );
    let got = store
        .get_artifact(&ds.key, &ArtifactRef::Id("a1".into()))
        .await
        .unwrap();
    assert_eq!(got, a1);

    // Tags: by tag, conflicts, unknown artifact.
    store.add_tag(&ds.key, "tag1", "a1", t(3)).await.unwrap();
    let by_tag = store
        .get_artifact(&ds.key, &ArtifactRef::Tag("tag1".into()))
        .await
        .unwrap();
    assert_eq!(by_tag.artifact_id, "a1");
    assert_eq!(by_tag.data, a1.data);
    assert_eq!(by_tag.tags.len(), 1);
    assert_eq!(by_tag.tags[0].name, "tag1");
    let mut a2 = artifact(&ds.key, "a2", b"two", t(4));
    a2.partitions = vec![("region".into(), "us".into()), ("day".into(), "mon".into())];
    store.create_artifact(a2).await.unwrap();
    let err = store
        .add_tag(&ds.key, "tag1", "a2", t(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists(ref m) if m.contains("tag1")),
        "{err}"
    );
    let err = store
        .add_tag(&ds.key, "tag2", "zzz", t(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref m) if m.contains("zzz")),
        "{err}"
    );
    let err = store
        .get_artifact(&ds.key, &ArtifactRef::Tag("missing".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref m) if m.contains("missing")),
        "{err}"
    );
    let err = store
        .get_artifact(&dkey("nope", "v1"), &ArtifactRef::Tag("tag1".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref m) if m.contains("dataset")),
        "{err}"
    );

    // Lists: newest first, tag and partition filters, paging.
    let all = store
        .list_artifacts(&ds.key, &ArtifactFilter::default(), &page(10))
        .await
        .unwrap();
    assert_eq!(ids(&all.items), ["a2", "a1"]);
    assert_eq!(all.next_token, "");
    let first = store
        .list_artifacts(&ds.key, &ArtifactFilter::default(), &page(1))
        .await
        .unwrap();
    assert_eq!(ids(&first.items), ["a2"]);
    let second = store
        .list_artifacts(
            &ds.key,
            &ArtifactFilter::default(),
            &CatalogPage {
                limit: 1,
                token: first.next_token.clone(),
                ascending: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&second.items), ["a1"]);
    assert_eq!(second.next_token, "");
    let tagged = store
        .list_artifacts(
            &ds.key,
            &ArtifactFilter {
                tag: Some("tag1".into()),
                partitions: vec![],
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(ids(&tagged.items), ["a1"]);
    let us = store
        .list_artifacts(
            &ds.key,
            &ArtifactFilter {
                tag: None,
                partitions: vec![("region".into(), "us".into()), ("day".into(), "mon".into())],
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(ids(&us.items), ["a2"]);
    let err = store
        .list_artifacts(&dkey("nope", "v"), &ArtifactFilter::default(), &page(10))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");

    // Update by tag replaces data and metadata.
    let new_data = vec![ArtifactDataRecord {
        name: "o0".into(),
        value: b"replaced".to_vec(),
    }];
    let updated = store
        .update_artifact(
            &ds.key,
            &ArtifactRef::Tag("tag1".into()),
            new_data.clone(),
            b"new md".to_vec(),
            t(9),
        )
        .await
        .unwrap();
    assert_eq!(updated.artifact_id, "a1");
    assert_eq!(updated.data, new_data);
    assert_eq!(updated.metadata, b"new md");
    assert_eq!(updated.updated_at, t(9));
    let err = store
        .update_artifact(
            &ds.key,
            &ArtifactRef::Id("zzz".into()),
            new_data,
            vec![],
            t(9),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");

    // Datasets list with filters.
    store
        .create_dataset(dataset("other", "v1", t(6)))
        .await
        .unwrap();
    store
        .create_dataset(dataset("flyte_task-t", "v2", t(7)))
        .await
        .unwrap();
    let names = |p: &flyte_store::Page<DatasetRecord>| {
        p.items
            .iter()
            .map(|d| format!("{}@{}", d.key.name, d.key.version))
            .collect::<Vec<_>>()
    };
    let all = store
        .list_datasets(&DatasetFilter::default(), &page(10))
        .await
        .unwrap();
    assert_eq!(
        names(&all),
        ["flyte_task-t@v2", "other@v1", "flyte_task-t@v1"]
    );
    assert_eq!(all.items[2].partition_keys, ["region", "day"]);
    let by_name = store
        .list_datasets(
            &DatasetFilter {
                name: Some("flyte_task-t".into()),
                ..Default::default()
            },
            &CatalogPage {
                limit: 10,
                token: String::new(),
                ascending: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&by_name), ["flyte_task-t@v1", "flyte_task-t@v2"]);
    let err = store
        .list_datasets(
            &DatasetFilter::default(),
            &CatalogPage {
                limit: 1,
                token: "x".into(),
                ascending: false,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
}

pub async fn cache_put_cached_first_wins_and_overwrite(store: Arc<dyn MetadataStore>) {
    let ds = dataset("flyte_task-t", "v1-aaaaaaaa-bbbbbbbb", t(1));
    // The dataset is created on first put.
    let a1 = artifact(&ds.key, "a1", b"first", t(2));
    let out = store
        .put_cached_artifact(ds.clone(), a1.clone(), "flyte_cached-x", false)
        .await
        .unwrap();
    let PutOutcome::Created(stored) = out else {
        panic!("{out:?}")
    };
    assert_eq!(stored.data, a1.data);
    assert_eq!(stored.tags[0].name, "flyte_cached-x");
    assert_eq!(store.get_dataset(&ds.key).await.unwrap().uuid, ds.uuid);

    // The one-statement lookup: data in order, the tag, no partitions; None when missing.
    let hit = store
        .lookup_cached_artifact(&ds.key, "flyte_cached-x")
        .await
        .unwrap()
        .expect("hit");
    assert_eq!(hit.data, a1.data);
    assert_eq!(hit.metadata, a1.metadata);
    assert_eq!(hit.source_execution, a1.source_execution);
    assert_eq!(hit.tags.len(), 1);
    for (dataset, tag) in [
        (&ds.key, "flyte_cached-y"),
        (&dkey("nope", "v"), "flyte_cached-x"),
    ] {
        assert_eq!(
            store.lookup_cached_artifact(dataset, tag).await.unwrap(),
            None
        );
    }
    let mut no_data = artifact(&ds.key, "empty", b"", t(2));
    no_data.data.clear();
    store
        .put_cached_artifact(ds.clone(), no_data, "flyte_cached-empty", false)
        .await
        .unwrap();
    let empty = store
        .lookup_cached_artifact(&ds.key, "flyte_cached-empty")
        .await
        .unwrap()
        .expect("hit");
    assert!(empty.data.is_empty());

    // Second put of the same tag keeps the first (and creates no artifact).
    let mut later = dataset("flyte_task-t", "v1-aaaaaaaa-bbbbbbbb", t(3));
    later.uuid = "another".into();
    let a2 = artifact(&ds.key, "a2", b"second", t(3));
    let out = store
        .put_cached_artifact(later.clone(), a2.clone(), "flyte_cached-x", false)
        .await
        .unwrap();
    assert!(
        matches!(&out, PutOutcome::Kept(a) if a.artifact_id == "a1"),
        "{out:?}"
    );
    assert_eq!(store.get_dataset(&ds.key).await.unwrap().uuid, ds.uuid);
    let all = store
        .list_artifacts(&ds.key, &ArtifactFilter::default(), &page(10))
        .await
        .unwrap();
    assert_eq!(ids(&all.items), ["empty", "a1"]);

    // Overwrite replaces data, metadata and source of the tagged artifact.
    let mut a3 = artifact(&ds.key, "a3", b"third", t(4));
    a3.source_execution = Some(exec("e2"));
    let out = store
        .put_cached_artifact(later, a3.clone(), "flyte_cached-x", true)
        .await
        .unwrap();
    let PutOutcome::Replaced(stored) = out else {
        panic!("{out:?}")
    };
    assert_eq!(stored.artifact_id, "a1");
    assert_eq!(stored.data, a3.data);
    assert_eq!(stored.metadata, a3.metadata);
    assert_eq!(stored.source_execution, Some(exec("e2")));

    // Concurrent puts of one new tag: exactly one creates, the others keep it.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            let a = artifact(&ds.key, &format!("c{i}"), b"c", t(5));
            store
                .put_cached_artifact(ds, a, "flyte_cached-concurrent", false)
                .await
                .unwrap()
        }));
    }
    let mut created = Vec::new();
    let mut kept = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            PutOutcome::Created(a) => created.push(a.artifact_id),
            PutOutcome::Kept(a) => kept.push(a.artifact_id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(
        kept.iter().all(|k| *k == created[0]),
        "{kept:?} vs {created:?}"
    );
}

pub async fn cache_eviction_by_task_version_execution(store: Arc<dyn MetadataStore>) {
    // Task t: versions v1 (two entries, from e1 and e2) and v2 (one, from e1); task u: one.
    let put = |name: &str, version: &str, id: &str, tag: &str, e: &str| {
        let ds = dataset(name, version, t(1));
        let mut a = artifact(&ds.key, id, b"x", t(2));
        a.source_execution = Some(exec(e));
        let store = store.clone();
        let tag = tag.to_string();
        async move {
            store.put_cached_artifact(ds, a, &tag, false).await.unwrap();
        }
    };
    put("flyte_task-t", "v1-a-b", "t1", "k1", "e1").await;
    put("flyte_task-t", "v1-a-b", "t2", "k2", "e2").await;
    put("flyte_task-t", "v2-a-b", "t3", "k1", "e1").await;
    put("flyte_task-u", "v1-a-b", "u1", "k1", "e1").await;

    let err = store
        .delete_artifacts(&ArtifactSelector::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");
    let err = store
        .list_cached_artifacts(&ArtifactSelector::default(), &page(10))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err}");

    let task_t = ArtifactSelector {
        project: Some("p".into()),
        domain: Some("d".into()),
        dataset_name: Some("flyte_task-t".into()),
        ..Default::default()
    };
    let listed = store
        .list_cached_artifacts(&task_t, &page(10))
        .await
        .unwrap();
    let mut got = ids(&listed.items);
    got.sort();
    assert_eq!(got, ["t1", "t2", "t3"]);
    assert_eq!(listed.items[0].tags.len(), 1);

    // One entry by dataset and tag.
    let one = ArtifactSelector {
        dataset_versions: Some(vec!["v1-a-b".into()]),
        tag: Some("k1".into()),
        ..task_t.clone()
    };
    let listed = store.list_cached_artifacts(&one, &page(10)).await.unwrap();
    assert_eq!(ids(&listed.items), ["t1"]);

    // Per execution: e2's entry only.
    let by_exec = ArtifactSelector {
        source_execution: Some(exec("e2")),
        ..Default::default()
    };
    assert_eq!(store.delete_artifacts(&by_exec).await.unwrap(), 1);
    let err = store
        .get_artifact(
            &dkey("flyte_task-t", "v1-a-b"),
            &ArtifactRef::Tag("k2".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");

    // Per version: v1 of t only.
    let v1 = ArtifactSelector {
        dataset_versions: Some(vec!["v1-a-b".into()]),
        ..task_t.clone()
    };
    assert_eq!(store.delete_artifacts(&v1).await.unwrap(), 1);
    store
        .get_artifact(
            &dkey("flyte_task-t", "v2-a-b"),
            &ArtifactRef::Tag("k1".into()),
        )
        .await
        .unwrap();

    // Per task: the rest of t; u untouched; a freed tag can be put again.
    assert_eq!(store.delete_artifacts(&task_t).await.unwrap(), 1);
    assert_eq!(store.delete_artifacts(&task_t).await.unwrap(), 0);
    store
        .get_artifact(
            &dkey("flyte_task-u", "v1-a-b"),
            &ArtifactRef::Tag("k1".into()),
        )
        .await
        .unwrap();
    put("flyte_task-t", "v1-a-b", "t4", "k1", "e3").await;
    let again = store
        .get_artifact(
            &dkey("flyte_task-t", "v1-a-b"),
            &ArtifactRef::Tag("k1".into()),
        )
        .await
        .unwrap();
    assert_eq!(again.artifact_id, "t4");
}

pub async fn cache_reservations(store: Arc<dyn MetadataStore>) {
    let key = ReservationKey {
        dataset: dkey("flyte_task-t", "v1"),
        tag: "flyte_cached-x".into(),
    };
    let now = t(10);
    // Free: the first owner gets it.
    let r = store
        .get_or_extend_reservation(&key, "alice", now + Duration::seconds(30), now)
        .await
        .unwrap();
    assert_eq!(
        (r.owner_id.as_str(), r.expires_at),
        ("alice", now + Duration::seconds(30))
    );
    // Held: another owner sees the holder, unchanged.
    let r = store
        .get_or_extend_reservation(
            &key,
            "bob",
            now + Duration::seconds(40),
            now + Duration::seconds(5),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.owner_id.as_str(), r.expires_at),
        ("alice", now + Duration::seconds(30))
    );
    // The holder extends.
    let r = store
        .get_or_extend_reservation(
            &key,
            "alice",
            now + Duration::seconds(60),
            now + Duration::seconds(10),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.owner_id.as_str(), r.expires_at),
        ("alice", now + Duration::seconds(60))
    );
    // Expired: the next owner takes it over.
    let later = now + Duration::seconds(61);
    let r = store
        .get_or_extend_reservation(&key, "bob", later + Duration::seconds(30), later)
        .await
        .unwrap();
    assert_eq!(
        (r.owner_id.as_str(), r.expires_at),
        ("bob", later + Duration::seconds(30))
    );
    // Release: only by the holder.
    let err = store.release_reservation(&key, "alice").await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref m) if m.contains("alice")),
        "{err}"
    );
    store.release_reservation(&key, "bob").await.unwrap();
    let err = store.release_reservation(&key, "bob").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    // Free again after release.
    let r = store
        .get_or_extend_reservation(&key, "carol", later + Duration::seconds(30), later)
        .await
        .unwrap();
    assert_eq!(r.owner_id, "carol");
}

pub async fn cache_reservation_concurrent_owners(store: Arc<dyn MetadataStore>) {
    // Many rounds of two owners racing for a fresh key: exactly one wins each, and both see
    // the winner.
    for round in 0..10 {
        let key = ReservationKey {
            dataset: dkey("flyte_task-t", "v1"),
            tag: format!("tag-{round}"),
        };
        let now = t(1);
        let race = |owner: &'static str| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                store
                    .get_or_extend_reservation(&key, owner, now + Duration::seconds(30), now)
                    .await
                    .unwrap()
            })
        };
        let (a, b) = (race("owner-a"), race("owner-b"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!(a.owner_id, b.owner_id, "round {round}: both see one holder");
        assert_eq!(a.expires_at, b.expires_at);
    }
}
