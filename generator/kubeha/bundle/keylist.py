"""The signing-key list: which keys may sign a cluster's bundles, certified by the pinned (offline root) key.

Learnt from TUF's root metadata and apt's ``signed-by``: the node's user-data pins a root key that only
certifies signing keys; each bundle carries the root-signed list of the keys that sign bundles now, with a
version that only goes forward and an expiry. Three files at the top of a bundle, outside SHA256SUMS (like
its signature, they are checked before it):

``KEYS``      the list, strict text (one field a line, exactly this order; keys sorted, no duplicates)::

                  kubeha-keys 1
                  cluster <cluster id: 32 hex digits>
                  version <N: 1 ... 2^53-1>
                  expires <unix seconds>
                  key <primary key fingerprint: 40 hex digits>     (one line per certified key)

``KEYS.asc``  a detached armored signature of ``KEYS`` by a pinned key (``--keyring``; the node's user-data)
``KEYS.pub``  the listed keys' public keys (armored). Not signed: a key in it counts only when its primary
              fingerprint is listed in the signed ``KEYS``.

A verifier keeps the newest list it has verified (the node: /var/lib/kubeha/keys/) and refuses a list with
a lower version, an expired list and a list not signed by a pinned key; then SHA256SUMS must be signed by a
key the list certifies. Until a verifier has seen a list, the pinned key certifies itself: that is how
single-key clusters made before the list keep working, and how they move to a root (the old key signs the
first list). The node script (kubeha-install) applies the same rules; the shared table of cases
(tests/signature_cases.py) runs through both.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from kubeha.bundle.signing import verify_detached
from kubeha.errors import ExitCode, KubehaError

KEYS = "KEYS"
KEYS_SIGNATURE = "KEYS.asc"
KEYS_PUBLIC = "KEYS.pub"
KEY_FILES = (KEYS, KEYS_SIGNATURE, KEYS_PUBLIC)
HEADER = "kubeha-keys 1"
MAX_VERSION = (1 << 53) - 1
MAX_KEYS = 64
_LINE = {
    "cluster": re.compile(r"cluster ([0-9a-f]{32})"),
    "version": re.compile(r"version ([1-9][0-9]{0,15})"),
    "expires": re.compile(r"expires ([1-9][0-9]{0,15})"),
}
_KEY = re.compile(r"key ([0-9A-F]{40})")


class KeyListError(KubehaError):
    """A signing-key list that must not be used: malformed, expired, older, another cluster's (exit 4)."""

    exit_code = ExitCode.SIGNATURE


def utc(ts: int) -> str:
    """``ts`` as an ISO 8601 UTC time."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True)
class KeyList:
    """A parsed signing-key list."""

    cluster_id: str
    version: int
    expires: int
    keys: tuple[str, ...]

    def text(self) -> bytes:
        """The canonical ``KEYS`` bytes."""
        return format_key_list(self.cluster_id, self.version, self.expires, self.keys)

    def describe(self) -> str:
        """How messages name the list."""
        return f"signing-key list version {self.version}"

    def check_fresh(self, now: int) -> None:
        """Refuse an expired list."""
        if self.expires <= now:
            raise KeyListError(f"{self.describe()} expired at {utc(self.expires)}: pack a bundle with a list "
                               "the root key certified since (kubeha keys certify)")


def format_key_list(cluster_id: str, version: int, expires: int, keys: tuple[str, ...] | list[str]) -> bytes:
    """``KEYS`` text for these values (keys sorted and de-duplicated)."""
    lines = [HEADER, f"cluster {cluster_id}", f"version {version}", f"expires {expires}"]
    lines += [f"key {fpr}" for fpr in sorted(set(keys))]
    return ("\n".join(lines) + "\n").encode()


def parse_key_list(data: bytes, name: str = KEYS) -> KeyList:
    """Parse ``KEYS`` strictly; anything but the canonical form is a :class:`KeyListError`."""
    bad = KeyListError(f"{name}: not a kubeha signing-key list ({HEADER!r}, cluster, version, expires, key lines)")
    try:
        lines = data.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise bad from None
    if len(lines) < 6 or lines[0] != HEADER or lines[-1] != "":
        raise bad
    values = []
    for line, (field, pattern) in zip(lines[1:4], _LINE.items(), strict=True):
        match = pattern.fullmatch(line)
        if not match:
            raise KeyListError(f"{name}: line {field!r} is malformed: {line[:80]!r}")
        values.append(match[1])
    keys = []
    for line in lines[4:-1]:
        match = _KEY.fullmatch(line)
        if not match:
            raise KeyListError(f"{name}: not a key line: {line[:80]!r}")
        keys.append(match[1])
    if keys != sorted(set(keys)) or len(keys) > MAX_KEYS:
        raise KeyListError(f"{name}: the keys must be sorted, without duplicates, at most {MAX_KEYS}")
    version, expires = int(values[1]), int(values[2])
    if version > MAX_VERSION:
        raise KeyListError(f"{name}: version {version} is above {MAX_VERSION}")
    return KeyList(values[0], version, expires, tuple(keys))


def check_key_list(folder: Path, keyring: Path, min_version: int = 0, now: int | None = None) -> KeyList | None:
    """The signing-key list in ``folder`` (KEYS, KEYS.asc, KEYS.pub copied there), verified; None without one.

    Raises:
        SignatureError: KEYS.asc is not a good signature by a key of ``keyring`` (the pinned root).
        KeyListError: an incomplete, malformed, expired list, or one older than ``min_version``.
    """
    present = [name for name in KEY_FILES if (folder / name).is_file()]
    if not present:
        if min_version:
            raise KeyListError(f"the bundle carries no signing-key list ({KEYS}), and version {min_version} or "
                               "newer is required")
        return None
    missing = [name for name in KEY_FILES if name not in present]
    if missing:
        raise KeyListError(f"{', '.join(missing)} missing: {', '.join(KEY_FILES)} go together")
    verify_detached(folder / KEYS_SIGNATURE, folder / KEYS, keyring, what="a pinned root key")
    keys = parse_key_list((folder / KEYS).read_bytes())
    if keys.version < min_version:
        raise KeyListError(f"{keys.describe()} is older than the lowest accepted version {min_version}")
    keys.check_fresh(int(time.time()) if now is None else now)
    return keys
