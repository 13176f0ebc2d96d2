"""The haproxy prober as generated, run by bash with curl against a stand-in monitor on loopback.

The prober writes keepalived's track_file; keepalived faults the node on "1". These tests check the verdict
it writes when the monitor answers, hangs (SIGSTOP), dies and comes back; that it refreshes the verdict (the
heartbeat check_apiserver.sh relies on); that a hung prober makes check_apiserver.sh fail; and that stopping
it leaves no curl behind. Only the verdict path and the port are rewritten (to a temp dir and a free
loopback port); everything else is the generated script.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from kubeha import generate
from kubeha.deliver import cloudinit
from kubeha.render import render_cluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "cluster.yaml"
VERDICT = "/run/kubeha/haproxy-verdict"
MONITOR = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        ok = self.path.startswith("/readyz")
        self.send_response(200 if ok else 404); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

pytestmark = pytest.mark.e2e


def _generated() -> dict[str, str]:
    cluster = generate.load_cluster(EXAMPLE).cluster
    doc = render_cluster(cluster, None)[0]
    return {f["path"]: f["content"] for f in yaml.safe_load(cloudinit.to_user_data(doc))["write_files"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(cond: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``cond`` held (polled every 20 ms); fails after ``timeout``."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


class Rig:
    def __init__(self, tmp: Path) -> None:
        for tool in ("bash", "curl", "stdbuf"):
            assert subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode == 0, tool
        self.port = _free_port()
        self.verdict = tmp / "haproxy-verdict"
        files = _generated()
        script = files["/etc/keepalived/probe_haproxy.sh"]
        assert f"verdict={VERDICT}" in script and ":6445/" in script
        self.prober_path = tmp / "probe_haproxy.sh"
        self.prober_path.write_text(script.replace(VERDICT, str(self.verdict)).replace(":6445/", f":{self.port}/"))
        self.check = tmp / "check_apiserver.sh"
        self.check.write_text(files["/etc/keepalived/check_apiserver.sh"].replace(VERDICT, str(self.verdict)))
        self.monitor: subprocess.Popen[bytes] | None = None
        self.prober: subprocess.Popen[bytes] | None = None

    def start_monitor(self) -> None:
        self.monitor = subprocess.Popen([sys.executable, "-c", MONITOR, str(self.port)])
        _wait(lambda: subprocess.run(["curl", "-sf", f"http://127.0.0.1:{self.port}/readyz"]).returncode == 0, 10)

    def start_prober(self) -> None:
        self.prober = subprocess.Popen(["bash", str(self.prober_path)], start_new_session=True)

    def value(self) -> str:
        try:
            return self.verdict.read_text().strip()
        except FileNotFoundError:
            return ""

    def children(self) -> list[int]:
        assert self.prober
        out = subprocess.run(["pgrep", "-s", str(self.prober.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split() if int(p) != self.prober.pid]

    def stop(self) -> None:
        for proc in (self.prober, self.monitor):
            if proc and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        if r.prober:
            for pid in r.children():  # the session the test started: only its own processes
                os.kill(pid, signal.SIGKILL)
        r.stop()


def test_verdict_follows_the_monitor(rig: Rig) -> None:
    rig.start_monitor()
    rig.start_prober()
    _wait(lambda: rig.value() == "0", 2)  # three good probes at 10/s
    assert rig.monitor
    os.kill(rig.monitor.pid, signal.SIGSTOP)  # hung: the answer does not come within 100 ms
    hung = _wait(lambda: rig.value() == "1", 1)
    os.kill(rig.monitor.pid, signal.SIGCONT)
    _wait(lambda: rig.value() == "0", 2)
    rig.monitor.kill()  # dead: refused at once
    rig.monitor.wait(timeout=5)
    dead = _wait(lambda: rig.value() == "1", 1)
    rig.start_monitor()
    _wait(lambda: rig.value() == "0", 2)
    assert hung < 0.6 and dead < 0.4, (hung, dead)  # relaxed (the bench has the figures)


def test_heartbeat_and_a_hung_prober_fail_the_check(rig: Rig) -> None:
    rig.start_monitor()
    rig.start_prober()
    _wait(lambda: rig.value() == "0", 2)
    first = rig.verdict.stat().st_mtime_ns
    _wait(lambda: rig.verdict.stat().st_mtime_ns != first, 2)  # rewritten although unchanged
    assert subprocess.run(["sh", str(rig.check)], capture_output=True).returncode == 0
    assert rig.prober
    os.killpg(rig.prober.pid, signal.SIGSTOP)  # the whole prober hangs, its verdict still says "0"
    stale = _wait(lambda: subprocess.run(["sh", str(rig.check)], capture_output=True).returncode != 0, 5)
    assert rig.value() == "0" and 1.0 < stale < 4, stale
    os.killpg(rig.prober.pid, signal.SIGCONT)
    _wait(lambda: subprocess.run(["sh", str(rig.check)], capture_output=True).returncode == 0, 3)


def test_stopping_the_prober_leaves_no_curl(rig: Rig) -> None:
    rig.start_monitor()
    rig.start_prober()
    _wait(lambda: rig.value() == "0", 2)
    children = rig.children()
    assert children, "the prober runs its curl as a child"
    assert rig.prober
    rig.prober.terminate()
    rig.prober.wait(timeout=5)
    _wait(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 3)
