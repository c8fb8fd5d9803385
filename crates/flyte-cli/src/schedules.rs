//! `flyte-rs get schedules [NAME]`, and the schedule shown with a launch plan: the server's
//! `GET /api/v1/schedules/{project}/{domain}[/{name}]` (docs/schedules.md, "Seeing
//! schedules"), over the client's HTTP connection (TLS as the channel).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cli::Common;
use crate::client::{Client, error_chain, with_tls_hint};
use crate::error::{CliError, CliResult};
use crate::output::{Format, print_data, print_fields, print_table};

/// One active schedule, as the server describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleView {
    pub project: String,
    pub domain: String,
    pub launch_plan: String,
    pub version: String,
    /// `cron "0 * * * *"`, `every 5 minutes`.
    pub schedule: String,
    #[serde(default)]
    pub kickoff_time_input_arg: Option<String>,
    #[serde(default)]
    pub time_zone: String,
    pub active_since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_tick: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: String,
    #[serde(default)]
    pub next_ticks: Vec<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct ScheduleList {
    schedules: Vec<ScheduleView>,
}

/// The gateway's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: String,
}

pub async fn run(client: &mut Client, name: Option<&str>, common: &Common) -> CliResult<()> {
    let schedules = match name {
        Some(name) => match one(client, name).await? {
            Some(s) => vec![s],
            None => {
                return Err(CliError::Usage(format!(
                    "launch plan {name} has no active schedule in {}/{} (activate a version \
                     with a schedule: `flyte-rs launchplan activate {name} -v VERSION`)",
                    client.project, client.domain
                )));
            }
        },
        None => list(client).await?,
    };
    if common.output != Format::Table {
        return match name {
            Some(_) => print_data(common.output, &schedules[0]),
            None => print_data(common.output, &schedules),
        };
    }
    let rows = schedules
        .iter()
        .map(|s| {
            vec![
                s.launch_plan.clone(),
                s.version.clone(),
                s.schedule.clone(),
                s.last_tick.as_ref().map(time).unwrap_or_default(),
                ticks(&s.next_ticks),
                s.last_error.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "LAUNCH PLAN",
            "VERSION",
            "SCHEDULE",
            "LAST TICK",
            "NEXT TICKS",
            "LAST ERROR",
        ],
        rows,
    );
    Ok(())
}

/// The active schedules of the project and domain.
pub async fn list(client: &Client) -> CliResult<Vec<ScheduleView>> {
    let url = format!(
        "{}/api/v1/schedules/{}/{}",
        client.config.http_base(),
        client.project,
        client.domain
    );
    Ok(get::<ScheduleList>(client, &url)
        .await?
        .map(|l| l.schedules)
        .unwrap_or_default())
}

/// The active schedule of one launch plan, if it has one.
pub async fn one(client: &Client, name: &str) -> CliResult<Option<ScheduleView>> {
    let url = format!(
        "{}/api/v1/schedules/{}/{}/{name}",
        client.config.http_base(),
        client.project,
        client.domain
    );
    get(client, &url).await
}

/// Key/value lines of a launch plan's active schedule.
pub fn print(s: &ScheduleView) {
    let mut fields = vec![
        (
            "Schedule",
            format!("{} (version {})", s.schedule, s.version),
        ),
        ("Next ticks", ticks(&s.next_ticks)),
        (
            "Last tick",
            s.last_tick.as_ref().map(time).unwrap_or_else(|| "-".into()),
        ),
    ];
    if !s.last_error.is_empty() {
        fields.push(("Last error", s.last_error.clone()));
    }
    print_fields(&fields);
}

/// GET `url` as JSON; `None` on 404 (no active schedule).
async fn get<T: serde::de::DeserializeOwned>(client: &Client, url: &str) -> CliResult<Option<T>> {
    let failed = |what: String| CliError::Http(format!("cannot get schedules from {url}: {what}"));
    let response = client
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| failed(with_tls_hint(error_chain(&e), &client.config)))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| failed(error_chain(&e)))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        return Err(failed(format!("HTTP {status}: {message}")));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| failed(format!("unexpected answer: {e}")))
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn ticks(ticks: &[DateTime<Utc>]) -> String {
    ticks.iter().map(time).collect::<Vec<_>>().join(", ")
}
