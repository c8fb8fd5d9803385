//! The backend against the API double (tests/double): kube-rs configured from a kubeconfig
//! that points at it, pods created, followed through the watch, deleted, found again.

mod double;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use double::ApiDouble;
use flyte_blob::BlobStore;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptPaths, AttemptUpdate, Reattach, TaskAttempt, TaskBackend,
};
use flyte_kube::{KubeBackend, KubeConfig};
use flyteidl::core::{self, execution_error::ErrorKind, task_template};
use prost::Message;
use serde_json::json;
use tokio::sync::mpsc;

const NS: &str = "flytesnacks-development";

struct Fixture {
    double: ApiDouble,
    backend: KubeBackend,
    store: BlobStore,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

async fn fixture_with(change: impl FnOnce(&mut KubeConfig)) -> Fixture {
    let double = ApiDouble::start().await;
    double.add_namespace(NS);
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::from_url(dir.path().join("blob").to_str().unwrap()).unwrap();
    let mut cfg = KubeConfig {
        enabled: true,
        kubeconfig: Some(double.write_kubeconfig(dir.path())),
        ..KubeConfig::default()
    };
    change(&mut cfg);
    let backend = KubeBackend::connect(cfg, store.clone()).await.unwrap();
    Fixture {
        double,
        backend,
        store,
        _dir: dir,
    }
}

fn attempt(store: &BlobStore, execution: &str, retry: u32) -> TaskAttempt {
    let key = AttemptKey {
        project: "flytesnacks".into(),
        domain: "development".into(),
        execution: execution.into(),
        node_id: "n0".into(),
        retry_attempt: retry,
    };
    let data = format!("metadata/{execution}/n0/data");
    let template = core::TaskTemplate {
        id: Some(core::Identifier {
            name: "examples.basics.say_hello".into(),
            ..Default::default()
        }),
        r#type: "python-task".into(),
        target: Some(task_template::Target::Container(core::Container {
            image: "ghcr.io/flyteorg/flytekit:py3.12-1.16.31".into(),
            args: vec![
                "pyflyte-execute".into(),
                "--inputs".into(),
                "{{.input}}".into(),
                "--output-prefix".into(),
                "{{.outputPrefix}}".into(),
            ],
            ..Default::default()
        })),
        ..Default::default()
    };
    TaskAttempt {
        key,
        template: Arc::new(template),
        paths: AttemptPaths {
            inputs: store.native_url(&format!("{data}/inputs.pb")),
            input_prefix: store.native_url(&data),
            output_prefix: store.native_url(&format!("{data}/{retry}")),
            raw_output_prefix: "s3://bucket/raw".into(),
            checkpoint_prefix: "s3://bucket/raw/ckpt".into(),
            prev_checkpoint_prefix: None,
            task_template: store.native_url(&format!("{data}/task.pb")),
        },
        env: BTreeMap::from([("FLYTE_INTERNAL_EXECUTION_ID".into(), execution.into())]),
        timeout: None,
        interruptible: false,
        array_index: None,
        inputs: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        service_account: String::new(),
    }
}

type Rx = mpsc::UnboundedReceiver<(AttemptKey, AttemptUpdate)>;

async fn next(rx: &mut Rx) -> AttemptUpdate {
    // A bound so that a broken watch fails the test instead of hanging it (not a timing
    // assertion: every update here is due at once).
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("no update from the backend")
        .expect("updates channel closed")
        .1
}

/// The pod's name: the attempt's generated name (`<execution>-<node>-<attempt>`).
fn pod_name(a: &TaskAttempt) -> String {
    format!("{}-n0-{}", a.key.execution, a.key.retry_attempt)
}

fn running(container: &str) -> serde_json::Value {
    json!({
        "phase": "Running",
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-07T12:00:01Z"}],
        "containerStatuses": [{
            "name": container, "ready": true, "restartCount": 0, "image": "i", "imageID": "",
            "state": {"running": {"startedAt": "2026-12-07T12:00:02Z"}}
        }]
    })
}

fn terminated(phase: &str, container: &str, exit_code: i32, reason: &str) -> serde_json::Value {
    json!({
        "phase": phase,
        "containerStatuses": [{
            "name": container, "ready": false, "restartCount": 0, "image": "i", "imageID": "",
            "state": {"terminated": {"exitCode": exit_code, "reason": reason,
                      "startedAt": "2026-12-07T12:00:02Z", "finishedAt": "2026-12-07T12:00:09Z"}}
        }]
    })
}

#[tokio::test]
async fn a_pod_is_created_runs_and_succeeds() {
    let f = fixture().await;
    let a = attempt(&f.store, "ex1", 0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a.clone(), tx).await.unwrap();

    let name = pod_name(&a);
    let pod = f
        .double
        .pod(NS, &name)
        .expect("the pod was created in the project-domain namespace");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["metadata"]["labels"]["execution-id"], "ex1");
    let args = pod["spec"]["containers"][0]["args"].as_array().unwrap();
    assert_eq!(args[2], json!(a.paths.inputs), "{{.input}} rendered");
    assert_eq!(
        args[4],
        json!(a.paths.output_prefix),
        "{{.outputPrefix}} rendered"
    );

    f.double.set_status(
        NS,
        &name,
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory.",
            "lastTransitionTime": "2026-12-07T12:00:01Z"}]}),
    );
    // The first Pending (from the create) is "Scheduling", then the scheduler's reason.
    let mut update = next(&mut rx).await;
    if update
        == (AttemptUpdate::Queued {
            reason: "Scheduling".into(),
        })
    {
        update = next(&mut rx).await;
    }
    assert_eq!(
        update,
        AttemptUpdate::Queued {
            reason: "Unschedulable:0/3 nodes are available: 3 Insufficient memory.".into()
        }
    );
    f.double.set_status(NS, &name, running(&name));
    assert_eq!(next(&mut rx).await, AttemptUpdate::Running { logs: vec![] });
    f.double
        .set_status(NS, &name, terminated("Succeeded", &name, 0, "Completed"));
    assert_eq!(
        next(&mut rx).await,
        AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs: vec![] })
    );
    // One watch over all namespaces with our label, not a request per pod.
    let requests = f.double.requests();
    assert!(
        requests.iter().any(|r| r.starts_with("GET /api/v1/pods?")
            && r.contains("labelSelector=app.kubernetes.io/managed-by=flyte-rs")
            && r.contains("watch=true")),
        "{requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with(&format!("GET /api/v1/namespaces/{NS}/pods/")))
    );
}

#[tokio::test]
async fn oom_killed_is_a_retryable_failure_and_error_pb_wins_over_an_exit_code() {
    let f = fixture().await;
    let a = attempt(&f.store, "ex2", 0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a.clone(), tx).await.unwrap();
    let name = pod_name(&a);
    f.double
        .set_status(NS, &name, terminated("Failed", &name, 137, "OOMKilled"));
    loop {
        match next(&mut rx).await {
            AttemptUpdate::Finished(AttemptOutcome::Failed {
                error, retryable, ..
            }) => {
                assert_eq!(error.code, "OOMKilled");
                assert_eq!(error.kind, ErrorKind::User as i32);
                assert!(retryable);
                assert!(
                    error.message.contains("exit code (137)"),
                    "{}",
                    error.message
                );
                break;
            }
            AttemptUpdate::Finished(other) => panic!("{other:?}"),
            _ => {}
        }
    }

    // The task wrote error.pb and exited 1: the document's error, not the exit code.
    let b = attempt(&f.store, "ex3", 0);
    let doc = core::ErrorDocument {
        error: Some(core::ContainerError {
            code: "USER:ValueError".into(),
            message: "bad value".into(),
            kind: core::container_error::Kind::NonRecoverable as i32,
            origin: ErrorKind::User as i32,
            ..Default::default()
        }),
    };
    let prefix = f
        .store
        .path_from_native_url(&b.paths.output_prefix)
        .unwrap();
    f.store
        .put(
            &format!("{prefix}/error.pb"),
            Bytes::from(doc.encode_to_vec()),
        )
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(b.clone(), tx).await.unwrap();
    let name = pod_name(&b);
    f.double
        .set_status(NS, &name, terminated("Failed", &name, 1, "Error"));
    loop {
        match next(&mut rx).await {
            AttemptUpdate::Finished(AttemptOutcome::Failed {
                error, retryable, ..
            }) => {
                assert_eq!(error.code, "USER:ValueError");
                assert!(!retryable);
                break;
            }
            AttemptUpdate::Finished(other) => panic!("{other:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_after_the_grace_period() {
    let f = fixture().await;
    let a = attempt(&f.store, "ex4", 0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a.clone(), tx).await.unwrap();
    let name = pod_name(&a);
    // Backing off since 2026-12-07 (long before now): past the 3 minute grace.
    f.double.set_status(
        NS,
        &name,
        json!({"phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                "message": "containers with unready status: [x]", "lastTransitionTime": "2020-01-01T00:00:00Z"}],
            "containerStatuses": [{"name": name, "ready": false, "restartCount": 0, "image": "nope", "imageID": "",
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope\""}}}]}),
    );
    loop {
        match next(&mut rx).await {
            AttemptUpdate::Finished(AttemptOutcome::Failed {
                error, retryable, ..
            }) => {
                assert_eq!(error.code, "ContainersNotReady|ImagePullBackOff");
                assert!(
                    error.message.starts_with("Grace period [3m0s] exceeded|"),
                    "{}",
                    error.message
                );
                assert_eq!(error.kind, ErrorKind::User as i32);
                assert!(retryable);
                break;
            }
            AttemptUpdate::Finished(other) => panic!("{other:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn abort_deletes_the_pod() {
    let f = fixture().await;
    let a = attempt(&f.store, "ex5", 0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a.clone(), tx).await.unwrap();
    let name = pod_name(&a);
    assert!(f.double.pod(NS, &name).is_some());
    f.backend.abort(&a.key).await;
    assert!(f.double.pod(NS, &name).is_none(), "the pod is deleted");
    assert!(
        f.double
            .requests()
            .contains(&format!("DELETE /api/v1/namespaces/{NS}/pods/{name}"))
    );
    loop {
        if let AttemptUpdate::Finished(outcome) = next(&mut rx).await {
            assert_eq!(outcome, AttemptOutcome::Aborted);
            break;
        }
    }
}

#[tokio::test]
async fn a_pod_deleted_by_someone_else_is_a_retryable_system_failure() {
    let f = fixture().await;
    let a = attempt(&f.store, "ex6", 0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a.clone(), tx).await.unwrap();
    f.double.remove_pod(NS, &pod_name(&a));
    loop {
        if let AttemptUpdate::Finished(outcome) = next(&mut rx).await {
            let AttemptOutcome::Failed {
                error, retryable, ..
            } = outcome
            else {
                panic!("{outcome:?}")
            };
            assert_eq!(error.code, "ResourceDeletedExternally");
            assert_eq!(error.kind, ErrorKind::System as i32);
            assert!(retryable);
            break;
        }
    }
}

#[tokio::test]
async fn reattach_follows_an_existing_pod_and_reports_a_missing_one_as_not_started() {
    let f = fixture().await;
    // The pod an earlier server process created, already running.
    let a = attempt(&f.store, "ex7", 1);
    let name = pod_name(&a);
    let mut pod =
        serde_json::to_value(flyte_kube::pod::build_pod(&a, None, &KubeConfig::default()).unwrap())
            .unwrap();
    pod["status"] = running(&name);
    f.double.insert_pod(pod);

    let (tx, mut rx) = mpsc::unbounded_channel();
    assert_eq!(
        f.backend.reattach(a.clone(), tx).await.unwrap(),
        Reattach::Attached
    );
    assert_eq!(next(&mut rx).await, AttemptUpdate::Running { logs: vec![] });
    f.double
        .set_status(NS, &name, terminated("Succeeded", &name, 0, "Completed"));
    assert_eq!(
        next(&mut rx).await,
        AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs: vec![] })
    );
    assert_eq!(f.double.pod_names().len(), 1, "no second pod was created");

    let b = attempt(&f.store, "ex8", 0);
    let (tx, _rx) = mpsc::unbounded_channel();
    assert_eq!(
        f.backend.reattach(b, tx).await.unwrap(),
        Reattach::NotStarted
    );
}

#[tokio::test]
async fn api_errors_on_create_become_failures_a_person_can_act_on() {
    let f = fixture().await;
    // 403 from an admission policy (not a quota): propeller's retryable RuntimeFailure.
    f.double.fail_next_create(
        403,
        "Forbidden",
        "pods \"ex9-n0-0\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false",
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend
        .start(attempt(&f.store, "ex9", 0), tx)
        .await
        .unwrap();
    let AttemptUpdate::Finished(AttemptOutcome::Failed {
        error, retryable, ..
    }) = next(&mut rx).await
    else {
        panic!()
    };
    assert_eq!(error.code, "RuntimeFailure");
    assert!(error.message.contains("violates PodSecurity"));
    assert!(retryable);

    // A namespace that does not exist: named, with the setting that made it.
    let mut a = attempt(&f.store, "ex10", 0);
    a.key.domain = "production".into();
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a, tx).await.unwrap();
    let AttemptUpdate::Finished(AttemptOutcome::Failed { error, .. }) = next(&mut rx).await else {
        panic!()
    };
    assert_eq!(error.code, "NamespaceNotFound");
    assert!(
        error.message.contains("flytesnacks-production"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("namespace_template"),
        "{}",
        error.message
    );

    // Created before (409): followed, not failed.
    let c = attempt(&f.store, "ex11", 0);
    let (tx, _rx) = mpsc::unbounded_channel();
    f.backend.start(c.clone(), tx).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(c.clone(), tx).await.unwrap();
    f.double
        .set_status(NS, &pod_name(&c), running(&pod_name(&c)));
    loop {
        match next(&mut rx).await {
            AttemptUpdate::Running { .. } => break,
            AttemptUpdate::Finished(o) => panic!("{o:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_kubeconfig_over_https_builds_a_client_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::from_url(dir.path().join("blob").to_str().unwrap()).unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    \
         insecure-skip-tls-verify: true\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  \
         context: {cluster: c, user: u}\ncurrent-context: c\n",
    )
    .unwrap();
    let cfg = KubeConfig {
        enabled: true,
        kubeconfig: Some(path),
        ..KubeConfig::default()
    };
    KubeBackend::connect(cfg.clone(), store.clone())
        .await
        .expect("a TLS client on ring");
    let missing = KubeConfig {
        kubeconfig: Some(dir.path().join("nope")),
        ..cfg
    };
    let err = KubeBackend::connect(missing, store)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("kubernetes.kubeconfig") && err.contains("nope"),
        "{err}"
    );
}

/// What the API server answers when a ResourceQuota refuses a pod (a `Status`, 403 Forbidden;
/// the message as the quota admission plugin writes it).
fn quota_message(pod: &str, requested: &str, used: &str, limited: &str) -> String {
    format!(
        "pods \"{pod}\" is forbidden: exceeded quota: compute-resources, requested: {requested}, used: {used}, limited: {limited}"
    )
}

#[tokio::test]
async fn a_pod_over_the_quota_waits_queued_and_is_created_when_it_fits() {
    let f = fixture_with(|c| {
        c.quota_backoff_base_ms = 20;
        c.quota_backoff_max_ms = 80;
    })
    .await;
    let a = attempt(&f.store, "exq1", 0);
    let name = pod_name(&a);
    let refused = quota_message(
        &name,
        "limits.cpu=1,limits.memory=1Gi",
        "limits.cpu=8,limits.memory=6Gi",
        "limits.cpu=8,limits.memory=16Gi",
    );
    for _ in 0..3 {
        f.double.fail_next_create(403, "Forbidden", &refused);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a.clone(), tx).await.unwrap();
    // QUEUED with the quota's message (once, though refused three times), not failed.
    let AttemptUpdate::Queued { reason } = next(&mut rx).await else {
        panic!("expected QUEUED")
    };
    assert_eq!(reason, format!("Exceeded resourcequota: {refused}"));
    // Tried again until the quota let it in: then followed as any pod.
    loop {
        if f.double.pod(NS, &name).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let posts = f
        .double
        .requests()
        .iter()
        .filter(|r| r.starts_with(&format!("POST /api/v1/namespaces/{NS}/pods")))
        .count();
    assert_eq!(posts, 4, "three refusals, then the create");
    f.double.set_status(NS, &name, running(&name));
    loop {
        match next(&mut rx).await {
            AttemptUpdate::Running { .. } => break,
            AttemptUpdate::Queued { reason } => {
                assert!(!reason.contains("resourcequota"), "{reason}")
            }
            AttemptUpdate::Finished(o) => panic!("{o:?}"),
        }
    }
}

#[tokio::test]
async fn a_pod_larger_than_the_whole_quota_fails_at_once() {
    let f = fixture().await;
    let a = attempt(&f.store, "exq2", 0);
    f.double.fail_next_create(
        403,
        "Forbidden",
        &quota_message(
            &pod_name(&a),
            "limits.memory=64Gi",
            "limits.memory=0",
            "limits.memory=32Gi",
        ),
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a, tx).await.unwrap();
    let AttemptUpdate::Finished(AttemptOutcome::Failed {
        error, retryable, ..
    }) = next(&mut rx).await
    else {
        panic!()
    };
    assert_eq!(error.code, "ResourceRequestsExceedLimits");
    assert!(
        error.message.contains("limited: limits.memory=32Gi"),
        "{}",
        error.message
    );
    assert!(!retryable);
}

#[tokio::test]
async fn aborting_while_waiting_for_quota_creates_no_pod() {
    let f = fixture_with(|c| {
        c.quota_backoff_base_ms = 20;
        c.quota_backoff_max_ms = 20;
    })
    .await;
    let a = attempt(&f.store, "exq3", 0);
    let name = pod_name(&a);
    let refused = quota_message(&name, "limits.cpu=1", "limits.cpu=8", "limits.cpu=8");
    for _ in 0..2 {
        f.double.fail_next_create(403, "Forbidden", &refused);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a.clone(), tx).await.unwrap();
    assert!(matches!(next(&mut rx).await, AttemptUpdate::Queued { .. }));
    f.backend.abort(&a.key).await;
    assert_eq!(
        next(&mut rx).await,
        AttemptUpdate::Finished(AttemptOutcome::Aborted)
    );
    // The retries stop: a later create would succeed (two refusals only), so a pod here would
    // mean the backend kept trying after the abort. Both queued refusals must be used up by
    // the time a third try would come; wait for well past that.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        f.double.pod(NS, &name).is_none(),
        "a pod was created after the abort"
    );
}

#[test]
fn quota_messages_are_read_as_propeller_reads_them() {
    use flyte_kube::backend::fits_quota;
    let m = |requested: &str, limited: &str| quota_message("p", requested, "limits.cpu=1", limited);
    assert!(fits_quota(&m(
        "limits.cpu=2,limits.memory=1Gi",
        "limits.cpu=8,limits.memory=16Gi"
    )));
    assert!(
        !fits_quota(&m("limits.cpu=8", "limits.cpu=8")),
        "equal to the whole quota never fits"
    );
    assert!(!fits_quota(&m(
        "requests.memory=20Gi",
        "requests.memory=16Gi"
    )));
    assert!(fits_quota(&m("limits.cpu=500m", "limits.cpu=1")));
    // Names the quota does not limit, and a message in another shape, wait.
    assert!(fits_quota(&m("limits.nvidia.com/gpu=4", "limits.cpu=1")));
    assert!(fits_quota("pods \"p\" is forbidden: exceeded quota: pods"));
}

#[tokio::test]
async fn a_pod_pending_past_the_timeout_fails_retryable_and_is_deleted() {
    let f = fixture_with(|c| c.pod_pending_timeout_secs = 600).await;
    let a = attempt(&f.store, "exp1", 0);
    let name = pod_name(&a);
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a, tx).await.unwrap();
    // Unschedulable since long before the timeout's 10 minutes.
    f.double.set_status(
        NS,
        &name,
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "lastTransitionTime": "2026-01-01T00:00:00Z",
            "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
    );
    loop {
        match next(&mut rx).await {
            AttemptUpdate::Finished(AttemptOutcome::Failed {
                error, retryable, ..
            }) => {
                assert_eq!(error.code, "PodPendingTimeout");
                assert!(
                    error.message.contains("Insufficient memory"),
                    "{}",
                    error.message
                );
                assert_eq!(error.kind, ErrorKind::User as i32);
                assert!(retryable);
                break;
            }
            AttemptUpdate::Finished(other) => panic!("{other:?}"),
            _ => {}
        }
    }
    assert!(
        f.double
            .requests()
            .contains(&format!("DELETE /api/v1/namespaces/{NS}/pods/{name}")),
        "the pending pod is deleted"
    );
}

/// Waits (bounded only so that a broken run fails) until the double saw `request`.
async fn until_requested(double: &ApiDouble, request: &str) {
    for _ in 0..600 {
        if double.requests().iter().any(|r| r == request) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never requested: {request}; saw {:?}", double.requests());
}

#[tokio::test]
async fn a_finished_pod_is_deleted_once_its_outcome_is_read() {
    let f = fixture_with(|c| c.delete_finished_pods_after_secs = 0).await;
    let a = attempt(&f.store, "exd1", 0);
    let name = pod_name(&a);
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a, tx).await.unwrap();
    f.double
        .set_status(NS, &name, terminated("Succeeded", &name, 0, "Completed"));
    loop {
        if let AttemptUpdate::Finished(outcome) = next(&mut rx).await {
            assert_eq!(outcome, AttemptOutcome::Succeeded { logs: vec![] });
            break;
        }
    }
    until_requested(
        &f.double,
        &format!("DELETE /api/v1/namespaces/{NS}/pods/{name}"),
    )
    .await;
    assert!(f.double.pod(NS, &name).is_none());
}

#[tokio::test]
async fn finished_pods_an_earlier_server_left_are_deleted_when_due() {
    let f = fixture_with(|c| {
        c.delete_finished_pods_after_secs = 3600;
        c.reattach_grace_secs = 0;
        c.recheck_secs = 1;
    })
    .await;
    // Two pods of ours no attempt follows: one finished a day ago (due), one just now (kept
    // for the hour).
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    for (name, finished_at) in [
        ("old-n0-0", "2026-01-01T00:00:00Z"),
        ("new-n0-0", now.as_str()),
    ] {
        f.double.insert_pod(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS,
                "labels": {"app.kubernetes.io/managed-by": "flyte-rs"}},
            "spec": {"containers": [{"name": name, "image": "i"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": name, "ready": false,
                "restartCount": 0, "image": "i", "imageID": "",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                    "finishedAt": finished_at}}}]}
        }));
    }
    until_requested(
        &f.double,
        &format!("DELETE /api/v1/namespaces/{NS}/pods/old-n0-0"),
    )
    .await;
    assert!(f.double.pod(NS, "new-n0-0").is_some(), "not due yet");
    assert!(
        !f.double
            .requests()
            .contains(&format!("DELETE /api/v1/namespaces/{NS}/pods/new-n0-0"))
    );
}

#[tokio::test]
async fn log_links_from_the_templates_are_on_the_running_and_finished_attempt() {
    let f = fixture_with(|c| {
        c.log_links = vec![flyte_kube::logs::LogLink {
            display_name: "Kubernetes Logs".into(),
            template_uris: vec![
                "https://dash.example.com/#!/log/{{ .namespace }}/{{ .podName }}/pod?namespace={{ .namespace }}&c={{ .containerName }}"
                    .into(),
            ],
            message_format: Some("json".into()),
            show_while_pending: false,
            hide_once_finished: false,
        }]
    })
    .await;
    let a = attempt(&f.store, "exl1", 0);
    let name = pod_name(&a);
    let (tx, mut rx) = mpsc::unbounded_channel();
    f.backend.start(a, tx).await.unwrap();
    let want = format!("https://dash.example.com/#!/log/{NS}/{name}/pod?namespace={NS}&c={name}");
    f.double.set_status(NS, &name, running(&name));
    loop {
        match next(&mut rx).await {
            AttemptUpdate::Running { logs } => {
                assert_eq!(logs.len(), 1, "{logs:?}");
                assert_eq!(logs[0].uri, want);
                assert_eq!(logs[0].name, "Kubernetes Logs (User)");
                break;
            }
            AttemptUpdate::Finished(o) => panic!("{o:?}"),
            _ => {}
        }
    }
    f.double
        .set_status(NS, &name, terminated("Failed", &name, 1, "Error"));
    let AttemptUpdate::Finished(AttemptOutcome::Failed { logs, .. }) = next(&mut rx).await else {
        panic!()
    };
    assert_eq!(
        logs.iter().map(|l| l.uri.as_str()).collect::<Vec<_>>(),
        [want.as_str()]
    );
}

#[tokio::test]
async fn a_task_naming_a_pod_template_starts_from_it_and_a_missing_one_is_named() {
    let f = fixture().await;
    f.double.add_pod_template(
        NS,
        json!({"apiVersion": "v1", "kind": "PodTemplate",
            "metadata": {"name": "gpu-base", "namespace": NS},
            "template": {"spec": {"containers": [{"name": "default"}],
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}}),
    );
    let mut a = attempt(&f.store, "ext1", 0);
    let mut template = (*a.template).clone();
    template.metadata = Some(core::TaskMetadata {
        pod_template_name: "gpu-base".into(),
        ..Default::default()
    });
    a.template = Arc::new(template.clone());
    let (tx, _rx) = mpsc::unbounded_channel();
    f.backend.start(a.clone(), tx).await.unwrap();
    let pod = f.double.pod(NS, &pod_name(&a)).unwrap();
    assert_eq!(
        pod["spec"]["tolerations"][0]["key"], "nvidia.com/gpu",
        "{pod}"
    );
    assert!(f.double.requests().contains(&format!(
        "GET /api/v1/namespaces/{NS}/podtemplates/gpu-base"
    )));

    let mut b = attempt(&f.store, "ext2", 0);
    template.metadata = Some(core::TaskMetadata {
        pod_template_name: "no-such-template".into(),
        ..Default::default()
    });
    b.template = Arc::new(template);
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = f.backend.start(b.clone(), tx).await.unwrap_err();
    assert!(
        err.to_string().contains("\"no-such-template\"") && err.to_string().contains(NS),
        "{err}"
    );
    assert!(f.double.pod(NS, &pod_name(&b)).is_none());
}

#[tokio::test]
async fn a_finished_pods_log_is_kept_where_the_server_serves_task_logs() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let layout =
        flyte_engine::backend::local::LogLayout::new(dir.path(), "https://flyte.example.com");
    let cfg = KubeConfig {
        enabled: true,
        kubeconfig: Some(f.double.write_kubeconfig(dir.path())),
        ..KubeConfig::default()
    };
    let backend = KubeBackend::connect(cfg, f.store.clone())
        .await
        .unwrap()
        .with_log_layout(layout.clone());
    let a = attempt(&f.store, "exlog1", 0);
    let name = pod_name(&a);
    let (tx, mut rx) = mpsc::unbounded_channel();
    backend.start(a.clone(), tx).await.unwrap();
    f.double
        .set_log(NS, &name, "hello from the pod\nsecond line\n");
    f.double
        .set_status(NS, &name, terminated("Succeeded", &name, 0, "Completed"));
    let outcome = loop {
        if let AttemptUpdate::Finished(o) = next(&mut rx).await {
            break o;
        }
    };
    let AttemptOutcome::Succeeded { logs } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(logs[0].uri, layout.log_url_for(&a.key));
    assert_eq!(
        std::fs::read_to_string(layout.log_file_for(&a.key)).unwrap(),
        "hello from the pod\nsecond line\n"
    );
    assert!(
        f.double
            .requests()
            .contains(&format!("GET /api/v1/namespaces/{NS}/pods/{name}/log"))
    );
}

/// The same double and store, a new backend: a restarted server.
async fn restarted(
    dir: &std::path::Path,
    store: &BlobStore,
    change: impl FnOnce(&mut KubeConfig),
) -> KubeBackend {
    let mut cfg = KubeConfig {
        enabled: true,
        kubeconfig: Some(dir.join("kubeconfig")),
        ..KubeConfig::default()
    };
    change(&mut cfg);
    KubeBackend::connect(cfg, store.clone()).await.unwrap()
}

fn exec_key(name: &str) -> flyte_engine::ExecKey {
    flyte_engine::ExecKey {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn an_executions_pods_are_owned_by_its_config_map_which_goes_when_it_ends() {
    let f = fixture_with(|c| c.delete_finished_pods_after_secs = 0).await;
    let (a, b) = (attempt(&f.store, "exo1", 0), attempt(&f.store, "exo1", 1));
    let (tx, _rx) = mpsc::unbounded_channel();
    f.backend.start(a.clone(), tx.clone()).await.unwrap();
    f.backend.start(b.clone(), tx).await.unwrap();

    let owner = f
        .double
        .config_map(NS, "flyte-rs-exec-exo1")
        .expect("the execution's owner ConfigMap in the pods' namespace");
    assert_eq!(owner["metadata"]["labels"]["execution-id"], "exo1");
    let uid = owner["metadata"]["uid"].clone();
    assert!(uid.is_string(), "{owner}");
    for name in [pod_name(&a), pod_name(&b)] {
        let pod = f.double.pod(NS, &name).unwrap();
        assert_eq!(
            pod["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "flyte-rs-exec-exo1",
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}]),
            "{name}"
        );
    }
    let creates = f
        .double
        .requests()
        .iter()
        .filter(|r| r.starts_with(&format!("POST /api/v1/namespaces/{NS}/configmaps")))
        .count();
    assert_eq!(creates, 1, "one owner per execution");

    // The execution ends: its owner is deleted, and the garbage collector takes the pods.
    f.backend.execution_ended(&exec_key("exo1")).await;
    assert!(f.double.config_map(NS, "flyte-rs-exec-exo1").is_none());
    assert!(f.double.pod(NS, &pod_name(&a)).is_none());
    assert!(f.double.pod(NS, &pod_name(&b)).is_none());
}

#[tokio::test]
async fn an_owner_is_deleted_when_its_execution_ends_after_a_restart() {
    let Fixture {
        double,
        backend,
        store,
        _dir: dir,
    } = fixture_with(|c| c.delete_finished_pods_after_secs = 0).await;
    let a = attempt(&store, "exo2", 0);
    let (tx, _rx) = mpsc::unbounded_channel();
    backend.start(a.clone(), tx).await.unwrap();
    assert!(double.config_map(NS, "flyte-rs-exec-exo2").is_some());
    drop(backend);

    // Restarted: it re-attaches to the pod, knowing nothing of its owner, and the execution
    // then ends.
    let backend = restarted(dir.path(), &store, |c| {
        c.delete_finished_pods_after_secs = 0
    })
    .await;
    let (tx, _rx) = mpsc::unbounded_channel();
    assert_eq!(
        backend.reattach(a.clone(), tx).await.unwrap(),
        Reattach::Attached
    );
    backend.execution_ended(&exec_key("exo2")).await;
    assert!(double.config_map(NS, "flyte-rs-exec-exo2").is_none());
    assert!(double.pod(NS, &pod_name(&a)).is_none(), "garbage-collected");
}

#[tokio::test]
async fn an_ended_executions_owner_stays_for_the_delay_and_a_restarted_server_deletes_it() {
    // Pods are kept a while after the end (kubectl logs); the owner with them.
    let Fixture {
        double,
        backend,
        store,
        _dir: dir,
    } = fixture_with(|c| {
        c.delete_finished_pods_after_secs = 1;
        c.recheck_secs = 3600;
    })
    .await;
    let a = attempt(&store, "exo3", 0);
    let name = pod_name(&a);
    let (tx, mut rx) = mpsc::unbounded_channel();
    backend.start(a.clone(), tx).await.unwrap();
    double.set_status(NS, &name, terminated("Succeeded", &name, 0, "Completed"));
    while !matches!(next(&mut rx).await, AttemptUpdate::Finished(_)) {}
    backend.execution_ended(&exec_key("exo3")).await;
    let owner = double.config_map(NS, "flyte-rs-exec-exo3").expect("kept");
    let due = owner["metadata"]["annotations"]["flyte-rs/delete-after"]
        .as_str()
        .expect("its due time is written on it")
        .parse::<k8s_openapi::jiff::Timestamp>()
        .unwrap();
    assert!(
        due > k8s_openapi::jiff::Timestamp::now()
            - k8s_openapi::jiff::SignedDuration::from_secs(60)
    );
    assert!(double.pod(NS, &name).is_some(), "kept for the delay");
    drop(backend);

    // The server stopped before the time came; the next one deletes it when due.
    let _backend = restarted(dir.path(), &store, |c| {
        c.delete_finished_pods_after_secs = 1;
        c.recheck_secs = 1;
    })
    .await;
    until_requested(
        &double,
        &format!("DELETE /api/v1/namespaces/{NS}/configmaps/flyte-rs-exec-exo3"),
    )
    .await;
    assert!(double.config_map(NS, "flyte-rs-exec-exo3").is_none());
    assert!(double.pod(NS, &name).is_none(), "garbage-collected");
}
