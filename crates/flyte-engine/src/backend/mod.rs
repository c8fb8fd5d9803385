//! Task backends: where a task attempt actually runs. The engine decides *what* runs and
//! when; a backend runs one attempt and reports how it went.
//!
//! Backends: local processes (the embedded default), in-engine tasks that need no process
//! (`echo`, `core-sleep`), later Kubernetes pods.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use flyteidl::core::{ExecutionError, LiteralMap, TaskLog, TaskTemplate};
use tokio::sync::mpsc;

pub mod builtin;
pub mod cgroup;
pub mod copilot;
pub mod local;
pub mod memory;
pub mod resources;
pub mod task_io;
pub mod template;
pub mod warm;

pub use builtin::BuiltinBackend;
pub use local::{LocalProcessBackend, LocalProcessConfig, LogLayout, PythonEnvironment};

/// Identifies one attempt of one node of one execution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptKey {
    pub project: String,
    pub domain: String,
    /// The execution name.
    pub execution: String,
    /// The node's unique id within the execution (nested nodes carry their parent's prefix).
    pub node_id: String,
    pub retry_attempt: u32,
}

/// Where an attempt reads and writes its data: Flyte's template variables.
/// All values are native URLs of the blob store (`file:///…`, `s3://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptPaths {
    /// `{{.input}}`: the node's `inputs.pb`.
    pub inputs: String,
    /// `{{.inputPrefix}}`: the node's data dir.
    pub input_prefix: String,
    /// `{{.outputPrefix}}`: this attempt's output dir (outputs.pb, error.pb, futures.pb).
    pub output_prefix: String,
    /// `{{.rawOutputDataPrefix}}`.
    pub raw_output_prefix: String,
    /// `{{.checkpointOutputPrefix}}`.
    pub checkpoint_prefix: String,
    /// `{{.prevCheckpointPrefix}}`: the previous attempt's checkpoint prefix, if any.
    pub prev_checkpoint_prefix: Option<String>,
    /// `{{.taskTemplatePath}}`: where the engine wrote `task.pb`.
    pub task_template: String,
}

/// Everything a backend needs to run one attempt.
#[derive(Debug, Clone)]
pub struct TaskAttempt {
    pub key: AttemptKey,
    /// Shared with the engine's graph: a running attempt does not hold its own copy.
    pub template: std::sync::Arc<TaskTemplate>,
    pub paths: AttemptPaths,
    /// Environment from the engine (`FLYTE_INTERNAL_*`, `FLYTE_ATTEMPT_NUMBER`, the
    /// execution's `envs`, storage access). As in `flytek8s.DecorateEnvVars`, the container's
    /// own `env` goes underneath it (these win on a clash).
    pub env: BTreeMap<String, String>,
    /// Per-attempt timeout (TaskMetadata.timeout), if any.
    pub timeout: Option<Duration>,
    pub interruptible: bool,
    /// For array sub-tasks: the index (FLYTE_K8S_ARRAY_INDEX).
    pub array_index: Option<u32>,
    /// The node's inputs in memory, given to a backend that does not read input files
    /// ([`TaskBackend::reads_attempt_files`]): the engine then writes no `inputs.pb`, and of
    /// the paths only `output_prefix` is set, and no environment. `None`: read `paths.inputs`.
    pub inputs: Option<std::sync::Arc<LiteralMap>>,
    /// The execution's labels and annotations (launch plan, then the execution's own, as
    /// flyteadmin merges them) and its Kubernetes service account (empty: none): what the pod
    /// backend puts on the pod, as propeller does. The local backend ignores them.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub service_account: String,
}

/// Progress of a running attempt (phase changes, logs becoming available).
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptUpdate {
    /// Accepted but waiting for capacity (shown as QUEUED).
    Queued { reason: String },
    /// Running; logs are where the links point.
    Running { logs: Vec<TaskLog> },
    /// Finished; the engine reads outputs from `paths.output_prefix` on success.
    Finished(AttemptOutcome),
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// The task succeeded; `outputs.pb` (or `futures.pb` for dynamic tasks) is in the output prefix.
    Succeeded { logs: Vec<TaskLog> },
    /// The task failed. `retryable` follows Flyte's rules (ContainerError kind RECOVERABLE,
    /// system errors); `error.kind` is USER or SYSTEM (UNKNOWN where propeller leaves it
    /// unset, e.g. a retryable `OutputsNotFound`; it counts against the user budget).
    Failed {
        error: ExecutionError,
        retryable: bool,
        logs: Vec<TaskLog>,
    },
    /// Aborted on request.
    Aborted,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot run this task (unknown type, missing command …): a user error.
    #[error("{0}")]
    Unsupported(String),
    #[error("task backend: {0}")]
    Internal(String),
}

/// What [`TaskBackend::reattach`] found of an attempt a previous server process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reattach {
    /// The attempt is followed again: still running, or ended while no server watched it
    /// (its outcome comes on `updates` as after `start`, ending with one `Finished`).
    Attached,
    /// Nothing of this attempt ever ran here (it was queued, or never handed over): start it
    /// again under the same attempt number.
    NotStarted,
    /// The backend cannot tell (it keeps nothing across restarts): the engine aborts the
    /// attempt and starts a new one.
    Lost,
}

/// The backend of a task: the first whose plugin ids hold one the execution's override for
/// the task's type names (in the override's order) and that can run it; with no such override,
/// or with `USE_DEFAULT` when none matches, the first that handles it by configuration.
/// `Err` (the plugin ids): the override says `FAIL` and no backend has one of them.
pub fn choose(
    backends: &[std::sync::Arc<dyn TaskBackend>],
    template: &TaskTemplate,
    overrides: &[flyteidl::admin::PluginOverride],
) -> Result<Option<usize>, Vec<String>> {
    use flyteidl::admin::plugin_override::MissingPluginBehavior;
    let default = || backends.iter().position(|b| b.handles(template));
    let Some(o) = overrides.iter().find(|o| o.task_type == template.r#type) else {
        return Ok(default());
    };
    for id in &o.plugin_id {
        if let Some(i) = backends
            .iter()
            .position(|b| b.plugin_ids().contains(&id.as_str()) && b.can_run(template))
        {
            return Ok(Some(i));
        }
    }
    if o.missing_plugin_behavior == MissingPluginBehavior::UseDefault as i32 {
        Ok(default())
    } else {
        Err(o.plugin_id.clone())
    }
}

/// A place task attempts run. `start` returns once the attempt is accepted; progress comes on
/// `updates` and ends with exactly one `Finished`.
#[async_trait]
pub trait TaskBackend: Send + Sync + 'static {
    /// A short name for logs and metrics ("local-process", "builtin").
    fn name(&self) -> &'static str;
    /// Whether this backend runs tasks of this template (by `task_type` and target).
    fn handles(&self, template: &TaskTemplate) -> bool;
    /// The plugin ids an execution's `PLUGIN_OVERRIDE` attribute names this backend by
    /// (docs/task-backends.md); none: it is never chosen by one.
    fn plugin_ids(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether it can run this template when an override chooses it for the template's task
    /// type, whatever types it takes by configuration (`handles`).
    fn can_run(&self, template: &TaskTemplate) -> bool {
        self.handles(template)
    }
    /// Whether its tasks can write a Flyte Deck (`deck.html` in the output prefix), which the
    /// engine then looks for after each success; in-engine tasks never do, and skip the look.
    fn writes_decks(&self) -> bool {
        true
    }
    /// Whether its attempts read the files the engine writes for them, `paths.inputs` and
    /// `paths.task_template` (a process does). An in-engine backend takes the inputs from
    /// [`TaskAttempt::inputs`] instead, and the engine writes neither file for its tasks
    /// (their events carry the inputs).
    fn reads_attempt_files(&self) -> bool {
        true
    }
    /// Whether an attempt may start before the batch that records its start commits. True
    /// only for a backend whose attempts live and die in this process and leave nothing a
    /// resume could not redo (in-engine tasks): the engine then runs them while the batch is
    /// still being written, so a chain of them needs no store round trip per step. A crash
    /// before the commit loses nothing: the resume starts them again from the journal.
    fn starts_before_commit(&self) -> bool {
        false
    }
    async fn start(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<(), BackendError>;
    /// Stops an attempt (kills its process group); a no-op if it is not running.
    async fn abort(&self, key: &AttemptKey);
    /// Follows an attempt that a previous server process started (after a restart or a
    /// crash) instead of running it again. `attempt` is what `start` was given.
    async fn reattach(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<Reattach, BackendError> {
        let _ = (attempt, updates);
        Ok(Reattach::Lost)
    }
    /// The execution reached a terminal phase (on this replica): nothing of it will start
    /// again. The pod backend lets go of what it keeps per execution (the pods' owner).
    async fn execution_ended(&self, execution: &crate::request::ExecKey) {
        let _ = execution;
    }
}

#[cfg(test)]
mod choose_tests {
    use super::*;
    use flyteidl::admin::PluginOverride;
    use flyteidl::admin::plugin_override::MissingPluginBehavior;
    use std::sync::Arc;

    /// Handles `types` by configuration, can run anything, named by `ids`.
    struct Fake {
        types: &'static [&'static str],
        ids: &'static [&'static str],
    }

    #[async_trait]
    impl TaskBackend for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn handles(&self, t: &TaskTemplate) -> bool {
            self.types.contains(&t.r#type.as_str())
        }
        fn plugin_ids(&self) -> &'static [&'static str] {
            self.ids
        }
        fn can_run(&self, _: &TaskTemplate) -> bool {
            true
        }
        async fn start(
            &self,
            _: TaskAttempt,
            _: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
        ) -> Result<(), BackendError> {
            Ok(())
        }
        async fn abort(&self, _: &AttemptKey) {}
    }

    fn over(ids: &[&str], missing: MissingPluginBehavior) -> Vec<PluginOverride> {
        vec![PluginOverride {
            task_type: "python-task".into(),
            plugin_id: ids.iter().map(|s| s.to_string()).collect(),
            missing_plugin_behavior: missing as i32,
        }]
    }

    #[test]
    fn an_override_picks_by_plugin_id_in_order_whatever_the_configuration() {
        // Pods configured for no task type; local processes for python-task.
        let backends: Vec<Arc<dyn TaskBackend>> = vec![
            Arc::new(Fake {
                types: &[],
                ids: &["container", "k8s-pod"],
            }),
            Arc::new(Fake {
                types: &["python-task"],
                ids: &["local"],
            }),
        ];
        let t = TaskTemplate {
            r#type: "python-task".into(),
            ..Default::default()
        };
        assert_eq!(choose(&backends, &t, &[]), Ok(Some(1)), "configured");
        let fail = MissingPluginBehavior::Fail;
        assert_eq!(
            choose(&backends, &t, &over(&["k8s-pod"], fail)),
            Ok(Some(0))
        );
        assert_eq!(
            choose(&backends, &t, &over(&["spark", "local", "container"], fail)),
            Ok(Some(1)),
            "the first id some backend has"
        );
        assert_eq!(
            choose(&backends, &t, &over(&["spark"], fail)),
            Err(vec!["spark".to_string()])
        );
        assert_eq!(
            choose(
                &backends,
                &t,
                &over(&["spark"], MissingPluginBehavior::UseDefault)
            ),
            Ok(Some(1))
        );
        // Another task type: the override does not apply.
        let other = TaskTemplate {
            r#type: "container".into(),
            ..Default::default()
        };
        assert_eq!(
            choose(&backends, &other, &over(&["k8s-pod"], fail)),
            Ok(None)
        );
    }
}
