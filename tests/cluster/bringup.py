"""Bring the cluster lab up from nothing, the way an operator's pipeline would, and time each step.

1. kubeha's side, through the real CLI: the inventory, a throwaway signing key, ``kubeha bundle pack`` with
   kubeha's images archive, ``kubeha gen seed-iso`` (one ISO per master, the bundle on it).
2. The node image (the cached node tree, imported) and the Kubernetes images archive (baked in for now).
3. Every master's container created with its seed, started and cabled; cloud-init and kubeha's installer
   run on each (the verdict is read from status.json).
4. The kubeadm stand-in: ``kubeadm init`` on m1, then the other masters join one at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cluster.k8s_images import ensure_k8s_images_tar
from cluster.lab import ClusterLab, inventory
from cluster.node_image import import_node_image
from cluster.node_tree import k8s_bin_dir, node_tree
from e2e.daemons import Daemon
from fixtures.images import ensure_images_tar
from kubeha.lab.base import LabError
from signature_cases import make_key


def kubeha(*args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "kubeha", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, check=False)
    if proc.returncode != 0:
        raise LabError(f"kubeha {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def make_documents(workdir: Path, profile: str, masters: int) -> Path:
    """Inventory, key, signed bundle and seed ISOs; return the ISO directory."""
    (workdir / "cluster.yaml").write_text(inventory("lab", masters, profile))
    key = make_key(workdir / "gpg", "lab")
    (workdir / "lab-public.asc").write_bytes(key.public())
    kubeha("bundle", "pack", "cluster.yaml", "--images", str(ensure_images_tar()), "--sign-key", key.fingerprint,
           "--gnupghome", str(key.home), "-o", "bundles", cwd=workdir)
    kubeha("gen", "seed-iso", "cluster.yaml", "--bundle", "bundles/lab.tar", "--keyring", "lab-public.asc",
           "-o", "isos", cwd=workdir)
    subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "all"], check=False, capture_output=True)
    return workdir / "isos"


def timed(lab: ClusterLab, what: str, step: Callable[[], object]) -> None:
    started = time.monotonic()
    step()
    lab.timings[what] = time.monotonic() - started


def prepare(dockerd: Daemon, workdir: Path, profile: str = "fast", masters: int = 3) -> ClusterLab:
    """Everything before power-on: documents, node image, images archive (cached artefacts built if missing)."""
    bins = k8s_bin_dir()
    tree = node_tree()
    k8s_images = ensure_k8s_images_tar()
    iso_dir = make_documents(workdir, profile, masters)
    lab = ClusterLab(dockerd, workdir, import_node_image(dockerd, tree), k8s_images, bins, masters)
    lab.documents(iso_dir)
    return lab


def boot(lab: ClusterLab) -> dict[str, dict[str, object]]:
    """Create, start and cable every master; wait for cloud-init on each; return kubeha's verdicts."""
    lab.network()
    for name in lab.nodes:
        lab.create(name)
    started = time.monotonic()
    for name in lab.nodes:
        lab.start(name)
    verdicts = {name: lab.wait_cloud_init(name) for name in lab.nodes}
    lab.timings["cloud-init on every master"] = time.monotonic() - started
    return verdicts


def form_cluster(lab: ClusterLab) -> None:
    """kubeadm init on the first master, then join the others one at a time (the kubeadm issue's stand-in)."""
    first, *others = lab.nodes
    timed(lab, f"kubeadm init {first}", lambda: lab.kubeadm_init(first))
    ca_hash = lab.ca_hash(first)
    for name in others:
        timed(lab, f"kubeadm join {name}", lambda name=name: lab.kubeadm_join(name, ca_hash))
    timed(lab, "until Ready and UP in haproxy", lab.wait_ready)


def bring_up(dockerd: Daemon, workdir: Path, profile: str = "fast", masters: int = 3) -> ClusterLab:
    """A running cluster lab; the caller must call ``lab.down()``. When bring-up fails, the nodes' journals and
    container logs are kept under ``workdir/failed`` and the lab is torn down before the error is raised."""
    lab = prepare(dockerd, workdir, profile, masters)
    started = time.monotonic()
    try:
        lab.verdicts = boot(lab)
        form_cluster(lab)
        lab.timings["start to three apiservers behind the VIP"] = time.monotonic() - started
    except Exception as exc:
        try:
            where = f"each node's journal, containers and their logs: {lab.dump(workdir / 'failed')}"
        except Exception as dump_error:  # noqa: BLE001 - the bring-up's error is the one to report
            where = f"no logs: {dump_error}"
        if os.environ.get("KUBEHA_KEEP_CLUSTER") != "1":  # a debugging aid: leave the nodes up to look at
            lab.down()
        raise LabError(f"{exc}\n({where})") from exc
    except BaseException:  # Ctrl-C, SIGTERM in the bench: tear down and go on stopping
        lab.down()
        raise
    return lab
