//! Authorization enforcement (docs/adr-010-authorization.md, docs/auth.md): one table,
//! [`RULES`], says for every gRPC method we serve which permission it needs and where the
//! project/domain come from in its request; [`Enforce`] checks it once per call in front of
//! every gRPC service (`router::add_grpc`), so gRPC clients and the REST gateway (which calls
//! the same services in-process) are checked alike. The few plain-HTTP routes that name a
//! project in their path (watch, cache, schedules, logs) are checked by [`check_http`] in the
//! authentication edge. The policy itself (roles, bindings) is `flyte_auth::authz`.
//!
//! Mutating calls are written to the `audit` log target once, with their outcome, and counted
//! in `flyte_admin_audit_total`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flyte_auth::{Authorizer, Identity, Permission, Target};
use futures::future::BoxFuture;
use http_body::Frame;
use http_body_util::{BodyExt, Full, Limited};
use prost_reflect::{DynamicMessage, Value};
use tower::Service;

pub use crate::router::metrics::AUDIT_TOTAL;

/// Put into every request's extensions by the authentication edge when `auth.enabled`;
/// without it (authentication off) nothing is checked or audited.
#[derive(Debug)]
pub struct Enforcement {
    /// The roles (`auth.authorization.enabled`); `None`: any authenticated caller may do
    /// anything, and mutating calls are only audited.
    pub authorizer: Option<Authorizer>,
    /// The request size limit (server.max_request_bytes): requests are read to find their
    /// project before the fidelity layer would refuse them.
    pub max_request_bytes: usize,
}

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: login metadata, the caller's own identity, the server's version and domains.
    Public,
    /// Any authenticated caller; the answer shows only what they may read (ListProjects).
    Filtered,
    /// A permission on the project/domain found in the request.
    On(Permission, Scope),
}

/// Where the project and domain of a call are, as field paths of its request message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `project`, `domain` (optional) and `name` (optional, for the audit line). An empty
    /// project is checked as the whole platform.
    Fields(&'static str, Option<&'static str>, Option<&'static str>),
    /// A `flyte://v1/<project>/<domain>/…` URL in this field.
    FlyteUrl(&'static str),
    /// The call names no project: only a `*` binding or a platform admin may make it.
    Platform,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub service: &'static str,
    pub method: &'static str,
    pub need: Need,
    /// Logged to the audit target.
    pub mutating: bool,
}

const fn rule(service: &'static str, method: &'static str, mutating: bool, need: Need) -> Rule {
    Rule {
        service,
        method,
        need,
        mutating,
    }
}

use Permission::{AdminPlatform, AdminProject, Execute, Read, Register};

const ADMIN: &str = "flyteidl.service.AdminService";
const DATAPROXY: &str = "flyteidl.service.DataProxyService";
const SIGNAL: &str = "flyteidl.service.SignalService";
const IDENTITY: &str = "flyteidl.service.IdentityService";
const AUTHMETA: &str = "flyteidl.service.AuthMetadataService";
const CATALOG: &str = "datacatalog.DataCatalog";
const CACHE: &str = "flyteidl.cacheservice.CacheService";

const R: bool = false;
const W: bool = true;

const fn on(p: Permission, project: &'static str, domain: &'static str) -> Need {
    Need::On(p, Scope::Fields(project, Some(domain), None))
}
const fn named(p: Permission, prefix: Ids) -> Need {
    Need::On(p, Scope::Fields(prefix.0, Some(prefix.1), Some(prefix.2)))
}
const fn platform(p: Permission) -> Need {
    Need::On(p, Scope::Platform)
}

/// (project, domain, name) field paths.
type Ids = (&'static str, &'static str, &'static str);
const ID: Ids = ("id.project", "id.domain", "id.name");
const EXEC_IN_ID: Ids = (
    "id.execution_id.project",
    "id.execution_id.domain",
    "id.execution_id.name",
);
const WORKFLOW_EXEC_ID: Ids = (
    "workflow_execution_id.project",
    "workflow_execution_id.domain",
    "workflow_execution_id.name",
);
const EXEC_IN_NODE_EXEC_ID: Ids = (
    "node_execution_id.execution_id.project",
    "node_execution_id.execution_id.domain",
    "node_execution_id.execution_id.name",
);
const TASK_EXEC_ID: Ids = (
    "id.node_execution_id.execution_id.project",
    "id.node_execution_id.execution_id.domain",
    "id.node_execution_id.execution_id.name",
);

/// Every gRPC method served and what it needs. A method missing here is refused (INTERNAL,
/// logged at ERROR) and fails `tests/authz_table.rs`.
pub const RULES: &[Rule] = &[
    // --- AdminService: tasks, workflows, launch plans --------------------------------------
    rule(ADMIN, "CreateTask", W, named(Register, ID)),
    rule(ADMIN, "GetTask", R, named(Read, ID)),
    rule(ADMIN, "ListTaskIds", R, on(Read, "project", "domain")),
    rule(ADMIN, "ListTasks", R, named(Read, ID)),
    rule(ADMIN, "CreateWorkflow", W, named(Register, ID)),
    rule(ADMIN, "GetWorkflow", R, named(Read, ID)),
    rule(ADMIN, "ListWorkflowIds", R, on(Read, "project", "domain")),
    rule(ADMIN, "ListWorkflows", R, named(Read, ID)),
    rule(ADMIN, "CreateLaunchPlan", W, named(Register, ID)),
    rule(ADMIN, "GetLaunchPlan", R, named(Read, ID)),
    rule(ADMIN, "GetActiveLaunchPlan", R, named(Read, ID)),
    rule(
        ADMIN,
        "ListActiveLaunchPlans",
        R,
        on(Read, "project", "domain"),
    ),
    rule(ADMIN, "ListLaunchPlanIds", R, on(Read, "project", "domain")),
    rule(ADMIN, "ListLaunchPlans", R, named(Read, ID)),
    // Activating a launch plan starts its schedule: a registrant's act.
    rule(ADMIN, "UpdateLaunchPlan", W, named(Register, ID)),
    // --- executions -------------------------------------------------------------------------
    rule(
        ADMIN,
        "CreateExecution",
        W,
        named(Execute, ("project", "domain", "name")),
    ),
    rule(ADMIN, "RelaunchExecution", W, named(Execute, ID)),
    rule(ADMIN, "RecoverExecution", W, named(Execute, ID)),
    rule(ADMIN, "GetExecution", R, named(Read, ID)),
    rule(ADMIN, "UpdateExecution", W, named(Execute, ID)),
    rule(ADMIN, "GetExecutionData", R, named(Read, ID)),
    rule(ADMIN, "ListExecutions", R, named(Read, ID)),
    rule(ADMIN, "TerminateExecution", W, named(Execute, ID)),
    rule(ADMIN, "GetNodeExecution", R, named(Read, EXEC_IN_ID)),
    rule(ADMIN, "GetDynamicNodeWorkflow", R, named(Read, EXEC_IN_ID)),
    rule(
        ADMIN,
        "ListNodeExecutions",
        R,
        named(Read, WORKFLOW_EXEC_ID),
    ),
    rule(
        ADMIN,
        "ListNodeExecutionsForTask",
        R,
        named(
            Read,
            (
                "task_execution_id.node_execution_id.execution_id.project",
                "task_execution_id.node_execution_id.execution_id.domain",
                "task_execution_id.node_execution_id.execution_id.name",
            ),
        ),
    ),
    rule(ADMIN, "GetNodeExecutionData", R, named(Read, EXEC_IN_ID)),
    rule(ADMIN, "GetTaskExecution", R, named(Read, TASK_EXEC_ID)),
    rule(
        ADMIN,
        "ListTaskExecutions",
        R,
        named(Read, EXEC_IN_NODE_EXEC_ID),
    ),
    rule(ADMIN, "GetTaskExecutionData", R, named(Read, TASK_EXEC_ID)),
    rule(ADMIN, "GetExecutionMetrics", R, named(Read, ID)),
    // Events come from the engine (in-process) or an external propeller: running is theirs.
    rule(
        ADMIN,
        "CreateWorkflowEvent",
        W,
        named(
            Execute,
            (
                "event.execution_id.project",
                "event.execution_id.domain",
                "event.execution_id.name",
            ),
        ),
    ),
    rule(
        ADMIN,
        "CreateNodeEvent",
        W,
        named(
            Execute,
            (
                "event.id.execution_id.project",
                "event.id.execution_id.domain",
                "event.id.execution_id.name",
            ),
        ),
    ),
    rule(
        ADMIN,
        "CreateTaskEvent",
        W,
        named(
            Execute,
            (
                "event.parent_node_execution_id.execution_id.project",
                "event.parent_node_execution_id.execution_id.domain",
                "event.parent_node_execution_id.execution_id.name",
            ),
        ),
    ),
    // --- projects and domains ----------------------------------------------------------------
    rule(ADMIN, "RegisterProject", W, platform(AdminPlatform)),
    rule(
        ADMIN,
        "UpdateProject",
        W,
        Need::On(AdminProject, Scope::Fields("id", None, None)),
    ),
    rule(
        ADMIN,
        "GetProject",
        R,
        Need::On(Read, Scope::Fields("id", None, None)),
    ),
    rule(ADMIN, "ListProjects", R, Need::Filtered),
    rule(ADMIN, "GetDomains", R, Need::Public),
    rule(ADMIN, "GetVersion", R, Need::Public),
    // --- matchable attributes ----------------------------------------------------------------
    rule(
        ADMIN,
        "UpdateProjectDomainAttributes",
        W,
        on(AdminProject, "attributes.project", "attributes.domain"),
    ),
    rule(
        ADMIN,
        "GetProjectDomainAttributes",
        R,
        on(Read, "project", "domain"),
    ),
    rule(
        ADMIN,
        "DeleteProjectDomainAttributes",
        W,
        on(AdminProject, "project", "domain"),
    ),
    rule(
        ADMIN,
        "UpdateProjectAttributes",
        W,
        Need::On(
            AdminProject,
            Scope::Fields("attributes.project", None, None),
        ),
    ),
    rule(
        ADMIN,
        "GetProjectAttributes",
        R,
        Need::On(Read, Scope::Fields("project", None, None)),
    ),
    rule(
        ADMIN,
        "DeleteProjectAttributes",
        W,
        Need::On(AdminProject, Scope::Fields("project", None, None)),
    ),
    rule(
        ADMIN,
        "UpdateWorkflowAttributes",
        W,
        named(
            AdminProject,
            (
                "attributes.project",
                "attributes.domain",
                "attributes.workflow",
            ),
        ),
    ),
    rule(
        ADMIN,
        "GetWorkflowAttributes",
        R,
        named(Read, ("project", "domain", "workflow")),
    ),
    rule(
        ADMIN,
        "DeleteWorkflowAttributes",
        W,
        named(AdminProject, ("project", "domain", "workflow")),
    ),
    // Lists every project's attributes.
    rule(ADMIN, "ListMatchableAttributes", R, platform(Read)),
    // --- named entities and descriptions -----------------------------------------------------
    rule(ADMIN, "ListNamedEntities", R, on(Read, "project", "domain")),
    rule(ADMIN, "GetNamedEntity", R, named(Read, ID)),
    rule(ADMIN, "UpdateNamedEntity", W, named(Register, ID)),
    rule(ADMIN, "GetDescriptionEntity", R, named(Read, ID)),
    rule(ADMIN, "ListDescriptionEntities", R, named(Read, ID)),
    // --- DataProxyService --------------------------------------------------------------------
    // Uploads are inputs of a run or code of a registration: executors and registrants.
    rule(
        DATAPROXY,
        "CreateUploadLocation",
        W,
        on(Execute, "project", "domain"),
    ),
    // A raw storage URL names no project.
    rule(
        DATAPROXY,
        "CreateDownloadLocation",
        R,
        platform(AdminPlatform),
    ),
    rule(
        DATAPROXY,
        "CreateDownloadLink",
        R,
        named(Read, EXEC_IN_NODE_EXEC_ID),
    ),
    rule(
        DATAPROXY,
        "GetData",
        R,
        Need::On(Read, Scope::FlyteUrl("flyte_url")),
    ),
    // --- SignalService -----------------------------------------------------------------------
    rule(SIGNAL, "GetOrCreateSignal", W, named(Execute, EXEC_IN_ID)),
    rule(SIGNAL, "ListSignals", R, named(Read, WORKFLOW_EXEC_ID)),
    rule(SIGNAL, "SetSignal", W, named(Execute, EXEC_IN_ID)),
    // --- auth contract -----------------------------------------------------------------------
    rule(IDENTITY, "UserInfo", R, Need::Public),
    rule(AUTHMETA, "GetOAuth2Metadata", R, Need::Public),
    rule(AUTHMETA, "GetPublicClientConfig", R, Need::Public),
    // --- DataCatalog (tasks' cache, as propeller uses it) ------------------------------------
    rule(
        CATALOG,
        "CreateDataset",
        W,
        named(
            Execute,
            ("dataset.project", "dataset.domain", "dataset.name"),
        ),
    ),
    rule(
        CATALOG,
        "GetDataset",
        R,
        named(Read, ("dataset.project", "dataset.domain", "dataset.name")),
    ),
    rule(
        CATALOG,
        "CreateArtifact",
        W,
        named(
            Execute,
            (
                "artifact.dataset.project",
                "artifact.dataset.domain",
                "artifact.dataset.name",
            ),
        ),
    ),
    rule(
        CATALOG,
        "GetArtifact",
        R,
        named(Read, ("dataset.project", "dataset.domain", "dataset.name")),
    ),
    rule(
        CATALOG,
        "AddTag",
        W,
        named(
            Execute,
            (
                "tag.dataset.project",
                "tag.dataset.domain",
                "tag.dataset.name",
            ),
        ),
    ),
    rule(
        CATALOG,
        "ListArtifacts",
        R,
        named(Read, ("dataset.project", "dataset.domain", "dataset.name")),
    ),
    rule(CATALOG, "ListDatasets", R, platform(Read)),
    rule(
        CATALOG,
        "UpdateArtifact",
        W,
        named(
            Execute,
            ("dataset.project", "dataset.domain", "dataset.name"),
        ),
    ),
    rule(
        CATALOG,
        "GetOrExtendReservation",
        W,
        named(
            Execute,
            (
                "reservation_id.dataset_id.project",
                "reservation_id.dataset_id.domain",
                "reservation_id.dataset_id.name",
            ),
        ),
    ),
    rule(
        CATALOG,
        "ReleaseReservation",
        W,
        named(
            Execute,
            (
                "reservation_id.dataset_id.project",
                "reservation_id.dataset_id.domain",
                "reservation_id.dataset_id.name",
            ),
        ),
    ),
    // --- CacheService: keys are opaque hashes naming no project ------------------------------
    rule(CACHE, "Get", R, platform(Execute)),
    rule(CACHE, "Put", W, platform(Execute)),
    rule(CACHE, "Delete", W, platform(Execute)),
    rule(CACHE, "GetOrExtendReservation", W, platform(Execute)),
    rule(CACHE, "ReleaseReservation", W, platform(Execute)),
];

/// The rule of `/<service>/<method>`.
pub fn rule_for(service: &str, method: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|r| r.service == service && r.method == method)
}

/// Where a call is, for the check and the audit line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Place {
    pub project: String,
    pub domain: String,
    pub name: String,
}

impl Place {
    fn target(&self) -> Target<'_> {
        if self.project.is_empty() {
            return Target::Platform;
        }
        Target::Project {
            project: &self.project,
            domain: (!self.domain.is_empty()).then_some(self.domain.as_str()),
        }
    }
}

/// The project/domain/name of a request message, per its rule's scope.
pub fn place_of(rule: &Rule, message: &[u8]) -> Result<Place, String> {
    let Need::On(_, scope) = rule.need else {
        return Ok(Place::default());
    };
    if scope == Scope::Platform {
        return Ok(Place::default());
    }
    let pool = crate::gateway::descriptor_pool();
    let method = pool
        .get_service_by_name(rule.service)
        .and_then(|s| s.methods().find(|m| m.name() == rule.method))
        .ok_or_else(|| format!("{}.{} is not in the contract", rule.service, rule.method))?;
    let input = method.input();
    let msg = DynamicMessage::decode(input.clone(), message)
        .map_err(|e| format!("the request is not a valid {}: {e}", input.full_name()))?;
    let text = |path: Option<&str>| path.map(|p| field(&msg, p)).unwrap_or_default();
    Ok(match scope {
        Scope::Fields(p, d, n) => Place {
            project: text(Some(p)),
            domain: text(d),
            name: text(n),
        },
        Scope::FlyteUrl(f) => {
            let url = text(Some(f));
            let mut parts = url
                .strip_prefix("flyte://v1/")
                .unwrap_or_default()
                .split('/');
            Place {
                project: parts.next().unwrap_or_default().to_owned(),
                domain: parts.next().unwrap_or_default().to_owned(),
                name: parts.next().unwrap_or_default().to_owned(),
            }
        }
        Scope::Platform => Place::default(),
    })
}

/// A string field along a dotted path (`id.execution_id.project`); unset: empty.
fn field(msg: &DynamicMessage, path: &str) -> String {
    let mut current = msg.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(value) = current.get_field_by_name(part) else {
            return String::new();
        };
        if parts.peek().is_none() {
            return match value.as_ref() {
                Value::String(s) => s.clone(),
                _ => String::new(),
            };
        }
        match value.as_ref() {
            Value::Message(m) => current = m.clone(),
            _ => return String::new(),
        }
    }
    String::new()
}

/// Why a call is refused, as its gRPC status.
fn denied(message: String) -> tonic::Status {
    tonic::Status::permission_denied(message)
}

/// The decision for one gRPC call, before it runs.
pub fn decide(
    enforcement: &Enforcement,
    identity: Option<&Identity>,
    rule: &Rule,
    message: &[u8],
) -> Result<Place, tonic::Status> {
    let Some(authorizer) = &enforcement.authorizer else {
        // Authorization off: the place is only for the audit line.
        return Ok(place_of(rule, message).unwrap_or_default());
    };
    let Need::On(permission, _) = rule.need else {
        if rule.need == Need::Filtered && identity.is_none() {
            return Err(denied(format!(
                "{}.{} needs an authenticated caller, and this path is exempt from \
                 authentication (auth.exempt_paths)",
                short(rule.service),
                rule.method
            )));
        }
        return Ok(Place::default());
    };
    let place = place_of(rule, message).map_err(tonic::Status::invalid_argument)?;
    let Some(id) = identity else {
        return Err(denied(format!(
            "{}.{} needs the `{permission}` permission on {}, and this path is exempt from \
             authentication (auth.exempt_paths), so the caller is unknown",
            short(rule.service),
            rule.method,
            place.target()
        )));
    };
    authorizer
        .check(id, permission, place.target())
        .map_err(|d| denied(d.to_string()))?;
    Ok(place)
}

fn short(service: &str) -> &str {
    service.rsplit('.').next().unwrap_or(service)
}

/// Writes the audit line of a mutating call and counts it.
pub fn audit(identity: Option<&Identity>, rule: &Rule, place: &Place, code: tonic::Code) {
    audit_to(None, identity, rule, place, code)
}

/// [`audit`], and the record queued for the store when there is a `sink`.
pub fn audit_to(
    sink: Option<&crate::auth::audit::AuditSink>,
    identity: Option<&Identity>,
    rule: &Rule,
    place: &Place,
    code: tonic::Code,
) {
    let code_name = crate::gateway::code_name(code);
    if let Some(sink) = sink {
        sink.record(flyte_store::AuditRecord {
            id: 0,
            at: chrono::Utc::now(),
            subject: identity.map(|i| i.subject.clone()).unwrap_or_default(),
            email: identity.and_then(|i| i.email.clone()).unwrap_or_default(),
            service: short(rule.service).to_owned(),
            method: rule.method.to_owned(),
            project: place.project.clone(),
            domain: place.domain.clone(),
            name: place.name.clone(),
            code: code_name.to_owned(),
        });
    }
    let who = identity.map(|i| i.subject.as_str()).unwrap_or("");
    let email = identity.and_then(|i| i.email.as_deref()).unwrap_or("");
    tracing::info!(
        target: "audit",
        subject = who,
        email,
        service = short(rule.service),
        method = rule.method,
        project = %place.project,
        domain = %place.domain,
        name = %place.name,
        code = code_name,
        "call"
    );
    metrics::counter!(
        AUDIT_TOTAL,
        "service" => short(rule.service).to_owned(),
        "method" => rule.method,
        "code" => code_name
    )
    .increment(1);
}

/// Which projects ListProjects may show the caller; `None`: all (authorization off).
pub fn project_filter(extensions: &http::Extensions) -> Option<impl Fn(&str) -> bool + '_> {
    let authorizer = extensions.get::<Arc<Enforcement>>()?.authorizer.as_ref()?;
    let identity = extensions.get::<Identity>();
    Some(move |project: &str| identity.is_some_and(|id| authorizer.may_see_project(id, project)))
}

/// The plain-HTTP routes that name a project: (path prefix, permission for GET, for other
/// methods). The project and domain are the two path segments after the prefix.
const HTTP_RULES: &[(&str, Permission, Permission)] = &[
    ("/api/v1/watch/executions/", Read, Read),
    ("/api/v1/cache/", Read, Execute),
    ("/api/v1/schedules/", Read, AdminProject),
    ("/logs/", Read, Read),
];

/// The check of a plain-HTTP route (not gRPC, not the gateway's `/api/v1` calls, which are
/// checked as the gRPC call they become). `Err` is the refusal's status.
pub fn check_http(
    enforcement: &Enforcement,
    identity: Option<&Identity>,
    method: &http::Method,
    path: &str,
) -> Result<(), tonic::Status> {
    let Some(authorizer) = &enforcement.authorizer else {
        return Ok(());
    };
    let Some((prefix, read, write)) = HTTP_RULES.iter().find(|(p, _, _)| path.starts_with(p))
    else {
        return Ok(());
    };
    let permission = if method == http::Method::GET || method == http::Method::HEAD {
        *read
    } else {
        *write
    };
    let mut segments = path[prefix.len()..].split('/');
    let place = Place {
        project: segments.next().unwrap_or_default().to_owned(),
        domain: segments.next().unwrap_or_default().to_owned(),
        name: segments.next().unwrap_or_default().to_owned(),
    };
    let Some(id) = identity else {
        return Err(denied(format!(
            "{path} needs the `{permission}` permission on {}, and this path is exempt from \
             authentication (auth.exempt_paths)",
            place.target()
        )));
    };
    authorizer
        .check(id, permission, place.target())
        .map_err(|d| denied(d.to_string()))
}

/// Checks every call of a gRPC service against [`RULES`] when the request carries an
/// [`Enforcement`]; see the module docs. Wraps the service as `router::add_grpc` serves it.
#[derive(Debug, Clone)]
pub struct Enforce<S> {
    inner: S,
}

impl<S> Enforce<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Enforce<S> {
    const NAME: &'static str = S::NAME;
}

/// The gRPC frame header: compressed flag and length.
const FRAME_HEADER_LEN: usize = 5;

impl<S> Service<http::Request<tonic::body::Body>> for Enforce<S>
where
    S: Service<http::Request<tonic::body::Body>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let Some(enforcement) = req.extensions().get::<Arc<Enforcement>>().cloned() else {
                return Ok(inner.call(req).await?.into_response());
            };
            let path = req.uri().path().trim_start_matches('/').to_owned();
            let (service, method) = path.split_once('/').unwrap_or((path.as_str(), ""));
            let checking = enforcement.authorizer.is_some();
            let rule = rule_for(service, method);
            // Authorization off: only mutating calls are read, for their audit line.
            if !checking && !rule.is_some_and(|r| r.mutating) {
                return Ok(inner.call(req).await?.into_response());
            }
            let Some(rule) = rule else {
                tracing::error!(
                    service,
                    method,
                    "no authorization rule for this method (crate::authz::RULES): refused"
                );
                return Ok(status_response(tonic::Status::internal(format!(
                    "{service}.{method} has no authorization rule in this build; refused"
                ))));
            };
            let identity = req.extensions().get::<Identity>().cloned();
            let sink = req
                .extensions()
                .get::<Arc<crate::auth::audit::AuditSink>>()
                .cloned();
            let (parts, body) = req.into_parts();
            let bytes = match Limited::new(body, enforcement.max_request_bytes)
                .collect()
                .await
            {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return Ok(status_response(tonic::Status::resource_exhausted(format!(
                        "the request exceeds the server's limit of {} bytes \
                         (server.max_request_bytes)",
                        enforcement.max_request_bytes
                    ))));
                }
            };
            let message = match bytes.first() {
                // Compressed: the fidelity layer refuses it; there is nothing to check.
                Some(1) => Bytes::new(),
                _ => bytes.slice(bytes.len().min(FRAME_HEADER_LEN)..),
            };
            let decision = decide(&enforcement, identity.as_ref(), rule, &message);
            let place = match decision {
                Ok(place) => place,
                Err(status) => {
                    tracing::info!(
                        service = short(rule.service),
                        method = rule.method,
                        subject = identity.as_ref().map(|i| i.subject.as_str()),
                        reason = status.message(),
                        "call refused by authorization"
                    );
                    if rule.mutating {
                        let place = place_of(rule, &message).unwrap_or_default();
                        audit_to(
                            sink.as_deref(),
                            identity.as_ref(),
                            rule,
                            &place,
                            status.code(),
                        );
                    }
                    return Ok(status_response(status));
                }
            };
            let req = http::Request::from_parts(parts, tonic::body::Body::new(Full::new(bytes)));
            let response = inner.call(req).await?.into_response();
            if !rule.mutating {
                return Ok(response);
            }
            if let Some(code) = header_code(response.headers()) {
                audit_to(sink.as_deref(), identity.as_ref(), rule, &place, code);
                return Ok(response);
            }
            // The status comes in the trailers: audited when the body ends.
            Ok(response.map(|body| {
                axum::body::Body::new(AuditOnEnd {
                    inner: body,
                    pending: Some((sink, identity, rule, place)),
                })
            }))
        })
    }
}

fn status_response(status: tonic::Status) -> Response {
    status.into_http::<axum::body::Body>().into_response()
}

fn header_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// A response body that writes the audit line when it ends, with the trailers' code.
/// What a call's audit record needs once its outcome is known.
type PendingAudit = (
    Option<Arc<crate::auth::audit::AuditSink>>,
    Option<Identity>,
    &'static Rule,
    Place,
);

struct AuditOnEnd {
    inner: axum::body::Body,
    pending: Option<PendingAudit>,
}

impl AuditOnEnd {
    fn finish(&mut self, code: tonic::Code) {
        if let Some((sink, identity, rule, place)) = self.pending.take() {
            audit_to(sink.as_deref(), identity.as_ref(), rule, &place, code);
        }
    }
}

impl http_body::Body for AuditOnEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(header_code) {
                    self.finish(code);
                }
            }
            Poll::Ready(None) => self.finish(tonic::Code::Ok),
            Poll::Ready(Some(Err(_))) => self.finish(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditOnEnd {
    fn drop(&mut self) {
        // The client went away before the end: the call's effect is unknown to us.
        self.finish(tonic::Code::Cancelled);
    }
}
