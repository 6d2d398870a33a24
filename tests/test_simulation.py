"""Real members under a seeded simulation (zkpy/simulation/): simulated disk, network, clock and
clients; invariants checked after every step.  A failing seed replays exactly with
`zkpy simulate --seed N --config C`.

CI runs a bounded number of schedules per configuration; ZKPY_SIM_SCHEDULES=N runs N each
(ZKPY_SIM_START moves the first seed).
"""

import os

import pytest

from zkpy.protocol.codes import Op
from zkpy.simulation import disk as sim_disk
from zkpy.simulation.broken import broken_build
from zkpy.simulation.invariants import InvariantBroken
from zkpy.simulation.simulator import Simulator, quiet_logs
from zkpy.storage.records import encode_txn, frame
from zkpy.tree.datatree import Txn

CI_SCHEDULES = {"3+1": 40, "5": 30, "standalone": 80}
START = int(os.environ.get("ZKPY_SIM_START", "0"))


@pytest.fixture(autouse=True)
def _quiet():
    with quiet_logs():
        yield


def _schedules(config: str) -> int:
    return int(os.environ.get("ZKPY_SIM_SCHEDULES", CI_SCHEDULES[config]))


@pytest.mark.parametrize("config", ["3+1", "5", "standalone"])
def test_invariants_hold_under_faults(config):
    for seed in range(START, START + _schedules(config)):
        Simulator(seed, config).run()  # raises InvariantBroken naming the seed and step


@pytest.mark.parametrize("config", ["3+1", "standalone"])
def test_a_schedule_replays_exactly(config):
    a, b = Simulator(1234, config), Simulator(1234, config)
    a.run()
    b.run()
    assert a.fingerprint() == b.fingerprint()
    assert len(a.checker.acked) > 50  # and it did something


def _seeds_to_catch(config: str, limit: int = 200, first: int = 0) -> tuple[int, str]:
    for n, seed in enumerate(range(first, first + limit), 1):
        try:
            Simulator(seed, config).run()
        except InvariantBroken as e:
            return n, str(e)
    return 0, ""


@pytest.mark.parametrize("config", ["3+1", "5", "standalone"])
def test_a_log_that_acks_before_writing_is_caught(config):
    with broken_build("early-durable"):
        seeds, what = _seeds_to_catch(config)
    print(f"early-durable, {config}: caught after {seeds} seed(s): {what}")
    assert 0 < seeds <= 200
    assert "durable on" in what


@pytest.mark.parametrize("config", ["3+1", "5"])
def test_a_leader_that_reuses_an_epoch_is_caught(config):
    with broken_build("reuse-epoch"):
        seeds, what = _seeds_to_catch(config)
    print(f"reuse-epoch, {config}: caught after {seeds} seed(s): {what}")
    assert 0 < seeds <= 200


def test_a_leader_elected_before_its_sync_finished_that_leads_behind_its_log_is_caught():
    """The bug zkpy verify found (752 acknowledged writes lost), put back: it needs an UPTODATE
    lost while COMMITs arrive, which the network's kind cuts make (1 schedule in 300 of 3+1;
    seeds 150-249 hold one, 181 as of this commit); the fixed build passes the same seeds."""
    with broken_build("lose-history"):
        seeds, what = _seeds_to_catch("3+1", 100, first=150)
    print(f"lose-history, 3+1: caught after {seeds} seed(s): {what}")
    assert 0 < seeds <= 100 and "behind its own history" in what
    assert _seeds_to_catch("3+1", seeds, first=150) == (0, "")


def test_a_quorum_of_one_is_caught(monkeypatch):
    """A core that commits without a majority must be caught (as the old ZAB simulator showed)."""
    from zkpy.consensus import zab

    original = zab.Zab.__init__

    def one_is_enough(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.quorum = 1

    monkeypatch.setattr(zab.Zab, "__init__", one_is_enough)
    seeds, what = _seeds_to_catch("3+1", 50)
    assert 0 < seeds <= 50, what


def test_the_broken_builds_are_off_by_default():
    from zkpy.consensus import zab
    from zkpy.storage import logwriter

    assert logwriter.BROKEN_DURABLE_BEFORE_WRITE is False and zab.BROKEN_REUSE_EPOCH is False
    assert zab.BROKEN_COMMIT_WITHOUT_QUORUM is False  # zkpy verify --broken ack-before-quorum
    assert zab.BROKEN_APPLY_ONLY_ON_ADVANCE is False


# ---------------------------------------------------------------- the simulated disk itself


def _records(n: int) -> bytes:
    return b"".join(frame(encode_txn(Txn(z, 0, 1, z, Op.CREATE, (f"/n{z}", b"x", (), 0, 0))))
                    for z in range(1, n + 1))


def test_recovery_cuts_a_torn_tail_and_keeps_whole_records():
    d = sim_disk.SimDisk()
    d.append(_records(3))
    tail = _records(5)[len(_records(3)):]
    d.append(tail[: len(tail) - 3])  # what a crash left of a batch of two: the 5th record torn
    tree, log = sim_disk.recover(d)
    assert [z for z, _ in log] == [1, 2, 3, 4] and tree.last_zxid == 4
    assert sorted(d.zxids) == [1, 2, 3, 4]


def test_a_flipped_bit_is_caught_and_restored():
    import random

    d = sim_disk.SimDisk()
    d.append(_records(6))
    assert d.flip_bit(random.Random(3))
    tree, log = sim_disk.recover(d)
    assert d.stats.detected == 1 and len(log) == 6 and d.log == d.pristine


def test_a_recovery_that_skips_the_crc_is_caught(monkeypatch):
    """The check that a corrupt record is never applied silently can fail."""
    import random

    d = sim_disk.SimDisk()
    d.append(_records(6))
    assert d.flip_bit(random.Random(3))
    monkeypatch.setattr(sim_disk, "check", lambda payload, crc: True)
    with pytest.raises(sim_disk.StorageBroken, match="applied silently|not the records"):
        sim_disk.recover(d)
