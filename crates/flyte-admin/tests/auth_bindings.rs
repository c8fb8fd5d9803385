//! Role bindings over the API (`/api/v1/auth/bindings`, docs/auth.md): a platform admin adds
//! a binding and the user's next call is allowed, on this replica at once and on another
//! after its reload from the store; a non-admin is refused PERMISSION_DENIED; deleting it
//! takes the permission away; configuration bindings are listed read-only.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use flyte_admin::auth::bindings::{BindingsApi, PATH};
use flyte_admin::authz::Enforcement;
use flyte_admin::{AdminConfig, AdminState};
use flyte_auth::{AuthorizationConfig, Authorizer, Identity};
use flyte_blob::BlobStore;
use flyte_store::MetadataStore;
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// One replica: the admin router and the bindings API over `store`, its own policy.
struct Replica {
    router: Router,
    authz: Arc<Enforcement>,
    api: BindingsApi,
}

fn replica(store: Arc<dyn MetadataStore>, dir: &std::path::Path) -> Replica {
    let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.display())).unwrap();
    let state = AdminState {
        store: store.clone(),
        blob,
        config: Arc::new(AdminConfig {
            signing_key: b"0123456789abcdef0123456789abcdef".to_vec(),
            ..Default::default()
        }),
        launcher: None,
    };
    let policy: AuthorizationConfig = serde_json::from_value(json!({
        "enabled": true,
        "platform_admins": ["user:root"],
        "bindings": [{"user": "vic", "role": "viewer", "project": "flytesnacks"}]
    }))
    .unwrap();
    let authorizer = Authorizer::new(policy);
    let api = BindingsApi {
        store,
        authorizer: Some(authorizer.clone()),
    };
    let router =
        flyte_admin::router::router(state).merge(flyte_admin::auth::bindings::router(api.clone()));
    Replica {
        router,
        authz: Arc::new(Enforcement {
            authorizer: Some(authorizer),
            max_request_bytes: 1 << 20,
        }),
        api,
    }
}

fn who(subject: &str) -> Identity {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), subject.into());
    Identity {
        subject: subject.into(),
        claims,
        ..Identity::default()
    }
}

impl Replica {
    async fn call(&self, who: &Identity, method: &str, path: &str, body: Value) -> (u16, Value) {
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
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Whether `who` may list the launch plans of flytesnacks/development (needs `read`).
    async fn reads(&self, who: &Identity) -> u16 {
        let path = "/api/v1/launch_plan_ids/flytesnacks/development?limit=10";
        self.call(who, "GET", path, Value::Null).await.0
    }
}

#[tokio::test]
async fn an_admin_binds_a_user_and_the_users_next_call_is_allowed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let a = replica(store.clone(), dir.path());
    let b = replica(store.clone(), dir.path());
    let (root, vic, eve) = (who("root"), who("vic"), who("eve"));
    assert_eq!(a.reads(&eve).await, 403);

    // A non-admin may neither add nor list bindings.
    let binding = json!({"user": "eve", "role": "executor", "project": "flytesnacks",
                         "domain": "development"});
    let (status, body) = a.call(&vic, "POST", PATH, binding.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], 7, "{body}"); // PERMISSION_DENIED
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("lacks the `admin-platform` permission"),
        "{body}"
    );
    assert_eq!(a.call(&vic, "GET", PATH, Value::Null).await.0, 403);
    assert_eq!(a.reads(&eve).await, 403);

    // The platform admin adds it: eve's next call on this replica is allowed.
    let (status, body) = a.call(&root, "POST", PATH, binding.clone()).await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.reads(&eve).await, 200);
    // Another replica: after its reload from the store (every auth.authorization.reload_secs).
    assert_eq!(b.reads(&eve).await, 403);
    b.api.reload().await.unwrap();
    assert_eq!(b.reads(&eve).await, 200);
    // Only in its domain.
    let prod = "/api/v1/launch_plan_ids/flytesnacks/production?limit=10";
    assert_eq!(a.call(&eve, "GET", prod, Value::Null).await.0, 403);

    // The same binding twice: ALREADY_EXISTS; a bad role: INVALID_ARGUMENT naming the roles.
    let (status, body) = a.call(&root, "POST", PATH, binding).await;
    assert_eq!((status, body["code"].as_i64()), (409, Some(6)), "{body}");
    let (status, body) = a
        .call(
            &root,
            "POST",
            PATH,
            json!({"user": "x", "role": "owner", "project": "p"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("viewer, executor"),
        "{body}"
    );

    // Listed with the configuration's (read-only) bindings.
    let (status, body) = a.call(&root, "GET", PATH, Value::Null).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bindings"][0]["user"], "eve", "{body}");
    assert_eq!(body["bindings"][0]["createdBy"], "root", "{body}");
    assert_eq!(body["configured"][0]["user"], "vic", "{body}");

    // Deleted: refused again.
    let (status, body) = a
        .call(&root, "DELETE", &format!("{PATH}/{id}"), Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(a.reads(&eve).await, 403);
    let (status, _) = a
        .call(&root, "DELETE", &format!("{PATH}/{id}"), Value::Null)
        .await;
    assert_eq!(status, 404);
}

/// Audited calls are stored and read back over `/api/v1/auth/audit`: by a platform admin
/// (all), by the project's admin (that project only), not by a viewer; paged newest first.
#[tokio::test]
async fn audited_calls_are_queryable_by_admins() {
    use flyte_admin::auth::audit::AuditSink;
    use flyte_admin::auth::bindings::AUDIT_PATH;
    let dir = tempfile::tempdir().unwrap();
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let a = replica(store.clone(), dir.path());
    let sink = AuditSink::start(store.clone(), std::time::Duration::from_secs(86_400));
    let (root, vic) = (who("root"), who("vic"));
    let call = |who: Identity, method: &'static str, path: String, body: Value| {
        let (router, authz, sink) = (a.router.clone(), a.authz.clone(), sink.clone());
        async move {
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            req.extensions_mut().insert(authz);
            req.extensions_mut().insert(sink);
            req.extensions_mut().insert(who);
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    // Three mutating calls: two projects registered by root, one refused to vic.
    for (w, id) in [(&root, "p1"), (&root, "p2"), (&vic, "p3")] {
        let body = json!({"project": {"id": id, "name": id}});
        call(w.clone(), "POST", "/api/v1/projects".into(), body).await;
    }
    sink.flush().await;

    let (status, body) = call(
        root.clone(),
        "GET",
        format!("{AUDIT_PATH}?limit=2"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let recs = body["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2, "{body}");
    assert_eq!(recs[0]["subject"], "vic", "{body}");
    assert_eq!(recs[0]["method"], "RegisterProject", "{body}");
    assert_eq!(recs[0]["code"], "PermissionDenied", "{body}");
    assert_eq!(recs[1]["subject"], "root", "{body}");
    assert_eq!(recs[1]["code"], "Ok", "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty(), "{body}");
    let (_, next) = call(
        root.clone(),
        "GET",
        format!("{AUDIT_PATH}?limit=2&token={token}"),
        Value::Null,
    )
    .await;
    let next = next["records"].as_array().unwrap().clone();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["subject"], "root");

    // A viewer may not read the audit, of its project or of the platform.
    let (status, body) = call(
        vic.clone(),
        "GET",
        format!("{AUDIT_PATH}?project=flytesnacks"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("admin-project"),
        "{body}"
    );
    // A project admin (bound over the API) reads its project's only.
    let bind = json!({"user": "ada", "role": "admin", "project": "flytesnacks"});
    assert_eq!(call(root.clone(), "POST", PATH.into(), bind).await.0, 200);
    let ada = who("ada");
    let (status, body) = call(
        ada.clone(),
        "GET",
        format!("{AUDIT_PATH}?project=flytesnacks"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        call(ada, "GET", AUDIT_PATH.into(), Value::Null).await.0,
        403
    );
    // A bad time is INVALID_ARGUMENT naming the format.
    let (status, body) = call(
        root,
        "GET",
        format!("{AUDIT_PATH}?since=yesterday"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("RFC 3339"),
        "{body}"
    );
}
