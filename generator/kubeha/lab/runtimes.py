"""How the lab starts a static pod's containers: this machine's binaries (host) or the built images (containerd)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from kubeha.lab.base import CTR_NAMESPACE, LabError, kill_pid, run_cmd
from kubeha.lab.cgroup import LabCgroup
from kubeha.lab.topology import ContainerSpec, Mount


class Runtime:
    """Starts the containers of the static pods inside a node's namespace."""

    name = "base"

    def start(self, ns: str, root: Path, spec: ContainerSpec, log: Path, cgroup: LabCgroup | None = None) -> int:
        """Start a container (in the lab's ``cgroup`` when given) and return the PID of its main process."""
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

    def start(self, ns: str, root: Path, spec: ContainerSpec, log: Path, cgroup: LabCgroup | None = None) -> int:
        """Start the container's command with `ip netns exec` + `unshare --mount` (in the lab's helpers cgroup)."""
        script = ["set -e", "mount -t tmpfs -o mode=0755 lab-run /run"]
        for m in spec.mounts:  # under the fresh /run: make the mount point (a directory, or a file)
            if m.container_path.startswith("/run/"):
                target = shlex.quote(m.container_path)
                is_dir = (root / m.host_path.lstrip("/")).is_dir()
                script.append(f"mkdir -p {target}" if is_dir else f"mkdir -p $(dirname {target}) && : > {target}")
        for parent in _missing_parents([m for m in spec.mounts if not m.container_path.startswith("/run/")]):
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
        argv = cgroup.wrap(argv) if cgroup else argv
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **dict(spec.env)}
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        self.procs.append(proc)
        return proc.pid

    def cleanup(self) -> None:
        """Reap the children (they are killed by the lab, by PID)."""
        for proc in self.procs:
            kill_pid(proc.pid)
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
        return run_cmd(["ctr", "-a", self.address, "-n", CTR_NAMESPACE, *args], check=check)

    def check_images(self, images: Sequence[str]) -> None:
        """Refuse when an image of the manifests is not in containerd's k8s.io namespace."""
        have = set(self._ctr("images", "ls", "-q").stdout.split())
        missing = sorted(set(images) - have)
        if missing:
            raise LabError(f"images not in containerd ({self.address}, namespace {CTR_NAMESPACE}): "
                           f"{', '.join(missing)}; import them with `ctr -n k8s.io images import` (or --images)")

    def import_images(self, tarball: Path) -> None:
        """Import a docker-archive into containerd's k8s.io namespace."""
        run_cmd(["ctr", "-a", self.address, "-n", CTR_NAMESPACE, "images", "import", str(tarball)], timeout=600)

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

    def start(self, ns: str, root: Path, spec: ContainerSpec, log: Path, cgroup: LabCgroup | None = None) -> int:
        """`ctr run -d` the container in the node's network namespace, as kubelet would with hostNetwork."""
        cid, pidfile = self._id(ns, spec), log.with_suffix(".pid")
        args = ["run", "-d", "--with-ns", f"network:/run/netns/{ns}", "--pid-file", str(pidfile),
                "--log-uri", f"file://{log}", "--runc-binary", str(self._runc_wrapper(log.parent.parent))]
        path = cgroup.container_path(cid) if cgroup else None
        args += ["--cgroup", path] if path else []
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
