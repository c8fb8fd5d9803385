//! Projects and domains (flyteadmin `project_manager.go`, `validation/project_validator.go`).
//! Domains are server configuration, attached to every project on the way out.

use chrono::Utc;
use flyte_core::filters::SortDirection;
use flyte_core::ids;
use flyte_store::{ListQuery, ProjectRecord, SortKey};
use flyteidl::admin::{
    Domain, GetDomainsResponse, Labels, Project, ProjectGetRequest, ProjectListRequest,
    ProjectRegisterRequest, ProjectRegisterResponse, ProjectUpdateResponse, Projects,
};
use prost::Message;

use super::common::{decode_stored, invalid, missing};
use super::lists::{self, ListFields, MAX_LIMIT};
use crate::error::{AdminError, AdminResult, quoted};
use crate::state::AdminState;

const MAX_NAME_LEN: usize = 64;
const MAX_DESCRIPTION_LEN: usize = 300;
const MAX_LABELS: usize = 16;

const FIELDS: ListFields = ListFields {
    what: "projects",
    prefixes: &["project"],
    filter_fields: &["identifier", "name", "state", "created_at", "updated_at"],
    sort_fields: &["name", "state", "created_at", "updated_at", "identifier"],
};

pub(super) fn domains(state: &AdminState) -> Vec<Domain> {
    state
        .config
        .domains
        .iter()
        .map(|(id, name)| Domain {
            id: id.clone(),
            name: name.clone(),
        })
        .collect()
}

pub(super) fn get_domains(state: &AdminState) -> tonic::Response<GetDomainsResponse> {
    tonic::Response::new(GetDomainsResponse {
        domains: domains(state),
    })
}

pub(super) async fn register(
    state: &AdminState,
    request: ProjectRegisterRequest,
) -> AdminResult<tonic::Response<ProjectRegisterResponse>> {
    let project = request.project.ok_or_else(|| missing("project"))?;
    if project.name.is_empty() {
        return Err(missing("project name"));
    }
    validate(&project)?;
    let record = ProjectRecord {
        created_at: Utc::now(),
        ..record_of(&project)
    };
    state.store.create_project(record).await?;
    tracing::info!(id = %project.id, "project registered");
    Ok(tonic::Response::new(ProjectRegisterResponse {}))
}

/// Replaces name, description, labels and state; NOT_FOUND for an unknown project.
pub(super) async fn update(
    state: &AdminState,
    project: Project,
) -> AdminResult<tonic::Response<ProjectUpdateResponse>> {
    ids::validate_project(&project.id).map_err(invalid)?;
    let existing = state.store.get_project(&project.id).await?;
    validate(&project)?;
    let record = ProjectRecord {
        created_at: existing.created_at,
        ..record_of(&project)
    };
    state.store.update_project(record).await?;
    Ok(tonic::Response::new(ProjectUpdateResponse {}))
}

pub(super) async fn get(
    state: &AdminState,
    request: &ProjectGetRequest,
) -> AdminResult<tonic::Response<Project>> {
    ids::validate_project(&request.id).map_err(invalid)?;
    let record = state.store.get_project(&request.id).await?;
    Ok(tonic::Response::new(project_of(state, record)?))
}

/// Sorted by id unless asked otherwise, as flyteadmin does. A zero limit lists everything
/// (up to [`MAX_LIMIT`]): flyteadmin's project list is the one that takes no limit.
pub(super) async fn list(
    state: &AdminState,
    request: &ProjectListRequest,
) -> AdminResult<tonic::Response<Projects>> {
    let sort = match request.sort_by.as_ref().filter(|s| !s.key.is_empty()) {
        Some(_) => None,
        None => Some(SortKey {
            field: "identifier".into(),
            direction: SortDirection::Ascending,
        }),
    };
    let mut query = lists::query(
        lists::ListArgs {
            limit: if request.limit == 0 {
                MAX_LIMIT
            } else {
                request.limit
            },
            token: &request.token,
            filters: &request.filters,
            sort_by: request.sort_by.as_ref(),
        },
        &FIELDS,
    )?;
    if sort.is_some() {
        query.sort = sort;
    }
    let page = list_page(state, &query).await?;
    Ok(tonic::Response::new(page))
}

async fn list_page(state: &AdminState, query: &ListQuery) -> AdminResult<Projects> {
    let page = state.store.list_projects(query).await?;
    let projects = page
        .items
        .into_iter()
        .map(|record| project_of(state, record))
        .collect::<AdminResult<_>>()?;
    Ok(Projects {
        projects,
        token: page.next_token,
    })
}

/// flyteadmin's `ValidateProject`.
fn validate(project: &Project) -> AdminResult<()> {
    ids::validate_project(&project.id).map_err(invalid)?;
    if project.name.chars().count() > MAX_NAME_LEN {
        return Err(AdminError::InvalidArgument(format!(
            "project name cannot exceed {MAX_NAME_LEN} characters"
        )));
    }
    if project.description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(AdminError::InvalidArgument(format!(
            "project description cannot exceed {MAX_DESCRIPTION_LEN} characters"
        )));
    }
    if !project.domains.is_empty() {
        return Err(AdminError::InvalidArgument(
            "domains are set server-wide; retry without domains in the project".into(),
        ));
    }
    if let Some(labels) = &project.labels {
        validate_labels(labels)?;
    }
    Ok(())
}

/// Labels become Kubernetes labels: at most 16, keys and values in their character set.
fn validate_labels(labels: &Labels) -> AdminResult<()> {
    if labels.values.len() > MAX_LABELS {
        return Err(AdminError::InvalidArgument(format!(
            "labels map cannot exceed {MAX_LABELS} entries"
        )));
    }
    for (key, value) in &labels.values {
        if !is_label_text(key, false) {
            return Err(AdminError::InvalidArgument(format!(
                "invalid label key {}: it must be 1-63 characters of letters, digits, '-', '_' \
                 and '.', starting and ending with a letter or digit",
                quoted(key)
            )));
        }
        if !is_label_text(value, true) {
            return Err(AdminError::InvalidArgument(format!(
                "invalid label value {}: it must be at most 63 characters of letters, digits, \
                 '-', '_' and '.', starting and ending with a letter or digit",
                quoted(value)
            )));
        }
    }
    Ok(())
}

/// Kubernetes' label value syntax (keys here are the same without a DNS prefix).
fn is_label_text(text: &str, may_be_empty: bool) -> bool {
    if text.is_empty() {
        return may_be_empty;
    }
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && ends_ok(text.chars().next())
        && ends_ok(text.chars().last())
}

fn record_of(project: &Project) -> ProjectRecord {
    ProjectRecord {
        id: project.id.clone(),
        name: project.name.clone(),
        description: project.description.clone(),
        labels: project
            .labels
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default(),
        state: project.state,
        created_at: Utc::now(),
    }
}

fn project_of(state: &AdminState, record: ProjectRecord) -> AdminResult<Project> {
    let labels = if record.labels.is_empty() {
        None
    } else {
        Some(decode_stored::<Labels>(&record.labels, "project labels")?)
    };
    Ok(Project {
        id: record.id,
        name: record.name,
        domains: domains(state),
        description: record.description,
        labels,
        state: record.state,
        org: String::new(),
    })
}
