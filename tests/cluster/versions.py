"""What the cluster lab runs, read from k8s/lock.json: the Kubernetes version and the images kubeadm names.

The image repository has a dot in its name: containerd expands a dotless first component to docker.io/...
The refs are exactly what `kubeadm config images list --config` prints for the lab's configuration
(tests/e2e/test_k8s_build.py asks kubeadm itself).
"""

from __future__ import annotations

import json
from pathlib import Path

LOCK = json.loads((Path(__file__).resolve().parents[2] / "k8s" / "lock.json").read_text())
COMPONENTS = LOCK["components"]

IMAGE_REPOSITORY = "kubeha.local/k8s"
KUBERNETES_VERSION = COMPONENTS["kubernetes"]["version"]
ETCD_TAG = COMPONENTS["etcd"]["version"].lstrip("v") + "-0"  # kubeadm's etcd image tags carry a -N suffix
COREDNS_TAG = COMPONENTS["coredns"]["version"]
PAUSE_TAG = COMPONENTS["pause"]["version"]

TAGS = {
    "kube-apiserver": KUBERNETES_VERSION,
    "kube-controller-manager": KUBERNETES_VERSION,
    "kube-scheduler": KUBERNETES_VERSION,
    "kube-proxy": KUBERNETES_VERSION,
    "coredns": COREDNS_TAG,
    "pause": PAUSE_TAG,
    "etcd": ETCD_TAG,
}


def image(name: str) -> str:
    """The fully qualified ref of one of the lab's Kubernetes images."""
    return f"{IMAGE_REPOSITORY}/{name}:{TAGS[name]}"


def all_images() -> list[str]:
    return [image(name) for name in TAGS]
