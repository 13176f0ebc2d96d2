"""Inventory readers -> :class:`RawInventory` with source locations (the one thing model.py consumes).

Formats: Ansible INI (``ini``, the default), Ansible YAML and kubeha's native YAML (``.yaml``/``.yml``, told
apart by shape), and ``ansible-inventory --list`` JSON (``.json``, or ``-`` for stdin). The Ansible formats
go through one group/host tree (tree.py) that applies Ansible's precedence; select.py then picks the
masters and workers and reads kubeha's keys from each host's merged variables.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kubeha.errors import Location, Problem
from kubeha.inventory.raw import CLUSTER_KEYS, HOST_KEYS, RawHost, RawInventory, Value, decode

if TYPE_CHECKING:
    from kubeha.inventory.tree import Tree

__all__ = ["CLUSTER_KEYS", "HOST_KEYS", "STDIN", "RawHost", "RawInventory", "Value", "load"]

STDIN = "-"


def _format(path: Path) -> str:
    if str(path) == STDIN or path.suffix.lower() == ".json":
        return "json"
    return "yaml" if path.suffix.lower() in (".yaml", ".yml") else "ini"


def display_name(path: Path) -> str:
    """How messages name the inventory (``<stdin>`` for ``-``)."""
    return "<stdin>" if str(path) == STDIN else str(path)


def load(path: Path, *, masters_group: str | None = None, workers_group: str | None = None) -> RawInventory:
    """Read ``path`` (``-``: JSON on stdin) into a RawInventory; problems are collected, never raised."""
    fmt = _format(path)
    inv = RawInventory(path=display_name(path), format=fmt)
    try:
        data = sys.stdin.buffer.read() if str(path) == STDIN else path.read_bytes()
    except OSError as exc:
        inv.problems.append(Problem(Location(inv.path), "inventory", f"cannot read: {exc.strerror}"))
        inv.unreadable = True
        return inv
    text = decode(data, inv)
    if text is None:
        inv.unreadable = True
        return inv
    if fmt == "yaml":
        return _load_yaml(text, inv, masters_group, workers_group)
    from kubeha.inventory.select import to_raw  # noqa: PLC0415
    from kubeha.inventory.tree import Tree  # noqa: PLC0415

    tree = Tree(inv.path, fmt)
    if fmt == "json":
        from kubeha.inventory.ansible_json import read_json  # noqa: PLC0415

        read_json(text, tree)
    else:
        from kubeha.inventory.ini import read_ini  # noqa: PLC0415

        read_ini(text, tree)
        _vars_dirs(path, tree)
    return to_raw(tree, masters_group, workers_group)


def _load_yaml(text: str, inv: RawInventory, masters_group: str | None, workers_group: str | None) -> RawInventory:
    from kubeha.inventory.native import is_native, read_native  # noqa: PLC0415
    from kubeha.inventory.yamlnodes import load_root  # noqa: PLC0415

    root = load_root(text, inv)
    if root is None:
        return inv
    if is_native(root):
        for given, opt in ((masters_group, "--masters-group"), (workers_group, "--workers-group")):
            if given is not None:
                inv.problems.append(Problem(Location(opt), opt, "applies to Ansible inventories only "
                                            "(a native YAML inventory lists masters and workers)"))
        read_native(root, inv)
        return inv
    from kubeha.inventory.ansible_yaml import read_ansible_yaml  # noqa: PLC0415
    from kubeha.inventory.select import to_raw  # noqa: PLC0415
    from kubeha.inventory.tree import Tree  # noqa: PLC0415

    tree = Tree(inv.path, "ansible-yaml")
    tree.problems.extend(inv.problems)
    read_ansible_yaml(root, tree)
    _vars_dirs(Path(inv.path), tree)
    return to_raw(tree, masters_group, workers_group)


def _vars_dirs(path: Path, tree: Tree) -> None:
    """group_vars/ and host_vars/ beside the inventory, as Ansible reads them (varsdirs.py)."""
    from kubeha.inventory.select import KNOWN_KEYS  # noqa: PLC0415
    from kubeha.inventory.varsdirs import read_vars_dirs  # noqa: PLC0415

    read_vars_dirs(path, tree, KNOWN_KEYS)
