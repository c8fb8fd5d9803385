"""A newcomer's first run, as the README has it: `flyte-rs start` on a machine where nothing
provides `pyflyte-execute` (no venv named, none on PATH), then `pyflyte run --remote` of an
example, then `pyflyte get launchplan` and `pyflyte info`.

The server makes the Python task environment itself (`engine.auto_venv`: `python3 -m venv` and
pip install of the pinned flytekit into `<data_dir>/python-venv`, for real: about a minute);
when it cannot, the start says so and the task's error names the fix.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import shutil
import sys
import uuid

import pytest

from conftest import DOMAIN, EXAMPLES_PROJECT, PROJECT, Registration, Server, describe, pyflyte, start_server, stop_server

from flytekit.configuration import Config  # noqa: E402
from flytekit.models.core.execution import WorkflowExecutionPhase  # noqa: E402
from flytekit.remote import FlyteRemote  # noqa: E402

ENTRYPOINT = "pyflyte-execute"


def _path_without_flytekit() -> str:
    """The caller's PATH minus every directory that has `pyflyte-execute` (an activated venv)."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    kept = [d for d in dirs if not (pathlib.Path(d) / ENTRYPOINT).exists()]
    return os.pathsep.join(kept or ["/usr/bin", "/bin"])


def _fresh_server(tmp_path: pathlib.Path, **env: str | None) -> Server:
    """A server as a newcomer starts it: no engine.python_venv, no pyflyte-execute on PATH.
    The default `python3` makes the environment when that PATH has one (else this test's own
    base interpreter, named)."""
    path = _path_without_flytekit()
    defaults: dict[str, str | None] = {"FLYTE_RS_ENGINE__PYTHON_VENV": None, "PATH": path}
    if shutil.which("python3", path=path) is None:
        defaults["FLYTE_RS_ENGINE__AUTO_VENV_PYTHON"] = getattr(sys, "_base_executable", sys.executable)
    return start_server(tmp_path, tmp_path / "data", env={**defaults, **env})


def _remote(server: Server) -> FlyteRemote:
    return FlyteRemote(
        config=Config.auto(config_file=str(server.config_path)), default_project=PROJECT, default_domain=DOMAIN
    )


def _run_arithmetic(server: Server):
    """The README's `cd flytesnacks && pyflyte run --remote examples/basics.py arithmetic_wf --a 1`,
    waited for."""
    name = f"f{uuid.uuid4().hex[:12]}"
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "examples/basics.py", "arithmetic_wf", "--a", "1",
        cwd=EXAMPLES_PROJECT,
    )
    assert result.returncode == 0, describe(result, server)
    remote = _remote(server)
    execution = remote.fetch_execution(name=name)
    # Generous: the environment is pip-installed from the package index meanwhile.
    return remote.wait(execution, timeout=datetime.timedelta(minutes=15), poll_interval=datetime.timedelta(seconds=1))


def test_first_start_makes_the_python_environment_and_the_first_run_succeeds(tmp_path):
    server = _fresh_server(tmp_path)
    try:
        venv = server.data_dir / "python-venv"
        assert "creating the Python task environment" in server.log(), server.log()
        execution = _run_arithmetic(server)
        phase = execution.closure.phase
        error = execution.closure.error
        assert phase == WorkflowExecutionPhase.SUCCEEDED, (
            f"{WorkflowExecutionPhase.enum_to_string(phase)} {error.message if error else ''}\n{server.log()[-6000:]}"
        )
        assert execution.outputs is not None and len(execution.outputs) > 0
        assert (venv / "bin" / ENTRYPOINT).is_file(), sorted(p.name for p in (venv / "bin").iterdir())
        assert "Python task environment ready" in server.log()
    finally:
        assert stop_server(server) == 0, server.log()

    # The next start on the same data dir uses it as it is: nothing is installed again.
    again = start_server(
        tmp_path, server.data_dir, log_name="again.log",
        env={"FLYTE_RS_ENGINE__PYTHON_VENV": None, "PATH": _path_without_flytekit()},
    )
    try:
        log = again.log()
        assert "environment made at an earlier start" in log, log
        assert "creating the Python task environment" not in log, log
    finally:
        assert stop_server(again) == 0, again.log()


def test_when_the_environment_cannot_be_made_the_task_error_names_the_fix(tmp_path):
    server = _fresh_server(tmp_path, FLYTE_RS_ENGINE__AUTO_VENV_PYTHON=str(tmp_path / "no-such-python3"))
    try:
        execution = _run_arithmetic(server)
        assert execution.closure.phase == WorkflowExecutionPhase.FAILED, server.log()[-6000:]
        message = execution.closure.error.message
        assert "could not be created" in message and "engine.python_venv" in message, message
        assert "no-such-python3" in message, message
        assert "engine.python_venv" in server.log()
    finally:
        assert stop_server(server) == 0, server.log()


def test_without_auto_venv_the_start_warns_with_the_fix(tmp_path):
    server = _fresh_server(tmp_path, FLYTE_RS_ENGINE__AUTO_VENV="false")
    try:
        log = server.log()
        assert "Python tasks cannot start" in log and "engine.python_venv" in log, log
        assert not (server.data_dir / "python-venv").exists()
    finally:
        assert stop_server(server) == 0, server.log()


def test_a_stray_flyte_rs_variable_stops_the_start_naming_it(tmp_path):
    """The scripts' old knobs (FLYTE_RS_PG_DATA …) shared the configuration prefix."""
    with pytest.raises(pytest.fail.Exception) as failed:
        start_server(tmp_path, tmp_path / "data", env={"FLYTE_RS_PG_DATA": "/tmp/pg"})
    text = str(failed.value)
    assert "unknown configuration variable FLYTE_RS_PG_DATA" in text, text
    assert "FLYTE_RS_SERVER__LISTEN" in text, text


# ---------------------------------------------------------------------------------------------
# pyflyte commands a newcomer types next, against the session's server.


def test_pyflyte_get_launchplan_lists_the_registered_examples(server: Server, registered: Registration, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich shortens table cells to the terminal's width
    assert registered.first.returncode == 0, describe(registered.first, server)
    result = pyflyte(server, "get", "launchplan", "--project", PROJECT, "--domain", DOMAIN)
    assert result.returncode == 0, describe(result, server)
    assert "examples.basics.hello_wf" in result.stdout, describe(result, server)
    one = pyflyte(server, "get", "launchplan", "--project", PROJECT, "--domain", DOMAIN, "examples.basics.hello_wf")
    assert one.returncode == 0 and registered.version in one.stdout, describe(one, server)


def test_pyflyte_info_shows_a_release_style_backend_version(server: Server, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    result = pyflyte(server, "info")
    assert result.returncode == 0, describe(result, server)
    line = next((l for l in result.stdout.splitlines() if "Flyte Backend Version" in l), "")
    version = line.split(":", 1)[-1].strip(" │|")
    assert version.startswith("v") and version[1:2].isdigit(), result.stdout
