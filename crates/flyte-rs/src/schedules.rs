//! Starts the native scheduler (crates/flyte-scheduler) over the admin's execution service.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use flyte_admin::AdminState;
use flyte_admin::services::ExecutionService;
use flyte_engine::clock::SystemClock;
use flyte_scheduler::{Scheduler, SchedulerConfig, schedule::parse_time_zone};
use tokio::sync::watch;

use crate::config::Config;

/// The schedules API (`/api/v1/schedules/…`), in the scheduler's time zone.
pub fn api(config: &Config, admin: &AdminState) -> anyhow::Result<axum::Router> {
    let time_zone = parse_time_zone(&config.scheduler.time_zone).context("scheduler.time_zone")?;
    Ok(flyte_scheduler::api::router(
        admin.store.clone(),
        Arc::new(SystemClock),
        time_zone,
    ))
}

/// Spawns the scheduler's loop, stopped when `stop` turns true; nothing when
/// `scheduler.enabled` is off.
pub fn start(
    config: &Config,
    admin: &AdminState,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let section = &config.scheduler;
    if !section.enabled {
        tracing::info!("scheduler.enabled is off: launch-plan schedules do not run on this server");
        return Ok(None);
    }
    let scheduler_config = SchedulerConfig {
        poll_interval: Duration::from_millis(section.poll_ms),
        catch_up_limit: section.catch_up_limit,
        time_zone: parse_time_zone(&section.time_zone).context("scheduler.time_zone")?,
        late_after: chrono::Duration::seconds(
            i64::try_from(section.late_after_secs).unwrap_or(i64::MAX / 1_000_000),
        ),
        ..SchedulerConfig::default()
    };
    let scheduler = Scheduler::new(
        admin.store.clone(),
        Arc::new(ExecutionService::new(admin.clone())),
        Arc::new(SystemClock),
        scheduler_config,
    );
    Ok(Some(tokio::spawn(scheduler.run(stop))))
}
