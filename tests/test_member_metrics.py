"""The latency summaries a member keeps per batch of commits (MemberMetrics.committed) must
hold what ZooKeeper records per txn: propagation_latency, applied-at minus each txn's prep
time; a learner's proposal_latency, the arrival of the batch of proposals that brought each
txn minus its prep time.  The batch code counts them by distinct value and finds each txn's
arrival by bisection; here it is checked against the per-txn definition."""

from __future__ import annotations

import random
from collections import deque

from zkpy.server.member_metrics import MemberMetrics
from zkpy.summary import Quantiles


def _reference(batches, arrivals):
    """Per txn, as the definition reads: (propagation latencies, proposal latencies)."""
    propagation, proposal = [], []
    marks = deque(arrivals)
    for commits, times, now in batches:
        for (zxid, _), t in zip(commits, times):
            if now >= t:
                propagation.append(now - t)
            while marks and marks[0][0] < zxid:
                marks.popleft()
            if marks and marks[0][1] >= t:
                proposal.append(marks[0][1] - t)
    return propagation, proposal


def _same(q: Quantiles, values: list[int]) -> bool:
    return (q.count, q.total, q.min if values else 0, q.max) == (len(values), sum(values),
                                                                 min(values, default=0), max(values, default=0))


def test_batch_latencies_are_the_per_txn_latencies() -> None:
    rng = random.Random(5)
    for _ in range(200):
        zxid, clock, batches, arrivals = 0, 1000, [], []
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(1, 40)
            commits, times = [], []
            for _ in range(n):
                zxid += 1
                clock += rng.choice([0, 0, 0, 1, 2])
                commits.append((zxid, b"r"))
                times.append(clock - rng.choice([0, 0, 5]))  # now and then a clock that went back
            batches.append((commits, times, clock + rng.randint(0, 9)))
        # The learner's arrival batches: a cut after some zxids, and perhaps none for the last ones.
        cuts = sorted(rng.sample(range(1, zxid + 1), rng.randint(0, min(zxid, 8))))
        if rng.random() < 0.7:
            cuts.append(zxid + rng.randint(0, 3))
        arrivals = [(z, 1000 + z // 2 + rng.randint(-3, 6)) for z in sorted(set(cuts))]
        m = MemberMetrics(0, ensemble=True)
        marks = deque(arrivals)
        for commits, times, now in batches:
            m.committed(commits, list(times), now, False, marks)
        propagation, proposal = _reference(batches, arrivals)
        assert _same(m.propagation, propagation)
        assert _same(m.proposal_latency, proposal), (arrivals, batches)
        assert m.commits_queued == zxid and m.commit_count == 0


def test_a_leader_counts_its_commits_and_no_proposal_latency() -> None:
    m = MemberMetrics(0, ensemble=True)
    m.committed([(1, b"r"), (2, b"r")], [10, 10], 12, True, deque([(5, 11)]))
    assert (m.commit_count, m.commits_queued, m.proposal_latency.count) == (2, 2, 0)
    assert m.propagation.count == 2 and m.propagation.total == 4
