//! How a tick becomes an execution: through the execution service, as any other caller
//! creates one (never a fake gRPC request).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use flyte_admin::AdminError;
use flyte_admin::services::executions::{CreateExecution, ExecutionService, ExecutionSource};
use flyte_store::EntityKey;
use flyteidl::admin::{ExecutionMetadata, ExecutionSpec, execution_metadata::ExecutionMode};
use flyteidl::core::{Literal, LiteralMap, Primitive, Scalar, literal, primitive, scalar};

/// One tick to launch.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledLaunch {
    pub launch_plan: EntityKey,
    /// [`crate::names::execution_name`] of the tick.
    pub name: String,
    pub scheduled_at: DateTime<Utc>,
    /// The workflow input that receives `scheduled_at`.
    pub kickoff_input: Option<String>,
}

/// Why a launch did not create an execution.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LaunchError {
    /// The tick's execution exists already (launched before a restart, or by another
    /// replica): the tick is done.
    #[error("already launched")]
    AlreadyExists,
    /// It can never launch as it is (its inputs no longer satisfiable, the launch plan gone):
    /// the tick is given up, recorded and logged at ERROR.
    #[error("{0}")]
    Rejected(String),
    /// It may launch later (the store or the engine unavailable): retried.
    #[error("{0}")]
    Unavailable(String),
}

/// Creates the execution of a tick.
#[async_trait]
pub trait ScheduledLauncher: Send + Sync + 'static {
    async fn launch(&self, launch: &ScheduledLaunch) -> Result<(), LaunchError>;
}

/// Who the executions of schedules are launched by (their `principal`).
pub const SCHEDULER_PRINCIPAL: &str = "flyte-scheduler";

#[async_trait]
impl ScheduledLauncher for ExecutionService {
    async fn launch(&self, launch: &ScheduledLaunch) -> Result<(), LaunchError> {
        let scheduled_at = pbjson_types::Timestamp {
            seconds: launch.scheduled_at.timestamp(),
            nanos: launch.scheduled_at.timestamp_subsec_nanos() as i32,
        };
        let mut inputs = LiteralMap::default();
        if let Some(arg) = &launch.kickoff_input {
            inputs
                .literals
                .insert(arg.clone(), datetime_literal(scheduled_at));
        }
        let command = CreateExecution {
            project: launch.launch_plan.project.clone(),
            domain: launch.launch_plan.domain.clone(),
            name: Some(launch.name.clone()),
            source: ExecutionSource::LaunchPlan(launch.launch_plan.clone()),
            inputs,
            spec: ExecutionSpec {
                metadata: Some(ExecutionMetadata {
                    mode: ExecutionMode::Scheduled as i32,
                    principal: SCHEDULER_PRINCIPAL.into(),
                    scheduled_at: Some(scheduled_at),
                    ..Default::default()
                }),
                ..Default::default()
            },
            raw_spec: None,
        };
        match self.create(command).await {
            Ok(_) => Ok(()),
            Err(AdminError::AlreadyExists(_)) => Err(LaunchError::AlreadyExists),
            Err(
                err @ (AdminError::InvalidArgument(_)
                | AdminError::NotFound(_)
                | AdminError::FailedPrecondition(_)
                | AdminError::Unimplemented(_)
                | AdminError::Unauthenticated(_)),
            ) => Err(LaunchError::Rejected(err.to_string())),
            Err(
                err @ (AdminError::ResourceExhausted(_)
                | AdminError::Internal(_)
                | AdminError::Unavailable(_)),
            ) => Err(LaunchError::Unavailable(err.to_string())),
        }
    }
}

fn datetime_literal(at: pbjson_types::Timestamp) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive {
                value: Some(primitive::Value::Datetime(at)),
            })),
        }))),
        ..Default::default()
    }
}
