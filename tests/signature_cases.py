"""The shared table of signature cases, run through BOTH ``kubeha bundle verify`` and the node script.

Keys are made with the real gpg in throwaway homes (faked system times for the expired ones, a real
revocation certificate for the revoked one); each case is a keyring (what the node's KUBEHA_KEY file or
``--keyring`` holds), the fingerprints pinned in the user-data, and a SHA256SUMS.asc made over a given
SHA256SUMS. ``accept`` is the one verdict both verifiers must reach; ``python``/``node`` are fragments of
their refusal messages.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubeha.bundle.keylist import KEYS, KEYS_PUBLIC, KEYS_SIGNATURE, format_key_list

FAKED_2020 = "20200101T000000"


def gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Run gpg in ``home`` (batch, no passphrase); return stdout."""
    cmd = ["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""]
    return subprocess.run([*cmd, *args], input=stdin, capture_output=True, check=True).stdout


def _fingerprint(home: Path, uid: str) -> str:
    out = gpg(home, "--with-colons", "--list-keys", uid).decode()
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


@dataclass(frozen=True)
class Key:
    """One throwaway key: its home (with the secret key) and primary fingerprint."""

    name: str
    home: Path
    fingerprint: str
    public_home: Path | None = None  # where the public key differs (the revoked one: revocation imported)

    def public(self) -> bytes:
        return gpg(self.public_home or self.home, "--armor", "--export", self.fingerprint)


def make_key(base: Path, name: str, *, usage: str = "sign", expire: str = "never", faked: str | None = None,
             subkey: bool = False, revoked: bool = False, revoke_in_place: bool = False) -> Key:
    home = base / name
    home.mkdir(mode=0o700, parents=True)
    uid = f"{name} <{name}@kubeha.invalid>"
    time = ["--faked-system-time", faked] if faked else []
    gpg(home, *time, "--quick-gen-key", uid, "ed25519", "cert" if subkey else usage, expire)
    fpr = _fingerprint(home, uid)
    if subkey:
        gpg(home, "--quick-add-key", fpr, "ed25519", "sign", "never")
    cert = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_bytes().replace(b":-----BEGIN", b"-----BEGIN")
    if revoke_in_place:  # a signer whose own home knows the key is revoked (what `bundle pack` must refuse)
        gpg(home, "--import", stdin=cert)
    if not revoked:
        return Key(name, home, fpr)
    # gpg will not sign with a revoked key: the secret home stays unrevoked (it signs), and the public key
    # handed to the verifiers carries the real revocation certificate
    public_home = base / f"{name}-public"
    public_home.mkdir(mode=0o700)
    gpg(public_home, "--import", stdin=gpg(home, "--export", fpr))
    gpg(public_home, "--import", stdin=cert)
    return Key(name, home, fpr, public_home)


@dataclass(frozen=True)
class SigKeys:
    """Every key the cases need (made once per test session)."""

    good: Key
    other: Key
    expired: Key
    revoked: Key
    old: Key  # made in 2020, never expires: for the expired signature
    subkey: Key
    revoked_signer: Key
    root: Key  # the offline root of the rotation rows: it only certifies signing-key lists

    def all(self) -> Iterator[Key]:
        yield from (self.good, self.other, self.expired, self.revoked, self.old, self.subkey, self.revoked_signer,
                    self.root)

    def close(self) -> None:
        for key in self.all():
            for home in (key.home, key.public_home):
                if home is not None:
                    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)


def make_sig_keys(base: Path) -> SigKeys:
    return SigKeys(
        good=make_key(base, "good"),
        other=make_key(base, "other"),
        expired=make_key(base, "expired", expire="1d", faked=FAKED_2020),
        revoked=make_key(base, "revoked", revoked=True),
        old=make_key(base, "old", faked=FAKED_2020),
        subkey=make_key(base, "subkey", subkey=True),
        revoked_signer=make_key(base, "revoked-signer", revoke_in_place=True),
        root=make_key(base, "root"),
    )


@dataclass(frozen=True)
class SigCase:
    name: str
    keyring: bytes  # armored public key block(s)
    fingerprints: tuple[str, ...]  # what the user-data pins (KUBEHA_KEY_FPR)
    signature: bytes  # the SHA256SUMS.asc to put in the bundle
    accept: bool
    python: str = ""
    node: str = ""
    key_files: Mapping[str, bytes] = field(default_factory=dict)  # KEYS, KEYS.asc, KEYS.pub the bundle carries
    seen: Mapping[str, bytes] = field(default_factory=dict)  # the list the node has kept (/var/lib/kubeha/keys)
    seen_version: int = 0  # its version: `bundle verify --min-keys-version`
    keeps: bool = False  # the node keeps the bundle's list (verified and newer), whatever becomes of the bundle


def sign(key: Key, data: Path, *how: str, faked: str | None = None) -> bytes:
    """A signature by ``key`` over ``data``: detached armored unless ``how`` says otherwise."""
    time = ["--faked-system-time", faked] if faked else []
    return gpg(key.home, *time, "--local-user", key.fingerprint, "--digest-algo", "SHA256", *how, "-o", "-", str(data))


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor_signature(packets: bytes) -> bytes:
    """Armor raw signature packets as one "PGP SIGNATURE" block."""
    body = base64.b64encode(packets).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    crc = base64.b64encode(_crc24(packets).to_bytes(3, "big")).decode()
    return ("-----BEGIN PGP SIGNATURE-----\n\n" + "\n".join(lines) + f"\n={crc}\n-----END PGP SIGNATURE-----\n").encode()


def signature_cases(keys: SigKeys, data: Path, scratch: Path) -> dict[str, SigCase]:
    """Every case, with signatures made over ``data`` (the bundle's SHA256SUMS)."""
    good, other = keys.good, keys.other
    detached = ("--armor", "--detach-sign")
    another = scratch / "another-file"
    another.write_bytes(data.read_bytes() + b"0" * 64 + b"  evil\n")
    both_raw = sign(good, data, "--detach-sign") + sign(other, data, "--detach-sign")
    cases = [
        SigCase("good key", good.public(), (good.fingerprint,), sign(good, data, *detached), True),
        SigCase("expired key", keys.expired.public(), (keys.expired.fingerprint,),
                sign(keys.expired, data, *detached, faked="20200101T120000"), False, "EXPKEYSIG", "EXPKEYSIG"),
        SigCase("revoked key", keys.revoked.public(), (keys.revoked.fingerprint,),
                sign(keys.revoked, data, *detached), False, "REVKEYSIG", "REVKEYSIG"),
        SigCase("expired signature", keys.old.public(), (keys.old.fingerprint,),
                sign(keys.old, data, "--default-sig-expire", "1d", *detached, faked="20200102T000000"),
                False, "EXPSIG", "EXPSIG"),
        SigCase("signing subkey", keys.subkey.public(), (keys.subkey.fingerprint,),
                sign(keys.subkey, data, *detached), True),
        SigCase("unknown key", good.public(), (good.fingerprint,), sign(other, data, *detached), False,
                "signed by unknown key", "signature by unknown key"),
        SigCase("keyring with several keys", good.public() + other.public(), (good.fingerprint, other.fingerprint),
                sign(other, data, *detached), True),
        SigCase("signature over another file", good.public(), (good.fingerprint,), sign(good, another, *detached),
                False, "BADSIG", "BADSIG"),
        SigCase("clear-signed data", good.public(), (good.fingerprint,), sign(good, data, "--clearsign"), False,
                "not one armored detached signature", "not one armored detached signature"),
        SigCase("embedded data", good.public(), (good.fingerprint,), sign(good, data, "--armor", "--sign"), False,
                "not one armored detached signature", "not one armored detached signature"),
        SigCase("binary detached signature", good.public(), (good.fingerprint,), sign(good, data, "--detach-sign"),
                False, "not one armored detached signature", "not one armored detached signature"),
        SigCase("also signed by an unknown key", good.public(), (good.fingerprint,), armor_signature(both_raw), False,
                "signed by unknown key", "signature by unknown key"),
    ]
    cases += rotation_cases(keys, data, scratch)
    return {case.name: case for case in cases}


LATER = 4102444800  # 2100-01-01: lists that have not expired
EXPIRED = 1577923200  # 2020-01-02


def key_list(signer: Key, scratch: Path, cluster_id: str, version: int, certified: tuple[Key, ...],
             expires: int = LATER, material: tuple[Key, ...] | None = None) -> dict[str, bytes]:
    """KEYS certifying ``certified``, signed by ``signer``, and KEYS.pub (the keys of ``material``)."""
    text = format_key_list(cluster_id, version, expires, [k.fingerprint for k in certified])
    path = scratch / f"KEYS-{signer.name}-{version}-{len(list(scratch.iterdir()))}"
    path.write_bytes(text)
    public = b"".join(k.public() for k in (certified if material is None else material))
    return {KEYS: text, KEYS_SIGNATURE: sign(signer, path, "--armor", "--detach-sign"), KEYS_PUBLIC: public}


def rotation_cases(keys: SigKeys, data: Path, scratch: Path) -> list[SigCase]:
    """Issue 21 item 1: the pinned root certifies signing keys through versioned, expiring lists.

    ``good`` is the key that leaked and is retired, ``other`` its replacement, ``root`` the offline root.
    """
    cid = json.loads((data.parent / "bundle.json").read_text())["cluster_id"]
    root, old, new = keys.root, keys.good, keys.other
    detached = ("--armor", "--detach-sign")
    pinned = (root.public(), (root.fingerprint,))
    v1_old = key_list(root, scratch, cid, 1, (old,))
    v2_new = key_list(root, scratch, cid, 2, (new,))
    certifies = "which is not one of the keys signing-key list version 2 certifies"
    return [
        SigCase("rotation: new key certified", *pinned, sign(new, data, *detached), True,
                key_files=key_list(root, scratch, cid, 1, (new,)), keeps=True),
        SigCase("rotation: old key retired", *pinned, sign(old, data, *detached), False, certifies, certifies,
                key_files=key_list(root, scratch, cid, 2, (new,), material=(new, old)), keeps=True),
        SigCase("rotation: retired key's list older than the node's", *pinned, sign(old, data, *detached), False,
                "signing-key list version 1 is older than the lowest accepted version 2",
                "signing-key list version 1 is older than this node's version 2",
                key_files=v1_old, seen=v2_new, seen_version=2),
        SigCase("rotation: node's list kept, bundle carries it again", *pinned, sign(new, data, *detached), True,
                key_files=v2_new, seen=v2_new, seen_version=2),
        SigCase("rotation: expired list", *pinned, sign(new, data, *detached), False,
                "signing-key list version 3 expired at 2020-01-02T00:00:00Z",
                "signing-key list version 3 expired at 2020-01-02T00:00:00Z",
                key_files=key_list(root, scratch, cid, 3, (new,), expires=EXPIRED)),
        SigCase("rotation: list signed by a non-root key", *pinned, sign(new, data, *detached), False,
                "KEYS.asc: signed by unknown key", "KEYS.asc: signature by unknown key",
                key_files=key_list(new, scratch, cid, 4, (new,))),
        SigCase("rotation: list of another cluster", *pinned, sign(new, data, *detached), False,
                "signing-key list version 1 is for cluster " + "f" * 32,
                "signing-key list version 1 is for cluster " + "f" * 32,
                key_files=key_list(root, scratch, "f" * 32, 1, (new,))),
        SigCase("rotation: list without its signature", *pinned, sign(new, data, *detached), False,
                "KEYS.asc missing", "KEYS.asc missing",
                key_files={k: v for k, v in key_list(root, scratch, cid, 1, (new,)).items() if k != KEYS_SIGNATURE}),
        SigCase("rotation: root key signs the bundle itself", *pinned, sign(root, data, *detached), False,
                "which is not one of the keys signing-key list version 1 certifies",
                "which is not one of the keys signing-key list version 1 certifies",
                key_files=key_list(root, scratch, cid, 1, (new,), material=(new, root)), keeps=True),
        SigCase("single key: pinned key certifies itself", old.public(), (old.fingerprint,),
                sign(old, data, *detached), True),
        SigCase("single key moves to a root: the pinned key certifies a new key", old.public(), (old.fingerprint,),
                sign(new, data, *detached), True, key_files=key_list(old, scratch, cid, 1, (new,)),
                keeps=True),
    ]


CASE_NAMES = [
    "good key", "expired key", "revoked key", "expired signature", "signing subkey", "unknown key",
    "keyring with several keys", "signature over another file", "clear-signed data", "embedded data",
    "binary detached signature", "also signed by an unknown key",
    "rotation: new key certified", "rotation: old key retired", "rotation: retired key's list older than the node's",
    "rotation: node's list kept, bundle carries it again", "rotation: expired list",
    "rotation: list signed by a non-root key", "rotation: list of another cluster",
    "rotation: list without its signature", "rotation: root key signs the bundle itself",
    "single key: pinned key certifies itself", "single key moves to a root: the pinned key certifies a new key",
]
