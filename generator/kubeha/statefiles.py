"""The files kubeha keeps beside an inventory (``.cluster-id``, ``.bundle-serial``, ``.vrrp-secret``): one set of rules.

They decide which bundles a cluster's nodes accept and what the VRRP password is, and the inventory's
directory is often shared (a group-writable checkout, a team folder). So every reader and writer of them goes
through this module, which depends on nothing but :mod:`kubeha.errors`:

- **Reading** opens the file relative to its directory with ``O_NOFOLLOW|O_NONBLOCK`` and checks the open
  file (``fstat``), never the name: a symbolic link, a FIFO or anything but a regular file is refused, and so
  is a file owned by another user (kubeha never adopts a file someone else planted), one with more than one
  hard link, or one group or others can read. Only then is its content read (a few bytes) and matched.
- **Creating** is ``O_CREAT|O_EXCL|O_NOFOLLOW`` in the final directory, mode 0600: nothing that is already
  there (a file, a planted symlink to ``/etc/shadow``) is ever opened for writing; a name that appears
  between the read and the create is an error, not a silent overwrite.
- **Replacing** (the serial, which moves forward) writes a new ``O_EXCL|O_NOFOLLOW`` temporary in the same
  directory and renames it over the name (``renameat``): the old entry is replaced, never written through.

Every refusal is a :class:`~kubeha.errors.Problem` naming the file, and no secret is ever part of a message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubeha.errors import InvalidInput, Location, Problem

_MAX_BYTES = 4096  # every state file is one short line
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


@dataclass(frozen=True)
class StateKind:
    """One kind of state file: its suffix, its name in messages, what its content must match."""

    suffix: str
    what: str
    pattern: re.Pattern[str]
    invalid: str  # the message when the content does not match


CLUSTER_ID = StateKind(".cluster-id", "cluster id", re.compile(r"[0-9a-f]{32}"), "not a valid cluster id")
SERIAL = StateKind(".bundle-serial", "bundle serial", re.compile(r"[1-9][0-9]{0,15}"), "not a valid bundle serial")
VRRP_SECRET = StateKind(".vrrp-secret", "secret", re.compile(r"[A-Za-z0-9_.+=@%^*-]{1,8}"),
                        "must be 1-8 characters (VRRP PASS authentication)")


def beside(inventory: Path, kind: StateKind) -> Path:
    """Where ``kind``'s file of the inventory ``inventory`` lives: ``<inventory><suffix>``."""
    return inventory.with_name(inventory.name + kind.suffix)


def _fail(path: Path, kind: StateKind, message: str, line: int = 1) -> InvalidInput:
    return InvalidInput([Problem(Location(str(path), line), kind.what, message)])


@contextlib.contextmanager
def _directory(path: Path, kind: StateKind) -> Iterator[int]:
    """The open directory ``path`` lives in (every later step is relative to it, so it cannot be swapped)."""
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _fail(path, kind, f"cannot open its directory {path.parent}: {exc.strerror}", 0) from None
    try:
        yield fd
    finally:
        os.close(fd)


def _check_open_file(path: Path, kind: StateKind, st: os.stat_result) -> None:
    """The rules for the open file itself (type, owner, links, mode), in the order a user fixes them."""
    if not stat.S_ISREG(st.st_mode):
        raise _fail(path, kind, "is not a regular file: remove it (kubeha makes a new one only where nothing is)")
    if st.st_uid != os.geteuid():
        raise _fail(path, kind, f"owned by uid {st.st_uid}, not by uid {os.geteuid()} who runs kubeha: a state "
                                "file another user made is never adopted; check where it came from and remove it")
    if st.st_nlink != 1:
        raise _fail(path, kind, f"has {st.st_nlink} hard links: keep it as a file of its own (cp it, then rm the "
                                "link)")
    if st.st_mode & 0o077:
        raise _fail(path, kind, "readable by group or others: chmod 600 it")


def read(path: Path, kind: StateKind, *, strip: bool = False) -> str | None:
    """The content of ``path`` without its final newline (all surrounding blanks with ``strip``), None if missing.

    Raises InvalidInput when the file breaks a rule of this module or its content does not match ``kind``.
    """
    with _directory(path, kind) as dir_fd:
        try:
            fd = os.open(path.name, os.O_RDONLY | os.O_NONBLOCK | _OPEN_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _fail(path, kind, "is a symbolic link: kubeha never follows one here (it could point "
                                        "anywhere); put the real file in its place") from None
            raise _fail(path, kind, f"cannot read: {exc.strerror}") from None
        try:
            _check_open_file(path, kind, os.fstat(fd))
            data = os.read(fd, _MAX_BYTES + 1)
        except OSError as exc:
            raise _fail(path, kind, f"cannot read: {exc.strerror}") from None
        finally:
            os.close(fd)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = None
    value = None if text is None else text.strip() if strip else text.removesuffix("\n")
    if value is None or len(data) > _MAX_BYTES or not kind.pattern.fullmatch(value):
        raise _fail(path, kind, kind.invalid)
    return value


def write_new(dir_fd: int, name: str, data: bytes) -> None:
    """Create ``name`` in the open directory ``dir_fd`` (O_EXCL|O_NOFOLLOW, 0600), write ``data``, fsync it.

    Raises FileExistsError when anything (a file, a symlink) has that name; other OSErrors as they come. A
    file that could not be written completely is removed again.
    """
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        raise
    os.close(fd)


def replace_at(dir_fd: int, name: str, data: bytes) -> None:
    """Atomically put ``data`` at ``name`` in ``dir_fd``: a fresh private temporary renamed over the entry."""
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    write_new(dir_fd, tmp, data)
    try:
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)


def create(path: Path, kind: StateKind, value: str) -> None:
    """Make ``path`` holding ``value`` (one line) where nothing is; an entry that appeared meanwhile is an error."""
    with _directory(path, kind) as dir_fd:
        try:
            write_new(dir_fd, path.name, f"{value}\n".encode("ascii"))
        except FileExistsError:
            raise _fail(path, kind, "appeared while kubeha was making it (another kubeha run, or someone "
                                    "else): check it and run again") from None
        except OSError as exc:
            raise _fail(path, kind, f"cannot create: {exc.strerror}", 0) from None
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)


def replace(path: Path, kind: StateKind, value: str) -> None:
    """Put ``value`` at ``path`` atomically; the existing file must pass :func:`read`'s rules first."""
    read(path, kind)
    with _directory(path, kind) as dir_fd:
        try:
            replace_at(dir_fd, path.name, f"{value}\n".encode("ascii"))
        except OSError as exc:
            raise _fail(path, kind, f"cannot write: {exc.strerror}", 0) from None
