//! The pods we build for a few task templates, compared with golden JSON files in
//! `tests/golden/` (tests/golden/README.md names the propeller source each one derives from).
//! A missing golden file is written and the test fails, so a new case is reviewed once; to
//! accept a deliberate change, delete the file and run again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use flyte_engine::backend::{AttemptKey, AttemptPaths, TaskAttempt};
use flyte_kube::KubeConfig;
use flyte_kube::pod::build_pod;
use flyteidl::core::{self, resources::ResourceName, task_template};
use k8s_openapi::api::core::v1::Toleration;

fn key(execution: &str, node: &str, retry: u32) -> AttemptKey {
    AttemptKey {
        project: "flytesnacks".into(),
        domain: "development".into(),
        execution: execution.into(),
        node_id: node.into(),
        retry_attempt: retry,
    }
}

fn paths(execution: &str, node: &str, retry: u32) -> AttemptPaths {
    let data = format!(
        "s3://my-s3-bucket/metadata/propeller/flytesnacks-development-{execution}/{node}/data"
    );
    AttemptPaths {
        inputs: format!("{data}/inputs.pb"),
        input_prefix: data.clone(),
        output_prefix: format!("{data}/{retry}"),
        raw_output_prefix: format!("s3://my-s3-bucket/data/xy/{execution}-{node}-{retry}"),
        checkpoint_prefix: format!(
            "s3://my-s3-bucket/data/xy/{execution}-{node}-{retry}/_flytecheckpoints"
        ),
        prev_checkpoint_prefix: None,
        task_template: format!("{data}/task.pb"),
    }
}

fn env(execution: &str, retry: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("FLYTE_INTERNAL_EXECUTION_ID".into(), execution.into()),
        (
            "FLYTE_INTERNAL_EXECUTION_PROJECT".into(),
            "flytesnacks".into(),
        ),
        (
            "FLYTE_INTERNAL_EXECUTION_DOMAIN".into(),
            "development".into(),
        ),
        ("FLYTE_ATTEMPT_NUMBER".into(), retry.to_string()),
        ("FLYTE_INTERNAL_TASK_PROJECT".into(), "flytesnacks".into()),
        ("FLYTE_INTERNAL_TASK_DOMAIN".into(), "development".into()),
        (
            "FLYTE_INTERNAL_TASK_NAME".into(),
            "examples.basics.say_hello".into(),
        ),
        ("FLYTE_INTERNAL_TASK_VERSION".into(), "v1".into()),
    ])
}

fn entry(name: ResourceName, value: &str) -> core::resources::ResourceEntry {
    core::resources::ResourceEntry {
        name: name as i32,
        value: value.into(),
    }
}

/// pyflyte's python-task container, as `pyflyte register` serialises it.
fn python_task(resources: Option<core::Resources>) -> core::TaskTemplate {
    core::TaskTemplate {
        id: Some(core::Identifier {
            resource_type: core::ResourceType::Task as i32,
            project: "flytesnacks".into(),
            domain: "development".into(),
            name: "examples.basics.say_hello".into(),
            version: "v1".into(),
            ..Default::default()
        }),
        r#type: "python-task".into(),
        target: Some(task_template::Target::Container(core::Container {
            image: "cr.flyte.org/flyteorg/flytekit:py3.12-1.16.31".into(),
            args: [
                "pyflyte-execute",
                "--inputs",
                "{{.input}}",
                "--output-prefix",
                "{{.outputPrefix}}",
                "--raw-output-data-prefix",
                "{{.rawOutputDataPrefix}}",
                "--checkpoint-path",
                "{{.checkpointOutputPrefix}}",
                "--prev-checkpoint",
                "{{.prevCheckpointPrefix}}",
                "--resolver",
                "flytekit.core.python_auto_container.default_task_resolver",
                "--",
                "task-module",
                "examples.basics",
                "task-name",
                "say_hello",
            ]
            .map(String::from)
            .to_vec(),
            env: vec![core::KeyValuePair {
                key: "FLYTE_SDK_LOGGING_LEVEL".into(),
                value: "20".into(),
            }],
            resources,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn attempt(template: core::TaskTemplate, k: AttemptKey) -> TaskAttempt {
    TaskAttempt {
        paths: paths(&k.execution, &k.node_id, k.retry_attempt),
        env: env(&k.execution, k.retry_attempt),
        key: k,
        template: Arc::new(template),
        timeout: None,
        interruptible: false,
        array_index: None,
        inputs: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        service_account: String::new(),
    }
}

fn check(name: &str, attempt: &TaskAttempt, cfg: &KubeConfig) {
    let pod = build_pod(attempt, None, cfg).unwrap();
    let got = serde_json::to_string_pretty(&pod).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.json"));
    match std::fs::read_to_string(&path) {
        Ok(want) => assert_eq!(got, want, "pod differs from {}", path.display()),
        Err(_) => {
            std::fs::write(&path, &got).unwrap();
            panic!(
                "{} was missing: written, review it and run again",
                path.display()
            );
        }
    }
}

#[test]
fn python_task_with_a_cpu_request_only() {
    // Request cpu=500m, nothing else: the limit takes the request, memory the platform default.
    let t = python_task(Some(core::Resources {
        requests: vec![entry(ResourceName::Cpu, "500m")],
        limits: vec![],
    }));
    check(
        "python_task",
        &attempt(t, key("f8a3c9e2b1d0", "n0", 0)),
        &KubeConfig::default(),
    );
}

#[test]
fn interruptible_task_over_the_platform_limits_with_a_gpu() {
    let mut t = python_task(Some(core::Resources {
        requests: vec![
            entry(ResourceName::Cpu, "4"),
            entry(ResourceName::Memory, "64Gi"),
            entry(ResourceName::Gpu, "1"),
        ],
        limits: vec![entry(ResourceName::Memory, "128Gi")],
    }));
    t.security_context = Some(core::SecurityContext {
        run_as: Some(core::Identity {
            k8s_service_account: "flyte-worker".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut a = attempt(t, key("f8a3c9e2b1d0", "n1", 2));
    a.interruptible = true;
    // The server's object-store credentials stay out of the spec; the secret brings them.
    a.env
        .insert("AWS_SECRET_ACCESS_KEY".into(), "hunter2".into());
    a.env.insert("AWS_REGION".into(), "us-east-2".into());
    let cfg = KubeConfig {
        limit_cpu: Some("2".into()),
        limit_memory: Some("32Gi".into()),
        default_node_selector: BTreeMap::from([("pool".into(), "flyte".into())]),
        interruptible_node_selector: BTreeMap::from([(
            "cloud.google.com/gke-spot".into(),
            "true".into(),
        )]),
        interruptible_tolerations: vec![Toleration {
            key: Some("cloud.google.com/gke-spot".into()),
            operator: Some("Equal".into()),
            value: Some("true".into()),
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        }],
        default_labels: BTreeMap::from([("team".into(), "ml".into())]),
        env_from_secrets: vec!["flyte-storage".into()],
        ..KubeConfig::default()
    };
    check("interruptible_limits_gpu", &a, &cfg);
}

#[test]
fn pod_template_task_with_a_sidecar() {
    // flytekit's `@task(pod_template=PodTemplate(primary_container_name="primary", …))`: a
    // K8sPod target whose primary container takes the task's image and command.
    let spec = serde_json::json!({
        "containers": [
            {"name": "primary", "image": "cr.flyte.org/flyteorg/flytekit:py3.12-1.16.31",
             "args": ["pyflyte-execute", "--inputs", "{{.input}}", "--output-prefix", "{{.outputPrefix}}"],
             "resources": {"requests": {"cpu": "250m"}}},
            {"name": "sidecar", "image": "redis:7",
             "resources": {"requests": {"memory": "4Gi"}, "limits": {"memory": "8Gi"}}}
        ],
        "volumes": [{"name": "shared", "emptyDir": {}}]
    });
    let mut t = python_task(None);
    t.target = Some(task_template::Target::K8sPod(core::K8sPod {
        metadata: Some(core::K8sObjectMetadata {
            labels: BTreeMap::from([("app".into(), "cache-warmer".into())]),
            annotations: BTreeMap::from([("prometheus.io/scrape".into(), "true".into())]),
        }),
        pod_spec: Some(serde_json::from_value(spec).unwrap()),
        ..Default::default()
    }));
    t.config = BTreeMap::from([("primary_container_name".into(), "primary".into())]);
    let cfg = KubeConfig {
        limit_memory: Some("6Gi".into()),
        ..KubeConfig::default()
    };
    check(
        "pod_template_sidecar",
        &attempt(t, key("f8a3c9e2b1d0", "n2", 0)),
        &cfg,
    );
}

#[test]
fn map_task_item_with_its_array_index() {
    let mut a = attempt(python_task(None), key("f8a3c9e2b1d0", "n3-0-7", 0));
    a.array_index = Some(7);
    check("map_task_item", &a, &KubeConfig::default());
}

#[test]
fn python_task_with_secret_requests() {
    // flytekit's `@task(secret_requests=[Secret(group="db-creds", key="password",
    // mount_requirement=ENV_VAR), Secret(group="db-creds", key="ca.pem", mount_requirement=FILE,
    // env_var="DB_CA"), Secret(group="api", key="TOKEN")])`.
    use core::secret::MountType;
    let secret = |group: &str, key: &str, mount: MountType, env_var: &str| core::Secret {
        group: group.into(),
        key: key.into(),
        mount_requirement: mount as i32,
        env_var: env_var.into(),
        ..Default::default()
    };
    let mut t = python_task(None);
    t.security_context = Some(core::SecurityContext {
        secrets: vec![
            secret("db-creds", "password", MountType::EnvVar, ""),
            secret("db-creds", "ca.pem", MountType::File, "DB_CA"),
            secret("api", "TOKEN", MountType::Any, ""),
        ],
        ..Default::default()
    });
    check(
        "python_task_secrets",
        &attempt(t, key("f8a3c9e2b1d0", "n4", 0)),
        &KubeConfig::default(),
    );
}

#[test]
fn execution_labels_annotations_and_service_account() {
    // An execution created with labels, annotations and `security_context.run_as.
    // k8s_service_account` (here over a task-level `run_as`, which propeller does not read).
    let mut t = python_task(None);
    t.security_context = Some(core::SecurityContext {
        run_as: Some(core::Identity {
            k8s_service_account: "task-level".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut a = attempt(t, key("f8a3c9e2b1d0", "n5", 0));
    a.labels = BTreeMap::from([
        ("team".into(), "ml".into()),
        ("execution-id".into(), "not-this-one".into()),
    ]);
    a.annotations = BTreeMap::from([("owner".into(), "alice@example.com".into())]);
    a.service_account = "ml-runner".into();
    let cfg = KubeConfig {
        default_labels: BTreeMap::from([
            ("team".into(), "platform".into()),
            ("cost-center".into(), "42".into()),
        ]),
        default_annotations: BTreeMap::from([("owner".into(), "flyte-admins".into())]),
        default_service_account: Some("flyte-default".into()),
        ..KubeConfig::default()
    };
    let pod = build_pod(&a, None, &cfg).unwrap();
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(
        labels["team"], "ml",
        "the execution's label over the default"
    );
    assert_eq!(labels["cost-center"], "42");
    assert_eq!(labels["execution-id"], "f8a3c9e2b1d0", "Flyte's ids win");
    assert_eq!(
        pod.metadata.annotations.clone().unwrap()["owner"],
        "alice@example.com"
    );
    assert_eq!(
        pod.spec.as_ref().unwrap().service_account_name.as_deref(),
        Some("ml-runner")
    );
    check("execution_metadata", &a, &cfg);
}

#[test]
fn python_task_on_a_pod_template() {
    // `@task(pod_template_name="ml-base")`: a PodTemplate of the cluster whose container
    // `default` is the base of every container and `primary` of the primary one.
    let pod_template: k8s_openapi::api::core::v1::PodTemplate =
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "PodTemplate",
            "metadata": {"name": "ml-base", "namespace": "flytesnacks-development"},
            "template": {
                "metadata": {"labels": {"team": "ml", "task-name": "from-template"},
                             "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}},
                "spec": {
                    "containers": [
                        {"name": "default", "image": "ignored-by-the-task",
                         "env": [{"name": "HTTP_PROXY", "value": "http://proxy:3128"}],
                         "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
                        {"name": "primary",
                         "resources": {"limits": {"ephemeral-storage": "10Gi"}}}
                    ],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
                    "nodeSelector": {"pool": "ml"},
                    "securityContext": {"runAsUser": 1000, "fsGroup": 1000},
                    "restartPolicy": "OnFailure"
                }
            }
        }))
        .unwrap();
    let mut t = python_task(Some(core::Resources {
        requests: vec![entry(ResourceName::Cpu, "500m")],
        limits: vec![],
    }));
    t.metadata = Some(core::TaskMetadata {
        pod_template_name: "ml-base".into(),
        ..Default::default()
    });
    let a = attempt(t, key("f8a3c9e2b1d0", "n6", 0));
    let cfg = KubeConfig::default();
    assert_eq!(
        flyte_kube::pod::pod_template_name(&a.template, &cfg),
        Some(("ml-base", true))
    );
    let pod = flyte_kube::pod::build_pod_on(&a, None, &cfg, Some(&pod_template)).unwrap();
    let got = serde_json::to_string_pretty(&pod).unwrap() + "\n";
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pod_template_name.json");
    match std::fs::read_to_string(&path) {
        Ok(want) => assert_eq!(got, want, "pod differs from {}", path.display()),
        Err(_) => {
            std::fs::write(&path, &got).unwrap();
            panic!(
                "{} was missing: written, review it and run again",
                path.display()
            );
        }
    }
}
