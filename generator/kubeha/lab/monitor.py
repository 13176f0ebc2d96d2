"""What the lab watches while it runs: the VIP's moves, and haproxy's verdicts on the apiservers.

The VIP's add/delete events on every node come from one ``ip -ts monitor address`` per node namespace;
when the serving haproxy marks an apiserver down comes from haproxy's runtime API (lab/haproxy_api.py).
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from kubeha.lab import haproxy_api
from kubeha.lab.base import LabError, kill_pid, run_cmd, wait_for


@dataclass
class VipEvent:
    """The VIP appeared on (``added``) or left a node at a wall-clock time."""

    t: float
    node: str
    added: bool


class VipMonitor:
    """One ``ip -ts monitor address`` per node namespace; keeps the VIP's add/delete events."""

    def __init__(self, vip: str, wrap: Callable[[Sequence[str]], list[str]] = list) -> None:
        self.vip, self.wrap = vip, wrap  # wrap: how to start a monitor (in the lab's cgroup)
        self.events: list[VipEvent] = []
        self.holders: set[str] = set()
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.lock = threading.Lock()
        self._pattern = re.compile(r"^\[([0-9T:.\-]+)\]\s+(Deleted\s+)?\d+:\s+\S+\s+inet\s+" + re.escape(vip) + "/")

    def watch(self, node: str, ns: str) -> None:
        """Start watching a node (also records whether it holds the VIP right now)."""
        proc = subprocess.Popen(self.wrap(["ip", "-n", ns, "-ts", "monitor", "address"]), stdout=subprocess.PIPE,
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


class ServerWatch:
    """Asks one haproxy's runtime API, every ``interval`` s, for a server's state until it reports it down.

    The state is haproxy's own and stays until a check changes it, so a mark-down cannot be missed. ``start``
    first waits (bounded) until the server is reported up, so the fault begins from a server haproxy uses;
    polling then ends on the event. ``down_at`` is when the first answer saying "down" arrived and
    ``up_until`` when the last one saying "up" was asked: haproxy marked it down in between (an interval no
    longer than one poll, ``interval`` plus the socket's round trip).
    """

    def __init__(self, path: Callable[[], str], server: str, interval: float = 0.01) -> None:
        self.path, self.server, self.interval = path, server, interval
        self.down_at: float | None = None
        self.up_until: float | None = None
        self.polls = 0
        self.errors: list[str] = []  # answers that could not be had (the last few)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def state(self) -> int | None:
        """The server's ``srv_op_state`` now, or None when haproxy does not answer (or has no such server)."""
        try:
            return haproxy_api.server_states(self.path()).get(self.server)
        except (OSError, LabError) as exc:
            self.errors = [*self.errors[-4:], f"{type(exc).__name__}: {exc}"]
            return None

    def start(self, timeout: float) -> None:
        """Wait until haproxy reports the server up (LabError after ``timeout``), then poll in the background."""
        wait_for(lambda: self.state() == haproxy_api.SRV_RUNNING, timeout,
                 f"haproxy to report {self.server} up (last errors: {self.errors or 'none'})")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            asked = time.time()
            state = self.state()
            self.polls += 1
            if state == haproxy_api.SRV_STOPPED:
                self.down_at = time.time()
                return
            if state is not None:
                self.up_until = asked
            self._stop.wait(self.interval)

    def stop(self) -> float | None:
        """Stop polling (if it has not seen the event yet); return ``down_at``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.down_at

    def summary(self) -> dict[str, object]:
        """What the watch saw, for the lab's logs."""
        return {"server": self.server, "down_at": self.down_at, "up_until": self.up_until, "polls": self.polls,
                "errors": self.errors}
