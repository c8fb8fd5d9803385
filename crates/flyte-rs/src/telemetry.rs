//! Logs (tracing) and metrics (Prometheus).

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat, LoggingConfig};

/// Installs the global tracing subscriber (stderr), with OTLP span export when
/// `telemetry.otlp_endpoint` is set. Call once, from `main`; a second call (tests) is a no-op.
pub fn init(config: &Config) -> anyhow::Result<()> {
    init_with(&config.logging, config.telemetry.otlp_endpoint.as_deref())
}

/// Installs the global tracing subscriber (stderr), without trace export.
pub fn init_logging(config: &LoggingConfig) -> anyhow::Result<()> {
    init_with(config, None)
}

fn init_with(config: &LoggingConfig, otlp_endpoint: Option<&str>) -> anyhow::Result<()> {
    let filter = EnvFilter::builder().parse(&config.level)?;
    // `None` when off: an absent layer costs nothing.
    let otlp = otlp_endpoint.map(otlp_layer).transpose()?;
    let registry = tracing_subscriber::registry().with(filter).with(otlp);
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
    } else if let Some(endpoint) = otlp_endpoint {
        tracing::info!(endpoint, "exporting traces over OTLP/HTTP");
    }
    Ok(())
}

static TRACER_PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// The OTLP traces URL: the endpoint as given, with `/v1/traces` when it has no path.
pub fn otlp_traces_url(endpoint: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| anyhow::anyhow!("telemetry.otlp_endpoint `{endpoint}`: {e}"))?;
    Ok(if url.path() == "/" || url.path().is_empty() {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    } else {
        endpoint.to_string()
    })
}

fn otlp_layer<S>(endpoint: &str) -> anyhow::Result<impl tracing_subscriber::Layer<S>>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    // Its reqwest 0.13 client needs rustls' provider (flyte_blob::install_tls_provider).
    flyte_blob::install_tls_provider();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(otlp_traces_url(endpoint)?)
        .build()?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("flyte-rs")
                .build(),
        )
        .build();
    let tracer = provider.tracer("flyte-rs");
    let _ = TRACER_PROVIDER.set(provider);
    Ok(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Flushes and stops trace export (no-op when it is off). Call before the process exits.
pub fn shutdown() {
    if let Some(provider) = TRACER_PROVIDER.get()
        && let Err(e) = provider.shutdown()
    {
        eprintln!("flyte-rs: trace export shutdown: {e}");
    }
}

/// Counter: requests to the server's own HTTP routes (health, metrics, task logs), by
/// `protocol`, `route`, `method`, `status`. API calls are `flyte_admin_api_requests_total`.
pub const REQUESTS_TOTAL: &str = "flyte_rs_requests_total";
/// Histogram (seconds): latency of those requests, by `protocol`, `route`, `method`.
pub const REQUEST_DURATION_SECONDS: &str = "flyte_rs_request_duration_seconds";
/// Gauge: always 1, label `version`.
pub const BUILD_INFO: &str = "flyte_rs_build_info";
/// Gauge (seconds): time from process start to serving.
pub const STARTUP_SECONDS: &str = "flyte_rs_startup_seconds";

/// The binary's own metrics: (name, Prometheus type, help).
pub const ALL: &[(&str, &str, &str)] = &[
    (
        REQUESTS_TOTAL,
        "counter",
        "Requests to the server's own HTTP routes (health, metrics, task logs)",
    ),
    (
        REQUEST_DURATION_SECONDS,
        "histogram",
        "Latency in seconds of requests to the server's own HTTP routes",
    ),
    (BUILD_INFO, "gauge", "Always 1; label version"),
    (
        STARTUP_SECONDS,
        "gauge",
        "Seconds from process start to serving",
    ),
];

/// Every metric the process exports, from the one table each crate declares (its
/// `metrics::ALL`): (name, Prometheus type, help).
pub fn inventory() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    ALL.iter()
        .chain(flyte_admin::router::metrics::ALL)
        .chain(flyte_store::metrics::ALL)
        .chain(flyte_blob::metrics::ALL)
        .chain(flyte_engine::metrics::ALL)
        .chain(flyte_cache::metrics::ALL)
        .chain(flyte_scheduler::metrics::ALL)
        .chain(flyte_notify::metrics::ALL)
}

/// Registers the help text of every metric with the installed recorder.
pub fn describe_all() {
    for &(name, kind, help) in ALL {
        match kind {
            "counter" => metrics::describe_counter!(name, help),
            "gauge" => metrics::describe_gauge!(name, help),
            _ => metrics::describe_histogram!(name, help),
        }
    }
    flyte_admin::router::metrics::describe();
    flyte_store::metrics::describe();
    flyte_blob::metrics::describe();
    flyte_engine::metrics::describe();
    flyte_cache::metrics::describe();
    flyte_scheduler::metrics::describe();
    flyte_notify::metrics::describe();
}

/// The process's Prometheus handle. A metrics recorder is global, but one process may run
/// several servers (the test harness does), so the recorder is installed on first use and
/// every server renders the same registry. If some other recorder was installed first, a
/// detached one is used, and `/metrics` still answers (with what it sees).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = builder().install_recorder().unwrap_or_else(|err| {
            tracing::warn!(%err, "a metrics recorder is already installed; /metrics shows a detached registry");
            builder().build_recorder().handle()
        });
        describe_all();
        handle
    })
}

/// Histogram buckets for durations (`*_seconds`): 0.5 ms to an hour.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Histogram buckets for sizes and counts (queue depth, batch records, array sizes).
const COUNT_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
    50000.0,
];

/// Every histogram is exported as a Prometheus histogram (`_bucket`), not a summary, so that
/// dashboards can aggregate quantiles across labels and instances.
fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets(COUNT_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS))
        .expect("bucket lists are not empty")
}

/// The text for `/metrics`: what the recorder renders, then a `# HELP`/`# TYPE` header for
/// every declared metric that has no sample yet (the exporter renders a metric only once it
/// is recorded), so that every metric the server can export is listed from the start.
pub fn render_metrics() -> String {
    let handle = prometheus();
    handle.run_upkeep();
    let mut text = handle.render();
    let present: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut missing = String::new();
    for &(name, kind, help) in inventory() {
        if !present.contains(name) {
            missing.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        }
    }
    if !missing.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&missing);
    }
    text
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
    metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(REQUEST_DURATION_SECONDS, &labels[..3])
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
