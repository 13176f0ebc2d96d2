"""The Kubernetes side built here (k8s/build.py): what the lock names is what was built, and every binary
tells its real version, so kubeadm's version and skew checks see a real release.

Asked of the binaries themselves and of kubeadm (its image list, its config validation), not of the lock.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cluster import kubeadm_config, versions
from cluster.node_tree import LOCK, k8s_bin_dir

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("kubeha_k8s_build", REPO / "k8s" / "build.py")
assert _spec is not None and _spec.loader is not None
k8s_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(k8s_build)


@pytest.fixture(scope="module")
def bins() -> Path:
    return k8s_bin_dir()


def out(*argv: str | Path) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


def test_the_cache_matches_the_lock(bins: Path) -> None:
    assert subprocess.run([sys.executable, REPO / "k8s" / "build.py", "check"], check=False).returncode == 0
    lock = json.loads(LOCK.read_text())
    assert sorted(lock["sha256"]) == sorted(p.name for p in bins.iterdir() if not p.name.startswith("."))
    assert all(re.fullmatch(r"[0-9a-f]{64}", s) for s in lock["sha256"].values())


def test_a_tampered_binary_fails_the_check(bins: Path, tmp_path: Path) -> None:
    lock = json.loads(LOCK.read_text())
    lock["sha256"]["kubeadm"] = "0" * 64
    with pytest.raises(SystemExit, match="kubeadm: built [0-9a-f]{64} but the lock says 0{64}"):
        k8s_build.compare(lock, {b: k8s_build.sha256_file(bins / b) for b in lock["sha256"]})


def test_every_binary_reports_the_locked_version(bins: Path) -> None:
    k8s = versions.KUBERNETES_VERSION
    assert out(bins / "kubeadm", "version", "-o", "short").strip() == k8s
    assert out(bins / "kubelet", "--version").strip() == f"Kubernetes {k8s}"
    client = json.loads(out(bins / "kubectl", "version", "--client", "-o", "json"))["clientVersion"]
    assert (client["gitVersion"], client["major"], client["minor"]) == (k8s, "1", k8s.split(".")[1])
    for binary in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        assert out(bins / binary, "--version").strip() == f"Kubernetes {k8s}", binary
    components = versions.COMPONENTS
    assert f"etcd Version: {components['etcd']['version'].lstrip('v')}" in out(bins / "etcd", "--version")
    assert f"CoreDNS-{components['coredns']['version'].lstrip('v')}" in out(bins / "coredns", "-version")
    assert components["containerd"]["version"] in out(bins / "containerd", "--version")
    assert components["cri-tools"]["version"] in out(bins / "crictl", "--version")


def test_every_binary_is_static(bins: Path) -> None:
    for binary in sorted(p for p in bins.iterdir() if not p.name.startswith(".")):
        info = out("file", "-b", binary)
        assert "statically linked" in info, (binary.name, info)


def test_kubeadm_names_exactly_the_lab_images(bins: Path, tmp_path: Path) -> None:
    config = tmp_path / "init.yaml"
    config.write_text(kubeadm_config.init_config("m1", "198.18.77.11", "198.18.77.10:6444", "abcdef.0123456789abcdef",
                                                "0" * 64))
    listed = out(bins / "kubeadm", "config", "images", "list", "--config", config).split()
    assert listed == versions.all_images()


def test_kubeadm_validates_the_lab_configs(bins: Path, tmp_path: Path) -> None:
    init, join = tmp_path / "init.yaml", tmp_path / "join.yaml"
    init.write_text(kubeadm_config.init_config("m1", "198.18.77.11", "198.18.77.10:6444", "abcdef.0123456789abcdef",
                                              "0" * 64))
    join.write_text(kubeadm_config.join_config("m2", "198.18.77.12", "198.18.77.10:6444", "abcdef.0123456789abcdef",
                                              "sha256:" + "0" * 64, "0" * 64))
    for config in (init, join):
        assert "ok" in out(bins / "kubeadm", "config", "validate", "--config", config).lower()


def test_the_consumer_modules_replace_what_the_release_replaces() -> None:
    """Each committed consumer go.mod carries one replace per local-path replace of the release's own go.mod."""
    lock = json.loads(LOCK.read_text())
    for name, component in lock["components"].items():
        if not component["module"]:
            continue
        release = k8s_build.module_file(component["module"], component["version"], "mod").read_text()
        want = {f"{m} => {m} {k8s_build.staged_version(component, m)}" for m in k8s_build.local_replaces(release)}
        gomod = (REPO / "k8s" / "modules" / name / "go.mod").read_text()
        block = re.search(r"^replace \((.*?)^\)", gomod, re.S | re.M)
        have = {line.strip() for line in block.group(1).splitlines() if line.strip()} if block else set()
        assert have == want, name
        godebug = [ln for ln in release.splitlines() if ln.startswith("godebug")]
        assert all(ln in gomod.splitlines() for ln in godebug), name
