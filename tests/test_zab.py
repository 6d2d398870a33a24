"""Unit tests of the pure ZAB core (zkpy/consensus/zab.py): no simulator, no I/O.

The core under faults, driven through real members, is tests/test_simulation.py.
"""

from zkpy.consensus.zab import Zab, make_zxid


def test_the_in_memory_log_window_stays_bounded():
    """Long-running members keep only a window of the log in memory (older txns are in snapshots)."""
    core = Zab(1, {1}, set(), log_window=50)
    for counter in range(1, 1001):
        zxid = make_zxid(0, counter)
        core.propose(zxid, b"txn %d" % counter)
        core.persisted(zxid)
        core.ready()
    assert core.applied_zxid == make_zxid(0, 1000)
    assert len(core.log) <= 50 + 50 // 16 + 1, len(core.log)
    assert core.log[-1][0] == make_zxid(0, 1000)


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
