"""Wire traces and reset() of the test servers, through kazoo over real sockets."""

import threading
import time

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoNodeError

from zkpy.server.config import load
from zkpy.server.connection import ClientConnection
from zkpy.server.wiretrace import TracedConnection
from zkpy.testing import Ensemble, InProcessEnsemble, ZkpyServer
from zkpy.testing.reset import SYSTEM_NODES
from zkpy.testing.trace import format_trace


def started(connect_string: str, **kw) -> KazooClient:
    client = KazooClient(connect_string, timeout=10, **kw)
    client.start(20)
    return client


def closed(client: KazooClient) -> None:
    client.stop()
    client.close()


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_the_trace_holds_requests_replies_and_events_with_names_paths_and_zxids():
    with ZkpyServer() as zk:
        client = started(zk.connect_string)
        try:
            session = client.client_id[0]
            before = time.time()
            client.create("/app", b"")
            fired = threading.Event()
            client.get("/app", watch=lambda event: fired.set())
            stat = client.set("/app", b"2")
            assert fired.wait(10)
            with pytest.raises(NoNodeError):
                client.delete("/missing")
            tx = client.transaction()
            tx.create("/app/a")
            tx.create("/app/b")
            tx.commit()
        finally:
            closed(client)
        wait_for(lambda: zk.trace() and zk.trace()[-1].kind == "close")
        trace = zk.trace()
    mine = [e for e in trace if e.session == session]
    said = [(e.kind, e.op, e.path, e.err) for e in mine]
    assert ("request", "create", "/app", None) in said
    assert ("reply", "create", "/app", "OK") in said
    assert ("reply", "delete", "/missing", "NONODE") in said
    assert ("request", "multi", "/app/a,/app/b", None) in said
    assert said.index(("event", "NODE_DATA_CHANGED", "/app", None)) < said.index(("reply", "setData", "/app", "OK"))
    set_reply = next(e for e in mine if e.kind == "reply" and e.op == "setData")
    assert set_reply.zxid == stat.mzxid
    assert before - 1 < set_reply.time < time.time() + 1
    assert [e.kind for e in trace[:2]] == ["connect", "session"] and trace[1].session == session
    assert mine[-1].kind == "close"
    text = format_trace(trace)
    assert f"{session:#x} <- setData /app xid={set_reply.xid} OK zxid={stat.mzxid:#x}" in text


def test_the_ring_is_bounded_and_keeps_the_newest_entries():
    with ZkpyServer(wire_trace=40) as zk:
        client = started(zk.connect_string)
        try:
            for i in range(60):
                client.create(f"/n{i}")
            trace = zk.trace()
        finally:
            closed(client)
    assert len(trace) == 40
    assert (trace[-1].kind, trace[-1].op, trace[-1].path) == ("reply", "create", "/n59")
    assert "... 30 earlier entries left out" in format_trace(trace, last=10)


def test_without_a_trace_the_server_runs_the_plain_connection_class():
    """The hot path's cost of a disabled trace is nothing: its connections are plain
    ClientConnections (a traced server's are TracedConnections)."""
    for size, cls in ((0, ClientConnection), (100, TracedConnection)):
        with ZkpyServer(wire_trace=size) as zk:
            client = started(zk.connect_string)
            try:
                client.create("/x")
                assert {type(c) for c in zk.call(lambda: list(zk.server.connections))} == {cls}
                assert bool(zk.trace()) == bool(size)
            finally:
                closed(client)


def test_zkpy_serve_turns_the_trace_on_with_a_system_property():
    assert load(None).wire_trace == 0
    assert load(None, {"zkpy.wireTrace": "300"}).wire_trace == 300


def _lost(client: KazooClient) -> threading.Event:
    lost = threading.Event()
    client.add_listener(lambda state: lost.set() if state == KazooState.LOST else None)
    return lost


def test_reset_empties_the_tree_and_ends_every_session_through_the_pipeline():
    with ZkpyServer() as zk:
        a, b = started(zk.connect_string), started(zk.connect_string)
        try:
            a.create("/app/config/x", b"1", makepath=True)
            a.create("/app/lock", ephemeral=True)
            b.create("/other", ephemeral=True)
            seen_before = a.exists("/app/lock").czxid
            old_sessions = {a.client_id[0], b.client_id[0]}
            lost_a, lost_b = _lost(a), _lost(b)
            started_at = time.monotonic()
            zk.reset()
            took = time.monotonic() - started_at
            assert lost_a.wait(10) and lost_b.wait(10)  # both sessions ended (kazoo sees them expired)
            assert not [e for e in zk.trace() if e.op == "create"]  # the trace starts afresh
            assert not old_sessions & zk.call(lambda: set(zk.server.tree.sessions))
            fresh = started(zk.connect_string)
            try:
                assert fresh.get_children("/") == ["zookeeper"]
                assert fresh.create("/after") == "/after"
                assert fresh.exists("/after").czxid > seen_before + 5  # zxids went on through the reset's txns
            finally:
                closed(fresh)
        finally:
            closed(a)
            closed(b)
    assert took < 2.0, f"reset took {took:.3f} s"


def test_reset_of_an_inprocess_ensemble_leaves_identical_empty_replicas():
    with InProcessEnsemble(3) as ens:
        follower = next(sid for sid in ens.ids if sid != ens.leader())
        client = started(ens.address(follower))
        try:
            for i in range(20):
                client.create(f"/a/b/c{i}", makepath=True)
            client.create("/a/mine", ephemeral=True)
            old_session = client.client_id[0]
            lost = _lost(client)
            ens.reset()
            assert lost.wait(10)
            for member in ens.members.values():  # kazoo may have a new session by now: not the old one
                assert old_session not in member.call(lambda m=member: set(m.server.tree.sessions))
        finally:
            closed(client)
        tree = ens.assert_replicas_identical()
        assert set(tree) <= SYSTEM_NODES


def test_reset_of_a_process_ensemble_deletes_every_znode():
    with Ensemble(3) as ens:
        client = started(ens.connect_string)
        try:
            for i in range(10):
                client.create(f"/a/c{i}", makepath=True)
        finally:
            closed(client)
        ens.reset()
        tree = ens.assert_replicas_identical()
        assert set(tree) <= SYSTEM_NODES


def test_an_ensembles_trace_names_each_member_and_keeps_a_killed_ones_entries():
    with InProcessEnsemble(3) as ens:
        leader = ens.leader()
        follower = next(sid for sid in ens.ids if sid != leader)
        client = started(ens.address(follower))
        try:
            client.create("/before-the-kill")
        finally:
            closed(client)
        ens.kill(follower)
        trace = ens.trace()
        assert ("reply", "create", "/before-the-kill", "OK") in [(e.kind, e.op, e.path, e.err) for e in trace
                                                               if e.server == follower]
        assert f"[{follower}] " in format_trace(trace)
        assert f"--- server {follower} (killed):" in ens.log_tails()
