"""What the fuzzer (zkpy/testing/fuzz.py) found, each fixed and kept fixed here.

1. A peer message with an epoch no zxid can carry (2**31 and up) was well-formed: a
   FOLLOWERINFO promising epoch 2**40 made an established leader step down and the next
   leader take epoch 2**40 + 1, whose zxids (epoch << 32) no longer fit in 64 bits: its first
   proposal raised OverflowError out of the peer connection's data_received, and the
   ensemble stopped taking writes.
2. Every bad frame, refused hello or refused connect logged a line of its own: a client or
   peer sending them by the thousand flooded the log.  Now at most one line a second per
   kind, the next one saying how many were left out.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import msgpack
import pytest
from kazoo.client import KazooClient

from zkpy.server.peers import encode
from zkpy.server.ratelimit import RateLimitedLog
from zkpy.testing.ensemble import Ensemble

pytestmark = pytest.mark.timeout(120)


def _log(ens: Ensemble, sid: int) -> str:
    with open(os.path.join(ens.base, f"server{sid}", "server.log"), errors="replace") as f:
        return f.read()


def _send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        while s.recv(65536):
            pass


def test_an_epoch_beyond_any_zxid_is_dropped_and_the_leader_stays():
    with Ensemble(3) as ens:
        leader = ens.leader()
        follower = next(s for s in ens.ids if s != leader)
        c = KazooClient(ens.connect_string, timeout=10)
        c.start(20)
        c.create("/before", b"1")
        for epoch in (2**31, 2**40, 2**62):
            _send(ens.peer_ports[leader], encode(["hello", follower]) + encode(["followerinfo", epoch, 0, [1, 1]]))
        # a vote and a leaderinfo with such epochs, to a follower, from a member's id
        _send(ens.peer_ports[follower], encode(["hello", leader]) + encode(["vote", "leading", leader, 0, 2**40, 1, 2**40])
              + encode(["leaderinfo", 2**40, None]))
        time.sleep(1.0)
        assert ens.leader() == leader
        c.create("/after", b"2")  # the ensemble still takes writes
        c.sync("/")
        assert set(ens.assert_replicas_identical()) >= {"/before", "/after"}
        assert ens.mode(leader) == "leader"
        logs = "".join(_log(ens, s) for s in ens.ids)
        assert "Traceback" not in logs and "Fatal error" not in logs, logs[-3000:]
        c.stop()
        c.close()


def test_bad_input_logs_a_line_a_second_not_a_line_each():
    with Ensemble(3) as ens:
        leader = ens.leader()
        follower = next(s for s in ens.ids if s != leader)
        for _ in range(300):  # bad frame lengths on the client port, one connection each
            _send(ens.client_ports[leader], struct.pack(">i", -5) + b"xxxx")
        garbage = struct.pack(">I", 3) + b"\xc1\xc1\xc1"  # not msgpack
        _send(ens.peer_ports[leader], encode(["hello", follower]) + garbage * 300)
        for _ in range(100):
            _send(ens.peer_ports[leader], encode(["hello", 99]))
        time.sleep(1.5)  # and one more of each, which says how many were left out
        _send(ens.client_ports[leader], struct.pack(">i", -5))
        _send(ens.peer_ports[leader], encode(["hello", follower]) + garbage)
        _send(ens.peer_ports[leader], encode(["hello", 99]))
        time.sleep(0.5)
        log = _log(ens, leader)
        for event in ("closing connection: frame length out of bounds", "malformed peer frame dropped",
                      "peer connection from an unknown server"):
            lines = [line for line in log.splitlines() if event in line]
            assert 2 <= len(lines) <= 10, (event, len(lines))
            assert any("suppressed=" in line for line in lines), lines
        c = KazooClient(ens.address(leader), timeout=10)
        c.start(20)  # and the server serves
        c.create("/x", msgpack.packb(1))
        c.stop()
        c.close()


def test_rate_limited_log_counts_what_it_leaves_out():
    lines: list[tuple[str, dict]] = []

    class Sink:
        def warning(self, event: str, **fields: object) -> None:
            lines.append((event, fields))

    now = [0.0]
    log = RateLimitedLog(Sink(), interval=1.0, clock=lambda: now[0])
    for _ in range(5):
        log.warning("bad frame", n=1)
    log.warning("other", n=2)
    now[0] = 1.0
    log.warning("bad frame", n=3)
    assert lines == [("bad frame", {"n": 1}), ("other", {"n": 2}), ("bad frame", {"n": 3, "suppressed": 4})]
