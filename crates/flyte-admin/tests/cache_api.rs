//! DataCatalog and CacheService over the full admin router (one port, as the binary serves
//! it) with SQLite: dataset/artifact/tag lifecycle, list filters and paging, UpdateArtifact,
//! reservations, CacheService Get/Put/Delete, the engine's TaskCache entries seen and evicted
//! through the CacheService, and specific error codes.

use std::sync::Arc;
use std::time::Duration;

use flyte_admin::{AdminConfig, AdminState};
use flyte_blob::BlobStore;
use flyte_cache::{CacheKey, StoreTaskCache, TaskCache};
use flyteidl::cacheservice::cache_service_client::CacheServiceClient;
use flyteidl::cacheservice::{
    self as cs, CachedOutput, DeleteCacheRequest, GetCacheRequest, KeyMapMetadata, PutCacheRequest,
    cached_output,
};
use flyteidl::core::{self, Literal, LiteralMap, Primitive, Scalar, literal, primitive, scalar};
use flyteidl::datacatalog::data_catalog_client::DataCatalogClient;
use flyteidl::datacatalog::*;
use tonic::Code;
use tonic::transport::Channel;

struct Server {
    addr: std::net::SocketAddr,
    catalog: DataCatalogClient<Channel>,
    cache: CacheServiceClient<Channel>,
    state: AdminState,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
    let state = AdminState {
        store,
        blob,
        config: Arc::new(AdminConfig::default()),
        launcher: None,
    };
    let app = flyte_admin::router::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Server {
        addr,
        catalog: DataCatalogClient::new(channel.clone()),
        cache: CacheServiceClient::new(channel),
        state,
        _dir: dir,
    }
}

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

fn ds_id(name: &str, version: &str) -> DatasetId {
    DatasetId {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.into(),
        version: version.into(),
        ..Default::default()
    }
}

fn md(pairs: &[(&str, &str)]) -> Metadata {
    Metadata {
        key_map: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn artifact(ds: &DatasetId, id: &str, value: i64, partitions: &[(&str, &str)]) -> Artifact {
    Artifact {
        id: id.into(),
        dataset: Some(ds.clone()),
        data: vec![ArtifactData {
            name: "o0".into(),
            value: Some(int(value)),
        }],
        metadata: Some(md(&[
            ("exec-project", "flytesnacks"),
            ("exec-domain", "development"),
            ("execution-name", "e1"),
        ])),
        partitions: partitions
            .iter()
            .map(|(k, v)| Partition {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

fn by_tag(ds: &DatasetId, tag: &str) -> GetArtifactRequest {
    GetArtifactRequest {
        dataset: Some(ds.clone()),
        query_handle: Some(get_artifact_request::QueryHandle::TagName(tag.into())),
    }
}

fn tag(ds: &DatasetId, name: &str, artifact: &str) -> AddTagRequest {
    AddTagRequest {
        tag: Some(Tag {
            name: name.into(),
            artifact_id: artifact.into(),
            dataset: Some(ds.clone()),
        }),
    }
}

fn ids(r: &ListArtifactsResponse) -> Vec<&str> {
    r.artifacts.iter().map(|a| a.id.as_str()).collect()
}

fn filter(p: single_property_filter::PropertyFilter) -> FilterExpression {
    FilterExpression {
        filters: vec![SinglePropertyFilter {
            property_filter: Some(p),
            operator: 0,
        }],
    }
}

#[tokio::test]
async fn dataset_artifact_tag_lifecycle() {
    let mut s = start().await;
    let ds = ds_id("flyte_task-wf.t", "1-abc-def");
    let create = |partition_keys: Vec<String>| CreateDatasetRequest {
        dataset: Some(Dataset {
            id: Some(ds.clone()),
            metadata: Some(md(&[("task-version", "v1")])),
            partition_keys,
        }),
    };
    s.catalog
        .create_dataset(create(vec!["region".into()]))
        .await
        .unwrap();
    let err = s.catalog.create_dataset(create(vec![])).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let got = s
        .catalog
        .get_dataset(GetDatasetRequest {
            dataset: Some(ds.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .dataset
        .unwrap();
    assert_eq!(got.partition_keys, ["region"]);
    assert_eq!(got.metadata, Some(md(&[("task-version", "v1")])));
    assert!(!got.id.unwrap().uuid.is_empty());

    // Artifacts: partitions must match the dataset's keys.
    let err = s
        .catalog
        .create_artifact(CreateArtifactRequest {
            artifact: Some(artifact(&ds, "a0", 0, &[])),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    for (id, v, region) in [("a1", 1, "eu"), ("a2", 2, "us")] {
        s.catalog
            .create_artifact(CreateArtifactRequest {
                artifact: Some(artifact(&ds, id, v, &[("region", region)])),
            })
            .await
            .unwrap();
    }
    let err = s
        .catalog
        .create_artifact(CreateArtifactRequest {
            artifact: Some(artifact(&ds, "a1", 1, &[("region", "eu")])),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = s
        .catalog
        .create_artifact(CreateArtifactRequest {
            artifact: Some(artifact(&ds_id("nope", "v"), "x", 1, &[])),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // Tags.
    s.catalog
        .add_tag(tag(&ds, "flyte_cached-k1", "a1"))
        .await
        .unwrap();
    let err = s
        .catalog
        .add_tag(tag(&ds, "flyte_cached-k1", "a2"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = s
        .catalog
        .add_tag(tag(&ds, "t", "missing"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let a = s
        .catalog
        .get_artifact(by_tag(&ds, "flyte_cached-k1"))
        .await
        .unwrap()
        .into_inner()
        .artifact
        .unwrap();
    assert_eq!(a.id, "a1");
    assert_eq!(a.data[0].value, Some(int(1)));
    assert_eq!(a.tags[0].name, "flyte_cached-k1");
    assert_eq!(a.partitions[0].value, "eu");
    let err = s
        .catalog
        .get_artifact(by_tag(&ds, "flyte_cached-none"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let a2 = s
        .catalog
        .get_artifact(GetArtifactRequest {
            dataset: Some(ds.clone()),
            query_handle: Some(get_artifact_request::QueryHandle::ArtifactId("a2".into())),
        })
        .await
        .unwrap()
        .into_inner()
        .artifact
        .unwrap();
    assert_eq!(a2.data[0].value, Some(int(2)));

    // Lists: all (newest first), by tag, by partition, paging; dataset filters refused.
    let list = |filter: Option<FilterExpression>, pagination: Option<PaginationOptions>| {
        ListArtifactsRequest {
            dataset: Some(ds.clone()),
            filter,
            pagination,
        }
    };
    let all = s
        .catalog
        .list_artifacts(list(None, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&all), ["a2", "a1"]);
    let tagged = s
        .catalog
        .list_artifacts(list(
            Some(filter(single_property_filter::PropertyFilter::TagFilter(
                TagPropertyFilter {
                    property: Some(tag_property_filter::Property::TagName(
                        "flyte_cached-k1".into(),
                    )),
                },
            ))),
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&tagged), ["a1"]);
    let us = s
        .catalog
        .list_artifacts(list(
            Some(filter(
                single_property_filter::PropertyFilter::PartitionFilter(PartitionPropertyFilter {
                    property: Some(partition_property_filter::Property::KeyVal(KeyValuePair {
                        key: "region".into(),
                        value: "us".into(),
                    })),
                }),
            )),
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&us), ["a2"]);
    let page1 = s
        .catalog
        .list_artifacts(list(
            None,
            Some(PaginationOptions {
                limit: 1,
                sort_order: pagination_options::SortOrder::Ascending as i32,
                ..Default::default()
            }),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&page1), ["a1"]);
    assert_eq!(page1.next_token, "1");
    let err = s
        .catalog
        .list_artifacts(list(
            Some(filter(
                single_property_filter::PropertyFilter::DatasetFilter(DatasetPropertyFilter {
                    property: Some(dataset_property_filter::Property::Name("x".into())),
                }),
            )),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let datasets = s
        .catalog
        .list_datasets(ListDatasetsRequest {
            filter: Some(filter(
                single_property_filter::PropertyFilter::DatasetFilter(DatasetPropertyFilter {
                    property: Some(dataset_property_filter::Property::Name(
                        "flyte_task-wf.t".into(),
                    )),
                }),
            )),
            pagination: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(datasets.datasets.len(), 1);

    // UpdateArtifact by tag (overwrite_cache).
    let updated = s
        .catalog
        .update_artifact(UpdateArtifactRequest {
            dataset: Some(ds.clone()),
            data: vec![ArtifactData {
                name: "o0".into(),
                value: Some(int(100)),
            }],
            metadata: Some(md(&[("execution-name", "e2")])),
            query_handle: Some(update_artifact_request::QueryHandle::TagName(
                "flyte_cached-k1".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.artifact_id, "a1");
    let a = s
        .catalog
        .get_artifact(by_tag(&ds, "flyte_cached-k1"))
        .await
        .unwrap()
        .into_inner()
        .artifact
        .unwrap();
    assert_eq!(a.data[0].value, Some(int(100)));
    assert_eq!(a.metadata, Some(md(&[("execution-name", "e2")])));

    // Bad requests are INVALID_ARGUMENT.
    for err in [
        s.catalog
            .get_dataset(GetDatasetRequest {
                dataset: Some(ds_id("x", "")),
            })
            .await
            .unwrap_err(),
        s.catalog
            .get_artifact(GetArtifactRequest {
                dataset: Some(ds.clone()),
                query_handle: None,
            })
            .await
            .unwrap_err(),
        s.catalog
            .create_artifact(CreateArtifactRequest {
                artifact: Some(Artifact {
                    data: vec![],
                    ..artifact(&ds, "a9", 1, &[("region", "eu")])
                }),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
}

fn reservation(tag: &str, owner: &str, hb: u64) -> GetOrExtendReservationRequest {
    GetOrExtendReservationRequest {
        reservation_id: Some(ReservationId {
            dataset_id: Some(ds_id("flyte_task-wf.t", "1-abc-def")),
            tag_name: tag.into(),
        }),
        owner_id: owner.into(),
        heartbeat_interval: Some(pbjson_types::Duration {
            seconds: hb as i64,
            nanos: 0,
        }),
    }
}

#[tokio::test]
async fn datacatalog_reservations() {
    let mut s = start().await;
    let r = s
        .catalog
        .get_or_extend_reservation(reservation("k", "alice", 5))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(r.owner_id, "alice");
    assert_eq!(r.heartbeat_interval.unwrap().seconds, 5);
    // Held by alice: bob sees alice; the heartbeat is capped at 10 s.
    let r = s
        .catalog
        .get_or_extend_reservation(reservation("k", "bob", 60))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(r.owner_id, "alice");
    assert_eq!(r.heartbeat_interval.unwrap().seconds, 10);
    // Release by bob: OK, nothing changes; by alice: freed, bob gets it.
    let release = |owner: &str| ReleaseReservationRequest {
        reservation_id: reservation("k", owner, 0).reservation_id,
        owner_id: owner.into(),
    };
    s.catalog.release_reservation(release("bob")).await.unwrap();
    s.catalog
        .release_reservation(release("alice"))
        .await
        .unwrap();
    let r = s
        .catalog
        .get_or_extend_reservation(reservation("k", "bob", 5))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(r.owner_id, "bob");
    let err = s
        .catalog
        .get_or_extend_reservation(reservation("k", "", 5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

fn put(key: &str, value: i64, overwrite: bool) -> PutCacheRequest {
    PutCacheRequest {
        key: key.into(),
        output: Some(CachedOutput {
            output: Some(cached_output::Output::OutputLiterals(LiteralMap {
                literals: [("o0".to_string(), int(value))].into_iter().collect(),
            })),
            metadata: Some(cs::Metadata {
                source_identifier: Some(core::Identifier {
                    resource_type: core::ResourceType::Task as i32,
                    name: "wf.t".into(),
                    ..Default::default()
                }),
                key_map: Some(KeyMapMetadata {
                    values: [("k".to_string(), "v".to_string())].into_iter().collect(),
                }),
                ..Default::default()
            }),
        }),
        overwrite,
    }
}

fn outputs_of(r: &cs::GetCacheResponse) -> LiteralMap {
    match r.output.as_ref().unwrap().output.as_ref().unwrap() {
        cached_output::Output::OutputLiterals(m) => m.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cache_service_get_put_delete() {
    let mut s = start().await;
    let get = |key: &str| GetCacheRequest { key: key.into() };
    let err = s.cache.get(get("my-key")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    s.cache.put(put("my-key", 1, false)).await.unwrap();
    let got = s.cache.get(get("my-key")).await.unwrap().into_inner();
    assert_eq!(
        outputs_of(&got),
        LiteralMap {
            literals: [("o0".to_string(), int(1))].into_iter().collect()
        }
    );
    let meta = got.output.unwrap().metadata.unwrap();
    assert_eq!(meta.source_identifier.unwrap().name, "wf.t");
    assert_eq!(
        meta.key_map.unwrap().values.get("k").map(String::as_str),
        Some("v")
    );
    assert!(meta.created_at.is_some());

    let err = s.cache.put(put("my-key", 2, false)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    s.cache.put(put("my-key", 3, true)).await.unwrap();
    let got = s.cache.get(get("my-key")).await.unwrap().into_inner();
    assert_eq!(outputs_of(&got).literals["o0"], int(3));

    // A URI output.
    s.cache
        .put(PutCacheRequest {
            key: "uri-key".into(),
            output: Some(CachedOutput {
                output: Some(cached_output::Output::OutputUri("s3://b/outputs.pb".into())),
                metadata: None,
            }),
            overwrite: false,
        })
        .await
        .unwrap();
    let got = s.cache.get(get("uri-key")).await.unwrap().into_inner();
    assert_eq!(
        got.output.unwrap().output,
        Some(cached_output::Output::OutputUri("s3://b/outputs.pb".into()))
    );

    // Delete.
    s.cache
        .delete(DeleteCacheRequest {
            key: "my-key".into(),
        })
        .await
        .unwrap();
    let err = s.cache.get(get("my-key")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = s
        .cache
        .delete(DeleteCacheRequest {
            key: "my-key".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // Bad requests.
    let err = s.cache.get(get("")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = s
        .cache
        .put(PutCacheRequest {
            key: "k2".into(),
            output: None,
            overwrite: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Reservations by key.
    let res = |owner: &str| cs::GetOrExtendReservationRequest {
        key: "my-key".into(),
        owner_id: owner.into(),
        heartbeat_interval: None,
    };
    let r = s
        .cache
        .get_or_extend_reservation(res("a"))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!((r.owner_id.as_str(), r.key.as_str()), ("a", "my-key"));
    let r = s
        .cache
        .get_or_extend_reservation(res("b"))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(r.owner_id, "a");
    s.cache
        .release_reservation(cs::ReleaseReservationRequest {
            key: "my-key".into(),
            owner_id: "a".into(),
        })
        .await
        .unwrap();
    let r = s
        .cache
        .get_or_extend_reservation(res("b"))
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(r.owner_id, "b");
}

/// The engine's entries (TaskCache) are the DataCatalog's and the CacheService's: visible by
/// tag, gettable by service key, evicted by CacheService.Delete.
#[tokio::test]
async fn engine_entries_are_served_and_evicted_by_the_apis() {
    let mut s = start().await;
    let task_cache = StoreTaskCache::new(s.state.store.clone());
    let task = core::Identifier {
        resource_type: core::ResourceType::Task as i32,
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: "wf.t".into(),
        version: "v1".into(),
        org: String::new(),
    };
    let inputs = LiteralMap {
        literals: [("a".to_string(), int(1))].into_iter().collect(),
    };
    let key = CacheKey::compute(&task, "1", None, &inputs, &[]).unwrap();
    let outputs = LiteralMap {
        literals: [("o0".to_string(), int(42))].into_iter().collect(),
    };
    let source = core::TaskExecutionIdentifier {
        task_id: Some(task.clone()),
        node_execution_id: Some(core::NodeExecutionIdentifier {
            node_id: "n0".into(),
            execution_id: Some(core::WorkflowExecutionIdentifier {
                project: "flytesnacks".into(),
                domain: "development".into(),
                name: "e1".into(),
                org: String::new(),
            }),
        }),
        retry_attempt: 0,
    };
    task_cache
        .put(&key, &outputs, &source, false)
        .await
        .unwrap();

    // DataCatalog: propeller's lookup (GetDataset, GetArtifact by tag).
    let ds = DatasetId {
        project: key.dataset.project.clone(),
        domain: key.dataset.domain.clone(),
        name: key.dataset.name.clone(),
        version: key.dataset.version.clone(),
        ..Default::default()
    };
    let dataset = s
        .catalog
        .get_dataset(GetDatasetRequest {
            dataset: Some(ds.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .dataset
        .unwrap();
    assert_eq!(dataset.metadata.unwrap().key_map["task-version"], "v1");
    let a = s
        .catalog
        .get_artifact(by_tag(&ds, &key.tag))
        .await
        .unwrap()
        .into_inner()
        .artifact
        .unwrap();
    assert_eq!(a.data[0].value, Some(int(42)));
    assert_eq!(a.metadata.unwrap().key_map["execution-name"], "e1");

    // CacheService by the service key.
    let got = s
        .cache
        .get(GetCacheRequest {
            key: key.service_key(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outputs_of(&got), outputs);
    assert_eq!(
        got.output
            .unwrap()
            .metadata
            .unwrap()
            .source_identifier
            .unwrap()
            .version,
        "v1"
    );
    s.cache
        .delete(DeleteCacheRequest {
            key: key.service_key(),
        })
        .await
        .unwrap();
    assert!(task_cache.lookup(&key).await.unwrap().is_none());

    // A reservation taken by the engine is the one the APIs see.
    let held = task_cache
        .get_or_extend_reservation(&key, "exec-e1/n0", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(held.is_held_by("exec-e1/n0"));
    let r = s
        .cache
        .get_or_extend_reservation(cs::GetOrExtendReservationRequest {
            key: key.service_key(),
            owner_id: "someone-else".into(),
            heartbeat_interval: None,
        })
        .await
        .unwrap()
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(r.owner_id, "exec-e1/n0");
}

/// The REST cache endpoints (a Flyte-RS addition): list and evict per task, per cache version
/// and per execution; the engine's next lookup misses what was evicted.
#[tokio::test]
async fn rest_lists_and_evicts_per_task_version_and_execution() {
    let s = start().await;
    let task_cache = StoreTaskCache::new(s.state.store.clone());
    let task = core::Identifier {
        resource_type: core::ResourceType::Task as i32,
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: "wf.t".into(),
        version: "v1".into(),
        org: String::new(),
    };
    let source = |exec: &str| core::TaskExecutionIdentifier {
        task_id: Some(task.clone()),
        node_execution_id: Some(core::NodeExecutionIdentifier {
            node_id: "n0".into(),
            execution_id: Some(core::WorkflowExecutionIdentifier {
                project: "flytesnacks".into(),
                domain: "development".into(),
                name: exec.into(),
                org: String::new(),
            }),
        }),
        retry_attempt: 0,
    };
    let key = |cache_version: &str, a: i64| {
        let inputs = LiteralMap {
            literals: [("a".to_string(), int(a))].into_iter().collect(),
        };
        CacheKey::compute(&task, cache_version, None, &inputs, &[]).unwrap()
    };
    let outputs = LiteralMap {
        literals: [("o0".to_string(), int(1))].into_iter().collect(),
    };
    for (version, a, exec) in [("1", 1, "e1"), ("1", 2, "e1"), ("2", 1, "e2")] {
        task_cache
            .put(&key(version, a), &outputs, &source(exec), false)
            .await
            .unwrap();
    }

    let http = reqwest::Client::new();
    let url = |query: &str| {
        format!(
            "http://{}/api/v1/cache/flytesnacks/development?{query}",
            s.addr
        )
    };
    let count = |body: serde_json::Value| body["entries"].as_array().unwrap().len();
    let get = |query: &'static str| {
        let (http, url) = (http.clone(), url(query));
        async move { http.get(url).send().await.unwrap() }
    };
    let delete = |query: &'static str| {
        let (http, url) = (http.clone(), url(query));
        async move { http.delete(url).send().await.unwrap() }
    };

    let all = get("task=wf.t")
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(count(all), 3);
    let v1 = get("task=wf.t&cache_version=1")
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(count(v1), 2);

    let r = delete("execution=e2").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["evicted"], 1);
    assert!(task_cache.lookup(&key("2", 1)).await.unwrap().is_none());
    assert!(task_cache.lookup(&key("1", 1)).await.unwrap().is_some());

    let r = delete("task=wf.t&cache_version=1").await;
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["evicted"], 2);
    let left = get("task=wf.t")
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(count(left), 0);
    assert!(task_cache.lookup(&key("1", 2)).await.unwrap().is_none());

    // Both a task and an execution: a clear INVALID_ARGUMENT, nothing evicted.
    let r = delete("task=wf.t&execution=e1").await;
    assert_eq!(r.status(), 400);
    let body = r.json::<serde_json::Value>().await.unwrap();
    assert_eq!(body["code"], Code::InvalidArgument as i32);
    assert!(body["message"].as_str().unwrap().contains("task"), "{body}");
}
