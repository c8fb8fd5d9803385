"""Engine replicas: three `flyte-rs start` processes on one PostgreSQL and one blob directory.

Each replica has its own data dir (task processes, logs) and serves the whole API; each
running execution is owned by one replica through a lease (docs/architecture.md, "Ownership
and leases"). The golden examples (registered with the real `pyflyte register`) are launched
through different replicas; a terminate and a gate's signals go through replicas that do not
own the execution; then replicas are killed with SIGKILL at random and started again. Every
execution must end in its expected phase with its outputs, no succeeded node may have run
again (its task executions: exactly one SUCCEEDED attempt, the last), and a dead replica's
executions must have been taken over by another.

Needs PostgreSQL: FLYTERS_TEST_POSTGRES_URL (scripts/test.sh sets it from scripts/postgres.sh).
Unset, the test fails. Knobs: REPLICAS_SEED (random kills, printed), REPLICAS_KILLS (default 3).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from conftest import DOMAIN, EXAMPLES_PROJECT, PROJECT, Server, describe, pyflyte, start_server, stop_server

from flytekit.models.core.execution import NodeExecutionPhase, TaskExecutionPhase, WorkflowExecutionPhase  # noqa: E402
from flytekit.models.core.identifier import NodeExecutionIdentifier  # noqa: E402

POSTGRES_ENV = "FLYTERS_TEST_POSTGRES_URL"
TERMINAL = {
    WorkflowExecutionPhase.SUCCEEDED,
    WorkflowExecutionPhase.FAILED,
    WorkflowExecutionPhase.ABORTED,
    WorkflowExecutionPhase.TIMED_OUT,
}
MODULES = ["examples/chains.py", "examples/subworkflows.py", "examples/launch_plans.py", "examples/gates.py"]
TAKEOVER_LOG = "taking the execution over"


def _with_database(url: str, db: str) -> str:
    base, _, params = url.partition("?")
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{db}" + (f"?{params}" if params else "")


def _drop_database(admin_url: str, db: str) -> None:
    """Best effort (psql from scripts/postgres.sh's packages): test databases do not pile up."""
    psql = shutil.which("psql")
    if psql:
        subprocess.run(
            [psql, admin_url, "-q", "-c", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'],
            capture_output=True, timeout=60,
        )


def _remote(server: Server):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    return FlyteRemote(
        config=Config.auto(config_file=str(server.config_path)), default_project=PROJECT, default_domain=DOMAIN
    )


def _nodes(remote, execution_id) -> dict:
    nodes, token = {}, ""
    while True:
        page, token = remote.client.list_node_executions(execution_id, limit=100, token=token)
        nodes.update({n.id.node_id: n for n in page})
        if not token:
            return nodes


def _attempts(remote, execution_id, node_id: str) -> list:
    found, token = [], ""
    while True:
        page, token = remote.client.list_task_executions_paginated(
            NodeExecutionIdentifier(node_id, execution_id), limit=100, token=token
        )
        found.extend(page)
        if not token:
            return found


class Replicas:
    def __init__(self, base, db_url: str) -> None:
        self.base = base
        self.blobs = base / "blobs"
        self.blobs.mkdir()
        self.env = {
            "FLYTE_RS_STORAGE__METADATA_URL": db_url,
            "FLYTE_RS_STORAGE__BLOB_URL": f"file://{self.blobs}",
            # Signed upload URLs made by one replica are checked by whichever gets the PUT.
            "FLYTE_RS_ADMIN__SIGNING_KEY": "replica-test-signing-key-0123456789",
        }
        self.servers: list[Server] = []
        self.ports: list[int] = []
        self.starts = 0

    def start(self, i: int, port: int = 0) -> Server:
        self.starts += 1
        srv = start_server(
            self.base / f"r{i}", self.base / f"r{i}" / "data", port=port, log_name=f"server-{self.starts}.log",
            env=self.env,
        )
        if i < len(self.servers):
            self.servers[i] = srv
        else:
            self.servers.append(srv)
            self.ports.append(srv.port)
        return srv

    def logs(self) -> str:
        return "".join(p.read_text() for p in sorted(self.base.glob("r*/server-*.log")))


def _wait_terminal(remotes, name: str, timeout: float):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for remote in remotes():
            try:
                last = remote.fetch_execution(name=name)
            except Exception:  # a replica being restarted
                continue
            if last.closure.phase in TERMINAL:
                return last
            break
        time.sleep(1)
    return last


def test_replicas_share_postgres_and_take_over_after_sigkill(tmp_path_factory):
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        pytest.fail(f"{POSTGRES_ENV} is not set: start PostgreSQL with scripts/postgres.sh (scripts/test.sh does)")
    seed = int(os.environ.get("REPLICAS_SEED") or random.SystemRandom().randrange(2**32))
    kills = int(os.environ.get("REPLICAS_KILLS") or 3)
    print(f"\nreplicas: REPLICAS_SEED={seed} REPLICAS_KILLS={kills}", file=sys.stderr)
    rng = random.Random(seed)

    base = tmp_path_factory.mktemp("replicas")
    db_name = "flyte_replicas_" + uuid.uuid4().hex[:12]
    db_url = _with_database(admin_url, db_name)
    rs = Replicas(base, db_url)
    for i in range(3):
        rs.start(i)
    alive = [True, True, True]

    def remotes():
        order = [i for i in range(3) if alive[i]]
        rng.shuffle(order)
        return [_remote(rs.servers[i]) for i in order]

    try:
        version = "replicas-" + uuid.uuid4().hex[:8]
        reg = pyflyte(
            rs.servers[0], "register", "--project", PROJECT, "--domain", DOMAIN, "--version", version, *MODULES,
            cwd=EXAMPLES_PROJECT,
        )
        assert reg.returncode == 0, describe(reg, rs.servers[0])

        ok = WorkflowExecutionPhase.SUCCEEDED
        # (replica that launches, workflow, inputs, expected phase, expected output check)
        plan = []
        for k in range(6):
            x = rng.randrange(1000)
            # 4 s steps: still running when replica 0 is killed (with warm Python workers a
            # chain of 1 s steps could end first, and then nothing was left to take over).
            plan.append((k % 3, "examples.chains.chain3_wf", {"x": x, "delay": 4.0}, ok, {"o0": x + 6}))
        for k in range(2):
            plan.append((k % 3, "examples.subworkflows.parent_wf", {"x": k}, ok, {"o0": k + 6}))
            plan.append(((k + 1) % 3, "examples.launch_plans.calls_lp_wf", {"x": k + 1}, ok, {"o0": 3 * (k + 1)}))
        plan.append((2, "examples.gates.approval_wf", {"x": 5}, ok, {"o0": None}))
        plan.append((1, "examples.chains.chain10_wf", {"x": 0, "delay": 2.0}, WorkflowExecutionPhase.ABORTED, {}))

        runs = []
        for replica, wf, inputs, phase, outputs in plan:
            remote = _remote(rs.servers[replica])
            entity = remote.fetch_workflow(PROJECT, DOMAIN, wf, version)
            name = "r" + uuid.uuid4().hex[:12]
            remote.execute(entity, inputs=inputs, execution_name=name, wait=False)
            runs.append((name, wf, phase, outputs, replica))

        # Kill replica 0 while its executions run: the others must take them over.
        time.sleep(2)
        rs.servers[0].process.kill()
        rs.servers[0].process.wait(timeout=10)
        alive[0] = False
        print("replicas: SIGKILL replica 0", file=sys.stderr)

        # Terminate through a replica that does not own the execution (it was launched on 1).
        to_abort = runs[-1][0]
        other = _remote(rs.servers[2])
        other.terminate(other.fetch_execution(name=to_abort), cause="stopped through another replica")
        aborted = _wait_terminal(remotes, to_abort, 60)
        assert aborted is not None and aborted.closure.phase == WorkflowExecutionPhase.ABORTED, aborted
        time.sleep(3)  # an owner that did not stop would start more steps meanwhile
        nodes = _nodes(other, aborted.id)
        running = [n for n, v in nodes.items() if v.closure.phase in (NodeExecutionPhase.RUNNING, NodeExecutionPhase.QUEUED)]
        succeeded = [n for n, v in nodes.items() if v.closure.phase == NodeExecutionPhase.SUCCEEDED]
        assert not running, f"nodes still running after the terminate: {running}"
        assert len(succeeded) < 10, "the terminated execution ran to the end"

        rs.start(0, port=rs.ports[0])
        alive[0] = True

        # SIGKILL random replicas (never the last one alive) and start them again on their ports.
        approved = False
        for _ in range(kills):
            time.sleep(rng.uniform(0.5, 4.0))
            victim = rng.choice([i for i in range(3) if alive[i]])
            rs.servers[victim].process.kill()
            rs.servers[victim].process.wait(timeout=10)
            alive[victim] = False
            print(f"replicas: SIGKILL replica {victim}", file=sys.stderr)
            if not approved:
                # The gate's signals through whichever replica is up (probably not the owner).
                try:
                    remote = remotes()[0]
                    signals = {s.id.signal_id for s in remote.list_signals(runs[-2][0])}
                    if {"approve-value", "note"} <= signals:
                        remote.approve("approve-value", runs[-2][0])
                        remote.set_signal("note", runs[-2][0], "from a replica")
                        approved = True
                except Exception as e:  # noqa: BLE001 - retried after the next kill
                    print(f"replicas: signals not set yet: {e}", file=sys.stderr)
            time.sleep(rng.uniform(0.5, 3.0))
            rs.start(victim, port=rs.ports[victim])
            alive[victim] = True
        if not approved:
            deadline = time.monotonic() + 60
            while not approved and time.monotonic() < deadline:
                remote = remotes()[0]
                signals = {s.id.signal_id for s in remote.list_signals(runs[-2][0])}
                if {"approve-value", "note"} <= signals:
                    remote.approve("approve-value", runs[-2][0])
                    remote.set_signal("note", runs[-2][0], "from a replica")
                    approved = True
                else:
                    time.sleep(1)

        problems = []
        for name, wf, phase, outputs, _ in runs:
            ex = _wait_terminal(remotes, name, 150)
            if ex is None or ex.closure.phase != phase:
                problems.append(f"{wf} {name}: phase {ex.closure.phase if ex else None}, expected {phase}")
                continue
            remote = remotes()[0]
            if phase == ok:
                got = remote.client.get_execution_data(ex.id).full_outputs.literals
                for key, value in outputs.items():
                    if value is not None and got[key].scalar.primitive.integer != value:
                        problems.append(f"{wf} {name}: output {key} {got[key]}, expected {value}")
            for node_id, node in _nodes(remote, ex.id).items():
                if node.closure.phase != NodeExecutionPhase.SUCCEEDED:
                    continue
                attempts = _attempts(remote, ex.id, node_id)
                done = [t.id.retry_attempt for t in attempts if t.closure.phase == TaskExecutionPhase.SUCCEEDED]
                if attempts and (len(done) != 1 or done[0] != max(t.id.retry_attempt for t in attempts)):
                    problems.append(f"{wf} {name} node {node_id}: succeeded attempts {done} of {len(attempts)}")
        logs = rs.logs()
        takeovers = logs.count(TAKEOVER_LOG)
        print(f"replicas: {takeovers} takeovers, {rs.starts} starts", file=sys.stderr)
        assert not problems, "\n".join(problems)
        assert takeovers > 0, "no replica took over a dead replica's execution"
        assert "panicked" not in logs
    finally:
        for i in range(3):
            if alive[i] and rs.servers[i].process.poll() is None:
                stop_server(rs.servers[i])
        _drop_database(admin_url, db_name)


class _Watch:
    """Reads a server-sent-events stream in a thread: (event, data) pairs as they come."""

    def __init__(self, url: str) -> None:
        import threading
        import urllib.request

        self.events: list[tuple[str, str]] = []
        self._response = urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "text/event-stream"}))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event, data = "message", ""
        try:
            for raw in self._response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                elif not line:
                    if data or event != "message":
                        self.events.append((event, data))
                    event, data = "message", ""
        except Exception:  # noqa: BLE001 - the stream is closed at the end of the test
            pass

    def wait_for(self, predicate, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.2)
        return None

    def close(self) -> None:
        self._response.close()


def test_a_watch_on_one_replica_follows_executions_another_replica_runs(tmp_path_factory):
    """The console's live list on replica 1 sees an execution replica 0 runs move to SUCCEEDED
    (the list watch has no re-read of its own: before the relay it never heard of it)."""
    import json

    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        pytest.fail(f"{POSTGRES_ENV} is not set: start PostgreSQL with scripts/postgres.sh (scripts/test.sh does)")
    base = tmp_path_factory.mktemp("replicas-live")
    db_name = "flyte_replicas_" + uuid.uuid4().hex[:12]
    rs = Replicas(base, _with_database(admin_url, db_name))
    watches = []
    try:
        runner, watcher = rs.start(0), rs.start(1)
        version = "live-" + uuid.uuid4().hex[:8]
        reg = pyflyte(
            runner, "register", "--project", PROJECT, "--domain", DOMAIN, "--version", version, "examples/chains.py",
            cwd=EXAMPLES_PROJECT,
        )
        assert reg.returncode == 0, describe(reg, runner)

        listing = _Watch(f"{watcher.url}/api/v1/watch/executions/{PROJECT}/{DOMAIN}")
        watches.append(listing)
        assert listing.wait_for(lambda e: e[0] == "ready", 10), listing.events

        remote = _remote(runner)
        name = "live" + uuid.uuid4().hex[:10]
        entity = remote.fetch_workflow(PROJECT, DOMAIN, "examples.chains.chain3_wf", version)
        remote.execute(entity, inputs={"x": 1, "delay": 1.0}, execution_name=name, wait=False)
        # Opened on replica 1 while replica 0 runs it.
        single = _Watch(f"{watcher.url}/api/v1/watch/executions/{PROJECT}/{DOMAIN}/{name}")
        watches.append(single)

        done = remote.wait(remote.fetch_execution(name=name), timeout=120)
        assert done.closure.phase == WorkflowExecutionPhase.SUCCEEDED

        def succeeded(event) -> bool:
            kind, data = event
            body = json.loads(data or "{}")
            return kind == "update" and body.get("name") == name and body.get("phase") == "SUCCEEDED"

        seen = listing.wait_for(succeeded, 30)
        assert seen, f"replica 1's list watch never saw {name} succeed: {listing.events}"
        ended = single.wait_for(lambda e: "SUCCEEDED" in e[1], 30)
        assert ended, f"replica 1's watch of {name} never saw it succeed: {single.events}"
    finally:
        for w in watches:
            w.close()
        for srv in rs.servers:
            stop_server(srv)
        _drop_database(admin_url, db_name)
