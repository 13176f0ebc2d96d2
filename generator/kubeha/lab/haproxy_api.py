"""haproxy's runtime API in the lab: the read-only stats socket kubeha's haproxy.cfg declares, and its answers.

What a node's haproxy thinks of each apiserver is state, kept by haproxy until a check changes it; the lab
asks for it (``show servers state``) instead of following haproxy's log for a "Server ... is DOWN" line. A
line is an event that can be missed (haproxy writes its stdout log non-blocking and drops a line the pipe
cannot take; a line logged before the lab's window, when the server was still down from the previous
restore, reads as "never marked down"), and the lab could only time it when it read the file. State cannot be
missed, and the lab can first check that the server is up before it breaks it.

The socket is the one kubeha's haproxy.cfg declares for operators (read-only, ``level user``, root's only) in
the container's own /run, so the pod needs no extra mount; the lab reaches it as ``/proc/<haproxy's PID>/root/...``.
"""

from __future__ import annotations

import socket

from kubeha.lab.base import LabError

#: where haproxy binds its runtime API inside the haproxy container (templates/etc/haproxy/haproxy.cfg.j2)
STATS_SOCKET = "/run/kubeha-haproxy.sock"
#: ``srv_op_state`` of ``show servers state`` (haproxy's enum srv_state): 0 = stopped, the server is down
SRV_STOPPED, SRV_STARTING, SRV_RUNNING, SRV_STOPPING = range(4)


def socket_path(pid: int) -> str:
    """The stats socket of the haproxy whose main process is ``pid``, as seen from the lab (its mount namespace)."""
    return f"/proc/{pid}/root{STATS_SOCKET}"


def ask(path: str, command: str, timeout: float = 1.0) -> str:
    """Send one command to a stats socket and return the whole answer (haproxy closes after answering)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def parse_servers_state(text: str) -> dict[str, int]:
    """{server name: srv_op_state} from a ``show servers state`` answer (kubeha's config has one backend).

    The answer is a version line (``1``), a ``# be_id be_name srv_id srv_name ...`` header, then one line per
    server; the columns are found by the header's names, so a later haproxy that adds columns still parses.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((line[1:].split() for line in lines if line.startswith("#")), None)
    if not lines or lines[0].strip() != "1" or header is None or not {"srv_name", "srv_op_state"} <= set(header):
        raise LabError(f"not a `show servers state` answer (version 1): {text[:200]!r}")
    name, state = header.index("srv_name"), header.index("srv_op_state")
    states: dict[str, int] = {}
    for line in lines[1:]:
        words = line.split()
        if line.startswith("#") or len(words) <= max(name, state):
            continue
        states[words[name]] = int(words[state])
    return states


def server_states(path: str, timeout: float = 1.0) -> dict[str, int]:
    """Ask one haproxy for the operational state of every server (``SRV_STOPPED`` = marked down)."""
    return parse_servers_state(ask(path, "show servers state", timeout))
