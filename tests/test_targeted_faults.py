"""Faults on demand (zkpy/server/faults.py, zkpy/testing/faults.py), through kazoo over real sockets.

The narrow faults that break applications: a reply lost after its write committed, an
error on exactly one znode and op, one session's requests delayed, one member's slow or
failing fsync; each installed for a block and gone after it.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, ConnectionLoss, NoAuthError, NotEmptyError
from kazoo.retry import KazooRetry

from zkpy.protocol.codes import Err
from zkpy.testing import Ensemble, InProcessEnsemble, ZkpyServer
from zkpy.testing.faults import (
    close_before_commit,
    delay,
    drop_reply,
    error,
    fail_fsync,
    slow_fsync,
)

T = TypeVar("T")


def _client(hosts: str) -> KazooClient:
    # Reconnect quickly after a closed connection (kazoo's default backoff grows).
    client = KazooClient(hosts=hosts, timeout=10,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2))
    client.start(20)
    return client


def _once_connected(fn: Callable[[], T], timeout: float = 20) -> T:
    """fn(), retried while the client is reconnecting (ConnectionLoss); other errors pass through."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except ConnectionLoss:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def server():
    with ZkpyServer(tick_time=200) as s:
        yield s


@pytest.fixture
def clients(server):
    made: list[KazooClient] = []

    def make() -> KazooClient:
        made.append(_client(server.connect_string))
        return made[-1]

    yield make
    for c in made:
        c.stop()
        c.close()


def test_a_reply_lost_after_commit_leaves_the_write_applied(server, clients):
    """Kafka's partition-state write: the setData commits, its answer never comes; the client's
    retry with the old expected version gets BadVersion, and a read shows the write was applied."""
    zk = clients()
    session = zk.client_id[0]
    zk.create("/brokers/topics/t/partitions/0/state", b"leader=1", makepath=True)
    with server.faults.inject(drop_reply(), op="setData", path="/brokers/topics/*/state", count=1) as fault:
        with pytest.raises(ConnectionLoss):
            zk.set("/brokers/topics/t/partitions/0/state", b"leader=2", version=0)
        assert fault.fired == 1
        with pytest.raises(BadVersionError):
            _once_connected(lambda: zk.set("/brokers/topics/t/partitions/0/state", b"leader=2", version=0))
        data, stat = zk.get("/brokers/topics/t/partitions/0/state")
        assert (data, stat.version) == (b"leader=2", 1)
    assert zk.client_id[0] == session  # the same session throughout: only the connection was lost


def test_an_error_only_for_the_matched_op_and_path(server, clients):
    zk = clients()
    zk.create("/guarded/a", b"a", makepath=True)
    zk.create("/open", b"o")
    with server.faults.inject(error(Err.NOAUTH), op="getData", path="/guarded/*") as fault:
        with pytest.raises(NoAuthError):
            zk.get("/guarded/a")
        assert zk.get("/open")[0] == b"o"  # another path
        assert zk.exists("/guarded/a") is not None  # another op
        zk.set("/guarded/a", b"b")  # another op, a write
        with pytest.raises(NoAuthError):
            zk.get("/guarded/a")  # every match, without a count
        assert fault.fired == 2
    assert zk.get("/guarded/a")[0] == b"b"  # the block ended: the rule is gone


def test_connection_loss_on_exactly_the_epoch_write_fires_once_and_applies_nothing(server, clients):
    zk = clients()
    zk.create("/controller_epoch", b"1")
    zk.create("/other", b"x")
    with server.faults.inject(error(Err.CONNECTIONLOSS), op="setData", path="/controller_epoch",
                              count=1) as fault:
        zk.set("/other", b"y")  # not the epoch
        with pytest.raises(ConnectionLoss):
            zk.set("/controller_epoch", b"2")
        # Closed before it was processed: nothing was applied, and the retry succeeds (count=1).
        assert _once_connected(lambda: zk.get("/controller_epoch"))[1].version == 0
        assert zk.set("/controller_epoch", b"2").version == 1
        assert fault.fired == 1


def test_a_multi_matches_by_any_sub_ops_path(server, clients):
    zk = clients()
    zk.create("/dir/child", b"", makepath=True)
    with server.faults.inject(error(Err.NOTEMPTY), op="multi", path="/dir/child", count=1):
        tx = zk.transaction()
        tx.create("/elsewhere", b"")
        tx.set_data("/dir/child", b"new")
        with pytest.raises(NotEmptyError):
            tx.commit()
    assert zk.exists("/elsewhere") is None  # the multi was refused as a whole


def test_a_probability_fires_the_same_requests_for_the_same_seed(server, clients):
    zk = clients()
    zk.create("/p", b"")

    def pattern(seed: int) -> list[bool]:
        failed = []
        with server.faults.inject(error(Err.NOAUTH), op="getData", path="/p", probability=0.5, seed=seed) as fault:
            for _ in range(40):
                try:
                    zk.get("/p")
                    failed.append(False)
                except NoAuthError:
                    failed.append(True)
            assert fault.fired == sum(failed)
        return failed

    first = pattern(7)
    assert 5 < sum(first) < 35  # about half
    assert pattern(7) == first  # a run replays
    assert pattern(8) != first


def test_the_context_manager_removes_the_rule(server, clients):
    zk = clients()
    zk.create("/n", b"")
    with server.faults.inject(error(Err.NOAUTH), op="getData"), pytest.raises(NoAuthError):
        zk.get("/n")
    assert zk.get("/n")[0] == b""
    # And the server is back to one test of `None` per request.
    assert server.call(lambda: server.server.member.faults) is None


def test_close_before_commit_still_commits_the_write(server, clients):
    zk = clients()
    zk.create("/c", b"old")
    with server.faults.inject(close_before_commit(), op="setData", path="/c", count=1), pytest.raises(ConnectionLoss):
        zk.set("/c", b"new")
    assert _once_connected(lambda: zk.get("/c"))[0] == b"new"


def test_a_delay_holds_only_the_matched_session(server, clients):
    slow, fast = clients(), clients()
    slow.create("/d", b"d")
    with server.faults.inject(delay(2.0), session=slow.client_id[0], op="getData") as fault:
        started = time.monotonic()
        slow_get = slow.get_async("/d")
        slow_exists = slow.exists_async("/d")  # behind the delayed request: answered after it
        time.sleep(0.1)
        assert fast.get("/d")[0] == b"d"
        assert time.monotonic() - started < 1.5  # the other session was not held
        assert slow_get.get(timeout=10)[0] == b"d"
        assert time.monotonic() - started >= 1.9
        assert slow_exists.get(timeout=10) is not None
        assert fault.fired == 1
    assert slow.get("/d")[0] == b"d"


def _follower(ens: Ensemble) -> int:
    return next(s for s in ens.ids if ens.mode(s) == "follower")


def test_a_slow_fsync_on_one_follower_leaves_the_quorum_answering():
    with InProcessEnsemble(3) as ens:
        leader = ens.leader()
        slow = _follower(ens)
        zk = _client(ens.address(leader))
        try:
            zk.create("/before", b"")
            with ens.faults.inject(slow_fsync(4.0), member=slow) as fault:
                started = time.monotonic()
                for i in range(5):
                    zk.create(f"/w{i}", b"")
                elapsed = time.monotonic() - started
                assert fault.fired >= 1  # the follower's log did get a slow write
                assert elapsed < 3.0, f"the quorum waited for the slow follower: {elapsed:.1f}s"
            # The slow follower catches up once its writes finish.
            follower_zk = _client(ens.address(slow))
            deadline = time.monotonic() + 30
            while follower_zk.exists("/w4") is None:
                assert time.monotonic() < deadline, "the slow follower never caught up"
                follower_zk.sync("/")
                time.sleep(0.1)
            follower_zk.stop()
            follower_zk.close()
        finally:
            zk.stop()
            zk.close()


def test_a_failed_fsync_on_a_follower_makes_it_leave_while_the_others_go_on():
    with InProcessEnsemble(3) as ens:
        leader = ens.leader()
        failing = _follower(ens)
        zk = _client(ens.address(leader))
        try:
            with ens.faults.inject(fail_fsync(errno.EIO), member=failing, count=1) as fault:
                zk.create("/a", b"")
                deadline = time.monotonic() + 20
                while ens.mode(failing) in ("follower", "leader"):
                    assert time.monotonic() < deadline, f"server {failing} did not leave the ensemble"
                    time.sleep(0.05)
                assert fault.fired == 1
            for i in range(5):
                zk.create(f"/after{i}", b"")  # the leader and the other follower are a quorum
            others = [s for s in ens.ids if s != failing]
            assert sorted(ens.mode(s) for s in others) == ["follower", "leader"]
            assert "/after4" in ens.assert_replicas_identical(others)
        finally:
            zk.stop()
            zk.close()


def test_the_faults_file_of_zkpy_serve_processes():
    """Ensemble.faults writes the members' `zkpy serve --faults` file; the same API as in-process."""
    with Ensemble(3) as ens:
        zk = _client(ens.connect_string)
        try:
            zk.create("/guarded", b"g")
            zk.create("/state", b"s")
            with ens.faults.inject(error(Err.NOAUTH), op="getData", path="/guarded") as fault:
                with pytest.raises(NoAuthError):
                    zk.get("/guarded")
                assert zk.get("/state")[0] == b"s"
                deadline = time.monotonic() + 10
                while fault.fired != 1:  # reported by the member within a tick
                    assert time.monotonic() < deadline, f"fired={fault.fired}"
                    time.sleep(0.05)
            assert zk.get("/guarded")[0] == b"g"
            with ens.faults.inject(drop_reply(), op="setData", path="/state", count=1):
                with pytest.raises(ConnectionLoss):
                    zk.set("/state", b"t", version=0)
                with pytest.raises(BadVersionError):
                    _once_connected(lambda: zk.set("/state", b"t", version=0))
            assert zk.get("/state")[1].version == 1
        finally:
            zk.stop()
            zk.close()
