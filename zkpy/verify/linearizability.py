"""Check a history against ZooKeeper's guarantees, and shrink what fails to a minimal witness.

Writes (and reads after a `sync` in their session) must be linearizable: the Wing–Gong–Lowe
search (wgl.py) over each object's sub-history, the history being split by (model, key) first
(P-compositionality: a history is linearizable iff each object's subhistory is).  An op whose
outcome is unknown has no return entry: the search may linearize it anywhere after its call, and
succeeds once every op that did return is linearized (unknown ones never having taken effect).

A read with no sync before it is only sequentially consistent in ZooKeeper: `sessions.check`
holds it to its session's guarantees instead.  A read after a sync is checked as if it was
invoked when the sync was: the server it reads from has then applied every write committed
before the sync was sent.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from . import sessions
from .history import OK, UNKNOWN, History, Op
from .models import MODELS, Model, wildcard
from .report import Anomaly, Report
from .wgl import SearchTooLarge, linearizable


def check(history: History | Iterable[Op], models: dict[str, Model] | None = None,
          all_reads_linearizable: bool = False, shrink: bool = True, shrink_seconds: float | None = None,
          max_states: int | None = None, max_exact_states: int | None = None) -> Report:
    """Check every guarantee; `all_reads_linearizable` holds reads without a sync to
    linearizability too (stronger than ZooKeeper promises: for histories whose reads all go to
    the leader, or model tests).  `shrink_seconds` bounds the shrinking of each anomaly: a
    broken build's history of thousands of ops on one znode can take minutes to shrink fully,
    and what the shrinker holds when time is up still fails (it is only less small).
    `max_states` bounds each object's hashed search and `max_exact_states` the exact one that
    confirms a violation (wgl.linearizable); an object past either is listed in
    `report.undetermined` (and the report is not ok: nothing was shown either way)."""
    started = time.perf_counter()
    models = MODELS if models is None else models
    ops = list(history)
    report = Report(ops=len(ops))
    objects, synced_by = _partition(ops, models, all_reads_linearizable)
    report.partitions = len(objects)
    for (model_name, key), part in objects.items():
        model = models[model_name]
        try:
            valid = linearizable(model, part, max_states, max_exact_states)
        except SearchTooLarge as e:
            report.undetermined.append(f"{model_name}:{key} ({len(part)} ops): the search passed {e}")
            continue
        if not valid:
            deadline = None if shrink_seconds is None else time.perf_counter() + shrink_seconds
            witness = minimal_failing(model, part, deadline, max_states, max_exact_states) if shrink else list(part)
            syncs = {synced_by[op.id].id: synced_by[op.id] for op in witness if op.id in synced_by}
            report.anomalies.append(Anomaly("linearizability", model_name, key,
                                            [_original(op, ops) for op in witness] + list(syncs.values()),
                                            "no order of these ops within their intervals obeys the model"))
    report.anomalies += sessions.check(ops, models)
    report.seconds = time.perf_counter() - started
    return report


def _original(op: Op, ops: list[Op]) -> Op:
    return ops[op.id] if op.id < len(ops) and ops[op.id].id == op.id else op


def _partition(ops: list[Op], models: dict[str, Model], all_reads: bool
               ) -> tuple[dict[tuple[str, str], list[Op]], dict[int, Op]]:
    """Split into objects; drop reads that saw nothing (unknown) or that only sequential
    consistency covers; give each read after a sync its sync's call time; hand each end of a
    session to every lock it used and every ephemeral znode it created."""
    syncs: dict[int | None, tuple[list[float], list[Op]]] = {}
    for op in sorted((o for o in ops if o.kind == "sync" and o.status == OK), key=lambda o: o.ret):
        rets, done = syncs.setdefault(op.session, ([], []))
        rets.append(op.ret)
        done.append(op if not done or op.call >= done[-1].call else done[-1])  # latest call so far
    objects: dict[tuple[str, str], list[Op]] = defaultdict(list)
    ends: dict[int | None, list[Op]] = defaultdict(list)
    synced_by: dict[int, Op] = {}
    for op in ops:
        model = models.get(op.model)
        if model is None:
            if op.model == "session" and op.kind == "end_session":
                ends[op.session].append(op)
            continue
        if op.kind in model.reads:
            if op.status == UNKNOWN:
                continue
            if not all_reads:
                rets, done = syncs.get(op.session, ((), ()))
                k = bisect.bisect_right(rets, op.call)
                if not k:
                    continue
                sync = done[k - 1]
                synced_by[op.id] = sync
                op = dataclasses.replace(op, call=sync.call)
        objects[(op.model, op.key)].append(op)
    for (model_name, key), part in objects.items():  # what a session held goes when it ends
        if model_name == "lock":
            holders = {op.session for op in part}
        elif model_name == "register":
            holders = {op.session for op in part if op.kind == "create_ephemeral"}
        else:
            continue
        part.extend(end for s in holders for end in ends.get(s, ()))
    return objects, synced_by


def minimal_failing(model: Model, ops: Sequence[Op], deadline: float | None = None,
                    max_states: int | None = None, max_exact_states: int | None = None) -> list[Op]:
    """Drop ops while the rest still fails: the shortest failing prefix (by call time) first,
    then chunks of halving size, then single ops until none can go.  A write that a kept read
    observed (its value) stays while that read does, so the witness shows where values came from;
    a need that no write in the history names keeps every write of unknown product that could
    have met it (a set whose reply was lost made the version a later set expected): without it,
    dropping that write would leave a sub-history that fails only for want of it.  Past
    `deadline` (time.perf_counter()) no candidate is taken: the sub-history so far is returned."""
    cur = sorted(ops, key=lambda o: (o.call, o.id))
    provided = _provided(model, cur)

    def fails(candidate: list[Op]) -> bool:
        """Still fails, and each kept op still has the (other) writes its values came from."""
        if deadline is not None and time.perf_counter() > deadline:
            return False
        have = _provided(model, candidate)
        for op in candidate:
            own = model.provides(op)
            for t in model.needs(op):
                if t in provided:
                    if have[t] - (t in own) < 1:
                        return False
                elif have[wildcard(t)] < provided[wildcard(t)]:
                    return False
        try:
            return not linearizable(model, candidate, max_states, max_exact_states)  # False confirmed exactly
        except SearchTooLarge:
            return False

    lo, hi = 1, len(cur)
    while lo < hi:  # a heuristic bisection: every candidate is checked
        mid = (lo + hi) // 2
        if fails(cur[:mid]):
            hi = mid
        else:
            lo = mid + 1
    cur = cur[:hi]  # hi only ever moves to a prefix that failed (the whole history fails)
    chunk = max(1, len(cur) // 2)
    while True:
        changed, i = False, 0
        while i < len(cur):
            candidate = cur[:i] + cur[i + chunk:]
            if candidate and fails(candidate):
                cur, changed = candidate, True
            else:
                i += chunk
        if chunk == 1 and not changed:
            return cur
        chunk = max(1, chunk // 2)


def _provided(model: Model, ops: Iterable[Op]) -> Counter[object]:
    """How many of `ops` provide each value."""
    return Counter(t for op in ops for t in model.provides(op))
