"""Simulated clients: connection handles the member answers through, the client table, a workload.

`SimConn` is what the member sees of a client connection (connection.py's ClientConnection
without the socket): requests are dispatched as `ClientConnection._request` does, and a read
waits behind the session's pending writes (per-session FIFO), answered against `member.tree`
when its turn comes.  `SimClientTable` is the member's `Clients`.  `SimClient` connects,
writes (persistent, ephemeral and sequential creates, versioned setData and delete, multi),
syncs and reads, pings, closes its session, and reconnects to other members with its session
and last zxid seen, as the Java client does; every reply is handed to the checker.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Callable

from ..protocol import jute
from ..protocol.codes import Op
from ..protocol.jute import ConnectRequest
from ..requests.final import READS, WRITES
from ..requests.sessions import session_password
from ..tree.acl import OPEN_ACL_UNSAFE

EPHEMERAL, SEQUENTIAL = 1, 2


class Entry:
    """A request of a connection waiting for its answer (connection._Pending)."""

    __slots__ = ("conn", "xid", "op", "args", "frame", "with_read_only", "received_ms")

    def __init__(self, conn: "SimConn", xid: int, op: int, args: tuple | None) -> None:
        self.conn = conn
        self.xid = xid
        self.op = op
        self.args = args
        self.frame: tuple | None = None
        self.with_read_only = False
        self.received_ms = 0


class SimConn:
    def __init__(self, client: "SimClient", table: "SimClientTable", member: Any) -> None:
        self.client = client
        self.table = table
        self.member = member
        self.session_id = 0
        self.timeout = 0
        self.old_client = False
        self.identities = [("ip", f"10.0.0.{client.cid}")]
        self.peer = (f"10.0.0.{client.cid}", 40000 + client.cid)
        self.pending: deque[Entry] = deque()
        self.closed = False
        table.register(self)

    # ------------------------------------------------------------ what the member calls

    def expect_connect_response(self, with_read_only: bool) -> Entry:
        entry = Entry(self, 0, Op.CREATE_SESSION, None)
        entry.with_read_only = with_read_only
        self.pending.append(entry)
        return entry

    def send_connect_response(self, timeout: int, session_id: int, passwd: bytes, with_read_only: bool,
                              entry: Entry | None = None, read_only: bool = False) -> None:
        frame = ("connect", timeout, session_id, passwd)
        if entry is None:
            self._deliver(frame)
        else:
            self._complete(entry, frame)

    def write_done(self, entry: Entry, zxid: int, err: int, body: bytes) -> None:
        self._complete(entry, ("reply", entry.xid, entry.op, zxid, err))

    def notify(self, event_type: int, path: str) -> None:
        if not self.closed:
            self.client.events.append((event_type, path))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.table.unregister(self)

    # ------------------------------------------------------------ requests (ClientConnection._request)

    def request(self, xid: int, op: int, args: tuple) -> None:
        member = self.member
        member.refresh_clock()
        member.touch(self.session_id)
        payload = jute.encode_request(xid, op, args)[4:]
        end = len(payload)
        decode = jute.DECODE.get(op)
        decoded = decode(payload, 8, end) if decode is not None else ()
        if op == Op.SYNC:
            entry = Entry(self, xid, op, None)
            self.pending.append(entry)
            member.sync(self, entry, decoded[0])
        elif op in READS:
            if self.pending:
                self.pending.append(Entry(self, xid, op, decoded))
            else:
                self._answer_read(xid, op, decoded)
        elif op in WRITES:
            entry = Entry(self, xid, op, None)
            self.pending.append(entry)
            member.write(self, entry, op, decoded, bytearray(payload), 8, end)
        elif op == Op.CLOSE_SESSION:
            entry = Entry(self, xid, op, None)
            self.pending.append(entry)
            member.close_session(self, entry)

    def _answer_read(self, xid: int, op: int, args: tuple) -> None:
        tree = self.member.tree
        err, _ = READS[op](tree, self, args)
        self._deliver(("reply", xid, op, tree.last_zxid, err))

    def _complete(self, entry: Entry, frame: tuple) -> None:
        if entry.frame is not None:
            self.client.report(f"request xid {entry.xid} answered twice")
        entry.frame = frame
        pending = self.pending
        while pending:
            head = pending[0]
            if head.frame is not None:
                self._deliver(head.frame)
            elif head.args is not None:
                self._answer_read(head.xid, head.op, head.args)
            else:
                break
            pending.popleft()

    def _deliver(self, frame: tuple) -> None:
        if not self.closed:
            self.client.receive(self, frame)


class SimClientTable:
    """The member's Clients: connections by session (clients.ClientTable without sockets)."""

    def __init__(self) -> None:
        self.member: Any = None
        self.connections: list[SimConn] = []  # a list: closing order must not depend on hashes
        self.by_session: dict[int, list[SimConn]] = {}

    def register(self, conn: SimConn) -> None:
        self.connections.append(conn)

    def unregister(self, conn: SimConn) -> None:
        if conn in self.connections:
            self.connections.remove(conn)
        if self.member is not None:
            self.member.tree.remove_watcher(conn)
        conns = self.by_session.get(conn.session_id)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self.by_session[conn.session_id]

    def bind(self, conn: SimConn, session: int) -> None:
        conn.session_id = session
        self.by_session.setdefault(session, []).append(conn)

    def reattached(self, conn: SimConn, session: int) -> None:
        for old in list(self.by_session.get(session, ())):
            if old is not conn:
                old.close()

    def close_session(self, session: int) -> None:
        for conn in list(self.by_session.pop(session, ())):
            conn.close()

    def drop_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    def unthrottle(self) -> None:
        pass


class SimClient:
    """One client process: a session, moved between members as connections fail."""

    def __init__(self, cid: int, rng: random.Random, on_reply: Callable[["SimClient", tuple], None],
                 report: Callable[[str], None]) -> None:
        self.cid = cid
        self.rng = rng
        self.on_reply = on_reply
        self.report = report
        self.conn: SimConn | None = None
        self.sid: int | None = None  # the member it is connected to
        self.session = 0
        self.timeout = rng.choice((600, 1000, 2000))
        self.xid = 0
        self.last_zxid = 0
        self.connected = False
        self.retry_at = 0
        self.last_heard = 0
        self.sent: dict[int, tuple[int, int]] = {}  # xid -> (op, sent at) of requests unanswered
        self.events: list[tuple[int, str]] = []  # watch notifications, in order
        self.told: deque[tuple] = deque(maxlen=200)  # the last replies: (session, xid, op, zxid, err)
        self.last_xid_answered = 0
        self.acked = 0

    # ------------------------------------------------------------ connection life

    def lost(self, now: int) -> None:
        self.conn = None
        self.connected = False
        self.sent.clear()
        self.retry_at = now + self.rng.randint(1, 20) * 10

    def hang_up(self, now: int) -> None:
        if self.conn is not None:
            self.conn.close()
        self.lost(now)

    def connect(self, sid: int, member: Any, table: SimClientTable, now: int) -> None:
        self.sid = sid
        self.conn = conn = SimConn(self, table, member)
        self.last_heard = now
        member.refresh_clock()
        session = self.session
        req = ConnectRequest(0, self.last_zxid, self.timeout, session,
                             session_password(session) if session else b"\x00" * 16, False, True)
        member.connect(conn, req)

    def receive(self, conn: SimConn, frame: tuple) -> None:
        if conn is not self.conn:
            return
        self.last_heard = self.now
        if frame[0] == "connect":
            _, timeout, session, _ = frame
            if session == 0:
                self.session = 0  # expired: the next connection starts a new session
                self.last_xid_answered = 0
                self.conn.close()
                return
            if self.session and session != self.session:
                self.report(f"client {self.cid} reattached to session {session:#x}, not {self.session:#x}")
            if session != self.session:
                self.last_xid_answered = 0
            self.session = session
            self.connected = True
            return
        _, xid, op, zxid, err = frame
        self.sent.pop(xid, None)
        if xid <= self.last_xid_answered:
            self.report(f"session {self.session:#x}: reply to xid {xid} after xid {self.last_xid_answered}")
        self.last_xid_answered = xid
        if zxid < self.last_zxid:
            self.report(f"session {self.session:#x}: reply to xid {xid} carries zxid {zxid:#x} after "
                        f"{self.last_zxid:#x} (went back in time)")
        self.last_zxid = max(self.last_zxid, zxid)
        self.told.append((self.session, xid, op, zxid, err))
        self.on_reply(self, frame)
        if op == Op.CLOSE_SESSION and err == 0:
            self.session = 0
            self.last_xid_answered = 0

    # ------------------------------------------------------------ the workload

    now = 0

    def act(self, now: int, members: dict[int, Any], tables: dict[int, SimClientTable], up: list[int],
            reachable: Callable[[int], bool], writes: bool) -> None:
        """One step of this client: notice failures, (re)connect, ping, maybe send a request."""
        self.now = now
        rng = self.rng
        if self.conn is not None and self.conn.closed:
            self.lost(now)
        if self.conn is None:
            if now >= self.retry_at and up:
                sid = rng.choice(up)
                self.connect(sid, members[sid], tables[sid], now)
            return
        if not reachable(self.sid):  # paused or crashed under us: nothing comes back
            if now - self.last_heard > self.timeout * 2 // 3:
                self.hang_up(now)
            return
        member = self.conn.member
        oldest = min((t for _, t in self.sent.values()), default=now)
        if now - oldest > self.timeout:
            self.hang_up(now)  # a request that never returns: the connection is dead to us
            return
        if not self.connected:
            if now - self.last_heard > self.timeout:
                self.hang_up(now)
            return
        if now - self.last_heard >= self.timeout // 3:
            member.refresh_clock()
            member.touch(self.session)  # a ping: the member answers at once
            self.last_heard = now
        if len(self.sent) < 3 and rng.random() < (0.25 if writes else 0.0):
            self._request(rng, now)
        elif writes and rng.random() < 0.004:
            self.hang_up(now)  # moves to another member, keeping its session

    def _request(self, rng: random.Random, now: int) -> None:
        op, args = self._choose(rng)
        self.xid += 1
        self.sent[self.xid] = (op, now)
        assert self.conn is not None
        self.conn.request(self.xid, op, args)

    def _choose(self, rng: random.Random) -> tuple[int, tuple]:
        r = rng.random()
        data = f"c{self.cid}x{self.xid + 1}".encode()
        node = f"/n{rng.randrange(6)}"
        if r < 0.25:
            kind = rng.random()
            if kind < 0.5:
                return rng.choice((Op.CREATE, Op.CREATE2)), (node, data, OPEN_ACL_UNSAFE, 0, -1)
            if kind < 0.75:
                return Op.CREATE, (f"/e{self.cid}_{rng.randrange(3)}", data, OPEN_ACL_UNSAFE, EPHEMERAL, -1)
            parent = rng.choice(("/q", "/n0"))
            return Op.CREATE2, (parent + "/s-", data, OPEN_ACL_UNSAFE, SEQUENTIAL | (rng.random() < 0.3), -1)
        if r < 0.45:
            return Op.SET_DATA, (node, data, rng.choice((-1, 0, 1, 2)))
        if r < 0.55:
            path = node if rng.random() < 0.7 else f"/e{self.cid}_{rng.randrange(3)}"
            return Op.DELETE, (path, rng.choice((-1, -1, 0, 1)))
        if r < 0.65:
            ops = [(Op.CREATE, (f"/n{rng.randrange(6)}", data, OPEN_ACL_UNSAFE, 0, -1)),
                   (Op.SET_DATA, (f"/n{rng.randrange(6)}", data, -1)),
                   (Op.CHECK, (f"/n{rng.randrange(6)}", rng.choice((-1, 0, 1))))]
            if rng.random() < 0.5:
                ops.append((Op.DELETE, (f"/n{rng.randrange(6)}", -1)))
            return Op.MULTI, (ops,)
        if r < 0.70:
            return Op.SYNC, ("/",)
        if r < 0.73:
            return Op.CREATE, ("/q", b"", OPEN_ACL_UNSAFE, 0, -1)
        if r < 0.745:
            return Op.CLOSE_SESSION, ()
        read = rng.random()
        if read < 0.5:
            return Op.GET_DATA, (node, rng.random() < 0.3)
        if read < 0.75:
            return Op.EXISTS, (node, rng.random() < 0.3)
        return Op.GET_CHILDREN, ("/", rng.random() < 0.3)
