"""Tests for kubeha.deliver.targets: budgets, encodings, refusals; every encoded variant checked by cloud-init schema."""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from kubeha.deliver import targets
from kubeha.errors import InvalidInput
from kubeha.files import NodeDocument, RenderedFile, SystemdUnit

# 24 KB of keepalived-like text: too big for AWS raw, tiny once gzipped.
BIG_CONF = "".join(
    f"vrrp_instance VI_{i} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {i % 255}\n"
    f"  priority {100 - i % 50}\n  virtual_ipaddress {{\n    198.18.0.{i % 250}\n  }}\n}}\n"
    for i in range(200)
)
# Text that gzip cannot shrink much (hex of a hash chain): 40 KB does not fit AWS in any encoding.
NOISE = "".join(hashlib.sha256(str(i).encode()).hexdigest() + "\n" for i in range(1200))


def stand_in_render(doc: NodeDocument, encode_files: bool) -> str:
    """Test-only stand-in for kubeha.deliver.cloudinit.to_user_data (same signature, same write_files shape)."""
    entries = []
    for f in (*doc.files, *(RenderedFile(f"/etc/systemd/system/{u.name}", u.content) for u in doc.units)):
        entry: dict[str, object] = {"path": f.path, "permissions": f.mode_str, "owner": f.owner}
        if encode_files:
            entry |= {"encoding": "gz+b64", "content": targets.gz_b64(f.content.encode()).decode()}
        else:
            entry["content"] = f.content
        entries.append(entry)
    body: dict[str, object] = {"hostname": doc.hostname, "write_files": entries}
    if doc.first_boot:
        body["runcmd"] = [list(argv) for argv in doc.first_boot]
    return "#cloud-config\n" + yaml.safe_dump(body, sort_keys=False, width=1_000_000)




def make_doc(*files: RenderedFile) -> NodeDocument:
    return NodeDocument(
        "master-1", "master-1", "master", "198.18.0.11", files,
        units=(SystemdUnit("kubeha-install.service", "[Service]\nType=oneshot\nExecStart=/opt/kubeha/install\n"),),
        first_boot=(("systemctl", "start", "kubeha-install.service"),),
    )


SMALL = make_doc(RenderedFile("/etc/keepalived/check_apiserver.sh", "#!/bin/sh\ncurl -fsk https://127.0.0.1:6444/readyz\n", 0o755))
COMPRESSIBLE = make_doc(RenderedFile("/etc/keepalived/keepalived.conf", BIG_CONF, 0o600))
HOPELESS = make_doc(
    RenderedFile("/etc/keepalived/keepalived.conf", BIG_CONF, 0o600),
    RenderedFile("/etc/kubeha/noise.txt", NOISE),
)


def decoded(fitted: targets.Fitted) -> str:
    """What cloud-init ends up parsing, from the bytes handed to the target."""
    data = fitted.data
    if fitted.encoding in (targets.BASE64, targets.GZIP_BASE64):
        data = base64.b64decode(data)
    if fitted.encoding in (targets.GZIP, targets.GZIP_BASE64):
        data = gzip.decompress(data)
    return data.decode()


def test_every_target_has_rules() -> None:
    assert set(targets.TARGETS) == {"nocloud", "aws", "azure", "openstack", "gce", "vsphere", "proxmox", "generic"}
    assert targets.TARGETS["aws"].budget == 16_384
    assert targets.TARGETS["azure"].budget == targets.TARGETS["openstack"].budget == 65_535
    assert targets.TARGETS["gce"].budget == 256 * 1024
    assert targets.TARGETS["vsphere"].encodings == ("base64", "gzip+base64")


def test_small_document_stays_plain_everywhere_but_vsphere() -> None:
    for name, rules in targets.TARGETS.items():
        fitted = targets.fit(SMALL, name, stand_in_render)
        expected = "base64" if name == "vsphere" else "plain"
        assert fitted.encoding == expected, name
        assert fitted.budget == rules.budget
        assert decoded(fitted) == stand_in_render(SMALL, False)


def test_fits_aws_only_after_compression() -> None:
    plain = stand_in_render(COMPRESSIBLE, False).encode()
    assert len(plain) > 16_384
    fitted = targets.fit(COMPRESSIBLE, "aws", stand_in_render)
    assert fitted.encoding == "gz+b64-files"
    assert fitted.size == len(fitted.data) <= 16_384
    loaded = yaml.safe_load(fitted.data)
    conf = next(f for f in loaded["write_files"] if f["path"].endswith("keepalived.conf"))
    assert conf["encoding"] == "gz+b64"
    assert gzip.decompress(base64.b64decode(conf["content"])).decode() == BIG_CONF


def test_openstack_budget_counts_base64() -> None:
    fitted = targets.fit(COMPRESSIBLE, "openstack", stand_in_render)
    assert fitted.encoding == "plain"
    assert fitted.size == len(base64.b64encode(fitted.data)) > len(fitted.data)


def test_vsphere_falls_back_to_gzip_base64() -> None:
    doc = make_doc(RenderedFile("/etc/keepalived/keepalived.conf", BIG_CONF * 3, 0o600))
    fitted = targets.fit(doc, "vsphere", stand_in_render)
    assert fitted.encoding == "gzip+base64"
    assert decoded(fitted) == stand_in_render(doc, False)


def test_gzip_whole_document_when_file_encoding_is_not_enough() -> None:
    # Many small files: per-file gz+b64 saves little, gzip over the whole document saves a lot.
    files = tuple(RenderedFile(f"/etc/kubeha/part-{i:03}.conf", f"setting_{i} = {i}\nsame line for all\n") for i in range(400))
    doc = make_doc(*files)
    fitted = targets.fit(doc, "aws", stand_in_render)
    assert fitted.encoding == "gzip"
    assert fitted.data[:2] == b"\x1f\x8b" and fitted.size <= 16_384
    assert decoded(fitted) == stand_in_render(doc, False)


def test_no_budget_targets_never_refuse() -> None:
    for name in ("nocloud", "proxmox", "generic"):
        fitted = targets.fit(HOPELESS, name, stand_in_render)
        assert (fitted.encoding, fitted.budget) == ("plain", None)


def test_hopeless_document_is_refused_with_per_file_sizes() -> None:
    with pytest.raises(InvalidInput) as caught:
        targets.fit(HOPELESS, "aws", stand_in_render)
    [problem] = caught.value.problems
    text = str(problem)
    assert text.startswith("master-1/user-data: error: target.aws: user-data does not fit aws's budget of 16,384")
    raw_noise = len(NOISE.encode())
    enc_noise = len(targets.gz_b64(NOISE.encode()))
    assert f"/etc/kubeha/noise.txt {raw_noise:,} raw / {enc_noise:,} gz+b64" in text
    conf = len(BIG_CONF.encode())
    assert f"/etc/keepalived/keepalived.conf {conf:,} raw / {len(targets.gz_b64(BIG_CONF.encode())):,} gz+b64" in text
    assert "/etc/systemd/system/kubeha-install.service" in text
    for encoding in ("plain", "gz+b64-files", "gzip"):
        assert f"{encoding} " in text
    # Largest file first, so the culprit leads the list.
    assert text.index("noise.txt") < text.index("keepalived.conf")


def test_unknown_target() -> None:
    with pytest.raises(InvalidInput) as caught:
        targets.fit(SMALL, "digitalocean", stand_in_render)
    assert "unknown target 'digitalocean'; use one of nocloud, aws" in str(caught.value.problems[0])


def test_describe() -> None:
    fitted = targets.fit(COMPRESSIBLE, "aws", stand_in_render)
    line = targets.describe("master-1", "aws", fitted)
    assert line.startswith(f"master-1: {fitted.size:,} bytes as gz+b64-files, budget 16,384 bytes for aws (")
    assert targets.describe("m", "nocloud", targets.fit(SMALL, "nocloud", stand_in_render)).endswith("no limit for nocloud")


def real_render(doc: NodeDocument, encode_files: bool) -> str:
    from kubeha.deliver.cloudinit import to_user_data

    return to_user_data(doc, encode_files=encode_files)


def example_docs(tmp: Path) -> list[NodeDocument]:
    """The lead's real documents for the example inventories (staged with the fixed test secret)."""
    from kubeha.generate import build_documents
    from kubeha_test import EXAMPLES, staged_inventory

    docs: list[NodeDocument] = []
    for name in ("seed-hosts.ini", "cluster.yaml"):
        work = tmp / name
        work.mkdir()
        docs += build_documents(staged_inventory(EXAMPLES / name, work))[1]
    assert docs
    return docs


def load_guest() -> ModuleType:
    """tests/e2e/guest.py, the shared cloud-init harness (schema checkers and the chroot run)."""
    if "guest" in sys.modules:  # already imported by the e2e tests (tests/e2e is on their path)
        return sys.modules["guest"]
    path = Path(__file__).resolve().parent / "e2e" / "guest.py"
    spec = importlib.util.spec_from_file_location("guest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["guest"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def guest() -> ModuleType:
    return load_guest()


ALL_ENCODINGS = (targets.PLAIN, targets.FILES, targets.GZIP, targets.BASE64, targets.GZIP_BASE64)


def one_per_role(docs: list[NodeDocument]) -> list[NodeDocument]:
    """A master and a worker: the documents of one role differ only in names and addresses."""
    return list({d.role: d for d in reversed(docs)}.values())


@pytest.mark.e2e
def test_every_encoded_variant_passes_cloud_init_schema(tmp_path: Path, guest: ModuleType) -> None:
    """Every encoding, decoded as cloud-init would, passes cloud-init 22.4's and 25.x's schemas."""
    cases: list[tuple[targets.Render, NodeDocument, tuple[bool, ...]]]
    cases = [(real_render, d, (False, True)) for d in (COMPRESSIBLE, *one_per_role(example_docs(tmp_path)))]
    cases.append((stand_in_render, COMPRESSIBLE, (False,)))
    checked = 0
    for render, doc, versions in cases:
        texts: dict[str, str] = {}
        for encoding in ALL_ENCODINGS:
            text = decoded(targets.Fitted(targets.encode(doc, encoding, render), encoding, 0, None))
            if encoding not in (targets.PLAIN, targets.FILES):
                assert text == render(doc, False)  # whole-document encodings decode to the plain text
            texts.setdefault(text, encoding)
        assert sorted(texts.values()) == [targets.FILES, targets.PLAIN]
        for text, encoding in texts.items():
            path = tmp_path / f"{doc.name}-{encoding}"
            path.write_text(text)
            for newer in versions:
                rc, out = guest.cloud_init_schema(path, newer)
                assert rc == 0, (render.__name__, doc.name, encoding, newer, out)
                checked += 1
    assert checked >= 10


@pytest.mark.e2e
def test_schema_check_can_fail(tmp_path: Path, guest: ModuleType) -> None:
    bad = stand_in_render(SMALL, True).replace("permissions: '0755'", "permissions: 493")
    (tmp_path / "bad.yaml").write_text(bad)
    for newer in (False, True):
        rc, out = guest.cloud_init_schema(tmp_path / "bad.yaml", newer)
        assert rc == 1 and "493 is not of type 'string'" in out


RUN_DOC = NodeDocument(
    "master-1", "master-1", "master", "198.18.0.11",
    (RenderedFile("/etc/keepalived/keepalived.conf", BIG_CONF, 0o600),
     RenderedFile("/etc/keepalived/check_apiserver.sh", "#!/bin/sh\ncurl -fsk https://127.0.0.1:6444/readyz\n", 0o755)),
    first_boot=(("sh", "-c", "echo first-boot-ran > /var/lib/kubeha-first-boot"),),
)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("encoding", [targets.FILES, targets.GZIP])
def test_real_cloud_init_run_on_compressed_user_data(tmp_path: Path, guest: ModuleType, encoding: str) -> None:
    """cloud-init 22.4 in a chroot applies the AWS-fitted user-data: gz+b64 write_files, or whole-document gzip."""
    fitted = targets.fit(RUN_DOC, "aws", real_render)
    assert fitted.encoding == targets.FILES and len(real_render(RUN_DOC, False)) > 16_384
    data = targets.encode(RUN_DOC, encoding, real_render)
    assert targets.measure(data, targets.TARGETS["aws"]) <= 16_384
    run = guest.run_cloud_init(data, b"instance-id: iid-targets-1\nlocal-hostname: master-1\n", workdir=tmp_path)
    assert run.ok, run.describe()
    for rendered in RUN_DOC.files:
        assert run.read(rendered.path) == rendered.content, rendered.path
        assert run.mode(rendered.path) == rendered.mode, rendered.path
        assert run.owner(rendered.path) == "root:root"
    assert run.read("/var/lib/kubeha-first-boot") == "first-boot-ran\n"
