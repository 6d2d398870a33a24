"""What the fuzzer (zkpy/testing/fuzz.py) found, each fixed and kept fixed here.

1. A peer message with an epoch no zxid can carry (2**31 and up) was well-formed: a
   FOLLOWERINFO promising epoch 2**40 made an established leader step down and the next
   leader take epoch 2**40 + 1, whose zxids (epoch << 32) no longer fit in 64 bits: its first
   proposal raised OverflowError out of the peer connection's data_received, and the
   ensemble stopped taking writes.
2. Every bad frame, refused hello or refused connect logged a line of its own: a client or
   peer sending them by the thousand flooded the log.  Now at most one line a second per
   kind, the next one saying how many were left out.
3. A forged `app closesession` for session 0 (from a peer claiming a member's id, on a quorum
   port without authentication) deleted persistent znodes: Prep counted every in-flight change
   of a persistent node (ephemeral owner 0) as an ephemeral of session 0.  Found at 7k-900k
   peer frames, as the canary's /canary/w vanishing (NoNodeError) right after its own setData.
   Now owner 0 is nobody's, and the leader drops a closesession of a session it does not track.
4. A forged FOLLOWERINFO with a plausible epoch (a bit flip of a fuzzed one), sent in a member's
   name, made the leader stop forwarding to that member: the real follower heard nothing for a
   syncLimit, left, rejoined and dropped its clients.  The leader now serves the link it has
   until the new join is acknowledged, which only the member itself can do.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import msgpack
import pytest
from kazoo.client import KazooClient

from zkpy.protocol.codes import Op
from zkpy.requests.prep import Prep
from zkpy.server.peers import encode
from zkpy.tree.datatree import DataTree
from zkpy.server.ratelimit import RateLimitedLog
from zkpy.testing.ensemble import Ensemble

pytestmark = pytest.mark.timeout(120)
OPEN = [(31, "world", "anyone")]


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


def test_closing_session_0_deletes_no_persistent_znode_with_a_change_in_flight():
    tree = DataTree()
    prep = Prep(tree)
    tree.apply(prep.prepare(5, 1, Op.CREATE, ("/p", b"", OPEN, 0, -1), [], 0))
    prep.committed(tree.last_zxid)
    prep.prepare(5, 2, Op.SET_DATA, ("/p", b"x", -1), [], 0)  # proposed, not yet applied
    assert prep.close_session(0, -1, 0).args == ([],)
    assert prep.close_session(7, -1, 0).args == ([],)


def test_a_forged_closesession_of_an_unknown_session_is_dropped():
    with Ensemble(3) as ens:
        leader = ens.leader()
        follower = next(s for s in ens.ids if s != leader)
        c = KazooClient(ens.connect_string, timeout=10)
        c.start(20)
        c.create("/kept", b"1")
        before = ens.last_zxid(leader)
        for session in (0, 12345, 2**62):
            _send(ens.peer_ports[leader], encode(["hello", follower]) + encode(["app", "closesession", session, 1]))
        time.sleep(0.5)
        c.set("/kept", b"2")
        c.sync("/")
        assert c.get("/kept")[0] == b"2"
        assert ens.last_zxid(leader) == before + 1, "a closesession txn was proposed for a session nobody has"
        assert _log(ens, leader).count("closesession for an unknown session dropped") >= 1
        c.stop()
        c.close()


def test_a_forged_followerinfo_does_not_cut_the_real_follower_off():
    with Ensemble(3, tick_time=200) as ens:  # syncLimit 5 ticks: 1 s
        leader = ens.leader()
        follower = next(s for s in ens.ids if s != leader)
        c = KazooClient(ens.address(follower), timeout=10)
        c.start(20)
        states = []
        c.add_listener(states.append)
        c.create("/f", b"0")
        left = _log(ens, follower).count("role=looking")
        for accepted_epoch in (0, 1):
            _send(ens.peer_ports[leader], encode(["hello", follower])
                  + encode(["followerinfo", accepted_epoch, 2**31, [-2, 2**62]]))
        for i in range(12):  # 2.4 s: more than twice syncLimit
            c.set("/f", str(i).encode())
            time.sleep(0.2)
        assert states == [], states
        assert _log(ens, follower).count("role=looking") == left, "the follower left its leader"
        c.stop()
        c.close()
