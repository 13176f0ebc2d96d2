"""Issue 20 item 7: `kubeha image base` makes the recipe's base from Debian packages. Here: what it refuses,
by exit code and exact message, with nothing made in the cache; the real run (debootstrap, docker import,
then README's air-gapped block on a daemon with no registry) is tests/e2e/test_wheel.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest

from kubeha.bundle import imagebase
from kubeha.errors import KubehaError
from kubeha_test import REPO, run


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBEHA_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"


def _as(monkeypatch: pytest.MonkeyPatch, *, root: bool, debootstrap: bool) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: (
        ("/usr/sbin/debootstrap" if debootstrap else None) if cmd == "debootstrap" else real(cmd, *a, **k)))


@pytest.mark.parametrize(("root", "debootstrap", "args", "message"), [
    (False, True, [], "kubeha: error: making the image base needs root (debootstrap and chroot): run it with sudo"),
    (True, False, [], "kubeha: error: debootstrap not found: install it with `apt-get install -y debootstrap`"),
    (True, True, ["--docker-host", "unix:///nonexistent/docker.sock"],
     "kubeha: error: cannot reach a Docker daemon at unix:///nonexistent/docker.sock: no such file or directory; "
     "start dockerd, or give the address it listens on with --docker-host or $DOCKER_HOST"),
], ids=["not root", "no debootstrap", "no docker"])
def test_refusals(cache: Path, monkeypatch: pytest.MonkeyPatch, root: bool, debootstrap: bool, args: list[str],
                  message: str) -> None:
    _as(monkeypatch, root=root, debootstrap=debootstrap)
    code, stdout, stderr = run("image", "base", *args)
    assert (code, stdout, stderr.splitlines()) == (1, "", [message])
    assert not cache.exists()  # nothing made before the checks pass


def test_a_base_that_is_not_debian(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _as(monkeypatch, root=True, debootstrap=True)
    recipe = (REPO / "bundles" / "default.yaml").read_text().replace("base: debian:trixie-slim", "base: alpine:3.20")
    Path("bundles").mkdir()
    Path("bundles/r.yaml").write_text(recipe)
    Path("docker").symlink_to(REPO / "docker")  # the recipe's build contexts, relative to it
    code, _, stderr = run("image", "base", "--recipe", "bundles/r.yaml")
    assert (code, stderr.splitlines()) == (1, [
        "kubeha: error: the recipe's base 'alpine:3.20' is not debian:SUITE[-slim]: kubeha makes only Debian bases; "
        "build yours and pass it to `kubeha image build --base`"])
    assert not cache.exists()


def test_json_envelope(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --json: one envelope, valid against the schema, the same message."""
    _as(monkeypatch, root=False, debootstrap=True)
    code, stdout, _ = run("image", "base", "--json")
    doc = json.loads(stdout)
    jsonschema.validate(doc, json.loads((REPO / "generator/kubeha/schema/output.schema.json").read_text()))
    assert (code, doc["command"], doc["ok"], [e["message"] for e in doc["errors"]]) == (
        1, "image base", False, ["making the image base needs root (debootstrap and chroot): run it with sudo"])


@pytest.mark.parametrize(("base", "suite"), [("debian:trixie-slim", "trixie"), ("debian:bookworm", "bookworm"),
                                             ("docker.io/library/debian:trixie-slim", "trixie")])
def test_suite_of(base: str, suite: str) -> None:
    assert imagebase.suite_of(base) == suite


def test_one_base_ref_everywhere() -> None:
    """README, docker/README and the recipe name one base ref, and kubeha image base imports under it."""
    recipe_base = next(line.split(": ", 1)[1] for line in (REPO / "bundles/default.yaml").read_text().splitlines()
                       if line.startswith("base: "))
    for doc in ("README.md", "docker/README.md"):
        text = (REPO / doc).read_text()
        assert recipe_base in text and "kubeha.local/debian-base" not in text, doc
    with pytest.raises(KubehaError):
        imagebase.suite_of("ubuntu:24.04")
