# ruff: noqa: F811 - fixtures imported from test_bundle/test_signing and used as parameters
"""``kubeha bundle pack --target``: every node's bundle documents fitted to the target's budget, or refused.

The bundle master's user-data (install script, public key, both pods) is about 28 KB: it fits OpenStack's
65,535 (base64-counted) plainly, must be compressed for AWS's 16,384, and with a large incompressible merged
file cannot fit AWS at all. What is packed is checked the way cloud-init reads it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kubeha.cli.bundle import app
from kubeha_test import CASES, EXAMPLES
from test_bundle import images_tar  # noqa: F401 - shared fixture
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture


def noise_config(path: Path, lines: int) -> Path:
    """A #cloud-config writing hex of a hash chain: gzip cannot shrink it below half (65 bytes a line)."""
    body = "".join(f"    {hashlib.sha256(str(i).encode()).hexdigest()}\n" for i in range(lines))
    path.write_text(f"#cloud-config\nwrite_files:\n- path: /etc/site/noise.txt\n  content: |\n{body}")
    return path


def readable(data: bytes) -> dict[str, object]:
    """What cloud-init parses from the packed bytes (whole-document gzip unpacked, gz+b64 files decoded)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    doc = yaml.safe_load(data)
    for entry in doc["write_files"]:
        if entry.get("encoding") == "gz+b64":
            entry["content"] = gzip.decompress(base64.b64decode(entry["content"])).decode()
    return dict(doc)


def _pack(inventory: Path, images_tar: Path, keys: Keys, out: Path, *extra: str) -> tuple[int, str, str]:
    key = keys.trusted
    args = ["pack", str(inventory), "--images", str(images_tar), "--sign-key", key.fingerprint,
            "--gnupghome", str(key.home), "-o", str(out), "--name", "demo", "--json", *extra]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


VRRP = EXAMPLES / "cluster.yaml"  # masters master1-3, workers worker1-2
EXTERNAL = CASES / "external" / "inventory.yaml"  # vip_mode external (AWS): masters cp-1..3, worker w-1


def staged(src: Path, tmp: Path) -> Path:
    (tmp / "inv").mkdir()
    dst = tmp / "inv" / src.name
    dst.write_bytes(src.read_bytes())
    return dst


@pytest.mark.parametrize(
    ("source", "target", "noise_lines", "master_form", "budget", "measured"),
    [
        (EXTERNAL, "azure", 0, "plain", 65_535, "raw"),  # 51 KB raw: fits as is (68 KB as base64: not openstack)
        (EXTERNAL, "aws", 0, "compressed", 16_384, "raw"),   # 27 KB raw: must compress
        (VRRP, "openstack", 700, "compressed", 65_535, "base64"),  # +48 KB merged: only compressed fits
        (VRRP, "nocloud", 900, "plain", None, "raw"),        # no budget: never encoded
    ],
    ids=["azure-plain", "aws-must-compress", "openstack-merged-must-compress", "nocloud-no-budget"],
)
def test_pack_fits_every_node(images_tar: Path, gpg_keys: Keys, tmp_path: Path, source: Path, target: str,
                              noise_lines: int, master_form: str, budget: int | None, measured: str) -> None:
    inventory = staged(source, tmp_path)
    extra = ["--target", target]
    if noise_lines:
        extra += ["--merge", str(noise_config(tmp_path / "site.yaml", noise_lines))]
    code, out, err = _pack(inventory, images_tar, gpg_keys, tmp_path / "b", *extra)
    assert code == 0, err
    assert json.loads(out)["result"]["files"] > 0
    nodes = sorted(p.name for p in (tmp_path / "b/demo/nodes").iterdir())
    assert len(nodes) == (5 if source == VRRP else 4)
    for node in nodes:
        data = (tmp_path / "b/demo/nodes" / node / "user-data").read_bytes()
        size = len(base64.b64encode(data)) if measured == "base64" else len(data)
        assert budget is None or size <= budget, (node, size)
        doc = readable(data)
        paths = [e["path"] for e in doc["write_files"]]  # type: ignore[attr-defined]
        assert ("/etc/site/noise.txt" in paths) == bool(noise_lines)
        if node.startswith(("master", "cp-")):
            compressed = data[:2] == b"\x1f\x8b" or b"encoding: gz+b64" in data
            assert compressed == (master_form == "compressed"), (node, len(data))
            assert "/usr/local/sbin/kubeha-install" in paths


def test_pack_refuses_what_cannot_fit_with_per_file_sizes(images_tar: Path, gpg_keys: Keys, tmp_path: Path) -> None:
    inventory = staged(EXTERNAL, tmp_path)
    site = noise_config(tmp_path / "site.yaml", 900)
    code, out, err = _pack(inventory, images_tar, gpg_keys, tmp_path / "b", "--target", "aws", "--merge", str(site))
    assert code == 1 and json.loads(out)["ok"] is False  # --json: the envelope, also on failure
    lines = [line for line in err.splitlines() if "does not fit" in line]
    assert len(lines) == 4  # every node, masters and worker
    master = next(line for line in lines if "cp-1/user-data" in line)
    # The throwaway signing key rides in the user-data, so the compressed totals move by a few bytes.
    pattern = (r"user-data does not fit aws's budget of 16,384 bytes \(raw\): tried plain [\d,]+, "
               r"gz\+b64-files [\d,]+, gzip [\d,]+; files: merged " + re.escape(str(site)) +
               r" 62,168 raw / 46,796 gz\+b64; /usr/local/sbin/kubeha-install [\d,]+ raw / [\d,]+ gz\+b64; ")
    found = re.search(pattern, master)
    assert found, master
    tried = re.search(r"tried plain ([\d,]+), gz\+b64-files ([\d,]+), gzip ([\d,]+);", master)
    assert tried and all(int(n.replace(",", "")) > 16_384 for n in tried.groups())
    assert not (tmp_path / "b").exists() or list((tmp_path / "b").iterdir()) == []


def test_seed_iso_merges_into_the_signed_bundle_user_data(images_tar: Path, gpg_keys: Keys, tmp_path: Path) -> None:
    """gen seed-iso --bundle --merge: the user's parts merged into the verified bundle's own user-data."""
    from kubeha.cli.main import app as main_app
    from test_targets import load_guest

    inventory = staged(VRRP, tmp_path)
    code, _, err = _pack(inventory, images_tar, gpg_keys, tmp_path / "b")
    assert code == 0, err
    base = tmp_path / "base.yaml"
    base.write_text("#cloud-config\nwrite_files:\n- path: /etc/motd\n  content: hi\nruncmd: [[touch, /root/site]]\n")
    result = CliRunner().invoke(main_app, ["gen", "seed-iso", str(inventory), "--bundle", str(tmp_path / "b/demo"),
                                           "--keyring", str(gpg_keys.trusted.public), "-o", str(tmp_path / "isos"),
                                           "--merge", str(base)])
    assert result.exit_code == 0, result.output
    label, files = load_guest().read_seed_iso(tmp_path / "isos" / "master2.iso")
    signed = (tmp_path / "b/demo/nodes/master2/user-data").read_bytes()
    assert label == "cidata" and files["kubeha-bundle/nodes/master2/user-data"] == signed  # the bundle untouched
    data = yaml.safe_load(files["user-data"])
    assert data["write_files"][0]["path"] == "/etc/motd"
    assert [e["path"] for e in data["write_files"][1:]] == [e["path"] for e in yaml.safe_load(signed)["write_files"]]
    assert data["runcmd"] == [["touch", "/root/site"], *yaml.safe_load(signed)["runcmd"]]


def test_pack_ignition_checks_config_ign_against_the_budget(images_tar: Path, gpg_keys: Keys, tmp_path: Path) -> None:
    """config.ign has no encoding to fall back on: a bundle master's does not fit AWS's 16 KB and is refused."""
    inventory = staged(EXTERNAL, tmp_path)
    code, out, err = _pack(inventory, images_tar, gpg_keys, tmp_path / "b", "--target", "aws", "--format", "ignition")
    assert code == 1 and json.loads(out)["ok"] is False  # --json: the envelope, also on failure
    refused = [line for line in err.splitlines() if "config.ign does not fit aws's budget of 16,384 bytes" in line]
    assert [line.split(":")[0].strip() for line in refused] == ["cp-1/config.ign", "cp-2/config.ign", "cp-3/config.ign"]
    assert "tried config.ign " in refused[0] and "/opt/kubeha/bin/kubeha-install " in refused[0]
    code, out, err = _pack(inventory, images_tar, gpg_keys, tmp_path / "c", "--target", "azure", "--format", "ignition")
    assert code == 0, err
    for node in ("cp-1", "w-1"):
        assert len((tmp_path / "c/demo/nodes" / node / "config.ign").read_bytes()) <= 65_535


def test_http_tree_from_a_verified_ignition_bundle(images_tar: Path, gpg_keys: Keys, tmp_path: Path) -> None:
    """gen http-tree: the bundle's own documents (config.ign included) keyed for PXE, after verification."""
    from kubeha.cli.main import app as main_app

    inventory = staged(VRRP, tmp_path)
    url = "http://198.18.0.1/kubeha/demo.tar"
    code, _, err = _pack(inventory, images_tar, gpg_keys, tmp_path / "b", "--format", "ignition",
                         "--bundle-source", url)
    assert code == 0, err
    args = ["gen", "http-tree", str(inventory), "--bundle", str(tmp_path / "b/demo.tar"), "--keyring",
            str(gpg_keys.trusted.public), "-o", str(tmp_path / "tree"), "--json"]
    result = CliRunner().invoke(main_app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["nodes"] == {
        n: str(tmp_path / "tree" / n) for n in ("master1", "master2", "master3", "worker1", "worker2")}
    for node in ("master1", "worker2"):
        for name in ("user-data", "meta-data", "config.ign"):
            assert (tmp_path / "tree" / node / name).read_bytes() == (tmp_path / "b/demo/nodes" / node / name).read_bytes()
    config = json.loads((tmp_path / "tree/master1/config.ign").read_text())
    assert any(f["path"] == "/opt/kubeha/bin/kubeha-install" for f in config["storage"]["files"])
    readme = (tmp_path / "tree/README.txt").read_text()
    assert "ignition.config.url=http://SERVER/master1/config.ign" in readme
    # what an unauthenticated client can read, and how to serve the tree (issue 21 item 6)
    assert "HTTP has no client authentication: anyone who reaches the server reads every node's user-data" in readme
    assert "move\nthis README.txt out of the web root" in readme
    # A bundle signed by another key is refused before anything is written.
    other = CliRunner().invoke(main_app, [*args[:6], str(gpg_keys.other.public), "-o", str(tmp_path / "tree2")])
    assert other.exit_code == 4, other.output
    assert not (tmp_path / "tree2").exists()
