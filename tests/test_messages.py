"""Issue 20 item 6: the messages that misled, each by exit code, exact stderr, and the work directory unchanged.

Every row runs the real command line in-process in a fresh work directory and compares every stderr line;
a snapshot (path, size, mtime) of the directory before and after shows that nothing was written.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeha.bundle import PackInput, pack_bundle
from kubeha_test import EXAMPLES, run
from test_bundle import CLUSTER_ID, DOCUMENTS, make_docker_archive
from test_cli import COMMANDS
from test_cli_table import snapshot
from test_signing import Keys, gpg_keys, make_key  # noqa: F401 - the session's throwaway keys

MASTERS = "[k8s-master]\n198.18.0.11 name=cp1\n198.18.0.12 name=cp2\n198.18.0.13 name=cp3\n"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _runs(work: Path, args: list[str], code: int, stderr: list[str], stdout_has: str = "") -> None:
    before = snapshot(work)
    got, out, err = run(*args)
    assert (got, err.splitlines()) == (code, stderr), out
    assert stdout_has in out
    assert snapshot(work) == before


# --- inventory messages: (id, file name, text, exact stderr lines of `kubeha check`, exit code)
INVENTORY_ROWS = [
    ("missing vip and interface point at [all:vars], not at a comment on line 1", "edge.ini",
     "# cluster one\n# racks a and b\n" + MASTERS + "[all:vars]\ncluster_name=one\n",
     ["edge.ini:7: warning: [all:vars].interface: not set: assuming eth0, but cloud and hypervisor images often "
      "name the NIC ens3, ens18 or ens192; set interface (for the cluster or per host)",
      "edge.ini:7: error: [all:vars].vip: missing: the virtual IP the masters share",
      "kubeha: 1 error(s), 1 warning(s)"], 1),
    ("no [all:vars] at all: the file, without a line", "edge.ini", "# cluster one\n" + MASTERS,
     ["edge.ini: warning: [all:vars].interface: not set: assuming eth0, but cloud and hypervisor images often "
      "name the NIC ens3, ens18 or ens192; set interface (for the cluster or per host)",
      "edge.ini: error: [all:vars].vip: missing: the virtual IP the masters share",
      "kubeha: 1 error(s), 1 warning(s)"], 1),
    ("native YAML: the cluster: line", "c.yaml",
     "# demo\ncluster:\n  name: demo\nmasters:\n  - {name: m1, address: 198.18.0.11}\n"
     "  - {name: m2, address: 198.18.0.12}\n  - {name: m3, address: 198.18.0.13}\n",
     ["c.yaml:2: warning: cluster.interface: not set: assuming eth0, but cloud and hypervisor images often "
      "name the NIC ens3, ens18 or ens192; set interface (for the cluster or per host)",
      "c.yaml:2: error: cluster.vip: missing: the virtual IP the masters share",
      "kubeha: 1 error(s), 1 warning(s)"], 1),
    ("a VIP outside the masters' subnet is one error on the vip line", "edge.ini",
     MASTERS + "198.18.1.14 name=cp4\n198.18.1.15 name=cp5\n[all:vars]\nvip=198.18.1.10/24\ninterface=ens3\n",
     ["edge.ini:8: error: [all:vars].vip: 198.18.1.10/24 must be in the masters' subnet, but these masters are "
      "outside 198.18.1.0/24: cp1 (198.18.0.11, line 2), cp2 (198.18.0.12, line 3), cp3 (198.18.0.13, line 4) "
      "(set vip_prefix if the subnet is wider)",
      "kubeha: 1 error(s), 0 warning(s)"], 1),
    ("kubespray's old group names are read, with a warning naming the new ones", "edge.ini",
     MASTERS.replace("k8s-master", "kube-master") + "[kube-node]\n198.18.0.21 name=w1\n[k8s-cluster:children]\n"
     "kube-master\nkube-node\n[all:vars]\nvip=198.18.0.10/24\ninterface=ens3\n",
     ["edge.ini:1: warning: [kube-master]: kubespray's old name for kube_control_plane: read as that; rename it "
      "to kube_control_plane, kubespray's current name",
      "edge.ini:5: warning: [kube-node]: kubespray's old name for kube_node: read as that; rename it to kube_node, "
      "kubespray's current name",
      "kubeha: 0 error(s), 2 warning(s)"], 0),
    ("a misspelt masters group: the hint names the group and what it should be, no Python None", "edge.ini",
     MASTERS.replace("k8s-master", "k8s-mastr") + "[k8s-nodes]\n198.18.0.21\n[all:vars]\nvip=198.18.0.10/24\n",
     ["edge.ini:1: error: inventory: no masters group: kubeha reads [k8s-master] (the seed's) or "
      "[kube_control_plane] (kubespray's), or set masters_group; is [k8s-mastr] a misspelt 'k8s-master'? Rename "
      "it, or pass --masters-group k8s-mastr",
      "kubeha: 1 error(s), 0 warning(s)"], 1),
    ("warnings alone end with the count too", "c.yaml",
     "cluster:\n  vip: 198.18.0.10/24\n  interface: ens3\nmasters:\n  - {name: m1, address: 198.18.0.11}\n"
     "  - {name: m2, address: 198.18.0.12}\n",
     ["c.yaml:5: warning: masters: two masters: etcd needs a majority, so losing either one stops the control "
      "plane; use three",
      "kubeha: 0 error(s), 1 warning(s)"], 0),
]


@pytest.mark.parametrize(("name", "text", "stderr", "code"), [r[1:] for r in INVENTORY_ROWS],
                         ids=[r[0] for r in INVENTORY_ROWS])
def test_inventory_messages(work: Path, name: str, text: str, stderr: list[str], code: int) -> None:
    (work / name).write_text(text)
    _runs(work, ["check", name], code, stderr)
    out = work / "out"
    got, _, err = run("gen", "userdata", name, "-o", str(out))
    assert got == code
    assert err.splitlines()[-1] == stderr[-1] + ("; nothing written" if code else "")
    assert out.exists() == (code == 0)


@pytest.mark.parametrize(("inventory", "line"), [
    (EXAMPLES / "cluster.yaml", "profile fast: VRRPv3 multicast, advert 0.1 s, check weight 0 (a failed check "
                                "faults the node)"),
    (Path(__file__).parent / "cases" / "classic" / "inventory.ini",
     "profile classic: VRRPv2 multicast, advert 1 s, check weight -25"),
])
def test_check_prints_the_weight_keepalived_uses(work: Path, inventory: Path, line: str) -> None:
    """fast faults the node (keepalived.conf: weight 0); classic lowers the priority by the weight."""
    shutil.copy(inventory, work / inventory.name)
    before = snapshot(work)
    code, stdout, _ = run("check", inventory.name)
    assert code == 0 and stdout.splitlines()[1] == line
    assert snapshot(work) == before


# --- bundle messages


@pytest.fixture
def bundle(work: Path, gpg_keys: Keys) -> Path:  # noqa: F811
    tar = work / "images.tar"
    make_docker_archive(tar)
    result = pack_bundle(work / "b", DOCUMENTS, PackInput("lab", tar, name="lab", cluster_id=CLUSTER_ID, serial=1),
                         gpg_keys.trusted.signer())
    return result.tarball


def test_verify_min_serial_says_the_signature_is_good(work: Path, bundle: Path, gpg_keys: Keys) -> None:  # noqa: F811
    _runs(work, ["bundle", "verify", "b/lab.tar", "--keyring", str(gpg_keys.trusted.public), "--min-serial", "5"], 4,
          ["kubeha: error: bundle serial 1 is older than the lowest accepted 5",
           f"kubeha: FAILED b/lab.tar: good signature by {gpg_keys.trusted.fingerprint}, but not accepted"])


def test_verify_bad_signature_still_says_so(work: Path, bundle: Path, gpg_keys: Keys) -> None:  # noqa: F811
    before = snapshot(work)
    code, _, err = run("bundle", "verify", "b/lab.tar", "--keyring", str(gpg_keys.other.public))
    assert code == 4
    assert err.splitlines()[-1] == "kubeha: FAILED b/lab.tar: signature verification failed"
    assert snapshot(work) == before


@pytest.fixture
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A passphrase-protected key in its own home, used by no other test (so no agent has it cached)."""
    key = make_key(tmp_path_factory.mktemp("protected") / "home", "locked <locked@kubeha.invalid>", "s3cret pw")
    yield key.home, key.fingerprint
    subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "all"], check=False, capture_output=True)


def test_protected_key_without_passphrase(work: Path, protected: tuple[Path, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    home, fpr = protected
    shutil.copy(EXAMPLES / "cluster.yaml", work / "cluster.yaml")
    make_docker_archive(work / "images.tar")
    argv = ["bundle", "pack", "cluster.yaml", "--images", "images.tar", "--sign-key", fpr, "--gnupghome", str(home),
            "-o", "b"]
    monkeypatch.delenv("KUBEHA_SIGN_PASSPHRASE", raising=False)
    _runs(work, argv, 1, [f"kubeha: error: signing SHA256SUMS with '{fpr}' failed: the key is protected by a "
                          "passphrase: set $KUBEHA_SIGN_PASSPHRASE (kubeha never prompts for it); nothing written"])
    monkeypatch.setenv("KUBEHA_SIGN_PASSPHRASE", "wrong")
    _runs(work, argv, 1, [f"kubeha: error: signing SHA256SUMS with '{fpr}' failed: $KUBEHA_SIGN_PASSPHRASE is not "
                          "the key's passphrase; nothing written"])


# --- Docker


@pytest.mark.parametrize(("host", "why"), [("unix:///nonexistent/docker.sock", "no such file or directory"),
                                           ("tcp://127.0.0.1:1", "connection refused")])
def test_unreachable_docker(work: Path, host: str, why: str) -> None:
    """One line: the address tried, the system's reason, what to do; no Python exception, no same-socket hint."""
    _runs(work, ["image", "save", "-o", "x.tar", "--docker-host", host], 1,
          [f"kubeha: error: cannot reach a Docker daemon at {host}: {why}; start dockerd, or give the address it "
           "listens on with --docker-host or $DOCKER_HOST; nothing written"])


# --- help

PYTHON_TYPE = re.compile(r"<(?:str|int|float|bool|path|file|dir|list\[[^>]*\]|[a-z]+ range)>|\{[A-Za-z_]+\}")


@pytest.mark.parametrize("cmd", [(), *COMMANDS], ids=lambda c: " ".join(c) or "kubeha")
def test_help_shows_no_python_type(cmd: tuple[str, ...]) -> None:
    code, stdout, _ = run(*cmd, "--help")
    assert code == 0 and "Usage: kubeha" in stdout
    assert PYTHON_TYPE.findall(stdout) == []


def test_help_metavars() -> None:
    """What is shown instead: the argument's name, and FILE, DIR, PATH, TEXT, N by type."""
    _, stdout, _ = run("gen", "userdata", "--help")
    assert stdout.startswith("Usage: kubeha gen userdata [OPTIONS] INVENTORY\n")
    assert re.search(r"--merge PATH +Your own user-data", stdout)
    _, stdout, _ = run("image", "build", "--help")
    assert stdout.startswith("Usage: kubeha image build [OPTIONS] [NAMES]...\n")
    _, stdout, _ = run("bundle", "verify", "--help")
    assert re.search(r"--keyring FILE +Trusted", stdout) and re.search(r"--min-serial N +Refuse", stdout)
