"""YAML as a node tree, so every value keeps its line: shared by the native and the Ansible YAML readers."""

from __future__ import annotations

from typing import Any, Protocol

import yaml

from kubeha.errors import Location, Problem
from kubeha.inventory.raw import RawInventory

_CONSTRUCTOR = yaml.constructor.SafeConstructor()
STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"


class Sink(Protocol):
    """Where problems go: a RawInventory or a Tree."""

    path: str
    problems: list[Problem]


def load_root(text: str, inv: RawInventory) -> yaml.MappingNode | None:
    """The document's top-level mapping node, or None with a problem (syntax, not a mapping)."""
    loader = yaml.CSafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        return _fail(inv, line, f"YAML does not allow the character U+{exc.character:04X}")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return _fail(inv, mark.line + 1 if mark else 0, f"YAML syntax: {exc.problem}")
    except yaml.YAMLError as exc:
        return _fail(inv, 1, f"YAML: {exc}")
    finally:
        loader.dispose()
    if not isinstance(node, yaml.MappingNode):
        return _fail(inv, node.start_mark.line + 1 if node is not None else 1, "top level must be a mapping")
    return node


def _fail(inv: RawInventory, line: int, message: str) -> yaml.MappingNode | None:
    inv.problems.append(Problem(Location(inv.path, line), "inventory", message))
    inv.unreadable = True
    return None


def loc(inv: Sink, node: yaml.Node) -> Location:
    """Where ``node`` starts."""
    return Location(inv.path, node.start_mark.line + 1)


def pairs(node: yaml.MappingNode, inv: Sink, where: str) -> list[tuple[str, yaml.Node]]:
    """Key/value node pairs of a mapping; non-string and duplicate keys become problems."""
    seen: set[str] = set()
    out = []
    for knode, vnode in node.value:
        if not isinstance(knode, yaml.ScalarNode) or knode.tag != STR_TAG:
            inv.problems.append(Problem(loc(inv, knode), where, "keys must be plain strings"))
            continue
        if knode.value in seen:
            inv.problems.append(Problem(loc(inv, knode), f"{where}.{knode.value}", "duplicate key"))
            continue
        seen.add(knode.value)
        out.append((knode.value, vnode))
    return out


def construct(node: yaml.Node, inv: Sink, where: str) -> tuple[bool, Any]:
    """The Python value of ``node`` as PyYAML's safe loader types it (YAML 1.1, as Ansible reads it)."""
    try:
        return True, _CONSTRUCTOR.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as exc:  # e.g. an unhashable mapping key
        inv.problems.append(Problem(loc(inv, node), where, f"cannot read this value: {exc}"))
        return False, None
