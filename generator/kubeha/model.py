"""The validated cluster model: frozen dataclasses built from a RawInventory, every problem collected.

``build_cluster`` never raises on bad input: it returns ``(cluster_or_None, problems)``. Values the user
left out are derived here (MASTER/BACKUP and priorities from order, the VRRP router id from a hash of the
cluster name, the weight from the priority spread); per-node derived values live in context.py.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeha.errors import Location, Problem
from kubeha.inventory import RawHost, RawInventory, Value
from kubeha.profiles import PROFILES, Profile

DEFAULT_KEEPALIVED_IMAGE = "kubeha.local/keepalived:2.2.7"
DEFAULT_HAPROXY_IMAGE = "kubeha.local/haproxy:2.6.12"

_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_IFNAME = re.compile(r"^[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,14}$")
_IMAGE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                    r"(@sha256:[0-9a-f]{64})?$")
_K8S_VERSION = re.compile(r"^v?[0-9]+\.[0-9]+(\.[0-9]+)?$")
_HEALTH_PATH = re.compile(r"^/[A-Za-z0-9/_.-]*$")
_AUTH_PASS = re.compile(r"^[A-Za-z0-9_.+=@%^*-]{1,8}$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")


@dataclass(frozen=True)
class Master:
    """A control-plane node running keepalived + haproxy next to its apiserver."""

    name: str
    address: ipaddress.IPv4Address
    state: str  # MASTER or BACKUP
    priority: int
    interface: str
    location: Location
    mac: str | None = None


@dataclass(frozen=True)
class Worker:
    """A node that reaches the control plane through VIP:lb_port."""

    name: str
    address: ipaddress.IPv4Address
    location: Location
    mac: str | None = None
    interface: str = "eth0"


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

    @property
    def endpoint(self) -> str:
        """The control-plane endpoint every kubelet and kube-proxy uses."""
        return f"{self.vip.ip}:{self.lb_port}"


class _Checker:
    """Collects problems while reading typed values out of a RawInventory."""

    def __init__(self, raw: RawInventory) -> None:
        self.raw = raw
        self.problems: list[Problem] = list(raw.problems)

    def error(self, loc: Location, path: str, message: str) -> None:
        self.problems.append(Problem(loc, path, message))

    def warn(self, loc: Location, path: str, message: str) -> None:
        self.problems.append(Problem(loc, path, message, "warning"))

    def typed(self, val: Value | None, path: str, conv: Callable[[Any], Any], what: str) -> Any:
        if val is None:
            return None
        try:
            return conv(val.value)
        except (ValueError, TypeError):
            self.error(val.location, path, f"{_show(val.value)} is not {what}")
            return None

    def integer(self, val: Value | None, path: str, lo: int, hi: int) -> int | None:
        num = self.typed(val, path, _int, "an integer")
        if num is not None and not lo <= num <= hi:
            assert val is not None
            self.error(val.location, path, f"{num} is out of range {lo}-{hi}")
            return None
        return num  # type: ignore[no-any-return]

    def matching(self, val: Value | None, path: str, pattern: re.Pattern[str], what: str) -> str | None:
        if val is None:
            return None
        text = val.value if isinstance(val.value, str) else None
        if text is None or not pattern.match(text):
            self.error(val.location, path, f"{_show(val.value)} is not {what}")
            return None
        return text

    def choice(self, val: Value | None, path: str, choices: tuple[str, ...]) -> str | None:
        if val is None:
            return None
        if val.value not in choices:
            self.error(val.location, path, f"{_show(val.value)} is not one of {', '.join(choices)}")
            return None
        return str(val.value)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value)
    raise ValueError


def _ipv4(value: Any) -> ipaddress.IPv4Interface:
    if not isinstance(value, str):
        raise TypeError
    iface = ipaddress.ip_interface(value.strip())
    if not isinstance(iface, ipaddress.IPv4Interface) or value.strip() != value:
        raise ValueError
    return iface


def _show(value: Any) -> str:
    """Quote a user value for a message, short and on one line (newlines and control chars escaped)."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def derived_vrid(name: str) -> int:
    """A stable virtual_router_id in 1..255 from the cluster name (two clusters on one L2 should differ)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % 255 + 1


def build_cluster(raw: RawInventory, default_name: str) -> tuple[Cluster | None, list[Problem]]:
    """Validate ``raw`` and derive missing values. Returns the cluster only when there is no error."""
    chk = _Checker(raw)
    if raw.unreadable:
        return None, sorted(chk.problems)
    where = "cluster" if raw.format == "yaml" else "[all:vars]"
    c = raw.cluster
    top = Location(raw.path, 1)

    name = chk.matching(c.get("name"), f"{where}.name", _HOSTNAME, "a DNS label (a-z, 0-9, -)")
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
        chk.warn(c["auth_pass"].location, f"{where}.auth_pass",
                 "a secret in the inventory is readable by anyone who can read the file; "
                 "leave it out and kubeha keeps a generated one beside the inventory (0600)")
    interface = _interface(chk, c.get("interface"), f"{where}.interface")
    preempt, preempt_delay = _preempt(chk, c, where, profile)

    if lb_port == api_port:
        loc = c["lb_port"].location if "lb_port" in c else top
        chk.error(loc, f"{where}.lb_port",
                  f"haproxy shares the node with the apiserver: lb_port must differ from {api_port}")
    if health_port in (lb_port, api_port):
        loc = c["health_port"].location if "health_port" in c else top
        chk.error(loc, f"{where}.health_port", "must differ from lb_port and apiserver_port")

    masters = _masters(chk, raw, interface)
    workers = _workers(chk, raw, interface)
    _unique_hosts(chk, raw, masters, workers)
    vip = _vip(chk, c, where, masters, workers, top)
    gateway, dns = _network(chk, c, where, vip, [*masters, *workers])
    weight = _weight(chk, c.get("weight"), f"{where}.weight", masters)
    if not raw.masters and not any(p.path == "masters" or "k8s-master" in p.message for p in chk.problems):
        chk.error(top, "masters", "no control-plane nodes")  # unless the loader said so already
    if len(masters) == 1:
        chk.warn(masters[0].location, "masters", "only one master: the VIP has nowhere to move")

    problems = sorted(set(chk.problems))
    if any(p.is_error for p in problems) or vip is None or weight is None:
        return None, problems
    cluster = Cluster(
        name=name, source=raw.path, vip=vip, lb_port=lb_port, apiserver_port=api_port,
        health_port=health_port, virtual_router_id=vrid or derived_vrid(name), weight=weight,
        profile=profile, vrrp_mode=vrrp_mode, health_path=health_path, kubernetes_version=version,
        keepalived_image=images["keepalived_image"], haproxy_image=images["haproxy_image"],
        image_pull_policy=pull or "IfNotPresent", auth_pass=auth_pass,
        masters=tuple(masters), workers=tuple(workers), gateway=gateway, dns=dns,
        preempt=preempt, preempt_delay=preempt_delay,
    )
    return cluster, problems


def _preempt(chk: _Checker, c: dict[str, Value], where: str, profile: Profile) -> tuple[bool, float]:
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


def _interface(chk: _Checker, val: Value | None, path: str) -> str:
    """The VRRP interface. The seed's ``ip_interface=eth.*`` is a pattern for Ansible fact lookup."""
    if val is None:
        return "eth0"
    text = str(val.value)
    if _IFNAME.match(text) and text not in (".", ".."):
        return text
    if re.fullmatch(r"[A-Za-z0-9_-]+\.\*", text):
        name = text[:-2] + "0"
        chk.warn(val.location, path, f"{_show(text)} is a pattern; using {name!r} (set interface=NAME "
                 "per host or a plain name here to choose)")
        return name
    chk.error(val.location, path, f"{_show(val.value)} is not a network interface name "
              "(1-15 characters: letters, digits, _ - . @)")
    return "eth0"


def _host_name(chk: _Checker, host: RawHost, path: str, address: str | None) -> str | None:
    val = host.vars.get("name")
    if val is None:
        if address is None:
            return None
        return "node-" + address.replace(".", "-")
    return chk.matching(val, f"{path}.name", _HOSTNAME, "a valid node name (lowercase DNS label)")


def _mac(chk: _Checker, host: RawHost, path: str) -> str | None:
    mac = chk.matching(host.vars.get("mac"), f"{path}.mac", _MAC, "a MAC address such as 52:54:00:12:34:56")
    return mac.lower().replace("-", ":") if mac else None


def _host_common(chk: _Checker, host: RawHost, path: str) -> tuple[str | None, ipaddress.IPv4Interface | None]:
    aval = host.vars.get("address")
    if aval is None:
        chk.error(host.location, path, "missing address")
        return None, None
    addr = chk.typed(aval, f"{path}.address", _ipv4, "an IPv4 address")
    return _host_name(chk, host, path, str(addr.ip) if addr else None), addr


def _ordered(chk: _Checker, hosts: list[RawHost], path: str) -> list[RawHost]:
    def key(h: RawHost) -> tuple[int, int]:
        order = chk.integer(h.vars.get("order"), f"{path}[{h.index}].order", 0, 10000)
        return (order if order is not None else 10001 + h.index, h.index)
    return sorted(hosts, key=key)


def _masters(chk: _Checker, raw: RawInventory, default_iface: str) -> list[Master]:
    prefix = "masters" if raw.format == "yaml" else "[k8s-master]"
    hosts = _ordered(chk, raw.masters, prefix)
    priorities = _priorities(chk, hosts, prefix)
    states = _states(chk, hosts, prefix, priorities)
    out = []
    for host in hosts:
        path = f"{prefix}[{host.index}]"
        name, addr = _host_common(chk, host, path)
        iface_val = host.vars.get("interface")
        iface = _interface(chk, iface_val, f"{path}.interface") if iface_val else default_iface
        for ignored in ("role", "lbname"):
            if ignored in host.vars and raw.format == "yaml":
                chk.warn(host.vars[ignored].location, f"{path}.{ignored}", "ignored (seed variable)")
        prio = priorities.get(host.index)
        if name and addr and prio is not None:
            out.append(Master(name, addr.ip, states[host.index], prio, iface, host.location, _mac(chk, host, path)))
    return out


def _priorities(chk: _Checker, hosts: list[RawHost], prefix: str) -> dict[int, int]:
    """Given priorities are kept; missing ones step down by 10 below the previous node (100 at the top)."""
    given = {h.index: chk.integer(h.vars.get("priority"), f"{prefix}[{h.index}].priority", 1, 254)
             for h in hosts}
    out: dict[int, int] = {}
    last: int | None = None
    step = max(1, 20 // max(1, len(hosts) - 1)) if not any(v is not None for v in given.values()) else 10
    for host in hosts:
        prio = given[host.index]
        if prio is None:
            prio = 100 if last is None else last - step
            if prio < 1:
                chk.error(host.location, f"{prefix}[{host.index}].priority",
                          "cannot derive a priority: set priorities explicitly")
                continue
        out[host.index] = prio
        last = prio
    seen: dict[int, RawHost] = {}
    for host in hosts:
        prio = out.get(host.index)
        if prio is None:
            continue
        if prio in seen:
            loc = host.vars["priority"].location if "priority" in host.vars else host.location
            chk.error(loc, f"{prefix}[{host.index}].priority",
                      f"priority {prio} ties with another master; priorities must be unique")
        seen[prio] = host
    return out


def _states(chk: _Checker, hosts: list[RawHost], prefix: str, prio: dict[int, int]) -> dict[int, str]:
    """Exactly one MASTER: the one marked so, else the highest priority."""
    states = {h.index: chk.choice(h.vars.get("state"), f"{prefix}[{h.index}].lb", ("MASTER", "BACKUP"))
              for h in hosts}
    marked = [h for h in hosts if states[h.index] == "MASTER"]
    for extra in marked[1:]:
        chk.error(extra.vars["state"].location, f"{prefix}[{extra.index}].lb",
                  "more than one MASTER; mark one and leave the others BACKUP")
    if not prio:
        return {h.index: "BACKUP" for h in hosts}
    top = max(prio, key=lambda i: prio[i])
    if marked and marked[0].index in prio and prio[marked[0].index] != prio[top]:
        chk.warn(marked[0].vars["state"].location, f"{prefix}[{marked[0].index}].lb",
                 "the MASTER does not have the highest priority: the highest-priority node takes the VIP")
    master = marked[0].index if marked else top
    return {h.index: "MASTER" if h.index == master else "BACKUP" for h in hosts}


def _workers(chk: _Checker, raw: RawInventory, default_iface: str) -> list[Worker]:
    prefix = "workers" if raw.format == "yaml" else "[k8s-node]"
    out = []
    for host in _ordered(chk, raw.workers, prefix):
        path = f"{prefix}[{host.index}]"
        name, addr = _host_common(chk, host, path)
        for key in ("state", "priority"):
            if key in host.vars:
                chk.warn(host.vars[key].location, f"{path}.{key}", "ignored on a worker")
        iface_val = host.vars.get("interface")
        iface = _interface(chk, iface_val, f"{path}.interface") if iface_val else default_iface
        if name and addr:
            out.append(Worker(name, addr.ip, host.location, _mac(chk, host, path), iface))
    return out


def _unique_hosts(chk: _Checker, raw: RawInventory, masters: list[Master], workers: list[Worker]) -> None:
    names: dict[str, Location] = {}
    addrs: dict[ipaddress.IPv4Address, Location] = {}
    nodes: list[Master | Worker] = [*masters, *workers]
    for node in nodes:
        if node.name in names:
            chk.error(node.location, node.name, f"duplicate node name (first at line {names[node.name].line})")
        if node.address in addrs:
            chk.error(node.location, node.name,
                      f"duplicate address {node.address} (first at line {addrs[node.address].line})")
        names.setdefault(node.name, node.location)
        addrs.setdefault(node.address, node.location)


def _vip(chk: _Checker, c: dict[str, Value], where: str, masters: list[Master], workers: list[Worker],
         top: Location) -> ipaddress.IPv4Interface | None:
    val = c.get("vip")
    if val is None:
        chk.error(top, f"{where}.vip", "missing: the virtual IP the masters share")
        return None
    vip = chk.typed(val, f"{where}.vip", _ipv4, "an IPv4 address")
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
    for m in masters:
        if m.address not in vip.network:
            chk.error(m.location, f"{m.name}.address",
                      f"{m.address} is outside the VIP's subnet {vip.network} (set vip_prefix if wider)")
    return vip


def _network(chk: _Checker, c: dict[str, Value], where: str, vip: ipaddress.IPv4Interface | None,
             nodes: list[Master | Worker]) -> tuple[ipaddress.IPv4Address | None, tuple[ipaddress.IPv4Address, ...]]:
    """The default gateway (inside the nodes' subnet, not a node or the VIP) and DNS servers, if given."""
    val = c.get("gateway")
    gw = chk.typed(val, f"{where}.gateway", _ipv4, "an IPv4 address")
    dns_val = c.get("dns")
    dns: list[ipaddress.IPv4Address] = []
    if dns_val is not None:
        for part in str(dns_val.value).split(","):
            one = chk.typed(Value(part.strip(), dns_val.location), f"{where}.dns", _ipv4, "an IPv4 address")
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


def _weight(chk: _Checker, val: Value | None, path: str, masters: list[Master]) -> int | None:
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
