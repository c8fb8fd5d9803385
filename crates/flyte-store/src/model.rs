//! Plain records the store reads and writes.

use chrono::{DateTime, Utc};

pub use flyte_core::filters::{Filter, FilterOp, SortDirection, SortKey};
pub use flyte_core::ids::ResourceType;

/// One page of a list, with the token for the next (empty when there is no more).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: String,
}

/// A list request in store terms. `token` is the opaque string a previous page returned
/// (empty for the first page); `limit` is at least 1 (the API layer applies defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    pub sort: Option<SortKey>,
    pub limit: u32,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Encoded `flyteidl.admin.Labels` (empty if none).
    pub labels: Vec<u8>,
    /// `flyteidl.admin.Project.ProjectState`: 0 active, 1 archived, 2 system generated.
    pub state: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey {
    pub resource: ResourceType,
    pub project: String,
    pub domain: String,
    pub name: String,
    pub version: String,
}

/// Which entities a list covers: always one project and domain, optionally one name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityScope {
    pub project: String,
    pub domain: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchPlanState {
    Inactive = 0,
    Active = 1,
}

/// An immutable, versioned task, workflow or launch plan.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRecord {
    pub key: EntityKey,
    /// Digest of the registered content, to tell an identical re-registration from a conflict.
    pub digest: Vec<u8>,
    /// The spec exactly as the client sent it (unknown fields included).
    pub spec: Vec<u8>,
    /// The encoded closure computed at registration (compiled task/workflow, LP closure).
    pub closure: Vec<u8>,
    /// Launch plans only; `None` for tasks and workflows.
    pub state: Option<LaunchPlanState>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamedEntityKey {
    pub resource: ResourceType,
    pub project: String,
    pub domain: String,
    pub name: String,
}

/// `flyteidl.admin.NamedEntityMetadata` in plain terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamedEntityMetadata {
    pub description: String,
    /// `flyteidl.admin.NamedEntityState`: 0 active, 1 archived, 2 system generated.
    pub state: i32,
}

impl LaunchPlanState {
    /// The `flyteidl.admin.LaunchPlanState` value.
    pub fn from_proto(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::Inactive),
            1 => Some(Self::Active),
            _ => None,
        }
    }
}

/// A named entity (a name under which versions are registered) with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedEntityRecord {
    pub key: NamedEntityKey,
    pub metadata: NamedEntityMetadata,
}

/// `task flytesnacks/development/my.task@v1`: how errors name an entity version.
impl std::fmt::Display for EntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}/{}@{}",
            self.resource.as_str(),
            self.project,
            self.domain,
            self.name,
            self.version
        )
    }
}

/// `workflow flytesnacks/development/my.wf`: how errors name a named entity.
impl std::fmt::Display for NamedEntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}/{}",
            self.resource.as_str(),
            self.project,
            self.domain,
            self.name
        )
    }
}
