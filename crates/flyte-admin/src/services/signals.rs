//! Signals (flyteadmin `signal_manager.go`): what gate nodes wait for. The engine gets or
//! creates a signal when a gate starts waiting; a person sets it (`FlyteRemote.approve`,
//! `reject`, `set_input`), which wakes the gate; an execution's signals can be listed. The
//! SignalService adapter (`service/signal.rs`) and the engine's `SignalStore`
//! (`service/admin/engine_services.rs`) call this service.

use chrono::Utc;
use flyte_core::types::{display_type, literal_is_instance, literal_type_of, same_type};
use flyte_store::{ExecutionKey, ListQuery, SignalKey, SignalRecord, StoreError};
use flyteidl::admin::{Signal, SignalList};
use flyteidl::core::{Literal, LiteralType, SignalIdentifier, WorkflowExecutionIdentifier};
use prost::Message;

use crate::error::{AdminError, AdminResult, quoted};
use crate::service::admin::common::decode_stored;
use crate::state::AdminState;

/// Counter: signals set (SetSignal).
pub const SIGNALS_SET_TOTAL: &str = "flyte_admin_signals_set_total";

/// Gets signal `key`, creating it with `signal_type` (unset) if it does not exist.
#[derive(Debug, Clone)]
pub struct GetOrCreateSignal {
    pub key: SignalKey,
    pub signal_type: LiteralType,
}

/// Sets the value of an existing signal (replacing one already set) and wakes its gate.
#[derive(Debug, Clone)]
pub struct SetSignal {
    pub key: SignalKey,
    pub value: Literal,
}

/// One page of an execution's signals.
#[derive(Debug, Clone)]
pub struct ListSignals {
    pub execution: ExecutionKey,
    pub query: ListQuery,
}

/// Signal commands. Cheap to clone.
#[derive(Clone)]
pub struct SignalService {
    state: AdminState,
}

impl SignalService {
    pub fn new(state: AdminState) -> Self {
        Self { state }
    }

    /// The signal as stored. `NotFound`: no such execution; `AlreadyExists`: the signal exists
    /// with another type (flyteadmin's `FirstOrCreate` with the type among its conditions
    /// fails on the key the same way), with both types named.
    pub async fn get_or_create(&self, command: GetOrCreateSignal) -> AdminResult<Signal> {
        let GetOrCreateSignal { key, signal_type } = command;
        let now = Utc::now();
        let record = SignalRecord {
            key: key.clone(),
            r#type: signal_type.encode_to_vec(),
            value: None,
            created_at: now,
            updated_at: now,
        };
        let stored = match self.state.store.get_or_create_signal(record).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound(_)) => {
                return Err(AdminError::NotFound(format!(
                    "{} not found: signals belong to an existing execution",
                    key.execution
                )));
            }
            Err(err) => return Err(err.into()),
        };
        let signal = to_signal(&stored)?;
        if let Some(existing) = &signal.r#type
            && !same_type(existing, &signal_type)
        {
            return Err(AdminError::AlreadyExists(format!(
                "{} already exists with type {}; it cannot be asked for with type {}",
                describe(&key),
                display_type(existing),
                display_type(&signal_type)
            )));
        }
        Ok(signal)
    }

    /// `NotFound` for an unknown execution (as ListNodeExecutions; flyteadmin returns an
    /// empty list).
    pub async fn list(&self, command: ListSignals) -> AdminResult<SignalList> {
        let ListSignals { execution, query } = command;
        self.ensure_execution(&execution).await?;
        let page = self.state.store.list_signals(&execution, &query).await?;
        let signals = page
            .items
            .iter()
            .map(to_signal)
            .collect::<AdminResult<_>>()?;
        Ok(SignalList {
            signals,
            token: page.next_token,
        })
    }

    /// Checks the value against the signal's type (INVALID_ARGUMENT naming expected and given
    /// types). An unknown signal or execution is NOT_FOUND (flyteadmin answers
    /// INVALID_ARGUMENT, which reads as if the request were malformed).
    pub async fn set(&self, command: SetSignal) -> AdminResult<()> {
        let SetSignal { key, value } = command;
        flyte_core::types::check_literal_depth(&value)
            .map_err(|e| AdminError::InvalidArgument(format!("signal value: {e}")))?;
        let stored = match self.state.store.get_signal(&key).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound(_)) => {
                self.ensure_execution(&key.execution).await?;
                return Err(AdminError::NotFound(format!(
                    "{} not found: a signal exists once the execution reaches the gate node \
                     that waits for it",
                    describe(&key)
                )));
            }
            Err(err) => return Err(err.into()),
        };
        let expected: LiteralType = decode_stored(&stored.r#type, "signal type")?;
        if !literal_is_instance(&value, &expected) {
            return Err(AdminError::InvalidArgument(format!(
                "invalid value for {}: expected {}, but got {}",
                describe(&key),
                display_type(&expected),
                display_type(&literal_type_of(&value))
            )));
        }
        match self
            .state
            .store
            .set_signal_value(&key, value.encode_to_vec(), Utc::now())
            .await
        {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(AdminError::NotFound(format!(
                    "{} not found",
                    describe(&key)
                )));
            }
            Err(err) => return Err(err.into()),
        }
        metrics::counter!(SIGNALS_SET_TOTAL).increment(1);
        tracing::info!(execution = %key.execution, signal_id = %key.signal_id, "signal set");
        if let Some(launcher) = &self.state.launcher {
            launcher
                .signal_set(
                    &signal_id(&key).execution_id.unwrap_or_default(),
                    &key.signal_id,
                )
                .await;
        }
        Ok(())
    }

    async fn ensure_execution(&self, key: &ExecutionKey) -> AdminResult<()> {
        match self.state.store.get_execution(key).await {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound(_)) => Err(AdminError::NotFound(format!("{key} not found"))),
            Err(err) => Err(err.into()),
        }
    }
}

fn signal_id(key: &SignalKey) -> SignalIdentifier {
    let e = &key.execution;
    SignalIdentifier {
        signal_id: key.signal_id.clone(),
        execution_id: Some(WorkflowExecutionIdentifier {
            project: e.project.clone(),
            domain: e.domain.clone(),
            name: e.name.clone(),
            ..Default::default()
        }),
    }
}

/// `signal 'approve' of execution flytesnacks/development/abc`.
fn describe(key: &SignalKey) -> String {
    format!("signal {} of {}", quoted(&key.signal_id), key.execution)
}

fn to_signal(record: &SignalRecord) -> AdminResult<Signal> {
    let signal_type: LiteralType = decode_stored(&record.r#type, "signal type")?;
    let value = match &record.value {
        Some(bytes) => Some(decode_stored::<Literal>(bytes, "signal value")?),
        None => None,
    };
    Ok(Signal {
        id: Some(signal_id(&record.key)),
        r#type: Some(signal_type),
        value,
    })
}
