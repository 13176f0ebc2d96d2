"""The cluster bench's measures (tests/cluster/scenarios.py) on made-up client ticks: what "back in" and
"watch reconnect" mean, including the edges (in flight at the fault, nothing failed, never back)."""

from __future__ import annotations

import math

from cluster.scenarios import _back, _watch_back

FAULT = 1000.0


def tick(t: float, ok: bool, ms: float = 10.0) -> dict[str, object]:
    return {"t": FAULT + t, "ok": ok, "ms": ms}


def test_nothing_failed_is_back_in_zero() -> None:
    assert _back([tick(-0.1, True), tick(0.05, True), tick(0.1, True)], FAULT) == (0.0, 0)


def test_back_is_the_first_good_request_after_the_last_failure() -> None:
    ticks = [tick(-0.1, True), tick(0.05, False), tick(0.1, True), tick(0.3, False), tick(0.35, False),
             tick(0.4, True), tick(0.45, True)]
    back, failed = _back(ticks, FAULT)
    assert math.isclose(back, 0.4) and failed == 3


def test_a_request_in_flight_at_the_fault_counts_as_failed() -> None:
    back, failed = _back([tick(-0.5, False, ms=1000), tick(-0.4, True), tick(0.1, True)], FAULT)
    assert failed == 1
    assert back == 0.0  # a request sent after the broken one, before the fault, succeeded: never a negative time


def test_a_failure_that_ended_before_the_fault_is_not_counted() -> None:
    assert _back([tick(-0.5, False, ms=100), tick(0.1, True)], FAULT) == (0.0, 0)


def test_never_back_is_infinite() -> None:
    back, failed = _back([tick(0.1, True), tick(0.2, False), tick(0.3, False)], FAULT)
    assert back == math.inf and failed == 2


def event(t: float, kind: str) -> dict[str, object]:
    return {"t": FAULT + t, "kind": kind}


def test_watch_heard_after_its_last_break() -> None:
    events = [event(-0.1, "event"), event(0.2, "broken"), event(0.25, "connected"), event(0.6, "broken"),
              event(0.7, "connected"), event(0.9, "event")]
    writes = [tick(1.0, True)]
    assert math.isclose(_watch_back(events, writes, FAULT), 0.9)


def test_watch_that_never_broke_counts_from_the_fault() -> None:
    assert math.isclose(_watch_back([event(-0.1, "event"), event(0.3, "event")], [tick(0.5, True)], FAULT), 0.3)


def test_watch_breaks_after_the_last_good_write_are_silence_not_outage() -> None:
    events = [event(0.2, "event"), event(5.0, "broken")]
    assert math.isclose(_watch_back(events, [tick(0.1, True), tick(1.0, True)], FAULT), 0.2)


def test_watch_never_heard_again_is_infinite() -> None:
    assert _watch_back([event(0.1, "broken")], [tick(2.0, True)], FAULT) == math.inf
