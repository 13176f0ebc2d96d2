# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""The attack suite against the CLI: one row per class of issue 9, through ``bundle verify`` and ``gen seed-iso``.

Each row turns a good signed bundle (examples/cluster.yaml packed with a small docker-archive) into a hostile
one and asserts the exit code, a clear message, no traceback, and that nothing was written anywhere: the
working directory and the bundle's own directory are unchanged and ``gen seed-iso`` created no output.
The node-side half of the table is tests/e2e/test_node_attacks.py.
"""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kubeha.bundle import PackResult, write_tar
from kubeha.bundle.pack import pack_inventory
from kubeha.cli.bundle import app as bundle_app
from kubeha.cli.seediso import seed_iso
from kubeha_test import EXAMPLES, staged_inventory
from test_bundle import make_docker_archive, tar_member
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture


@dataclass
class Good:
    inventory: Path
    bundle: PackResult
    keys: Keys
    work: Path

    def variant(self, tamper: Callable[[Path], None]) -> Path:
        """A tar of the bundle directory after ``tamper`` (a fresh copy each time)."""
        copy = self.work / "copy" / "demo"
        shutil.rmtree(copy.parent, ignore_errors=True)
        shutil.copytree(self.bundle.directory, copy)
        tamper(copy)
        out = self.work / "variant.tar"
        write_tar(copy, "demo", out, 0)
        shutil.rmtree(copy.parent)
        return out

    def appended(self, member: tarfile.TarInfo) -> Path:
        out = self.work / "appended.tar"
        shutil.copy(self.bundle.tarball, out)
        with tarfile.open(out, "a") as tar:
            tar.addfile(member, io.BytesIO(b"owned\n") if member.isreg() else None)
        return out


@pytest.fixture
def good(tmp_path: Path, gpg_keys: Keys) -> Good:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    images = tmp_path / "images.tar"
    make_docker_archive(images)
    bundle = pack_inventory(inventory, images, gpg_keys.trusted.signer(), tmp_path / "bundles", name="demo",
                            serial=5)
    work = tmp_path / "work"
    work.mkdir()
    return Good(inventory, bundle, gpg_keys, work)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _gzip(g: Good) -> Path:
    out = g.work / "bundle.tar.gz"
    out.write_bytes(gzip.compress(g.bundle.tarball.read_bytes()))
    return out


def _sparse(g: Good) -> Path:
    copy = g.work / "sparse" / "demo"
    shutil.copytree(g.bundle.directory, copy)
    (copy / "images/images.tar").unlink()
    with (copy / "images/images.tar").open("wb") as fh:
        fh.truncate(10 << 30)
    out = g.work / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", str(out), "-C", str(copy.parent), "demo"], check=True)
    shutil.rmtree(copy.parent)
    return out


@dataclass(frozen=True)
class Row:
    make: Callable[[Good], Path]
    code: int
    message: str
    verify_args: tuple[str, ...] = ()
    seed_iso: bool = True  # seed-iso refuses it too (it has no --cluster/--min-serial options of its own)


ROWS: dict[str, Row] = {
    "re-signed by another key": Row(lambda g: g.variant(lambda r: (r / "SHA256SUMS.asc").write_bytes(
        g.keys.other.signer().sign_detached(r / "SHA256SUMS"))), 4, "signed by unknown key"),
    "unsigned": Row(lambda g: g.variant(lambda r: (r / "SHA256SUMS.asc").unlink()), 4, "SHA256SUMS.asc is missing"),
    "bit flip in the image archive": Row(lambda g: g.variant(lambda r: _flip(r / "images/images.tar")), 3,
                                         "checksum mismatch: images/images.tar"),
    "bit flip in bundle.json": Row(lambda g: g.variant(lambda r: _flip(r / "bundle.json")), 3,
                                   "checksum mismatch: bundle.json"),
    "another cluster (--cluster)": Row(lambda g: g.bundle.tarball, 4, "not 0000", ("--cluster", "0" * 32), False),
    "older than --min-serial": Row(lambda g: g.bundle.tarball, 4, "bundle serial 5 is older than the lowest accepted 6",
                                   ("--min-serial", "6"), False),
    "size differs from the signed size": Row(lambda g: g.variant(lambda r: (r / "images/images.tar").write_bytes(
        (r / "images/images.tar").read_bytes()[:-512])), 3, "signed size"),
    "member the signed list does not name": Row(lambda g: g.variant(lambda r: (r / "nodes/evil").write_text("x")), 3,
                                                "extra: nodes/evil"),
    "symlink member": Row(lambda g: g.appended(tar_member("demo/nodes/l", tarfile.SYMTYPE, "/etc/shadow")), 3,
                          "demo/nodes/l: symlink refused"),
    "hardlink member": Row(lambda g: g.appended(tar_member("demo/nodes/h", tarfile.LNKTYPE, "demo/SHA256SUMS")), 3,
                           "demo/nodes/h: hardlink refused"),
    "device member": Row(lambda g: g.appended(tar_member("demo/nodes/d", tarfile.CHRTYPE)), 3,
                         "demo/nodes/d: device or special file refused"),
    "duplicate member": Row(lambda g: g.appended(tar_member("demo/SHA256SUMS")), 3, "duplicate member refused"),
    "path traversal": Row(lambda g: g.appended(tar_member("demo/../../escaped")), 3, "unsafe path refused"),
    "gzip-compressed tar": Row(_gzip, 3, "not a readable plain tar"),
    "10 GB sparse member": Row(_sparse, 3, "sparse file refused"),
    "truncated tar": Row(lambda g: _truncated(g), 3, "unsafe bundle, nothing read"),
}


def _truncated(g: Good) -> Path:
    out = g.work / "short.tar"
    out.write_bytes(g.bundle.tarball.read_bytes()[: g.bundle.tar_size // 2 // 512 * 512])
    return out


# Genuine bundles refused for this use: the signature is good, and the verdict says so.
TRUST_ROWS = ("another cluster (--cluster)", "older than --min-serial")


def tree(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() if p.is_file() else b"<dir>" for root in roots for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_cli_verify_refuses(good: Good, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    row = ROWS[name]
    target = row.make(good)
    monkeypatch.chdir(good.work)
    before = tree(good.work, good.bundle.directory)
    result = CliRunner().invoke(bundle_app, ["verify", str(target), "--keyring", str(good.keys.trusted.public),
                                             *row.verify_args])
    assert result.exit_code == row.code, result.output
    assert row.message in result.stderr, result.stderr
    verdict = ("checksum verification failed" if row.code == 3 else
               f"good signature by {good.keys.trusted.fingerprint}, but not accepted" if name in TRUST_ROWS else
               "signature verification failed")
    assert result.stderr.endswith(f"FAILED {target}: {verdict}\n")
    assert result.stdout == "" and "Traceback" not in result.output
    assert tree(good.work, good.bundle.directory) == before
    assert not Path("/escaped").exists()


def _seed_app() -> typer.Typer:
    app = typer.Typer()
    app.command("seed-iso")(seed_iso)
    app.command("noop")(lambda: None)
    return app


@pytest.mark.parametrize("name", sorted(n for n, r in ROWS.items() if r.seed_iso))
def test_cli_seed_iso_refuses(good: Good, name: str, tmp_path: Path) -> None:
    row = ROWS[name]
    target = row.make(good)
    before = tree(good.work, good.bundle.directory)
    out = tmp_path / "isos"
    result = CliRunner().invoke(_seed_app(), ["seed-iso", str(good.inventory), "--bundle", str(target),
                                              "--keyring", str(good.keys.trusted.public), "-o", str(out)])
    assert result.exit_code == row.code, result.output
    assert row.message in result.stderr and "Traceback" not in result.output
    assert not out.exists() and tree(good.work, good.bundle.directory) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".kubeha-seed-")] == []


def test_cli_verify_prints_and_checks_identity(good: Good) -> None:
    cid = good.inventory.with_name(good.inventory.name + ".cluster-id").read_text().strip()
    for extra in ([], ["--cluster", cid, "--min-serial", "5"], ["--cluster", "demo"]):
        result = CliRunner().invoke(bundle_app, ["verify", str(good.bundle.tarball), "--keyring",
                                                 str(good.keys.trusted.public), *extra])
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"OK {good.bundle.tarball}: cluster demo ({cid}) serial 5, signature by ")
