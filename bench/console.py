#!/usr/bin/env python3
"""Web console with big runs (issue 13 item 6): how soon an execution page is usable for a
6,000-leaf dynamic fan-out and a 1,000-index map task.

    .venv/bin/python bench/console.py --binary target/debug/flyte-rs
    .venv/bin/python bench/console.py --binary target/release/flyte-rs --repeat 5

Steps:
 1. starts `flyte-rs start` on a temporary data dir (bench/run.py's Server) and runs, with
    `pyflyte run --remote`, bench/workflows.py's fanout_wf with n=6000 (core-sleep leaves, 0 s;
    waits until it succeeded) and map_wf below with n=1000 (a Python task mapped over 1,000
    indices; terminated once its indices run, since 1,000 Python processes take many minutes
    on a small machine, and measured once its array node lists all 1,000 indices);
 2. in Debian's Chromium (headless, Playwright, as tests/e2e/test_console.py), for each shape
    and --repeat times in a fresh browser context (nothing cached but what the HTTP cache may
    keep of the hashed assets): `open` = from navigation to the execution link until the node
    table shows its first row; `expand` = from the click on the group's expander (the dynamic
    node's 6,000 children, the map node's 1,000 indices) until its members' rows show (the
    first page of 500 children); `all` = from the same click until every member is read;
    `scroll` = from scrolling the table to its end until the last member's row shows;
    `graph` = from the click on the group's + in the graph until its summary shows (counts per
    phase, the first 24 members), `graph_all` until it counts every member; `graph_nodes` is
    how many node shapes the graph then draws.

Timings are wall-clock seen from the Python driver (Playwright's own round trips included,
~ms). Median and max are printed, with the machine; nothing runs this in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py: Server, Client, machine)

PROJECT, DOMAIN = bench.PROJECT, bench.DOMAIN
CHROMIUM = os.environ.get("FLYTERS_CHROMIUM", "/usr/bin/chromium")

MAP_MODULE = """
from flytekit import map_task, task, workflow


@task
def make(n: int) -> list[int]:
    return list(range(n))


@task
def square(x: int) -> int:
    return x * x


@workflow
def map_wf(n: int = 1000) -> list[int]:
    return map_task(square)(x=make(n=n))
"""


def rest(server: bench.Server, path: str):
    req = urllib.request.Request(f"{server.url}/api/v1/{path}", headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def wait_for(what: str, check, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def map_indices(server: bench.Server, name: str, node: str) -> int:
    try:
        tasks = rest(server, f"task_executions/{PROJECT}/{DOMAIN}/{name}/{node}?limit=10")["task_executions"]
    except Exception:  # noqa: BLE001 (not there yet)
        return 0
    if not tasks:
        return 0
    meta = tasks[-1]["closure"].get("metadata") or {}
    return len(meta.get("external_resources") or [])


def measure(browser, url: str, group: str, member_selector: str) -> dict:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    table = page.locator('table[aria-label="Nodes"]')
    t0 = time.monotonic()
    page.goto(url, wait_until="commit")
    table.locator(f'tr[data-node="{group}"]').wait_for(state="visible", timeout=120_000)
    opened = time.monotonic() - t0
    t1 = time.monotonic()
    table.get_by_role("button", name=f"Expand {group}", exact=True).click()
    table.locator(member_selector).first.wait_for(state="visible", timeout=120_000)
    expanded = time.monotonic() - t1
    # Every member read (children come in pages of 500; the count has no "+" once all are in).
    count = table.locator(f'tr[data-node="{group}"] .group-count')
    count.wait_for(state="visible", timeout=120_000)
    page.wait_for_function("el => !el.textContent.includes('+')", arg=count.element_handle(), timeout=300_000)
    loaded = time.monotonic() - t1
    rows = page.locator("[data-rows]").get_attribute("data-rows")
    drawn = table.locator("tbody tr").count()
    t2 = time.monotonic()
    page.locator(".vscroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    # The last row of the table (rows are numbered from the header's 1).
    table.locator(f'tr[aria-rowindex="{int(rows or 0) + 1}"]').wait_for(state="visible", timeout=120_000)
    scrolled = time.monotonic() - t2
    # The same group opened in the graph: a summary (counts per phase, the first 24), read in
    # the same pages; `graph` until the summary shows, `graph_all` until every member is in.
    summary_head = page.locator(f'svg.graph [data-summary="{group}"] .summary-head')
    t3 = time.monotonic()
    page.locator("svg.graph").get_by_role("button", name=f"Expand {group} in the graph", exact=True).click()
    summary_head.wait_for(state="visible", timeout=120_000)
    graphed = time.monotonic() - t3
    page.wait_for_function("el => !el.textContent.includes('so far')", arg=summary_head.element_handle(), timeout=300_000)
    graphed_all = time.monotonic() - t3
    shapes = page.locator("svg.graph .node").count()
    context.close()
    if errors:
        raise SystemExit(f"JavaScript errors on the page: {errors}")
    return {"open_s": opened, "expand_s": expanded, "all_s": loaded, "scroll_s": scrolled, "rows": int(rows or 0),
            "drawn_tr": drawn, "graph_s": graphed, "graph_all_s": graphed_all, "graph_nodes": shapes}


def summary(samples: list[dict]) -> dict:
    out: dict = {"rows": samples[-1]["rows"], "drawn_tr": samples[-1]["drawn_tr"],
                 "graph_nodes": samples[-1]["graph_nodes"], "n": len(samples)}
    for key in ("open_s", "expand_s", "all_s", "scroll_s", "graph_s", "graph_all_s"):
        values = [s[key] for s in samples]
        out[key] = {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=pathlib.Path, default=bench.REPO / "target" / "release" / "flyte-rs")
    ap.add_argument("--venv", default=str(bench.REPO / ".venv"))
    ap.add_argument("--leaves", type=int, default=6000)
    ap.add_argument("--indices", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    base = pathlib.Path(tempfile.mkdtemp(prefix="flyte-rs-console-bench-"))
    # Resolved: the server starts in a temporary directory.
    server = bench.Server.start(args.binary.resolve(), base, args.venv)
    report: dict = {"command": " ".join(sys.argv), "machine": bench.machine(), "results": {}}
    try:
        client = bench.Client(server, base, max_parallelism=None)
        (client.project / "console_map.py").write_text(MAP_MODULE)

        bench.log(f"fan-out: {args.leaves} leaves")
        fan, _ = client.pyflyte_run("fanout_wf", {"n": args.leaves, "seconds": 0})
        execution, done = client.poll(fan, 1.0, 1800)
        if done is None or bench.phase_name(execution.closure.phase) != "SUCCEEDED":
            raise SystemExit(f"the fan-out did not succeed: {bench.phase_name(execution.closure.phase)}")

        bench.log(f"map: {args.indices} indices")
        exe = pathlib.Path(sys.executable).with_name("pyflyte")
        import subprocess
        import uuid

        mapped = "m" + uuid.uuid4().hex[:15]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_", "FLYTECTL_"))}
        subprocess.run(
            [str(exe), "--config", str(client.config), "run", "--remote", "--project", PROJECT, "--domain", DOMAIN,
             "--name", mapped, "console_map.py", "map_wf", "--n", str(args.indices)],
            cwd=client.project, env=env, check=True, capture_output=True, timeout=900,
        )
        # The stored task execution lists the indices the latest event changed; the event
        # that ends the array node lists them all: stop the run once its indices run.
        wait_for("the map's indices to run", lambda: map_indices(server, mapped, "n1") > 0, 900)
        client.remote.terminate(client.remote.fetch_execution(name=mapped), cause="benchmark: enough indices")
        wait_for("the map's indices", lambda: map_indices(server, mapped, "n1") >= args.indices, 300)

        link = f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/executions"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            shapes = {
                f"fan-out-{args.leaves}": (f"{link}/{fan}", "n0", 'tr[data-node^="n0-"]'),
                f"map-{args.indices}": (f"{link}/{mapped}", "n1", "tr.index-row"),
            }
            for shape, (url, group, member) in shapes.items():
                samples = [measure(browser, url, group, member) for _ in range(args.repeat)]
                report["results"][shape] = summary(samples)
                bench.log(f"{shape}: {report['results'][shape]}")
            browser.close()
    finally:
        server.stop()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
