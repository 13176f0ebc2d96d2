"""Unit tests for kubeha.deliver.ignition: structure, encodings, byte stability, bad input."""

from __future__ import annotations

import base64
import gzip
import json
import urllib.parse

import pytest

from kubeha.deliver.ignition import FIRST_BOOT_UNIT, dump, implied_directories, systemd_quote, to_ignition
from kubeha.errors import InvalidInput
from kubeha.files import NodeDocument, RenderedFile, SystemdUnit

KEEPALIVED = "".join(
    f"# kubeha: templates/keepalived.conf.j2\nvrrp_instance VI_{i} {{\n  state BACKUP\n  priority {100 - i}\n"
    "  authentication {\n    auth_type PASS\n    auth_pass s3cr3t\n  }\n}\n"
    for i in range(8)
)
CHECK = "#!/bin/sh\n# kubeha\ncurl --silent --fail --max-time 2 https://127.0.0.1:6444/readyz -k\n"
INSTALL_UNIT = (
    "[Unit]\nDescription=kubeha bundle install\nAfter=containerd.service\nBefore=kubelet.service\n"
    "[Service]\nType=oneshot\nExecStart=/opt/kubeha/install\n[Install]\nWantedBy=multi-user.target\n"
)


def sample_doc(**overrides: object) -> NodeDocument:
    fields: dict[str, object] = dict(
        name="master-1",
        hostname="master-1.lab",
        role="master",
        address="198.18.0.11",
        files=(
            RenderedFile("/etc/keepalived/keepalived.conf", KEEPALIVED, 0o600),
            RenderedFile("/etc/keepalived/check_apiserver.sh", CHECK, 0o755),
            RenderedFile("/etc/kubernetes/manifests/haproxy.yaml", "apiVersion: v1\nkind: Pod\n"),
        ),
        units=(SystemdUnit("kubeha-install.service", INSTALL_UNIT),),
    )
    fields.update(overrides)
    return NodeDocument(**fields)  # type: ignore[arg-type]


def decode(contents: dict[str, str]) -> bytes:
    source = contents["source"]
    if contents.get("compression") == "gzip":
        assert source.startswith("data:;base64,")
        return gzip.decompress(base64.b64decode(source.removeprefix("data:;base64,")))
    assert "compression" not in contents and source.startswith("data:,")
    return urllib.parse.unquote_to_bytes(source.removeprefix("data:,"))


def test_every_file_round_trips_with_mode_and_owner() -> None:
    doc = sample_doc()
    config = to_ignition(doc)
    assert config["ignition"] == {"version": "3.3.0"}
    files = {f["path"]: f for f in config["storage"]["files"]}
    assert set(files) == {f.path for f in doc.files} | {"/etc/hostname"}
    for rendered in doc.files:
        entry = files[rendered.path]
        assert decode(entry["contents"]) == rendered.content.encode()
        assert entry["mode"] == rendered.mode and isinstance(entry["mode"], int)
        assert entry["user"] == {"name": "root"} and entry["group"] == {"name": "root"}
        assert entry["overwrite"] is True
    assert decode(files["/etc/hostname"]["contents"]) == b"master-1.lab\n"


def test_gzip_only_where_it_saves_bytes() -> None:
    files = {f["path"]: f["contents"] for f in to_ignition(sample_doc())["storage"]["files"]}
    # The repetitive keepalived.conf compresses well; the two-line hostname would only grow.
    assert files["/etc/keepalived/keepalived.conf"]["compression"] == "gzip"
    assert "compression" not in files["/etc/hostname"]
    for contents in files.values():
        raw = decode(contents)
        plain = "data:," + urllib.parse.quote(raw, safe="")
        assert len(contents["source"]) <= len(plain)


def test_units_and_first_boot_unit() -> None:
    doc = sample_doc(first_boot=(("/opt/kubeha/install", "--from", "/media/my disk", "50%$HOME"),))
    units = {u["name"]: u for u in to_ignition(doc)["systemd"]["units"]}
    assert units["kubeha-install.service"] == {
        "name": "kubeha-install.service", "contents": INSTALL_UNIT, "enabled": True,
    }
    first = units[FIRST_BOOT_UNIT]["contents"]
    assert "After=network-online.target containerd.service\n" in first
    assert "Before=kubelet.service\n" in first
    assert 'ExecStart=/opt/kubeha/install --from "/media/my disk" "50%%$$HOME"\n' in first
    assert "Type=oneshot\n" in first


def test_first_boot_commands_an_enabled_unit_runs_are_not_repeated() -> None:
    # INSTALL_UNIT has ExecStart=/opt/kubeha/install: the cloud-init runcmd twin must not run twice.
    doc = sample_doc(first_boot=(("/opt/kubeha/install",), ("touch", "/var/lib/x")))
    units = {u["name"]: u["contents"] for u in to_ignition(doc)["systemd"]["units"]}
    assert "ExecStart=touch /var/lib/x\n" in units[FIRST_BOOT_UNIT]
    assert "/opt/kubeha/install" not in units[FIRST_BOOT_UNIT]
    only_install = sample_doc(first_boot=(("/opt/kubeha/install",),))
    assert [u["name"] for u in to_ignition(only_install)["systemd"]["units"]] == ["kubeha-install.service"]
    disabled = sample_doc(units=(SystemdUnit("kubeha-install.service", INSTALL_UNIT, enabled=False),),
                          first_boot=(("/opt/kubeha/install",),))
    assert FIRST_BOOT_UNIT in [u["name"] for u in to_ignition(disabled)["systemd"]["units"]]


def test_no_first_boot_unit_without_commands() -> None:
    names = [u["name"] for u in to_ignition(sample_doc())["systemd"]["units"]]
    assert names == ["kubeha-install.service"]


def test_directories_only_below_system_dirs() -> None:
    assert implied_directories(["/etc/kubernetes/manifests/a.yaml", "/etc/hostname", "/opt/kubeha/bin/x"]) == [
        "/etc/kubernetes", "/etc/kubernetes/manifests", "/opt/kubeha", "/opt/kubeha/bin",
    ]
    dirs = to_ignition(sample_doc())["storage"]["directories"]
    assert [d["path"] for d in dirs] == ["/etc/keepalived", "/etc/kubernetes", "/etc/kubernetes/manifests"]
    assert all(d["mode"] == 0o755 for d in dirs)


def test_owner_names_are_split() -> None:
    doc = sample_doc(files=(RenderedFile("/etc/kubeha/x", "x\n", 0o640, "core:wheel"),))
    entry = next(f for f in to_ignition(doc)["storage"]["files"] if f["path"] == "/etc/kubeha/x")
    assert entry["user"] == {"name": "core"} and entry["group"] == {"name": "wheel"}


def test_byte_stable_and_order_independent() -> None:
    doc = sample_doc()
    shuffled = sample_doc(files=tuple(reversed(doc.files)))
    assert dump(to_ignition(doc)) == dump(to_ignition(sample_doc())) == dump(to_ignition(shuffled))
    compact = dump(to_ignition(doc))
    assert compact.endswith("}\n") and "\n" not in compact[:-1]
    assert json.loads(dump(to_ignition(doc), indent=True)) == json.loads(compact)


@pytest.mark.parametrize(
    ("overrides", "version", "path", "message"),
    [
        ({}, "3.4.0", "version", "Ignition spec 3.4.0 is not one of"),
        ({"files": (RenderedFile("etc/x", "x"),)}, "3.3.0", "etc/x", "absolute and unique"),
        ({"files": (RenderedFile("/etc/x", "a"), RenderedFile("/etc/x", "b"))}, "3.3.0", "/etc/x", "unique"),
        ({"files": (RenderedFile("/etc/x", "a", owner="root"),)}, "3.3.0", "owner", "'user:group'"),
        ({"units": (SystemdUnit("a.service", "[Service]\nExecStart=/bin/true\n"),)}, "3.3.0", "a.service", "no [Install]"),
        (
            {"units": (SystemdUnit(FIRST_BOOT_UNIT, "[Install]\n"),), "first_boot": (("true",),)},
            "3.3.0", FIRST_BOOT_UNIT, "reserved",
        ),
    ],
)
def test_bad_input_is_refused(overrides: dict[str, object], version: str, path: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        to_ignition(sample_doc(**overrides), version=version)
    [problem] = caught.value.problems
    assert problem.path == path and message in problem.message


@pytest.mark.parametrize(
    ("word", "quoted"),
    [("plain-word_1.2/x:y", "plain-word_1.2/x:y"), ("a b", '"a b"'), ('q"\\', '"q\\"\\\\"'), ("%i", '"%%i"')],
)
def test_systemd_quote(word: str, quoted: str) -> None:
    assert systemd_quote(word) == quoted


def test_ignition_files_is_the_compact_dump() -> None:
    from kubeha.deliver.ignition import ignition_files

    files = ignition_files(sample_doc())
    assert files == {"config.ign": dump(to_ignition(sample_doc())).encode()}
    assert json.loads(files["config.ign"])["ignition"]["version"] == "3.3.0"
