//! The auth layer's answers (crate::auth) where no provider is needed to tell: a call without
//! a token is UNAUTHENTICATED (gRPC) / 401 (HTTP), exempt paths are served, and a token that
//! cannot be checked because the provider is down is UNAVAILABLE / 503, never UNAUTHENTICATED
//! (flytekit would answer that with a login). Tokens from a real provider:
//! tests/e2e/test_auth.py.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::{any, get};
use flyte_auth::{AuthConfig, Authenticator};
use http::{Request, StatusCode};
use tower::ServiceExt;

/// An issuer URL nothing listens on.
fn unreachable_issuer() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn app() -> Router {
    let auth = Authenticator::new(AuthConfig {
        enabled: true,
        issuer: Some(unreachable_issuer()),
        audience: Some("flyte-rs".into()),
        ..AuthConfig::default()
    })
    .unwrap();
    let app = Router::new()
        .route("/healthcheck", get(|| async { "ok" }))
        .route("/api/v1/projects", get(|| async { "projects" }))
        .route(
            "/flyteidl.service.AdminService/{*rest}",
            any(|| async { "grpc" }),
        );
    flyte_admin::auth::protect(app, Arc::new(auth))
}

fn grpc(token: Option<&str>) -> Request<Body> {
    let mut req = Request::post("/flyteidl.service.AdminService/ListProjects")
        .header("content-type", "application/grpc");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Body::empty()).unwrap()
}

fn grpc_status(resp: &http::Response<Body>) -> Option<String> {
    resp.headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
}

// A well-formed JWT (header {"alg":"RS256","kid":"k1"}) whose signature nobody can check here.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhIn0.c2ln";

#[tokio::test]
async fn no_token_is_unauthenticated_and_exempt_paths_are_served() {
    let resp = app().oneshot(grpc(None)).await.unwrap();
    assert_eq!(grpc_status(&resp).as_deref(), Some("16"), "{resp:?}");

    let resp = app()
        .oneshot(
            Request::get("/api/v1/projects")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");

    let resp = app()
        .oneshot(Request::get("/healthcheck").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_that_cannot_be_checked_is_unavailable_not_unauthenticated() {
    let resp = app().oneshot(grpc(Some(TOKEN))).await.unwrap();
    assert_eq!(grpc_status(&resp).as_deref(), Some("14"), "{resp:?}");
    let message = resp.headers()["grpc-message"].to_str().unwrap().to_owned();
    assert!(message.contains("identity%20provider"), "{message}");

    let resp = app()
        .oneshot(
            Request::get("/api/v1/projects")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
}
