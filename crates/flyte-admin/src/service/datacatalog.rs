//! The DataCatalog service (datacatalog `pkg/manager/impl/{dataset,artifact,tag,reservation}_manager.go`)
//! over the metadata store's cache catalog — the same tables the engine's task cache
//! (`flyte_cache::StoreTaskCache`) and the CacheService use, so whatever one writes the others see.
//!
//! Behaviour matched, and where it differs:
//! * Validation as datacatalog's validators: dataset ids need project, domain, name and version;
//!   artifacts an id and at least one data entry; partitions must match the dataset's keys;
//!   list filters must fit what is listed (ListArtifacts: tag and partition filters;
//!   ListDatasets: dataset filters); only EQUALS and CREATION_TIME sorting exist. All
//!   INVALID_ARGUMENT.
//! * Conflicts are ALREADY_EXISTS (dataset, artifact id, tag name); missing datasets,
//!   artifacts and tags NOT_FOUND.
//! * Artifact data are kept inline in the store (datacatalog writes each to the blob store).
//! * GetArtifact and UpdateArtifact by artifact id require the dataset (datacatalog accepts
//!   none and then finds nothing).
//! * Lists: `next_token` is empty on the last page (datacatalog always returns the offset).
//! * ReleaseReservation of a reservation not held is OK (as datacatalog).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flyte_cache::{ReservationConfig, decode_metadata, encode_metadata, source_execution_of};
use flyte_store::{
    ArtifactDataRecord, ArtifactFilter, ArtifactRecord, ArtifactRef, CatalogPage, DatasetFilter,
    DatasetKey, DatasetRecord, ReservationKey, StoreError,
};
use flyteidl::core::Literal;
use flyteidl::datacatalog::data_catalog_server::{DataCatalog, DataCatalogServer};
use flyteidl::datacatalog::{
    AddTagRequest, AddTagResponse, Artifact, ArtifactData, CreateArtifactRequest,
    CreateArtifactResponse, CreateDatasetRequest, CreateDatasetResponse, Dataset, DatasetId,
    FilterExpression, GetArtifactRequest, GetArtifactResponse, GetDatasetRequest,
    GetDatasetResponse, GetOrExtendReservationRequest, GetOrExtendReservationResponse,
    ListArtifactsRequest, ListArtifactsResponse, ListDatasetsRequest, ListDatasetsResponse,
    Metadata, PaginationOptions, Partition, ReleaseReservationRequest, ReleaseReservationResponse,
    Reservation, ReservationId, Tag, UpdateArtifactRequest, UpdateArtifactResponse,
    dataset_property_filter, get_artifact_request, pagination_options, partition_property_filter,
    single_property_filter, tag_property_filter, update_artifact_request,
};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::error::{AdminError, AdminResult, quoted};
use crate::service::admin::common::{missing, run};
use crate::state::AdminState;

/// The DataCatalog implementation over the shared admin state.
#[derive(Clone)]
pub struct DataCatalogApi {
    state: AdminState,
    reservations: ReservationConfig,
}

impl DataCatalogApi {
    pub fn new(state: AdminState) -> Self {
        Self {
            state,
            reservations: ReservationConfig::default(),
        }
    }
}

/// The tonic server for [`DataCatalogApi`]; wrap it in [`crate::fidelity::layer`].
pub fn data_catalog_service(state: AdminState) -> DataCatalogServer<DataCatalogApi> {
    let max = state.config.max_request_bytes;
    DataCatalogServer::new(DataCatalogApi::new(state))
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
}

// --- conversions (shared with the CacheService) -------------------------------------------

pub(crate) fn timestamp(at: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

pub(crate) fn proto_duration(d: Duration) -> pbjson_types::Duration {
    pbjson_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A requested heartbeat (negative or missing: none requested).
pub(crate) fn requested_heartbeat(d: Option<&pbjson_types::Duration>) -> Duration {
    d.filter(|d| d.seconds >= 0 && d.nanos >= 0)
        .map(|d| Duration::new(d.seconds as u64, d.nanos as u32))
        .unwrap_or_default()
}

fn stored_metadata(bytes: &[u8]) -> AdminResult<HashMap<String, String>> {
    decode_metadata(bytes).map_err(|e| AdminError::Internal(format!("stored metadata: {e}")))
}

pub(crate) fn stored_literal(bytes: &[u8], name: &str) -> AdminResult<Literal> {
    Literal::decode(bytes).map_err(|e| AdminError::Internal(format!("stored value {name}: {e}")))
}

/// datacatalog's `ValidateDatasetID`.
fn dataset_key(id: Option<&DatasetId>, field: &str) -> AdminResult<DatasetKey> {
    let id = id.ok_or_else(|| missing(field))?;
    for (name, value) in [
        ("project", &id.project),
        ("domain", &id.domain),
        ("name", &id.name),
        ("version", &id.version),
    ] {
        if value.is_empty() {
            return Err(missing(&format!("{field}.{name}")));
        }
    }
    Ok(DatasetKey {
        project: id.project.clone(),
        domain: id.domain.clone(),
        name: id.name.clone(),
        version: id.version.clone(),
    })
}

fn dataset_id(key: &DatasetKey, uuid: &str) -> DatasetId {
    DatasetId {
        project: key.project.clone(),
        domain: key.domain.clone(),
        name: key.name.clone(),
        version: key.version.clone(),
        uuid: uuid.to_string(),
        org: String::new(),
    }
}

fn dataset_to_proto(d: DatasetRecord) -> AdminResult<Dataset> {
    Ok(Dataset {
        id: Some(dataset_id(&d.key, &d.uuid)),
        metadata: Some(Metadata {
            key_map: stored_metadata(&d.metadata)?.into_iter().collect(),
        }),
        partition_keys: d.partition_keys,
    })
}

fn artifact_to_proto(a: ArtifactRecord) -> AdminResult<Artifact> {
    let id = dataset_id(&a.dataset, "");
    let data = a
        .data
        .iter()
        .map(|d| {
            Ok(ArtifactData {
                name: d.name.clone(),
                value: Some(stored_literal(&d.value, &d.name)?),
            })
        })
        .collect::<AdminResult<_>>()?;
    Ok(Artifact {
        id: a.artifact_id.clone(),
        data,
        metadata: Some(Metadata {
            key_map: stored_metadata(&a.metadata)?.into_iter().collect(),
        }),
        partitions: a
            .partitions
            .into_iter()
            .map(|(key, value)| Partition { key, value })
            .collect(),
        tags: a
            .tags
            .into_iter()
            .map(|t| Tag {
                name: t.name,
                artifact_id: a.artifact_id.clone(),
                dataset: Some(id.clone()),
            })
            .collect(),
        created_at: Some(timestamp(a.created_at)),
        dataset: Some(id),
    })
}

fn data_records(data: &[ArtifactData]) -> AdminResult<Vec<ArtifactDataRecord>> {
    if data.is_empty() {
        return Err(missing("artifact data"));
    }
    data.iter()
        .map(|d| {
            Ok(ArtifactDataRecord {
                name: d.name.clone(),
                value: d
                    .value
                    .as_ref()
                    .ok_or_else(|| missing(&format!("value of artifact data {:?}", d.name)))?
                    .encode_to_vec(),
            })
        })
        .collect()
}

fn metadata_map(m: Option<&Metadata>) -> HashMap<String, String> {
    m.map(|m| m.key_map.clone().into_iter().collect())
        .unwrap_or_default()
}

/// datacatalog's `ApplyPagination`: offset token, limit (0: 50), creation time only.
fn catalog_page(p: Option<&PaginationOptions>) -> AdminResult<CatalogPage> {
    let Some(p) = p else {
        return Ok(CatalogPage::default());
    };
    if p.sort_key != pagination_options::SortKey::CreationTime as i32 {
        return Err(AdminError::invalid(format!(
            "invalid pagination sort key {}; valid: CREATION_TIME",
            p.sort_key
        )));
    }
    let ascending = match pagination_options::SortOrder::try_from(p.sort_order) {
        Ok(pagination_options::SortOrder::Ascending) => true,
        Ok(pagination_options::SortOrder::Descending) => false,
        Err(_) => {
            return Err(AdminError::invalid(format!(
                "invalid pagination sort order {}",
                p.sort_order
            )));
        }
    };
    if !p.token.trim().is_empty() && p.token.trim().parse::<u64>().is_err() {
        return Err(AdminError::invalid(format!(
            "invalid token {}",
            quoted(&p.token)
        )));
    }
    Ok(CatalogPage {
        limit: p.limit,
        token: p.token.clone(),
        ascending,
    })
}

fn filters(
    f: Option<&FilterExpression>,
) -> impl Iterator<Item = AdminResult<&single_property_filter::PropertyFilter>> {
    f.into_iter().flat_map(|f| f.filters.iter()).map(|f| {
        f.property_filter
            .as_ref()
            .ok_or_else(|| missing("filter property"))
    })
}

fn non_empty(value: &str, what: &str) -> AdminResult<String> {
    if value.is_empty() {
        Err(missing(what))
    } else {
        Ok(value.to_string())
    }
}

fn artifact_filter(f: Option<&FilterExpression>) -> AdminResult<ArtifactFilter> {
    use single_property_filter::PropertyFilter as P;
    let mut out = ArtifactFilter::default();
    for filter in filters(f) {
        match filter? {
            P::TagFilter(t) => match &t.property {
                Some(tag_property_filter::Property::TagName(name)) => {
                    out.tag = Some(non_empty(name, "tag filter name")?);
                }
                None => return Err(missing("tag filter name")),
            },
            P::PartitionFilter(p) => match &p.property {
                Some(partition_property_filter::Property::KeyVal(kv)) => {
                    out.partitions.push((
                        non_empty(&kv.key, "partition filter key")?,
                        non_empty(&kv.value, "partition filter value")?,
                    ));
                }
                None => return Err(missing("partition filter key and value")),
            },
            P::DatasetFilter(_) => {
                return Err(AdminError::invalid(
                    "cannot filter artifacts by dataset properties; use tag or partition filters",
                ));
            }
            P::ArtifactFilter(_) => {
                return Err(AdminError::invalid(
                    "artifact filters are not supported (datacatalog ignores them); use tag or partition filters",
                ));
            }
        }
    }
    Ok(out)
}

fn dataset_filter(f: Option<&FilterExpression>) -> AdminResult<DatasetFilter> {
    use dataset_property_filter::Property as D;
    use single_property_filter::PropertyFilter as P;
    let mut out = DatasetFilter::default();
    for filter in filters(f) {
        match filter? {
            P::DatasetFilter(d) => match &d.property {
                Some(D::Project(v)) => out.project = Some(non_empty(v, "project filter")?),
                Some(D::Domain(v)) => out.domain = Some(non_empty(v, "domain filter")?),
                Some(D::Name(v)) => out.name = Some(non_empty(v, "name filter")?),
                Some(D::Version(v)) => out.version = Some(non_empty(v, "version filter")?),
                Some(D::Org(_)) => {} // one organisation
                None => return Err(missing("dataset filter property")),
            },
            _ => {
                return Err(AdminError::invalid(
                    "datasets can only be filtered by project, domain, name and version",
                ));
            }
        }
    }
    Ok(out)
}

fn reservation_key(id: Option<&ReservationId>) -> AdminResult<ReservationKey> {
    let id = id.ok_or_else(|| missing("reservation_id"))?;
    Ok(ReservationKey {
        dataset: dataset_key(id.dataset_id.as_ref(), "reservation_id.dataset_id")?,
        tag: non_empty(&id.tag_name, "reservation_id.tag_name")?,
    })
}

fn scope(id: Option<&DatasetId>) -> (String, String) {
    id.map(|d| (d.project.clone(), d.domain.clone()))
        .unwrap_or_default()
}

// --- the service ---------------------------------------------------------------------------

impl DataCatalogApi {
    async fn create_artifact_impl(&self, artifact: Option<&Artifact>) -> AdminResult<()> {
        let a = artifact.ok_or_else(|| missing("artifact"))?;
        let key = dataset_key(a.dataset.as_ref(), "artifact.dataset")?;
        let artifact_id = non_empty(&a.id, "artifact.id")?;
        let data = data_records(&a.data)?;
        let dataset = self.state.store.get_dataset(&key).await?;
        // datacatalog's ValidatePartitions: exactly the dataset's keys, each with a value.
        let mut given: Vec<&str> = Vec::new();
        for p in &a.partitions {
            if p.key.is_empty() || p.value.is_empty() {
                return Err(missing("partition key or value"));
            }
            given.push(&p.key);
        }
        let mut expected: Vec<&str> = dataset.partition_keys.iter().map(String::as_str).collect();
        given.sort_unstable();
        expected.sort_unstable();
        if given != expected {
            return Err(AdminError::invalid(format!(
                "artifact partitions {given:?} do not match the partition keys {expected:?} of {key}"
            )));
        }
        let metadata = metadata_map(a.metadata.as_ref());
        let now = Utc::now();
        self.state
            .store
            .create_artifact(ArtifactRecord {
                dataset: key,
                artifact_id,
                data,
                source_execution: source_execution_of(&metadata),
                metadata: encode_metadata(metadata),
                partitions: a
                    .partitions
                    .iter()
                    .map(|p| (p.key.clone(), p.value.clone()))
                    .collect(),
                tags: Vec::new(),
                created_at: now,
                updated_at: now,
            })
            .await?;
        Ok(())
    }
}

#[tonic::async_trait]
impl DataCatalog for DataCatalogApi {
    async fn create_dataset(
        &self,
        request: Request<CreateDatasetRequest>,
    ) -> Result<Response<CreateDatasetResponse>, Status> {
        let r = request.into_inner();
        let d = r.dataset.unwrap_or_default();
        let (p, dom) = scope(d.id.as_ref());
        run("CreateDataset", &p, &dom, async {
            let key = dataset_key(d.id.as_ref(), "dataset.id")?;
            let mut seen = std::collections::HashSet::new();
            if let Some(dup) = d.partition_keys.iter().find(|k| !seen.insert(*k)) {
                return Err(AdminError::invalid(format!(
                    "partition key {} is given more than once",
                    quoted(dup)
                )));
            }
            if d.partition_keys.iter().any(String::is_empty) {
                return Err(missing("partition key name"));
            }
            self.state
                .store
                .create_dataset(DatasetRecord {
                    key,
                    uuid: flyte_cache::new_uuid(),
                    metadata: encode_metadata(metadata_map(d.metadata.as_ref())),
                    partition_keys: d.partition_keys.clone(),
                    created_at: Utc::now(),
                })
                .await?;
            Ok(Response::new(CreateDatasetResponse {}))
        })
        .await
    }

    async fn get_dataset(
        &self,
        request: Request<GetDatasetRequest>,
    ) -> Result<Response<GetDatasetResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(r.dataset.as_ref());
        run("GetDataset", &p, &d, async {
            let key = dataset_key(r.dataset.as_ref(), "dataset")?;
            let dataset = self.state.store.get_dataset(&key).await?;
            Ok(Response::new(GetDatasetResponse {
                dataset: Some(dataset_to_proto(dataset)?),
            }))
        })
        .await
    }

    async fn create_artifact(
        &self,
        request: Request<CreateArtifactRequest>,
    ) -> Result<Response<CreateArtifactResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(r.artifact.as_ref().and_then(|a| a.dataset.as_ref()));
        run("CreateArtifact", &p, &d, async {
            self.create_artifact_impl(r.artifact.as_ref()).await?;
            Ok(Response::new(CreateArtifactResponse {}))
        })
        .await
    }

    async fn get_artifact(
        &self,
        request: Request<GetArtifactRequest>,
    ) -> Result<Response<GetArtifactResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(r.dataset.as_ref());
        run("GetArtifact", &p, &d, async {
            let by = match &r.query_handle {
                Some(get_artifact_request::QueryHandle::ArtifactId(id)) => {
                    ArtifactRef::Id(non_empty(id, "artifact_id")?)
                }
                Some(get_artifact_request::QueryHandle::TagName(tag)) => {
                    ArtifactRef::Tag(non_empty(tag, "tag_name")?)
                }
                None => return Err(missing("one of artifact_id/tag_name")),
            };
            let key = dataset_key(r.dataset.as_ref(), "dataset")?;
            let result = self.state.store.get_artifact(&key, &by).await;
            if let ArtifactRef::Tag(_) = by {
                // A lookup by tag is a cache lookup (propeller's Get).
                match &result {
                    Ok(_) => flyte_cache::metrics::hit(flyte_cache::metrics::VIA_DATACATALOG),
                    Err(StoreError::NotFound(_)) => {
                        flyte_cache::metrics::miss(flyte_cache::metrics::VIA_DATACATALOG)
                    }
                    Err(_) => {}
                }
            }
            Ok(Response::new(GetArtifactResponse {
                artifact: Some(artifact_to_proto(result?)?),
            }))
        })
        .await
    }

    async fn add_tag(
        &self,
        request: Request<AddTagRequest>,
    ) -> Result<Response<AddTagResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(r.tag.as_ref().and_then(|t| t.dataset.as_ref()));
        run("AddTag", &p, &d, async {
            let tag = r.tag.as_ref().ok_or_else(|| missing("tag"))?;
            let key = dataset_key(tag.dataset.as_ref(), "tag.dataset")?;
            let name = non_empty(&tag.name, "tag.name")?;
            let artifact_id = non_empty(&tag.artifact_id, "tag.artifact_id")?;
            self.state
                .store
                .add_tag(&key, &name, &artifact_id, Utc::now())
                .await?;
            Ok(Response::new(AddTagResponse {}))
        })
        .await
    }

    async fn list_artifacts(
        &self,
        request: Request<ListArtifactsRequest>,
    ) -> Result<Response<ListArtifactsResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(r.dataset.as_ref());
        run("ListArtifacts", &p, &d, async {
            let key = dataset_key(r.dataset.as_ref(), "dataset")?;
            let filter = artifact_filter(r.filter.as_ref())?;
            let page = catalog_page(r.pagination.as_ref())?;
            let listed = self
                .state
                .store
                .list_artifacts(&key, &filter, &page)
                .await?;
            Ok(Response::new(ListArtifactsResponse {
                artifacts: listed
                    .items
                    .into_iter()
                    .map(artifact_to_proto)
                    .collect::<AdminResult<_>>()?,
                next_token: listed.next_token,
            }))
        })
        .await
    }

    async fn list_datasets(
        &self,
        request: Request<ListDatasetsRequest>,
    ) -> Result<Response<ListDatasetsResponse>, Status> {
        let r = request.into_inner();
        run("ListDatasets", "", "", async {
            let filter = dataset_filter(r.filter.as_ref())?;
            let page = catalog_page(r.pagination.as_ref())?;
            let listed = self.state.store.list_datasets(&filter, &page).await?;
            Ok(Response::new(ListDatasetsResponse {
                datasets: listed
                    .items
                    .into_iter()
                    .map(dataset_to_proto)
                    .collect::<AdminResult<_>>()?,
                next_token: listed.next_token,
            }))
        })
        .await
    }

    async fn update_artifact(
        &self,
        request: Request<UpdateArtifactRequest>,
    ) -> Result<Response<UpdateArtifactResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(r.dataset.as_ref());
        run("UpdateArtifact", &p, &d, async {
            let by = match &r.query_handle {
                Some(update_artifact_request::QueryHandle::ArtifactId(id)) => {
                    ArtifactRef::Id(non_empty(id, "artifact_id")?)
                }
                Some(update_artifact_request::QueryHandle::TagName(tag)) => {
                    ArtifactRef::Tag(non_empty(tag, "tag_name")?)
                }
                None => return Err(missing("one of artifact_id/tag_name")),
            };
            let key = dataset_key(r.dataset.as_ref(), "dataset")?;
            let data = data_records(&r.data)?;
            let metadata = encode_metadata(metadata_map(r.metadata.as_ref()));
            let updated = self
                .state
                .store
                .update_artifact(&key, &by, data, metadata, Utc::now())
                .await?;
            Ok(Response::new(UpdateArtifactResponse {
                artifact_id: updated.artifact_id,
            }))
        })
        .await
    }

    async fn get_or_extend_reservation(
        &self,
        request: Request<GetOrExtendReservationRequest>,
    ) -> Result<Response<GetOrExtendReservationResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope(
            r.reservation_id
                .as_ref()
                .and_then(|id| id.dataset_id.as_ref()),
        );
        run("GetOrExtendReservation", &p, &d, async {
            let key = reservation_key(r.reservation_id.as_ref())?;
            let owner = non_empty(&r.owner_id, "owner_id")?;
            let heartbeat = self
                .reservations
                .heartbeat(requested_heartbeat(r.heartbeat_interval.as_ref()));
            let now = Utc::now();
            let held = self
                .state
                .store
                .get_or_extend_reservation(
                    &key,
                    &owner,
                    self.reservations.expiry(now, heartbeat),
                    now,
                )
                .await?;
            flyte_cache::metrics::reservation(held.owner_id == owner);
            Ok(Response::new(GetOrExtendReservationResponse {
                reservation: Some(Reservation {
                    reservation_id: r.reservation_id.clone(),
                    owner_id: held.owner_id,
                    heartbeat_interval: Some(proto_duration(heartbeat)),
                    expires_at: Some(timestamp(held.expires_at)),
                    metadata: None,
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
        let (p, d) = scope(
            r.reservation_id
                .as_ref()
                .and_then(|id| id.dataset_id.as_ref()),
        );
        run("ReleaseReservation", &p, &d, async {
            let key = reservation_key(r.reservation_id.as_ref())?;
            let owner = non_empty(&r.owner_id, "owner_id")?;
            match self.state.store.release_reservation(&key, &owner).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {
                    Ok(Response::new(ReleaseReservationResponse {}))
                }
                Err(err) => Err(err.into()),
            }
        })
        .await
    }
}
