"""Private Docker and containerd daemons for end-to-end tests, started and stopped by PID.

Each daemon gets its own socket, data root, state and pidfile under a directory the caller owns, so tests
never touch a system daemon and several can run side by side. Plain functions (``start_dockerd``,
``start_containerd``) for scripts and benches; session-scoped pytest fixtures (``dockerd``,
``containerd``) for tests: register this module as the plugin ``e2e.daemons`` (``pytest_plugins`` in tests/conftest.py) to
share one daemon of each kind across the whole run.

Usage::

    daemon = start_dockerd(Path("/tmp/kh-docker"))
    try:
        client = docker.DockerClient(base_url=daemon.address)
    finally:
        daemon.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class DaemonError(RuntimeError):
    """A daemon could not be started (the message carries the tail of its log)."""


@dataclass
class Daemon:
    """A running daemon we started: its PID, socket and log, and how to stop it."""

    name: str
    pid: int
    socket: Path
    workdir: Path
    log: Path
    process: subprocess.Popen[bytes]
    extra_pidfiles: list[Path] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The socket as a URL (``unix:///...``), what DOCKER_HOST and the docker SDK take."""
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """A copy of the environment pointing docker clients (CLI, SDK, kubeha) at this daemon."""
        return {**os.environ, "DOCKER_HOST": self.address}

    def stop(self) -> None:
        """SIGTERM by PID, wait, SIGKILL if needed; then kill children recorded in pidfiles; unmount."""
        _terminate(self.process, self.pid)
        for pidfile in self.extra_pidfiles:
            _kill_pidfile(pidfile, self.workdir)
        _unmount_under(self.workdir)


def _terminate(process: subprocess.Popen[bytes], pid: int) -> None:
    """Stop one process we started, politely first."""
    if process.poll() is not None:
        return
    os.kill(pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


def _kill_pidfile(pidfile: Path, workdir: Path) -> None:
    """SIGKILL the child recorded in a pidfile our daemon wrote, if it is still alive.

    Only when that PID's command line names our working directory: a stale pidfile's PID may since have
    been reused by somebody else's process.
    """
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if str(workdir) in cmdline:
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def _unmount_under(root: Path) -> None:
    """Lazily unmount anything still mounted below ``root`` (overlay mounts a killed daemon left)."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        points = [line.split()[4] for line in handle]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _require(binary: str, package: str) -> str:
    """Path of a binary, or fail naming the Debian package to install."""
    path = shutil.which(binary)
    if path is None:
        raise DaemonError(f"{binary} not found: install it with `apt-get install -y {package}`")
    return path


def _wait_ready(name: str, process: subprocess.Popen[bytes], sock: Path, log: Path, probe: bytes) -> None:
    """Wait until the socket answers ``probe`` (or the process dies / the timeout passes)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DaemonError(f"{name} exited with {process.returncode}:\n{_tail(log)}")
        if sock.exists() and _answers(sock, probe):
            return
        time.sleep(0.1)
    _terminate(process, process.pid)
    raise DaemonError(f"{name} not ready after {STARTUP_TIMEOUT:.0f} s:\n{_tail(log)}")


def _answers(sock: Path, probe: bytes) -> bool:
    """True when a unix socket accepts a connection (and answers ``probe`` when one is given)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2)
            conn.connect(str(sock))
            if probe:
                conn.sendall(probe)
                return conn.recv(64).startswith(b"HTTP/1.")
            return True
    except OSError:
        return False


def _tail(log: Path, lines: int = 30) -> str:
    """The last lines of a daemon log, for error messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session with output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def start_dockerd(workdir: Path, data_root: Path | None = None) -> Daemon:
    """Start a private dockerd (no iptables, no bridge) with everything under ``workdir``.

    Args:
        workdir: a directory we own; keep its path short (unix sockets live in it).
        data_root: images and layers; default ``workdir/data``.

    Returns:
        The running daemon; call ``stop()`` when done.
    """
    binary = _require("dockerd", "docker.io")
    _require("runc", "runc")
    workdir.mkdir(parents=True, exist_ok=True)
    sock, log, exec_root = workdir / "docker.sock", workdir / "dockerd.log", workdir / "exec"
    argv = [binary, "--iptables=false", "--ip-forward=false", "--bridge=none",
            "--data-root", str(data_root or workdir / "data"), "--exec-root", str(exec_root),
            "--pidfile", str(workdir / "dockerd.pid"), "-H", f"unix://{sock}",
            "--storage-driver", "overlay2", "--log-level", "warn"]
    process = _spawn(argv, log)
    _wait_ready("dockerd", process, sock, log, b"GET /_ping HTTP/1.0\r\n\r\n")
    # dockerd runs its own containerd child; if dockerd has to be killed, that child must go too.
    extra = [exec_root / "containerd" / "containerd.pid"]
    return Daemon("dockerd", process.pid, sock, workdir, log, process, extra)


CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
# CRI is not needed by ctr and would want CNI; keep the daemon small.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
"""


def start_containerd(workdir: Path) -> Daemon:
    """Start a private containerd with its own root, state and socket under ``workdir``.

    Args:
        workdir: a directory we own; keep its path short.

    Returns:
        The running daemon (``socket`` is what ``ctr --address`` takes); call ``stop()`` when done.
    """
    binary = _require("containerd", "containerd")
    _require("runc", "runc")
    workdir.mkdir(parents=True, exist_ok=True)
    sock, log, config = workdir / "containerd.sock", workdir / "containerd.log", workdir / "config.toml"
    config.write_text(CONTAINERD_CONFIG.format(root=workdir / "root", state=workdir / "state", sock=sock))
    process = _spawn([binary, "--config", str(config), "--log-level", "warn"], log)
    _wait_ready("containerd", process, sock, log, b"")
    return Daemon("containerd", process.pid, sock, workdir, log, process)


def ctr(daemon: Daemon, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``ctr --address <daemon> -n k8s.io ARGS`` and return the completed process (not checked)."""
    argv = [_require("ctr", "containerd"), "--address", str(daemon.socket), "-n", "k8s.io", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def short_workdir(prefix: str) -> Path:
    """A fresh directory under /tmp with a short path (unix socket paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=f"kh-{prefix}-", dir="/tmp"))


def stop_and_remove(daemon: Daemon) -> None:
    """Stop a daemon and delete its working directory."""
    try:
        daemon.stop()
    finally:
        shutil.rmtree(daemon.workdir, ignore_errors=True)


@contextmanager
def running(start: Callable[[Path], Daemon], prefix: str) -> Iterator[Daemon]:
    """A daemon started in a fresh short work dir, always stopped and removed afterwards."""
    daemon = start(short_workdir(prefix))
    try:
        yield daemon
    finally:
        stop_and_remove(daemon)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Daemon]:
    """A private dockerd for the whole test session (fresh data root, removed afterwards)."""
    with running(start_dockerd, "dockerd") as daemon:
        yield daemon


@pytest.fixture(scope="session")
def containerd() -> Iterator[Daemon]:
    """A private containerd for the whole test session (fresh root, removed afterwards)."""
    with running(start_containerd, "containerd") as daemon:
        yield daemon
