"""docker-archive tarballs read without any engine: which images, refs, image IDs and layers they hold.

The archive is what kubelet's runtime imports on an air-gapped node (``ctr -n k8s.io images import``), so
every ref in it is fully qualified. :func:`inspect_archive` reads ``manifest.json`` plus each image's config
JSON, which is what the bundle code records; :func:`verify_archive` hashes every layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubeha.errors import KubehaError

CHUNK_SIZE = 1 << 20


class ImageError(KubehaError):
    """Something about images went wrong: no daemon, a failed build, a missing ref, a broken archive."""


@dataclass(frozen=True)
class ImageInfo:
    """One image in a docker-archive, as read from the archive itself.

    ``layers`` are the uncompressed layer digests (the config's ``rootfs.diff_ids``, which is what skopeo
    reports for a docker-archive); ``size`` is the sum of this image's layer blobs in the archive.
    """

    refs: tuple[str, ...]
    image_id: str
    layers: tuple[str, ...]
    size: int
    architecture: str = ""
    os: str = ""
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists rather than tuples)."""
        data = asdict(self)
        data["refs"], data["layers"] = list(self.refs), list(self.layers)
        return data


# --------------------------------------------------------------------------------------------------------
# Engine-free reading of docker-archive tarballs


def _read_member(tar: tarfile.TarFile, name: str, archive: Path) -> bytes:
    """Read one regular file from the archive, or raise a clear error naming the archive."""
    try:
        handle = tar.extractfile(name.removeprefix("./"))
    except KeyError:
        handle = None
    if handle is None:
        raise ImageError(f"{archive}: not a docker-archive: missing {name}")
    with handle:
        return handle.read()


def _load_json(data: bytes, archive: Path, name: str) -> Any:
    """Parse JSON from the archive, naming the member when it is broken."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{archive}: {name}: invalid JSON: {exc}") from None


def _member_sizes(tar: tarfile.TarFile) -> dict[str, int]:
    """Sizes of every regular file in the archive, following symlinks (docker 25+ links layer paths)."""
    members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
    sizes: dict[str, int] = {}
    for name, member in members.items():
        target = member
        for _ in range(8):  # bounded: a symlink loop must not hang inspect
            if not target.issym():
                break
            linked = os.path.normpath(os.path.join(os.path.dirname(target.name), target.linkname))
            target = members.get(linked.removeprefix("./"), target)
        if target.isfile():
            sizes[name] = target.size
    return sizes


def _image_info(tar: tarfile.TarFile, entry: Any, sizes: dict[str, int], archive: Path) -> ImageInfo:
    """Build the :class:`ImageInfo` of one ``manifest.json`` entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
        raise ImageError(f"{archive}: manifest.json: entry without a Config: {entry!r}")
    config_bytes = _read_member(tar, entry["Config"], archive)
    config = _load_json(config_bytes, archive, entry["Config"])
    layer_paths = entry.get("Layers") or []
    missing = [p for p in layer_paths if p.removeprefix("./") not in sizes]
    if missing:
        raise ImageError(f"{archive}: layer(s) named in manifest.json are missing: {', '.join(missing)}")
    return ImageInfo(
        refs=tuple(entry.get("RepoTags") or ()),
        image_id="sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        layers=tuple(config.get("rootfs", {}).get("diff_ids", ())),
        size=sum(sizes[p.removeprefix("./")] for p in layer_paths),
        architecture=str(config.get("architecture", "")),
        os=str(config.get("os", "")),
        created=str(config.get("created", "")),
    )


def inspect_archive(path: str | os.PathLike[str]) -> list[ImageInfo]:
    """List the images in a docker-archive (``docker save`` format) without any container engine.

    Args:
        path: the archive (plain tar).

    Returns:
        One :class:`ImageInfo` per ``manifest.json`` entry, in archive order.

    Raises:
        ImageError: the file is missing, is not a tar, or is not a docker-archive.
    """
    archive = Path(path)
    try:
        with tarfile.open(archive, "r:") as tar:
            sizes = _member_sizes(tar)
            manifest = _load_json(_read_member(tar, "manifest.json", archive), archive, "manifest.json")
            if not isinstance(manifest, list):
                raise ImageError(f"{archive}: manifest.json: expected a list of images")
            return [_image_info(tar, entry, sizes, archive) for entry in manifest]
    except FileNotFoundError:
        raise ImageError(f"{archive}: no such file") from None
    except (tarfile.TarError, OSError) as exc:
        raise ImageError(f"{archive}: not a readable tar archive: {exc}") from None


def verify_archive(path: str | os.PathLike[str]) -> list[str]:
    """Hash every layer of a docker-archive and compare with the configs' diff_ids.

    Args:
        path: the archive.

    Returns:
        Problems found (an empty list means every layer matches its recorded digest).

    Raises:
        ImageError: the archive cannot be read at all (see :func:`inspect_archive`).
    """
    archive = Path(path)
    infos = inspect_archive(archive)  # structure first: clear errors for broken archives
    problems: list[str] = []
    hashed: dict[str, str] = {}  # a base layer shared by several images is hashed once
    with tarfile.open(archive, "r:") as tar:
        manifest = json.loads(_read_member(tar, "manifest.json", archive))
        for entry, info in zip(manifest, infos, strict=True):
            layers = [name.removeprefix("./") for name in entry.get("Layers") or []]
            if len(layers) != len(info.layers):
                problems.append(f"{entry['Config']}: {len(info.layers)} diff_ids for {len(layers)} layers")
                continue
            for layer, expected in zip(layers, info.layers, strict=True):
                if layer not in hashed:
                    hashed[layer] = "sha256:" + _sha256_stream(_read_stream(tar, layer, archive))
                if hashed[layer] != expected:
                    problems.append(f"{layer}: digest {hashed[layer]} does not match {expected}")
    return problems


def _read_stream(tar: tarfile.TarFile, name: str, archive: Path) -> Iterator[bytes]:
    """Yield a member's bytes in chunks (layers can be hundreds of MB)."""
    handle = tar.extractfile(name)
    if handle is None:
        raise ImageError(f"{archive}: missing {name}")
    with handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def _sha256_stream(chunks: Iterable[bytes]) -> str:
    """Hex SHA-256 of a stream of chunks."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    with path.open("rb") as handle:
        return _sha256_stream(iter(lambda: handle.read(CHUNK_SIZE), b""))
