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
