"""kubeha.bundle.signing against the real gpg: throwaway keys in temporary GnuPG homes (session-scoped)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubeha.bundle.signing import Signer, SigningError, verify_detached
from kubeha.errors import InvalidInput, SignatureError


def _require_gpg() -> None:
    for tool in ("gpg", "gpgv", "gpgconf"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install -y gnupg gpgv")


@dataclass(frozen=True)
class ThrowawayKey:
    home: Path
    fingerprint: str
    public: Path  # armored public key file
    passphrase: str | None = None

    def signer(self) -> Signer:
        return Signer(self.home, self.fingerprint, self.passphrase)


def make_key(home: Path, uid: str, passphrase: str | None = None) -> ThrowawayKey:
    """A throwaway ed25519 signing key in its own GnuPG home (no passphrase unless given)."""
    _require_gpg()
    home.mkdir(mode=0o700, parents=True)
    pw = ["--pinentry-mode", "loopback", "--passphrase", passphrase or ""]
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", *pw, "--quick-gen-key", uid, "ed25519", "sign", "never"],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        ["gpg", "--homedir", str(home), "--with-colons", "--list-keys", uid],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
    public = home.parent / f"{home.name}.pub.asc"
    public.write_bytes(
        subprocess.run(
            ["gpg", "--homedir", str(home), "--armor", "--export", fpr], check=True, capture_output=True
        ).stdout
    )
    return ThrowawayKey(home, fpr, public, passphrase)


@dataclass(frozen=True)
class Keys:
    trusted: ThrowawayKey
    other: ThrowawayKey
    protected: ThrowawayKey


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    """Three throwaway keys: the bundle signer, an impostor, and a passphrase-protected one."""
    base = tmp_path_factory.mktemp("gnupg")
    keys = Keys(
        make_key(base / "trusted", "kubeha test signer <signer@kubeha.invalid>"),
        make_key(base / "other", "someone else <other@kubeha.invalid>"),
        make_key(base / "protected", "protected <protected@kubeha.invalid>", "correct horse"),
    )
    yield keys
    for key in (keys.trusted, keys.other, keys.protected):
        subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "all"], check=False, capture_output=True)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "SHA256SUMS"
    path.write_text("0" * 64 + "  images/images.tar\n")
    return path


def test_sign_and_verify(gpg_keys: Keys, data_file: Path, tmp_path: Path) -> None:
    sig = tmp_path / "SHA256SUMS.asc"
    sig.write_bytes(gpg_keys.trusted.signer().sign_detached(data_file))
    assert sig.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    verdict = verify_detached(sig, data_file, gpg_keys.trusted.public)
    assert verdict.primary_fingerprint == gpg_keys.trusted.fingerprint
    # gpgv, the tool the node uses, agrees (with a dearmored keyring)
    keyring = tmp_path / "k.gpg"
    subprocess.run(
        ["gpg", "--dearmor", "-o", str(keyring), str(gpg_keys.trusted.public)],
        check=True,
        env={**os.environ, "GNUPGHOME": str(tmp_path)},
    )
    subprocess.run(["gpgv", "--keyring", str(keyring), str(sig), str(data_file)], check=True, capture_output=True)


def test_signature_time_is_source_date_epoch_or_now(
    gpg_keys: Keys, data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = gpg_keys.trusted.signer()
    sig = tmp_path / "sig.asc"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1900000000")
    first, second = signer.sign_detached(data_file), signer.sign_detached(data_file)
    assert first == second  # ed25519 is deterministic: same time, same bytes
    sig.write_bytes(first)
    assert verify_detached(sig, data_file, gpg_keys.trusted.public).timestamp == 1900000000
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    before = int(time.time())
    sig.write_bytes(signer.sign_detached(data_file))
    assert before <= verify_detached(sig, data_file, gpg_keys.trusted.public).timestamp <= int(time.time())


def test_other_key_is_refused(gpg_keys: Keys, data_file: Path, tmp_path: Path) -> None:
    sig = tmp_path / "sig.asc"
    sig.write_bytes(gpg_keys.other.signer().sign_detached(data_file))
    with pytest.raises(SignatureError, match="signed by unknown key"):
        verify_detached(sig, data_file, gpg_keys.trusted.public)


def test_changed_data_is_refused(gpg_keys: Keys, data_file: Path, tmp_path: Path) -> None:
    sig = tmp_path / "sig.asc"
    sig.write_bytes(gpg_keys.trusted.signer().sign_detached(data_file))
    data_file.write_text("1" * 64 + "  images/images.tar\n")
    with pytest.raises(SignatureError, match="BADSIG"):
        verify_detached(sig, data_file, gpg_keys.trusted.public)


def test_missing_signature(gpg_keys: Keys, data_file: Path, tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="missing: the bundle is not signed"):
        verify_detached(tmp_path / "nope.asc", data_file, gpg_keys.trusted.public)


def test_garbage_signature(gpg_keys: Keys, data_file: Path, tmp_path: Path) -> None:
    sig = tmp_path / "sig.asc"
    sig.write_text("not a signature\n")
    with pytest.raises(SignatureError, match="SHA256SUMS|sig.asc"):
        verify_detached(sig, data_file, gpg_keys.trusted.public)


def test_keyring_without_keys(gpg_keys: Keys, data_file: Path, tmp_path: Path) -> None:
    sig = tmp_path / "sig.asc"
    sig.write_bytes(gpg_keys.trusted.signer().sign_detached(data_file))
    empty = tmp_path / "empty.asc"
    empty.write_text("hello\n")
    with pytest.raises(InvalidInput) as info:
        verify_detached(sig, data_file, empty)
    assert "no OpenPGP public key" in str(info.value.problems[0])
    with pytest.raises(InvalidInput):
        verify_detached(sig, data_file, tmp_path / "absent.asc")


def test_unknown_signing_key(gpg_keys: Keys, data_file: Path) -> None:
    with pytest.raises(SigningError, match="no secret key matching"):
        Signer(gpg_keys.trusted.home, "nobody@kubeha.invalid").sign_detached(data_file)
    with pytest.raises(SigningError, match="does not exist"):
        Signer(gpg_keys.trusted.home / "missing", "x").fingerprint()


def test_passphrase_from_environment(
    gpg_keys: Keys, data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = gpg_keys.protected
    monkeypatch.setenv("KUBEHA_SIGN_PASSPHRASE", "wrong")
    with pytest.raises(SigningError, match="failed"):
        Signer(key.home, key.fingerprint).sign_detached(data_file)
    monkeypatch.setenv("KUBEHA_SIGN_PASSPHRASE", "correct horse")
    sig = tmp_path / "sig.asc"
    sig.write_bytes(Signer(key.home, key.fingerprint).sign_detached(data_file))
    assert verify_detached(sig, data_file, key.public).primary_fingerprint == key.fingerprint


def test_export_public_key_is_stable(gpg_keys: Keys) -> None:
    signer = gpg_keys.trusted.signer()
    text = signer.export_public_key()
    assert text.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert text == signer.export_public_key()


def test_binary_keyring(gpg_keys: Keys, data_file: Path, tmp_path: Path) -> None:
    sig = tmp_path / "sig.asc"
    sig.write_bytes(gpg_keys.trusted.signer().sign_detached(data_file))
    binary = tmp_path / "trusted.gpg"
    export = ["gpg", "--homedir", str(gpg_keys.trusted.home), "--export", gpg_keys.trusted.fingerprint]
    binary.write_bytes(subprocess.run(export, capture_output=True, check=True).stdout)
    assert verify_detached(sig, data_file, binary).primary_fingerprint == gpg_keys.trusted.fingerprint
