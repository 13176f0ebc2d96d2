# ruff: noqa: F811 - fixtures imported from sibling modules are used as parameters
"""Property tests: ``kubeha bundle verify`` on mutated real bundle tars never says OK and never tracebacks.

The tar is a real packed bundle (throwaway key, small docker-archive). Mutations: a bit flip anywhere,
truncation at every 512-byte boundary, and inserted members (any name, size and position). The verdict must
be exit 3 or 4 with an ``error:`` line and a FAILED line, never exit 0, never a traceback.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kubeha.bundle import PackInput, PackResult, pack_bundle
from kubeha.bundle.tarsafe import header
from kubeha.cli.bundle import app
from test_bundle import CLUSTER_ID, DOCUMENTS, images_tar  # noqa: F401 - session fixture
from test_signing import Keys, gpg_keys  # noqa: F401 - session fixture


@pytest.fixture(scope="module")
def packed_tar(tmp_path_factory: pytest.TempPathFactory, gpg_keys: Keys, images_tar: Path) -> PackResult:
    out = tmp_path_factory.mktemp("mutations")
    inputs = PackInput("lab", images_tar, name="lab", cluster_id=CLUSTER_ID)
    return pack_bundle(out, DOCUMENTS, inputs, gpg_keys.trusted.signer())


def _verify(path: Path, keyring: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["verify", str(path), "--keyring", str(keyring)])
    return result.exit_code, result.stdout, result.stderr


def _assert_refused(path: Path, keyring: Path) -> None:
    code, out, err = _verify(path, keyring)
    assert code in (3, 4), (code, out, err)
    assert out == "" and err.startswith("kubeha: error: ") and "kubeha: FAILED " in err, err
    assert "Traceback" not in out + err


def test_unchanged_bundle_is_ok(packed_tar: PackResult, gpg_keys: Keys) -> None:
    assert _verify(packed_tar.tarball, gpg_keys.trusted.public)[0] == 0  # the mutations below start from OK


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=st.data())
def test_bit_flip_anywhere(packed_tar: PackResult, gpg_keys: Keys, tmp_path: Path, data: st.DataObject) -> None:
    original = packed_tar.tarball.read_bytes()
    offset = data.draw(st.integers(0, len(original) - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")
    mutated = bytearray(original)
    mutated[offset] ^= 1 << bit
    path = tmp_path / "flipped.tar"
    path.write_bytes(bytes(mutated))
    _assert_refused(path, gpg_keys.trusted.public)


def test_truncation_at_every_block_boundary(packed_tar: PackResult, gpg_keys: Keys, tmp_path: Path) -> None:
    original = packed_tar.tarball.read_bytes()
    path = tmp_path / "short.tar"
    for end in range(0, len(original), 512):
        path.write_bytes(original[:end])
        _assert_refused(path, gpg_keys.trusted.public)


def _raw_members(tar_bytes: bytes) -> list[bytes]:
    """The tar split into member records (header + data + padding), the end blocks dropped."""
    records, offset = [], 0
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar.getmembers():
            end = member.offset_data + member.size + (-member.size % 512)
            records.append(tar_bytes[member.offset:end])
            offset = end
    assert offset > 0
    return records


@SETTINGS
@given(
    name=st.sampled_from(["lab/evil", "lab/nodes/master1/extra", "lab/SHA256SUMS", "lab/bundle.json",
                          "lab/images/images.tar", "other/x", "lab/nodes", "lab/newdir"]),
    size=st.integers(0, 2048),
    position=st.integers(0, 20),
    is_dir=st.booleans(),
)
def test_inserted_member(packed_tar: PackResult, gpg_keys: Keys, tmp_path: Path, name: str, size: int,
                         position: int, is_dir: bool) -> None:
    """A member inserted with a header in kubeha's own canonical form (so only the meaning can give it away)."""
    records = _raw_members(packed_tar.tarball.read_bytes())
    size = 0 if is_dir else size
    record = header(name, 0o755 if is_dir else 0o644, size, 0, is_dir) + b"x" * size + bytes(-size % 512)
    records.insert(min(position, len(records)), record)
    body = b"".join(records) + bytes(1024)
    path = tmp_path / "inserted.tar"
    path.write_bytes(body + bytes(-len(body) % tarfile.RECORDSIZE))
    _assert_refused(path, gpg_keys.trusted.public)
