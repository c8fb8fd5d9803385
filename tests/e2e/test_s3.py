"""S3 as the blob store, end to end, on a real S3-compatible server (s3s-fs from crates.io,
started by scripts/s3.sh; FLYTERS_TEST_S3_ENDPOINT names a running one). Without it the tests
fail, they do not skip.

What a team running Flyte-RS on S3 checks: `pyflyte run --remote` uploads its code and a file
input straight to the object store through presigned URLs; tasks read and write files,
directories, a dataframe and cached outputs there; outputs are `s3://` URIs; and a client in another
working directory, with only its own flytekit config, downloads them with FlyteRemote.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest
from flytekit.configuration import Config
from flyteidl.core import catalog_pb2
from flytekit.models.core.execution import WorkflowExecutionPhase
from flytekit.remote import FlyteRemote

from conftest import DOMAIN, PROJECT, REPO, S3_DATA, Server, pyflyte, start_server, stop_server
from conftest import S3_ACCESS as ACCESS
from conftest import S3_BUCKET as BUCKET
from conftest import S3_SECRET as SECRET
from test_executions import assert_phase, wait


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    endpoint = os.environ.get("FLYTERS_TEST_S3_ENDPOINT")
    if endpoint:
        return endpoint
    out = subprocess.run([str(REPO / "scripts" / "s3.sh")], capture_output=True, text=True)
    assert out.returncode == 0, f"scripts/s3.sh failed: no S3 server for these tests\n{out.stderr}"
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def s3_server(s3_endpoint: str, tmp_path_factory):
    prefix = f"e2e-{uuid.uuid4().hex[:10]}"
    base = tmp_path_factory.mktemp("flyte-rs-s3")
    srv = start_server(
        base,
        base / "data",
        env={
            "FLYTE_RS_STORAGE__BLOB_URL": f"s3://{BUCKET}/{prefix}",
            "FLYTE_RS_STORAGE__S3__ENDPOINT": s3_endpoint,
            "FLYTE_RS_STORAGE__S3__REGION": "us-east-1",
            "FLYTE_RS_STORAGE__S3__ALLOW_HTTP": "true",
            "FLYTE_RS_STORAGE__S3__ACCESS_KEY_ID": ACCESS,
            "FLYTE_RS_STORAGE__S3__SECRET_ACCESS_KEY": SECRET,
        },
    )
    yield srv, prefix
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


@pytest.fixture(scope="module")
def run(s3_server, tmp_path_factory):
    """`pyflyte run --remote` of the files workflow, with a local file as input, twice (the
    second run's cached task must hit the cache)."""
    srv, _ = s3_server
    root = tmp_path_factory.mktemp("s3-project")
    shutil.copytree(pathlib.Path(__file__).parent / "s3_workflows", root / "s3_workflows")
    extra = root / "extra.txt"
    extra.write_text("uploaded")
    remote = FlyteRemote(Config.auto(config_file=str(srv.config_path)), PROJECT, DOMAIN)
    executions = []
    for _ in range(2):  # one after the other: the second finds the first's cached output
        name = "s3" + uuid.uuid4().hex[:10]
        result = pyflyte(
            srv, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
            "s3_workflows/files.py", "wf", "--text", "hello", "--extra", str(extra), cwd=root,
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{srv.log()[-5000:]}"
        executions.append(wait(remote, name))
    return srv, remote, executions


def test_the_workflow_runs_with_its_data_in_s3(run, s3_server):
    srv, remote, executions = run
    _, prefix = s3_server
    for execution in executions:
        assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, srv)
    execution = remote.sync_execution(executions[0])
    outputs = execution.outputs
    assert outputs["o2"] == "part0.txt,part1.txt,part2.txt|hello+uploaded-0"
    assert outputs["o4"] == 6
    frame_uri = outputs.literals["o3"].scalar.structured_dataset.uri
    assert frame_uri.startswith(f"s3://{BUCKET}/"), frame_uri
    file_uri = outputs.literals["o0"].scalar.blob.uri
    dir_uri = outputs.literals["o1"].scalar.blob.uri
    assert file_uri.startswith(f"s3://{BUCKET}/"), file_uri
    assert dir_uri.startswith(f"s3://{BUCKET}/"), dir_uri
    # The bytes are in the object store, not on the server's disk.
    key = file_uri[len(f"s3://{BUCKET}/"):]
    assert (S3_DATA / "root" / BUCKET / key).read_text() == "hello"
    assert not (srv.data_dir / "blobs").exists() or not any((srv.data_dir / "blobs").rglob("*.pb"))
    assert any((S3_DATA / "root" / BUCKET / prefix).rglob("outputs.pb"))


def test_the_second_run_hits_the_cache(run):
    _, remote, executions = run
    second = remote.sync_execution(executions[1], sync_nodes=True)
    statuses = {
        node_id: node.closure.task_node_metadata.cache_status
        for node_id, node in second.node_executions.items()
        if node.closure.task_node_metadata is not None
    }
    # The two cached tasks (make_file, make_frame), and only they.
    hits = [n for n, status in statuses.items() if status == catalog_pb2.CACHE_HIT]
    assert len(hits) == 2, statuses


def test_upload_locations_are_presigned_urls_of_the_store(run, s3_endpoint):
    _, remote, _ = run
    body = b"presigned upload"
    md5 = hashlib.md5(body).digest()
    loc = remote.client.get_upload_signed_url(PROJECT, DOMAIN, content_md5=md5, filename="p.txt")
    assert loc.signed_url.startswith(f"{s3_endpoint}/{BUCKET}/"), loc.signed_url
    assert "X-Amz-Signature=" in loc.signed_url
    assert loc.native_url.startswith(f"s3://{BUCKET}/"), loc.native_url
    import base64

    import requests

    ok = requests.put(loc.signed_url, data=body, headers={"Content-MD5": base64.b64encode(md5).decode()})
    assert ok.status_code == 200, ok.text
    bad = requests.put(
        loc.signed_url,
        data=b"other bytes",
        headers={"Content-MD5": base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()},
    )
    assert bad.status_code in (400, 403), bad.status_code


def test_a_client_elsewhere_downloads_the_outputs(run, s3_endpoint, tmp_path):
    """Another working directory with only a flytekit config (the server's address and the
    store's connection), as on a colleague's machine."""
    srv, _, executions = run
    client = tmp_path / "elsewhere"
    client.mkdir()
    (client / "config.yaml").write_text(
        textwrap.dedent(
            f"""\
            admin:
              endpoint: dns:///127.0.0.1:{srv.port}
              insecure: true
            storage:
              connection:
                endpoint: {s3_endpoint}
                access-key: {ACCESS}
                secret-key: {SECRET}
            """
        )
    )
    script = textwrap.dedent(
        f"""\
        import json, os
        import pandas as pd
        from flytekit.configuration import Config
        from flytekit.remote import FlyteRemote
        from flytekit.types.directory import FlyteDirectory
        from flytekit.types.file import FlyteFile

        remote = FlyteRemote(Config.auto(config_file="config.yaml"), "{PROJECT}", "{DOMAIN}")
        ex = remote.sync_execution(remote.fetch_execution(name="{executions[0].id.name}"))
        # remote_context(): the remote's data config (this config file's storage connection).
        with remote.remote_context():
            f = ex.outputs.get("o0", as_type=FlyteFile)
            d = ex.outputs.get("o1", as_type=FlyteDirectory)
            with open(f.download()) as fh:
                text = fh.read()
            local = d.download()
            frame = ex.outputs.get("o3", as_type=pd.DataFrame)
        print(json.dumps({{"file": text, "dir": sorted(os.listdir(local)), "n": frame["n"].tolist()}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE", "AWS_"))}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    out = subprocess.run([sys.executable, "-c", script], cwd=client, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-5000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["file"] == "hello"
    assert got["dir"] == ["part0.txt", "part1.txt", "part2.txt"]
    assert got["n"] == [1, 2, 3]
