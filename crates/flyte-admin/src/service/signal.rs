//! SignalService (flyteadmin `signal_manager.go`): the signals gate nodes wait for.
//!
//! The engine creates a signal when a gate node starts waiting (GetOrCreateSignal, through
//! `flyte_engine::external::SignalStore`); a person sets it (SetSignal: `FlyteRemote.approve`,
//! `reject`, `set_input`); the gate then reads the value. ListSignals lists an execution's.
//!
//! Behaviour matched, and where it differs:
//! * GetOrCreateSignal returns an existing signal as stored; asking for an existing signal with
//!   another type is ALREADY_EXISTS (flyteadmin's `FirstOrCreate` with the type among its
//!   conditions fails on the key the same way), with both types named.
//! * SetSignal checks the value against the signal's type (INVALID_ARGUMENT naming expected
//!   and given types) and replaces a value already set (flyteadmin's `Update` does; a gate
//!   that already read a value is not affected). An unknown signal or execution is NOT_FOUND
//!   here; flyteadmin answers INVALID_ARGUMENT ("failed to validate that signal exists"),
//!   which reads as if the request were malformed.
//! * ListSignals of an unknown execution is NOT_FOUND (as ListNodeExecutions); flyteadmin
//!   returns an empty list.

use chrono::Utc;
use flyte_core::types::{display_type, literal_is_instance, literal_type_of, same_type};
use flyte_store::{ExecutionKey, SignalKey, SignalRecord, StoreError};
use flyteidl::admin::{
    Signal, SignalGetOrCreateRequest, SignalList, SignalListRequest, SignalSetRequest,
    SignalSetResponse,
};
use flyteidl::core::{Literal, LiteralType, SignalIdentifier, WorkflowExecutionIdentifier};
use flyteidl::service::signal_service_server::{SignalService, SignalServiceServer};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::error::{AdminError, AdminResult, quoted};
use crate::service::admin::common::{decode_stored, missing, run};
use crate::service::admin::events;
use crate::service::admin::lists::{self, ListArgs, ListFields};
use crate::state::AdminState;

/// Counter: signals set through SetSignal.
pub const SIGNALS_SET_TOTAL: &str = "flyte_admin_signals_set_total";

const SIGNAL_LIST_FIELDS: ListFields = ListFields {
    what: "signals",
    prefixes: &["signal"],
    filter_fields: &["signal_id", "created_at", "updated_at"],
    sort_fields: &["signal_id", "created_at", "updated_at"],
};

/// The SignalService implementation over the shared admin state.
#[derive(Clone)]
pub struct SignalApi {
    state: AdminState,
}

impl SignalApi {
    pub fn new(state: AdminState) -> Self {
        Self { state }
    }
}

/// The tonic server for [`SignalApi`], accepting requests up to `config.max_request_bytes`.
/// Wrap it in [`crate::fidelity::layer`] as the other services are.
pub fn signal_service(state: AdminState) -> SignalServiceServer<SignalApi> {
    let max = state.config.max_request_bytes;
    SignalServiceServer::new(SignalApi::new(state))
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
}

fn scope_of(id: Option<&WorkflowExecutionIdentifier>) -> (String, String) {
    id.map_or_else(Default::default, |id| {
        (id.project.clone(), id.domain.clone())
    })
}

#[tonic::async_trait]
impl SignalService for SignalApi {
    async fn get_or_create_signal(
        &self,
        request: Request<SignalGetOrCreateRequest>,
    ) -> Result<Response<Signal>, Status> {
        let r = request.into_inner();
        let (p, d) = scope_of(r.id.as_ref().and_then(|i| i.execution_id.as_ref()));
        run("GetOrCreateSignal", &p, &d, async {
            let key = signal_key(r.id.as_ref())?;
            let signal_type = r.r#type.as_ref().ok_or_else(|| missing("type"))?;
            Ok(Response::new(
                get_or_create(&self.state, &key, signal_type).await?,
            ))
        })
        .await
    }

    async fn list_signals(
        &self,
        request: Request<SignalListRequest>,
    ) -> Result<Response<SignalList>, Status> {
        let r = request.into_inner();
        let (p, d) = scope_of(r.workflow_execution_id.as_ref());
        run("ListSignals", &p, &d, list(&self.state, &r)).await
    }

    async fn set_signal(
        &self,
        request: Request<SignalSetRequest>,
    ) -> Result<Response<SignalSetResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope_of(r.id.as_ref().and_then(|i| i.execution_id.as_ref()));
        run("SetSignal", &p, &d, set(&self.state, &r)).await
    }
}

/// flyteadmin's `ValidateSignalIdentifier`: an execution id with project, domain and name,
/// and a signal id.
pub(crate) fn signal_key(id: Option<&SignalIdentifier>) -> AdminResult<SignalKey> {
    let id = id.ok_or_else(|| missing("id"))?;
    let execution = execution_key(id.execution_id.as_ref())?;
    if id.signal_id.is_empty() {
        return Err(missing("id.signal_id"));
    }
    Ok(SignalKey {
        execution,
        signal_id: id.signal_id.clone(),
    })
}

fn execution_key(id: Option<&WorkflowExecutionIdentifier>) -> AdminResult<ExecutionKey> {
    events::execution_key(id).map_err(|r| AdminError::InvalidArgument(r.to_string()))
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

/// GetOrCreateSignal, shared with the engine's `SignalStore`.
pub(crate) async fn get_or_create(
    state: &AdminState,
    key: &SignalKey,
    signal_type: &LiteralType,
) -> AdminResult<Signal> {
    let now = Utc::now();
    let record = SignalRecord {
        key: key.clone(),
        r#type: signal_type.encode_to_vec(),
        value: None,
        created_at: now,
        updated_at: now,
    };
    let stored = match state.store.get_or_create_signal(record).await {
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
        && !same_type(existing, signal_type)
    {
        return Err(AdminError::AlreadyExists(format!(
            "{} already exists with type {}; it cannot be asked for with type {}",
            describe(key),
            display_type(existing),
            display_type(signal_type)
        )));
    }
    Ok(signal)
}

async fn list(
    state: &AdminState,
    request: &SignalListRequest,
) -> AdminResult<Response<SignalList>> {
    let execution = execution_key(request.workflow_execution_id.as_ref())?;
    let query = lists::query(
        ListArgs {
            limit: request.limit,
            token: &request.token,
            filters: &request.filters,
            sort_by: request.sort_by.as_ref(),
        },
        &SIGNAL_LIST_FIELDS,
    )?;
    ensure_execution(state, &execution).await?;
    let page = state.store.list_signals(&execution, &query).await?;
    let signals = page
        .items
        .iter()
        .map(to_signal)
        .collect::<AdminResult<_>>()?;
    Ok(Response::new(SignalList {
        signals,
        token: page.next_token,
    }))
}

async fn ensure_execution(state: &AdminState, key: &ExecutionKey) -> AdminResult<()> {
    match state.store.get_execution(key).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound(_)) => Err(AdminError::NotFound(format!("{key} not found"))),
        Err(err) => Err(err.into()),
    }
}

async fn set(
    state: &AdminState,
    request: &SignalSetRequest,
) -> AdminResult<Response<SignalSetResponse>> {
    let key = signal_key(request.id.as_ref())?;
    let value = request.value.as_ref().ok_or_else(|| missing("value"))?;
    flyte_core::types::check_literal_depth(value)
        .map_err(|e| AdminError::InvalidArgument(format!("signal value: {e}")))?;
    let stored = match state.store.get_signal(&key).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound(_)) => {
            ensure_execution(state, &key.execution).await?;
            return Err(AdminError::NotFound(format!(
                "{} not found: a signal exists once the execution reaches the gate node that \
                 waits for it",
                describe(&key)
            )));
        }
        Err(err) => return Err(err.into()),
    };
    let expected: LiteralType = decode_stored(&stored.r#type, "signal type")?;
    if !literal_is_instance(value, &expected) {
        return Err(AdminError::InvalidArgument(format!(
            "invalid value for {}: expected {}, but got {}",
            describe(&key),
            display_type(&expected),
            display_type(&literal_type_of(value))
        )));
    }
    match state
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
    if let Some(launcher) = &state.launcher {
        launcher
            .signal_set(
                &signal_id(&key).execution_id.unwrap_or_default(),
                &key.signal_id,
            )
            .await;
    }
    Ok(Response::new(SignalSetResponse {}))
}
