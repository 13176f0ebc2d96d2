# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""A real cloud-init run of merged user-data: the user's base config and kubeha's, nothing of either lost.

The user's provisioning (``--merge-dir``): ``all.yaml`` adds a user with an SSH key, a CA certificate (a
real one, made with openssl), its own write_files, bootcmd and runcmd; ``master1.sh`` adds a script part for
the master only, so the master gets a MIME multipart and the worker one merged #cloud-config. Both are
packed into a signed bundle and run through Debian 12's cloud-init in the chroot harness, the master
installing the bundle into a private containerd. Every item of both sides must land, in the documented
order: bootcmd before any file, files before runcmd, the user's script and runcmd before kubeha's install.
Every cloud-config part passes cloud-init 22.4's and 25.x's schemas; a conflicting merge is refused.
"""

from __future__ import annotations

import email
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import guest
import pytest
import yaml
from daemons import Daemon
from guest import cloud_init_workdir  # noqa: F401 - fixture
from test_node_install import MANIFESTS, SEED_TAR, containerd, pinned_refs, remove_images  # noqa: F401

from kubeha.bundle import PackResult
from kubeha.bundle.pack import Delivery, pack_inventory
from kubeha.deliver.merge import kind_of
from kubeha.errors import InvalidInput
from kubeha.generate import MergeSpec, generate_documents
from test_bundle import REFS, make_docker_archive
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.yaml"
ORDER = "/var/log/site-order.log"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKubehaTestKeyNotForUseAnywhere0000000000000 ops@site"
# Each step appends its name and what it can already see, so the log proves the order things ran in.
SEEN = ("$(test -e /etc/site/site.conf && echo site-file || echo no-site-file) "
        "$(test -e /etc/kubeha/control-plane.env && echo kubeha-file || echo no-kubeha-file) "
        "$(test -e /var/lib/kubeha/status.json && echo installed || echo not-installed)")


def base_config(ca_pem: str) -> str:
    return yaml.safe_dump({
        "bootcmd": [["sh", "-c", f'echo "bootcmd {SEEN}" >> {ORDER}']],
        "users": [{"name": "ops", "shell": "/bin/sh", "ssh_authorized_keys": [SSH_KEY]}],
        "ca_certs": {"trusted": [ca_pem]},
        "write_files": [{"path": "/etc/site/site.conf", "content": "site=dc1\n", "permissions": "0640"}],
        "runcmd": [["sh", "-c", f'echo "user-runcmd {SEEN}" >> {ORDER}']],
    }, sort_keys=False)


SCRIPT = f'#!/bin/sh\necho "user-script {SEEN}" >> {ORDER}\n'


@dataclass(frozen=True)
class Merged:
    bundle: PackResult
    documents: dict[str, dict[str, bytes]]
    ca_pem: str
    merge_dir: Path
    inventory: Path


def make_ca(tmp: Path) -> str:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=kubeha site test CA", "-days", "2", "-keyout", str(tmp / "ca.key"),
                    "-out", str(tmp / "ca.pem")], check=True, capture_output=True, timeout=60)
    return (tmp / "ca.pem").read_text()


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory, gpg_keys: Keys) -> Merged:
    tmp = tmp_path_factory.mktemp("merge-run")
    inventory = tmp / "cluster.yaml"
    shutil.copy(EXAMPLE, inventory)
    ca_pem = make_ca(tmp)
    merge_dir = tmp / "site"
    merge_dir.mkdir()
    (merge_dir / "all.yaml").write_text("#cloud-config\n" + base_config(ca_pem))
    (merge_dir / "master1.sh").write_text(SCRIPT)
    images = tmp / "images.tar"
    make_docker_archive(images)
    bundle = pack_inventory(inventory, images, gpg_keys.trusted.signer(), tmp / "out", name="kubeha",
                            delivery=Delivery(merge=MergeSpec(directory=merge_dir)))
    nodes = bundle.directory / "nodes"
    documents = {n.name: {d: (n / d).read_bytes() for d in ("user-data", "meta-data")} for n in nodes.iterdir()}
    return Merged(bundle, documents, ca_pem, merge_dir, inventory)


def cloud_config_parts(user_data: bytes) -> list[str]:
    if kind_of(user_data) == "cloud-config":
        return [user_data.decode()]
    msg = email.message_from_bytes(user_data)
    return [p.get_payload(decode=True).decode() for p in msg.walk()
            if not p.is_multipart() and p.get_content_type() == "text/cloud-config"]


def test_forms_and_every_part_passes_both_schemas(merged: Merged, tmp_path: Path) -> None:
    assert kind_of(merged.documents["master1"]["user-data"]) == "mime"  # a script part: only MIME can carry it
    assert kind_of(merged.documents["worker1"]["user-data"]) == "cloud-config"
    checked = 0
    for node in ("master1", "worker1"):
        for i, part in enumerate(cloud_config_parts(merged.documents[node]["user-data"])):
            path = tmp_path / f"{node}-{i}.yaml"
            path.write_text(part)
            for newer in (False, True):
                rc, out = guest.cloud_init_schema(path, newer)
                assert rc == 0, f"{node} part {i} (newer={newer}): {out}"
                checked += 1
    assert checked == 2 * (2 + 1)  # master: base + kubeha parts; worker: one merged document


def _run(merged: Merged, node: str, daemon: Daemon, workdir: Path) -> guest.CloudInitRun:
    docs = merged.documents[node]
    binds = [guest.Bind(merged.bundle.tarball, "/" + SEED_TAR),
             guest.Bind(daemon.socket, "/run/containerd/containerd.sock", readonly=False)]
    return guest.run_cloud_init(docs["user-data"], docs["meta-data"], binds=binds, workdir=workdir)


def _assert_user_side(run: guest.CloudInitRun, ca_pem: str) -> None:
    assert "ops:" in run.read("/etc/passwd")
    assert run.read("/home/ops/.ssh/authorized_keys").strip().endswith(SSH_KEY)
    assert ca_pem.strip() in run.read("/etc/ssl/certs/ca-certificates.crt")
    assert run.read("/etc/site/site.conf") == "site=dc1\n" and run.mode("/etc/site/site.conf") == 0o640


def test_master_applies_both_sides_in_order(merged: Merged, containerd: Daemon, cloud_init_workdir: Path) -> None:
    remove_images(containerd)
    run = _run(merged, "master1", containerd, cloud_init_workdir)
    assert run.ok, run.describe()
    _assert_user_side(run, merged.ca_pem)
    assert run.read(ORDER).splitlines() == [
        "bootcmd no-site-file no-kubeha-file not-installed",       # init stage, before write_files
        "user-script site-file kubeha-file not-installed",         # final stage: the script part first...
        "user-runcmd site-file kubeha-file not-installed",         # ...then runcmd, the user's commands first
    ]
    status = json.loads(run.read("/var/lib/kubeha/status.json"))  # ...and kubeha's install last
    assert status["verdict"] == "ok" and [s["status"] for s in status["steps"]] == ["ok"] * 6
    for manifest in MANIFESTS:
        assert run.read(f"/etc/kubernetes/manifests/{manifest}") == run.read(f"/etc/kubeha/manifests/{manifest}")
    assert run.mode("/etc/keepalived/keepalived.conf") == 0o600
    assert pinned_refs(containerd) == set(REFS)
    shutil.rmtree(run.upper.parent, ignore_errors=True)


def test_worker_applies_both_sides_in_order(merged: Merged, containerd: Daemon, cloud_init_workdir: Path) -> None:
    run = _run(merged, "worker1", containerd, cloud_init_workdir)
    assert run.ok, run.describe()
    _assert_user_side(run, merged.ca_pem)
    assert "KUBEHA_CONTROL_PLANE_ENDPOINT=198.18.0.10:6444" in run.read("/etc/kubeha/control-plane.env")
    assert run.read(ORDER).splitlines() == [
        "bootcmd no-site-file no-kubeha-file not-installed",
        "user-runcmd site-file kubeha-file not-installed",
    ]
    shutil.rmtree(run.upper.parent, ignore_errors=True)


def test_conflicting_merge_is_refused(merged: Merged, tmp_path: Path) -> None:
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "master2.yaml").write_text("#cloud-config\nwrite_files:\n- path: /etc/haproxy/haproxy.cfg\n  content: x\n")
    with pytest.raises(InvalidInput) as exc:
        generate_documents(merged.inventory, merge=MergeSpec(directory=clash))
    assert [str(p) for p in exc.value.problems] == [
        f"{clash / 'master2.yaml'}:3: error: write_files: /etc/haproxy/haproxy.cfg is written by both "
        f"{clash / 'master2.yaml'} and kubeha (master2)"]
