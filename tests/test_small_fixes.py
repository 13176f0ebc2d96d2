# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Issue 21 item 6, the small ones, each through the real command with its exit code, exact message, and
nothing changed on disk:

- a directory bundle whose file is swapped for a FIFO (with a silent writer) or a symlink after the listing:
  ``bundle verify DIR`` refuses it at once (O_NONBLOCK, then fstat) instead of blocking forever;
- every pattern check is a full match: a trailing newline in ``--bundle-source`` or a recipe ref is refused;
- ``bundle pack`` refuses an archive whose RepoTags are not image references (they become lines of the
  signed images/index.txt the nodes trust) or name an image that neither the recipe nor a static pod names.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha.bundle import verify as verify_mod
from kubeha.bundle.pack import pack_inventory
from kubeha.cli.main import app
from kubeha.errors import InvalidInput
from kubeha.recipe import load_recipe
from kubeha_test import EXAMPLES, snapshot, staged_inventory
from test_bundle import REFS, make_docker_archive
from test_recipe import GOOD, _recipe
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def bundle_dir(tmp_path: Path, gpg_keys: Keys) -> Iterator[Path]:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    images = tmp_path / "images.tar"
    make_docker_archive(images)
    yield pack_inventory(inventory, images, gpg_keys.trusted.signer(), tmp_path / "bundles", name="demo").directory


def _fifo_with_silent_writer(path: Path, held: list[int]) -> None:
    path.unlink()
    os.mkfifo(path, 0o644)
    held.append(os.open(path, os.O_RDWR | os.O_NONBLOCK))  # a writer that never writes: a blocking read hangs


def _symlink(path: Path, _held: list[int]) -> None:
    path.unlink()
    path.symlink_to("/etc/hostname")


@pytest.mark.parametrize(("swap", "message"), [
    (_fifo_with_silent_writer, "kubeha: error: images/images.tar: not a regular file (changed after the listing)"),
    (_symlink, "kubeha: error: images/images.tar: cannot read (Too many levels of symbolic links); changed after "
               "the listing"),
], ids=["fifo", "symlink"])
def test_verify_dir_swapped_after_listing(bundle_dir: Path, gpg_keys: Keys, monkeypatch: pytest.MonkeyPatch,
                                          swap: Callable[[Path, list[int]], None], message: str) -> None:
    listed = verify_mod._DirSource.__init__
    held: list[int] = []

    def list_then_swap(self: verify_mod._DirSource, root: Path) -> None:
        listed(self, root)  # the listing saw a regular file ...
        swap(root / "images/images.tar", held)  # ... the medium changes before it is read

    monkeypatch.setattr(verify_mod._DirSource, "__init__", list_then_swap)
    start = time.monotonic()
    try:
        code, stdout, stderr = _run("bundle", "verify", str(bundle_dir), "--keyring", str(gpg_keys.trusted.public))
    finally:
        for fd in held:
            os.close(fd)
    assert time.monotonic() - start < 10
    assert (code, stdout) == (3, "")
    assert stderr.splitlines() == [message, f"kubeha: FAILED {bundle_dir}: checksum verification failed"]


def test_bundle_source_with_a_trailing_newline_is_refused(tmp_path: Path, gpg_keys: Keys) -> None:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    make_docker_archive(tmp_path / "images.tar")
    before = snapshot(tmp_path)
    key = gpg_keys.trusted
    code, _, stderr = _run("bundle", "pack", str(inventory), "--images", str(tmp_path / "images.tar"), "--sign-key",
                           key.fingerprint, "--gnupghome", str(key.home), "-o", str(tmp_path / "out"),
                           "--bundle-source", "/srv/b.tar\n")
    assert code == 1
    assert stderr.splitlines() == ["--bundle-source: error: bundle-source: '/srv/b.tar\\n' is not cidata, "
                                   "label:LABEL, an absolute path or an http(s) URL",
                                   "kubeha: 1 error(s), 0 warning(s); nothing written"]
    assert snapshot(tmp_path) == before


def test_recipe_ref_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    path = _recipe(tmp_path, GOOD.replace("ref: kubeha.local/haproxy:3.0.11", 'ref: "kubeha.local/haproxy:3.0.11\\n"'))
    with pytest.raises(InvalidInput) as raised:
        load_recipe(path)
    assert [str(p) for p in raised.value.problems] == [
        f"{path}:10: error: images.haproxy.ref: 'kubeha.local/haproxy:3.0.11\\n' is not a fully qualified ref "
        "with a tag (registry/name:tag)"]


def test_pack_refuses_a_repotag_that_is_not_a_reference(tmp_path: Path, gpg_keys: Keys) -> None:
    """A RepoTag with a newline would add a line of its choosing to the signed images/index.txt."""
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    archive = tmp_path / "images.tar"
    evil = f"{REFS[1]}\nsha256:{'0' * 64} {REFS[0]}"
    make_docker_archive(archive, (*REFS, evil))
    before = snapshot(tmp_path)
    with pytest.raises(InvalidInput) as raised:
        pack_inventory(inventory, archive, gpg_keys.trusted.signer(), tmp_path / "out", name="demo")
    assert [str(p) for p in raised.value.problems] == [
        f"{archive}: error: images: RepoTags {evil!r} is not a fully qualified image reference"]
    assert snapshot(tmp_path) == before  # not even a new cluster id is stored


def test_pack_refuses_an_image_the_recipe_does_not_name(tmp_path: Path, gpg_keys: Keys) -> None:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    archive = tmp_path / "images.tar"
    make_docker_archive(archive, (*REFS, "kubeha.local/extra:1"))
    recipe = _recipe(tmp_path, GOOD)
    before = snapshot(tmp_path)
    key = gpg_keys.trusted
    code, _, stderr = _run("bundle", "pack", str(inventory), "--images", str(archive), "--sign-key", key.fingerprint,
                           "--gnupghome", str(key.home), "-o", str(tmp_path / "out"), "--recipe", str(recipe))
    assert code == 1
    assert stderr.splitlines() == [
        f"{archive}: error: images: holds 'kubeha.local/extra:1', which neither the recipe {recipe} nor a static "
        "pod names: every image in a bundle is signed and imported on the nodes",
        "kubeha: 1 error(s), 0 warning(s); nothing written"]
    assert snapshot(tmp_path) == before
