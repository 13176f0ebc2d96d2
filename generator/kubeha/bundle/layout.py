"""What a bundle is made of: its file names, size limits, and the SHA256SUMS format (hashing in chunks).

Layout of a bundle named ``NAME`` (a directory ``NAME/`` and a tar ``NAME.tar`` of it)::

    NAME/bundle.json            what is inside: cluster name and id, serial, images and their IDs, nodes,
                                every file's size and sum (signed: SHA256SUMS lists it)
    NAME/SHA256SUMS             coreutils format, sorted: ``<hex>  <path>`` for every other file
    NAME/SHA256SUMS.asc         detached armored signature of SHA256SUMS
    NAME/KEYS, KEYS.asc, KEYS.pub  the root-signed signing-key list (``bundle pack --root-key``; see
                                :mod:`.keylist`): outside SHA256SUMS, checked before it
    NAME/signing-key.asc        the signer's public key (informational: verification uses YOUR keyring)
    NAME/images/images.tar      the docker-archive, byte for byte
    NAME/images/index.txt       ``<image id> <ref>`` per ref, sorted (what the node-side script reads)
    NAME/images/images.json     the image helper's metadata, when given
    NAME/nodes/<node>/user-data, meta-data   (0600: user-data carries the VRRP secret)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

from kubeha.bundle.keylist import KEY_FILES
from kubeha.errors import ChecksumError

FORMAT_VERSION = 2
SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.asc"
PUBLIC_KEY = "signing-key.asc"
MANIFEST = "bundle.json"
IMAGES_TAR = "images/images.tar"
IMAGES_JSON = "images/images.json"
IMAGES_INDEX = "images/index.txt"
NODE_DOCUMENTS = ("meta-data", "user-data")
OPTIONAL_NODE_DOCUMENTS = ("config.ign",)  # packed with --format ignition, for Flatcar / Fedora CoreOS nodes
UNSIGNED = frozenset({SUMS, SIGNATURE, *KEY_FILES})  # checked by their own signatures, before SHA256SUMS
SMALL_FILES = (SUMS, SIGNATURE, MANIFEST)  # read (bounded) and checked before any other byte is touched
CHUNK = 1 << 20
SMALL_LIMIT = 1 << 20  # SHA256SUMS, its signature and bundle.json are a few KiB; a huge one is an attack
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
PATH_RE = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
SUMS_LINE_RE = re.compile(r"([0-9a-f]{64})  (\S+)")

Advance = Callable[[int], None]
"""Progress callback: called with the number of bytes just processed."""


def no_progress(_: int) -> None:
    """Progress sink used when the caller shows none."""


def hash_stream(src: Any, advance: Advance = no_progress) -> str:
    """SHA-256 of everything ``src`` (a binary file with ``readinto``) yields, in 1 MiB chunks."""
    digest, buf = hashlib.sha256(), bytearray(CHUNK)
    view = memoryview(buf)
    while n := src.readinto(buf):
        digest.update(view[:n])
        advance(n)
    return digest.hexdigest()


def sha256_file(path: Any, advance: Advance = no_progress) -> str:
    """SHA-256 of a file, read in chunks."""
    with open(path, "rb", buffering=0) as fh:
        return hash_stream(fh, advance)


def format_sums(sums: Mapping[str, str]) -> bytes:
    """SHA256SUMS text: coreutils format, sorted by path (byte order), two spaces, LF endings."""
    return "".join(f"{sums[p]}  {p}\n" for p in sorted(sums, key=lambda p: p.encode())).encode()


def safe_relpath(path: str) -> bool:
    """True for a plain relative path: portable characters, no ``.``/``..``/empty component."""
    return bool(PATH_RE.fullmatch(path)) and all(part not in (".", "..") for part in path.split("/"))


def parse_sums(data: bytes, source: str = SUMS) -> dict[str, str]:
    """Parse SHA256SUMS strictly; every bad line is a :class:`ChecksumError` naming ``source:line``."""
    sums: dict[str, str] = {}
    problems: list[str] = []
    try:
        lines = data.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise ChecksumError(f"{source}: not ASCII text") from None
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        match = SUMS_LINE_RE.fullmatch(line)
        if not match or not safe_relpath(match[2]) or match[2] in UNSIGNED:
            problems.append(f"{source}:{number}: malformed or unsafe line: {line[:120]!r}")
        elif match[2] in sums:
            problems.append(f"{source}:{number}: duplicate entry for {match[2]}")
        else:
            sums[match[2]] = match[1]
    if problems or not sums:
        raise ChecksumError("\n".join(problems) or f"{source}: empty")
    return sums
