//! Authorization over the real router (crate::authz, docs/adr-010-authorization.md): every
//! gRPC method the server answers has a rule in `authz::RULES` (this test fails when a new
//! RPC has none), a caller without a role is refused each non-public method with
//! PERMISSION_DENIED naming the permission, and viewers/executors get what their role allows
//! over gRPC and REST alike. The identity is put into the request as the authentication edge
//! does (tokens from a real provider: tests/e2e/test_auth.py).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use flyte_admin::authz::{Enforcement, Need, RULES, rule_for};
use flyte_admin::{AdminConfig, AdminState};
use flyte_auth::{AuthConfig, Authenticator, AuthorizationConfig, Identity};
use flyte_blob::BlobStore;
use http::Request;
use http_body_util::BodyExt;
use prost::Message;
use tower::ServiceExt;

struct App {
    router: Router,
    authz: Arc<Enforcement>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
    let state = AdminState {
        store,
        blob,
        config: Arc::new(AdminConfig {
            signing_key: b"0123456789abcdef0123456789abcdef".to_vec(),
            ..Default::default()
        }),
        launcher: None,
    };
    // The auth contract's services too, as the binary serves them with auth on.
    let auth = Authenticator::new(AuthConfig {
        enabled: true,
        issuer: Some("http://127.0.0.1:9".into()),
        audience: Some("flyte-rs".into()),
        ..AuthConfig::default()
    })
    .unwrap();
    let router = flyte_admin::router::router(state).merge(flyte_admin::auth::router(
        Arc::new(auth),
        "http://localhost",
        1 << 20,
    ));
    let policy: AuthorizationConfig = serde_json::from_value(serde_json::json!({
        "enabled": true,
        "platform_admins": ["user:root"],
        "bindings": [
            {"user": "vic", "role": "viewer", "project": "flytesnacks"},
            {"group": "runners", "role": "executor", "project": "flytesnacks",
             "domain": "development"}
        ]
    }))
    .unwrap();
    App {
        router,
        authz: Arc::new(Enforcement {
            authorizer: Some(flyte_auth::Authorizer::new(policy)),
            max_request_bytes: 1 << 20,
        }),
        _dir: dir,
    }
}

fn who(subject: &str, groups: &[&str]) -> Identity {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), subject.into());
    claims.insert("groups".into(), serde_json::json!(groups));
    Identity {
        subject: subject.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        claims,
        ..Identity::default()
    }
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

impl App {
    /// A gRPC call as `who` (None: no identity, authorization on); (code, message, body).
    async fn grpc(
        &self,
        who: Option<&Identity>,
        path: &str,
        message: &[u8],
    ) -> (i32, String, bytes::Bytes) {
        let mut req = Request::post(path)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Body::from(frame(message)))
            .unwrap();
        req.extensions_mut().insert(self.authz.clone());
        if let Some(id) = who {
            req.extensions_mut().insert(id.clone());
        }
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let mut headers = resp.headers().clone();
        let collected = resp.into_body().collect().await.unwrap();
        if let Some(trailers) = collected.trailers() {
            headers.extend(trailers.clone());
        }
        let code = headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().parse().unwrap())
            .unwrap_or(0);
        let message = headers
            .get("grpc-message")
            .map(|v| percent_decode(v.to_str().unwrap()))
            .unwrap_or_default();
        (code, message, collected.to_bytes())
    }

    async fn rest(
        &self,
        who: &Identity,
        method: http::Method,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        req.extensions_mut().insert(self.authz.clone());
        req.extensions_mut().insert(who.clone());
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const PERMISSION_DENIED: i32 = 7;
const UNIMPLEMENTED: i32 = 12;

#[tokio::test]
async fn every_served_method_has_a_rule_and_strangers_are_refused_by_name() {
    let app = app().await;
    let stranger = who("stranger", &[]);
    let pool = flyte_admin::gateway::descriptor_pool();
    let mut served = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let (code, message, _) = app.grpc(Some(&stranger), &path, &[]).await;
            if code == UNIMPLEMENTED && message.contains("is not served") {
                continue;
            }
            served.push((service.full_name().to_owned(), method.name().to_owned()));
            let Some(rule) = rule_for(service.full_name(), method.name()) else {
                panic!(
                    "{path} is served but has no authorization rule in flyte_admin::authz::RULES \
                     (answered {code}: {message})"
                );
            };
            if let Need::On(permission, _) = rule.need {
                assert_eq!(code, PERMISSION_DENIED, "{path}: {message}");
                assert!(
                    message.contains(&format!(
                        "user `stranger` lacks the `{permission}` permission"
                    )),
                    "{path}: {message}"
                );
            } else {
                assert_ne!(code, PERMISSION_DENIED, "{path} is public: {message}");
            }
        }
    }
    // Not vacuous: the services of the contract are answered.
    for service in [
        "flyteidl.service.AdminService",
        "flyteidl.service.DataProxyService",
        "flyteidl.service.SignalService",
        "flyteidl.service.IdentityService",
        "flyteidl.service.AuthMetadataService",
        "datacatalog.DataCatalog",
        "flyteidl.cacheservice.CacheService",
    ] {
        assert!(
            served.iter().any(|(s, _)| s == service),
            "{service} is not served: {served:?}"
        );
    }
    // No stale rule: each names a method that is served.
    for rule in RULES {
        assert!(
            served
                .iter()
                .any(|(s, m)| s == rule.service && m == rule.method),
            "rule for {}.{} names no served method",
            rule.service,
            rule.method
        );
    }
}

fn task_request(project: &str, domain: &str) -> Vec<u8> {
    use flyteidl::core::{Identifier, ResourceType};
    flyteidl::admin::TaskCreateRequest {
        id: Some(Identifier {
            resource_type: ResourceType::Task as i32,
            project: project.into(),
            domain: domain.into(),
            name: "t".into(),
            version: "v1".into(),
            ..Default::default()
        }),
        spec: None,
    }
    .encode_to_vec()
}

#[tokio::test]
async fn a_viewer_lists_and_reads_but_is_refused_registering_and_launching() {
    let app = app().await;
    let root = who("root", &[]);
    let vic = who("vic", &[]);
    let register = |id: &str| {
        flyteidl::admin::ProjectRegisterRequest {
            project: Some(flyteidl::admin::Project {
                id: id.into(),
                name: id.into(),
                ..Default::default()
            }),
        }
        .encode_to_vec()
    };
    // Only a platform admin creates projects.
    let path = "/flyteidl.service.AdminService/RegisterProject";
    let (code, message, _) = app.grpc(Some(&vic), path, &register("secret")).await;
    assert_eq!(code, PERMISSION_DENIED, "{message}");
    assert!(message.contains("`admin-platform`"), "{message}");
    let (code, message, _) = app.grpc(Some(&root), path, &register("secret")).await;
    assert_eq!(code, 0, "{message}");

    // ListProjects shows what the caller may read.
    let list = "/flyteidl.service.AdminService/ListProjects";
    let names = |body: bytes::Bytes| -> Vec<String> {
        let projects = flyteidl::admin::Projects::decode(&body[5..]).unwrap();
        projects.projects.into_iter().map(|p| p.id).collect()
    };
    let (code, _, body) = app.grpc(Some(&vic), list, &[]).await;
    assert_eq!(code, 0);
    assert_eq!(names(body), ["flytesnacks"]);
    let (_, _, body) = app.grpc(Some(&root), list, &[]).await;
    assert!(names(body).contains(&"secret".to_string()));
    let (_, _, body) = app.grpc(Some(&who("stranger", &[])), list, &[]).await;
    assert!(names(body).is_empty());
    // REST alike.
    let (status, body) = app
        .rest(
            &vic,
            http::Method::GET,
            "/api/v1/projects",
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["projects"].as_array().unwrap().len(), 1, "{body}");

    // Reading in its project passes authorization (the task does not exist: NOT_FOUND).
    let get = flyteidl::admin::ObjectGetRequest {
        id: flyteidl::admin::TaskCreateRequest::decode(
            &task_request("flytesnacks", "development")[..],
        )
        .unwrap()
        .id,
    }
    .encode_to_vec();
    let (code, message, _) = app
        .grpc(Some(&vic), "/flyteidl.service.AdminService/GetTask", &get)
        .await;
    assert_eq!(code, 5, "{message}");

    // Registering: PERMISSION_DENIED naming the permission, project and domain.
    let create = "/flyteidl.service.AdminService/CreateTask";
    let (code, message, _) = app
        .grpc(
            Some(&vic),
            create,
            &task_request("flytesnacks", "development"),
        )
        .await;
    assert_eq!(code, PERMISSION_DENIED, "{message}");
    assert!(
        message.starts_with(
            "user `vic` lacks the `register` permission on project `flytesnacks`, domain \
             `development`"
        ),
        "{message}"
    );
    // Launching, over REST: 403 with the gRPC code.
    let (status, body) = app
        .rest(
            &vic,
            http::Method::POST,
            "/api/v1/executions",
            serde_json::json!({"project": "flytesnacks", "domain": "development", "name": "x"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(
            "lacks the `execute` permission on project `flytesnacks`, domain `development`"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn an_executor_group_runs_in_its_domain_only() {
    let app = app().await;
    let eve = who("eve", &["runners"]);
    let create = |domain: &str| {
        flyteidl::admin::ExecutionCreateRequest {
            project: "flytesnacks".into(),
            domain: domain.into(),
            name: "x".into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let path = "/flyteidl.service.AdminService/CreateExecution";
    // Past authorization: the request itself is incomplete (no spec).
    let (code, message, _) = app.grpc(Some(&eve), path, &create("development")).await;
    assert_ne!(code, PERMISSION_DENIED, "{message}");
    assert_ne!(code, 0, "{message}");
    let (code, message, _) = app.grpc(Some(&eve), path, &create("production")).await;
    assert_eq!(code, PERMISSION_DENIED, "{message}");
    assert!(message.contains("domain `production`"), "{message}");
    // Executors do not register.
    let (code, _, _) = app
        .grpc(
            Some(&eve),
            "/flyteidl.service.AdminService/CreateTask",
            &task_request("flytesnacks", "development"),
        )
        .await;
    assert_eq!(code, PERMISSION_DENIED);
}

#[tokio::test]
async fn without_enforcement_nothing_is_checked() {
    // Authorization off: the edge puts no Enforcement in the request; a caller without any
    // role (or no identity at all) registers as before.
    let app = app().await;
    let req = Request::post("/flyteidl.service.AdminService/CreateTask")
        .header("content-type", "application/grpc")
        .body(Body::from(frame(&task_request(
            "flytesnacks",
            "development",
        ))))
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let code = resp
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    // INVALID_ARGUMENT (no spec), not PERMISSION_DENIED.
    assert_eq!(code.as_deref(), Some("3"), "{resp:?}");

    // Authentication on, authorization off: the Enforcement carries no roles; a caller with
    // none still registers (the call is only audited).
    let audit_only = App {
        router: app.router.clone(),
        authz: Arc::new(Enforcement {
            authorizer: None,
            max_request_bytes: 1 << 20,
        }),
        _dir: tempfile::tempdir().unwrap(),
    };
    let (code, message, _) = audit_only
        .grpc(
            Some(&who("stranger", &[])),
            "/flyteidl.service.AdminService/CreateTask",
            &task_request("flytesnacks", "development"),
        )
        .await;
    assert_eq!(code, 3, "{message}");
    let (code, _, body) = audit_only
        .grpc(
            Some(&who("stranger", &[])),
            "/flyteidl.service.AdminService/ListProjects",
            &[],
        )
        .await;
    assert_eq!(code, 0);
    let projects = flyteidl::admin::Projects::decode(&body[5..]).unwrap();
    assert!(projects.projects.iter().any(|p| p.id == "flytesnacks"));
}

#[tokio::test]
async fn plain_http_routes_are_checked_by_the_project_in_their_path() {
    use flyte_admin::authz::check_http;
    let app = app().await;
    let vic = who("vic", &[]);
    let eve = who("eve", &["runners"]);
    let get = http::Method::GET;
    let delete = http::Method::DELETE;
    let ok = |r: Result<(), tonic::Status>| r.map_err(|s| s.message().to_owned());
    ok(check_http(
        &app.authz,
        Some(&vic),
        &get,
        "/api/v1/watch/executions/flytesnacks/development",
    ))
    .unwrap();
    ok(check_http(
        &app.authz,
        Some(&vic),
        &get,
        "/logs/flytesnacks/production/x/n0/0.log",
    ))
    .unwrap();
    // Another project's logs and live updates: refused by name.
    let err = ok(check_http(
        &app.authz,
        Some(&vic),
        &get,
        "/logs/ml/development/x/n0/0.log",
    ))
    .unwrap_err();
    assert!(
        err.contains("lacks the `read` permission on project `ml`, domain `development`"),
        "{err}"
    );
    // Evicting cache entries is an executor's act, in its domain only.
    let cache = "/api/v1/cache/flytesnacks/development";
    let err = ok(check_http(&app.authz, Some(&vic), &delete, cache)).unwrap_err();
    assert!(err.contains("`execute`"), "{err}");
    ok(check_http(&app.authz, Some(&eve), &delete, cache)).unwrap();
    assert!(
        ok(check_http(
            &app.authz,
            Some(&eve),
            &delete,
            "/api/v1/cache/flytesnacks/production"
        ))
        .is_err()
    );
    // Routes that name no project (the console's pages, health) are not this check's.
    ok(check_http(
        &app.authz,
        Some(&vic),
        &get,
        "/console/projects",
    ))
    .unwrap();
}
