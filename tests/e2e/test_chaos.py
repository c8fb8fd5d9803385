"""Chaos: a mixed workload while the server is killed with SIGKILL at random moments.

The workload (tests/e2e/chaos_workflows/chaos.py, registered with the real `pyflyte register`):
Python task chains, a map task, a @dynamic fan-out of in-engine core-sleep/echo leaves, a
cached `cache_serialize` task launched by several executions with the same inputs, a workflow
with an approval gate (approved through FlyteRemote while the chaos runs) and a failing task.
While it runs, the server is killed with SIGKILL (CHAOS_KILLS times, 20 by default) after a
random delay, and started again on the same data dir and port. Then every execution must end:

* in the phase its workflow gives, with exactly its outputs (or its error);
* with no node that had succeeded run again: a body may start again only for an attempt that
  was running when the server died (at-least-once), never for one the server had reported as
  SUCCEEDED, never twice for the same attempt, and never in an execution already over;
* with the bodies of the serialized cached task never overlapping in time.

Every task body appends `start`/`end` lines to a shared JSON-lines file (see chaos.py); the test
compares them with what the server reported before each kill.

Knobs (environment; a longer run is in docs/reliability.md#chaos-test):
  CHAOS_SEED       seed of the random delays (printed; default: a fresh one)
  CHAOS_KILLS      number of SIGKILLs (default 20)
  CHAOS_MAX_DELAY  upper bound of the random delay between a restart and the next kill, in
                   seconds (default 8; the lower bound is 0.2)
  CHAOS_SCALE      copies of the workload (default 1)
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import random
import shutil
import signal
import sys
import time
import uuid

from conftest import DOMAIN, PROJECT, REPO, Server, describe, pyflyte, record_timing, start_server, stop_server

from flytekit.models.core.execution import NodeExecutionPhase, TaskExecutionPhase, WorkflowExecutionPhase  # noqa: E402
from flytekit.models.core.identifier import NodeExecutionIdentifier  # noqa: E402

MODULE = "chaos_workflows.chaos"
TERMINAL = {
    WorkflowExecutionPhase.SUCCEEDED,
    WorkflowExecutionPhase.FAILED,
    WorkflowExecutionPhase.ABORTED,
    WorkflowExecutionPhase.TIMED_OUT,
}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def _remote(server: Server):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    # A fresh client per server process: a channel that saw the old one die may sit in
    # gRPC's reconnect back-off.
    return FlyteRemote(
        config=Config.auto(config_file=str(server.config_path)), default_project=PROJECT, default_domain=DOMAIN
    )


class Expected:
    """One execution to launch and what it must end with."""

    def __init__(self, workflow: str, inputs: dict, phase: int, output=None, error: str = "") -> None:
        self.workflow, self.inputs, self.phase, self.output, self.error = workflow, inputs, phase, output, error
        self.name = "x" + uuid.uuid4().hex[:12]


def _workload(rng: random.Random, log_dir: str, wave: int, scale: int, serialized_x: int) -> list[Expected]:
    ok, failed = WorkflowExecutionPhase.SUCCEEDED, WorkflowExecutionPhase.FAILED
    out: list[Expected] = []
    for _ in range(scale):
        if wave == 1:
            # The gate first: its first task runs early, so the approval lands during the chaos.
            x = rng.randrange(1000)
            out.append(Expected("gate_wf", {"x": x, "log_dir": log_dir}, ok, x * 10 + 1))
            out.append(Expected("fail_wf", {"x": 7, "log_dir": log_dir}, failed, error="chaos boom 7"))
            for x in (rng.randrange(1000), rng.randrange(1000)):
                out.append(Expected("chain_wf", {"x": x, "delay": 0.5, "log_dir": log_dir}, ok, x + 15))
            xs = [rng.randrange(100) for _ in range(5)]
            out.append(Expected("map_wf", {"xs": xs, "log_dir": log_dir}, ok, [x * x for x in xs]))
            out.append(Expected("fan_out_wf", {"n": 20, "seconds": 1, "log_dir": log_dir}, ok, list(range(20))))
            copies = 4
        else:
            x = rng.randrange(1000)
            out.append(Expected("chain_wf", {"x": x, "delay": 0.5, "log_dir": log_dir}, ok, x + 15))
            copies = 2
        for _ in range(copies):
            out.append(
                Expected("serialized_wf", {"x": serialized_x, "log_dir": log_dir}, ok, serialized_x * serialized_x)
            )
    return out


def _launch(remote, version: str, runs: list[Expected]) -> None:
    entities: dict = {}
    for run in runs:
        if run.workflow not in entities:
            entities[run.workflow] = remote.fetch_workflow(PROJECT, DOMAIN, f"{MODULE}.{run.workflow}", version)
        remote.execute(entities[run.workflow], inputs=run.inputs, execution_name=run.name, wait=False)


def _top_nodes(remote, execution_id, unique_parent_id: str | None = None) -> dict:
    nodes, token = {}, ""
    while True:
        page, token = remote.client.list_node_executions(
            execution_id, limit=100, token=token, unique_parent_id=unique_parent_id
        )
        nodes.update({n.id.node_id: n for n in page})
        if not token:
            return nodes


def _task_attempts(remote, execution_id, node_id: str) -> list:
    found, token = [], ""
    while True:
        page, token = remote.client.list_task_executions_paginated(
            NodeExecutionIdentifier(node_id, execution_id), limit=100, token=token
        )
        found.extend(page)
        if not token:
            return found


class Observed:
    """What the server reported before each kill: when each node / execution was seen over."""

    def __init__(self) -> None:
        # (execution, node) -> first time it was seen SUCCEEDED; execution -> first time seen terminal.
        self.node_succeeded: dict[tuple[str, str], float] = {}
        self.execution_over: dict[str, float] = {}

    def snapshot(self, remote, runs: list[Expected]) -> None:
        for run in runs:
            if run.name in self.execution_over:
                continue
            execution = remote.fetch_execution(name=run.name)
            nodes = _top_nodes(remote, execution.id)
            seen = time.time()
            if execution.closure.phase in TERMINAL:
                self.execution_over[run.name] = seen
            for node_id, node in nodes.items():
                if node.closure.phase == NodeExecutionPhase.SUCCEEDED:
                    self.node_succeeded.setdefault((run.name, node_id), seen)


def _read_runs(log_dir: pathlib.Path) -> list[dict]:
    path = log_dir / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _try_approve(remote, gate_runs: list[Expected], approved: set[str]) -> None:
    for run in gate_runs:
        if run.name in approved:
            continue
        if any(s.id.signal_id == "chaos-approve" for s in remote.list_signals(run.name)):
            remote.approve("chaos-approve", run.name)
            approved.add(run.name)


def test_chaos_sigkill_during_mixed_workload(tmp_path_factory):
    seed = _env_int("CHAOS_SEED", random.SystemRandom().randrange(2**32))
    kills = _env_int("CHAOS_KILLS", 20)
    max_delay = _env_float("CHAOS_MAX_DELAY", 8.0)
    scale = _env_int("CHAOS_SCALE", 1)
    banner = f"chaos: CHAOS_SEED={seed} CHAOS_KILLS={kills} CHAOS_MAX_DELAY={max_delay} CHAOS_SCALE={scale}"
    print(f"\n{banner}", file=sys.stderr)
    rng = random.Random(seed)

    base = tmp_path_factory.mktemp("chaos")
    data_dir = base / "data"
    log_dir = base / "runs"
    log_dir.mkdir()
    root = base / "project"
    shutil.copytree(
        REPO / "tests" / "e2e" / "chaos_workflows",
        root / "chaos_workflows",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    started = time.monotonic()
    server = start_server(base, data_dir)
    port = server.port
    # Times (wall clock) at which a restarted server was ready: its start-up has killed the
    # task processes the dead one left behind by then.
    ready_times: list[float] = []
    problems: list[str] = []

    def fail(message: str) -> None:
        problems.append(message)

    try:
        version = "chaos-" + uuid.uuid4().hex[:8]
        result = pyflyte(
            server, "register", "--project", PROJECT, "--domain", DOMAIN, "--version", version, "chaos_workflows",
            cwd=root,
        )
        assert result.returncode == 0, describe(result, server)

        serialized_x = rng.randrange(10**6)
        runs = _workload(rng, str(log_dir), 1, scale, serialized_x)
        # More work lands after a third and two thirds of the kills, so the server is busy
        # (and launches meet restarts) through the whole chaos.
        waves = {
            max(1, kills // 3): _workload(rng, str(log_dir), 2, scale, serialized_x),
            max(1, 2 * kills // 3): _workload(rng, str(log_dir), 2, scale, serialized_x),
        }
        gate_runs = [r for r in runs if r.workflow == "gate_wf"]
        remote = _remote(server)
        _launch(remote, version, runs)
        observed = Observed()
        approved: set[str] = set()

        chaos_started = time.monotonic()
        for kill in range(1, kills + 1):
            time.sleep(rng.uniform(0.2, max_delay))
            observed.snapshot(remote, runs)
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)
            server = start_server(base, data_dir, port=port, log_name=f"server-{kill}.log")
            ready_times.append(time.time())
            remote = _remote(server)
            if kill in waves:
                _launch(remote, version, waves[kill])
                runs += waves.pop(kill)
            if kill >= kills // 3:
                _try_approve(remote, gate_runs, approved)
        chaos_seconds = time.monotonic() - chaos_started

        # The last server runs everything to the end.
        deadline = time.monotonic() + 600 * scale
        final = {}
        while True:
            _try_approve(remote, gate_runs, approved)
            for run in runs:
                if run.name not in final:
                    execution = remote.fetch_execution(name=run.name)
                    if execution.closure.phase in TERMINAL:
                        final[run.name] = remote.sync_execution(execution)
            if len(final) == len(runs):
                break
            if time.monotonic() > deadline:
                pending = sorted(r.workflow + " " + r.name for r in runs if r.name not in final)
                raise AssertionError(f"{banner}: executions never ended: {pending}\n{server.log()[-6000:]}")
            time.sleep(0.5)
        record_timing("chaos: kills and restarts", chaos_seconds)
        record_timing("chaos: total", time.monotonic() - started)

        # 1. Phases and outputs.
        for run in runs:
            execution = final[run.name]
            got = execution.closure.phase
            what = f"{run.workflow} {run.name} {run.inputs}"
            if got != run.phase:
                error = execution.closure.error
                fail(
                    f"{what}: phase {WorkflowExecutionPhase.enum_to_string(got)}, expected "
                    f"{WorkflowExecutionPhase.enum_to_string(run.phase)} "
                    f"({error.code + ': ' + error.message if error else 'no error'})"
                )
            elif run.phase == WorkflowExecutionPhase.SUCCEEDED:
                value = execution.outputs["o0"]
                if value != run.output:
                    fail(f"{what}: output {value!r}, expected {run.output!r}")
            elif run.error not in execution.closure.error.message:
                fail(f"{what}: error {execution.closure.error.message!r} does not name {run.error!r}")

        # 2. No succeeded node ran again.
        bodies = _read_runs(log_dir)
        names = {r.name: r for r in runs}
        starts: dict[tuple[str, str, str], list[dict]] = {}
        for b in bodies:
            if b["execution"] != b["dir_execution"] or b["attempt"] != b["dir_attempt"]:
                fail(f"a body's environment and working directory disagree: {b}")
            if b["execution"] not in names:
                fail(f"a body ran for an execution the test did not launch: {b}")
            if b["event"] == "start":
                starts.setdefault((b["execution"], b["dir_node"], b["attempt"]), []).append(b)
        for (ex, node, attempt), lines in sorted(starts.items()):
            if len(lines) > 1:
                fail(f"{names[ex].workflow} {ex} node {node} attempt {attempt} started {len(lines)} times: {lines}")
        for b in bodies:
            if b["event"] != "start":
                continue
            ex, node = b["execution"], b["dir_node"]
            over = observed.execution_over.get(ex)
            if over is not None and b["t"] > over:
                fail(f"{names[ex].workflow} {ex} node {node}: a body started after the execution was seen over: {b}")
            succeeded = observed.node_succeeded.get((ex, node))
            if succeeded is not None and b["t"] > succeeded:
                fail(f"{names[ex].workflow} {ex} node {node} was seen SUCCEEDED and ran again: {b}")
        # What the server recorded agrees: one SUCCEEDED attempt per node, the last one, and
        # every attempt a body ran for is known. For the fan-out, its in-engine leaves too.
        for run in runs:
            execution = final[run.name]
            node_ids = [n for n in _top_nodes(remote, execution.id) if n not in ("start-node", "end-node")]
            if run.workflow == "fan_out_wf":
                children = _top_nodes(remote, execution.id, unique_parent_id="n0")
                leaves = [n for n in children if not n.endswith(("start-node", "end-node"))]
                if len(leaves) != 2 * run.inputs["n"]:
                    fail(f"fan_out_wf {run.name}: {len(leaves)} leaves, expected {2 * run.inputs['n']}")
                node_ids += leaves
            for node_id in node_ids:
                attempts = sorted(_task_attempts(remote, execution.id, node_id), key=lambda t: t.id.retry_attempt)
                won = [a.id.retry_attempt for a in attempts if a.closure.phase == TaskExecutionPhase.SUCCEEDED]
                if len(won) > 1 or (won and won[0] != attempts[-1].id.retry_attempt):
                    phases = [(a.id.retry_attempt, TaskExecutionPhase.enum_to_string(a.closure.phase)) for a in attempts]
                    fail(f"{run.workflow} {run.name} node {node_id}: attempts {phases}")
                known = {str(a.id.retry_attempt) for a in attempts}
                ran = {a for (ex, node, a) in starts if ex == run.name and node == node_id}
                if ran - known:
                    fail(f"{run.workflow} {run.name} node {node_id}: bodies ran for unknown attempts {ran - known}")

        # 3. Serialized cached bodies never overlap.
        intervals = []
        ends = {(b["execution"], b["dir_node"], b["attempt"]): b["t"] for b in bodies if b["event"] == "end"}
        for key, lines in starts.items():
            first = lines[0]
            if first["task"] != "serialized":
                continue
            end = ends.get(key)
            if end is None:
                # Killed with the server that ran it: gone once the next server was ready.
                end = min((t for t in ready_times if t > first["t"]), default=float("inf"))
            intervals.append((first["t"], end, key))
        intervals.sort()
        for (s1, e1, k1), (s2, e2, k2) in zip(intervals, intervals[1:]):
            if s2 < e1:
                fail(f"serialized bodies overlap: {k1} [{s1:.3f}, {e1:.3f}] and {k2} [{s2:.3f}, {e2:.3f}]")
        if not intervals:
            fail("the serialized task never ran")

        print(
            f"\n{banner}: {len(runs)} executions, {len(bodies) // 2} task bodies, "
            f"{len(intervals)} serialized body run(s), {len(observed.node_succeeded)} nodes seen succeeded "
            f"before a kill, {chaos_seconds:.0f}s of chaos",
            file=sys.stderr,
        )
        assert not problems, f"{banner}\n" + "\n".join(problems) + f"\nserver logs in {base}"
    finally:
        if server.process.poll() is None:
            code = stop_server(server)
            assert code == 0, f"{banner}: flyte-rs exited {code} on SIGTERM:\n{server.log()}"
