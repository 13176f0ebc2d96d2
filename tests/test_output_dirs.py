"""Output directories: a manifest of what kubeha wrote, stale node folders removed (and named), foreign
directories refused unless --force, one node's document on stdout with ``--node NAME -o -``."""

from __future__ import annotations

import json
from pathlib import Path

from kubeha.generate import MANIFEST
from kubeha_test import EXAMPLES, run, staged_inventory


def _inventory(tmp: Path, workers: int) -> Path:
    inv = tmp / "c.yaml"
    lines = ["cluster: {name: c, vip: 198.18.0.10/24, interface: ens3}", "masters:", "  - {name: m1, address: 198.18.0.11}",
             "  - {name: m2, address: 198.18.0.12}", "  - {name: m3, address: 198.18.0.13}"]
    lines += ["workers:"] if workers else []
    lines += [f"  - {{name: w{i}, address: 198.18.0.{30 + i}}}" for i in range(workers)]
    inv.write_text("\n".join(lines) + "\n")
    return inv


def test_manifest_records_and_rerun_removes_nodes_that_left(tmp_path: Path) -> None:
    out = tmp_path / "out"
    inv = _inventory(tmp_path, 2)
    assert run("gen", "userdata", str(inv), "-o", str(out))[0] == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["entries"] == ["m1", "m2", "m3", "w0", "w1"] and manifest["command"] == "gen userdata"
    old_m1 = (out / "m1" / "user-data").read_bytes()
    inv = _inventory(tmp_path, 1)
    code, stdout, stderr = run("gen", "userdata", str(inv), "-o", str(out))
    assert code == 0
    assert stderr == f"kubeha: removed {out / 'w1'}/ (no longer in the inventory)\n"
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "m1", "m2", "m3", "w0"]
    assert json.loads((out / MANIFEST).read_text())["entries"] == ["m1", "m2", "m3", "w0"]
    assert (out / "m1" / "user-data").read_bytes() == old_m1  # same inventory part, same bytes


def test_force_adopts_a_directory_but_leaves_foreign_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "README").write_text("mine")
    inv = _inventory(tmp_path, 0)
    code, _, stderr = run("gen", "userdata", str(inv), "-o", str(out))
    assert code == 1 and "holds files kubeha did not write (README)" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["README"]
    assert run("gen", "userdata", str(inv), "-o", str(out), "--force")[0] == 0
    assert (out / "README").read_text() == "mine"
    assert "README" not in json.loads((out / MANIFEST).read_text())["entries"]
    code, _, stderr = run("gen", "userdata", str(inv), "-o", str(out))  # still foreign: refused again
    assert code == 1


def test_one_node_to_stdout(tmp_path: Path) -> None:
    inv = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    code, stdout, stderr = run("gen", "userdata", str(inv), "--node", "master2", "-o", "-")
    assert code == 0 and stderr == ""
    assert stdout.startswith("#cloud-config\n") and "for master2 (master)" in stdout
    assert run("gen", "userdata", str(inv), "-o", str(tmp_path / "o"))[0] == 0
    assert stdout == (tmp_path / "o" / "master2" / "user-data").read_text()
    code, stdout, _ = run("gen", "userdata", str(inv), "--node", "master2", "-o", "-", "--format", "ignition")
    assert code == 0 and json.loads(stdout)["ignition"]["version"] == "3.3.0"
    assert list(tmp_path.glob("*")) and not (tmp_path / "-").exists()


def test_one_node_into_a_directory_keeps_the_others(tmp_path: Path) -> None:
    inv = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    out = tmp_path / "o"
    assert run("gen", "userdata", str(inv), "-o", str(out))[0] == 0
    before = {p.name: p.stat().st_ino for p in out.iterdir()}
    code, stdout, stderr = run("gen", "userdata", str(inv), "--node", "worker1", "-o", str(out))
    assert code == 0 and stderr == "" and stdout.startswith("worker1 ")
    after = {p.name: p.stat().st_ino for p in out.iterdir()}
    assert set(after) == set(before)
    assert after["worker1"] != before["worker1"] and after["master1"] == before["master1"]


def test_output_written_before_manifests_is_adopted(tmp_path: Path) -> None:
    inv = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    out = tmp_path / "o"
    assert run("gen", "userdata", str(inv), "-o", str(out))[0] == 0
    (out / MANIFEST).unlink()  # as an older kubeha left it
    assert run("gen", "userdata", str(inv), "-o", str(out))[0] == 0
    (out / MANIFEST).unlink()
    (out / "master1" / "id_rsa").write_text("not a node document")
    code, _, stderr = run("gen", "userdata", str(inv), "-o", str(out))
    assert code == 1 and "holds files kubeha did not write (master1)" in stderr
