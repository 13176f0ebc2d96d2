"""Every command's --json prints one object that validates against kubeha/schema/output.schema.json, on
success and on failure, with the exit code unchanged and ``ok`` true exactly when it is 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from kubeha.cli.main import app
from kubeha_test import EXAMPLES, staged_inventory
from test_bundle import make_docker_archive
from test_signing import Keys, gpg_keys  # noqa: F401 - the session's throwaway keys

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "generator" / "kubeha" / "schema" / "output.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def envelope(args: list[str], code: int) -> dict[str, Any]:
    """Run the CLI with --json; the exit code must be ``code`` and stdout one schema-valid object."""
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == code, result.stderr
    doc = json.loads(result.stdout)  # exactly one JSON document: json.loads refuses trailing data
    errors = sorted(VALIDATOR.iter_errors(doc), key=str)
    assert not errors, "\n".join(e.message for e in errors)
    assert doc["ok"] is (code == 0)
    return doc


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_schema_refuses_what_it_should() -> None:
    good = {"kubeha": 1, "command": "check", "ok": True, "errors": [], "warnings": [], "result": {}}
    assert VALIDATOR.is_valid(good)
    for bad in ({**good, "ok": False}, {**good, "errors": [{"message": "x"}]},
                {**good, "result": {"advert": "0.1 s"}}, {**good, "command": "frob"}, {**good, "extra": 1}):
        assert not VALIDATOR.is_valid(bad), bad


@pytest.fixture
def ws(tmp_path: Path, gpg_keys: Keys) -> dict[str, Any]:  # noqa: F811
    inv = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    make_docker_archive(tmp_path / "images.tar")
    return {"inv": str(inv), "tmp": tmp_path, "keys": gpg_keys,
            "pack": ["bundle", "pack", str(inv), "--images", str(tmp_path / "images.tar"),
                     "--sign-key", gpg_keys.trusted.fingerprint, "--gnupghome", str(gpg_keys.trusted.home)]}


def test_check(ws: dict[str, Any]) -> None:
    doc = envelope(["check", ws["inv"]], 0)
    assert doc["result"]["vrrp"] == {"version": 3, "mode": "multicast", "advert_s": 0.1}
    assert doc["result"]["failover_worst_case_s"]["link_or_power_loss"] == 0.31  # 3 adverts + the skew at 240
    doc = envelope(["check", str(ws["tmp"] / "nope.yaml")], 1)
    assert doc["errors"] == [{"file": str(ws["tmp"] / "nope.yaml"), "line": None, "path": "inventory",
                              "message": "cannot read: No such file or directory"}]


def test_check_warnings_are_warnings(tmp_path: Path) -> None:
    doc = envelope(["check", str(EXAMPLES / "seed-hosts.ini")], 0)
    assert doc["errors"] == [] and doc["warnings"]
    assert {"file": str(EXAMPLES / "seed-hosts.ini"), "line": 16, "path": "[all:vars].ip_interface",
            "message": "'eth.*' is a pattern; using 'eth0' (set interface=NAME per host or a plain name here to "
                       "choose)"} in doc["warnings"]


def test_gen_userdata(ws: dict[str, Any]) -> None:
    out = ws["tmp"] / "out"
    doc = envelope(["gen", "userdata", ws["inv"], "-o", str(out)], 0)
    assert [n["node"] for n in doc["result"]["nodes"]] == ["master1", "master2", "master3", "worker1", "worker2"]
    assert doc["result"]["nodes"][0]["bytes"]["user-data"] == (out / "master1" / "user-data").stat().st_size
    size = (out / "master1" / "user-data").stat().st_size
    assert doc["result"]["nodes"][0]["user_data"] == {"target": "nocloud", "bytes": size, "encoding": "plain",
                                                      "budget": None}
    doc = envelope(["gen", "userdata", ws["inv"], "-o", str(ws["tmp"] / "os"), "--target", "openstack"], 0)
    assert doc["result"]["nodes"][0]["user_data"]["budget"] == 65535
    assert doc["result"]["hints"] and isinstance(doc["result"]["hints"][0], str)
    (out / "mine.txt").write_text("x")
    (ws["tmp"] / "other").mkdir()
    (ws["tmp"] / "other" / "x").write_text("x")
    doc = envelope(["gen", "userdata", ws["inv"], "-o", str(ws["tmp"] / "other")], 1)
    assert "holds files kubeha did not write (x)" in doc["errors"][0]["message"]


def test_gen_seed_iso(ws: dict[str, Any]) -> None:
    doc = envelope(["gen", "seed-iso", ws["inv"], "-o", str(ws["tmp"] / "isos")], 0)
    assert len(doc["result"]["isos"]) == 5 and isinstance(doc["result"]["isos"][0]["bytes"], int)
    doc = envelope(["gen", "seed-iso", ws["inv"], "-o", str(ws["tmp"] / "isos2"), "--bundle", ws["inv"]], 2)
    assert doc["errors"][0]["message"].startswith("--bundle needs --keyring")


def test_image_commands(ws: dict[str, Any]) -> None:
    archive = str(ws["tmp"] / "images.tar")
    doc = envelope(["image", "inspect", archive], 0)
    assert [i["refs"] for i in doc["result"]["images"]] == [["kubeha.local/keepalived:2.3.3"],
                                                            ["kubeha.local/haproxy:3.0.11"]]
    envelope(["image", "inspect", str(ws["tmp"] / "nope.tar")], 1)
    nowhere = f"unix://{ws['tmp']}/none.sock"
    doc = envelope(["image", "build", "--docker-host", nowhere], 1)
    assert "cannot reach a Docker daemon" in doc["errors"][0]["message"]
    envelope(["image", "save", "-o", str(ws["tmp"] / "x.tar"), "--docker-host", nowhere], 1)


def test_bundle_pack_and_verify(ws: dict[str, Any]) -> None:
    out = ws["tmp"] / "bundles"
    doc = envelope([*ws["pack"], "-o", str(out), "--name", "demo"], 0)
    assert doc["result"]["tarball"] == str(out / "demo.tar") and isinstance(doc["result"]["tar_bytes"], int)
    keys = ws["keys"]
    doc = envelope(["bundle", "verify", str(out / "demo.tar"), "--keyring", str(keys.trusted.public)], 0)
    assert doc["result"]["files"] > 0
    doc = envelope(["bundle", "verify", str(out / "demo.tar"), "--keyring", str(keys.other.public)], 4)
    assert doc["errors"] and doc["result"]["ok"] is False
    envelope([*ws["pack"], "-o", str(out), "--gnupghome", str(ws["tmp"] / "nohome")], 1)
    tree = ws["tmp"] / "tree"
    doc = envelope(["gen", "http-tree", ws["inv"], "--bundle", str(out / "demo.tar"), "--keyring",
                    str(keys.trusted.public), "-o", str(tree)], 1)  # a cidata bundle: PXE nodes cannot reach it
    assert doc["errors"][0]["path"] == "install.source" and not tree.exists()
    doc = envelope(["gen", "http-tree", ws["inv"], "--bundle", str(out / "demo.tar"), "--keyring",
                    str(keys.trusted.public), "-o", str(tree), "--force"], 0)
    assert doc["result"]["nodes"]["master1"] == str(tree / "master1")
    assert [w["path"] for w in doc["warnings"]] == ["install.source"]
    envelope(["gen", "http-tree", ws["inv"], "--bundle", str(out / "demo.tar"), "--keyring",
              str(keys.other.public), "-o", str(ws["tmp"] / "tree2")], 4)


def test_drill_failure_is_an_envelope(ws: dict[str, Any]) -> None:
    out = ws["tmp"] / "gen"
    envelope(["gen", "userdata", ws["inv"], "-o", str(out)], 0)
    doc = envelope(["drill", str(out), "--profile", "fast"], 1)
    assert doc["command"] == "drill" and doc["errors"]


def test_envelope_schema_lists_every_command() -> None:
    from test_cli import COMMANDS

    leaves = {" ".join(c) for c in COMMANDS if c not in {("gen",), ("image",), ("bundle",), ("keys",)}}
    assert leaves == set(SCHEMA["properties"]["command"]["enum"])
