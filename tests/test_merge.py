"""Merging the user's user-data with kubeha's (kubeha.deliver.merge, userparts; --merge/--merge-dir on the CLI).

cloud-init itself decides what a merged MIME document means: its own part handler (Debian 12's cloud-init,
run by Debian's python3) merges every part and the result must equal the single-document form kubeha builds.
Each part of both forms passes cloud-init 22.4's and 25.x's schema checks.
"""

from __future__ import annotations

import email
import json
import subprocess
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeha.deliver import merge, userparts
from kubeha.errors import InvalidInput
from kubeha.files import NodeDocument, RenderedFile
from kubeha_test import EXAMPLES, run, staged_inventory
from test_targets import load_guest

BASE = """\
#cloud-config
users:
  - name: ops
    ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpsKeyForTestsOnly ops@example]
ca_certs:
  trusted:
    - |
      -----BEGIN CERTIFICATE-----
      MIIBtest
      -----END CERTIFICATE-----
write_files:
  - path: /etc/motd
    content: "hello\\n"
runcmd:
  - [sh, -c, "echo user > /root/user-ran"]
packages: [chrony]
"""
SCRIPT = "#!/bin/sh\necho script > /root/script-ran\n"
DOC = NodeDocument(
    "master-1", "master-1", "master", "198.18.0.11",
    (RenderedFile("/etc/kubeha/control-plane.env", "KUBEHA_VIP=198.18.0.10\n"),),
    first_boot=(("/usr/local/sbin/kubeha-install",),),
)
DEBIAN_PYTHON = "/usr/bin/python3"

# cloud-init's own cloud-config part handler over every part of a MIME user-data; prints the merged config.
CLOUD_INIT_MERGE = textwrap.dedent("""\
    import importlib.util, json, sys, tempfile, os
    from cloudinit import handlers, user_data
    from cloudinit.handlers.cloud_config import CloudConfigPartHandler
    out = os.path.join(tempfile.mkdtemp(), "cloud_config")
    class Paths:
        def get_ipath(self, name):
            return out
    msg = user_data.convert_string(sys.stdin.buffer.read())
    h = CloudConfigPartHandler(Paths())
    h.handle_part(None, handlers.CONTENT_START, None, None, None, None)
    for part in msg.walk():
        if part.is_multipart() or part.get_content_type() != "text/cloud-config":
            continue
        payload = part.get_payload(decode=True).decode()
        h.handle_part(None, "text/cloud-config", part.get_filename(), payload, None, dict(part.items()))
    h.handle_part(None, handlers.CONTENT_END, None, None, None, None)
    import yaml
    print(json.dumps(yaml.safe_load(open(out)), sort_keys=True, default=str))
""")


def cloud_init_merged(user_data: str) -> dict[str, Any]:
    proc = subprocess.run([DEBIAN_PYTHON, "-c", CLOUD_INIT_MERGE], input=user_data.encode(), capture_output=True,
                          check=False, timeout=60, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def parts_of(*docs: tuple[str, str]) -> list[userparts.Part]:
    return [p for name, text in docs for p in userparts.parse_user_data(name, text.encode())]


def mime_parts(user_data: str) -> list[tuple[str, str, dict[str, str]]]:
    msg = email.message_from_string(user_data)
    return [(p.get_content_type(), p.get_payload(decode=True).decode(), dict(p.items()))
            for p in msg.walk() if not p.is_multipart()]


def test_single_form_keeps_both_sides_in_order() -> None:
    text = merge.merged_user_data(DOC, parts_of(("base.yaml", BASE)))
    assert merge.kind_of(text.encode()) == "cloud-config"
    data = yaml.safe_load(text)
    assert [f["path"] for f in data["write_files"]] == ["/etc/motd", "/etc/kubeha/control-plane.env"]
    assert data["runcmd"] == [["sh", "-c", "echo user > /root/user-ran"], ["/usr/local/sbin/kubeha-install"]]
    assert data["users"][0]["name"] == "ops"
    assert data["ca_certs"]["trusted"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert data["packages"] == ["chrony"]


def test_single_form_equals_what_cloud_init_makes_of_the_mime_form() -> None:
    parts = parts_of(("base.yaml", BASE), ("extra.yaml", "#cloud-config\nruncmd: [[touch, /root/extra]]\n"))
    all_parts = [*parts, merge.kubeha_part(DOC)]
    single = yaml.safe_load(merge.single_document(DOC.name, all_parts))
    assert cloud_init_merged(merge.mime_document(DOC.name, all_parts)) == json.loads(json.dumps(single))


def test_cloud_init_default_concatenation_loses_lists() -> None:
    """Why the headers exist: without them cloud-init keeps only the last part's runcmd."""
    all_parts = [*parts_of(("base.yaml", BASE)), merge.kubeha_part(DOC)]
    bare = merge.mime_document(DOC.name, all_parts).replace(f"Merge-Type: {merge.MERGE_TYPE}\n", "")
    assert cloud_init_merged(bare)["runcmd"] == [["/usr/local/sbin/kubeha-install"]]


def test_script_part_forces_mime_with_scripts_named_before_runcmd() -> None:
    text = merge.merged_user_data(DOC, parts_of(("base.yaml", BASE), ("zz-early.sh", SCRIPT)))
    assert merge.kind_of(text.encode()) == "mime"
    parts = mime_parts(text)
    assert [(c, h.get("Merge-Type")) for c, _, h in parts] == [
        ("text/cloud-config", merge.MERGE_TYPE), ("text/x-shellscript", None), ("text/cloud-config", merge.MERGE_TYPE)]
    assert parts[1][1] == SCRIPT
    script_name = email.message_from_string(text).get_payload()[1].get_filename()
    assert script_name == "02-zz-early.sh" and script_name < "runcmd"


def test_output_is_byte_stable() -> None:
    parts = parts_of(("base.yaml", BASE), ("early.sh", SCRIPT))
    assert merge.merged_user_data(DOC, parts) == merge.merged_user_data(DOC, parts_of(("base.yaml", BASE),
                                                                                        ("early.sh", SCRIPT)))


def test_user_mime_input_keeps_its_own_merge_type() -> None:
    user = merge.mime_document("x", [*parts_of(("a.yaml", "#cloud-config\nruncmd: [[true]]\n"))])
    user = user.replace(f"Merge-Type: {merge.MERGE_TYPE}", "Merge-Type: list(prepend)+dict(recurse_array)+str()")
    parts = parts_of(("user.mime", user))
    assert [(p.source, p.merge_type) for p in parts] == [("user.mime[1]", "list(prepend)+dict(recurse_array)+str()")]
    assert merge.kind_of(merge.merged_user_data(DOC, parts).encode()) == "mime"


def test_gzipped_input_is_read() -> None:
    import gzip

    parts = userparts.parse_user_data("base.yaml.gz", gzip.compress(BASE.encode(), mtime=0))
    assert parts[0].config["packages"] == ["chrony"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("#cloud-config\nwrite_files: [\n", 3, "not valid YAML"),
        ("#cloud-config\n- a\n- b\n", 1, "must be a mapping"),
        ("#cloud-config\nwrite_files:\n  - content: x\n", 3, "each entry needs a path"),
        ("plain text\n", 1, "unsupported user-data (its first line)"),
        ("## template: jinja\n#cloud-config\n", 1, "unsupported user-data"),
        ("MIME-Version: 1.0\nContent-Type: text/x-include-url\n\nhttp://198.18.0.1/x\n", 1,
         "unsupported user-data (MIME type text/x-include-url)"),
    ],
)
def test_bad_user_data_is_refused_with_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        userparts.parse_user_data("user.yaml", text.encode())
    problem = exc.value.problems[0]
    assert problem.location.line == line and message in problem.message, str(problem)
    assert problem.location.file.startswith("user.yaml")


@pytest.mark.parametrize(
    ("docs", "expected"),
    [
        ([("a.yaml", "#cloud-config\nwrite_files:\n- path: /etc/kubeha/control-plane.env\n  content: x\n")],
         ["a.yaml:3: error: write_files: /etc/kubeha/control-plane.env is written by both a.yaml and kubeha (master-1)"]),
        ([("a.yaml", "#cloud-config\nwrite_files:\n- path: /etc/x\n"),
          ("b.yaml", "#cloud-config\n\nwrite_files:\n- {path: /etc/x}\n")],
         ["a.yaml:3: error: write_files: /etc/x is written by both a.yaml and b.yaml"]),
    ],
)
def test_a_path_written_twice_names_both_sources(docs: list[tuple[str, str]], expected: list[str]) -> None:
    with pytest.raises(InvalidInput) as exc:
        merge.merged_user_data(DOC, parts_of(*docs))
    assert [str(p) for p in exc.value.problems] == expected


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["runcmd", "users", "bootcmd", "ntp", "x"]), json_values,
                                max_size=3), min_size=1, max_size=3))
def test_merge_config_matches_cloud_init_mergers(configs: list[dict[str, Any]]) -> None:
    """The single form's merge rules are cloud-init's own (its mergers module as the reference)."""
    script = ("import importlib.util, json, sys\nfrom cloudinit import mergers\n"
              "m = mergers.construct(mergers.string_extract_mergers(sys.argv[1]))\nbuf = {}\n"
              "for c in json.load(sys.stdin):\n    buf = m.merge(buf, c)\nprint(json.dumps(buf, sort_keys=True))\n")
    proc = subprocess.run([DEBIAN_PYTHON, "-c", script, merge.MERGE_TYPE], input=json.dumps(configs).encode(),
                          capture_output=True, check=True, timeout=60)
    ours: dict[str, Any] = {}
    for c in configs:
        ours = merge.merge_config(ours, c)
    assert json.loads(proc.stdout) == ours


# --- --merge-dir and the CLI -------------------------------------------------------------------------------


def test_merge_dir_common_and_per_node(tmp_path: Path) -> None:
    d = tmp_path / "merge"
    d.mkdir()
    (d / "all.yaml").write_text("#cloud-config\nruncmd: [[touch, /root/all]]\n")
    (d / "master-1.sh").write_text(SCRIPT)
    common = tmp_path / "base.yaml"
    common.write_text(BASE)
    got = userparts.load_merges([common], d, ["master-1", "worker-1"], userparts.read_merge_file)
    assert [p.source for p in got["master-1"]] == [str(common), str(d / "all.yaml"), str(d / "master-1.sh")]
    assert [p.source for p in got["worker-1"]] == [str(common), str(d / "all.yaml")]


def test_merge_dir_refuses_a_file_for_no_node(tmp_path: Path) -> None:
    (tmp_path / "mastr-1.yaml").write_text("#cloud-config\n")
    with pytest.raises(InvalidInput) as exc:
        userparts.load_merges([], tmp_path, ["master-1"], userparts.read_merge_file)
    assert "not all.* or <node>.* for a node of this inventory (master-1)" in str(exc.value.problems[0])


def test_cli_merge_and_conflict_writes_nothing(tmp_path: Path) -> None:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    code, out, err = run("gen", "userdata", str(inventory), "-o", str(tmp_path / "out"), "--merge", str(base))
    assert code == 0, err
    for node in ("master1", "worker1"):
        data = yaml.safe_load((tmp_path / "out" / node / "user-data").read_text())
        assert data["write_files"][0]["path"] == "/etc/motd" and data["users"][0]["name"] == "ops"
    clash = tmp_path / "clash.yaml"
    clash.write_text("#cloud-config\nwrite_files:\n- path: /etc/haproxy/haproxy.cfg\n  content: mine\n")
    code, out, err = run("gen", "userdata", str(inventory), "-o", str(tmp_path / "out2"), "--merge", str(clash))
    assert code == 1
    assert f"{clash}:3: error: write_files: /etc/haproxy/haproxy.cfg is written by both {clash} and kubeha (master1)" in err
    assert not (tmp_path / "out2").exists()


def test_every_part_passes_both_cloud_init_schemas(tmp_path: Path) -> None:
    guest: ModuleType = load_guest()
    bundle_doc = NodeDocument("m", "m", "master", "198.18.0.11", DOC.files, first_boot=DOC.first_boot)
    forms = [merge.merged_user_data(bundle_doc, parts_of(("base.yaml", BASE))),
             merge.merged_user_data(bundle_doc, parts_of(("base.yaml", BASE), ("early.sh", SCRIPT)))]
    checked = 0
    for i, text in enumerate(forms):
        docs = [text] if not text.startswith("Content-Type") else [b for c, b, _ in mime_parts(text)
                                                                   if c == "text/cloud-config"]
        for j, body in enumerate(docs):
            path = tmp_path / f"{i}-{j}.yaml"
            path.write_text(body)
            for newer in (False, True):
                rc, output = guest.cloud_init_schema(path, newer)
                assert rc == 0, output
                checked += 1
    assert checked == 6



@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.text(max_size=200).map(lambda t: ("#cloud-config\n" + t).encode()),
                 st.text(max_size=200).map(lambda t: ("MIME-Version: 1.0\nContent-Type: multipart/mixed; "
                                                      'boundary="b"\n\n--b\n' + t).encode())))
def test_any_input_is_parts_or_a_clear_refusal(data: bytes) -> None:
    """Whatever a user hands to --merge: parts, or InvalidInput naming the file; never another exception."""
    try:
        parts = userparts.parse_user_data("fuzz.yaml", data)
    except InvalidInput as exc:
        assert exc.problems and all(p.location.file.startswith("fuzz.yaml") for p in exc.problems)
        return
    assert parts
    try:
        text = merge.merged_user_data(DOC, parts)
    except InvalidInput as exc:  # e.g. the user's file writes one of kubeha's paths
        assert exc.problems
        return
    assert text.startswith(("#cloud-config\n", "Content-Type: multipart/mixed"))


def test_cli_merge_file_missing(tmp_path: Path) -> None:
    inventory = staged_inventory(EXAMPLES / "cluster.yaml", tmp_path)
    code, out, err = run("gen", "userdata", str(inventory), "-o", str(tmp_path / "o"), "--merge",
                         str(tmp_path / "nope.yaml"))
    assert code == 1 and out == ""
    assert err.startswith(f"{tmp_path / 'nope.yaml'}: error: merge: cannot read: No such file or directory\n")
    assert not (tmp_path / "o").exists()
