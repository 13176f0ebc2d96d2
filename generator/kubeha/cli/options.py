"""Options several commands share: the user's own user-data to merge (``--merge``, ``--merge-dir``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Format(StrEnum):
    """The documents made for each node (``gen userdata`` and ``bundle pack --format``)."""

    cloud_init = "cloud-init"
    ignition = "ignition"


class Target(StrEnum):
    """Where user-data goes (kubeha.deliver.targets.TARGETS; a test keeps the two lists equal)."""

    nocloud = "nocloud"
    aws = "aws"
    azure = "azure"
    openstack = "openstack"
    gce = "gce"
    vsphere = "vsphere"
    proxmox = "proxmox"
    generic = "generic"


MergeOpt = Annotated[list[Path] | None, typer.Option(
    "--merge", help="Your own user-data to merge into every node's (repeatable): a #cloud-config, a MIME "
    "multipart or a script part; lists append, yours first.", dir_okay=False)]
MergeDirOpt = Annotated[Path | None, typer.Option(
    "--merge-dir", help="Directory of user-data to merge: all.* for every node, <node>.* for one node.",
    file_okay=False)]
