"""ZooKeeper's summaries, as its default metrics provider keeps them (no I/O, no imports).

- `Summary` (AvgMinMaxCounter, DetailLevel.BASIC): count, sum, min, max; `mntr` prints
  `avg_<name>` (4 decimals, a float), `min_`, `max_`, `cnt_`, `sum_`;
- `Quantiles` (AvgMinMaxPercentileCounter, DetailLevel.ADVANCED): the same plus `p50_`, `p95_`,
  `p99_`, `p999_`, from a uniform reservoir of 4096 samples (Vitter's algorithm R, as
  ZooKeeper's ResettableUniformReservoir), quantiles interpolated as Dropwizard's
  UniformSnapshot does and rounded to integers.

`add` is a few attribute operations (plus, for `Quantiles`, a list store while the reservoir
fills); callers add on batches where ZooKeeper's meaning allows (`add_many`: one value for n
requests).
"""

from __future__ import annotations

import math
import random
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterator

RESERVOIR = 4096
_INVERSE = 1.0 / RESERVOIR
_TINY = 5e-324  # the smallest float above 0.0
_SCALE = Decimal("0.0001")
_random, _log, _log1p = random.random, math.log, math.log1p
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))


class Summary:
    __slots__ = ("count", "total", "min", "max")

    def __init__(self) -> None:
        self.count = self.total = self.max = 0
        self.min = 0

    def add(self, value: int) -> None:
        if not self.count or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def add_many(self, value: int, n: int) -> None:
        """`n` samples of `value` (n requests of one batch)."""
        if n <= 0:
            return
        if not self.count or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += n
        self.total += value * n

    def reset(self) -> None:
        self.count = self.total = self.max = self.min = 0

    def avg(self) -> float:
        # new BigDecimal(total / (double) count).setScale(4, HALF_UP); 0.0 before the first sample.
        if not self.count:
            return 0.0
        return float(Decimal(self.total / self.count).quantize(_SCALE, ROUND_HALF_UP))

    def rows(self, name: str) -> Iterator[tuple[str, int | float]]:
        yield "avg_" + name, self.avg()
        yield "min_" + name, self.min
        yield "max_" + name, self.max
        yield "cnt_" + name, self.count
        yield "sum_" + name, self.total


class Runs:
    """Samples that come in runs of equal values, counted into `summary` a run at a time.
    The writes answered in one batch were mostly received in one batch, so their latencies
    are equal: the write path adds one with a comparison and an integer add, written out
    where it runs (`if v == runs.value: runs.run += 1` / `else: runs.start(v)`)."""

    __slots__ = ("value", "run", "summary")

    def __init__(self, summary: Summary) -> None:
        self.summary = summary
        self.value = self.run = 0

    def add(self, value: int) -> None:
        if value == self.value:
            self.run += 1
        else:
            self.start(value)

    def start(self, value: int) -> None:
        """A run ended: count it and start the next with `value`."""
        if self.run:
            self.summary.add_many(self.value, self.run)
        self.value, self.run = value, 1

    def folded(self) -> Summary:
        """The summary, the open run counted (later equal values go on counting from 0)."""
        if self.run:
            self.summary.add_many(self.value, self.run)
            self.run = 0
        return self.summary

    def reset(self) -> None:
        self.summary.reset()
        self.value = self.run = 0


class Quantiles(Summary):
    """A uniform reservoir of RESERVOIR samples, as ZooKeeper's ResettableUniformReservoir keeps
    (algorithm R: each of n values stays with chance RESERVOIR/n), drawn with Li's algorithm L:
    once the reservoir is full, the number of values to pass over before the next replacement
    is drawn at once, so an `add` costs a comparison and an `add_many` of n values as many
    random draws as the values it keeps (about RESERVOIR * n / count), not n."""

    __slots__ = ("samples", "_w", "_next")

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[int] = []
        self._w = 1.0
        self._next = 0  # the 1-based index of the next value to keep, once full

    def add(self, value: int) -> None:
        self.add_many(value, 1)

    def add_many(self, value: int, n: int) -> None:
        """As n `add`s of one value (n requests of one batch)."""
        if n <= 0:
            return
        Summary.add_many(self, value, n)
        count = self.count
        samples = self.samples
        if len(samples) < RESERVOIR:
            samples.extend([value] * min(n, RESERVOIR - len(samples)))
            if len(samples) < RESERVOIR:
                return
            self._skip_from(RESERVOIR)
        nxt = self._next
        if nxt > count:
            return
        # Value `nxt` replaces a random sample; then the gap to the next one kept.  (A draw
        # of 0.0, whose log algorithm L cannot take, counts as the smallest float above it.)
        w = self._w
        while nxt <= count:
            samples[int(_random() * RESERVOIR)] = value
            w *= (_random() or _TINY) ** _INVERSE
            nxt += int(_log(_random() or _TINY) / _log1p(-w)) + 1
        self._w, self._next = w, nxt

    def _skip_from(self, index: int) -> None:
        """The reservoir filled at value `index`: draw where the first replacement falls."""
        self._w = (_random() or _TINY) ** _INVERSE
        self._next = index + int(_log(_random() or _TINY) / _log1p(-self._w)) + 1

    def reset(self) -> None:
        Summary.reset(self)
        self.samples = []
        self._w = 1.0
        self._next = 0

    def quantile(self, q: float, ordered: list[int]) -> int:
        """Dropwizard UniformSnapshot.getValue, rounded (Math.round)."""
        n = len(ordered)
        if not n:
            return 0
        pos = q * (n + 1)
        if pos < 1:
            value = float(ordered[0])
        elif pos >= n:
            value = float(ordered[-1])
        else:
            i = int(pos)
            lower, upper = ordered[i - 1], ordered[i]
            value = lower + (pos - math.floor(pos)) * (upper - lower)
        return int(math.floor(value + 0.5))

    def rows(self, name: str) -> Iterator[tuple[str, int | float]]:
        yield from Summary.rows(self, name)
        ordered = sorted(self.samples)
        for prefix, q in QUANTILES:
            yield f"{prefix}_{name}", self.quantile(q, ordered)

    def prometheus_quantiles(self) -> list[tuple[float, int]]:
        """What ZooKeeper's Prometheus provider gives an ADVANCED summary: 0.5, 0.9, 0.99."""
        ordered = sorted(self.samples)
        return [(q, self.quantile(q, ordered)) for q in (0.5, 0.9, 0.99)]


def buffer_sizes(sizes: list[int], last: int, low: int, high: int) -> None:
    """ZooKeeper's BufferStats: `sizes` is [last, min, max] (-1 before the first), updated by
    a batch whose last, smallest and largest sizes are given."""
    sizes[0] = last
    if sizes[1] < 0 or low < sizes[1]:
        sizes[1] = low
    if high > sizes[2]:
        sizes[2] = high


def reset_all(holder: object) -> None:
    """srst (ServerMetrics.resetAll): every Summary in `holder`'s slots starts again, every int
    there goes back to 0."""
    for name in holder.__slots__:  # type: ignore[attr-defined]
        value = getattr(holder, name, None)
        if isinstance(value, Summary):
            value.reset()
        elif type(value) is int:
            setattr(holder, name, 0)
