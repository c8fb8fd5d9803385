"""Secrets (issue 15 item 6) through the real flytekit: tasks with `secret_requests` read them
with `current_context().secrets.get(...)` as environment variables and as files; a missing
secret fails the task naming it; the values appear nowhere the server shows or writes (its
log, the API, the console, the task's log), and the attempt's secret files are gone after it.

One server of its own: the operator's secrets are a file in `<data_dir>/secrets/` and a
`FLYTE_SECRET_*` variable in the server's environment (docs/secrets.md). The golden workflows
are flytesnacks/examples/secrets.py."""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib
import urllib.request
import uuid

import pytest

from conftest import DOMAIN, EXAMPLES_PROJECT, PROJECT, Server, describe, pyflyte, start_server, stop_server

from flytekit.configuration import Config  # noqa: E402
from flytekit.models.core.execution import ExecutionError, WorkflowExecutionPhase  # noqa: E402
from flytekit.remote import FlyteRemote  # noqa: E402

GROUP = "e2e-secrets"
# Distinctive values: searched for, verbatim, in everything the server shows.
TOKEN = "tok-" + uuid.uuid4().hex
PASSWORD = "pw-" + uuid.uuid4().hex


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture(scope="module")
def sec_server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("flyte-rs-secrets")
    data = base / "data"
    # The operator's directory: <data_dir>/secrets/<group>/<key>.
    (data / "secrets" / GROUP).mkdir(parents=True)
    (data / "secrets" / GROUP / "db_password").write_text(PASSWORD + "\n")
    srv = start_server(
        base,
        data,
        env={
            # The server's environment: FLYTE_SECRET_<GROUP>_<KEY>, upper-cased.
            f"FLYTE_SECRET_{GROUP.upper()}_API_TOKEN": TOKEN,
            # Everything the engine logs, so that a leak into any log line is seen.
            "FLYTE_RS_LOGGING__LEVEL": "debug",
        },
    )
    yield srv
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


@pytest.fixture(scope="module")
def sec_remote(sec_server: Server) -> FlyteRemote:
    return FlyteRemote(
        config=Config.auto(config_file=str(sec_server.config_path)), default_project=PROJECT, default_domain=DOMAIN
    )


def run(server: Server, remote: FlyteRemote, entity: str):
    name = "sec" + uuid.uuid4().hex[:12]
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "examples/secrets.py", entity,
        cwd=EXAMPLES_PROJECT,
    )
    assert result.returncode == 0, describe(result, server)
    assert TOKEN not in result.stdout + result.stderr and PASSWORD not in result.stdout + result.stderr
    execution = remote.fetch_execution(name=name)
    try:
        return remote.wait(execution, timeout=datetime.timedelta(seconds=240), poll_interval=datetime.timedelta(seconds=0.5))
    except Exception as e:
        pytest.fail(f"execution {name} did not finish ({e}):\n{server.log()[-6000:]}")


@pytest.fixture(scope="module")
def succeeded(sec_server: Server, sec_remote: FlyteRemote):
    return run(sec_server, sec_remote, "secrets_wf")


@pytest.fixture(scope="module")
def missing(sec_server: Server, sec_remote: FlyteRemote):
    return run(sec_server, sec_remote, "missing_secret_wf")


def test_tasks_read_requested_secrets_from_env_and_files(succeeded, sec_server: Server):
    error = succeeded.closure.error
    assert succeeded.closure.phase == WorkflowExecutionPhase.SUCCEEDED, (
        f"{error.code if error else ''}: {error.message if error else ''}\n{sec_server.log()[-6000:]}"
    )
    out = succeeded.outputs
    assert out["o0"] == digest(TOKEN), "ENV_VAR mount, from the server's FLYTE_SECRET_* variable"
    assert out["o1"] == digest(PASSWORD), "FILE mount, from <data_dir>/secrets/<group>/<key>"
    assert out["o2"] == digest(PASSWORD), "default mount"
    assert out["o3"] == "not visible", "a task that requests nothing sees no secret"


def test_a_missing_secret_fails_the_task_naming_it(missing, sec_server: Server, sec_remote: FlyteRemote):
    assert missing.closure.phase == WorkflowExecutionPhase.FAILED, sec_server.log()[-6000:]
    error = missing.closure.error
    assert error.kind == ExecutionError.ErrorKind.USER, error
    assert f"{GROUP}/not_provided" in error.message, error.message
    # Where it was looked for: the server's variable and the operator's directory.
    assert f"FLYTE_SECRET_{GROUP.upper()}_NOT_PROVIDED" in error.message, error.message
    assert str(sec_server.data_dir / "secrets" / GROUP / "not_provided") in error.message, error.message
    node = missing.node_executions["n0"]
    attempts = [t for t in node.task_executions]
    assert len(attempts) == 1, "not retried: nothing changes by retrying"
    assert attempts[0].closure.error.code == "SecretNotFound", attempts[0].closure.error


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode("utf-8", "replace")


def _rest_views(server: Server, name: str, node_ids: list[str]) -> dict[str, str]:
    """What the REST gateway, the console and the log links show of one execution."""
    base = f"{server.url}/api/v1"
    ex = f"{PROJECT}/{DOMAIN}/{name}"
    views = {
        "execution": _get(f"{base}/executions/{ex}"),
        "execution data": _get(f"{base}/data/executions/{ex}"),
        "node executions": _get(f"{base}/node_executions/{ex}?limit=100"),
        "console": _get(f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/executions/{name}"),
    }
    for node in node_ids:
        listed = _get(f"{base}/task_executions/{ex}/{node}?limit=100")
        views[f"task executions of {node}"] = listed
        views[f"node data of {node}"] = _get(f"{base}/data/node_executions/{ex}/{node}")
        for attempt in json.loads(listed).get("taskExecutions", []):
            for log in attempt.get("closure", {}).get("logs", []):
                views[f"log {log['uri']}"] = _get(log["uri"])
    return views


def test_values_appear_nowhere_the_server_shows(succeeded, missing, sec_server: Server, sec_remote: FlyteRemote):
    for execution in (succeeded, missing):
        name = execution.id.name
        node_ids = [n for n in execution.node_executions if n != "start-node"]
        assert node_ids, "the execution has task nodes"
        shown = {"grpc execution": str(sec_remote.client.get_execution(execution.id))}
        for node_id, node in execution.node_executions.items():
            shown[f"grpc node {node_id}"] = str(node.closure)
            for attempt in node.task_executions:
                shown[f"grpc task {node_id}/{attempt.id.retry_attempt}"] = str(attempt.closure)
        shown.update(_rest_views(sec_server, name, node_ids))
        for where, text in shown.items():
            for value in (TOKEN, PASSWORD):
                assert value not in text, f"a secret value is in {where}"
    log = sec_server.log_path.read_text()
    assert "secrets_wf" in log or "secret" in log, "the server log covers these runs"
    assert TOKEN not in log and PASSWORD not in log, "a secret value is in the server log"


def test_the_attempts_secret_files_are_removed(succeeded, missing, sec_server: Server):
    left = [p for p in (sec_server.data_dir / "work").rglob("*") if p.name.endswith(".secrets")]
    assert left == [], f"secret files outlived their attempts: {left}"
    for p in sec_server.data_dir.rglob("*"):
        if p.is_file() and not p.is_relative_to(sec_server.data_dir / "secrets"):
            try:
                text = p.read_bytes()
            except OSError:
                continue
            assert TOKEN.encode() not in text and PASSWORD.encode() not in text, f"a secret value is in {p}"

