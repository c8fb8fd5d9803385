#!/usr/bin/env python3
"""The image's HEALTHCHECK: GET /healthcheck on the server's own port, https when the server
has a certificate (FLYTE_RS_SERVER__TLS__CERT_FILE). The certificate is not verified: this
checks that the process serves, from inside its own container, on loopback."""
import os
import ssl
import sys
import urllib.request

port = os.environ.get("FLYTE_RS_SERVER__LISTEN", "0.0.0.0:30080").rsplit(":", 1)[1]
tls = bool(os.environ.get("FLYTE_RS_SERVER__TLS__CERT_FILE"))
url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/healthcheck"
ctx = ssl._create_unverified_context() if tls else None
try:
    with urllib.request.urlopen(url, timeout=4, context=ctx) as resp:
        sys.exit(0 if resp.status == 200 else 1)
except Exception as e:  # any failure is "unhealthy"
    print(f"{url}: {e}", file=sys.stderr)
    sys.exit(1)
