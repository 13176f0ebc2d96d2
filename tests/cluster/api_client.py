"""Real API work through the VIP, one JSON line per tick, for the cluster lab's failover measurements.

    python -m cluster.api_client KUBECONFIG read|write|watch RATE DURATION

read:  GET the kube-system namespace (a quorum read: it waits for etcd's leader) on a new TLS connection;
write: PATCH the ConfigMap default/kubeha-probe (created first) with the tick's number;
watch: one long-lived watch on ConfigMaps in default; prints each (re)connection and each event. The
       writer changes a ConfigMap 10 times a second, so a healthy watch hears something every 0.1 s: a watch
       silent for WATCH_SILENCE is taken as dead (a hung load balancer never closes it) and reconnected, as a
       client with a liveness timeout would.
Every request has a 1 s timeout; the loop is bounded by DURATION and by RATE * DURATION requests. Run it in
the lab's client namespace: it talks to the kubeconfig's server (VIP:lb_port) and nothing else.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

TIMEOUT = 1.0
WATCH_SILENCE = 1.0


def read_ticks(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a running client has written so far (a line still being written is left for later)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def tls_context(kubeconfig: Path) -> tuple[ssl.SSLContext, str, int]:
    conf = yaml.safe_load(kubeconfig.read_text())
    cluster, user = conf["clusters"][0]["cluster"], conf["users"][0]["user"]
    host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        os.chmod(key, 0o600)
        ctx.load_cert_chain(str(cert), str(key))
    return ctx, host, int(port)


def request(ctx: ssl.SSLContext, host: str, port: int, method: str, path: str, body: bytes | None = None,
            content_type: str = "application/json") -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


_OUT = threading.Lock()


def emit(**fields: object) -> None:
    with _OUT:
        print(json.dumps(fields), flush=True)


def ticks(ctx: ssl.SSLContext, host: str, port: int, kind: str, rate: float, duration: float) -> None:
    """RATE requests a second, each on its own thread, so a request that hangs (a hung load balancer holds
    it until its 1 s timeout) does not hold back the next ones, as in a client with a connection pool."""
    cm = "/api/v1/namespaces/default/configmaps"
    if kind == "write":
        request(ctx, host, port, "POST", cm, json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeha-probe"}, "data": {}}).encode())

    def one(i: int, t: float) -> None:
        try:
            if kind == "read":
                status, _ = request(ctx, host, port, "GET", "/api/v1/namespaces/kube-system")
            else:
                patch = json.dumps({"data": {"tick": str(i)}}).encode()
                status, _ = request(ctx, host, port, "PATCH", f"{cm}/kubeha-probe", patch,
                                    "application/merge-patch+json")
            emit(t=t, ok=status == 200, status=status, ms=round((time.time() - t) * 1000, 1))
        except (OSError, http.client.HTTPException) as exc:
            emit(t=t, ok=False, error=type(exc).__name__, ms=round((time.time() - t) * 1000, 1))

    start = time.time()
    threads = []
    for i in range(int(rate * duration)):
        time.sleep(max(0.0, start + i / rate - time.time()))
        thread = threading.Thread(target=one, args=(i, time.time()))
        thread.start()
        threads.append(thread)
        threads = [t for t in threads if t.is_alive()]
    for thread in threads:
        thread.join(timeout=2 * TIMEOUT)


def watch(ctx: ssl.SSLContext, host: str, port: int, duration: float) -> None:
    end = time.time() + duration
    attempts = 0
    while time.time() < end and attempts < 10 * duration:
        attempts += 1
        t = time.time()
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=TIMEOUT)
        try:
            conn.request("GET", f"/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds={int(end - t) + 1}")
            resp = conn.getresponse()
            if resp.status != 200:
                emit(t=t, kind="refused", status=resp.status)
                time.sleep(0.1)
                continue
            emit(t=t, kind="connected")
            assert resp.fp is not None
            resp.fp.raw._sock.settimeout(WATCH_SILENCE)  # type: ignore[attr-defined]
            for line in resp:
                if line.strip():
                    emit(t=time.time(), kind="event")
            emit(t=time.time(), kind="closed")
        except (OSError, http.client.HTTPException) as exc:
            emit(t=time.time(), kind="broken", error=type(exc).__name__)
            time.sleep(0.05)
        finally:
            conn.close()


def main(argv: list[str]) -> int:
    kubeconfig, kind, rate, duration = Path(argv[0]), argv[1], float(argv[2]), float(argv[3])
    ctx, host, port = tls_context(kubeconfig)
    if kind == "watch":
        watch(ctx, host, port, duration)
    else:
        ticks(ctx, host, port, kind, rate, duration)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
