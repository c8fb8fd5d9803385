//! The senders: email over SMTP (lettre), Slack incoming webhooks, PagerDuty's Events API v2
//! and generic JSON webhooks (reqwest).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::message::Context;

/// How a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying (connection refused, timeout, 5xx, 429, SMTP 4xx).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (a bad address, a 4xx refusal, SMTP 5xx, no sender configured).
    #[error("{0}")]
    Permanent(String),
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a local relay); credentials are refused by lettre without TLS.
    None,
    /// STARTTLS upgrade, required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Empty: no authentication.
    pub username: String,
    pub password: String,
    pub timeout: Duration,
}

/// Sends one HTML email from `sender` to `recipients`.
pub async fn send_email(
    smtp: &SmtpConfig,
    sender: &str,
    recipients: &[String],
    subject: &str,
    body: &str,
) -> Result<(), SendError> {
    let from = sender
        .parse()
        .map_err(|e| SendError::Permanent(format!("notifications.email.sender {sender:?}: {e}")))?;
    let mut builder = lettre::Message::builder()
        .from(from)
        .subject(subject)
        .header(ContentType::TEXT_HTML);
    for r in recipients {
        let to = r
            .parse()
            .map_err(|e| SendError::Permanent(format!("recipient {r:?}: {e}")))?;
        builder = builder.to(to);
    }
    let message = builder
        .body(body.to_owned())
        .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))?;
    let transport = match smtp.tls {
        SmtpTls::None => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        }
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .map_err(|e| SendError::Permanent(format!("notifications.smtp: {e}")))?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
            .map_err(|e| SendError::Permanent(format!("notifications.smtp: {e}")))?,
    };
    let mut transport = transport.port(smtp.port).timeout(Some(smtp.timeout));
    if !smtp.username.is_empty() {
        transport = transport.credentials(Credentials::new(
            smtp.username.clone(),
            smtp.password.clone(),
        ));
    }
    match transport.build().send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(format!(
            "SMTP {}:{} refused the mail: {e}",
            smtp.host, smtp.port
        ))),
        Err(e) => Err(SendError::Transient(format!(
            "SMTP {}:{}: {e}",
            smtp.host, smtp.port
        ))),
    }
}

/// POSTs `body` as JSON to `url`; 2xx is success.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<(), SendError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| SendError::Permanent(format!("cannot encode the JSON body: {e}")))?;
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .send()
        .await
        .map_err(|e| SendError::Transient(format!("POST {url}: {e}")))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(300).collect();
    let msg = format!("POST {url}: HTTP {status}: {text}");
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(SendError::Transient(msg))
    } else {
        Err(SendError::Permanent(msg))
    }
}

/// The generic webhook's JSON body.
pub fn webhook_body(ctx: &Context, subject: &str) -> serde_json::Value {
    serde_json::json!({
        "execution": {"project": ctx.project, "domain": ctx.domain, "name": ctx.name},
        "phase": ctx.phase,
        "error": ctx.error,
        "console_url": ctx.console_url,
        "workflow": ctx.workflow,
        "launch_plan": ctx.launch_plan,
        "subject": subject,
    })
}

/// A Slack incoming webhook's body: the message as text, with the console link.
pub fn slack_body(text: &str) -> serde_json::Value {
    serde_json::json!({ "text": text })
}

/// A PagerDuty Events API v2 `trigger`: deduplicated per execution and phase, so a retry
/// after a lost response raises no second incident.
pub fn pagerduty_body(routing_key: &str, ctx: &Context, summary: &str) -> serde_json::Value {
    let severity = if ctx.phase == "SUCCEEDED" {
        "info"
    } else {
        "error"
    };
    serde_json::json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": format!("flyte/{}/{}/{}/{}", ctx.project, ctx.domain, ctx.name, ctx.phase),
        "payload": {
            "summary": summary.chars().take(1000).collect::<String>(),
            "source": "flyte-rs",
            "severity": severity,
            "custom_details": {
                "project": ctx.project, "domain": ctx.domain, "name": ctx.name,
                "phase": ctx.phase, "error": ctx.error,
            },
        },
        "links": [{"href": ctx.console_url, "text": "Flyte console"}],
    })
}

/// Whether `address` is a valid email address (`name@host` or `Name <name@host>`), for the
/// configuration's check at start.
pub fn check_address(address: &str) -> Result<(), String> {
    address
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}
