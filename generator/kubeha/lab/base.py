"""The lab's ground floor: LabError, constants, and the process and command helpers every lab module uses."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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



def run_cmd(args: Sequence[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
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
    run_cmd(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
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


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send a signal to one PID, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (keepalived's VRRP and checker children, haproxy workers)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as fh:
                for child in fh.read().split():
                    out += [int(child), *descendants(int(child))]
    return out


def alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stopped(pid: int) -> bool:
    """True when ``pid`` is stopped by a signal (hung on purpose)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def port_open(ns: str, addr: str, port: int) -> bool:
    """True when something listens on addr:port inside namespace ``ns``."""
    out = run_cmd(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"], check=False).stdout
    return f":{port}" in out


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` every 50 ms until it holds; LabError after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise LabError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its waited-for children (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_cgroup(pid: int) -> str | None:
    """Where a process's CPU time is accounted: ``/sys/fs/cgroup/...`` (cgroup v1 cpuacct, else v2).

    None when the process is gone or has no CPU accounting cgroup.
    """
    try:
        with open(f"/proc/{pid}/cgroup") as fh:
            lines = [line.rstrip("\n").split(":", 2) for line in fh]
    except OSError:
        return None
    for _, controllers, path in lines:
        if "cpuacct" in controllers.split(","):
            return f"/sys/fs/cgroup/{controllers}{path}"
    for hid, _, path in lines:
        if hid == "0" and os.path.isfile(f"/sys/fs/cgroup{path}/cpu.stat"):
            return f"/sys/fs/cgroup{path}"
    return None


def cgroup_cpu_seconds(path: str) -> float:
    """CPU seconds used so far by every process ever in the cgroup at ``path``."""
    if os.path.isfile(f"{path}/cpuacct.usage"):
        with open(f"{path}/cpuacct.usage") as fh:
            return int(fh.read()) / 1e9
    with open(f"{path}/cpu.stat") as fh:
        return int(dict(line.split() for line in fh)["usage_usec"]) / 1e6
