"""The ZAB core under a seeded simulator: lost, delayed, duplicated and reordered messages,
partitions, crashes with torn log tails, restarts.  Invariants are checked after every step
(see zkpy/consensus/simulator.py); a failing seed replays with `zkpy simulate --seed N`.

CI runs a bounded number of schedules; ZKPY_SIM_SCHEDULES=10000 runs more.
"""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkpy.consensus.simulator import Faults, Simulator

SCHEDULES = int(os.environ.get("ZKPY_SIM_SCHEDULES", "400"))


@settings(max_examples=SCHEDULES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(seed=st.integers(0, 2**32 - 1),
       voters=st.sampled_from([3, 3, 5]),
       observers=st.integers(0, 1),
       drop=st.floats(0, 0.2),
       duplicate=st.floats(0, 0.1),
       crash=st.floats(0, 0.05),
       partition=st.floats(0, 0.05),
       steps=st.integers(50, 400))
def test_invariants_hold_under_faults(seed, voters, observers, drop, duplicate, crash, partition, steps):
    faults = Faults(drop=drop, duplicate=duplicate, crash=crash, partition=partition)
    Simulator(seed, voters=voters, observers=observers, faults=faults).run(steps)


def test_a_schedule_replays_exactly():
    a, b = Simulator(1234), Simulator(1234)
    a.run(200)
    b.run(200)
    assert a.history == b.history and a.acked == b.acked and a.leaders == b.leaders


def test_the_checker_catches_a_broken_quorum(monkeypatch):
    """A core that commits without a majority must be caught (the invariants can fail)."""
    import pytest

    from zkpy.consensus import zab
    from zkpy.consensus.simulator import InvariantBroken

    original = zab.Zab.__init__

    def one_is_enough(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.quorum = 1

    monkeypatch.setattr(zab.Zab, "__init__", one_is_enough)
    with pytest.raises(InvariantBroken):
        for seed in range(20):
            Simulator(seed).run(300)


def test_the_in_memory_log_window_stays_bounded():
    """Long-running members keep only a window of the log in memory (older txns are in snapshots)."""
    sim = Simulator(77, faults=Faults(drop=0, duplicate=0, crash=0, partition=0))
    sim.run(300)
    committed = len(sim.acked)
    for node in sim.nodes.values():
        window = node.core.log_window
        assert committed > 3 * window  # the window was overrun several times over
        assert len(node.core.log) <= window + window // 16 + 1, f"server {node.sid} keeps {len(node.core.log)}"


def _sent(core) -> list:
    ready = core.ready()
    messages = list(ready.messages)
    return messages


def test_a_peer_whose_connection_comes_up_gets_our_vote_at_once():
    """Votes sent before a connection existed were lost; waiting for the resend tick made every
    fresh ensemble wait ~200 ms before it could even start the election's finalize wait."""
    from zkpy.consensus.zab import Zab

    core = Zab(1, {1, 2, 3}, set())
    _sent(core)
    core.peer_connected(2)
    assert [(to, m[0]) for to, m in _sent(core)] == [(2, "vote")]


def test_the_finalize_wait_is_skipped_only_when_every_voter_agrees():
    """A quorum waits ZooKeeper's finalize wait for a better vote; when every voter has voted the
    same (a vote at least as good as each one's own state) none can come, so it decides at once."""
    from zkpy.consensus.zab import FOLLOWING, LOOKING, Zab

    quorum_only = Zab(1, {1, 2, 3}, set())
    quorum_only.receive(2, ("vote", LOOKING, 2, 0, 0, quorum_only.logical_clock, 0))
    assert quorum_only.state == LOOKING and quorum_only.vote[2] == 2
    for _ in range(3):
        quorum_only.tick()
    assert quorum_only.state == FOLLOWING and quorum_only.leader == 2

    everyone = Zab(1, {1, 2, 3}, set())
    for sender in (2, 3):
        everyone.receive(sender, ("vote", LOOKING, 3, 0, 0, everyone.logical_clock, 0))
    assert everyone.state == FOLLOWING and everyone.leader == 3


def test_a_server_that_decided_in_this_round_counts_as_a_vote():
    """A voter that already follows our candidate answers with a FOLLOWING notification of the
    same round; like ZooKeeper's FLE, the looker counts it with the LOOKING votes."""
    from zkpy.consensus.zab import FOLLOWING, LOOKING, Zab

    core = Zab(1, {1, 2, 3}, set())
    core.receive(3, ("vote", LOOKING, 3, 0, 0, core.logical_clock, 0))
    assert core.state == LOOKING
    core.receive(2, ("vote", FOLLOWING, 3, 0, 0, core.logical_clock, 0))
    assert core.state == FOLLOWING and core.leader == 3
    stale = Zab(1, {1, 2, 3}, set())
    stale.receive(3, ("vote", LOOKING, 3, 0, 0, stale.logical_clock, 0))
    stale.receive(2, ("vote", FOLLOWING, 3, 0, 0, stale.logical_clock + 5, 0))  # another round
    assert stale.state == LOOKING


def test_a_follower_rejoins_at_once_when_its_leader_announces_it_leads():
    """The FOLLOWERINFO a follower sent while its leader was still looking is dropped by it;
    the leader's LEADING notification makes the follower send it again without a tick."""
    from zkpy.consensus.zab import FOLLOWING, LEADING, LOOKING, Zab

    core = Zab(1, {1, 2, 3}, set())
    _sent(core)
    for sender in (2, 3):  # a quorum votes for server 3
        core.receive(sender, ("vote", LOOKING, 3, 0, 0, core.logical_clock, 0))
    for _ in range(3):
        core.tick()  # the finalize wait
    assert core.state == FOLLOWING and core.leader == 3
    _sent(core)
    core.receive(3, ("vote", LEADING, 3, 0, 0, core.logical_clock, 1))
    assert [(to, m[0]) for to, m in _sent(core)] == [(3, "followerinfo")]
