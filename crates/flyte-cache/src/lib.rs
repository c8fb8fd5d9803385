//! Task output caching with Flyte's semantics.
//!
//! * [`CacheKey`]: where a task execution's outputs are cached, computed as propeller does
//!   (dataset `flyte_task-<name>` at `<cache_version>-<in8>-<out8>`, tag
//!   `flyte_cached-<inputs hash>`), byte-exact with upstream's `pbhash` ([`pbhash`]).
//! * [`TaskCache`]: what the engine calls — lookup before running, put after success,
//!   `cache_serialize` reservations — implemented by [`StoreTaskCache`] over the metadata
//!   store's cache catalog, the same tables the DataCatalog and CacheService APIs serve.
//! * [`evict`] and [`list_entries`]: cached entries per task, per cache version, per execution
//!   (the admin API and the CLI call these).
//! * [`metrics`]: hit/miss/put counters, declared in one place.
//!
//! See `docs/cache.md`.

pub mod key;
pub mod metrics;
pub mod pbhash;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use flyte_store::{
    ArtifactDataRecord, ArtifactRecord, ArtifactSelector, CatalogPage, DatasetFilter,
    DatasetRecord, ExecutionKey, MetadataStore, Page, PutOutcome, StoreError,
};
use flyteidl::core::{self, Literal, LiteralMap};
use prost::Message;

pub use key::{CACHED_TAG_PREFIX, CacheKey, KeyError, TASK_DATASET_PREFIX};

/// Metadata keys propeller writes (`transformer.go`): the dataset's `task-version`, the
/// artifact's source execution.
pub mod metadata_keys {
    pub const TASK_VERSION: &str = "task-version";
    pub const EXEC_NAME: &str = "execution-name";
    pub const EXEC_DOMAIN: &str = "exec-domain";
    pub const EXEC_PROJECT: &str = "exec-project";
    pub const EXEC_NODE: &str = "exec-node";
    pub const EXEC_ATTEMPT: &str = "exec-attempt";
}

/// Why a cache operation failed. The engine treats any error as "not cached" (lookup:
/// CACHE_LOOKUP_FAILURE, put: CACHE_PUT_FAILURE) and runs or finishes the task regardless.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value does not decode (corruption, or written by something else).
    #[error("cached {what} of {key} does not decode: {message}")]
    Corrupt {
        key: String,
        what: &'static str,
        message: String,
    },
}

/// Cached outputs found by [`TaskCache::lookup`].
#[derive(Debug, Clone, PartialEq)]
pub struct CacheHit {
    /// The outputs to write to the node's `outputs.pb`.
    pub outputs: LiteralMap,
    /// The task execution that produced them (from the artifact's metadata; missing parts
    /// `unknown` as in propeller's `GetSourceFromMetadata`).
    pub source: core::TaskExecutionIdentifier,
    /// For the node event's `TaskNodeMetadata.catalog_key` (status CACHE_HIT).
    pub catalog: core::CatalogMetadata,
}

/// What [`TaskCache::put`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct PutResult {
    /// For the node event's `TaskNodeMetadata.catalog_key` (status CACHE_POPULATED).
    pub catalog: core::CatalogMetadata,
    /// `false` if the key was already populated (by a concurrent execution) and `overwrite`
    /// was not asked: the first outputs stay, as in Flyte.
    pub stored: bool,
}

/// A `cache_serialize` reservation: whoever holds it runs the task; the others wait for its
/// outputs (look up again) or for it to expire.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub owner_id: String,
    pub expires_at: DateTime<Utc>,
    /// The heartbeat the holder must keep (the requested one, capped by
    /// [`ReservationConfig::max_heartbeat`]).
    pub heartbeat_interval: Duration,
}

impl Reservation {
    pub fn is_held_by(&self, owner_id: &str) -> bool {
        self.owner_id == owner_id
    }
}

/// datacatalog's reservation settings (`heartbeat-grace-period-multiplier`,
/// `max-reservation-heartbeat`): a reservation lasts `grace_multiplier` heartbeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReservationConfig {
    pub grace_multiplier: u32,
    pub max_heartbeat: Duration,
}

impl Default for ReservationConfig {
    fn default() -> Self {
        Self {
            grace_multiplier: 3,
            max_heartbeat: Duration::from_secs(10),
        }
    }
}

impl ReservationConfig {
    /// The heartbeat actually granted: the requested one, at most `max_heartbeat`; a zero
    /// request means `max_heartbeat` (datacatalog ignores a missing interval).
    pub fn heartbeat(&self, requested: Duration) -> Duration {
        if requested.is_zero() || requested > self.max_heartbeat {
            self.max_heartbeat
        } else {
            requested
        }
    }

    /// When a reservation taken at `now` with `heartbeat` expires.
    pub fn expiry(&self, now: DateTime<Utc>, heartbeat: Duration) -> DateTime<Utc> {
        let lease = heartbeat.saturating_mul(self.grace_multiplier);
        now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
    }
}

/// The engine's view of the cache. The engine computes a [`CacheKey`] once per task node
/// execution (`CacheKey::for_task`), then:
///
/// 1. unless `overwrite_cache`: `lookup`; a hit writes `outputs` and succeeds the node with
///    CACHE_HIT and `catalog`;
/// 2. with `cache_serializable`: `get_or_extend_reservation(key, node execution id, hb)` —
///    held by someone else: wait (re-lookup every heartbeat) until a hit or until the
///    reservation is ours; ours: run, extending every heartbeat;
/// 3. on success: `put` (CACHE_POPULATED, or CACHE_PUT_FAILURE on error, never failing the
///    node); failures are never put;
/// 4. with a reservation: `release_reservation` when the node ends, whatever the outcome.
#[async_trait]
pub trait TaskCache: Send + Sync + 'static {
    /// The cached outputs of `key`, or `None` (a miss).
    async fn lookup(&self, key: &CacheKey) -> Result<Option<CacheHit>, CacheError>;
    /// Stores `outputs` of a successful task execution `source` under `key`. With
    /// `overwrite` (`overwrite_cache`) replaces an existing entry; otherwise the first stays.
    async fn put(
        &self,
        key: &CacheKey,
        outputs: &LiteralMap,
        source: &core::TaskExecutionIdentifier,
        overwrite: bool,
    ) -> Result<PutResult, CacheError>;
    /// Takes or extends the reservation of `key` for `owner_id`, or reports its holder.
    async fn get_or_extend_reservation(
        &self,
        key: &CacheKey,
        owner_id: &str,
        heartbeat: Duration,
    ) -> Result<Reservation, CacheError>;
    /// Gives up `owner_id`'s reservation of `key`; not holding it is not an error.
    async fn release_reservation(&self, key: &CacheKey, owner_id: &str) -> Result<(), CacheError>;
}

/// A clock, so tests can move time (reservation expiry).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// [`TaskCache`] over the metadata store's cache catalog.
#[derive(Clone)]
pub struct StoreTaskCache {
    store: Arc<dyn MetadataStore>,
    reservations: ReservationConfig,
    clock: Clock,
}

impl StoreTaskCache {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self {
            store,
            reservations: ReservationConfig::default(),
            clock: Arc::new(Utc::now),
        }
    }

    pub fn with_reservation_config(mut self, config: ReservationConfig) -> Self {
        self.reservations = config;
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }
}

#[async_trait]
impl TaskCache for StoreTaskCache {
    async fn lookup(&self, key: &CacheKey) -> Result<Option<CacheHit>, CacheError> {
        let start = Instant::now();
        let result = self
            .store
            .lookup_cached_artifact(&key.dataset, &key.tag)
            .await;
        let outcome = match result {
            Ok(Some(artifact)) => decode_hit(key, &artifact).map(Some),
            Ok(None) => Ok(None),
            Err(err) => Err(err.into()),
        };
        metrics::lookup_duration(start.elapsed().as_secs_f64());
        match &outcome {
            Ok(Some(_)) => metrics::hit(metrics::VIA_ENGINE),
            Ok(None) => metrics::miss(metrics::VIA_ENGINE),
            Err(err) => {
                metrics::failure(metrics::VIA_ENGINE, "lookup");
                tracing::warn!(key = %key, error = %err, "cache lookup failed");
            }
        }
        outcome
    }

    async fn put(
        &self,
        key: &CacheKey,
        outputs: &LiteralMap,
        source: &core::TaskExecutionIdentifier,
        overwrite: bool,
    ) -> Result<PutResult, CacheError> {
        let now = (self.clock)();
        let (dataset, artifact) = put_records(key, outputs, source, now);
        let result = self
            .store
            .put_cached_artifact(dataset, artifact, &key.tag, overwrite)
            .await;
        let outcome = match result {
            Ok(o) => o,
            Err(err) => {
                metrics::failure(metrics::VIA_ENGINE, "put");
                tracing::warn!(key = %key, error = %err, "cache put failed");
                return Err(err.into());
            }
        };
        let (label, stored) = match &outcome {
            PutOutcome::Created(_) => ("created", true),
            PutOutcome::Kept(_) => ("kept", false),
            PutOutcome::Replaced(_) => ("replaced", true),
        };
        metrics::put(metrics::VIA_ENGINE, label);
        let artifact = outcome.artifact();
        // As propeller: the event of a fresh put names the dataset and tag only; an overwrite
        // also names the source.
        let source = matches!(outcome, PutOutcome::Replaced(_)).then(|| source.clone());
        Ok(PutResult {
            catalog: catalog_metadata(key, &artifact.artifact_id, source),
            stored,
        })
    }

    async fn get_or_extend_reservation(
        &self,
        key: &CacheKey,
        owner_id: &str,
        heartbeat: Duration,
    ) -> Result<Reservation, CacheError> {
        let heartbeat = self.reservations.heartbeat(heartbeat);
        let now = (self.clock)();
        let r = self
            .store
            .get_or_extend_reservation(
                &key.reservation_key(),
                owner_id,
                self.reservations.expiry(now, heartbeat),
                now,
            )
            .await?;
        metrics::reservation(r.owner_id == owner_id);
        Ok(Reservation {
            owner_id: r.owner_id,
            expires_at: r.expires_at,
            heartbeat_interval: heartbeat,
        })
    }

    async fn release_reservation(&self, key: &CacheKey, owner_id: &str) -> Result<(), CacheError> {
        match self
            .store
            .release_reservation(&key.reservation_key(), owner_id)
            .await
        {
            Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

// --- records and metadata ------------------------------------------------------------------

/// A new UUID (v4 format), as propeller names artifacts.
pub fn new_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Encodes a `datacatalog.Metadata` key map.
pub fn encode_metadata(map: HashMap<String, String>) -> Vec<u8> {
    flyteidl::datacatalog::Metadata {
        key_map: map.into_iter().collect(),
    }
    .encode_to_vec()
}

/// Decodes a stored `datacatalog.Metadata` (empty bytes: empty map).
pub fn decode_metadata(bytes: &[u8]) -> Result<HashMap<String, String>, prost::DecodeError> {
    Ok(flyteidl::datacatalog::Metadata::decode(bytes)?
        .key_map
        .into_iter()
        .collect())
}

/// The producing execution recorded in artifact metadata, if complete.
pub fn source_execution_of(metadata: &HashMap<String, String>) -> Option<ExecutionKey> {
    Some(ExecutionKey {
        project: metadata.get(metadata_keys::EXEC_PROJECT)?.clone(),
        domain: metadata.get(metadata_keys::EXEC_DOMAIN)?.clone(),
        name: metadata.get(metadata_keys::EXEC_NAME)?.clone(),
    })
}

fn put_records(
    key: &CacheKey,
    outputs: &LiteralMap,
    source: &core::TaskExecutionIdentifier,
    now: DateTime<Utc>,
) -> (DatasetRecord, ArtifactRecord) {
    use metadata_keys::*;
    let task_version = source
        .task_id
        .as_ref()
        .map(|t| t.version.clone())
        .unwrap_or_default();
    let node = source.node_execution_id.clone().unwrap_or_default();
    let exec = node.execution_id.clone().unwrap_or_default();
    let dataset = DatasetRecord {
        key: key.dataset.clone(),
        uuid: new_uuid(),
        metadata: encode_metadata(HashMap::from([(TASK_VERSION.into(), task_version.clone())])),
        partition_keys: Vec::new(),
        created_at: now,
    };
    // propeller's artifact metadata, plus the task version (propeller keeps it on the
    // dataset only, where the first writer's stays), so a hit reads one artifact.
    let metadata = HashMap::from([
        (EXEC_PROJECT.into(), exec.project.clone()),
        (EXEC_DOMAIN.into(), exec.domain.clone()),
        (EXEC_NAME.into(), exec.name.clone()),
        (EXEC_NODE.into(), node.node_id.clone()),
        (EXEC_ATTEMPT.into(), source.retry_attempt.to_string()),
        (TASK_VERSION.into(), task_version),
    ]);
    let artifact = ArtifactRecord {
        dataset: key.dataset.clone(),
        artifact_id: new_uuid(),
        data: outputs
            .literals
            .iter()
            .map(|(name, value)| ArtifactDataRecord {
                name: name.clone(),
                value: value.encode_to_vec(),
            })
            .collect(),
        metadata: encode_metadata(metadata),
        partitions: Vec::new(),
        source_execution: Some(ExecutionKey {
            project: exec.project,
            domain: exec.domain,
            name: exec.name,
        }),
        tags: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    (dataset, artifact)
}

/// The outputs of a cached artifact.
pub fn artifact_outputs(artifact: &ArtifactRecord) -> Result<LiteralMap, prost::DecodeError> {
    let mut literals = LiteralMap::default().literals;
    for d in &artifact.data {
        literals.insert(d.name.clone(), Literal::decode(d.value.as_slice())?);
    }
    Ok(LiteralMap { literals })
}

fn decode_hit(key: &CacheKey, artifact: &ArtifactRecord) -> Result<CacheHit, CacheError> {
    let corrupt = |what, e: prost::DecodeError| CacheError::Corrupt {
        key: key.to_string(),
        what,
        message: e.to_string(),
    };
    let outputs = artifact_outputs(artifact).map_err(|e| corrupt("outputs", e))?;
    let md = decode_metadata(&artifact.metadata).map_err(|e| corrupt("metadata", e))?;
    let source = source_from_metadata(key, &md);
    Ok(CacheHit {
        catalog: catalog_metadata(key, &artifact.artifact_id, Some(source.clone())),
        outputs,
        source,
    })
}

/// propeller's `GetSourceFromMetadata`: the producing task execution, `unknown` where the
/// metadata lacks a part.
fn source_from_metadata(
    key: &CacheKey,
    md: &HashMap<String, String>,
) -> core::TaskExecutionIdentifier {
    use metadata_keys::*;
    let get = |k: &str, default: &str| md.get(k).cloned().unwrap_or_else(|| default.to_string());
    let task_name = key
        .dataset
        .name
        .strip_prefix(TASK_DATASET_PREFIX)
        .unwrap_or(&key.dataset.name)
        .to_string();
    core::TaskExecutionIdentifier {
        task_id: Some(core::Identifier {
            resource_type: core::ResourceType::Task as i32,
            project: key.dataset.project.clone(),
            domain: key.dataset.domain.clone(),
            name: task_name,
            version: get(TASK_VERSION, "unknown"),
            org: String::new(),
        }),
        node_execution_id: Some(core::NodeExecutionIdentifier {
            node_id: get(EXEC_NODE, "unknown"),
            execution_id: Some(core::WorkflowExecutionIdentifier {
                project: get(EXEC_PROJECT, &key.dataset.project),
                domain: get(EXEC_DOMAIN, &key.dataset.domain),
                name: get(EXEC_NAME, "unknown"),
                org: String::new(),
            }),
        }),
        retry_attempt: md
            .get(EXEC_ATTEMPT)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0),
    }
}

/// `TaskNodeMetadata.catalog_key` for a node event (propeller's `EventCatalogMetadata`).
pub fn catalog_metadata(
    key: &CacheKey,
    artifact_id: &str,
    source: Option<core::TaskExecutionIdentifier>,
) -> core::CatalogMetadata {
    core::CatalogMetadata {
        dataset_id: Some(core::Identifier {
            resource_type: core::ResourceType::Dataset as i32,
            project: key.dataset.project.clone(),
            domain: key.dataset.domain.clone(),
            name: key.dataset.name.clone(),
            version: key.dataset.version.clone(),
            org: String::new(),
        }),
        artifact_tag: Some(core::CatalogArtifactTag {
            artifact_id: artifact_id.to_string(),
            name: key.tag.clone(),
        }),
        source_execution: source.map(core::catalog_metadata::SourceExecution::SourceTaskExecution),
    }
}

// --- listing and eviction ------------------------------------------------------------------

/// Which cached entries to list or evict.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheScope {
    /// Every entry of a task (all cache versions and interfaces).
    Task {
        project: String,
        domain: String,
        name: String,
    },
    /// The entries of a task's `cache_version` (any interface).
    TaskVersion {
        project: String,
        domain: String,
        name: String,
        cache_version: String,
    },
    /// The entries an execution produced.
    Execution(ExecutionKey),
    /// One entry.
    Key(CacheKey),
}

/// A cached entry as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub key: CacheKey,
    pub artifact_id: String,
    pub output_names: Vec<String>,
    pub source_execution: Option<ExecutionKey>,
    pub created_at: DateTime<Utc>,
}

/// The store selector of a scope (`TaskVersion` needs the task's dataset versions).
pub async fn selector(
    store: &dyn MetadataStore,
    scope: &CacheScope,
) -> Result<ArtifactSelector, CacheError> {
    Ok(match scope {
        CacheScope::Task {
            project,
            domain,
            name,
        } => ArtifactSelector {
            project: Some(project.clone()),
            domain: Some(domain.clone()),
            dataset_name: Some(format!("{TASK_DATASET_PREFIX}{name}")),
            ..Default::default()
        },
        CacheScope::TaskVersion {
            project,
            domain,
            name,
            cache_version,
        } => {
            let dataset_name = format!("{TASK_DATASET_PREFIX}{name}");
            let versions =
                task_versions(store, project, domain, &dataset_name, cache_version).await?;
            ArtifactSelector {
                project: Some(project.clone()),
                domain: Some(domain.clone()),
                dataset_name: Some(dataset_name),
                dataset_versions: Some(versions),
                ..Default::default()
            }
        }
        CacheScope::Execution(e) => ArtifactSelector {
            source_execution: Some(e.clone()),
            ..Default::default()
        },
        CacheScope::Key(k) => ArtifactSelector {
            project: Some(k.dataset.project.clone()),
            domain: Some(k.dataset.domain.clone()),
            dataset_name: Some(k.dataset.name.clone()),
            dataset_versions: Some(vec![k.dataset.version.clone()]),
            tag: Some(k.tag.clone()),
            ..Default::default()
        },
    })
}

/// Dataset versions `<cache_version>-<in8>-<out8>` of a task (exactly that cache version:
/// `v1` does not select `v1-beta`'s).
async fn task_versions(
    store: &dyn MetadataStore,
    project: &str,
    domain: &str,
    dataset_name: &str,
    cache_version: &str,
) -> Result<Vec<String>, CacheError> {
    let prefix = format!("{}-", cache_version.trim_matches(' '));
    let filter = DatasetFilter {
        project: Some(project.into()),
        domain: Some(domain.into()),
        name: Some(dataset_name.into()),
        version: None,
    };
    let mut out = Vec::new();
    let mut page = CatalogPage {
        limit: 500,
        token: String::new(),
        ascending: true,
    };
    loop {
        let datasets = store.list_datasets(&filter, &page).await?;
        for d in datasets.items {
            let matches = d.key.version.strip_prefix(&prefix).is_some_and(|rest| {
                let b = rest.as_bytes();
                b.len() == 17 && b[8] == b'-'
            });
            if matches {
                out.push(d.key.version);
            }
        }
        if datasets.next_token.is_empty() {
            return Ok(out);
        }
        page.token = datasets.next_token;
    }
}

/// Cached entries of a scope, newest first (`page.token` from the previous page).
pub async fn list_entries(
    store: &dyn MetadataStore,
    scope: &CacheScope,
    page: &CatalogPage,
) -> Result<Page<CacheEntry>, CacheError> {
    let sel = selector(store, scope).await?;
    let artifacts = store.list_cached_artifacts(&sel, page).await?;
    Ok(Page {
        items: artifacts
            .items
            .into_iter()
            .flat_map(|a| {
                // One entry per tag (a task cache artifact has exactly one).
                a.tags
                    .iter()
                    .map(|t| CacheEntry {
                        key: CacheKey {
                            dataset: a.dataset.clone(),
                            tag: t.name.clone(),
                        },
                        artifact_id: a.artifact_id.clone(),
                        output_names: a.data.iter().map(|d| d.name.clone()).collect(),
                        source_execution: a.source_execution.clone(),
                        created_at: a.created_at,
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        next_token: artifacts.next_token,
    })
}

/// Evicts the cached entries of a scope; how many. The next execution with those inputs misses.
pub async fn evict(store: &dyn MetadataStore, scope: &CacheScope) -> Result<u64, CacheError> {
    let sel = selector(store, scope).await?;
    let n = store.delete_artifacts(&sel).await?;
    metrics::evicted(n);
    tracing::info!(?scope, evicted = n, "cache entries evicted");
    Ok(n)
}
