"""The library behind ``kubeha check`` and ``kubeha gen``: inventory -> cluster -> per-node documents.

Pure up to :func:`kubeha.outdir.write_tree` (re-exported here), the only step that touches the output
directory.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubeha import inventory, statefiles
from kubeha.context import needs_secret, timing_warnings
from kubeha.deliver import cloudinit
from kubeha.deliver.userparts import MergeSpec
from kubeha.errors import InvalidInput, Location, Problem
from kubeha.files import NodeDocument
from kubeha.model import Cluster, build_cluster
from kubeha.outdir import MANIFEST, TreeReport, read_manifest, write_tree
from kubeha.render import IGNITION_INSTALL_SCRIPT, BundleRef, render_cluster

__all__ = ["MANIFEST", "BundleRef", "Loaded", "MergeSpec", "TreeReport", "build_documents", "generate_documents",
           "load_cluster", "read_manifest", "write_tree"]

SECRET_SUFFIX = statefiles.VRRP_SECRET.suffix
_SECRET_ALPHABET = string.ascii_letters + string.digits
# used with fullmatch (a trailing newline must not pass: the value lands in the node's install.env)
_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~%/+-]*)?")
_PATH = re.compile(r"/[A-Za-z0-9._/+-]+")
_LABEL = re.compile(r"label:[A-Za-z0-9_-]{1,16}")  # ext4 labels hold 16 bytes, ISO volume ids more


@dataclass(frozen=True)
class Loaded:
    """A validated cluster and the warnings found on the way."""

    cluster: Cluster
    warnings: list[Problem]


def load_cluster(path: Path, *, strict: bool = False, masters_group: str | None = None,
                 workers_group: str | None = None, top_priority: int | None = None) -> Loaded:
    """Load and validate an inventory; raise InvalidInput with every problem if anything is wrong.

    ``masters_group``/``workers_group`` override the groups an Ansible inventory's masters and workers are
    read from (``-`` as the path reads ``ansible-inventory --list`` JSON from stdin).
    """
    raw = inventory.load(path, masters_group=masters_group, workers_group=workers_group)
    default_name = re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-")[:63] or "kubernetes"
    cluster, problems = build_cluster(raw, default_name, top_priority)
    if cluster is not None:
        problems = sorted(problems + timing_warnings(cluster))
    if cluster is None or (strict and problems):
        if strict:
            problems = [Problem(p.location, p.path, p.message, "error") for p in problems]
        raise InvalidInput(problems)
    return Loaded(cluster, problems)


def secret_path(inventory_path: Path) -> Path:
    """Where the cluster's generated VRRP secret lives: beside the inventory."""
    return statefiles.beside(inventory_path, statefiles.VRRP_SECRET)


def read_secret(inventory_path: Path, *, create: bool) -> str | None:
    """The cluster's VRRP PASS secret, generated once (8 chars, 0600) when ``create`` and missing.

    Read and made by :mod:`kubeha.statefiles`' rules: a symlink, or a file of another user, is refused.
    """
    if str(inventory_path) == inventory.STDIN:
        raise InvalidInput([Problem(Location("<stdin>"), "secret", "a VRRPv2 cluster's generated secret is kept "
                                    "beside the inventory: save the JSON to a file and give its path instead of -")])
    path = secret_path(inventory_path)
    value = statefiles.read(path, statefiles.VRRP_SECRET, strip=True)
    if value is None and create:
        value = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(8))
        statefiles.create(path, statefiles.VRRP_SECRET, value)
    return value


def check_bundle_source(source: str) -> None:
    """A bundle source: ``cidata``, ``label:LABEL``, an absolute path or an http(s) URL (it lands in a shell env)."""
    if source == "cidata" or any(p.fullmatch(source) for p in (_LABEL, _PATH, _URL)):
        return
    raise InvalidInput([Problem(Location("--bundle-source"), "bundle-source",
                                f"{source!r} is not cidata, label:LABEL, an absolute path or an http(s) URL")])


def build_documents(path: Path, *, strict: bool = False, bundle: BundleRef | None = None,
                    create_secret: bool = True, masters_group: str | None = None,
                    workers_group: str | None = None) -> tuple[Loaded, list[NodeDocument]]:
    """Validate the inventory and render every node's format-independent document."""
    loaded = load_cluster(path, strict=strict, masters_group=masters_group, workers_group=workers_group)
    secret = read_secret(path, create=create_secret) if needs_secret(loaded.cluster) else None
    if bundle is not None:
        check_bundle_source(bundle.source)
    return loaded, render_cluster(loaded.cluster, secret, bundle)


def cloud_init_files(doc: NodeDocument, *, encode_files: bool = False) -> dict[str, bytes]:
    """One node's NoCloud files: user-data and meta-data."""
    user_data = cloudinit.to_user_data(doc, encode_files=encode_files).encode()
    return _with_network(doc, {"user-data": user_data, "meta-data": cloudinit.to_meta_data(doc).encode()})


def _with_network(doc: NodeDocument, files: dict[str, bytes]) -> dict[str, bytes]:
    net = cloudinit.to_network_config(doc)
    return files if net is None else {**files, "network-config": net.encode()}


def _renderer(parts: list[Any]) -> Callable[[NodeDocument, bool], str]:
    """``render(doc, encode_files)`` for the target fitter: kubeha's user-data, merged when there are parts."""
    if not parts:
        return lambda doc, encode_files: cloudinit.to_user_data(doc, encode_files=encode_files)
    from kubeha.deliver.merge import merged_user_data  # noqa: PLC0415 - only --merge needs it

    return lambda doc, encode_files: merged_user_data(doc, parts, encode_files=encode_files)


@dataclass(frozen=True)
class NodeOutput:
    """One node's files for the chosen format, and a line saying its size against the target's budget."""

    files: dict[str, bytes]
    summary: str
    fit: dict[str, str | int | None] = field(default_factory=dict)  # the summary as data, for --json


def _ignition_outputs(docs: list[NodeDocument], merge: MergeSpec | None, target: str) -> dict[str, NodeOutput]:
    from kubeha.deliver import targets  # noqa: PLC0415
    from kubeha.deliver.ignition import ignition_files  # noqa: PLC0415
    from kubeha.deliver.ignition_merge import read_ignition_file  # noqa: PLC0415
    from kubeha.deliver.userparts import load_merges  # noqa: PLC0415

    users = load_merges(list(merge.files), merge.directory, [d.name for d in docs], read_ignition_file) if merge \
        else {d.name: [] for d in docs}
    out, problems = {}, []
    for d in docs:
        try:
            files = ignition_files(d, merge=users[d.name])
            size = targets.fit_ignition(d, target, files["config.ign"])
        except InvalidInput as exc:
            problems += exc.problems
            continue
        merged = f", {len(users[d.name])} user config(s) merged" if users[d.name] else ""
        out[d.name] = NodeOutput(files, f"config.ign {size}{merged}")
    if problems:
        raise InvalidInput(sorted(set(problems)))
    return out


def _user_parts(docs: list[NodeDocument], merge: MergeSpec | None) -> dict[str, list[Any]]:
    if not merge:
        return {d.name: [] for d in docs}
    from kubeha.deliver.userparts import load_merges, read_merge_file  # noqa: PLC0415

    return load_merges(list(merge.files), merge.directory, [d.name for d in docs], read_merge_file)


def node_outputs(docs: list[NodeDocument], *, fmt: str = "cloud-init", target: str = "nocloud",
                 merge: MergeSpec | None = None) -> dict[str, NodeOutput]:
    """Each node's documents, fitted to the target's user-data budget (or InvalidInput saying why not).

    With ``merge``, each node's user-data is kubeha's merged with the user's (see kubeha.deliver.merge);
    the budget applies to the merged document.
    """
    from kubeha.deliver import targets  # noqa: PLC0415 - keep start-up light

    if fmt == "ignition":
        return _ignition_outputs(docs, merge, target)
    parts = _user_parts(docs, merge)
    fitted = {}
    problems = []
    for d in docs:
        try:
            sizes = tuple((f"merged {p.source}", len(p.text.encode()), len(targets.gz_b64(p.text.encode())))
                          for p in parts[d.name])
            fitted[d.name] = targets.fit(d, target, _renderer(parts[d.name]), sizes)
        except InvalidInput as exc:
            problems += exc.problems
    if problems:
        raise InvalidInput(sorted(set(problems)))  # a clash between the user's own files shows once
    return {
        d.name: NodeOutput(
            _with_network(d, {"user-data": fitted[d.name].data,
                              "meta-data": cloudinit.to_meta_data(d).encode()}),
            _budget_line(target, fitted[d.name].size, fitted[d.name].encoding, fitted[d.name].budget),
            {"target": target, "bytes": fitted[d.name].size, "encoding": fitted[d.name].encoding,
             "budget": fitted[d.name].budget},
        )
        for d in docs
    }


def _budget_line(target: str, size: int, encoding: str, budget: int | None) -> str:
    room = "no limit" if budget is None else f"{budget:,} B ({100 * size / budget:.0f}% used)"
    return f"user-data {size:,} B {encoding}, {target} budget {room}"


def delivery_hints(cluster: Cluster, target: str) -> list[str]:
    """What the target's network must allow (or InvalidInput: a VRRP VIP on a cloud where it cannot move)."""
    from kubeha.deliver.targets import network_hints  # noqa: PLC0415

    return network_hints(cluster, target)


def generate_documents(path: Path, *, fmt: str = "cloud-init", bundle: BundleRef | None = None,
                       strict: bool = False, target: str = "nocloud",
                       merge: MergeSpec | None = None) -> dict[str, dict[str, bytes]]:
    """Node name -> {file name: bytes} for the chosen format ("cloud-init" or "ignition").

    The user-data is fitted to ``target``'s budget (the default, nocloud, has none) and merged with
    ``merge``'s documents when given.
    """
    if fmt == "ignition" and bundle is not None:
        bundle = replace(bundle, script=IGNITION_INSTALL_SCRIPT)  # Flatcar's /usr is read-only
    loaded, docs = build_documents(path, strict=strict, bundle=bundle)
    delivery_hints(loaded.cluster, target)  # refuses a VRRP VIP where it cannot float
    return {name: out.files for name, out in node_outputs(docs, fmt=fmt, target=target, merge=merge).items()}


def bundle_documents(path: Path, bundle: BundleRef, *, fmt: str = "cloud-init", target: str = "nocloud",
                     merge: MergeSpec | None = None) -> dict[str, dict[str, bytes]]:
    """Every node's documents for a bundle: user-data + meta-data, and with ``fmt="ignition"`` also config.ign.

    The cloud-init pair is always packed (the bundle layout expects it, and a mixed fleet can use both);
    ``merge`` applies to the chosen format's documents only (cloud-configs or Ignition configs).
    """
    cloud = generate_documents(path, bundle=bundle, target=target, merge=None if fmt == "ignition" else merge)
    if fmt != "ignition":
        return cloud
    ignition = generate_documents(path, fmt="ignition", bundle=bundle, target=target, merge=merge)
    return {node: {**files, **ignition[node]} for node, files in cloud.items()}


def node_names(path: Path) -> list[str]:
    """The node names of an inventory, for shell completion (an empty list when it does not load)."""
    try:
        cluster = load_cluster(path).cluster
    except (InvalidInput, OSError):
        return []
    return [m.name for m in cluster.masters] + [w.name for w in cluster.workers]


def select_node(docs: list[NodeDocument], node: str | None) -> list[NodeDocument]:
    """All documents, or only ``node``'s (InvalidInput naming the known nodes when there is none)."""
    if node is None:
        return docs
    chosen = [d for d in docs if d.name == node]
    if not chosen:
        names = ", ".join(d.name for d in docs)
        raise InvalidInput([Problem(Location("--node"), "node", f"no node {node!r} in the inventory; nodes: {names}")])
    return chosen
