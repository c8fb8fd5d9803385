//! Bad input answers a code a client can act on, never INTERNAL, and errors stay readable:
//! bytes that are not the request message (every unary RPC the server serves), protobuf
//! nested past the decoder's recursion limit, malformed JSON on the REST gateway, file names
//! the blob store cannot hold, and huge names quoted back in errors (issue 11 items 5-7).

mod admin_support;
mod gateway_support;

use admin_support::BytesCodec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use flyte_admin::service::dataproxy::MAX_SEGMENT_BYTES;
use flyteidl::admin::{ExecutionCreateRequest, WorkflowExecutionGetRequest};
use flyteidl::core::{
    Literal, LiteralCollection, LiteralMap, WorkflowExecutionIdentifier, literal,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use flyteidl::service::data_proxy_service_client::DataProxyServiceClient;
use flyteidl::service::{CreateUploadLocationRequest, CreateUploadLocationResponse};
use gateway_support::*;
use tonic::Code;

/// Every unary RPC of every service in the contract, with its request message's full name,
/// from the descriptor set (so RPCs added to flyteidl are covered without editing this test).
fn unary_rpcs() -> Vec<(String, String, String)> {
    let pool = flyte_admin::gateway::descriptor_pool();
    let mut rpcs = Vec::new();
    for service in pool.services() {
        for method in service.methods() {
            if method.is_client_streaming() || method.is_server_streaming() {
                continue;
            }
            rpcs.push((
                service.full_name().to_string(),
                method.name().to_string(),
                method.input().full_name().to_string(),
            ));
        }
    }
    rpcs
}

#[tokio::test]
async fn undecodable_bytes_are_invalid_argument_on_every_served_rpc() {
    let server = start().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    let mut served = std::collections::BTreeSet::new();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (service, method, input) in unary_rpcs() {
        grpc.ready().await.unwrap();
        let path = format!("/{service}/{method}").parse().unwrap();
        let request = tonic::Request::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        let status = match grpc.unary(request, path, BytesCodec).await {
            Ok(_) => {
                wrong.push(format!("{service}/{method}: answered OK"));
                continue;
            }
            Err(status) => status,
        };
        if status.code() == Code::Unimplemented && status.message().contains("is not served") {
            continue;
        }
        served.insert(service.clone());
        checked += 1;
        let named = format!("could not decode {input}");
        if status.code() != Code::InvalidArgument || !status.message().contains(&named) {
            wrong.push(format!(
                "{service}/{method}: {:?} {:?}",
                status.code(),
                status.message()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} RPCs:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The services the router registers were all reached (not answered UNIMPLEMENTED), each
    // with every one of its unary RPCs.
    let registered = [
        "flyteidl.service.AdminService",
        "flyteidl.service.DataProxyService",
        "flyteidl.service.SignalService",
        "datacatalog.DataCatalog",
        "flyteidl.cacheservice.CacheService",
    ];
    for service in registered {
        assert!(served.contains(service), "{service} not served: {served:?}");
    }
    let expected = unary_rpcs()
        .iter()
        .filter(|(service, _, _)| served.contains(service))
        .count();
    assert_eq!(checked, expected);
    assert!(checked > 70, "only {checked} RPCs checked");
}

/// A literal holding a collection holding a collection ... `depth` levels deep.
fn nested_literal(depth: usize) -> Literal {
    let mut lit = Literal::default();
    for _ in 0..depth {
        lit = Literal {
            value: Some(literal::Value::Collection(LiteralCollection {
                literals: vec![lit],
            })),
            ..Default::default()
        };
    }
    lit
}

#[tokio::test]
async fn protobuf_nested_past_the_recursion_limit_is_invalid_argument() {
    let server = start().await;
    let mut admin = AdminServiceClient::new(server.channel().await);
    let request = ExecutionCreateRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        name: "deep".into(),
        inputs: Some(LiteralMap {
            literals: [("x".to_string(), nested_literal(200))].into(),
        }),
        ..Default::default()
    };
    let status = admin.create_execution(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("could not decode flyteidl.admin.ExecutionCreateRequest")
            && status.message().contains("recursion limit"),
        "{status:?}"
    );
}

#[tokio::test]
async fn malformed_json_on_the_gateway_is_400_naming_the_message() {
    let server = start().await;
    for body in ["{not json", "[1, 2]", r#"{"id": 7}"#] {
        let resp = server
            .http
            .post(server.url("/api/v1/tasks"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json) = split(resp).await;
        assert_eq!(status, 400, "{body}: {json}");
        assert_eq!(json["code"], Code::InvalidArgument as i32, "{body}: {json}");
        let message = json["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("flyteidl.admin.TaskCreateRequest"),
            "{body}: {message}"
        );
    }
}

fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

async fn upload_location(
    server: &TestServer,
    data: &[u8],
    filename: &str,
) -> Result<CreateUploadLocationResponse, tonic::Status> {
    let mut dp = DataProxyServiceClient::new(server.channel().await);
    dp.create_upload_location(CreateUploadLocationRequest {
        project: PROJECT.into(),
        domain: DOMAIN.into(),
        filename: filename.into(),
        content_md5: md5(data).to_vec(),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn upload_location_refuses_file_names_the_store_cannot_hold() {
    let server = start().await;
    let data = b"bundle";
    let too_long = "y".repeat(300);
    let just_too_long = "y".repeat(MAX_SEGMENT_BYTES + 1);
    for filename in [
        too_long.as_str(),
        just_too_long.as_str(),
        "a/../b",
        "dir//file",
        "nul\0byte",
        &format!("{}/file", "d".repeat(MAX_SEGMENT_BYTES + 1)),
        &vec!["d".repeat(200); 8].join("/"),
    ] {
        let status = upload_location(&server, data, filename).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("filename"), "{status:?}");
        assert!(status.message().len() < 1024, "{status:?}");
    }
}

#[tokio::test]
async fn the_longest_accepted_file_name_uploads_end_to_end() {
    let server = start().await;
    let data: &'static [u8] = b"a bundle with a long name";
    let filename = "y".repeat(MAX_SEGMENT_BYTES);
    let resp = upload_location(&server, data, &filename).await.unwrap();
    assert!(resp.native_url.ends_with(&filename), "{}", resp.native_url);
    let put = server
        .http
        .put(&resp.signed_url)
        .header("Content-MD5", BASE64.encode(md5(data)))
        .body(data)
        .send()
        .await
        .unwrap();
    let status = put.status().as_u16();
    assert_eq!(status, 201, "{}", put.text().await.unwrap());
    assert_eq!(std::fs::read(&resp.native_url).unwrap(), data);
}

#[tokio::test]
async fn a_huge_name_is_quoted_shortened_in_not_found() {
    let server = start().await;
    let mut admin = AdminServiceClient::new(server.channel().await);
    let status = admin
        .get_execution(WorkflowExecutionGetRequest {
            id: Some(WorkflowExecutionIdentifier {
                project: PROJECT.into(),
                domain: DOMAIN.into(),
                name: "x".repeat(10_000),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let message = status.message();
    assert!(message.len() < 1024, "{} bytes: {message}", message.len());
    assert!(message.contains("xxxxxxxx"), "{message}");
    assert!(message.contains("shortened"), "{message}");
}

#[tokio::test]
async fn a_signed_percent_escape_in_the_path_is_400() {
    let server = start().await;
    // `u8::from_str_radix` reads "+1" as 1: these decoded to control characters and the
    // request went on with them. An escape is '%' and exactly two hex digits.
    for bad in ["%+1", "%+f", "%-1", "%1", "%zz", "%", "%ff"] {
        let path = format!("/api/v1/tasks/{PROJECT}/{DOMAIN}/a{bad}x/v1");
        let resp = server.http.get(server.url(&path)).send().await.unwrap();
        let (status, json) = split(resp).await;
        assert_eq!(status, 400, "{path}: {json}");
        assert_eq!(json["code"], Code::InvalidArgument as i32, "{path}: {json}");
        let message = json["message"].as_str().unwrap_or_default();
        assert!(message.contains("percent"), "{path}: {message}");
    }
    // Well-formed escapes still decode (the task does not exist: NOT_FOUND, naming it).
    let path = format!("/api/v1/tasks/{PROJECT}/{DOMAIN}/a%2Bb%41c/v1");
    let resp = server.http.get(server.url(&path)).send().await.unwrap();
    let (status, json) = split(resp).await;
    assert_eq!(status, 404, "{path}: {json}");
    let message = json["message"].as_str().unwrap_or_default();
    assert!(message.contains("a+bAc"), "{path}: {message}");
}

/// Issue 11 item 7: inputs echoed in errors go through `quoted()` (shortened past 128 bytes
/// and marked), not only the 512-byte safety net of `AdminError::answer`.
#[tokio::test]
async fn inputs_echoed_in_errors_are_quoted_and_shortened() {
    let server = start().await;
    let long = |c: &str, n: usize| c.repeat(n);
    let assert_quoted = |what: &str, message: &str, input: &str| {
        assert!(!message.contains(input), "{what} echoed whole: {message}");
        let mark = format!("({} bytes, shortened)", input.len());
        assert!(message.contains(&mark), "{what}: {message}");
    };

    // A label key that is not a label.
    let key = long("k", 300);
    let body = serde_json::json!({
        "project": { "id": "labelled", "name": "labelled", "labels": { "values": { &key: "v" } } }
    });
    let (status, json) = server
        .send_json(reqwest::Method::POST, "/api/v1/projects", &body)
        .await;
    assert_eq!(status, 400, "{json}");
    assert_quoted("label key", json["message"].as_str().unwrap(), &key);

    // The version conflict names the task.
    let name = long("n", 250);
    let task = |image: &str| {
        let id = serde_json::json!({
            "resource_type": "TASK", "project": PROJECT, "domain": DOMAIN, "name": &name, "version": "v1"
        });
        serde_json::json!({
            "id": id,
            "spec": { "template": {
                "id": id,
                "type": "python-task",
                "metadata": { "runtime": { "type": "FLYTE_SDK", "version": "1.16.31", "flavor": "python" } },
                "interface": { "inputs": {}, "outputs": {} },
                "container": { "image": image, "args": ["pyflyte-execute"] }
            } }
        })
    };
    let (status, json) = server
        .send_json(reqwest::Method::POST, "/api/v1/tasks", &task("img:1"))
        .await;
    assert_eq!(status, 200, "{json}");
    let (status, json) = server
        .send_json(reqwest::Method::POST, "/api/v1/tasks", &task("img:2"))
        .await;
    assert_eq!(status, 400, "{json}");
    let message = json["message"].as_str().unwrap();
    assert!(message.contains("different structure"), "{message}");
    assert!(
        !message.contains(&name),
        "task name echoed whole: {message}"
    );
    assert!(message.contains("shortened"), "{message}");

    // A node id nobody ran.
    let node = long("x", 300);
    let mut admin = AdminServiceClient::new(server.channel().await);
    let status = admin
        .get_node_execution(flyteidl::admin::NodeExecutionGetRequest {
            id: Some(flyteidl::core::NodeExecutionIdentifier {
                node_id: node.clone(),
                execution_id: Some(WorkflowExecutionIdentifier {
                    project: PROJECT.into(),
                    domain: DOMAIN.into(),
                    name: "nobody".into(),
                    ..Default::default()
                }),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(!status.message().contains(&node), "{}", status.message());
    assert!(
        status.message().contains("shortened"),
        "{}",
        status.message()
    );
}
