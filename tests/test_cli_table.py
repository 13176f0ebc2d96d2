"""A table of bad invocations: each asserts the exit code, the exact last stderr line, and that nothing
was written or left half-written in the work directory (a snapshot of every path, size and mtime).

Rows that need a real process (a closed stdout, Ctrl-C during `bundle pack`) run the installed console
script; the rest run in-process through Typer's CliRunner.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha.cli.main import app
from kubeha_test import EXAMPLES
from test_bundle import make_docker_archive
from test_signing import Keys, gpg_keys  # noqa: F401 - the session's throwaway keys

KUBEHA = str(Path(sys.executable).with_name("kubeha"))
TARGETS = "'nocloud', 'aws', 'azure', 'openstack', 'gce', 'vsphere', 'proxmox', 'generic'"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime (ns): any write, temp file or rename shows up."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture
def work(tmp_path: Path, gpg_keys: Keys) -> Path:  # noqa: F811
    """A work directory: an inventory, a file, a foreign output dir, an image archive, a key home."""
    shutil.copy(EXAMPLES / "cluster.yaml", tmp_path / "cluster.yaml")
    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("someone else's\n")
    (tmp_path / "images.tar").parent.mkdir(exist_ok=True)
    make_docker_archive(tmp_path / "images.tar")
    make_docker_archive(tmp_path / "partial.tar", refs=("kubeha.local/keepalived:2.3.3",))
    (tmp_path / "nul.ini").write_bytes(b"[k8s-master]\n\0\n")
    (tmp_path / "asdir.tar").mkdir()
    (tmp_path / "asdir.tar" / "images.tar").mkdir()
    (tmp_path / "notrecipe.yaml").write_text("hello: world\n")
    os.environ["KUBEHA_TEST_GNUPGHOME"] = str(gpg_keys.trusted.home)
    os.environ["KUBEHA_TEST_FPR"] = gpg_keys.trusted.fingerprint
    return tmp_path


def pack(*extra: str) -> list[str]:
    return ["bundle", "pack", "cluster.yaml", "--images", "images.tar", "--sign-key", "{fpr}", "--gnupghome",
            "{home}", *extra]


# (id, argv, exit code, exact last stderr line)
ROWS: list[tuple[str, list[str], int, str]] = [
    ("gen -o file", ["gen", "userdata", "cluster.yaml", "-o", "afile"], 1,
     "kubeha: error: -o afile: is a file, not a directory; nothing written"),
    ("gen -o under a file", ["gen", "userdata", "cluster.yaml", "-o", "afile/out"], 1,
     "kubeha: error: -o afile/out: {w}/afile is not a directory; nothing written"),
    ("gen -o foreign dir", ["gen", "userdata", "cluster.yaml", "-o", "theirs"], 1,
     "kubeha: error: -o theirs: holds files kubeha did not write (notes.txt); choose an empty or new directory, "
     "or pass --force; nothing written"),
    ("gen -o - without --node", ["gen", "userdata", "cluster.yaml", "-o", "-"], 2,
     "kubeha: error: -o -: prints one node's document; give --node NAME (and no --json or --layout http)"),
    ("gen unknown --node", ["gen", "userdata", "cluster.yaml", "-o", "-", "--node", "nope"], 1,
     "kubeha: 1 error(s), 0 warning(s)"),
    ("gen --target", ["gen", "userdata", "cluster.yaml", "--target", "ec2"], 2,
     f"Error: Invalid value for '--target': Value error, 'ec2' is not one of {TARGETS}."),
    ("gen --format", ["gen", "userdata", "cluster.yaml", "--format", "butane"], 2,
     "Error: Invalid value for '--format': Value error, 'butane' is not one of 'cloud-init', 'ignition'."),
    ("gen --layout", ["gen", "userdata", "cluster.yaml", "--layout", "flat"], 2,
     "Error: Invalid value for '--layout': Value error, 'flat' is not one of 'nodes', 'http'."),
    ("gen missing inventory", ["gen", "userdata", "nope.yaml", "-o", "out"], 1,
     "kubeha: 1 error(s), 0 warning(s); nothing written"),
    ("gen no inventory", ["gen", "userdata"], 2, "Error: Missing argument 'INVENTORY'."),
    ("seed-iso -o file", ["gen", "seed-iso", "cluster.yaml", "-o", "afile"], 1,
     "kubeha: error: -o afile: is a file, not a directory; nothing written"),
    ("seed-iso -o under a file", ["gen", "seed-iso", "cluster.yaml", "-o", "afile/isos"], 1,
     "kubeha: error: -o afile/isos: {w}/afile is not a directory; nothing written"),
    ("seed-iso missing inventory", ["gen", "seed-iso", "nope.yaml", "-o", "isos"], 1,
     "kubeha: 1 error(s), 0 warning(s); nothing written"),
    ("seed-iso bundle without keyring", ["gen", "seed-iso", "cluster.yaml", "-o", "isos", "--bundle", "afile"], 2,
     "kubeha: error: --bundle needs --keyring (the bundle is verified before any ISO is written); nothing written"),
    ("pack -o file", pack("-o", "afile"), 1, "kubeha: error: -o afile: is a file, not a directory; nothing written"),
    ("pack -o under a file", pack("-o", "afile/b"), 1,
     "kubeha: error: -o afile/b: {w}/afile is not a directory; nothing written"),
    ("pack --runtime", pack("--runtime", "podman"), 2,
     "Error: Invalid value for '--runtime': Value error, 'podman' is not one of 'containerd', 'docker'."),
    ("pack missing inventory", ["bundle", "pack", "nope.yaml", "--images", "images.tar", "--sign-key", "{fpr}",
                                "--gnupghome", "{home}", "-o", "b"], 1,
     "kubeha: 1 error(s), 0 warning(s); nothing written"),
    ("pack no gnupg home", pack("-o", "b", "--gnupghome", "nohome"), 1,
     "kubeha: error: GnuPG home nohome does not exist; nothing written"),
    ("pack recipe not a recipe", pack("-o", "b", "--recipe", "notrecipe.yaml"), 1,
     "kubeha: 1 error(s), 0 warning(s); nothing written"),
    ("pack archive not a tar", pack("-o", "b", "--images", "afile"), 1,
     "kubeha: error: afile: not a readable tar archive: truncated header; nothing written"),
    ("pack archive lacks an image", pack("-o", "b", "--images", "partial.tar"), 1,
     "kubeha: 1 error(s), 0 warning(s); nothing written"),
    ("save -o under a file", ["image", "save", "-o", "afile/images.tar"], 1,
     "kubeha: error: -o afile/images.tar: {w}/afile is not a directory; nothing written"),
    ("save -o dir whose images.tar is a dir", ["image", "save", "-o", "asdir.tar"], 1,
     "kubeha: error: -o asdir.tar/images.tar: is a directory, not a file; nothing written"),
    ("save short ref", ["image", "save", "-o", "x.tar", "keepalived:2.3.3"], 1,
     "kubeha: error: image ref 'keepalived:2.3.3' is not fully qualified: write it with its registry host, e.g. "
     "docker.io/library/keepalived:2.3.3 or kubeha.local/keepalived:2.3.3; nothing written"),
    ("save bad recipe", ["image", "save", "-o", "x.tar", "--recipe", "notrecipe.yaml"], 1,
     "kubeha: 1 error(s), 0 warning(s); nothing written"),
    ("build unknown image", ["image", "build", "nginx"], 2,
     "kubeha: error: unknown image(s) nginx: choose from keepalived, haproxy"),
    ("build missing recipe", ["image", "build", "--recipe", "nope.yaml"], 1, "kubeha: 1 error(s), 0 warning(s)"),
    ("inspect missing archive", ["image", "inspect", "nope.tar"], 1, "kubeha: error: nope.tar: no such file"),
    ("verify missing bundle", ["bundle", "verify", "nope", "--keyring", "afile"], 1,
     "kubeha: 1 error(s), 0 warning(s)"),
    ("check missing inventory", ["check", "nope.ini"], 1, "kubeha: 1 error(s), 0 warning(s)"),
    ("check directory inventory", ["check", "theirs"], 1, "kubeha: 1 error(s), 0 warning(s)"),
    ("check NUL bytes", ["check", "nul.ini"], 1, "kubeha: 1 error(s), 0 warning(s)"),
    ("check no such option", ["check", "cluster.yaml", "--frobnicate"], 2, "Error: No such option: --frobnicate (Possible options: --strict)"),
    ("no such command", ["deploy"], 2, "Error: No such command 'deploy'."),
    ("drill --profile", ["drill", "cluster.yaml", "--profile", "slow"], 2,
     "Error: Invalid value for '--profile': Value error, 'slow' is not one of 'fast', 'classic'."),
    ("drill --runtime", ["drill", "cluster.yaml", "--runtime", "podman"], 2,
     "Error: Invalid value for '--runtime': Value error, 'podman' is not one of 'containerd', 'host'."),
]

# The one-line errors the table expects above the summary, for rows whose last line is a summary.
FIRST_LINES = {
    "gen missing inventory": "nope.yaml: error: inventory: cannot read: No such file or directory",
    "check missing inventory": "nope.ini: error: inventory: cannot read: No such file or directory",
    "check directory inventory": "theirs: error: inventory: cannot read: Is a directory",
    "check NUL bytes": "nul.ini:1: error: inventory: not a text file (contains NUL bytes)",
    "gen unknown --node": "--node: error: node: no node 'nope' in the inventory; nodes: master1, master2, master3, "
                          "worker1, worker2",
    "pack recipe not a recipe": "notrecipe.yaml:1: error: recipe: not a kubeha bundle recipe (needs `recipe: 1`)",
    "pack archive lacks an image": "partial.tar: error: images: lacks kubeha.local/haproxy:3.0.11 (named by "
                                   "haproxy_image)",
    "build missing recipe": "nope.yaml: error: recipe: cannot read: No such file or directory",
}


def test_table_is_big_enough() -> None:
    assert len(ROWS) + 2 >= 30  # + the closed-stdout and Ctrl-C rows below
    assert len({r[0] for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize(("argv", "code", "last"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_invocation(work: Path, argv: list[str], code: int, last: str, request: pytest.FixtureRequest,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    fill = {"fpr": os.environ["KUBEHA_TEST_FPR"], "home": os.environ["KUBEHA_TEST_GNUPGHOME"]}
    args = [a.format(**fill) for a in argv]
    before = snapshot(work)
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    lines = result.stderr.splitlines()
    assert result.exit_code == code, result.stderr
    assert lines[-1] == last.format(w=work), result.stderr
    first = FIRST_LINES.get(request.node.callspec.id)
    if first:
        assert lines == [first, lines[-1]], result.stderr  # one error line, then the summary
    assert "Traceback" not in result.output
    assert snapshot(work) == before  # nothing written, nothing half-written, no temp left


def _run(argv: list[str], cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBEHA, *argv], cwd=cwd, capture_output=True, text=True, timeout=60, check=False, **kw)


def test_closed_stdout_is_quiet_and_zero(work: Path) -> None:
    for argv in (["check", "cluster.yaml"], ["check", "--json", "cluster.yaml"], ["--help"]):
        proc = subprocess.Popen([KUBEHA, *argv], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # like `| head -0`: the reader is gone before kubeha writes
        code = proc.wait(timeout=30)
        stderr = proc.stderr.read().decode()
        assert (code, stderr) == (0, ""), argv


def test_ctrl_c_during_bundle_pack(work: Path, gpg_keys: Keys) -> None:  # noqa: F811
    big = work / "big.tar"
    make_docker_archive(big, layer_bytes=96 << 20)  # long enough to interrupt while packing
    before = snapshot(work)
    argv = ["bundle", "pack", "cluster.yaml", "--images", str(big), "--sign-key", gpg_keys.trusted.fingerprint,
            "--gnupghome", str(gpg_keys.trusted.home), "-o", str(work / "b")]
    proc = subprocess.Popen([KUBEHA, *argv], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((work / "b").glob(".*partial-*")):
        time.sleep(0.005)
    assert list((work / "b").glob(".*partial-*")), "pack never started staging"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "kubeha: interrupted; nothing written"
    assert stdout == ""
    after = snapshot(work)
    made = sorted(set(after) - set(before))
    # only the (empty) output root and the cluster id bundle pack makes once beside the inventory (issue 9);
    # no staging dir, no partial tar
    assert made == ["b", "cluster.yaml.cluster-id"]
    assert list((work / "b").iterdir()) == []
