//! What the console and the command line show of schedules (docs/schedules.md, "API"):
//!
//! - `GET /api/v1/schedules/{project}/{domain}`: every active scheduled launch plan there;
//! - `GET /api/v1/schedules/{project}/{domain}/{name}`: one launch plan's active schedule.
//!
//! Each: the launch plan version, the schedule as a person reads it, when it became active,
//! the last tick launched, why the last tick failed (if it did) and the next tick times.

use std::sync::Arc;

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
use flyte_store::{MetadataStore, ScheduleRecord};
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
}

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
    let mut out = Vec::new();
    for record in api.store.list_active_schedules().await? {
        if !wanted(&record) {
            continue;
        }
        let entity = match api.store.get_entity(&record.launch_plan).await {
            Ok(entity) => entity,
            Err(flyte_store::StoreError::NotFound(_)) => continue,
            Err(err) => return Err(err.into()),
        };
        let Some(proto) = LaunchPlanSpec::decode(entity.spec.as_slice())
            .ok()
            .and_then(|spec| spec.entity_metadata)
            .and_then(|m| m.schedule)
        else {
            continue;
        };
        let lp = &record.launch_plan;
        let (schedule, kickoff, next) = match Schedule::from_proto(&proto) {
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
