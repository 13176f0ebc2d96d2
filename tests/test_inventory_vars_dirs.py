"""Issue 20 item 2: group_vars/ and host_vars/ read as ansible-core reads them.

The oracle: generated inventories (INI and YAML) with group_vars/ and host_vars/ trees in every layout
(vars_tree_strategy.py) must resolve in kubeha as ansible-core resolves them, or be refused with FILE:LINE.
Then a table of what kubeha refuses or warns about, by exit code and exact message, nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from inventory_strategy import Model, render_ini, render_yaml
from kubeha_test import EXAMPLES, run
from test_inventory_oracle import ORACLE, _compare
from vars_tree_strategy import trees


@settings(ORACLE, max_examples=150)
@given(trees())
def test_ini_with_vars_dirs_reads_as_ansible_does(tree: tuple[Model, dict[str, str]]) -> None:
    model, files = tree
    _compare(render_ini(model, []), ".ini", files)


@settings(ORACLE, max_examples=150)
@given(trees())
def test_yaml_with_vars_dirs_reads_as_ansible_does(tree: tuple[Model, dict[str, str]]) -> None:
    model, files = tree
    _compare(render_yaml(model), ".yaml", files)


HOSTS = "[kube_control_plane]\nnode1 ansible_host=198.18.0.11\nnode2 ansible_host=198.18.0.12\n" \
        "node3 ansible_host=198.18.0.13\n[kube_node]\nnode4 ansible_host=198.18.0.14\n" \
        "[k8s_cluster:children]\nkube_control_plane\nkube_node\n"
ALL = "cluster_name: sample\nvip: 198.18.0.10/24\ninterface: ens192\n"

# (id, files beside hosts.ini, exit code of `gen userdata -o out`, exact stderr lines)
ROWS: list[tuple[str, dict[str, str], int, list[str]]] = [
    ("kubespray layout: group_vars/all/*.yml, k8s_cluster, host_vars", {
        "group_vars/all/all.yml": ALL + "upstream_dns_servers: [8.8.8.8]\n",
        "group_vars/k8s_cluster/k8s-cluster.yml": "kube_network_plugin: calico\nkube_version: v1.30.2\n",
        "host_vars/node2.yml": "priority: 200\n"}, 0, []),
    ("a vault-encrypted file", {
        "group_vars/all/all.yml": ALL,
        "group_vars/all/vault.yml": "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n"}, 1, [
        "group_vars/all/vault.yml:1: error: all: encrypted with Ansible Vault: kubeha never decrypts; keep kubeha's "
        "keys in a plain file beside it (Ansible reads both), or give kubeha `ansible-inventory -i INVENTORY "
        "--list` output",
        "kubeha: 1 error(s), 0 warning(s); nothing written"]),
    ("a !vault value of a key kubeha reads", {
        "group_vars/all.yml": ALL.replace("vip: 198.18.0.10/24\n", "vip: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n"
                                          "  6162\n")}, 1, [
        "group_vars/all.yml:2: error: all.vip: encrypted with Ansible Vault (!vault): kubeha never decrypts; give "
        "this value in plain text",
        "hosts.ini: error: [all:vars].vip: missing: the virtual IP the masters share",
        "kubeha: 2 error(s), 0 warning(s); nothing written"]),
    ("a !vault value kubeha does not read is no concern", {
        "group_vars/all.yml": ALL + "registry_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n"}, 0, []),
    ("YAML syntax error, with its line", {
        "group_vars/all.yml": ALL + "dns: [8.8.8.8\n"}, 1, [
        "group_vars/all.yml:5: error: all: YAML syntax: did not find expected ',' or ']'",
        "hosts.ini: warning: [all:vars].interface: not set: assuming eth0, but cloud and hypervisor images often "
        "name the NIC ens3, ens18 or ens192; set interface (for the cluster or per host)",
        "hosts.ini: warning: [all:vars].name: the cluster is named 'hosts' after the inventory's file name, as "
        "every inventory called that would be (the same VRRP router id on a shared segment, the same output "
        "place): set cluster_name",
        "hosts.ini: error: [all:vars].vip: missing: the virtual IP the masters share",
        "kubeha: 2 error(s), 2 warning(s); nothing written"]),
    ("a list, not a mapping", {
        "group_vars/all.yml": ALL, "host_vars/node1.yml": "- priority: 200\n"}, 1, [
        "host_vars/node1.yml:1: error: node1: must be a mapping of variables (Ansible refuses anything else)",
        "kubeha: 1 error(s), 0 warning(s); nothing written"]),
    ("files no group or host reads: warned, ignored", {
        "group_vars/all.yml": ALL, "group_vars/kube_contol_plane.yml": "priority: 9\n",
        "host_vars/node9.yml": "priority: 1\n"}, 0, [
        "group_vars/kube_contol_plane.yml: warning: group_vars: no group 'kube_contol_plane' in the inventory: "
        "Ansible ignores this; did you mean 'kube_control_plane'?",
        "host_vars/node9.yml: warning: host_vars: no host 'node9' in the inventory: Ansible ignores this; did you "
        "mean 'node4'?",
        "kubeha: 0 error(s), 2 warning(s)"]),
    ("a misspelt key in a group_vars file", {
        "group_vars/all.yml": ALL + "interfce: ens3\n"}, 0, [
        "group_vars/all.yml:4: warning: all.interfce: unknown variable; did you mean 'interface'?",
        "kubeha: 0 error(s), 1 warning(s)"]),
]


@pytest.mark.parametrize(("files", "code", "stderr"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_vars_dirs_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], code: int,
                         stderr: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hosts.ini").write_text(HOSTS)
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    got, _, err = run("gen", "userdata", "hosts.ini", "-o", "out")
    assert (got, err.splitlines()) == (code, stderr)
    assert (tmp_path / "out").exists() == (code == 0)


def test_precedence_as_ansible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """group_vars/all beats a group's inline vars; group_vars/<group> beats all; host_vars beat the host's line."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hosts.ini").write_text(HOSTS.replace("node1 ansible_host=198.18.0.11",
                                                      "node1 ansible_host=198.18.0.11 priority=100")
                                        + "[kube_control_plane:vars]\ninterface=eth9\n")
    for rel, text in {"group_vars/all.yml": ALL, "host_vars/node1": "priority: 120\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    plan = [
        "  node1                198.18.0.11      MASTER  priority 120  ens192",
        "  node2                198.18.0.12      BACKUP  priority 110  ens192",
        "  node3                198.18.0.13      BACKUP  priority 100  ens192"]
    code, stdout, err = run("check", "hosts.ini")
    assert (code, err, stdout.splitlines()[2:5]) == (0, "", plan)
    (tmp_path / "group_vars" / "kube_control_plane.yaml").write_text("interface: ens7\n")
    code, stdout, err = run("check", "hosts.ini")
    assert (code, err, stdout.splitlines()[2:5]) == (0, "", [line.replace("ens192", "ens7") for line in plan])


def test_the_kubespray_example_reads_the_same_with_its_vars_in_group_vars(tmp_path: Path) -> None:
    """examples/kubespray-inventory.ini's [all:vars] moved to group_vars/all.yml: the same plan."""
    text = (EXAMPLES / "kubespray-inventory.ini").read_text()
    head, _, tail = text.partition("[all:vars]\n")
    (tmp_path / "hosts.ini").write_text(head)
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(tail.replace("=", ": "))
    want = run("check", str(EXAMPLES / "kubespray-inventory.ini"))
    got = run("check", str(tmp_path / "hosts.ini"))
    assert got[0] == want[0] == 0 and got[1] == want[1]
