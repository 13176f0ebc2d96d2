"""Ansible's INI inventory format, read as ansible-core's ``ini`` inventory plugin reads it, into a Tree.

Sections ``[group]``, ``[group:children]``, ``[group:vars]`` (a ``# comment`` may follow a header); host
lines are split like a shell line with ``#`` comments, each ``key=value`` typed as a Python literal when
it is one (``100``, ``0x10``, ``True``, ``'quoted'``) and kept as text otherwise. In a ``:vars`` section the
value is the whole rest of the line, so a ``# ...`` after it is part of the value, exactly as in Ansible.
Hosts before any header are in ``ungrouped``. Every value keeps its file:line.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from dataclasses import dataclass, field
from typing import Any

from kubeha.errors import Location, Problem
from kubeha.inventory.patterns import PatternError, expand, split_port
from kubeha.inventory.raw import Value
from kubeha.inventory.tree import Tree

_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?")
_CHILD = re.compile(r"([^:\]\s]+)\s*(?:#.*)?")


@dataclass
class _Pending:
    """A group named before it was declared: by a ``[g:vars]`` header or as someone's child."""

    kind: str  # vars | children
    location: Location
    parents: list[str] = field(default_factory=list)


@dataclass
class _State:
    group: str = "ungrouped"
    kind: str = "hosts"
    # Groups not yet declared by a [g] or [g:children] header. As in Ansible, a child named before its
    # declaration is linked when the declaration comes, which fixes the order of a group's children.
    pending: dict[str, _Pending] = field(default_factory=dict)


def read_ini(text: str, tree: Tree) -> None:
    """Parse ``text`` into ``tree`` (problems collected on the tree)."""
    st = _State()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        loc = Location(tree.path, lineno)
        if line.startswith("[") and (line.endswith("]") or "]" not in line or _SECTION.fullmatch(line)):
            _section(line, loc, st, tree)  # else a host pattern that starts with a range, as in Ansible
        elif st.kind == "vars":
            _var(line, loc, st, tree)
        elif st.kind == "children":
            _child(line, loc, st, tree)
        else:
            _hosts(line, loc, st, tree)
    _finish(st, tree)


def _section(line: str, loc: Location, st: _State, tree: Tree) -> None:
    m = _SECTION.fullmatch(line)
    if not m:
        tree.error(loc, "inventory", f"malformed group header {line!r} (expected [group], [group:vars] or "
                   "[group:children], optionally followed by a # comment)")
        st.group, st.kind = "", "skip"
        return
    name, kind = m.group(1), m.group(2) or "hosts"
    if kind not in ("hosts", "vars", "children"):
        tree.error(loc, f"[{name}:{kind}]", "unknown section type (use :vars or :children)")
        st.group, st.kind = "", "skip"
        return
    if name not in tree.groups and kind == "vars":
        st.pending.setdefault(name, _Pending("vars", loc))
    tree.group(name, loc)
    st.group, st.kind = name, kind
    if kind != "vars" and name in st.pending:
        _declared(name, st, tree)


def _declared(name: str, st: _State, tree: Tree) -> None:
    decl = st.pending.pop(name)
    if decl.kind == "children":
        for parent in decl.parents:
            tree.add_child(parent, name, decl.location)


def _var(line: str, loc: Location, st: _State, tree: Tree) -> None:
    key, sep, text = line.partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key:
        tree.error(loc, f"[{st.group}:vars]", f"expected key=value, got {line!r}")
        return
    where = f"[{st.group}:vars].{key}"
    value = literal(text)
    if isinstance(value, str) and re.search(r"\s[#;]", value):
        tree.problems.append(Problem(loc, where, "the ' #...' after the value is part of it (Ansible keeps "
                                     "comments in :vars values); put comments on their own line", "warning"))
    tree.set_group_var(st.group, key, Value(value, loc, where))


def _child(line: str, loc: Location, st: _State, tree: Tree) -> None:
    m = _CHILD.fullmatch(line)
    if not m:
        tree.error(loc, f"[{st.group}:children]", f"expected a group name, got {line!r}")
        return
    child = m.group(1)
    if child in tree.groups:
        tree.add_child(st.group, child, loc)
    else:
        st.pending.setdefault(child, _Pending("children", loc)).parents.append(st.group)


def _split(line: str, loc: Location, tree: Tree) -> list[str] | None:
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        tree.error(loc, "inventory", f"cannot split line: {exc}")
        return None


def _hosts(line: str, loc: Location, st: _State, tree: Tree) -> None:
    if st.kind == "skip":
        return
    words = _split(line, loc, tree)
    if not words:
        return
    pattern, *pairs = words
    host_vars: list[tuple[str, Any]] = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            tree.error(loc, pattern, f"expected key=value host variable, got {pair!r}")
            return
        host_vars.append((key, literal(text)))
    names = _expand(pattern, loc, tree)
    for name in names:
        host = tree.add_host(name, st.group, loc)
        for key, value in host_vars:
            tree.set_host_var(host, key, Value(value, loc, f"{name}.{key}"))


def _expand(pattern: str, loc: Location, tree: Tree) -> list[str]:
    host, port = split_port(pattern)
    if pattern.endswith(":") and port is None:
        tree.error(loc, pattern, "a host pattern ending in ':' (Ansible reserves ':' for a port)")
        return []
    try:
        names = expand(host)
    except PatternError as exc:
        tree.error(loc, pattern, str(exc))
        return []
    if "---" in (n.strip() for n in names):
        tree.error(loc, pattern, "'---' as a host name: is this a YAML file? Name it .yaml")
        return []
    return names


def literal(text: str) -> Any:
    """An INI value as Ansible types it: a Python literal when it parses as one, else the text itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _finish(st: _State, tree: Tree) -> None:
    for name, decl in st.pending.items():
        if decl.kind == "vars":
            tree.error(decl.location, f"[{name}:vars]", f"no group {name!r}: Ansible refuses vars for a group "
                       f"that has no [{name}] or [{name}:children] section")
        else:
            tree.error(decl.location, f"[{decl.parents[-1]}:children]",
                       f"no group named {name!r} (Ansible refuses an undefined child group)")
    tree.finish()
