//! The in-process test harness: the whole server on `127.0.0.1:0` with a temporary data dir.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = flyte_rs::testing::TestServer::start().await?;
//! let url = server.url("/healthcheck");
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::Path;

use crate::config::Config;
use crate::server::{RunningServer, ShutdownHandle};

/// A running server on a random local port; its data lives in a temp dir removed on drop.
/// Dropping it also asks the server to stop.
pub struct TestServer {
    server: Option<RunningServer>,
    shutdown: ShutdownHandle,
    addr: SocketAddr,
    config: Config,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// SQLite and local blobs in a fresh temp dir.
    pub async fn start() -> anyhow::Result<TestServer> {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestServer::start`], after `edit` has adjusted the config (e.g. to use PostgreSQL:
    /// `c.storage.metadata_url = Some(url)`).
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> anyhow::Result<TestServer> {
        let dir = tempfile::Builder::new()
            .prefix("flyte-rs-test-")
            .tempdir()?;
        let mut config = Config::for_test(dir.path());
        edit(&mut config);
        config.validate()?;
        let server = crate::start(config.clone()).await?;
        Ok(TestServer {
            addr: server.addr(),
            shutdown: server.shutdown_handle(),
            server: Some(server),
            config,
            dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The endpoint for a tonic client (`http://127.0.0.1:<port>`).
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// Graceful shutdown; returns when the server is down.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(server) => server.shutdown().await,
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
