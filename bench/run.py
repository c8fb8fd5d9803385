#!/usr/bin/env python3
"""Flyte-RS benchmark runner: drives a `flyte-rs` server through the real flytekit client the way
flyteorg/flyte-benchmarks drives Flyte (`pyflyte run --remote`, then `FlyteRemote` polling), and
measures it.

Run it with the project's venv (flytekit 1.16.31 and flytekitplugins-sleep, from
scripts/setup-python.sh); bench/run.sh builds the release binary and calls this:

    bench/run.sh                                   # every shape
    bench/run.sh --shapes chain-500,fan-out-6000   # some
    .venv/bin/python bench/run.py --binary target/release/flyte-rs --shapes chain-100

By default it starts `<binary> start` on a free port with a temporary data dir (removed at the
end unless --keep), so time to ready and RSS are its own; `--url URL --pid PID` measures a
server that is already running instead.

Shapes (see bench/workflows.py):
  chain-100, chain-500        one @dynamic emits N core-sleep leaves in series (`prev >> cur`)
  fan-out-1000, fan-out-6000  one @dynamic emits N parallel core-sleep leaves
  python-overhead             ten Python no-op tasks in series; each task's command is then run
                              directly (same argv, same inputs) to get the engine's added time
  footprint                   time from start to ready and idle RSS (always measured when this
                              runner starts the server)
  held                        K runs (--held-runs, default 2; the goal: 40) of fanout_wf with
                              1,000 leaves that each sleep 120 s, created back to back: up to
                              K x 1,000 leaves held at once (goal: done in <= 135 s, < 1 GiB RSS)
  swarm                       K runs (--swarm-runs, default 5; the goal: 100) of fanout_wf with
                              2,000 leaves of 1 s (goal: <= 300 s, < 2 GiB RSS)

Per leaf shape: `created→done` is the execution closure's CreateExecution time to its terminal
time (started_at + duration) — the server's own clock; `wall` is from launching `pyflyte run
--remote` to the poll that saw SUCCEEDED (the flyte-benchmarks figure); `dynamic task` is the
Python process that builds the DynamicJobSpec; `after dynamic` is from that process's end to
the execution's end (the engine running N nodes), and `per node` is that over N. Peak RSS is
the highest VmRSS sampled every 20 ms during the shape, and the kernel's VmHWM after resetting
it (/proc/<pid>/clear_refs) at the start of the shape.

Results: JSON in bench/results/ (git-ignored) and markdown tables on stdout. Benchmarks are not
tests: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import typing
import urllib.request
import uuid

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
PROJECT = "flytesnacks"
DOMAIN = "development"
MODULE = "flyte_bench"
READY_PREFIX = "flyte-rs is ready at "

LEAF_SHAPES: dict[str, tuple[str, str, int]] = {
    # name: (workflow, size input, size)
    "chain-100": ("chain_wf", "length", 100),
    "chain-500": ("chain_wf", "length", 500),
    "fan-out-1000": ("fanout_wf", "n", 1000),
    "fan-out-6000": ("fanout_wf", "n", 6000),
    # Size (issue 21 item 3): each < 2 GiB peak RSS; `n0` is the @dynamic task or the task that
    # makes the map task's list, so "engine after it" is the engine running the N nodes/items.
    "fan-out-100000": ("fanout_wf", "n", 100_000),
    "chain-100000": ("chain_wf", "length", 100_000),
    "map-core-1000000": ("map_core_wf", "n", 1_000_000),
    "map-python-100000": ("python_map_wf", "n", 100_000),
    "map-python-10000": ("python_map_wf", "n", 10_000),  # what fits a short measuring window
    "map-core-100000": ("map_core_wf", "n", 100_000),
    "map-core-20000": ("map_core_wf", "n", 20_000),  # where a big in-engine map's memory starts to grow
}
SIZE_SHAPES = {"fan-out-100000", "chain-100000", "map-core-1000000", "map-python-100000",
               "map-python-10000", "map-core-100000", "map-core-20000"}
NO_SECONDS = {"python_map_wf"}  # workflows without a `seconds` input
# Many concurrent runs of one @dynamic fan-out, submitted with CreateExecution (FlyteRemote's
# client) after the warm-up registered fanout_wf: name: (leaves per run, seconds per leaf,
# default runs K, goal seconds from the first CreateExecution to the last run's end, RSS goal MB).
MULTI_SHAPES: dict[str, tuple[int, int, int, float, int]] = {
    "held": (1000, 120, 2, 135.0, 1024),    # K x 1,000 leaves held for 120 s (goal: K = 40)
    "swarm": (2000, 1, 5, 300.0, 2048),     # K x 2,000 leaves of 1 s (goal: K = 100)
}
DEFAULT_SHAPES = [*(s for s in LEAF_SHAPES if s not in SIZE_SHAPES), "python-overhead", "footprint"]  # held/swarm take minutes: ask for them
ALL_SHAPES = [*DEFAULT_SHAPES, *SIZE_SHAPES, *MULTI_SHAPES]  # size shapes take minutes: ask for them

# Flyte's published figures (flyteorg/flyte-benchmarks: README and reference_results.md), seconds.
PUBLISHED = {
    "chain-100": {"flyte_v1": "74", "flyte_v2": "16"},
    "chain-500": {"flyte_v1": "365–366", "flyte_v2": "56–84"},
    "fan-out-1000": {"flyte_v1": "124", "flyte_v2": "29"},
    "fan-out-6000": {"flyte_v1": "699–717", "flyte_v2": "115–356"},
}
GOALS = {"chain-500": 3.0, "fan-out-6000": 10.0}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The server process and its memory.


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / … of /proc/<pid>/status, in kB."""
    out = {}
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Vm") or line.startswith("Threads"):
                key, _, value = line.partition(":")
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def reset_hwm(pid: int) -> bool:
    """Resets the kernel's peak-RSS mark (VmHWM) of the process (Linux ≥ 4.0, own process)."""
    try:
        pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples VmRSS every `interval` seconds in a thread; `peak_kb` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = proc_status(self.pid).get("VmRSS", 0)
            self.peak_kb = max(self.peak_kb, rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, pid: int, process: subprocess.Popen | None, ready_seconds: float | None,
                 log_path: pathlib.Path | None) -> None:
        self.url, self.pid, self.process, self.ready_seconds, self.log_path = url, pid, process, ready_seconds, log_path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].strip("/"))

    @classmethod
    def start(cls, binary: pathlib.Path, base: pathlib.Path, venv: str,
              extra_env: dict[str, str] | None = None) -> "Server":
        port = free_port()
        log_path = base / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_RS_", "FLYTE_", "FLYTECTL_"))}
        env["FLYTE_RS_ENGINE__PYTHON_VENV"] = venv
        env.update(extra_env or {})
        with open(log_path, "w") as log_file:
            started = time.monotonic()
            process = subprocess.Popen(
                [str(binary), "start", "--listen", f"127.0.0.1:{port}", "--data-dir", str(base / "data")],
                stdout=subprocess.PIPE, stderr=log_file, text=True, env=env, cwd=base,
            )
        assert process.stdout is not None
        url = None
        while url is None:
            line = process.stdout.readline()
            if not line:
                raise SystemExit(f"flyte-rs exited ({process.wait()}) before it was ready:\n{log_path.read_text()[-4000:]}")
            if line.startswith(READY_PREFIX):
                url = line[len(READY_PREFIX):].split()[0]
            if time.monotonic() - started > 60:
                process.kill()
                raise SystemExit("flyte-rs printed no ready line within 60 s")
        ready = time.monotonic() - started
        threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore[union-attr]
        return cls(url, process.pid, process, ready, log_path)

    def readyz(self) -> int:
        with urllib.request.urlopen(self.url + "/readyz", timeout=10) as response:
            return response.status

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


# --------------------------------------------------------------------------------------------
# The client side: pyflyte run --remote, FlyteRemote polling.


class Client:
    def __init__(self, server: Server, base: pathlib.Path, max_parallelism: int | None) -> None:
        self.server = server
        self.max_parallelism = max_parallelism
        self.launch_plan_id = None  # fanout_wf's, set by the warm-up (held, swarm)
        self.config = base / "config.yaml"
        self.config.write_text(
            f"admin:\n  endpoint: dns:///127.0.0.1:{server.port}\n  insecure: true\nconsole:\n  endpoint: {server.url}\n"
        )
        # A project directory of its own: what pyflyte run bundles (fast registration).
        self.project = base / "project"
        self.project.mkdir(exist_ok=True)
        shutil.copy(HERE / "workflows.py", self.project / f"{MODULE}.py")
        from flytekit.configuration import Config
        from flytekit.remote import FlyteRemote

        self.remote = FlyteRemote(
            config=Config.auto(config_file=str(self.config)), default_project=PROJECT, default_domain=DOMAIN
        )

    def pyflyte_run(self, entity: str, inputs: dict[str, typing.Any]) -> tuple[str, float]:
        """`pyflyte run --remote flyte_bench.py <entity> --k v …`; returns (name, seconds)."""
        name = "b" + uuid.uuid4().hex[:15]
        exe = pathlib.Path(sys.executable).with_name("pyflyte")
        cmd = [str(exe), "--config", str(self.config), "run", "--remote", "--project", PROJECT, "--domain", DOMAIN,
               "--name", name]
        if self.max_parallelism:
            cmd += ["--max-parallelism", str(self.max_parallelism)]
        cmd += [f"{MODULE}.py", entity]
        for k, v in inputs.items():
            cmd += [f"--{k}", str(v)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_", "FLYTECTL_"))}
        env["FLYTECTL_CONFIG"] = str(self.config)
        started = time.monotonic()
        result = subprocess.run(cmd, cwd=self.project, env=env, capture_output=True, text=True, timeout=900)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"pyflyte run failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return name, seconds

    def poll(self, name: str, interval: float, timeout: float):
        """FlyteRemote polling until terminal; returns (execution, monotonic time it was seen done)."""
        deadline = time.monotonic() + timeout
        while True:
            execution = self.remote.fetch_execution(name=name)
            if execution.is_done:
                return execution, time.monotonic()
            if time.monotonic() > deadline:
                return execution, None
            time.sleep(interval)

    def task_attempts(self, execution_id, node_id: str) -> list:
        from flytekit.models.core.identifier import NodeExecutionIdentifier

        found, token = [], ""
        while True:
            page, token = self.remote.client.list_task_executions_paginated(
                NodeExecutionIdentifier(node_id, execution_id), limit=100, token=token
            )
            found.extend(page)
            if not token:
                return sorted(found, key=lambda t: t.id.retry_attempt)

    def node_executions(self, execution_id) -> dict:
        nodes, token = {}, ""
        while True:
            page, token = self.remote.client.list_node_executions(execution_id, limit=100, token=token)
            nodes.update({n.id.node_id: n for n in page})
            if not token:
                return nodes


def _ts(dt: datetime.datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def phase_name(phase: int) -> str:
    from flytekit.models.core.execution import WorkflowExecutionPhase

    return WorkflowExecutionPhase.enum_to_string(phase)


# --------------------------------------------------------------------------------------------
# Shapes.


def run_leaf_shape(client: Client, server: Server, shape: str, args, work: pathlib.Path) -> dict:
    entity, size_input, size = LEAF_SHAPES[shape]
    result: dict[str, typing.Any] = {"shape": shape, "nodes": size, "sleep_seconds": args.sleep,
                                     "loadavg_before": os.getloadavg()[0]}
    hwm_reset = reset_hwm(server.pid)
    with RssSampler(server.pid) as sampler:
        t0 = time.monotonic()
        inputs = {size_input: size} if entity in NO_SECONDS else {size_input: size, "seconds": args.sleep}
        name, submit = client.pyflyte_run(entity, inputs)
        execution, seen_done = client.poll(name, args.poll, args.timeout)
    status = proc_status(server.pid)
    closure = execution.closure
    result.update(
        execution=name,
        phase=phase_name(closure.phase),
        error=closure.error.message[:500] if closure.error else None,
        submit_s=round(submit, 3),
        wall_s=round(seen_done - t0, 3) if seen_done else None,
        peak_rss_mb=round(sampler.peak_kb / 1024, 1),
        vm_hwm_mb=round(status.get("VmHWM", 0) / 1024, 1) if hwm_reset else None,
        rss_after_mb=round(status.get("VmRSS", 0) / 1024, 1),
        rss_samples=sampler.samples,
    )
    if seen_done is None:
        result["timed_out"] = True
        return result
    created = _ts(closure.created_at)
    started = _ts(closure.started_at)
    done = started + closure.duration.total_seconds()
    result.update(
        created_to_done_s=round(done - created, 3),
        created_to_started_s=round(started - created, 3),
        duration_s=round(closure.duration.total_seconds(), 3),
    )
    # The dynamic task's own Python process (builds the DynamicJobSpec), then the engine.
    attempts = client.task_attempts(execution.id, "n0")
    if attempts and result["phase"] == "SUCCEEDED":
        last = attempts[-1].closure
        dyn_start = _ts(last.started_at)
        dyn_end = dyn_start + last.duration.total_seconds()
        result.update(
            dynamic_task_s=round(last.duration.total_seconds(), 3),
            created_to_dynamic_start_s=round(dyn_start - created, 3),
            after_dynamic_s=round(done - dyn_end, 3),
            per_node_ms=round((done - dyn_end) / size * 1000, 3),
        )
        if shape in SIZE_SHAPES:
            result["api"] = api_timings(client, execution)
        elif args.direct_dynamic:
            node = client.node_executions(execution.id)["n0"]
            seconds, _ = direct_run(client, node, attempts[-1], work / f"direct-{name}")
            result["dynamic_task_direct_s"] = round(seconds, 3)
    return result


def api_timings(client: Client, execution) -> dict:
    """What the console's execution page and FlyteRemote ask for on a big run, timed (ms): the
    execution, the first page of its node executions (and of the @dynamic node's children or
    the map's task executions), one node execution and its data. Each must stay a page or a
    single row, whatever the run's size."""
    raw = client.remote.client
    out: dict[str, typing.Any] = {}

    def timed(key: str, fn):
        t = time.monotonic()
        try:
            value = fn()
        except Exception as e:  # recorded with what was timed before it, not the shape's loss
            raise ApiCallFailed(f"{key}: {type(e).__name__}: {str(e)[:400]}") from e
        out[key] = round((time.monotonic() - t) * 1000, 1)
        return value

    try:
        _api_calls(raw, execution, out, timed)
    except ApiCallFailed as e:
        out["error"] = str(e)
    return out


class ApiCallFailed(Exception):
    """One of api_timings' calls failed (e.g. a response past the client's 20 MB limit)."""


def _api_calls(raw, execution, out: dict, timed) -> None:
    from flytekit.models.core.identifier import NodeExecutionIdentifier

    timed("get_execution_ms", lambda: raw.get_execution(execution.id))
    timed("get_execution_data_ms", lambda: raw.get_execution_data(execution.id))
    page, token = timed("list_node_executions_page_ms", lambda: raw.list_node_executions(execution.id, limit=100))
    out["top_level_nodes"] = len(page)
    if token:
        timed("list_node_executions_page2_ms", lambda: raw.list_node_executions(execution.id, limit=100, token=token))
    node_ids = [n.id.node_id for n in page]
    # The node that holds the N items: the @dynamic task (its children) or the map task.
    big = "n0" if "n1" not in node_ids else "n1"
    nid = NodeExecutionIdentifier(big, execution.id)
    node = timed("get_node_execution_ms", lambda: raw.get_node_execution(nid))
    out["big_node_is_parent"] = bool(node.metadata.is_parent_node)
    timed("get_node_execution_data_ms", lambda: raw.get_node_execution_data(nid))
    if node.metadata.is_parent_node:
        children, ctoken = timed("list_children_page_ms", lambda: raw.list_node_executions(
            execution.id, limit=100, unique_parent_id=big))
        out["children_page"] = len(children)
        if ctoken:
            timed("list_children_page2_ms", lambda: raw.list_node_executions(
                execution.id, limit=100, unique_parent_id=big, token=ctoken))
    attempts, _ = timed("list_task_executions_page_ms", lambda: raw.list_task_executions_paginated(nid, limit=100))
    if attempts:
        timed("get_task_execution_ms", lambda: raw.get_task_execution(attempts[-1].id))
        out["task_execution_external_resources"] = len(attempts[-1].closure.metadata.external_resources or [])


def run_multi_shape(client: Client, server: Server, shape: str, args, runs: int) -> dict:
    """K runs of fanout_wf(n, seconds) at once: K CreateExecution calls back to back (the launch
    plan the warm-up registered, max_parallelism as --max-parallelism), then polls every run
    with GetExecution until all are terminal. Times are the server's own: first created_at to
    the last run's end (started_at + duration)."""
    from flytekit.models import literals as L
    from flytekit.models.execution import ExecutionMetadata, ExecutionSpec

    leaves, seconds, _, goal_s, goal_mb = MULTI_SHAPES[shape]
    lp_id = client.launch_plan_id
    if lp_id is None:
        raise RuntimeError("held/swarm create executions of the launch plan the warm-up registers: drop --no-warmup")
    result: dict[str, typing.Any] = {"shape": shape, "runs": runs, "leaves_per_run": leaves, "sleep_seconds": seconds,
                                     "nodes": runs * leaves, "goal_s": goal_s, "goal_rss_mb": goal_mb,
                                     "loadavg_before": os.getloadavg()[0],
                                     "rss_before_mb": round(proc_status(server.pid).get("VmRSS", 0) / 1024, 1)}
    inputs = L.LiteralMap({
        "n": L.Literal(scalar=L.Scalar(primitive=L.Primitive(integer=leaves))),
        "seconds": L.Literal(scalar=L.Scalar(primitive=L.Primitive(integer=seconds))),
    })
    raw = client.remote.client
    hwm_reset = reset_hwm(server.pid)
    names, create_s = [], []
    with RssSampler(server.pid, interval=0.1) as sampler:
        t0 = time.monotonic()
        for _ in range(runs):
            name = "m" + uuid.uuid4().hex[:15]
            spec = ExecutionSpec(lp_id, ExecutionMetadata(ExecutionMetadata.ExecutionMode.MANUAL, "bench", 0),
                                 max_parallelism=args.max_parallelism or None)
            c0 = time.monotonic()
            raw.create_execution(PROJECT, DOMAIN, name, spec, inputs)
            create_s.append(time.monotonic() - c0)
            names.append(name)
        submitted = time.monotonic() - t0
        pending, done_execs = set(names), {}
        deadline = t0 + args.timeout
        from flytekit.models.core.identifier import WorkflowExecutionIdentifier
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                e = raw.get_execution(WorkflowExecutionIdentifier(PROJECT, DOMAIN, name))
                if e.closure.phase in (4, 5, 6, 7, 8, 9):  # SUCCEEDED … ABORTED/TIMED_OUT
                    done_execs[name] = e
                    pending.discard(name)
            time.sleep(max(args.poll, 0.5))
        wall = time.monotonic() - t0
    status = proc_status(server.pid)
    phases: dict[str, int] = {}
    created, ends, per_run = [], [], []
    for e in done_execs.values():
        ph = phase_name(e.closure.phase)
        phases[ph] = phases.get(ph, 0) + 1
        c = _ts(e.closure.created_at)
        end = _ts(e.closure.started_at) + e.closure.duration.total_seconds()
        created.append(c)
        ends.append(end)
        per_run.append(end - c)
    result.update(
        phase=",".join(f"{k}x{v}" for k, v in sorted(phases.items())) + (f",PENDINGx{len(pending)}" if pending else ""),
        submit_s=round(submitted, 3),
        create_execution_ms_max=round(max(create_s) * 1000, 1),
        wall_s=round(wall, 3),
        peak_rss_mb=round(sampler.peak_kb / 1024, 1),
        vm_hwm_mb=round(status.get("VmHWM", 0) / 1024, 1) if hwm_reset else None,
        rss_after_mb=round(status.get("VmRSS", 0) / 1024, 1),
    )
    if created:
        result.update(
            first_created_to_last_done_s=round(max(ends) - min(created), 3),
            per_run_created_to_done_s=[round(min(per_run), 3), round(statistics.median(per_run), 3), round(max(per_run), 3)],
            over_sleep_s=round(max(ends) - min(created) - seconds, 3),
        )
        # When each run's @dynamic task (a Python process, bounded by engine.max_concurrent_tasks)
        # ended: the leaves of a run can only start after it, so its spread bounds the shape.
        dyn_ends = []
        for e in done_execs.values():
            try:
                attempts = client.task_attempts(e.id, "n0")
            except Exception:  # noqa: BLE001
                continue
            if attempts:
                a = attempts[-1].closure
                dyn_ends.append(_ts(a.started_at) + a.duration.total_seconds() - min(created))
        if dyn_ends:
            result["dynamic_task_end_after_first_create_s"] = [round(min(dyn_ends), 3), round(max(dyn_ends), 3)]
            result["last_dynamic_end_to_last_done_s"] = round(max(ends) - min(created) - max(dyn_ends), 3)
    if pending:
        result["timed_out"] = sorted(pending)
    return result


def substitute(args: list[str], values: dict[str, str]) -> list[str]:
    out = []
    for a in args:
        for k, v in values.items():
            a = a.replace(k, v)
        if re.search(r"\{\{\s*\.", a):
            raise RuntimeError(f"unsubstituted template variable in {a!r}")
        out.append(a)
    return out


def unwrap_fast_execute(argv: list[str], cwd: pathlib.Path, env: dict[str, str]) -> list[str]:
    """`pyflyte-fast-execute --additional-distribution D --dest-dir X -- <cmd>` becomes <cmd>
    with the bundle unpacked in `cwd` beforehand, as the engine's local backend runs it
    (engine.unpack_code_bundles), so the comparison is with the same `pyflyte-execute`."""
    if not argv or pathlib.Path(argv[0]).name != "pyflyte-fast-execute" or "--" not in argv:
        return argv
    opts, cmd = argv[1:argv.index("--")], argv[argv.index("--") + 1:]
    dist = opts[opts.index("--additional-distribution") + 1]
    with tarfile.open(dist) as bundle:
        bundle.extractall(cwd, filter="data")
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{cwd}" if env.get("PYTHONPATH") else str(cwd)
    i = cmd.index("--resolver")
    return cmd[:i] + ["--dynamic-addl-distro", dist, "--dynamic-dest-dir", str(cwd)] + cmd[i:]


def direct_run(client: Client, node, attempt, out: pathlib.Path) -> tuple[float, list[str]]:
    """Runs a task attempt's command directly, outside the engine: the task template's args
    (what flytekit registered: pyflyte-fast-execute … pyflyte-execute …) with the node's own
    inputs and a fresh output prefix, from this venv, the code bundle unpacked first as the
    engine does (the timed part is the `pyflyte-execute` process). Returns (seconds, argv)."""
    from flytekit.models.core.identifier import Identifier

    task_id = attempt.id.task_id
    task = client.remote.client.get_task(
        Identifier(task_id.resource_type, task_id.project, task_id.domain, task_id.name, task_id.version)
    )
    template_args = list(task.closure.compiled_task.template.container.args)
    (out / "cwd").mkdir(parents=True, exist_ok=True)
    argv = substitute(
        template_args,
        {
            "{{.input}}": node.input_uri,
            "{{.Input}}": node.input_uri,
            "{{.outputPrefix}}": f"file://{out}/outputs",
            "{{.rawOutputDataPrefix}}": str(out / "raw"),
            "{{.checkpointOutputPrefix}}": str(out / "raw" / "_flytecheckpoints"),
            "{{.prevCheckpointPrefix}}": '""',
        },
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_", "FLYTECTL_"))}
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = sys.prefix
    argv = unwrap_fast_execute(argv, out / "cwd", env)
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=out / "cwd", env=env, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"direct run failed:\n{' '.join(argv)}\n{proc.stderr[-3000:]}")
    return seconds, argv


def run_python_overhead(client: Client, server: Server, args, work: pathlib.Path) -> dict:
    """Ten Python tasks in series through the engine, then each task's command run directly."""
    result: dict[str, typing.Any] = {"shape": "python-overhead", "nodes": 10, "loadavg_before": os.getloadavg()[0]}
    t0 = time.monotonic()
    name, submit = client.pyflyte_run("python_chain_wf", {"x": 0})
    execution, seen_done = client.poll(name, args.poll, args.timeout)
    result.update(execution=name, phase=phase_name(execution.closure.phase), submit_s=round(submit, 3),
                  wall_s=round(seen_done - t0, 3) if seen_done else None)
    if phase_name(execution.closure.phase) != "SUCCEEDED":
        result["error"] = execution.closure.error.message[:500] if execution.closure.error else None
        return result
    closure = execution.closure
    created = _ts(closure.created_at)
    done = _ts(closure.started_at) + closure.duration.total_seconds()
    nodes = client.node_executions(execution.id)
    attempt_s, node_s, gaps_s, direct_s = [], [], [], []
    prev_end = None
    for i in range(10):
        node = nodes[f"n{i}"]
        (attempt,) = client.task_attempts(execution.id, f"n{i}")
        a_start = _ts(attempt.closure.started_at)
        a_end = a_start + attempt.closure.duration.total_seconds()
        attempt_s.append(attempt.closure.duration.total_seconds())
        node_s.append(node.closure.duration.total_seconds())
        if prev_end is not None:
            gaps_s.append(a_start - prev_end)  # upstream process exit -> downstream process start
        prev_end = a_end
        seconds, argv = direct_run(client, node, attempt, work / f"direct-{i}")
        direct_s.append(seconds)
        if i == 0:
            result["direct_command"] = argv
    exec_s = done - created
    result.update(
        created_to_done_s=round(exec_s, 3),
        direct_mean_s=round(statistics.mean(direct_s), 3),
        direct_median_s=round(statistics.median(direct_s), 3),
        attempt_mean_s=round(statistics.mean(attempt_s), 3),
        node_mean_s=round(statistics.mean(node_s), 3),
        gap_mean_ms=round(statistics.mean(gaps_s) * 1000, 1) if gaps_s else None,
        per_task_total_s=round(exec_s / 10, 3),
        # What the engine adds per task: the execution's time per task minus the same
        # command run directly (includes the noise of two different process runs) …
        engine_added_per_task_ms=round((exec_s / 10 - statistics.median(direct_s)) * 1000, 1),
        # … and the engine's time outside the task processes (CreateExecution to done minus
        # the attempts' own start→exit time), per task: no process noise in it.
        engine_outside_process_per_task_ms=round((exec_s - sum(attempt_s)) / 10 * 1000, 2),
        attempt_minus_direct_ms=round((statistics.mean(attempt_s) - statistics.mean(direct_s)) * 1000, 1),
    )
    return result


# --------------------------------------------------------------------------------------------
# Report.


def machine() -> dict:
    info: dict[str, typing.Any] = {"cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
    try:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", pathlib.Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        info["memory_gib"] = round(mem_kb / 1024 / 1024, 1)
        model = re.search(r"model name\s*:\s*(.+)", pathlib.Path("/proc/cpuinfo").read_text())
        info["cpu"] = model.group(1).strip() if model else platform.processor()
    except (OSError, AttributeError):
        pass
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                        text=True).stdout.strip()
    except OSError:
        pass
    return info


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "—"
    return f"{v}{unit}"


def markdown(report: dict) -> str:
    lines = []
    m = report["machine"]
    lines.append(f"Machine: {m.get('cores')} cores ({m.get('cpu', '?')}), {m.get('memory_gib')} GiB, "
                 f"Linux {m.get('kernel')}; commit {m.get('commit')}; {report['date']}")
    lines.append(f"Command: `{report['command']}`")
    fp = report.get("footprint")
    if fp:
        lines.append("")
        lines.append("| footprint | value |")
        lines.append("|---|---|")
        lines.append(f"| start to ready | {fmt(fp.get('ready_s'), ' s')} |")
        lines.append(f"| idle RSS after start | {fmt(fp.get('idle_rss_mb'), ' MB')} |")
        lines.append(f"| idle RSS after the shapes | {fmt(fp.get('idle_rss_after_mb'), ' MB')} |")
    leaf = [r for r in report["results"] if r["shape"] in LEAF_SHAPES]
    if leaf:
        lines.append("")
        lines.append("| shape | phase | CreateExecution→SUCCEEDED | dynamic task (Python) | same, run directly | engine after it | "
                     "per node | pyflyte run | wall (run + poll) | peak RSS | Flyte v1 | Flyte 2 | goal |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in leaf:
            pub = PUBLISHED.get(r["shape"], {})
            goal = GOALS.get(r["shape"])
            lines.append(
                f"| {r['shape']} | {r['phase']} | {fmt(r.get('created_to_done_s'), ' s')} | "
                f"{fmt(r.get('dynamic_task_s'), ' s')} | {fmt(r.get('dynamic_task_direct_s'), ' s')} | "
                f"{fmt(r.get('after_dynamic_s'), ' s')} | "
                f"{fmt(r.get('per_node_ms'), ' ms')} | {fmt(r.get('submit_s'), ' s')} | {fmt(r.get('wall_s'), ' s')} | "
                f"{fmt(r.get('peak_rss_mb'), ' MB')} | {pub.get('flyte_v1', '—')} s | {pub.get('flyte_v2', '—')} s | "
                f"{'≤ ' + str(goal) + ' s' if goal else '—'} |"
            )
    multi = [r for r in report["results"] if r["shape"] in MULTI_SHAPES]
    if multi:
        lines.append("")
        lines.append("| shape | runs × leaves | phases | first CreateExecution→last done | per run (min/median/max) | "
                     "@dynamic tasks ended (first/last) | last dynamic end→last done | "
                     "K CreateExecution calls | wall (submit + poll) | peak RSS | RSS after | goal |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in multi:
            pr = r.get("per_run_created_to_done_s")
            lines.append(
                f"| {r['shape']} | {r.get('runs')} × {r.get('leaves_per_run')} ({r.get('sleep_seconds')} s) | {r.get('phase')} | "
                f"{fmt(r.get('first_created_to_last_done_s'), ' s')} | {'/'.join(map(str, pr)) + ' s' if pr else '—'} | "
                f"{'/'.join(map(str, r['dynamic_task_end_after_first_create_s'])) + ' s' if r.get('dynamic_task_end_after_first_create_s') else '—'} | "
                f"{fmt(r.get('last_dynamic_end_to_last_done_s'), ' s')} | "
                f"{fmt(r.get('submit_s'), ' s')} | {fmt(r.get('wall_s'), ' s')} | {fmt(r.get('peak_rss_mb'), ' MB')} | "
                f"{fmt(r.get('rss_after_mb'), ' MB')} | ≤ {r.get('goal_s')} s, < {r.get('goal_rss_mb')} MB |"
            )
    py = [r for r in report["results"] if r["shape"] == "python-overhead"]
    for r in py:
        lines.append("")
        lines.append("| Python task overhead (10 no-op tasks in series) | value |")
        lines.append("|---|---|")
        lines.append(f"| phase | {r['phase']} |")
        lines.append(f"| CreateExecution→SUCCEEDED | {fmt(r.get('created_to_done_s'), ' s')} |")
        lines.append(f"| per task, through the engine | {fmt(r.get('per_task_total_s'), ' s')} |")
        lines.append(f"| same command run directly (mean / median) | {fmt(r.get('direct_mean_s'), ' s')} / "
                     f"{fmt(r.get('direct_median_s'), ' s')} |")
        lines.append(f"| engine-measured attempt (process start→exit) | {fmt(r.get('attempt_mean_s'), ' s')} |")
        lines.append(f"| upstream exit → downstream start | {fmt(r.get('gap_mean_ms'), ' ms')} |")
        lines.append(f"| per task through the engine − direct median | {fmt(r.get('engine_added_per_task_ms'), ' ms')} |")
        lines.append(f"| **engine time outside the task process, per task** | "
                     f"{fmt(r.get('engine_outside_process_per_task_ms'), ' ms')} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(DEFAULT_SHAPES),
                    help=f"comma-separated, from: {', '.join(ALL_SHAPES)} (default: all but held and swarm)")
    ap.add_argument("--binary", type=pathlib.Path, default=REPO / "target" / "release" / "flyte-rs")
    ap.add_argument("--url", help="measure a running server instead of starting one (with --pid for RSS)")
    ap.add_argument("--pid", type=int, help="the running server's pid (with --url)")
    ap.add_argument("--sleep", type=int, default=0, help="seconds each core-sleep leaf sleeps (flyte-benchmarks: 0)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each leaf shape")
    ap.add_argument("--max-parallelism", type=int, default=1000,
                    help="pyflyte run --max-parallelism (flyte-benchmarks: 1000; 0 = the server's default)")
    ap.add_argument("--poll", type=float, default=0.1, help="FlyteRemote poll interval, seconds")
    ap.add_argument("--timeout", type=float, default=1800, help="per-execution timeout, seconds")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the warm-up run (a 10-leaf fan-out: registration and the code bundle upload)")
    ap.add_argument("--no-direct-dynamic", dest="direct_dynamic", action="store_false",
                    help="do not re-run each shape's dynamic task directly (for comparison) afterwards")
    ap.add_argument("--held-runs", type=int, default=MULTI_SHAPES["held"][2],
                    help="K for the held shape: K concurrent runs x 1,000 leaves of 120 s (the goal: 40)")
    ap.add_argument("--swarm-runs", type=int, default=MULTI_SHAPES["swarm"][2],
                    help="K for the swarm shape: K concurrent runs x 2,000 leaves of 1 s (the goal: 100)")
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for the started server, e.g. FLYTE_RS_ENGINE__MAX_CONCURRENT_TASKS=40 (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (server log, data)")
    ap.add_argument("--out", type=pathlib.Path, default=HERE / "results")
    args = ap.parse_args()

    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in ALL_SHAPES]
    if unknown:
        ap.error(f"unknown shapes {unknown}; pick from {ALL_SHAPES}")

    base = pathlib.Path(tempfile.mkdtemp(prefix="flyte-rs-bench-"))
    report: dict[str, typing.Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([pathlib.Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine(),
        "shapes": shapes,
        "settings": {"sleep_seconds": args.sleep, "max_parallelism": args.max_parallelism, "poll_seconds": args.poll},
        "results": [],
    }
    server: Server
    if args.url:
        if not args.pid:
            ap.error("--url needs --pid (for RSS)")
        server = Server(args.url.rstrip("/"), args.pid, None, None, None)
    else:
        binary = args.binary.resolve()
        if not binary.is_file():
            ap.error(f"{binary} not found: cargo build --release -p flyte-rs (or bench/run.sh)")
        report["binary"] = str(binary)
        log(f"starting {binary} (data in {base / 'data'})")
        extra_env = dict(kv.split("=", 1) for kv in args.server_env)
        report["server_env"] = extra_env
        server = Server.start(binary, base, sys.prefix, extra_env)
        log(f"ready at {server.url} in {server.ready_seconds:.3f} s (pid {server.pid})")
        assert server.readyz() == 200
        time.sleep(1.0)
        report["footprint"] = {
            "ready_s": round(server.ready_seconds or 0, 3),
            "idle_rss_mb": round(proc_status(server.pid).get("VmRSS", 0) / 1024, 1),
        }
    rc = 0
    try:
        client = Client(server, base, args.max_parallelism or None)
        leaf_or_py = [s for s in shapes if s != "footprint"]
        if leaf_or_py and not args.no_warmup:
            log("warm-up: a 10-leaf fan-out (registers the workflows and uploads the code bundle)")
            name, secs = client.pyflyte_run("fanout_wf", {"n": 10, "seconds": 0})
            execution, _ = client.poll(name, args.poll, args.timeout)
            log(f"warm-up {phase_name(execution.closure.phase)} (pyflyte run {secs:.1f} s)")
            client.launch_plan_id = execution.spec.launch_plan
        for shape in leaf_or_py:
            for i in range(args.repeat if shape in LEAF_SHAPES else 1):
                log(f"{shape} (run {i + 1})")
                try:
                    if shape in LEAF_SHAPES:
                        r = run_leaf_shape(client, server, shape, args, base)
                    elif shape in MULTI_SHAPES:
                        r = run_multi_shape(client, server, shape, args,
                                            args.held_runs if shape == "held" else args.swarm_runs)
                    else:
                        r = run_python_overhead(client, server, args, base)
                except Exception as e:  # a shape that breaks is reported, the others still run
                    r = {"shape": shape, "phase": "DRIVER_ERROR", "error": f"{type(e).__name__}: {e}"[:2000]}
                    rc = 1
                log(json.dumps({k: v for k, v in r.items() if k != "direct_command"}))
                report["results"].append(r)
        if "footprint" in report:
            time.sleep(2.0)
            report["footprint"]["idle_rss_after_mb"] = round(proc_status(server.pid).get("VmRSS", 0) / 1024, 1)
            report["footprint"]["vm_hwm_total_mb"] = round(proc_status(server.pid).get("VmHWM", 0) / 1024, 1)
    finally:
        code = server.stop()
        if code not in (None, 0):
            log(f"flyte-rs exited {code} on SIGTERM")
        if server.log_path and args.keep:
            log(f"server log: {server.log_path}")
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(markdown(report))
    print(f"\nresults: {path}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
