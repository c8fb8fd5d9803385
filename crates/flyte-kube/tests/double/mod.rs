//! A double of the Kubernetes API server for the pod endpoints kube-rs calls, speaking the real
//! API's HTTP and JSON shapes (k8s.io/apimachinery: `PodList` with `metadata.resourceVersion`,
//! newline-delimited `WatchEvent`s `{"type":"ADDED|MODIFIED|DELETED","object":…}` on
//! `?watch=true`, `Status` objects for errors with `reason` and `code`). Routes:
//!
//! * `GET  /api/v1/pods` and `/api/v1/namespaces/{ns}/pods`: list, or watch with `watch=true`
//!   from `resourceVersion`; `labelSelector` with `k=v[,k=v]`.
//! * `POST /api/v1/namespaces/{ns}/pods`: create (409 `AlreadyExists`; 404 for a namespace
//!   not made with [`ApiDouble::add_namespace`]; a queued error with [`ApiDouble::fail_next_create`]).
//! * `GET`/`DELETE /api/v1/namespaces/{ns}/pods/{name}` (404 `NotFound`).
//! * ConfigMaps: `POST /api/v1/namespaces/{ns}/configmaps` (uid assigned, 409), `GET`,
//!   `PATCH` (JSON merge patch) and `DELETE …/configmaps/{name}`, `GET /api/v1/configmaps`
//!   (list, `labelSelector`). Deleting one plays the garbage collector: the pods whose
//!   `metadata.ownerReferences` name its uid are deleted (background propagation).
//!
//! The test plays the kubelet: [`ApiDouble::set_status`] replaces a pod's status and sends
//! `MODIFIED` to the watchers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Default)]
struct Inner {
    pods: BTreeMap<(String, String), Value>,
    pod_templates: BTreeMap<(String, String), Value>,
    config_maps: BTreeMap<(String, String), Value>,
    /// What `GET …/pods/{name}/log` answers.
    pod_logs: BTreeMap<(String, String), String>,
    namespaces: BTreeSet<String>,
    resource_version: u64,
    /// Every change, for watches that start from an older resourceVersion.
    log: Vec<(u64, String, Value)>,
    /// Errors the next creates answer with, in order.
    next_create_errors: std::collections::VecDeque<(u16, String, String)>,
    /// Requests seen, `METHOD path?query`.
    requests: Vec<String>,
}

#[derive(Clone)]
pub struct ApiDouble {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<(u64, String, Value)>,
    pub url: String,
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn matches(pod: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return false;
        };
        pod["metadata"]["labels"][k.trim()].as_str() == Some(v.trim())
    })
}

impl ApiDouble {
    pub async fn start() -> Self {
        let (events, _) = broadcast::channel(1024);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let double = ApiDouble {
            inner: Arc::new(Mutex::new(Inner::default())),
            events,
            url,
        };
        let app = Router::new()
            .route("/api/v1/pods", get(list_all))
            .route("/api/v1/namespaces/{ns}/pods", get(list_ns).post(create))
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}",
                get(get_pod).delete(delete_pod),
            )
            .route(
                "/api/v1/namespaces/{ns}/podtemplates/{name}",
                get(get_pod_template),
            )
            .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(get_pod_log))
            .route("/api/v1/configmaps", get(list_config_maps))
            .route(
                "/api/v1/namespaces/{ns}/configmaps",
                axum::routing::post(create_config_map),
            )
            .route(
                "/api/v1/namespaces/{ns}/configmaps/{name}",
                get(get_config_map)
                    .patch(patch_config_map)
                    .delete(delete_config_map),
            )
            .with_state(double.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        double
    }

    /// A kubeconfig that points kube-rs at this double.
    pub fn write_kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}\n\
             users:\n- name: tester\n  user: {{}}\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: tester\n\
             current-context: double\n",
            self.url
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The text `GET …/pods/{name}/log` answers with (the kubelet's copy of the container's
    /// output).
    pub fn set_log(&self, ns: &str, name: &str, text: &str) {
        self.inner
            .lock()
            .unwrap()
            .pod_logs
            .insert((ns.into(), name.into()), text.into());
    }

    /// A `v1/PodTemplate` as `kubectl apply` would leave it.
    pub fn add_pod_template(&self, ns: &str, template: Value) {
        let name = template["metadata"]["name"].as_str().unwrap().to_string();
        self.inner
            .lock()
            .unwrap()
            .pod_templates
            .insert((ns.into(), name), template);
    }

    pub fn add_namespace(&self, ns: &str) {
        self.inner.lock().unwrap().namespaces.insert(ns.into());
    }

    pub fn fail_next_create(&self, code: u16, reason: &str, message: &str) {
        self.inner.lock().unwrap().next_create_errors.push_back((
            code,
            reason.into(),
            message.into(),
        ));
    }

    pub fn pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .pods
            .get(&(ns.into(), name.into()))
            .cloned()
    }

    pub fn pod_names(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().pods.keys().cloned().collect()
    }

    pub fn config_map(&self, ns: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .config_maps
            .get(&(ns.into(), name.into()))
            .cloned()
    }

    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    fn record(&self, inner: &mut Inner, kind: &str, pod: Value) {
        let _ = self
            .events
            .send((inner.resource_version, kind.into(), pod.clone()));
        inner.log.push((inner.resource_version, kind.into(), pod));
    }

    /// Puts a pod in as if someone else (an earlier server process) had created it.
    pub fn insert_pod(&self, mut pod: Value) {
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        let rv = inner.resource_version.to_string();
        pod["metadata"]["resourceVersion"] = json!(rv);
        pod["metadata"]["uid"] = json!(format!("uid-{rv}"));
        let k = (
            pod["metadata"]["namespace"].as_str().unwrap().to_string(),
            pod["metadata"]["name"].as_str().unwrap().to_string(),
        );
        inner.namespaces.insert(k.0.clone());
        inner.pods.insert(k, pod.clone());
        self.record(&mut inner, "ADDED", pod);
    }

    /// The kubelet's part: a new status for a pod; watchers get `MODIFIED`.
    pub fn set_status(&self, ns: &str, name: &str, status: Value) {
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        let rv = inner.resource_version.to_string();
        let pod = inner
            .pods
            .get_mut(&(ns.into(), name.into()))
            .unwrap_or_else(|| panic!("no pod {ns}/{name}"));
        pod["status"] = status;
        pod["metadata"]["resourceVersion"] = json!(rv);
        let pod = pod.clone();
        self.record(&mut inner, "MODIFIED", pod);
    }

    /// Someone deletes the pod behind the server's back.
    pub fn remove_pod(&self, ns: &str, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.resource_version += 1;
        if let Some(pod) = inner.pods.remove(&(ns.into(), name.into())) {
            self.record(&mut inner, "DELETED", pod);
        }
    }

    fn list_or_watch(
        &self,
        ns: Option<String>,
        q: HashMap<String, String>,
        path: String,
    ) -> Response {
        let selector = q.get("labelSelector").cloned();
        let in_ns = move |pod: &Value| {
            ns.as_deref()
                .is_none_or(|n| pod["metadata"]["namespace"].as_str() == Some(n))
        };
        let mut inner = self.inner.lock().unwrap();
        inner
            .requests
            .push(format!("GET {path}?{}", query_string(&q)));
        if q.get("watch").map(String::as_str) == Some("true")
            || q.get("watch").map(String::as_str) == Some("1")
        {
            let from: u64 = q
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(inner.resource_version);
            // Subscribed under the lock: nothing falls between the replay and the live events.
            let rx = self.events.subscribe();
            let replay: Vec<Value> = inner
                .log
                .iter()
                .filter(|(rv, _, pod)| *rv > from && in_ns(pod) && matches(pod, selector.as_ref()))
                .map(|(_, kind, pod)| json!({"type": kind, "object": pod}))
                .collect();
            drop(inner);
            let selector2 = selector.clone();
            let live = tokio_stream_from(rx).filter_map(move |(rv, kind, pod)| {
                let keep = rv > from && in_ns(&pod) && matches(&pod, selector2.as_ref());
                async move { keep.then(|| json!({"type": kind, "object": pod})) }
            });
            let lines = futures::stream::iter(replay)
                .chain(live)
                .map(|ev| Ok::<_, std::convert::Infallible>(format!("{ev}\n")));
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(lines))
                .unwrap();
        }
        let items: Vec<Value> = inner
            .pods
            .values()
            .filter(|p| in_ns(p) && matches(p, selector.as_ref()))
            .cloned()
            .collect();
        axum::Json(json!({
            "kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": inner.resource_version.to_string()},
            "items": items,
        }))
        .into_response()
    }
}

fn query_string(q: &HashMap<String, String>) -> String {
    let mut parts: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.sort();
    parts.join("&")
}

fn tokio_stream_from<T: Clone + Send + 'static>(
    rx: broadcast::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((v, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

async fn list_all(
    State(d): State<ApiDouble>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    d.list_or_watch(None, q, "/api/v1/pods".into())
}

async fn list_ns(
    State(d): State<ApiDouble>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/api/v1/namespaces/{ns}/pods");
    d.list_or_watch(Some(ns), q, path)
}

async fn create(
    State(d): State<ApiDouble>,
    Path(ns): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut pod: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", &format!("body: {e}")),
    };
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("POST /api/v1/namespaces/{ns}/pods"));
    if let Some((code, reason, message)) = inner.next_create_errors.pop_front() {
        return status(code, &reason, &message);
    }
    if !inner.namespaces.contains(&ns) {
        return status(404, "NotFound", &format!("namespaces \"{ns}\" not found"));
    }
    let Some(name) = pod["metadata"]["name"].as_str().map(str::to_string) else {
        return status(
            422,
            "Invalid",
            "Pod \"\" is invalid: metadata.name: Required value: name or generateName is required",
        );
    };
    if pod["metadata"]["namespace"]
        .as_str()
        .is_some_and(|n| n != ns)
    {
        return status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    if inner.pods.contains_key(&(ns.clone(), name.clone())) {
        return status(
            409,
            "AlreadyExists",
            &format!("pods \"{name}\" already exists"),
        );
    }
    inner.resource_version += 1;
    let rv = inner.resource_version.to_string();
    pod["metadata"]["namespace"] = json!(ns);
    pod["metadata"]["resourceVersion"] = json!(rv);
    pod["metadata"]["uid"] = json!(format!("uid-{rv}"));
    pod["metadata"]["creationTimestamp"] = json!("2026-12-07T12:00:00Z");
    pod["status"] = json!({"phase": "Pending", "qosClass": "Burstable"});
    inner.pods.insert((ns, name), pod.clone());
    d.record(&mut inner, "ADDED", pod.clone());
    (StatusCode::CREATED, axum::Json(pod)).into_response()
}

async fn get_pod_log(
    State(d): State<ApiDouble>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("GET /api/v1/namespaces/{ns}/pods/{name}/log"));
    match inner.pod_logs.get(&(ns, name.clone())) {
        Some(text) => (StatusCode::OK, text.clone()).into_response(),
        None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
    }
}

async fn get_pod_template(
    State(d): State<ApiDouble>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("GET /api/v1/namespaces/{ns}/podtemplates/{name}"));
    match inner.pod_templates.get(&(ns, name.clone())) {
        Some(p) => axum::Json(p.clone()).into_response(),
        None => status(
            404,
            "NotFound",
            &format!("podtemplates \"{name}\" not found"),
        ),
    }
}

async fn get_pod(State(d): State<ApiDouble>, Path((ns, name)): Path<(String, String)>) -> Response {
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("GET /api/v1/namespaces/{ns}/pods/{name}"));
    match inner.pods.get(&(ns, name.clone())) {
        Some(p) => axum::Json(p.clone()).into_response(),
        None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
    }
}

async fn delete_pod(
    State(d): State<ApiDouble>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("DELETE /api/v1/namespaces/{ns}/pods/{name}"));
    inner.resource_version += 1;
    match inner.pods.remove(&(ns, name.clone())) {
        Some(p) => {
            d.record(&mut inner, "DELETED", p.clone());
            axum::Json(p).into_response()
        }
        None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
    }
}

async fn create_config_map(
    State(d): State<ApiDouble>,
    Path(ns): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut cm: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", &format!("body: {e}")),
    };
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("POST /api/v1/namespaces/{ns}/configmaps"));
    if !inner.namespaces.contains(&ns) {
        return status(404, "NotFound", &format!("namespaces \"{ns}\" not found"));
    }
    let Some(name) = cm["metadata"]["name"].as_str().map(str::to_string) else {
        return status(
            422,
            "Invalid",
            "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required",
        );
    };
    if inner.config_maps.contains_key(&(ns.clone(), name.clone())) {
        return status(
            409,
            "AlreadyExists",
            &format!("configmaps \"{name}\" already exists"),
        );
    }
    inner.resource_version += 1;
    let rv = inner.resource_version.to_string();
    cm["metadata"]["namespace"] = json!(ns);
    cm["metadata"]["resourceVersion"] = json!(rv);
    cm["metadata"]["uid"] = json!(format!("cm-uid-{rv}"));
    cm["metadata"]["creationTimestamp"] = json!("2026-12-07T12:00:00Z");
    inner.config_maps.insert((ns, name), cm.clone());
    (StatusCode::CREATED, axum::Json(cm)).into_response()
}

async fn get_config_map(
    State(d): State<ApiDouble>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("GET /api/v1/namespaces/{ns}/configmaps/{name}"));
    match inner.config_maps.get(&(ns, name.clone())) {
        Some(c) => axum::Json(c.clone()).into_response(),
        None => status(404, "NotFound", &format!("configmaps \"{name}\" not found")),
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

async fn patch_config_map(
    State(d): State<ApiDouble>,
    Path((ns, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("PATCH /api/v1/namespaces/{ns}/configmaps/{name}"));
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/merge-patch+json")
    {
        return status(
            415,
            "UnsupportedMediaType",
            "the double takes merge patches",
        );
    }
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", &format!("body: {e}")),
    };
    inner.resource_version += 1;
    let rv = inner.resource_version.to_string();
    match inner.config_maps.get_mut(&(ns, name.clone())) {
        Some(c) => {
            merge(c, &patch);
            c["metadata"]["resourceVersion"] = json!(rv);
            axum::Json(c.clone()).into_response()
        }
        None => status(404, "NotFound", &format!("configmaps \"{name}\" not found")),
    }
}

async fn delete_config_map(
    State(d): State<ApiDouble>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("DELETE /api/v1/namespaces/{ns}/configmaps/{name}"));
    let Some(cm) = inner.config_maps.remove(&(ns.clone(), name.clone())) else {
        return status(404, "NotFound", &format!("configmaps \"{name}\" not found"));
    };
    // The garbage collector: dependents in the same namespace go with their owner.
    let uid = cm["metadata"]["uid"].clone();
    let owned: Vec<(String, String)> = inner
        .pods
        .iter()
        .filter(|((pns, _), p)| {
            *pns == ns
                && p["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in owned {
        inner.resource_version += 1;
        if let Some(p) = inner.pods.remove(&k) {
            d.record(&mut inner, "DELETED", p);
        }
    }
    axum::Json(cm).into_response()
}

async fn list_config_maps(
    State(d): State<ApiDouble>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = d.inner.lock().unwrap();
    inner
        .requests
        .push(format!("GET /api/v1/configmaps?{}", query_string(&q)));
    let selector = q.get("labelSelector");
    let items: Vec<Value> = inner
        .config_maps
        .values()
        .filter(|c| matches(c, selector))
        .cloned()
        .collect();
    axum::Json(json!({
        "kind": "ConfigMapList", "apiVersion": "v1",
        "metadata": {"resourceVersion": inner.resource_version.to_string()},
        "items": items,
    }))
    .into_response()
}
