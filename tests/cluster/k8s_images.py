"""The Kubernetes images of the cluster lab, built here with Docker from the binaries k8s/build.py made.

kube-apiserver, kube-controller-manager, kube-scheduler, etcd, coredns and pause are static binaries: an
image ``FROM scratch`` with the binary needs no base and no pull. kube-proxy programs iptables/nftables, so
it is built on the Debian image base the project already makes (tests/fixtures/image_base.py), with
Debian's iptables, nftables and conntrack installed during the build (host network reaches the mirror).
They are named exactly as `kubeadm config images list` prints them (tests/cluster/versions.py) and saved as
one docker-archive, cached under ``$KUBEHA_CACHE/k8s-images/<key>/`` keyed by the binaries' sha256, the
Dockerfiles below and the base.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

from cluster import versions
from cluster.node_tree import LOCK, k8s_bin_dir
from e2e.daemons import short_workdir, start_dockerd, stop_and_remove
from fixtures.image_base import BASE_REF, base_key, cache_root, ensure_base_tarball, import_base
from kubeha.bundle import images

# Binary -> (path in the image, entrypoint). kubeadm's manifests name the command (kube-apiserver, etcd),
# resolved on PATH; the coredns Deployment and the pause sandbox use the image's entrypoint.
STATIC = {
    "kube-apiserver": ("/usr/local/bin/kube-apiserver", None),
    "kube-controller-manager": ("/usr/local/bin/kube-controller-manager", None),
    "kube-scheduler": ("/usr/local/bin/kube-scheduler", None),
    "etcd": ("/usr/local/bin/etcd", None),
    "coredns": ("/coredns", ["/coredns"]),
    "pause": ("/pause", ["/pause"]),
}

STATIC_DOCKERFILE = """\
FROM scratch
ENV PATH=/usr/local/bin:/usr/bin:/bin
COPY {name} {path}
USER {user}
{entrypoint}
"""

KUBE_PROXY_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN set -eu; export DEBIAN_FRONTEND=noninteractive; apt-get update; \\
    apt-get install -y --no-install-recommends iptables nftables conntrack; \\
    apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY kube-proxy /usr/local/bin/kube-proxy
"""


def _dockerfile(name: str) -> str:
    if name == "kube-proxy":
        return KUBE_PROXY_DOCKERFILE
    path, entrypoint = STATIC[name]
    # etcd and the control plane run as root (kubeadm's manifests); coredns and pause as nobody.
    user = "65535:65535" if name in ("coredns", "pause") else "0:0"
    ep = f"ENTRYPOINT {json.dumps(entrypoint)}" if entrypoint else ""
    return STATIC_DOCKERFILE.format(name=name, path=path, user=user, entrypoint=ep)


def images_key() -> str:
    lock = json.loads(LOCK.read_text())
    digest = hashlib.sha256(json.dumps(lock["sha256"], sort_keys=True).encode())
    for name in versions.TAGS:
        digest.update(name.encode() + _dockerfile(name).encode() + versions.image(name).encode())
    digest.update(base_key().encode())
    return digest.hexdigest()[:16]


def _context(name: str, bins: Path) -> io.BytesIO:
    """A build context tar: the Dockerfile and the one binary."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = _dockerfile(name).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(bins / name, arcname=name)
    buf.seek(0)
    return buf


def build_images(client: Any, bins: Path) -> None:
    """Build every lab image in the daemon behind ``client`` (the base must already be imported)."""
    for name in versions.TAGS:
        ref = versions.image(name)
        stream = client.api.build(fileobj=_context(name, bins), custom_context=True, tag=ref, rm=True,
                                  network_mode="host", buildargs={"BASE_IMAGE": BASE_REF}, decode=True)
        log = []
        for chunk in stream:
            if "error" in chunk:
                raise RuntimeError(f"docker build {ref}: {chunk['error']}\n{''.join(log)[-3000:]}")
            log.append(chunk.get("stream", ""))
        client.images.get(ref)  # raises if the tag is not there


def save(client: Any, target: Path) -> None:
    """One docker-archive of every lab image, written beside ``target`` and renamed into place."""
    tmp = target.with_name(f".{target.name}.part")
    with tmp.open("wb") as out:
        for chunk in images.stream_save(client, versions.all_images()):
            out.write(chunk)
    tmp.rename(target)


def ensure_k8s_images_tar() -> Path:
    """The cached archive of the lab's Kubernetes images, built in a private dockerd when missing."""
    target = cache_root() / "k8s-images" / images_key() / "k8s-images.tar"
    if target.is_file():
        return target
    import docker

    bins = k8s_bin_dir()
    daemon = start_dockerd(short_workdir("k8simg"))
    try:
        client = docker.DockerClient(base_url=daemon.address)
        import_base(client, ensure_base_tarball())
        build_images(client, bins)
        target.parent.mkdir(parents=True, exist_ok=True)
        save(client, target)
    finally:
        stop_and_remove(daemon)
    for stale in target.parent.parent.iterdir():
        if stale != target.parent and not stale.name.startswith("."):
            shutil.rmtree(stale, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(ensure_k8s_images_tar())
