"""The pytest plugin's fixtures, used as a user's test suite would use them."""

import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.retry import KazooRetry

pytest_plugins = ["pytester"]


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


# ------------------------------------------------------------ failure reports (through pytester)

FAILING_EXAMPLE = Path(__file__).parent / "plugin_examples" / "failing_example.py"


def test_a_failed_test_reports_its_wire_trace_and_server_logs(pytester):
    pytester.makepyfile(test_inner=FAILING_EXAMPLE.read_text())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert out.count(" zkpy wire trace ") == 2 and out.count(" zkpy server logs ") == 2
    # the standalone test's own traffic, decoded, with the reply's op, path, error and zxid
    assert re.search(r"0x[0-9a-f]+ -> create /app/config xid=\d+", out)
    assert re.search(r"0x[0-9a-f]+ <- setData /app/config xid=\d+ OK zxid=0x[0-9a-f]+", out)
    assert re.search(r"\[\d\] 0x[0-9a-f]+ <- create /locks/holder xid=\d+ OK zxid=0x1[0-9a-f]{8}", out)
    assert re.search(r"info +serving host=127\.0\.0\.1 port=\d+ tick_time=3000", out)  # a log line of the server
    for sid in (1, 2, 3):
        assert f"--- server {sid}:" in out  # each member's log tail


def test_a_passing_test_gets_no_zkpy_sections(pytester):
    pytester.makepyfile(test_inner="""
        def test_fine(zkpy_client):
            zkpy_client.create("/fine")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", timeout=60)
    result.assert_outcomes(passed=1)
    assert "zkpy wire trace" not in result.stdout.str()


INNER_PROCESS_ENSEMBLE = """
    import os

    def test_passes(zkpy_ensemble):
        with open(os.environ["ZKPY_TEST_RECORD"], "a") as f:
            f.write(zkpy_ensemble.base + "\\n")

    def test_fails(zkpy_ensemble):
        with open(os.environ["ZKPY_TEST_RECORD"], "a") as f:
            f.write(zkpy_ensemble.base + "\\n")
        assert False, "on purpose"
"""


@pytest.mark.parametrize("keep_always", [False, True])
def test_a_process_ensembles_logs_are_kept_when_its_test_fails(pytester, monkeypatch, keep_always):
    record = pytester.path / "bases.txt"
    monkeypatch.setenv("ZKPY_TEST_RECORD", str(record))
    pytester.makepyfile(test_inner=INNER_PROCESS_ENSEMBLE)
    args = ["-p", "no:cacheprovider"] + (["--zkpy-keep-logs"] if keep_always else [])
    result = pytester.runpytest_subprocess(*args, timeout=120)
    passed_base, failed_base = record.read_text().split()
    try:
        result.assert_outcomes(passed=1, failed=1)
        assert f"(logs and data kept in {failed_base})" in result.stdout.str()
        assert "--- server 1 (" in result.stdout.str()
        assert os.path.getsize(os.path.join(failed_base, "server1", "server.log")) > 0
        assert os.path.exists(passed_base) == keep_always
    finally:
        shutil.rmtree(failed_base, ignore_errors=True)
        shutil.rmtree(passed_base, ignore_errors=True)
