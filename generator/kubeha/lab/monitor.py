"""What the lab watches while it runs: the VIP's moves, and haproxy's verdicts on the apiservers.

The VIP's add/delete events on every node come from one ``ip -ts monitor address`` per node namespace;
when each node's haproxy marks an apiserver down or up comes from its log.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from kubeha.lab.base import kill_pid, run_cmd


@dataclass
class VipEvent:
    """The VIP appeared on (``added``) or left a node at a wall-clock time."""

    t: float
    node: str
    added: bool


class VipMonitor:
    """One ``ip -ts monitor address`` per node namespace; keeps the VIP's add/delete events."""

    def __init__(self, vip: str) -> None:
        self.vip = vip
        self.events: list[VipEvent] = []
        self.holders: set[str] = set()
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.lock = threading.Lock()
        self._pattern = re.compile(r"^\[([0-9T:.\-]+)\]\s+(Deleted\s+)?\d+:\s+\S+\s+inet\s+" + re.escape(vip) + "/")

    def watch(self, node: str, ns: str) -> None:
        """Start watching a node (also records whether it holds the VIP right now)."""
        proc = subprocess.Popen(["ip", "-n", ns, "-ts", "monitor", "address"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        self.procs[node] = proc
        threading.Thread(target=self._read, args=(node, proc), daemon=True).start()
        time.sleep(0.05)
        now = time.time()
        out = run_cmd(["ip", "-n", ns, "-o", "-4", "addr", "show"]).stdout
        if f" {self.vip}/" in out:
            self._record(VipEvent(now, node, True))

    def _read(self, node: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = self._pattern.match(line)
            if m:
                t = datetime.fromisoformat(m.group(1)).timestamp()
                self._record(VipEvent(t, node, not m.group(2)))

    def _record(self, event: VipEvent) -> None:
        with self.lock:
            if (event.node in self.holders) != event.added:
                self.events.append(event)
                (self.holders.add if event.added else self.holders.discard)(event.node)

    def current(self) -> set[str]:
        """Nodes that hold the VIP now."""
        with self.lock:
            return set(self.holders)

    def since(self, t: float) -> list[VipEvent]:
        """Events at or after ``t``, in time order."""
        with self.lock:
            return sorted((e for e in self.events if e.t >= t), key=lambda e: e.t)

    def holders_at(self, t: float) -> set[str]:
        """Nodes that held the VIP at time ``t``."""
        held: set[str] = set()
        with self.lock:
            for e in sorted(self.events, key=lambda e: e.t):
                if e.t > t:
                    break
                (held.add if e.added else held.discard)(e.node)
        return held

    def stop(self) -> None:
        """Stop every monitor process."""
        for proc in self.procs.values():
            kill_pid(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


@dataclass
class ServerEvent:
    """A node's haproxy logged that it marked a backend server (an apiserver) DOWN or UP."""

    t: float  # when the lab read the line (within one poll of haproxy writing it)
    node: str  # whose haproxy
    server: str  # the apiserver's name (its master's)
    down: bool


class ServerLog:
    """Follows each node's haproxy log (polled every ``poll`` s) for ``Server <backend>/<name> is DOWN|UP``.

    haproxy logs a server's state change when its checks (or ``observe layer4``) mark it; the lab keeps
    when each line appeared, which is how long the node's haproxy took to stop sending clients there.
    """

    _pattern = re.compile(r"^Server \S+/(\S+) is (DOWN|UP)\b")

    def __init__(self, poll: float = 0.02) -> None:
        self.poll = poll
        self.events: list[ServerEvent] = []
        self.files: dict[str, tuple[str, int]] = {}  # path -> (node, offset read so far)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def follow(self, node: str, path: str) -> None:
        """Follow a node's haproxy log from its current end (idempotent: a restarted haproxy appends)."""
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        with self.lock:
            self.files.setdefault(path, (node, size))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            with self.lock:
                files = dict(self.files)
            for path, (node, offset) in files.items():
                try:
                    with open(path, "rb") as fh:
                        fh.seek(offset)
                        data = fh.read()
                except OSError:
                    continue
                complete = data[: data.rfind(b"\n") + 1]
                if not complete:
                    continue
                now = time.time()
                found = [m for line in complete.decode(errors="replace").splitlines()
                         if (m := self._pattern.match(line))]
                with self.lock:
                    self.files[path] = (node, offset + len(complete))
                    self.events += [ServerEvent(now, node, m.group(1), m.group(2) == "DOWN") for m in found]

    def first_down(self, node: str, server: str, start: float, end: float) -> float | None:
        """When ``node``'s haproxy first marked ``server`` down in [start, end), or None."""
        with self.lock:
            times = [e.t for e in self.events if e.node == node and e.server == server and e.down
                     and start <= e.t < end]
        return min(times) if times else None

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
