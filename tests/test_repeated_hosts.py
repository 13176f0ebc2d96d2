"""Issue 20 item 1: repeated host lines. Lines of one host that agree (or only add variables) merge as Ansible
merges them; lines that give one host two names, addresses, roles or priorities are an error naming both
lines, and nothing is written. A host in both the masters' and the workers' groups stays a master.

Each row: the inventory, the exit code of `gen userdata -o out`, the exact stderr lines, and the node folders
in out/ afterwards (out/ does not exist before).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeha_test import run

HEAD = "[all:vars]\ncluster_name=case\nvip=198.18.0.10/24\ninterface=ens3\n"

MERGED = ("Ansible merges both into one host, and this {new} would silently win; if these are two nodes, give each "
          "its own host name or address")

# (id, inventory, exit code, exact stderr lines ({f} = the inventory's path), node folders after)
ROWS: list[tuple[str, str, int, list[str], list[str]]] = [
    ("master line repeats a master's address with another name",
     "[k8s-master]\n198.18.0.11 name=cp1\n198.18.0.12 name=cp2\n198.18.0.12 name=cp3\n198.18.0.13 name=cp4\n" + HEAD,
     1, ["{f}:4: error: 198.18.0.12.name: 198.18.0.12 is also on line 3 with name='cp2': "
         + MERGED.format(new="name='cp3'"),
         "kubeha: 1 error(s), 0 warning(s); nothing written"], []),
    ("worker line repeats a master's address with another name",
     "[k8s-master]\n198.18.0.11 name=cp1\n198.18.0.12 name=cp2\n198.18.0.13 name=cp3\n"
     "[k8s-node]\n198.18.0.11 name=w1\n198.18.0.21 name=w2\n" + HEAD,
     1, ["{f}:6: error: 198.18.0.11.name: 198.18.0.11 is also on line 2 with name='cp1': "
         + MERGED.format(new="name='w1'"),
         "kubeha: 1 error(s), 0 warning(s); nothing written"], []),
    ("a host's second line in another group gives another priority",
     "[kube_control_plane]\ncp1 ansible_host=198.18.0.11 priority=200\ncp2 ansible_host=198.18.0.12\n"
     "cp3 ansible_host=198.18.0.13\n[fast]\ncp1 priority=100\n" + HEAD,
     1, ["{f}:6: error: cp1.priority: cp1 is also on line 2 with priority=200: "
         + MERGED.format(new="priority=100"),
         "kubeha: 1 error(s), 0 warning(s); nothing written"], []),
    ("the seed's role and lb disagree",
     "[k8s-master]\n198.18.0.11 name=cp1 role=master lb=MASTER\n198.18.0.12 name=cp2\n198.18.0.13 name=cp3\n"
     "[k8s-node]\n198.18.0.11 role=node lb=BACKUP\n" + HEAD,
     1, ["{f}:6: error: 198.18.0.11.lb: 198.18.0.11 is also on line 2 with lb='MASTER': "
         + MERGED.format(new="lb='BACKUP'"),
         "{f}:6: error: 198.18.0.11.role: 198.18.0.11 is also on line 2 with role='master': "
         + MERGED.format(new="role='node'"),
         "kubeha: 2 error(s), 0 warning(s); nothing written"], []),
    ("kubespray line copied with a new address but the old name",
     "[kube_control_plane]\nnode1 ansible_host=198.19.0.11 ip=198.18.0.11\nnode2 ansible_host=198.19.0.12 "
     "ip=198.18.0.12\nnode2 ansible_host=198.19.0.13 ip=198.18.0.13\nnode3 ansible_host=198.19.0.14 ip=198.18.0.14\n"
     + HEAD,
     1, ["{f}:4: error: node2.ansible_host: node2 is also on line 3 with ansible_host='198.19.0.12': "
         + MERGED.format(new="ansible_host='198.19.0.13'"),
         "{f}:4: error: node2.ip: node2 is also on line 3 with ip='198.18.0.12': "
         + MERGED.format(new="ip='198.18.0.13'"),
         "kubeha: 2 error(s), 0 warning(s); nothing written"], []),
    ("repeated lines that agree or only add variables merge",
     "[k8s-master]\n198.18.0.11 name=cp1 priority=200\n198.18.0.12 name=cp2\n198.18.0.13 name=cp3\n"
     "198.18.0.11 name=cp1 priority=200 mac=52:54:00:00:00:11\n" + HEAD,
     0, [], ["cp1", "cp2", "cp3"]),
    ("a host in the masters' and the workers' groups stays a master",
     "[k8s-master]\n198.18.0.11 name=cp1\n198.18.0.12 name=cp2\n198.18.0.13 name=cp3\n"
     "[k8s-node]\n198.18.0.11\n198.18.0.21 name=w1\n" + HEAD,
     0, [], ["cp1", "cp2", "cp3", "w1"]),
]


@pytest.mark.parametrize(("inventory", "code", "stderr", "after"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_repeated_hosts(tmp_path: Path, inventory: str, code: int, stderr: list[str], after: list[str]) -> None:
    src = tmp_path / "hosts.ini"
    src.write_text(inventory)
    out = tmp_path / "out"
    got, _, err = run("gen", "userdata", str(src), "-o", str(out))
    assert got == code, err
    assert err.splitlines() == [line.format(f=src) for line in stderr]
    if after:
        assert sorted(p.name for p in out.iterdir()) == [".kubeha-manifest.json", *after]
    else:
        assert not out.exists()


def test_the_master_keeps_its_own_document(tmp_path: Path) -> None:
    """The master listed among the workers gets a master's user-data, and no worker folder of its own."""
    src = tmp_path / "hosts.ini"
    src.write_text(ROWS[-1][1])
    code, _, _ = run("gen", "userdata", str(src), "-o", str(tmp_path / "out"))
    assert code == 0
    assert "/etc/haproxy/haproxy.cfg" in (tmp_path / "out" / "cp1" / "user-data").read_text()
    assert "/etc/haproxy/haproxy.cfg" not in (tmp_path / "out" / "w1" / "user-data").read_text()
