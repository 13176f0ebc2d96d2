"""Document sizes for delivery (issue 13): kubeha's user-data alone, merged with a site config, per target.

For a first master and the last worker, with and without a bundle reference (the install script and
public key ride along), alone and merged with a typical site cloud-config (a user with an SSH key, a CA
certificate, NTP, write_files, runcmd): the plain size, the merged form chosen, and what each target's
fitter picks (encoding, measured size, budget). openstack/vsphere rows use examples/cluster.yaml (VRRP);
aws/azure/gce rows use tests/cases/external (vip_mode external: no keepalived files). Also config.ign sizes.
Run: .venv/bin/python bench/delivery.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kubeha.deliver import targets
from kubeha.deliver.cloudinit import to_user_data
from kubeha.deliver.ignition import ignition_files
from kubeha.deliver.merge import kind_of, kubeha_part, merged_user_data, mime_document
from kubeha.deliver.userparts import Part, parse_user_data
from kubeha.files import NodeDocument
from kubeha.generate import BundleRef, build_documents
from kubeha.render import IGNITION_INSTALL_SCRIPT

REPO = Path(__file__).resolve().parents[1]
# A 3 KB armored key stands in for a real one (an ed25519 key is ~0.6 KB, RSA-4096 ~3 KB).
KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + "\n".join(["A" * 64] * 46) + "\n-----END PGP PUBLIC KEY BLOCK-----\n"
SITE = """\
#cloud-config
users:
  - name: ops
    groups: [sudo]
    shell: /bin/bash
    ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKubehaBenchKeyNotReal0000000000000000000 ops@site]
ca_certs:
  trusted:
    - |
""" + "".join(f"      {'M' * 64}\n" for _ in range(12)) + """\
ntp: {enabled: true, servers: [198.18.0.1]}
write_files:
  - path: /etc/site/site.conf
    content: "site=dc1\\n"
runcmd:
  - [sh, -c, "echo provisioned > /var/log/site"]
"""


INVENTORIES = (("vrrp", REPO / "examples" / "cluster.yaml", ("openstack", "vsphere")),
               ("external", REPO / "tests" / "cases" / "external" / "inventory.yaml", ("aws", "azure", "gce")))


def main() -> None:
    parts = parse_user_data("site.yaml", SITE.encode())
    print(f"site cloud-config: {len(SITE.encode()):,} B")
    with tempfile.TemporaryDirectory() as tmp:
        for mode, source, names in INVENTORIES:
            inventory = Path(tmp) / source.name
            shutil.copy(source, inventory)
            for label, bundle in (("gen", None), ("bundle", BundleRef(public_key=KEY))):
                _, docs = build_documents(inventory, bundle=bundle)
                for doc in (docs[0], docs[-1]):
                    _report(f"{mode}/{label}", doc, parts, names)
        inventory = Path(tmp) / "cluster.yaml"
        _, ign_docs = build_documents(inventory, bundle=BundleRef(public_key=KEY, script=IGNITION_INSTALL_SCRIPT))
        for doc in (ign_docs[0], ign_docs[-1]):
            print(f"ignition {doc.name:<8} config.ign {len(ignition_files(doc)['config.ign']):,} B (bundle)")


def _report(label: str, doc: NodeDocument, parts: list[Part], names: tuple[str, ...]) -> None:
    alone = to_user_data(doc).encode()
    merged = merged_user_data(doc, parts).encode()
    mime = mime_document(doc.name, [*parts, kubeha_part(doc)]).encode()
    print(f"{label:<16} {doc.name:<8} alone {len(alone):>7,} B   merged {len(merged):>7,} B ({kind_of(merged)}; "
          f"the MIME form would be {len(mime):,} B)")
    for target in names:
        fitted = targets.fit(doc, target, lambda d, enc: merged_user_data(d, parts, encode_files=enc))
        budget = f"{fitted.budget:,}" if fitted.budget else "none"
        print(f"{'':<25} {target:<9} {fitted.encoding:<13} {fitted.size:>7,} B of {budget} "
              f"({fitted.size * 100 // (fitted.budget or fitted.size)}%)")


if __name__ == "__main__":
    main()
