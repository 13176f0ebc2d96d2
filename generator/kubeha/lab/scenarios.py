"""The ways the lab breaks the VIP holder or a peer, and the drill that runs them and judges the result."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubeha.lab.base import LabError, kill_pid, wait_for
from kubeha.lab.harness import Lab
from kubeha.lab.monitor import ServerWatch
from kubeha.lab.report import Result, measure_phase, sole, two_holders
from kubeha.lab.runtimes import Runtime
from kubeha.lab.topology import Topology


@dataclass
class Scenario:
    """A way to break the lab, and how to restore it."""

    name: str
    title: str
    target: str  # "holder" or "peer"
    breaks: Callable[[Lab, str], None]
    restores: Callable[[Lab, str], None]
    moves: bool | None  # whether the VIP must leave the target (None: either is fine)
    stops_apiserver: bool = False  # the target's apiserver: measure when the serving haproxy marks it down


def _hang(pod: str) -> Callable[[Lab, str], None]:
    return lambda lab, n: lab.stop_pod(n, pod, signal.SIGSTOP)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("kill-haproxy", "haproxy killed on the VIP holder", "holder",
             lambda lab, n: lab.stop_pod(n, "haproxy"), lambda lab, n: lab.start_pods(n, ["haproxy"]), True),
    Scenario("hang-haproxy", "haproxy hung (SIGSTOP) on the VIP holder", "holder",
             _hang("haproxy"), lambda lab, n: lab.resume_pod(n, "haproxy"), True),
    Scenario("stop-apiserver", "apiserver stopped on the VIP holder", "holder",
             lambda lab, n: lab.stop_apiserver(n), lambda lab, n: lab.start_apiserver(n), None, True),
    Scenario("stop-peer-apiserver", "apiserver stopped on a non-holder", "peer",
             lambda lab, n: lab.stop_apiserver(n), lambda lab, n: lab.start_apiserver(n), False, True),
    Scenario("hang-peer-apiserver", "apiserver hung (SIGSTOP) on a non-holder", "peer",
             lambda lab, n: lab.stop_apiserver(n, signal.SIGSTOP),
             lambda lab, n: lab.stop_apiserver(n, signal.SIGCONT), False, True),
    Scenario("hang-prober", "the prober hung (SIGSTOP) on the VIP holder: its node must fault", "holder",
             lambda lab, n: lab.stop_pod(n, "keepalived", signal.SIGSTOP, container="prober"),
             lambda lab, n: lab.resume_pod(n, "keepalived", container="prober"), True),
    Scenario("pull-cable", "cable pulled on the VIP holder", "holder",
             lambda lab, n: lab.set_link(n, False), lambda lab, n: lab.set_link(n, True), True),
    Scenario("power-off", "VIP holder powered off", "holder",
             lambda lab, n: lab.power_off(n), lambda lab, n: lab.power_on(n), True),
]}
DEFAULT_SCENARIOS = ("kill-haproxy", "hang-haproxy", "stop-apiserver", "stop-peer-apiserver",
                     "hang-peer-apiserver", "pull-cable", "power-off")


@dataclass(frozen=True)
class Timing:
    """How long a scenario waits; derived from the keepalived settings unless given."""

    move_timeout: float = 10.0
    settle: float = 3.0
    rate: float = 20.0
    # Two holders for less than VRRP's own master-down interval is convergence, not split brain: two backups
    # that time out together, or a preempting master and the old one, overlap until the next advert lands.
    # Longer than that means adverts are not getting through. The longest overlap is always reported.
    split_tolerance: float = 0.4
    # An interim holder that yields within one advert is VRRP convergence (two backups taking over together),
    # reported as a blip; anything longer is a move (and, when not expected, a flap).
    blip_tolerance: float = 0.1

    @staticmethod
    def for_topology(topo: Topology, rate: float = 20.0) -> Timing:
        """Settle long enough for the slowest check to flap: rise or fall checks plus two adverts."""
        t = topo.timing
        advert = t.get("advert_int", 1.0)
        checks = t.get("interval", 1.0) * max(t.get("fall", 1.0), t.get("rise", 1.0), 2.0)
        delay = t.get("preempt_delay", 0.0)  # a failback waits this long: the restore must outlast it
        detect = t.get("interval", 1.0) * (t.get("fall", 1.0) + 1) + 4 * advert  # the slowest check's worst case
        return Timing(move_timeout=max(10.0, detect + 2.0), settle=max(3.0, checks + 2 * advert + 1.0, delay + 2.0),
                      rate=rate, split_tolerance=3 * advert + 0.1, blip_tolerance=advert)


def run_scenario(lab: Lab, scenario: Scenario, timing: Timing) -> Result:
    """Break, observe, restore, observe; return the measurements."""
    holder = lab.wait_single_holder(timeout=30)
    target = holder if scenario.target == "holder" else sorted(n for n in lab.nodes if n != holder)[0]
    budget = 2 * (timing.move_timeout + timing.settle) + 2
    out = lab.workdir / f"client-{scenario.name}.jsonl"
    watch_out = lab.workdir / f"watch-{scenario.name}.jsonl"
    client = lab.client(budget, timing.rate, out)
    watcher = lab.watch(budget, watch_out)
    server_watch: ServerWatch | None = None
    try:
        wait_for(lambda: out.stat().st_size > 0, 10, "the client's first request")
        wait_for(lambda: b'"up"' in watch_out.read_bytes(), 10, "the watch's first event")
        time.sleep(0.5)
        if scenario.stops_apiserver:  # from a server the serving haproxy uses (a restore's rise checks may run)
            server_watch = lab.server_watch(holder, target, timing.move_timeout)
        t0 = time.time()
        scenario.breaks(lab, target)
        _wait_move(lab, holder, t0, timing.move_timeout if scenario.moves else timing.settle)
        time.sleep(timing.settle)
        t1 = time.time()
        marked_down = server_watch.stop() if server_watch else None
        holder_mid = sole(lab.monitor.current())
        healthy_end = holder_mid is not None and lab.healthy(holder_mid)
        scenario.restores(lab, target)
        time.sleep(timing.settle)
        with contextlib.suppress(LabError):
            lab.wait_single_holder(timeout=timing.move_timeout)
        t2 = time.time()
    finally:
        if server_watch:
            server_watch.stop()
            (lab.workdir / f"server-watch-{scenario.name}.json").write_text(json.dumps(server_watch.summary()))
        for proc in (client, watcher):
            kill_pid(proc.pid, signal.SIGTERM)
        for proc in (client, watcher):
            proc.wait(timeout=10)
    samples = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    watch = [json.loads(line) for line in watch_out.read_text().splitlines() if line.startswith("{")]
    fault = measure_phase(lab, holder, t0, t1, samples, watch, timing.blip_tolerance, marked_down)
    restore = measure_phase(lab, holder_mid or holder, t1, t2, samples, watch, timing.blip_tolerance)
    count, overlap = two_holders(lab, t0, t2, timing.split_tolerance)
    flaps = max(0, fault.moves - int(bool(scenario.moves))) + max(0, restore.moves - 1)
    result = Result(scenario.name, target, holder, fault, restore, flaps, count, round(overlap * 1000, 1),
                    healthy_end)
    result.problems = verdict(scenario, result, timing) + lab.blind_keepalived()
    return result


def verdict(scenario: Scenario, r: Result, timing: Timing) -> list[str]:
    """What a scenario got wrong: VIP not on a healthy node, two holders, no move (or a move) when expected."""
    problems = []
    if not r.healthy_end:
        problems.append(f"VIP not held by exactly one healthy node after the fault ({r.fault.holder_after})")
    if r.split_brain:
        problems.append(f"two connected nodes held the VIP for {r.overlap_ms:.0f} ms")
    if scenario.moves and (r.fault.moved_in is None or r.fault.moved_in > timing.move_timeout):
        problems.append(f"VIP did not leave {r.target} within {timing.move_timeout:.0f} s")
    if scenario.moves is False and r.fault.moves:
        problems.append("VIP moved although its holder stayed healthy")
    if r.restore.holder_after is None:
        problems.append("no single VIP holder after the restore")
    for phase, gap in (("fault", r.fault.watch_gap), ("restore", r.restore.watch_gap)):
        if gap is None:
            problems.append(f"the watch did not reconnect after the {phase}")
    return problems


def _wait_move(lab: Lab, holder: str, t0: float, timeout: float) -> None:
    """Wait until the VIP is added on a node other than ``holder`` (or the timeout)."""
    deadline = t0 + timeout
    while time.time() < deadline:
        if any(e.added and e.node != holder for e in lab.monitor.since(t0)):
            return
        time.sleep(0.02)


def run_drill(topo: Topology, runtime: Runtime, scenarios: Sequence[str], timing: Timing | None = None,
              workdir: Path | None = None, on_result: Callable[[Result], None] | None = None,
              on_up: Callable[[Lab], None] | None = None) -> list[Result]:
    """Bring a lab up, run the scenarios in order, always tear it down; return the results.

    ``on_up`` runs once the lab is up, before the first scenario (the bench measures the prober's CPU).
    """
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise LabError(f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    timing = timing or Timing.for_topology(topo)
    with _workdir(workdir) as wd:
        lab = Lab(topo, runtime, wd)
        results: list[Result] = []
        try:
            lab.up()
            if on_up:
                on_up(lab)
            for name in scenarios:
                results.append(run_scenario(lab, SCENARIOS[name], timing))
                if on_result:
                    on_result(results[-1])
        finally:
            lab.down()
            events = [{"t": e.t, "node": e.node, "added": e.added} for e in lab.monitor.since(0)]
            (wd / "vip-events.json").write_text(json.dumps(events, indent=1))
        return results


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    """A private (0700, root-owned) working directory, removed afterwards unless the caller gave one."""
    if given:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    path = Path(tempfile.mkdtemp(prefix="kubeha-lab-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
