"""``ansible-inventory --list`` JSON (any source Ansible can read: dynamic inventories, plugins) into a Tree.

The document is a dynamic inventory's: ``{GROUP: {hosts: [...], children: [...], vars: {...}},
"_meta": {"hostvars": {HOST: {...}}}}``. Without ``--export`` the hostvars are already merged by Ansible;
with it, group vars are in the groups and merge here with Ansible's precedence. There are no lines, so
every value's location is its JSON path (``$._meta.hostvars["cp1"].priority``).
"""

from __future__ import annotations

import json
from typing import Any

from kubeha.errors import Location
from kubeha.inventory.raw import Value
from kubeha.inventory.tree import Tree


def _key(name: str) -> str:
    return json.dumps(name)


def read_json(text: str, tree: Tree) -> None:
    """Fill ``tree`` from the JSON text (problems collected on the tree)."""
    top = Location(tree.path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        tree.error(Location(tree.path, exc.lineno), "$", f"not JSON: {exc.msg} (column {exc.colno})")
        tree.unreadable = True
        return
    if not isinstance(data, dict):
        tree.error(top, "$", "expected an object (the output of ansible-inventory --list)")
        tree.unreadable = True
        return
    groups = {k: v for k, v in data.items() if k != "_meta"}
    for name, body in groups.items():
        if not isinstance(body, dict):
            tree.error(top, f"$[{_key(name)}]", "a group must be an object with hosts, children and vars")
            continue
        tree.group(name, top)
    for name, body in groups.items():
        if isinstance(body, dict) and name in tree.groups:
            _group(name, body, tree)
    _hostvars(data.get("_meta", {}), tree)
    tree.finish()


def _names(value: Any, path: str, tree: Tree) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        tree.error(Location(tree.path), path, "expected a list of names")
        return []
    return value


def _group(name: str, body: dict[str, Any], tree: Tree) -> None:
    base = f"$[{_key(name)}]"
    for host in _names(body.get("hosts"), f"{base}.hosts", tree):
        tree.add_host(host, name, Location(tree.path)).path = f"$._meta.hostvars[{_key(host)}]"
    for child in _names(body.get("children"), f"{base}.children", tree):
        if child not in tree.groups:
            tree.group(child, Location(tree.path))
        tree.add_child(name, child, Location(tree.path))
    gvars = body.get("vars") or {}
    if not isinstance(gvars, dict):
        tree.error(Location(tree.path), f"{base}.vars", "expected an object")
        return
    for key, value in gvars.items():
        where = f"{base}.vars.{key}"
        tree.set_group_var(name, key, Value(value, Location(tree.path), where))


def _hostvars(meta: Any, tree: Tree) -> None:
    hostvars = meta.get("hostvars", {}) if isinstance(meta, dict) else None
    if not isinstance(hostvars, dict):
        tree.error(Location(tree.path), "$._meta.hostvars", "expected an object")
        return
    for host, hvars in hostvars.items():
        base = f"$._meta.hostvars[{_key(host)}]"
        if not isinstance(hvars, dict):
            tree.error(Location(tree.path), base, "expected an object")
            continue
        if host not in tree.hosts:
            tree.add_host(host, "all", Location(tree.path)).path = base
        for key, value in hvars.items():
            tree.hosts[host].vars[key] = Value(value, Location(tree.path), f"{base}.{key}")
