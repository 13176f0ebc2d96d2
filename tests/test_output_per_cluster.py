"""Issue 20 item 3: output places per cluster. The default output is per cluster; a run never writes into,
replaces or prunes another cluster's output, and a manifest written for one cluster is never pruned by
another (--force included). Each row: exit code, exact stderr, and the directories before and after.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from kubeha.generate import MANIFEST
from kubeha_test import EXAMPLES, run
from test_bundle import make_docker_archive
from test_cli_table import snapshot
from test_signing import Keys, gpg_keys  # noqa: F401 - the session's throwaway keys

NODES = ["master1", "master2", "master3", "worker1", "worker2"]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two clusters with the same node names: demo (examples/cluster.yaml) and other."""
    monkeypatch.chdir(tmp_path)
    text = (EXAMPLES / "cluster.yaml").read_text()
    (tmp_path / "demo.yaml").write_text(text)
    (tmp_path / "other.yaml").write_text(text.replace("name: demo", "name: other"))
    return tmp_path


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_default_output_is_per_cluster(work: Path) -> None:
    assert run("gen", "userdata", "demo.yaml")[0] == 0
    demo = work / "bundles/out/userdata/demo"
    before = snapshot(demo)
    code, stdout, stderr = run("gen", "userdata", "other.yaml")
    assert (code, stderr) == (0, "")
    assert stdout.splitlines()[0].endswith("-> bundles/out/userdata/other/master1/")
    assert snapshot(demo) == before  # untouched: nothing replaced, nothing removed
    assert _listing(work / "bundles/out/userdata") == sorted(
        ["demo", "other", *(f"{c}/{f}" for c in ("demo", "other") for f in [MANIFEST, *NODES]),
         *(f"{c}/{n}/{f}" for c in ("demo", "other") for n in NODES for f in ("meta-data", "user-data"))])
    assert json.loads((demo / MANIFEST).read_text())["cluster"] == "demo"


REFUSED = ("kubeha: error: -o {out}: holds cluster demo's node folders (.kubeha-manifest.json); a run for cluster "
           "other never writes into or prunes another cluster's output (--force included): choose another "
           "directory, e.g. bundles/out/userdata/other; nothing written")


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "--force"])
def test_another_clusters_directory_is_refused(work: Path, force: list[str]) -> None:
    assert run("gen", "userdata", "demo.yaml", "-o", "shared")[0] == 0
    before = snapshot(work)
    code, stdout, stderr = run("gen", "userdata", "other.yaml", "-o", "shared", *force)
    assert (code, stdout, stderr.splitlines()) == (1, "", [REFUSED.format(out="shared")])
    assert snapshot(work) == before


def _legacy(work: Path) -> Path:
    """demo's output as kubeha wrote it before manifests recorded the cluster (the old shared default)."""
    assert run("gen", "userdata", "demo.yaml", "-o", "old")[0] == 0
    manifest = work / "old" / MANIFEST
    record = json.loads(manifest.read_text())
    del record["cluster"]
    manifest.write_text(json.dumps(record))
    return work / "old"


def test_old_manifest_of_another_cluster_is_refused(work: Path) -> None:
    _legacy(work)
    before = snapshot(work)
    code, _, stderr = run("gen", "userdata", "other.yaml", "-o", "old")
    assert (code, stderr.splitlines()) == (1, [REFUSED.format(out="old")])
    assert snapshot(work) == before


def test_old_manifest_of_this_cluster_is_adopted_and_pruned(work: Path) -> None:
    old = _legacy(work)
    (work / "demo.yaml").write_text((work / "demo.yaml").read_text().replace(
        "  - name: worker2\n    address: 198.18.0.22\n", ""))
    code, _, stderr = run("gen", "userdata", "demo.yaml", "-o", "old")
    assert (code, stderr) == (0, "kubeha: removed old/worker2/ (no longer in the inventory)\n")
    assert json.loads((old / MANIFEST).read_text())["cluster"] == "demo"
    assert sorted(os.listdir(old)) == sorted([MANIFEST, *NODES[:-1]])


def test_unrecorded_folders_of_another_cluster_are_not_adopted(work: Path) -> None:
    """Node folders without a manifest are adopted only when their meta-data does not name another cluster."""
    assert run("gen", "userdata", "demo.yaml", "-o", "bare")[0] == 0
    (work / "bare" / MANIFEST).unlink()
    before = snapshot(work)
    code, _, stderr = run("gen", "userdata", "other.yaml", "-o", "bare")
    assert (code, stderr.splitlines()) == (1, [
        "kubeha: error: -o bare: holds files kubeha did not write (master1, master2, master3, ...); choose an empty "
        "or new directory, or pass --force; nothing written"])
    assert snapshot(work) == before
    assert run("gen", "userdata", "demo.yaml", "-o", "bare")[0] == 0  # its own cluster's: adopted


def test_bundle_pack_never_replaces_another_clusters_bundle(work: Path, gpg_keys: Keys) -> None:  # noqa: F811
    make_docker_archive(work / "images.tar")
    key = ["--sign-key", gpg_keys.trusted.fingerprint, "--gnupghome", str(gpg_keys.trusted.home)]
    assert run("bundle", "pack", "demo.yaml", "--images", "images.tar", *key, "-o", "b")[0] == 0
    shutil.copy(work / "images.tar", work / "images2.tar")
    before = snapshot(work)
    code, _, stderr = run("bundle", "pack", "other.yaml", "--images", "images.tar", *key, "-o", "b", "--name", "demo")
    assert (code, stderr.splitlines()) == (1, [
        "kubeha: error: -o b: b/demo/ is cluster demo's bundle; packing cluster other never replaces another "
        "cluster's bundle: give another --name or -o; nothing written"])
    assert snapshot(work) == before  # no bundle replaced, no cluster id or serial made for other
    assert run("bundle", "pack", "other.yaml", "--images", "images.tar", *key, "-o", "b")[0] == 0
    assert sorted(os.listdir(work / "b")) == ["demo", "demo.tar", "other", "other.tar"]
