# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Issue 21 item 2: one install at a time, everything decided inside the lock, against the real node script.

The races are made deterministic: run A downloads its bundle (serial 3) from a loopback server that holds the
response until the test lets it go, so A holds /var/lib/kubeha/lock while run B starts and is seen blocked in
``flock``. Then A finishes, and B must decide from what A installed: an older bundle is kept out ("kept serial
3"), a failing B removes nothing A placed. Each row checks B's exit code and exact verdict line, and that the
manifests (bytes), images, installed serial and status verdict are A's. Two more rows: a run that cannot get
the lock changes nothing at all, on a fresh node and on an installed one.
"""

from __future__ import annotations

import fcntl
import http.server
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons import ctr
from test_node_install import MANIFESTS, Node, Packed, assert_ok, containerd, node, packed  # noqa: F401

from kubeha.bundle import PackInput, pack_bundle
from test_bundle import make_docker_archive
from test_signing import Keys, gpg_keys  # noqa: F401

pytestmark = pytest.mark.e2e


class _Held(http.server.BaseHTTPRequestHandler):
    """Serves ``body`` once ``release`` is set (the install holding the lock waits in its download)."""

    body = b""
    release = threading.Event()
    asked = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).asked.set()
        type(self).release.wait(120)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def held_server() -> Iterator[str]:
    _Held.release, _Held.asked = threading.Event(), threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Held)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/kubeha.tar"
    finally:
        _Held.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _bundle(packed: Packed, node: Node, tmp: Path, serial: int, keys: Keys) -> Path:
    images = tmp / "images.tar"
    if not images.exists():
        make_docker_archive(images)
    inputs = PackInput("demo", images, name="kubeha", serial=serial, cluster_id=node.cluster_id)
    return pack_bundle(tmp / f"b{serial}", packed.documents, inputs, keys.trusted.signer()).tarball


def _set_env(node: Node, key: str, value: str) -> None:
    env = node.root / "etc/kubeha/install.env"
    lines = [f"{key}={value}" if line.startswith(f"{key}=") else line for line in env.read_text().splitlines()]
    env.write_text("\n".join(lines) + "\n")


def _start(node: Node, log: Path) -> subprocess.Popen[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "KUBEHA_ROOT": str(node.root), "KUBEHA_CONSOLE": str(node.console),
           "CONTAINERD_ADDRESS": str(node.daemon.socket)}
    return subprocess.Popen(["sh", str(node.root / "usr/local/sbin/kubeha-install")], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=log.open("w"))


def _wait(what: str, ready: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _blocked_in_flock(pid: int) -> bool:
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
        except (OSError, ValueError):
            continue
        comm, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm == "flock" and fields[1] == str(pid):
            return True
    return False


def _state(node: Node) -> dict[str, object]:
    target = node.root / "etc/kubernetes/manifests"
    installed = node.root / "var/lib/kubeha/installed"
    return {"manifests": {p.name: p.read_bytes() for p in sorted(target.iterdir())} if target.is_dir() else {},
            "images": sorted(ctr(node.daemon, "images", "ls").stdout.splitlines()[1:]),
            "installed": installed.read_text() if installed.exists() else None}


@pytest.mark.parametrize(("second", "line"), [
    ("older", "kubeha-install: kept serial 3: step=verify reason=bundle serial 2 is older than the installed serial 3"),
    ("missing", "kubeha-install: kept serial 3: step=locate reason=bundle not found at /srv/gone.tar"),
])
def test_second_run_decides_under_the_lock(node: Node, packed: Packed, gpg_keys: Keys, tmp_path: Path,
                                           held_server: str, second: str, line: str) -> None:
    _Held.body = _bundle(packed, node, tmp_path, 3, gpg_keys).read_bytes()
    older = _bundle(packed, node, tmp_path, 2, gpg_keys)
    (node.root / "srv").mkdir()
    os.link(older, node.root / "srv/older.tar")
    _set_env(node, "KUBEHA_BUNDLE", held_server)
    first = _start(node, tmp_path / "first.log")
    _wait("the first run's download (it holds the lock)", _Held.asked.is_set)
    _set_env(node, "KUBEHA_BUNDLE", "/srv/older.tar" if second == "older" else "/srv/gone.tar")
    racer = _start(node, tmp_path / "second.log")
    _wait("the second run to block on the lock", lambda: _blocked_in_flock(racer.pid))
    _Held.release.set()
    out_first, _ = first.communicate(timeout=180)
    assert first.returncode == 0 and out_first.startswith(f"kubeha-install: OK {node.status['node']} serial=3 ")
    after_first = _state(node)
    out_second, _ = racer.communicate(timeout=180)
    assert (racer.returncode, out_second) == (0, line + "\n"), (tmp_path / "second.log").read_text()
    assert _state(node) == after_first and node.manifests() == list(MANIFESTS)
    assert str(after_first["installed"]).startswith("3 ") and node.status["verdict"] == "kept"


@pytest.mark.parametrize("state", ["fresh", "installed"])
def test_run_without_the_lock_changes_nothing(node: Node, packed: Packed, tmp_path: Path, state: str) -> None:
    if state == "installed":
        node.place_tar(packed.bundle.tarball)
        assert_ok(node, node.run(), "imported")
    node.place_tar(packed.bundle.tarball)
    lock = node.root / "var/lib/kubeha/lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    status = node.root / "var/lib/kubeha/status.json"
    before, verdict = _state(node), status.read_bytes() if status.exists() else None
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = node.run(KUBEHA_LOCK_WAIT="1")
    reason = f"another kubeha-install holds {node.root}/var/lib/kubeha/lock"
    if state == "installed":
        assert (proc.returncode, proc.stdout) == (0, f"kubeha-install: kept serial 1: {reason}\n")
    else:
        assert (proc.returncode, proc.stdout) == (1, f"kubeha-install: FAILED {socket.gethostname()} step=config "
                                                     f"reason={reason}\n")
    assert _state(node) == before and (status.read_bytes() if status.exists() else None) == verdict
    assert not (node.root / "var/lib/kubeha/staging").exists() or state == "installed"
