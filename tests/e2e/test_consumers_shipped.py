"""The configs are accepted by the keepalived and haproxy that the nodes actually run: the shipped images'.

tests/e2e/test_consumers.py checks every golden case with this machine's binaries (Debian 12: keepalived
2.2.7, haproxy 2.6.12). The images ship Debian 13's (keepalived 2.3.x, haproxy 3.0 LTS), so the same cases
go through ``keepalived -t`` and ``haproxy -c`` inside the images too (containerd, ``ctr run``), with no
warning allowed; and the bench-only ``fast-script`` baseline, a 0.1 s ``vrrp_script``, is shown to be read
as 0.1 s by the image's keepalived (2.2's would round it up to whole seconds).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.daemons import Daemon, ctr
from fixtures.images import ensure_images_tar
from kubeha.bundle import images
from kubeha.lab import files_from_inventory
from kubeha_test import GOLDEN_CASES, VRRP_CASES, Case, run, staged_inventory, unpack

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped(containerd: Daemon) -> Daemon:
    """The session's containerd with the shipped images imported (this run's build, or the cached one)."""
    done = ctr(containerd, "images", "import", str(ensure_images_tar()))
    assert done.returncode == 0, done.stderr
    return containerd


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Every golden case generated once and each master's files unpacked: case -> [node root]."""
    out: dict[str, list[Path]] = {}
    for case in GOLDEN_CASES:
        tmp = tmp_path_factory.mktemp(case.name)
        code, _, err = run("gen", "userdata", str(staged_inventory(case.inventory, tmp)), "-o", str(tmp / "out"))
        assert code == 0, err
        roots = []
        for user_data in sorted((tmp / "out").glob("*/user-data")):
            if b"/etc/haproxy/haproxy.cfg" in user_data.read_bytes():
                root = tmp / "nodes" / user_data.parent.name
                unpack(user_data.read_bytes(), root)
                roots.append(root)
        out[case.name] = roots
    return out


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace made for one test (links added by the test), removed afterwards."""
    name = f"kh-ship-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def _links(ns: str, confs: list[str]) -> None:
    """The interfaces the configs name, as veths (keepalived -t checks that they exist)."""
    names = sorted({line.split()[1] for conf in confs for line in conf.splitlines()
                    if line.strip().startswith("interface ")})
    for i, name in enumerate(names):
        subprocess.run(["ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", f"khp{i}"],
                       check=True, timeout=30)


def _mounts(keepalived_dir: Path) -> list[str]:
    """The two files bind-mounted one by one, as the static pod does: the image's own /etc/keepalived stays
    (keepalived 2.3 reads its build options from /etc/keepalived/keepalived.config-opts, and ``-t`` fails
    without it: a pod that mounted the whole directory would not start)."""
    return [a for name in ("keepalived.conf", "check_apiserver.sh") for a in (
        "--mount", f"type=bind,src={keepalived_dir / name},dst=/etc/keepalived/{name},options=rbind:ro")]


def _verdict_dir(keepalived_dir: Path) -> list[str]:
    """The prober's verdict directory, a hostPath of the pod (keepalived 2.3 refuses a track_file whose
    directory is missing: exit 5, "realpath() error")."""
    verdict = keepalived_dir.parent / "run-kubeha"
    verdict.mkdir(exist_ok=True)
    return ["--mount", f"type=bind,src={verdict},dst=/run/kubeha,options=rbind:rw"]


def _keepalived_t(daemon: Daemon, ns: str, keepalived_dir: Path, cid: str) -> subprocess.CompletedProcess[str]:
    """``keepalived -t`` in the shipped image, with a node's config and check script, in ``ns``."""
    return ctr(daemon, "run", "--rm", *_mounts(keepalived_dir), "--with-ns", f"network:/run/netns/{ns}",
               *_verdict_dir(keepalived_dir),
               images.DEFAULT_KEEPALIVED_REF, cid, "keepalived", "-t", "-l", "-f",
               "/etc/keepalived/keepalived.conf", timeout=120)


@pytest.mark.parametrize("case", VRRP_CASES, ids=lambda c: c.name)
def test_shipped_keepalived_accepts_every_master(shipped: Daemon, unpacked: dict[str, list[Path]], case: Case,
                                                 netns: str) -> None:
    roots = unpacked[case.name]
    assert roots
    _links(netns, [(r / "etc/keepalived/keepalived.conf").read_text() for r in roots])
    for root in roots:
        done = _keepalived_t(shipped, netns, root / "etc/keepalived", f"kh-ship-ka-{root.name}")
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{root.name}: {output}"
        for bad in ("SECURITY VIOLATION", "Disabling track script", "WARNING", "Unknown keyword", "ignoring",
                    "error"):
            assert bad not in output, f"{root.name}: {output}"


def test_shipped_keepalived_rejects_a_broken_config(shipped: Daemon, unpacked: dict[str, list[Path]],
                                                    tmp_path: Path, netns: str) -> None:
    root = unpacked[VRRP_CASES[0].name][0]
    broken = tmp_path / "keepalived"
    broken.mkdir()
    for name in ("keepalived.conf", "check_apiserver.sh"):
        (broken / name).write_bytes((root / "etc/keepalived" / name).read_bytes())
        (broken / name).chmod((root / "etc/keepalived" / name).stat().st_mode)
    conf = broken / "keepalived.conf"
    conf.write_text(conf.read_text().replace("priority ", "priority 3", 1))  # 3100 and the like: out of range
    _links(netns, [conf.read_text()])
    done = _keepalived_t(shipped, netns, broken, "kh-ship-ka-bad")
    assert done.returncode != 0, done.stdout + done.stderr
    assert "outside range [1, 255]" in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda c: c.name)
def test_shipped_haproxy_accepts_every_master(shipped: Daemon, unpacked: dict[str, list[Path]], case: Case,
                                              tmp_path: Path) -> None:
    roots = unpacked[case.name]
    assert roots
    nodes = roots[0].parent
    (tmp_path / "broken.cfg").write_text((roots[0] / "etc/haproxy/haproxy.cfg").read_text()
                                         .replace("balance roundrobin", "balance nonsense"))
    script = ('set -u; rc=0; for cfg in /nodes/*/etc/haproxy/haproxy.cfg; do echo "== $cfg"; '
              'haproxy -c -f "$cfg" 2>&1 || rc=1; done; echo "== broken"; '
              'if haproxy -c -f /broken/broken.cfg >/dev/null 2>&1; then echo "broken accepted"; rc=1; fi; exit $rc')
    done = ctr(shipped, "run", "--rm", "--mount", f"type=bind,src={nodes},dst=/nodes,options=rbind:ro",
               "--mount", f"type=bind,src={tmp_path},dst=/broken,options=rbind:ro",
               images.DEFAULT_HAPROXY_REF, f"kh-ship-hap-{case.name}", "sh", "-c", script, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("== /nodes/") == len(roots), output
    assert "WARNING" not in output and "ALERT" not in output, output


def test_fast_script_interval_is_sub_second_in_the_shipped_keepalived(shipped: Daemon, tmp_path: Path,
                                                                      netns: str) -> None:
    """The baseline's ``interval 0.1`` is read as 0.1 s by keepalived 2.3 (its --dump-conf says so)."""
    files = files_from_inventory(REPO / "examples" / "cluster.yaml", "fast-script")
    node_files, _ = files[sorted(files)[0]]
    kdir = tmp_path / "keepalived"
    kdir.mkdir()
    for path, data in node_files.items():
        if path.startswith("/etc/keepalived/"):
            (kdir / path.rsplit("/", 1)[1]).write_bytes(data)
    (kdir / "check_apiserver.sh").chmod(0o755)
    conf = (kdir / "keepalived.conf").read_text()
    assert "interval 0.1\n" in conf and "timeout 0.2\n" in conf
    _links(netns, [conf])
    checked = _keepalived_t(shipped, netns, kdir, "kh-ship-ka-script")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "WARNING" not in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    # run it for 2 s with --dump-conf: the parsed script says how keepalived took the interval
    done = ctr(shipped, "run", "--rm", *_mounts(kdir), "--cap-add", "CAP_NET_ADMIN", "--with-ns",
               f"network:/run/netns/{netns}", images.DEFAULT_KEEPALIVED_REF, "kh-ship-ka-dump", "sh", "-c",
               "timeout 2 keepalived -n -l -d -P -f /etc/keepalived/keepalived.conf; true", timeout=120)
    output = done.stdout + done.stderr
    assert "VRRP Script = check_apiserver" in output, output
    assert "Interval = 0.100 sec" in output and "Timeout = 0.200 sec" in output, output
