//! The scheduler's loop over a real SQLite store, with a clock the test moves: ticks launch
//! once, with names derived from the tick; a restart (a new scheduler over the same store)
//! neither repeats nor loses a tick; downtime is caught up within the limit; two replicas
//! launch each tick once; failures are retried or given up as they deserve.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, Utc};
use flyte_engine::clock::Clock;
use flyte_scheduler::launch::{LaunchError, ScheduledLaunch, ScheduledLauncher};
use flyte_scheduler::names::execution_name;
use flyte_scheduler::runner::Pass;
use flyte_scheduler::{Scheduler, SchedulerConfig};
use flyte_store::{EntityKey, EntityRecord, LaunchPlanState, MetadataStore, ResourceType};
use flyteidl::admin::{
    self, CronSchedule, FixedRate, FixedRateUnit, LaunchPlanMetadata, LaunchPlanSpec,
    schedule::ScheduleExpression,
};
use prost::Message;

/// A wall clock the test sets.
struct ManualClock(AtomicI64);

impl ManualClock {
    fn at(t: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(t.timestamp_micros())))
    }
    fn advance(&self, by: chrono::Duration) {
        self.0
            .fetch_add(by.num_microseconds().unwrap(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Records launches; a name launched twice is ALREADY_EXISTS, as the execution service
/// answers. `fail_next` makes the next launches fail with the given error.
#[derive(Default)]
struct Recorder {
    launched: Mutex<BTreeMap<String, ScheduledLaunch>>,
    attempts: Mutex<usize>,
    fail_next: Mutex<Vec<LaunchError>>,
}

#[async_trait]
impl ScheduledLauncher for Recorder {
    async fn launch(&self, launch: &ScheduledLaunch) -> Result<(), LaunchError> {
        *self.attempts.lock().unwrap() += 1;
        if let Some(err) = self.fail_next.lock().unwrap().pop() {
            return Err(err);
        }
        let mut launched = self.launched.lock().unwrap();
        if launched.contains_key(&launch.name) {
            return Err(LaunchError::AlreadyExists);
        }
        launched.insert(launch.name.clone(), launch.clone());
        Ok(())
    }
}

impl Recorder {
    fn times(&self) -> Vec<DateTime<Utc>> {
        let mut times: Vec<_> = self
            .launched
            .lock()
            .unwrap()
            .values()
            .map(|l| l.scheduled_at)
            .collect();
        times.sort();
        times
    }
}

fn lp(name: &str, version: &str) -> EntityKey {
    EntityKey {
        resource: ResourceType::LaunchPlan,
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.into(),
        version: version.into(),
    }
}

fn spec(schedule: Option<ScheduleExpression>) -> Vec<u8> {
    LaunchPlanSpec {
        entity_metadata: Some(LaunchPlanMetadata {
            schedule: schedule.map(|expr| admin::Schedule {
                kickoff_time_input_arg: "kickoff_time".into(),
                schedule_expression: Some(expr),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn every_minute() -> Option<ScheduleExpression> {
    Some(ScheduleExpression::Rate(FixedRate {
        value: 1,
        unit: FixedRateUnit::Minute as i32,
    }))
}

async fn store() -> (Arc<dyn MetadataStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("flyte.db").display());
    (flyte_store::open(&url).await.unwrap(), dir)
}

/// Registers and activates a launch plan version; its activation time.
async fn activate(
    store: &Arc<dyn MetadataStore>,
    key: &EntityKey,
    schedule: Option<ScheduleExpression>,
) -> DateTime<Utc> {
    store
        .create_entity(EntityRecord {
            key: key.clone(),
            digest: key.version.clone().into_bytes(),
            spec: spec(schedule),
            closure: Vec::new(),
            state: Some(LaunchPlanState::Inactive),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    store
        .set_launch_plan_state(key, LaunchPlanState::Active)
        .await
        .unwrap();
    let records = store.list_active_schedules().await.unwrap();
    records
        .iter()
        .find(|r| &r.launch_plan == key)
        .unwrap()
        .activated_at
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        retry_wait: Duration::ZERO,
        max_retry_wait: Duration::ZERO,
        catch_up_limit: 5,
        ..Default::default()
    }
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

fn ticks_after(activated: DateTime<Utc>, n: i64) -> Vec<DateTime<Utc>> {
    let base = activated
        .duration_trunc(chrono::Duration::seconds(1))
        .unwrap();
    (1..=n).map(|k| base + minutes(k)).collect()
}

#[tokio::test]
async fn ticks_launch_once_with_derived_names_across_a_restart() {
    let (store, _dir) = store().await;
    let key = lp("every_minute", "v1");
    let activated = activate(&store, &key, every_minute()).await;
    let clock = ManualClock::at(activated);
    let recorder = Arc::new(Recorder::default());
    let mut scheduler = Scheduler::new(store.clone(), recorder.clone(), clock.clone(), config());

    // Nothing is due at the activation itself.
    assert_eq!(scheduler.pass().await.unwrap(), Pass::default());
    clock.advance(minutes(3) + chrono::Duration::seconds(1));
    let pass = scheduler.pass().await.unwrap();
    assert_eq!(pass.launched, 3);
    assert_eq!(recorder.times(), ticks_after(activated, 3));
    let first = recorder
        .launched
        .lock()
        .unwrap()
        .values()
        .next()
        .cloned()
        .unwrap();
    assert_eq!(first.name, execution_name(&key, first.scheduled_at));
    assert_eq!(first.kickoff_input.as_deref(), Some("kickoff_time"));

    // Again at the same time: nothing new, nothing attempted.
    let attempts = *recorder.attempts.lock().unwrap();
    assert_eq!(scheduler.pass().await.unwrap().launched, 0);
    assert_eq!(*recorder.attempts.lock().unwrap(), attempts);

    // A restart: a new scheduler over the same store picks up where the last one stopped.
    drop(scheduler);
    let mut restarted = Scheduler::new(store.clone(), recorder.clone(), clock.clone(), config());
    assert_eq!(restarted.pass().await.unwrap().launched, 0);
    clock.advance(minutes(2));
    assert_eq!(restarted.pass().await.unwrap().launched, 2);
    assert_eq!(recorder.times(), ticks_after(activated, 5));
    let record = &store.list_active_schedules().await.unwrap()[0];
    assert_eq!(record.last_tick_at, Some(ticks_after(activated, 5)[4]));
}

#[tokio::test]
async fn a_tick_launched_before_a_crash_is_not_launched_twice() {
    let (store, _dir) = store().await;
    let key = lp("every_minute", "v1");
    let activated = activate(&store, &key, every_minute()).await;
    let clock = ManualClock::at(activated + minutes(1) + chrono::Duration::seconds(1));
    let recorder = Arc::new(Recorder::default());
    // The execution of the first tick exists (launched just before the crash) but the tick
    // was never recorded.
    let tick = ticks_after(activated, 1)[0];
    recorder.launched.lock().unwrap().insert(
        execution_name(&key, tick),
        ScheduledLaunch {
            launch_plan: key.clone(),
            name: execution_name(&key, tick),
            scheduled_at: tick,
            kickoff_input: None,
        },
    );
    let mut scheduler = Scheduler::new(store.clone(), recorder.clone(), clock.clone(), config());
    // ALREADY_EXISTS counts as launched and the tick is recorded.
    assert_eq!(scheduler.pass().await.unwrap().launched, 1);
    assert_eq!(recorder.times(), [tick]);
    assert_eq!(
        store.list_active_schedules().await.unwrap()[0].last_tick_at,
        Some(tick)
    );
}

#[tokio::test]
async fn downtime_is_caught_up_up_to_the_limit() {
    let (store, _dir) = store().await;
    let key = lp("every_minute", "v1");
    let activated = activate(&store, &key, every_minute()).await;
    let clock = ManualClock::at(activated + minutes(12) + chrono::Duration::seconds(1));
    let recorder = Arc::new(Recorder::default());
    let mut scheduler = Scheduler::new(store.clone(), recorder.clone(), clock.clone(), config());
    let pass = scheduler.pass().await.unwrap();
    // Limit 5: the newest five of twelve, oldest first; seven skipped.
    assert_eq!((pass.launched, pass.skipped), (5, 7));
    assert_eq!(recorder.times(), ticks_after(activated, 12)[7..].to_vec());
}

#[tokio::test]
async fn two_replicas_launch_each_tick_once() {
    let (store, _dir) = store().await;
    let key = lp("every_minute", "v1");
    let activated = activate(&store, &key, every_minute()).await;
    let clock = ManualClock::at(activated);
    let recorder = Arc::new(Recorder::default());
    let mut a = Scheduler::new(store.clone(), recorder.clone(), clock.clone(), config());
    let mut b = Scheduler::new(store.clone(), recorder.clone(), clock.clone(), config());
    for _ in 0..4 {
        clock.advance(minutes(1));
        let (pa, pb) = tokio::join!(a.pass(), b.pass());
        let launched = pa.unwrap().launched + pb.unwrap().launched;
        // Both may try; the derived name makes the second one ALREADY_EXISTS.
        assert!((1..=2).contains(&launched), "{launched}");
    }
    assert_eq!(recorder.launched.lock().unwrap().len(), 4);
    assert_eq!(recorder.times(), ticks_after(activated, 4));
}

#[tokio::test]
async fn failures_are_retried_or_given_up() {
    let (store, _dir) = store().await;
    let key = lp("every_minute", "v1");
    let activated = activate(&store, &key, every_minute()).await;
    let clock = ManualClock::at(activated + minutes(1) + chrono::Duration::seconds(1));
    let recorder = Arc::new(Recorder::default());
    let mut scheduler = Scheduler::new(store.clone(), recorder.clone(), clock.clone(), config());

    // Unavailable: not recorded, launched at the next pass.
    recorder
        .fail_next
        .lock()
        .unwrap()
        .push(LaunchError::Unavailable("database is restarting".into()));
    let pass = scheduler.pass().await.unwrap();
    assert_eq!((pass.launched, pass.failed), (0, 1));
    assert_eq!(
        store.list_active_schedules().await.unwrap()[0].last_tick_at,
        None
    );
    assert_eq!(scheduler.pass().await.unwrap().launched, 1);
    assert_eq!(recorder.times(), ticks_after(activated, 1));

    // Rejected: the tick is given up with its reason; the next tick launches.
    clock.advance(minutes(1));
    recorder
        .fail_next
        .lock()
        .unwrap()
        .push(LaunchError::Rejected("input 'x' is required".into()));
    let pass = scheduler.pass().await.unwrap();
    assert_eq!((pass.launched, pass.failed), (0, 1));
    let record = &store.list_active_schedules().await.unwrap()[0];
    assert_eq!(record.last_tick_at, Some(ticks_after(activated, 2)[1]));
    assert_eq!(record.last_error, "input 'x' is required");
    clock.advance(minutes(1));
    assert_eq!(scheduler.pass().await.unwrap().launched, 1);
    assert_eq!(
        store.list_active_schedules().await.unwrap()[0].last_error,
        ""
    );
}

#[tokio::test]
async fn deactivated_unscheduled_and_invalid_launch_plans_launch_nothing() {
    let (store, _dir) = store().await;
    let plain = lp("plain", "v1");
    activate(&store, &plain, None).await;
    let invalid = lp("invalid", "v1");
    activate(
        &store,
        &invalid,
        Some(ScheduleExpression::CronSchedule(CronSchedule {
            schedule: "0 0 * * * *".into(),
            offset: String::new(),
        })),
    )
    .await;
    let key = lp("every_minute", "v1");
    let activated = activate(&store, &key, every_minute()).await;
    let clock = ManualClock::at(activated);
    let recorder = Arc::new(Recorder::default());
    let mut scheduler = Scheduler::new(store.clone(), recorder.clone(), clock.clone(), config());
    clock.advance(minutes(1) + chrono::Duration::seconds(1));
    assert_eq!(scheduler.pass().await.unwrap().launched, 1);
    // The invalid one says why, where the console and the command line read it.
    let records = store.list_active_schedules().await.unwrap();
    let bad = records.iter().find(|r| r.launch_plan == invalid).unwrap();
    assert!(bad.last_error.contains("five fields"), "{}", bad.last_error);

    // Deactivated: stops at once.
    store
        .set_launch_plan_state(&key, LaunchPlanState::Inactive)
        .await
        .unwrap();
    clock.advance(minutes(5));
    assert_eq!(scheduler.pass().await.unwrap().launched, 0);
    assert_eq!(recorder.launched.lock().unwrap().len(), 1);

    // A new version with another cadence takes over from its own activation.
    let v2 = lp("every_minute", "v2");
    let activated_v2 = activate(
        &store,
        &v2,
        Some(ScheduleExpression::Rate(FixedRate {
            value: 2,
            unit: FixedRateUnit::Minute as i32,
        })),
    )
    .await;
    let clock = ManualClock::at(activated_v2 + minutes(4) + chrono::Duration::seconds(1));
    let mut scheduler = Scheduler::new(store.clone(), recorder.clone(), clock, config());
    assert_eq!(scheduler.pass().await.unwrap().launched, 2);
    let v2_launches: Vec<_> = recorder
        .launched
        .lock()
        .unwrap()
        .values()
        .filter(|l| l.launch_plan == v2)
        .map(|l| l.scheduled_at)
        .collect();
    assert_eq!(v2_launches.len(), 2);
}
