"""Bundle recipes (bundles/*.yaml): the one place image refs and versions are written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubeha import model
from kubeha.bundle import images
from kubeha.errors import InvalidInput
from kubeha.recipe import default_recipe_path, load_recipe, shipped_recipe, shipped_recipe_path
from kubeha_test import REPO

GOOD = """recipe: 1
name: lab
base: kubeha.local/debian-base:trixie
images:
  keepalived:
    ref: kubeha.local/keepalived:2.3.3
    version: 2.3.3
    context: ../docker/keepalived
  haproxy:
    ref: kubeha.local/haproxy:3.0.11
    version: 3.0.11
    context: ../docker/haproxy
"""


def _recipe(tmp_path: Path, text: str) -> Path:
    (tmp_path / "bundles").mkdir(exist_ok=True)
    shutil_docker = tmp_path / "docker"
    for name in ("keepalived", "haproxy"):
        (shutil_docker / name).mkdir(parents=True, exist_ok=True)
        (shutil_docker / name / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "bundles" / "lab.yaml"
    path.write_text(text)
    return path


def test_shipped_recipe_is_the_source_of_every_default() -> None:
    recipe = shipped_recipe()
    assert shipped_recipe_path() == REPO / "bundles" / "default.yaml"
    assert recipe.refs == images.DEFAULT_REFS == (model.DEFAULT_KEEPALIVED_IMAGE, model.DEFAULT_HAPROXY_IMAGE)
    assert [(s.name, s.ref, s.version) for s in images.IMAGES.values()] == [
        (i.name, i.ref, i.version) for i in recipe.images]
    assert recipe.base == images.DEFAULT_BASE_IMAGE
    assert recipe.image("keepalived").context == REPO / "docker" / "keepalived"


def test_no_ref_or_version_is_written_anywhere_else_in_the_package() -> None:
    recipe = shipped_recipe()
    needles = [*recipe.refs, *(i.version for i in recipe.images), recipe.base]
    for source in sorted((REPO / "generator" / "kubeha").rglob("*.py")):
        text = source.read_text()
        for needle in needles:
            assert not re.search(re.escape(needle) + r"\b", text), f"{source}: {needle}"


def test_a_recipe_is_read_with_its_contexts(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, GOOD))
    assert recipe.name == "lab" and recipe.refs == ("kubeha.local/keepalived:2.3.3", "kubeha.local/haproxy:3.0.11")
    assert recipe.image("haproxy").context == tmp_path / "docker" / "haproxy"


def test_working_directory_recipe_wins_over_the_shipped_one(tmp_path: Path) -> None:
    assert default_recipe_path(tmp_path) == shipped_recipe_path()
    (tmp_path / "bundles").mkdir()
    (tmp_path / "bundles" / "default.yaml").write_text(GOOD)
    assert default_recipe_path(tmp_path) == tmp_path / "bundles" / "default.yaml"


@pytest.mark.parametrize(("text", "line", "path", "message"), [
    ("recipe: 2\n", 1, "recipe", "not a kubeha bundle recipe (needs `recipe: 1`)"),
    ("[1, 2]\n", 1, "recipe", "not a kubeha bundle recipe"),
    ("recipe: 1\nbase: x\n", 1, "images", "missing: at least one image"),
    (GOOD.replace("ref: kubeha.local/haproxy:3.0.11", "ref: haproxy:3.0.11"), 10, "images.haproxy.ref",
     "'haproxy:3.0.11' is not a fully qualified ref with a tag"),
    (GOOD.replace("ref: kubeha.local/haproxy:3.0.11", "ref: kubeha.local/haproxy"), 10, "images.haproxy.ref",
     "is not a fully qualified ref with a tag"),
    (GOOD.replace("context: ../docker/haproxy", "context: ../nowhere"), 12, "images.haproxy.context",
     "no Dockerfile there"),
    (GOOD.replace("    version: 2.3.3\n", ""), 5, "images.keepalived.version", "missing: the upstream version"),
    (GOOD.replace("base: kubeha.local/debian-base:trixie\n", ""), 1, "base", "missing: the base image"),
    (GOOD.replace("  haproxy:", "  HAProxy:"), 9, "images.HAProxy", "image names are lower-case"),
    ("recipe: 1\nimages: {a: [\n", 3, "recipe", "not valid YAML"),
])
def test_bad_recipes_point_at_the_line(tmp_path: Path, text: str, line: int, path: str, message: str) -> None:
    where = _recipe(tmp_path, text)
    with pytest.raises(InvalidInput) as caught:
        load_recipe(where)
    [problem] = caught.value.problems
    assert (problem.location.file, problem.location.line, problem.path) == (str(where), line, path)
    assert message in problem.message


def test_unreadable_recipe(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_recipe(tmp_path / "none.yaml")
    assert str(caught.value.problems[0]) == f"{tmp_path / 'none.yaml'}: error: recipe: cannot read: No such file or directory"
