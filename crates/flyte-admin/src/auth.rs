//! Authentication at the edge (docs/auth.md): one layer in front of every route of the port
//! (gRPC and REST alike) and Flyte's auth contract for clients: `AuthMetadataService`
//! (`GetOAuth2Metadata`, `GetPublicClientConfig`), `IdentityService.UserInfo`, and the
//! `/.well-known/…` documents.
//!
//! With an external provider flyteadmin points clients at the provider's own endpoints
//! (`auth/authzserver/metadata_provider.go`): so does this, from the provider's discovery
//! document. Token checks are `flyte_auth::Authenticator`'s.
//!
//! UNAUTHENTICATED (HTTP 401) is answered only when a call that needs a token has none, or
//! one that fails a check: flytekit answers it by logging in (its auth is lazy, the first
//! call goes without a token). When the provider cannot be reached to check a token, the
//! answer is UNAVAILABLE (503), not a login prompt.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flyte_auth::{AuthError, Authenticator, Identity};
use flyteidl::service::auth_metadata_service_server::{
    AuthMetadataService, AuthMetadataServiceServer,
};
use flyteidl::service::identity_service_server::{IdentityService, IdentityServiceServer};
use flyteidl::service::{
    OAuth2MetadataRequest, OAuth2MetadataResponse, PublicClientAuthConfigRequest,
    PublicClientAuthConfigResponse, UserInfoRequest, UserInfoResponse,
};
use tower::Layer;

use crate::error::{AdminError, http_status_for};

pub mod audit;
pub mod bindings;
pub mod login;
use crate::gateway::{Gateway, error_response};

pub use crate::router::metrics::AUTH_REFUSED_TOTAL;

/// The auth services of the contract. Cheap to clone.
#[derive(Clone)]
pub struct AuthApi {
    auth: Arc<Authenticator>,
    /// flyteadmin's `service_http_endpoint`: where the server's HTTP API is.
    public_url: String,
}

/// The routes of the auth contract: the gRPC services and their REST bindings
/// (`/.well-known/oauth-authorization-server`, `/config/v1/flyte_client`, `/me`, from
/// flyteidl's `google.api.http` rules) and `/.well-known/openid-configuration`.
pub fn router(auth: Arc<Authenticator>, public_url: &str, max_request_bytes: usize) -> Router {
    let api = AuthApi {
        auth,
        public_url: public_url.to_owned(),
    };
    let fidelity = crate::fidelity::layer(max_request_bytes);
    let grpc = crate::router::add_grpc(
        Router::new(),
        fidelity.layer(AuthMetadataServiceServer::new(api.clone())),
    );
    let grpc = crate::router::add_grpc(
        grpc,
        fidelity.layer(IdentityServiceServer::new(api.clone())),
    );
    // The REST bindings go through the gateway like every /api/v1 call: same transcoding,
    // same errors.
    let gateway = Gateway::new(grpc.clone(), max_request_bytes);
    let rest = move |req: Request| {
        let gateway = gateway.clone();
        async move { gateway.handle(req).await }
    };
    let discovery = move || {
        let api = api.clone();
        async move { api.discovery_document().await }
    };
    grpc.route("/config/v1/flyte_client", get(rest.clone()))
        .route("/me", get(rest))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery.clone()),
        )
        .route("/.well-known/openid-configuration", get(discovery))
}

impl AuthApi {
    /// The provider's discovery document as it serves it: an RFC 8414 document, whose
    /// endpoints are the provider's (flytekit's and flytectl's HTTP discovery read it).
    async fn discovery_document(&self) -> Response {
        match self.auth.metadata().await {
            Ok(m) => axum::Json(m.document.clone()).into_response(),
            Err(err) => refusal_http(AdminError::from(err)),
        }
    }
}

#[tonic::async_trait]
impl AuthMetadataService for AuthApi {
    async fn get_o_auth2_metadata(
        &self,
        _request: tonic::Request<OAuth2MetadataRequest>,
    ) -> Result<tonic::Response<OAuth2MetadataResponse>, tonic::Status> {
        let m = self.auth.metadata().await.map_err(status)?;
        Ok(tonic::Response::new(OAuth2MetadataResponse {
            issuer: m.issuer.clone(),
            authorization_endpoint: m.authorization_endpoint.clone(),
            token_endpoint: m.token_endpoint.clone(),
            response_types_supported: m.list("response_types_supported"),
            scopes_supported: m.list("scopes_supported"),
            token_endpoint_auth_methods_supported: m.list("token_endpoint_auth_methods_supported"),
            jwks_uri: m.jwks_uri.clone(),
            code_challenge_methods_supported: m.list("code_challenge_methods_supported"),
            grant_types_supported: m.list("grant_types_supported"),
            device_authorization_endpoint: m.device_authorization_endpoint.clone(),
        }))
    }

    async fn get_public_client_config(
        &self,
        _request: tonic::Request<PublicClientAuthConfigRequest>,
    ) -> Result<tonic::Response<PublicClientAuthConfigResponse>, tonic::Status> {
        let c = self.auth.config();
        Ok(tonic::Response::new(PublicClientAuthConfigResponse {
            client_id: c.client_id.clone(),
            redirect_uri: c.redirect_uri.clone(),
            scopes: c.scopes.clone(),
            authorization_metadata_key: c.authorization_metadata_key.clone(),
            service_http_endpoint: self.public_url.clone(),
            audience: self.auth.audience().to_owned(),
        }))
    }
}

#[tonic::async_trait]
impl IdentityService for AuthApi {
    async fn user_info(
        &self,
        request: tonic::Request<UserInfoRequest>,
    ) -> Result<tonic::Response<UserInfoResponse>, tonic::Status> {
        // The layer put it there; without it the path was exempted by configuration.
        let Some(id) = request.extensions().get::<Identity>() else {
            return Err(status(AuthError::Missing {
                issuer: self.auth.issuer().to_owned(),
            }));
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Ok(tonic::Response::new(UserInfoResponse {
            subject: id.subject.clone(),
            name: text(&id.name),
            preferred_username: text(&id.preferred_username),
            given_name: text(&id.given_name),
            family_name: text(&id.family_name),
            email: text(&id.email),
            picture: text(&id.picture),
            // Every claim of the token (groups among them), as flyteadmin passes the
            // provider's claims on.
            additional_claims: Some(pbjson_types::Struct {
                fields: id
                    .claims
                    .iter()
                    .map(|(k, v)| (k.clone(), proto_value(v)))
                    .collect(),
            }),
        }))
    }
}

fn proto_value(v: &serde_json::Value) -> pbjson_types::Value {
    use pbjson_types::value::Kind;
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => Kind::ListValue(pbjson_types::ListValue {
            values: items.iter().map(proto_value).collect(),
        }),
        J::Object(map) => Kind::StructValue(pbjson_types::Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), proto_value(v)))
                .collect(),
        }),
    };
    pbjson_types::Value { kind: Some(kind) }
}

fn status(err: AuthError) -> tonic::Status {
    let (code, message) = AdminError::from(err).answer();
    tonic::Status::new(code, message)
}

/// Requires a valid token on every route of `app` but the exempt paths, and puts the
/// caller's [`Identity`] into the request's extensions.
pub fn protect(app: Router, auth: Arc<Authenticator>) -> Router {
    protect_with(app, auth, None)
}

/// [`protect`], and with `authz` (authorization on) every call checked against the roles:
/// the [`crate::authz::Enforcement`] goes into each request for the gRPC services' check,
/// and the plain-HTTP routes that name a project are checked here.
pub fn protect_with(
    app: Router,
    auth: Arc<Authenticator>,
    authz: Option<Arc<crate::authz::Enforcement>>,
) -> Router {
    protect_all(app, auth, authz, None)
}

/// [`protect_with`], and with `login` the console's session cookie accepted instead of a
/// bearer token (state-changing calls then need the CSRF header), and a browser opening a
/// page without either sent to `/login`.
pub fn protect_all(
    app: Router,
    auth: Arc<Authenticator>,
    authz: Option<Arc<crate::authz::Enforcement>>,
    login: Option<Arc<login::ConsoleLogin>>,
) -> Router {
    protect_audited(app, auth, authz, login, None)
}

/// [`protect_all`], and with `audit` every audited call also queued for the store.
pub fn protect_audited(
    app: Router,
    auth: Arc<Authenticator>,
    authz: Option<Arc<crate::authz::Enforcement>>,
    login: Option<Arc<login::ConsoleLogin>>,
    audit: Option<Arc<audit::AuditSink>>,
) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        Edge {
            auth,
            authz,
            login,
            audit,
        },
        enforce,
    ))
}

#[derive(Clone)]
struct Edge {
    auth: Arc<Authenticator>,
    authz: Option<Arc<crate::authz::Enforcement>>,
    login: Option<Arc<login::ConsoleLogin>>,
    audit: Option<Arc<audit::AuditSink>>,
}

async fn enforce(State(edge): State<Edge>, mut req: Request, next: Next) -> Response {
    let auth = &edge.auth;
    if let Some(authz) = &edge.authz {
        req.extensions_mut().insert(authz.clone());
    }
    if let Some(audit) = &edge.audit {
        req.extensions_mut().insert(audit.clone());
    }
    if auth.config().is_exempt(req.uri().path())
        || (edge.login.is_some() && login::PATHS.contains(&req.uri().path()))
    {
        return next.run(req).await;
    }
    let mut result = auth.authenticate(req.headers()).await;
    // Set on the answer: a refreshed session, or a dead one cleared.
    let mut set_cookies = Vec::new();
    if let (Err(AuthError::Missing { .. }), Some(console)) = (&result, &edge.login)
        && let Some(by_cookie) = console.identify(req.headers()).await
    {
        result = match by_cookie {
            Ok((identity, session, refreshed)) => {
                if !login::csrf_ok(req.method(), req.headers(), &session) {
                    tracing::info!(
                        path = req.uri().path(),
                        subject = identity.subject,
                        "state-changing call by session cookie without the CSRF header"
                    );
                    return error_response(
                        http::StatusCode::FORBIDDEN,
                        tonic::Code::PermissionDenied,
                        &format!(
                            "a state-changing call authenticated by the console's session \
                             cookie must send the `{}` header with the `{}` cookie's value \
                             (cross-site request protection); API clients send a bearer token",
                            login::CSRF_HEADER,
                            login::CSRF_COOKIE
                        ),
                        Vec::new(),
                    );
                }
                set_cookies.extend(refreshed);
                Ok(identity)
            }
            Err(err) => {
                if !matches!(err, AuthError::ProviderUnavailable(_)) {
                    set_cookies.extend(console.cleared());
                }
                Err(err)
            }
        };
    }
    let mut response = match result {
        Ok(identity) => {
            if let Some(authz) = &edge.authz
                && !is_grpc(&req)
                && let Err(status) =
                    crate::authz::check_http(authz, Some(&identity), req.method(), req.uri().path())
            {
                tracing::info!(
                    path = req.uri().path(),
                    reason = status.message(),
                    "call refused by authorization"
                );
                return error_response(
                    http::StatusCode::FORBIDDEN,
                    status.code(),
                    status.message(),
                    Vec::new(),
                );
            }
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(AuthError::Missing { .. } | AuthError::Expired(_) | AuthError::Invalid(_))
            if edge.login.is_some()
                && !is_grpc(&req)
                && login::is_page_navigation(req.method(), req.headers()) =>
        {
            login::login_redirect(req.uri())
        }
        Err(err) => {
            let reason = match &err {
                AuthError::Missing { .. } => "missing",
                AuthError::Invalid(_) => "invalid",
                AuthError::Expired(_) => "expired",
                AuthError::ProviderUnavailable(_) => "provider_unavailable",
            };
            metrics::counter!(AUTH_REFUSED_TOTAL, "reason" => reason).increment(1);
            let path = req.uri().path();
            match &err {
                // flytekit's first call goes without a token, by design: not worth a line.
                AuthError::Missing { .. } => tracing::debug!(path, "call without a token"),
                AuthError::ProviderUnavailable(_) => {
                    tracing::warn!(path, error = %err, "cannot check a token")
                }
                _ => tracing::info!(path, error = %err, "token refused"),
            }
            let err = AdminError::from(err);
            if is_grpc(&req) {
                let (code, message) = err.answer();
                tonic::Status::new(code, message)
                    .into_http::<Body>()
                    .into_response()
            } else {
                refusal_http(err)
            }
        }
    };
    for c in set_cookies {
        response.headers_mut().append(http::header::SET_COOKIE, c);
    }
    response
}

fn refusal_http(err: AdminError) -> Response {
    let (code, message) = err.answer();
    let mut response = error_response(http_status_for(code), code, &message, Vec::new());
    if code == tonic::Code::Unauthenticated {
        // RFC 6750 §3.
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

fn is_grpc(req: &Request) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}
