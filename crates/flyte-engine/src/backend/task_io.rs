//! What backends read and write in the blob store for an attempt, and how the files a task
//! leaves behind become an outcome (propeller's `ioutils/remote_file_output_reader.go` and
//! `task/handler.go::ValidateOutput`).

use bytes::Bytes;
use flyte_blob::{BlobError, BlobStore};
use flyteidl::core::{
    ErrorDocument, ExecutionError, LiteralMap, TaskLog, TaskTemplate, container_error,
    execution_error,
};
use prost::Message;

use super::{AttemptOutcome, BackendError};

/// File names in an attempt's output prefix (flytekit `core/constants.py`).
pub const OUTPUTS_FILE: &str = "outputs.pb";
pub const ERROR_FILE: &str = "error.pb";
pub const FUTURES_FILE: &str = "futures.pb";

/// Resolves once the abort switch of an attempt is set (never, if its sender is gone).
pub async fn aborted(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let set = rx.wait_for(|v| *v).await.is_ok();
    if !set {
        std::future::pending::<()>().await;
    }
}

/// The store key of a native URL the engine handed us.
pub fn key_of(store: &BlobStore, url: &str) -> Result<String, BackendError> {
    store.path_from_native_url(url).ok_or_else(|| {
        BackendError::Internal(format!(
            "{url} is not inside the blob store {}",
            store.root_url()
        ))
    })
}

/// `<prefix key>/<file>`.
pub fn child_key(prefix_key: &str, file: &str) -> String {
    format!("{}/{file}", prefix_key.trim_end_matches('/'))
}

/// Reads an object; `None` if it does not exist.
pub async fn get_optional(store: &BlobStore, key: &str) -> Result<Option<Bytes>, BlobError> {
    match store.get(key).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Reads a `LiteralMap` (`inputs.pb`); a missing file is an empty map (a task without inputs).
pub async fn read_literal_map(store: &BlobStore, url: &str) -> Result<LiteralMap, BackendError> {
    let key = key_of(store, url)?;
    match get_optional(store, &key).await {
        Ok(None) => Ok(LiteralMap::default()),
        Ok(Some(bytes)) => LiteralMap::decode(bytes).map_err(|e| {
            BackendError::Internal(format!("cannot decode {url} as a LiteralMap: {e}"))
        }),
        Err(e) => Err(BackendError::Internal(format!("cannot read {url}: {e}"))),
    }
}

/// Writes `outputs.pb` into an output prefix (a native URL).
pub async fn write_outputs(
    store: &BlobStore,
    output_prefix: &str,
    outputs: &LiteralMap,
) -> Result<(), BackendError> {
    let key = child_key(&key_of(store, output_prefix)?, OUTPUTS_FILE);
    // A full disk is waited out as the engine's own writes are (the attempt stays running).
    let first_delay = crate::EngineConfig::default().sink_retry_delay;
    let data = Bytes::from(outputs.encode_to_vec());
    crate::retry::put_blob(store, &key, data, first_delay, None)
        .await
        .map_err(|e| BackendError::Internal(format!("cannot write {key}: {e}")))
}

/// An `ExecutionError` with the given code, message and kind.
pub fn execution_error(
    code: &str,
    message: impl Into<String>,
    kind: execution_error::ErrorKind,
) -> ExecutionError {
    ExecutionError {
        code: code.to_string(),
        message: message.into(),
        kind: kind as i32,
        ..Default::default()
    }
}

/// A failed outcome.
pub fn failed(error: ExecutionError, retryable: bool, logs: Vec<TaskLog>) -> AttemptOutcome {
    AttemptOutcome::Failed {
        error,
        retryable,
        logs,
    }
}

/// A retryable SYSTEM failure for storage trouble while evaluating an attempt (propeller
/// returns the error and retries the node as a system failure).
pub fn storage_failure(
    what: &str,
    err: impl std::fmt::Display,
    logs: Vec<TaskLog>,
) -> AttemptOutcome {
    failed(
        execution_error(
            "StorageError",
            format!("{what}: {err}"),
            execution_error::ErrorKind::System,
        ),
        true,
        logs,
    )
}

/// `error.pb` as the outcome it stands for (`errorDoc2ExecutionError`): RECOVERABLE is
/// retryable, `origin` becomes the kind; a document without an error is a recoverable
/// SYSTEM `ErrorFileBadFormat`, as is one that does not decode.
pub fn error_document_outcome(bytes: &[u8], url: &str, logs: Vec<TaskLog>) -> AttemptOutcome {
    let doc = match ErrorDocument::decode(bytes) {
        Ok(doc) => doc,
        Err(e) => {
            return failed(
                execution_error(
                    "ErrorFileBadFormat",
                    format!("error file @[{url}] is not an ErrorDocument: {e}"),
                    execution_error::ErrorKind::System,
                ),
                true,
                logs,
            );
        }
    };
    match doc.error {
        None => failed(
            execution_error(
                "ErrorFileBadFormat",
                format!("error not formatted correctly, nil error @path [{url}]"),
                execution_error::ErrorKind::System,
            ),
            true,
            logs,
        ),
        Some(err) => {
            let retryable = err.kind == container_error::Kind::Recoverable as i32;
            failed(
                ExecutionError {
                    code: err.code,
                    message: err.message,
                    error_uri: String::new(),
                    kind: err.origin,
                    timestamp: err.timestamp,
                    worker: err.worker,
                },
                retryable,
                logs,
            )
        }
    }
}

/// Whether the task's interface declares outputs.
pub fn outputs_declared(template: &TaskTemplate) -> bool {
    template
        .interface
        .as_ref()
        .and_then(|i| i.outputs.as_ref())
        .is_some_and(|o| !o.variables.is_empty())
}

/// Evaluates the output prefix of an attempt whose process (or plugin) ended successfully:
/// `error.pb` first (flytekit exits 0 after a user error), then `futures.pb` (a dynamic task),
/// then `outputs.pb` when the interface declares outputs (missing: a recoverable
/// `OutputsNotFound`, kind UNKNOWN as in propeller).
pub async fn evaluate_success(
    store: &BlobStore,
    output_prefix: &str,
    template: &TaskTemplate,
    logs: Vec<TaskLog>,
) -> AttemptOutcome {
    let prefix_key = match key_of(store, output_prefix) {
        Ok(k) => k,
        Err(e) => return storage_failure("output prefix", e, logs),
    };
    if let Some(outcome) = read_error_file(store, &prefix_key, output_prefix, &logs).await {
        return outcome;
    }
    match store.head(&child_key(&prefix_key, FUTURES_FILE)).await {
        Ok(Some(_)) => return AttemptOutcome::Succeeded { logs },
        Ok(None) => {}
        Err(e) => return storage_failure("cannot check for futures.pb", e, logs),
    }
    if !outputs_declared(template) {
        return AttemptOutcome::Succeeded { logs };
    }
    match store.head(&child_key(&prefix_key, OUTPUTS_FILE)).await {
        Ok(Some(_)) => AttemptOutcome::Succeeded { logs },
        Ok(None) => failed(
            execution_error(
                "OutputsNotFound",
                "Outputs not generated by task execution",
                execution_error::ErrorKind::Unknown,
            ),
            true,
            logs,
        ),
        Err(e) => storage_failure("cannot check for outputs.pb", e, logs),
    }
}

/// The outcome `error.pb` in the output prefix stands for, if there is one.
pub async fn read_error_file(
    store: &BlobStore,
    prefix_key: &str,
    output_prefix: &str,
    logs: &[TaskLog],
) -> Option<AttemptOutcome> {
    let key = child_key(prefix_key, ERROR_FILE);
    match get_optional(store, &key).await {
        Ok(None) => None,
        Ok(Some(bytes)) => {
            let url = format!("{}/{ERROR_FILE}", output_prefix.trim_end_matches('/'));
            Some(error_document_outcome(&bytes, &url, logs.to_vec()))
        }
        Err(e) => Some(storage_failure("cannot read error.pb", e, logs.to_vec())),
    }
}
