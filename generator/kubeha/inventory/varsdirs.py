"""``group_vars/`` and ``host_vars/`` beside an Ansible inventory, read as ansible-core's host_group_vars plugin.

For each group of the tree and each host, ansible-core looks in ``group_vars/`` (``host_vars/``) beside the
inventory file for the first of ``NAME``, ``NAME.yml``, ``NAME.yaml``, ``NAME.json`` that exists: a file is
read; a directory is read whole, every file in it (and in its sub-directories without an extension) whose
name has no extension or one of those, sorted by name, hidden files and ``~`` backups skipped. Files are YAML
(JSON is YAML); an empty file is nothing; a file's top level must be a mapping; a later file's key replaces
an earlier one's. Precedence (tree.py :meth:`Tree.host_vars`): every group's inline vars, then these files
(``all`` first, then the host's groups in Ansible's order), then the host's inline vars, then its host_vars.

Refused with file:line: syntax errors, a top level that is not a mapping, Ansible Vault (a vault-encrypted
file, or a ``!vault`` value of a key kubeha reads: kubeha never decrypts). Files for groups or hosts the
inventory does not have are ignored, as Ansible ignores them, with a warning (a misspelt file name).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from kubeha.errors import Location, Problem
from kubeha.inventory.raw import Value, suggest
from kubeha.inventory.tree import Tree
from kubeha.inventory.yamlnodes import construct, loc, pairs

EXTENSIONS = ("", ".yml", ".yaml", ".json")  # ansible-core's order: the first that exists wins
VAULT_HEADER = "$ANSIBLE_VAULT;"
VAULT_TAG = "!vault"
UNSAFE_TAG = "!unsafe"


class _Sink:
    """Problems found in one vars file, located in that file."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path, self.problems = path, problems


def find_vars_files(folder: Path, name: str) -> list[Path]:
    """What ansible-core's ``DataLoader.find_vars_files(folder, name)`` finds, in its order."""
    for ext in EXTENSIONS:
        full = folder / f"{name}{ext}"
        if full.exists():
            return _dir_files(full) if full.is_dir() else [full]
    return []


def _dir_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        full, ext = folder / entry, os.path.splitext(entry)[1]
        if full.is_dir() and not ext:
            found += _dir_files(full)
        elif full.is_file() and (not ext or ext in EXTENSIONS):
            found.append(full)
    return found


def read_vars_file(path: Path, entity: str, problems: list[Problem], wanted: frozenset[str]) -> dict[str, Value]:
    """The variables of one file, each with its line; ``wanted`` keys are those kubeha reads."""
    sink = _Sink(str(path), problems)
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8 text"
        problems.append(Problem(Location(str(path)), entity, f"cannot read: {why}"))
        return {}
    if text.lstrip().startswith(VAULT_HEADER):
        problems.append(Problem(Location(str(path), 1), entity, "encrypted with Ansible Vault: kubeha never "
                                "decrypts; keep kubeha's keys in a plain file beside it (Ansible reads both), or "
                                "give kubeha `ansible-inventory -i INVENTORY --list` output"))
        return {}
    root = _root(text, sink, entity)
    if root is None:
        return {}
    out: dict[str, Value] = {}
    for key, vnode in pairs(root, sink, entity):
        where = f"{entity}.{key}"
        if vnode.tag == VAULT_TAG:
            if key in wanted:
                problems.append(Problem(loc(sink, vnode), where, "encrypted with Ansible Vault (!vault): kubeha "
                                        "never decrypts; give this value in plain text"))
            continue
        if vnode.tag == UNSAFE_TAG and isinstance(vnode, yaml.ScalarNode):
            out[key] = Value(vnode.value, loc(sink, vnode), where)
            continue
        ok, value = construct(vnode, sink if key in wanted else _Sink(str(path), []), where)
        if ok:
            out[key] = Value(value, loc(sink, vnode), where)
    return out


def _root(text: str, sink: _Sink, entity: str) -> yaml.MappingNode | None:
    """The file's top-level mapping; None when it is empty (nothing) or unreadable (a problem)."""
    loader = yaml.CSafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        sink.problems.append(Problem(Location(sink.path, mark.line + 1 if mark else 0), entity,
                                     f"YAML syntax: {exc.problem}"))
        return None
    except yaml.YAMLError as exc:
        sink.problems.append(Problem(Location(sink.path), entity, f"YAML: {exc}"))
        return None
    finally:
        loader.dispose()
    if node is None or isinstance(node, yaml.ScalarNode) and not node.value.strip("~ ") or \
            isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.value:
        return None  # empty: Ansible skips it
    if not isinstance(node, yaml.MappingNode):
        sink.problems.append(Problem(loc(sink, node), entity, "must be a mapping of variables (Ansible refuses "
                                     "anything else)"))
        return None
    return node


def read_vars_dirs(inventory: Path, tree: Tree, wanted: frozenset[str]) -> None:
    """Give every group and host of ``tree`` the variables of its group_vars/ or host_vars/ files."""
    base = inventory.parent
    for kind, entities in (("group_vars", tree.groups), ("host_vars", tree.hosts)):
        folder = base / kind
        if not folder.is_dir():
            continue
        for name, entity in entities.items():
            if name.startswith(os.sep):
                continue  # Ansible skips such names (chroot-style host names)
            for path in find_vars_files(folder, name):
                entity.file_vars.update(read_vars_file(path, name, tree.problems, wanted))
        _strays(folder, set(entities), kind, tree)


def _strays(folder: Path, names: set[str], kind: str, tree: Tree) -> None:
    """Warn about group_vars/host_vars entries no group or host of the inventory reads (a misspelt name)."""
    what = "group" if kind == "group_vars" else "host"
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        stem, ext = os.path.splitext(entry)
        name = stem if ext in EXTENSIONS[1:] else entry
        if name not in names:
            tree.problems.append(Problem(Location(str(folder / entry)), kind, f"no {what} {name!r} in the inventory: "
                                         "Ansible ignores this" + suggest(name, names), "warning"))
