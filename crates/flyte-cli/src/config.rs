//! Client configuration, read as flytekit and flytectl read it: `--config FILE`, else
//! `$FLYTECTL_CONFIG`, else `~/.flyte/config.yaml`; keys `admin.endpoint` (a `dns:///`
//! prefix is dropped), `admin.insecure` and `console.endpoint`; `FLYTE_PLATFORM_URL` and
//! `FLYTE_PLATFORM_INSECURE` win over the file, as in flytekit. With no file at all the
//! client talks to `flyte-rs start`'s default address, 127.0.0.1:30080, in plaintext.
//! `insecure: false` means TLS, trusting `admin.caCertFilePath` (flytekit's
//! `ca_cert_file_path` too) or the system's roots; `admin.insecureSkipVerify` trusts any.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{CliError, CliResult};
use crate::tls::TlsSettings;

/// Where `flyte-rs start` listens by default.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:30080";

/// Where the configuration may come from; filled from flags and the environment by clap.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// `--config`.
    pub explicit: Option<PathBuf>,
    /// `$FLYTECTL_CONFIG`.
    pub flytectl_config: Option<PathBuf>,
    /// The home directory (for `~/.flyte/config.yaml`).
    pub home: Option<PathBuf>,
    /// `$FLYTE_PLATFORM_URL`.
    pub platform_url: Option<String>,
    /// `$FLYTE_PLATFORM_INSECURE`.
    pub platform_insecure: Option<String>,
}

/// The effective client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `host:port` of the admin (gRPC and HTTP on one port).
    pub endpoint: String,
    pub insecure: bool,
    /// How to trust the server when `insecure` is false.
    pub tls: TlsSettings,
    /// Base URL for console links (`console.endpoint`, else `http://<endpoint>`).
    pub console: String,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// `admin.authType: ClientSecret`: the machine client the CLI gets a token for (other
    /// auth types send no token).
    pub credentials: Option<ClientCredentials>,
}

/// flytekit's client-credentials settings: `admin.clientId`, `admin.clientSecretLocation`
/// (a file holding the secret), `admin.scopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret_file: PathBuf,
    pub scopes: Vec<String>,
}

impl ClientConfig {
    /// `http://host:port` (`https://` with TLS): the gRPC channel's address and the base of
    /// plain HTTP calls.
    pub fn http_base(&self) -> String {
        format!("{}://{}", self.scheme(), self.endpoint)
    }

    fn scheme(&self) -> &'static str {
        if self.insecure { "http" } else { "https" }
    }

    /// The console page of an execution, as flytekit prints it.
    pub fn execution_url(&self, project: &str, domain: &str, name: &str) -> String {
        format!(
            "{}/console/projects/{project}/domains/{domain}/executions/{name}",
            self.console.trim_end_matches('/')
        )
    }
}

#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    admin: AdminSection,
    #[serde(default)]
    console: ConsoleSection,
}

#[derive(Debug, Default, Deserialize)]
struct AdminSection {
    endpoint: Option<String>,
    insecure: Option<bool>,
    #[serde(rename = "caCertFilePath", alias = "ca_cert_file_path")]
    ca_cert_file_path: Option<PathBuf>,
    #[serde(rename = "insecureSkipVerify", alias = "insecure_skip_verify")]
    insecure_skip_verify: Option<bool>,
    #[serde(rename = "authType")]
    auth_type: Option<String>,
    #[serde(rename = "clientId")]
    client_id: Option<String>,
    #[serde(rename = "clientSecretLocation")]
    client_secret_location: Option<PathBuf>,
    scopes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct ConsoleSection {
    endpoint: Option<String>,
}

/// Loads the configuration. A file that was named (flag or `$FLYTECTL_CONFIG`) must exist;
/// `~/.flyte/config.yaml` is used only if it does.
pub fn load(sources: &ConfigSources) -> CliResult<ClientConfig> {
    let file = match (&sources.explicit, &sources.flytectl_config) {
        (Some(path), _) => Some(required(path, "--config")?),
        (None, Some(path)) => Some(required(path, "FLYTECTL_CONFIG")?),
        (None, None) => sources
            .home
            .as_ref()
            .map(|home| home.join(".flyte").join("config.yaml"))
            .filter(|path| path.is_file()),
    };
    let parsed = match &file {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    let endpoint_text = sources
        .platform_url
        .clone()
        .filter(|v| !v.is_empty())
        .or(parsed.admin.endpoint);
    let insecure = match sources.platform_insecure.as_deref() {
        Some(v) if !v.is_empty() => parse_bool(v).ok_or_else(|| {
            CliError::Config(format!(
                "FLYTE_PLATFORM_INSECURE={v:?} is not a boolean (true or false)"
            ))
        })?,
        // flytekit's default is TLS; with nothing configured we aim at a local flyte-rs.
        _ => parsed
            .admin
            .insecure
            .unwrap_or(file.is_none() && endpoint_text.is_none()),
    };
    let endpoint = match endpoint_text {
        Some(text) => normalize_endpoint(&text)?,
        None => DEFAULT_ENDPOINT.to_string(),
    };
    let console = parsed
        .console
        .endpoint
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("{}://{endpoint}", if insecure { "http" } else { "https" }));
    let tls = TlsSettings {
        ca_cert_file: parsed
            .admin
            .ca_cert_file_path
            .filter(|p| !p.as_os_str().is_empty()),
        skip_verify: parsed.admin.insecure_skip_verify.unwrap_or(false),
    };
    let credentials = match parsed.admin.auth_type.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("ClientSecret") => {
            let shown = || {
                file.as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            };
            let client_id = parsed
                .admin
                .client_id
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    CliError::Config(format!(
                        "{}: admin.authType ClientSecret needs admin.clientId",
                        shown()
                    ))
                })?;
            let secret_file = parsed.admin.client_secret_location.ok_or_else(|| {
                CliError::Config(format!(
                    "{}: admin.authType ClientSecret needs admin.clientSecretLocation (a file \
                     holding the client's secret)",
                    shown()
                ))
            })?;
            Some(ClientCredentials {
                client_id,
                secret_file,
                scopes: parsed.admin.scopes.unwrap_or_else(|| vec!["all".into()]),
            })
        }
        _ => None,
    };
    Ok(ClientConfig {
        endpoint,
        insecure,
        tls,
        console,
        file,
        credentials,
    })
}

fn required(path: &Path, named_by: &str) -> CliResult<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(CliError::Config(format!(
            "{} (named by {named_by}) does not exist or is not a file",
            path.display()
        )))
    }
}

fn read_file(path: &Path) -> CliResult<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Config(format!("cannot read {}: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_str(&text).map_err(|e| {
        CliError::Config(format!(
            "{} is not a valid config file: {e}",
            path.display()
        ))
    })
}

/// `dns:///host:port`, `host:port`, `http://host:port/` → `host:port`.
fn normalize_endpoint(text: &str) -> CliResult<String> {
    let mut rest = text.trim();
    for prefix in ["dns:///", "dns://", "http://", "https://", "grpc://"] {
        if let Some(stripped) = rest.strip_prefix(prefix) {
            rest = stripped;
            break;
        }
    }
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(CliError::Config(format!(
            "admin.endpoint {text:?} is not an address like dns:///127.0.0.1:30080"
        )));
    }
    Ok(rest.to_string())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_flytekit_keys_and_strips_dns_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "c.yaml",
            "admin:\n  endpoint: dns:///127.0.0.1:4321\n  insecure: true\nconsole:\n  endpoint: http://ui:1\n",
        );
        let config = load(&ConfigSources {
            explicit: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.endpoint, "127.0.0.1:4321");
        assert_eq!(config.console, "http://ui:1");
        assert_eq!(config.file, Some(path));
        assert_eq!(
            config.execution_url("p", "d", "x"),
            "http://ui:1/console/projects/p/domains/d/executions/x"
        );
    }

    #[test]
    fn client_secret_settings_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let load_text = |text: &str| {
            let path = write(dir.path(), "auth.yaml", text);
            load(&ConfigSources {
                explicit: Some(path),
                ..Default::default()
            })
        };
        let base = "admin:\n  endpoint: dns:///h:1\n  insecure: true\n";
        let config = load_text(&format!(
            "{base}  authType: ClientSecret\n  clientId: ci\n  clientSecretLocation: /s\n"
        ))
        .unwrap();
        assert_eq!(
            config.credentials,
            Some(ClientCredentials {
                client_id: "ci".into(),
                secret_file: "/s".into(),
                scopes: vec!["all".into()],
            })
        );
        // Other auth types: no token (as before).
        let pkce = load_text(&format!("{base}  authType: Pkce\n")).unwrap();
        assert_eq!(pkce.credentials, None);
        let err = load_text(&format!("{base}  authType: ClientSecret\n  clientId: ci\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("admin.clientSecretLocation"), "{err}");
    }

    #[test]
    fn precedence_flag_then_flytectl_config_then_home() {
        let dir = tempfile::tempdir().unwrap();
        let flag = write(
            dir.path(),
            "flag.yaml",
            "admin:\n  endpoint: dns:///a:1\n  insecure: true\n",
        );
        let env = write(
            dir.path(),
            "env.yaml",
            "admin:\n  endpoint: dns:///b:2\n  insecure: true\n",
        );
        std::fs::create_dir_all(dir.path().join(".flyte")).unwrap();
        write(
            &dir.path().join(".flyte"),
            "config.yaml",
            "admin:\n  endpoint: c:3\n  insecure: true\n",
        );
        let mut sources = ConfigSources {
            explicit: Some(flag),
            flytectl_config: Some(env),
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        assert_eq!(load(&sources).unwrap().endpoint, "a:1");
        sources.explicit = None;
        assert_eq!(load(&sources).unwrap().endpoint, "b:2");
        sources.flytectl_config = None;
        let config = load(&sources).unwrap();
        assert_eq!(config.endpoint, "c:3");
        assert_eq!(config.console, "http://c:3");
        // FLYTE_PLATFORM_URL wins over the file, as in flytekit.
        sources.platform_url = Some("dns:///d:4".into());
        assert_eq!(load(&sources).unwrap().endpoint, "d:4");
    }

    #[test]
    fn nothing_configured_means_local_default() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(&ConfigSources {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.endpoint, DEFAULT_ENDPOINT);
        assert!(config.insecure);
        assert_eq!(config.file, None);
    }

    #[test]
    fn named_file_must_exist() {
        let err = load(&ConfigSources {
            flytectl_config: Some("/nonexistent/flyte.yaml".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("FLYTECTL_CONFIG"), "{err}");
        assert!(err.to_string().contains("/nonexistent/flyte.yaml"), "{err}");
    }

    #[test]
    fn tls_settings_are_read_in_both_spellings() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "c.yaml",
            "admin:\n  endpoint: dns:///x:1\n  caCertFilePath: /ca.pem\n",
        );
        let config = load(&ConfigSources {
            explicit: Some(path),
            ..Default::default()
        })
        .unwrap();
        // flytekit's default is TLS.
        assert!(!config.insecure);
        assert_eq!(config.http_base(), "https://x:1");
        assert_eq!(config.console, "https://x:1");
        assert_eq!(config.tls.ca_cert_file, Some(PathBuf::from("/ca.pem")));
        assert!(!config.tls.skip_verify);
        let path = write(
            dir.path(),
            "d.yaml",
            "admin:\n  endpoint: x:1\n  insecure: false\n  ca_cert_file_path: /b.pem\n  insecureSkipVerify: true\n",
        );
        let config = load(&ConfigSources {
            explicit: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.tls.ca_cert_file, Some(PathBuf::from("/b.pem")));
        assert!(config.tls.skip_verify);
    }

    #[test]
    fn bad_yaml_and_bad_endpoint_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.yaml", "admin: [unclosed\n");
        let err = load(&ConfigSources {
            explicit: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("not a valid config file"), "{err}");
        let path = write(
            dir.path(),
            "d.yaml",
            "admin:\n  endpoint: 'http://x/y/z'\n  insecure: true\n",
        );
        let err = load(&ConfigSources {
            explicit: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("not an address"), "{err}");
    }

    #[test]
    fn insecure_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.yaml", "admin:\n  endpoint: x:1\n");
        let config = load(&ConfigSources {
            explicit: Some(path),
            platform_insecure: Some("True".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(config.insecure);
    }
}
