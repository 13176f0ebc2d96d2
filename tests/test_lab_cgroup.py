"""The lab's cgroup on a stand-in cgroupfs (a temp dir laid out as v1 or v2): weight, wrapping, removal.

The real one is made by every live lab (tests/e2e/test_failover.py checks that the lab's processes run in it
and that none is left behind).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kubeha.lab.cgroup import HELPERS, WEIGHT, LabCgroup


def _v1(root: Path) -> Path:
    for hierarchy in ("cpu", "cpuacct", "memory"):
        (root / hierarchy).mkdir(parents=True)
    (root / "cpu" / "cpu.shares").write_text("1024\n")
    return root


def _files_go_with_their_dirs(root: Path, name: str) -> None:
    """cgroupfs removes a directory with its control files; a temp dir needs them gone first."""
    for f in root.glob(f"**/{name}/**/*"):
        if f.is_file():
            f.unlink()


def test_v1_weighs_the_cpu_hierarchy_and_removes_what_runc_made(tmp_path: Path) -> None:
    group = LabCgroup("khlab1", _v1(tmp_path))
    group.create()
    assert group.active and group.version == 1 and group.problem == ""
    assert (tmp_path / "cpu" / "khlab1" / "cpu.shares").read_text() == str(1024 * WEIGHT)
    assert (tmp_path / "cpu" / "khlab1" / HELPERS).is_dir()
    assert group.container_path("khlab1-m1-haproxy-haproxy") == "/khlab1/khlab1-m1-haproxy-haproxy"
    (tmp_path / "memory" / "khlab1" / "ctr").mkdir(parents=True)  # as runc makes them, in every hierarchy
    assert group.remove(timeout=0.1) == [tmp_path / "cpu" / "khlab1"]  # its control files stand for processes
    _files_go_with_their_dirs(tmp_path, "khlab1")
    assert group.remove() == []
    assert not any(tmp_path.glob("*/khlab1")) and not group.active
    assert group.container_path("x") is None


def test_v2_weighs_cpu_weight_when_the_controller_is_enabled(tmp_path: Path) -> None:
    (tmp_path / "cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    group = LabCgroup("khlab2", tmp_path)
    group.create()
    assert group.active and group.version == 2
    assert (tmp_path / "khlab2" / "cpu.weight").read_text() == str(100 * WEIGHT)
    _files_go_with_their_dirs(tmp_path, "khlab2")
    assert group.remove() == []


def test_without_a_writable_cgroup_the_lab_runs_unwrapped_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")  # v2 without the cpu controller
    group = LabCgroup("khlab3", tmp_path)
    group.create()
    assert not group.active and "cpu controller is not enabled" in group.problem
    assert group.wrap(["ip", "monitor"]) == ["ip", "monitor"] and group.container_path("x") is None
    assert list(tmp_path.iterdir()) == [tmp_path / "cgroup.subtree_control"]


def test_wrap_moves_the_process_itself_then_execs_the_command(tmp_path: Path) -> None:
    group = LabCgroup("khlab4", _v1(tmp_path))
    group.create()
    procs = tmp_path / "cpu" / "khlab4" / HELPERS / "cgroup.procs"
    run = subprocess.run([*group.wrap(["sh", "-c", 'echo "$$ $0"', "it's me"])], capture_output=True, text=True,
                         check=True)
    pid, name = run.stdout.split(" ", 1)
    assert procs.read_text().strip() == pid and name.strip() == "it's me"  # the same PID: exec, not a child
    _files_go_with_their_dirs(tmp_path, "khlab4")
    assert group.remove() == []
