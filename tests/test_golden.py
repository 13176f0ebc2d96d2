"""Golden trees: every case renders to exactly the reviewed files under tests/cases/<case>/expected/.

Run ``pytest tests/test_golden.py --update-golden`` to rewrite them, then review the diff like code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kubeha.generate import MANIFEST
from kubeha_test import GOLDEN_CASES, Case, run, staged_inventory


def _tree(root: Path) -> dict[str, bytes]:
    """Every node file under root (the output manifest is checked by tests/test_output_dirs.py instead)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root) != Path(MANIFEST)}


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda c: c.name)
def test_golden_tree(case: Case, tmp_path: Path, update_golden: bool) -> None:
    inv = staged_inventory(case.inventory, tmp_path)
    out = tmp_path / "out"
    code, _, stderr = run("gen", "userdata", str(inv), "-o", str(out))
    assert code == 0, stderr
    if update_golden:
        shutil.rmtree(case.expected, ignore_errors=True)
        shutil.copytree(out, case.expected, ignore=shutil.ignore_patterns(MANIFEST))
    assert _tree(out) == _tree(case.expected)


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda c: c.name)
def test_same_inventory_same_bytes(case: Case, tmp_path: Path) -> None:
    inv = staged_inventory(case.inventory, tmp_path)
    trees = []
    for name in ("a", "b"):
        assert run("gen", "userdata", str(inv), "-o", str(tmp_path / name))[0] == 0
        trees.append(_tree(tmp_path / name))
    assert trees[0] == trees[1]
    assert trees[0]  # not vacuous
