"""What keepalived's vrrp_track_process would buy and cost: the kernel's process events, in isolation.

The option the prober was weighed against for haproxy's death (issue 12). keepalived's track_process
listens on the netlink process connector (NETLINK_CONNECTOR, CN_IDX_PROC) for exec/exit events. This bench
asks the kernel directly, as keepalived does, without keepalived or a network:

1. where the connector answers: in this process's namespaces, and inside a fresh network namespace (as
   the failover lab's nodes are). The kernel serves it only in the initial PID, user and network
   namespaces, so a pod needs ``hostPID: true`` besides ``hostNetwork``, and the namespaced lab cannot
   run it at all;
2. how soon an exit is reported: a stand-in process is killed with SIGKILL, ``--reps`` times, and the time
   from the kill to its exit event is recorded. That is the detection track_process would give; the rest
   of a VIP move (FAULT, the priority-0 advert, a backup's takeover) is the same as the prober's.

    sudo .venv/bin/python bench/track_process.py --reps 50

Prints median / worst of kill -> exit event, next to the prober's detection bound (one probe interval).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

NETLINK_CONNECTOR = 11
CN_IDX_PROC = CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
NLMSG_DONE = 3
PROC_EVENT_EXIT = 0x80000000
PROBE_INTERVAL_MS = 100  # the prober's interval (profiles.PROFILES["fast"].probe_interval_ms)


def listen() -> socket.socket:
    """A netlink socket subscribed to process events (raises OSError where the kernel refuses)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    sock.bind((0, CN_IDX_PROC))
    payload = struct.pack("=I", PROC_CN_MCAST_LISTEN)
    cn_msg = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    sock.send(struct.pack("=IHHII", 16 + len(cn_msg), NLMSG_DONE, 0, 0, os.getpid()) + cn_msg)
    return sock


def exit_pids(data: bytes) -> list[int]:
    """PIDs of the exit events in one netlink datagram (nlmsghdr 16 + cn_msg 20 + proc_event)."""
    pids, offset = [], 0
    while offset + 16 <= len(data):
        length = struct.unpack_from("=I", data, offset)[0]
        what = struct.unpack_from("=I", data, offset + 36)[0] if offset + 40 <= len(data) else 0
        if what == PROC_EVENT_EXIT:  # then cpu u32, timestamp u64, process_pid, process_tgid
            pids.append(struct.unpack_from("=i", data, offset + 36 + 16)[0])
        offset += max(length, 16)
    return pids


def in_fresh_netns() -> str:
    """What subscribing says inside a network namespace made for this check (removed afterwards)."""
    ns = f"kh-cn-{os.getpid()}"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import track_process as t\n"
            "try:\n    t.listen(); print('accepted')\nexcept OSError as e:\n    print(f'refused ({e})')")
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        run = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, os.path.dirname(__file__)],
                             capture_output=True, text=True, timeout=30, check=False)
        return (run.stdout.strip() or run.stderr.strip()[-200:])
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)


def main() -> int:
    """Run the checks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/track_process.py: run as root (the process connector and network namespaces)", file=sys.stderr)
        return 1
    try:
        sock = listen()
    except OSError as exc:
        print(f"process connector refused in this process's namespaces: {exc}", file=sys.stderr)
        return 1
    sock.settimeout(5)
    latencies = []
    for _ in range(args.reps):  # bounded: each repetition waits at most 5 s for its event
        child = subprocess.Popen(["sleep", "60"])
        time.sleep(0.02)
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        deadline = killed_at + 5
        while time.monotonic() < deadline:
            if child.pid in exit_pids(sock.recv(65536)):
                latencies.append(1000 * (time.monotonic() - killed_at))
                break
        else:
            print(f"no exit event for {child.pid} within 5 s", file=sys.stderr)
            return 1
        child.wait(timeout=5)
    sock.close()
    print(f"process connector in this process's namespaces: accepted; in a fresh network namespace: "
          f"{in_fresh_netns()}")
    print(f"kill -> exit event, {args.reps} repetitions: {statistics.median(latencies):.2f} ms median, "
          f"{max(latencies):.2f} ms worst; the prober sees a killed haproxy at its next probe (connection "
          f"refused): up to {PROBE_INTERVAL_MS} ms, {PROBE_INTERVAL_MS / 2:.0f} ms on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
