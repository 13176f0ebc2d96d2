"""The helpers that run inside the lab's namespaces: a stand-in apiserver and the clients that measure."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

WATCH_PERIOD = 0.1  # the stand-in apiserver sends a watch event this often
WATCH_EVENTS = 6000
WATCH_IDLE = 0.5  # the watch client calls a silent stream dead after this long (client-go's read-idle check)
WATCH_PING = 0.1  # the watch client writes this often (like HTTP/2 PINGs): a reset comes back at once


def serve_apiserver(addr: str, port: int, cert: str, key: str, node: str) -> None:
    """A stand-in kube-apiserver: TLS, 200 on /healthz /readyz /livez /version, 404 elsewhere.

    /version also names the node, so the client can tell which apiserver haproxy picked. /watch streams one
    JSON line every 100 ms (a busy watch) for at most 10 minutes, each naming the node.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    version = {"major": "1", "minor": "30", "gitVersion": "v1.30.0-kubeha-lab", "node": node}
    body = {"/healthz": b"ok", "/readyz": b"ok", "/livez": b"ok", "/version": json.dumps(version).encode()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.split("?")[0] == "/watch":
                self._watch()
                return
            data = body.get(self.path.split("?")[0])
            self.send_response(200 if data else 404)
            self.send_header("Content-Type", "application/json" if self.path == "/version" else "text/plain")
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def _watch(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            line = json.dumps({"type": "BOOKMARK", "node": node}).encode() + b"\n"
            with contextlib.suppress(OSError):
                for _ in range(WATCH_EVENTS):  # bounded: 10 minutes at 10 events/s
                    self.wfile.write(line)
                    self.wfile.flush()
                    time.sleep(WATCH_PERIOD)

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


def _watch_once(host: str, port: int, ctx: ssl.SSLContext, deadline: float,
                emit: Callable[[dict[str, Any]], None], stop: threading.Event) -> None:
    """One watch connection: emit "up" at its first event, "down" (with the last event's time) when it ends."""
    try:
        raw = socket.create_connection((host, port), timeout=0.3)
    except OSError as exc:
        emit({"event": "fail", "why": type(exc).__name__})
        return
    # as Go (client-go) does by default: small writes go out at once instead of waiting behind unacked ones
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    last, node, up = time.time(), "", False
    try:
        with raw, ctx.wrap_socket(raw, server_hostname="kubernetes") as tls:
            tls.sendall(b"GET /watch HTTP/1.0\r\nHost: kubernetes\r\n\r\n")
            tls.settimeout(WATCH_PING)
            buf, pinged = b"", time.time()
            while time.time() < deadline and not stop.is_set():
                if time.time() - pinged >= WATCH_PING:
                    tls.sendall(b"\n")  # the heartbeat: after a VIP move, the new holder answers it with a reset
                    pinged = time.time()
                try:
                    chunk = tls.recv(4096)
                except TimeoutError:
                    chunk = None
                if chunk == b"":
                    raise ConnectionAbortedError("EOF")
                now = time.time()
                if chunk:
                    buf += chunk
                    *events, buf = buf.split(b"\n")
                    for raw_line in events:
                        if raw_line.startswith(b"{"):
                            last, node = now, str(json.loads(raw_line).get("node", ""))
                            if not up:
                                emit({"event": "up", "by": node})
                                up = True
                elif now - last > WATCH_IDLE:
                    raise TimeoutError("idle")
    except (OSError, ValueError) as exc:
        emit({"event": "down", "last": last, "by": node, "why": str(exc) or type(exc).__name__})


def run_watch(host: str, port: int, duration: float) -> None:
    """Keep one watch open through VIP:port for ``duration`` seconds, reconnecting at once when it breaks.

    Prints one JSON line per event: ``up`` (first event on a new connection), ``down`` (with ``last``, the
    time of the last event received), ``fail`` (a connection attempt that failed).
    """
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.time() + duration

    def emit(doc: dict[str, Any]) -> None:
        print(json.dumps({"t": time.time(), **doc}), flush=True)

    for _ in range(int(duration / 0.05) + 1):  # bounded in count and in time
        if stop.is_set() or time.time() >= deadline:
            break
        started = time.time()
        _watch_once(host, port, ctx, deadline, emit, stop)
        stop.wait(max(0.0, 0.05 - (time.time() - started)))
