"""The node-side install (/usr/local/sbin/kubeha-install) against real gpgv, sha256sum, tar and containerd.

Two levels:

* the script run directly over a fake root (``KUBEHA_ROOT``) built from a master's real user-data, with a
  private containerd (tests/e2e/daemons.py): every bundle source (seed dir, path, directory, http URL),
  idempotent re-runs, and the tamper suite, each refused with no manifest left in place;
* a real cloud-init run (tests/e2e/guest.py chroot) for every node of examples/cluster.yaml, the bundle
  bind-mounted into the NoCloud seed directory and the private containerd's socket at
  /run/containerd/containerd.sock; then the same with a tampered bundle.

The image archive is a small docker-archive made by tests/test_bundle.py's helper (real format, imported by
the real containerd), so these tests do not depend on building the keepalived/haproxy images.
"""

# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters

from __future__ import annotations

import base64
import functools
import gzip
import http.server
import io
import json
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import guest
import pytest
import yaml
from daemons import Daemon, ctr, running, start_containerd, start_dockerd
from guest import cloud_init_workdir  # noqa: F401 - fixture

from kubeha.bundle import IMAGES_TAR, PackResult, write_tar
from kubeha.bundle.pack import pack_inventory
from kubeha.generate import load_cluster
from test_bundle import REFS, make_docker_archive, tar_member
from test_signing import Keys, gpg_keys  # noqa: F401 - gpg_keys: session fixture

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "cluster.yaml"
SEED_TAR = "var/lib/cloud/seed/nocloud/kubeha-bundle.tar"
MANIFESTS = ("haproxy.yaml", "keepalived.yaml")


@dataclass(frozen=True)
class Packed:
    bundle: PackResult
    documents: dict[str, dict[str, bytes]]
    masters: list[str]
    workers: list[str]
    inventory: Path


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory, gpg_keys: Keys) -> Packed:
    """examples/cluster.yaml packed into a bundle (cidata source, containerd) with a small image archive."""
    tmp = tmp_path_factory.mktemp("node-install")
    inventory = tmp / "cluster.yaml"
    shutil.copy(EXAMPLE, inventory)  # the VRRP secret is created beside it, not in the repo
    cluster = load_cluster(inventory).cluster
    images = tmp / "images.tar"
    make_docker_archive(images)
    result = pack_inventory(inventory, images, gpg_keys.trusted.signer(), tmp / "out", name="kubeha")
    nodes = result.directory / "nodes"
    documents = {n.name: {d: (n / d).read_bytes() for d in ("user-data", "meta-data")} for n in nodes.iterdir()}
    return Packed(result, documents, [m.name for m in cluster.masters], [w.name for w in cluster.workers], inventory)


@pytest.fixture(scope="module")
def containerd() -> Iterator[Daemon]:
    """This module's own containerd: the tests empty its image store, which a shared daemon must not see."""
    with running(start_containerd, "install") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Daemon]:
    """This module's own dockerd (the docker runtime test removes images)."""
    with running(start_dockerd, "instdock") as daemon:
        yield daemon


def remove_images(daemon: Daemon) -> None:
    for ref in REFS:
        ctr(daemon, "images", "rm", ref)
    assert ctr(daemon, "images", "ls", "-q").stdout.strip() == ""


def pinned_refs(daemon: Daemon) -> set[str]:
    """Refs in the k8s.io namespace that carry the pinned label."""
    lines = ctr(daemon, "images", "ls").stdout.splitlines()[1:]
    return {line.split()[0] for line in lines if "io.cri-containerd.pinned=pinned" in line}


# ---------------------------------------------------------------------------------------------- fake root


def install_user_data(user_data: bytes, root: Path) -> None:
    """Apply a #cloud-config's write_files to ``root`` (what cloud-init does before runcmd)."""
    doc = yaml.safe_load(user_data)
    for entry in doc["write_files"]:
        path = root / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        content = entry["content"]
        data = gzip.decompress(base64.b64decode(content)) if entry.get("encoding") == "gz+b64" else content.encode()
        path.write_bytes(data)
        path.chmod(int(entry["permissions"], 8))
    assert doc["runcmd"] == [["/usr/local/sbin/kubeha-install"]]


@dataclass
class Node:
    root: Path
    console: Path
    daemon: Daemon

    def env(self, key: str) -> str:
        lines = (self.root / "etc/kubeha/install.env").read_text().splitlines()
        return next(line.split("=", 1)[1] for line in lines if line.startswith(f"{key}="))

    @property
    def cluster_id(self) -> str:
        return self.env("KUBEHA_CLUSTER_ID")

    def run(self, timeout: float = 180, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "KUBEHA_ROOT": str(self.root),
            "KUBEHA_CONSOLE": str(self.console),
            "CONTAINERD_ADDRESS": str(self.daemon.socket),
        } | extra
        script = self.root / "usr/local/sbin/kubeha-install"
        return subprocess.run(
            ["sh", str(script)], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    @property
    def status(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.root / "var/lib/kubeha/status.json").read_text())
        return data

    def manifests(self) -> list[str]:
        target = self.root / "etc/kubernetes/manifests"
        return sorted(p.name for p in target.iterdir()) if target.is_dir() else []

    def set_source(self, source: str) -> None:
        env = self.root / "etc/kubeha/install.env"
        lines = [
            f"KUBEHA_BUNDLE={source}" if line.startswith("KUBEHA_BUNDLE=") else line
            for line in env.read_text().splitlines()
        ]
        env.write_text("\n".join(lines) + "\n")

    def place_tar(self, tar: Path) -> None:
        dest = self.root / SEED_TAR
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tar, dest)


@pytest.fixture
def node(tmp_path: Path, packed: Packed, containerd: Daemon) -> Node:
    root = tmp_path / "root"
    install_user_data(packed.documents[packed.masters[0]]["user-data"], root)
    remove_images(containerd)
    return Node(root, tmp_path / "console", containerd)


STEPS = ["config", "locate", "stage", "verify", "images", "manifests"]


def assert_ok(node: Node, proc: subprocess.CompletedProcess[str], images: str, serial: int = 1) -> None:
    name = node.status["node"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"kubeha-install: OK {name} serial={serial} "), proc.stdout
    assert f"images={images}" in proc.stdout
    assert node.console.read_text().splitlines()[-1] == proc.stdout.strip()
    status = node.status
    assert status["verdict"] == "ok" and status["serial"] == serial
    steps = status["steps"]
    assert isinstance(steps, list)
    quick = "manifests=in-place" in proc.stdout  # the installed serial again: verified, nothing to redo
    assert [s["name"] for s in steps] == (STEPS[:4] if quick else STEPS)
    assert all(s["status"] in ("ok", "skipped") and s["seconds"] >= 0 for s in steps)
    assert node.manifests() == list(MANIFESTS)
    for name in MANIFESTS:
        staged = node.root / "etc/kubeha/manifests" / name
        placed = node.root / "etc/kubernetes/manifests" / name
        assert placed.read_bytes() == staged.read_bytes() and placed.stat().st_mode & 0o777 == 0o600
    assert pinned_refs(node.daemon) == set(REFS)


def assert_failed(node: Node, proc: subprocess.CompletedProcess[str], step: str, reason: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = proc.stdout.strip()
    assert line.startswith(f"kubeha-install: FAILED {node.status['node']} step={step} reason="), line
    assert reason in line, line
    assert node.console.read_text().splitlines()[-1] == line
    status = node.status
    assert status["verdict"] == "failed" and reason in str(status["reason"])
    steps = status["steps"]
    assert isinstance(steps, list) and steps[-1]["name"] == step and steps[-1]["status"] == "failed"
    assert node.manifests() == []
    assert list((node.root / "var/lib/kubeha/staging").iterdir()) == []


def test_install_from_seed_tar_then_idempotent(node: Node, packed: Packed) -> None:
    node.place_tar(packed.bundle.tarball)
    assert_ok(node, node.run(), "imported")
    assert_ok(node, node.run(), "present")  # second run: verified again, nothing imported or extracted
    # a later boot without the seed ISO: the verified install stands
    (node.root / SEED_TAR).unlink()
    proc = node.run()
    assert proc.returncode == 0 and proc.stdout == "kubeha-install: kept serial 1: step=locate reason=bundle not found at cidata\n"
    assert node.status["verdict"] == "kept" and node.manifests() == list(MANIFESTS)
    # an image gone missing is put back from the same verified bundle
    ctr(node.daemon, "images", "rm", REFS[0])
    node.place_tar(packed.bundle.tarball)
    assert_ok(node, node.run(), "imported")


def test_install_from_directory_path(node: Node, packed: Packed) -> None:
    shutil.copytree(packed.bundle.directory, node.root / "srv/kubeha")
    node.set_source("/srv/kubeha")
    proc = node.run()
    assert_ok(node, proc, "imported")
    assert node.status["steps"][2]["status"] == "skipped"  # type: ignore[index]


def test_install_from_tar_path(node: Node, packed: Packed) -> None:
    (node.root / "srv").mkdir()
    shutil.copy(packed.bundle.tarball, node.root / "srv/b.tar")
    node.set_source("/srv/b.tar")
    assert_ok(node, node.run(), "imported")


@pytest.fixture
def http_server(packed: Packed) -> Iterator[str]:
    """A loopback HTTP server serving the bundle's output directory (bounded: stopped after the test)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(packed.bundle.tarball.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_install_from_url(node: Node, packed: Packed, http_server: str) -> None:
    node.set_source(f"{http_server}/{packed.bundle.tarball.name}")
    assert_ok(node, node.run(), "imported")
    node.set_source(f"{http_server}/missing.tar")  # the server has lost it at a later boot: kept
    proc = node.run()
    assert proc.returncode == 0 and proc.stdout.startswith("kubeha-install: kept serial 1: step=stage reason=download of ")
    assert "404" in proc.stdout and node.manifests() == list(MANIFESTS) and pinned_refs(node.daemon) == set(REFS)


def test_missing_bundle_fails_closed(node: Node) -> None:
    # manifests left by an earlier install must go when the install fails
    target = node.root / "etc/kubernetes/manifests"
    target.mkdir(parents=True)
    (target / "haproxy.yaml").write_text("stale\n")
    (target / "kube-apiserver.yaml").write_text("not ours\n")
    proc = node.run()
    assert proc.returncode == 1
    assert sorted(p.name for p in target.iterdir()) == ["kube-apiserver.yaml"]
    assert "step=locate reason=bundle not found at cidata" in proc.stdout


# ---------------------------------------------------------------------------------------------- tampering


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))


def _resign_other(keys: Keys) -> Callable[[Path], None]:
    def tamper(root: Path) -> None:
        (root / "SHA256SUMS.asc").write_bytes(keys.other.signer().sign_detached(root / "SHA256SUMS"))

    return tamper


TAMPERS: dict[str, tuple[Callable[[Path], None] | None, str, str]] = {
    "bit in image": (lambda r: _flip(r / IMAGES_TAR), "verify", "checksum mismatch: images/images.tar: FAILED"),
    "bit in user-data": (
        lambda r: _flip(r / "nodes/master1/user-data"),
        "verify",
        "checksum mismatch: nodes/master1/user-data: FAILED",
    ),
    "bit in SHA256SUMS": (lambda r: _flip(r / "SHA256SUMS", 3), "verify", "BAD signature on SHA256SUMS"),
    "bit in signature": (lambda r: _flip(r / "SHA256SUMS.asc", 100), "verify", "signature"),
    "truncated image": (
        lambda r: (r / IMAGES_TAR).write_bytes((r / IMAGES_TAR).read_bytes()[:-700]),
        "verify",
        "images/images.tar: 30020 bytes, signed size 30720",
    ),
    "extra file": (lambda r: (r / "nodes/evil").write_text("x"), "verify", "extra files: nodes/evil"),
    "missing file": (
        lambda r: (r / "nodes/master1/meta-data").unlink(),
        "verify",
        "missing files: nodes/master1/meta-data",
    ),
    "other key": (None, "verify", "signature by unknown key"),
    "other nodes' documents absent": (lambda r: shutil.rmtree(r / "nodes/master2"), "ok", ""),
    "unsigned": (lambda r: (r / "SHA256SUMS.asc").unlink(), "verify", "SHA256SUMS.asc is missing"),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_bundle_fails_closed(node: Node, packed: Packed, gpg_keys: Keys, tmp_path: Path, name: str) -> None:
    tamper, step, reason = TAMPERS[name]
    copy = tmp_path / "kubeha"
    shutil.copytree(packed.bundle.directory, copy)
    (tamper or _resign_other(gpg_keys))(copy)
    tar = tmp_path / "tampered.tar"
    write_tar(copy, "kubeha", tar, 0)
    node.place_tar(tar)
    if step == "ok":  # a per-node subset, as on a seed ISO: accepted by design
        assert_ok(node, node.run(), "imported")
        return
    assert_failed(node, node.run(), step, reason)
    assert ctr(node.daemon, "images", "ls", "-q").stdout.strip() == ""  # nothing imported


HOSTILE = {
    "dotdot": (tar_member("kubeha/../../../escaped"), "absolute or dot path: kubeha/../../../escaped"),
    "absolute": (tar_member("/escaped"), "absolute or dot path: /escaped"),
    "symlink": (tar_member("kubeha/nodes/link", tarfile.SYMTYPE, "/etc/shadow"), "unexpected entry"),
    "hardlink": (tar_member("kubeha/nodes/hard", tarfile.LNKTYPE, "kubeha/SHA256SUMS"), "unexpected entry"),
    "device": (tar_member("kubeha/nodes/dev", tarfile.CHRTYPE), "not a regular file or directory: kubeha/nodes/dev"),
    "other top": (tar_member("elsewhere"), "member outside kubeha/: elsewhere"),
    "duplicate": (tar_member("kubeha/SHA256SUMS"), "duplicate member: kubeha/SHA256SUMS"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_tar_fails_before_extraction(node: Node, packed: Packed, tmp_path: Path, name: str) -> None:
    member, reason = HOSTILE[name]
    evil = tmp_path / "evil.tar"
    shutil.copy(packed.bundle.tarball, evil)
    with tarfile.open(evil, "a") as tar:
        tar.addfile(member, io.BytesIO(b"owned\n") if member.isreg() else None)
    node.place_tar(evil)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert_failed(node, node.run(), "verify", "unsafe bundle, nothing read: " + reason)
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    verdict_files = {"console", "root/var/lib/kubeha", "root/var/lib/kubeha/status.json", "root/var/lib/kubeha/lock",
                     "root/var/lib/kubeha/staging"}
    assert set(after) - set(before) == verdict_files  # nothing extracted, anywhere
    assert not (node.root / "escaped").exists() and not Path("/escaped").exists()


# ---------------------------------------------------------------------------------------------- cloud-init


def _cloud_init(packed: Packed, node_name: str, bundle_tar: Path, daemon: Daemon, workdir: Path) -> guest.CloudInitRun:
    docs = packed.documents[node_name]
    binds = [
        guest.Bind(bundle_tar, "/" + SEED_TAR),
        guest.Bind(daemon.socket, "/run/containerd/containerd.sock", readonly=False),
    ]
    return guest.run_cloud_init(docs["user-data"], docs["meta-data"], binds=binds, workdir=workdir)


def test_cloud_init_every_node(packed: Packed, containerd: Daemon, cloud_init_workdir: Path) -> None:
    """Every node of examples/cluster.yaml through a real cloud-init run; masters install the bundle."""
    for name in packed.masters:
        remove_images(containerd)
        run = _cloud_init(packed, name, packed.bundle.tarball, containerd, cloud_init_workdir)
        assert run.ok, run.describe()
        assert run.mode("/usr/local/sbin/kubeha-install") == 0o755
        assert run.mode("/etc/kubeha/install.env") == 0o644
        assert run.mode("/etc/keepalived/keepalived.conf") == 0o600
        assert run.owner("/usr/local/sbin/kubeha-install") == "root:root"
        status = json.loads(run.read("/var/lib/kubeha/status.json"))
        assert status["verdict"] == "ok" and status["node"] == name, run.output_log
        assert [s["status"] for s in status["steps"]] == ["ok"] * 6
        for manifest in MANIFESTS:
            assert run.mode(f"/etc/kubernetes/manifests/{manifest}") == 0o600
            assert run.read(f"/etc/kubernetes/manifests/{manifest}") == run.read(f"/etc/kubeha/manifests/{manifest}")
        assert f"kubeha-install: OK {name} serial=1 files=" in run.console, run.console
        assert pinned_refs(containerd) == set(REFS)
        shutil.rmtree(run.upper.parent, ignore_errors=True)
    for name in packed.workers:
        run = _cloud_init(packed, name, packed.bundle.tarball, containerd, cloud_init_workdir)
        assert run.ok, run.describe()
        assert not run.path("/usr/local/sbin/kubeha-install").exists()
        assert not run.path("/var/lib/kubeha/status.json").exists()
        shutil.rmtree(run.upper.parent, ignore_errors=True)


def test_cloud_init_tampered_bundle(
    packed: Packed, containerd: Daemon, cloud_init_workdir: Path, tmp_path: Path
) -> None:
    remove_images(containerd)
    copy = tmp_path / "kubeha"
    shutil.copytree(packed.bundle.directory, copy)
    _flip(copy / IMAGES_TAR)
    tar = tmp_path / "tampered.tar"
    write_tar(copy, "kubeha", tar, 0)
    name = packed.masters[0]
    run = _cloud_init(packed, name, tar, containerd, cloud_init_workdir)
    assert not run.ok and any("runcmd" in e or "scripts-user" in e for e in run.errors), run.describe()
    status = json.loads(run.read("/var/lib/kubeha/status.json"))
    assert status["verdict"] == "failed"
    assert status["steps"][-1]["name"] == "verify" and "checksum mismatch" in status["steps"][-1]["reason"]
    manifests = run.path("/etc/kubernetes/manifests")
    assert not manifests.exists() or list(manifests.iterdir()) == []
    assert f"kubeha-install: FAILED {name} step=verify reason=checksum mismatch: images/images.tar" in run.console
    assert ctr(containerd, "images", "ls", "-q").stdout.strip() == ""


# ---------------------------------------------------------------------------------------------- qemu boot


@pytest.mark.slow
def test_vm_boot_installs_bundle_from_seed_iso_then_keeps_it(packed: Packed, tmp_path: Path) -> None:
    """A full Debian boot (qemu TCG) from the product's NoCloud ISO (kubeha.deliver.seediso) with the bundle on it,
    then a second boot of the same disk from an ISO without the bundle, which keeps the verified install.

    The ISO carries the bundle directory under /kubeha-bundle/; the install script finds it on the cidata
    device itself (cloud-init has unmounted it by then), imports into the VM's own containerd and reports on
    the serial console. Extra runcmds list the VM's images on the console, install and enable the product's
    kubeha-install.service (as the Ignition delivery does) so the script runs at every later boot, and sync.
    """
    from kubeha.deliver.seediso import write_seed_iso
    from kubeha.render import render_template

    name = packed.masters[0]
    docs = packed.documents[name]
    user_data = yaml.safe_load(docs["user-data"])
    unit = render_template("/etc/systemd/system/kubeha-install.service", {"script": "/usr/local/sbin/kubeha-install"})
    user_data["write_files"].append({"path": "/etc/systemd/system/kubeha-install.service", "content": unit,
                                     "permissions": "0644", "owner": "root:root"})
    user_data["runcmd"] += [
        ["sh", "-c", "ctr -n k8s.io images ls -q | sed 's/^/kubeha-vm-image: /' > /dev/console"],
        ["systemctl", "enable", "kubeha-install.service"],
        ["sync"],
    ]
    text = ("#cloud-config\n" + yaml.safe_dump(user_data, sort_keys=False)).encode()
    iso = tmp_path / "seed.iso"
    write_seed_iso(iso, user_data=text, meta_data=docs["meta-data"], bundle_dir=packed.bundle.directory)
    boot = guest.boot_vm(iso, workdir=tmp_path, timeout=900)
    serial = boot.serial
    assert f"kubeha-install: OK {name} serial=1 files=" in serial, boot.tail()
    assert "images=imported manifests=2" in serial, boot.tail()
    for ref in REFS:
        assert f"kubeha-vm-image: {ref}" in serial, boot.tail()
    # a later boot: the same disk, the seed ISO now without the bundle
    later = tmp_path / "later"
    later.mkdir()
    bare = later / "seed.iso"
    write_seed_iso(bare, user_data=text, meta_data=docs["meta-data"])
    again = guest.boot_vm(bare, workdir=later, timeout=900, disk=boot.disk,
                          until=r"kubeha-install: (kept serial \d+: .*|OK .*|FAILED .*)\n")
    assert "kubeha-install: kept serial 1: step=locate reason=bundle not found at cidata" in again.serial, again.tail()


def test_install_with_docker(node: Node, packed: Packed, dockerd: Daemon) -> None:
    """KUBEHA_RUNTIME=docker: docker load into a private dockerd, then the same checks by image id."""
    env = node.root / "etc/kubeha/install.env"
    env.write_text(env.read_text().replace("KUBEHA_RUNTIME=containerd", "KUBEHA_RUNTIME=docker"))
    node.place_tar(packed.bundle.tarball)
    docker = shutil.which("docker")
    assert docker, "docker not found: apt-get install -y docker.io"
    for ref in REFS:
        subprocess.run([docker, "-H", dockerd.address, "rmi", ref], capture_output=True, check=False)
    proc = node.run(DOCKER_HOST=dockerd.address)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "images=imported manifests=2" in proc.stdout
    ids = make_docker_archive(node.root / "ids.tar")  # same content, same ids
    for ref in REFS:
        out = subprocess.run(
            [docker, "-H", dockerd.address, "image", "inspect", "--format", "{{.Id}}", ref],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == ids[ref]
    again = node.run(DOCKER_HOST=dockerd.address)
    assert again.returncode == 0 and "images=present" in again.stdout
    assert node.manifests() == list(MANIFESTS)


def test_runtime_down_fails_closed(node: Node, packed: Packed, tmp_path: Path) -> None:
    """No containerd answering: the images step fails, and no manifest goes in."""
    node.place_tar(packed.bundle.tarball)
    proc = node.run(KUBEHA_RUNTIME_WAIT="2", CONTAINERD_ADDRESS=str(tmp_path / "no.sock"))
    assert_failed(node, proc, "images", "containerd is not answering after 2s")


def test_install_real_images(node: Node, kubeha_images_tar: Path, gpg_keys: Keys, tmp_path: Path) -> None:
    """The real keepalived/haproxy archive (kubeha image build + save): every image a static pod names is
    imported and pinned before its manifest goes in (the pods use imagePullPolicy Never/IfNotPresent)."""
    inventory = tmp_path / "cluster.yaml"
    shutil.copy(EXAMPLE, inventory)
    bundle = pack_inventory(inventory, kubeha_images_tar, gpg_keys.trusted.signer(), tmp_path / "out", name="kubeha")
    shutil.rmtree(node.root)  # this node's user-data comes with that bundle (its cluster id, its size bound)
    install_user_data((bundle.directory / "nodes/master1/user-data").read_bytes(), node.root)
    node.place_tar(bundle.tarball)
    proc = node.run(timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "images=imported manifests=2" in proc.stdout
    pinned = pinned_refs(node.daemon)
    for manifest in MANIFESTS:
        pod = yaml.safe_load((node.root / "etc/kubernetes/manifests" / manifest).read_text())
        for container in pod["spec"]["containers"]:
            assert container["image"] in pinned, (container["image"], pinned)


@pytest.mark.parametrize("form", ["binary", "armor with headers"])
def test_key_forms_accepted(node: Node, packed: Packed, gpg_keys: Keys, form: str) -> None:
    """The node's key file may be binary, or armored with header lines (gpgv gets a dearmored keyring)."""
    key_file = node.root / "etc/kubeha/bundle-key.asc"
    if form == "binary":
        export = ["gpg", "--homedir", str(gpg_keys.trusted.home), "--export", gpg_keys.trusted.fingerprint]
        key_file.write_bytes(subprocess.run(export, capture_output=True, check=True).stdout)
    else:
        lines = key_file.read_text().splitlines()
        key_file.write_text("\n".join([lines[0], "Comment: kubeha test key", "Version: x", *lines[1:]]) + "\n")
    node.place_tar(packed.bundle.tarball)
    assert_ok(node, node.run(), "imported")
