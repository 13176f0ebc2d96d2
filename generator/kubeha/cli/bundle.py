"""``kubeha bundle pack|verify``: thin Typer commands over :mod:`kubeha.bundle` (mounted by kubeha.cli).

Exit codes: 0 ok, 1 invalid input or failure, 2 usage, 3 checksum/structure problem (mismatch, missing or
extra file, unsafe or truncated tar), 4 signature or trust problem (missing, bad, unknown, expired or revoked
key, unusable signing key at pack time, another cluster's bundle, a serial below --min-serial).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from kubeha.bundle import Advance, Expect, VerifyReport, bundle_size, verify_bundle
from kubeha.bundle.pack import Delivery, pack_inventory, refuse_other_cluster
from kubeha.bundle.signing import Signer
from kubeha.cli.common import Session, check_output_dir, complete_inventory, session
from kubeha.cli.options import Format, MergeDirOpt, MergeOpt, Target
from kubeha.deliver.userparts import MergeSpec
from kubeha.errors import InvalidInput, Location, Problem
from kubeha.model import Cluster
from kubeha.recipe import Recipe, load_recipe

app = typer.Typer(help="Pack and verify signed offline bundles.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False, rich_markup_mode=None, add_completion=False)

_err = Console(stderr=True)


class Runtime(StrEnum):
    """The container runtime nodes import the images into."""

    containerd = "containerd"
    docker = "docker"


def check_archive(images: Path, recipe: Recipe, cluster: Cluster) -> None:
    """The archive must hold every image of the recipe and every image the static pods run, and nothing else."""
    from kubeha.bundle.archive import inspect_archive  # noqa: PLC0415

    refs = {ref for info in inspect_archive(images) for ref in info.refs}
    wanted = {r: f"recipe {recipe.path}" for r in recipe.refs}
    wanted |= {cluster.keepalived_image: "keepalived_image", cluster.haproxy_image: "haproxy_image"}
    problems = [Problem(Location(str(images)), "images", f"lacks {ref} (named by {why})")
                for ref, why in sorted(wanted.items()) if ref not in refs]
    problems += [Problem(Location(str(images)), "images", f"holds {ref!r}, which neither the recipe {recipe.path} "
                         "nor a static pod names: every image in a bundle is signed and imported on the nodes")
                 for ref in sorted(refs, key=repr) if ref not in wanted]
    if problems:
        raise InvalidInput(problems)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], Advance]]:
    """A rich progress bar on stderr; yields ``phase(description, total) -> advance``."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   console=_err, transient=True, disable=not (enabled and _err.is_terminal))

    def phase(description: str, total: int) -> Advance:
        task = bar.add_task(description, total=total)
        return lambda n: bar.advance(task, n)

    with bar:
        yield phase


def _signer(sign_key: str, gnupghome: Path | None) -> Signer:
    """The signing key, from --gnupghome, else $GNUPGHOME, else ~/.gnupg (always passed explicitly)."""
    home = gnupghome or Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
    return Signer(home, sign_key)


@app.command()
def pack(
    inventory: Annotated[Path, typer.Argument(help="Inventory (INI or YAML).", dir_okay=False,
                                              autocompletion=complete_inventory)],
    images: Annotated[Path, typer.Option("--images", help="docker-archive with the images.", dir_okay=False)],
    sign_key: Annotated[str, typer.Option("--sign-key", help="Key id, fingerprint or email of the signer.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory.")] = Path("bundles/out"),
    gnupghome: Annotated[Path | None, typer.Option("--gnupghome", help="GnuPG home with the secret key "
                                                   "(default $GNUPGHOME or ~/.gnupg).")] = None,
    bundle_source: Annotated[str, typer.Option("--bundle-source", help="Where nodes find the bundle: cidata, "
                                               "an absolute path or an http(s) URL.")] = "cidata",
    runtime: Annotated[Runtime, typer.Option("--runtime", help="Container runtime on the nodes.")
                       ] = Runtime.containerd,
    images_json: Annotated[Path | None, typer.Option("--images-json", help="Image metadata to ship.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Bundle name (default: cluster name).")] = None,
    serial: Annotated[int | None, typer.Option("--serial", help="Bundle serial (default: one more than the last "
                                               "packed for this inventory; never lower).")] = None,
    recipe: Annotated[Path | None, typer.Option("--recipe", dir_okay=False, help="Bundle recipe the archive "
                                                "must match (default: ./bundles/default.yaml, else the one "
                                                "shipped with kubeha).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result on stdout.")] = False,
    merge: MergeOpt = None,
    merge_dir: MergeDirOpt = None,
    target: Annotated[Target, typer.Option("--target", help="Fit every node's user-data to this target's "
                                               "budget (as gen userdata --target does), or refuse with per-file "
                                               "sizes.")] = Target.nocloud,
    fmt: Annotated[Format, typer.Option("--format", help="cloud-init, or ignition: also a config.ign per node "
                                            "for Flatcar / Fedora CoreOS (install script under /opt, --merge takes "
                                            "Ignition configs).")] = Format.cloud_init,
    new_cluster_id: Annotated[bool, typer.Option("--new-cluster-id", help="Make a new cluster id even where an "
                                                 "old one evidently existed (a serial file, a bundle of this "
                                                 "cluster in OUTPUT): its nodes refuse the new id's bundles.")
                              ] = False,
    root_key: Annotated[Path | None, typer.Option("--root-key", dir_okay=False, help="The root's public key: "
                                                  "the user-data pins it, and the bundle ships the signing-key "
                                                  "list beside INVENTORY (kubeha keys certify), which must "
                                                  "certify --sign-key.")] = None,
) -> None:
    """Pack a signed, reproducible offline bundle: OUTPUT/NAME/ and OUTPUT/NAME.tar.

    The bundle carries the cluster id (INVENTORY.cluster-id, made once) and a serial (the last one is kept in
    INVENTORY.bundle-serial); the nodes' user-data carries the key fingerprint, the cluster id, the serial
    as the lowest one they accept, and the download size bound. The passphrase of a protected key is read
    from $KUBEHA_SIGN_PASSPHRASE (never an option).
    """
    with session("bundle pack", as_json=as_json, writes=True) as s:
        check_output_dir(output)
        signer = _signer(sign_key, gnupghome)
        cluster = _check_inputs(s, inventory, images, load_recipe(recipe))
        refuse_other_cluster(output, name or cluster, cluster)  # before the cluster id or anything is made
        signer.probe()  # a locked or unusable key fails here, before the cluster id or any output exists
        with _progress(not as_json) as phase:
            result = pack_inventory(inventory, images, signer, output, source=bundle_source, runtime=runtime.value,
                                    images_json=images_json, name=name, serial=serial, progress=phase,
                                    delivery=Delivery(fmt.value, target.value,
                                                      MergeSpec(tuple(merge or ()), merge_dir)),
                                    new_cluster_id=new_cluster_id, note=s.note, root_key=root_key)
        s.result = {"name": result.name, "directory": str(result.directory), "tarball": str(result.tarball),
                    "files": result.files, "bytes": result.size, "tar_bytes": result.tar_size,
                    "signer": result.fingerprint, "serial": result.serial, "cluster_id": result.cluster_id}
        s.out(f"packed {result.directory}/ and {result.tarball}: serial {result.serial}, {result.files} "
              f"signed files, {result.size} bytes, signed by {result.fingerprint}")


def _check_inputs(s: Session, inventory: Path, images: Path, recipe: Recipe) -> str:
    """Validate the inventory (printing its warnings) and the archive against the recipe; the cluster's name."""
    from kubeha.generate import load_cluster  # noqa: PLC0415

    loaded = load_cluster(inventory)
    s.warn(loaded.warnings)
    check_archive(images, recipe, loaded.cluster)
    return loaded.cluster.name


def _print_report(s: Session, report: VerifyReport) -> None:
    """Human output: one OK line on stdout, or every problem on stderr (and the exit code to end with)."""
    if report.ok:
        certified = f" (certified by signing-key list version {report.keys_version})" if report.keys_version else ""
        s.out(f"OK {report.bundle}: cluster {report.cluster} ({report.cluster_id}) serial {report.serial}, "
              f"signature by {report.signer}{certified}, {report.files} files match")
        return
    lines = [line for error in report.errors for line in error.splitlines()]
    for line in lines:
        typer.echo(f"kubeha: error: {line}", err=True)
    if report.exit_code == 4 and report.signer:  # the signature is good: the bundle is not for this use
        verdict = f"good signature by {report.signer}, but not accepted"
    else:
        verdict = ("signature" if report.exit_code == 4 else "checksum") + " verification failed"
    typer.echo(f"kubeha: FAILED {report.bundle}: {verdict}", err=True)
    s.fail(report.exit_code, lines)


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory or .tar.")],
    keyring: Annotated[Path, typer.Option("--keyring", help="Trusted public key(s), armored or binary.",
                                          dir_okay=False)],
    cluster: Annotated[str | None, typer.Option("--cluster", help="Require this cluster (name or id).")] = None,
    min_serial: Annotated[int, typer.Option("--min-serial", help="Refuse a bundle with a lower serial.")] = 0,
    min_keys_version: Annotated[int, typer.Option("--min-keys-version", help="The newest signing-key list "
                                                  "version seen (a node's /var/lib/kubeha/keys/KEYS): refuse an "
                                                  "older list, or a bundle without one.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report on stdout.")] = False,
) -> None:
    """Verify a bundle offline: signature first (exit 4), then cluster and serial (exit 4), then every sum (exit 3).

    --keyring holds the pinned key(s): the root. A bundle that carries a signing-key list (KEYS, KEYS.asc,
    KEYS.pub) must have it signed by a pinned key, not expired, and SHA256SUMS signed by a key it certifies;
    one without a list must be signed by a pinned key itself.

    Only a plain tar in kubeha's canonical form is read; links, devices, sparse files, duplicates, unsafe
    names and members the signed list does not name or sizes it does not give are refused (exit 3) before
    any large member is read. Mismatched, missing and extra files are named.
    """
    with session("bundle verify", as_json=as_json) as s:
        with _progress(not as_json) as phase:
            report = verify_bundle(bundle, keyring, phase("verify", bundle_size(bundle)),
                                   Expect(cluster, min_serial, min_keys_version=min_keys_version))
        s.result = report.to_dict()
        _print_report(s, report)
