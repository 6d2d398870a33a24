"""Sessions: timeout negotiation, reconnect with id and password, expiry deleting
ephemerals and firing watches, closeSession, SESSIONEXPIRED for a dead session."""

import threading
import time

import pytest
from kazoo.protocol.states import KazooState

from zkpy.protocol.codes import Op

from zkpy.testing.client import RawClient


def test_timeout_is_clamped(server):
    # tick 200 ms: [400, 4000]
    assert RawClient(server.host, server.port, timeout_ms=1).timeout == 400
    assert RawClient(server.host, server.port, timeout_ms=10**6).timeout == 4000
    assert RawClient(server.host, server.port, timeout_ms=1000).timeout == 1000


def test_reconnect_keeps_session_and_ephemerals(server):
    a = RawClient(server.host, server.port, timeout_ms=2000)
    a.create("/keep", flags=1)
    a.sock.close()
    b = RawClient(server.host, server.port, timeout_ms=2000, session_id=a.session_id, passwd=a.passwd)
    assert b.session_id == a.session_id and b.timeout == 2000
    assert b.call(Op.EXISTS, ("/keep", False))[0] == 0
    b.close()


def test_wrong_password_is_refused(server):
    a = RawClient(server.host, server.port)
    with pytest.raises(ConnectionError):
        b = RawClient(server.host, server.port, session_id=a.session_id, passwd=b"x" * 16)
        assert b.timeout == 0 and b.session_id == 0
        b.call(Op.PING, (), xid=-2)
    a.close()


def test_session_expires_without_heartbeats(server):
    watcher = RawClient(server.host, server.port, timeout_ms=4000)
    silent = RawClient(server.host, server.port, timeout_ms=400)
    silent.create("/dies", flags=1)
    watcher.call(Op.EXISTS, ("/dies", True))
    deadline = time.time() + 5
    while time.time() < deadline and not watcher.events:
        time.sleep(0.1)
        watcher.call(Op.PING, (), xid=-2)
    assert [(t, p) for t, _, p in watcher.events] == [(2, "/dies")]
    # The dead session cannot come back.
    again = RawClient(server.host, server.port, session_id=silent.session_id, passwd=silent.passwd)
    assert again.timeout == 0 and again.session_id == 0
    watcher.close()


def test_heartbeats_keep_a_session_alive(make_client):
    c = make_client(timeout=0.4)
    c.create("/alive", ephemeral=True)
    time.sleep(1.5)
    assert c.exists("/alive") is not None


def test_expired_session_is_seen_by_kazoo(make_client, server):
    a = make_client()
    other = make_client()
    a.create("/gone", ephemeral=True)
    states = []
    lost = threading.Event()

    def listener(state):
        states.append(state)
        if state == KazooState.LOST:
            lost.set()

    a.add_listener(listener)
    server.expire_session(a.client_id[0])
    assert other.exists("/gone") is None
    assert lost.wait(10)


def test_close_session_removes_ephemerals_at_once(make_client):
    a, b = make_client(), make_client()
    a.create("/bye", ephemeral=True)
    a.stop()
    assert b.exists("/bye") is None


def test_client_ahead_of_server_is_refused(server):
    with pytest.raises(ConnectionError):
        RawClient(server.host, server.port, last_zxid=10**9)
