"""Failover on real Kubernetes: three masters booted from kubeha's documents, kubeadm's cluster on them,
clients doing real API work through the VIP, and the VIP holder broken in every way the namespace lab
breaks it. ``fast`` beside ``classic`` in one table, median / worst over the repetitions.

    sudo .venv/bin/python bench/cluster_failover.py                       # fast and classic, 5 repetitions
    sudo .venv/bin/python bench/cluster_failover.py --profiles fast --reps 3 --scenarios kill-haproxy

Per profile a fresh lab comes up (its bring-up time and memory are printed), then each scenario runs
``--reps`` times on whichever master holds the VIP (tests/cluster/scenarios.py says what is measured). For
``power-off`` the holder is made etcd's leader first: the worst case, when quorum reads and writes wait for
a new leader (the lab's etcd timings are printed with the table).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from cluster import kubeadm_config, scenarios  # noqa: E402
from cluster.bringup import bring_up  # noqa: E402
from cluster.lab import VIP  # noqa: E402
from e2e.daemons import running, start_dockerd  # noqa: E402
from kubeha.cli.drill import format_table  # noqa: E402
from kubeha.lab.monitor import VipMonitor  # noqa: E402

COLUMNS = ("profile", "scenario", "runs", "VIP moved in", "reads back in", "writes back in", "failed reads",
           "failed writes", "watch reconnect")
GOALS = {  # seconds: reads back, writes back, watch reconnect (the table)
    "kill-haproxy": (0.5, 0.5, 1.0),
    "hang-haproxy": (0.5, 0.5, 1.0),
    "kill-apiserver": (1.0, 1.0, 1.0),
    "power-off": (kubeadm_config.ETCD_ELECTION_MS / 1000 + 1, kubeadm_config.ETCD_ELECTION_MS / 1000 + 1,
                  kubeadm_config.ETCD_ELECTION_MS / 1000 + 2),
}


def spread(values: list[float | None], unit: str = " s") -> str:
    """``median / worst`` (``stays`` when the VIP never moved in any run)."""
    known = [v for v in values if v is not None]
    if not known:
        return "stays"
    fmt = (lambda v: f"{v:.2f}") if unit else (lambda v: f"{v:.0f}")
    return f"{fmt(statistics.median(known))} / {fmt(max(known))}{unit}"


def rows(profile: str, runs: list[scenarios.Run]) -> list[tuple[str, ...]]:
    out = []
    for name in dict.fromkeys(r.scenario for r in runs):
        rs = [r for r in runs if r.scenario == name]
        out.append((profile, name, str(len(rs)), spread([r.vip_moved for r in rs]),
                    spread([r.reads_back for r in rs]), spread([r.writes_back for r in rs]),
                    spread([float(r.failed_reads) for r in rs], ""), spread([float(r.failed_writes) for r in rs], ""),
                    spread([r.watch_reconnect for r in rs])))
    return out


def verdicts(runs: list[scenarios.Run]) -> list[str]:
    lines = []
    for name, (reads, writes, watch) in GOALS.items():
        rs = [r for r in runs if r.scenario == name]
        if rs:
            worst = (max(r.reads_back for r in rs), max(r.writes_back for r in rs), max(r.watch_reconnect for r in rs))
            ok = worst[0] <= reads and worst[1] <= writes and worst[2] <= watch
            lines.append(f"  {name}: worst reads {worst[0]:.2f} s (goal {reads} s), writes {worst[1]:.2f} s "
                         f"(goal {writes} s), watch {worst[2]:.2f} s (goal {watch} s): {'met' if ok else 'MISSED'}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="fast,classic")
    parser.add_argument("--scenarios", default=",".join(scenarios.SCENARIOS))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print every run as JSON instead of the table")
    args = parser.parse_args()
    table: list[tuple[str, ...]] = []
    every: dict[str, list[scenarios.Run]] = {}
    notes: list[str] = []
    with running(start_dockerd, "clbench") as dockerd:
        for profile in args.profiles.split(","):
            work = Path(tempfile.mkdtemp(prefix=f"kh-clbench-{profile}-"))
            lab = bring_up(dockerd, work, profile=profile)
            monitor = VipMonitor(VIP)
            try:
                for name, node in lab.nodes.items():
                    monitor.watch(name, node.ns)
                memory = lab.memory_mib()
                notes.append(f"{profile}: up in {lab.timings['start to three apiservers behind the VIP']:.0f} s "
                             f"({', '.join(f'{k} {v:.0f} s' for k, v in lab.timings.items())}); memory "
                             f"{sum(memory.values()):.0f} MiB ({', '.join(f'{k} {v:.0f}' for k, v in memory.items())})")
                runs = []
                for _ in range(args.reps):
                    for scenario in args.scenarios.split(","):
                        runs.append(scenarios.run(lab, monitor, scenario, work))
                        print(f"# {profile} {json.dumps(runs[-1].as_dict())}", file=sys.stderr, flush=True)
                every[profile] = runs
                table += rows(profile, runs)
            finally:
                monitor.stop()
                lab.down()
                shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({p: [r.as_dict() for r in rs] for p, rs in every.items()}, indent=2))
        return 0
    print(format_table(table, COLUMNS))
    print(f"\netcd: heartbeat {kubeadm_config.ETCD_HEARTBEAT_MS} ms, "
          f"election timeout {kubeadm_config.ETCD_ELECTION_MS} ms")
    print("\n".join(notes))
    for profile, runs in every.items():
        print(f"goals, {profile}:")
        print("\n".join(verdicts(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
