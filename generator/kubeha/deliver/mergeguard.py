"""What a merged user document may not do to kubeha's own part: shadow it, starve it, or exhaust the build host.

The user's documents (``--merge``, ``--merge-dir``) are trusted to configure their nodes, not to take over
kubeha's files or stop its install, and they are read on the build host, so they are bounded:

- **Paths** are compared normalized (``/etc/kubeha//install.env`` is ``/etc/kubeha/install.env``): a user
  file, link or directory may not be one of kubeha's files, a directory one of them lives in (its mode and
  owner decide who can replace the file; a file there breaks it), anything below one of kubeha's files, or
  anything inside kubeha's own directories (any with a ``kubeha`` component, and the drop-in directory of
  each systemd unit kubeha writes).
- **Modules**: a cloud-config that sets ``cloud_init_modules``, ``cloud_config_modules`` or
  ``cloud_final_modules`` must keep ``write_files``, ``runcmd`` and ``scripts_user`` (kubeha's files and its
  install run through them).
- **Input**: at most :data:`MAX_BYTES` read and unpacked per file (gzip bombs stop there), at most
  :data:`MAX_NODES` YAML values after expanding aliases, nesting at most :data:`MAX_DEPTH` deep, no alias
  inside its own anchor; all checked while streaming, before anything is built from the document.
"""

from __future__ import annotations

import contextlib
import posixpath
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeha.errors import InvalidInput, Location, Problem

MAX_BYTES = 4 << 20
MAX_NODES = 100_000
MAX_DEPTH = 64
NEEDED_MODULES = {"cloud_init_modules": "write_files", "cloud_config_modules": "runcmd",
                  "cloud_final_modules": "scripts_user"}
UNIT_DIR = "/etc/systemd/system/"


def _problem(source: str, message: str, line: int = 0, path: str = "merge") -> InvalidInput:
    return InvalidInput([Problem(Location(source, line), path, message)])


def normalize(path: str) -> str:
    """A path as the node resolves it (no ``//``, ``.`` or ``..``; POSIX's leading ``//`` folded too)."""
    return posixpath.normpath("/" + path.lstrip("/")) if path.startswith("/") else posixpath.normpath(path)


def _ancestors(path: str) -> Iterable[str]:
    parent = posixpath.dirname(path)
    while parent not in ("/", ""):
        yield parent
        parent = posixpath.dirname(parent)


@dataclass
class Guard:
    """kubeha's files (normalized) and what follows from them: their directories, kubeha's own directories."""

    files: dict[str, str] = field(default_factory=dict)  # path -> who writes it (for messages)
    parents: dict[str, str] = field(default_factory=dict)  # directory -> one kubeha file in it
    reserved: dict[str, str] = field(default_factory=dict)  # directory -> why it is kubeha's

    @classmethod
    def of(cls, paths: Iterable[str], owner: str) -> Guard:
        """The guard for kubeha's files ``paths`` (written by ``owner``, e.g. ``kubeha (master1)``)."""
        guard = cls()
        for raw in paths:
            path = normalize(raw)
            guard.files[path] = owner
            for parent in _ancestors(path):
                guard.parents.setdefault(parent, path)
                if "kubeha" in parent.split("/"):
                    guard.reserved.setdefault(parent, f"kubeha's directory {parent}")
            if path.startswith(UNIT_DIR):
                guard.reserved.setdefault(f"{path}.d", f"the drop-in directory of kubeha's unit {path}")
        return guard

    def clash(self, raw: str) -> str | None:
        """Why a user entry (file, link or directory) at ``raw`` would shadow kubeha's, or None."""
        path = normalize(raw)
        spelled = "" if path == raw else f" (as {raw})"
        if path in self.files:
            return f"{path}{spelled} is written by {self.files[path]}"
        if path in self.parents:
            return (f"{path}{spelled} is the directory kubeha's {self.parents[path]} lives in: its type, mode and "
                    "owner are kubeha's")
        if path in self.reserved:
            return f"{path}{spelled} is {self.reserved[path]}"
        for parent in _ancestors(path):
            if parent in self.files:
                return f"{path}{spelled} is below kubeha's file {parent}"
            if parent in self.reserved:
                return f"{path}{spelled} is inside {self.reserved[parent]}"
        return None


def check_modules(source: str, config: dict[str, Any]) -> list[Problem]:
    """A cloud-config's module lists must keep the modules kubeha's files and install run through."""
    problems = []
    for key, needed in NEEDED_MODULES.items():
        if key not in config:
            continue
        entries = config[key] if isinstance(config[key], list) else []
        names = {str(e[0] if isinstance(e, list) and e else e).replace("-", "_") for e in entries}
        if needed not in names:
            problems.append(Problem(Location(source), key, f"leaves out {needed}, which kubeha's "
                                    f"{'files need' if needed == 'write_files' else 'install needs'}: add it, "
                                    "or leave the list out"))
    return problems


def gunzip(source: str, data: bytes) -> bytes:
    """Unpack gzip ``data`` (every member), refusing more than :data:`MAX_BYTES` of output."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, MAX_BYTES + 1 - len(out))
        except zlib.error as exc:
            raise _problem(source, f"gzip data that does not unpack: {exc}") from None
        if len(out) > MAX_BYTES:
            raise _problem(source, f"unpacks to more than {MAX_BYTES >> 20} MiB (the limit for a merged file)")
        if not inflater.eof:
            raise _problem(source, "gzip data that does not unpack: truncated")
        data = inflater.unused_data
        if data and data[:2] != b"\x1f\x8b":
            break
    return bytes(out)


def check_yaml(source: str, text: str) -> None:
    """Refuse YAML whose aliases expand past :data:`MAX_NODES` values or that nests deeper than :data:`MAX_DEPTH`.

    Streams the parser's events (no document is built): each anchor's expanded size is kept, so an alias
    counts as everything it stands for. Syntax errors are left to the loader, which reports them with a line.
    """
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # [anchor, expanded size so far] per open collection
    total = 0
    with contextlib.suppress(yaml.YAMLError):
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append([event.anchor, 0])
                if len(stack) - 1 > MAX_DEPTH:
                    raise _problem(source, f"nested more than {MAX_DEPTH} levels deep", line)
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, size = stack.pop()
                weight = size + 1
                if anchor:
                    sizes[anchor] = weight
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in stack[1:]):
                    raise _problem(source, f"*{event.anchor} is inside &{event.anchor} itself (a recursive "
                                           "structure, which no user-data means)", line)
                weight = sizes.get(event.anchor or "", 1)
            elif isinstance(event, yaml.ScalarEvent):
                weight = 1
                if event.anchor:
                    sizes[event.anchor] = 1
            else:
                continue
            stack[-1][1] += weight
            total = stack[0][1] + sum(s for _, s in stack[1:])
            if total > MAX_NODES:
                raise _problem(source, f"expands to more than {MAX_NODES} values (YAML aliases count as "
                                       "what they repeat)", line)


def check_json_depth(source: str, data: Any) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` (iteratively)."""
    todo = [(data, 0)]
    while todo:
        value, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise _problem(source, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            todo += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            todo += [(v, depth + 1) for v in value]


def read_bounded(path: Path) -> bytes:
    """Read ``path``, refusing more than :data:`MAX_BYTES`."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise _problem(str(path), f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise _problem(str(path), f"larger than {MAX_BYTES >> 20} MiB (the limit for a merged file)")
    return data
