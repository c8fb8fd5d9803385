//! RecoverExecution (propeller `nodes/executor.go` `attemptRecovery`, the dynamic handler's
//! and the launch-plan handler's recovery paths): before a node of a recovering execution
//! runs, what the same node (same unique id) did in the original is looked up
//! ([`crate::external::RecoveryLookup`]):
//!
//! * succeeded there: its inputs and outputs are written to this node's own locations, it
//!   reports QUEUED then RECOVERED with the original's metadata, and nothing under it runs;
//! * a dynamic node whose task finished: the original's `futures.pb` is copied to this node's
//!   output location and the node continues as if its task had just finished — its sub-nodes
//!   keep their unique ids and are recovered one by one;
//! * a task with a checkpoint: the checkpoint is the first attempt's previous checkpoint;
//! * a launch-plan node: its child is created by recovering the original's child.
//!
//! Array sub-nodes send no node events, so the original holds no record of them: an index
//! whose sub-node left an `outputs.pb` under the original's data directory (same layout, same
//! ids) is recovered from it, the others run.

use std::sync::Arc;

use bytes::Bytes;
use flyteidl::core::{LiteralMap, WorkflowExecutionIdentifier, node_execution, task_execution};
use flyteidl::event::{DynamicWorkflowNodeMetadata, TaskNodeMetadata, node_execution_event};
use prost::Message;

use super::{Done, ExecActor, Kind, NodePhase, Timer};
use crate::external::{RecoveredNode, RecoveredOutputs};
use crate::layout;
use crate::metrics as m;

impl ExecActor {
    /// Looks the node up in the original execution; true if it was dealt with (recovered, or
    /// resumed from the original's dynamic spec, or failed on the way).
    pub(super) async fn try_recover(&mut self, idx: usize) -> bool {
        if matches!(
            self.nodes[idx].kind,
            Kind::Start | Kind::End | Kind::Unsupported(_)
        ) || self.nodes[idx].is_failure_node
        {
            return false;
        }
        let Some(original) = self.req.recover_from.clone() else {
            return false;
        };
        if let Some((arr, i)) = self.nodes[idx].array_ctx {
            if self.nodes[idx].parent == Some(arr) {
                return self.recover_array_sub(idx, arr, i, &original).await;
            }
            return false;
        }
        let ext = self.shared.external.clone();
        let uid = self.nodes[idx].rec.node_id.clone();
        let found = match ext.recovery.recover_node(&original, &uid).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(node = %uid, error = %e, "recovery lookup failed; running the node");
                return false;
            }
        };
        match found {
            None => false,
            Some(RecoveredNode::Succeeded(o)) => {
                self.recovered(idx, *o).await;
                true
            }
            Some(RecoveredNode::Partial {
                dynamic_job_spec_uri,
                checkpoint_uri,
                inputs: _,
                launched_execution,
            }) => {
                if let Some(c) = checkpoint_uri {
                    self.nodes[idx].state.set_recovered_checkpoint(c);
                }
                if let Some(e) = launched_execution {
                    self.nodes[idx].state.set_recovered_child(e);
                }
                match dynamic_job_spec_uri {
                    Some(uri) if self.nodes[idx].kind.task().is_some() => {
                        self.recover_dynamic(idx, &uri).await
                    }
                    _ => false,
                }
            }
        }
    }

    /// The node succeeded in the original: RECOVERED with its outputs.
    async fn recovered(&mut self, idx: usize, o: RecoveredOutputs) {
        let inputs = o.inputs.clone().unwrap_or_default();
        let out = layout::outputs_file(&self.nodes[idx].output_dir());
        let written = async {
            self.shared
                .put_blob(
                    &self.nodes[idx].inputs_file(),
                    Bytes::from(inputs.encode_to_vec()),
                )
                .await?;
            self.shared
                .put_blob(&out, Bytes::from(o.outputs.encode_to_vec()))
                .await
        }
        .await;
        self.mark_queued(idx);
        self.node_event(idx, node_execution::Phase::Queued, None);
        if let Err(e) = written {
            let err = self.exec_error(
                flyteidl::core::execution_error::ErrorKind::System,
                "StorageError",
                format!("failed to store the recovered node's data: {e}"),
            );
            self.node_terminal(idx, NodePhase::Failed, Some(err));
            return;
        }
        let outputs = Arc::new(o.outputs.clone());
        self.outputs.insert(idx, outputs.clone());
        self.nodes[idx].rec.output_path = out.clone();
        self.nodes[idx].rec.error = None;
        if let Some(e) = &o.launched_execution {
            self.nodes[idx].rec.child_execution = Some(e.clone());
        }
        self.set_phase(idx, NodePhase::Succeeded);
        let before = self.batch.node_events.len();
        self.node_event(idx, node_execution::Phase::Recovered, None);
        if self.batch.node_events.len() > before
            && let Some(ev) = self.batch.node_events.last_mut()
        {
            ev.output_result = Some(if self.shared.config.inline_outputs {
                node_execution_event::OutputResult::OutputData((*outputs).clone())
            } else {
                node_execution_event::OutputResult::OutputUri(self.shared.blob.native_url(&out))
            });
            ev.is_dynamic = o.is_dynamic;
            ev.is_array = o.is_array;
            ev.is_parent = o.is_parent_node;
            ev.deck_uri = o.deck_uri.clone().unwrap_or_default();
            let dynamic_workflow = o.dynamic_workflow.map(|d| DynamicWorkflowNodeMetadata {
                id: d.id,
                compiled_workflow: d.compiled_workflow,
                dynamic_job_spec_uri: d.dynamic_job_spec_uri,
            });
            ev.target_metadata = if let Some(e) = o.launched_execution {
                Some(node_execution_event::TargetMetadata::WorkflowNodeMetadata(
                    flyteidl::event::WorkflowNodeMetadata {
                        execution_id: Some(e),
                    },
                ))
            } else if o.task_node_metadata.is_some() || dynamic_workflow.is_some() {
                let t = o.task_node_metadata.unwrap_or_default();
                Some(node_execution_event::TargetMetadata::TaskNodeMetadata(
                    TaskNodeMetadata {
                        cache_status: t.cache_status,
                        catalog_key: t.catalog_key,
                        checkpoint_uri: t.checkpoint_uri,
                        dynamic_workflow: dynamic_workflow.map(Box::new),
                        ..Default::default()
                    },
                ))
            } else {
                None
            };
        }
        m::node_phase("RECOVERED", self.nodes[idx].kind.label());
        self.done_queue.push_back(Done::Node(idx, Ok(())));
    }

    /// The original's dynamic task finished: continue from its spec instead of running it.
    async fn recover_dynamic(&mut self, idx: usize, uri: &str) -> bool {
        let Some(src) = self.shared.blob.path_from_native_url(uri) else {
            tracing::warn!(uri, "the original's futures file is not in this blob store");
            return false;
        };
        let bytes = match self.shared.blob.get(&src).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(uri, error = %e, "cannot read the original's futures file; running the task");
                return false;
            }
        };
        if self.resolve_and_write_inputs(idx).await.is_none() {
            return true;
        }
        let futures = layout::futures_file(&self.nodes[idx].output_dir());
        if let Err(e) = self.shared.put_blob(&futures, bytes).await {
            tracing::warn!(error = %e, "cannot copy the original's futures file; running the task");
            return false;
        }
        self.mark_queued(idx);
        self.node_event(idx, node_execution::Phase::Queued, None);
        self.set_phase(idx, NodePhase::Running);
        self.node_event(idx, node_execution::Phase::Running, None);
        if let Some(d) = self.nodes[idx].active_deadline {
            self.arm_timer(d, Timer::ActiveDeadline { node: idx });
        }
        self.start_dynamic(idx, futures).await;
        true
    }

    /// Index `i` of array `arr`: recovered if its sub-node left outputs in the original.
    async fn recover_array_sub(
        &mut self,
        idx: usize,
        arr: usize,
        i: u32,
        original: &WorkflowExecutionIdentifier,
    ) -> bool {
        let cfg = &self.shared.config;
        let orig_exec = layout::execution_dir(
            &cfg.metadata_prefix,
            &original.project,
            &original.domain,
            &original.name,
        );
        let Some(rest) = self.nodes[idx].data_dir.strip_prefix(&self.exec_dir) else {
            return false;
        };
        let orig_dir = format!("{orig_exec}{rest}");
        let attempts = self.max_attempts(idx) + cfg.max_system_retries + 1;
        let mut found = None;
        for k in (0..attempts).rev() {
            let f = layout::outputs_file(&layout::output_dir(&orig_dir, k));
            if let Ok(b) = self.shared.blob.get(&f).await
                && let Ok(m) = LiteralMap::decode(b)
            {
                found = Some(m);
                break;
            }
        }
        let Some(outputs) = found else {
            return false;
        };
        let out = layout::outputs_file(&self.nodes[idx].output_dir());
        if self
            .shared
            .put_blob(&out, Bytes::from(outputs.encode_to_vec()))
            .await
            .is_err()
        {
            return false;
        }
        self.mark_queued(idx);
        self.outputs.insert(idx, Arc::new(outputs));
        self.nodes[idx].rec.output_path = out;
        self.set_phase(idx, NodePhase::Succeeded);
        self.array_sub_task_event(arr, i, idx, task_execution::Phase::Succeeded);
        m::node_phase("RECOVERED", self.nodes[idx].kind.label());
        self.done_queue.push_back(Done::Node(idx, Ok(())));
        true
    }
}
