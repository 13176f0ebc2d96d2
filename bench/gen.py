"""Benchmark `kubeha gen userdata` on a 10,000-node inventory (5 masters) and `kubeha --help` start time.

Prints wall time and peak RSS of each, next to a baseline measured in the same run on the same machine:
bare `python -c pass` start-up for `--help`, and for generation a plain-Python writer that creates the
same directories and files with the same bytes (the floor any generator pays for the I/O).
Targets (issue 2): gen under 3 s and 300 MB for 10,000 nodes; --help under 150 ms.
Run: .venv/bin/python bench/gen.py [--nodes N] [--repeat R]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", help="where to write (default: the temp dir; /dev/shm separates CPU from disk)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kubeha-bench-", dir=args.dir))
    try:
        inv = work / "big.yaml"
        make_inventory(inv, args.nodes)
        help_times = [timed([KUBEHA, "--help"])[0] for _ in range(5)]
        bare = [timed([sys.executable, "-c", "pass"])[0] for _ in range(5)]
        gens = []
        for r in range(args.repeat):
            out = work / f"out{r}"
            gens.append(timed([KUBEHA, "gen", "userdata", str(inv), "-o", str(out)]))
        start = time.perf_counter()
        floor_writer(work / "out0", work / "floor")
        floor = time.perf_counter() - start
        files = sum(1 for _ in (work / "out0").rglob("*") if _.is_file())
        print(f"kubeha gen userdata, {args.nodes} nodes ({files} files) under {work.parent}, {args.repeat} runs:")
        print(f"  wall   median {statistics.median(g[0] for g in gens):.2f} s, worst {max(g[0] for g in gens):.2f} s "
              f"(target < 3 s); plain-Python file writer floor {floor:.2f} s")
        print(f"  peak RSS {max(g[1] for g in gens):.0f} MB (target < 300 MB)")
        print(f"kubeha --help: median {statistics.median(help_times) * 1000:.0f} ms (target < 150 ms); "
              f"bare python start {statistics.median(bare) * 1000:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "0")
    main()
