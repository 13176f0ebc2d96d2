"""kubeha reads generated Ansible inventories (INI and YAML) as ansible-core does, or refuses with FILE:LINE.

For each example, ansible-core's inventory API resolves the masters and workers and their merged variables;
that becomes a native kubeha inventory (see ansible_oracle.py), and kubeha's view of the Ansible file
(masters, workers, address, name, interface, priority, state per host, VIP) must equal its view of the
native one, or kubeha must refuse with an error on a line of the file that names the feature.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

from ansible_oracle import AnsibleRefused, ansible_native, kubeha, native_text
from inventory_strategy import Model, models, render_ini, render_yaml

# Refusals kubeha may make where Ansible reads the file, because kubeha reads that feature differently.
ALLOWED_REFUSALS = ("ties with another master", "more than one MASTER", "is out of range", "is not an integer",
                    "must exceed the priority spread", "cannot derive a priority",
                    "Ansible merges both into one host")  # repeated host lines that disagree (issue 20)
ORACLE = settings(max_examples=250, derandomize=True, database=None, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)


def _compare(text: str, suffix: str, files: dict[str, str] | None = None) -> None:
    """kubeha and ansible-core on one inventory (and ``files`` beside it: group_vars/, host_vars/)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"hosts{suffix}"
        src.write_text(text)
        note(f"inventory {src.name}:\n{text}")
        for rel, body in (files or {}).items():
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_text(body)
            note(f"{rel}:\n{body}")
        try:
            doc = ansible_native(src)
        except AnsibleRefused as exc:
            got, problems = kubeha(src)
            note(f"ansible refused: {exc}")
            event("ansible refused")
            assert got is None, "ansible-core refused this inventory but kubeha read it"
            assert all(p.startswith(f"{tmp}/") for p in problems if ": error: " in p), problems
            return
        assume(not doc.pop("_ambiguous"))
        got, problems = kubeha(src)
        note("kubeha: " + "\n".join(problems))
        native = native_text(doc)
        if native is None:  # the hosts disagree on a cluster-wide value: kubeha must say so
            event("hosts disagree on a cluster value")
            assert got is None and any("differs between" in p for p in problems), problems
            return
        nat = Path(tmp) / "native.yaml"
        nat.write_text(native)
        note(f"what ansible-core resolved, as a native inventory:\n{native}")
        want, nproblems = kubeha(nat)
        note("native: " + "\n".join(nproblems))
        event(f"kubeha {'refused' if got is None else 'read'}, native {'refused' if want is None else 'read'}")
        if got is None:
            errors = [p for p in problems if ": error: " in p]
            event("first error: " + (errors[0].split(": ")[-1][:28] if errors else "-"))
            # on a line of the inventory or of one of its group_vars/host_vars files
            assert errors and all(p.startswith(f"{tmp}/") and p.split(":")[1].isdigit() for p in errors), errors
            if want is not None:  # kubeha refuses what the native form accepts: only named features
                assert all(any(a in p for a in ALLOWED_REFUSALS) for p in errors), errors
            return
        assert want is not None, f"kubeha read the Ansible file but not what Ansible resolved: {nproblems}"
        assert got == want


@ORACLE
@given(models(), st.lists(st.integers(0, 2), max_size=8))
def test_ini_reads_as_ansible_does(model: Model, quotes: list[int]) -> None:
    _compare(render_ini(model, quotes), ".ini")


@ORACLE
@given(models())
def test_ansible_yaml_reads_as_ansible_does(model: Model) -> None:
    _compare(render_yaml(model), ".yaml")
