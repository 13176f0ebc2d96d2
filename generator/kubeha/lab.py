"""Failover lab: the generated keepalived + haproxy configs run in network namespaces, then broken on purpose.

One namespace per master plus one for a client, each joined by a veth to a bridge that lives in its own
namespace: nothing touches the root namespace and there is no route out. Every master runs a stand-in
apiserver (TLS on the apiserver port), and haproxy + keepalived exactly as the generated static pod manifests
say (command, args, hostPath mounts, capabilities), either from the built images through containerd
(``ctr run --with-ns network:...``) or, in ``host`` mode, with this machine's binaries in a private mount
namespace that bind-mounts the same files at the same paths.

A scenario breaks the VIP holder (or a peer), then restores it, while a client opens new TLS connections to
VIP:port at a bounded rate and ``ip -ts monitor address`` records every VIP add and delete per node. The result
says how long the VIP took to move, how many client requests failed, how many extra moves (flaps) happened
and whether two connected nodes ever held the VIP at once.

``python -m kubeha.lab apiserver|client ...`` runs the two helpers that live inside the namespaces.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from kubeha.errors import KubehaError

#: Lab hosts and VIPs must come from the benchmarking range (RFC 2544), never from a real network.
LAB_NET = ipaddress.ip_network("198.18.0.0/15")
KEEPALIVED_CONF = "keepalived.conf"
HAPROXY_CFG = "haproxy.cfg"
POD_MANIFESTS = ("haproxy.yaml", "keepalived.yaml")  # start order: haproxy first, the check goes through it
RUNTIMES = ("containerd", "host")
#: node name -> ({absolute path: content}, {absolute path: mode}) of the files its user-data writes
NodeFiles = dict[str, tuple[dict[str, bytes], dict[str, int]]]
CTR_NAMESPACE = "k8s.io"
LAB_PREFIX = "khlab"  # every namespace and container of a lab starts with this


class LabError(KubehaError):
    """The lab cannot be built or run (missing tool, not root, configs it cannot replicate)."""


# --------------------------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class Mount:
    """One hostPath volume mount of a static pod container."""

    host_path: str
    container_path: str
    read_only: bool


@dataclass(frozen=True)
class ContainerSpec:
    """What the lab needs from one container of a generated static pod manifest."""

    pod: str
    name: str
    image: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    mounts: tuple[Mount, ...]
    cap_add: tuple[str, ...]
    privileged: bool


@dataclass(frozen=True)
class Master:
    """A master node of the lab: its address and the files the user-data writes on it."""

    name: str
    address: ipaddress.IPv4Address
    files: Mapping[str, bytes]  # absolute destination path -> content
    modes: Mapping[str, int]
    interface: str = "eth0"  # the NIC keepalived.conf names: the veth inside the node's namespace

    def find(self, basename: str) -> tuple[str, bytes]:
        """Return (path, content) of the file with this basename; LabError when there is none."""
        return _find(self.name, self.files, basename)


def _find(node: str, files: Mapping[str, bytes], basename: str) -> tuple[str, bytes]:
    """The first (by path) of a node's files with this basename; LabError when there is none."""
    hits = sorted(p for p in files if p.rsplit("/", 1)[-1] == basename)
    if not hits:
        raise LabError(f"{node}: the generated files have no {basename}")
    return hits[0], files[hits[0]]


@dataclass(frozen=True)
class Topology:
    """The lab's shape as read from the generated files."""

    masters: tuple[Master, ...]
    vip: ipaddress.IPv4Address
    prefix: int
    lb_port: int
    api_port: int
    timing: Mapping[str, float]  # advert, interval, fall, rise of the keepalived config

    def master(self, name: str) -> Master:
        """Return the master called ``name``."""
        return next(m for m in self.masters if m.name == name)


def files_from_user_data(text: str, source: str) -> tuple[dict[str, bytes], dict[str, int]]:
    """Return ({path: content}, {path: mode}) of a #cloud-config's write_files."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LabError(f"{source}: not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise LabError(f"{source}: not a #cloud-config mapping")
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    for entry in doc.get("write_files") or []:
        path = str(entry["path"])
        files[path] = _decode(entry.get("content", ""), str(entry.get("encoding", "text")), source)
        modes[path] = int(str(entry.get("permissions", "0644")), 8)
    return files, modes


def _decode(content: str, encoding: str, source: str) -> bytes:
    """Decode a write_files content the way cloud-init does."""
    if encoding in ("text", "", "none"):
        return content.encode()
    raw = base64.b64decode(content)
    if encoding in ("b64", "base64"):
        return raw
    if encoding in ("gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
        return gzip.decompress(raw)
    raise LabError(f"{source}: unsupported write_files encoding {encoding!r}")


def _keepalived_values(conf: str, source: str) -> dict[str, str]:
    """Pick the few keepalived.conf values the lab needs (first occurrence of each keyword)."""
    values: dict[str, str] = {}
    lines = iter(conf.splitlines())
    for raw in lines:
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "virtual_ipaddress":
            vip_words = next(lines).split()
            values.setdefault("vip", vip_words[0] if vip_words and vip_words[0] != "}" else "")
        elif len(words) > 1 and words[0] in ("interface", "advert_int", "interval", "fall", "rise",
                                            "unicast_src_ip", "priority"):
            values.setdefault(words[0], words[1])
    for key in ("interface", "vip"):
        if not values.get(key):
            raise LabError(f"{source}: no {key} found")
    return values


def _haproxy_values(cfg: str, source: str) -> tuple[int, dict[str, tuple[str, int]]]:
    """Return the frontend port and {server name: (address, port)} of haproxy.cfg."""
    port = 0
    servers: dict[str, tuple[str, int]] = {}
    for raw in cfg.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "bind" and not port:
            port = int(words[1].rsplit(":", 1)[1])
        elif len(words) >= 3 and words[0] == "server":
            addr, _, sport = words[2].rpartition(":")
            servers[words[1]] = (addr, int(sport))
    if not port or not servers:
        raise LabError(f"{source}: no bind port or no server lines found")
    return port, servers


def topology(node_files: Mapping[str, tuple[Mapping[str, bytes], Mapping[str, int]]]) -> Topology:
    """Build the lab topology from each node's generated files; nodes without keepalived.conf are workers."""
    masters: list[Master] = []
    first: dict[str, str] = {}
    lb_port = 0
    servers: dict[str, tuple[str, int]] = {}
    for name in sorted(node_files):
        files, modes = node_files[name]
        if not any(p.endswith("/" + KEEPALIVED_CONF) for p in files):
            continue
        ka = _keepalived_values(_find(name, files, KEEPALIVED_CONF)[1].decode(), f"{name}/{KEEPALIVED_CONF}")
        lb_port, servers = _haproxy_values(_find(name, files, HAPROXY_CFG)[1].decode(), f"{name}/{HAPROXY_CFG}")
        first = first or ka
        addr = servers[name][0] if name in servers else ka.get("unicast_src_ip", "")
        if not addr:
            raise LabError(f"{name}: cannot tell its address (no haproxy server named {name}, no unicast_src_ip)")
        masters.append(Master(name, ipaddress.IPv4Address(addr), files, modes, ka["interface"]))
    if len(masters) < 2:
        raise LabError("the lab needs at least two masters with keepalived.conf")
    vip = ipaddress.IPv4Address(first["vip"].split("/")[0])
    api_ports = {port for _, port in servers.values()}
    timing: dict[str, float] = {k: float(first[k]) for k in ("advert_int", "interval", "fall", "rise") if k in first}
    prefix = _common_prefix([m.address for m in masters] + [vip])
    return Topology(tuple(masters), vip, prefix, lb_port, min(api_ports), timing)


def _common_prefix(addrs: Sequence[ipaddress.IPv4Address]) -> int:
    """Longest prefix (at most /24) that puts every address in one subnet."""
    for prefix in range(24, 0, -1):
        if len({ipaddress.ip_network(f"{a}/{prefix}", strict=False) for a in addrs}) == 1:
            return prefix
    return 8


def check_lab_addresses(topo: Topology) -> None:
    """Refuse addresses outside 198.18.0.0/15 (the house rule for anything that sends traffic)."""
    outside = [str(a) for a in [topo.vip, *(m.address for m in topo.masters)] if a not in LAB_NET]
    if outside:
        raise LabError(f"addresses outside {LAB_NET}: {', '.join(outside)} (use --remap to move them into it)")


def remap_addresses(node_files: NodeFiles) -> dict[str, str]:
    """Rewrite every master address and the VIP in the generated files onto 198.18.0.0/24, in place.

    The lab is an isolated replica, but tests and drills only ever put 198.18.0.0/15 on a wire. Addresses
    keep their order: the VIP becomes 198.18.0.10 and the masters 198.18.0.11 onwards (by name).
    Returns the mapping applied.
    """
    topo = topology(node_files)
    mapping = {str(topo.vip): "198.18.0.10"}
    for i, master in enumerate(topo.masters):
        mapping.setdefault(str(master.address), f"198.18.0.{11 + i}")
    pattern = re.compile(r"(?<![\d.])(" + "|".join(re.escape(a) for a in mapping) + r")(?![\d])")
    for files, _ in node_files.values():
        for path, data in files.items():
            text = data.decode(errors="surrogateescape")
            files[path] = pattern.sub(lambda m: mapping[m.group(1)], text).encode(errors="surrogateescape")
    return mapping


def files_from_output_dir(out: Path) -> NodeFiles:
    """Read ``kubeha gen userdata`` output: OUT/<node>/user-data for every node."""
    found = sorted(out.glob("*/user-data"))
    if not found:
        raise LabError(f"{out}: no <node>/user-data files (is this `kubeha gen userdata` output?)")
    return {p.parent.name: files_from_user_data(p.read_text(), str(p)) for p in found}


def files_from_inventory(inventory: Path, profile: str | None = None) -> NodeFiles:
    """Generate every node's user-data from an inventory (optionally with another profile) and read it back.

    Nothing is written beside the inventory: when the VRRP secret file does not exist yet, the lab uses a
    throwaway secret (the lab's VRRP traffic never leaves its namespaces).
    """
    from dataclasses import replace

    from kubeha import generate
    from kubeha.context import needs_secret
    from kubeha.deliver import cloudinit
    from kubeha.profiles import PROFILES
    from kubeha.render import render_cluster

    cluster = generate.load_cluster(inventory).cluster
    if profile:
        if profile not in PROFILES:
            raise LabError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
        cluster = replace(cluster, profile=PROFILES[profile])
    secret = None
    if needs_secret(cluster):
        secret = generate.read_secret(inventory, create=False) or secrets.token_hex(4)
    docs = render_cluster(cluster, secret)
    return {d.name: files_from_user_data(cloudinit.to_user_data(d), f"{d.name}/user-data") for d in docs}


def container_specs(master: Master) -> list[ContainerSpec]:
    """Read the containers of the generated haproxy and keepalived static pod manifests."""
    specs: list[ContainerSpec] = []
    for basename in POD_MANIFESTS:
        path, data = master.find(basename)
        pod = yaml.safe_load(data)
        spec = pod.get("spec") or {}
        if not spec.get("hostNetwork"):
            raise LabError(f"{master.name}:{path}: hostNetwork is not true; the lab replicates host-network pods")
        volumes = {v["name"]: v.get("hostPath", {}).get("path") for v in spec.get("volumes") or []}
        for ctr in spec.get("containers") or []:
            specs.append(_container_spec(master.name, path, basename.split(".")[0], ctr, volumes))
    return specs


def _container_spec(node: str, path: str, pod: str, ctr: dict[str, Any],
                    volumes: Mapping[str, str | None]) -> ContainerSpec:
    """Translate one manifest container into a ContainerSpec."""
    argv = tuple(str(a) for a in (ctr.get("command") or []) + (ctr.get("args") or []))
    if not ctr.get("command"):
        raise LabError(f"{node}:{path}: container {ctr.get('name')} has no command; the lab runs it verbatim")
    mounts = []
    for vm in ctr.get("volumeMounts") or []:
        host = volumes.get(vm["name"])
        if not host or vm.get("subPath"):
            raise LabError(f"{node}:{path}: volume {vm['name']} is not a plain hostPath mount")
        mounts.append(Mount(host, vm["mountPath"], bool(vm.get("readOnly", False))))
    sec = ctr.get("securityContext") or {}
    caps = tuple(str(c) for c in (sec.get("capabilities") or {}).get("add") or [])
    env = tuple((str(e["name"]), str(e.get("value", ""))) for e in ctr.get("env") or [])
    return ContainerSpec(pod, str(ctr["name"]), str(ctr["image"]), argv, env, tuple(mounts), caps,
                         bool(sec.get("privileged", False)))


# --------------------------------------------------------------------------------------------- commands


def _run(args: Sequence[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command, raising LabError with its stderr when it fails."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{shlex.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return proc


def require_tools(runtime: str) -> None:
    """Refuse clearly when not root or when a tool the lab needs is missing."""
    if os.geteuid() != 0:
        raise LabError("the failover lab needs root (network namespaces, veths, mounts)")
    tools = {"ip": "iproute2", "openssl": "openssl", "unshare": "util-linux", "curl": "curl"}
    if runtime == "host":
        tools |= {"keepalived": "keepalived", "haproxy": "haproxy"}
    else:
        tools |= {"ctr": "containerd"}
    missing = [f"{tool} (apt-get install {pkg})" for tool, pkg in tools.items() if not shutil.which(tool)]
    if missing:
        raise LabError("missing tools: " + ", ".join(missing))


def make_cert(directory: Path) -> tuple[Path, Path]:
    """Make a throwaway self-signed certificate for the stand-in apiservers."""
    cert, key = directory / "apiserver.crt", directory / "apiserver.key"
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-days", "2", "-subj", "/CN=kube-apiserver", "-keyout", str(key), "-out", str(cert)])
    return cert, key


def pids_in_netns(ns: str) -> list[int]:
    """PIDs of every process whose network namespace is /run/netns/``ns``."""
    try:
        target = os.stat(f"/run/netns/{ns}").st_ino
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/net").st_ino == target:
                    pids.append(int(entry))
    return pids


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send a signal to one PID, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# --------------------------------------------------------------------------------------------- runtimes


class Runtime:
    """Starts the containers of the static pods inside a node's namespace."""

    name = "base"

    def start(self, ns: str, root: Path, spec: ContainerSpec, log: Path) -> int:
        """Start a container and return the PID of its main process."""
        raise NotImplementedError

    def remove(self, ns: str, spec: ContainerSpec) -> None:
        """Forget a container whose processes are dead (so it can be started again)."""

    def cleanup(self) -> None:
        """Remove whatever the runtime still holds for this lab."""


class HostRuntime(Runtime):
    """This machine's binaries, in a private mount namespace with the pod's hostPath mounts."""

    name = "host"

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, ns: str, root: Path, spec: ContainerSpec, log: Path) -> int:
        """Start the container's command with `ip netns exec` + `unshare --mount`."""
        script = ["set -e", "mount -t tmpfs -o mode=0755 lab-run /run"]
        for parent in _missing_parents(spec.mounts):
            # a file this machine lacks (no /etc/keepalived/keepalived.conf here): show the node's directory
            script.append(f"mount --bind {shlex.quote(str(root / parent.lstrip('/')))} {shlex.quote(parent)}")
        for m in spec.mounts:
            src = shlex.quote(str(root / m.host_path.lstrip("/")))
            dst = shlex.quote(m.container_path)
            script.append(f"mount --bind {src} {dst}")
            if m.read_only:
                script.append(f"mount -o remount,bind,ro {dst}")
        script.append('exec "$@"')
        argv = ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "--",
                "sh", "-c", "\n".join(script), "sh", *spec.argv]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **dict(spec.env)}
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        self.procs.append(proc)
        return proc.pid

    def cleanup(self) -> None:
        """Reap the children (they are killed by the lab, by PID)."""
        for proc in self.procs:
            _kill(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _missing_parents(mounts: Sequence[Mount]) -> list[str]:
    """Directories to bind whole in host mode because a mount target does not exist on this machine."""
    parents = []
    for m in mounts:
        if not os.path.exists(m.container_path):
            parent = os.path.dirname(m.container_path)
            if m.host_path != m.container_path or not os.path.isdir(parent):
                raise LabError(f"host runtime: {m.container_path} does not exist on this machine; "
                               "use --runtime containerd")
            parents.append(parent)
    return sorted(set(parents))


class ContainerdRuntime(Runtime):
    """The built images, through ``ctr run --with-ns network:/run/netns/<node>``."""

    name = "containerd"

    def __init__(self, address: str) -> None:
        self.address = address
        self.ids: set[str] = set()

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ctr", "-a", self.address, "-n", CTR_NAMESPACE, *args], check=check)

    def check_images(self, images: Sequence[str]) -> None:
        """Refuse when an image of the manifests is not in containerd's k8s.io namespace."""
        have = set(self._ctr("images", "ls", "-q").stdout.split())
        missing = sorted(set(images) - have)
        if missing:
            raise LabError(f"images not in containerd ({self.address}, namespace {CTR_NAMESPACE}): "
                           f"{', '.join(missing)}; import them with `ctr -n k8s.io images import` (or --images)")

    def import_images(self, tarball: Path) -> None:
        """Import a docker-archive into containerd's k8s.io namespace."""
        _run(["ctr", "-a", self.address, "-n", CTR_NAMESPACE, "images", "import", str(tarball)], timeout=600)

    def _runc_wrapper(self, workdir: Path) -> Path:
        """A runc that first drops the spec's RLIMIT_NOFILE, then runs the real runc.

        ctr's default spec pins RLIMIT_NOFILE to 1024; kubelet's CRI path sets none, so a static pod inherits
        containerd's limit (Debian's containerd.service: LimitNOFILE=infinity). Without this, haproxy's
        ``maxconn 4096`` fails in the lab ("Cannot raise FD limit") where it works on a node.
        """
        wrapper = workdir / "runc-inherit-nofile"
        if not wrapper.exists():
            runc = shutil.which("runc") or "/usr/sbin/runc"
            edit = ("import json,sys;p=sys.argv[1];s=json.load(open(p));r=s['process'].get('rlimits') or [];"
                    "s['process']['rlimits']=[x for x in r if x['type']!='RLIMIT_NOFILE'];"
                    "json.dump(s,open(p,'w'))")
            python = shlex.quote(sys.executable)
            wrapper.write_text(f"""#!/bin/sh
prev=""; bundle=""
for a in "$@"; do [ "$prev" = "--bundle" ] && bundle="$a"; prev="$a"; done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
    {python} -c {shlex.quote(edit)} "$bundle/config.json"
fi
exec {shlex.quote(runc)} "$@"
""")
            wrapper.chmod(0o755)
        return wrapper

    def _id(self, ns: str, spec: ContainerSpec) -> str:
        return f"{ns}-{spec.pod}-{spec.name}"

    def start(self, ns: str, root: Path, spec: ContainerSpec, log: Path) -> int:
        """`ctr run -d` the container in the node's network namespace, as kubelet would with hostNetwork."""
        cid, pidfile = self._id(ns, spec), log.with_suffix(".pid")
        args = ["run", "-d", "--with-ns", f"network:/run/netns/{ns}", "--pid-file", str(pidfile),
                "--log-uri", f"file://{log}", "--runc-binary", str(self._runc_wrapper(log.parent.parent))]
        for m in spec.mounts:
            src, mode = root / m.host_path.lstrip("/"), "ro" if m.read_only else "rw"
            args += ["--mount", f"type=bind,src={src},dst={m.container_path},options=rbind:{mode}"]
        args += [f"--cap-add=CAP_{c.upper().removeprefix('CAP_')}" for c in spec.cap_add]
        args += ["--privileged"] if spec.privileged else []
        args += [f"--env={k}={v}" for k, v in spec.env]
        self._ctr(*args, spec.image, cid, *spec.argv)
        self.ids.add(cid)
        return int(pidfile.read_text().strip())

    def remove(self, ns: str, spec: ContainerSpec) -> None:
        """Delete the dead task and the container so the same id can run again."""
        self._delete(self._id(ns, spec))

    def _delete(self, cid: str) -> None:
        self._ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
        for _ in range(50):
            if self._ctr("task", "delete", cid, check=False).returncode == 0 or not self._task_exists(cid):
                break
            time.sleep(0.1)
        self._ctr("container", "delete", cid, check=False)
        self.ids.discard(cid)

    def _task_exists(self, cid: str) -> bool:
        return cid in self._ctr("task", "ls", "-q", check=False).stdout.split()

    def cleanup(self) -> None:
        """Kill and delete every container this lab made."""
        for cid in sorted(self.ids):
            self._delete(cid)


# --------------------------------------------------------------------------------------------- monitoring


@dataclass
class VipEvent:
    """The VIP appeared on (``added``) or left a node at a wall-clock time."""

    t: float
    node: str
    added: bool


class VipMonitor:
    """One ``ip -ts monitor address`` per node namespace; keeps the VIP's add/delete events."""

    def __init__(self, vip: str) -> None:
        self.vip = vip
        self.events: list[VipEvent] = []
        self.holders: set[str] = set()
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.lock = threading.Lock()
        self._pattern = re.compile(r"^\[([0-9T:.\-]+)\]\s+(Deleted\s+)?\d+:\s+\S+\s+inet\s+" + re.escape(vip) + "/")

    def watch(self, node: str, ns: str) -> None:
        """Start watching a node (also records whether it holds the VIP right now)."""
        proc = subprocess.Popen(["ip", "-n", ns, "-ts", "monitor", "address"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        self.procs[node] = proc
        threading.Thread(target=self._read, args=(node, proc), daemon=True).start()
        time.sleep(0.05)
        now = time.time()
        out = _run(["ip", "-n", ns, "-o", "-4", "addr", "show"]).stdout
        if f" {self.vip}/" in out:
            self._record(VipEvent(now, node, True))

    def _read(self, node: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = self._pattern.match(line)
            if m:
                t = datetime.fromisoformat(m.group(1)).timestamp()
                self._record(VipEvent(t, node, not m.group(2)))

    def _record(self, event: VipEvent) -> None:
        with self.lock:
            if (event.node in self.holders) != event.added:
                self.events.append(event)
                (self.holders.add if event.added else self.holders.discard)(event.node)

    def current(self) -> set[str]:
        """Nodes that hold the VIP now."""
        with self.lock:
            return set(self.holders)

    def since(self, t: float) -> list[VipEvent]:
        """Events at or after ``t``, in time order."""
        with self.lock:
            return sorted((e for e in self.events if e.t >= t), key=lambda e: e.t)

    def holders_at(self, t: float) -> set[str]:
        """Nodes that held the VIP at time ``t``."""
        held: set[str] = set()
        with self.lock:
            for e in sorted(self.events, key=lambda e: e.t):
                if e.t > t:
                    break
                (held.add if e.added else held.discard)(e.node)
        return held

    def stop(self) -> None:
        """Stop every monitor process."""
        for proc in self.procs.values():
            _kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


# --------------------------------------------------------------------------------------------- the lab


@dataclass
class NodeState:
    """What the lab started on a node and whether it is up, linked and powered."""

    name: str
    ns: str
    veth: str
    root: Path
    apiserver: int = 0
    containers: dict[str, int] = field(default_factory=dict)  # pod name -> main PID
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
        self.monitor = VipMonitor(str(topo.vip))
        self.namespaces: list[str] = []
        self.cert: tuple[Path, Path] | None = None
        self.specs = {m.name: container_specs(m) for m in topo.masters}
        self._apiserver_procs: list[subprocess.Popen[bytes]] = []

    # ----- bring-up

    def up(self) -> None:
        """Build the network, start every daemon and wait for one VIP holder."""
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
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _network(self) -> None:
        self._ns(self.bridge_ns)
        _run(["ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", self.bridge_ns, "link", "set", "br0", "up"])
        taken = {m.address for m in self.topo.masters} | {self.topo.vip}
        net = ipaddress.ip_network(f"{self.topo.vip}/{self.topo.prefix}", strict=False)
        client_addr = next(a for a in reversed(list(net.hosts())) if a not in taken)
        ends = [(n.ns, n.veth, m.address, m.interface) for n, m in zip(self.nodes.values(), self.topo.masters,
                                                                         strict=True)]
        for ns, veth, addr, ifname in [*ends, (self.client_ns, "vc", client_addr, "eth0")]:
            self._ns(ns)
            _run(["ip", "-n", self.bridge_ns, "link", "add", veth, "type", "veth", "peer", "name", ifname,
                  "netns", ns])
            _run(["ip", "-n", self.bridge_ns, "link", "set", veth, "master", "br0", "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/{self.topo.prefix}", "dev", ifname])
            _run(["ip", "-n", ns, "link", "set", ifname, "up"])

    def _write_root(self, node: NodeState) -> None:
        """Lay the node's generated files out under its root, with their modes, owned by root."""
        master = self.topo.master(node.name)
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

    def start_apiserver(self, name: str) -> None:
        """Start the stand-in apiserver of a node."""
        assert self.cert
        node = self.nodes[name]
        addr = self.topo.master(name).address
        argv = ["ip", "netns", "exec", node.ns, sys.executable, "-m", "kubeha.lab", "apiserver", str(addr),
                str(self.topo.api_port), str(self.cert[0]), str(self.cert[1]), name]
        with open(self.workdir / name / "apiserver.log", "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._apiserver_procs.append(proc)
        node.apiserver = proc.pid
        _wait_for(lambda: _port_open(node.ns, str(addr), self.topo.api_port), 10, f"{name}: apiserver")

    def start_pods(self, name: str, pods: Sequence[str] = ("haproxy", "keepalived")) -> None:
        """Start the static pod containers of a node (haproxy before keepalived)."""
        node = self.nodes[name]
        for spec in self.specs[name]:
            if spec.pod in pods:
                log = self.workdir / name / f"{spec.pod}-{spec.name}.log"
                node.containers[spec.pod] = self.runtime.start(node.ns, node.root, spec, log)

    def stop_pod(self, name: str, pod: str, sig: int = signal.SIGKILL) -> None:
        """Signal a pod's main process (SIGKILL: it dies; SIGSTOP: it hangs)."""
        pid = self.nodes[name].containers[pod]
        if sig == signal.SIGSTOP:
            for child in [pid, *_descendants(pid)]:
                _kill(child, sig)
            return
        _kill(pid, sig)
        _wait_for(lambda: not _alive(pid), 10, f"{name}: {pod} to exit")
        self._forget_pod(name, pod)

    def _forget_pod(self, name: str, pod: str) -> None:
        node = self.nodes[name]
        for spec in self.specs[name]:
            if spec.pod == pod:
                self.runtime.remove(node.ns, spec)
        node.containers.pop(pod, None)

    def resume_pod(self, name: str, pod: str) -> None:
        """SIGCONT a hung pod."""
        pid = self.nodes[name].containers[pod]
        for child in [pid, *_descendants(pid)]:
            _kill(child, signal.SIGCONT)

    def stop_apiserver(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill (or with SIGSTOP hang) a node's stand-in apiserver."""
        _kill(self.nodes[name].apiserver, sig)

    def set_link(self, name: str, up: bool) -> None:
        """Plug or pull a node's cable: the bridge side of its veth."""
        node = self.nodes[name]
        _run(["ip", "-n", self.bridge_ns, "link", "set", node.veth, "up" if up else "down"])
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
        _run(["ip", "-n", self.bridge_ns, "link", "set", node.veth, "down"])
        self._mark(node, powered=False)
        monitors = {p.pid for p in self.monitor.procs.values()}
        for pid in pids_in_netns(node.ns):
            if pid not in monitors:
                _kill(pid)
        _wait_for(lambda: not [p for p in pids_in_netns(node.ns) if p not in monitors], 10, f"{name}: power off")
        for pod in list(node.containers):
            self._forget_pod(name, pod)
        # a machine that is off holds no address: what it held dies with it
        for line in _run(["ip", "-n", node.ns, "-o", "-4", "addr", "show"]).stdout.splitlines():
            if f" {self.topo.vip}/" in line:
                words = line.split()
                _run(["ip", "-n", node.ns, "addr", "del", words[3], "dev", words[1]], check=False)

    def power_on(self, name: str) -> None:
        """Boot a powered-off node: link up, apiserver, haproxy, keepalived."""
        node = self.nodes[name]
        _run(["ip", "-n", self.bridge_ns, "link", "set", node.veth, "up"])
        self._mark(node, powered=True)
        self.start_apiserver(name)
        self.start_pods(name)

    def healthy(self, name: str) -> bool:
        """True when the node is powered, linked and its haproxy and keepalived run and are not hung."""
        node = self.nodes[name]
        pids = [node.containers.get("haproxy", 0), node.containers.get("keepalived", 0)]
        return node.linked and node.powered and all(_alive(p) and not _stopped(p) for p in pids)

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
        argv = ["ip", "netns", "exec", self.client_ns, sys.executable, "-m", "kubeha.lab", "client",
                str(self.topo.vip), str(self.topo.lb_port), str(rate), str(duration)]
        with open(out, "wb") as fh:
            return subprocess.Popen(argv, stdout=fh, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    # ----- teardown

    def down(self) -> None:
        """Tear everything down: processes in the lab namespaces (by PID), containers, namespaces, files."""
        self.monitor.stop()
        for node in self.nodes.values():
            for pid in pids_in_netns(node.ns):
                _kill(pid, signal.SIGCONT)
                _kill(pid)
        for ns in (self.client_ns,):
            for pid in pids_in_netns(ns):
                _kill(pid)
        self.runtime.cleanup()
        for proc in self._apiserver_procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for ns in reversed(self.namespaces):
            _run(["ip", "netns", "del", ns], check=False)
        self.namespaces.clear()


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (keepalived's VRRP and checker children, haproxy workers)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as fh:
                for child in fh.read().split():
                    out += [int(child), *_descendants(int(child))]
    return out


def _alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stopped(pid: int) -> bool:
    """True when ``pid`` is stopped by a signal (hung on purpose)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def _port_open(ns: str, addr: str, port: int) -> bool:
    """True when something listens on addr:port inside namespace ``ns``."""
    out = _run(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"], check=False).stdout
    return f":{port}" in out


def _wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` every 50 ms until it holds; LabError after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise LabError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    """A way to break the lab, and how to restore it."""

    name: str
    title: str
    target: str  # "holder" or "peer"
    breaks: Callable[[Lab, str], None]
    restores: Callable[[Lab, str], None]
    moves: bool | None  # whether the VIP must leave the target (None: either is fine)


def _hang(pod: str) -> Callable[[Lab, str], None]:
    return lambda lab, n: lab.stop_pod(n, pod, signal.SIGSTOP)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("kill-haproxy", "haproxy killed on the VIP holder", "holder",
             lambda lab, n: lab.stop_pod(n, "haproxy"), lambda lab, n: lab.start_pods(n, ["haproxy"]), True),
    Scenario("hang-haproxy", "haproxy hung (SIGSTOP) on the VIP holder", "holder",
             _hang("haproxy"), lambda lab, n: lab.resume_pod(n, "haproxy"), True),
    Scenario("stop-apiserver", "apiserver stopped on the VIP holder", "holder",
             lambda lab, n: lab.stop_apiserver(n), lambda lab, n: lab.start_apiserver(n), None),
    Scenario("stop-peer-apiserver", "apiserver stopped on a non-holder", "peer",
             lambda lab, n: lab.stop_apiserver(n), lambda lab, n: lab.start_apiserver(n), False),
    Scenario("hang-peer-apiserver", "apiserver hung (SIGSTOP) on a non-holder", "peer",
             lambda lab, n: lab.stop_apiserver(n, signal.SIGSTOP),
             lambda lab, n: lab.stop_apiserver(n, signal.SIGCONT), False),
    Scenario("pull-cable", "cable pulled on the VIP holder", "holder",
             lambda lab, n: lab.set_link(n, False), lambda lab, n: lab.set_link(n, True), True),
    Scenario("power-off", "VIP holder powered off", "holder",
             lambda lab, n: lab.power_off(n), lambda lab, n: lab.power_on(n), True),
]}
DEFAULT_SCENARIOS = ("kill-haproxy", "hang-haproxy", "stop-apiserver", "stop-peer-apiserver",
                     "hang-peer-apiserver", "pull-cable", "power-off")


@dataclass
class Phase:
    """Measurements of one phase (the fault, or the restore) of a scenario."""

    moved_in: float | None  # seconds until the VIP was added on another node, None when it did not move
    moves: int  # how many times the VIP changed holder
    failed: int  # client requests that failed
    requests: int
    holder_after: str | None


@dataclass
class Result:
    """The outcome of one scenario."""

    scenario: str
    target: str
    holder_before: str
    fault: Phase
    restore: Phase
    flaps: int
    split_brain: int  # moments with two connected holders longer than the tolerance
    overlap_ms: float  # longest time two connected nodes held the VIP at once
    healthy_end: bool  # the VIP ended the fault phase on a healthy node
    problems: list[str] = field(default_factory=list)  # what went wrong (empty: the scenario passed)

    def as_dict(self) -> dict[str, Any]:
        """The result as plain data (for --json)."""
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class Timing:
    """How long a scenario waits; derived from the keepalived settings unless given."""

    move_timeout: float = 10.0
    settle: float = 3.0
    rate: float = 20.0
    # Two holders for less than VRRP's own master-down interval is convergence, not split brain: two backups
    # that time out together, or a preempting master and the old one, overlap until the next advert lands.
    # Longer than that means adverts are not getting through. The longest overlap is always reported.
    split_tolerance: float = 0.4

    @staticmethod
    def for_topology(topo: Topology, rate: float = 20.0) -> Timing:
        """Settle long enough for the slowest check to flap: rise or fall checks plus two adverts."""
        t = topo.timing
        advert = t.get("advert_int", 1.0)
        checks = t.get("interval", 1.0) * max(t.get("fall", 1.0), t.get("rise", 1.0), 2.0)
        return Timing(settle=max(3.0, checks + 2 * advert + 1.0), rate=rate,
                      split_tolerance=3 * advert + 0.1)


def run_scenario(lab: Lab, scenario: Scenario, timing: Timing) -> Result:
    """Break, observe, restore, observe; return the measurements."""
    holder = lab.wait_single_holder(timeout=30)
    target = holder if scenario.target == "holder" else sorted(n for n in lab.nodes if n != holder)[0]
    budget = 2 * (timing.move_timeout + timing.settle) + 2
    out = lab.workdir / f"client-{scenario.name}.jsonl"
    client = lab.client(budget, timing.rate, out)
    try:
        _wait_for(lambda: out.stat().st_size > 0, 10, "the client's first request")
        time.sleep(0.5)
        t0 = time.time()
        scenario.breaks(lab, target)
        _wait_move(lab, holder, t0, timing.move_timeout if scenario.moves else timing.settle)
        time.sleep(timing.settle)
        t1 = time.time()
        holder_mid = _sole(lab.monitor.current())
        healthy_end = holder_mid is not None and lab.healthy(holder_mid)
        scenario.restores(lab, target)
        time.sleep(timing.settle)
        with contextlib.suppress(LabError):
            lab.wait_single_holder(timeout=timing.move_timeout)
        t2 = time.time()
    finally:
        _kill(client.pid, signal.SIGTERM)
        client.wait(timeout=10)
    samples = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    fault = _phase(lab, holder, t0, t1, samples)
    restore = _phase(lab, holder_mid or holder, t1, t2, samples)
    count, overlap = _split_brain(lab, t0, t2, timing.split_tolerance)
    flaps = max(0, fault.moves - int(bool(scenario.moves))) + max(0, restore.moves - 1)
    result = Result(scenario.name, target, holder, fault, restore, flaps, count, round(overlap * 1000, 1),
                    healthy_end)
    result.problems = verdict(scenario, result, timing)
    return result


def verdict(scenario: Scenario, r: Result, timing: Timing) -> list[str]:
    """What a scenario got wrong: VIP not on a healthy node, two holders, no move (or a move) when expected."""
    problems = []
    if not r.healthy_end:
        problems.append(f"VIP not held by exactly one healthy node after the fault ({r.fault.holder_after})")
    if r.split_brain:
        problems.append(f"two connected nodes held the VIP for {r.overlap_ms:.0f} ms")
    if scenario.moves and (r.fault.moved_in is None or r.fault.moved_in > timing.move_timeout):
        problems.append(f"VIP did not leave {r.target} within {timing.move_timeout:.0f} s")
    if scenario.moves is False and r.fault.moves:
        problems.append("VIP moved although its holder stayed healthy")
    if r.restore.holder_after is None:
        problems.append("no single VIP holder after the restore")
    return problems


def _wait_move(lab: Lab, holder: str, t0: float, timeout: float) -> None:
    """Wait until the VIP is added on a node other than ``holder`` (or the timeout)."""
    deadline = t0 + timeout
    while time.time() < deadline:
        if any(e.added and e.node != holder for e in lab.monitor.since(t0)):
            return
        time.sleep(0.02)


def _sole(holders: set[str]) -> str | None:
    return next(iter(holders)) if len(holders) == 1 else None


def _phase(lab: Lab, holder: str, start: float, end: float, samples: list[dict[str, Any]]) -> Phase:
    """Measure one phase from the VIP events and the client's samples between ``start`` and ``end``."""
    events = [e for e in lab.monitor.since(start) if e.t < end]
    added = [e for e in events if e.added and e.node != holder]
    moves = _moves(lab, start, events)
    window = [s for s in samples if start <= s["t"] < end]
    held = lab.monitor.holders_at(end)
    return Phase(round(added[0].t - start, 3) if added else None, moves,
                 sum(1 for s in window if not s["ok"]), len(window), _sole(held))


def _moves(lab: Lab, start: float, events: list[VipEvent]) -> int:
    """How often a new node became the sole connected holder (a short two-holder overlap is not a move)."""
    last = _sole({n for n in lab.monitor.holders_at(start) if lab.connected(n, start)})
    moves = 0
    for e in events:
        sole = _sole({n for n in lab.monitor.holders_at(e.t) if lab.connected(n, e.t)})
        if sole is not None and sole != last:
            moves, last = moves + 1, sole
    return moves


def _split_brain(lab: Lab, start: float, end: float, tolerance: float) -> tuple[int, float]:
    """Count intervals where two connected nodes held the VIP longer than ``tolerance``; longest overlap."""
    edges = {start} | {e.t for e in lab.monitor.since(start) if e.t < end}
    for node in lab.nodes.values():
        edges |= {t for span in node.offline_since for t in span if start <= t < end}
    times = sorted(edges)
    count, longest, since = 0, 0.0, None
    for a, b in zip(times, [*times[1:], end], strict=True):
        several = len({n for n in lab.monitor.holders_at(a) if lab.connected(n, a)}) >= 2
        if several and since is None:
            since = a
        if since is not None and (not several or b >= end):
            stop = b if several else a
            longest = max(longest, stop - since)
            count += stop - since > tolerance
            since = None
    return count, longest


def run_drill(topo: Topology, runtime: Runtime, scenarios: Sequence[str], timing: Timing | None = None,
              workdir: Path | None = None, on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Bring a lab up, run the scenarios in order, always tear it down; return the results."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise LabError(f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    timing = timing or Timing.for_topology(topo)
    with _workdir(workdir) as wd:
        lab = Lab(topo, runtime, wd)
        results: list[Result] = []
        try:
            lab.up()
            for name in scenarios:
                results.append(run_scenario(lab, SCENARIOS[name], timing))
                if on_result:
                    on_result(results[-1])
        finally:
            lab.down()
            events = [{"t": e.t, "node": e.node, "added": e.added} for e in lab.monitor.since(0)]
            (wd / "vip-events.json").write_text(json.dumps(events, indent=1))
        return results


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    """A private (0700, root-owned) working directory, removed afterwards unless the caller gave one."""
    if given:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    path = Path(tempfile.mkdtemp(prefix="kubeha-lab-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------- in namespaces


def serve_apiserver(addr: str, port: int, cert: str, key: str, node: str) -> None:
    """A stand-in kube-apiserver: TLS, 200 on /healthz /readyz /livez /version, 404 elsewhere.

    /version also names the node, so the client can tell which apiserver haproxy picked.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    version = {"major": "1", "minor": "30", "gitVersion": "v1.30.0-kubeha-lab", "node": node}
    body = {"/healthz": b"ok", "/readyz": b"ok", "/livez": b"ok", "/version": json.dumps(version).encode()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            data = body.get(self.path.split("?")[0])
            self.send_response(200 if data else 404)
            self.send_header("Content-Type", "application/json" if self.path == "/version" else "text/plain")
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of the base class)
            return

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def finish_request(self, request: Any, client_address: Any) -> None:
            # The TLS handshake runs in the connection's own thread, with a timeout: a peer that vanished
            # mid-handshake (pulled cable, hung haproxy) must not stall every other client, as a handshake
            # in accept() would.
            request.settimeout(5.0)
            with contextlib.suppress(OSError):
                Handler(ctx.wrap_socket(request, server_side=True), client_address, self)

    Server((addr, port), Handler).serve_forever()


def _one_request(host: str, port: int, ctx: ssl.SSLContext) -> tuple[str, str]:
    """Open a new TLS connection, GET /version; return (error or '', the node that answered)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as raw, \
                ctx.wrap_socket(raw, server_hostname="kubernetes") as tls:
            tls.settimeout(1.0)
            tls.sendall(b"GET /version HTTP/1.0\r\nHost: kubernetes\r\n\r\n")
            reply = b""
            while chunk := tls.recv(4096):
                reply += chunk
    except OSError as exc:
        return type(exc).__name__, ""
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200 "):
        return f"status {head[:40]!r}", ""
    return "", str(json.loads(body).get("node", ""))


def run_client(host: str, port: int, rate: float, duration: float) -> None:
    """Open new TLS connections at ``rate`` per second for ``duration`` seconds; print one JSON line each."""
    from concurrent.futures import ThreadPoolExecutor

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    lock = threading.Lock()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def attempt(t: float) -> None:
        err, node = _one_request(host, port, ctx)
        with lock:
            print(json.dumps({"t": t, "ok": not err, "err": err, "by": node}), flush=True)

    start = time.time()
    with ThreadPoolExecutor(max_workers=max(4, int(rate * 2.5))) as pool:
        for i in range(int(rate * duration)):  # bounded in count and in time
            due = start + i / rate
            if stop.wait(max(0.0, due - time.time())):
                break
            pool.submit(attempt, time.time())


def main(argv: Sequence[str]) -> int:
    """Entry point of the helpers the lab runs inside namespaces."""
    if len(argv) == 6 and argv[0] == "apiserver":
        serve_apiserver(argv[1], int(argv[2]), argv[3], argv[4], argv[5])
    elif len(argv) == 5 and argv[0] == "client":
        run_client(argv[1], int(argv[2]), float(argv[3]), min(float(argv[4]), 600.0))
    else:
        print("usage: python -m kubeha.lab apiserver ADDR PORT CERT KEY NODE | client HOST PORT RATE SECONDS",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
