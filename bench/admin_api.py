#!/usr/bin/env python3
"""Flyte-RS admin API benchmark (issue 6 item 1 (c)): CreateExecution throughput, GetExecution
latency and ListExecutions / ListNodeExecutions latency (p50/p99) with many executions stored.

    .venv/bin/python bench/admin_api.py --binary target/release/flyte-rs --rows 1000000
    bench/run.sh --admin-api --rows 1000000          # the same, after building the binary

Steps:
 1. starts `flyte-rs start` on a temporary data dir (embedded SQLite), registers bench/workflows.py
    with `pyflyte run --remote` (sleep_wf: one core-sleep node, no process; fanout_wf with 50
    leaves: an execution with node executions to list);
 2. CreateExecution throughput: --creates executions of sleep_wf's launch plan from --threads
    client threads (one gRPC channel each), then waits until all are terminal;
 3. stops the server and seeds the SQLite file up to --rows executions, cloning the terminal
    sleep_wf rows (spec/closure bytes as the server wrote them) under new names with created_at
    spread over the previous 30 days, in batches of 100,000 rows per transaction;
 4. starts the server again on that data dir (time to ready, RSS) and measures, one call at a
    time from one client: GetExecution of random seeded names, ListExecutions (limit 50, newest
    first; also filtered by phase and by launch plan name), ListNodeExecutions (the fan-out's top
    level, and its 50 dynamic children by unique_parent_id), and GetVersion as the floor (the
    Python gRPC client's own cost, no store access).

The client is flytekit's (Python grpcio): each latency includes ~0.2-0.5 ms of Python client
cost, which GetVersion shows. Not a test: nothing runs it in CI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py: Server, Client, proc_status, machine)

PROJECT, DOMAIN = bench.PROJECT, bench.DOMAIN


def pct(samples: list[float]) -> dict:
    s = sorted(samples)
    q = lambda p: s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]  # noqa: E731
    return {"n": len(s), "p50_ms": round(q(50) * 1000, 3), "p99_ms": round(q(99) * 1000, 3),
            "max_ms": round(s[-1] * 1000, 3), "mean_ms": round(statistics.mean(s) * 1000, 3)}


def timed(n: int, fn) -> dict:
    fn()  # one warm call
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return pct(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=pathlib.Path, default=bench.REPO / "target" / "release" / "flyte-rs")
    ap.add_argument("--rows", type=int, default=1_000_000, help="executions stored when measuring reads")
    ap.add_argument("--creates", type=int, default=2000, help="CreateExecution calls for the throughput figure")
    ap.add_argument("--threads", type=int, default=8, help="client threads for CreateExecution")
    ap.add_argument("--samples", type=int, default=500, help="calls per read latency figure")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", type=pathlib.Path, default=bench.HERE / "results")
    args = ap.parse_args()

    from flytekit.clients.friendly import SynchronousFlyteClient
    from flytekit.configuration import PlatformConfig
    from flytekit.models import filters as F
    from flytekit.models import literals as L
    from flytekit.models.admin.common import Sort
    from flytekit.models.core.identifier import NodeExecutionIdentifier, WorkflowExecutionIdentifier
    from flytekit.models.execution import ExecutionMetadata, ExecutionSpec

    base = pathlib.Path(tempfile.mkdtemp(prefix="flyte-rs-admin-bench-"))
    report: dict = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "command": " ".join([pathlib.Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                    "machine": bench.machine(), "settings": vars(args) | {"binary": str(args.binary)}}
    report["settings"] = {k: str(v) for k, v in report["settings"].items()}
    binary = args.binary.resolve()
    server = bench.Server.start(binary, base, sys.prefix)
    bench.log(f"ready at {server.url} (pid {server.pid}), data in {base / 'data'}")
    try:
        client = bench.Client(server, base, 1000)
        name, _ = client.pyflyte_run("sleep_wf", {})
        sleep_exec, _ = client.poll(name, 0.1, 300)
        lp_id = sleep_exec.spec.launch_plan
        fan_name, _ = client.pyflyte_run("fanout_wf", {"n": 50, "seconds": 0})
        fan_exec, _ = client.poll(fan_name, 0.1, 300)
        bench.log(f"registered; sleep_wf {bench.phase_name(sleep_exec.closure.phase)}, "
                  f"fanout_wf(50) {bench.phase_name(fan_exec.closure.phase)}")

        cfg = PlatformConfig(endpoint=f"127.0.0.1:{server.port}", insecure=True)
        inputs = L.LiteralMap({})
        names: list[str] = []
        lat: list[float] = []
        lock = threading.Lock()
        per_thread = args.creates // args.threads

        def creator() -> None:
            c = SynchronousFlyteClient(cfg)
            mine, times = [], []
            for _ in range(per_thread):
                n = "c" + uuid.uuid4().hex[:15]
                spec = ExecutionSpec(lp_id, ExecutionMetadata(ExecutionMetadata.ExecutionMode.MANUAL, "bench", 0))
                t = time.perf_counter()
                c.create_execution(PROJECT, DOMAIN, n, spec, inputs)
                times.append(time.perf_counter() - t)
                mine.append(n)
            with lock:
                names.extend(mine)
                lat.extend(times)

        threads = [threading.Thread(target=creator) for _ in range(args.threads)]
        with bench.RssSampler(server.pid, 0.1) as sampler:
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            create_wall = time.perf_counter() - t0
            raw = SynchronousFlyteClient(cfg)
            # Wait until all are terminal: the engine runs each (one 0 s core-sleep node).
            pending = set(names)
            while pending and time.perf_counter() - t0 < 600:
                for n in list(pending):
                    if raw.get_execution(WorkflowExecutionIdentifier(PROJECT, DOMAIN, n)).closure.phase in (4, 5, 6, 7, 8, 9):
                        pending.discard(n)
                if pending:
                    time.sleep(0.5)
            all_done = time.perf_counter() - t0
        report["create_execution"] = {
            "calls": len(names), "threads": args.threads, "wall_s": round(create_wall, 3),
            "per_second": round(len(names) / create_wall, 1), "latency": pct(lat),
            "all_terminal_after_s": round(all_done, 3), "not_terminal": len(pending),
            "peak_rss_mb": round(sampler.peak_kb / 1024, 1),
        }
        bench.log(json.dumps(report["create_execution"]))
    finally:
        server.stop()

    # Seed the store up to --rows executions, cloning the terminal sleep_wf rows.
    db = base / "data" / "flyte.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous=OFF")
    cols = [r[1] for r in con.execute("PRAGMA table_info(executions)") if r[1] != "id"]
    templates = con.execute(
        f"SELECT {','.join(cols)} FROM executions WHERE phase='SUCCEEDED' AND launch_plan_name=? AND parent_execution IS NULL",
        (lp_id.name,)).fetchall()
    have = con.execute("SELECT count(*) FROM executions").fetchone()[0]
    to_add = max(0, args.rows - have)
    i_name, i_created, i_updated, i_started = (cols.index(c) for c in ("name", "created_at", "updated_at", "started_at"))
    i_inputs, i_user_inputs = cols.index("inputs_uri"), cols.index("user_inputs_uri")
    now_us = int(time.time() * 1e6)
    span_us = 30 * 86400 * 10**6
    bench.log(f"seeding {to_add} executions ({len(templates)} templates) into {db}")
    t0 = time.perf_counter()
    sql = f"INSERT INTO executions ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
    batch = 100_000
    seeded: list[str] = []
    for start in range(0, to_add, batch):
        rows = []
        for i in range(start, min(to_add, start + batch)):
            r = list(templates[i % len(templates)])
            n = f"s{i:08d}"
            created = now_us - span_us + i * span_us // max(1, to_add)
            r[i_name] = n
            r[i_created], r[i_started], r[i_updated] = created, created + 1000, created + 2_000_000
            r[i_inputs] = r[i_inputs].replace(r[i_inputs].split("/")[-2], n) if r[i_inputs] else r[i_inputs]
            r[i_user_inputs] = r[i_user_inputs].replace(r[i_user_inputs].split("/")[-2], n) if r[i_user_inputs] else r[i_user_inputs]
            rows.append(r)
        with con:
            con.executemany(sql, rows)
        if start % 500_000 == 0:
            bench.log(f"  {start + len(rows)} rows, {time.perf_counter() - t0:.1f} s")
    con.close()
    seed_s = time.perf_counter() - t0
    total = sqlite3.connect(db).execute("SELECT count(*) FROM executions").fetchone()[0]
    report["seed"] = {"added": to_add, "executions_stored": total, "seconds": round(seed_s, 1),
                      "rows_per_second": round(to_add / seed_s) if seed_s else None,
                      "db_mb": round(sum(p.stat().st_size for p in db.parent.glob("flyte.db*")) / 2**20, 1)}
    bench.log(json.dumps(report["seed"]))

    server = bench.Server.start(binary, base, sys.prefix)
    try:
        time.sleep(1.0)
        report["restart"] = {"ready_s": round(server.ready_seconds or 0, 3),
                             "idle_rss_mb": round(bench.proc_status(server.pid).get("VmRSS", 0) / 1024, 1)}
        bench.log(json.dumps(report["restart"]))
        c = SynchronousFlyteClient(PlatformConfig(endpoint=f"127.0.0.1:{server.port}", insecure=True))
        rnd = random.Random(1)
        seeded_names = [f"s{rnd.randrange(to_add):08d}" for _ in range(args.samples + 1)] if to_add else names
        newest = Sort("created_at", Sort.Direction.DESCENDING)
        fan_id = WorkflowExecutionIdentifier(PROJECT, DOMAIN, fan_name)
        n = args.samples
        lat = {}
        lat["GetVersion (floor)"] = timed(n, lambda i=0: c.get_control_plane_version())
        lat["GetExecution (random of all)"] = timed(n, lambda i=0: c.get_execution(WorkflowExecutionIdentifier(PROJECT, DOMAIN, seeded_names[i])))
        def list50(i=0, **kw):
            page, _ = c.list_executions_paginated(PROJECT, DOMAIN, limit=50, sort_by=newest, **kw)
            assert len(page) == 50, len(page)
        lat["ListExecutions limit 50, newest first"] = timed(n, list50)
        lat["ListExecutions limit 50, phase=SUCCEEDED"] = timed(n, lambda i=0: list50(filters=[F.Equal("phase", "SUCCEEDED")]))
        lat["ListExecutions limit 50, launch_plan.name"] = timed(
            n, lambda i=0: list50(filters=[F.Equal("launch_plan.name", lp_id.name)]))
        token_holder = {}
        def page_deep(i=0):
            # the 21st page (offset 1,000) through page tokens
            tok = token_holder.get("t")
            if tok is None:
                tok = ""
                for _ in range(20):
                    _, tok = c.list_executions_paginated(PROJECT, DOMAIN, limit=50, token=tok, sort_by=newest)
                token_holder["t"] = tok
            page, _ = c.list_executions_paginated(PROJECT, DOMAIN, limit=50, token=tok, sort_by=newest)
            assert len(page) == 50
        lat["ListExecutions limit 50, page 21 (token)"] = timed(n, page_deep)
        report["page_token_after_20_pages"] = token_holder.get("t")
        if str(token_holder.get("t")) == "1000" and to_add >= 200_000:
            # The token is the row offset (as flyteadmin's): a page 100,000 rows deep.
            def page_100k(i=0):
                page, _ = c.list_executions_paginated(PROJECT, DOMAIN, limit=50, token="100000", sort_by=newest)
                assert len(page) == 50
            lat["ListExecutions limit 50, offset 100,000 (token)"] = timed(min(n, 200), page_100k)
        def nodes_top(i=0):
            page, _ = c.list_node_executions(fan_id, limit=50)
            assert page
        lat["ListNodeExecutions (top level)"] = timed(n, nodes_top)
        def nodes_children(i=0):
            page, _ = c.list_node_executions(fan_id, limit=50, unique_parent_id="n0")
            assert len(page) == 50, len(page)
        try:
            lat["ListNodeExecutions 50 dynamic children"] = timed(n, nodes_children)
        except Exception as e:  # noqa: BLE001
            lat["ListNodeExecutions 50 dynamic children"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        report["latency"] = lat
        report["after_reads_rss_mb"] = round(bench.proc_status(server.pid).get("VmRSS", 0) / 1024, 1)
        for k, v in lat.items():
            bench.log(f"{k}: {v}")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            bench.log(f"kept {base}")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"admin-api-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    ce, sd = report["create_execution"], report["seed"]
    print(f"Machine: {report['machine']}; {report['date']}\nCommand: `{report['command']}`\n")
    print("| figure | value |\n|---|---|")
    print(f"| CreateExecution ({ce['calls']} calls, {ce['threads']} client threads) | {ce['per_second']}/s; "
          f"latency p50 {ce['latency']['p50_ms']} ms, p99 {ce['latency']['p99_ms']} ms; all terminal after {ce['all_terminal_after_s']} s |")
    print(f"| seeding | {sd['added']} rows in {sd['seconds']} s ({sd['rows_per_second']}/s); {sd['executions_stored']} stored, {sd['db_mb']} MB |")
    print(f"| restart on that data dir | ready {report['restart']['ready_s']} s, idle RSS {report['restart']['idle_rss_mb']} MB |")
    print("\n| call (executions stored: %d) | p50 | p99 | max |\n|---|---|---|---|" % sd["executions_stored"])
    for k, v in report["latency"].items():
        if "error" in v:
            print(f"| {k} | {v['error']} | | |")
        else:
            print(f"| {k} | {v['p50_ms']} ms | {v['p99_ms']} ms | {v['max_ms']} ms |")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
