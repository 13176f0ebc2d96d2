"""The resolved Ansible group/host tree, every variable with its source, and Ansible's variable precedence.

Readers of Ansible formats (INI, YAML, ``ansible-inventory --list`` JSON) fill a :class:`Tree` the way
ansible-core's inventory fills its groups and hosts; :meth:`Tree.finish` then reconciles it as Ansible does
(parentless groups become children of ``all``, hosts in no group land in ``ungrouped``), and
:meth:`Tree.host_vars` merges a host's variables in Ansible's order: the ``all`` group, then every group the
host belongs to (directly or through ``:children``) sorted by depth, ``ansible_group_priority`` and name,
then the host's own variables, each later one replacing the earlier; group_vars/ and host_vars/ files
(varsdirs.py) come after the inventory's own group vars and after the host's own, as in ansible-core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubeha.errors import Location, Problem
from kubeha.inventory.raw import Value

PRIORITY_KEY = "ansible_group_priority"
# Host variables that say which node a host is and what it does. Ansible merges every line (and YAML entry)
# of one host, the later value winning; two lines of one host that disagree on one of these are two nodes
# somebody meant to write (a copy-paste slip), and the merge would silently drop one: kubeha refuses them.
IDENTITY_KEYS = {"name": "name", "ip": "address", "address": "address", "ansible_host": "ansible_host",
                 "role": "role", "lb": "state", "state": "state", "priority": "priority"}


@dataclass
class Group:
    """One Ansible group: its direct hosts and children in declaration order, and its own variables."""

    name: str
    location: Location
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    vars: dict[str, Value] = field(default_factory=dict)
    priority: int = 1
    file_vars: dict[str, Value] = field(default_factory=dict)  # from group_vars/ (varsdirs.py)


@dataclass
class Host:
    """One Ansible host (however many lines name it): where it first appears, its own variables."""

    name: str
    location: Location
    vars: dict[str, Value] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # direct memberships
    path: str = ""  # how messages name it (the host name unless the reader says otherwise)
    file_vars: dict[str, Value] = field(default_factory=dict)  # from host_vars/ (varsdirs.py)


@dataclass
class Tree:
    """Groups and hosts as Ansible resolves them, plus the problems found while reading."""

    path: str
    format: str
    groups: dict[str, Group] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unreadable: bool = False
    _depth: dict[str, int] = field(default_factory=dict)
    _order: dict[tuple[str, ...], list[str]] = field(default_factory=dict)  # host_groups by direct groups

    def __post_init__(self) -> None:
        """Ansible's two implicit groups exist from the start."""
        for name in ("all", "ungrouped"):
            self.group(name, Location(self.path, 0))

    def error(self, loc: Location, path: str, message: str) -> None:
        """Record an error at ``loc``."""
        self.problems.append(Problem(loc, path, message))

    def group(self, name: str, loc: Location) -> Group:
        """The group called ``name``, created at ``loc`` if new."""
        grp = self.groups.get(name)
        if grp is None:
            grp = self.groups[name] = Group(name, loc)
        elif not grp.location.line:  # an implicit group (all, ungrouped): where the file first names it
            grp.location = loc
        return grp

    def add_host(self, name: str, group: str, loc: Location) -> Host:
        """Put host ``name`` in ``group`` (a repeated host is the same host: its variables merge)."""
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = Host(name, loc)
        grp = self.groups[group]
        if name not in grp.hosts:
            grp.hosts.append(name)
            host.groups.append(group)
        return host

    def set_host_var(self, host: Host, key: str, val: Value) -> None:
        """A variable from one of ``host``'s lines (or YAML entries).

        A line that changes the name, address, role or priority another line set is an error naming both
        lines (Ansible would silently keep the later one).
        """
        canon = IDENTITY_KEYS.get(key)
        if canon is not None:
            for okey, old in host.vars.items():
                if IDENTITY_KEYS.get(okey) == canon and old.location != val.location and old.value != val.value:
                    self.error(val.location, val.where or key, f"{host.name} is also on line {old.location.line} "
                               f"with {okey}={old.value!r}: Ansible merges both into one host, and this "
                               f"{key}={val.value!r} would silently win; if these are two nodes, give each its "
                               "own host name or address")
                    break
        host.vars[key] = val

    def add_child(self, parent: str, child: str, loc: Location) -> None:
        """Make ``child`` a child of ``parent``; a loop is refused, as Ansible refuses it."""
        if child == parent or parent in self.descendants(child):
            self.error(loc, f"[{parent}:children]", f"adding {child!r} to {parent!r} makes a loop of groups "
                       "(Ansible refuses it too)")
            return
        pgrp, cgrp = self.groups[parent], self.groups[child]
        if child not in pgrp.children:
            pgrp.children.append(child)
            cgrp.parents.append(parent)

    def set_group_var(self, group: str, key: str, val: Value) -> None:
        """A group variable; ``ansible_group_priority`` sets the group's priority instead, as in Ansible."""
        if key == PRIORITY_KEY:
            prio = val.value
            if isinstance(prio, str) and prio.strip().lstrip("+-").isdigit():
                prio = int(prio)
            if isinstance(prio, bool) or not isinstance(prio, int):
                self.error(val.location, val.where or key, f"{PRIORITY_KEY} must be an integer")
                return
            self.groups[group].priority = prio
            return
        self.groups[group].vars[key] = val

    def finish(self) -> None:
        """Reconcile as Ansible does after parsing: top-level groups under ``all``, lone hosts in ``ungrouped``."""
        for name, grp in self.groups.items():
            if name != "all" and not grp.parents:
                self.add_child("all", name, grp.location)
        ungrouped = self.groups["ungrouped"]
        for name, host in self.hosts.items():
            others = [g for g in host.groups if g not in ("all", "ungrouped")]
            if others and "ungrouped" in host.groups:
                host.groups.remove("ungrouped")
                ungrouped.hosts.remove(name)
            elif not others and "ungrouped" not in host.groups:
                self.add_host(name, "ungrouped", host.location)
        self._depth, self._order = {}, {}

    def descendants(self, name: str) -> list[str]:
        """``name``'s child groups, breadth first in declaration order, each once."""
        out: list[str] = []
        todo = list(self.groups[name].children)
        while todo:
            nxt = todo.pop(0)
            if nxt not in out and nxt != name:
                out.append(nxt)
                todo.extend(self.groups[nxt].children)
        return out

    def ancestors(self, name: str) -> set[str]:
        """Every group ``name`` is in through ``:children``."""
        seen: set[str] = set()
        todo = list(self.groups[name].parents)
        while todo:
            nxt = todo.pop()
            if nxt not in seen:
                seen.add(nxt)
                todo.extend(self.groups[nxt].parents)
        return seen

    def depth(self, name: str) -> int:
        """Ansible's group depth: 0 for ``all``, else one more than the deepest parent."""
        if name not in self._depth:
            parents = self.groups[name].parents
            self._depth[name] = 1 + max(self.depth(p) for p in parents) if parents else 0
        return self._depth[name]

    def members(self, name: str) -> list[str]:
        """The hosts in group ``name`` and its descendants: its own first, then each child's, in order."""
        out: dict[str, None] = {}
        for grp in (name, *self.descendants(name)):
            out.update(dict.fromkeys(self.groups[grp].hosts))
        return list(out)

    def host_groups(self, host: str) -> list[str]:
        """Every group ``host`` is in (directly or through children), in Ansible's precedence order."""
        direct = tuple(self.hosts[host].groups)
        if direct not in self._order:  # 10,000 hosts in 40 racks share 40 orders
            groups: set[str] = set()
            for grp in direct:
                groups |= {grp, *self.ancestors(grp)}
            groups.discard("all")
            self._order[direct] = ["all", *sorted(groups, key=lambda g: (self.depth(g), self.groups[g].priority, g))]
        return self._order[direct]

    def host_vars(self, host: str) -> dict[str, Value]:
        """The host's variables after Ansible's precedence (ansible-core's default VARIABLE_PRECEDENCE).

        The inventory's own group vars (all, then groups by depth, priority, name), then group_vars/ files in
        the same order, then the host's own vars, then its host_vars/ files.
        """
        merged: dict[str, Value] = {}
        groups = self.host_groups(host)
        for grp in groups:
            merged.update(self.groups[grp].vars)
        for grp in groups:
            merged.update(self.groups[grp].file_vars)
        merged.update(self.hosts[host].vars)
        merged.update(self.hosts[host].file_vars)
        return merged
