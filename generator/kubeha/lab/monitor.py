"""The VIP monitor: one ``ip -ts monitor address`` per node namespace, and the VIP's add/delete events."""

from __future__ import annotations

import contextlib
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
