//! Nodes that wait on the world outside the execution (propeller `nodes/gate` and
//! `nodes/subworkflow/launchplan`), through the admin's services ([`crate::external`]):
//!
//! * Gate nodes `approve` and `wait_for_input`: the signal is created (GetOrCreateSignal) when
//!   the node starts and read again whenever the admin reports it set
//!   ([`crate::Engine::signal_set`]), after a restart, and on a long backstop timer. An
//!   approval of `true` copies the node's inputs to its outputs, `false` fails it with USER
//!   `ReceivedRejectSignal`; a signal's value becomes output `output_variable_name`. The
//!   node's timeout (its active deadline) fails it.
//! * Launch-plan nodes: a child execution named [`child_execution_id`] (recorded in the
//!   node's journal record before it is created, so a restart finds the same child) is
//!   created after the batch that starts the node commits; the child wakes the node when it
//!   ends; its outputs become the node's, its failure the node's. Aborting the node aborts
//!   the child.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flyteidl::core::{
    ExecutionError, Identifier, Literal, LiteralMap, LiteralType, Primitive,
    WorkflowExecutionIdentifier, execution_error::ErrorKind, gate_node, literal_type,
    node_execution, primitive, scalar,
};
use prost::Message;

use super::{ExecActor, NodePhase, Timer};
use crate::external::{ChildLaunch, ExternalError, child_execution_id};
use crate::layout;
use crate::request::ExecKey;

/// How long a waiting gate or launch-plan node sleeps before it looks again without being
/// woken (a backstop: wakes come from SetSignal and from the child's end).
pub(super) const BACKSTOP: Duration = Duration::from_secs(60);
/// Retry delay after the admin could not answer.
const RETRY: Duration = Duration::from_secs(5);

/// A gate node that waits for a signal.
pub(crate) enum GateSpec {
    Approve {
        signal_id: String,
    },
    Signal {
        signal_id: String,
        ty: Box<LiteralType>,
        output: String,
    },
}

impl GateSpec {
    pub(super) fn of(c: &gate_node::Condition) -> Option<Self> {
        match c {
            gate_node::Condition::Approve(a) => Some(Self::Approve {
                signal_id: a.signal_id.clone(),
            }),
            gate_node::Condition::Signal(s) => Some(Self::Signal {
                signal_id: s.signal_id.clone(),
                ty: Box::new(s.r#type.clone().unwrap_or_default()),
                output: s.output_variable_name.clone(),
            }),
            gate_node::Condition::Sleep(_) => None,
        }
    }

    pub(super) fn signal_id(&self) -> &str {
        match self {
            Self::Approve { signal_id } | Self::Signal { signal_id, .. } => signal_id,
        }
    }
}

/// Results of the admin calls the actor makes off its own task.
pub(crate) enum ExtMsg {
    ChildCreated {
        node: String,
        attempt: u32,
        result: Result<WorkflowExecutionIdentifier, ExternalError>,
    },
}

fn boolean_of(l: &Literal) -> Option<bool> {
    match &l.value {
        Some(flyteidl::core::literal::Value::Scalar(s)) => match &s.value {
            Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Boolean(b)),
            })) => Some(*b),
            _ => None,
        },
        _ => None,
    }
}

fn boolean_type() -> LiteralType {
    LiteralType {
        r#type: Some(literal_type::Type::Simple(
            flyteidl::core::SimpleType::Boolean as i32,
        )),
        ..Default::default()
    }
}

impl ExecActor {
    fn external_error(&self, e: &ExternalError, code: &str) -> ExecutionError {
        let kind = if e.is_retryable() {
            ErrorKind::System
        } else {
            ErrorKind::User
        };
        self.exec_error(kind, code, e.to_string())
    }

    fn running(&self, idx: usize) -> bool {
        matches!(
            self.nodes[idx].phase(),
            NodePhase::Queued | NodePhase::Running
        )
    }

    /// Arms the backstop timer of a waiting node once.
    fn arm_poll(&mut self, idx: usize, after: Duration, t: Timer) {
        if !self.nodes[idx].state.poll_armed() {
            let n = &mut self.nodes[idx];
            n.state.set_poll_armed(&n.kind, true);
            self.arm_timer(after, t);
        }
    }

    // ------------------------------------------------------------ gates

    pub(super) async fn start_gate(&mut self, idx: usize) {
        if self.resolve_and_write_inputs(idx).await.is_none() {
            return;
        }
        self.mark_queued(idx);
        self.node_event(idx, node_execution::Phase::Queued, None);
        self.set_phase(idx, NodePhase::Running);
        self.node_event(idx, node_execution::Phase::Running, None);
        if let Some(d) = self.nodes[idx].active_deadline {
            self.arm_timer(d, Timer::ActiveDeadline { node: idx });
        }
        self.gate_checks.push_back(idx);
    }

    /// A resumed gate reads its signal again: it may have been set while the engine was
    /// down.
    pub(super) fn resume_gate(&mut self, idx: usize) {
        if self.nodes[idx].phase() == NodePhase::Running {
            self.gate_checks.push_back(idx);
        }
    }

    /// Signal `signal_id` was set: the running gates waiting for it look now.
    pub(super) fn on_signal_set(&mut self, signal_id: &str) {
        for idx in 0..self.nodes.len() {
            if let Some(g) = self.nodes[idx].kind.gate()
                && g.signal_id() == signal_id
                && self.nodes[idx].phase() == NodePhase::Running
            {
                self.gate_checks.push_back(idx);
            }
        }
    }

    /// Reads the gate's signal (creating it) and ends the node if it is set.
    pub(super) async fn check_gate(&mut self, idx: usize) {
        if self.nodes[idx].phase() != NodePhase::Running {
            return;
        }
        let Some(gate) = self.nodes[idx].kind.gate().cloned() else {
            return;
        };
        let ext = self.shared.external.clone();
        let ty = match gate.as_ref() {
            GateSpec::Approve { .. } => boolean_type(),
            GateSpec::Signal { ty, .. } => (**ty).clone(),
        };
        let value = match ext
            .signals
            .get_or_create(&self.id, gate.signal_id(), &ty)
            .await
        {
            Ok(v) => v,
            Err(e) if e.is_retryable() => {
                tracing::warn!(node = %self.nodes[idx].rec.node_id, error = %e, "signal service unavailable; retrying");
                self.arm_timer(RETRY, Timer::GatePoll { node: idx });
                return;
            }
            Err(e) => {
                let err = self.external_error(&e, "SignalLookupFailed");
                self.node_terminal(idx, NodePhase::Failed, Some(err));
                return;
            }
        };
        let Some(value) = value else {
            self.arm_poll(idx, BACKSTOP, Timer::GatePoll { node: idx });
            return;
        };
        let outputs = match gate.as_ref() {
            GateSpec::Approve { .. } => match boolean_of(&value) {
                None => {
                    let err = self.exec_error(
                        ErrorKind::Unknown,
                        "RuntimeExecutionError",
                        format!("received a non-boolean approve signal value [{value:?}]"),
                    );
                    self.node_terminal(idx, NodePhase::Failed, Some(err));
                    return;
                }
                Some(false) => {
                    let err = self.exec_error(
                        ErrorKind::User,
                        "ReceivedRejectSignal",
                        "received a reject signal to disapprove the node input values",
                    );
                    self.node_terminal(idx, NodePhase::Failed, Some(err));
                    return;
                }
                Some(true) => {
                    let path = self.nodes[idx].inputs_file();
                    match self.shared.blob.get(&path).await.map(LiteralMap::decode) {
                        Ok(Ok(m)) => m,
                        other => {
                            let msg = match other {
                                Ok(Err(e)) => e.to_string(),
                                Err(e) => e.to_string(),
                                Ok(Ok(_)) => unreachable!(),
                            };
                            let err = self.exec_error(
                                ErrorKind::System,
                                "RuntimeExecutionError",
                                format!("failed to read input with error [{msg}]"),
                            );
                            self.node_terminal(idx, NodePhase::Failed, Some(err));
                            return;
                        }
                    }
                }
            },
            GateSpec::Signal { output, .. } => LiteralMap {
                literals: [(output.clone(), value)].into(),
            },
        };
        self.write_outputs_and_succeed(idx, outputs).await;
    }

    /// Writes `outputs.pb` of the node's current attempt and ends it SUCCEEDED.
    pub(super) async fn write_outputs_and_succeed(&mut self, idx: usize, outputs: LiteralMap) {
        let path = layout::outputs_file(&self.nodes[idx].output_dir());
        if let Err(e) = self
            .shared
            .put_blob(&path, Bytes::from(outputs.encode_to_vec()))
            .await
        {
            let err = self.exec_error(
                ErrorKind::System,
                "WriteOutputsFailed",
                format!("failed to write outputs to [{path}] with error: {e}"),
            );
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return;
        }
        self.node_succeeded(idx, path, Some(Arc::new(outputs)));
    }

    // ------------------------------------------------------------ launch plans

    pub(super) async fn start_launch_plan(&mut self, idx: usize, lp: Arc<Identifier>) {
        let Some(inputs) = self.resolve_and_write_inputs(idx).await else {
            return;
        };
        self.mark_queued(idx);
        self.node_event(idx, node_execution::Phase::Queued, None);
        let child = child_execution_id(&self.node_exec_id(idx), self.nodes[idx].rec.attempt);
        self.nodes[idx].rec.child_execution = Some(child.clone());
        self.set_phase(idx, NodePhase::Running);
        self.node_event(idx, node_execution::Phase::Running, None);
        if let Some(d) = self.nodes[idx].active_deadline {
            self.arm_timer(d, Timer::ActiveDeadline { node: idx });
        }
        let launch = self.child_launch(idx, &lp, (*inputs).clone());
        self.watch_child(idx, &child);
        self.to_launch.push(launch);
    }

    fn child_launch(&self, idx: usize, lp: &Identifier, inputs: LiteralMap) -> ChildLaunch {
        let r = &self.req;
        ChildLaunch {
            parent: self.node_exec_id(idx),
            attempt: self.nodes[idx].rec.attempt,
            launch_plan: lp.clone(),
            inputs,
            principal: r.principal.clone(),
            envs: r.envs.clone(),
            labels: r.labels.clone(),
            annotations: r.annotations.clone(),
            max_parallelism: r.max_parallelism,
            interruptible: r.interruptible,
            overwrite_cache: r.overwrite_cache,
            raw_output_data_prefix: r.raw_output_data_prefix.clone(),
            service_account: r.service_account.clone(),
            recover_from: self.nodes[idx].state.recovered_child().cloned(),
        }
    }

    /// Registers the child so its end wakes this node.
    fn watch_child(&mut self, idx: usize, child: &WorkflowExecutionIdentifier) {
        self.shared.children.lock().unwrap().insert(
            ExecKey::of(child),
            (ExecKey::of(&self.id), self.nodes[idx].rec.node_id.clone()),
        );
    }

    /// After a restart: the child may not have been created before the crash (creating is
    /// idempotent), may have ended while we were down, or still runs.
    pub(super) async fn resume_launch_plan(&mut self, idx: usize) {
        if let Some(d) = self.nodes[idx].active_deadline {
            let queued = self.nodes[idx].rec.queued_at_us;
            self.arm_timer_at_us(queued, d, Timer::ActiveDeadline { node: idx });
        }
        self.launch_child_again(idx).await;
    }

    async fn launch_child_again(&mut self, idx: usize) {
        let Some(lp) = self.nodes[idx].kind.launch_plan().cloned() else {
            return;
        };
        let child = match self.nodes[idx].rec.child_execution.clone() {
            Some(c) => c,
            None => {
                // Started but the child's name never committed: start the child now.
                let c = child_execution_id(&self.node_exec_id(idx), self.nodes[idx].rec.attempt);
                self.nodes[idx].rec.child_execution = Some(c.clone());
                self.dirty.insert(idx);
                c
            }
        };
        self.watch_child(idx, &child);
        let inputs = match self
            .shared
            .blob
            .get(&self.nodes[idx].inputs_file())
            .await
            .map(LiteralMap::decode)
        {
            Ok(Ok(m)) => m,
            _ => LiteralMap::default(),
        };
        let launch = self.child_launch(idx, &lp, inputs);
        self.to_launch.push(launch);
    }

    pub(super) fn on_ext(&mut self, msg: ExtMsg) {
        match msg {
            ExtMsg::ChildCreated {
                node,
                attempt,
                result,
            } => {
                let Some(&idx) = self.by_unique.get(&node) else {
                    return;
                };
                if !self.running(idx) || self.nodes[idx].rec.attempt != attempt {
                    return;
                }
                match result {
                    Ok(_) => self.child_checks.push_back(idx),
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(node = %node, error = %e, "cannot create the child execution; retrying");
                        self.arm_timer(RETRY, Timer::ChildLaunch { node: idx });
                    }
                    Err(e) => {
                        let err = self.external_error(&e, "RemoteChildWorkflowExecutionFailed");
                        self.node_terminal(idx, NodePhase::Failed, Some(err));
                    }
                }
            }
        }
    }

    /// Re-issues the creation of a node's child (after the admin could not answer).
    pub(super) async fn relaunch_child(&mut self, idx: usize) {
        if self.running(idx) && self.nodes[idx].kind.launch_plan().is_some() {
            self.launch_child_again(idx).await;
        }
    }

    /// A child execution ended (or may have): reads its status and ends the node with it.
    pub(super) fn on_child_ended(&mut self, node: &str) {
        if let Some(&idx) = self.by_unique.get(node) {
            self.child_checks.push_back(idx);
        }
    }

    pub(super) async fn check_child(&mut self, idx: usize) {
        if !self.running(idx) {
            return;
        }
        let Some(child) = self.nodes[idx].rec.child_execution.clone() else {
            return;
        };
        let ext = self.shared.external.clone();
        let status = match ext.children.status(&child).await {
            Ok(s) => s,
            // Not created yet: its creation reports back.
            Err(ExternalError::NotFound(_)) => return,
            Err(e) => {
                tracing::warn!(child = %child.name, error = %e, "cannot read the child execution");
                self.arm_poll(idx, RETRY, Timer::ChildPoll { node: idx });
                return;
            }
        };
        if !status.terminal {
            self.arm_poll(idx, BACKSTOP, Timer::ChildPoll { node: idx });
            return;
        }
        use flyteidl::core::workflow_execution::Phase as P;
        if status.phase == P::Succeeded as i32 {
            self.write_outputs_and_succeed(idx, status.outputs.unwrap_or_default())
                .await;
            return;
        }
        let message = if status.phase == P::Aborted as i32 {
            "launchplan execution aborted".to_string()
        } else {
            match &status.error {
                Some(e) => format!(" errorCode[{}]: {}", e.code, e.message),
                None => "launchplan execution failed without explicit error".to_string(),
            }
        };
        let err = self.exec_error(
            ErrorKind::User,
            "RemoteChildWorkflowExecutionFailed",
            message,
        );
        self.node_terminal(idx, NodePhase::Failed, Some(err));
    }

    /// The node is aborted (or its workflow fails): so is its child.
    pub(super) fn abort_child(&mut self, idx: usize, reason: &str) {
        if let Some(child) = self.nodes[idx].rec.child_execution.clone() {
            self.to_abort_children.push((child, reason.to_string()));
        }
    }

    /// Acts on committed launch-plan decisions: creates and aborts children off the actor.
    pub(super) fn act_children(
        &mut self,
        launches: Vec<ChildLaunch>,
        aborts: Vec<(WorkflowExecutionIdentifier, String)>,
    ) {
        let ext = self.shared.external.clone();
        for launch in launches {
            let children = ext.children.clone();
            let tx = self.ext_tx.clone();
            let node = launch.parent.node_id.clone();
            let attempt = launch.attempt;
            tokio::spawn(async move {
                let result = children.create_child(launch).await;
                let _ = tx.send(ExtMsg::ChildCreated {
                    node,
                    attempt,
                    result,
                });
            });
        }
        for (child, reason) in aborts {
            let children = ext.children.clone();
            self.shared
                .children
                .lock()
                .unwrap()
                .remove(&ExecKey::of(&child));
            tokio::spawn(async move {
                if let Err(e) = children.abort(&child, &reason).await {
                    tracing::warn!(child = %child.name, error = %e, "cannot abort the child execution");
                }
            });
        }
    }
}
