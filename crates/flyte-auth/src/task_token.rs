//! Task identity (docs/auth.md "Tasks that call the platform", docs/adr-011-task-identity.md):
//! the server mints each task attempt a short-lived token naming its execution, and accepts
//! it beside the provider's tokens. Authorization grants it read and execute on its own
//! project and domain, nothing else.
//!
//! The token is a JWT signed with Ed25519 by a key of the server's (`auth.task_tokens.key_file`,
//! default `<data_dir>/task-token.key`, made on first start, 0600). Only this server verifies
//! it, so no JWKS is published; replicas share the key by sharing the file.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{AuthError, Identity};

/// The `iss` of task tokens: never a provider's issuer URL.
pub const TASK_ISSUER: &str = "flyte-rs:task-identity";
/// Task tokens' key ids start with this; the edge routes them to [`TaskTokens::verify`].
pub const TASK_KID_PREFIX: &str = "flyte-rs-task-";
/// The environment variable holding the token in the task's process.
pub const TOKEN_ENV: &str = "FLYTE_TASK_ACCESS_TOKEN";

/// The `auth.task_tokens` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskTokenConfig {
    /// Give every task attempt a token (with `auth.enabled`): flytekit inside the task
    /// (FlyteRemote, eager workflows) then calls the platform as its execution.
    pub enabled: bool,
    /// The signing key (Ed25519, PKCS#8, base64); default `<data_dir>/task-token.key`.
    /// Replicas must share it (the same file or the same secret mounted on each).
    pub key_file: Option<std::path::PathBuf>,
    /// Lifetime of a token for a task that sets no timeout, and the bound for one that does
    /// (its timeout plus [`TIMEOUT_MARGIN`] when shorter).
    pub ttl_secs: u64,
}

impl Default for TaskTokenConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key_file: None,
            ttl_secs: 12 * 3600,
        }
    }
}

/// Added to a task's timeout for its token's lifetime: the last calls of a task near its
/// deadline (writing outputs) still pass.
pub const TIMEOUT_MARGIN: Duration = Duration::from_secs(300);

/// Whose token it is: the execution (and attempt) it was minted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskScope {
    pub project: String,
    pub domain: String,
    pub execution: String,
    /// The node and its retry, `n0/1`: which attempt holds it (audit, logs).
    #[serde(default)]
    pub attempt: String,
}

impl TaskScope {
    /// `execution:<project>/<domain>/<name>`: the token's `sub`.
    pub fn subject(&self) -> String {
        format!(
            "execution:{}/{}/{}",
            self.project, self.domain, self.execution
        )
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    iat: u64,
    exp: u64,
    /// The scope, read back by [`TaskTokens::verify`].
    flyte_task: TaskScope,
}

/// Mints and verifies task tokens with the server's key. Cheap to share (`Arc`).
pub struct TaskTokens {
    kid: String,
    audience: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    leeway_secs: u64,
    ttl: Duration,
}

impl std::fmt::Debug for TaskTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskTokens")
            .field("kid", &self.kid)
            .finish()
    }
}

impl TaskTokens {
    /// From a PKCS#8 Ed25519 key; tokens name `audience` (the provider's API audience, so a
    /// task token reads like any access token for this server).
    pub fn from_pkcs8(
        pkcs8: &[u8],
        audience: &str,
        ttl: Duration,
        leeway_secs: u64,
    ) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key ({e})"))?;
        let public = pair.public_key().as_ref();
        let digest = ring::digest::digest(&ring::digest::SHA256, public);
        let kid = format!(
            "{TASK_KID_PREFIX}{}",
            digest.as_ref()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Ok(Self {
            kid,
            audience: audience.to_owned(),
            encoding: EncodingKey::from_ed_der(pkcs8),
            decoding: DecodingKey::from_ed_der(public),
            leeway_secs,
            ttl,
        })
    }

    /// The key in `path`, made there (0600) when the file does not exist; a replica that
    /// loses the race to make it reads the winner's.
    pub fn load_or_create(
        path: &Path,
        audience: &str,
        ttl: Duration,
        leeway_secs: u64,
    ) -> Result<Self, String> {
        let make = || {
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map(|doc| doc.as_ref().to_vec())
                .map_err(|_| "cannot make a task-token key from the system RNG".to_string())
        };
        let pkcs8 = crate::key_file::read_or_create(
            path,
            "auth.task_tokens.key_file",
            "task-token signing key",
            &make,
        )?;
        Self::from_pkcs8(&pkcs8, audience, ttl, leeway_secs)
            .map_err(|e| format!("auth.task_tokens.key_file {}: {e}", path.display()))
    }

    /// How long a token for a task with `timeout` lives.
    pub fn lifetime(&self, timeout: Option<Duration>) -> Duration {
        match timeout {
            Some(t) if !t.is_zero() => (t + TIMEOUT_MARGIN).min(self.ttl),
            _ => self.ttl,
        }
    }

    /// A token for `scope`, valid from now for [`Self::lifetime`] of `timeout`.
    pub fn mint(&self, scope: &TaskScope, timeout: Option<Duration>) -> String {
        self.mint_at(scope, crate::unix_now(), self.lifetime(timeout))
    }

    /// A token for `scope` issued at `now` (Unix seconds) for `lifetime`.
    pub fn mint_at(&self, scope: &TaskScope, now: u64, lifetime: Duration) -> String {
        let claims = Claims {
            iss: TASK_ISSUER.into(),
            aud: self.audience.clone(),
            sub: scope.subject(),
            iat: now,
            exp: now + lifetime.as_secs(),
            flyte_task: scope.clone(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        // Signing with a well-formed key and serializable claims does not fail.
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap_or_default()
    }

    /// Whether `kid` (a token header's) names a task token.
    pub fn is_task_kid(kid: Option<&str>) -> bool {
        kid.is_some_and(|k| k.starts_with(TASK_KID_PREFIX))
    }

    /// The identity of a task token: signature by this server's key, issuer, audience and
    /// expiry checked.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("not a JWT access token ({e})")))?;
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(AuthError::Invalid(format!(
                "a task token signed with key `{}`, not this server's task key `{}` (replicas \
                 must share auth.task_tokens.key_file)",
                header.kid.unwrap_or_default(),
                self.kid
            )));
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[TASK_ISSUER]);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway_secs;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                let exp = crate::unverified_claims(token)
                    .get("exp")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                AuthError::Expired(crate::unix_now().saturating_sub(exp))
            }
            _ => AuthError::Invalid(format!("task token: {e}")),
        })?;
        let claims = data.claims;
        let scope: TaskScope = claims
            .get("flyte_task")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| {
                AuthError::Invalid("task token without its `flyte_task` claim".into())
            })?;
        if claims.get("sub").and_then(Value::as_str) != Some(scope.subject().as_str()) {
            return Err(AuthError::Invalid(
                "task token whose `sub` is not its execution".into(),
            ));
        }
        Ok(Identity {
            subject: scope.subject(),
            name: Some(format!(
                "task of execution {}/{}/{}",
                scope.project, scope.domain, scope.execution
            )),
            task: Some(scope),
            claims,
            ..Identity::default()
        })
    }

    /// The environment that makes flytekit inside the task send the token: its
    /// `ExternalCommand` auth mode runs `printenv FLYTE_TASK_ACCESS_TOKEN` and sends what it
    /// prints as the bearer token (flytekit's `FLYTE_CREDENTIALS_*` settings).
    pub fn task_env(&self, scope: &TaskScope, timeout: Option<Duration>) -> Vec<(String, String)> {
        vec![
            (TOKEN_ENV.into(), self.mint(scope, timeout)),
            (
                "FLYTE_CREDENTIALS_AUTH_MODE".into(),
                "ExternalCommand".into(),
            ),
            (
                "FLYTE_CREDENTIALS_COMMAND".into(),
                format!("printenv,{TOKEN_ENV}"),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn tokens() -> TaskTokens {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        TaskTokens::from_pkcs8(doc.as_ref(), "flyte-rs", Duration::from_secs(3600), 0).unwrap()
    }

    fn scope() -> TaskScope {
        TaskScope {
            project: "flytesnacks".into(),
            domain: "development".into(),
            execution: "abc123".into(),
            attempt: "n0/0".into(),
        }
    }

    #[test]
    fn a_minted_token_verifies_as_its_execution() {
        let t = tokens();
        let id = t.verify(&t.mint(&scope(), None)).unwrap();
        assert_eq!(id.subject, "execution:flytesnacks/development/abc123");
        assert_eq!(id.task, Some(scope()));
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let t = tokens();
        let old = t.mint_at(&scope(), crate::unix_now() - 7200, Duration::from_secs(60));
        assert!(matches!(t.verify(&old), Err(AuthError::Expired(s)) if s >= 7000));
    }

    #[test]
    fn another_servers_key_or_an_altered_token_is_refused() {
        let (a, b) = (tokens(), tokens());
        let token = a.mint(&scope(), None);
        assert!(matches!(b.verify(&token), Err(AuthError::Invalid(m)) if m.contains("task key")));
        // The claims changed to another project: the signature no longer verifies.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = String::from_utf8(b64.decode(&parts[1]).unwrap()).unwrap();
        parts[1] = b64.encode(claims.replace("flytesnacks", "other"));
        assert!(matches!(
            a.verify(&parts.join(".")),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn lifetime_is_the_timeout_plus_margin_bounded_by_the_ttl() {
        let t = tokens();
        assert_eq!(t.lifetime(None), Duration::from_secs(3600));
        assert_eq!(
            t.lifetime(Some(Duration::from_secs(60))),
            Duration::from_secs(360)
        );
        assert_eq!(
            t.lifetime(Some(Duration::from_secs(86400))),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn the_key_file_is_made_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("flyte-task-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("task-token.key");
        let a = TaskTokens::load_or_create(&path, "aud", Duration::from_secs(60), 0).unwrap();
        let b = TaskTokens::load_or_create(&path, "aud", Duration::from_secs(60), 0).unwrap();
        assert!(b.verify(&a.mint(&scope(), None)).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
