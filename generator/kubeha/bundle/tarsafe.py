"""Bundle tars: write them reproducibly, and read them as untrusted input (headers first, canonical form only).

A bundle tar is written in one canonical form (GNU headers rebuilt from name, mode, size and one mtime;
uid/gid 0, owner root; data zero-padded; two zero blocks and zero padding to a 10 KiB record). A tar read
back must be in exactly that form: every header byte-equal to the one :func:`write_tar` would write for the
member, only regular files (0644/0600) and directories (0755/0700) under one top directory, no links,
devices, sparse files, pax or long-name headers, duplicates or unsafe names, zero padding and nothing after
the end. Anything else is refused from the headers, before any member's content is read, so a changed byte
anywhere in the tar is either caught here or by the signature and sums that follow.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kubeha.bundle.layout import CHUNK, Advance, no_progress, safe_relpath
from kubeha.errors import ChecksumError

BLOCK = tarfile.BLOCKSIZE
FILE_MODES = frozenset({0o644, 0o600})
DIR_MODES = frozenset({0o755, 0o700})


def _pad(size: int) -> int:
    return -size % BLOCK


def header(name: str, mode: int, size: int, mtime: int, is_dir: bool) -> bytes:
    """The canonical GNU header of one member."""
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "root", "root"
    info.mode, info.size = mode, 0 if is_dir else size
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a regular file may take a short write)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def copy_into(src: Path, fd_out: int, size: int, advance: Advance) -> None:
    """Append ``size`` bytes of ``src`` to ``fd_out``: in-kernel copy_file_range, plain copy as fallback."""
    with src.open("rb", buffering=0) as fin:
        left = size
        try:
            while left:
                n = os.copy_file_range(fin.fileno(), fd_out, min(left, 8 * CHUNK))
                if n == 0:
                    raise ChecksumError(f"{src}: shrank while being packed")
                left -= n
                advance(n)
        except OSError:  # e.g. EXDEV on old kernels, or a filesystem without support: copy by hand
            fin.seek(size - left)
            while left:
                chunk = fin.read(min(left, CHUNK))
                if not chunk:
                    raise ChecksumError(f"{src}: shrank while being packed") from None
                write_all(fd_out, chunk)
                left -= len(chunk)
                advance(len(chunk))


def tar_members(root: Path) -> list[str]:
    """Every path under ``root`` (relative), parents before children, in a fixed order."""
    paths = [str(p.relative_to(root)) for p in root.rglob("*")]
    return sorted(paths, key=lambda p: p.split("/"))


def write_tar(root: Path, name: str, out: Path, mtime: int, advance: Advance = no_progress) -> None:
    """Write the canonical tar of ``root`` whose members live under ``name/`` (file data copied in-kernel)."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        offset = 0
        for rel in ["", *tar_members(root)]:
            path = root / rel if rel else root
            is_dir = path.is_dir()
            size = 0 if is_dir else path.stat().st_size
            head = header(f"{name}/{rel}".rstrip("/"), path.stat().st_mode & 0o777, size, mtime, is_dir)
            write_all(fd, head)
            if size:
                copy_into(path, fd, size, advance)
            write_all(fd, tarfile.NUL * _pad(size))
            offset += len(head) + size + _pad(size)
        end = 2 * BLOCK
        write_all(fd, tarfile.NUL * (end + -(offset + end) % tarfile.RECORDSIZE))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Member:
    """A vetted regular file of a bundle tar: its path inside the bundle, size and data offset."""

    rel: str
    size: int
    offset: int


def _vet(member: tarfile.TarInfo, top: str, seen: set[str]) -> str | None:
    """Why ``member`` is refused from its header alone (or None)."""
    name = member.name
    if member.issym() or member.islnk():
        return f"{name}: {'symlink' if member.issym() else 'hardlink'} refused"
    if member.issparse():
        return f"{name}: sparse file refused"
    if not (member.isreg() or member.isdir()):
        return f"{name}: device or special file refused"
    if member.pax_headers:
        return f"{name}: pax extended header refused"
    if name.startswith("/") or not safe_relpath(name):
        return f"{name}: absolute, '..' or unsafe path refused"
    if name != top and not name.startswith(top + "/"):
        return f"{name}: outside the bundle directory {top}/"
    if name in seen:
        return f"{name}: duplicate member refused"
    seen.add(name)
    allowed = DIR_MODES if member.isdir() else FILE_MODES
    if member.mode not in allowed:
        return f"{name}: mode {member.mode:o} is not one kubeha writes"
    return None


def _zeros(fh: IO[bytes], start: int, end: int) -> bool:
    """True when bytes ``start``..``end`` of ``fh`` are all zero (read in chunks)."""
    fh.seek(start)
    left = end - start
    while left > 0:
        chunk = fh.read(min(left, CHUNK))
        if not chunk or chunk.count(0) != len(chunk):
            return False
        left -= len(chunk)
    return True


def _canonical(fh: IO[bytes], members: list[tarfile.TarInfo], file_size: int) -> str | None:
    """Why the tar is not byte-for-byte in :func:`write_tar`'s form (or None)."""
    expected, mtime = 0, int(members[0].mtime)
    for member in members:
        if member.mtime != mtime:
            return f"{member.name}: mtime differs from the other members"
        canon = header(member.name, member.mode, member.size, mtime, member.isdir())
        fh.seek(member.offset)
        if member.offset != expected or fh.read(len(canon)) != canon:
            return f"{member.name}: header is not in kubeha's canonical form"
        data_end = member.offset_data + member.size
        expected = data_end + _pad(member.size)
        if not _zeros(fh, data_end, expected):
            return f"{member.name}: non-zero padding"
    end = expected + 2 * BLOCK
    end += -end % tarfile.RECORDSIZE
    if file_size != end or not _zeros(fh, expected, end):
        return f"the archive does not end where its last member says ({file_size} bytes, expected {end})"
    return None


def _directories(members: list[tarfile.TarInfo], top: str) -> str | None:
    """Why the directory members are not exactly the top and the parents of the files (or None)."""
    dirs = {m.name for m in members if m.isdir()}
    parents = {top}
    for member in members:
        if member.isreg():
            parts = member.name.split("/")
            parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    odd = sorted(dirs ^ parents)
    return f"{odd[0]}: directory member without files, or a file without its directory" if odd else None


def read_tar(path: Path) -> tuple[str, dict[str, Member], list[str]]:
    """Vet every header of the bundle tar at ``path`` before any content is read.

    Returns:
        (top directory, regular members by path inside the bundle, problems); with problems, nothing of
        the tar may be used.
    """
    try:
        with path.open("rb") as fh, tarfile.open(fileobj=fh, mode="r:") as tar:
            members = tar.getmembers()
            if not members:
                return "", {}, ["empty archive"]
            top = members[0].name.split("/")[0]
            seen: set[str] = set()
            problems = [p for m in members if (p := _vet(m, top, seen))]
            if not problems:
                problem = _canonical(fh, members, os.fstat(fh.fileno()).st_size) or _directories(members, top)
                problems += [problem] if problem else []
    except (tarfile.TarError, OSError, EOFError, ValueError, UnicodeError) as exc:
        return "", {}, [f"not a readable plain tar: {exc}"]
    regular = {m.name.removeprefix(top + "/"): Member(m.name.removeprefix(top + "/"), m.size, m.offset_data)
               for m in members if m.isreg()}
    return top, regular, problems


def open_member(fh: IO[bytes], member: Member) -> Iterator[bytes]:
    """Yield exactly ``member.size`` bytes of its data from the open tar ``fh``, in chunks."""
    fh.seek(member.offset)
    left = member.size
    while left:
        chunk = fh.read(min(left, CHUNK))
        if not chunk:
            raise ChecksumError(f"{member.rel}: the archive ends inside this member")
        left -= len(chunk)
        yield chunk
