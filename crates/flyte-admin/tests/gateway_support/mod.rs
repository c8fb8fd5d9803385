//! Shared by the gateway_* and dataproxy_* integration tests: the whole admin router
//! (`flyte_admin::router::router`) over SQLite and a file blob store, served by
//! `axum::serve` on 127.0.0.1:0 exactly as the binary serves it (gRPC and HTTP/1.1 on one port).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use flyte_admin::{AdminConfig, AdminState};
use flyte_blob::BlobStore;
use tonic::transport::Channel;

pub const PROJECT: &str = "flytesnacks";
pub const DOMAIN: &str = "development";
pub const SIGNING_KEY: &[u8] = b"test-signing-key";

pub struct TestServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub state: AdminState,
    /// The canonical directory of the blob store.
    pub blob_root: PathBuf,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(edit: impl FnOnce(&mut AdminConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store = flyte_store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let blob = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
    let blob_root = std::fs::canonicalize(dir.path()).unwrap().join("blobs");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let mut config = AdminConfig {
        public_url: base.clone(),
        signing_key: SIGNING_KEY.to_vec(),
        ..Default::default()
    };
    edit(&mut config);
    let state = AdminState {
        store,
        blob,
        config: Arc::new(config),
        launcher: None,
    };
    let app = flyte_admin::router::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestServer {
        addr,
        base,
        state,
        blob_root,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl TestServer {
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.base.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with `Accept: application/json` (proto field names, as flyteadmin answers it).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .get(self.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        split(resp).await
    }

    /// A request with a JSON body and `Content-Type: application/json`.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        split(resp).await
    }
}

pub async fn split(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, json)
}
