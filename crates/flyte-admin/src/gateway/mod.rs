//! The REST/JSON gateway: routes generated at startup from the `google.api.http` rules in
//! `flyteidl::FILE_DESCRIPTOR_SET`, so every RPC with an HTTP binding is covered and the
//! table cannot drift from the contract.
//!
//! Each request is matched against the templates, transcoded into the RPC's request message
//! (path parameters, query parameters, JSON or binary body), dispatched in-process to the
//! gRPC router as a unary gRPC call (so it takes exactly the path a gRPC client's call takes,
//! fidelity layer included), and the response is transcoded back the way flyteadmin's
//! grpc-gateway does it: `application/json` gets proto field names, other requests
//! lowerCamelCase, both with unpopulated fields emitted; `application/octet-stream` gets
//! binary protobuf. Errors are `{"code": <grpc code>, "message": …, "details": […]}` with the
//! HTTP status grpc-gateway uses for the code.

pub mod routes;
pub mod transcode;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::json;
use tower::ServiceExt;

use crate::error::{AdminError, http_status_for};
use crate::router::metrics::ApiCall;
pub use routes::{BodySpec, Route};
pub use transcode::Codec;

/// The descriptor pool of the whole contract (decoded once).
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(flyteidl::FILE_DESCRIPTOR_SET)
            .expect("flyteidl::FILE_DESCRIPTOR_SET is a valid descriptor set")
    })
}

/// The route table generated from the contract's `google.api.http` rules.
pub fn route_table() -> Vec<Route> {
    routes::build_routes(descriptor_pool()).expect("the http rules of flyteidl are well-formed")
}

/// The gateway: the route table plus the gRPC router it dispatches to. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    routes: Vec<Route>,
    grpc: axum::Router,
    max_request_bytes: usize,
}

impl Gateway {
    /// A gateway dispatching to `grpc` (the router serving the gRPC services).
    pub fn new(grpc: axum::Router, max_request_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                routes: route_table(),
                grpc,
                max_request_bytes,
            }),
        }
    }

    pub fn routes(&self) -> &[Route] {
        &self.inner.routes
    }

    /// Serves one HTTP request.
    pub async fn handle(&self, req: Request<Body>) -> Response {
        let (parts, body) = req.into_parts();
        let (inbound, outbound) = Codec::for_request(&parts.headers);
        let proto_names = outbound != Codec::JsonCamel;
        let path = parts
            .uri
            .path()
            .trim_start_matches('/')
            .trim_end_matches('/');

        if let Err(message) = routes::check_path(path) {
            let (code, message, details) = failure(AdminError::invalid(message));
            let mut response = error_response(http_status_for(code), code, &message, details);
            response
                .extensions_mut()
                .insert(ApiCall::new("gateway", "unmatched", code_name(code)));
            return response;
        }
        let mut path_matched = false;
        let mut found = None;
        for route in &self.inner.routes {
            let Some(captures) = route.path.matches(path) else {
                continue;
            };
            path_matched = true;
            if route.http_method == parts.method {
                found = Some((route, captures));
                break;
            }
        }
        let Some((route, captures)) = found else {
            let (status, code, message) = if path_matched {
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    tonic::Code::Unimplemented,
                    "Method Not Allowed",
                )
            } else {
                (StatusCode::NOT_FOUND, tonic::Code::NotFound, "Not Found")
            };
            let mut response = error_response(status, code, message, Vec::new());
            response
                .extensions_mut()
                .insert(ApiCall::new("gateway", "unmatched", code_name(code)));
            return response;
        };

        let response = self
            .call(
                route,
                captures,
                &parts,
                body,
                inbound,
                outbound,
                proto_names,
            )
            .await;
        let mut response = match response {
            Ok(response) => response,
            Err((code, message, details)) => {
                error_response(http_status_for(code), code, &message, details)
            }
        };
        let code = response
            .extensions()
            .get::<GrpcCode>()
            .map(|c| code_name(c.0))
            .unwrap_or("Ok");
        response.extensions_mut().insert(ApiCall::new(
            short_service(&route.service),
            &route.method,
            code,
        ));
        response
    }

    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        route: &Route,
        captures: Vec<(String, String)>,
        parts: &http::request::Parts,
        body: Body,
        inbound: Codec,
        outbound: Codec,
        proto_names: bool,
    ) -> Result<Response, Failure> {
        let invalid = |message: String| failure(AdminError::invalid(message));
        let internal = |message: String| failure(AdminError::Internal(message));
        let max = self.inner.max_request_bytes;
        let body = match http_body_util::Limited::new(body, max).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                return Err(failure(AdminError::ResourceExhausted(format!(
                    "request body is larger than this server accepts ({max} bytes, setting max_request_bytes)"
                ))));
            }
            Err(err) => return Err(invalid(format!("failed to read the request body: {err}"))),
        };
        let message = transcode::build_request(route, &captures, parts.uri.query(), &body, inbound)
            .map_err(|err| {
                // Name the request message, as the gRPC side does for undecodable bytes.
                let name = route.input.full_name();
                if err.contains(name) {
                    invalid(err)
                } else {
                    invalid(format!("could not decode {name}: {err}"))
                }
            })?;
        let encoded = prost::Message::encode_to_vec(&message);

        let mut framed = Vec::with_capacity(encoded.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        framed.extend_from_slice(&encoded);
        let mut grpc_req = Request::builder()
            .method(Method::POST)
            .uri(route.grpc_path())
            .version(http::Version::HTTP_2)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .body(Body::from(framed))
            .map_err(|e| internal(format!("building the gRPC request failed: {e}")))?;
        for name in [
            header::AUTHORIZATION.as_str(),
            "x-request-id",
            "flyte-authorization",
        ] {
            if let Some(value) = parts.headers.get(name) {
                grpc_req.headers_mut().insert(name, value.clone());
            }
        }
        // Who is calling, as the auth layer found it (crate::auth): the RPC sees it as a
        // gRPC client's call would.
        if let Some(identity) = parts.extensions.get::<flyte_auth::Identity>() {
            grpc_req.extensions_mut().insert(identity.clone());
        }
        if let Some(authz) = parts.extensions.get::<Arc<crate::authz::Enforcement>>() {
            grpc_req.extensions_mut().insert(authz.clone());
        }
        if let Some(audit) = parts.extensions.get::<Arc<crate::auth::audit::AuditSink>>() {
            grpc_req.extensions_mut().insert(audit.clone());
        }

        let grpc_resp = match self.inner.grpc.clone().oneshot(grpc_req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        let (resp_parts, resp_body) = grpc_resp.into_parts();
        let collected = resp_body
            .collect()
            .await
            .map_err(|e| internal(format!("reading the gRPC response failed: {e}")))?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let data = collected.to_bytes();
        let header_or_trailer = |name: &str| {
            resp_parts
                .headers
                .get(name)
                .or_else(|| trailers.get(name))
                .cloned()
        };

        let code = match header_or_trailer("grpc-status") {
            Some(value) => match value.to_str().ok().and_then(|v| v.parse::<i32>().ok()) {
                Some(code) => tonic::Code::from_i32(code),
                None => {
                    return Err(internal(format!(
                        "the gRPC call answered an unreadable grpc-status {value:?}"
                    )));
                }
            },
            None if resp_parts.status == StatusCode::NOT_FOUND => {
                return Err(failure(AdminError::Unimplemented(format!(
                    "{} is not served by this server",
                    route.service
                ))));
            }
            None => {
                return Err(internal(format!(
                    "the gRPC call answered HTTP {} without a grpc-status",
                    resp_parts.status
                )));
            }
        };
        if code != tonic::Code::Ok {
            let message = header_or_trailer("grpc-message")
                .and_then(|v| v.to_str().ok().and_then(percent_decode))
                .unwrap_or_default();
            let details = header_or_trailer("grpc-status-details-bin")
                .and_then(|v| {
                    use base64::Engine;
                    let raw = v.as_bytes();
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(
                            raw.strip_suffix(b"==")
                                .or_else(|| raw.strip_suffix(b"="))
                                .unwrap_or(raw),
                        )
                        .ok()
                })
                .map(|bin| transcode::status_details(descriptor_pool(), &bin, proto_names))
                .unwrap_or_default();
            return Err((code, message, details));
        }

        let payload = unframe(data).map_err(internal)?;
        let response = DynamicMessage::decode(route.output.clone(), payload).map_err(|e| {
            internal(format!(
                "cannot decode the {} response: {e}",
                route.output.full_name()
            ))
        })?;
        let selected = transcode::select_response(response, route.response_body.as_deref())
            .map_err(internal)?;
        let bytes = transcode::render(&selected, outbound).map_err(internal)?;
        let mut response = (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(outbound.content_type()),
            )],
            bytes,
        )
            .into_response();
        response.extensions_mut().insert(GrpcCode(tonic::Code::Ok));
        Ok(response)
    }
}

/// An error as sent: code, message and `details`.
type Failure = (tonic::Code, String, Vec<serde_json::Value>);

/// The gateway's own errors go through `AdminError::answer`, the one mapping place: INTERNAL
/// is logged at ERROR there and quoted input is shortened as on the gRPC side. (Errors the
/// gRPC call answered were mapped, and logged, by the service.)
fn failure(err: AdminError) -> Failure {
    let (code, message) = err.answer();
    (code, message, Vec::new())
}

/// The gRPC code behind a gateway response (for the metrics label).
#[derive(Debug, Clone, Copy)]
struct GrpcCode(tonic::Code);

fn unframe(mut data: Bytes) -> Result<Bytes, String> {
    if data.len() < 5 {
        return Err("the gRPC response has no message".into());
    }
    let compressed = data.get_u8();
    let len = data.get_u32() as usize;
    if compressed != 0 {
        return Err("the gRPC response is compressed, which the gateway does not request".into());
    }
    if data.len() < len {
        return Err("the gRPC response message is truncated".into());
    }
    Ok(data.split_to(len))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(routes::hex_byte);
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `AdminService` for `flyteidl.service.AdminService`.
fn short_service(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

/// The canonical name of a gRPC code (`NotFound`, `InvalidArgument`, …).
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "Ok",
        C::Cancelled => "Cancelled",
        C::Unknown => "Unknown",
        C::InvalidArgument => "InvalidArgument",
        C::DeadlineExceeded => "DeadlineExceeded",
        C::NotFound => "NotFound",
        C::AlreadyExists => "AlreadyExists",
        C::PermissionDenied => "PermissionDenied",
        C::ResourceExhausted => "ResourceExhausted",
        C::FailedPrecondition => "FailedPrecondition",
        C::Aborted => "Aborted",
        C::OutOfRange => "OutOfRange",
        C::Unimplemented => "Unimplemented",
        C::Internal => "Internal",
        C::Unavailable => "Unavailable",
        C::DataLoss => "DataLoss",
        C::Unauthenticated => "Unauthenticated",
    }
}

/// grpc-gateway's error body.
pub(crate) fn error_response(
    status: StatusCode,
    code: tonic::Code,
    message: &str,
    details: Vec<serde_json::Value>,
) -> Response {
    let body = json!({ "code": code as i32, "message": message, "details": details });
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    response.extensions_mut().insert(GrpcCode(code));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A gateway in front of a "gRPC server" that answers `grpc` to every call.
    async fn answer_through(grpc: axum::Router) -> (u16, serde_json::Value, String) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let gateway = Gateway::new(grpc, 1 << 20);
        let request = Request::get("/api/v1/projects")
            .body(Body::empty())
            .unwrap();
        let response = gateway.handle(request).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&body).unwrap();
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (status, json, log)
    }

    /// The gateway's own faults (a broken or malformed gRPC answer) are INTERNAL answered
    /// through `AdminError::answer`, so each is logged at ERROR like any other INTERNAL.
    #[tokio::test]
    async fn the_gateways_own_internal_errors_are_logged_at_error() {
        let broken_body = axum::Router::new().fallback(|| async {
            let failing = futures::stream::once(async {
                Err::<Bytes, _>(std::io::Error::other("connection reset"))
            });
            Response::new(Body::from_stream(failing))
        });
        let no_status = axum::Router::new().fallback(|| async { "not gRPC" });
        let no_message = axum::Router::new().fallback(|| async {
            (
                [("grpc-status", "0"), ("content-type", "application/grpc")],
                "",
            )
        });
        for (grpc, expected) in [
            (broken_body, "reading the gRPC response failed"),
            (no_status, "without a grpc-status"),
            (no_message, "has no message"),
        ] {
            let (status, json, log) = answer_through(grpc).await;
            assert_eq!(status, 500, "{json}");
            assert_eq!(json["code"], tonic::Code::Internal as i32, "{json}");
            let message = json["message"].as_str().unwrap_or_default();
            assert!(message.contains(expected), "{message}");
            let logged: Vec<&str> = log.lines().filter(|l| l.contains(expected)).collect();
            assert_eq!(logged.len(), 1, "{expected}: {log}");
            assert!(logged[0].contains("ERROR"), "{log}");
        }
    }
}
