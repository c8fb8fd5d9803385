"""Notifications through the real flytekit (docs/notifications.md): `pyflyte run --remote`
of a launch plan with Email and Slack notifications (flytesnacks/examples/notifications.py).
A real SMTP server (aiosmtpd) and an HTTP receiver are started by the test; the server is
pointed at them through its `notifications` settings. The receiver refuses its first
requests, so the webhook and Slack posts arrive after retries with backoff; each phase change
is notified once; `--disable-notifications` sends nothing."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import DOMAIN, EXAMPLES_PROJECT, PROJECT, describe, pyflyte, start_server, stop_server

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd (tests/e2e/requirements.txt)")


class Mailbox:
    """aiosmtpd handler: keeps every message received."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], object]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"


class Receiver:
    """An HTTP server recording JSON posts; answers 503 to the first `refuse` requests."""

    def __init__(self, refuse: int):
        self.refuse = refuse
        self.refused = 0
        self.posts: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    if receiver.refused < receiver.refuse:
                        receiver.refused += 1
                        status = 503
                    else:
                        receiver.posts.append((self.path, json.loads(body)))
                        status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def of(self, name: str) -> list[tuple[str, dict]]:
        with self.lock:
            return [p for p in self.posts if p[1].get("execution", {}).get("name") == name or name in json.dumps(p[1])]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _remote(server):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    return FlyteRemote(
        config=Config.auto(config_file=str(server.config_path)),
        default_project=PROJECT,
        default_domain=DOMAIN,
    )


def _wait_for(what: str, check, timeout: float, server):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s\n--- server log tail ---\n{server.log_path.read_text()[-4000:]}")
        time.sleep(0.2)


def _run(server, name: str, *options: str, inputs: tuple[str, ...] = ()):
    result = pyflyte(
        server,
        "run",
        "--remote",
        "--project",
        PROJECT,
        "--domain",
        DOMAIN,
        "--name",
        name,
        *options,
        "examples/notifications.py",
        "notify_lp",
        *inputs,
        cwd=EXAMPLES_PROJECT,
    )
    assert result.returncode == 0, describe(result, server)


def test_notifications_email_slack_webhook_with_retries(tmp_path):
    mailbox = Mailbox()
    smtp = aiosmtpd_controller.Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    # The first three posts are refused: Slack and the webhook are retried with backoff.
    receiver = Receiver(refuse=3)
    server = start_server(
        tmp_path / "srv",
        tmp_path / "data",
        env={
            "FLYTE_RS_NOTIFICATIONS__SMTP__HOST": "127.0.0.1",
            "FLYTE_RS_NOTIFICATIONS__SMTP__PORT": str(smtp.port),
            "FLYTE_RS_NOTIFICATIONS__SMTP__TLS": "none",
            "FLYTE_RS_NOTIFICATIONS__EMAIL__SENDER": "flyte-rs@example.com",
            "FLYTE_RS_NOTIFICATIONS__EMAIL__SUBJECT": "[{{ project }}/{{ domain }}] {{ name }} {{ phase }}",
            "FLYTE_RS_NOTIFICATIONS__SLACK__WEBHOOK_URL": f"{receiver.url}/slack",
            "FLYTE_RS_NOTIFICATIONS__WEBHOOKS": f'["{receiver.url}/hook"]',
            "FLYTE_RS_NOTIFICATIONS__POLL_MS": "100",
            "FLYTE_RS_NOTIFICATIONS__BACKOFF_INITIAL_MS": "300",
            "FLYTE_RS_NOTIFICATIONS__BACKOFF_MAX_MS": "2000",
        },
    )
    try:
        remote = _remote(server)
        ok, bad, quiet = (f"n{kind}{uuid.uuid4().hex[:8]}" for kind in ("ok", "bad", "off"))
        _run(server, ok)
        _run(server, bad, inputs=("--fail",))
        _run(server, quiet, "--disable-notifications")
        for name in (ok, bad, quiet):
            remote.wait(remote.fetch_execution(name=name), timeout=300)

        def mails_to(name):
            return [m for m in mailbox.messages if name in str(m[2]["Subject"])]

        # Success: one email, templated, to the launch plan's recipient; the webhook hears of it.
        _wait_for("the success email", lambda: mails_to(ok), 60, server)
        sender, rcpts, msg = mails_to(ok)[0]
        assert sender == "flyte-rs@example.com"
        assert rcpts == ["flyte-team@example.com"]
        assert msg["Subject"] == f"[{PROJECT}/{DOMAIN}] {ok} succeeded"
        body = msg.get_body().get_content()
        assert f"{server.url}/console/projects/{PROJECT}/domains/{DOMAIN}/executions/{ok}" in body, body

        # Failure: email with the error, Slack post, webhook JSON — after the refused posts.
        _wait_for("the failure email", lambda: mails_to(bad), 60, server)
        assert "asked to fail for world" in mails_to(bad)[0][2].get_body().get_content()
        _wait_for(
            "Slack and webhook posts for the failure",
            lambda: {p for p, _ in receiver.of(bad)} == {"/slack", "/hook"},
            60,
            server,
        )
        _wait_for("the success webhook", lambda: receiver.of(ok), 60, server)
        assert receiver.refused == 3, "the receiver was down at first"
        hook = next(b for p, b in receiver.of(bad) if p == "/hook")
        assert hook["execution"] == {"project": PROJECT, "domain": DOMAIN, "name": bad}
        assert hook["phase"] == "FAILED"
        assert "asked to fail for world" in hook["error"]
        assert hook["console_url"].endswith(f"/executions/{bad}")
        slack = next(b for p, b in receiver.of(bad) if p == "/slack")
        assert bad in slack["text"] and "failed" in slack["text"]

        # Give any duplicate a chance to show, then: one notification per phase change, and
        # nothing for the execution run with --disable-notifications.
        time.sleep(3)
        assert len(mails_to(ok)) == 1 and len(mails_to(bad)) == 1
        assert sorted(p for p, _ in receiver.of(bad)) == ["/hook", "/slack"]
        assert [p for p, _ in receiver.of(ok)] == ["/hook"], "Slack is asked for on failure only"
        assert not mails_to(quiet) and not receiver.of(quiet), "--disable-notifications sends nothing"
        log = server.log_path.read_text()
        assert "notification not delivered; retrying" in log
    finally:
        stop_server(server)
        smtp.stop()
        receiver.http.shutdown()
