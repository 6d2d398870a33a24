"""Jute serialization of ZooKeeper's client records (zookeeper.jute), sans-IO.

Requests are decoded into plain tuples by table-driven decoders; responses are encoded by
small functions that return bytes.  Hot records (getData, setData, exists, Stat) use
precompiled `struct` formats.  Nothing here touches a socket or a clock.
"""

from __future__ import annotations

import struct
from typing import Callable

from .codes import Op

INT = struct.Struct(">i")
LONG = struct.Struct(">q")
INT_INT = struct.Struct(">ii")
REPLY_HEADER = struct.Struct(">iqi")  # xid, zxid, err
# czxid mzxid ctime mtime version cversion aversion ephemeralOwner dataLength numChildren pzxid
STAT = struct.Struct(">qqqqiiiqiiq")
MULTI_HEADER = struct.Struct(">i?i")  # type, done, err

ACL = tuple[int, str, str]  # (perms, scheme, id)


class JuteError(ValueError):
    """A record could not be decoded: truncated, negative or oversized lengths, bad UTF-8."""


class Reader:
    """Reads jute primitives from a bytes-like buffer, checking bounds."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def _need(self, n: int) -> None:
        if self.pos + n > self.end:
            raise JuteError("record truncated")

    def int(self) -> int:
        self._need(4)
        (v,) = INT.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def long(self) -> int:
        self._need(8)
        (v,) = LONG.unpack_from(self.buf, self.pos)
        self.pos += 8
        return v

    def bool(self) -> bool:
        self._need(1)
        v = self.buf[self.pos]
        self.pos += 1
        return v != 0

    def buffer(self) -> bytes | None:
        n = self.int()
        if n < 0:
            if n < -1:
                raise JuteError("negative buffer length")
            return None
        self._need(n)
        v = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return v

    def ustring(self) -> str | None:
        n = self.int()
        if n < 0:
            if n < -1:
                raise JuteError("negative string length")
            return None
        self._need(n)
        # Java decodes invalid UTF-8 with U+FFFD replacement characters (a path with them
        # is then invalid, or not found): so do we.
        v = bytes(self.buf[self.pos : self.pos + n]).decode("utf-8", "replace")
        self.pos += n
        return v

    def path(self) -> str:
        """A ustring where null is not allowed (paths, schemes)."""
        v = self.ustring()
        if v is None:
            raise JuteError("null string")
        return v

    def _count(self) -> int:
        n = self.int()
        if n > self.end - self.pos:  # every element takes at least one byte
            raise JuteError("vector length exceeds record")
        return n

    def strings(self) -> list[str]:
        n = self._count()
        return [] if n <= 0 else [self.path() for _ in range(n)]

    def acls(self) -> list[ACL] | None:
        n = self._count()
        if n < 0:
            return None
        out = []
        for _ in range(n):
            perms = self.int()
            # Clients (kazoo) send "" as a null string; ZooKeeper's Java records accept both.
            scheme = self.ustring() or ""
            ident = self.ustring() or ""
            out.append((perms, scheme, ident))
        return out

    def remaining(self) -> int:
        return self.end - self.pos


# ---------------------------------------------------------------- encoding helpers


def enc_int(v: int) -> bytes:
    return INT.pack(v)


def enc_buffer(b: bytes | None) -> bytes:
    if b is None:
        return b"\xff\xff\xff\xff"
    return INT.pack(len(b)) + b


def enc_string(s: str | None) -> bytes:
    if s is None:
        return b"\xff\xff\xff\xff"
    b = s.encode("utf-8")
    return INT.pack(len(b)) + b


def enc_strings(items: list[str]) -> bytes:
    parts = [INT.pack(len(items))]
    for s in items:
        b = s.encode("utf-8")
        parts.append(INT.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def enc_acls(acls: list[ACL] | tuple[ACL, ...]) -> bytes:
    parts = [INT.pack(len(acls))]
    for perms, scheme, ident in acls:
        parts.append(INT.pack(perms))
        parts.append(enc_string(scheme))
        parts.append(enc_string(ident))
    return b"".join(parts)


# ---------------------------------------------------------------- connect handshake


class ConnectRequest:
    __slots__ = ("protocol_version", "last_zxid_seen", "timeout", "session_id", "passwd", "read_only", "has_read_only")

    def __init__(self, protocol_version: int, last_zxid_seen: int, timeout: int, session_id: int,
                 passwd: bytes, read_only: bool, has_read_only: bool) -> None:
        self.protocol_version = protocol_version
        self.last_zxid_seen = last_zxid_seen
        self.timeout = timeout
        self.session_id = session_id
        self.passwd = passwd
        self.read_only = read_only
        self.has_read_only = has_read_only


def decode_connect(payload: bytes | memoryview) -> ConnectRequest:
    r = Reader(payload)
    proto = r.int()
    last_zxid = r.long()
    timeout = r.int()
    session_id = r.long()
    passwd = r.buffer() or b""
    has_ro = r.remaining() >= 1
    ro = r.bool() if has_ro else False
    return ConnectRequest(proto, last_zxid, timeout, session_id, passwd, ro, has_ro)


def encode_connect_response(timeout: int, session_id: int, passwd: bytes, read_only: bool, with_read_only: bool) -> bytes:
    body = INT.pack(0) + INT.pack(timeout) + LONG.pack(session_id) + enc_buffer(passwd)
    if with_read_only:
        body += b"\x01" if read_only else b"\x00"
    return INT.pack(len(body)) + body


# ---------------------------------------------------------------- request decoders
# Each decoder takes a Reader positioned after the RequestHeader and returns a tuple.


def _d_path_watch(r: Reader) -> tuple:
    return (r.path(), r.bool())


def _d_path(r: Reader) -> tuple:
    return (r.path(),)


def _d_create(r: Reader) -> tuple:
    path = r.path()
    data = r.buffer()
    acl = r.acls()
    flags = r.int()
    return (path, data, acl, flags, -1)


def _d_create_ttl(r: Reader) -> tuple:
    path = r.path()
    data = r.buffer()
    acl = r.acls()
    flags = r.int()
    ttl = r.long()
    return (path, data, acl, flags, ttl)


def _d_path_version(r: Reader) -> tuple:
    return (r.path(), r.int())


def _d_set_data(r: Reader) -> tuple:
    return (r.path(), r.buffer(), r.int())


def _d_set_acl(r: Reader) -> tuple:
    return (r.path(), r.acls(), r.int())


def _d_auth(r: Reader) -> tuple:
    return (r.int(), r.path(), r.buffer() or b"")


def _d_set_watches(r: Reader) -> tuple:
    return (r.long(), r.strings(), r.strings(), r.strings(), [], [])


def _d_set_watches2(r: Reader) -> tuple:
    return (r.long(), r.strings(), r.strings(), r.strings(), r.strings(), r.strings())


def _d_path_int(r: Reader) -> tuple:
    return (r.path(), r.int())


def _d_empty(r: Reader) -> tuple:
    return ()


def _d_get_ephemerals(r: Reader) -> tuple:
    return (r.ustring() or "",)


# Sub-operations allowed inside multi (write) and multiRead.
MULTI_WRITE_OPS = {Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER, Op.DELETE, Op.SET_DATA, Op.CHECK}
MULTI_READ_OPS = {Op.GET_CHILDREN, Op.GET_DATA}


def _multi_of(allowed: set) -> Callable[[Reader], tuple]:
    """MultiOperationRecord: a multi holds only writes, a multiRead only reads (else MARSHALLINGERROR)."""

    def decode(r: Reader) -> tuple:
        ops = []
        while True:
            op_type = r.int()
            done = r.bool()
            r.int()  # err, unused in requests
            if done:
                break
            if op_type not in allowed:
                raise JuteError(f"op {op_type} not allowed here")
            ops.append((op_type, DECODERS[op_type](r)))
        return (ops,)

    return decode


def _d_reconfig(r: Reader) -> tuple:
    return (r.ustring(), r.ustring(), r.ustring(), r.long())


def _d_add_watch(r: Reader) -> tuple:
    path, mode = r.path(), r.int()
    if mode not in (0, 1):
        raise JuteError(f"unknown watch mode {mode}")  # WatcherMode.fromZooDef throws
    return (path, mode)


def _d_sasl(r: Reader) -> tuple:
    return (r.buffer(),)


DECODERS: dict[int, Callable[[Reader], tuple]] = {
    Op.CREATE: _d_create,
    Op.CREATE2: _d_create,
    Op.CREATE_CONTAINER: _d_create,
    Op.CREATE_TTL: _d_create_ttl,
    Op.DELETE: _d_path_version,
    Op.EXISTS: _d_path_watch,
    Op.GET_DATA: _d_path_watch,
    Op.SET_DATA: _d_set_data,
    Op.GET_ACL: _d_path,
    Op.SET_ACL: _d_set_acl,
    Op.GET_CHILDREN: _d_path_watch,
    Op.GET_CHILDREN2: _d_path_watch,
    Op.GET_ALL_CHILDREN_NUMBER: _d_path,
    Op.GET_EPHEMERALS: _d_get_ephemerals,
    Op.CHECK: _d_path_version,
    Op.MULTI: _multi_of(MULTI_WRITE_OPS),
    Op.MULTI_READ: _multi_of(MULTI_READ_OPS),
    Op.RECONFIG: _d_reconfig,
    Op.SASL: _d_sasl,
    Op.SYNC: _d_path,
    Op.PING: _d_empty,
    Op.AUTH: _d_auth,
    Op.SET_WATCHES: _d_set_watches,
    Op.SET_WATCHES2: _d_set_watches2,
    Op.ADD_WATCH: _d_add_watch,
    Op.REMOVE_WATCHES: _d_path_int,
    Op.CHECK_WATCHES: _d_path_int,
    Op.WHO_AM_I: _d_empty,
    Op.CLOSE_SESSION: _d_empty,
}


# ---------------------------------------------------------------- hot-path decoders
# (buf, pos, end) -> args without a Reader object, for the requests that dominate load.


def _fast_path_watch(buf, pos: int, end: int) -> tuple:
    if end - pos < 5:
        raise JuteError("record truncated")
    (n,) = INT.unpack_from(buf, pos)
    p = pos + 4
    q = p + n
    if n < 0 or q >= end:
        raise JuteError("record truncated")
    return (bytes(buf[p:q]).decode("utf-8", "replace"), buf[q] != 0)


def _fast_set_data(buf, pos: int, end: int) -> tuple:
    if end - pos < 12:
        raise JuteError("record truncated")
    (n,) = INT.unpack_from(buf, pos)
    p = pos + 4
    q = p + n
    if n < 0 or q + 8 > end:
        raise JuteError("record truncated")
    path = bytes(buf[p:q]).decode("utf-8", "replace")
    (m,) = INT.unpack_from(buf, q)
    if m < -1:
        raise JuteError("negative buffer length")
    if m < 0:
        data = None
        r = q + 4
    else:
        r = q + 4 + m
        if r + 4 > end:
            raise JuteError("record truncated")
        data = bytes(buf[q + 4 : r])
    (version,) = INT.unpack_from(buf, r)
    return (path, data, version)


def _via_reader(dec: Callable[[Reader], tuple]) -> Callable:
    def decode(buf, pos: int, end: int) -> tuple:
        return dec(Reader(buf, pos, end))

    return decode


DECODE: dict[int, Callable] = {op: _via_reader(dec) for op, dec in DECODERS.items()}
DECODE.update({Op.GET_DATA: _fast_path_watch, Op.EXISTS: _fast_path_watch, Op.GET_CHILDREN: _fast_path_watch,
               Op.GET_CHILDREN2: _fast_path_watch, Op.SET_DATA: _fast_set_data})


def decode_request(payload: bytes | memoryview) -> tuple[int, int, tuple | None]:
    """(xid, op, args) of one request frame; args is None for an op code we do not know.

    Raises JuteError on a malformed record.
    """
    if len(payload) < 8:
        raise JuteError("request header truncated")
    xid, op = INT_INT.unpack_from(payload, 0)
    dec = DECODE.get(op)
    if dec is None:
        return xid, op, None
    return xid, op, dec(payload, 8, len(payload))


# ---------------------------------------------------------------- request encoders (clients, tests, benchmarks)


def _e_create(args: tuple) -> bytes:
    path, data, acl, flags, ttl = args
    out = enc_string(path) + enc_buffer(data) + enc_acls(acl) + INT.pack(flags)
    return out


def encode_request(xid: int, op: int, args: tuple) -> bytes:
    """Encode a request frame (length-prefixed).  The inverse of decode_request."""
    body = _encode_body(op, args)
    payload = INT_INT.pack(xid, op) + body
    return INT.pack(len(payload)) + payload


def _encode_body(op: int, args: tuple) -> bytes:
    if op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER):
        return _e_create(args)
    if op == Op.CREATE_TTL:
        return _e_create(args) + LONG.pack(args[4])
    if op in (Op.EXISTS, Op.GET_DATA, Op.GET_CHILDREN, Op.GET_CHILDREN2):
        return enc_string(args[0]) + (b"\x01" if args[1] else b"\x00")
    if op in (Op.DELETE, Op.CHECK, Op.ADD_WATCH, Op.REMOVE_WATCHES, Op.CHECK_WATCHES):
        return enc_string(args[0]) + INT.pack(args[1])
    if op == Op.SET_DATA:
        return enc_string(args[0]) + enc_buffer(args[1]) + INT.pack(args[2])
    if op == Op.SET_ACL:
        return enc_string(args[0]) + enc_acls(args[1]) + INT.pack(args[2])
    if op in (Op.GET_ACL, Op.GET_ALL_CHILDREN_NUMBER, Op.SYNC, Op.GET_EPHEMERALS):
        return enc_string(args[0])
    if op == Op.AUTH:
        return INT.pack(args[0]) + enc_string(args[1]) + enc_buffer(args[2])
    if op in (Op.SET_WATCHES, Op.SET_WATCHES2):
        out = LONG.pack(args[0]) + enc_strings(args[1]) + enc_strings(args[2]) + enc_strings(args[3])
        if op == Op.SET_WATCHES2:
            out += enc_strings(args[4]) + enc_strings(args[5])
        return out
    if op == Op.RECONFIG:
        return enc_string(args[0]) + enc_string(args[1]) + enc_string(args[2]) + LONG.pack(args[3])
    if op == Op.SASL:
        return enc_buffer(args[0])
    if op in (Op.MULTI, Op.MULTI_READ):
        parts = []
        for sub_op, sub_args in args[0]:
            parts.append(MULTI_HEADER.pack(sub_op, False, -1))
            parts.append(_encode_body(sub_op, sub_args))
        parts.append(MULTI_HEADER.pack(-1, True, -1))
        return b"".join(parts)
    return b""


def encode_connect_request(timeout: int = 10000, session_id: int = 0, passwd: bytes = b"\x00" * 16,
                           last_zxid: int = 0, read_only: bool | None = False) -> bytes:
    body = INT.pack(0) + LONG.pack(last_zxid) + INT.pack(timeout) + LONG.pack(session_id) + enc_buffer(passwd)
    if read_only is not None:
        body += b"\x01" if read_only else b"\x00"
    return INT.pack(len(body)) + body


# ---------------------------------------------------------------- responses


def reply(xid: int, zxid: int, err: int, body: bytes = b"") -> bytes:
    """A complete response frame: length, ReplyHeader, body."""
    return INT.pack(16 + len(body)) + REPLY_HEADER.pack(xid, zxid, err) + body


def encode_event(event_type: int, state: int, path: str) -> bytes:
    """A notification frame (xid -1) carrying a WatcherEvent."""
    return reply(-1, -1, 0, INT_INT.pack(event_type, state) + enc_string(path))


def decode_reply_header(payload: bytes | memoryview) -> tuple[int, int, int]:
    return REPLY_HEADER.unpack_from(payload, 0)


def decode_stat(r: Reader) -> tuple:
    r._need(STAT.size)
    v = STAT.unpack_from(r.buf, r.pos)
    r.pos += STAT.size
    return v


