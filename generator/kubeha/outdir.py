"""The node-folder output directory of ``kubeha gen userdata``: per cluster, recorded, written atomically.

``out/<node>/<file>`` (dirs 0700, files 0600: user-data can hold secrets). ``out/.kubeha-manifest.json``
records what kubeha wrote there and for which cluster. A directory is one cluster's: a run for another
cluster never writes into it, replaces or prunes anything in it (issue 20). Without ``-o`` each cluster has
its own place, ``bundles/out/userdata/<cluster>/``.

A manifest written before kubeha recorded the cluster is read by what its folders say: when a folder's
meta-data names another cluster (``instance-id: kubeha-<cluster>.<node>``), the directory is that cluster's
too and refused the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubeha import __version__, statefiles
from kubeha.errors import OutputError

MANIFEST = ".kubeha-manifest.json"
DEFAULT_ROOT = Path("bundles/out/userdata")
_TEMP_PREFIX = ".kubeha-tmp-"
_NODE_FILES = {"user-data", "meta-data", "network-config", "config.ign"}


def default_output(cluster: str) -> Path:
    """Where a cluster's node folders go without ``-o``."""
    return DEFAULT_ROOT / cluster


@dataclass(frozen=True)
class TreeReport:
    """What :func:`write_tree` did: the node folders written and the stale ones removed."""

    written: list[Path]
    removed: list[str]


@dataclass(frozen=True)
class Manifest:
    """A directory's record: the entries kubeha wrote and the cluster they are for ("" when not recorded)."""

    entries: list[str]
    cluster: str = ""


def read_manifest_file(out: Path) -> Manifest:
    """The record in ``out`` (empty when there is no usable manifest)."""
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return Manifest([])
    if not isinstance(data, dict):
        return Manifest([])
    entries = data.get("entries")
    cluster = data.get("cluster")
    return Manifest([e for e in entries if isinstance(e, str) and e and "/" not in e and not e.startswith(".")]
                    if isinstance(entries, list) else [], cluster if isinstance(cluster, str) else "")


def read_manifest(out: Path) -> list[str]:
    """The entries a previous run recorded in ``out``."""
    return read_manifest_file(out).entries


def _folder_cluster(folder: Path, node: str) -> str | None:
    """The cluster a node folder's meta-data names (``instance-id: kubeha-<cluster>.<node>``), else None."""
    try:
        text = (folder / "meta-data").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "instance-id" and value.startswith("kubeha-") and value.endswith(f".{node}"):
            return value[len("kubeha-"):-len(node) - 1]
    return None


def _only_node_files(folder: Path) -> bool:
    try:
        return folder.is_dir() and not folder.is_symlink() and set(os.listdir(folder)) <= _NODE_FILES
    except OSError:
        return False


def _foreign(out: Path, owned: set[str], nodes: set[str], cluster: str) -> list[str]:
    """Entries of an existing ``out`` that kubeha did not write for this cluster (manifest and temp dirs aside).

    A folder named after one of this run's nodes that holds only node documents, none naming another
    cluster, counts as kubeha's: an output directory written before manifests existed is adopted.
    """
    try:
        names = os.listdir(out)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n != MANIFEST and not n.startswith(_TEMP_PREFIX) and n not in owned
                  and not (n in nodes and _only_node_files(out / n)
                           and _folder_cluster(out / n, n) in (None, cluster)))


def _owned(out: Path, cluster: str) -> set[str]:
    """The entries this cluster owns in ``out``; OutputError when the directory is another cluster's."""
    record = read_manifest_file(out)
    others = {record.cluster} if record.cluster else {_folder_cluster(out / e, e) for e in record.entries}
    others -= {None, "", cluster}
    if others and cluster:
        raise OutputError(f"-o {out}: holds cluster {', '.join(sorted(o or '' for o in others))}'s node folders "
                          f"({MANIFEST}); a run for cluster {cluster} never writes into or prunes another cluster's "
                          f"output (--force included): choose another directory, e.g. {default_output(cluster)}")
    return set(record.entries)


def _write_node(parent_fd: int, node: str, files: Mapping[str, bytes]) -> None:
    os.mkdir(node, 0o700, dir_fd=parent_fd)
    node_fd = os.open(node, os.O_RDONLY | os.O_DIRECTORY, dir_fd=parent_fd)
    try:
        for name, data in files.items():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=node_fd)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
    finally:
        os.close(node_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_manifest(out_fd: int, entries: list[str], command: str, cluster: str) -> None:
    record = {"written_by": f"kubeha {__version__}", "command": command, "entries": sorted(entries)}
    if cluster:
        record["cluster"] = cluster
    data = json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"
    statefiles.replace_at(out_fd, MANIFEST, data)  # a fresh O_EXCL|O_NOFOLLOW temporary, renamed over


def write_tree(out: Path, docs: Mapping[str, Mapping[str, bytes]], *, force: bool = False, prune: bool = True,
               command: str = "gen userdata", cluster: str = "") -> TreeReport:
    """Write ``out/<node>/<file>`` for ``cluster``, node by node atomically.

    A directory recorded for another cluster is refused (OutputError), ``force`` or not. A directory holding
    entries kubeha did not write is refused unless ``force`` (they are then left alone); with ``prune``,
    folders an earlier run wrote for this cluster's nodes that are gone are removed. Everything is written
    under a temporary directory inside ``out`` first; each node directory is then renamed into place, so no
    node directory is ever half-written.
    """
    owned = _owned(out, cluster)
    foreign = _foreign(out, owned, set(docs), cluster)
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputError(f"-o {out}: holds files kubeha did not write ({shown}); choose an empty or new "
                          "directory, or pass --force")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=out))
    except OSError as exc:
        raise OutputError(f"-o {out}: cannot write: {exc.strerror}") from None
    removed = sorted(owned - set(docs) - set(foreign)) if prune else []
    written = []
    tmp_fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    out_fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for node, files in docs.items():
            _write_node(tmp_fd, node, files)  # relative to open directories: 10,000 nodes stay cheap
        for node in docs:
            with contextlib.suppress(FileNotFoundError):  # an older run's output for this node
                os.rename(node, f".old-{node}", src_dir_fd=out_fd, dst_dir_fd=tmp_fd)
            os.rename(node, node, src_dir_fd=tmp_fd, dst_dir_fd=out_fd)
            written.append(out / node)
        for node in removed:
            with contextlib.suppress(FileNotFoundError):
                os.rename(node, f".gone-{node}", src_dir_fd=out_fd, dst_dir_fd=tmp_fd)
        _write_manifest(out_fd, sorted((owned - set(removed)) | set(docs)), command, cluster)
    except OSError as exc:
        raise OutputError(f"-o {out}: cannot write: {exc.strerror}") from None
    finally:
        os.close(tmp_fd)
        os.close(out_fd)
        shutil.rmtree(tmp, ignore_errors=True)
    return TreeReport(written, removed)
