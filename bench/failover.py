"""Failover bench: the classic (seed) profile and the default (fast) side by side in the namespaced lab.

Each repetition builds a fresh lab from the inventory's generated configs, runs the scenarios, and tears it
down. Prints, per profile and scenario: VIP moved in (median / worst), failed client requests (median /
worst), runs with flaps, the longest two-holder overlap, and runs that failed a check.

    sudo .venv/bin/python bench/failover.py                      # host binaries, 5 repetitions
    sudo .venv/bin/python bench/failover.py --runtime containerd --images images.tar
    sudo .venv/bin/python bench/failover.py --profiles fast --set 'haproxy.cfg:retries 3=retries 1'

``--set FILE:OLD=NEW`` rewrites the generated files before the lab runs (to try a setting before changing the
templates); the table says which rewrites were applied.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubeha import lab
from kubeha.cli.drill import format_table

REPO = Path(__file__).resolve().parents[1]
BENCH_SCENARIOS = "kill-haproxy,hang-haproxy,pull-cable,power-off"
COLUMNS = ("profile", "scenario", "runs", "VIP moved in (median / worst)", "failed (median / worst)",
           "back in (median / worst)", "failed on restore", "runs with flaps", "two holders max", "failed checks")


def _rewrite(files: lab.NodeFiles, sets: list[str]) -> None:
    """Apply FILE:OLD=NEW rewrites to every node's files; fail when one matches nothing."""
    for rule in sets:
        name, _, change = rule.partition(":")
        old, _, new = change.partition("=")
        hits = 0
        for node_files, _ in files.values():
            for path in node_files:
                if path.endswith("/" + name) and old.encode() in node_files[path]:
                    node_files[path] = node_files[path].replace(old.encode(), new.encode())
                    hits += 1
        if not hits:
            raise SystemExit(f"--set {rule!r}: {old!r} not found in any {name}")


@contextmanager
def _runtime(args: argparse.Namespace) -> Iterator[lab.Runtime]:
    """Host binaries, or a private containerd (tests/e2e/daemons.py) with the image archive imported."""
    if args.runtime == "host":
        yield lab.HostRuntime()
        return
    sys.path.insert(0, str(REPO / "tests"))
    from e2e import daemons  # the private-daemon helpers the e2e tests use
    from fixtures.images import ensure_images_tar  # this run's (or the cached) images.tar

    if args.address:
        runtime = lab.ContainerdRuntime(args.address)
        if args.images:
            runtime.import_images(args.images)
        yield runtime
        return
    daemon = daemons.start_containerd(daemons.short_workdir("bench-ctrd"))
    try:
        runtime = lab.ContainerdRuntime(str(daemon.socket))
        runtime.import_images(args.images or ensure_images_tar())
        yield runtime
    finally:
        daemons.stop_and_remove(daemon)


def _spread(values: list[float], unit: str = "") -> str:
    if not values:
        return "-"
    fmt = (lambda v: f"{v:.2f}{unit}") if unit else (lambda v: f"{v:.0f}")
    return f"{fmt(statistics.median(values))} / {fmt(max(values))}"


def summarize(profile: str, results: list[lab.Result]) -> list[tuple[str, ...]]:
    """One table row per scenario over all repetitions."""
    rows = []
    for name in dict.fromkeys(r.scenario for r in results):
        rs = [r for r in results if r.scenario == name]
        moved = [r.fault.moved_in for r in rs if r.fault.moved_in is not None]
        back = [r.restore.moved_in for r in rs if r.restore.moved_in is not None]
        rows.append((profile, name, str(len(rs)),
                     _spread(moved, " s") + (f" ({len(rs) - len(moved)} no move)" if len(moved) < len(rs) else ""),
                     _spread([float(r.fault.failed) for r in rs]), _spread(back, " s"),
                     _spread([float(r.restore.failed) for r in rs]),
                     f"{sum(1 for r in rs if r.flaps)} ({sum(r.flaps for r in rs)} extra moves)",
                     f"{max(r.overlap_ms for r in rs):.0f} ms", str(sum(1 for r in rs if r.problems))))
    return rows


def main() -> int:
    """Run the bench and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inventory", type=Path, default=REPO / "examples" / "cluster.yaml")
    parser.add_argument("--profiles", default="classic,fast")
    parser.add_argument("--scenarios", default=BENCH_SCENARIOS)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--runtime", choices=lab.RUNTIMES, default="host")
    parser.add_argument("--address", help="an existing containerd socket (default: start a private one)")
    parser.add_argument("--images", type=Path, help="image archive to import (containerd runtime; default: the "
                        "tests' cached images.tar, built when missing)")
    parser.add_argument("--set", action="append", default=[], metavar="FILE:OLD=NEW")
    parser.add_argument("--json", type=Path, help="also write every result here")
    args = parser.parse_args()
    try:
        return _bench(args)
    except lab.LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _bench(args: argparse.Namespace) -> int:
    """Run every profile's repetitions and print the table."""
    if args.images:
        args.images = args.images.resolve()
    lab.require_tools(args.runtime)
    scenarios = args.scenarios.split(",")
    rows: list[tuple[str, ...]] = []
    dump: dict[str, list[dict[str, object]]] = {}
    with _runtime(args) as runtime:
        for profile in args.profiles.split(","):
            results: list[lab.Result] = []
            for rep in range(args.reps):
                files = lab.files_from_inventory(args.inventory, profile)
                _rewrite(files, args.set)
                topo = lab.topology(files)
                with tempfile.TemporaryDirectory(prefix="kh-bench-") as wd:
                    results += lab.run_drill(topo, runtime, scenarios, workdir=Path(wd))
                print(f"{profile} repetition {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
            label = f"{profile} (default)" if profile == "fast" else profile
            rows += summarize(label, results)
            dump[profile] = [r.as_dict() for r in results]
    print(f"runtime {args.runtime}, {args.reps} repetitions, client 20 new TLS connections/s"
          + (f", rewrites: {'; '.join(args.set)}" if args.set else ""))
    print(format_table(rows, COLUMNS))
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
