# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""The shared signature table (tests/signature_cases.py) through ``kubeha bundle verify``.

tests/e2e/test_node_attacks.py runs the same table through the node script; both must reach the verdict
the table gives. Also: ``bundle pack`` refuses unusable keys (exit 4) and never back-dates a signature.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha.bundle import PackInput, PackResult, pack_bundle, write_tar
from kubeha.bundle.signing import Signer, UnusableKeyError
from kubeha.cli.bundle import app
from signature_cases import CASE_NAMES, SigCase, SigKeys, make_sig_keys, signature_cases
from test_bundle import CLUSTER_ID, DOCUMENTS, images_tar  # noqa: F401 - session fixture


@pytest.fixture(scope="session")
def sig_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigKeys]:
    keys = make_sig_keys(tmp_path_factory.mktemp("sigkeys"))
    yield keys
    keys.close()


@pytest.fixture(scope="session")
def good_bundle(tmp_path_factory: pytest.TempPathFactory, sig_keys: SigKeys, images_tar: Path) -> PackResult:
    out = tmp_path_factory.mktemp("sigbundle")
    signer = Signer(sig_keys.good.home, sig_keys.good.fingerprint)
    return pack_bundle(out, DOCUMENTS, PackInput("lab", images_tar, name="lab", cluster_id=CLUSTER_ID), signer)


@pytest.fixture(scope="session")
def cases(tmp_path_factory: pytest.TempPathFactory, sig_keys: SigKeys, good_bundle: PackResult) -> dict[str, SigCase]:
    return signature_cases(sig_keys, good_bundle.directory / "SHA256SUMS", tmp_path_factory.mktemp("cases"))


@pytest.mark.parametrize("form", ["directory", "tar"])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_signature_case_through_verify(
    good_bundle: PackResult, cases: dict[str, SigCase], tmp_path: Path, name: str, form: str
) -> None:
    case = cases[name]
    copy = tmp_path / "lab"
    shutil.copytree(good_bundle.directory, copy)
    (copy / "SHA256SUMS.asc").write_bytes(case.signature)
    for rel, data in case.key_files.items():
        (copy / rel).write_bytes(data)
    keyring = tmp_path / "keyring.asc"
    keyring.write_bytes(case.keyring)
    target = copy
    if form == "tar":
        target = tmp_path / "lab.tar"
        write_tar(copy, "lab", target, 0)
    seen = ["--min-keys-version", str(case.seen_version)] if case.seen_version else []
    result = CliRunner().invoke(app, ["verify", str(target), "--keyring", str(keyring), *seen])
    if case.accept:
        assert result.exit_code == 0, result.output
        assert "serial 1, signature by " in result.stdout
        version = int(case.key_files["KEYS"].split(b"\nversion ")[1].split()[0]) if case.key_files else 0
        assert ("(certified by signing-key list version" in result.stdout) == bool(version), result.stdout
    else:
        assert result.exit_code == 4, result.output
        assert case.python in result.stderr, result.stderr
        assert "Traceback" not in result.output


def test_pack_refuses_unusable_keys(sig_keys: SigKeys, images_tar: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    for key, reason in ((sig_keys.expired, "expired at 2020-01-02"), (sig_keys.revoked_signer, "is revoked")):
        with pytest.raises(UnusableKeyError, match=reason) as info:
            pack_bundle(tmp_path / key.name, DOCUMENTS, PackInput("lab", images_tar), Signer(key.home, key.fingerprint))
        assert info.value.exit_code == 4
        assert not (tmp_path / key.name).exists()
    # a signature time before the key existed is refused, never moved to fit the key
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1500000000")
    good = Signer(sig_keys.good.home, sig_keys.good.fingerprint)
    with pytest.raises(UnusableKeyError, match="is not valid yet at the signature time 2017-07-14T02:40:00Z"):
        pack_bundle(tmp_path / "early", DOCUMENTS, PackInput("lab", images_tar), good)
    # a key made in 2020 and valid for a day: its own SOURCE_DATE_EPOCH inside that day is still refused,
    # because the key is expired now (a node would see EXPKEYSIG)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1577880000")
    with pytest.raises(UnusableKeyError, match="expired"):
        Signer(sig_keys.expired.home, sig_keys.expired.fingerprint).check_usable(1577880000)


def test_cli_pack_unusable_key_exit_4(sig_keys: SigKeys, images_tar: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "cluster.yaml"
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "cluster.yaml", inventory)
    key = sig_keys.revoked_signer
    args = ["pack", str(inventory), "--images", str(images_tar), "--sign-key", key.fingerprint,
            "--gnupghome", str(key.home), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 4
    assert result.stderr == f"kubeha: error: signing key {key.fingerprint} is revoked: refusing to sign; nothing written\n"
    assert not (tmp_path / "out").exists() and not inventory.with_name("cluster.yaml.bundle-serial").exists()
