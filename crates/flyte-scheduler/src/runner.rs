//! The scheduler's loop: every poll it reads the active schedules from the store, launches
//! every tick due since the last one recorded (oldest first), and records each launched tick.
//!
//! Exactly once per tick: the execution's name is derived from the launch plan version and
//! the tick ([`crate::names`]), so a tick launched again (after a crash between the launch
//! and the record, or by another replica at the same moment) is ALREADY_EXISTS and counts
//! as launched; the record is a compare-and-set that only moves forward. Every replica may
//! run the loop; none needs to be elected.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use flyte_engine::clock::Clock;
use flyte_store::{EntityKey, MetadataStore, ScheduleRecord, StoreError};
use flyteidl::admin::LaunchPlanSpec;
use prost::Message;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::launch::{LaunchError, ScheduledLaunch, ScheduledLauncher};
use crate::metrics as m;
use crate::names::execution_name;
use crate::schedule::{Schedule, utc};

/// How the scheduler runs (the typed config's `scheduler` section).
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often it looks for due ticks (the latency of a launch after its time).
    pub poll_interval: Duration,
    /// After downtime, at most this many missed ticks per schedule are launched (the newest);
    /// older ones are skipped, logged and counted.
    pub catch_up_limit: usize,
    /// The zone cron expressions are evaluated in.
    pub time_zone: Tz,
    /// A launch later than this after its tick counts as late (metric).
    pub late_after: chrono::Duration,
    /// The first wait before retrying a schedule whose launch failed for a passing reason;
    /// doubled on each failure up to `max_retry_wait`.
    pub retry_wait: Duration,
    pub max_retry_wait: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            catch_up_limit: 100,
            time_zone: utc(),
            late_after: chrono::Duration::seconds(60),
            retry_wait: Duration::from_secs(1),
            max_retry_wait: Duration::from_secs(300),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Ticks launched (including ones found already launched).
    pub launched: usize,
    /// Ticks given up (rejected) or left for a retry (unavailable).
    pub failed: usize,
    /// Missed ticks beyond the catch-up limit.
    pub skipped: u64,
}

#[derive(Debug, Clone)]
enum Parsed {
    /// The launch plan has no schedule.
    Unscheduled,
    Invalid(String),
    Valid(Schedule),
}

struct Retry {
    not_before: Instant,
    wait: Duration,
}

/// The native scheduler.
pub struct Scheduler {
    store: Arc<dyn MetadataStore>,
    launcher: Arc<dyn ScheduledLauncher>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    /// Launch plan versions are immutable: each is parsed once.
    parsed: HashMap<EntityKey, Parsed>,
    retries: HashMap<EntityKey, Retry>,
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        launcher: Arc<dyn ScheduledLauncher>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        Self {
            store,
            launcher,
            clock,
            config,
            parsed: HashMap::new(),
            retries: HashMap::new(),
        }
    }

    /// Runs passes every poll interval until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            poll_ms = self.config.poll_interval.as_millis() as u64,
            time_zone = %self.config.time_zone,
            catch_up_limit = self.config.catch_up_limit,
            "scheduler started"
        );
        loop {
            if *stop.borrow() {
                break;
            }
            if let Err(err) = self.pass().await {
                // The store is unavailable; the next pass catches up.
                tracing::warn!(error = %err, "scheduler pass failed; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll_interval) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        tracing::info!("scheduler stopped");
    }

    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.clock.now_us())
            .single()
            .unwrap_or_else(Utc::now)
    }

    /// One look at every active schedule: launches what is due.
    pub async fn pass(&mut self) -> Result<Pass, StoreError> {
        let records = self.store.list_active_schedules().await?;
        // Versions no longer active are forgotten (one set, not a scan per entry: this runs
        // every poll).
        let listed: std::collections::HashSet<&EntityKey> =
            records.iter().map(|r| &r.launch_plan).collect();
        self.parsed.retain(|key, _| listed.contains(key));
        self.retries.retain(|key, _| listed.contains(key));
        let mut pass = Pass::default();
        let mut active = 0usize;
        for record in records {
            let parsed = match self.parsed.get(&record.launch_plan) {
                Some(parsed) => parsed.clone(),
                None => {
                    let parsed = self.parse(&record.launch_plan).await?;
                    self.parsed
                        .insert(record.launch_plan.clone(), parsed.clone());
                    parsed
                }
            };
            match parsed {
                Parsed::Unscheduled => {}
                Parsed::Invalid(why) => self.report_invalid(&record, &why).await?,
                Parsed::Valid(schedule) => {
                    active += 1;
                    self.run_schedule(&record, &schedule, &mut pass).await?;
                }
            }
        }
        metrics::gauge!(m::SCHEDULES_ACTIVE).set(active as f64);
        Ok(pass)
    }

    async fn parse(&self, key: &EntityKey) -> Result<Parsed, StoreError> {
        let entity = match self.store.get_entity(key).await {
            Ok(entity) => entity,
            // Deleted between the list and now: nothing to run.
            Err(StoreError::NotFound(_)) => return Ok(Parsed::Unscheduled),
            Err(err) => return Err(err),
        };
        let spec = match LaunchPlanSpec::decode(entity.spec.as_slice()) {
            Ok(spec) => spec,
            Err(err) => {
                return Ok(Parsed::Invalid(format!(
                    "the stored launch plan spec cannot be decoded: {err}"
                )));
            }
        };
        let Some(schedule) = spec.entity_metadata.and_then(|m| m.schedule) else {
            return Ok(Parsed::Unscheduled);
        };
        Ok(match Schedule::from_proto(&schedule) {
            Ok(schedule) => Parsed::Valid(schedule),
            Err(err) => Parsed::Invalid(err.0),
        })
    }

    /// A schedule that cannot run: logged at ERROR once per activation and recorded, so the
    /// console and the command line show why.
    async fn report_invalid(&self, record: &ScheduleRecord, why: &str) -> Result<(), StoreError> {
        if record.last_tick_at.is_some() {
            return Ok(());
        }
        let lp = &record.launch_plan;
        tracing::error!(
            project = %lp.project, domain = %lp.domain, launch_plan = %lp.name,
            version = %lp.version, error = %why,
            "the launch plan's schedule cannot run; it launches nothing until a valid version is activated"
        );
        metrics::counter!(m::INVALID_SCHEDULES).increment(1);
        self.store
            .record_schedule_tick(
                lp,
                record.activated_at,
                record.activated_at,
                &format!("invalid schedule: {why}"),
            )
            .await?;
        Ok(())
    }

    async fn run_schedule(
        &mut self,
        record: &ScheduleRecord,
        schedule: &Schedule,
        pass: &mut Pass,
    ) -> Result<(), StoreError> {
        let lp = &record.launch_plan;
        if let Some(retry) = self.retries.get(lp)
            && Instant::now() < retry.not_before
        {
            return Ok(());
        }
        let now = self.now();
        let from = record
            .last_tick_at
            .map_or(record.activated_at, |last| last.max(record.activated_at));
        let due = schedule.due(from, now, self.config.time_zone, self.config.catch_up_limit);
        if due.skipped > 0 {
            tracing::warn!(
                project = %lp.project, domain = %lp.domain, launch_plan = %lp.name,
                version = %lp.version, skipped = due.skipped,
                limit = self.config.catch_up_limit,
                "more ticks were missed than scheduler.catch_up_limit: the oldest are skipped"
            );
            metrics::counter!(m::SKIPPED_TICKS).increment(due.skipped);
            pass.skipped += due.skipped;
        }
        for tick in due.ticks {
            let launch = ScheduledLaunch {
                launch_plan: lp.clone(),
                name: execution_name(lp, tick),
                scheduled_at: tick,
                kickoff_input: schedule.kickoff_input.clone(),
            };
            let error = match self.launcher.launch(&launch).await {
                Ok(()) | Err(LaunchError::AlreadyExists) => {
                    let late = now - tick;
                    tracing::info!(
                        project = %lp.project, domain = %lp.domain, launch_plan = %lp.name,
                        version = %lp.version, execution = %launch.name,
                        scheduled_at = %tick, late_ms = late.num_milliseconds(),
                        "scheduled execution launched"
                    );
                    metrics::counter!(m::LAUNCHES).increment(1);
                    if late > self.config.late_after {
                        metrics::counter!(m::LATE_LAUNCHES).increment(1);
                    }
                    pass.launched += 1;
                    self.retries.remove(lp);
                    String::new()
                }
                Err(LaunchError::Rejected(why)) => {
                    tracing::error!(
                        project = %lp.project, domain = %lp.domain, launch_plan = %lp.name,
                        version = %lp.version, execution = %launch.name, scheduled_at = %tick,
                        error = %why, "the schedule could not launch this tick; it is skipped"
                    );
                    metrics::counter!(m::LAUNCH_FAILURES, "reason" => "rejected").increment(1);
                    pass.failed += 1;
                    why
                }
                Err(LaunchError::Unavailable(why)) => {
                    let wait = self.retries.get(lp).map_or(self.config.retry_wait, |r| {
                        (r.wait * 2).min(self.config.max_retry_wait)
                    });
                    tracing::warn!(
                        project = %lp.project, domain = %lp.domain, launch_plan = %lp.name,
                        version = %lp.version, execution = %launch.name, scheduled_at = %tick,
                        error = %why, retry_in_ms = wait.as_millis() as u64,
                        "the schedule could not launch this tick now; retrying"
                    );
                    metrics::counter!(m::LAUNCH_FAILURES, "reason" => "unavailable").increment(1);
                    pass.failed += 1;
                    self.retries.insert(
                        lp.clone(),
                        Retry {
                            not_before: Instant::now() + wait,
                            wait,
                        },
                    );
                    // Not recorded: the tick is launched again at the retry.
                    return Ok(());
                }
            };
            self.store
                .record_schedule_tick(lp, record.activated_at, tick, &error)
                .await?;
        }
        Ok(())
    }
}
