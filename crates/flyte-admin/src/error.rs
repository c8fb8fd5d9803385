//! The admin API's one error type, and its mapping to gRPC and HTTP codes (the only place
//! where codes are chosen). flytekit starts a browser login on UNKNOWN or UNAUTHENTICATED, so
//! neither is ever produced here.

use flyte_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type AdminResult<T> = Result<T, AdminError>;

impl AdminError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Self::InvalidArgument(_) => tonic::Code::InvalidArgument,
            Self::NotFound(_) => tonic::Code::NotFound,
            Self::AlreadyExists(_) => tonic::Code::AlreadyExists,
            Self::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
            Self::ResourceExhausted(_) => tonic::Code::ResourceExhausted,
            Self::Unimplemented(_) => tonic::Code::Unimplemented,
            Self::Internal(_) => tonic::Code::Internal,
        }
    }
}

/// The HTTP status grpc-gateway uses for a gRPC code (runtime.HTTPStatusFromCode), so
/// REST clients see what Flyte's gateway would send. UNKNOWN is mapped too, for safety.
pub fn http_status_for(code: tonic::Code) -> http::StatusCode {
    use http::StatusCode as S;
    use tonic::Code as C;
    match code {
        C::Ok => S::OK,
        C::Cancelled => S::from_u16(499).unwrap_or(S::BAD_REQUEST),
        C::InvalidArgument | C::OutOfRange => S::BAD_REQUEST,
        C::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        C::NotFound => S::NOT_FOUND,
        C::AlreadyExists | C::Aborted => S::CONFLICT,
        C::PermissionDenied => S::FORBIDDEN,
        C::Unauthenticated => S::UNAUTHORIZED,
        C::ResourceExhausted => S::TOO_MANY_REQUESTS,
        C::FailedPrecondition => S::BAD_REQUEST,
        C::Unimplemented => S::NOT_IMPLEMENTED,
        C::Unavailable => S::SERVICE_UNAVAILABLE,
        C::Unknown | C::Internal | C::DataLoss => S::INTERNAL_SERVER_ERROR,
    }
}

impl From<AdminError> for tonic::Status {
    fn from(err: AdminError) -> Self {
        let code = err.grpc_code();
        if code == tonic::Code::Internal {
            tracing::error!(error = %err, "internal error answered to a client");
        }
        tonic::Status::new(code, err.to_string())
    }
}

impl From<StoreError> for AdminError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::AlreadyExists(what) => {
                Self::AlreadyExists(format!("{what} already exists"))
            }
            StoreError::InvalidArgument(msg) => Self::InvalidArgument(msg),
            full @ StoreError::StorageFull(_) => Self::ResourceExhausted(full.to_string()),
            StoreError::Internal(source) => Self::Internal(source.to_string()),
        }
    }
}
