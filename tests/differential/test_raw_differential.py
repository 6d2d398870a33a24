"""Differential tests on the raw protocol: the same randomized sequences against zkpy and Apache ZooKeeper 3.8.

Results, error codes, Stat fields (but times; ephemeralOwner as the session's label),
created paths, children, ACLs and every session's watch events must be identical.
Scale with ZKPY_DIFF_SEEDS and ZKPY_DIFF_OPS.
"""

import os

import pytest

from zkpy.testing.external import ApacheZooKeeper, ZkpyProcess, apache_zookeeper_available

from .raw_workload import Driver, run

SEEDS = int(os.environ.get("ZKPY_DIFF_SEEDS", "4"))
OPS = int(os.environ.get("ZKPY_DIFF_OPS", "2600"))
SESSIONS = 8
PROPS = {"zookeeper.extendedTypesEnabled": "true", "znode.container.checkIntervalMs": "3600000"}


def _require_zookeeper():
    if not apache_zookeeper_available():
        if os.environ.get("CI"):
            pytest.fail("Apache ZooKeeper is not installed (apt-get install zookeeper zookeeper-bin)")
        pytest.skip("Apache ZooKeeper is not installed")


def _transcript(server_cls, seed: int):
    with server_cls(java_props=PROPS) as server:
        driver = Driver(server.host, server.port, SESSIONS)
        driver.sessions[0].client.call  # noqa: B018
        # /d is the namespace the workload plays in
        driver.call(0, 1, ("/d", b"", [(31, "world", "anyone")], 0, -1))
        return run(driver, seed, OPS, SESSIONS)


@pytest.mark.parametrize("seed", range(SEEDS))
def test_raw_protocol_transcript_same_as_apache_zookeeper(seed):
    _require_zookeeper()
    expected = _transcript(ApacheZooKeeper, seed)
    actual = _transcript(ZkpyProcess, seed)
    assert len(actual) == len(expected)
    for want, got in zip(expected, actual):
        assert got == want, f"seed {seed}, step {want[0]}: {want[1]!r}\n  zookeeper: {want[2]!r}\n  zkpy:      {got[2]!r}"
