//! The store's metric names, in one place. [`describe`] registers their help texts; call it
//! once after installing the recorder (the binary does, next to the other crates' metrics).

use std::time::Duration;

/// Histogram, seconds: one store operation (usually one transaction) from start to commit.
/// Labels: `op` (the trait method, e.g. `create_entity`), `backend` (`sqlite`/`postgres`).
pub const QUERY_DURATION_SECONDS: &str = "flyte_store_query_duration_seconds";
/// Counter: failed store operations. Labels: `op`, `backend`, `kind` (`not_found`,
/// `already_exists`, `invalid_argument`, `internal`).
pub const ERRORS_TOTAL: &str = "flyte_store_errors_total";

pub const LABEL_OP: &str = "op";
pub const LABEL_BACKEND: &str = "backend";
pub const LABEL_KIND: &str = "kind";

/// Registers units and help texts of the store metrics with the installed recorder.
pub fn describe() {
    metrics::describe_histogram!(
        QUERY_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Latency of metadata store operations (one transaction each), by operation"
    );
    metrics::describe_counter!(
        ERRORS_TOTAL,
        "Failed metadata store operations, by operation and error kind"
    );
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
