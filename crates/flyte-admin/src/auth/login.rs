//! The console's login through the provider (docs/auth.md, "The console"): `/login`,
//! `/callback`, `/logout`, and the session cookie the edge accepts instead of a bearer token.
//! The tokens and the sealing are flyte_auth::session's; this is the HTTP side: cookies,
//! redirects, CSRF.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flyte_auth::session::{self, LoginError, PendingLogin, Session, SessionKey};
use flyte_auth::{AuthError, Authenticator, ConsoleConfig, Identity};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

/// The sealed session: the provider's access and refresh tokens (HttpOnly).
pub const SESSION_COOKIE: &str = "flyte_session";
/// The login under way: state, nonce, PKCE verifier (HttpOnly, 10 minutes).
pub const LOGIN_COOKIE: &str = "flyte_login";
/// The CSRF token, readable by the console's script, which echoes it in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "flyte_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Paths served by [`router`]: never behind the token check.
pub const PATHS: &[&str] = &["/login", "/callback", "/logout"];

/// Where the console is when no page is named.
const HOME: &str = "/console/";

/// The console login's settings and key. Cheap to share (`Arc`).
pub struct ConsoleLogin {
    pub auth: Arc<Authenticator>,
    pub key: SessionKey,
    pub console: ConsoleConfig,
    /// The redirect URI registered with the provider (`<public URL>/callback`).
    pub redirect_uri: String,
    /// `Secure` on the cookies.
    pub secure: bool,
    /// Sessions refreshed lately, by the refresh token used: the console's parallel calls
    /// after an expiry refresh once (a provider that rotates refresh tokens would refuse,
    /// or revoke the session for, a second use of the old one).
    refreshed: tokio::sync::Mutex<HashMap<String, (Instant, Session)>>,
}

/// How long a refreshed session answers for the refresh token it came from.
const REFRESHED_KEPT: Duration = Duration::from_secs(60);

/// The routes `/login`, `/callback`, `/logout`.
pub fn router(login: Arc<ConsoleLogin>) -> Router {
    Router::new()
        .route("/login", get(start))
        .route("/callback", get(callback))
        .route("/logout", get(logout))
        .with_state(login)
}

#[derive(Deserialize)]
struct Start {
    redirect_url: Option<String>,
}

/// Only a path on this server: never another site (an open redirect).
fn local_path(url: Option<&str>) -> String {
    match url {
        Some(u) if u.starts_with('/') && !u.starts_with("//") && !u.contains('\\') => u.into(),
        _ => HOME.into(),
    }
}

async fn start(State(login): State<Arc<ConsoleLogin>>, Query(q): Query<Start>) -> Response {
    let pending = PendingLogin::new(&login.key, local_path(q.redirect_url.as_deref()));
    match session::authorization_url(&login.auth, &login.console, &login.redirect_uri, &pending)
        .await
    {
        Ok(url) => {
            let cookie = login.cookie(
                LOGIN_COOKIE,
                &login.key.seal(LOGIN_COOKIE, &pending),
                Some(session::LOGIN_TTL_SECS),
                true,
            );
            redirect(&url, vec![cookie])
        }
        Err(err) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("Cannot start the login: {}", escape(&err.to_string())),
        ),
    }
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(login): State<Arc<ConsoleLogin>>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let again = "<a href=\"/login\">Sign in again</a>";
    if let Some(error) = &q.error {
        let why = q.error_description.as_deref().unwrap_or("");
        tracing::info!(error, why, "console login refused by the identity provider");
        return page(
            StatusCode::UNAUTHORIZED,
            &format!(
                "The identity provider refused the login: {} {}. {again}",
                escape(error),
                escape(why)
            ),
        );
    }
    let pending: Option<PendingLogin> =
        cookie(&headers, LOGIN_COOKIE).and_then(|c| login.key.open(LOGIN_COOKIE, c));
    let Some(pending) = pending.filter(|p| !p.expired()) else {
        return page(
            StatusCode::BAD_REQUEST,
            &format!(
                "No login is under way in this browser (it took over {} minutes, or cookies \
                 are blocked for this site). {again}",
                session::LOGIN_TTL_SECS / 60
            ),
        );
    };
    if q.state.as_deref() != Some(pending.state.as_str()) {
        return page(
            StatusCode::BAD_REQUEST,
            &format!("This answer is not for the login this browser started (state). {again}"),
        );
    }
    let Some(code) = q.code.as_deref() else {
        return page(
            StatusCode::BAD_REQUEST,
            "The identity provider sent no authorization code.",
        );
    };
    match session::exchange_code(
        &login.auth,
        &login.console,
        &login.redirect_uri,
        &pending,
        code,
    )
    .await
    {
        Ok((tokens, identity)) => {
            tracing::info!(
                subject = identity.subject,
                email = identity.email.as_deref().unwrap_or(""),
                "console login"
            );
            let s = Session {
                access_token: tokens.access_token,
                refresh_token: tokens.refresh_token,
                csrf: login.key.random(24),
            };
            let cookies = vec![
                login.cookie(LOGIN_COOKIE, "", Some(0), true),
                login.cookie(CSRF_COOKIE, &s.csrf, None, false),
                login.session_cookie(&s),
            ];
            redirect(&pending.redirect, cookies)
        }
        Err(LoginError::Auth(err @ AuthError::ProviderUnavailable(_))) => {
            tracing::warn!(error = %err, "console login: the identity provider is unavailable");
            page(StatusCode::SERVICE_UNAVAILABLE, &escape(&err.to_string()))
        }
        Err(err) => {
            tracing::info!(error = %err, "console login failed");
            page(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "The login did not succeed: {}. {again}",
                    escape(&err.to_string())
                ),
            )
        }
    }
}

async fn logout(State(login): State<Arc<ConsoleLogin>>) -> Response {
    let mut response = page(
        StatusCode::OK,
        "You are signed out of Flyte. <a href=\"/login\">Sign in again</a>",
    );
    for c in login.cleared() {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

impl ConsoleLogin {
    pub fn new(
        auth: Arc<Authenticator>,
        key: SessionKey,
        console: ConsoleConfig,
        redirect_uri: String,
        secure: bool,
    ) -> Self {
        Self {
            auth,
            key,
            console,
            redirect_uri,
            secure,
            refreshed: Default::default(),
        }
    }

    fn cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Option<u64>,
        http_only: bool,
    ) -> HeaderValue {
        let mut c = format!("{name}={value}; Path=/; SameSite=Lax");
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if http_only {
            c.push_str("; HttpOnly");
        }
        if self.secure {
            c.push_str("; Secure");
        }
        // Sealed values are base64url; the rest are fixed names: always a valid header.
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn session_cookie(&self, s: &Session) -> HeaderValue {
        self.cookie(
            SESSION_COOKIE,
            &self.key.seal(SESSION_COOKIE, s),
            None,
            true,
        )
    }

    /// The cookies that end a session.
    pub fn cleared(&self) -> Vec<HeaderValue> {
        vec![
            self.cookie(SESSION_COOKIE, "", Some(0), true),
            self.cookie(CSRF_COOKIE, "", Some(0), false),
        ]
    }

    /// Who the session cookie in `headers` belongs to, if there is one: its access token,
    /// validated as a bearer token would be; when it expired, new tokens from the refresh
    /// token (then a new session cookie to set). `None`: no session cookie.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
    ) -> Option<Result<(Identity, Session, Option<HeaderValue>), AuthError>> {
        let sealed = cookie(headers, SESSION_COOKIE)?;
        let Some(s) = self.key.open::<Session>(SESSION_COOKIE, sealed) else {
            return Some(Err(AuthError::Invalid(
                "the console session cookie is not one this server made (a new session key?); \
                 sign in again"
                    .into(),
            )));
        };
        match self.auth.validate(&s.access_token).await {
            Ok(identity) => Some(Ok((identity, s, None))),
            Err(AuthError::Expired(ago)) => {
                let Some(refresh_token) = s.refresh_token.clone() else {
                    return Some(Err(AuthError::Expired(ago)));
                };
                // One refresh at a time (once per session and token lifetime: rare).
                let mut recent = self.refreshed.lock().await;
                recent.retain(|_, (at, _)| at.elapsed() < REFRESHED_KEPT);
                if let Some((_, done)) = recent.get(&refresh_token)
                    && let Ok(identity) = self.auth.validate(&done.access_token).await
                {
                    let done = done.clone();
                    let cookie = self.session_cookie(&done);
                    return Some(Ok((identity, done, Some(cookie))));
                }
                match session::refresh(&self.auth, &self.console, &refresh_token).await {
                    Ok((tokens, identity)) => {
                        tracing::debug!(subject = identity.subject, "console session refreshed");
                        let s = Session {
                            access_token: tokens.access_token,
                            // Providers that rotate refresh tokens send a new one.
                            refresh_token: tokens.refresh_token.or(s.refresh_token),
                            csrf: s.csrf,
                        };
                        recent.insert(refresh_token, (Instant::now(), s.clone()));
                        let cookie = self.session_cookie(&s);
                        Some(Ok((identity, s, Some(cookie))))
                    }
                    Err(LoginError::Auth(err)) => Some(Err(err)),
                    Err(LoginError::Refused(why)) => {
                        tracing::info!(why, "console session could not be refreshed");
                        Some(Err(AuthError::Expired(ago)))
                    }
                }
            }
            Err(err) => Some(Err(err)),
        }
    }
}

/// Whether a call authenticated by the session cookie may change state: safe methods
/// always; others only with the session's CSRF token in [`CSRF_HEADER`] (a page of another
/// site can make the browser send the cookie, never this header).
pub fn csrf_ok(method: &http::Method, headers: &HeaderMap, s: &Session) -> bool {
    if matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    ) {
        return true;
    }
    let Some(sent) = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes) else {
        return false;
    };
    let want = s.csrf.as_bytes();
    sent.len() == want.len()
        && !want.is_empty()
        && sent.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

/// A browser opening a page (not the console's script calling the API): sent to the login.
pub fn is_page_navigation(method: &http::Method, headers: &HeaderMap) -> bool {
    *method == http::Method::GET
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// `/login?redirect_url=<path and query of uri>`.
pub fn login_redirect(uri: &http::Uri) -> Response {
    let back = uri.path_and_query().map(|p| p.as_str()).unwrap_or(HOME);
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("redirect_url", back)
        .finish();
    redirect(&format!("/login?{q}"), Vec::new())
}

fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// A small page for the browser (the login's answers are read by people).
fn page(status: StatusCode, html: &str) -> Response {
    let body =
        format!("<!doctype html><meta charset=\"utf-8\"><title>Flyte</title><p>{html}</p>\n");
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Text for a page: what the provider or a URL says is never markup.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(
            local_path(Some("/console/projects?x=1")),
            "/console/projects?x=1"
        );
        for other in [
            None,
            Some("https://evil.example/"),
            Some("//evil.example/x"),
            Some("/\\evil.example"),
            Some("javascript:alert(1)"),
            Some(""),
        ] {
            assert_eq!(local_path(other), HOME, "{other:?}");
        }
    }

    #[test]
    fn cookies_and_the_csrf_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; flyte_csrf=tok"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("flyte_session=s; flyte_login="),
        );
        assert_eq!(cookie(&h, "flyte_session"), Some("s"));
        assert_eq!(cookie(&h, "flyte_csrf"), Some("tok"));
        assert_eq!(cookie(&h, "flyte_login"), None);
        assert_eq!(cookie(&h, "flyte"), None);
        let s = Session {
            access_token: String::new(),
            refresh_token: None,
            csrf: "tok".into(),
        };
        assert!(csrf_ok(&http::Method::GET, &h, &s));
        assert!(!csrf_ok(&http::Method::POST, &h, &s));
        h.insert(CSRF_HEADER, HeaderValue::from_static("tok2"));
        assert!(!csrf_ok(&http::Method::DELETE, &h, &s));
        h.insert(CSRF_HEADER, HeaderValue::from_static("tok"));
        assert!(csrf_ok(&http::Method::PUT, &h, &s));
        let empty = Session {
            csrf: String::new(),
            ..s
        };
        h.insert(CSRF_HEADER, HeaderValue::from_static(""));
        assert!(!csrf_ok(&http::Method::POST, &h, &empty));
    }
}
