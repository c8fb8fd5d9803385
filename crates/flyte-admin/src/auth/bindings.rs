//! Role bindings over the API (docs/auth.md, "Bindings over the API"):
//! `GET/POST /api/v1/auth/bindings`, `DELETE /api/v1/auth/bindings/{id}`, for platform admins.
//! Stored bindings apply beside the configuration's (shown read-only); every replica reloads
//! them from the store every `auth.authorization.reload_secs`, and the replica that made a
//! change applies it at once.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use flyte_auth::authz::Binding;
use flyte_auth::{Authorizer, Identity, Permission, Role, Target};
use flyte_store::{MetadataStore, RoleBindingRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{AdminError, http_status_for};
use crate::gateway::error_response;

/// The path of the collection.
pub const PATH: &str = "/api/v1/auth/bindings";
/// The stored audit trail (crate::auth::audit).
pub const AUDIT_PATH: &str = "/api/v1/auth/audit";

/// The bindings API's state. Cheap to clone.
#[derive(Clone)]
pub struct BindingsApi {
    pub store: Arc<dyn MetadataStore>,
    /// `None`: authorization is off; the API answers FAILED_PRECONDITION.
    pub authorizer: Option<Authorizer>,
}

/// A binding as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBinding {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    pub role: String,
    pub project: String,
    #[serde(default)]
    pub domain: Option<String>,
}

pub fn router(api: BindingsApi) -> Router {
    Router::new()
        .route(PATH, get(list).post(create))
        .route(&format!("{PATH}/{{id}}"), delete(remove))
        .route(AUDIT_PATH, get(audit_list))
        .with_state(api)
}

/// The stored bindings as the policy reads them (a row with an unknown role is skipped).
pub fn to_policy(records: &[RoleBindingRecord]) -> Vec<Binding> {
    records
        .iter()
        .filter_map(|r| {
            let role = Role::parse(&r.role)?;
            let (user, group) = match r.subject_kind.as_str() {
                "user" => (Some(r.subject.clone()), None),
                "group" => (None, Some(r.subject.clone())),
                _ => return None,
            };
            Some(Binding {
                user,
                group,
                role,
                project: r.project.clone(),
                domain: (!r.domain.is_empty()).then(|| r.domain.clone()),
            })
        })
        .collect()
}

impl BindingsApi {
    /// Reads the stored bindings into the policy.
    pub async fn reload(&self) -> Result<usize, AdminError> {
        let Some(authorizer) = &self.authorizer else {
            return Ok(0);
        };
        let records = self.store.list_role_bindings().await?;
        authorizer.set_stored(to_policy(&records));
        Ok(records.len())
    }

    /// Reloads every `every` until the process ends (other replicas' changes).
    pub fn spawn_reload(self, every: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = self.reload().await {
                    tracing::warn!(error = %err, "cannot reload the role bindings; the last ones stay in force");
                }
            }
        });
    }

    /// The caller must be a platform admin; the refusal otherwise.
    fn admin<'a>(&'a self, id: Option<&Identity>) -> Result<&'a Authorizer, Box<Response>> {
        let Some(authorizer) = &self.authorizer else {
            return Err(Box::new(answer(AdminError::FailedPrecondition(
                "role bindings need authorization on (auth.authorization.enabled)".into(),
            ))));
        };
        let Some(id) = id else {
            return Err(Box::new(forbidden(format!(
                "{PATH} needs the `admin-platform` permission, and this path is exempt from \
                 authentication (auth.exempt_paths)"
            ))));
        };
        authorizer
            .check(id, Permission::AdminPlatform, Target::Platform)
            .map_err(|d| Box::new(forbidden(d.to_string())))?;
        Ok(authorizer)
    }
}

fn answer(err: AdminError) -> Response {
    let (code, message) = err.answer();
    error_response(http_status_for(code), code, &message, Vec::new())
}

fn forbidden(message: String) -> Response {
    error_response(
        http::StatusCode::FORBIDDEN,
        tonic::Code::PermissionDenied,
        &message,
        Vec::new(),
    )
}

fn shown(b: &Binding) -> Value {
    let mut v = json!({
        "role": b.role.as_str(),
        "project": b.project,
        "domain": b.domain.clone().unwrap_or_default(),
    });
    if let Some(u) = &b.user {
        v["user"] = json!(u);
    }
    if let Some(g) = &b.group {
        v["group"] = json!(g);
    }
    v
}

async fn list(State(api): State<BindingsApi>, id: Option<Extension<Identity>>) -> Response {
    let authorizer = match api.admin(id.as_ref().map(|e| &e.0)) {
        Ok(a) => a,
        Err(refused) => return *refused,
    };
    let records = match api.store.list_role_bindings().await {
        Ok(r) => r,
        Err(e) => return answer(e.into()),
    };
    let stored: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut v = json!({
                "id": r.id.to_string(),
                "role": r.role,
                "project": r.project,
                "domain": r.domain,
                "createdBy": r.created_by,
                "createdAt": r.created_at.to_rfc3339(),
            });
            v[r.subject_kind.as_str()] = json!(r.subject);
            v
        })
        .collect();
    let configured: Vec<Value> = authorizer.config().bindings.iter().map(shown).collect();
    Json(json!({
        "bindings": stored,
        // Read-only here: they change with the configuration.
        "configured": configured,
        "platformAdmins": authorizer.config().platform_admins,
    }))
    .into_response()
}

async fn create(
    State(api): State<BindingsApi>,
    id: Option<Extension<Identity>>,
    body: Result<Json<NewBinding>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(refused) = api.admin(id.as_ref().map(|e| &e.0)) {
        return *refused;
    }
    let new = match body {
        Ok(Json(b)) => b,
        Err(e) => {
            return answer(AdminError::InvalidArgument(format!(
                "a role binding is {{\"user\" or \"group\", \"role\", \"project\", \
                 \"domain\" (optional)}}: {}",
                e.body_text()
            )));
        }
    };
    let (kind, subject) = match (&new.user, &new.group) {
        (Some(u), None) if !u.trim().is_empty() => ("user", u.trim()),
        (None, Some(g)) if !g.trim().is_empty() => ("group", g.trim()),
        _ => {
            return answer(AdminError::InvalidArgument(
                "set exactly one of `user` and `group` (non-empty)".into(),
            ));
        }
    };
    let Some(role) = Role::parse(&new.role) else {
        return answer(AdminError::InvalidArgument(format!(
            "role `{}` is none of viewer, executor, registrant, admin",
            new.role
        )));
    };
    if new.project.trim().is_empty() {
        return answer(AdminError::InvalidArgument(
            "project: empty (a project name, or `*`)".into(),
        ));
    }
    let record = RoleBindingRecord {
        id: 0,
        subject_kind: kind.into(),
        subject: subject.into(),
        role: role.as_str().into(),
        project: new.project.trim().into(),
        domain: new.domain.unwrap_or_default().trim().into(),
        created_by: id.map(|e| e.0.subject).unwrap_or_default(),
        created_at: chrono::Utc::now(),
    };
    let created = match api.store.create_role_binding(record).await {
        Ok(c) => c,
        Err(e) => return answer(e.into()),
    };
    tracing::info!(
        target: "audit",
        subject = created.created_by,
        binding = created.id,
        kind = created.subject_kind,
        bound = created.subject,
        role = created.role,
        project = created.project,
        domain = created.domain,
        "role binding created"
    );
    if let Err(e) = api.reload().await {
        return answer(e);
    }
    Json(json!({ "id": created.id.to_string() })).into_response()
}

async fn remove(
    State(api): State<BindingsApi>,
    id: Option<Extension<Identity>>,
    Path(binding): Path<String>,
) -> Response {
    if let Err(refused) = api.admin(id.as_ref().map(|e| &e.0)) {
        return *refused;
    }
    let Ok(binding) = binding.parse::<i64>() else {
        return answer(AdminError::InvalidArgument(format!(
            "`{binding}` is not a binding id (GET {PATH} lists them)"
        )));
    };
    if let Err(e) = api.store.delete_role_binding(binding).await {
        return answer(e.into());
    }
    tracing::info!(
        target: "audit",
        subject = id.map(|e| e.0.subject).unwrap_or_default(),
        binding,
        "role binding deleted"
    );
    if let Err(e) = api.reload().await {
        return answer(e);
    }
    Json(json!({})).into_response()
}

/// `GET /api/v1/auth/audit` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    /// RFC 3339: records at or after it.
    #[serde(default)]
    pub since: Option<String>,
    /// Records per page (default 100, at most 1,000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The previous page's `token`: the next (older) page.
    #[serde(default)]
    pub token: Option<String>,
}

/// The audited calls, newest first, paged. A platform admin reads all; a project's admin
/// (`admin-project`) reads that project's (`project` required); authorization off: any
/// authenticated caller.
async fn audit_list(
    State(api): State<BindingsApi>,
    id: Option<Extension<Identity>>,
    params: Result<axum::extract::Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = match params {
        Ok(axum::extract::Query(p)) => p,
        Err(e) => {
            return answer(AdminError::InvalidArgument(format!(
                "{AUDIT_PATH} takes project, domain, since (RFC 3339), limit and token: {}",
                e.body_text()
            )));
        }
    };
    let id = id.map(|e| e.0);
    if let Some(authorizer) = &api.authorizer {
        let Some(who) = &id else {
            return forbidden(format!(
                "{AUDIT_PATH} needs an authenticated caller, and this path is exempt from \
                 authentication (auth.exempt_paths)"
            ));
        };
        let allowed = match p.project.as_deref() {
            Some(project) if !project.is_empty() => authorizer.check(
                who,
                Permission::AdminProject,
                Target::Project {
                    project,
                    domain: p.domain.as_deref().filter(|d| !d.is_empty()),
                },
            ),
            _ => authorizer.check(who, Permission::AdminPlatform, Target::Platform),
        };
        if let Err(denied) = allowed {
            return forbidden(denied.to_string());
        }
    }
    let since = match p.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                return answer(AdminError::InvalidArgument(format!(
                    "since=`{s}` is not an RFC 3339 time (2026-12-07T19:00:00Z): {e}"
                )));
            }
        },
    };
    let before_id = match p.token.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match t.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return answer(AdminError::InvalidArgument(format!(
                    "token=`{t}` is not a token this server gave"
                )));
            }
        },
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let query = flyte_store::AuditQuery {
        project: p.project.filter(|s| !s.is_empty()),
        domain: p.domain.filter(|s| !s.is_empty()),
        since,
        before_id,
        limit,
    };
    let records = match api.store.list_audit_records(&query).await {
        Ok(r) => r,
        Err(e) => return answer(e.into()),
    };
    let token = if records.len() as u32 == limit {
        records.last().map(|r| r.id.to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    let records: Vec<Value> = records
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id.to_string(),
                "at": r.at.to_rfc3339(),
                "subject": r.subject,
                "email": r.email,
                "service": r.service,
                "method": r.method,
                "project": r.project,
                "domain": r.domain,
                "name": r.name,
                "code": r.code,
            })
        })
        .collect();
    Json(json!({ "records": records, "token": token })).into_response()
}
