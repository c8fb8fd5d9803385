//! What the admin hands the engine to run: the compiled workflow, the inputs, and the parts
//! of the execution spec the engine honours. Serialisable (protobuf) so a journal can keep it.

use std::collections::BTreeMap;

use flyteidl::core::{
    CompiledWorkflowClosure, Identifier, LiteralMap, WorkflowExecutionIdentifier,
};
use prost::Message;

/// One execution to run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecutionRequest {
    /// project, domain, name (org optional).
    pub id: WorkflowExecutionIdentifier,
    /// The compiled workflow (primary + sub-workflows + tasks), with start-node and end-node.
    pub compiled: CompiledWorkflowClosure,
    /// Fully resolved workflow inputs (defaults and fixed inputs already merged).
    pub inputs: LiteralMap,
    /// The launch plan it was created from (recorded, informational).
    pub launch_plan: Option<Identifier>,
    /// `spec.envs`: added to every task attempt's environment.
    pub envs: BTreeMap<String, String>,
    /// `spec.max_parallelism`: max task nodes running at once (0: unlimited).
    pub max_parallelism: u32,
    /// `spec.overwrite_cache`.
    pub overwrite_cache: bool,
    /// `spec.interruptible` (a node's own flag wins).
    pub interruptible: Option<bool>,
    /// `spec.raw_output_data_config.output_location_prefix` (native URL or store key prefix);
    /// the engine's configured default when None.
    pub raw_output_data_prefix: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub principal: String,
    /// The execution's Kubernetes service account (`security_context.run_as.k8s_service_account`
    /// of the spec, else of the launch plan; flyteadmin's resolved security context). Pods of
    /// its tasks run as it; the local backend ignores it. Empty: none.
    pub service_account: String,
    /// RecoverExecution: the original execution. Every node that succeeded there (looked up
    /// by unique node id through [`crate::external::RecoveryLookup`]) is marked RECOVERED with
    /// its outputs instead of being run; the rest runs.
    pub recover_from: Option<WorkflowExecutionIdentifier>,
    /// The `PLUGIN_OVERRIDE` matchable attribute resolved at creation (flyteadmin's
    /// `addPluginOverrides`): per task type, the plugin ids to run it with, in order
    /// ([`crate::backend::choose`]). Empty: the configured choice.
    pub plugin_overrides: Vec<flyteidl::admin::PluginOverride>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredRequest {
    #[prost(message, optional, tag = "1")]
    id: Option<WorkflowExecutionIdentifier>,
    #[prost(message, optional, tag = "2")]
    compiled: Option<CompiledWorkflowClosure>,
    #[prost(message, optional, tag = "3")]
    inputs: Option<LiteralMap>,
    #[prost(message, optional, tag = "4")]
    launch_plan: Option<Identifier>,
    #[prost(btree_map = "string, string", tag = "5")]
    envs: BTreeMap<String, String>,
    #[prost(uint32, tag = "6")]
    max_parallelism: u32,
    #[prost(bool, tag = "7")]
    overwrite_cache: bool,
    #[prost(bool, optional, tag = "8")]
    interruptible: Option<bool>,
    #[prost(string, optional, tag = "9")]
    raw_output_data_prefix: Option<String>,
    #[prost(btree_map = "string, string", tag = "10")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "11")]
    annotations: BTreeMap<String, String>,
    #[prost(string, tag = "12")]
    principal: String,
    #[prost(message, optional, tag = "13")]
    recover_from: Option<WorkflowExecutionIdentifier>,
    #[prost(string, tag = "14")]
    service_account: String,
    #[prost(message, repeated, tag = "15")]
    plugin_overrides: Vec<flyteidl::admin::PluginOverride>,
}

impl ExecutionRequest {
    /// Protobuf encoding, for journals.
    pub fn to_bytes(&self) -> Vec<u8> {
        StoredRequest {
            id: Some(self.id.clone()),
            compiled: Some(self.compiled.clone()),
            inputs: Some(self.inputs.clone()),
            launch_plan: self.launch_plan.clone(),
            envs: self.envs.clone(),
            max_parallelism: self.max_parallelism,
            overwrite_cache: self.overwrite_cache,
            interruptible: self.interruptible,
            raw_output_data_prefix: self.raw_output_data_prefix.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            principal: self.principal.clone(),
            recover_from: self.recover_from.clone(),
            service_account: self.service_account.clone(),
            plugin_overrides: self.plugin_overrides.clone(),
        }
        .encode_to_vec()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let s = StoredRequest::decode(bytes)?;
        Ok(Self {
            id: s.id.unwrap_or_default(),
            compiled: s.compiled.unwrap_or_default(),
            inputs: s.inputs.unwrap_or_default(),
            launch_plan: s.launch_plan,
            envs: s.envs,
            max_parallelism: s.max_parallelism,
            overwrite_cache: s.overwrite_cache,
            interruptible: s.interruptible,
            raw_output_data_prefix: s.raw_output_data_prefix,
            labels: s.labels,
            annotations: s.annotations,
            principal: s.principal,
            recover_from: s.recover_from,
            service_account: s.service_account,
            plugin_overrides: s.plugin_overrides,
        })
    }

    /// `project/domain/name`, for logs and maps.
    pub fn key(&self) -> ExecKey {
        ExecKey::of(&self.id)
    }
}

/// An execution's identity as a map key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecKey {
    pub project: String,
    pub domain: String,
    pub name: String,
}

impl ExecKey {
    pub fn of(id: &WorkflowExecutionIdentifier) -> Self {
        Self {
            project: id.project.clone(),
            domain: id.domain.clone(),
            name: id.name.clone(),
        }
    }
}

impl std::fmt::Display for ExecKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.project, self.domain, self.name)
    }
}
