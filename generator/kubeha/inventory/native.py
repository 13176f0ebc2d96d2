"""kubeha's native YAML inventory (``cluster:``, ``masters:``, ``workers:``) into a RawInventory."""

from __future__ import annotations

import yaml

from kubeha.errors import Problem
from kubeha.inventory.raw import CLUSTER_KEYS, HOST_KEYS, RawHost, RawInventory, Value, suggest
from kubeha.inventory.yamlnodes import construct, loc, pairs

NATIVE_KEYS = ("cluster", "masters", "workers", "kubeha")


def is_native(root: yaml.MappingNode) -> bool:
    """Native when a top-level key is ``cluster``/``masters``/``workers`` and ``masters`` is not a group."""
    keys = {k.value for k, _ in root.value if isinstance(k, yaml.ScalarNode)}
    return bool(keys & {"cluster", "masters", "workers"}) and "all" not in keys


def read_native(root: yaml.MappingNode, inv: RawInventory) -> None:
    """Fill ``inv`` from the native document's top-level mapping."""
    inv.cluster_where = "cluster"
    sections = dict(pairs(root, inv, "inventory"))
    for key, vnode in sections.items():
        if key not in NATIVE_KEYS:
            inv.problems.append(Problem(loc(inv, vnode), key, "unknown top-level key", "warning"))
    if "cluster" in sections:
        inv.settings_at = next(loc(inv, k) for k, _ in root.value if getattr(k, "value", None) == "cluster")
        _yaml_cluster(sections["cluster"], inv)
    if "masters" not in sections:
        inv.problems.append(Problem(loc(inv, root), "masters", "missing: list the control-plane nodes"))
        inv.masters_reported = True
    for key in ("masters", "workers"):
        if key in sections:
            _yaml_hosts(sections[key], inv, key)


def _scalar(node: yaml.Node, inv: RawInventory, where: str) -> Value | None:
    if not isinstance(node, yaml.ScalarNode):
        inv.problems.append(Problem(loc(inv, node), where, "expected a single value, not a list or mapping"))
        return None
    ok, value = construct(node, inv, where)
    return Value(value, loc(inv, node)) if ok else None


def _yaml_cluster(node: yaml.Node, inv: RawInventory) -> None:
    if not isinstance(node, yaml.MappingNode):
        inv.problems.append(Problem(loc(inv, node), "cluster", "expected a mapping"))
        return
    for key, vnode in pairs(node, inv, "cluster"):
        canon = CLUSTER_KEYS.get(key)
        if canon is None:
            inv.problems.append(Problem(loc(inv, vnode), f"cluster.{key}", "unknown key" + suggest(key, CLUSTER_KEYS),
                                        "warning"))
            continue
        val = _scalar(vnode, inv, f"cluster.{key}")
        if val is not None:
            inv.cluster[canon] = val


def _yaml_hosts(node: yaml.Node, inv: RawInventory, key: str) -> None:
    if not isinstance(node, yaml.SequenceNode):
        inv.problems.append(Problem(loc(inv, node), key, "expected a list of hosts"))
        return
    hosts = inv.masters if key == "masters" else inv.workers
    for i, hnode in enumerate(node.value):
        where = f"{key}[{i}]"
        if not isinstance(hnode, yaml.MappingNode):
            inv.problems.append(Problem(loc(inv, hnode), where, "expected a mapping with name and address"))
            continue
        hvars: dict[str, Value] = {}
        for hkey, vnode in pairs(hnode, inv, where):
            canon = HOST_KEYS.get(hkey)
            val = _scalar(vnode, inv, f"{where}.{hkey}")
            if canon is None:
                inv.problems.append(Problem(loc(inv, vnode), f"{where}.{hkey}",
                                            "unknown key" + suggest(hkey, HOST_KEYS), "warning"))
            elif val is not None:
                hvars[canon] = val
        hosts.append(RawHost(hvars, loc(inv, hnode), key, len(hosts), where))
