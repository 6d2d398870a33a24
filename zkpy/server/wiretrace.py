"""The wire trace: a server's recent client requests, replies and watch events, in one ring.

A `TracedConnection` is a `ClientConnection` that appends a tuple per request, reply, event,
handshake and close to its server's ring (`ClientTable.trace`, a `deque(maxlen=...)`).  The
server builds connections of this class only when the trace is on (`Config.wire_trace` > 0:
in-process test servers by default, `zkpy serve -Dzkpy.wireTrace=N` by choice), so a server
without a trace runs `ClientConnection`'s code untouched: no test on the hot path at all.

One ring per server rather than per connection: a failing test needs the order across
sessions (client A's write before client B's event), and a closed connection's entries must
outlive it; memory stays bounded however many connections come and go.

Entries are tuples of plain values, formatted only when shown (`zkpy.testing.trace`):
    (monotonic seconds, session id, kind, xid, op code or event type, path, error code, zxid)
where a request's "path" is the start of its body as bytes (its first `BODY_KEPT` bytes, a
multi's first `MULTI_KEPT`): copying them costs a fifth of decoding the path, which
`request_path` does when the entry is shown.
"""

from __future__ import annotations

from collections import deque
from time import monotonic
from typing import TYPE_CHECKING

from ..protocol import jute
from ..protocol.codes import Op
from ..protocol.jute import INT, INT_INT, JuteError
from .connection import ClientConnection, _Pending

if TYPE_CHECKING:
    from .clients import ClientTable
    from .member import Member

# Entry kinds.
REQUEST, REPLY, EVENT, CONNECT, SESSION, CLOSE = "request", "reply", "event", "connect", "session", "close"

# Requests whose body starts with the path (a jute string).
_PATH_FIRST = frozenset(int(op) for op in (
    Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.DELETE, Op.EXISTS, Op.GET_DATA, Op.SET_DATA,
    Op.GET_ACL, Op.SET_ACL, Op.GET_CHILDREN, Op.GET_CHILDREN2, Op.SYNC, Op.CHECK, Op.CHECK_WATCHES,
    Op.REMOVE_WATCHES, Op.GET_EPHEMERALS, Op.GET_ALL_CHILDREN_NUMBER, Op.ADD_WATCH))
_MULTIS = frozenset((int(Op.MULTI), int(Op.MULTI_READ)))
_PING = int(Op.PING)
BODY_KEPT = 512  # bytes of a request body kept: the path, and not a large setData's data
MULTI_KEPT = 4096
_unpack_int = INT.unpack_from
_unpack_header = INT_INT.unpack_from


def request_path(buf: bytes, start: int, end: int, op: int) -> str | None:
    """The path of a request body buf[start:end] (a multi's sub-op paths, comma-separated;
    None when the kept bytes of a long multi do not decode)."""
    if op in _PATH_FIRST:
        if end - start < 4:
            return None
        n = _unpack_int(buf, start)[0]
        if n < 0 or start + 4 + n > end:
            return None
        return bytes(buf[start + 4:start + 4 + n]).decode("utf-8", "replace")
    if op in _MULTIS:
        try:
            ops = jute.DECODE[op](buf, start, end)[0]
        except Exception:  # noqa: BLE001 - a malformed multi is the connection's to answer, not the trace's
            return None
        return ",".join(args[0] for _, args in ops if args and isinstance(args[0], str))
    return None


class TracedConnection(ClientConnection):
    """A client connection that records what crosses its wire in its server's ring."""

    def __init__(self, table: "ClientTable") -> None:
        super().__init__(table)
        self.trace: deque = table.trace  # type: ignore[assignment]

    def _connect(self, payload: bytes, member: "Member") -> None:
        try:
            req = jute.decode_connect(payload)
            self.trace.append((monotonic(), req.session_id, CONNECT, 0, None, None, 0, req.last_zxid_seen))
        except JuteError:
            pass  # the connection closes it and logs why
        super()._connect(payload, member)

    def send_connect_response(self, timeout: int, session_id: int, passwd: bytes, with_read_only: bool,
                              entry: _Pending | None = None, read_only: bool = False) -> None:
        self.trace.append((monotonic(), session_id, SESSION, 0, timeout, None, 0, self.member.tree.last_zxid))
        super().send_connect_response(timeout, session_id, passwd, with_read_only, entry, read_only)

    def _request(self, buf: bytearray, start: int, end: int, member: "Member", unfaulted: bool = False) -> None:
        if end - start >= 8 and not unfaulted:  # unfaulted: a fault rule passing it on, already recorded
            xid, op = _unpack_header(buf, start)
            kept = start + 8 + (MULTI_KEPT if op in _MULTIS else BODY_KEPT)
            self.trace.append((monotonic(), self.session_id, REQUEST, xid, op,
                               bytes(buf[start + 8:kept if kept < end else end]), 0, 0))
            if op == _PING:  # answered inline, without _reply
                self.trace.append((monotonic(), self.session_id, REPLY, xid, op, None, 0, member.tree.last_zxid))
        super()._request(buf, start, end, member, unfaulted)

    def _reply(self, xid: int, zxid: int, err: int, body: bytes) -> None:
        self.trace.append((monotonic(), self.session_id, REPLY, xid, None, None, err, zxid))
        super()._reply(xid, zxid, err, body)

    def write_done(self, entry: _Pending, zxid: int, err: int, body: bytes) -> None:
        self.trace.append((monotonic(), self.session_id, REPLY, entry.xid, entry.op, None, err, zxid))
        super().write_done(entry, zxid, err, body)

    def notify(self, event_type: int, path: str) -> None:
        self.trace.append((monotonic(), self.session_id, EVENT, -1, event_type, path, 0, 0))
        super().notify(event_type, path)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.packets_received:  # not a four-letter word's connection (ensembles poll srvr)
            self.trace.append((monotonic(), self.session_id, CLOSE, 0, None, None, 0, 0))
        super().connection_lost(exc)


def connection_class(table: "ClientTable") -> type[ClientConnection]:
    """The class of a server's client connections: traced when its table has a ring."""
    return TracedConnection if table.trace is not None else ClientConnection
