//! The engine's [`EntityResolver`] over the store: a dynamic workflow may call registered
//! launch plans (the compiler needs their interface and expected inputs, as propeller reads
//! them with GetLaunchPlan) and registered tasks it does not carry (GetTask).

use std::sync::Arc;

use async_trait::async_trait;
use flyte_core::ids::ResourceType;
use flyte_engine::{EntityResolver, LaunchPlanInterface, ResolveError};
use flyte_store::StoreError;
use flyteidl::admin::LaunchPlanClosure;
use flyteidl::core::{Identifier, TaskTemplate, TypedInterface, VariableMap};

use super::common::{decode_stored, entity_key};
use super::tasks::stored_template;
use crate::state::AdminState;

/// [`EntityResolver`] reading registered tasks and launch plans from the admin's store.
#[derive(Clone)]
pub struct StoreEntityResolver {
    state: AdminState,
}

impl StoreEntityResolver {
    pub fn new(state: AdminState) -> Arc<Self> {
        Arc::new(Self { state })
    }
}

fn unavailable(e: impl std::fmt::Display) -> ResolveError {
    ResolveError::Unavailable(e.to_string())
}

#[async_trait]
impl EntityResolver for StoreEntityResolver {
    async fn get_launch_plan_interface(
        &self,
        id: &Identifier,
    ) -> Result<LaunchPlanInterface, ResolveError> {
        let key = entity_key(ResourceType::LaunchPlan, id);
        let record = match self.state.store.get_entity(&key).await {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return Err(ResolveError::NotFound(key.to_string())),
            Err(e) => return Err(unavailable(e)),
        };
        let closure: LaunchPlanClosure =
            decode_stored(&record.closure, "launch plan closure").map_err(unavailable)?;
        // As propeller's launch-plan interface provider: inputs are the expected inputs'
        // variables, outputs the expected outputs.
        let inputs = closure.expected_inputs.as_ref().map(|p| VariableMap {
            variables: p
                .parameters
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.var.clone()?)))
                .collect(),
        });
        Ok(LaunchPlanInterface {
            interface: TypedInterface {
                inputs: Some(inputs.unwrap_or_default()),
                outputs: Some(closure.expected_outputs.clone().unwrap_or_default()),
            },
            expected_inputs: closure.expected_inputs,
        })
    }

    async fn get_task(&self, id: &Identifier) -> Result<TaskTemplate, ResolveError> {
        let key = entity_key(ResourceType::Task, id);
        let record = match self.state.store.get_entity(&key).await {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return Err(ResolveError::NotFound(key.to_string())),
            Err(e) => return Err(unavailable(e)),
        };
        stored_template(&record).map_err(unavailable)
    }
}
