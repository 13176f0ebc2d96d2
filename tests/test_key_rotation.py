# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Issue 21 item 1 from the operator's side: ``kubeha keys certify`` and ``bundle pack --root-key``.

One GnuPG home holds the offline root (secret) and the two signing keys, as on the machine that certifies;
the verdicts of the lists it writes are the shared table's (tests/signature_cases.py), through both verifiers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha.cli.bundle import app as bundle_app
from kubeha.cli.keys import app as keys_app
from signature_cases import gpg
from test_bundle import images_tar  # noqa: F401 - session fixture


def _make(home: Path, name: str) -> str:
    uid = f"{name} <{name}@kubeha.invalid>"
    gpg(home, "--quick-gen-key", uid, "ed25519", "sign", "never")
    out = gpg(home, "--with-colons", "--list-keys", uid).decode()
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    path = tmp_path_factory.mktemp("rotation") / "gnupg"
    path.mkdir(mode=0o700)
    fprs = {name: _make(path, name) for name in ("root", "old", "new")}
    yield path, fprs
    subprocess.run(["gpgconf", "--homedir", str(path), "--kill", "all"], check=False, capture_output=True)


def _certify(inventory: Path, home: Path, *keys: str, extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    args = ["certify", str(inventory), "--root-key", "root@kubeha.invalid", "--gnupghome", str(home)]
    for key in keys:
        args += ["--key", key]
    result = CliRunner().invoke(keys_app, [*args, *extra])
    return result.exit_code, result.stdout, result.stderr


def _pack(inventory: Path, images: Path, home: Path, key: str, out: Path, *extra: str) -> tuple[int, str, str]:
    args = ["pack", str(inventory), "--images", str(images), "--sign-key", key, "--gnupghome", str(home),
            "-o", str(out), "--name", "demo", *extra]
    result = CliRunner().invoke(bundle_app, args)
    return result.exit_code, result.stdout, result.stderr


def _verify(bundle: Path, keyring: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(bundle_app, ["verify", str(bundle), "--keyring", str(keyring), *extra])
    return result.exit_code, result.stdout, result.stderr


def test_rotate_through_the_cli(home: tuple[Path, dict[str, str]], images_tar: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    gnupg, fpr = home
    inventory = tmp_path / "cluster.yaml"
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "cluster.yaml", inventory)
    root_pub = tmp_path / "root-public.asc"
    root_pub.write_bytes(gpg(gnupg, "--armor", "--export", fpr["root"]))
    out = tmp_path / "bundles"

    # the first list: makes the cluster id, certifies the old key; the root signs nothing else
    code, stdout, stderr = _certify(inventory, gnupg, "old@kubeha.invalid", extra=("--expires", "90"))
    assert code == 0, stderr
    assert stdout.startswith(f"certified {fpr['old']} in {inventory}.keys: signing-key list version 1 of cluster ")
    assert f"signed by root {fpr['root']}" in stdout and "made a new cluster id" in stderr
    for suffix in (".keys", ".keys.asc", ".keys.pub"):
        assert (tmp_path / f"cluster.yaml{suffix}").stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE" not in (tmp_path / "cluster.yaml.keys.pub").read_bytes()
    cid = (tmp_path / "cluster.yaml.cluster-id").read_text().strip()

    # packed with the old key: the user-data pins the root and the list version; the bundle carries the list
    code, stdout, stderr = _pack(inventory, images_tar, gnupg, fpr["old"], out, "--root-key", str(root_pub))
    assert code == 0, stderr
    user_data = (out / "demo/nodes/master1/user-data").read_text()
    assert f"KUBEHA_KEY_FPR={fpr['root']}" in user_data and "KUBEHA_KEYS_VERSION=1" in user_data
    assert f"KUBEHA_CLUSTER_ID={cid}" in user_data
    assert (out / "demo/KEYS").read_bytes() == (tmp_path / "cluster.yaml.keys").read_bytes()
    assert "KEYS" not in (out / "demo/SHA256SUMS").read_text()
    code, stdout, _ = _verify(out / "demo.tar", root_pub)
    assert code == 0 and f"signature by {fpr['old']} (certified by signing-key list version 1)" in stdout

    # the old key leaked: the next list certifies only the new key
    code, stdout, _ = _certify(inventory, gnupg, "new@kubeha.invalid", extra=("--json",))
    result = json.loads(stdout)["result"]
    assert code == 0 and result["version"] == 2 and result["keys"] == [fpr["new"]] and result["root"] == fpr["root"]
    code, _, stderr = _pack(inventory, images_tar, gnupg, fpr["old"], out, "--root-key", str(root_pub))
    assert code == 4
    assert stderr == (f"kubeha: error: signing key {fpr['old']} is not certified by signing-key list version 2 "
                      f"({inventory}.keys): kubeha keys certify {inventory} --root-key ROOT --key {fpr['old']} "
                      "(and every other key still in use); nothing written\n")
    code, stdout, stderr = _pack(inventory, images_tar, gnupg, fpr["new"], out, "--root-key", str(root_pub))
    assert code == 0, stderr
    code, stdout, _ = _verify(out / "demo.tar", root_pub, "--min-keys-version", "2")
    assert code == 0 and f"signature by {fpr['new']} (certified by signing-key list version 2)" in stdout

    # a cluster with a list packs only with --root-key (a bundle without it would pin the signing key)
    code, _, stderr = _pack(inventory, images_tar, gnupg, fpr["new"], out)
    assert code == 1 and f"{inventory}.keys: error: signing-key list: this cluster's nodes trust a root key" in stderr

    # a list the root did not sign is refused before packing
    keys_asc = tmp_path / "cluster.yaml.keys.asc"
    keys_asc.write_bytes(gpg(gnupg, "--local-user", fpr["new"], "--armor", "--detach-sign", "-o", "-",
                             str(tmp_path / "cluster.yaml.keys")))
    code, _, stderr = _pack(inventory, images_tar, gnupg, fpr["new"], out, "--root-key", str(root_pub))
    assert code == 4 and "KEYS.asc: signed by unknown key" in stderr and "not a pinned root key" in stderr
    assert json.loads((out / "demo/bundle.json").read_text())["serial"] == 2  # nothing new was packed


def test_certify_bad_input(home: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    gnupg, _ = home
    inventory = tmp_path / "cluster.yaml"
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "cluster.yaml", inventory)
    code, _, stderr = _certify(inventory, gnupg, "nobody@kubeha.invalid")
    assert code == 1 and "no public key matching 'nobody@kubeha.invalid'" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "cluster.yaml.keys").exists()
    code, _, stderr = _certify(inventory, gnupg, "new@kubeha.invalid", extra=("--expires", "0"))
    assert code == 1 and "--expires: 0 is not 1 to 3650 days" in stderr
    (tmp_path / "cluster.yaml.keys").symlink_to("/etc/hostname")
    code, _, stderr = _certify(inventory, gnupg, "new@kubeha.invalid")
    assert code == 1 and "a symbolic link is never followed here" in stderr
    assert os.readlink(tmp_path / "cluster.yaml.keys") == "/etc/hostname"
