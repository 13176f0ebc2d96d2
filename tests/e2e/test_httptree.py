"""The PXE/HTTP tree served by a real static server on loopback and read by cloud-init's own NoCloud-net code.

The server is Python's http.server started by the test on 127.0.0.1 (port chosen by the kernel) and stopped
by PID. cloud-init's fetch runs with Debian's /usr/bin/python3 and the installed cloud-init package:
``DataSourceNoCloud.parse_cmdline_data`` reads the ``ds=`` argument written in README.txt, and
``cloudinit.util.read_seeded`` fetches ``meta-data``, ``user-data`` and ``vendor-data`` from that URL, exactly
as NoCloud-net does on a node. Each fetched document is then checked by its real validator.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubeha.deliver.httptree import kernel_arguments, normalise_mac, write_http_tree
from kubeha.deliver.ignition import dump, to_ignition
from kubeha.errors import InvalidInput, OutputError
from kubeha.files import NodeDocument, RenderedFile, SystemdUnit

pytestmark = pytest.mark.e2e

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which sees the cloud-init package

FETCH = r"""
import json, sys
from cloudinit import util
from cloudinit.sources import DataSourceNoCloud
out = []
for cmdline in sys.argv[1:]:
    fill = {}
    assert DataSourceNoCloud.load_cmdline_data(fill, cmdline), cmdline
    assert fill["dsmode"] == "net", fill
    md, ud, vd = util.read_seeded(fill["seedfrom"], timeout=5, retries=0)
    out.append({"seedfrom": fill["seedfrom"], "meta": md, "user": ud.decode(),
                "vendor": None if vd is None else vd.decode()})
print(json.dumps(out))
"""


HAND_MADE = ("master-1", "master-2", "worker-1")


def hand_made_docs() -> dict[str, dict[str, bytes]]:
    docs: dict[str, dict[str, bytes]] = {}
    for i, node in enumerate(HAND_MADE, start=1):
        doc = NodeDocument(node, node, "master", f"198.18.0.{10 + i}",
                           (RenderedFile("/etc/keepalived/keepalived.conf", f"# {node}\nvrrp_instance VI_1 {{}}\n", 0o600),),
                           (SystemdUnit("kubeha-install.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"),))
        user = (f"#cloud-config\nhostname: {node}\nwrite_files:\n- path: /etc/keepalived/keepalived.conf\n"
                f"  permissions: '0600'\n  content: |\n    # {node}\n")
        docs[node] = {
            "user-data": user.encode(),
            "meta-data": f"instance-id: {node}\nlocal-hostname: {node}\n".encode(),
            "config.ign": dump(to_ignition(doc)).encode(),
        }
    return docs


@functools.cache
def generated_docs() -> dict[str, dict[str, bytes]]:
    """The lead's real cloud-init and Ignition documents for examples/seed-hosts.ini."""
    from kubeha.generate import generate_documents
    from kubeha_test import EXAMPLES, staged_inventory

    with tempfile.TemporaryDirectory() as tmp:
        inventory = staged_inventory(EXAMPLES / "seed-hosts.ini", Path(tmp))
        cloud = generate_documents(inventory)
        ignition = generate_documents(inventory, fmt="ignition")
    return {node: {**cloud[node], **ignition[node]} for node in cloud}


def node_docs() -> dict[str, dict[str, bytes]]:
    return hand_made_docs() | generated_docs()


def macs_for(nodes: list[str]) -> dict[str, str]:
    """Made-up MACs in the three spellings operators use (colons, dashes, bare hex)."""
    spell = ("52:54:00:12:34:{:02x}", "52-54-00-12-34-{:02X}", "5254001234{:02x}")
    return {node: spell[i % 3].format(i + 1) for i, node in enumerate(sorted(nodes))}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static HTTP server on 127.0.0.1 over tmp_path/www, stopped by PID at the end."""
    root = tmp_path / "www"
    root.mkdir()
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (http://127.0.0.1:N/) ..."
        match = re.search(r"port (\d+)", line)
        assert match, line
        yield root, f"127.0.0.1:{match.group(1)}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def cloud_init_fetch(*cmdlines: str) -> list[dict[str, object]]:
    """Run cloud-init's own NoCloud-net code on each kernel command line; what it fetched, in order."""
    if not Path(SYSTEM_PYTHON).exists() or subprocess.run([SYSTEM_PYTHON, "-c", "import cloudinit"], capture_output=True).returncode:
        pytest.fail("cloud-init for Debian's python3 is missing: apt-get install -y cloud-init")
    result = subprocess.run([SYSTEM_PYTHON, "-c", FETCH, *cmdlines], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def check_cloud_config(tmp_path: Path, text: str) -> None:
    exe = shutil.which("cloud-init") or pytest.fail("cloud-init is missing: apt-get install -y cloud-init")
    path = tmp_path / "fetched-user-data"
    path.write_text(text)
    result = subprocess.run([exe, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def check_ignition(tmp_path: Path, data: bytes) -> None:
    exe = shutil.which("ignition-validate") or pytest.fail("ignition-validate is missing: apt-get install -y ignition")
    path = tmp_path / "fetched.ign"
    path.write_bytes(data)
    result = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def readme_args(root: Path, node: str) -> list[str]:
    """Every kernel argument README.txt lists for ``node`` (its cloud-init and ignition lines)."""
    lines = (root / "README.txt").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"{node} ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i]), len(lines))
    block = lines[start + 1 : end]
    assert all(ln.startswith(("  cloud-init: ", "  ignition:   ")) for ln in block), block
    return [arg for ln in block for arg in ln.split()[1:]]


@pytest.mark.parametrize("key_by", ["name", "mac"])
def test_nocloud_net_and_ignition_fetch_from_the_tree(tmp_path: Path, served: tuple[Path, str], key_by: str) -> None:
    root, address = served
    docs = node_docs()
    macs = macs_for(list(docs))
    keys = write_http_tree(root, docs, key_by=key_by, macs=macs)
    nodes = sorted(docs)
    args = {node: [a.replace("SERVER", address) for a in readme_args(root, node)] for node in nodes}
    cmdlines = [f"root=/dev/vda1 ro {next(a for a in args[n] if a.startswith('ds=nocloud-net;s='))} quiet" for n in nodes]
    for node, fetched in zip(nodes, cloud_init_fetch(*cmdlines), strict=True):
        files, key = docs[node], keys[node]
        assert key == (node if key_by == "name" else normalise_mac(macs[node]))
        assert fetched["seedfrom"] == f"http://{address}/{key}/"
        assert fetched["user"] == files["user-data"].decode()
        assert fetched["meta"] == yaml.safe_load(files["meta-data"])
        assert fetched["vendor"] == ""  # present (no retries on a 404), empty
        url = next(a for a in args[node] if a.startswith("ignition.config.url=")).split("=", 1)[1]
        assert url == f"http://{address}/{key}/config.ign"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback URL built above
            ignition = response.read()
        assert ignition == files["config.ign"]
        if key_by == "name":  # the same bytes in both layouts: validate them once
            check_cloud_config(tmp_path, str(fetched["user"]))
            check_ignition(tmp_path, ignition)


def test_fetch_fails_for_an_unknown_node(served: tuple[Path, str]) -> None:
    """The fetch check can fail: a node with no directory gets no documents."""
    root, address = served
    write_http_tree(root, node_docs())
    with pytest.raises(AssertionError, match="404"):
        cloud_init_fetch(f"ds=nocloud-net;s=http://{address}/nobody/")  # meta-data 404: no user-data


def test_tree_layout_modes_and_readme(tmp_path: Path) -> None:
    out = tmp_path / "tree"
    docs = node_docs()
    write_http_tree(out, docs)
    assert sorted(p.name for p in out.iterdir()) == sorted([".kubeha-manifest.json", "README.txt", *docs])
    assert sorted(p.name for p in (out / "master-1").iterdir()) == ["config.ign", "meta-data", "user-data", "vendor-data"]
    for path in out.rglob("*"):
        want = 0o600 if path.name == ".kubeha-manifest.json" else 0o750 if path.is_dir() else 0o640
        assert path.stat().st_mode & 0o777 == want, path
    readme = (out / "README.txt").read_text()
    assert (
        "master-1 (master-1/):\n"
        "  cloud-init: ds=nocloud-net;s=http://SERVER/master-1/\n"
        "  ignition:   ignition.firstboot ignition.platform.id=metal ignition.config.url=http://SERVER/master-1/config.ign\n"
        "\n"
    ) in readme
    assert kernel_arguments("k", {"config.ign": b"{}"}) == {
        "ignition": ["ignition.firstboot", "ignition.platform.id=metal", "ignition.config.url=http://SERVER/k/config.ign"]}
    assert list(kernel_arguments("k", {"user-data": b""})) == ["cloud-init"]


def test_rewrite_replaces_kubehas_entries_only(tmp_path: Path) -> None:
    out = tmp_path / "tree"
    write_http_tree(out, node_docs())
    (out / "stale").write_text("not kubeha's")
    docs = {"master-1": node_docs()["master-1"]}
    with pytest.raises(OutputError):  # a file kubeha did not write: refused without force (issue 21 item 5)
        write_http_tree(out, docs, key_by="mac", macs={"master-1": "52:54:00:12:34:01"})
    write_http_tree(out, docs, key_by="mac", macs={"master-1": "52:54:00:12:34:01"}, force=True)
    # the name-keyed folders of the earlier run are kubeha's and go; the foreign file stays
    assert sorted(p.name for p in out.iterdir()) == [".kubeha-manifest.json", "52-54-00-12-34-01", "README.txt",
                                                     "stale"]
    assert (out / "stale").read_text() == "not kubeha's"
    assert "${net0/mac:hexhyp}" in (out / "README.txt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]  # no staging or backup left behind


@pytest.mark.parametrize(
    ("docs", "macs", "message"),
    [
        ({"master-1": {}, "master-2": {}}, {"master-1": "52:54:00:00:00:01", "master-2": "52-54-00-00-00-01"}, "used by another node"),
        ({"master-1": {}}, {}, "no valid MAC address for node 'master-1'"),
        ({"master-1": {}}, {"master-1": "52:54:00:00:00"}, "no valid MAC address"),
        ({"../etc": {}}, None, "cannot be a URL path segment"),
        ({"master-1": {"secrets.txt": b""}}, None, "unknown document name"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(tmp_path: Path, docs: dict[str, dict[str, bytes]],
                                                  macs: dict[str, str] | None, message: str) -> None:
    key_by = "mac" if macs is not None else "name"
    with pytest.raises(InvalidInput) as caught:
        write_http_tree(tmp_path / "tree", docs, key_by=key_by, macs=macs)
    assert any(message in str(p) for p in caught.value.problems), caught.value.problems
    assert list(tmp_path.iterdir()) == []


def test_server_stops(served: tuple[Path, str]) -> None:
    """Sanity: the fixture's server answers (and the fixture stops it by PID afterwards)."""
    root, address = served
    (root / "ping").write_text("pong")
    deadline = time.monotonic() + 5
    with urllib.request.urlopen(f"http://{address}/ping", timeout=5) as response:  # noqa: S310
        assert response.read() == b"pong"
    assert time.monotonic() < deadline


@pytest.fixture
def netns_server(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """A network namespace of our own with only loopback up, and the static server inside it on 127.0.0.1."""
    ip = shutil.which("ip") or pytest.fail("ip is missing: apt-get install -y iproute2")
    name = f"kubeha-ht-{uuid.uuid4().hex[:8]}"
    subprocess.run([ip, "netns", "add", name], check=True, timeout=30)
    proc: subprocess.Popen[str] | None = None
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True, timeout=30)
        root = tmp_path / "www"
        root.mkdir()
        # `ip netns exec` execs the command itself, so proc.pid is the server's PID.
        proc = subprocess.Popen([ip, "netns", "exec", name, sys.executable, "-u", "-m", "http.server", "--bind",
                                 "127.0.0.1", "--directory", str(root), "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        match = re.search(r"port (\d+)", proc.stdout.readline())
        assert match
        yield name, root, f"127.0.0.1:{match.group(1)}"
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        subprocess.run([ip, "netns", "delete", name], check=False, timeout=30)


@pytest.mark.slow
def test_cloud_init_in_a_chroot_seeds_itself_from_the_tree(tmp_path: Path, netns_server: tuple[str, Path, str]) -> None:
    """A real cloud-init run (guest harness) in the server's namespace fetches its documents over HTTP.

    The chroot cannot see the host's kernel command line, so the seed directory's meta-data carries the same
    ``seedfrom`` URL the ``ds=nocloud-net;s=`` argument would give: NoCloud (local) declines an http seed,
    and NoCloudNet, in the network stage, fetches meta-data, user-data and vendor-data from the tree.
    """
    import guest

    netns, root, address = netns_server
    docs = hand_made_docs()
    write_http_tree(root, docs)
    seed_meta = f"seedfrom: http://{address}/master-2/\n".encode()  # like the cmdline: only the URL
    run = guest.run_cloud_init(b"#cloud-config\n{}\n", seed_meta, workdir=tmp_path, netns=netns)
    assert run.ok, run.describe()
    assert "DataSourceNoCloudNet" in str(run.result), run.result
    assert f"http://{address}/master-2/" in str(run.result), run.result
    assert run.read("/var/lib/cloud/data/instance-id").strip() == "master-2"  # the served meta-data won
    assert run.read("/etc/keepalived/keepalived.conf") == "# master-2\n"
    assert run.mode("/etc/keepalived/keepalived.conf") == 0o600
