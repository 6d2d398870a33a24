"""Introspection: what the server holds, as plain values, agrees with what clients see."""

from __future__ import annotations

import time

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from zkpy.protocol.codes import Op
from zkpy.testing import Ensemble, InProcessEnsemble, ZkpyServer
from zkpy.testing.client import RawClient
from zkpy.testing.introspect import Session, Watch


def _client(hosts: str) -> KazooClient:
    client = KazooClient(hosts, timeout=10)
    client.start(10)
    return client


def _walk(client: KazooClient) -> dict[str, tuple]:
    """The tree as a client reads it: {path: (data, Stat tuple)}."""
    tree: dict[str, tuple] = {}
    todo = ["/"]
    while todo:
        path = todo.pop()
        try:
            data, stat = client.get(path)
            children = client.get_children(path)
        except NoNodeError:
            continue
        tree[path] = (data, tuple(stat))
        todo.extend(path.rstrip("/") + "/" + child for child in children)
    return tree


def _poll(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_server_introspection_matches_what_clients_see():
    with ZkpyServer() as zk:
        client = _client(zk.connect_string)
        raw = RawClient(zk.host, zk.port, timeout_ms=8000)
        try:
            session = client.client_id[0]
            client.create("/app/config", b"cfg", makepath=True)
            client.create("/app/lock", b"me", ephemeral=True)
            client.create("/app/seq-", b"", sequence=True)
            client.get("/app/config", watch=lambda e: None)
            client.exists("/app/missing", watch=lambda e: None)
            client.get_children("/app", watch=lambda e: None)
            assert raw.call(Op.ADD_WATCH, ("/app/config", 0))[0] == 0  # persistent
            assert raw.call(Op.ADD_WATCH, ("/app", 1))[0] == 0  # persistent-recursive

            sessions = zk.sessions()
            assert sessions[session].timeout_ms == 10000  # kazoo's 10 s, within tickTime 3 s's [6 s, 60 s]
            assert sessions[session].connections == 1
            assert sessions[raw.session_id].timeout_ms == raw.timeout == 8000
            assert set(sessions) == {session, raw.session_id}
            assert zk.ephemerals(session) == ["/app/lock"]
            assert zk.ephemerals(raw.session_id) == []

            assert zk.watches() == sorted([
                Watch(session, "/app/config", "data"),
                Watch(session, "/app/missing", "exist"),
                Watch(session, "/app", "child"),
                Watch(raw.session_id, "/app/config", "persistent"),
                Watch(raw.session_id, "/app", "persistent-recursive"),
            ])

            assert zk.tree() == _walk(client)
            last = client.set("/app/config", b"v2").mzxid
            assert zk.last_zxid() == last
        finally:
            raw.close()
            client.stop()
            client.close()
        assert _poll(lambda: zk.sessions() == {})


def test_inprocess_ensemble_introspection_per_member():
    with InProcessEnsemble(3) as ens:
        client = _client(ens.address(1))
        try:
            session = client.client_id[0]
            client.create("/e", b"x", ephemeral=True)
            last = client.set("/e", b"z").mzxid
            assert _poll(lambda: all(ens.last_zxid(sid) == last for sid in ens.ids))
            for sid in ens.ids:
                assert ens.ephemerals(session, sid) == ["/e"]
                assert ens.sessions(sid)[session].connections == (1 if sid == 1 else 0)
            leader = ens.leader()
            assert ens.sessions(leader)[session].expires_at_ms is not None
            client.get("/e", watch=lambda e: None)
            assert ens.watches(1) == [Watch(session, "/e", "data")]
            assert all(ens.watches(sid) == [] for sid in ens.ids if sid != 1)
            tree = ens.tree(2)
            assert tree["/e"][0] == b"z"
            assert {p: v for p, v in tree.items() if p != "/zookeeper/config"} == \
                {p: v for p, v in _walk(client).items() if p != "/zookeeper/config"}
        finally:
            client.stop()
            client.close()


def test_process_ensemble_introspection_through_four_letter_words():
    with Ensemble(3) as ens:
        client = _client(ens.address(2))
        try:
            session = client.client_id[0]
            client.create("/lock", b"", ephemeral=True)
            last = client.set("/lock", b"held").mzxid
            client.exists("/lock", watch=lambda e: None)
            assert _poll(lambda: all(ens.last_zxid(sid) == last for sid in ens.ids))
            for sid in ens.ids:
                assert ens.ephemerals(session, sid) == ["/lock"]
                # kazoo asks for 10 s; maxSessionTimeout is 20 ticks of 200 ms
                assert ens.sessions(sid)[session] == Session(session, 4000, None, 1 if sid == 2 else 0)
            assert ens.watches(2) == [Watch(session, "/lock", None)]
            assert ens.watches(1) == []
            assert ens.tree(3)["/lock"][0] == b"held"
        finally:
            client.stop()
            client.close()
