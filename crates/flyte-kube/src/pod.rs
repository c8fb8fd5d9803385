//! The pod of one task attempt, built as flytepropeller builds it (flyteplugins
//! `go/tasks/pluginmachinery/flytek8s/`: `BuildRawPod`, `BuildRawContainer`,
//! `ApplyFlytePodConfiguration`, `AddFlyteCustomizationsToContainer`, `UpdatePod`,
//! `DecorateEnvVars`, `AdjustOrDefaultResource`; the object metadata as the k8s plugin
//! manager's `addObjectMetadata` sets it). A pure function: golden files in `tests/golden/`.
//!
//! Where this differs from propeller, on purpose:
//! * a container name that is no DNS-1123 label becomes the attempt's hashed generated name
//!   (`f` + base32 fnv32a), not four random letters, so a rebuilt pod is the same pod;
//! * no owner reference (propeller points at the FlyteWorkflow custom resource; there is no
//!   such object here: finished pods are deleted by us, see docs/kubernetes.md);
//! * the labels carry `app.kubernetes.io/managed-by: flyte-rs` (what the one watch selects),
//!   `project`, `domain` and `retry-attempt`; the full ids are annotations too (labels are cut
//!   to 63 characters);
//! * the execution's labels cannot replace Flyte's ids (`execution-id`, `project`, `domain`):
//!   in propeller they can (admin's `addMapValues` lets them win over the workflow's labels),
//!   but here those labels are how a pod is found and told apart;
//! * with no service account on the execution, the task template's `run_as` (then
//!   `kubernetes.default_service_account`) is used; propeller reads only the execution's.

use std::collections::BTreeMap;

use flyte_engine::backend::TaskAttempt;
use flyte_engine::backend::resources::parse_quantity;
use flyte_engine::backend::template::{self, TemplateValues};
use flyteidl::core::resources::ResourceName;
use flyteidl::core::{LiteralMap, task_template};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, Pod, PodSpec, ResourceRequirements, SecretEnvSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::{KubeConfig, MANAGED_BY, MANAGED_BY_LABEL};

/// `flytek8s.PrimaryContainerKey`: the template config key naming a pod task's main container.
pub const PRIMARY_CONTAINER_KEY: &str = "primary_container_name";
/// Annotations with the attempt's full identity (labels are cut to 63 characters).
pub const EXECUTION_ANNOTATION: &str = "flyte-rs/execution";
pub const NODE_ANNOTATION: &str = "flyte-rs/node-id";
pub const PRIMARY_CONTAINER_ANNOTATION: &str = "flyte-rs/primary-container";

/// A pod that cannot be built from this task: a user error (propeller's `BadTaskSpecification`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// The pod's namespace and name: what re-attach looks for.
pub fn pod_ref(
    attempt_key: &flyte_engine::backend::AttemptKey,
    cfg: &KubeConfig,
) -> (String, String) {
    (
        cfg.namespace(&attempt_key.project, &attempt_key.domain),
        dns1123_subdomain(&template::generated_name(attempt_key)),
    )
}

/// The pod of `attempt`. `inputs` are needed when the command uses `{{.Inputs.x}}`
/// ([`template::needs_inputs`]).
pub fn build_pod(
    attempt: &TaskAttempt,
    inputs: Option<&LiteralMap>,
    cfg: &KubeConfig,
) -> Result<Pod, BuildError> {
    build_pod_on(attempt, inputs, cfg, None)
}

/// The PodTemplate a task's pod starts from: the task's `pod_template_name`, else
/// `kubernetes.default_pod_template_name` (propeller `default-pod-template-name`); `true` when
/// the task named it (then it must exist).
pub fn pod_template_name<'a>(
    t: &'a flyteidl::core::TaskTemplate,
    cfg: &'a KubeConfig,
) -> Option<(&'a str, bool)> {
    let from_task = t
        .metadata
        .as_ref()
        .map(|m| m.pod_template_name.as_str())
        .filter(|n| !n.is_empty());
    match from_task {
        Some(n) => Some((n, true)),
        None => cfg
            .default_pod_template_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(|n| (n, false)),
    }
}

/// [`build_pod`] on a PodTemplate of the cluster, merged as propeller's `BuildPodWithSpec`
/// merges it (flytek8s `pod_helper.go`): the template's pod spec under the task's (`mergo`
/// with override and appended lists), its container `default` under every container and
/// `primary` under the primary one, its metadata under the pod's.
pub fn build_pod_on(
    attempt: &TaskAttempt,
    inputs: Option<&LiteralMap>,
    cfg: &KubeConfig,
    pod_template: Option<&k8s_openapi::api::core::v1::PodTemplate>,
) -> Result<Pod, BuildError> {
    let t = &attempt.template;
    let (namespace, name) = pod_ref(&attempt.key, cfg);
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();

    // BuildRawPod: one container from the template, or the pod spec of a pod task.
    let (mut spec, primary) = match &t.target {
        Some(task_template::Target::Container(c)) => {
            if c.data_config.as_ref().is_some_and(|d| d.enabled) {
                return Err(BuildError(
                    "raw containers with data_config (flytekit ContainerTask inputs/outputs as files) \
                     need the copilot sidecar, which the Kubernetes backend does not run yet"
                        .into(),
                ));
            }
            let container_name = container_name(&attempt.key);
            let container = Container {
                name: container_name.clone(),
                image: Some(c.image.clone()),
                command: non_empty(c.command.clone()),
                args: non_empty(c.args.clone()),
                env: non_empty(c.env.iter().map(|kv| env_var(&kv.key, &kv.value)).collect()),
                resources: Some(task_resources(&c.resources, cfg)?),
                termination_message_policy: Some("FallbackToLogsOnError".into()),
                image_pull_policy: cfg.image_pull_policy.clone(),
                ..Default::default()
            };
            (
                PodSpec {
                    containers: vec![container],
                    ..Default::default()
                },
                container_name,
            )
        }
        Some(task_template::Target::K8sPod(k8s_pod)) => {
            let Some(pod_spec) = &k8s_pod.pod_spec else {
                return Err(BuildError(
                    "pod tasks must give their pod spec in the k8s_pod target".into(),
                ));
            };
            let json = serde_json::to_value(pod_spec)
                .map_err(|e| BuildError(format!("the task's pod spec: {e}")))?;
            let spec: PodSpec = serde_json::from_value(json).map_err(|e| {
                BuildError(format!(
                    "the task's pod spec is not a Kubernetes PodSpec: {e}"
                ))
            })?;
            let primary = t
                .config
                .get(PRIMARY_CONTAINER_KEY)
                .cloned()
                .filter(|p| !p.is_empty())
                .or_else(|| Some(k8s_pod.primary_container_name.clone()).filter(|p| !p.is_empty()))
                .ok_or_else(|| {
                    BuildError(format!(
                        "the pod task's config has no [{PRIMARY_CONTAINER_KEY}] key"
                    ))
                })?;
            if let Some(meta) = &k8s_pod.metadata {
                labels.extend(meta.labels.clone());
                annotations.extend(meta.annotations.clone());
            }
            (spec, primary)
        }
        _ => {
            return Err(BuildError(format!(
                "task type [{}] has neither a container nor a pod spec to run as a pod",
                t.r#type
            )));
        }
    };
    if !spec.containers.iter().any(|c| c.name == primary) {
        return Err(BuildError(format!(
            "the pod task's primary container [{primary}] is not among its containers"
        )));
    }
    if let Some(base) = pod_template.and_then(|p| p.template.as_ref()) {
        spec = merge_onto_template(base.spec.as_ref(), spec, &primary)?;
        if let Some(meta) = &base.metadata {
            // Under the task's own pod metadata.
            let mut l = meta.labels.clone().unwrap_or_default();
            l.extend(labels);
            labels = l;
            let mut a = meta.annotations.clone().unwrap_or_default();
            a.extend(annotations);
            annotations = a;
        }
    }
    spec.enable_service_links = Some(false);

    // ApplyFlytePodConfiguration: templates and the attempt's environment in every container;
    // the primary keeps its resources with defaults filled in, the others are only kept in
    // the platform's range.
    let values = TemplateValues {
        paths: &attempt.paths,
        per_retry_unique_key: template::per_retry_unique_key(&attempt.key),
        namespace: namespace.clone(),
        inputs,
    };
    for c in spec.containers.iter_mut() {
        let render = |parts: Option<Vec<String>>| -> Result<Option<Vec<String>>, BuildError> {
            match parts {
                None => Ok(None),
                Some(p) => template::render_all(&p, &values)
                    .map(Some)
                    .map_err(|e| BuildError(e.0)),
            }
        };
        c.command = render(c.command.take())?;
        c.args = render(c.args.take())?;
        c.env = non_empty(decorate_env(c.env.take().unwrap_or_default(), attempt));
        // DecorateEnvVars' `DefaultEnvFromSecrets`: optional, so a missing secret does not
        // hold the pod in CreateContainerConfigError.
        let mut env_from = c.env_from.take().unwrap_or_default();
        env_from.extend(cfg.env_from_secrets.iter().map(|name| EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: name.clone(),
                optional: Some(true),
            }),
            ..Default::default()
        }));
        c.env_from = non_empty(env_from);
        let is_primary = c.name == primary;
        let resources = c.resources.take().unwrap_or_default();
        c.resources = Some(adjust_resources(resources, cfg, is_primary)?);
    }

    // UpdatePod.
    if spec.restart_policy.as_deref().unwrap_or("").is_empty() {
        spec.restart_policy = Some("Never".into());
    }
    let mut tolerations = if attempt.interruptible {
        cfg.interruptible_tolerations.clone()
    } else {
        Vec::new()
    };
    tolerations.extend(spec.tolerations.take().unwrap_or_default());
    spec.tolerations = non_empty(tolerations);
    // `GetServiceAccountNameFromTaskExecutionMetadata`: the execution's security context.
    if !attempt.service_account.is_empty() {
        spec.service_account_name = Some(attempt.service_account.clone());
    } else if spec
        .service_account_name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        let from_task = t
            .security_context
            .as_ref()
            .and_then(|s| s.run_as.as_ref())
            .map(|r| r.k8s_service_account.clone())
            .filter(|s| !s.is_empty());
        spec.service_account_name = from_task.or_else(|| cfg.default_service_account.clone());
    }
    if spec.scheduler_name.as_deref().unwrap_or("").is_empty() {
        spec.scheduler_name = cfg.scheduler_name.clone();
    }
    let mut node_selector = cfg.default_node_selector.clone();
    node_selector.extend(spec.node_selector.take().unwrap_or_default());
    if attempt.interruptible {
        node_selector.extend(cfg.interruptible_node_selector.clone());
    }
    spec.node_selector = (!node_selector.is_empty()).then_some(node_selector);

    // The secret webhook's k8s injector, applied here instead of at admission.
    let secrets = t
        .security_context
        .as_ref()
        .map(|s| s.secrets.as_slice())
        .unwrap_or_default();
    inject_secrets(&mut spec, secrets)?;

    // addObjectMetadata: config defaults < the pod's own < the execution's (`UnionMaps`), with
    // Flyte's ids last.
    let key = &attempt.key;
    let task_name = t.id.as_ref().map(|i| i.name.clone()).unwrap_or_default();
    let mut all_labels = cfg.default_labels.clone();
    all_labels.extend(labels);
    all_labels.extend(attempt.labels.clone());
    for (k, v) in [
        (MANAGED_BY_LABEL, MANAGED_BY.to_string()),
        ("execution-id", key.execution.clone()),
        ("node-id", key.node_id.clone()),
        ("task-name", task_name.clone()),
        ("project", key.project.clone()),
        ("domain", key.domain.clone()),
        ("retry-attempt", key.retry_attempt.to_string()),
        ("interruptible", attempt.interruptible.to_string()),
    ] {
        all_labels.insert(k.to_string(), label_value(&v));
    }
    let mut all_annotations = cfg.default_annotations.clone();
    all_annotations.extend(annotations);
    all_annotations.extend(attempt.annotations.clone());
    all_annotations.insert(
        EXECUTION_ANNOTATION.into(),
        format!("{}/{}/{}", key.project, key.domain, key.execution),
    );
    all_annotations.insert(NODE_ANNOTATION.into(), key.node_id.clone());
    all_annotations.insert(PRIMARY_CONTAINER_ANNOTATION.into(), primary);

    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: Some(all_labels),
            annotations: Some(all_annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// Where secret files are mounted: `/etc/flyte/secrets/<group>/<key>`, lower-cased
/// (propeller's `K8sSecretPathPrefix`).
pub const SECRETS_MOUNT_DIR: &str = "/etc/flyte/secrets";

/// The task's `secret_requests` as Kubernetes secrets, as propeller's pod webhook injects them
/// (flytepropeller/pkg/secret/k8s_secrets.go `K8sSecretInjector.Inject`, utils.go): the group
/// names the `v1/Secret` in the pod's namespace, the key one key inside it.
/// * `ENV_VAR`: `_FSEC_<GROUP>_<KEY>` (upper-cased) from a `secretKeyRef`, plus
///   `FLYTE_SECRETS_ENV_PREFIX=_FSEC_`; `env_var` names a copy of the variable.
/// * `FILE` and `ANY` (propeller's default is a file): a secret volume per group with the key as
///   item `<key>` (lower-cased), mounted read-only at `/etc/flyte/secrets/<group>`, plus
///   `FLYTE_SECRETS_DEFAULT_DIR=/etc/flyte/secrets` and `FLYTE_SECRETS_FILE_PREFIX=""`;
///   `env_var` names a variable holding the file's path.
///
/// Every reference is `optional`, as propeller makes it: a missing secret does not hold the pod;
/// the task finds no value and flytekit fails naming the variable and the file it looked for.
/// Variables are put first in every container and init container, replacing one of the same
/// name (`AppendEnvVars`).
fn inject_secrets(
    spec: &mut PodSpec,
    secrets: &[flyteidl::core::Secret],
) -> Result<(), BuildError> {
    use flyte_engine::secrets::{
        DEFAULT_DIR_VAR, ENV_PREFIX_VAR, FILE_PREFIX_VAR, TASK_ENV_PREFIX,
    };
    use flyteidl::core::secret::MountType;
    use k8s_openapi::api::core::v1::{
        EnvVarSource, KeyToPath, SecretKeySelector, SecretVolumeSource, Volume, VolumeMount,
    };

    for secret in secrets {
        if secret.group.is_empty() || secret.key.is_empty() {
            return Err(BuildError(format!(
                "a secret request for Kubernetes secrets needs both a group (the Secret's name) and a \
                 key (a key inside it); got group {:?}, key {:?}",
                secret.group, secret.key
            )));
        }
        let mut vars: Vec<EnvVar> = Vec::new();
        match MountType::try_from(secret.mount_requirement) {
            Ok(MountType::EnvVar) => {
                let var = EnvVar {
                    name: format!("{TASK_ENV_PREFIX}{}_{}", secret.group, secret.key)
                        .to_uppercase(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret.group.clone(),
                            key: secret.key.clone(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                };
                if !secret.env_var.is_empty() {
                    let mut copy = var.clone();
                    copy.name = secret.env_var.clone();
                    vars.push(var);
                    vars.push(copy);
                } else {
                    vars.push(var);
                }
                vars.push(env_var(ENV_PREFIX_VAR, TASK_ENV_PREFIX));
            }
            Ok(MountType::Any) | Ok(MountType::File) => {
                let item = KeyToPath {
                    key: secret.key.clone(),
                    path: secret.key.to_lowercase(),
                    ..Default::default()
                };
                let volumes = spec.volumes.get_or_insert_with(Vec::new);
                // `AppendVolume`: one volume per Secret, its keys as items.
                let existing = volumes.iter_mut().find(|v| {
                    v.secret
                        .as_ref()
                        .is_some_and(|s| s.secret_name.as_deref() == Some(secret.group.as_str()))
                });
                let volume_name = match existing {
                    Some(v) => {
                        let items = v
                            .secret
                            .as_mut()
                            .map(|s| s.items.get_or_insert_with(Vec::new));
                        if let Some(items) = items
                            && !items.iter().any(|i| i.key == item.key)
                        {
                            items.push(item);
                        }
                        v.name.clone()
                    }
                    None => {
                        let name = template::base32_flyte(
                            format!("{}_{}", secret.group, secret.group_version).as_bytes(),
                        );
                        volumes.push(Volume {
                            name: name.clone(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(secret.group.clone()),
                                items: Some(vec![item]),
                                optional: Some(true),
                                ..Default::default()
                            }),
                            ..Default::default()
                        });
                        name
                    }
                };
                let mount = VolumeMount {
                    name: volume_name,
                    read_only: Some(true),
                    mount_path: format!("{SECRETS_MOUNT_DIR}/{}", secret.group.to_lowercase()),
                    ..Default::default()
                };
                for c in spec
                    .init_containers
                    .iter_mut()
                    .flatten()
                    .chain(spec.containers.iter_mut())
                {
                    let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
                    if !mounts.iter().any(|m| m.name == mount.name) {
                        mounts.push(mount.clone());
                    }
                }
                vars.push(env_var(DEFAULT_DIR_VAR, SECRETS_MOUNT_DIR));
                vars.push(env_var(FILE_PREFIX_VAR, ""));
                if !secret.env_var.is_empty() {
                    vars.push(env_var(
                        &secret.env_var,
                        &format!(
                            "{SECRETS_MOUNT_DIR}/{}/{}",
                            secret.group.to_lowercase(),
                            secret.key.to_lowercase()
                        ),
                    ));
                }
            }
            Err(_) => {
                return Err(BuildError(format!(
                    "secret {}/{}: unknown mount requirement {}",
                    secret.group, secret.key, secret.mount_requirement
                )));
            }
        }
        for c in spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut())
        {
            let env = c.env.get_or_insert_with(Vec::new);
            for var in &vars {
                env.retain(|e| e.name != var.name);
                env.insert(0, var.clone());
            }
        }
    }
    Ok(())
}

/// Container names a PodTemplate uses for the bases of all containers and of the primary one.
const DEFAULT_CONTAINER_TEMPLATE: &str = "default";
const PRIMARY_CONTAINER_TEMPLATE: &str = "primary";

fn merge_onto_template(
    base: Option<&PodSpec>,
    spec: PodSpec,
    primary: &str,
) -> Result<PodSpec, BuildError> {
    let Some(base) = base else { return Ok(spec) };
    let template_container = |name: &str| base.containers.iter().find(|c| c.name == name);
    let default = template_container(DEFAULT_CONTAINER_TEMPLATE);
    let primary_base = template_container(PRIMARY_CONTAINER_TEMPLATE);
    let mut containers = Vec::new();
    for c in &spec.containers {
        let mut merged: Option<serde_json::Value> = default.map(to_json);
        if c.name == primary
            && let Some(p) = primary_base
        {
            match merged.as_mut() {
                Some(m) => merge_json(m, &to_json(p)),
                None => merged = Some(to_json(p)),
            }
        }
        let container = match merged {
            None => c.clone(),
            Some(mut m) => {
                merge_json(&mut m, &to_json(c));
                // The task's container keeps its name (the template's is a role).
                m["name"] = serde_json::Value::String(c.name.clone());
                serde_json::from_value(m).map_err(|e| {
                    BuildError(format!("the PodTemplate's container does not merge: {e}"))
                })?
            }
        };
        containers.push(container);
    }
    let mut pod = to_json(base);
    merge_json(&mut pod, &to_json(&spec));
    let mut merged: PodSpec = serde_json::from_value(pod)
        .map_err(|e| BuildError(format!("the PodTemplate's pod spec does not merge: {e}")))?;
    merged.containers = containers;
    // The plugin sets `restartPolicy: Never` after the merge: a template's `OnFailure` would
    // restart a failed task in place instead of failing the attempt.
    merged.restart_policy = spec.restart_policy;
    Ok(merged)
}

/// The pod types always serialise.
fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// `mergo.Merge(dst, src, WithOverride, WithAppendSlice)` on JSON: objects merged key by key,
/// lists appended, a value of `src` (not null, not "") replacing `dst`'s.
fn merge_json(dst: &mut serde_json::Value, src: &serde_json::Value) {
    use serde_json::Value;
    match (dst, src) {
        (_, Value::Null) => {}
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(existing) => merge_json(existing, v),
                    None => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) => d.extend(s.iter().cloned()),
        (_, Value::String(s)) if s.is_empty() => {}
        (d, s) => *d = s.clone(),
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// `DecorateEnvVars`: the container's own variables, then the attempt's (`FLYTE_INTERNAL_*`,
/// `FLYTE_ATTEMPT_NUMBER`, the execution's `envs`, the array index). Propeller appends and
/// lets the later duplicate win in the kubelet; here a clash keeps only the attempt's, so the
/// pod says what the task sees.
fn decorate_env(container: Vec<EnvVar>, attempt: &TaskAttempt) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = container
        .into_iter()
        .filter(|e| !attempt.env.contains_key(&e.name))
        .collect();
    env.extend(
        attempt
            .env
            .iter()
            .filter(|(k, _)| !is_credential(k))
            .map(|(k, v)| env_var(k, v)),
    );
    if let Some(index) = attempt.array_index
        && !attempt.env.contains_key("FLYTE_K8S_ARRAY_INDEX")
    {
        // The array plugin's sub-task environment (`BATCH_JOB_ARRAY_INDEX_VAR_NAME` names it).
        env.push(env_var(
            "BATCH_JOB_ARRAY_INDEX_VAR_NAME",
            "FLYTE_K8S_ARRAY_INDEX",
        ));
        env.push(env_var("FLYTE_K8S_ARRAY_INDEX", &index.to_string()));
    }
    env
}

/// Whether an attempt variable is a credential (the server's object-store keys, tokens): never
/// written into a pod spec, which anyone allowed to `get pods` reads. Pods reach the store with
/// their service account's identity or `kubernetes.env_from_secrets`.
pub fn is_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["SECRET", "TOKEN", "PASSWORD", "ACCOUNT_KEY", "ACCESS_KEY"]
        .iter()
        .any(|w| upper.contains(w))
}

/// `ToK8sResourceRequirements`: the template's requests and limits by Kubernetes name
/// (`gpu` as the configured GPU resource, as `SanitizeGPUResourceRequirements` does).
fn task_resources(
    resources: &Option<flyteidl::core::Resources>,
    cfg: &KubeConfig,
) -> Result<ResourceRequirements, BuildError> {
    let Some(r) = resources else {
        return Ok(ResourceRequirements::default());
    };
    let list = |entries: &[flyteidl::core::resources::ResourceEntry]| {
        let mut out = BTreeMap::new();
        for e in entries {
            let name = match ResourceName::try_from(e.name) {
                Ok(ResourceName::Cpu) => "cpu".to_string(),
                Ok(ResourceName::Memory) => "memory".into(),
                Ok(ResourceName::Gpu) => cfg.gpu_resource_name.clone(),
                Ok(ResourceName::EphemeralStorage) => "ephemeral-storage".into(),
                // propeller skips STORAGE and UNKNOWN.
                _ => continue,
            };
            if parse_quantity(&e.value).is_none() {
                return Err(BuildError(format!(
                    "the task's {name} {:?} is not a quantity (like 500m, 2, 512Mi, 4Gi)",
                    e.value
                )));
            }
            out.insert(name, Quantity(e.value.clone()));
        }
        Ok(out)
    };
    Ok(ResourceRequirements {
        requests: Some(list(&r.requests)?).filter(|m| !m.is_empty()),
        limits: Some(list(&r.limits)?).filter(|m| !m.is_empty()),
        claims: None,
    })
}

/// `ApplyResourceOverrides`: CPU and memory always (the primary container gets the platform
/// defaults where it sets nothing: `AdjustOrDefaultResource`; other containers are only kept
/// under the platform limits: `ensureResourceRange`), ephemeral storage and the GPU only when
/// set.
fn adjust_resources(
    mut r: ResourceRequirements,
    cfg: &KubeConfig,
    assign_if_unset: bool,
) -> Result<ResourceRequirements, BuildError> {
    let mut requests = r.requests.take().unwrap_or_default();
    let mut limits = r.limits.take().unwrap_or_default();
    let platform = [
        (
            "cpu",
            Some(cfg.default_cpu.as_str()),
            cfg.limit_cpu.as_deref(),
        ),
        (
            "memory",
            Some(cfg.default_memory.as_str()),
            cfg.limit_memory.as_deref(),
        ),
        ("ephemeral-storage", None, None),
        (cfg.gpu_resource_name.as_str(), None, None),
    ];
    for (name, default, platform_limit) in platform {
        let always = name == "cpu" || name == "memory";
        if !always && !requests.contains_key(name) && !limits.contains_key(name) {
            continue;
        }
        let value = |q: Option<&Quantity>| -> Result<Option<(f64, String)>, BuildError> {
            let Some(q) = q else { return Ok(None) };
            let v = parse_quantity(&q.0).ok_or_else(|| {
                BuildError(format!(
                    "the {name} quantity {:?} is not a quantity (like 500m, 2, 512Mi, 4Gi)",
                    q.0
                ))
            })?;
            // Zero is unset (`Quantity.IsZero`).
            Ok((v > 0.0).then(|| (v, q.0.clone())))
        };
        let mut request = value(requests.get(name))?;
        let mut limit = value(limits.get(name))?;
        let plimit = value(platform_limit.map(|s| Quantity(s.into())).as_ref())?;
        if assign_if_unset {
            if request.is_none() {
                request = limit
                    .clone()
                    .or(value(default.map(|s| Quantity(s.into())).as_ref())?);
            }
            if limit.is_none() {
                limit = request.clone();
            }
        }
        // ensureResourceRange: request ≤ platform limit, limit ≤ platform limit, request ≤ limit.
        let lower = |v: Option<(f64, String)>, to: &Option<(f64, String)>| match (v, to) {
            (Some(v), Some(l)) if v.0 > l.0 => Some(l.clone()),
            (v, _) => v,
        };
        request = lower(request, &plimit);
        limit = lower(limit, &plimit);
        request = lower(request, &limit);
        match request {
            Some((_, s)) => {
                requests.insert(name.to_string(), Quantity(s));
            }
            None => {
                requests.remove(name);
            }
        }
        match limit {
            Some((_, s)) => {
                limits.insert(name.to_string(), Quantity(s));
            }
            None => {
                limits.remove(name);
            }
        }
    }
    r.requests = (!requests.is_empty()).then_some(requests);
    r.limits = (!limits.is_empty()).then_some(limits);
    Ok(r)
}

/// The primary container's name: the attempt's generated name when it is a DNS-1123 label
/// (as `BuildRawContainer`), else its hashed form (which always is one).
fn container_name(key: &flyte_engine::backend::AttemptKey) -> String {
    let name = template::generated_name(key);
    if is_dns1123_label(&name) {
        name
    } else {
        let attempt = key.retry_attempt.to_string();
        // Longer than any name fits: the `f` + base32 hash of the same parts.
        template::fixed_length_unique_id(
            &[
                key.execution.as_str(),
                key.node_id.as_str(),
                attempt.as_str(),
            ]
            .join("-"),
            0,
        )
    }
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// `ConvertToDNS1123SubdomainCompatibleString`: lower case, characters outside `[a-z0-9.-]`
/// become `-`, trimmed of non-alphanumerics at both ends, at most 253 characters.
pub fn dns1123_subdomain(name: &str) -> String {
    let lowered: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = lowered.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    trimmed.chars().take(253).collect()
}

/// A label value (`SanitizeLabelValue`): at most 63 characters of `[A-Za-z0-9._-]`, starting
/// and ending alphanumeric.
pub(crate) fn label_value(v: &str) -> String {
    let cleaned: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Whether the template has something to run as a pod (a container or a pod spec). A raw
/// container with `data_config` needs the copilot sidecar, not done yet: it stays with the
/// local backend, which runs copilot's part itself.
pub fn has_pod_target(t: &flyteidl::core::TaskTemplate) -> bool {
    match &t.target {
        Some(task_template::Target::Container(c)) => {
            !c.data_config.as_ref().is_some_and(|d| d.enabled)
        }
        Some(task_template::Target::K8sPod(_)) => true,
        _ => false,
    }
}

/// Every command and argument of the task's containers, before templates are rendered.
pub fn template_parts(t: &flyteidl::core::TaskTemplate) -> Vec<String> {
    match &t.target {
        Some(task_template::Target::Container(c)) => {
            c.command.iter().chain(c.args.iter()).cloned().collect()
        }
        Some(task_template::Target::K8sPod(p)) => p
            .pod_spec
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| serde_json::from_value::<PodSpec>(v).ok())
            .map(|spec| {
                spec.containers
                    .into_iter()
                    .flat_map(|c| {
                        c.command
                            .unwrap_or_default()
                            .into_iter()
                            .chain(c.args.unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_containers_with_data_config_stay_with_the_local_backend() {
        let mut c = flyteidl::core::Container::default();
        let mut t = flyteidl::core::TaskTemplate {
            target: Some(task_template::Target::Container(c.clone())),
            ..Default::default()
        };
        assert!(has_pod_target(&t));
        c.data_config = Some(flyteidl::core::DataLoadingConfig {
            enabled: true,
            ..Default::default()
        });
        t.target = Some(task_template::Target::Container(c));
        assert!(!has_pod_target(&t));
    }

    #[test]
    fn credentials_never_go_into_the_pod_spec() {
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "FLYTE_AWS_ACCESS_KEY_ID",
            "AWS_SESSION_TOKEN",
            "FLYTE_AZURE_STORAGE_ACCOUNT_KEY",
        ] {
            assert!(is_credential(name), "{name}");
        }
        for name in [
            "FLYTE_INTERNAL_EXECUTION_ID",
            "AWS_REGION",
            "FLYTE_AWS_ENDPOINT",
        ] {
            assert!(!is_credential(name), "{name}");
        }
    }

    fn inject(
        pod: PodSpec,
        secret: flyteidl::core::Secret,
    ) -> Result<serde_json::Value, BuildError> {
        let mut pod = pod;
        inject_secrets(&mut pod, &[secret])?;
        Ok(serde_json::to_value(&pod).unwrap())
    }

    fn one_container() -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "container1".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn secret(group: &str, key: &str, mount: i32, env_var: &str) -> flyteidl::core::Secret {
        flyteidl::core::Secret {
            group: group.into(),
            key: key.into(),
            mount_requirement: mount,
            env_var: env_var.into(),
            ..Default::default()
        }
    }

    // The cases of propeller's flytepropeller/pkg/secret/k8s_secrets_test.go
    // (TestK8sSecretInjector_Inject), the expected pods written as JSON.
    #[test]
    fn secrets_are_injected_as_propellers_k8s_webhook_does() {
        use flyteidl::core::secret::MountType;
        let (any, env, file) = (
            MountType::Any as i32,
            MountType::EnvVar as i32,
            MountType::File as i32,
        );
        let key_ref = |name: &str| {
            serde_json::json!({"name": name, "valueFrom": {"secretKeyRef":
                {"key": "HELLO", "name": "grOUP", "optional": true}}})
        };
        // "require group"
        let err = inject(one_container(), secret("", "HELLO", env, "")).unwrap_err();
        assert!(err.0.contains("needs both a group"), "{err}");
        // "simple"
        let got = inject(one_container(), secret("grOUP", "HELLO", env, "")).unwrap();
        assert_eq!(
            got["containers"][0]["env"],
            serde_json::json!([{"name": "FLYTE_SECRETS_ENV_PREFIX", "value": "_FSEC_"},
                key_ref("_FSEC_GROUP_HELLO")])
        );
        assert!(got.get("volumes").is_none());
        // "simple with env_name"
        let got = inject(
            one_container(),
            secret("grOUP", "HELLO", env, "MY_CUSTOM_ENV"),
        )
        .unwrap();
        assert_eq!(
            got["containers"][0]["env"],
            serde_json::json!([{"name": "FLYTE_SECRETS_ENV_PREFIX", "value": "_FSEC_"},
                key_ref("MY_CUSTOM_ENV"), key_ref("_FSEC_GROUP_HELLO")])
        );
        // "require file single"; ANY is a file too (propeller's `fallthrough`).
        for mount in [file, any] {
            let got = inject(one_container(), secret("grOUP", "HELLO", mount, "")).unwrap();
            assert_eq!(
                got["volumes"],
                serde_json::json!([{"name": "m4ze5vkql3", "secret": {"secretName": "grOUP",
                    "items": [{"key": "HELLO", "path": "hello"}], "optional": true}}])
            );
            assert_eq!(
                got["containers"][0]["volumeMounts"],
                serde_json::json!([{"name": "m4ze5vkql3", "mountPath": "/etc/flyte/secrets/group",
                    "readOnly": true}])
            );
            assert_eq!(
                got["containers"][0]["env"],
                serde_json::json!([{"name": "FLYTE_SECRETS_FILE_PREFIX", "value": ""},
                    {"name": "FLYTE_SECRETS_DEFAULT_DIR", "value": "/etc/flyte/secrets"}])
            );
        }
        // "require file single with name"
        let got = inject(
            one_container(),
            secret("grOUP", "HELLO", file, "MY_CUSTOM_ENV"),
        )
        .unwrap();
        assert_eq!(
            got["containers"][0]["env"][0],
            serde_json::json!({"name": "MY_CUSTOM_ENV", "value": "/etc/flyte/secrets/group/hello"})
        );
        // "require file multiple from same secret group": one volume, two items, one mount.
        let mut pod = one_container();
        inject_secrets(
            &mut pod,
            &[
                secret("grOUP", "HELLO", file, ""),
                secret("grOUP", "world", file, ""),
            ],
        )
        .unwrap();
        let got = serde_json::to_value(&pod).unwrap();
        assert_eq!(
            got["volumes"][0]["secret"]["items"],
            serde_json::json!([{"key": "HELLO", "path": "hello"}, {"key": "world", "path": "world"}])
        );
        assert_eq!(got["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(
            got["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(got["containers"][0]["env"].as_array().unwrap().len(), 2);
        // "require file all keys" (no group) is refused.
        assert!(inject(one_container(), secret("", "hello", file, "")).is_err());
    }

    #[test]
    fn names_follow_dns_rules() {
        assert_eq!(dns1123_subdomain("Exec_1-n0-0"), "exec-1-n0-0");
        assert_eq!(label_value("-a/b_"), "a-b");
        assert!(is_dns1123_label("abc-0"));
        assert!(!is_dns1123_label("a.b"));
    }
}
