//! Subworkflow nodes: a child scope of the same execution, run by the actor like the
//! top-level one (its failure node included, see `create_sub_failure_node`).

use std::sync::Arc;

use flyteidl::core::{CompiledWorkflow, node_execution};

use super::{ExecActor, NodePhase};

impl ExecActor {
    pub(super) async fn start_subworkflow(&mut self, idx: usize, wf: Arc<CompiledWorkflow>) {
        let Some(inputs) = self.resolve_and_write_inputs(idx).await else {
            return;
        };
        self.mark_queued(idx);
        self.node_event(idx, node_execution::Phase::Queued, None);
        self.set_phase(idx, NodePhase::Running);
        self.node_event(idx, node_execution::Phase::Running, None);
        let s = self.open_subworkflow(idx, wf, Some(inputs));
        let start = self.scopes[s].start;
        self.make_ready(start);
    }
}
