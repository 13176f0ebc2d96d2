"""kubeha installed like a user installs it: the sdist and wheel built by ``python -m build``, the wheel
installed into a fresh virtualenv outside the source tree (and by pipx), then run from a directory outside
it: the demo, ``check --json``, README's air-gapped end-to-end block exactly as written (image build + save
on a private dockerd that reaches no registry (the block makes its base with `kubeha image base`), bundle
pack/verify with a throwaway GnuPG key, seed ISOs).

Needs root, network to the package index (pip), docker.io and debootstrap (scripts/install-deps.sh).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import jsonschema
import pytest

from e2e.daemons import Daemon, short_workdir
from kubeha import __version__

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def sh(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and run.returncode != 0:
        raise AssertionError(f"{argv} failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}")
    return run


def readme_block(heading: str) -> str:
    """The first ```sh block under a README heading."""
    section = README.split(f"## {heading}", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, flags=re.S).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sdist and wheel from ``python -m build`` (the wheel is built from the sdist, as pip would)."""
    out = tmp_path_factory.mktemp("dist")
    sh([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], cwd=out)
    return {"wheel": next(out.glob("kubeha-*.whl")), "sdist": next(out.glob("kubeha-*.tar.gz"))}


@pytest.fixture(scope="module")
def venv(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the source tree with the wheel installed; returns its bin/."""
    root = tmp_path_factory.mktemp("venv")
    sh([BASE_PYTHON, "-m", "venv", str(root)], cwd=root)
    sh([str(root / "bin" / "pip"), "install", "-q", str(dist["wheel"])], cwd=root)
    return root / "bin"


def user_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a user shell: the venv first on PATH, nothing pointing into the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "KUBEHA_DOCKER_DIR")}
    return {**env, "PATH": f"{bin_dir}:{env['PATH']}", **extra}


def test_wheel_and_sdist_contents(dist: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    for expected in ("kubeha/__main__.py", "kubeha/py.typed", "kubeha/bundles/default.yaml",
                     "kubeha/docker/keepalived/Dockerfile", "kubeha/docker/haproxy/Dockerfile",
                     "kubeha/schema/output.schema.json", "kubeha/templates/etc/keepalived/keepalived.conf.j2",
                     f"kubeha-{__version__}.dist-info/licenses/LICENSE"):
        assert expected in names, expected
    assert not [n for n in names if n.startswith("kubeha/bundles/out")]
    metadata = zipfile.ZipFile(dist["wheel"]).read(f"kubeha-{__version__}.dist-info/METADATA").decode()
    for field in ("License-Expression: Apache-2.0", "Project-URL: Source", "Classifier: Environment :: Console",
                  "Requires-Python: >=3.11", f"Version: {__version__}"):
        assert field in metadata, field
    with tarfile.open(dist["sdist"]) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    assert {"LICENSE", "bundles/default.yaml", "docker/keepalived/Dockerfile", "examples/cluster.yaml"} <= members


def test_installed_wheel_runs_outside_the_tree(venv: Path, tmp_path: Path) -> None:
    env = user_env(venv)
    where = sh([str(venv / "python"), "-c", "import kubeha, sys; print(kubeha.__file__)"], cwd=tmp_path, env=env)
    assert where.stdout.startswith(str(venv.parent)) and str(REPO) not in where.stdout
    for argv in (["kubeha", "--version"], [str(venv / "python"), "-m", "kubeha", "--version"]):
        assert sh(argv, cwd=tmp_path, env=env).stdout == f"kubeha {__version__}\n"
    shutil.copy(REPO / "examples" / "cluster.yaml", tmp_path / "cluster.yaml")
    # the demo (make demo), from the installed wheel
    assert sh(["kubeha", "check", "cluster.yaml"], cwd=tmp_path, env=env).stderr == ""
    sh(["kubeha", "gen", "userdata", "cluster.yaml", "-o", "out/cluster"], cwd=tmp_path, env=env)
    assert (tmp_path / "out/cluster/master1/user-data").read_text().startswith("#cloud-config\n")
    doc = json.loads(sh(["kubeha", "check", "--json", "cluster.yaml"], cwd=tmp_path, env=env).stdout)
    schema = json.loads((venv.parent / "lib").glob("python3*/site-packages/kubeha/schema/output.schema.json")
                        .__next__().read_text())
    jsonschema.validate(doc, schema)
    assert doc["ok"] is True and doc["result"]["cluster"] == "demo"


def test_pipx_install_of_the_wheel(dist: dict[str, Path], tmp_path: Path) -> None:
    pipx = Path(sys.executable).with_name("pipx")
    env = {**os.environ, "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin"),
           "PIPX_DEFAULT_PYTHON": BASE_PYTHON}
    sh([str(pipx), "install", str(dist["wheel"])], cwd=tmp_path, env=env)
    assert sh([str(tmp_path / "bin" / "kubeha"), "--version"], cwd=tmp_path).stdout == f"kubeha {__version__}\n"


@pytest.fixture
def gnupghome() -> Iterator[Path]:
    """A throwaway GnuPG home with the README's signing key ops@example.org (short path: agent socket)."""
    home = short_workdir("gpg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        sh(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "ops@example.org", "ed25519", "sign", "1d"],
           cwd=home, env=env)
        yield home
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_readme_air_gapped_block_as_written(venv: Path, dockerd: Daemon, gnupghome: Path, tmp_path: Path) -> None:
    # No registry is reachable here: the block's `kubeha image base` makes debian:trixie-slim itself.
    shutil.copy(REPO / "examples" / "cluster.yaml", tmp_path / "cluster.yaml")
    env = user_env(venv, GNUPGHOME=str(gnupghome), DOCKER_HOST=dockerd.env()["DOCKER_HOST"])
    sh(["gpg", "--armor", "--export", "--output", "ops-public.asc", "ops@example.org"], cwd=tmp_path, env=env)
    block = readme_block("Air-gapped install, end to end")
    assert "kubeha image base" in block and "kubeha image build" in block and "kubeha gen seed-iso" in block
    sh(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, timeout=3000)
    refs = json.loads(sh(["kubeha", "image", "inspect", "--json", "images.tar"], cwd=tmp_path, env=env).stdout)
    assert sorted(r for i in refs["result"]["images"] for r in i["refs"]) == ["kubeha.local/haproxy:3.0.11",
                                                                              "kubeha.local/keepalived:2.3.3"]
    client = docker.DockerClient(base_url=dockerd.address)
    assert client.images.get("debian:trixie-slim").attrs["Config"]["Cmd"] == ["bash"]  # the imported base
    verify = sh(["kubeha", "bundle", "verify", "--json", "bundles/demo.tar", "--keyring", "ops-public.asc"],
                cwd=tmp_path, env=env)
    assert json.loads(verify.stdout)["ok"] is True
    assert sorted(p.name for p in (tmp_path / "isos").iterdir()) == [
        "master1.iso", "master2.iso", "master3.iso", "worker1.iso", "worker2.iso"]
