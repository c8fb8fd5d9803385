//! The cache key of a task execution, as propeller computes it
//! (`nodes/catalog/datacatalog/transformer.go`, `pluginmachinery/catalog/hashing.go`):
//!
//! * dataset `project`/`domain`: the task's; `name`: `flyte_task-<task name>`;
//! * dataset `version`: `<cache_version>-<in8>-<out8>`, the first 8 characters of the
//!   unpadded base64url [`pbhash`](crate::pbhash) of the interface's input and output
//!   `VariableMap`s (an empty map when there are none), so any interface change misses;
//! * tag: `flyte_cached-<base64url(pbhash(inputs))>` where the inputs are the input
//!   `LiteralMap` without the `cache_ignore_input_vars`, each literal "hashified": a literal
//!   with a non-empty `hash` (flytekit sets one for files, directories and dataframes hashed by
//!   content) stands for itself by that hash alone, recursively inside collections and maps.
//!
//! The hash is over the decoded message, not its wire bytes, so equal values hit however they
//! were produced (inline, or written and read back), in any map order.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flyte_store::{DatasetKey, ReservationKey};
use flyteidl::core::{self, Literal, LiteralMap, TypedInterface, VariableMap, literal};

use crate::pbhash::{self, HashError};

/// Dataset names of task caches: `flyte_task-<task name>`.
pub const TASK_DATASET_PREFIX: &str = "flyte_task-";
/// Tags of cached outputs: `flyte_cached-<inputs hash>`.
pub const CACHED_TAG_PREFIX: &str = "flyte_cached-";
const PARAM_HASH_LEN: usize = 8;

/// Why no key could be computed (the engine reports the task as not cacheable this time).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// propeller: "task cannot have an empty discoveryVersion".
    #[error("task {task} is cacheable but has an empty cache_version")]
    EmptyCacheVersion { task: String },
    #[error("cannot hash {what} of task {task}: {source}")]
    Hash {
        task: String,
        what: &'static str,
        #[source]
        source: HashError,
    },
}

/// Where a task execution's outputs are cached: a dataset and a tag in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub dataset: DatasetKey,
    pub tag: String,
}

impl CacheKey {
    /// The key of running task `task_id` (its project, domain, name; the version is not part
    /// of it) with `cache_version`, `interface` and `inputs`, ignoring `ignore_inputs`.
    pub fn compute(
        task_id: &core::Identifier,
        cache_version: &str,
        interface: Option<&TypedInterface>,
        inputs: &LiteralMap,
        ignore_inputs: &[String],
    ) -> Result<Self, KeyError> {
        let task = || format!("{}/{}/{}", task_id.project, task_id.domain, task_id.name);
        // propeller trims spaces (only) and refuses an empty version.
        let cache_version = cache_version.trim_matches(' ');
        if cache_version.is_empty() {
            return Err(KeyError::EmptyCacheVersion { task: task() });
        }
        let hash_err = |what| {
            move |source| KeyError::Hash {
                task: task(),
                what,
                source,
            }
        };
        let empty = VariableMap::default();
        let vars = |m: Option<&VariableMap>| -> VariableMap {
            match m {
                Some(m) if !m.variables.is_empty() => m.clone(),
                _ => empty.clone(),
            }
        };
        let in_hash = interface_hash(&vars(interface.and_then(|i| i.inputs.as_ref())))
            .map_err(hash_err("the input interface"))?;
        let out_hash = interface_hash(&vars(interface.and_then(|i| i.outputs.as_ref())))
            .map_err(hash_err("the output interface"))?;
        let inputs_hash =
            hash_literal_map(inputs, ignore_inputs).map_err(hash_err("the input values"))?;
        Ok(Self {
            dataset: DatasetKey {
                project: task_id.project.clone(),
                domain: task_id.domain.clone(),
                name: format!("{TASK_DATASET_PREFIX}{}", task_id.name),
                version: format!("{cache_version}-{in_hash}-{out_hash}"),
            },
            tag: format!("{CACHED_TAG_PREFIX}{inputs_hash}"),
        })
    }

    /// The key of running `template` with `inputs`: its id, `metadata.discovery_version`,
    /// `metadata.cache_ignore_input_vars` and interface. `None` if the task is not cacheable
    /// (`metadata.discoverable` unset).
    pub fn for_task(
        template: &core::TaskTemplate,
        inputs: &LiteralMap,
    ) -> Option<Result<Self, KeyError>> {
        let metadata = template.metadata.as_ref()?;
        if !metadata.discoverable {
            return None;
        }
        let id = template.id.clone().unwrap_or_default();
        Some(Self::compute(
            &id,
            &metadata.discovery_version,
            template.interface.as_ref(),
            inputs,
            &metadata.cache_ignore_input_vars,
        ))
    }

    /// The reservation `cache_serialize` takes for this key (same dataset and tag).
    pub fn reservation_key(&self) -> ReservationKey {
        ReservationKey {
            dataset: self.dataset.clone(),
            tag: self.tag.clone(),
        }
    }

    /// The CacheService key of this entry: `project/domain/dataset name/dataset version/tag`.
    pub fn service_key(&self) -> String {
        let d = &self.dataset;
        format!(
            "{}/{}/{}/{}/{}",
            d.project, d.domain, d.name, d.version, self.tag
        )
    }

    /// Parses a [`service_key`](Self::service_key); `None` for any other string (the
    /// CacheService keeps those in a dataset of their own). The version may contain `/`.
    pub fn from_service_key(key: &str) -> Option<Self> {
        let mut head = key.splitn(4, '/');
        let (project, domain, name, rest) =
            (head.next()?, head.next()?, head.next()?, head.next()?);
        let (version, tag) = rest.rsplit_once('/')?;
        if [project, domain, name, version, tag]
            .iter()
            .any(|s| s.is_empty())
        {
            return None;
        }
        Some(Self {
            dataset: DatasetKey {
                project: project.into(),
                domain: domain.into(),
                name: name.into(),
                version: version.into(),
            },
            tag: tag.into(),
        })
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tag {} of {}", self.tag, self.dataset)
    }
}

fn b64(hash: [u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(hash)
}

/// The first 8 characters of the base64url pbhash of a variable map.
pub fn interface_hash(vars: &VariableMap) -> Result<String, HashError> {
    let mut s = b64(pbhash::compute_hash(vars)?);
    s.truncate(PARAM_HASH_LEN);
    Ok(s)
}

/// `catalog.HashLiteralMap`: base64url pbhash of the hashified inputs without the ignored ones.
pub fn hash_literal_map(inputs: &LiteralMap, ignore: &[String]) -> Result<String, HashError> {
    let literals: BTreeMap<String, Literal> = inputs
        .literals
        .iter()
        .filter(|(name, _)| !ignore.iter().any(|i| i == *name))
        .map(|(name, lit)| (name.clone(), hashify(lit)))
        .collect();
    let map = LiteralMap {
        literals: literals.into_iter().collect(),
    };
    Ok(b64(pbhash::compute_hash(&map)?))
}

/// A literal as it enters the hash: by its `hash` alone if it has one; collections and maps
/// rebuilt (dropping their own metadata) from their hashified elements; anything else as is.
pub fn hashify(lit: &Literal) -> Literal {
    if !lit.hash.is_empty() {
        return Literal {
            hash: lit.hash.clone(),
            ..Default::default()
        };
    }
    match &lit.value {
        Some(literal::Value::Collection(c)) => Literal {
            value: Some(literal::Value::Collection(core::LiteralCollection {
                literals: c.literals.iter().map(hashify).collect(),
            })),
            ..Default::default()
        },
        Some(literal::Value::Map(m)) => Literal {
            value: Some(literal::Value::Map(LiteralMap {
                literals: m
                    .literals
                    .iter()
                    .map(|(k, v)| (k.clone(), hashify(v)))
                    .collect(),
            })),
            ..Default::default()
        },
        _ => lit.clone(),
    }
}
