//! The `kubernetes` section of the typed configuration (crates/flyte-rs/src/config.rs embeds
//! it; docs/kubernetes.md lists the keys). Names follow propeller's `k8s` plugin config where
//! there is one (`default-cpus`, `interruptible-tolerations`, …).

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Toleration;
use serde::{Deserialize, Serialize};

/// Label every pod of ours carries; the one watch selects on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "flyte-rs";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeConfig {
    /// Run the task types below as pods (off: everything stays on the local backend).
    pub enabled: bool,
    /// Task types run as pods (`task_type` of the template).
    pub task_types: Vec<String>,
    /// The namespace of a project and domain: `{{ project }}` and `{{ domain }}` are replaced
    /// (flyteadmin's `namespace_mapping.template`).
    pub namespace_template: String,
    /// A kubeconfig file; unset: in-cluster (the pod's service account), else `KUBECONFIG`/
    /// `~/.kube/config` as kubectl finds it.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (unset: its current context).
    pub context: Option<String>,
    /// Platform default requests (propeller `default-cpus`, `default-memory`), given to a
    /// task that sets neither request nor limit.
    pub default_cpu: String,
    pub default_memory: String,
    /// Platform limits: a request or limit above one is lowered to it (flyteadmin's
    /// `task_resource_limits`); unset: none.
    pub limit_cpu: Option<String>,
    pub limit_memory: Option<String>,
    /// The extended resource name a task's `gpu` becomes (propeller `gpu-resource-name`).
    pub gpu_resource_name: String,
    /// Service account of pods whose task names none; unset: the namespace's `default`.
    pub default_service_account: Option<String>,
    /// Labels and annotations on every pod (propeller `default-labels`/`default-annotations`).
    pub default_labels: BTreeMap<String, String>,
    pub default_annotations: BTreeMap<String, String>,
    /// Node selector of every pod (propeller `default-node-selector`).
    pub default_node_selector: BTreeMap<String, String>,
    /// Added to interruptible tasks' pods (propeller `interruptible-tolerations`,
    /// `interruptible-node-selector`).
    pub interruptible_tolerations: Vec<Toleration>,
    pub interruptible_node_selector: BTreeMap<String, String>,
    /// Secrets whose keys every task container gets as variables (propeller
    /// `default-env-from-secrets`), e.g. object-store credentials: the server's own are never
    /// written into pod specs.
    pub env_from_secrets: Vec<String>,
    /// Propeller `scheduler-name`; unset: the cluster's default scheduler.
    pub scheduler_name: Option<String>,
    /// Propeller `image-pull-policy`; unset: Kubernetes' default for the tag.
    pub image_pull_policy: Option<String>,
    /// How long a pod may stay in `ImagePullBackOff` before the attempt fails (propeller
    /// `image-pull-backoff-grace-period`, 3m).
    pub image_pull_backoff_grace_secs: u64,
    /// The same for `CreateContainerConfigError` and `CreateContainerError` (propeller
    /// `create-container-config-error-grace-period`, `create-container-error-grace-period`,
    /// both 3m).
    pub create_container_config_error_grace_secs: u64,
    pub create_container_error_grace_secs: u64,
    /// How long a pod may stay pending (unschedulable, waiting for a node, pulling, creating)
    /// before the attempt fails, retryable, with `PodPendingTimeout` and the pod is deleted
    /// (propeller `pod-pending-timeout`); 0: it waits as long as it takes (propeller's default).
    pub pod_pending_timeout_secs: u64,
    /// How often pending pods are looked at again from the watch's cache (a grace period can
    /// end without any new event on the pod). No API request is made for it.
    pub recheck_secs: u64,
    /// A create refused by a ResourceQuota (`403 … exceeded quota`) is tried again after this,
    /// doubling up to `quota_backoff_max_ms`, the attempt QUEUED with the API's message
    /// meanwhile (propeller's `backoff.base-second` 2 s, `backoff.max-duration` 20 s).
    pub quota_backoff_base_ms: u64,
    pub quota_backoff_max_ms: u64,
    /// Finished pods (their outcome read) are deleted this long after they finished; 0: at
    /// once. Until then `kubectl logs` and the console's pod logs still work. Propeller keeps
    /// them until the workflow's garbage collection (`max-ttl-hours`, 23 h): the default.
    pub delete_finished_pods_after_secs: u64,
    /// After a start, finished pods of ours that no attempt follows are left alone this long
    /// before their deletion is due: the engine first re-attaches to the attempts still in
    /// flight, whose outcome such a pod may hold.
    pub reattach_grace_secs: u64,
    /// Links to the task's logs shown in the console and on task events, rendered for each
    /// pod from templates with propeller's variables (`{{ .podName }}`, `{{ .namespace }}`,
    /// `{{ .containerName }}`, `{{ .containerId }}`, …; docs/kubernetes.md): propeller's
    /// `logs.templates` (Kubernetes dashboard, CloudWatch, Stackdriver or any other).
    pub log_links: Vec<crate::logs::LogLink>,
    /// A PodTemplate (in each task namespace) every task pod starts from when its task names
    /// none with `pod_template_name` (propeller `default-pod-template-name`); missing: none.
    pub default_pod_template_name: Option<String>,
    /// Each execution's pods are owned by a ConfigMap made for the execution in their
    /// namespace (`flyte-rs-exec-<execution>`), deleted `delete_finished_pods_after_secs`
    /// after the execution ended, so Kubernetes' garbage collector takes every pod left
    /// (propeller: the FlyteWorkflow resource owns them; `disable-inject-owner-references`
    /// is the opposite switch). Needs configmaps create/get/list/patch/delete (docs/kubernetes.md).
    pub owner_references: bool,
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            task_types: [
                "python-task",
                "container",
                "raw-container",
                "sidecar",
                "pod",
            ]
            .map(String::from)
            .to_vec(),
            namespace_template: "{{ project }}-{{ domain }}".into(),
            kubeconfig: None,
            context: None,
            default_cpu: "1000m".into(),
            default_memory: "1024Mi".into(),
            limit_cpu: None,
            limit_memory: None,
            gpu_resource_name: "nvidia.com/gpu".into(),
            default_service_account: None,
            default_labels: BTreeMap::new(),
            default_annotations: BTreeMap::new(),
            default_node_selector: BTreeMap::new(),
            interruptible_tolerations: Vec::new(),
            interruptible_node_selector: BTreeMap::new(),
            env_from_secrets: Vec::new(),
            scheduler_name: None,
            image_pull_policy: None,
            image_pull_backoff_grace_secs: 180,
            create_container_config_error_grace_secs: 180,
            create_container_error_grace_secs: 180,
            pod_pending_timeout_secs: 0,
            recheck_secs: 15,
            quota_backoff_base_ms: 2_000,
            quota_backoff_max_ms: 20_000,
            delete_finished_pods_after_secs: 23 * 3600,
            reattach_grace_secs: 600,
            log_links: Vec::new(),
            default_pod_template_name: None,
            owner_references: true,
        }
    }
}

impl KubeConfig {
    /// The namespace of `project` and `domain` from [`Self::namespace_template`].
    pub fn namespace(&self, project: &str, domain: &str) -> String {
        replace_var(
            &replace_var(&self.namespace_template, "project", project),
            "domain",
            domain,
        )
    }

    /// Checks what can be checked before any pod is built; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("default_cpu", Some(&self.default_cpu)),
            ("default_memory", Some(&self.default_memory)),
            ("limit_cpu", self.limit_cpu.as_ref()),
            ("limit_memory", self.limit_memory.as_ref()),
        ] {
            if let Some(v) = value
                && flyte_engine::backend::resources::parse_quantity(v).is_none()
            {
                return Err(format!(
                    "kubernetes.{key} = {v:?} is not a quantity (like 500m, 2, 512Mi, 4Gi)"
                ));
            }
        }
        for link in &self.log_links {
            link.validate()?;
        }
        let probe = self.namespace("p", "d");
        if probe.contains("{{") {
            return Err(format!(
                "kubernetes.namespace_template = {:?} has a variable other than {{{{ project }}}} and {{{{ domain }}}}",
                self.namespace_template
            ));
        }
        Ok(())
    }
}

/// Replaces `{{ name }}` (any whitespace inside the braces) with `value`.
fn replace_var(template: &str, name: &str, value: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) if after[..close].trim() == name => {
                out.push_str(value);
                rest = &after[close + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_template_replaces_project_and_domain() {
        let mut c = KubeConfig::default();
        assert_eq!(
            c.namespace("flytesnacks", "development"),
            "flytesnacks-development"
        );
        c.namespace_template = "flyte-{{project}}".into();
        assert_eq!(c.namespace("a", "b"), "flyte-a");
        c.namespace_template = "{{ project }}-{{ cluster }}".into();
        assert!(c.validate().unwrap_err().contains("namespace_template"));
    }

    #[test]
    fn bad_quantities_are_named() {
        let c = KubeConfig {
            limit_memory: Some("lots".into()),
            ..KubeConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .contains("kubernetes.limit_memory")
        );
    }
}
