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

/// The edge accepts the server's own task tokens beside the provider's (without asking the
/// provider: it is down here) and refuses an expired or another server's one as
/// UNAUTHENTICATED.
#[tokio::test]
async fn task_tokens_are_checked_with_the_servers_key_and_expire() {
    use flyte_auth::{TaskScope, TaskTokens};
    use std::time::Duration;
    let dir = std::env::temp_dir().join(format!("auth-edge-task-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = |name: &str| {
        Arc::new(
            TaskTokens::load_or_create(&dir.join(name), "flyte-rs", Duration::from_secs(600), 0)
                .unwrap(),
        )
    };
    let (ours, theirs) = (key("ours.key"), key("theirs.key"));
    let auth = Authenticator::new(AuthConfig {
        enabled: true,
        issuer: Some(unreachable_issuer()),
        audience: Some("flyte-rs".into()),
        ..AuthConfig::default()
    })
    .unwrap()
    .with_task_tokens(ours.clone());
    let app = Router::new().route(
        "/flyteidl.service.AdminService/{*rest}",
        any(|req: Request<Body>| async move {
            // The handler sees who called.
            let id = req.extensions().get::<flyte_auth::Identity>().cloned();
            id.map(|i| i.subject).unwrap_or_default()
        }),
    );
    let app = flyte_admin::auth::protect(app, Arc::new(auth));
    let scope = TaskScope {
        project: "flytesnacks".into(),
        domain: "development".into(),
        execution: "e1".into(),
        attempt: "n0/0".into(),
    };

    let resp = app
        .clone()
        .oneshot(grpc(Some(&ours.mint(&scope, None))))
        .await
        .unwrap();
    assert_eq!(grpc_status(&resp), None, "{resp:?}");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(&body[..], b"execution:flytesnacks/development/e1");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = ours.mint_at(&scope, now - 3600, Duration::from_secs(60));
    let resp = app.clone().oneshot(grpc(Some(&expired))).await.unwrap();
    assert_eq!(grpc_status(&resp).as_deref(), Some("16"), "{resp:?}");
    let message = resp.headers()["grpc-message"].to_str().unwrap().to_owned();
    assert!(message.contains("expired"), "{message}");

    let resp = app
        .oneshot(grpc(Some(&theirs.mint(&scope, None))))
        .await
        .unwrap();
    assert_eq!(grpc_status(&resp).as_deref(), Some("16"), "{resp:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
