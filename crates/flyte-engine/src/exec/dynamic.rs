//! Dynamic nodes (propeller's `nodes/dynamic`): a task node whose attempt succeeds with a
//! `futures.pb` (a `DynamicJobSpec`) instead of `outputs.pb`. The spec becomes a workflow
//! (interface: the task's; inputs: the node's inputs), compiled with flyte-core's compiler,
//! stored next to `futures.pb` as `dynamic_compiled.pb` (its path goes in the node's journal
//! record, in the same batch that starts the children, so a restart resumes from it), and run
//! as the node's children: unique ids `<node>-<attempt>-<child>`, events with the parent's
//! metadata and `is_in_dynamic_chain`. The node reports DYNAMIC_RUNNING with the compiled
//! closure (`dynamic_workflow`, for GetDynamicNodeWorkflow) and ends with the end node's
//! outputs copied to its own `outputs.pb`.

use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

use bytes::Bytes;
use flyte_core::compiler::{Resolved, compile_workflow_template, referenced_entities};
use flyte_core::ids::IdKey;
use flyteidl::admin::WorkflowSpec;
use flyteidl::core::{
    CompiledWorkflowClosure, DynamicJobSpec, ExecutionError, Identifier, LiteralMap, ResourceType,
    TaskTemplate, WorkflowMetadata, WorkflowTemplate, execution_error::ErrorKind, node_execution,
    task_execution, task_template,
};
use flyteidl::event::DynamicWorkflowNodeMetadata;
use prost::Message;

use super::{Catalog, ExecActor, NodePhase, key_of};
use crate::layout;
use crate::metrics as m;
use crate::resolver::ResolveError;

/// Why a dynamic workflow could not be built.
pub(super) enum BuildError {
    /// The spec is wrong (does not compile, refers to what does not exist): the node fails.
    User(String),
    /// Storage or the resolver failed: the attempt is retried as a system failure.
    System(String),
}

/// Compiling this many nodes or more is moved off the runtime's worker threads.
const BLOCKING_COMPILE_NODES: usize = 256;

fn identifier_of(k: &IdKey) -> Identifier {
    Identifier {
        resource_type: k.resource,
        project: k.project.clone(),
        domain: k.domain.clone(),
        name: k.name.clone(),
        version: k.version.clone(),
        ..Default::default()
    }
}

/// The workflow a `DynamicJobSpec` describes (propeller's `buildDynamicWorkflowTemplate`): the
/// parent task's interface, the spec's nodes and output bindings; the spec's tasks get the
/// parent container's `config` appended.
#[allow(deprecated)]
pub(super) fn dynamic_template(
    spec: &mut DynamicJobSpec,
    parent: &TaskTemplate,
    id: Identifier,
) -> WorkflowTemplate {
    if let Some(task_template::Target::Container(pc)) = &parent.target {
        for t in &mut spec.tasks {
            if let Some(task_template::Target::Container(c)) = &mut t.target {
                c.config.extend(pc.config.iter().cloned());
            }
        }
    }
    WorkflowTemplate {
        id: Some(id),
        interface: parent.interface.clone(),
        nodes: std::mem::take(&mut spec.nodes),
        outputs: std::mem::take(&mut spec.outputs),
        metadata: Some(WorkflowMetadata::default()),
        ..Default::default()
    }
}

impl ExecActor {
    /// `Some(message)` when `adding` more nodes would take the execution past
    /// `engine.max_nodes_per_execution` (checked before any of them is built).
    pub(super) fn too_many_nodes(&self, adding: usize, what: &str) -> Option<String> {
        let max = self.shared.config.max_nodes_per_execution;
        let total = self.nodes.len().saturating_add(adding);
        (max > 0 && total > max).then(|| {
            format!(
                "{adding} {what} would bring this execution to {total} nodes, more than the \
                 server's limit of {max} (engine.max_nodes_per_execution); split the work \
                 into several executions or map tasks, or raise the limit if the server has \
                 the memory (a few KB per node)"
            )
        })
    }

    pub(super) fn is_dynamic_task(&self, idx: usize) -> bool {
        self.nodes[idx].kind.task().is_some()
            && !self.nodes[idx].rec.dynamic_closure_path.is_empty()
    }

    /// Whether a node of the scope timed out (its own deadline), as opposed to failing.
    pub(super) fn scope_timed_out(&self, s: usize) -> bool {
        self.nodes
            .iter()
            .any(|n| n.member_of == Some(s) && n.phase() == NodePhase::TimedOut)
    }

    /// A dynamic node whose workflow timed out is retried — the task runs again and builds a
    /// new workflow under the next attempt's ids — while its user retries last; one whose
    /// workflow failed is not (propeller: `IsFailurePermanent` is set only on failure).
    pub(super) fn retry_dynamic(&mut self, idx: usize, error: ExecutionError) {
        let max = self.max_attempts(idx);
        let n = &mut self.nodes[idx];
        n.rec.user_failures += 1;
        let current = n.rec.user_failures;
        if current >= max {
            let final_err = super::task::retries_exhausted(error, current, max);
            self.node_terminal(idx, NodePhase::Failed, Some(final_err));
            return;
        }
        metrics::counter!(m::ATTEMPTS_RETRIED, "kind" => "user").increment(1);
        n.rec.dynamic_closure_path.clear();
        n.state.set_child_scope(None);
        n.rec.attempt += 1;
        self.dirty.insert(idx);
        // Back to RUNNING, as propeller reports a retryable failure, so that the next attempt's
        // DYNAMIC_RUNNING (with its own workflow) is a phase change the admin records.
        self.node_event(idx, node_execution::Phase::Running, None);
        self.start_attempt(idx);
    }

    /// The node's attempt succeeded with a `futures.pb`: build, persist and start the dynamic
    /// workflow (or fail the node, or retry the attempt on a system error).
    pub(super) async fn start_dynamic(&mut self, idx: usize, futures: String) {
        let t0 = Instant::now();
        let built = self.build_dynamic(idx, &futures).await;
        metrics::histogram!(m::DYNAMIC_BUILD_TIME).record(t0.elapsed().as_secs_f64());
        let (closure, path) = match built {
            Ok(b) => b,
            Err(BuildError::System(msg)) => {
                metrics::counter!(m::DYNAMIC_WORKFLOWS, "outcome" => "failed").increment(1);
                let err = self.exec_error(ErrorKind::System, "DynamicWorkflowBuildFailed", msg);
                self.attempt_failed(idx, err, true, Vec::new());
                return;
            }
            Err(BuildError::User(msg)) => {
                metrics::counter!(m::DYNAMIC_WORKFLOWS, "outcome" => "failed").increment(1);
                // The task itself succeeded; the node fails on its spec (not retried).
                self.task_event(idx, task_execution::Phase::Succeeded, None, None);
                self.task_done(idx);
                let err = self.exec_error(ErrorKind::User, "DynamicWorkflowBuildFailed", msg);
                self.node_terminal(idx, NodePhase::Failed, Some(err));
                return;
            }
        };
        metrics::counter!(m::DYNAMIC_WORKFLOWS, "outcome" => "built").increment(1);
        let n_nodes = closure
            .primary
            .as_ref()
            .and_then(|p| p.template.as_ref())
            .map(|t| t.nodes.len())
            .unwrap_or(0);
        metrics::histogram!(m::DYNAMIC_NODES).record(n_nodes as f64);
        self.task_event(idx, task_execution::Phase::Succeeded, None, None);
        self.task_done(idx);
        self.nodes[idx].rec.dynamic_closure_path = path;
        self.dirty.insert(idx);
        let meta = DynamicWorkflowNodeMetadata {
            id: closure
                .primary
                .as_ref()
                .and_then(|p| p.template.as_ref())
                .and_then(|t| t.id.clone()),
            compiled_workflow: Some((*closure).clone()),
            dynamic_job_spec_uri: self.shared.blob.native_url(&futures),
        };
        self.node_event_with(idx, node_execution::Phase::DynamicRunning, None, Some(meta));
        let s = self.open_dynamic_scope(idx, closure, None);
        let start = self.scopes[s].start;
        self.make_ready(start);
    }

    /// Opens the scope of a dynamic node's children from its compiled workflow.
    /// A resumed dynamic node: its children were restored with it and its outputs are cached
    /// when they finish; one whose compiled workflow could not be read back fails.
    pub(super) async fn resume_dynamic(&mut self, idx: usize) {
        if self.nodes[idx].state.child_scope().is_some() {
            self.cache_resume(idx, false).await;
            return;
        }
        let err = self.exec_error(
            ErrorKind::System,
            "DynamicWorkflowNotFound",
            format!(
                "cannot read the compiled dynamic workflow [{}] after a restart",
                self.nodes[idx].rec.dynamic_closure_path
            ),
        );
        self.node_terminal(idx, NodePhase::Failed, Some(err));
    }

    /// Rebuilds a resumed dynamic node's workflow from the closure it recorded.
    pub(super) fn restore_dynamic(&mut self, idx: usize) {
        if self.nodes[idx].rec.dynamic_closure_path.is_empty() {
            return;
        }
        let uid = self.nodes[idx].rec.node_id.clone();
        if let Some(closure) = self.resume_closures.get(&uid).cloned() {
            self.open_dynamic_scope(idx, closure, None);
        }
    }

    pub(super) fn open_dynamic_scope(
        &mut self,
        idx: usize,
        closure: Arc<CompiledWorkflowClosure>,
        inputs: Option<Arc<LiteralMap>>,
    ) -> usize {
        // Taken apart rather than copied when nothing else holds it (a fresh build).
        let closure = Arc::try_unwrap(closure).unwrap_or_else(|shared| (*shared).clone());
        let catalog = Arc::new(Catalog::of(&closure));
        let primary = closure.primary.unwrap_or_default();
        let template = Arc::new(primary.template.unwrap_or_default());
        let s = self.new_scope(
            Some(idx),
            template,
            primary.connections.as_ref(),
            inputs,
            catalog,
        );
        self.nodes[idx].state.set_child_scope(Some(s));
        s
    }

    /// Reads `futures.pb`, compiles it and stores the closure; returns it with its store key.
    async fn build_dynamic(
        &mut self,
        idx: usize,
        futures: &str,
    ) -> Result<(Arc<CompiledWorkflowClosure>, String), BuildError> {
        let Some(parent_task) = self.nodes[idx].kind.task().cloned() else {
            return Err(BuildError::System("not a task node".into()));
        };
        let bytes = self
            .shared
            .blob
            .get(futures)
            .await
            .map_err(|e| BuildError::System(format!("failed to read the futures file: {e}")))?;
        let mut spec = DynamicJobSpec::decode(bytes).map_err(|e| {
            BuildError::System(format!("unable to read futures file, maybe corrupted: {e}"))
        })?;
        let unique = self.nodes[idx].rec.node_id.clone();
        let attempt = self.nodes[idx].rec.attempt;
        let id = Identifier {
            resource_type: ResourceType::Workflow as i32,
            project: self.id.project.clone(),
            domain: self.id.domain.clone(),
            name: format!("dynamic_{unique}"),
            version: layout::fixed_length_unique_id(
                &format!("{}/{unique}/{attempt}/dynamic-version-seed", self.id.name),
                0,
            ),
            ..Default::default()
        };
        let template = dynamic_template(&mut spec, &parent_task, id);
        if let Some(msg) = self.too_many_nodes(template.nodes.len(), "dynamic workflow nodes") {
            return Err(BuildError::User(msg));
        }
        let sub_workflows = std::mem::take(&mut spec.subworkflows);
        let wf_spec = WorkflowSpec {
            template: Some(template),
            sub_workflows,
            ..Default::default()
        };
        let refs = referenced_entities(&wf_spec);

        // Tasks: the spec's own, then the ones this scope already knows, then the admin's.
        let mut resolved = Resolved::default();
        let carried: HashMap<IdKey, TaskTemplate> = spec
            .tasks
            .drain(..)
            .filter_map(|t| Some((key_of(t.id.as_ref()?), t)))
            .collect();
        let catalog = self.scopes[self.nodes[idx].scope].catalog.clone();
        let resolver = Some(self.shared.resolver.clone());
        for k in &refs.tasks {
            let plain = IdKey {
                resource: 0,
                ..k.clone()
            };
            let template = match carried.get(&plain) {
                Some(t) => t.clone(),
                None => match catalog.tasks.get(&plain) {
                    Some(t) => (**t).clone(),
                    None => match &resolver {
                        Some(r) => r.get_task(&identifier_of(k)).await.map_err(resolve_error)?,
                        None => {
                            return Err(BuildError::User(format!(
                                "task {k} is neither in the dynamic job spec nor registered with this execution"
                            )));
                        }
                    },
                },
            };
            resolved.tasks.insert(k.clone(), template);
        }
        for k in &refs.launch_plans {
            let Some(r) = &resolver else {
                return Err(BuildError::User(format!(
                    "incorrectly specified launchplan {k}: no launch plan resolver is configured"
                )));
            };
            let lp = r
                .get_launch_plan_interface(&identifier_of(k))
                .await
                .map_err(|e| match e {
                    ResolveError::NotFound(m) => {
                        BuildError::User(format!("incorrectly specified launchplan {k}: {m}"))
                    }
                    ResolveError::Unavailable(m) => BuildError::System(format!(
                        "unable to retrieve launchplan information {k}: {m}"
                    )),
                })?;
            resolved.launch_plans.insert(k.clone(), lp.interface);
            if let Some(p) = lp.expected_inputs {
                resolved.launch_plan_inputs.insert(k.clone(), p);
            }
        }
        let WorkflowSpec {
            template,
            sub_workflows,
            ..
        } = wf_spec;
        let template = template.unwrap_or_default();
        let large = template.nodes.len() >= BLOCKING_COMPILE_NODES;
        let compile = move || {
            compile_workflow_template(&template, &sub_workflows, &resolved)
                .map_err(|e| BuildError::User(format!("malformed dynamic workflow: {e}")))
        };
        let closure = if large {
            tokio::task::spawn_blocking(compile)
                .await
                .map_err(|e| BuildError::System(format!("compiler task failed: {e}")))??
        } else {
            compile()?
        };

        let out_dir = self.nodes[idx].output_dir();
        let path = layout::dynamic_compiled_file(&out_dir);
        self.shared
            .put_blob(&path, Bytes::from(closure.encode_to_vec()))
            .await
            .map_err(|e| {
                BuildError::System(format!(
                    "failed to store the compiled dynamic workflow: {e}"
                ))
            })?;
        Ok((Arc::new(closure), path))
    }

    /// Resume: reads back the compiled workflow of every dynamic node the journal knows.
    pub(super) async fn load_dynamic_closures(&mut self) {
        let paths: Vec<(String, String)> = self
            .resume_records
            .values()
            .filter(|r| !r.dynamic_closure_path.is_empty())
            .map(|r| (r.node_id.clone(), r.dynamic_closure_path.clone()))
            .collect();
        for (node, path) in paths {
            let loaded = match self.shared.blob.get(&path).await {
                Ok(b) => CompiledWorkflowClosure::decode(b).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match loaded {
                Ok(c) => {
                    self.resume_closures.insert(node, Arc::new(c));
                }
                Err(e) => {
                    tracing::error!(node = %node, path = %path, error = %e, "cannot load a compiled dynamic workflow")
                }
            }
        }
    }
}

fn resolve_error(e: ResolveError) -> BuildError {
    match e {
        ResolveError::NotFound(m) => BuildError::User(m),
        ResolveError::Unavailable(m) => BuildError::System(m),
    }
}
