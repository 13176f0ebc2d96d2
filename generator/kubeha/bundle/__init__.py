"""Signed offline bundles: pack per-node documents and an image archive, verify them anywhere.

One module per concern: :mod:`.layout` (names, limits, SHA256SUMS), :mod:`.tarsafe` (canonical tars, read
as untrusted input), :mod:`.signing` (GnuPG), :mod:`.identity` (cluster id and serial beside the inventory),
:mod:`.pack`, :mod:`.verify`, :mod:`.archive` (docker-archive reading) and :mod:`.images` (Docker SDK).
The names below are the package's public interface.
"""

from kubeha.bundle.layout import (
    IMAGES_INDEX,
    IMAGES_JSON,
    IMAGES_TAR,
    MANIFEST,
    PUBLIC_KEY,
    SIGNATURE,
    SUMS,
    Advance,
    format_sums,
    parse_sums,
    safe_relpath,
    sha256_file,
)
from kubeha.bundle.pack import PackInput, PackResult, pack_bundle
from kubeha.bundle.tarsafe import read_tar, write_tar
from kubeha.bundle.verify import Expect, TrustError, VerifyReport, bundle_size, stage_verified, verify_bundle

__all__ = [
    "IMAGES_INDEX", "IMAGES_JSON", "IMAGES_TAR", "MANIFEST", "PUBLIC_KEY", "SIGNATURE", "SUMS", "Advance",
    "Expect", "PackInput", "PackResult", "TrustError", "VerifyReport", "bundle_size", "format_sums",
    "pack_bundle", "parse_sums", "read_tar", "safe_relpath", "sha256_file", "stage_verified", "verify_bundle",
    "write_tar",
]
