"""The failover lab end to end: the generated keepalived + haproxy configs, broken on purpose, must move the VIP.

Masters are network namespaces on a bridge in its own namespace (198.18.0.0/15 only, no route out). The
assertions are behaviour (the VIP ends on exactly one healthy node, never two holders beyond VRRP's own
convergence, a move when the holder breaks, none when only a peer's apiserver does, a long-lived watch through
the VIP reconnects, the failback follows the policy) and the goals' shape at relaxed bounds for a noisy CI
machine (moves within 1 s, no flap, the watch back within 2 s); the timings themselves go to
bench/failover.py. The first tests (no marker) check the lab's reading of the generated files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeha import lab
from kubeha.cli import drill as cli_drill

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:  # e2e.daemons and fixtures.images import each other by these names
    sys.path.insert(0, str(REPO / "tests"))
EXAMPLE = REPO / "examples" / "cluster.yaml"
FIVE = REPO / "tests" / "cases" / "five-masters" / "inventory.yaml"
SEED = REPO / "examples" / "seed-hosts.ini"


# ----------------------------------------------------------------------------- reading the generated files


def test_topology_comes_from_the_generated_files() -> None:
    topo = lab.topology(lab.files_from_inventory(EXAMPLE))
    assert [m.name for m in topo.masters] == ["master1", "master2", "master3"]
    assert [str(m.address) for m in topo.masters] == ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
    assert (str(topo.vip), topo.prefix, topo.lb_port, topo.api_port) == ("198.18.0.10", 24, 6444, 6443)
    assert {m.interface for m in topo.masters} == {"eth0"}
    five = lab.topology(lab.files_from_inventory(FIVE))
    assert [m.interface for m in five.masters] == ["ens192", "ens192", "bond0", "bond0", "eth1"]
    assert (str(five.vip), five.prefix, five.lb_port) == ("198.19.4.100", 22, 8443)
    assert topo.timing["advert_int"] == 0.1  # the fast profile
    classic = lab.topology(lab.files_from_inventory(EXAMPLE, "classic"))
    assert classic.timing["advert_int"] == 1


def test_containers_follow_the_manifests() -> None:
    topo = lab.topology(lab.files_from_inventory(EXAMPLE))
    specs = {s.name: s for s in lab.container_specs(topo.masters[0])}
    assert [(s.pod, s.name) for s in lab.container_specs(topo.masters[0])] == [
        ("haproxy", "haproxy"), ("keepalived", "keepalived"), ("keepalived", "prober")]
    ka = specs["keepalived"]
    assert ka.argv[0] == "keepalived" and "--dont-fork" in ka.argv
    assert {"NET_ADMIN", "NET_RAW"} <= set(ka.cap_add)
    assert {m.container_path: m.read_only for m in ka.mounts} == {
        "/etc/keepalived/keepalived.conf": True, "/etc/keepalived/check_apiserver.sh": True, "/run/kubeha": False}
    prober = specs["prober"]
    assert prober.argv == ("/bin/bash", "/etc/keepalived/probe_haproxy.sh") and prober.image == ka.image
    assert {m.container_path: m.read_only for m in prober.mounts} == {
        "/etc/keepalived/probe_haproxy.sh": True, "/run/kubeha": False}
    assert specs["haproxy"].argv[:1] == ("haproxy",)
    assert specs["haproxy"].image.startswith("kubeha.local/haproxy")


def test_addresses_outside_the_lab_range_are_refused_or_remapped() -> None:
    files = lab.files_from_inventory(SEED)
    with pytest.raises(lab.LabError, match=r"outside 198\.18\.0\.0/15"):
        lab.check_lab_addresses(lab.topology(files))
    mapping = lab.remap_addresses(files)
    topo = lab.topology(files)
    lab.check_lab_addresses(topo)
    assert str(topo.vip) == "198.18.0.10" and len(mapping) == len(topo.masters) + 1
    for files_of_node, _ in files.values():
        for data in files_of_node.values():
            assert not any(old.encode() in data for old in mapping)


def test_unknown_scenario_is_refused_before_anything_starts(tmp_path: Path) -> None:
    topo = lab.topology(lab.files_from_inventory(EXAMPLE))
    with pytest.raises(lab.LabError, match="unknown scenario"):
        lab.run_drill(topo, lab.HostRuntime(), ["unplug-the-moon"], workdir=tmp_path)


def test_drill_refuses_clearly_without_its_tools(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "PATH": str(tmp_path)}  # nothing on PATH: no ip, no ctr, no keepalived
    run = subprocess.run([sys.executable, "-m", "kubeha.cli.drill", str(EXAMPLE), "--runtime", "host"],
                         capture_output=True, text=True, env=env, check=False, timeout=60)
    assert run.returncode == 1, run.stderr
    assert "ip (apt-get install iproute2)" in run.stderr and "keepalived (apt-get install keepalived)" in run.stderr
    assert "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, "-m", "kubeha.cli.drill", str(EXAMPLE), "--runtime", "podman"],
                         capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 2 and "'podman' is not one of 'containerd', 'host'" in run.stderr


# ----------------------------------------------------------------------------- the live lab


def _require(runtime: str) -> None:
    try:
        lab.require_tools(runtime)
    except lab.LabError as exc:
        pytest.fail(f"the failover lab cannot run here: {exc}")


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    mine = f"{lab.LAB_PREFIX}{os.getpid() % 100000}"  # this process's labs (others may run a bench meanwhile)
    return {line.split()[0] for line in out.splitlines() if line.startswith(mine)}


def _cgroups() -> set[Path]:
    mine = f"{lab.LAB_PREFIX}{os.getpid() % 100000}"
    root = Path("/sys/fs/cgroup")
    return {*root.glob(f"*/{mine}*"), *root.glob(f"{mine}*")}  # v1: one per hierarchy; v2: one


@pytest.fixture()
def no_leftovers() -> Iterator[None]:
    before, cgroups = _netns(), _cgroups()
    yield
    assert _netns() <= before, "the lab left network namespaces behind"
    assert _cgroups() <= cgroups, "the lab left cgroups behind"


def _cpu_cgroup(pid: int) -> str:
    """The cgroup that schedules ``pid`` (v1: the cpu hierarchy's, v2: the unified one)."""
    lines = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    v1 = [path for _, controllers, path in lines if "cpu" in controllers.split(",")]
    return v1[0] if v1 else next(path for hid, _, path in lines if hid == "0")


def _in_the_lab_cgroup(running: lab.Lab) -> None:
    """Everything the lab starts runs in its weighted cgroup (without it a busy machine starves the lab: flaps)."""
    assert running.cgroup.active, running.cgroup.problem
    for node in running.nodes.values():
        pids = {**node.containers, "apiserver": node.apiserver}
        for what, pid in pids.items():
            assert _cpu_cgroup(pid).startswith(f"/{running.cgroup.name}/"), (node.name, what, _cpu_cgroup(pid))
    for proc in running.monitor.procs.values():
        assert _cpu_cgroup(proc.pid) == f"/{running.cgroup.name}/helpers"


def _table(results: list[lab.Result]) -> str:
    return cli_drill.format_table(cli_drill.table_rows(results))


MOVE_WITHIN = 1.0  # relaxed from the goals (0.3-0.4 s) for a shared CI machine
MARKDOWN_WITHIN = {"stop": 1.0, "hang": 2.5}  # the serving haproxy marks a dead (hung) apiserver down; goal 0.5 s
WATCH_WITHIN = 2.0  # relaxed from the goal (1 s)


def _check(results: list[lab.Result], scenarios: list[str], fast: bool = True, failback: bool = False) -> None:
    """Behaviour always; with ``fast``, the goals' shape at relaxed bounds; ``failback``: preempt is on."""
    table = _table(results)
    assert [r.scenario for r in results] == scenarios, table
    for r in results:
        assert r.problems == [], f"{r.scenario}: {r.problems}\n{table}"
        assert r.fault.requests > 20 and r.restore.requests > 20, f"{r.scenario}: the client did not run\n{table}"
        moves = lab.SCENARIOS[r.scenario].moves
        if moves:
            assert r.fault.moved_in is not None and r.fault.moved_in <= 10, table
            assert r.fault.holder_after != r.target, table
        assert r.restore.holder_after is not None, table
        assert r.fault.watch_gap is not None and r.restore.watch_gap is not None, f"{r.scenario}: watch lost\n{table}"
        if not fast:
            continue
        assert r.flaps == 0 and r.split_brain == 0, f"{r.scenario}: flapped or two holders\n{table}"
        if moves and r.scenario != "hang-prober":  # a hung prober faults its node after its verdict goes stale
            assert r.fault.moved_in is not None and r.fault.moved_in <= MOVE_WITHIN, f"{r.scenario}\n{table}"
        assert r.fault.watch_gap <= WATCH_WITHIN and r.restore.watch_gap <= WATCH_WITHIN, f"{r.scenario}\n{table}"
        if lab.SCENARIOS[r.scenario].stops_apiserver:
            bound = MARKDOWN_WITHIN[r.scenario.split("-")[0]]
            assert r.fault.marked_down_in is not None and r.fault.marked_down_in <= bound, f"{r.scenario}\n{table}"
        if moves and failback:  # the recovered holder takes the VIP back: one move, no more
            assert r.restore.moves == 1 and r.restore.holder_after == r.target, f"{r.scenario}\n{table}"
        elif moves:  # nopreempt: the VIP stays where it went, no second interruption
            assert r.restore.moves == 0 and r.restore.moved_in is None, f"{r.scenario}\n{table}"


@pytest.fixture(scope="module")
def images_runtime() -> Iterator[lab.ContainerdRuntime]:
    """A private containerd (tests/e2e/daemons.py) with the built images (tests/fixtures/images.py) imported."""
    _require("containerd")
    from e2e import daemons
    from fixtures.images import ensure_images_tar

    archive = ensure_images_tar()
    daemon = daemons.start_containerd(daemons.short_workdir("lab-ctrd"))
    try:
        runtime = lab.ContainerdRuntime(str(daemon.socket))
        runtime.import_images(archive)
        yield runtime
    finally:
        daemons.stop_and_remove(daemon)


def _images_of(topo: lab.Topology) -> list[str]:
    return sorted({s.image for m in topo.masters for s in lab.container_specs(m)})


@pytest.mark.e2e
@pytest.mark.slow
def test_three_masters_every_scenario_from_the_images(images_runtime: lab.ContainerdRuntime,
                                                      tmp_path: Path, no_leftovers: None) -> None:
    topo = lab.topology(lab.files_from_inventory(EXAMPLE))
    images_runtime.check_images(_images_of(topo))
    scenarios = [*lab.DEFAULT_SCENARIOS, "hang-prober"]
    results = lab.run_drill(topo, images_runtime, scenarios, workdir=tmp_path,  # logs stay on failure
                            on_up=_in_the_lab_cgroup)
    print("\n" + _table(results))
    _check(results, scenarios)
    assert not images_runtime.ids, "the lab left containers behind"


@pytest.mark.e2e
@pytest.mark.slow
def test_five_masters_holder_failures_from_the_images(images_runtime: lab.ContainerdRuntime,
                                                      tmp_path: Path, no_leftovers: None) -> None:
    files = lab.files_from_inventory(FIVE)
    # the case names a private registry; the lab runs the same manifests on the images built here
    for node_files, _ in files.values():
        for path, data in node_files.items():
            node_files[path] = data.replace(b"registry.example.internal:5000/infra/", b"kubeha.local/")
    topo = lab.topology(files)
    assert len(topo.masters) == 5
    scenarios = ["kill-haproxy", "power-off"]
    results = lab.run_drill(topo, images_runtime, scenarios, workdir=tmp_path)
    print("\n" + _table(results))
    _check(results, scenarios)


@pytest.mark.e2e
@pytest.mark.slow
def test_host_runtime_same_configs(tmp_path: Path, no_leftovers: None) -> None:
    _require("host")
    topo = lab.topology(lab.files_from_inventory(EXAMPLE))
    scenarios = ["kill-haproxy", "hang-haproxy", "pull-cable"]
    results = lab.run_drill(topo, lab.HostRuntime(), scenarios, workdir=tmp_path, on_up=_in_the_lab_cgroup)
    print("\n" + _table(results))
    _check(results, scenarios)


@pytest.mark.e2e
@pytest.mark.slow
def test_failback_with_preempt_takes_the_vip_back_once(tmp_path: Path, no_leftovers: None) -> None:
    _require("host")
    topo = lab.topology(lab.files_from_inventory(EXAMPLE, preempt=True))
    scenarios = ["kill-haproxy", "power-off"]
    results = lab.run_drill(topo, lab.HostRuntime(), scenarios, workdir=tmp_path)
    print("\n" + _table(results))
    _check(results, scenarios, failback=True)


@pytest.mark.e2e
@pytest.mark.slow
def test_classic_still_fails_over(tmp_path: Path, no_leftovers: None) -> None:
    _require("host")
    topo = lab.topology(lab.files_from_inventory(EXAMPLE, "classic"))
    scenarios = ["kill-haproxy"]
    results = lab.run_drill(topo, lab.HostRuntime(), scenarios, workdir=tmp_path)
    print("\n" + _table(results))
    _check(results, scenarios, fast=False)


@pytest.mark.e2e
@pytest.mark.slow
def test_drill_cli_on_the_seed_inventory_remapped(no_leftovers: None) -> None:
    _require("host")
    app = cli_drill.app
    refused = CliRunner().invoke(app, [str(SEED), "--runtime", "host", "--scenarios", "kill-haproxy"])
    assert refused.exit_code == 1
    assert "outside 198.18.0.0/15" in refused.output
    result = CliRunner().invoke(app, [str(SEED), "--runtime", "host", "--remap", "--scenarios",
                                      "kill-haproxy", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["result"]
    assert set(doc["remapped"].values()) <= {f"198.18.0.{i}" for i in range(10, 20)}
    (only,) = doc["results"]
    assert only["scenario"] == "kill-haproxy" and only["problems"] == []
    assert only["fault"]["moved_in"] is not None
