"""Ansible's YAML inventory format (``all: {hosts, children, vars}``), as ansible-core's yaml plugin reads it.

The result is a Tree. Host keys are host patterns (ranges, ``host:port``) like in INI;
values are typed by YAML (1.1, as PyYAML's safe loader, which Ansible uses). Lines are kept.
"""

from __future__ import annotations

import yaml

from kubeha.inventory.patterns import PatternError, expand, split_port
from kubeha.inventory.raw import Value, suggest
from kubeha.inventory.tree import Tree
from kubeha.inventory.yamlnodes import NULL_TAG, STR_TAG, construct, pairs
from kubeha.inventory.yamlnodes import loc as node_loc

SECTIONS = ("vars", "children", "hosts")


def read_ansible_yaml(root: yaml.MappingNode, tree: Tree) -> None:
    """Fill ``tree`` from the document's top-level mapping of groups."""
    for name, node in pairs(root, tree, "inventory"):
        if name == "plugin":
            tree.error(node_loc(tree, node), "plugin", "an inventory plugin's configuration, not an inventory: "
                       "feed kubeha `ansible-inventory -i FILE --list` output (JSON) instead")
            continue
        _group(name, node, tree)
    tree.finish()


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG


def _group(name: str, node: yaml.Node, tree: Tree) -> str | None:
    loc = node_loc(tree, node)
    if not isinstance(node, yaml.MappingNode) and not _is_null(node):
        tree.error(loc, name, "a group must be a mapping of hosts, children and vars (Ansible skips it)")
        return None
    tree.group(name, loc)
    if _is_null(node):
        return name
    assert isinstance(node, yaml.MappingNode)
    sections = dict(pairs(node, tree, name))
    for key in sections:
        if key not in SECTIONS:
            tree.error(node_loc(tree, sections[key]), f"{name}.{key}",
                       "only hosts, children and vars belong in a group (Ansible skips this key)"
                       + suggest(key, SECTIONS))
    for key in SECTIONS:  # Ansible's order: vars, children, hosts
        sub = sections.get(key)
        if sub is None or _is_null(sub):
            continue
        if isinstance(sub, yaml.ScalarNode) and sub.tag == STR_TAG and key != "vars":
            sub = yaml.MappingNode("tag:yaml.org,2002:map", [(sub, yaml.ScalarNode(NULL_TAG, ""))])
        if not isinstance(sub, yaml.MappingNode):
            tree.error(node_loc(tree, sub), f"{name}.{key}", "must be a mapping")
            continue
        _SECTION_READERS[key](name, sub, tree)
    return name


def _vars(group: str, node: yaml.MappingNode, tree: Tree) -> None:
    for key, vnode in pairs(node, tree, f"{group}.vars"):
        where = f"{group}.vars.{key}"
        ok, value = construct(vnode, tree, where)
        if ok:
            tree.set_group_var(group, key, Value(value, node_loc(tree, vnode), where))


def _children(group: str, node: yaml.MappingNode, tree: Tree) -> None:
    for child, cnode in pairs(node, tree, f"{group}.children"):
        made = _group(child, cnode, tree)
        if made is not None:
            tree.add_child(group, made, node_loc(tree, cnode))


def _hosts(group: str, node: yaml.MappingNode, tree: Tree) -> None:
    for knode, vnode in node.value:
        loc = node_loc(tree, knode)
        if not isinstance(knode, yaml.ScalarNode) or knode.tag != STR_TAG:
            tree.error(loc, f"{group}.hosts", "a host pattern must be a string (quote numbers)")
            continue
        pattern = knode.value
        host, _port = split_port(pattern)
        try:
            names = expand(host)
        except PatternError as exc:
            tree.error(loc, f"{group}.hosts", str(exc))
            continue
        hvars: list[tuple[str, yaml.Node]] = []
        if isinstance(vnode, yaml.MappingNode):
            hvars = pairs(vnode, tree, f"{group}.hosts.{pattern}")
        elif not _is_null(vnode):
            tree.error(node_loc(tree, vnode), f"{group}.hosts.{pattern}",
                       "a host's value must be a mapping of variables")
            continue
        for name in names:
            hobj = tree.add_host(name, group, loc)
            for key, hv in hvars:
                ok, value = construct(hv, tree, f"{name}.{key}")
                if ok:
                    tree.set_host_var(hobj, key, Value(value, node_loc(tree, hv), f"{name}.{key}"))


_SECTION_READERS = {"vars": _vars, "children": _children, "hosts": _hosts}
