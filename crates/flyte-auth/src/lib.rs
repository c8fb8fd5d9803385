//! Authentication: who is calling, from an OpenID Connect provider's access token.
//!
//! The server does not issue tokens; an external provider does (as flyteadmin does with
//! `appAuth.authServerType: External`). [`Authenticator`] reads the provider's discovery
//! document (`<issuer>/.well-known/openid-configuration`), fetches and caches its signing
//! keys (JWKS), and checks each bearer token: signature by a published key, issuer, audience,
//! expiry and not-before. A token signed with a key it has not seen makes it fetch the keys
//! again (at most once per `jwks_min_refresh_secs`), so the provider can rotate keys without
//! a restart. What the token says about the caller becomes an [`Identity`].
//!
//! The gRPC/HTTP edge (flyte-admin's auth layer) decides which paths need a token and how a
//! refusal is answered; nothing here knows about gRPC.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

pub mod authz;
mod key_file;
pub mod session;
pub mod task_token;
pub use authz::{AuthorizationConfig, Authorizer, Permission, Role, Target};
pub use session::{ConsoleConfig, SessionConfig};
pub use task_token::{TaskScope, TaskTokenConfig, TaskTokens};

/// The `auth` section of the server's configuration (docs/auth.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require a valid access token on every call but the exempt paths.
    pub enabled: bool,
    /// The provider's issuer URL (`https://idp.example.com/realms/flyte`); its discovery
    /// document is `<issuer>/.well-known/openid-configuration`. Tokens must name it in `iss`.
    pub issuer: Option<String>,
    /// What access tokens must name in `aud` (the provider's API / resource for Flyte).
    pub audience: Option<String>,
    /// The public client flytekit's `authType: Pkce` and the console log in with (flyteadmin's
    /// `flytectl`); served by `GetPublicClientConfig`.
    pub client_id: String,
    /// Where the provider sends flytekit's PKCE login back to (flytekit listens there).
    pub redirect_uri: String,
    /// The scopes flytekit requests, with PKCE and with client credentials alike (unless its
    /// config.yaml sets `admin.scopes`); the provider must grant them for the audience.
    pub scopes: Vec<String>,
    /// The gRPC metadata key flytekit sends its token in (flyteadmin's default
    /// `flyte-authorization`); `authorization` is always accepted too.
    pub authorization_metadata_key: String,
    /// Paths served without a token: an entry ending in `/` is a prefix, others exact. The
    /// defaults: health, metrics, the discovery documents and the auth metadata (what a
    /// client reads to log in), and the data proxy's signed upload and download URLs (their
    /// signature is the permission, as with an object store's presigned URLs; flytekit sends
    /// no token with them).
    pub exempt_paths: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// A token signed with an unknown key fetches the JWKS again at most this often.
    pub jwks_min_refresh_secs: u64,
    /// Keys older than this are fetched again at the next token, so a key the provider
    /// withdrew (compromised) stops being accepted without a restart.
    pub jwks_max_age_secs: u64,
    /// Timeout of each request to the provider (discovery, JWKS), in seconds.
    pub provider_timeout_secs: u64,
    /// Roles per project and domain (docs/auth.md); off by default.
    pub authorization: AuthorizationConfig,
    /// The client the console logs in with (docs/auth.md, "The console").
    pub console: ConsoleConfig,
    /// The console's session cookie: its key, `Secure`.
    pub session: SessionConfig,
    /// Tokens the server gives task attempts (docs/auth.md, "Tasks that call the platform").
    pub task_tokens: TaskTokenConfig,
    /// Audited calls are also stored (for `GET /api/v1/auth/audit`) this many days; 0: only
    /// logged.
    pub audit_retention_days: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            issuer: None,
            audience: None,
            client_id: "flytectl".into(),
            redirect_uri: "http://localhost:53593/callback".into(),
            scopes: vec!["all".into()],
            authorization_metadata_key: "flyte-authorization".into(),
            exempt_paths: [
                "/healthcheck",
                "/readyz",
                "/metrics",
                "/.well-known/",
                "/config/v1/flyte_client",
                "/flyteidl.service.AuthMetadataService/",
                "/api/v1/dataproxy/upload/",
                "/api/v1/dataproxy/download/",
            ]
            .map(String::from)
            .to_vec(),
            leeway_secs: 30,
            jwks_min_refresh_secs: 30,
            jwks_max_age_secs: 3600,
            provider_timeout_secs: 10,
            authorization: AuthorizationConfig::default(),
            console: ConsoleConfig::default(),
            session: SessionConfig::default(),
            task_tokens: TaskTokenConfig::default(),
            audit_retention_days: 90,
        }
    }
}

impl AuthConfig {
    /// What is wrong with the section, naming the key (`Err("auth.issuer: …")`).
    pub fn validate(&self) -> Result<(), String> {
        self.authorization.validate(self.enabled)?;
        if !self.enabled {
            return Ok(());
        }
        let issuer = self
            .issuer
            .as_deref()
            .filter(|i| !i.trim().is_empty())
            .ok_or("auth.issuer: authentication is enabled but no issuer URL is set")?;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(format!(
                "auth.issuer: `{issuer}` is not an http(s) URL of an OpenID Connect provider"
            ));
        }
        if self.audience.as_deref().is_none_or(|a| a.trim().is_empty()) {
            return Err(
                "auth.audience: authentication is enabled but no audience is set (what \
                        the provider's access tokens for Flyte name in `aud`)"
                    .into(),
            );
        }
        if self.client_id.trim().is_empty() {
            return Err("auth.client_id: empty (the public client flytekit logs in with)".into());
        }
        if self.console.client_id.trim().is_empty() {
            return Err(
                "auth.console.client_id: empty (the client the console logs in with)".into(),
            );
        }
        if !self.console.scopes.iter().any(|s| s == "openid") {
            return Err(format!(
                "auth.console.scopes: {:?} lacks `openid` (the console's login needs the ID \
                 token, which carries the login's nonce)",
                self.console.scopes
            ));
        }
        Ok(())
    }

    /// Whether `path` is served without a token.
    pub fn is_exempt(&self, path: &str) -> bool {
        self.exempt_paths.iter().any(|e| match e.strip_suffix('/') {
            Some(prefix) => path.starts_with(e.as_str()) || path == prefix,
            None => path == e,
        })
    }
}

/// Why a call is not authenticated, or cannot be checked.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    /// No token at all.
    #[error(
        "this server requires authentication: send an OAuth2 access token from {issuer} as \
         `authorization: Bearer <token>` (flytekit: set admin.authType, see docs/auth.md)"
    )]
    Missing { issuer: String },
    /// A token that does not pass: the reason says which check failed.
    #[error("access token refused: {0}")]
    Invalid(String),
    /// The token's `exp` has passed.
    #[error("access token refused: it expired {0} s ago; get a new one")]
    Expired(u64),
    /// The provider's discovery document or keys cannot be fetched: the token may be fine,
    /// so this is not UNAUTHENTICATED (flytekit would start a login for it).
    #[error("cannot check the access token: the identity provider is unavailable: {0}")]
    ProviderUnavailable(String),
}

/// Who is calling, from a validated access token: what `IdentityService.UserInfo` reports
/// and what authorization will bind roles to. Put into each request's extensions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// `sub`: the person's id, or the client id for client-credentials tokens.
    pub subject: String,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub picture: Option<String>,
    /// `groups` (a list, or one string).
    pub groups: Vec<String>,
    /// `client_id` (or `azp`): the application the token was issued to.
    pub client_id: Option<String>,
    /// `scope` (space-separated) or `scp` (a list).
    pub scopes: Vec<String>,
    /// Every claim of the token.
    pub claims: Map<String, Value>,
    /// Set for a task's token (minted by this server, [`TaskTokens`]): the execution whose
    /// project and domain alone it may read and run in.
    pub task: Option<TaskScope>,
}

/// The group names a claim holds: a list of strings, or one string (one group name may
/// contain spaces, so a lone string is one group). Shared by [`Identity::groups`] and the
/// authorization's configurable groups claim.
pub(crate) fn group_names(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

impl Identity {
    fn from_claims(claims: Map<String, Value>) -> Self {
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        let list = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            }
        };
        let groups = group_names(claims.get("groups"));
        Self {
            subject: text("sub").unwrap_or_default(),
            name: text("name"),
            preferred_username: text("preferred_username"),
            given_name: text("given_name"),
            family_name: text("family_name"),
            email: text("email"),
            picture: text("picture"),
            groups,
            client_id: text("client_id").or_else(|| text("azp")),
            scopes: list(claims.get("scope").or_else(|| claims.get("scp"))),
            claims,
            task: None,
        }
    }
}

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderMetadata {
    /// The discovery document as the provider serves it (for `/.well-known/…`).
    pub document: Map<String, Value>,
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub device_authorization_endpoint: String,
}

impl ProviderMetadata {
    fn text(&self, key: &str) -> String {
        self.document
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// A list field of the document (`scopes_supported`, …); empty when absent.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.document
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn parse(document: Map<String, Value>, issuer: &str) -> Result<Self, String> {
        let mut m = Self {
            document,
            issuer: String::new(),
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            jwks_uri: String::new(),
            device_authorization_endpoint: String::new(),
        };
        m.issuer = m.text("issuer");
        m.authorization_endpoint = m.text("authorization_endpoint");
        m.token_endpoint = m.text("token_endpoint");
        m.jwks_uri = m.text("jwks_uri");
        m.device_authorization_endpoint = m.text("device_authorization_endpoint");
        // OpenID Connect Discovery 1.0 §4.3: the document's issuer must be the one asked.
        if m.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(format!(
                "its discovery document names issuer `{}`, not `{issuer}`",
                m.issuer
            ));
        }
        if m.jwks_uri.is_empty() {
            return Err("its discovery document has no jwks_uri".into());
        }
        Ok(m)
    }
}

/// A verification key from the JWKS.
struct Key {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Default)]
struct Cache {
    metadata: Option<Arc<ProviderMetadata>>,
    keys: Vec<Arc<Key>>,
    /// When the keys were last fetched (or the fetch last tried): the refresh rate limit.
    fetched: Option<Instant>,
    /// Why the last fetch of the keys failed (cleared by a successful one).
    keys_failure: Option<String>,
    /// The last failed discovery: tried again only after `jwks_min_refresh_secs`, so a
    /// provider that is down is not asked once per request.
    discovery_failure: Option<(Instant, String)>,
}

/// Validates access tokens against one OpenID Connect provider. Cheap to share (`Arc`).
pub struct Authenticator {
    config: AuthConfig,
    issuer: String,
    audience: String,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// One fetch from the provider at a time; the others wait and use its result.
    fetching: Mutex<()>,
    /// Accepts the tokens this server gives tasks, beside the provider's.
    task_tokens: Option<Arc<TaskTokens>>,
}

/// The asymmetric algorithms accepted: a token must be signed by a key the provider
/// publishes (never HS*, whose "key" would be public).
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Authenticator {
    /// An authenticator for an enabled, valid `config` (see [`AuthConfig::validate`]).
    /// Nothing is fetched yet: see [`Authenticator::prepare`].
    pub fn new(config: AuthConfig) -> Result<Self, String> {
        config.validate()?;
        // reqwest's rustls needs a process-wide crypto provider; ring, as everywhere here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = Duration::from_secs(config.provider_timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("auth: cannot build the HTTP client: {e}"))?;
        Ok(Self {
            issuer: config.issuer.clone().unwrap_or_default(),
            audience: config.audience.clone().unwrap_or_default(),
            config,
            http,
            cache: RwLock::new(Cache::default()),
            fetching: Mutex::new(()),
            task_tokens: None,
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Also accept the task tokens `tokens` mints.
    pub fn with_task_tokens(mut self, tokens: Arc<TaskTokens>) -> Self {
        self.task_tokens = Some(tokens);
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The client for requests to the provider (the console's token requests).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Fetches the discovery document and the keys now (at start-up), so the first call does
    /// not wait for them and a wrong issuer shows in the log at once.
    pub async fn prepare(&self) -> Result<(), AuthError> {
        self.refresh_keys(None).await
    }

    /// The provider's discovery document, fetched once and kept.
    pub async fn metadata(&self) -> Result<Arc<ProviderMetadata>, AuthError> {
        if let Some(m) = self.cache.read().await.metadata.clone() {
            return Ok(m);
        }
        let _one = self.fetching.lock().await;
        {
            let cache = self.cache.read().await;
            if let Some(m) = cache.metadata.clone() {
                return Ok(m);
            }
            if let Some((when, why)) = &cache.discovery_failure
                && when.elapsed() < Duration::from_secs(self.config.jwks_min_refresh_secs)
            {
                return Err(AuthError::ProviderUnavailable(why.clone()));
            }
        }
        match self.discover().await {
            Ok(m) => {
                let m = Arc::new(m);
                let mut cache = self.cache.write().await;
                cache.metadata = Some(m.clone());
                cache.discovery_failure = None;
                Ok(m)
            }
            Err(e) => {
                self.cache.write().await.discovery_failure = Some((Instant::now(), reason(&e)));
                Err(e)
            }
        }
    }

    async fn discover(&self) -> Result<ProviderMetadata, AuthError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let document: Map<String, Value> = self.get_json(&url).await?;
        ProviderMetadata::parse(document, &self.issuer)
            .map_err(|e| AuthError::ProviderUnavailable(format!("{}: {e}", self.issuer)))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, AuthError> {
        let unavailable = |e: String| AuthError::ProviderUnavailable(format!("GET {url}: {e}"));
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| unavailable(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("answered {status}")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(error_chain(&e)))?;
        serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("not the JSON expected: {e}")))
    }

    /// Fetches the JWKS again unless it was fetched less than `jwks_min_refresh_secs` ago
    /// (`since`: the fetch time the caller saw; another task may have refreshed meanwhile).
    async fn refresh_keys(&self, since: Option<Instant>) -> Result<(), AuthError> {
        let metadata = self.metadata().await?;
        let _one = self.fetching.lock().await;
        {
            let cache = self.cache.read().await;
            if let Some(fetched) = cache.fetched {
                let min = Duration::from_secs(self.config.jwks_min_refresh_secs);
                if Some(fetched) != since || fetched.elapsed() < min {
                    return Ok(());
                }
            }
        }
        let fetched = Instant::now();
        let set: Result<JwkSet, AuthError> = self.get_json(&metadata.jwks_uri).await;
        let mut cache = self.cache.write().await;
        cache.fetched = Some(fetched);
        let set = match set {
            Ok(set) => set,
            Err(e) => {
                cache.keys_failure = Some(reason(&e));
                return Err(e);
            }
        };
        cache.keys_failure = None;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            match key_of(jwk) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(e) => tracing::warn!(
                    kid = jwk.common.key_id.as_deref().unwrap_or(""),
                    error = %e,
                    "auth: skipping a key of the provider's JWKS that cannot verify tokens"
                ),
            }
        }
        tracing::info!(
            issuer = %self.issuer,
            keys = keys.len(),
            kids = ?keys.iter().filter_map(|k| k.kid.as_deref()).collect::<Vec<_>>(),
            "auth: fetched the provider's signing keys"
        );
        cache.keys = keys;
        Ok(())
    }

    /// The bearer token of a request: `authorization` or the configured metadata key
    /// (flytekit sends `flyte-authorization` when the server says so), `Bearer <token>`.
    pub fn token_from_headers<'a>(
        &self,
        headers: &'a http::HeaderMap,
    ) -> Result<&'a str, AuthError> {
        let values = headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .chain(headers.get_all(self.config.authorization_metadata_key.as_str()));
        for value in values {
            let Ok(value) = value.to_str() else {
                return Err(AuthError::Invalid(
                    "the authorization header is not ASCII text".into(),
                ));
            };
            let value = value.trim();
            let Some((scheme, token)) = value.split_once(' ') else {
                return Err(AuthError::Invalid(
                    "the authorization header is not `Bearer <token>`".into(),
                ));
            };
            if !scheme.eq_ignore_ascii_case("bearer") {
                continue;
            }
            let token = token.trim();
            if token.is_empty() {
                return Err(AuthError::Invalid("the bearer token is empty".into()));
            }
            return Ok(token);
        }
        Err(AuthError::Missing {
            issuer: self.issuer.clone(),
        })
    }

    /// Who sent `headers`: their bearer token, validated.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Identity, AuthError> {
        let token = self.token_from_headers(headers)?;
        self.validate(token).await
    }

    /// Checks `token` (a JWT access token) and returns who it identifies.
    pub async fn validate(&self, token: &str) -> Result<Identity, AuthError> {
        if let Some(tasks) = &self.task_tokens
            && let Ok(header) = jsonwebtoken::decode_header(token)
            && TaskTokens::is_task_kid(header.kid.as_deref())
        {
            return tasks.verify(token);
        }
        let audience = self.audience.clone();
        self.verify(token, &audience)
            .await
            .map(Identity::from_claims)
    }

    /// The claims of `token`, a JWT from the provider for `audience` (the API for access
    /// tokens, a client for ID tokens), once signature, issuer, audience and times pass.
    pub async fn verify(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("not a JWT access token ({e})")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "signed with {:?}; only the provider's public-key algorithms are accepted",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let fetched = self.cache.read().await.fetched;
        if let Some(at) = fetched
            && at.elapsed() >= Duration::from_secs(self.config.jwks_max_age_secs)
            && let Err(err) = self.refresh_keys(fetched).await
        {
            // The keys at hand stay in use until the provider answers again.
            tracing::warn!(issuer = %self.issuer, error = %err, "auth: cannot refresh the provider's keys");
        }
        let mut keys = self.keys_for(kid, header.alg).await;
        if keys.is_empty() {
            // A key not seen yet: the provider may have rotated. Fetch again (rate-limited).
            let since = self.cache.read().await.fetched;
            self.refresh_keys(since).await?;
            keys = self.keys_for(kid, header.alg).await;
            if keys.is_empty()
                && let Some(why) = self.cache.read().await.keys_failure.clone()
            {
                // The keys could not be fetched: the token may well be good.
                return Err(AuthError::ProviderUnavailable(why));
            }
        }
        if keys.is_empty() {
            return Err(AuthError::Invalid(match kid {
                Some(kid) => format!(
                    "signed with key `{kid}`, which {} does not publish",
                    self.issuer
                ),
                None => format!("no key of {} verifies {:?} tokens", self.issuer, header.alg),
            }));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        let mut last = None;
        for key in &keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = Some(e),
            }
        }
        let err = last.map(|e| self.refusal(token, audience, e));
        Err(err.unwrap_or_else(|| AuthError::Invalid("no key verifies it".into())))
    }

    async fn keys_for(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Arc<Key>> {
        let cache = self.cache.read().await;
        cache
            .keys
            .iter()
            // A key that names its algorithm verifies only that one (RFC 8725 §3.1).
            .filter(|k| k.alg.is_none_or(|a| a == alg))
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .cloned()
            .collect()
    }

    /// A failed check, said in terms of the token (which claim, what was expected).
    fn refusal(&self, token: &str, audience: &str, err: jsonwebtoken::errors::Error) -> AuthError {
        use jsonwebtoken::errors::ErrorKind;
        let claims = unverified_claims(token);
        let claim = |k: &str| claims.get(k).map(Value::to_string).unwrap_or_default();
        match err.kind() {
            ErrorKind::ExpiredSignature => {
                let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                AuthError::Expired(unix_now().saturating_sub(exp))
            }
            ErrorKind::InvalidAudience => AuthError::Invalid(format!(
                "its audience (aud) is {}, not `{audience}`",
                claim("aud"),
            )),
            ErrorKind::InvalidIssuer => AuthError::Invalid(format!(
                "its issuer (iss) is {}, not `{}`",
                claim("iss"),
                self.issuer
            )),
            ErrorKind::ImmatureSignature => {
                AuthError::Invalid("it is not valid yet (nbf is in the future)".into())
            }
            ErrorKind::MissingRequiredClaim(c) => {
                AuthError::Invalid(format!("it has no `{c}` claim"))
            }
            ErrorKind::InvalidSignature => {
                AuthError::Invalid("its signature does not verify".into())
            }
            ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                AuthError::Invalid(format!("it is not a well-formed JWT ({err})"))
            }
            _ => AuthError::Invalid(err.to_string()),
        }
    }
}

/// The claims of a token without checking anything: only to word a refusal.
pub(crate) fn unverified_claims(token: &str) -> Map<String, Value> {
    token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn key_of(jwk: &Jwk) -> Result<Key, String> {
    let alg = match jwk.common.key_algorithm {
        Some(a) => Some(
            a.to_string()
                .parse::<Algorithm>()
                .map_err(|_| format!("algorithm {a} cannot verify signatures"))?,
        ),
        None => None,
    };
    if let Some(a) = alg
        && !ALGORITHMS.contains(&a)
    {
        return Err(format!("algorithm {a:?} is not accepted"));
    }
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key: DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?,
    })
}

/// What a provider failure says, without the wrapper's words (it is wrapped again).
fn reason(err: &AuthError) -> String {
    match err {
        AuthError::ProviderUnavailable(why) => why.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests;
