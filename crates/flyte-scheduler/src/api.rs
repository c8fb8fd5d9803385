//! What the console and the command line show of schedules (docs/schedules.md, "API"):
//!
//! - `GET /api/v1/schedules/{project}/{domain}`: every active scheduled launch plan there;
//! - `GET /api/v1/schedules/{project}/{domain}/{name}`: one launch plan's active schedule.
//!
//! Each: the launch plan version, the schedule as a person reads it, when it became active,
//! the last tick launched, why the last tick failed (if it did) and the next tick times.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use flyte_admin::AdminError;
use flyte_admin::error::http_status_for;
use flyte_engine::clock::Clock;
use flyte_store::{EntityKey, MetadataStore, ScheduleRecord};
use flyteidl::admin::LaunchPlanSpec;
use prost::Message;
use serde::Serialize;

use crate::schedule::Schedule;

/// How many next tick times each answer lists.
const NEXT_TICKS: usize = 3;

#[derive(Clone)]
struct Api {
    store: Arc<dyn MetadataStore>,
    clock: Arc<dyn Clock>,
    time_zone: Tz,
    /// Launch plan versions are immutable: each active one's schedule is read and parsed
    /// once (`None`: the version has no schedule), as the scheduler's own loop does.
    /// Versions no longer active are forgotten on each request.
    parsed: Arc<Mutex<HashMap<EntityKey, Option<Parsed>>>>,
}

/// A schedule as read from its launch plan version, or why it cannot run.
type Parsed = Result<Schedule, String>;

/// One active schedule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScheduleView {
    pub project: String,
    pub domain: String,
    pub launch_plan: String,
    pub version: String,
    /// `cron "0 * * * *"`, `every 5 minutes`.
    pub schedule: String,
    pub kickoff_time_input_arg: Option<String>,
    pub time_zone: String,
    pub active_since: DateTime<Utc>,
    pub last_tick: Option<DateTime<Utc>>,
    /// Why the last tick did not launch, or why the schedule cannot run; empty otherwise.
    pub last_error: String,
    pub next_ticks: Vec<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct ScheduleList {
    schedules: Vec<ScheduleView>,
}

/// The routes above over the store; times in `time_zone` (the scheduler's).
pub fn router(store: Arc<dyn MetadataStore>, clock: Arc<dyn Clock>, time_zone: Tz) -> Router {
    Router::new()
        .route("/api/v1/schedules/{project}/{domain}", get(list))
        .route("/api/v1/schedules/{project}/{domain}/{name}", get(one))
        .with_state(Api {
            store,
            clock,
            time_zone,
            parsed: Arc::default(),
        })
}

async fn list(State(api): State<Api>, Path((project, domain)): Path<(String, String)>) -> Response {
    match views(&api, |r| {
        r.launch_plan.project == project && r.launch_plan.domain == domain
    })
    .await
    {
        Ok(schedules) => Json(ScheduleList { schedules }).into_response(),
        Err(err) => error(err),
    }
}

async fn one(
    State(api): State<Api>,
    Path((project, domain, name)): Path<(String, String, String)>,
) -> Response {
    let found = views(&api, |r| {
        r.launch_plan.project == project
            && r.launch_plan.domain == domain
            && r.launch_plan.name == name
    })
    .await;
    match found {
        Ok(mut views) if !views.is_empty() => Json(views.remove(0)).into_response(),
        Ok(_) => error(AdminError::NotFound(format!(
            "launch plan {project}/{domain}/{name} has no active schedule (is a version with a \
             schedule active? `pyflyte launchplan {name} VERSION --activate`)"
        ))),
        Err(err) => error(err),
    }
}

async fn views(
    api: &Api,
    wanted: impl Fn(&ScheduleRecord) -> bool,
) -> Result<Vec<ScheduleView>, AdminError> {
    let now = DateTime::<Utc>::from_timestamp_micros(api.clock.now_us()).unwrap_or_else(Utc::now);
    let records = api.store.list_active_schedules().await?;
    let records: Vec<ScheduleRecord> = {
        let mut parsed = api.parsed.lock().unwrap_or_else(|e| e.into_inner());
        let active: HashSet<&EntityKey> = records.iter().map(|r| &r.launch_plan).collect();
        parsed.retain(|key, _| active.contains(key));
        records.into_iter().filter(|r| wanted(r)).collect()
    };
    let mut out = Vec::new();
    for record in records {
        let cached = api
            .parsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&record.launch_plan)
            .cloned();
        let parsed = match cached {
            Some(parsed) => parsed,
            None => {
                let entity = match api.store.get_entity(&record.launch_plan).await {
                    Ok(entity) => entity,
                    Err(flyte_store::StoreError::NotFound(_)) => continue,
                    Err(err) => return Err(err.into()),
                };
                let parsed = LaunchPlanSpec::decode(entity.spec.as_slice())
                    .ok()
                    .and_then(|spec| spec.entity_metadata)
                    .and_then(|m| m.schedule)
                    .map(|proto| Schedule::from_proto(&proto).map_err(|e| e.to_string()));
                api.parsed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(record.launch_plan.clone(), parsed.clone());
                parsed
            }
        };
        let Some(parsed) = parsed else {
            continue;
        };
        let lp = &record.launch_plan;
        let (schedule, kickoff, next) = match parsed {
            Ok(s) => {
                let from = record
                    .last_tick_at
                    .map_or(record.activated_at, |t| t.max(record.activated_at));
                let next = s.next_ticks(from, now, api.time_zone, NEXT_TICKS);
                (s.description.clone(), s.kickoff_input.clone(), next)
            }
            Err(err) => (format!("invalid: {err}"), None, Vec::new()),
        };
        out.push(ScheduleView {
            project: lp.project.clone(),
            domain: lp.domain.clone(),
            launch_plan: lp.name.clone(),
            version: lp.version.clone(),
            schedule,
            kickoff_time_input_arg: kickoff,
            time_zone: api.time_zone.to_string(),
            active_since: record.activated_at,
            last_tick: record.last_tick_at,
            last_error: record.last_error.clone(),
            next_ticks: next,
        });
    }
    Ok(out)
}

/// The gateway's error body (`{code, message, details}`) and status for the code.
fn error(err: AdminError) -> Response {
    let (code, message) = err.answer();
    let body = serde_json::json!({ "code": code as i32, "message": message, "details": [] });
    (
        http_status_for(code),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use flyte_engine::clock::SystemClock;
    use flyte_store::{EntityRecord, LaunchPlanState, ResourceType};
    use flyteidl::admin::{self, FixedRate, FixedRateUnit, LaunchPlanMetadata};
    use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder};

    use super::*;

    /// Counts the store's `get_entity` operations (one latency sample each).
    #[derive(Default)]
    struct EntityReads(Arc<AtomicUsize>);

    struct Count(Arc<AtomicUsize>);
    impl HistogramFn for Count {
        fn record(&self, _: f64) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Recorder for EntityReads {
        fn describe_counter(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {
        }
        fn describe_gauge(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(
            &self,
            _: KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            let entity_read = key
                .labels()
                .any(|l| l.key() == flyte_store::metrics::LABEL_OP && l.value() == "get_entity");
            if entity_read {
                Histogram::from_arc(Arc::new(Count(self.0.clone())))
            } else {
                Histogram::noop()
            }
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

    async fn activate(store: &Arc<dyn MetadataStore>, key: &EntityKey, minutes: i64) {
        let spec = LaunchPlanSpec {
            entity_metadata: Some(LaunchPlanMetadata {
                schedule: Some(admin::Schedule {
                    schedule_expression: Some(admin::schedule::ScheduleExpression::Rate(
                        FixedRate {
                            value: minutes as u32,
                            unit: FixedRateUnit::Minute as i32,
                        },
                    )),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        store
            .create_entity(EntityRecord {
                key: key.clone(),
                digest: key.version.clone().into_bytes(),
                spec: spec.encode_to_vec(),
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
    }

    /// Each active version's spec is read once, not on every request; a newly activated
    /// version is read when it first shows up.
    #[test]
    fn each_active_version_is_read_once() {
        let reads = Arc::new(AtomicUsize::new(0));
        let recorder = EntityReads(reads.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("flyte.db").display());
                let store = flyte_store::open(&url).await.unwrap();
                activate(&store, &lp("hourly", "v1"), 60).await;
                activate(&store, &lp("often", "v1"), 5).await;
                let before = reads.load(Ordering::SeqCst);
                let api = Api {
                    store: store.clone(),
                    clock: Arc::new(SystemClock),
                    time_zone: Tz::UTC,
                    parsed: Arc::default(),
                };
                for _ in 0..3 {
                    let all = views(&api, |_| true).await.unwrap();
                    let shown: Vec<_> = all.iter().map(|v| v.schedule.as_str()).collect();
                    assert_eq!(shown.len(), 2, "{shown:?}");
                }
                assert_eq!(reads.load(Ordering::SeqCst) - before, 2);
                activate(&store, &lp("often", "v2"), 10).await;
                let before = reads.load(Ordering::SeqCst);
                for _ in 0..3 {
                    let one = views(&api, |r| r.launch_plan.name == "often")
                        .await
                        .unwrap();
                    assert_eq!(one.len(), 1);
                    assert_eq!(one[0].version, "v2");
                    assert_eq!(one[0].schedule, "every 10 minutes");
                }
                assert_eq!(reads.load(Ordering::SeqCst) - before, 1);
                assert_eq!(
                    api.parsed.lock().unwrap().len(),
                    2,
                    "v1 of `often` forgotten"
                );
            })
        });
    }
}
