"""Matchable attributes end to end: the RPCs through flytekit's own gRPC client and flyteidl's
stubs (as flytectl's `update/get/delete *-attributes` call them) and the REST gateway with the
JSON those tools send, and their effect on `pyflyte run --remote` executions: project-domain
workflow execution config (labels, annotations, max parallelism, environment) shows in the
execution spec FlyteRemote fetches and reaches the task, and a workflow's own attributes win
over the project-domain ones.

The tests use a project of their own, so the attributes they set touch no other test's runs.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import urllib.error
import urllib.request
import uuid

import grpc
import pytest

from conftest import DOMAIN, Server, describe, pyflyte

from flyteidl.admin import matchable_resource_pb2 as mr
from flyteidl.admin import project_domain_attributes_pb2 as pda
from flyteidl.admin import workflow_attributes_pb2 as wfa
from flytekit.clients.raw import RawSynchronousFlyteClient
from flytekit.exceptions.user import FlyteInvalidInputException
from flytekit.models import matchable_resource as models
from flytekit.models.project import Project

PROJECT = "attrs-" + uuid.uuid4().hex[:6]

WORKFLOW = '''
import os
from flytekit import task, workflow


@task
def read_mode() -> str:
    return os.environ.get("ATTRS_MODE", "unset")


@workflow
def mode_wf() -> str:
    return read_mode()
'''


@pytest.fixture(scope="module")
def project(remote, tmp_path_factory) -> pathlib.Path:
    """A project of its own, and a directory with the workflow `pyflyte run` bundles."""
    remote.client.register_project(Project(PROJECT, PROJECT, "matchable attributes e2e"))
    root = tmp_path_factory.mktemp("attrs-project")
    (root / "attrs_wf.py").write_text(WORKFLOW)
    return root


def wec(**fields) -> mr.MatchingAttributes:
    return mr.MatchingAttributes(workflow_execution_config=mr.WorkflowExecutionConfig(**fields))


def run(server: Server, root: pathlib.Path, remote):
    name = "a" + uuid.uuid4().hex[:12]
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "attrs_wf.py", "mode_wf", cwd=root,
    )
    assert result.returncode == 0, describe(result, server)
    execution = remote.fetch_execution(project=PROJECT, domain=DOMAIN, name=name)
    return remote.wait(execution, timeout=datetime.timedelta(seconds=300), poll_interval=datetime.timedelta(seconds=0.5))


def http(server: Server, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        server.url + path, data=data, method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_rpcs_through_flytekit_grpc_and_rest(server: Server, remote, project):
    client = remote.client
    # flytekit's own friendly client (its models know queues, cluster labels, plugin overrides).
    client.update_project_domain_attributes(
        PROJECT, DOMAIN, models.MatchingAttributes(execution_queue_attributes=models.ExecutionQueueAttributes(["gpu"]))
    )
    got = client.get_project_domain_attributes(PROJECT, DOMAIN, models.MatchableResource.EXECUTION_QUEUE)
    assert list(got.attributes.matching_attributes.execution_queue_attributes.tags) == ["gpu"]

    # flyteidl's stub, as flytectl sends it: delete, then get is NOT_FOUND with a reason.
    RawSynchronousFlyteClient.update_workflow_attributes(
        client,
        wfa.WorkflowAttributesUpdateRequest(
            attributes=wfa.WorkflowAttributes(
                project=PROJECT, domain=DOMAIN, workflow="some.wf",
                matching_attributes=mr.MatchingAttributes(execution_cluster_label=mr.ExecutionClusterLabel(value="c1")),
            )
        ),
    )
    got = client.get_workflow_attributes(PROJECT, DOMAIN, "some.wf", models.MatchableResource.EXECUTION_CLUSTER_LABEL)
    assert got.attributes.matching_attributes.execution_cluster_label.value == "c1"
    client._stub.DeleteWorkflowAttributes(
        wfa.WorkflowAttributesDeleteRequest(
            project=PROJECT, domain=DOMAIN, workflow="some.wf", resource_type=mr.EXECUTION_CLUSTER_LABEL
        ),
        metadata=client._metadata,
    )
    with pytest.raises(Exception) as err:
        client.get_workflow_attributes(PROJECT, DOMAIN, "some.wf", models.MatchableResource.EXECUTION_CLUSTER_LABEL)
    assert "EXECUTION_CLUSTER_LABEL" in str(err.value), err.value

    # A bad request: INVALID_ARGUMENT naming the field, never UNKNOWN.
    with pytest.raises(FlyteInvalidInputException) as err:
        client._stub.UpdateProjectDomainAttributes(
            pda.ProjectDomainAttributesUpdateRequest(
                attributes=pda.ProjectDomainAttributes(project=PROJECT, domain=DOMAIN)
            ),
            metadata=client._metadata,
        )
    cause = err.value.__cause__
    assert cause.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "missing matching_attributes" in cause.details(), cause.details()

    # The REST gateway: the paths of flyteidl's annotations, proto field names in JSON.
    status, body = http(
        server, "PUT", f"/api/v1/project_attributes/{PROJECT}",
        {"attributes": {"project": PROJECT, "matching_attributes": {
            "plugin_overrides": {"overrides": [{"task_type": "spark", "plugin_id": ["k8s-spark"]}]}}}},
    )
    assert status == 200, body
    status, body = http(server, "GET", f"/api/v1/project_attributes/{PROJECT}?resource_type=PLUGIN_OVERRIDE")
    assert status == 200, body
    overrides = body["attributes"]["matching_attributes"]["plugin_overrides"]["overrides"]
    assert [o["task_type"] for o in overrides] == ["spark"], body
    status, body = http(server, "GET", "/api/v1/matchable_attributes?resource_type=PLUGIN_OVERRIDE")
    assert status == 200, body
    assert any(c["project"] == PROJECT for c in body["configurations"]), body
    status, body = http(server, "DELETE", f"/api/v1/project_attributes/{PROJECT}", {"resource_type": "PLUGIN_OVERRIDE"})
    assert status == 200, body
    status, body = http(server, "GET", f"/api/v1/project_attributes/{PROJECT}?resource_type=PLUGIN_OVERRIDE")
    assert status == 404, body


def test_executions_pick_up_project_domain_then_workflow_attributes(server: Server, remote, project):
    client = remote.client
    before = run(server, project, remote)
    assert before.outputs["o0"] == "unset"

    # Project-domain workflow execution config, through flyteidl's stub.
    RawSynchronousFlyteClient.update_project_domain_attributes(
        client,
        pda.ProjectDomainAttributesUpdateRequest(
            attributes=pda.ProjectDomainAttributes(
                project=PROJECT, domain=DOMAIN,
                matching_attributes=wec(
                    max_parallelism=3,
                    labels={"values": {"team": "pd"}},
                    annotations={"values": {"owner": "pd-owner"}},
                    envs={"values": [{"key": "ATTRS_MODE", "value": "from-project-domain"}]},
                ),
            )
        ),
    )
    pd_run = run(server, project, remote)
    spec = pd_run.spec
    assert spec.max_parallelism == 3
    assert spec.labels.values == {"team": "pd"}
    assert spec.annotations.values == {"owner": "pd-owner"}
    assert spec.envs.envs == {"ATTRS_MODE": "from-project-domain"}
    assert pd_run.outputs["o0"] == "from-project-domain"

    # The workflow's own attributes win (over REST, the JSON flytectl's files map to).
    workflow = pd_run.spec.launch_plan.name
    status, body = http(
        server, "PUT", f"/api/v1/workflow_attributes/{PROJECT}/{DOMAIN}/{workflow}",
        {"attributes": {"project": PROJECT, "domain": DOMAIN, "workflow": workflow, "matching_attributes": {
            "workflow_execution_config": {
                "max_parallelism": 7,
                "labels": {"values": {"team": "wf"}},
                "envs": {"values": [{"key": "ATTRS_MODE", "value": "from-workflow"}]},
            }}}},
    )
    assert status == 200, body
    wf_run = run(server, project, remote)
    assert wf_run.spec.max_parallelism == 7
    assert wf_run.spec.labels.values == {"team": "wf"}
    assert wf_run.outputs["o0"] == "from-workflow"

    # Deleted again: back to the project-domain's.
    status, body = http(
        server, "DELETE", f"/api/v1/workflow_attributes/{PROJECT}/{DOMAIN}/{workflow}",
        {"resource_type": "WORKFLOW_EXECUTION_CONFIG"},
    )
    assert status == 200, body
    again = run(server, project, remote)
    assert again.spec.labels.values == {"team": "pd"}
    assert again.outputs["o0"] == "from-project-domain"


BIG = '''
from flytekit import Resources, task, workflow


@task(requests=Resources(cpu="64"), limits=Resources(cpu="64"))
def big() -> int:
    return 1


@workflow
def big_wf() -> int:
    return big()
'''


def test_task_resource_limits_lower_what_tasks_ask_for(server: Server, remote, project):
    """A task asking for 64 CPUs cannot run on this host; a workflow's TASK_RESOURCE limit of
    one CPU lowers its request (flyteadmin's task resource defaults), and it runs."""
    from flytekit.models.core.execution import WorkflowExecutionPhase

    (project / "attrs_big.py").write_text(BIG)
    name = "b" + uuid.uuid4().hex[:12]
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "attrs_big.py", "big_wf", cwd=project,
    )
    assert result.returncode == 0, describe(result, server)
    execution = remote.wait(
        remote.fetch_execution(project=PROJECT, domain=DOMAIN, name=name),
        timeout=datetime.timedelta(seconds=300), poll_interval=datetime.timedelta(seconds=0.5),
    )
    assert execution.closure.phase == WorkflowExecutionPhase.FAILED, execution.closure
    assert "cpu" in execution.closure.error.message.lower(), execution.closure.error.message
    workflow = execution.spec.launch_plan.name

    status, body = http(
        server, "PUT", f"/api/v1/workflow_attributes/{PROJECT}/{DOMAIN}/{workflow}",
        {"attributes": {"project": PROJECT, "domain": DOMAIN, "workflow": workflow, "matching_attributes": {
            "task_resource_attributes": {"defaults": {"cpu": "500m"}, "limits": {"cpu": "1"}}}}},
    )
    assert status == 200, body
    name = "b" + uuid.uuid4().hex[:12]
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "attrs_big.py", "big_wf", cwd=project,
    )
    assert result.returncode == 0, describe(result, server)
    execution = remote.wait(
        remote.fetch_execution(project=PROJECT, domain=DOMAIN, name=name),
        timeout=datetime.timedelta(seconds=300), poll_interval=datetime.timedelta(seconds=0.5),
    )
    assert execution.closure.phase == WorkflowExecutionPhase.SUCCEEDED, execution.closure
    assert execution.outputs["o0"] == 1
