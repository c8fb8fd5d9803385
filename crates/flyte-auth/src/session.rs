//! The console's login through the provider and its session (docs/auth.md, "The console").
//!
//! As flyteadmin does (`auth/handlers.go`, `cookie_manager.go`): `/login` sends the browser
//! to the provider's authorization endpoint (authorization code with PKCE; state, nonce and
//! the PKCE verifier kept in a short-lived sealed cookie), `/callback` exchanges the code at
//! the token endpoint, checks the ID token (nonce) and the access token, and keeps the
//! provider's access and refresh tokens in the session cookie. Unlike flyteadmin's cookies
//! (signed with a hash key, then encrypted with a block key), ours are sealed with
//! ChaCha20-Poly1305 under one server key: confidential and authenticated, and bound to the
//! cookie's name (a login cookie cannot be replayed as a session).
//!
//! The HTTP side (routes, cookies, CSRF) is flyte-admin's auth edge.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{AuthError, Authenticator, Identity, unix_now};

/// `auth.session`: the console's session cookie.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// A file holding the key sessions are sealed with: 32 random bytes, base64
    /// (`openssl rand -base64 32`). Unset: `<data_dir>/session.key`, made at the first start
    /// (mode 0600). Replicas behind one address must share the same key.
    pub key_file: Option<PathBuf>,
    /// Mark the cookies `Secure` (sent over HTTPS only). Unset: when the public URL is https.
    pub secure_cookies: Option<bool>,
}

/// `auth.console`: the provider's client the console logs in with (a web client with the
/// redirect URI `<public URL>/callback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    pub client_id: String,
    /// The client's secret (confidential client); unset: a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Scopes requested at login: `openid` for the ID token, `offline_access` for a refresh
    /// token, and the API's scopes.
    pub scopes: Vec<String>,
    /// Where the provider sends the browser back; unset: `<public URL>/callback`.
    pub redirect_uri: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            client_id: "flyte-console".into(),
            client_secret: None,
            scopes: ["openid", "profile", "email", "offline_access", "all"]
                .map(String::from)
                .to_vec(),
            redirect_uri: None,
        }
    }
}

/// How long a started login may take (the provider's login form included).
pub const LOGIN_TTL_SECS: u64 = 600;

/// The key cookies are sealed with.
pub struct SessionKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl SessionKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| format!("the session key must be 32 bytes, not {}", bytes.len()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// The key in `path` (32 bytes, base64), made there (0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        let make = || {
            let mut bytes = vec![0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| "cannot draw a session key from the system RNG".to_string())?;
            Ok(bytes)
        };
        let bytes = crate::key_file::read_or_create(
            path,
            "auth.session.key_file",
            "console session key",
            &make,
        )?;
        Self::from_bytes(&bytes)
            .map_err(|e| format!("auth.session.key_file {}: {e}", path.display()))
    }

    /// `n` random bytes, base64url: state, nonce, PKCE verifier, CSRF token.
    pub fn random(&self, n: usize) -> String {
        let mut bytes = vec![0u8; n];
        // The system RNG does not fail on Linux; a zero buffer would still be unique-ish
        // only by luck, so fall back to a second draw.
        if self.rng.fill(&mut bytes).is_err() {
            let _ = self.rng.fill(&mut bytes);
        }
        B64.encode(bytes)
    }

    /// `value` sealed for a cookie named `name` (the name is authenticated with it).
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        let _ = self.rng.fill(&mut nonce);
        let mut data = serde_json::to_vec(value).unwrap_or_default();
        // Sealing in place cannot fail for lengths this small.
        let _ = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name.as_bytes()),
            &mut data,
        );
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        B64.encode(out)
    }

    /// What [`SessionKey::seal`] sealed for `name`; `None` when forged, altered, sealed
    /// under another key or for another cookie.
    pub fn open<T: serde::de::DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        let bytes = B64.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut data)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

/// A login under way: kept in the login cookie between `/login` and `/callback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// The console page to return to (a path on this server).
    pub redirect: String,
    /// When it started (Unix seconds).
    pub started: u64,
}

impl PendingLogin {
    pub fn new(key: &SessionKey, redirect: String) -> Self {
        Self {
            state: key.random(24),
            nonce: key.random(24),
            verifier: key.random(48),
            redirect,
            started: unix_now(),
        }
    }

    pub fn expired(&self) -> bool {
        unix_now().saturating_sub(self.started) > LOGIN_TTL_SECS
    }

    /// PKCE's S256 challenge of the verifier (RFC 7636 §4.2).
    pub fn challenge(&self) -> String {
        B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            self.verifier.as_bytes(),
        ))
    }
}

/// A signed-in console: the session cookie's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// The token the console must echo in `x-csrf-token` on state-changing calls.
    pub csrf: String,
}

/// The provider's answer at its token endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
}

/// The authorization endpoint's URL for `login`.
pub async fn authorization_url(
    auth: &Authenticator,
    console: &ConsoleConfig,
    redirect_uri: &str,
    login: &PendingLogin,
) -> Result<String, AuthError> {
    let m = auth.metadata().await?;
    let mut url = url::Url::parse(&m.authorization_endpoint).map_err(|e| {
        AuthError::ProviderUnavailable(format!(
            "its authorization endpoint `{}` is not a URL: {e}",
            m.authorization_endpoint
        ))
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &console.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &console.scopes.join(" "))
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &login.challenge())
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// Why a console login or refresh did not work.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The provider refused (a bad code, an expired refresh token): log in again.
    #[error("the identity provider refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Exchanges the authorization `code` of `login` at the token endpoint; checks the ID token
/// (signature, issuer, the console client as audience, the login's nonce) and the access
/// token (as every call's). Returns the tokens and who logged in.
pub async fn exchange_code(
    auth: &Authenticator,
    console: &ConsoleConfig,
    redirect_uri: &str,
    login: &PendingLogin,
    code: &str,
) -> Result<(TokenResponse, Identity), LoginError> {
    let tokens = token_request(
        auth,
        console,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &login.verifier),
        ],
    )
    .await?;
    let Some(id_token) = tokens.id_token.as_deref() else {
        return Err(LoginError::Refused(
            "its token response has no ID token (is `openid` among auth.console.scopes?)".into(),
        ));
    };
    let claims = auth.verify(id_token, &console.client_id).await?;
    if claims.get("nonce").and_then(Value::as_str) != Some(login.nonce.as_str()) {
        return Err(LoginError::Refused(
            "the ID token's nonce is not this login's".into(),
        ));
    }
    let identity = auth.validate(&tokens.access_token).await?;
    Ok((tokens, identity))
}

/// New tokens for a session whose access token expired.
pub async fn refresh(
    auth: &Authenticator,
    console: &ConsoleConfig,
    refresh_token: &str,
) -> Result<(TokenResponse, Identity), LoginError> {
    let tokens = token_request(
        auth,
        console,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await?;
    let identity = auth.validate(&tokens.access_token).await?;
    Ok((tokens, identity))
}

async fn token_request(
    auth: &Authenticator,
    console: &ConsoleConfig,
    fields: &[(&str, &str)],
) -> Result<TokenResponse, LoginError> {
    let m = auth.metadata().await?;
    let mut pairs = fields.to_vec();
    let mut request = auth
        .http()
        .post(&m.token_endpoint)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json");
    match &console.client_secret {
        // RFC 6749 §2.3.1: client_secret_basic, each part form-encoded first.
        Some(secret) => {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(&console.client_id),
                enc(secret)
            ));
            request = request.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        None => pairs.push(("client_id", &console.client_id)),
    }
    let unavailable =
        |e: String| AuthError::ProviderUnavailable(format!("POST {}: {e}", m.token_endpoint));
    let response = request
        .body(form(&pairs))
        .send()
        .await
        .map_err(|e| unavailable(crate::error_chain(&e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| unavailable(crate::error_chain(&e)))?;
    if status.is_client_error() {
        // RFC 6749 §5.2: `error` and `error_description`.
        let err: Map<String, Value> = serde_json::from_slice(&body).unwrap_or_default();
        let text = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        return Err(LoginError::Refused(format!(
            "{} {} ({status})",
            text("error"),
            text("error_description")
        )));
    }
    if !status.is_success() {
        return Err(unavailable(format!("answered {status}")).into());
    }
    serde_json::from_slice(&body)
        .map_err(|e| unavailable(format!("not a token response: {e}")).into())
}

/// `application/x-www-form-urlencoded` of `pairs` (a plain function: the serializer is not
/// `Send`, so it must not live in the async fn).
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().copied())
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_cookies_open_only_under_their_key_and_name() {
        let key = SessionKey::from_bytes(&[7u8; 32]).unwrap();
        let other = SessionKey::from_bytes(&[8u8; 32]).unwrap();
        let s = Session {
            access_token: "the-access-token".into(),
            refresh_token: Some("rt".into()),
            csrf: "c".into(),
        };
        let sealed = key.seal("flyte_session", &s);
        assert!(
            !sealed.contains("access"),
            "the tokens are not readable in the cookie"
        );
        assert_eq!(key.open::<Session>("flyte_session", &sealed), Some(s));
        assert_eq!(key.open::<Session>("flyte_login", &sealed), None);
        assert_eq!(other.open::<Session>("flyte_session", &sealed), None);
        let mut bytes = B64.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            key.open::<Session>("flyte_session", &B64.encode(bytes)),
            None
        );
        assert_eq!(key.open::<Session>("flyte_session", "garbage!"), None);
        assert_eq!(key.open::<Session>("flyte_session", ""), None);
    }

    #[test]
    fn the_key_file_is_made_once_private_and_then_reused() {
        let dir = std::env::temp_dir().join(format!("flyte-auth-key-{}", std::process::id()));
        let path = dir.join("sub").join("session.key");
        let _ = std::fs::remove_dir_all(&dir);
        let a = SessionKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = SessionKey::load_or_create(&path).unwrap();
        assert_eq!(
            b.open::<String>("n", &a.seal("n", &"x".to_string())),
            Some("x".into())
        );
        std::fs::write(&path, "c2hvcnQ=\n").unwrap();
        let err = SessionKey::load_or_create(&path).err().unwrap();
        assert!(err.contains("32 bytes"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_console_needs_openid_and_a_client() {
        let mut c = crate::AuthConfig {
            enabled: true,
            issuer: Some("http://127.0.0.1:1".into()),
            audience: Some("flyte-rs".into()),
            ..Default::default()
        };
        assert_eq!(c.validate(), Ok(()));
        c.console.scopes = vec!["all".into()];
        assert!(c.validate().unwrap_err().starts_with("auth.console.scopes"));
        c.console = ConsoleConfig {
            client_id: " ".into(),
            ..Default::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("auth.console.client_id")
        );
    }

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        let login = PendingLogin {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mJ0kWhq1qDmWVCmg7ZeK3Bmb1d4EeM".into(),
            redirect: String::new(),
            started: unix_now(),
        };
        // base64url(SHA-256(verifier)) without padding, as Python's hashlib computes it.
        assert_eq!(
            login.challenge(),
            "N0_GlaHyhdUGUH7WBOZhbNd0r51UhYerexHM1RC12Rw"
        );
        assert!(!login.expired());
        assert!(
            PendingLogin {
                started: 0,
                ..login
            }
            .expired()
        );
    }
}
