"""Tasks as Kubernetes pods (issue 19) through the real flytekit: a server with
`kubernetes.enabled` and a kubeconfig pointing at the API double of tests/e2e/kube_double.py,
whose kubelet emulation runs each pod's container command (`pyflyte-fast-execute … pyflyte-execute`
from this venv) as a local process and reports the pod's phases and exit code. It is not
Kubernetes (docs/kubernetes.md): what is proven is that the server builds, creates, follows
and deletes pods through the API as flytekit's workflows need, not how a cluster schedules them.

The workflows (tests/e2e/kube_workflows/kube_wf.py) go through `pyflyte run --remote`; the blob
store is the server's local directory, which the emulated pods reach (a real cluster needs an
object store)."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import typing
import uuid

import pytest

from conftest import DOMAIN, PROJECT, REPO, start_server, stop_server
from flytekit.models.core.execution import TaskExecutionPhase, WorkflowExecutionPhase
from kube_double import KubeDouble
from test_executions import assert_phase, run_remote, task_executions, wait

ROOT = REPO / "tests" / "e2e" / "kube_workflows"
PATH = "kube_wf.py"
NAMESPACE = f"{PROJECT}-{DOMAIN}"


def start_kube_server(base: pathlib.Path, double: KubeDouble):
    kubeconfig = double.write_kubeconfig(base)
    return start_server(
        base,
        base / "data",
        env={
            "FLYTE_RS_KUBERNETES__ENABLED": "true",
            "FLYTE_RS_KUBERNETES__KUBECONFIG": str(kubeconfig),
            # Quota refusals are retried after 0.2 s, 0.4 s, … instead of 2 s, 4 s, ….
            "FLYTE_RS_KUBERNETES__QUOTA_BACKOFF_BASE_MS": "200",
            # Always the local directory, also in a FLYTERS_E2E_BLOB_STORE=s3 run: the emulated
            # pods get no object-store credentials (the server never writes its own into pods).
            "FLYTE_RS_STORAGE__BLOB_URL": f"file://{base / 'data' / 'blobs'}",
            **{f"FLYTE_RS_STORAGE__S3__{k}": None for k in (
                "ENDPOINT", "REGION", "ALLOW_HTTP", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY")},
        },
    )


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    base = tmp_path_factory.mktemp("flyte-rs-kube")
    # No skip: if the double cannot start, this fixture raises and every test here fails.
    double = KubeDouble([NAMESPACE], base)
    srv = start_kube_server(base, double)
    yield srv, double
    code = stop_server(srv)
    double.close()
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


def remote_for(server):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    return FlyteRemote(config=Config.auto(config_file=str(server.config_path)), default_project=PROJECT, default_domain=DOMAIN)


@pytest.fixture(scope="module")
def kube_remote(kube):
    return remote_for(kube[0])


def test_a_python_workflow_runs_its_tasks_as_pods(kube, kube_remote):
    server, double = kube
    name = run_remote(server, ROOT, PATH, "pods_wf", "--x", "4")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
    assert done.outputs.get("o0", as_type=int) == 17

    pods = double.created_for(name)
    assert sorted(p["metadata"]["labels"]["task-name"] for p in pods) == [
        "kube_wf.add_one", "kube_wf.square"
    ], [p["metadata"]["name"] for p in pods]
    for pod in pods:
        meta = pod["metadata"]
        assert meta["namespace"] == NAMESPACE
        labels = meta["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "flyte-rs"
        assert labels["execution-id"] == name
        assert (labels["project"], labels["domain"], labels["retry-attempt"]) == (PROJECT, DOMAIN, "0")
        assert meta["name"] == f"{name}-{labels['node-id']}-0"
        container = pod["spec"]["containers"][0]
        assert "pyflyte-execute" in container["args"], container["args"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["FLYTE_INTERNAL_EXECUTION_ID"] == name
        assert env["FLYTE_INTERNAL_EXECUTION_PROJECT"] == PROJECT
        assert pod["spec"]["restartPolicy"] == "Never"

    # Owned by the execution's ConfigMap, as propeller's pods by the FlyteWorkflow resource
    # (docs/adr-012-kubernetes-pod-owner.md); once the execution ended the owner carries when it goes
    # (kubernetes.delete_finished_pods_after_secs, 23 h here), taking the pods with it.
    owner = double.config_map(NAMESPACE, f"flyte-rs-exec-{name}")
    assert owner is not None, sorted(double.config_maps)
    for pod in pods:
        (ref,) = pod["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "ConfigMap", owner["metadata"]["name"], owner["metadata"]["uid"], True), ref
    assert double.wait_for(lambda: "flyte-rs/delete-after" in (
        (double.config_map(NAMESPACE, f"flyte-rs-exec-{name}") or {}).get("metadata", {}).get("annotations") or {})), \
        double.config_map(NAMESPACE, f"flyte-rs-exec-{name}")

    # The pod's log, copied from the API (`…/pods/{name}/log`), is served by the server like a
    # local task's: the attempt's "Task logs (pod)" link.
    listed = json.loads(_get(f"{server.url}/api/v1/task_executions/{PROJECT}/{DOMAIN}/{name}/n0?limit=100"))
    (attempt,) = listed["taskExecutions"]
    links = {log["name"]: log["uri"] for log in attempt["closure"].get("logs", [])}
    assert "Task logs (pod)" in links, links
    assert "kube e2e: squaring 4" in _get(links["Task logs (pod)"]), links


def test_a_failing_task_fails_the_execution_with_the_users_error(kube, kube_remote):
    server, double = kube
    name = run_remote(server, ROOT, PATH, "broken_wf", "--x", "7")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.FAILED, server)
    error = done.closure.error
    assert "kube e2e: cannot take 7" in error.message, error.message
    assert error.kind == 1, error  # USER (ExecutionError.ErrorKind)
    assert len(double.created_for(name)) == 1


def test_an_oom_killed_pod_is_retried_as_a_new_pod(kube, kube_remote):
    server, double = kube
    double.oom_first_attempt.add("kube_wf.hungry")
    name = run_remote(server, ROOT, PATH, "hungry_wf", "--x", "4")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
    assert done.outputs.get("o0", as_type=int) == 40
    pods = sorted(p["metadata"]["name"] for p in double.created_for(name))
    assert pods == [f"{name}-n0-0", f"{name}-n0-1"], pods
    attempts = task_executions(kube_remote, done, "n0")
    assert [a.closure.phase for a in attempts] == [TaskExecutionPhase.FAILED, TaskExecutionPhase.SUCCEEDED]
    first_error = attempts[0].closure.error
    assert first_error.code == "OOMKilled", first_error
    assert first_error.kind == 1, first_error  # USER, as propeller (DemystifyFailure) blames it
    assert "terminated with exit code (137)" in first_error.message, first_error.message


def test_terminating_an_execution_deletes_its_running_pod(kube, kube_remote, tmp_path):
    server, double = kube
    pid_file = tmp_path / "sleepy.pid"
    name = run_remote(server, ROOT, PATH, "sleepy_wf", "--pid_file", str(pid_file))
    # Running: the pod's process has started and written its pid.
    assert double.wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != ""), server.log()[-4000:]
    pid = int(pid_file.read_text())
    (pod,) = double.created_for(name)
    pod_path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}"

    kube_remote.terminate(kube_remote.fetch_execution(name=name), cause="stopped by the kube e2e test")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.ABORTED, server)
    assert double.wait_for(lambda: f"DELETE {pod_path}" in double.requests), double.requests[-20:]
    assert double.wait_for(lambda: not _alive(pid)), f"the pod's process {pid} still runs"


def test_a_map_task_runs_one_pod_per_index(kube, kube_remote):
    server, double = kube
    name = run_remote(server, ROOT, PATH, "map_wf", "--xs", "[2, 3, 4]")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
    assert done.outputs.get("o0", as_type=int) == 4 + 9 + 16
    # The array node's sub-task is flytekit's `map_square_<hash>-arraynode`.
    mapped = [p for p in double.created_for(name) if p["metadata"]["labels"]["task-name"].startswith("kube_wf.map_square")]
    indexes = sorted(
        {e["name"]: e.get("value") for e in p["spec"]["containers"][0].get("env", [])}.get("FLYTE_K8S_ARRAY_INDEX")
        for p in mapped
    )
    assert indexes == ["0", "1", "2"], [(p["metadata"]["name"], p["metadata"]["labels"]["task-name"], p["spec"]["containers"][0]["args"]) for p in double.created_for(name)]


def test_a_map_task_keeps_to_its_concurrency_and_min_success_ratio_with_pods(kube, kube_remote):
    server, double = kube
    # Five items, concurrency 2, item 3 fails: 4/5 succeed >= 0.6, the execution succeeds with
    # the failed item's output left out.
    name = run_remote(server, ROOT, PATH, "bounded_map_wf")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
    assert done.outputs.get("o0", as_type=int) == 1 + 4 + 16 + 25
    pods = [p for p in double.created_for(name) if "FLYTE_K8S_ARRAY_INDEX" in json.dumps(p)]
    assert len(pods) == 5, [p["metadata"]["name"] for p in pods]
    # Never more than two of its pods pending or running at once (and two did run together).
    with double.cond:
        assert double.max_live.get(name) == 2, double.max_live.get(name)

    # The same with 0.9: 4/5 is too few, the execution fails.
    name = run_remote(server, ROOT, PATH, "strict_map_wf")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.FAILED, server)
    with double.cond:
        assert double.max_live.get(name, 0) <= 2, double.max_live.get(name)


def test_secret_requests_are_read_from_kubernetes_secrets(kube, kube_remote):
    server, double = kube
    token, password = "tok-" + uuid.uuid4().hex, "pw-" + uuid.uuid4().hex
    double.create_secret(NAMESPACE, "kube-creds", {"api_token": token, "db_password": password})
    name = run_remote(server, ROOT, PATH, "secrets_wf")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
    assert done.outputs.get("o0", as_type=typing.List[str]) == [_sha(token), _sha(password)]

    # The pod names the secrets; it never holds their values (anyone who may get pods reads it).
    (pod,) = double.created_for(name)
    assert token not in json.dumps(pod) and password not in json.dumps(pod)
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["_FSEC_KUBE-CREDS_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "kube-creds", "key": "api_token", "optional": True}
    assert env["FLYTE_SECRETS_ENV_PREFIX"]["value"] == "_FSEC_"
    assert env["FLYTE_SECRETS_DEFAULT_DIR"]["value"] == "/etc/flyte/secrets"
    assert env["DB_PASSWORD_FILE"]["value"] == "/etc/flyte/secrets/kube-creds/db_password"
    (volume,) = pod["spec"]["volumes"]
    assert volume["secret"] == {"secretName": "kube-creds", "items": [{"key": "db_password", "path": "db_password"}],
                                "optional": True}
    assert container["volumeMounts"] == [{"name": volume["name"], "mountPath": "/etc/flyte/secrets/kube-creds",
                                          "readOnly": True}]
    # Nor does anything the server shows or logs.
    assert token not in server.log() and password not in server.log()


def test_a_missing_kubernetes_secret_fails_the_task_naming_it(kube, kube_remote):
    server, double = kube
    name = run_remote(server, ROOT, PATH, "missing_secret_wf")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.FAILED, server)
    # The reference is optional (as propeller makes it): the pod runs and flytekit names what it
    # looked for.
    message = done.closure.error.message
    assert "kube-missing" in message and "_FSEC_KUBE-MISSING_NOPE" in message, message
    assert done.closure.error.kind == 1, done.closure.error  # USER


def test_a_pod_over_the_namespace_quota_waits_queued_and_then_runs(kube, kube_remote):
    server, double = kube
    double.quota_refusals["kube_wf.over_quota"] = 2
    name = run_remote(server, ROOT, PATH, "quota_wf", "--x", "5")
    done = wait(kube_remote, name)
    assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
    assert done.outputs.get("o0", as_type=int) == 15
    pod = f"{name}-n0-0"
    posts = [r for r in double.requests if r == f"POST /api/v1/namespaces/{NAMESPACE}/pods"]
    assert [p["metadata"]["name"] for p in double.created_for(name)] == [pod]
    assert double.quota_refusals["kube_wf.over_quota"] == 0 and len(posts) >= 3, double.requests
    # The attempt was QUEUED with the quota's message (one attempt: not failed and retried).
    listed = json.loads(_get(f"{server.url}/api/v1/task_executions/{PROJECT}/{DOMAIN}/{name}/n0?limit=100"))
    (attempt,) = listed["taskExecutions"]
    reasons = [r.get("message", "") for r in attempt["closure"].get("reasons", [])]
    assert any(
        r.startswith(f'Exceeded resourcequota: pods "{pod}" is forbidden: exceeded quota: compute-resources')
        for r in reasons
    ), reasons


@pytest.mark.parametrize("finish_while_down", [False, True], ids=["pod-runs-on", "pod-finished-while-down"])
def test_a_restarted_server_follows_the_running_pod_instead_of_starting_another(tmp_path, finish_while_down):
    base = tmp_path / "restart"
    base.mkdir()
    double = KubeDouble([NAMESPACE], base)
    try:
        server = start_kube_server(base, double)
        pid_file, gate = tmp_path / "gated.pid", tmp_path / "gate"
        name = run_remote(server, ROOT, PATH, "gated_wf", "--pid_file", str(pid_file), "--gate", str(gate))
        assert double.wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != ""), server.log()[-4000:]
        pid = int(pid_file.read_text())
        assert stop_server(server) == 0, server.log()
        assert _alive(pid), "stopping the server killed the pod's process"
        if finish_while_down:
            gate.write_text("go")
            assert double.wait_for(lambda: double.pod_phase(NAMESPACE, f"{name}-n0-0") == "Succeeded")

        server = start_kube_server(base, double)
        gate.write_text("go")  # the pod may finish now, after the restart
        done = wait(remote_for(server), name)
        assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
        assert done.outputs.get("o0", as_type=int) == 5
        pods = double.created_for(name)
        assert [p["metadata"]["name"] for p in pods] == [f"{name}-n0-0"], "the attempt's pod was created again"
        # Re-attached (a GET of the pod), not created again: one create in this double's life.
        posts = [r for r in double.requests if r == f"POST /api/v1/namespaces/{NAMESPACE}/pods"]
        assert len(posts) == 1, double.requests
        assert stop_server(server) == 0, server.log()
    finally:
        double.close()


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode("utf-8", "replace")


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent counts as gone.
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
