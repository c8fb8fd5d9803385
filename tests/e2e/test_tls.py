"""TLS on the one port (docs/tls.md): a CA and a server certificate made at test time, the real
flytekit with `insecure: false` and `caCertFilePath`, the REST gateway over https, clients that
do not trust the CA refused with a certificate error, the certificate reloaded on SIGHUP, and
cleartext refused on a network address without `server.allow_cleartext`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import sys
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import DOMAIN, EXAMPLES, PROJECT, Server, _binary, _clean_env, describe, pyflyte, start_server, stop_server


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(cn: str = "flyte-rs test CA"):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(ca_key, ca_cert) -> tuple[bytes, bytes, int]:
    """A certificate for 127.0.0.1 and localhost signed by the CA: (cert PEM, key PEM, serial)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("flyte-rs"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), serial


class Pki:
    def __init__(self, root: pathlib.Path):
        self.root = root
        self.ca_key, self.ca_cert = make_ca()
        self.ca_file = root / "ca.crt"
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self.cert_file = root / "tls.crt"
        self.key_file = root / "tls.key"
        self.serial = self.issue()

    def issue(self) -> int:
        """A new server certificate in place of the files' current one (written, then renamed
        over, as a secret volume or cert-manager replaces them)."""
        cert, key, serial = make_server_cert(self.ca_key, self.ca_cert)
        for path, data in ((self.key_file, key), (self.cert_file, cert)):
            tmp = path.with_suffix(".new")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return serial


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory):
    base = tmp_path_factory.mktemp("flyte-rs-tls")
    srv = start_server(
        base,
        base / "data",
        env={
            "FLYTE_RS_SERVER__TLS__CERT_FILE": str(pki.cert_file),
            "FLYTE_RS_SERVER__TLS__KEY_FILE": str(pki.key_file),
            "FLYTE_RS_SERVER__TLS__CA_FILE": str(pki.ca_file),
            # No timer: a new certificate is served only because of SIGHUP.
            "FLYTE_RS_SERVER__TLS__RELOAD_SECS": "0",
        },
    )
    assert srv.url.startswith("https://"), srv.url
    # What a user writes for a server with a private CA (flytekit's own keys).
    srv.config_path.write_text(
        f"admin:\n  endpoint: dns:///127.0.0.1:{srv.port}\n  insecure: false\n"
        f"  caCertFilePath: {pki.ca_file}\nconsole:\n  endpoint: {srv.url}\n"
    )
    yield srv
    code = stop_server(srv)
    assert code == 0, f"flyte-rs exited {code} on SIGTERM:\n{srv.log()}"


def test_pyflyte_run_remote_over_tls(tls_server: Server, tmp_path: pathlib.Path):
    """pyflyte run --remote uploads the code bundle through the https data proxy and launches
    over gRPC with TLS; FlyteRemote (same config) waits for it and reads the output."""
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    name = "tls" + uuid.uuid4().hex[:10]
    result = pyflyte(
        tls_server, "run", "--remote", "--project", PROJECT, "--domain", DOMAIN, "--name", name,
        "examples/basics.py", "hello_wf", "--name", "tls",
        cwd=tmp_path,
    )
    assert result.returncode == 0, describe(result, tls_server)
    remote = FlyteRemote(
        config=Config.auto(config_file=str(tls_server.config_path)),
        default_project=PROJECT,
        default_domain=DOMAIN,
    )
    execution = remote.wait(
        remote.fetch_execution(name=name),
        timeout=datetime.timedelta(minutes=5),
        poll_interval=datetime.timedelta(seconds=0.5),
    )
    assert execution.error is None, f"{execution.error}\n{tls_server.log()[-4000:]}"
    assert "tls" in str(execution.outputs["o0"]), execution.outputs


def test_rest_gateway_over_https_with_the_ca(tls_server: Server, pki: Pki):
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    with urllib.request.urlopen(f"{tls_server.url}/api/v1/projects", context=ctx, timeout=30) as resp:
        assert resp.status == 200
        body = json.load(resp)
    assert "projects" in body, body
    with urllib.request.urlopen(f"{tls_server.url}/healthcheck", context=ctx, timeout=30) as resp:
        assert resp.read() == b"ok"


def test_https_client_without_the_ca_gets_a_certificate_error(tls_server: Server):
    ctx = ssl.create_default_context()  # the system's CAs only
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen(f"{tls_server.url}/healthcheck", context=ctx, timeout=30)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError), err.value


def test_grpc_client_without_the_ca_gets_a_certificate_error(tls_server: Server):
    channel = grpc.secure_channel(f"127.0.0.1:{tls_server.port}", grpc.ssl_channel_credentials())
    from flyteidl.service import admin_pb2_grpc
    from flyteidl.admin import project_pb2

    stub = admin_pb2_grpc.AdminServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        # The timeout only bounds a broken test: the refusal comes at the handshake.
        stub.ListProjects(project_pb2.ProjectListRequest(), timeout=60)
    channel.close()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    assert "CERTIFICATE_VERIFY_FAILED" in err.value.details() or "certificate" in err.value.details().lower(), (
        err.value.details()
    )


def test_pyflyte_without_the_ca_fails_with_a_certificate_error(tls_server: Server, tmp_path: pathlib.Path):
    config = tmp_path / "no-ca.yaml"
    config.write_text(f"admin:\n  endpoint: dns:///127.0.0.1:{tls_server.port}\n  insecure: false\n")
    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    exe = pathlib.Path(sys.executable).with_name("pyflyte")
    result = subprocess.run(
        [str(exe), "--config", str(config), "register", "--project", PROJECT, "--domain", DOMAIN,
         "--version", "never", "examples"],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0, describe(result)
    assert "CERTIFICATE_VERIFY_FAILED" in result.stdout + result.stderr, describe(result)


def _served_serial(port: int, ca_file: pathlib.Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def _wait_for(what: str, check, srv: Server) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert srv.process.poll() is None, f"flyte-rs exited:\n{srv.log()}"
        assert time.monotonic() < deadline, f"{what} did not happen:\n{srv.log()[-4000:]}"
        time.sleep(0.2)


def test_certificate_reloads_on_sighup_without_a_restart(tls_server: Server, pki: Pki):
    assert _served_serial(tls_server.port, pki.ca_file) == pki.serial
    # A certificate that is not PEM (a half-done rotation): refused, the old one stays.
    good = pki.cert_file.read_bytes()
    pki.cert_file.write_text("not yet")
    tls_server.process.send_signal(signal.SIGHUP)
    _wait_for("the warning about the invalid pair", lambda: "not a valid pair" in tls_server.log(), tls_server)
    assert _served_serial(tls_server.port, pki.ca_file) == pki.serial
    pki.cert_file.write_bytes(good)

    pki.serial = pki.issue()
    tls_server.process.send_signal(signal.SIGHUP)
    _wait_for("serving the new certificate", lambda: _served_serial(tls_server.port, pki.ca_file) == pki.serial, tls_server)
    assert tls_server.process.poll() is None
    # Still the same process, still serving.
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    with urllib.request.urlopen(f"{tls_server.url}/healthcheck", context=ctx, timeout=30) as resp:
        assert resp.read() == b"ok"


def test_cleartext_on_a_network_address_is_refused_without_the_setting(tmp_path: pathlib.Path):
    result = subprocess.run(
        [str(_binary()), "start", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "data")],
        env=_clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0, describe(result)
    assert "server.allow_cleartext" in result.stderr, describe(result)


def test_certificate_reloads_when_its_files_change(tmp_path: pathlib.Path):
    """With server.tls.reload_secs, a rotated certificate (as a Kubernetes Secret update
    brings it) is served with no signal and no restart."""
    (tmp_path / "pki2").mkdir()
    own = Pki(tmp_path / "pki2")
    srv = start_server(
        tmp_path,
        tmp_path / "data",
        env={
            "FLYTE_RS_SERVER__TLS__CERT_FILE": str(own.cert_file),
            "FLYTE_RS_SERVER__TLS__KEY_FILE": str(own.key_file),
            "FLYTE_RS_SERVER__TLS__RELOAD_SECS": "1",
        },
    )
    try:
        assert _served_serial(srv.port, own.ca_file) == own.serial
        own.serial = own.issue()
        _wait_for("serving the new certificate", lambda: _served_serial(srv.port, own.ca_file) == own.serial, srv)
        assert "TLS certificate reloaded" in srv.log()
    finally:
        assert stop_server(srv) == 0, srv.log()


def _flyte_rs(config: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    """The `flyte-rs` client with a flytekit config; the timeout only stops a hung test."""
    env = _clean_env({"FLYTECTL_CONFIG": str(config)})
    return subprocess.run([str(_binary()), *args], env=env, capture_output=True, text=True, timeout=300)


def test_flyte_rs_client_over_tls_with_the_ca(tls_server: Server):
    """`flyte-rs get/launch --watch` over TLS with `caCertFilePath` (gRPC), and `get schedules`
    (HTTPS to the same port)."""
    version = "cli-tls-" + uuid.uuid4().hex[:8]
    reg = pyflyte(
        tls_server, "register", "--project", PROJECT, "--domain", DOMAIN, "--version", version,
        "examples/basics.py", cwd=EXAMPLES.parent,
    )
    assert reg.returncode == 0, describe(reg, tls_server)
    name = "clitls" + uuid.uuid4().hex[:8]
    launched = _flyte_rs(
        tls_server.config_path, "launch", "launchplan", "examples.basics.hello_wf", "-i", "name=cli",
        "--name", name, "--watch",
    )
    assert launched.returncode == 0, describe(launched, tls_server)
    assert "SUCCEEDED" in launched.stdout, describe(launched, tls_server)
    # The attempt's log link is on the same (https) port: fetched with the same CA.
    logs = _flyte_rs(tls_server.config_path, "logs", name)
    assert logs.returncode == 0, describe(logs, tls_server)
    assert "==> node" in logs.stderr, describe(logs, tls_server)
    listed = _flyte_rs(tls_server.config_path, "get", "executions", "-o", "json")
    assert listed.returncode == 0, describe(listed, tls_server)
    names = [e["spec"]["launchPlan"]["name"] for e in json.loads(listed.stdout)]
    assert "examples.basics.hello_wf" in names, names
    schedules = _flyte_rs(tls_server.config_path, "get", "schedules", "-o", "json")
    assert schedules.returncode == 0, describe(schedules, tls_server)
    assert json.loads(schedules.stdout) == [], schedules.stdout


def test_flyte_rs_client_without_the_ca_fails_with_a_certificate_error(tls_server: Server, tmp_path: pathlib.Path):
    config = tmp_path / "no-ca.yaml"
    config.write_text(f"admin:\n  endpoint: dns:///127.0.0.1:{tls_server.port}\n  insecure: false\n")
    for args in (["get", "executions"], ["launch", "launchplan", "examples.basics.hello_wf", "--watch"]):
        result = _flyte_rs(config, *args)
        assert result.returncode == 1, describe(result)
        assert "certificate" in result.stderr and "admin.caCertFilePath" in result.stderr, describe(result)
        assert "panicked" not in result.stderr, describe(result)
    # flytekit's insecureSkipVerify: encrypted, not authenticated.
    skip = tmp_path / "skip.yaml"
    skip.write_text(
        f"admin:\n  endpoint: dns:///127.0.0.1:{tls_server.port}\n  insecure: false\n  insecureSkipVerify: true\n"
    )
    result = _flyte_rs(skip, "get", "projects")
    assert result.returncode == 0, describe(result)
    assert PROJECT in result.stdout, result.stdout
