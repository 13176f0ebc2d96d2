"""End to end: the images built by ``kubeha image build``, saved by ``kubeha image save``, then read by real
consumers: Docker (a fresh data root), containerd (``ctr import`` + ``ctr run``) and skopeo.

Needs root and the Debian packages docker.io, containerd, runc, skopeo, debootstrap. The fixtures come from
the plugins e2e.daemons and fixtures.images (registered in tests/conftest.py: pytest_plugins).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from e2e.daemons import Daemon, ctr, short_workdir, start_dockerd, stop_and_remove
from fixtures.images import ImagesBuild, kubeha_cli
from kubeha.bundle import images
from kubeha.bundle.archive import sha256_file as archive_sha256

pytestmark = pytest.mark.e2e

KEEPALIVED_CMD = ["keepalived", "--dont-fork", "--log-console", "--log-detail",
                  "--use-file=/etc/keepalived/keepalived.conf"]
HAPROXY_CMD = ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: install it with `apt-get install -y {package}`"
    return path


@pytest.fixture(scope="module")
def client(session_images: ImagesBuild) -> docker.DockerClient:
    return docker.DockerClient(base_url=session_images.dockerd.address)


@pytest.fixture(scope="module")
def imported(containerd: Daemon, session_images: ImagesBuild) -> Daemon:
    run = ctr(containerd, "images", "import", str(session_images.archive))
    assert run.returncode == 0, run.stderr
    return containerd


def test_build_tags_both_images_with_their_commands(client: docker.DockerClient) -> None:
    keepalived = client.images.get(images.DEFAULT_KEEPALIVED_REF)
    haproxy = client.images.get(images.DEFAULT_HAPROXY_REF)
    assert keepalived.attrs["Config"]["Cmd"] == KEEPALIVED_CMD
    assert haproxy.attrs["Config"]["Cmd"] == HAPROXY_CMD
    assert keepalived.labels["org.opencontainers.image.version"] == "2.3.3"
    assert haproxy.labels["org.opencontainers.image.version"] == "3.0.11"
    # Both sit on the same base, so the archive carries that layer once.
    assert keepalived.attrs["RootFS"]["Layers"][0] == haproxy.attrs["RootFS"]["Layers"][0]


def test_build_streams_output(session_images: ImagesBuild) -> None:
    out = session_images.build_output
    assert "Step 1/" in out and "Successfully tagged kubeha.local/keepalived:2.3.3" in out
    assert "Successfully tagged kubeha.local/haproxy:3.0.11" in out


SLIM_CHECK = ("find /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale /usr/share/perl "
              "/var/lib/apt/lists /var/cache/apt -type f ! -name copyright ! -name lock 2>/dev/null | head -n 20")


def test_images_stay_slim(client: docker.DockerClient) -> None:
    # No docs (copyright files stay), man pages, locales, apt lists or caches; no Perl modules either.
    for ref in images.DEFAULT_REFS:
        found = client.containers.run(ref, ["sh", "-c", SLIM_CHECK], network_mode="none", remove=True)
        assert found.decode() == "", f"{ref} carries files it never reads:\n{found.decode()}"
        copyright = client.containers.run(ref, ["sh", "-c", "ls /usr/share/doc/*/copyright | wc -l"],
                                          network_mode="none", remove=True)
        assert int(copyright.decode()) > 20, "licence files must stay"


def test_save_writes_archive_and_metadata(session_images: ImagesBuild, client: docker.DockerClient) -> None:
    archive = session_images.archive
    meta = json.loads(archive.with_name("images.json").read_text())
    infos = images.inspect_archive(archive)
    assert meta["sha256"] == archive_sha256(archive)
    assert meta["size"] == archive.stat().st_size
    assert meta["images"] == [info.to_dict() for info in infos]
    by_ref = {ref: info for info in infos for ref in info.refs}
    assert set(by_ref) == set(images.DEFAULT_REFS)
    for ref, info in by_ref.items():
        assert info.image_id == client.images.get(ref).id
        assert list(info.layers) == client.images.get(ref).attrs["RootFS"]["Layers"]
    with tarfile.open(archive) as tar:
        layer_files = [m for m in tar.getmembers() if m.name.endswith("layer.tar")]
    assert len(layer_files) == len({layer for info in infos for layer in info.layers})
    assert not list(archive.parent.glob(".images.tar.*")), "temp file left behind"


def _skopeo_json(*args: str) -> dict[str, object]:
    skopeo = _tool("skopeo", "skopeo")
    run = subprocess.run([skopeo, *args], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)  # type: ignore[no-any-return]


def test_inspect_agrees_with_skopeo(session_images: ImagesBuild) -> None:
    archive = session_images.archive
    run = kubeha_cli("inspect", "--json", str(archive))
    assert run.returncode == 0, run.stderr
    ours = json.loads(run.stdout)["result"]["images"]
    assert [r for i in ours for r in i["refs"]] == _skopeo_json("list-tags", f"docker-archive:{archive}")["Tags"]
    assert sorted(r for i in ours for r in i["refs"]) == sorted(images.DEFAULT_REFS)
    for index, info in enumerate(ours):
        (ref,) = info["refs"]
        for source in (f"docker-archive:{archive}:{ref}", f"docker-archive:{archive}:@{index}"):
            theirs = _skopeo_json("inspect", source)
            assert theirs["Layers"] == info["layers"], source
            assert (theirs["Os"], theirs["Architecture"], theirs["Created"]) == (
                info["os"], info["architecture"], info["created"])
        raw_config = subprocess.run(["skopeo", "inspect", "--raw", "--config", f"docker-archive:{archive}:{ref}"],
                                    capture_output=True, check=True).stdout
        assert "sha256:" + hashlib.sha256(raw_config).hexdigest() == info["image_id"]


def test_inspect_verify_hashes_every_layer(session_images: ImagesBuild) -> None:
    run = kubeha_cli("inspect", "--verify", str(session_images.archive))
    assert run.returncode == 0, run.stderr
    assert images.DEFAULT_KEEPALIVED_REF in run.stdout and images.DEFAULT_HAPROXY_REF in run.stdout


def test_containerd_imports_fully_qualified_refs(imported: Daemon) -> None:
    listed = ctr(imported, "images", "ls", "-q")
    assert listed.returncode == 0, listed.stderr
    assert set(images.DEFAULT_REFS) <= set(listed.stdout.split())


@pytest.mark.parametrize(("ref", "argv", "expected"), [
    (images.DEFAULT_KEEPALIVED_REF, ["keepalived", "--version"], "Keepalived v2.3.3"),
    (images.DEFAULT_KEEPALIVED_REF, ["curl", "--version"], "Protocols:"),
    (images.DEFAULT_KEEPALIVED_REF, ["sh", "-c", "test -s /etc/ssl/certs/ca-certificates.crt && echo ca-ok"],
     "ca-ok"),
    (images.DEFAULT_HAPROXY_REF, ["haproxy", "-v"], "HAProxy version 3.0.11"),
])
def test_containerd_runs_each_image(imported: Daemon, ref: str, argv: list[str], expected: str) -> None:
    name = "kh-" + argv[0].replace("/", "") + "-" + ref.split("/")[1].split(":")[0]
    run = ctr(imported, "run", "--rm", ref, name, *argv, timeout=120)
    assert run.returncode == 0, run.stderr
    assert expected in run.stdout + run.stderr


KEEPALIVED_CONF = """\
global_defs {
  enable_script_security
  script_user root
}
vrrp_script chk_apiserver {
  script "/etc/keepalived/check_apiserver.sh"
  interval 1
  fall 1
  rise 1
}
vrrp_instance VI_1 {
  state MASTER
  interface kh0
  virtual_router_id 51
  priority 150
  advert_int 1
  virtual_ipaddress {
    198.18.200.10/32 dev kh0
  }
  track_script {
    chk_apiserver
  }
}
"""
# Same shape as the real check (POSIX sh, curl --fail -k), against a URL that needs no server.
CHECK_SCRIPT = "#!/bin/sh\nexec curl --fail -s -k -o /dev/null file:///etc/os-release\n"


@pytest.fixture
def lab_netns() -> Iterator[str]:
    """A network namespace with a veth pair (kh0 on 198.18.200.1/24, kh1), linked to nothing outside."""
    _tool("ip", "iproute2")
    name = f"kh-img-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (["link", "add", "kh0", "type", "veth", "peer", "name", "kh1"],
                     ["link", "set", "kh1", "up"], ["addr", "add", "198.18.200.1/24", "dev", "kh0"],
                     ["link", "set", "kh0", "up"], ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", name, *argv], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _has_vip(netns: str) -> bool:
    shown = subprocess.run(["ip", "-n", netns, "-o", "addr", "show", "dev", "kh0"], capture_output=True, text=True)
    return "198.18.200.10/32" in shown.stdout


def test_keepalived_runs_its_check_script_and_takes_the_vip(imported: Daemon, tmp_path: Path,
                                                           lab_netns: str) -> None:
    conf, script = tmp_path / "keepalived.conf", tmp_path / "check_apiserver.sh"
    conf.write_text(KEEPALIVED_CONF)
    script.write_text(CHECK_SCRIPT)
    conf.chmod(0o600)
    script.chmod(0o755)
    mounts = [f"type=bind,src={conf},dst=/etc/keepalived/keepalived.conf,options=rbind:ro",
              f"type=bind,src={script},dst=/etc/keepalived/check_apiserver.sh,options=rbind:ro"]
    checked = ctr(imported, "run", "--rm", *[a for m in mounts for a in ("--mount", m)],
                  "--with-ns", f"network:/run/netns/{lab_netns}", images.DEFAULT_KEEPALIVED_REF, "kh-ka-check",
                  "keepalived", "-t", "-f", "/etc/keepalived/keepalived.conf", timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The image's default command, as the static pod runs it: host (here: lab) network, three capabilities.
    caps = [a for c in ("CAP_NET_ADMIN", "CAP_NET_BROADCAST", "CAP_NET_RAW") for a in ("--cap-add", c)]
    log = tmp_path / "keepalived.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["ctr", "--address", str(imported.socket), "-n", "k8s.io", "run", "--rm", *caps,
             *[a for m in mounts for a in ("--mount", m)], "--with-ns", f"network:/run/netns/{lab_netns}",
             images.DEFAULT_KEEPALIVED_REF, "kh-ka-run"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _has_vip(lab_netns) and proc.poll() is None:
            time.sleep(0.2)
        assert _has_vip(lab_netns), log.read_text()
    finally:
        ctr(imported, "task", "kill", "-s", "SIGTERM", "kh-ka-run")
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            ctr(imported, "task", "kill", "-s", "SIGKILL", "kh-ka-run")
            proc.wait(timeout=20)
    text = log.read_text()
    assert "Entering MASTER STATE" in text and "VRRP_Script(chk_apiserver) succeeded" in text, text
    assert not _has_vip(lab_netns), "keepalived should remove the VIP when it stops"


def test_docker_loads_archive_into_fresh_data_root(session_images: ImagesBuild) -> None:
    fresh = start_dockerd(short_workdir("load"))
    try:
        client = docker.DockerClient(base_url=fresh.address)
        assert client.images.list() == []
        with session_images.archive.open("rb") as handle:
            loaded = client.images.load(handle)
        assert {tag for image in loaded for tag in image.tags} == set(images.DEFAULT_REFS)
        expected = {i.refs[0]: i.image_id for i in images.inspect_archive(session_images.archive)}
        for ref, image_id in expected.items():
            assert client.images.get(ref).id == image_id
        out = client.containers.run(images.DEFAULT_HAPROXY_REF, ["haproxy", "-v"], network_mode="none",
                                    remove=True)
        assert b"3.0.11" in out
    finally:
        stop_and_remove(fresh)


def test_save_of_a_missing_ref_fails_clearly(session_images: ImagesBuild, tmp_path: Path) -> None:
    run = kubeha_cli("save", "-o", str(tmp_path / "x.tar"), "kubeha.local/nope:1.0",
                     env=session_images.dockerd.env())
    assert run.returncode == 1
    assert "kubeha.local/nope:1.0" in run.stderr and "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_save_takes_refs_the_user_already_has(session_images: ImagesBuild, tmp_path: Path) -> None:
    run = kubeha_cli("save", "-o", str(tmp_path / "one.tar"), images.DEFAULT_HAPROXY_REF,
                     env=session_images.dockerd.env())
    assert run.returncode == 0, run.stderr
    (info,) = images.inspect_archive(tmp_path / "one.tar")
    assert info.refs == (images.DEFAULT_HAPROXY_REF,)


def test_build_failure_shows_the_failing_step(session_images: ImagesBuild, tmp_path: Path) -> None:
    (tmp_path / "haproxy").mkdir()
    (tmp_path / "haproxy" / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo preparing-things\n"
        "RUN echo about-to-fail && ls /does-not-exist\nRUN echo never\n"
    )
    run = kubeha_cli("build", "-q", "haproxy", "--docker-dir", str(tmp_path), "--base", session_images.base_ref,
                     env=session_images.dockerd.env())
    assert run.returncode == 1
    assert "building kubeha.local/haproxy:3.0.11 failed" in run.stderr
    assert "about-to-fail" in run.stderr and "/does-not-exist" in run.stderr
    assert "preparing-things" not in run.stderr, "only the failing step's output is shown"
    assert "Traceback" not in run.stderr


def test_build_with_a_missing_base_fails_clearly(session_images: ImagesBuild) -> None:
    run = kubeha_cli("build", "haproxy", "--base", "kubeha.local/no-such-base:1",
                     env=session_images.dockerd.env())
    assert run.returncode == 1
    assert "kubeha.local/no-such-base:1" in run.stderr and "Traceback" not in run.stderr


def test_shared_archive_fixture_holds_both_images(session_images: ImagesBuild, kubeha_images_tar: Path) -> None:
    # Other suites (the failover lab, bundles) take this fixture; after a build in this run it is that build.
    assert archive_sha256(kubeha_images_tar) == archive_sha256(session_images.archive)  # digests: a readable diff
    assert images.verify_archive(kubeha_images_tar) == []
