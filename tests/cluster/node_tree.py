"""The node tree of the cluster lab: Debian 12 with systemd, cloud-init and what kubelet needs, plus the
Kubernetes binaries built by k8s/build.py, their systemd units and the lab's containerd configuration.

The tree is built once into ``$KUBEHA_CACHE/cluster-node-<hash>/root`` (tests/fixtures/guest_tree.py's
``cached``: a temporary sibling renamed into place, a stamp written last) and keyed by everything it is made
from: the Debian package list, the files below and the sha256 of every binary in k8s/lock.json. Nodes are
containers of the image that ``docker import`` makes of it (tests/cluster/node_image.py).

Why Debian 12 and not 13: these machines boot cgroup v1 (hybrid), and systemd 256+ (Debian 13 has 257)
refuses to boot on a cgroup v1 host; Debian 12's systemd 252 boots there, like the qemu guest tree.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

from cluster import node_files
from fixtures import guest_tree as gt

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "k8s" / "lock.json"

# cloud-init must come from apt inside the chroot (debootstrap --include fails on python3-cffi). No kernel:
# nodes are containers. runc from Debian; containerd is the lock's 2.x.
NODE_PACKAGES = (
    "systemd-sysv", "dbus", "cloud-init", "gnupg", "gpgv", "curl", "ca-certificates", "openssh-client",
    "locales", "iproute2", "iptables", "nftables", "conntrack", "ethtool", "socat", "kmod", "util-linux",
    "mount", "runc", "procps", "zstd", "xz-utils", "ebtables",
)

# Units that only cost boot time or fail in a container.
NODE_MASKED = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
    "systemd-networkd-wait-online.service", "getty@tty1.service", "console-getty.service",
    "systemd-timesyncd.service", "systemd-hwdb-update.service", "systemd-udevd.service",
    "systemd-udev-trigger.service", "systemd-modules-load.service", "sys-kernel-config.mount",
    "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "systemd-resolved.service",
)


@functools.cache
def k8s_bin_dir() -> Path:
    """The directory of binaries k8s/build.py made for the current lock (built first when missing).

    Once per process: `build` checks every binary's sha256 against the lock (820 MB read), and the node tree,
    the images and the lab each ask."""
    build = [str(REPO / "k8s" / "build.py")]
    gt.run(["python3", *build, "build"])
    out = subprocess.run(["python3", *build, "path"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _install_binaries(root: Path, bins: Path) -> None:
    cni = {"loopback", "bridge", "ptp", "host-local", "portmap"}
    for binary in sorted(p for p in bins.iterdir() if not p.name.startswith(".")):
        if binary.name in ("etcd", "coredns", "pause", "kube-apiserver", "kube-controller-manager",
                           "kube-scheduler", "kube-proxy"):
            continue  # these run in images (tests/cluster/k8s_images.py), not on the node
        dest = root / ("opt/cni/bin" if binary.name in cni else "usr/local/bin") / binary.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(binary, dest)
        dest.chmod(0o755)


def _build_base(tmp: Path, mirror: str) -> None:
    """Debian 12 minbase plus NODE_PACKAGES, units masked: the slow part, cached on its own."""
    gt.require_tool("debootstrap", "debootstrap")
    root, log = tmp / "root", tmp / "build.log"
    gt.run(["debootstrap", "--variant=minbase", gt.SUITE, str(root), mirror], log=log)
    gt._write(root, "etc/dpkg/dpkg.cfg.d/01-kubeha-nodoc", gt.DPKG_EXCLUDES)
    gt._write(root, "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
    gt._write(root, "etc/default/locale", "LANG=C.UTF-8\n")
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    if gt.HOST_SOURCES.exists():
        shutil.copy(gt.HOST_SOURCES, root / "etc/apt/sources.list.d/debian.sources")
    else:
        gt._write(root, "etc/apt/sources.list", f"deb {gt.DEFAULT_MIRROR} {gt.SUITE} main\n")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    gt._in_chroot(root, log, "apt-get", "update")
    gt._in_chroot(root, log, "apt-get", "install", "-y", "--no-install-recommends", *NODE_PACKAGES)
    gt._in_chroot(root, log, "apt-get", "clean")
    (root / "usr/sbin/policy-rc.d").unlink()
    for sub in ("var/lib/apt/lists", "usr/share/man", "usr/share/info", "usr/share/doc"):
        shutil.rmtree(root / sub, ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    for unit in NODE_MASKED:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    gt._write(root, "etc/resolv.conf", "")
    gt._write(root, "etc/machine-id", "")  # made at first boot, one per node
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)


def node_base() -> Path:
    """The cached Debian part of the node tree (debootstrap and apt: minutes, rebuilt only when it changes)."""
    mirror = gt.host_mirror()
    parts = ("node-base", gt.SUITE, mirror, *NODE_PACKAGES, *NODE_MASKED, gt.DPKG_EXCLUDES)
    return gt.cached("cluster-base", gt.recipe_hash(*parts), lambda tmp: _build_base(tmp, mirror)) / "root"


def _build_node_tree(tmp: Path, base: Path, bins: Path) -> None:
    root = tmp / "root"
    gt.run(["cp", "-a", "--reflink=auto", str(base), str(root)])
    _install_binaries(root, bins)
    for rel, (text, mode) in node_files.FILES.items():
        gt._write(root, rel, text, mode)
    for unit in node_files.ENABLED_UNITS:
        wants = root / "etc/systemd/system/multi-user.target.wants" / unit
        wants.parent.mkdir(parents=True, exist_ok=True)
        wants.unlink(missing_ok=True)
        wants.symlink_to(f"/etc/systemd/system/{unit}")


def node_tree() -> Path:
    """Build (once per inputs) and return the root of the cached node tree (read-only by convention)."""
    base = node_base()
    bins = k8s_bin_dir()
    lock = json.loads(LOCK.read_text())
    parts = ("node", base.parent.name, json.dumps(lock["sha256"], sort_keys=True),
             json.dumps(node_files.FILES, sort_keys=True), *node_files.ENABLED_UNITS)
    return gt.cached("cluster-node", gt.recipe_hash(*parts), lambda tmp: _build_node_tree(tmp, base, bins)) / "root"
