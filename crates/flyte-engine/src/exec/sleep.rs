//! Sleep nodes (`gate_node::Condition::Sleep`): running for a fixed time, by the engine's
//! timers, so a restart waits only what is left.

use std::time::Duration;

use flyteidl::core::node_execution;

use super::{ExecActor, NodePhase, Timer};

impl ExecActor {
    pub(super) async fn start_sleep(&mut self, idx: usize, d: Duration) {
        if self.resolve_and_write_inputs(idx).await.is_none() {
            return;
        }
        self.mark_queued(idx);
        self.node_event(idx, node_execution::Phase::Queued, None);
        self.set_phase(idx, NodePhase::Running);
        self.node_event(idx, node_execution::Phase::Running, None);
        self.arm_timer(d, Timer::Sleep { node: idx });
    }

    pub(super) fn resume_sleep(&mut self, idx: usize, d: Duration) {
        let started = self.nodes[idx].rec.started_at_us;
        self.arm_timer_at_us(started, d, Timer::Sleep { node: idx });
    }

    /// The sleep's timer fired.
    pub(super) fn on_slept(&mut self, idx: usize) {
        if self.nodes[idx].phase() == NodePhase::Running {
            self.node_succeeded(idx, String::new(), None);
        }
    }
}
