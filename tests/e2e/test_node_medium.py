# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Issue 21 item 6 on the node: a bundle medium that changes after the listing must not block the install, and
removable media are mounted ro,nosuid,nodev,noexec.

The bundle is a directory source; the moment the real node script has listed it (its ``entries`` file
appears in the staging directory), ``images/images.tar`` is swapped for a FIFO that has a writer which never
writes. A blocking read would hang the install (and kubelet behind it) until its unit times out; the script
opens it non-blocking and fails closed at once: exit 1, the reason, no manifest, no image, nothing installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_ignition_bundle import by_label, labelled_image
from test_node_install import Node, Packed, assert_failed, containerd, node, packed  # noqa: F401

from test_signing import gpg_keys  # noqa: F401

pytestmark = pytest.mark.e2e


def test_fifo_swapped_in_after_the_listing_fails_at_once(node: Node, packed: Packed) -> None:
    source = node.root / "srv/kubeha"
    shutil.copytree(packed.bundle.directory, source)
    node.set_source("/srv/kubeha")
    staging = node.root / "var/lib/kubeha/staging"
    target = source / "images/images.tar"
    held: list[int] = []
    done = threading.Event()

    def swap_after_listing() -> None:
        while not done.is_set():
            if list(staging.glob("work.*/entries")):
                fifo = target.with_name(".fifo")
                os.mkfifo(fifo, 0o644)
                held.append(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))  # a writer that never writes
                os.replace(fifo, target)
                return
            time.sleep(0.0005)

    thread = threading.Thread(target=swap_after_listing, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        proc = node.run(timeout=120)
    finally:
        done.set()
        thread.join(timeout=10)
        for fd in held:
            os.close(fd)
    assert held, "the swap never happened"
    assert time.monotonic() - start < 60
    assert_failed(node, proc, "verify", "cannot copy images/images.tar into the staging directory")
    assert not (node.root / "var/lib/kubeha/installed").exists()


def test_label_medium_is_mounted_nosuid_nodev_noexec(node: Node, packed: Packed, tmp_path: Path) -> None:
    """The real mount of a labelled disk, read back from the kernel (/proc/self/mounts) while it is mounted."""
    node.set_source("label:KUBEHA")
    links = by_label(tmp_path, labelled_image(tmp_path, packed.bundle.directory, "tar"))
    wrap, log = tmp_path / "wrap", tmp_path / "mounts.log"
    wrap.mkdir()
    (wrap / "mount").write_text('#!/bin/sh\n/usr/bin/mount "$@" || exit\n'
                                f'for last; do :; done; grep " $last " /proc/self/mounts >>{log}\n')
    (wrap / "mount").chmod(0o755)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "KUBEHA_ROOT": str(node.root), "KUBEHA_CONSOLE": str(node.console),
           "KUBEHA_BY_LABEL": str(links), "CONTAINERD_ADDRESS": str(node.daemon.socket)}
    # a private mount namespace whose /usr/local/sbin (first on the script's PATH) holds the observing wrapper
    script = node.root / "usr/local/sbin/kubeha-install"
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           f'mount --bind {wrap} /usr/local/sbin && exec sh {script}'], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [line] = log.read_text().splitlines()
    options = set(line.split()[3].split(","))
    assert {"ro", "nosuid", "nodev", "noexec"} <= options, line
