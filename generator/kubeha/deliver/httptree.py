"""A static tree an HTTP server hands to PXE-booted nodes: NoCloud-net and Ignition both read from it.

Layout, one directory per node keyed by node name or by MAC address (``aa-bb-cc-dd-ee-ff``, the form iPXE's
``${net0/mac:hexhyp}`` prints)::

    README.txt                 kernel arguments to set, per node
    <key>/meta-data            what cloud-init's NoCloud-net fetches from ``s=http://SERVER/<key>/``
    <key>/user-data            (the same)
    <key>/vendor-data          (the same; always written, empty if absent: cloud-init asks for it, with retries)
    <key>/network-config       optional
    <key>/config.ign           what Ignition fetches from ``ignition.config.url``

Files are 0640 and directories 0750 (user-data carries the VRRP secret): the web server's group must read
them. The tree is built beside ``out`` and renamed into place, so a server never sees half a tree.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from kubeha.errors import InvalidInput, Location, Problem

KNOWN_FILES = ("meta-data", "user-data", "vendor-data", "network-config", "config.ign")
_SAFE_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAC = re.compile(r"[0-9a-f]{2}([:-]?[0-9a-f]{2}){5}")
SERVER = "http://SERVER"


def normalise_mac(mac: str) -> str | None:
    """``AA:BB:CC:DD:EE:FF`` (or with dashes, or bare hex) -> ``aa-bb-cc-dd-ee-ff``; None if not a MAC."""
    text = mac.strip().lower()
    if not _MAC.fullmatch(text):
        return None
    digits = text.replace(":", "").replace("-", "")
    return "-".join(digits[i : i + 2] for i in range(0, 12, 2))


def _keys(docs: dict[str, dict[str, bytes]], key_by: str, macs: dict[str, str] | None) -> dict[str, str]:
    """Map node -> directory name, collecting every problem first."""
    problems: list[Problem] = []
    keys: dict[str, str] = {}
    if key_by not in ("name", "mac"):
        raise InvalidInput([Problem(Location("--key-by"), "key_by", f"must be 'name' or 'mac', not {key_by!r}")])
    for node in sorted(docs):
        where = Location(node)
        if not _SAFE_NODE.fullmatch(node):
            problems.append(Problem(where, "name", f"node name {node!r} cannot be a URL path segment"))
        unknown = sorted(set(docs[node]) - set(KNOWN_FILES))
        problems += [Problem(where, name, "unknown document name") for name in unknown]
        if key_by == "name":
            keys[node] = node
            continue
        mac = normalise_mac((macs or {}).get(node, ""))
        if mac is None:
            problems.append(Problem(where, "mac", f"no valid MAC address for node {node!r}"))
        elif mac in keys.values():
            problems.append(Problem(where, "mac", f"MAC {mac} is used by another node"))
        else:
            keys[node] = mac
    if problems:
        raise InvalidInput(problems)
    return keys


def kernel_arguments(key: str, docs: dict[str, bytes]) -> dict[str, list[str]]:
    """The kernel command-line arguments that point one node at its directory, per provisioning agent."""
    args: dict[str, list[str]] = {}
    if "user-data" in docs:
        args["cloud-init"] = [f"ds=nocloud-net;s={SERVER}/{key}/"]
    if "config.ign" in docs:
        # Fedora CoreOS spelling; Flatcar takes flatcar.first_boot=1 instead of the first two.
        args["ignition"] = ["ignition.firstboot", "ignition.platform.id=metal",
                            f"ignition.config.url={SERVER}/{key}/config.ign"]
    return args


def readme(keys: dict[str, str], docs: dict[str, dict[str, bytes]]) -> str:
    """README.txt: how to serve the tree and which kernel arguments each node needs."""
    lines = [
        "kubeha HTTP provisioning tree",
        "",
        "Serve this directory as the web root of a plain static HTTP server (nginx, httpd, python3 -m http.server),",
        "replace SERVER below by its address (host[:port]) and add each node's arguments to its kernel command line",
        "(pxelinux APPEND, iPXE kernel, GRUB linux). In grub.cfg quote the ds= argument ('ds=nocloud-net;s=...'):",
        "';' separates commands there; pxelinux and iPXE take it as is.",
        "",
        "cloud-init (NoCloud-net) fetches meta-data, user-data and vendor-data from the s= URL; it needs the",
        "network up in the initramfs or early boot (ip=dhcp or a static ip=). Ignition fetches config.ign on",
        "first boot: the arguments below are Fedora CoreOS's; on Flatcar use flatcar.first_boot=1 and",
        "ignition.config.url=... Files are mode 0640: give the web server's group read access.",
        "",
        "HTTP has no client authentication: anyone who reaches the server reads every node's user-data (with a",
        "classic cluster's VRRP secret) and config.ign; MAC keys are no secret. Serve it only on the provisioning",
        "network, allow each node's address only its own directory, take it down after the install, and move",
        "this README.txt out of the web root (it names every node's directory).",
        "",
    ]
    if any(key != node for node, key in keys.items()):
        lines += ["Directories are keyed by MAC address: with iPXE use s=http://SERVER/${net0/mac:hexhyp}/", ""]
    for node in sorted(keys):
        lines.append(f"{node} ({keys[node]}/):")
        for agent, args in kernel_arguments(keys[node], docs[node]).items():
            lines.append(f"  {agent + ':':12}{' '.join(args)}")
        lines.append("")
    return "\n".join(lines)


def _write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o640)


def _fill(root: Path, keys: dict[str, str], docs: dict[str, dict[str, bytes]]) -> None:
    for node, key in sorted(keys.items()):
        node_dir = root / key
        node_dir.mkdir(mode=0o750)
        files = dict(docs[node])
        if "user-data" in files:
            files.setdefault("vendor-data", b"")
        for name, data in sorted(files.items()):
            _write_file(node_dir / name, data)
    _write_file(root / "README.txt", readme(keys, docs).encode())


def write_http_tree(
    out: Path,
    docs: dict[str, dict[str, bytes]],
    *,
    key_by: str = "name",
    macs: dict[str, str] | None = None,
) -> dict[str, str]:
    """Write the static tree for NoCloud-net and Ignition, replacing ``out`` atomically.

    Args:
        out: the tree's root directory (replaced as a whole).
        docs: node -> {document name -> bytes}; names from :data:`KNOWN_FILES`.
        key_by: ``"name"`` (directory per node name) or ``"mac"`` (per MAC address from ``macs``).
        macs: node -> MAC address, required when keying by MAC.

    Returns:
        node -> directory name in the tree.

    Raises:
        InvalidInput: a bad node name, an unknown document, a missing, malformed or duplicate MAC.
    """
    keys = _keys(docs, key_by, macs)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new."))
    try:
        staging.chmod(0o750)
        _fill(staging, keys, docs)
        _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return keys


def _swap_in(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging``; on failure the old tree is put back."""
    if not out.exists():
        os.replace(staging, out)
        return
    holder = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
    try:
        os.replace(out, holder / "tree")
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(holder / "tree", out)
            raise
    finally:
        shutil.rmtree(holder, ignore_errors=True)
