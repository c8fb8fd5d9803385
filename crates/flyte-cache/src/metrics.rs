//! The cache's metric names, in one place. [`describe`] registers their help texts; call it
//! once after installing the recorder.

/// Counter: lookups that found cached outputs (CACHE_HIT). Label `via` (`engine`,
/// `cache_service`, `datacatalog`).
pub const HITS_TOTAL: &str = "flyte_cache_hits_total";
/// Counter: lookups that found nothing (CACHE_MISS). Label `via`.
pub const MISSES_TOTAL: &str = "flyte_cache_misses_total";
/// Counter: successful puts (CACHE_POPULATED). Labels `via`, `outcome` (`created`, `kept`: the
/// key was already populated, `replaced`: overwrite).
pub const PUTS_TOTAL: &str = "flyte_cache_puts_total";
/// Counter: failed lookups and puts (CACHE_LOOKUP_FAILURE, CACHE_PUT_FAILURE). Labels `via`,
/// `op` (`lookup`, `put`).
pub const FAILURES_TOTAL: &str = "flyte_cache_failures_total";
/// Histogram, seconds: a lookup, hit or miss, including decoding the outputs.
pub const LOOKUP_DURATION_SECONDS: &str = "flyte_cache_lookup_duration_seconds";
/// Counter: reservation requests. Label `result` (`acquired`: the caller holds it, `held`:
/// another owner does).
pub const RESERVATIONS_TOTAL: &str = "flyte_cache_reservations_total";
/// Counter: cached entries evicted (per task, version, execution or key).
pub const EVICTED_TOTAL: &str = "flyte_cache_evicted_total";

pub const LABEL_VIA: &str = "via";
pub const LABEL_OUTCOME: &str = "outcome";
pub const LABEL_OP: &str = "op";
pub const LABEL_RESULT: &str = "result";

/// `via` of lookups and puts made by the engine through [`crate::TaskCache`].
pub const VIA_ENGINE: &str = "engine";
/// `via` of the CacheService API.
pub const VIA_CACHE_SERVICE: &str = "cache_service";
/// `via` of the DataCatalog API (GetArtifact by tag counts as a lookup).
pub const VIA_DATACATALOG: &str = "datacatalog";

/// Every cache metric: (name, Prometheus type, help).
pub const ALL: &[(&str, &str, &str)] = &[
    (
        HITS_TOTAL,
        "counter",
        "Cache lookups that found cached outputs",
    ),
    (MISSES_TOTAL, "counter", "Cache lookups that found nothing"),
    (
        PUTS_TOTAL,
        "counter",
        "Outputs stored in the cache, by outcome",
    ),
    (FAILURES_TOTAL, "counter", "Failed cache lookups and puts"),
    (
        LOOKUP_DURATION_SECONDS,
        "histogram",
        "Latency of cache lookups, hit or miss, outputs decoded",
    ),
    (
        RESERVATIONS_TOTAL,
        "counter",
        "cache_serialize reservation requests",
    ),
    (EVICTED_TOTAL, "counter", "Cached entries evicted"),
];

/// Registers help texts of the cache metrics with the installed recorder.
pub fn describe() {
    for &(name, kind, help) in ALL {
        match kind {
            "counter" => metrics::describe_counter!(name, help),
            _ => metrics::describe_histogram!(name, help),
        }
    }
}

pub fn hit(via: &'static str) {
    metrics::counter!(HITS_TOTAL, LABEL_VIA => via).increment(1);
}

pub fn miss(via: &'static str) {
    metrics::counter!(MISSES_TOTAL, LABEL_VIA => via).increment(1);
}

pub fn put(via: &'static str, outcome: &'static str) {
    metrics::counter!(PUTS_TOTAL, LABEL_VIA => via, LABEL_OUTCOME => outcome).increment(1);
}

pub fn failure(via: &'static str, op: &'static str) {
    metrics::counter!(FAILURES_TOTAL, LABEL_VIA => via, LABEL_OP => op).increment(1);
}

pub fn lookup_duration(seconds: f64) {
    metrics::histogram!(LOOKUP_DURATION_SECONDS).record(seconds);
}

pub fn reservation(acquired: bool) {
    let result = if acquired { "acquired" } else { "held" };
    metrics::counter!(RESERVATIONS_TOTAL, LABEL_RESULT => result).increment(1);
}

pub fn evicted(n: u64) {
    metrics::counter!(EVICTED_TOTAL).increment(n);
}
