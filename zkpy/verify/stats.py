"""Numbers about a recorded run: op outcomes, throughput and latency, overall and over time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .history import OK, UNKNOWN, History


@dataclass(frozen=True, slots=True)
class RunStats:
    ops: int
    ok: int
    error: int
    unknown: int
    seconds: float
    by_kind: dict[str, int]
    latency_ms: dict[str, float]  # p50, p90, p99, max over ops that completed

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def summarize(history: History, seconds: float) -> RunStats:
    """Session ends (recorder bookkeeping, not client requests) are left out."""
    ops = [op for op in history if op.model != "session"]
    status = Counter(op.status for op in ops)
    latencies = sorted((op.ret - op.call) * 1000 for op in ops if op.ret is not None)
    return RunStats(len(ops), status[OK], status["error"], status[UNKNOWN], seconds,
                    dict(Counter(op.kind for op in ops).most_common()),
                    {"p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
                     "p99": percentile(latencies, 99), "max": latencies[-1] if latencies else 0.0})


def timeline(history: History, started: float, seconds: float, bucket: float = 0.5
             ) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """Per bucket of completion (or, unknown ops, invocation) time since `started`: the bucket's
    start, ok ops/s, failed and unknown ops/s, and the p50 and p99 latency (ms) of its ops."""
    n = max(1, int(seconds / bucket) + 1)
    ok, failed = [0] * n, [0] * n
    lat: list[list[float]] = [[] for _ in range(n)]
    for op in history:
        if op.model == "session":
            continue
        at = (op.ret if op.ret is not None else op.call) - started
        i = min(n - 1, max(0, int(at / bucket)))
        if op.status == OK:
            ok[i] += 1
        else:
            failed[i] += 1
        if op.ret is not None:
            lat[i].append((op.ret - op.call) * 1000)
    for values in lat:
        values.sort()
    times = [i * bucket for i in range(n)]
    return (times, [c / bucket for c in ok], [c / bucket for c in failed],
            [percentile(v, 50) for v in lat], [percentile(v, 99) for v in lat])
