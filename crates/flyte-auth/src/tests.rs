//! The validator against a provider served on loopback: a discovery document and a JWKS
//! (Ed25519 keys made with ring), tokens signed the way a provider signs them. The real
//! provider (oidc-provider) is exercised by tests/e2e/test_auth.py.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

use super::*;

struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl SigningKey {
    fn new(kid: &str) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key generation");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("fresh key");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key());
        Self {
            kid: kid.into(),
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&self.pkcs8))
            .expect("signing")
    }
}

/// A provider on loopback: its published keys can be replaced (rotation); JWKS fetches are
/// counted.
struct Provider {
    issuer: String,
    keys: Arc<StdMutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
}

impl Provider {
    async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let published = Arc::new(StdMutex::new(
            keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>(),
        ));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let doc = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "scopes_supported": ["openid", "all"],
        });
        let (p, n) = (published.clone(), jwks_fetches.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(doc) }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    let keys = p.lock().unwrap().clone();
                    axum::Json(json!({ "keys": keys }))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            issuer,
            keys: published,
            jwks_fetches,
        }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn authenticator(&self, min_refresh_secs: u64) -> Authenticator {
        self.authenticator_with(AuthConfig {
            jwks_min_refresh_secs: min_refresh_secs,
            ..AuthConfig::default()
        })
    }

    fn authenticator_with(&self, config: AuthConfig) -> Authenticator {
        Authenticator::new(AuthConfig {
            enabled: true,
            issuer: Some(self.issuer.clone()),
            audience: Some("flyte-rs".into()),
            leeway_secs: 0,
            ..config
        })
        .expect("valid config")
    }

    fn claims(&self) -> Value {
        json!({
            "iss": self.issuer, "aud": "flyte-rs", "sub": "alice",
            "exp": unix_now() + 600, "iat": unix_now(),
            "name": "Alice", "email": "alice@example.com",
            "groups": ["team-a", "admins"], "scope": "all offline", "client_id": "flytectl",
        })
    }
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

#[tokio::test]
async fn a_valid_token_gives_the_callers_identity() {
    let key = SigningKey::new("k1");
    let provider = Provider::start(&[&key]).await;
    let auth = provider.authenticator(30);
    auth.prepare().await.unwrap();
    let id = auth.validate(&key.sign(&provider.claims())).await.unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.name.as_deref(), Some("Alice"));
    assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    assert_eq!(id.groups, ["team-a", "admins"]);
    assert_eq!(id.scopes, ["all", "offline"]);
    assert_eq!(id.client_id.as_deref(), Some("flytectl"));
    // An audience list that contains ours is fine (RFC 7519 §4.1.3).
    let many = with(provider.claims(), "aud", json!(["other", "flyte-rs"]));
    assert!(auth.validate(&key.sign(&many)).await.is_ok());
}

#[tokio::test]
async fn wrong_audience_issuer_expired_and_unsigned_tokens_are_refused() {
    let key = SigningKey::new("k1");
    let provider = Provider::start(&[&key]).await;
    let auth = provider.authenticator(30);

    let aud = auth
        .validate(&key.sign(&with(provider.claims(), "aud", json!("other-api"))))
        .await
        .unwrap_err();
    assert!(
        matches!(&aud, AuthError::Invalid(m) if m.contains("\"other-api\"") && m.contains("`flyte-rs`")),
        "{aud}"
    );

    let iss = auth
        .validate(&key.sign(&with(provider.claims(), "iss", json!("http://evil"))))
        .await
        .unwrap_err();
    assert!(
        matches!(&iss, AuthError::Invalid(m) if m.contains("http://evil")),
        "{iss}"
    );

    let expired = with(provider.claims(), "exp", json!(unix_now() - 5));
    let err = auth.validate(&key.sign(&expired)).await.unwrap_err();
    assert!(matches!(err, AuthError::Expired(s) if s >= 5), "{err}");

    let future = with(provider.claims(), "nbf", json!(unix_now() + 300));
    let err = auth.validate(&key.sign(&future)).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Invalid(m) if m.contains("nbf")),
        "{err}"
    );

    let mut no_sub = provider.claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    let err = auth.validate(&key.sign(&no_sub)).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Invalid(m) if m.contains("sub")),
        "{err}"
    );

    // Signed by a key the provider does not publish, under a published kid.
    let forger = SigningKey::new("k1");
    let err = auth
        .validate(&forger.sign(&provider.claims()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::Invalid(m) if m.contains("signature")),
        "{err}"
    );

    // HS256 with a guessable secret: never accepted, whatever the key.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &provider.claims(),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    let err = auth.validate(&hs).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Invalid(m) if m.contains("HS256")),
        "{err}"
    );

    let err = auth.validate("not-a-jwt").await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Invalid(m) if m.contains("not a JWT")),
        "{err}"
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_accepted() {
    let old = SigningKey::new("old");
    let provider = Provider::start(&[&old]).await;
    let auth = provider.authenticator(0);
    auth.prepare().await.unwrap();
    assert!(auth.validate(&old.sign(&provider.claims())).await.is_ok());
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 1);

    let new = SigningKey::new("new");
    provider.publish(&[&new, &old]);
    let id = auth.validate(&new.sign(&provider.claims())).await.unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 2);
    // Known keys need no fetch.
    assert!(auth.validate(&old.sign(&provider.claims())).await.is_ok());
    assert!(auth.validate(&new.sign(&provider.claims())).await.is_ok());
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_key_the_provider_withdraws_is_refused_once_the_keys_are_old() {
    let key = SigningKey::new("k1");
    let provider = Provider::start(&[&key]).await;
    let auth = provider.authenticator_with(AuthConfig {
        jwks_min_refresh_secs: 0,
        jwks_max_age_secs: 0,
        ..AuthConfig::default()
    });
    assert!(auth.validate(&key.sign(&provider.claims())).await.is_ok());
    provider.publish(&[]);
    let err = auth
        .validate(&key.sign(&provider.claims()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::Invalid(m) if m.contains("does not publish")),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_whose_algorithm_is_not_its_keys_is_refused() {
    let key = SigningKey::new("k1");
    let provider = Provider::start(&[&key]).await;
    let auth = provider.authenticator(3600);
    // The Ed25519 key says EdDSA; a token naming it under ES256 finds no key.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let parts: Vec<String> = key
        .sign(&provider.claims())
        .split('.')
        .map(String::from)
        .collect();
    let es_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&header).unwrap());
    let token = format!("{es_header}.{}.{}", parts[1], parts[2]);
    let err = auth.validate(&token).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Invalid(m) if m.contains("does not publish")),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_keys_do_not_make_the_provider_be_asked_more_than_once_a_period() {
    let key = SigningKey::new("k1");
    let provider = Provider::start(&[&key]).await;
    let auth = provider.authenticator(3600);
    auth.prepare().await.unwrap();
    for i in 0..5 {
        let stranger = SigningKey::new(&format!("unknown-{i}"));
        let err = auth
            .validate(&stranger.sign(&provider.claims()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AuthError::Invalid(m) if m.contains("does not publish")),
            "{err}"
        );
    }
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable_not_unauthenticated() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let auth = Authenticator::new(AuthConfig {
        enabled: true,
        issuer: Some(issuer),
        audience: Some("flyte-rs".into()),
        ..AuthConfig::default()
    })
    .unwrap();
    let key = SigningKey::new("k1");
    let token = key.sign(&json!({"sub": "a"}));
    let err = auth.validate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::ProviderUnavailable(_)), "{err}");
    assert!(matches!(
        auth.prepare().await.unwrap_err(),
        AuthError::ProviderUnavailable(_)
    ));
}

#[tokio::test]
async fn the_token_comes_from_authorization_or_the_configured_metadata_key() {
    let auth = Authenticator::new(AuthConfig {
        enabled: true,
        issuer: Some("http://127.0.0.1:1".into()),
        audience: Some("flyte-rs".into()),
        ..AuthConfig::default()
    })
    .unwrap();
    let mut h = http::HeaderMap::new();
    assert!(matches!(
        auth.token_from_headers(&h),
        Err(AuthError::Missing { .. })
    ));
    h.insert("flyte-authorization", "Bearer abc".parse().unwrap());
    assert_eq!(auth.token_from_headers(&h), Ok("abc"));
    let mut h = http::HeaderMap::new();
    h.insert("authorization", "bearer xyz".parse().unwrap());
    assert_eq!(auth.token_from_headers(&h), Ok("xyz"));
    h.insert("authorization", "Bearer ".parse().unwrap());
    assert!(matches!(
        auth.token_from_headers(&h),
        Err(AuthError::Invalid(_))
    ));
    // Basic credentials are not a token.
    h.insert("authorization", "Basic dTpw".parse().unwrap());
    assert!(matches!(
        auth.token_from_headers(&h),
        Err(AuthError::Missing { .. })
    ));
}

#[test]
fn the_config_names_what_is_missing_and_exempts_by_path() {
    let on = AuthConfig {
        enabled: true,
        ..AuthConfig::default()
    };
    assert!(on.validate().unwrap_err().starts_with("auth.issuer"));
    let no_aud = AuthConfig {
        issuer: Some("https://idp".into()),
        ..on.clone()
    };
    assert!(no_aud.validate().unwrap_err().starts_with("auth.audience"));
    let bad = AuthConfig {
        issuer: Some("idp.example.com".into()),
        ..on
    };
    assert!(bad.validate().unwrap_err().contains("not an http(s) URL"));
    assert!(AuthConfig::default().validate().is_ok());

    let c = AuthConfig::default();
    assert!(c.is_exempt("/healthcheck"));
    assert!(c.is_exempt("/.well-known/oauth-authorization-server"));
    assert!(c.is_exempt("/flyteidl.service.AuthMetadataService/GetPublicClientConfig"));
    assert!(!c.is_exempt("/healthcheck/x"));
    assert!(!c.is_exempt("/me"));
    assert!(!c.is_exempt("/api/v1/projects"));
    assert!(!c.is_exempt("/flyteidl.service.AdminService/ListProjects"));
}
