//! Composition of every admin endpoint into one axum Router: the gRPC services (each wrapped
//! in the fidelity layer), the REST/JSON gateway under `/api/v1/`, and the data-proxy upload
//! and download endpoints — all on one port, gRPC (HTTP/2) and HTTP/1.1 alike, with one
//! request-metrics layer around everything.
//!
//! The binary serves it with `axum::serve(listener, router(state))`: axum's server detects
//! HTTP/2 prior knowledge (cleartext h2c, what grpcio's `insecure_channel` speaks) and
//! HTTP/1.1 on the same connection type, given axum's `http1` and `http2` features.

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};
use flyte_blob::UrlSigner;
use tonic::server::NamedService;
use tower::{Layer, Service, ServiceExt};

use crate::fidelity;
use crate::gateway::{Gateway, code_name, error_response};
use crate::service::dataproxy::{
    self, DOWNLOAD_ROUTE, DataProxyHttp, UPLOAD_ROUTE, data_proxy_service,
};
use crate::state::AdminState;

/// Every admin endpoint of the server. See the module docs.
///
/// The router has a fallback (gRPC calls to services this build does not serve get
/// UNIMPLEMENTED, other requests a 404 JSON error); merge other routes into it rather than
/// merging it into a router with its own fallback.
pub fn router(state: AdminState) -> Router {
    let signer = UrlSigner::new(&state.config.signing_key);
    let grpc = grpc_router(&state, &signer);
    let gateway = Gateway::new(grpc.clone(), state.config.max_request_bytes);

    let dataproxy_http = Router::new()
        .route(UPLOAD_ROUTE, put(dataproxy::upload))
        .route(DOWNLOAD_ROUTE, get(dataproxy::download))
        .with_state(DataProxyHttp {
            state: state.clone(),
            signer,
        });

    let cache_http = Router::new()
        .route(
            crate::cache_http::CACHE_ROUTE,
            get(crate::cache_http::list).delete(crate::cache_http::evict),
        )
        .with_state(state.clone());

    let rest = Router::new().route(
        "/api/v1/{*rest}",
        any(move |req: Request| {
            let gateway = gateway.clone();
            async move { gateway.handle(req).await }
        }),
    );

    grpc.merge(dataproxy_http)
        .merge(cache_http)
        // Live updates (server-sent events): crate::live.
        .merge(crate::live::router(state))
        .merge(rest)
        .fallback(fallback)
        .layer(axum::middleware::from_fn(metrics::track))
}

/// The gRPC services, each behind the fidelity layer (request size limit, raw bytes).
/// Unknown paths fall through to axum's default 404 (the gateway reports UNIMPLEMENTED).
pub fn grpc_router(state: &AdminState, signer: &UrlSigner) -> Router {
    let fidelity = fidelity::layer(state.config.max_request_bytes);
    let router = Router::new();
    let router = add_grpc(
        router,
        fidelity.layer(crate::service::admin::admin_service(state.clone())),
    );
    let router = add_grpc(
        router,
        fidelity.layer(data_proxy_service(state.clone(), signer.clone())),
    );
    let router = add_grpc(
        router,
        fidelity.layer(crate::service::signal::signal_service(state.clone())),
    );
    let router = add_grpc(
        router,
        fidelity.layer(crate::service::datacatalog::data_catalog_service(
            state.clone(),
        )),
    );
    add_grpc(
        router,
        fidelity.layer(crate::service::cache::cache_service(state.clone())),
    )
}

/// Routes `/<service name>/*` to a tonic service, as `tonic::service::Routes` does (but
/// without its catch-all fallback, so the router can be merged).
pub(crate) fn add_grpc<S>(router: Router, svc: S) -> Router
where
    S: Service<http::Request<tonic::body::Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    // Authorization, once for every gRPC service (and so for the REST gateway's calls too).
    let svc = crate::authz::Enforce::new(svc);
    router.route_service(
        &format!("/{}/{{*rest}}", S::NAME),
        svc.map_request(|req: http::Request<Body>| req.map(tonic::body::Body::new)),
    )
}

fn is_grpc(req: &Request) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

async fn fallback(req: Request) -> Response {
    if is_grpc(&req) {
        let service = req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        return tonic::Status::unimplemented(format!(
            "service {service} is not served by this server"
        ))
        .into_http();
    }
    error_response(
        http::StatusCode::NOT_FOUND,
        tonic::Code::NotFound,
        &format!("no route for {} {}", req.method(), req.uri().path()),
        Vec::new(),
    )
}

/// API request metrics: names declared here, recorded by one layer around the whole router.
pub mod metrics {
    use std::time::Instant;

    use axum::extract::Request;
    use axum::middleware::Next;
    use axum::response::Response;

    use super::is_grpc;

    /// Counter, labels `service`, `method`, `code` (gRPC code name, e.g. `Ok`, `NotFound`;
    /// HTTP status for plain HTTP endpoints).
    pub const API_REQUESTS_TOTAL: &str = "flyte_admin_api_requests_total";
    /// Histogram (seconds), labels `service`, `method`.
    pub const API_REQUEST_DURATION_SECONDS: &str = "flyte_admin_api_request_duration_seconds";
    /// Counter: executions reaching a phase as recorded in the store from the engine's events
    /// (the phase after each applied event batch). Labels `project`, `domain`, `phase`
    /// (`RUNNING`, `SUCCEEDED`, `FAILED`, `ABORTED`, `TIMED_OUT`, ...).
    pub const EXECUTIONS_TOTAL: &str = "flyte_admin_executions_total";
    /// Histogram (seconds): start to end of executions that reached a terminal phase.
    /// Labels `project`, `domain`, `phase`.
    pub const EXECUTION_DURATION_SECONDS: &str = "flyte_admin_execution_duration_seconds";
    /// Counter: calls refused by authentication (crate::auth), label `reason` (`missing`,
    /// `invalid`, `expired`, `provider_unavailable`).
    pub const AUTH_REFUSED_TOTAL: &str = "flyte_admin_auth_refused_total";
    /// Counter: mutating calls with authentication on (crate::authz), labels `service`,
    /// `method`, `code` (the outcome; `PermissionDenied` for refused ones).
    pub const AUDIT_TOTAL: &str = "flyte_admin_audit_total";

    /// Every admin metric: (name, Prometheus type, help).
    pub const ALL: &[(&str, &str, &str)] = &[
        (
            API_REQUESTS_TOTAL,
            "counter",
            "API requests by service, method and code",
        ),
        (
            API_REQUEST_DURATION_SECONDS,
            "histogram",
            "API request latency in seconds by service and method",
        ),
        (
            EXECUTIONS_TOTAL,
            "counter",
            "Executions reaching a phase, by project and domain",
        ),
        (
            EXECUTION_DURATION_SECONDS,
            "histogram",
            "Seconds from start to end of finished executions, by project, domain and phase",
        ),
        (
            AUTH_REFUSED_TOTAL,
            "counter",
            "Calls refused by authentication, by reason",
        ),
        (
            AUDIT_TOTAL,
            "counter",
            "Mutating calls by service, method and outcome code (authentication on)",
        ),
    ];

    /// Registers the help texts of [`ALL`] with the installed recorder.
    pub fn describe() {
        for &(name, kind, help) in ALL {
            match kind {
                "counter" => metrics::describe_counter!(name, help),
                _ => metrics::describe_histogram!(name, help),
            }
        }
    }

    /// An execution record reached `phase` (as stored).
    pub fn execution_phase(project: &str, domain: &str, phase: &str, ran: Option<f64>) {
        let labels = [
            ("project", project.to_string()),
            ("domain", domain.to_string()),
            ("phase", phase.to_string()),
        ];
        metrics::counter!(EXECUTIONS_TOTAL, &labels).increment(1);
        if let Some(seconds) = ran {
            metrics::histogram!(EXECUTION_DURATION_SECONDS, &labels).record(seconds);
        }
    }

    /// What a response was for, set by handlers that know better than the URL
    /// (the gateway: the RPC it called and its code).
    #[derive(Debug, Clone)]
    pub struct ApiCall {
        pub service: String,
        pub method: String,
        pub code: String,
    }

    impl ApiCall {
        pub fn new(service: &str, method: &str, code: &str) -> Self {
            Self {
                service: service.to_string(),
                method: method.to_string(),
                code: code.to_string(),
            }
        }
    }

    /// The middleware (use with `axum::middleware::from_fn`). Each call runs in an `api`
    /// span (service, method); handlers add project, domain and ids in their own span. A gRPC
    /// response without `grpc-status` in its headers (a unary success, or an error sent after
    /// the headers) is counted when its body ends, with the code from the trailers.
    pub async fn track(req: Request, next: Next) -> Response {
        use tracing::Instrument;
        let start = Instant::now();
        let grpc = is_grpc(&req);
        let path = req.uri().path().to_string();
        let (grpc_service, grpc_method) = {
            let mut parts = path.trim_start_matches('/').splitn(2, '/');
            let service = parts.next().unwrap_or_default();
            let service = service.rsplit('.').next().unwrap_or(service).to_string();
            (service, parts.next().unwrap_or_default().to_string())
        };
        let span = if grpc {
            tracing::info_span!("api", service = %grpc_service, method = %grpc_method)
        } else {
            tracing::info_span!("api", http.method = %req.method(), path = %path)
        };
        let response = next.run(req).instrument(span).await;
        let (service, method, code) = if let Some(call) = response.extensions().get::<ApiCall>() {
            (call.service.clone(), call.method.clone(), call.code.clone())
        } else if grpc {
            match response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
            {
                Some(c) => (
                    grpc_service,
                    grpc_method,
                    super::code_name(tonic::Code::from_i32(c)).to_string(),
                ),
                None => {
                    // The status comes in the trailers.
                    return response.map(|body| {
                        axum::body::Body::new(TrailerStatus {
                            inner: body,
                            done: Some((grpc_service, grpc_method, start)),
                            code: None,
                        })
                    });
                }
            }
        } else if path.starts_with("/api/v1/dataproxy/upload/") {
            (
                "DataProxyHttp".into(),
                "Upload".into(),
                response.status().as_u16().to_string(),
            )
        } else if path.starts_with("/api/v1/dataproxy/download/") {
            (
                "DataProxyHttp".into(),
                "Download".into(),
                response.status().as_u16().to_string(),
            )
        } else {
            (
                "http".into(),
                "other".into(),
                response.status().as_u16().to_string(),
            )
        };
        record(service, method, code, start);
        response
    }

    fn record(service: String, method: String, code: String, start: Instant) {
        let elapsed = start.elapsed().as_secs_f64();
        metrics::counter!(API_REQUESTS_TOTAL, "service" => service.clone(), "method" => method.clone(), "code" => code)
            .increment(1);
        metrics::histogram!(API_REQUEST_DURATION_SECONDS, "service" => service, "method" => method)
            .record(elapsed);
    }

    /// A gRPC response body that records the call when it ends, with `grpc-status` from the
    /// trailers (`Ok` if none came; `Cancelled` if the body was dropped before its end).
    struct TrailerStatus {
        inner: axum::body::Body,
        done: Option<(String, String, Instant)>,
        code: Option<String>,
    }

    impl http_body::Body for TrailerStatus {
        type Data = bytes::Bytes;
        type Error = axum::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            let this = &mut *self;
            let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
            match &polled {
                std::task::Poll::Ready(Some(Ok(frame))) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        let code = trailers
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<i32>().ok())
                            .unwrap_or(0);
                        this.code = Some(super::code_name(tonic::Code::from_i32(code)).into());
                    }
                }
                std::task::Poll::Ready(None) => {
                    if this.code.is_none() {
                        this.code = Some("Ok".into());
                    }
                    this.finish();
                }
                std::task::Poll::Ready(Some(Err(_))) => {
                    this.code.get_or_insert_with(|| "Internal".into());
                    this.finish();
                }
                std::task::Poll::Pending => {}
            }
            polled
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> http_body::SizeHint {
            self.inner.size_hint()
        }
    }

    impl TrailerStatus {
        fn finish(&mut self) {
            if let Some((service, method, start)) = self.done.take() {
                let code = self.code.take().unwrap_or_else(|| "Cancelled".into());
                record(service, method, code, start);
            }
        }
    }

    impl Drop for TrailerStatus {
        fn drop(&mut self) {
            self.finish();
        }
    }
}
