//! Task nodes: an attempt on a task backend, with retries, the per-attempt execution
//! deadline and the output cache. A task whose attempt leaves a dynamic workflow becomes a
//! dynamic node (`dynamic`).

use flyteidl::core::{execution_error::ErrorKind, node_execution, task_execution};

use super::{ExecActor, NodePhase, Reattach, go_duration};

impl ExecActor {
    pub(super) async fn start_task(&mut self, idx: usize) {
        let slot = self.uses_wf_slot(idx);
        if slot && !self.slot_free() {
            self.waiting_parallelism.push_back(idx);
            return;
        }
        let Some(inputs) = self.resolve_and_write_inputs(idx).await else {
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
            let tt = self.nodes[idx]
                .kind
                .task()
                .map(|t| t.r#type.clone())
                .unwrap_or_default();
            let err = self.exec_error(
                ErrorKind::User,
                "NoTaskBackend",
                format!("no task backend runs tasks of type [{tt}]"),
            );
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
}
