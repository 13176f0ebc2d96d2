"""Failover lab: the generated keepalived + haproxy configs run in network namespaces, then broken on purpose.

One namespace per master plus one for a client, each joined by a veth to a bridge that lives in its own
namespace: nothing touches the root namespace and there is no route out. Every master runs a stand-in
apiserver (TLS on the apiserver port), and haproxy + keepalived exactly as the generated static pod manifests
say (command, args, hostPath mounts, capabilities), either from the built images through containerd
(``ctr run --with-ns network:...``) or, in ``host`` mode, with this machine's binaries in a private mount
namespace that bind-mounts the same files at the same paths.

A scenario breaks the VIP holder (or a peer), then restores it, while a client opens new TLS connections to
VIP:port at a bounded rate and ``ip -ts monitor address`` records every VIP add and delete per node. The result
says how long the VIP took to move, how many client requests failed, how many extra moves (flaps) happened
and whether two connected nodes ever held the VIP at once.

When the serving haproxy marks a stopped apiserver down is asked of its runtime API (a stats socket that only
the lab adds to its copy of haproxy.cfg).

Everything the lab starts runs in one cgroup per run, weighted above the machine's other work (lab/cgroup.py).

Modules, one way up: base (LabError, constants, process helpers) <- topology, haproxy_api, cgroup <- runtimes,
monitor <- harness (the running Lab) <- report (measurements) <- scenarios (break, observe, restore, judge); clients
holds what runs inside the namespaces, ``python -m kubeha.lab apiserver|client|watch ...``.
"""

from kubeha.lab.base import LAB_NET, LAB_PREFIX, RUNTIMES, LabError, NodeFiles, require_tools
from kubeha.lab.harness import Lab, NodeState
from kubeha.lab.monitor import VipEvent, VipMonitor
from kubeha.lab.report import Phase, Result
from kubeha.lab.runtimes import ContainerdRuntime, HostRuntime, Runtime
from kubeha.lab.scenarios import DEFAULT_SCENARIOS, SCENARIOS, Scenario, Timing, run_drill, run_scenario, verdict
from kubeha.lab.topology import (
    ContainerSpec,
    Master,
    Mount,
    Topology,
    check_lab_addresses,
    container_specs,
    files_from_inventory,
    files_from_output_dir,
    files_from_user_data,
    remap_addresses,
    topology,
)

__all__ = [
    "DEFAULT_SCENARIOS", "LAB_NET", "LAB_PREFIX", "RUNTIMES", "SCENARIOS", "ContainerSpec", "ContainerdRuntime",
    "HostRuntime", "Lab", "LabError", "Master", "Mount", "NodeFiles", "NodeState", "Phase", "Result", "Runtime",
    "Scenario", "Timing", "Topology", "VipEvent", "VipMonitor", "check_lab_addresses", "container_specs",
    "files_from_inventory", "files_from_output_dir", "files_from_user_data", "remap_addresses", "require_tools",
    "run_drill", "run_scenario", "topology", "verdict",
]
