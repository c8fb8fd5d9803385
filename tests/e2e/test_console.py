"""The web console in a real browser: Debian's Chromium, headless, driven by Playwright (its
own browser downloads are never used; scripts/setup-browser.sh installs the package).

Each test starts executions with the real `pyflyte run --remote`, opens the link pyflyte
printed, and checks what a user sees: the graph and the phase changing live, output values,
the error of a failed run, terminating a running one from the page, the entity deep links.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import typing
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import DOMAIN, EXAMPLES, PROJECT, Server, pyflyte

from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = os.environ.get("FLYTERS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous waits for a busy 2-core machine: these are not timing assertions.
RUN_WAIT_MS = 180_000
UI_WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> typing.Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: run scripts/setup-browser.sh (Debian's chromium package)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> typing.Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> pathlib.Path:
    """A copy of examples/ in a project directory of its own (what pyflyte run bundles)."""
    root = tmp_path_factory.mktemp("console-project")
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def run_remote(server: Server, root: pathlib.Path, path: str, entity: str, *inputs: str) -> tuple[str, str]:
    """`pyflyte run --remote …`; returns the execution name and the console link pyflyte printed."""
    name = f"c{uuid.uuid4().hex[:12]}"
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name, path, entity, *inputs,
        cwd=root,
    )
    assert result.returncode == 0, f"pyflyte run failed:\n{result.stdout}\n{result.stderr}"
    # rich may wrap the line; the URL itself has no spaces.
    printed = (result.stdout + result.stderr).replace("\n", "")
    match = re.search(rf"(https?://\S+?/executions/{name})", printed)
    assert match, f"no console link for {name} in pyflyte's output:\n{result.stdout}\n{result.stderr}"
    url = match.group(1)
    assert url == f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/executions/{name}"
    return name, url


def launch_plan_state(server: Server, lp) -> str:
    """The launch plan's state as the server has it (a fresh read over the REST API)."""
    url = f"{server.url}/api/v1/launch_plans/{PROJECT}/{DOMAIN}/{lp.name}/{lp.version}"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"})) as r:
        return json.loads(r.read())["closure"]["state"]


def header_phase(page: Page):
    return page.locator("header.exec-header .phase")


def test_root_leads_to_the_projects(server: Server, page: Page):
    page.goto(server.url + "/")
    assert page.url == server.url + "/console/"
    expect(page.get_by_role("heading", name="Projects")).to_be_visible(timeout=UI_WAIT_MS)
    # Other tests make projects of their own on this server: pick this project's card.
    domains = page.get_by_role("list", name=f"Domains of {PROJECT}", exact=True)
    domains.get_by_role("link", name="development").click()
    expect(page.get_by_role("heading", name="Executions")).to_be_visible(timeout=UI_WAIT_MS)
    assert page.url.endswith(f"/console/projects/{PROJECT}/domains/development/executions")


def test_the_printed_link_shows_the_graph_phase_and_outputs(server: Server, project, page: Page):
    name, url = run_remote(server, project, "examples/basics.py", "arithmetic_wf", "--a", "3")
    page.goto(url)
    expect(page.get_by_role("heading", name=f"Execution {name}")).to_be_visible(timeout=UI_WAIT_MS)
    # The graph: one box per node of arithmetic_wf, coloured by phase as the run goes on.
    graph = page.locator("svg.graph")
    for node in ("n0", "n1", "n2"):
        expect(graph.locator(f'[data-node-id="{node}"]')).to_be_visible(timeout=UI_WAIT_MS)
    # Polled live: the page reaches SUCCEEDED without a reload.
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    for node in ("n0", "n1", "n2"):
        expect(graph.locator(f'[data-node-id="{node}"]')).to_have_attribute(
            "data-phase", "SUCCEEDED", timeout=UI_WAIT_MS
        )
    # Decoded inputs and outputs: a=3, b=2 (default) -> total 17, mean 4.25.
    inputs = page.get_by_role("table", name="Inputs", exact=True)
    expect(inputs.locator('tr[data-name="a"] td')).to_have_text("3", timeout=UI_WAIT_MS)
    outputs = page.get_by_role("table", name="Outputs", exact=True)
    expect(outputs.locator('tr[data-name="total"] td')).to_have_text("17", timeout=UI_WAIT_MS)
    expect(outputs.locator('tr[data-name="mean"] td')).to_have_text("4.25")
    # The node table, and a node's panel with its own inputs (n0 = add(a=3, b=2)).
    nodes = page.get_by_role("table", name="Nodes")
    expect(nodes.locator("tbody tr")).to_have_count(3)
    graph.locator('[data-node-id="n0"]').click()
    panel = page.get_by_test_id("node-panel")
    expect(panel.locator('table[aria-label="Node inputs"] tr[data-name="a"] td')).to_have_text(
        "3", timeout=UI_WAIT_MS
    )
    expect(panel.locator('table[aria-label="Node outputs"] tr[data-name="o0"] td')).to_have_text("5")
    expect(panel.get_by_role("table", name="Attempts").locator("tbody tr")).to_have_count(1)
    # The panel is part of the URL: a reload keeps it open.
    assert page.url.endswith("?node=n0")
    page.reload()
    expect(page.get_by_test_id("node-panel")).to_be_visible(timeout=UI_WAIT_MS)


def test_a_failed_execution_shows_its_error_and_the_list_filters_by_phase(server: Server, project, page: Page):
    name, url = run_remote(server, project, "examples/failures.py", "broken_wf")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "FAILED", timeout=RUN_WAIT_MS)
    error = page.get_by_test_id("execution-error")
    expect(error).to_contain_text("broken on purpose with x=1", timeout=UI_WAIT_MS)
    expect(error).to_contain_text("user error")
    expect(page.locator('svg.graph [data-node-id="n0"]')).to_have_attribute("data-phase", "FAILED")
    expect(page.get_by_text("None: the execution failed.")).to_be_visible()
    # The failed task's own log, inline in its node's panel.
    page.locator('svg.graph [data-node-id="n0"]').click()
    expect(page.get_by_test_id("task-log")).to_contain_text("broken on purpose with x=1", timeout=UI_WAIT_MS)

    # Recover: a new execution from this one (it fails again: the task is broken on purpose).
    page.get_by_role("button", name="Recover").click()
    expect(page.locator("header.exec-header .facts")).to_contain_text("recovered", timeout=UI_WAIT_MS)
    expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(header_phase(page)).to_have_attribute("data-phase", "FAILED", timeout=RUN_WAIT_MS)

    # The executions list, filtered to failed runs, has this one and no succeeded run.
    page.goto(f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/executions")
    page.get_by_label("Filter by phase").select_option("FAILED")
    rows = page.get_by_role("table", name="Executions").locator("tbody tr")
    expect(page.locator(f'tr[data-execution="{name}"]')).to_be_visible(timeout=UI_WAIT_MS)
    expect(rows.locator('[data-phase="SUCCEEDED"]')).to_have_count(0)
    assert page.url.endswith("?phase=FAILED")
    # Name and workflow filters and the time window narrow it further (each asks the server).
    page.get_by_label("Filter by phase").select_option("")
    page.get_by_label("Name contains").fill(name[:8])
    page.get_by_label("Name contains").press("Enter")
    expect(rows).to_have_count(1, timeout=UI_WAIT_MS)
    expect(rows.first).to_have_attribute("data-execution", name)
    page.get_by_label("Workflow contains").fill("no_such_workflow")
    page.get_by_label("Workflow contains").press("Enter")
    expect(page.get_by_text("No executions match these filters.")).to_be_visible(timeout=UI_WAIT_MS)
    page.get_by_label("Workflow contains").fill("broken_wf")
    page.get_by_label("Workflow contains").press("Enter")
    page.get_by_label("Started").select_option("3600")
    expect(page.locator(f'tr[data-execution="{name}"]')).to_be_visible(timeout=UI_WAIT_MS)


def test_launch_from_the_form_prefilled_from_an_execution(server: Server, project, page: Page):
    name, url = run_remote(server, project, "examples/basics.py", "arithmetic_wf", "--a", "3")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    page.get_by_role("link", name="Relaunch with changes").click()
    form = page.get_by_role("form", name="Launch")
    a = form.get_by_label("a int")
    expect(a).to_have_value("3", timeout=UI_WAIT_MS)
    expect(form.get_by_label("b int")).to_have_value("2")
    # Bad input is refused in the form, naming what is expected; nothing is launched.
    a.fill("x")
    form.get_by_role("button", name="Launch").click()
    expect(form.get_by_role("alert")).to_contain_text("whole number")
    assert "/launch_plans/" in page.url
    a.fill("5")
    form.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("heading", name=re.compile("^Execution "))).to_be_visible(timeout=UI_WAIT_MS)
    assert "/executions/" in page.url and not page.url.endswith(name)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    # a=5, b=2: add -> 7, add -> 9, stats([5, 2, 7, 9]) -> total 23, mean 5.75.
    outputs = page.get_by_role("table", name="Outputs", exact=True)
    expect(outputs.locator('tr[data-name="total"] td')).to_have_text("23", timeout=UI_WAIT_MS)
    expect(outputs.locator('tr[data-name="mean"] td')).to_have_text("5.75")


def test_subworkflow_nodes_expand_and_open_their_panel(server: Server, project, page: Page):
    name, url = run_remote(server, project, "examples/subworkflows.py", "parent_wf", "--x", "1")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    nodes = page.get_by_role("table", name="Nodes")
    # n1 is inc_twice(x=inc_four(1)=5): two inc tasks inside, n1-0-n0 gets 5 and returns 6.
    nodes.get_by_role("button", name="Expand n1").click()
    child = nodes.locator('tr[data-node="n1-0-n0"]')
    expect(child).to_be_visible(timeout=UI_WAIT_MS)
    expect(nodes.locator('tr[data-node="n1-0-start-node"]')).to_have_count(0)
    child.get_by_role("button", name="n1-0-n0").click()
    panel = page.get_by_test_id("node-panel")
    expect(panel.locator('table[aria-label="Node inputs"] tr[data-name="x"] td')).to_have_text(
        "5", timeout=UI_WAIT_MS
    )
    expect(panel.locator('table[aria-label="Node outputs"] tr[data-name="o0"] td')).to_have_text("6")
    # The outputs of the whole run: o0 = inc_twice(inc_four(1)) = 7.
    outputs = page.get_by_role("table", name="Outputs", exact=True)
    expect(outputs.locator('tr[data-name="o0"] td')).to_have_text("7")


def test_a_running_tasks_log_lines_appear_in_its_panel(server: Server, project, page: Page):
    # step n0 prints its line, then sleeps: the line must show while the task still runs.
    name, url = run_remote(
        server, project, "examples/chains.py", "chain3_wf", "--x", "100", "--delay", "600"
    )
    page.goto(url + "?node=n0")
    expect(page.get_by_test_id("task-log")).to_contain_text("step 1: 100 -> 101", timeout=RUN_WAIT_MS)
    expect(page.locator('svg.graph [data-node-id="n0"]')).to_have_attribute("data-phase", "RUNNING")
    # Stopped from the page (it would sleep for ten minutes); the log is still there.
    page.get_by_role("button", name="Terminate").click()
    page.get_by_role("button", name="Confirm terminate").click()
    expect(header_phase(page)).to_have_attribute("data-phase", "ABORTED", timeout=RUN_WAIT_MS)
    expect(page.get_by_test_id("task-log")).to_contain_text("step 1: 100 -> 101")


def test_the_timeline_shows_each_attempt_of_a_retried_task(server: Server, project, page: Page):
    # flaky fails recoverably twice, then succeeds on its third attempt.
    name, url = run_remote(server, project, "examples/failures.py", "flaky_wf", "--fail_times", "2")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    timeline = page.get_by_role("list", name="Timeline")
    bars = timeline.locator(".tl-attempt")
    expect(bars).to_have_count(3, timeout=UI_WAIT_MS)
    expect(bars.nth(2)).to_have_attribute("title", re.compile(r"attempt 3: succeeded"))
    expect(bars.nth(0)).not_to_have_attribute("title", re.compile(r"succeeded"))
    expect(page.get_by_role("table", name="Nodes").locator('tr[data-node="n0"] td').nth(4)).to_have_text("3")


def test_a_chosen_theme_is_kept_and_an_unreachable_server_says_so(server: Server, page: Page):
    page.goto(server.url + "/console/")
    background = "getComputedStyle(document.body).backgroundColor"
    page.get_by_label("Theme").select_option("dark")
    assert page.evaluate(background) == "rgb(13, 17, 23)"
    page.reload()
    expect(page.get_by_label("Theme")).to_have_value("dark", timeout=UI_WAIT_MS)
    assert page.evaluate(background) == "rgb(13, 17, 23)"
    page.get_by_label("Theme").select_option("light")
    assert page.evaluate(background) == "rgb(246, 247, 249)"
    # Every API call fails at the network level, as when the server is down.
    page.route("**/api/v1/**", lambda route: route.abort())
    page.goto(f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/executions/gone")
    expect(page.get_by_role("alert")).to_contain_text("The server cannot be reached", timeout=UI_WAIT_MS)


def latest_version(server: Server, kind: str, name: str) -> str:
    url = f"{server.url}/api/v1/{kind}/{PROJECT}/{DOMAIN}/{name}?limit=1&sort_by.key=created_at&sort_by.direction=DESCENDING"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"})) as r:
        return json.loads(r.read())[kind][0]["id"]["version"]


def test_launch_a_task_with_an_uploaded_file_and_directory(server: Server, project, page: Page, tmp_path):
    # Registers files_wf's tasks (count_lines: CSVFile -> int, list_dir: FlyteDirectory -> [str]).
    run_remote(server, project, "examples/files.py", "files_wf")
    report = tmp_path / "report.csv"
    report.write_text("a,1\nb,2\nc,3\nd,4\n")
    folder = tmp_path / "parts"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.txt").write_text("1")
    (folder / "two.txt").write_text("2")
    (folder / "sub" / "three.txt").write_text("3")

    for task, field, given, output in (
        ("examples.files.count_lines", "report", report, "4"),
        ("examples.files.list_dir", "d", folder, ["one.txt", "sub", "two.txt"]),
    ):
        version = latest_version(server, "tasks", task)
        page.goto(f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/tasks/{task}/version/{version}")
        form = page.get_by_role("form", name="Launch")
        form.get_by_label(f"Upload {field}").set_input_files(str(given), timeout=UI_WAIT_MS)
        # The field now holds where the data proxy put it (the URI the task reads).
        expect(form.locator(f"#in-{field}")).to_have_value(re.compile(r".*/console-[0-9a-f]{20}/.*"), timeout=UI_WAIT_MS)
        form.get_by_role("button", name="Launch").click()
        page.wait_for_url(re.compile(r".*/executions/[a-z0-9]+$"), timeout=UI_WAIT_MS)
        expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
        outputs = page.get_by_role("table", name="Outputs", exact=True)
        cell = outputs.locator('tr[data-name="o0"] td')
        if isinstance(output, list):  # the directory's listing, one item each
            expect(cell.locator("li")).to_have_text(output, timeout=UI_WAIT_MS)
        else:
            expect(cell).to_have_text(output, timeout=UI_WAIT_MS)


# In-engine sleeps (flytekitplugins-sleep, as bench/workflows.py): many nodes, no processes.
FANOUT = """
from datetime import timedelta

from flytekit import dynamic, task, workflow
from flytekitplugins.sleep import Sleep


@task(task_config=Sleep())
def nap(duration: timedelta) -> None:
    ...


@dynamic
def leaves(n: int) -> int:
    for _ in range(n):
        nap(duration=timedelta(seconds=0))
    return n


@workflow
def fanout_wf(n: int = 70) -> int:
    return leaves(n=n)
"""


def test_map_indices_and_dynamic_children_expand_as_groups(server: Server, project, page: Page):
    # A map task: its node expands into one row per index (from the array node's task execution).
    name, url = run_remote(server, project, "examples/map_tasks.py", "squares_wf", "--xs", "[4, 5, 6, 7]")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    nodes = page.get_by_role("table", name="Nodes")
    nodes.get_by_role("button", name="Expand n0").click()
    indices = nodes.locator("tr.index-row")
    expect(indices).to_have_count(4, timeout=UI_WAIT_MS)
    expect(indices.first).to_contain_text("n0[0]")
    expect(indices.locator(".phase[data-phase='SUCCEEDED']")).to_have_count(4)
    expect(nodes.locator('tr[data-node="n0"]')).to_contain_text("(4 indices)")
    outputs = page.get_by_role("table", name="Outputs", exact=True)
    expect(outputs.locator('tr[data-name="o0"] td')).to_have_text("126")  # 16 + 25 + 36 + 49
    # A dynamic fan-out big enough to scroll: its children are drawn only where the table is.
    (project / "console_fanout.py").write_text(FANOUT)
    name, url = run_remote(server, project, "console_fanout.py", "fanout_wf", "--n", "70")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    nodes = page.get_by_role("table", name="Nodes")
    nodes.get_by_role("button", name="Expand n0").click()
    expect(nodes.locator('tr[data-node="n0"]')).to_contain_text("(70 children)", timeout=UI_WAIT_MS)
    drawn = nodes.locator("tbody tr[data-node]").count()
    assert drawn < 71, f"all {drawn} rows were drawn"
    page.locator(".vscroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(nodes.locator('tr[aria-rowindex="72"]')).to_be_visible(timeout=UI_WAIT_MS)


def graph_node(page: Page, key: str):
    return page.locator(f'svg.graph [data-node-id="{key}"]')


def expand_in_graph(page: Page, node_id: str):
    page.locator("svg.graph").get_by_role("button", name=f"Expand {node_id} in the graph", exact=True).click()


def test_the_graph_opens_subworkflows_in_place(server: Server, project, page: Page):
    """parent_wf(x=1): n0 is inc_four (two inc_twice subworkflows), each opens in the graph into
    its nodes, coloured by phase; an inner node opens its panel; collapsing hides them again."""
    name, url = run_remote(server, project, "examples/subworkflows.py", "parent_wf", "--x", "1")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    expect(graph_node(page, "n0-0-n0")).to_have_count(0)
    expand_in_graph(page, "n0")
    # inc_four's two subworkflow nodes, inside n0's box, with the edge between them.
    for inner in ("n0-0-n0", "n0-0-n1"):
        expect(graph_node(page, inner)).to_have_attribute("data-phase", "SUCCEEDED", timeout=UI_WAIT_MS)
    box = page.locator('svg.graph [data-cluster="n0"]')
    expect(box.locator("path.edge")).to_have_count(1)
    expect(graph_node(page, "n0-0-n0")).to_contain_text("inc_twice")
    # One level deeper: the two inc tasks of the first inc_twice.
    expand_in_graph(page, "n0-0-n0")
    deep = graph_node(page, "n0-0-n0-0-n1")
    expect(deep).to_have_attribute("data-phase", "SUCCEEDED", timeout=UI_WAIT_MS)
    expect(deep).to_contain_text("inc")
    # Its panel: inc(x=2) -> 3 (x=1 -> inc -> 2 -> inc -> 3).
    deep.click()
    panel = page.get_by_test_id("node-panel")
    expect(panel.get_by_role("heading", name="Node n0-0-n0-0-n1")).to_be_visible(timeout=UI_WAIT_MS)
    expect(panel.locator('table[aria-label="Node inputs"] tr[data-name="x"] td')).to_have_text("2", timeout=UI_WAIT_MS)
    expect(panel.locator('table[aria-label="Node outputs"] tr[data-name="o0"] td')).to_have_text("3")
    expect(page).to_have_url(re.compile(r"\?node=n0-0-n0-0-n1$"))
    page.locator("svg.graph").get_by_role("button", name="Collapse n0 in the graph", exact=True).click()
    expect(graph_node(page, "n0-0-n0")).to_have_count(0)
    expect(graph_node(page, "n0")).to_have_attribute("data-phase", "SUCCEEDED")
    # The workflow version's page opens the same subworkflows from the definition alone.
    page.locator("header.exec-header dl").get_by_role("link", name="examples.subworkflows.parent_wf", exact=True).click()
    expect(page).to_have_url(re.compile(r"/workflows/examples.subworkflows.parent_wf/version/"))
    expand_in_graph(page, "n0")
    expect(graph_node(page, "n0-0-n1")).to_contain_text("inc_twice", timeout=UI_WAIT_MS)
    expect(graph_node(page, "n0-0-n1")).not_to_contain_text("not started")


def test_the_graph_opens_dynamic_map_and_launch_plan_nodes_in_place(server: Server, project, page: Page):
    # A dynamic workflow: fib_wf(n=6) builds four fib_step nodes, each fed by the two before.
    name, url = run_remote(server, project, "examples/dynamic_wf.py", "fib_wf", "--n", "6")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    expand_in_graph(page, "n0")
    box = page.locator('svg.graph [data-cluster="n0"]')
    for i in range(4):
        expect(graph_node(page, f"n0-0-dn{i}")).to_have_attribute("data-phase", "SUCCEEDED", timeout=UI_WAIT_MS)
    expect(graph_node(page, "n0-0-dn0")).to_contain_text("fib_step")
    # The edges come from the workflow the dynamic node built (GetDynamicNodeWorkflow):
    # dn0->dn1, dn0->dn2, dn1->dn2, dn1->dn3, dn2->dn3.
    expect(box.locator("path.edge")).to_have_count(5, timeout=UI_WAIT_MS)

    # A map task: its indices as a summary (how many, per phase) and one chip per index.
    name, url = run_remote(server, project, "examples/map_tasks.py", "squares_wf", "--xs", "[4, 5, 6, 7]")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    expand_in_graph(page, "n0")
    summary = page.locator('svg.graph [data-summary="n0"]')
    expect(summary.locator(".summary-head")).to_have_text("4 indices", timeout=UI_WAIT_MS)
    expect(summary.locator(".summary-line")).to_have_text(["4 succeeded"])
    chips = summary.get_by_role("img")
    expect(chips).to_have_count(4)
    expect(summary.locator('[data-node-id="n0[2]"]')).to_have_attribute("data-phase", "SUCCEEDED")

    # A 70-leaf fan-out is summarised, not drawn as 70 nodes; a child opens from its chip.
    (project / "console_fanout.py").write_text(FANOUT)
    name, url = run_remote(server, project, "console_fanout.py", "fanout_wf", "--n", "70")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    expand_in_graph(page, "n0")
    summary = page.locator('svg.graph [data-summary="n0"]')
    expect(summary.locator(".summary-head")).to_have_text("70 children", timeout=UI_WAIT_MS)
    expect(summary.locator(".summary-line").first).to_have_text("70 succeeded")
    expect(summary.get_by_role("button")).to_have_count(24)
    expect(summary).to_contain_text("the first 24; all in the node table")
    assert page.locator("svg.graph .node").count() < 40
    summary.locator('[data-node-id="n0-0-dn5"]').click()
    expect(page.get_by_test_id("node-panel").get_by_role("heading", name="Node n0-0-dn5")).to_be_visible(
        timeout=UI_WAIT_MS
    )

    # A branch node opens into the branch it took: sign_wf(x=3) squares.
    name, url = run_remote(server, project, "examples/conditionals.py", "sign_wf", "--x", "3")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    expand_in_graph(page, "n0")
    taken = page.locator('svg.graph [data-cluster="n0"] g.node[data-phase]').filter(has_not_text="sign")
    expect(taken).to_have_count(1, timeout=UI_WAIT_MS)
    expect(taken).to_contain_text("square")
    expect(taken).to_have_attribute("data-phase", "SUCCEEDED")

    # A launch plan node opens into its child execution's nodes; one of them opens there.
    name, url = run_remote(server, project, "examples/launch_plans.py", "calls_lp_wf", "--x", "4")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    # The node table links the child execution (the gateway spells the field `executionId`).
    n0 = f"{server.url}/api/v1/node_executions/{PROJECT}/{DOMAIN}/{name}/n0"
    with urllib.request.urlopen(urllib.request.Request(n0, headers={"Accept": "application/json"})) as r:
        child = json.loads(r.read())["closure"]["workflow_node_metadata"]["executionId"]["name"]
    expect(page.get_by_role("table", name="Nodes").locator('tr[data-node="n0"]')).to_contain_text(f"→ {child}")
    expand_in_graph(page, "n0")
    inner = graph_node(page, "n0>n0")
    expect(inner).to_have_attribute("data-phase", "SUCCEEDED", timeout=UI_WAIT_MS)
    expect(inner).to_contain_text("scale")
    inner.click()
    page.wait_for_url(re.compile(rf".*/executions/{child}\?node=n0$"), timeout=UI_WAIT_MS)
    panel = page.get_by_test_id("node-panel")
    expect(panel.locator('table[aria-label="Node outputs"] tr[data-name="o0"] td')).to_have_text(
        "12", timeout=UI_WAIT_MS
    )  # triple: 4 * 3


SLOW_FANOUT = """
from datetime import timedelta

from flytekit import dynamic, task, workflow
from flytekitplugins.sleep import Sleep


@task(task_config=Sleep())
def nap(duration: timedelta) -> None:
    ...


@dynamic
def slow_leaves(n: int, seconds: int) -> int:
    for _ in range(n):
        nap(duration=timedelta(seconds=seconds))
    return n


@workflow
def slow_fanout_wf(n: int = 2, seconds: int = 12) -> int:
    return slow_leaves(n=n, seconds=seconds)
"""


def test_an_opened_dynamic_node_follows_its_childrens_phases_live(server: Server, project, page: Page):
    (project / "console_slow_fanout.py").write_text(SLOW_FANOUT)
    name, url = run_remote(server, project, "console_slow_fanout.py", "slow_fanout_wf", "--n", "2", "--seconds", "12")
    page.goto(url)
    page.evaluate("window.__not_reloaded = true")
    expect(graph_node(page, "n0")).to_have_attribute("data-phase", "DYNAMIC_RUNNING", timeout=RUN_WAIT_MS)
    expand_in_graph(page, "n0")
    leaf = graph_node(page, "n0-0-dn0")
    expect(leaf).to_have_attribute("data-phase", re.compile("^(QUEUED|RUNNING)$"), timeout=UI_WAIT_MS)
    expect(leaf).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    expect(graph_node(page, "n0-0-dn1")).to_have_attribute("data-phase", "SUCCEEDED", timeout=UI_WAIT_MS)
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    assert page.evaluate("window.__not_reloaded") is True


def test_the_schedules_view_lists_active_schedules_with_their_next_tick(server: Server, project, page: Page, browser):
    version = "cschv-" + uuid.uuid4().hex[:8]
    result = pyflyte(
        server, "register", "--project", PROJECT, "--domain", DOMAIN, "--version", version,
        "--activate-launchplans", "examples/schedules.py", cwd=project,
    )
    assert result.returncode == 0, f"pyflyte register failed:\n{result.stdout}\n{result.stderr}"
    try:
        page.goto(f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/executions")
        page.get_by_role("navigation", name="Sections").get_by_role("link", name="Schedules").click()
        table = page.get_by_role("table", name="Schedules")
        row = table.locator('tr[data-launch-plan="every_minute_lp"]')
        expect(row).to_contain_text("every 1 minute", timeout=UI_WAIT_MS)
        expect(table.locator('tr[data-launch-plan="cron_minutely_lp"]')).to_contain_text("cron")
        tick = row.locator("time")
        expected = (schedule_api(server, "every_minute_lp") or {}).get("next_ticks", [])
        first = tick.get_attribute("datetime")
        assert first in expected, (first, expected)
        # Live: the tick passes and the row moves on to the next one, with no reload; so does
        # the launch plan's schedule block, open in a page of its own.
        page.evaluate("window.__not_reloaded = true")
        other = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            lp_page = other.new_page()
            lp_page.goto(
                f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/launch_plans/every_minute_lp/version/{version}"
            )
            lp_ticks = lp_page.get_by_role("list", name="Next ticks").locator("time")
            expect(lp_ticks.first).to_have_attribute("datetime", first, timeout=UI_WAIT_MS)
            lp_page.evaluate("window.__not_reloaded = true")
            expect(tick).not_to_have_attribute("datetime", first, timeout=RUN_WAIT_MS)
            assert (tick.get_attribute("datetime") or "") > first
            expect(row.locator("td").nth(3)).not_to_have_text("none yet", timeout=UI_WAIT_MS)
            expect(lp_ticks.first).not_to_have_attribute("datetime", first, timeout=RUN_WAIT_MS)
            # The tick's execution shows up in the block's scheduled executions.
            expect(lp_page.get_by_role("table", name="Scheduled executions").locator("tbody tr")).not_to_have_count(
                0, timeout=RUN_WAIT_MS
            )
            assert lp_page.evaluate("window.__not_reloaded") is True
        finally:
            other.close()
        assert page.evaluate("window.__not_reloaded") is True
        row.get_by_role("link", name=re.compile("every_minute_lp")).click()
        expect(page).to_have_url(re.compile(rf"/launch_plans/every_minute_lp/version/{version}$"))
        expect(page.get_by_test_id("schedule-text")).to_have_text("every 1 minute", timeout=UI_WAIT_MS)
    finally:
        for lp in ("every_minute_lp", "cron_minutely_lp"):
            off = pyflyte(server, "launchplan", "--project", PROJECT, "--domain", DOMAIN, lp, version, "--deactivate")
            assert off.returncode == 0, f"deactivate {lp} failed:\n{off.stdout}\n{off.stderr}"
    page.goto(f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/schedules")
    expect(page.get_by_role("table", name="Schedules").locator('tr[data-launch-plan="every_minute_lp"]')).to_have_count(
        0, timeout=UI_WAIT_MS
    )


def test_a_nodes_deck_opens_from_its_panel(server: Server, project, page: Page):
    name, url = run_remote(server, project, "examples/data_access.py", "deck_wf", "--n", "3")
    page.goto(url + "?node=n0")
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    panel = page.get_by_test_id("node-panel")
    with page.context.expect_page() as opened:
        panel.get_by_role("button", name="Open the Flyte Deck").click(timeout=UI_WAIT_MS)
    deck = opened.value
    # The signed data-proxy link (CreateDownloadLink), served by the same server.
    deck.wait_for_url(re.compile(r".*/api/v1/dataproxy/download/.*"), timeout=UI_WAIT_MS)
    # flytekit's deck page: one tab per deck; "summary" is the task's own.
    expect(deck.locator("body")).to_contain_text("n squared is 9", timeout=UI_WAIT_MS)


TICKING = """
import time

from flytekit import task, workflow


@task
def ticks(n: int, pause: float) -> int:
    for i in range(1, n + 1):
        print(f"tick {i} of {n}", flush=True)
        time.sleep(pause)
    return n


@workflow
def ticking_wf(n: int = 3, pause: float = 4.0) -> int:
    return ticks(n=n, pause=pause)
"""


def test_live_updates_come_from_the_server_not_from_polling(server: Server, project, page: Page):
    """The page follows the server's events (docs/console.md, "Live updates"): the task's log
    lines appear one by one and the phase changes without a reload, and while nothing changes
    the page asks nothing (the old console re-read the execution every 2 s)."""
    (project / "console_live.py").write_text(TICKING)
    name, url = run_remote(server, project, "console_live.py", "ticking_wf", "--n", "3", "--pause", "4")
    watches: list[str] = []
    log_follows: list[str] = []
    reads: list[str] = []

    def seen(request):
        path = request.url.split("?")[0]
        if "/api/v1/watch/executions/" in path:
            watches.append(path)
        elif "/logs/" in path and "text/event-stream" in request.headers.get("accept", ""):
            log_follows.append(path)
        elif path.endswith(f"/api/v1/executions/{PROJECT}/{DOMAIN}/{name}"):
            reads.append(path)

    page.on("request", seen)
    page.goto(url + "?node=n0")
    page.evaluate("window.__not_reloaded = true")
    log = page.get_by_test_id("task-log")
    expect(log).to_contain_text("tick 1 of 3", timeout=RUN_WAIT_MS)
    expect(header_phase(page)).to_have_attribute("data-phase", "RUNNING", timeout=UI_WAIT_MS)
    expect(page.get_by_test_id("live")).to_have_text("● Live", timeout=UI_WAIT_MS)
    # The task sleeps between its lines: nothing changes, so nothing is read (no polling).
    reads_before = len(reads)
    expect(log).to_contain_text("tick 2 of 3", timeout=RUN_WAIT_MS)
    assert len(reads) == reads_before, f"the page re-read the execution while nothing changed: {reads}"
    expect(log).to_contain_text("tick 3 of 3", timeout=RUN_WAIT_MS)
    # The end comes as an event too: phase, node colour, outputs, all without a reload.
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    expect(page.locator('svg.graph [data-node-id="n0"]')).to_have_attribute(
        "data-phase", "SUCCEEDED", timeout=UI_WAIT_MS
    )
    outputs = page.get_by_role("table", name="Outputs", exact=True)
    expect(outputs.locator('tr[data-name="o0"] td')).to_have_text("3", timeout=UI_WAIT_MS)
    assert page.evaluate("window.__not_reloaded") is True
    assert watches == [f"{server.url}/api/v1/watch/executions/{PROJECT}/{DOMAIN}/{name}"], watches
    assert log_follows and all(p.endswith("/n0/0.log") for p in log_follows), log_follows
    # The log is complete and in order once the attempt ended.
    text = log.inner_text()
    assert text.index("tick 1 of 3") < text.index("tick 2 of 3") < text.index("tick 3 of 3")


def test_the_executions_list_updates_live(server: Server, project, page: Page):
    page.goto(f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/executions")
    expect(page.get_by_role("heading", name="Executions")).to_be_visible(timeout=UI_WAIT_MS)
    (project / "console_live.py").write_text(TICKING)
    name, _ = run_remote(server, project, "console_live.py", "ticking_wf", "--n", "1", "--pause", "2")
    row = page.locator(f'tr[data-execution="{name}"]')
    expect(row.locator(".phase")).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)


def test_approve_a_gate_and_set_a_typed_input_from_the_page(server: Server, project, page: Page):
    name, url = run_remote(server, project, "examples/gates.py", "approval_wf", "--x", "4")
    page.goto(url)
    signals = page.get_by_role("table", name="Signals")
    approve_row = signals.locator('tr[data-signal="approve-value"]')
    approve_row.get_by_role("button", name="Approve").click(timeout=RUN_WAIT_MS)
    expect(approve_row).to_contain_text("true", timeout=UI_WAIT_MS)
    note_row = signals.locator('tr[data-signal="note"]')
    note_row.get_by_label("Value of note").fill("looks good", timeout=RUN_WAIT_MS)
    note_row.get_by_role("button", name="Set").click()
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    # propose(4) = 40, approved, then apply(value, note).
    outputs = page.get_by_role("table", name="Outputs", exact=True)
    expect(outputs.locator('tr[data-name="o0"] td')).to_have_text("looks good: 40", timeout=UI_WAIT_MS)
    expect(note_row).to_contain_text("looks good")


def test_terminate_a_running_execution_from_the_page(server: Server, project, page: Page, remote):
    name, url = run_remote(server, project, "examples/failures.py", "sleepy_wf", "--seconds", "600")
    page.goto(url)
    expect(header_phase(page)).to_have_attribute("data-phase", "RUNNING", timeout=RUN_WAIT_MS)
    page.get_by_role("button", name="Terminate").click()
    page.get_by_role("button", name="Confirm terminate").click()
    expect(header_phase(page)).to_have_attribute("data-phase", "ABORTED", timeout=RUN_WAIT_MS)
    expect(page.get_by_role("button", name="Terminate")).to_have_count(0)
    expect(page.get_by_text("terminated from the console")).to_be_visible()
    execution = remote.fetch_execution(name=name)
    assert execution.closure.abort_metadata.cause == "terminated from the console"


def test_entity_deep_links_show_versions_and_interfaces(server: Server, project, page: Page, remote):
    name, _ = run_remote(server, project, "examples/basics.py", "hello_wf", "--name", "console")
    lp = remote.fetch_execution(name=name).spec.launch_plan
    base = f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}"
    # flytekit's generate_console_url form: …/{workflows|tasks|launch_plans}/{name}/version/{v}
    page.goto(f"{base}/workflows/{lp.name}/version/{lp.version}")
    expect(page.get_by_role("heading", name=f"workflow {lp.name}")).to_be_visible(timeout=UI_WAIT_MS)
    expect(page.get_by_role("table", name="Interface inputs")).to_contain_text("name")
    expect(page.get_by_role("table", name="Interface inputs")).to_contain_text("str")
    expect(page.locator('svg.graph [data-node-id="n0"]')).to_be_visible()

    page.goto(f"{base}/launch_plans/{lp.name}/version/{lp.version}")
    inputs = page.get_by_role("table", name="Launch plan inputs")
    expect(inputs).to_contain_text("world", timeout=UI_WAIT_MS)  # the default of hello_wf's name
    # Its executions, and activation (the server's state, read back after each click).
    expect(page.locator(f'tr[data-execution="{name}"]')).to_be_visible(timeout=UI_WAIT_MS)
    state = page.get_by_test_id("lp-state")
    expect(state).to_have_text(re.compile("^inactive$"))
    page.get_by_role("button", name="Activate").click()
    expect(state).to_have_text(re.compile("^active$"), timeout=UI_WAIT_MS)
    assert launch_plan_state(server, lp) == "ACTIVE"
    page.get_by_role("button", name="Deactivate").click()
    expect(state).to_have_text(re.compile("^inactive$"), timeout=UI_WAIT_MS)
    assert launch_plan_state(server, lp) == "INACTIVE"

    page.goto(f"{base}/tasks/examples.basics.say_hello/version/{lp.version}")
    expect(page.get_by_role("table", name="Interface outputs")).to_contain_text("str", timeout=UI_WAIT_MS)

    # The lists lead to the same pages.
    page.goto(f"{base}/workflows")
    page.get_by_role("link", name=lp.name, exact=True).click()
    page.get_by_role("link", name=lp.version, exact=True).click()
    expect(page.get_by_role("table", name="Interface inputs")).to_be_visible(timeout=UI_WAIT_MS)

    # Relaunch from the execution's page: the new run opens, says where it came from, succeeds.
    page.goto(f"{base}/executions/{name}")
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    page.get_by_role("button", name="Relaunch").click()
    expect(page.get_by_role("link", name=name, exact=True)).to_be_visible(timeout=UI_WAIT_MS)
    assert not page.url.endswith(f"/executions/{name}")
    expect(page.locator("header.exec-header .facts")).to_contain_text("relaunch")
    expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
    outputs = page.get_by_role("table", name="Outputs", exact=True)
    expect(outputs.locator('tr[data-name="o0"] td')).to_contain_text("console", timeout=UI_WAIT_MS)

    # A name that does not exist says so.
    page.goto(f"{base}/executions/doesnotexist0")
    expect(page.get_by_role("alert")).to_contain_text("No such execution", timeout=UI_WAIT_MS)


def schedule_api(server: Server, name: str) -> dict | None:
    """The server's view of a launch plan's active schedule (None: it has none)."""
    url = f"{server.url}/api/v1/schedules/{PROJECT}/{DOMAIN}/{name}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"})) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def test_a_scheduled_launch_plan_shows_its_schedule_and_next_ticks(server: Server, project, page: Page):
    """`pyflyte register --activate-launchplans` of the schedules example: the launch plan's page
    and its active version's page show the schedule as text, when it became active and its
    next three ticks; deactivated, the same page shows no schedule and no error."""
    version = "csched-" + uuid.uuid4().hex[:8]
    names = ["every_minute_lp", "cron_minutely_lp"]
    result = pyflyte(
        server, "register", "--project", PROJECT, "--domain", DOMAIN, "--version", version,
        "--activate-launchplans", "examples/schedules.py", cwd=project,
    )
    assert result.returncode == 0, f"pyflyte register failed:\n{result.stdout}\n{result.stderr}"
    base = f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/launch_plans"
    try:
        assert (schedule_api(server, "every_minute_lp") or {}).get("version") == version
        for url in (f"{base}/every_minute_lp", f"{base}/every_minute_lp/version/{version}"):
            page.goto(url)
            expect(page.get_by_role("heading", name="Schedule", exact=True)).to_be_visible(timeout=UI_WAIT_MS)
            expect(page.get_by_test_id("schedule-text")).to_have_text("every 1 minute")
            ticks = page.get_by_role("list", name="Next ticks").locator("time")
            expect(ticks).to_have_count(3)
            shown = [ticks.nth(i).get_attribute("datetime") for i in range(3)]
            assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t or "") for t in shown), shown
            assert shown == sorted(shown), shown
            expect(page.locator("dl[aria-label=Schedule]")).to_contain_text("Active since")
            expect(page.get_by_test_id("schedule-error")).to_have_count(0)
            # Its scheduled executions (none may have ticked yet): the list or its empty message.
            expect(page.get_by_role("heading", name="Recent scheduled executions")).to_be_visible()
            expect(
                page.get_by_role("table", name="Scheduled executions").or_(page.get_by_text("No scheduled executions yet."))
            ).to_be_visible(timeout=UI_WAIT_MS)
        page.goto(f"{base}/cron_minutely_lp")
        expect(page.get_by_test_id("schedule-text")).to_contain_text("cron", timeout=UI_WAIT_MS)
    finally:
        for name in names:
            off = pyflyte(server, "launchplan", "--project", PROJECT, "--domain", DOMAIN, name, version, "--deactivate")
            assert off.returncode == 0, f"deactivate {name} failed:\n{off.stdout}\n{off.stderr}"
    assert schedule_api(server, "every_minute_lp") is None
    # No active schedule: the version page loads without a schedule block and without an error.
    with page.expect_response(lambda r: "/api/v1/schedules/" in r.url) as answer:
        page.goto(f"{base}/every_minute_lp/version/{version}")
    assert answer.value.status == 404
    expect(page.get_by_test_id("lp-state")).to_have_text(re.compile("^inactive$"), timeout=UI_WAIT_MS)
    expect(page.get_by_role("heading", name="Recent scheduled executions")).to_have_count(0)
    expect(page.get_by_test_id("schedule-text")).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)


DOCUMENTED = '''
from flytekit import task, workflow


@task
def add(a: int, b: int) -> int:
    """
    Adds two numbers.

    A **longer** explanation, with <script>alert(1)</script> kept as text, and a list:

    - one
    - two

    :param a: the first addend
    :param b: the second addend
    :return: their sum
    """
    return a + b


@workflow
def documented_wf(a: int = 1, b: int = 2) -> int:
    """
    Adds up two numbers in a workflow.

    Documented at length, so that the console can show it in full.

    :param a: the first number
    :param b: the second number
    :return: the total
    """
    return add(a=a, b=b)
'''


def test_descriptions_are_shown_in_full(server: Server, project, page: Page):
    """flytekit registers each docstring as the version's description (short and long, RST)
    and its `:param:`s as the interface's variable descriptions: the pages show them, markup
    as elements and HTML in the text as text."""
    (project / "console_docs.py").write_text(DOCUMENTED)
    run_remote(server, project, "console_docs.py", "documented_wf")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    base = f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}"
    wf = "console_docs.documented_wf"
    version = latest_version(server, "workflows", wf)

    page.goto(f"{base}/workflows/{wf}/version/{version}")
    desc = page.get_by_role("region", name="Description")
    expect(desc.locator(".lead")).to_have_text("Adds up two numbers in a workflow.", timeout=UI_WAIT_MS)
    expect(desc).to_contain_text("Documented at length, so that the console can show it in full.")
    inputs = page.get_by_role("table", name="Interface inputs")
    expect(inputs.locator("tr", has_text="the first number")).to_contain_text("int")
    expect(page.get_by_role("table", name="Interface outputs")).to_contain_text("the total")

    page.goto(f"{base}/tasks/console_docs.add/version/{version}")
    desc = page.get_by_role("region", name="Description")
    expect(desc.locator(".lead")).to_have_text("Adds two numbers.", timeout=UI_WAIT_MS)
    expect(desc.locator("strong")).to_have_text("longer")
    expect(desc).to_contain_text("with <script>alert(1)</script> kept as text")
    expect(desc.locator("script")).to_have_count(0)
    expect(desc.locator("ul li")).to_have_text(["one", "two"])
    expect(page.get_by_role("table", name="Interface inputs")).to_contain_text("the second addend")

    # A launch plan has no description of its own: its page shows its workflow's, and the
    # launch form says what each input is.
    page.goto(f"{base}/launch_plans/{wf}/version/{version}")
    desc = page.get_by_role("region", name=re.compile("^Description"))
    expect(desc).to_contain_text("of its workflow", timeout=UI_WAIT_MS)
    expect(desc.locator(".lead")).to_have_text("Adds up two numbers in a workflow.")
    form = page.get_by_role("form", name="Launch")
    expect(form.locator('label[for="in-a"]')).to_contain_text("the first number")
    expect(page.get_by_role("table", name="Launch plan inputs")).to_contain_text("the second number")
    assert dialogs == []


DATASETS = '''
import pandas as pd
from flytekit import task, workflow


@task
def count_rows(df: pd.DataFrame) -> str:
    return f"{len(df)} rows, columns {','.join(map(str, df.columns))}, total {int(df['n'].sum())}"


@workflow
def dataset_wf(df: pd.DataFrame) -> str:
    return count_rows(df=df)
'''


def test_launch_with_a_structured_dataset_uploaded_from_the_form(server: Server, project, page: Page, tmp_path):
    """A `pd.DataFrame` input: the form uploads a CSV or a Parquet file through the data proxy
    and sends the StructuredDataset literal (URI and format); the task reads it."""
    import pandas as pd

    (project / "console_datasets.py").write_text(DATASETS)
    version = "csd-" + uuid.uuid4().hex[:8]
    result = pyflyte(
        server, "register", "--project", PROJECT, "--domain", DOMAIN, "--version", version, "console_datasets.py",
        cwd=project,
    )
    assert result.returncode == 0, f"pyflyte register failed:\n{result.stdout}\n{result.stderr}"
    frame = pd.DataFrame({"name": ["a", "b", "c"], "n": [1, 2, 4]})
    csv = tmp_path / "rows.csv"
    frame.to_csv(csv, index=False)
    parquet = tmp_path / "rows.parquet"
    pd.concat([frame, frame]).to_parquet(parquet, index=False)

    lp = f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/launch_plans/console_datasets.dataset_wf/version/{version}"
    for given, fmt, output in ((csv, "csv", "3 rows, columns name,n, total 7"), (parquet, "parquet", "6 rows, columns name,n, total 14")):
        page.goto(lp)
        form = page.get_by_role("form", name="Launch")
        form.get_by_label("Upload df").set_input_files(str(given), timeout=UI_WAIT_MS)
        expect(form.locator("#in-df")).to_have_value(re.compile(r".*/console-[0-9a-f]{20}/.*"), timeout=UI_WAIT_MS)
        expect(form.get_by_label("Format of df")).to_have_value(fmt)
        form.get_by_role("button", name="Launch").click()
        page.wait_for_url(re.compile(r".*/executions/[a-z0-9]+$"), timeout=UI_WAIT_MS)
        expect(header_phase(page)).to_have_attribute("data-phase", "SUCCEEDED", timeout=RUN_WAIT_MS)
        inputs = page.get_by_role("table", name="Inputs", exact=True)
        expect(inputs.locator('tr[data-name="df"] td')).to_contain_text(fmt, timeout=UI_WAIT_MS)
        outputs = page.get_by_role("table", name="Outputs", exact=True)
        expect(outputs.locator('tr[data-name="o0"] td')).to_have_text(output, timeout=UI_WAIT_MS)
