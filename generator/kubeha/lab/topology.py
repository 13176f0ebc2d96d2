"""The lab's shape, read from the generated files: masters, VIP, ports, timing, and the static pods' containers."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeha.lab.base import HAPROXY_CFG, KEEPALIVED_CONF, LAB_NET, POD_MANIFESTS, LabError, NodeFiles


@dataclass(frozen=True)
class Mount:
    """One hostPath volume mount of a static pod container."""

    host_path: str
    container_path: str
    read_only: bool


@dataclass(frozen=True)
class ContainerSpec:
    """What the lab needs from one container of a generated static pod manifest."""

    pod: str
    name: str
    image: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    mounts: tuple[Mount, ...]
    cap_add: tuple[str, ...]
    privileged: bool


@dataclass(frozen=True)
class Master:
    """A master node of the lab: its address and the files the user-data writes on it."""

    name: str
    address: ipaddress.IPv4Address
    files: Mapping[str, bytes]  # absolute destination path -> content
    modes: Mapping[str, int]
    interface: str = "eth0"  # the NIC keepalived.conf names: the veth inside the node's namespace

    def find(self, basename: str) -> tuple[str, bytes]:
        """Return (path, content) of the file with this basename; LabError when there is none."""
        return _find(self.name, self.files, basename)


def _find(node: str, files: Mapping[str, bytes], basename: str) -> tuple[str, bytes]:
    """The first (by path) of a node's files with this basename; LabError when there is none."""
    hits = sorted(p for p in files if p.rsplit("/", 1)[-1] == basename)
    if not hits:
        raise LabError(f"{node}: the generated files have no {basename}")
    return hits[0], files[hits[0]]


@dataclass(frozen=True)
class Topology:
    """The lab's shape as read from the generated files."""

    masters: tuple[Master, ...]
    vip: ipaddress.IPv4Address
    prefix: int
    lb_port: int
    api_port: int
    timing: Mapping[str, float]  # advert, interval, fall, rise of the keepalived config

    def master(self, name: str) -> Master:
        """Return the master called ``name``."""
        return next(m for m in self.masters if m.name == name)


def files_from_user_data(text: str, source: str) -> tuple[dict[str, bytes], dict[str, int]]:
    """Return ({path: content}, {path: mode}) of a #cloud-config's write_files."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LabError(f"{source}: not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise LabError(f"{source}: not a #cloud-config mapping")
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    for entry in doc.get("write_files") or []:
        path = str(entry["path"])
        files[path] = _decode(entry.get("content", ""), str(entry.get("encoding", "text")), source)
        modes[path] = int(str(entry.get("permissions", "0644")), 8)
    return files, modes


def _decode(content: str, encoding: str, source: str) -> bytes:
    """Decode a write_files content the way cloud-init does."""
    if encoding in ("text", "", "none"):
        return content.encode()
    raw = base64.b64decode(content)
    if encoding in ("b64", "base64"):
        return raw
    if encoding in ("gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
        return gzip.decompress(raw)
    raise LabError(f"{source}: unsupported write_files encoding {encoding!r}")


def _keepalived_values(conf: str, source: str) -> dict[str, str]:
    """Pick the few keepalived.conf values the lab needs (first occurrence of each keyword)."""
    values: dict[str, str] = {}
    lines = iter(conf.splitlines())
    for raw in lines:
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "virtual_ipaddress":
            vip_words = next(lines).split()
            values.setdefault("vip", vip_words[0] if vip_words and vip_words[0] != "}" else "")
        elif len(words) > 1 and words[0] in ("interface", "advert_int", "interval", "fall", "rise",
                                            "unicast_src_ip", "priority", "preempt_delay"):
            values.setdefault(words[0], words[1])
    for key in ("interface", "vip"):
        if not values.get(key):
            raise LabError(f"{source}: no {key} found")
    return values


def _haproxy_values(cfg: str, source: str) -> tuple[int, dict[str, tuple[str, int]]]:
    """Return the frontend port and {server name: (address, port)} of haproxy.cfg."""
    port = 0
    servers: dict[str, tuple[str, int]] = {}
    for raw in cfg.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "bind" and not port:
            port = int(words[1].rsplit(":", 1)[1])
        elif len(words) >= 3 and words[0] == "server":
            addr, _, sport = words[2].rpartition(":")
            servers[words[1]] = (addr, int(sport))
    if not port or not servers:
        raise LabError(f"{source}: no bind port or no server lines found")
    return port, servers


def topology(node_files: Mapping[str, tuple[Mapping[str, bytes], Mapping[str, int]]]) -> Topology:
    """Build the lab topology from each node's generated files; nodes without keepalived.conf are workers."""
    masters: list[Master] = []
    first: dict[str, str] = {}
    lb_port = 0
    servers: dict[str, tuple[str, int]] = {}
    for name in sorted(node_files):
        files, modes = node_files[name]
        if not any(p.endswith("/" + KEEPALIVED_CONF) for p in files):
            continue
        ka = _keepalived_values(_find(name, files, KEEPALIVED_CONF)[1].decode(), f"{name}/{KEEPALIVED_CONF}")
        lb_port, servers = _haproxy_values(_find(name, files, HAPROXY_CFG)[1].decode(), f"{name}/{HAPROXY_CFG}")
        first = first or ka
        addr = servers[name][0] if name in servers else ka.get("unicast_src_ip", "")
        if not addr:
            raise LabError(f"{name}: cannot tell its address (no haproxy server named {name}, no unicast_src_ip)")
        masters.append(Master(name, ipaddress.IPv4Address(addr), files, modes, ka["interface"]))
    if len(masters) < 2:
        raise LabError("the lab needs at least two masters with keepalived.conf")
    vip = ipaddress.IPv4Address(first["vip"].split("/")[0])
    api_ports = {port for _, port in servers.values()}
    timing: dict[str, float] = {k: float(first[k]) for k in ("advert_int", "interval", "fall", "rise", "preempt_delay")
                                if k in first}
    prefix = _common_prefix([m.address for m in masters] + [vip])
    return Topology(tuple(masters), vip, prefix, lb_port, min(api_ports), timing)


def _common_prefix(addrs: Sequence[ipaddress.IPv4Address]) -> int:
    """Longest prefix (at most /24) that puts every address in one subnet."""
    for prefix in range(24, 0, -1):
        if len({ipaddress.ip_network(f"{a}/{prefix}", strict=False) for a in addrs}) == 1:
            return prefix
    return 8


def check_lab_addresses(topo: Topology) -> None:
    """Refuse addresses outside 198.18.0.0/15 (the house rule for anything that sends traffic)."""
    outside = [str(a) for a in [topo.vip, *(m.address for m in topo.masters)] if a not in LAB_NET]
    if outside:
        raise LabError(f"addresses outside {LAB_NET}: {', '.join(outside)} (use --remap to move them into it)")


def remap_addresses(node_files: NodeFiles) -> dict[str, str]:
    """Rewrite every master address and the VIP in the generated files onto 198.18.0.0/24, in place.

    The lab is an isolated replica, but tests and drills only ever put 198.18.0.0/15 on a wire. Addresses
    keep their order: the VIP becomes 198.18.0.10 and the masters 198.18.0.11 onwards (by name).
    Returns the mapping applied.
    """
    topo = topology(node_files)
    mapping = {str(topo.vip): "198.18.0.10"}
    for i, master in enumerate(topo.masters):
        mapping.setdefault(str(master.address), f"198.18.0.{11 + i}")
    pattern = re.compile(r"(?<![\d.])(" + "|".join(re.escape(a) for a in mapping) + r")(?![\d])")
    for files, _ in node_files.values():
        for path, data in files.items():
            text = data.decode(errors="surrogateescape")
            files[path] = pattern.sub(lambda m: mapping[m.group(1)], text).encode(errors="surrogateescape")
    return mapping


def files_from_output_dir(out: Path) -> NodeFiles:
    """Read ``kubeha gen userdata`` output: OUT/<node>/user-data for every node."""
    found = sorted(out.glob("*/user-data"))
    if not found:
        raise LabError(f"{out}: no <node>/user-data files (is this `kubeha gen userdata` output?)")
    return {p.parent.name: files_from_user_data(p.read_text(), str(p)) for p in found}


def files_from_inventory(inventory: Path, profile: str | None = None, preempt: bool | None = None,
                         preempt_delay: float | None = None) -> NodeFiles:
    """Generate every node's user-data from an inventory (optionally with another profile) and read it back.

    ``profile`` may also name a baseline (profiles.BASELINES); ``preempt`` and ``preempt_delay`` override the
    inventory's failback policy. Nothing is written beside the inventory: when the VRRP secret file does not
    exist yet, the lab uses a throwaway secret (the lab's VRRP traffic never leaves its namespaces).
    """
    from dataclasses import replace

    from kubeha import generate
    from kubeha.context import needs_secret
    from kubeha.deliver import cloudinit
    from kubeha.profiles import BASELINES, PROFILES
    from kubeha.render import render_cluster

    known = {**PROFILES, **BASELINES}
    if profile and profile not in known:
        raise LabError(f"unknown profile {profile!r} (known: {', '.join(known)})")
    # the priorities the inventory would get under that profile (derived ones start at its top_priority)
    cluster = generate.load_cluster(inventory, top_priority=known[profile].top_priority if profile else None).cluster
    if profile:
        chosen = known[profile]
        cluster = replace(cluster, profile=chosen, preempt=chosen.default_preempt if preempt is None else preempt)
        if chosen.fixed_weight is not None:
            cluster = replace(cluster, weight=chosen.fixed_weight)
        if chosen.fixed_priorities:  # the baseline's own priorities: the first for the MASTER, the last for the rest
            prios = [*chosen.fixed_priorities[:-1], *[chosen.fixed_priorities[-1]] * len(cluster.masters)]
            cluster = replace(cluster, masters=tuple(replace(m, priority=prios[i], state="MASTER" if i == 0 else
                                                             "BACKUP") for i, m in enumerate(cluster.masters)))
    elif preempt is not None:
        cluster = replace(cluster, preempt=preempt)
    if preempt_delay is not None:
        cluster = replace(cluster, preempt_delay=preempt_delay)
    secret = None
    if needs_secret(cluster):
        secret = generate.read_secret(inventory, create=False) or secrets.token_hex(4)
    docs = render_cluster(cluster, secret)
    return {d.name: files_from_user_data(cloudinit.to_user_data(d), f"{d.name}/user-data") for d in docs}


def container_specs(master: Master) -> list[ContainerSpec]:
    """Read the containers of the generated haproxy and keepalived static pod manifests."""
    specs: list[ContainerSpec] = []
    for basename in POD_MANIFESTS:
        path, data = master.find(basename)
        pod = yaml.safe_load(data)
        spec = pod.get("spec") or {}
        if not spec.get("hostNetwork"):
            raise LabError(f"{master.name}:{path}: hostNetwork is not true; the lab replicates host-network pods")
        volumes = {v["name"]: v.get("hostPath", {}).get("path") for v in spec.get("volumes") or []}
        for ctr in spec.get("containers") or []:
            specs.append(_container_spec(master.name, path, basename.split(".")[0], ctr, volumes))
    return specs


def _container_spec(node: str, path: str, pod: str, ctr: dict[str, Any],
                    volumes: Mapping[str, str | None]) -> ContainerSpec:
    """Translate one manifest container into a ContainerSpec."""
    argv = tuple(str(a) for a in (ctr.get("command") or []) + (ctr.get("args") or []))
    if not ctr.get("command"):
        raise LabError(f"{node}:{path}: container {ctr.get('name')} has no command; the lab runs it verbatim")
    mounts = []
    for vm in ctr.get("volumeMounts") or []:
        host = volumes.get(vm["name"])
        if not host or vm.get("subPath"):
            raise LabError(f"{node}:{path}: volume {vm['name']} is not a plain hostPath mount")
        mounts.append(Mount(host, vm["mountPath"], bool(vm.get("readOnly", False))))
    sec = ctr.get("securityContext") or {}
    caps = tuple(str(c) for c in (sec.get("capabilities") or {}).get("add") or [])
    env = tuple((str(e["name"]), str(e.get("value", ""))) for e in ctr.get("env") or [])
    return ContainerSpec(pod, str(ctr["name"]), str(ctr["image"]), argv, env, tuple(mounts), caps,
                         bool(sec.get("privileged", False)))
