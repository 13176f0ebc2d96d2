"""Merging the user's own Ignition configs into kubeha's (``--merge`` with ``--format ignition``).

Each user config rides inside kubeha's config as an ``ignition.config.merge`` entry with an inline
``data:`` source and a ``sha512-`` verification hash, byte for byte as the user wrote it: Ignition itself
merges it (in list order, after kubeha's own sections), and refuses a source whose hash does not match.
Nothing is fetched at boot, so an air-gapped node needs no config server for it.

kubeha refuses, before anything is written, what Ignition would resolve silently: a file or link path, or
a systemd unit name, that both sides set (the user's would win), a file, link or directory that would shadow
kubeha's (its directories, anything below its files, kubeha's own directories, compared normalized: see
:mod:`kubeha.deliver.mergeguard`), a config that replaces the whole config (``ignition.config.replace``),
and a spec version the validator we test with does not know.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeha.deliver.ignition import SUPPORTED_VERSIONS
from kubeha.deliver.mergeguard import MAX_DEPTH, UNIT_DIR, Guard, check_json_depth, normalize, read_bounded
from kubeha.errors import InvalidInput, Location, Problem


@dataclass(frozen=True)
class UserIgnition:
    """One user Ignition config: where it came from, its exact bytes and parsed form."""

    source: str
    raw: bytes
    config: dict[str, Any]


def _problem(source: str, message: str, path: str = "merge") -> InvalidInput:
    return InvalidInput([Problem(Location(source), path, message)])


def parse_ignition(source: str, raw: bytes) -> UserIgnition:
    """Parse and check one user Ignition config (JSON object with a supported ``ignition.version``)."""
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _problem(source, f"not an Ignition config (JSON): {exc}") from None
    except RecursionError:
        raise _problem(source, f"nested more than {MAX_DEPTH} levels deep") from None
    check_json_depth(source, config)
    if not isinstance(config, dict) or not isinstance(config.get("ignition"), dict):
        raise _problem(source, "an Ignition config is a JSON object with an 'ignition' section")
    version = config["ignition"].get("version")
    if version not in SUPPORTED_VERSIONS:
        raise _problem(source, f"spec {version!r} is not one of {', '.join(SUPPORTED_VERSIONS)}",
                       "ignition.version")
    if (config["ignition"].get("config") or {}).get("replace"):
        raise _problem(source, "replaces the whole config, kubeha's included: use merge instead",
                       "ignition.config.replace")
    return UserIgnition(source, raw, config)


def read_ignition_file(path: Path) -> list[UserIgnition]:
    """Read one ``--merge FILE`` for Ignition output."""
    return [parse_ignition(str(path), read_bounded(path))]


_KINDS = (("files", "file"), ("links", "link"), ("directories", "directory"))


def _claims(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(namespace, kind, name) of what a config sets: file, link, directory paths (normalized), unit names.

    Files and links share the ``path`` namespace (a node path is one or the other).
    """
    storage = config.get("storage") or {}
    out = [("directory" if kind == "directory" else "path", kind, normalize(str(e.get("path"))))
           for key, kind in _KINDS for e in storage.get(key) or [] if isinstance(e, dict)]
    out += [("unit", "unit", str(u.get("name"))) for u in (config.get("systemd") or {}).get("units") or []
            if isinstance(u, dict)]
    return out


def _guard(node: str, kubeha: dict[str, Any]) -> Guard:
    """The guard of kubeha's files, links and units (as the files systemd reads): no user entry may shadow them."""
    claims = _claims(kubeha)
    paths = [name for space, _, name in claims if space == "path"]
    paths += [f"{UNIT_DIR}{name}" for space, _, name in claims if space == "unit"]
    return Guard.of(paths, f"kubeha ({node})")


def check_conflicts(node: str, kubeha: dict[str, Any], users: list[UserIgnition]) -> None:
    """Refuse a path or unit that two sources set, naming both, and any user entry that shadows kubeha's."""
    owners = {(space, name): f"kubeha ({node})" for space, _, name in _claims(kubeha) if space != "directory"}
    guard = _guard(node, kubeha)
    problems = []
    for user in users:
        for space, kind, name in _claims(user.config):
            if (space, name) in owners:
                problems.append(Problem(Location(user.source), f"{space} {name}",
                                        f"set by both {user.source} and {owners[space, name]}"))
                continue
            why = guard.clash(name) if space != "unit" else None
            if why:
                problems.append(Problem(Location(user.source), f"{kind} {name}", why))
            elif space != "directory":
                owners[space, name] = user.source
    if problems:
        raise InvalidInput(problems)


def merge_entry(user: UserIgnition) -> dict[str, Any]:
    """The ``ignition.config.merge`` entry carrying ``user`` inline, hash-checked by Ignition."""
    return {"source": "data:;base64," + base64.b64encode(user.raw).decode("ascii"),
            "verification": {"hash": "sha512-" + hashlib.sha512(user.raw).hexdigest()}}


def merge_ignition(node: str, config: dict[str, Any], users: list[UserIgnition]) -> dict[str, Any]:
    """Kubeha's ``config`` with every user config appended to ``ignition.config.merge`` (in order)."""
    if not users:
        return config
    check_conflicts(node, config, users)
    ignition = dict(config["ignition"])
    sub = dict(ignition.get("config") or {})
    sub["merge"] = [*(sub.get("merge") or []), *(merge_entry(u) for u in users)]
    ignition["config"] = sub
    return {**config, "ignition": ignition}
