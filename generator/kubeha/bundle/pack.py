"""Pack a signed offline bundle: per-node documents + the image archive -> ``out/NAME/`` and ``out/NAME.tar``.

Reproducible: with the same inputs and ``SOURCE_DATE_EPOCH`` the tar is byte-identical (sorted members,
mtime ``SOURCE_DATE_EPOCH`` or 0, canonical headers, see :mod:`kubeha.bundle.tarsafe`; the signature
carries ``SOURCE_DATE_EPOCH`` as its time); without it only the bytes of SHA256SUMS.asc differ (the
signature is made now). Packing streams every file in chunks (memory flat in image size) and is atomic:
everything is built in a hidden temp dir beside the output and renamed into place at the end.

Refused before anything is written: an unusable signing key (exit 4, :mod:`kubeha.bundle.signing`), and a
static pod image that the archive does not hold (exit 1, listing what the pods name and what the archive has).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeha import __version__
from kubeha.bundle.layout import (
    FORMAT_VERSION,
    IMAGES_INDEX,
    IMAGES_JSON,
    IMAGES_TAR,
    MANIFEST,
    NAME_RE,
    NODE_DOCUMENTS,
    OPTIONAL_NODE_DOCUMENTS,
    PUBLIC_KEY,
    SIGNATURE,
    SUMS,
    Advance,
    format_sums,
    no_progress,
    sha256_file,
)
from kubeha.bundle.signing import Signer, signature_time
from kubeha.bundle.tarsafe import copy_into, write_tar
from kubeha.deliver.userparts import MergeSpec
from kubeha.errors import InvalidInput, Location, OutputError, Problem
from kubeha.files import NodeDocument


@dataclass(frozen=True)
class PackResult:
    """Where a packed bundle landed and what it holds."""

    name: str
    directory: Path
    tarball: Path
    files: int  # signed files (entries in SHA256SUMS)
    size: int
    tar_size: int
    fingerprint: str
    serial: int = 0
    cluster_id: str = ""


@dataclass(frozen=True)
class PackInput:
    """What goes into a bundle besides the node documents.

    ``required_images`` maps each image ref a static pod names to the pods naming it; packing refuses a
    ref the archive does not hold.
    """

    cluster: str
    images: Path
    images_json: Path | None = None
    name: str | None = None
    install: Mapping[str, str] = field(default_factory=dict)
    cluster_id: str = ""
    serial: int = 1
    required_images: Mapping[str, list[str]] = field(default_factory=dict)
    key_files: Mapping[str, bytes] = field(default_factory=dict)  # KEYS, KEYS.asc, KEYS.pub (root mode)


@dataclass
class _Staging:
    """A bundle being built in ``root``: the files written so far and their sums."""

    root: Path
    sums: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def write(self, rel: str, data: bytes, mode: int = 0o644) -> None:
        """Write a small file (and record its sum)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        self.sums[rel], self.sizes[rel] = hashlib.sha256(data).hexdigest(), len(data)

    def copy(self, rel: str, src: Path, phase: Callable[[str, int], Advance]) -> None:
        """Copy a big file in (in-kernel), then hash the copy: the sum describes exactly the bundled bytes."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        size = src.stat().st_size
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask: the tar records the mode
            copy_into(src, fd, size, phase(f"copy {src.name}", size))
        finally:
            os.close(fd)
        self.sums[rel], self.sizes[rel] = sha256_file(path, phase(f"hash {src.name}", size)), size


def _check_name(kind: str, value: str) -> None:
    """Refuse names that cannot be a single safe path component."""
    if not NAME_RE.fullmatch(value):
        message = f"{value!r} is not a valid name ([A-Za-z0-9._-], max 63)"
        raise InvalidInput([Problem(Location("<bundle>"), kind, message)])


def _image_entries(inputs: PackInput) -> tuple[list[dict[str, Any]], bytes]:
    """Image metadata for bundle.json and the ``index.txt`` the node script reads; every pod image present."""
    from kubeha.bundle.archive import inspect_archive  # noqa: PLC0415 - keeps `bundle verify` light
    from kubeha.recipe import REF  # noqa: PLC0415

    infos = inspect_archive(inputs.images)
    loc = Location(str(inputs.images))
    bad = sorted({repr(r) for info in infos for r in info.refs if not (isinstance(r, str) and REF.fullmatch(r))})
    if bad:  # each ref becomes a line of the signed images/index.txt the nodes trust
        raise InvalidInput([Problem(loc, "images", f"RepoTags {ref} is not a fully qualified image reference")
                            for ref in bad])
    pairs = sorted({(info.image_id, ref) for info in infos for ref in info.refs})
    if not pairs:
        raise InvalidInput([Problem(loc, "images", "the archive holds no tagged image")])
    held = {ref for _, ref in pairs}
    missing = sorted(set(inputs.required_images) - held)
    if missing:
        problems = [Problem(loc, "images", f"{ref} (named by {', '.join(sorted(inputs.required_images[ref]))}) "
                                           f"is not in the archive, which holds: {', '.join(sorted(held))}")
                    for ref in missing]
        raise InvalidInput(problems)
    return [info.to_dict() for info in infos], "".join(f"{i} {r}\n" for i, r in pairs).encode()


def _manifest(stage: _Staging, inputs: PackInput, name: str, images: list[dict[str, Any]],
              nodes: Mapping[str, tuple[str, ...]], fingerprint: str) -> bytes:
    """bundle.json: everything inside, as sorted JSON (the node reads top-level keys line by line)."""
    doc = {
        "format": FORMAT_VERSION,
        "name": name,
        "cluster": inputs.cluster,
        "cluster_id": inputs.cluster_id,
        "serial": inputs.serial,
        "kubeha_version": __version__,
        "images": {"archive": IMAGES_TAR, "sha256": stage.sums[IMAGES_TAR], "images": images},
        "nodes": {n: [f"nodes/{n}/{d}" for d in docs] for n, docs in nodes.items()},
        "files": [{"path": p, "size": stage.sizes[p], "sha256": stage.sums[p]} for p in sorted(stage.sums)],
        "signing_key": {"path": PUBLIC_KEY, "fingerprint": fingerprint},
        "install": dict(inputs.install),
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH when set (and sane), else 0: the mtime of every tar member."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else 0


def _install_final(staging: Path, out: Path, name: str) -> None:
    """Move ``staging/NAME`` and ``staging/NAME.tar`` to ``out``, replacing an older bundle of that name."""
    for item in (name, f"{name}.tar"):
        final = out / item
        if final.exists() or final.is_symlink():
            final.rename(staging / f"old-{item}")
    (staging / name).rename(out / name)
    (staging / f"{name}.tar").rename(out / f"{name}.tar")


def pack_bundle(out: Path, documents: Mapping[str, Mapping[str, bytes]], inputs: PackInput, signer: Signer,
                progress: Callable[[str, int], Advance] | None = None) -> PackResult:
    """Pack a signed, reproducible bundle into ``out/NAME/`` and ``out/NAME.tar``.

    Args:
        out: output directory (created if missing).
        documents: node name -> {"user-data": bytes, "meta-data": bytes}.
        inputs: cluster name, id and serial, image archive (+ metadata), bundle name, install settings.
        signer: the GnuPG key that signs SHA256SUMS.
        progress: ``progress(description, total_bytes)`` returns an ``advance(n)`` callback per phase.

    Raises:
        InvalidInput: bad names, missing documents or image archive, a pod image not in the archive.
        UnusableKeyError: the key is revoked, expired or not valid at the signature time (exit 4).
        SigningError: the key cannot sign.
    """
    name = inputs.name or inputs.cluster
    _validate_inputs(name, documents, inputs)
    refuse_other_cluster(out, name, inputs.cluster)
    phase = progress or (lambda _d, _t: no_progress)
    signer.check_usable(signature_time())  # fail fast, before copying gigabytes
    fingerprint, public_key = signer.fingerprint(), signer.export_public_key()
    images, index = _image_entries(inputs)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=out))
    try:
        root = staging / name
        stage = _Staging(root)
        root.mkdir(mode=0o755)
        stage.copy(IMAGES_TAR, inputs.images, phase)
        _stage_small_files(stage, documents, inputs, public_key)
        stage.write(IMAGES_INDEX, index)
        stage.write(MANIFEST, _manifest(stage, inputs, name, images,
                                                  {n: node_documents(documents[n]) for n in sorted(documents)},
                                                  fingerprint))
        (root / SUMS).write_bytes(format_sums(stage.sums))
        (root / SIGNATURE).write_bytes(signer.sign_detached(root / SUMS))
        for rel, data in inputs.key_files.items():  # outside SHA256SUMS: the root's signature covers them
            (root / rel).write_bytes(data)
        for rel in (SUMS, SIGNATURE, *inputs.key_files):
            (root / rel).chmod(0o644)
        for public_dir in (root, root / "images"):  # fixed modes whatever the umask: the tar records them
            public_dir.chmod(0o755)
        total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        tar_path = staging / f"{name}.tar"
        write_tar(root, name, tar_path, source_date_epoch(), phase("write tar", total))
        tar_path.chmod(0o600)  # it holds every node's user-data, hence the VRRP secret
        tar_size = tar_path.stat().st_size
        _install_final(staging, out, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PackResult(name, out / name, out / f"{name}.tar", len(stage.sums), total, tar_size, fingerprint,
                      inputs.serial, inputs.cluster_id)


def refuse_other_cluster(out: Path, name: str, cluster: str) -> None:
    """A bundle directory is one cluster's: packing another cluster under its name would replace it."""
    try:
        doc = json.loads((out / name / MANIFEST).read_text())
    except (OSError, ValueError):
        return
    other = doc.get("cluster") if isinstance(doc, dict) else None
    if isinstance(other, str) and other != cluster:
        raise OutputError(f"-o {out}: {out / name}/ is cluster {other}'s bundle; packing cluster {cluster} never "
                          "replaces another cluster's bundle: give another --name or -o")


def _validate_inputs(name: str, documents: Mapping[str, Mapping[str, bytes]], inputs: PackInput) -> None:
    """Collect every problem with the pack inputs and raise them together."""
    _check_name("bundle name", name)
    problems = []
    for node in sorted(documents):
        _check_name("node name", node)
        missing = [d for d in NODE_DOCUMENTS if d not in documents[node]]
        if missing:
            problems.append(Problem(Location("<documents>"), node, f"missing {', '.join(missing)}"))
    if not documents:
        problems.append(Problem(Location("<documents>"), "nodes", "no node documents to pack"))
    for path in (inputs.images, inputs.images_json):
        if path is not None and not path.is_file():
            problems.append(Problem(Location(str(path)), "images", "no such file"))
    if not 1 <= inputs.serial < 1 << 53:
        problems.append(Problem(Location("<bundle>"), "serial", f"{inputs.serial} is not a positive integer"))
    if problems:
        raise InvalidInput(problems)


def node_documents(docs: Mapping[str, bytes]) -> tuple[str, ...]:
    """The documents of one node that a bundle carries: the cloud-init pair, and config.ign when packed."""
    return NODE_DOCUMENTS + tuple(d for d in OPTIONAL_NODE_DOCUMENTS if d in docs)


def _stage_small_files(stage: _Staging, documents: Mapping[str, Mapping[str, bytes]], inputs: PackInput,
                       public_key: str) -> None:
    """Node documents (0600, in 0700 dirs: they hold secrets), public key and image metadata."""
    for node in sorted(documents):
        for doc in node_documents(documents[node]):
            stage.write(f"nodes/{node}/{doc}", documents[node][doc], 0o600)
        (stage.root / "nodes" / node).chmod(0o700)
    (stage.root / "nodes").chmod(0o700)
    stage.write(PUBLIC_KEY, public_key.encode())
    if inputs.images_json is not None:
        stage.write(IMAGES_JSON, inputs.images_json.read_bytes())


def pod_images(docs: Iterable[NodeDocument]) -> dict[str, list[str]]:
    """Every image a static pod of ``docs`` names -> the ``node:manifest`` files naming it."""
    wanted: dict[str, list[str]] = {}
    for doc in docs:
        for rendered in doc.files:
            if "/manifests/" not in rendered.path or not rendered.path.endswith(".yaml"):
                continue
            spec = (yaml.safe_load(rendered.content) or {}).get("spec") or {}
            for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                where = f"{doc.name}:{rendered.path.rsplit('/', 1)[1]}"
                wanted.setdefault(str(container.get("image")), []).append(where)
    return wanted


MAX_BYTES_MARGIN = 64 << 20
"""The nodes' download bound is the image archive's size plus this (documents, headers, metadata)."""


@dataclass(frozen=True)
class Delivery:
    """How the packed node documents are delivered: format, target budget, the user's merged documents."""

    fmt: str = "cloud-init"  # or "ignition": config.ign beside the cloud-init pair
    target: str = "nocloud"
    merge: MergeSpec | None = None


def pack_inventory(inventory: Path, images: Path, signer: Signer, output: Path, *, source: str = "cidata",
                   runtime: str = "containerd", images_json: Path | None = None, name: str | None = None,
                   serial: int | None = None, progress: Callable[[str, int], Advance] | None = None,
                   delivery: Delivery | None = None, new_cluster_id: bool = False,
                   note: Callable[[str], None] | None = None, root_key: Path | None = None) -> PackResult:
    """Generate every node's documents with the trust anchor in them, then pack them (``kubeha bundle pack``).

    The user-data carries the key's fingerprint, the cluster id (made once beside the inventory), this
    bundle's serial as the lowest the node accepts, and the download size bound. The serial is recorded
    beside the inventory once the bundle is in place. ``delivery`` (issue 13): the format (config.ign too
    for Ignition), the target whose budget every node's documents must fit, the user's documents to merge.
    A new cluster id is announced through ``note``, and refused where an old one evidently existed unless
    ``new_cluster_id`` (see :func:`kubeha.bundle.identity.ensure_cluster_id`).

    ``root_key`` (``--root-key``, the root's public key): the user-data pins the root instead of the signing
    key, and the bundle ships the signing-key list beside the inventory, which must be signed by that root,
    of this cluster, not expired, and certify the signing key (else exit 4, see :mod:`.certify`).
    """
    from kubeha.bundle import certify, identity  # noqa: PLC0415
    from kubeha.generate import (  # noqa: PLC0415 - heavy
        BundleRef,
        build_documents,
        bundle_documents,
        check_bundle_source,
        load_cluster,
    )

    signer.check_usable(signature_time())
    check_bundle_source(source)
    cluster = load_cluster(inventory).cluster.name
    number = identity.next_serial(inventory, serial)
    cid, fresh = identity.plan_cluster_id(inventory, cluster, output, name or cluster, new=new_cluster_id)
    bound = (images.stat().st_size if images.is_file() else 0) + MAX_BYTES_MARGIN
    key_files, version = _key_list(inventory, root_key, cid, signer.fingerprint())
    anchor = certify.root_fingerprints(root_key) if root_key else (signer.export_public_key(), (signer.fingerprint(),))
    ref = BundleRef(public_key=anchor[0], source=source, runtime=runtime, fingerprints=anchor[1], cluster_id=cid,
                    min_serial=number, max_bytes=bound, keys_version=version)
    loaded, docs = build_documents(inventory, bundle=ref)
    how = delivery or Delivery()
    documents = bundle_documents(inventory, ref, fmt=how.fmt, target=how.target, merge=how.merge)
    inputs = PackInput(loaded.cluster.name, images, images_json, name, {"source": source, "runtime": runtime},
                       cid, number, pod_images(docs), key_files)
    _validate_inputs(name or loaded.cluster.name, documents, inputs)
    _image_entries(inputs)  # every input checked before the new id is stored (then pack_bundle writes)
    if fresh:
        identity.record_cluster_id(inventory, cluster, cid, note)
    result = pack_bundle(output, documents, inputs, signer, progress)
    identity.record_serial(inventory, number)
    return result


def _key_list(inventory: Path, root_key: Path | None, cluster_id: str, signer: str) -> tuple[dict[str, bytes], int]:
    """With ``root_key``: the verified list files to ship and their version; without, none (refused if one exists)."""
    from kubeha.bundle import certify  # noqa: PLC0415
    from kubeha.bundle.keylist import KEYS, parse_key_list  # noqa: PLC0415

    if root_key is None:
        path = certify.list_paths(inventory)[KEYS]
        if path.exists() or path.is_symlink():
            raise InvalidInput([Problem(Location(str(path)), "signing-key list", "this cluster's nodes trust a "
                                        "root key that certifies signing keys: pass --root-key ROOT-PUBLIC.asc "
                                        "(a bundle without the list would pin the signing key itself)")])
        return {}, 0
    files = certify.load_for_pack(inventory, root_key, cluster_id, signer)
    return files, parse_key_list(files[KEYS]).version
