//! The store's metric names, in one place. [`describe`] registers their help texts; call it
//! once after installing the recorder (the binary does, next to the other crates' metrics).

use std::time::Duration;

/// Histogram, seconds: one store operation (usually one transaction) from start to commit.
/// Labels: `op` (the trait method, e.g. `create_entity`), `backend` (`sqlite`/`postgres`).
pub const QUERY_DURATION_SECONDS: &str = "flyte_store_query_duration_seconds";
/// Counter: failed store operations. Labels: `op`, `backend`, `kind` (`not_found`,
/// `already_exists`, `invalid_argument`, `internal`).
pub const ERRORS_TOTAL: &str = "flyte_store_errors_total";

/// Histogram: records in one state batch (one transaction of [`crate::MetadataStore::apply`]).
/// Label `kind` (`executions`, `node_executions`, `task_executions`, `engine`).
pub const BATCH_RECORDS: &str = "flyte_store_batch_records";

/// Every store metric: (name, Prometheus type, help).
pub const ALL: &[(&str, &str, &str)] = &[
    (
        QUERY_DURATION_SECONDS,
        "histogram",
        "Latency of metadata store operations (one transaction each), by operation",
    ),
    (
        ERRORS_TOTAL,
        "counter",
        "Failed metadata store operations, by operation and error kind",
    ),
    (
        BATCH_RECORDS,
        "histogram",
        "Records written by one state batch transaction, by record kind",
    ),
];

pub const LABEL_OP: &str = "op";
pub const LABEL_BACKEND: &str = "backend";
pub const LABEL_KIND: &str = "kind";

/// Registers units and help texts of the store metrics with the installed recorder.
pub fn describe() {
    for &(name, kind, help) in ALL {
        match kind {
            "counter" => metrics::describe_counter!(name, help),
            _ => metrics::describe_histogram!(name, help),
        }
    }
}

/// Records the size of one state batch, per record kind.
pub(crate) fn batch(batch: &crate::StateBatch) {
    for (kind, n) in [
        ("executions", batch.executions.len()),
        ("node_executions", batch.node_executions.len()),
        ("task_executions", batch.task_executions.len()),
        ("engine", batch.engine.len()),
    ] {
        metrics::histogram!(BATCH_RECORDS, "kind" => kind).record(n as f64);
    }
}

pub(crate) fn record(
    op: &'static str,
    backend: &'static str,
    elapsed: Duration,
    error: Option<&'static str>,
) {
    metrics::histogram!(QUERY_DURATION_SECONDS, LABEL_OP => op, LABEL_BACKEND => backend)
        .record(elapsed.as_secs_f64());
    if let Some(kind) = error {
        metrics::counter!(ERRORS_TOTAL, LABEL_OP => op, LABEL_BACKEND => backend, LABEL_KIND => kind)
            .increment(1);
    }
}
