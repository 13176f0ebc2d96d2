"""Signed offline bundles: pack per-node documents and an image archive, verify them anywhere.

Layout of a bundle named ``NAME`` (a directory ``NAME/`` and a tar ``NAME.tar`` of it)::

    NAME/bundle.json            what is inside (format, cluster, kubeha version, images, nodes, files)
    NAME/SHA256SUMS             coreutils format, sorted: ``<hex>  <path>`` for every other file
    NAME/SHA256SUMS.asc         detached armored signature of SHA256SUMS
    NAME/signing-key.asc        the signer's public key (informational: verification uses YOUR keyring)
    NAME/images/images.tar      the docker-archive, byte for byte
    NAME/images/index.txt       ``<image id> <ref>`` per ref, sorted (what the node-side script reads)
    NAME/images/images.json     the image helper's metadata, when given
    NAME/nodes/<node>/user-data, meta-data   (0600: user-data carries the VRRP secret)

Reproducible: same inputs -> byte-identical tar (sorted members, mtime ``SOURCE_DATE_EPOCH`` or 0, uid/gid
0, fixed modes, GNU format without pax timestamps; the signature time is fixed too, see
:mod:`kubeha.signing`). Packing streams every file in chunks (memory is flat in image size) and is atomic:
everything is built in a hidden temp dir beside the output and renamed into place at the end.

Verification checks the signature first (exit 4), then every sum, reporting mismatched, missing and extra
files by name (exit 3). A tar is vetted from its headers before anything is read: only regular files and
directories, relative names under one top directory, no ``..``, no duplicates; a tar that fails this is
refused with exit 3 (its content is not what was signed) and nothing of it is written anywhere. Only
SHA256SUMS and its signature are extracted, into a private temp dir; every other member is hashed in-stream.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubeha import __version__
from kubeha.errors import (
    ChecksumError,
    ExitCode,
    InvalidInput,
    KubehaError,
    Location,
    Problem,
    SignatureError,
)
from kubeha.signing import Signer, verify_detached

FORMAT_VERSION = 1
SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.asc"
PUBLIC_KEY = "signing-key.asc"
MANIFEST = "bundle.json"
IMAGES_TAR = "images/images.tar"
IMAGES_JSON = "images/images.json"
IMAGES_INDEX = "images/index.txt"
NODE_DOCUMENTS = ("meta-data", "user-data")
OPTIONAL_NODE_DOCUMENTS = ("config.ign",)  # packed with --format ignition, for Flatcar / Fedora CoreOS nodes


def node_documents(docs: Mapping[str, bytes]) -> tuple[str, ...]:
    """The documents of one node that a bundle carries: the cloud-init pair and any optional ones present."""
    return NODE_DOCUMENTS + tuple(d for d in OPTIONAL_NODE_DOCUMENTS if d in docs)
UNSIGNED = frozenset({SUMS, SIGNATURE})
CHUNK = 1 << 20
SMALL_LIMIT = 16 << 20  # SHA256SUMS and its signature are tiny; a huge one is an attack, not a bundle
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
PATH_RE = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
SUMS_LINE_RE = re.compile(r"([0-9a-f]{64})  (\S+)")

Advance = Callable[[int], None]
"""Progress callback: called with the number of bytes just processed."""


def _no_progress(_: int) -> None:
    """Progress sink used when the caller shows none."""


# --------------------------------------------------------------------------------------------------------
# Checksums


def hash_stream(src: Any, advance: Advance = _no_progress) -> str:
    """SHA-256 of everything ``src`` (a binary file with ``readinto``) yields, in 1 MiB chunks."""
    digest, buf = hashlib.sha256(), bytearray(CHUNK)
    view = memoryview(buf)
    while n := src.readinto(buf):
        digest.update(view[:n])
        advance(n)
    return digest.hexdigest()


def sha256_file(path: Path, advance: Advance = _no_progress) -> str:
    """SHA-256 of a file, read in chunks."""
    with path.open("rb", buffering=0) as fh:
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


# --------------------------------------------------------------------------------------------------------
# Packing


@dataclass(frozen=True)
class PackResult:
    """Where a packed bundle landed and what it holds."""

    name: str
    directory: Path
    tarball: Path
    files: int  # signed files (entries in SHA256SUMS)
    size: int
    tar_size: int
    fingerprint: str


@dataclass
class _Staging:
    """A bundle being built in ``root``: the files written so far and their sums."""

    root: Path
    sums: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def write(self, rel: str, data: bytes, mode: int = 0o644) -> None:
        """Write a small file (and record its sum)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        self.sums[rel], self.sizes[rel] = hashlib.sha256(data).hexdigest(), len(data)

    def copy(self, rel: str, src: Path, phase: Callable[[str, int], Advance]) -> None:
        """Copy a big file in (in-kernel), then hash the copy: the sum describes exactly the bundled bytes."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        size = src.stat().st_size
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask: the tar records the mode
            _copy_into(src, fd, size, phase(f"copy {src.name}", size))
        finally:
            os.close(fd)
        self.sums[rel], self.sizes[rel] = sha256_file(path, phase(f"hash {src.name}", size)), size


def _check_name(kind: str, value: str) -> None:
    """Refuse names that cannot be a single safe path component."""
    if not NAME_RE.fullmatch(value):
        message = f"{value!r} is not a valid name ([A-Za-z0-9._-], max 63)"
        problem = Problem(Location("<bundle>"), kind, message)
        raise InvalidInput([problem])


def _image_entries(images: Path) -> tuple[list[dict[str, Any]], bytes]:
    """Image metadata for bundle.json and the ``index.txt`` the node script reads."""
    from kubeha.images import inspect_archive  # noqa: PLC0415 - keeps `bundle verify` free of image code

    infos = inspect_archive(images)
    pairs = sorted({(info.image_id, ref) for info in infos for ref in info.refs})
    if not pairs:
        raise InvalidInput([Problem(Location(str(images)), "images", "the archive holds no tagged image")])
    return [info.to_dict() for info in infos], "".join(f"{i} {r}\n" for i, r in pairs).encode()


def _manifest(stage: _Staging, *, name: str, cluster: str, images: list[dict[str, Any]],
              nodes: Mapping[str, tuple[str, ...]], fingerprint: str, install: Mapping[str, str]) -> bytes:
    """bundle.json: everything inside, as sorted JSON."""
    doc = {
        "format": FORMAT_VERSION,
        "name": name,
        "cluster": cluster,
        "kubeha_version": __version__,
        "images": {"archive": IMAGES_TAR, "sha256": stage.sums[IMAGES_TAR], "images": images},
        "nodes": {n: [f"nodes/{n}/{d}" for d in docs] for n, docs in nodes.items()},
        "files": [{"path": p, "size": stage.sizes[p], "sha256": stage.sums[p]} for p in sorted(stage.sums)],
        "signing_key": {"path": PUBLIC_KEY, "fingerprint": fingerprint},
        "install": dict(install),
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _tar_members(root: Path) -> list[str]:
    """Every path under ``root`` (relative), parents before children, in a fixed order."""
    paths = [str(p.relative_to(root)) for p in root.rglob("*")]
    return sorted(paths, key=lambda p: p.split("/"))


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out (a regular file may take a short write)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _copy_into(src: Path, fd_out: int, size: int, advance: Advance) -> None:
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
                _write_all(fd_out, chunk)
                left -= len(chunk)
                advance(len(chunk))


def write_tar(root: Path, name: str, out: Path, mtime: int, advance: Advance = _no_progress) -> None:
    """Write a reproducible GNU tar of ``root`` whose members live under ``name/``.

    Headers come from :class:`tarfile.TarInfo`; file data is copied in-kernel (no pass through Python),
    which is what keeps packing close to ``tar -cf`` speed.
    """
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        offset = 0
        for rel in ["", *_tar_members(root)]:
            path = root / rel if rel else root
            info = tarfile.TarInfo(f"{name}/{rel}".rstrip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "root", "root"
            info.mode = path.stat().st_mode & 0o777
            info.type = tarfile.DIRTYPE if path.is_dir() else tarfile.REGTYPE
            info.size = 0 if path.is_dir() else path.stat().st_size
            header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")
            _write_all(fd, header)
            if info.size:
                _copy_into(path, fd, info.size, advance)
            pad = -info.size % tarfile.BLOCKSIZE
            _write_all(fd, tarfile.NUL * pad)
            offset += len(header) + info.size + pad
        end = 2 * tarfile.BLOCKSIZE
        _write_all(fd, tarfile.NUL * (end + -(offset + end) % tarfile.RECORDSIZE))
    finally:
        os.close(fd)


def _source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH when set (and sane), else 0: the mtime of every tar member."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else 0


def _install_final(staging: Path, out: Path, name: str) -> None:
    """Move ``staging/NAME`` and ``staging/NAME.tar`` to ``out``, replacing an older bundle of that name."""
    for item in (name, f"{name}.tar"):
        final = out / item
        if final.exists() or final.is_symlink():
            final.rename(staging / f"old-{item}")
    (staging / name).rename(out / name)
    (staging / f"{name}.tar").rename(out / f"{name}.tar")


@dataclass(frozen=True)
class PackInput:
    """What goes into a bundle besides the node documents."""

    cluster: str
    images: Path
    images_json: Path | None = None
    name: str | None = None
    install: Mapping[str, str] = field(default_factory=dict)


def pack_bundle(out: Path, documents: Mapping[str, Mapping[str, bytes]], inputs: PackInput, signer: Signer,
                progress: Callable[[str, int], Advance] | None = None) -> PackResult:
    """Pack a signed, reproducible bundle into ``out/NAME/`` and ``out/NAME.tar``.

    Args:
        out: output directory (created if missing).
        documents: node name -> {"user-data": bytes, "meta-data": bytes}.
        inputs: cluster name, image archive (+ metadata), bundle name, install settings for bundle.json.
        signer: the GnuPG key that signs SHA256SUMS.
        progress: ``progress(description, total_bytes)`` returns an ``advance(n)`` callback per phase.

    Raises:
        InvalidInput: bad names, missing documents or image archive.
        SigningError: the key cannot sign.
    """
    name = inputs.name or inputs.cluster
    _validate_inputs(name, documents, inputs)
    phase = progress or (lambda _d, _t: _no_progress)
    fingerprint, public_key = signer.fingerprint(), signer.export_public_key()
    images, index = _image_entries(inputs.images)  # fail fast, before copying gigabytes
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=out))
    try:
        root = staging / name
        stage = _Staging(root)
        root.mkdir(mode=0o755)
        stage.copy(IMAGES_TAR, inputs.images, phase)
        _stage_small_files(stage, documents, inputs, public_key)
        stage.write(IMAGES_INDEX, index)
        stage.write(MANIFEST, _manifest(stage, name=name, cluster=inputs.cluster, images=images,
                                        nodes={n: node_documents(documents[n]) for n in sorted(documents)},
                                        fingerprint=fingerprint,
                                        install=inputs.install))
        (root / SUMS).write_bytes(format_sums(stage.sums))
        (root / SIGNATURE).write_bytes(signer.sign_detached(root / SUMS))
        for rel in (SUMS, SIGNATURE):
            (root / rel).chmod(0o644)
        for public_dir in (root, root / "images"):  # fixed modes whatever the umask: the tar records them
            public_dir.chmod(0o755)
        total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        tar_path = staging / f"{name}.tar"
        write_tar(root, name, tar_path, _source_date_epoch(), phase("write tar", total))
        tar_path.chmod(0o600)  # it holds every node's user-data, hence the VRRP secret
        tar_size = tar_path.stat().st_size
        _install_final(staging, out, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PackResult(name, out / name, out / f"{name}.tar", len(stage.sums), total, tar_size, fingerprint)


def _validate_inputs(name: str, documents: Mapping[str, Mapping[str, bytes]], inputs: PackInput) -> None:
    """Collect every problem with the pack inputs and raise them together."""
    _check_name("bundle name", name)
    problems = []
    for node in sorted(documents):
        _check_name("node name", node)
        missing = [d for d in NODE_DOCUMENTS if d not in documents[node]]
        if missing:
            problems.append(Problem(Location("<documents>"), node, f"missing {', '.join(missing)}"))
    if not documents:
        problems.append(Problem(Location("<documents>"), "nodes", "no node documents to pack"))
    for path in (inputs.images, inputs.images_json):
        if path is not None and not path.is_file():
            problems.append(Problem(Location(str(path)), "images", "no such file"))
    if problems:
        raise InvalidInput(problems)


def _stage_small_files(stage: _Staging, documents: Mapping[str, Mapping[str, bytes]], inputs: PackInput,
                       public_key: str) -> None:
    """Node documents (0600, in 0700 dirs: they hold secrets), public key and image metadata."""
    for node in sorted(documents):
        for doc in node_documents(documents[node]):
            stage.write(f"nodes/{node}/{doc}", documents[node][doc], 0o600)
        (stage.root / "nodes" / node).chmod(0o700)
    (stage.root / "nodes").chmod(0o700)
    stage.write(PUBLIC_KEY, public_key.encode())
    if inputs.images_json is not None:
        stage.write(IMAGES_JSON, inputs.images_json.read_bytes())


# --------------------------------------------------------------------------------------------------------
# Verification


@dataclass
class VerifyReport:
    """The outcome of ``verify``: ``exit_code`` 0 ok, 3 checksums/structure, 4 signature."""

    bundle: str
    exit_code: int = ExitCode.OK
    signer: str = ""
    signed_at: int = 0
    files: int = 0
    bytes: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the signature and every sum check out."""
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


def _compare(report: VerifyReport, sums: Mapping[str, str], actual: Mapping[str, str]) -> VerifyReport:
    """Fill mismatched/missing/extra from expected ``sums`` and ``actual`` hashes of the payload files."""
    report.missing = sorted(set(sums) - set(actual))
    report.extra = sorted(set(actual) - set(sums))
    report.mismatched = sorted(p for p in set(sums) & set(actual) if sums[p] != actual[p])
    report.files = len(actual)
    parts = [f"{label}: {', '.join(paths)}" for label, paths in
             (("checksum mismatch", report.mismatched), ("missing", report.missing), ("extra", report.extra))
             if paths]
    if parts:
        report.fail(ChecksumError("; ".join(parts)))
    return report


def _check_signature(report: VerifyReport, sig: Path, sums: Path, keyring: Path) -> bool:
    """Verify the signature, record the signer; False (and an exit-4 error) when it does not hold."""
    if not sums.is_file():
        report.fail(SignatureError(f"{SUMS} is missing: nothing in this bundle is signed"))
        return False
    try:
        verdict = verify_detached(sig, sums, keyring)
    except SignatureError as exc:
        report.fail(exc)
        return False
    report.signer, report.signed_at = verdict.primary_fingerprint, verdict.timestamp
    return True


def _walk_dir(root: Path, report: VerifyReport) -> Iterator[tuple[str, Path]]:
    """Yield (relative path, path) of every regular file; anything else is recorded as unsafe."""
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in sorted(dirnames + filenames):
            path = Path(dirpath, entry)
            rel = str(path.relative_to(root))
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                report.unsafe.append(f"{rel}: not a regular file or directory")
            elif not safe_relpath(rel):
                report.unsafe.append(f"{rel}: unsafe name")
            elif path.is_file():
                yield rel, path
        dirnames[:] = [d for d in dirnames if Path(dirpath, d).is_dir() and not Path(dirpath, d).is_symlink()]


def verify_directory(root: Path, keyring: Path, advance: Advance = _no_progress) -> VerifyReport:
    """Verify an unpacked bundle directory (see the module docstring)."""
    report = VerifyReport(str(root))
    if not _check_signature(report, root / SIGNATURE, root / SUMS, keyring):
        return report
    try:
        sums = parse_sums((root / SUMS).read_bytes())
    except ChecksumError as exc:
        return report.fail(exc)
    actual: dict[str, str] = {}
    for rel, path in _walk_dir(root, report):
        if rel not in UNSIGNED:
            actual[rel] = sha256_file(path, advance) if rel in sums else "extra"
            report.bytes += path.stat().st_size
    if report.unsafe:
        report.fail(ChecksumError("unsafe entries: " + "; ".join(report.unsafe)))
    return _compare(report, sums, actual)


def _vet_member(member: tarfile.TarInfo, top: str | None, seen: set[str]) -> str | None:
    """Why ``member`` is unsafe (or None): type, absolute or ``..`` names, another top dir, duplicates."""
    name = member.name
    if not (member.isreg() or member.isdir()):
        kind = "symlink" if member.issym() else "hardlink" if member.islnk() else "device or special file"
        return f"{name}: {kind} refused"
    if name.startswith("/") or not safe_relpath(name):
        return f"{name}: absolute, '..' or unsafe path refused"
    if top is not None and name != top and not name.startswith(top + "/"):
        return f"{name}: outside the bundle directory {top}/"
    if name in seen:
        return f"{name}: duplicate member refused"
    seen.add(name)
    return None


def vet_tar(tar: tarfile.TarFile) -> tuple[str, list[str]]:
    """Check every header before anything is read; return (top directory, problems)."""
    top: str | None = None
    seen: set[str] = set()
    problems = []
    for member in tar:
        top = top or member.name.split("/")[0]
        problem = _vet_member(member, top, seen)
        if problem:
            problems.append(problem)
    return top or "", problems


def _extract_small(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    """Extract one small regular member into ``dest`` (a private temp dir), refusing oversized ones."""
    if member.size > SMALL_LIMIT:
        raise ChecksumError(f"{member.name}: {member.size} bytes, too large for a {dest.name} file")
    handle = tar.extractfile(member)
    if handle is None:
        raise ChecksumError(f"{member.name}: unreadable")
    with handle, dest.open("wb") as out:
        shutil.copyfileobj(handle, out)


def verify_tarball(path: Path, keyring: Path, advance: Advance = _no_progress) -> VerifyReport:
    """Verify a bundle tar without extracting it (see the module docstring)."""
    report = VerifyReport(str(path))
    try:
        tar = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by the `with` below
    except (tarfile.TarError, OSError) as exc:
        return report.fail(ChecksumError(f"{path}: not a readable tar: {exc}"))
    with tar, tempfile.TemporaryDirectory(prefix="kubeha-verify-") as tmp:
        top, report.unsafe = vet_tar(tar)
        if report.unsafe:
            return report.fail(ChecksumError("unsafe tar, nothing extracted: " + "; ".join(report.unsafe)))
        members = {m.name.removeprefix(top + "/"): m for m in tar.getmembers() if m.isreg()}
        for rel in UNSIGNED:
            if rel in members:
                _extract_small(tar, members[rel], Path(tmp, rel))
        if not _check_signature(report, Path(tmp, SIGNATURE), Path(tmp, SUMS), keyring):
            return report
        try:
            sums = parse_sums(Path(tmp, SUMS).read_bytes())
        except ChecksumError as exc:
            return report.fail(exc)
        actual = {rel: _hash_member(tar, m, advance) if rel in sums else "extra"
                  for rel, m in members.items() if rel not in UNSIGNED}
        report.bytes = sum(m.size for m in members.values())
    return _compare(report, sums, actual)


def _hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo, advance: Advance) -> str:
    """SHA-256 of a member's content, streamed."""
    handle = tar.extractfile(member)
    if handle is None:  # pragma: no cover - vetted to be a regular file
        raise ChecksumError(f"{member.name}: unreadable")
    with handle:
        return hash_stream(handle, advance)


def verify_bundle(bundle: Path, keyring: Path, advance: Advance = _no_progress) -> VerifyReport:
    """Verify a bundle directory or tar against the trusted public key(s) in ``keyring``.

    Returns:
        A :class:`VerifyReport`; its ``exit_code`` is 0, 3 (checksum/structure) or 4 (signature).

    Raises:
        InvalidInput: the bundle or keyring cannot be read at all.
    """
    if bundle.is_dir():
        return verify_directory(bundle, keyring, advance)
    if bundle.is_file():
        return verify_tarball(bundle, keyring, advance)
    raise InvalidInput([Problem(Location(str(bundle)), "bundle", "no such file or directory")])


def bundle_size(bundle: Path) -> int:
    """Bytes to hash when verifying ``bundle`` (for a progress bar)."""
    if bundle.is_file():
        return bundle.stat().st_size
    return sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
