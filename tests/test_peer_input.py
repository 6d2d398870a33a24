"""What another process can send to an ensemble member's quorum port: unknown server ids,
malformed frames, wrong-typed, stale-epoch and random messages.  Each is dropped (and
logged); no member crashes, the ensemble keeps serving, and the replicas stay identical."""

from __future__ import annotations

import os
import random
import socket
import struct
import time

import msgpack
import pytest
from kazoo.client import KazooClient

from zkpy.server.peers import encode
from zkpy.testing.ensemble import Ensemble

pytestmark = pytest.mark.timeout(120)


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["int", "bigint", "str", "bytes", "none", "bool", "float"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-5, 5)
    if kind == "bigint":
        return rng.choice([2**63 - 1, -(2**63), 2**64 - 1, 2**40])
    if kind == "str":
        return rng.choice(["vote", "proposal", "commit", "ping", "sync", "ack", "app", "request", "looking", "", "\u2603"])
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 20))
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "float":
        return rng.random()
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 8))]
    return {str(i): _random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def _nasty_messages(rng: random.Random) -> list:
    kinds = ["vote", "followerinfo", "ackepoch", "ack", "pong", "leaderinfo", "sync", "uptodate", "proposal",
             "commit", "ping"]
    out = [
        [], {}, "proposal", 7, None, [None], ["proposal"],
        ["proposal", 0, 1, b"stale epoch"], ["commit", 0, 2**63 - 1], ["ping", 0, 2**63 - 1],
        ["proposal", "1", "2", "3"], ["commit", 2**64 - 1, -1], ["sync", 1, "snap", 5, b"not a snapshot", [[1, 2]], 9, [0, 0]],
        ["vote", "leading", "x", None, 1, 2, 3], ["vote", "looking", 2**63 - 1, 2**63 - 1, 2**63 - 1, 2**63 - 1, 0],
        ["ackepoch", 1, 1, 1, [1], [[1]], 0], ["uptodate", None, None],
        ["app"], ["app", "request"], ["app", "request", 1, 1, 5, "not bytes", []],
        ["app", "request", 1, 1, 5, b"\x00\x00\xff\xffgarbage", [["digest", "x"]]],
        ["app", "request", 1, 1, 999, b"", []], ["app", "touch", "not a list"], ["app", "touch", [None]],
        ["app", "createsession", -1, -1], ["app", "closesession", "x", 1], ["app", "synced", 1],
        ["app", "sync", None], ["app", "unknown", 1, 2],
    ]
    for _ in range(300):
        if rng.random() < 0.5:  # a known kind with random fields
            msg = [rng.choice(kinds)] + [_random_value(rng) for _ in range(rng.randint(0, 8))]
        else:
            msg = _random_value(rng)
        out.append(msg)
    return out


def _send_and_wait_closed(port: int, payload: bytes, timeout: float = 5) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        try:
            return s.recv(10) == b""
        except socket.timeout:
            return False


def test_garbage_on_the_quorum_port_is_dropped_and_harms_no_one():
    rng = random.Random(int(os.environ.get("ZKPY_PEER_FUZZ_SEED", "11")))
    with Ensemble(3) as ens:
        c = KazooClient(ens.connect_string, timeout=10)
        c.start(20)
        c.create("/before", b"1")
        leader = ens.leader()
        follower = next(s for s in ens.ids if s != leader)
        for target in (leader, follower):
            port = ens.peer_ports[target]
            # an unknown server id: the connection is closed
            assert _send_and_wait_closed(port, encode(["hello", 99]) + encode(["vote", "looking", 1, 1, 1, 1, 0]))
            # a frame longer than any message may be: the connection is closed
            assert _send_and_wait_closed(port, encode(["hello", leader if target != leader else follower])
                                         + struct.pack(">I", 2**31))
            # a member's id, then garbage of every shape
            sender = next(s for s in ens.ids if s != target)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(encode(["hello", sender]))
                s.sendall(struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1")  # not msgpack
                for msg in _nasty_messages(rng):
                    body = msgpack.packb(msg, use_bin_type=True)
                    s.sendall(struct.pack(">I", len(body)) + body)
                time.sleep(0.5)
        # everyone is alive, still serving, and agrees
        assert all(ens.procs[s].poll() is None for s in ens.ids)
        ens.wait_serving(timeout=20)
        for sid in ens.ids:
            w = KazooClient(ens.address(sid), timeout=10)
            w.start(20)
            w.create(f"/after{sid}", b"2")
            w.stop()
            w.close()
        tree = ens.assert_replicas_identical()
        assert {"/before", "/after1", "/after2", "/after3"} <= set(tree)
        logs = "".join(open(os.path.join(ens.base, f"server{s}", "server.log")).read() for s in (leader, follower))
        assert "peer message dropped" in logs
        assert "Traceback" not in logs and "Exception in callback" not in logs, logs[-3000:]
        c.stop()
        c.close()
