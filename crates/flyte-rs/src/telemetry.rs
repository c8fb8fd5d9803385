//! Logs (tracing) and metrics (Prometheus).

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global tracing subscriber (stderr). Call once, from `main`; a second call
/// (tests) is a no-op.
pub fn init_logging(config: &LoggingConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::builder().parse(&config.level)?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("a tracing subscriber is already installed; keeping it");
    }
    Ok(())
}

/// The process's Prometheus handle. A metrics recorder is global, but one process may run
/// several servers (the test harness does), so the recorder is installed on first use and
/// every server renders the same registry. If some other recorder was installed first, a
/// detached one is used, and `/metrics` still answers (with what it sees).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new().install_recorder().unwrap_or_else(|err| {
            tracing::warn!(%err, "a metrics recorder is already installed; /metrics shows a detached registry");
            PrometheusBuilder::new().build_recorder().handle()
        })
    })
}

/// The text for `/metrics`.
pub fn render_metrics() -> String {
    let handle = prometheus();
    handle.run_upkeep();
    handle.render()
}

/// Counts and times every request: gRPC by method, HTTP by route pattern.
pub async fn track_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let (protocol, route) = route_label(&req);
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = grpc_or_http_status(&response, protocol);
    let labels = [
        ("protocol", protocol.to_string()),
        ("route", route),
        ("method", method),
        ("status", status),
    ];
    metrics::counter!("flyte_rs_requests_total", &labels).increment(1);
    metrics::histogram!("flyte_rs_request_duration_seconds", &labels[..3])
        .record(start.elapsed().as_secs_f64());
    response
}

fn route_label(req: &Request) -> (&'static str, String) {
    let is_grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if is_grpc {
        // `/flyteidl.service.AdminService/CreateTask`: a bounded set of names.
        return ("grpc", req.uri().path().to_owned());
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".into());
    ("http", route)
}

fn grpc_or_http_status(response: &Response, protocol: &str) -> String {
    if protocol == "grpc" {
        // Trailers-only errors carry grpc-status in the headers; successes in trailers
        // (not visible here) — count those as "0".
        return response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_owned();
    }
    response.status().as_u16().to_string()
}
