"""`pyflyte register examples/` against flyte-rs, then read everything back with FlyteRemote.

The order of the tests follows a user's session: register, inspect, register again, then
the refusals (a broken workflow, an unknown project, a conflicting version).
"""

from __future__ import annotations

import collections
import importlib
import pathlib
import pkgutil
import sys
import tarfile
import typing
import urllib.parse
import urllib.request

import grpc
import pytest

from conftest import DOMAIN, EXAMPLES_PROJECT, PROJECT, Registration, Server, describe

sys.path.insert(0, str(EXAMPLES_PROJECT))

from flytekit.configuration import ImageConfig, SerializationSettings  # noqa: E402
from flytekit.core.base_task import PythonTask  # noqa: E402
from flytekit.core.launch_plan import LaunchPlan  # noqa: E402
from flytekit.core.workflow import WorkflowBase  # noqa: E402
from flytekit.exceptions.user import (  # noqa: E402
    FlyteEntityAlreadyExistsException,
    FlyteEntityNotExistException,
    FlyteInvalidInputException,
)
from flytekit.models import interface as interface_models  # noqa: E402
from flytekit.models.admin.workflow import WorkflowSpec  # noqa: E402
from flytekit.models.core.identifier import Identifier, ResourceType  # noqa: E402
from flytekit.models.task import TaskSpec  # noqa: E402
from flytekit.tools.translator import get_serializable  # noqa: E402


# --------------------------------------------------------------------------------------------
# The local side: every entity pyflyte registers, as flytekit itself serializes it.


def _import_examples() -> list:
    import examples

    return [importlib.import_module(f"examples.{m.name}") for m in pkgutil.iter_modules(examples.__path__)]


def _settings(version: str, project: str = PROJECT) -> SerializationSettings:
    return SerializationSettings(
        project=project, domain=DOMAIN, version=version, image_config=ImageConfig.auto_default_image()
    )


class Local(typing.NamedTuple):
    tasks: dict  # name -> PythonTask (map tasks included)
    workflows: dict  # name -> WorkflowBase
    launch_plans: dict  # name -> LaunchPlan (explicit ones, plus each workflow's default)


def _local(version: str) -> Local:
    tasks, workflows, lps = {}, {}, {}
    entities: collections.OrderedDict = collections.OrderedDict()
    settings = _settings(version)
    for module in _import_examples():
        for obj in vars(module).values():
            if isinstance(obj, (PythonTask, WorkflowBase, LaunchPlan)) and obj.name.startswith("examples."):
                # Walks the graph: subworkflows, map tasks and launch-plan nodes are added too.
                get_serializable(entities, settings, obj)
    for entity in entities:
        if isinstance(entity, PythonTask):
            tasks[entity.name] = entity
        elif isinstance(entity, WorkflowBase):
            workflows[entity.name] = entity
            lps.setdefault(entity.name, LaunchPlan.get_or_create(entity))
        elif isinstance(entity, LaunchPlan):
            lps[entity.name] = entity
    return Local(tasks, workflows, lps)


@pytest.fixture(scope="module")
def local(registered: Registration) -> Local:
    return _local(registered.version)


def _variables(vm: interface_models.VariableMap | dict) -> dict:
    """name -> (type proto bytes, description): what a client relies on."""
    variables = vm.variables if isinstance(vm, interface_models.VariableMap) else vm
    return {k: (v.type.to_flyte_idl(), v.description) for k, v in variables.items()}


def _assert_same_interface(kind: str, name: str, local_if, remote_if) -> None:
    assert remote_if is not None, f"{kind} {name}: no interface came back"
    for side in ("inputs", "outputs"):
        want = _variables(getattr(local_if, side))
        got = _variables(getattr(remote_if, side))
        assert sorted(got) == sorted(want), f"{kind} {name}: {side} names {sorted(got)} != {sorted(want)}"
        for var in want:
            assert got[var][0] == want[var][0], (
                f"{kind} {name}: type of {side[:-1]} {var!r} differs\n"
                f"registered: {want[var][0]}\nreturned:   {got[var][0]}"
            )
            assert got[var][1] == want[var][1], f"{kind} {name}: description of {var!r} differs"


# --------------------------------------------------------------------------------------------
# Registration


def test_server_became_ready_quickly(server: Server):
    assert server.ready_seconds < 15, f"flyte-rs took {server.ready_seconds:.1f}s to get ready"
    with urllib.request.urlopen(f"{server.url}/healthcheck", timeout=5) as r:
        assert r.status == 200


def test_pyflyte_register_examples(server: Server, registered: Registration):
    assert registered.first.returncode == 0, describe(registered.first, server)
    out = registered.first.stdout + registered.first.stderr
    assert "Successfully registered" in out, describe(registered.first, server)
    assert "Failed" not in out, describe(registered.first, server)


def test_registered_entities_are_listed(remote, registered: Registration, local: Local):
    c = remote.client

    def names(list_ids) -> set:
        found, token = set(), None
        while True:
            ids, token = list_ids(PROJECT, DOMAIN, limit=100, token=token)
            found |= {i.name for i in ids}
            if not token:
                return found

    tasks = names(c.list_task_ids_paginated)
    workflows = names(c.list_workflow_ids_paginated)
    lps = names(c.list_launch_plan_ids_paginated)
    assert set(local.tasks) <= tasks, f"tasks missing from ListTaskIds: {sorted(set(local.tasks) - tasks)}"
    assert set(local.workflows) <= workflows, f"missing from ListWorkflowIds: {sorted(set(local.workflows) - workflows)}"
    assert set(local.launch_plans) <= lps, f"missing from ListLaunchPlanIds: {sorted(set(local.launch_plans) - lps)}"


def test_every_task_comes_back_with_its_interface(remote, registered: Registration, local: Local):
    assert len(local.tasks) >= 30, sorted(local.tasks)
    for name, task in sorted(local.tasks.items()):
        fetched = remote.fetch_task(PROJECT, DOMAIN, name, registered.version)
        assert fetched.id.name == name and fetched.id.version == registered.version
        _assert_same_interface("task", name, task.interface, fetched.interface)
        assert fetched.template.type == task.task_type, f"task {name}: type {fetched.template.type}"


def test_every_workflow_comes_back_compiled_with_its_interface(remote, registered: Registration, local: Local):
    assert len(local.workflows) >= 15, sorted(local.workflows)
    for name, wf in sorted(local.workflows.items()):
        fetched = remote.fetch_workflow(PROJECT, DOMAIN, name, registered.version)
        _assert_same_interface("workflow", name, wf.interface, fetched.interface)
        # promote_from_closure needs the compiled graph and the task templates.
        assert fetched.flyte_nodes, f"workflow {name}: no nodes came back"
        closure = remote.client.get_workflow(fetched.id).closure.compiled_workflow
        assert closure.primary.connections is not None, f"workflow {name}: no connections"


def test_every_launch_plan_comes_back_with_its_inputs(remote, registered: Registration, local: Local):
    for name, lp in sorted(local.launch_plans.items()):
        fetched = remote.fetch_launch_plan(PROJECT, DOMAIN, name, registered.version)
        _assert_same_interface("launch plan", name, lp.interface, fetched.interface)
        assert sorted(fetched.fixed_inputs.literals) == sorted(lp.fixed_inputs.literals), f"launch plan {name}"
        assert sorted(fetched.default_inputs.parameters) == sorted(lp.parameters.parameters), f"launch plan {name}"
        for k, lit in lp.fixed_inputs.literals.items():
            assert fetched.fixed_inputs.literals[k].to_flyte_idl() == lit.to_flyte_idl(), f"{name}: fixed {k}"
        # The closure says what a caller must and may pass: the defaults, not the fixed inputs.
        admin_lp = remote.client.get_launch_plan(fetched.id)
        expected = set(admin_lp.closure.expected_inputs.parameters)
        assert expected == set(lp.parameters.parameters), f"launch plan {name}: expected_inputs {sorted(expected)}"


def test_fixed_and_default_inputs_of_a_launch_plan(remote, registered: Registration):
    lp = remote.fetch_launch_plan(PROJECT, DOMAIN, "examples.launch_plans.triple", registered.version)
    assert lp.fixed_inputs.literals["factor"].scalar.primitive.integer == 3
    assert lp.default_inputs.parameters["x"].default.scalar.primitive.integer == 10


def test_fast_registration_bundle_is_in_the_blob_store(server: Server, remote, registered: Registration):
    task = remote.fetch_task(PROJECT, DOMAIN, "examples.basics.say_hello", registered.version)
    args = list(task.template.container.args)
    assert "pyflyte-fast-execute" in args, args
    native_url = args[args.index("--additional-distribution") + 1]
    # The embedded store hands flytekit plain absolute paths (a file:// literal URI is taken
    # verbatim by flytekit's FlyteFile handling and cannot be opened).
    path = pathlib.Path(native_url)
    assert path.is_absolute(), f"native_url {native_url}: the embedded store answers absolute paths"
    blobs = (server.data_dir / "blobs").resolve()
    assert path.resolve().is_relative_to(blobs), f"{path} is not under the blob store {blobs}"
    assert path.is_file(), f"bundle {native_url} does not exist"
    with tarfile.open(path) as tar:
        files = [m.name for m in tar.getmembers() if m.isfile()]
    assert "examples/basics.py" in files, files[:50]
    # `pyflyte register examples/` in the example project bundles the examples alone: not the
    # repository around it (crates/, target/ …), as it did when examples/ sat at its root.
    assert all(f.startswith("examples/") for f in files), sorted(f for f in files if not f.startswith("examples/"))[:50]
    assert "examples/__init__.py" in files


def test_registering_again_succeeds(server: Server, registered: Registration):
    again = registered.register(server)
    assert again.returncode == 0, describe(again, server)


def _registered_template(remote, version: str, name: str):
    ident = Identifier(ResourceType.TASK, PROJECT, DOMAIN, name, version)
    return ident, remote.client.get_task(ident).closure.compiled_task.template


def test_identical_task_again_is_already_exists(remote, registered: Registration):
    """The template admin returned, sent again, is identical content: flyteadmin digests the
    compiled task template (GetTaskDigest), not the optional description that pyflyte adds."""
    ident, template = _registered_template(remote, registered.version, "examples.basics.add")
    with pytest.raises(FlyteEntityAlreadyExistsException):
        remote.client.create_task(ident, TaskSpec(template))


def _grpc_error(exc: BaseException) -> grpc.RpcError:
    cause = exc.__cause__
    assert isinstance(cause, grpc.RpcError), f"{exc!r} does not wrap a gRPC error"
    return cause


def test_same_task_id_different_content_is_invalid_argument(remote, registered: Registration):
    ident, template = _registered_template(remote, registered.version, "examples.basics.add")
    proto = template.to_flyte_idl()
    proto.container.image = "example.com/other-image:1"
    with pytest.raises(FlyteInvalidInputException) as err:
        remote.client.create_task(ident, TaskSpec(type(template).from_flyte_idl(proto)))
    rpc = _grpc_error(err.value)
    assert rpc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "different" in rpc.details().lower(), rpc.details()


def test_binding_to_a_missing_node_is_refused_naming_it(remote, registered: Registration, local: Local):
    wf = local.workflows["examples.basics.arithmetic_wf"]
    spec: WorkflowSpec = get_serializable(collections.OrderedDict(), _settings(registered.version), wf)
    proto = spec.to_flyte_idl()
    # Point the first promise binding of the second node at a node that does not exist.
    broken = False
    for node in proto.template.nodes:
        for binding in node.inputs:
            if binding.binding.HasField("promise") and binding.binding.promise.node_id not in ("start-node", ""):
                binding.binding.promise.node_id = "no-such-node"
                broken = True
                break
        if broken:
            break
    assert broken, "arithmetic_wf has a node bound to an upstream node"
    name = "examples.e2e.broken_binding"
    proto.template.id.name = name
    ident = Identifier(ResourceType.WORKFLOW, PROJECT, DOMAIN, name, registered.version)
    with pytest.raises(FlyteInvalidInputException) as err:
        remote.client.create_workflow(ident, WorkflowSpec.from_flyte_idl(proto))
    rpc = _grpc_error(err.value)
    assert rpc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no-such-node" in rpc.details(), rpc.details()
    # Nothing was stored.
    with pytest.raises(FlyteEntityNotExistException):
        remote.client.get_workflow(ident)


def test_unknown_project_is_refused_clearly(remote, registered: Registration, local: Local):
    task = local.tasks["examples.basics.say_hello"]
    spec = get_serializable(collections.OrderedDict(), _settings(registered.version, "no-such-project"), task)
    ident = Identifier(ResourceType.TASK, "no-such-project", DOMAIN, task.name, registered.version)
    with pytest.raises((FlyteInvalidInputException, FlyteEntityNotExistException)) as err:
        remote.client.create_task(ident, TaskSpec(spec.template))
    rpc = _grpc_error(err.value)
    assert rpc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), rpc.code()
    assert "no-such-project" in rpc.details(), rpc.details()


def test_projects_and_domains(remote):
    projects = remote.client.list_projects_paginated(limit=100)[0]
    assert PROJECT in [p.id for p in projects]
    domains = [d.id for d in remote.client.get_domains()]
    assert domains == ["development", "staging", "production"], domains
