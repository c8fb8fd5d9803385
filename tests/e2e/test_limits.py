"""Issue 11, "one request kills the server": long chains through the real flytekit client.

A `@dynamic` task returning a chain of 10,000 nodes crashed the server (a stack overflow in
the recursive cycle check), and again every time it resumed the execution after a restart.
Here a `@dynamic` builds a chain of in-engine `echo` nodes, each reading the one before, and
the execution must reach SUCCEEDED with the value passed all the way along.
"""

from __future__ import annotations

import datetime
import pathlib
import time
import uuid

import pytest

from conftest import DOMAIN, PROJECT, Server, describe, pyflyte, record_timing

# 10,000 crashed before the fix; long enough to prove the point, short enough for CI.
CHAIN_LENGTH = 10_000

WORKFLOW = '''
from flytekit import dynamic, workflow
from flytekit.core.task import Echo

echo_int = Echo(name="limits.echo_int", inputs={"a": int})


@dynamic
def echo_chain(length: int, x: int) -> int:
    v = x
    for _ in range(length):
        v = echo_int(a=v)
    return v


@workflow
def echo_chain_wf(length: int = 10, x: int = 0) -> int:
    return echo_chain(length=length, x=x)
'''


@pytest.fixture(scope="module")
def limits_project(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("limits-project")
    (root / "limits.py").write_text(WORKFLOW)
    return root


def test_a_dynamic_returning_a_long_chain_succeeds(server: Server, remote, limits_project: pathlib.Path):
    from flytekit.models.core.execution import WorkflowExecutionPhase

    name = "limits-" + uuid.uuid4().hex[:10]
    started = time.monotonic()
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "limits.py", "echo_chain_wf", "--length", str(CHAIN_LENGTH), "--x", "42",
        cwd=limits_project,
    )
    assert result.returncode == 0, describe(result, server)
    execution = remote.wait(
        remote.fetch_execution(name=name), timeout=datetime.timedelta(minutes=20), poll_interval=datetime.timedelta(seconds=2)
    )
    record_timing(f"@dynamic echo chain of {CHAIN_LENGTH}", time.monotonic() - started)
    phase = execution.closure.phase
    assert phase == WorkflowExecutionPhase.SUCCEEDED, (
        f"phase {WorkflowExecutionPhase.enum_to_string(phase)}: {execution.closure.error}\n{server.log()[-6000:]}"
    )
    assert execution.outputs.get("o0", as_type=int) == 42
    assert server.process.poll() is None, "the server is still running"
