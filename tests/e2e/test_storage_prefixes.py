"""Raw data prefix per project and domain (issue 17 item 4), on either blob store
(FLYTERS_E2E_BLOB_STORE): a project-domain WorkflowExecutionConfig with a
`raw_output_data_config` sends the raw data of that project's executions (the files and
directories its tasks write) under the prefix it names — another directory, or on S3
(Azure) another bucket (container) — while executions before it use the server's own `<blob_url>/raw`.
"""

from __future__ import annotations

import datetime
import pathlib
import uuid

import pytest

from conftest import BLOB_STORE, DOMAIN, Server, describe, pyflyte, store_fs

from flyteidl.admin import matchable_resource_pb2 as mr
from flyteidl.admin import project_domain_attributes_pb2 as pda
from flytekit.clients.raw import RawSynchronousFlyteClient
from flytekit.models.core.execution import WorkflowExecutionPhase
from flytekit.models.project import Project
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

PROJECT = "rawprefix-" + uuid.uuid4().hex[:6]

WORKFLOW = '''
import os
import tempfile
from flytekit import task, workflow
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile


@task
def write(text: str) -> tuple[FlyteFile, FlyteDirectory]:
    base = tempfile.mkdtemp()
    path = os.path.join(base, "note.txt")
    with open(path, "w") as f:
        f.write(text)
    d = os.path.join(base, "parts")
    os.makedirs(d)
    for i in range(2):
        with open(os.path.join(d, f"p{i}.txt"), "w") as f:
            f.write(f"{text}-{i}")
    return FlyteFile(path), FlyteDirectory(d)


@workflow
def write_wf(text: str) -> tuple[FlyteFile, FlyteDirectory]:
    return write(text=text)
'''


class Store:
    """Reads an object by its URI on the session's store."""

    def __init__(self) -> None:
        self.fs = None if BLOB_STORE == "file" else store_fs()

    def read(self, uri: str) -> str:
        if self.fs is None:
            return pathlib.Path(uri.removeprefix("file://")).read_text()
        self.fs.invalidate_cache()
        return self.fs.cat_file(uri).decode()

    def new_prefix(self, tmp: pathlib.Path) -> str:
        """A raw data prefix outside the server's blob store: a directory of its own, or on
        S3 a bucket (Azure: a container) of its own."""
        if self.fs is None:
            return f"file://{tmp}/team-raw"
        bucket = "team-raw-" + uuid.uuid4().hex[:8]
        self.fs.mkdir(bucket)
        scheme = "abfs" if BLOB_STORE == "azure" else "s3"
        return f"{scheme}://{bucket}/data"


@pytest.fixture(scope="module")
def project(remote, tmp_path_factory) -> pathlib.Path:
    remote.client.register_project(Project(PROJECT, PROJECT, "raw data prefix e2e"))
    root = tmp_path_factory.mktemp("rawprefix-project")
    (root / "rawprefix_wf.py").write_text(WORKFLOW)
    return root


def run(server: Server, root: pathlib.Path, remote, text: str):
    name = "r" + uuid.uuid4().hex[:12]
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "rawprefix_wf.py", "write_wf", "--text", text, cwd=root,
    )
    assert result.returncode == 0, describe(result, server)
    execution = remote.fetch_execution(project=PROJECT, domain=DOMAIN, name=name)
    execution = remote.wait(
        execution, timeout=datetime.timedelta(seconds=300), poll_interval=datetime.timedelta(seconds=0.5)
    )
    assert execution.closure.phase == WorkflowExecutionPhase.SUCCEEDED, (
        f"{name}: {execution.closure.error}\n{server.log()[-4000:]}"
    )
    return execution


def uris(execution) -> tuple[str, str]:
    literals = execution.outputs.literals
    return literals["o0"].scalar.blob.uri, literals["o1"].scalar.blob.uri


def test_a_project_domain_raw_output_prefix_moves_raw_data(server: Server, remote, project, tmp_path_factory):
    store = Store()
    default_raw = server.blob_url.removeprefix("file://") + "/raw/"

    before = run(server, project, remote, "before")
    file_uri, dir_uri = uris(before)
    assert file_uri.removeprefix("file://").startswith(default_raw), (file_uri, default_raw)
    assert store.read(file_uri) == "before"

    prefix = store.new_prefix(tmp_path_factory.mktemp("rawprefix"))
    RawSynchronousFlyteClient.update_project_domain_attributes(
        remote.client,
        pda.ProjectDomainAttributesUpdateRequest(
            attributes=pda.ProjectDomainAttributes(
                project=PROJECT,
                domain=DOMAIN,
                matching_attributes=mr.MatchingAttributes(
                    workflow_execution_config=mr.WorkflowExecutionConfig(
                        raw_output_data_config={"output_location_prefix": prefix}
                    )
                ),
            )
        ),
    )
    after = run(server, project, remote, "after")
    assert after.spec.raw_output_data_config.output_location_prefix == prefix
    file_uri, dir_uri = uris(after)
    plain = prefix.removeprefix("file://") + "/"
    assert file_uri.removeprefix("file://").startswith(plain), (file_uri, prefix)
    assert dir_uri.removeprefix("file://").startswith(plain), (dir_uri, prefix)
    assert store.read(file_uri) == "after"
    assert store.read(dir_uri.rstrip("/") + "/p1.txt") == "after-1"

    # The client reads them back as it reads any output.
    with remote.remote_context():
        with open(after.outputs.get("o0", as_type=FlyteFile).download()) as f:
            assert f.read() == "after"
        local = pathlib.Path(after.outputs.get("o1", as_type=FlyteDirectory).download())
    assert sorted(p.name for p in local.iterdir()) == ["p0.txt", "p1.txt"]
