"""Issue 20 item 5: delivery that fits the bundle source.

`gen http-tree` refuses a bundle whose source PXE-booted nodes cannot reach (cidata: they have no seed ISO),
or writes it with a warning under --force; `gen seed-iso` puts the bundle on the masters' ISOs only when the
bundle's source is that ISO (cidata). Each row: exit code, exact stderr, what is on disk after.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import pycdlib
import pytest

from kubeha_test import EXAMPLES, run
from test_bundle import make_docker_archive
from test_signing import Keys, gpg_keys  # noqa: F401 - the session's throwaway keys

URL = "http://198.18.0.1/kubeha/demo.tar"
NODES = ["master1", "master2", "master3", "worker1", "worker2"]
PXE_REFUSAL = ("install.source: the bundle was packed with --bundle-source cidata: PXE-booted nodes have no cidata "
               "disk and would never find it; pack it with --bundle-source http(s)://HOST/PATH (or label:LABEL, or "
               "a path the nodes have), or pass --force")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, gpg_keys: Keys) -> dict[str, Path]:  # noqa: F811
    """examples/cluster.yaml packed once per bundle source; source -> the bundle tar."""
    work = tmp_path_factory.mktemp("sources")
    make_docker_archive(work / "images.tar")
    key = ["--sign-key", gpg_keys.trusted.fingerprint, "--gnupghome", str(gpg_keys.trusted.home)]
    out = {}
    for source in ("cidata", URL, "label:KUBEHA"):
        inv_dir = work / f"inv-{len(out)}"
        inv_dir.mkdir()
        (inv_dir / "cluster.yaml").write_text((EXAMPLES / "cluster.yaml").read_text())
        code, _, err = run("bundle", "pack", str(inv_dir / "cluster.yaml"), "--images", str(work / "images.tar"),
                           *key, "-o", str(inv_dir / "b"), "--bundle-source", source)
        assert code == 0, err
        out[source] = inv_dir / "b" / "demo.tar"
    return out


# (id, source, --force, exit code, exact stderr lines ({b} = the bundle), tree written)
TREE_ROWS = [
    ("cidata refused", "cidata", False, 1, ["{b}: error: " + PXE_REFUSAL,
                                            "kubeha: 1 error(s), 0 warning(s); nothing written"], False),
    ("cidata with --force warns", "cidata", True, 0, ["{b}: warning: " + PXE_REFUSAL,
                                                      "kubeha: 0 error(s), 1 warning(s)"], True),
    ("http URL", URL, False, 0, [], True),
    ("labelled disk", "label:KUBEHA", False, 0, [], True),
]


@pytest.mark.parametrize(("source", "force", "code", "stderr", "written"), [r[1:] for r in TREE_ROWS],
                         ids=[r[0] for r in TREE_ROWS])
def test_http_tree_fits_the_source(bundles: dict[str, Path], gpg_keys: Keys, tmp_path: Path,  # noqa: F811
                                   source: str, force: bool, code: int, stderr: list[str], written: bool) -> None:
    bundle = bundles[source]
    tree = tmp_path / "tree"
    got, _, err = run("gen", "http-tree", str(bundle.parent.parent / "cluster.yaml"), "--bundle", str(bundle),
                      "--keyring", str(gpg_keys.trusted.public), "-o", str(tree), *(["--force"] if force else []))
    assert (got, err.splitlines()) == (code, [line.format(b=bundle) for line in stderr])
    if written:
        assert sorted(os.listdir(tree)) == [".kubeha-manifest.json", "README.txt", *NODES]
        assert (tree / "master1" / "user-data").read_bytes() == (
            bundle.with_suffix("") / "nodes" / "master1" / "user-data").read_bytes()
    else:
        assert not tree.exists() and sorted(os.listdir(tmp_path)) == []


def _iso_files(path: Path) -> dict[str, bytes]:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        out = {}
        for root, _dirs, files in iso.walk(rr_path="/"):
            for name in files:
                buf = BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=f"{root.rstrip('/')}/{name}")
                out[f"{root.rstrip('/')}/{name}"] = buf.getvalue()
        return out
    finally:
        iso.close()


# (id, source, exact stderr lines, masters' ISOs carry the bundle)
ISO_ROWS = [
    ("cidata: on the masters' ISOs", "cidata", [], True),
    ("http URL: on no ISO", URL, [f"kubeha: the bundle's source is {URL}: the nodes fetch it from {URL}, so no "
                                  "seed ISO carries it (only the documents made for it)"], False),
    ("labelled disk: on no seed ISO", "label:KUBEHA", [
        "kubeha: the bundle's source is label:KUBEHA: the nodes fetch it from a disk labelled KUBEHA, so no seed ISO "
        "carries it (only the documents made for it)"], False),
]


@pytest.mark.parametrize(("source", "stderr", "carried"), [r[1:] for r in ISO_ROWS], ids=[r[0] for r in ISO_ROWS])
def test_seed_iso_carries_the_bundle_only_when_it_is_the_source(
        bundles: dict[str, Path], gpg_keys: Keys, tmp_path: Path,  # noqa: F811
        source: str, stderr: list[str], carried: bool) -> None:
    bundle = bundles[source]
    inventory = bundle.parent.parent / "cluster.yaml"
    code, _, err = run("gen", "seed-iso", str(inventory), "--bundle", str(bundle), "--keyring",
                       str(gpg_keys.trusted.public), "-o", str(tmp_path / "isos"))
    assert (code, err.splitlines()) == (0, stderr)
    assert sorted(os.listdir(tmp_path / "isos")) == [f"{n}.iso" for n in NODES]
    for node in NODES:
        files = _iso_files(tmp_path / "isos" / f"{node}.iso")
        on_iso = any(p.startswith("/kubeha-bundle/") for p in files)
        assert on_iso == (carried and node.startswith("master")), node
        # the documents are always the bundle's own (they pin its key, cluster id and serial)
        assert files["/user-data"] == (bundle.with_suffix("") / "nodes" / node / "user-data").read_bytes()
