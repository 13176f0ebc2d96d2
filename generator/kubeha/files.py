"""The unit every output format is built from: one file to place on a node."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class RenderedFile:
    """A file destined for a node: absolute path, text content, octal mode and ``user:group`` owner."""

    path: str
    content: str
    mode: int = 0o644
    owner: str = "root:root"

    @property
    def mode_str(self) -> str:
        """The mode as cloud-init and humans write it, e.g. ``'0600'``."""
        return f"0{self.mode:03o}"


@dataclass(frozen=True)
class SystemdUnit:
    """A systemd unit a node needs (Ignition enables it natively; cloud-init writes it as a file)."""

    name: str
    content: str
    enabled: bool = True


@dataclass(frozen=True)
class NodeNetwork:
    """Static addressing for the node's provisioning NIC (a NoCloud network-config is made from it)."""

    interface: str
    address: str  # CIDR, e.g. 198.18.0.11/24
    gateway: str
    dns: tuple[str, ...] = ()
    mac: str | None = None


@dataclass(frozen=True)
class NodeDocument:
    """Everything one node gets, independent of the output format (cloud-init or Ignition).

    ``files`` land first; ``first_boot`` commands (argv lists) then run once, in order, on first boot
    (cloud-init ``runcmd``); ``units`` are installed and enabled (Ignition ``systemd.units``).
    """

    name: str
    hostname: str
    role: str  # "master" or "worker"
    address: str
    files: tuple[RenderedFile, ...]
    units: tuple[SystemdUnit, ...] = ()
    first_boot: tuple[tuple[str, ...], ...] = ()
    mac: str | None = None  # the provisioning NIC's MAC, lowercase colon form, when the inventory gives it
    network: NodeNetwork | None = None  # set when the inventory gives a gateway
    cluster: str = ""  # the cluster's name (part of the node's stable NoCloud instance-id)
