"""``kubeha gen seed-iso``: one NoCloud seed ISO per node (the lead registers :func:`seed_iso` under ``gen``).

With ``--bundle`` (the bundle tar or directory) ``--keyring`` is required: the bundle is verified exactly like
``kubeha bundle verify`` (exit 3 or 4, and another cluster's bundle is refused when the inventory has a cluster
id beside it) into a private copy before anything is written, and the ISOs are built from that copy. Each ISO
holds only what its node needs: a master's carries the bundle without the other nodes' documents (the
node-side check accepts that per-node subset, the signed list says which paths belong to which node); a
worker's carries no bundle at all, so no master secret and no image ever lands on it.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from kubeha.cli.common import Session, check_output_dir, complete_inventory, session
from kubeha.cli.options import MergeDirOpt, MergeOpt
from kubeha.deliver.seediso import write_seed_iso
from kubeha.deliver.userparts import MergeSpec
from kubeha.errors import InvalidInput, Location, Problem, UsageError


class SeedFormat(StrEnum):
    """What ``gen seed-iso`` writes per node."""

    cloud_init = "cloud-init"
    ignition = "ignition"


def bundle_documents(bundle: Path, nodes: list[str]) -> dict[str, dict[str, bytes]]:
    """The verified bundle's own per-node documents (they carry its key fingerprint, cluster id and serial).

    A packed bundle holds ``nodes/<node>/user-data`` and ``meta-data`` made for it; those, not freshly
    generated ones, must ride on the ISO beside it, or the node would not know which key to trust.
    """
    found: dict[str, dict[str, bytes]] = {}
    missing = []
    for node in nodes:
        node_dir = bundle / "nodes" / node
        if (node_dir / "user-data").is_file() and (node_dir / "meta-data").is_file():
            found[node] = {name: (node_dir / name).read_bytes() for name in ("user-data", "meta-data")}
        else:
            missing.append(node)
    if missing:
        problems = [Problem(Location(str(bundle / "nodes" / n)), "bundle", "no user-data/meta-data for this node")
                    for n in missing]
        raise InvalidInput(problems)
    return found


def merge_bundle_user_data(node: str, merge: MergeSpec, bundle: Path, user_data: bytes) -> bytes:
    """The bundle's user-data for ``node`` with the user's merged in (kubeha's part stays last)."""
    from kubeha.deliver.merge import merge_into  # noqa: PLC0415
    from kubeha.deliver.userparts import load_merges, read_merge_file  # noqa: PLC0415

    parts = load_merges(list(merge.files), merge.directory, [node], read_merge_file)[node]
    return merge_into(node, parts, str(bundle / "nodes" / node / "user-data"), user_data)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in chunks (an ISO with a bundle can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _only_for(node: str) -> Callable[[str], bool]:
    """A master's subset of the bundle: everything but the other nodes' documents."""
    return lambda rel: not rel.startswith("nodes/") or rel == f"nodes/{node}" or rel.startswith(f"nodes/{node}/")


def _verified_copy(inventory: Path, bundle: Path, keyring: Path, dest: Path) -> Path:
    """Verify ``bundle`` into ``dest`` (exit 3/4 on failure); return the verified bundle directory."""
    from kubeha.bundle import Expect, stage_verified  # noqa: PLC0415
    from kubeha.bundle.identity import cluster_id  # noqa: PLC0415

    expect = Expect(cluster=cluster_id(inventory))
    stage_verified(bundle, keyring, dest / "bundle", expect)
    return dest / "bundle"


def write_seed_isos(
    inventory: Path, output: Path, bundle: Path | None = None, done: Callable[[str], None] | None = None,
    keyring: Path | None = None, session: Session | None = None, merge: MergeSpec | None = None,
) -> list[dict[str, object]]:
    """Generate every node's documents from ``inventory`` and write ``<output>/<node>.iso`` for each.

    With a bundle (tar or directory) and its trusted ``keyring``, the bundle is verified into a private copy
    first; every ISO carries the documents from its ``nodes/<node>/``, and, when the bundle's source is the
    seed ISO itself (``cidata``), masters' ISOs carry their subset of that copy under ``/kubeha-bundle/``
    (workers' never do). ``done(node)`` is called after each ISO.
    ``merge`` merges the user's user-data into each node's (into the bundle's copy when there is one).

    Returns:
        One record per node: node, path, size in bytes and SHA-256 of the ISO, sorted by node.
    """
    from kubeha.generate import generate_documents, load_cluster  # noqa: PLC0415 - the whole rendering stack

    if bundle is not None and keyring is None:
        raise InvalidInput([Problem(Location("--keyring"), "keyring", "required with --bundle: the bundle is "
                                    "verified before anything is written")])
    documents = generate_documents(inventory, merge=merge)  # validates everything before anything is written
    loaded = load_cluster(inventory)
    if session is not None:
        session.warn(loaded.warnings)
    masters = {m.name for m in loaded.cluster.masters}
    with tempfile.TemporaryDirectory(prefix=".kubeha-seed-", dir=_private_parent(output)) as tmp:
        verified = _verified_copy(inventory, bundle, keyring, Path(tmp)) if bundle and keyring else None
        on_iso = verified is not None and _on_seed_iso(verified, session)
        if verified is not None:
            for node, docs in bundle_documents(verified, sorted(documents)).items():
                documents[node] = {**documents[node], **docs}
                if merge:
                    documents[node]["user-data"] = merge_bundle_user_data(node, merge, verified, docs["user-data"])
        written: list[dict[str, object]] = []
        for node in sorted(documents):
            docs = documents[node]
            path = output / f"{node}.iso"
            write_seed_iso(path, user_data=docs["user-data"], meta_data=docs["meta-data"],
                           network_config=docs.get("network-config"),
                           bundle_dir=verified if on_iso and node in masters else None, include=_only_for(node))
            written.append(_record(node, path))
            if done is not None:
                done(node)
    return written


def _on_seed_iso(verified: Path, session: Session | None) -> bool:
    """True when the bundle's nodes look for it on the seed ISO (source cidata); else say where they look."""
    source = install_source(verified)
    if source == "cidata":
        return True
    where = (f"a disk labelled {source.removeprefix('label:')}" if source.startswith("label:") else source)
    if session is not None:
        session.note(f"the bundle's source is {source}: the nodes fetch it from {where}, so no seed ISO carries it "
                     "(only the documents made for it)")
    return False


def _record(node: str, path: Path) -> dict[str, object]:
    """What ``--json`` says of one written ISO."""
    return {"node": node, "path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _private_parent(output: Path) -> Path:
    """An existing directory near ``output`` for the verified copy (same filesystem, nothing in ``output``)."""
    parent = output.resolve().parent
    while not parent.is_dir():
        parent = parent.parent
    return parent


def write_bundle_isos(inventory: Path, output: Path, bundle: Path, keyring: Path,
                      done: Callable[[str], None] | None = None) -> list[dict[str, object]]:
    """For Ignition masters: ``<output>/<node>.iso`` labelled as the bundle's ``label:LABEL`` source says.

    The bundle is verified into a private copy first; each master's disk carries its subset of it and the
    node's config.ign (from ``bundle pack --format ignition``). Workers install nothing: no disk for them.
    """
    from kubeha.deliver.seediso import write_bundle_iso  # noqa: PLC0415
    from kubeha.generate import load_cluster  # noqa: PLC0415

    masters = [m.name for m in load_cluster(inventory).cluster.masters]
    with tempfile.TemporaryDirectory(prefix=".kubeha-seed-", dir=_private_parent(output)) as tmp:
        verified = _verified_copy(inventory, bundle, keyring, Path(tmp))
        label = _bundle_label(verified)
        missing = [n for n in masters if not (verified / "nodes" / n / "config.ign").is_file()]
        if missing:
            raise InvalidInput([Problem(Location(str(bundle)), f"nodes/{n}", "no config.ign: pack with --format "
                                        "ignition") for n in missing])
        written: list[dict[str, object]] = []
        for node in sorted(masters):
            path = output / f"{node}.iso"
            write_bundle_iso(path, label=label, bundle_dir=verified, include=_only_for(node),
                             files={"config.ign": (verified / "nodes" / node / "config.ign").read_bytes()})
            written.append(_record(node, path))
            if done is not None:
                done(node)
    return written


def install_source(verified: Path) -> str:
    """Where the bundle's nodes look for it (``install.source`` of its verified bundle.json)."""
    try:
        return str(json.loads((verified / "bundle.json").read_text())["install"]["source"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput([Problem(Location(str(verified.name + "/bundle.json")), "bundle",
                                    f"unreadable: {exc}")]) from None


def _bundle_label(verified: Path) -> str:
    """The label the bundle's nodes look for (``install.source`` must be ``label:LABEL``)."""
    where = Location(str(verified.name + "/bundle.json"))
    source = install_source(verified)
    if not source.startswith("label:"):
        raise InvalidInput([Problem(where, "install.source",
                                    f"{source!r}: pack the bundle with --bundle-source label:LABEL for a bundle disk")])
    return source.removeprefix("label:")


def seed_iso(
    inventory: Annotated[Path, typer.Argument(help="Inventory file (INI hosts file or cluster YAML).",
                                              autocompletion=complete_inventory)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for <node>.iso files.")],
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Bundle tar or directory: verified, then each master's part "
                                  "goes on its ISO under /kubeha-bundle/.")
    ] = None,
    keyring: Annotated[
        Path | None, typer.Option("--keyring", help="Trusted public key(s) for --bundle (required with it).",
                                  dir_okay=False)
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")
                           ] = False,
    merge: MergeOpt = None,
    merge_dir: MergeDirOpt = None,
    fmt: Annotated[SeedFormat, typer.Option("--format", help="cloud-init: NoCloud seeds (label cidata); ignition: a "
                                            "bundle disk per node, labelled as the bundle's label:LABEL source "
                                            "says.")] = SeedFormat.cloud_init,
) -> None:
    """Write one NoCloud seed ISO per node (volume label cidata) with user-data, meta-data and the bundle."""
    with session("gen seed-iso", as_json=json_output, writes=True) as s:
        if bundle is not None and keyring is None:
            raise UsageError("--bundle needs --keyring (the bundle is verified before any ISO is written)")
        if fmt is SeedFormat.ignition and (bundle is None or keyring is None):
            raise UsageError("--format ignition needs --bundle and --keyring (a bundle disk per master)")
        check_output_dir(output)
        console = Console(stderr=True)
        with Progress(transient=True, console=console, disable=json_output or not console.is_terminal) as progress:
            task = progress.add_task("writing seed ISOs", total=None)
            if fmt is SeedFormat.ignition and bundle is not None and keyring is not None:
                written = write_bundle_isos(inventory, output, bundle, keyring, lambda node: progress.advance(task))
            else:
                written = write_seed_isos(inventory, output, bundle, lambda node: progress.advance(task), keyring,
                                          s, MergeSpec(tuple(merge or ()), merge_dir))
        s.result = {"output": str(output), "isos": written}
        for record in written:
            s.out(f"{record['node']}: {record['path']} ({record['bytes']:,} bytes)")
