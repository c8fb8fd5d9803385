//! Shared fixtures for the task backend tests: a tempdir-backed blob store, Flyte's data
//! layout for one attempt, task templates, and a collector for attempt updates.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use flyte_blob::BlobStore;
use flyte_engine::backend::{AttemptKey, AttemptOutcome, AttemptPaths, AttemptUpdate, TaskAttempt};
use flyteidl::core::{
    Container, Identifier, KeyValuePair, Literal, LiteralMap, LiteralType, Primitive, Scalar,
    SimpleType, TaskTemplate, TypedInterface, Variable, VariableMap, literal, literal_type,
    primitive, scalar, task_template,
};
use prost::Message;
use tokio::sync::mpsc;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: BlobStore,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::from_url(&format!("file://{}/blobs", dir.path().display())).unwrap();
        Self { dir, store }
    }

    /// The canonical data directory (the `file://` root of the store is canonicalised).
    pub fn data_dir(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.path()).unwrap()
    }

    /// Flyte's layout for one attempt of one node.
    pub fn paths(&self, key: &AttemptKey) -> AttemptPaths {
        let exec = format!("metadata/{}-{}-{}", key.project, key.domain, key.execution);
        let data = format!("{exec}/{}/data", key.node_id);
        let out = format!("{data}/{}", key.retry_attempt);
        let raw = format!(
            "raw/{}-{}-{}",
            key.execution, key.node_id, key.retry_attempt
        );
        let prev = (key.retry_attempt > 0).then(|| {
            self.store.native_url(&format!(
                "raw/{}-{}-{}/_flytecheckpoints",
                key.execution,
                key.node_id,
                key.retry_attempt - 1
            ))
        });
        AttemptPaths {
            inputs: self.store.native_url(&format!("{data}/inputs.pb")),
            input_prefix: self.store.native_url(&data),
            output_prefix: self.store.native_url(&out),
            raw_output_prefix: self.store.native_url(&raw),
            checkpoint_prefix: self.store.native_url(&format!("{raw}/_flytecheckpoints")),
            prev_checkpoint_prefix: prev,
            task_template: self.store.native_url(&format!("{out}/task.pb")),
        }
    }

    pub async fn put_proto(&self, url: &str, msg: &impl Message) {
        let key = self.store.path_from_native_url(url).unwrap();
        self.store
            .put(&key, Bytes::from(msg.encode_to_vec()))
            .await
            .unwrap();
    }

    pub async fn get_optional(&self, url: &str) -> Option<Bytes> {
        let key = self.store.path_from_native_url(url).unwrap();
        self.store.get(&key).await.ok()
    }

    pub async fn write_inputs(&self, key: &AttemptKey, inputs: &LiteralMap) {
        self.put_proto(&self.paths(key).inputs, inputs).await;
    }

    pub async fn read_outputs(&self, key: &AttemptKey) -> Option<LiteralMap> {
        let url = format!("{}/outputs.pb", self.paths(key).output_prefix);
        self.get_optional(&url)
            .await
            .map(|b| LiteralMap::decode(b).unwrap())
    }

    pub fn attempt(&self, key: AttemptKey, template: TaskTemplate) -> TaskAttempt {
        TaskAttempt {
            paths: self.paths(&key),
            key,
            template: std::sync::Arc::new(template),
            env: BTreeMap::new(),
            timeout: None,
            interruptible: false,
            array_index: None,
            inputs: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            service_account: String::new(),
        }
    }
}

pub fn key(execution: &str, node: &str, attempt: u32) -> AttemptKey {
    AttemptKey {
        project: "flytesnacks".into(),
        domain: "development".into(),
        execution: execution.into(),
        node_id: node.into(),
        retry_attempt: attempt,
    }
}

pub fn simple(t: SimpleType) -> LiteralType {
    LiteralType {
        r#type: Some(literal_type::Type::Simple(t as i32)),
        ..Default::default()
    }
}

pub fn vars(v: &[(&str, SimpleType)]) -> Option<VariableMap> {
    Some(VariableMap {
        variables: v
            .iter()
            .map(|(n, t)| {
                (
                    n.to_string(),
                    Variable {
                        r#type: Some(simple(*t)),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    })
}

pub fn interface(
    inputs: &[(&str, SimpleType)],
    outputs: &[(&str, SimpleType)],
) -> Option<TypedInterface> {
    Some(TypedInterface {
        inputs: vars(inputs),
        outputs: vars(outputs),
    })
}

pub fn task_id(name: &str) -> Option<Identifier> {
    Some(Identifier {
        resource_type: 1,
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.into(),
        version: "v1".into(),
        ..Default::default()
    })
}

/// A container task running `args` (no command), like flytekit's python tasks.
pub fn container_task(
    ty: &str,
    args: &[&str],
    env: &[(&str, &str)],
    iface: Option<TypedInterface>,
) -> TaskTemplate {
    TaskTemplate {
        id: task_id("test.task"),
        r#type: ty.into(),
        interface: iface,
        target: Some(task_template::Target::Container(Container {
            image: "ghcr.io/flyteorg/flytekit:py3.11-1.16.31".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| KeyValuePair {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A `/bin/sh -c <script>` task.
pub fn shell_task(script: &str, iface: Option<TypedInterface>) -> TaskTemplate {
    container_task("python-task", &["/bin/sh", "-c", script], &[], iface)
}

/// A task type with no container (echo, core-sleep).
pub fn plugin_task(ty: &str, iface: Option<TypedInterface>) -> TaskTemplate {
    TaskTemplate {
        id: task_id(ty),
        r#type: ty.into(),
        interface: iface,
        ..Default::default()
    }
}

pub fn prim(v: primitive::Value) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive { value: Some(v) })),
        }))),
        ..Default::default()
    }
}

pub fn int(i: i64) -> Literal {
    prim(primitive::Value::Integer(i))
}

pub fn duration(d: Duration) -> Literal {
    prim(primitive::Value::Duration(pbjson_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }))
}

pub fn literal_map(entries: &[(&str, Literal)]) -> LiteralMap {
    LiteralMap {
        literals: entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

pub type Updates = mpsc::UnboundedReceiver<(AttemptKey, AttemptUpdate)>;

/// Collects the updates of `key` until its `Finished` (other keys' updates are kept aside).
pub async fn until_finished(
    rx: &mut Updates,
    key: &AttemptKey,
    within: Duration,
) -> (Vec<AttemptUpdate>, AttemptOutcome) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (k, update) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no Finished for {key:?} within {within:?}; saw {seen:?}"))
            .expect("update channel closed");
        if &k != key {
            continue;
        }
        match update {
            AttemptUpdate::Finished(outcome) => return (seen, outcome),
            other => seen.push(other),
        }
    }
}

/// Waits for the next update of any attempt.
pub async fn next(rx: &mut Updates, within: Duration) -> (AttemptKey, AttemptUpdate) {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("no update in time")
        .expect("channel closed")
}

/// Whether a process is alive (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
    }
}

/// Waits until a file exists and has content.
pub async fn wait_for_file(path: &Path, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn failure(outcome: &AttemptOutcome) -> (&flyteidl::core::ExecutionError, bool) {
    match outcome {
        AttemptOutcome::Failed {
            error, retryable, ..
        } => (error, *retryable),
        other => panic!("expected a failure, got {other:?}"),
    }
}
