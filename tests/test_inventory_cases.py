"""Hand-written Ansible inventory cases (tests/cases/ansible/): kubeha's view or error, checked against ansible-core.

Each case is an inventory (``NAME.ini`` / ``NAME.yaml``, or ``source:`` pointing at an example) and
``NAME.expect.yaml`` holding either ``view`` (masters and workers as [name, address, interface(, priority,
state)], and the VIP), or ``error``/``warning`` with the line and a message fragment. For every ``view``
case ansible-core must resolve the same view (through ansible_oracle.py), and the real
``ansible-inventory --list`` JSON of every INI view case must read to that same view too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_oracle import LIST_MODES, AnsibleRefused, ansible_inventory_list, ansible_native, kubeha, native_text
from kubeha_test import CASES, run

ROOT = CASES / "ansible"


def _cases() -> list[tuple[str, Path, dict[str, Any]]]:
    out = []
    for expect in sorted(ROOT.glob("*.expect.yaml")):
        name = expect.name.removesuffix(".expect.yaml")
        spec = yaml.safe_load(expect.read_text())
        src = (ROOT / spec["source"]).resolve() if "source" in spec else next(
            p for p in (ROOT / f"{name}.ini", ROOT / f"{name}.yaml") if p.exists())
        out.append((name, src, spec))
    return out


CASE_LIST = _cases()
VIEW_CASES = [c for c in CASE_LIST if "view" in c[2]]


def _as_lists(view: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(view))


def test_enough_cases_including_the_examples() -> None:
    assert len(CASE_LIST) >= 40
    names = {c[0] for c in CASE_LIST}
    assert {"seed-hosts", "kubespray-inventory"} <= names
    assert sum(1 for c in CASE_LIST if "view" not in c[2]) >= 10


@pytest.mark.parametrize(("name", "src", "spec"), CASE_LIST, ids=[c[0] for c in CASE_LIST])
def test_case(name: str, src: Path, spec: dict[str, Any], update_golden: bool) -> None:
    got, problems = kubeha(src)
    if "view" in spec:
        assert got is not None, problems
        if update_golden:
            (ROOT / f"{name}.expect.yaml").write_text(yaml.safe_dump({**spec, "view": _as_lists(got)},
                                                                        sort_keys=False, default_flow_style=None))
            spec = {**spec, "view": _as_lists(got)}
        assert _as_lists(got) == spec["view"]
        return
    kind = "error" if "error" in spec else "warning"
    want = spec[kind]
    prefix = f"{src}:{want['line']}: {kind}: "
    hits = [p for p in problems if p.startswith(prefix) and want["message"] in p]
    assert hits, f"expected {prefix}...{want['message']} in:\n" + "\n".join(problems)
    if kind == "error":
        assert got is None
        code, _, stderr = run("check", str(src))
        assert code == 1 and "Traceback" not in stderr
    else:
        assert got is not None
        code, _, stderr = run("check", "--strict", str(src))
        assert code == 1 and f"{src}:{want['line']}: error: " in stderr


def _ansible(src: Path) -> dict[str, Any]:
    try:
        doc = ansible_native(src)
    except AnsibleRefused as exc:
        pytest.fail(f"ansible-core refuses {src.name}: {exc}")
    assert not doc.pop("_ambiguous")
    return doc


@pytest.mark.parametrize(("name", "src", "spec"), VIEW_CASES, ids=[c[0] for c in VIEW_CASES])
def test_ansible_core_agrees(name: str, src: Path, spec: dict[str, Any], tmp_path: Path) -> None:
    native = native_text(_ansible(src))
    assert native is not None
    nat = tmp_path / "native.yaml"
    nat.write_text(native)
    want, problems = kubeha(nat)
    assert want is not None, problems
    assert _as_lists(want) == spec["view"], native


INI_VIEW_CASES = [c for c in VIEW_CASES if c[1].suffix == ".ini"]


@pytest.fixture(scope="module")
def listed() -> dict[tuple[str, str], str]:
    """The real ansible-inventory outputs of every INI view case (one interpreter for all)."""
    return ansible_inventory_list([c[1] for c in INI_VIEW_CASES])


@pytest.mark.parametrize("mode", LIST_MODES)
@pytest.mark.parametrize(("name", "src", "spec"), INI_VIEW_CASES, ids=[c[0] for c in INI_VIEW_CASES])
def test_ansible_inventory_output_reads_the_same(name: str, src: Path, spec: dict[str, Any], mode: str,
                                                 listed: dict[tuple[str, str], str], tmp_path: Path) -> None:
    """``--list`` and ``--list --export`` JSON, and ``--list --yaml --export`` (an Ansible YAML inventory)."""
    text = listed[(mode, str(src))]
    assert text.strip(), f"ansible-inventory printed nothing for {src}"
    inv = tmp_path / (f"{name}.yaml" if mode.startswith("yaml") else f"{name}.json")
    inv.write_text(text)
    got, problems = kubeha(inv)
    assert got is not None, problems
    assert _as_lists(got) == spec["view"], text
