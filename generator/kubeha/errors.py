"""Error types, problems with source locations, and the CLI's exit codes.

Validators return lists of :class:`Problem`; code that must stop raises a :class:`KubehaError` subclass
whose ``exit_code`` the CLI maps straight to the process exit status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, as documented in README.md."""

    OK = 0
    INVALID = 1
    USAGE = 2
    CHECKSUM = 3
    SIGNATURE = 4
    INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


@dataclass(frozen=True, order=True)
class Location:
    """Where a value came from: a file and a 1-based line (0 when the line is unknown)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        """Render as ``FILE:LINE`` (or just ``FILE`` when the line is unknown)."""
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong (or suspicious) in the input, printed as ``FILE:LINE: error: PATH: MESSAGE``."""

    location: Location
    path: str
    message: str
    severity: str = "error"

    @property
    def is_error(self) -> bool:
        """True for errors, False for warnings."""
        return self.severity == "error"

    def __str__(self) -> str:
        """Render in the compiler-style one-line form."""
        return f"{self.location}: {self.severity}: {self.path}: {self.message}"


class KubehaError(Exception):
    """Base of every error kubeha reports to a user (never shown as a traceback)."""

    exit_code: ExitCode = ExitCode.INVALID


@dataclass
class InvalidInput(KubehaError):
    """The input has problems; all of them are listed, sorted."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Initialise the Exception part with a short summary."""
        super().__init__(f"{sum(p.is_error for p in self.problems)} error(s) in input")


class ChecksumError(KubehaError):
    """A file's SHA-256 does not match, or files are missing or extra."""

    exit_code = ExitCode.CHECKSUM


class SignatureError(KubehaError):
    """A signature is missing, bad, or made by a key that is not trusted."""

    exit_code = ExitCode.SIGNATURE


class OutputError(KubehaError):
    """An output path that cannot be written: a file where a directory is needed, read-only, foreign files."""


class UsageError(KubehaError):
    """Options that do not fit together (exit 2, like the parser's own usage errors)."""

    exit_code = ExitCode.USAGE
