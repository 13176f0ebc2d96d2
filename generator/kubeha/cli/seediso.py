"""``kubeha gen seed-iso``: one NoCloud seed ISO per node (the lead registers :func:`seed_iso` under ``gen``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from kubeha.cli.common import Session, check_output_dir, complete_inventory, session
from kubeha.deliver.seediso import write_seed_iso
from kubeha.errors import InvalidInput, Location, Problem


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


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in chunks (an ISO with a bundle can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_seed_isos(
    inventory: Path, output: Path, bundle: Path | None = None, done: Callable[[str], None] | None = None,
    session: Session | None = None,
) -> list[dict[str, object]]:
    """Generate every node's documents from ``inventory`` and write ``<output>/<node>.iso`` for each.

    With a bundle directory, each ISO also carries the bundle under ``/kubeha-bundle/``, and the node's
    user-data and meta-data come from the bundle's ``nodes/<node>/`` when it has them. ``done(node)`` is
    called after each ISO (for a progress bar).

    Returns:
        One record per node: node, path, size in bytes and SHA-256 of the ISO, sorted by node.
    """
    from kubeha.generate import build_documents, cloud_init_files  # the generator imports the rendering stack

    if bundle is not None and not bundle.is_dir():
        raise InvalidInput([Problem(Location(str(bundle)), "bundle", "not a directory (unpack the bundle tar)")])
    loaded, node_docs = build_documents(inventory)  # validates everything before anything is written
    if session is not None:
        session.warn(loaded.warnings)
    documents = {d.name: cloud_init_files(d) for d in node_docs}
    if bundle is not None:
        for node, docs in bundle_documents(bundle, sorted(documents)).items():
            documents[node] = {**documents[node], **docs}
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


def seed_iso(
    inventory: Annotated[Path, typer.Argument(help="Inventory file (INI hosts file or cluster YAML).",
                                              autocompletion=complete_inventory)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for <node>.iso files.")],
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Bundle directory to put on each ISO under /kubeha-bundle/.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")
                           ] = False,
) -> None:
    """Write one NoCloud seed ISO per node (volume label cidata) with user-data, meta-data and the bundle."""
    with session("gen seed-iso", as_json=json_output, writes=True) as s:
        check_output_dir(output)
        console = Console(stderr=True)
        with Progress(transient=True, console=console, disable=json_output or not console.is_terminal) as progress:
            task = progress.add_task("writing seed ISOs", total=None)
            written = write_seed_isos(inventory, output, bundle, lambda node: progress.advance(task), s)
        s.result = {"output": str(output), "isos": written}
        for record in written:
            s.out(f"{record['node']}: {record['path']} ({record['bytes']:,} bytes)")
