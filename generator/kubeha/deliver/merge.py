"""Merging kubeha's cloud-config with the user's own user-data (``--merge``), losing nothing of either side.

cloud-init's default merge of two cloud-config parts replaces lists (``dict(replace)+list()+str()``), so
a naive concatenation drops one side's ``write_files`` or ``runcmd``. kubeha writes every part with the
header ``Merge-Type: list(append)+dict(no_replace,recurse_list)+str()``: lists append in part order,
mappings merge key by key, and a scalar both sides set keeps the earlier (the user's) value.

Order, documented in README: the user's parts come first, in the order given, kubeha's part last. So on
the node the user's ``bootcmd`` and boot hooks run first (init stage), both sides' ``write_files``,
``users``, ``ca_certs`` ... are applied by their modules, and in the final stage the user's script parts
(named ``NN-<file>``, sorted before ``runcmd``) run, then ``runcmd`` with the user's commands before
kubeha's install (which stages static pods and only places them after the images are imported, i.e.
before kubelet can start them).

When every user part is a plain cloud-config (no scripts, no merge rules of its own) the same result is
also built directly as one ``#cloud-config`` (the same merge rules, applied here); the smaller of the two
forms is emitted. Both are byte-stable: the MIME boundary is fixed and nothing depends on time or chance.
A path that two sources write is an error naming both, never a silent winner.
"""

from __future__ import annotations

import base64
import copy
import re
from dataclasses import dataclass
from typing import Any

from kubeha import __version__
from kubeha.deliver.cloudinit import dump_yaml, header, user_data_config
from kubeha.deliver.mergeguard import Guard, normalize
from kubeha.deliver.userparts import CLOUD_CONFIG, MERGE_KEYS, SHELLSCRIPT, Part, parse_user_data
from kubeha.errors import InvalidInput, Location, Problem
from kubeha.files import NodeDocument

MERGE_TYPE = "list(append)+dict(no_replace,recurse_list)+str()"
BOUNDARY = "==kubeha-user-data-boundary=="
KUBEHA_PART = "kubeha.cfg"


@dataclass(frozen=True)
class _Writer:
    source: str
    line: int


def kubeha_part(doc: NodeDocument, *, encode_files: bool = False) -> Part:
    """The cloud-config kubeha writes for ``doc``, as a part (always merged last)."""
    config = user_data_config(doc, encode_files=encode_files)
    return Part(f"kubeha ({doc.name})", CLOUD_CONFIG, header(doc) + dump_yaml(config), "", config, name=KUBEHA_PART)


def check_conflicts(parts: list[Part], kubeha_from: int | None = None) -> None:
    """Refuse a path written by two sources (the user's files among themselves, or a user's and kubeha's).

    Paths are compared normalized; ``parts[kubeha_from:]`` (default: the last part) are kubeha's, and no user
    file may shadow them (:class:`kubeha.deliver.mergeguard.Guard`: a directory they live in, a path below
    one, kubeha's own directories).
    """
    start = len(parts) - 1 if kubeha_from is None else kubeha_from
    found: dict[str, list[_Writer]] = {}
    for part in parts:
        for i, entry in enumerate(part.config.get("write_files", [])):
            found.setdefault(normalize(entry["path"]), []).append(_Writer(part.source, part.lines.get(i, 0)))
    problems = []
    for path, writers in sorted(found.items()):
        if len(writers) > 1:
            first = writers[0]
            others = " and ".join(w.source for w in writers[1:])
            problems.append(Problem(Location(first.source, first.line), "write_files",
                                    f"{path} is written by both {first.source} and {others}"))
    kubeha = parts[start:]
    guard = Guard.of((e["path"] for p in kubeha for e in p.config.get("write_files", [])),
                     kubeha[0].source if kubeha else "kubeha")
    for part in parts[:start]:
        for i, entry in enumerate(part.config.get("write_files", [])):
            why = guard.clash(entry["path"])
            if why and normalize(entry["path"]) not in guard.files:  # the same path is reported above
                problems.append(Problem(Location(part.source, part.lines.get(i, 0)), "write_files", why))
    if problems:
        raise InvalidInput(problems)


def merge_config(old: Any, new: Any) -> Any:
    """cloud-init's ``list(append)+dict(no_replace,recurse_list)+str()`` merge of ``new`` into ``old``.

    The same dispatch as cloud-init's mergers (on the old value's type), odd corners included, so the
    single-document form means exactly what cloud-init makes of the MIME form (a property test asks it).
    """
    if isinstance(old, dict):
        if not isinstance(new, dict):
            return old
        merged = dict(old)
        for key, value in new.items():
            if key not in merged:
                merged[key] = copy.deepcopy(value)
            elif isinstance(value, (list, dict)):  # recurse_list, and dicts always recurse
                merged[key] = merge_config(merged[key], value)
        return merged  # no_replace: any other value already there stands
    if isinstance(old, list):
        return [*old, *copy.deepcopy(list(new))]  # append (a mapping contributes its keys, as in cloud-init)
    if isinstance(old, str):
        return copy.deepcopy(new)  # str() without append takes the new value
    return old


def _single_possible(parts: list[Part]) -> bool:
    return all(p.ctype == CLOUD_CONFIG and not p.merge_type and not any(k in p.config for k in MERGE_KEYS)
               for p in parts)


def _names(parts: list[Part]) -> str:
    return ", ".join(dict.fromkeys(p.filename for p in parts))


def single_document(node: str, parts: list[Part]) -> str:
    """The merged result as one #cloud-config (only for plain cloud-config parts)."""
    merged: dict[str, Any] = {}
    for part in parts:
        merged = merge_config(merged, part.config)
    head = (f"#cloud-config\n# Generated by kubeha {__version__} for {node}: {_names(parts)} merged in this "
            "order (lists appended, earlier scalars kept). Do not edit: regenerate.\n")
    return head + dump_yaml(merged)


def _mime_part(ctype: str, filename: str, text: str, merge_type: str) -> str:
    try:
        text.encode("ascii")
        # The line break before a boundary belongs to the boundary: one more keeps the text's own last one.
        encoding, body = "7bit", text + "\n"
    except UnicodeEncodeError:
        raw = base64.encodebytes(text.encode("utf-8")).decode("ascii")
        encoding, body = "base64", raw
    lines = [f'Content-Type: {ctype}; charset="utf-8"', "MIME-Version: 1.0",
             f"Content-Transfer-Encoding: {encoding}", f'Content-Disposition: attachment; filename="{filename}"']
    if merge_type:
        lines.append(f"Merge-Type: {merge_type}")
    return "\n".join(lines) + "\n\n" + body


def _part_name(index: int, part: Part) -> str:
    # Script parts run from instance/scripts/ in name order, before cloud-init's own "runcmd" script.
    name = re.sub(r"[^A-Za-z0-9._-]", "_", part.filename)
    return f"{index:02d}-{name}" if part.ctype != CLOUD_CONFIG else name


def mime_document(node: str, parts: list[Part]) -> str:
    """The merged result as a MIME multipart: the parts in order, each cloud-config with merge rules."""
    bodies = [
        _mime_part(p.ctype, _part_name(i, p), p.text, p.merge_type or (MERGE_TYPE if p.ctype == CLOUD_CONFIG else ""))
        for i, p in enumerate(parts, start=1)
    ]
    if any(BOUNDARY in b for b in bodies):
        raise InvalidInput([Problem(Location(node), "merge", f"a part contains the MIME boundary {BOUNDARY}")])
    head = (f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"\nMIME-Version: 1.0\n\n'
            f"Generated by kubeha {__version__} for {node}: {_names(parts)}, in this order.\n")
    return head + "".join(f"--{BOUNDARY}\n{b}" for b in bodies) + f"--{BOUNDARY}--\n"


def combine(node: str, parts: list[Part], kubeha_from: int | None = None) -> str:
    """Merge parts into the smaller of a MIME multipart and a single #cloud-config.

    kubeha's parts come last: ``parts[kubeha_from:]`` (default: the last one).

    Raises:
        InvalidInput: two sources write the same path (both named), a user file shadows kubeha's, or a part
            contains the boundary.
    """
    check_conflicts(parts, kubeha_from)
    mime = mime_document(node, parts)
    if not _single_possible(parts):
        return mime
    single = single_document(node, parts)
    return single if len(single.encode()) <= len(mime.encode()) else mime


def merged_user_data(doc: NodeDocument, parts: list[Part], *, encode_files: bool = False) -> str:
    """The user-data kubeha writes for ``doc``, merged with the user's ``parts`` (see :func:`combine`)."""
    return combine(doc.name, [*parts, kubeha_part(doc, encode_files=encode_files)])


def merge_into(node: str, user: list[Part], source: str, user_data: bytes) -> bytes:
    """Merge the user's parts into an already made kubeha user-data (a bundle's ``nodes/<node>/user-data``)."""
    return combine(node, [*user, *parse_user_data(source, user_data)], len(user)).encode()


def kind_of(user_data: bytes) -> str:
    """``mime`` or ``cloud-config``: which form a (plain, not gzipped) merged user-data took."""
    return "mime" if user_data.startswith(b"Content-Type: multipart/") else "cloud-config"


__all__ = ["BOUNDARY", "MERGE_TYPE", "SHELLSCRIPT", "check_conflicts", "combine", "kind_of", "kubeha_part",
           "merge_config", "merge_into", "merged_user_data", "mime_document", "single_document"]
