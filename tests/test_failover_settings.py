"""Failover settings end to end through the generator: the prober, FAULT on a failed check, failback policy.

What the settings mean on a running cluster is measured in tests/e2e/test_failover.py and bench/failover.py;
here: what an inventory may say (preempt, preempt_delay), what lands in keepalived.conf and the pods, and the
worst case `kubeha check` prints for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeha import generate
from kubeha.context import plan
from kubeha.deliver import cloudinit
from kubeha.profiles import BASELINES, PROFILES
from kubeha.render import render_cluster
from kubeha_test import run

MASTERS = "masters:\n  - {name: m1, address: 198.18.0.11}\n  - {name: m2, address: 198.18.0.12}\n"


def _inventory(tmp_path: Path, cluster: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(f"cluster:\n  vip: 198.18.0.10/24\n{cluster}{MASTERS}")
    return path


def _files(inv: Path) -> dict[str, dict[str, str]]:
    cluster = generate.load_cluster(inv).cluster
    out = {}
    for doc in render_cluster(cluster, "s3cret"):
        data = yaml.safe_load(cloudinit.to_user_data(doc))
        out[doc.name] = {f["path"]: f["content"] for f in data["write_files"] if f.get("encoding", "text") == "text"}
    return out


def _keepalived(files: dict[str, str]) -> list[str]:
    return [line.strip() for line in files["/etc/keepalived/keepalived.conf"].splitlines()]


def test_default_is_the_prober_with_fault_and_no_failback(tmp_path: Path) -> None:
    files = _files(_inventory(tmp_path, ""))
    for node in ("m1", "m2"):
        conf = _keepalived(files[node])
        assert "state BACKUP" in conf and "nopreempt" in conf  # nopreempt needs every node to start as BACKUP
        assert "weight 0" in conf and not any(line.startswith("weight -") for line in conf)  # FAULT, never a tie
        assert 'file "/run/kubeha/haproxy-verdict"' in conf and "init_file 1 overwrite" in conf
        prober = files[node]["/etc/keepalived/probe_haproxy.sh"]
        assert "--rate 10/s" in prober and "--connect-timeout 0.1 --max-time 0.1" in prober
        assert "find /run/kubeha/haproxy-verdict -newermt '-2 seconds'" in files[node]["/etc/keepalived/check_apiserver.sh"]
    pod = yaml.safe_load(next(v for k, v in files["m1"].items() if k.endswith("/keepalived.yaml")))
    assert [c["name"] for c in pod["spec"]["containers"]] == ["keepalived", "prober"]
    assert {c["image"] for c in pod["spec"]["containers"]} == {"kubeha.local/keepalived:2.3.3"}
    assert "on-marked-down shutdown-sessions" in files["m1"]["/etc/haproxy/haproxy.cfg"]


@pytest.mark.parametrize(("setting", "expect_state", "expect_line"), [
    ("  preempt: true\n", "state MASTER", None),
    ("  preempt: true\n  preempt_delay: 2.5\n", "state BACKUP", "preempt_delay 2.5"),
    ("  preempt: false\n", "state BACKUP", "nopreempt"),
    ("  preempt: 'no'\n", "state BACKUP", "nopreempt"),
])
def test_failback_policy_lands_in_keepalived_conf(tmp_path: Path, setting: str, expect_state: str,
                                                  expect_line: str | None) -> None:
    conf = _keepalived(_files(_inventory(tmp_path, setting))["m1"])
    assert expect_state in conf
    for line in ("nopreempt", "preempt_delay 2.5"):
        assert (line in conf) == (line == expect_line), conf


def test_classic_keeps_the_seed_settings(tmp_path: Path) -> None:
    files = _files(_inventory(tmp_path, "  profile: classic\n"))
    conf = _keepalived(files["m1"])
    assert "state MASTER" in conf and "nopreempt" not in conf and "weight -25" in conf  # spread 20 (m1 100, m2 80) -> 25
    assert "/etc/keepalived/probe_haproxy.sh" not in files["m1"]
    assert "shutdown-sessions" not in files["m1"]["/etc/haproxy/haproxy.cfg"]


@pytest.mark.parametrize(("cluster", "line", "message"), [
    ("  profile: classic\n  preempt: false\n", 4, "preempt: false needs a profile whose failed check faults"),
    ("  preempt: maybe\n", 3, "'maybe' is not true or false"),
    ("  preempt_delay: 2000\n", 3, "is not a number of seconds from 0 to 1000"),
    ("  preempt_delay: soon\n", 3, "is not a number of seconds from 0 to 1000"),
])
def test_bad_failback_settings_are_refused(tmp_path: Path, cluster: str, line: int, message: str) -> None:
    inv = _inventory(tmp_path, cluster)
    code, stdout, stderr = run("check", str(inv))
    assert code == 1 and stdout == ""
    assert f"{inv}:{line}: error:" in stderr and message in stderr, stderr
    assert "Traceback" not in stderr


def test_preempt_delay_without_preempt_warns(tmp_path: Path) -> None:
    code, _, stderr = run("check", str(_inventory(tmp_path, "  preempt: false\n  preempt_delay: 3\n")))
    assert code == 0 and "preempt_delay: ignored: preempt is false" in stderr


def test_check_prints_the_worst_case_of_the_settings(tmp_path: Path) -> None:
    fast = PROFILES["fast"]
    # a probe may start just before the failure: fall + 1 probes, the last timing out, then one advert
    assert fast.path_failover_s() == pytest.approx(0.1 * 2 + 0.1 + 0.1)  # a taker of unknown priority
    assert fast.prober_loss_s == 2 + 1 + 1 + 1
    # the taker's skew (RFC 5798: (256 - priority) / 256 adverts); derived fast priorities start at 250
    assert fast.path_failover_s(240) == pytest.approx(0.3 + 16 * 0.1 / 256)
    assert fast.link_failover_s(240) == pytest.approx(0.3 + 16 * 0.1 / 256)
    assert fast.link_failover_s(100) == pytest.approx(0.3 + 156 * 0.1 / 256)
    default = plan(generate.load_cluster(_inventory(tmp_path, "")).cluster)
    assert [m["priority"] for m in default["masters"]] == [250, 230]  # two masters: 20 apart
    assert default["failover_worst_case_s"]["haproxy_or_apiserver_path"] == round(0.3 + 26 * 0.1 / 256, 2)
    assert default["failover_worst_case_s"]["link_or_power_loss"] == round(0.3 + 26 * 0.1 / 256, 2)
    classic = plan(generate.load_cluster(_inventory(tmp_path, "  profile: classic\n")).cluster)
    assert classic["failover_worst_case_s"]["haproxy_or_apiserver_path"] == 3 * 1 + 2 + 1
    assert "prober_lost" not in classic["failover_worst_case_s"]
    assert classic["failback"].startswith("at once")
    assert BASELINES["kubeadm-guide"].path_failover_s() == 3 * 10 + 3 + 1
    assert "kubeadm-guide" not in PROFILES  # a bench baseline, never an inventory's profile
