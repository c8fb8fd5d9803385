//! Composition of the whole platform into one listening server.
//!
//! One TCP port serves gRPC (HTTP/2, as `grpc.insecure_channel` speaks it) and HTTP/1.1
//! (REST gateway, data-proxy uploads, health and metrics): axum's server detects the HTTP/2
//! preface per connection. With `server.tls` the same port speaks TLS first (tls.rs).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use flyte_admin::launcher::EngineParts;
use flyte_admin::{AdminConfig, AdminState};
use flyte_blob::BlobStore;
use flyte_engine::EngineConfig;
use flyte_engine::backend::TaskBackend;
use flyte_engine::backend::builtin::BuiltinBackend;
use flyte_engine::backend::local::{LOG_ROUTE, LocalProcessBackend, LocalProcessConfig, LogLayout};
use flyte_store::MetadataStore;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, redact};
use crate::data_dir_lock::DataDirLock;
use crate::python_env;
use crate::telemetry;

/// A server that is accepting connections.
pub struct RunningServer {
    addr: SocketAddr,
    public_url: String,
    startup: Duration,
    /// `server.tls.ca_file`, for the printed flytekit config.
    ca_file: Option<std::path::PathBuf>,
    shutdown: ShutdownHandle,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Asks a running server to shut down gracefully; cheap to clone, usable from signal handlers.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl RunningServer {
    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL clients use (`http://127.0.0.1:30080`).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Time from `start` being called to accepting connections.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight requests finish (up to `server.shutdown_grace_secs`),
    /// and returns when the server is down.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.wait().await
    }

    /// Runs until the server stops (after a [`ShutdownHandle::trigger`], or on a fatal error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }

    /// The text of `~/.flyte/config.yaml` that points flytekit (pyflyte, FlyteRemote) here.
    pub fn flytekit_config(&self) -> String {
        flytekit_config(self.addr, &self.public_url, self.ca_file.as_deref())
    }

    /// The line printed when ready, and the config to use.
    pub fn ready_message(&self) -> String {
        format!(
            "flyte-rs is ready at {url} (gRPC and HTTP on {addr}, started in {ms} ms)\n\
             Point pyflyte / FlyteRemote at it with this ~/.flyte/config.yaml:\n\n{config}",
            url = self.public_url,
            addr = self.addr,
            ms = self.startup.as_millis(),
            config = indent(&self.flytekit_config(), "    "),
        )
    }
}

/// The flytekit config for a server at `addr`: TLS when `public_url` is https, verified with
/// `ca_file` when given (else the system's CAs).
pub fn flytekit_config(addr: SocketAddr, public_url: &str, ca_file: Option<&Path>) -> String {
    let insecure = !public_url.starts_with("https:");
    let ca = ca_file
        .map(|ca| format!("  caCertFilePath: {}\n", ca.display()))
        .unwrap_or_default();
    format!(
        "admin:\n  endpoint: dns:///{addr}\n  insecure: {insecure}\n{ca}console:\n  endpoint: {public_url}\n"
    )
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|l| format!("{prefix}{l}\n")).collect()
}

/// Opens the stores, binds the listening address and starts serving. Returns once the port
/// accepts connections; the server runs on the current tokio runtime.
///
/// The future is boxed here so that the binary and the tests do not code-generate the whole
/// server again: an `async fn`'s body is compiled in every crate that awaits it (this made the
/// release binary's own crate cost 85 s of CPU; docs/benchmarks.md, "Release build time").
pub fn start(
    config: Config,
) -> Pin<Box<dyn Future<Output = anyhow::Result<RunningServer>> + Send>> {
    Box::pin(start_inner(config))
}

async fn start_inner(config: Config) -> anyhow::Result<RunningServer> {
    let began = Instant::now();
    config.validate()?;
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    // Before anything touches the data dir: a second server would kill this one's task
    // processes and run the same executions.
    let lock = DataDirLock::acquire(&config.data_dir)?;

    let metadata_url = config
        .storage
        .metadata_url
        .clone()
        .context("storage.metadata_url is unset")?;
    let blob_url = config
        .storage
        .blob_url
        .clone()
        .context("storage.blob_url is unset")?;
    prepare_local_paths(&metadata_url, &blob_url)?;

    // Before binding: a bad certificate stops the start with the file at fault.
    let tls = match config.server.tls.enabled() {
        true => Some(crate::tls::Tls::load(&config.server.tls)?),
        false => None,
    };
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    let addr = listener.local_addr()?;
    let public_url = config.public_url(addr);

    let store = flyte_store::open(&metadata_url)
        .await
        .with_context(|| format!("cannot open the metadata store {}", redact(&metadata_url)))?;
    let blob = open_blob_store(&config, &blob_url)?;

    let admin = AdminState {
        store: store.clone(),
        blob: blob.clone(),
        config: Arc::new(admin_config(&config, &public_url)),
        launcher: None,
    };
    // The engine over the admin's store, built whole; `admin` gets its handle as launcher.
    // Tasks as Kubernetes pods (docs/kubernetes.md): tried before the embedded backends.
    let (mut parts, logs) = engine_parts(&config, &admin, blob.clone(), &public_url)?;
    let kube = match config.kubernetes.enabled {
        true => Some(kube_backend(&config, blob, &logs).await?),
        false => None,
    };
    parts.backends.splice(0..0, kube);
    let (admin, engine) = flyte_admin::launcher::with_engine(admin, parts);
    // Executions that were running when the last server process stopped (or died) continue
    // before any new one is accepted.
    let resumed = engine
        .resume_all()
        .await
        .context("cannot resume the running executions")?;
    if resumed > 0 {
        tracing::info!(resumed, "resumed running executions");
    } else {
        tracing::debug!("no running executions to resume");
    }
    // Replicas: lease heartbeat, takeover of dead replicas' executions, notifications.
    engine
        .start_ownership()
        .await
        .context("cannot start the replica's lease loops")?;
    let scheduler_admin = admin.clone();
    let app = app(admin, store, logs).merge(crate::schedules::api(&config, &scheduler_admin)?);
    // Outermost: no route is served before the caller is known (docs/auth.md).
    let app = crate::auth::wrap(&config, app, &public_url, scheduler_admin.store.clone()).await?;

    let (tx, mut rx) = watch::channel(false);
    // Launch-plan schedules: stopped with the server (a tick due meanwhile is caught up at
    // the next start).
    crate::schedules::start(&config, &scheduler_admin, rx.clone())?;
    // Notifications from the outbox the store fills (docs/notifications.md).
    crate::notifications::start(&config, &scheduler_admin.store, &public_url, rx.clone())?;
    // Replicas: watches here follow executions the other replicas run (flyte_admin::live).
    if let (Some(own), Some(hub)) = (
        engine.config().ownership.as_ref(),
        scheduler_admin.launcher.as_ref().and_then(|l| l.live()),
    ) {
        tokio::spawn(flyte_admin::live::relay::run(
            hub,
            scheduler_admin.store.clone(),
            own.replica_id().to_owned(),
            rx.clone(),
        ));
    }
    let shutdown = ShutdownHandle(Arc::new(tx));
    let grace = config.shutdown_grace();
    let task = tokio::spawn(async move {
        let mut stop_rx = rx.clone();
        let stopped = async move {
            let _ = rx.wait_for(|v| *v).await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
        };
        let serve = async move {
            match tls {
                Some(tls) => {
                    let listener = tls.listen(listener)?;
                    axum::serve(listener, app.into_make_service())
                        .with_graceful_shutdown(stopped)
                        .await
                }
                None => {
                    // No Nagle delay: small unary gRPC responses would otherwise wait for
                    // delayed ACKs.
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    axum::serve(listener, app.into_make_service())
                        .with_graceful_shutdown(stopped)
                        .await
                }
            }
        };
        let result = tokio::select! {
            result = serve => result.context("server failed"),
            () = async {
                let _ = stop_rx.wait_for(|v| *v).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; stopping anyway");
                Ok(())
            }
        };
        // Running executions stay running in the journal: the next start resumes them.
        let running = engine.running_count();
        engine.shutdown().await;
        tracing::info!(
            running,
            "engine stopped; running executions resume at the next start"
        );
        // Only now may another server take the data dir.
        drop(lock);
        result
    });
    let startup = began.elapsed();
    metrics::gauge!("flyte_rs_build_info", "version" => crate::VERSION).set(1.0);
    metrics::gauge!("flyte_rs_startup_seconds").set(startup.as_secs_f64());
    tracing::info!(
        %addr,
        tls = config.server.tls.enabled(),
        startup_ms = startup.as_millis() as u64,
        "serving gRPC and HTTP"
    );
    Ok(RunningServer {
        addr,
        public_url,
        startup,
        ca_file: config.server.tls.ca_file.clone(),
        shutdown,
        task,
    })
}

/// The Kubernetes task backend of `kubernetes.*`: its client, and its one pod watch started.
/// Pod logs are copied to where the local processes' logs are, and served from there.
async fn kube_backend(
    config: &Config,
    blob: BlobStore,
    logs: &LogLayout,
) -> anyhow::Result<Arc<dyn TaskBackend>> {
    let k = &config.kubernetes;
    let backend = flyte_kube::KubeBackend::connect(k.clone(), blob)
        .await
        .context("kubernetes.enabled: cannot set up the Kubernetes client")?
        .with_log_layout(logs.clone());
    tracing::info!(
        task_types = ?k.task_types,
        namespace_template = %k.namespace_template,
        "kubernetes task backend ready"
    );
    Ok(Arc::new(backend))
}

/// The engine's configuration, the embedded task backends (in-engine `echo`/`core-sleep`,
/// everything else as a local process) and the task cache over the admin's store; and where
/// the local processes' logs are.
fn engine_parts(
    config: &Config,
    admin: &AdminState,
    blob: BlobStore,
    public_url: &str,
) -> anyhow::Result<(EngineParts, Arc<LogLayout>)> {
    let e = &config.engine;
    let mut env = task_platform_env(public_url);
    // Tasks read and write the same object store (flytekit's storage settings).
    env.extend(config.storage.task_env());
    if let Some(ca) = &config.server.tls.ca_file {
        // flytekit's `admin.caCertFilePath`: tasks that call back verify the server with it.
        env.insert(
            "FLYTE_PLATFORM_CA_CERT_FILE_PATH".into(),
            ca.display().to_string(),
        );
    }
    env.extend(e.task_env.clone());
    let mut local = LocalProcessConfig {
        path: e.task_path.clone().map(Into::into),
        venv: e.python_venv.clone(),
        python_environments: e
            .python_environments
            .iter()
            .map(|m| flyte_engine::backend::PythonEnvironment {
                image: m.image.clone(),
                venv: m.venv.clone(),
            })
            .collect(),
        max_concurrency: e.max_concurrent_tasks,
        capacity: Some(host_capacity(e)),
        kill_grace_period: Duration::from_secs(e.kill_grace_secs),
        keep_work_dirs: e.keep_work_dirs,
        unpack_code_bundles: e.unpack_code_bundles,
        warm_workers: e.warm_workers,
        memory_limits: match e.memory_limits {
            crate::config::MemoryLimits::Auto => {
                flyte_engine::backend::cgroup::MemoryLimitMode::Auto
            }
            crate::config::MemoryLimits::Cgroup => {
                flyte_engine::backend::cgroup::MemoryLimitMode::Cgroup
            }
            crate::config::MemoryLimits::Sampling => {
                flyte_engine::backend::cgroup::MemoryLimitMode::Sampling
            }
        },
        ..LocalProcessConfig::new(&config.data_dir, public_url)
    };
    local.secrets = Arc::new(flyte_engine::secrets::ServerSecrets::new(
        e.secrets_dir.clone(),
        e.secrets_env_prefix.clone(),
        e.secret_env.clone(),
    ));
    let python = python_env::prepare(config, &mut local);
    let local = LocalProcessBackend::try_new(local, blob.clone())?;
    let logs = Arc::new(local.log_layout().clone());
    tracing::info!(
        max_concurrent_tasks = local.concurrency_limit(),
        python_venv = local
            .config()
            .venv
            .as_ref()
            .map(|p| p.display().to_string()),
        "local task backend ready"
    );
    let backends: Vec<Arc<dyn TaskBackend>> = vec![
        Arc::new(BuiltinBackend::new(blob.clone())),
        python.wrap(Arc::new(local)),
    ];
    let engine_config = EngineConfig {
        max_system_retries: e.max_system_retries,
        max_nodes_per_execution: e.max_nodes_per_execution,
        map_items_in_flight: e.map_items_in_flight,
        max_map_items: e.max_map_items,
        // One limit for what stays in the database rather than in blob files: an
        // execution's inputs, its start and end nodes' maps.
        inline_max_bytes: config.admin.inline_inputs_max_bytes,
        default_env: env,
        console_url: Some(format!("{}/console", public_url.trim_end_matches('/'))),
        // Replicas on one PostgreSQL: each execution runs under one replica's lease.
        ownership: crate::replica::ownership(config, &admin.store),
        attempt_credentials: crate::auth::attempt_credentials(config)?,
        ..EngineConfig::default()
    };
    // Task output caching over the same catalog the DataCatalog and CacheService serve.
    flyte_cache::metrics::describe();
    let cache = Arc::new(flyte_cache::StoreTaskCache::new(admin.store.clone()));
    let parts = EngineParts {
        config: engine_config,
        backends,
        cache: Some(cache),
    };
    Ok((parts, logs))
}

/// `engine.host_cpus` / `engine.host_memory` over what this host has (validated at load).
fn host_capacity(e: &crate::config::EngineSection) -> flyte_engine::backend::resources::Capacity {
    use flyte_engine::backend::resources::{Capacity, parse_quantity};
    let mut capacity = Capacity::detect();
    if let Some(cpus) = e.host_cpus.as_deref().and_then(parse_quantity) {
        capacity.0.cpu_milli = (cpus * 1000.0).ceil() as u64;
    }
    if let Some(memory) = e.host_memory.as_deref().and_then(parse_quantity) {
        capacity.0.memory = memory.ceil() as u64;
    }
    capacity
}

/// What a task process needs to call back into the platform (flytekit's `FLYTE_PLATFORM_*`):
/// tasks that use `FlyteRemote`, and dynamic tasks that fetch entities. With the embedded
/// `file://` blob store nothing else is needed: flytekit reads and writes the paths directly.
fn task_platform_env(public_url: &str) -> std::collections::BTreeMap<String, String> {
    let mut env = std::collections::BTreeMap::new();
    if let Ok(url) = url::Url::parse(public_url)
        && let Some(host) = url.host_str()
    {
        let port = url.port_or_known_default().unwrap_or(80);
        env.insert("FLYTE_PLATFORM_URL".into(), format!("{host}:{port}"));
        env.insert(
            "FLYTE_PLATFORM_INSECURE".into(),
            (url.scheme() == "http").to_string(),
        );
    }
    env
}

/// The whole HTTP/gRPC application: the admin API plus health, metrics, task logs and the
/// web console.
fn app(admin: AdminState, store: Arc<dyn MetadataStore>, logs: Arc<LogLayout>) -> Router {
    let task_logs = Router::new()
        .route(&format!("{LOG_ROUTE}/{{*tail}}"), get(task_log))
        .with_state((logs, store.clone()));
    let ops = Router::new()
        .route("/healthcheck", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Readiness {
            store,
            blob: admin.blob.clone(),
        })
        .merge(task_logs);
    // Install the recorder before the first request is counted.
    let _ = telemetry::prometheus();
    // The admin router counts its own API calls (flyte_admin_api_*) and has the fallback.
    ops.route_layer(axum::middleware::from_fn(telemetry::track_requests))
        .merge(flyte_admin::router::router(admin))
        // The web console: `/` and `/console/*`, embedded (crates/flyte-console).
        .merge(flyte_console::router())
}

/// What `/readyz` checks.
#[derive(Clone)]
struct Readiness {
    store: Arc<dyn MetadataStore>,
    blob: BlobStore,
}

/// 200 while the stores can serve; 503 with the reason otherwise, including while a store
/// cannot write because its disk is full (both probe with a write until space is freed).
async fn readyz(State(r): State<Readiness>) -> impl IntoResponse {
    let checks = async {
        r.store.ready().await.map_err(|e| e.to_string())?;
        r.blob.ready().await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(5), checks).await {
        Ok(Ok(())) => (StatusCode::OK, "ready".to_string()),
        Ok(Err(reason)) => (StatusCode::SERVICE_UNAVAILABLE, reason),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the stores gave no answer within 5s".to_string(),
        ),
    }
}

/// `GET /logs/<project>/<domain>/<execution>/<node>/<attempt>.log`: stdout and stderr of one
/// task attempt, as far as it has been written (the file grows while the task runs).
/// `Range: bytes=N-` gets what follows byte N (206; 416 when there is nothing past N yet), so
/// a follower (`flyte-rs logs --follow`, docs/cli.md) fetches only what is new.
/// `Accept: text/event-stream` follows it as server-sent events (`flyte_admin::live`).
async fn task_log(
    State((layout, store)): State<(Arc<LogLayout>, Arc<dyn MetadataStore>)>,
    UrlPath(tail): UrlPath<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let (Some(path), Some(attempt)) = (
        layout.file_for_url_path(&tail),
        LogLayout::key_for_url_path(&tail),
    ) else {
        return (StatusCode::NOT_FOUND, "not a task log path\n").into_response();
    };
    // `EventSource`: the lines as they are written (docs/console.md, "Live updates").
    if flyte_admin::live::wants_events(&headers) {
        return flyte_admin::live::follow_log(store, path, attempt, &headers);
    }
    let cannot_read = |what: &str, e: std::io::Error| {
        tracing::warn!(path = %path.display(), error = %e, "cannot {what} a task log");
        (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the log\n").into_response()
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (
                StatusCode::NOT_FOUND,
                "no log for this attempt (it has not started, or its data was removed)\n",
            )
                .into_response();
        }
        Err(e) => return cannot_read("open", e),
    };
    let Some(from) = range_start(&headers) else {
        // Up to what is there now: a running task keeps appending.
        return log_response(StatusCode::OK, None, file);
    };
    let len = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(e) => return cannot_read("stat", e),
    };
    if from >= len {
        return (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response();
    }
    if let Err(e) = file.seek(std::io::SeekFrom::Start(from)).await {
        return cannot_read("seek in", e);
    }
    // Exactly the range announced, though the task may append meanwhile.
    let range = format!("bytes {from}-{}/{len}", len - 1);
    log_response(
        StatusCode::PARTIAL_CONTENT,
        Some(range),
        file.take(len - from),
    )
}

/// `N` of a `Range: bytes=N-` header; other forms (suffix, several ranges) are ignored and the
/// whole log is sent, as RFC 9110 allows.
fn range_start(headers: &axum::http::HeaderMap) -> Option<u64> {
    let value = headers.get(header::RANGE)?.to_str().ok()?;
    value
        .trim()
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

fn log_response<R>(status: StatusCode, content_range: Option<String>, reader: R) -> Response
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let stream = futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                    Some(reader),
                ))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::ACCEPT_RANGES, "bytes"),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    if let Some(range) = content_range.and_then(|r| header::HeaderValue::from_str(&r).ok()) {
        response.headers_mut().insert(header::CONTENT_RANGE, range);
    }
    response
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::render_metrics(),
    )
}

fn admin_config(config: &Config, public_url: &str) -> AdminConfig {
    let a = &config.admin;
    let signing_key = match &a.signing_key {
        Some(key) => key.as_bytes().to_vec(),
        None => random_key(),
    };
    AdminConfig {
        public_url: public_url.to_string(),
        domains: a.domains.iter().map(|d| (d.clone(), d.clone())).collect(),
        upload_prefix: a.upload_prefix.clone(),
        signed_url_ttl: Duration::from_secs(a.signed_url_ttl_secs),
        max_signed_url_ttl: Duration::from_secs(a.max_signed_url_ttl_secs),
        max_request_bytes: config.server.max_request_bytes,
        max_upload_bytes: a.max_upload_bytes,
        max_inline_bytes: a.max_inline_bytes,
        inline_inputs_max_bytes: a.inline_inputs_max_bytes,
        signing_key,
        default_execution_config: default_execution_config(&a.attributes),
        default_task_resources: default_task_resources(&a.attributes),
    }
}

/// `admin.attributes` as the global WORKFLOW_EXECUTION_CONFIG attributes.
fn default_execution_config(
    d: &crate::config::AttributeDefaults,
) -> flyteidl::admin::WorkflowExecutionConfig {
    use flyteidl::admin;
    let pairs = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| flyteidl::core::KeyValuePair {
                key: k.clone(),
                value: v.clone(),
            })
            .collect()
    };
    admin::WorkflowExecutionConfig {
        max_parallelism: d.max_parallelism.min(i32::MAX as u32) as i32,
        security_context: d
            .service_account
            .as_ref()
            .map(|sa| flyteidl::core::SecurityContext {
                run_as: Some(flyteidl::core::Identity {
                    k8s_service_account: sa.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        raw_output_data_config: d
            .raw_output_prefix
            .as_ref()
            .map(|p| admin::RawOutputDataConfig {
                output_location_prefix: p.clone(),
            }),
        labels: (!d.labels.is_empty()).then(|| admin::Labels {
            values: d.labels.clone().into_iter().collect(),
        }),
        annotations: (!d.annotations.is_empty()).then(|| admin::Annotations {
            values: d.annotations.clone().into_iter().collect(),
        }),
        interruptible: d.interruptible.map(Into::into),
        overwrite_cache: d.overwrite_cache,
        envs: (!d.envs.is_empty()).then(|| admin::Envs {
            values: pairs(&d.envs),
        }),
        execution_env_assignments: Vec::new(),
    }
}

/// `admin.attributes.task_resource_*` as the global TASK_RESOURCE attributes.
fn default_task_resources(
    d: &crate::config::AttributeDefaults,
) -> flyteidl::admin::TaskResourceAttributes {
    let spec = |q: &crate::config::TaskResourceQuantities| {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let spec = flyteidl::admin::TaskResourceSpec {
            cpu: s(&q.cpu),
            gpu: s(&q.gpu),
            memory: s(&q.memory),
            storage: String::new(),
            ephemeral_storage: s(&q.ephemeral_storage),
        };
        (spec != Default::default()).then_some(spec)
    };
    flyteidl::admin::TaskResourceAttributes {
        defaults: spec(&d.task_resource_defaults),
        limits: spec(&d.task_resource_limits),
    }
}

/// A fresh key per start: signed URLs then die with the process. Set `admin.signing_key`
/// for URLs that outlive a restart.
fn random_key() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

/// The blob store of `blob_url`, with each project's metadata location routed to its own
/// store (`storage.metadata_locations`; one store opened per distinct URL).
fn open_blob_store(config: &Config, blob_url: &str) -> anyhow::Result<BlobStore> {
    let options = config.storage.blob_options();
    let blob = BlobStore::open(blob_url, &options)
        .with_context(|| format!("cannot open the blob store {blob_url}"))?;
    let mut opened = std::collections::HashMap::<String, BlobStore>::new();
    let mut routes = Vec::new();
    let storage = &config.storage;
    for (prefix, url) in storage.metadata_routes(&config.admin.domains, &config.admin.upload_prefix)
    {
        let store = match opened.get(&url) {
            Some(store) => store.clone(),
            None => {
                let store = BlobStore::open(&url, &options).with_context(|| {
                    format!("cannot open the metadata location {url} (storage.metadata_locations)")
                })?;
                tracing::info!(url = %url, "metadata location opened");
                opened.insert(url.clone(), store.clone());
                store
            }
        };
        routes.push((prefix, store));
    }
    blob.with_routes(routes)
        .context("storage.metadata_locations: a project or domain cannot name a key prefix")
}

/// Creates the directories an embedded store needs (the SQLite file's folder, the blob root).
fn prepare_local_paths(metadata_url: &str, blob_url: &str) -> anyhow::Result<()> {
    if let Some(path) = metadata_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    if let Ok(url) = url::Url::parse(blob_url)
        && url.scheme() == "file"
    {
        let dir = url
            .to_file_path()
            .map_err(|()| anyhow::anyhow!("storage.blob_url {blob_url}: not a local path"))?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}
