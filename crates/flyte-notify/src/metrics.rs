//! The notifier's metric names (docs/observability.md).

/// Counter: notifications delivered, by `kind` (`email`, `slack`, `pagerduty`, `webhook`).
pub const SENT: &str = "flyte_notify_sent_total";
/// Counter: delivery attempts that failed and will be retried, by `kind`.
pub const RETRIES: &str = "flyte_notify_retries_total";
/// Counter: notifications given up after `notifications.max_attempts`, or that have no
/// configured sender, by `kind`.
pub const FAILED: &str = "flyte_notify_failed_total";
/// Counter: closed outbox rows deleted after `notifications.retention_hours`.
pub const PRUNED: &str = "flyte_notify_pruned_total";

/// Every metric of the notifier: (name, Prometheus type, help).
pub const ALL: &[(&str, &str, &str)] = &[
    (
        SENT,
        "counter",
        "Notifications delivered, by kind (email, slack, pagerduty, webhook)",
    ),
    (
        RETRIES,
        "counter",
        "Notification deliveries that failed and are retried with backoff, by kind",
    ),
    (
        FAILED,
        "counter",
        "Notifications given up (attempts exhausted or no sender configured), by kind",
    ),
    (
        PRUNED,
        "counter",
        "Closed notification outbox rows deleted after notifications.retention_hours",
    ),
];

/// Registers the help texts of [`ALL`] with the installed recorder.
pub fn describe() {
    for &(name, _, help) in ALL {
        metrics::describe_counter!(name, help);
    }
}
