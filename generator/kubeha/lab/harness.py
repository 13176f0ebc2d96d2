"""A running lab: namespaces, bridge, stand-in apiservers, and haproxy + keepalived on every master."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubeha.lab import haproxy_api
from kubeha.lab.base import (
    LAB_PREFIX,
    LabError,
    alive,
    cgroup_cpu_seconds,
    cpu_cgroup,
    cpu_seconds,
    descendants,
    kill_pid,
    make_cert,
    pids_in_netns,
    port_open,
    run_cmd,
    stopped,
    wait_for,
)
from kubeha.lab.cgroup import LabCgroup
from kubeha.lab.monitor import ServerWatch, VipMonitor
from kubeha.lab.runtimes import Runtime
from kubeha.lab.topology import Topology, container_specs


@dataclass
class NodeState:
    """What the lab started on a node and whether it is up, linked and powered."""

    name: str
    ns: str
    veth: str
    root: Path
    apiserver: int = 0
    containers: dict[str, int] = field(default_factory=dict)  # "pod/container" -> main PID
    linked: bool = True
    powered: bool = True
    offline_since: list[tuple[float, float]] = field(default_factory=list)  # disconnected intervals


class Lab:
    """A running lab: namespaces, bridge, stand-in apiservers, haproxy and keepalived on every master."""

    def __init__(self, topo: Topology, runtime: Runtime, workdir: Path, token: str | None = None) -> None:
        self.topo, self.runtime, self.workdir = topo, runtime, workdir
        self.token = token or f"{LAB_PREFIX}{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.bridge_ns = f"{self.token}-br"
        self.client_ns = f"{self.token}-client"
        self.nodes = {m.name: NodeState(m.name, f"{self.token}-{m.name}", f"v{i}", workdir / m.name / "root")
                      for i, m in enumerate(topo.masters)}
        self.cgroup = LabCgroup(self.token)  # what the lab starts runs in it, above the machine's other work
        self.monitor = VipMonitor(str(topo.vip), self.cgroup.wrap)
        self.namespaces: list[str] = []
        self.cert: tuple[Path, Path] | None = None
        self.specs = {m.name: container_specs(m) for m in topo.masters}
        self._apiserver_procs: list[subprocess.Popen[bytes]] = []
        self._tmpfs: list[Path] = []  # each node's /run

    # ----- bring-up

    def up(self) -> None:
        """Build the network, start every daemon and wait for one VIP holder."""
        self.cgroup.create()
        if not self.cgroup.active:
            print(f"lab: no CPU weight for the lab ({self.cgroup.problem}); other work on this machine can "
                  "delay its adverts and checks", file=sys.stderr)
        self.cert = make_cert(self.workdir)
        self._network()
        for node in self.nodes.values():
            self._write_root(node)
            self.monitor.watch(node.name, node.ns)
        for node in self.nodes.values():
            self.start_apiserver(node.name)
            self.start_pods(node.name)
        self.wait_single_holder(timeout=30)

    def _ns(self, name: str) -> None:
        run_cmd(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run_cmd(["ip", "-n", name, "link", "set", "lo", "up"])

    def _network(self) -> None:
        self._ns(self.bridge_ns)
        run_cmd(["ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge"])
        run_cmd(["ip", "-n", self.bridge_ns, "link", "set", "br0", "up"])
        taken = {m.address for m in self.topo.masters} | {self.topo.vip}
        net = ipaddress.ip_network(f"{self.topo.vip}/{self.topo.prefix}", strict=False)
        client_addr = next(a for a in reversed(list(net.hosts())) if a not in taken)
        ends = [(n.ns, n.veth, m.address, m.interface) for n, m in zip(self.nodes.values(), self.topo.masters,
                                                                         strict=True)]
        for ns, veth, addr, ifname in [*ends, (self.client_ns, "vc", client_addr, "eth0")]:
            self._ns(ns)
            run_cmd(["ip", "-n", self.bridge_ns, "link", "add", veth, "type", "veth", "peer", "name", ifname,
                  "netns", ns])
            run_cmd(["ip", "-n", self.bridge_ns, "link", "set", veth, "master", "br0", "up"])
            run_cmd(["ip", "-n", ns, "addr", "add", f"{addr}/{self.topo.prefix}", "dev", ifname])
            run_cmd(["ip", "-n", ns, "link", "set", ifname, "up"])

    def _write_root(self, node: NodeState) -> None:
        """Lay the node's generated files out under its root, with their modes, owned by root.

        haproxy.cfg gets the lab's stats socket (lab/haproxy_api.py), the one line the lab adds to what
        kubeha generates: it is how the lab reads haproxy's verdict on each apiserver.
        """
        master = self.topo.master(node.name)
        self._run_tmpfs(node)
        for path, data in master.files.items():
            dest = node.root / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            dest.write_bytes(data)
            os.chmod(dest, master.modes.get(path, 0o644))
        for spec in self.specs[node.name]:
            for m in spec.mounts:  # a hostPath the user-data does not write (e.g. a log dir): an empty dir
                src = node.root / m.host_path.lstrip("/")
                if not src.exists():
                    src.mkdir(parents=True, mode=0o755)
        for d in [node.root, *node.root.rglob("*")]:
            if d.is_dir():
                # keepalived's script security refuses group/other-writable dirs; others only read
                os.chmod(d, 0o755)  # noqa: S103

    def _run_tmpfs(self, node: NodeState) -> None:
        """Back the node's /run with a tmpfs, as on a node.

        The prober's verdict (a hostPath under /run) is renamed every second and keepalived's check reads its
        age; on the lab machine's disk, a journal stalled by other work's I/O held both for seconds and faulted
        every node at once.
        """
        if not any(m.host_path.startswith("/run/") for spec in self.specs[node.name] for m in spec.mounts):
            return
        run = node.root / "run"
        run.mkdir(parents=True, exist_ok=True)
        run_cmd(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", f"{self.token}-run", str(run)])
        self._tmpfs.append(run)

    def blind_keepalived(self) -> list[str]:
        """Nodes whose keepalived could not watch its track file (it then ignores the prober's verdict)."""
        blind = []
        for name in self.nodes:
            log = self.workdir / name / "keepalived-keepalived.log"
            if log.exists() and "Unable to monitor track files" in log.read_text(errors="replace"):
                limit = Path("/proc/sys/fs/inotify/max_user_instances").read_text().strip()
                blind.append(f"keepalived on {name} cannot watch its track file (inotify instances exhausted? "
                             f"fs.inotify.max_user_instances={limit}, shared by every process of the user)")
        return blind

    def start_apiserver(self, name: str) -> None:
        """Start the stand-in apiserver of a node."""
        assert self.cert
        node = self.nodes[name]
        addr = self.topo.master(name).address
        argv = self.cgroup.wrap(["ip", "netns", "exec", node.ns, sys.executable, "-m", "kubeha.lab", "apiserver",
                                 str(addr), str(self.topo.api_port), str(self.cert[0]), str(self.cert[1]), name])
        with open(self.workdir / name / "apiserver.log", "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._apiserver_procs.append(proc)
        node.apiserver = proc.pid
        wait_for(lambda: port_open(node.ns, str(addr), self.topo.api_port), 10, f"{name}: apiserver")

    def start_pods(self, name: str, pods: Sequence[str] = ("haproxy", "keepalived")) -> None:
        """Start the static pod containers of a node (haproxy before keepalived)."""
        node = self.nodes[name]
        for spec in self.specs[name]:
            if spec.pod in pods:
                log = self.workdir / name / f"{spec.pod}-{spec.name}.log"
                pid = self.runtime.start(node.ns, node.root, spec, log, self.cgroup)
                node.containers[f"{spec.pod}/{spec.name}"] = pid

    def _pids(self, name: str, pod: str, container: str | None) -> dict[str, int]:
        """{"pod/container": main PID} of one pod's containers (or of one of them)."""
        return {key: pid for key, pid in self.nodes[name].containers.items()
                if key.split("/")[0] == pod and container in (None, key.split("/")[1])}

    def stop_pod(self, name: str, pod: str, sig: int = signal.SIGKILL, container: str | None = None) -> None:
        """Signal a pod's main processes, or one container's (SIGKILL: they die; SIGSTOP: they hang)."""
        pids = self._pids(name, pod, container)
        if not pids:
            raise LabError(f"{name}: no running {pod}/{container or '*'} container")
        if sig == signal.SIGSTOP:
            for pid in pids.values():
                for child in [pid, *descendants(pid)]:
                    kill_pid(child, sig)
            return
        for pid in pids.values():
            kill_pid(pid, sig)
        for pid in pids.values():
            wait_for(lambda pid=pid: not alive(pid), 10, f"{name}: {pod} to exit")  # type: ignore[misc]
        self._forget(name, pids)

    def _forget(self, name: str, pids: dict[str, int]) -> None:
        node = self.nodes[name]
        for spec in self.specs[name]:
            if f"{spec.pod}/{spec.name}" in pids:
                self.runtime.remove(node.ns, spec)
                node.containers.pop(f"{spec.pod}/{spec.name}", None)

    def resume_pod(self, name: str, pod: str, container: str | None = None) -> None:
        """SIGCONT a hung pod (or one of its containers)."""
        for pid in self._pids(name, pod, container).values():
            for child in [pid, *descendants(pid)]:
                kill_pid(child, signal.SIGCONT)

    def server_watch(self, name: str, server: str, timeout: float) -> ServerWatch:
        """Watch what ``name``'s haproxy thinks of apiserver ``server``: waits until it is up, then polls.

        The socket path follows the haproxy container that runs when asked (a restarted one has a new PID).
        """
        def path() -> str:
            pids = list(self._pids(name, "haproxy", None).values())
            if len(pids) != 1:
                raise LabError(f"{name}: {len(pids)} haproxy containers running, not one")
            return haproxy_api.socket_path(pids[0])

        watch = ServerWatch(path, server)
        watch.start(timeout)
        return watch

    def cpu_seconds(self, name: str, pod: str, container: str) -> float:
        """CPU time (user + system, children included) a container's main process has used so far."""
        return sum(cpu_seconds(pid) for pid in self._pids(name, pod, container).values())

    def pod_cpu_seconds(self, name: str, pod: str) -> float | None:
        """CPU time of a pod's containers from their cgroups (every process, short-lived forks included).

        None when a container has no cgroup of its own (the host runtime shares the lab's).
        """
        own = cpu_cgroup(os.getpid())
        found = {cpu_cgroup(pid) for pid in self._pids(name, pod, None).values()}
        paths = {p for p in found if p is not None}
        if not paths or len(paths) < len(found) or own in paths:
            return None
        return sum(cgroup_cpu_seconds(path) for path in paths)

    def stop_apiserver(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill (or with SIGSTOP hang) a node's stand-in apiserver."""
        kill_pid(self.nodes[name].apiserver, sig)

    def set_link(self, name: str, up: bool) -> None:
        """Plug or pull a node's cable: the bridge side of its veth."""
        node = self.nodes[name]
        run_cmd(["ip", "-n", self.bridge_ns, "link", "set", node.veth, "up" if up else "down"])
        self._mark(node, linked=up)

    def _mark(self, node: NodeState, linked: bool | None = None, powered: bool | None = None) -> None:
        was = node.linked and node.powered
        node.linked = node.linked if linked is None else linked
        node.powered = node.powered if powered is None else powered
        now = time.time()
        if was and not (node.linked and node.powered):
            node.offline_since.append((now, float("inf")))
        elif not was and node.linked and node.powered:
            node.offline_since[-1] = (node.offline_since[-1][0], now)

    def power_off(self, name: str) -> None:
        """Kill every process in the node's namespace (all started by the lab) and drop its link."""
        node = self.nodes[name]
        run_cmd(["ip", "-n", self.bridge_ns, "link", "set", node.veth, "down"])
        self._mark(node, powered=False)
        monitors = {p.pid for p in self.monitor.procs.values()}
        for pid in pids_in_netns(node.ns):
            if pid not in monitors:
                kill_pid(pid)
        wait_for(lambda: not [p for p in pids_in_netns(node.ns) if p not in monitors], 10, f"{name}: power off")
        self._forget(name, dict(node.containers))
        # a machine that is off holds no address: what it held dies with it
        for line in run_cmd(["ip", "-n", node.ns, "-o", "-4", "addr", "show"]).stdout.splitlines():
            if f" {self.topo.vip}/" in line:
                words = line.split()
                run_cmd(["ip", "-n", node.ns, "addr", "del", words[3], "dev", words[1]], check=False)

    def power_on(self, name: str) -> None:
        """Boot a powered-off node: link up, apiserver, haproxy, keepalived."""
        node = self.nodes[name]
        run_cmd(["ip", "-n", self.bridge_ns, "link", "set", node.veth, "up"])
        self._mark(node, powered=True)
        self.start_apiserver(name)
        self.start_pods(name)

    def healthy(self, name: str) -> bool:
        """True when the node is powered, linked and its haproxy and keepalived run and are not hung."""
        node = self.nodes[name]
        pods = {key.split("/")[0] for key in node.containers}
        return (node.linked and node.powered and {"haproxy", "keepalived"} <= pods
                and all(alive(p) and not stopped(p) for p in node.containers.values()))

    def connected(self, name: str, t: float) -> bool:
        """True when the node was linked and powered at time ``t``."""
        return not any(a <= t < b for a, b in self.nodes[name].offline_since)

    def wait_single_holder(self, timeout: float, stable: float = 1.0) -> str:
        """Wait until exactly one node holds the VIP for ``stable`` seconds; return it."""
        deadline = time.time() + timeout
        since, last = time.time(), frozenset(self.monitor.current())
        while time.time() < deadline:
            now = frozenset(self.monitor.current())
            if now != last:
                since, last = time.time(), now
            elif len(now) == 1 and time.time() - since >= stable:
                return next(iter(now))
            time.sleep(0.05)
        raise LabError(f"no single VIP holder after {timeout:.0f} s (holders: {sorted(last) or 'none'}); "
                       f"logs in {self.workdir}")

    def client(self, duration: float, rate: float, out: Path) -> subprocess.Popen[bytes]:
        """Start the client in its namespace: new TLS connections to VIP:port, bounded in rate and time."""
        argv = self.cgroup.wrap(["ip", "netns", "exec", self.client_ns, sys.executable, "-m", "kubeha.lab", "client",
                                 str(self.topo.vip), str(self.topo.lb_port), str(rate), str(duration)])
        with open(out, "wb") as fh:
            return subprocess.Popen(argv, stdout=fh, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def watch(self, duration: float, out: Path) -> subprocess.Popen[bytes]:
        """Start a long-lived TLS watch through VIP:port in the client namespace (reconnects when it breaks)."""
        argv = self.cgroup.wrap(["ip", "netns", "exec", self.client_ns, sys.executable, "-m", "kubeha.lab", "watch",
                                 str(self.topo.vip), str(self.topo.lb_port), str(duration)])
        with open(out, "wb") as fh:
            return subprocess.Popen(argv, stdout=fh, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    # ----- teardown

    def down(self) -> None:
        """Tear everything down: processes in the lab namespaces (by PID), containers, namespaces, files."""
        self.monitor.stop()
        for node in self.nodes.values():
            for pid in pids_in_netns(node.ns):
                kill_pid(pid, signal.SIGCONT)
                kill_pid(pid)
        for ns in (self.client_ns,):
            for pid in pids_in_netns(ns):
                kill_pid(pid)
        self.runtime.cleanup()
        for proc in self._apiserver_procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for ns in reversed(self.namespaces):
            run_cmd(["ip", "netns", "del", ns], check=False)
        self.namespaces.clear()
        for run in self._tmpfs:
            if run_cmd(["umount", str(run)], check=False).returncode != 0:
                run_cmd(["umount", "-l", str(run)], check=False)
        self._tmpfs.clear()
        left = self.cgroup.remove()
        if left:
            print(f"lab: cgroups left behind (processes still in them): {', '.join(map(str, left))}",
                  file=sys.stderr)
