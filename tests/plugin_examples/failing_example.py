"""Tests that fail on purpose, to show what the zkpy plugin adds to a failure report.

Not collected by the suite (the name does not start with test_); run by hand:

    python -m pytest tests/plugin_examples/failing_example.py

tests/test_plugin.py runs it through pytester and checks the report's sections.
"""


def test_config_update_is_seen(zkpy_client):
    zkpy_client.create("/app/config", b"v1", makepath=True)
    zkpy_client.set("/app/config", b"v2")
    assert zkpy_client.get("/app/config")[0] == b"v1"  # fails: v2 was written


def test_lock_holder_in_an_ensemble(zkpy_inprocess_ensemble):
    from kazoo.client import KazooClient

    client = KazooClient(zkpy_inprocess_ensemble.connect_string, timeout=10)
    client.start(20)
    try:
        client.create("/locks/holder", b"me", ephemeral=True, makepath=True)
        assert client.get_children("/locks") == []  # fails: the lock is held
    finally:
        client.stop()
        client.close()
