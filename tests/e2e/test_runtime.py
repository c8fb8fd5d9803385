"""Task runtime on the local backend (issue 15 items 3, 4 and 10), through the real flytekit:
eager workflows nested two deep, eager re-runs of the same version, and task resources
(requests scheduled against the host, memory limits enforced, OOMKilled reported).

One server of its own, told it has two CPUs (`engine.host_cpus`), so the outcomes do not
depend on the machine the tests run on.
"""

from __future__ import annotations

import datetime
import pathlib
import sys
import uuid

import pytest

from conftest import DOMAIN, EXAMPLES_PROJECT, PROJECT, Server, describe, pyflyte, start_server, stop_server

from flytekit.configuration import Config  # noqa: E402
from flytekit.models.core.execution import NodeExecutionPhase, WorkflowExecutionPhase  # noqa: E402
from flytekit.remote import FlyteRemote  # noqa: E402

POLL = datetime.timedelta(seconds=0.5)


@pytest.fixture(scope="module")
def rt_server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("flyte-rs-runtime")
    srv = start_server(base, base / "data", env={"FLYTE_RS_ENGINE__HOST_CPUS": "2"})
    yield srv
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


@pytest.fixture(scope="module")
def rt_remote(rt_server: Server) -> FlyteRemote:
    return FlyteRemote(
        config=Config.auto(config_file=str(rt_server.config_path)), default_project=PROJECT, default_domain=DOMAIN
    )


def run(server: Server, file: str, entity: str, *inputs: str) -> str:
    name = "rt" + uuid.uuid4().hex[:12]
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        f"examples/{file}", entity, *inputs,
        cwd=EXAMPLES_PROJECT,
    )
    assert result.returncode == 0, describe(result, server)
    return name


def wait(remote: FlyteRemote, server: Server, name: str, timeout: float = 240):
    execution = remote.fetch_execution(name=name)
    try:
        return remote.wait(execution, timeout=datetime.timedelta(seconds=timeout), poll_interval=POLL)
    except Exception as e:  # a hang is the failure being tested for: say where it hangs
        pytest.fail(f"execution {name} did not finish ({e}):\n{server.log()[-6000:]}")


def phase(execution) -> str:
    return WorkflowExecutionPhase.enum_to_string(execution.closure.phase)


def failure(execution) -> str:
    error = execution.closure.error
    return f"{error.code}: {error.message}" if error else ""


def task_errors(remote: FlyteRemote, execution) -> list:
    """The error of every failed node's last task attempt."""
    errors = []
    for node in remote.client.list_node_executions(execution.id, limit=100)[0]:
        if node.closure.phase != NodeExecutionPhase.FAILED or node.id.node_id == "end-node":
            continue
        attempts = remote.client.list_task_executions_paginated(node.id, limit=100)[0]
        errors.extend(a.closure.error for a in attempts if a.closure.error is not None)
    return errors


# --------------------------------------------------------------------------------------------
# Eager workflows (items 3 and 4).


def test_nested_eager_workflow_does_not_deadlock(rt_server: Server, rt_remote: FlyteRemote):
    # eager_outer waits for eager_inner, which waits for add_one and double: three task
    # processes are alive at once on a two-CPU host. Before the fix both eager tasks held a
    # slot each while they waited, and add_one stayed QUEUED forever.
    name = run(rt_server, "eager.py", "eager_outer", "--x", "3")
    execution = wait(rt_remote, rt_server, name)
    assert phase(execution) == "SUCCEEDED", failure(execution)
    # double(add_one(3)) = 8, add_one(8) = 9
    assert execution.outputs.get("o0", as_type=int) == 9


def test_what_an_eager_task_registers_does_not_depend_on_where_it_ran(rt_server: Server, rt_remote: FlyteRemote):
    # The eager task registers the tasks it launches under its own version. Before the fix
    # those embedded the attempt's working directory (`--dest-dir <work>/<execution>/…`), so
    # registering the same version again from anywhere else (here `pyflyte run` of one of the
    # tasks, which registers it with the version of the same code) was refused with
    # INVALID_ARGUMENT: a different task under an existing version.
    outputs = []
    for _ in range(2):
        name = run(rt_server, "eager.py", "eager_inner", "--x", "1")
        execution = wait(rt_remote, rt_server, name)
        assert phase(execution) == "SUCCEEDED", failure(execution)
        outputs.append(execution.outputs.get("o0", as_type=int))
    assert outputs == [4, 4]
    version = execution.spec.launch_plan.version
    add_one = rt_remote.fetch_task(name="examples.eager.add_one", version=version)
    args = list(add_one.template.container.args)
    assert "--dest-dir" in args, args
    assert str(rt_server.data_dir) not in args[args.index("--dest-dir") + 1], args

    name = run(rt_server, "eager.py", "add_one", "--x", "1")
    execution = wait(rt_remote, rt_server, name)
    assert phase(execution) == "SUCCEEDED", failure(execution)
    assert execution.spec.launch_plan.version == version, "pyflyte run gave the same code another version"


# --------------------------------------------------------------------------------------------
# Resources (item 10).


def test_a_request_no_host_can_satisfy_fails_at_once(rt_server: Server, rt_remote: FlyteRemote):
    name = run(rt_server, "resources.py", "too_big_wf")
    execution = wait(rt_remote, rt_server, name)
    assert phase(execution) == "FAILED", "a task requesting 64 CPUs and 1 TiB ran on a two-CPU host"
    message = failure(execution)
    # The message names what was requested and what the host has.
    assert "64" in message and "1Ti" in message, message
    assert "2 CPU" in message, message
    errors = task_errors(rt_remote, execution)
    assert errors and all(e.code == "Unschedulable" for e in errors), errors


def test_tasks_take_turns_when_their_cpu_requests_do_not_fit_together(
    rt_server: Server, rt_remote: FlyteRemote, tmp_path: pathlib.Path
):
    # Two independent tasks requesting 2 CPUs each, on a host with 2: one runs after the other.
    name = run(rt_server, "resources.py", "two_whole_host_tasks_wf", "--marker_dir", str(tmp_path))
    execution = wait(rt_remote, rt_server, name)
    assert phase(execution) == "SUCCEEDED", failure(execution)
    (a_start, a_end), (b_start, b_end) = (
        tuple(map(float, (tmp_path / tag).read_text().split())) for tag in ("a", "b")
    )
    assert a_end <= b_start or b_end <= a_start, f"ran at the same time: a {a_start}-{a_end}, b {b_start}-{b_end}"


def test_a_task_over_its_memory_limit_is_oom_killed(rt_server: Server, rt_remote: FlyteRemote):
    name = run(rt_server, "resources.py", "memory_hog_wf", "--mib", "1024", "--hold_seconds", "60")
    execution = wait(rt_remote, rt_server, name)
    assert phase(execution) == "FAILED", "a task using 1 GiB under a 200 MiB limit succeeded"
    errors = task_errors(rt_remote, execution)
    assert errors, failure(execution)
    # As propeller reports a container the kernel OOM-killed: code OOMKilled, a USER error.
    from flytekit.models.core.execution import ExecutionError

    for error in errors:
        assert error.code == "OOMKilled", error
        assert error.kind == ExecutionError.ErrorKind.USER, error
        assert "Reason [OOMKilled]" in error.message, error.message
    assert "OOMKilled" in failure(execution)


def test_a_task_within_its_memory_limit_succeeds(rt_server: Server, rt_remote: FlyteRemote):
    name = run(rt_server, "resources.py", "memory_hog_wf", "--mib", "16", "--hold_seconds", "0")
    execution = wait(rt_remote, rt_server, name)
    assert phase(execution) == "SUCCEEDED", failure(execution)
    assert execution.outputs.get("o0", as_type=int) == 16


# --------------------------------------------------------------------------------------------
# Memory limits held by the kernel: a memory cgroup per attempt (issue 15 item 10).


def _wait_for(path: pathlib.Path, server: Server, what: str) -> str:
    import time

    deadline = time.monotonic() + 240
    while not path.exists():
        assert time.monotonic() < deadline, f"{what} never happened:\n{server.log()[-4000:]}"
        time.sleep(0.1)
    return path.read_text()


def _in_its_cgroup(server: Server, markers: pathlib.Path) -> pathlib.Path:
    """The attempt's memory cgroup as the task saw it, checked: this server uses cgroups, the
    cgroup is the attempt's own, it exists with the task's 200 MiB limit while the task runs."""
    whole_log = server.log_path.read_text()  # server.log() is only its end
    assert "memory_limits=cgroup" in whole_log, (
        "this host offers no memory cgroup flyte-rs can use (root, or a delegated cgroup v2 "
        "subtree, is needed for these tests):\n" + server.log()[-3000:]
    )
    directory, limit = _wait_for(markers / "cgroup", server, "the task's start").split()
    cgroup = pathlib.Path(directory)
    assert cgroup.parent.name.startswith("flyte-rs-tasks-"), directory
    assert cgroup.name.startswith(f"{PROJECT}+{DOMAIN}+"), directory
    assert limit == str(200 << 20), limit
    assert cgroup.is_dir(), directory
    assert f"cgroup={directory}" in server.log_path.read_text(), server.log()[-3000:]
    return cgroup


def _assert_killed_by_the_kernel(remote: FlyteRemote, execution, cgroup: pathlib.Path):
    from flytekit.models.core.execution import ExecutionError

    assert phase(execution) == "FAILED", "1 GiB at once under a 200 MiB limit succeeded"
    errors = task_errors(remote, execution)
    assert errors, failure(execution)
    for error in errors:
        assert error.code == "OOMKilled", error
        assert error.kind == ExecutionError.ErrorKind.USER, error
        assert "Reason [OOMKilled]" in error.message, error.message
        assert "the kernel killed it (OOMKilled)" in error.message, error.message
    assert not cgroup.exists(), f"{cgroup} is left after the attempt ended"


def test_a_memory_spike_is_stopped_by_the_kernel_in_the_tasks_own_cgroup(
    rt_server: Server, rt_remote: FlyteRemote, tmp_path
):
    name = run(rt_server, "resources.py", "memory_spike_wf", "--marker_dir", str(tmp_path))
    try:
        cgroup = _in_its_cgroup(rt_server, tmp_path)
    finally:
        (tmp_path / "go").touch()  # a task left waiting would outlive the server
    execution = wait(rt_remote, rt_server, name)
    _assert_killed_by_the_kernel(rt_remote, execution, cgroup)


def test_a_restarted_server_keeps_a_running_tasks_memory_limit(tmp_path_factory):
    import signal

    base = tmp_path_factory.mktemp("cgroup-restart")
    markers = base / "markers"
    markers.mkdir()
    env = {"FLYTE_RS_ENGINE__HOST_CPUS": "2"}
    first = start_server(base, base / "data", env=env)
    try:
        name = run(first, "resources.py", "memory_spike_wf", "--marker_dir", str(markers))
        cgroup = _in_its_cgroup(first, markers)
    except BaseException:
        (markers / "go").touch()  # a task left waiting would outlive the server
        raise
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    assert cgroup.is_dir(), "the running task's cgroup went with the server"
    second = start_server(base, base / "data", port=first.port, log_name="server-2.log", env=env)
    try:
        remote = FlyteRemote(
            config=Config.auto(config_file=str(second.config_path)), default_project=PROJECT, default_domain=DOMAIN
        )
        try:
            _wait_for_log(second, "the re-attached task is in its memory cgroup")
        finally:
            (markers / "go").touch()
        execution = wait(remote, second, name)
        _assert_killed_by_the_kernel(remote, execution, cgroup)
    finally:
        code = stop_server(second)
    assert code == 0, second.log()


def _wait_for_log(server: Server, text: str):
    import time

    deadline = time.monotonic() + 240
    while text not in server.log_path.read_text():
        assert time.monotonic() < deadline, f"never logged {text!r}:\n{server.log()[-4000:]}"
        time.sleep(0.1)
