"""Authentication (docs/auth.md) with a real OpenID Connect provider and the real flytekit.

The provider is panva's oidc-provider from npm, started by scripts/oidc.sh on a data directory
of this module's own (so `scripts/oidc.sh rotate` changes only its keys). flyte-rs runs with
`auth.enabled`; flytekit is configured with `authType: ClientSecret` (the provider's
confidential client) and registers and runs a workflow with `pyflyte run --remote` and
FlyteRemote. Calls without a token, with a token for another audience or an expired one are
refused with UNAUTHENTICATED (401 over REST); after the provider rotates its signing key, the
new key's tokens are accepted without a restart.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.request
import uuid

import grpc
import pytest
import requests
from flyteidl.admin import project_pb2
from flyteidl.service import admin_pb2_grpc, auth_pb2, auth_pb2_grpc, identity_pb2, identity_pb2_grpc

from conftest import (
    DOMAIN,
    EXAMPLES_PROJECT,
    OIDC_MACHINE_ID,
    OIDC_MACHINE_SECRET,
    PROJECT,
    REPO,
    Server,
    describe,
    pyflyte,
    start_server,
    stop_server,
    use_machine_client,
)

AUDIENCE = "flyte-rs"
MACHINE_ID = OIDC_MACHINE_ID
MACHINE_SECRET = OIDC_MACHINE_SECRET


@pytest.fixture(scope="module")
def oidc_data(tmp_path_factory) -> pathlib.Path:
    """The provider's data directory (scripts/oidc.sh keeps its keys, pid and port there)."""
    return tmp_path_factory.mktemp("oidc")


@pytest.fixture(scope="module")
def oidc(oidc_data: pathlib.Path) -> str:
    """The provider's issuer URL. A provider that cannot start fails the tests (never skips)."""
    env = {**os.environ, "FLYTERS_OIDC_DATA": str(oidc_data), "FLYTERS_OIDC_PORT": "9130"}
    result = subprocess.run(
        [str(REPO / "scripts" / "oidc.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0 or not result.stdout.strip():
        pytest.fail(f"scripts/oidc.sh could not start the provider ({result.returncode}):\n{result.stderr}")
    issuer = result.stdout.strip().splitlines()[-1]
    yield issuer
    subprocess.run([str(REPO / "scripts" / "oidc.sh"), "stop"], env=env, timeout=60)


@pytest.fixture(scope="module")
def auth_server(oidc: str, tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("flyte-rs-auth")
    srv = start_server(
        base,
        base / "data",
        env={
            "FLYTE_RS_AUTH__ENABLED": "true",
            "FLYTE_RS_AUTH__ISSUER": oidc,
            "FLYTE_RS_AUTH__AUDIENCE": AUDIENCE,
            # Expiry is checked to the second here (the default allows 30 s of clock skew),
            # and a rotated key is fetched at the first token that names it.
            "FLYTE_RS_AUTH__LEEWAY_SECS": "0",
            "FLYTE_RS_AUTH__JWKS_MIN_REFRESH_SECS": "0",
        },
    )
    use_machine_client(srv, base)
    yield srv
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


def _token(issuer: str, resource: str | None = None) -> str:
    data = {"grant_type": "client_credentials", "scope": "all"}
    if resource:
        data["resource"] = resource
    r = requests.post(f"{issuer}/token", data=data, auth=(MACHINE_ID, MACHINE_SECRET), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _header(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


def _list_projects(srv: Server, token: str | None, key: str = "authorization"):
    metadata = [(key, f"Bearer {token}")] if token else []
    with grpc.insecure_channel(srv.endpoint) as channel:
        return admin_pb2_grpc.AdminServiceStub(channel).ListProjects(
            project_pb2.ProjectListRequest(limit=10), metadata=metadata, timeout=30
        )


def _refusal(srv: Server, token: str | None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        _list_projects(srv, token)
    return err.value


def _http(url: str, token: str | None = None) -> tuple[int, dict, typing.Any]:
    """Status, headers (lower-case names) and body (decoded if JSON) of a GET."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        resp = urllib.request.urlopen(req, timeout=30)
    except urllib.error.HTTPError as e:
        resp = e
    with resp:
        headers = {k.lower(): v for k, v in resp.headers.items()}
        body = resp.read()
        if headers.get("content-type", "").startswith("application/json"):
            body = json.loads(body)
        return resp.status, headers, body


def test_without_a_token_only_the_login_metadata_answers(auth_server: Server, oidc: str):
    err = _refusal(auth_server, None)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    assert oidc in err.details() and "Bearer" in err.details(), err.details()

    status, headers, body = _http(f"{auth_server.url}/api/v1/projects")
    assert status == 401, body
    assert headers.get("www-authenticate") == "Bearer", headers
    assert body["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0], body
    status, _, _ = _http(f"{auth_server.url}/me")
    assert status == 401

    # What a client reads to log in, without a token: the provider's endpoints...
    status, _, doc = _http(f"{auth_server.url}/.well-known/oauth-authorization-server")
    assert status == 200 and doc["issuer"] == oidc and doc["token_endpoint"] == f"{oidc}/token", doc
    status, _, doc = _http(f"{auth_server.url}/.well-known/openid-configuration")
    assert status == 200 and doc["jwks_uri"] == f"{oidc}/jwks", doc
    with grpc.insecure_channel(auth_server.endpoint) as channel:
        stub = auth_pb2_grpc.AuthMetadataServiceStub(channel)
        meta = stub.GetOAuth2Metadata(auth_pb2.OAuth2MetadataRequest(), timeout=30)
        client = stub.GetPublicClientConfig(auth_pb2.PublicClientAuthConfigRequest(), timeout=30)
    assert meta.issuer == oidc and meta.authorization_endpoint == f"{oidc}/auth", meta
    assert "client_credentials" in meta.grant_types_supported, meta
    # ...and the public client flytekit's PKCE login uses.
    assert client.client_id == "flytectl" and client.audience == AUDIENCE, client
    assert client.redirect_uri == "http://localhost:53593/callback" and list(client.scopes) == ["all"], client
    assert client.authorization_metadata_key == "flyte-authorization", client
    status, _, body = _http(f"{auth_server.url}/config/v1/flyte_client")
    # Through the REST gateway: lowerCamelCase for a request that is not application/json.
    assert status == 200 and body["clientId"] == "flytectl", body
    status, _, _ = _http(f"{auth_server.url}/healthcheck")
    assert status == 200


def test_a_valid_token_works_over_grpc_and_rest_and_names_the_caller(auth_server: Server, oidc: str):
    token = _token(oidc)
    projects = _list_projects(auth_server, token)
    assert PROJECT in [p.id for p in projects.projects]
    # flyteadmin's own metadata key works as well as `authorization`.
    assert _list_projects(auth_server, token, key="flyte-authorization").projects

    status, _, body = _http(f"{auth_server.url}/api/v1/projects", token)
    assert status == 200 and PROJECT in [p["id"] for p in body["projects"]], body

    with grpc.insecure_channel(auth_server.endpoint) as channel:
        me = identity_pb2_grpc.IdentityServiceStub(channel).UserInfo(
            identity_pb2.UserInfoRequest(), metadata=[("authorization", f"Bearer {token}")], timeout=30
        )
    assert me.subject == MACHINE_ID, me
    assert list(me.additional_claims["groups"]) == ["flyte-machines"], me
    status, _, body = _http(f"{auth_server.url}/me", token)
    assert status == 200 and body["subject"] == MACHINE_ID, body
    assert body["additionalClaims"]["aud"] == AUDIENCE, body


def test_flytekit_with_client_secret_registers_and_runs(auth_server: Server, tmp_path):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    name = "auth" + uuid.uuid4().hex[:10]
    result = pyflyte(
        auth_server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "examples/basics.py", "arithmetic_wf", "--a", "3",
        cwd=EXAMPLES_PROJECT,
    )
    assert result.returncode == 0, describe(result, auth_server)
    remote = FlyteRemote(
        config=Config.auto(config_file=str(auth_server.config_path)),
        default_project=PROJECT,
        default_domain=DOMAIN,
    )
    execution = remote.wait(remote.fetch_execution(name=name), timeout=datetime.timedelta(minutes=5))
    assert execution.closure.phase == 4, (execution.closure, auth_server.log())  # SUCCEEDED
    # values [3, 2, 5, 7]: a, b, add(3, 2), add(5, 2)
    assert execution.outputs["total"] == 17 and execution.outputs["mean"] == 4.25, execution.outputs
    # FlyteRemote's own calls carry its token too.
    wf = remote.fetch_workflow(name="examples.basics.arithmetic_wf")
    assert "a" in wf.interface.inputs
    # Authorization off, authentication on: nothing refused, the launch audited with who did it.
    audit = [line.replace('"', "") for line in auth_server.log().splitlines() if " audit: " in line]
    assert any(
        f"subject={MACHINE_ID}" in line and "method=CreateExecution" in line and f"name={name}" in line
        and "code=Ok" in line
        for line in audit
    ), audit


def test_tokens_for_another_audience_or_expired_are_refused(auth_server: Server, oidc: str):
    other = _token(oidc, resource="http://other-api/")
    err = _refusal(auth_server, other)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    assert "audience" in err.details() and "other-api" in err.details(), err.details()

    # The provider's short-lived resource: the same audience, 1 s of life.
    short = _token(oidc, resource="http://flyte-rs/short-lived")
    exp = json.loads(base64.urlsafe_b64decode(short.split(".")[1] + "=="))["exp"]
    while time.time() < exp + 1:
        time.sleep(0.2)
    err = _refusal(auth_server, short)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    assert "expired" in err.details(), err.details()

    # Another token's claims under this one's signature.
    head, _, sig = _token(oidc).split(".")
    claims = base64.urlsafe_b64encode(json.dumps({"iss": oidc, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 600}).encode())
    err = _refusal(auth_server, f"{head}.{claims.decode().rstrip('=')}.{sig}")
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "signature" in err.details(), err.details()


def test_after_the_provider_rotates_its_key_new_tokens_are_accepted(
    auth_server: Server, oidc: str, oidc_data: pathlib.Path
):
    before = _token(oidc)
    assert _list_projects(auth_server, before).projects
    rotated = subprocess.run(
        [str(REPO / "scripts" / "oidc.sh"), "rotate"],
        env={**os.environ, "FLYTERS_OIDC_DATA": str(oidc_data)},
        capture_output=True, text=True, timeout=600,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip().splitlines()[-1] == oidc, rotated.stdout
    after = _token(oidc)
    assert _header(after)["kid"] != _header(before)["kid"]
    assert _list_projects(auth_server, after).projects
    # The previous key is still published: its tokens stay good until they expire.
    assert _list_projects(auth_server, before).projects
    # Fetched at start and again for the new key's first token, without a restart.
    assert auth_server.log().count("fetched the provider's signing keys") == 2, auth_server.log()


def test_a_person_logs_in_with_pkce_through_the_provider(auth_server: Server, tmp_path, monkeypatch):
    """flytekit's default `authType: Pkce`: its first call is refused, it reads the public client
    from GetPublicClientConfig, opens the provider's login in a "browser" (a headless one that
    fills the provider's forms) and gets the code on localhost:53593."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"admin:\n  endpoint: dns:///127.0.0.1:{auth_server.port}\n  insecure: true\n  authType: Pkce\n"
    )
    monkeypatch.setenv("BROWSER", f"{sys.executable} {pathlib.Path(__file__).parent / 'auth_browser' / 'login.py'} %s")
    monkeypatch.setenv("FLYTERS_TEST_LOGIN", "alice")
    script = (
        "from flytekit.configuration import Config\n"
        "from flytekit.remote import FlyteRemote\n"
        "from flyteidl.service import identity_pb2, identity_pb2_grpc\n"
        f"r = FlyteRemote(Config.auto(config_file={str(config)!r}), default_project={PROJECT!r}, default_domain={DOMAIN!r})\n"
        "print('projects', [p.id for p in r.client.list_projects_paginated(limit=10)[0]])\n"
        "me = identity_pb2_grpc.IdentityServiceStub(r.client._channel).UserInfo(identity_pb2.UserInfoRequest())\n"
        "print('me', me.subject, me.email, list(me.additional_claims['groups']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_", "FLYTECTL_"))}
    # No token from an earlier run in a system keyring: the login must happen here.
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout, result.stderr, auth_server.log()[-3000:])
    assert f"'{PROJECT}'" in result.stdout, result.stdout
    # The person's identity, not a machine's: the token came from alice's login.
    assert "me alice alice@example.com ['flyte-users']" in result.stdout, result.stdout


def test_auth_off_on_a_network_address_warns_once_at_start(tmp_path):
    from conftest import READY_PREFIX, _binary, _clean_env

    log = tmp_path / "server.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [str(_binary()), "start", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "data")],
            env=_clean_env({"FLYTE_RS_SERVER__ALLOW_CLEARTEXT": "true", "FLYTE_RS_ENGINE__AUTO_VENV": "false"}),
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=tmp_path,
        )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(READY_PREFIX):
                break
        else:
            pytest.fail(f"flyte-rs exited before it was ready:\n{log.read_text()}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert log.read_text().count("AUTHENTICATION IS OFF") == 1, log.read_text()


def test_a_person_logs_in_with_the_device_flow(auth_server: Server, tmp_path):
    """flytekit's `authType: DeviceFlow`: it prints the provider's verification URL and polls the
    token endpoint while the person (here: auth_browser/login.py) enters the code and logs in."""
    sys.path.insert(0, str(pathlib.Path(__file__).parent / "auth_browser"))
    import login

    config = tmp_path / "config.yaml"
    config.write_text(
        f"admin:\n  endpoint: dns:///127.0.0.1:{auth_server.port}\n  insecure: true\n  authType: DeviceFlow\n"
    )
    script = (
        "from flytekit.configuration import Config\n"
        "from flytekit.remote import FlyteRemote\n"
        "from flyteidl.service import identity_pb2, identity_pb2_grpc\n"
        f"r = FlyteRemote(Config.auto(config_file={str(config)!r}), default_project={PROJECT!r}, default_domain={DOMAIN!r})\n"
        "print('projects', [p.id for p in r.client.list_projects_paginated(limit=10)[0]], flush=True)\n"
        "me = identity_pb2_grpc.IdentityServiceStub(r.client._channel).UserInfo(identity_pb2.UserInfoRequest())\n"
        "print('me', me.subject, list(me.additional_claims['groups']), flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_", "FLYTECTL_"))}
    env.update(PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", NO_COLOR="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            m = re.search(r"(http://\S+user_code=[\w-]+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
            if m:
                login.complete(m.group(1), "bob")
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(out)
    assert proc.returncode == 0, text[-4000:] + "\n--- server log ---\n" + auth_server.log()[-2000:]
    assert "navigate in a browser" in text and f"'{PROJECT}'" in text, text
    assert "me bob ['flyte-users']" in text, text


# --- authorization (docs/auth.md "Roles"): a second server with auth.authorization on ---------

LP_NAME = "examples.basics.arithmetic_wf"


@pytest.fixture(scope="module")
def authz_server(oidc: str, tmp_path_factory) -> Server:
    """flyte-rs with roles: the machine client is a platform admin, alice (a person, PKCE) a
    viewer of the project, bob an executor in its development domain."""
    base = tmp_path_factory.mktemp("flyte-rs-authz")
    srv = start_server(
        base,
        base / "data",
        env={
            "FLYTE_RS_AUTH__ENABLED": "true",
            "FLYTE_RS_AUTH__ISSUER": oidc,
            "FLYTE_RS_AUTH__AUDIENCE": AUDIENCE,
            "FLYTE_RS_AUTH__AUTHORIZATION__ENABLED": "true",
            "FLYTE_RS_AUTH__AUTHORIZATION__PLATFORM_ADMINS": f'["user:{MACHINE_ID}"]',
            "FLYTE_RS_AUTH__AUTHORIZATION__BINDINGS": (
                f'[{{user="alice@example.com", role="viewer", project="{PROJECT}"}}, '
                f'{{user="bob", role="executor", project="{PROJECT}", domain="{DOMAIN}"}}]'
            ),
        },
    )
    secret = base / "client_secret"
    secret.write_text(MACHINE_SECRET)
    srv.config_path.write_text(
        srv.config_path.read_text().replace(
            "  insecure: true\n",
            f"  insecure: true\n  authType: ClientSecret\n  clientId: {MACHINE_ID}\n"
            f"  clientSecretLocation: {secret}\n",
        )
    )
    # The platform admin registers (and runs) the workflow the others use.
    result = pyflyte(
        srv, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN,
        "examples/basics.py", "arithmetic_wf", "--a", "1",
        cwd=EXAMPLES_PROJECT,
    )
    assert result.returncode == 0, describe(result, srv)
    yield srv
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


def _as_person(srv: Server, tmp_path: pathlib.Path, login: str, body: str) -> tuple[str, int]:
    """Runs `body` (Python, with `r` a FlyteRemote) as `login` logged in with PKCE; its output
    and how many times flytekit opened the login page."""
    config = tmp_path / "config.yaml"
    config.write_text(f"admin:\n  endpoint: dns:///127.0.0.1:{srv.port}\n  insecure: true\n  authType: Pkce\n")
    logins = tmp_path / "logins"
    browser = pathlib.Path(__file__).parent / "auth_browser" / "login.py"
    script = (
        "from flytekit.configuration import Config\n"
        "from flytekit.remote import FlyteRemote\n"
        f"r = FlyteRemote(Config.auto(config_file={str(config)!r}), default_project={PROJECT!r}, default_domain={DOMAIN!r})\n"
        "def refusal(e):\n"
        "    c = e.__cause__ if e.__cause__ is not None else e\n"
        "    return f'{type(e).__name__} {c.code().name} {c.details()}'\n"
        + body
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_", "FLYTECTL_"))}
    env.update(
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        FLYTERS_TEST_LOGIN=login,
        # Counts the logins flytekit starts: exactly one expected, a refusal must not start one.
        BROWSER=f"sh -c 'echo login >> {logins}; exec {sys.executable} {browser} \"$0\"' %s",
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout, result.stderr, srv.log()[-3000:])
    count = len(logins.read_text().splitlines()) if logins.exists() else 0
    return result.stdout, count


def test_a_viewer_lists_but_is_refused_launching_and_registering(authz_server: Server, tmp_path):
    out, logins = _as_person(
        authz_server, tmp_path, "alice",
        "print('projects', [p.id for p in r.client.list_projects_paginated(limit=10)[0]], flush=True)\n"
        f"lp = r.fetch_launch_plan(name={LP_NAME!r})\n"
        "print('fetched', lp.id.name, flush=True)\n"
        "try:\n"
        "    r.execute(lp, inputs={'a': 3})\n"
        "    print('launched')\n"
        "except Exception as e:\n"
        "    print('launch refused:', refusal(e), flush=True)\n"
        "from flyteidl.admin import task_pb2\n"
        "from flyteidl.core import identifier_pb2\n"
        "try:\n"
        "    r.client._stub.CreateTask(task_pb2.TaskCreateRequest(id=identifier_pb2.Identifier(\n"
        f"        resource_type=identifier_pb2.TASK, project={PROJECT!r}, domain={DOMAIN!r}, name='x', version='v1')))\n"
        "    print('registered')\n"
        "except Exception as e:\n"
        "    print('register refused:', refusal(e), flush=True)\n",
    )
    assert f"projects ['{PROJECT}']" in out, out
    assert f"fetched {LP_NAME}" in out, out
    where = f"on project `{PROJECT}`, domain `{DOMAIN}`"
    assert (
        f"launch refused: FlyteSystemException PERMISSION_DENIED user `alice` (alice@example.com) "
        f"lacks the `execute` permission {where}" in out
    ), out
    assert "register refused: FlyteSystemException PERMISSION_DENIED" in out, out
    assert f"lacks the `register` permission {where}" in out, out
    # PERMISSION_DENIED is not UNAUTHENTICATED: flytekit did not log in again.
    assert logins == 1, (logins, out)
    # Refused mutating calls are audited with who, what, where and the outcome.
    log = authz_server.log()
    audit = [line for line in log.splitlines() if "audit" in line and "CreateExecution" in line and "alice" in line]
    assert audit and "PermissionDenied" in audit[-1] and PROJECT in audit[-1], log[-3000:]


def test_an_executor_runs_a_registered_launch_plan(authz_server: Server, tmp_path):
    out, logins = _as_person(
        authz_server, tmp_path, "bob",
        "import datetime\n"
        f"lp = r.fetch_launch_plan(name={LP_NAME!r})\n"
        "ex = r.wait(r.execute(lp, inputs={'a': 3}), timeout=datetime.timedelta(minutes=5))\n"
        "print('phase', ex.closure.phase, 'outputs', ex.outputs['total'], ex.outputs['mean'], flush=True)\n"
    )
    assert "phase 4 outputs 17 4.25" in out, (out, authz_server.log()[-3000:])  # SUCCEEDED
    assert logins == 1, (logins, out)
    # The launch is audited once (its name is the server's choice: the request named none).
    audit = [
        line.replace('"', "") for line in authz_server.log().splitlines()
        if " audit: " in line and "method=CreateExecution" in line.replace('"', "") and "subject=bob" in line.replace('"', "")
    ]
    assert len(audit) == 1, audit
    assert f"project={PROJECT} domain={DOMAIN}" in audit[0] and "code=Ok" in audit[0], audit


# --- task identity (docs/auth.md "Tasks that call the platform") -------------------------------

CALLBACK_WF = '''
import datetime
import os

from flytekit import task, workflow


# The timeout bounds a task that gets no credentials: flytekit would wait for a browser login.
@task(timeout=datetime.timedelta(minutes=3))
def call_platform(project: str) -> str:
    """Launches the registered arithmetic_wf in `project` with FlyteRemote, as the task."""
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    r = FlyteRemote(
        Config.auto(), default_project=project, default_domain=os.environ["FLYTE_INTERNAL_EXECUTION_DOMAIN"]
    )
    try:
        lp = r.fetch_launch_plan(name="examples.basics.arithmetic_wf")
        return "launched " + r.execute(lp, inputs={"a": 3}).id.name
    except Exception as e:
        c = e.__cause__ if e.__cause__ is not None else e
        code = c.code().name if hasattr(c, "code") else type(c).__name__
        return f"refused {code} {c.details() if hasattr(c, 'details') else c}"


@workflow
def callback_wf(project: str) -> str:
    return call_platform(project=project)
'''


def _admin_remote(srv: Server):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    return FlyteRemote(Config.auto(config_file=str(srv.config_path)), default_project=PROJECT, default_domain=DOMAIN)


def _run_callback(srv: Server, tmp_path: pathlib.Path, project: str):
    """Runs callback_wf (registered by the platform admin) for `project`; its execution."""
    (tmp_path / "callback.py").write_text(CALLBACK_WF)
    name = "cb" + uuid.uuid4().hex[:10]
    result = pyflyte(
        srv, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "callback.py", "callback_wf", "--project", project,
        cwd=tmp_path,
    )
    assert result.returncode == 0, describe(result, srv)
    remote = _admin_remote(srv)
    ex = remote.wait(remote.fetch_execution(name=name), timeout=datetime.timedelta(minutes=5))
    assert ex.closure.phase == 4, (ex.closure, srv.log()[-4000:])  # SUCCEEDED
    return remote, ex


def test_a_task_calls_the_platform_as_its_execution_in_its_own_project(authz_server: Server, tmp_path):
    remote, ex = _run_callback(authz_server, tmp_path, PROJECT)
    out = ex.outputs["o0"]
    assert out.startswith("launched "), (out, authz_server.log()[-4000:])
    child = remote.wait(
        remote.fetch_execution(name=out.split()[1]), timeout=datetime.timedelta(minutes=5)
    )
    assert child.closure.phase == 4 and child.outputs["total"] == 17, child.closure
    # The launch is audited as the task's execution, not as the person who started it.
    subject = f"execution:{PROJECT}/{DOMAIN}/{ex.id.name}"
    audit = [
        line.replace('"', "") for line in authz_server.log().splitlines()
        if " audit: " in line and "method=CreateExecution" in line.replace('"', "")
    ]
    assert any(f"subject={subject}" in line and "code=Ok" in line for line in audit), audit


def test_a_task_is_refused_in_another_project(authz_server: Server, tmp_path):
    _, ex = _run_callback(authz_server, tmp_path, "other-project")
    out = ex.outputs["o0"]
    subject = f"execution:{PROJECT}/{DOMAIN}/{ex.id.name}"
    assert out.startswith(
        f"refused PERMISSION_DENIED the task token of execution `{subject}` lacks the `read` "
        f"permission on project `other-project`, domain `{DOMAIN}`"
    ), out


def _task_token(srv: Server, project: str, exp: int, key_file: pathlib.Path | None = None) -> str:
    """A task token signed with the server's task key (as the server mints them), expiring at
    `exp`: the key file is the server's data dir's."""
    import hashlib

    import jwt
    from cryptography.hazmat.primitives import serialization

    key_file = key_file or (srv.data_dir / "task-token.key")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    # ring's PKCS#8 v2 document (RFC 5958, with the public key), which cryptography does not
    # read: the 32-byte seed follows its 16-byte prefix.
    der = base64.b64decode(key_file.read_text().strip())
    assert der[2:16] == bytes.fromhex("020101300506032b657004220420"), der[:16].hex()
    key = Ed25519PrivateKey.from_private_bytes(der[16:48])
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = "flyte-rs-task-" + hashlib.sha256(public).hexdigest()[:16]
    scope = {"project": project, "domain": DOMAIN, "execution": "x1", "attempt": "n0/0"}
    claims = {
        "iss": "flyte-rs:task-identity", "aud": AUDIENCE, "sub": f"execution:{project}/{DOMAIN}/x1",
        "iat": exp - 60, "exp": exp, "flyte_task": scope,
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def test_an_expired_task_token_is_refused(authz_server: Server):
    from flyteidl.admin import common_pb2

    def list_launch_plans(token: str):
        with grpc.insecure_channel(authz_server.endpoint) as channel:
            return admin_pb2_grpc.AdminServiceStub(channel).ListLaunchPlanIds(
                common_pb2.NamedEntityIdentifierListRequest(project=PROJECT, domain=DOMAIN, limit=10),
                metadata=[("authorization", f"Bearer {token}")], timeout=30,
            )

    # Valid now: the server accepts its own key's token (the check is not the test's mistake).
    assert list_launch_plans(_task_token(authz_server, PROJECT, int(time.time()) + 600)) is not None
    with pytest.raises(grpc.RpcError) as err:
        list_launch_plans(_task_token(authz_server, PROJECT, int(time.time()) - 3600))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value
    assert "expired" in err.value.details(), err.value.details()


def test_bindings_and_the_audit_trail_over_rest(authz_server: Server, oidc: str):
    """The real server wires the stored audit and the bindings API: the platform admin (the
    machine client) reads the launch the fixture made and adds/removes a binding."""
    token = _token(oidc)
    status, _, body = _http(f"{authz_server.url}/api/v1/auth/audit?project={PROJECT}&limit=50", token)
    assert status == 200, body
    assert any(
        r["subject"] == MACHINE_ID and r["method"] == "CreateExecution" and r["code"] == "Ok"
        for r in body["records"]
    ), body
    status, _, body = _http(f"{authz_server.url}/api/v1/auth/bindings", token)
    assert status == 200, body
    assert {"user": "bob", "role": "executor", "project": PROJECT, "domain": DOMAIN} in body["configured"], body
    headers = {"Authorization": f"Bearer {token}"}
    r = requests.post(
        f"{authz_server.url}/api/v1/auth/bindings", headers=headers, timeout=30,
        json={"group": "ml-team", "role": "viewer", "project": PROJECT},
    )
    assert r.status_code == 200, r.text
    listed = requests.get(f"{authz_server.url}/api/v1/auth/bindings", headers=headers, timeout=30).json()
    assert any(b.get("group") == "ml-team" and b["createdBy"] == MACHINE_ID for b in listed["bindings"]), listed
    r = requests.delete(f"{authz_server.url}/api/v1/auth/bindings/{r.json()['id']}", headers=headers, timeout=30)
    assert r.status_code == 200, r.text


def test_the_flyte_rs_cli_logs_in_with_client_credentials(auth_server: Server, tmp_path):
    """`flyte-rs get …` with the same config.yaml as flytekit (`authType: ClientSecret`) gets a
    token from the provider and is served; without the credentials it is refused."""
    from conftest import _binary, _clean_env

    def cli(config: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(_binary()), *args], env=_clean_env({"FLYTECTL_CONFIG": str(config)}),
            capture_output=True, text=True, timeout=120,
        )

    result = cli(auth_server.config_path, "get", "projects", "-o", "yaml")
    assert result.returncode == 0, describe(result, auth_server)
    assert PROJECT in result.stdout, result.stdout
    bare = tmp_path / "config.yaml"
    bare.write_text(
        "".join(
            line for line in auth_server.config_path.read_text().splitlines(keepends=True)
            if not line.strip().startswith(("authType", "clientId", "clientSecretLocation"))
        )
    )
    result = cli(bare, "get", "projects")
    assert result.returncode != 0, result.stdout
    assert "authentication" in result.stderr.lower() or "unauthenticated" in result.stderr.lower(), result.stderr
