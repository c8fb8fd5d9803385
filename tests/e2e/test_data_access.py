"""Reading a run back as a user does (issue 15 items 2, 5, 7, 8, 12): the deck a task wrote
(`deck_uri`, `CreateDownloadLink`), inputs and outputs through `flyte://` URLs (`pyflyte
fetch`, `FlyteRemote.get`), the node executions a dynamic task spawned
(`ListNodeExecutionsForTask`), the span tree of `pyflyte metrics dump`
(`GetExecutionMetrics`), real timestamps on every node, a subworkflow's own failure node, and
the list filters and sorts flytekit and flytectl send.

The runs are launched once per module with `pyflyte run --remote` from the golden examples
(flytesnacks/examples/data_access.py and dynamic_wf.py)."""

from __future__ import annotations

import concurrent.futures
import datetime
import pathlib
import shutil
import sys
import urllib.request

import grpc
import pytest

from conftest import DOMAIN, EXAMPLES, EXAMPLES_PROJECT, PROJECT, Server, describe, pyflyte
from test_executions import Launched, assert_phase, node_executions, run_remote, wait

sys.path.insert(0, str(EXAMPLES_PROJECT))

from flyteidl.service import dataproxy_pb2  # noqa: E402
from flytekit.models import filters as flyte_filters  # noqa: E402
from flytekit.models.admin.common import Sort  # noqa: E402
from flytekit.models.core.execution import NodeExecutionPhase, WorkflowExecutionPhase  # noqa: E402
from flytekit.models.core.identifier import NodeExecutionIdentifier, TaskExecutionIdentifier  # noqa: E402

RUNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "deck": ("examples/data_access.py", "deck_wf", ("--n", "3")),
    "fib": ("examples/dynamic_wf.py", "fib_wf", ("--n", "5")),
    "fragile": ("examples/data_access.py", "fragile_parent_wf", ("--x", "1")),
    "cached_first": ("examples/data_access.py", "cached_square_wf", ("--n", "7")),
}
TAG = "issue15-tag"
EPOCH_2020 = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("data-access-project")
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="module")
def launched(server: Server, project: pathlib.Path) -> Launched:
    out = Launched()

    def launch(key: str, *extra: str) -> None:
        path, entity, inputs = RUNS[key]
        try:
            if extra:
                out.names[key] = run_remote(server, project, *extra, path, entity, *inputs)
            else:
                out.names[key] = run_remote(server, project, path, entity, *inputs)
        except AssertionError as e:
            out.errors[key] = str(e)

    launch("deck", "--tags", TAG)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(launch, [k for k in RUNS if k != "deck"]))
    return out


def _flyte_url(execution, node: str, *rest: str) -> str:
    i = execution.id
    return "/".join([f"flyte://v1/{i.project}/{i.domain}/{i.name}/{node}", *rest])


def _grpc_code(err: BaseException) -> grpc.StatusCode | None:
    """The gRPC code of an error flytekit raised (it wraps RpcErrors in its own exceptions)."""
    seen = err
    while seen is not None:
        if isinstance(seen, grpc.RpcError):
            return seen.code()
        seen = seen.__cause__ or seen.__context__
    return None


# --------------------------------------------------------------------------------------------
# Item 7: decks.


def test_deck_uri_is_reported_and_downloadable(server: Server, remote, launched):
    execution = wait(remote, launched["deck"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    nodes = node_executions(remote, execution)
    deck_uri = nodes["n0"].closure.deck_uri
    assert deck_uri.endswith("/deck.html"), f"deck_uri of the deck task: {deck_uri!r}"
    # A task that wrote no deck has none.
    assert nodes["n1"].closure.deck_uri == ""

    i = execution.id
    link = remote.client.get_download_artifact_signed_url("n0", i.project, i.domain, i.name)
    assert link.pre_signed_urls.signed_url, link
    with urllib.request.urlopen(link.pre_signed_urls.signed_url[0], timeout=30) as resp:
        html = resp.read().decode()
    assert "n squared is 9" in html

    # No deck on n1: NOT_FOUND naming the node, not UNIMPLEMENTED.
    with pytest.raises(Exception) as err:
        remote.client.get_download_artifact_signed_url("n1", i.project, i.domain, i.name)
    assert _grpc_code(err.value) == grpc.StatusCode.NOT_FOUND, err.value
    assert "n1" in str(err.value)


def test_flyte_url_of_a_deck_gives_its_html(server: Server, remote, launched):
    execution = wait(remote, launched["deck"])
    html = remote.get(_flyte_url(execution, "n0", "d"))
    text = html.data if hasattr(html, "data") else bytes(html).decode()
    assert "n squared is 9" in text


# --------------------------------------------------------------------------------------------
# Item 8: GetData (flyte:// URLs) and pyflyte fetch.


def test_flyte_urls_resolve_inputs_and_outputs(server: Server, remote, launched):
    execution = wait(remote, launched["deck"])
    outputs = remote.get(_flyte_url(execution, "n0", "o"))
    assert outputs.get("o0", as_type=int) == 9
    inputs = remote.get(_flyte_url(execution, "n1", "i"))
    assert inputs.get("x", as_type=int) == 3 and inputs.get("y", as_type=int) == 9
    one = remote.get(_flyte_url(execution, "n1", "o", "o0"))
    assert one.scalar.primitive.string_value == "3:9"
    # A specific attempt: the task execution's data.
    attempt = remote.get(_flyte_url(execution, "n0", "0", "o"))
    assert attempt.get("o0", as_type=int) == 9
    # The node data names the URLs, as flyteadmin does.
    from flyteidl.admin.node_execution_pb2 import NodeExecutionGetDataRequest
    from flytekit.clients.raw import RawSynchronousFlyteClient

    data = RawSynchronousFlyteClient.get_node_execution_data(
        remote.client,
        NodeExecutionGetDataRequest(id=NodeExecutionIdentifier("n0", execution.id).to_flyte_idl()),
    )
    assert data.flyte_urls.outputs == _flyte_url(execution, "n0", "o")
    assert data.flyte_urls.deck == _flyte_url(execution, "n0", "d")


def test_pyflyte_fetch_prints_a_nodes_outputs(server: Server, remote, launched, tmp_path):
    execution = wait(remote, launched["deck"])
    result = pyflyte(server, "fetch", _flyte_url(execution, "n1", "o"), cwd=tmp_path)
    assert result.returncode == 0, describe(result, server)
    assert "3:9" in result.stdout, result.stdout


@pytest.mark.parametrize(
    "tail, code, words",
    [
        (("n0", "x"), grpc.StatusCode.INVALID_ARGUMENT, "flyte://v1/"),
        (("n9", "o"), grpc.StatusCode.NOT_FOUND, "n9"),
        (("n0", "o", "nope"), grpc.StatusCode.INVALID_ARGUMENT, "nope"),
        (("n0", "5", "o"), grpc.StatusCode.NOT_FOUND, "attempt 5"),
    ],
)
def test_bad_flyte_urls_are_refused_with_a_reason(server: Server, remote, launched, tail, code, words):
    execution = wait(remote, launched["deck"])
    with pytest.raises(Exception) as err:
        remote.client.get_data(_flyte_url(execution, *tail))
    assert _grpc_code(err.value) == code, err.value
    assert words in str(err.value)


# --------------------------------------------------------------------------------------------
# Item 8: ListNodeExecutionsForTask.


def test_node_executions_spawned_by_a_dynamic_task(server: Server, remote, launched):
    execution = wait(remote, launched["fib"])
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    dyn = node_executions(remote, execution)["n0"]
    task_execs, _ = remote.client.list_task_executions_paginated(dyn.id, limit=10)
    assert task_execs, "the dynamic node has a task execution"
    spawned, token = remote.client.list_node_executions_for_task_paginated(task_execs[0].id, limit=100)
    assert token == ""
    children = {n.metadata.spec_node_id for n in spawned}
    # fibonacci(5) adds 3 fib_step nodes (plus start and end).
    assert len([c for c in children if c.startswith("dn")]) == 3, children
    assert all(n.id.node_id.startswith("n0-0-") for n in spawned), [n.id.node_id for n in spawned]

    # An attempt that does not exist: NOT_FOUND.
    missing = TaskExecutionIdentifier(task_execs[0].id.task_id, dyn.id, 7)
    with pytest.raises(Exception) as err:
        remote.client.list_node_executions_for_task_paginated(missing, limit=10)
    assert _grpc_code(err.value) == grpc.StatusCode.NOT_FOUND, err.value


# --------------------------------------------------------------------------------------------
# Item 8: GetExecutionMetrics and pyflyte metrics dump.


def test_execution_metrics_span_tree(server: Server, remote, launched):
    execution = wait(remote, launched["deck"])
    span = remote.get_execution_metrics(execution.id).to_flyte_idl()
    assert span.WhichOneof("id") == "workflow_id" and span.workflow_id.name == execution.id.name
    nodes = {s.node_id.node_id: s for s in span.spans if s.WhichOneof("id") == "node_id"}
    assert set(nodes) == {"n0", "n1"}, [s for s in span.spans]
    ops = [s.operation_id for s in span.spans if s.WhichOneof("id") == "operation_id"]
    assert "WORKFLOW_SETUP" in ops
    # Each task node: its attempt, with the task's runtime inside.
    attempts = [s for s in nodes["n0"].spans if s.WhichOneof("id") == "task_id"]
    assert len(attempts) == 1 and attempts[0].task_id.retry_attempt == 0
    runtime = [s for s in attempts[0].spans if s.operation_id == "TASK_RUNTIME"]
    assert runtime and runtime[0].end_time.ToDatetime() >= runtime[0].start_time.ToDatetime()
    for s in [span, *span.spans]:
        assert s.start_time.ToDatetime(tzinfo=datetime.timezone.utc) > EPOCH_2020, s
        assert s.end_time.ToDatetime() >= s.start_time.ToDatetime(), s

    # Depth 1, as flyteadmin: the workflow's operations and its nodes, not broken down.
    shallow = remote.client.get_execution_metrics(execution.id, depth=1)
    shallow_nodes = [s for s in shallow.spans if s.WhichOneof("id") == "node_id"]
    assert len(shallow_nodes) == 2 and all(not s.spans for s in shallow_nodes), shallow


def test_pyflyte_metrics_dump(server: Server, remote, launched, tmp_path):
    execution = wait(remote, launched["deck"])
    # Project and domain are options of the group; the depth defaults to -1 (everything).
    result = pyflyte(
        server, "metrics", "--project", PROJECT, "--domain", DOMAIN, "dump", execution.id.name, cwd=tmp_path
    )
    assert result.returncode == 0, describe(result, server)
    assert "TASK_RUNTIME" in result.stdout and "n0" in result.stdout, result.stdout


def test_execution_metrics_of_an_unknown_execution(server: Server, remote):
    from flytekit.models.core.identifier import WorkflowExecutionIdentifier

    with pytest.raises(Exception) as err:
        remote.client.get_execution_metrics(WorkflowExecutionIdentifier(PROJECT, DOMAIN, "nosuchexec"))
    assert _grpc_code(err.value) == grpc.StatusCode.NOT_FOUND, err.value


# --------------------------------------------------------------------------------------------
# Item 5: timestamps.


def _assert_real_times(node) -> None:
    c = node.closure
    for field in ("started_at", "created_at", "updated_at"):
        at = getattr(c, field)
        assert at is not None and at > EPOCH_2020, f"{node.id.node_id}.{field} = {at}"


def test_every_node_execution_has_real_timestamps(server: Server, remote, launched, project):
    execution = wait(remote, launched["deck"])
    nodes = node_executions(remote, execution)
    assert "start-node" in nodes
    for node in nodes.values():
        _assert_real_times(node)

    first = wait(remote, launched["cached_first"])
    assert_phase(first, WorkflowExecutionPhase.SUCCEEDED, server)
    second = wait(remote, run_remote(server, project, *RUNS["cached_first"][:2], *RUNS["cached_first"][2]))
    assert_phase(second, WorkflowExecutionPhase.SUCCEEDED, server)
    hit = node_executions(remote, second)["n0"]
    assert hit.closure.task_node_metadata.cache_status == 2, hit.closure  # CACHE_HIT
    for node in node_executions(remote, second).values():
        _assert_real_times(node)
    assert hit.closure.started_at >= second.closure.created_at


# --------------------------------------------------------------------------------------------
# Item 2: a subworkflow's own failure node.


def test_a_failing_subworkflow_runs_its_own_failure_node(server: Server, remote, launched):
    execution = wait(remote, launched["fragile"])
    assert_phase(execution, WorkflowExecutionPhase.FAILED, server)
    assert "explode on purpose with x=1" in execution.closure.error.message
    children, _ = remote.client.list_node_executions(execution.id, unique_parent_id="n0", limit=100)
    by_spec = {n.metadata.spec_node_id: n for n in children}
    assert "fn0" in by_spec, sorted(by_spec)
    assert by_spec["fn0"].closure.phase == NodeExecutionPhase.SUCCEEDED, by_spec["fn0"].closure
    data = remote.client.get_node_execution_data(by_spec["fn0"].id)
    err = data.full_inputs.literals["err"].scalar.union.value.scalar.error
    assert "explode on purpose" in err.message, err.message
    sub = node_executions(remote, execution)["n0"]
    assert sub.closure.phase == NodeExecutionPhase.FAILED


# --------------------------------------------------------------------------------------------
# Item 12: list filters and sorts.


def _list(remote, filters: list, sort_by: Sort | None = None) -> list[str]:
    page, _ = remote.client.list_executions_paginated(
        PROJECT, DOMAIN, limit=200, filters=filters, sort_by=sort_by
    )
    return [e.id.name for e in page]


def test_executions_filtered_by_tag_duration_and_error_code(server: Server, remote, launched):
    deck = wait(remote, launched["deck"]).id.name
    fragile = wait(remote, launched["fragile"])
    by_tag = _list(remote, [flyte_filters.ValueIn("admin_tag.name", [TAG])])
    assert by_tag == [deck], by_tag
    by_eq_tag = _list(remote, [flyte_filters.Equal("admin_tag.name", TAG)])
    assert by_eq_tag == [deck], by_eq_tag
    # The tags come back with the execution, from a get and from a list.
    assert list(remote.client.get_execution(wait(remote, launched["deck"]).id).spec.tags) == [TAG]
    page, _ = remote.client.list_executions_paginated(
        PROJECT, DOMAIN, limit=200, filters=[flyte_filters.Equal("admin_tag.name", TAG)]
    )
    assert [list(e.spec.tags) for e in page] == [[TAG]]
    long_ones = _list(remote, [flyte_filters.GreaterThanOrEqual("duration", 100000)])
    assert deck not in long_ones
    short_ones = _list(remote, [flyte_filters.GreaterThanOrEqual("duration", 0)])
    assert deck in short_ones and fragile.id.name in short_ones
    code = fragile.closure.error.code
    assert code, fragile.closure.error
    by_code = _list(remote, [flyte_filters.Equal("error_code", code)])
    assert fragile.id.name in by_code and deck not in by_code, by_code
    with pytest.raises(Exception) as err:
        _list(remote, [flyte_filters.Equal("admin_tag.color", "red")])
    assert _grpc_code(err.value) == grpc.StatusCode.INVALID_ARGUMENT, err.value
    assert "admin_tag.name" in str(err.value)


@pytest.mark.parametrize(
    "listing",
    ["executions", "tasks", "workflows", "launch_plans", "node_executions", "task_executions", "projects"],
)
def test_every_list_sorts_by_updated_at(server: Server, remote, launched, listing):
    execution = wait(remote, launched["deck"])
    sort = Sort("updated_at", Sort.Direction.DESCENDING)
    c = remote.client
    if listing == "executions":
        page, _ = c.list_executions_paginated(PROJECT, DOMAIN, limit=100, sort_by=sort)
    elif listing == "tasks":
        from flytekit.models.common import NamedEntityIdentifier

        page, _ = c.list_tasks_paginated(NamedEntityIdentifier(PROJECT, DOMAIN, "examples.data_access.report"), limit=100, sort_by=sort)
    elif listing == "workflows":
        from flytekit.models.common import NamedEntityIdentifier

        page, _ = c.list_workflows_paginated(NamedEntityIdentifier(PROJECT, DOMAIN, "examples.data_access.deck_wf"), limit=100, sort_by=sort)
    elif listing == "launch_plans":
        from flytekit.models.common import NamedEntityIdentifier

        page, _ = c.list_launch_plans_paginated(NamedEntityIdentifier(PROJECT, DOMAIN, "examples.data_access.deck_wf"), limit=100, sort_by=sort)
    elif listing == "node_executions":
        page, _ = c.list_node_executions(execution.id, limit=100, sort_by=sort)
    elif listing == "task_executions":
        page, _ = c.list_task_executions_paginated(NodeExecutionIdentifier("n0", execution.id), limit=100, sort_by=sort)
    else:
        page = c.list_projects_paginated(limit=100, sort_by=sort)[0]
    assert page, f"nothing listed for {listing}"
    if listing in ("executions", "node_executions", "task_executions"):
        stamps = [p.closure.updated_at for p in page]
        assert stamps == sorted(stamps, reverse=True), stamps


def test_a_subworkflow_failure_node_running_when_the_server_crashes_runs_on(project, tmp_path_factory):
    """Item 2 with a restart: the server is killed (SIGKILL) while a subworkflow's failure node
    runs; the restarted server follows it to its end (its body ran once) and the execution
    fails with the subworkflow's error."""
    import signal
    import time

    from conftest import start_server, stop_server
    from flytekit.configuration import Config
    from flytekit.models.core.execution import TaskExecutionPhase
    from flytekit.remote import FlyteRemote

    base = tmp_path_factory.mktemp("sub-failure-restart")
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
            first, project, "examples/data_access.py", "slow_fragile_parent_wf", "--x", "1", "--delay", "4.0",
            "--marker_dir", str(markers),
        )
        execution = remote.fetch_execution(name=name)
        fn = NodeExecutionIdentifier("n0-0-fn0", execution.id)
        deadline = time.monotonic() + 180
        while True:
            try:
                attempts, _ = remote.client.list_task_executions_paginated(fn, limit=10)
            except Exception:
                attempts = []
            if attempts and attempts[-1].closure.phase == TaskExecutionPhase.RUNNING:
                break
            assert time.monotonic() < deadline, "the failure node never ran:\n" + first.log()[-4000:]
            time.sleep(0.1)
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    assert not (markers / "cleanup").exists(), "the failure node ended before the kill: nothing was tested"

    second = start_server(base, data_dir, port=first.port, log_name="server-2.log")
    try:
        remote = client()
        execution = wait(remote, name, timeout=300)
        assert_phase(execution, WorkflowExecutionPhase.FAILED, second)
        assert "explode on purpose with x=1" in execution.closure.error.message
        children, _ = remote.client.list_node_executions(execution.id, unique_parent_id="n0", limit=100)
        by_spec = {n.metadata.spec_node_id: n for n in children}
        assert by_spec["fn0"].closure.phase == NodeExecutionPhase.SUCCEEDED, by_spec["fn0"].closure
        lines = (markers / "cleanup").read_text().splitlines()
        assert lines == ["cleaned x=1 attempt 0"], lines
        # Followed, not started again: the second server never starts its process.
        restarted = [
            line for line in second.log().splitlines() if "n0-0-fn0" in line and "task process started" in line
        ]
        assert not restarted, restarted
        assert "re-attached" in second.log(), second.log()[-3000:]
    finally:
        code = stop_server(second)
    assert code == 0, second.log()
