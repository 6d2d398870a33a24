"""The pytest plugin's fixtures, used as a user's test suite would use them."""

import threading

from kazoo.client import KazooClient, KazooState
from kazoo.retry import KazooRetry


def test_server_and_client_fixtures(zkpy_server, zkpy_client):
    zkpy_client.create("/app/config", b"v1", makepath=True)
    zkpy_client.create("/app/lock", ephemeral=True)
    assert zkpy_client.get("/app/config")[0] == b"v1"
    lost = threading.Event()
    zkpy_client.add_listener(lambda state: lost.set() if state == KazooState.LOST else None)
    zkpy_server.expire_session(zkpy_client.client_id[0])
    assert lost.wait(10)
    assert zkpy_client.retry(zkpy_client.exists, "/app/lock") is None  # its ephemeral went with it


def test_ensemble_fixture_survives_an_isolated_leader(zkpy_ensemble):
    ens = zkpy_ensemble
    client = KazooClient(ens.connect_string, timeout=6,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5))
    client.start(20)
    try:
        client.create("/before", b"1")
        old = ens.leader()
        ens.isolate(old)
        client.retry(client.create, "/during", b"2")  # the majority elects a leader and goes on
        ens.heal()
        ens.wait_serving(timeout=30)
        tree = ens.assert_replicas_identical()
        assert tree["/before"][0] == b"1" and tree["/during"][0] == b"2"
    finally:
        client.stop()
        client.close()


def test_a_client_rides_out_a_server_pause_shorter_than_its_session(zkpy_server):
    """pause() hangs the server (as SIGSTOP would): the client loses its connection, and after
    resume() it reconnects to the same session with its ephemerals, as with a real hung server."""
    client = KazooClient(zkpy_server.connect_string, timeout=4,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2))
    client.start(10)
    try:
        client.create("/mine", ephemeral=True)
        session = client.client_id[0]
        suspended, back = threading.Event(), threading.Event()

        def listen(state):
            if state == KazooState.SUSPENDED:
                suspended.set()
            elif state == KazooState.CONNECTED and suspended.is_set():
                back.set()

        client.add_listener(listen)
        zkpy_server.pause()
        assert suspended.wait(10), "the client never noticed the hung server"
        zkpy_server.resume()
        assert back.wait(10), "the client did not reconnect after resume"
        assert client.client_id[0] == session
        assert client.exists("/mine").ephemeralOwner == session
    finally:
        client.stop()
        client.close()
