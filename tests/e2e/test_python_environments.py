"""Python environments per task image (issue 18 item 3) through the real flytekit: an
operator maps `ghcr.io/acme/ml:*` to a second virtual environment (`engine.python_environments`);
a task of that image runs in it (its `sys.prefix`), a task of any other image in the
configured one, and a task whose image maps to an environment that does not exist fails as
the user's error naming the image, the environment and the setting (the server warned at
start). Run with FLYTERS_E2E_WARM_WORKERS=false too: plain processes pick the same way.

The second environment is real and cheap: a venv over the same base interpreter whose
site-packages reach this venv's through a `.pth` file, with flytekit's entrypoint scripts
naming its own interpreter."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import sysconfig

import pytest

from conftest import EXAMPLES_PROJECT, Server, start_server, stop_server
from flytekit.models.core.execution import WorkflowExecutionPhase
from test_executions import assert_phase, run_remote, wait

PATH = "examples/python_envs.py"
ENTRYPOINTS = ("pyflyte-execute", "pyflyte-fast-execute", "pyflyte-map-execute")


def make_second_venv(venv: pathlib.Path) -> pathlib.Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    pathlib.Path(purelib, "main_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for entry in ENTRYPOINTS:
        body = pathlib.Path(sys.prefix, "bin", entry).read_text().split("\n", 1)[1]
        script = venv / "bin" / entry
        script.write_text(f"#!{venv / 'bin' / 'python'}\n{body}")
        script.chmod(0o755)
    return venv


@pytest.fixture(scope="module")
def envs(tmp_path_factory):
    base = tmp_path_factory.mktemp("flyte-rs-envs")
    ml = make_second_venv(base / "ml-venv")
    missing = base / "gone-venv"
    # The environment variable's form of a list of tables (a config file's is YAML or TOML).
    mapping = f'[{{image="ghcr.io/acme/ml:*", venv="{ml}"}}, {{image="ghcr.io/acme/gone:1.0", venv="{missing}"}}]'
    srv = start_server(
        base,
        base / "data",
        env={"FLYTE_RS_ENGINE__PYTHON_ENVIRONMENTS": mapping},
    )
    yield srv, ml, missing
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


@pytest.fixture(scope="module")
def envs_remote(envs):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    from conftest import DOMAIN, PROJECT

    return FlyteRemote(config=Config.auto(config_file=str(envs[0].config_path)), default_project=PROJECT, default_domain=DOMAIN)


def test_a_tasks_image_picks_the_python_environment_it_runs_in(envs, envs_remote):
    server, ml, _ = envs
    name = run_remote(server, EXAMPLES_PROJECT, PATH, "envs_wf")
    done = wait(envs_remote, name)
    assert_phase(done, WorkflowExecutionPhase.SUCCEEDED, server)
    assert done.outputs.get("o0", as_type=str) == str(ml)
    assert done.outputs.get("o1", as_type=str) == sys.prefix


def test_an_image_mapped_to_a_missing_environment_fails_naming_it(envs, envs_remote):
    server, _, missing = envs
    assert "engine.python_environments" in server.log() and str(missing) in server.log(), "no start-up warning"
    name = run_remote(server, EXAMPLES_PROJECT, PATH, "missing_env_wf")
    done = wait(envs_remote, name)
    assert_phase(done, WorkflowExecutionPhase.FAILED, server)
    error = done.closure.error
    assert error.kind == error.ErrorKind.USER, error
    for part in ("ghcr.io/acme/gone:1.0", str(missing), "engine.python_environments"):
        assert part in error.message, (part, error.message)
