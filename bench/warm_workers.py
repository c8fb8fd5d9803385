#!/usr/bin/env python3
"""Warm Python workers (issue 18) against plain processes, side by side in one run.

For each mode (`engine.warm_workers` on, then off) a fresh `flyte-rs start` runs, through the real
flytekit client: one single no-op Python task (the first one of the server: for the pool that
includes starting its template interpreter), then `python_chain100_wf` (a hundred no-op Python
tasks in series). Reported per mode: the execution's created→done time (the server's clock), the
task attempts' mean and median duration (process start → outputs read, the engine's task
execution times), the first attempt, and the pool's template interpreters' memory.

    .venv/bin/python bench/warm_workers.py --binary target/release/flyte-rs

A benchmark, not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (bench/run.py: Server, Client)


def templates_of(server_pid: int) -> list[dict]:
    """The warm template interpreters the server started: pid, RSS and PSS in MiB."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid != server_pid or b"warm_template.py" not in cmdline:
            continue
        rss = pss = 0
        try:
            with open(f"/proc/{entry}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss = int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss = int(line.split()[1])
        except OSError:
            pass
        found.append({"pid": int(entry), "rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1)})
    return found


def attempts_of(client: bench.Client, execution) -> list[float]:
    nodes = client.node_executions(execution.id)
    durations = []
    for node_id in sorted(nodes, key=lambda n: (len(n), n)):
        if not node_id.startswith("n"):
            continue
        for attempt in client.task_attempts(execution.id, node_id):
            durations.append(attempt.closure.duration.total_seconds())
    return durations


def created_to_done(execution) -> float:
    closure = execution.closure
    return bench._ts(closure.started_at) + closure.duration.total_seconds() - bench._ts(closure.created_at)


def measure(mode: str, args, work: pathlib.Path) -> dict:
    base = work / mode
    base.mkdir()
    env = {"FLYTE_RS_ENGINE__WARM_WORKERS": "true" if mode == "warm" else "false"}
    server = bench.Server.start(args.binary, base, args.venv, env)
    try:
        client = bench.Client(server, base, None)
        result: dict = {"mode": mode, "loadavg_before": os.getloadavg()[0]}
        # One task: the server's first Python task (the pool starts its template for it).
        name, _ = client.pyflyte_run("python_chain_wf", {"x": 0})
        execution, _ = client.poll(name, 0.1, args.timeout)
        assert bench.phase_name(execution.closure.phase) == "SUCCEEDED", execution.closure.error
        first = attempts_of(client, execution)
        result["ten_chain"] = {
            "created_to_done_s": round(created_to_done(execution), 3),
            "first_attempt_s": round(first[0], 3),
            "attempt_median_after_first_s": round(statistics.median(first[1:]), 3),
        }
        name, _ = client.pyflyte_run("python_chain100_wf", {"x": 0})
        execution, _ = client.poll(name, 0.1, args.timeout)
        assert bench.phase_name(execution.closure.phase) == "SUCCEEDED", execution.closure.error
        durations = attempts_of(client, execution)
        result["chain100"] = {
            "tasks": len(durations),
            "created_to_done_s": round(created_to_done(execution), 3),
            "attempt_mean_s": round(statistics.mean(durations), 4),
            "attempt_median_s": round(statistics.median(durations), 4),
            "attempt_min_s": round(min(durations), 4),
            "attempt_max_s": round(max(durations), 4),
        }
        if args.map:
            name, _ = client.pyflyte_run("python_map_wf", {"n": args.map})
            execution, _ = client.poll(name, 0.5, args.timeout)
            result["map"] = {
                "items": args.map,
                "phase": bench.phase_name(execution.closure.phase),
                "created_to_done_s": round(created_to_done(execution), 3),
            }
        result["templates"] = templates_of(server.pid)
        result["server_rss_mib"] = round(bench.proc_status(server.pid).get("VmRSS", 0) / 1024, 1)
        result["loadavg_after"] = os.getloadavg()[0]
        return result
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=pathlib.Path, default=bench.REPO / "target" / "release" / "flyte-rs")
    ap.add_argument("--venv", default=str(pathlib.Path(sys.prefix)))
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--map", type=int, default=0, help="also a map task of this many Python no-op items")
    ap.add_argument("--modes", default="warm,plain", help="which of warm,plain to run, in this order")
    args = ap.parse_args()
    args.binary = args.binary.resolve()
    work = pathlib.Path(tempfile.mkdtemp(prefix="flyte-rs-warm-"))
    try:
        results = [measure(mode, args, work) for mode in args.modes.split(",")]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"binary": str(args.binary), "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                      "results": results}, indent=2))
    print()
    if len(results) != 2:
        return
    print("| | warm workers | plain processes |")
    print("|---|---|---|")
    w, p = results
    rows = [
        ("first Python task of the server (attempt)", w["ten_chain"]["first_attempt_s"], p["ten_chain"]["first_attempt_s"]),
        ("no-op task, engine start → outputs (median of 100)", w["chain100"]["attempt_median_s"], p["chain100"]["attempt_median_s"]),
        ("no-op task, mean of 100", w["chain100"]["attempt_mean_s"], p["chain100"]["attempt_mean_s"]),
        ("100 tasks in series, created → done", w["chain100"]["created_to_done_s"], p["chain100"]["created_to_done_s"]),
    ]
    for label, a, b in rows:
        print(f"| {label} | {a} s | {b} s |")
    print(f"| template interpreters (RSS / PSS) | {w['templates']} | - |")


if __name__ == "__main__":
    main()
