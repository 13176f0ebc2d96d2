"""Verify a bundle (directory or plain tar) against trusted keys, and optionally keep a verified private copy.

Order, the same for both forms and the same as the node-side script:

1. every entry is vetted from metadata alone (tar headers in canonical form, see :mod:`.tarsafe`; for a
   directory, lstat: regular files and directories only, safe names) -> exit 3;
2. the small signed files are read with a size bound: the signing-key list when the bundle carries one
   (KEYS, KEYS.asc, KEYS.pub: signed by a pinned root key, not older than ``min_keys_version``, not expired,
   see :mod:`.keylist`), SHA256SUMS and SHA256SUMS.asc, and the signature is checked with gpgv status lines
   (:mod:`.signing`): by a key the list certifies, or without a list by a pinned key -> exit 4;
3. bundle.json must match its signed sum; it says each file's size, the cluster and the serial; a wrong
   cluster or a serial below ``--min-serial`` -> exit 4 (the bundle is genuine but not for this use);
4. the listing must equal the signed list (no extra file; a missing one only where the per-node subset
   allows it) and every size must equal the signed size, still before any large content is read -> exit 3;
5. every listed file is hashed in one bounded streaming pass; with ``dest`` that same pass writes the
   private copy, so what is used afterwards is exactly what was hashed and the source is not read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from kubeha.bundle.keylist import KEY_FILES, KEYS_PUBLIC, KeyList, KeyListError, check_key_list
from kubeha.bundle.layout import (
    CHUNK,
    FORMAT_VERSION,
    MANIFEST,
    SIGNATURE,
    SMALL_LIMIT,
    SUMS,
    UNSIGNED,
    Advance,
    no_progress,
    parse_sums,
    safe_relpath,
)
from kubeha.bundle.signing import verify_detached
from kubeha.bundle.tarsafe import Member, open_member, read_tar
from kubeha.errors import ChecksumError, ExitCode, InvalidInput, KubehaError, Location, Problem, SignatureError


class TrustError(KubehaError):
    """A genuine bundle that is not for this use: another cluster, or older than the serial floor (exit 4)."""

    exit_code = ExitCode.SIGNATURE


@dataclass(frozen=True)
class Expect:
    """What the caller requires of the bundle besides a good signature."""

    cluster: str | None = None  # the cluster's name or its id
    min_serial: int = 0
    node: str | None = None  # accept the per-node subset of this node (other nodes' files may be absent)
    min_keys_version: int = 0  # the newest signing-key list version the verifier has seen (an older one: exit 4)


@dataclass
class VerifyReport:
    """The outcome of ``verify``: ``exit_code`` 0 ok, 3 checksums/structure, 4 signature or trust."""

    bundle: str
    exit_code: int = ExitCode.OK
    signer: str = ""
    signed_at: int = 0
    keys_version: int = 0  # the signing-key list that certified the signer (0: signed by a pinned key)
    cluster: str = ""
    cluster_id: str = ""
    serial: int = 0
    files: int = 0
    bytes: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the signature, the identity checks and every sum hold."""
        return self.exit_code == ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, **asdict(self)}

    def fail(self, exc: KubehaError) -> VerifyReport:
        """Record an error (the first one decides the exit code)."""
        if self.exit_code == ExitCode.OK:
            self.exit_code = exc.exit_code
        self.errors.append(str(exc))
        return self


class _Source:
    """Where bundle bytes come from: ``entries`` (path -> size) and bounded reads of one file."""

    entries: dict[str, int]
    problems: list[str]

    def chunks(self, rel: str, size: int) -> Iterator[bytes]:  # pragma: no cover - interface
        """Yield the content of ``rel``, at most ``size + 1`` bytes."""
        raise NotImplementedError

    def read_small(self, rel: str) -> bytes:
        """The whole of a small file, refused above :data:`SMALL_LIMIT`."""
        if self.entries.get(rel, 0) > SMALL_LIMIT:
            raise ChecksumError(f"{rel}: {self.entries[rel]} bytes, too large for a {rel} file")
        return b"".join(self.chunks(rel, SMALL_LIMIT))


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root, self.entries, self.problems = root, {}, []
        for dirpath, dirnames, filenames in os.walk(root):
            for entry in sorted(dirnames + filenames):
                path = Path(dirpath, entry)
                rel, mode = str(path.relative_to(root)), os.lstat(path)
                if not (stat.S_ISREG(mode.st_mode) or stat.S_ISDIR(mode.st_mode)):
                    self.problems.append(f"{rel}: not a regular file or directory")
                elif not safe_relpath(rel):
                    self.problems.append(f"{rel}: unsafe name")
                elif stat.S_ISREG(mode.st_mode):
                    self.entries[rel] = mode.st_size
            dirnames[:] = [d for d in dirnames if stat.S_ISDIR(os.lstat(Path(dirpath, d)).st_mode)]

    def chunks(self, rel: str, size: int) -> Iterator[bytes]:
        # The listing's lstat is not the open: a FIFO, device or link swapped in since must neither block nor
        # be followed. O_NONBLOCK opens a FIFO at once; fstat then refuses anything but a regular file.
        try:
            fd = os.open(self.root / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise ChecksumError(f"{rel}: cannot read ({exc.strerror}); changed after the listing") from None
        with os.fdopen(fd, "rb", buffering=0) as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ChecksumError(f"{rel}: not a regular file (changed after the listing)")
            left = size + 1  # one byte more than allowed shows a file that grew
            while left and (chunk := fh.read(min(left, CHUNK))):
                left -= len(chunk)
                yield chunk


class _TarSource(_Source):
    def __init__(self, path: Path) -> None:
        _, self.members, self.problems = read_tar(path)
        self.entries = {rel: m.size for rel, m in self.members.items()}
        self.fh: IO[bytes] = path.open("rb")

    def chunks(self, rel: str, size: int) -> Iterator[bytes]:
        member = self.members[rel]
        yield from open_member(self.fh, Member(rel, min(member.size, size + 1), member.offset))


@dataclass(frozen=True)
class _Manifest:
    cluster: str
    cluster_id: str
    serial: int
    sizes: dict[str, int]


def _parse_manifest(data: bytes) -> _Manifest:
    """The fields of a signed bundle.json that verification relies on (anything odd: exit 3)."""
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT_VERSION:
            raise ChecksumError(f"{MANIFEST}: format {doc.get('format')!r}, this kubeha reads {FORMAT_VERSION}")
        sizes = {f["path"]: f["size"] for f in doc["files"]}
        ok = (isinstance(doc["cluster"], str) and isinstance(doc["cluster_id"], str)
              and type(doc["serial"]) is int and all(type(s) is int and s >= 0 for s in sizes.values()))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ChecksumError(f"{MANIFEST}: not a kubeha bundle manifest") from None
    if not ok:
        raise ChecksumError(f"{MANIFEST}: not a kubeha bundle manifest")
    return _Manifest(doc["cluster"], doc["cluster_id"], doc["serial"], sizes)


def _signature(source: _Source, report: VerifyReport, keyring: Path, expect: Expect) -> tuple[dict[str, str],
                                                                                          KeyList | None]:
    """Steps 2: the bounded small files, the signing-key list and the signature; returns the signed sums."""
    for rel in (SUMS, SIGNATURE):
        if rel not in source.entries:
            raise SignatureError(f"{rel} is missing: nothing in this bundle is signed")
    with tempfile.TemporaryDirectory(prefix="kubeha-verify-") as tmp:
        for rel in (SUMS, SIGNATURE, *(k for k in KEY_FILES if k in source.entries)):
            Path(tmp, rel).write_bytes(source.read_small(rel))
        keys = check_key_list(Path(tmp), keyring, expect.min_keys_version)
        if keys is None:
            verdict = verify_detached(Path(tmp, SIGNATURE), Path(tmp, SUMS), keyring)
        else:
            verdict = verify_detached(Path(tmp, SIGNATURE), Path(tmp, SUMS), keyring, extra=Path(tmp, KEYS_PUBLIC),
                                      trusted=set(keys.keys), what=f"one of the keys {keys.describe()} certifies")
            report.keys_version = keys.version
        report.signer, report.signed_at = verdict.primary_fingerprint, verdict.timestamp
        return parse_sums(Path(tmp, SUMS).read_bytes()), keys


def _identity(source: _Source, report: VerifyReport, sums: dict[str, str], expect: Expect,
              keys: KeyList | None) -> _Manifest:
    """Step 3: bundle.json against its sum, then the cluster and serial checks."""
    if MANIFEST not in sums or MANIFEST not in source.entries:
        raise ChecksumError(f"{MANIFEST} is missing or not signed")
    data = source.read_small(MANIFEST)
    if hashlib.sha256(data).hexdigest() != sums[MANIFEST]:
        raise ChecksumError(f"checksum mismatch: {MANIFEST}")
    manifest = _parse_manifest(data)
    report.cluster, report.cluster_id, report.serial = manifest.cluster, manifest.cluster_id, manifest.serial
    if expect.cluster is not None and expect.cluster not in (manifest.cluster, manifest.cluster_id):
        raise TrustError(f"bundle of cluster {manifest.cluster} ({manifest.cluster_id}), not {expect.cluster}")
    if keys is not None and keys.cluster_id != manifest.cluster_id:
        raise KeyListError(f"{keys.describe()} is for cluster {keys.cluster_id}, not this bundle's "
                           f"{manifest.cluster_id}")
    if manifest.serial < expect.min_serial:
        raise TrustError(f"bundle serial {manifest.serial} is older than the lowest accepted {expect.min_serial}")
    unsized = sorted(set(sums) - set(manifest.sizes) - {MANIFEST})
    if unsized:
        raise ChecksumError(f"{MANIFEST} gives no size for {', '.join(unsized)}")
    return manifest


def _optional(rel: str, node: str | None) -> bool:
    """In a per-node subset, other nodes' documents may be absent."""
    return node is not None and rel.startswith("nodes/") and not rel.startswith(f"nodes/{node}/")


def _listing(source: _Source, report: VerifyReport, sums: dict[str, str], manifest: _Manifest,
             expect: Expect) -> list[str]:
    """Step 4: names and sizes against the signed list; returns the files to hash."""
    present = set(source.entries) - UNSIGNED
    report.extra = sorted(present - set(sums))
    report.missing = sorted(p for p in set(sums) - present if not _optional(p, expect.node))
    wrong = [f"{p}: {source.entries[p]} bytes, signed size {manifest.sizes[p]}"
             for p in sorted(present & set(sums)) if p != MANIFEST and source.entries[p] != manifest.sizes[p]]
    parts = [f"{label}: {', '.join(paths)}" for label, paths in
             (("missing", report.missing), ("extra", report.extra), ("size differs", wrong)) if paths]
    if parts:
        raise ChecksumError("; ".join(parts) + " (nothing read past the signed files)")
    return sorted(present & set(sums))


def _hash_all(source: _Source, report: VerifyReport, sums: dict[str, str], files: list[str], dest: Path | None,
              advance: Advance) -> None:
    """Step 5: hash every listed file, writing the private copy in the same pass."""
    for rel in files:
        size = source.entries[rel]
        digest, seen = hashlib.sha256(), 0
        out = None
        if dest is not None:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            out = os.open(dest / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            for chunk in source.chunks(rel, size):
                digest.update(chunk)
                seen += len(chunk)
                if out is not None:
                    os.write(out, chunk)
                advance(len(chunk))
        finally:
            if out is not None:
                os.close(out)
        if seen != size or digest.hexdigest() != sums[rel]:
            report.mismatched.append(rel)
        report.bytes += seen
    report.files = len(files)
    if report.mismatched:
        raise ChecksumError(f"checksum mismatch: {', '.join(report.mismatched)}")


def _open(bundle: Path) -> _Source:
    if bundle.is_dir():
        return _DirSource(bundle)
    if bundle.is_file():
        return _TarSource(bundle)
    raise InvalidInput([Problem(Location(str(bundle)), "bundle", "no such file or directory")])


def verify_bundle(bundle: Path, keyring: Path, advance: Advance = no_progress, expect: Expect | None = None,
                  dest: Path | None = None) -> VerifyReport:
    """Verify a bundle directory or tar against the trusted public key(s) in ``keyring``.

    Args:
        bundle: the bundle directory or plain tar.
        keyring: trusted public keys (armored or binary).
        advance: progress callback (bytes hashed).
        expect: cluster, lowest serial and per-node subset to require.
        dest: an empty private directory: receives the verified copy (use only it afterwards).

    Returns:
        A :class:`VerifyReport`; its ``exit_code`` is 0, 3 (checksum/structure) or 4 (signature/trust).

    Raises:
        InvalidInput: the bundle or keyring cannot be read at all.
    """
    expect = expect or Expect()
    report = VerifyReport(str(bundle))
    source: _Source | None = None
    try:
        source = _open(bundle)
        if source.problems:
            report.unsafe = source.problems
            raise ChecksumError("unsafe bundle, nothing read: " + "; ".join(source.problems))
        sums, keys = _signature(source, report, keyring, expect)
        manifest = _identity(source, report, sums, expect, keys)
        files = _listing(source, report, sums, manifest, expect)
        _hash_all(source, report, sums, files, dest, advance)
        if dest is not None:
            for rel in (SUMS, SIGNATURE, *(k for k in KEY_FILES if k in source.entries)):
                (dest / rel).write_bytes(source.read_small(rel))
    except (ChecksumError, SignatureError, TrustError, KeyListError) as exc:
        report.fail(exc)
    except OSError as exc:
        report.fail(ChecksumError(f"cannot read the bundle: {exc.strerror or exc}"))
    finally:
        if isinstance(source, _TarSource):
            source.fh.close()
    return report


def bundle_size(bundle: Path) -> int:
    """Bytes to hash when verifying ``bundle`` (for a progress bar)."""
    if bundle.is_file():
        return bundle.stat().st_size
    return sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())


def stage_verified(bundle: Path, keyring: Path, dest: Path, expect: Expect | None = None,
                   advance: Advance = no_progress) -> VerifyReport:
    """Verify ``bundle`` into the fresh private directory ``dest`` (0700); raise unless it verified.

    Raises:
        ChecksumError, SignatureError, TrustError: the report's first error (exit 3 or 4).
    """
    dest.mkdir(mode=0o700)
    report = verify_bundle(bundle, keyring, advance, expect, dest)
    if not report.ok:
        kind: Callable[[str], KubehaError] = ChecksumError if report.exit_code == ExitCode.CHECKSUM else SignatureError
        raise kind("; ".join(report.errors))
    return report
