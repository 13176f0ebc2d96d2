# ruff: noqa: F811 - the gpg_keys fixture is imported from test_signing and used as a parameter
"""kubeha.bundle and ``kubeha bundle``: pack -> verify round trip, reproducibility, and the tamper suite.

gpg is real (throwaway keys from test_signing's session fixture); the image archive is a small
docker-archive-shaped tar made here (manifest.json + config JSON + layer tar), so no engine is needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha.bundle import (
    IMAGES_TAR,
    Expect,
    PackInput,
    PackResult,
    VerifyReport,
    format_sums,
    pack_bundle,
    parse_sums,
    verify_bundle,
    write_tar,
)
from kubeha.cli.bundle import app
from kubeha.errors import ChecksumError, InvalidInput
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture shared with the signing tests

REFS = ("kubeha.local/keepalived:2.3.3", "kubeha.local/haproxy:3.0.11")
CLUSTER_ID = "0123456789abcdef0123456789abcdef"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_docker_archive(path: Path, refs: tuple[str, ...] = REFS, layer_bytes: int = 4096) -> dict[str, str]:
    """A docker-archive (``docker save`` layout) with one image per ref; returns ref -> image id."""
    ids = {}
    with tarfile.open(path, "w") as tar:
        entries = []
        for n, ref in enumerate(refs):
            layer_buf = io.BytesIO()
            with tarfile.open(fileobj=layer_buf, mode="w") as layer:
                _add(layer, f"etc/image-{n}", bytes([n + 1]) * layer_bytes)
            layer_data = layer_buf.getvalue()
            diff_id = "sha256:" + hashlib.sha256(layer_data).hexdigest()
            config = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                    "config": {"Cmd": ["/bin/true"]},
                }
            ).encode()
            config_hex = hashlib.sha256(config).hexdigest()
            _add(tar, f"{config_hex}.json", config)
            _add(tar, f"{diff_id[7:]}/layer.tar", layer_data)
            entries.append({"Config": f"{config_hex}.json", "RepoTags": [ref], "Layers": [f"{diff_id[7:]}/layer.tar"]})
            ids[ref] = "sha256:" + config_hex
        _add(tar, "manifest.json", json.dumps(entries).encode())
    return ids


DOCUMENTS = {
    "master1": {"user-data": b"#cloud-config\nwrite_files: []\n", "meta-data": b"instance-id: m1\n"},
    "master2": {"user-data": b"#cloud-config\nruncmd: [[true]]\n", "meta-data": b"instance-id: m2\n"},
}


@pytest.fixture(scope="session")
def images_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "images.tar"
    make_docker_archive(path)
    return path


@pytest.fixture
def packed(tmp_path: Path, gpg_keys: Keys, images_tar: Path) -> PackResult:
    return pack_bundle(tmp_path / "out", DOCUMENTS, PackInput("lab", images_tar, name="lab", cluster_id=CLUSTER_ID, serial=7),
                       gpg_keys.trusted.signer())


def test_round_trip(packed: PackResult, gpg_keys: Keys) -> None:
    for target in (packed.directory, packed.tarball):
        report = verify_bundle(target, gpg_keys.trusted.public)
        assert report.ok, report.errors
        assert report.signer == gpg_keys.trusted.fingerprint
        assert report.files == 8  # bundle.json, key, images.tar, index.txt, 2 x (user-data, meta-data)
    assert sorted(p.name for p in packed.directory.parent.iterdir()) == ["lab", "lab.tar"]


def test_layout_and_contents(packed: PackResult, images_tar: Path) -> None:
    root = packed.directory
    assert (root / IMAGES_TAR).read_bytes() == images_tar.read_bytes()
    assert (root / "nodes/master2/user-data").read_bytes() == DOCUMENTS["master2"]["user-data"]
    assert (root / "nodes/master1/user-data").stat().st_mode & 0o777 == 0o600
    assert packed.tarball.stat().st_mode & 0o777 == 0o600
    sums = (root / "SHA256SUMS").read_text().splitlines()
    paths = [line.split("  ", 1)[1] for line in sums]
    assert paths == sorted(paths) and "bundle.json" in paths and "SHA256SUMS.asc" not in paths
    # coreutils agrees with every line
    subprocess.run(["sha256sum", "-c", "--strict", "--quiet", "SHA256SUMS"], cwd=root, check=True)
    manifest = json.loads((root / "bundle.json").read_text())
    assert manifest["format"] == 2 and manifest["cluster"] == "lab"
    assert manifest["cluster_id"] == CLUSTER_ID and manifest["serial"] == 7
    assert sorted(ref for image in manifest["images"]["images"] for ref in image["refs"]) == sorted(REFS)
    assert sorted(manifest["nodes"]) == ["master1", "master2"]
    index = (root / "images/index.txt").read_text().splitlines()
    assert sorted(line.split()[1] for line in index) == sorted(REFS)


def test_tar_is_reproducible(
    tmp_path: Path,
    gpg_keys: Keys,
    images_tar: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    inputs = PackInput("lab", images_tar, cluster_id=CLUSTER_ID)
    first = pack_bundle(tmp_path / "a", DOCUMENTS, inputs, gpg_keys.trusted.signer())
    old_umask = os.umask(0o077)  # a stricter umask must not change a byte
    try:
        second = pack_bundle(tmp_path / "b", DOCUMENTS, inputs, gpg_keys.trusted.signer())
    finally:
        os.umask(old_umask)
    # without SOURCE_DATE_EPOCH the signature is made now: only the bytes of SHA256SUMS.asc may differ
    a, b = first.tarball.read_bytes(), second.tarball.read_bytes()
    with tarfile.open(first.tarball) as tar:
        members = tar.getmembers()
        asc = tar.getmember("lab/SHA256SUMS.asc")
    assert len(a) == len(b)
    assert all(asc.offset_data <= i < asc.offset_data + asc.size for i in range(len(a)) if a[i] != b[i])
    assert [m.name for m in members][:3] == ["lab", "lab/SHA256SUMS", "lab/SHA256SUMS.asc"]
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "root")}
    assert not any(m.pax_headers for m in members)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1900000000")
    third = pack_bundle(tmp_path / "c", DOCUMENTS, inputs, gpg_keys.trusted.signer())
    with tarfile.open(third.tarball) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1900000000}
    fourth = pack_bundle(tmp_path / "d", DOCUMENTS, inputs, gpg_keys.trusted.signer())
    assert third.tarball.read_bytes() == fourth.tarball.read_bytes() != first.tarball.read_bytes()
    assert verify_bundle(third.tarball, gpg_keys.trusted.public).signed_at == 1900000000


def test_repack_replaces_and_leaves_no_temp(packed: PackResult, gpg_keys: Keys, images_tar: Path) -> None:
    docs = {**DOCUMENTS, "master3": DOCUMENTS["master1"]}
    again = pack_bundle(
        packed.directory.parent, docs, PackInput("lab", images_tar, name="lab"), gpg_keys.trusted.signer()
    )
    assert (again.directory / "nodes/master3/user-data").is_file()
    assert sorted(p.name for p in packed.directory.parent.iterdir()) == ["lab", "lab.tar"]
    assert verify_bundle(again.tarball, gpg_keys.trusted.public).ok


def test_interrupted_pack_leaves_nothing(tmp_path: Path, gpg_keys: Keys, images_tar: Path) -> None:
    def progress(description: str, total: int) -> Callable[[int], None]:
        def advance(n: int) -> None:
            if description == "write tar":
                raise KeyboardInterrupt

        return advance

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        pack_bundle(out, DOCUMENTS, PackInput("lab", images_tar), gpg_keys.trusted.signer(), progress)
    assert list(out.iterdir()) == []


def test_bad_pack_inputs(tmp_path: Path, gpg_keys: Keys, images_tar: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        pack_bundle(
            tmp_path,
            {"../evil": DOCUMENTS["master1"]},
            PackInput("lab", images_tar),
            gpg_keys.trusted.signer(),
        )
    assert "'../evil' is not a valid name" in str(info.value.problems[0])
    with pytest.raises(InvalidInput) as info:
        pack_bundle(
            tmp_path,
            {"m1": {"user-data": b""}},
            PackInput("lab", tmp_path / "none.tar"),
            gpg_keys.trusted.signer(),
        )
    assert [p.message for p in info.value.problems] == ["missing meta-data", "no such file"]
    assert list(tmp_path.iterdir()) == []


def test_memory_is_flat_in_image_size(tmp_path: Path, gpg_keys: Keys) -> None:
    images = tmp_path / "big.tar"
    make_docker_archive(images, layer_bytes=48 << 20)
    tracemalloc.start()
    try:
        result = pack_bundle(tmp_path / "out", DOCUMENTS, PackInput("lab", images), gpg_keys.trusted.signer())
        report = verify_bundle(result.tarball, gpg_keys.trusted.public)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.ok
    assert peak < 8 << 20, f"peak Python allocations {peak} bytes for a ~96 MiB image archive"


def test_sums_format() -> None:
    text = format_sums({"b": "1" * 64, "B": "2" * 64, "a/c": "3" * 64})
    assert text == f"{'2' * 64}  B\n{'3' * 64}  a/c\n{'1' * 64}  b\n".encode()
    assert parse_sums(text) == {"b": "1" * 64, "B": "2" * 64, "a/c": "3" * 64}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"abc  x\n", "SHA256SUMS:1: malformed or unsafe line"),
        (b"0" * 64 + b" x\n", "SHA256SUMS:1: malformed"),
        (b"0" * 64 + b"  ../x\n", "SHA256SUMS:1: malformed or unsafe line"),
        (b"0" * 64 + b"  /etc/passwd\n", "SHA256SUMS:1: malformed or unsafe line"),
        (b"0" * 64 + b"  x\n" + b"1" * 64 + b"  x\n", "SHA256SUMS:2: duplicate entry for x"),
        (b"", "SHA256SUMS: empty"),
    ],
)
def test_parse_sums_refuses(text: bytes, message: str) -> None:
    with pytest.raises(ChecksumError, match=message.replace(".", r"\.")):
        parse_sums(text)


# ---------------------------------------------------------------------------------------------- tamper suite


def _flip(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset if offset >= 0 else len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _resign_with(key_home: Path, fpr: str) -> Callable[[Path], None]:
    def tamper(root: Path) -> None:
        from kubeha.bundle.signing import Signer

        (root / "SHA256SUMS.asc").write_bytes(Signer(key_home, fpr).sign_detached(root / "SHA256SUMS"))

    return tamper


TAMPERS: dict[str, tuple[Callable[[Path], None] | str, int, str]] = {
    "bit in image": (lambda r: _flip(r / IMAGES_TAR), 3, "checksum mismatch: images/images.tar"),
    "bit in user-data": (
        lambda r: _flip(r / "nodes/master1/user-data"),
        3,
        "checksum mismatch: nodes/master1/user-data",
    ),
    "bit in SHA256SUMS": (lambda r: _flip(r / "SHA256SUMS", 3), 4, "SHA256SUMS.asc: BADSIG"),
    "bit in signature": (lambda r: _flip(r / "SHA256SUMS.asc", 100), 4, "SHA256SUMS.asc: "),
    "truncated image": (
        lambda r: (r / IMAGES_TAR).write_bytes((r / IMAGES_TAR).read_bytes()[:-512]),
        3,
        "size differs: images/images.tar: 30208 bytes, signed size 30720 (nothing read past the signed files)",
    ),
    "extra file": (lambda r: (r / "nodes/master1/evil").write_text("x"), 3, "extra: nodes/master1/evil"),
    "missing file": (
        lambda r: (r / "nodes/master2/meta-data").unlink(),
        3,
        "missing: nodes/master2/meta-data",
    ),
    "other key": ("other", 4, "signed by unknown key"),
    "unsigned": (
        lambda r: (r / "SHA256SUMS.asc").unlink(),
        4,
        "SHA256SUMS.asc is missing: nothing in this bundle is signed",
    ),
    "no sums": (
        lambda r: (r / "SHA256SUMS").unlink(),
        4,
        "SHA256SUMS is missing: nothing in this bundle is signed",
    ),
}


def _tampered(packed: PackResult, name: str, keys: Keys) -> Path:
    how = TAMPERS[name][0]
    tamper = _resign_with(keys.other.home, keys.other.fingerprint) if how == "other" else how
    assert callable(tamper)
    tamper(packed.directory)
    return packed.directory


def _check(report: VerifyReport, code: int, message: str) -> None:
    assert report.exit_code == code, report.errors
    assert any(message in error for error in report.errors), report.errors


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_directory_is_refused(packed: PackResult, gpg_keys: Keys, name: str) -> None:
    root = _tampered(packed, name, gpg_keys)
    _, code, message = TAMPERS[name]
    _check(verify_bundle(root, gpg_keys.trusted.public), code, message)


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_tar_is_refused(packed: PackResult, gpg_keys: Keys, tmp_path: Path, name: str) -> None:
    root = _tampered(packed, name, gpg_keys)
    tar = tmp_path / "tampered.tar"
    write_tar(root, "lab", tar, 0)
    _, code, message = TAMPERS[name]
    _check(verify_bundle(tar, gpg_keys.trusted.public), code, message)


def _evil_tar(packed: PackResult, path: Path, member: tarfile.TarInfo) -> None:
    """The good bundle tar plus one hostile member appended."""
    shutil.copy(packed.tarball, path)
    with tarfile.open(path, "a") as tar:
        tar.addfile(member, io.BytesIO(b"owned\n") if member.isreg() else None)


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    """A tar header of the given kind (the hostile-tar tables here and in the node-install test)."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 6 if kind == tarfile.REGTYPE else 0
    info.mode = 0o644
    return info


HOSTILE = {
    "dotdot": (tar_member("lab/../../escaped"), "lab/../../escaped: absolute, '..' or unsafe path refused"),
    "absolute": (
        tar_member("/tmp/kubeha-escaped"),
        "/tmp/kubeha-escaped: absolute, '..' or unsafe path refused",
    ),
    "symlink": (tar_member("lab/nodes/link", tarfile.SYMTYPE, "/etc/shadow"), "lab/nodes/link: symlink refused"),
    "hardlink": (
        tar_member("lab/nodes/hard", tarfile.LNKTYPE, "/etc/shadow"),
        "lab/nodes/hard: hardlink refused",
    ),
    "device": (tar_member("lab/nodes/dev", tarfile.CHRTYPE), "lab/nodes/dev: device or special file refused"),
    "other top": (tar_member("elsewhere/x"), "elsewhere/x: outside the bundle directory lab/"),
    "duplicate": (tar_member("lab/SHA256SUMS"), "lab/SHA256SUMS: duplicate member refused"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_tar_refused_before_extraction(
    packed: PackResult,
    gpg_keys: Keys,
    tmp_path: Path,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    member, message = HOSTILE[name]
    evil = tmp_path / "evil.tar"
    _evil_tar(packed, evil, member)
    before = sorted(p.name for p in tmp_path.iterdir())
    report = verify_bundle(evil, gpg_keys.trusted.public)
    _check(report, 3, message)
    assert report.errors[0].startswith("unsafe bundle, nothing read: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before and list(work.iterdir()) == []
    assert not Path("/tmp/kubeha-escaped").exists()


def test_not_a_tar(tmp_path: Path, gpg_keys: Keys) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00garbage" * 100)
    _check(verify_bundle(junk, gpg_keys.trusted.public), 3, "not a readable plain tar")


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_verify_ok_and_json(packed: PackResult, gpg_keys: Keys) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(packed.tarball), "--keyring", str(gpg_keys.trusted.public)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"OK {packed.tarball}: cluster lab ({CLUSTER_ID}) serial 7, signature by "
                             f"{gpg_keys.trusted.fingerprint}, 8 files match\n")
    result = runner.invoke(app, ["verify", str(packed.directory), "--keyring", str(gpg_keys.trusted.public), "--json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and data["ok"] is True and data["command"] == "bundle verify"
    assert data["result"]["files"] == 8 and data["result"]["missing"] == []


def test_cli_verify_failures(packed: PackResult, gpg_keys: Keys) -> None:
    runner = CliRunner()
    (packed.directory / "nodes/master1/evil").write_text("x")
    _flip(packed.directory / IMAGES_TAR)
    result = runner.invoke(app, ["verify", str(packed.directory), "--keyring", str(gpg_keys.trusted.public)])
    assert result.exit_code == 3
    assert result.stderr == (
        "kubeha: error: extra: nodes/master1/evil (nothing read past the signed files)\n"
        f"kubeha: FAILED {packed.directory}: checksum verification failed\n"
    )
    result = runner.invoke(app, ["verify", str(packed.directory), "--keyring", str(gpg_keys.other.public), "--json"])
    assert result.exit_code == 4
    data = json.loads(result.stdout)
    assert data["ok"] is False and "signed by unknown key" in data["errors"][0]["message"]
    result = runner.invoke(app, ["verify", str(packed.directory / "nope"), "--keyring", str(gpg_keys.trusted.public)])
    assert result.exit_code == 1
    assert result.stderr == (f"{packed.directory / 'nope'}: error: bundle: no such file or directory\n"
                             "kubeha: 1 error(s), 0 warning(s)\n")


def test_cli_help() -> None:
    runner = CliRunner()
    for args in (["--help"], ["pack", "--help"], ["verify", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.stdout


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """examples/cluster.yaml copied, so the VRRP secret made beside it stays out of the repo."""
    path = tmp_path / "cluster.yaml"
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "cluster.yaml", path)
    return path


def test_cli_pack_from_inventory(
    inventory: Path, images_tar: Path, gpg_keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(time.time())))
    runner = CliRunner()
    key = gpg_keys.trusted
    out = tmp_path / "bundles"
    args = ["pack", str(inventory), "--images", str(images_tar), "--sign-key", key.fingerprint]
    args += ["--gnupghome", str(key.home), "-o", str(out), "--name", "demo"]
    result = runner.invoke(app, [*args, "--bundle-source", "https://198.18.0.10/b/demo.tar", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["result"]
    assert data["signer"] == key.fingerprint and data["tarball"] == str(out / "demo.tar")
    assert data["tar_bytes"] == (out / "demo.tar").stat().st_size
    master = (out / "demo/nodes/master1/user-data").read_text()
    assert "/usr/local/sbin/kubeha-install" in master and "KUBEHA_BUNDLE=https://198.18.0.10/b/demo.tar" in master
    assert key.public.read_text().split("\n\n")[1][:40] in master  # the public key rides in the user-data
    manifest = json.loads((out / "demo/bundle.json").read_text())
    assert manifest["install"] == {"runtime": "containerd", "source": "https://198.18.0.10/b/demo.tar"}
    assert sorted(manifest["nodes"]) == ["master1", "master2", "master3", "worker1", "worker2"]
    assert data["serial"] == 1 and manifest["serial"] == 1 and len(manifest["cluster_id"]) == 32
    cid = inventory.with_name("cluster.yaml.cluster-id")
    assert cid.read_text() == manifest["cluster_id"] + "\n" and cid.stat().st_mode & 0o777 == 0o600
    assert f"KUBEHA_CLUSTER_ID={manifest['cluster_id']}" in master and "KUBEHA_MIN_SERIAL=1" in master
    assert f"KUBEHA_KEY_FPR={key.fingerprint}" in master
    # the same inputs (serial 1 again, same SOURCE_DATE_EPOCH): byte-identical tar
    first = (out / "demo.tar").read_bytes()
    again = runner.invoke(app, [*args, "--bundle-source", "https://198.18.0.10/b/demo.tar", "--serial", "1"])
    assert again.exit_code == 0 and (out / "demo.tar").read_bytes() == first
    # without --serial: one more than the last; a lower one is refused
    third = runner.invoke(app, [*args, "--bundle-source", "https://198.18.0.10/b/demo.tar", "--json"])
    assert third.exit_code == 0 and json.loads(third.stdout)["result"]["serial"] == 2
    lower = runner.invoke(app, [*args, "--serial", "1"])
    assert lower.exit_code == 1 and "1 is lower than the last packed serial 2" in lower.stderr
    verified = runner.invoke(app, ["verify", str(out / "demo.tar"), "--keyring", str(key.public)])
    assert verified.exit_code == 0 and verified.stdout.startswith("OK ")


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--runtime", "podman"], 2, "Error: Invalid value for '--runtime': Value error, 'podman' is not one of "
                                     "'containerd', 'docker'.\n"),
        (["--sign-key", "nobody@kubeha.invalid"], 1, "kubeha: error: no secret key matching 'nobody@kubeha.invalid' in "),
        (["--gnupghome", "/nonexistent"], 1, "kubeha: error: GnuPG home /nonexistent does not exist; nothing written\n"),
        (["--bundle-source", "relative/path"], 1, "is not cidata, label:LABEL, an absolute path or an http(s) URL\n"),
    ],
)
def test_cli_pack_bad_input(
    inventory: Path, images_tar: Path, gpg_keys: Keys, tmp_path: Path, extra: list[str], code: int, message: str
) -> None:
    key = gpg_keys.trusted
    args = ["pack", str(inventory), "--images", str(images_tar), "--sign-key", key.fingerprint]
    args += ["--gnupghome", str(key.home), "-o", str(tmp_path / "out"), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------------------------------------- node side


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: apt-get install -y {package}")
    return path


def test_install_script_is_static_and_lints(tmp_path: Path) -> None:
    from kubeha.render import render_template, templates_dir

    script = render_template("/usr/local/sbin/kubeha-install", {})
    assert script == (templates_dir() / "usr/local/sbin/kubeha-install.j2").read_text()  # no Jinja in it
    assert script.startswith("#!/bin/sh\n# Generated by kubeha from templates/usr/local/sbin/kubeha-install.j2")
    path = tmp_path / "kubeha-install"
    path.write_text(script)
    for shell, package in (("dash", "dash"), ("bash", "bash")):
        subprocess.run([_tool(shell, package), "-n", str(path)], check=True)
    lint = subprocess.run([_tool("shellcheck", "shellcheck"), "-s", "sh", str(path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def test_install_unit_verifies(tmp_path: Path) -> None:
    from kubeha.render import render_template

    unit = render_template("/etc/systemd/system/kubeha-install.service", {"script": "/usr/local/sbin/kubeha-install"})
    assert "Type=oneshot" in unit and "RemainAfterExit=yes" in unit
    assert "After=" in unit and "containerd.service" in unit and "Before=kubelet.service" in unit
    script = tmp_path / "kubeha-install"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    (tmp_path / "kubeha-install.service").write_text(unit.replace("/usr/local/sbin/kubeha-install", str(script)))
    result = subprocess.run(
        [_tool("systemd-analyze", "systemd"), "verify", str(tmp_path / "kubeha-install.service")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "kubeha-install.service" not in result.stderr, result.stderr


def test_cli_pack_refuses_a_non_archive(inventory: Path, gpg_keys: Keys, tmp_path: Path) -> None:
    junk = tmp_path / "images.tar"
    junk.write_bytes(b"not a tar at all" * 64)
    key = gpg_keys.trusted
    args = ["pack", str(inventory), "--images", str(junk), "--sign-key", key.fingerprint]
    result = CliRunner().invoke(app, [*args, "--gnupghome", str(key.home), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"kubeha: error: {junk}") and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_cli_verify_hostile_tar_exact_stderr(packed: PackResult, gpg_keys: Keys, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    _evil_tar(packed, evil, tar_member("lab/nodes/link", tarfile.SYMTYPE, "/etc/shadow"))
    result = CliRunner().invoke(app, ["verify", str(evil), "--keyring", str(gpg_keys.trusted.public)])
    assert result.exit_code == 3
    assert result.stderr == (
        "kubeha: error: unsafe bundle, nothing read: lab/nodes/link: symlink refused\n"
        f"kubeha: FAILED {evil}: checksum verification failed\n"
    )
    assert result.stdout == ""


def test_per_node_subset(packed: PackResult, gpg_keys: Keys) -> None:
    """A master's share of a bundle (as on its seed ISO) verifies for that master only."""
    shutil.rmtree(packed.directory / "nodes/master2")
    assert verify_bundle(packed.directory, gpg_keys.trusted.public, expect=Expect(node="master1")).ok
    report = verify_bundle(packed.directory, gpg_keys.trusted.public)
    assert report.exit_code == 3 and report.missing == ["nodes/master2/meta-data", "nodes/master2/user-data"]
    report = verify_bundle(packed.directory, gpg_keys.trusted.public, expect=Expect(node="master2"))
    assert report.exit_code == 3 and report.missing == ["nodes/master2/meta-data", "nodes/master2/user-data"]
