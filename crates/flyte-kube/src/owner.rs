//! The owner of an execution's pods (docs/adr-012-kubernetes-pod-owner.md). Propeller makes the
//! FlyteWorkflow custom resource of the execution every pod's controller owner
//! (`plugin_manager.go` `addObjectMetadata`, `FlyteWorkflow.GetOwnerReference`:
//! `metav1.NewControllerRef`), and its garbage collection deletes that resource `max-ttl-hours`
//! after the workflow ended, which takes the pods with it. We have no custom resource: a
//! ConfigMap made for the execution in the pods' namespace stands in for it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::config::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::pod;

/// On an ended execution's owner: when it is to be deleted (RFC 3339), so a restarted server
/// still deletes it.
pub const DELETE_AFTER_ANNOTATION: &str = "flyte-rs/delete-after";
/// Marks the ConfigMaps that own pods (their list at start selects on it with the managed-by
/// label).
pub const OWNER_LABEL: &str = "flyte-rs/pod-owner";

/// The owner's name for an execution.
pub fn name(execution: &str) -> String {
    pod::dns1123_subdomain(&format!("flyte-rs-exec-{execution}"))
}

/// The reference a pod carries, as `metav1.NewControllerRef` makes it.
pub fn reference(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner of the execution's pods in `ns`: created, or the one there is (409). `None` when
/// the namespace does not exist (the pod's create then names the namespace template).
pub async fn ensure(
    client: &Client,
    ns: &str,
    project: &str,
    domain: &str,
    execution: &str,
) -> Result<Option<OwnerReference>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let name = name(execution);
    let labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (OWNER_LABEL.to_string(), "true".to_string()),
        ("execution-id".to_string(), pod::label_value(execution)),
        ("project".to_string(), pod::label_value(project)),
        ("domain".to_string(), pod::label_value(domain)),
    ]);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "execution".to_string(),
            format!("{project}/{domain}/{execution}"),
        )])),
        ..ConfigMap::default()
    };
    let made = match api.create(&PostParams::default(), &cm).await {
        Ok(made) => made,
        Err(kube::Error::Api(s)) if s.code == 409 => api
            .get(&name)
            .await
            .map_err(|e| format!("cannot read the pods' owner ConfigMap {ns}/{name}: {e}"))?,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot create the pods' owner ConfigMap {ns}/{name} (the server needs configmaps create; or set kubernetes.owner_references = false): {e}"
            ));
        }
    };
    let uid = made
        .metadata
        .uid
        .ok_or_else(|| format!("the API server gave ConfigMap {ns}/{name} no uid"))?;
    Ok(Some(reference(&name, &uid)))
}

/// Deletes the owner; the garbage collector then deletes its pods (background propagation).
/// Absent (no pod of the execution ran in `ns`): nothing to do.
pub async fn delete(client: &Client, ns: &str, name: &str) -> Result<bool, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes when the owner is due for deletion onto it. `false`: there is none.
pub async fn mark(
    client: &Client,
    ns: &str,
    name: &str,
    due: Timestamp,
) -> Result<bool, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({"metadata": {"annotations": {DELETE_AFTER_ANNOTATION: due.to_string()}}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The owners of ended executions (marked with a due time) in every namespace.
pub async fn list_marked(
    client: &Client,
) -> Result<Vec<((String, String), Timestamp)>, kube::Error> {
    let api: Api<ConfigMap> = Api::all(client.clone());
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{OWNER_LABEL}=true");
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|cm| {
            let due = cm
                .metadata
                .annotations
                .as_ref()?
                .get(DELETE_AFTER_ANNOTATION)?
                .parse::<Timestamp>()
                .ok()?;
            Some(((cm.metadata.namespace?, cm.metadata.name?), due))
        })
        .collect())
}
