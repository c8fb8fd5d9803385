"""A double of the Kubernetes API server's pod endpoints for the e2e suite, with a kubelet
emulation. It is NOT Kubernetes: no scheduler, no images, no isolation (docs/kubernetes.md).

The API part speaks the same HTTP and JSON shapes as the Rust double in
crates/flyte-kube/tests/double (which follows k8s.io/apimachinery): `PodList` with
`metadata.resourceVersion`, newline-delimited `WatchEvent`s on `?watch=true` from a
`resourceVersion`, `Status` objects for errors (404 `NotFound`, 409 `AlreadyExists`, …).
Routes: `GET /api/v1/pods`, `GET|POST /api/v1/namespaces/{ns}/pods`,
`GET|DELETE /api/v1/namespaces/{ns}/pods/{name}`, `POST /api/v1/namespaces/{ns}/secrets`,
`GET /api/v1/namespaces/{ns}/secrets/{name}` (a `v1/Secret` with base64 `data` and/or
`stringData`, as the API takes it; read back with `data` only),
`POST /api/v1/namespaces/{ns}/configmaps`, `GET|PATCH|DELETE /api/v1/namespaces/{ns}/configmaps/{name}`
(PATCH: `application/merge-patch+json`), `GET /api/v1/configmaps` (list). Deleting a ConfigMap
plays the garbage collector: pods whose `metadata.ownerReferences` name its uid are deleted too.

The kubelet part: a created pod's primary container runs here as a local process (its
`command` + `args`, its `env`, with this venv's bin first on PATH: the venv stands for the task image),
and the pod goes Pending -> Running -> Succeeded/Failed with the process's exit code in the
container's `terminated` state. Deleting a pod kills its process group. The image is ignored.
Secrets as a kubelet resolves them: `env[].valueFrom.secretKeyRef` from the pod's namespace
(missing and `optional`: the variable is left out; missing and required: the container waits in
`CreateContainerConfigError` with the kubelet's message), and `secret` volumes written as files.
There is no container filesystem: a volume mounted at `/etc/x` lands in `<pod dir>/rootfs/etc/x`,
and an environment value naming a mount path (or a directory above one) is rewritten to point
there, so the process finds the files where the pod spec says they are.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
import typing
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_NOW = "2026-12-07T12:00:00Z"


def _status(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    }


def _matches(pod: dict, selector: str | None) -> bool:
    if not selector:
        return True
    labels = pod.get("metadata", {}).get("labels") or {}
    for term in selector.split(","):
        if "=" not in term:
            return False
        k, v = term.split("=", 1)
        if labels.get(k.strip()) != v.strip():
            return False
    return True


def _primary(pod: dict) -> dict:
    """The primary container: our annotation, else the first (kubectl's default)."""
    containers = pod["spec"]["containers"]
    name = (pod["metadata"].get("annotations") or {}).get("flyte-rs/primary-container")
    return next((c for c in containers if c.get("name") == name), containers[0])


class KubeDouble:
    def __init__(self, namespaces: typing.Iterable[str], workdir: pathlib.Path):
        self.namespaces = set(namespaces)
        self.workdir = workdir
        self.pods: dict[tuple[str, str], dict] = {}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.config_maps: dict[tuple[str, str], dict] = {}
        # Execution id -> the most of its pods Pending or Running at one time.
        self.max_live: dict[str, int] = {}
        self.log: list[tuple[int, str, dict]] = []
        self.rv = 0
        self.requests: list[str] = []
        # Every pod ever created, as created (a test checks what the server asked for).
        self.created: list[dict] = []
        self.processes: dict[tuple[str, str], subprocess.Popen] = {}
        # Where each pod's container writes its output (the kubelet's container log).
        self.pod_logs: dict[tuple[str, str], pathlib.Path] = {}
        # Task names whose first attempt's pod the "kubelet" OOM-kills instead of running.
        self.oom_first_attempt: set[str] = set()
        # Task name -> how many more creates of its pods a ResourceQuota refuses (403).
        self.quota_refusals: dict[str, int] = {}
        self.cond = threading.Condition()
        self.closed = False
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a body ends when the connection does (watches)

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                double._route(self, "GET")

            def do_POST(self):
                double._route(self, "POST")

            def do_DELETE(self):
                double._route(self, "DELETE")

            def do_PATCH(self):
                double._route(self, "PATCH")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # --- test-facing helpers -------------------------------------------------------------

    def write_kubeconfig(self, directory: pathlib.Path) -> pathlib.Path:
        path = directory / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n"
            f"    server: {self.url}\nusers:\n- name: tester\n  user: {{}}\ncontexts:\n"
            "- name: double\n  context:\n    cluster: double\n    user: tester\n"
            "current-context: double\n"
        )
        return path

    def create_secret(self, ns: str, name: str, data: dict[str, str]) -> None:
        """Creates a `v1/Secret` through the API, as `kubectl create secret generic` does."""
        import urllib.request

        body = json.dumps({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "namespace": ns},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }).encode()
        req = urllib.request.Request(f"{self.url}/api/v1/namespaces/{ns}/secrets", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 201, resp.status

    def created_for(self, execution_name: str) -> list[dict]:
        with self.cond:
            return [
                p for p in self.created
                if (p["metadata"].get("labels") or {}).get("execution-id") == execution_name
            ]

    def pod_phase(self, ns: str, name: str) -> str | None:
        with self.cond:
            pod = self.pods.get((ns, name))
            return pod["status"].get("phase") if pod else None

    def wait_for(self, predicate: typing.Callable[[], bool], timeout: float = 120) -> bool:
        """Waits (bounded only so a broken run fails) until `predicate()` holds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        with self.cond:
            self.closed = True
            procs = list(self.processes.values())
            self.cond.notify_all()
        for p in procs:
            _kill(p)
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- the API ---------------------------------------------------------------------------

    def _record(self, kind: str, pod: dict) -> None:
        # Under self.cond.
        self.log.append((self.rv, kind, json.loads(json.dumps(pod))))
        execution = (pod["metadata"].get("labels") or {}).get("execution-id")
        if execution:
            live = sum(
                1 for p in self.pods.values()
                if (p["metadata"].get("labels") or {}).get("execution-id") == execution
                and p["status"].get("phase") in ("Pending", "Running")
            )
            self.max_live[execution] = max(self.max_live.get(execution, 0), live)
        self.cond.notify_all()

    def _route(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(h.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        with self.cond:
            self.requests.append(f"{method} {url.path}")
        try:
            if parts == ["api", "v1", "pods"] and method == "GET":
                return self._list_or_watch(h, None, q)
            if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                if method == "GET":
                    return self._list_or_watch(h, parts[3], q)
                if method == "POST":
                    return self._create(h, parts[3])
            if len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods" \
                    and parts[6] == "log" and method == "GET":
                return self._log(h, parts[3], parts[5], q)
            if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                if method == "GET":
                    return self._get(h, parts[3], parts[5])
                if method == "DELETE":
                    return self._delete(h, parts[3], parts[5])
            if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets" and method == "POST":
                return self._create_secret(h, parts[3])
            if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets" and method == "GET":
                with self.cond:
                    secret = self.secrets.get((parts[3], parts[5]))
                if secret is None:
                    return self._send(h, 404, _status(404, "NotFound", f'secrets "{parts[5]}" not found'))
                return self._send(h, 200, secret)
            if parts == ["api", "v1", "configmaps"] and method == "GET":
                with self.cond:
                    items = [c for c in self.config_maps.values() if _matches(c, q.get("labelSelector"))]
                    body = {"kind": "ConfigMapList", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(self.rv)}, "items": items}
                return self._send(h, 200, body)
            if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "configmaps" and method == "POST":
                return self._create_config_map(h, parts[3])
            if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "configmaps":
                return self._config_map(h, method, parts[3], parts[5])
            self._send(h, 404, _status(404, "NotFound", f"the server could not find the requested resource ({url.path})"))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, h: BaseHTTPRequestHandler, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _list_or_watch(self, h, ns: str | None, q: dict) -> None:
        selector = q.get("labelSelector")

        def keep(pod: dict) -> bool:
            return (ns is None or pod["metadata"].get("namespace") == ns) and _matches(pod, selector)

        if q.get("watch") in ("true", "1"):
            with self.cond:
                try:
                    start = int(q.get("resourceVersion") or self.rv)
                except ValueError:
                    start = self.rv
            timeout = float(q.get("timeoutSeconds") or 300)
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.end_headers()
            deadline = time.monotonic() + timeout
            cursor = start
            while True:
                with self.cond:
                    while not self.closed and (not self.log or self.log[-1][0] <= cursor):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return
                        self.cond.wait(min(left, 1.0))
                    if self.closed:
                        return
                    events = [(rv, kind, pod) for rv, kind, pod in self.log if rv > cursor]
                if events:
                    cursor = events[-1][0]
                lines = b"".join(
                    (json.dumps({"type": kind, "object": pod}) + "\n").encode()
                    for _, kind, pod in events if keep(pod)
                )
                if lines:
                    h.wfile.write(lines)
                    h.wfile.flush()
        with self.cond:
            items = [p for p in self.pods.values() if keep(p)]
            body = {
                "kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.rv)}, "items": items,
            }
        self._send(h, 200, body)

    def _create(self, h, ns: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        try:
            pod = json.loads(h.rfile.read(length))
        except ValueError as e:
            return self._send(h, 400, _status(400, "BadRequest", f"body: {e}"))
        with self.cond:
            if ns not in self.namespaces:
                return self._send(h, 404, _status(404, "NotFound", f'namespaces "{ns}" not found'))
            name = (pod.get("metadata") or {}).get("name")
            if not name:
                return self._send(h, 422, _status(422, "Invalid", 'Pod "" is invalid: metadata.name: Required value'))
            if (ns, name) in self.pods:
                return self._send(h, 409, _status(409, "AlreadyExists", f'pods "{name}" already exists'))
            task = ((pod.get("metadata") or {}).get("labels") or {}).get("task-name")
            if self.quota_refusals.get(task, 0) > 0:
                self.quota_refusals[task] -= 1
                # The API server's answer when the ResourceQuota admission plugin refuses a pod.
                refusal = _status(403, "Forbidden", (
                    f'pods "{name}" is forbidden: exceeded quota: compute-resources, '
                    "requested: limits.cpu=1,limits.memory=1Gi, used: limits.cpu=8,limits.memory=8Gi, "
                    "limited: limits.cpu=8,limits.memory=16Gi"))
                refusal["details"] = {"name": name, "kind": "pods"}
                return self._send(h, 403, refusal)
            self.created.append(json.loads(json.dumps(pod)))
            self.rv += 1
            pod["metadata"].update(namespace=ns, resourceVersion=str(self.rv), uid=f"uid-{self.rv}",
                                   creationTimestamp=_NOW)
            pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}
            self.pods[(ns, name)] = pod
            self._record("ADDED", pod)
            answer = json.loads(json.dumps(pod))
        self._send(h, 201, answer)
        threading.Thread(target=self._kubelet, args=(ns, name), daemon=True).start()

    def _create_secret(self, h, ns: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        try:
            secret = json.loads(h.rfile.read(length))
            data = dict(secret.get("data") or {})
            for k, v in (secret.pop("stringData", None) or {}).items():
                data[k] = base64.b64encode(v.encode()).decode()
            for v in data.values():
                base64.b64decode(v, validate=True)
        except ValueError as e:
            return self._send(h, 400, _status(400, "BadRequest", f"body: {e}"))
        name = (secret.get("metadata") or {}).get("name")
        with self.cond:
            if ns not in self.namespaces:
                return self._send(h, 404, _status(404, "NotFound", f'namespaces "{ns}" not found'))
            if not name:
                return self._send(h, 422, _status(422, "Invalid", 'Secret "" is invalid: metadata.name: Required value'))
            if (ns, name) in self.secrets:
                return self._send(h, 409, _status(409, "AlreadyExists", f'secrets "{name}" already exists'))
            self.rv += 1
            secret["metadata"].update(namespace=ns, resourceVersion=str(self.rv), uid=f"uid-{self.rv}",
                                      creationTimestamp=_NOW)
            secret["data"] = data
            secret.setdefault("type", "Opaque")
            self.secrets[(ns, name)] = secret
            answer = json.loads(json.dumps(secret))
        self._send(h, 201, answer)

    def config_map(self, ns: str, name: str) -> dict | None:
        with self.cond:
            c = self.config_maps.get((ns, name))
            return json.loads(json.dumps(c)) if c else None

    def _create_config_map(self, h, ns: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        try:
            cm = json.loads(h.rfile.read(length))
        except ValueError as e:
            return self._send(h, 400, _status(400, "BadRequest", f"body: {e}"))
        name = (cm.get("metadata") or {}).get("name")
        with self.cond:
            if ns not in self.namespaces:
                return self._send(h, 404, _status(404, "NotFound", f'namespaces "{ns}" not found'))
            if not name:
                return self._send(h, 422, _status(422, "Invalid", 'ConfigMap "" is invalid: metadata.name: Required value'))
            if (ns, name) in self.config_maps:
                return self._send(h, 409, _status(409, "AlreadyExists", f'configmaps "{name}" already exists'))
            self.rv += 1
            cm["metadata"].update(namespace=ns, resourceVersion=str(self.rv), uid=f"cm-uid-{self.rv}",
                                  creationTimestamp=_NOW)
            self.config_maps[(ns, name)] = cm
            answer = json.loads(json.dumps(cm))
        self._send(h, 201, answer)

    def _config_map(self, h, method: str, ns: str, name: str) -> None:
        missing = _status(404, "NotFound", f'configmaps "{name}" not found')
        if method == "PATCH":
            if h.headers.get("Content-Type") != "application/merge-patch+json":
                return self._send(h, 415, _status(415, "UnsupportedMediaType", "the double takes merge patches"))
            length = int(h.headers.get("Content-Length") or 0)
            try:
                patch = json.loads(h.rfile.read(length))
            except ValueError as e:
                return self._send(h, 400, _status(400, "BadRequest", f"body: {e}"))
        killed = []
        with self.cond:
            cm = self.config_maps.get((ns, name))
            if cm is None:
                return self._send(h, 404, missing)
            if method == "PATCH":
                _merge(cm, patch)
                self.rv += 1
                cm["metadata"]["resourceVersion"] = str(self.rv)
            elif method == "DELETE":
                del self.config_maps[(ns, name)]
                # The garbage collector: the owner's dependents go with it.
                uid = cm["metadata"]["uid"]
                for key, pod in list(self.pods.items()):
                    refs = pod["metadata"].get("ownerReferences") or []
                    if key[0] == ns and any(r.get("uid") == uid for r in refs):
                        del self.pods[key]
                        proc = self.processes.pop(key, None)
                        if proc is not None:
                            killed.append(proc)
                        self.rv += 1
                        pod["metadata"]["resourceVersion"] = str(self.rv)
                        self._record("DELETED", pod)
            elif method != "GET":
                return self._send(h, 405, _status(405, "MethodNotAllowed", method))
            answer = json.loads(json.dumps(cm))
        for proc in killed:
            _kill(proc)
        self._send(h, 200, answer)

    def _secret_value(self, ns: str, name: str, key: str) -> str | None:
        with self.cond:
            secret = self.secrets.get((ns, name))
        if secret is None or key not in secret["data"]:
            return None
        return base64.b64decode(secret["data"][key]).decode()

    def _resolve_env(self, ns: str, container: dict) -> tuple[dict[str, str], str | None]:
        """The container's variables as the kubelet sets them, or the CreateContainerConfigError
        message of a required secret that is missing."""
        env: dict[str, str] = {}
        for e in container.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref is not None:
                value = self._secret_value(ns, ref["name"], ref["key"])
                if value is None:
                    if ref.get("optional"):
                        continue
                    with self.cond:
                        exists = (ns, ref["name"]) in self.secrets
                    return env, (f"couldn't find key {ref['key']} in Secret {ns}/{ref['name']}" if exists
                                 else f'secret "{ref["name"]}" not found')
                env[e["name"]] = value
            elif "valueFrom" not in e:
                env[e["name"]] = e.get("value") or ""
        return env, None

    def _mount_secrets(self, ns: str, pod: dict, container: dict, rootfs: pathlib.Path) -> list[str]:
        """Writes the container's secret volumes under `rootfs`; returns the mount paths."""
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        paths = []
        for m in container.get("volumeMounts") or []:
            source = (volumes.get(m["name"]) or {}).get("secret")
            if source is None:
                continue
            target = rootfs / m["mountPath"].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            paths.append(m["mountPath"])
            with self.cond:
                secret = self.secrets.get((ns, source.get("secretName")))
            data = (secret or {}).get("data") or {}
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["key"] in data:
                    (target / item["path"]).write_bytes(base64.b64decode(data[item["key"]]))
        return paths

    def _log(self, h, ns: str, name: str, q: dict) -> None:
        """`GET …/pods/{name}/log`: the container's output as text; `follow=true` streams it
        until the container has exited."""
        with self.cond:
            known = (ns, name) in self.pods
            path = self.pod_logs.get((ns, name))
        if not known:
            return self._send(h, 404, _status(404, "NotFound", f'pods "{name}" not found'))
        if path is None:
            return self._send(h, 400, _status(400, "BadRequest",
                                              f'container in pod "{name}" is waiting to start: ContainerCreating'))
        if q.get("follow") not in ("true", "1"):
            data = path.read_bytes() if path.exists() else b""
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.end_headers()
        offset = 0
        while True:
            with self.cond:
                running = (ns, name) in self.processes
                closed = self.closed
            data = path.read_bytes()[offset:] if path.exists() else b""
            if data:
                offset += len(data)
                h.wfile.write(data)
                h.wfile.flush()
            elif not running or closed:
                return
            else:
                time.sleep(0.1)

    def _get(self, h, ns: str, name: str) -> None:
        with self.cond:
            pod = self.pods.get((ns, name))
            pod = json.loads(json.dumps(pod)) if pod else None
        if pod is None:
            return self._send(h, 404, _status(404, "NotFound", f'pods "{name}" not found'))
        self._send(h, 200, pod)

    def _delete(self, h, ns: str, name: str) -> None:
        with self.cond:
            pod = self.pods.pop((ns, name), None)
            proc = self.processes.pop((ns, name), None)
            if pod is not None:
                self.rv += 1
                pod["metadata"]["resourceVersion"] = str(self.rv)
                self._record("DELETED", pod)
        if proc is not None:
            _kill(proc)
        if pod is None:
            return self._send(h, 404, _status(404, "NotFound", f'pods "{name}" not found'))
        self._send(h, 200, pod)

    # --- the kubelet emulation ----------------------------------------------------------------

    def _set_status(self, ns: str, name: str, status: dict) -> bool:
        with self.cond:
            pod = self.pods.get((ns, name))
            if pod is None:
                return False  # deleted meanwhile
            self.rv += 1
            pod["status"] = status
            pod["metadata"]["resourceVersion"] = str(self.rv)
            self._record("MODIFIED", pod)
            return True

    def _kubelet(self, ns: str, name: str) -> None:
        with self.cond:
            pod = self.pods.get((ns, name))
            if pod is None:
                return
            container = _primary(pod)
            labels = pod["metadata"].get("labels") or {}
            oom = labels.get("task-name") in self.oom_first_attempt and labels.get("retry-attempt") == "0"
        cname = container.get("name", name)
        if oom:
            # What a kubelet reports for a container the kernel killed at its memory limit.
            self._set_status(ns, name, {"phase": "Failed", "startTime": _NOW,
                                        "containerStatuses": [_terminated(cname, 137, "OOMKilled", "")]})
            return
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        # This venv's bin first: it stands for the task image, which has flytekit.
        path = os.pathsep.join([str(pathlib.Path(sys.prefix, "bin")), os.environ.get("PATH", "")])
        env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp")}
        resolved, config_error = self._resolve_env(ns, container)
        if config_error is not None:
            # The kubelet keeps such a container waiting (and retrying) with the pod Pending.
            self._set_status(ns, name, {"phase": "Pending", "containerStatuses": [{
                "name": cname, "ready": False, "restartCount": 0, "image": container.get("image", ""), "imageID": "",
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": config_error}}}]})
            return
        env.update(resolved)
        cwd = pathlib.Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        with self.cond:
            self.pod_logs[(ns, name)] = cwd / "container.log"
        rootfs = cwd / "rootfs"
        mounts = self._mount_secrets(ns, pod, container, rootfs)
        for k, v in env.items():
            if v.startswith("/") and v != "/" and any(v == m or v.startswith(m.rstrip("/") + "/") or m.startswith(v.rstrip("/") + "/") for m in mounts):
                env[k] = str(rootfs / v.lstrip("/"))
        out = open(cwd / "container.log", "wb")
        try:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as e:
            # The kubelet's view of a command that cannot start.
            self._set_status(ns, name, {"phase": "Failed", "containerStatuses": [_terminated(cname, 128, "StartError", str(e))]})
            return
        finally:
            out.close()
        with self.cond:
            if (ns, name) not in self.pods:
                _kill(proc)
                return
            self.processes[(ns, name)] = proc
        self._set_status(ns, name, {
            "phase": "Running", "startTime": _NOW,
            "containerStatuses": [{"name": cname, "ready": True, "restartCount": 0, "image": container.get("image", ""),
                                   "imageID": "", "state": {"running": {"startedAt": _NOW}}}],
        })
        code = proc.wait()
        with self.cond:
            if self.processes.pop((ns, name), None) is None:
                return  # deleted: killed by us, no final status
        reason = "Completed" if code == 0 else "Error"
        self._set_status(ns, name, {
            "phase": "Succeeded" if code == 0 else "Failed", "startTime": _NOW,
            "containerStatuses": [_terminated(cname, code if code >= 0 else 128 - code, reason, "")],
        })


def _merge(target: dict, patch: dict) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = json.loads(json.dumps(v))


def _terminated(name: str, code: int, reason: str, message: str) -> dict:
    state = {"exitCode": code, "reason": reason, "startedAt": _NOW, "finishedAt": _NOW}
    if message:
        state["message"] = message
    return {"name": name, "ready": False, "restartCount": 0, "image": "", "imageID": "",
            "state": {"terminated": state}}


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
