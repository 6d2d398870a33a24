"""Systems under test for the reference machine: the adapter interface and zkpy's pure pipeline.

A `System` runs `zkpy.verify.ops` operations for session slots and answers in the same
outcome vocabulary as the reference model.  It works under a root of its own (a fresh node,
`base`), so a test never sees /zookeeper or what earlier tests left; paths in ops and outcomes
are relative to it.  `PureSystem` is zkpy's Prep + DataTree + Final reads in this process
(what every zkpy server runs, without sockets or clock); zkpy.verify.kazoo_system drives real
servers over sockets.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from ..protocol.codes import Event, Op
from ..protocol.jute import STAT
from ..requests import final
from ..requests.prep import Prep
from ..tree.acl import digest
from ..tree.datatree import DataTree, Txn
from . import ops as o
from .ops import Outcome, error, ok

EVENT_NAMES = {Event.NODE_CREATED: o.NODE_CREATED, Event.NODE_DELETED: o.NODE_DELETED,
               Event.NODE_DATA_CHANGED: o.NODE_DATA_CHANGED, Event.NODE_CHILDREN_CHANGED: o.NODE_CHILDREN_CHANGED}
_INT = struct.Struct(">i")


class System(Protocol):
    """What the reference machine needs from a system under test."""

    def run(self, op: o.Operation) -> Outcome:
        """Run one op for its slot; CloseSession/ExpireSession also open the slot's next session."""

    def events(self, expected: dict[int, int]) -> dict[int, list[tuple[str, str]]]:
        """Watch events delivered since the last call, by slot, in delivery order.  `expected`
        says how many the model expects per slot, so that a system over sockets knows how long
        to wait for them."""

    def close(self) -> None: ...


class _Connection:
    """What Final and the watch tables need of a client connection: identities, a session."""

    __slots__ = ("slot", "session_id", "identities")

    def __init__(self, slot: int, session_id: int) -> None:
        self.slot = slot
        self.session_id = session_id
        self.identities: list[tuple[str, str]] = []


class PureSystem:
    """zkpy's pure pipeline: Prep turns each write into a txn, DataTree.apply applies it, Final reads.

    Every op runs to completion before the next (no outstanding change records survive an op),
    with a fixed time, as one server would run a single client's requests one at a time.
    `tree_class` lets a test run a deliberately broken tree.
    """

    def __init__(self, slots: int, tree_class: type[DataTree] = DataTree, base: str = "/refmodel") -> None:
        self.tree = tree_class()
        self.prep = Prep(self.tree, extended_types=True)
        self.base = base
        self.now_ms = 1_000_000
        self._next_session = 0x100
        self.owners: dict[int, int] = {}  # session id -> the session's number (1, 2, ... in opening order)
        self.slots: list[_Connection] = []
        self._events: list[tuple[int, str, str]] = []
        setup = self._open(-1)
        self._write(setup, Op.CREATE, (base, b"", o.OPEN_ACL, 0, -1))
        for slot in range(slots):
            self.slots.append(self._open(slot))

    # ------------------------------------------------------------ pipeline

    def _open(self, slot: int) -> _Connection:
        self._next_session += 1
        sid = self._next_session
        self._apply(self.prep.create_session(sid, 30_000, self.now_ms))
        if slot >= 0:
            self.owners[sid] = len(self.owners) + 1
        return _Connection(slot, sid)

    def _apply(self, txn: Txn) -> tuple:
        result, events = self.tree.apply(txn)
        self.prep.committed(txn.zxid)
        for conn, event_type, path in events:
            if conn.slot >= 0 and self.slots[conn.slot] is conn:  # a closed session hears nothing more
                self._events.append((conn.slot, EVENT_NAMES[event_type], self._relative(path)))
        return result

    def _write(self, conn: _Connection, op: int, args: tuple) -> tuple:
        return self._apply(self.prep.prepare(conn.session_id, 1, op, args, conn.identities, self.now_ms))

    def _absolute(self, path: str) -> str:
        return self.base if path == "/" else self.base + path

    def _relative(self, path: str) -> str:
        return path[len(self.base):] or "/"

    def _stat(self, raw: bytes) -> o.Stat:
        czxid, mzxid, _, _, version, cversion, aversion, owner, length, children, pzxid = STAT.unpack(raw)
        return o.Stat(czxid, mzxid, pzxid, version, cversion, aversion, self.owners.get(owner, owner), length,
                      children)

    # ------------------------------------------------------------ System

    def run(self, op: o.Operation) -> Outcome:
        return getattr(self, "_" + type(op).__name__)(op)

    def events(self, expected: dict[int, int]) -> dict[int, list[tuple[str, str]]]:
        out: dict[int, list[tuple[str, str]]] = {}
        for slot, event_type, path in self._events:
            out.setdefault(slot, []).append((event_type, path))
        self._events = []
        return out

    def close(self) -> None:
        pass

    # ------------------------------------------------------------ writes

    def _create_args(self, op: o.Create) -> tuple[int, tuple]:
        flags = o.MODES[op.mode]
        code = Op.CREATE_CONTAINER if op.mode == "container" else Op.CREATE_TTL if op.ttl >= 0 or flags in (5, 6) \
            else Op.CREATE2
        return code, (self._absolute(op.path), op.data, list(op.acl), flags, op.ttl)

    def _Create(self, op: o.Create) -> Outcome:
        code, args = self._create_args(op)
        t, err, payload = self._write(self.slots[op.session], code, args)
        if err:
            return error(o.ERROR_NAMES[err])
        return ok((self._relative(payload[0]), self._stat(payload[1])))

    def _Delete(self, op: o.Delete) -> Outcome:
        _, err, _ = self._write(self.slots[op.session], Op.DELETE, (self._absolute(op.path), op.version))
        return error(o.ERROR_NAMES[err]) if err else ok()

    def _SetData(self, op: o.SetData) -> Outcome:
        _, err, payload = self._write(self.slots[op.session], Op.SET_DATA,
                                      (self._absolute(op.path), op.data, op.version))
        return error(o.ERROR_NAMES[err]) if err else ok(self._stat(payload))

    def _SetAcl(self, op: o.SetAcl) -> Outcome:
        _, err, payload = self._write(self.slots[op.session], Op.SET_ACL,
                                      (self._absolute(op.path), list(op.acl), op.version))
        return error(o.ERROR_NAMES[err]) if err else ok(self._stat(payload))

    def _Multi(self, op: o.Multi) -> Outcome:
        subs = []
        for sub in op.ops:
            if isinstance(sub, o.Create):
                code, args = self._create_args(sub)
                subs.append((Op.CREATE if code == Op.CREATE2 else code, args))
            elif isinstance(sub, o.Delete):
                subs.append((Op.DELETE, (self._absolute(sub.path), sub.version)))
            elif isinstance(sub, o.SetData):
                subs.append((Op.SET_DATA, (self._absolute(sub.path), sub.data, sub.version)))
            else:
                subs.append((Op.CHECK, (self._absolute(sub.path), sub.version)))
        _, err, results = self._write(self.slots[op.session], Op.MULTI, (subs,))
        if err:
            return error(o.ERROR_NAMES[err])
        out: list[Outcome] = []
        for t, sub_err, payload in results:
            if t == Op.ERROR or sub_err:
                out.append(error(o.ERROR_NAMES[sub_err]))
            elif t in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
                out.append(ok(self._relative(payload[0])))
            elif t == Op.SET_DATA:
                out.append(ok(self._stat(payload)))
            else:
                out.append(ok())
        return ok(out)

    # ------------------------------------------------------------ reads (through Final)

    def _read(self, op: Any, code: int, *args: Any) -> tuple[int, bytes]:
        return final.READS[code](self.tree, self.slots[op.session], (self._absolute(op.path), *args))

    def _GetData(self, op: o.GetData) -> Outcome:
        err, body = self._read(op, Op.GET_DATA, op.watch)
        if err:
            return error(o.ERROR_NAMES[err])
        (length,) = _INT.unpack_from(body)
        data = body[4:4 + max(length, 0)]
        return ok((data, self._stat(body[4 + max(length, 0):])))

    def _Exists(self, op: o.Exists) -> Outcome:
        err, body = self._read(op, Op.EXISTS, op.watch)
        if err == -101:
            return ok(None)
        return error(o.ERROR_NAMES[err]) if err else ok(self._stat(body))

    def _GetChildren(self, op: o.GetChildren) -> Outcome:
        err, body = self._read(op, Op.GET_CHILDREN2, op.watch)
        if err:
            return error(o.ERROR_NAMES[err])
        names, pos = _strings(body, 0)
        return ok((sorted(names), self._stat(body[pos:])))

    def _GetAcl(self, op: o.GetAcl) -> Outcome:
        err, body = self._read(op, Op.GET_ACL)
        if err:
            return error(o.ERROR_NAMES[err])
        (count,) = _INT.unpack_from(body)
        pos, acl = 4, []
        for _ in range(count):
            (perms,) = _INT.unpack_from(body, pos)
            (scheme, ident), pos = _strings(body, pos + 4, 2)
            acl.append((perms, scheme, ident))
        return ok((sorted(acl), self._stat(body[pos:])))

    def _AddWatch(self, op: o.AddWatch) -> Outcome:
        err, _ = self._read(op, Op.ADD_WATCH, 1 if op.recursive else 0)
        return error(o.ERROR_NAMES[err]) if err else ok()

    def _Sync(self, op: o.Sync) -> Outcome:
        err, _ = self._read(op, Op.SYNC)
        return error(o.ERROR_NAMES[err]) if err else ok()

    # ------------------------------------------------------------ sessions

    def _AddAuth(self, op: o.AddAuth) -> Outcome:
        ident = ("digest", digest(o.USERS[op.user]))
        conn = self.slots[op.session]
        if ident not in conn.identities:
            conn.identities.append(ident)
        return ok()

    def _CloseSession(self, op: o.CloseSession | o.ExpireSession) -> Outcome:
        conn = self.slots[op.session]
        self.slots[op.session] = _Connection(-1, conn.session_id)  # events to the closing session are dropped
        self._apply(self.prep.close_session(conn.session_id, 2, self.now_ms))
        self.tree.remove_watcher(conn)
        self.slots[op.session] = self._open(op.session)
        return ok()

    _ExpireSession = _CloseSession


def _strings(body: bytes, pos: int, count: int | None = None) -> tuple[list[str], int]:
    """Decode a jute vector of strings (or `count` strings in a row) at `pos`."""
    if count is None:
        (count,) = _INT.unpack_from(body, pos)
        pos += 4
    out = []
    for _ in range(count):
        (n,) = _INT.unpack_from(body, pos)
        out.append(body[pos + 4:pos + 4 + n].decode())
        pos += 4 + n
    return out, pos
