//! Registration: new versions of tasks, workflows and launch plans (flyteadmin's
//! `task_manager.go`, `workflow_manager.go`, `launch_plan_manager.go` Create*). A version is
//! validated, compiled against what it refers to, digested and stored; registering identical
//! content again is `AlreadyExists` (which flytekit counts as success), different content
//! under an existing version is refused. Refusals are logged once, at WARN.
//!
//! The checks, compilation and stored encodings live beside each entity's reads
//! (`service/admin/{tasks,workflows,launch_plans}.rs`), which decode the same records; this
//! service is how everything reaches them: the gRPC adapters and single-task executions.

use bytes::Bytes;
use flyteidl::admin::{LaunchPlanSpec, TaskSpec, WorkflowSpec};
use flyteidl::core::Identifier;

use crate::error::AdminResult;
use crate::service::admin::{launch_plans, tasks, workflows};
use crate::state::AdminState;

/// Registers task `id` (resource type TASK, versioned).
#[derive(Debug, Clone)]
pub struct RegisterTask {
    pub id: Identifier,
    pub spec: TaskSpec,
    /// The spec's bytes as the client sent them, so unknown fields survive (`fidelity`);
    /// `None` for in-process callers (the spec's encoding is stored).
    pub raw_spec: Option<Bytes>,
}

/// Registers workflow `id`; its tasks and launch plans must be registered already.
#[derive(Debug, Clone)]
pub struct RegisterWorkflow {
    pub id: Identifier,
    pub spec: WorkflowSpec,
    /// As [`RegisterTask::raw_spec`].
    pub raw_spec: Option<Bytes>,
}

/// Registers launch plan `id` (created INACTIVE) of a registered workflow.
#[derive(Debug, Clone)]
pub struct RegisterLaunchPlan {
    pub id: Identifier,
    pub spec: LaunchPlanSpec,
    /// As [`RegisterTask::raw_spec`].
    pub raw_spec: Option<Bytes>,
}

/// Registration commands. Cheap to clone.
#[derive(Clone)]
pub struct RegistrationService {
    state: AdminState,
}

impl RegistrationService {
    pub fn new(state: AdminState) -> Self {
        Self { state }
    }

    pub async fn register_task(&self, command: RegisterTask) -> AdminResult<()> {
        tasks::register(&self.state, command).await
    }

    pub async fn register_workflow(&self, command: RegisterWorkflow) -> AdminResult<()> {
        workflows::register(&self.state, command).await
    }

    pub async fn register_launch_plan(&self, command: RegisterLaunchPlan) -> AdminResult<()> {
        launch_plans::register(&self.state, command).await
    }
}
