"""Real-consumer harness for cloud-init: schema checkers, a chroot run and a qemu boot of a Debian guest.

Used by the e2e tests of several features: test modules in tests/e2e ``import guest`` (pytest puts that
directory on sys.path), others load it by path; ``from guest import cloud_init_workdir`` brings a fixture.

* :func:`cloud_init_schema` checks a #cloud-config with Debian 12's cloud-init (22.4.2) or Debian 13's
  (25.x, stricter: rejects unknown keys), see :func:`newer_cloud_init`.
* :func:`run_cloud_init` runs the four cloud-init stages over an overlay of a cached debootstrapped tree,
  inside fresh mount/UTS/net/PID namespaces (no network at all, like an air-gapped node), and returns what
  cloud-init wrote (the overlay's upper dir), result.json, status.json, logs and console output.
* :func:`boot_vm` boots the same tree under qemu (TCG) from a NoCloud seed ISO made by
  :func:`make_seed_iso` and waits for a line on the serial console.

Builds (trees, images) are cached under ``$KUBEHA_CACHE`` by tests/fixtures/guest_tree.py. Nothing here
skips: a missing tool raises :class:`HarnessError` naming the Debian package to install.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pycdlib
import pytest

_BUILDER_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "guest_tree.py"


class HarnessError(RuntimeError):
    """The harness itself cannot run (missing tool, not root, timeout): never a product verdict."""


class HarnessTimeout(HarnessError):
    """A cloud-init run or a VM boot exceeded its time bound; the message carries the output so far."""


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubeha_guest_tree", _BUILDER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


def require(tool: str, package: str) -> str:
    """Return the path of ``tool`` or raise naming the Debian package that provides it."""
    path = shutil.which(tool) or (tool if os.path.isabs(tool) and os.access(tool, os.X_OK) else None)
    if path is None:
        raise HarnessError(f"{tool} not found: apt-get install -y {package}")
    return path


def require_root() -> None:
    """Namespaces, overlay mounts and chroot need root."""
    if os.geteuid() != 0:
        raise HarnessError("this e2e harness needs root (namespaces, overlayfs, chroot)")


# --- cloud-init schema ----------------------------------------------------------------------------------

OLD_CLOUD_INIT = "/usr/bin/cloud-init"
DEBIAN_PYTHON = "/usr/bin/python3"
# What the newer cloudinit package imports; on Debian 12 the host's cloud-init package brings them all.
NEWER_PY_DEPS = ("python3-yaml python3-jsonschema python3-jinja2 python3-configobj python3-jsonpatch "
                 "python3-oauthlib python3-requests")


def newer_cloud_init() -> Path:
    """Return the root of Debian 13's cloud-init, unpacked under ``$KUBEHA_CACHE`` (built once)."""
    root: Path = builder.newer_cloud_init_root()
    return root


def cloud_init_schema(path: Path, newer: bool, *, timeout: float = 120) -> tuple[int, str]:
    """Validate a #cloud-config file with a real cloud-init.

    Args:
        path: the user-data file (a single #cloud-config document; multipart is rejected by cloud-init).
        newer: False for Debian 12's cloud-init 22.4.2, True for Debian 13's (rejects unknown keys).
        timeout: seconds before the check is abandoned.

    Returns:
        ``(returncode, stdout + stderr)``; returncode 0 means valid.
    """
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    if newer:
        require(DEBIAN_PYTHON, "python3")
        env["PYTHONPATH"] = str(newer_cloud_init() / "usr/lib/python3/dist-packages")
        cmd = [DEBIAN_PYTHON, "-m", "cloudinit.cmd.main", "schema", "--config-file", str(path)]
    else:
        cmd = [require(OLD_CLOUD_INIT, "cloud-init"), "schema", "--config-file", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    if "ModuleNotFoundError" in output or "Traceback" in output:
        raise HarnessError(f"cloud-init schema crashed ({' '.join(cmd)}); Debian deps: {NEWER_PY_DEPS}\n{output}")
    return proc.returncode, output


# --- a real cloud-init run in a chroot ------------------------------------------------------------------

STAGES = (
    ("init-local", "init --local"),
    ("init", "init"),
    ("modules-config", "modules --mode config"),
    ("modules-final", "modules --mode final"),
)

# Per-run config layered over the tree: no disk resizing in a chroot, only the seed directory.
CHROOT_CFG = """\
growpart: {mode: "off"}
resize_rootfs: false
datasource_list: [NoCloud, None]
"""

# Runs as PID 1 of fresh mount/UTS/(net)/PID namespaces: every mount below dies with it, even on SIGKILL.
_RUN_SCRIPT = r"""
set -u
M="$1"; LOWER="$2"; UPPER="$3"; WORK="$4"; RUN="$5"; shift 5
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$M" || exit 90
mount -t proc proc "$M/proc" && mount --bind "$M/proc/sys" "$M/proc/sys" \
  && mount -o remount,bind,ro "$M/proc/sys" || exit 91
mount -t sysfs -o ro sysfs "$M/sys" || exit 91
mount -t tmpfs -o mode=755 tmpfs "$M/run" && mount -t tmpfs -o mode=1777 tmpfs "$M/tmp" || exit 91
mount -t tmpfs -o mode=755,size=16m tmpfs "$M/dev" || exit 91
mknod -m 666 "$M/dev/null" c 1 3 && mknod -m 666 "$M/dev/zero" c 1 5 \
  && mknod -m 666 "$M/dev/random" c 1 8 && mknod -m 666 "$M/dev/urandom" c 1 9 \
  && mknod -m 666 "$M/dev/tty" c 5 0 || exit 92
mkdir "$M/dev/pts" "$M/dev/shm" && ln -s /proc/self/fd "$M/dev/fd" && ln -s /proc/self/fd/0 "$M/dev/stdin" \
  && ln -s /proc/self/fd/1 "$M/dev/stdout" && ln -s /proc/self/fd/2 "$M/dev/stderr" || exit 92
# The console is a FIFO drained into console.log, so every line written to it is kept, in order.
mkfifo "$RUN/console.fifo" && touch "$M/dev/console" "$M/dev/ttyS0" || exit 93
cat "$RUN/console.fifo" >> "$RUN/console.log" & CAT=$!
exec 3>"$RUN/console.fifo"
mount --bind "$RUN/console.fifo" "$M/dev/console" && mount --bind "$RUN/console.fifo" "$M/dev/ttyS0" || exit 93
while [ "$#" -ge 3 ]; do
  SRC="$1"; DST="$M$2"; MODE="$3"; shift 3
  if [ -d "$SRC" ]; then mkdir -p "$DST"; elif [ ! -e "$DST" ]; then mkdir -p "$(dirname "$DST")"; touch "$DST"; fi
  mount --bind "$SRC" "$DST" || exit 94
  [ "$MODE" = ro ] && { mount -o remount,bind,ro "$DST" || exit 94; }
done
hostname kubeha-chroot
ip link set lo up 2>/dev/null
for STAGE in @STAGES@; do
  NAME="${STAGE%%:*}"; ARGS="${STAGE#*:}"
  T0=$(date +%s.%N)
  echo "=== kubeha stage $NAME" >&2
  # shellcheck disable=SC2086
  chroot "$M" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb \
    /usr/bin/cloud-init $ARGS
  echo "$NAME $? $T0 $(date +%s.%N)" >> "$RUN/stages"
done
exec 3>&-
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do kill -0 "$CAT" 2>/dev/null || break; sleep 0.1; done
exit 0
"""


@dataclass(frozen=True)
class Bind:
    """A host path bind-mounted into the chroot (e.g. a containerd socket dir, a fake seed ISO mount)."""

    source: Path
    target: str
    readonly: bool = True


@dataclass
class StageResult:
    """One cloud-init stage: exit code and wall time."""

    name: str
    returncode: int
    seconds: float


@dataclass
class CloudInitRun:
    """What one chroot run of cloud-init produced.

    ``upper`` is the overlay's upper dir: exactly the files cloud-init (and what it ran) created or
    changed, with whiteouts (char devices 0:0) for deletions. ``lower`` is the tree plus the seed layer.
    """

    upper: Path
    lower: Sequence[Path]
    stages: list[StageResult]
    result: dict[str, Any]
    status: dict[str, Any]
    cloud_init_log: str
    output_log: str
    console: str
    stdout: str
    stderr: str
    seconds: float

    @property
    def errors(self) -> list[str]:
        """``result.json``'s errors (empty on success); a missing result.json counts as an error."""
        if not self.result:
            return ["no var/lib/cloud/data/result.json written"]
        return list(self.result.get("v1", {}).get("errors", []))

    @property
    def ok(self) -> bool:
        """All four stages exited 0 and cloud-init recorded no error."""
        return len(self.stages) == len(STAGES) and all(s.returncode == 0 for s in self.stages) and not self.errors

    def path(self, guest_path: str) -> Path:
        """The host path of ``guest_path`` in the upper dir (exists only if cloud-init wrote it)."""
        return self.upper / guest_path.lstrip("/")

    def read(self, guest_path: str) -> str:
        """Text of a file cloud-init wrote; raises if it did not write it."""
        return self.path(guest_path).read_text()

    def mode(self, guest_path: str) -> int:
        """Permission bits of a written file, e.g. ``0o600``."""
        return self.path(guest_path).lstat().st_mode & 0o7777

    def owner(self, guest_path: str) -> str:
        """``user:group`` of a written file, names resolved with the guest's passwd/group files."""
        st = self.path(guest_path).lstat()
        return f"{self._name('etc/passwd', st.st_uid)}:{self._name('etc/group', st.st_gid)}"

    def _name(self, table: str, ident: int) -> str:
        for layer in (self.upper, *self.lower):
            if (layer / table).exists():
                for line in (layer / table).read_text().splitlines():
                    fields = line.split(":")
                    if len(fields) > 2 and fields[2] == str(ident):
                        return fields[0]
                break
        return str(ident)

    def describe(self) -> str:
        """Everything useful for an assertion message."""
        stages = ", ".join(f"{s.name}={s.returncode}" for s in self.stages)
        return (f"stages: {stages}\nerrors: {self.errors}\n--- stderr\n{self.stderr[-4000:]}\n"
                f"--- cloud-init.log (tail)\n{self.cloud_init_log[-6000:]}\n--- console\n{self.console[-2000:]}")


def guest_tree() -> Path:
    """Return the cached Debian 12 guest tree (built on first use, about 3 minutes)."""
    root: Path = builder.guest_tree()
    return root


def _seed_layer(layer: Path, tree: Path, user_data: bytes, meta_data: bytes, extra: Mapping[str, bytes]) -> None:
    files = {"var/lib/cloud/seed/nocloud/user-data": user_data,
             "var/lib/cloud/seed/nocloud/meta-data": meta_data,
             "etc/cloud/cloud.cfg.d/98-chroot.cfg": CHROOT_CFG.encode()}
    files.update({k.lstrip("/"): v for k, v in extra.items()})
    for rel, data in files.items():
        path = layer / rel
        _mkdirs_like(layer, tree, str(Path(rel).parent))
        path.write_bytes(data)
        path.chmod(0o600 if "seed" in rel else 0o644)


# Mounted fresh in every run: a bind target below them needs no placeholder in the seed layer.
_TMPFS_TARGETS = ("/run/", "/tmp/", "/dev/", "/proc/", "/sys/")


def _mkdirs_like(layer: Path, tree: Path, rel: str) -> None:
    """``mkdir -p layer/rel``, each new directory with the mode of the tree's (overlay shows the top one's)."""
    path = layer
    for part in Path(rel).parts:
        path, twin = path / part, tree / path.relative_to(layer) / part
        if not path.exists():
            path.mkdir()
            path.chmod(twin.stat().st_mode & 0o7777 if twin.is_dir() else 0o755)


def _bind_placeholders(layer: Path, tree: Path, binds: Sequence[Bind]) -> None:
    """Create bind mount points in the read-only seed layer, so they do not show up in the upper dir."""
    for bind in binds:
        target = "/" + bind.target.strip("/")
        if target.startswith(_TMPFS_TARGETS):
            continue
        rel = target.lstrip("/")
        if bind.source.is_dir():
            _mkdirs_like(layer, tree, rel)
        else:
            _mkdirs_like(layer, tree, str(Path(rel).parent))
            (layer / rel).touch()


def _namespace_cmd(netns: str | None) -> list[str]:
    base = [require("unshare", "util-linux"), "--mount", "--uts", "--pid", "--fork", "--kill-child=SIGKILL"]
    if netns is None:
        return [*base[:4], "--net", *base[4:]]
    return [require("ip", "iproute2"), "netns", "exec", netns, *base]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _stages(path: Path) -> list[StageResult]:
    stages = []
    for line in _read_text(path).splitlines():
        name, rc, start, end = line.split()
        stages.append(StageResult(name, int(rc), float(end) - float(start)))
    return stages


def run_cloud_init(
    user_data: bytes,
    meta_data: bytes,
    *,
    workdir: Path,
    binds: Sequence[Bind] = (),
    extra_files: Mapping[str, bytes] | None = None,
    netns: str | None = None,
    timeout: float = 300,
    tree: Path | None = None,
) -> CloudInitRun:
    """Run cloud-init's four stages on the cached guest tree with ``user_data`` from a NoCloud seed dir.

    Args:
        user_data: the user-data bytes (#cloud-config, multipart, gzip...), as a seed would carry them.
        meta_data: NoCloud meta-data (instance-id, local-hostname).
        workdir: where the run directory goes (e.g. pytest's tmp_path); the upper dir stays there.
        binds: host paths to bind-mount into the guest (read-only unless ``readonly=False``).
        extra_files: more files for the read-only seed layer, guest path -> bytes (e.g. a network-config).
        netns: run in this existing ``ip netns`` instead of a fresh empty net namespace.
        timeout: bound for the whole run, in seconds; exceeding it kills every process and raises.
        tree: the lower tree; the cached guest tree by default.

    Returns:
        The :class:`CloudInitRun`. Mounts live only in the run's namespaces, so nothing stays mounted.
    """
    require_root()
    lower_tree = tree or guest_tree()
    run = Path(tempfile.mkdtemp(prefix="cloud-init-run-", dir=workdir))
    seed, upper, work, merged = (run / d for d in ("seed", "upper", "work", "merged"))
    for d in (seed, upper, work, merged):
        d.mkdir()
    _seed_layer(seed, lower_tree, user_data, meta_data, extra_files or {})
    _bind_placeholders(seed, lower_tree, binds)
    bind_args = [a for b in binds for a in (str(b.source), "/" + b.target.lstrip("/"), "ro" if b.readonly else "rw")]
    script = _RUN_SCRIPT.replace("@STAGES@", " ".join(f'"{name}:{args}"' for name, args in STAGES))
    cmd = [*_namespace_cmd(netns), "sh", "-c", script, "kubeha-run",
           str(merged), f"{seed}:{lower_tree}", str(upper), str(work), str(run), *bind_args]
    started = time.monotonic()
    stdout, stderr = _run_bounded(cmd, timeout, run)
    result = CloudInitRun(
        upper=upper, lower=(seed, lower_tree), stages=_stages(run / "stages"),
        result=_read_json(upper / "var/lib/cloud/data/result.json"),
        status=_read_json(upper / "var/lib/cloud/data/status.json"),
        cloud_init_log=_read_text(upper / "var/log/cloud-init.log"),
        output_log=_read_text(upper / "var/log/cloud-init-output.log"),
        console=_read_text(run / "console.log"), stdout=stdout, stderr=stderr,
        seconds=time.monotonic() - started)
    shutil.rmtree(work, ignore_errors=True)
    if len(result.stages) != len(STAGES):
        raise HarnessError(f"the chroot run did not reach every stage (rc of setup in stderr)\n{result.describe()}")
    return result


def _run_bounded(cmd: list[str], timeout: float, run: Path) -> tuple[str, str]:
    """Run ``cmd`` (the namespace launcher); on timeout kill it by PID, which SIGKILLs the PID namespace."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise HarnessTimeout(
            f"cloud-init run exceeded {timeout:.0f} s and was killed (pid {proc.pid}); run dir {run}\n"
            f"--- stderr\n{stderr[-4000:]}\n--- console\n{_read_text(run / 'console.log')[-2000:]}"
        ) from None
    if proc.returncode != 0:
        raise HarnessError(f"chroot setup failed with rc={proc.returncode} (90 overlay, 91-93 mounts/dev, "
                           f"94 binds)\n{stderr[-4000:]}")
    return stdout, stderr


# --- NoCloud seed ISO -----------------------------------------------------------------------------------


def _d_chars(text: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", text.upper())


def _iso_name(name: str, is_dir: bool, taken: set[str]) -> str:
    """An ISO9660 level-3 name (d-characters, 30 max) for ``name``; Rock Ridge/Joliet keep the real one."""
    stem, dot, ext = name.rpartition(".") if "." in name and not is_dir else (name, "", "")
    base = _d_chars(stem)[:24] or "_"
    ext = _d_chars(ext)[:4]
    for n in range(1000):
        candidate = (base if n == 0 else f"{base[:20]}_{n}") + (f".{ext}" if dot else "")
        if candidate not in taken:
            taken.add(candidate)
            return candidate if is_dir else candidate + ("" if dot else ".") + ";1"
    raise HarnessError(f"too many clashing names for {name}")


def make_seed_iso(files: Mapping[str, bytes | Path], out: Path, *, label: str = "cidata") -> Path:
    """Write a NoCloud seed ISO (label ``cidata``, Rock Ridge + Joliet) holding ``files``.

    Args:
        files: path inside the ISO (e.g. ``user-data``, ``bundle/SHA256SUMS``) -> bytes or a host file.
        out: the ISO to write (written to a temporary sibling, then renamed).
        label: the volume label cloud-init's NoCloud looks for.

    Returns:
        ``out``.
    """
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=label, joliet=3, rock_ridge="1.09")
    dirs: dict[str, str] = {"": ""}
    taken: dict[str, set[str]] = {}
    handles = []
    for rel in sorted(files):
        parts = rel.strip("/").split("/")
        for depth in range(1, len(parts)):
            key = "/".join(parts[:depth])
            if key not in dirs:
                parent = dirs["/".join(parts[: depth - 1])]
                dirs[key] = f"{parent}/{_iso_name(parts[depth - 1], True, taken.setdefault(parent, set()))}"
                iso.add_directory(dirs[key], rr_name=parts[depth - 1], joliet_path="/" + key)
        parent = dirs["/".join(parts[:-1])]
        iso_path = f"{parent}/{_iso_name(parts[-1], False, taken.setdefault(parent, set()))}"
        data = files[rel]
        if isinstance(data, Path):
            iso.add_file(str(data), iso_path, rr_name=parts[-1], joliet_path="/" + "/".join(parts))
        else:
            handles.append(io.BytesIO(data))
            iso.add_fp(handles[-1], len(data), iso_path, rr_name=parts[-1], joliet_path="/" + "/".join(parts))
    tmp = out.with_name(f".{out.name}.tmp")
    iso.write(str(tmp))
    iso.close()
    tmp.rename(out)
    return out


def read_seed_iso(iso_path: Path) -> tuple[str, dict[str, bytes]]:
    """Read an ISO back with pycdlib: ``(volume label, {rock ridge path: bytes})``."""
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        found: dict[str, bytes] = {}
        for dirname, _dirs, names in iso.walk(rr_path="/"):
            for name in names:
                path = f"{dirname.rstrip('/')}/{name}"
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=path)
                found[path.lstrip("/")] = buf.getvalue()
        return label, found
    finally:
        iso.close()


# --- a qemu boot ----------------------------------------------------------------------------------------

CLOUD_INIT_FINISHED = r"Cloud-init v\. \S+ finished at"
KERNEL_ARGS = ("root=/dev/vda", "rw", "console=ttyS0,115200", "fsck.mode=skip", "panic=-1",
               "net.ifnames=0", "systemd.show_status=1")
# Stop waiting early when the guest is clearly not going to get there.
FATAL_SERIAL = r"Kernel panic|You are in emergency mode|Give root password for maintenance"


@dataclass
class VmBoot:
    """One qemu boot: the serial console log, and how long the wait took."""

    serial_log: Path
    disk: Path
    returncode: int | None
    seconds: float
    qemu_cmd: list[str] = field(default_factory=list)

    @property
    def serial(self) -> str:
        """The serial console text so far (CRs dropped)."""
        return _read_text(self.serial_log).replace("\r", "")

    def tail(self, chars: int = 4000) -> str:
        """The end of the serial log, for assertion messages."""
        return self.serial[-chars:]


def guest_image() -> Path:
    """Return the cached image directory (``root.ext4``, ``vmlinuz``, ``initrd.img``), built once."""
    path: Path = builder.guest_image()
    return path


def _qemu_cmd(image_dir: Path, disk: Path, seed_iso: Path, serial: Path, memory: int, cpus: int,
              kernel_args: Sequence[str]) -> list[str]:
    return [
        require("qemu-system-x86_64", "qemu-system-x86"),
        "-machine", "pc,accel=tcg", "-smp", str(cpus), "-m", str(memory),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-nic", "none", "-serial", f"file:{serial}",
        "-kernel", str(image_dir / "vmlinuz"), "-initrd", str(image_dir / "initrd.img"),
        "-append", " ".join((*KERNEL_ARGS, *kernel_args)),
        "-drive", f"file={disk},if=virtio,format=qcow2",
        "-drive", f"file={seed_iso},media=cdrom,if=ide,readonly=on",
        "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
    ]


def boot_vm(
    seed_iso: Path,
    *,
    workdir: Path,
    until: str = CLOUD_INIT_FINISHED,
    timeout: float = 600,
    memory: int = 1024,
    cpus: int = 1,
    kernel_args: Sequence[str] = (),
    disk: Path | None = None,
) -> VmBoot:
    """Boot the guest image under qemu (TCG) with ``seed_iso`` as cdrom; wait for ``until`` on serial.

    The root disk is a qcow2 overlay over the cached ext4 image, so the image stays pristine. qemu is
    killed by PID as soon as the regex ``until`` matches the serial log (or a fatal pattern does, or the
    timeout passes), and always before returning.

    Args:
        seed_iso: the NoCloud ISO (label cidata) to attach as cdrom.
        workdir: where the overlay disk and serial log go.
        until: regex to wait for in the serial log (default: cloud-init's final "finished at" line).
        timeout: seconds to wait at most; then :class:`HarnessTimeout` with the serial tail.
        memory: guest RAM in MiB.
        cpus: virtual CPUs (TCG runs one host thread per vCPU).
        kernel_args: extra kernel command line arguments.
        disk: an earlier boot's overlay disk to boot again (a later boot of the same VM); default a new one.

    Returns:
        The :class:`VmBoot`.
    """
    image_dir = guest_image()
    serial = workdir / "serial.log"
    if disk is None:
        disk = workdir / "disk.qcow2"
        subprocess.run([require("qemu-img", "qemu-utils"), "create", "-q", "-f", "qcow2", "-F", "raw",
                        "-b", str(image_dir / "root.ext4"), str(disk)], check=True, capture_output=True)
    serial.touch()
    cmd = _qemu_cmd(image_dir, disk, seed_iso, serial, memory, cpus, kernel_args)
    started = time.monotonic()
    with open(workdir / "qemu.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        try:
            outcome = _wait_serial(proc, serial, until, timeout)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    boot = VmBoot(serial, disk, proc.returncode, time.monotonic() - started, cmd)
    if outcome != "matched":
        qemu_err = _read_text(workdir / "qemu.stderr")[-2000:]
        raise HarnessTimeout(f"VM boot: {outcome} after {boot.seconds:.0f} s waiting for /{until}/\n"
                             f"--- qemu stderr\n{qemu_err}\n--- serial (tail)\n{boot.tail()}")
    return boot


def _wait_serial(proc: subprocess.Popen[bytes], serial: Path, until: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    want, fatal = re.compile(until), re.compile(FATAL_SERIAL)
    while time.monotonic() < deadline:
        text = _read_text(serial)
        if want.search(text):
            return "matched"
        if fatal.search(text):
            return f"fatal line on serial: {fatal.search(text).group(0)!r}"  # type: ignore[union-attr]
        if proc.poll() is not None:
            return f"qemu exited with rc={proc.returncode}"
        time.sleep(0.5)
    return "timeout"


# --- pytest fixtures (import them into a test module or a conftest) -------------------------------------


@pytest.fixture(scope="session")
def guest_tree_root() -> Path:
    """The cached guest tree, built once per cache."""
    require_root()
    return guest_tree()


@pytest.fixture
def cloud_init_workdir(tmp_path: Path) -> Iterator[Path]:
    """A work directory for :func:`run_cloud_init` runs, removed afterwards even when the test fails."""
    work = tmp_path / "cloud-init"
    work.mkdir()
    yield work
    shutil.rmtree(work, ignore_errors=True)
