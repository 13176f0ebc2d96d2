"""GnuPG signing (python-gnupg) and verification (gpgv ``--status-fd``) of a bundle's SHA256SUMS.

Every call names its GnuPG home explicitly, so a user's default keyring is never touched by accident.

Signing refuses an unusable key: revoked, expired (now or at the signature time), or not yet valid at the
signature time. The signature time is ``SOURCE_DATE_EPOCH`` when set (the reproducible-builds convention)
and the current time otherwise, passed to gpg as ``--faked-system-time T!``; it is never moved to fit the
key. Ed25519 and RSA signatures are deterministic, so with the same inputs, key and SOURCE_DATE_EPOCH the
signature is byte-identical.

Verification is decided from gpgv's status lines, never its exit status (gpgv exits 0 for a good signature
by an expired or revoked key). A signature is accepted only when the file is one armored detached signature
and gpgv reports exactly one signature with GOODSIG and VALIDSIG, signature class 00 (a binary document,
not clear-signed text), no embedded data (PLAINTEXT), none of the refusing statuses, and a primary key
fingerprint among the trusted ones. The node-side script (kubeha-install) applies the same rules; one shared
table of cases (tests/signature_cases.py) runs through both.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gnupg

from kubeha.errors import ExitCode, InvalidInput, KubehaError, Location, Problem, SignatureError

PASSPHRASE_ENV = "KUBEHA_SIGN_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
"""Environment variable holding the signing key's passphrase (never a command-line argument)."""

ARMOR_BEGIN = b"-----BEGIN PGP SIGNATURE-----"
# Any of these refuses; the first one present in this order names the reason (the most specific first).
REFUSING = ("EXPKEYSIG", "REVKEYSIG", "EXPSIG", "BADSIG", "NO_PUBKEY", "ERRSIG", "KEYREVOKED", "KEYEXPIRED",
            "PLAINTEXT", "NODATA", "UNEXPECTED", "BADARMOR", "BADMDC", "DECRYPTION_FAILED")
GPGV_TIMEOUT = 60


class SigningError(KubehaError):
    """The signing key cannot be found or used."""


class UnusableKeyError(SigningError):
    """The signing key exists but must not sign: revoked, expired or not yet valid (exit 4)."""

    exit_code = ExitCode.SIGNATURE


def gpg_for(gnupghome: Path) -> gnupg.GPG:
    """Return a GPG handle bound to ``gnupghome`` (never the user's default home)."""
    if not Path(gnupghome).is_dir():
        raise SigningError(f"GnuPG home {gnupghome} does not exist")
    try:
        return gnupg.GPG(gnupghome=str(gnupghome))
    except (OSError, ValueError) as exc:  # no gpg binary, or a home gpg cannot use
        raise SigningError(f"cannot run gpg with home {gnupghome}: {exc} (apt-get install -y gnupg)") from None


def signature_time() -> int:
    """``SOURCE_DATE_EPOCH`` when set (digits), else now: the time every signature carries."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else int(time.time())


def _utc(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _unusable(info: dict[str, Any], at: int, now: int) -> str | None:
    """Why a (sub)key from ``list_keys`` cannot make a signature at ``at`` (or None)."""
    if info.get("trust") == "r":
        return "is revoked"
    created, expires = int(info.get("date") or 0), int(info.get("expires") or 0)
    if created > at:
        return f"is not valid yet at the signature time {_utc(at)} (created {_utc(created)})"
    if expires and expires <= max(at, now):
        return f"expired at {_utc(expires)}"
    return None


@dataclass
class Signer:
    """A secret key in a given GnuPG home that signs detached, armored signatures."""

    gnupghome: Path
    keyid: str
    passphrase: str | None = field(default=None, repr=False)

    def _key(self) -> dict[str, object]:
        """Find the secret key ``keyid`` or raise :class:`SigningError`."""
        keys = gpg_for(self.gnupghome).list_keys(secret=True, keys=[self.keyid])
        if len(keys) != 1:
            found = "no secret key" if not keys else f"{len(keys)} secret keys"
            raise SigningError(f"{found} matching {self.keyid!r} in {self.gnupghome}")
        key: dict[str, object] = keys[0]
        return key

    def fingerprint(self) -> str:
        """The primary key fingerprint of the signing key."""
        return str(self._key()["fingerprint"])

    def check_usable(self, at: int) -> None:
        """Raise :class:`UnusableKeyError` unless the key (and one signing-capable (sub)key) is valid at ``at``."""
        fpr = self.fingerprint()
        pub: dict[str, Any] = gpg_for(self.gnupghome).list_keys(keys=[fpr])[0]
        now = int(time.time())
        why = _unusable(pub, at, now)
        if why:
            raise UnusableKeyError(f"signing key {fpr} {why}: refusing to sign")
        candidates = [pub] if "s" in str(pub.get("cap", "")) else []  # lowercase: this key itself
        candidates += [info for info in (pub.get("subkey_info") or {}).values() if "s" in str(info.get("cap", ""))]
        reasons = [r for r in (_unusable(c, at, now) for c in candidates) if r]
        if len(reasons) == len(candidates):
            detail = f" (its signing subkeys: {'; '.join(reasons)})" if reasons else ""
            raise UnusableKeyError(f"signing key {fpr} has no key usable for signing at {_utc(at)}{detail}")

    @staticmethod
    def signature_at() -> int:
        """The time every signature carries (:func:`signature_time`)."""
        return signature_time()

    def export_public_key(self) -> str:
        """The armored public key (minimal export: no third-party signatures), deterministic text."""
        text = gpg_for(self.gnupghome).export_keys(self.fingerprint(), armor=True, minimal=True)
        if "BEGIN PGP PUBLIC KEY BLOCK" not in text:
            raise SigningError(f"cannot export the public key of {self.keyid!r}")
        return str(text)

    def probe(self) -> None:
        """Sign a few bytes now: an unusable key or a missing passphrase stops a run before it writes anything.

        Raises:
            UnusableKeyError, SigningError: as :meth:`sign_detached`.
        """
        with tempfile.TemporaryDirectory(prefix="kubeha-sign-") as tmp:
            path = Path(tmp) / "SHA256SUMS"
            path.write_bytes(b"kubeha: can this key sign?\n")
            self.sign_detached(path)

    def sign_detached(self, data: Path) -> bytes:
        """Return a detached, armored signature of the file ``data``, made at :func:`signature_time`.

        Raises:
            UnusableKeyError: the key is revoked, expired or not valid at that time (exit 4).
            SigningError: gpg refused (wrong passphrase, ...).
        """
        at = signature_time()
        self.check_usable(at)
        passphrase = self.passphrase if self.passphrase is not None else os.environ.get(PASSPHRASE_ENV)
        # loopback: the passphrase comes from here or nowhere (never a pinentry prompt on some terminal)
        extra = ["--faked-system-time", f"{at}!", "--digest-algo", "SHA256", "--pinentry-mode", "loopback"]
        with data.open("rb") as fh:
            result = gpg_for(self.gnupghome).sign_file(
                fh, keyid=self.fingerprint(), passphrase=passphrase, detach=True, clearsign=False,
                extra_args=extra,
            )
        if not result or not result.data:
            raise SigningError(f"signing {data.name} with {self.keyid!r} failed: "
                               + _sign_failure(result.stderr or "", given=passphrase is not None))
        return bytes(result.data)


def _sign_failure(stderr: str, *, given: bool) -> str:
    """Why gpg made no signature, from its status lines and messages, in words a user can act on."""
    if "BAD_PASSPHRASE" in stderr or "Bad passphrase" in stderr:
        return f"${PASSPHRASE_ENV} is not the key's passphrase" if given else "bad passphrase"
    if "NEED_PASSPHRASE" in stderr or "MISSING_PASSPHRASE" in stderr or "PINENTRY_LAUNCHED" in stderr:
        return f"the key is protected by a passphrase: set ${PASSPHRASE_ENV} (kubeha never prompts for it)"
    said = [ln.removeprefix("gpg: ") for ln in stderr.splitlines() if ln.startswith("gpg: ") and "using" not in ln]
    return said[-1] if said else "gpg made no signature and said nothing"


@dataclass(frozen=True)
class Verdict:
    """A good signature: the signing (sub)key, its primary key, and when it was made."""

    fingerprint: str
    primary_fingerprint: str
    timestamp: int


def judge_status(status: str, trusted: set[str], name: str, what: str = "one of the trusted keys") -> Verdict:
    """Decide from gpgv ``--status-fd`` output alone (see the module docstring); raise SignatureError.

    ``what`` names the trusted keys in messages ("one of the keys signing-key list version 2 certifies").
    """
    lines = [line.split() for line in status.splitlines() if line.startswith("[GNUPG:] ")]
    words = [line[1] for line in lines if len(line) > 1]
    refused = [w for w in REFUSING if w in words]
    if refused:
        first = next(line for line in lines if line[1] == refused[0])
        keyid = f" (key {first[2]})" if len(first) > 2 and refused[0] != "PLAINTEXT" else ""
        if refused[0] in ("NO_PUBKEY", "ERRSIG"):
            raise SignatureError(f"{name}: signed by unknown key{keyid}, not {what}")
        raise SignatureError(f"{name}: {refused[0]}{keyid}: signature refused")
    valid = [line for line in lines if line[1] == "VALIDSIG"]
    if words.count("NEWSIG") > 1 or words.count("GOODSIG") != 1 or len(valid) != 1 or len(valid[0]) < 12:
        raise SignatureError(f"{name}: not exactly one good signature (gpgv said: {' '.join(words) or 'nothing'})")
    fields = valid[0]
    if fields[10] != "00":
        raise SignatureError(f"{name}: signature class {fields[10]}, not a detached signature of a binary file")
    if fields[11] not in trusted:
        raise SignatureError(f"{name}: signed by {fields[11]}, which is not {what}")
    return Verdict(fields[2], fields[11], int(fields[4]) if fields[4].isdigit() else 0)


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


def _crc24(data: bytes) -> int:
    """The OpenPGP armor checksum (RFC 4880, 6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def check_armor(signature: bytes, name: str) -> None:
    """Refuse anything but one armored detached signature block, written exactly as gpg writes it.

    One "PGP SIGNATURE" block, no headers, base64 in 64-character lines, an optional CRC line that must
    match, nothing before or after: a clear-signed or embedded message, or an armor whose bytes were changed
    in ways gpg would read past (whitespace, headers, base64 slack), is not the signature that was made.
    """
    lines = signature.split(b"\n")
    problem = SignatureError(f"{name}: not one armored detached signature (-----BEGIN PGP SIGNATURE-----)")
    if len(lines) < 5 or lines[0] != ARMOR_BEGIN or lines[1] != b"" or lines[-1] != b"" \
            or lines[-2] != b"-----END PGP SIGNATURE-----":
        raise problem
    body, crc = lines[2:-2], None
    if body and body[-1].startswith(b"="):
        crc, body = body[-1], body[:-1]
    try:
        packets = base64.b64decode(b"".join(body), validate=True)
    except ValueError:
        raise problem from None
    text = base64.b64encode(packets)
    canonical = [text[i : i + 64] for i in range(0, len(text), 64)]
    if body != canonical or (crc is not None and crc != b"=" + base64.b64encode(_crc24(packets).to_bytes(3, "big"))):
        raise problem


def verify_detached(signature: Path, data: Path, keyring: Path, *, extra: Path | None = None,
                    trusted: set[str] | None = None, what: str = "one of the trusted keys") -> Verdict:
    """Check that ``signature`` is a good detached signature of ``data`` by a key in ``keyring``, with gpgv.

    With ``trusted``, the signer's primary key must be one of those fingerprints instead (a signing-key
    list's), and ``extra`` (KEYS.pub) adds key material: only its listed fingerprints can count.

    Raises:
        SignatureError: missing, malformed, bad, unknown-key, expired or revoked signature.
        InvalidInput: the keyring file is unreadable or holds no key.
    """
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise SigningError("gpgv not found (apt-get install -y gpgv)")
    if not signature.is_file():
        raise SignatureError(f"{signature.name} is missing: the bundle is not signed")
    check_armor(signature.read_bytes()[: 1 << 20], signature.name)
    with tempfile.TemporaryDirectory(prefix="kubeha-verify-") as home:
        os.chmod(home, 0o700)
        gpg = gpg_for(Path(home))
        pinned = _import_keyring(gpg, keyring)
        if extra is not None:
            pinned |= {f for f in gpg.import_keys(extra.read_bytes()).fingerprints if f}
        binary = Path(home, "trusted.gpg")
        binary.write_bytes(gpg.export_keys(sorted(pinned), armor=False))
        try:
            proc = subprocess.run(
                [gpgv, "--homedir", home, "--status-fd", "1", "--keyring", str(binary), str(signature), str(data)],
                capture_output=True, text=True, timeout=GPGV_TIMEOUT, check=False, env={"LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:
            raise SignatureError(f"{signature.name}: gpgv did not finish in {GPGV_TIMEOUT}s") from None
    return judge_status(proc.stdout, pinned if trusted is None else trusted, signature.name, what)
