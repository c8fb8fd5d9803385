"""Launch-plan schedules through the real flytekit: `pyflyte register --activate-launchplans`
activates a fixed-rate and a cron schedule; the server is stopped at once, so the first ticks
fall in its downtime; restarted, it catches them up, each tick once, with the scheduled time
as the workflow's kickoff input and mode SCHEDULED; a deactivated schedule launches nothing
more while the other keeps its cadence.

One test, about two minutes of wall time: a schedule's shortest period is one minute."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import time
import urllib.error
import urllib.request
import uuid

from conftest import DOMAIN, EXAMPLES_PROJECT, PROJECT, describe, pyflyte, start_server, stop_server

FIXED = "every_minute_lp"
CRON = "cron_minutely_lp"


def _remote(server):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    return FlyteRemote(
        config=Config.auto(config_file=str(server.config_path)),
        default_project=PROJECT,
        default_domain=DOMAIN,
    )


def _executions(remote, launch_plan: str) -> list:
    from flytekit.models import filters

    found, token = [], None
    while True:
        page, token = remote.client.list_executions_paginated(
            PROJECT, DOMAIN, limit=100, token=token, filters=[filters.Equal("launch_plan.name", launch_plan)]
        )
        found.extend(page)
        if not token:
            return sorted(found, key=lambda e: _utc(e.spec.metadata.scheduled_at or e.closure.created_at))


def _schedules(server) -> dict:
    with urllib.request.urlopen(f"{server.url}/api/v1/schedules/{PROJECT}/{DOMAIN}", timeout=10) as answer:
        return json.loads(answer.read())


def _wait_for(what: str, check, timeout: float, server):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{server.log()}")
        time.sleep(1)


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def test_schedules_launch_each_tick_once_across_a_restart(tmp_path: pathlib.Path):
    base = tmp_path / "srv"
    data = base / "data"
    server = start_server(base, data)
    version = "sched-" + uuid.uuid4().hex[:8]
    try:
        reg = pyflyte(
            server, "register", "--project", PROJECT, "--domain", DOMAIN, "--version", version,
            "--activate-launchplans", "examples/schedules.py", cwd=EXAMPLES_PROJECT,
        )
        activated = dt.datetime.now(dt.timezone.utc)
        assert reg.returncode == 0, describe(reg, server)
    finally:
        assert stop_server(server) == 0, server.log()

    # Down across the first fixed-rate tick (activation + 60 s) and at least one minute mark.
    time.sleep(max(0.0, (activated + dt.timedelta(seconds=63) - dt.datetime.now(dt.timezone.utc)).total_seconds()))
    server = start_server(base, data, log_name="server-2.log")
    try:
        remote = _remote(server)
        fixed = _wait_for("the missed fixed-rate tick", lambda: _executions(remote, FIXED), 30, server)
        assert len(fixed) == 1, [e.id.name for e in fixed]
        first = fixed[0]
        scheduled = _utc(first.spec.metadata.scheduled_at)
        # The tick is the activation + one minute (the server's activation time, a moment
        # before pyflyte returned), not the restart time.
        assert abs((scheduled - (activated + dt.timedelta(minutes=1))).total_seconds()) < 15, (scheduled, activated)
        assert first.spec.metadata.mode == 1, first.spec.metadata  # SCHEDULED
        assert first.id.name.startswith("f") and len(first.id.name) == 20, first.id.name

        done = remote.wait(remote.fetch_execution(name=first.id.name), timeout=dt.timedelta(seconds=120))
        assert done.closure.phase == 4, done.closure  # SUCCEEDED
        kickoff = _utc(done.inputs.get("kickoff_time", as_type=dt.datetime))
        assert kickoff == scheduled, (kickoff, scheduled)
        assert done.outputs.get("o0", as_type=str) == scheduled.strftime("%Y-%m-%d %H:%M:%S")

        # The cron schedule caught up every minute mark of the downtime, each once.
        cron = _wait_for("the missed cron ticks", lambda: _executions(remote, CRON), 30, server)
        marks = [_utc(e.spec.metadata.scheduled_at) for e in cron]
        assert all(m.second == 0 and m.microsecond == 0 for m in marks), marks
        assert len(set(marks)) == len(marks), marks
        first_mark = (activated + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
        assert marks[0] == first_mark, (marks, activated)

        # The schedules API (what the console and `flyte-rs get schedules` show).
        listed = {s["launch_plan"]: s for s in _schedules(server)["schedules"]}
        assert set(listed) >= {FIXED, CRON}, listed
        assert listed[FIXED]["schedule"] == "every 1 minute", listed[FIXED]
        assert listed[CRON]["schedule"] == 'cron "* * * * *"', listed[CRON]
        assert listed[FIXED]["kickoff_time_input_arg"] == "kickoff_time"
        assert _utc(dt.datetime.fromisoformat(listed[FIXED]["last_tick"])) == scheduled
        nexts = [dt.datetime.fromisoformat(t) for t in listed[FIXED]["next_ticks"]]
        assert nexts[0] == scheduled + dt.timedelta(minutes=1) and len(nexts) == 3, nexts

        # Deactivated: no more cron ticks; the fixed rate keeps going (its second tick).
        off = pyflyte(server, "launchplan", "--project", PROJECT, "--domain", DOMAIN, CRON, version, "--deactivate")
        assert off.returncode == 0, describe(off, server)
        deactivated = dt.datetime.now(dt.timezone.utc)
        second = _wait_for(
            "the fixed rate's second tick", lambda: len(_executions(remote, FIXED)) >= 2 or None, 90, server
        )
        assert second
        fixed = _executions(remote, FIXED)
        assert len(fixed) == 2, [e.id.name for e in fixed]
        gap = _utc(fixed[1].spec.metadata.scheduled_at) - _utc(fixed[0].spec.metadata.scheduled_at)
        assert gap == dt.timedelta(minutes=1), gap
        after = [e for e in _executions(remote, CRON) if _utc(e.spec.metadata.scheduled_at) > deactivated]
        assert after == [], [e.id.name for e in after]
        assert CRON not in {s["launch_plan"] for s in _schedules(server)["schedules"]}
        missing = urllib.request.Request(f"{server.url}/api/v1/schedules/{PROJECT}/{DOMAIN}/{CRON}")
        try:
            urllib.request.urlopen(missing, timeout=10)
            raise AssertionError("a deactivated schedule is still served")
        except urllib.error.HTTPError as err:
            assert err.code == 404, err
            assert "no active schedule" in json.loads(err.read())["message"]
    finally:
        assert stop_server(server) == 0, server.log()


def test_pyflyte_backfill_runs_the_missed_ticks(server, registered):
    """`pyflyte backfill` builds a workflow of launch-plan nodes, one per tick of the window,
    registers it and runs it on the server: each tick's child execution gets its kickoff time."""
    assert registered.first.returncode == 0, describe(registered.first, server)
    start = dt.datetime(2026, 1, 1, 10, 0)
    end = start + dt.timedelta(minutes=3)
    name = "bf" + uuid.uuid4().hex[:10]
    result = pyflyte(
        server, "backfill", "--project", PROJECT, "--domain", DOMAIN, "--from-date", start.isoformat(),
        "--to-date", end.isoformat(), "--parallel", "--execution-name", name, CRON, registered.version,
        cwd=EXAMPLES_PROJECT,
    )
    assert result.returncode == 0, describe(result, server)
    remote = _remote(server)
    done = remote.wait(remote.fetch_execution(name=name), timeout=dt.timedelta(seconds=180), sync_nodes=True)
    assert done.closure.phase == 4, (done.closure, server.log())
    children = [
        e for e in _executions(remote, CRON)
        if e.spec.metadata.parent_node_execution is not None
        and e.spec.metadata.parent_node_execution.execution_id.name == name
    ]
    kickoffs = []
    for child in children:
        full = remote.sync_execution(remote.fetch_execution(name=child.id.name))
        assert full.closure.phase == 4, full.closure
        kickoffs.append(_utc(full.inputs.get("kickoff_time", as_type=dt.datetime)))
    # flytekit's window: the cron times strictly between the two dates.
    assert sorted(kickoffs) == [_utc(start + dt.timedelta(minutes=k)) for k in (1, 2)], kickoffs
