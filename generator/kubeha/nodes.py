"""Masters and workers: each host's name, address, interface, MAC, and the masters' priorities and states.

Missing priorities step down from 100 in order; exactly one MASTER (the marked one, else the highest
priority). Names and addresses must be unique across the cluster.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from kubeha.checker import Checker, as_ipv4, show
from kubeha.errors import Location
from kubeha.inventory import RawHost, RawInventory, Value

HOSTNAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_IFNAME = re.compile(r"[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,14}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}")


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


def interface_name(chk: Checker, val: Value | None, path: str) -> str:
    """The VRRP interface. The seed's ``ip_interface=eth.*`` is a pattern for Ansible fact lookup."""
    if val is None:
        return "eth0"
    if not chk.clean(val, path):
        return "eth0"
    path = val.where or path
    text = str(val.value)
    if _IFNAME.fullmatch(text) and text not in (".", ".."):
        return text
    if re.fullmatch(r"[A-Za-z0-9_-]+\.\*", text):
        name = text[:-2] + "0"
        chk.warn(val.location, path, f"{show(text)} is a pattern; using {name!r} (set interface=NAME "
                 "per host or a plain name here to choose)")
        return name
    chk.error(val.location, path, f"{show(val.value)} is not a network interface name "
              "(1-15 characters: letters, digits, _ - . @)")
    return "eth0"


def _hp(host: RawHost, prefix: str) -> str:
    """How messages name a host: the reader's path for it (its inventory name), else prefix[index]."""
    return host.path or f"{prefix}[{host.index}]"


def _host_name(chk: Checker, host: RawHost, path: str, address: str | None) -> str | None:
    val = host.vars.get("name")
    if val is None:
        if address is None:
            return None
        return "node-" + address.replace(".", "-")
    return chk.matching(val, f"{path}.name", HOSTNAME, "a valid node name (lowercase DNS label)")


def _mac(chk: Checker, host: RawHost, path: str) -> str | None:
    mac = chk.matching(host.vars.get("mac"), f"{path}.mac", _MAC, "a MAC address such as 52:54:00:12:34:56")
    return mac.lower().replace("-", ":") if mac else None


def _host_common(chk: Checker, host: RawHost, path: str) -> tuple[str | None, ipaddress.IPv4Interface | None]:
    aval = host.vars.get("address")
    if aval is None:
        chk.error(host.location, path, host.no_address)
        return None, None
    addr = chk.typed(aval, f"{path}.address", as_ipv4, "an IPv4 address")
    return _host_name(chk, host, path, str(addr.ip) if addr else None), addr


def _ordered(chk: Checker, hosts: list[RawHost], path: str) -> list[RawHost]:
    def key(h: RawHost) -> tuple[int, int]:
        order = chk.integer(h.vars.get("order"), f"{_hp(h, path)}.order", 0, 10000)
        return (order if order is not None else 10001 + h.index, h.index)
    return sorted(hosts, key=key)


def read_masters(chk: Checker, raw: RawInventory, default_iface: str, top_priority: int = 100) -> list[Master]:
    """The valid masters, in order, with priorities (derived ones from ``top_priority`` down) and states."""
    prefix = "masters" if raw.format == "yaml" else f"[{raw.masters[0].group}]" if raw.masters else "masters"
    hosts = _ordered(chk, raw.masters, prefix)
    priorities = _priorities(chk, hosts, prefix, top_priority)
    states = _states(chk, hosts, prefix, priorities)
    out = []
    for host in hosts:
        path = f"{_hp(host, prefix)}"
        name, addr = _host_common(chk, host, path)
        iface_val = host.vars.get("interface")
        iface = interface_name(chk, iface_val, f"{path}.interface") if iface_val else default_iface
        for ignored in ("role", "lbname"):
            if ignored in host.vars and raw.format == "yaml":
                chk.warn(host.vars[ignored].location, f"{path}.{ignored}", "ignored (seed variable)")
        prio = priorities.get(host.index)
        if name and addr and prio is not None:
            out.append(Master(name, addr.ip, states[host.index], prio, iface, host.location, _mac(chk, host, path)))
    return out


def _priorities(chk: Checker, hosts: list[RawHost], prefix: str, top: int = 100) -> dict[int, int]:
    """Given priorities are kept; missing ones step down by 10 below the previous node (``top`` first)."""
    given = {h.index: chk.integer(h.vars.get("priority"), f"{_hp(h, prefix)}.priority", 1, 254)
             for h in hosts}
    out: dict[int, int] = {}
    last: int | None = None
    step = max(1, 20 // max(1, len(hosts) - 1)) if not any(v is not None for v in given.values()) else 10
    for host in hosts:
        prio = given[host.index]
        if prio is None:
            prio = top if last is None else last - step
            if prio < 1:
                chk.error(host.location, f"{_hp(host, prefix)}.priority",
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
            chk.error(loc, f"{_hp(host, prefix)}.priority",
                      f"priority {prio} ties with another master; priorities must be unique")
        seen[prio] = host
    return out


def _states(chk: Checker, hosts: list[RawHost], prefix: str, prio: dict[int, int]) -> dict[int, str]:
    """Exactly one MASTER: the one marked so, else the highest priority."""
    states = {h.index: chk.choice(h.vars.get("state"), f"{_hp(h, prefix)}.lb", ("MASTER", "BACKUP"))
              for h in hosts}
    marked = [h for h in hosts if states[h.index] == "MASTER"]
    for extra in marked[1:]:
        chk.error(extra.vars["state"].location, f"{_hp(extra, prefix)}.lb",
                  "more than one MASTER; mark one and leave the others BACKUP")
    if not prio:
        return {h.index: "BACKUP" for h in hosts}
    top = max(prio, key=lambda i: prio[i])
    if marked and marked[0].index in prio and prio[marked[0].index] != prio[top]:
        chk.warn(marked[0].vars["state"].location, f"{_hp(marked[0], prefix)}.lb",
                 "the MASTER does not have the highest priority: the highest-priority node takes the VIP")
    master = marked[0].index if marked else top
    return {h.index: "MASTER" if h.index == master else "BACKUP" for h in hosts}


def read_workers(chk: Checker, raw: RawInventory, default_iface: str) -> list[Worker]:
    """The valid workers, in order."""
    prefix = "workers" if raw.format == "yaml" else f"[{raw.workers[0].group}]" if raw.workers else "workers"
    out = []
    for host in _ordered(chk, raw.workers, prefix):
        path = f"{_hp(host, prefix)}"
        name, addr = _host_common(chk, host, path)
        for key in ("state", "priority"):
            if key in host.vars:
                chk.warn(host.vars[key].location, host.vars[key].where or f"{path}.{key}", "ignored on a worker")
        iface_val = host.vars.get("interface")
        iface = interface_name(chk, iface_val, f"{path}.interface") if iface_val else default_iface
        if name and addr:
            out.append(Worker(name, addr.ip, host.location, _mac(chk, host, path), iface))
    return out


def check_unique(chk: Checker, raw: RawInventory, masters: list[Master], workers: list[Worker]) -> None:
    """Node names and addresses must be unique across masters and workers."""
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
