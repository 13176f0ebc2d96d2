"""Real consumers of kubeha's Ignition output: ignition-validate and the Ignition binary itself.

The binary runs the ``fetch-offline`` and ``files`` stages on a temporary root (LAB.md): it needs
``etc/selinux/config`` with a SELINUXTYPE line, a no-op ``setfiles`` first on PATH, and ``etc/passwd`` plus
``etc/group`` in the root, because it resolves owner *names* inside the target root (without them it fails
with ``no such user "root"``).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from kubeha.deliver.ignition import FIRST_BOOT_UNIT, dump, pending_first_boot, to_ignition
from kubeha.files import NodeDocument, RenderedFile, SystemdUnit

pytestmark = pytest.mark.e2e

IGNITION = Path("/usr/lib/dracut/modules.d/30ignition/ignition")
PASSWD = "root:x:0:0:root:/root:/bin/sh\ncore:x:500:500:core:/home/core:/bin/sh\n"
GROUP = "root:x:0:\ncore:x:500:\n"
KEEPALIVED = "".join(f"vrrp_instance VI_{i} {{\n  state BACKUP\n  priority {100 - i}\n}}\n" for i in range(10))
INSTALL_UNIT = (
    "[Unit]\nDescription=kubeha bundle install\nAfter=containerd.service\nBefore=kubelet.service\n"
    "[Service]\nType=oneshot\nExecStart=/opt/kubeha/install\n[Install]\nWantedBy=multi-user.target\n"
)
# Only carried as text into /etc/kubeha/bundle-key.asc here; no signature is checked in these tests.
TEST_PUBLIC_KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZtest\n-----END PGP PUBLIC KEY BLOCK-----\n"
DISABLED_UNIT = "[Unit]\nDescription=present but not enabled\n[Service]\nExecStart=/bin/true\n"


def hand_made_docs() -> list[NodeDocument]:
    """Realistic documents: the secret-bearing 0600 config, a 0755 script, a non-root owner, units."""
    files = (
        RenderedFile("/etc/keepalived/keepalived.conf", KEEPALIVED, 0o600),
        RenderedFile("/etc/keepalived/check_apiserver.sh", "#!/bin/sh\ncurl --fail -k https://127.0.0.1:6444/readyz\n", 0o755),
        RenderedFile("/etc/kubernetes/manifests/haproxy.yaml", "apiVersion: v1\nkind: Pod\n"),
        RenderedFile("/opt/kubeha/notes.txt", "owned by core\n", 0o640, "core:core"),
    )
    units = (SystemdUnit("kubeha-install.service", INSTALL_UNIT), SystemdUnit("kubeha-idle.service", DISABLED_UNIT, False))
    return [
        NodeDocument("master-1", "master-1", "master", "198.18.0.11", files, units),
        NodeDocument("master-2", "master-2", "master", "198.18.0.12", files[:2], units[:1],
                     first_boot=(("/opt/kubeha/install", "--bundle", "/media/kubeha bundle"),)),
    ]


def generated_docs() -> list[NodeDocument]:
    """The lead's real documents for every example inventory (copied: loading writes a secret beside it)."""
    from kubeha.generate import BundleRef, build_documents

    examples = Path(__file__).resolve().parents[2] / "examples"
    inventories = sorted(p for p in examples.glob("*") if p.suffix in {".ini", ".yaml", ".yml"})
    assert inventories, f"no example inventories in {examples}"
    docs: list[NodeDocument] = []
    with tempfile.TemporaryDirectory() as tmp:
        for inventory in inventories:
            copy = Path(tmp) / inventory.name
            shutil.copyfile(inventory, copy)
            docs += [replace(d, name=f"{inventory.stem}-{d.name}") for d in build_documents(copy)[1]]
            # With a bundle reference the documents gain the install script and kubeha-install.service.
            bundled = build_documents(copy, bundle=BundleRef(public_key=TEST_PUBLIC_KEY))[1]
            docs += [replace(d, name=f"{inventory.stem}-bundled-{d.name}") for d in bundled]
    return docs


@functools.cache
def all_docs() -> list[NodeDocument]:
    return hand_made_docs() + generated_docs()


def require(path: Path | str | None, package: str) -> str:
    if path is None or not Path(path).exists():
        pytest.fail(f"{path or package} is missing: apt-get install -y {package}")
    return str(path)


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    exe = require(shutil.which("ignition-validate"), "ignition")
    return subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("indent", [False, True])
def test_every_config_validates_without_warnings(tmp_path: Path, indent: bool) -> None:
    docs = all_docs()
    for doc in docs:
        path = tmp_path / f"{doc.name}.ign"
        path.write_text(dump(to_ignition(doc), indent=indent))
        result = validate(path)
        # Unknown keys are only warnings with rc 0: any output at all counts as a failure.
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), doc.name


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/x", "mode": "0644"}]}}, "cannot unmarshal"),
        ({"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/x", "bogus": 1}]}}, "Unused key bogus"),
        ({"ignition": {"version": "3.5.0"}}, "unsupported config version"),
    ],
)
def test_validator_catches_broken_configs(tmp_path: Path, config: dict[str, object], expected: str) -> None:
    path = tmp_path / "bad.ign"
    path.write_text(json.dumps(config))
    result = validate(path)
    assert expected in result.stdout + result.stderr


def prepare_root(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "root"
    (root / "etc/selinux").mkdir(parents=True)
    (root / "etc/selinux/config").write_text("SELINUX=disabled\nSELINUXTYPE=targeted\n")
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "setfiles").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "setfiles").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    return root, env


def apply(tmp_path: Path, config_text: str) -> Path:
    require(IGNITION, "ignition")
    root, env = prepare_root(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "config.ign").write_text(config_text)
    env["IGNITION_CONFIG_FILE"] = str(tmp_path / "config.ign")
    common = ["-platform", "file", "-config-cache", str(state / "cache.json"), "-state-file",
              str(state / "state"), "-neednet", str(state / "neednet"), "-log-to-stdout"]
    for stage in (["-stage", "fetch-offline"], ["-stage", "files", "-root", str(root)]):
        result = subprocess.run([str(IGNITION), *common, *stage], env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.mark.parametrize("index", range(len(all_docs())), ids=[d.name for d in all_docs()])
def test_ignition_applies_files_modes_owners_units(tmp_path: Path, index: int) -> None:
    doc = all_docs()[index]
    root = apply(tmp_path, dump(to_ignition(doc)))
    ids = {"root": 0, "core": 500}
    for rendered in doc.files:
        landed = root / rendered.path.lstrip("/")
        assert landed.read_text() == rendered.content, rendered.path
        stat = landed.stat()
        assert stat.st_mode & 0o7777 == rendered.mode, rendered.path
        user, group = rendered.owner.split(":")
        assert (stat.st_uid, stat.st_gid) == (ids[user], ids[group]), rendered.path
    assert (root / "etc/hostname").read_text() == doc.hostname + "\n"
    units = list(doc.units)
    for unit in units:
        assert (root / "etc/systemd/system" / unit.name).read_text() == unit.content
    preset_file = root / "etc/systemd/system-preset/20-ignition.preset"
    preset = preset_file.read_text().splitlines() if preset_file.exists() else []
    expected = {f"enable {u.name}" for u in units if u.enabled}
    expected |= {f"disable {u.name}" for u in units if not u.enabled}
    if pending_first_boot(doc):
        expected.add(f"enable {FIRST_BOOT_UNIT}")
        assert "Before=kubelet.service" in (root / "etc/systemd/system" / FIRST_BOOT_UNIT).read_text()
    assert set(preset) == expected


def test_ignition_binary_refuses_a_bad_owner(tmp_path: Path) -> None:
    """The apply check can fail: an owner missing from the root's passwd stops Ignition."""
    doc = NodeDocument("x", "x", "master", "198.18.0.11", (RenderedFile("/etc/x", "x\n", 0o600, "nobody1:root"),))
    with pytest.raises(AssertionError, match='no such user "nobody1"'):
        apply(tmp_path, dump(to_ignition(doc)))
