//! The client's one error type, and the exit codes it maps to.

use std::process::ExitCode;

/// Exit codes (docs/cli.md): 0 success, 1 an error or a FAILED execution, 2 bad usage
/// (clap's own code too), 3 an ABORTED execution, 4 a TIMED_OUT one.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const ABORTED: u8 = 3;
    pub const TIMED_OUT: u8 = 4;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The client configuration (file, endpoint) cannot be used.
    #[error("configuration: {0}")]
    Config(String),
    /// Bad arguments or input values: the message says what to change.
    #[error("{0}")]
    Usage(String),
    /// The server answered a call with an error.
    #[error("{context}: {} ({:?})", status.message(), status.code())]
    Rpc {
        context: String,
        status: Box<tonic::Status>,
    },
    /// The server cannot be reached.
    #[error("cannot reach flyte-rs at {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// A plain HTTP call (attempt logs) failed.
    #[error("{0}")]
    Http(String),
    #[error("{0}")]
    Io(String),
}

impl CliError {
    /// A wrapper for `map_err` on a gRPC call: what was being done, and the status.
    pub fn rpc(context: impl Into<String>) -> impl FnOnce(tonic::Status) -> Self {
        let context = context.into();
        move |status| Self::Rpc {
            context,
            status: Box::new(status),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(exit::USAGE),
            _ => ExitCode::from(exit::FAILURE),
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;
