"""The console signs in through the OpenID Connect provider (docs/auth.md, "The console").

A real provider (panva's oidc-provider from npm, scripts/oidc.sh) and flyte-rs with
`auth.enabled`; Chromium opens the console as a person would: the server sends it to the
provider's login form, the dev login (any name) is filled in, the consent confirmed, and the
browser lands back on the page it asked for, now showing the person's name and the
executions. The session is an HttpOnly cookie; a state-changing call made with the cookie
but without the CSRF header is refused 403, one with it goes through; after "Sign out" the
API answers 401 again.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import time
import typing
import uuid

import pytest
import requests

from conftest import (
    DOMAIN,
    EXAMPLES_PROJECT,
    PROJECT,
    REPO,
    Server,
    describe,
    pyflyte,
    start_server,
    stop_server,
    use_machine_client,
)

from auth_browser.login import _form
from playwright.sync_api import Browser, Page, expect, sync_playwright

AUDIENCE = "flyte-rs"
CONSOLE_ID = "flyte-console"
CONSOLE_SECRET = "flyte-console-secret"
CHROMIUM = os.environ.get("FLYTERS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
# Generous waits for a busy 2-core machine: these are not timing assertions.
UI_WAIT_MS = 60_000


@pytest.fixture(scope="module")
def oidc(tmp_path_factory) -> typing.Iterator[str]:
    """The provider's issuer URL. A provider that cannot start fails the tests (never skips)."""
    env = {
        **os.environ,
        "FLYTERS_OIDC_DATA": str(tmp_path_factory.mktemp("oidc-console")),
        "FLYTERS_OIDC_PORT": "9230",
        # The console's access tokens live 2 s: its session must refresh them.
        "FLYTERS_OIDC_CONSOLE_TOKEN_TTL": "2",
    }
    result = subprocess.run(
        [str(REPO / "scripts" / "oidc.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0 or not result.stdout.strip():
        pytest.fail(f"scripts/oidc.sh could not start the provider ({result.returncode}):\n{result.stderr}")
    yield result.stdout.strip().splitlines()[-1]
    subprocess.run([str(REPO / "scripts" / "oidc.sh"), "stop"], env=env, timeout=60)


@pytest.fixture(scope="module")
def server(oidc: str, tmp_path_factory) -> typing.Iterator[Server]:
    base = tmp_path_factory.mktemp("flyte-rs-console-login")
    srv = start_server(
        base,
        base / "data",
        env={
            "FLYTE_RS_AUTH__ENABLED": "true",
            "FLYTE_RS_AUTH__ISSUER": oidc,
            "FLYTE_RS_AUTH__AUDIENCE": AUDIENCE,
            # The console's client at the provider (docs/auth.md); the session key is made
            # in the data directory.
            "FLYTE_RS_AUTH__CONSOLE__CLIENT_ID": CONSOLE_ID,
            "FLYTE_RS_AUTH__CONSOLE__CLIENT_SECRET": CONSOLE_SECRET,
            # Expiry to the second (the default allows 30 s of clock skew).
            "FLYTE_RS_AUTH__LEEWAY_SECS": "0",
        },
    )
    use_machine_client(srv, base)
    yield srv
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


@pytest.fixture(scope="module")
def execution(server: Server) -> str:
    """An execution to list, launched by flytekit with its machine client."""
    name = "login" + uuid.uuid4().hex[:8]
    result = pyflyte(
        server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "examples/basics.py", "arithmetic_wf", "--a", "3",
        cwd=EXAMPLES_PROJECT,
    )
    assert result.returncode == 0, describe(result, server)
    return name


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


def _log_in(page: Page, oidc: str, name: str) -> None:
    """What a person does on the provider's pages: the dev login form, then the consent."""
    page.wait_for_url(f"{oidc}/**", timeout=UI_WAIT_MS)
    page.locator("input[name=login]").fill(name)
    page.locator("input[name=password]").fill("any password")
    page.locator("button[type=submit]").click()
    # The consent screen ("Authorize"): confirmed with its submit button.
    page.wait_for_url(f"{oidc}/interaction/**", timeout=UI_WAIT_MS)
    page.locator("button[type=submit]").first.click()


def test_the_console_logs_in_through_the_provider_and_keeps_a_session(
    server: Server, oidc: str, execution: str, page: Page
):
    executions = f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/executions"
    # Without a session the API refuses, and the console's page goes to the login.
    assert requests.get(f"{server.url}/api/v1/projects", timeout=30).status_code == 401
    page.goto(executions)
    assert page.url.startswith(oidc), f"not sent to the provider: {page.url}"
    _log_in(page, oidc, "carol")

    # Back on the page asked for, signed in: the name, the executions from the API.
    page.wait_for_url(executions, timeout=UI_WAIT_MS)
    expect(page.get_by_label("Signed in as")).to_have_text("carol", timeout=UI_WAIT_MS)
    expect(page.get_by_role("heading", name="Executions")).to_be_visible(timeout=UI_WAIT_MS)
    expect(page.get_by_text(execution).first).to_be_visible(timeout=UI_WAIT_MS)
    assert "console login" in server.log(), server.log()

    cookies = {c["name"]: c for c in page.context.cookies(server.url)}
    session, csrf = cookies.get("flyte_session"), cookies.get("flyte_csrf")
    assert session and csrf, cookies
    # The tokens are not readable by the page's script; the CSRF token is (the console
    # echoes it); both only on same-site navigations.
    assert session["httpOnly"] and not csrf["httpOnly"], cookies
    assert session["sameSite"] == "Lax" and csrf["sameSite"] == "Lax", cookies
    assert "flyte_login" not in cookies, "the login's state cookie outlived the login"

    # The session cookie alone, from plain HTTP (what a forged cross-site form would send):
    # reads are fine, a state-changing call is refused.
    jar = {"flyte_session": session["value"], "flyte_csrf": csrf["value"]}
    r = requests.get(f"{server.url}/api/v1/projects", cookies=jar, timeout=30)
    assert r.status_code == 200 and PROJECT in r.text, r.text
    project = "p" + uuid.uuid4().hex[:8]
    body = {"project": {"id": project, "name": project}}
    r = requests.post(f"{server.url}/api/v1/projects", json=body, cookies=jar, timeout=30)
    assert r.status_code == 403, (r.status_code, r.text)
    assert "x-csrf-token" in r.json()["message"], r.text
    r = requests.post(
        f"{server.url}/api/v1/projects", json=body, cookies=jar,
        headers={"x-csrf-token": "not-the-token"}, timeout=30,
    )
    assert r.status_code == 403, (r.status_code, r.text)
    r = requests.post(
        f"{server.url}/api/v1/projects", json=body, cookies=jar,
        headers={"x-csrf-token": csrf["value"]}, timeout=30,
    )
    assert r.status_code == 200, (r.status_code, r.text)
    # The access token in the session expires (2 s here): the next call refreshes it with
    # the refresh token and answers; the new session comes back as a cookie.
    time.sleep(3)
    r = requests.get(f"{server.url}/api/v1/projects", cookies=jar, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    renewed = r.cookies.get("flyte_session")
    assert renewed and renewed != session["value"], r.headers
    assert "console session refreshed" in server.log(), server.log()
    r = requests.get(f"{server.url}/api/v1/projects", cookies=dict(jar, flyte_session=renewed), timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    # A forged or altered session is no session.
    forged = dict(jar, flyte_session=session["value"][:-4] + "AAAA")
    assert requests.get(f"{server.url}/api/v1/projects", cookies=forged, timeout=30).status_code == 401

    # A session the server no longer accepts (here: its cookie gone) makes the console's next
    # API call answer 401, and the console goes to the login, which comes back to the page
    # (the provider remembers the person: no login form, at most its consent screen).
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url))
    page.context.clear_cookies(name="flyte_session")
    workflows = f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/workflows"
    with page.expect_request(lambda r: r.url.startswith(f"{server.url}/login?")):
        page.get_by_role("link", name="Workflows").click()
    # Until the provider has sent the browser back (confirming its consent screen if shown).
    for _ in range(UI_WAIT_MS // 250):
        if any(u.startswith(f"{server.url}/callback?") for u in seen):
            break
        if page.url.startswith(f"{oidc}/interaction/"):
            page.locator("button[type=submit]").first.click()
        page.wait_for_timeout(250)
    page.wait_for_url(workflows, timeout=UI_WAIT_MS)
    expect(page.get_by_label("Signed in as")).to_have_text("carol", timeout=UI_WAIT_MS)
    expect(page.get_by_text("examples.basics.arithmetic_wf").first).to_be_visible(timeout=UI_WAIT_MS)
    logins = [u for u in seen if u.startswith(f"{server.url}/login?")]
    assert any("redirect_url=%2Fconsole%2Fprojects" in u for u in logins), logins
    assert "flyte_session" in {c["name"] for c in page.context.cookies(server.url)}

    # Sign out: the cookies are gone and the console's API calls answer 401 again.
    page.get_by_role("link", name="Sign out").click()
    expect(page.get_by_text("You are signed out")).to_be_visible(timeout=UI_WAIT_MS)
    names = {c["name"] for c in page.context.cookies(server.url)}
    assert "flyte_session" not in names and "flyte_csrf" not in names, names
    assert page.request.get(f"{server.url}/api/v1/projects").status == 401


def test_login_refuses_a_foreign_state_and_an_open_redirect(server: Server, oidc: str):
    # A callback this browser did not start (no login cookie, or another state): refused.
    r = requests.get(f"{server.url}/callback?code=x&state=y", timeout=30)
    assert r.status_code == 400 and "No login is under way" in r.text, r.text
    s = requests.Session()
    r = s.get(f"{server.url}/login?redirect_url=https://evil.example/", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["location"].startswith(f"{oidc}/auth?"), r.headers
    assert "flyte_login" in s.cookies
    r = s.get(f"{server.url}/callback?code=x&state=not-mine", timeout=30)
    assert r.status_code == 400 and "state" in r.text, r.text
    # What the provider says is shown as text, never markup.
    r = s.get(f"{server.url}/callback?error=access_denied&error_description=<script>x</script>", timeout=30)
    assert r.status_code == 401 and "<script>" not in r.text and "&lt;script&gt;" in r.text, r.text

    # A login asked to return to another site completes on the console instead.
    r = s.get(f"{server.url}/login?redirect_url=https://evil.example/", timeout=30)
    for _ in range(6):
        if r.url.startswith(server.url):
            break
        action, fields = _form(r.text, r.url)
        if "login" in fields:
            fields.update(login="dave", password="any")
        fields.pop("abort", None)
        r = s.post(action, data=fields, timeout=30)
    assert r.url == f"{server.url}/console/", [h.headers.get("location") for h in r.history]
    assert r.status_code == 200
    me = s.get(f"{server.url}/me", headers={"Accept": "application/json"}, timeout=30)
    assert me.status_code == 200 and me.json()["subject"] == "dave", me.text
