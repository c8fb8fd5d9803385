#!/usr/bin/env python3
"""Flyte-RS admin API benchmark (issue 6 item 1 (c), issue 21 item 4): CreateExecution
throughput with GetExecution / ListExecutions latency measured while it runs, then GetExecution,
ListExecutions and ListNodeExecutions latency (p50/p99) with many executions stored.

    .venv/bin/python bench/admin_api.py --threads 32 --creates 8000 --rows 0      # issue 21 item 4
    .venv/bin/python bench/admin_api.py --threads 32 --rows 0 --postgres "$FLYTERS_TEST_POSTGRES_URL"
    .venv/bin/python bench/admin_api.py --binary target/release/flyte-rs --rows 1000000
    bench/run.sh --admin-api --rows 1000000          # the same, after building the binary

Steps:
 1. starts `flyte-rs start` on a temporary data dir (embedded SQLite, or --postgres URL: a fresh
    database on that server), registers bench/workflows.py with `pyflyte run --remote`
    (sleep_wf: one core-sleep node, no process; fanout_wf with 50 leaves: an execution with node
    executions to list);
 2. CreateExecution throughput: --creates executions of sleep_wf's launch plan from --threads
    client threads spread over --procs client processes (one gRPC channel per thread; Python
    clients are CPU-bound well below the server, so one process cannot drive 32 callers), all
    released at one instant. `--client raw` (default) calls the generated flyteidl grpcio stub
    with a prebuilt request, the cheapest Python client; `--client flytekit` goes through
    flytekit's SynchronousFlyteClient, as users do. Meanwhile --readers reader threads (one more
    process) each call ListExecutions (limit 50, newest first) then GetExecution of one of the
    listed executions every --read-interval seconds: their p50/p99 are measured CONCURRENTLY with
    the creations. Reported: creations/s, latency p50/p99, the server's CPU seconds per creation
    (utime + stime from /proc/<pid>/stat, during the creations and until every execution is
    terminal, so the engine's work for each execution is included), the clients' own CPU, and
    the load average before and after (the figures are wall rates on a shared machine);
 3. (SQLite only, --rows > 0) stops the server and seeds the SQLite file up to --rows
    executions, cloning the terminal sleep_wf rows (spec/closure bytes as the server wrote them)
    under new names with created_at spread over the previous 30 days, in batches of 100,000 rows
    per transaction;
 4. starts the server again on that data dir (time to ready, RSS) and measures, one call at a
    time from one client: GetExecution of random seeded names, ListExecutions (limit 50, newest
    first; also filtered by phase and by launch plan name), ListNodeExecutions (the fan-out's top
    level, and its 50 dynamic children by unique_parent_id), and GetVersion as the floor (the
    Python gRPC client's own cost, no store access).

The client is Python grpcio: each latency includes ~0.2-0.5 ms of Python client cost, which
GetVersion shows. Not a test: nothing runs it in CI.
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
import subprocess
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


TERMINAL = (4, 5, 6, 7, 8, 9)
ACTIVE_PHASES = "UNDEFINED;QUEUED;RUNNING;SUCCEEDING;FAILING;ABORTING"


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def store_ops(server) -> dict[str, float]:
    """Store operations so far by op, from the server's /metrics (their latency histograms'
    counts); {} if it cannot be read."""
    import urllib.request

    ops: dict[str, float] = {}
    try:
        text = urllib.request.urlopen(f"{server.url.rstrip('/')}/metrics", timeout=10).read().decode()
    except OSError:
        return ops
    for line in text.splitlines():
        if line.startswith("flyte_store_query_duration_seconds_count{"):
            labels, value = line[line.index("{") + 1:].split("}", 1)
            op = dict(kv.split("=", 1) for kv in labels.split(",")).get("op", "?").strip('"')
            ops[op] = ops.get(op, 0.0) + float(value)
    return ops


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _stub(port: int):
    import grpc
    from flyteidl.service import admin_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, admin_pb2_grpc.AdminServiceStub(channel)


def worker_create(args) -> dict:
    """One client process: --threads threads, each with its own channel, each making --count
    CreateExecution calls after the shared start instant."""
    from flyteidl.admin import execution_pb2
    from flyteidl.core import identifier_pb2, literals_pb2

    lp = identifier_pb2.Identifier(resource_type=identifier_pb2.LAUNCH_PLAN, project=PROJECT, domain=DOMAIN,
                                   name=args.lp_name, version=args.lp_version)
    results: list[tuple[list[float], list[str], int]] = []
    lock = threading.Lock()
    ready = threading.Barrier(args.threads + 1)

    def run(ti: int) -> None:
        times, names, errors = [], [], 0
        if args.client == "flytekit":
            from flytekit.clients.friendly import SynchronousFlyteClient
            from flytekit.configuration import PlatformConfig
            from flytekit.models import literals as L
            from flytekit.models.execution import ExecutionMetadata, ExecutionSpec
            from flytekit.models.core.identifier import Identifier, ResourceType

            c = SynchronousFlyteClient(PlatformConfig(endpoint=f"127.0.0.1:{args.port}", insecure=True))
            lp_model = Identifier(ResourceType.LAUNCH_PLAN, PROJECT, DOMAIN, args.lp_name, args.lp_version)
            c.get_control_plane_version()
            inputs = L.LiteralMap({})

            def call(n: str) -> None:
                spec = ExecutionSpec(lp_model, ExecutionMetadata(ExecutionMetadata.ExecutionMode.MANUAL, "bench", 0))
                c.create_execution(PROJECT, DOMAIN, n, spec, inputs)
        else:
            from flyteidl.admin import version_pb2

            channel, stub = _stub(args.port)
            stub.GetVersion(version_pb2.GetVersionRequest())
            spec = execution_pb2.ExecutionSpec(
                launch_plan=lp, metadata=execution_pb2.ExecutionMetadata(mode=0, principal="bench"))
            empty = literals_pb2.LiteralMap()

            def call(n: str) -> None:
                stub.CreateExecution(execution_pb2.ExecutionCreateRequest(
                    project=PROJECT, domain=DOMAIN, name=n, spec=spec, inputs=empty), timeout=60)
        prefix = f"c{args.proc_index:02d}{ti:02d}"
        ready.wait()
        delay = args.start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        for i in range(args.count):
            n = f"{prefix}{i:06d}{uuid.uuid4().hex[:6]}"
            t = time.perf_counter()
            try:
                call(n)
            except Exception as e:  # noqa: BLE001
                errors += 1
                if errors <= 3:
                    print(f"create failed: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
                continue
            times.append(time.perf_counter() - t)
            names.append(n)
        with lock:
            results.append((times, names, errors))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    ready.wait()
    cpu0 = os.times()
    for t in threads:
        t.join()
    cpu1 = os.times()
    return {"latencies": [x for r in results for x in r[0]], "names": [x for r in results for x in r[1]],
            "errors": sum(r[2] for r in results),
            "cpu_s": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 3)}


def worker_read(args) -> dict:
    """The reader process: --threads threads, each every --interval s a ListExecutions (limit 50,
    newest first) then a GetExecution of one of the listed executions, until --stop-file exists."""
    from flyteidl.admin import common_pb2, execution_pb2
    from flyteidl.core import identifier_pb2

    lists: list[float] = []
    gets: list[float] = []
    lock = threading.Lock()
    stop = pathlib.Path(args.stop_file)

    def run(ti: int) -> None:
        channel, stub = _stub(args.port)
        rnd = random.Random(ti)
        mine_l, mine_g = [], []
        req = common_pb2.ResourceListRequest(
            id=common_pb2.NamedEntityIdentifier(project=PROJECT, domain=DOMAIN), limit=50,
            sort_by=common_pb2.Sort(key="created_at", direction=common_pb2.Sort.DESCENDING))
        while time.time() < args.start_at:
            time.sleep(0.005)
        nxt = time.perf_counter()
        while not stop.exists():
            t = time.perf_counter()
            page = stub.ListExecutions(req, timeout=60)
            t1 = time.perf_counter()
            mine_l.append(t1 - t)
            if page.executions:
                n = rnd.choice(page.executions).id.name
                stub.GetExecution(execution_pb2.WorkflowExecutionGetRequest(
                    id=identifier_pb2.WorkflowExecutionIdentifier(project=PROJECT, domain=DOMAIN, name=n)),
                    timeout=60)
                mine_g.append(time.perf_counter() - t1)
            nxt += args.interval
            pause = nxt - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                nxt = time.perf_counter()
        with lock:
            lists.extend(mine_l)
            gets.extend(mine_g)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"list": lists, "get": gets}


def worker_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["create", "read"])
    ap.add_argument("--port", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--start-at", type=float)
    ap.add_argument("--proc-index", type=int, default=0)
    ap.add_argument("--client", default="raw")
    ap.add_argument("--lp-name", default="")
    ap.add_argument("--lp-version", default="")
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--stop-file", default="")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    out = worker_create(args) if args.worker == "create" else worker_read(args)
    pathlib.Path(args.out).write_text(json.dumps(out))
    return 0


def throughput(server, lp_id, args, base: pathlib.Path) -> dict:
    """Step 2: --creates CreateExecution calls from --threads threads in --procs processes, with
    the reader process running alongside; the server's CPU per creation."""
    from flytekit.clients.friendly import SynchronousFlyteClient
    from flytekit.configuration import PlatformConfig
    from flytekit.models import filters as F

    procs = max(1, min(args.procs, args.threads))
    per_proc = [args.threads // procs + (1 if i < args.threads % procs else 0) for i in range(procs)]
    per_thread = args.creates // args.threads
    start_at = time.time() + 3.0 + 0.3 * procs  # every client connected and warm before it
    stop_file = base / "readers.stop"
    me = [sys.executable, str(pathlib.Path(__file__).resolve())]
    common = ["--port", str(server.port), "--start-at", repr(start_at)]
    children = []
    for i, t in enumerate(per_proc):
        out = base / f"create-{i}.json"
        children.append((out, subprocess.Popen(me + ["--worker", "create", *common, "--threads", str(t),
                                                     "--count", str(per_thread), "--proc-index", str(i),
                                                     "--client", args.client, "--lp-name", lp_id.name,
                                                     "--lp-version", lp_id.version, "--out", str(out)])))
    reader = None
    if args.readers:
        rout = base / "read.json"
        reader = (rout, subprocess.Popen(me + ["--worker", "read", *common, "--threads", str(args.readers),
                                               "--interval", str(args.read_interval), "--stop-file", str(stop_file),
                                               "--out", str(rout)]))
    load_before = loadavg()
    while time.time() < start_at:
        time.sleep(0.001)
    ops0 = store_ops(server)
    cpu0, t0 = proc_cpu_seconds(server.pid), time.perf_counter()
    with bench.RssSampler(server.pid, 0.1) as sampler:
        for _, p in children:
            p.wait()
        create_wall = time.perf_counter() - t0
        cpu_create = proc_cpu_seconds(server.pid) - cpu0
        load_after = loadavg()
        stop_file.touch()
        if reader:
            reader[1].wait()
        results = [json.loads(out.read_text()) for out, p in children if p.returncode == 0]
        if len(results) != len(children):
            raise SystemExit("a client process failed: see its stderr above")
        names = [n for r in results for n in r["names"]]
        lat = [x for r in results for x in r["latencies"]]
        # Until every execution is terminal (the engine runs each: one 0 s core-sleep node), by
        # a list of the active ones, one call every 0.2 s.
        raw = SynchronousFlyteClient(PlatformConfig(endpoint=f"127.0.0.1:{server.port}", insecure=True))
        active = None
        while time.perf_counter() - t0 < 900:
            page, _ = raw.list_executions_paginated(PROJECT, DOMAIN, limit=1,
                                                    filters=[F.ValueIn("phase", ACTIVE_PHASES.split(";"))])
            active = len(page)
            if not active:
                break
            time.sleep(0.2)
        all_done = time.perf_counter() - t0
        cpu_all = proc_cpu_seconds(server.pid) - cpu0
        ops1 = store_ops(server)
    phases: dict[str, int] = {}
    wanted = set(names)
    token = ""
    while True:
        page, token = raw.list_executions_paginated(PROJECT, DOMAIN, limit=100, token=token)
        for e in page:
            if e.id.name in wanted:
                phases[bench.phase_name(e.closure.phase)] = phases.get(bench.phase_name(e.closure.phase), 0) + 1
        if not token:
            break
    reads = json.loads(reader[0].read_text()) if reader and reader[1].returncode == 0 else {"list": [], "get": []}
    n = len(names)
    return {
        "calls": n, "errors": sum(r["errors"] for r in results), "threads": args.threads, "client_processes": procs,
        "client": args.client, "wall_s": round(create_wall, 3), "per_second": round(n / create_wall, 1),
        "latency": pct(lat) if lat else None,
        "concurrent_reads": {"readers": args.readers, "interval_s": args.read_interval,
                             "ListExecutions limit 50 newest": pct(reads["list"]) if reads["list"] else None,
                             "GetExecution": pct(reads["get"]) if reads["get"] else None},
        "server_cpu_s_during_creates": round(cpu_create, 2),
        "server_cpu_ms_per_creation": round(cpu_create / max(1, n) * 1000, 3),
        "server_cpu_ms_per_execution_until_terminal": round(cpu_all / max(1, n) * 1000, 3),
        "client_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        # Until every execution is terminal, the readers' calls included (--readers 0 for none).
        "store_ops_per_execution": {op: round((v - ops0.get(op, 0.0)) / max(1, n), 2)
                                    for op, v in sorted(ops1.items()) if v - ops0.get(op, 0.0) > 0},
        "all_terminal_after_s": round(all_done, 3), "phases": phases,
        "peak_rss_mb": round(sampler.peak_kb / 1024, 1),
        "load_average_before": load_before, "load_average_after": load_after,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=pathlib.Path, default=bench.REPO / "target" / "release" / "flyte-rs")
    ap.add_argument("--rows", type=int, default=1_000_000, help="executions stored when measuring reads")
    ap.add_argument("--creates", type=int, default=8000, help="CreateExecution calls for the throughput figure")
    ap.add_argument("--threads", type=int, default=32, help="client threads for CreateExecution")
    ap.add_argument("--procs", type=int, default=4, help="client processes the threads are spread over")
    ap.add_argument("--client", choices=["raw", "flytekit"], default="raw",
                    help="raw: flyteidl's grpcio stub, a prebuilt request; flytekit: SynchronousFlyteClient")
    ap.add_argument("--readers", type=int, default=2, help="reader threads during the creations (0: none)")
    ap.add_argument("--read-interval", type=float, default=0.02,
                    help="seconds between one reader's List+Get pairs")
    ap.add_argument("--postgres", default="", help="a PostgreSQL server URL: a fresh database on it "
                    "instead of the embedded SQLite (no seeding: the read step is skipped)")
    ap.add_argument("--samples", type=int, default=500, help="calls per read latency figure")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", type=pathlib.Path, default=bench.HERE / "results")
    args = ap.parse_args()

    from flytekit.clients.friendly import SynchronousFlyteClient
    from flytekit.configuration import PlatformConfig
    from flytekit.models import filters as F
    from flytekit.models.admin.common import Sort
    from flytekit.models.core.identifier import WorkflowExecutionIdentifier

    base = pathlib.Path(tempfile.mkdtemp(prefix="flyte-rs-admin-bench-"))
    report: dict = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "command": " ".join([pathlib.Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                    "machine": bench.machine(), "settings": vars(args) | {"binary": str(args.binary)}}
    report["settings"] = {k: str(v) for k, v in report["settings"].items()}
    binary = args.binary.resolve()
    pg_db, extra_env = "", {}
    if args.postgres:
        import replicas

        pg_db = "flyte_admin_bench_" + uuid.uuid4().hex[:10]
        extra_env["FLYTE_RS_STORAGE__METADATA_URL"] = replicas.with_database(args.postgres, pg_db)
    report["store"] = "postgres" if args.postgres else "sqlite"
    server = bench.Server.start(binary, base, sys.prefix, extra_env)
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

        report["create_execution"] = throughput(server, lp_id, args, base)
        bench.log(json.dumps(report["create_execution"]))
    finally:
        server.stop()

    try:
        if args.rows > 0 and not args.postgres:
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
            for start in range(0, to_add, batch):
                rows = []
                for i in range(start, min(to_add, start + batch)):
                    r = list(templates[i % len(templates)])
                    n = f"s{i:08d}"
                    created = now_us - span_us + i * span_us // max(1, to_add)
                    r[i_name] = n
                    r[i_created], r[i_started], r[i_updated] = created, created + 1000, created + 2_000_000
                    # Offloaded inputs are named after the execution; inline ones (data: URLs) are not.
                    for i_uri in (i_inputs, i_user_inputs):
                        if r[i_uri] and not r[i_uri].startswith("data:"):
                            r[i_uri] = r[i_uri].replace(r[i_uri].split("/")[-2], n)
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
                seeded_names = [f"s{rnd.randrange(to_add):08d}" for _ in range(args.samples + 1)] if to_add else [fan_name]
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

    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            bench.log(f"kept {base}")
        if pg_db and shutil.which("psql"):
            subprocess.run([shutil.which("psql"), args.postgres, "-q", "-c", f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'],
                           capture_output=True, timeout=60)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"admin-api-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    ce = report["create_execution"]
    print(f"Machine: {report['machine']}; {report['date']}\nCommand: `{report['command']}`\n")
    reads = ce["concurrent_reads"]
    print("| figure | value |\n|---|---|")
    print(f"| CreateExecution ({ce['calls']} calls, {ce['threads']} client threads in {ce['client_processes']} "
          f"processes, {ce['client']} client, {report['store']}) | **{ce['per_second']}/s**; latency p50 "
          f"{ce['latency']['p50_ms']} ms, p99 {ce['latency']['p99_ms']} ms, max {ce['latency']['max_ms']} ms; "
          f"{ce['errors']} errors |")
    for k in ("ListExecutions limit 50 newest", "GetExecution"):
        v = reads.get(k)
        if v:
            print(f"| {k} during the creations ({reads['readers']} readers) | p50 {v['p50_ms']} ms, "
                  f"p99 {v['p99_ms']} ms, max {v['max_ms']} ms ({v['n']} calls) |")
    print(f"| server CPU | {ce['server_cpu_ms_per_creation']} ms per creation during the creations; "
          f"{ce['server_cpu_ms_per_execution_until_terminal']} ms per execution until all terminal |")
    print(f"| client CPU | {ce['client_cpu_s']} s ({round(ce['client_cpu_s'] / ce['wall_s'], 2)} cores) |")
    print(f"| all terminal | after {ce['all_terminal_after_s']} s; {ce['phases']} |")
    print(f"| load average (1, 5, 15 min) | before {ce['load_average_before']}, after {ce['load_average_after']} |")
    if "seed" in report:
        sd = report["seed"]
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
    sys.exit(worker_main(sys.argv[1:]) if "--worker" in sys.argv[1:] else main())
