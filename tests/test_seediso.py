# ruff: noqa: F811 - the gpg_keys fixture is imported and used as a parameter
"""Seed ISOs read back with pycdlib and isoinfo (the kernel here cannot mount iso9660)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import pycdlib
import pytest
import typer
from pycdlib.dr import DirectoryRecord
from typer.testing import CliRunner

from kubeha.bundle.pack import pack_inventory
from kubeha.cli.seediso import seed_iso
from kubeha.deliver.seediso import DEFAULT_EPOCH, write_seed_iso
from kubeha.errors import InvalidInput
from kubeha.generate import generate_documents
from kubeha_test import EXAMPLES, staged_inventory
from test_bundle import make_docker_archive
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture

USER_DATA = b"#cloud-config\nhostname: master-1\n"
META_DATA = b"instance-id: master-1\nlocal-hostname: master-1\n"
NETWORK = b"version: 2\nethernets:\n  eth0:\n    addresses: [198.18.0.11/24]\n"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    (root / "images").mkdir(parents=True)
    (root / "nodes/master-1").mkdir(parents=True)
    (root / "images/keepalived-2.3.3-haproxy-3.0.11.tar").write_bytes(bytes(range(256)) * 4000)
    (root / "SHA256SUMS").write_text("0" * 64 + "  bundle.json\n")
    (root / "SHA256SUMS.asc").write_text("-----BEGIN PGP SIGNATURE-----\n")
    (root / "bundle.json").write_text("{}\n")
    (root / "nodes/master-1/user-data").write_bytes(USER_DATA)
    (root / "install.sh").write_text("#!/bin/sh\nexit 0\n")
    (root / "install.sh").chmod(0o755)
    return root


def write(path: Path, bundle: Path | None = None, network: bytes | None = NETWORK) -> Path:
    write_seed_iso(path, user_data=USER_DATA, meta_data=META_DATA, network_config=network, bundle_dir=bundle)
    return path


def read(iso: pycdlib.PyCdlib, **path: str) -> bytes:
    out = BytesIO()
    iso.get_file_from_iso_fp(out, **path)
    return out.getvalue()


def test_label_files_and_contents(tmp_path: Path, bundle: Path) -> None:
    path = write(tmp_path / "master-1.iso", bundle)
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        assert iso.has_rock_ridge() and iso.has_joliet()
        assert iso.joliet_vd is not None
        assert iso.joliet_vd.volume_identifier.decode("utf-16-be").strip() == "cidata"
        for name, data in (("user-data", USER_DATA), ("meta-data", META_DATA), ("network-config", NETWORK)):
            assert read(iso, rr_path=f"/{name}") == data
            assert read(iso, joliet_path=f"/{name}") == data
        names = sorted(child.rock_ridge.name().decode() for child in iso.list_children(rr_path="/")
                       if child.rock_ridge is not None and not child.is_dot() and not child.is_dotdot())
        assert names == ["kubeha-bundle", "meta-data", "network-config", "user-data"]
        for source in sorted(p for p in bundle.rglob("*") if p.is_file()):
            rel = source.relative_to(bundle).as_posix()
            assert read(iso, rr_path=f"/kubeha-bundle/{rel}") == source.read_bytes(), rel
            assert read(iso, joliet_path=f"/kubeha-bundle/{rel}") == source.read_bytes(), rel
        for rr_path, mode in (("/kubeha-bundle/install.sh", 0o100555), ("/user-data", 0o100444)):
            record = iso.get_record(rr_path=rr_path)
            assert isinstance(record, DirectoryRecord) and record.rock_ridge is not None
            assert record.rock_ridge.get_file_mode() == mode, rr_path
    finally:
        iso.close()


def test_network_config_only_when_given(tmp_path: Path) -> None:
    iso = pycdlib.PyCdlib()
    iso.open(str(write(tmp_path / "a.iso", network=None)))
    try:
        names = {c.rock_ridge.name().decode() for c in iso.list_children(rr_path="/") if c.rock_ridge and not (c.is_dot() or c.is_dotdot())}
        assert names == {"meta-data", "user-data"}
    finally:
        iso.close()


def test_byte_stable_across_writes_and_time_zones(tmp_path: Path, bundle: Path) -> None:
    first = write(tmp_path / "a.iso", bundle).read_bytes()
    time.sleep(1.1)  # a real clock would now give other dates
    second = write(tmp_path / "b.iso", bundle).read_bytes()
    script = (
        "import sys; from pathlib import Path; from kubeha.deliver.seediso import write_seed_iso;"
        "write_seed_iso(Path(sys.argv[1]), user_data=bytes.fromhex(sys.argv[2]), meta_data=bytes.fromhex(sys.argv[3]),"
        " network_config=bytes.fromhex(sys.argv[4]), bundle_dir=Path(sys.argv[5]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"} | {"TZ": "Pacific/Chatham"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "c.iso"), USER_DATA.hex(), META_DATA.hex(),
                    NETWORK.hex(), str(bundle)], env=env, check=True, timeout=60)
    assert first == second == (tmp_path / "c.iso").read_bytes()
    # The pycdlib modules got the real clock back.
    assert getattr(pycdlib.pycdlib, "time") is time and getattr(pycdlib.dates, "time") is time  # noqa: B009


def test_dates_follow_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = write(tmp_path / "a.iso")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    other = write(tmp_path / "b.iso")
    assert default.read_bytes() != other.read_bytes()
    for path, stamp in ((default, DEFAULT_EPOCH), (other, 1_700_000_000)):
        iso = pycdlib.PyCdlib()
        iso.open(str(path))
        try:
            expected = time.strftime("%Y%m%d%H%M%S", time.gmtime(stamp)).encode()
            assert iso.pvd.volume_creation_date.date_str.startswith(expected)
        finally:
            iso.close()


def test_private_and_atomic(tmp_path: Path, bundle: Path) -> None:
    path = write(tmp_path / "out/master-1.iso", bundle)
    assert path.stat().st_mode & 0o777 == 0o600  # user-data holds the VRRP secret
    blocker = tmp_path / "out/dir.iso"
    blocker.mkdir()
    with pytest.raises(OSError):
        write(blocker)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dir.iso", "master-1.iso"]


def test_bad_bundles_are_refused(tmp_path: Path, bundle: Path) -> None:
    with pytest.raises(InvalidInput, match="error"):
        write(tmp_path / "x.iso", tmp_path / "missing")
    (bundle / "link").symlink_to("bundle.json")
    with pytest.raises(InvalidInput) as caught:
        write(tmp_path / "x.iso", bundle)
    assert "only regular files and directories" in str(caught.value.problems[0])
    (bundle / "link").unlink()
    (bundle / ("n" * 80)).write_text("too long for Joliet\n")
    with pytest.raises(InvalidInput) as caught:
        write(tmp_path / "x.iso", bundle)
    assert "cannot build the ISO" in str(caught.value.problems[0])
    assert not (tmp_path / "x.iso").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x.iso")]


def test_name_collisions_get_distinct_iso_names(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    for name in ("keepalived-image.tar", "keepalived-image2.tar", "KEEPALIVED_IMAGE.tar"):
        (root / name).write_text(name)
    iso = pycdlib.PyCdlib()
    iso.open(str(write(tmp_path / "x.iso", root)))
    try:
        for name in ("keepalived-image.tar", "keepalived-image2.tar", "KEEPALIVED_IMAGE.tar"):
            assert read(iso, rr_path=f"/kubeha-bundle/{name}").decode() == name
    finally:
        iso.close()


def isoinfo(*args: str) -> str:
    exe = shutil.which("isoinfo")
    if exe is None:
        pytest.fail("isoinfo is missing: apt-get install -y genisoimage")
    return subprocess.run([exe, *args], capture_output=True, text=True, check=True, timeout=60).stdout


def test_isoinfo_reads_it(tmp_path: Path, bundle: Path) -> None:
    path = str(write(tmp_path / "m.iso", bundle))
    info = isoinfo("-d", "-i", path)
    assert "Volume id: cidata" in info
    assert "Joliet with UCS level 3 found" in info and "Rock Ridge signatures version 1 found" in info
    listing = isoinfo("-R", "-l", "-i", path)
    for name in ("user-data", "meta-data", "network-config", "kubeha-bundle", "keepalived-2.3.3-haproxy-3.0.11.tar"):
        assert f" {name} " in listing + " ", name
    assert isoinfo("-J", "-i", path, "-x", "/user-data").encode() == USER_DATA
    assert isoinfo("-J", "-i", path, "-x", "/kubeha-bundle/nodes/master-1/user-data").encode() == USER_DATA


# --- the CLI function the lead registers as `kubeha gen seed-iso` -----------------------------------------


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("seed-iso")(seed_iso)
    app.command("noop")(lambda: None)  # two commands, so "seed-iso" stays a subcommand as under `kubeha gen`
    return app


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app(), list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_writes_one_iso_per_node(tmp_path: Path) -> None:
    inventory = staged_inventory(EXAMPLES / "seed-hosts.ini", tmp_path)
    expected = generate_documents(inventory)
    code, out, err = invoke("seed-iso", str(inventory), "-o", str(tmp_path / "isos"), "--json")
    assert code == 0, err
    records = json.loads(out)["result"]["isos"]
    assert [r["node"] for r in records] == sorted(expected)
    for record in records:
        path = Path(record["path"])
        assert path == tmp_path / "isos" / f"{record['node']}.iso"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"]
        iso = pycdlib.PyCdlib()
        iso.open(str(path))
        try:
            assert iso.pvd.volume_identifier.decode().strip() == "cidata"
            for name, data in expected[record["node"]].items():
                assert read(iso, rr_path=f"/{name}") == data
        finally:
            iso.close()
    first = {r["node"]: r["sha256"] for r in records}
    code, out, _ = invoke("seed-iso", str(inventory), "-o", str(tmp_path / "isos"))
    assert code == 0 and out.splitlines()[0].startswith(f"{records[0]['node']}: {records[0]['path']} (")
    assert {n: hashlib.sha256((tmp_path / "isos" / f"{n}.iso").read_bytes()).hexdigest() for n in first} == first


@pytest.fixture
def signed(tmp_path: Path, gpg_keys: Keys) -> tuple[Path, Path]:
    """examples/cluster.yaml (3 masters, 2 workers) packed into a real signed bundle: (inventory, bundle tar)."""
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    images = tmp_path / "images.tar"
    make_docker_archive(images)
    result = pack_inventory(inventory, images, gpg_keys.trusted.signer(), tmp_path / "bundles", name="demo")
    return inventory, result.tarball


def _names(iso: pycdlib.PyCdlib, path: str) -> list[str]:
    return sorted(c.rock_ridge.name().decode() for c in iso.list_children(rr_path=path)
                  if c.rock_ridge is not None and not c.is_dot() and not c.is_dotdot())


@pytest.mark.parametrize("form", ["tar", "directory"])
def test_cli_builds_per_node_isos_from_the_verified_bundle(
    tmp_path: Path, signed: tuple[Path, Path], gpg_keys: Keys, form: str
) -> None:
    inventory, tar = signed
    bundle = tar if form == "tar" else tar.with_suffix("")
    code, _, err = invoke("seed-iso", str(inventory), "--bundle", str(bundle), "--keyring",
                          str(gpg_keys.trusted.public), "-o", str(tmp_path / "isos"))
    assert code == 0, err
    unpacked = tar.with_suffix("")
    for node in ("master1", "master2", "master3", "worker1", "worker2"):
        iso = pycdlib.PyCdlib()
        iso.open(str(tmp_path / "isos" / f"{node}.iso"))
        try:
            assert read(iso, rr_path="/user-data") == (unpacked / "nodes" / node / "user-data").read_bytes()
            if node.startswith("worker"):  # no images, no bundle, no master secret
                assert _names(iso, "/") == ["meta-data", "user-data"]
                raw = (tmp_path / "isos" / f"{node}.iso").read_bytes()
                assert b"vrrp_instance" not in raw and b"KUBEHA_CLUSTER_ID" not in raw and b"images.tar" not in raw
                continue
            raw = (tmp_path / "isos" / f"{node}.iso").read_bytes()
            assert b"vrrp_instance" in raw or b"H4sI" in raw  # its keepalived.conf (plain or gzip+base64)
            assert _names(iso, "/kubeha-bundle/nodes") == [node]  # its own documents only
            assert read(iso, rr_path="/kubeha-bundle/images/images.tar") == (unpacked / "images/images.tar").read_bytes()
        finally:
            iso.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".kubeha-seed-")) == []


def test_cli_refuses_unverified_bundles_before_writing(tmp_path: Path, signed: tuple[Path, Path], gpg_keys: Keys) -> None:
    inventory, tar = signed
    out = tmp_path / "isos"
    code, _, err = invoke("seed-iso", str(inventory), "--bundle", str(tar), "-o", str(out))
    assert code == 2 and "--bundle needs --keyring" in err
    code, _, err = invoke("seed-iso", str(inventory), "--bundle", str(tar), "--keyring", str(gpg_keys.other.public),
                          "-o", str(out))
    assert code == 4 and "signed by unknown key" in err
    directory = tar.with_suffix("")
    data = bytearray((directory / "images/images.tar").read_bytes())
    data[100] ^= 1
    (directory / "images/images.tar").write_bytes(bytes(data))
    code, _, err = invoke("seed-iso", str(inventory), "--bundle", str(directory), "--keyring",
                          str(gpg_keys.trusted.public), "-o", str(out))
    assert code == 3 and "checksum mismatch: images/images.tar" in err
    # a genuine bundle of another cluster (its id differs from the one beside this inventory)
    inventory.with_name(inventory.name + ".cluster-id").write_text("f" * 32 + "\n")
    code, _, err = invoke("seed-iso", str(inventory), "--bundle", str(tar), "--keyring", str(gpg_keys.trusted.public),
                          "-o", str(out))
    assert code == 4 and "not ffffffffffffffffffffffffffffffff" in err
    assert not out.exists() and "Traceback" not in err


def test_cli_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "hosts.ini"
    bad.write_text("[k8s-master]\nnode01 ansible_host=not-an-address\n")
    code, out, err = invoke("seed-iso", str(bad), "-o", str(tmp_path / "isos"))
    assert code == 1 and out == "" and "Traceback" not in err
    assert str(bad) in err
    assert not (tmp_path / "isos").exists()
    code, _, err = invoke("seed-iso", str(tmp_path / "hosts.ini"), "--bundle", str(tmp_path / "nope"), "-o", "x")
    assert code == 2 and "--bundle needs --keyring" in err


# The VM boot from a seed ISO lives in tests/e2e/test_node_install.py: one boot per run covers the
# harness, kubeha's seed-ISO writer, the bundle and the node install together (each boot costs ~2 min).
