"""Failover on real Kubernetes: break the VIP holder while clients do real API work through the VIP.

Each run starts three clients in the lab's client namespace (tests/cluster/api_client.py): reads (20/s, a
quorum GET), writes (10/s, a ConfigMap PATCH) and one watch; waits for good traffic; breaks the holder; lets
the clients run out their window; then restores the holder and waits until the cluster is whole again
(every haproxy sees every apiserver UP, one VIP holder, /readyz through the VIP) before the next run.

Measured from the fault: when the VIP appeared on another master (``ip monitor`` in every node's namespace),
when new reads and writes succeeded again for good ("back in"; 0 when none failed), how many failed, and how
long the watch heard nothing (its first event after its last break).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cluster.api_client import read_ticks
from cluster.lab import ClusterLab
from cluster.node_access import poll
from kubeha.lab.base import LabError, wait_for
from kubeha.lab.monitor import VipMonitor

WINDOW = 20.0  # seconds of client traffic after the fault
BASELINE = 2.0  # seconds of good traffic before it


@dataclass
class Run:
    scenario: str
    holder: str
    vip_moved: float | None
    reads_back: float
    writes_back: float
    failed_reads: int
    failed_writes: int
    watch_reconnect: float
    etcd_leader: bool
    fault_at: float = 0.0  # when the fault was made (epoch seconds), for traces (bench/cluster_trace.py)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _release(monitor: VipMonitor, node: str) -> None:
    """Stop watching a node whose machine is going away (the monitor process holds its namespace)."""
    proc = monitor.procs.pop(node, None)
    if proc is not None:
        proc.kill()
        proc.wait(timeout=10)


def _fault(lab: ClusterLab, monitor: VipMonitor, name: str) -> Callable[[str], None]:
    faults: dict[str, Callable[[str], None]] = {
        "kill-haproxy": lambda node: lab.kill_pod_process(node, "haproxy"),
        "hang-haproxy": lambda node: lab.kill_pod_process(node, "haproxy", signal.SIGSTOP),
        "kill-apiserver": lambda node: lab.kill_pod_process(node, "kube-apiserver"),
        "pull-cable": lambda node: lab.set_link(node, up=False),
        "power-off": lambda node: lab.power_off(node, lambda n: _release(monitor, n)),
    }
    return faults[name]


def _restore(lab: ClusterLab, name: str, node: str) -> None:
    if name == "hang-haproxy":
        for pid in lab.pod_pids(node, "haproxy"):
            lab.resume(pid)
    elif name == "pull-cable":
        lab.set_link(node, up=True)
    elif name == "power-off":
        lab.power_on(node)


SCENARIOS = ("kill-haproxy", "hang-haproxy", "kill-apiserver", "pull-cable", "power-off")


def wait_whole(lab: ClusterLab, timeout: float = 300) -> None:
    """Until every master's haproxy sees every apiserver UP, one node holds the VIP and /readyz answers."""

    def whole() -> bool:
        try:
            lab.vip_holder()
            for name in lab.nodes:
                states = lab.haproxy_servers(name)
                if len(states) != len(lab.nodes) or any(s != "UP" for s in states.values()):
                    return False
        except (LabError, OSError):
            return False
        return lab.kubectl("get", "--raw", "/readyz", check=False).strip() == "ok"

    poll(whole, timeout, lambda: "the cluster whole again (every apiserver UP in every haproxy, one VIP holder)")


def _lines(path: Path) -> list[dict[str, Any]]:
    return read_ticks(path)


def _back(ticks: list[dict[str, Any]], fault_at: float) -> tuple[float, int]:
    """When requests started succeeding again for good: the start of the first good request after the last
    failed one, from the fault (0 when none failed; a request in flight at the fault that times out later
    counts as failed, but only new requests tell when service came back). Requests started before the fault
    count too: a request sent just before it may be the one the fault breaks."""
    failed = [t for t in ticks if t["t"] + t["ms"] / 1000 >= fault_at and not t["ok"]]
    if not failed:
        return 0.0, 0
    last = max(t["t"] for t in failed)
    good = [t["t"] for t in ticks if t["ok"] and t["t"] > last]
    # a request in flight at the fault failed, but a later one sent before the fault succeeded: new requests
    # never stopped being served (0, not a negative time)
    return (max(0.0, min(good) - fault_at) if good else float("inf")), len(failed)


def _watch_back(events: list[dict[str, Any]], writes: list[dict[str, Any]], fault_at: float) -> float:
    """From the fault to the first event the watch delivered after its last break (or, when it never broke,
    its first event after the fault): how long a watcher heard nothing. Events need writes, so this includes
    the writes' own outage; breaks after the last good write (the end of the window: silence) do not count."""
    last_write = max((w["t"] for w in writes if w["ok"]), default=fault_at)
    after = [e for e in events if e["t"] >= fault_at]
    breaks = [e["t"] for e in after if e["kind"] in ("broken", "closed", "refused") and e["t"] <= last_write]
    since = max(breaks) if breaks else fault_at
    heard = [e["t"] for e in after if e["kind"] == "event" and e["t"] >= since]
    return (min(heard) - fault_at) if heard else float("inf")


def run(lab: ClusterLab, monitor: VipMonitor, scenario: str, workdir: Path) -> Run:
    """One fault on the current VIP holder, measured; the cluster is whole again when this returns."""
    wait_whole(lab)
    holder = lab.vip_holder()
    leader = False
    if scenario == "power-off":  # the worst case: the holder is also etcd's leader
        lab.move_etcd_leader(holder)
        leader = True
    files = {kind: workdir / f"{scenario}-{kind}.jsonl" for kind in ("read", "write", "watch")}
    procs = [lab.reader(BASELINE + WINDOW + 1, files["read"], "read", 20),
             lab.reader(BASELINE + WINDOW + 1, files["write"], "write", 10),
             lab.reader(BASELINE + WINDOW + 1, files["watch"], "watch", 1)]
    wait_for(lambda: any(t["ok"] for t in _lines(files["read"])), 10, "a first good read through the VIP")
    time.sleep(BASELINE)
    fault_at = time.time()
    _fault(lab, monitor, scenario)(holder)
    for proc in procs:
        proc.wait(timeout=WINDOW + 30)
    moved = [e.t - fault_at for e in monitor.events if e.added and e.node != holder and e.t >= fault_at]
    reads_back, failed_reads = _back(_lines(files["read"]), fault_at)
    writes_back, failed_writes = _back(_lines(files["write"]), fault_at)
    result = Run(scenario, holder, min(moved) if moved else None, reads_back, writes_back, failed_reads,
                 failed_writes, _watch_back(_lines(files["watch"]), _lines(files["write"]), fault_at), leader, fault_at)
    _restore(lab, scenario, holder)
    if scenario == "power-off":
        monitor.watch(holder, lab.nodes[holder].ns)
    wait_whole(lab)
    return result
