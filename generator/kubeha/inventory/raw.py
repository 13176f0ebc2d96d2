"""What every inventory reader produces: :class:`RawInventory`, values with their source, and the key tables.

model.py consumes only this. Readers translate their spellings (``lb=MASTER``, ``ip_interface``, kubespray's
``ip``) to the canonical names in :data:`CLUSTER_KEYS` and :data:`HOST_KEYS`; nothing after them does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeha.errors import Location, Problem

# Canonical cluster keys, and the spellings accepted for each (INI seed names and YAML names).
CLUSTER_KEYS: dict[str, str] = {
    "name": "name",
    "cluster_name": "name",
    "vip": "vip",
    "vip_prefix": "vip_prefix",
    "k8s_version": "kubernetes_version",
    "kubernetes_version": "kubernetes_version",
    "ip_interface": "interface",
    "interface": "interface",
    "lb_port": "lb_port",
    "apiserver_port": "apiserver_port",
    "virtual_router_id": "virtual_router_id",
    "vrid": "virtual_router_id",
    "profile": "profile",
    "vrrp_mode": "vrrp_mode",
    "vip_mode": "vip_mode",
    "health_path": "health_path",
    "weight": "weight",
    "auth_pass": "auth_pass",
    "keepalived_image": "keepalived_image",
    "haproxy_image": "haproxy_image",
    "image_pull_policy": "image_pull_policy",
    "health_port": "health_port",
    "gateway": "gateway",
    "dns": "dns",
    "dns_servers": "dns",
    "preempt": "preempt",
    "preempt_delay": "preempt_delay",
}

# Canonical host keys. ``lbname`` and ``role`` are seed variables kubeha accepts and does not need.
HOST_KEYS: dict[str, str] = {
    "name": "name",
    "address": "address",
    "ip": "address",
    "lb": "state",
    "state": "state",
    "priority": "priority",
    "order": "order",
    "interface": "interface",
    "role": "role",
    "lbname": "lbname",
    "mac": "mac",
}

# Keys holding secrets: a rejected value is never echoed in a message.
SECRET_KEYS = frozenset({"auth_pass"})


@dataclass(frozen=True)
class Value:
    """A value from the inventory, where it was written (file:line) and its path there (for messages).

    ``where`` is empty when the model's own path is good enough (native YAML); Ansible readers set it to
    where the value was written (``[k8s-master:vars].priority``, ``$._meta.hostvars["cp1"].priority``),
    since a value can reach a host through a group.
    """

    value: Any
    location: Location
    where: str = ""


@dataclass
class RawHost:
    """One control-plane or worker host, keys already canonical; ``path`` names it in messages."""

    vars: dict[str, Value]
    location: Location
    group: str
    index: int
    path: str = ""
    no_address: str = "missing address"  # what to say when no address could be found


@dataclass
class RawInventory:
    """What the file says, before validation: cluster-wide vars, masters, workers, and load problems."""

    path: str
    format: str
    cluster: dict[str, Value] = field(default_factory=dict)
    masters: list[RawHost] = field(default_factory=list)
    workers: list[RawHost] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    unreadable: bool = False  # nothing could be parsed: report only why, not every missing value
    masters_reported: bool = False  # the reader already said why there are no masters
    cluster_where: str = "cluster"  # how messages name the cluster-wide settings
    # Where the cluster-wide settings are written ([all:vars], all:, cluster:): a missing one is reported
    # there, or on the file alone when there is no such place.
    settings_at: Location | None = None


def decode(data: bytes, inv: RawInventory) -> str | None:
    """The file as text, or None with a problem (NUL bytes, not UTF-8, empty)."""
    loc = Location(inv.path, 1)
    if b"\0" in data:
        inv.problems.append(Problem(loc, "inventory", "not a text file (contains NUL bytes)"))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        inv.problems.append(Problem(Location(inv.path, line), "inventory", "not valid UTF-8 text"))
        return None
    if not text.strip():
        inv.problems.append(Problem(loc, "inventory", "the file is empty"))
        return None
    return text.removeprefix("\ufeff")


def suggest(word: str, known: object) -> str:
    """``"; did you mean X?"`` when a known word is close to ``word`` (a typo), else ``""``."""
    import difflib  # noqa: PLC0415 - only on the warning path

    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.75)  # type: ignore[call-overload]
    return f"; did you mean {close[0]!r}?" if close else ""
