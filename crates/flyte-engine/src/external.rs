//! Services the engine needs from the admin side at run time, for the node kinds that reach
//! outside one execution (propeller calls flyteadmin for them):
//!
//! * [`SignalStore`]: gate nodes (`wait_for_input`, `approve`) create their signal and read
//!   its value (propeller `nodes/gate/handler.go` → SignalService.GetOrCreateSignal). When a
//!   person sets a signal, the admin calls `ExecutionLauncher::signal_set` (flyte-admin
//!   `launcher.rs`), so the engine can wake the gate instead of polling.
//! * [`ChildExecutions`]: launch-plan nodes create a child execution with a deterministic name
//!   ([`child_execution_id`]), read its status and outputs, and abort it with the parent
//!   (propeller `nodes/subworkflow/launchplan/admin.go`).
//! * [`RecoveryLookup`]: RecoverExecution — what a node did in the original execution, by
//!   unique node id (nested ids inside subworkflows, dynamic and array nodes included), so it
//!   is marked RECOVERED with the original outputs instead of run again (propeller
//!   `nodes/executor.go` `attemptRecovery`).
//!
//! flyte-admin implements all three over its store (`service/admin/engine_services.rs`); the
//! engine takes them as `Arc<dyn …>`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use flyteidl::admin::{DynamicWorkflowNodeMetadata, TaskNodeMetadata};
use flyteidl::core::{
    ExecutionError, Identifier, Literal, LiteralMap, LiteralType, NodeExecutionIdentifier,
    WorkflowExecutionIdentifier,
};

/// The three services, as the engine takes them ([`crate::engine::EngineDeps::external`]).
#[derive(Clone)]
pub struct ExternalServices {
    pub signals: Arc<dyn SignalStore>,
    pub children: Arc<dyn ChildExecutions>,
    pub recovery: Arc<dyn RecoveryLookup>,
}

impl ExternalServices {
    /// All three from one value that implements them (the admin's `EngineServices`).
    pub fn from<T: SignalStore + ChildExecutions + RecoveryLookup>(services: Arc<T>) -> Self {
        Self {
            signals: services.clone(),
            children: services.clone(),
            recovery: services,
        }
    }
}

/// Why an external call failed, as the engine must branch on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExternalError {
    /// The thing asked for does not exist (a launch plan, an execution, a signal's execution):
    /// a user error at the node, not retried.
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong (e.g. inputs a launch plan does not accept): a user error at the
    /// node, not retried.
    #[error("{0}")]
    Invalid(String),
    /// The admin side could not answer now (store failure): a system error; retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl ExternalError {
    /// True for errors worth retrying (system errors).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

// --- signals --------------------------------------------------------------------------------

#[async_trait]
pub trait SignalStore: Send + Sync + 'static {
    /// GetOrCreateSignal: creates signal `signal_id` of `execution` with `signal_type` unless it
    /// exists, and returns its value once someone has set it (`None` while unset). An
    /// `approve` gate asks with type BOOLEAN; `wait_for_input` with the gate's type. Setting a
    /// value of another type is refused by the admin, so a value returned here is of the
    /// signal's type. `NotFound` if the execution does not exist.
    async fn get_or_create(
        &self,
        execution: &WorkflowExecutionIdentifier,
        signal_id: &str,
        signal_type: &LiteralType,
    ) -> Result<Option<Literal>, ExternalError>;
}

// --- child executions ---------------------------------------------------------------------

/// Length of a child execution's generated name (propeller `maxLengthForSubWorkflow`).
pub const CHILD_NAME_MAX_LENGTH: usize = 20;

/// What a launch-plan node launches (propeller's `LaunchContext` plus the call). The
/// execution-level settings are the parent's, inherited by the child as propeller passes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChildLaunch {
    /// The parent execution and the launching node's unique id.
    pub parent: NodeExecutionIdentifier,
    /// The node's attempt (part of the child's name).
    pub attempt: u32,
    /// The launch plan the node calls (versioned).
    pub launch_plan: Identifier,
    /// The node's resolved inputs (merged with the launch plan's defaults and fixed inputs by
    /// the admin, as CreateExecution does).
    pub inputs: LiteralMap,
    pub principal: String,
    pub envs: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub max_parallelism: u32,
    pub interruptible: Option<bool>,
    pub overwrite_cache: bool,
    pub raw_output_data_prefix: Option<String>,
    /// The parent's resolved Kubernetes service account (propeller's launch plan handler
    /// passes the parent's security context on): the child's when its spec sets none.
    pub service_account: String,
    /// Recovering: the child execution the same node launched in the original execution
    /// ([`RecoveredNode::launched_execution`]); the child is then created by recovering it
    /// (RecoverExecution, mode RECOVERED), so its own succeeded nodes are reused too. Falls
    /// back to a fresh launch if that execution no longer exists (propeller does the same).
    pub recover_from: Option<WorkflowExecutionIdentifier>,
}

/// A child execution as the parent node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildStatus {
    /// `core.WorkflowExecution.Phase` (i32 of the enum).
    pub phase: i32,
    /// True for SUCCEEDED, FAILED, ABORTED, TIMED_OUT.
    pub terminal: bool,
    /// The outputs, once SUCCEEDED (empty map for a workflow without outputs).
    pub outputs: Option<LiteralMap>,
    /// The error, once FAILED (or the abort cause, as a message, once ABORTED).
    pub error: Option<ExecutionError>,
}

#[async_trait]
pub trait ChildExecutions: Send + Sync + 'static {
    /// Creates (and starts) the child execution of a launch-plan node, named
    /// [`child_execution_id`]`(parent, attempt)`, mode CHILD_WORKFLOW, linked to the parent
    /// node (`spec.metadata.parent_node_execution`, nesting + 1). Idempotent: a child that
    /// already exists under that name (a retry after a crash) counts as success. Returns its
    /// id. `NotFound`: no such launch plan; `Invalid`: inputs it does not accept.
    ///
    /// The admin starts the child on the engine (`ExecutionLauncher::start`), which awaits
    /// the child's first committed batch: call this from a task, not while holding a lock
    /// the engine needs.
    async fn create_child(
        &self,
        launch: ChildLaunch,
    ) -> Result<WorkflowExecutionIdentifier, ExternalError>;

    /// The child's phase, outputs (when succeeded) and error (when failed).
    async fn status(
        &self,
        child: &WorkflowExecutionIdentifier,
    ) -> Result<ChildStatus, ExternalError>;

    /// Terminates the child with `cause` (the parent was aborted or failed). A child that
    /// does not exist or has already finished is fine (`Ok`), as propeller's `Kill` treats it.
    async fn abort(
        &self,
        child: &WorkflowExecutionIdentifier,
        cause: &str,
    ) -> Result<(), ExternalError>;
}

/// The child execution of a launch-plan node: in the parent's project and domain, named
/// `FixedLengthUniqueIDForParts(20, [parent execution name, node unique id, attempt])` with
/// the 64-bit hash (propeller `subworkflow/util.go` `GetChildWorkflowExecutionIDV2`, what
/// current workflow definitions use): the parts joined with `-` if that fits in 20
/// characters, else `f` + base32(fnv64a(joined)) — 14 characters.
pub fn child_execution_id(
    parent: &NodeExecutionIdentifier,
    attempt: u32,
) -> WorkflowExecutionIdentifier {
    let execution = parent.execution_id.clone().unwrap_or_default();
    let attempt = attempt.to_string();
    let name = fixed_length_unique_id_64(
        CHILD_NAME_MAX_LENGTH,
        &[&execution.name, &parent.node_id, &attempt],
    );
    WorkflowExecutionIdentifier {
        project: execution.project,
        domain: execution.domain,
        name,
        org: execution.org,
    }
}

/// `encoding.FixedLengthUniqueIDForParts(max, parts, Algorithm64)`: parts joined by `-` (no
/// dash while the result is still empty); if longer than `max`, `f` + base32 of the 64-bit
/// FNV-1a hash of the joined string (alphabet `a-z1-6`, no padding).
pub fn fixed_length_unique_id_64(max_length: usize, parts: &[&str]) -> String {
    let mut joined = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 && !joined.is_empty() {
            joined.push('-');
        }
        joined.push_str(part);
    }
    if joined.len() <= max_length {
        return joined;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in joined.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("f{}", base32(&hash.to_be_bytes()))
}

/// Base32 (RFC 4648 bit order, no padding) with flytestdlib's alphabet.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz123456";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

// --- recovery -------------------------------------------------------------------------------

/// What one node did in the original execution of a recovery, when there is something to
/// reuse.
#[derive(Debug, Clone, PartialEq)]
pub enum RecoveredNode {
    /// SUCCEEDED (or itself RECOVERED) in the original: do not run it; write `outputs` to the
    /// node's output location and report it RECOVERED with this information.
    Succeeded(Box<RecoveredOutputs>),
    /// Ran in the original but did not succeed; reuse what can be reused: a dynamic node whose
    /// parent task finished (its `DynamicJobSpec`, so the sub-node ids stay the same and the
    /// sub-nodes that succeeded are recovered in turn), a task's last checkpoint, a launch-plan
    /// node's child execution.
    Partial {
        /// The original's `futures.pb` (`closure.dynamic_job_spec_uri`), for dynamic nodes.
        dynamic_job_spec_uri: Option<String>,
        /// The original's checkpoint (`TaskNodeMetadata.checkpoint_uri`), as the previous
        /// checkpoint of the new attempt.
        checkpoint_uri: Option<String>,
        /// The original node's inputs, when a dynamic node is resumed from its spec.
        inputs: Option<LiteralMap>,
        /// Launch-plan nodes: the child execution the original launched (it failed or was
        /// aborted); pass it as [`ChildLaunch::recover_from`] so the new child reuses the
        /// nodes that succeeded in it.
        launched_execution: Option<WorkflowExecutionIdentifier>,
    },
}

/// The reusable result of a node that succeeded in the original execution.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecoveredOutputs {
    /// The node's outputs, read in full (inline data, or the offloaded `outputs.pb`).
    pub outputs: LiteralMap,
    /// Where the original wrote them, if offloaded.
    pub output_uri: Option<String>,
    /// The node's inputs in the original (for the RECOVERED node's `inputs.pb` and event).
    pub inputs: Option<LiteralMap>,
    pub deck_uri: Option<String>,
    /// Task nodes: catalog key and cache status to carry over.
    pub task_node_metadata: Option<TaskNodeMetadata>,
    /// Dynamic nodes: the compiled workflow the original ran.
    pub dynamic_workflow: Option<DynamicWorkflowNodeMetadata>,
    /// Launch-plan nodes: the child execution the original launched.
    pub launched_execution: Option<WorkflowExecutionIdentifier>,
    /// The original node's metadata flags.
    pub is_dynamic: bool,
    pub is_array: bool,
    pub is_parent_node: bool,
}

#[async_trait]
pub trait RecoveryLookup: Send + Sync + 'static {
    /// What node `node_unique_id` (the unique id: nested for sub-nodes of subworkflows,
    /// dynamic and array nodes) did in `original`. `None`: not found there, skipped, or
    /// nothing reusable — run it normally.
    async fn recover_node(
        &self,
        original: &WorkflowExecutionIdentifier,
        node_unique_id: &str,
    ) -> Result<Option<RecoveredNode>, ExternalError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_match_flytestdlib() {
        // flyteplugins encoding/encoder_test.go, Algorithm64.
        let parts = [
            "x", "y", "z", "m", "n", "y", "z", "m", "n", "y", "z", "m", "n",
        ];
        assert_eq!(fixed_length_unique_id_64(15, &parts), "fwp4bky2kucex5");
        assert_eq!(fixed_length_unique_id_64(10, &["x", "y", "z"]), "x-y-z");
        assert_eq!(fixed_length_unique_id_64(2, &["x"]), "x");
        assert_eq!(fixed_length_unique_id_64(5, &["", "", "n1"]), "n1");
    }

    #[test]
    fn child_names_are_deterministic_and_short() {
        let parent = NodeExecutionIdentifier {
            node_id: "n0".into(),
            execution_id: Some(WorkflowExecutionIdentifier {
                project: "p".into(),
                domain: "d".into(),
                name: "abc".into(),
                ..Default::default()
            }),
        };
        let id = child_execution_id(&parent, 0);
        assert_eq!((id.project.as_str(), id.domain.as_str()), ("p", "d"));
        assert_eq!(id.name, "abc-n0-0");

        let parent = NodeExecutionIdentifier {
            node_id: "n3-0-dn1".into(),
            execution_id: Some(WorkflowExecutionIdentifier {
                name: "a1b2c3d4e5f6g7h8i9j0".into(),
                ..Default::default()
            }),
        };
        let first = child_execution_id(&parent, 1);
        assert_eq!(first.name.len(), 14);
        assert!(first.name.starts_with('f'));
        assert_eq!(first, child_execution_id(&parent, 1));
        assert_ne!(first.name, child_execution_id(&parent, 2).name);
    }
}
