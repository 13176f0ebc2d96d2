"""A hypothesis strategy for Ansible inventories, rendered as INI and as Ansible YAML from one model.

Random groups (the seed's or kubespray's names plus extra ones), children chains, vars at every level
(all, groups, host lines; ``ansible_group_priority``), numeric ranges with strides, hosts named by address or
by name with ``ansible_host``, a host in several groups and on repeated lines, quoting, and comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from hypothesis import strategies as st

FAMILIES = [("k8s-master", "k8s-node"), ("kube_control_plane", "kube_node")]
EXTRA_GROUPS = ["dc1", "rack_a", "k8s-all", "etcd", "site-b", "zone_x"]
INTERFACES = ["eth0", "ens3", "bond0", "eth.*"]


@dataclass
class Line:
    """One host line: a host pattern and its key=value pairs (already rendered values)."""

    pattern: str
    pairs: list[tuple[str, Any]]
    comment: bool = False


@dataclass
class Model:
    """An inventory: groups in section order, their host lines, children and vars."""

    groups: list[str]
    lines: dict[str, list[Line]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    vars: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    comments: bool = False


def _value(draw: st.DrawFn, key: str) -> Any:
    if key == "priority":
        if draw(st.sampled_from(range(30))) == 7:  # now and then a value kubeha must refuse
            return draw(st.sampled_from([255, 0, "x", "0x10"]))
        return draw(st.one_of(st.integers(1, 254), st.sampled_from([100, 90, 80, "100"])))
    if key == "lb":
        return draw(st.sampled_from(["MASTER", "BACKUP", "BACKUP", "BACKUP", "BACKUP"]))
    if key == "interface":
        return draw(st.sampled_from(INTERFACES))
    if key == "ip_interface":
        return draw(st.sampled_from(INTERFACES))
    if key == "ansible_group_priority":
        return draw(st.integers(1, 5))
    if key == "vip":
        return draw(st.sampled_from(["198.18.0.10", "198.18.0.10", "198.18.0.10", "198.18.0.9", "198.18.0.10/23"]))
    if key == "order":
        return draw(st.integers(0, 5))
    raise AssertionError(key)


@st.composite
def models(draw: st.DrawFn) -> Model:
    masters, workers = draw(st.sampled_from(FAMILIES))
    extras = draw(st.lists(st.sampled_from(EXTRA_GROUPS), unique=True, max_size=3))
    groups = draw(st.permutations([masters, workers, *extras]))
    m = Model(groups=list(groups), comments=draw(st.booleans()))
    iface_key = draw(st.sampled_from(["interface", "ip_interface"]))  # one spelling per inventory
    # children: only from a group to one later in a random ranking, so no loops
    ranking = draw(st.permutations(groups))
    for i, parent in enumerate(ranking):
        later = list(ranking[i + 1:])
        if later:
            m.children[parent] = draw(st.lists(st.sampled_from(later), unique=True, max_size=2))
    # hosts: addresses (some through one range line) and names with ansible_host
    n_ip = draw(st.integers(0, 5))
    n_named = draw(st.integers(0 if n_ip >= 2 else 2 - n_ip, 3))
    ips = [f"198.18.0.{11 + i}" for i in range(n_ip)]
    named = [f"cp{i + 1}" for i in range(n_named)]
    host_keys = ["priority", "lb", iface_key, "order"]
    for g in groups:
        m.lines[g] = []
    if n_ip >= 2 and draw(st.booleans()):
        stride = draw(st.sampled_from([1, 2]))
        picked = ips[::stride]
        pattern = f"198.18.0.[{11}:{11 + (len(picked) - 1) * stride}" + (f":{stride}]" if stride > 1 else "]")
        m.lines[draw(st.sampled_from(groups))].append(Line(pattern, [], draw(st.booleans())))
    for host in ips + named:
        for g in draw(st.lists(st.sampled_from(groups), min_size=1, max_size=3, unique=True)):
            keys = draw(st.lists(st.sampled_from(host_keys), unique=True, max_size=3))
            pairs = [(k, _value(draw, k)) for k in keys]
            m.lines[g].append(Line(host, pairs, draw(st.booleans())))
        if host in named:  # its address, on one more (repeated) line, as Ansible merges them
            g = draw(st.sampled_from(groups))
            m.lines[g].append(Line(host, [("ansible_host", f"198.18.1.{named.index(host) + 11}"),
                                          ("name", f"node-{host}")], False))
    # vars at every level
    m.vars["all"] = [("cluster_name", "oracle"), ("vip", "198.18.0.10"), ("vip_prefix", 23)]
    if draw(st.booleans()):
        m.vars["all"].append((iface_key, draw(st.sampled_from(INTERFACES))))
    for g in groups:
        pool = [iface_key, iface_key, "ansible_group_priority", "ansible_group_priority", "vip", "priority", "lb"]
        keys = list(dict.fromkeys(draw(st.lists(st.sampled_from(pool), max_size=3))))
        m.vars[g] = [(k, _value(draw, k)) for k in keys]
    return m


def _ini_value(draw_quote: int, value: Any) -> str:
    text = str(value)
    return [text, f"'{text}'", f'"{text}"'][draw_quote % 3] if isinstance(value, str) else text


def render_ini(m: Model, quotes: list[int]) -> str:
    """The model as an Ansible INI file; ``quotes`` picks a quoting style per value (cycled)."""
    q = iter(quotes * 1000 if quotes else [0] * 100000)
    out = ["# generated by the inventory strategy"] if m.comments else []
    for g in m.groups:
        out.append(f"[{g}]" + ("  # hosts" if m.comments else ""))
        for line in m.lines[g]:
            pairs = " ".join(f"{k}={_ini_value(next(q), v)}" for k, v in line.pairs)
            out.append(f"{line.pattern} {pairs}".rstrip() + (" # a host" if line.comment else ""))
        if m.comments:
            out.append("; a comment line")
        if m.children.get(g):
            out.append(f"[{g}:children]")
            out += m.children[g]
        if m.vars.get(g):
            out.append(f"[{g}:vars]")
            out += [f"{k}={v}" for k, v in m.vars[g]]  # whole rest of line is the value: no trailing comments
    out.append("[all:vars]")
    out += [f"{k}={v}" for k, v in m.vars["all"]]
    return "\n".join(out) + "\n"


def render_yaml(m: Model) -> str:
    """The same model as an Ansible YAML inventory (repeated host lines in a group merge into one entry)."""
    children: dict[str, Any] = {}
    for g in m.groups:
        body: dict[str, Any] = {}
        hosts: dict[str, Any] = {}
        for line in m.lines[g]:
            hosts.setdefault(line.pattern, {}).update(dict(line.pairs))
        if hosts:
            body["hosts"] = {k: (v or None) for k, v in hosts.items()}
        if m.children.get(g):
            body["children"] = {c: None for c in m.children[g]}
        if m.vars.get(g):
            body["vars"] = dict(m.vars[g])
        children[g] = body or None
    doc = {"all": {"vars": dict(m.vars["all"]), "children": children}}
    head = "# generated by the inventory strategy\n" if m.comments else ""
    return head + yaml.safe_dump(doc, sort_keys=False)
