"""ansible-core as the oracle for inventories: what Ansible resolves, and kubeha's view of the same file.

``ansible_native(path)`` asks ansible-core's InventoryManager/VariableManager (in-process) which hosts are in
the masters and workers groups, in which order, with which merged variables, and writes that as a kubeha
*native* YAML inventory; kubeha's derivation rules (priorities, states, names) then apply to both sides the
same way, so comparing ``view(kubeha on the Ansible file)`` with ``view(kubeha on the native file)`` checks
exactly the reading of the Ansible file. ansible-core is a dev dependency: kubeha never imports it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# Before ansible's config is read: only the ini and yaml plugins (what kubeha reads), failures raise.
os.environ.setdefault("ANSIBLE_INVENTORY_ENABLED", "ini,yaml")
os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
os.environ.setdefault("ANSIBLE_DEPRECATION_WARNINGS", "False")
os.environ.setdefault("ANSIBLE_LOCALHOST_WARNING", "False")
os.environ.setdefault("ANSIBLE_HOME", "/tmp/kubeha-test-ansible-home")

from ansible.errors import AnsibleError  # noqa: E402
from ansible.inventory.manager import InventoryManager  # noqa: E402
from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.vars.manager import VariableManager  # noqa: E402

from kubeha.errors import InvalidInput  # noqa: E402
from kubeha.generate import load_cluster  # noqa: E402
from kubeha.model import Cluster  # noqa: E402

FAMILIES = {"k8s-master": "k8s-node", "kube_control_plane": "kube_node"}
# Later spellings win (kubeha's rule: interface beats the seed's ip_interface, state beats lb).
HOST_SPELLINGS = {"name": "name", "lb": "state", "state": "state", "priority": "priority", "order": "order",
                  "ip_interface": "interface", "interface": "interface", "mac": "mac"}
CLUSTER_SPELLINGS = {"cluster_name": "name", "vip": "vip", "vip_prefix": "vip_prefix", "profile": "profile",
                     "vrrp_mode": "vrrp_mode", "virtual_router_id": "virtual_router_id", "weight": "weight",
                     "lb_port": "lb_port", "apiserver_port": "apiserver_port", "health_port": "health_port"}


def plain(value: Any) -> Any:
    """Ansible's tagged values as plain Python (yaml.safe_dump refuses subclasses)."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


class AnsibleRefused(Exception):
    """ansible-core could not parse the inventory."""


def resolve(path: Path) -> tuple[InventoryManager, VariableManager]:
    loader = DataLoader()
    try:
        inv = InventoryManager(loader=loader, sources=[str(path)])
    except AnsibleError as exc:
        raise AnsibleRefused(str(exc).splitlines()[0]) from None
    return inv, VariableManager(loader=loader, inventory=inv)


def ambiguous_order(inv: InventoryManager, group: str) -> bool:
    """Ansible walks grandchild groups through a set: with two child groups that have children of their own at
    one level, its host order is not defined (kubeha uses declaration order)."""
    level = [inv.groups[group]]
    while level:
        with_kids = [g for g in level if g.child_groups]
        if len(with_kids) > 1:
            return True
        level = [c for g in level for c in g.child_groups]
    return False


def _host_entry(name: str, hv: dict[str, Any]) -> dict[str, Any]:
    entry = {canon: plain(hv[key]) for key, canon in HOST_SPELLINGS.items() if key in hv}
    for key in ("address", "ip", "ansible_host"):  # the first one set is the address
        if key in hv:
            entry["address"] = plain(hv[key])
            break
    else:
        if _is_ip(name):
            entry["address"] = name
    if "name" not in entry and not _is_ip(name):
        entry["name"] = name
    return entry


def ansible_native(path: Path, masters_group: str | None = None) -> dict[str, Any]:
    """What Ansible resolves, as a kubeha native inventory document (raises AnsibleRefused)."""
    inv, vm = resolve(path)
    all_vars = inv.groups["all"].get_vars()
    mg = masters_group or all_vars.get("masters_group") or next(g for g in FAMILIES if g in inv.groups)
    wg = all_vars.get("workers_group") or FAMILIES.get(mg, "")
    masters = [h for h in inv.groups[mg].get_hosts()]
    master_names = {h.name for h in masters}
    workers = [h for h in inv.groups[wg].get_hosts() if h.name not in master_names] if wg in inv.groups else []
    doc: dict[str, Any] = {"cluster": {}, "masters": [], "workers": [], "_ambiguous": ambiguous_order(inv, mg)}
    for hosts, key in ((masters, "masters"), (workers, "workers")):
        for host in hosts:
            hv = vm.get_vars(host=host, include_hostvars=False)
            doc[key].append(_host_entry(str(host.name), hv))
            for spelled, canon in CLUSTER_SPELLINGS.items():
                if spelled in hv:
                    doc["cluster"].setdefault(canon, set()).add(json.dumps(plain(hv[spelled])))
    if not masters:
        all_vars = plain(inv.groups["all"].get_vars())
        doc["cluster"] = {c: {json.dumps(all_vars[s])} for s, c in CLUSTER_SPELLINGS.items() if s in all_vars}
    return doc


def native_text(doc: dict[str, Any]) -> str | None:
    """The native YAML for ``doc``; None when its hosts disagree on a cluster-wide value (kubeha refuses)."""
    cluster = {}
    for key, values in doc["cluster"].items():
        if len(values) > 1:
            return None
        cluster[key] = json.loads(next(iter(values)))
    body = {"cluster": cluster, "masters": doc["masters"]}
    if doc["workers"]:
        body["workers"] = doc["workers"]
    return yaml.safe_dump(body, sort_keys=False)


def view(cluster: Cluster) -> dict[str, Any]:
    """What the comparison looks at: per host name, address, interface (masters: priority, state), and the VIP."""
    return {
        "vip": str(cluster.vip),
        "masters": [(m.name, str(m.address), m.interface, m.priority, m.state) for m in cluster.masters],
        "workers": [(w.name, str(w.address), w.interface) for w in cluster.workers],
    }


def kubeha(path: Path, **kw: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """kubeha's view of ``path`` and its problems (as printed), or (None, problems) when it refuses."""
    try:
        loaded = load_cluster(path, **kw)
    except InvalidInput as exc:
        return None, [str(p) for p in exc.problems]
    return view(loaded.cluster), [str(p) for p in loaded.warnings]


LIST_SCRIPT = r"""
import contextlib, io, json, os, sys
from ansible.cli.inventory import InventoryCLI
MODES = {"list": ["--list"], "export": ["--list", "--export"], "yaml-export": ["--list", "--yaml", "--export"]}
out = {}
for arg in sys.argv[1:]:
    mode, _, path = arg.partition(":")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # one real ansible-inventory run per child: the CLI keeps global state
        os.close(r)
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                InventoryCLI(["ansible-inventory", "-i", path, *MODES[mode]]).run()
        except SystemExit:
            pass
        os.write(w, buf.getvalue().encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    out[arg] = b"".join(chunks).decode()
json.dump(out, sys.stdout)
"""


LIST_MODES = ("list", "export", "yaml-export")  # --list; --list --export; --list --yaml --export


def ansible_inventory_list(paths: list[Path]) -> dict[tuple[str, str], str]:
    """The real ``ansible-inventory -i P --list`` outputs, per (mode, path): one interpreter, a fork per run."""
    args = [f"{mode}:{p}" for p in paths for mode in LIST_MODES]
    proc = subprocess.run([sys.executable, "-c", LIST_SCRIPT, *args], capture_output=True, text=True,
                          env={**os.environ}, check=True, timeout=300)
    return {tuple(k.split(":", 1)): v for k, v in json.loads(proc.stdout).items()}  # type: ignore[misc]
