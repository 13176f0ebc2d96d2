"""Failover profiles: the timing knobs of keepalived, the check script and haproxy, and what they imply.

``classic`` is the seed's 2019 design as written (VRRPv2, advert 1 s, check every 3 s asking an apiserver
through haproxy's frontend, haproxy ``inter 1500 rise 1 fall 3``). ``fast`` (the default) is the tuned row
of LAB.md, tuned further in the failover lab (bench/failover.py): VRRPv3 with 100 ms adverts, a check every
second that fails on the first miss, fast haproxy checks, and a check that asks haproxy's own ``/readyz``
monitor (alive, and at least one apiserver passing haproxy's HTTPS checks) instead of one round-robin
request through :6444, which can land on a dead apiserver before haproxy marks it down and drop a
*healthy* node's priority (measured: flaps).

``fast`` detects a broken haproxy in a fraction of a second: a prober in the keepalived pod asks the
monitor every 100 ms and writes a keepalived ``track_file`` (temp + rename, seen at once through inotify);
a failed probe puts the node in FAULT, which sends a priority-0 advert so a backup takes over at once. The
1 s ``vrrp_script`` only checks that the prober is alive, so a dead or hung prober also faults the node: the
VIP moves rather than staying without a working check. (A 0.1 s ``vrrp_script``, which the shipped keepalived
2.3 allows, detects as fast but forks ten times a second: measured 7.6% of a core against 1.1%.)

``BASELINES`` holds settings measured for comparison only (bench/failover.py),
never offered in an inventory (``kubeha drill`` takes only PROFILES): ``kubeadm-guide`` is the kubeadm HA
guide's keepalived + haproxy example;
``fast-script`` is ``fast`` with the prober replaced by what keepalived 2.3.2+ allows on its own, a
``vrrp_script`` every 0.1 s (one ``sh`` + ``curl`` fork per run), the option the prober was chosen over.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    """Timing settings; times in seconds unless the name says ms."""

    name: str
    vrrp_version: int
    advert_int: float
    check_interval: float  # keepalived vrrp_script interval, s (whole seconds before keepalived 2.3.2)
    check_timeout: float  # keepalived kills the script after this many seconds (counts as a failure)
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
    hap_shutdown_sessions: bool = False  # on-marked-down shutdown-sessions (watches leave a dead apiserver)
    probe: bool = False  # the 100 ms prober + track_file (fast) instead of the whole-second check alone
    probe_interval_ms: int = 100  # one probe of haproxy's /readyz this often
    probe_timeout_ms: int = 100  # no answer within this: the probe failed
    probe_fall: int = 1  # consecutive failed probes that fault the node
    probe_rise: int = 3  # consecutive good probes that clear the fault
    probe_refresh_s: int = 1  # the prober rewrites its verdict at least this often (its heartbeat)
    probe_stale_s: int = 2  # the vrrp_script faults the node when the verdict is older than this
    check_faults: bool = False  # a failed check puts the node in FAULT (True) or lowers its priority by weight
    default_preempt: bool = True  # what `preempt` is when the inventory does not say
    fixed_weight: int | None = None  # a baseline's own weight, instead of one derived from the priorities
    fixed_priorities: tuple[int, ...] = ()  # a baseline's own priorities (first master, then the others)
    # Where derived priorities start (the first master; the others step down). A backup waits a skew of
    # (256 - priority) / 256 adverts on top of its 3 (RFC 5798): at 250 that is 2 ms at 0.1 s adverts, at
    # 100 it is 61 ms, on every takeover (a holder's FAULT, cable, power).
    top_priority: int = 100

    def skew_s(self, priority: int | None = None) -> float:
        """A backup's skew time (RFC 5798): (256 - priority) / 256 adverts; one whole advert when unknown."""
        return self.advert_int if priority is None else (256 - priority) * self.advert_int / 256

    def master_down_s(self, priority: int | None = None) -> float:
        """VRRP master-down interval (RFC 5798): 3 adverts plus the skew of the backup that takes over."""
        return 3 * self.advert_int + self.skew_s(priority)

    @property
    def check_detect_s(self) -> float:
        """Worst time for the checks to report a failed path: the prober's when there is one, else the script's.

        Prober: a probe may start just before the failure, so ``fall`` more probes, each taking at most its
        interval (a timed-out probe uses up its interval), plus one for scheduling. Script: wait for the
        next run, then ``fall`` runs, the last one timing out.
        """
        if self.probe:
            return (self.probe_interval_ms * (self.probe_fall + 1) + self.probe_timeout_ms) / 1000
        return self.check_interval * self.check_fall + self.check_timeout

    @property
    def prober_loss_s(self) -> float:
        """Worst time until a dead or hung prober faults its node (its verdict goes stale, the script runs)."""
        return self.probe_stale_s + self.probe_refresh_s + self.check_interval * self.check_fall + self.check_timeout

    @property
    def hap_markdown_s(self) -> float:
        """Time for haproxy's health checks to mark a dead (refusing) apiserver down.

        The first failed check comes at most ``inter`` after the death, the next ``fall - 1`` ones every
        ``fastinter``. (With ``observe layer4 ... on-error mark-down`` a failed client connection is
        faster still.)
        """
        return (self.hap_inter_ms + self.hap_fastinter_ms * (self.hap_fall - 1)) / 1000

    def takeover_s(self, priority: int | None = None) -> float:
        """Worst time from a failed check to a backup taking over.

        FAULT sends a priority-0 advert, so a backup takes over after its skew time (under one advert); a
        priority drop shows in the next advert, which a higher-priority backup preempts (one advert).
        """
        return self.skew_s(priority) if self.check_faults else self.advert_int

    def path_failover_s(self, priority: int | None = None) -> float:
        """Worst-case VIP move after the local haproxy or apiserver path fails (``priority``: the taker's)."""
        return self.check_detect_s + self.takeover_s(priority)

    def link_failover_s(self, priority: int | None = None) -> float:
        """Worst-case VIP move after the holder loses its link or power (``priority``: the taker's)."""
        return self.master_down_s(priority)


PROFILES: dict[str, Profile] = {
    "fast": Profile(
        name="fast", vrrp_version=3, advert_int=0.1, check_interval=1, check_timeout=1, check_fall=1,
        check_rise=2, curl_connect_timeout=0.2, curl_max_time=0.3, hap_inter_ms=500, hap_fastinter_ms=200,
        hap_downinter_ms=1000, hap_fall=2, hap_rise=2, hap_timeout_connect_ms=100, hap_timeout_check_ms=300,
        hap_fast_markdown=True, hap_redispatch=True, check_via_monitor=True,
        hap_shutdown_sessions=True, probe=True, check_faults=True, default_preempt=False, top_priority=250,
    ),
    "classic": Profile(
        name="classic", vrrp_version=2, advert_int=1, check_interval=3, check_timeout=2, check_fall=1,
        check_rise=1, curl_connect_timeout=1, curl_max_time=1.5, hap_inter_ms=1500, hap_fastinter_ms=1500,
        hap_downinter_ms=1500, hap_fall=3, hap_rise=1, hap_timeout_connect_ms=5000,
        hap_timeout_check_ms=5000, hap_fast_markdown=False, hap_redispatch=False, check_via_monitor=False,
    ),
}

#: Measured for comparison only; never accepted as an inventory's profile.
BASELINES: dict[str, Profile] = {
    # kubernetes/kubeadm docs/ha-considerations.md: advert_int 1, vrrp_script interval 3 weight -2 fall 10
    # rise 2 (curl --max-time 2 through haproxy), priorities 101 (MASTER) and 100 (BACKUPs); haproxy's own
    # check timers (inter 2s, fall 3, rise 2), timeout connect 5s, timeout check 10s, option redispatch.
    "kubeadm-guide": Profile(
        name="kubeadm-guide", vrrp_version=2, advert_int=1, check_interval=3, check_timeout=3, check_fall=10,
        check_rise=2, curl_connect_timeout=2, curl_max_time=2, hap_inter_ms=2000, hap_fastinter_ms=2000,
        hap_downinter_ms=2000, hap_fall=3, hap_rise=2, hap_timeout_connect_ms=5000, hap_timeout_check_ms=10000,
        hap_fast_markdown=False, hap_redispatch=True, check_via_monitor=False, fixed_weight=2,
        fixed_priorities=(101, 100),
    ),
}

# fast, with keepalived's own sub-second vrrp_script (2.3.2+) as the check instead of the prober: curl asks
# haproxy's /readyz every 0.1 s with the prober's timeouts; keepalived kills a run after 0.2 s.
BASELINES["fast-script"] = replace(
    PROFILES["fast"], name="fast-script", probe=False, check_interval=0.1, check_timeout=0.2, check_fall=1,
    check_rise=3, curl_connect_timeout=0.1, curl_max_time=0.1,
)
