"""Failover bench: classic, the kubeadm HA guide's settings and fast side by side, in the namespaced lab.

Each repetition builds a fresh lab from the inventory's generated configs, runs the scenarios, and tears it
down. Prints one table, per variant and scenario, median / worst over the repetitions: VIP moved in, when
the serving haproxy marked a stopped apiserver down (asked of its runtime API), failed client requests (20
new TLS connections/s), watch reconnect (longest time a long-lived TLS watch through the VIP went without events),
VIP back in and failed requests on restore, runs with flaps, blips (an interim
holder that yielded within one advert: two backups taking over together, VRRP convergence, not a move), the
longest two-holder overlap, runs that failed a check; then each variant's CPU cost on the lab's nodes (the
keepalived pod, and the prober within it).

A variant is a profile (``classic``, ``fast``, or a bench-only baseline: ``kubeadm-guide``, or
``fast-script``, keepalived 2.3's own 0.1 s ``vrrp_script`` instead of the prober) with optional
failback overrides: ``fast+preempt`` (take the VIP back at once), ``fast+delay=2`` (preempt after 2 s),
``fast+nopreempt``.

    sudo .venv/bin/python bench/failover.py --runtime containerd            # the built images, 10 repetitions
    sudo .venv/bin/python bench/failover.py --variants fast,fast+preempt --reps 5
    sudo .venv/bin/python bench/failover.py --variants fast --set 'haproxy.cfg:retries 3=retries 1'

``--reps-for VARIANT=N`` gives a slow variant fewer repetitions (kubeadm-guide needs about 100 s per
scenario). ``--set FILE:OLD=NEW`` rewrites the generated files before the lab runs (to try a setting before
changing the templates); the table says which rewrites were applied.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubeha import lab
from kubeha.cli.drill import format_table

REPO = Path(__file__).resolve().parents[1]
BENCH_SCENARIOS = ",".join(lab.DEFAULT_SCENARIOS)
DEFAULT_VARIANTS = "classic,kubeadm-guide,fast"
COLUMNS = ("variant", "scenario", "runs", "VIP moved in", "marked down in", "failed", "watch reconnect", "back in",
           "failed on restore", "watch on restore", "flaps", "blips", "two holders max", "failed checks")
CPU_SECONDS = 10.0


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


def variant_files(inventory: Path, variant: str) -> lab.NodeFiles:
    """The generated files of a variant: PROFILE[+preempt|+nopreempt|+delay=SECONDS]."""
    profile, *options = variant.split("+")
    preempt: bool | None = None
    delay: float | None = None
    for option in options:
        if option in ("preempt", "nopreempt"):
            preempt = option == "preempt"
        elif option.startswith("delay="):
            preempt, delay = True, float(option.removeprefix("delay="))
        else:
            raise SystemExit(f"variant {variant!r}: unknown option {option!r} (preempt, nopreempt, delay=S)")
    return lab.files_from_inventory(inventory, profile, preempt, delay)


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


def _watch(gaps: list[float | None]) -> str:
    never = sum(1 for g in gaps if g is None)
    text = _spread([g for g in gaps if g is not None], " s")
    return text + (f" ({never} never)" if never else "")


def summarize(variant: str, results: list[lab.Result]) -> list[tuple[str, ...]]:
    """One table row per scenario over all repetitions (median / worst)."""
    rows = []
    for name in dict.fromkeys(r.scenario for r in results):
        rs = [r for r in results if r.scenario == name]
        moved = [r.fault.moved_in for r in rs if r.fault.moved_in is not None]
        back = [r.restore.moved_in for r in rs if r.restore.moved_in is not None]
        rows.append((variant, name, str(len(rs)),
                     _spread(moved, " s") + (f" ({len(rs) - len(moved)} no move)" if len(moved) < len(rs) else ""),
                     _spread([r.fault.marked_down_in for r in rs if r.fault.marked_down_in is not None], " s"),
                     _spread([float(r.fault.failed) for r in rs]), _watch([r.fault.watch_gap for r in rs]),
                     _spread(back, " s") + (f" ({len(rs) - len(back)} stayed)" if back and len(back) < len(rs)
                                            else ""),
                     _spread([float(r.restore.failed) for r in rs]), _watch([r.restore.watch_gap for r in rs]),
                     f"{sum(1 for r in rs if r.flaps)} ({sum(r.flaps for r in rs)} extra moves)",
                     str(sum(r.fault.blips + r.restore.blips for r in rs)), f"{max(r.overlap_ms for r in rs):.0f} ms",
                     str(sum(1 for r in rs if r.problems))))
    return rows


def pod_cpu(the_lab: lab.Lab, seconds: float = CPU_SECONDS) -> dict[str, float]:
    """Percent of one core per node over ``seconds`` of a quiet lab: the keepalived pod, and its prober.

    The pod's figure comes from its containers' cgroups, so it counts every process that ran in them,
    the short-lived ``sh`` + ``curl`` of a ``vrrp_script`` included (fast-script); the prober's from its
    process and waited-for children (the long-lived curl). Keys are missing where a figure cannot be had
    (the host runtime has no per-container cgroups; profiles without a prober).
    """
    nodes = list(the_lab.nodes)
    pods = {n: the_lab.pod_cpu_seconds(n, "keepalived") for n in nodes}
    probers = {n: the_lab.cpu_seconds(n, "keepalived", "prober") for n in nodes}
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    out: dict[str, float] = {}
    pod_after = {n: the_lab.pod_cpu_seconds(n, "keepalived") for n in nodes}
    pod = [100 * (a - b) / elapsed for n in nodes if (a := pod_after[n]) is not None and (b := pods[n]) is not None]
    if pod:
        out.update(pod_mean=statistics.mean(pod), pod_max=max(pod))
    prober = [100 * (the_lab.cpu_seconds(n, "keepalived", "prober") - probers[n]) / elapsed for n in nodes]
    if any(prober):
        out.update(prober_mean=statistics.mean(prober), prober_max=max(prober))
    return out


def cpu_lines(cpu: dict[str, dict[str, float]]) -> list[str]:
    """One line per variant: the keepalived pod's CPU, and the prober's share of it."""
    lines = []
    for variant, c in cpu.items():
        parts = []
        if "pod_mean" in c:
            parts.append(f"keepalived pod {c['pod_mean']:.2f}% of one core per node (max {c['pod_max']:.2f}%)")
        if "prober_mean" in c:
            parts.append(f"of which the prober {c['prober_mean']:.2f}% (max {c['prober_max']:.2f}%)")
        lines.append(f"CPU over {CPU_SECONDS:.0f} s, {variant}: " + ("; ".join(parts) or "not measurable here"))
    return lines


def main() -> int:
    """Run the bench and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inventory", type=Path, default=REPO / "examples" / "cluster.yaml")
    parser.add_argument("--variants", "--profiles", default=DEFAULT_VARIANTS)
    parser.add_argument("--scenarios", default=BENCH_SCENARIOS)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--reps-for", action="append", default=[], metavar="VARIANT=N")
    parser.add_argument("--runtime", choices=lab.RUNTIMES, default="host")
    parser.add_argument("--address", help="an existing containerd socket (default: start a private one)")
    parser.add_argument("--images", type=Path, help="image archive to import (containerd runtime; default: the "
                        "tests' cached images.tar, built when missing)")
    parser.add_argument("--set", action="append", default=[], metavar="FILE:OLD=NEW")
    parser.add_argument("--json", type=Path, help="also write every result here")
    args = parser.parse_args()

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so the lab's finally-blocks tear everything down (namespaces, containers)

    signal.signal(signal.SIGTERM, interrupt)
    try:
        return _bench(args)
    except lab.LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _bench(args: argparse.Namespace) -> int:
    """Run every variant's repetitions and print the table."""
    if args.images:
        args.images = args.images.resolve()
    lab.require_tools(args.runtime)
    scenarios = args.scenarios.split(",")
    reps_for = {k: int(v) for k, _, v in (r.rpartition("=") for r in args.reps_for)}
    rows: list[tuple[str, ...]] = []
    dump: dict[str, object] = {}
    cpu: dict[str, dict[str, float]] = {}
    started = time.monotonic()
    with _runtime(args) as runtime:
        for variant in args.variants.split(","):
            results: list[lab.Result] = []
            reps = reps_for.get(variant, args.reps)
            for rep in range(reps):
                files = variant_files(args.inventory, variant)
                _rewrite(files, args.set)
                topo = lab.topology(files)

                def measure(the_lab: lab.Lab, variant: str = variant) -> None:
                    cpu[variant] = pod_cpu(the_lab)

                with tempfile.TemporaryDirectory(prefix="kh-bench-") as wd:
                    results += lab.run_drill(topo, runtime, scenarios, workdir=Path(wd),
                                             on_up=measure if variant not in cpu else None)
                print(f"{variant} repetition {rep + 1}/{reps} done ({time.monotonic() - started:.0f} s)",
                      file=sys.stderr, flush=True)
            rows += summarize(variant, results)
            dump[variant] = [r.as_dict() for r in results]
    print(f"runtime {args.runtime}, repetitions per variant: "
          + ", ".join(f"{v} {reps_for.get(v, args.reps)}" for v in args.variants.split(","))
          + "; client 20 new TLS connections/s + one TLS watch; median / worst"
          + (f"; rewrites: {'; '.join(args.set)}" if args.set else ""))
    print(format_table(rows, COLUMNS))
    for line in cpu_lines(cpu):
        print(line)
    if cpu:
        dump["cpu"] = cpu
    print(f"wall time {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
