//! Metric names of the blob store, declared in one place.
//!
//! * [`BLOB_OPERATIONS_TOTAL`] counter, labels `op` (`put`, `get`, `head`) and `outcome`
//!   (`ok`, `not_found`, `error`).
//! * [`BLOB_BYTES_TOTAL`] counter, label `op` (`put`, `get`): payload bytes moved.

pub const BLOB_OPERATIONS_TOTAL: &str = "flyte_blob_operations_total";
pub const BLOB_BYTES_TOTAL: &str = "flyte_blob_bytes_total";

/// Every blob metric: (name, Prometheus type, help).
pub const ALL: &[(&str, &str, &str)] = &[
    (
        BLOB_OPERATIONS_TOTAL,
        "counter",
        "Blob store operations, by operation and outcome",
    ),
    (
        BLOB_BYTES_TOTAL,
        "counter",
        "Payload bytes moved by the blob store, by operation",
    ),
];

/// Registers the help texts of [`ALL`] with the installed recorder.
pub fn describe() {
    for &(name, _, help) in ALL {
        metrics::describe_counter!(name, help);
    }
}

pub(crate) fn record_op(op: &'static str, outcome: &'static str) {
    metrics::counter!(BLOB_OPERATIONS_TOTAL, "op" => op, "outcome" => outcome).increment(1);
}

pub(crate) fn record_bytes(op: &'static str, bytes: u64) {
    metrics::counter!(BLOB_BYTES_TOTAL, "op" => op).increment(bytes);
}
