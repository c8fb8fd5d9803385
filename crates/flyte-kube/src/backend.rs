//! The engine's `TaskBackend` over the Kubernetes API (kube-rs): one pod per attempt, followed
//! through one watch on our label across all namespaces (not a poll per pod), deleted on abort,
//! found again after a restart by its deterministic name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use flyte_blob::BlobStore;
use flyte_engine::ExecKey;
use flyte_engine::backend::local::LogLayout;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, Reattach, TaskAttempt, TaskBackend,
    task_io, template,
};
use flyteidl::core::TaskTemplate;
use flyteidl::core::execution_error::ErrorKind;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodTemplate};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::{KubeConfig, MANAGED_BY, MANAGED_BY_LABEL};
use crate::phase::{self, Blame, Grace, PodPhase};
use crate::{owner, pod};

type Updates = mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>;

/// Setting up the client.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubernetes.kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot find a Kubernetes API server (not in a cluster, no kubeconfig): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("{0}")]
    Config(String),
}

/// What was last reported of an attempt, so each change is reported once.
#[derive(Debug, Clone, PartialEq)]
enum Reported {
    Nothing,
    Queued(String),
    Running,
}

struct Tracked {
    key: AttemptKey,
    template: Arc<TaskTemplate>,
    output_prefix: String,
    updates: Updates,
    reported: Reported,
    /// The pod as last seen, looked at again on each recheck (grace periods).
    pod: Option<Pod>,
}

struct Inner {
    client: Client,
    cfg: KubeConfig,
    grace: Grace,
    store: BlobStore,
    /// Attempts followed, by (namespace, pod name).
    tracked: Mutex<HashMap<(String, String), Tracked>>,
    /// Finished pods to delete, with when.
    finished: Mutex<HashMap<(String, String), Timestamp>>,
    /// When this backend started (see `reattach_grace_secs`).
    started: Timestamp,
    /// Where the server keeps task logs (`/logs/…`): pod logs are copied there.
    logs: std::sync::OnceLock<LogLayout>,
    /// The owner of each running execution's pods, by (namespace, execution).
    owners: Mutex<HashMap<(String, String), OwnerReference>>,
    /// Owners of ended executions to delete (namespace, ConfigMap name), with when.
    owners_due: Mutex<HashMap<(String, String), Timestamp>>,
}

/// Task attempts as pods.
pub struct KubeBackend {
    inner: Arc<Inner>,
    tasks: Vec<AbortHandle>,
}

impl Drop for KubeBackend {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KubeBackend {
    /// A client from `cfg.kubeconfig` (or in-cluster / `KUBECONFIG` as kubectl finds it), and
    /// the backend over it.
    pub async fn connect(cfg: KubeConfig, store: BlobStore) -> Result<Self, KubeError> {
        cfg.validate().map_err(KubeError::Config)?;
        // kube-rs builds its rustls config on the process-wide provider: ring, as everywhere.
        flyte_blob::install_tls_provider();
        let config = match &cfg.kubeconfig {
            Some(path) => client_config(path, cfg.context.clone()).await?,
            None => kube::Config::infer().await?,
        };
        let client = Client::try_from(config)?;
        Ok(Self::new(client, cfg, store))
    }

    /// The backend over `client`; starts the watch (call inside a Tokio runtime).
    pub fn new(client: Client, cfg: KubeConfig, store: BlobStore) -> Self {
        let grace = Grace {
            image_pull_backoff: Duration::from_secs(cfg.image_pull_backoff_grace_secs),
            create_container_config_error: Duration::from_secs(
                cfg.create_container_config_error_grace_secs,
            ),
            create_container_error: Duration::from_secs(cfg.create_container_error_grace_secs),
            pod_pending: Duration::from_secs(cfg.pod_pending_timeout_secs),
        };
        let recheck = Duration::from_secs(cfg.recheck_secs.max(1));
        let inner = Arc::new(Inner {
            client,
            cfg,
            grace,
            store,
            tracked: Mutex::new(HashMap::new()),
            finished: Mutex::new(HashMap::new()),
            started: Timestamp::now(),
            logs: std::sync::OnceLock::new(),
            owners: Mutex::new(HashMap::new()),
            owners_due: Mutex::new(HashMap::new()),
        });
        let watch = tokio::spawn(watch_pods(Arc::downgrade(&inner))).abort_handle();
        let tick = tokio::spawn(recheck_pending(Arc::downgrade(&inner), recheck)).abort_handle();
        let owners = tokio::spawn(load_marked_owners(Arc::downgrade(&inner))).abort_handle();
        Self {
            inner,
            tasks: vec![watch, tick, owners],
        }
    }

    /// Copies each pod's log (its primary container's) into `layout`, where the server serves
    /// task logs from (`/logs/…`, the console, `flyte-rs logs`): followed while the pod runs,
    /// written whole once it finished; the attempt's log link points there.
    pub fn with_log_layout(self, layout: LogLayout) -> Self {
        let _ = self.inner.logs.set(layout);
        self
    }

    /// The owner of the attempt's execution's pods, made with its first pod.
    async fn owner_of(&self, key: &AttemptKey) -> Result<Option<OwnerReference>, BackendError> {
        if !self.inner.cfg.owner_references {
            return Ok(None);
        }
        let ns = self.inner.cfg.namespace(&key.project, &key.domain);
        let k = (ns, key.execution.clone());
        if let Some(o) = self
            .inner
            .owners
            .lock()
            .ok()
            .and_then(|m| m.get(&k).cloned())
        {
            return Ok(Some(o));
        }
        let made = owner::ensure(
            &self.inner.client,
            &k.0,
            &key.project,
            &key.domain,
            &key.execution,
        )
        .await
        .map_err(BackendError::Internal)?;
        if let (Some(o), Ok(mut m)) = (&made, self.inner.owners.lock()) {
            m.insert(k, o.clone());
        }
        Ok(made)
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.inner.client.clone(), namespace)
    }

    fn track(&self, attempt: &TaskAttempt, updates: Updates) -> (String, String) {
        let r = pod::pod_ref(&attempt.key, &self.inner.cfg);
        let t = Tracked {
            key: attempt.key.clone(),
            template: attempt.template.clone(),
            output_prefix: attempt.paths.output_prefix.clone(),
            updates,
            reported: Reported::Nothing,
            pod: None,
        };
        if let Ok(mut map) = self.inner.tracked.lock() {
            map.insert(r.clone(), t);
        }
        r
    }

    fn untrack(&self, r: &(String, String)) -> Option<Tracked> {
        self.inner.tracked.lock().ok().and_then(|mut m| m.remove(r))
    }

    /// The pod, with the inputs read first when its command needs them.
    async fn build(&self, attempt: &TaskAttempt) -> Result<Pod, BackendError> {
        let parts = pod::template_parts(&attempt.template);
        let inputs = if template::needs_inputs(&parts) {
            Some(task_io::read_literal_map(&self.inner.store, &attempt.paths.inputs).await?)
        } else {
            None
        };
        let base = match pod::pod_template_name(&attempt.template, &self.inner.cfg) {
            None => None,
            Some((name, named_by_task)) => {
                let (ns, _) = pod::pod_ref(&attempt.key, &self.inner.cfg);
                let api: Api<PodTemplate> = Api::namespaced(self.inner.client.clone(), &ns);
                match api.get_opt(name).await {
                    Ok(Some(t)) => Some(t),
                    Ok(None) if !named_by_task => None,
                    Ok(None) => {
                        return Err(BackendError::Unsupported(format!(
                            "PodTemplate {name:?} (the task's pod_template_name) does not exist in namespace {ns}"
                        )));
                    }
                    Err(e) => {
                        return Err(BackendError::Internal(format!(
                            "cannot read PodTemplate {ns}/{name}: {e}"
                        )));
                    }
                }
            }
        };
        pod::build_pod_on(attempt, inputs.as_ref(), &self.inner.cfg, base.as_ref())
            .map_err(|e| BackendError::Unsupported(e.0))
    }
}

async fn client_config(path: &Path, context: Option<String>) -> Result<kube::Config, KubeError> {
    let err = |source| KubeError::Kubeconfig {
        path: path.display().to_string(),
        source,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(err)?;
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(err)
}

fn kind_of(blame: Blame) -> ErrorKind {
    match blame {
        Blame::User => ErrorKind::User,
        Blame::System => ErrorKind::System,
    }
}

fn failure(code: &str, message: String, blame: Blame, retryable: bool) -> AttemptOutcome {
    task_io::failed(
        task_io::execution_error(code, message, kind_of(blame)),
        retryable,
        Vec::new(),
    )
}

/// Follows every pod of ours through one watch (label `app.kubernetes.io/managed-by`), with
/// kube-rs' re-list and backoff when the connection drops.
async fn watch_pods(inner: Weak<Inner>) {
    let Some(client) = inner.upgrade().map(|i| i.client.clone()) else {
        return;
    };
    let api: Api<Pod> = Api::all(client);
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
    let stream = watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let Some(inner) = inner.upgrade() else { return };
        match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                on_pod(&inner, p).await;
            }
            Ok(watcher::Event::Delete(p)) => on_deleted(&inner, &p),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(e) => tracing::warn!(error = %e, "kubernetes pod watch failed; retrying"),
        }
    }
}

/// Looks again at pending pods as last seen: a grace period can end with no new event.
async fn recheck_pending(inner: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let pods: Vec<Pod> = match inner.tracked.lock() {
            Ok(map) => map.values().filter_map(|t| t.pod.clone()).collect(),
            Err(_) => return,
        };
        for p in pods {
            on_pod(&inner, p).await;
        }
        delete_due(&inner).await;
    }
}

/// Deletes the finished pods whose time has come.
async fn delete_due(inner: &Inner) {
    let now = Timestamp::now();
    let due: Vec<(String, String)> = match inner.finished.lock() {
        Ok(mut map) => {
            let due: Vec<_> = map
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(r, _)| r.clone())
                .collect();
            for r in &due {
                map.remove(r);
            }
            due
        }
        Err(_) => return,
    };
    for r in due {
        delete_finished(inner, &r).await;
    }
    let owners: Vec<(String, String)> = match inner.owners_due.lock() {
        Ok(mut map) => {
            let due: Vec<_> = map
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(r, _)| r.clone())
                .collect();
            for r in &due {
                map.remove(r);
            }
            due
        }
        Err(_) => return,
    };
    for r in owners {
        delete_owner(inner, &r).await;
    }
}

/// Deletes an ended execution's pod owner (the garbage collector takes its pods).
async fn delete_owner(inner: &Inner, r: &(String, String)) {
    match owner::delete(&inner.client, &r.0, &r.1).await {
        Ok(true) => {
            tracing::debug!(namespace = %r.0, owner = %r.1, "ended execution's pod owner deleted")
        }
        Ok(false) => {}
        // Tried again at the next recheck.
        Err(e) => {
            tracing::warn!(namespace = %r.0, owner = %r.1, error = %e, "cannot delete an ended execution's pod owner");
            if let Ok(mut map) = inner.owners_due.lock() {
                map.insert(r.clone(), Timestamp::now());
            }
        }
    }
}

/// The owners an earlier server marked for deletion: deleted when due, by this one.
async fn load_marked_owners(inner: Weak<Inner>) {
    let Some(i) = inner.upgrade() else { return };
    if !i.cfg.owner_references {
        return;
    }
    match owner::list_marked(&i.client).await {
        Ok(marked) => {
            if let Ok(mut map) = i.owners_due.lock() {
                for (r, due) in marked {
                    map.entry(r).or_insert(due);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list the pod owners of ended executions"),
    }
}

async fn delete_finished(inner: &Inner, r: &(String, String)) {
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &r.0);
    match api.delete(&r.1, &DeleteParams::background()).await {
        Ok(_) => tracing::debug!(namespace = %r.0, pod = %r.1, "finished task pod deleted"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        // Tried again at the next recheck.
        Err(e) => {
            tracing::warn!(namespace = %r.0, pod = %r.1, error = %e, "cannot delete a finished task pod");
            if let Ok(mut map) = inner.finished.lock() {
                map.insert(r.clone(), Timestamp::now());
            }
        }
    }
}

/// When the finished pod `p` is to be deleted: `delete_finished_pods_after_secs` after it
/// finished (its containers' last `finishedAt`, else now).
fn deletion_due(inner: &Inner, p: &Pod, now: Timestamp) -> Timestamp {
    let finished = p
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
        .unwrap_or(now);
    let after = std::time::Duration::from_secs(inner.cfg.delete_finished_pods_after_secs);
    finished.checked_add(jiff_span(after)).unwrap_or(finished)
}

fn jiff_span(d: Duration) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::try_from(d).unwrap_or(k8s_openapi::jiff::SignedDuration::MAX)
}

/// A finished pod no attempt follows (found by the watch after a restart, or seen again after
/// its outcome was read): its deletion is scheduled, not sooner than `reattach_grace_secs`
/// after this backend started.
fn schedule_untracked(inner: &Inner, r: (String, String), p: &Pod) {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    if !matches!(phase, Some("Succeeded" | "Failed")) {
        return;
    }
    let now = Timestamp::now();
    let floor = inner
        .started
        .checked_add(jiff_span(Duration::from_secs(
            inner.cfg.reattach_grace_secs,
        )))
        .unwrap_or(inner.started);
    let due = deletion_due(inner, p, now).max(floor);
    if let Ok(mut map) = inner.finished.lock() {
        map.entry(r).or_insert(due);
    }
}

fn pod_key(p: &Pod) -> Option<(String, String)> {
    Some((p.metadata.namespace.clone()?, p.metadata.name.clone()?))
}

/// A pod changed: report what it now means for its attempt, once per change.
async fn on_pod(inner: &Inner, p: Pod) {
    let Some(r) = pod_key(&p) else { return };
    let phase = phase::classify(&p, &inner.grace, Timestamp::now());
    let now = Timestamp::now();
    let links = |t: &Tracked, p: &Pod| {
        let primary = phase::primary_container(p);
        let mut logs = server_log_link(inner, &t.key);
        logs.extend(crate::logs::task_logs(
            &inner.cfg.log_links,
            p,
            &primary,
            &t.key,
            &t.template,
            now,
        ));
        logs
    };
    let mut follow = None;
    let (key, updates, template, output_prefix, logs) = {
        let Ok(mut map) = inner.tracked.lock() else {
            return;
        };
        let Some(t) = map.get_mut(&r) else {
            drop(map);
            schedule_untracked(inner, r, &p);
            return;
        };
        t.pod = Some(p.clone());
        let update = match &phase {
            PodPhase::Queued { reason } if t.reported != Reported::Queued(reason.clone()) => {
                t.reported = Reported::Queued(reason.clone());
                Some(AttemptUpdate::Queued {
                    reason: reason.clone(),
                })
            }
            PodPhase::Running if t.reported != Reported::Running => {
                t.reported = Reported::Running;
                follow = Some(t.key.clone());
                Some(AttemptUpdate::Running { logs: links(t, &p) })
            }
            _ => None,
        };
        if let Some(update) = update {
            let _ = t.updates.send((t.key.clone(), update));
        }
        if !phase.is_terminal() {
            drop(map);
            if let Some(key) = follow {
                spawn_log_follower(inner, &r, key, phase::primary_container(&p));
            }
            return;
        }
        // Finished: stop following it before the store is read (a later event is ignored).
        let Some(t) = map.remove(&r) else { return };
        let logs = links(&t, &p);
        (t.key, t.updates, t.template, t.output_prefix, logs)
    };
    // The whole log, before the attempt is reported done (a follower may have copied part).
    copy_whole_log(inner, &r, &key, &phase::primary_container(&p)).await;
    // Given up while pending (`PhaseInfoRetryableFailureWithCleanup`): the pod must not be
    // scheduled later and run beside the retry.
    if matches!(&phase, PodPhase::Failed { code, .. } if code == phase::POD_PENDING_TIMEOUT) {
        let api: Api<Pod> = Api::namespaced(inner.client.clone(), &r.0);
        if let Err(e) = api.delete(&r.1, &DeleteParams::background()).await {
            tracing::warn!(namespace = %r.0, pod = %r.1, error = %e, "cannot delete the pod that stayed pending");
        }
    }
    let outcome = match phase {
        PodPhase::Succeeded => {
            task_io::evaluate_success(&inner.store, &output_prefix, &template, logs).await
        }
        PodPhase::Failed {
            code,
            message,
            blame,
            retryable,
        } => {
            // error.pb, when the task wrote one, says more than the pod's status.
            let from_file = match task_io::key_of(&inner.store, &output_prefix) {
                Ok(prefix_key) => {
                    task_io::read_error_file(&inner.store, &prefix_key, &output_prefix, &logs).await
                }
                Err(_) => None,
            };
            from_file.unwrap_or_else(|| {
                task_io::failed(
                    task_io::execution_error(&code, message, kind_of(blame)),
                    retryable,
                    logs,
                )
            })
        }
        _ => return,
    };
    tracing::info!(
        project = %key.project, domain = %key.domain, execution = %key.execution,
        node = %key.node_id, attempt = key.retry_attempt, pod = %r.1,
        "task pod finished"
    );
    let _ = updates.send((key, AttemptUpdate::Finished(outcome)));
    // Its outcome is read: the pod may go once its time comes.
    if inner.cfg.delete_finished_pods_after_secs == 0 {
        delete_finished(inner, &r).await;
    } else {
        let due = deletion_due(inner, &p, Timestamp::now());
        if let Ok(mut map) = inner.finished.lock() {
            map.insert(r, due);
        }
    }
}

/// The link to the attempt's log as the server serves it, when it keeps pod logs.
fn server_log_link(inner: &Inner, key: &AttemptKey) -> Vec<flyteidl::core::TaskLog> {
    let Some(layout) = inner.logs.get() else {
        return Vec::new();
    };
    vec![flyteidl::core::TaskLog {
        uri: layout.log_url_for(key),
        name: "Task logs (pod)".into(),
        message_format: flyteidl::core::task_log::MessageFormat::Unknown as i32,
        show_while_pending: true,
        ..Default::default()
    }]
}

/// Appends the running pod's log (`GET …/pods/{name}/log?follow=true`) to the attempt's log
/// file as it comes; ends with the container (or the server).
fn spawn_log_follower(inner: &Inner, r: &(String, String), key: AttemptKey, container: String) {
    let Some(layout) = inner.logs.get() else {
        return;
    };
    let file = layout.log_file_for(&key);
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &r.0);
    let name = r.1.clone();
    tokio::spawn(async move {
        use futures::AsyncReadExt;
        use tokio::io::AsyncWriteExt;
        let params = kube::api::LogParams {
            follow: true,
            container: Some(container),
            ..Default::default()
        };
        let Ok(mut stream) = api.log_stream(&name, &params).await else {
            return;
        };
        if let Some(dir) = file.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        let Ok(mut out) = tokio::fs::File::create(&file).await else {
            return;
        };
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 || out.write_all(&buf[..n]).await.is_err() {
                break;
            }
            let _ = out.flush().await;
        }
    });
}

/// Writes the finished pod's whole log to the attempt's log file (`GET …/pods/{name}/log`).
async fn copy_whole_log(inner: &Inner, r: &(String, String), key: &AttemptKey, container: &str) {
    let Some(layout) = inner.logs.get() else {
        return;
    };
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &r.0);
    let params = kube::api::LogParams {
        container: Some(container.to_string()),
        ..Default::default()
    };
    match api.logs(&r.1, &params).await {
        Ok(text) => {
            let file = layout.log_file_for(key);
            if let Some(dir) = file.parent() {
                let _ = tokio::fs::create_dir_all(dir).await;
            }
            // Whole, replacing what a follower wrote (the same text, or less of it).
            let tmp = file.with_extension("log.part");
            let written = async {
                tokio::fs::write(&tmp, text.as_bytes()).await?;
                tokio::fs::rename(&tmp, &file).await
            };
            if let Err(e) = written.await {
                tracing::warn!(namespace = %r.0, pod = %r.1, error = %e, "cannot keep the pod's log");
            }
        }
        Err(e) => {
            tracing::warn!(namespace = %r.0, pod = %r.1, error = %e, "cannot read the pod's log")
        }
    }
}

/// What creating a pod came to.
enum Created {
    Yes,
    /// It exists already.
    Exists,
    /// Refused by a ResourceQuota it can fit once other pods finish: the reason to show.
    OverQuota(String),
    /// Refused for good, or for this attempt (the outcome to report).
    Failed(AttemptOutcome),
    /// No answer from the API server.
    Unreachable(String),
}

/// Creates `built` as the pod `r`, the API's refusal classified as propeller's k8s plugin
/// manager (`launchResource`) does.
async fn create_pod(inner: &Inner, r: &(String, String), built: &Pod) -> Created {
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &r.0);
    let s = match api.create(&PostParams::default(), built).await {
        Ok(_) => return Created::Yes,
        Err(kube::Error::Api(s)) => s,
        Err(e) => return Created::Unreachable(format!("cannot create pod {}/{}: {e}", r.0, r.1)),
    };
    if s.code == 409 {
        return Created::Exists;
    }
    // `backoff.IsResourceQuotaExceeded`: waiting for resources, unless the pod asks for more
    // than the whole quota (`IsResourceRequestsEligible`), which no waiting fixes.
    if s.code == 403 && s.message.contains("exceeded quota") {
        if fits_quota(&s.message) {
            return Created::OverQuota(format!("Exceeded resourcequota: {}", s.message));
        }
        return Created::Failed(failure(
            "ResourceRequestsExceedLimits",
            format!("requested resources exceed limits: {}", s.message),
            Blame::User,
            false,
        ));
    }
    let (code, message, blame, retryable) = match s.code {
        // propeller: other Forbidden answers (admission) are a retryable RuntimeFailure.
        403 => ("RuntimeFailure", s.message.clone(), Blame::User, true),
        404 => (
            "NamespaceNotFound",
            format!(
                "namespace {} does not exist (kubernetes.namespace_template {:?}): {}",
                r.0, inner.cfg.namespace_template, s.message
            ),
            Blame::System,
            true,
        ),
        413 => ("EntityTooLarge", s.message.clone(), Blame::User, false),
        400 => ("BadRequest", s.message.clone(), Blame::User, false),
        422 => ("InvalidResource", s.message.clone(), Blame::User, false),
        _ => ("RuntimeFailure", s.message.clone(), Blame::System, true),
    };
    tracing::warn!(
        namespace = %r.0, pod = %r.1, status = s.code, code, "task pod not created"
    );
    Created::Failed(failure(code, message, blame, retryable))
}

/// `backoff.IsResourceRequestsEligible`: whether every `limits.*`/`requests.*` amount the
/// quota message says was requested is below what the quota allows in all (`requested: …,
/// used: …, limited: …`). Unparsable parts count as fitting (waiting is the safe side).
pub fn fits_quota(message: &str) -> bool {
    fn amounts(message: &str, label: &str, end: Option<&str>) -> Vec<(String, f64)> {
        let Some(start) = message.find(label) else {
            return Vec::new();
        };
        let rest = &message[start + label.len()..];
        let rest = end.and_then(|e| rest.find(e)).map_or(rest, |i| &rest[..i]);
        rest.split(',')
            .filter_map(|item| {
                let (name, qty) = item.trim().split_once('=')?;
                let name = name.trim();
                if !(name.starts_with("limits.") || name.starts_with("requests.")) {
                    return None;
                }
                let v = flyte_engine::backend::resources::parse_quantity(qty.trim())?;
                Some((name.to_string(), v))
            })
            .collect()
    }
    let requested = amounts(message, "requested: ", Some(", used:"));
    let limited = amounts(message, "limited: ", None);
    requested.iter().all(|(name, want)| {
        limited
            .iter()
            .find(|(n, _)| n == name)
            .is_none_or(|(_, quota)| want < quota)
    })
}

/// Reports `reason` as the attempt's QUEUED reason, once per change.
fn report_queued(inner: &Inner, r: &(String, String), reason: String) {
    let Ok(mut map) = inner.tracked.lock() else {
        return;
    };
    if let Some(t) = map.get_mut(r)
        && t.reported != Reported::Queued(reason.clone())
    {
        t.reported = Reported::Queued(reason.clone());
        let _ = t
            .updates
            .send((t.key.clone(), AttemptUpdate::Queued { reason }));
    }
}

fn is_tracked(inner: &Inner, r: &(String, String)) -> bool {
    inner.tracked.lock().is_ok_and(|m| m.contains_key(r))
}

/// Creates the pod again after `quota_backoff_base_ms`, doubling up to `quota_backoff_max_ms`,
/// while the quota refuses it and the attempt is still followed (an abort stops it).
async fn retry_over_quota(inner: Weak<Inner>, r: (String, String), built: Pod) {
    let Some((base, max)) = inner.upgrade().map(|i| {
        (
            Duration::from_millis(i.cfg.quota_backoff_base_ms.max(1)),
            Duration::from_millis(i.cfg.quota_backoff_max_ms.max(1)),
        )
    }) else {
        return;
    };
    let mut delay = base.min(max);
    loop {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max);
        let Some(inner) = inner.upgrade() else { return };
        if !is_tracked(&inner, &r) {
            return;
        }
        match create_pod(&inner, &r, &built).await {
            Created::Yes => {
                tracing::info!(namespace = %r.0, pod = %r.1, "task pod created after waiting for quota");
                // Aborted while the create was on its way: the pod must not outlive it.
                if !is_tracked(&inner, &r) {
                    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &r.0);
                    let _ = api.delete(&r.1, &DeleteParams::background()).await;
                }
                return;
            }
            Created::Exists => {
                let api: Api<Pod> = Api::namespaced(inner.client.clone(), &r.0);
                if let Ok(existing) = api.get(&r.1).await {
                    on_pod(&inner, existing).await;
                }
                return;
            }
            Created::OverQuota(reason) => report_queued(&inner, &r, reason),
            Created::Failed(outcome) => {
                if let Some(t) = inner.tracked.lock().ok().and_then(|mut m| m.remove(&r)) {
                    let _ = t.updates.send((t.key, AttemptUpdate::Finished(outcome)));
                }
                return;
            }
            // The API server is away: keep trying at the same pace.
            Created::Unreachable(message) => {
                tracing::warn!(namespace = %r.0, pod = %r.1, error = %message, "cannot create the task pod; trying again");
            }
        }
    }
}

/// A pod of a followed attempt was deleted by someone else (`ResourceDeletedExternally`, a
/// retryable system failure in propeller).
fn on_deleted(inner: &Inner, p: &Pod) {
    let Some(r) = pod_key(p) else { return };
    if let Ok(mut map) = inner.finished.lock() {
        map.remove(&r);
    }
    let Some(t) = inner.tracked.lock().ok().and_then(|mut m| m.remove(&r)) else {
        return;
    };
    let outcome = failure(
        "ResourceDeletedExternally",
        format!(
            "the task's pod {}/{} was deleted before it finished",
            r.0, r.1
        ),
        Blame::System,
        true,
    );
    let _ = t.updates.send((t.key, AttemptUpdate::Finished(outcome)));
}

#[async_trait]
impl TaskBackend for KubeBackend {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn handles(&self, template: &TaskTemplate) -> bool {
        self.inner.cfg.task_types.contains(&template.r#type) && pod::has_pod_target(template)
    }

    /// Propeller's pod plugin ids (`container`, `sidecar`, `pod`), and ours.
    fn plugin_ids(&self) -> &'static [&'static str] {
        &["container", "sidecar", "pod", "k8s-pod", "kubernetes"]
    }

    fn can_run(&self, template: &TaskTemplate) -> bool {
        pod::has_pod_target(template)
    }

    async fn start(&self, attempt: TaskAttempt, updates: Updates) -> Result<(), BackendError> {
        let mut built = self.build(&attempt).await?;
        if let Some(owner) = self.owner_of(&attempt.key).await? {
            built.metadata.owner_references = Some(vec![owner]);
        }
        let key = attempt.key.clone();
        let r = self.track(&attempt, updates.clone());
        match create_pod(&self.inner, &r, &built).await {
            Created::Yes => {
                tracing::info!(
                    project = %key.project, domain = %key.domain, execution = %key.execution,
                    node = %key.node_id, attempt = key.retry_attempt, namespace = %r.0, pod = %r.1,
                    "task pod created"
                );
                Ok(())
            }
            // Created before (a start repeated after a crash): follow the one there is.
            Created::Exists => match self.pods(&r.0).get(&r.1).await {
                Ok(existing) => {
                    on_pod(&self.inner, existing).await;
                    Ok(())
                }
                Err(e) => {
                    self.untrack(&r);
                    Err(BackendError::Internal(format!("pod {}/{}: {e}", r.0, r.1)))
                }
            },
            Created::OverQuota(reason) => {
                tracing::info!(
                    execution = %key.execution, node = %key.node_id, namespace = %r.0, pod = %r.1,
                    "task pod over the namespace's resource quota; trying again with backoff"
                );
                report_queued(&self.inner, &r, reason);
                tokio::spawn(retry_over_quota(Arc::downgrade(&self.inner), r, built));
                Ok(())
            }
            Created::Failed(outcome) => {
                self.untrack(&r);
                let _ = updates.send((key, AttemptUpdate::Finished(outcome)));
                Ok(())
            }
            Created::Unreachable(message) => {
                self.untrack(&r);
                Err(BackendError::Internal(message))
            }
        }
    }

    async fn abort(&self, key: &AttemptKey) {
        let r = pod::pod_ref(key, &self.inner.cfg);
        let tracked = self.untrack(&r);
        match self
            .pods(&r.0)
            .delete(&r.1, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(
                execution = %key.execution, node = %key.node_id, namespace = %r.0, pod = %r.1,
                error = %e, "cannot delete the aborted task's pod"
            ),
        }
        if let Some(t) = tracked {
            let _ = t
                .updates
                .send((t.key, AttemptUpdate::Finished(AttemptOutcome::Aborted)));
        }
    }

    async fn execution_ended(&self, execution: &ExecKey) {
        if !self.inner.cfg.owner_references {
            return;
        }
        let ns = self
            .inner
            .cfg
            .namespace(&execution.project, &execution.domain);
        if let Ok(mut m) = self.inner.owners.lock() {
            m.remove(&(ns.clone(), execution.name.clone()));
        }
        // Tried whether or not a pod of it ran here: after a restart nothing says so (one
        // request; 404 when none did).
        let r = (ns, owner::name(&execution.name));
        let after = Duration::from_secs(self.inner.cfg.delete_finished_pods_after_secs);
        if after.is_zero() {
            delete_owner(&self.inner, &r).await;
            return;
        }
        let due = Timestamp::now()
            .checked_add(jiff_span(after))
            .unwrap_or(Timestamp::MAX);
        match owner::mark(&self.inner.client, &r.0, &r.1, due).await {
            Ok(true) => {
                if let Ok(mut m) = self.inner.owners_due.lock() {
                    m.insert(r, due);
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(
                project = %execution.project, domain = %execution.domain, execution = %execution.name,
                namespace = %r.0, owner = %r.1, error = %e,
                "cannot mark the ended execution's pod owner for deletion"
            ),
        }
    }

    async fn reattach(
        &self,
        attempt: TaskAttempt,
        updates: Updates,
    ) -> Result<Reattach, BackendError> {
        let r = self.track(&attempt, updates);
        match self.pods(&r.0).get(&r.1).await {
            Ok(existing) => {
                on_pod(&self.inner, existing).await;
                Ok(Reattach::Attached)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.untrack(&r);
                Ok(Reattach::NotStarted)
            }
            Err(e) => {
                self.untrack(&r);
                Err(BackendError::Internal(format!("pod {}/{}: {e}", r.0, r.1)))
            }
        }
    }
}
