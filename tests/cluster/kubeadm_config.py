"""The kubeadm configurations the cluster lab runs, standing in for what the kubeadm issue will put in kubeha's
documents: `kubeadm init` on the first master, `kubeadm join --control-plane` on the others, one at a time.

Lab-only settings, in one place, with why:
- cgroup v1: these machines boot cgroup v1 (hybrid). kubelet 1.35+ refuses it unless ``failCgroupV1: false``
  (still honoured in 1.37), and kubeadm's SystemVerification preflight check must be ignored.
- etcd: 2 cores run 3 masters, so etcd's defaults (heartbeat 100 ms, election 1000 ms) lose the leader under
  load; the lab uses ETCD_HEARTBEAT_MS / ETCD_ELECTION_MS, and ``unsafe-no-fsync`` (the lab's etcd data is
  thrown away; never in production).
- Addresses: pods 198.19.0.0/16 (a /24 per node, tests/cluster/node_files.py), services 198.18.240.0/20:
  everything inside 198.18.0.0/15, nothing in 10/8.
- Preflight: the static pods kubeha placed (DirAvailable--etc-kubernetes-manifests, as README says), the
  container's /proc/sys (bridge-nf-call-iptables is the host's), swap and the machine's 2 cores are not
  errors here.
"""

from __future__ import annotations

import yaml

from cluster import versions

ETCD_HEARTBEAT_MS = 250
ETCD_ELECTION_MS = 2500
POD_SUBNET = "198.19.0.0/16"
SERVICE_SUBNET = "198.18.240.0/20"
# Three control planes start on 2 cores: kubeadm's 1-minute API timeouts are too short there (bounded still).
TIMEOUTS = {"controlPlaneComponentHealthCheck": "5m0s", "kubernetesAPICall": "3m0s", "etcdAPICall": "3m0s",
            "kubeletHealthCheck": "5m0s", "tlsBootstrap": "5m0s", "discovery": "5m0s"}
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
IGNORE_PREFLIGHT = [
    "SystemVerification", "DirAvailable--etc-kubernetes-manifests",
    "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables", "FileContent--proc-sys-net-ipv4-ip_forward",
    "Swap", "NumCPU", "Mem",
]


def _node_registration(name: str) -> dict[str, object]:
    return {"name": name, "criSocket": CRI_SOCKET, "imagePullPolicy": "Never",
            "ignorePreflightErrors": IGNORE_PREFLIGHT}


def _kubelet() -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd", "failCgroupV1": False, "failSwapOn": False,
        "imageGCHighThresholdPercent": 100,
        "evictionHard": {"nodefs.available": "0%", "nodefs.inodesFree": "0%", "imagefs.available": "0%"},
    }


def init_config(name: str, address: str, endpoint: str, token: str, certificate_key: str) -> str:
    """InitConfiguration + ClusterConfiguration + KubeletConfiguration + KubeProxyConfiguration."""
    docs: list[dict[str, object]] = [
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "bootstrapTokens": [{"token": token, "ttl": "2h"}],
         "certificateKey": certificate_key,
         "timeouts": TIMEOUTS,
         "localAPIEndpoint": {"advertiseAddress": address, "bindPort": 6443},
         "nodeRegistration": _node_registration(name)},
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
         "kubernetesVersion": versions.KUBERNETES_VERSION,
         "controlPlaneEndpoint": endpoint,
         "imageRepository": versions.IMAGE_REPOSITORY,
         "networking": {"podSubnet": POD_SUBNET, "serviceSubnet": SERVICE_SUBNET},
         "etcd": {"local": {"extraArgs": [
             {"name": "heartbeat-interval", "value": str(ETCD_HEARTBEAT_MS)},
             {"name": "election-timeout", "value": str(ETCD_ELECTION_MS)},
             {"name": "unsafe-no-fsync", "value": "true"}]}}},
        _kubelet(),
        {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
         "conntrack": {"maxPerCore": 0}},
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def join_config(name: str, address: str, endpoint: str, token: str, ca_hash: str,
                certificate_key: str | None) -> str:
    """A JoinConfiguration; with ``certificate_key`` a control-plane join (certificates from the cluster)."""
    join: dict[str, object] = {
        "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {"apiServerEndpoint": endpoint, "token": token,
                                         "caCertHashes": [ca_hash]}},
        "nodeRegistration": _node_registration(name),
        "timeouts": TIMEOUTS,
    }
    if certificate_key:
        join["controlPlane"] = {"localAPIEndpoint": {"advertiseAddress": address, "bindPort": 6443},
                                "certificateKey": certificate_key}
    # kubelet's configuration comes from the cluster (the kubelet-config ConfigMap init wrote).
    return yaml.safe_dump(join, sort_keys=False)
