#!/usr/bin/env python3
"""Replica-set throughput (issue 12 item 7): executions created and finished per second with 1
and with 3 `flyte-rs start` replicas on one PostgreSQL and one shared blob directory.

    export FLYTERS_TEST_POSTGRES_URL=$(scripts/postgres.sh | tail -n 1)
    .venv/bin/python bench/replicas.py --binary target/release/flyte-rs --replicas 1,3 --creates 600

For each replica count: a fresh database, N replicas (own data dirs, one blob dir, one signing
key), bench/workflows.py's sleep_wf (one 0 s core-sleep node: no task process, so the figure
is the control plane's) registered with `pyflyte run --remote` through the first replica; then
--creates CreateExecution calls from --threads client threads, thread i talking to replica
i mod N (what a round-robin load balancer does), each replica owning what it receives.
`created/s` is calls over the wall time of the creating; `finished/s` is executions over the
span from the first CreateExecution to the last execution's end (the server's own timestamps:
created_at, and started_at + duration). Not a test: nothing runs it in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py: Server, Client)

PROJECT, DOMAIN = bench.PROJECT, bench.DOMAIN
TERMINAL = (4, 5, 6, 7, 8, 9)


def with_database(url: str, db: str) -> str:
    base, _, params = url.partition("?")
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/{db}" + (f"?{params}" if params else "")


def _ts(t) -> float:
    return bench._ts(t)


def measure(binary: pathlib.Path, pg_url: str, replicas: int, creates: int, threads: int) -> dict:
    from flytekit.clients.friendly import SynchronousFlyteClient
    from flytekit.configuration import PlatformConfig
    from flytekit.models import literals as L
    from flytekit.models.core.identifier import WorkflowExecutionIdentifier
    from flytekit.models.execution import ExecutionMetadata, ExecutionSpec

    base = pathlib.Path(tempfile.mkdtemp(prefix=f"flyte-rs-replicas-{replicas}-"))
    db = "flyte_bench_" + uuid.uuid4().hex[:10]
    blobs = base / "blobs"
    blobs.mkdir()
    env = {
        "FLYTE_RS_STORAGE__METADATA_URL": with_database(pg_url, db),
        "FLYTE_RS_STORAGE__BLOB_URL": f"file://{blobs}",
        "FLYTE_RS_ADMIN__SIGNING_KEY": "bench-replicas-signing-key-0123456789",
        "FLYTE_RS_LOGGING__LEVEL": "warn",
    }
    servers = []
    try:
        for i in range(replicas):
            (base / f"r{i}").mkdir()
            servers.append(bench.Server.start(binary, base / f"r{i}", sys.prefix, env))
        client = bench.Client(servers[0], base / "r0", None)
        name, _ = client.pyflyte_run("sleep_wf", {})
        warm, _ = client.poll(name, 0.1, 300)
        lp_id = warm.spec.launch_plan
        cfgs = [PlatformConfig(endpoint=f"127.0.0.1:{s.port}", insecure=True) for s in servers]
        names: list[str] = []
        lock = threading.Lock()
        per_thread = creates // threads

        def creator(i: int) -> None:
            c = SynchronousFlyteClient(cfgs[i % replicas])
            mine = []
            for _ in range(per_thread):
                n = "c" + uuid.uuid4().hex[:15]
                spec = ExecutionSpec(lp_id, ExecutionMetadata(ExecutionMetadata.ExecutionMode.MANUAL, "bench", 0))
                c.create_execution(PROJECT, DOMAIN, n, spec, L.LiteralMap({}))
                mine.append(n)
            with lock:
                names.extend(mine)

        pool = [threading.Thread(target=creator, args=(i,)) for i in range(threads)]
        t0 = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        create_wall = time.perf_counter() - t0
        raw = SynchronousFlyteClient(cfgs[0])
        pending, done = set(names), {}
        while pending and time.perf_counter() - t0 < 900:
            for n in list(pending):
                e = raw.get_execution(WorkflowExecutionIdentifier(PROJECT, DOMAIN, n))
                if e.closure.phase in TERMINAL:
                    pending.discard(n)
                    done[n] = e
            if pending:
                time.sleep(0.5)
        first = min(_ts(e.closure.created_at) for e in done.values())
        last = max(_ts(e.closure.started_at) + e.closure.duration.total_seconds() for e in done.values())
        succeeded = sum(1 for e in done.values() if e.closure.phase == 4)
        return {
            "replicas": replicas, "creates": len(names), "threads": threads,
            "created_per_s": round(len(names) / create_wall, 1),
            "finished_per_s": round(len(done) / (last - first), 1),
            "span_s": round(last - first, 2), "succeeded": succeeded, "not_terminal": len(pending),
        }
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(base, ignore_errors=True)
        if shutil.which("psql"):
            subprocess.run([shutil.which("psql"), pg_url, "-q", "-c", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'],
                           capture_output=True, timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=pathlib.Path, default=bench.REPO / "target" / "release" / "flyte-rs")
    ap.add_argument("--postgres", default=os.environ.get("FLYTERS_TEST_POSTGRES_URL", ""))
    ap.add_argument("--replicas", default="1,3", help="replica counts to measure, comma-separated")
    ap.add_argument("--creates", type=int, default=600)
    ap.add_argument("--threads", type=int, default=6)
    args = ap.parse_args()
    if not args.postgres:
        raise SystemExit("--postgres URL or FLYTERS_TEST_POSTGRES_URL (scripts/postgres.sh) is needed")
    results = []
    for n in (int(x) for x in args.replicas.split(",")):
        r = measure(args.binary.resolve(), args.postgres, n, args.creates, args.threads)
        print(json.dumps(r), file=sys.stderr)
        results.append(r)
    print("| replicas | executions | client threads | created/s | finished/s | succeeded |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['replicas']} | {r['creates']} | {r['threads']} | {r['created_per_s']} | "
              f"{r['finished_per_s']} | {r['succeeded']}/{r['creates']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
