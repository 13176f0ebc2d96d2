# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Issue 21 item 6 on the node: a bundle medium that changes after the listing must not block the install.

The bundle is a directory source; the moment the real node script has listed it (its ``entries`` file
appears in the staging directory), ``images/images.tar`` is swapped for a FIFO that has a writer which never
writes. A blocking read would hang the install (and kubelet behind it) until its unit times out; the script
opens it non-blocking and fails closed at once: exit 1, the reason, no manifest, no image, nothing installed.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
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
