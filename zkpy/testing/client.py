"""A minimal blocking ZooKeeper client over a raw socket, for tests and tools.
(addWatch, removeWatches, getEphemerals, getAllChildrenNumber, whoAmI, createTTL,
multiRead, setWatches2) and for byte-level tests."""

from __future__ import annotations

import socket
import struct

from zkpy.protocol import jute
from zkpy.protocol.codes import Op

OPEN_ACL = [(31, "world", "anyone")]


class RawClient:
    def __init__(self, host: str, port: int, timeout_ms: int = 10000, session_id: int = 0,
                 passwd: bytes = b"\x00" * 16, last_zxid: int = 0, io_timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.xid = 0
        self.events: list[tuple[int, int, str]] = []
        self.sock.sendall(jute.encode_connect_request(timeout_ms, session_id, passwd, last_zxid))
        body = self._frame()
        r = jute.Reader(body)
        r.int()
        self.timeout = r.int()
        self.session_id = r.long()
        self.passwd = r.buffer()

    def _frame(self) -> bytes:
        while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">i", self.buf[:4])[0]:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data
        (n,) = struct.unpack(">i", self.buf[:4])
        frame, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
        return frame

    def call(self, op: int, args: tuple = (), xid: int | None = None) -> tuple[int, jute.Reader, int]:
        """Send one request; return (err, reader over the body, zxid). Collects watch events on the way."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.sock.sendall(jute.encode_request(xid, op, args))
        while True:
            frame = self._frame()
            rxid, zxid, err = jute.decode_reply_header(frame)
            r = jute.Reader(frame, 16)
            if rxid == -1:
                self.events.append((r.int(), r.int(), r.ustring()))
                continue
            if rxid != xid:
                raise AssertionError(f"unexpected xid {rxid}, wanted {xid}")
            return err, r, zxid

    def wait_events(self, n: int) -> list[tuple[int, int, str]]:
        """Round-trip pings until at least n events have arrived."""
        for _ in range(50):
            if len(self.events) >= n:
                break
            self.call(Op.PING, (), xid=-2)
        return self.events

    def create(self, path: str, data: bytes = b"", flags: int = 0, acl=None, ttl: int = -1, op: int = Op.CREATE2):
        args = (path, data, acl or OPEN_ACL, flags, ttl)
        return self.call(op, args)

    def close(self) -> None:
        try:
            self.call(Op.CLOSE_SESSION)
        except (ConnectionError, OSError):
            pass
        self.sock.close()
