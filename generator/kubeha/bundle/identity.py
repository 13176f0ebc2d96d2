"""A cluster's bundle identity, kept beside its inventory like the VRRP secret: its id and the last serial.

``<inventory>.cluster-id`` holds a random 128-bit id in hex, generated once (0600); every bundle carries it
and every node's user-data names it, so a node refuses another cluster's bundle even when the same key signs
both. ``<inventory>.bundle-serial`` holds the last serial packed; ``bundle pack`` without ``--serial`` packs
one more, and a serial never goes down (an explicit lower ``--serial`` is refused).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from kubeha.errors import InvalidInput, Location, Problem

ID_SUFFIX = ".cluster-id"
SERIAL_SUFFIX = ".bundle-serial"
ID_RE = re.compile(r"[0-9a-f]{32}")
MAX_SERIAL = (1 << 53) - 1


def _beside(inventory: Path, suffix: str) -> Path:
    return inventory.with_name(inventory.name + suffix)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _read(path: Path, pattern: re.Pattern[str], what: str) -> str | None:
    """The stripped content of ``path`` (None when missing); anything not matching ``pattern`` is an error."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput([Problem(Location(str(path), 1), what, f"cannot read: {exc}")]) from None
    value = text.removesuffix("\n")
    if not pattern.fullmatch(value):
        raise InvalidInput([Problem(Location(str(path), 1), what, f"not a valid {what}")])
    if path.stat().st_mode & 0o077:
        raise InvalidInput([Problem(Location(str(path), 1), what, "readable by group or others: chmod 600 it")])
    return value


def cluster_id(inventory: Path, *, create: bool = True) -> str:
    """The cluster id stored beside ``inventory``, generated once when missing and ``create``."""
    path = _beside(inventory, ID_SUFFIX)
    value = _read(path, ID_RE, "cluster id")
    if value is None:
        if not create:
            raise InvalidInput([Problem(Location(str(path)), "cluster id", "missing (pack a bundle first)")])
        value = secrets.token_hex(16)
        _write_private(path, value + "\n")
    return value


def last_serial(inventory: Path) -> int:
    """The last serial packed for this cluster (0 when none)."""
    value = _read(_beside(inventory, SERIAL_SUFFIX), re.compile(r"[1-9][0-9]{0,15}"), "bundle serial")
    return int(value) if value else 0


def next_serial(inventory: Path, requested: int | None) -> int:
    """The serial to pack: ``requested``, or one more than the last; never lower than the last."""
    last = last_serial(inventory)
    serial = last + 1 if requested is None else requested
    loc = Location(str(_beside(inventory, SERIAL_SUFFIX)))
    if not 1 <= serial <= MAX_SERIAL:
        raise InvalidInput([Problem(loc, "serial", f"{serial} is not between 1 and {MAX_SERIAL}")])
    if serial < last:
        raise InvalidInput([Problem(loc, "serial", f"{serial} is lower than the last packed serial {last}")])
    return serial


def record_serial(inventory: Path, serial: int) -> None:
    """Remember ``serial`` as the last packed (after the bundle is in place)."""
    if serial > last_serial(inventory):
        _write_private(_beside(inventory, SERIAL_SUFFIX), f"{serial}\n")
