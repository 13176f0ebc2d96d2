"""``kubeha gen seed-iso``: one NoCloud seed ISO per node (the lead registers :func:`seed_iso` under ``gen``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from kubeha.cli.options import MergeDirOpt, MergeOpt
from kubeha.deliver.seediso import write_seed_iso
from kubeha.deliver.userparts import MergeSpec
from kubeha.errors import InvalidInput, KubehaError, Location, Problem


def bundle_documents(bundle: Path, nodes: list[str]) -> dict[str, dict[str, bytes]]:
    """The signed bundle's own per-node documents (they carry its public key and ``KUBEHA_BUNDLE``).

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
    if found and missing:
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


def write_seed_isos(
    inventory: Path, output: Path, bundle: Path | None = None, done: Callable[[str], None] | None = None,
    merge: MergeSpec | None = None,
) -> list[dict[str, object]]:
    """Generate every node's documents from ``inventory`` and write ``<output>/<node>.iso`` for each.

    With a bundle directory, each ISO also carries the bundle under ``/kubeha-bundle/``, and the node's
    user-data and meta-data come from the bundle's ``nodes/<node>/`` when it has them. ``done(node)`` is
    called after each ISO (for a progress bar). ``merge`` merges the user's user-data into each node's
    (into the bundle's copy when there is one).

    Returns:
        One record per node: node, path, size in bytes and SHA-256 of the ISO, sorted by node.
    """
    from kubeha.generate import generate_documents  # the generator imports the whole rendering stack

    if bundle is not None and not bundle.is_dir():
        raise InvalidInput([Problem(Location(str(bundle)), "bundle", "not a directory (unpack the bundle tar)")])
    documents = generate_documents(inventory, merge=merge)  # validates everything before anything is written
    if bundle is not None:
        for node, docs in bundle_documents(bundle, sorted(documents)).items():
            documents[node] = {**documents[node], **docs}
            if merge:
                documents[node]["user-data"] = merge_bundle_user_data(node, merge, bundle, docs["user-data"])
    written: list[dict[str, object]] = []
    for node in sorted(documents):
        docs = documents[node]
        path = output / f"{node}.iso"
        write_seed_iso(
            path,
            user_data=docs["user-data"],
            meta_data=docs["meta-data"],
            network_config=docs.get("network-config"),
            bundle_dir=bundle,
        )
        written.append({"node": node, "path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)})
        if done is not None:
            done(node)
    return written


def write_bundle_isos(output: Path, bundle: Path, done: Callable[[str], None] | None = None) -> list[dict[str, object]]:
    """For Ignition nodes: ``<output>/<node>.iso`` labelled as the bundle's ``label:LABEL`` source says.

    Each carries the bundle and the node's config.ign (from ``bundle pack --format ignition``).
    """
    from kubeha.deliver.seediso import write_bundle_iso  # noqa: PLC0415

    try:
        manifest = json.loads((bundle / "bundle.json").read_text())
        source = str(manifest["install"]["source"])
        nodes = sorted(manifest["nodes"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput([Problem(Location(str(bundle / "bundle.json")), "bundle", f"unreadable: {exc}")]) from None
    if not source.startswith("label:"):
        raise InvalidInput([Problem(Location(str(bundle / "bundle.json")), "install.source",
                                    f"{source!r}: pack the bundle with --bundle-source label:LABEL for a bundle disk")])
    missing = [n for n in nodes if not (bundle / "nodes" / n / "config.ign").is_file()]
    if missing:
        raise InvalidInput([Problem(Location(str(bundle / "nodes" / n)), "bundle",
                                    "no config.ign: pack with --format ignition") for n in missing])
    written: list[dict[str, object]] = []
    for node in nodes:
        path = output / f"{node}.iso"
        config = (bundle / "nodes" / node / "config.ign").read_bytes()
        write_bundle_iso(path, label=source.removeprefix("label:"), bundle_dir=bundle, files={"config.ign": config})
        written.append({"node": node, "path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)})
        if done is not None:
            done(node)
    return written


def _report_error(exc: KubehaError) -> None:
    if isinstance(exc, InvalidInput):
        for problem in sorted(exc.problems):
            typer.echo(str(problem), err=True)
    typer.echo(f"error: {exc}", err=True)


def seed_iso(
    inventory: Annotated[Path, typer.Argument(help="Inventory file (INI hosts file or cluster YAML).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for <node>.iso files.")],
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Bundle directory to put on each ISO under /kubeha-bundle/.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
    merge: MergeOpt = None,
    merge_dir: MergeDirOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="cloud-init: NoCloud seeds (label cidata); ignition: a bundle "
                                     "disk per node, labelled as the bundle's label:LABEL source says.")
                   ] = "cloud-init",
) -> None:
    """Write one NoCloud seed ISO per node (volume label cidata) with user-data, meta-data and the bundle."""
    try:
        with Progress(transient=True, console=Console(stderr=True), disable=json_output) as progress:
            task = progress.add_task("writing seed ISOs", total=None)
            if fmt == "ignition":
                if bundle is None:
                    raise InvalidInput([Problem(Location("--bundle"), "bundle", "--format ignition needs --bundle")])
                written = write_bundle_isos(output, bundle, lambda node: progress.advance(task))
            else:
                written = write_seed_isos(inventory, output, bundle, lambda node: progress.advance(task),
                                          MergeSpec(tuple(merge or ()), merge_dir))
    except KubehaError as exc:
        _report_error(exc)
        raise typer.Exit(int(exc.exit_code)) from None
    if json_output:
        typer.echo(json.dumps(written, indent=2, sort_keys=True))
        return
    for record in written:
        typer.echo(f"{record['node']}: {record['path']} ({record['bytes']:,} bytes)")
