"""From an Ansible group/host tree to kubeha's RawInventory: the masters, the workers, their kubeha keys.

Each host's kubeha keys are read from its final merged variables (Ansible's precedence, see tree.py).

Masters are the hosts of the masters group (``k8s-master``, or kubespray's ``kube_control_plane``, or
``masters_group``) including those reached through ``:children``, in Ansible's order; workers are the hosts
of the workers group that are not masters. Cluster-wide keys (``vip``, ...) are read from the cluster hosts'
merged variables and must agree between them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from kubeha.errors import Location, Problem
from kubeha.inventory.raw import CLUSTER_KEYS, HOST_KEYS, RawHost, RawInventory, Value, suggest
from kubeha.inventory.tree import Tree

# The seed's, kubespray's and kubespray's old (dashed) names: masters group -> workers group.
FAMILIES = {"k8s-master": "k8s-node", "kube_control_plane": "kube_node", "kube-master": "kube-node"}
OLD_NAMES = {"kube-master": "kube_control_plane", "kube-node": "kube_node", "k8s-cluster": "k8s_cluster"}
STRUCTURE_GROUPS = frozenset({"all", "ungrouped", "k8s-all", "etcd", "calico_rr", "k8s_cluster", "k8s-cluster"})
# Ansible-side host keys: the seed's ip_interface is the per-host interface too.
ANSIBLE_HOST_KEYS = {**HOST_KEYS, "ip_interface": "interface"}
# Cluster-wide keys in an Ansible inventory. ``name`` and ``interface`` are per host there (a group's value
# reaches each member): the cluster's name is ``cluster_name``.
ANSIBLE_CLUSTER_KEYS = {k: v for k, v in CLUSTER_KEYS.items() if k not in ("name", "interface", "ip_interface")}
# The order in which spellings of one host setting are taken: the first one set wins.
PREFERRED = ["address", "ip", "interface", "ip_interface", "state", "lb", *HOST_KEYS]
PREFERRED = list(dict.fromkeys(PREFERRED))
GROUP_KEYS = ("masters_group", "workers_group")
# Other tools' variables kubeha knows it does not need: no "unknown variable" warning for them.
FOREIGN_KEYS = frozenset({"access_ip", "etcd_member_name", "inventory_file", "inventory_dir", "kube_version"})
# Every variable kubeha reads from an Ansible inventory.
KNOWN_KEYS = frozenset({*ANSIBLE_HOST_KEYS, *ANSIBLE_CLUSTER_KEYS, *GROUP_KEYS, "ansible_host"})


def to_raw(tree: Tree, masters_group: str | None = None, workers_group: str | None = None) -> RawInventory:
    """Select masters and workers from ``tree`` and read their kubeha keys (all problems collected)."""
    all_at = tree.groups["all"].location
    inv = RawInventory(tree.path, tree.format, problems=list(tree.problems), unreadable=tree.unreadable,
                       cluster_where="[all:vars]", settings_at=all_at if all_at.line else None)
    if tree.unreadable:
        return inv
    _unknown_keys(tree, inv)
    mg, wg = _group_names(tree, inv, masters_group, workers_group)
    if mg is None:
        _unknown_groups(tree, inv, mg, wg, set())
        inv.masters_reported = True
        inv.cluster = _cluster(inv, tree, {})
        return inv
    masters = tree.members(mg)
    workers = [h for h in tree.members(wg) if h not in masters] if wg else []
    if not masters:
        inv.problems.append(Problem(tree.groups[mg].location, f"[{mg}]",
                                    f"the masters group {mg!r} has no hosts (directly or through :children)"))
        inv.masters_reported = True
    merged = {name: tree.host_vars(name) for name in [*masters, *workers]}
    _unknown_groups(tree, inv, mg, wg, set(merged))
    for group, names, out in ((mg, masters, inv.masters), (wg or "", workers, inv.workers)):
        for i, name in enumerate(names):
            out.append(_raw_host(tree, inv, name, group, i, merged[name]))
    inv.cluster = _cluster(inv, tree, merged)
    return inv


def _setting(tree: Tree, key: str) -> Value | None:
    """``masters_group``/``workers_group`` from ``all``'s vars, or agreed by every host (merged JSON)."""
    val = tree.groups["all"].file_vars.get(key) or tree.groups["all"].vars.get(key)
    if val is not None or not tree.hosts or tree.format != "json":
        return val
    found = [tree.host_vars(h).get(key) for h in tree.hosts]
    if found[0] is not None and all(f is not None and f.value == found[0].value for f in found):
        return found[0]
    return None


def _group_names(tree: Tree, inv: RawInventory, masters: str | None,
                 workers: str | None) -> tuple[str | None, str | None]:
    top = Location(tree.path, 1)
    names: list[tuple[str | None, Location, str]] = []
    for key, given in zip(GROUP_KEYS, (masters, workers), strict=True):
        if given is not None:
            names.append((given, Location(f"--{key.replace('_', '-')}"), f"--{key.replace('_', '-')}"))
            continue
        val = _setting(tree, key)
        if val is not None and not isinstance(val.value, str):
            inv.problems.append(Problem(val.location, val.where or key, "must be a group name"))
            val = None
        names.append((val.value, val.location, val.where or key) if val else (None, top, key))
    (mg, mloc, mpath), (wg, wloc, wpath) = names
    if mg is None:
        found = [g for g in FAMILIES if g in tree.groups and OLD_NAMES.get(g) not in tree.groups]
        if len(found) > 1:
            inv.problems.append(Problem(top, "masters_group", f"both {found[0]!r} and {found[1]!r} are groups here: "
                                        "set masters_group (in [all:vars] or --masters-group) to choose"))
            return None, None
        if not found:
            inv.problems.append(Problem(top, "inventory", "no masters group: kubeha reads [k8s-master] (the seed's) "
                                        "or [kube_control_plane] (kubespray's), or set masters_group"
                                        + misspelt_group(tree.groups, FAMILIES)))
            return None, None
        mg = found[0]
        _old_name(tree, inv, mg)
    elif mg not in tree.groups:
        inv.problems.append(Problem(mloc, mpath, f"no group named {mg!r}" + suggest_group(tree.groups, [mg])))
        return None, None
    if wg is None:
        wg = FAMILIES.get(mg) or next((w for w in FAMILIES.values() if w in tree.groups), None)
        if wg not in tree.groups:
            return mg, None
        _old_name(tree, inv, wg)
        return mg, wg
    if wg not in tree.groups:
        inv.problems.append(Problem(wloc, wpath, f"no group named {wg!r}" + suggest_group(tree.groups, [wg])))
        return mg, None
    return mg, wg


def suggest_group(groups: Iterable[str], wanted: Iterable[str]) -> str:
    """"; did you mean X?" for the first wanted name that an existing group is close to."""
    for name in wanted:
        hint = suggest(name, [g for g in groups if g not in ("all", "ungrouped")])
        if hint:
            return hint
    return ""


def misspelt_group(groups: Iterable[str], wanted: Iterable[str]) -> str:
    """"; is [g] a misspelt 'k8s-master'? ..." when an existing group is close to a name kubeha reads."""
    import difflib  # noqa: PLC0415 - only on the error path

    existing = [g for g in groups if g not in ("all", "ungrouped")]
    for name in wanted:
        close = difflib.get_close_matches(name, existing, n=1, cutoff=0.75)
        if close:
            return f"; is [{close[0]}] a misspelt {name!r}? Rename it, or pass --masters-group {close[0]}"
    return ""


def _old_name(tree: Tree, inv: RawInventory, group: str) -> None:
    """Read kubespray's old dashed group names as the new ones, with a warning naming the new one."""
    if group in OLD_NAMES:
        inv.problems.append(Problem(tree.groups[group].location, f"[{group}]", f"kubespray's old name for "
                                    f"{OLD_NAMES[group]}: read as that; rename it to {OLD_NAMES[group]}, kubespray's "
                                    "current name", "warning"))


def _unknown_groups(tree: Tree, inv: RawInventory, mg: str | None, wg: str | None, cluster: set[str]) -> None:
    """Warn about groups that hold no cluster host and are not known structure: often a typo'd group name."""
    if mg is None:  # the error about the masters group says what kubeha reads
        return
    known = {*FAMILIES, *FAMILIES.values(), *STRUCTURE_GROUPS, mg, wg}
    reads = f"masters: {mg}, workers: {wg}" if wg else f"masters: {mg}, no workers group"
    for name, grp in tree.groups.items():
        if name not in known and not cluster.intersection(tree.members(name)):
            inv.problems.append(Problem(grp.location, f"[{name}]", f"not a group kubeha reads ({reads})"
                                        + suggest(name, {*FAMILIES, *FAMILIES.values()}), "warning"))


def _unknown_keys(tree: Tree, inv: RawInventory) -> None:
    known = {*ANSIBLE_HOST_KEYS, *ANSIBLE_CLUSTER_KEYS, *GROUP_KEYS, *FOREIGN_KEYS}
    seen: set[tuple[Location, str]] = set()
    scopes = [*((g.vars, False) for g in tree.groups.values()), *((h.vars, False) for h in tree.hosts.values()),
              *((g.file_vars, True) for g in tree.groups.values()), *((h.file_vars, True) for h in tree.hosts.values())]
    for scope, from_files in scopes:
        for key, val in scope.items():
            if key in known or key.startswith("ansible_") or (val.location, key) in seen:
                continue
            seen.add((val.location, key))
            hint = suggest(key, known)
            # a dynamic inventory's or kubespray's group_vars' own variables are not the user's typos
            if hint or (tree.format != "json" and not from_files):
                inv.problems.append(Problem(val.location, val.where or key, "unknown variable" + hint, "warning"))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _raw_host(tree: Tree, inv: RawInventory, name: str, group: str, index: int,
              merged: dict[str, Value]) -> RawHost:
    host = tree.hosts[name]
    hvars: dict[str, Value] = {}
    spelled: dict[str, str] = {}
    for key in PREFERRED:  # kubeha's own spelling wins over the seed's/kubespray's (ip_interface, ip)
        canon = ANSIBLE_HOST_KEYS[key]
        val = merged.get(key)
        if val is None:
            continue
        if canon in hvars and hvars[canon].value != val.value:
            inv.problems.append(Problem(val.location, val.where or key, f"both {spelled[canon]} and {key} apply to "
                                        f"{name}: {spelled[canon]} wins", "warning"))
        elif canon not in hvars:
            hvars[canon], spelled[canon] = val, key
    path = host.path or name
    if "name" in hvars and "name" not in host.vars:
        val = hvars.pop("name")
        inv.problems.append(Problem(val.location, val.where or "name", "a group's name= would give every host "
                                    "in it the same node name: set name= per host (the cluster's is cluster_name)"))
    if "address" not in hvars and "ansible_host" in merged:
        hvars["address"] = merged["ansible_host"]
    elif "address" not in hvars and _is_ip(name):
        hvars["address"] = Value(name, host.location, path)
    if "name" not in hvars and not _is_ip(name):
        hvars["name"] = Value(name, host.location, path)
    no_address = f"{name!r} is not an IPv4 address: give ansible_host=ADDRESS"
    return RawHost(hvars, host.location, group, index, path, no_address)


def _cluster(inv: RawInventory, tree: Tree, merged_vars: dict[str, dict[str, Value]]) -> dict[str, Value]:
    """Cluster keys from the hosts' merged variables (they must agree), or from ``all`` with no hosts."""
    scopes = list(merged_vars.items()) or [("all", {**tree.groups["all"].vars, **tree.groups["all"].file_vars})]
    out: dict[str, Value] = {}
    source: dict[str, str] = {}
    for host, merged in scopes:
        for key, val in merged.items():
            canon = ANSIBLE_CLUSTER_KEYS.get(key)
            if canon is None:
                continue
            first = out.get(canon)
            if first is None:
                out[canon], source[canon] = val, host
            elif first.value != val.value:
                shown = "" if canon == "auth_pass" else f": {first.value!r} and {val.value!r}"
                inv.problems.append(Problem(val.location, val.where or key, f"differs between {source[canon]} and "
                                            f"{host}{shown} (a cluster-wide setting must be the same for every host)"))
    return out
