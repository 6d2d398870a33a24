"""Virtual time: `advance(seconds)` runs what falls due, and nothing falls due without it.

A session expires only when its client is gone: the expiring session here belongs to a raw
client that closes its socket without closing the session (a client process that died);
the kazoo clients that watch stay connected, and `advance` keeps their sessions alive.
"""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import EventType

from zkpy.protocol.codes import Op
from zkpy.testing import InProcessEnsemble, ZkpyServer
from zkpy.testing.client import RawClient


def _poll(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class _Watcher:
    """A kazoo client with exists-watches that records what it is told."""

    def __init__(self, hosts: str) -> None:
        self.client = KazooClient(hosts, timeout=10)
        self.client.start(10)
        self.events: list = []
        self.told = threading.Event()

    def watch(self, path: str) -> bool:
        return self.client.exists(path, watch=self._on_event) is not None

    def _on_event(self, event) -> None:
        self.events.append((event.type, event.path))
        self.told.set()

    def close(self) -> None:
        self.client.stop()
        self.client.close()


def _dead_client_with_ephemeral(host: str, port: int, path: str, timeout_ms: int) -> RawClient:
    """A session holding an ephemeral whose client went away without closing it."""
    raw = RawClient(host, port, timeout_ms=timeout_ms)
    err, _, _ = raw.create(path, b"x", flags=1)
    assert err == 0
    raw.sock.close()
    return raw


@pytest.fixture
def watcher():
    made: list[_Watcher] = []
    yield lambda hosts: made.append(_Watcher(hosts)) or made[-1]
    for w in made:
        w.close()


def test_session_expires_with_its_ephemerals_on_advance_and_not_before(watcher):
    with ZkpyServer(clock="virtual", tick_time=1000) as zk:
        w = watcher(zk.connect_string)
        raw = _dead_client_with_ephemeral(zk.host, zk.port, "/owned", timeout_ms=6000)
        timeout = raw.timeout / 1000
        assert timeout == 6.0
        assert w.watch("/owned")
        assert _poll(lambda: zk.sessions()[raw.session_id].connections == 0)

        zk.advance(timeout * 0.5)
        assert zk.ephemerals(raw.session_id) == ["/owned"]
        assert w.client.exists("/owned") is not None and not w.events

        # ZooKeeper's expiry buckets: a session goes within timeout + tickTime of its last ping.
        zk.advance(timeout * 0.5 + 1.0)
        assert raw.session_id not in zk.sessions()
        assert zk.ephemerals(raw.session_id) == []
        assert w.told.wait(10)
        assert w.events == [(EventType.DELETED, "/owned")]
        assert w.client.exists("/owned") is None
        # The watcher's own session lived through the 7 s: connected clients count as pinging.
        assert w.client.client_id[0] in zk.sessions() and w.client.connected


def test_real_time_does_not_expire_a_session_under_virtual_time():
    with ZkpyServer(clock="virtual", tick_time=100) as zk:
        raw = _dead_client_with_ephemeral(zk.host, zk.port, "/still", timeout_ms=200)
        assert raw.timeout == 200
        for _ in range(10):  # 0.5 s of real time: 2.5 session timeouts, 5 tickTimes
            time.sleep(0.05)
        assert zk.ephemerals(raw.session_id) == ["/still"]
        zk.advance(0.3)
        assert zk.ephemerals(raw.session_id) == []


def test_ttl_node_and_emptied_container_are_removed_on_advance(watcher):
    with ZkpyServer(clock="virtual", extended_types=True) as zk:
        raw = RawClient(zk.host, zk.port)
        assert raw.create("/ttl", b"t", flags=5, ttl=5000, op=Op.CREATE_TTL)[0] == 0
        assert raw.create("/box", flags=4, op=Op.CREATE_CONTAINER)[0] == 0
        raw.close()
        w = watcher(zk.connect_string)
        w.client.create("/box/item")
        w.client.delete("/box/item")  # an emptied container (it had a child)
        assert w.watch("/ttl") and w.watch("/box")
        session = w.client.client_id[0]

        # The TTL has run out at 5 s, but the container manager looks only every 60 s
        # (containerCheckIntervalMs), as in ZooKeeper.
        zk.advance(59)
        assert w.client.exists("/ttl") is not None and w.client.exists("/box") is not None
        assert not w.events

        zk.advance(1.5)
        assert _poll(lambda: len(w.events) == 2)
        assert sorted(w.events) == [(EventType.DELETED, "/box"), (EventType.DELETED, "/ttl")]
        assert "/ttl" not in zk.tree() and "/box" not in zk.tree()
        assert w.client.client_id[0] == session and session in zk.sessions()


def test_inprocess_ensemble_elects_serves_and_expires_on_virtual_time(watcher):
    with InProcessEnsemble(3, clock="virtual") as ens:
        leader = ens.leader()
        assert leader is not None
        follower = next(s for s in ens.ids if s != leader)
        w = watcher(ens.connect_string)
        w.client.create("/served", b"v")
        for sid in ens.ids:  # every member serves reads of it
            c = KazooClient(ens.address(sid), timeout=10)
            c.start(10)
            try:
                c.sync("/served")
                assert c.get("/served")[0] == b"v"
            finally:
                c.stop()
                c.close()

        raw = _dead_client_with_ephemeral("127.0.0.1", ens.client_ports[follower], "/owned", timeout_ms=4000)
        timeout = raw.timeout / 1000
        assert w.watch("/owned")
        assert _poll(lambda: all(ens.ephemerals(raw.session_id, sid) == ["/owned"] for sid in ens.ids))

        ens.advance(timeout * 0.5)
        assert all(ens.ephemerals(raw.session_id, sid) == ["/owned"] for sid in ens.ids)
        assert not w.events

        # The leader's expiry buckets (tickTime) count from the last touch it heard of, which
        # the follower reports on its next tick: the session goes within timeout + 2 tickTimes.
        ens.advance(timeout * 0.5 + 2 * ens.tick_time / 1000)
        # advance returns once every member has applied what fell due: no waiting here
        assert all(ens.ephemerals(raw.session_id, sid) == [] for sid in ens.ids)
        assert w.told.wait(10)
        assert w.events == [(EventType.DELETED, "/owned")]
        assert all(raw.session_id not in ens.sessions(sid) for sid in ens.ids)
        assert ens.leader() == leader  # ticks kept the quorum: no re-election on the way
        assert len({ens.last_zxid(sid) for sid in ens.ids}) == 1


def test_an_election_after_the_leader_dies_waits_for_virtual_time():
    with InProcessEnsemble(3, clock="virtual") as ens:
        old = ens.leader()
        ens.kill(old)
        rest = [sid for sid in ens.ids if sid != old]
        for _ in range(10):  # 0.5 s of real time: twice the 200 ms an election waits for votes
            time.sleep(0.05)
            assert ens.leader() is None
        assert _poll(lambda: all(ens.mode(sid) is None for sid in rest))  # looking: not serving

        before = ens.clock.now_ms
        ens.wait_serving(rest)  # moves the clock a tick at a time until a leader serves
        new = ens.leader()
        assert new in rest and ens.clock.now_ms - before >= 200
        client = KazooClient(ens.address(new), timeout=10)
        client.start(10)
        try:
            client.create("/after", b"")
        finally:
            client.stop()
            client.close()
