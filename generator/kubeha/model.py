"""The validated cluster model: frozen dataclasses built from a RawInventory, every problem collected.

``build_cluster`` never raises on bad input: it returns ``(cluster_or_None, problems)``. Values the user
left out are derived here (MASTER/BACKUP and priorities from order, the VRRP router id from a hash of the
cluster name, the weight from the priority spread); per-node derived values live in context.py.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from kubeha.checker import Checker, as_ipv4
from kubeha.errors import Location, Problem
from kubeha.inventory import RawInventory, Value
from kubeha.nodes import HOSTNAME, Master, Worker, check_unique, interface_name, read_masters, read_workers
from kubeha.profiles import PROFILES, Profile
from kubeha.recipe import shipped_recipe

# The shipped bundle recipe (bundles/default.yaml) is the one place image refs are written.
DEFAULT_KEEPALIVED_IMAGE = shipped_recipe().image("keepalived").ref
DEFAULT_HAPROXY_IMAGE = shipped_recipe().image("haproxy").ref
VIP_MODES = ("vrrp", "external")

_IMAGE = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                    r"(@sha256:[0-9a-f]{64})?")
_K8S_VERSION = re.compile(r"v?[0-9]+\.[0-9]+(\.[0-9]+)?")
_HEALTH_PATH = re.compile(r"/[A-Za-z0-9/_.-]*")
_AUTH_PASS = re.compile(r"[A-Za-z0-9_.+=@%^*-]{1,8}")

__all__ = ["Cluster", "Master", "Worker", "build_cluster", "derived_vrid"]


@dataclass(frozen=True)
class Cluster:
    """A valid cluster: everything templates and documents need, with derived values filled in."""

    name: str
    source: str
    vip: ipaddress.IPv4Interface
    lb_port: int
    apiserver_port: int
    health_port: int
    virtual_router_id: int
    weight: int
    profile: Profile
    vrrp_mode: str
    health_path: str
    kubernetes_version: str
    keepalived_image: str
    haproxy_image: str
    image_pull_policy: str
    auth_pass: str | None
    masters: tuple[Master, ...]
    workers: tuple[Worker, ...] = field(default_factory=tuple)
    gateway: ipaddress.IPv4Address | None = None  # with it, nodes get a static NoCloud network-config
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    preempt: bool = True  # a recovered higher-priority node takes the VIP back (False: all BACKUP + nopreempt)
    preempt_delay: float = 0.0  # seconds a recovered node waits before taking the VIP back
    # "vrrp": keepalived floats `vip` between the masters; "external": `vip` is an existing load balancer's
    # address (clouds where a VRRP address cannot move), and masters run haproxy only.
    vip_mode: str = "vrrp"

    @property
    def endpoint(self) -> str:
        """The control-plane endpoint every kubelet and kube-proxy uses."""
        return f"{self.vip.ip}:{self.lb_port}"


def derived_vrid(name: str) -> int:
    """A stable virtual_router_id in 1..255 from the cluster name (two clusters on one L2 should differ)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % 255 + 1


#: Names a defaulted cluster name takes from a generic inventory file name (``-`` for stdin gives kubernetes).
GENERIC_NAMES = frozenset({"hosts", "inventory", "kubernetes", "cluster", "k8s", "all", "site", "production",
                           "staging"})


def build_cluster(raw: RawInventory, default_name: str,
                  top_priority: int | None = None) -> tuple[Cluster | None, list[Problem]]:
    """Validate ``raw`` and derive missing values. Returns the cluster only when there is no error.

    Derived priorities start at the profile's ``top_priority``, or at ``top_priority`` when given (the lab
    runs one inventory under several profiles).
    """
    chk = Checker(raw)
    if raw.unreadable:
        return None, sorted(chk.problems)
    where = raw.cluster_where
    c = raw.cluster
    top = raw.settings_at or Location(raw.path)

    name = chk.matching(c.get("name"), f"{where}.name", HOSTNAME, "a DNS label (a-z, 0-9, -)")
    if c.get("name") is None and default_name in GENERIC_NAMES:
        chk.warn(top, f"{where}.name", f"the cluster is named {default_name!r} after the inventory's file name, as "
                 "every inventory called that would be (the same VRRP router id on a shared segment, the same "
                 "output place): set cluster_name")
    name = name or default_name
    profile_name = chk.choice(c.get("profile"), f"{where}.profile", tuple(PROFILES)) or "fast"
    profile = PROFILES[profile_name]
    lb_port = chk.integer(c.get("lb_port"), f"{where}.lb_port", 1, 65535) or 6444
    api_port = chk.integer(c.get("apiserver_port"), f"{where}.apiserver_port", 1, 65535) or 6443
    health_port = chk.integer(c.get("health_port"), f"{where}.health_port", 1, 65535) or 6445
    vrid_val = c.get("virtual_router_id")
    vrid = chk.integer(vrid_val, f"{where}.virtual_router_id", 1, 255)
    vrrp_mode = chk.choice(c.get("vrrp_mode"), f"{where}.vrrp_mode", ("unicast", "multicast")) or "multicast"
    health_path = chk.matching(c.get("health_path"), f"{where}.health_path", _HEALTH_PATH,
                               "a URL path such as /readyz") or "/readyz"
    version = chk.matching(c.get("kubernetes_version"), f"{where}.kubernetes_version", _K8S_VERSION,
                           "a Kubernetes version such as 1.30.2") or "1.30.2"
    images = {
        key: chk.matching(c.get(key), f"{where}.{key}", _IMAGE,
                          "a fully qualified image reference (registry/name:tag)") or default
        for key, default in (("keepalived_image", DEFAULT_KEEPALIVED_IMAGE),
                             ("haproxy_image", DEFAULT_HAPROXY_IMAGE))
    }
    pull = chk.choice(c.get("image_pull_policy"), f"{where}.image_pull_policy", ("IfNotPresent", "Never"))
    auth_pass = chk.matching(c.get("auth_pass"), f"{where}.auth_pass", _AUTH_PASS,
                             "a VRRP PASS secret (1-8 characters: letters, digits, _.+=@%^*-)")
    if auth_pass is not None:
        chk.warn(c["auth_pass"].location, c["auth_pass"].where or f"{where}.auth_pass",
                 "a secret in the inventory is readable by anyone who can read the file; "
                 "leave it out and kubeha keeps a generated one beside the inventory (0600)")
    interface = interface_name(chk, c.get("interface"), f"{where}.interface")
    vip_mode = chk.choice(c.get("vip_mode"), f"{where}.vip_mode", VIP_MODES) or "vrrp"
    preempt, preempt_delay = _preempt(chk, c, where, profile)

    if lb_port == api_port:
        loc = c["lb_port"].location if "lb_port" in c else top
        chk.error(loc, f"{where}.lb_port",
                  f"haproxy shares the node with the apiserver: lb_port must differ from {api_port}")
    if health_port in (lb_port, api_port):
        loc = c["health_port"].location if "health_port" in c else top
        chk.error(loc, f"{where}.health_port", "must differ from lb_port and apiserver_port")

    masters = read_masters(chk, raw, interface, top_priority or profile.top_priority)
    workers = read_workers(chk, raw, interface)
    check_unique(chk, raw, masters, workers)
    vip = _vip(chk, c, where, masters, workers, top, external=vip_mode == "external")
    gateway, dns = _network(chk, c, where, vip, [*masters, *workers])
    weight = _weight(chk, c.get("weight"), f"{where}.weight", masters)
    if not raw.masters and not raw.masters_reported:
        chk.error(top, "masters", "no control-plane nodes")  # unless the loader said why already
    if len(masters) == 1:
        chk.warn(masters[0].location, "masters", "only one master: the VIP has nowhere to move")
    _defaults_that_bite(chk, raw, c, where, masters, top)

    problems = sorted(set(chk.problems))
    if any(p.is_error for p in problems) or vip is None or weight is None:
        return None, problems
    cluster = Cluster(
        name=name, source=raw.path, vip=vip, lb_port=lb_port, apiserver_port=api_port,
        health_port=health_port, virtual_router_id=vrid or derived_vrid(name), weight=weight,
        profile=profile, vrrp_mode=vrrp_mode, health_path=health_path, kubernetes_version=version,
        keepalived_image=images["keepalived_image"], haproxy_image=images["haproxy_image"],
        image_pull_policy=pull or "IfNotPresent", auth_pass=auth_pass,
        masters=tuple(masters), workers=tuple(workers), gateway=gateway, dns=dns, vip_mode=vip_mode,
        preempt=preempt, preempt_delay=preempt_delay,
    )
    return cluster, problems


def _preempt(chk: Checker, c: dict[str, Value], where: str, profile: Profile) -> tuple[bool, float]:
    """``preempt`` (true/false, default the profile's) and ``preempt_delay`` (0-1000 s, default 0)."""
    val = c.get("preempt")
    preempt = chk.typed(val, f"{where}.preempt", _bool, "true or false")
    if preempt is None:
        preempt = profile.default_preempt
    if val is not None and preempt is False and not profile.check_faults:
        chk.error(val.location, f"{where}.preempt", (
            f"preempt: false needs a profile whose failed check faults the node (fast): under {profile.name} a "
            "failed check only lowers the holder's priority, and a nopreempt backup never takes over from it"))
    delay_val = c.get("preempt_delay")
    delay = chk.typed(delay_val, f"{where}.preempt_delay", _seconds, "a number of seconds from 0 to 1000")
    if delay_val is not None and delay is not None and not preempt:
        chk.warn(delay_val.location, f"{where}.preempt_delay", "ignored: preempt is false")
    return bool(preempt), float(delay or 0.0) if preempt else 0.0


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
        return value.strip().lower() in ("true", "yes")
    raise ValueError


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    seconds = float(value)
    if not 0 <= seconds <= 1000:
        raise ValueError
    return seconds


def _defaults_that_bite(chk: Checker, raw: RawInventory, c: dict[str, Value], where: str, masters: list[Master],
                        top: Location) -> None:
    """Warnings for values that work by default but often are not what the user meant (issue 11)."""
    if "interface" not in c and any("interface" not in h.vars for h in raw.masters):
        chk.warn(top, f"{where}.interface", "not set: assuming eth0, but cloud and hypervisor images often name "
                 "the NIC ens3, ens18 or ens192; set interface (for the cluster or per host)")
    if len(masters) == 2:
        chk.warn(masters[0].location, "masters", "two masters: etcd needs a majority, so losing either one stops "
                 "the control plane; use three")
    elif len(masters) > 2 and len(masters) % 2 == 0:
        chk.warn(masters[0].location, "masters", f"{len(masters)} masters: an even number tolerates no more "
                 f"failures than {len(masters) - 1} (etcd quorum); use an odd number")
    if "kubernetes_version" in c:
        val = c["kubernetes_version"]
        chk.warn(val.location, val.where or f"{where}.kubernetes_version", "accepted but unused: kubeha "
                 "does not install Kubernetes (pick the version in your kubeadm or distribution tooling)")


def _vip(chk: Checker, c: dict[str, Value], where: str, masters: list[Master], workers: list[Worker],
         top: Location, *, external: bool = False) -> ipaddress.IPv4Interface | None:
    val = c.get("vip")
    if val is None:
        chk.error(top, f"{where}.vip", "missing: the virtual IP the masters share")
        return None
    vip = chk.typed(val, f"{where}.vip", as_ipv4, "an IPv4 address")
    prefix = chk.integer(c.get("vip_prefix"), f"{where}.vip_prefix", 8, 32)
    if vip is None:
        return None
    if "/" not in str(val.value):
        vip = ipaddress.IPv4Interface(f"{vip.ip}/{prefix or 24}")
    elif prefix is not None and prefix != vip.network.prefixlen:
        chk.error(val.location, f"{where}.vip", f"prefix /{vip.network.prefixlen} disagrees with vip_prefix")
    assert isinstance(vip, ipaddress.IPv4Interface)
    if vip.ip in (vip.network.network_address, vip.network.broadcast_address) and vip.network.prefixlen < 31:
        chk.error(val.location, f"{where}.vip", f"{vip.ip} is the network or broadcast address of {vip.network}")
    nodes: list[Master | Worker] = [*masters, *workers]
    for node in nodes:
        if node.address == vip.ip:
            chk.error(val.location, f"{where}.vip", f"{vip.ip} is the address of node {node.name}")
    outside = [] if external else [m for m in masters if m.address not in vip.network]  # an external LB: any
    if outside:
        listed = ", ".join(f"{m.name} ({m.address}, line {m.location.line})" if m.location.line else
                           f"{m.name} ({m.address})" for m in outside)
        chk.error(val.location, f"{where}.vip", f"{vip} must be in the masters' subnet, but "
                  f"{'these masters are' if len(outside) > 1 else 'this master is'} outside {vip.network}: "
                  f"{listed} (set vip_prefix if the subnet is wider)")
    return vip


def _network(chk: Checker, c: dict[str, Value], where: str, vip: ipaddress.IPv4Interface | None,
             nodes: list[Master | Worker]) -> tuple[ipaddress.IPv4Address | None, tuple[ipaddress.IPv4Address, ...]]:
    """The default gateway (inside the nodes' subnet, not a node or the VIP) and DNS servers, if given."""
    val = c.get("gateway")
    gw = chk.typed(val, f"{where}.gateway", as_ipv4, "an IPv4 address")
    dns_val = c.get("dns")
    dns: list[ipaddress.IPv4Address] = []
    if dns_val is not None:
        for part in str(dns_val.value).split(","):
            one = chk.typed(Value(part.strip(), dns_val.location), f"{where}.dns", as_ipv4, "an IPv4 address")
            if one is not None:
                dns.append(one.ip)
        if val is None:
            chk.error(dns_val.location, f"{where}.dns", "needs gateway (kubeha writes a network-config only with one)")
    if gw is None or vip is None or val is None:
        return None, tuple(dns)
    if gw.ip not in vip.network:
        chk.error(val.location, f"{where}.gateway", f"{gw.ip} is outside the nodes' subnet {vip.network}")
    if gw.ip == vip.ip or any(n.address == gw.ip for n in nodes):
        chk.error(val.location, f"{where}.gateway", f"{gw.ip} is the VIP or a node's address")
    return gw.ip, tuple(dns)


def _weight(chk: Checker, val: Value | None, path: str, masters: list[Master]) -> int | None:
    """The check's weight must exceed the priority spread so a failing node drops below every healthy one."""
    spread = (max(m.priority for m in masters) - min(m.priority for m in masters)) if masters else 0
    if val is None:
        return max(25, spread + 5)
    weight = chk.integer(val, path, -253, 253)
    if weight is None:
        return None
    if abs(weight) <= spread:
        chk.error(val.location, path, f"|{weight}| must exceed the priority spread {spread}, or a failing "
                  "MASTER can stay above a healthy BACKUP")
        return None
    return abs(weight)
