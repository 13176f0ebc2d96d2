"""Provisioning targets: how much user-data each one takes, in which encodings, and fitting a node into it.

Each target's limit is counted on a particular form of the data (``measured``): ``raw`` bytes as the
instance will read them, or the ``base64`` text the provider's API carries. Sources (checked 2026-11):

* aws: "User data is limited to 16 KB, in raw form, before it is base64-encoded" (EC2 User Guide,
  instancedata-add-user-data). Binary (gzip) user-data is allowed: the API carries base64.
* azure: customData "is decoded to a binary array ... The maximum length of the binary array is 65535 bytes"
  (Azure Compute REST/SDK reference, OSProfile.customData).
* openstack: "The provided user data must be base64 encoded and is restricted to 65535 bytes" (Nova user
  guide, user-data); Nova's API schema puts the limit on the base64 string, so we measure that form.
* gce: a metadata value "must be less than or equal to 262144 bytes (256 KiB)" (Compute Engine API,
  Metadata.Items). Values are text, so binary gzip cannot ride there; cloud-init's GCE datasource honours a
  ``user-data-encoding: base64`` metadata key, which makes gzip+base64 possible.
* vsphere: ``guestinfo.userdata`` with ``guestinfo.userdata.encoding`` ``base64`` or ``gzip+base64``
  (cloud-init VMware datasource); open-vm-tools caps one guest RPC message, hence one guestinfo value, at
  64 KiB (lib/include/guest_msg_def.h, GUESTMSG_MAX_IN_SIZE; vmware-tanzu/vm-operator issue 148).
* nocloud, proxmox, generic: no documented limit. NoCloud reads files from a seed ISO or HTTP; Proxmox's
  ``cicustom`` snippets end up on its generated cloud-init drive. We report sizes but never refuse.

Whole-document gzip works on every cloud-init datasource: cloud-init gunzips user-data that starts with
the gzip magic before parsing it (``cloudinit.user_data.convert_string``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from kubeha.deliver.cloudinit import gzip_bytes
from kubeha.errors import InvalidInput, Location, Problem
from kubeha.files import NodeDocument
from kubeha.model import Cluster

Render = Callable[[NodeDocument, bool], str]

# Encodings, cheapest to read first. "gz+b64-files" is a readable cloud-config whose write_files contents
# are gzip+base64; the others transform the whole rendered document.
PLAIN = "plain"
FILES = "gz+b64-files"
GZIP = "gzip"
BASE64 = "base64"
GZIP_BASE64 = "gzip+base64"


@dataclass(frozen=True)
class Target:
    """One provisioning target's user-data rules."""

    name: str
    budget: int | None
    measured: str  # "raw" or "base64": the form of the data the budget applies to
    encodings: tuple[str, ...]
    hint: str  # what the operator must set for the chosen encoding, if anything


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("nocloud", None, "raw", (PLAIN, FILES, GZIP), "seed ISO or NoCloud-net user-data file"),
        Target("aws", 16_384, "raw", (PLAIN, FILES, GZIP), "pass the bytes as --user-data fileb://FILE"),
        Target("azure", 65_535, "raw", (PLAIN, FILES, GZIP), "pass as customData (the API base64s it)"),
        Target("openstack", 65_535, "base64", (PLAIN, FILES, GZIP), "pass as --user-data FILE"),
        Target("gce", 262_144, "raw", (PLAIN, FILES, GZIP_BASE64),
               "metadata user-data; for gzip+base64 also set user-data-encoding=base64"),
        Target("vsphere", 65_536, "raw", (BASE64, GZIP_BASE64),
               "guestinfo.userdata, with guestinfo.userdata.encoding set to the encoding"),
        Target("proxmox", None, "raw", (PLAIN, FILES, GZIP), "a cicustom user= snippet"),
        Target("generic", None, "raw", (PLAIN, FILES, GZIP), "raw user-data"),
    )
}


@dataclass(frozen=True)
class Fitted:
    """User-data ready for a target: the bytes to hand over, how they are encoded, and their size."""

    data: bytes
    encoding: str
    size: int  # measured the way the target's budget is counted
    budget: int | None



def gz_b64(data: bytes) -> bytes:
    """Gzip then base64, as cloud-init's ``encoding: gz+b64`` and vSphere's ``gzip+base64`` expect."""
    return base64.b64encode(gzip_bytes(data))


def get_target(name: str) -> Target:
    """Look a target up by name, or raise InvalidInput naming the known ones."""
    if name not in TARGETS:
        known = ", ".join(TARGETS)
        raise InvalidInput([Problem(Location("--target"), "target", f"unknown target {name!r}; use one of {known}")])
    return TARGETS[name]


def measure(data: bytes, target: Target) -> int:
    """Size of ``data`` as the target's budget counts it."""
    return len(base64.b64encode(data)) if target.measured == "base64" else len(data)


def encode(doc: NodeDocument, encoding: str, render: Render) -> bytes:
    """Render ``doc`` and apply one encoding."""
    if encoding == FILES:
        return render(doc, True).encode("utf-8")
    plain = render(doc, False).encode("utf-8")
    transforms: dict[str, Callable[[bytes], bytes]] = {
        PLAIN: lambda b: b,
        GZIP: gzip_bytes,
        BASE64: base64.b64encode,
        GZIP_BASE64: gz_b64,
    }
    return transforms[encoding](plain)


def fit(doc: NodeDocument, target: str, render: Render, extra: tuple[tuple[str, int, int], ...] = ()) -> Fitted:
    """Find the first encoding the target allows whose size is within its budget.

    Args:
        doc: the node's document.
        target: a key of :data:`TARGETS`.
        render: ``render(doc, encode_files)`` -> cloud-config text (``kubeha.deliver.cloudinit.to_user_data``).
        extra: (name, raw bytes, gzip+base64 bytes) of merged user parts, listed in a refusal too.

    Returns:
        The bytes to hand to the target, the encoding used and their measured size.

    Raises:
        InvalidInput: the target is unknown, or no encoding fits; the message lists every file's size
            raw and gzip+base64, each encoding's total, and the budget.
    """
    rules = get_target(target)
    tried: list[tuple[str, int]] = []
    for encoding in rules.encodings:
        data = encode(doc, encoding, render)
        size = measure(data, rules)
        if rules.budget is None or size <= rules.budget:
            return Fitted(data, encoding, size, rules.budget)
        tried.append((encoding, size))
    raise InvalidInput([too_big(doc, rules, tried, extra)])


def fit_ignition(doc: NodeDocument, target: str, config: bytes) -> str:
    """Check a config.ign against the target's budget (Ignition takes it as is: no encoding to fall back on).

    Files inside are already gzip-compressed where that is shorter. Returns the summary line's size text.

    Raises:
        InvalidInput: the config does not fit; every file's raw and gzip+base64 size is listed.
    """
    rules = get_target(target)
    size = measure(config, rules)
    if rules.budget is None:
        return f"{size:,} B"
    if size > rules.budget:
        problem = too_big(doc, rules, [("config.ign", size)])
        raise InvalidInput([Problem(Location(f"{doc.name}/config.ign"), problem.path,
                                    problem.message.replace("user-data does not fit", "config.ign does not fit"))])
    return f"{size:,} B, {target} budget {rules.budget:,} B ({100 * size / rules.budget:.0f}% used)"


def file_sizes(doc: NodeDocument) -> list[tuple[str, int, int]]:
    """(path, raw bytes, gzip+base64 bytes) for every file and unit, largest first."""
    contents = [(f.path, f.content) for f in doc.files]
    contents += [(f"/etc/systemd/system/{u.name}", u.content) for u in doc.units]
    sizes = [(path, len(text.encode()), len(gz_b64(text.encode()))) for path, text in contents]
    return sorted(sizes, key=lambda s: (-s[1], s[0]))


def too_big(doc: NodeDocument, rules: Target, tried: list[tuple[str, int]],
            extra: tuple[tuple[str, int, int], ...] = ()) -> Problem:
    """The refusal: every encoding's size, the budget, and each file's (and merged part's) raw and encoded size."""
    attempts = ", ".join(f"{enc} {size:,}" for enc, size in tried)
    sizes = sorted([*file_sizes(doc), *extra], key=lambda s: (-s[1], s[0]))
    files = "; ".join(f"{path} {raw:,} raw / {enc:,} gz+b64" for path, raw, enc in sizes)
    message = (
        f"user-data does not fit {rules.name}'s budget of {rules.budget:,} bytes ({rules.measured}): "
        f"tried {attempts}; files: {files}"
    )
    return Problem(Location(f"{doc.name}/user-data"), f"target.{rules.name}", message)


def describe(node: str, target: str, fitted: Fitted) -> str:
    """One line for ``kubeha gen userdata``: a node's document size against its target's budget."""
    budget = "no limit" if fitted.budget is None else f"{fitted.budget:,} bytes"
    share = "" if fitted.budget is None else f" ({100 * fitted.size / fitted.budget:.0f}%)"
    return f"{node}: {fitted.size:,} bytes as {fitted.encoding}, budget {budget} for {target}{share}"


# Clouds whose networks drop a gratuitous-ARP-moved address: the VIP cannot float between instances.
_NO_FLOATING_VIP = {
    "aws": "an EC2 VPC only delivers an address to the instance it is assigned to (moving it takes an API call)",
    "azure": "an Azure VNet ignores ARP for addresses not configured on the NIC, and carries no multicast",
    "gce": "a GCE VPC routes each address to one instance only and carries no multicast or VRRP",
}


def network_hints(cluster: Cluster, target: str) -> list[str]:
    """What the target's network must allow for this cluster, or how to hand the documents over.

    Raises:
        InvalidInput: a VRRP VIP on aws, azure or gce (use ``vip_mode: external`` with the cloud's LB).
    """
    rules = get_target(target)
    vip, port, health = cluster.vip.ip, cluster.lb_port, cluster.health_port
    if cluster.vip_mode == "external":
        return [f"{target}: point the load balancer at {vip}:{port} to every master's :{port}, with an HTTP "
                f"health check of GET /readyz on :{health} (200 only while haproxy runs and reaches an "
                "apiserver)"]
    if target in _NO_FLOATING_VIP:
        why = _NO_FLOATING_VIP[target]
        raise InvalidInput([Problem(
            Location(cluster.source), "vip_mode",
            f"--target {target}: a VRRP VIP does not move between instances here ({why}); put an existing "
            f"load balancer's address in vip and set vip_mode: external (masters then run haproxy only, and "
            f"the load balancer probes GET /readyz on :{health})")])
    if target == "openstack":
        peer = "unicast between the masters' addresses" if cluster.vrrp_mode == "unicast" else \
            "multicast to 224.0.0.18; vrrp_mode: unicast avoids needing multicast"
        return [f"openstack: add {vip} to every master port's allowed_address_pairs "
                f"(openstack port set --allowed-address ip-address={vip} PORT) and allow IP protocol 112 "
                f"(VRRP, here {peer}) between the masters in their security group"]
    if target == "vsphere":
        return [f"vsphere: set guestinfo.userdata to the user-data file's contents (already encoded) and "
                f"guestinfo.userdata.encoding to the encoding shown for each node ({' or '.join(rules.encodings)}); "
                "set guestinfo.metadata to base64 of the meta-data file with guestinfo.metadata.encoding base64"]
    return []
