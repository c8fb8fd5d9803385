//! TLS on the one port (`server.tls`): gRPC and HTTPS on one listener, the certificate
//! reloaded from its files without a restart (docs/tls.md).
//!
//! Handshakes run in their own tasks, so a slow or silent client cannot hold up the others;
//! finished ones are handed to axum's server through [`TlsListener`], which keeps axum's
//! HTTP/2-preface detection (gRPC) and graceful shutdown as they are in cleartext. ALPN
//! offers `h2` (gRPC clients require it) and `http/1.1`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;

/// A client that connects and then says nothing gets its connection closed after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server side of TLS: the rustls configuration and the certificate it serves.
pub struct Tls {
    config: Arc<ServerConfig>,
    certs: Arc<ReloadingCert>,
    reload_every: Option<Duration>,
}

impl Tls {
    /// Reads the certificate and key named in `server.tls`; an error names the file and
    /// what is wrong with it.
    pub fn load(config: &TlsConfig) -> anyhow::Result<Self> {
        let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
            anyhow::bail!("server.tls needs both cert_file and key_file");
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = Arc::new(ReloadingCert::load(
            cert_file.clone(),
            key_file.clone(),
            provider.clone(),
        )?);
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("the TLS provider supports no protocol version")?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(server),
            certs,
            reload_every: (config.reload_secs > 0).then(|| Duration::from_secs(config.reload_secs)),
        })
    }

    /// Accepts TCP connections on `listener` and performs their handshakes in the
    /// background; the returned listener yields the finished ones. Everything stops when it
    /// is dropped (axum drops it when the server shuts down).
    pub fn listen(self, listener: TcpListener) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        // A few handshaken connections may wait for axum to pick them up; more than that
        // holds up accepting.
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(reload_loop(
            self.certs.clone(),
            self.reload_every,
            tx.clone(),
        ));
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(self.config), tx));
        Ok(TlsListener { rx, local })
    }
}

/// What axum's server accepts from: connections whose TLS handshake is done.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop ended (it only does when this listener is gone): nothing more
            // will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

type Accepted = mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>;

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, tx: Accepted) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // No Nagle delay: small unary gRPC responses would otherwise wait for delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => {
                    // Clients that do not trust the certificate, or speak cleartext: theirs
                    // to fix, so not above DEBUG; the counter shows a trend.
                    metrics::counter!("flyte_rs_tls_handshake_failures_total").increment(1);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    metrics::counter!("flyte_rs_tls_handshake_failures_total").increment(1);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        });
    }
}

/// Reloads the certificate every `every` and on SIGHUP, until the server stops.
async fn reload_loop(certs: Arc<ReloadingCert>, every: Option<Duration>, stop: Accepted) {
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP; the certificate reloads only on a timer");
            None
        }
    };
    loop {
        let tick = async {
            match every {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        tokio::select! {
            () = stop.closed() => return,
            () = tick => {}
            () = hangup => tracing::info!("SIGHUP: reloading the TLS certificate"),
        }
        certs.reload_if_changed();
    }
}

/// The certificate served, replaced when its files change.
struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

#[derive(Clone)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// The files' contents it was made from: a reload compares them, so the files may be
    /// replaced in any way (renamed over, written in place, a Kubernetes secret's symlinks).
    source: (Vec<u8>, Vec<u8>),
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    fn load(
        cert_file: PathBuf,
        key_file: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> anyhow::Result<Self> {
        let source = read_pair(&cert_file, &key_file)?;
        let key = certified_key(&source, &cert_file, &key_file, &provider)?;
        Ok(Self {
            cert_file,
            key_file,
            provider,
            current: RwLock::new(Loaded { key, source }),
        })
    }

    /// Serves the files' new contents if they changed and are a valid pair; otherwise keeps
    /// the certificate it has (a half-written pair must not take the port down).
    fn reload_if_changed(&self) {
        let source = match read_pair(&self.cert_file, &self.key_file) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the TLS files; serving the certificate already loaded");
                return;
            }
        };
        if self.current().source == source {
            return;
        }
        match certified_key(&source, &self.cert_file, &self.key_file, &self.provider) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Loaded { key, source };
                metrics::counter!("flyte_rs_tls_reloads_total").increment(1);
                tracing::info!(cert_file = %self.cert_file.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "the TLS files changed but are not a valid pair (yet); serving the certificate already loaded"
            ),
        }
    }

    fn current(&self) -> Loaded {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key)
    }
}

fn read_pair(cert_file: &Path, key_file: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let cert = std::fs::read(cert_file)
        .with_context(|| format!("server.tls.cert_file {}", cert_file.display()))?;
    let key = std::fs::read(key_file)
        .with_context(|| format!("server.tls.key_file {}", key_file.display()))?;
    Ok((cert, key))
}

fn certified_key(
    (cert, key): &(Vec<u8>, Vec<u8>),
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "server.tls.cert_file {}: not a PEM certificate chain",
                cert_file.display()
            )
        })?;
    anyhow::ensure!(
        !chain.is_empty(),
        "server.tls.cert_file {}: no CERTIFICATE in it",
        cert_file.display()
    );
    let key = PrivateKeyDer::from_pem_slice(key).with_context(|| {
        format!(
            "server.tls.key_file {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it",
            key_file.display()
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "server.tls.key_file {} does not fit server.tls.cert_file {}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_pem_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let config = TlsConfig {
            cert_file: Some(cert),
            key_file: Some(key),
            ..TlsConfig::default()
        };
        let err = Tls::load(&config).err().expect("garbage is refused");
        let msg = format!("{err:#}");
        assert!(msg.contains("tls.crt: no CERTIFICATE"), "{msg}");
    }
}
