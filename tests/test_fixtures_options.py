"""The plugin's fixture options (the zkpy marker, ini and command-line defaults) and its shared fixtures."""

import pytest
from kazoo.client import KazooClient

from zkpy.testing import InProcessEnsemble

pytest_plugins = ["pytester"]


@pytest.mark.zkpy(tick_time=150, settings={"maxClientCnxns": 7})
def test_the_marker_configures_the_server(zkpy_server, zkpy_client):
    conf = zkpy_server.four_letter_word("conf")
    assert "tickTime=150" in conf and "maxClientCnxns=7" in conf and "maxSessionTimeout=3000" in conf
    zkpy_client.create("/x")  # the client fixture uses that server


@pytest.mark.zkpy(max_session_timeout=4000)
def test_the_marker_passes_server_options(zkpy_server):
    """In-process servers take any Config field by name (ZkpyServer's options)."""
    client = KazooClient(zkpy_server.connect_string, timeout=30)
    client.start(20)
    try:
        assert "maxSessionTimeout=4000" in zkpy_server.four_letter_word("conf")
        sessions = zkpy_server.call(lambda: dict(zkpy_server.server.tree.sessions))
        assert sessions == {client.client_id[0]: 4000}  # the 30 s the client asked for, capped
    finally:
        client.stop()
        client.close()


@pytest.mark.zkpy(size=5, inprocess=True, tick_time=100)
def test_the_marker_sizes_an_inprocess_ensemble(zkpy_ensemble):
    assert isinstance(zkpy_ensemble, InProcessEnsemble)
    modes = sorted(zkpy_ensemble.mode(sid) for sid in zkpy_ensemble.ids)
    assert modes == ["follower"] * 4 + ["leader"]
    client = KazooClient(zkpy_ensemble.connect_string, timeout=10)
    client.start(20)
    try:
        client.create("/five")
    finally:
        client.stop()
        client.close()


SHARED = """
    import threading

    import pytest
    from kazoo.client import KazooClient, KazooState

    pytestmark = pytest.mark.zkpy(tick_time=150)
    seen = {}

    @pytest.mark.parametrize("round", [1, 2, 3])
    def test_each_test_starts_from_an_empty_tree(FIXTURE, round):
        seen.setdefault("backend", FIXTURE)
        assert FIXTURE is seen["backend"]  # shared, not restarted
        if "lost" in seen:  # the previous round's client, left open: its session was ended
            assert seen["lost"].wait(10)
        client = KazooClient(FIXTURE.connect_string, timeout=10)
        client.start(20)
        assert client.get_children("/") == ["zookeeper"]
        assert client.exists("/zookeeper/quota") is not None
        client.create("/app/config/x", b"1", makepath=True)
        stat = client.exists("/app/config/x")
        assert stat.czxid > seen.get("last_zxid", 0)  # zxids go on across tests
        seen["last_zxid"] = stat.czxid
        client.create("/app/lock", ephemeral=True)
        lost = seen["lost"] = threading.Event()
        client.add_listener(lambda state: lost.set() if state == KazooState.LOST else None)
"""


@pytest.mark.parametrize("fixture", ["zkpy_server_module", "zkpy_server_session", "zkpy_ensemble_module"])
def test_shared_fixtures_are_reset_between_tests(pytester, fixture):
    pytester.makeini("[pytest]\nzkpy_inprocess = true\n")
    pytester.makepyfile(test_shared=SHARED.replace("FIXTURE", fixture))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=3)


def test_ini_options_set_the_defaults(pytester):
    pytester.makeini("[pytest]\nzkpy_size = 5\nzkpy_inprocess = true\nzkpy_tick_time = 120\n")
    pytester.makepyfile(test_ini="""
        from zkpy.testing import InProcessEnsemble

        def test_defaults(zkpy_ensemble, zkpy_server):
            assert isinstance(zkpy_ensemble, InProcessEnsemble) and len(zkpy_ensemble.ids) == 5
            assert "tickTime=120" in zkpy_server.four_letter_word("conf")
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120).assert_outcomes(passed=1)


def test_zkpy_apache_runs_the_same_test_against_apache_zookeeper(pytester):
    pytester.makepyfile(test_apache="""
        def test_create(zkpy_server, zkpy_client):
            print("BACKEND", type(zkpy_server).__name__)
            zkpy_client.create("/a", b"1")
            assert zkpy_client.get("/a")[0] == b"1"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--zkpy-apache", timeout=120)
    result.assert_outcomes(passed=1)
    assert "BACKEND ApacheZooKeeper" in result.stdout.str()
