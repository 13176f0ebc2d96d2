"""CLI behaviour by exit code and exact output; every command has help; arbitrary input never crashes."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeha.cli.main import app
from kubeha_test import EXAMPLES, run, staged_inventory


def _commands() -> list[tuple[str, ...]]:
    """Every command path, lazy groups included, walked the way the CLI resolves them."""
    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    out: list[tuple[str, ...]] = []

    def walk(group: Any, prefix: tuple[str, ...]) -> None:
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            out.append((*prefix, name))
            if hasattr(cmd, "list_commands"):
                walk(cmd, (*prefix, name))

    walk(root, ())
    return out


COMMANDS = _commands()


def test_command_list_is_complete() -> None:
    for path in [("check",), ("gen", "userdata"), ("gen", "seed-iso"), ("image", "build"), ("image", "save"),
                 ("image", "inspect"), ("bundle", "pack"), ("bundle", "verify"), ("keys", "certify"), ("drill",)]:
        assert path in COMMANDS


@pytest.mark.parametrize("cmd", [(), *COMMANDS], ids=lambda c: " ".join(c) or "kubeha")
def test_every_command_has_help(cmd: tuple[str, ...]) -> None:
    code, stdout, _ = run(*cmd, "--help")
    assert code == 0
    assert "Usage:" in stdout
    lines = [ln for ln in stdout.splitlines() if ln.strip() and not ln.lstrip().startswith(("Usage", "╭", "╰", "│"))]
    assert lines, f"no description for {cmd}"


def test_version() -> None:
    code, stdout, _ = run("--version")
    assert code == 0
    assert stdout.startswith("kubeha ")


def test_usage_error_exits_2() -> None:
    code, _, stderr = run("gen", "userdata")
    assert code == 2
    assert "Missing argument" in stderr


def test_check_prints_plan_and_budget() -> None:
    code, stdout, stderr = run("check", str(EXAMPLES / "cluster.yaml"))
    assert code == 0, stderr
    assert stderr == ""
    assert stdout.splitlines()[0] == ("cluster demo: endpoint 198.18.0.10:6444, VIP 198.18.0.10/24, "
                                      "virtual_router_id 128")
    assert "  master1              198.18.0.11      MASTER  priority 250  eth0" in stdout
    assert "  master3              198.18.0.13      BACKUP  priority 230  eth0" in stdout
    assert stdout.splitlines()[-2] == (
        "check: prober every 100 ms (timeout 100 ms), fall 1: a failed probe faults the node; "
        "failback: none: the VIP stays where it is (all BACKUP, nopreempt)")
    assert stdout.splitlines()[-1] == (
        "worst-case failover: 0.31 s when haproxy or the apiserver path fails, 0.31 s on link or power loss, "
        "5 s if the prober dies or hangs (haproxy marks a dead apiserver down in 0.7 s)")


def test_check_json() -> None:
    code, stdout, _ = run("check", "--json", str(EXAMPLES / "seed-hosts.ini"))
    assert code == 0
    plan = json.loads(stdout)["result"]
    assert [(m["name"], m["state"], m["priority"]) for m in plan["masters"]] == [
        ("node01", "MASTER", 100), ("node02", "BACKUP", 80), ("node03", "BACKUP", 70)]
    assert plan["weight"] == 0  # fast: a failed check faults the node (weight 0 in keepalived.conf)
    assert plan["endpoint"] == "10.1.86.209:6444"


def test_seed_pattern_interface_warns(tmp_path: Path) -> None:
    code, _, stderr = run("check", str(EXAMPLES / "seed-hosts.ini"))
    assert code == 0
    assert stderr == (f"{EXAMPLES / 'seed-hosts.ini'}:15: warning: [all:vars].k8s_version: accepted but "
                      "unused: kubeha does not install Kubernetes (pick the version in your kubeadm or distribution "
                      "tooling)\n"
                      f"{EXAMPLES / 'seed-hosts.ini'}:16: warning: [all:vars].ip_interface: 'eth.*' is a pattern; "
                      "using 'eth0' (set interface=NAME per host or a plain name here to choose)\n"
                      "kubeha: 0 error(s), 2 warning(s)\n")


@pytest.mark.parametrize(("masters", "interface", "expected"), [
    (3, True, []),
    (3, False, ["interface: not set: assuming eth0, but cloud and hypervisor images often name the NIC ens3, "
                "ens18 or ens192; set interface (for the cluster or per host)"]),
    (2, True, ["masters: two masters: etcd needs a majority, so losing either one stops the control plane; "
               "use three"]),
    (4, True, ["masters: 4 masters: an even number tolerates no more failures than 3 (etcd quorum); "
               "use an odd number"]),
    (5, True, []),
])
def test_defaults_that_bite_warn(tmp_path: Path, masters: int, interface: bool, expected: list[str]) -> None:
    inv = tmp_path / "c.yaml"
    lines = ["cluster:", "  vip: 198.18.0.10/24", *(["  interface: ens3"] if interface else []), "masters:"]
    lines += [f"  - {{name: m{i}, address: 198.18.0.{11 + i}}}" for i in range(masters)]
    inv.write_text("\n".join(lines) + "\n")
    code, stdout, stderr = run("check", str(inv))
    assert code == 0 and stdout
    warnings = [ln.split(": warning: ", 1)[1].removeprefix("cluster.") for ln in stderr.splitlines()[:-1]]
    assert warnings == expected
    assert stderr.splitlines()[-1:] == ([f"kubeha: 0 error(s), {len(expected)} warning(s)"] if expected else [])


def test_classic_profile_warns_about_flapping(tmp_path: Path) -> None:
    inv = tmp_path / "c.yaml"
    inv.write_text("cluster:\n  vip: 198.18.0.10\n  profile: classic\nmasters:\n"
                   "  - {name: m1, address: 198.18.0.11}\n  - {name: m2, address: 198.18.0.12}\n")
    code, _, stderr = run("check", str(inv))
    assert code == 0
    assert "the VIP can flap (use profile fast)" in stderr


def test_gen_exact_stderr_for_two_errors(tmp_path: Path) -> None:
    inv = tmp_path / "bad.ini"
    inv.write_text("[k8s-master]\n198.18.0.11 name=m1 priority=300\n198.18.0.12 name=m1\n198.18.0.13 name=m3\n"
                   "[all:vars]\nvip=198.18.0.10\ninterface=eth0\n")
    code, stdout, stderr = run("gen", "userdata", str(inv), "-o", str(tmp_path / "out"))
    assert code == 1
    assert stdout == ""
    assert stderr == (
        f"{inv}:2: error: 198.18.0.11.priority: 300 is out of range 1-254\n"
        f"{inv}:3: error: m1: duplicate node name (first at line 2)\n"
        "kubeha: 2 error(s), 0 warning(s); nothing written\n")
    assert not (tmp_path / "out").exists()


def test_missing_file(tmp_path: Path) -> None:
    code, _, stderr = run("check", str(tmp_path / "nope.ini"))
    assert code == 1
    assert stderr.startswith(f"{tmp_path / 'nope.ini'}: error: inventory: cannot read: No such file or directory")


def test_gen_writes_private_files_and_replaces_old_output(tmp_path: Path) -> None:
    inv = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    out = tmp_path / "out"
    (out / "master1").mkdir(parents=True)
    (out / "master1" / "stale").write_text("old")
    (out / "unrelated.txt").write_text("keep me")
    code, stdout, _ = run("gen", "userdata", str(inv), "-o", str(out), "--force")
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [".kubeha-manifest.json", "master1", "master2", "master3",
                                                    "unrelated.txt", "worker1", "worker2"]
    assert sorted(p.name for p in (out / "master1").iterdir()) == ["meta-data", "user-data"]
    assert stat.S_IMODE((out / "master1" / "user-data").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "master1").stat().st_mode) == 0o700
    assert stdout.splitlines()[0].startswith("master1              master  user-data ")


def test_secret_generated_once_private_and_never_printed(tmp_path: Path) -> None:
    inv = tmp_path / "c.ini"
    inv.write_text("[k8s-master]\n198.18.0.11 name=m1\n198.18.0.12 name=m2\n[all:vars]\nvip=198.18.0.10\n"
                   "profile=classic\n")
    code, stdout, stderr = run("gen", "userdata", str(inv), "-o", str(tmp_path / "out"))
    assert code == 0
    secret_file = tmp_path / "c.ini.vrrp-secret"
    secret = secret_file.read_text().strip()
    assert len(secret) == 8
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret not in stdout + stderr
    assert f"auth_pass {secret}" in (tmp_path / "out" / "m1" / "user-data").read_text()
    code, stdout, stderr = run("check", "--json", str(inv))
    assert secret not in stdout + stderr
    run("gen", "userdata", str(inv), "-o", str(tmp_path / "out2"))
    assert secret_file.read_text().strip() == secret
    secret_file.chmod(0o644)
    code, _, stderr = run("gen", "userdata", str(inv), "-o", str(tmp_path / "out3"))
    assert code == 1
    assert "readable by group or others: chmod 600 it" in stderr
    assert secret not in stderr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400), suffix=st.sampled_from([".ini", ".yaml"]))
def test_arbitrary_text_never_crashes(tmp_path: Path, text: str, suffix: str) -> None:
    inv = tmp_path / f"fuzz{suffix}"
    inv.write_bytes(text.encode("utf-8", errors="replace"))
    code, _, stderr = run("check", str(inv))
    assert code in (0, 1)
    assert "Traceback" not in stderr
    if code == 1:
        assert ": error: " in stderr


INI_LINES = st.sampled_from([
    "[k8s-master]", "[k8s-node]", "[all:vars]", "[k8s-all:children]", "k8s-master",
    "198.18.0.11 name=m1", "198.18.0.12 name=m2 lb=MASTER priority=90", "198.18.0.13", "vip=198.18.0.10",
    "lb_port=6443", "weight=1", "priority=x", "198.18.0.11 name=M!", "vip=198.18.0.11", "profile=classic",
    "", "# comment", "[bad", "name=\"unterminated",
])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(INI_LINES, max_size=14))
def test_inventory_shaped_input_never_crashes(tmp_path: Path, lines: list[str]) -> None:
    inv = tmp_path / "shaped.ini"
    inv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, _, stderr = run("gen", "userdata", str(inv), "-o", str(out))
    assert code in (0, 1), stderr
    assert "Traceback" not in stderr
    if code == 1:
        assert stderr.rstrip().endswith("nothing written")


def test_target_choices_are_the_targets() -> None:
    from kubeha.cli.options import Target
    from kubeha.deliver.targets import TARGETS

    assert [t.value for t in Target] == list(TARGETS)


def test_python_dash_m_kubeha() -> None:
    import subprocess
    import sys

    from kubeha import __version__

    run = subprocess.run([sys.executable, "-m", "kubeha", "--version"], capture_output=True, text=True, check=True)
    assert run.stdout == f"kubeha {__version__}\n"
