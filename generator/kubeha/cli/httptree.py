"""``kubeha gen http-tree``: a signed bundle's node documents as the static tree PXE-booted nodes fetch.

The HTTP counterpart of ``gen seed-iso --bundle``: the bundle is verified into a private copy first (exit 3/4
on failure, nothing written), then every node's documents from that copy (user-data, meta-data, and
config.ign when packed with ``--format ignition``) go into the tree ``kubeha.deliver.httptree`` lays out,
keyed by node name or MAC, with a README.txt naming the kernel arguments. The bundle itself is served
wherever its ``--bundle-source`` URL points (or found on a labelled disk or path): it is not copied here.
"""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kubeha.cli.common import Session, check_output_dir, complete_inventory, session
from kubeha.cli.seediso import _private_parent, _verified_copy, install_source
from kubeha.errors import InvalidInput, Location, Problem
from kubeha.model import Master, Worker


class KeyBy(StrEnum):
    """What names a node's directory in the tree."""

    name = "name"
    mac = "mac"


def bundle_tree_documents(verified: Path, nodes: list[str]) -> dict[str, dict[str, bytes]]:
    """Each node's documents from a verified bundle copy (every node must have its cloud-init pair)."""
    from kubeha.deliver.httptree import KNOWN_FILES  # noqa: PLC0415

    docs: dict[str, dict[str, bytes]] = {}
    problems = []
    for node in nodes:
        folder = verified / "nodes" / node
        docs[node] = {name: (folder / name).read_bytes() for name in KNOWN_FILES if (folder / name).is_file()}
        if not {"user-data", "meta-data"} <= set(docs[node]):
            problems.append(Problem(Location(f"nodes/{node}"), "bundle", "no user-data/meta-data for this node"))
    if problems:
        raise InvalidInput(problems)
    return docs


def pxe_reach(bundle: Path, source: str) -> Problem | None:
    """What is wrong with a bundle source for PXE-booted nodes: they have no seed ISO, so no cidata disk."""
    if source != "cidata":
        return None  # a URL; or a labelled disk or a path, which the nodes can be given
    return Problem(Location(str(bundle)), "install.source", "the bundle was packed with --bundle-source cidata: "
                   "PXE-booted nodes have no cidata disk and would never find it; pack it with --bundle-source "
                   "http(s)://HOST/PATH (or label:LABEL, or a path the nodes have), or pass --force")


def write_bundle_tree(inventory: Path, bundle: Path, keyring: Path, output: Path, key_by: str,
                      force: bool = False, s: Session | None = None) -> dict[str, str]:
    """Verify ``bundle`` and write its node documents as an HTTP tree at ``output``; node -> directory.

    A bundle whose source PXE nodes cannot reach is refused, or with ``force`` written with a warning.
    """
    from kubeha.deliver.httptree import write_http_tree  # noqa: PLC0415
    from kubeha.generate import load_cluster  # noqa: PLC0415

    cluster = load_cluster(inventory).cluster
    nodes: list[Master | Worker] = [*cluster.masters, *cluster.workers]
    with tempfile.TemporaryDirectory(prefix=".kubeha-tree-", dir=_private_parent(output)) as tmp:
        verified = _verified_copy(inventory, bundle, keyring, Path(tmp))
        problem = pxe_reach(bundle, install_source(verified))
        if problem is not None and not force:
            raise InvalidInput([problem])
        if problem is not None and s is not None:
            s.warn([problem])
        docs = bundle_tree_documents(verified, [n.name for n in nodes])
        return write_http_tree(output, docs, key_by=key_by, macs={n.name: n.mac for n in nodes if n.mac},
                               force=force)


def http_tree(
    inventory: Annotated[Path, typer.Argument(help="Inventory the bundle was packed from.",
                                              autocompletion=complete_inventory)],
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle tar or directory (verified first).")],
    keyring: Annotated[Path, typer.Option("--keyring", help="Trusted public key(s) for --bundle.", dir_okay=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The tree's root (kubeha's entries in it are "
                                         "replaced; anything else is refused unless --force).")],
    key_by: Annotated[KeyBy, typer.Option("--key-by", help="What names each node's directory.")] = KeyBy.name,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")
                       ] = False,
    force: Annotated[bool, typer.Option("--force", help="Write into a directory holding files kubeha did not "
                                        "write (they are left alone), and write the tree even for a bundle whose "
                                        "source PXE nodes cannot reach (cidata), with a warning.")] = False,
) -> None:
    """Write a verified bundle's node documents (cloud-init and config.ign) as a tree for an HTTP server."""
    with session("gen http-tree", as_json=as_json, writes=True) as s:
        check_output_dir(output)
        dirs = write_bundle_tree(inventory, bundle, keyring, output, key_by.value, force, s)
        s.result = {"output": str(output), "nodes": {node: str(output / key) for node, key in dirs.items()}}
        for node, key in dirs.items():
            s.out(f"{node}: {output / key}/")
