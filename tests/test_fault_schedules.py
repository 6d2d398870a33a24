"""Fault schedules (zkpy.verify.strategies.fault_schedules) and apply_fault on a real ensemble.

The strategy's promise: a schedule never has a majority killed at once (a partition may still
leave no quorum for a while) and ends with every member up and the network healed.  apply_fault's: each fault does what it says on an InProcessEnsemble,
so that a user's property-based test of a recipe under faults checks what it means to.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException

from zkpy.testing import InProcessEnsemble, ZkpyServer
from zkpy.verify import (ExpireClient, Heal, History, Kill, Partition, Pause, Recorder, Restart, apply_fault, check,
                         fault_schedules)


@given(fault_schedules(members=5, max_faults=12))
@settings(max_examples=300, deadline=None)
def test_a_schedule_never_kills_a_majority_and_ends_healed(schedule):
    down: set[int] = set()
    for fault in schedule:
        if isinstance(fault, Kill):
            down.add(fault.member)
        elif isinstance(fault, Restart):
            down.discard(fault.member)
        assert len(down) <= 2, schedule  # 3 of 5 always up
        if isinstance(fault, Partition):
            assert 1 <= len(fault.members) <= 2, schedule
    assert not down and isinstance(schedule[-1], Heal), schedule


def test_apply_fault_does_what_each_fault_says():
    with InProcessEnsemble(3, proxied=True) as ens:
        ens.wait_serving()
        client = KazooClient(ens.connect_string)
        client.start()
        try:
            apply_fault(ens, Kill(2))
            assert not ens.alive(2)
            apply_fault(ens, Kill(2))  # already down: nothing to do
            apply_fault(ens, Restart(2))
            assert ens.alive(2)
            session = client.client_id[0]
            assert session in ens.sessions(ens.leader())
            apply_fault(ens, ExpireClient(0), [client])
            _wait_for(lambda: session not in ens.sessions(ens.leader()))
            apply_fault(ens, Pause(3, 0.1))
            apply_fault(ens, Partition((1,)))
            apply_fault(ens, Heal())
            ens.wait_serving()
        finally:
            client.stop()
            client.close()


@given(fault_schedules(members=3, clients=2, max_faults=4, virtual_time=False).filter(lambda s: len(s) >= 4))
@settings(max_examples=2, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_counters_stay_linearizable_under_a_drawn_fault_schedule(schedule):
    """What a user's test looks like: a recorded workload while a drawn schedule runs."""
    with InProcessEnsemble(3, proxied=True) as ens:
        ens.wait_serving()
        history, done = History(), threading.Event()
        recs = [Recorder(KazooClient(ens.connect_string, timeout=4), history, f"c{i}") for i in range(2)]

        def work(rec: Recorder) -> None:
            rec.client.start()
            while not done.is_set():
                try:
                    rec.counter_add("/n")
                    rec.sync()
                    rec.counter_get("/n")
                except KazooException:
                    time.sleep(0.05)
                    if rec.client.state == KazooState.LOST:  # expired by the schedule: a new session
                        with contextlib.suppress(Exception):
                            rec.client.restart()

        threads = [threading.Thread(target=work, args=(rec,)) for rec in recs]
        [t.start() for t in threads]
        _wait_for(lambda: len(history) >= 30)
        for fault in schedule:
            apply_fault(ens, fault, [rec.client for rec in recs])
        ens.wait_serving()
        settled = len(history)
        _wait_for(lambda: len(history) >= settled + 30)  # and it serves again after the faults
        done.set()
        [t.join(30) for t in threads]
        [rec.stop() for rec in recs]
        report = check(history)
        assert report.ok and len(history) >= settled + 30, (schedule, report)


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the workload made no progress"
        time.sleep(0.01)


def test_a_single_server_refuses_the_faults_it_cannot_do():
    with ZkpyServer() as server:
        for fault in (Kill(1), Restart(1), Partition((1,))):
            with pytest.raises(TypeError, match="use an ensemble"):
                apply_fault(server, fault)
        apply_fault(server, Pause(1, 0.05))
        apply_fault(server, Heal())  # nothing to heal
