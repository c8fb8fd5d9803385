//! Task nodes: an attempt on a task backend, with retries, the per-attempt execution
//! deadline and the output cache (`cache`). Start, resume (re-attach), abort, the backend's
//! attempt updates, the attempt's end (outputs, deck, retry or failure) and the task events
//! are here; the node's state is `KindState::Task`. A task whose attempt leaves a dynamic
//! workflow becomes a dynamic node (`dynamic`).

use std::sync::Arc;

use bytes::Bytes;
use flyteidl::core::{
    ExecutionError, LiteralMap, NodeExecutionIdentifier, TaskLog, execution_error::ErrorKind,
    node_execution, task_execution,
};
use flyteidl::event::{
    EventReason, TaskExecutionEvent, TaskExecutionMetadata, task_execution_event,
    task_execution_metadata::InstanceClass,
};
use prost::Message;
use tracing::Instrument;

use super::{ExecActor, NodePhase, Reattach, Timer, go_duration, ts};
use crate::backend::{AttemptKey, AttemptOutcome, AttemptPaths, AttemptUpdate, TaskAttempt};
use crate::layout;
use crate::metrics as m;

/// Inputs of an in-engine task larger than this go to `inputs.pb` all the same: they would
/// otherwise ride in an event and a database row (flyteadmin's inline limit for data is MBs;
/// an in-engine task's inputs are a duration or a few echoed values).
const INLINE_INPUTS_MAX_BYTES: usize = 16 * 1024;

impl ExecActor {
    pub(super) async fn start_task(&mut self, idx: usize) {
        let slot = self.uses_wf_slot(idx);
        if slot && !self.slot_free() {
            self.waiting_parallelism.push_back(idx);
            return;
        }
        let Some(inputs) = self.task_inputs(idx).await else {
            return;
        };
        if slot {
            self.take_slot(idx);
        }
        self.mark_queued(idx);
        self.node_event(idx, node_execution::Phase::Queued, None);
        if self.cache_lookup(idx, &inputs).await {
            return;
        }
        self.set_phase(idx, NodePhase::Running);
        self.node_event(idx, node_execution::Phase::Running, None);
        if self.nodes[idx].state.backend().is_none() {
            let template = self.nodes[idx].kind.task().cloned().unwrap_or_default();
            let tt = &template.r#type;
            // The same decision as at the node's start (`initial_state`), asked again for its
            // reason on this rare path rather than kept in every task node's state.
            let message = match crate::backend::choose(
                &self.shared.backends,
                &template,
                &self.req.plugin_overrides,
            ) {
                Err(ids) => format!(
                    "no task backend has the plugin ids {ids:?} that the PLUGIN_OVERRIDE attribute of this execution names for tasks of type [{tt}] (missing_plugin_behavior FAIL)"
                ),
                Ok(_) => format!("no task backend runs tasks of type [{tt}]"),
            };
            let err = self.exec_error(ErrorKind::User, "NoTaskBackend", message);
            self.release_slot(idx);
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return;
        }
        if self.needs_task_template(idx) {
            self.write_task_template(idx).await;
        }
        if let Some(d) = self.nodes[idx].active_deadline {
            self.arm_timer(d, super::Timer::ActiveDeadline { node: idx });
        }
        self.start_attempt(idx);
    }

    pub(super) async fn resume_task(&mut self, idx: usize) {
        if self.nodes[idx].state.child_scope().is_some()
            || !self.nodes[idx].rec.dynamic_closure_path.is_empty()
        {
            return self.resume_dynamic(idx).await;
        }
        // Inputs held in memory died with the last server: the upstream outputs they were
        // resolved from are stored, so they resolve to the same map again.
        if self.keeps_inputs_in_memory(idx) {
            let Some(inputs) = self.in_memory_inputs(idx).await else {
                return;
            };
            if let Some(t) = self.nodes[idx].state.task_mut() {
                t.inputs = Some(Arc::new(inputs));
                t.inputs_in_memory = true;
            }
        }
        if self.uses_wf_slot(idx) {
            self.take_slot(idx);
        }
        // Follow the attempt where it runs (or ran) rather than run it again.
        match self.reattach_attempt(idx).await {
            Reattach::Attached => {
                // Still running: its cache state comes back as before the restart (its own
                // cache_serialize reservation, extended while it runs; the put when it
                // ends), so a waiter keeps waiting for it.
                self.cache_resume(idx, false).await;
                return;
            }
            Reattach::NotStarted => {
                // Nothing ran: the same attempt number starts now.
                if !self.cache_resume(idx, true).await {
                    self.start_attempt(idx);
                }
                return;
            }
            Reattach::Lost => {}
        }
        // The backend keeps nothing across restarts: abort the attempt and run a new one,
        // charged to no budget.
        let old = self.attempt_key(idx);
        if let Some(b) = self.nodes[idx].state.backend() {
            self.to_abort.push((b, old));
        }
        self.task_event(
            idx,
            task_execution::Phase::Aborted,
            Some("engine restarted; attempt abandoned".into()),
            None,
        );
        self.nodes[idx].rec.attempt += 1;
        // Cached meanwhile: succeeded from the cache, nothing runs.
        if !self.cache_resume(idx, true).await {
            self.start_attempt(idx);
        }
    }

    pub(super) fn abort_task(&mut self, idx: usize, reason: &str) {
        // A dynamic node's task attempt already ended (SUCCEEDED): only its children abort.
        if self.nodes[idx].state.child_scope().is_some() {
            return;
        }
        if self.nodes[idx].rec.attempt_in_flight
            && let Some(b) = self.nodes[idx].state.backend()
        {
            self.to_abort.push((b, self.attempt_key(idx)));
        }
        self.task_event(
            idx,
            task_execution::Phase::Aborted,
            Some(reason.to_string()),
            None,
        );
        self.task_done(idx);
    }

    /// The execution deadline of attempt `attempt` passed: if it is still the current one, it
    /// is aborted and fails with a retryable user error.
    pub(super) fn on_exec_deadline(&mut self, idx: usize, attempt: u32) {
        let key = self.attempt_key(idx);
        if key.retry_attempt != attempt || !self.is_current(idx, &key) {
            return;
        }
        if let Some(b) = self.nodes[idx].state.backend() {
            self.to_abort.push((b, key));
        }
        let d = self.nodes[idx].state.exec_deadline().unwrap_or_default();
        let err = self.exec_error(
            ErrorKind::User,
            "TimeoutExpired",
            format!("task execution timeout [{}] expired", go_duration(d)),
        );
        self.attempt_failed(idx, err, true, Vec::new());
    }

    /// A task node's resolved inputs: kept in memory for an in-engine task (no `inputs.pb`:
    /// its backend reads none, its QUEUED event carries them), else written to `inputs.pb`
    /// for the process that reads it. On failure the node fails and `None` is returned.
    async fn task_inputs(&mut self, idx: usize) -> Option<Arc<LiteralMap>> {
        if !self.keeps_inputs_in_memory(idx) {
            return self.resolve_and_write_inputs(idx).await;
        }
        let inputs = self.in_memory_inputs(idx).await?;
        if inputs.encoded_len() > INLINE_INPUTS_MAX_BYTES {
            // Too big for an event and a database row: a blob, as for a process.
            return self.store_node_inputs(idx, inputs).await;
        }
        let inputs = Arc::new(inputs);
        if let Some(t) = self.nodes[idx].state.task_mut() {
            t.inputs = Some(inputs.clone());
            t.inputs_in_memory = true;
        }
        Some(inputs)
    }

    /// An in-engine task's inputs: its bindings resolved, or for a map item its element of
    /// the array's inputs. On failure the node fails.
    async fn in_memory_inputs(&mut self, idx: usize) -> Option<LiteralMap> {
        let Some((arr, i)) = self.nodes[idx]
            .array_ctx
            .filter(|&(arr, _)| self.nodes[idx].parent == Some(arr))
        else {
            return self.resolve_inputs(idx).await;
        };
        match self.array_index_inputs(arr, i).await {
            Ok(inputs) => Some(inputs),
            Err(e) => {
                let err = self.exec_error(ErrorKind::System, "BindingResolutionFailure", e);
                self.mark_queued(idx);
                self.node_terminal(idx, NodePhase::Failed, Some(err));
                None
            }
        }
    }

    /// Whether the node is a task whose backend takes its inputs in memory (an in-engine
    /// task), not a failure node (whose inputs carry the error). Of the tasks under an array
    /// node, only its items of an in-engine sub-task do: other sub-tasks read the array's
    /// inputs or their own `inputs.pb`.
    pub(super) fn keeps_inputs_in_memory(&self, idx: usize) -> bool {
        let n = &self.nodes[idx];
        let outside_or_item = match n.array_ctx {
            None => true,
            Some((arr, _)) => {
                n.parent == Some(arr)
                    && self.nodes[arr]
                        .kind
                        .array()
                        .is_some_and(|spec| spec.in_engine)
            }
        };
        outside_or_item
            && !n.is_failure_node
            && n.state
                .backend()
                .and_then(|b| self.shared.backends.get(b))
                .is_some_and(|b| !b.reads_attempt_files())
    }

    /// Lets go of a task's in-memory inputs once the node has ended.
    pub(super) fn drop_task_inputs(&mut self, idx: usize) {
        if let Some(t) = self.nodes[idx].state.task_mut() {
            t.inputs = None;
        }
    }

    // ------------------------------------------------------------ attempt updates

    pub(super) fn is_current(&self, idx: usize, key: &AttemptKey) -> bool {
        let n = &self.nodes[idx];
        matches!(n.phase(), NodePhase::Queued | NodePhase::Running)
            && n.rec.attempt == key.retry_attempt
            && n.state.runs_attempt()
            // The slot may hold another node since (a released map item's).
            && n.rec.node_id == key.node_id
    }

    pub(super) fn on_update(&mut self, key: AttemptKey, update: AttemptUpdate) {
        let Some(&idx) = self.by_unique.get(&key.node_id) else {
            return;
        };
        if !self.is_current(idx, &key) {
            tracing::debug!(node = %key.node_id, attempt = key.retry_attempt, "stale attempt update ignored");
            return;
        }
        match update {
            AttemptUpdate::Queued { reason } => {
                self.task_event(idx, task_execution::Phase::Queued, Some(reason), None);
            }
            AttemptUpdate::Running { logs } => {
                if let Some(t) = self.nodes[idx].state.task_mut() {
                    t.logs = logs;
                }
                self.task_event(idx, task_execution::Phase::Running, None, None);
            }
            AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs }) => {
                // Mark the attempt as no longer current for further updates.
                self.nodes[idx].rec.attempt_in_flight = false;
                self.completions.push_back((idx, logs));
            }
            AttemptUpdate::Finished(AttemptOutcome::Failed {
                error,
                retryable,
                logs,
            }) => {
                self.attempt_failed(idx, error, retryable, logs);
            }
            AttemptUpdate::Finished(AttemptOutcome::Aborted) => {
                let err = self.exec_error(
                    ErrorKind::System,
                    "Aborted",
                    "the task attempt was aborted by its backend",
                );
                self.attempt_failed(idx, err, true, Vec::new());
            }
        }
    }

    // ------------------------------------------------------------ attempts

    pub(super) fn needs_task_template(&self, idx: usize) -> bool {
        let Some(t) = self.nodes[idx].kind.task() else {
            return false;
        };
        let reads_files = self.nodes[idx]
            .state
            .backend()
            .and_then(|b| self.shared.backends.get(b))
            .is_none_or(|b| b.reads_attempt_files());
        if !reads_files {
            return false;
        }
        match &t.target {
            Some(flyteidl::core::task_template::Target::Container(c)) => c
                .args
                .iter()
                .chain(c.command.iter())
                .any(|a| a.to_ascii_lowercase().contains("tasktemplatepath")),
            _ => true,
        }
    }

    pub(super) async fn write_task_template(&mut self, idx: usize) {
        if let Some(t) = self.nodes[idx].kind.task() {
            let path = layout::task_template_file(&self.nodes[idx].data_dir);
            if let Err(e) = self
                .shared
                .put_blob(&path, Bytes::from(t.encode_to_vec()))
                .await
            {
                tracing::warn!(error = %e, "failed to write task.pb");
            }
        }
    }

    pub(super) fn attempt_key(&self, idx: usize) -> AttemptKey {
        AttemptKey {
            project: self.id.project.clone(),
            domain: self.id.domain.clone(),
            execution: self.id.name.clone(),
            node_id: self.nodes[idx].rec.node_id.clone(),
            retry_attempt: self.nodes[idx].rec.attempt,
        }
    }

    pub(super) fn raw_dir(&self, idx: usize, attempt: u32) -> String {
        let uid = layout::attempt_unique_id(&self.id.name, &self.nodes[idx].rec.node_id, attempt);
        layout::raw_output_dir(&self.raw_prefix, &uid)
    }

    /// After a restart: hands the node's current attempt back to its backend to follow
    /// (`Lost` when the backend cannot, or on a backend error).
    pub(super) async fn reattach_attempt(&mut self, idx: usize) -> Reattach {
        let (Some(b), Some(attempt)) = (self.nodes[idx].state.backend(), self.build_attempt(idx))
        else {
            return Reattach::Lost;
        };
        let backend = self.shared.backends[b].clone();
        let node_span = self.nodes[idx].span.clone();
        let found = backend
            .reattach(attempt, self.updates_tx.clone())
            .instrument(node_span)
            .await;
        match found {
            Ok(Reattach::Attached) => {
                tracing::info!(node = %self.nodes[idx].rec.node_id, attempt = self.nodes[idx].rec.attempt, "re-attached to a running attempt");
                if let Some(d) = self.nodes[idx].state.exec_deadline() {
                    let attempt = self.nodes[idx].rec.attempt;
                    let started = self.nodes[idx].rec.attempt_started_at_us;
                    self.arm_timer_at_us(started, d, Timer::ExecDeadline { node: idx, attempt });
                }
                Reattach::Attached
            }
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(node = %self.nodes[idx].rec.node_id, error = %e, "cannot re-attach; the attempt is run again");
                Reattach::Lost
            }
        }
    }

    /// Prepares the node's current attempt for start (after the batch commits).
    pub(super) fn start_attempt(&mut self, idx: usize) {
        let Some(task_attempt) = self.build_attempt(idx) else {
            return;
        };
        let attempt = task_attempt.key.retry_attempt;
        self.commit_attempt_start(idx, attempt, task_attempt);
    }

    /// What the backend is given for the node's current attempt.
    pub(super) fn build_attempt(&self, idx: usize) -> Option<TaskAttempt> {
        let template = self.nodes[idx].kind.task()?.clone();
        let attempt = self.nodes[idx].rec.attempt;
        let blob = &self.shared.blob;
        let n = &self.nodes[idx];
        if let Some(inputs) = n.state.task().and_then(|t| t.inputs.clone()) {
            // An in-engine task: no process, so none of the paths and environment a process
            // is given (~70,000 instructions an attempt); it writes its outputs only.
            return Some(TaskAttempt {
                key: self.attempt_key(idx),
                template,
                paths: AttemptPaths {
                    output_prefix: blob.native_url(&n.output_dir()),
                    inputs: String::new(),
                    input_prefix: String::new(),
                    raw_output_prefix: String::new(),
                    checkpoint_prefix: String::new(),
                    prev_checkpoint_prefix: None,
                    task_template: String::new(),
                },
                env: Default::default(),
                timeout: n.state.exec_deadline(),
                interruptible: n.rec.interruptible,
                array_index: None,
                inputs: Some(inputs),
                labels: Default::default(),
                annotations: Default::default(),
                service_account: String::new(),
            });
        }
        let raw = self.raw_dir(idx, attempt);
        // A map task's sub-task reads the array node's whole inputs and picks its index.
        let array_index = match n.array_ctx {
            Some((arr, i)) if n.parent == Some(arr) => Some((arr, i)),
            _ => None,
        };
        let input_node = match array_index {
            Some((arr, _)) if self.array_reads_whole_inputs(arr) => &self.nodes[arr],
            _ => n,
        };
        let paths = AttemptPaths {
            inputs: blob.native_url(&input_node.inputs_file()),
            input_prefix: blob.native_url(&input_node.data_dir),
            output_prefix: blob.native_url(&n.output_dir()),
            raw_output_prefix: raw.clone(),
            checkpoint_prefix: layout::checkpoint_dir(&raw),
            prev_checkpoint_prefix: if attempt > 0 {
                Some(layout::checkpoint_dir(&self.raw_dir(idx, attempt - 1)))
            } else {
                n.state.recovered_checkpoint().cloned()
            },
            task_template: blob.native_url(&layout::task_template_file(&n.data_dir)),
        };
        let mut env = self.shared.config.default_env.clone();
        if let Some(creds) = &self.shared.config.attempt_credentials {
            // Under the operator's task_env (an installation may give tasks other
            // credentials); the execution's own envs still win below.
            for (k, v) in creds.env(&self.attempt_key(idx), n.state.exec_deadline()) {
                env.entry(k).or_insert(v);
            }
        }
        let wf_name = self.scopes[0]
            .template
            .id
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or_default();
        env.insert(
            "FLYTE_INTERNAL_EXECUTION_WORKFLOW".into(),
            format!("{}:{}:{}", self.id.project, self.id.domain, wf_name),
        );
        env.insert("FLYTE_INTERNAL_EXECUTION_ID".into(), self.id.name.clone());
        env.insert(
            "FLYTE_INTERNAL_EXECUTION_PROJECT".into(),
            self.id.project.clone(),
        );
        env.insert(
            "FLYTE_INTERNAL_EXECUTION_DOMAIN".into(),
            self.id.domain.clone(),
        );
        env.insert("FLYTE_ATTEMPT_NUMBER".into(), attempt.to_string());
        if let Some(tid) = &template.id {
            env.insert("FLYTE_INTERNAL_TASK_PROJECT".into(), tid.project.clone());
            env.insert("FLYTE_INTERNAL_TASK_DOMAIN".into(), tid.domain.clone());
            env.insert("FLYTE_INTERNAL_TASK_NAME".into(), tid.name.clone());
            env.insert("FLYTE_INTERNAL_TASK_VERSION".into(), tid.version.clone());
        }
        if let Some(url) = &self.shared.config.console_url {
            env.insert(
                "FLYTE_EXECUTION_URL".into(),
                format!(
                    "{}/projects/{}/domains/{}/executions/{}",
                    url.trim_end_matches('/'),
                    self.id.project,
                    self.id.domain,
                    self.id.name
                ),
            );
        }
        for (k, v) in &self.req.envs {
            env.insert(k.clone(), v.clone());
        }
        if let Some((_, i)) = array_index {
            // As propeller's array execution context sets them (the backend sets them too).
            env.insert(
                "BATCH_JOB_ARRAY_INDEX_VAR_NAME".into(),
                "FLYTE_K8S_ARRAY_INDEX".into(),
            );
            env.insert("FLYTE_K8S_ARRAY_INDEX".into(), i.to_string());
        }
        Some(TaskAttempt {
            key: self.attempt_key(idx),
            template: template.clone(),
            paths,
            env,
            timeout: self.nodes[idx].state.exec_deadline(),
            interruptible: self.nodes[idx].rec.interruptible,
            array_index: array_index.map(|(_, i)| i),
            inputs: None,
            labels: self.req.labels.clone(),
            annotations: self.req.annotations.clone(),
            service_account: self.req.service_account.clone(),
        })
    }

    pub(super) fn commit_attempt_start(
        &mut self,
        idx: usize,
        attempt: u32,
        task_attempt: TaskAttempt,
    ) {
        let now = self.now_us();
        let n = &mut self.nodes[idx];
        n.rec.attempt_started_at_us = now;
        n.rec.attempt_in_flight = true;
        if let Some(t) = n.state.task_mut() {
            t.task_phase = -1;
            t.logs.clear();
        }
        self.dirty.insert(idx);
        self.task_event(
            idx,
            task_execution::Phase::Queued,
            Some("task submitted to backend".into()),
            None,
        );
        if let Some(d) = self.nodes[idx].state.exec_deadline() {
            self.arm_timer(d, Timer::ExecDeadline { node: idx, attempt });
        }
        self.to_start.push((idx, task_attempt));
    }

    // ---------------------------------------------------------------- attempt endings

    pub(super) async fn complete_attempt(&mut self, idx: usize, logs: Vec<TaskLog>) {
        if !matches!(
            self.nodes[idx].phase(),
            NodePhase::Queued | NodePhase::Running
        ) {
            return;
        }
        if !logs.is_empty()
            && let Some(t) = self.nodes[idx].state.task_mut()
        {
            // Backends may give the links once (RUNNING) only.
            t.logs = logs;
        }
        let out_dir = self.nodes[idx].output_dir();
        let out_file = layout::outputs_file(&out_dir);
        match self.shared.blob.get(&out_file).await {
            Ok(bytes) => match LiteralMap::decode(bytes.clone()) {
                Ok(map) => {
                    let map = Arc::new(map);
                    self.cache_outputs(idx, &map, bytes.len());
                    drop(bytes);
                    let uri = self.shared.blob.native_url(&out_file);
                    self.task_event(idx, task_execution::Phase::Succeeded, None, Some(uri));
                    self.task_done(idx);
                    self.cache_after_success(idx, &map).await;
                    self.node_succeeded(idx, out_file, None);
                    self.report_deck(idx, &out_dir).await;
                }
                Err(e) => {
                    let err = self.exec_error(
                        ErrorKind::System,
                        "OutputsNotValid",
                        format!("invalid outputs.pb: {e}"),
                    );
                    self.attempt_failed(idx, err, true, Vec::new());
                }
            },
            Err(flyte_blob::BlobError::NotFound(_)) => {
                let futures = layout::futures_file(&out_dir);
                if matches!(self.shared.blob.head(&futures).await, Ok(Some(_))) {
                    self.start_dynamic(idx, futures).await;
                    return;
                }
                let declares_outputs = self.nodes[idx]
                    .kind
                    .task()
                    .and_then(|t| t.interface.as_ref())
                    .and_then(|i| i.outputs.as_ref())
                    .is_some_and(|o| !o.variables.is_empty());
                if declares_outputs {
                    let err = self.exec_error(
                        ErrorKind::System,
                        "OutputsNotFound",
                        format!(
                            "Outputs not generated by task execution: no outputs.pb under {}",
                            self.shared.blob.native_url(&out_dir)
                        ),
                    );
                    self.attempt_failed(idx, err, true, Vec::new());
                } else {
                    self.task_event(idx, task_execution::Phase::Succeeded, None, None);
                    self.task_done(idx);
                    self.cache_after_success(idx, &LiteralMap::default()).await;
                    self.outputs.insert(idx, Arc::new(LiteralMap::default()));
                    self.node_succeeded(idx, String::new(), None);
                    self.report_deck(idx, &out_dir).await;
                }
            }
            Err(e) => {
                let err = self.exec_error(
                    ErrorKind::System,
                    "StorageError",
                    format!("failed to read outputs: {e}"),
                );
                self.attempt_failed(idx, err, true, Vec::new());
            }
        }
    }

    /// As propeller's task handler: the `deck.html` a task wrote into its output prefix
    /// (flytekit's `_output_deck`) is the node's `deck_uri`, given with its SUCCEEDED event.
    pub(super) async fn report_deck(&mut self, idx: usize, out_dir: &str) {
        let writes_decks = self.nodes[idx]
            .state
            .backend()
            .and_then(|b| self.shared.backends.get(b))
            .is_some_and(|b| b.writes_decks());
        if !writes_decks {
            return;
        }
        let deck = layout::join(out_dir, layout::DECK_FILE);
        if !matches!(self.shared.blob.head(&deck).await, Ok(Some(_))) {
            return;
        }
        let node_id = self.nodes[idx].rec.node_id.clone();
        let deck_uri = self.shared.blob.native_url(&deck);
        if let Some(ev) = self.batch.node_events.iter_mut().rev().find(|e| {
            e.phase == node_execution::Phase::Succeeded as i32
                && e.id.as_ref().is_some_and(|id| id.node_id == node_id)
        }) {
            ev.deck_uri = deck_uri;
        }
    }

    /// A task node left the running set (frees a parallelism slot).
    pub(super) fn task_done(&mut self, idx: usize) {
        self.nodes[idx].rec.attempt_in_flight = false;
        self.release_slot(idx);
    }

    pub(super) fn attempt_failed(
        &mut self,
        idx: usize,
        mut error: ExecutionError,
        retryable: bool,
        logs: Vec<TaskLog>,
    ) {
        if !logs.is_empty()
            && let Some(t) = self.nodes[idx].state.task_mut()
        {
            t.logs = logs;
        }
        if error.timestamp.is_none() {
            error.timestamp = Some(ts(self.now_us()));
        }
        self.task_event_err(idx, error.clone());
        let cfg = &self.shared.config;
        let system = error.kind == ErrorKind::System as i32;
        let max_attempts = self.max_attempts(idx);
        let n = &mut self.nodes[idx];
        n.rec.attempt_in_flight = false;
        if !retryable {
            if system {
                n.rec.system_failures += 1;
            }
            self.dirty.insert(idx);
            self.task_done(idx);
            self.node_terminal(idx, NodePhase::Failed, Some(error));
            return;
        }
        let (current, max, eligible) = if cfg.ignore_retry_cause {
            let cur = n.rec.attempt + 1;
            (cur, max_attempts, cur < max_attempts)
        } else if system {
            let cur = n.rec.system_failures;
            n.rec.system_failures += 1;
            (cur, cfg.max_system_retries, cur < cfg.max_system_retries)
        } else {
            n.rec.user_failures += 1;
            let cur = n.rec.user_failures;
            (cur, max_attempts, cur < max_attempts)
        };
        self.dirty.insert(idx);
        if eligible {
            metrics::counter!(m::ATTEMPTS_RETRIED, "kind" => if system { "system" } else { "user" }).increment(1);
            self.nodes[idx].rec.attempt += 1;
            self.start_attempt(idx);
            return;
        }
        self.task_done(idx);
        self.node_terminal(
            idx,
            NodePhase::Failed,
            Some(retries_exhausted(error, current, max)),
        );
    }

    // ------------------------------------------------------------ task events

    pub(super) fn task_event(
        &mut self,
        idx: usize,
        phase: task_execution::Phase,
        reason: Option<String>,
        output_uri: Option<String>,
    ) {
        self.push_task_event(
            idx,
            phase,
            reason,
            output_uri.map(task_execution_event::OutputResult::OutputUri),
        );
    }

    pub(super) fn task_event_err(&mut self, idx: usize, error: ExecutionError) {
        self.push_task_event(
            idx,
            task_execution::Phase::Failed,
            None,
            Some(task_execution_event::OutputResult::Error(error)),
        );
    }

    #[allow(deprecated)]
    pub(super) fn push_task_event(
        &mut self,
        idx: usize,
        phase: task_execution::Phase,
        reason: Option<String>,
        output_result: Option<task_execution_event::OutputResult>,
    ) {
        let attempt = self.nodes[idx].rec.attempt;
        let generated =
            layout::attempt_unique_id(&self.id.name, &self.nodes[idx].rec.node_id, attempt);
        let now = ts(self.now_us());
        let n = &mut self.nodes[idx];
        let (Some(t), Some(st)) = (n.kind.task(), n.state.task_mut()) else {
            return;
        };
        if st.task_phase == phase as i32 {
            n.rec.task_phase_version += 1;
        } else {
            st.task_phase = phase as i32;
            n.rec.task_phase_version = 0;
        }
        if let Some((arr, i)) = n.array_ctx {
            self.dirty.insert(idx);
            self.array_sub_task_event(arr, i, idx, phase);
            return;
        }
        let reasons = reason
            .iter()
            .map(|r| EventReason {
                reason: r.clone(),
                occurred_at: Some(now),
            })
            .collect();
        let plugin = st
            .backend
            .map(|b| self.shared.backends[b].name().to_string())
            .unwrap_or_default();
        let ev = TaskExecutionEvent {
            task_id: t.id.clone(),
            parent_node_execution_id: Some(NodeExecutionIdentifier {
                node_id: n.rec.node_id.clone(),
                execution_id: Some(self.id.clone()),
            }),
            retry_attempt: attempt,
            phase: phase as i32,
            producer_id: self.shared.config.producer_id.clone(),
            logs: st.logs.clone(),
            occurred_at: Some(now),
            phase_version: n.rec.task_phase_version,
            reason: reason.unwrap_or_default(),
            reasons,
            task_type: t.r#type.clone(),
            metadata: Some(TaskExecutionMetadata {
                generated_name: generated,
                plugin_identifier: plugin,
                instance_class: if n.rec.interruptible {
                    InstanceClass::Interruptible as i32
                } else {
                    InstanceClass::Default as i32
                },
                ..Default::default()
            }),
            event_version: 1,
            reported_at: Some(now),
            // In-memory inputs: the admin gives the node's (task data reads them there).
            input_value: (!st.inputs_in_memory).then(|| {
                task_execution_event::InputValue::InputUri(
                    self.shared
                        .blob
                        .native_url(&layout::inputs_file(&n.data_dir)),
                )
            }),
            output_result,
            ..Default::default()
        };
        self.dirty.insert(idx);
        self.batch.task_events.push(ev);
    }
}

/// The error of a node whose retries are used up, worded as propeller words it.
pub(super) fn retries_exhausted(error: ExecutionError, current: u32, max: u32) -> ExecutionError {
    let kind_name = ErrorKind::try_from(error.kind)
        .map(|k| k.as_str_name())
        .unwrap_or("UNKNOWN");
    ExecutionError {
        code: format!("RetriesExhausted|{}", error.code),
        message: format!(
            "[{current}/{max}] currentAttempt done. Last Error: {kind_name}::{}",
            error.message
        ),
        kind: ErrorKind::User as i32,
        ..error
    }
}
