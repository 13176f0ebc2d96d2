"""The files the cluster lab bakes into its node tree: systemd units, containerd's configuration, the PID 1
wrapper that makes cgroups writable, and the units that stand in for what the kubeadm issue will ship.

Everything a node needs that is not kubeha's to write lives here, in one place, with why. What kubeha
writes (user-data, manifests, keepalived/haproxy files, the bundle installer) comes from kubeha's own
documents at boot, through the real cloud-init.
"""

from __future__ import annotations

from cluster import versions

# The container's PID 1 is this wrapper; it execs systemd. Without --privileged (the machine's capability
# bounding set lacks CAP_SYS_RESOURCE, so docker refuses it) Docker mounts /sys/fs/cgroup and its v1
# hierarchies read-only. In the container's private cgroup namespace a fresh mount of each hierarchy is
# rooted at the container's own cgroup, so remounting them read-write gives systemd, containerd and kubelet
# cgroups of their own without touching the host's. `mount --make-rshared /` as kind does: kubelet and
# containerd need shared mount propagation.
ENTRYPOINT = """\
#!/bin/sh
set -eu
mount --make-rshared /
mount -o remount,rw /sys 2>/dev/null || true
mount -o remount,rw /sys/fs/cgroup
grep ' /sys/fs/cgroup/' /proc/self/mounts | while read -r _ mp fstype opts _; do
    [ "$fstype" = cgroup ] || continue
    controllers=$(echo "$opts" | tr , '\\n' | grep -Ev '^(rw|ro|nosuid|nodev|noexec|relatime|clone_children)$' | paste -sd, -)
    umount "$mp"
    mount -t cgroup -o "$controllers" cgroup "$mp"
done
# kubelet's OOM watcher reads the kernel log; Docker gives an unprivileged container no /dev/kmsg.
[ -e /dev/kmsg ] || mknod -m 600 /dev/kmsg c 1 11
# A machine id of its own per node (kubelet's node identity, journald's files).
[ -s /etc/machine-id ] || systemd-machine-id-setup >/dev/null
exec /lib/systemd/systemd "$@"
"""

# containerd 2.x (config version 3). SystemdCgroup: kubelet's cgroupDriver is systemd (kubeadm's default).
# The sandbox image is the bundle's pause, pinned so the image GC never removes it. Without
# CAP_SYS_RESOURCE a container cannot lower its oom_score_adj below its parent's: restrict it (kind's
# rootless setting). The content store must not be on the container's overlayfs (overlay on overlay is
# refused): /var/lib/containerd is a volume of its own (tests/cluster/lab.py).
CONTAINERD_CONFIG = f"""\
version = 3

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '{versions.image("pause")}'

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ['/opt/cni/bin']
  conf_dir = '/etc/cni/net.d'
"""

# No Limit*= and no OOMScoreAdjust=: both need CAP_SYS_RESOURCE, which the node container lacks.
CONTAINERD_UNIT = """\
[Unit]
Description=containerd container runtime (kubeha cluster lab)
After=network.target local-fs.target

[Service]
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""

# The kubelet unit and kubeadm drop-in as Kubernetes' own packages ship them (binaries in /usr/local/bin).
KUBELET_UNIT = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Wants=network-online.target
After=network-online.target containerd.service

[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=2

[Install]
WantedBy=multi-user.target
"""

KUBELET_DROPIN = """\
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""

# For this issue the control-plane images are baked into the node (the kubeadm issue moves them into the
# bundle): imported into containerd's k8s.io namespace before kubelet starts.
K8S_IMAGES_TAR = "/opt/kubeha-lab/k8s-images.tar"
K8S_IMAGES_UNIT = f"""\
[Unit]
Description=kubeha lab: import the baked Kubernetes images into containerd
After=containerd.service
Requires=containerd.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/ctr -n k8s.io images import --no-unpack=false {K8S_IMAGES_TAR}

[Install]
WantedBy=multi-user.target
"""

# The pod network of a node: a bridge on 198.19.<last octet of eth0>.0/24 (every node its own range, all
# inside 198.18.0.0/15). Written once eth0 has its address; without a CNI config kubelet keeps the node
# NotReady. Waits at most 300 s.
CNI_SCRIPT = """\
#!/bin/sh
set -eu
for _ in $(seq 300); do
    addr=$(ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1)
    [ -n "$addr" ] && break
    sleep 1
done
[ -n "$addr" ] || { echo "kubeha-lab-cni: eth0 has no IPv4 address" >&2; exit 1; }
octet=${addr##*.}
mkdir -p /etc/cni/net.d
cat > /etc/cni/net.d/10-kubeha-lab.conflist.tmp <<EOF
{"cniVersion": "1.0.0", "name": "kubeha-lab", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.19.$octet.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
mv /etc/cni/net.d/10-kubeha-lab.conflist.tmp /etc/cni/net.d/10-kubeha-lab.conflist
"""
CNI_UNIT = """\
[Unit]
Description=kubeha lab: the node's pod network (CNI bridge)
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/kubeha-lab-cni

[Install]
WantedBy=multi-user.target
"""

CRICTL_CONFIG = "runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\n"

# cloud-init probes only NoCloud (the seed directory the lab fills); journald keeps the console readable.
CLOUD_CFG = "datasource_list: [NoCloud, None]\nssh_genkeytypes: [ed25519]\n"
JOURNALD = "[Journal]\nReadKMsg=no\nForwardToConsole=yes\nMaxLevelConsole=info\nStorage=volatile\n"

FILES: dict[str, tuple[str, int]] = {
    "usr/local/sbin/kubeha-lab-entrypoint": (ENTRYPOINT, 0o755),
    "etc/containerd/config.toml": (CONTAINERD_CONFIG, 0o644),
    "etc/systemd/system/containerd.service": (CONTAINERD_UNIT, 0o644),
    "etc/systemd/system/kubelet.service": (KUBELET_UNIT, 0o644),
    "etc/systemd/system/kubelet.service.d/10-kubeadm.conf": (KUBELET_DROPIN, 0o644),
    "etc/systemd/system/kubeha-lab-k8s-images.service": (K8S_IMAGES_UNIT, 0o644),
    "usr/local/sbin/kubeha-lab-cni": (CNI_SCRIPT, 0o755),
    "etc/systemd/system/kubeha-lab-cni.service": (CNI_UNIT, 0o644),
    "etc/crictl.yaml": (CRICTL_CONFIG, 0o644),
    "etc/cloud/cloud.cfg.d/90-kubeha-lab.cfg": (CLOUD_CFG, 0o644),
    "etc/systemd/journald.conf.d/90-kubeha-lab.conf": (JOURNALD, 0o644),
}

ENABLED_UNITS = ("containerd.service", "kubelet.service", "kubeha-lab-k8s-images.service", "kubeha-lab-cni.service")
