"""Inventory readers: ansible-inventory JSON (paths, stdin), group options, typos, input hygiene, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha.cli.main import app
from kubeha_test import run

INI = "[control]\n198.18.0.11 name=m1\n198.18.0.12 name=m2\n[compute]\n198.18.0.21 name=w1\n" \
      "[all:vars]\ncluster_name=t\nvip=198.18.0.10\n"


def _listing(priority: object = 100) -> dict[str, object]:
    return {
        "_meta": {"hostvars": {
            "cp1": {"ansible_host": "198.18.0.11", "priority": priority, "vip": "198.18.0.10"},
            "cp2": {"ansible_host": "198.18.0.12", "vip": "198.18.0.10"},
        }},
        "all": {"children": ["ungrouped", "kube_control_plane"]},
        "kube_control_plane": {"hosts": ["cp1", "cp2"]},
    }


def test_json_problem_points_at_the_json_path(tmp_path: Path) -> None:
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(_listing(300)))
    code, _, stderr = run("check", str(inv))
    assert code == 1
    assert f'{inv}: error: $._meta.hostvars["cp1"].priority: 300 is out of range 1-254\n' in stderr


def test_json_from_stdin() -> None:
    result = CliRunner().invoke(app, ["check", "--json", "-"], input=json.dumps(_listing()))
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)["result"]
    assert [(m["name"], m["address"], m["state"]) for m in plan["masters"]] == [
        ("cp1", "198.18.0.11", "MASTER"), ("cp2", "198.18.0.12", "BACKUP")]


def test_json_syntax_error_has_a_line(tmp_path: Path) -> None:
    inv = tmp_path / "inv.json"
    inv.write_text('{\n  "all": {\n    "hosts": [,]\n}\n')
    code, _, stderr = run("check", str(inv))
    assert code == 1 and f"{inv}:3: error: $: not JSON" in stderr and "Traceback" not in stderr


def test_masters_and_workers_group_options(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text(INI)
    code, _, stderr = run("check", str(inv))
    assert code == 1 and "no masters group" in stderr
    code, stdout, stderr = run("check", "--json", "--masters-group", "control", "--workers-group", "compute", str(inv))
    assert code == 0, stderr
    plan = json.loads(stdout)["result"]
    assert [m["name"] for m in plan["masters"]] == ["m1", "m2"] and [w["name"] for w in plan["workers"]] == ["w1"]
    code, _, stderr = run("check", "--masters-group", "contrl", str(inv))
    assert code == 1
    assert "--masters-group: error: --masters-group: no group named 'contrl'; did you mean 'control'?" in stderr


def test_gen_userdata_takes_the_group_options(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text(INI)
    out = tmp_path / "out"
    code, _, stderr = run("gen", "userdata", str(inv), "-o", str(out), "--masters-group", "control",
                          "--workers-group", "compute")
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["m1", "m2", "w1"]


def test_unknown_group_and_key_suggest_what_was_meant(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text("[k8s-master]\n198.18.0.11 name=m1 prority=90\n198.18.0.12 name=m2\n[k8s-nodes]\n"
                   "198.18.0.21 name=w1\n[all:vars]\nvip=198.18.0.10\n")
    code, _, stderr = run("check", str(inv))
    assert code == 0
    assert f"{inv}:2: warning: 198.18.0.11.prority: unknown variable; did you mean 'priority'?" in stderr
    assert f"{inv}:4: warning: [k8s-nodes]: not a group kubeha reads" in stderr
    assert "did you mean 'k8s-node'?" in stderr
    assert run("check", "--strict", str(inv))[0] == 1


def test_native_yaml_typo_suggests(tmp_path: Path) -> None:
    inv = tmp_path / "c.yaml"
    inv.write_text("cluster:\n  vip: 198.18.0.10\n  profle: fast\nmasters:\n  - {name: m1, address: 198.18.0.11}\n"
                   "  - {name: m2, address: 198.18.0.12, prority: 3}\n")
    code, _, stderr = run("check", str(inv))
    assert code == 0
    assert f"{inv}:3: warning: cluster.profle: unknown key; did you mean 'profile'?" in stderr
    assert f"{inv}:6: warning: masters[1].prority: unknown key; did you mean 'priority'?" in stderr


# Input hygiene: full matches only, control characters refused with file:line, secrets never echoed.
HYGIENE = [
    ("name-trailing-newline", ".yaml", 'cluster: {vip: 198.18.0.10}\nmasters:\n  - {name: "m1\\n", address: 198.18.0.11}\n'
     '  - {name: m2, address: 198.18.0.12}\n', 3, "masters[0].name: contains the control character U+000A"),
    ("health-path-trailing-newline", ".yaml", 'cluster: {vip: 198.18.0.10, health_path: "/readyz\\n"}\nmasters:\n'
     "  - {name: m1, address: 198.18.0.11}\n", 1, "cluster.health_path: contains the control character U+000A"),
    ("image-trailing-newline", ".yaml", 'cluster:\n  vip: 198.18.0.10\n  haproxy_image: "r.io/haproxy:2\\n"\nmasters:\n'
     "  - {name: m1, address: 198.18.0.11}\n", 3, "contains the control character U+000A"),
    ("vip-trailing-newline", ".yaml", 'cluster: {vip: "198.18.0.10\\n"}\nmasters:\n  - {name: m1, address: 198.18.0.11}\n',
     1, "cluster.vip: contains the control character U+000A"),
    ("ini-tab-in-quoted-name", ".ini", '[k8s-master]\n198.18.0.11 name="m1\tx"\n198.18.0.12 name=m2\n[all:vars]\n'
     "vip=198.18.0.10\n", 2, "contains the control character U+0009"),
    ("ini-escape-in-interface", ".ini", "[k8s-master]\n198.18.0.11 name=m1 interface=\"'eth0\\x1b'\"\n"
     "198.18.0.12 name=m2\n[all:vars]\nvip=198.18.0.10\n", 2, "contains the control character U+001B"),
    ("mac-trailing-newline", ".yaml", 'cluster: {vip: 198.18.0.10}\nmasters:\n'
     '  - {name: m1, address: 198.18.0.11, mac: "52:54:00:00:00:01\\n"}\n', 3, "contains the control character U+000A"),
]


@pytest.mark.parametrize(("suffix", "text", "line", "message"), [h[1:] for h in HYGIENE], ids=[h[0] for h in HYGIENE])
def test_control_characters_refused_with_line(tmp_path: Path, suffix: str, text: str, line: int, message: str) -> None:
    inv = tmp_path / f"inv{suffix}"
    inv.write_text(text)
    code, _, stderr = run("check", str(inv))
    assert code == 1, stderr
    assert any(ln.startswith(f"{inv}:{line}: error: ") and message in ln for ln in stderr.splitlines()), stderr


@pytest.mark.parametrize("secret", ["s3cr3t-is-too-long", "bad pass", "pw\n", "p\x1bw"])
def test_a_rejected_secret_is_never_echoed(tmp_path: Path, secret: str) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("cluster:\n  vip: 198.18.0.10\n  profile: classic\n  auth_pass: " + json.dumps(secret) + "\n"
                   "masters:\n  - {name: m1, address: 198.18.0.11}\n")
    code, stdout, stderr = run("check", str(inv))
    assert code == 1
    assert f"{inv}:4: error: cluster.auth_pass: " in stderr
    assert secret.strip() not in stderr + stdout and repr(secret) not in stderr


def test_json_warns_only_about_likely_typos(tmp_path: Path) -> None:
    listing = _listing()
    listing["_meta"]["hostvars"]["cp1"].update({"netbox_site": "dc1", "prioirty": 5})  # type: ignore[index]
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(listing))
    code, _, stderr = run("check", str(inv))
    assert code == 0
    assert "netbox_site" not in stderr
    assert f"{inv}: warning: $._meta.hostvars[\"cp1\"].prioirty: unknown variable; did you mean 'priority'?" in stderr


def test_gen_userdata_from_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["gen", "userdata", "-", "-o", str(out)], input=json.dumps(_listing()))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["cp1", "cp2"]
    assert (out / "cp1" / "user-data").read_bytes().startswith(b"#cloud-config")
