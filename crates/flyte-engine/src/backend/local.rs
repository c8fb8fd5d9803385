//! The local-process backend (the embedded default): runs a container task's command and args
//! as a process on this host, the way propeller's pod plugin runs them in a pod.
//!
//! * The image is recorded (logged), not pulled; the command runs with the Python environment
//!   the image maps to (`python_environments`, first match), else the configured one (the
//!   server's `PATH`, or a virtual environment's `bin/` in front of it).
//! * Flyte's template variables are rendered ([`super::template`]); `task.pb` is written when
//!   `{{.taskTemplatePath}}` is used, and `inputs.pb` read when `{{.Inputs.<name>}}` is.
//! * Environment, lowest precedence first: the server's own environment (without
//!   `FLYTE_RS_*`), `PATH`/`VIRTUAL_ENV` from the config, the container's `env`, the attempt's
//!   environment from the engine (`FLYTE_INTERNAL_*`, `FLYTE_ATTEMPT_NUMBER`, execution `envs`),
//!   the config's default environment, and the array index variables — the order in which
//!   `flytek8s.DecorateEnvVars` appends them.
//! * Task processes outlive the server (issue 12 item 4): each runs in its own process group
//!   under a shell wrapper that writes the task's exit status to `<work dir>.exit`; the
//!   wrapper's pid and start time are recorded in `<work dir>.pid`. A restarted server
//!   [re-attaches](TaskBackend::reattach) to an attempt still running (same pid and start
//!   time, so a recycled pid is never taken for it) or collects one that ended meanwhile;
//!   an attempt with no record never started.
//! * Each attempt runs in its own process group and working directory (so
//!   `pyflyte-fast-execute` unpacks the code bundle there, whatever `--dest-dir` says); abort and timeout
//!   send SIGTERM to the whole group, then SIGKILL after a grace period; when the main process
//!   exits, whatever it left running in its group is killed, as when a container stops.
//! * stdout and stderr go, interleaved, to `<log dir>/<project>/<domain>/<execution>/<node>/<attempt>.log`,
//!   linked from the task execution as `<public url>/logs/<same path>` ([`LogLayout`]).
//! * A task process starts once the CPU and memory it requests fit beside those running
//!   ([`super::resources`]; QUEUED until then); a request larger than the host fails at once
//!   (`Unschedulable`). Eager tasks are not held to it: they wait for the executions they
//!   launch, whose tasks need the capacity. A memory limit is held by the kernel in a memory
//!   cgroup of the attempt's own where the host offers one ([`super::cgroup`]), else by
//!   sampling ([`super::memory`]); a task killed at it is reported `OOMKilled`.
//! * After the process exits: `error.pb` before everything else (flytekit exits 0 after a user
//!   error), then `futures.pb`, then `outputs.pb` (see [`super::task_io::evaluate_success`]); a
//!   non-zero exit without `error.pb` is a retryable USER failure with the end of the log in
//!   the message (`DeterminePrimaryContainerPhase`), a SIGKILL from outside a retryable SYSTEM
//!   `Interrupted` failure.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use flyte_blob::BlobStore;
use flyteidl::core::{TaskLog, TaskTemplate, execution_error, task_log, task_template};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::memory;
use super::resources::{Admission, Admit, Capacity, Defaults, Reservation, TaskResources};
use super::task_io::{self, aborted, execution_error, failed};
use super::template::{self, TemplateValues};
use super::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, Reattach, TaskAttempt, TaskBackend,
};

/// Task types that never run as a process here (the builtin backend runs them).
const NOT_HANDLED_TYPES: &[&str] = &["echo", "core-sleep"];

/// How to give task processes flytekit's commands (`pyflyte-*`) when a task cannot start
/// (the config keys of `flyte_rs::Config`, docs/configuration.md; the binary's start-up
/// warning says the same).
const PYTHON_FIX: &str = "set engine.python_venv (FLYTE_RS_ENGINE__PYTHON_VENV) to a virtual \
environment with flytekit installed, or start flyte-rs from a shell where it is on PATH (an \
activated virtual environment), then restart flyte-rs";

/// The same for any other command.
const PATH_FIX: &str = "install it on the server's PATH, or set engine.task_path \
(FLYTE_RS_ENGINE__TASK_PATH) or engine.python_venv (FLYTE_RS_ENGINE__PYTHON_VENV) so that it \
is found";

/// The URL path under the public base URL at which attempt logs are served.
pub const LOG_ROUTE: &str = "/logs";

/// How much of the log end goes into a failure message (Kubernetes'
/// `FallbackToLogsOnError`: the last 2048 bytes or 80 lines, whichever is smaller).
const TAIL_BYTES: u64 = 2048;
const TAIL_LINES: usize = 80;

/// Configuration of the local-process backend.
#[derive(Debug, Clone)]
pub struct LocalProcessConfig {
    /// `PATH` for task processes; `None`: the server's own `PATH`.
    pub path: Option<OsString>,
    /// A virtual environment whose `bin/` goes in front of `PATH` (and `VIRTUAL_ENV` is set).
    pub venv: Option<PathBuf>,
    /// Task images mapped to their own virtual environments, first match wins; an image no
    /// entry matches runs with `venv`.
    pub python_environments: Vec<PythonEnvironment>,
    /// Task processes running at once at most; 0: as many as their CPU and memory requests
    /// allow (`capacity`).
    pub max_concurrency: usize,
    /// CPU and memory that task processes may request in all; `None`: what this host has
    /// ([`Capacity::detect`]).
    pub capacity: Option<Capacity>,
    /// What a task that states no requests gets (one CPU, no memory reservation or limit).
    pub resource_defaults: Defaults,
    /// Where attempt logs are kept (`<data dir>/logs` by default).
    pub log_dir: PathBuf,
    /// Where each attempt gets its working directory (`<data dir>/work` by default).
    pub work_dir: PathBuf,
    /// Keep attempt working directories after the attempt ends (for debugging).
    pub keep_work_dirs: bool,
    /// Unpack a `pyflyte-fast-execute` task's code bundle here and run its task command
    /// directly (one Python process per attempt instead of two); off: run the command as it is.
    pub unpack_code_bundles: bool,
    /// Fork Python tasks whose command is flytekit's entrypoint from a warm interpreter that
    /// has imported flytekit ([`super::warm`]); off: every attempt starts a new interpreter.
    pub warm_workers: bool,
    /// Recycling of the warm interpreters.
    pub warm: super::warm::WarmConfig,
    /// The server's public base URL; log links are `<public_url>/logs/…`.
    pub public_url: String,
    /// Between SIGTERM and SIGKILL when an attempt is aborted or times out.
    pub kill_grace_period: Duration,
    /// Start task processes with the server's environment (minus `FLYTE_RS_*`) underneath.
    pub inherit_env: bool,
    /// Environment for every task process (like the k8s plugin's `default-env-vars`).
    pub default_env: BTreeMap<String, String>,
    /// Where the secrets tasks request come from (crate::secrets; `<data dir>/secrets`).
    pub secrets: Arc<dyn crate::secrets::SecretSource>,
    /// How memory limits are enforced: a cgroup per attempt where the host offers one
    /// ([`super::cgroup`]), or sampling ([`super::memory`]).
    pub memory_limits: super::cgroup::MemoryLimitMode,
}

impl LocalProcessConfig {
    /// Defaults under a data directory: logs in `<data_dir>/logs`, working directories in
    /// `<data_dir>/work`, the server's `PATH`, one process per core, a 5 s kill grace period.
    pub fn new(data_dir: impl AsRef<Path>, public_url: impl Into<String>) -> Self {
        let data_dir = data_dir.as_ref();
        Self {
            path: None,
            venv: None,
            python_environments: Vec::new(),
            max_concurrency: 0,
            capacity: None,
            resource_defaults: Defaults::default(),
            log_dir: data_dir.join("logs"),
            work_dir: data_dir.join("work"),
            keep_work_dirs: false,
            unpack_code_bundles: true,
            warm_workers: true,
            warm: Default::default(),
            public_url: public_url.into(),
            kill_grace_period: Duration::from_secs(5),
            inherit_env: true,
            default_env: BTreeMap::new(),
            secrets: Arc::new(crate::secrets::ServerSecrets::new(
                Some(data_dir.join("secrets")),
                crate::secrets::DEFAULT_SERVER_ENV_PREFIX,
                Default::default(),
            )),
            memory_limits: Default::default(),
        }
    }

    /// How many tasks with the default requests run at once: `max_concurrency` or what the
    /// CPU capacity admits (at least one).
    pub fn effective_concurrency(&self) -> usize {
        let by_cpu =
            self.effective_capacity().0.cpu_milli / self.resource_defaults.cpu_milli.max(1);
        match self.max_concurrency {
            0 => (by_cpu as usize).max(1),
            n => n.min(by_cpu as usize).max(1),
        }
    }

    /// The capacity tasks are admitted against.
    pub fn effective_capacity(&self) -> Capacity {
        self.capacity.unwrap_or_else(Capacity::detect)
    }

    /// The `PATH` task processes get.
    pub fn effective_path(&self) -> OsString {
        self.path_with(self.venv.as_deref())
    }

    /// The `PATH` of task processes running in `venv`.
    fn path_with(&self, venv: Option<&Path>) -> OsString {
        let base = self
            .path
            .clone()
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        match venv {
            None => base,
            Some(venv) => {
                let mut dirs = vec![venv.join("bin")];
                dirs.extend(std::env::split_paths(&base));
                std::env::join_paths(dirs).unwrap_or(base)
            }
        }
    }
}

/// A task image mapped to the Python environment its tasks run in (an operator's
/// `engine.python_environments` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonEnvironment {
    /// The image exactly (`ghcr.io/org/app:v1`), or a prefix ending in `*` (`ghcr.io/org/*`).
    pub image: String,
    /// The virtual environment (its `bin/` goes in front of `PATH`, `VIRTUAL_ENV` is set).
    pub venv: PathBuf,
}

impl PythonEnvironment {
    pub fn matches(&self, image: &str) -> bool {
        match self.image.strip_suffix('*') {
            Some(prefix) => image.starts_with(prefix),
            None => image == self.image,
        }
    }
}

/// One Python environment tasks run in (the configured one, or one an image maps to): what
/// its processes and its warm template start with.
struct TaskEnvironment {
    venv: Option<PathBuf>,
    path: String,
    /// The environment every process of it gets before the task's own (`PATH`,
    /// `VIRTUAL_ENV`, the server's, the config's defaults): a warm template's whole one.
    base: BTreeMap<String, String>,
}

/// Where attempt logs live on disk and under which URL they are served. Pure: the router maps
/// a URL tail back to a file with [`LogLayout::file_for_url_path`], which accepts only the
/// canonical paths this layout produces (no `..`, no aliases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLayout {
    dir: PathBuf,
    public_url: String,
}

impl LogLayout {
    pub fn new(dir: impl Into<PathBuf>, public_url: impl Into<String>) -> Self {
        let public_url: String = public_url.into();
        Self {
            dir: dir.into(),
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<project>/<domain>/<execution>/<node>/<attempt>.log`, each segment escaped so that it
    /// is one safe path segment and URL-safe (characters outside `[A-Za-z0-9_-]`, and a
    /// leading `.`, become `~XX` per UTF-8 byte).
    pub fn relative_path(key: &AttemptKey) -> String {
        format!(
            "{}/{}/{}/{}/{}.log",
            escape_segment(&key.project),
            escape_segment(&key.domain),
            escape_segment(&key.execution),
            escape_segment(&key.node_id),
            key.retry_attempt
        )
    }

    /// The log file of an attempt (it grows while the task runs).
    pub fn log_file_for(&self, key: &AttemptKey) -> PathBuf {
        self.dir.join(Self::relative_path(key))
    }

    /// The URL of an attempt's log: `<public_url>/logs/<relative path>`.
    pub fn log_url_for(&self, key: &AttemptKey) -> String {
        format!(
            "{}{LOG_ROUTE}/{}",
            self.public_url,
            Self::relative_path(key)
        )
    }

    /// The attempt a URL tail (`<project>/<domain>/<execution>/<node>/<attempt>.log`, the part
    /// after `/logs/`) names; `None` unless it is exactly what [`LogLayout::relative_path`] makes.
    pub fn key_for_url_path(tail: &str) -> Option<AttemptKey> {
        let parts: Vec<&str> = tail.split('/').collect();
        let [project, domain, execution, node, file] = parts.as_slice() else {
            return None;
        };
        let attempt = file.strip_suffix(".log")?;
        if attempt.is_empty()
            || !attempt.bytes().all(|b| b.is_ascii_digit())
            || (attempt.len() > 1 && attempt.starts_with('0'))
        {
            return None;
        }
        let key = AttemptKey {
            project: unescape_segment(project)?,
            domain: unescape_segment(domain)?,
            execution: unescape_segment(execution)?,
            node_id: unescape_segment(node)?,
            retry_attempt: attempt.parse().ok()?,
        };
        (Self::relative_path(&key) == tail).then_some(key)
    }

    /// The file a URL tail names, if it is a canonical log path.
    pub fn file_for_url_path(&self, tail: &str) -> Option<PathBuf> {
        Self::key_for_url_path(tail).map(|key| self.log_file_for(&key))
    }
}

fn escape_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' || (c == '.' && i > 0) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("~{b:02X}"));
            }
        }
    }
    if out.is_empty() {
        out.push('~');
    }
    out
}

fn unescape_segment(s: &str) -> Option<String> {
    if s == "~" {
        return Some(String::new());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The attempt's paths with the raw-data prefixes (raw output, checkpoints) as plain local
/// paths when they are `file://` URLs. flytekit takes a `file://` blob URI for a local one but
/// then checks it with `os.path.isfile`, which fails on the scheme: a FlyteFile or
/// FlyteDirectory written under a `file://` prefix could be read neither by the next task nor
/// by the client. Under a plain path the URIs flytekit records in its outputs are paths both
/// open. `inputs.pb`, outputs and `task.pb` stay URLs (flytekit reads them through fsspec).
fn local_raw_paths(paths: &super::AttemptPaths) -> super::AttemptPaths {
    fn plain(url: &str) -> String {
        match url.strip_prefix("file://") {
            Some(rest) if rest.starts_with('/') => percent_decode(rest),
            _ => url.to_string(),
        }
    }
    super::AttemptPaths {
        raw_output_prefix: plain(&paths.raw_output_prefix),
        checkpoint_prefix: plain(&paths.checkpoint_prefix),
        prev_checkpoint_prefix: paths.prev_checkpoint_prefix.as_deref().map(plain),
        ..paths.clone()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Runs container tasks as local processes. Cheap to clone.
#[derive(Clone)]
pub struct LocalProcessBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: LocalProcessConfig,
    store: BlobStore,
    layout: LogLayout,
    /// The configured Python environment, then one per `python_environments` entry.
    environments: Vec<TaskEnvironment>,
    limit: usize,
    admission: Admission,
    /// Attempts accepted and not yet finished: the abort switch of each.
    running: Mutex<HashMap<AttemptKey, watch::Sender<bool>>>,
    /// Warm Python interpreters to fork flytekit's entrypoints from (`warm_workers`).
    warm: Option<super::warm::WarmPool>,
    /// What holds tasks to their memory limits: the kernel (a cgroup per attempt) or sampling.
    enforcement: super::cgroup::Enforcement,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Gone only once no attempt cgroup is left in it (a task still running keeps it).
        if let Some(cgroups) = self.enforcement.cgroups() {
            cgroups.remove_parent();
        }
    }
}

impl std::fmt::Debug for LocalProcessBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProcessBackend")
            .field("config", &self.inner.config)
            .field("active", &self.active())
            .finish()
    }
}

impl LocalProcessBackend {
    /// A backend with this configuration, whose tasks reach data through `store`'s native URLs.
    ///
    /// Task processes left running by an earlier server process are left alone: the engine
    /// re-attaches to them ([`TaskBackend::reattach`]). Only process groups recorded by
    /// servers from before re-attach existed (`<work dir>.pgid`) are killed.
    ///
    /// With `memory_limits` = `Cgroup` on a host that offers no memory cgroup, limits are
    /// sampled after an ERROR; [`LocalProcessBackend::try_new`] refuses instead.
    pub fn new(config: LocalProcessConfig, store: BlobStore) -> Self {
        let enforcement = memory_enforcement(&config).unwrap_or_else(|why| {
            tracing::error!(%why, "memory limits are sampled");
            super::cgroup::Enforcement::Sampling(why)
        });
        Self::with_enforcement(config, store, enforcement)
    }

    /// As [`LocalProcessBackend::new`], but refuses (with the reason and the fix) when
    /// `memory_limits` asks for cgroups and the host offers none.
    pub fn try_new(config: LocalProcessConfig, store: BlobStore) -> Result<Self, BackendError> {
        let enforcement = memory_enforcement(&config).map_err(BackendError::Unsupported)?;
        Ok(Self::with_enforcement(config, store, enforcement))
    }

    fn with_enforcement(
        config: LocalProcessConfig,
        store: BlobStore,
        enforcement: super::cgroup::Enforcement,
    ) -> Self {
        let reaped = reap_orphans(&config.work_dir);
        if reaped > 0 {
            tracing::warn!(
                groups = reaped,
                "killed task processes left over by an earlier server process"
            );
        }
        let limit = config.effective_concurrency();
        let capacity = config.effective_capacity();
        tracing::info!(
            cpus = %super::resources::cpus(capacity.0.cpu_milli),
            memory = %super::resources::bytes(capacity.0.memory),
            max_processes = config.max_concurrency,
            memory_limits = %enforcement.describe(),
            "local task processes are admitted by the CPU and memory they request"
        );
        let layout = LogLayout::new(config.log_dir.clone(), config.public_url.clone());
        for mapped in &config.python_environments {
            if !mapped.venv.join("bin").is_dir() {
                tracing::warn!(
                    image = %mapped.image,
                    venv = %mapped.venv.display(),
                    "engine.python_environments: the environment of these task images does not \
                     exist (no bin/ directory); their tasks fail until it is created"
                );
            }
        }
        let venvs = std::iter::once(config.venv.clone()).chain(
            config
                .python_environments
                .iter()
                .map(|m| Some(m.venv.clone())),
        );
        let environments = venvs
            .map(|venv| {
                let path = config
                    .path_with(venv.as_deref())
                    .to_string_lossy()
                    .into_owned();
                TaskEnvironment {
                    base: base_environment(&config, venv.as_deref(), &path),
                    venv,
                    path,
                }
            })
            .collect();
        let admission = Admission::new(capacity, config.max_concurrency);
        let mut inner = Inner {
            config,
            store,
            layout,
            environments,
            limit,
            admission,
            running: Mutex::new(HashMap::new()),
            warm: None,
            enforcement,
        };
        sweep_cgroups(&inner);
        if inner.config.warm_workers {
            inner.warm = Some(super::warm::WarmPool::new(
                inner.config.work_dir.join(".warm"),
                inner.config.warm.clone(),
            ));
        }
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Where logs are and how they are linked (for the HTTP route serving them).
    pub fn log_layout(&self) -> &LogLayout {
        &self.inner.layout
    }

    pub fn config(&self) -> &LocalProcessConfig {
        &self.inner.config
    }

    /// The parent cgroup of the attempts' memory cgroups; `None`: limits are sampled.
    pub fn memory_cgroups(&self) -> Option<&Path> {
        self.inner.enforcement.cgroups().map(|c| c.parent())
    }

    /// The concurrency limit in force.
    pub fn concurrency_limit(&self) -> usize {
        self.inner.limit
    }

    /// Attempts accepted and not finished (queued or running).
    pub fn active(&self) -> usize {
        self.inner.running.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// What `start` prepared for the process.
struct Prepared {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    image: String,
    /// `pyflyte-fast-execute --dest-dir` as registered (before it is pointed at the attempt's
    /// own directory): what the task command gets as `--dynamic-dest-dir`.
    registered_dest_dir: Option<String>,
    /// A raw container's data directories (`data_config`), inputs already written.
    copilot: Option<super::copilot::Copilot>,
    /// The Python environment it runs in (an index into `Inner::environments`).
    python: usize,
}

impl Inner {
    async fn prepare(&self, attempt: &TaskAttempt) -> Result<Prepared, BackendError> {
        let container = match &attempt.template.target {
            Some(task_template::Target::Container(c)) => c,
            _ => {
                return Err(BackendError::Unsupported(format!(
                    "task type [{}] has no container to run",
                    attempt.template.r#type
                )));
            }
        };
        let raw: Vec<String> = container
            .command
            .iter()
            .chain(container.args.iter())
            .cloned()
            .collect();
        if raw.is_empty() {
            return Err(BackendError::Unsupported(
                "the task's container has neither command nor args".into(),
            ));
        }
        // Validate the output prefix early: every result is read from there.
        task_io::key_of(&self.store, &attempt.paths.output_prefix)?;
        let python = self.environment_of(&container.image)?;

        let copilot = super::copilot::Copilot::for_template(
            &attempt.template,
            &sibling(&attempt_work_dir(self, &attempt.key), ".data"),
        );
        let inputs = if template::needs_inputs(&raw) || copilot.is_some() {
            Some(task_io::read_literal_map(&self.store, &attempt.paths.inputs).await?)
        } else {
            None
        };
        if template::needs_task_template(&raw) {
            write_task_template(&self.store, &attempt.paths.task_template, &attempt.template)
                .await?;
        }
        let paths = local_raw_paths(&attempt.paths);
        let values = TemplateValues {
            paths: &paths,
            per_retry_unique_key: template::per_retry_unique_key(&attempt.key),
            namespace: format!("{}-{}", attempt.key.project, attempt.key.domain),
            inputs: inputs.as_ref(),
        };
        let mut argv =
            template::render_all(&raw, &values).map_err(|e| BackendError::Unsupported(e.0))?;
        let registered_dest_dir = registered_dest_dir(&argv);
        unpack_code_in_work_dir(&mut argv);
        if let Some(copilot) = &copilot {
            copilot.rewrite(&mut argv);
            copilot
                .write_inputs(&self.store, inputs.as_ref().unwrap_or(&Default::default()))
                .await
                .map_err(BackendError::Internal)?;
        }
        if argv[0].is_empty() {
            return Err(BackendError::Unsupported(
                "the task's command is empty".into(),
            ));
        }
        Ok(Prepared {
            argv,
            env: self.environment(attempt, &container.env, python),
            image: container.image.clone(),
            registered_dest_dir,
            copilot,
            python,
        })
    }

    /// The Python environment tasks of `image` run in (an index into `environments`): the
    /// first `python_environments` entry matching it, else the configured one. An image
    /// mapped to an environment that does not exist is the operator's or the task's to fix.
    fn environment_of(&self, image: &str) -> Result<usize, BackendError> {
        let Some(i) = self
            .config
            .python_environments
            .iter()
            .position(|m| m.matches(image))
        else {
            return Ok(0);
        };
        let mapped = &self.config.python_environments[i];
        if !mapped.venv.join("bin").is_dir() {
            return Err(BackendError::Unsupported(format!(
                "the task's image [{image}] maps to the Python environment {} (engine.\
                 python_environments entry [{}]), which does not exist (no bin/ directory): \
                 create that virtual environment with flytekit, or change the mapping",
                mapped.venv.display(),
                mapped.image,
            )));
        }
        Ok(i + 1)
    }

    fn environment(
        &self,
        attempt: &TaskAttempt,
        container_env: &[flyteidl::core::KeyValuePair],
        python: usize,
    ) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        if self.config.inherit_env {
            env.extend(std::env::vars().filter(|(k, _)| {
                !k.starts_with("FLYTE_RS_") && !self.config.secrets.hides_env_var(k)
            }));
        }
        let python = &self.environments[python];
        env.insert("PATH".into(), python.path.clone());
        if let Some(venv) = &python.venv {
            env.insert("VIRTUAL_ENV".into(), venv.to_string_lossy().into_owned());
        }
        for kv in container_env {
            env.insert(kv.key.clone(), kv.value.clone());
        }
        // What the engine should set, in case it did not.
        let key = &attempt.key;
        let mut defaults = vec![
            ("FLYTE_INTERNAL_EXECUTION_ID", key.execution.clone()),
            ("FLYTE_INTERNAL_EXECUTION_PROJECT", key.project.clone()),
            ("FLYTE_INTERNAL_EXECUTION_DOMAIN", key.domain.clone()),
            ("FLYTE_ATTEMPT_NUMBER", key.retry_attempt.to_string()),
        ];
        if let Some(id) = &attempt.template.id {
            defaults.extend([
                ("FLYTE_INTERNAL_TASK_PROJECT", id.project.clone()),
                ("FLYTE_INTERNAL_TASK_DOMAIN", id.domain.clone()),
                ("FLYTE_INTERNAL_TASK_NAME", id.name.clone()),
                ("FLYTE_INTERNAL_TASK_VERSION", id.version.clone()),
            ]);
        }
        for (k, v) in defaults {
            if !attempt.env.contains_key(k) {
                env.insert(k.to_string(), v);
            }
        }
        env.extend(attempt.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(
            self.config
                .default_env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if let Some(index) = attempt.array_index {
            env.insert(
                "BATCH_JOB_ARRAY_INDEX_VAR_NAME".into(),
                "FLYTE_K8S_ARRAY_INDEX".into(),
            );
            env.insert("FLYTE_K8S_ARRAY_INDEX".into(), index.to_string());
        }
        env
    }

    /// Records an attempt as running (started or re-attached); its receiver sees an abort.
    fn register(&self, key: &AttemptKey) -> Result<watch::Receiver<bool>, BackendError> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| BackendError::Internal("poisoned lock".into()))?;
        if running.contains_key(key) {
            return Err(BackendError::Internal(format!(
                "attempt {key:?} is already running"
            )));
        }
        let (abort_tx, abort_rx) = watch::channel(false);
        running.insert(key.clone(), abort_tx);
        Ok(abort_rx)
    }

    fn finish(&self, key: &AttemptKey) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(key);
        }
    }
}

/// What every task process of the environment in `venv` gets, whatever its task: the
/// environment its warm interpreter starts with (the attempt's own is applied in the forked
/// task).
fn base_environment(
    config: &LocalProcessConfig,
    venv: Option<&Path>,
    path: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if config.inherit_env {
        env.extend(
            std::env::vars()
                .filter(|(k, _)| !k.starts_with("FLYTE_RS_") && !config.secrets.hides_env_var(k)),
        );
    }
    env.insert("PATH".into(), path.to_string());
    if let Some(venv) = venv {
        env.insert("VIRTUAL_ENV".into(), venv.to_string_lossy().into_owned());
    }
    env.extend(
        config
            .default_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    env
}

async fn write_task_template(
    store: &BlobStore,
    url: &str,
    template: &TaskTemplate,
) -> Result<(), BackendError> {
    let key = task_io::key_of(store, url)?;
    store
        .put(&key, Bytes::from(template.encode_to_vec()))
        .await
        .map_err(|e| {
            BackendError::Internal(format!("cannot write the task template to {url}: {e}"))
        })
}

#[async_trait]
impl TaskBackend for LocalProcessBackend {
    fn name(&self) -> &'static str {
        "local-process"
    }

    fn handles(&self, template: &TaskTemplate) -> bool {
        matches!(template.target, Some(task_template::Target::Container(_)))
            && !NOT_HANDLED_TYPES.contains(&template.r#type.as_str())
    }

    fn plugin_ids(&self) -> &'static [&'static str] {
        &["local", "local-process"]
    }

    async fn start(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<(), BackendError> {
        TaskResources::of(&attempt.template, &self.inner.config.resource_defaults)
            .map_err(BackendError::Unsupported)?;
        let abort_rx = self.inner.register(&attempt.key)?;
        let prepared = match self.inner.prepare(&attempt).await {
            Ok(p) => p,
            Err(e) => {
                self.inner.finish(&attempt.key);
                return Err(e);
            }
        };
        let inner = self.inner.clone();
        // Child of the node's span, which the engine has entered around `start`.
        let span = tracing::info_span!(
            "attempt",
            attempt = attempt.key.retry_attempt,
            backend = "local"
        );
        tokio::spawn(
            async move {
                let key = attempt.key.clone();
                let outcome = run_attempt(&inner, &attempt, prepared, abort_rx, &updates).await;
                deliver_outcome(&inner, key, outcome, &updates).await;
            }
            .instrument(span),
        );
        Ok(())
    }

    async fn abort(&self, key: &AttemptKey) {
        if let Ok(running) = self.inner.running.lock()
            && let Some(tx) = running.get(key)
        {
            let _ = tx.send(true);
        }
    }

    async fn reattach(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<Reattach, BackendError> {
        let work_dir = attempt_work_dir(&self.inner, &attempt.key);
        let record = std::fs::read_to_string(pid_file(&work_dir)).ok();
        let parsed = record.as_deref().and_then(|r| {
            let (pid, start) = r.trim().split_once(' ')?;
            Some((pid.parse::<i32>().ok()?, start.parse::<u64>().ok()?))
        });
        let Some((pid, start)) = parsed.filter(|(pid, _)| *pid > 1) else {
            // Never spawned (queued, or still being prepared): nothing ran.
            return Ok(Reattach::NotStarted);
        };
        let abort_rx = self.inner.register(&attempt.key)?;
        let inner = self.inner.clone();
        let span = tracing::info_span!(
            "attempt",
            attempt = attempt.key.retry_attempt,
            backend = "local",
            reattached = true
        );
        tokio::spawn(
            async move {
                let key = attempt.key.clone();
                let outcome = run_reattached(&inner, &attempt, pid, start, abort_rx).await;
                deliver_outcome(&inner, key, outcome, &updates).await;
            }
            .instrument(span),
        );
        Ok(Reattach::Attached)
    }
}

fn task_logs(inner: &Inner, key: &AttemptKey) -> Vec<TaskLog> {
    vec![TaskLog {
        uri: inner.layout.log_url_for(key),
        name: "Task logs (local)".into(),
        message_format: task_log::MessageFormat::Unknown as i32,
        show_while_pending: true,
        ..Default::default()
    }]
}

async fn run_attempt(
    inner: &Arc<Inner>,
    attempt: &TaskAttempt,
    prepared: Prepared,
    mut abort_rx: watch::Receiver<bool>,
    updates: &mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
) -> AttemptOutcome {
    let key = &attempt.key;
    let permit = match admit(inner, attempt, &mut abort_rx, updates).await {
        Ok(permit) => permit,
        Err(outcome) => return outcome,
    };
    if *abort_rx.borrow() {
        return AttemptOutcome::Aborted;
    }
    let logs = task_logs(inner, key);
    let log_path = inner.layout.log_file_for(key);
    let work_dir = attempt_work_dir(inner, key);

    let outcome = run_process(
        inner,
        attempt,
        &prepared,
        &log_path,
        &work_dir,
        &logs,
        &mut abort_rx,
        updates,
    )
    .await;
    drop(permit);
    // A raw container's outputs are files in its output directory: read them before it goes.
    let copilot_failure = match (&outcome, &prepared.copilot) {
        (Exit::Exited(status), Some(copilot)) if status.success() => {
            copilot_outputs(inner, attempt, copilot, &logs).await
        }
        _ => None,
    };
    if !inner.config.keep_work_dirs {
        let _ = tokio::fs::remove_dir_all(&work_dir).await;
        if prepared.copilot.is_some() {
            let _ = tokio::fs::remove_dir_all(sibling(&work_dir, ".data")).await;
        }
    }
    if let Some(failure) = copilot_failure {
        return failure;
    }
    match outcome {
        Exit::Aborted => AttemptOutcome::Aborted,
        Exit::Failed(outcome) => outcome,
        Exit::TimedOut(timeout) => failed(
            execution_error(
                "TimeoutExpired",
                format!(
                    "task execution timeout [{}] expired",
                    template::go_duration(timeout.as_secs() as i64, timeout.subsec_nanos() as i32)
                ),
                execution_error::ErrorKind::User,
            ),
            true,
            logs,
        ),
        Exit::Exited(status) => evaluate_exit(inner, attempt, status, &log_path, logs).await,
        Exit::OomKilled => oom_killed(attempt, &log_path, logs),
    }
}

/// Writes a raw container's outputs as `outputs.pb`; the failure if they cannot be read.
async fn copilot_outputs(
    inner: &Inner,
    attempt: &TaskAttempt,
    copilot: &super::copilot::Copilot,
    logs: &[TaskLog],
) -> Option<AttemptOutcome> {
    use super::copilot::CopilotError;
    let read = copilot
        .read_outputs(
            &inner.store,
            &attempt.template,
            &attempt.paths.raw_output_prefix,
        )
        .await;
    let written = match read {
        Ok(outputs) => {
            task_io::write_outputs(&inner.store, &attempt.paths.output_prefix, &outputs).await
        }
        Err(CopilotError::User(message)) => {
            return Some(failed(
                execution_error(
                    "CopilotOutputError",
                    message,
                    execution_error::ErrorKind::User,
                ),
                false,
                logs.to_vec(),
            ));
        }
        Err(CopilotError::System(message)) => Err(BackendError::Internal(message)),
    };
    written.err().map(|e| {
        failed(
            execution_error(
                "CopilotOutputError",
                e.to_string(),
                execution_error::ErrorKind::System,
            ),
            true,
            logs.to_vec(),
        )
    })
}

/// Whether flytekit marked the task eager (`@eager`): it launches executions and waits for them.
fn is_eager(template: &TaskTemplate) -> bool {
    template.metadata.as_ref().is_some_and(|m| m.is_eager)
}

/// Waits until the attempt's CPU and memory requests fit (QUEUED meanwhile) and returns what
/// it holds while it runs. A request larger than the host fails at once. Eager tasks hold
/// nothing and never wait: they wait for the executions they launch, whose tasks need the
/// capacity (holding it, two nested eager tasks on two CPUs left their grandchild QUEUED
/// forever). On Kubernetes the same holds for the cluster: an eager pod waits beside the pods
/// of its children, and a full cluster grows or queues them, never its own parent.
async fn admit(
    inner: &Inner,
    attempt: &TaskAttempt,
    abort_rx: &mut watch::Receiver<bool>,
    updates: &mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
) -> Result<Option<Reservation>, AttemptOutcome> {
    let key = &attempt.key;
    // Validated in `start`; a template that changed since cannot happen (it is shared).
    let resources =
        TaskResources::of(&attempt.template, &inner.config.resource_defaults).map_err(|e| {
            failed(
                execution_error("BadTaskSpecification", e, execution_error::ErrorKind::User),
                false,
                vec![],
            )
        })?;
    if let Some(offer) = inner.admission.never_fits(resources.request) {
        let message = format!(
            "[{}] cannot be scheduled: the task requests {} ({}), but {offer}; lower the task's \
             requests, or give flyte-rs more with engine.host_cpus / engine.host_memory",
            template::generated_name(key),
            resources.request,
            if resources.written.is_empty() {
                "the defaults"
            } else {
                &resources.written
            },
        );
        tracing::warn!(%message, "task cannot be scheduled on this host");
        return Err(failed(
            execution_error("Unschedulable", message, execution_error::ErrorKind::User),
            false,
            task_logs(inner, key),
        ));
    }
    if is_eager(&attempt.template) {
        return Ok(None);
    }
    match inner.admission.admit(resources.request) {
        Admit::Now(reservation) => Ok(Some(reservation)),
        Admit::Wait(ticket) => {
            let (used, processes) = inner.admission.in_use();
            let reason = format!(
                "Unschedulable: waiting for {} ({} in use by {processes} task processes; this \
                 host offers {})",
                resources.request,
                used,
                inner.admission.capacity().0,
            );
            let _ = updates.send((key.clone(), AttemptUpdate::Queued { reason }));
            tokio::select! {
                reservation = ticket.granted() => Ok(Some(reservation)),
                _ = aborted(abort_rx) => Err(AttemptOutcome::Aborted),
            }
        }
    }
}

/// How this host holds tasks to their memory limits (`memory_limits`), decided once.
fn memory_enforcement(config: &LocalProcessConfig) -> Result<super::cgroup::Enforcement, String> {
    let self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    super::cgroup::detect(
        config.memory_limits,
        Path::new("/sys/fs/cgroup"),
        &self_cgroup,
        &super::cgroup::parent_name(&config.work_dir),
    )
}

/// The attempt's cgroup name (deterministic: a restarted server finds it again).
fn cgroup_name(key: &AttemptKey) -> Option<String> {
    super::cgroup::cgroup_name(&LogLayout::relative_path(key))
}

/// Removes attempt cgroups an earlier server process left behind: those no process is in,
/// unless their attempt is recorded as started (`<work dir>.pid`): a restarted server
/// re-attaches to it and reads from its cgroup whether the kernel killed it meanwhile.
fn sweep_cgroups(inner: &Inner) {
    let Some(cgroups) = inner.enforcement.cgroups() else {
        return;
    };
    let removed = cgroups.sweep(|name| {
        LogLayout::key_for_url_path(&super::cgroup::log_path_of(name))
            .is_some_and(|key| pid_file(&attempt_work_dir(inner, &key)).exists())
    });
    if removed > 0 {
        tracing::info!(
            cgroups = removed,
            "removed memory cgroups of attempts that ended"
        );
    }
}

/// The attempt's memory limit, if it has one.
fn memory_limit(inner: &Inner, attempt: &TaskAttempt) -> Option<u64> {
    TaskResources::of(&attempt.template, &inner.config.resource_defaults)
        .ok()
        .and_then(|r| r.memory_limit)
}

/// Puts the attempt's first process `pid` (still waiting for its go) in a cgroup of its own
/// with the attempt's memory limit, so that the kernel holds the task to it; `None`: no limit,
/// no cgroups here, or the cgroup could not be made (then the limit is sampled).
fn place_in_cgroup(
    inner: &Inner,
    attempt: &TaskAttempt,
    pid: i32,
) -> Option<super::cgroup::TaskCgroup> {
    let limit = memory_limit(inner, attempt)?;
    let cgroups = inner.enforcement.cgroups()?;
    let Some(name) = cgroup_name(&attempt.key) else {
        tracing::warn!("attempt name too long for a cgroup: its memory limit is sampled");
        return None;
    };
    let placed = cgroups
        .create(&name, limit)
        .and_then(|cgroup| match cgroup.add(pid) {
            Ok(()) => Ok(cgroup),
            Err(e) => {
                let _ = std::fs::remove_dir(cgroup.dir());
                Err(e)
            }
        });
    match placed {
        Ok(cgroup) => {
            tracing::info!(
                pid,
                cgroup = %cgroup.dir().display(),
                limit = %super::resources::bytes(limit),
                "task process placed in its memory cgroup"
            );
            Some(cgroup)
        }
        Err(e) => {
            tracing::warn!(
                pid,
                error = %e,
                parent = %cgroups.parent().display(),
                "cannot make the task's memory cgroup: its memory limit is sampled"
            );
            None
        }
    }
}

/// Whether the kernel killed the task at its cgroup's limit: it failed, and the cgroup
/// counted an OOM kill. Says so in the server's log and the task's.
fn killed_in_cgroup(
    cgroup: &super::cgroup::TaskCgroup,
    status: &ExitStatus,
    log_path: &Path,
    pid: i32,
) -> bool {
    if status.success() || !cgroup.oom_killed() {
        return false;
    }
    let limit = cgroup
        .limit()
        .map(super::resources::bytes)
        .unwrap_or_default();
    let peak = cgroup
        .peak()
        .map(|p| format!(", peak {}", super::resources::bytes(p)))
        .unwrap_or_default();
    tracing::warn!(pid, %limit, cgroup = %cgroup.dir().display(), "the kernel killed the task at its memory limit (OOMKilled)");
    append_line(
        log_path,
        &format!(
            "flyte-rs: the task went over its limit of {limit} (memory cgroup {}{peak}): the \
             kernel killed it (OOMKilled)",
            cgroup.dir().display()
        ),
    );
    true
}

/// Resolves with the usage and the limit once the attempt's process group `pgid` uses more
/// memory than its limit; never without a limit, or when the kernel holds it to its limit (a
/// cgroup).
async fn memory_watch(
    inner: &Inner,
    attempt: &TaskAttempt,
    pgid: i32,
    in_cgroup: bool,
) -> (u64, u64) {
    let limit = memory_limit(inner, attempt).filter(|_| !in_cgroup);
    match limit {
        Some(limit) => (memory::exceeded(pgid, limit).await, limit),
        None => std::future::pending().await,
    }
}

/// Says in the server's log and the task's why it was killed.
fn note_oom_kill(log_path: &Path, pgid: i32, used: u64, limit: u64) {
    let (used, limit) = (
        super::resources::bytes(used),
        super::resources::bytes(limit),
    );
    tracing::warn!(pid = pgid, %used, %limit, "task over its memory limit: killed (OOMKilled)");
    append_line(
        log_path,
        &format!(
            "flyte-rs: the task used {used} of memory, over its limit of {limit}: killed \
             (OOMKilled)"
        ),
    );
}

/// A task killed at its memory limit, reported as propeller reports a container the kernel
/// OOM-killed (`DeterminePrimaryContainerPhase`): retryable, USER, code `OOMKilled`.
fn oom_killed(attempt: &TaskAttempt, log_path: &Path, logs: Vec<TaskLog>) -> AttemptOutcome {
    let name = template::generated_name(&attempt.key);
    let tail = log_tail(log_path);
    let message = format!(
        "[{name}] terminated with exit code ({}). Reason [OOMKilled]. Message: \n{tail}.",
        128 + libc::SIGKILL
    );
    failed(
        execution_error("OOMKilled", message, execution_error::ErrorKind::User),
        true,
        logs,
    )
}

enum Exit {
    Exited(ExitStatus),
    /// Killed at its memory limit.
    OomKilled,
    TimedOut(Duration),
    Aborted,
    /// The process could not be started.
    Failed(AttemptOutcome),
}

#[allow(clippy::too_many_arguments)]
async fn run_process(
    inner: &Arc<Inner>,
    attempt: &TaskAttempt,
    prepared: &Prepared,
    log_path: &Path,
    work_dir: &Path,
    logs: &[TaskLog],
    abort_rx: &mut watch::Receiver<bool>,
    updates: &mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
) -> Exit {
    let key = &attempt.key;
    let prep_started = std::time::Instant::now();
    let system_failure = |what: &str, e: std::io::Error| system_failure(logs, what, e);
    if let Some(parent) = log_path.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return system_failure("cannot create the log directory", e);
    }
    let log_file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
    {
        Ok(f) => f,
        Err(e) => return system_failure("cannot open the log file", e),
    };
    let _ = std::fs::remove_dir_all(work_dir);
    if let Err(e) = std::fs::create_dir_all(work_dir) {
        return system_failure("cannot create the working directory", e);
    }

    let (argv, mut env) = match fast_execute_here(inner, prepared, work_dir).await {
        Ok(Some(direct)) => direct,
        Ok(None) => (prepared.argv.clone(), prepared.env.clone()),
        Err(e) => return system_failure("cannot unpack the task's code bundle", e),
    };
    let secrets = &*inner.config.secrets;
    if let Err(e) =
        crate::secrets::provide(secrets, &attempt.template, &secrets_dir(work_dir), &mut env)
    {
        return secret_failure(e, log_path, logs);
    }
    let prepared = &Prepared {
        argv,
        env,
        image: prepared.image.clone(),
        registered_dest_dir: None,
        copilot: None,
        python: prepared.python,
    };
    let program = &prepared.argv[0];
    let Some(resolved) = resolve_program(
        program,
        prepared.env.get("PATH").map(String::as_str).unwrap_or(""),
        work_dir,
    ) else {
        let fix = if program.starts_with("pyflyte") {
            PYTHON_FIX
        } else {
            PATH_FIX
        };
        let message = format!(
            "[{}] could not start: command [{program}] not found on PATH [{}]; {fix}",
            template::generated_name(key),
            prepared.env.get("PATH").map(String::as_str).unwrap_or("")
        );
        tracing::error!(%program, %fix, "task cannot start: command not found on PATH");
        append_line(log_path, &message);
        crate::metrics::task_exit("local", "start_failed", None);
        return Exit::Failed(failed(
            execution_error("StartError", message, execution_error::ErrorKind::User),
            false,
            logs.to_vec(),
        ));
    };
    let (stdout, stderr) = match (log_file.try_clone(), log_file.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return system_failure("cannot share the log file", e),
    };
    drop(log_file);

    // Leftovers of an earlier run of this attempt number (a start after `NotStarted`).
    let _ = std::fs::remove_file(exit_file(work_dir));
    if let Some(task) = fork_warm(inner, &resolved, prepared, work_dir, log_path).await {
        drop((stdout, stderr));
        let proc = TaskProcess::Warm {
            task,
            work_dir: work_dir.to_path_buf(),
        };
        return follow_process(
            inner,
            attempt,
            prepared,
            proc,
            log_path,
            logs,
            abort_rx,
            updates,
            prep_started,
        )
        .await;
    }
    let mut command = tokio::process::Command::new(wrapper_shell());
    command
        .arg("-c")
        .arg(WRAPPER)
        .arg(exit_file(work_dir))
        .arg(&resolved)
        .args(&prepared.argv[1..])
        .env_clear()
        .envs(&prepared.env)
        .current_dir(work_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(false);
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let message = format!(
                "[{}] could not start [{program}]: {e}",
                template::generated_name(key)
            );
            tracing::error!(%program, error = %e, "task cannot start");
            append_line(log_path, &message);
            crate::metrics::task_exit("local", "start_failed", None);
            return Exit::Failed(failed(
                execution_error("StartError", message, execution_error::ErrorKind::User),
                false,
                logs.to_vec(),
            ));
        }
    };
    follow_process(
        inner,
        attempt,
        prepared,
        TaskProcess::Plain(child),
        log_path,
        logs,
        abort_rx,
        updates,
        prep_started,
    )
    .await
}

/// An attempt's process as started: the shell wrapper (this server its parent), or a reaper
/// forked by a warm interpreter ([`super::warm`]; it reports the status on its connection).
enum TaskProcess {
    Plain(tokio::process::Child),
    Warm {
        task: super::warm::WarmTask,
        work_dir: PathBuf,
    },
}

impl TaskProcess {
    fn pid(&self) -> i32 {
        match self {
            TaskProcess::Plain(child) => child.id().unwrap_or(0) as i32,
            TaskProcess::Warm { task, .. } => task.pid,
        }
    }

    /// Lets the task start (see WRAPPER and the warm reaper's go byte).
    async fn go(&mut self) {
        match self {
            TaskProcess::Plain(child) => {
                if let Some(go) = child.stdin.take() {
                    match go.into_owned_fd() {
                        Ok(fd) => {
                            let _ = std::io::Write::write_all(&mut std::fs::File::from(fd), b"\n");
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot release the task process"),
                    }
                }
            }
            TaskProcess::Warm { task, .. } => {
                if let Err(e) = task.go().await {
                    tracing::warn!(error = %e, "cannot release the warm task process");
                }
            }
        }
    }

    /// The task's exit status, as the wrapper would end with it.
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            TaskProcess::Plain(child) => child.wait().await,
            TaskProcess::Warm { task, work_dir } => Ok(match task.wait().await {
                Some(code) => status_of_code(code),
                // The reaper died without a word: what it wrote, or killed as the group was.
                None => read_exit_status(work_dir)
                    .unwrap_or_else(|| ExitStatus::from_raw(libc::SIGKILL)),
            }),
        }
    }
}

/// Starts the attempt from a warm interpreter when its command is flytekit's entrypoint and
/// the pool serves that environment; `None`: run it as a plain process.
async fn fork_warm(
    inner: &Inner,
    resolved: &Path,
    prepared: &Prepared,
    work_dir: &Path,
    log_path: &Path,
) -> Option<super::warm::WarmTask> {
    let pool = inner.warm.as_ref()?;
    let (entry, python) = super::warm::entrypoint_of(resolved)?;
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut argv = prepared.argv.clone();
    argv[0] = resolved.display().to_string();
    let (cwd, log) = (absolute(work_dir), absolute(log_path));
    let (exit, pid) = (exit_file(&cwd), pid_file(&cwd));
    let request = super::warm::WarmRequest {
        entry,
        argv: &argv,
        env: &prepared.env,
        cwd: &cwd,
        log: &log,
        exit_file: &exit,
        pid_file: &pid,
        base_env: &inner.environments[prepared.python].base,
    };
    match pool.fork(&python, &request).await {
        Ok(task) => Some(task),
        // Said once for the environment.
        Err(super::warm::WarmError::Unavailable { .. }) => None,
        Err(e) => {
            tracing::warn!(error = %e, "the task runs as a plain process");
            None
        }
    }
}

/// A retryable SYSTEM failure of this host (a file or process it could not make).
fn system_failure(logs: &[TaskLog], what: &str, e: std::io::Error) -> Exit {
    crate::metrics::task_exit("local", "system_error", None);
    Exit::Failed(failed(
        execution_error(
            "SystemError",
            format!("{what}: {e}"),
            execution_error::ErrorKind::System,
        ),
        true,
        logs.to_vec(),
    ))
}

/// Records the started process, releases it, and follows it until it ends, is aborted,
/// times out or goes over its memory limit.
#[allow(clippy::too_many_arguments)]
async fn follow_process(
    inner: &Arc<Inner>,
    attempt: &TaskAttempt,
    prepared: &Prepared,
    mut child: TaskProcess,
    log_path: &Path,
    logs: &[TaskLog],
    abort_rx: &mut watch::Receiver<bool>,
    updates: &mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    prep_started: std::time::Instant,
) -> Exit {
    let key = &attempt.key;
    let work_dir = &attempt_work_dir(inner, key);
    let system_failure = |what: &str, e: std::io::Error| system_failure(logs, what, e);
    let pgid = child.pid();
    // Before the go: what the task forks is in the cgroup from the start.
    let cgroup = place_in_cgroup(inner, attempt, pgid);
    // Recorded so that a later server process re-attaches to it if this one dies first.
    if let Some(start) = proc_start_time(pgid, true) {
        let _ = std::fs::write(pid_file(work_dir), format!("{pgid} {start}\n"));
    }
    // Only now may the task start (see WRAPPER): a server that dies before this line leaves
    // no task running that it did not record.
    child.go().await;
    let warm = matches!(child, TaskProcess::Warm { .. });
    tracing::info!(
        image = %prepared.image, pid = pgid, command = ?prepared.argv, warm,
        "task process started (image recorded, not pulled)"
    );
    metrics::counter!(crate::metrics::LOCAL_PROCESSES_STARTED).increment(1);
    metrics::histogram!(crate::metrics::TASK_START_LATENCY, "backend" => "local")
        .record(prep_started.elapsed().as_secs_f64());
    let spawned = std::time::Instant::now();
    let _ = updates.send((
        key.clone(),
        AttemptUpdate::Running {
            logs: logs.to_vec(),
        },
    ));

    let over_memory = memory_watch(inner, attempt, pgid, cgroup.is_some());
    let timeout = attempt.timeout.filter(|t| !t.is_zero());
    let timer = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let exit = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => {
                // The main process is gone: stop what it left behind in its group.
                kill_group(pgid, libc::SIGKILL);
                match &cgroup {
                    Some(cg) if killed_in_cgroup(cg, &status, log_path, pgid) => Exit::OomKilled,
                    _ => Exit::Exited(status),
                }
            }
            Err(e) => {
                terminate_group(pgid, &mut child, inner.config.kill_grace_period).await;
                system_failure("cannot wait for the task process", e)
            }
        },
        _ = aborted(abort_rx) => {
            terminate_group(pgid, &mut child, inner.config.kill_grace_period).await;
            Exit::Aborted
        }
        (used, limit) = over_memory => {
            kill_group(pgid, libc::SIGKILL);
            let _ = child.wait().await;
            note_oom_kill(log_path, pgid, used, limit);
            Exit::OomKilled
        }
        _ = timer => {
            append_line(log_path, &format!("flyte-rs: task execution timeout [{:?}] expired; stopping the task", timeout.unwrap_or_default()));
            terminate_group(pgid, &mut child, inner.config.kill_grace_period).await;
            Exit::TimedOut(timeout.unwrap_or_default())
        }
    };
    tracing::info!(pid = pgid, "task process ended");
    if let Some(cgroup) = &cgroup {
        cgroup.remove().await;
    }
    let reason = match &exit {
        Exit::Exited(status) if status.success() => "success",
        Exit::Exited(status) if std::os::unix::process::ExitStatusExt::signal(status).is_some() => {
            "signal"
        }
        Exit::Exited(_) => "exit_code",
        Exit::TimedOut(_) => "timeout",
        Exit::OomKilled => "oom_killed",
        Exit::Aborted => "aborted",
        // Counted where it failed (system_failure).
        Exit::Failed(_) => "",
    };
    if !reason.is_empty() {
        crate::metrics::task_exit("local", reason, Some(spawned.elapsed()));
    }
    exit
}

/// `pyflyte-fast-execute [--additional-distribution D] [--dest-dir X] -- <task command>`,
/// taken apart; `None` for any other command or a form this does not know.
#[derive(Debug, PartialEq)]
struct FastExecute {
    distribution: String,
    task_command: Vec<String>,
}

impl FastExecute {
    fn parse(argv: &[String]) -> Option<Self> {
        let program = Path::new(argv.first()?).file_name()?.to_str()?;
        if program != "pyflyte-fast-execute" {
            return None;
        }
        let mut distribution = None;
        let mut rest = argv[1..].iter();
        let mut task_command = Vec::new();
        while let Some(arg) = rest.next() {
            if arg == "--" {
                task_command.extend(rest.by_ref().cloned());
            } else if arg == "--additional-distribution" {
                distribution = Some(rest.next()?.clone());
            } else if let Some(v) = arg.strip_prefix("--additional-distribution=") {
                distribution = Some(v.to_string());
            } else if arg == "--dest-dir" {
                rest.next()?;
            } else if arg.starts_with("--dest-dir=") {
            } else if arg.starts_with('-') {
                return None;
            } else {
                task_command.push(arg.clone());
                task_command.extend(rest.by_ref().cloned());
            }
        }
        let distribution = distribution.filter(|d| !d.contains("{{"))?;
        if task_command.is_empty() {
            return None;
        }
        Some(Self {
            distribution,
            task_command,
        })
    }

    /// The task command as `pyflyte-fast-execute` would run it once the code is in `dest_dir`:
    /// `--dynamic-addl-distro` and `--dynamic-dest-dir` before `--resolver` (so a dynamic
    /// task's sub-tasks get the same bundle).
    fn direct_command(&self, dest_dir: &str) -> Vec<String> {
        let mut command = Vec::with_capacity(self.task_command.len() + 4);
        for arg in &self.task_command {
            if arg == "--resolver" {
                command.extend([
                    "--dynamic-addl-distro".to_string(),
                    self.distribution.clone(),
                    "--dynamic-dest-dir".to_string(),
                    dest_dir.to_string(),
                ]);
            }
            command.push(arg.clone());
        }
        command
    }
}

/// Where a code bundle is read from.
enum Bundle {
    File(PathBuf),
    Bytes(Bytes),
}

/// Does what `pyflyte-fast-execute` does before it starts the task command — fetch the code
/// bundle and unpack it into the working directory — and returns the task command and its
/// environment (`PYTHONPATH` extended with that directory, as flytekit extends it). One Python
/// interpreter per attempt instead of two: flytekit's wrapper imports flytekit only to run
/// `tar` and start a second interpreter.
///
/// `Ok(None)` leaves the command as it is: switched off, not a fast-execute command, or a
/// bundle this store does not hold (flytekit then fetches it, or reports it missing, itself).
async fn fast_execute_here(
    inner: &Inner,
    prepared: &Prepared,
    work_dir: &Path,
) -> Result<Option<(Vec<String>, BTreeMap<String, String>)>, std::io::Error> {
    if !inner.config.unpack_code_bundles {
        return Ok(None);
    }
    let Some(fast) = FastExecute::parse(&prepared.argv) else {
        return Ok(None);
    };
    let file_name = fast.distribution.rsplit('/').next().unwrap_or_default();
    let is_tarball = file_name.ends_with(".tar.gz");
    // flytekit's pickled-function bundle (interactive mode) is downloaded, not unpacked.
    if !is_tarball && file_name != "pkl.gz" {
        return Ok(None);
    }
    let Some(key) = inner.store.path_from_native_url(&fast.distribution) else {
        return Ok(None);
    };
    // A file store's bundle is streamed from its file; an object store's is fetched whole.
    let bundle = match inner.store.native_url(&key).strip_prefix("file://") {
        Some(path) if std::path::Path::new(path).is_file() => Bundle::File(path.into()),
        Some(_) => return Ok(None),
        None => match inner.store.get(&key).await {
            Ok(bytes) => Bundle::Bytes(bytes),
            Err(flyte_blob::BlobError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        },
    };
    let dir = work_dir.to_path_buf();
    let name = file_name.to_string();
    tokio::task::spawn_blocking(move || {
        let mut reader: Box<dyn Read> = match bundle {
            Bundle::File(path) => Box::new(std::io::BufReader::new(std::fs::File::open(path)?)),
            Bundle::Bytes(bytes) => Box::new(std::io::Cursor::new(bytes)),
        };
        if is_tarball {
            tar::Archive::new(flate2::read::GzDecoder::new(reader)).unpack(&dir)
        } else {
            let mut out = std::fs::File::create(dir.join(name))?;
            std::io::copy(&mut reader, &mut out).map(|_| ())
        }
    })
    .await
    .map_err(std::io::Error::other)??;

    let code_dir = work_dir.display().to_string();
    let mut env = prepared.env.clone();
    let python_path = match env.get("PYTHONPATH") {
        Some(p) if !p.is_empty() => format!("{p}:{code_dir}"),
        _ => code_dir,
    };
    env.insert("PYTHONPATH".into(), python_path);
    // flytekit serialises what a dynamic or eager task registers with `--dest-dir` set to
    // this: the registered value keeps those entities the same wherever the attempt ran
    // (the working directory made each execution's differ, and re-registering the same
    // version was refused).
    let dest_dir = prepared.registered_dest_dir.as_deref().unwrap_or(".");
    Ok(Some((fast.direct_command(dest_dir), env)))
}

/// The `--dest-dir` a `pyflyte-fast-execute` command was registered with (the last one given).
fn registered_dest_dir(argv: &[String]) -> Option<String> {
    let mut found = None;
    let mut args = argv.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        } else if arg == "--dest-dir" {
            found = args.next().cloned();
        } else if let Some(v) = arg.strip_prefix("--dest-dir=") {
            found = Some(v.to_string());
        }
    }
    found.filter(|d| !d.is_empty() && !d.contains("{{"))
}

/// Points `pyflyte-fast-execute --dest-dir` at the attempt's own working directory.
///
/// `pyflyte register` bakes `--dest-dir /root` into every task (the home directory of
/// flytekit's images). A pod's `/root` is private to it; on this host it is shared, so
/// concurrent attempts (the indices of a map task) would unpack the code bundle over each
/// other, and a server not running as root could not write there at all.
fn unpack_code_in_work_dir(argv: &mut [String]) {
    let mut i = 0;
    while i < argv.len() {
        if argv[i] == "--dest-dir" && i + 1 < argv.len() {
            argv[i + 1] = ".".into();
            i += 1;
        } else if argv[i].starts_with("--dest-dir=") {
            argv[i] = "--dest-dir=.".into();
        }
        i += 1;
    }
}

/// Runs the task (`"$@"`) and writes its exit status to `$0` for a server that re-attaches
/// after this one died (the wrapper, not the server, is the task's parent). SIGTERM and
/// SIGINT are caught (not ignored, which the task would inherit) so that the wrapper outlives
/// the task's grace period; a task killed by a signal is re-raised so the status says so.
/// The task starts only after the server recorded the wrapper (`<work dir>.pid`) and wrote a
/// line to its stdin: a server that died before that closed the pipe, so the wrapper drops
/// the record and ends without running the task, and the next server starts the attempt
/// (otherwise it would find no record, or a dead one, and run the body a second time).
const WRAPPER: &str = r#"trap : TERM INT
read -r _ || { rm -f "${0%.exit}.pid"; exit 0; }
"$@" </dev/null
s=$?
printf '%s\n' "$s" > "$0"
if [ "$s" -gt 128 ] && [ "$s" -lt 160 ]; then trap - TERM INT; kill -$((s - 128)) $$; fi
exit "$s""#;
/// The wrapper's shell: bash where there is one, since dash (Debian's `/bin/sh`) drops the
/// environment variables whose names are not shell names, and Flyte's secret variables have
/// the group in theirs (`_FSEC_USER-INFO_TOKEN`, groups being Kubernetes names); bash passes
/// them on.
fn wrapper_shell() -> &'static str {
    static SHELL: std::sync::LazyLock<&'static str> = std::sync::LazyLock::new(|| {
        if Path::new("/bin/bash").is_file() {
            "/bin/bash"
        } else {
            "/bin/sh"
        }
    });
    *SHELL
}

/// How often a re-attached attempt's process is checked (the server is not its parent, so
/// it cannot wait for it).
const REATTACH_POLL: Duration = Duration::from_millis(200);

/// `<pid> <start time>` of the wrapper (the process group leader) of the attempt in `work_dir`.
fn pid_file(work_dir: &Path) -> PathBuf {
    sibling(work_dir, ".pid")
}

/// The task's exit status, written by the wrapper.
fn exit_file(work_dir: &Path) -> PathBuf {
    sibling(work_dir, ".exit")
}

/// The secret files of the attempt in `work_dir` (outside it: kept work dirs keep no secrets).
fn secrets_dir(work_dir: &Path) -> PathBuf {
    sibling(work_dir, ".secrets")
}

/// An attempt whose secrets cannot be given to it fails before it starts (USER unless the
/// fault is ours), with the reason, never a value, in its log too.
fn secret_failure(e: crate::secrets::SecretError, log_path: &Path, logs: &[TaskLog]) -> Exit {
    let (kind, retryable) = match e.is_user() {
        true => (execution_error::ErrorKind::User, false),
        false => (execution_error::ErrorKind::System, true),
    };
    tracing::warn!(error = %e, "task cannot start: secret not provided");
    append_line(log_path, &format!("flyte-rs: {e}"));
    crate::metrics::task_exit("local", "start_failed", None);
    Exit::Failed(failed(
        execution_error(e.code(), e.to_string(), kind),
        retryable,
        logs.to_vec(),
    ))
}

fn sibling(work_dir: &Path, ext: &str) -> PathBuf {
    let mut name = work_dir.as_os_str().to_owned();
    name.push(ext);
    PathBuf::from(name)
}

/// Hands an ended attempt's outcome to the engine. Undelivered (the engine stopped: a graceful
/// shutdown), the records stay so that the next server collects this outcome instead of
/// running it again; an aborted attempt is never collected.
async fn deliver_outcome(
    inner: &Inner,
    key: AttemptKey,
    outcome: AttemptOutcome,
    updates: &mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
) {
    inner.finish(&key);
    let work_dir = attempt_work_dir(inner, &key);
    // The process is gone: its secrets go too, whatever becomes of the other records.
    let _ = tokio::fs::remove_dir_all(secrets_dir(&work_dir)).await;
    let aborted = outcome == AttemptOutcome::Aborted;
    if updates
        .send((key, AttemptUpdate::Finished(outcome)))
        .is_ok()
        || aborted
    {
        remove_records(&work_dir).await;
    }
}

async fn remove_records(work_dir: &Path) {
    let _ = tokio::fs::remove_file(pid_file(work_dir)).await;
    let _ = tokio::fs::remove_file(exit_file(work_dir)).await;
    let _ = tokio::fs::remove_file(pgid_file(work_dir)).await;
}

/// A process's start time (clock ticks after boot, `/proc/<pid>/stat` field 22) unless it
/// is gone or a zombie.
fn start_time(pid: i32) -> Option<u64> {
    proc_start_time(pid, false)
}

/// The same, zombies included (a task that exited at once is still recorded).
fn proc_start_time(pid: i32, zombies: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if !zombies && matches!(state, "Z" | "X" | "x") {
        return None;
    }
    // Fields 4..=22 follow the state: start time is the 19th of them.
    fields.nth(18)?.parse().ok()
}

/// The exit status the wrapper wrote, once it is whole (ends with a newline).
fn read_exit_status(work_dir: &Path) -> Option<ExitStatus> {
    let text = std::fs::read_to_string(exit_file(work_dir)).ok()?;
    let code: i32 = text.strip_suffix('\n')?.trim().parse().ok()?;
    Some(status_of_code(code))
}

/// An exit code as the wrapper writes it, as a status: 128 + n is death by signal n (the
/// wrapper re-raises it).
fn status_of_code(code: i32) -> ExitStatus {
    if code > 128 && code < 160 {
        ExitStatus::from_raw(code - 128)
    } else {
        ExitStatus::from_raw((code & 0xff) << 8)
    }
}

/// Follows an attempt's process that this server did not start, until it ends or is aborted.
async fn follow(
    inner: &Inner,
    work_dir: &Path,
    pid: i32,
    start: u64,
    abort_rx: &mut watch::Receiver<bool>,
) -> Result<ExitStatus, Exit> {
    loop {
        if let Some(status) = read_exit_status(work_dir) {
            return Ok(status);
        }
        if start_time(pid) != Some(start) {
            // Written just before the wrapper exited, or never (killed from outside).
            return read_exit_status(work_dir).ok_or_else(|| {
                Exit::Failed(failed(
                    execution_error(
                        "Interrupted",
                        "the task process ended while no server watched it and left no exit \
                         status (killed from outside, or the host restarted)",
                        execution_error::ErrorKind::System,
                    ),
                    true,
                    Vec::new(),
                ))
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(REATTACH_POLL) => {}
            _ = aborted(abort_rx) => {
                if start_time(pid) == Some(start) {
                    kill_group(pid, libc::SIGTERM);
                }
                let deadline = tokio::time::Instant::now() + inner.config.kill_grace_period;
                while start_time(pid) == Some(start) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if group_works_in(pid, work_dir) {
                    kill_group(pid, libc::SIGKILL);
                }
                return Err(Exit::Aborted);
            }
        }
    }
}

/// Collects an attempt a previous server process started: waits for it if it still runs.
async fn run_reattached(
    inner: &Arc<Inner>,
    attempt: &TaskAttempt,
    pid: i32,
    start: u64,
    mut abort_rx: watch::Receiver<bool>,
) -> AttemptOutcome {
    let key = &attempt.key;
    // It runs already: its requests count as in use, whether they fit or not.
    let permit = TaskResources::of(&attempt.template, &inner.config.resource_defaults)
        .ok()
        .filter(|_| !is_eager(&attempt.template))
        .map(|r| inner.admission.reserve_running(r.request));
    let logs = task_logs(inner, key);
    let log_path = inner.layout.log_file_for(key);
    let work_dir = attempt_work_dir(inner, key);
    tracing::info!(
        pid,
        "re-attached to a task process started by an earlier server"
    );
    // The kernel still holds it to its limit if it runs in its cgroup.
    let cgroup = inner
        .enforcement
        .cgroups()
        .zip(cgroup_name(key))
        .and_then(|(cgroups, name)| cgroups.find(&name));
    if let Some(cgroup) = &cgroup {
        tracing::info!(pid, cgroup = %cgroup.dir().display(), "the re-attached task is in its memory cgroup");
    }
    let over_memory = memory_watch(inner, attempt, pid, cgroup.is_some());
    let result = tokio::select! {
        result = follow(inner, &work_dir, pid, start, &mut abort_rx) => match (result, &cgroup) {
            (Ok(status), Some(cg)) if killed_in_cgroup(cg, &status, &log_path, pid) => {
                Err(Exit::OomKilled)
            }
            (result, _) => result,
        },
        (used, limit) = over_memory => {
            if start_time(pid) == Some(start) {
                kill_group(pid, libc::SIGKILL);
            }
            note_oom_kill(&log_path, pid, used, limit);
            Err(Exit::OomKilled)
        }
    };
    // What the task left running in its group goes with it, as after `start`.
    if group_works_in(pid, &work_dir) {
        kill_group(pid, libc::SIGKILL);
    }
    if let Some(cgroup) = &cgroup {
        cgroup.remove().await;
    }
    drop(permit);
    tracing::info!(pid, "re-attached task process ended");
    // A raw container's outputs are files in its output directory, as after `start`.
    let copilot =
        super::copilot::Copilot::for_template(&attempt.template, &sibling(&work_dir, ".data"));
    let copilot_failure = match (&result, &copilot) {
        (Ok(status), Some(copilot)) if status.success() => {
            copilot_outputs(inner, attempt, copilot, &logs).await
        }
        _ => None,
    };
    let outcome = match copilot_failure {
        Some(failure) => failure,
        None => match result {
            Ok(status) => evaluate_exit(inner, attempt, status, &log_path, logs).await,
            Err(Exit::Aborted) => AttemptOutcome::Aborted,
            Err(Exit::OomKilled) => oom_killed(attempt, &log_path, logs),
            Err(Exit::Failed(AttemptOutcome::Failed {
                error, retryable, ..
            })) => failed(error, retryable, logs),
            Err(_) => AttemptOutcome::Aborted,
        },
    };
    if !inner.config.keep_work_dirs {
        let _ = tokio::fs::remove_dir_all(&work_dir).await;
        if copilot.is_some() {
            let _ = tokio::fs::remove_dir_all(sibling(&work_dir, ".data")).await;
        }
    }
    outcome
}

fn attempt_work_dir(inner: &Inner, key: &AttemptKey) -> PathBuf {
    inner
        .config
        .work_dir
        .join(LogLayout::relative_path(key).trim_end_matches(".log"))
}

/// The file recording the process group of the attempt running in `work_dir` (servers from
/// before re-attach).
fn pgid_file(work_dir: &Path) -> PathBuf {
    let mut name = work_dir.as_os_str().to_owned();
    name.push(".pgid");
    PathBuf::from(name)
}

/// Kills the process groups recorded under `work_dir` whose members still work there (so a
/// recycled group id is never hit); returns how many. Linux only (it reads `/proc`).
fn reap_orphans(work_dir: &Path) -> usize {
    let mut records = Vec::new();
    let mut dirs = vec![work_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(path),
                Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "pgid") => {
                    records.push(path)
                }
                _ => {}
            }
        }
    }
    let mut reaped = 0;
    for record in records {
        let pgid: Option<i32> = std::fs::read_to_string(&record)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let attempt_dir = record.with_extension("");
        if let Some(pgid) = pgid.filter(|p| *p > 1)
            && group_works_in(pgid, &attempt_dir)
        {
            kill_group(pgid, libc::SIGKILL);
            reaped += 1;
        }
        let _ = std::fs::remove_file(&record);
    }
    reaped
}

/// Whether a process of group `pgid` has its working directory in `dir`.
fn group_works_in(pgid: i32, dir: &Path) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    procs.flatten().any(|p| {
        let name = p.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // Fields after the command: state, ppid, pgrp, …
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<i32>().ok());
        pgrp == Some(pgid)
            && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
    })
}

/// SIGTERM to the group, then SIGKILL to the group once the main process has exited or the
/// grace period is over; waits for the main process.
async fn terminate_group(pgid: i32, child: &mut TaskProcess, grace: Duration) {
    kill_group(pgid, libc::SIGTERM);
    let _ = tokio::time::timeout(grace, child.wait()).await;
    kill_group(pgid, libc::SIGKILL);
    let _ = child.wait().await;
}

fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: killpg only sends a signal; the group is the one we created for the task.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

/// The executable `program` names: a path (relative to the working directory) when it has a
/// `/`, else the first executable file of that name on `path`.
fn resolve_program(program: &str, path: &str, work_dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = work_dir.join(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                work_dir.join(program)
            } else {
                dir.join(program)
            }
        })
        .find(|p| executable(p))
}

fn append_line(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// The end of a log: the last 2048 bytes or 80 lines, whichever is smaller.
pub fn log_tail(path: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let text = text.trim_end_matches(['\n', '\r']);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(TAIL_LINES);
    lines[skip..].join("\n")
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

/// The outcome of a process that exited by itself.
async fn evaluate_exit(
    inner: &Inner,
    attempt: &TaskAttempt,
    status: ExitStatus,
    log_path: &Path,
    logs: Vec<TaskLog>,
) -> AttemptOutcome {
    if status.success() {
        return task_io::evaluate_success(
            &inner.store,
            &attempt.paths.output_prefix,
            &attempt.template,
            logs,
        )
        .await;
    }
    // flytekit with FLYTE_FAIL_ON_ERROR=true writes error.pb and exits 1: the document says
    // more than the exit code does.
    let prefix_key = match task_io::key_of(&inner.store, &attempt.paths.output_prefix) {
        Ok(k) => k,
        Err(e) => return task_io::storage_failure("output prefix", e, logs),
    };
    if let Some(outcome) = task_io::read_error_file(
        &inner.store,
        &prefix_key,
        &attempt.paths.output_prefix,
        &logs,
    )
    .await
    {
        return outcome;
    }
    let name = template::generated_name(&attempt.key);
    let tail = log_tail(log_path);
    let (exit_code, reason) = match (status.code(), status.signal()) {
        (Some(code), _) => (code, "Error".to_string()),
        (None, Some(sig)) => (
            128 + sig,
            format!("Killed by signal {sig} ({})", signal_name(sig)),
        ),
        (None, None) => (-1, "Error".to_string()),
    };
    let message = format!(
        "[{name}] terminated with exit code ({exit_code}). Reason [{reason}]. Message: \n{tail}."
    );
    if exit_code == 128 + libc::SIGKILL {
        // SIGKILL from outside (the OOM killer, an operator): propeller counts a primary
        // container killed with SIGKILL as a system failure (node preemption).
        failed(
            execution_error("Interrupted", message, execution_error::ErrorKind::System),
            true,
            logs,
        )
    } else {
        failed(
            execution_error("Error", message, execution_error::ErrorKind::User),
            true,
            logs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(node: &str) -> AttemptKey {
        AttemptKey {
            project: "flytesnacks".into(),
            domain: "development".into(),
            execution: "abc123".into(),
            node_id: node.into(),
            retry_attempt: 2,
        }
    }

    /// Runs the wrapper over a task that writes `ran`, with `go` on its stdin (empty: the
    /// server died before recording the process); whether the task ran.
    fn wrapper_runs_task(dir: &Path, go: &[u8]) -> bool {
        let work_dir = dir.join("0");
        std::fs::write(pid_file(&work_dir), "1234 5678\n").unwrap();
        let marker = dir.join("ran");
        let mut child = std::process::Command::new(wrapper_shell())
            .arg("-c")
            .arg(WRAPPER)
            .arg(exit_file(&work_dir))
            .args(["/bin/sh", "-c", "echo ran > \"$0\""])
            .arg(&marker)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, go).unwrap();
        drop(stdin);
        assert!(child.wait().unwrap().success());
        marker.exists()
    }

    #[test]
    fn the_wrapper_starts_the_task_only_once_the_server_recorded_it() {
        let dir = tempfile::tempdir().unwrap();
        let work_dir = dir.path().join("0");
        assert!(
            !wrapper_runs_task(dir.path(), b""),
            "a wrapper whose server died before recording it runs nothing"
        );
        assert!(!pid_file(&work_dir).exists(), "and drops the record");
        assert!(!exit_file(&work_dir).exists());

        assert!(wrapper_runs_task(dir.path(), b"\n"));
        assert_eq!(
            std::fs::read_to_string(exit_file(&work_dir)).unwrap(),
            "0\n"
        );
    }

    #[test]
    fn code_bundles_unpack_in_the_attempts_own_directory() {
        let mut argv: Vec<String> = [
            "pyflyte-fast-execute",
            "--additional-distribution",
            "file:///data/fast.tar.gz",
            "--dest-dir",
            "/root",
            "--",
            "pyflyte-map-execute",
        ]
        .map(String::from)
        .to_vec();
        unpack_code_in_work_dir(&mut argv);
        assert_eq!(argv[3..5], ["--dest-dir", "."]);
        assert_eq!(argv[2], "file:///data/fast.tar.gz");

        let mut joined = vec![
            "pyflyte-fast-execute".to_string(),
            "--dest-dir=/root".into(),
        ];
        unpack_code_in_work_dir(&mut joined);
        assert_eq!(joined[1], "--dest-dir=.");
    }

    #[test]
    fn the_registered_dest_dir_is_what_dynamic_and_eager_tasks_register_with() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let fast = |dest: &str| {
            argv(&[
                "pyflyte-fast-execute",
                "--additional-distribution",
                "file:///d/fast.tar.gz",
                dest,
                "--",
                "pyflyte-execute",
                "--dest-dir",
                "/not/this",
                "--resolver",
                "r",
            ])
        };
        assert_eq!(
            registered_dest_dir(&fast("--dest-dir=/root")).as_deref(),
            Some("/root")
        );
        assert_eq!(
            registered_dest_dir(&fast("--dest-dir={{ .dest_dir }}")),
            None
        );
        assert_eq!(registered_dest_dir(&fast("--verbose")), None);
        // Not the attempt's working directory, which differs per execution.
        let parsed = FastExecute::parse(&fast("--dest-dir=.")).unwrap();
        let command = parsed.direct_command(
            registered_dest_dir(&fast("--dest-dir=."))
                .as_deref()
                .unwrap(),
        );
        let at = command
            .iter()
            .position(|a| a == "--dynamic-dest-dir")
            .unwrap();
        assert_eq!(command[at + 1], ".");
    }

    #[test]
    fn fast_execute_commands_are_taken_apart_or_left_alone() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let parsed = FastExecute::parse(&argv(&[
            "/venv/bin/pyflyte-fast-execute",
            "--additional-distribution=/data/fast1.tar.gz",
            "--dest-dir=.",
            "--",
            "pyflyte-execute",
            "--resolver",
            "r",
        ]))
        .unwrap();
        assert_eq!(parsed.distribution, "/data/fast1.tar.gz");
        assert_eq!(
            parsed.direct_command("/w"),
            argv(&[
                "pyflyte-execute",
                "--dynamic-addl-distro",
                "/data/fast1.tar.gz",
                "--dynamic-dest-dir",
                "/w",
                "--resolver",
                "r"
            ])
        );
        for other in [
            &["pyflyte-execute", "--inputs", "x"][..],
            &["pyflyte-fast-execute", "--", "pyflyte-execute"],
            &[
                "pyflyte-fast-execute",
                "--additional-distribution",
                "{{ .remote_package_path }}",
                "--",
                "x",
            ],
            &[
                "pyflyte-fast-execute",
                "--additional-distribution",
                "/d.tar.gz",
                "--verbose",
                "--",
                "x",
            ],
            &[
                "pyflyte-fast-execute",
                "--additional-distribution",
                "/d.tar.gz",
                "--",
            ],
            &["pyflyte-fast-execute", "--additional-distribution"],
        ] {
            assert_eq!(FastExecute::parse(&argv(other)), None, "{other:?}");
        }
    }

    #[test]
    fn log_paths_are_canonical_and_round_trip() {
        let layout = LogLayout::new("/data/logs", "http://localhost:30080/");
        let k = key("n0-0-n1");
        assert_eq!(
            layout.log_file_for(&k),
            PathBuf::from("/data/logs/flytesnacks/development/abc123/n0-0-n1/2.log")
        );
        assert_eq!(
            layout.log_url_for(&k),
            "http://localhost:30080/logs/flytesnacks/development/abc123/n0-0-n1/2.log"
        );
        assert_eq!(
            LogLayout::key_for_url_path("flytesnacks/development/abc123/n0-0-n1/2.log"),
            Some(k)
        );
        for odd in ["../x", "..", ".", "a/b", "é", "", "~", "x.y"] {
            let k = key(odd);
            let rel = LogLayout::relative_path(&k);
            assert_eq!(rel.split('/').count(), 5, "{rel}");
            assert!(
                !rel.split('/')
                    .any(|s| s == ".." || s == "." || s.is_empty()),
                "{rel}"
            );
            assert_eq!(LogLayout::key_for_url_path(&rel), Some(k), "{rel}");
        }
        for bad in [
            "flytesnacks/development/abc123/../2.log",
            "flytesnacks/development/abc123/n0/02.log",
            "flytesnacks/development/abc123/n0/2.txt",
            "flytesnacks/development/abc123/n0/x/2.log",
            "flytesnacks/development/abc123/n0/-1.log",
            "flytesnacks/development/abc123/~6E0/2.log",
            "flytesnacks/development/abc123/~zz/2.log",
            "/flytesnacks/development/abc123/n0/2.log",
        ] {
            assert_eq!(LogLayout::key_for_url_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let text: String = (0..200).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        let tail = log_tail(&p);
        assert_eq!(tail.lines().count(), 80);
        assert!(tail.ends_with("line 199"));
        assert_eq!(log_tail(&dir.path().join("missing")), "");
    }

    #[test]
    fn programs_resolve_on_the_given_path() {
        let dir = tempfile::tempdir().unwrap();
        assert!(resolve_program("sh", "/usr/bin:/bin", dir.path()).is_some());
        assert!(
            resolve_program("definitely-not-a-command-xyz", "/usr/bin:/bin", dir.path()).is_none()
        );
        assert!(resolve_program("/bin/sh", "", dir.path()).is_some());
    }
}
