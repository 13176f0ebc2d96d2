"""Every derived per-node value, so that templates only print and loop ("dumb templates, smart context").

Also the failover budget the settings imply and the warnings about settings known to flap (LAB.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeha.errors import Location, Problem
from kubeha.model import Cluster, Master
from kubeha.profiles import PROFILES

KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
CHECK_SCRIPT = "/etc/keepalived/check_apiserver.sh"
PROBER_SCRIPT = "/etc/keepalived/probe_haproxy.sh"
PROBER_DIR = "/run/kubeha"  # hostPath shared by the prober and keepalived (tmpfs: gone after a reboot)
PROBER_VERDICT = f"{PROBER_DIR}/haproxy-verdict"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
MANIFESTS_DIR = "/etc/kubernetes/manifests"
STAGED_MANIFESTS_DIR = "/etc/kubeha/manifests"


@dataclass(frozen=True)
class Backend:
    """One haproxy server line: an apiserver."""

    name: str
    address: str
    port: int


def _fmt_seconds(value: float) -> str:
    """Keepalived wants plain decimals: 0.1, 1, 2.5."""
    return f"{value:g}"


def master_context(cluster: Cluster, master: Master, secret: str | None) -> dict[str, Any]:
    """Everything keepalived.conf, check_apiserver.sh and haproxy.cfg print for ``master``."""
    p = cluster.profile
    peers = [str(m.address) for m in cluster.masters if m.name != master.name]
    auth = (cluster.auth_pass or secret) if p.vrrp_version == 2 else None
    # nopreempt and preempt_delay only work when every node starts as BACKUP (keepalived.conf(5)).
    all_backup = not cluster.preempt or cluster.preempt_delay > 0
    return {
        "node": master.name,
        "cluster": cluster.name,
        "state": "BACKUP" if all_backup else master.state,
        "priority": master.priority,
        "preempt": cluster.preempt,
        "preempt_delay": _fmt_seconds(cluster.preempt_delay),
        "interface": master.interface,
        "address": str(master.address),
        "virtual_router_id": cluster.virtual_router_id,
        "vrrp_version": p.vrrp_version,
        "advert_int": _fmt_seconds(p.advert_int),
        "unicast": cluster.vrrp_mode == "unicast",
        "unicast_peers": peers,
        "auth_pass": auth,
        "vip": str(cluster.vip),
        "check_script": CHECK_SCRIPT,
        "check_interval": p.check_interval,
        "check_timeout": p.check_timeout,
        "check_fall": p.check_fall,
        "check_rise": p.check_rise,
        "weight": cluster.weight,
        "lb_port": cluster.lb_port,
        "health_port": cluster.health_port,
        # external load balancers probe the monitor over the network; keepalived's check asks it locally
        "health_bind": "*" if cluster.vip_mode == "external" else "127.0.0.1",
        "health_path": cluster.health_path,
        "curl_connect_timeout": _fmt_seconds(p.curl_connect_timeout),
        "curl_max_time": _fmt_seconds(p.curl_max_time),
        "check_via_monitor": p.check_via_monitor,
        "check_faults": p.check_faults,
        "probe": p.probe,
        "prober_script": PROBER_SCRIPT,
        "prober_dir": PROBER_DIR,
        "verdict_file": PROBER_VERDICT,
        "probe_interval": _fmt_seconds(p.probe_interval_ms / 1000),
        "probe_timeout": _fmt_seconds(p.probe_timeout_ms / 1000),
        "probe_rate": f"{1000 // p.probe_interval_ms}/s",
        "probe_silence": _fmt_seconds((p.probe_interval_ms + p.probe_timeout_ms) * 3 / 1000),
        "probe_fall": p.probe_fall,
        "probe_rise": p.probe_rise,
        "probe_refresh_us": p.probe_refresh_s * 1_000_000,
        "probe_stale_s": p.probe_stale_s,
        "backends": [Backend(m.name, str(m.address), cluster.apiserver_port) for m in cluster.masters],
        "hap": {
            "inter": f"{p.hap_inter_ms}ms",
            "fastinter": f"{p.hap_fastinter_ms}ms",
            "downinter": f"{p.hap_downinter_ms}ms",
            "fall": p.hap_fall,
            "rise": p.hap_rise,
            "timeout_connect": f"{p.hap_timeout_connect_ms}ms",
            "timeout_check": f"{p.hap_timeout_check_ms}ms",
            "fast_markdown": p.hap_fast_markdown,
            "redispatch": p.hap_redispatch,
            "shutdown_sessions": p.hap_shutdown_sessions,
        },
    }


def needs_secret(cluster: Cluster) -> bool:
    """VRRPv2 carries a PASS secret; VRRPv3 has no authentication (keepalived ignores it with a warning)."""
    return cluster.vip_mode == "vrrp" and cluster.profile.vrrp_version == 2 and cluster.auth_pass is None


def plan(cluster: Cluster) -> dict[str, Any]:
    """The derived plan `kubeha check` prints: roles, priorities, VRID, endpoint and failover budget."""
    p = cluster.profile
    taker = worst_taker_priority(cluster)
    return {
        "cluster": cluster.name,
        "endpoint": cluster.endpoint,
        "vip": str(cluster.vip),
        "virtual_router_id": cluster.virtual_router_id,
        "profile": p.name,
        "vrrp": {"version": p.vrrp_version, "mode": cluster.vrrp_mode, "advert_s": p.advert_int},
        "weight": 0 if p.check_faults else -cluster.weight,  # a faulting check is weight 0 in keepalived.conf
        "masters": [
            {"name": m.name, "address": str(m.address), "state": m.state, "priority": m.priority,
             "interface": m.interface}
            for m in cluster.masters
        ],
        "workers": [{"name": w.name, "address": str(w.address)} for w in cluster.workers],
        "failover_worst_case_s": {
            "haproxy_or_apiserver_path": round(p.path_failover_s(taker), 2),
            "link_or_power_loss": round(p.link_failover_s(taker), 2),
            "haproxy_marks_dead_apiserver_down": round(p.hap_markdown_s, 2),
            **({"prober_lost": round(p.prober_loss_s, 2)} if p.probe else {}),
        },
        "check": (f"prober every {p.probe_interval_ms} ms (timeout {p.probe_timeout_ms} ms), fall {p.probe_fall}: "
                  "a failed probe faults the node" if p.probe else
                  f"script every {p.check_interval} s, fall {p.check_fall}: "
                  + ("faults the node" if p.check_faults else f"lowers the priority by {cluster.weight}")),
        "failback": _failback(cluster),
    }


def worst_taker_priority(cluster: Cluster) -> int | None:
    """The lowest priority a backup that takes over from a failed holder can have: the second highest.

    Whichever node holds the VIP, the highest-priority one left takes over; that is at least the second
    highest priority of all. None with fewer than two masters.
    """
    prios = sorted((m.priority for m in cluster.masters), reverse=True)
    return prios[1] if len(prios) > 1 else None


def _failback(cluster: Cluster) -> str:
    """What happens when a node that lost the VIP recovers."""
    if not cluster.preempt:
        return "none: the VIP stays where it is (all BACKUP, nopreempt)"
    if cluster.preempt_delay > 0:
        return f"the highest-priority healthy node takes the VIP back {cluster.preempt_delay:g} s after it recovers"
    return "at once: the highest-priority healthy node takes the VIP back (a second, short interruption)"


def timing_warnings(cluster: Cluster) -> list[Problem]:
    """Settings that measured badly in LAB.md: slow haproxy checks let a healthy backup fail its check."""
    p = cluster.profile
    loc = Location(cluster.source, 0)
    out = []
    if not p.check_via_monitor and p.hap_markdown_s >= p.check_interval * p.check_fall:
        out.append(Problem(loc, "profile", (
            f"haproxy needs up to {p.hap_markdown_s:g} s to mark a dead apiserver down, while keepalived's check "
            f"fails after {p.check_interval * p.check_fall:g} s: a healthy BACKUP whose check lands on the dead "
            "backend drops its priority too and the VIP can flap (use profile fast)"), "warning"))
    if cluster.vrrp_mode == "unicast":
        out.append(Problem(loc, "vrrp_mode", (
            "unicast VRRP: when a pulled cable is plugged back in, the returning node's adverts wait for ARP "
            "and two nodes held the VIP for up to 0.6 s in the failover lab; multicast (the default) did not"),
            "warning"))
    if p.path_failover_s() > 5:
        out.append(Problem(loc, "profile", (
            f"the VIP can take {p.path_failover_s():g} s to leave a node whose haproxy or apiserver failed "
            f"(profile fast: about {PROFILES['fast'].path_failover_s():g} s worst case)"), "warning"))
    return out
