"""What a scenario measured: phases, results, moves, and two-holder overlaps, from the VIP events and client samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeha.lab.harness import Lab
from kubeha.lab.monitor import VipEvent


@dataclass
class Phase:
    """Measurements of one phase (the fault, or the restore) of a scenario."""

    moved_in: float | None  # seconds until the VIP was added on another node, None when it did not move
    moves: int  # how many times the VIP changed holder
    failed: int  # client requests that failed
    requests: int
    holder_after: str | None
    watch_gap: float | None = 0.0  # longest time the watch went without events (0: unbroken, None: never back)
    watch_breaks: int = 0  # how often the watch connection broke
    blips: int = 0  # interim holders that yielded within VRRP's convergence time (not moves, not flaps)
    # seconds until the serving haproxy marked the stopped apiserver down: its runtime API's first answer saying
    # so (asked every 10 ms from the fault on, so at most one poll late)
    marked_down_in: float | None = None


@dataclass
class Result:
    """The outcome of one scenario."""

    scenario: str
    target: str
    holder_before: str
    fault: Phase
    restore: Phase
    flaps: int
    split_brain: int  # moments with two connected holders longer than the tolerance
    overlap_ms: float  # longest time two connected nodes held the VIP at once
    healthy_end: bool  # the VIP ended the fault phase on a healthy node
    problems: list[str] = field(default_factory=list)  # what went wrong (empty: the scenario passed)

    def as_dict(self) -> dict[str, Any]:
        """The result as plain data (for --json)."""
        from dataclasses import asdict

        return asdict(self)


def sole(holders: set[str]) -> str | None:
    """The one holder, or None when there are none or several."""
    return next(iter(holders)) if len(holders) == 1 else None


def watch_gaps(watch: list[dict[str, Any]], start: float, end: float) -> tuple[float | None, int]:
    """Longest watch outage that began in [start, end) (last event before it to the first event after it)."""
    downs = [w for w in watch if w["event"] == "down" and start <= w["t"] < end]
    longest: float | None = 0.0
    for down in downs:
        up = next((w for w in watch if w["event"] == "up" and w["t"] > down["t"]), None)
        if up is None:
            return None, len(downs)
        longest = max(longest or 0.0, up["t"] - down["last"])
    return (round(longest, 3) if longest is not None else None), len(downs)


def measure_phase(lab: Lab, holder: str, start: float, end: float, samples: list[dict[str, Any]],
                  watch: list[dict[str, Any]] | None = None, tolerance: float = 0.0,
                  marked_down: float | None = None) -> Phase:
    """Measure one phase from the VIP events, the client's samples and the watch's events in [start, end).

    ``marked_down``: when the haproxy that serves the VIP (the holder's) was seen to mark the stopped
    apiserver down (monitor.ServerWatch); counted only inside the phase.
    """
    events = [e for e in lab.monitor.since(start) if e.t < end]
    added = [e for e in events if e.added and e.node != holder]
    moves, blips = count_moves(lab, start, events, end, tolerance)
    window = [s for s in samples if start <= s["t"] < end]
    held = lab.monitor.holders_at(end)
    gap, breaks = watch_gaps(watch or [], start, end)
    down = marked_down if marked_down is not None and start <= marked_down < end else None
    return Phase(round(added[0].t - start, 3) if added else None, moves,
                 sum(1 for s in window if not s["ok"]), len(window), sole(held), gap, breaks, blips,
                 round(down - start, 3) if down is not None else None)


def count_moves(lab: Lab, start: float, events: list[VipEvent], end: float | None = None,
                tolerance: float = 0.0) -> tuple[int, int]:
    """(moves, blips): how often a new node became the sole connected holder, and how many of those were blips.

    A short two-holder overlap is not a move. A blip is a sole holder that gave the VIP up again within
    ``tolerance`` (VRRP convergence: two backups whose skew timers fire together both take over, and the
    lower-priority one yields on the other's first advert); it is reported, not counted as a move.
    """
    last = sole({n for n in lab.monitor.holders_at(start) if lab.connected(n, start)})
    segments: list[tuple[float, str]] = []  # (since, sole holder)
    for e in events:
        one = sole({n for n in lab.monitor.holders_at(e.t) if lab.connected(n, e.t)})
        if one is not None and one != (segments[-1][1] if segments else last):
            segments.append((e.t, one))
    moves = blips = 0
    stop = end if end is not None else float("inf")
    for i, (since, one) in enumerate(segments):
        until = segments[i + 1][0] if i + 1 < len(segments) else stop
        if i + 1 < len(segments) and until - since < tolerance:
            blips += 1
            continue
        if one != last:
            moves, last = moves + 1, one
    return moves, blips


def two_holders(lab: Lab, start: float, end: float, tolerance: float) -> tuple[int, float]:
    """Count intervals where two connected nodes held the VIP longer than ``tolerance``; longest overlap."""
    edges = {start} | {e.t for e in lab.monitor.since(start) if e.t < end}
    for node in lab.nodes.values():
        edges |= {t for span in node.offline_since for t in span if start <= t < end}
    times = sorted(edges)
    count, longest, since = 0, 0.0, None
    for a, b in zip(times, [*times[1:], end], strict=True):
        several = len({n for n in lab.monitor.holders_at(a) if lab.connected(n, a)}) >= 2
        if several and since is None:
            since = a
        if since is not None and (not several or b >= end):
            stop = b if several else a
            longest = max(longest, stop - since)
            count += stop - since > tolerance
            since = None
    return count, longest
