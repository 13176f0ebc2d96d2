"""Proves the cloud-init harness (guest.py) works, and that each of its checks can fail.

Small hand-written user-data only: the product's own documents are checked by the feature tests that
use this harness. Everything runs the real cloud-init (22.4.2 from Debian 12, 25.x from Debian 13).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import guest
import pytest

pytestmark = pytest.mark.e2e

VALID = """\
#cloud-config
write_files:
- path: /etc/kubeha/example.conf
  content: "hello\\n"
  permissions: '0640'
  owner: root:root
runcmd:
- [sh, -c, "echo ok"]
"""
UNKNOWN_KEY = "#cloud-config\nkubeha_no_such_module: {enabled: true}\n"
WRONG_TYPE = "#cloud-config\nwrite_files:\n- path: /etc/x\n  content: x\n  permissions: 384\n"
META = b"instance-id: iid-harness-1\nlocal-hostname: harness-node\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "user-data"
    path.write_text(text)
    return path


# --- schema -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("newer", [False, True], ids=["bookworm-22.4", "trixie-25"])
def test_schema_accepts_valid_cloud_config(tmp_path: Path, newer: bool) -> None:
    rc, out = guest.cloud_init_schema(_write(tmp_path, VALID), newer)
    assert rc == 0, out


@pytest.mark.parametrize("newer", [False, True], ids=["bookworm-22.4", "trixie-25"])
def test_schema_rejects_wrong_type(tmp_path: Path, newer: bool) -> None:
    rc, out = guest.cloud_init_schema(_write(tmp_path, WRONG_TYPE), newer)
    assert rc == 1, out
    assert "write_files.0.permissions: 384 is not of type 'string'" in out


def test_newer_schema_rejects_unknown_key_where_old_accepts_it(tmp_path: Path) -> None:
    path = _write(tmp_path, UNKNOWN_KEY)
    rc_new, out_new = guest.cloud_init_schema(path, newer=True)
    assert rc_new == 1, out_new
    assert "Additional properties are not allowed ('kubeha_no_such_module' was unexpected)" in out_new
    # 22.4.2 lets unknown top-level keys through (LAB.md): that is why the newer checker exists.
    rc_old, out_old = guest.cloud_init_schema(path, newer=False)
    assert rc_old == 0, out_old


def test_newer_cloud_init_is_from_trixie() -> None:
    root = guest.newer_cloud_init()
    version = (root.parent / "version").read_text().strip()
    assert re.match(r"2[5-9]\.", version), version
    assert (root / "usr/lib/python3/dist-packages/cloudinit/config/schemas").is_dir()


# --- seed ISO ---------------------------------------------------------------------------------------


def test_seed_iso_round_trip(tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(70_000))
    files: dict[str, bytes | Path] = {
        "user-data": VALID.encode(), "meta-data": META, "bundle/SHA256SUMS": b"abc  x\n",
        "bundle/images/keepalived-image.tar": payload,
    }
    iso = guest.make_seed_iso(files, tmp_path / "seed.iso")
    label, found = guest.read_seed_iso(iso)
    assert label == "cidata"
    assert found == {k: (v.read_bytes() if isinstance(v, Path) else v) for k, v in files.items()}
    info = subprocess.run(["isoinfo", "-d", "-i", str(iso)], capture_output=True, text=True, check=True).stdout
    assert "Volume id: cidata" in info
    assert "Rock Ridge signatures version 1 found" in info
    assert "Joliet with UCS level 3 found" in info
    assert not list(tmp_path.glob(".*.tmp")), "temporary ISO left behind"


# --- a real cloud-init run in a chroot ----------------------------------------------------------------

FILES_AND_RUNCMD = b"""\
#cloud-config
write_files:
- path: /etc/kubeha/secret.conf
  content: "not-a-real-secret\\n"
  permissions: '0600'
  owner: root:root
- path: /opt/kubeha/hello.sh
  content: "#!/bin/sh\\necho hello\\n"
  permissions: '0755'
  owner: nobody:nogroup
runcmd:
- [sh, -c, "id -un > /root/runcmd-ran; echo KUBEHA-HARNESS-CONSOLE-LINE > /dev/console"]
"""


def test_run_writes_files_with_modes_and_owners(tmp_path: Path) -> None:
    tree = guest.guest_tree()
    hostname_before = (tree / "etc/hostname").read_text()
    run = guest.run_cloud_init(FILES_AND_RUNCMD, META, workdir=tmp_path)
    assert run.ok, run.describe()
    assert run.errors == []
    assert [s.name for s in run.stages] == ["init-local", "init", "modules-config", "modules-final"]
    assert run.status["v1"]["datasource"].startswith("DataSourceNoCloud")
    assert run.read("/etc/kubeha/secret.conf") == "not-a-real-secret\n"
    assert (run.mode("/etc/kubeha/secret.conf"), run.owner("/etc/kubeha/secret.conf")) == (0o600, "root:root")
    assert (run.mode("/opt/kubeha/hello.sh"), run.owner("/opt/kubeha/hello.sh")) == (0o755, "nobody:nogroup")
    assert run.read("/root/runcmd-ran") == "root\n"
    assert "KUBEHA-HARNESS-CONSOLE-LINE" in run.console
    assert "WARNING" not in run.cloud_init_log, run.cloud_init_log
    # The tree stays pristine and nothing stays mounted on the host.
    assert (tree / "etc/hostname").read_text() == hostname_before
    assert not (tree / "etc/kubeha").exists()
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


def test_run_reports_a_module_error_in_result_json(tmp_path: Path) -> None:
    user_data = b"#cloud-config\nwrite_files:\n- path: /etc/x\n  content: x\n  owner: kubeha-no-such-user:root\n"
    run = guest.run_cloud_init(user_data, META, workdir=tmp_path)
    assert not run.ok
    assert any("write_files" in e or "write-files" in e for e in run.errors), run.describe()
    assert "kubeha-no-such-user" in run.cloud_init_log


def test_run_is_offline_and_sees_binds(tmp_path: Path) -> None:
    media = tmp_path / "fake-cidata"
    (media / "bundle").mkdir(parents=True)
    (media / "bundle" / "SHA256SUMS").write_text("0" * 64 + "  x\n")
    single = tmp_path / "single.txt"
    single.write_text("one file\n")
    user_data = b"""\
#cloud-config
runcmd:
- [sh, -c, "cp /media/cidata/bundle/SHA256SUMS /root/copied"]
- [sh, -c, "touch /media/cidata/written 2>/dev/null; echo $? > /root/ro-rc"]
- [sh, -c, "ls /sys/class/net > /root/links"]
- [sh, -c, "curl -sS --max-time 5 http://198.18.0.1/ >/dev/null 2>&1; echo $? > /root/curl-rc"]
- [sh, -c, "ls /dev > /root/dev"]
- [sh, -c, "cat /opt/kubeha-seed/single.txt > /root/single; stat -c %a /root > /root/root-mode"]
"""
    binds = [guest.Bind(media, "/media/cidata"), guest.Bind(single, "/opt/kubeha-seed/single.txt")]
    run = guest.run_cloud_init(user_data, META, workdir=tmp_path, binds=binds)
    assert run.ok, run.describe()
    assert run.read("/root/copied") == "0" * 64 + "  x\n"
    assert run.read("/root/ro-rc").strip() != "0"
    assert not (media / "written").exists()
    assert run.read("/root/links").split() == ["lo"]
    assert run.read("/root/curl-rc").strip() == "7"  # could not connect: no route at all
    assert not {"sda", "vda", "sr0", "loop0"} & set(run.read("/root/dev").split())
    assert run.read("/root/single") == "one file\n"
    assert run.read("/root/root-mode").strip() == "700"
    # Mount points live in the harness's seed layer: the upper dir holds only what cloud-init wrote.
    assert not run.path("/opt/kubeha-seed").exists() and not run.path("/media/cidata").exists()


def test_run_timeout_kills_the_whole_namespace(tmp_path: Path) -> None:
    token = str(900_000 + uuid.uuid4().int % 99_999)
    user_data = (f"#cloud-config\nruncmd:\n- [sh, -c, 'echo KUBEHA-SLEEPING > /dev/console']\n"
                 f"- [sleep, '{token}']\n").encode()
    started = time.monotonic()
    with pytest.raises(guest.HarnessTimeout, match="exceeded 15 s") as caught:
        guest.run_cloud_init(user_data, META, workdir=tmp_path, timeout=15)
    assert time.monotonic() - started < 30
    assert "KUBEHA-SLEEPING" in str(caught.value), "the run was killed before runcmd started: raise the timeout"
    time.sleep(0.5)
    leftovers = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token.encode() in cmdline.read_bytes():
                leftovers.append(cmdline.parent.name)
        except OSError:
            continue
    assert leftovers == [], f"processes left behind: {leftovers}"
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


# --- a VM boot ---------------------------------------------------------------------------------------


# The VM boot from a seed ISO lives in tests/e2e/test_node_install.py: one boot per run covers the
# harness, kubeha's seed-ISO writer, the bundle and the node install together (each boot costs ~2 min).


def test_run_in_a_given_netns_reaches_a_server_there(tmp_path: Path) -> None:
    """``netns=`` puts the run into a lab namespace (e.g. for NoCloud-net from a test's HTTP server)."""
    ns = f"kubeha-gh-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        (tmp_path / "www").mkdir()
        (tmp_path / "www" / "hello.txt").write_text("served-in-netns\n")
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, "python3", "-m", "http.server", "--bind", "127.0.0.1", "18080",
             "--directory", str(tmp_path / "www")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        user_data = (b"#cloud-config\nruncmd:\n- [sh, -c, 'for i in 1 2 3 4 5 6 7 8 9 10; do curl -sf --max-time 2 "
                     b"http://127.0.0.1:18080/hello.txt > /root/fetched && break; sleep 0.5; done']\n")
        run = guest.run_cloud_init(user_data, META, workdir=tmp_path, netns=ns, timeout=120)
        assert run.ok, run.describe()
        assert run.read("/root/fetched") == "served-in-netns\n"
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", ns], check=True)
