"""Helpers the tests share: running the CLI, golden cases, and unpacking user-data into a directory tree."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml
from typer.testing import CliRunner

from kubeha.cli.main import app

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CASES = REPO / "tests" / "cases"
# A fixed VRRP secret for cases that use VRRPv2 authentication: a test fixture, not a real secret.
TEST_SECRET = "t3stPass"


@dataclass(frozen=True)
class Case:
    """A golden case: an inventory and the tree it must produce."""

    name: str
    inventory: Path
    vrrp: bool = True  # False: vip_mode external, masters run haproxy only (no keepalived files)

    @property
    def expected(self) -> Path:
        return CASES / self.name / "expected"


GOLDEN_CASES = [
    Case("seed", EXAMPLES / "seed-hosts.ini"),
    Case("example-yaml", EXAMPLES / "cluster.yaml"),
    Case("five-masters", CASES / "five-masters" / "inventory.yaml"),
    Case("classic", CASES / "classic" / "inventory.ini"),
    Case("external", CASES / "external" / "inventory.yaml", vrrp=False),
    Case("external-ini", CASES / "external-ini" / "inventory.ini", vrrp=False),
]
VRRP_CASES = [c for c in GOLDEN_CASES if c.vrrp]


def staged_inventory(src: Path, tmp: Path) -> Path:
    """Copy an inventory into ``tmp`` with the fixed test secret beside it (0600), as kubeha expects."""
    dst = tmp / src.name
    shutil.copyfile(src, dst)
    secret = dst.with_name(dst.name + ".vrrp-secret")
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(TEST_SECRET + "\n")
    return dst


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr). Exceptions fail the test."""
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def write_files(user_data: bytes | str) -> list[dict[str, str]]:
    """The write_files entries of a #cloud-config user-data."""
    doc = yaml.safe_load(user_data)
    return list(doc.get("write_files", []))


def unpack(user_data: bytes | str, root: Path) -> dict[str, Path]:
    """Write a user-data's write_files under ``root`` (plain content only) with their modes; path -> file."""
    out = {}
    for entry in write_files(user_data):
        dest = root / entry["path"].lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(entry["content"])
        dest.chmod(int(entry["permissions"], 8))
        out[entry["path"]] = dest
    return out


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under ``root``: its mode, size and content hash (a link: its target), to assert "nothing
    changed on disk"."""
    seen = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        what = os.readlink(p) if stat.S_ISLNK(st.st_mode) else \
            hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        seen[str(p.relative_to(root))] = (stat.filemode(st.st_mode), st.st_size, what)
    return seen
