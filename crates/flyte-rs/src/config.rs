//! The one typed, layered configuration of the binary.
//!
//! Layers, lowest first: built-in defaults < a TOML or YAML file (`--config`) < `FLYTE_RS_*`
//! environment variables (`__` separates nesting: `FLYTE_RS_SERVER__LISTEN`) < command-line
//! flags. After merging, values derived from others are filled in (`server.public_url` from
//! `server.listen`, storage URLs from `data_dir`) and the whole is validated, so a bad value
//! fails at start with the key that holds it.
//!
//! This is the only place that reads the process environment.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use figment::providers::{Format, Serialized, Toml, Yaml};
use figment::value::Map;
use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

/// Prefix of the environment variables the loader reads.
pub const ENV_PREFIX: &str = "FLYTE_RS_";
/// The default listen address: the port of Flyte's own sandbox, so configs made for it work.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 30080);

/// The whole configuration. Every field has a default; see `docs/configuration.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded stores keep their files (`~/.flyte-rs`, or `$XDG_DATA_HOME/flyte-rs`).
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    /// Task attempts as Kubernetes pods (docs/kubernetes.md); off by default.
    pub kubernetes: flyte_kube::KubeConfig,
    pub storage: StorageConfig,
    pub admin: AdminSection,
    pub engine: EngineSection,
    pub logging: LoggingConfig,
    pub telemetry: TelemetryConfig,
    pub replica: ReplicaConfig,
    pub scheduler: SchedulerSection,
    pub notifications: NotificationsSection,
    /// Authentication with an OpenID Connect provider (docs/auth.md). Off by default.
    pub auth: flyte_auth::AuthConfig,
}

/// The native scheduler of launch-plan schedules (docs/schedules.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSection {
    /// Off: active schedules launch nothing on this server (another replica may run them).
    pub enabled: bool,
    /// How often due ticks are looked for: a tick launches at most this late.
    pub poll_ms: u64,
    /// After downtime, at most this many missed ticks per schedule are launched (the
    /// newest); older ones are skipped and logged.
    pub catch_up_limit: usize,
    /// The IANA time zone cron expressions are read in (`UTC`, `Europe/Amsterdam`).
    pub time_zone: String,
    /// A launch later than this after its tick is counted as late.
    pub late_after_secs: u64,
}

impl Default for SchedulerSection {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_ms: 1000,
            catch_up_limit: 100,
            time_zone: "UTC".into(),
            late_after_secs: 60,
        }
    }
}

/// Engine replicas sharing one PostgreSQL metadata store (ignored on SQLite, which is one
/// process): each running execution is leased by one replica (docs/architecture.md,
/// "Ownership and leases").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaConfig {
    /// This replica's name in the leases; unique among the replicas. Unset: host name, pid
    /// and a random suffix (a restarted replica then gets its executions back only when
    /// their leases expire).
    pub id: Option<String>,
    /// How long a lease lasts without renewal (renewed every third of it): a replica that
    /// died has its executions taken over after at most this plus a second.
    pub lease_secs: u64,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            id: None,
            lease_secs: 6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for gRPC (h2c) and HTTP/1.1, both on this one port.
    pub listen: SocketAddr,
    /// The URL clients reach the server at; signed URLs are built on it.
    /// Derived from `listen` when unset.
    pub public_url: Option<String>,
    /// Largest request (gRPC message or HTTP body) accepted, in bytes.
    pub max_request_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests, in seconds.
    pub shutdown_grace_secs: u64,
    /// TLS on the one port (gRPC and HTTPS together). Off unless a certificate is given.
    pub tls: TlsConfig,
    /// Serve cleartext on a non-loopback `listen` address. Off: such a start is refused
    /// without `tls`, so nothing goes over a network unencrypted by accident. Set it behind a
    /// TLS-terminating load balancer or ingress, or on a network you trust (docs/tls.md).
    pub allow_cleartext: bool,
}

/// `server.tls`: the certificate and key the one port serves (docs/tls.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first. Setting it turns TLS on.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub key_file: Option<PathBuf>,
    /// PEM CA certificate(s) that verify the server's certificate, given to task processes
    /// (`FLYTE_PLATFORM_CA_CERT_FILE_PATH`) and shown in the printed flytekit config; unset
    /// when the certificate is signed by a CA the system already trusts.
    pub ca_file: Option<PathBuf>,
    /// How often the files are checked for a new certificate, in seconds (SIGHUP reloads at
    /// once); 0 checks only on SIGHUP.
    pub reload_secs: u64,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Metadata store: `sqlite://…` (default `sqlite://<data_dir>/flyte.db`) or `postgres://…`.
    pub metadata_url: Option<String>,
    /// Blob store: `file:///…` (default `file://<data_dir>/blobs`), `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix` or `abfs://container@account…/prefix`
    /// (docs/storage.md).
    pub blob_url: Option<String>,
    /// S3 (and S3-compatible servers) for `s3://` blob URLs; unset fields come from the
    /// standard `AWS_*` environment, then instance metadata or web identity.
    pub s3: S3Config,
    /// Further object_store builder options by key (`aws_…`, `google_service_account`,
    /// `azure_storage_account_key`, …); values are redacted in `config dump`.
    pub blob_options: std::collections::BTreeMap<String, String>,
    /// Projects (or project-domains) whose metadata — offloaded inputs, nodes' inputs and
    /// outputs, decks, uploads — lives in a store of its own; everything else in `blob_url`
    /// (docs/storage.md).
    pub metadata_locations: Vec<MetadataLocation>,
}

/// `storage.metadata_locations[]`: a project's (or one domain's) metadata store, opened with
/// the same settings (`storage.s3`, `storage.blob_options`) as `blob_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataLocation {
    pub project: String,
    /// Unset: every domain of the project.
    #[serde(default)]
    pub domain: Option<String>,
    /// `file:///…`, `s3://…`, `gs://…`, `abfs://…`: any URL `blob_url` may be.
    pub url: String,
}

/// `storage.s3`: what operators set for S3 and S3-compatible servers (docs/storage.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub region: Option<String>,
    /// An S3-compatible server's URL (`http://minio:9000`); also Azure's endpoint (Azurite).
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Allow an `http://` endpoint.
    pub allow_http: bool,
    /// Virtual-hosted-style requests (`bucket.endpoint`); off: path-style (`endpoint/bucket`).
    pub virtual_hosted_style: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// The domains every project has.
    pub domains: Vec<String>,
    /// Prefix in the blob store under which data-proxy uploads land.
    pub upload_prefix: String,
    /// Lifetime of signed URLs when a request does not ask for one, in seconds.
    pub signed_url_ttl_secs: u64,
    /// Longest signed-URL lifetime a client may ask for, in seconds.
    pub max_signed_url_ttl_secs: u64,
    /// Inputs and outputs up to this size are inlined in `Get*Data` responses, in bytes.
    pub max_inline_bytes: usize,
    /// An execution's inputs up to this encoded size stay in its database row instead of two
    /// blob files per execution, in bytes; 0 offloads them all as flyteadmin does.
    pub inline_inputs_max_bytes: usize,
    /// Largest upload through a signed data-proxy URL (local blob stores; object stores take
    /// uploads directly), streamed to the store.
    pub max_upload_bytes: u64,
    /// Key for signing data-proxy URLs. Unset: a random key per start (URLs die with the process).
    pub signing_key: Option<String>,
    /// The global level of matchable attributes (docs/attributes.md).
    pub attributes: AttributeDefaults,
}

/// The global level of matchable attributes: what an execution gets where neither it, its
/// launch plan nor project, project-domain or workflow attributes say otherwise
/// (docs/attributes.md). Empty: nothing added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributeDefaults {
    /// Nodes of one execution running at once at most; 0: no limit.
    pub max_parallelism: u32,
    /// Where tasks write raw (offloaded) data, e.g. `s3://bucket/raw`.
    pub raw_output_prefix: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Environment variables of every task.
    pub envs: std::collections::BTreeMap<String, String>,
    pub interruptible: Option<bool>,
    pub overwrite_cache: bool,
    /// The security context's Kubernetes service account.
    pub service_account: Option<String>,
    /// Resource requests given to tasks that set none (Kubernetes quantities).
    pub task_resource_defaults: TaskResourceQuantities,
    /// Requests and limits above these are lowered to them.
    pub task_resource_limits: TaskResourceQuantities,
}

/// Kubernetes quantities (`500m`, `2`, `512Mi`, `1Gi`); unset: none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskResourceQuantities {
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub gpu: Option<String>,
    pub ephemeral_storage: Option<String>,
}

/// The execution engine and its embedded task backend (task attempts as local processes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Task processes running at once at most; 0: as many as their CPU and memory requests
    /// fit in `host_cpus` and `host_memory` (a task without requests takes one CPU). Attempts
    /// waiting are shown as QUEUED.
    pub max_concurrent_tasks: usize,
    /// CPUs that task processes may request in all, a quantity (`2`, `1500m`). Unset: the
    /// cores this server may use.
    #[serde(deserialize_with = "quantity")]
    pub host_cpus: Option<String>,
    /// Memory that task processes may request in all, a quantity (`16Gi`). Unset: the host's
    /// memory (or the server's cgroup limit, if less).
    #[serde(deserialize_with = "quantity")]
    pub host_memory: Option<String>,
    /// A Python virtual environment for task processes: its `bin/` goes in front of `PATH`
    /// and `VIRTUAL_ENV` is set. Unset: tasks use `task_path` (or the server's own `PATH`).
    pub python_venv: Option<PathBuf>,
    /// Task images mapped to the Python environments their tasks run in, first match wins
    /// (`[{image = "ghcr.io/org/app:*", venv = "/opt/venvs/app"}]`); an image none matches
    /// runs with `python_venv`. Warm workers keep one template per environment.
    pub python_environments: Vec<PythonEnvironmentEntry>,
    /// `PATH` for task processes instead of the server's own (the venv's `bin/` still goes
    /// in front of it).
    pub task_path: Option<String>,
    /// With no `python_venv` and no `pyflyte-execute` on the task `PATH`, create
    /// `<data_dir>/python-venv` with flytekit (the pinned version) at start, in the
    /// background: the API serves at once, Python tasks wait for it (QUEUED) and fail with
    /// the fix named if it cannot be made. Never done when `python_venv` is set.
    pub auto_venv: bool,
    /// The interpreter that creates that environment (`<it> -m venv`, then pip; pip honours
    /// `PIP_INDEX_URL`, `PIP_FIND_LINKS`, … from the server's environment).
    pub auto_venv_python: String,
    /// Budget of SYSTEM-error retries per node, apart from the task's own `retries`
    /// (propeller's `max-node-retries-system-failures`).
    pub max_system_retries: u32,
    /// Nodes one execution may hold at once, all levels (its own, `@dynamic` children, the
    /// items map tasks have in flight); 0: no bound. Past it the `@dynamic` or map node fails
    /// with an error naming this key, before anything is built. Each node takes a few KB of
    /// the server's memory while its execution runs (docs/benchmarks.md, "Size limits").
    pub max_nodes_per_execution: usize,
    /// Items a map task without a concurrency (or with a larger one) runs at once; 0: all.
    pub map_items_in_flight: usize,
    /// Items one map task may have; 0: no bound (but 2^32). Past it the map node fails with
    /// `ArrayTooLarge` naming this key.
    pub max_map_items: usize,
    /// Between SIGTERM and SIGKILL when a task process is aborted or times out, in seconds.
    pub kill_grace_secs: u64,
    /// Keep each attempt's working directory (`<data_dir>/work/…`) after it ends (debugging).
    pub keep_work_dirs: bool,
    /// Unpack a fast-registered task's code bundle in the engine and start its task command
    /// directly, instead of running flytekit's `pyflyte-fast-execute` wrapper (which starts a
    /// second Python interpreter). `false` runs the command exactly as registered.
    pub unpack_code_bundles: bool,
    /// Fork Python tasks whose command is flytekit's entrypoint (`pyflyte-execute`,
    /// `pyflyte-fast-execute`, `pyflyte-map-execute`) from a warm interpreter that has
    /// imported flytekit, one per Python environment (milliseconds instead of ~0.6 s per
    /// attempt). `false`: every attempt starts a new interpreter.
    pub warm_workers: bool,
    /// How task memory limits are held: `auto` (a memory cgroup per attempt, so the kernel
    /// holds it, where the host lets flyte-rs make them; else sampling), `cgroup` (refuse to
    /// start without), `sampling` (each task's memory looked at every 100 ms).
    pub memory_limits: MemoryLimits,
    /// Extra environment for every task process (like the k8s plugin's `default-env-vars`).
    pub task_env: std::collections::BTreeMap<String, String>,
    /// Secrets tasks may request, one file each: `<dir>/<group>/<key>` (docs/secrets.md).
    /// Unset: `<data_dir>/secrets`.
    pub secrets_dir: Option<PathBuf>,
    /// Prefix of the server's environment variables that hold secrets, looked up before the
    /// directory as `<prefix><GROUP>_<KEY>`; empty: none. Never passed on to task processes.
    pub secrets_env_prefix: String,
    /// The server's variables with that prefix, taken at load: never serialised or shown.
    #[serde(skip)]
    pub secret_env: flyte_engine::secrets::SecretEnv,
}

/// `engine.memory_limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryLimits {
    Auto,
    Cgroup,
    Sampling,
}

/// One `engine.python_environments` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonEnvironmentEntry {
    /// The task image exactly, or a prefix ending in `*`.
    pub image: String,
    /// The virtual environment (made absolute at load).
    pub venv: PathBuf,
}

/// A Kubernetes quantity as text, written as a string (`"1500m"`, `"16Gi"`) or a plain number
/// (`2`, which environment variables give as one).
fn quantity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Quantity {
        Int(u64),
        Float(f64),
        Text(String),
    }
    Ok(Option::<Quantity>::deserialize(d)?.map(|q| match q {
        Quantity::Int(n) => n.to_string(),
        Quantity::Float(n) => n.to_string(),
        Quantity::Text(t) => t,
    }))
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            max_concurrent_tasks: 0,
            host_cpus: None,
            host_memory: None,
            python_venv: None,
            python_environments: Vec::new(),
            task_path: None,
            auto_venv: true,
            auto_venv_python: "python3".into(),
            max_system_retries: 3,
            max_nodes_per_execution: flyte_engine::config::DEFAULT_MAX_NODES_PER_EXECUTION,
            map_items_in_flight: flyte_engine::config::DEFAULT_MAP_ITEMS_IN_FLIGHT,
            max_map_items: flyte_engine::config::DEFAULT_MAX_MAP_ITEMS,
            kill_grace_secs: 5,
            keep_work_dirs: false,
            unpack_code_bundles: true,
            warm_workers: true,
            memory_limits: MemoryLimits::Auto,
            task_env: Default::default(),
            secrets_dir: None,
            secrets_env_prefix: flyte_engine::secrets::DEFAULT_SERVER_ENV_PREFIX.into(),
            secret_env: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `text` (human) or `json` (one object per line).
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `flyte_admin=debug,info`, …
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("~/.flyte-rs"),
            server: ServerConfig::default(),
            kubernetes: flyte_kube::KubeConfig::default(),
            storage: StorageConfig::default(),
            admin: AdminSection::default(),
            engine: EngineSection::default(),
            logging: LoggingConfig::default(),
            telemetry: TelemetryConfig::default(),
            replica: ReplicaConfig::default(),
            scheduler: SchedulerSection::default(),
            notifications: NotificationsSection::default(),
            auth: flyte_auth::AuthConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            public_url: None,
            max_request_bytes: 32 * 1024 * 1024,
            shutdown_grace_secs: 10,
            tls: TlsConfig {
                reload_secs: 30,
                ..TlsConfig::default()
            },
            allow_cleartext: false,
        }
    }
}

impl StorageConfig {
    /// The blob store's settings beyond its URL.
    pub fn blob_options(&self) -> flyte_blob::BlobOptions {
        let s3 = &self.s3;
        flyte_blob::BlobOptions {
            region: s3.region.clone(),
            endpoint: s3.endpoint.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.clone(),
            session_token: s3.session_token.clone(),
            allow_http: s3.allow_http,
            virtual_hosted_style: s3.virtual_hosted_style,
            extra: self.blob_option_keys(),
        }
    }

    /// `blob_options` with object_store's lowercase keys (environment variables give them
    /// in capitals).
    fn blob_option_keys(&self) -> std::collections::BTreeMap<String, String> {
        self.blob_options
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    }

    /// The key prefixes each metadata location holds, with its URL: admin's
    /// `metadata/<project>/<domain>/`, the engine's `metadata/<project>-<domain>-` (propeller's
    /// execution directories) and uploads' `<upload_prefix>/<project>/<domain>/`, for the
    /// location's domain or every one of `domains`.
    pub fn metadata_routes(
        &self,
        domains: &[String],
        upload_prefix: &str,
    ) -> Vec<(String, String)> {
        let mut routes = Vec::new();
        for loc in &self.metadata_locations {
            let chosen = match &loc.domain {
                Some(d) => std::slice::from_ref(d),
                None => domains,
            };
            for d in chosen {
                let p = &loc.project;
                for prefix in [
                    format!("metadata/{p}/{d}/"),
                    format!("metadata/{p}-{d}-"),
                    format!("{upload_prefix}/{p}/{d}/"),
                ] {
                    routes.push((prefix, loc.url.clone()));
                }
            }
        }
        routes
    }

    /// Whether any store is Azure's (`blob_url` or a metadata location).
    fn uses_azure(&self) -> bool {
        let azure = |u: &str| {
            ["az://", "azure://", "abfs://", "abfss://", "adl://"]
                .iter()
                .any(|s| u.starts_with(s))
        };
        self.blob_url.as_deref().is_some_and(azure)
            || self.metadata_locations.iter().any(|l| azure(&l.url))
    }

    /// What task processes need to read and write the same store with flytekit (its
    /// `FLYTE_AWS_*` / `FLYTE_AZURE_*` settings, and botocore's `AWS_*`). Unset settings are
    /// left to the task's own environment (inherited, or instance metadata / web identity).
    pub fn task_env(&self) -> std::collections::BTreeMap<String, String> {
        let s3 = &self.s3;
        let mut env = std::collections::BTreeMap::new();
        let mut set = |keys: &[&str], value: Option<&String>| {
            if let Some(v) = value {
                for k in keys {
                    env.insert(k.to_string(), v.clone());
                }
            }
        };
        set(&["FLYTE_AWS_ENDPOINT"], s3.endpoint.as_ref());
        set(
            &["FLYTE_AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"],
            s3.access_key_id.as_ref(),
        );
        set(
            &["FLYTE_AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"],
            s3.secret_access_key.as_ref(),
        );
        set(&["AWS_SESSION_TOKEN"], s3.session_token.as_ref());
        set(&["AWS_REGION", "AWS_DEFAULT_REGION"], s3.region.as_ref());
        let options = self.blob_option_keys();
        let opt = |k: &str| options.get(k);
        set(
            &["FLYTE_AZURE_STORAGE_ACCOUNT_NAME"],
            opt("azure_storage_account_name"),
        );
        set(
            &["FLYTE_AZURE_STORAGE_ACCOUNT_KEY"],
            opt("azure_storage_account_key"),
        );
        set(&["FLYTE_AZURE_TENANT_ID"], opt("azure_storage_tenant_id"));
        set(&["FLYTE_AZURE_CLIENT_ID"], opt("azure_storage_client_id"));
        set(
            &["FLYTE_AZURE_CLIENT_SECRET"],
            opt("azure_storage_client_secret"),
        );
        // adlfs reaches an endpoint other than `<account>.blob.core.windows.net` (Azurite, a
        // sovereign cloud) only through a connection string: flytekit has no setting for it.
        if let (true, Some(endpoint), Some(name), Some(key)) = (
            self.uses_azure(),
            s3.endpoint.as_ref(),
            opt("azure_storage_account_name"),
            opt("azure_storage_account_key"),
        ) {
            let protocol = if endpoint.starts_with("http://") {
                "http"
            } else {
                "https"
            };
            env.insert(
                "AZURE_STORAGE_CONNECTION_STRING".into(),
                format!(
                    "DefaultEndpointsProtocol={protocol};AccountName={name};AccountKey={key};\
                     BlobEndpoint={endpoint};"
                ),
            );
        }
        env
    }
}

#[allow(clippy::derivable_impls)]
impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            metadata_url: None,
            blob_url: None,
            metadata_locations: Vec::new(),
            s3: S3Config::default(),
            blob_options: Default::default(),
        }
    }
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            domains: vec!["development".into(), "staging".into(), "production".into()],
            upload_prefix: "uploads".into(),
            signed_url_ttl_secs: 3600,
            max_signed_url_ttl_secs: 7 * 24 * 3600,
            max_inline_bytes: 2 * 1024 * 1024,
            inline_inputs_max_bytes: 4096,
            max_upload_bytes: 5 * 1024 * 1024 * 1024 * 1024,
            signing_key: None,
            attributes: AttributeDefaults::default(),
        }
    }
}

/// Trace export. Off by default: without an endpoint no exporter exists and spans only feed
/// the logs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// An OTLP/HTTP (protobuf) collector, e.g. `http://localhost:4318` (`/v1/traces` is added
    /// when the URL has no path). Spans are exported in batches from a background thread.
    pub otlp_endpoint: Option<String>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// What the command line contributes: the config file to read, and the flags that override
/// every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

/// The environment as the loader sees it: variables and the home directories used for the
/// default data dir. [`Environment::process`] reads the real one; tests build their own.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub vars: Vec<(String, String)>,
}

impl Environment {
    /// The process environment (the one place the binary reads it).
    pub fn process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self {
            vars: vars.collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `$XDG_DATA_HOME/flyte-rs` if set, else `$HOME/.flyte-rs`, else `./.flyte-rs`.
    fn default_data_dir(&self) -> PathBuf {
        if let Some(xdg) = self.get("XDG_DATA_HOME") {
            return Path::new(xdg).join("flyte-rs");
        }
        match self.get("HOME") {
            Some(home) => Path::new(home).join(".flyte-rs"),
            None => PathBuf::from(".flyte-rs"),
        }
    }

    fn home(&self) -> Option<&str> {
        self.get("HOME")
    }

    /// The `FLYTE_RS_*` variables as a nested dictionary (`A__B` nests `b` under `a`). Every
    /// one must name a configuration key: the prefix belongs to the configuration alone
    /// (scripts and tests use `FLYTERS_*`), so a stray variable is refused by name rather
    /// than reported as an unknown field of some section.
    fn layer(&self) -> anyhow::Result<Dict> {
        let keys = env_keys();
        let mut root = Dict::new();
        let mut unknown = Vec::new();
        for (key, raw) in &self.vars {
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let mut path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            let open_map = OPEN_MAPS
                .iter()
                .find(|m| path.len() == m.len() + 1 && path.starts_with(&m.map(String::from)));
            let value: Value = match open_map {
                // Map entries keep their case and their text: they are environment variables.
                Some(map) => {
                    path[map.len()] = rest.rsplit("__").next().unwrap_or("").to_string();
                    Value::from(raw.clone())
                }
                None if keys.contains(&path.join(".")) => env_value(raw),
                None => {
                    unknown.push(key.as_str());
                    continue;
                }
            };
            ensure!(
                path.iter().all(|p| !p.is_empty()),
                "environment variable {key}: empty key segment"
            );
            insert_nested(&mut root, &path, value, key)?;
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            let valid: Vec<String> = keys
                .iter()
                .map(|k| env_var_name(k))
                .chain(
                    OPEN_MAPS
                        .iter()
                        .map(|m| format!("{}__<NAME>", env_var_name(&m.join(".")))),
                )
                .collect();
            bail!(
                "unknown configuration variable{} {}: `{ENV_PREFIX}*` variables must name a \
                 configuration key (script and test settings use `FLYTERS_*`); valid keys: {}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                valid.join(", ")
            );
        }
        Ok(root)
    }
}

/// A variable's value: JSON when it is a JSON list or table (a list of structs, e.g.
/// `kubernetes.log_links`: figment's own syntax has no `"key": value`), else figment's syntax
/// (`[a, b]`, `{k=v}`, numbers, booleans), else the text.
fn env_value(raw: &str) -> Value {
    if raw.trim_start().starts_with(['[', '{'])
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(raw)
        && let Ok(value) = Value::serialize(json)
    {
        return value;
    }
    raw.parse().unwrap_or_else(|_| Value::from(raw.to_string()))
}

/// Sections whose entries are free-form names (`FLYTE_RS_ENGINE__TASK_ENV__MY_VAR=1`).
const OPEN_MAPS: &[[&str; 2]] = &[
    ["engine", "task_env"],
    ["storage", "blob_options"],
    ["kubernetes", "default_labels"],
    ["kubernetes", "default_annotations"],
    ["kubernetes", "default_node_selector"],
    ["kubernetes", "interruptible_node_selector"],
];

/// Every configuration key as a dotted path (`server.listen`), from the defaults' shape.
fn env_keys() -> BTreeSet<String> {
    fn walk(prefix: &str, dict: &Dict, out: &mut BTreeSet<String>) {
        for (k, v) in dict {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Dict(_, inner) if !OPEN_MAPS.iter().any(|m| m.join(".") == path) => {
                    walk(&path, inner, out)
                }
                _ => {
                    out.insert(path);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    // Options that default to None serialize to nothing: the defaults with every optional
    // value set give the full shape.
    if let Ok(Value::Dict(_, dict)) = Value::serialize(Config::shape()) {
        walk("", &dict, &mut out);
    }
    out
}

/// `server.listen` → `FLYTE_RS_SERVER__LISTEN`.
fn env_var_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

fn insert_nested(dict: &mut Dict, path: &[String], value: Value, var: &str) -> anyhow::Result<()> {
    let (head, tail) = path.split_first().expect("non-empty path");
    if tail.is_empty() {
        dict.insert(head.clone(), value);
        return Ok(());
    }
    let entry = dict
        .entry(head.clone())
        .or_insert_with(|| Value::from(Dict::new()));
    match entry {
        Value::Dict(_, inner) => insert_nested(inner, tail, value, var),
        _ => bail!("environment variable {var}: `{head}` is both a value and a section"),
    }
}

impl Config {
    /// Loads the configuration from every layer, derives the dependent values and validates.
    pub fn load(overrides: &Overrides, env: &Environment) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default_for(env)));
        if let Some(file) = &overrides.config_file {
            ensure!(
                file.is_file(),
                "config file {} does not exist or is not a file",
                file.display()
            );
            figment = match file.extension().and_then(|e| e.to_str()) {
                Some("toml") => figment.merge(Toml::file_exact(file)),
                Some("yaml" | "yml") => figment.merge(Yaml::file_exact(file)),
                _ => bail!(
                    "config file {}: expected a .toml, .yaml or .yml extension",
                    file.display()
                ),
            };
        }
        figment = figment.merge(Layer {
            name: "FLYTE_RS_* environment variables",
            dict: env.layer()?,
        });
        let mut flags = Dict::new();
        if let Some(dir) = &overrides.data_dir {
            flags.insert("data_dir".into(), Value::from(dir.display().to_string()));
        }
        if let Some(listen) = overrides.listen {
            let mut server = Dict::new();
            server.insert("listen".into(), Value::from(listen.to_string()));
            flags.insert("server".into(), Value::from(server));
        }
        figment = figment.merge(Layer {
            name: "command-line flags",
            dict: flags,
        });

        let mut config: Config = figment.extract().map_err(|err| {
            let mut msg = String::from("invalid configuration:");
            for e in err {
                msg.push_str("\n  - ");
                msg.push_str(&describe(&e));
            }
            anyhow::anyhow!(msg)
        })?;
        config.resolve(env)?;
        config.validate()?;
        Ok(config)
    }

    /// The defaults with every optional value set: the shape of the configuration.
    fn shape() -> Config {
        let mut c = Config::default();
        c.server.public_url = Some(String::new());
        c.storage.metadata_url = Some(String::new());
        c.storage.blob_url = Some(String::new());
        c.admin.signing_key = Some(String::new());
        c.engine.python_venv = Some(PathBuf::new());
        c.engine.task_path = Some(String::new());
        c.engine.secrets_dir = Some(PathBuf::new());
        c.telemetry.otlp_endpoint = Some(String::new());
        c.replica.id = Some(String::new());
        c.auth.issuer = Some(String::new());
        c.auth.audience = Some(String::new());
        let k = &mut c.kubernetes;
        k.kubeconfig = Some(PathBuf::new());
        for v in [
            &mut k.context,
            &mut k.limit_cpu,
            &mut k.limit_memory,
            &mut k.default_service_account,
            &mut k.scheduler_name,
            &mut k.image_pull_policy,
        ] {
            *v = Some(String::new());
        }
        let a = &mut c.admin.attributes;
        a.raw_output_prefix = Some(String::new());
        a.interruptible = Some(false);
        a.service_account = Some(String::new());
        for q in [&mut a.task_resource_defaults, &mut a.task_resource_limits] {
            for v in [
                &mut q.cpu,
                &mut q.memory,
                &mut q.gpu,
                &mut q.ephemeral_storage,
            ] {
                *v = Some(String::new());
            }
        }
        c
    }

    fn default_for(env: &Environment) -> Config {
        Config {
            data_dir: env.default_data_dir(),
            ..Config::default()
        }
    }

    /// A configuration for tests: everything inside `dir`, listening on a random port.
    pub fn for_test(dir: &Path) -> Config {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().expect("valid"),
                ..Default::default()
            },
            logging: LoggingConfig {
                format: LogFormat::Text,
                level: "warn".into(),
            },
            // Tests name their Python (or need none): never a pip install per test server.
            engine: EngineSection {
                auto_venv: false,
                ..EngineSection::default()
            },
            ..Config::default()
        };
        config
            .resolve(&Environment::default())
            .expect("test config resolves");
        config
    }

    /// Fills in the derived values: absolute `data_dir`, storage URLs, `public_url`.
    fn resolve(&mut self, env: &Environment) -> anyhow::Result<()> {
        if let Some(rest) = self.data_dir.to_str().and_then(|s| s.strip_prefix("~/")) {
            let home = env
                .home()
                .context("data_dir starts with ~ but HOME is not set")?;
            self.data_dir = Path::new(home).join(rest);
        }
        self.data_dir = std::path::absolute(&self.data_dir).with_context(|| {
            format!(
                "data_dir {}: cannot make it absolute",
                self.data_dir.display()
            )
        })?;
        if self.storage.metadata_url.is_none() {
            self.storage.metadata_url = Some(format!(
                "sqlite://{}",
                self.data_dir.join("flyte.db").display()
            ));
        }
        if self.storage.blob_url.is_none() {
            let url = url::Url::from_directory_path(self.data_dir.join("blobs")).map_err(|()| {
                anyhow::anyhow!("data_dir {} is not a valid path", self.data_dir.display())
            })?;
            self.storage.blob_url = Some(url.as_str().trim_end_matches('/').to_string());
        }
        if self.server.public_url.is_none() && self.server.listen.port() != 0 {
            self.server.public_url = Some(public_url_for(
                self.server.listen,
                self.server.tls.enabled(),
            ));
        }
        let secrets_dir = match &self.engine.secrets_dir {
            Some(dir) => std::path::absolute(dir).with_context(|| {
                format!(
                    "engine.secrets_dir {}: cannot make it absolute",
                    dir.display()
                )
            })?,
            None => self.data_dir.join("secrets"),
        };
        self.engine.secrets_dir = Some(secrets_dir);
        self.engine.secret_env = flyte_engine::secrets::SecretEnv::capture(
            &self.engine.secrets_env_prefix,
            env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        for (i, entry) in self.engine.python_environments.iter_mut().enumerate() {
            entry.venv = std::path::absolute(&entry.venv).with_context(|| {
                format!(
                    "engine.python_environments[{i}].venv {}: cannot make it absolute",
                    entry.venv.display()
                )
            })?;
        }
        if let Some(venv) = &self.engine.python_venv {
            self.engine.python_venv = Some(std::path::absolute(venv).with_context(|| {
                format!(
                    "engine.python_venv {}: cannot make it absolute",
                    venv.display()
                )
            })?);
        }
        Ok(())
    }

    /// Checks every value; the error names each offending key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if let Some(url) = &self.server.public_url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => problems.push(format!("server.public_url: `{url}` is not an http(s) URL")),
            }
        }
        if self.replica.lease_secs < 3 {
            problems.push("replica.lease_secs: must be at least 3 (renewed every third)".into());
        }
        if let Some(id) = &self.replica.id
            && (id.is_empty() || id.len() > 200)
        {
            problems.push("replica.id: must be 1 to 200 characters".into());
        }
        problems.extend(self.tls_problems());
        if let Err(problem) = self.auth.validate() {
            problems.push(problem);
        }
        if let Err(problem) = self.kubernetes.validate() {
            problems.push(problem);
        }
        if self.scheduler.poll_ms < 10 {
            problems.push("scheduler.poll_ms: must be at least 10".into());
        }
        if let Err(err) = flyte_scheduler::schedule::parse_time_zone(&self.scheduler.time_zone) {
            problems.push(format!("scheduler.time_zone: {err}"));
        }
        problems.extend(self.notifications.problems());
        if self.server.max_request_bytes < 1024 {
            problems.push("server.max_request_bytes: must be at least 1024".into());
        }
        match self.storage.metadata_url.as_deref() {
            Some(u)
                if ["sqlite:", "postgres://", "postgresql://"]
                    .iter()
                    .any(|p| u.starts_with(p)) => {}
            Some(u) => problems.push(format!(
                "storage.metadata_url: `{}` must start with sqlite:, postgres:// or postgresql://",
                redact(u)
            )),
            None => problems.push("storage.metadata_url: unset".into()),
        }
        match self.storage.blob_url.as_deref().map(url::Url::parse) {
            Some(Ok(_)) => {}
            Some(Err(e)) => problems.push(format!("storage.blob_url: {e}")),
            None => problems.push("storage.blob_url: unset".into()),
        }
        let mut seen = BTreeSet::new();
        for (i, loc) in self.storage.metadata_locations.iter().enumerate() {
            let at = format!("storage.metadata_locations[{i}]");
            if loc.project.is_empty() || loc.project.contains('/') {
                problems.push(format!("{at}.project: a project id is required (no '/')"));
            }
            if let Some(d) = &loc.domain
                && !self.admin.domains.contains(d)
            {
                problems.push(format!(
                    "{at}.domain: `{d}` is not one of admin.domains ({})",
                    self.admin.domains.join(", ")
                ));
            }
            if let Err(e) = url::Url::parse(&loc.url) {
                problems.push(format!("{at}.url: `{}`: {e}", loc.url));
            }
            if !seen.insert((loc.project.clone(), loc.domain.clone())) {
                problems.push(format!(
                    "{at}: {}/{} is listed twice",
                    loc.project,
                    loc.domain.as_deref().unwrap_or("*")
                ));
            }
        }
        if self.admin.domains.is_empty() {
            problems.push("admin.domains: at least one domain is needed".into());
        }
        for (which, q) in [
            (
                "task_resource_defaults",
                &self.admin.attributes.task_resource_defaults,
            ),
            (
                "task_resource_limits",
                &self.admin.attributes.task_resource_limits,
            ),
        ] {
            for (name, v) in [
                ("cpu", &q.cpu),
                ("memory", &q.memory),
                ("gpu", &q.gpu),
                ("ephemeral_storage", &q.ephemeral_storage),
            ] {
                if let Some(v) = v
                    && flyte_engine::backend::resources::parse_quantity(v).is_none()
                {
                    problems.push(format!(
                        "admin.attributes.{which}.{name}: `{v}` is not a quantity (e.g. 500m, 2, 512Mi, 1Gi)"
                    ));
                }
            }
        }
        let mut seen = BTreeSet::new();
        for d in &self.admin.domains {
            let valid = !d.is_empty()
                && d.len() <= 63
                && d.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && d.starts_with(|c: char| c.is_ascii_lowercase());
            if !valid {
                problems.push(format!(
                    "admin.domains: `{d}` is not a valid domain (lowercase letters, digits and '-', starting with a letter)"
                ));
            }
            if !seen.insert(d) {
                problems.push(format!("admin.domains: `{d}` is listed twice"));
            }
        }
        let prefix = &self.admin.upload_prefix;
        if prefix.is_empty()
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix.contains("..")
        {
            problems.push(format!(
                "admin.upload_prefix: `{prefix}` must be a relative path without leading or trailing '/'"
            ));
        }
        if self.admin.signed_url_ttl_secs == 0 {
            problems.push("admin.signed_url_ttl_secs: must be positive".into());
        }
        if self.admin.signed_url_ttl_secs > self.admin.max_signed_url_ttl_secs {
            problems.push(
                "admin.signed_url_ttl_secs: larger than admin.max_signed_url_ttl_secs".into(),
            );
        }
        if let Some(key) = &self.admin.signing_key
            && key.len() < 16
        {
            problems.push("admin.signing_key: use at least 16 characters".into());
        }
        if let Some(venv) = &self.engine.python_venv
            && !venv.join("bin").is_dir()
        {
            problems.push(format!(
                "engine.python_venv: `{}` has no bin/ directory (create it with `python3 -m venv`)",
                venv.display()
            ));
        }
        for (i, entry) in self.engine.python_environments.iter().enumerate() {
            if entry.image.trim().is_empty() || entry.image.trim() == "*" {
                problems.push(format!(
                    "engine.python_environments[{i}].image: empty or `*` (name an image, or a \
                     prefix ending in `*`; python_venv is the environment of every other image)"
                ));
            }
            if entry.venv.as_os_str().is_empty() {
                problems.push(format!("engine.python_environments[{i}].venv: empty"));
            }
        }
        if self.engine.auto_venv_python.trim().is_empty() {
            problems.push(
                "engine.auto_venv_python: empty (a Python 3 interpreter, e.g. `python3`)".into(),
            );
        }
        if let Some(path) = &self.engine.task_path
            && path.trim().is_empty()
        {
            problems.push("engine.task_path: empty (unset it to use the server's PATH)".into());
        }
        if self.engine.max_concurrent_tasks > 100_000 {
            problems.push("engine.max_concurrent_tasks: at most 100000".into());
        }
        for (key, value) in [
            ("host_cpus", &self.engine.host_cpus),
            ("host_memory", &self.engine.host_memory),
        ] {
            if let Some(v) = value
                && !flyte_engine::backend::resources::parse_quantity(v).is_some_and(|q| q > 0.0)
            {
                problems.push(format!(
                    "engine.{key}: `{v}` is not a positive quantity (like 2, 1500m, 16Gi)"
                ));
            }
        }
        if let Some(key) = self
            .engine
            .task_env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            problems.push(format!(
                "engine.task_env: `{key}` is not a valid environment variable name"
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.logging.level) {
            problems.push(format!("logging.level: `{}`: {e}", self.logging.level));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("invalid configuration:\n  - {}", problems.join("\n  - "))
        }
    }

    /// The public URL: configured, or derived from the address actually bound.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => public_url_for(bound, self.server.tls.enabled()),
        }
    }

    /// `server.tls` complete and its files present; cleartext only on loopback unless
    /// `server.allow_cleartext`.
    fn tls_problems(&self) -> Vec<String> {
        let s = &self.server;
        let tls = &s.tls;
        let mut problems = Vec::new();
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => problems.push("server.tls.key_file: unset, but server.tls.cert_file is set (both are needed for TLS)".into()),
            (None, Some(_)) => problems.push("server.tls.cert_file: unset, but server.tls.key_file is set (both are needed for TLS)".into()),
            _ => {}
        }
        for (key, file) in [
            ("cert_file", &tls.cert_file),
            ("key_file", &tls.key_file),
            ("ca_file", &tls.ca_file),
        ] {
            if let Some(path) = file
                && !path.is_file()
            {
                problems.push(format!(
                    "server.tls.{key}: `{}` is not a readable file",
                    path.display()
                ));
            }
        }
        if !tls.enabled() && !s.listen.ip().is_loopback() && !s.allow_cleartext {
            problems.push(format!(
                "server.listen: `{}` is reachable from other machines but TLS is off; set \
                 server.tls.cert_file and server.tls.key_file, or server.allow_cleartext = true \
                 behind a TLS-terminating proxy or on a trusted network (docs/tls.md)",
                s.listen
            ));
        }
        problems
    }

    /// The configuration as TOML, the format `--config` reads (secrets redacted).
    pub fn dump(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        if shown.admin.signing_key.is_some() {
            shown.admin.signing_key = Some("<redacted>".into());
        }
        if let Some(u) = &shown.storage.metadata_url {
            shown.storage.metadata_url = Some(redact(u));
        }
        let hidden = |v: &mut Option<String>| {
            if v.is_some() {
                *v = Some("<redacted>".into());
            }
        };
        hidden(&mut shown.storage.s3.secret_access_key);
        hidden(&mut shown.storage.s3.session_token);
        let n = &mut shown.notifications;
        for secret in [
            &mut n.smtp.password,
            &mut n.slack.webhook_url,
            &mut n.pagerduty.routing_key,
        ] {
            if !secret.is_empty() {
                *secret = "<redacted>".into();
            }
        }
        for value in shown.storage.blob_options.values_mut() {
            *value = "<redacted>".into();
        }
        Ok(toml::to_string_pretty(&shown)?)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_grace_secs)
    }

    /// The number of task processes that may run at once (`engine.max_concurrent_tasks`,
    /// 0 meaning the number of cores).
    pub fn task_concurrency(&self) -> usize {
        match self.engine.max_concurrent_tasks {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// One configuration layer given as a dictionary, named in error messages.
struct Layer {
    name: &'static str,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// `server.listen: invalid socket address syntax (from config.toml)`.
fn describe(err: &figment::Error) -> String {
    let key = err.path.join(".");
    let source = err.metadata.as_ref().map(|m| match &m.source {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ => m.name.to_string(),
    });
    match (key.is_empty(), source) {
        (false, Some(source)) => format!("{key}: {} (from {source})", err.kind),
        (false, None) => format!("{key}: {}", err.kind),
        (true, Some(source)) => format!("{} (from {source})", err.kind),
        (true, None) => err.kind.to_string(),
    }
}

/// `http(s)://<listen>`, with an unspecified address (0.0.0.0, ::) shown as loopback.
fn public_url_for(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// Hides a password in a URL (`postgres://u:secret@h/db` → `postgres://u:***@h/db`).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        let mut all = vec![("HOME".to_string(), "/home/u".to_string())];
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Environment::from_pairs(all)
    }

    #[test]
    fn defaults_are_derived_from_home() {
        let c = Config::load(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/home/u/.flyte-rs"));
        assert_eq!(c.server.listen, DEFAULT_LISTEN);
        assert_eq!(
            c.server.public_url.as_deref(),
            Some("http://127.0.0.1:30080")
        );
        assert_eq!(
            c.storage.metadata_url.as_deref(),
            Some("sqlite:///home/u/.flyte-rs/flyte.db")
        );
        assert_eq!(
            c.storage.blob_url.as_deref(),
            Some("file:///home/u/.flyte-rs/blobs")
        );
        assert_eq!(c.admin.domains, ["development", "staging", "production"]);
    }

    #[test]
    fn xdg_data_home_wins_over_home() {
        let c = Config::load(&Overrides::default(), &env(&[("XDG_DATA_HOME", "/xdg")])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/xdg/flyte-rs"));
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from-file\"\n[server]\nlisten = \"127.0.0.1:1111\"\nmax_request_bytes = 2048\n[logging]\nlevel = \"debug\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        let c = Config::load(&overrides, &env(&[])).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from-file"));
        assert_eq!(c.server.listen.port(), 1111);
        assert_eq!(c.server.max_request_bytes, 2048);

        let e = env(&[
            ("FLYTE_RS_SERVER__LISTEN", "127.0.0.1:2222"),
            ("FLYTE_RS_LOGGING__FORMAT", "json"),
        ]);
        let c = Config::load(&overrides, &e).unwrap();
        assert_eq!(c.server.listen.port(), 2222);
        assert_eq!(
            c.server.max_request_bytes, 2048,
            "file value kept where env is silent"
        );
        assert_eq!(c.logging.format, LogFormat::Json);
        assert_eq!(c.logging.level, "debug");

        let flags = Overrides {
            config_file: Some(file),
            listen: Some("127.0.0.1:3333".parse().unwrap()),
            data_dir: Some("/from-flag".into()),
        };
        let c = Config::load(&flags, &e).unwrap();
        assert_eq!(c.server.listen.port(), 3333);
        assert_eq!(c.data_dir, PathBuf::from("/from-flag"));
        assert_eq!(
            c.storage.metadata_url.as_deref(),
            Some("sqlite:///from-flag/flyte.db")
        );
        assert_eq!(
            c.server.public_url.as_deref(),
            Some("http://127.0.0.1:3333")
        );
    }

    #[test]
    fn yaml_file_and_lists_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "admin:\n  domains: [dev, prod]\n  upload_prefix: up\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let c = Config::load(&overrides, &env(&[])).unwrap();
        assert_eq!(c.admin.domains, ["dev", "prod"]);
        assert_eq!(c.admin.upload_prefix, "up");
        let c = Config::load(
            &overrides,
            &env(&[("FLYTE_RS_ADMIN__DOMAINS", "[a, b, c]")]),
        )
        .unwrap();
        assert_eq!(c.admin.domains, ["a", "b", "c"]);
    }

    #[test]
    fn kubernetes_section_from_a_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "kubernetes:\n  enabled: true\n  namespace_template: 'flyte-{{ project }}'\n  \
             interruptible_tolerations:\n  - {key: spot, operator: Exists, effect: NoSchedule}\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let c = Config::load(
            &overrides,
            &env(&[
                ("FLYTE_RS_KUBERNETES__LIMIT_MEMORY", "32Gi"),
                ("FLYTE_RS_KUBERNETES__TASK_TYPES", "[python-task]"),
                ("FLYTE_RS_KUBERNETES__DEFAULT_LABELS__team", "ml"),
            ]),
        )
        .unwrap();
        let k = &c.kubernetes;
        assert!(k.enabled);
        assert_eq!(k.namespace("p", "d"), "flyte-p");
        assert_eq!(k.interruptible_tolerations[0].key.as_deref(), Some("spot"));
        assert_eq!(k.limit_memory.as_deref(), Some("32Gi"));
        assert_eq!(k.task_types, ["python-task"]);
        assert_eq!(k.default_labels.get("team").map(String::as_str), Some("ml"));
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_KUBERNETES__DEFAULT_CPU", "fast")]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("kubernetes.default_cpu"),
            "{err:#}"
        );
    }

    #[test]
    fn kubernetes_log_links_from_the_environment_as_json() {
        // A list of structs in one variable (the Helm chart sets only variables).
        let c = Config::load(
            &Overrides::default(),
            &env(&[(
                "FLYTE_RS_KUBERNETES__LOG_LINKS",
                r#"[{"display_name": "Kubernetes Logs", "template_uris":
                     ["https://dash/#/log/{{ .namespace }}/{{ .podName }}/pod?namespace={{ .namespace }}"],
                     "message_format": "json", "show_while_pending": true}]"#,
            )]),
        )
        .unwrap();
        let links = &c.kubernetes.log_links;
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0].display_name, "Kubernetes Logs");
        assert_eq!(
            links[0].template_uris,
            ["https://dash/#/log/{{ .namespace }}/{{ .podName }}/pod?namespace={{ .namespace }}"]
        );
        assert!(links[0].show_while_pending);
        let c = Config::load(
            &Overrides::default(),
            &env(&[(
                "FLYTE_RS_KUBERNETES__INTERRUPTIBLE_TOLERATIONS",
                r#"[{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]"#,
            )]),
        )
        .unwrap();
        assert_eq!(
            c.kubernetes.interruptible_tolerations[0].key.as_deref(),
            Some("spot")
        );
        // A mistake names the key.
        let err = Config::load(
            &Overrides::default(),
            &env(&[(
                "FLYTE_RS_KUBERNETES__LOG_LINKS",
                r#"[{"display_nme": "x"}]"#,
            )]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("log_links"), "{err:#}");
    }

    #[test]
    fn errors_name_the_key() {
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_SERVER__LISTEN", "nope")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("server.listen"), "{err:#}");
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_SERVER__LISTN", "x")]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("FLYTE_RS_SERVER__LISTN"),
            "{err:#}"
        );
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_STORAGE__METADATA_URL", "mysql://x")]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("storage.metadata_url"),
            "{err:#}"
        );
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_ADMIN__DOMAINS", "[Dev]")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("admin.domains"), "{err:#}");
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_LOGGING__LEVEL", "[[[")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("logging.level"), "{err:#}");
        let missing = Overrides {
            config_file: Some("/nonexistent.toml".into()),
            ..Default::default()
        };
        let err = Config::load(&missing, &env(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent.toml"), "{err:#}");
    }

    /// The scripts' old knobs shared the prefix and stopped every command with "unknown
    /// field"; now only configuration keys carry it, and a stray one is refused by name.
    #[test]
    fn unknown_variables_are_refused_by_name_with_the_valid_keys() {
        for var in [
            "FLYTE_RS_PG_DATA",
            "FLYTE_RS_VENV",
            "FLYTE_RS_TEST_POSTGRES_URL",
            "FLYTE_RS_ENGINE__NO_SUCH_KEY",
            "FLYTE_RS_SERVER",
        ] {
            let err = Config::load(&Overrides::default(), &env(&[(var, "/tmp/x")])).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains(&format!("unknown configuration variable {var}:")),
                "{msg}"
            );
            for key in [
                "FLYTE_RS_DATA_DIR",
                "FLYTE_RS_SERVER__LISTEN",
                "FLYTE_RS_SERVER__PUBLIC_URL",
                "FLYTE_RS_STORAGE__METADATA_URL",
                "FLYTE_RS_ENGINE__PYTHON_VENV",
                "FLYTE_RS_ENGINE__AUTO_VENV",
                "FLYTE_RS_ENGINE__TASK_ENV__<NAME>",
                "FLYTE_RS_TELEMETRY__OTLP_ENDPOINT",
                "FLYTE_RS_LOGGING__LEVEL",
            ] {
                assert!(msg.contains(key), "{key} missing from: {msg}");
            }
            assert!(!msg.contains("unknown field"), "{msg}");
        }
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_PG_PORT", "1"), ("FLYTE_RS_PG_DATA", "/x")]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("variables FLYTE_RS_PG_DATA, FLYTE_RS_PG_PORT:"),
            "{err:#}"
        );
        // The scripts' and tests' own prefix is not read at all.
        let c = Config::load(
            &Overrides::default(),
            &env(&[
                ("FLYTERS_TEST_POSTGRES_URL", "postgres://x"),
                ("FLYTERS_PG_DATA", "/x"),
            ]),
        );
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn every_key_of_the_dump_is_settable_from_the_environment() {
        let keys = env_keys();
        let dumped: toml::Table = toml::from_str(&Config::shape().dump().unwrap()).unwrap();
        fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(inner) if path != "engine.task_env" => {
                        walk(&path, inner, out)
                    }
                    _ => out.push(path),
                }
            }
        }
        let mut all = Vec::new();
        walk("", &dumped, &mut all);
        for key in all {
            assert!(
                keys.contains(&key),
                "{key} is not accepted from the environment"
            );
        }
    }

    #[test]
    fn attribute_defaults_from_the_environment_and_bad_quantities_named() {
        let c = Config::load(
            &Overrides::default(),
            &env(&[
                ("FLYTE_RS_ADMIN__ATTRIBUTES__MAX_PARALLELISM", "4"),
                (
                    "FLYTE_RS_ADMIN__ATTRIBUTES__RAW_OUTPUT_PREFIX",
                    "s3://b/raw",
                ),
                ("FLYTE_RS_ADMIN__ATTRIBUTES__INTERRUPTIBLE", "true"),
                (
                    "FLYTE_RS_ADMIN__ATTRIBUTES__TASK_RESOURCE_DEFAULTS__CPU",
                    "500m",
                ),
            ]),
        )
        .unwrap();
        let a = &c.admin.attributes;
        assert_eq!(a.max_parallelism, 4);
        assert_eq!(a.raw_output_prefix.as_deref(), Some("s3://b/raw"));
        assert_eq!(a.interruptible, Some(true));
        assert_eq!(a.task_resource_defaults.cpu.as_deref(), Some("500m"));
        let err = Config::load(
            &Overrides::default(),
            &env(&[(
                "FLYTE_RS_ADMIN__ATTRIBUTES__TASK_RESOURCE_LIMITS__MEMORY",
                "lots",
            )]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("admin.attributes.task_resource_limits.memory"),
            "{err:#}"
        );
    }

    #[test]
    fn task_env_entries_keep_their_case() {
        let c = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_ENGINE__TASK_ENV__My_Var", "1")]),
        )
        .unwrap();
        assert_eq!(
            c.engine.task_env.get("My_Var").map(String::as_str),
            Some("1")
        );
        let c = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_ENGINE__AUTO_VENV", "false")]),
        )
        .unwrap();
        assert!(!c.engine.auto_venv);
    }

    #[test]
    fn dump_redacts_object_store_secrets() {
        let e = env(&[
            ("FLYTE_RS_STORAGE__S3__SECRET_ACCESS_KEY", "s3-secret-value"),
            ("FLYTE_RS_STORAGE__S3__ACCESS_KEY_ID", "AKIDEXAMPLE"),
            (
                "FLYTE_RS_STORAGE__BLOB_OPTIONS__AZURE_STORAGE_ACCOUNT_KEY",
                "az-secret-value",
            ),
        ]);
        let c = Config::load(&Overrides::default(), &e).unwrap();
        assert_eq!(
            c.storage.s3.secret_access_key.as_deref(),
            Some("s3-secret-value")
        );
        let text = c.dump().unwrap();
        assert!(!text.contains("s3-secret-value"), "{text}");
        assert!(!text.contains("az-secret-value"), "{text}");
        assert!(text.contains("AKIDEXAMPLE"), "{text}");
        let task = c.storage.task_env();
        assert_eq!(
            task.get("FLYTE_AWS_SECRET_ACCESS_KEY").map(String::as_str),
            Some("s3-secret-value")
        );
        assert_eq!(
            task.get("FLYTE_AZURE_STORAGE_ACCOUNT_KEY")
                .map(String::as_str),
            Some("az-secret-value")
        );
        assert!(format!("{:?}", c.storage.blob_options()).contains("<redacted>"));
    }

    #[test]
    fn azure_with_an_endpoint_gives_tasks_a_connection_string() {
        let e = env(&[
            ("FLYTE_RS_STORAGE__BLOB_URL", "abfs://flyte-rs/prefix"),
            (
                "FLYTE_RS_STORAGE__S3__ENDPOINT",
                "http://127.0.0.1:10010/acct",
            ),
            (
                "FLYTE_RS_STORAGE__BLOB_OPTIONS__AZURE_STORAGE_ACCOUNT_NAME",
                "acct",
            ),
            (
                "FLYTE_RS_STORAGE__BLOB_OPTIONS__AZURE_STORAGE_ACCOUNT_KEY",
                "a2V5",
            ),
        ]);
        let c = Config::load(&Overrides::default(), &e).unwrap();
        assert_eq!(
            c.storage
                .task_env()
                .get("AZURE_STORAGE_CONNECTION_STRING")
                .map(String::as_str),
            Some(
                "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;\
                 BlobEndpoint=http://127.0.0.1:10010/acct;"
            )
        );
        // S3 with an endpoint: no Azure connection string.
        let s3 = env(&[
            ("FLYTE_RS_STORAGE__BLOB_URL", "s3://b/p"),
            ("FLYTE_RS_STORAGE__S3__ENDPOINT", "http://127.0.0.1:9000"),
        ]);
        let c = Config::load(&Overrides::default(), &s3).unwrap();
        assert!(
            !c.storage
                .task_env()
                .contains_key("AZURE_STORAGE_CONNECTION_STRING")
        );
    }

    #[test]
    fn metadata_locations_route_a_projects_keys() {
        let e = env(&[(
            "FLYTE_RS_STORAGE__METADATA_LOCATIONS",
            r#"[{project="team", url="file:///srv/team"}, {project="ops", domain="production", url="s3://ops/meta"}]"#,
        )]);
        let c = Config::load(&Overrides::default(), &e).unwrap();
        assert_eq!(c.storage.metadata_locations.len(), 2);
        let routes = c
            .storage
            .metadata_routes(&c.admin.domains, &c.admin.upload_prefix);
        let team: Vec<&str> = routes
            .iter()
            .filter(|(_, url)| url == "file:///srv/team")
            .map(|(p, _)| p.as_str())
            .collect();
        for domain in &c.admin.domains {
            assert!(team.contains(&format!("metadata/team/{domain}/").as_str()));
            assert!(team.contains(&format!("metadata/team-{domain}-").as_str()));
            assert!(team.contains(&format!("uploads/team/{domain}/").as_str()));
        }
        let ops: Vec<&str> = routes
            .iter()
            .filter(|(_, url)| url == "s3://ops/meta")
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(
            ops,
            [
                "metadata/ops/production/",
                "metadata/ops-production-",
                "uploads/ops/production/"
            ]
        );
        for (bad, says) in [
            (
                r#"[{project="team", domain="nope", url="file:///x"}]"#,
                "storage.metadata_locations[0].domain",
            ),
            (
                r#"[{project="team", url="not a url"}]"#,
                "storage.metadata_locations[0].url",
            ),
            (
                r#"[{project="t", url="file:///x"}, {project="t", url="file:///y"}]"#,
                "t/* is listed twice",
            ),
        ] {
            let err = Config::load(
                &Overrides::default(),
                &env(&[("FLYTE_RS_STORAGE__METADATA_LOCATIONS", bad)]),
            )
            .unwrap_err();
            assert!(format!("{err:#}").contains(says), "{bad}: {err:#}");
        }
    }

    #[test]
    fn dump_round_trips_and_redacts() {
        let e = env(&[(
            "FLYTE_RS_STORAGE__METADATA_URL",
            "postgres://u:secret@db/flyte",
        )]);
        let c = Config::load(&Overrides::default(), &e).unwrap();
        let text = c.dump().unwrap();
        // The password, not the word (`engine.secrets_dir` is a key).
        assert!(!text.contains(":secret@"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dump.toml");
        std::fs::write(&file, c.clone().dump().unwrap()).unwrap();
        let again = Config::load(
            &Overrides {
                config_file: Some(file),
                ..Default::default()
            },
            &env(&[]),
        )
        .unwrap();
        assert_eq!(again.server, c.server);
        assert_eq!(again.admin, c.admin);
    }

    #[test]
    fn cleartext_on_a_network_address_needs_tls_or_the_explicit_setting() {
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_SERVER__LISTEN", "0.0.0.0:8080")]),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("server.allow_cleartext"), "{msg}");
        assert!(msg.contains("server.tls.cert_file"), "{msg}");
        // Loopback stays the cleartext default.
        Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_SERVER__LISTEN", "127.0.0.1:8080")]),
        )
        .unwrap();
    }

    #[test]
    fn tls_needs_both_files_and_gives_an_https_public_url() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, "x").unwrap();
        let cert_s = cert.to_str().unwrap();
        let key_s = key.to_str().unwrap();
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_SERVER__TLS__CERT_FILE", cert_s)]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("server.tls.key_file: unset"),
            "{err:#}"
        );
        let err = Config::load(
            &Overrides::default(),
            &env(&[
                ("FLYTE_RS_SERVER__TLS__CERT_FILE", cert_s),
                ("FLYTE_RS_SERVER__TLS__KEY_FILE", key_s),
            ]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("server.tls.key_file: `"),
            "{err:#}"
        );
        std::fs::write(&key, "x").unwrap();
        let c = Config::load(
            &Overrides::default(),
            &env(&[
                ("FLYTE_RS_SERVER__LISTEN", "0.0.0.0:8443"),
                ("FLYTE_RS_SERVER__TLS__CERT_FILE", cert_s),
                ("FLYTE_RS_SERVER__TLS__KEY_FILE", key_s),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.server.public_url.as_deref(),
            Some("https://127.0.0.1:8443")
        );
    }

    #[test]
    fn unspecified_listen_gives_loopback_public_url() {
        let c = Config::load(
            &Overrides::default(),
            &env(&[
                ("FLYTE_RS_SERVER__LISTEN", "0.0.0.0:8080"),
                ("FLYTE_RS_SERVER__ALLOW_CLEARTEXT", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.server.public_url.as_deref(),
            Some("http://127.0.0.1:8080")
        );
    }

    #[test]
    fn secrets_default_under_the_data_dir_and_their_values_are_never_shown() {
        let c = Config::load(
            &Overrides::default(),
            &env(&[
                ("FLYTE_SECRET_API_TOKEN", "s3cr3t-value"),
                ("OTHER", "not-a-secret"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.engine.secrets_dir.as_deref(),
            Some(Path::new("/home/u/.flyte-rs/secrets"))
        );
        let shown = format!("{c:?}\n{}", c.dump().unwrap());
        assert!(shown.contains("FLYTE_SECRET_API_TOKEN"), "{shown}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert_ne!(
            c.engine.secret_env,
            flyte_engine::secrets::SecretEnv::default()
        );
        let c = Config::load(
            &Overrides::default(),
            &env(&[
                ("FLYTE_RS_ENGINE__SECRETS_DIR", "/srv/secrets"),
                ("FLYTE_RS_ENGINE__SECRETS_ENV_PREFIX", ""),
                ("FLYTE_SECRET_API_TOKEN", "s3cr3t-value"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.engine.secrets_dir.as_deref(),
            Some(Path::new("/srv/secrets"))
        );
        assert_eq!(
            c.engine.secret_env,
            flyte_engine::secrets::SecretEnv::default()
        );
    }

    #[test]
    fn host_capacity_is_a_quantity_from_env_or_file() {
        let c = Config::load(
            &Overrides::default(),
            &env(&[
                ("FLYTE_RS_ENGINE__HOST_CPUS", "2"),
                ("FLYTE_RS_ENGINE__HOST_MEMORY", "16Gi"),
            ]),
        )
        .unwrap();
        assert_eq!(c.engine.host_cpus.as_deref(), Some("2"));
        assert_eq!(c.engine.host_memory.as_deref(), Some("16Gi"));
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_ENGINE__HOST_CPUS", "lots")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("engine.host_cpus: `lots` is not a positive quantity"),
            "{err}"
        );
    }

    #[test]
    fn memory_limits_are_auto_unless_set_to_a_known_mode() {
        let defaults = Config::load(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(defaults.engine.memory_limits, MemoryLimits::Auto);
        let c = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_ENGINE__MEMORY_LIMITS", "cgroup")]),
        )
        .unwrap();
        assert_eq!(c.engine.memory_limits, MemoryLimits::Cgroup);
        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_ENGINE__MEMORY_LIMITS", "kernel")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("memory_limits") && err.contains("sampling"),
            "{err}"
        );
    }

    #[test]
    fn engine_section_from_env_and_checked() {
        let venv = tempfile::tempdir().unwrap();
        std::fs::create_dir(venv.path().join("bin")).unwrap();
        let c = Config::load(
            &Overrides::default(),
            &env(&[
                (
                    "FLYTE_RS_ENGINE__PYTHON_VENV",
                    venv.path().to_str().unwrap(),
                ),
                ("FLYTE_RS_ENGINE__MAX_CONCURRENT_TASKS", "3"),
                ("FLYTE_RS_ENGINE__MAX_SYSTEM_RETRIES", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(c.engine.python_venv.as_deref(), Some(venv.path()));
        assert_eq!(c.task_concurrency(), 3);
        assert_eq!(c.engine.max_system_retries, 5);
        assert_eq!(c.engine.kill_grace_secs, 5);
        let defaults = Config::load(&Overrides::default(), &env(&[])).unwrap();
        assert!(defaults.task_concurrency() >= 1);
        assert_eq!(defaults.engine.python_venv, None);

        let err = Config::load(
            &Overrides::default(),
            &env(&[("FLYTE_RS_ENGINE__PYTHON_VENV", "/no/such/venv")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("engine.python_venv"), "{err:#}");
    }

    #[test]
    fn python_environments_map_images_to_venvs_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "engine:\n  python_environments:\n    - image: ghcr.io/org/ml:*\n      venv: venvs/ml\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        let c = Config::load(&overrides, &env(&[])).unwrap();
        let entry = &c.engine.python_environments[0];
        assert_eq!(entry.image, "ghcr.io/org/ml:*");
        // Relative to where the server starts, like python_venv; a missing one only warns.
        assert!(entry.venv.is_absolute() && entry.venv.ends_with("venvs/ml"));

        std::fs::write(
            &file,
            "engine:\n  python_environments:\n    - image: '*'\n      venv: /v\n",
        )
        .unwrap();
        let err = Config::load(&overrides, &env(&[])).unwrap_err();
        assert!(
            format!("{err:#}").contains("engine.python_environments[0].image"),
            "{err:#}"
        );
    }
}

/// Execution notifications (docs/notifications.md): email over SMTP, Slack, PagerDuty and
/// generic webhooks, sent from a durable outbox with retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsSection {
    /// Off: nothing is sent (flyteadmin with notifications off); outbox rows are closed.
    pub enabled: bool,
    /// The console's base URL in links; empty: `server.public_url` + `/console`.
    pub console_url: String,
    /// How often the outbox is polled for due notifications.
    pub poll_ms: u64,
    /// Attempts per notification before it is given up (logged at ERROR).
    pub max_attempts: u32,
    /// The wait after the first failed attempt, doubled after each further one.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// How long delivered and given-up outbox rows are kept after closing; 0 keeps them
    /// forever. Pruned every 10 minutes, in batches.
    pub retention_hours: u64,
    /// flyteadmin's `notifications.emailer`: sender, subject and body templates.
    pub email: NotificationsEmail,
    pub smtp: NotificationsSmtp,
    pub slack: NotificationsSlack,
    pub pagerduty: NotificationsPagerDuty,
    /// Generic JSON webhooks, each told of every notification sent.
    pub webhooks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsEmail {
    pub sender: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsSmtp {
    /// Empty: no email is sent (email notifications fail, logged at ERROR).
    pub host: String,
    pub port: u16,
    /// `starttls` (required upgrade), `tls` (implicit, port 465) or `none` (a local relay).
    pub tls: flyte_notify::senders::SmtpTls,
    /// Empty: no authentication.
    pub username: String,
    pub password: String,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsSlack {
    /// A Slack incoming webhook; empty: Slack notifications are emailed to their recipients.
    pub webhook_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsPagerDuty {
    /// An Events API v2 integration key; empty: PagerDuty notifications are emailed.
    pub routing_key: String,
    pub events_url: String,
}

impl Default for NotificationsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            console_url: String::new(),
            poll_ms: 1000,
            max_attempts: 10,
            backoff_initial_ms: 5_000,
            backoff_max_ms: 600_000,
            retention_hours: 168,
            email: NotificationsEmail::default(),
            smtp: NotificationsSmtp::default(),
            slack: NotificationsSlack::default(),
            pagerduty: NotificationsPagerDuty::default(),
            webhooks: Vec::new(),
        }
    }
}

impl Default for NotificationsEmail {
    fn default() -> Self {
        Self {
            sender: "flyte-notifications@localhost".into(),
            subject: flyte_notify::DEFAULT_SUBJECT.into(),
            body: flyte_notify::DEFAULT_BODY.into(),
        }
    }
}

impl Default for NotificationsSmtp {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: flyte_notify::senders::SmtpTls::Starttls,
            username: String::new(),
            password: String::new(),
            timeout_secs: 30,
        }
    }
}

impl Default for NotificationsPagerDuty {
    fn default() -> Self {
        Self {
            routing_key: String::new(),
            events_url: "https://events.pagerduty.com/v2/enqueue".into(),
        }
    }
}

impl NotificationsSection {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.poll_ms < 10 {
            problems.push("notifications.poll_ms: must be at least 10".into());
        }
        if self.max_attempts == 0 {
            problems.push("notifications.max_attempts: must be at least 1".into());
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            problems.push(
                "notifications.backoff_initial_ms: must be at least 1 and at most notifications.backoff_max_ms"
                    .into(),
            );
        }
        let http = |v: &str| v.starts_with("http://") || v.starts_with("https://");
        for (key, url) in self
            .webhooks
            .iter()
            .map(|u| ("notifications.webhooks", u.as_str()))
            .chain([
                (
                    "notifications.slack.webhook_url",
                    self.slack.webhook_url.as_str(),
                ),
                ("notifications.console_url", self.console_url.as_str()),
            ])
        {
            if !url.is_empty() && !http(url) {
                problems.push(format!("{key}: `{url}` is not an http(s) URL"));
            }
        }
        if !self.pagerduty.routing_key.is_empty() && !http(&self.pagerduty.events_url) {
            problems.push("notifications.pagerduty.events_url: must be an http(s) URL".into());
        }
        if !self.smtp.host.is_empty()
            && let Err(err) = flyte_notify::senders::check_address(&self.email.sender)
        {
            problems.push(format!(
                "notifications.email.sender: `{}` is not an email address: {err}",
                self.email.sender
            ));
        }
        problems
    }

    /// The notifier's settings; `public_url` is the server's (links to the console).
    pub fn notifier_config(&self, public_url: &str, owner: String) -> flyte_notify::NotifyConfig {
        use std::time::Duration;
        let console_url = if self.console_url.is_empty() {
            format!("{}/console", public_url.trim_end_matches('/'))
        } else {
            self.console_url.clone()
        };
        flyte_notify::NotifyConfig {
            enabled: self.enabled,
            console_url,
            sender: self.email.sender.clone(),
            subject: self.email.subject.clone(),
            body: self.email.body.clone(),
            smtp: (!self.smtp.host.is_empty()).then(|| flyte_notify::senders::SmtpConfig {
                host: self.smtp.host.clone(),
                port: self.smtp.port,
                tls: self.smtp.tls,
                username: self.smtp.username.clone(),
                password: self.smtp.password.clone(),
                timeout: Duration::from_secs(self.smtp.timeout_secs.max(1)),
            }),
            slack_webhook_url: (!self.slack.webhook_url.is_empty())
                .then(|| self.slack.webhook_url.clone()),
            pagerduty: (!self.pagerduty.routing_key.is_empty()).then(|| {
                flyte_notify::PagerDutyConfig {
                    routing_key: self.pagerduty.routing_key.clone(),
                    events_url: self.pagerduty.events_url.clone(),
                }
            }),
            webhook_urls: self.webhooks.clone(),
            poll_interval: Duration::from_millis(self.poll_ms),
            max_attempts: i32::try_from(self.max_attempts).unwrap_or(i32::MAX),
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            owner,
            retention: (self.retention_hours > 0)
                .then(|| Duration::from_secs(self.retention_hours.saturating_mul(3600))),
            ..flyte_notify::NotifyConfig::default()
        }
    }
}
