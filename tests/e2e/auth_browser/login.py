"""A headless "browser" for flytekit's logins against scripts/oidc.sh's provider.

PKCE: flytekit opens the provider's authorization URL with Python's `webbrowser` (which runs
`$BROWSER` and waits for it) and then waits for the redirect on localhost:53593. Run as
`BROWSER="python login.py %s"`, this returns at once and, in a child process, does what a
person would: follows the URL, fills the provider's login form (development logins: any name
and password), confirms the consent screen and follows the redirect back to flytekit's
callback with the code. Device flow: `complete(url, name)` does the same from the
verification URL flytekit prints (user code, login, consent).

The login name comes from FLYTERS_TEST_LOGIN (default alice).
"""

import html
import os
import re
import sys
import urllib.parse

import requests


def _attr(tag: str, name: str) -> str | None:
    m = re.search(rf'\b{name}="([^"]*)"', tag)
    return html.unescape(m.group(1)) if m else None


def _form(page: str, url: str) -> tuple[str, dict] | None:
    """The first form's action and its inputs' values (hidden ones included)."""
    form = re.search(r"<form\b[^>]*>", page)
    if not form:
        return None
    action = urllib.parse.urljoin(url, _attr(form.group(0), "action") or url)
    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", page):
        name = _attr(tag, "name")
        if name:
            fields[name] = _attr(tag, "value") or ""
    return action, fields


def complete(url: str, name: str) -> str:
    """Submits the provider's forms from `url` on as a person would; returns the last URL."""
    s = requests.Session()
    user_code = urllib.parse.parse_qs(urllib.parse.urlparse(url).query).get("user_code", [""])[0]
    r = s.get(url, timeout=30)
    for _ in range(8):
        if r.url.startswith("http://localhost:53593"):
            return r.url
        form = _form(r.text, r.url)
        if form is None:
            return r.url  # a page without a form: the end (device flow's success page)
        action, fields = form
        if "login" in fields:
            fields.update(prompt="login", login=name, password="any")
        elif "user_code" in fields and not fields["user_code"]:
            fields["user_code"] = user_code
        fields.pop("abort", None)
        r = s.post(action, data=fields, timeout=30)
        r.raise_for_status()
    raise SystemExit(f"login.py: too many forms; last page {r.url}")


if __name__ == "__main__":
    if os.fork() == 0:
        complete(sys.argv[1], os.environ.get("FLYTERS_TEST_LOGIN", "alice"))
        os._exit(0)
