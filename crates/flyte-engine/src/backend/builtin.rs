//! Tasks the engine runs itself, with no process: `echo` (flyteplugins' testing plugin: the
//! outputs are the inputs) and `core-sleep` (flytekitplugins-sleep: sleeps for its one
//! `duration` input). They let workflow shapes be run and measured without process start-up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flyte_blob::BlobStore;
use flyteidl::core::{
    LiteralMap, LiteralType, SimpleType, TaskTemplate, execution_error, literal, literal_type,
    primitive, scalar,
};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::task_io::{self, execution_error, failed};
use super::{AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend};

/// The `echo` task type (`flytekit.core.task.Echo`).
pub const ECHO_TASK_TYPE: &str = "echo";
/// The `core-sleep` task type (`flytekitplugins.sleep.Sleep`).
pub const SLEEP_TASK_TYPE: &str = "core-sleep";

/// Runs `echo` and `core-sleep` tasks in the engine. Cheap to clone.
#[derive(Clone)]
pub struct BuiltinBackend {
    inner: Arc<Inner>,
}

struct Inner {
    store: BlobStore,
    running: Mutex<HashMap<AttemptKey, watch::Sender<bool>>>,
}

impl std::fmt::Debug for BuiltinBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinBackend").finish_non_exhaustive()
    }
}

impl BuiltinBackend {
    /// A backend reading inputs from and writing outputs to `store`.
    pub fn new(store: BlobStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Attempts accepted and not finished.
    pub fn active(&self) -> usize {
        self.inner.running.lock().map(|m| m.len()).unwrap_or(0)
    }
}

fn bad_spec(message: impl Into<String>) -> AttemptOutcome {
    failed(
        execution_error(
            "BadTaskSpecification",
            message,
            execution_error::ErrorKind::User,
        ),
        false,
        vec![],
    )
}

#[async_trait]
impl TaskBackend for BuiltinBackend {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn handles(&self, template: &TaskTemplate) -> bool {
        matches!(template.r#type.as_str(), ECHO_TASK_TYPE | SLEEP_TASK_TYPE)
    }

    fn writes_decks(&self) -> bool {
        false
    }

    fn reads_attempt_files(&self) -> bool {
        false
    }

    // An echo's only effect outside the process is its outputs.pb, which a resume writes
    // again with the same bytes; a sleep has none.
    fn starts_before_commit(&self) -> bool {
        true
    }

    async fn start(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<(), BackendError> {
        let kind = attempt.template.r#type.clone();
        if !self.handles(&attempt.template) {
            return Err(BackendError::Unsupported(format!(
                "task type [{kind}] is not a builtin task type"
            )));
        }
        task_io::key_of(&self.inner.store, &attempt.paths.output_prefix)?;
        let key = attempt.key.clone();
        let abort_rx = {
            let mut running = self
                .inner
                .running
                .lock()
                .map_err(|_| BackendError::Internal("poisoned lock".into()))?;
            if running.contains_key(&key) {
                return Err(BackendError::Internal(format!(
                    "attempt {key:?} is already running"
                )));
            }
            let (tx, rx) = watch::channel(false);
            running.insert(key.clone(), tx);
            rx
        };
        let inner = self.inner.clone();
        // Debug level: in-engine attempts are cheap and many (40,000 held sleeps); their node
        // spans carry them at info.
        let span = tracing::debug_span!(
            "attempt",
            attempt = attempt.key.retry_attempt,
            backend = "builtin"
        );
        tokio::spawn(
            async move {
                let outcome = if kind == ECHO_TASK_TYPE {
                    echo(&inner.store, &attempt).await
                } else {
                    sleep(&inner.store, attempt, abort_rx, &updates).await
                };
                if let Ok(mut running) = inner.running.lock() {
                    running.remove(&key);
                }
                let _ = updates.send((key, AttemptUpdate::Finished(outcome)));
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
}

/// Which input becomes which output. flyteplugins' echo maps its one input to its one output;
/// here also several, by equal names, or else by type when every output's type matches
/// exactly one input (flytekit's `Echo` names the outputs `o0`, `o1`, …).
pub fn echo_mapping(template: &TaskTemplate) -> Result<BTreeMap<String, String>, String> {
    let empty = BTreeMap::new();
    let iface = template.interface.as_ref();
    let inputs = iface
        .and_then(|i| i.inputs.as_ref())
        .map_or(&empty, |v| &v.variables);
    let outputs = iface
        .and_then(|i| i.outputs.as_ref())
        .map_or(&empty, |v| &v.variables);
    if inputs.len() != outputs.len() {
        return Err(format!(
            "the number of input [{}] and output [{}] variables does not match",
            inputs.len(),
            outputs.len()
        ));
    }
    // output name -> input name
    let mut mapping = BTreeMap::new();
    if inputs.len() == 1 {
        let (i, o) = (inputs.keys().next(), outputs.keys().next());
        if let (Some(i), Some(o)) = (i, o) {
            mapping.insert(o.clone(), i.clone());
        }
        return Ok(mapping);
    }
    if inputs.keys().eq(outputs.keys()) {
        return Ok(inputs.keys().map(|k| (k.clone(), k.clone())).collect());
    }
    for (out_name, out_var) in outputs {
        let candidates: Vec<&String> = inputs
            .iter()
            .filter(|(_, v)| v.r#type == out_var.r#type)
            .map(|(k, _)| k)
            .collect();
        match candidates.as_slice() {
            [only] => {
                mapping.insert(out_name.clone(), (*only).clone());
            }
            _ => {
                return Err(format!(
                    "cannot tell which input becomes output [{out_name}]: give inputs and outputs the same names, or types that match one to one"
                ));
            }
        }
    }
    Ok(mapping)
}

async fn echo(store: &BlobStore, attempt: &TaskAttempt) -> AttemptOutcome {
    let mapping = match echo_mapping(&attempt.template) {
        Ok(m) => m,
        Err(message) => return bad_spec(message),
    };
    let inputs = match inputs_of(store, attempt).await {
        Ok(i) => i,
        Err(outcome) => return outcome,
    };
    let mut outputs = LiteralMap::default();
    for (out_name, in_name) in mapping {
        match inputs.literals.get(&in_name) {
            Some(lit) => {
                outputs.literals.insert(out_name, lit.clone());
            }
            None => return bad_spec(format!("input [{in_name}] has no value")),
        }
    }
    match task_io::write_outputs(store, &attempt.paths.output_prefix, &outputs).await {
        Ok(()) => AttemptOutcome::Succeeded { logs: vec![] },
        Err(e) => task_io::storage_failure("cannot write the outputs", e, vec![]),
    }
}

/// The attempt's inputs: those the engine gave in memory, or else its `inputs.pb`.
async fn inputs_of(
    store: &BlobStore,
    attempt: &TaskAttempt,
) -> Result<Arc<LiteralMap>, AttemptOutcome> {
    if let Some(inputs) = &attempt.inputs {
        return Ok(inputs.clone());
    }
    task_io::read_literal_map(store, &attempt.paths.inputs)
        .await
        .map(Arc::new)
        .map_err(|e| task_io::storage_failure("cannot read the inputs", e, vec![]))
}

fn is_duration(t: Option<&LiteralType>) -> bool {
    matches!(t.and_then(|t| t.r#type.as_ref()), Some(literal_type::Type::Simple(s)) if *s == SimpleType::Duration as i32)
}

/// The sleep of a `core-sleep` task: its one input, typed and valued as a non-negative duration.
pub fn sleep_duration(template: &TaskTemplate, inputs: &LiteralMap) -> Result<Duration, String> {
    let iface = template.interface.as_ref();
    let vars = iface.and_then(|i| i.inputs.as_ref()).map(|v| &v.variables);
    let Some((name, var)) = vars.filter(|v| v.len() == 1).and_then(|v| v.iter().next()) else {
        return Err(format!(
            "task type [{SLEEP_TASK_TYPE}] requires exactly one duration input"
        ));
    };
    if iface
        .and_then(|i| i.outputs.as_ref())
        .is_some_and(|o| !o.variables.is_empty())
    {
        return Err(format!(
            "task type [{SLEEP_TASK_TYPE}] does not support outputs"
        ));
    }
    if !is_duration(var.r#type.as_ref()) {
        return Err(format!("input [{name}] must be typed as duration"));
    }
    let Some(lit) = inputs.literals.get(name) else {
        return Err(format!("duration input [{name}] is missing"));
    };
    let duration = match &lit.value {
        Some(literal::Value::Scalar(s)) => match &s.value {
            Some(scalar::Value::Primitive(p)) => match &p.value {
                Some(primitive::Value::Duration(d)) => Some(d),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    let Some(d) = duration else {
        return Err(format!(
            "duration input [{name}] must be a duration literal"
        ));
    };
    let nanos = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
    if nanos < 0 {
        return Err(format!("duration input [{name}] must be non-negative"));
    }
    Ok(Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

/// The sleep's duration and timeout; RUNNING is reported unless it is zero. It takes the
/// attempt by value so that the paths, environment and inputs are freed before the wait:
/// 40,000 held sleeps then hold a timer each, not 40,000 attempts.
async fn sleep_plan(
    store: &BlobStore,
    attempt: TaskAttempt,
    updates: &mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
) -> Result<(Duration, Option<Duration>), AttemptOutcome> {
    let inputs = inputs_of(store, &attempt).await?;
    let duration = sleep_duration(&attempt.template, &inputs).map_err(bad_spec)?;
    let timeout = attempt.timeout.filter(|t| !t.is_zero() && *t < duration);
    if !duration.is_zero() {
        let _ = updates.send((attempt.key, AttemptUpdate::Running { logs: vec![] }));
    }
    Ok((duration, timeout))
}

async fn sleep(
    store: &BlobStore,
    attempt: TaskAttempt,
    mut abort_rx: watch::Receiver<bool>,
    updates: &mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
) -> AttemptOutcome {
    let (duration, timeout) = match sleep_plan(store, attempt, updates).await {
        Ok(plan) => plan,
        Err(outcome) => return outcome,
    };
    if duration.is_zero() {
        return AttemptOutcome::Succeeded { logs: vec![] };
    }
    let wait = timeout.unwrap_or(duration);
    tokio::select! {
        _ = tokio::time::sleep(wait) => match timeout {
            None => AttemptOutcome::Succeeded { logs: vec![] },
            Some(t) => failed(
                execution_error(
                    "TimeoutExpired",
                    format!("task execution timeout [{}] expired", super::template::go_duration(t.as_secs() as i64, t.subsec_nanos() as i32)),
                    execution_error::ErrorKind::User,
                ),
                true,
                vec![],
            ),
        },
        _ = task_io::aborted(&mut abort_rx) => AttemptOutcome::Aborted,
    }
}
