# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Issue 21 item 5: the -o rule for ``gen userdata --layout http`` and ``gen http-tree``.

A web root already holds things kubeha did not write (index.html, another cluster's tree, pxe/vmlinuz). Each
attack row runs the real command at such a directory and asserts exit 1, the exact message and that nothing
changed on disk; with ``--force`` the command writes its tree and leaves every foreign entry as it was.
``--node X`` touches only X's folder; a re-run removes only the folders kubeha wrote for nodes now gone.
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

from kubeha.bundle.pack import pack_inventory
from kubeha.cli.main import app
from kubeha_test import EXAMPLES, staged_inventory
from test_bundle import make_docker_archive
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture

NODES = ["master1", "master2", "master3", "worker1", "worker2"]


def snapshot(root: Path) -> dict[str, tuple[str, int, int, str]]:
    seen = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        what = os.readlink(p) if stat.S_ISLNK(st.st_mode) else \
            hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        seen[str(p.relative_to(root))] = (stat.filemode(st.st_mode), st.st_ino, st.st_size, what)
    return seen


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _index(web: Path) -> None:
    (web / "index.html").write_text("<h1>the site</h1>\n")


def _other_tree(web: Path) -> None:
    (web / "other-cp1").mkdir()
    (web / "other-cp1" / "user-data").write_text("#cloud-config\n")


def _pxe(web: Path) -> None:
    (web / "pxe").mkdir()
    (web / "pxe" / "vmlinuz").write_bytes(b"\x7fELF kernel")


FOREIGN: list[tuple[str, Callable[[Path], None], str]] = [
    ("web-root-index", _index, "index.html"),
    ("another-clusters-tree", _other_tree, "other-cp1"),
    ("pxe-kernel", _pxe, "pxe"),
]


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)


@pytest.fixture
def bundle(tmp_path: Path, inventory: Path, gpg_keys: Keys) -> Path:
    images = tmp_path / "images.tar"
    make_docker_archive(images)
    # PXE nodes fetch the bundle over HTTP (a cidata-sourced bundle is refused by http-tree: issue 20 item 5)
    return pack_inventory(inventory, images, gpg_keys.trusted.signer(), tmp_path / "bundles", name="demo",
                          source="http://198.18.0.1/demo.tar").tarball


def _gen(inventory: Path, web: Path, *extra: str) -> tuple[int, str, str]:
    return _run("gen", "userdata", str(inventory), "--layout", "http", "-o", str(web), *extra)


@pytest.mark.parametrize(("plant", "shown"), [r[1:] for r in FOREIGN], ids=[r[0] for r in FOREIGN])
@pytest.mark.parametrize("command", ["layout-http", "http-tree"])
def test_foreign_entries_are_refused_then_left_alone(tmp_path: Path, inventory: Path, bundle: Path, gpg_keys: Keys,
                                                     command: str, plant: Callable[[Path], None],
                                                     shown: str) -> None:
    web = tmp_path / "www"
    web.mkdir()
    plant(web)
    theirs = snapshot(web)

    def run(*extra: str) -> tuple[int, str, str]:
        if command == "layout-http":
            return _gen(inventory, web, *extra)
        return _run("gen", "http-tree", str(inventory), "--bundle", str(bundle), "--keyring",
                    str(gpg_keys.trusted.public), "-o", str(web), *extra)

    before = snapshot(tmp_path)
    code, stdout, stderr = run()
    assert (code, stdout) == (1, "")
    assert stderr.splitlines() == [f"kubeha: error: -o {web}: holds files kubeha did not write ({shown}); choose "
                                   "an empty or new directory, or pass --force (they are left alone); nothing written"]
    assert snapshot(tmp_path) == before
    code, _, stderr = run("--force")
    assert code == 0, stderr
    after = snapshot(web)
    assert {k: v for k, v in after.items() if k in theirs} == theirs  # every foreign entry exactly as it was
    assert sorted(p.name for p in web.iterdir()) == sorted([".kubeha-manifest.json", "README.txt", *NODES,
                                                            *(p.name for p in web.iterdir() if p.name in theirs)])
    assert json.loads((web / ".kubeha-manifest.json").read_text())["entries"] == sorted(["README.txt", *NODES])


def test_node_touches_only_that_node(tmp_path: Path, inventory: Path) -> None:
    web = tmp_path / "www"
    assert _gen(inventory, web)[0] == 0
    before = snapshot(web)
    code, _, stderr = _gen(inventory, web, "--node", "master2")
    assert code == 0, stderr
    after = snapshot(web)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    # master2's folder is new (renamed into place), its files are; nothing else, README.txt included
    assert changed and all(k.startswith("master2") or k == ".kubeha-manifest.json" for k in changed), changed
    assert [k for k in after if k.startswith("master2/")] == [k for k in before if k.startswith("master2/")]


def test_rerun_removes_only_kubehas_folders_of_nodes_gone(tmp_path: Path, inventory: Path) -> None:
    web = tmp_path / "www"
    assert _gen(inventory, web)[0] == 0
    _index(web)
    text = inventory.read_text()
    smaller = inventory.with_name("cluster.yaml")
    smaller.write_text(text.replace("  - name: worker2\n", "  - name: gone\n", 1))
    code, _, stderr = _gen(smaller, web, "--force")
    assert code == 0, stderr
    names = sorted(p.name for p in web.iterdir())
    assert "worker2" not in names and "gone" in names and "index.html" in names
    assert (web / "index.html").read_text() == "<h1>the site</h1>\n"
    shutil.rmtree(web)
