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
