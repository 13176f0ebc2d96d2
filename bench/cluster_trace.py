"""Why a failover on real Kubernetes took as long as it did: one scenario, traced.

    sudo .venv/bin/python bench/cluster_trace.py --profile fast --scenario pull-cable --reps 2

A lab comes up (as in bench/cluster_failover.py); each run prints, relative to the fault: every VIP
add/delete on every master, every keepalived state change and prober verdict change in the masters' pod
logs, and the failed reads and writes bucketed by half second with their errors. The timeline shows whether
requests failed because the VIP moved (and how often), because haproxy sent them to a dead apiserver, or
because etcd had no leader.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from cluster import scenarios  # noqa: E402
from cluster.api_client import read_ticks  # noqa: E402
from cluster.bringup import bring_up  # noqa: E402
from cluster.lab import VIP, ClusterLab  # noqa: E402
from e2e.daemons import running, start_dockerd  # noqa: E402
from kubeha.lab.monitor import VipMonitor  # noqa: E402

# keepalived's state changes and the track_file's verdicts, as keepalived logs them
_KEEPALIVED = re.compile(r"kubeha-prober: |Entering \w+ STATE|[Ss]cript|track_file|timed.out|priority advert")


def pod_log_lines(lab: ClusterLab, name: str, pod: str, since: float, until: float) -> list[tuple[float, str]]:
    """Lines of a static pod's container logs in a node (CRI log format: RFC 3339 time first)."""
    out = lab.docker("exec", lab.nodes[name].container, "sh", "-c",
                     f"cat /var/log/pods/kube-system_{pod}-*/*/*.log 2>/dev/null", check=False).stdout.decode()
    lines = []
    for line in out.splitlines():
        stamp, _, rest = line.partition(" ")
        try:
            t = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        if since <= t <= until:
            lines.append((t, rest.split(" ", 2)[-1]))
    return lines


def failures(path: Path, fault_at: float) -> list[str]:
    """Failed requests per half second after the fault, with their errors."""
    buckets: dict[float, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for tick in read_ticks(path):
        if not tick["ok"] and tick["t"] + tick["ms"] / 1000 >= fault_at:
            buckets[round((tick["t"] - fault_at) * 2) / 2][tick.get("error") or f"HTTP {tick.get('status')}"] += 1
    return [f"  {k:+6.1f} s  {dict(v)}" for k, v in sorted(buckets.items())]


def neighbours(lab: ClusterLab) -> tuple[subprocess.Popen[str], list[tuple[float, str]]]:
    """Follow the client's neighbour table for the VIP (which MAC it sends to, and when that changes)."""
    proc = subprocess.Popen(["ip", "-ts", "-n", lab.client_ns, "monitor", "neigh"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    seen: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            stamp, _, rest = line.partition("]")
            if f"{VIP} " in rest:
                seen.append((datetime.fromisoformat(stamp.lstrip("[")).timestamp(), f"client neigh: {rest.strip()}"))

    threading.Thread(target=read, daemon=True).start()
    return proc, seen


def macs(lab: ClusterLab) -> dict[str, str]:
    out = {}
    for name, node in lab.nodes.items():
        link = json.loads(subprocess.run(["ip", "-n", node.ns, "-j", "link", "show", "eth0"], capture_output=True,
                                         text=True, check=False).stdout or "[{}]")
        out[name] = link[0].get("address", "?")
    return out


def trace(lab: ClusterLab, monitor: VipMonitor, scenario: str, work: Path) -> None:
    start = len(monitor.events)
    print(f"\n   MACs: {macs(lab)}")
    proc, seen = neighbours(lab)
    try:
        result = scenarios.run(lab, monitor, scenario, work)
    finally:
        proc.kill()
        proc.wait()
    print(f"\n== {scenario} on {result.holder}: {json.dumps(result.as_dict())}")
    moves = [e for e in monitor.events[start:] if e.t >= result.fault_at - 1]
    fault_at = result.fault_at
    timeline: list[tuple[float, str]] = [(e.t, f"{e.node}: VIP {'added' if e.added else 'deleted'}") for e in moves]
    timeline += [(t, text) for t, text in seen if t >= fault_at - 1]
    for name in lab.nodes:
        for t, text in pod_log_lines(lab, name, "kubeha-keepalived", fault_at - 2, fault_at + scenarios.WINDOW + 5):
            if _KEEPALIVED.search(text):
                timeline.append((t, f"{name}: {text[:140]}"))
        for t, text in pod_log_lines(lab, name, "kubeha-haproxy", fault_at - 2, fault_at + scenarios.WINDOW + 5):
            if " is DOWN" in text or " is UP" in text:
                timeline.append((t, f"{name}: haproxy {text[:140]}"))
    print(" timeline from the fault:")
    for t, text in sorted(timeline):
        print(f"  {t - fault_at:+7.2f} s  {text}")
    for kind in ("read", "write"):
        print(f" failed {kind}s from the fault:")
        print("\n".join(failures(work / f"{scenario}-{kind}.jsonl", fault_at)) or "  none")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--scenario", default="pull-cable", choices=scenarios.SCENARIOS)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with running(start_dockerd, "cltrace") as dockerd:
        work = Path(tempfile.mkdtemp(prefix=f"kh-cltrace-{args.profile}-"))
        lab = bring_up(dockerd, work, profile=args.profile)
        monitor = VipMonitor(VIP)
        try:
            for name, node in lab.nodes.items():
                monitor.watch(name, node.ns)
            for _ in range(args.reps):
                trace(lab, monitor, args.scenario, work)
        finally:
            monitor.stop()
            lab.down()
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
