"""Shared test options and fixtures: ``--update-golden``, the CLI runner, and where the repo is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures import cache

# Session fixtures shared by the e2e suites: private dockerd/containerd, and the images built once per run.
pytest_plugins = ["e2e.daemons", "fixtures.images"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CASES = REPO / "tests" / "cases"
# Slow fixtures (Kubernetes, debootstrapped trees, images) are built once and kept outside any clone.
os.environ.setdefault("KUBEHA_CACHE", str(cache.cache_root()))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/cases/*/expected from the current output (review the diff!)")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
