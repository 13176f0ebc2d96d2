"""Unit tests for kubeha.bundle.images and ``kubeha image``: archives made here by hand, no engine needed."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha.bundle import images
from kubeha.bundle.archive import sha256_file as archive_sha256
from kubeha.cli.image import app

runner = CliRunner()


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_archive(path: Path, layout: str = "legacy", tamper: bool = False) -> dict[str, object]:
    """Write a two-image docker-archive sharing a base layer, as ``docker save`` 20.10 (legacy) or 25+ (oci)
    lays it out; return what the archive should be read as."""
    base, app_a, app_b = _layer({"etc/os": b"base\n"}), _layer({"a": b"A" * 100}), _layer({"b": b"B" * 300})
    blobs = {"base": base, "a": app_a, "b": app_b}
    configs = {}
    for name, layers in (("ka", ["base", "a"]), ("hp", ["base", "b"])):
        configs[name] = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": [_digest(blobs[x]) for x in layers]},
        }, sort_keys=True).encode()

    def layer_path(key: str) -> str:
        hexdigest = hashlib.sha256(blobs[key]).hexdigest()
        return f"blobs/sha256/{hexdigest}" if layout == "oci" else f"{hexdigest[:12]}/layer.tar"

    def config_path(name: str) -> str:
        hexdigest = hashlib.sha256(configs[name]).hexdigest()
        return f"blobs/sha256/{hexdigest}" if layout == "oci" else f"{hexdigest}.json"

    manifest = [
        {"Config": config_path("ka"), "RepoTags": ["kubeha.local/keepalived:2.3.3"],
         "Layers": [layer_path("base"), layer_path("a")]},
        {"Config": config_path("hp"), "RepoTags": ["kubeha.local/haproxy:3.0.11"],
         "Layers": [layer_path("base"), layer_path("b")]},
    ]
    with tarfile.open(path, "w") as tar:
        for key, data in blobs.items():
            _add(tar, layer_path(key), b"X" * len(data) if tamper and key == "b" else data)
        for name, data in configs.items():
            _add(tar, config_path(name), data)
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    return {
        "ids": [_digest(configs["ka"]), _digest(configs["hp"])],
        "layers": [[_digest(base), _digest(app_a)], [_digest(base), _digest(app_b)]],
        "sizes": [len(base) + len(app_a), len(base) + len(app_b)],
    }


@pytest.mark.parametrize("layout", ["legacy", "oci"])
def test_inspect_archive_reads_refs_ids_layers_and_sizes(tmp_path: Path, layout: str) -> None:
    archive = tmp_path / "images.tar"
    expected = make_archive(archive, layout)
    infos = images.inspect_archive(archive)
    assert [i.refs for i in infos] == [("kubeha.local/keepalived:2.3.3",), ("kubeha.local/haproxy:3.0.11",)]
    assert [i.image_id for i in infos] == expected["ids"]
    assert [list(i.layers) for i in infos] == expected["layers"]
    assert [i.size for i in infos] == expected["sizes"]
    assert {(i.os, i.architecture, i.created) for i in infos} == {("linux", "amd64", "2026-01-01T00:00:00Z")}
    assert images.verify_archive(archive) == []


def test_verify_archive_detects_a_changed_layer(tmp_path: Path) -> None:
    archive = tmp_path / "images.tar"
    make_archive(archive, tamper=True)
    problems = images.verify_archive(archive)
    assert len(problems) == 1 and "does not match" in problems[0]


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    (b"not a tar at all" * 100, "not a readable tar archive"),
    ({"other.txt": b"x"}, "not a docker-archive: missing manifest.json"),
    ({"manifest.json": b"{nope"}, "manifest.json: invalid JSON"),
    ({"manifest.json": b"{}"}, "manifest.json: expected a list"),
    ({"manifest.json": b'[{"Layers": []}]'}, "entry without a Config"),
    ({"manifest.json": b'[{"Config": "c.json", "Layers": []}]'}, "missing c.json"),
    ({"manifest.json": b'[{"Config": "c.json", "Layers": ["l/layer.tar"]}]', "c.json": b"{}"},
     "layer(s) named in manifest.json are missing: l/layer.tar"),
])
def test_inspect_archive_rejects_broken_input(tmp_path: Path, content: object, message: str) -> None:
    archive = tmp_path / "bad.tar"
    if isinstance(content, bytes):
        archive.write_bytes(content)
    elif isinstance(content, dict):
        with tarfile.open(archive, "w") as tar:
            for name, data in content.items():
                _add(tar, name, data)
    with pytest.raises(images.ImageError) as caught:
        images.inspect_archive(archive)
    assert str(caught.value).startswith(str(archive)) and message in str(caught.value)


def test_cli_inspect_prints_refs_and_layers(tmp_path: Path) -> None:
    archive = tmp_path / "images.tar"
    expected = make_archive(archive)
    result = runner.invoke(app, ["inspect", str(archive)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "kubeha.local/keepalived:2.3.3"
    assert lines[1] == f"  id:     {expected['ids'][0]}"  # type: ignore[index]
    assert lines.count(f"  layer:  {expected['layers'][0][0]}") == 2  # type: ignore[index]


def test_cli_inspect_json_and_verify(tmp_path: Path) -> None:
    archive = tmp_path / "images.tar"
    make_archive(archive)
    result = runner.invoke(app, ["inspect", "--json", "--verify", str(archive)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["images"] == [i.to_dict() for i in images.inspect_archive(archive)]


def test_cli_inspect_verify_fails_with_checksum_code(tmp_path: Path) -> None:
    archive = tmp_path / "images.tar"
    make_archive(archive, tamper=True)
    result = runner.invoke(app, ["inspect", "--verify", str(archive)])
    assert result.exit_code == 3
    assert "does not match" in result.stderr


def test_cli_inspect_bad_archive_exits_1_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path / "missing.tar")])
    assert result.exit_code == 1
    assert result.stderr == f"kubeha: error: {tmp_path / 'missing.tar'}: no such file\n"


@pytest.mark.parametrize("command", [["build"], ["save", "-o", "x.tar"]])
def test_unreachable_daemon_names_the_socket(tmp_path: Path, command: list[str]) -> None:
    sock = tmp_path / "nothing-here.sock"
    result = runner.invoke(app, [*command, "--docker-host", f"unix://{sock}"])
    assert result.exit_code == 1
    assert f"cannot reach a Docker daemon at unix://{sock}" in result.stderr
    assert "DOCKER_HOST" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_daemon_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/env.sock")
    result = runner.invoke(app, ["save", "-o", str(tmp_path / "x.tar")])
    assert result.exit_code == 1
    assert f"at unix://{tmp_path}/env.sock" in result.stderr


def test_build_rejects_unknown_image_names() -> None:
    result = runner.invoke(app, ["build", "nginx"])
    assert result.exit_code == 2
    assert result.stderr == "kubeha: error: unknown image(s) nginx: choose from keepalived, haproxy\n"


@pytest.mark.parametrize(("ref", "message"), [
    ("keepalived:2.3.3", "is not fully qualified"),
    ("osixia/keepalived:2.0.20", "is not fully qualified"),
    ("kubeha.local/keepalived", "has no tag"),
])
def test_save_rejects_refs_kubelet_would_not_find(ref: str, message: str) -> None:
    with pytest.raises(images.ImageError, match=message):
        images.save_images(object(), [ref], Path("unused.tar"))


def test_fully_qualified_refs_pass() -> None:
    refs = ["kubeha.local/keepalived:2.3.3", "localhost/x:1", "registry:5000/a/b:2", "docker.io/library/c@sha256:ab"]
    assert images.normalise_refs([*refs, refs[0]]) == refs


def test_default_refs_are_fully_qualified_and_match_specs() -> None:
    assert images.DEFAULT_REFS == ("kubeha.local/keepalived:2.3.3", "kubeha.local/haproxy:3.0.11")
    assert [s.ref for s in images.IMAGES.values()] == list(images.DEFAULT_REFS)
    for spec in images.IMAGES.values():
        assert spec.ref.endswith(":" + spec.version)


def test_dockerfiles_take_the_base_and_version_as_arguments() -> None:
    for spec in images.IMAGES.values():
        text = (images.default_docker_dir() / spec.name / "Dockerfile").read_text()
        assert "ARG BASE_IMAGE=debian:trixie-slim\nFROM ${BASE_IMAGE}\n" in text
        assert f"ARG VERSION={spec.version}\n" in text
        assert "--no-install-recommends" in text and "rm -rf /var/lib/apt/lists/*" in text


def test_follow_build_reports_only_the_failing_step() -> None:
    stream = [
        {"stream": "Step 1/3 : FROM base\n"}, {"stream": " ---> abc\n"},
        {"stream": "Step 2/3 : RUN ok\n"}, {"stream": "fine\n"},
        {"stream": "Step 3/3 : RUN broken\n"}, {"stream": "boom: no such file\n"},
        {"error": "The command '/bin/sh -c broken' returned a non-zero code: 2", "errorDetail": {}},
    ]
    seen: list[str] = []
    with pytest.raises(images.ImageError) as caught:
        images._follow_build(iter(stream), images.IMAGES["haproxy"], seen.append)
    message = str(caught.value)
    assert message.startswith("building kubeha.local/haproxy:3.0.11 failed: The command")
    assert "Step 3/3 : RUN broken\nboom: no such file" in message and "fine" not in message
    assert "".join(seen).count("Step") == 3


def test_follow_build_returns_the_image_id() -> None:
    stream = [{"stream": "Step 1/1 : FROM base\n"}, {"aux": {"ID": "sha256:abc"}}, {"stream": "Successfully\n"}]
    assert images._follow_build(iter(stream), images.IMAGES["keepalived"], None) == "sha256:abc"


def test_write_atomically_leaves_nothing_on_failure(tmp_path: Path) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b"partial"
        raise OSError("connection reset")

    with pytest.raises(OSError):
        images._write_atomically(tmp_path / "images.tar", chunks(), None)
    assert list(tmp_path.iterdir()) == []


def test_save_result_metadata_document(tmp_path: Path) -> None:
    archive = tmp_path / "images.tar"
    make_archive(archive)
    result = images.SaveResult(archive, archive.stat().st_size, archive_sha256(archive),
                               images.inspect_archive(archive), 0.1)
    written = images.write_metadata(result)
    doc = json.loads(written.read_text())
    assert written == tmp_path / "images.json"
    assert doc["archive"] == "images.tar" and doc["format"] == "docker-archive"
    assert doc["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert [i["refs"] for i in doc["images"]] == [["kubeha.local/keepalived:2.3.3"], ["kubeha.local/haproxy:3.0.11"]]


def test_every_command_has_help() -> None:
    for command in ("build", "save", "inspect"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.stdout


def test_save_rejects_a_short_ref_before_contacting_docker(tmp_path: Path) -> None:
    result = runner.invoke(app, ["save", "-o", str(tmp_path / "x.tar"), "keepalived:2.3.3",
                                 "--docker-host", f"unix://{tmp_path}/none.sock"])
    assert result.exit_code == 1
    assert "'keepalived:2.3.3' is not fully qualified" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_refs_agree_with_the_static_pod_defaults() -> None:
    from kubeha import model

    assert (model.DEFAULT_KEEPALIVED_IMAGE, model.DEFAULT_HAPROXY_IMAGE) == images.DEFAULT_REFS
