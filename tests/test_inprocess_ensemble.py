"""InProcessEnsemble: three members in this process, over real sockets, with fault injection."""

import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from zkpy.testing.inprocess_ensemble import InProcessEnsemble


def _client(hosts: str) -> KazooClient:
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(20)
    return client


def _create_until_acknowledged(client: KazooClient, path: str, deadline: float = 20) -> None:
    end = time.time() + deadline
    while True:
        try:
            client.create(path, b"x")
            return
        except KazooException:
            if time.time() > end:
                raise
            time.sleep(0.05)


def test_members_serve_every_client_and_survive_a_leader_kill():
    with InProcessEnsemble(3) as ens:
        modes = sorted(ens.mode(s) for s in ens.ids)
        assert modes == ["follower", "follower", "leader"]
        clients = {sid: _client(ens.address(sid)) for sid in ens.ids}
        follower = next(s for s in ens.ids if ens.mode(s) == "follower")
        clients[follower].create("/through-a-follower", b"f")
        for client in clients.values():
            client.sync("/")
            assert client.get("/through-a-follower")[0] == b"f"
        for client in clients.values():
            client.stop()
            client.close()

        everyone = _client(ens.connect_string)
        leader = ens.leader()
        ens.kill(leader)
        assert not ens.alive(leader)
        ens.wait_serving(timeout=20)
        assert ens.leader() not in (None, leader)
        _create_until_acknowledged(everyone, "/after-the-kill")
        ens.start_server(leader)  # recovers from its data dir and rejoins
        ens.wait_serving(timeout=20)
        tree = ens.assert_replicas_identical()
        assert "/through-a-follower" in tree and "/after-the-kill" in tree
        everyone.stop()
        everyone.close()


def test_a_paused_leader_is_replaced_and_rejoins_as_a_follower():
    with InProcessEnsemble(3) as ens:
        client = _client(ens.connect_string)
        client.create("/before", b"")
        leader = ens.leader()
        ens.pause(leader)
        others = [s for s in ens.ids if s != leader]
        ens.wait_serving(sids=others, timeout=20)
        _create_until_acknowledged(client, "/while-paused")
        ens.resume(leader)
        ens.wait_serving(timeout=20)
        assert ens.mode(leader) == "follower"
        tree = ens.assert_replicas_identical()
        assert "/before" in tree and "/while-paused" in tree
        client.stop()
        client.close()


def test_an_isolated_leader_stops_serving_and_the_majority_goes_on():
    with InProcessEnsemble(3, proxied=True) as ens:
        leader = ens.leader()
        others = [s for s in ens.ids if s != leader]
        client = _client(",".join(ens.address(s) for s in others))
        ens.isolate(leader)
        end = time.time() + 20
        while ens.mode(leader) in ("leader", "follower") and time.time() < end:
            time.sleep(0.05)
        assert ens.mode(leader) not in ("leader", "follower"), "a leader without a quorum went on serving"
        ens.wait_serving(sids=others, timeout=20)
        _create_until_acknowledged(client, "/majority")
        ens.heal()
        ens.wait_serving(timeout=20)
        assert "/majority" in ens.assert_replicas_identical()
        client.stop()
        client.close()


def test_the_pytest_fixture(zkpy_inprocess_ensemble):
    client = _client(zkpy_inprocess_ensemble.connect_string)
    client.create("/fixture", b"1")
    zkpy_inprocess_ensemble.isolate(zkpy_inprocess_ensemble.leader())
    zkpy_inprocess_ensemble.heal()
    zkpy_inprocess_ensemble.wait_serving(timeout=20)
    assert "/fixture" in zkpy_inprocess_ensemble.assert_replicas_identical()
    client.stop()
    client.close()


def test_global_outstanding_limit_throttles_a_follower_without_losing_writes():
    """globalOutstandingLimit holds on every member: a follower whose client pipelines far past
    the limit stops reading from it until its forwarded writes come back, and answers all."""
    with InProcessEnsemble(3, settings={"globalOutstandingLimit": "5"}) as ens:
        follower = next(s for s in ens.ids if ens.mode(s) == "follower")
        client = _client(ens.address(follower))
        results = [client.create_async(f"/t{i}", b"x") for i in range(300)]
        assert [r.get(timeout=30) for r in results] == [f"/t{i}" for i in range(300)]
        clients = ens.members[follower].server.clients
        assert ens.members[follower].call(lambda: clients.throttles) > 0
        assert ens.members[follower].call(lambda: len(clients.throttled)) == 0
        client.stop()
        ens.assert_replicas_identical()
