# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Issue 21 item 3 (and issue 20 item 4): the state files beside the inventory cannot be planted or redirected.

Each attack row prepares the inventory's directory as an attacker with write access to it would (a symlink to a
file of root's, a file owned by another user, a FIFO, a hard link), runs the real command (``bundle pack`` for
``.cluster-id`` / ``.bundle-serial``, ``gen userdata`` for ``.vrrp-secret``), and asserts the exit code, the
exact stderr, and that nothing changed on disk: every path under the test's directory (the victim file outside
the inventory's directory included) keeps its type, size, mode, owner and content, and no output appears.
The identity rows check that a new cluster id is announced, and refused where an old one evidently existed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha import statefiles
from kubeha.cli.main import app
from kubeha.errors import InvalidInput
from kubeha_test import EXAMPLES
from test_bundle import make_docker_archive
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture

NOBODY = 65534
VALID_ID = "0123456789abcdef0123456789abcdef"
CLASSIC = ("[k8s-master]\n198.18.0.11 name=m1\n198.18.0.12 name=m2\n198.18.0.13 name=m3\n[all:vars]\n"
           "vip=198.18.0.10\nprofile=classic\ninterface=ens3\n")


def snapshot(root: Path) -> dict[str, tuple[str, int, int, int, str]]:
    """Every path under ``root``: type, mode, owner, size and a content digest (symlinks: their target)."""
    seen = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            what = os.readlink(p)
        elif stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            what = ""
        seen[str(p.relative_to(root))] = (stat.filemode(st.st_mode), st.st_uid, st.st_nlink, st.st_size, what)
    return seen


def _private(path: Path, text: str, uid: int = 0) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chown(path, uid, -1)


class Work:
    """A build host's layout: the inventory's directory ``inv/``, a root-only victim file outside it."""

    def __init__(self, root: Path, keys: Keys) -> None:
        self.root, self.keys = root, keys
        self.dir = root / "inv"
        self.dir.mkdir()
        shutil.copy(EXAMPLES / "cluster.yaml", self.dir / "cluster.yaml")
        (self.dir / "classic.ini").write_text(CLASSIC)
        self.images = root / "images.tar"
        make_docker_archive(self.images)
        self.victim = root / "victim"
        _private(self.victim, "root's precious file\n")
        self.out = root / "out"

    def state(self, inventory: str, kind: statefiles.StateKind) -> Path:
        return self.dir / f"{inventory}{kind.suffix}"

    def pack(self, *extra: str) -> tuple[int, str, str]:
        key = self.keys.trusted
        return _run("bundle", "pack", str(self.dir / "cluster.yaml"), "--images", str(self.images), "--sign-key",
                    key.fingerprint, "--gnupghome", str(key.home), "-o", str(self.out), *extra)

    def gen(self, out: Path | None = None) -> tuple[int, str, str]:
        return _run("gen", "userdata", str(self.dir / "classic.ini"), "-o", str(out or self.out))


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def work(tmp_path: Path, gpg_keys: Keys) -> Work:
    return Work(tmp_path, gpg_keys)


def _link_to_victim(w: Work, path: Path) -> None:
    path.symlink_to(w.victim)


def _dangling(w: Work, path: Path) -> None:
    path.symlink_to(w.root / "created-through-the-link")


def _planted(content: str) -> Callable[[Work, Path], None]:
    return lambda _w, path: _private(path, content, NOBODY)


def _fifo(_w: Work, path: Path) -> None:
    os.mkfifo(path, 0o600)


def _directory(_w: Work, path: Path) -> None:
    path.mkdir(mode=0o700)


def _hard_link(w: Work, path: Path) -> None:
    os.link(w.victim, path)


def _readable(content: str) -> Callable[[Work, Path], None]:
    def plant(_w: Work, path: Path) -> None:
        _private(path, content)
        path.chmod(0o644)
    return plant


def _with_id(plant: Callable[[Work, Path], None]) -> Callable[[Work, Path], None]:
    """A legitimate cluster id beside the inventory, then the attack on the serial file."""
    def both(w: Work, path: Path) -> None:
        _private(w.state("cluster.yaml", statefiles.CLUSTER_ID), VALID_ID + "\n")
        plant(w, path)
    return both


LINK = "is a symbolic link: kubeha never follows one here (it could point anywhere); put the real file in its place"
OWNER = (f"owned by uid {NOBODY}, not by uid 0 who runs kubeha: a state file another user made is never adopted; "
         "check where it came from and remove it")
NOT_REGULAR = "is not a regular file: remove it (kubeha makes a new one only where nothing is)"
LINKS = "has 2 hard links: keep it as a file of its own (cp it, then rm the link)"
MODE = "readable by group or others: chmod 600 it"

# (id, state file, command, prepare(work, path), what, message)
ROWS = [
    ("id-symlink-to-root-file", statefiles.CLUSTER_ID, "pack", _link_to_victim, "cluster id", LINK),
    ("id-dangling-symlink", statefiles.CLUSTER_ID, "pack", _dangling, "cluster id", LINK),
    ("id-planted-by-other-user", statefiles.CLUSTER_ID, "pack", _planted(VALID_ID + "\n"), "cluster id", OWNER),
    ("id-fifo", statefiles.CLUSTER_ID, "pack", _fifo, "cluster id", NOT_REGULAR),
    ("id-directory", statefiles.CLUSTER_ID, "pack", _directory, "cluster id", NOT_REGULAR),
    ("id-hard-link-to-root-file", statefiles.CLUSTER_ID, "pack", _hard_link, "cluster id", LINKS),
    ("id-group-readable", statefiles.CLUSTER_ID, "pack", _readable(VALID_ID + "\n"), "cluster id", MODE),
    ("serial-symlink-to-root-file", statefiles.SERIAL, "pack", _with_id(_link_to_victim), "bundle serial", LINK),
    ("serial-dangling-symlink", statefiles.SERIAL, "pack", _with_id(_dangling), "bundle serial", LINK),
    ("serial-planted-by-other-user", statefiles.SERIAL, "pack", _with_id(_planted("7\n")), "bundle serial", OWNER),
    ("serial-fifo", statefiles.SERIAL, "pack", _with_id(_fifo), "bundle serial", NOT_REGULAR),
    ("secret-symlink-to-root-file", statefiles.VRRP_SECRET, "gen", _link_to_victim, "secret", LINK),
    ("secret-dangling-symlink", statefiles.VRRP_SECRET, "gen", _dangling, "secret", LINK),
    ("secret-planted-by-other-user", statefiles.VRRP_SECRET, "gen", _planted("attackr\n"), "secret", OWNER),
    ("secret-fifo", statefiles.VRRP_SECRET, "gen", _fifo, "secret", NOT_REGULAR),
    ("secret-hard-link-to-root-file", statefiles.VRRP_SECRET, "gen", _hard_link, "secret", LINKS),
    ("secret-group-readable", statefiles.VRRP_SECRET, "gen", _readable("s3cret\n"), "secret", MODE),
]


@pytest.mark.parametrize(("kind", "command", "prepare", "what", "message"), [r[1:] for r in ROWS],
                         ids=[r[0] for r in ROWS])
def test_state_file_attack(work: Work, kind: statefiles.StateKind, command: str,
                           prepare: Callable[[Work, Path], None], what: str, message: str) -> None:
    inventory = "cluster.yaml" if command == "pack" else "classic.ini"
    path = work.state(inventory, kind)
    prepare(work, path)
    before = snapshot(work.root)
    code, stdout, stderr = work.pack() if command == "pack" else work.gen()
    assert (code, stdout) == (1, "")
    assert stderr.splitlines() == [f"{path}:1: error: {what}: {message}",
                                   "kubeha: 1 error(s), 0 warning(s); nothing written"]
    assert snapshot(work.root) == before
    assert not work.out.exists() and not (work.root / "created-through-the-link").exists()
    for secret in ("attackr", "s3cret"):
        assert secret not in stderr


def test_new_state_files_are_private_and_announced(work: Work) -> None:
    code, _, stderr = work.pack()
    assert code == 0, stderr
    path, serial = work.state("cluster.yaml", statefiles.CLUSTER_ID), work.state("cluster.yaml", statefiles.SERIAL)
    cid = path.read_text().strip()
    assert stderr.splitlines()[0] == (f"kubeha: made a new cluster id {cid} for cluster demo in {path}: keep it and "
                                      "cluster.yaml.bundle-serial with the inventory (in git); nodes provisioned "
                                      "from this bundle accept only bundles of this id")
    for made in (path, serial):
        st = made.lstat()
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    assert serial.read_text() == "1\n"
    code, _, stderr = work.pack()  # the second bundle: same id, next serial (replaced, never written through)
    assert code == 0 and "made a new cluster id" not in stderr
    assert path.read_text().strip() == cid and serial.read_text() == "2\n"
    assert sorted(p.name for p in work.dir.iterdir()) == ["classic.ini", "cluster.yaml", "cluster.yaml.bundle-serial",
                                                          "cluster.yaml.cluster-id"]
    code, _, _ = work.gen(work.root / "userdata")
    secret = work.state("classic.ini", statefiles.VRRP_SECRET)
    assert code == 0 and stat.S_IMODE(secret.lstat().st_mode) == 0o600 and secret.lstat().st_uid == os.geteuid()


def test_lost_cluster_id_is_not_replaced_silently(work: Work) -> None:
    code, _, stderr = work.pack()
    assert code == 0, stderr
    old = json.loads((work.out / "demo" / "bundle.json").read_text())["cluster_id"]
    # the inventory copied to another folder (issue 20): no id, no serial, the old bundle in the output place
    moved = work.root / "moved"
    moved.mkdir()
    shutil.copy(work.dir / "cluster.yaml", moved / "cluster.yaml")
    key = work.keys.trusted
    argv = ["bundle", "pack", str(moved / "cluster.yaml"), "--images", str(work.images), "--sign-key",
            key.fingerprint, "--gnupghome", str(key.home), "-o", str(work.out)]
    before = snapshot(work.root)
    code, _, stderr = _run(*argv)
    assert code == 1
    assert stderr.splitlines() == [
        f"{moved}/cluster.yaml.cluster-id: error: cluster id: missing, but {work.out}/demo/bundle.json is a bundle "
        f"of cluster demo (id {old}, serial 1): a new id would make the nodes provisioned before refuse every "
        "later bundle. Put the old cluster.yaml.cluster-id back beside the inventory (the id is in the old "
        "bundle.json) and keep it with the inventory (in git), or pass --new-cluster-id to start a new cluster "
        "on purpose",
        "kubeha: 1 error(s), 0 warning(s); nothing written"]
    assert snapshot(work.root) == before
    # the serial file alone is a sign too (the id deleted, the output elsewhere)
    work.state("cluster.yaml", statefiles.CLUSTER_ID).unlink()
    before = snapshot(work.root)
    code, _, stderr = work.pack("-o", str(work.root / "elsewhere"))
    assert code == 1 and stderr.splitlines()[0] == (
        f"{work.dir}/cluster.yaml.cluster-id: error: cluster id: missing, but {work.dir}/cluster.yaml.bundle-serial "
        "records serial 1: a new id would make the nodes provisioned before refuse every later bundle. Put the old "
        "cluster.yaml.cluster-id back beside the inventory (the id is in the old bundle.json) and keep it with "
        "the inventory (in git), or pass --new-cluster-id to start a new cluster on purpose")
    assert snapshot(work.root) == before
    # on purpose: a new id, announced
    code, _, stderr = _run(*argv, "--new-cluster-id")
    assert code == 0, stderr
    new = (moved / "cluster.yaml.cluster-id").read_text().strip()
    assert new != old and stderr.startswith(f"kubeha: made a new cluster id {new} for cluster demo in {moved}/")


def test_create_never_writes_through_an_entry_that_appeared(tmp_path: Path) -> None:
    """The window between reading (nothing there) and creating: a symlink planted in it is not followed."""
    victim = tmp_path / "victim"
    _private(victim, "precious\n")
    path = tmp_path / "c.yaml.cluster-id"
    path.symlink_to(victim)
    with pytest.raises(InvalidInput) as raised:
        statefiles.create(path, statefiles.CLUSTER_ID, VALID_ID)
    assert str(raised.value.problems[0]) == (f"{path}:1: error: cluster id: appeared while kubeha was making it "
                                             "(another kubeha run, or someone else): check it and run again")
    assert victim.read_text() == "precious\n" and path.is_symlink()
