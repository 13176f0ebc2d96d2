"""A cluster name defaulted from a generic file name is a warning that asks for cluster_name (issue 20 item 4):
every kubespray `hosts.yaml` would otherwise be the cluster "hosts", with the same VRRP router id."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha.cli.main import app

INI = """[k8s-master]
198.18.0.11 name=m1
198.18.0.12 name=m2
198.18.0.13 name=m3

[all:vars]
vip=198.18.0.10
interface=eth0
{extra}"""


def check(tmp_path: Path, filename: str, extra: str = "") -> tuple[int, str]:
    inventory = tmp_path / filename
    inventory.write_text(INI.format(extra=extra))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(app, ["check", str(inventory)])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # check writes nothing
    return result.exit_code, result.stderr


@pytest.mark.parametrize("filename", ["hosts.ini", "inventory.ini", "hosts"])
def test_a_generic_file_name_asks_for_cluster_name(tmp_path: Path, filename: str) -> None:
    code, stderr = check(tmp_path, filename)
    name = Path(filename).stem
    assert code == 0
    assert stderr.splitlines() == [
        f"{tmp_path / filename}:6: warning: [all:vars].name: the cluster is named {name!r} after the inventory's "
        "file name, as every inventory called that would be (the same VRRP router id on a shared segment, the "
        "same output place): set cluster_name",
        "kubeha: 0 error(s), 1 warning(s)",
    ]


@pytest.mark.parametrize(("filename", "extra"), [("hosts.ini", "cluster_name=prod-eu1\n"), ("prod-eu1.ini", "")])
def test_a_named_cluster_or_a_telling_file_name_is_quiet(tmp_path: Path, filename: str, extra: str) -> None:
    code, stderr = check(tmp_path, filename, extra)
    assert (code, stderr) == (0, "")
