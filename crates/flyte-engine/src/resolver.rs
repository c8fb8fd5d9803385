//! Entities the engine needs from the admin side at run time: a dynamic task's
//! `DynamicJobSpec` may call registered launch plans (the compiler needs their interfaces) and
//! tasks it does not carry itself. The admin implements [`EntityResolver`] over its store and
//! hands it to the engine ([`crate::EngineDeps::resolver`]); [`MemoryResolver`] serves tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use flyte_core::ids::IdKey;
use flyteidl::core::{Identifier, ParameterMap, TaskTemplate, TypedInterface};

/// What the compiler needs of a launch plan a dynamic workflow calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchPlanInterface {
    /// Inputs: the launch plan's workflow inputs; outputs: its outputs.
    pub interface: TypedInterface,
    /// The closure's `expected_inputs`, when known: a launch-plan node must then bind only the
    /// required ones (as propeller checks). None: every input is optional for the node.
    pub expected_inputs: Option<ParameterMap>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The entity does not exist: a user error in the dynamic workflow.
    #[error("{0} not found")]
    NotFound(String),
    /// The store could not answer: a system error (the attempt is retried).
    #[error("entity lookup failed: {0}")]
    Unavailable(String),
}

/// Looks up registered entities by identifier (versions are always given in a compiled spec).
#[async_trait]
pub trait EntityResolver: Send + Sync + 'static {
    async fn get_launch_plan_interface(
        &self,
        id: &Identifier,
    ) -> Result<LaunchPlanInterface, ResolveError>;
    async fn get_task(&self, id: &Identifier) -> Result<TaskTemplate, ResolveError>;
}

/// An in-memory resolver (tests, benchmarks).
#[derive(Default)]
pub struct MemoryResolver {
    launch_plans: Mutex<HashMap<IdKey, LaunchPlanInterface>>,
    tasks: Mutex<HashMap<IdKey, TaskTemplate>>,
}

impl MemoryResolver {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::default())
    }

    pub fn add_launch_plan(&self, id: &Identifier, lp: LaunchPlanInterface) {
        self.launch_plans
            .lock()
            .unwrap()
            .insert(IdKey::from(id), lp);
    }

    pub fn add_task(&self, template: TaskTemplate) {
        if let Some(id) = &template.id {
            self.tasks
                .lock()
                .unwrap()
                .insert(IdKey::from(id), template.clone());
        }
    }
}

#[async_trait]
impl EntityResolver for MemoryResolver {
    async fn get_launch_plan_interface(
        &self,
        id: &Identifier,
    ) -> Result<LaunchPlanInterface, ResolveError> {
        self.launch_plans
            .lock()
            .unwrap()
            .get(&IdKey::from(id))
            .cloned()
            .ok_or_else(|| {
                ResolveError::NotFound(format!(
                    "launch plan {}",
                    flyte_core::ids::display_identifier(id)
                ))
            })
    }

    async fn get_task(&self, id: &Identifier) -> Result<TaskTemplate, ResolveError> {
        self.tasks
            .lock()
            .unwrap()
            .get(&IdKey::from(id))
            .cloned()
            .ok_or_else(|| {
                ResolveError::NotFound(format!("task {}", flyte_core::ids::display_identifier(id)))
            })
    }
}
