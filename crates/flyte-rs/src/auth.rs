//! `auth`: authentication with an OpenID Connect provider around the whole application
//! (docs/auth.md). The checks are crates/flyte-auth's, the edge flyte_admin::auth's.

use std::sync::Arc;

use axum::Router;
use flyte_auth::{Authenticator, TaskScope, TaskTokens};

use crate::config::Config;

/// `app` with the auth contract's routes and every route behind the token check when
/// `auth.enabled`; else `app` as it is, with a warning when other machines can reach it.
pub async fn wrap(
    config: &Config,
    app: Router,
    public_url: &str,
    store: Arc<dyn flyte_store::MetadataStore>,
) -> anyhow::Result<Router> {
    if !config.auth.enabled {
        if !config.server.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %config.server.listen,
                "AUTHENTICATION IS OFF on an address other machines can reach: anyone who can \
                 connect can register, run and delete anything. Set auth.enabled with an \
                 OpenID Connect provider (docs/auth.md)"
            );
        }
        return Ok(app);
    }
    let mut auth = Authenticator::new(config.auth.clone()).map_err(anyhow::Error::msg)?;
    if let Some(tokens) = task_tokens(config)? {
        auth = auth.with_task_tokens(tokens);
    }
    let auth = Arc::new(auth);
    // Not fatal: the provider may start after this server; calls meanwhile answer UNAVAILABLE
    // and the discovery is tried again.
    match auth.prepare().await {
        Ok(()) => tracing::info!(
            issuer = auth.issuer(),
            audience = auth.audience(),
            "authentication on: every call needs an access token from the issuer"
        ),
        Err(err) => tracing::warn!(
            issuer = auth.issuer(),
            error = %err,
            "authentication on, but the identity provider cannot be reached yet; calls are \
             answered UNAVAILABLE until it can"
        ),
    }
    let app = app.merge(flyte_admin::auth::router(
        auth.clone(),
        public_url,
        config.server.max_request_bytes,
    ));
    // The console signs in through the provider and keeps a sealed session cookie.
    let key_file = config
        .auth
        .session
        .key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("session.key"));
    let key =
        flyte_auth::session::SessionKey::load_or_create(&key_file).map_err(anyhow::Error::msg)?;
    let redirect_uri = config
        .auth
        .console
        .redirect_uri
        .clone()
        .unwrap_or_else(|| format!("{}/callback", public_url.trim_end_matches('/')));
    let secure = config
        .auth
        .session
        .secure_cookies
        .unwrap_or_else(|| public_url.starts_with("https:"));
    let login = Arc::new(flyte_admin::auth::login::ConsoleLogin::new(
        auth.clone(),
        key,
        config.auth.console.clone(),
        redirect_uri,
        secure,
    ));
    tracing::info!(
        client_id = login.console.client_id,
        redirect_uri = login.redirect_uri,
        "console login through the identity provider"
    );
    let app = app.merge(flyte_admin::auth::login::router(login.clone()));
    // Roles per project (docs/auth.md, docs/adr-010-authorization.md); off: any valid token
    // may do anything, as before. Mutating calls are audited either way.
    let authorizer = config.auth.authorization.enabled.then(|| {
        tracing::info!(
            bindings = config.auth.authorization.bindings.len(),
            platform_admins = config.auth.authorization.platform_admins.len(),
            "authorization on: every call is checked against the roles"
        );
        flyte_auth::Authorizer::new(config.auth.authorization.clone())
    });
    // Bindings made over the API: read now, then every reload_secs (other replicas' changes).
    let audit = (config.auth.audit_retention_days > 0).then(|| {
        flyte_admin::auth::audit::AuditSink::start(
            store.clone(),
            std::time::Duration::from_secs(config.auth.audit_retention_days * 86_400),
        )
    });
    let bindings = flyte_admin::auth::bindings::BindingsApi {
        store,
        authorizer: authorizer.clone(),
    };
    if authorizer.is_some() {
        match bindings.reload().await {
            Ok(n) => tracing::info!(stored_bindings = n, "role bindings read from the store"),
            Err(err) => tracing::warn!(error = %err, "cannot read the stored role bindings yet"),
        }
        bindings
            .clone()
            .spawn_reload(std::time::Duration::from_secs(
                config.auth.authorization.reload_secs.max(1),
            ));
    }
    let app = app.merge(flyte_admin::auth::bindings::router(bindings));
    let authz = Some(Arc::new(flyte_admin::authz::Enforcement {
        authorizer,
        max_request_bytes: config.server.max_request_bytes,
    }));
    Ok(flyte_admin::auth::protect_audited(
        app,
        auth,
        authz,
        Some(login),
        audit,
    ))
}

/// The server's task-token key (`auth.task_tokens`), when authentication is on and tasks get
/// tokens: loaded (or made) from `auth.task_tokens.key_file`, default
/// `<data_dir>/task-token.key`.
pub fn task_tokens(config: &Config) -> anyhow::Result<Option<Arc<TaskTokens>>> {
    let t = &config.auth.task_tokens;
    if !config.auth.enabled || !t.enabled {
        return Ok(None);
    }
    let key_file = t
        .key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("task-token.key"));
    let tokens = TaskTokens::load_or_create(
        &key_file,
        config.auth.audience.as_deref().unwrap_or_default(),
        std::time::Duration::from_secs(t.ttl_secs.max(60)),
        config.auth.leeway_secs,
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Some(Arc::new(tokens)))
}

/// Gives every attempt a token for its execution (docs/auth.md, "Tasks that call the
/// platform").
struct TaskCredentials(Arc<TaskTokens>);

impl flyte_engine::config::AttemptCredentials for TaskCredentials {
    fn env(
        &self,
        key: &flyte_engine::backend::AttemptKey,
        timeout: Option<std::time::Duration>,
    ) -> Vec<(String, String)> {
        let scope = TaskScope {
            project: key.project.clone(),
            domain: key.domain.clone(),
            execution: key.execution.clone(),
            attempt: format!("{}/{}", key.node_id, key.retry_attempt),
        };
        self.0.task_env(&scope, timeout)
    }
}

/// The engine's [`flyte_engine::config::AttemptCredentials`] when tasks get tokens.
pub fn attempt_credentials(
    config: &Config,
) -> anyhow::Result<Option<Arc<dyn flyte_engine::config::AttemptCredentials>>> {
    Ok(task_tokens(config)?.map(|t| {
        tracing::info!(
            ttl_secs = config.auth.task_tokens.ttl_secs,
            "task identity on: every task attempt gets a token for its execution's project \
             and domain"
        );
        Arc::new(TaskCredentials(t)) as Arc<dyn flyte_engine::config::AttemptCredentials>
    }))
}
