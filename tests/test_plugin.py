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
