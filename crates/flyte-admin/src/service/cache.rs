//! The CacheService (`flyteidl/cacheservice/cacheservice.proto`) over the same cache catalog as
//! the DataCatalog service and the engine's task cache.
//!
//! Keys: a key of the form `flyte_cache::CacheKey::service_key` (`project/domain/dataset
//! name/dataset version/tag`, what the engine's entries are listed as) addresses that
//! dataset and tag, so CacheService.Get/Delete see and evict the engine's entries. Any other
//! string is a tag in a dataset of its own (`flyte_cacheservice`).
//!
//! * Get: NOT_FOUND if absent; the output as literals (or the URI it was put with), the
//!   source identifier, the key map and the times.
//! * Put: `output` with literals or a URI; an existing key is ALREADY_EXISTS unless
//!   `overwrite`. Key-map entries `exec-project`/`exec-domain`/`execution-name` name the
//!   producing execution (eviction per execution).
//! * Delete: NOT_FOUND if absent.
//! * Reservations as the DataCatalog's (same table, same key): releasing a reservation not
//!   held is OK.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use flyte_cache::{
    CacheKey, CacheScope, ReservationConfig, TASK_DATASET_PREFIX, artifact_outputs,
    decode_metadata, encode_metadata, metadata_keys, source_execution_of,
};
use flyte_store::{
    ArtifactDataRecord, ArtifactRecord, DatasetKey, DatasetRecord, PutOutcome, StoreError,
};
use flyteidl::cacheservice::cache_service_server::{CacheService, CacheServiceServer};
use flyteidl::cacheservice::{
    CachedOutput, DeleteCacheRequest, DeleteCacheResponse, GetCacheRequest, GetCacheResponse,
    GetOrExtendReservationRequest, GetOrExtendReservationResponse, KeyMapMetadata, Metadata,
    PutCacheRequest, PutCacheResponse, ReleaseReservationRequest, ReleaseReservationResponse,
    Reservation, cached_output,
};
use flyteidl::core::{self, Identifier};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::error::{AdminError, AdminResult, quoted};
use crate::service::admin::common::{missing, run};
use crate::service::datacatalog::{proto_duration, requested_heartbeat, timestamp};
use crate::state::AdminState;

/// The dataset holding CacheService keys that are not task cache keys.
pub const SERVICE_DATASET: &str = "flyte_cacheservice";
/// Key-map entries the service keeps for itself (stripped from what Get returns).
const OUTPUT_URI_KEY: &str = "flyte-rs/output-uri";
const SOURCE_ID_KEY: &str = "flyte-rs/source-identifier";

/// The CacheService implementation over the shared admin state.
#[derive(Clone)]
pub struct CacheApi {
    state: AdminState,
    reservations: ReservationConfig,
}

impl CacheApi {
    pub fn new(state: AdminState) -> Self {
        Self {
            state,
            reservations: ReservationConfig::default(),
        }
    }
}

/// The tonic server for [`CacheApi`]; wrap it in [`crate::fidelity::layer`].
pub fn cache_service(state: AdminState) -> CacheServiceServer<CacheApi> {
    let max = state.config.max_request_bytes;
    CacheServiceServer::new(CacheApi::new(state))
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
}

/// The dataset and tag of a CacheService key.
pub fn entry_of(key: &str) -> AdminResult<CacheKey> {
    if key.is_empty() {
        return Err(missing("key"));
    }
    Ok(CacheKey::from_service_key(key).unwrap_or_else(|| CacheKey {
        dataset: DatasetKey {
            project: String::new(),
            domain: String::new(),
            name: SERVICE_DATASET.into(),
            version: String::new(),
        },
        tag: key.to_string(),
    }))
}

/// The source of an entry: as put, or, for the engine's entries, the task from the metadata.
fn source_identifier(key: &CacheKey, md: &HashMap<String, String>) -> Option<Identifier> {
    if let Some(encoded) = md.get(SOURCE_ID_KEY) {
        return STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| Identifier::decode(b.as_slice()).ok());
    }
    let name = key.dataset.name.strip_prefix(TASK_DATASET_PREFIX)?;
    Some(Identifier {
        resource_type: core::ResourceType::Task as i32,
        project: key.dataset.project.clone(),
        domain: key.dataset.domain.clone(),
        name: name.to_string(),
        version: md
            .get(metadata_keys::TASK_VERSION)
            .cloned()
            .unwrap_or_default(),
        org: String::new(),
    })
}

impl CacheApi {
    async fn get_impl(&self, r: &GetCacheRequest) -> AdminResult<GetCacheResponse> {
        let key = entry_of(&r.key)?;
        let Some(artifact) = self
            .state
            .store
            .lookup_cached_artifact(&key.dataset, &key.tag)
            .await?
        else {
            flyte_cache::metrics::miss(flyte_cache::metrics::VIA_CACHE_SERVICE);
            return Err(AdminError::NotFound(format!(
                "cache key {} not found",
                quoted(&r.key)
            )));
        };
        flyte_cache::metrics::hit(flyte_cache::metrics::VIA_CACHE_SERVICE);
        let mut md = decode_metadata(&artifact.metadata)
            .map_err(|e| AdminError::Internal(format!("stored metadata of {:?}: {e}", r.key)))?;
        let source_identifier = source_identifier(&key, &md);
        let output = match md.remove(OUTPUT_URI_KEY) {
            Some(uri) => cached_output::Output::OutputUri(uri),
            None => {
                cached_output::Output::OutputLiterals(artifact_outputs(&artifact).map_err(|e| {
                    AdminError::Internal(format!("stored outputs of {:?}: {e}", r.key))
                })?)
            }
        };
        md.remove(SOURCE_ID_KEY);
        Ok(GetCacheResponse {
            output: Some(CachedOutput {
                output: Some(output),
                metadata: Some(Metadata {
                    source_identifier,
                    key_map: Some(KeyMapMetadata {
                        values: md.into_iter().collect(),
                    }),
                    created_at: Some(timestamp(artifact.created_at)),
                    last_updated_at: Some(timestamp(artifact.updated_at)),
                }),
            }),
        })
    }

    async fn put_impl(&self, r: &PutCacheRequest) -> AdminResult<PutCacheResponse> {
        let key = entry_of(&r.key)?;
        let output = r.output.as_ref().ok_or_else(|| missing("output"))?;
        let metadata = output.metadata.clone().unwrap_or_default();
        let mut md: HashMap<String, String> = metadata
            .key_map
            .map(|k| k.values.into_iter().collect())
            .unwrap_or_default();
        if let Some(id) = &metadata.source_identifier {
            md.insert(SOURCE_ID_KEY.into(), STANDARD.encode(id.encode_to_vec()));
        }
        let data = match &output.output {
            Some(cached_output::Output::OutputLiterals(map)) => map
                .literals
                .iter()
                .map(|(name, value)| ArtifactDataRecord {
                    name: name.clone(),
                    value: value.encode_to_vec(),
                })
                .collect(),
            Some(cached_output::Output::OutputUri(uri)) if !uri.is_empty() => {
                md.insert(OUTPUT_URI_KEY.into(), uri.clone());
                Vec::new()
            }
            _ => return Err(missing("output.output_literals or output.output_uri")),
        };
        let now = Utc::now();
        let source_execution = source_execution_of(&md);
        let outcome = self
            .state
            .store
            .put_cached_artifact(
                DatasetRecord {
                    key: key.dataset.clone(),
                    uuid: flyte_cache::new_uuid(),
                    metadata: encode_metadata(HashMap::new()),
                    partition_keys: Vec::new(),
                    created_at: now,
                },
                ArtifactRecord {
                    dataset: key.dataset.clone(),
                    artifact_id: flyte_cache::new_uuid(),
                    data,
                    metadata: encode_metadata(md),
                    partitions: Vec::new(),
                    source_execution,
                    tags: Vec::new(),
                    created_at: now,
                    updated_at: now,
                },
                &key.tag,
                r.overwrite,
            )
            .await;
        let via = flyte_cache::metrics::VIA_CACHE_SERVICE;
        match outcome {
            Ok(PutOutcome::Created(_)) => flyte_cache::metrics::put(via, "created"),
            Ok(PutOutcome::Replaced(_)) => flyte_cache::metrics::put(via, "replaced"),
            Ok(PutOutcome::Kept(_)) => {
                return Err(AdminError::AlreadyExists(format!(
                    "cache key {} already holds outputs; put with overwrite to replace them",
                    quoted(&r.key)
                )));
            }
            Err(err) => {
                flyte_cache::metrics::failure(via, "put");
                return Err(err.into());
            }
        }
        Ok(PutCacheResponse {})
    }

    async fn delete_impl(&self, r: &DeleteCacheRequest) -> AdminResult<DeleteCacheResponse> {
        let key = entry_of(&r.key)?;
        let n = flyte_cache::evict(self.state.store.as_ref(), &CacheScope::Key(key))
            .await
            .map_err(cache_error)?;
        if n == 0 {
            return Err(AdminError::NotFound(format!(
                "cache key {} not found",
                quoted(&r.key)
            )));
        }
        Ok(DeleteCacheResponse {})
    }
}

fn cache_error(err: flyte_cache::CacheError) -> AdminError {
    match err {
        flyte_cache::CacheError::Store(e) => e.into(),
        other => AdminError::Internal(other.to_string()),
    }
}

/// Scope for request logs: the project and domain of a task cache key.
fn scope(key: &str) -> (String, String) {
    CacheKey::from_service_key(key)
        .map(|k| (k.dataset.project, k.dataset.domain))
        .unwrap_or_default()
}

#[tonic::async_trait]
impl CacheService for CacheApi {
    async fn get(
        &self,
        request: Request<GetCacheRequest>,
    ) -> Result<Response<GetCacheResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(&r.key);
        run("CacheService.Get", &p, &d, async {
            Ok(Response::new(self.get_impl(&r).await?))
        })
        .await
    }

    async fn put(
        &self,
        request: Request<PutCacheRequest>,
    ) -> Result<Response<PutCacheResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(&r.key);
        run("CacheService.Put", &p, &d, async {
            Ok(Response::new(self.put_impl(&r).await?))
        })
        .await
    }

    async fn delete(
        &self,
        request: Request<DeleteCacheRequest>,
    ) -> Result<Response<DeleteCacheResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(&r.key);
        run("CacheService.Delete", &p, &d, async {
            Ok(Response::new(self.delete_impl(&r).await?))
        })
        .await
    }

    async fn get_or_extend_reservation(
        &self,
        request: Request<GetOrExtendReservationRequest>,
    ) -> Result<Response<GetOrExtendReservationResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(&r.key);
        run("CacheService.GetOrExtendReservation", &p, &d, async {
            let key = entry_of(&r.key)?;
            if r.owner_id.is_empty() {
                return Err(missing("owner_id"));
            }
            let heartbeat = self
                .reservations
                .heartbeat(requested_heartbeat(r.heartbeat_interval.as_ref()));
            let now = Utc::now();
            let held = self
                .state
                .store
                .get_or_extend_reservation(
                    &key.reservation_key(),
                    &r.owner_id,
                    self.reservations.expiry(now, heartbeat),
                    now,
                )
                .await?;
            flyte_cache::metrics::reservation(held.owner_id == r.owner_id);
            Ok(Response::new(GetOrExtendReservationResponse {
                reservation: Some(Reservation {
                    key: r.key.clone(),
                    owner_id: held.owner_id,
                    heartbeat_interval: Some(proto_duration(heartbeat)),
                    expires_at: Some(timestamp(held.expires_at)),
                }),
            }))
        })
        .await
    }

    async fn release_reservation(
        &self,
        request: Request<ReleaseReservationRequest>,
    ) -> Result<Response<ReleaseReservationResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(&r.key);
        run("CacheService.ReleaseReservation", &p, &d, async {
            let key = entry_of(&r.key)?;
            if r.owner_id.is_empty() {
                return Err(missing("owner_id"));
            }
            match self
                .state
                .store
                .release_reservation(&key.reservation_key(), &r.owner_id)
                .await
            {
                Ok(()) | Err(StoreError::NotFound(_)) => {
                    Ok(Response::new(ReleaseReservationResponse {}))
                }
                Err(err) => Err(err.into()),
            }
        })
        .await
    }
}
