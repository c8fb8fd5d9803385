//! Records of the cache catalog (datacatalog's datasets, artifacts, tags, partitions and
//! reservations). Literal values and metadata are opaque bytes here, as every payload in the
//! store: `flyte-cache` and the DataCatalog service encode and decode them.

use chrono::{DateTime, Utc};

use crate::ExecutionKey;

/// `datacatalog.DatasetID` without the UUID: project, domain, name and version. For task
/// caches (`flyte-cache`) the project and domain are the task's, the name
/// `flyte_task-<task name>` and the version `<cache_version>-<in8>-<out8>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DatasetKey {
    pub project: String,
    pub domain: String,
    pub name: String,
    pub version: String,
}

/// `dataset flytesnacks/development/flyte_task-wf.t@v1-abc-def`: how errors name a dataset.
impl std::fmt::Display for DatasetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dataset {}/{}/{}@{}",
            self.project, self.domain, self.name, self.version
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    pub key: DatasetKey,
    /// The `UUID` datacatalog reports in `DatasetID.UUID`, chosen by the creator.
    pub uuid: String,
    /// Encoded `datacatalog.Metadata` (empty if none).
    pub metadata: Vec<u8>,
    /// Partition key names, in declaration order.
    pub partition_keys: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// One output of an artifact: the variable name and the encoded `core.Literal`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactDataRecord {
    pub name: String,
    pub value: Vec<u8>,
}

/// A tag name and when it was added.
#[derive(Debug, Clone, PartialEq)]
pub struct TagInfo {
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An artifact of a dataset: named data (a task's outputs), metadata, partitions, tags.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRecord {
    pub dataset: DatasetKey,
    pub artifact_id: String,
    /// In order; at least one entry for artifacts created through the DataCatalog API.
    pub data: Vec<ArtifactDataRecord>,
    /// Encoded `datacatalog.Metadata` (empty if none).
    pub metadata: Vec<u8>,
    /// `(key, value)` in the order given.
    pub partitions: Vec<(String, String)>,
    /// The execution that produced the data, if known (from the metadata's `exec-project`,
    /// `exec-domain`, `execution-name`): what eviction per execution selects on.
    pub source_execution: Option<ExecutionKey>,
    /// Read back only: the artifact's tags, oldest first. Ignored on create.
    pub tags: Vec<TagInfo>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How an artifact is found: by its id or by a tag of its dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactRef {
    Id(String),
    Tag(String),
}

impl std::fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArtifactRef::Id(id) => write!(f, "artifact {id}"),
            ArtifactRef::Tag(tag) => write!(f, "artifact tagged {tag}"),
        }
    }
}

/// Datacatalog list paging: `token` is an offset (empty: 0), newest or oldest first by
/// creation time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogPage {
    pub limit: u32,
    pub token: String,
    pub ascending: bool,
}

/// ListDatasets filters (datacatalog supports EQUALS on these only).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DatasetFilter {
    pub project: Option<String>,
    pub domain: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// ListArtifacts filters, all of which must match (datacatalog: EQUALS on a tag name and on
/// partition key/value pairs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArtifactFilter {
    pub tag: Option<String>,
    pub partitions: Vec<(String, String)>,
}

/// Which cached artifacts an eviction or a cache listing covers. Every given field must match;
/// at least one must be given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArtifactSelector {
    pub project: Option<String>,
    pub domain: Option<String>,
    /// Dataset name (`flyte_task-<task name>` for task caches).
    pub dataset_name: Option<String>,
    /// Exact dataset versions (any of).
    pub dataset_versions: Option<Vec<String>>,
    /// Artifacts produced by this execution.
    pub source_execution: Option<ExecutionKey>,
    /// The artifact carrying this tag (one cache entry: CacheService.Delete).
    pub tag: Option<String>,
}

impl ArtifactSelector {
    pub fn is_empty(&self) -> bool {
        self.project.is_none()
            && self.domain.is_none()
            && self.dataset_name.is_none()
            && self.dataset_versions.is_none()
            && self.source_execution.is_none()
            && self.tag.is_none()
    }
}

/// What [`crate::MetadataStore::put_cached_artifact`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// The artifact was stored and tagged.
    Created(ArtifactRecord),
    /// The tag was already taken and `overwrite` was false: the existing artifact is kept
    /// (first writer wins, as propeller ignores ALREADY_EXISTS from AddTag).
    Kept(ArtifactRecord),
    /// The tagged artifact's data and metadata were replaced (`overwrite`).
    Replaced(ArtifactRecord),
}

impl PutOutcome {
    pub fn artifact(&self) -> &ArtifactRecord {
        match self {
            PutOutcome::Created(a) | PutOutcome::Kept(a) | PutOutcome::Replaced(a) => a,
        }
    }
}

/// `datacatalog.ReservationID`: a dataset and a tag name (the dataset need not exist).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ReservationKey {
    pub dataset: DatasetKey,
    pub tag: String,
}

impl std::fmt::Display for ReservationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reservation of tag {} in {}", self.tag, self.dataset)
    }
}

/// The holder of a reservation and when it expires unless extended.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRecord {
    pub key: ReservationKey,
    pub owner_id: String,
    pub expires_at: DateTime<Utc>,
}
