//! Engine configuration: a plain struct; the server maps its layered config onto it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;

/// How the engine runs executions.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `producer_id` on every event (Flyte's cluster id).
    pub producer_id: String,
    /// Key prefix in the blob store under which execution metadata lives
    /// (`<metadata_prefix>/<project>-<domain>-<name>/…`), as propeller's `metadataPrefix`.
    pub metadata_prefix: String,
    /// Default raw output data prefix (a native URL, or a key prefix inside the store) when
    /// the execution does not name one (`raw_output_data_config.output_location_prefix`).
    pub raw_output_prefix: String,
    /// Budget of SYSTEM-error retries per node (`node-config.max-node-retries-system-failures`).
    pub max_system_retries: u32,
    /// Attempts for a node whose task declares no retries (`node-config.default-max-attempts`).
    pub default_max_attempts: u32,
    /// Merge the user and system budgets (`node-config.ignore-retry-cause`).
    pub ignore_retry_cause: bool,
    /// Default per-attempt execution deadline when the task sets no timeout (None: none).
    pub default_execution_deadline: Option<Duration>,
    /// Default node active deadline when the node sets no timeout (None: none).
    pub default_active_deadline: Option<Duration>,
    /// Inline workflow/node outputs in events (`output_data`) instead of `output_uri`.
    pub inline_outputs: bool,
    /// Start and end nodes whose literal map encodes to at most this many bytes write no
    /// files (`start-node/data/0/outputs.pb`, `end-node/data/inputs.pb` and `outputs.pb`:
    /// nothing but the API reads them): their data goes inline in the events, which the
    /// admin keeps in its rows. Larger maps are written as before; 0 writes them all.
    pub inline_max_bytes: usize,
    /// Retry delay for a failed sink write (the batch is retried until it commits).
    pub sink_retry_delay: Duration,
    /// Extra environment handed to every attempt (storage access, platform URL …).
    pub default_env: std::collections::BTreeMap<String, String>,
    /// Console URL prefix for `FLYTE_EXECUTION_URL` (`<url>/projects/<p>/domains/<d>/executions/<n>`).
    pub console_url: Option<String>,
    /// How an array node without a `parallelism` (or with 0) bounds its sub-nodes
    /// (`array-node-config.default-parallelism-behavior`).
    pub array_parallelism: ArrayParallelism,
    /// Nodes one execution may hold at once (its own, a `@dynamic` task's, the items a map
    /// task has in flight, all levels); 0: no bound. Each takes a few KB while the execution
    /// runs, so a spec past it fails its node with an error naming
    /// `engine.max_nodes_per_execution` instead of exhausting the server's memory.
    pub max_nodes_per_execution: usize,
    /// Items a map task without a `concurrency` (or a larger one) has in flight at once: each
    /// in flight holds an engine node; the others a few bytes.
    pub map_items_in_flight: usize,
    /// Items one map task may have (0: no bound); past it the map node fails with
    /// `ArrayTooLarge` naming `engine.max_map_items`. Each item costs a few bytes in the
    /// engine, its journal record and its share of the input list.
    pub max_map_items: usize,
    /// Where the engine reads the wall-clock time (tests inject a
    /// [`crate::clock::VirtualClock`]; timers follow tokio's time).
    pub clock: Arc<dyn Clock>,
    /// Replicas on one database: which executions this engine may run (leases) and how
    /// requests reach their owners. `None` (SQLite, one process): everything it runs is its
    /// own.
    pub ownership: Option<Arc<crate::ownership::Ownership>>,
    /// Credentials for each attempt of a task run as a process (the task's own token, so
    /// flytekit inside it can call the platform; docs/auth.md). `None`: none.
    pub attempt_credentials: Option<Arc<dyn AttemptCredentials>>,
}

/// Mints the environment that carries one attempt's credentials.
pub trait AttemptCredentials: Send + Sync + 'static {
    /// Variables for the attempt `key`, whose per-attempt timeout is `timeout`.
    fn env(
        &self,
        key: &crate::backend::AttemptKey,
        timeout: Option<Duration>,
    ) -> Vec<(String, String)>;
}

impl std::fmt::Debug for dyn AttemptCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttemptCredentials")
    }
}

/// The default of [`EngineConfig::max_nodes_per_execution`]: a 100,000-node `@dynamic`
/// fan-out or a 100,000-item map task fits with room (docs/benchmarks.md, "Size limits").
pub const DEFAULT_MAX_NODES_PER_EXECUTION: usize = 200_000;

/// The default of [`EngineConfig::map_items_in_flight`].
pub const DEFAULT_MAP_ITEMS_IN_FLIGHT: usize = 10_000;

/// The default of [`EngineConfig::max_map_items`]: issue 21's million items. A map of a
/// million core-sleep items peaks at ~1.3 GB on the server when it succeeds, ~1.5 GB when it
/// fails at once (docs/benchmarks.md, "Map tasks over in-engine tasks run").
pub const DEFAULT_MAX_MAP_ITEMS: usize = 1_000_000;

/// propeller's `ParallelismBehavior` for array nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArrayParallelism {
    /// Unset or 0: every sub-node may run at once; the array node takes one slot of the
    /// workflow's `max_parallelism` (propeller's default).
    #[default]
    Unlimited,
    /// Unset or 0: sub-nodes share the workflow's `max_parallelism`.
    Workflow,
    /// Unset: as `Workflow`; 0: as `Unlimited`.
    Hybrid,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            producer_id: "flyte-rs".into(),
            metadata_prefix: "metadata".into(),
            raw_output_prefix: "raw".into(),
            max_system_retries: 3,
            default_max_attempts: 1,
            ignore_retry_cause: false,
            default_execution_deadline: None,
            default_active_deadline: None,
            inline_outputs: false,
            inline_max_bytes: 4096,
            sink_retry_delay: Duration::from_millis(200),
            default_env: Default::default(),
            console_url: None,
            array_parallelism: ArrayParallelism::default(),
            max_nodes_per_execution: DEFAULT_MAX_NODES_PER_EXECUTION,
            map_items_in_flight: DEFAULT_MAP_ITEMS_IN_FLIGHT,
            max_map_items: DEFAULT_MAX_MAP_ITEMS,
            clock: crate::clock::system(),
            ownership: None,
            attempt_credentials: None,
        }
    }
}
