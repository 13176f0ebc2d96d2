"""``kubeha keys certify``: the offline root key signs the list of keys that may sign a cluster's bundles.

Exit codes: 0 ok, 1 invalid input or failure (no such key, bad list beside the inventory), 4 the root key
cannot sign (revoked, expired, not yet valid).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from kubeha.cli.common import complete_inventory, session

app = typer.Typer(help="Certify the keys that sign a cluster's bundles (offline root key).", no_args_is_help=True,
                  pretty_exceptions_show_locals=False, rich_markup_mode=None, add_completion=False)


@app.callback()
def keys() -> None:
    """Certify the keys that sign a cluster's bundles (offline root key)."""


@app.command()
def certify(
    inventory: Annotated[Path, typer.Argument(help="Inventory (INI or YAML).", dir_okay=False,
                                              autocompletion=complete_inventory)],
    root_key: Annotated[str, typer.Option("--root-key", help="Key id, fingerprint or email of the root (its "
                                          "secret key signs the list).")],
    key: Annotated[list[str], typer.Option("--key", help="A key that may sign bundles from now on (repeat it; "
                                           "a key not named is retired). Its public key must be in the home.")],
    expires: Annotated[int, typer.Option("--expires", help="Days the list stays valid (1-3650): a node that "
                                         "misses a later list trusts this one at most that long.")] = 365,
    gnupghome: Annotated[Path | None, typer.Option("--gnupghome", help="GnuPG home with the root's secret key "
                                                   "(default $GNUPGHOME or ~/.gnupg).")] = None,
    new_cluster_id: Annotated[bool, typer.Option("--new-cluster-id", help="Make a new cluster id even where an "
                                                 "old one evidently existed (see bundle pack).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result on stdout.")] = False,
) -> None:
    """Write the next signing-key list beside INVENTORY: INVENTORY.keys, .keys.asc (root's signature), .keys.pub.

    The version is one more than the list there (1 for the first); only the keys named by --key are certified,
    so leaving a key out retires it: once a node has installed a bundle carrying the new list, it refuses
    every bundle signed by a retired key. `bundle pack --root-key ROOT-PUBLIC.asc` ships the list. The cluster
    id is made here when there is none yet. The passphrase of a protected root key is read from
    $KUBEHA_SIGN_PASSPHRASE.
    """
    from kubeha.bundle import identity  # noqa: PLC0415 - GnuPG only when used
    from kubeha.bundle.certify import certify as do_certify  # noqa: PLC0415
    from kubeha.bundle.keylist import utc  # noqa: PLC0415
    from kubeha.bundle.signing import Signer  # noqa: PLC0415
    from kubeha.generate import load_cluster  # noqa: PLC0415

    with session("keys certify", as_json=as_json, writes=True) as s:
        home = gnupghome or Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
        loaded = load_cluster(inventory)
        s.warn(loaded.warnings)
        cluster = loaded.cluster.name
        cid, fresh = identity.plan_cluster_id(inventory, cluster, inventory.parent, cluster, new=new_cluster_id)
        root = Signer(home, root_key)
        root.check_usable(root.signature_at())
        if fresh:
            identity.record_cluster_id(inventory, cluster, cid, s.note)
        done = do_certify(inventory, cid, root, key, expires, s.note)
        listed = done.keys
        s.result = {"version": listed.version, "cluster_id": listed.cluster_id, "expires": utc(listed.expires),
                    "keys": list(listed.keys), "root": done.root, "files": [str(p) for p in done.paths.values()]}
        s.out(f"certified {', '.join(listed.keys)} in {done.paths['KEYS']}: signing-key list version "
              f"{listed.version} of cluster {listed.cluster_id}, expires {utc(listed.expires)}, signed by root "
              f"{done.root}")
