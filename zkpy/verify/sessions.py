"""ZooKeeper's per-session guarantees, for the reads that linearizability does not cover.

A read without a sync before it may be stale, but not arbitrarily:
- "read-unwritten": it returns a value some write wrote.  When the read's zxid (the mzxid it
  saw) is the zxid of a recorded write to the same znode, the value must be that write's;
  otherwise it must be the value of some write invoked before the read returned (any value
  once a write of unknown product was: a counter add whose reply was lost wrote a number that
  no reply names).
- "read-back-in-time": it never goes back in time within its session.  Before sending it, the
  client had seen zxid H (reply headers: kazoo's last_zxid), and the server it reads from has
  applied everything up to H, so the read reflects every write to its znode with zxid <= H.
  This covers monotonic reads and read-your-writes.
- "sequence-duplicate": no sequential name is given twice.
- "session-fifo": a session's writes are applied in the order it issued them: a write that
  completed before another was sent has the smaller zxid.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

from .history import OK, UNKNOWN, Op
from .models import Model
from .report import Anomaly


def check(ops: list[Op], models: dict[str, Model]) -> list[Anomaly]:
    anomalies: list[Anomaly] = []
    writes: dict[tuple[str, str], list[tuple[int, Op]]] = defaultdict(list)  # by zxid, acknowledged writes
    values: dict[tuple[str, str], list[tuple[float, Any]]] = defaultdict(list)  # (call, value) of every write
    blind: dict[tuple[str, str], float] = {}  # earliest call of a write whose value nobody knows
    reads: list[tuple[Model, Op]] = []
    by_session: dict[int | None, list[Op]] = defaultdict(list)
    for op in ops:
        model = models.get(op.model)
        if model is None:
            continue
        if op.kind in model.reads:
            if op.status == OK and op.zxid is not None:
                reads.append((model, op))
            continue
        value = model.written(op)
        if value is not None and op.status != "error":
            values[(op.model, op.key)].append((op.call, value))
        elif value is None and op.status == UNKNOWN:  # a lost reply's add: what it wrote is unknown
            key = (op.model, op.key)
            blind[key] = min(blind.get(key, op.call), op.call)
        if op.status == OK and op.zxid is not None:
            writes[(op.model, op.key)].append((op.zxid, op))
            by_session[op.session].append(op)
    for ws in writes.values():
        ws.sort(key=lambda w: w[0])
    zxids = {k: [z for z, _ in ws] for k, ws in writes.items()}
    for model, read in reads:
        key = (read.model, read.key)
        seen = model.observed(read)
        ws, zs = writes.get(key, []), zxids.get(key, [])
        at = bisect.bisect_left(zs, read.zxid)
        if seen is not None:
            if at < len(zs) and zs[at] == read.zxid:
                source = ws[at][1]
                if model.written(source) is not None and model.written(source) != seen:
                    anomalies.append(Anomaly("read-unwritten", read.model, read.key, [source, read],
                                             f"the write at zxid {read.zxid:#x} wrote {model.written(source)!r}"))
            elif (not any(v == seen and call <= read.ret for call, v in values.get(key, ())) and seen != _initial(model)
                  and blind.get(key, float("inf")) > read.ret):
                anomalies.append(Anomaly("read-unwritten", read.model, read.key, [read], "no write wrote this value"))
        latest = bisect.bisect_right(zs, read.seen_zxid) - 1
        if latest >= 0 and zs[latest] > read.zxid:
            anomalies.append(Anomaly("read-back-in-time", read.model, read.key, [ws[latest][1], read],
                                     f"the session had seen zxid {read.seen_zxid:#x} but the read reflects "
                                     f"{read.zxid:#x}, before the write at {zs[latest]:#x}"))
    for session, done in by_session.items():
        anomalies += _fifo(session, done)
    return anomalies + _duplicates(ops)


def _duplicates(ops: list[Op]) -> list[Anomaly]:
    """Two acknowledged creates of one name under one parent (cversion never goes back, so a
    sequential name is never given twice)."""
    first: dict[tuple[str, Any], Op] = {}
    out = []
    for op in ops:
        if op.model == "sequence" and op.kind == "create" and op.status == OK and op.arg[2]:
            other = first.setdefault((op.key, op.result), op)
            if other is not op:
                out.append(Anomaly("sequence-duplicate", op.model, op.key, [other, op], f"{op.result} given twice"))
    return out


def _fifo(session: int | None, done: list[Op]) -> list[Anomaly]:
    """Sweep the session's acknowledged writes by call time, keeping the completed one with the
    highest zxid: a later write must have a higher one."""
    done.sort(key=lambda o: o.call)
    returned = sorted(done, key=lambda o: o.ret)
    highest: Op | None = None
    j, out = 0, []
    for op in done:
        while j < len(returned) and returned[j].ret < op.call:
            if highest is None or returned[j].zxid > highest.zxid:
                highest = returned[j]
            j += 1
        if highest is not None and highest.zxid >= op.zxid:
            out.append(Anomaly("session-fifo", op.model, op.key, [highest, op],
                               f"session {session} issued these in this order; their zxids are not"))
    return out


def _initial(model: Model) -> Any:
    state = model.init()
    return state if not isinstance(state, tuple) else None
