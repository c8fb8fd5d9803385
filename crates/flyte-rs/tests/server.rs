//! The whole server in-process (TestServer): health, metrics, gRPC and REST on one port,
//! graceful shutdown.

use std::time::Duration;

use flyte_rs::testing::TestServer;
use flyteidl::admin::{GetVersionRequest, ProjectListRequest};
use flyteidl::service::admin_service_client::AdminServiceClient;

async fn grpc(server: &TestServer) -> AdminServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("gRPC connects");
    AdminServiceClient::new(channel)
}

#[tokio::test]
async fn healthcheck_and_readyz_answer_200() {
    let server = TestServer::start().await.unwrap();
    let r = reqwest::get(server.url("/healthcheck")).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let server = TestServer::start().await.unwrap();
    for _ in 0..3 {
        reqwest::get(server.url("/healthcheck")).await.unwrap();
    }
    let r = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = r.text().await.unwrap();
    assert!(body.contains("flyte_rs_requests_total"), "{body}");
    assert!(body.contains("flyte_rs_build_info"), "{body}");
    assert!(body.contains("flyte_rs_startup_seconds"), "{body}");
    assert!(body.contains("route=\"/healthcheck\""), "{body}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn several_servers_in_one_process_each_serve_metrics() {
    // The Prometheus recorder is process-global; a second server must not fail on it.
    let a = TestServer::start().await.unwrap();
    let b = TestServer::start().await.unwrap();
    assert_ne!(a.addr(), b.addr());
    for s in [&a, &b] {
        let r = reqwest::get(s.url("/metrics")).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn grpc_and_rest_share_the_port() {
    let server = TestServer::start().await.unwrap();
    let mut client = grpc(&server).await;

    let version = client
        .get_version(GetVersionRequest {})
        .await
        .expect("GetVersion")
        .into_inner();
    assert!(version.control_plane_version.is_some(), "{version:?}");

    let projects = client
        .list_projects(ProjectListRequest {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("ListProjects")
        .into_inner();
    assert!(
        projects.projects.iter().any(|p| p.id == "flytesnacks"),
        "{projects:?}"
    );

    // HTTP/1.1 on the same port: the REST gateway.
    let r = reqwest::get(server.url("/api/v1/projects")).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let ids: Vec<&str> = body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(ids.contains(&"flytesnacks"), "{body}");

    // gRPC calls are counted by method.
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("flyte_admin_api_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("method=\"ListProjects\""), "{metrics}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_are_404_not_500() {
    let server = TestServer::start().await.unwrap();
    let r = reqwest::get(server.url("/no/such/path")).await.unwrap();
    assert_eq!(r.status(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_is_graceful_and_prompt_with_idle_connections() {
    let server = TestServer::start().await.unwrap();
    let addr = server.addr();
    // An idle HTTP/2 (gRPC) connection and an idle HTTP/1.1 keep-alive connection.
    let mut client = grpc(&server).await;
    client.get_version(GetVersionRequest {}).await.unwrap();
    let http = reqwest::Client::new();
    http.get(server.url("/healthcheck")).send().await.unwrap();

    tokio::time::timeout(Duration::from_secs(8), server.shutdown())
        .await
        .expect("shutdown finishes")
        .expect("shutdown is clean");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is closed after shutdown"
    );
}

#[tokio::test]
async fn data_stays_in_the_temp_dir() {
    let server = TestServer::start().await.unwrap();
    let dir = server.data_dir().to_path_buf();
    assert!(
        server
            .config()
            .storage
            .metadata_url
            .as_deref()
            .unwrap()
            .contains(dir.to_str().unwrap())
    );
    assert!(dir.join("blobs").is_dir());
    server.shutdown().await.unwrap();
}

/// The same server on PostgreSQL, when scripts/test.sh provides one
/// (`FLYTERS_TEST_POSTGRES_URL`); unset, it fails rather than pass without running.
#[tokio::test]
async fn serves_with_postgres_metadata() {
    let url = std::env::var("FLYTERS_TEST_POSTGRES_URL").expect(
        "FLYTERS_TEST_POSTGRES_URL is not set: run scripts/postgres.sh (or scripts/test.sh)",
    );
    let server = TestServer::start_with(|c| c.storage.metadata_url = Some(url))
        .await
        .expect("starts on PostgreSQL");
    let r = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let mut client = grpc(&server).await;
    let projects = client
        .list_projects(ProjectListRequest {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("ListProjects")
        .into_inner();
    assert!(
        projects.projects.iter().any(|p| p.id == "flytesnacks"),
        "{projects:?}"
    );
    server.shutdown().await.unwrap();
}
