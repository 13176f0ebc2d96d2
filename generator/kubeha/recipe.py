"""Bundle recipes (bundles/*.yaml): which images a bundle ships, their refs, versions and build contexts.

A recipe is the one place image refs and versions are written. ``kubeha image build`` builds what it
names, ``image save`` saves its refs, ``bundle pack`` checks the archive against it, and the static pods'
default images come from the shipped default recipe. Problems are reported as ``FILE:LINE`` like inventories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kubeha.errors import InvalidInput, Location, Problem
from kubeha.resources import bundles_dir

DEFAULT_NAME = "default.yaml"
LOCAL_DEFAULT = Path("bundles") / DEFAULT_NAME  # the user's layout: a bundles/ folder where kubeha runs
REF = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?/[a-z0-9._/-]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # both used with fullmatch: a trailing newline never passes


@dataclass(frozen=True)
class RecipeImage:
    """One image of a recipe: short name, fully qualified ref, upstream version, build context folder."""

    name: str
    ref: str
    version: str
    context: Path


@dataclass(frozen=True)
class Recipe:
    """A bundle recipe as loaded from ``path``."""

    path: Path
    name: str
    base: str
    images: tuple[RecipeImage, ...]

    @property
    def refs(self) -> tuple[str, ...]:
        """Every image ref, in recipe order."""
        return tuple(i.ref for i in self.images)

    def image(self, name: str) -> RecipeImage:
        """The image called ``name`` (KeyError when the recipe has none)."""
        return {i.name: i for i in self.images}[name]


def shipped_recipe_path() -> Path:
    """The default recipe shipped inside the package (bundles/default.yaml of the source tree)."""
    return bundles_dir() / DEFAULT_NAME


def default_recipe_path(cwd: Path | None = None) -> Path:
    """``./bundles/default.yaml`` when the working directory has one, else the shipped copy."""
    local = (cwd or Path.cwd()) / LOCAL_DEFAULT
    return local if local.is_file() else shipped_recipe_path()


def _lines(text: str) -> dict[str, int]:
    """1-based line of every mapping key path (``images.keepalived.ref``) in a YAML document."""
    out: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = f"{prefix}{key.value}"
                out[path] = key.start_mark.line + 1
                walk(value, path + ".")

    walk(yaml.compose(text), "")
    return out


def load_recipe(path: Path | None = None) -> Recipe:
    """Load and check a recipe (default :func:`default_recipe_path`); InvalidInput lists every problem."""
    path = path or default_recipe_path()
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
        lines = _lines(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput([Problem(Location(str(path)), "recipe", f"cannot read: {_reason(exc)}")]) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        raise InvalidInput([Problem(Location(str(path), line), "recipe", "not valid YAML")]) from None
    problems: list[Problem] = []

    def bad(key: str, message: str) -> None:
        probe = key  # a missing key is reported at the nearest enclosing key that is there
        while probe not in lines and "." in probe:
            probe = probe.rsplit(".", 1)[0]
        problems.append(Problem(Location(str(path), lines.get(probe, 1)), key, message))

    if not isinstance(data, dict) or data.get("recipe") != 1:
        bad("recipe", "not a kubeha bundle recipe (needs `recipe: 1`)")
        raise InvalidInput(problems)
    images = _images(path, data.get("images"), bad)
    base = data.get("base")
    if not isinstance(base, str) or not base:
        bad("base", "missing: the base image (BASE_IMAGE build argument)")
    if problems:
        raise InvalidInput(problems)
    return Recipe(path, str(data.get("name") or path.stem), str(base), tuple(images))


def _images(path: Path, raw: object, bad: Any) -> list[RecipeImage]:
    """The recipe's images, reporting every bad entry through ``bad(key, message)``."""
    if not isinstance(raw, dict) or not raw:
        bad("images", "missing: at least one image (name: {ref, version, context})")
        return []
    out = []
    for name, spec in raw.items():
        where = f"images.{name}"
        if not isinstance(spec, dict):
            bad(where, "must be a mapping with ref, version and context")
            continue
        ref, version, context = (spec.get(k) for k in ("ref", "version", "context"))
        if not (isinstance(name, str) and _NAME.fullmatch(name)):
            bad(where, "image names are lower-case letters, digits and '-'")
        if not (isinstance(ref, str) and REF.fullmatch(ref)):
            bad(f"{where}.ref", f"{ref!r} is not a fully qualified ref with a tag (registry/name:tag)")
        if not isinstance(version, str | int | float) or not str(version):
            bad(f"{where}.version", "missing: the upstream version the image must contain")
        folder = path.parent / str(context or "")
        if not context or not (folder / "Dockerfile").is_file():
            bad(f"{where}.context", f"{folder}: no Dockerfile there")
        out.append(RecipeImage(str(name), str(ref), str(version), folder.resolve()))
    return out


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    return exc.strerror or str(exc) if isinstance(exc, OSError) else "not UTF-8 text"


@cache
def shipped_recipe() -> Recipe:
    """The shipped default recipe, loaded once (the source of the static pods' default image refs)."""
    return load_recipe(shipped_recipe_path())
