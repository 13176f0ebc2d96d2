"""The node image: ``docker import`` of the cached node tree, with systemd's container conventions.

``ENV container=docker`` tells systemd it runs in a container (SIGRTMIN+3, systemd's halt signal, is set per
``docker stop`` shuts a node down cleanly; the entrypoint makes cgroups writable and execs systemd
(tests/cluster/node_files.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from e2e.daemons import Daemon

CHANGES = (
    "ENV container=docker",
    'ENTRYPOINT ["/usr/local/sbin/kubeha-lab-entrypoint"]',
)


def import_node_image(dockerd: Daemon, tree: Path) -> str:
    """Import ``tree`` into ``dockerd`` as kubeha.local/lab/node:<the tree's cache key>; return the ref."""
    ref = f"kubeha.local/lab/node:{tree.parent.name.rsplit('-', 1)[-1]}"
    changes = [arg for change in CHANGES for arg in ("--change", change)]
    tar = subprocess.Popen(["tar", "-C", str(tree), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    try:
        subprocess.run(["docker", "import", *changes, "-", ref], stdin=tar.stdout, env=dockerd.env(),
                       capture_output=True, check=True, timeout=600)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(timeout=60)
    if tar.returncode != 0:
        raise RuntimeError(f"tar of {tree} failed ({tar.returncode})")
    return ref
