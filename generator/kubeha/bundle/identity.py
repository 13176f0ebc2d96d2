"""A cluster's bundle identity, kept beside its inventory like the VRRP secret: its id and the last serial.

``<inventory>.cluster-id`` holds a random 128-bit id in hex, generated once (0600); every bundle carries it
and every node's user-data names it, so a node refuses another cluster's bundle even when the same key signs
both. ``<inventory>.bundle-serial`` holds the last serial packed; ``bundle pack`` without ``--serial`` packs
one more, and a serial never goes down (an explicit lower ``--serial`` is refused). Both are read and written
by the rules of :mod:`kubeha.statefiles` (no symlinks, no files of other users, created with O_EXCL).

A new id is announced (where it was made, and that it must stay with the inventory), and it is not made where
an old one evidently existed: a serial file beside the inventory, or a bundle of this cluster in the output
place. Losing the id silently would make every provisioned node refuse every later bundle.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

from kubeha.errors import InvalidInput, Location, Problem
from kubeha.statefiles import CLUSTER_ID, SERIAL, beside, create, read, replace

ID_SUFFIX = CLUSTER_ID.suffix
SERIAL_SUFFIX = SERIAL.suffix
MAX_SERIAL = (1 << 53) - 1


def cluster_id(inventory: Path) -> str | None:
    """The cluster id stored beside ``inventory`` (None when there is none)."""
    return read(beside(inventory, CLUSTER_ID), CLUSTER_ID)


def _old_bundle(output: Path, name: str, cluster: str) -> str | None:
    """A description of a bundle of ``cluster`` already at ``output/name`` (None when there is none)."""
    try:
        doc = json.loads((output / name / "bundle.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = None
    except (OSError, ValueError):
        doc = {}
    if isinstance(doc, dict) and doc.get("cluster") == cluster:
        return (f"{output / name / 'bundle.json'} is a bundle of cluster {cluster} (id {doc.get('cluster_id')}, "
                f"serial {doc.get('serial')})")
    if doc is None and (output / f"{name}.tar").exists():
        return f"{output / f'{name}.tar'} is a bundle named {name}"
    return None


def plan_cluster_id(inventory: Path, cluster: str, output: Path, name: str, *, new: bool = False) -> tuple[str, bool]:
    """The cluster id beside ``inventory`` and False, or a fresh one and True when there is none (not yet stored).

    Refused (InvalidInput) when there is none but signs of an old one: a serial file beside the inventory, or
    a bundle of ``cluster`` at ``output/name``, unless ``new`` (``--new-cluster-id``) says a new cluster is
    meant. Store a fresh id with :func:`record_cluster_id` once everything else has been checked.
    """
    path = beside(inventory, CLUSTER_ID)
    value = read(path, CLUSTER_ID)
    if value is not None:
        return value, False
    signs = [f"{beside(inventory, SERIAL)} records serial {last}" for last in [last_serial(inventory)] if last]
    signs += [old for old in [_old_bundle(output, name, cluster)] if old]
    if signs and not new:
        raise InvalidInput([Problem(Location(str(path)), "cluster id", f"missing, but {'; '.join(signs)}: a new "
                                    "id would make the nodes provisioned before refuse every later bundle. Put the "
                                    f"old {path.name} back beside the inventory (the id is in the old bundle.json) "
                                    "and keep it with the inventory (in git), or pass --new-cluster-id to start a "
                                    "new cluster on purpose")])
    return secrets.token_hex(16), True


def record_cluster_id(inventory: Path, cluster: str, value: str, note: Callable[[str], None] | None = None) -> None:
    """Store a new cluster id beside ``inventory`` (O_EXCL: never over one made meanwhile) and say so."""
    path = beside(inventory, CLUSTER_ID)
    create(path, CLUSTER_ID, value)
    if note is not None:
        note(f"made a new cluster id {value} for cluster {cluster} in {path}: keep it and "
             f"{beside(inventory, SERIAL).name} with the inventory (in git); nodes provisioned from this bundle "
             "accept only bundles of this id")


def last_serial(inventory: Path) -> int:
    """The last serial packed for this cluster (0 when none)."""
    value = read(beside(inventory, SERIAL), SERIAL)
    return int(value) if value else 0


def next_serial(inventory: Path, requested: int | None) -> int:
    """The serial to pack: ``requested``, or one more than the last; never lower than the last."""
    last = last_serial(inventory)
    serial = last + 1 if requested is None else requested
    loc = Location(str(beside(inventory, SERIAL)))
    if not 1 <= serial <= MAX_SERIAL:
        raise InvalidInput([Problem(loc, "serial", f"{serial} is not between 1 and {MAX_SERIAL}")])
    if serial < last:
        raise InvalidInput([Problem(loc, "serial", f"{serial} is lower than the last packed serial {last}")])
    return serial


def record_serial(inventory: Path, serial: int) -> None:
    """Remember ``serial`` as the last packed (after the bundle is in place)."""
    path = beside(inventory, SERIAL)
    if read(path, SERIAL) is None:
        create(path, SERIAL, str(serial))
    elif serial > last_serial(inventory):
        replace(path, SERIAL, str(serial))
