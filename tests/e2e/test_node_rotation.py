# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Issue 21 item 1 on the node: a signing key retired by a root-signed list, boot after boot.

The real kubeha-install over a fake root with a private containerd, the user-data pinning the root (as
``bundle pack --root-key`` writes it): the old key's bundles install under list 1; the new key's bundle brings
list 2 and installs; from then on the retired key's bundles are refused, whatever their serial, with the
old list or with none, and the verified install is kept ("kept serial N").
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_node_attacks import _set_env
from test_node_install import Node, Packed, assert_ok, containerd, node, packed  # noqa: F401

from kubeha.bundle import PackInput, pack_bundle
from kubeha.bundle.keylist import KEYS
from kubeha.bundle.signing import Signer
from signature_cases import EXPIRED, Key, SigKeys, key_list
from test_bundle import make_docker_archive
from test_signature_table import sig_keys  # noqa: F401 - session fixture
from test_signing import gpg_keys  # noqa: F401

pytestmark = pytest.mark.e2e


class Site:
    """Packs bundles for the node's cluster with a given signer and list."""

    def __init__(self, node: Node, packed: Packed, tmp: Path) -> None:
        self.node, self.packed, self.tmp = node, packed, tmp
        tmp.mkdir()
        self.images = tmp / "images.tar"
        make_docker_archive(self.images)

    def bundle(self, serial: int, signer: Key, keys: dict[str, bytes] | None) -> Path:
        out = self.tmp / f"b{serial}-{signer.name}"
        inputs = PackInput("demo", self.images, name="kubeha", serial=serial, cluster_id=self.node.cluster_id,
                           key_files=keys or {})
        return pack_bundle(out, self.packed.documents, inputs, Signer(signer.home, signer.fingerprint)).tarball

    def boot(self, tar: Path) -> str:
        self.node.place_tar(tar)
        proc = self.node.run()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout.strip()


def test_retired_key_is_refused_after_rotation(node: Node, packed: Packed, sig_keys: SigKeys, tmp_path: Path) -> None:
    root, old, new = sig_keys.root, sig_keys.good, sig_keys.other
    (node.root / "etc/kubeha/bundle-key.asc").write_bytes(root.public())
    _set_env(node, "KUBEHA_KEY_FPR", root.fingerprint)
    site, cid, scratch = Site(node, packed, tmp_path / "site"), node.cluster_id, tmp_path / "scratch"
    scratch.mkdir()
    v1 = key_list(root, scratch, cid, 1, (old,))
    v2 = key_list(root, scratch, cid, 2, (new,))
    kept = node.root / "var/lib/kubeha/keys"

    assert_ok(node, _run(site, site.bundle(1, old, v1)), "imported", serial=1)
    assert (kept / KEYS).read_bytes() == v1[KEYS]
    # the leaked key is retired: the new key's bundle brings list 2 and installs
    assert_ok(node, _run(site, site.bundle(2, new, v2)), "present", serial=2)
    assert (kept / KEYS).read_bytes() == v2[KEYS]
    # the retired key's newer bundles: with the old list, with the new one, with none
    line = site.boot(site.bundle(3, old, v1))
    assert line == ("kubeha-install: kept serial 2: step=verify reason=signing-key list version 1 is older than this "
                    "node's version 2"), line
    line = site.boot(site.bundle(4, old, key_list(root, scratch, cid, 2, (new,), material=(new, old))))
    assert line == (f"kubeha-install: kept serial 2: step=verify reason=signed by {old.fingerprint}, which is not one "
                    "of the keys signing-key list version 2 certifies"), line
    line = site.boot(site.bundle(5, old, None))
    assert line.startswith("kubeha-install: kept serial 2: step=verify reason=signature by unknown key "), line
    assert line.endswith(": not one of the keys signing-key list version 2 certifies"), line
    # the same version with other content (a forged list would need the root) is refused too
    line = site.boot(site.bundle(6, new, key_list(root, scratch, cid, 2, (new, old))))
    assert line == "kubeha-install: kept serial 2: step=verify reason=signing-key list version 2 differs from the one this node keeps", line
    assert (kept / KEYS).read_bytes() == v2[KEYS] and node.status["serial"] == 2
    # the new key keeps installing
    assert_ok(node, _run(site, site.bundle(7, new, v2)), "present", serial=7)


def test_expired_kept_list_keeps_the_install(node: Node, packed: Packed, sig_keys: SigKeys, tmp_path: Path) -> None:
    """A node that never sees a newer list stops installing when its list expires, and keeps what it has."""
    root, new = sig_keys.root, sig_keys.other
    (node.root / "etc/kubeha/bundle-key.asc").write_bytes(root.public())
    _set_env(node, "KUBEHA_KEY_FPR", root.fingerprint)
    site, cid, scratch = Site(node, packed, tmp_path / "site"), node.cluster_id, tmp_path / "scratch"
    scratch.mkdir()
    assert_ok(node, _run(site, site.bundle(1, new, key_list(root, scratch, cid, 1, (new,)))), "imported", serial=1)
    kept = node.root / "var/lib/kubeha/keys"
    expired = key_list(root, scratch, cid, 1, (new,), expires=EXPIRED)  # as if time had passed: the kept list
    for rel, data in expired.items():
        (kept / rel).write_bytes(data)
    line = site.boot(site.bundle(2, new, None))
    assert line == "kubeha-install: kept serial 1: step=verify reason=signing-key list version 1 expired at 2020-01-02T00:00:00Z", line
    # a root-mode node provisioned at list version 3 never takes an older one, even on its first install
    _set_env_line(node, "KUBEHA_KEYS_VERSION", "3")
    line = site.boot(site.bundle(3, new, key_list(root, scratch, cid, 2, (new,))))
    assert line.endswith("reason=signing-key list version 2 is older than this node's version 3"), line


def _set_env_line(node: Node, key: str, value: str) -> None:
    env = node.root / "etc/kubeha/install.env"
    lines = [line for line in env.read_text().splitlines() if not line.startswith(f"{key}=")]
    env.write_text("\n".join([*lines, f"{key}={value}"]) + "\n")


def _run(site: Site, tar: Path) -> subprocess.CompletedProcess[str]:
    site.node.place_tar(tar)
    return site.node.run()


def test_kept_list_counts_only_for_this_root(node: Node, packed: Packed, sig_keys: SigKeys, tmp_path: Path) -> None:
    """A kept list the pinned root did not sign (planted, or from before new user-data) certifies nothing."""
    root, new = sig_keys.root, sig_keys.other
    (node.root / "etc/kubeha/bundle-key.asc").write_bytes(root.public())
    _set_env(node, "KUBEHA_KEY_FPR", root.fingerprint)
    site, scratch = Site(node, packed, tmp_path / "site"), tmp_path / "scratch"
    scratch.mkdir()
    kept = node.root / "var/lib/kubeha/keys"
    kept.mkdir(parents=True)
    for rel, data in key_list(new, scratch, node.cluster_id, 9, (new,)).items():  # signed by the key it lists
        (kept / rel).write_bytes(data)
    proc = _run(site, site.bundle(1, new, None))
    assert proc.returncode == 1, proc.stdout
    assert "reason=signature by unknown key" in proc.stdout and "not one of the trusted keys" in proc.stdout
    assert node.manifests() == []
