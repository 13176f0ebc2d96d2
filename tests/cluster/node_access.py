"""Reaching into the cluster lab's nodes: Docker, ``docker exec`` (reads, and the kubeadm stand-in), files in
and out, each node's journal and container logs, etcdctl; and the small helpers the lab polls with.

Split from tests/cluster/lab.py (bring-up, network, faults), which builds on :class:`NodeAccess`.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from e2e.daemons import Daemon
from kubeha.lab.base import LabError


@dataclass
class Node:
    name: str
    address: str
    container: str = ""
    ns: str = ""
    veth: str = ""
    seed: dict[str, bytes] = field(default_factory=dict)


def poll(cond: Callable[[], bool], timeout: float, what: Callable[[], str], interval: float = 1.0) -> None:
    """Ask ``cond`` every ``interval`` seconds until it holds; LabError naming ``what()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what()}")
        time.sleep(interval)


def stats_command(sock: Path, command: str, timeout: float = 5) -> str:
    """One command on a haproxy stats socket; haproxy answers and closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(sock))
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class NodeAccess:
    """Access to the lab's node containers in ``dockerd`` (the subclass fills ``nodes``)."""

    def __init__(self, dockerd: Daemon) -> None:
        self.dockerd = dockerd
        self.nodes: dict[str, Node] = {}

    def docker(self, *args: str, timeout: float = 120, check: bool = True,
               stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=timeout,
                              env=self.dockerd.env(), check=False)
        if check and proc.returncode != 0:
            raise LabError(f"docker {' '.join(args[:3])}: {proc.stderr.decode(errors='replace')[-2000:]}")
        return proc

    def exec(self, node: str, *cmd: str, timeout: float = 120, check: bool = True) -> str:
        """Run a command in a node (reads, and the kubeadm stand-in); return its stdout."""
        proc = self.docker("exec", self.nodes[node].container, *cmd, timeout=timeout, check=False)
        out = proc.stdout.decode(errors="replace")
        if check and proc.returncode != 0:
            raise LabError(f"{node}: {' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}"
                           f"{proc.stderr.decode(errors='replace')[-3000:]}")
        return out

    def read_file(self, node: str, path: str) -> bytes:
        """One file out of a node (``docker cp`` to a tar stream)."""
        data = self.docker("cp", f"{self.nodes[node].container}:{path}", "-").stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            assert member is not None and member.isfile(), f"{node}:{path} is not a file"
            extracted = tar.extractfile(member)
            assert extracted is not None
            return extracted.read()

    def put_files(self, node: str, files: dict[str, tuple[bytes, int]]) -> None:
        """Put files (absolute path -> (data, mode)) into a node, parents created, as one tar stream."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            dirs: set[str] = set()
            for path in files:
                parts = path.strip("/").split("/")[:-1]
                dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
            for d in sorted(dirs):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for path, (data, mode) in files.items():
                info = tarfile.TarInfo(path.strip("/"))
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        self.docker("cp", "-", f"{self.nodes[node].container}:/", stdin=buf.getvalue())

    def journal(self, name: str, unit: str | None = None) -> str:
        args = ["journalctl", "--no-pager", "-o", "short-monotonic"] + (["-u", unit] if unit else [])
        return self.exec(name, *args, check=False, timeout=30)

    def etcdctl(self, name: str, *args: str) -> str:
        """etcdctl on a node against its local etcd, with kubeadm's health-check client certificate."""
        pki = "/etc/kubernetes/pki/etcd"
        return self.exec(name, "etcdctl", "--endpoints", "https://127.0.0.1:2379", "--cacert", f"{pki}/ca.crt",
                         "--cert", f"{pki}/healthcheck-client.crt", "--key", f"{pki}/healthcheck-client.key",
                         *args, timeout=30)

    def move_etcd_leader(self, name: str) -> None:
        """Make ``name``'s etcd member the leader (the bench's worst case for a power-off)."""
        status = json.loads(self.etcdctl(name, "endpoint", "status", "-w", "json"))[0]["Status"]
        member, leader = status["header"]["member_id"], status["leader"]
        if member != leader:
            members = json.loads(self.etcdctl(name, "member", "list", "-w", "json"))["members"]
            leader_url = next(m["clientURLs"][0] for m in members if m["ID"] == leader)
            self.exec(name, "etcdctl", "--endpoints", leader_url, "--cacert", "/etc/kubernetes/pki/etcd/ca.crt",
                      "--cert", "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                      "--key", "/etc/kubernetes/pki/etcd/healthcheck-client.key", "move-leader", f"{member:x}",
                      timeout=30)

    def dump(self, where: Path) -> Path:
        """Each started node's journal, its containers (crictl) and the logs of every container that exited."""
        where.mkdir(parents=True, exist_ok=True)
        for name, node in self.nodes.items():
            if not node.ns:
                continue
            (where / f"{name}.journal").write_text(self.journal(name))
            ps = self.exec(name, "crictl", "ps", "-a", check=False, timeout=30)
            (where / f"{name}.crictl").write_text(ps)
            for line in ps.splitlines()[1:]:
                cols = line.split()
                if cols and "Exited" in line:
                    log = self.exec(name, "crictl", "logs", "--tail", "200", cols[0], check=False, timeout=30)
                    (where / f"{name}.{cols[0][:12]}.log").write_text(log)
        return where

