"""Every generated document is accepted by the program that will consume it.

cloud-init (Debian 12's 22.4.2 and the stricter 25.x from Debian 13) validates each user-data; keepalived
``-t`` and haproxy ``-c`` check each config; kubernetes-validate checks each static pod against the
Kubernetes OpenAPI schema; podman ``kube play`` is handed each pod as a real pod-YAML consumer would be.
Each check is also shown to fail on a broken input, so a pass means something.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from guest import cloud_init_schema

from kubeha_test import GOLDEN_CASES, VRRP_CASES, Case, run, staged_inventory, unpack

pytestmark = pytest.mark.e2e
K8S_VERSION = "1.32"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y {package} (scripts/install-deps.sh does)")
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every golden case generated once: case name -> output dir."""
    out = {}
    for case in GOLDEN_CASES:
        tmp = tmp_path_factory.mktemp(case.name)
        inv = staged_inventory(case.inventory, tmp)
        code, _, err = run("gen", "userdata", str(inv), "-o", str(tmp / "out"))
        assert code == 0, err
        out[case.name] = tmp / "out"
    return out


def _user_datas(generated: dict[str, Path]) -> list[Path]:
    return sorted(p for d in generated.values() for p in d.glob("*/user-data"))


def _masters(generated: dict[str, Path], case: Case) -> list[Path]:
    return sorted(p for p in generated[case.name].glob("*/user-data")
                  if b"/etc/keepalived/keepalived.conf" in p.read_bytes())


@pytest.mark.parametrize("newer", [False, True], ids=["cloud-init-22.4", "cloud-init-25"])
def test_user_data_passes_cloud_init_schema(generated: dict[str, Path], newer: bool) -> None:
    paths = _user_datas(generated)
    assert len(paths) == 25  # 4 + 5 + 6 + 3 nodes, and 4 + 3 with vip_mode external
    for path in paths:
        rc, output = cloud_init_schema(path, newer)
        assert rc == 0, f"{path}:\n{output}"
        assert "Valid" in output


@pytest.mark.parametrize("newer", [False, True], ids=["cloud-init-22.4", "cloud-init-25"])
def test_cloud_init_schema_rejects_a_broken_user_data(generated: dict[str, Path], tmp_path: Path,
                                                      newer: bool) -> None:
    text = next(iter(_user_datas(generated))).read_text().replace("permissions: '0644'", "permissions: 420", 1)
    bad = tmp_path / "user-data"
    bad.write_text(text)
    rc, output = cloud_init_schema(bad, newer)
    assert rc != 0, output
    assert "permissions" in output


def _keepalived_test(root: Path) -> subprocess.CompletedProcess[str]:
    """`keepalived -t` with the rendered /etc/keepalived bind-mounted at its real path (a private mount ns),
    because enable_script_security checks the script where the config names it; in a private network
    namespace holding links named like the config's interfaces, because -t checks they exist."""
    keepalived = _tool("keepalived", "keepalived")
    conf = (root / "etc/keepalived/keepalived.conf").read_text()
    ifaces = sorted({line.split()[1] for line in conf.splitlines() if line.strip().startswith("interface ")})
    # (veth, not dummy: this kernel has no dummy driver)
    links = "".join(f"ip link add {name} type veth peer name khpeer{i} && " for i, name in enumerate(ifaces))
    # /run/kubeha: the prober's verdict directory, a hostPath the pod mounts (keepalived resolves the
    # track_file's directory when it reads the config; without it the track file is ignored, or with 2.3 an error)
    script = (f"{links}mount --bind {root}/etc/keepalived /etc/keepalived && "
              "mount -t tmpfs kh-run /run && mkdir -p /run/kubeha && "
              f"exec {keepalived} -t -l -f /etc/keepalived/keepalived.conf")
    return subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("case", VRRP_CASES, ids=lambda c: c.name)
def test_keepalived_accepts_config(generated: dict[str, Path], case: Case, tmp_path: Path) -> None:
    Path("/etc/keepalived").mkdir(exist_ok=True)
    masters = _masters(generated, case)
    assert masters
    for user_data in masters:
        root = tmp_path / user_data.parent.name
        unpack(user_data.read_bytes(), root)
        result = _keepalived_test(root)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SECURITY VIOLATION" not in result.stdout + result.stderr
        assert "Disabling track script" not in result.stdout + result.stderr
        assert "ignoring" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_keepalived_check_can_fail(generated: dict[str, Path], tmp_path: Path) -> None:
    Path("/etc/keepalived").mkdir(exist_ok=True)
    files = unpack(_masters(generated, GOLDEN_CASES[0])[0].read_bytes(), tmp_path)
    conf = files["/etc/keepalived/keepalived.conf"]
    conf.write_text(conf.read_text().replace("priority 100", "priority 300"))
    result = _keepalived_test(tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda c: c.name)
def test_haproxy_accepts_config(generated: dict[str, Path], case: Case, tmp_path: Path) -> None:
    haproxy = _tool("haproxy", "haproxy")
    for user_data in _masters(generated, case):
        files = unpack(user_data.read_bytes(), tmp_path / user_data.parent.name)
        cfg = files["/etc/haproxy/haproxy.cfg"]
        result = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr
        cfg.write_text(cfg.read_text().replace("balance roundrobin", "balance nonsense"))
        bad = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60,
                             check=False)
        assert bad.returncode != 0


def _pods(generated: dict[str, Path]) -> list[tuple[str, dict[str, object]]]:
    pods = []
    for user_data in _user_datas(generated):
        for entry in yaml.safe_load(user_data.read_bytes())["write_files"]:
            if entry["path"].endswith((".yaml",)) and "/manifests/" in entry["path"]:
                pods.append((f"{user_data.parent.name}:{entry['path']}", yaml.safe_load(entry["content"])))
    return pods


def test_static_pods_pass_kubernetes_schema(generated: dict[str, Path]) -> None:
    pods = _pods(generated)
    assert len(pods) == 2 * 13 + 3 + 2  # 3 + 3 + 5 + 2 masters with both pods, 3 + 2 with haproxy only
    for where, pod in pods:
        try:
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc}")
    broken = dict(pods[0][1])
    broken["spec"] = {"hostNetwork": "yes", "containers": []}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_static_pods_never_pull_and_mount_only_rendered_files(generated: dict[str, Path]) -> None:
    for where, pod in _pods(generated):
        spec = pod["spec"]
        assert isinstance(spec, dict)
        for container in spec["containers"]:
            assert container["imagePullPolicy"] in ("IfNotPresent", "Never"), where
            assert "." in container["image"].split("/")[0], f"{where}: image ref is not fully qualified"
        mounted = {m["mountPath"] for c in spec["containers"] for m in c["volumeMounts"]}
        host = {v["hostPath"]["path"] for v in spec["volumes"]}
        assert mounted == host, where
        # rendered files are mounted as files; the only directory is the prober's verdict dir under /run
        dirs = {v["hostPath"]["path"] for v in spec["volumes"] if v["hostPath"]["type"] != "File"}
        assert dirs <= {"/run/kubeha"}, where
        assert all(v["hostPath"]["type"] == "DirectoryOrCreate" for v in spec["volumes"]
                   if v["hostPath"]["path"] in dirs), where


def _network_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """Debian 13's cloud-init validates network-config (22.4's `schema` cannot)."""
    from guest import DEBIAN_PYTHON, newer_cloud_init

    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
           "PYTHONPATH": str(newer_cloud_init() / "usr/lib/python3/dist-packages")}
    return subprocess.run([DEBIAN_PYTHON, "-m", "cloudinit.cmd.main", "schema", "--schema-type", "network-config",
                           "--config-file", str(path)], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def test_network_config_passes_schema_and_renders(generated: dict[str, Path], tmp_path: Path) -> None:
    """cloud-init 25 validates each network-config; 22.4's net-convert renders it for systemd-networkd."""
    paths = sorted(generated["five-masters"].glob("*/network-config"))
    assert len(paths) == 6
    cloud_init = _tool("cloud-init", "cloud-init")
    for path in paths:
        result = _network_schema(path)
        assert result.returncode == 0, result.stdout + result.stderr
        out = tmp_path / path.parent.name
        conv = subprocess.run([cloud_init, "devel", "net-convert", "-p", str(path), "-k", "yaml", "-D", "debian",
                               "-O", "networkd", "-d", str(out)], capture_output=True, text=True, timeout=120,
                              check=False)
        assert conv.returncode == 0, conv.stdout + conv.stderr
        unit = next(out.rglob("*.network")).read_text()
        node = yaml.safe_load(path.read_text())["ethernets"]
        iface, eth = next(iter(node.items()))
        assert f"Name={iface}" in unit and f"Address={eth['addresses'][0]}" in unit
        assert "Gateway=198.19.4.1" in unit and "DNS=198.19.4.2 198.19.4.3" in unit
    broken = tmp_path / "broken"
    broken.write_text(paths[0].read_text().replace("addresses:", "adresses:"))  # nameservers.adresses: unknown
    assert _network_schema(broken).returncode != 0
