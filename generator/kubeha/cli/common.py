"""The conventions every kubeha command shares: errors, exit codes, the JSON envelope, output paths.

Each command runs its body inside :func:`session`, which

- prints problems as ``FILE:LINE: error: PATH: MESSAGE`` and other errors as ``kubeha: error: MESSAGE`` on
  stderr (``; nothing written`` only for commands that write), and warnings as ``...: warning: ...``; a
  list of problems ends with ``kubeha: N error(s), M warning(s)``, warnings alone included;
- maps :class:`~kubeha.errors.KubehaError` to its exit code (0 ok, 1 invalid input or failure, 2 usage,
  3 checksum, 4 signature), Ctrl-C to 130 and a closed stdout (``| head``) to a quiet 0;
- with ``--json`` prints exactly one object on stdout, on success and on failure alike::

    {"kubeha": 1, "command": "gen userdata", "ok": true, "errors": [], "warnings": [], "result": {...}}

  problems as ``{"file", "line", "path", "message"}`` (schema: kubeha/schema/output.schema.json).

:func:`check_output_dir` and :func:`check_output_file` refuse a bad ``-o`` before any work is done.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from kubeha.errors import ExitCode, InvalidInput, KubehaError, OutputError, Problem, UsageError

__all__ = ["STDOUT", "OutputError", "Session", "UsageError", "check_output_dir", "complete_inventory", "output_file",
           "session"]

SCHEMA_VERSION = 1
STDOUT = "-"
INVENTORY_SUFFIXES = (".ini", ".yaml", ".yml", ".json", ".cfg", "")


def err(text: str) -> None:
    """One line on stderr."""
    print(text, file=sys.stderr, flush=True)


def problem_dict(p: Problem) -> dict[str, Any]:
    """A problem as JSON: file and line (null when unknown), the key path, the message."""
    return {"file": p.location.file or None, "line": p.location.line or None, "path": p.path or None,
            "message": p.message}


def message_dict(message: str) -> dict[str, Any]:
    """An error that has no source location, as JSON."""
    return {"file": None, "line": None, "path": None, "message": message}


@dataclass
class Session:
    """One command's run: what it found, what it made, and how it ends."""

    command: str
    as_json: bool = False
    writes: bool = False
    result: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = ExitCode.OK

    def warn(self, problems: list[Problem]) -> None:
        """Print warnings on stderr (as warnings, whatever their severity was) and keep them for JSON."""
        for p in sorted(problems):
            warning = Problem(p.location, p.path, p.message, "warning")
            err(str(warning))
            self.warnings.append(problem_dict(warning))

    def note(self, text: str) -> None:
        """An informational line on stderr (e.g. which stale node folders were removed)."""
        err(f"kubeha: {text}")

    def out(self, text: str = "") -> None:
        """A line of human output on stdout (suppressed with --json: the envelope is the output)."""
        if not self.as_json:
            print(text)

    def fail(self, code: int, messages: list[str]) -> None:
        """End with ``code`` and these errors (already printed by the caller) without raising."""
        self.exit_code = code
        self.errors += [message_dict(m) for m in messages]

    def envelope(self) -> dict[str, Any]:
        """The one JSON object every --json prints."""
        return {"kubeha": SCHEMA_VERSION, "command": self.command, "ok": self.exit_code == 0,
                "errors": self.errors, "warnings": self.warnings, "result": self.result}

    def _report(self, exc: KubehaError) -> None:
        suffix = "; nothing written" if self.writes else ""
        if isinstance(exc, InvalidInput):
            for p in sorted(exc.problems):
                err(str(p))
                (self.errors if p.is_error else self.warnings).append(problem_dict(p))
            errors = sum(p.is_error for p in exc.problems)
            err(f"kubeha: {errors} error(s), {len(exc.problems) - errors} warning(s){suffix}")
        else:
            err(f"kubeha: error: {exc}{suffix}")
            self.errors.append(message_dict(str(exc)))
        self.exit_code = int(exc.exit_code)


def quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@contextmanager
def session(command: str, *, as_json: bool = False, writes: bool = False) -> Iterator[Session]:
    """Run a command body with kubeha's error, exit-code and JSON conventions (see the module docstring)."""
    s = Session(command, as_json, writes)
    try:
        try:
            yield s
        except KubehaError as exc:
            s._report(exc)
        except KeyboardInterrupt:
            err("kubeha: interrupted" + ("; nothing written" if writes else ""))
            s.fail(ExitCode.INTERRUPTED, ["interrupted"])
        if s.warnings and not s.exit_code:  # the count ends the problem list, with or without errors
            err(f"kubeha: 0 error(s), {len(s.warnings)} warning(s)")
        if as_json:
            print(json.dumps(s.envelope(), indent=2, sort_keys=True))
        sys.stdout.flush()
    except BrokenPipeError:  # `kubeha ... | head`: the reader has what it wanted
        quiet_stdout()
        raise typer.Exit(ExitCode.OK) from None
    if s.exit_code:
        raise typer.Exit(s.exit_code)


# --------------------------------------------------------------------------------------------------------
# Shell completion


def complete_inventory(incomplete: str) -> list[str]:
    """Shell completion for INVENTORY: inventory-looking files (and folders) starting with what is typed."""
    folder, _, prefix = incomplete.rpartition("/")
    base = Path(folder or ".") if folder or not incomplete.startswith("/") else Path("/")
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    lead = f"{folder}/" if folder or incomplete.startswith("/") else ""
    return [f"{lead}{p.name}{'/' if p.is_dir() else ''}" for p in entries
            if p.name.startswith(prefix) and not p.name.startswith(".")
            and (p.is_dir() or p.suffix in INVENTORY_SUFFIXES or p.name == "hosts")]


# --------------------------------------------------------------------------------------------------------
# Output paths: refuse before any work, so a bad -o never leaves anything behind


def _existing_ancestor(path: Path) -> Path:
    """The nearest path at or above ``path`` that exists (a file under which ``path`` would lie, too)."""
    probe = path.absolute()
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    return probe


def _writable_dir(path: Path, shown: str, option: str) -> None:
    """``path`` (existing) must be a directory kubeha can create entries in."""
    if not path.is_dir():
        raise OutputError(f"{option} {shown}: {path} is not a directory")
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        raise OutputError(f"{option} {shown}: {path} is on a read-only file system")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {shown}: cannot write in {path}: permission denied")


def check_output_dir(path: Path, option: str = "-o") -> None:
    """Raise OutputError unless ``path`` is, or can be created as, a writable directory (nothing is made)."""
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{option} {path}: is a file, not a directory")
    _writable_dir(_existing_ancestor(path), str(path), option)


def output_file(path: Path, default_name: str, option: str = "-o") -> Path:
    """The file an ``-o`` names: an existing directory means ``DIR/default_name``; checked, nothing made."""
    if path.is_dir():
        path = path / default_name
        if path.is_dir():
            raise OutputError(f"{option} {path}: is a directory, not a file")
    elif str(path).endswith(os.sep):
        raise OutputError(f"{option} {path}: no such directory")
    _writable_dir(_existing_ancestor(path.parent), str(path), option)
    return path


@contextmanager
def parents_made(path: Path) -> Iterator[None]:
    """Create ``path``'s missing parent directories; remove the ones made here if the body fails."""
    made = []
    probe = path.absolute().parent
    while not probe.exists():
        made.append(probe)
        probe = probe.parent
    for directory in reversed(made):
        try:
            directory.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot create {directory}: {exc.strerror}") from None
    try:
        yield
    except BaseException:
        for directory in made:
            try:
                directory.rmdir()
            except OSError:
                break
        raise
