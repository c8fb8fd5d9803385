//! What every admin handler shares: the stores and the admin part of the configuration.

use std::sync::Arc;
use std::time::Duration;

use flyte_blob::BlobStore;
use flyte_store::MetadataStore;

/// The admin API's configuration, a section of the binary's typed config.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// The URL clients reach this server at (`http://127.0.0.1:30080`); signed upload and
    /// download URLs and log links are built on it.
    pub public_url: String,
    /// The domains every project has, as (id, display name).
    pub domains: Vec<(String, String)>,
    /// Prefix inside the blob store under which data-proxy uploads land (Flyte: `uploads`).
    pub upload_prefix: String,
    /// Lifetime of signed URLs when the request does not ask for one.
    pub signed_url_ttl: Duration,
    /// The longest lifetime a client may ask for.
    pub max_signed_url_ttl: Duration,
    /// Largest gRPC/HTTP request accepted (bytes); larger ones get RESOURCE_EXHAUSTED.
    pub max_request_bytes: usize,
    /// Largest object uploaded through a signed data-proxy URL (streamed to the store, never
    /// held in memory); larger ones get 413.
    pub max_upload_bytes: u64,
    /// Inputs and outputs up to this size are inlined in Get*Data responses.
    pub max_inline_bytes: usize,
    /// An execution's inputs whose encoding is at most this size are kept in its row rather
    /// than offloaded to the blob store (no directory and files per execution); 0 offloads all.
    pub inline_inputs_max_bytes: usize,
    /// Key for signing data-proxy URLs (random per start unless configured).
    pub signing_key: Vec<u8>,
    /// The global level of WORKFLOW_EXECUTION_CONFIG matchable attributes: what executions get
    /// where neither they, their launch plan nor any stored attributes say otherwise.
    pub default_execution_config: flyteidl::admin::WorkflowExecutionConfig,
    /// The global level of TASK_RESOURCE matchable attributes (task resource defaults/limits).
    pub default_task_resources: flyteidl::admin::TaskResourceAttributes,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:30080".into(),
            domains: vec![
                ("development".into(), "development".into()),
                ("staging".into(), "staging".into()),
                ("production".into(), "production".into()),
            ],
            upload_prefix: "uploads".into(),
            signed_url_ttl: Duration::from_secs(3600),
            max_signed_url_ttl: Duration::from_secs(7 * 24 * 3600),
            max_request_bytes: 32 * 1024 * 1024,
            max_upload_bytes: 5 * 1024 * 1024 * 1024 * 1024,
            max_inline_bytes: 2 * 1024 * 1024,
            inline_inputs_max_bytes: 4096,
            signing_key: Vec::new(),
            default_execution_config: Default::default(),
            default_task_resources: Default::default(),
        }
    }
}

/// Shared, cheaply cloned state of all admin services.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<dyn MetadataStore>,
    pub blob: BlobStore,
    pub config: Arc<AdminConfig>,
    /// Runs accepted executions (the engine); `None`: executions are only recorded.
    pub launcher: Option<Arc<dyn crate::launcher::ExecutionLauncher>>,
}
