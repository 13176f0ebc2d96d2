# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""The attack suite (issue 9): one row per way to break the bundle trust chain, against the real node script.

Each row runs the real /usr/local/sbin/kubeha-install over a fake root with a private containerd twice:

* ``fresh``: nothing installed yet -> exit 1, FAILED with the row's reason, no manifest placed, no image
  imported, no installed serial recorded;
* ``installed``: serial 2 is installed -> exit 0, "kept serial 2: ..." with the row's reason, and nothing
  changed: the same manifests (bytes), the same images (refs and targets), the same installed serial.

In both, the staging directory is empty afterwards and a sampler checks that it never held more than the
download bound (KUBEHA_MAX_BYTES, set to 1 MiB here). The shared signature table runs through the node too.
"""

from __future__ import annotations

import gzip
import http.server
import io
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemons import ctr
from test_node_install import MANIFESTS, Node, Packed, assert_ok, containerd, node, packed  # noqa: F401

from kubeha.bundle import PackInput, pack_bundle, write_tar
from kubeha.bundle.signing import Signer
from signature_cases import CASE_NAMES, SigCase, SigKeys
from test_bundle import REFS, make_docker_archive, tar_member
from test_signature_table import sig_keys  # noqa: F401 - session fixture
from test_signing import Keys, gpg_keys  # noqa: F401

pytestmark = pytest.mark.e2e

BOUND = 1 << 20


@dataclass
class Ctx:
    node: Node
    packed: Packed
    keys: Keys
    tmp: Path
    images: Path
    server: str

    def url(self, mode: str) -> str:
        """The hostile HTTP server's URL, serving an endless body or lying about its length."""
        _Handler.mode = mode
        return f"{self.server}/kubeha.tar"

    def keepalived_only(self) -> Path:
        path = self.tmp / "keepalived-only.tar"
        make_docker_archive(path, REFS[:1])
        return path

    def bundle(self, serial: int, *, cluster_id: str | None = None, images: Path | None = None,
               tamper: Callable[[Path], None] | None = None, docs_extra: bytes = b"",
               signer: Signer | None = None) -> Path:
        """A bundle of the packed documents with this serial (and cluster id, archive, tamper), as a tar."""
        out = self.tmp / f"b{serial}-{len(list(self.tmp.iterdir()))}"
        documents = {n: {k: v + docs_extra for k, v in d.items()} for n, d in self.packed.documents.items()}
        inputs = PackInput("demo", images or self.images, name="kubeha", serial=serial,
                           cluster_id=cluster_id or self.node.cluster_id)
        result = pack_bundle(out, documents, inputs, signer or self.keys.trusted.signer())
        if tamper is None:
            return result.tarball
        tamper(result.directory)
        tar = out / "tampered.tar"
        write_tar(result.directory, "kubeha", tar, 0)
        return tar


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _resign(keys: Keys) -> Callable[[Path], None]:
    return lambda r: (r / "SHA256SUMS.asc").write_bytes(keys.other.signer().sign_detached(r / "SHA256SUMS"))


def _rearmor(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """Change the armor of a good signature in a way gpgv still reads as the same signature."""
    def tamper(root: Path) -> None:
        sig = root / "SHA256SUMS.asc"
        before = sig.read_bytes()
        sig.write_bytes(change(before))
        assert sig.read_bytes() != before
    return tamper


def _rewrap(armor: bytes) -> bytes:
    lines = armor.split(b"\n")
    body = b"".join(lines[2:-3])
    return b"\n".join([*lines[:2], *(body[i:i + 76] for i in range(0, len(body), 76)), *lines[-3:]])


def _append_member(tar: Path, member: tarfile.TarInfo) -> Path:
    evil = tar.with_name("evil.tar")
    shutil.copy(tar, evil)
    with tarfile.open(evil, "a") as t:
        t.addfile(member, io.BytesIO(b"owned\n") if member.isreg() else None)
    return evil


def _sparse(ctx: Ctx) -> Path:
    """The bundle with images/images.tar replaced by a 10 GB sparse file, tarred by GNU tar --sparse."""
    root = ctx.tmp / "sparse" / "kubeha"
    shutil.copytree(ctx.packed.bundle.directory, root)
    (root / "images/images.tar").unlink()
    with (root / "images/images.tar").open("wb") as fh:
        fh.truncate(10 << 30)
    tar = ctx.tmp / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(tar), "-C", str(root.parent), "kubeha"], check=True)
    assert tar.stat().st_size < BOUND
    return tar


def _bomb(ctx: Ctx) -> Path:
    """A gzip'd tar that inflates to 256 MiB (the good bundle plus a member of zeros)."""
    out = ctx.tmp / "bomb.tar.gz"
    with gzip.open(out, "wb", compresslevel=9) as gz:
        gz.write(ctx.packed.bundle.tarball.read_bytes())
        block = bytes(1 << 20)
        for _ in range(256):
            gz.write(block)
    return out


def _padded(ctx: Ctx) -> Path:
    big = ctx.tmp / "big.tar"
    big.write_bytes(ctx.packed.bundle.tarball.read_bytes() + bytes(2 * BOUND))
    return big


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "endless"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        if self.mode == "liar":
            self.send_header("Content-Length", str(10 * BOUND))
        self.end_headers()
        chunk = bytes(64 << 10)
        deadline = time.monotonic() + 20  # bounded: the test stops it anyway
        try:
            while time.monotonic() < deadline:
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass(frozen=True)
class Row:
    place: Callable[[Ctx], Path | str | None]  # a tar to put on the seed, a URL, or None (no bundle)
    reason: str
    step: str = "verify"
    fresh: bool = True  # also an attack on a node with nothing installed
    env: tuple[tuple[str, str], ...] = ()


ROWS: dict[str, Row] = {
    # 1/2. only verified bytes, decided by signature status
    "re-signed by another key": Row(lambda c: c.bundle(3, tamper=_resign(c.keys)), "signature by unknown key"),
    "bit flip in the image archive": Row(lambda c: c.bundle(3, tamper=lambda r: _flip(r / "images/images.tar")),
                                         "checksum mismatch: images/images.tar"),
    "unsigned (signature removed)": Row(lambda c: c.bundle(3, tamper=lambda r: (r / "SHA256SUMS.asc").unlink()),
                                        "SHA256SUMS.asc is missing"),
    "armor with an added header line": Row(
        lambda c: c.bundle(3, tamper=_rearmor(lambda a: a.replace(b"-----\n\n", b"-----\nComment: x\n\n", 1))),
        "SHA256SUMS.asc: not one armored detached signature"),
    "armor with CRLF line ends": Row(lambda c: c.bundle(3, tamper=_rearmor(lambda a: a.replace(b"\n", b"\r\n"))),
                                     "SHA256SUMS.asc: not one armored detached signature"),
    "armor body re-wrapped at 76 columns": Row(lambda c: c.bundle(3, tamper=_rearmor(_rewrap)),
                                               "SHA256SUMS.asc: not one armored detached signature"),
    "armor with a trailing space": Row(lambda c: c.bundle(3, tamper=_rearmor(lambda a: a.replace(b"\n=", b" \n=", 1))),
                                       "SHA256SUMS.asc: not one armored detached signature"),
    # 4. bound to one cluster, never rolled back
    "another cluster's bundle": Row(lambda c: c.bundle(3, cluster_id="f" * 32), "bundle of cluster demo (ffff"),
    "serial below the user-data floor": Row(lambda c: c.bundle(3), "bundle serial 3 is older than the lowest accepted 5",
                                            env=(("KUBEHA_MIN_SERIAL", "5"),)),
    "older than the installed serial": Row(lambda c: c.bundle(1), "bundle serial 1 is older than the installed serial 2",
                                           fresh=False),
    "same serial, other content": Row(lambda c: c.bundle(2, docs_extra=b"# other\n"),
                                      "bundle serial 2 is installed already with other content", fresh=False),
    # 5. no work for untrusted bytes: headers and signed sizes first, plain tars only, bounded downloads
    "member size differs from the signed size": Row(
        lambda c: c.bundle(3, tamper=lambda r: (r / "images/images.tar").write_bytes(
            (r / "images/images.tar").read_bytes()[:-1024])), "images/images.tar: 29696 bytes, signed size 30720"),
    "member the signed list does not name": Row(lambda c: c.bundle(3, tamper=lambda r: (r / "nodes/evil").write_text("x")),
                                                "extra files: nodes/evil"),
    "symlink member": Row(lambda c: _append_member(c.bundle(3), tar_member("kubeha/nodes/l", tarfile.SYMTYPE, "/etc/shadow")),
                          "unsafe bundle, nothing read: unexpected entry"),
    "duplicate member": Row(lambda c: _append_member(c.bundle(3), tar_member("kubeha/SHA256SUMS")),
                            "duplicate member: kubeha/SHA256SUMS"),
    "device member": Row(lambda c: _append_member(c.bundle(3), tar_member("kubeha/nodes/d", tarfile.CHRTYPE)),
                         "not a regular file or directory: kubeha/nodes/d"),
    "gzip decompression bomb": Row(_bomb, "not a plain (uncompressed) tar"),
    "10 GB sparse member": Row(_sparse, "unsafe bundle, nothing read"),
    "tar larger than the bound": Row(_padded, "is larger than the bound of 1048576 bytes", step="stage"),
    "endless HTTP body": Row(lambda c: c.url("endless"), "is larger than the bound of 1048576 bytes", step="stage"),
    "HTTP Content-Length above the bound": Row(lambda c: c.url("liar"), "is larger than the bound of 1048576 bytes",
                                               step="stage"),
    # 6. a later bad day
    "bundle missing": Row(lambda c: None, "bundle not found at cidata", step="locate"),
    "bundle server unreachable": Row(lambda c: "http://127.0.0.1:9/kubeha.tar", "download of http://127.0.0.1:9/kubeha.tar failed",
                                     step="stage"),
    # 7. the images the pods need
    "newer bundle lacking a pod image": Row(lambda c: c.bundle(3, images=c.keepalived_only()),
                                            "static pod image kubeha.local/haproxy:3.0.11 is not in the bundle"),
}


def snapshot(node: Node) -> dict[str, object]:
    target = node.root / "etc/kubernetes/manifests"
    installed = node.root / "var/lib/kubeha/installed"
    return {
        "manifests": {p.name: p.read_bytes() for p in sorted(target.iterdir())} if target.is_dir() else {},
        "images": sorted(ctr(node.daemon, "images", "ls").stdout.splitlines()[1:]),
        "installed": installed.read_text() if installed.exists() else None,
    }


def run_sampled(node: Node) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the script while a sampler records the most bytes the staging directory ever held."""
    staging = node.root / "var/lib/kubeha/staging"
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                size = sum(p.stat().st_blocks * 512 for p in staging.rglob("*") if p.is_file())
            except OSError:
                size = 0
            peak[0] = max(peak[0], size)
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        proc = node.run()
    finally:
        done.set()
        thread.join(timeout=10)
    return proc, peak[0]


def _set_env(node: Node, key: str, value: str) -> None:
    env = node.root / "etc/kubeha/install.env"
    lines = [f"{key}={value}" if line.startswith(f"{key}=") else line for line in env.read_text().splitlines()]
    env.write_text("\n".join(lines) + "\n")


@pytest.fixture
def ctx(node: Node, packed: Packed, gpg_keys: Keys, tmp_path: Path, hostile_server: str) -> Ctx:
    images = tmp_path / "images.tar"
    make_docker_archive(images)
    work = tmp_path / "bundles"
    work.mkdir()
    c = Ctx(node, packed, gpg_keys, work, images, hostile_server)
    _set_env(node, "KUBEHA_MAX_BYTES", str(BOUND))
    return c


# "older than installed" and "same serial, other content" need an install: on an empty node that bundle is
# simply the first one
PARAMS = [(name, state) for name in sorted(ROWS) for state in ("fresh", "installed") if state == "installed" or ROWS[name].fresh]


@pytest.mark.parametrize(("name", "state"), PARAMS)
def test_attack(ctx: Ctx, name: str, state: str) -> None:
    row, node = ROWS[name], ctx.node
    if state == "installed":
        node.place_tar(ctx.bundle(2))
        assert_ok(node, node.run(), "imported", serial=2)
    for key, value in row.env:
        _set_env(node, key, value)
    seed = node.root / "var/lib/cloud/seed/nocloud/kubeha-bundle.tar"
    seed.unlink(missing_ok=True)
    placed = row.place(ctx)
    if isinstance(placed, Path):
        node.place_tar(placed)
    elif isinstance(placed, str):
        node.set_source(placed)
    before = snapshot(node)
    proc, peak = run_sampled(node)
    line = proc.stdout.strip()
    if state == "installed":
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert line.startswith(f"kubeha-install: kept serial 2: step={row.step} reason="), line
        assert node.status["verdict"] == "kept" and node.status["serial"] == 2
    else:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert line.startswith(f"kubeha-install: FAILED {node.status['node']} step={row.step} reason="), line
        assert node.status["verdict"] == "failed"
        assert before["manifests"] == {} and before["images"] == []
    assert row.reason in line, line
    assert node.console.read_text().splitlines()[-1] == line
    assert snapshot(node) == before  # no manifest placed or replaced, no image imported or retagged, same serial
    assert list((node.root / "var/lib/kubeha/staging").iterdir()) == []
    assert peak <= BOUND + (64 << 10), peak  # the bound, plus the few small files it stages


def test_source_swapped_after_staging_is_not_read(ctx: Ctx) -> None:
    """Item 1: once the tar is copied into staging the source is never read again: swapping it does nothing."""
    node = ctx.node
    good = ctx.bundle(3)
    node.place_tar(good)
    evil = ctx.bundle(4, tamper=lambda r: _flip(r / "images/images.tar"))
    seed = node.root / "var/lib/cloud/seed/nocloud/kubeha-bundle.tar"
    staging = node.root / "var/lib/kubeha/staging"
    swapped = threading.Event()

    def swap() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not swapped.is_set():
            for copy in staging.glob("work.*/bundle.tar"):
                if copy.stat().st_size == good.stat().st_size:
                    shutil.copy(evil, seed.with_name("tmp.tar"))
                    seed.with_name("tmp.tar").replace(seed)
                    swapped.set()
            time.sleep(0.001)

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    proc = node.run()
    swapped.set()
    thread.join(timeout=10)
    assert seed.read_bytes() == evil.read_bytes()  # the medium changed under the script
    assert_ok(node, proc, "imported", serial=3)  # ... and it installed what it had verified


@pytest.fixture(scope="module")
def node_cases(sig_keys: SigKeys, packed: Packed, tmp_path_factory: pytest.TempPathFactory) -> dict[str, SigCase]:
    from signature_cases import signature_cases

    return signature_cases(sig_keys, packed.bundle.directory / "SHA256SUMS", tmp_path_factory.mktemp("nodecases"))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_signature_case_through_node(node: Node, packed: Packed, node_cases: dict[str, SigCase], tmp_path: Path,
                                     name: str) -> None:
    """The shared signature table: the node reaches the same verdict as ``kubeha bundle verify``."""
    case = node_cases[name]
    copy = tmp_path / "kubeha"
    shutil.copytree(packed.bundle.directory, copy)
    (copy / "SHA256SUMS.asc").write_bytes(case.signature)
    for rel, data in case.key_files.items():
        (copy / rel).write_bytes(data)
    tar = tmp_path / "case.tar"
    write_tar(copy, "kubeha", tar, 0)
    node.place_tar(tar)
    (node.root / "etc/kubeha/bundle-key.asc").write_bytes(case.keyring)
    _set_env(node, "KUBEHA_KEY_FPR", " ".join(case.fingerprints))
    kept = node.root / "var/lib/kubeha/keys"
    if case.seen:
        kept.mkdir(parents=True)
        for rel, data in case.seen.items():
            (kept / rel).write_bytes(data)
    proc = node.run()
    # the newest verified list is kept (even when the bundle it came with is refused); nothing else is
    want = dict(case.key_files) if case.keeps else dict(case.seen)
    assert ({p.name: p.read_bytes() for p in kept.iterdir()} if kept.is_dir() else {}) == want
    if case.accept:
        assert_ok(node, proc, "imported")
        return
    line = proc.stdout.strip()
    assert proc.returncode == 1 and line.startswith(f"kubeha-install: FAILED {node.status['node']} step=verify reason="), line
    assert case.node in line, line
    assert node.manifests() == [] and ctr(node.daemon, "images", "ls", "-q").stdout.strip() == ""


def test_fingerprint_pin_is_enforced(node: Node, packed: Packed, tmp_path: Path, gpg_keys: Keys) -> None:
    """A key file holding the signer's key is not enough: its fingerprint must be the one the user-data pins."""
    node.place_tar(packed.bundle.tarball)
    _set_env(node, "KUBEHA_KEY_FPR", gpg_keys.other.fingerprint)
    proc = node.run()
    assert proc.returncode == 1 and "which is not one of the trusted keys" in proc.stdout, proc.stdout
    assert node.manifests() == []

