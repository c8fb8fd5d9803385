"""A client on another machine reads every kind of output from the session's blob store
(FLYTERS_E2E_BLOB_STORE: file, s3 or azure): test_s3.py's client-side check, on any store. The
workflow (s3_workflows/files.py) writes a file, a directory and a pandas dataframe (parquet,
StructuredDataset); a working directory holding only a copy of the server's flytekit config
(and, for Azurite, the connection string an adlfs client needs) downloads all three through
FlyteRemote."""

from __future__ import annotations

import pathlib
import shutil
import uuid

from conftest import DOMAIN, PROJECT, Server, describe, pyflyte, run_client_elsewhere
from test_executions import assert_phase, wait

from flytekit.models.core.execution import WorkflowExecutionPhase


def test_a_client_elsewhere_downloads_file_directory_and_dataframe(server: Server, remote, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(pathlib.Path(__file__).parent / "s3_workflows", root / "s3_workflows")
    extra = root / "extra.txt"
    extra.write_text("uploaded")
    name = "sc" + uuid.uuid4().hex[:10]
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "s3_workflows/files.py", "wf", "--text", "hello", "--extra", str(extra), cwd=root,
    )
    assert result.returncode == 0, describe(result, server)
    execution = wait(remote, name)
    assert_phase(execution, WorkflowExecutionPhase.SUCCEEDED, server)
    frame_uri = execution.outputs.literals["o3"].scalar.structured_dataset.uri
    if not server.blob_url.startswith("file://"):
        assert frame_uri.startswith(server.blob_url + "/"), (frame_uri, server.blob_url)

    script = f"""
import json, os
import pandas as pd
from flytekit.configuration import Config
from flytekit.remote import FlyteRemote
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

remote = FlyteRemote(Config.auto(config_file="config.yaml"), "{PROJECT}", "{DOMAIN}")
ex = remote.sync_execution(remote.fetch_execution(name="{name}"))
with remote.remote_context():
    with open(ex.outputs.get("o0", as_type=FlyteFile).download()) as fh:
        text = fh.read()
    local = ex.outputs.get("o1", as_type=FlyteDirectory).download()
    frame = ex.outputs.get("o3", as_type=pd.DataFrame)
print(json.dumps({{"file": text, "dir": sorted(os.listdir(local)), "n": frame["n"].tolist()}}))
"""
    got = run_client_elsewhere(server, tmp_path / "elsewhere", script)
    assert got == {"file": "hello", "dir": ["part0.txt", "part1.txt", "part2.txt"], "n": [1, 2, 3]}
