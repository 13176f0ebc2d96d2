"""Render one node's files from the Jinja2 templates in templates/ and the context from context.py.

Templates only print and loop; a missing variable is an error (StrictUndefined), never an empty string.
YAML documents (the static pods) are built as data in manifests.py, not templated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from kubeha import manifests, resources
from kubeha.context import (
    CHECK_SCRIPT,
    HAPROXY_CFG,
    KEEPALIVED_CONF,
    MANIFESTS_DIR,
    PROBER_SCRIPT,
    STAGED_MANIFESTS_DIR,
    master_context,
)
from kubeha.files import NodeDocument, NodeNetwork, RenderedFile, SystemdUnit
from kubeha.model import Cluster, Master, Worker

INSTALL_SCRIPT = "/usr/local/sbin/kubeha-install"
# Flatcar's /usr is read-only (a verified image): Ignition nodes get the same script under /opt.
IGNITION_INSTALL_SCRIPT = "/opt/kubeha/bin/kubeha-install"
INSTALL_UNIT = "kubeha-install.service"
INSTALL_ENV = "/etc/kubeha/install.env"
BUNDLE_KEY = "/etc/kubeha/bundle-key.asc"
CONTROL_PLANE_ENV = "/etc/kubeha/control-plane.env"


@dataclass(frozen=True)
class BundleRef:
    """How a node finds and trusts its offline bundle (set when documents are packed into a bundle)."""

    public_key: str  # ASCII-armored OpenPGP public key that signed SHA256SUMS
    source: str = "cidata"  # "cidata", a local path, or an http(s) URL
    runtime: str = "containerd"  # or "docker"
    script: str = INSTALL_SCRIPT  # where the install script lands (IGNITION_INSTALL_SCRIPT for Ignition)
    # The trust anchor (issue 9): the node accepts only a signature whose primary key is one of these
    # fingerprints, a bundle of this cluster id, with a serial at least min_serial, downloads up to max_bytes.
    fingerprints: tuple[str, ...] = ()
    cluster_id: str = ""
    min_serial: int = 0
    max_bytes: int = 0
    keys_version: int = 0  # root mode: the signing-key list version at packing (a node refuses older lists)


def templates_dir() -> Path:
    """The templates/ folder (the package's kubeha.templates data, via importlib.resources)."""
    return resources.templates_dir()


@cache
def environment() -> jinja2.Environment:
    """The one Jinja environment: strict, newline-preserving, block-trimming."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - these are config files, not HTML
    )


def render_template(dest: str, context: dict[str, Any]) -> str:
    """Render the template that produces ``dest`` (templates mirror where files land, plus ``.j2``)."""
    return environment().get_template(dest.lstrip("/") + ".j2").render(context)


def _common(cluster: Cluster, name: str) -> dict[str, Any]:
    return {"node": name, "cluster": cluster.name, "endpoint": cluster.endpoint, "vip": str(cluster.vip.ip),
            "lb_port": cluster.lb_port, "external": cluster.vip_mode == "external"}


def render_master(cluster: Cluster, master: Master, secret: str | None,
                  bundle: BundleRef | None = None) -> NodeDocument:
    """A master's files: haproxy.cfg and its pod, plus keepalived's with ``vip_mode: vrrp``.

    keepalived.conf is 0600 (it may hold the VRRP secret); with ``vip_mode: external`` there is no keepalived.
    """
    ctx = master_context(cluster, master, secret)
    hacfg = render_template(HAPROXY_CFG, ctx)
    prober = render_template(PROBER_SCRIPT, ctx) if cluster.profile.probe and cluster.vip_mode == "vrrp" else None
    pods_dir = STAGED_MANIFESTS_DIR if bundle else MANIFESTS_DIR
    files = [
        RenderedFile(HAPROXY_CFG, hacfg, 0o644),
        RenderedFile(f"{pods_dir}/haproxy.yaml",
                     manifests.dump(manifests.haproxy_pod(cluster, hacfg), "manifests.haproxy_pod"), 0o600),
        RenderedFile(CONTROL_PLANE_ENV, render_template(CONTROL_PLANE_ENV, _common(cluster, master.name))),
    ]
    if cluster.vip_mode == "vrrp":  # external: the cloud's load balancer holds the endpoint, no keepalived
        conf = render_template(KEEPALIVED_CONF, ctx)
        script = render_template(CHECK_SCRIPT, ctx)
        files += [
            RenderedFile(KEEPALIVED_CONF, conf, 0o600),
            RenderedFile(CHECK_SCRIPT, script, 0o755),
            RenderedFile(f"{pods_dir}/keepalived.yaml",
                         manifests.dump(manifests.keepalived_pod(cluster, conf, script, prober),
                                        "manifests.keepalived_pod"), 0o600),
        ]
        if prober is not None:
            files.append(RenderedFile(PROBER_SCRIPT, prober, 0o755))
    units: tuple[SystemdUnit, ...] = ()
    first_boot: tuple[tuple[str, ...], ...] = ()
    if bundle:
        files += _install_files(master.name, bundle)
        units = (SystemdUnit(INSTALL_UNIT, render_template(f"/etc/systemd/system/{INSTALL_UNIT}",
                                                           {"script": bundle.script})),)
        first_boot = ((bundle.script,),)
    return NodeDocument(master.name, master.name, "master", str(master.address), tuple(sorted(files)),
                        units, first_boot, master.mac, _network(cluster, master), cluster.name)


def _install_files(node: str, bundle: BundleRef) -> list[RenderedFile]:
    env = {"node": node, "source": bundle.source, "runtime": bundle.runtime, "key": BUNDLE_KEY,
           "fingerprints": " ".join(bundle.fingerprints), "cluster_id": bundle.cluster_id,
           "min_serial": bundle.min_serial, "max_bytes": bundle.max_bytes,
           "keys_version": bundle.keys_version}
    return [
        RenderedFile(bundle.script, render_template(INSTALL_SCRIPT, {}), 0o755),
        RenderedFile(INSTALL_ENV, render_template(INSTALL_ENV, env), 0o644),
        RenderedFile(BUNDLE_KEY, bundle.public_key if bundle.public_key.endswith("\n")
                     else bundle.public_key + "\n", 0o644),
    ]


def render_worker(cluster: Cluster, worker: Worker) -> NodeDocument:
    """Workers only need to know where the control plane is."""
    env = render_template(CONTROL_PLANE_ENV, _common(cluster, worker.name))
    return NodeDocument(worker.name, worker.name, "worker", str(worker.address),
                        (RenderedFile(CONTROL_PLANE_ENV, env),), mac=worker.mac, network=_network(cluster, worker),
                        cluster=cluster.name)


def _network(cluster: Cluster, node: Master | Worker) -> NodeNetwork | None:
    """Static addressing, only when the inventory gives a gateway (otherwise DHCP/the image decides)."""
    if cluster.gateway is None:
        return None
    return NodeNetwork(node.interface, f"{node.address}/{cluster.vip.network.prefixlen}", str(cluster.gateway),
                       tuple(str(d) for d in cluster.dns), node.mac)


def render_cluster(cluster: Cluster, secret: str | None, bundle: BundleRef | None = None) -> list[NodeDocument]:
    """Documents for every node, masters first, in inventory order."""
    docs = [render_master(cluster, m, secret, bundle) for m in cluster.masters]
    return docs + [render_worker(cluster, w) for w in cluster.workers]
