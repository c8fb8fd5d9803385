"""The everyday command line (`flyte-rs get|launch|watch|logs|terminate|relaunch|recover|gate|
launchplan`, docs/cli.md) against a running server with the examples registered by real pyflyte.

The client reads the flytekit config the fixtures write, through FLYTECTL_CONFIG as a user's
shell would have it. Exit codes: 0 succeeded, 1 failed or error, 2 usage, 3 aborted.
"""

from __future__ import annotations

import json
import os
import pathlib
import pty
import re
import select
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from conftest import (
    EXAMPLES_PROJECT,
    PROJECT,
    Registration,
    Server,
    _binary,
    _clean_env,
    DOMAIN,
    describe,
    pyflyte,
    start_server,
    stop_server,
)

LP = "examples.basics.arithmetic_wf"


def cli(server: Server, *args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    run_env = _clean_env({"FLYTECTL_CONFIG": str(server.config_path), **(env or {})})
    return subprocess.run(
        [str(_binary()), *args], env=run_env, capture_output=True, text=True, timeout=timeout
    )


def ok(server: Server, *args: str) -> subprocess.CompletedProcess:
    result = cli(server, *args)
    assert result.returncode == 0, describe(result, server)
    return result


def as_json(server: Server, *args: str):
    return json.loads(ok(server, *args, "-o", "json").stdout)


def launch(server: Server, *args: str) -> str:
    return as_json(server, "launch", *args)["name"]


def phase(server: Server, name: str) -> str:
    return as_json(server, "get", "execution", name)["execution"]["closure"].get("phase", "UNDEFINED")


def wait_until(predicate, what: str, limit: float = 120.0):
    """Polls until `predicate()` is truthy; the limit only stops a hung test (not a timing check)."""
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of this module's own: these tests launch, terminate and register (docs/cli.md
    registers version v1), which other modules need not see."""
    base = tmp_path_factory.mktemp("flyte-rs-cli")
    srv = start_server(base, base / "data")
    yield srv
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


@pytest.fixture(scope="module")
def reg(server):
    """The examples registered by real pyflyte, as the README does it."""
    registration = Registration("cli-" + uuid.uuid4().hex[:12], None, 0.0, EXAMPLES_PROJECT)  # type: ignore[arg-type]
    result = registration.register(server)
    assert result.returncode == 0, describe(result, server)
    registration.first = result
    return registration


# --------------------------------------------------------------------------------------------
# get


def test_get_projects(server, reg):
    table = ok(server, "get", "projects").stdout
    header, *rows = table.splitlines()
    assert header.split() == ["ID", "NAME", "DOMAINS", "DESCRIPTION"]
    assert any(r.split()[0] == PROJECT and "development,staging,production" in r for r in rows), table
    projects = as_json(server, "get", "projects")
    assert PROJECT in [p["id"] for p in projects]
    # YAML carries the same objects.
    assert PROJECT in [p["id"] for p in yaml.safe_load(ok(server, "get", "projects", "-o", "yaml").stdout)]


def test_get_workflows_versions_and_interface(server, reg):
    names = ok(server, "get", "workflows").stdout.split()
    assert names[0] == "NAME" and LP in names and "examples.advanced.approval_wf" in names
    versions = ok(server, "get", "workflow", LP).stdout.splitlines()
    assert versions[0].split() == ["VERSION", "CREATED"]
    assert reg.version in [line.split()[0] for line in versions[1:]]
    detail = ok(server, "get", "workflow", LP, "--version", reg.version).stdout
    assert f"Workflow: {LP}" in detail and f"Version:  {reg.version}" in detail
    rows = [line.split() for line in detail.splitlines()]
    assert ["a", "int", "a"] in rows and ["b", "int", "b"] in rows
    assert ["total", "int", "total"] in rows and ["mean", "float", "mean"] in rows
    wf = as_json(server, "get", "workflow", LP, "--latest")
    assert wf["id"]["name"] == LP
    interface = wf["closure"]["compiledWorkflow"]["primary"]["template"]["interface"]
    assert set(interface["inputs"]["variables"]) == {"a", "b"}


def test_get_tasks_and_launch_plans(server, reg):
    assert "examples.basics.add" in ok(server, "get", "tasks").stdout.split()
    task = as_json(server, "get", "task", "examples.basics.add", "--latest")
    assert task["id"]["version"] == reg.version
    assert task["closure"]["compiledTask"]["template"]["type"] == "python-task"
    detail = ok(server, "get", "task", "examples.basics.add", "--latest").stdout
    assert "Type:    python-task" in detail, detail

    lps = ok(server, "get", "launchplans").stdout.split()
    assert LP in lps
    # Inputs with their defaults: `b` defaults to 2, `a` is required.
    detail = ok(server, "get", "launchplan", LP, "--latest").stdout
    rows = [line.split() for line in detail.splitlines()]
    assert ["a", "int", "(required)"] in rows and ["b", "int", "2"] in rows, detail
    lp = as_json(server, "get", "lp", "examples.basics.types_wf", "-v", reg.version)
    params = lp["closure"]["expectedInputs"]["parameters"]
    assert set(params) == {"flag", "when", "wait", "ratio", "maybe", "color"}


def test_get_unknown_names_fail_with_a_message(server, reg):
    result = cli(server, "get", "workflow", "no.such.wf", "--latest")
    assert result.returncode == 2, describe(result)
    assert "no workflow named no.such.wf" in result.stderr
    result = cli(server, "get", "execution", "nosuchexecution")
    assert result.returncode == 1, describe(result)
    assert "nosuchexecution" in result.stderr and "NotFound" in result.stderr


# --------------------------------------------------------------------------------------------
# launch and watch


def test_launch_with_flags_and_watch_succeeds(server, reg):
    name = launch(server, "launchplan", LP, "-i", "a=3")
    watched = cli(server, "watch", name)
    assert watched.returncode == 0, describe(watched, server)
    lines = watched.stdout.splitlines()
    # Piped: plain lines, one per phase change, no escape codes, the outcome last.
    assert "\x1b" not in watched.stdout
    assert any(line.startswith("node n0 SUCCEEDED (") for line in lines), watched.stdout
    assert lines[-2].startswith(f"execution {name} SUCCEEDED after "), watched.stdout
    assert lines[-1] == f"console: {server.url}/console/projects/{PROJECT}/domains/development/executions/{name}"
    detail = as_json(server, "get", "execution", name)
    # a=3, b=2: s=5, t=7, stats([3, 2, 5, 7]).
    assert detail["inputs"] == {"a": 3, "b": 2}
    assert detail["outputs"] == {"total": 17, "mean": 4.25}
    assert {n["id"]["nodeId"] for n in detail["nodes"]} >= {"n0", "n1", "n2"}
    table = ok(server, "get", "execution", name).stdout
    assert "Phase:       SUCCEEDED" in table and f"Console:     {server.url}/console/" in table, table


def test_launch_with_inputs_file_and_watch_flag(server, reg, tmp_path):
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("a: 10\nb: 1\n")
    result = cli(server, "launch", "launchplan", LP, "--inputs-file", str(inputs), "-i", "b=2", "--watch")
    assert result.returncode == 0, describe(result, server)
    name = result.stdout.split()[2]
    assert result.stdout.startswith(f"launched execution {name} in {PROJECT}/development"), result.stdout
    # Flags win over the file: a=10 from the file, b=2 from the flag (s=12, t=14).
    assert as_json(server, "get", "execution", name)["inputs"] == {"a": 10, "b": 2}
    assert as_json(server, "get", "execution", name)["outputs"] == {"total": 38, "mean": 9.5}
    # A JSON file works the same.
    inputs_json = tmp_path / "inputs.json"
    inputs_json.write_text(json.dumps({"a": 1}))
    name = launch(server, "launchplan", LP, "-f", str(inputs_json))
    assert cli(server, "watch", name).returncode == 0


def test_launch_task_and_bad_inputs(server, reg):
    result = cli(server, "launch", "task", "examples.basics.add", "-i", "a=40", "-i", "b=2", "-w", "-o", "json")
    assert result.returncode == 0, describe(result, server)
    # Two documents: the new execution's id, then (after the watch) the execution.
    launched, end = json.JSONDecoder().raw_decode(result.stdout)
    name = launched["name"]
    assert json.loads(result.stdout[end:])["closure"]["phase"] == "SUCCEEDED"
    assert as_json(server, "get", "execution", name)["outputs"] == {"o0": 42}

    # An Optional input of a task, not given, is None (as pyflyte sends it).
    result = cli(server, "launch", "task", "examples.basics.maybe_double", "-w")
    assert result.returncode == 0, describe(result, server)
    name = result.stdout.split()[2]
    assert as_json(server, "get", "execution", name)["outputs"] == {"o0": None}

    bad = cli(server, "launch", "launchplan", LP, "-i", "a=three")
    assert bad.returncode == 2 and "input a: expected an integer" in bad.stderr, describe(bad)
    missing = cli(server, "launch", "launchplan", LP)
    assert missing.returncode == 2 and "missing required input(s): a" in missing.stderr, describe(missing)
    unknown = cli(server, "launch", "launchplan", LP, "-i", "a=1", "-i", "zz=1")
    assert unknown.returncode == 2 and 'no input named "zz"; the inputs are: a, b' in unknown.stderr


def test_watch_failing_execution_exits_nonzero_with_the_error(server, reg):
    result = cli(server, "launch", "launchplan", "examples.failures.broken_wf", "--watch")
    assert result.returncode == 1, describe(result, server)
    assert "FAILED after" in result.stdout
    assert "error:" in result.stdout and "broken on purpose with x=1" in result.stdout, result.stdout


def test_list_executions_filters_and_paging(server, reg):
    name = launch(server, "launchplan", LP, "-i", "a=5")
    assert cli(server, "watch", name).returncode == 0
    table = ok(server, "get", "executions", "--launchplan", LP, "--phase", "succeeded").stdout
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "LAUNCH", "PLAN", "VERSION", "PHASE", "STARTED", "DURATION"]
    assert name in [r.split()[0] for r in rows]
    assert all(r.split()[1] == LP and r.split()[3] == "SUCCEEDED" for r in rows), table
    failed = as_json(server, "get", "executions", "--phase", "FAILED")
    assert failed and all(e["closure"]["phase"] == "FAILED" for e in failed)
    assert name not in [e["id"]["name"] for e in failed]
    # Newest first, one page at a time.
    first = cli(server, "get", "executions", "--limit", "1", "-o", "json")
    assert first.returncode == 0 and len(json.loads(first.stdout)) == 1
    token = first.stderr.split("--token ")[1].split(")")[0]
    second = as_json(server, "get", "executions", "--limit", "1", "--token", token)
    assert len(second) == 1 and second[0]["id"]["name"] != json.loads(first.stdout)[0]["id"]["name"]
    bad = cli(server, "get", "executions", "--phase", "DONE")
    assert bad.returncode == 2 and "not a phase" in bad.stderr


def test_watch_under_a_terminal_shows_a_progress_bar(server, reg):
    name = launch(server, "launchplan", "examples.chains.chain3_wf", "-i", "delay=1")
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [str(_binary()), "watch", name],
        stdin=child, stdout=child, stderr=child, close_fds=True,
        env=_clean_env({"FLYTECTL_CONFIG": str(server.config_path), "TERM": "xterm"}),
    )
    os.close(child)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 300)
        if not ready:
            proc.kill()
            pytest.fail("watch printed nothing for 300s")
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(main)
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    text = out.decode(errors="replace")
    # The bar redraws in place (\r), counts nodes and names the running one with its duration.
    assert "\r" in text and "/3 nodes" in text, text[-3000:]
    assert "3/3 nodes" in text and "1 running" in text, text[-3000:]
    assert "\x1b[" in text  # colour on a terminal
    assert f"execution {name} " in text and "SUCCEEDED" in text


# --------------------------------------------------------------------------------------------
# logs


def test_logs_of_an_attempt_contain_what_the_task_printed(server, reg):
    name = launch(server, "launchplan", "examples.chains.chain3_wf", "-i", "x=7")
    assert cli(server, "watch", name).returncode == 0
    one = ok(server, "logs", name, "--node", "n0", "--attempt", "0")
    assert "step 1: 7 -> 8" in one.stdout and "step 2" not in one.stdout, one.stdout
    assert "==> node n0 attempt 0 <==" in one.stderr
    every = ok(server, "logs", name).stdout
    assert "step 1: 7 -> 8" in every and "step 2: 8 -> 10" in every and "step 3: 10 -> 13" in every
    missing = cli(server, "logs", name, "--node", "nope")
    assert missing.returncode == 2 and "no task attempts with logs for node nope" in missing.stderr


def test_logs_of_a_map_task_list_every_subtask(server, reg):
    name = launch(server, "launchplan", "examples.advanced.map_plain_wf", "-i", "xs=[1, 2, 3]")
    assert cli(server, "watch", name).returncode == 0
    result = ok(server, "logs", name, "--node", "n0")
    headers = [line for line in result.stderr.splitlines() if line.startswith("==> ")]
    # One header per subtask attempt, even though these subtasks print nothing.
    assert headers == [f"==> node n0[{i}] attempt 0 <==" for i in range(3)], result.stderr


def test_logs_follow_a_running_execution_to_the_end(server, reg):
    name = launch(server, "launchplan", "examples.chains.chain3_wf", "-i", "x=100", "-i", "delay=2")
    wait_until(lambda: phase(server, name) == "RUNNING", "the execution to run")
    followed = ok(server, "logs", name, "--follow")
    # Started while the first step ran; ends when the execution does, with every step's output once.
    assert followed.stdout.count("step 1: 100 -> 101") == 1, followed.stdout
    assert "step 3: 103 -> 106" in followed.stdout, followed.stdout
    assert phase(server, name) == "SUCCEEDED"


# --------------------------------------------------------------------------------------------
# terminate, relaunch, recover


def test_terminate_then_watch_exits_aborted(server, reg):
    name = launch(server, "launchplan", "examples.failures.sleepy_wf", "-i", "seconds=600")
    wait_until(lambda: phase(server, name) == "RUNNING", "the execution to run")
    result = ok(server, "terminate", name, "--cause", "stopped by test_cli")
    assert result.stdout.strip() == f"terminated {name}"
    watched = cli(server, "watch", name)
    assert watched.returncode == 3, describe(watched, server)
    assert "ABORTED" in watched.stdout and "stopped by test_cli" in watched.stdout
    again = cli(server, "terminate", "nosuchexecution")
    assert again.returncode == 1 and "nosuchexecution" in again.stderr


def test_relaunch_runs_again_with_the_same_inputs(server, reg):
    name = launch(server, "launchplan", LP, "-i", "a=4")
    assert cli(server, "watch", name).returncode == 0
    result = cli(server, "relaunch", name, "--watch")
    assert result.returncode == 0, describe(result, server)
    new = result.stdout.split()[3]
    assert result.stdout.startswith(f"relaunched as execution {new}") and new != name, result.stdout
    assert as_json(server, "get", "execution", new)["inputs"] == {"a": 4, "b": 2}


def test_recover_reuses_what_succeeded(server, reg, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    name = launch(server, "launchplan", "examples.advanced.recover_wf", "-i", "x=1", "-i", f"marker_dir={markers}")
    assert cli(server, "watch", name).returncode == 1
    (markers / "allow").write_text("")
    result = cli(server, "recover", name, "-w")
    assert result.returncode == 0, describe(result, server)
    new = result.stdout.split()[3]
    assert as_json(server, "get", "execution", new)["outputs"] == {"o0": 301}
    # a and b ran once (recovered, not rerun); fragile ran in both executions.
    assert len((markers / "a").read_text().splitlines()) == 1
    assert len((markers / "b").read_text().splitlines()) == 1
    assert len((markers / "fragile").read_text().splitlines()) == 2


# --------------------------------------------------------------------------------------------
# gates and launch plan state


def waiting_gate(server: Server, name: str, signal: str) -> bool:
    rows = [line.split() for line in ok(server, "gate", "list", name).stdout.splitlines()]
    return any(r[0] == signal and r[-1] == "(waiting)" for r in rows[1:])


def test_gate_approve_reject_and_set(server, reg):
    approved = launch(server, "launchplan", "examples.advanced.approval_wf", "-i", "x=4")
    wait_until(lambda: waiting_gate(server, approved, "approve-double"), "the approval gate")
    result = ok(server, "gate", "approve", approved)  # the one gate waiting
    assert result.stdout.strip() == f"gate approve-double of {approved} approved"
    assert cli(server, "watch", approved).returncode == 0
    assert as_json(server, "get", "execution", approved)["outputs"] == {"o0": 9}

    rejected = launch(server, "launchplan", "examples.advanced.approval_wf", "-i", "x=1")
    wait_until(lambda: waiting_gate(server, rejected, "approve-double"), "the approval gate")
    ok(server, "gate", "reject", rejected, "approve-double")
    watched = cli(server, "watch", rejected)
    assert watched.returncode == 1 and "reject" in watched.stdout.lower(), watched.stdout

    signalled = launch(server, "launchplan", "examples.advanced.signal_wf", "-i", "x=1")
    wait_until(lambda: waiting_gate(server, signalled, "y"), "the input gate")
    wrong = cli(server, "gate", "set", signalled, "y", "five")
    assert wrong.returncode == 2 and "gate y: expected an integer" in wrong.stderr
    not_approval = cli(server, "gate", "approve", signalled, "y")
    assert not_approval.returncode == 2 and "gate set" in not_approval.stderr
    assert ok(server, "gate", "set", signalled, "y", "5").stdout.strip() == f"gate y of {signalled} set to 5"
    assert cli(server, "watch", signalled).returncode == 0
    assert as_json(server, "get", "execution", signalled)["outputs"] == {"o0": 6}
    values = {s["id"]["signalId"]: s.get("value") for s in as_json(server, "gate", "list", signalled)}
    assert values["y"]["scalar"]["primitive"]["integer"] == "5"


def test_launchplan_activate_and_deactivate(server, reg):
    name = "examples.basics.hello_wf"
    result = ok(server, "launchplan", "activate", name)
    assert result.stdout.strip() == f"launch plan {name} version {reg.version} is ACTIVE"
    rows = [line.split() for line in ok(server, "get", "launchplan", name).stdout.splitlines()]
    assert [reg.version, "ACTIVE"] == rows[1][:2], rows
    assert as_json(server, "get", "lp", name, "--latest")["closure"]["state"] == "ACTIVE"
    state = as_json(server, "launchplan", "deactivate", name, "-v", reg.version)
    assert state == {"name": name, "version": reg.version, "state": "INACTIVE"}
    # INACTIVE is the enum's zero value: proto3 JSON leaves it out.
    assert as_json(server, "get", "lp", name, "--latest")["closure"].get("state", "INACTIVE") == "INACTIVE"


def test_get_schedules_lists_active_schedules_with_next_ticks(server, reg):
    """`pyflyte register --activate-launchplans` of the schedules example: `get schedules`
    shows both launch plans with their next ticks (table, json, one by name), `get launchplan`
    shows the active one's schedule; deactivated afterwards, none is left."""
    import datetime as dt

    version = "sched-" + uuid.uuid4().hex[:8]
    names = ["every_minute_lp", "cron_minutely_lp"]
    result = pyflyte(
        server, "register", "--project", PROJECT, "--domain", DOMAIN, "--version", version,
        "--activate-launchplans", "examples/schedules.py", cwd=EXAMPLES_PROJECT,
    )
    assert result.returncode == 0, describe(result, server)
    try:
        listed = {s["launch_plan"]: s for s in as_json(server, "get", "schedules")}
        assert set(names) <= set(listed), listed
        now = dt.datetime.now(dt.timezone.utc)
        for name in names:
            entry = listed[name]
            assert entry["version"] == version, entry
            ticks = [dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in entry["next_ticks"]]
            assert len(ticks) == 3 and ticks == sorted(ticks), entry
            assert ticks[0] > now - dt.timedelta(minutes=2), entry
        assert listed["every_minute_lp"]["schedule"] == "every 1 minute", listed
        assert listed["cron_minutely_lp"]["schedule"].startswith("cron"), listed

        table = ok(server, "get", "schedules").stdout.splitlines()
        assert table[0].split()[:4] == ["LAUNCH", "PLAN", "VERSION", "SCHEDULE"], table
        for name in names:
            row = next(line for line in table if line.startswith(name + " "))
            assert version in row, row
            # Three next ticks, as `YYYY-MM-DD HH:MM:SSZ, ...`.
            assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", row)) >= 3, row

        one = yaml.safe_load(ok(server, "get", "schedule", "every_minute_lp", "-o", "yaml").stdout)
        assert one["launch_plan"] == "every_minute_lp" and one["version"] == version, one

        shown = ok(server, "get", "launchplan", "every_minute_lp").stdout
        assert f"Schedule:   every 1 minute (version {version})" in shown, shown
        assert re.search(r"Next ticks: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ, ", shown), shown
        detail = ok(server, "get", "launchplan", "cron_minutely_lp", "--latest").stdout
        assert "Schedule:" in detail and "Next ticks:" in detail, detail
        # A launch plan without a schedule shows none, and `get schedule` of it says why.
        assert "Schedule:" not in ok(server, "get", "launchplan", LP).stdout
        missing = cli(server, "get", "schedule", LP)
        assert missing.returncode == 2, describe(missing, server)
        assert "has no active schedule" in missing.stderr, missing.stderr
    finally:
        for name in names:
            off = pyflyte(
                server, "launchplan", "--project", PROJECT, "--domain", DOMAIN, name, version, "--deactivate",
            )
            assert off.returncode == 0, describe(off, server)
    left = [s["launch_plan"] for s in as_json(server, "get", "schedules")]
    assert not set(names) & set(left), left
    assert "Schedule:" not in ok(server, "get", "launchplan", "every_minute_lp").stdout


# --------------------------------------------------------------------------------------------
# configuration and plumbing


def test_config_from_home_and_errors(server, reg, tmp_path):
    home = tmp_path / "home"
    (home / ".flyte").mkdir(parents=True)
    (home / ".flyte" / "config.yaml").write_text(server.config_path.read_text())
    env = _clean_env({"HOME": str(home)})
    result = subprocess.run([str(_binary()), "get", "projects"], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and PROJECT in result.stdout, describe(result)

    missing = cli(server, "get", "projects", env={"FLYTECTL_CONFIG": str(tmp_path / "nope.yaml")})
    assert missing.returncode == 1 and "nope.yaml (named by FLYTECTL_CONFIG) does not exist" in missing.stderr
    down = tmp_path / "down.yaml"
    down.write_text("admin:\n  endpoint: dns:///127.0.0.1:9\n  insecure: true\n")
    result = cli(server, "get", "projects", "--config", str(down))
    assert result.returncode == 1 and "cannot reach flyte-rs at 127.0.0.1:9" in result.stderr, describe(result)


def test_closed_pipe_is_not_a_crash(server, reg):
    """`flyte-rs get ... | head`: the reader is gone before the output is written."""
    proc = subprocess.Popen(
        [str(_binary()), "get", "workflows"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_clean_env({"FLYTECTL_CONFIG": str(server.config_path)}),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "panicked" not in stderr, stderr


# --------------------------------------------------------------------------------------------
# docs/cli.md


def test_docs_examples_work_when_pasted(server, reg, tmp_path):
    """Every `$ ` line of docs/cli.md's console blocks, in order, in a shell with `flyte-rs` and
    `pyflyte` on PATH and FLYTECTL_CONFIG pointing at the server; a trailing `# exit code N`
    says the exit code expected. A gate only exists once the execution reaches it, so gate
    commands are retried until they succeed (as a person would after `gate list`)."""
    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    commands = []
    for block in re.findall(r"```console\n(.*?)```", doc, re.S):
        commands += [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) > 30, commands
    work = tmp_path / "docs"
    work.mkdir()
    (work / "flytesnacks").symlink_to(pathlib.Path(__file__).resolve().parents[2] / "flytesnacks")
    path = os.pathsep.join([str(_binary().parent), str(pathlib.Path(sys.executable).parent), os.environ["PATH"]])
    env = _clean_env({"FLYTECTL_CONFIG": str(server.config_path), "PATH": path})
    for command in commands:
        match = re.search(r"#\s*exit code (\d+)", command)
        expected = int(match.group(1)) if match else 0
        deadline = time.monotonic() + 120
        while True:
            result = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=600)
            if result.returncode == expected or " gate " not in command or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert result.returncode == expected, f"docs/cli.md: `{command}`\n" + describe(result, server)


def test_log_endpoint_serves_ranges(server, reg):
    """`GET /logs/...` with `Range: bytes=N-` (what `logs --follow` sends) answers 206 with the
    bytes from N on, 416 past the end, and the whole text without a Range."""
    import urllib.error
    import urllib.request

    name = launch(server, "launchplan", "examples.chains.chain3_wf", "-i", "x=1")
    assert cli(server, "watch", name).returncode == 0
    url = f"{server.url}/logs/{PROJECT}/development/{name}/n0/0.log"
    with urllib.request.urlopen(url) as response:
        assert response.status == 200
        whole = response.read()
    assert b"step 1: 1 -> 2" in whole
    request = urllib.request.Request(url, headers={"Range": "bytes=5-"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 5-{len(whole) - 1}/{len(whole)}"
        assert response.read() == whole[5:]
    request = urllib.request.Request(url, headers={"Range": f"bytes={len(whole)}-"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request)
    assert err.value.code == 416
    assert err.value.headers["Content-Range"] == f"bytes */{len(whole)}"
