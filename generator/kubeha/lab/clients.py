"""The helpers that run inside the lab's namespaces: a stand-in apiserver and the clients that measure."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import ssl
import threading
import time
from typing import Any


def serve_apiserver(addr: str, port: int, cert: str, key: str, node: str) -> None:
    """A stand-in kube-apiserver: TLS, 200 on /healthz /readyz /livez /version, 404 elsewhere.

    /version also names the node, so the client can tell which apiserver haproxy picked.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    version = {"major": "1", "minor": "30", "gitVersion": "v1.30.0-kubeha-lab", "node": node}
    body = {"/healthz": b"ok", "/readyz": b"ok", "/livez": b"ok", "/version": json.dumps(version).encode()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            data = body.get(self.path.split("?")[0])
            self.send_response(200 if data else 404)
            self.send_header("Content-Type", "application/json" if self.path == "/version" else "text/plain")
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of the base class)
            return

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def finish_request(self, request: Any, client_address: Any) -> None:
            # The TLS handshake runs in the connection's own thread, with a timeout: a peer that vanished
            # mid-handshake (pulled cable, hung haproxy) must not stall every other client, as a handshake
            # in accept() would.
            request.settimeout(5.0)
            with contextlib.suppress(OSError):
                Handler(ctx.wrap_socket(request, server_side=True), client_address, self)

    Server((addr, port), Handler).serve_forever()


def _one_request(host: str, port: int, ctx: ssl.SSLContext) -> tuple[str, str]:
    """Open a new TLS connection, GET /version; return (error or '', the node that answered)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as raw, \
                ctx.wrap_socket(raw, server_hostname="kubernetes") as tls:
            tls.settimeout(1.0)
            tls.sendall(b"GET /version HTTP/1.0\r\nHost: kubernetes\r\n\r\n")
            reply = b""
            while chunk := tls.recv(4096):
                reply += chunk
    except OSError as exc:
        return type(exc).__name__, ""
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200 "):
        return f"status {head[:40]!r}", ""
    return "", str(json.loads(body).get("node", ""))


def run_client(host: str, port: int, rate: float, duration: float) -> None:
    """Open new TLS connections at ``rate`` per second for ``duration`` seconds; print one JSON line each."""
    from concurrent.futures import ThreadPoolExecutor

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    lock = threading.Lock()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def attempt(t: float) -> None:
        err, node = _one_request(host, port, ctx)
        with lock:
            print(json.dumps({"t": t, "ok": not err, "err": err, "by": node}), flush=True)

    start = time.time()
    with ThreadPoolExecutor(max_workers=max(4, int(rate * 2.5))) as pool:
        for i in range(int(rate * duration)):  # bounded in count and in time
            due = start + i / rate
            if stop.wait(max(0.0, due - time.time())):
                break
            pool.submit(attempt, time.time())
