//! Matchable attributes (flyteadmin `resource_manager.go`): settings an operator attaches to
//! a project, a project-domain or a workflow, one per type (`admin.MatchableResource`), that
//! executions created there pick up. The AdminService adapters (`service/admin/attributes.rs`)
//! and, through them, the REST gateway call this service; execution creation calls
//! [`execution_defaults`] and [`apply_task_resources`].
//!
//! Precedence, as flyteadmin: what the execution request sets, then its launch plan, then the
//! most specific stored attributes (workflow > project-domain > project), then the project
//! level again field by field, then the server's configured defaults.

use chrono::Utc;
use flyte_store::{AttributesKey, AttributesRecord, StoreError};
use flyteidl::admin::{
    self, ExecutionSpec, LaunchPlanSpec, MatchableAttributesConfiguration, MatchableResource,
    MatchingAttributes, PluginOverrides, TaskResourceAttributes, TaskResourceSpec,
    WorkflowExecutionConfig, matching_attributes::Target,
};
use flyteidl::core::{self, resources::ResourceName};
use prost::Message;

use crate::error::{AdminError, AdminResult, quoted};
use crate::service::admin::common::{decode_stored, ensure_project_domain, missing};
use crate::state::AdminState;

/// Where a set of attributes applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Project {
        project: String,
    },
    ProjectDomain {
        project: String,
        domain: String,
    },
    Workflow {
        project: String,
        domain: String,
        workflow: String,
    },
}

impl Scope {
    fn key(&self, resource_type: i32) -> AttributesKey {
        let (project, domain, workflow) = match self {
            Self::Project { project } => (project.as_str(), "", ""),
            Self::ProjectDomain { project, domain } => (project.as_str(), domain.as_str(), ""),
            Self::Workflow {
                project,
                domain,
                workflow,
            } => (project.as_str(), domain.as_str(), workflow.as_str()),
        };
        AttributesKey {
            project: project.into(),
            domain: domain.into(),
            workflow: workflow.into(),
            launch_plan: String::new(),
            resource_type,
        }
    }

    /// `project 'p'`, `project 'p', domain 'd'`, … for messages.
    fn describe(&self) -> String {
        match self {
            Self::Project { project } => format!("project {}", quoted(project)),
            Self::ProjectDomain { project, domain } => {
                format!("project {}, domain {}", quoted(project), quoted(domain))
            }
            Self::Workflow {
                project,
                domain,
                workflow,
            } => format!(
                "project {}, domain {}, workflow {}",
                quoted(project),
                quoted(domain),
                quoted(workflow)
            ),
        }
    }
}

/// The attributes found for a scope, and the scope they were stored at (a workflow's may come
/// from its project-domain or project: flyteadmin answers Get with the most specific match).
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub attributes: MatchingAttributes,
    pub project: String,
    pub domain: String,
    pub workflow: String,
}

/// Matchable-attribute commands. Cheap to clone.
#[derive(Clone)]
pub struct AttributesService {
    state: AdminState,
}

impl AttributesService {
    pub fn new(state: AdminState) -> Self {
        Self { state }
    }

    /// Creates or replaces the attributes of the type `attributes` holds at `scope`. Plugin
    /// overrides merge by task type with those stored (flyteadmin); every other type replaces.
    pub async fn update(
        &self,
        scope: Scope,
        attributes: Option<MatchingAttributes>,
    ) -> AdminResult<()> {
        self.check_scope(&scope).await?;
        let attributes = attributes.ok_or_else(|| {
            AdminError::InvalidArgument(format!(
                "missing matching_attributes for {}: set one of task_resource_attributes, \
                 cluster_resource_attributes, execution_queue_attributes, \
                 execution_cluster_label, quality_of_service, plugin_overrides, \
                 workflow_execution_config, cluster_assignment",
                scope.describe()
            ))
        })?;
        let resource_type = resource_type_of(&attributes, &scope)?;
        validate(&attributes)?;
        let key = scope.key(resource_type as i32);
        let attributes = match &attributes.target {
            Some(Target::PluginOverrides(new)) => match self.state.store.get_attributes(&key).await
            {
                Ok(existing) => {
                    let existing: MatchingAttributes =
                        decode_stored(&existing.attributes, "matchable attributes")?;
                    merge_plugin_overrides(existing, new)
                }
                Err(StoreError::NotFound(_)) => attributes,
                Err(err) => return Err(err.into()),
            },
            _ => attributes,
        };
        let now = Utc::now();
        self.state
            .store
            .put_attributes(AttributesRecord {
                key: key.clone(),
                attributes: attributes.encode_to_vec(),
                created_at: now,
                updated_at: now,
            })
            .await?;
        tracing::info!(
            project = %key.project,
            domain = %key.domain,
            workflow = %key.workflow,
            resource_type = resource_type.as_str_name(),
            "matchable attributes updated"
        );
        Ok(())
    }

    /// The attributes of `resource_type` that apply at `scope`: its own, or for a workflow or
    /// project-domain the most specific of the levels above (flyteadmin). A project's
    /// WORKFLOW_EXECUTION_CONFIG is completed with the server's defaults (flyteadmin's
    /// `GetProjectAttributes`). `NotFound` if none apply.
    pub async fn get(&self, scope: Scope, resource_type: i32) -> AdminResult<Found> {
        let kind = checked_type(resource_type)?;
        self.check_scope(&scope).await?;
        let key = scope.key(resource_type);
        let record = match &scope {
            Scope::Project { .. } => match self.state.store.get_attributes(&key).await {
                Ok(record) => Some(record),
                Err(StoreError::NotFound(_)) => None,
                Err(err) => return Err(err.into()),
            },
            _ => self.state.store.resolve_attributes(&key).await?,
        };
        let defaults = &self.state.config.default_execution_config;
        match (record, &scope) {
            (Some(record), _) => {
                let mut attributes: MatchingAttributes =
                    decode_stored(&record.attributes, "matchable attributes")?;
                if let (Scope::Project { .. }, Some(Target::WorkflowExecutionConfig(config))) =
                    (&scope, &mut attributes.target)
                {
                    merge_into_exec_config(config, defaults);
                }
                Ok(Found {
                    attributes,
                    project: record.key.project,
                    domain: record.key.domain,
                    workflow: record.key.workflow,
                })
            }
            (None, Scope::Project { project })
                if kind == MatchableResource::WorkflowExecutionConfig =>
            {
                Ok(Found {
                    attributes: MatchingAttributes {
                        target: Some(Target::WorkflowExecutionConfig(defaults.clone())),
                    },
                    project: project.clone(),
                    domain: String::new(),
                    workflow: String::new(),
                })
            }
            (None, _) => Err(AdminError::NotFound(format!(
                "no {} attributes for {}: set them with Update{}Attributes",
                kind.as_str_name(),
                scope.describe(),
                match scope {
                    Scope::Project { .. } => "Project",
                    Scope::ProjectDomain { .. } => "ProjectDomain",
                    Scope::Workflow { .. } => "Workflow",
                }
            ))),
        }
    }

    /// Deletes the attributes of `resource_type` stored at exactly `scope`; `NotFound` if
    /// there are none (flyteadmin answers OK; saying so tells a typo from a deletion).
    pub async fn delete(&self, scope: Scope, resource_type: i32) -> AdminResult<()> {
        let kind = checked_type(resource_type)?;
        self.check_scope(&scope).await?;
        match self
            .state
            .store
            .delete_attributes(&scope.key(resource_type))
            .await
        {
            Ok(()) => {
                tracing::info!(scope = %scope.describe(), resource_type = kind.as_str_name(), "matchable attributes deleted");
                Ok(())
            }
            Err(StoreError::NotFound(_)) => Err(AdminError::NotFound(format!(
                "no {} attributes are set for {}",
                kind.as_str_name(),
                scope.describe()
            ))),
            Err(err) => Err(err.into()),
        }
    }

    /// Every scope with attributes of `resource_type`, most specific first.
    pub async fn list(
        &self,
        resource_type: i32,
    ) -> AdminResult<Vec<MatchableAttributesConfiguration>> {
        checked_type(resource_type)?;
        let records = self.state.store.list_attributes(resource_type).await?;
        records
            .into_iter()
            .map(|r| {
                Ok(MatchableAttributesConfiguration {
                    attributes: Some(decode_stored(&r.attributes, "matchable attributes")?),
                    project: r.key.project,
                    domain: r.key.domain,
                    workflow: r.key.workflow,
                    launch_plan: r.key.launch_plan,
                    org: String::new(),
                })
            })
            .collect()
    }

    /// flyteadmin's `ValidateProjectAndDomain` / `ValidateProjectForUpdate`, and a workflow
    /// name where one is needed.
    async fn check_scope(&self, scope: &Scope) -> AdminResult<()> {
        match scope {
            Scope::Project { project } => {
                if project.is_empty() {
                    return Err(missing("project"));
                }
                match self.state.store.get_project(project).await {
                    Ok(_) => Ok(()),
                    Err(StoreError::NotFound(_)) => Err(AdminError::InvalidArgument(format!(
                        "project {0} is not registered; register it first \
                         (RegisterProject, e.g. `flytectl create project --id {0}`)",
                        quoted(project)
                    ))),
                    Err(err) => Err(err.into()),
                }
            }
            Scope::ProjectDomain { project, domain } => {
                if project.is_empty() {
                    return Err(missing("project"));
                }
                if domain.is_empty() {
                    return Err(missing("domain"));
                }
                ensure_project_domain(&self.state, project, domain).await
            }
            Scope::Workflow {
                project,
                domain,
                workflow,
            } => {
                if project.is_empty() {
                    return Err(missing("project"));
                }
                if domain.is_empty() {
                    return Err(missing("domain"));
                }
                if workflow.is_empty() {
                    return Err(missing("workflow (the workflow's name)"));
                }
                ensure_project_domain(&self.state, project, domain).await
            }
        }
    }
}

fn checked_type(resource_type: i32) -> AdminResult<MatchableResource> {
    MatchableResource::try_from(resource_type).map_err(|_| {
        AdminError::InvalidArgument(format!(
            "invalid resource_type {resource_type}: expected one of TASK_RESOURCE, \
             CLUSTER_RESOURCE, EXECUTION_QUEUE, EXECUTION_CLUSTER_LABEL, \
             QUALITY_OF_SERVICE_SPECIFICATION, PLUGIN_OVERRIDE, WORKFLOW_EXECUTION_CONFIG, \
             CLUSTER_ASSIGNMENT"
        ))
    })
}

/// The type is which attribute the request sets (flyteadmin's `validateMatchingAttributes`).
fn resource_type_of(
    attributes: &MatchingAttributes,
    scope: &Scope,
) -> AdminResult<MatchableResource> {
    Ok(match &attributes.target {
        Some(Target::TaskResourceAttributes(_)) => MatchableResource::TaskResource,
        Some(Target::ClusterResourceAttributes(_)) => MatchableResource::ClusterResource,
        Some(Target::ExecutionQueueAttributes(_)) => MatchableResource::ExecutionQueue,
        Some(Target::ExecutionClusterLabel(_)) => MatchableResource::ExecutionClusterLabel,
        Some(Target::QualityOfService(_)) => MatchableResource::QualityOfServiceSpecification,
        Some(Target::PluginOverrides(_)) => MatchableResource::PluginOverride,
        Some(Target::WorkflowExecutionConfig(_)) => MatchableResource::WorkflowExecutionConfig,
        Some(Target::ClusterAssignment(_)) => MatchableResource::ClusterAssignment,
        None => {
            return Err(AdminError::InvalidArgument(format!(
                "matching_attributes for {} sets no attribute: set one of \
                 task_resource_attributes, execution_queue_attributes, execution_cluster_label, \
                 plugin_overrides, workflow_execution_config, …",
                scope.describe()
            )));
        }
    })
}

/// What would fail later (a quantity no one can read, a negative parallelism) is refused now.
fn validate(attributes: &MatchingAttributes) -> AdminResult<()> {
    match &attributes.target {
        Some(Target::TaskResourceAttributes(t)) => {
            for (which, spec) in [("defaults", &t.defaults), ("limits", &t.limits)] {
                let Some(spec) = spec else { continue };
                for (name, value) in resource_entries(spec) {
                    if !value.is_empty()
                        && flyte_engine::backend::resources::parse_quantity(value).is_none()
                    {
                        return Err(AdminError::InvalidArgument(format!(
                            "task_resource_attributes.{which}.{name}: {} is not a quantity \
                             (examples: cpu \"500m\" or \"2\", memory \"512Mi\" or \"1Gi\")",
                            quoted(value)
                        )));
                    }
                }
            }
        }
        Some(Target::WorkflowExecutionConfig(c)) if c.max_parallelism < 0 => {
            return Err(AdminError::InvalidArgument(format!(
                "workflow_execution_config.max_parallelism must be 0 (no limit) or positive, \
                 got {}",
                c.max_parallelism
            )));
        }
        Some(Target::PluginOverrides(p)) => {
            if let Some(o) = p.overrides.iter().find(|o| o.task_type.is_empty()) {
                return Err(AdminError::InvalidArgument(format!(
                    "plugin_overrides: an override without task_type (plugin ids {:?})",
                    o.plugin_id
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

fn resource_entries(spec: &TaskResourceSpec) -> [(&'static str, &str); 4] {
    [
        ("cpu", spec.cpu.as_str()),
        ("gpu", spec.gpu.as_str()),
        ("memory", spec.memory.as_str()),
        ("ephemeral_storage", spec.ephemeral_storage.as_str()),
    ]
}

/// flyteadmin's `mergeUpdatePluginOverrides`: the stored overrides, with those of the update
/// replacing the ones of the same task type (ordered by task type, for stable answers).
fn merge_plugin_overrides(
    existing: MatchingAttributes,
    new: &PluginOverrides,
) -> MatchingAttributes {
    let mut by_type = std::collections::BTreeMap::new();
    if let Some(Target::PluginOverrides(old)) = existing.target {
        for o in old.overrides {
            by_type.insert(o.task_type.clone(), o);
        }
    }
    for o in &new.overrides {
        by_type.insert(o.task_type.clone(), o.clone());
    }
    MatchingAttributes {
        target: Some(Target::PluginOverrides(PluginOverrides {
            overrides: by_type.into_values().collect(),
        })),
    }
}

/// flyteadmin's `MergeIntoExecConfig`: fills what `config` leaves unset from `from`; empty
/// maps, prefixes and identities count as unset.
pub fn merge_into_exec_config(
    config: &mut WorkflowExecutionConfig,
    from: &WorkflowExecutionConfig,
) {
    if config.max_parallelism == 0 && from.max_parallelism > 0 {
        config.max_parallelism = from.max_parallelism;
    }
    if config.security_context.is_none() && has_identity(from.security_context.as_ref()) {
        config.security_context = from.security_context.clone();
    }
    let prefix = |c: &Option<admin::RawOutputDataConfig>| {
        c.as_ref()
            .is_some_and(|c| !c.output_location_prefix.is_empty())
    };
    if !prefix(&config.raw_output_data_config) && prefix(&from.raw_output_data_config) {
        config.raw_output_data_config = from.raw_output_data_config.clone();
    }
    let labels = |l: &Option<admin::Labels>| l.as_ref().is_some_and(|l| !l.values.is_empty());
    if !labels(&config.labels) && labels(&from.labels) {
        config.labels = from.labels.clone();
    }
    let notes = |a: &Option<admin::Annotations>| a.as_ref().is_some_and(|a| !a.values.is_empty());
    if !notes(&config.annotations) && notes(&from.annotations) {
        config.annotations = from.annotations.clone();
    }
    if config.interruptible.is_none() && from.interruptible.is_some() {
        config.interruptible = from.interruptible;
    }
    if !config.overwrite_cache && from.overwrite_cache {
        config.overwrite_cache = true;
    }
    let envs = |e: &Option<admin::Envs>| e.as_ref().is_some_and(|e| !e.values.is_empty());
    if !envs(&config.envs) && envs(&from.envs) {
        config.envs = from.envs.clone();
    }
}

fn has_identity(sc: Option<&core::SecurityContext>) -> bool {
    sc.and_then(|s| s.run_as.as_ref()).is_some_and(|r| {
        !r.k8s_service_account.is_empty()
            || !r.iam_role.is_empty()
            || !r.execution_identity.is_empty()
    })
}

/// The execution settings of a request and its launch plan, as a config.
fn requested_config(spec: &ExecutionSpec, lp: &LaunchPlanSpec) -> WorkflowExecutionConfig {
    let from_spec = WorkflowExecutionConfig {
        max_parallelism: spec.max_parallelism,
        security_context: spec
            .security_context
            .clone()
            .filter(|s| has_identity(Some(s))),
        raw_output_data_config: spec.raw_output_data_config.clone(),
        labels: spec.labels.clone(),
        annotations: spec.annotations.clone(),
        interruptible: spec.interruptible,
        overwrite_cache: spec.overwrite_cache,
        envs: spec.envs.clone(),
        execution_env_assignments: Vec::new(),
    };
    let from_lp = WorkflowExecutionConfig {
        max_parallelism: lp.max_parallelism,
        security_context: lp.security_context.clone(),
        raw_output_data_config: lp.raw_output_data_config.clone(),
        labels: lp.labels.clone(),
        annotations: lp.annotations.clone(),
        interruptible: lp.interruptible,
        overwrite_cache: lp.overwrite_cache,
        envs: lp.envs.clone(),
        execution_env_assignments: Vec::new(),
    };
    let mut config = from_spec;
    merge_into_exec_config(&mut config, &from_lp);
    config
}

/// The matchable attributes an execution's creation applies (workflow execution config and
/// task resources, every level that matches its workflow), read in one round trip.
pub struct ExecutionAttributes {
    /// Most specific first.
    records: Vec<AttributesRecord>,
}

impl ExecutionAttributes {
    /// Those of an execution of `workflow` in `project`/`domain`.
    pub async fn read(
        state: &AdminState,
        project: &str,
        domain: &str,
        workflow: &str,
    ) -> AdminResult<Self> {
        let types = [
            MatchableResource::WorkflowExecutionConfig as i32,
            MatchableResource::TaskResource as i32,
            MatchableResource::PluginOverride as i32,
        ];
        let records = state
            .store
            .applying_attributes(project, domain, workflow, "", &types)
            .await?;
        Ok(Self { records })
    }

    /// The most specific record of `resource_type` (flyteadmin's `ResourceRepo.Get`).
    fn most_specific(&self, resource_type: MatchableResource) -> Option<&AttributesRecord> {
        self.records
            .iter()
            .find(|r| r.key.resource_type == resource_type as i32)
    }

    /// The plugin overrides of the most specific level (flyteadmin's `addPluginOverrides`
    /// takes them whole, not merged across levels): the engine chooses task backends by them.
    pub fn plugin_overrides(&self) -> AdminResult<Vec<flyteidl::admin::PluginOverride>> {
        let Some(record) = self.most_specific(MatchableResource::PluginOverride) else {
            return Ok(Vec::new());
        };
        match decode_stored::<MatchingAttributes>(&record.attributes, "matchable attributes")?
            .target
        {
            Some(Target::PluginOverrides(p)) => Ok(p.overrides),
            _ => Ok(Vec::new()),
        }
    }

    /// The project level's record of `resource_type`.
    fn project_level(&self, resource_type: MatchableResource) -> Option<&AttributesRecord> {
        self.records.iter().find(|r| {
            r.key.resource_type == resource_type as i32
                && r.key.domain.is_empty()
                && r.key.workflow.is_empty()
                && r.key.launch_plan.is_empty()
        })
    }
}

/// The settings matchable attributes and the server's defaults add to an execution whose
/// request and launch plan leave them unset, as the spec fields to merge into its spec
/// (`None`: nothing to add). Execution queue and cluster label attributes are stored and
/// returned, but there is one queue and one cluster here.
pub fn execution_defaults(
    state: &AdminState,
    attributes: &ExecutionAttributes,
    spec: &ExecutionSpec,
    lp: &LaunchPlanSpec,
) -> AdminResult<Option<ExecutionSpec>> {
    let requested = requested_config(spec, lp);
    let mut config = requested.clone();
    let wec = MatchableResource::WorkflowExecutionConfig;
    // The most specific level, then the project level field by field (flyteadmin).
    for record in [attributes.most_specific(wec), attributes.project_level(wec)]
        .into_iter()
        .flatten()
    {
        if let Some(Target::WorkflowExecutionConfig(c)) =
            decode_stored::<MatchingAttributes>(&record.attributes, "matchable attributes")?.target
        {
            merge_into_exec_config(&mut config, &c);
        }
    }
    merge_into_exec_config(&mut config, &state.config.default_execution_config);
    if config == requested {
        return Ok(None);
    }
    // Only what was added: the request's own bytes stay as they were sent.
    let mut delta = ExecutionSpec::default();
    if requested.max_parallelism == 0 {
        delta.max_parallelism = config.max_parallelism;
    }
    if requested.security_context.is_none() {
        delta.security_context = config.security_context;
    }
    if requested.raw_output_data_config != config.raw_output_data_config {
        delta.raw_output_data_config = config.raw_output_data_config;
    }
    if requested.labels != config.labels {
        delta.labels = config.labels;
    }
    if requested.annotations != config.annotations {
        delta.annotations = config.annotations;
    }
    if requested.interruptible.is_none() {
        delta.interruptible = config.interruptible;
    }
    delta.overwrite_cache = config.overwrite_cache && !requested.overwrite_cache;
    if requested.envs != config.envs {
        delta.envs = config.envs;
    }
    Ok(Some(delta))
}

/// The task resource defaults and limits of an execution (its attributes, else the server's
/// configured ones), applied to every container task of `compiled` as flyteadmin's
/// `setCompiledTaskDefaults` does: an unset request takes the task's limit or the default, an
/// unset limit the request, and neither may exceed the platform limit.
pub fn apply_task_resources(
    state: &AdminState,
    attributes: &ExecutionAttributes,
    compiled: &mut core::CompiledWorkflowClosure,
) -> AdminResult<()> {
    let platform = match attributes.most_specific(MatchableResource::TaskResource) {
        Some(record) => {
            match decode_stored::<MatchingAttributes>(&record.attributes, "matchable attributes")?
                .target
            {
                Some(Target::TaskResourceAttributes(t)) => t,
                _ => state.config.default_task_resources.clone(),
            }
        }
        None => state.config.default_task_resources.clone(),
    };
    if platform == TaskResourceAttributes::default() {
        return Ok(());
    }
    let defaults = platform.defaults.unwrap_or_default();
    let limits = platform.limits.unwrap_or_default();
    for task in &mut compiled.tasks {
        let Some(container) = task
            .template
            .as_mut()
            .and_then(|t| match t.target.as_mut() {
                Some(core::task_template::Target::Container(c)) => Some(c),
                _ => None,
            })
        else {
            continue;
        };
        let resources = container.resources.get_or_insert_with(Default::default);
        for (name, default, limit) in [
            (ResourceName::Cpu, &defaults.cpu, &limits.cpu),
            (ResourceName::Memory, &defaults.memory, &limits.memory),
            (ResourceName::Gpu, &defaults.gpu, &limits.gpu),
            (
                ResourceName::EphemeralStorage,
                &defaults.ephemeral_storage,
                &limits.ephemeral_storage,
            ),
        ] {
            let take = |entries: &mut Vec<core::resources::ResourceEntry>| {
                let found = entries
                    .iter()
                    .find(|e| e.name == name as i32)
                    .map(|e| e.value.clone())
                    .filter(|v| !v.is_empty());
                entries.retain(|e| e.name != name as i32);
                found
            };
            let request = take(&mut resources.requests);
            let task_limit = take(&mut resources.limits);
            let (request, task_limit) = adjust_or_default(request, task_limit, default, limit);
            let entry = |value: String| core::resources::ResourceEntry {
                name: name as i32,
                value,
            };
            resources.requests.extend(request.map(entry));
            resources.limits.extend(task_limit.map(entry));
        }
    }
    Ok(())
}

/// flytek8s' `AdjustOrDefaultResource` for one resource: (request, limit).
fn adjust_or_default(
    request: Option<String>,
    limit: Option<String>,
    platform_default: &str,
    platform_limit: &str,
) -> (Option<String>, Option<String>) {
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let request = request
        .or_else(|| limit.clone())
        .or_else(|| nonempty(platform_default));
    let limit = limit.or_else(|| request.clone());
    let cap = |value: Option<String>, max: Option<&str>| -> Option<String> {
        use flyte_engine::backend::resources::parse_quantity as q;
        match (value, max) {
            (Some(v), Some(m)) => match (q(&v), q(m)) {
                (Some(a), Some(b)) if b > 0.0 && a > b => Some(m.to_owned()),
                _ => Some(v),
            },
            (v, _) => v,
        }
    };
    let pl = nonempty(platform_limit);
    let request = cap(request, pl.as_deref());
    let limit = cap(limit, pl.as_deref());
    let request = cap(request, limit.as_deref());
    (request, limit)
}
