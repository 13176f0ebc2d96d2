# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Ignition nodes install from the bundle: ``bundle pack --format ignition`` -> real Ignition -> the same script.

The chain, each link a real consumer: ``kubeha bundle pack --format ignition --bundle-source label:KUBEHA
--merge site.ign`` packs config.ign per node; ``ignition-validate`` accepts every one with no output; the
Ignition binary applies a master's config to a fake root (the user's merged config included, fetched from
its inline ``data:`` source and hash-checked by Ignition); then the install script Ignition wrote under
/opt (Flatcar's /usr is read-only) runs against that root, finds the bundle on an ext4 image labelled
KUBEHA (as a directory or a tar), verifies it with gpgv, imports the images into a private containerd and
places the manifests. A wrong label, a missing disk, a conflicting merge and a tampered inline merge fail.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from daemons import Daemon
from test_ignition_apply import apply, validate
from test_node_install import MANIFESTS, containerd, pinned_refs, remove_images  # noqa: F401
from typer.testing import CliRunner

from kubeha.cli.bundle import app
from test_bundle import REFS, make_docker_archive
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.yaml"
SCRIPT = "opt/kubeha/bin/kubeha-install"
LABEL = "KUBEHA"
SITE_CONF = "site=dc1\n"
SITE_UNIT = "[Unit]\nDescription=site agent\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"


def site_config(extra_path: str = "/etc/site/ign.conf") -> bytes:
    config = {
        "ignition": {"version": "3.3.0"},
        "storage": {"files": [{"path": extra_path, "mode": 0o640,
                               "contents": {"source": "data:," + SITE_CONF.replace("\n", "%0A")}}]},
        "systemd": {"units": [{"name": "site-agent.service", "enabled": True, "contents": SITE_UNIT}]},
    }
    return json.dumps(config, indent=1).encode()


@dataclass(frozen=True)
class Packed:
    directory: Path
    site: Path
    inventory: Path
    keyring: Path


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory, gpg_keys: Keys) -> Packed:
    tmp = tmp_path_factory.mktemp("ignition-bundle")
    inventory = tmp / "cluster.yaml"
    shutil.copy(EXAMPLE, inventory)
    images = tmp / "images.tar"
    make_docker_archive(images)
    site = tmp / "site.ign"
    site.write_bytes(site_config())
    key = gpg_keys.trusted
    args = ["pack", str(inventory), "--images", str(images), "--sign-key", key.fingerprint, "--gnupghome",
            str(key.home), "-o", str(tmp / "out"), "--name", "kubeha", "--format", "ignition",
            "--bundle-source", f"label:{LABEL}", "--merge", str(site), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return Packed(tmp / "out" / "kubeha", site, inventory, key.public)


def config_of(packed: Packed, node: str) -> str:
    return (packed.directory / "nodes" / node / "config.ign").read_text()


def test_every_bundle_config_validates_without_warnings(packed: Packed) -> None:
    nodes = sorted(p.name for p in (packed.directory / "nodes").iterdir())
    assert nodes == ["master1", "master2", "master3", "worker1", "worker2"]
    manifest = json.loads((packed.directory / "bundle.json").read_text())
    for node in nodes:
        path = packed.directory / "nodes" / node / "config.ign"
        result = validate(path)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), node
        assert f"nodes/{node}/config.ign" in manifest["nodes"][node]
        merge = json.loads(path.read_text())["ignition"]["config"]["merge"]
        assert [base64.b64decode(m["source"].removeprefix("data:;base64,")) for m in merge] == [site_config()]


def test_validator_sees_a_broken_bundle_config(packed: Packed, tmp_path: Path) -> None:
    config = json.loads(config_of(packed, "master1"))
    config["systemd"]["units"][0]["bogus"] = 1
    (tmp_path / "bad.ign").write_text(json.dumps(config))
    assert "Unused key bogus" in "".join(validate(tmp_path / "bad.ign").stdout)


def labelled_image(tmp_path: Path, bundle: Path, form: str, label: str = LABEL) -> Path:
    """An ext4 image (mkfs.ext4 -d, no mount needed to build it) carrying the bundle at its root."""
    content = tmp_path / "disk"
    content.mkdir()
    if form == "directory":
        shutil.copytree(bundle, content / "kubeha-bundle")
    else:  # the packed tar itself (canonical layout, which the node checks from its headers)
        shutil.copyfile(bundle.parent / f"{bundle.name}.tar", content / "kubeha-bundle.tar")
    image = tmp_path / "bundle.img"
    with image.open("wb") as fh:
        fh.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-L", label, "-d", str(content), str(image)], check=True, timeout=120)
    return image


def by_label(tmp_path: Path, image: Path, label: str = LABEL) -> Path:
    links = tmp_path / "by-label"
    links.mkdir()
    (links / label).symlink_to(image)
    return links


def run_script(root: Path, links: Path, daemon: Daemon, console: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "KUBEHA_ROOT": str(root), "KUBEHA_CONSOLE": str(console),
           "KUBEHA_BY_LABEL": str(links), "CONTAINERD_ADDRESS": str(daemon.socket)}
    # A private mount namespace: the read-only mount of the labelled disk can never outlive the run.
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", str(root / SCRIPT)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("form", ["directory", "tar"])
def test_ignition_written_script_installs_from_labelled_disk(packed: Packed, containerd: Daemon, tmp_path: Path,
                                                             form: str) -> None:
    root = apply(tmp_path, config_of(packed, "master1"))
    # Ignition wrote both sides: the user's merged config and kubeha's files and units.
    assert (root / "etc/site/ign.conf").read_text() == SITE_CONF
    preset = (root / "etc/systemd/system-preset/20-ignition.preset").read_text().splitlines()
    assert {"enable kubeha-install.service", "enable site-agent.service"} <= set(preset)
    unit = (root / "etc/systemd/system/kubeha-install.service").read_text()
    assert f"ExecStart=/{SCRIPT}\n" in unit and "Before=kubelet.service" in unit and "containerd.service" in unit
    assert (root / SCRIPT).stat().st_mode & 0o777 == 0o755
    assert not (root / "usr/local/sbin/kubeha-install").exists()  # nothing under Flatcar's read-only /usr
    cloud = yaml.safe_load((packed.directory / "nodes/master1/user-data").read_bytes())
    same = next(f["content"] for f in cloud["write_files"] if f["path"] == "/usr/local/sbin/kubeha-install")
    assert (root / SCRIPT).read_text() == same  # the very script cloud-init nodes run
    assert (root / "etc/kubeha/install.env").read_text().splitlines()[2] == f"KUBEHA_BUNDLE=label:{LABEL}"
    remove_images(containerd)
    links = by_label(tmp_path, labelled_image(tmp_path, packed.directory, form))
    proc = run_script(root, links, containerd, tmp_path / "console")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("kubeha-install: OK master1 ") and "images=imported" in proc.stdout
    status = json.loads((root / "var/lib/kubeha/status.json").read_text())
    assert status["verdict"] == "ok" and status["bundle"] == f"label:{LABEL}"
    steps = {s["name"]: s["status"] for s in status["steps"]}
    assert steps == {"config": "ok", "locate": "ok", "stage": "ok" if form == "tar" else "skipped",
                     "verify": "ok", "images": "ok", "manifests": "ok"}
    placed = sorted(p.name for p in (root / "etc/kubernetes/manifests").iterdir())
    assert placed == list(MANIFESTS)
    for name in MANIFESTS:
        assert (root / "etc/kubernetes/manifests" / name).read_bytes() == (root / "etc/kubeha/manifests" / name).read_bytes()
    assert pinned_refs(containerd) == set(REFS)
    assert list((root / "var/lib/kubeha").glob("work.*")) == []


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong-label", "does not carry the label KUBEHA"),
        ("no-disk", "bundle not found at label:KUBEHA"),
    ],
)
def test_labelled_disk_failures_fail_closed(packed: Packed, containerd: Daemon, tmp_path: Path, case: str,
                                            reason: str) -> None:
    root = apply(tmp_path, config_of(packed, "master1"))
    if case == "wrong-label":
        links = by_label(tmp_path, labelled_image(tmp_path, packed.directory, "directory", label="OTHER"))
    else:
        links = tmp_path / "by-label"
        links.mkdir()
    proc = run_script(root, links, containerd, tmp_path / "console")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("kubeha-install: FAILED master1 step=locate") and reason in proc.stdout
    assert not (root / "etc/kubernetes/manifests").exists() or not list((root / "etc/kubernetes/manifests").iterdir())


def test_worker_config_applies_without_install(packed: Packed, tmp_path: Path) -> None:
    root = apply(tmp_path, config_of(packed, "worker1"))
    assert (root / "etc/site/ign.conf").read_text() == SITE_CONF
    assert "KUBEHA_CONTROL_PLANE_ENDPOINT=198.18.0.10:6444" in (root / "etc/kubeha/control-plane.env").read_text()
    assert not (root / SCRIPT).exists()


def test_ignition_refuses_a_tampered_inline_merge(packed: Packed, tmp_path: Path) -> None:
    config = json.loads(config_of(packed, "master1"))
    entry = config["ignition"]["config"]["merge"][0]
    entry["source"] = "data:;base64," + base64.b64encode(site_config("/etc/site/other.conf")).decode()
    with pytest.raises(AssertionError, match="hash"):
        apply(tmp_path, json.dumps(config))


def test_conflicting_ignition_merge_is_refused(packed: Packed, gpg_keys: Keys, tmp_path: Path) -> None:
    clash = tmp_path / "clash.ign"
    clash.write_bytes(site_config("/etc/kubeha/install.env"))
    key = gpg_keys.trusted
    images = tmp_path / "images.tar"
    make_docker_archive(images)
    result = CliRunner().invoke(app, [
        "pack", str(packed.inventory), "--images", str(images), "--sign-key", key.fingerprint, "--gnupghome",
        str(key.home), "-o", str(tmp_path / "out"), "--format", "ignition", "--merge", str(clash)])
    assert result.exit_code == 1
    assert f"error: {clash}: error: path /etc/kubeha/install.env: set by both {clash} and kubeha (master1)" in result.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_seed_iso_ignition_writes_a_labelled_bundle_disk_per_node(packed: Packed, tmp_path: Path) -> None:
    import guest

    from kubeha.cli.main import app as main_app

    out = tmp_path / "isos"
    keyring = ["--keyring", str(packed.keyring)]
    result = CliRunner().invoke(main_app, ["gen", "seed-iso", str(packed.inventory), "-o", str(out), "--bundle",
                                           str(packed.directory), *keyring, "--format", "ignition", "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert [w["node"] for w in written] == ["master1", "master2", "master3"]  # workers install nothing
    label, files = guest.read_seed_iso(out / "master1.iso")
    assert label == LABEL
    assert files["config.ign"] == (packed.directory / "nodes/master1/config.ign").read_bytes()
    for rel in ("SHA256SUMS", "SHA256SUMS.asc", "images/images.tar", "bundle.json", "nodes/master1/config.ign"):
        assert files[f"kubeha-bundle/{rel}"] == (packed.directory / rel).read_bytes(), rel
    assert not any(name.startswith("kubeha-bundle/nodes/master2") for name in files)  # only this master's part
    again = tmp_path / "again"
    assert CliRunner().invoke(main_app, ["gen", "seed-iso", str(packed.inventory), "-o", str(again), "--bundle",
                                         str(packed.directory), *keyring, "--format", "ignition"]).exit_code == 0
    assert (again / "master1.iso").read_bytes() == (out / "master1.iso").read_bytes()  # byte-stable
    refused = CliRunner().invoke(main_app, ["gen", "seed-iso", str(packed.inventory), "-o", str(tmp_path / "x"),
                                            "--format", "ignition"])
    assert refused.exit_code == 2 and "--format ignition needs --bundle and --keyring" in refused.stderr


def test_gen_userdata_ignition_merge(packed: Packed, tmp_path: Path) -> None:
    from kubeha.cli.main import app as main_app

    result = CliRunner().invoke(main_app, ["gen", "userdata", str(packed.inventory), "-o", str(tmp_path / "out"),
                                           "--format", "ignition", "--merge", str(packed.site)])
    assert result.exit_code == 0, result.output
    assert "1 user config(s) merged" in result.stdout
    config = tmp_path / "out/master2/config.ign"
    checked = validate(config)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
    (tmp_path / "apply").mkdir()
    root = apply(tmp_path / "apply", config.read_text())
    assert (root / "etc/site/ign.conf").read_text() == SITE_CONF
    assert (root / "etc/keepalived/keepalived.conf").stat().st_mode & 0o777 == 0o600
