"""Dynamic workflows, map tasks, launch-plan nodes, gates and signals, relaunch and recover, end
to end: `pyflyte run --remote examples/advanced.py …` against a fresh `flyte-rs start`, driven
and checked with the real `FlyteRemote` (issue 4, item 6).

Every run is launched at once by the module fixture (`launched`) so their task processes
overlap; each test then waits for its own. Runs that leave side-effect files get a marker
directory of their own: a task appends a line to `<dir>/<tag>` each time it runs, which is how
the recover tests prove that what succeeded did not run again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import pathlib
import shutil
import sys
import time
import typing
import uuid

import grpc
import pytest

from conftest import DOMAIN, EXAMPLES, EXAMPLES_PROJECT, PROJECT, Server, describe, pyflyte

sys.path.insert(0, str(EXAMPLES_PROJECT))

from flyteidl.admin import execution_pb2  # noqa: E402
from flytekit.exceptions.system import FlyteSystemException  # noqa: E402
from flytekit.exceptions.user import FlyteEntityNotExistException, FlyteInvalidInputException  # noqa: E402
from flytekit.models.core.execution import NodeExecutionPhase, TaskExecutionPhase, WorkflowExecutionPhase  # noqa: E402
from flytekit.models.core.identifier import NodeExecutionIdentifier, WorkflowExecutionIdentifier  # noqa: E402

POLL = datetime.timedelta(seconds=0.5)
FILE = "examples/advanced.py"
Mode = execution_pb2.ExecutionMetadata.ExecutionMode


def _name(prefix: str = "a") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------------------------
# Helpers.


def run_remote(server: Server, root: pathlib.Path, entity: str, *inputs: str) -> str:
    """`pyflyte run --remote examples/advanced.py <entity> <inputs>` with a known name."""
    name = _name()
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name, FILE, entity, *inputs,
        cwd=root,
    )
    assert result.returncode == 0, describe(result, server)
    return name


def wait(remote, name: str, timeout: float = 300):
    execution = remote.fetch_execution(name=name)
    return remote.wait(execution, timeout=datetime.timedelta(seconds=timeout), poll_interval=POLL)


def phase_name(phase: int) -> str:
    return WorkflowExecutionPhase.enum_to_string(phase)


def assert_phase(execution, phase: int, server: Server | None = None) -> None:
    got = execution.closure.phase
    if got != phase:
        error = execution.closure.error
        detail = f"{error.code}: {error.message}" if error else ""
        log = f"\n--- server log (tail)\n{server.log()[-6000:]}" if server else ""
        raise AssertionError(
            f"execution {execution.id.name}: phase {phase_name(got)}, expected {phase_name(phase)} {detail}{log}"
        )


def node_executions(remote, execution_id, unique_parent_id: str | None = None) -> dict:
    """Node executions of an execution (top level, or the children of one parent node)."""
    nodes, token = {}, ""
    while True:
        page, token = remote.client.list_node_executions(
            execution_id, limit=100, token=token, unique_parent_id=unique_parent_id
        )
        nodes.update({n.id.node_id: n for n in page})
        if not token:
            return nodes


def task_attempts(remote, execution_id, node_id: str) -> list:
    found, token = [], ""
    while True:
        page, token = remote.client.list_task_executions_paginated(
            NodeExecutionIdentifier(node_id, execution_id), limit=100, token=token
        )
        found.extend(page)
        if not token:
            return sorted(found, key=lambda t: t.id.retry_attempt)


def user_nodes(nodes: dict) -> dict:
    """Without start and end nodes (whose ids inside dynamics may be hashed: use the spec id)."""
    system = ("start-node", "end-node")
    return {k: v for k, v in nodes.items() if not k.endswith(system) and v.metadata.spec_node_id not in system}


def wait_for_signal(remote, server: Server, name: str, signal_id: str, timeout: float = 120):
    """Polls ListSignals until the gate has created `signal_id` (the engine reached the gate)."""
    deadline = time.monotonic() + timeout
    while True:
        signals = remote.list_signals(name)
        found = [s for s in signals if s.id.signal_id == signal_id]
        if found:
            return found[0]
        execution = remote.fetch_execution(name=name)
        if execution.is_done:
            error = execution.closure.error
            raise AssertionError(
                f"{name} finished ({phase_name(execution.closure.phase)}) without waiting for {signal_id!r}: "
                f"{error.message if error else ''}\n--- server log (tail)\n{server.log()[-4000:]}"
            )
        assert time.monotonic() < deadline, (
            f"no signal {signal_id!r} for {name} after {timeout}s (signals: {[s.id.signal_id for s in signals]})\n"
            + server.log()[-4000:]
        )
        time.sleep(0.3)


def markers(directory: pathlib.Path) -> dict[str, int]:
    """How many times each tagged task ran: {tag: lines in <dir>/<tag>}."""
    return {
        p.name: len(p.read_text().splitlines()) for p in sorted(directory.iterdir()) if p.is_file() and p.name != "allow"
    }


def grpc_code(err: BaseException) -> grpc.StatusCode | None:
    cause = err.__cause__
    return cause.code() if isinstance(cause, grpc.RpcError) else None


def grpc_details(err: BaseException) -> str:
    cause = err.__cause__
    return cause.details() if isinstance(cause, grpc.RpcError) else str(err)


# --------------------------------------------------------------------------------------------
# Fixtures: a project copy, marker dirs, and every run launched at once.


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> pathlib.Path:
    """A copy of examples/ in a project directory of its own (what pyflyte run bundles)."""
    root = tmp_path_factory.mktemp("advanced-project")
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@dataclasses.dataclass
class Launched:
    names: dict[str, str] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    dirs: dict[str, pathlib.Path] = dataclasses.field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        if key in self.errors:
            pytest.fail(f"pyflyte run --remote for {key!r} failed:\n{self.errors[key]}")
        return self.names[key]


MARKED = ("recover", "recover_dynamic", "recover_map")


@pytest.fixture(scope="module")
def launched(server: Server, project: pathlib.Path, tmp_path_factory) -> Launched:
    out = Launched()
    for key in MARKED:
        out.dirs[key] = tmp_path_factory.mktemp(f"markers-{key}")
    runs: dict[str, tuple[str, ...]] = {
        "fan_out": ("fan_out_wf", "--n", "5"),
        "nested": ("nested_dynamic_wf", "--n", "3"),
        "map_plain": ("map_plain_wf", "--xs", "[1, 2, 3, 4]"),
        "map_partial": ("map_partial_wf", "--xs", "[1, 2, 3, 4, 5, 6]"),
        "map_partial_too_few": ("map_partial_wf", "--xs", "[3, 6, 9, 1]"),
        "map_bound": ("map_bound_wf", "--xs", "[1, 2, 3]", "--exponent", "3"),
        "sub_and_lp": ("sub_and_lp_wf", "--x", "3"),
        "sleep_gate": ("sleep_gate_wf", "--x", "21"),
        "signal": ("signal_wf", "--x", "1"),
        "approve": ("approval_wf", "--x", "5"),
        "reject": ("approval_wf", "--x", "6"),
        "recover": ("recover_wf", "--x", "1", "--marker_dir", str(out.dirs["recover"])),
        "recover_dynamic": (
            "recover_dynamic_wf", "--n", "4", "--fail_on", "2", "--marker_dir", str(out.dirs["recover_dynamic"]),
        ),
        "recover_map": (
            "recover_map_wf", "--xs", "[0, 1, 2, 3]", "--fail_on", "2", "--marker_dir", str(out.dirs["recover_map"]),
        ),
    }

    def launch(key: str) -> None:
        entity, *inputs = runs[key]
        try:
            out.names[key] = run_remote(server, project, entity, *inputs)
        except AssertionError as e:
            out.errors[key] = str(e)

    # The first alone: it uploads the code bundle the others then find already there.
    first, *rest = runs
    launch(first)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(launch, rest))
    return out


# --------------------------------------------------------------------------------------------
# Dynamic workflows.


def test_dynamic_fan_out(server: Server, remote, launched):
    execution = wait(remote, launched["fan_out"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 20  # 2 * (0 + 1 + 2 + 3 + 4)
    nodes = node_executions(remote, execution.id)
    n0 = nodes["n0"]
    assert n0.closure.phase == NodeExecutionPhase.SUCCEEDED
    assert n0.metadata.is_parent_node and n0.metadata.is_dynamic, n0.metadata
    children = user_nodes(node_executions(remote, execution.id, unique_parent_id="n0"))
    assert len(children) == 6, sorted(children)  # 5 x double + add_all
    assert all(c.closure.phase == NodeExecutionPhase.SUCCEEDED for c in children.values())
    # The client's own walk: GetNodeExecutionData serves the compiled dynamic workflow.
    synced = remote.sync_execution(execution, sync_nodes=True)
    dynamic_node = synced.node_executions["n0"]
    assert len(user_nodes(dynamic_node.subworkflow_node_executions)) == 6
    assert dynamic_node.outputs.get("o0", as_type=int) == 20


def test_nested_dynamic(server: Server, remote, launched):
    execution = wait(remote, launched["nested"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=typing.List[typing.List[int]]) == [[20], [40, 42], [60, 62, 64]]
    outer = user_nodes(node_executions(remote, execution.id, unique_parent_id="n0"))
    assert len(outer) == 3, sorted(outer)  # three `inner` dynamics
    inner_sizes = []
    for node_id, node in sorted(outer.items()):
        assert node.metadata.is_dynamic, (node_id, node.metadata)
        assert node.closure.phase == NodeExecutionPhase.SUCCEEDED
        inner_sizes.append(len(user_nodes(node_executions(remote, execution.id, unique_parent_id=node_id))))
    assert sorted(inner_sizes) == [1, 2, 3], inner_sizes


# --------------------------------------------------------------------------------------------
# Map tasks.


def test_map_task(server: Server, remote, launched):
    execution = wait(remote, launched["map_plain"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=typing.List[int]) == [1, 4, 9, 16]
    assert execution.outputs.get("o1", as_type=int) == 30
    n0 = node_executions(remote, execution.id)["n0"]
    assert n0.metadata.is_array, n0.metadata


def test_map_task_partial_success(server: Server, remote, launched):
    execution = wait(remote, launched["map_partial"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    # Multiples of 3 fail; 4 of 6 succeeded >= min_success_ratio 0.5: None where one failed.
    assert execution.outputs.get("o0", as_type=typing.List[typing.Optional[int]]) == [1, 2, None, 4, 5, None]
    assert execution.outputs.get("o1", as_type=int) == 4


def test_map_task_too_few_successes_fails(server: Server, remote, launched):
    execution = wait(remote, launched["map_partial_too_few"])
    # 1 of 4 succeeded < 0.5.
    assert_phase(execution, WorkflowExecutionPhase.FAILED, server)
    n0 = node_executions(remote, execution.id)["n0"]
    assert n0.closure.phase == NodeExecutionPhase.FAILED


def test_map_task_with_a_bound_input(server: Server, remote, launched):
    execution = wait(remote, launched["map_bound"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=typing.List[int]) == [1, 8, 27]


# --------------------------------------------------------------------------------------------
# A subworkflow node and a launch-plan node.


def test_subworkflow_and_launch_plan_nodes(server: Server, remote, launched):
    execution = wait(remote, launched["sub_and_lp"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 16  # 2 * 3 + 10
    assert execution.outputs.get("o1", as_type=int) == 33  # 2 * 16 + 1 (fixed y)
    nodes = node_executions(remote, execution.id)
    assert nodes["n0"].metadata.is_parent_node, "a subworkflow node is a parent node"
    lp_node = nodes["n1"]
    assert lp_node.closure.phase == NodeExecutionPhase.SUCCEEDED
    child_id = lp_node.closure.workflow_node_metadata.execution_id
    assert child_id.name and child_id.name != execution.id.name, lp_node.closure
    child = remote.fetch_execution(name=child_id.name)
    assert_phase(child, WorkflowExecutionPhase.SUCCEEDED, server)
    assert child.spec.launch_plan.name == "examples.advanced.double_then_add_one"
    assert child.spec.metadata.mode == Mode.CHILD_WORKFLOW
    parent = child.spec.metadata.parent_node_execution
    assert (parent.execution_id.name, parent.node_id) == (execution.id.name, "n1")
    assert child.outputs.get("o0", as_type=int) == 33
    # The child is listed among the project's executions.
    listed, token = [], ""
    while True:
        page, token = remote.client.list_executions_paginated(PROJECT, DOMAIN, limit=100, token=token)
        listed.extend(e.id.name for e in page)
        if not token:
            break
    assert child_id.name in listed


# --------------------------------------------------------------------------------------------
# Gates and signals.


def test_sleep_gate(server: Server, remote, launched):
    execution = wait(remote, launched["sleep_gate"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 42
    nodes = user_nodes(node_executions(remote, execution.id))
    gate = nodes["n0"]
    assert gate.closure.phase == NodeExecutionPhase.SUCCEEDED
    assert gate.closure.duration >= datetime.timedelta(seconds=2), gate.closure.duration
    # The task waited for the gate.
    assert nodes["n1"].closure.started_at >= gate.closure.started_at + datetime.timedelta(seconds=2)


def test_signal_set_from_flyte_remote(server: Server, remote, launched):
    name = launched["signal"]
    signal = wait_for_signal(remote, server, name, "y")
    assert signal.type.simple == 1, signal.type  # INTEGER
    # Bad input: the wrong type, and an execution that does not exist.
    with pytest.raises(FlyteInvalidInputException) as wrong_type:
        remote.set_input("y", name, "forty-one")
    assert grpc_code(wrong_type.value) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(FlyteEntityNotExistException):
        remote.set_input("y", "nosuchexecution", 41)
    # Recover of a running execution is refused.
    with pytest.raises(FlyteSystemException) as running:
        remote.client.recover_execution(WorkflowExecutionIdentifier(PROJECT, DOMAIN, name))
    assert grpc_code(running.value) == grpc.StatusCode.FAILED_PRECONDITION, grpc_details(running.value)
    assert not remote.fetch_execution(name=name).is_done, "the wrong value must not have released the gate"

    remote.set_input("y", name, 41)
    execution = wait(remote, name)
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 42
    (signal,) = [s for s in remote.list_signals(name) if s.id.signal_id == "y"]
    assert signal.value.scalar.primitive.integer == 41


def test_approve(server: Server, remote, launched):
    name = launched["approve"]
    wait_for_signal(remote, server, name, "approve-double")
    remote.approve("approve-double", name)
    execution = wait(remote, name)
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    assert execution.outputs.get("o0", as_type=int) == 11  # 2 * 5 + 1


def test_reject(server: Server, remote, launched):
    name = launched["reject"]
    wait_for_signal(remote, server, name, "approve-double")
    remote.reject("approve-double", name)
    execution = wait(remote, name)
    assert_phase(execution, WorkflowExecutionPhase.FAILED, server)
    nodes = user_nodes(node_executions(remote, execution.id))
    assert nodes["n0"].closure.phase == NodeExecutionPhase.SUCCEEDED  # double ran
    assert nodes["n1"].closure.phase == NodeExecutionPhase.FAILED, nodes["n1"].closure  # the gate
    assert "n2" not in nodes or nodes["n2"].closure.phase != NodeExecutionPhase.SUCCEEDED


# --------------------------------------------------------------------------------------------
# Relaunch and recover.


def test_relaunch(server: Server, remote, launched):
    original = wait(remote, launched["fan_out"])
    assert_phase(original, WorkflowExecutionPhase.SUCCEEDED, server)
    new_id = remote.client.relaunch_execution(original.id, name=_name("r"))
    assert new_id.name != original.id.name
    relaunched = wait(remote, new_id.name)
    assert_phase(relaunched, WorkflowExecutionPhase.SUCCEEDED, server)
    assert relaunched.outputs.get("o0", as_type=int) == 20
    assert relaunched.inputs.get("n", as_type=int) == 5
    assert relaunched.spec.metadata.mode == Mode.RELAUNCH
    assert relaunched.spec.metadata.reference_execution.name == original.id.name
    assert relaunched.spec.launch_plan == original.spec.launch_plan


def _recover(remote, server: Server, launched: Launched, key: str):
    """Waits for `key` to fail, lets the fragile task through, recovers; returns (original,
    recovered, markers before, markers after)."""
    original = wait(remote, launched[key])
    assert_phase(original, WorkflowExecutionPhase.FAILED, server)
    directory = launched.dirs[key]
    before = markers(directory)
    (directory / "allow").touch()
    new_id = remote.client.recover_execution(original.id, name=_name("rc"))
    recovered = wait(remote, new_id.name)
    assert_phase(recovered, WorkflowExecutionPhase.SUCCEEDED, server)
    assert recovered.spec.metadata.mode == Mode.RECOVERED
    assert recovered.spec.metadata.reference_execution.name == original.id.name
    return original, recovered, before, markers(directory)


def test_recover_reruns_only_what_failed(server: Server, remote, launched):
    original, recovered, before, after = _recover(remote, server, launched, "recover")
    assert before == {"a": 1, "b": 1, "fragile": 1}, before
    assert recovered.outputs.get("o0", as_type=int) == 301  # 100 * (1 + 2) + 1
    # a and b succeeded in the original: recovered, not run again.
    assert after == {"a": 1, "b": 1, "fragile": 2, "d": 1}, after
    nodes = user_nodes(node_executions(remote, recovered.id))
    for node_id in ("n0", "n1", "n2", "n3"):
        assert nodes[node_id].closure.phase in (NodeExecutionPhase.SUCCEEDED, NodeExecutionPhase.RECOVERED), node_id
    assert nodes["n0"].closure.phase == NodeExecutionPhase.RECOVERED
    assert nodes["n1"].closure.phase == NodeExecutionPhase.RECOVERED
    assert nodes["n2"].closure.phase == NodeExecutionPhase.SUCCEEDED


def _counts_after_recover(
    before: dict[str, int],
    after: dict[str, int],
    succeeded: set[int],
    failed: int,
    n: int,
    aborted_with_outputs_recovered: bool = False,
):
    """Items that succeeded in the original ran exactly once, in the original; the failed one ran
    once more; items the original never finished (aborted when the other failed) ran in the
    recovery. A map task's index is recovered when it left outputs in the original
    (`aborted_with_outputs_recovered`), so one aborted after it had written them, before the
    engine saw its process end, is not run again (seen with S3 as the store on a loaded host)."""
    for i in range(n):
        tag = f"item-{i}"
        if i in succeeded:
            assert after.get(tag) == before.get(tag) == 1, f"{tag} succeeded in the original: {before} -> {after}"
        elif i == failed:
            assert after.get(tag) == before.get(tag, 0) + 1 == 2, f"{tag} failed in the original: {before} -> {after}"
        elif aborted_with_outputs_recovered and before.get(tag, 0) == 1:
            assert after.get(tag) in (1, 2), f"{tag} was aborted in the original: {before} -> {after}"
        else:
            assert after.get(tag, 0) == before.get(tag, 0) + 1, f"{tag} did not finish in the original: {before} -> {after}"


def test_recover_inside_a_dynamic(server: Server, remote, launched):
    original, recovered, before, after = _recover(remote, server, launched, "recover_dynamic")
    assert before.get("a") == 1 and before.get("dynamic-body") == 1 and before.get("item-2") == 1, before
    assert recovered.outputs.get("o0", as_type=int) == 60  # 10 * (0 + 1 + 2 + 3)
    # The dynamic node is n1; its children dn0..dn3 are the items, dn4 the sum.
    children = node_executions(remote, original.id, unique_parent_id="n1")
    phases = {c.metadata.spec_node_id or k.rsplit("-", 1)[-1]: c.closure.phase for k, c in children.items()}
    succeeded = {i for i in range(4) if phases.get(f"dn{i}") == NodeExecutionPhase.SUCCEEDED}
    assert 2 not in succeeded and succeeded, (phases, before)
    # a and the dynamic's body (its spec) are recovered, not run again; then item by item.
    assert after.get("a") == 1 and after.get("dynamic-body") == 1, (before, after)
    _counts_after_recover(before, after, succeeded, failed=2, n=4)
    recovered_children = node_executions(remote, recovered.id, unique_parent_id="n1")
    recovered_phases = {c.metadata.spec_node_id or k.rsplit("-", 1)[-1]: c.closure.phase for k, c in recovered_children.items()}
    for i in succeeded:
        assert recovered_phases.get(f"dn{i}") == NodeExecutionPhase.RECOVERED, recovered_phases


def test_recover_inside_a_map_task(server: Server, remote, launched):
    original, recovered, before, after = _recover(remote, server, launched, "recover_map")
    assert before.get("item-2") == 1, before
    assert recovered.outputs.get("o0", as_type=int) == 60
    # The map task is n0: which indices succeeded in the original, from its task event.
    (attempt,) = [a for a in task_attempts(remote, original.id, "n0")][-1:]
    last = {}
    for r in attempt.closure.metadata.external_resources:
        last[r.index] = r.phase
    succeeded = {i for i, phase in last.items() if phase == TaskExecutionPhase.SUCCEEDED}
    assert 2 not in succeeded and succeeded, (last, before)
    # Only what did not succeed ran again.
    _counts_after_recover(before, after, succeeded, failed=2, n=4, aborted_with_outputs_recovered=True)
