"""The build host's side of signing-key lists: ``kubeha keys certify`` writes one, ``bundle pack --root-key`` ships it.

The list lives beside the inventory like the cluster id: ``<inventory>.keys`` (KEYS), ``<inventory>.keys.asc``
(the root's signature) and ``<inventory>.keys.pub`` (the certified public keys). They are public, but they
decide which keys every node trusts, so they are written by the rules of :mod:`kubeha.statefiles` (a fresh
O_EXCL|O_NOFOLLOW temporary renamed over the name) and ``bundle pack`` verifies them against the root's
public key before packing. The root's secret key signs nothing else: keep it offline, certify on the
machine that holds it and bring the three files back.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubeha.bundle.keylist import (
    KEY_FILES,
    KEYS,
    KeyList,
    KeyListError,
    check_key_list,
    format_key_list,
    parse_key_list,
)
from kubeha.bundle.signing import Signer, SigningError, gpg_for
from kubeha.errors import InvalidInput, Location, Problem
from kubeha.statefiles import replace_at

SUFFIXES = {KEYS: ".keys", "KEYS.asc": ".keys.asc", "KEYS.pub": ".keys.pub"}
DAY = 86400


def list_paths(inventory: Path) -> dict[str, Path]:
    """Where the signing-key list of ``inventory`` lives: bundle name -> file beside the inventory."""
    return {rel: inventory.with_name(inventory.name + suffix) for rel, suffix in SUFFIXES.items()}


def _read_all(inventory: Path) -> dict[str, bytes]:
    """The list files beside ``inventory`` that exist (regular files only, never through a symlink)."""
    found = {}
    for rel, path in list_paths(inventory).items():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise InvalidInput([Problem(Location(str(path)), "signing-key list", f"cannot read: {exc.strerror} "
                                        "(a symbolic link is never followed here)")]) from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if (st.st_mode & 0o170000) != 0o100000 or st.st_uid != os.getuid():
                raise InvalidInput([Problem(Location(str(path)), "signing-key list", "not a regular file of "
                                            "this user: kubeha never adopts a file someone else planted")])
            found[rel] = fh.read(1 << 20)
    return found


def kept_version(inventory: Path) -> int:
    """The version of the list beside ``inventory`` (0 when there is none)."""
    data = _read_all(inventory).get(KEYS)
    return 0 if data is None else parse_key_list(data, str(list_paths(inventory)[KEYS])).version


def _fingerprint(home: Path, key: str) -> str:
    """The one public key matching ``key`` in ``home`` -> its primary fingerprint."""
    keys = gpg_for(home).list_keys(keys=[key])
    if len(keys) != 1:
        raise SigningError(f"{'no public key' if not keys else f'{len(keys)} public keys'} matching {key!r} in "
                           f"{home} (gpg --import the signing key's public key there first)")
    return str(keys[0]["fingerprint"])


@dataclass(frozen=True)
class Certified:
    """What ``keys certify`` wrote."""

    keys: KeyList
    root: str
    paths: dict[str, Path]


def certify(inventory: Path, cluster_id: str, root: Signer, keys: list[str], days: int,
            note: Callable[[str], None] | None = None) -> Certified:
    """Sign a new signing-key list for ``inventory``'s cluster: one version more than the last, ``keys`` only.

    Raises:
        SigningError, UnusableKeyError: the root cannot sign, or a key is not in the GnuPG home (exit 1 / 4).
        InvalidInput: a bad list beside the inventory, or a bad number of days.
    """
    if not 1 <= days <= 3650:
        raise InvalidInput([Problem(Location("<command line>"), "--expires", f"{days} is not 1 to 3650 days")])
    fprs = sorted({_fingerprint(root.gnupghome, key) for key in keys})
    version = kept_version(inventory) + 1
    expires = int(time.time()) + days * DAY
    text = format_key_list(cluster_id, version, expires, fprs)
    with tempfile.TemporaryDirectory(prefix="kubeha-certify-") as tmp:
        Path(tmp, KEYS).write_bytes(text)
        signature = root.sign_detached(Path(tmp, KEYS))
    public = gpg_for(root.gnupghome).export_keys(fprs, armor=True, minimal=True).encode()
    paths = list_paths(inventory)
    fd = os.open(inventory.parent if str(inventory.parent) else Path("."), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for rel, data in (("KEYS.pub", public), ("KEYS.asc", signature), (KEYS, text)):  # KEYS last
            replace_at(fd, paths[rel].name, data)
    except OSError as exc:
        raise InvalidInput([Problem(Location(str(paths[KEYS])), "signing-key list",
                                    f"cannot write: {exc.strerror}")]) from None
    finally:
        os.close(fd)
    if note is not None and version == 1:
        note(f"first signing-key list for cluster {cluster_id} in {paths[KEYS]}: keep the three {paths[KEYS].name}* "
             "files with the inventory (in git); pack with --root-key ROOT-PUBLIC.asc")
    return Certified(KeyList(cluster_id, version, expires, tuple(fprs)), root.fingerprint(), paths)


def load_for_pack(inventory: Path, root_keyring: Path, cluster_id: str, signer: str) -> dict[str, bytes]:
    """The list beside ``inventory``, verified as a node would, certifying ``signer``: the files to ship.

    Raises:
        KeyListError, SignatureError (exit 4): missing, not signed by the root, expired, another cluster's, or
        not certifying the signing key.
    """
    files = _read_all(inventory)
    paths = list_paths(inventory)
    if not files:
        raise KeyListError(f"{paths[KEYS]} is missing: certify the signing key first (kubeha keys certify "
                           f"{inventory} --root-key ROOT --key {signer})")
    with tempfile.TemporaryDirectory(prefix="kubeha-keys-") as tmp:
        for rel, data in files.items():
            Path(tmp, rel).write_bytes(data)
        keys = check_key_list(Path(tmp), root_keyring)
    assert keys is not None  # noqa: S101 - files is not empty: check_key_list returned a list or raised
    if keys.cluster_id != cluster_id:
        raise KeyListError(f"{paths[KEYS]}: {keys.describe()} is for cluster {keys.cluster_id}, not {cluster_id}")
    if signer not in keys.keys:
        raise KeyListError(f"signing key {signer} is not certified by {keys.describe()} ({paths[KEYS]}): kubeha keys "
                           f"certify {inventory} --root-key ROOT --key {signer} (and every other key still in use)")
    return {rel: files[rel] for rel in KEY_FILES}


def root_fingerprints(root_keyring: Path) -> tuple[str, tuple[str, ...]]:
    """The armored public key(s) of ``root_keyring`` and their fingerprints (for the nodes' user-data)."""
    with tempfile.TemporaryDirectory(prefix="kubeha-root-") as home:
        os.chmod(home, 0o700)
        gpg = gpg_for(Path(home))
        try:
            result = gpg.import_keys(root_keyring.read_bytes())
        except OSError as exc:
            raise InvalidInput([Problem(Location(str(root_keyring)), "--root-key",
                                        f"cannot read: {exc.strerror}")]) from None
        fprs = tuple(sorted({f for f in result.fingerprints if f}))
        if not fprs:
            raise InvalidInput([Problem(Location(str(root_keyring)), "--root-key",
                                        "no OpenPGP public key found in this file")])
        text = gpg.export_keys(list(fprs), armor=True, minimal=True)
    return str(text), fprs
