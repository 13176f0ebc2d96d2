"""Container images: build them with the Docker SDK and save them to one docker-archive.

The archive is what kubelet's runtime imports on an air-gapped node (``ctr -n k8s.io images import``), so
every ref in it is fully qualified. :func:`inspect_archive` reads such an archive without any engine
(``manifest.json`` plus each image's config JSON), which is what the bundle code records.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeha.bundle.archive import CHUNK_SIZE, ImageError, ImageInfo, inspect_archive, sha256_file, verify_archive
from kubeha.recipe import shipped_recipe
from kubeha.resources import docker_dir

# Refs, versions and the base come from the shipped recipe (bundles/default.yaml), the one place they are written.
DEFAULT_KEEPALIVED_REF = shipped_recipe().image("keepalived").ref
DEFAULT_HAPROXY_REF = shipped_recipe().image("haproxy").ref
DEFAULT_REFS = shipped_recipe().refs
DEFAULT_BASE_IMAGE = shipped_recipe().base
# Host networking lets apt inside the build reach the same package mirror as the host even when the daemon
# runs without a bridge (``dockerd --bridge=none``, as on air-gapped build hosts and in CI); on an ordinary
# daemon it behaves like the default network for a build.
DEFAULT_BUILD_NETWORK = "host"
METADATA_NAME = "images.json"
DOCKER_DIR_ENV = "KUBEHA_DOCKER_DIR"
# Archive reading lives in kubeha.bundle.archive; these names stay reachable as images.X for the CLI.
__all__ = ["ImageError", "ImageInfo", "ImageSpec", "inspect_archive", "sha256_file", "verify_archive"]


@dataclass(frozen=True)
class ImageSpec:
    """An image kubeha builds: its short name, the ref it is tagged with and the upstream version it ships."""

    name: str
    ref: str
    version: str


IMAGES: dict[str, ImageSpec] = {i.name: ImageSpec(i.name, i.ref, i.version) for i in shipped_recipe().images}


# --------------------------------------------------------------------------------------------------------
# Docker engine


def _docker_sdk() -> Any:
    """The Docker SDK module, imported on first use (it costs ~0.3 s and only these commands need it).

    Imported by name so that type checkers run from the repository root do not mistake the top-level
    ``docker/`` folder (the Dockerfiles) for the SDK.
    """
    return importlib.import_module("docker")


def default_docker_dir() -> Path:
    """Where the image definitions live: ``$KUBEHA_DOCKER_DIR``, else the packaged docker/ folder."""
    configured = os.environ.get(DOCKER_DIR_ENV)
    if configured:
        return Path(configured)
    return docker_dir()


def describe_docker_host(docker_host: str | None = None) -> str:
    """The daemon address the SDK will try: the argument, else ``$DOCKER_HOST``, else the default socket."""
    return docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(docker_host: str | None = None, timeout: int = 600) -> Any:
    """Connect to a Docker daemon and check that it answers.

    Args:
        docker_host: daemon URL such as ``unix:///run/docker.sock``; default ``$DOCKER_HOST`` or the
            standard socket.
        timeout: API timeout in seconds.

    Returns:
        A ``docker.DockerClient``.

    Raises:
        ImageError: no daemon answers at that address (the message says which one and how to change it).
    """
    docker = _docker_sdk()
    where = describe_docker_host(docker_host)
    try:
        client = docker.DockerClient(base_url=where, timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ImageError(f"cannot reach a Docker daemon at {where}: {_why(exc)}; start dockerd, or give the "
                         "address it listens on with --docker-host or $DOCKER_HOST") from None
    return client


def _why(exc: BaseException) -> str:
    """The operating system's reason inside the SDK's nested connection errors, else their last line."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.strerror:
            return item.strerror[0].lower() + item.strerror[1:]
        if isinstance(item, BaseException):
            todo += [*item.args, item.__cause__, item.__context__]
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


@dataclass
class BuildResult:
    """What one image build produced."""

    ref: str
    image_id: str
    seconds: float


@dataclass
class _BuildLog:
    """The build output so far, split by Dockerfile step so a failure can show the failing step."""

    steps: list[list[str]] = field(default_factory=list)

    def add(self, line: str) -> None:
        if line.startswith("Step ") or not self.steps:
            self.steps.append([])
        self.steps[-1].append(line)

    def last_step(self) -> str:
        return "".join(self.steps[-1]) if self.steps else ""


def build_image(
    client: Any,
    spec: ImageSpec,
    docker_dir: Path,
    base_image: str = DEFAULT_BASE_IMAGE,
    network_mode: str = DEFAULT_BUILD_NETWORK,
    on_output: Callable[[str], None] | None = None,
    context: Path | None = None,
) -> BuildResult:
    """Build one image from ``docker_dir/<name>/Dockerfile`` and tag it with ``spec.ref``.

    Args:
        client: a ``docker.DockerClient`` (see :func:`connect`).
        spec: which image.
        docker_dir: the folder holding one sub-folder per image.
        base_image: value of the Dockerfile's ``BASE_IMAGE`` build argument; never pulled.
        network_mode: network for ``RUN`` steps (``host`` reaches the host's package mirror).
        on_output: called with each chunk of build output as it streams.
        context: the build context folder, when it is not ``docker_dir/<name>`` (a recipe names it).

    Returns:
        The ref, image ID and duration.

    Raises:
        ImageError: missing Dockerfile or base image, or a failed step (its output is in the message).
    """
    import time

    context = context or docker_dir / spec.name
    if not (context / "Dockerfile").is_file():
        raise ImageError(f"{context / 'Dockerfile'}: no such file (use --docker-dir to point at docker/)")
    _require_image(client, base_image, hint=f"pull or load it first (docker pull {base_image}), or pass --base")
    started = time.monotonic()
    stream = client.api.build(
        path=str(context), tag=spec.ref, pull=False, rm=True, forcerm=True, decode=True,
        network_mode=network_mode, buildargs={"BASE_IMAGE": base_image, "VERSION": spec.version},
    )
    image_id = _follow_build(stream, spec, on_output)
    return BuildResult(spec.ref, image_id, time.monotonic() - started)


def _follow_build(stream: Iterable[dict[str, Any]], spec: ImageSpec, on_output: Callable[[str], None] | None) -> str:
    """Consume the build's JSON stream; return the image ID or raise with the failing step's output."""
    log = _BuildLog()
    image_id = ""
    for item in stream:
        text = item.get("stream") or item.get("status") or ""
        if text:
            log.add(text)
            if on_output:
                on_output(text)
        if "aux" in item and isinstance(item["aux"], dict):
            image_id = item["aux"].get("ID", image_id)
        if "error" in item:
            raise ImageError(
                f"building {spec.ref} failed: {item['error'].strip()}\n--- output of the failing step ---\n"
                f"{log.last_step().rstrip()}"
            )
    if not image_id:
        raise ImageError(f"building {spec.ref}: the daemon reported no image ID")
    return str(image_id)


def _require_image(client: Any, ref: str, hint: str) -> Any:
    """Return the image object for ``ref`` or raise a clear error."""
    docker = _docker_sdk()
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise ImageError(f"image {ref} is not in the Docker daemon: {hint}") from None


def missing_refs(client: Any, refs: Iterable[str]) -> list[str]:
    """The refs the daemon does not have."""
    docker = _docker_sdk()
    missing = []
    for ref in refs:
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            missing.append(ref)
    return missing


def require_refs(client: Any, refs: Iterable[str]) -> None:
    """Raise a clear error naming every ref the daemon does not have."""
    missing = missing_refs(client, refs)
    if missing:
        raise ImageError(
            f"not in the Docker daemon: {', '.join(missing)} (run `kubeha image build`, or pull/load them first)"
        )


# --------------------------------------------------------------------------------------------------------
# Saving


@dataclass
class SaveResult:
    """A saved archive and what it holds (also written as ``images.json`` next to it)."""

    archive: Path
    size: int
    sha256: str
    images: list[ImageInfo]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The ``images.json`` document."""
        return {
            "archive": self.archive.name,
            "format": "docker-archive",
            "size": self.size,
            "sha256": self.sha256,
            "images": [info.to_dict() for info in self.images],
        }


def estimate_save_size(client: Any, refs: Iterable[str]) -> int:
    """Roughly how many bytes ``docker save`` of these refs writes (shared layers counted once when known)."""
    seen: dict[str, int] = {}
    for ref in refs:
        for index, entry in enumerate(client.api.history(ref)):
            key = entry.get("Id") if entry.get("Id") not in (None, "", "<missing>") else f"{ref}#{index}"
            seen[str(key)] = int(entry.get("Size") or 0)
    return sum(seen.values())


def stream_save(client: Any, refs: list[str]) -> Iterator[bytes]:
    """Stream ``docker save`` of several refs as raw tar chunks (never the whole archive in memory)."""
    # The SDK's public get_image() takes one name; the engine's /images/get endpoint takes several, which
    # is what puts shared base layers into the archive once.
    api = client.api
    response = api._get(api._url("/images/get"), params={"names": refs}, stream=True)
    return api._stream_raw_result(response, CHUNK_SIZE, False)  # type: ignore[no-any-return]


def normalise_refs(refs: Iterable[str]) -> list[str]:
    """Check that refs are fully qualified (kubelet and containerd look images up by the full name)."""
    result = []
    for ref in refs:
        first = ref.split("/", 1)[0]
        if "/" not in ref or not ("." in first or ":" in first or first == "localhost"):
            raise ImageError(
                f"image ref {ref!r} is not fully qualified: write it with its registry host, "
                f"e.g. docker.io/library/{ref} or kubeha.local/{ref.rsplit('/', 1)[-1]}"
            )
        if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
            raise ImageError(f"image ref {ref!r} has no tag: name one explicitly, e.g. {ref}:1.0")
        result.append(ref)
    return list(dict.fromkeys(result))


def save_images(
    client: Any,
    refs: Iterable[str],
    output: Path,
    on_chunk: Callable[[int], None] | None = None,
) -> SaveResult:
    """Save images to one docker-archive, atomically, with ``images.json`` beside it.

    Args:
        client: a ``docker.DockerClient``.
        refs: fully qualified refs, each with a tag.
        output: where the archive goes; written to a temp file in the same folder, then renamed.
        on_chunk: called with the byte count of each chunk written (progress bars).

    Returns:
        The archive's size, SHA-256 and contents.

    Raises:
        ImageError: a ref is not fully qualified or not in the daemon, or the archive is broken.
    """
    import time

    wanted = normalise_refs(refs)
    require_refs(client, wanted)
    started = time.monotonic()
    output = output.absolute()
    size, digest = _write_atomically(output, stream_save(client, wanted), on_chunk)
    result = SaveResult(output, size, digest, inspect_archive(output), time.monotonic() - started)
    _check_saved(result, wanted)
    write_metadata(result)
    return result


def _write_atomically(
    output: Path, chunks: Iterable[bytes], on_chunk: Callable[[int], None] | None
) -> tuple[int, str]:
    """Write chunks to a temp file next to ``output`` and rename it; return (size, hex SHA-256)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if on_chunk:
                    on_chunk(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, output)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def _check_saved(result: SaveResult, wanted: list[str]) -> None:
    """Make sure every requested ref made it into the archive under its full name."""
    present = {ref for info in result.images for ref in info.refs}
    lost = [ref for ref in wanted if ref not in present]
    if lost:
        raise ImageError(f"{result.archive}: the daemon saved no tag for {', '.join(lost)}")


def write_metadata(result: SaveResult) -> Path:
    """Write ``images.json`` next to the archive (atomically) and return its path."""
    path = result.archive.with_name(METADATA_NAME)
    text = json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n"
    _write_text_atomically(path, text)
    return path


def _write_text_atomically(path: Path, text: str) -> None:
    """Write a small text file via a temp file in the same folder."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
