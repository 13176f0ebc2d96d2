"""The lab's use of haproxy's runtime API: the one line it adds to haproxy.cfg, the answers it reads, the watch.

The watch is driven by a stand-in stats socket (a Unix socket that answers ``show servers state`` as haproxy
does, from a state the test sets), so its behaviour is checked without root; the lab's e2e tests run it
against the real haproxy of the images.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeha import lab
from kubeha.lab import haproxy_api
from kubeha.lab.monitor import ServerWatch

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cluster.yaml"

# haproxy 2.6's answer (Debian 12), two servers; 3.0's has the same columns
ANSWER = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state \
bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr \
srv_agent_addr srv_agent_port
3 kubeha-apiservers 1 master1 198.18.0.11 {m1} 0 1 1 12 15 3 4 6 0 0 0 - 6443 - 1 0 - - 0
3 kubeha-apiservers 2 master2 198.18.0.12 {m2} 0 1 1 12 15 3 4 6 0 0 0 - 6443 - 1 0 - - 0

"""


def test_the_generated_config_declares_the_socket_the_lab_asks() -> None:
    topo = lab.topology(lab.files_from_inventory(EXAMPLE))
    _path, cfg = topo.masters[0].find("haproxy.cfg")
    sockets = [line.split() for line in cfg.decode().splitlines() if line.strip().startswith("stats socket")]
    assert sockets == [["stats", "socket", haproxy_api.STATS_SOCKET, "mode", "600", "level", "user"]]


def test_servers_state_is_read_by_the_header_names() -> None:
    assert haproxy_api.parse_servers_state(ANSWER.format(m1=2, m2=0)) == {"master1": 2, "master2": 0}
    wider = ANSWER.replace("srv_agent_port\n", "srv_agent_port srv_new_column\n").replace(" - - 0\n", " - - 0 7\n")
    assert haproxy_api.parse_servers_state(wider.format(m1=0, m2=2)) == {"master1": 0, "master2": 2}
    for wrong in ("", "Unknown command\n", "2\n# srv_name\n"):
        with pytest.raises(lab.LabError, match="not a `show servers state` answer"):
            haproxy_api.parse_servers_state(wrong)


class StandIn:
    """A stats socket that answers ``show servers state`` from ``states`` and counts the questions."""

    def __init__(self, path: Path) -> None:
        self.path, self.states, self.asked = path, {"m1": 2, "m2": 2}, 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                assert conn.recv(100) == b"show servers state\n"
                self.asked += 1
                conn.sendall(ANSWER.format(**self.states).encode())


@pytest.fixture()
def stand_in(tmp_path: Path) -> Iterator[StandIn]:
    s = StandIn(tmp_path / "stats.sock")
    yield s
    s.sock.close()


def test_the_watch_starts_from_up_and_ends_on_the_mark_down(stand_in: StandIn) -> None:
    stand_in.states["m2"] = 0  # still down (a restore's rise checks): the watch does not start from there
    with pytest.raises(lab.LabError, match="haproxy to report master2 up"):
        ServerWatch(lambda: str(stand_in.path), "master2").start(timeout=0.3)
    stand_in.states["m2"] = 2
    watch = ServerWatch(lambda: str(stand_in.path), "master2", interval=0.01)
    watch.start(timeout=5)
    ready = threading.Event()
    timer = threading.Timer(0.2, lambda: (stand_in.states.update(m2=0), ready.set()))
    timer.start()
    assert ready.wait(5)
    assert watch._thread is not None
    watch._thread.join(timeout=5)  # it stops by itself on the event
    asked = stand_in.asked
    assert watch.stop() == watch.down_at and watch.down_at is not None
    assert watch.up_until is not None and watch.up_until < watch.down_at
    assert stand_in.asked == asked, "no question after the event"
    assert watch.summary()["errors"] == []


def test_the_watch_counts_what_it_could_not_ask(tmp_path: Path) -> None:
    watch = ServerWatch(lambda: str(tmp_path / "absent.sock"), "master1")
    assert watch.state() is None
    assert watch.errors and "FileNotFoundError" in watch.errors[-1]
    with pytest.raises(lab.LabError, match="FileNotFoundError"):
        watch.start(timeout=0.2)
    assert watch.stop() is None
