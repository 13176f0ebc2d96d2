"""Where kubeha's package data lives: templates, the images' build contexts and the bundle recipes.

The top-level folders templates/, docker/ and bundles/ of the source tree ship inside the wheel as the
packages ``kubeha.templates``, ``kubeha.docker`` and ``kubeha.bundles`` (pyproject.toml maps them), so an
editable install and an installed wheel find them the same way: through importlib.resources. ``as_file``
gives a real directory (Jinja's loader and the Docker build context need one).
"""

from __future__ import annotations

import importlib
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

_STACK = ExitStack()  # keeps as_file() directories alive for the life of the process
_SOURCE = Path(__file__).resolve().parents[2]  # the checkout, for an editable install


def data_dir(package: str) -> Path:
    """A real directory holding ``package``'s data files (``kubeha.templates``, ``kubeha.docker``, ...)."""
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        # setuptools' editable finder cannot import a data-only namespace package that pyproject maps
        # outside generator/kubeha/; in an editable install the folder is the checkout's own.
        return _SOURCE / package.rsplit(".", 1)[-1]
    if isinstance(root, Path):
        return root
    module = importlib.import_module(package)
    if not getattr(module, "__file__", None):  # a namespace package: Python 3.11 gives a MultiplexedPath
        return Path(next(p for p in module.__path__ if Path(p).is_dir()))
    return Path(_STACK.enter_context(resources.as_file(root)))  # e.g. a zipped install: extracted once


def templates_dir() -> Path:
    """The Jinja2 templates (source tree: templates/)."""
    return data_dir("kubeha.templates")


def docker_dir() -> Path:
    """The images' build contexts, one folder per image (source tree: docker/)."""
    return data_dir("kubeha.docker")


def bundles_dir() -> Path:
    """The shipped bundle recipes (source tree: bundles/)."""
    return data_dir("kubeha.bundles")
