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

use flyte_store::{ExecutionKey, SignalKey};
use flyteidl::admin::{
    Signal, SignalGetOrCreateRequest, SignalList, SignalListRequest, SignalSetRequest,
    SignalSetResponse,
};
use flyteidl::core::{SignalIdentifier, WorkflowExecutionIdentifier};
use flyteidl::service::signal_service_server::{SignalService, SignalServiceServer};
use tonic::{Request, Response, Status};

use crate::error::{AdminError, AdminResult};
use crate::service::admin::common::{missing, run};
use crate::service::admin::events;
use crate::service::admin::lists::{self, ListArgs, ListFields};
pub use crate::services::signals::SIGNALS_SET_TOTAL;
use crate::services::signals::{GetOrCreateSignal, ListSignals, SetSignal};
use crate::state::AdminState;

const SIGNAL_LIST_FIELDS: ListFields = ListFields {
    what: "signals",
    prefixes: &["signal"],
    filter_fields: &["signal_id", "created_at", "updated_at"],
    sort_fields: &["signal_id", "created_at", "updated_at"],
};

/// The SignalService adapter over [`crate::services::SignalService`].
#[derive(Clone)]
pub struct SignalApi {
    signals: crate::services::SignalService,
}

impl SignalApi {
    pub fn new(state: AdminState) -> Self {
        Self {
            signals: crate::services::SignalService::new(state),
        }
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
            let signal_type = r.r#type.ok_or_else(|| missing("type"))?;
            let command = GetOrCreateSignal { key, signal_type };
            Ok(Response::new(self.signals.get_or_create(command).await?))
        })
        .await
    }

    async fn list_signals(
        &self,
        request: Request<SignalListRequest>,
    ) -> Result<Response<SignalList>, Status> {
        let r = request.into_inner();
        let (p, d) = scope_of(r.workflow_execution_id.as_ref());
        run("ListSignals", &p, &d, async {
            let command = list_command(&r)?;
            Ok(Response::new(self.signals.list(command).await?))
        })
        .await
    }

    async fn set_signal(
        &self,
        request: Request<SignalSetRequest>,
    ) -> Result<Response<SignalSetResponse>, Status> {
        let r = request.into_inner();
        let (p, d) = scope_of(r.id.as_ref().and_then(|i| i.execution_id.as_ref()));
        run("SetSignal", &p, &d, async {
            let key = signal_key(r.id.as_ref())?;
            let value = r.value.ok_or_else(|| missing("value"))?;
            self.signals.set(SetSignal { key, value }).await?;
            Ok(Response::new(SignalSetResponse {}))
        })
        .await
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

/// ListSignals' execution and page (filters and sort as the API spells them).
fn list_command(request: &SignalListRequest) -> AdminResult<ListSignals> {
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
    Ok(ListSignals { execution, query })
}
