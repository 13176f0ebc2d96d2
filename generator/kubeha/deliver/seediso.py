"""NoCloud seed ISOs: ``user-data``, ``meta-data``, optional ``network-config`` and bundle, written with pycdlib.

Layout (what cloud-init's NoCloud datasource looks for on a volume labelled ``cidata``)::

    /user-data  /meta-data  [/network-config]  [/kubeha-bundle/<the bundle directory, recursively>]

The ISO carries Rock Ridge (1.09) and Joliet names, so Linux sees the real names; the plain ISO 9660 names
are mangled 8.3 upper case (``USER_DAT.``) for the oldest readers. The bundle sits beside the seed files
under ``/kubeha-bundle/`` so the node's first-boot step finds it on the same medium (``/dev/sr0``).

Byte-stable: pycdlib stamps volume and file dates from ``time.time()`` in local time; while building, its
modules see a clock frozen at ``SOURCE_DATE_EPOCH`` (default 2020-01-01T00:00:00Z) in UTC, so the same inputs
give the same bytes on any machine and in any time zone. Written to a temporary file beside the target and
renamed at the end; the ISO is mode 0600 because user-data holds the VRRP secret.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from kubeha.errors import InvalidInput, Location, Problem

VOLUME_LABEL = "cidata"
BUNDLE_DIR = "kubeha-bundle"
DEFAULT_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z; overridden by SOURCE_DATE_EPOCH
_CLOCK_LOCK = threading.Lock()
_NOT_D_CHAR = re.compile(r"[^A-Z0-9_]")


def build_epoch() -> int:
    """The timestamp written into the ISO: ``$SOURCE_DATE_EPOCH`` or a fixed date."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else DEFAULT_EPOCH


def _frozen_time_module(epoch: int) -> types.SimpleNamespace:
    """A stand-in for the ``time`` module: a fixed ``time()`` and UTC as the local zone."""
    return types.SimpleNamespace(
        time=lambda: float(epoch),
        localtime=lambda secs=None: time.gmtime(epoch if secs is None else secs),
        gmtime=time.gmtime,
        strftime=time.strftime,
        strptime=time.strptime,
        struct_time=time.struct_time,
        mktime=time.mktime,
    )


@contextmanager
def frozen_clock(epoch: int) -> Iterator[None]:
    """Make every pycdlib module see a frozen UTC clock (only pycdlib's own ``time`` references change)."""
    modules = [m for name, m in list(sys.modules.items()) if name.startswith("pycdlib") and m is not None]
    patched = [m for m in modules if getattr(m, "time", None) is time]
    with _CLOCK_LOCK:
        fake = _frozen_time_module(epoch)
        for module in patched:
            module.time = fake  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for module in patched:
                module.time = time  # type: ignore[attr-defined]


class _Names:
    """Mangled ISO 9660 names, unique within each directory."""

    def __init__(self) -> None:
        self.used: dict[str, set[str]] = {}

    def mangle(self, parent: str, name: str, is_dir: bool) -> str:
        base, _, ext = (name, "", "") if is_dir else name.rpartition(".") if "." in name else (name, "", "")
        base = _NOT_D_CHAR.sub("_", base.upper())[:8] or "_"
        ext = _NOT_D_CHAR.sub("_", ext.upper())[:3]
        used = self.used.setdefault(parent, set())
        candidate, counter = base, 0
        while self._full(candidate, ext, is_dir) in used:
            counter += 1
            suffix = f"_{counter}"
            candidate = base[: 8 - len(suffix)] + suffix
        full = self._full(candidate, ext, is_dir)
        used.add(full)
        return full

    @staticmethod
    def _full(base: str, ext: str, is_dir: bool) -> str:
        return base if is_dir else f"{base}.{ext};1"


class _Builder:
    """Adds files and directories with their three names (ISO 9660, Rock Ridge, Joliet)."""

    def __init__(self, iso: pycdlib.PyCdlib) -> None:
        self.iso = iso
        self.names = _Names()
        self.iso_dirs: dict[str, str] = {"/": "/"}

    def _paths(self, parent: str, name: str, is_dir: bool) -> tuple[str, str]:
        iso_parent = self.iso_dirs[parent]
        iso_path = iso_parent.rstrip("/") + "/" + self.names.mangle(iso_parent, name, is_dir)
        return iso_path, parent.rstrip("/") + "/" + name

    def add_dir(self, parent: str, name: str) -> str:
        iso_path, joliet = self._paths(parent, name, True)
        self.iso.add_directory(iso_path, rr_name=name, joliet_path=joliet, file_mode=0o40555)
        self.iso_dirs[joliet] = iso_path
        return joliet

    def add_bytes(self, parent: str, name: str, data: bytes, keep: list[BytesIO]) -> None:
        iso_path, joliet = self._paths(parent, name, False)
        fp = BytesIO(data)
        keep.append(fp)  # pycdlib reads it again while writing
        self.iso.add_fp(fp, len(data), iso_path, rr_name=name, joliet_path=joliet, file_mode=0o100444)

    def add_host_file(self, parent: str, source: Path) -> None:
        iso_path, joliet = self._paths(parent, source.name, False)
        mode = 0o100555 if os.access(source, os.X_OK) else 0o100444
        self.iso.add_file(str(source), iso_path, rr_name=source.name, joliet_path=joliet, file_mode=mode)

    def add_tree(self, parent: str, source: Path, include: Callable[[str], bool], prefix: str = "") -> None:
        for entry in sorted(source.iterdir(), key=lambda p: p.name):
            rel = prefix + entry.name
            if not include(rel):
                continue
            if entry.is_symlink() or not (entry.is_dir() or entry.is_file()):
                message = "only regular files and directories can go on a seed ISO"
                raise InvalidInput([Problem(Location(str(entry)), "bundle", message)])
            if entry.is_dir():
                self.add_tree(self.add_dir(parent, entry.name), entry, include, rel + "/")
            else:
                self.add_host_file(parent, entry)


def _build(iso: pycdlib.PyCdlib, seed: dict[str, bytes], bundle_dir: Path | None, keep: list[BytesIO],
           include: Callable[[str], bool], label: str = VOLUME_LABEL) -> None:
    iso.new(interchange_level=3, vol_ident=label, sys_ident="LINUX", app_ident_str="kubeha",
            joliet=3, rock_ridge="1.09")
    builder = _Builder(iso)
    for name, data in seed.items():
        builder.add_bytes("/", name, data, keep)
    if bundle_dir is not None:
        builder.add_tree(builder.add_dir("/", BUNDLE_DIR), bundle_dir, include)


def _atomic_write(out: Path, write: Callable[[Any], None]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_seed_iso(
    out: Path,
    *,
    user_data: bytes,
    meta_data: bytes,
    network_config: bytes | None = None,
    bundle_dir: Path | None = None,
    include: Callable[[str], bool] | None = None,
) -> None:
    """Write one node's NoCloud seed ISO, atomically and byte-stably.

    Args:
        out: the ISO to write (replaced atomically; mode 0600).
        user_data: the node's user-data.
        meta_data: the node's meta-data (``instance-id`` etc.).
        network_config: a network-config (v1 or v2), when the node has static addressing.
        bundle_dir: a bundle directory to copy under ``/kubeha-bundle/``.
        include: which of its paths (relative, ``nodes/master1``...) go on this ISO; default all.

    Raises:
        InvalidInput: the bundle is missing or holds something pycdlib cannot store.
    """
    if bundle_dir is not None and not bundle_dir.is_dir():
        raise InvalidInput([Problem(Location(str(bundle_dir)), "bundle", "not a directory")])
    seed = {"meta-data": meta_data, "user-data": user_data}
    if network_config is not None:
        seed["network-config"] = network_config
    iso = pycdlib.PyCdlib()
    keep: list[BytesIO] = []
    try:
        with frozen_clock(build_epoch()):
            _build(iso, seed, bundle_dir, keep, include or (lambda _rel: True))
            _atomic_write(out, iso.write_fp)
    except PyCdlibException as exc:
        raise InvalidInput([Problem(Location(str(out)), "seed-iso", f"cannot build the ISO: {exc}")]) from exc
    finally:
        iso.close()


def write_bundle_iso(out: Path, *, label: str, bundle_dir: Path, files: dict[str, bytes],
                     include: Callable[[str], bool] | None = None) -> None:
    """Write the bundle disk for an Ignition node: volume ``label``, ``/kubeha-bundle/`` and ``files`` at the root.

    The install script finds it with ``KUBEHA_BUNDLE=label:LABEL`` (blkid or /dev/disk/by-label), attached
    as a second disk; ``files`` (the node's config.ign) ride along for whoever provisions the node.
    """
    if not bundle_dir.is_dir():
        raise InvalidInput([Problem(Location(str(bundle_dir)), "bundle", "not a directory")])
    iso = pycdlib.PyCdlib()
    keep: list[BytesIO] = []
    try:
        with frozen_clock(build_epoch()):
            _build(iso, dict(files), bundle_dir, keep, include or (lambda _rel: True), label)
            _atomic_write(out, iso.write_fp)
    except PyCdlibException as exc:
        raise InvalidInput([Problem(Location(str(out)), "seed-iso", f"cannot build the ISO: {exc}")]) from exc
    finally:
        iso.close()
