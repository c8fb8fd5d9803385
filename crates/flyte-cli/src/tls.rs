//! TLS for the client (`admin.insecure: false`): one rustls configuration on ring, used for
//! the gRPC channel (through our own connector, so tonic needs no TLS feature of its own) and
//! for the plain HTTP calls (logs, schedules). Trust: the CA in `admin.caCertFilePath` if set,
//! else the system's roots; `admin.insecureSkipVerify` trusts any certificate (as flytekit).

use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig as RustlsConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{CliError, CliResult};

/// The TLS settings of the client, from the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `admin.caCertFilePath`: the CA (PEM) that signed the server's certificate.
    pub ca_cert_file: Option<std::path::PathBuf>,
    /// `admin.insecureSkipVerify`: accept any certificate.
    pub skip_verify: bool,
}

/// rustls client configurations: one offering `h2` (gRPC needs it), one `http/1.1`.
#[derive(Clone)]
pub struct Tls {
    pub grpc: Arc<RustlsConfig>,
    pub http: RustlsConfig,
}

impl Tls {
    pub fn new(settings: &TlsSettings) -> CliResult<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = RustlsConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| CliError::Config(format!("TLS: {e}")))?;
        let mut config = if settings.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else if let Some(path) = &settings.ca_cert_file {
            builder
                .with_root_certificates(ca_roots(path)?)
                .with_no_client_auth()
        } else {
            let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|e| {
                CliError::Config(format!(
                    "TLS: cannot read the system's trusted certificates ({e}); set \
                     admin.caCertFilePath to the CA that signed the server's certificate"
                ))
            })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        };
        let mut http = config.clone();
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            grpc: Arc::new(config),
            http,
        })
    }

    /// Connects to `host:port` and performs the handshake (the server name is the host).
    pub async fn connect(
        config: Arc<RustlsConfig>,
        endpoint: String,
    ) -> std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
        let host = host_of(&endpoint);
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{host} is not a host name for TLS: {e}"),
            )
        })?;
        let tcp = TcpStream::connect(&endpoint).await?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(config).connect(name, tcp).await?;
        Ok(TokioIo::new(tls))
    }
}

/// The host of `host:port` (`[::1]:80` → `::1`).
fn host_of(endpoint: &str) -> &str {
    let host = match endpoint.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => endpoint,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

fn ca_roots(path: &Path) -> CliResult<RootCertStore> {
    let bad =
        |what: String| CliError::Config(format!("admin.caCertFilePath {}: {what}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("cannot read it: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// `insecureSkipVerify`: any certificate is accepted; handshake signatures are still checked
/// (the connection is encrypted, just not authenticated).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_endpoints() {
        assert_eq!(host_of("localhost:30080"), "localhost");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = Tls::new(&TlsSettings {
            ca_cert_file: Some(path.clone()),
            skip_verify: false,
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("caCertFilePath"), "{err}");
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }
}
