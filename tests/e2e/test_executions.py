"""Executions end to end: `pyflyte run --remote` against a fresh `flyte-rs start`, the engine runs
the workflow with local task processes (the embedded default), `FlyteRemote.wait()` returns and
the outputs are right.

The runs that need nothing special are launched together once per module (`launched`), so the
task processes of one overlap with the registration of the next; each test then waits for its
own. The crash-recovery test starts a server of its own and kills it with SIGKILL.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import (
    BLOB_STORE,
    DOMAIN,
    EXAMPLES,
    EXAMPLES_PROJECT,
    PROJECT,
    Server,
    describe,
    pyflyte,
    record_timing,
    run_client_elsewhere,
    start_server,
    stop_server,
    store_fs,
)

sys.path.insert(0, str(EXAMPLES_PROJECT))

from flytekit.models.core.execution import NodeExecutionPhase, TaskExecutionPhase, WorkflowExecutionPhase  # noqa: E402
from flytekit.models.core.identifier import NodeExecutionIdentifier  # noqa: E402
from flytekit.types.directory import FlyteDirectory  # noqa: E402
from flytekit.types.file import FlyteFile  # noqa: E402

POLL = datetime.timedelta(seconds=0.5)


def _name(prefix: str = "e") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> pathlib.Path:
    """A copy of examples/ in a project directory of its own (what pyflyte run bundles)."""
    root = tmp_path_factory.mktemp("run-project")
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def run_remote(
    server: Server, root: pathlib.Path, path: str, entity: str, *inputs: str, name: str | None = None
) -> str:
    """`pyflyte run --remote <path> <entity> <inputs>` with a known execution name."""
    name = name or _name()
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name, path, entity, *inputs,
        cwd=root,
    )
    assert result.returncode == 0, describe(result, server)
    return name


def wait(remote, name: str, timeout: float = 300):
    execution = remote.fetch_execution(name=name)
    return remote.wait(execution, timeout=datetime.timedelta(seconds=timeout), poll_interval=POLL)


def assert_phase(execution, phase: int, server: Server | None = None) -> None:
    got = execution.closure.phase
    if got != phase:
        error = execution.closure.error
        detail = f"{error.code}: {error.message}" if error else ""
        log = f"\n--- server log (tail)\n{server.log()[-6000:]}" if server else ""
        raise AssertionError(
            f"execution {execution.id.name}: phase {WorkflowExecutionPhase.enum_to_string(got)}, "
            f"expected {WorkflowExecutionPhase.enum_to_string(phase)} {detail}{log}"
        )


def task_executions(remote, execution, node_id: str) -> list:
    node = NodeExecutionIdentifier(node_id, execution.id)
    found, token = [], ""
    while True:
        page, token = remote.client.list_task_executions_paginated(node, limit=100, token=token)
        found.extend(page)
        if not token:
            return sorted(found, key=lambda t: t.id.retry_attempt)


def node_executions(remote, execution) -> dict:
    nodes, token = {}, ""
    while True:
        page, token = remote.client.list_node_executions(execution.id, limit=100, token=token)
        nodes.update({n.id.node_id: n for n in page})
        if not token:
            return nodes


# What the module launches at once: key -> (file, entity, inputs).
RUNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "pipeline": ("examples/pipeline.py", "pipeline_wf", ("--n", "4", "--scale", "1.5", "--label", "run")),
    "arithmetic": ("examples/basics.py", "arithmetic_wf", ("--a", "1")),
    "words": ("examples/collections_wf.py", "words_wf", ("--texts", '["a b c", "b c", "c"]', "--k", "2")),
    "shape": ("examples/structs.py", "shape_wf", ("--name", "square", "--n", "4")),
    "hello": ("examples/basics.py", "hello_wf", ("--name", "flyte")),
    "single_task": ("examples/basics.py", "add", ("--a", "2", "--b", "40")),
    "sign_pos": ("examples/conditionals.py", "sign_wf", ("--x", "3")),
    "sign_neg": ("examples/conditionals.py", "sign_wf", ("--x", "-4")),
    "guard_fail": ("examples/conditionals.py", "guarded_wf", ("--x", "200")),
    "parity": ("examples/conditionals.py", "parity_wf", ("--x", "5")),
    "after_upstream_pos": ("examples/conditionals.py", "after_upstream_wf", ("--x", "3")),
    "after_upstream_neg": ("examples/conditionals.py", "after_upstream_wf", ("--x", "-2")),
    "nested_branch": ("examples/conditionals.py", "nested_wf", ("--x", "3")),
    "subworkflows": ("examples/subworkflows.py", "parent_wf", ("--x", "1")),
    "files": ("examples/files.py", "files_wf", ()),
    "file_outputs": ("examples/files.py", "file_outputs_wf", ()),
    "flaky": ("examples/failures.py", "flaky_wf", ("--fail_times", "2")),
    "exhausted": ("examples/failures.py", "recoverable_exhausted_wf", ()),
    "broken": ("examples/failures.py", "broken_wf", ("--x", "7")),
    "timeout": ("examples/failures.py", "timeout_wf", ("--seconds", "120")),
    "echo": ("examples/builtin_tasks.py", "echo_wf", ("--x", "5", "--s", "yo")),
    "nap": ("examples/builtin_tasks.py", "nap_wf", ("--x", "2")),
    "nap_map": ("examples/builtin_tasks.py", "nap_map_wf", ("--n", "20")),
    "chain3": ("examples/chains.py", "chain3_wf", ("--x", "10")),
}


class Launched:
    """Execution names by RUNS key; a run that could not be launched fails only its tests."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        if key in self.errors:
            pytest.fail(f"pyflyte run --remote for {key!r} failed:\n{self.errors[key]}")
        return self.names[key]


@pytest.fixture(scope="module")
def launched(server: Server, project: pathlib.Path) -> Launched:
    """Every run in RUNS, started with pyflyte run --remote (a few at a time)."""
    out = Launched()

    def launch(key: str) -> None:
        path, entity, inputs = RUNS[key]
        try:
            out.names[key] = run_remote(server, project, path, entity, *inputs)
        except AssertionError as e:
            out.errors[key] = str(e)

    # The first one alone: it uploads the code bundle the others then find already there.
    launch("pipeline")
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(launch, [k for k in RUNS if k != "pipeline"]))
    return out


# --------------------------------------------------------------------------------------------
# Workflows that succeed, with their outputs.


def test_typed_pipeline_outputs(server: Server, remote, launched):
    from examples.pipeline import Summary

    execution = wait(remote, launched["pipeline"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    out = execution.outputs
    assert out.get("o0", as_type=str) == "run:4:3.75!"
    summary = out.get("o1", as_type=Summary)
    assert summary == Summary(label="run", count=4, mean=3.75, tags={"b0": "2", "b1": "2"})
    assert out.get("o2", as_type=typing.Dict[str, int]) == {"b0": 2, "b1": 2}
    assert out.get("o3", as_type=int) == 4
    # Every node ran once and succeeded; start and end nodes are listed as Flyte lists them.
    nodes = node_executions(remote, execution)
    for node_id in ("n0", "n1", "n2", "n3"):
        assert nodes[node_id].closure.phase == NodeExecutionPhase.SUCCEEDED, node_id
        attempts = task_executions(remote, execution, node_id)
        assert [t.id.retry_attempt for t in attempts] == [0], node_id
        assert attempts[0].closure.phase == TaskExecutionPhase.SUCCEEDED


def test_ints_floats_and_named_tuple(server: Server, remote, launched):
    execution = wait(remote, launched["arithmetic"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    # add(1, 2) = 3; add(3, 2) = 5; stats([1, 2, 3, 5])
    assert execution.outputs.get("total", as_type=int) == 11
    assert execution.outputs.get("mean", as_type=float) == pytest.approx(2.75)


def test_lists_and_dicts(server: Server, remote, launched):
    execution = wait(remote, launched["words"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=typing.List[str]) == ["c", "b"]


def test_dataclasses_and_attribute_paths(server: Server, remote, launched):
    from examples.structs import Point

    execution = wait(remote, launched["shape"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 4
    assert execution.outputs.get("o1", as_type=str) == "SQUARE"
    assert execution.outputs.get("o2", as_type=Point) == Point(x=0.0, y=0.0)


def test_strings_and_default_inputs(server: Server, remote, launched):
    execution = wait(remote, launched["hello"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=str) == "hello flyte"


def test_single_task_run_through_flytegen(server: Server, remote, launched):
    execution = wait(remote, launched["single_task"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 42
    assert execution.spec.launch_plan.name == "examples.basics.add"
    # The synthesized workflow, as the REST gateway shows the closure.
    url = f"{server.url}/api/v1/executions/{PROJECT}/{DOMAIN}/{execution.id.name}"
    with urllib.request.urlopen(url, timeout=10) as response:
        closure = json.load(response)["closure"]
    assert closure["workflowId"]["name"] == ".flytegen.examples.basics.add", closure.get("workflowId")


# --------------------------------------------------------------------------------------------
# Branches and subworkflows.


def test_conditional_both_branches(server: Server, remote, launched):
    positive = wait(remote, launched["sign_pos"])
    assert_phase(positive, WorkflowExecutionPhase.SUCCEEDED, server)
    assert positive.outputs.get("o0", as_type=int) == 9
    negative = wait(remote, launched["sign_neg"])
    assert_phase(negative, WorkflowExecutionPhase.SUCCEEDED, server)
    assert negative.outputs.get("o0", as_type=int) == 4


def test_conditional_on_a_task_output(server: Server, remote, launched):
    execution = wait(remote, launched["parity"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=str) == "value -5"


def test_conditional_case_waits_for_an_upstream_task(server: Server, remote, launched):
    # The taken case reads `square`, which runs before the conditional (whose condition
    # reads only the input): it starts after `square` succeeds, with its output.
    positive = wait(remote, launched["after_upstream_pos"])
    assert_phase(positive, WorkflowExecutionPhase.SUCCEEDED, server)
    assert positive.outputs.get("o0", as_type=int) == -9
    negative = wait(remote, launched["after_upstream_neg"])
    assert_phase(negative, WorkflowExecutionPhase.SUCCEEDED, server)
    assert negative.outputs.get("o0", as_type=int) == 16
    nodes = node_executions(remote, positive)
    assert nodes["n0"].closure.phase == NodeExecutionPhase.SUCCEEDED
    assert nodes["n1"].closure.phase == NodeExecutionPhase.SUCCEEDED


def test_nested_conditional(server: Server, remote, launched):
    # A conditional in a case of another registers and runs (issue 15 item 1).
    execution = wait(remote, launched["nested_branch"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == -3


def test_conditional_fail_branch_message(server: Server, remote, launched):
    execution = wait(remote, launched["guard_fail"])
    assert_phase(execution, WorkflowExecutionPhase.FAILED, server)
    assert "x must be in [0, 100)" in execution.closure.error.message, execution.closure.error


def test_subworkflows(server: Server, remote, launched):
    execution = wait(remote, launched["subworkflows"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    # inc_four(1) = 5, inc_twice(5) = 7
    assert execution.outputs.get("o0", as_type=int) == 7
    assert execution.outputs.get("o1", as_type=str) == "5-7"
    nodes = node_executions(remote, execution)
    assert nodes["n0"].closure.phase == NodeExecutionPhase.SUCCEEDED
    assert nodes["n0"].metadata.is_parent_node, "a subworkflow node is a parent node"


# --------------------------------------------------------------------------------------------
# Files and directories.


def test_local_file_input_is_uploaded_and_read_by_the_task(server: Server, project: pathlib.Path, remote, tmp_path):
    """A local file given to `pyflyte run --remote` goes up through the data proxy
    (CreateUploadLocation + PUT) and the task process reads it from the native URL."""
    report = tmp_path / "report.csv"
    report.write_text("a,1\nb,2\nc,3\nd,4\n")
    name = run_remote(server, project, "examples/files.py", "count_lines", "--report", str(report))
    execution = wait(remote, name)
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 4


def test_files_passed_between_tasks(server: Server, remote, launched):
    execution = wait(remote, launched["files"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 3
    assert execution.outputs.get("o1", as_type=typing.List[str]) == ["part-0.txt", "part-1.txt"]


def test_file_and_directory_outputs_are_readable_by_the_client(server: Server, remote, launched):
    execution = wait(remote, launched["file_outputs"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    uri = execution.outputs.literals["o0"].scalar.blob.uri
    if BLOB_STORE != "file":
        # The task wrote it to the object store, under the server's prefix.
        assert uri.startswith(server.blob_url + "/"), (uri, server.blob_url)
        assert store_fs().isfile(uri), uri
    else:
        # The embedded store is local: the blob URI is a path on this host.
        assert pathlib.Path(uri.removeprefix("file://")).is_file(), uri
    # remote_context(): the remote's data config (its config file's storage connection).
    with remote.remote_context():
        report = execution.outputs.get("o0", as_type=FlyteFile)
        with open(report.download()) as f:
            assert f.read().splitlines() == ["x,1", "y,2", "z,3", "w,4"]
        directory = execution.outputs.get("o1", as_type=FlyteDirectory)
        local = pathlib.Path(directory.download())
    assert sorted(p.name for p in local.iterdir()) == ["part-0.txt", "part-1.txt"]
    assert (local / "part-1.txt").read_text().splitlines() == ["y,2", "w,4"]


def test_a_client_in_another_directory_downloads_the_outputs(server: Server, remote, launched, tmp_path):
    """A client with nothing but a flytekit config (the server, and the store's connection
    when it is an object store), in a working directory of its own, as on a colleague's
    machine: FlyteRemote finds the execution and downloads its file and directory."""
    execution = wait(remote, launched["file_outputs"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    script = f"""
import json, os
from flytekit.configuration import Config
from flytekit.remote import FlyteRemote
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

remote = FlyteRemote(Config.auto(config_file="config.yaml"), "{PROJECT}", "{DOMAIN}")
ex = remote.sync_execution(remote.fetch_execution(name="{execution.id.name}"))
with remote.remote_context():
    with open(ex.outputs.get("o0", as_type=FlyteFile).download()) as f:
        text = f.read()
    local = ex.outputs.get("o1", as_type=FlyteDirectory).download()
print(json.dumps({{"file": text.splitlines(), "dir": sorted(os.listdir(local))}}))
"""
    got = run_client_elsewhere(server, tmp_path / "elsewhere", script)
    assert got == {"file": ["x,1", "y,2", "z,3", "w,4"], "dir": ["part-0.txt", "part-1.txt"]}


# --------------------------------------------------------------------------------------------
# Failures, retries, timeouts.


def test_recoverable_failures_are_retried_then_succeed(server: Server, remote, launched):
    execution = wait(remote, launched["flaky"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 2
    attempts = task_executions(remote, execution, "n0")
    assert [t.id.retry_attempt for t in attempts] == [0, 1, 2]
    assert [t.closure.phase for t in attempts] == [
        TaskExecutionPhase.FAILED,
        TaskExecutionPhase.FAILED,
        TaskExecutionPhase.SUCCEEDED,
    ]
    assert "attempt 0 fails on purpose" in attempts[0].closure.error.message


def test_retries_exhausted_fail_with_the_last_message(server: Server, remote, launched):
    execution = wait(remote, launched["exhausted"])
    assert_phase(execution, WorkflowExecutionPhase.FAILED, server)
    attempts = task_executions(remote, execution, "n0")
    assert [t.id.retry_attempt for t in attempts] == [0, 1, 2, 3], "1 attempt + retries=3"
    assert all(t.closure.phase == TaskExecutionPhase.FAILED for t in attempts)
    error = execution.closure.error
    assert "attempt 3 fails on purpose" in error.message, error


def test_non_recoverable_user_error_is_not_retried(server: Server, remote, launched):
    execution = wait(remote, launched["broken"])
    assert_phase(execution, WorkflowExecutionPhase.FAILED, server)
    attempts = task_executions(remote, execution, "n0")
    assert [t.id.retry_attempt for t in attempts] == [0], "a non-recoverable error is not retried"
    error = execution.closure.error
    assert "broken on purpose with x=7" in error.message, error
    assert error.kind == error.ErrorKind.USER, error


def test_task_timeout(server: Server, remote, launched):
    execution = wait(remote, launched["timeout"])
    assert_phase(execution, WorkflowExecutionPhase.FAILED, server)
    message = execution.closure.error.message.lower()
    assert "timeout" in message or "timed out" in message, execution.closure.error


# --------------------------------------------------------------------------------------------
# Tasks the engine runs itself.


def test_echo_tasks(server: Server, remote, launched):
    execution = wait(remote, launched["echo"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 5
    assert execution.outputs.get("o1", as_type=int) == 5
    assert execution.outputs.get("o2", as_type=str) == "yo"


def test_core_sleep_task(server: Server, remote, launched):
    execution = wait(remote, launched["nap"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 2
    attempts = task_executions(remote, execution, "n0")
    assert len(attempts) == 1 and attempts[0].closure.phase == TaskExecutionPhase.SUCCEEDED
    assert attempts[0].closure.duration >= datetime.timedelta(seconds=1), attempts[0].closure.duration
    assert not attempts[0].closure.logs, "no process, no log"
    # No process reads an in-engine task's inputs, so none are written; the API still has them.
    root = str(server.data_dir) if BLOB_STORE == "file" else server.blob_url
    fs = store_fs()
    fs.invalidate_cache()
    # The keys below the execution's directory (`…/<project>-<domain>-<name>/…`).
    below = [
        parts[i + 1 :]
        for parts in (k.split("/") for k in fs.find(root))
        for i, part in enumerate(parts[:-1])
        if part.endswith(execution.id.name)
    ]
    assert below, f"no data of {execution.id.name} under {root}"
    written = ["/".join(p) for p in below if "n0" in p and p[-1] in ("inputs.pb", "task.pb")]
    assert not written, written
    one_second = datetime.timedelta(seconds=1)
    node_data = remote.client.get_node_execution_data(NodeExecutionIdentifier("n0", execution.id))
    assert node_data.full_inputs.literals["duration"].scalar.primitive.duration == one_second
    task_data = remote.client.get_task_execution_data(attempts[0].id)
    assert task_data.full_inputs.literals["duration"].scalar.primitive.duration == one_second
    synced = remote.sync_execution(execution, sync_nodes=True)
    assert synced.node_executions["n0"].inputs.get("duration", as_type=datetime.timedelta) == one_second
    i = execution.id
    fetched = remote.get(f"flyte://v1/{i.project}/{i.domain}/{i.name}/n0/i")
    assert fetched.get("duration", as_type=datetime.timedelta) == one_second


def test_map_task_over_core_sleep(server: Server, remote, launched):
    """Each item runs in the engine on its own duration, though flytekit gives the map task a
    container (before: the items got the whole list and failed, "must be typed as duration")."""
    execution = wait(remote, launched["nap_map"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 20
    nodes = node_executions(remote, execution)
    assert nodes["n1"].metadata.is_array, nodes["n1"].metadata
    assert nodes["n1"].closure.phase == NodeExecutionPhase.SUCCEEDED
    attempts = task_executions(remote, execution, "n1")
    assert [a.closure.phase for a in attempts] == [TaskExecutionPhase.SUCCEEDED]
    items = attempts[0].closure.metadata.external_resources
    assert sorted(r.index for r in items) == list(range(20)), items
    assert {r.phase for r in items} == {TaskExecutionPhase.SUCCEEDED}, items
    assert not any(r.logs for r in items), "no process, no log"


# --------------------------------------------------------------------------------------------
# Logs.


def test_task_logs_are_served_over_http(server: Server, remote, launched):
    execution = wait(remote, launched["chain3"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 16
    for i, node_id in enumerate(("n0", "n1", "n2"), start=1):
        (attempt,) = task_executions(remote, execution, node_id)
        task_execution = remote.client.get_task_execution(attempt.id)
        logs = task_execution.closure.logs
        assert logs, f"{node_id}: no log links"
        uri = logs[0].uri
        assert uri.startswith(server.url + "/logs/"), uri
        with urllib.request.urlopen(uri, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
        assert f"step {i}: " in text, text[-2000:]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url + "/logs/../../etc/passwd", timeout=10)
    assert err.value.code == 404


# --------------------------------------------------------------------------------------------
# Terminate.


def _process_gone(pid: int) -> bool:
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    # A zombie waiting for its (re)parent to reap it is gone as far as running goes.
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def test_terminate_a_running_execution(server: Server, remote, project, tmp_path):
    pid_file = tmp_path / "pid"
    name = run_remote(
        server, project, "examples/failures.py", "sleepy_wf", "--seconds", "600", "--pid_file", str(pid_file)
    )
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the task never started:\n" + server.log()[-4000:]
        time.sleep(0.2)
    pid = int(pid_file.read_text())
    assert not _process_gone(pid)
    execution = remote.fetch_execution(name=name)
    remote.terminate(execution, cause="stopped by the e2e test")
    execution = wait(remote, name, timeout=60)
    assert_phase(execution, WorkflowExecutionPhase.ABORTED, server)
    assert "stopped by the e2e test" in execution.closure.abort_metadata.cause
    deadline = time.monotonic() + 15
    while not _process_gone(pid):
        assert time.monotonic() < deadline, f"task process {pid} still running after terminate"
        time.sleep(0.2)
    nodes = node_executions(remote, execution)
    assert nodes["n0"].closure.phase == NodeExecutionPhase.ABORTED


# --------------------------------------------------------------------------------------------
# Measurement (reported, not asserted): a chain of ten Python tasks.


def test_ten_task_chain(server: Server, remote, project):
    started = time.monotonic()
    name = run_remote(server, project, "examples/chains.py", "chain10_wf", "--x", "1")
    launched_at = time.monotonic()
    execution = wait(remote, name, timeout=600)
    done = time.monotonic()
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 56
    durations = []
    for i in range(10):
        (attempt,) = task_executions(remote, execution, f"n{i}")
        durations.append(attempt.closure.duration.total_seconds())
    run_seconds = execution.closure.duration.total_seconds()
    record_timing("10-task chain: pyflyte run --remote to done", done - started)
    record_timing("10-task chain: pyflyte run --remote itself", launched_at - started)
    record_timing("10-task chain: execution duration", run_seconds)
    record_timing("10-task chain: mean task attempt", sum(durations) / len(durations))
    record_timing("10-task chain: engine time between attempts (per node)", (run_seconds - sum(durations)) / 10)


# --------------------------------------------------------------------------------------------
# Durability: SIGKILL the server in the middle of an execution, start it again.


def test_execution_survives_sigkill_of_the_server(project, tmp_path_factory):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    base = tmp_path_factory.mktemp("crash")
    data_dir = base / "data"
    markers = base / "markers"
    markers.mkdir()
    first = start_server(base, data_dir)

    def client() -> FlyteRemote:
        return FlyteRemote(
            config=Config.auto(config_file=str(first.config_path)), default_project=PROJECT, default_domain=DOMAIN
        )

    remote = client()
    try:
        name = run_remote(
            first, project, "examples/chains.py", "chain10_wf", "--x", "100", "--delay", "1.0",
            "--marker_dir", str(markers),
        )
        execution = remote.fetch_execution(name=name)
        deadline = time.monotonic() + 180
        while True:
            nodes = node_executions(remote, execution)
            done_before = {
                n for n, e in nodes.items() if n.startswith("n") and e.closure.phase == NodeExecutionPhase.SUCCEEDED
            }
            if len(done_before) >= 3:
                break
            assert time.monotonic() < deadline, "the chain did not get going:\n" + first.log()[-4000:]
            time.sleep(0.2)
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    assert len(done_before) < 10, "the whole chain finished before the kill: nothing was tested"

    second = start_server(base, data_dir, port=first.port, log_name="server-2.log")
    try:
        assert "resumed running executions" in second.log() or "resumed" in second.log(), second.log()[-3000:]
        remote = client()
        execution = wait(remote, name, timeout=300)
        assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, second)
        assert execution.outputs.get("o0", as_type=int) == 155
        for node_id in sorted(done_before):
            attempts = task_executions(remote, execution, node_id)
            assert len(attempts) == 1, f"{node_id} succeeded before the kill but has {len(attempts)} attempts"
        for i in range(1, 11):
            lines = (markers / f"step-{i}").read_text().splitlines()
            node_id = f"n{i - 1}"
            if node_id in done_before:
                assert len(lines) == 1, f"step {i} ({node_id}) succeeded before the kill and ran again: {lines}"
            else:
                assert 1 <= len(lines) <= 2, f"step {i}: {lines}"
    finally:
        code = stop_server(second)
    assert code == 0, second.log()


def test_a_task_running_when_the_server_crashes_is_reattached_not_rerun(project, tmp_path_factory):
    """Issue 12 item 4: a task process outlives a SIGKILL of the server. The server is killed
    while the first step's body runs; the restarted server re-attaches to it instead of
    aborting it and starting attempt 1: the body ran exactly once (one marker line, written by
    attempt 0 at its end), the node has a single attempt, and the chain succeeds."""
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    base = tmp_path_factory.mktemp("reattach")
    data_dir = base / "data"
    markers = base / "markers"
    markers.mkdir()
    first = start_server(base, data_dir)

    def client() -> FlyteRemote:
        return FlyteRemote(
            config=Config.auto(config_file=str(first.config_path)), default_project=PROJECT, default_domain=DOMAIN
        )

    remote = client()
    try:
        name = run_remote(
            first, project, "examples/chains.py", "chain3_wf", "--x", "1", "--delay", "4.0",
            "--marker_dir", str(markers),
        )
        execution = remote.fetch_execution(name=name)
        deadline = time.monotonic() + 180
        while True:
            attempts = task_executions(remote, execution, "n0")
            if attempts and attempts[-1].closure.phase == TaskExecutionPhase.RUNNING:
                break
            assert time.monotonic() < deadline, "the first step never ran:\n" + first.log()[-4000:]
            time.sleep(0.1)
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    assert not (markers / "step-1").exists(), "the first step ended before the kill: nothing was tested"

    second = start_server(base, data_dir, port=first.port, log_name="server-2.log")
    try:
        remote = client()
        execution = wait(remote, name, timeout=300)
        assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, second)
        assert execution.outputs.get("o0", as_type=int) == 7
        attempts = task_executions(remote, execution, "n0")
        assert [a.id.retry_attempt for a in attempts] == [0], [
            (a.id.retry_attempt, TaskExecutionPhase.enum_to_string(a.closure.phase)) for a in attempts
        ]
        assert attempts[0].closure.phase == TaskExecutionPhase.SUCCEEDED
        lines = (markers / "step-1").read_text().splitlines()
        assert len(lines) == 1 and lines[0].endswith("attempt 0"), lines
        assert "re-attached" in second.log(), second.log()[-3000:]
    finally:
        code = stop_server(second)
    assert code == 0, second.log()
