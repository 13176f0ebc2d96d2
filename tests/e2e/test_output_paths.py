"""A bad ``-o`` that takes root to make: a read-only file system (a real read-only tmpfs in a private mount
namespace) and a directory the user may not write (kubeha run as nobody). Every writing command says so
in one line, exits 1 and writes nothing; ``drill`` without containerd says what to start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeha_test import EXAMPLES
from test_cli_table import snapshot

pytestmark = pytest.mark.e2e

KUBEHA = str(Path(sys.executable).with_name("kubeha"))
NOBODY = 65534


def writers(out: str) -> dict[str, list[str]]:
    """Each writing command with ``-o out`` (inputs that would otherwise be fine up to the output)."""
    return {
        "gen userdata": ["gen", "userdata", "cluster.yaml", "-o", out],
        "gen seed-iso": ["gen", "seed-iso", "cluster.yaml", "-o", out],
        "bundle pack": ["bundle", "pack", "cluster.yaml", "--images", "images.tar", "--sign-key", "ops@example.org",
                        "-o", out],
        "image save": ["image", "save", "-o", f"{out}/images.tar"],
    }


@pytest.fixture
def work() -> Iterator[Path]:
    """A world-readable work dir outside root's private /tmp/pytest-of-root (nobody must read the inventory)."""
    root = Path(tempfile.mkdtemp(prefix="kh-out-", dir="/tmp"))
    root.chmod(0o755)
    shutil.copy(EXAMPLES / "cluster.yaml", root / "cluster.yaml")
    (root / "cluster.yaml").chmod(0o644)
    (root / "images.tar").write_bytes(b"")
    (root / "ro").mkdir()
    (root / "locked").mkdir(mode=0o755)  # root's; nobody may not create anything in it
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("command", list(writers("x")))
def test_read_only_file_system(work: Path, command: str) -> None:
    argv = " ".join(f"'{a}'" for a in writers("ro/out")[command])
    script = f"mount -t tmpfs -o ro tmpfs ro && exec {KUBEHA} {argv}"
    before = snapshot(work)
    run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=work,
                         capture_output=True, text=True, timeout=60, check=False)
    shown = "ro/out/images.tar" if command == "image save" else "ro/out"
    assert run.returncode == 1, run.stderr
    assert run.stderr == f"kubeha: error: -o {shown}: {work}/ro is on a read-only file system; nothing written\n"
    assert snapshot(work) == before


@pytest.fixture
def reachable_by_nobody() -> Iterator[None]:
    """Let nobody reach kubeha: search permission on every ancestor of the venv, interpreter and source tree.

    A clone in a private directory (``mktemp -d`` makes 0700) would otherwise stop nobody before kubeha runs.
    Only directories lacking o+x are changed, and their modes are put back afterwards.
    """
    import kubeha

    targets = [Path(KUBEHA), Path(os.path.realpath(sys.executable)), Path(kubeha.__file__).resolve()]
    changed: dict[Path, int] = {}
    for target in targets:
        for parent in target.parents:
            mode = parent.stat().st_mode
            if parent not in changed and not mode & 0o001:
                changed[parent] = mode & 0o7777
                parent.chmod(changed[parent] | 0o001)
    try:
        yield
    finally:
        for parent, mode in changed.items():
            parent.chmod(mode)


@pytest.mark.parametrize("command", list(writers("x")))
def test_directory_the_user_may_not_write(work: Path, command: str, reachable_by_nobody: None) -> None:
    before = snapshot(work)
    env = {k: v for k, v in os.environ.items() if k != "GNUPGHOME"} | {"HOME": str(work)}
    run = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", KUBEHA,
                          *writers("locked/out")[command]], cwd=work, env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    shown = "locked/out/images.tar" if command == "image save" else "locked/out"
    assert run.returncode == 1, run.stderr
    assert run.stderr == (f"kubeha: error: -o {shown}: cannot write in {work}/locked: permission denied; "
                          "nothing written\n")
    assert snapshot(work) == before


def test_drill_without_containerd_says_what_to_start(work: Path) -> None:
    run = subprocess.run([KUBEHA, "drill", "cluster.yaml", "--address", str(work / "none.sock")], cwd=work,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1
    assert run.stderr == (f"kubeha: error: cannot reach containerd at {work}/none.sock: no socket there. Start "
                          "containerd (systemctl start containerd, or run `containerd` as root), or point "
                          "--address at its socket; --runtime host uses this machine's keepalived and haproxy "
                          "instead\n")
