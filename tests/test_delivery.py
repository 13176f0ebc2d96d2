"""Honest targets and stable identity: VRRP refused where a VIP cannot float, vip_mode external, network hints,
the NoCloud instance-id that survives regeneration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kubeha_test import CASES, EXAMPLES, run, staged_inventory

EXTERNAL = CASES / "external" / "inventory.yaml"
KEEPALIVED_PATHS = ("/etc/keepalived/keepalived.conf", "/etc/keepalived/check_apiserver.sh",
                    "/etc/kubernetes/manifests/keepalived.yaml")


def _paths(user_data: Path) -> list[str]:
    return [f["path"] for f in yaml.safe_load(user_data.read_bytes())["write_files"]]


@pytest.mark.parametrize("target", ["aws", "azure", "gce"])
def test_vrrp_vip_is_refused_where_it_cannot_float(tmp_path: Path, target: str) -> None:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    code, out, err = run("gen", "userdata", str(inventory), "-o", str(tmp_path / "out"), "--target", target)
    assert code == 1
    assert f"error: vip_mode: --target {target}: a VRRP VIP does not move between instances here" in err
    assert "set vip_mode: external" in err
    assert out == "" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("target", ["aws", "azure", "gce"])
def test_external_mode_runs_haproxy_only_on_clouds(tmp_path: Path, target: str) -> None:
    inventory = tmp_path / EXTERNAL.name
    inventory.write_bytes(EXTERNAL.read_bytes())
    code, out, err = run("gen", "userdata", str(inventory), "-o", str(tmp_path / "out"), "--target", target,
                         "--json")
    assert code == 0, err
    result = json.loads(out)["result"]
    assert result["hints"] == [f"{target}: point the load balancer at 198.19.200.10:6444 to every master's :6444, "
                               "with an HTTP health check of GET /readyz on :6445 (200 only while haproxy runs and "
                               "reaches an apiserver)"]
    for node in ("cp-1", "cp-2", "cp-3"):
        paths = _paths(tmp_path / "out" / node / "user-data")
        assert "/etc/haproxy/haproxy.cfg" in paths and "/etc/kubernetes/manifests/haproxy.yaml" in paths
        assert not set(KEEPALIVED_PATHS) & set(paths)
        cfg = yaml.safe_load((tmp_path / "out" / node / "user-data").read_bytes())["write_files"][0]["content"]
        assert "bind *:6445" in cfg  # the cloud LB probes the monitor from outside the node
    assert not list(tmp_path.glob("*.vrrp-secret")), "no VRRP, so no secret is generated"


def test_vrrp_health_monitor_stays_local(tmp_path: Path) -> None:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    assert run("gen", "userdata", str(inventory), "-o", str(tmp_path / "out"))[0] == 0
    files = {f["path"]: f["content"] for f in yaml.safe_load((tmp_path / "out/master1/user-data").read_bytes())["write_files"]}
    assert "bind 127.0.0.1:6445" in files["/etc/haproxy/haproxy.cfg"]
    assert set(KEEPALIVED_PATHS) <= set(files)


def test_external_mode_accepts_a_load_balancer_in_another_subnet_but_not_a_node_address(tmp_path: Path) -> None:
    text = EXTERNAL.read_text().replace("vip: 198.19.200.10", "vip: 198.18.2.12")
    (tmp_path / "c.yaml").write_text(text)
    code, _, err = run("check", str(tmp_path / "c.yaml"))
    assert code == 1 and "198.18.2.12 is the address of node cp-2" in err
    (tmp_path / "d.yaml").write_text(EXTERNAL.read_text().replace("vip_mode: external", "vip_mode: floating"))
    code, _, err = run("check", str(tmp_path / "d.yaml"))
    assert code == 1 and "cluster.vip_mode: 'floating' is not one of vrrp, external" in err


def test_openstack_and_vsphere_hints_in_text_and_json(tmp_path: Path) -> None:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    code, out, _ = run("gen", "userdata", str(inventory), "-o", str(tmp_path / "o"), "--target", "openstack")
    assert code == 0
    assert ("note: openstack: add 198.18.0.10 to every master port's allowed_address_pairs (openstack port set "
            "--allowed-address ip-address=198.18.0.10 PORT) and allow IP protocol 112 (VRRP, here multicast to "
            "224.0.0.18; vrrp_mode: unicast avoids needing multicast) between the masters in their security group"
            ) in out
    code, out, _ = run("gen", "userdata", str(inventory), "-o", str(tmp_path / "v"), "--target", "vsphere", "--json")
    assert code == 0
    [hint] = json.loads(out)["result"]["hints"]
    assert hint.startswith("vsphere: set guestinfo.userdata to the user-data file's contents (already encoded) and "
                           "guestinfo.userdata.encoding to the encoding shown for each node (base64 or gzip+base64)")
    code, out, _ = run("gen", "userdata", str(inventory), "-o", str(tmp_path / "n"), "--json")
    assert json.loads(out)["result"]["hints"] == []


def test_instance_id_is_stable_per_cluster_and_node(tmp_path: Path) -> None:
    """Regenerating with other content (merged user-data) keeps the id; another cluster gets another id."""
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    base = tmp_path / "base.yaml"
    base.write_text("#cloud-config\nruncmd: [[touch, /root/x]]\n")
    assert run("gen", "userdata", str(inventory), "-o", str(tmp_path / "a"))[0] == 0
    assert run("gen", "userdata", str(inventory), "-o", str(tmp_path / "b"), "--merge", str(base))[0] == 0
    assert (tmp_path / "a/master1/user-data").read_bytes() != (tmp_path / "b/master1/user-data").read_bytes()
    ids = {yaml.safe_load((tmp_path / d / "master1/meta-data").read_text())["instance-id"] for d in "ab"}
    assert ids == {"kubeha-demo.master1"}
    (tmp_path / "src").mkdir()
    (tmp_path / "src/cluster.yaml").write_text(inventory.read_text().replace("name: demo", "name: demo2"))
    (tmp_path / "other").mkdir()
    other = staged_inventory(tmp_path / "src/cluster.yaml", tmp_path / "other")
    assert run("gen", "userdata", str(other), "-o", str(tmp_path / "c"))[0] == 0
    assert yaml.safe_load((tmp_path / "c/master1/meta-data").read_text())["instance-id"] == "kubeha-demo2.master1"


def test_check_with_target_prints_hints_and_refuses(tmp_path: Path) -> None:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    code, out, _ = run("check", str(inventory), "--target", "openstack")
    assert code == 0 and out.splitlines()[-1].startswith("note: openstack: add 198.18.0.10 to every master port's")
    code, out, _ = run("check", str(inventory), "--target", "openstack", "--json")
    assert code == 0 and json.loads(out)["result"]["hints"][0].startswith("openstack: add 198.18.0.10")
    code, out, err = run("check", str(inventory), "--target", "gce")
    assert code == 1 and "vip_mode: --target gce: a VRRP VIP does not move between instances here" in err
    code, out, _ = run("check", str(inventory), "--json")
    assert code == 0 and "hints" not in json.loads(out)["result"]
