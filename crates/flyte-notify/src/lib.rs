//! Execution notifications (docs/notifications.md).
//!
//! The metadata store writes an outbox row when an execution is written in a terminal phase,
//! in the same transaction, once per (execution, phase). [`Notifier`] claims due rows with a
//! lease (so replicas do not both send), resolves the notifications the execution asks for
//! as flyteadmin does (its own list, `disable_all`, or its launch plan's), sends each
//! destination not yet delivered, and records the outcome: delivered, retried later with
//! exponential backoff, or given up after `max_attempts` (logged at ERROR).

pub mod message;
pub mod metrics;
pub mod senders;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use flyte_engine::clock::Clock;
use flyte_store::{MetadataStore, NotificationRecord, NotificationState, NotificationUpdate};
use tokio::sync::watch;

use crate::message::{Context, IdentifierValues, Kind, Wanted};
use crate::senders::{SendError, SmtpConfig};

/// flyteadmin's default subject and body (its sample notifications config).
pub const DEFAULT_SUBJECT: &str =
    "Notice: Execution \"{{ name }}\" has {{ phase }} in \"{{ domain }}\".";
pub const DEFAULT_BODY: &str = "Execution \"{{ name }}\" has {{ phase }} in \"{{ domain }}\". View details at <a href=\"{{ console_url }}\">{{ console_url }}</a>.{{ error }}";

/// The PagerDuty Events API v2 (`notifications.pagerduty.routing_key`).
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutyConfig {
    pub routing_key: String,
    pub events_url: String,
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Off: rows are closed without sending anything (flyteadmin's notifications off).
    pub enabled: bool,
    /// The console's base (`http://host:port/console`): links point at
    /// `{console_url}/projects/{p}/domains/{d}/executions/{name}`.
    pub console_url: String,
    pub sender: String,
    pub subject: String,
    pub body: String,
    pub smtp: Option<SmtpConfig>,
    /// A Slack incoming webhook; without one, Slack notifications are emailed to their
    /// recipients (the channels' email addresses, as flyteadmin does).
    pub slack_webhook_url: Option<String>,
    /// Without one, PagerDuty notifications are emailed to their recipients (the service's
    /// email integration, as flyteadmin does).
    pub pagerduty: Option<PagerDutyConfig>,
    /// Generic JSON webhooks, each told of every notification sent.
    pub webhook_urls: Vec<String>,
    pub poll_interval: Duration,
    pub max_attempts: i32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long a claimed row is ours; longer than one round of sends.
    pub lease: Duration,
    pub http_timeout: Duration,
    /// This replica's id in claims.
    pub owner: String,
    /// How long closed outbox rows (delivered or given up) are kept after closing; `None`
    /// keeps them forever.
    pub retention: Option<Duration>,
    /// How often closed rows past the retention are pruned.
    pub prune_interval: Duration,
    /// Rows deleted per statement when pruning (short transactions, no long lock).
    pub prune_batch: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            console_url: "http://localhost:8089/console".into(),
            sender: "flyte-notifications@localhost".into(),
            subject: DEFAULT_SUBJECT.into(),
            body: DEFAULT_BODY.into(),
            smtp: None,
            slack_webhook_url: None,
            pagerduty: None,
            webhook_urls: Vec::new(),
            poll_interval: Duration::from_secs(1),
            max_attempts: 10,
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            lease: Duration::from_secs(600),
            http_timeout: Duration::from_secs(20),
            owner: "flyte-rs".into(),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            prune_interval: Duration::from_secs(600),
            prune_batch: 500,
        }
    }
}

/// The wait before attempt `attempts + 1` after `attempts` failed ones: `initial`, doubled
/// each time, at most `max`.
pub fn backoff(initial: Duration, max: Duration, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    initial.saturating_mul(1u32 << exp).min(max)
}

/// Rows claimed per round.
const BATCH: usize = 4;

/// What a notifier could not do with the store (logged by the loop; the row's lease runs
/// out and it is claimed again).
#[derive(Debug, thiserror::Error)]
#[error("notification outbox: {0}")]
pub struct NotifyError(#[from] flyte_store::StoreError);

pub struct Notifier {
    store: Arc<dyn MetadataStore>,
    clock: Arc<dyn Clock>,
    config: NotifyConfig,
    http: reqwest::Client,
}

/// One place to send to.
#[derive(Debug, Clone)]
enum Destination {
    Notification(usize, Wanted),
    Webhook(String),
}

impl Destination {
    fn key(&self) -> String {
        match self {
            Destination::Notification(i, w) => format!("{i}:{}", w.kind.as_str()),
            Destination::Webhook(url) => format!("webhook:{url}"),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Destination::Notification(_, w) => w.kind.as_str(),
            Destination::Webhook(_) => "webhook",
        }
    }
}

impl Notifier {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
        config: NotifyConfig,
    ) -> Result<Self, String> {
        // HTTPS over rustls on ring, as everywhere in the binary; reqwest panics if no
        // provider is installed (an embedding process, the tests' in-process servers).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .build()
            .map_err(|e| format!("cannot build the notifications HTTP client: {e}"))?;
        Ok(Self {
            store,
            clock,
            config,
            http,
        })
    }

    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.clock.now_us())
            .single()
            .unwrap_or_default()
    }

    /// Polls the outbox until `stop` turns true, pruning closed rows every
    /// `prune_interval`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut next_prune = self.now();
        loop {
            if self.now() >= next_prune {
                if let Err(err) = self.prune_once().await {
                    tracing::error!(error = %err, "notifications: cannot prune the outbox");
                }
                next_prune = self.now()
                    + chrono::Duration::from_std(self.config.prune_interval)
                        .unwrap_or(chrono::Duration::MAX);
            }
            match self.run_once().await {
                // More may be due: go on at once.
                Ok(n) if n == BATCH => continue,
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "notifications: cannot read the outbox"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }

    /// Deletes the closed outbox rows (delivered or given up) closed longer than
    /// `retention` ago, `prune_batch` rows per statement until none is left; how many.
    /// Pending rows are never pruned: each is still sent at least once.
    pub async fn prune_once(&self) -> Result<u64, NotifyError> {
        let Some(retention) = self.config.retention else {
            return Ok(0);
        };
        let cutoff =
            self.now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let batch = self.config.prune_batch.max(1);
        let mut total = 0;
        loop {
            let n = self.store.prune_notifications(cutoff, batch).await?;
            total += n;
            if n < batch as u64 {
                break;
            }
            // Let the other work on this runtime in between batches.
            tokio::task::yield_now().await;
        }
        if total > 0 {
            ::metrics::counter!(metrics::PRUNED).increment(total);
            tracing::info!(
                rows = total,
                closed_before = %cutoff,
                "notifications: pruned closed outbox rows past notifications.retention_hours"
            );
        }
        Ok(total)
    }

    /// Claims the rows due now and makes one attempt on each; how many were claimed.
    pub async fn run_once(&self) -> Result<usize, NotifyError> {
        let rows = self
            .store
            .claim_notifications(&self.config.owner, self.now(), self.config.lease, BATCH)
            .await?;
        let n = rows.len();
        for row in rows {
            let update = self.attempt(&row).await;
            let written = self
                .store
                .finish_notification(&row.execution, &row.phase, &self.config.owner, update)
                .await?;
            if !written {
                tracing::warn!(
                    project = %row.execution.project, domain = %row.execution.domain,
                    execution = %row.execution.name, phase = %row.phase,
                    "notifications: the claim ran out before the attempt was recorded; another replica may send it again"
                );
            }
        }
        Ok(n)
    }

    /// A closed row's `due_at` is when it was closed: the retention counts from then.
    fn closed(&self, row: &NotificationRecord, why: &str) -> NotificationUpdate {
        NotificationUpdate {
            state: NotificationState::Delivered,
            attempts: row.attempts,
            due_at: self.now(),
            delivered: row.delivered.clone(),
            last_error: why.to_owned(),
        }
    }

    async fn attempt(&self, row: &NotificationRecord) -> NotificationUpdate {
        let exec = &row.execution;
        if !self.config.enabled {
            return self.closed(row, "notifications are disabled on this server");
        }
        let record = match self.store.get_execution(exec).await {
            Ok(r) => r,
            Err(flyte_store::StoreError::NotFound(_)) => {
                return self.closed(row, "the execution no longer exists");
            }
            Err(err) => return self.retry(row, row.delivered.clone(), err.to_string()),
        };
        let lp_spec = match &record.launch_plan {
            Some(key) => match self.store.get_entity(key).await {
                Ok(e) => Some(e.spec),
                Err(flyte_store::StoreError::NotFound(_)) => None,
                Err(err) => return self.retry(row, row.delivered.clone(), err.to_string()),
            },
            None => None,
        };
        let all = match message::resolve(&record.spec, lp_spec.as_deref()) {
            Ok(all) => all,
            Err(err) => {
                tracing::error!(
                    project = %exec.project, domain = %exec.domain, execution = %exec.name,
                    error = %err, "notifications: cannot read what the execution asks for"
                );
                return NotificationUpdate {
                    state: NotificationState::Failed,
                    last_error: err.to_string(),
                    ..self.closed(row, "")
                };
            }
        };
        let wanted = message::for_phase(&all, &row.phase);
        if wanted.is_empty() {
            return self.closed(row, "");
        }
        let ctx = Context {
            project: exec.project.clone(),
            domain: exec.domain.clone(),
            name: exec.name.clone(),
            phase: row.phase.clone(),
            error: message::error_message(&record.closure),
            console_url: format!(
                "{}/projects/{}/domains/{}/executions/{}",
                self.config.console_url.trim_end_matches('/'),
                exec.project,
                exec.domain,
                exec.name
            ),
            workflow: message::workflow_id(&record.closure)
                .map(|id| IdentifierValues::from(&id))
                .or_else(|| record.workflow.as_ref().map(entity_values)),
            launch_plan: record.launch_plan.as_ref().map(entity_values),
        };
        let mut destinations: Vec<Destination> = wanted
            .into_iter()
            .enumerate()
            .map(|(i, w)| Destination::Notification(i, w))
            .collect();
        destinations.extend(
            self.config
                .webhook_urls
                .iter()
                .map(|u| Destination::Webhook(u.clone())),
        );

        let mut done = row.delivered.clone();
        let mut transient = Vec::new();
        let mut gave_up = false;
        for dest in destinations {
            let key = dest.key();
            if done.iter().any(|d| d == &key || d == &format!("!{key}")) {
                continue;
            }
            match self.send(&dest, &ctx).await {
                Ok(()) => {
                    ::metrics::counter!(metrics::SENT, "kind" => dest.kind()).increment(1);
                    tracing::info!(
                        project = %exec.project, domain = %exec.domain, execution = %exec.name,
                        phase = %row.phase, destination = %key, "notification sent"
                    );
                    done.push(key);
                }
                Err(SendError::Permanent(err)) => {
                    ::metrics::counter!(metrics::FAILED, "kind" => dest.kind()).increment(1);
                    tracing::error!(
                        project = %exec.project, domain = %exec.domain, execution = %exec.name,
                        phase = %row.phase, destination = %key, error = %err,
                        "notification cannot be delivered; not retried"
                    );
                    // Given up: marked so a retry of the others skips it.
                    done.push(format!("!{key}"));
                    gave_up = true;
                }
                Err(SendError::Transient(err)) => {
                    ::metrics::counter!(metrics::RETRIES, "kind" => dest.kind()).increment(1);
                    transient.push(format!("{key}: {err}"));
                }
            }
        }
        if !transient.is_empty() {
            return self.retry(row, done, transient.join("; "));
        }
        NotificationUpdate {
            state: if gave_up {
                NotificationState::Failed
            } else {
                NotificationState::Delivered
            },
            attempts: row.attempts + 1,
            due_at: self.now(),
            delivered: done,
            last_error: String::new(),
        }
    }

    /// A failed attempt: again after the backoff, or given up after the last one.
    fn retry(
        &self,
        row: &NotificationRecord,
        done: Vec<String>,
        error: String,
    ) -> NotificationUpdate {
        let attempts = row.attempts + 1;
        let exec = &row.execution;
        if attempts >= self.config.max_attempts {
            ::metrics::counter!(metrics::FAILED, "kind" => "attempts").increment(1);
            tracing::error!(
                project = %exec.project, domain = %exec.domain, execution = %exec.name,
                phase = %row.phase, attempts, error = %error,
                "notification given up after notifications.max_attempts"
            );
            return NotificationUpdate {
                state: NotificationState::Failed,
                attempts,
                due_at: self.now(),
                delivered: done,
                last_error: error,
            };
        }
        let wait = backoff(
            self.config.backoff_initial,
            self.config.backoff_max,
            attempts,
        );
        tracing::warn!(
            project = %exec.project, domain = %exec.domain, execution = %exec.name,
            phase = %row.phase, attempts, retry_in_ms = wait.as_millis() as u64, error = %error,
            "notification not delivered; retrying"
        );
        NotificationUpdate {
            state: NotificationState::Pending,
            attempts,
            due_at: self.now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
            delivered: done,
            last_error: error,
        }
    }

    async fn send(&self, dest: &Destination, ctx: &Context) -> Result<(), SendError> {
        let subject = message::render(&self.config.subject, ctx);
        match dest {
            Destination::Webhook(url) => {
                senders::post_json(&self.http, url, &senders::webhook_body(ctx, &subject)).await
            }
            Destination::Notification(_, w) => {
                let body_template = if w.template.is_empty() {
                    &self.config.body
                } else {
                    &w.template
                };
                let body = message::render(body_template, ctx);
                match (
                    w.kind,
                    &self.config.slack_webhook_url,
                    &self.config.pagerduty,
                ) {
                    (Kind::Slack, Some(url), _) => {
                        let text = if w.template.is_empty() {
                            format!("{subject}\n<{}|View in the Flyte console>", ctx.console_url)
                        } else {
                            body
                        };
                        senders::post_json(&self.http, url, &senders::slack_body(&text)).await
                    }
                    (Kind::PagerDuty, _, Some(pd)) => {
                        senders::post_json(
                            &self.http,
                            &pd.events_url,
                            &senders::pagerduty_body(&pd.routing_key, ctx, &subject),
                        )
                        .await
                    }
                    // Email, and Slack/PagerDuty without their own endpoint: mail the
                    // recipients, as flyteadmin does.
                    (kind, _, _) => match &self.config.smtp {
                        Some(smtp) => {
                            senders::send_email(
                                smtp,
                                &self.config.sender,
                                &w.recipients,
                                &subject,
                                &body,
                            )
                            .await
                        }
                        None => Err(SendError::Permanent(format!(
                            "a {} notification needs notifications.smtp{} (docs/notifications.md)",
                            kind.as_str(),
                            match kind {
                                Kind::Slack => " or notifications.slack.webhook_url",
                                Kind::PagerDuty => " or notifications.pagerduty.routing_key",
                                Kind::Email => "",
                            }
                        ))),
                    },
                }
            }
        }
    }
}

fn entity_values(key: &flyte_store::EntityKey) -> IdentifierValues {
    IdentifierValues {
        project: key.project.clone(),
        domain: key.domain.clone(),
        name: key.name.clone(),
        version: key.version.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (i, m) = (Duration::from_secs(5), Duration::from_secs(60));
        let got: Vec<u64> = (1..=6).map(|a| backoff(i, m, a).as_secs()).collect();
        assert_eq!(got, vec![5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(i, m, 1000), m);
    }
}
