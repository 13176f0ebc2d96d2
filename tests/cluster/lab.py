"""The cluster lab: masters as containers of the node image, booted from kubeha's own documents.

Each node is a container of the image ``docker import`` makes of the node tree (tests/cluster/node_tree.py):
systemd as PID 1 in a private cgroup namespace, containerd 2.x with SystemdCgroup, kubelet under systemd.
Nothing is ``--privileged`` (docker refuses it here for want of CAP_SYS_RESOURCE): every capability but that
one, no seccomp or AppArmor profile, writable /proc/sys and a device rule for all devices.

Before a node starts, its NoCloud seed directory gets exactly what its seed ISO from ``kubeha gen seed-iso``
carries (user-data, meta-data and, for masters, the signed bundle), so the real cloud-init runs kubeha's
documents as on a VM and kubeha's installer imports kubeha's images from the bundle. The network is the
namespace lab's: one bridge in a namespace of its own, a veth per node (its cable) plugged into the node's
network namespace as eth0, addresses from 198.18.77.0/24, a client namespace for kubectl and the probes.

The lab reads the nodes (``cloud-init status``, journal, files) and the Kubernetes API; apart from
kubeadm (tests/cluster/kubeadm_config.py: the stand-in for the kubeadm issue) it changes nothing inside a node.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from cluster import kubeadm_config, node_files
from cluster.node_access import Node, NodeAccess, poll, stats_command
from e2e.daemons import Daemon
from e2e.guest import read_seed_iso
from kubeha.lab.base import LabError, kill_pid, pids_in_netns, run_cmd

SUBNET = ipaddress.ip_network("198.18.77.0/24")
GATEWAY = "198.18.77.1"  # the bridge namespace's own address: a default route that leads nowhere else
VIP = "198.18.77.10"
CLIENT = "198.18.77.250"
LB_PORT = 6444
NODE_FLAGS = [
    "--cap-add=ALL", "--cap-drop=SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
    "--device-cgroup-rule=a *:* rwm", "--cgroupns=private", "--network=none",
    "--tmpfs", "/run:exec,mode=755", "--tmpfs", "/tmp", "--volume", "/var/lib/containerd",
    "--env", "container=docker", "--stop-signal", "SIGRTMIN+3",
    # no resolver outside the lab: Docker would copy the host's; the node names are in /etc/hosts
    "--dns", GATEWAY,
]


def inventory(name: str, masters: int, profile: str) -> str:
    """The lab's inventory in kubeha's native YAML."""
    doc = {
        "cluster": {"name": name, "vip": f"{VIP}/{SUBNET.prefixlen}", "lb_port": LB_PORT, "apiserver_port": 6443,
                    "interface": "eth0", "profile": profile},
        "masters": [{"name": f"m{i}", "address": str(SUBNET.network_address + 10 + i)} for i in range(1, masters + 1)],
    }
    return yaml.safe_dump(doc, sort_keys=False)


class ClusterLab(NodeAccess):
    """Bring-up and teardown of the cluster lab in ``dockerd`` (the tests' private Docker engine)."""

    def __init__(self, dockerd: Daemon, workdir: Path, node_image: str, k8s_images: Path, bins: Path,
                 masters: int = 3) -> None:
        super().__init__(dockerd)
        self.workdir, self.node_image = workdir, node_image
        self.k8s_images, self.bins = k8s_images, bins
        self.token = f"khc{secrets.token_hex(3)}"
        self.bridge_ns, self.client_ns = f"{self.token}-br", f"{self.token}-client"
        self.nodes = {f"m{i}": Node(f"m{i}", str(SUBNET.network_address + 10 + i)) for i in range(1, masters + 1)}
        self.namespaces: list[str] = []
        self.containers: list[str] = []
        self.kubeconfig = workdir / "admin.conf"
        self.bootstrap_token = f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"
        self.certificate_key = secrets.token_hex(32)
        self.timings: dict[str, float] = {}
        self.verdicts: dict[str, dict[str, object]] = {}

    # ----- documents

    def documents(self, iso_dir: Path) -> None:
        """Take each node's seed from its ISO, as the node's cloud-init would find it on the cdrom."""
        for node in self.nodes.values():
            label, files = read_seed_iso(iso_dir / f"{node.name}.iso")
            if label != "cidata":
                raise LabError(f"{node.name}.iso: volume label {label!r}, not cidata")
            node.seed = files

    # ----- bring-up

    def _ns(self, name: str) -> None:
        run_cmd(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run_cmd(["ip", "-n", name, "link", "set", "lo", "up"])

    def network(self) -> None:
        self._ns(self.bridge_ns)
        run_cmd(["ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge"])
        run_cmd(["ip", "-n", self.bridge_ns, "addr", "add", f"{GATEWAY}/{SUBNET.prefixlen}", "dev", "br0"])
        run_cmd(["ip", "-n", self.bridge_ns, "link", "set", "br0", "up"])
        self._ns(self.client_ns)
        self._plug(self.client_ns, "vc", CLIENT)

    def _plug(self, ns: str, veth: str, address: str) -> None:
        run_cmd(["ip", "-n", self.bridge_ns, "link", "del", veth], check=False)  # a cable left from before
        run_cmd(["ip", "-n", self.bridge_ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run_cmd(["ip", "-n", self.bridge_ns, "link", "set", veth, "master", "br0", "up"])
        run_cmd(["ip", "-n", ns, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0"])
        run_cmd(["ip", "-n", ns, "link", "set", "eth0", "up"])
        run_cmd(["ip", "-n", ns, "route", "add", "default", "via", GATEWAY])

    def create(self, name: str) -> None:
        """Create a node's container (not started) and lay its NoCloud seed in."""
        node = self.nodes[name]
        hosts = [f"--add-host={n.name}:{n.address}" for n in self.nodes.values()]
        proc = self.docker("create", "--name", f"{self.token}-{name}", "--hostname", name, *NODE_FLAGS, *hosts,
                           "--volume", f"{self.k8s_images}:{node_files.K8S_IMAGES_TAR}:ro", self.node_image)
        node.container = proc.stdout.decode().strip()
        self.containers.append(node.container)
        self.put_files(name, {f"/var/lib/cloud/seed/nocloud/{rel}": (data, 0o600) for rel, data in node.seed.items()})

    def start(self, name: str) -> None:
        """Power a node on: start its container and plug its cable into the bridge (again after a power-off:
        the container's new network namespace gets a new cable)."""
        node = self.nodes[name]
        self.docker("start", node.container)
        pid = json.loads(self.docker("inspect", node.container).stdout)[0]["State"]["Pid"]
        node.ns, node.veth = f"{self.token}-{name}", f"v{name}"
        run_cmd(["ip", "netns", "attach", node.ns, str(pid)])
        self.namespaces.append(node.ns)
        self._plug(node.ns, node.veth, node.address)

    def power_off(self, name: str, release: Callable[[str], None] | None = None) -> None:
        """Pull the plug: every process of the node dies at once (SIGKILL to the container), and its network
        namespace goes with them: the lab's own handle on it (``ip netns attach``) is dropped, after
        ``release(name)`` has let go of anything else the lab runs in it (a VIP monitor), so no address of
        the dead machine (the VIP) stays on the bridge."""
        node = self.nodes[name]
        self.docker("kill", "--signal", "KILL", node.container)
        if release is not None:
            release(name)
        # Docker keeps a stopped container's network namespace (its sandbox) alive: cut the cable itself, which
        # takes the dead machine's eth0, and the VIP on it, off the bridge at once.
        run_cmd(["ip", "-n", self.bridge_ns, "link", "del", node.veth])
        run_cmd(["ip", "netns", "del", node.ns])
        self.namespaces.remove(node.ns)
        self.docker("wait", node.container, timeout=60)

    def power_on(self, name: str) -> None:
        self.start(name)

    def set_link(self, name: str, up: bool) -> None:
        """Plug or pull a node's cable: the bridge side of its veth."""
        run_cmd(["ip", "-n", self.bridge_ns, "link", "set", self.nodes[name].veth, "up" if up else "down"])

    @staticmethod
    def resume(pid: int) -> None:
        kill_pid(pid, signal.SIGCONT)

    def wait_cloud_init(self, name: str, timeout: float = 240) -> dict[str, object]:
        """Wait for cloud-init to finish on a node; return kubeha's install verdict (status.json)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                out = self.exec(name, "cloud-init", "status", "--wait", timeout=max(1, deadline - time.monotonic()),
                                check=False)
                if "status: done" in out or "status: error" in out:
                    break
            time.sleep(1)
        else:
            raise LabError(f"{name}: cloud-init did not finish in {timeout:.0f} s:\n{self.journal(name)[-4000:]}")
        return json.loads(self.read_file(name, "/var/lib/kubeha/status.json"))

    def endpoint(self) -> str:
        return f"{VIP}:{LB_PORT}"

    def kubeadm_init(self, name: str) -> None:
        node = self.nodes[name]
        config = kubeadm_config.init_config(name, node.address, self.endpoint(), self.bootstrap_token,
                                            self.certificate_key)
        self.put_files(name, {"/root/kubeadm-init.yaml": (config.encode(), 0o600)})
        self.exec(name, "kubeadm", "init", "--config", "/root/kubeadm-init.yaml", "--upload-certs", timeout=420)
        self.kubeconfig.write_bytes(self.read_file(name, "/etc/kubernetes/admin.conf"))
        self.kubeconfig.chmod(0o600)

    def ca_hash(self, name: str) -> str:
        """sha256 of the cluster CA's public key (SubjectPublicKeyInfo, DER): kubeadm's discovery hash."""
        ca = self.read_file(name, "/etc/kubernetes/pki/ca.crt")
        pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=ca, capture_output=True, check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                             check=True).stdout
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def kubeadm_join(self, name: str, ca_hash: str) -> None:
        node = self.nodes[name]
        config = kubeadm_config.join_config(name, node.address, self.endpoint(), self.bootstrap_token, ca_hash,
                                            self.certificate_key)
        self.put_files(name, {"/root/kubeadm-join.yaml": (config.encode(), 0o600)})
        self.exec(name, "kubeadm", "join", "--config", "/root/kubeadm-join.yaml", timeout=420)

    def kubectl(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        """kubectl from the client namespace with the admin kubeconfig (its server is VIP:lb_port)."""
        argv = ["ip", "netns", "exec", self.client_ns, str(self.bins / "kubectl"), "--kubeconfig",
                str(self.kubeconfig), "--request-timeout", "10s", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"kubectl {' '.join(args)}: {proc.stderr[-2000:]}")
        return proc.stdout

    def wait_ready(self, timeout: float = 240) -> None:
        """Until every master is Ready and runs kubeha's pods and its control plane (mirror pods Running) and
        the VIP's holder's haproxy sees every apiserver UP: the cluster as the tests and the bench expect it."""
        want = {f"{pod}-{name}" for name in self.nodes
                for pod in ("kubeha-keepalived", "kubeha-haproxy", "kube-apiserver", "etcd")}
        last: dict[str, object] = {}

        def ready() -> bool:
            out = self.kubectl("get", "pods,nodes", "-A", "-o", "json", check=False)
            try:
                items = json.loads(out)["items"]
                holder = self.vip_holder()
                servers = self.haproxy_servers(holder)
            except (ValueError, KeyError, LabError, OSError) as exc:
                last["error"] = str(exc)
                return False
            running = {i["metadata"]["name"] for i in items if i["kind"] == "Pod" and i["status"].get("phase") == "Running"}
            nodes = {i["metadata"]["name"] for i in items if i["kind"] == "Node" and any(
                c["type"] == "Ready" and c["status"] == "True" for c in i["status"]["conditions"])}
            last.update(missing=sorted(want - running), ready=sorted(nodes), servers=servers)
            return want <= running and nodes == set(self.nodes) and len(servers) == len(self.nodes) and all(
                v == "UP" for v in servers.values())

        poll(ready, timeout, lambda: f"every master Ready with its pods Running and UP in haproxy (last: {last})")

    def memory_mib(self) -> dict[str, float]:
        """Each node container's memory use as Docker reports it (cgroup usage less page cache)."""
        out = self.docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *self.containers).stdout
        used: dict[str, float] = {}
        for line in out.decode().splitlines():
            name, usage = line.split(" ", 1)
            value = usage.split("/")[0].strip()
            factor = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[value[-3:]]
            used[name.rsplit("-", 1)[1]] = float(value[:-3]) * factor
        return used

    # ----- what the tests and the bench observe and break

    def vip_holder(self) -> str:
        """The one node holding the VIP (an error when none or several do)."""
        holders = [n.name for n in self.nodes.values()
                   if f" {VIP}/" in run_cmd(["ip", "-n", n.ns, "-o", "-4", "addr", "show"], check=False).stdout]
        if len(holders) != 1:
            raise LabError(f"VIP holders: {holders or 'none'}")
        return holders[0]

    def pod_pids(self, name: str, comm: str) -> list[int]:
        """PIDs of the processes called ``comm`` in a node (its network namespace: host-network pods)."""
        pids = []
        for pid in pids_in_netns(self.nodes[name].ns):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                    pids.append(pid)
        return pids

    def kill_pod_process(self, name: str, comm: str, sig: int = signal.SIGKILL) -> None:
        """Kill (or SIGSTOP: hang) every ``comm`` process of a node's pod, as a crash or a hang would."""
        pids = self.pod_pids(name, comm)
        if not pids:
            raise LabError(f"{name}: no {comm} process")
        for pid in pids:
            kill_pid(pid, sig)

    def haproxy_servers(self, name: str) -> dict[str, str]:
        """{apiserver: UP|DOWN|...} as a node's haproxy sees them, from its runtime API (``show stat``)."""
        pids = self.pod_pids(name, "haproxy")
        if not pids:
            raise LabError(f"{name}: no haproxy process")
        cfg = Path(f"/proc/{pids[0]}/root/etc/haproxy/haproxy.cfg")
        sockets = [ln.split()[2] for ln in cfg.read_text().splitlines() if ln.strip().startswith("stats socket")]
        if not sockets:
            raise LabError(f"{name}: haproxy.cfg has no stats socket")
        answer = stats_command(Path(f"/proc/{pids[0]}/root{sockets[0]}"), "show stat")
        states = {}
        for row in answer.splitlines():
            cols = row.split(",")
            if len(cols) > 17 and cols[0] == "kubeha-apiservers" and cols[1] not in ("BACKEND", "FRONTEND"):
                states[cols[1]] = cols[17]
        return states

    def reader(self, duration: float, out: Path, kind: str = "read", rate: float = 20) -> subprocess.Popen[bytes]:
        """Start tests/cluster/api_client.py in the client namespace (bounded by ``duration``)."""
        argv = ["ip", "netns", "exec", self.client_ns, sys.executable, "-m", "cluster.api_client",
                str(self.kubeconfig), kind, str(rate), str(duration)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        with open(out, "wb") as fh:
            return subprocess.Popen(argv, stdout=fh, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)

    # ----- teardown

    def down(self) -> None:
        """Remove the containers this lab created (by ID) and the namespaces it made."""
        for container in reversed(self.containers):
            self.docker("rm", "-f", "-v", container, check=False, timeout=120)
        for ns in reversed(self.namespaces):
            run_cmd(["ip", "netns", "del", ns], check=False)
        self.namespaces.clear()
