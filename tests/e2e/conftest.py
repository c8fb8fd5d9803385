"""End-to-end fixtures: a real `flyte-rs` process and the real flytekit client from PyPI.

The server binary is `target/debug/flyte-rs` (built by scripts/test.sh; `$CARGO_TARGET_DIR` is
honoured), or the one named by FLYTERS_TEST_BIN. Each session starts one server on a random free port with a temporary data
dir, and writes a flytekit config file pointing at it.

The blob store of every server a session starts is chosen by one switch, read only here:
FLYTERS_E2E_BLOB_STORE=file (default: the server's data dir), =s3 (the S3-compatible server
at FLYTERS_TEST_S3_ENDPOINT, from scripts/s3.sh) or =azure (Azurite at
FLYTERS_TEST_AZURITE_ENDPOINT, from scripts/azurite.sh); each server gets a prefix of its own
in the bucket/container, the same one again when a test restarts it on its data dir. The same
tests then run on any store; scripts/test.sh runs the golden core a second time with =s3.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
import typing
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
# The example project: its root has no __init__.py, so flytekit bundles it alone (not the
# repository) for `pyflyte register examples/` and `pyflyte run --remote examples/….py`.
EXAMPLES_PROJECT = REPO / "flytesnacks"
EXAMPLES = EXAMPLES_PROJECT / "examples"
PROJECT = "flytesnacks"
DOMAIN = "development"
READY_PREFIX = "flyte-rs is ready at "
_TIMINGS: dict = {}

# The S3-compatible test server's credentials and bucket (scripts/s3.sh's defaults).
S3_ACCESS = os.environ.get("FLYTERS_S3_ACCESS_KEY", "flyters")
S3_SECRET = os.environ.get("FLYTERS_S3_SECRET_KEY", "flyters-secret-key")
S3_BUCKET = os.environ.get("FLYTERS_S3_BUCKET", "flyte-rs")
S3_DATA = pathlib.Path(os.environ.get("FLYTERS_S3_DATA", "/tmp/flyte-rs-s3"))
S3_REGION = "us-east-1"
# Azurite's well-known development account (public, documented by Microsoft).
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_CONTAINER = "flyte-rs"
BLOB_STORE = os.environ.get("FLYTERS_E2E_BLOB_STORE", "file")
_S3_SESSION_PREFIX = f"e2e-{uuid.uuid4().hex[:10]}"


def azure_connection_string() -> str:
    """What adlfs needs for an endpoint other than Azure's own (an account name and key alone
    mean `https://<account>.blob.core.windows.net`)."""
    endpoint = os.environ["FLYTERS_TEST_AZURITE_ENDPOINT"]
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};"
        f"BlobEndpoint={endpoint};"
    )


def pytest_configure(config):
    if BLOB_STORE not in ("file", "s3", "azure"):
        pytest.exit(f"FLYTERS_E2E_BLOB_STORE={BLOB_STORE!r}: expected 'file', 's3' or 'azure'", 2)
    if BLOB_STORE == "azure":
        if not os.environ.get("FLYTERS_TEST_AZURITE_ENDPOINT"):
            # A failure, not a skip: the Azure run would otherwise pass on the local store.
            pytest.exit("FLYTERS_E2E_BLOB_STORE=azure needs FLYTERS_TEST_AZURITE_ENDPOINT (scripts/azurite.sh)", 2)
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        try:
            BlobServiceClient.from_connection_string(azure_connection_string()).create_container(AZURE_CONTAINER)
        except ResourceExistsError:
            pass
        # This process (FlyteRemote's downloads, pyflyte) is the client: adlfs reads it. The
        # servers do not get it (_clean_env): their tasks must get it from the server.
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azure_connection_string()
    if BLOB_STORE == "s3":
        if not os.environ.get("FLYTERS_TEST_S3_ENDPOINT"):
            # A failure, not a skip: the S3 run would otherwise pass on the local store.
            pytest.exit("FLYTERS_E2E_BLOB_STORE=s3 needs FLYTERS_TEST_S3_ENDPOINT (scripts/s3.sh)", 2)
        # flytekit's s3fs signs with a region; the test server takes any, boto wants one.
        os.environ.setdefault("AWS_DEFAULT_REGION", S3_REGION)


@dataclasses.dataclass
class Server:
    url: str
    port: int
    data_dir: pathlib.Path
    config_path: pathlib.Path
    log_path: pathlib.Path
    process: subprocess.Popen
    ready_seconds: float
    blob_url: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-20000:]
        except OSError:
            return ""


def _binary() -> pathlib.Path:
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = pathlib.Path(os.environ.get("FLYTERS_TEST_BIN", target / "debug" / "flyte-rs"))
    if not path.is_file():
        pytest.exit(f"{path} not found: build it first (cargo build -p flyte-rs) or run scripts/test.sh", 2)
    return path


def _clean_env(extra: dict[str, str] | None = None, server: bool = False) -> dict[str, str]:
    # A server's tasks must get the store's settings from the server, not from this process.
    hidden = ("FLYTE_RS_", "FLYTE_", "FLYTECTL_") + (("AZURE_STORAGE_",) if server else ())
    env = {k: v for k, v in os.environ.items() if not k.startswith(hidden)}
    env.update(extra or {})
    return env


def _blob_store(data_dir: pathlib.Path) -> tuple[str, dict[str, str], str]:
    """The blob URL for a server on `data_dir`, the server's environment for it, and the
    flytekit config lines a client needs to read its outputs."""
    if BLOB_STORE == "file":
        return f"file://{data_dir}/blobs", {}, ""
    # Stable per data dir: a server restarted on the same data dir finds its blobs again.
    key = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:10]
    if BLOB_STORE == "azure":
        # abfs://: flytekit adds Azure's x-ms-blob-type header to its SAS uploads only for it.
        url = f"abfs://{AZURE_CONTAINER}/{_S3_SESSION_PREFIX}/{key}"
        env = {
            "FLYTE_RS_STORAGE__BLOB_URL": url,
            "FLYTE_RS_STORAGE__S3__ENDPOINT": os.environ["FLYTERS_TEST_AZURITE_ENDPOINT"],
            "FLYTE_RS_STORAGE__S3__ALLOW_HTTP": "true",
            "FLYTE_RS_STORAGE__BLOB_OPTIONS__AZURE_STORAGE_ACCOUNT_NAME": AZURE_ACCOUNT,
            "FLYTE_RS_STORAGE__BLOB_OPTIONS__AZURE_STORAGE_ACCOUNT_KEY": AZURE_KEY,
        }
        client = f"azure:\n  storage_account_name: {AZURE_ACCOUNT}\n  storage_account_key: {AZURE_KEY}\n"
        return url, env, client
    endpoint = os.environ["FLYTERS_TEST_S3_ENDPOINT"]
    url = f"s3://{S3_BUCKET}/{_S3_SESSION_PREFIX}/{key}"
    env = {
        "FLYTE_RS_STORAGE__BLOB_URL": url,
        "FLYTE_RS_STORAGE__S3__ENDPOINT": endpoint,
        "FLYTE_RS_STORAGE__S3__REGION": S3_REGION,
        "FLYTE_RS_STORAGE__S3__ALLOW_HTTP": "true",
        "FLYTE_RS_STORAGE__S3__ACCESS_KEY_ID": S3_ACCESS,
        "FLYTE_RS_STORAGE__S3__SECRET_ACCESS_KEY": S3_SECRET,
    }
    client = (
        f"storage:\n  connection:\n    endpoint: {endpoint}\n"
        f"    access-key: {S3_ACCESS}\n    secret-key: {S3_SECRET}\n"
    )
    return url, env, client


def start_server(
    base: pathlib.Path,
    data_dir: pathlib.Path,
    port: int = 0,
    log_name: str = "server.log",
    env: dict[str, str | None] | None = None,
) -> Server:
    """Starts `flyte-rs start` on `127.0.0.1:<port>` (0: a free one) with `data_dir`, waits for
    its ready line and writes a flytekit config for it. Tasks run from this venv
    (`engine.python_venv` through its environment variable, as the README shows). The blob
    store is the session's (FLYTERS_E2E_BLOB_STORE). `env` adds to the server's environment;
    a None value removes a variable."""
    blob_url, blob_env, client_storage = _blob_store(data_dir)
    server_env: dict[str, str | None] = {
        "FLYTE_RS_LOGGING__LEVEL": "info,flyte_admin=debug",
        "FLYTE_RS_ENGINE__PYTHON_VENV": sys.prefix,
        # FLYTERS_E2E_WARM_WORKERS=false: every server runs each Python task in a new
        # interpreter (engine.warm_workers off); scripts/test.sh runs a few tests so.
        "FLYTE_RS_ENGINE__WARM_WORKERS": os.environ.get("FLYTERS_E2E_WARM_WORKERS", "true"),
        **blob_env,
    }
    server_env.update(env or {})
    base.mkdir(parents=True, exist_ok=True)
    log_path = base / log_name
    log = open(log_path, "a")
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(_binary()), "start", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={k: v for k, v in _clean_env(server_env, server=True).items() if v is not None},  # type: ignore[arg-type]
        cwd=base,
    )
    log.close()
    url = None
    ready_text = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while url is None:
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=10)
            pytest.fail(f"flyte-rs exited ({proc.returncode}) before it was ready:\n{log_path.read_text()}")
        ready_text.append(line)
        if line.startswith(READY_PREFIX):
            url = line[len(READY_PREFIX) :].split()[0]
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("flyte-rs printed no ready line within 60s:\n" + "".join(ready_text))
    ready_seconds = time.monotonic() - started
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]

    port = int(url.rsplit(":", 1)[1])
    config_path = base / "config.yaml"
    config_path.write_text(
        f"admin:\n  endpoint: dns:///127.0.0.1:{port}\n  insecure: true\nconsole:\n  endpoint: {url}\n"
        + client_storage
    )
    blob_url = server_env.get("FLYTE_RS_STORAGE__BLOB_URL") or blob_url
    print(f"\nflyte-rs at {url} ready in {ready_seconds:.2f}s (data {data_dir}, blobs {blob_url})", file=sys.stderr)
    return Server(url, port, data_dir, config_path, log_path, proc, ready_seconds, blob_url)


# scripts/oidc.sh's machine client (client credentials).
OIDC_MACHINE_ID = "flyte-rs-machine"
OIDC_MACHINE_SECRET = "flyte-rs-machine-secret"


def use_machine_client(srv: Server, base: pathlib.Path) -> None:
    """Point the server's flytekit config at scripts/oidc.sh's machine client, as a user writes
    it (docs/auth.md): the client id and a file with its secret; the scopes come from the server
    (GetPublicClientConfig)."""
    secret = base / "client_secret"
    secret.write_text(OIDC_MACHINE_SECRET)
    srv.config_path.write_text(
        srv.config_path.read_text().replace(
            "  insecure: true\n",
            f"  insecure: true\n  authType: ClientSecret\n  clientId: {OIDC_MACHINE_ID}\n"
            f"  clientSecretLocation: {secret}\n",
        )
    )


def stop_server(srv: Server) -> int:
    """Graceful shutdown: SIGTERM, and the process must exit promptly. Returns the exit code."""
    srv.process.send_signal(signal.SIGTERM)
    try:
        return srv.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        srv.process.kill()
        raise AssertionError("flyte-rs did not stop within 20s of SIGTERM")


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> typing.Iterator[Server]:
    base = tmp_path_factory.mktemp("flyte-rs")
    srv = start_server(base, base / "data")
    _TIMINGS["start to ready"] = srv.ready_seconds
    yield srv
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


@pytest.fixture(scope="session")
def remote(server: Server):
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    return FlyteRemote(
        config=Config.auto(config_file=str(server.config_path)),
        default_project=PROJECT,
        default_domain=DOMAIN,
    )


def pyflyte(server: Server, *args: str, cwd: pathlib.Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs the real `pyflyte` CLI from the venv against the server."""
    exe = pathlib.Path(sys.executable).with_name("pyflyte")
    cmd = [str(exe), "--config", str(server.config_path), *args]
    env = _clean_env({"FLYTECTL_CONFIG": str(server.config_path)})
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@dataclasses.dataclass
class Registration:
    version: str
    first: subprocess.CompletedProcess
    seconds: float
    root: pathlib.Path

    def register(self, server: Server) -> subprocess.CompletedProcess:
        return pyflyte(
            server, "register", "--project", PROJECT, "--domain", DOMAIN, "--version", self.version, "examples",
            cwd=self.root,
        )


@pytest.fixture(scope="session")
def registered(server: Server, tmp_path_factory) -> Registration:
    """`pyflyte register examples/` once per session, with a known version, exactly as the
    README says: in the repository's own example project (flytesnacks/)."""
    root = EXAMPLES_PROJECT
    version = "e2e-" + uuid.uuid4().hex[:12]
    reg = Registration(version, None, 0.0, root)  # type: ignore[arg-type]
    started = time.monotonic()
    result = reg.register(server)
    seconds = time.monotonic() - started
    print(f"\npyflyte register examples/ took {seconds:.1f}s", file=sys.stderr)
    reg.first, reg.seconds = result, seconds
    _TIMINGS["pyflyte register examples/"] = seconds
    return reg


def run_client_elsewhere(server: Server, workdir: pathlib.Path, script: str) -> typing.Any:
    """Runs a Python `script` in `workdir` holding nothing but a copy of the server's flytekit
    config (its address and, for an object store, the store's connection), without this
    process's FLYTE_*/AWS_* environment: a client on another machine. The script prints one
    JSON value last; it is returned."""
    import json

    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.config_path, workdir / "config.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE", "AWS_", "AZURE_"))}
    env["AWS_DEFAULT_REGION"] = S3_REGION
    if BLOB_STORE == "azure":
        # An Azure client names a non-Azure endpoint (Azurite) only by a connection string.
        env["AZURE_STORAGE_CONNECTION_STRING"] = azure_connection_string()
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"client in {workdir} failed:\n{out.stderr[-5000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def store_fs():
    """An fsspec filesystem on the session's blob store, to look at objects by their URI as
    the store holds them (not through the server)."""
    if BLOB_STORE == "s3":
        import s3fs

        endpoint = os.environ["FLYTERS_TEST_S3_ENDPOINT"]
        return s3fs.S3FileSystem(
            key=S3_ACCESS, secret=S3_SECRET, client_kwargs={"endpoint_url": endpoint, "region_name": S3_REGION}
        )
    if BLOB_STORE == "azure":
        import adlfs

        return adlfs.AzureBlobFileSystem(connection_string=azure_connection_string())
    import fsspec

    return fsspec.filesystem("file")


def record_timing(name: str, seconds: float) -> None:
    """Shown in pytest's summary line (measurements, not asserts)."""
    _TIMINGS[name] = seconds


def describe(result: subprocess.CompletedProcess, server: Server | None = None) -> str:
    text = f"exit {result.returncode}\n--- stdout\n{result.stdout[-8000:]}\n--- stderr\n{result.stderr[-8000:]}"
    if server is not None:
        text += f"\n--- server log (tail)\n{server.log()[-6000:]}"
    return text



def pytest_terminal_summary(terminalreporter):
    if _TIMINGS:
        parts = ", ".join(f"{k} {v:.2f}s" for k, v in _TIMINGS.items())
        terminalreporter.write_line(f"flyte-rs e2e timings: {parts}")
