//! Launch-plan schedules (docs/schedules.md): the native scheduler of Flyte-RS.
//!
//! [`schedule`] is the arithmetic (when a cron or fixed-rate schedule ticks), [`names`] the
//! deterministic execution name of a tick, and [`runner`] the loop that launches due ticks
//! through the execution service and records them, so each tick launches once across
//! restarts and replicas; [`api`] serves what the console and the command line show.

pub mod api;
pub mod launch;
pub mod metrics;
pub mod names;
pub mod runner;
pub mod schedule;

pub use runner::{Scheduler, SchedulerConfig};
pub use schedule::{Schedule, ScheduleError};
