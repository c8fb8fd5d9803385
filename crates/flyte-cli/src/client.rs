//! The gRPC connection to the admin and the lookups several commands share.

use std::time::Duration;

use flyteidl::admin::{
    self, NamedEntityIdentifier, NodeExecution, NodeExecutionListRequest, ResourceListRequest,
    Sort, TaskExecution, TaskExecutionListRequest, sort,
};
use flyteidl::core::{
    Identifier, NodeExecutionIdentifier, ResourceType, WorkflowExecutionIdentifier,
};
use flyteidl::service::admin_service_client::AdminServiceClient;
use flyteidl::service::signal_service_client::SignalServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::config::ClientConfig;
use crate::error::{CliError, CliResult};
use crate::tls::Tls;

/// Responses can carry whole compiled workflows and inline data.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The channel every call goes through: with the bearer token when there is one.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to each gRPC call (none: the call goes as it is).
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub struct Client {
    pub admin: AdminServiceClient<Authed>,
    pub signal: SignalServiceClient<Authed>,
    /// Plain HTTP calls (logs, schedules), with the same TLS settings as the channel.
    pub http: reqwest::Client,
    pub config: ClientConfig,
    pub project: String,
    pub domain: String,
}

impl Client {
    pub async fn connect(config: ClientConfig, project: String, domain: String) -> CliResult<Self> {
        let unreachable = |reason: String| {
            CliError::Connect {
            endpoint: config.endpoint.clone(),
            reason: format!(
                "{reason}{}",
                config
                    .file
                    .as_ref()
                    .map(|f| format!(" (endpoint from {})", f.display()))
                    .unwrap_or_else(|| " (no config file: the default address; start the server with `flyte-rs start`, or point --config / FLYTECTL_CONFIG at its config.yaml)".into())
            ),
        }
        };
        let endpoint = Endpoint::from_shared(config.http_base())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        let mut http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        let channel = if config.insecure {
            endpoint.connect().await
        } else {
            let tls = Tls::new(&config.tls)?;
            http = http.tls_backend_preconfigured(tls.http.clone());
            let grpc = tls.grpc.clone();
            let address = config.endpoint.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                    Tls::connect(grpc.clone(), address.clone())
                }))
                .await
        }
        .map_err(|e| unreachable(with_tls_hint(error_chain(&e), &config)))?;
        let plain = http
            .build()
            .map_err(|e| CliError::Config(format!("cannot set up the HTTP client: {e}")))?;
        let token = match &config.credentials {
            Some(c) => Some(client_credentials_token(&plain, &config, c).await?),
            None => None,
        };
        let bearer = match &token {
            Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
                CliError::Config("the identity provider's access token is not ASCII".into())
            })?),
            None => None,
        };
        let http = match &bearer {
            // Plain HTTP calls (logs, schedules) carry the token too.
            Some(b) => {
                let mut headers = reqwest::header::HeaderMap::new();
                let value: &tonic::metadata::MetadataValue<tonic::metadata::Ascii> = b;
                if let Ok(v) = reqwest::header::HeaderValue::from_bytes(value.as_bytes()) {
                    headers.insert(reqwest::header::AUTHORIZATION, v);
                }
                let mut builder = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .default_headers(headers);
                if !config.insecure {
                    builder =
                        builder.tls_backend_preconfigured(Tls::new(&config.tls)?.http.clone());
                }
                builder
                    .build()
                    .map_err(|e| CliError::Config(format!("cannot set up the HTTP client: {e}")))?
            }
            None => plain,
        };
        let bearer = Bearer(bearer);
        Ok(Self {
            admin: AdminServiceClient::with_interceptor(channel.clone(), bearer.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            signal: SignalServiceClient::with_interceptor(channel, bearer)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            http,
            config,
            project,
            domain,
        })
    }

    pub fn execution_id(&self, name: &str) -> WorkflowExecutionIdentifier {
        WorkflowExecutionIdentifier {
            project: self.project.clone(),
            domain: self.domain.clone(),
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn named(&self, name: &str) -> NamedEntityIdentifier {
        NamedEntityIdentifier {
            project: self.project.clone(),
            domain: self.domain.clone(),
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// The identifier of `name` at `version`, or at its newest version (as flytekit picks it:
    /// the most recently created).
    pub async fn resolve(
        &mut self,
        kind: ResourceType,
        name: &str,
        version: Option<&str>,
    ) -> CliResult<Identifier> {
        let version = match version {
            Some(v) => v.to_string(),
            None => {
                let request = ResourceListRequest {
                    id: Some(self.named(name)),
                    limit: 1,
                    sort_by: Some(newest_first()),
                    ..Default::default()
                };
                let what = kind_name(kind);
                let context = format!("cannot list the versions of {what} {name}");
                let versions: Vec<Identifier> = match kind {
                    ResourceType::Task => self
                        .admin
                        .list_tasks(request)
                        .await
                        .map_err(CliError::rpc(context))?
                        .into_inner()
                        .tasks
                        .into_iter()
                        .filter_map(|t| t.id)
                        .collect(),
                    ResourceType::Workflow => self
                        .admin
                        .list_workflows(request)
                        .await
                        .map_err(CliError::rpc(context))?
                        .into_inner()
                        .workflows
                        .into_iter()
                        .filter_map(|t| t.id)
                        .collect(),
                    _ => self
                        .admin
                        .list_launch_plans(request)
                        .await
                        .map_err(CliError::rpc(context))?
                        .into_inner()
                        .launch_plans
                        .into_iter()
                        .filter_map(|t| t.id)
                        .collect(),
                };
                match versions.into_iter().next() {
                    Some(id) => id.version,
                    None => {
                        return Err(CliError::Usage(format!(
                            "no {what} named {name} in {}/{} (list them with `flyte-rs get {}`)",
                            self.project,
                            self.domain,
                            kind_command(kind)
                        )));
                    }
                }
            }
        };
        Ok(Identifier {
            resource_type: kind as i32,
            project: self.project.clone(),
            domain: self.domain.clone(),
            name: name.to_string(),
            version,
            ..Default::default()
        })
    }

    pub async fn get_execution(&mut self, name: &str) -> CliResult<admin::Execution> {
        let request = admin::WorkflowExecutionGetRequest {
            id: Some(self.execution_id(name)),
        };
        self.admin
            .get_execution(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(CliError::rpc(format!(
                "cannot get execution {name} in {}/{}",
                self.project, self.domain
            )))
    }

    /// Every node execution of an execution under `parent` ("" for the top level), all pages.
    pub async fn node_executions(
        &mut self,
        execution: &WorkflowExecutionIdentifier,
        parent: &str,
    ) -> CliResult<Vec<NodeExecution>> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .admin
                .list_node_executions(NodeExecutionListRequest {
                    workflow_execution_id: Some(execution.clone()),
                    limit: 1000,
                    token: token.clone(),
                    unique_parent_id: parent.to_string(),
                    ..Default::default()
                })
                .await
                .map_err(CliError::rpc(format!(
                    "cannot list the nodes of execution {}",
                    execution.name
                )))?
                .into_inner();
            all.extend(page.node_executions);
            if page.token.is_empty() {
                return Ok(all);
            }
            token = page.token;
        }
    }

    /// Every attempt of a node, oldest first.
    pub async fn task_executions(
        &mut self,
        node: &NodeExecutionIdentifier,
    ) -> CliResult<Vec<TaskExecution>> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .admin
                .list_task_executions(TaskExecutionListRequest {
                    node_execution_id: Some(node.clone()),
                    limit: 1000,
                    token: token.clone(),
                    ..Default::default()
                })
                .await
                .map_err(CliError::rpc(format!(
                    "cannot list the attempts of node {}",
                    node.node_id
                )))?
                .into_inner();
            all.extend(page.task_executions);
            if page.token.is_empty() {
                break;
            }
            token = page.token;
        }
        all.sort_by_key(|t| t.id.as_ref().map_or(0, |id| id.retry_attempt));
        Ok(all)
    }
}

pub fn newest_first() -> Sort {
    Sort {
        key: "created_at".into(),
        direction: sort::Direction::Descending as i32,
    }
}

pub fn kind_name(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Task => "task",
        ResourceType::Workflow => "workflow",
        ResourceType::LaunchPlan => "launch plan",
        _ => "entity",
    }
}

fn kind_command(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Task => "task",
        ResourceType::Workflow => "workflow",
        _ => "launchplan",
    }
}

/// A certificate the client does not trust, or TLS against a cleartext server: say which
/// setting to change.
pub fn with_tls_hint(reason: String, config: &ClientConfig) -> String {
    if config.insecure {
        return reason;
    }
    let lower = reason.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        let trusted = match &config.tls.ca_cert_file {
            Some(ca) => format!("the CA in admin.caCertFilePath ({})", ca.display()),
            None => "the system's trusted CAs (no admin.caCertFilePath set)".into(),
        };
        format!(
            "{reason} — the server's TLS certificate is not trusted: it was checked against \
             {trusted}; set admin.caCertFilePath to the CA that signed it"
        )
    } else if lower.contains("corrupt message") || lower.contains("invalidcontenttype") {
        format!("{reason} — the server does not speak TLS: set admin.insecure: true")
    } else {
        reason
    }
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A token for the machine client `c` (`admin.authType: ClientSecret`), as flytekit gets it:
/// the server's `/.well-known/oauth-authorization-server` names the provider's token
/// endpoint, which is asked for a client-credentials grant.
async fn client_credentials_token(
    http: &reqwest::Client,
    config: &ClientConfig,
    c: &crate::config::ClientCredentials,
) -> CliResult<String> {
    let fail = |what: String| CliError::Config(format!("cannot log in as {}: {what}", c.client_id));
    let secret = std::fs::read_to_string(&c.secret_file).map_err(|e| {
        fail(format!(
            "admin.clientSecretLocation {}: {e}",
            c.secret_file.display()
        ))
    })?;
    let get_json = |resp: reqwest::Response| async move {
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| e.to_string())
    };
    let discovery = format!(
        "{}/.well-known/oauth-authorization-server",
        config.http_base()
    );
    let resp = http
        .get(&discovery)
        .send()
        .await
        .map_err(|e| fail(format!("GET {discovery}: {}", error_chain(&e))))?;
    let document = get_json(resp)
        .await
        .map_err(|e| fail(format!("GET {discovery}: {e}")))?;
    let token_endpoint = document["token_endpoint"]
        .as_str()
        .ok_or_else(|| fail(format!("{discovery} names no token_endpoint")))?
        .to_owned();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", &c.scopes.join(" "))
        .finish();
    let resp = http
        .post(&token_endpoint)
        .basic_auth(&c.client_id, Some(secret.trim()))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| fail(format!("POST {token_endpoint}: {}", error_chain(&e))))?;
    let answer = get_json(resp)
        .await
        .map_err(|e| fail(format!("POST {token_endpoint}: {e}")))?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| fail(format!("{token_endpoint} answered without an access_token")))
}
