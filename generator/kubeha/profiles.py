"""Failover profiles: the timing knobs of keepalived, the check script and haproxy, and what they imply.

``classic`` is the seed's 2019 design as written (VRRPv2, advert 1 s, check every 3 s asking an apiserver
through haproxy's frontend, haproxy ``inter 1500 rise 1 fall 3``). ``fast`` (the default) is the tuned row
of LAB.md, tuned further in the failover lab (bench/failover.py): VRRPv3 with 100 ms adverts, a check every
second that fails on the first miss, fast haproxy checks, and a check that asks haproxy's own ``/readyz``
monitor (alive, and at least one apiserver passing haproxy's HTTPS checks) instead of one round-robin
request through :6444, which can land on a dead apiserver before haproxy marks it down and drop a
*healthy* node's priority (measured: flaps).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Timing settings; times in seconds unless the name says ms."""

    name: str
    vrrp_version: int
    advert_int: float
    check_interval: int  # keepalived vrrp_script interval: whole seconds, >= 1
    check_timeout: int  # keepalived kills the script after this many seconds (counts as a failure)
    check_fall: int
    check_rise: int
    curl_connect_timeout: float
    curl_max_time: float
    hap_inter_ms: int
    hap_fastinter_ms: int
    hap_downinter_ms: int
    hap_fall: int
    hap_rise: int
    hap_timeout_connect_ms: int
    hap_timeout_check_ms: int
    hap_fast_markdown: bool  # observe layer4 error-limit 1 on-error mark-down
    hap_redispatch: bool
    check_via_monitor: bool  # ask haproxy's /readyz monitor (True) or an apiserver through :lb_port (False)

    @property
    def master_down_s(self) -> float:
        """VRRP master-down interval (RFC 5798): 3 adverts plus the worst skew (lowest priority)."""
        return 3 * self.advert_int + self.advert_int

    @property
    def check_detect_s(self) -> float:
        """Worst time for the check script to report a failed path: wait for the next run, then fail runs."""
        return self.check_interval * self.check_fall + self.check_timeout

    @property
    def hap_markdown_s(self) -> float:
        """Time for haproxy's health checks to mark a dead (refusing) apiserver down.

        The first failed check comes at most ``inter`` after the death, the next ``fall - 1`` ones every
        ``fastinter``. (With ``observe layer4 ... on-error mark-down`` a failed client connection is
        faster still.)
        """
        return (self.hap_inter_ms + self.hap_fastinter_ms * (self.hap_fall - 1)) / 1000

    def path_failover_s(self) -> float:
        """Worst-case VIP move after the local haproxy or apiserver path fails."""
        return self.check_detect_s + self.master_down_s

    def link_failover_s(self) -> float:
        """Worst-case VIP move after the holder loses its link or power."""
        return self.master_down_s


PROFILES: dict[str, Profile] = {
    "fast": Profile(
        name="fast", vrrp_version=3, advert_int=0.1, check_interval=1, check_timeout=1, check_fall=1,
        check_rise=2, curl_connect_timeout=0.2, curl_max_time=0.3, hap_inter_ms=500, hap_fastinter_ms=200,
        hap_downinter_ms=1000, hap_fall=2, hap_rise=2, hap_timeout_connect_ms=300, hap_timeout_check_ms=300,
        hap_fast_markdown=True, hap_redispatch=True, check_via_monitor=True,
    ),
    "classic": Profile(
        name="classic", vrrp_version=2, advert_int=1, check_interval=3, check_timeout=2, check_fall=1,
        check_rise=1, curl_connect_timeout=1, curl_max_time=1.5, hap_inter_ms=1500, hap_fastinter_ms=1500,
        hap_downinter_ms=1500, hap_fall=3, hap_rise=1, hap_timeout_connect_ms=5000,
        hap_timeout_check_ms=5000, hap_fast_markdown=False, hap_redispatch=False, check_via_monitor=False,
    ),
}
