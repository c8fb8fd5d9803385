//! The task output cache over REST, a Flyte-RS addition (flyteidl has no RPC that evicts by
//! task, cache version or execution): `GET /api/v1/cache/{project}/{domain}?task=…
//! [&cache_version=…] | ?execution=…` lists entries, `DELETE` on the same URL evicts them.
//! `flyte-rs cache list|evict` does the same against the store directly.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flyte_cache::CacheScope;
use flyte_store::{CatalogPage, ExecutionKey};
use serde::Deserialize;

use crate::error::{AdminError, http_status_for};
use crate::service::dataproxy::json_error;
use crate::state::AdminState;

pub const CACHE_ROUTE: &str = "/api/v1/cache/{project}/{domain}";

#[derive(Debug, Deserialize)]
pub struct CacheQuery {
    task: Option<String>,
    cache_version: Option<String>,
    execution: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    token: String,
}

fn scope(project: String, domain: String, q: &CacheQuery) -> Result<CacheScope, AdminError> {
    match (&q.task, &q.cache_version, &q.execution) {
        (Some(name), None, None) => Ok(CacheScope::Task {
            project,
            domain,
            name: name.clone(),
        }),
        (Some(name), Some(v), None) => Ok(CacheScope::TaskVersion {
            project,
            domain,
            name: name.clone(),
            cache_version: v.clone(),
        }),
        (None, None, Some(name)) => Ok(CacheScope::Execution(ExecutionKey {
            project,
            domain,
            name: name.clone(),
        })),
        _ => Err(AdminError::invalid(
            "give `task` (optionally with `cache_version`) or `execution`, not both",
        )),
    }
}

fn error_response(err: AdminError) -> Response {
    let (code, message) = err.answer();
    json_error(code, http_status_for(code), message)
}

fn cache_error(err: flyte_cache::CacheError) -> AdminError {
    match err {
        flyte_cache::CacheError::Store(e) => e.into(),
        other => AdminError::Internal(other.to_string()),
    }
}

pub async fn list(
    State(state): State<AdminState>,
    Path((project, domain)): Path<(String, String)>,
    Query(q): Query<CacheQuery>,
) -> Response {
    let result = async {
        let scope = scope(project, domain, &q)?;
        let page = CatalogPage {
            limit: q.limit.unwrap_or(100).clamp(1, 10_000),
            token: q.token.clone(),
            ascending: false,
        };
        flyte_cache::list_entries(state.store.as_ref(), &scope, &page)
            .await
            .map_err(cache_error)
    }
    .await;
    match result {
        Ok(page) => {
            let entries: Vec<_> = page
                .items
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "dataset": e.key.dataset.to_string(),
                        "tag": e.key.tag,
                        "artifactId": e.artifact_id,
                        "outputs": e.output_names,
                        "sourceExecution": e.source_execution.as_ref().map(|x| x.name.clone()),
                        "createdAt": e.created_at.to_rfc3339(),
                    })
                })
                .collect();
            Json(serde_json::json!({ "entries": entries, "token": page.next_token }))
                .into_response()
        }
        Err(e) => error_response(e),
    }
}

pub async fn evict(
    State(state): State<AdminState>,
    Path((project, domain)): Path<(String, String)>,
    Query(q): Query<CacheQuery>,
) -> Response {
    let result = async {
        let scope = scope(project, domain, &q)?;
        flyte_cache::evict(state.store.as_ref(), &scope)
            .await
            .map_err(cache_error)
    }
    .await;
    match result {
        Ok(n) => (StatusCode::OK, Json(serde_json::json!({ "evicted": n }))).into_response(),
        Err(e) => error_response(e),
    }
}
