//! The scheduler's metric names (docs/observability.md).

/// Gauge: active launch plans with a schedule.
pub const SCHEDULES_ACTIVE: &str = "flyte_scheduler_schedules_active";
/// Counter: ticks launched (an execution created, or found already created for the tick).
pub const LAUNCHES: &str = "flyte_scheduler_launches_total";
/// Counter: ticks launched later than `scheduler.late_after_secs` after their time.
pub const LATE_LAUNCHES: &str = "flyte_scheduler_late_launches_total";
/// Counter: launches that failed, by `reason` (`rejected`: the tick was given up;
/// `unavailable`: retried).
pub const LAUNCH_FAILURES: &str = "flyte_scheduler_launch_failures_total";
/// Counter: missed ticks left out of a catch-up beyond `scheduler.catch_up_limit`.
pub const SKIPPED_TICKS: &str = "flyte_scheduler_skipped_ticks_total";
/// Counter: schedules that cannot run (an invalid expression).
pub const INVALID_SCHEDULES: &str = "flyte_scheduler_invalid_schedules_total";

/// Every metric of the scheduler: (name, Prometheus type, help).
pub const ALL: &[(&str, &str, &str)] = &[
    (
        SCHEDULES_ACTIVE,
        "gauge",
        "Active launch plans with a schedule",
    ),
    (
        LAUNCHES,
        "counter",
        "Schedule ticks launched (created, or found created)",
    ),
    (
        LATE_LAUNCHES,
        "counter",
        "Schedule ticks launched later than scheduler.late_after_secs after their time",
    ),
    (
        LAUNCH_FAILURES,
        "counter",
        "Schedule ticks that failed to launch, by reason (rejected: given up; unavailable: retried)",
    ),
    (
        SKIPPED_TICKS,
        "counter",
        "Missed schedule ticks skipped beyond scheduler.catch_up_limit",
    ),
    (
        INVALID_SCHEDULES,
        "counter",
        "Activated schedules that cannot run (an invalid expression)",
    ),
];

/// Registers the help texts of [`ALL`] with the installed recorder.
pub fn describe() {
    for &(name, kind, help) in ALL {
        match kind {
            "counter" => metrics::describe_counter!(name, help),
            _ => metrics::describe_gauge!(name, help),
        }
    }
}
