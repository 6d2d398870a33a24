"""Wire traces as values and as readable lines.

A server records what crosses its client connections as raw tuples (`zkpy.server.wiretrace`);
`entries()` turns them into `TraceEntry` values (names instead of codes, wall-clock times, a
reply carrying the op and path of its request), and `format_trace()` into lines such as

    19:41:02.123456 [1] 0x10000a3f1e20001 -> create /app/lock xid=3
    19:41:02.124011 [1] 0x10000a3f1e20001 <- create /app/lock xid=3 OK zxid=0x100000005
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime
from typing import Iterable, NamedTuple

from ..protocol.codes import Err, Event, Op
from ..server.wiretrace import (
    CLOSE,
    CONNECT,
    EVENT,
    REPLY,
    REQUEST,
    SESSION,
    request_path,
)

DEFAULT_SIZE = 5000  # entries an in-process server keeps


def snapshot(ring: deque) -> list[tuple]:
    """A copy of a ring that its server's thread may be appending to (copying can then fail)."""
    for _ in range(100):
        try:
            return list(ring)
        except RuntimeError:  # deque mutated during iteration
            continue
    return list(ring.copy())


class TraceEntry(NamedTuple):
    """One request, reply, watch event, handshake or close on a server's client connections."""

    time: float  # wall clock, seconds since the epoch
    monotonic: float  # time.monotonic() when recorded: order and intervals
    server: int  # the ensemble member's sid (0: a standalone server)
    session: int  # session id (a "connect" entry: the session asked for, 0 for a new one)
    kind: str  # "request", "reply", "event", "connect", "session" (handshake answered), "close"
    xid: int
    op: str | None  # ZooKeeper's op name ("create", "setData", ...); an event: its type
    path: str | None
    err: str | None  # a reply's error code name ("OK", "NONODE", ...)
    zxid: int  # a reply's zxid; a "connect": the last zxid the client saw


def op_name(code: int) -> str:
    """Op.GET_CHILDREN2 -> 'getChildren2', as ZooKeeper's OpCode names them."""
    try:
        first, *rest = Op(code).name.lower().split("_")
    except ValueError:
        return str(code)
    return first + "".join(part.capitalize() for part in rest)


def _err_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return str(code)


def _event_name(code: int) -> str:
    try:
        return Event(code).name
    except ValueError:
        return str(code)


def entries(raw: Iterable[tuple], server: int = 0) -> list[TraceEntry]:
    """A server's ring as values, oldest first."""
    offset = time.time() - time.monotonic()
    asked: dict[tuple[int, int], tuple[str | None, str | None]] = {}  # (session, xid) -> (op, path)
    out = []
    for mono, session, kind, xid, op, path, err, zxid in raw:
        name: str | None = None
        error: str | None = None
        if kind == REQUEST:
            name = op_name(op)
            path = request_path(path, 0, len(path), op)
            asked[(session, xid)] = (name, path)
        elif kind == REPLY:
            name, path = asked.pop((session, xid), (op_name(op) if op is not None else None, None))
            error = _err_name(err)
        elif kind == EVENT:
            name = _event_name(op)
        elif kind == SESSION:
            name, error = f"timeout={op}", "OK" if session else "SESSIONEXPIRED"
        out.append(TraceEntry(mono + offset, mono, server, session, kind, xid, name, path, error, zxid))
    return out


_ARROWS = {REQUEST: "->", REPLY: "<-", EVENT: "<- event", CONNECT: "-> connect", SESSION: "<- connected",
           CLOSE: "-- closed"}


def format_entry(e: TraceEntry) -> str:
    clock = datetime.fromtimestamp(e.time).strftime("%H:%M:%S.%f")
    parts = [clock, f"[{e.server}]" if e.server else "", f"{e.session:#x}", _ARROWS.get(e.kind, e.kind)]
    if e.op is not None:
        parts.append(e.op)
    if e.path is not None:
        parts.append(e.path)
    if e.kind in (REQUEST, REPLY):
        parts.append(f"xid={e.xid}")
    if e.err is not None:
        parts.append(e.err)
    if e.kind in (REPLY, SESSION) or (e.kind == CONNECT and e.zxid):
        parts.append(f"zxid={e.zxid:#x}")
    return " ".join(p for p in parts if p)


def format_trace(trace: Iterable[TraceEntry], last: int | None = None) -> str:
    """Readable lines, oldest first; only the `last` entries when given."""
    lines = [format_entry(e) for e in trace]
    if last is not None and len(lines) > last:
        lines = [f"... {len(lines) - last} earlier entries left out"] + lines[-last:]
    return "\n".join(lines)


def merge(traces: dict[int, list[TraceEntry]]) -> list[TraceEntry]:
    """Several members' traces as one, in time order, each entry naming its member."""
    merged = [e._replace(server=sid) for sid, trace in traces.items() for e in trace]
    merged.sort(key=lambda e: e.monotonic)
    return merged
