"""A headless "browser" for flytekit's PKCE login against scripts/oidc.sh's provider.

flytekit opens the provider's authorization URL with Python's `webbrowser` (which runs
`$BROWSER`, waiting for it) and then waits for the redirect on localhost:53593. This script
returns at once and, in a child process, does what a person would: follows the URL, fills the
provider's login form (development logins: any name and password), confirms the consent
screen and follows the redirect back to flytekit's callback with the code.

Usage: BROWSER="python login.py %s" (the login name from FLYTERS_TEST_LOGIN, default alice).
"""

import html
import os
import re
import sys
import urllib.parse

import requests


def login(url: str, name: str) -> None:
    s = requests.Session()
    r = s.get(url, timeout=30)
    for _ in range(6):
        if r.url.startswith("http://localhost:53593"):
            return
        form = re.search(r'<form[^>]*action="([^"]+)"', r.text)
        if not form:
            raise SystemExit(f"login.py: no form at {r.url} ({r.status_code}): {r.text[:500]}")
        action = urllib.parse.urljoin(r.url, html.unescape(form.group(1)))
        if 'name="login"' in r.text:
            data = {"prompt": "login", "login": name, "password": "any"}
        else:
            data = {"prompt": "consent"}
        r = s.post(action, data=data, timeout=30)
    raise SystemExit(f"login.py: never redirected back to flytekit; last page {r.url}")


if __name__ == "__main__":
    if os.fork() == 0:
        login(sys.argv[1], os.environ.get("FLYTERS_TEST_LOGIN", "alice"))
        os._exit(0)
