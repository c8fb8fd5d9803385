"""Per-project metadata location (issue 17 item 4): `storage.metadata_locations` sends one
project's metadata — the inputs admin offloads, every node's inputs.pb/outputs.pb, decks and
the files `pyflyte run` uploads — to a store of its own, on any blob store
(FLYTERS_E2E_BLOB_STORE): another directory, or another prefix of the bucket/container. The
project's executions still run, cache, recover, show decks and read back through FlyteRemote,
also from a client in another working directory; none of their metadata is in `blob_url`.
"""

from __future__ import annotations

import datetime
import pathlib
import urllib.request
import uuid

import pytest

from conftest import (
    BLOB_STORE,
    DOMAIN,
    Server,
    _blob_store,
    describe,
    pyflyte,
    run_client_elsewhere,
    start_server,
    stop_server,
    store_fs,
)

from flyteidl.core import catalog_pb2
from flytekit.configuration import Config
from flytekit.models.core.execution import WorkflowExecutionPhase
from flytekit.models.project import Project
from flytekit.remote import FlyteRemote

PROJECT = "metaloc-" + uuid.uuid4().hex[:6]

WORKFLOW = '''
import os
from flytekit import Deck, task, workflow
from flytekit.types.file import FlyteFile


@task(enable_deck=True)
def count(f: FlyteFile, marker_dir: str) -> int:
    with open(f) as fh:
        n = len(fh.read().splitlines())
    with open(os.path.join(marker_dir, "count.log"), "a") as log:
        log.write("ran\\n")
    Deck("summary", f"<h2>{n} lines counted</h2>")
    return n


@task(cache=True, cache_version="1")
def square(n: int) -> int:
    return n * n


@task
def gate(x: int, marker_dir: str) -> int:
    if not os.path.exists(os.path.join(marker_dir, "go")):
        raise ValueError("not yet: no go marker")
    return x + 1


@workflow
def metaloc_wf(f: FlyteFile, marker_dir: str) -> int:
    return gate(x=square(n=count(f=f, marker_dir=marker_dir)), marker_dir=marker_dir)
'''


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    """A server whose PROJECT keeps its metadata in `location`; yields (server, location)."""
    base = tmp_path_factory.mktemp("metaloc")
    data_dir = base / "data"
    if BLOB_STORE == "file":
        location = f"file://{base}/team-meta"
    else:
        # A sibling of the server's prefix in the same bucket/container, not inside it.
        location = _blob_store(data_dir)[0] + "-team-meta"
    env = {"FLYTE_RS_STORAGE__METADATA_LOCATIONS": f'[{{project="{PROJECT}", url="{location}"}}]'}
    srv = start_server(base, data_dir, env=env)
    try:
        yield srv, location
    finally:
        stop_server(srv)


def _remote(server: Server) -> FlyteRemote:
    return FlyteRemote(Config.auto(config_file=str(server.config_path)), PROJECT, DOMAIN)


def _wait(remote: FlyteRemote, name: str, server: Server):
    execution = remote.fetch_execution(project=PROJECT, domain=DOMAIN, name=name)
    execution = remote.wait(execution, timeout=datetime.timedelta(seconds=300), poll_interval=datetime.timedelta(seconds=0.5))
    assert execution.is_done, f"{name}: {execution.closure.phase}\n{server.log()[-4000:]}"
    return execution


def _keys(root: str) -> list[str]:
    fs = store_fs()
    fs.invalidate_cache()
    if BLOB_STORE == "file":
        path = pathlib.Path(root.removeprefix("file://"))
        return [str(p) for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return fs.find(root)


def test_a_projects_metadata_lives_in_its_own_location(routed, tmp_path):
    server, location = routed
    remote = _remote(server)
    remote.client.register_project(Project(PROJECT, PROJECT, "metadata location e2e"))
    root = tmp_path / "project"
    root.mkdir()
    (root / "metaloc_wf.py").write_text(WORKFLOW)
    data = tmp_path / "lines.txt"
    data.write_text("a\nb\nc\nd\n")
    markers = tmp_path / "markers"
    markers.mkdir()

    def run(name: str) -> None:
        result = pyflyte(
            server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
            "metaloc_wf.py", "metaloc_wf", "--f", str(data), "--marker_dir", str(markers), cwd=root,
        )
        assert result.returncode == 0, describe(result, server)

    # 1. Fails at the gate, after count and square succeeded.
    first = "m" + uuid.uuid4().hex[:12]
    run(first)
    failed = _wait(remote, first, server)
    assert failed.closure.phase == WorkflowExecutionPhase.FAILED, failed.closure
    assert "no go marker" in failed.closure.error.message

    # 2. Recovered: count and square are taken from the first run's outputs (their
    # outputs.pb in the project's location), only the gate runs.
    (markers / "go").write_text("")
    recovered_id = remote.client.recover_execution(failed.id, name="r" + uuid.uuid4().hex[:12])
    recovered = _wait(remote, recovered_id.name, server)
    assert recovered.closure.phase == WorkflowExecutionPhase.SUCCEEDED, (recovered.closure, server.log()[-4000:])
    assert recovered.outputs.get("o0", as_type=int) == 17
    assert (markers / "count.log").read_text().splitlines() == ["ran"], "count ran again in the recovery"

    # 3. A new run: square's cached output (in the location) is a hit.
    second = "m" + uuid.uuid4().hex[:12]
    run(second)
    hit = _wait(remote, second, server)
    assert hit.closure.phase == WorkflowExecutionPhase.SUCCEEDED, (hit.closure, server.log()[-4000:])
    assert hit.outputs.get("o0", as_type=int) == 17
    synced = remote.sync_execution(hit, sync_nodes=True)
    assert synced.node_executions["n1"].closure.task_node_metadata.cache_status == catalog_pb2.CACHE_HIT
    # GetData of a node: its inputs and outputs.
    assert synced.node_executions["n1"].inputs.get("n", as_type=int) == 4
    assert synced.node_executions["n1"].outputs.get("o0", as_type=int) == 16

    # The deck count wrote: its URI is in the location, and the signed link serves it.
    deck_uri = synced.node_executions["n0"].closure.deck_uri
    assert deck_uri.startswith(location + "/"), (deck_uri, location)
    link = remote.client.get_download_artifact_signed_url("n0", PROJECT, DOMAIN, second)
    with urllib.request.urlopen(link.pre_signed_urls.signed_url[0], timeout=30) as resp:
        assert "4 lines counted" in resp.read().decode()

    # Where everything is: the runs' metadata and the uploaded file in the location, nothing
    # of them in blob_url but raw data (what tasks write themselves goes by the raw prefix).
    runs = (first, recovered_id.name, second)
    in_location = _keys(location)
    for name in runs:
        mine = [k for k in in_location if name in k]
        assert any(k.endswith("/outputs.pb") for k in mine), (name, in_location)
    assert any(f"uploads/{PROJECT}/{DOMAIN}/" in k for k in in_location), in_location
    assert any(k.endswith("/deck.html") for k in in_location), in_location
    in_main = _keys(server.blob_url)
    leaked = [k for k in in_main if (any(n in k for n in runs) and "/raw/" not in k) or PROJECT in k]
    assert not leaked, leaked

    # A client elsewhere reads the outputs and downloads the file input back from the location.
    script = f"""
import json
from flytekit.configuration import Config
from flytekit.remote import FlyteRemote
from flytekit.types.file import FlyteFile

remote = FlyteRemote(Config.auto(config_file="config.yaml"), "{PROJECT}", "{DOMAIN}")
ex = remote.sync_execution(remote.fetch_execution(name="{second}"), sync_nodes=True)
with remote.remote_context():
    f = ex.node_executions["n0"].inputs.get("f", as_type=FlyteFile)
    with open(f.download()) as fh:
        lines = fh.read().splitlines()
print(json.dumps({{"o0": ex.outputs.get("o0", as_type=int), "uri": ex.node_executions["n0"].inputs.literals["f"].scalar.blob.uri, "lines": lines}}))
"""
    got = run_client_elsewhere(server, tmp_path / "elsewhere", script)
    assert got["o0"] == 17
    assert got["lines"] == ["a", "b", "c", "d"]
    assert got["uri"].removeprefix("file://").startswith(location.removeprefix("file://") + "/"), got
