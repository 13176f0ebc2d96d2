"""Reading the user's own user-data for ``--merge``/``--merge-dir``: cloud-configs, MIME multiparts, scripts.

Each input becomes one or more :class:`Part` objects (a MIME multipart is split into its leaves), in the
order given. The kind of a file is decided the way cloud-init decides it: a gzip magic is unpacked first,
``mime-version:`` in the first 4096 bytes means MIME multipart, otherwise the first line's prefix
(``#cloud-config``, ``#!``, ``#cloud-boothook``). Anything else is refused with a message naming the
accepted kinds, never passed through unchecked.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

import yaml

from kubeha.deliver.mergeguard import MAX_BYTES, check_modules, check_yaml, gunzip, read_bounded
from kubeha.errors import InvalidInput, Location, Problem

CLOUD_CONFIG = "text/cloud-config"
SHELLSCRIPT = "text/x-shellscript"
BOOTHOOK = "text/cloud-boothook"
_PREFIXES = (("#cloud-config", CLOUD_CONFIG), ("#cloud-boothook", BOOTHOOK), ("#!", SHELLSCRIPT))
_TYPES = frozenset({CLOUD_CONFIG, SHELLSCRIPT, BOOTHOOK, "text/x-shellscript-per-boot",
                    "text/x-shellscript-per-instance", "text/x-shellscript-per-once"})
_KINDS = "a #cloud-config, a MIME multipart user-data, a #! script or a #cloud-boothook"
MERGE_KEYS = ("merge_how", "merge_type")
T = TypeVar("T")  # a part's own merge rules (cloud-init reads both spellings)


@dataclass(frozen=True)
class MergeSpec:
    """The user's own user-data to merge into every node's (``--merge FILE`` ..., ``--merge-dir DIR``)."""

    files: tuple[Path, ...] = ()
    directory: Path | None = None

    def __bool__(self) -> bool:
        """True when there is anything to merge."""
        return bool(self.files) or self.directory is not None


@dataclass(frozen=True)
class Part:
    """One user-data part: where it came from, its MIME type and text, and (for cloud-configs) its data."""

    source: str  # the file it came from, e.g. base.yaml or base.mime[2]
    ctype: str
    text: str
    merge_type: str = ""  # the part's own Merge-Type header, kept as the user wrote it
    config: dict[str, Any] = field(default_factory=dict)
    lines: dict[int, int] = field(default_factory=dict)  # write_files index -> 1-based line of its entry
    name: str = ""  # the MIME file name, when not the source's base name

    @property
    def filename(self) -> str:
        """The file's base name, for MIME Content-Disposition."""
        return self.name or Path(self.source.split("[", 1)[0]).name


def _problem(source: str, message: str, line: int = 0, path: str = "merge") -> InvalidInput:
    return InvalidInput([Problem(Location(source, line), path, message)])


def _write_files_lines(text: str) -> dict[int, int]:
    """Line of each write_files entry (best effort: a document that composes oddly gives no lines)."""
    try:
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key, value in root.value:
        if key.value == "write_files" and isinstance(value, yaml.SequenceNode):
            return {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return {}


def cloud_config_part(source: str, text: str, merge_type: str = "") -> Part:
    """Parse and check a #cloud-config: a mapping whose write_files entries each name a path.

    Bounded before it is built (aliases, depth: :func:`kubeha.deliver.mergeguard.check_yaml`); module lists
    must keep what kubeha needs.
    """
    check_yaml(source, text)
    try:
        data = yaml.load(text, Loader=yaml.CSafeLoader)  # noqa: S506 - CSafeLoader is the safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _problem(source, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                       mark.line + 1 if mark else 0) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _problem(source, "a #cloud-config must be a mapping at the top", 1)
    lines = _write_files_lines(text)
    files = data.get("write_files", [])
    if not isinstance(files, list):
        raise _problem(source, "must be a list", 0, "write_files")
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
            raise _problem(source, "each entry needs a path", lines.get(i, 0), f"write_files.{i}")
    if problems := check_modules(source, data):
        raise InvalidInput(problems)
    return Part(source, CLOUD_CONFIG, text, merge_type, data, lines)


def _decode(source: str, data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        data = gunzip(source, data)  # bounded: a gzip bomb stops at MAX_BYTES
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _problem(source, "not UTF-8 text") from None


def _kind(text: str) -> str | None:
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    for prefix, ctype in _PREFIXES:
        if first.startswith(prefix):
            return ctype
    return None


def _single(source: str, text: str, ctype: str | None, merge_type: str = "") -> Part:
    if ctype is None or ctype not in _TYPES:
        what = f"MIME type {ctype}" if ctype else "its first line"
        raise _problem(source, f"unsupported user-data ({what}); give {_KINDS}", 1)
    if ctype == CLOUD_CONFIG:
        return cloud_config_part(source, text, merge_type)
    return Part(source, ctype, text, merge_type)


def _mime_leaves(message: Message) -> Iterable[Message]:
    for part in message.walk():
        if not part.is_multipart():
            yield part


def _mime_parts(source: str, text: str) -> list[Part]:
    message = email.message_from_string(text, policy=email.policy.compat32)
    parts = []
    unpacked = 0
    for i, leaf in enumerate(_mime_leaves(message), start=1):
        payload = leaf.get_payload(decode=True)
        where = f"{source}[{i}]"
        body = _decode(where, payload if isinstance(payload, bytes) else b"")
        unpacked += len(body)
        if unpacked > MAX_BYTES:
            raise _problem(source, f"its parts unpack to more than {MAX_BYTES >> 20} MiB (the limit for a merged "
                                   "file)")
        ctype = leaf.get_content_type()
        if ctype in ("text/plain", "text/x-not-multipart"):
            ctype = _kind(body) or ctype  # cloud-init sniffs plain parts by their first line too
        merge_type = str(leaf.get("Merge-Type") or leaf.get("X-Merge-Type") or "")
        parts.append(_single(where, body, ctype, merge_type))
    if not parts:
        raise _problem(source, "a MIME multipart with no parts")
    return parts


def parse_user_data(source: str, data: bytes) -> list[Part]:
    """Split one user-data document into parts (raises InvalidInput naming the file on anything odd)."""
    text = _decode(source, data)
    if "mime-version:" in text[:4096].lower():
        return _mime_parts(source, text)
    return [_single(source, text, _kind(text))]


def read_merge_file(path: Path) -> list[Part]:
    """Read one ``--merge FILE``."""
    return parse_user_data(str(path), read_bounded(path))


def read_merge_dir(directory: Path, nodes: list[str],
                   reader: Callable[[Path], list[T]]) -> tuple[list[T], dict[str, list[T]]]:
    """Read ``--merge-dir DIR``: ``all.*`` for every node, ``<node>.*`` for one node, sorted by name.

    Any other file in DIR is an error (a misspelt node name must not be silently ignored).
    """
    if not directory.is_dir():
        raise _problem(str(directory), "not a directory", path="merge-dir")
    common: list[T] = []
    per_node: dict[str, list[T]] = {n: [] for n in nodes}
    problems = []
    for path in sorted(p for p in directory.iterdir() if not p.name.startswith(".")):
        stem = path.name.split(".", 1)[0]
        if path.is_symlink():  # a link could pull in any file of the build host: refused, never followed
            problems.append(Problem(Location(str(path)), "merge-dir",
                                    "is a symbolic link: put the file itself in the directory"))
        elif stem in ("all", *per_node) and not path.is_dir() and not path.is_file():
            problems.append(Problem(Location(str(path)), "merge-dir", "is not a regular file"))
        elif stem == "all" and path.is_file():
            common += reader(path)
        elif stem in per_node and path.is_file():
            per_node[stem] += reader(path)
        else:
            problems.append(Problem(Location(str(path)), "merge-dir",
                                    f"not all.* or <node>.* for a node of this inventory ({', '.join(nodes)})"))
    if problems:
        raise InvalidInput(problems)
    return common, per_node


def load_merges(files: list[Path], directory: Path | None, nodes: list[str],
                reader: Callable[[Path], list[T]]) -> dict[str, list[T]]:
    """Every node's user documents: the ``--merge`` files in order, then DIR/all.*, then DIR/<node>.*.

    ``reader`` reads one file (:func:`read_merge_file` for cloud-init, the Ignition reader for Ignition).
    """
    common: list[T] = []
    problems: list[Problem] = []
    for path in files:
        try:
            common += reader(path)
        except InvalidInput as exc:
            problems += exc.problems
    if problems:
        raise InvalidInput(problems)
    if directory is None:
        return {n: list(common) for n in nodes}
    shared, per_node = read_merge_dir(directory, nodes, reader)
    return {n: [*common, *shared, *per_node[n]] for n in nodes}
