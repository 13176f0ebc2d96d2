"""The lab's own cgroup: what the lab starts gets the CPU before the machine's other work, as on a node.

A node runs its control plane's static pods without a compiler or another test suite beside them; the lab
shares its machine (CI: 2 cores and other jobs). The kernel shares a contended CPU between top-level
entities: each process of the root cgroup is one, and containerd's namespace cgroup (every container of
every ``ctr``, ``/k8s.io``) is one more. Without weight, the lab's keepalived, haproxy and prober got a small
slice of it while a Go build ran, and their 0.1 s adverts and 100 ms probe timeouts failed for want of CPU, not
because of the configs (measured: flaps, two holders, a healthy holder losing the VIP). So the lab makes one
cgroup per run, weighted ``WEIGHT`` times the default, and starts everything in it: the containers under it
(``ctr run --cgroup``), its own helpers (stand-in apiservers, client, watch, address monitors, the host
runtime's daemons) in its ``helpers`` leaf. The weight only matters when the CPU is contended; the lab's
processes still share theirs with each other, as a node's would.

cgroup v1 (the cpu hierarchy, hybrid included) and v2 (``cpu.weight``, when the cpu controller is enabled for
the root's children). Where neither can be made (no write access), the lab runs as before and says so.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from pathlib import Path

WEIGHT = 16  # times the default (cpu.shares 1024, cpu.weight 100)
HELPERS = "helpers"


class LabCgroup:
    """One cgroup for a lab run; ``active`` once made, else ``problem`` says why not."""

    def __init__(self, name: str, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.name, self.root = name, root
        self.version = 1 if (root / "cpu" / "cpu.shares").is_file() else 2
        self.active = False
        self.problem = ""

    @property
    def base(self) -> Path:
        """The lab's cgroup directory in the hierarchy that weighs CPU."""
        return self.root / "cpu" / self.name if self.version == 1 else self.root / self.name

    def create(self) -> None:
        """Make the cgroup and weigh it; on failure keep ``problem`` and stay inactive."""
        try:
            if self.version == 2 and "cpu" not in (self.root / "cgroup.subtree_control").read_text().split():
                raise OSError("the cpu controller is not enabled for the root's children")
            self.base.mkdir()
            if self.version == 1:
                (self.base / "cpu.shares").write_text(str(1024 * WEIGHT))
            else:
                (self.base / "cpu.weight").write_text(str(100 * WEIGHT))
            (self.base / HELPERS).mkdir()
        except OSError as exc:
            self.problem = f"{type(exc).__name__}: {exc}"
            self.remove()
            return
        self.active = True

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started in the helpers cgroup (the shell moves itself there, then execs: same PID)."""
        if not self.active:
            return list(argv)
        procs = self.base / HELPERS / "cgroup.procs"
        return ["sh", "-c", f'echo $$ > {shlex.quote(str(procs))} && exec "$@"', "sh", *argv]

    def container_path(self, cid: str) -> str | None:
        """The cgroup path for ``ctr run --cgroup`` (relative to each hierarchy's root), or None."""
        return f"/{self.name}/{cid}" if self.active else None

    def leftovers(self) -> list[Path]:
        """The lab's cgroup directories that exist (v1: the ones runc made in every hierarchy too)."""
        tops = [self.base] if self.version == 2 else [d / self.name for d in self.root.iterdir() if d.is_dir()]
        return [top for top in tops if top.is_dir()]

    def remove(self, timeout: float = 5.0) -> list[Path]:
        """Remove the cgroup once its processes are gone; return what could not be removed."""
        deadline = time.time() + timeout
        for top in self.leftovers():
            for leaf in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                _rmdir(leaf, deadline)
            _rmdir(top, deadline)
        self.active = False
        return self.leftovers()


def _rmdir(path: Path, deadline: float) -> None:
    """Remove an empty cgroup directory; its last processes may still be exiting (EBUSY) until ``deadline``."""
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.time() > deadline:
                return
            time.sleep(0.05)
