"""Benchmark `kubeha gen userdata` on a 10,000-node inventory (5 masters) and `kubeha --help` start time.

Prints wall time and peak RSS of each, next to a baseline measured in the same run on the same machine:
bare `python -c pass` start-up for `--help`, and for generation a plain-Python writer that creates the
same directories and files with the same bytes (the floor any generator pays for the I/O).
Targets (issue 2): gen under 3 s and 300 MB for 10,000 nodes; --help under 150 ms.
Two inventories of the same cluster: the native YAML one, and an Ansible INI one whose hosts are written
with ranges and reach k8s-master/k8s-node through :children (issue 10), for which it also prints how much of
the generation time loading and validating the inventory takes (in-process, median of the runs).
Run: .venv/bin/python bench/gen.py [--nodes N] [--repeat R] [--inventory native|ansible|both]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
KUBEHA = str(VENV_BIN / "kubeha")


def make_inventory(path: Path, nodes: int) -> None:
    lines = ["cluster:", "  name: bench", "  vip: 198.18.0.10/15", "masters:"]
    lines += [f"  - {{name: m{i}, address: 198.18.0.{11 + i}}}" for i in range(5)]
    lines.append("workers:")
    lines += [f"  - {{name: w{i}, address: 198.19.{i // 250}.{i % 250 + 1}}}" for i in range(nodes - 5)]
    path.write_text("\n".join(lines) + "\n")


def make_ansible_inventory(path: Path, nodes: int) -> None:
    """The same cluster as make_inventory, in Ansible INI: ranges, rack groups, :children chains, group vars."""
    lines = ["[control_plane]", "198.18.0.[11:15]", "[k8s-master:children]", "control_plane"]
    workers, racks = nodes - 5, []
    for r in range((workers + 249) // 250):
        count = min(250, workers - r * 250)
        racks.append(f"rack{r:02d}")
        lines += [f"[rack{r:02d}]", f"198.19.{r}.[1:{count}]", f"[rack{r:02d}:vars]", "interface=eth0"]
    lines += ["[compute:children]", *racks, "[k8s-node:children]", "compute", "[k8s-all:children]", "k8s-master",
              "k8s-node", "[all:vars]", "cluster_name=bench", "vip=198.18.0.10/15"]
    path.write_text("\n".join(lines) + "\n")


def load_seconds(inv: Path, repeat: int) -> tuple[float, float]:
    """Median in-process seconds of reading the inventory alone, and of reading + validating it (no rendering)."""
    from kubeha import inventory
    from kubeha.generate import load_cluster

    read, both = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        inventory.load(inv)
        read.append(time.perf_counter() - start)
        start = time.perf_counter()
        load_cluster(inv)
        both.append(time.perf_counter() - start)
    return statistics.median(read), statistics.median(both)


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def floor_writer(src: Path, dst: Path) -> None:
    """Baseline: rewrite an existing output tree file by file in plain Python."""
    for ndir in sorted(p for p in src.iterdir() if p.is_dir()):  # node folders (not kubeha's manifest)
        (dst / ndir.name).mkdir(parents=True)
        for f in ndir.iterdir():
            (dst / ndir.name / f.name).write_bytes(f.read_bytes())


def bench_gen(work: Path, inv: Path, args: argparse.Namespace) -> None:
    """Time `kubeha gen userdata` on ``inv`` and print wall, RSS, the file-writer floor and the load share."""
    work.mkdir()
    gens = []
    for r in range(args.repeat):
        gens.append(timed([KUBEHA, "gen", "userdata", str(inv), "-o", str(work / f"out{r}")]))
    start = time.perf_counter()
    floor_writer(work / "out0", work / "floor")
    floor = time.perf_counter() - start
    files = sum(1 for _ in (work / "out0").rglob("*") if _.is_file())
    wall = statistics.median(g[0] for g in gens)
    read, load = load_seconds(inv, max(args.repeat, 5))
    print(f"kubeha gen userdata, {args.nodes} nodes ({files} files) from {inv.name} ({inv.stat().st_size:,} B) "
          f"under {work.parent.parent}, {args.repeat} runs:")
    print(f"  wall   median {wall:.2f} s, worst {max(g[0] for g in gens):.2f} s "
          f"(target < 3 s); plain-Python file writer floor {floor:.2f} s")
    print(f"  peak RSS {max(g[1] for g in gens):.0f} MB (target < 300 MB)")
    print(f"  in-process, median: read the inventory {read:.2f} s ({100 * read / wall:.0f}% of the wall), "
          f"read + validate {load:.2f} s ({100 * load / wall:.0f}%)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", help="where to write (default: the temp dir; /dev/shm separates CPU from disk)")
    ap.add_argument("--inventory", choices=["native", "ansible", "both"], default="both")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kubeha-bench-", dir=args.dir))
    try:
        kinds = ["native", "ansible"] if args.inventory == "both" else [args.inventory]
        for kind in kinds:
            inv = work / ("big.yaml" if kind == "native" else "big.ini")
            (make_inventory if kind == "native" else make_ansible_inventory)(inv, args.nodes)
            bench_gen(work / kind, inv, args)
        help_times = [timed([KUBEHA, "--help"])[0] for _ in range(5)]
        bare = [timed([sys.executable, "-c", "pass"])[0] for _ in range(5)]
        print(f"kubeha --help: median {statistics.median(help_times) * 1000:.0f} ms (target < 150 ms); "
              f"bare python start {statistics.median(bare) * 1000:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "0")
    main()
