"""Load an inventory file (Ansible INI, as in the seed, or the native YAML) into a RawInventory.

Every value keeps the file and line it came from, so later validation can point at it. This module knows
the Ansible spellings (``[k8s-master]``, ``[all:vars]``, ``lb=MASTER``, ``ip_interface``); nothing after it
does: keys are translated to the canonical names in :data:`CLUSTER_KEYS` and :data:`HOST_KEYS` here.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeha.errors import Location, Problem

# Canonical cluster keys, and the spellings accepted for each (INI seed names and YAML names).
CLUSTER_KEYS: dict[str, str] = {
    "name": "name",
    "cluster_name": "name",
    "vip": "vip",
    "vip_prefix": "vip_prefix",
    "k8s_version": "kubernetes_version",
    "kubernetes_version": "kubernetes_version",
    "ip_interface": "interface",
    "interface": "interface",
    "lb_port": "lb_port",
    "apiserver_port": "apiserver_port",
    "virtual_router_id": "virtual_router_id",
    "vrid": "virtual_router_id",
    "profile": "profile",
    "vrrp_mode": "vrrp_mode",
    "health_path": "health_path",
    "weight": "weight",
    "auth_pass": "auth_pass",
    "keepalived_image": "keepalived_image",
    "haproxy_image": "haproxy_image",
    "image_pull_policy": "image_pull_policy",
    "health_port": "health_port",
    "gateway": "gateway",
    "dns": "dns",
    "dns_servers": "dns",
    "preempt": "preempt",
    "preempt_delay": "preempt_delay",
}

# Canonical host keys. ``lbname`` and ``role`` are seed variables kubeha accepts and does not need.
HOST_KEYS: dict[str, str] = {
    "name": "name",
    "address": "address",
    "ip": "address",
    "lb": "state",
    "state": "state",
    "priority": "priority",
    "order": "order",
    "interface": "interface",
    "role": "role",
    "lbname": "lbname",
    "mac": "mac",
}

MASTER_GROUP = "k8s-master"
WORKER_GROUP = "k8s-node"
# Groups the seed's hosts file has that kubeha reads only for their structure.
KNOWN_GROUPS = {MASTER_GROUP, WORKER_GROUP, "k8s-all", "all"}


@dataclass(frozen=True)
class Value:
    """A scalar from the inventory and where it was written."""

    value: Any
    location: Location


@dataclass
class RawHost:
    """One host line (INI) or list entry (YAML), keys already canonical."""

    vars: dict[str, Value]
    location: Location
    group: str
    index: int


@dataclass
class RawInventory:
    """What the file says, before validation: cluster-wide vars, masters, workers, and load problems."""

    path: str
    format: str
    cluster: dict[str, Value] = field(default_factory=dict)
    masters: list[RawHost] = field(default_factory=list)
    workers: list[RawHost] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    unreadable: bool = False  # nothing could be parsed: report only why, not every missing value


def load(path: Path) -> RawInventory:
    """Read ``path`` and parse it as INI or YAML (by suffix; ``.yaml``/``.yml`` are YAML)."""
    fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "ini"
    inv = RawInventory(path=str(path), format=fmt)
    try:
        data = path.read_bytes()
    except OSError as exc:
        inv.problems.append(Problem(Location(str(path)), "inventory", f"cannot read: {exc.strerror}"))
        return inv
    text = _decode(data, inv)
    if text is None:
        inv.unreadable = True
        return inv
    if fmt == "yaml":
        _load_yaml(text, inv)
    else:
        _load_ini(text, inv)
    return inv


def _decode(data: bytes, inv: RawInventory) -> str | None:
    loc = Location(inv.path, 1)
    if b"\0" in data:
        inv.problems.append(Problem(loc, "inventory", "not a text file (contains NUL bytes)"))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        inv.problems.append(Problem(Location(inv.path, line), "inventory", "not valid UTF-8 text"))
        return None
    if not text.strip():
        inv.problems.append(Problem(loc, "inventory", "the file is empty"))
        return None
    return text.removeprefix("\ufeff")


# ---------------------------------------------------------------------------------------------- INI


@dataclass
class _IniState:
    section: str = ""
    kind: str = "hosts"  # hosts | vars | children
    children: dict[str, list[tuple[str, Location]]] = field(default_factory=dict)
    seen_groups: set[str] = field(default_factory=set)
    group_vars: dict[str, dict[str, Value]] = field(default_factory=dict)


def _load_ini(text: str, inv: RawInventory) -> None:
    st = _IniState()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        loc = Location(inv.path, lineno)
        if line.startswith("["):
            _ini_section(line, loc, st, inv)
        elif st.section == "":
            inv.problems.append(Problem(loc, "inventory", "text before the first [group] header"))
        elif st.kind == "vars":
            _ini_var(line, loc, st, inv)
        elif st.kind == "children":
            st.children.setdefault(st.section, []).append((line, loc))
        else:
            _ini_host(line, loc, st, inv)
    _ini_finish(st, inv)


def _ini_section(line: str, loc: Location, st: _IniState, inv: RawInventory) -> None:
    if not line.endswith("]") or len(line) < 3:
        inv.problems.append(Problem(loc, "inventory", f"malformed group header {line!r}"))
        st.section, st.kind = "?", "hosts"
        return
    name, _, kind = line[1:-1].strip().partition(":")
    if kind not in ("", "vars", "children"):
        inv.problems.append(Problem(loc, f"[{name}:{kind}]", "unknown section kind (use :vars or :children)"))
    st.section, st.kind = name, kind or "hosts"
    st.seen_groups.add(name)
    if name not in KNOWN_GROUPS:
        inv.problems.append(Problem(loc, f"[{name}]", "unknown group (kubeha reads k8s-master, k8s-node, all)",
                                    "warning"))


def _split(line: str, loc: Location, inv: RawInventory) -> list[str] | None:
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        inv.problems.append(Problem(loc, "inventory", f"cannot split line: {exc}"))
        return None


def _ini_var(line: str, loc: Location, st: _IniState, inv: RawInventory) -> None:
    key, sep, value = line.partition("=")
    if not sep:
        inv.problems.append(Problem(loc, f"[{st.section}:vars]", f"expected key=value, got {line!r}"))
        return
    words = _split(value.strip(), loc, inv)
    if words is None:
        return
    st.group_vars.setdefault(st.section, {})[key.strip()] = Value(" ".join(words), loc)


def _ini_host(line: str, loc: Location, st: _IniState, inv: RawInventory) -> None:
    words = _split(line, loc, inv)
    if not words:
        return
    host, *pairs = words
    hvars: dict[str, Value] = {"address": Value(host, loc)}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            inv.problems.append(Problem(loc, f"{host}", f"expected key=value, got {pair!r}"))
            continue
        canon = HOST_KEYS.get(key)
        if canon is None:
            inv.problems.append(Problem(loc, f"{host}.{key}", "unknown host variable", "warning"))
            continue
        if canon in hvars and canon != "address":
            inv.problems.append(Problem(loc, f"{host}.{key}", "set twice on one line"))
        hvars[canon] = Value(value, loc)
    _add_host(inv, st.section, hvars, loc)


def _add_host(inv: RawInventory, group: str, hvars: dict[str, Value], loc: Location) -> None:
    if group == MASTER_GROUP:
        inv.masters.append(RawHost(hvars, loc, group, len(inv.masters)))
    elif group == WORKER_GROUP:
        inv.workers.append(RawHost(hvars, loc, group, len(inv.workers)))
    elif group in KNOWN_GROUPS:
        inv.problems.append(Problem(loc, f"[{group}]", "hosts belong in [k8s-master] or [k8s-node]"))


def _ini_finish(st: _IniState, inv: RawInventory) -> None:
    for group, members in st.children.items():
        for child, loc in members:
            if child not in st.seen_groups:
                inv.problems.append(Problem(loc, f"[{group}:children]", f"no group named {child!r}"))
    for group, gvars in st.group_vars.items():  # file order: the later setting is the duplicate
        if group == "all" or group == "k8s-all":
            _cluster_vars(gvars, inv, f"[{group}:vars]")
        elif group in (MASTER_GROUP, WORKER_GROUP):
            hosts = inv.masters if group == MASTER_GROUP else inv.workers
            _group_defaults(gvars, hosts, inv, f"[{group}:vars]")
    if MASTER_GROUP not in st.seen_groups:
        inv.problems.append(Problem(Location(inv.path, 1), "inventory", f"no [{MASTER_GROUP}] group"))


def _cluster_vars(gvars: dict[str, Value], inv: RawInventory, where: str) -> None:
    for key, val in gvars.items():
        canon = CLUSTER_KEYS.get(key)
        if canon is None:
            inv.problems.append(Problem(val.location, f"{where}.{key}", "unknown variable", "warning"))
        elif canon in inv.cluster:
            inv.problems.append(Problem(val.location, f"{where}.{key}", "set more than once"))
        else:
            inv.cluster[canon] = val


def _group_defaults(gvars: dict[str, Value], hosts: list[RawHost], inv: RawInventory, where: str) -> None:
    for key, val in gvars.items():
        canon = HOST_KEYS.get(key)
        if canon is None or canon in ("name", "address", "priority", "state"):
            inv.problems.append(Problem(val.location, f"{where}.{key}", "not a per-group variable", "warning"))
            continue
        for host in hosts:
            host.vars.setdefault(canon, val)


# --------------------------------------------------------------------------------------------- YAML


class _LineLoader(yaml.CSafeLoader):
    """A SafeLoader whose mappings refuse duplicate keys (PyYAML silently keeps the last)."""


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _load_yaml(text: str, inv: RawInventory) -> None:
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        inv.problems.append(Problem(Location(inv.path, line), "inventory",
                                    f"YAML does not allow the character U+{exc.character:04X}"))
        inv.unreadable = True
        return
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        inv.problems.append(Problem(Location(inv.path, line), "inventory", f"YAML syntax: {exc.problem}"))
        inv.unreadable = True
        return
    except yaml.YAMLError as exc:
        inv.problems.append(Problem(Location(inv.path, 1), "inventory", f"YAML: {exc}"))
        inv.unreadable = True
        return
    finally:
        loader.dispose()
    if not isinstance(node, yaml.MappingNode):
        line = node.start_mark.line + 1 if node is not None else 1
        inv.problems.append(Problem(Location(inv.path, line), "inventory", "top level must be a mapping"))
        inv.unreadable = True
        return
    _yaml_top(node, inv)


def _loc(inv: RawInventory, node: yaml.Node) -> Location:
    return Location(inv.path, node.start_mark.line + 1)


def _pairs(node: yaml.MappingNode, inv: RawInventory, where: str) -> list[tuple[str, yaml.Node]]:
    """Key/value node pairs of a mapping; non-string and duplicate keys become problems."""
    seen: set[str] = set()
    out = []
    for knode, vnode in node.value:
        if not isinstance(knode, yaml.ScalarNode) or knode.tag != "tag:yaml.org,2002:str":
            inv.problems.append(Problem(_loc(inv, knode), where, "keys must be plain strings"))
            continue
        if knode.value in seen:
            inv.problems.append(Problem(_loc(inv, knode), f"{where}.{knode.value}", "duplicate key"))
            continue
        seen.add(knode.value)
        out.append((knode.value, vnode))
    return out


def _scalar(node: yaml.Node, inv: RawInventory, where: str) -> Value | None:
    if not isinstance(node, yaml.ScalarNode):
        inv.problems.append(Problem(_loc(inv, node), where, "expected a single value, not a list or mapping"))
        return None
    value = _CONSTRUCTOR.construct_scalar(node)
    resolved: Any = value
    if node.tag == "tag:yaml.org,2002:int":
        resolved = int(value.replace("_", ""), 0) if value.lstrip("+-").isdigit() else value
    elif node.tag == "tag:yaml.org,2002:bool":
        resolved = value.lower() in ("true", "yes", "on")
    elif node.tag == "tag:yaml.org,2002:null":
        resolved = None
    return Value(resolved, _loc(inv, node))


def _yaml_top(node: yaml.MappingNode, inv: RawInventory) -> None:
    sections = dict(_pairs(node, inv, "inventory"))
    for key, vnode in sections.items():
        if key not in ("cluster", "masters", "workers", "kubeha"):
            inv.problems.append(Problem(_loc(inv, vnode), key, "unknown top-level key", "warning"))
    if "cluster" in sections:
        _yaml_cluster(sections["cluster"], inv)
    if "masters" not in sections:
        inv.problems.append(Problem(_loc(inv, node), "masters", "missing: list the control-plane nodes"))
    for group, key in ((MASTER_GROUP, "masters"), (WORKER_GROUP, "workers")):
        if key in sections:
            _yaml_hosts(sections[key], inv, group, key)


def _yaml_cluster(node: yaml.Node, inv: RawInventory) -> None:
    if not isinstance(node, yaml.MappingNode):
        inv.problems.append(Problem(_loc(inv, node), "cluster", "expected a mapping"))
        return
    for key, vnode in _pairs(node, inv, "cluster"):
        canon = CLUSTER_KEYS.get(key)
        if canon is None:
            inv.problems.append(Problem(_loc(inv, vnode), f"cluster.{key}", "unknown key", "warning"))
            continue
        val = _scalar(vnode, inv, f"cluster.{key}")
        if val is not None:
            inv.cluster[canon] = val


def _yaml_hosts(node: yaml.Node, inv: RawInventory, group: str, key: str) -> None:
    if not isinstance(node, yaml.SequenceNode):
        inv.problems.append(Problem(_loc(inv, node), key, "expected a list of hosts"))
        return
    for i, hnode in enumerate(node.value):
        where = f"{key}[{i}]"
        if not isinstance(hnode, yaml.MappingNode):
            inv.problems.append(Problem(_loc(inv, hnode), where, "expected a mapping with name and address"))
            continue
        hvars: dict[str, Value] = {}
        for hkey, vnode in _pairs(hnode, inv, where):
            canon = HOST_KEYS.get(hkey)
            val = _scalar(vnode, inv, f"{where}.{hkey}")
            if canon is None:
                inv.problems.append(Problem(_loc(inv, vnode), f"{where}.{hkey}", "unknown key", "warning"))
            elif val is not None:
                hvars[canon] = val
        _add_host(inv, group, hvars, _loc(inv, hnode))
