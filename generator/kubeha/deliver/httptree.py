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
them. Each node folder is built in a temporary directory inside ``out`` and renamed into place, so a server
never sees half a folder; ``out`` keeps kubeha's manifest and nothing kubeha did not write is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from kubeha import __version__
from kubeha.errors import InvalidInput, Location, OutputError, Problem
from kubeha.statefiles import replace_at

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


README = "README.txt"
MANIFEST = ".kubeha-manifest.json"  # the same record of what kubeha wrote as ``gen userdata``'s (kubeha.generate)
_TEMP = ".kubeha-tmp-"


def _write_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o640)


def _fill(root: Path, keys: dict[str, str], docs: dict[str, dict[str, bytes]], readme_text: str | None) -> None:
    for node, key in sorted(keys.items()):
        node_dir = root / key
        node_dir.mkdir(mode=0o750)
        node_dir.chmod(0o750)
        files = dict(docs[node])
        if "user-data" in files:
            files.setdefault("vendor-data", b"")
        for name, data in sorted(files.items()):
            _write_file(node_dir / name, data)
    if readme_text is not None:
        _write_file(root / README, readme_text.encode())


def _owned(out: Path) -> set[str]:
    """What an earlier run recorded in ``out``'s manifest (empty without a usable one)."""
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return set()
    entries = data.get("entries") if isinstance(data, dict) else None
    return {e for e in entries if isinstance(e, str) and e and "/" not in e and not e.startswith(".")} \
        if isinstance(entries, list) else set()


def _adoptable(path: Path) -> bool:
    """A node folder an older kubeha wrote before trees had a manifest: only tree documents in it."""
    try:
        return path.is_dir() and not path.is_symlink() and set(os.listdir(path)) <= set(KNOWN_FILES)
    except OSError:
        return False


def foreign_entries(out: Path, owned: set[str], keys: set[str]) -> list[str]:
    """Entries of ``out`` kubeha did not write (neither in the manifest nor adoptable node folders)."""
    try:
        names = os.listdir(out)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if n != MANIFEST and not n.startswith(_TEMP) and n not in owned
                  and not (n in keys and _adoptable(out / n)))


def write_http_tree(
    out: Path,
    docs: dict[str, dict[str, bytes]],
    *,
    key_by: str = "name",
    macs: dict[str, str] | None = None,
    force: bool = False,
    only: bool = False,
) -> dict[str, str]:
    """Write the static tree for NoCloud-net and Ignition into ``out``, node folder by node folder atomically.

    The -o rule of every kubeha output: ``out`` records what kubeha wrote (``.kubeha-manifest.json``); a
    directory holding anything else (a web root's index.html, another tree, pxe/vmlinuz) is refused unless
    ``force``, and even then those entries are left alone. Folders an earlier run wrote for nodes (or keys)
    that are gone are removed, never anything else. ``only`` (``--node X``): write these nodes' folders and
    touch nothing else (no pruning, README.txt kept).

    Args:
        out: the tree's root directory (created 0750 if missing).
        docs: node -> {document name -> bytes}; names from :data:`KNOWN_FILES`.
        key_by: ``"name"`` (directory per node name) or ``"mac"`` (per MAC address from ``macs``).
        macs: node -> MAC address, required when keying by MAC.
        force: write into a directory with entries kubeha did not write (leaving them alone).
        only: write just these nodes (see above).

    Returns:
        node -> directory name in the tree.

    Raises:
        InvalidInput: a bad node name, an unknown document, a missing, malformed or duplicate MAC.
        OutputError: ``out`` holds entries kubeha did not write (without ``force``), or cannot be written.
    """
    keys = _keys(docs, key_by, macs)
    owned = _owned(out)
    mine = set(keys.values()) | (set() if only else {README})
    foreign = foreign_entries(out, owned, set(keys.values()))
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputError(f"-o {out}: holds files kubeha did not write ({shown}); choose an empty or new "
                          "directory, or pass --force (they are left alone)")
    clash = sorted(mine & set(foreign))
    gone = set() if only else owned - mine - set(foreign)
    try:
        if not out.is_dir():
            out.mkdir(mode=0o750, parents=True)
        staging = Path(tempfile.mkdtemp(prefix=_TEMP, dir=out))
    except OSError as exc:
        raise OutputError(f"-o {out}: cannot write: {exc.strerror}") from None
    try:
        _fill(staging, {n: k for n, k in keys.items() if k not in clash}, docs,
              None if only or README in clash else readme(keys, docs))
        for name in sorted(os.listdir(staging)):
            with contextlib.suppress(FileNotFoundError):
                os.replace(out / name, staging / f".old-{name}")
            os.replace(staging / name, out / name)
        for name in sorted(gone):
            with contextlib.suppress(FileNotFoundError):
                os.replace(out / name, staging / f".gone-{name}")
        entries = sorted((owned - gone) | (mine - set(clash)))
        data = json.dumps({"written_by": f"kubeha {__version__}", "command": "http tree", "entries": entries},
                          indent=2, sort_keys=True).encode() + b"\n"
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            replace_at(fd, MANIFEST, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"-o {out}: cannot write: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return keys


