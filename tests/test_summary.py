"""ZooKeeper's summaries as mntr and Prometheus print them: the reservoir behind p50..p999
must stay a uniform sample of every value added, however the values came (one by one, or as
a batch's `add_many`), or the percentiles of a long-running server describe its first
seconds only."""

from __future__ import annotations

import random

import pytest

from zkpy.summary import RESERVOIR, Quantiles, Runs, Summary

N = 100_000


def _deciles(samples: list[int], n: int) -> list[float]:
    counts = [0] * 10
    for value in samples:
        counts[value * 10 // n] += 1
    return [c / len(samples) for c in counts]


@pytest.mark.parametrize("how", ["add", "add_many"])
def test_the_reservoir_is_a_uniform_sample_of_all_values(how: str) -> None:
    random.seed(7)
    q = Quantiles()
    if how == "add":
        for value in range(N):
            q.add(value)
    else:
        value = 0
        while value < N:  # batches of one value each, of 1-300 requests
            n = min(random.randint(1, 300), N - value)
            q.add_many(value, n)
            value += n
    assert q.count == N and len(q.samples) == RESERVOIR
    # Each tenth of the values holds a tenth of the reservoir: 410 of 4096, sd about 19.
    assert all(0.08 < share < 0.12 for share in _deciles(q.samples, N)), _deciles(q.samples, N)


def test_a_reservoir_that_has_not_filled_holds_every_value_and_exact_quantiles() -> None:
    q = Quantiles()
    for value in range(1, 101):
        q.add(value)
    q.add_many(1000, 3)
    assert sorted(q.samples) == [*range(1, 101), 1000, 1000, 1000]
    rows = dict(q.rows("x"))
    # Dropwizard's UniformSnapshot over 103 values: p50 at position 52 (value 52), p99 at 102.96.
    assert rows["p50_x"] == 52 and rows["p99_x"] == 1000 and rows["max_x"] == 1000 and rows["cnt_x"] == 103
    assert rows["min_x"] == 1 and rows["sum_x"] == 5050 + 3000


def test_reset_starts_the_reservoir_again() -> None:
    q = Quantiles()
    for value in range(3 * RESERVOIR):
        q.add(value)
    q.reset()
    assert q.count == 0 and q.samples == []
    for value in range(2 * RESERVOIR):
        q.add(-value)
    assert len(q.samples) == RESERVOIR and all(v <= 0 for v in q.samples)
    assert _deciles([-v for v in q.samples], 2 * RESERVOIR)[0] > 0.08  # replacements went on after the reset


def test_summary_avg_is_rounded_as_zookeeper_prints_it() -> None:
    s = Summary()
    for value in (1, 2, 2):
        s.add(value)
    assert dict(s.rows("y")) == {"avg_y": 1.6667, "min_y": 1, "max_y": 2, "cnt_y": 3, "sum_y": 5}


def test_runs_count_every_value_as_adding_them_one_by_one() -> None:
    """The write path counts latencies as runs of equal values (Runs); read at any moment
    (srvr, mntr, a scrape), the summary must be what adding each value would have made."""
    rng = random.Random(11)
    runs, each = Runs(Summary()), Summary()
    for _ in range(5000):
        value = rng.choice([0, 0, 0, 1, 1, 2, 7, 40])
        runs.add(value) if rng.random() < 0.5 else _inline_add(runs, value)
        each.add(value)
        if rng.random() < 0.05:
            folded = runs.folded()
            assert (folded.count, folded.total, folded.min, folded.max) == (each.count, each.total, each.min, each.max)
    folded = runs.folded()
    assert (folded.count, folded.total, folded.min, folded.max) == (each.count, each.total, each.min, each.max)
    assert runs.value == value  # the last latency (cons' llat) stays readable after a fold
    runs.reset()
    assert runs.folded().count == 0 and runs.run == 0


def _inline_add(runs: Runs, value: int) -> None:
    """What connection.write_done writes out instead of calling Runs.add."""
    if value == runs.value:
        runs.run += 1
    else:
        runs.start(value)
