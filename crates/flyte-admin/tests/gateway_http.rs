//! The REST/JSON gateway over a real server: JSON shapes as Flyte's grpc-gateway writes them,
//! bodies as grpc-gateway clients send them, errors as `{"code", "message", "details"}`.

mod gateway_support;

use gateway_support::*;
use reqwest::Method;
use serde_json::{Value, json};

fn task_body(name: &str, version: &str, image: &str) -> Value {
    let id = json!({
        "resource_type": "TASK", "project": PROJECT, "domain": DOMAIN, "name": name, "version": version
    });
    let int = json!({ "type": { "simple": "INTEGER" } });
    json!({
        "id": id,
        "spec": {
            "template": {
                "id": id,
                "type": "python-task",
                "metadata": { "runtime": { "type": "FLYTE_SDK", "version": "1.16.31", "flavor": "python" }, "retries": {} },
                "interface": {
                    "inputs": { "variables": { "a": int } },
                    "outputs": { "variables": { "b": int } }
                },
                "container": { "image": image, "args": ["pyflyte-execute", "--inputs", "{{.input}}"] }
            }
        }
    })
}

#[tokio::test]
async fn list_projects_has_flytesnacks_with_proto_field_names() {
    let server = start().await;
    let (status, body) = server.get_json("/api/v1/projects").await;
    assert_eq!(status, 200, "{body}");
    let projects = body["projects"].as_array().expect("projects array");
    let snacks = projects
        .iter()
        .find(|p| p["id"] == PROJECT)
        .expect("flytesnacks listed");
    assert!(
        snacks["domains"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["id"] == DOMAIN)),
        "{snacks}"
    );
    // EmitUnpopulated: empty fields are present; enums are names.
    assert!(body.get("token").is_some(), "{body}");
    assert_eq!(snacks["state"], "ACTIVE", "{snacks}");
}

#[tokio::test]
async fn default_marshaler_uses_lower_camel_case() {
    let server = start().await;
    // No Accept/Content-Type: grpc-gateway's default marshaler (lowerCamelCase).
    let resp = server
        .http
        .get(server.url("/api/v1/version"))
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("controlPlaneVersion").is_some(), "{body}");
    let (_, body) = server.get_json("/api/v1/version").await;
    assert!(body.get("control_plane_version").is_some(), "{body}");
}

#[tokio::test]
async fn create_get_and_list_a_task_over_rest() {
    let server = start().await;
    let body = task_body("rest.mod.t", "v1", "img:1");
    let (status, created) = server.send_json(Method::POST, "/api/v1/tasks", &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created, json!({}));

    // Identical again: ALREADY_EXISTS → 409 with grpc-gateway's error body.
    let (status, err) = server.send_json(Method::POST, "/api/v1/tasks", &body).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["code"], 6, "{err}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{err}"
    );
    assert_eq!(err["details"], json!([]), "{err}");

    // Same id, different content: INVALID_ARGUMENT → 400.
    let (status, err) = server
        .send_json(
            Method::POST,
            "/api/v1/tasks",
            &task_body("rest.mod.t", "v1", "img:2"),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], 3, "{err}");

    let (status, task) = server
        // flyteadmin's GetTask fills in the resource type a REST path implies; until this
        // AdminService does, name it (see `get_by_url_implies_the_resource_type`).
        .get_json("/api/v1/tasks/flytesnacks/development/rest.mod.t/v1?id.resource_type=TASK")
        .await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["id"]["name"], "rest.mod.t", "{task}");
    assert_eq!(task["id"]["resource_type"], "TASK", "{task}");
    let template = &task["closure"]["compiled_task"]["template"];
    assert_eq!(template["container"]["image"], "img:1", "{task}");
    assert_eq!(
        template["interface"]["inputs"]["variables"]["a"]["type"]["simple"], "INTEGER",
        "{task}"
    );

    // Query parameters: limit, nested sort_by.*, enum by name.
    let (status, list) = server
        .get_json("/api/v1/tasks/flytesnacks/development/rest.mod.t?limit=10&sort_by.key=created_at&sort_by.direction=DESCENDING")
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["tasks"].as_array().map(Vec::len), Some(1), "{list}");

    let (status, ids) = server
        .get_json("/api/v1/task_ids/flytesnacks/development?limit=5")
        .await;
    assert_eq!(status, 200, "{ids}");
    assert_eq!(ids["entities"][0]["name"], "rest.mod.t", "{ids}");

    // Enums by number work too.
    let (status, list) = server
        .get_json(
            "/api/v1/tasks/flytesnacks/development?limit=10&sort_by.key=name&sort_by.direction=1",
        )
        .await;
    assert_eq!(status, 200, "{list}");
}

/// flyteadmin's AdminService sets `id.resource_type` when the REST path leaves it
/// UNSPECIFIED (GetTask → TASK, GetWorkflow → WORKFLOW, Get/UpdateLaunchPlan → LAUNCH_PLAN);
/// this is service behaviour, not gateway behaviour.
#[tokio::test]
async fn get_by_url_implies_the_resource_type() {
    let server = start().await;
    let (status, created) = server
        .send_json(
            Method::POST,
            "/api/v1/tasks",
            &task_body("implied.t", "v1", "img:1"),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let (status, task) = server
        .get_json("/api/v1/tasks/flytesnacks/development/implied.t/v1")
        .await;
    assert_eq!(status, 200, "{task}");
}

#[tokio::test]
async fn camel_case_bodies_are_accepted_too() {
    let server = start().await;
    let body = json!({
        "id": { "resourceType": "TASK", "project": PROJECT, "domain": DOMAIN, "name": "camel.t", "version": "v1" },
        "spec": { "template": {
            "id": { "resourceType": 1, "project": PROJECT, "domain": DOMAIN, "name": "camel.t", "version": "v1" },
            "type": "python-task",
            "metadata": { "runtime": { "type": "FLYTE_SDK", "version": "1.16.31", "flavor": "python" } },
            "interface": { "inputs": { "variables": {} }, "outputs": { "variables": {} } },
            "container": { "image": "img:1", "args": ["pyflyte-execute"] }
        } }
    });
    // No content type: the default marshaler, which also ignores unknown fields.
    let mut with_unknown = body.clone();
    with_unknown["someFutureField"] = json!(1);
    let resp = server
        .http
        .post(server.url("/api/v1/tasks"))
        .body(with_unknown.to_string())
        .send()
        .await
        .unwrap();
    let (status, out) = split(resp).await;
    assert_eq!(status, 200, "{out}");
}

#[tokio::test]
async fn errors_are_json_with_grpc_codes() {
    let server = start().await;
    let (status, err) = server
        .get_json("/api/v1/tasks/flytesnacks/development/missing.t/v9?id.resource_type=TASK")
        .await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["code"], 5, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("missing.t"),
        "{err}"
    );

    let (status, err) = server.get_json("/api/v1/no/such/route").await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["code"], 5, "{err}");

    let (status, err) = server
        .get_json("/api/v1/tasks/flytesnacks/development?limit=abc")
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], 3, "{err}");
    assert!(err["message"].as_str().unwrap().contains("limit"), "{err}");

    let (status, err) = server
        .get_json("/api/v1/tasks/flytesnacks/development?sort_by.direction=SIDEWAYS")
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("ASCENDING"),
        "{err}"
    );

    // Malformed JSON, and unknown fields with application/json (flyteadmin's marshaler refuses them).
    let resp = server
        .http
        .post(server.url("/api/v1/tasks"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, err) = split(resp).await;
    assert_eq!((status, err["code"].clone()), (400, json!(3)), "{err}");
    let (status, err) = server
        .send_json(Method::POST, "/api/v1/tasks", &json!({ "bogus": 1 }))
        .await;
    assert_eq!((status, err["code"].clone()), (400, json!(3)), "{err}");

    // Known path, other method.
    let resp = server
        .http
        .delete(server.url("/api/v1/projects"))
        .send()
        .await
        .unwrap();
    let (status, err) = split(resp).await;
    assert_eq!(status, 405, "{err}");
    assert_eq!(err["code"], 12, "{err}");

    // A service this build does not serve yet answers UNIMPLEMENTED, not UNKNOWN.
    let (status, err) = server.get_json("/api/v1/agents").await;
    assert_eq!(status, 501, "{err}");
    assert_eq!(err["code"], 12, "{err}");

    // SignalService is served: a list without a limit is refused as such.
    let (status, err) = server
        .get_json("/api/v1/signals/flytesnacks/development/abc")
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], 3, "{err}");
}

#[tokio::test]
async fn projects_register_update_and_get_domains() {
    let server = start().await;
    let (status, out) = server
        .send_json(
            Method::POST,
            "/api/v1/projects",
            &json!({ "project": { "id": "restproj", "name": "REST project" } }),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = server
        .send_json(
            Method::PUT,
            "/api/v1/projects/restproj",
            &json!({ "name": "Renamed", "description": "via PUT", "state": "ACTIVE" }),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let (_, list) = server.get_json("/api/v1/projects").await;
    let p = list["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "restproj")
        .cloned()
        .expect("listed");
    assert_eq!(p["name"], "Renamed", "{p}");
    assert_eq!(p["description"], "via PUT", "{p}");

    let (status, domains) = server.get_json("/api/v1/domains").await;
    assert_eq!(status, 200, "{domains}");
    let ids: Vec<&str> = domains["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, ["development", "staging", "production"]);
}

#[tokio::test]
async fn binary_protobuf_bodies() {
    use prost::Message;
    let server = start().await;
    let resp = server
        .http
        .get(server.url("/api/v1/projects"))
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let projects = flyteidl::admin::Projects::decode(resp.bytes().await.unwrap()).unwrap();
    assert!(projects.projects.iter().any(|p| p.id == PROJECT));
}

#[tokio::test]
async fn dataproxy_through_the_gateway() {
    use base64::Engine;
    let server = start().await;
    let md5 = md5_bytes(b"bundle");
    let (status, out) = server
        .send_json(
            Method::POST,
            "/api/v1/dataproxy/artifact_urn",
            &json!({
                "project": PROJECT, "domain": DOMAIN, "filename": "fast1.tar.gz",
                "content_md5": base64::engine::general_purpose::STANDARD.encode(md5),
                "add_content_md5_metadata": true
            }),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert!(
        out["signed_url"]
            .as_str()
            .unwrap()
            .starts_with(&server.url("/api/v1/dataproxy/upload/")),
        "{out}"
    );
    assert!(
        out["native_url"]
            .as_str()
            .unwrap()
            .ends_with("/fast1.tar.gz"),
        "{out}"
    );
}

fn md5_bytes(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}
