"""GnuPG signing and verification of a bundle's SHA256SUMS, through python-gnupg.

Every call names its GnuPG home explicitly, so a user's default keyring is never touched by accident.
Verification never trusts the signer's keyring: it imports the given public key(s) into a throwaway home
and accepts a signature only when it is good *and* made by one of those keys.

Reproducible signatures: an OpenPGP signature carries its creation time. :class:`Signer` signs with
``--faked-system-time T!`` where ``T`` is ``max(SOURCE_DATE_EPOCH, newest creation time of the signing key
and its subkeys)`` (a signature may not predate its key, gpgv rejects that). Ed25519 and RSA signatures are
deterministic, so the same inputs and key give byte-identical ``SHA256SUMS.asc``; ECDSA/DSA keys sign with a
random nonce and only the signature file then differs between two packs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gnupg

from kubeha.errors import InvalidInput, KubehaError, Location, Problem, SignatureError

PASSPHRASE_ENV = "KUBEHA_SIGN_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
"""Environment variable holding the signing key's passphrase (never a command-line argument)."""


class SigningError(KubehaError):
    """The signing key cannot be found or used."""


def _gpg(gnupghome: Path) -> gnupg.GPG:
    """Return a GPG handle bound to ``gnupghome`` (never the user's default home)."""
    if not Path(gnupghome).is_dir():
        raise SigningError(f"GnuPG home {gnupghome} does not exist")
    try:
        return gnupg.GPG(gnupghome=str(gnupghome))
    except (OSError, ValueError) as exc:  # no gpg binary, or a home gpg cannot use
        raise SigningError(f"cannot run gpg with home {gnupghome}: {exc} (apt-get install -y gnupg)") from None


@dataclass
class Signer:
    """A secret key in a given GnuPG home that signs detached, armored signatures."""

    gnupghome: Path
    keyid: str
    passphrase: str | None = field(default=None, repr=False)

    def _key(self) -> dict[str, object]:
        """Find the secret key ``keyid`` or raise :class:`SigningError`."""
        keys = _gpg(self.gnupghome).list_keys(secret=True, keys=[self.keyid])
        if len(keys) != 1:
            found = "no secret key" if not keys else f"{len(keys)} secret keys"
            raise SigningError(f"{found} matching {self.keyid!r} in {self.gnupghome}")
        key: dict[str, object] = keys[0]
        return key

    def fingerprint(self) -> str:
        """The primary key fingerprint of the signing key."""
        return str(self._key()["fingerprint"])

    def signature_time(self) -> int:
        """The (reproducible) signature timestamp: see the module docstring."""
        pub = _gpg(self.gnupghome).list_keys(keys=[self.fingerprint()])[0]
        subkeys = pub.get("subkey_info") or {}
        newest = max([int(pub["date"])] + [int(info["date"]) for info in subkeys.values()])
        return max(newest, int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0))

    def export_public_key(self) -> str:
        """The armored public key (minimal export: no third-party signatures), deterministic text."""
        text = _gpg(self.gnupghome).export_keys(self.fingerprint(), armor=True, minimal=True)
        if "BEGIN PGP PUBLIC KEY BLOCK" not in text:
            raise SigningError(f"cannot export the public key of {self.keyid!r}")
        return str(text)

    def sign_detached(self, data: Path) -> bytes:
        """Return a detached, armored signature of the file ``data``.

        Raises:
            SigningError: gpg refused (wrong passphrase, unusable or expired key, ...).
        """
        passphrase = self.passphrase if self.passphrase is not None else os.environ.get(PASSPHRASE_ENV)
        extra = ["--faked-system-time", f"{self.signature_time()}!", "--digest-algo", "SHA256"]
        if passphrase is not None:
            extra += ["--pinentry-mode", "loopback"]
        with data.open("rb") as fh:
            result = _gpg(self.gnupghome).sign_file(
                fh, keyid=self.fingerprint(), passphrase=passphrase, detach=True, clearsign=False,
                extra_args=extra,
            )
        if not result or not result.data:
            why = result.status or "gpg error"
            raise SigningError(f"signing {data.name} with {self.keyid!r} failed: {why}")
        return bytes(result.data)


@dataclass(frozen=True)
class Verdict:
    """A good signature: who made it and when (seconds since the epoch)."""

    fingerprint: str
    primary_fingerprint: str
    timestamp: int
    username: str


def _import_keyring(gpg: gnupg.GPG, keyring: Path) -> set[str]:
    """Import ``keyring`` (armored or binary public keys); return the primary fingerprints imported."""
    try:
        data = keyring.read_bytes()
    except OSError as exc:
        problem = Problem(Location(str(keyring)), "keyring", f"cannot read: {exc.strerror}")
        raise InvalidInput([problem]) from exc
    result = gpg.import_keys(data)
    fingerprints = {f for f in result.fingerprints if f}
    if not fingerprints:
        problem = Problem(Location(str(keyring)), "keyring", "no OpenPGP public key found in this file")
        raise InvalidInput([problem])
    return fingerprints


def verify_detached(signature: Path, data: Path, keyring: Path) -> Verdict:
    """Check that ``signature`` is a good signature of ``data`` by a key in ``keyring``.

    Args:
        signature: the detached signature (armored or binary).
        data: the signed file.
        keyring: a file of trusted public keys (``gpg --export [--armor]`` output).

    Raises:
        SignatureError: missing, bad, unknown-key, expired or revoked signature.
        InvalidInput: the keyring file is unreadable or holds no key.
    """
    if not signature.is_file():
        raise SignatureError(f"{signature.name} is missing: the bundle is not signed")
    with tempfile.TemporaryDirectory(prefix="kubeha-verify-") as home:
        os.chmod(home, 0o700)
        gpg = _gpg(Path(home))
        trusted = _import_keyring(gpg, keyring)
        with signature.open("rb") as fh:
            result = gpg.verify_file(fh, data_filename=str(data), extra_args=["--trust-model", "always"])
    return _judge(result, trusted, signature.name)


def _judge(result: gnupg.Verify, trusted: set[str], name: str) -> Verdict:
    """Turn gpg's verification status into a :class:`Verdict` or a :class:`SignatureError`."""
    if result.problems or not result.valid:
        statuses = {p.get("status"): p.get("keyid") for p in result.problems}
        if "no public key" in statuses:
            keyid = statuses["no public key"]
            raise SignatureError(f"{name}: signed by key {keyid}, which is not in the trusted keyring")
        problem = result.problems[0] if result.problems else {}
        status = problem.get("status") or result.status or "no valid signature found"
        keyid = problem.get("keyid") or result.key_id
        suffix = f" (key {keyid})" if keyid else ""
        raise SignatureError(f"{name}: {status}{suffix}")
    primary = result.pubkey_fingerprint or result.fingerprint
    if primary not in trusted:
        raise SignatureError(f"{name}: signed by {primary}, which is not in the trusted keyring")
    return Verdict(str(result.fingerprint), str(primary), int(result.sig_timestamp or 0),
                   str(result.username))
