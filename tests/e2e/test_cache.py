"""Task output caching through the real client: `examples/cached.py` tasks append a line to a
log file per body run (the file's path is an input the cache key ignores), so the number of
lines is the number of runs."""

from __future__ import annotations

import concurrent.futures
import datetime
import pathlib
import subprocess
import uuid

import pytest

from conftest import DOMAIN, EXAMPLES, PROJECT, Registration, Server, _binary, describe, pyflyte

from flyteidl.core import catalog_pb2  # noqa: E402
from flytekit.models.core.execution import WorkflowExecutionPhase  # noqa: E402

TIMEOUT = datetime.timedelta(seconds=300)


def _runs(log: pathlib.Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _execute(remote, registered: Registration, wf: str, inputs: dict, overwrite_cache: bool = False):
    entity = remote.fetch_workflow(PROJECT, DOMAIN, f"examples.cached.{wf}", registered.version)
    name = "c" + uuid.uuid4().hex[:12]
    ex = remote.execute(entity, inputs=inputs, execution_name=name, overwrite_cache=overwrite_cache)
    ex = remote.wait(ex, timeout=TIMEOUT, poll_interval=datetime.timedelta(seconds=0.5))
    assert ex.closure.phase == WorkflowExecutionPhase.SUCCEEDED, f"{name}: {ex.closure.error}"
    return ex


def _node_meta(remote, ex, node: str = "n0"):
    ex = remote.sync_execution(ex, sync_nodes=True)
    return ex.node_executions[node].closure.task_node_metadata


@pytest.fixture
def log(tmp_path) -> pathlib.Path:
    return tmp_path / "runs.log"


def test_second_run_hits_and_reports_catalog_key(remote, registered: Registration, log, server: Server):
    assert registered.first.returncode == 0, describe(registered.first, server)
    x = int(uuid.uuid4().int % 1_000_000) + 10
    first = _execute(remote, registered, "cached_wf", {"x": x, "log": str(log)})
    assert first.outputs["o0"] == x * x
    assert _runs(log) == [str(x)]
    meta = _node_meta(remote, first)
    assert meta.cache_status == catalog_pb2.CACHE_POPULATED

    # Same inputs, another log file (ignored by the key): a hit, no run.
    other = log.with_name("other.log")
    second = _execute(remote, registered, "cached_wf", {"x": x, "log": str(other)})
    assert second.outputs["o0"] == x * x
    assert _runs(log) == [str(x)] and _runs(other) == []
    meta = _node_meta(remote, second)
    assert meta.cache_status == catalog_pb2.CACHE_HIT
    assert meta.catalog_key.dataset_id.name == "flyte_task-examples.cached.cached_square"
    assert meta.catalog_key.artifact_tag.name.startswith("flyte_cached-")
    src = meta.catalog_key.source_task_execution
    assert src.node_execution_id.execution_id.name == first.id.name

    # A changed input misses.
    _execute(remote, registered, "cached_wf", {"x": x + 1, "log": str(log)})
    assert _runs(log) == [str(x), str(x + 1)]

    # overwrite_cache reruns.
    third = _execute(remote, registered, "cached_wf", {"x": x, "log": str(log)}, overwrite_cache=True)
    assert _runs(log) == [str(x), str(x + 1), str(x)]
    assert _node_meta(remote, third).cache_status == catalog_pb2.CACHE_POPULATED

    # Eviction through the CLI: the next run misses.
    result = subprocess.run(
        [str(_binary()), "cache", "--data-dir", str(server.data_dir), "evict",
         "-p", PROJECT, "-d", DOMAIN, "--task", "examples.cached.cached_square", "--version", "1.0"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and "evicted" in result.stdout, describe(result)
    listed = subprocess.run(
        [str(_binary()), "cache", "--data-dir", str(server.data_dir), "list",
         "-p", PROJECT, "-d", DOMAIN, "--task", "examples.cached.cached_square"],
        capture_output=True, text=True, timeout=60,
    )
    assert listed.returncode == 0 and "flyte_cached-" not in listed.stdout, describe(listed)
    _execute(remote, registered, "cached_wf", {"x": x, "log": str(log)})
    assert _runs(log) == [str(x), str(x + 1), str(x), str(x)]


def test_cache_serialize_runs_concurrent_executions_once(remote, registered: Registration, log):
    x = int(uuid.uuid4().int % 1_000_000) + 10
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(_execute, remote, registered, "serialized_wf", {"x": x, "log": str(log)})
            for _ in range(3)
        ]
        results = [f.result() for f in futures]
    assert all(r.outputs["o0"] == x * x for r in results)
    assert _runs(log) == [str(x)], "the body ran once"


def test_map_task_hits_per_index(remote, registered: Registration, log):
    base = int(uuid.uuid4().int % 1_000_000) + 10
    xs = [base, base + 1, base + 2]
    first = _execute(remote, registered, "cached_map_wf", {"xs": xs, "log": str(log)})
    assert first.outputs["o0"] == [x * x for x in xs]
    assert sorted(_runs(log)) == sorted(str(x) for x in xs)
    # One new index: only it runs.
    xs2 = xs + [base + 3]
    second = _execute(remote, registered, "cached_map_wf", {"xs": xs2, "log": str(log)})
    assert second.outputs["o0"] == [x * x for x in xs2]
    assert sorted(_runs(log)) == sorted(str(x) for x in xs2)
    # `pyflyte register` bakes `--dest-dir /root` into the tasks; a pod's /root is its own, so
    # on this host each attempt must unpack the code in its own directory (concurrent indices
    # unpacking over each other in one shared /root failed at random).
    leaked = sorted(pathlib.Path("/root").glob("fast*.tar.gz"))
    assert not leaked, f"code bundles unpacked into the shared /root: {leaked}"


def _run_with_cache_version(server: Server, remote, root: pathlib.Path, cache_version: str, x: int, log: pathlib.Path):
    """`pyflyte run --remote` of examples/cached.py rewritten to `cache_version`: the same
    task name, registered as a new task version with another cache version."""
    import shutil

    project = root / f"v{cache_version}"
    shutil.copytree(EXAMPLES, project / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    source = project / "examples" / "cached.py"
    text = source.read_text()
    assert 'cache_version="1.0"' in text
    source.write_text(text.replace('cache_version="1.0"', f'cache_version="{cache_version}"'))
    name = "v" + uuid.uuid4().hex[:12]
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "examples/cached.py", "cached_wf", "--x", str(x), "--log", str(log), cwd=project,
    )
    assert result.returncode == 0, describe(result, server)
    ex = remote.wait(remote.fetch_execution(name=name), timeout=TIMEOUT, poll_interval=datetime.timedelta(seconds=0.5))
    assert ex.closure.phase == WorkflowExecutionPhase.SUCCEEDED, f"{name}: {ex.closure.error}"
    assert ex.outputs["o0"] == x * x
    return ex


def test_changed_cache_version_misses(remote, registered: Registration, server: Server, log, tmp_path):
    x = int(uuid.uuid4().int % 1_000_000) + 2_000_000
    _execute(remote, registered, "cached_wf", {"x": x, "log": str(log)})
    assert _runs(log) == [str(x)]
    # Another cache_version of the same task: a miss, the body runs again …
    _run_with_cache_version(server, remote, tmp_path, "2.0", x, log)
    assert _runs(log) == [str(x), str(x)]
    # … and that version's entry now hits.
    hit = _run_with_cache_version(server, remote, tmp_path / "again", "2.0", x, log)
    assert _runs(log) == [str(x), str(x)]
    assert _node_meta(remote, hit).cache_status == catalog_pb2.CACHE_HIT


def test_cached_dynamic_task_stores_its_outputs_once_its_workflow_ends(remote, registered: Registration, log):
    x = int(uuid.uuid4().int % 1_000_000) + 10
    first = _execute(remote, registered, "cached_dynamic_wf", {"x": x, "log": str(log)})
    assert first.outputs["o0"] == x + 2
    assert _node_meta(remote, first).cache_status == catalog_pb2.CACHE_POPULATED
    second = _execute(remote, registered, "cached_dynamic_wf", {"x": x, "log": str(log)})
    assert second.outputs["o0"] == x + 2
    assert _runs(log) == [str(x)], "the dynamic task's body ran once"
    meta = _node_meta(remote, second)
    assert meta.cache_status == catalog_pb2.CACHE_HIT
    assert meta.catalog_key.dataset_id.name == "flyte_task-examples.cached.cached_dynamic"


def test_cache_serialize_holds_across_a_sigkill_of_the_server(tmp_path_factory):
    """Issue 11.8: A runs a cache_serialize task, B (same key) waits on A's reservation, the
    server is killed with SIGKILL and started again on the same data dir. The bodies never
    overlap (the task takes a lock file; `overlap` in the log means it was held): A's body,
    re-attached after the restart, runs once and B takes its cached outputs."""
    import shutil
    import signal
    import time

    from flytekit.configuration import Config
    from flytekit.models.core.execution import NodeExecutionPhase
    from flytekit.remote import FlyteRemote

    from conftest import start_server, stop_server

    base = tmp_path_factory.mktemp("cache-crash")
    root = base / "project"
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    log = base / "bodies.log"
    x = int(uuid.uuid4().int % 1_000_000) + 10
    a, b = "a" + uuid.uuid4().hex[:12], "b" + uuid.uuid4().hex[:12]
    first = start_server(base, base / "data")

    def client() -> FlyteRemote:
        return FlyteRemote(
            config=Config.auto(config_file=str(first.config_path)), default_project=PROJECT, default_domain=DOMAIN
        )

    def lines() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    try:
        inputs = ["--x", str(x), "--log", str(log), "--seconds", "20"]
        result = pyflyte(
            first, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", a,
            "examples/cached.py", "serialized_exclusive_wf", *inputs, cwd=root,
        )
        assert result.returncode == 0, describe(result, first)
        remote = client()
        deadline = time.monotonic() + 120
        while not lines():
            assert time.monotonic() < deadline, "A's body never started:\n" + first.log()[-4000:]
            time.sleep(0.2)
        # B: the same launch plan and key, launched while A's body runs.
        lp_id = remote.fetch_execution(name=a).spec.launch_plan
        lp = remote.fetch_launch_plan(lp_id.project, lp_id.domain, lp_id.name, lp_id.version)
        remote.execute(lp, inputs={"x": x, "log": str(log), "seconds": 20.0}, execution_name=b)
        while True:
            ex = remote.sync_execution(remote.fetch_execution(name=b), sync_nodes=True)
            node = ex.node_executions.get("n0")
            if node is not None and node.closure.phase == NodeExecutionPhase.RUNNING:
                break
            assert time.monotonic() < deadline, "B's node never ran:\n" + first.log()[-4000:]
            time.sleep(0.2)
        before = lines()
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    assert before == [f"start {a}"], f"A was to be running and B waiting at the kill: {before}"

    second = start_server(base, base / "data", port=first.port, log_name="server-2.log")
    try:
        remote = client()
        done = [
            remote.wait(remote.fetch_execution(name=n), timeout=TIMEOUT, poll_interval=datetime.timedelta(seconds=0.5))
            for n in (a, b)
        ]
        for ex in done:
            assert ex.closure.phase == WorkflowExecutionPhase.SUCCEEDED, f"{ex.id.name}: {ex.closure.error}"
            assert ex.outputs["o0"] == x * x
        bodies = lines()
        assert not [line for line in bodies if line.startswith("overlap")], f"two bodies ran at once: {bodies}"
        starts = [line for line in bodies if line.startswith("start")]
        # A's body outlives the server and is re-attached, not run again (issue 12 item 4);
        # B waits on A's reservation across the restart and takes its cached outputs.
        assert starts == [f"start {a}"], f"A's body once, B's never: {bodies}"
        statuses = sorted(_node_meta(remote, ex).cache_status for ex in done)
        assert statuses == sorted([catalog_pb2.CACHE_POPULATED, catalog_pb2.CACHE_HIT]), statuses
    finally:
        code = stop_server(second)
    assert code == 0, second.log()
