"""One client connection: frames in, responses and watch events out (NIOServerCnxn).

The hot path: `data_received` parses every complete frame in the buffer, answers reads at
once (unless the session has writes in flight: per-session FIFO), hands writes to the
member's pipeline, and writes everything the batch produced with one `transport.write`.
No task, future or log line per request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from ..logs import get_logger
from ..protocol import jute
from ..protocol.codes import XID_AUTH, Err, Op, State
from ..protocol.framing import BufferLimitError, FrameLengthError, Frames, four_letter_word
from ..protocol.jute import INT, INT_INT, REPLY_HEADER, JuteError, Reader, enc_buffer
from ..requests.final import READS, WRITES
from ..summary import Runs, Summary
from ..tree.acl import SUPER
from . import fourletter
from .faults import Action, FaultTable
from .sasl import DigestMD5Exchange, SaslError
from .ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from .clients import ClientTable
    from .member import Member

log = get_logger("zkpy.connection")
bad_input = RateLimitedLog(log)  # every line here is about bad input: at most one a second each

_unpack_header = INT_INT.unpack_from
_pack_reply = REPLY_HEADER.pack
_pack_int = INT.pack
_DECODE = jute.DECODE
_SYNC, _PING = int(Op.SYNC), int(Op.PING)  # plain ints: an IntEnum member lookup costs ~100 ns
_AUTH, _SASL = int(Op.AUTH), int(Op.SASL)
_OUT_CHECK = 256 * 1024  # answer bytes after which the write buffer is looked at


class _Pending:
    """A request of this connection waiting for an earlier write (or itself a write)."""

    __slots__ = ("conn", "xid", "op", "args", "frame", "received_ms", "with_read_only")

    def __init__(self, conn: "ClientConnection", xid: int, op: int, args: tuple | None, frame: bytes | None,
                 received_ms: int = 0) -> None:
        self.conn = conn  # the member answers a committed txn through its entry
        self.xid = xid
        self.op = op
        self.args = args
        self.frame = frame
        self.received_ms = received_ms
        self.with_read_only = False


class WriteLatencies(Runs):
    """A connection's answered writes, for cons (reads are answered in their batch: 0 ms):
    their latencies as runs, and the cxid of the last.  Its own object, made at the first
    write: a connection's instance dict stays within CPython's 30 shared keys, whose
    attribute access the hot path relies on."""

    __slots__ = ("cxid",)

    def __init__(self) -> None:
        super().__init__(Summary())
        self.cxid = -1  # of the last write answered, whose latency is `value`


class _Held(Exception):
    """Raised out of the frame loop when a request is delayed (faults.delay)."""


class ClientConnection(asyncio.Protocol):
    def __init__(self, table: "ClientTable") -> None:
        self.table = table
        self.member: "Member" = table.member
        self.transport: asyncio.Transport | None = None
        max_frame = table.config.jute_max_buffer
        self.frames = Frames(max_frame, 2 * (max_frame + 4) + (1 << 20))
        self.out: list[bytes] = []
        self.session_id = 0
        self.timeout = 0
        self.identities: list[tuple[str, str]] = []
        self.peer = ("?", 0)
        self.pending: deque[_Pending] = deque()
        self.closed = False
        self._in_batch = False
        self._flush_scheduled = False
        self._reading_paused = False
        self._backlogged = False  # frames left unparsed until the client reads its answers
        self._out_bytes = 0
        self.packets_received = 0
        self.packets_sent = 0
        self.last_zxid = 0
        self.connected_at = 0.0  # the loop's clock; metrics.established_ms gives the epoch time
        # cons' per-connection stats (ServerCnxn's), kept at reply time: the cxid and op of the
        # last answer, and for writes (reads are answered in their batch: 0 ms) the latencies.
        self.last_cxid = -1
        self.last_op = 0  # an op code; 0 (a notification, never answered) reads as ZooKeeper's "NA"
        self.last_response_ms = 0
        self.write_latencies: WriteLatencies | None = None  # from the first answered write on
        self.interest = 1  # ZooKeeper's interestOps in cons: 0 while the connection runs a four-letter word
        self.old_client = False
        self.handshaken = False  # a ConnectRequest came (its connect and disconnect are logged; a 4lw's are not)
        self.drop_replies: set[int] | None = None  # xids whose answer closes the connection (faults.drop_reply)
        self.sasl: DigestMD5Exchange | None = None  # this connection's SASL exchange, once it has begun

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = (peer[0], peer[1])
        self.identities = [("ip", peer[0])]
        self.connected_at = self.table.loop.time()
        if not self.table.register(self):
            self.close()
        elif self.table.config.enforce_auth_schemes and not self._authenticated():
            # enforce.auth: until the client authenticates, only auth and sasl requests pass (an
            # instance attribute, so that a server without enforcement runs `_request` untouched).
            self._request = self._request_before_authentication  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handshaken:
            # ZooKeeper's "Closed socket connection for client ... which had sessionid 0x...".
            log.info("client disconnected", client=self.address, session=f"0x{self.session_id:x}",
                     closed_by="server" if self.closed else "client")
        self.closed = True
        self.table.unregister(self)
        # Break the cycles a connection is in (its transport holds it as protocol, its queued
        # requests hold it as `conn`, an enforce.auth `_request` is its own bound method), so
        # that refcounting frees it now: the server's collector freezes survivors every second
        # (gc_policy), and cyclic garbage would wait for the full pass every 10 minutes (RSS
        # +46 MB over 3M fuzzed frames and 108k connections).  A write still in flight keeps
        # its entry, whose answer then goes nowhere.
        self.transport = None
        self.pending.clear()
        self.__dict__.pop("_request", None)

    @property
    def address(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"

    def pause_writing(self) -> None:
        # The client does not read its responses: stop reading its requests.
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self._reading_paused:
            self._reading_paused = False
            if self._backlogged:
                # Answer what was left in the buffer before reading more.
                self._backlogged = False
                self.data_received(b"")
                if self._reading_paused:
                    return
            if self not in self.table.throttled:
                self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        member = self.member
        member.refresh_clock()
        if self.session_id:
            member.touch(self.session_id)
        self._in_batch = True
        received = self.packets_received
        try:
            self._process(data, member)
        finally:
            self._in_batch = False
            # Latency statistics (srvr, mntr): every request counts; those answered in this
            # batch took 0 ms, and a write adds its time when it is answered (write_done).
            stats = self.table.stats
            stats.count += self.packets_received - received
            stats.bytes_received += len(data)
        if self.out:
            self.last_response_ms = member.now_ms
            self._flush()
        if self.pending and member.outstanding >= self.table.config.global_outstanding_limit:
            self.table.throttle(self)

    # ------------------------------------------------------------ framing

    def _process(self, data: bytes, member: "Member") -> None:
        frames = self.frames
        buf = frames.buf
        try:
            for start, end in frames.feed(data):
                self.packets_received += 1
                if self.session_id:
                    self._request(buf, start, end, member)
                else:
                    self._connect(bytes(buf[start:end]), member)
                if self.closed:
                    return
                if self._out_bytes > _OUT_CHECK:
                    # Big answers: write them now, and stop parsing while the client does not read.
                    self._flush()
                    if self._reading_paused:
                        self._backlogged = True
                        return
        except FrameLengthError as e:
            if e.offset == 0 and self._four_letter_word(frames.head()):
                return
            bad_input.warning("closing connection: frame length out of bounds", peer=self.peer, length=e.length,
                              max=e.max_frame)
            self.close()
        except BufferLimitError as e:
            bad_input.warning("closing connection: too much unparsed input", peer=self.peer, buffered=e.buffered)
            self.close()
        except _Held:
            pass  # a delayed request: the frames after it stay buffered until it is released

    def _four_letter_word(self, head: bytes) -> bool:
        """ZooKeeper reads a connection's first 4 bytes as a command when they name one; read
        as a frame length, any such word is far beyond jute.maxbuffer."""
        word = four_letter_word(head, fourletter.COMMANDS)
        if word is None:
            return False
        self.packets_received += 1  # ZooKeeper counts the command as a packet received
        self.interest = 0
        if word == "stmk":
            # ZooKeeper reads the new mask, a long, from the 8 bytes after the word; without them
            # it closes the connection unanswered.
            arg = self.frames.head(12)[4:]
            if len(arg) < 8:
                self.close()
                return True
            answer = self.table.four_letter_word(word, arg).encode("utf-8")
        else:
            answer = self.table.four_letter_word(word).encode("utf-8")
        self.packets_sent += 1  # and its answer as one sent (after it ran, so cons shows sent=0)
        self.table.stats.count -= 1  # but not as a request (srvr's latencies, readlatency): data_received adds it
        if self.out:
            self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)  # not a response: response sizes and bytes leave it out
        self.close()
        return True

    # ------------------------------------------------------------ handshake

    def _connect(self, payload: bytes, member: "Member") -> None:
        try:
            req = jute.decode_connect(payload)
        except JuteError as e:
            bad_input.warning("closing connection: malformed connect request", peer=self.peer, error=str(e))
            self.close()
            return
        self.handshaken = True
        self.table.stats.connections_total += 1
        log.info("client connected", client=self.address, session=f"0x{req.session_id:x}", timeout=req.timeout,
                 last_zxid_seen=f"0x{req.last_zxid_seen:x}")
        member.connect(self, req)

    def expect_connect_response(self, with_read_only: bool) -> _Pending:
        """Hold this connection's requests until its new session is durable."""
        entry = _Pending(self, 0, Op.CREATE_SESSION, None, None)
        entry.with_read_only = with_read_only
        self.pending.append(entry)
        return entry

    def send_connect_response(self, timeout: int, session_id: int, passwd: bytes, with_read_only: bool,
                              entry: _Pending | None = None, read_only: bool = False) -> None:
        frame = jute.encode_connect_response(timeout, session_id, passwd, read_only, with_read_only)
        if session_id:
            log.info("session established", session=f"0x{session_id:x}", negotiated_timeout=timeout,
                     client=self.address, read_only=read_only)
        if entry is None:
            self.out.append(frame)
            self._kick()
        else:
            if entry.received_ms and session_id:
                # A new session's createSession txn: an update, as ZooKeeper times it.
                self.table.stats.writes.add(self.member.clock() - entry.received_ms)
            self._complete(entry, frame)

    # ------------------------------------------------------------ requests

    def _request(self, buf: bytearray, start: int, end: int, member: "Member", unfaulted: bool = False) -> None:
        if end - start < 8:
            bad_input.warning("closing connection: request header truncated", peer=self.peer)
            self.close()
            return
        xid, op = _unpack_header(buf, start)
        if member.faults is not None and not unfaulted and self._faulted(member.faults, buf, start, end, xid, op):
            return
        read = READS.get(op)
        if op == _SYNC:
            try:
                args = _DECODE[op](buf, start + 8, end)
            except JuteError:
                self._reply(xid, member.tree.last_zxid, Err.MARSHALLINGERROR, b"")
                return
            entry = _Pending(self, xid, op, None, None)
            self.pending.append(entry)
            member.sync(self, entry, args[0])
            return
        if read is not None:
            try:
                args = _DECODE[op](buf, start + 8, end)
            except JuteError:
                self._reply(xid, member.tree.last_zxid, Err.MARSHALLINGERROR, b"")
                return
            if self.pending:
                self.pending.append(_Pending(self, xid, op, args, None))
                return
            err, body = read(member.tree, self, args)
            self._reply(xid, member.tree.last_zxid, err, body)
            self.last_op = op
            return
        if op in WRITES:
            try:
                args = _DECODE[op](buf, start + 8, end)
            except JuteError:
                bad_input.info("malformed write request", peer=self.peer, op=op)
                if op == Op.MULTI:
                    # ZooKeeper gives an undecodable multi a zxid and logs it as an error txn.
                    entry = _Pending(self, xid, op, None, None)
                    self.pending.append(entry)
                    member.write_error(self, entry, op, Err.MARSHALLINGERROR)
                else:
                    self._reply(xid, member.tree.last_zxid, Err.MARSHALLINGERROR, b"")
                return
            entry = _Pending(self, xid, op, None, None, member.now_ms)
            self.pending.append(entry)
            member.write(self, entry, op, args, buf, start + 8, end)
            return
        if op == _PING:
            self.last_op = _PING
            self.out.append(_pack_int(16) + _pack_reply(-2, member.tree.last_zxid, 0))
            return
        if op == _AUTH:
            self._auth(buf, start, end, member)
            return
        if op == _SASL:
            self._sasl(xid, buf, start, end, member)
            return
        if op == Op.CLOSE_SESSION:
            entry = _Pending(self, xid, op, None, None)
            self.pending.append(entry)
            member.close_session(self, entry)
            return
        bad_input.warning("closing connection: unknown op code", peer=self.peer, op=op)
        self._reply(xid, member.tree.last_zxid, Err.UNIMPLEMENTED, b"")
        self._flush()
        self.close()

    def _auth(self, buf: bytearray, start: int, end: int, member: "Member") -> None:
        try:
            _type, scheme, auth = jute.DECODERS[Op.AUTH](Reader(buf, start + 8, end))
        except JuteError:
            bad_input.warning("closing connection: malformed auth packet", peer=self.peer)
            self.close()
            return
        ids = self.table.authenticate(scheme, auth)
        if ids is None:
            bad_input.info("authentication failed; closing connection", peer=self.peer, scheme=scheme)
            self.table.stats.auth_failed += 1
            self._reply(XID_AUTH, member.tree.last_zxid, Err.AUTHFAILED, b"")
            self._flush()
            self.close()
            return
        self._add_identities(ids)
        self._reply(XID_AUTH, member.tree.last_zxid, 0, b"")

    # ------------------------------------------------------------ SASL and enforce.auth

    def _sasl(self, xid: int, buf: bytearray, start: int, end: int, member: "Member") -> None:
        """One step of a SASL exchange (ZooKeeperServer.processSasl): the client's token in,
        the server's token out; a failed step closes the connection."""
        config = self.table.config
        if config.sasl is None:
            # No JAAS Server section: ZooKeeper answers OK with a null token and keeps the connection.
            self._sasl_answer(xid, enc_buffer(None))
            return
        try:
            if self.sasl is None:
                self.sasl = DigestMD5Exchange(config.sasl)
            token = _DECODE[_SASL](buf, start + 8, end)[0]
            answer = self.sasl.evaluate(token or b"")
        except (SaslError, JuteError) as e:
            log.warning("SASL authentication failed; closing connection", peer=self.peer,
                        session=f"0x{self.session_id:x}", error=str(e))
            err = Err.SESSIONCLOSEDREQUIRESASLAUTH if config.sasl_required else Err.AUTHFAILED
            self.table.stats.auth_failed += 1
            self._reply(xid, 0, err, enc_buffer(None))
            self._flush()
            self.close()
            return
        if self.sasl.complete:
            user = self.sasl.authorization_id
            log.info("SASL authentication succeeded", peer=self.peer, session=f"0x{self.session_id:x}", user=user)
            self._add_identities([("sasl", user)] + ([SUPER] if user in config.sasl.super_users else []))
        self._sasl_answer(xid, enc_buffer(answer))

    def _sasl_answer(self, xid: int, body: bytes) -> None:
        """SetSASLResponse, with zxid 0 as ZooKeeper sends it."""
        if self.pending:  # answered in order, behind this session's writes in flight
            self.pending.append(_Pending(self, xid, _SASL, None, _pack_int(16 + len(body)) + _pack_reply(xid, 0, 0)
                                         + body))
        else:
            self._reply(xid, 0, 0, body)

    def _add_identities(self, ids: list[tuple[str, str]]) -> None:
        for ident in ids:
            if ident not in self.identities:
                self.identities.append(ident)
        if "_request" in self.__dict__ and self._authenticated():
            del self._request  # enforce.auth is satisfied: the class's own `_request` again

    def _authenticated(self) -> bool:
        """An id of a scheme that enforce.auth.schemes asks for (AuthenticationHelper.isCnxnAuthenticated)."""
        schemes = self.table.config.enforce_auth_schemes
        return any(scheme in schemes for scheme, _ in self.identities)

    def _request_before_authentication(self, buf: bytearray, start: int, end: int, member: "Member",
                                       unfaulted: bool = False) -> None:
        """`_request` of a connection that enforce.auth still holds back: anything but auth and
        sasl gets SESSIONCLOSEDREQUIRESASLAUTH and closes the connection, as ZooKeeper 3.8 does."""
        if end - start >= 8:
            xid, op = _unpack_header(buf, start)
            if op != _AUTH and op != _SASL:
                log.error("closing connection: the client has not authenticated as enforce.auth requires",
                          peer=self.peer, session=f"0x{self.session_id:x}", op=op,
                          schemes=sorted(self.table.config.enforce_auth_schemes),
                          has=sorted({scheme for scheme, _ in self.identities}))
                self._reply(xid, 0, Err.SESSIONCLOSEDREQUIRESASLAUTH, b"")
                self._flush()
                self.close()
                return
        type(self)._request(self, buf, start, end, member, unfaulted)

    def _reply(self, xid: int, zxid: int, err: int, body: bytes) -> None:
        self._out_bytes += len(body)
        self.out.append(_pack_int(16 + len(body)) + _pack_reply(xid, zxid, err) + body)
        self.packets_sent += 1
        self.last_zxid = zxid
        self.last_cxid = xid

    def write_done(self, entry: _Pending, zxid: int, err: int, body: bytes) -> None:
        """The server finished a write of this connection: answer it and whatever waited behind it."""
        if self.drop_replies is not None and entry.xid in self.drop_replies:
            self.close()  # faults.drop_reply: applied, never answered
            return
        self.last_zxid = zxid
        self.last_cxid = entry.xid
        self.last_op = entry.op
        if entry.received_ms:
            # The member's clock as of this batch of commits: one read per batch, not per write.
            self.last_response_ms = now = self.member.now_ms
            latency = now - entry.received_ms
            runs = self.table.stats.writes
            if latency == runs.value:
                runs.run += 1
            else:
                runs.start(latency)
            runs = self.write_latencies
            if runs is None:
                runs = self.write_latencies = WriteLatencies()
            runs.cxid = entry.xid
            if latency == runs.value:
                runs.run += 1
            else:
                runs.start(latency)
        self._complete(entry, _pack_int(16 + len(body)) + _pack_reply(entry.xid, zxid, err) + body)

    def _complete(self, entry: _Pending, frame: bytes) -> None:
        entry.frame = frame
        pending = self.pending
        tree = self.member.tree
        while pending:
            head = pending[0]
            if head.frame is not None:
                self.out.append(head.frame)
                self.packets_sent += 1
            elif head.args is not None:
                err, body = READS[head.op](tree, self, head.args)
                self._reply(head.xid, tree.last_zxid, err, body)
                self.last_op = head.op
            else:
                break
            pending.popleft()
        self._kick()

    # ------------------------------------------------------------ faults on demand (faults.py)

    def _faulted(self, faults: FaultTable, buf: bytearray, start: int, end: int, xid: int, op: int) -> bool:
        """Carry out the fault a rule has for this request, if any; True when the request
        is taken care of (answered, dropped, or held), False when it goes on as usual."""
        try:
            args = _DECODE[op](buf, start + 8, end) if op in _DECODE else None
        except JuteError:
            args = None
        action = faults.on_request(self.session_id, op, args)
        if action is None:
            return False
        kind = action.kind
        if kind == "error":
            if action.code == Err.CONNECTIONLOSS:
                self.close()
            else:
                entry = _Pending(self, xid, op, None, None)  # answered in order, behind earlier requests
                self.pending.append(entry)
                self._complete(entry, _pack_int(16) + _pack_reply(xid, self.member.tree.last_zxid, action.code))
            return True
        if kind == "delay":
            self._hold(bytearray(buf[start:end]), action)  # raises _Held
        if kind == "close_before_commit":
            self._request(buf, start, end, self.member, True)
            self.close()
            return True
        if op in WRITES or op == _SYNC or op == Op.CLOSE_SESSION:  # drop_reply: at the answer
            if self.drop_replies is None:
                self.drop_replies = set()
            self.drop_replies.add(xid)
            return False
        self._request(buf, start, end, self.member, True)  # a read: processed, not answered
        self.close()
        return True

    def _hold(self, frame: bytearray, action: Action) -> None:
        """faults.delay: stop parsing (frames that arrive meanwhile are buffered, in order)
        and process `frame` after the delay, then the rest."""
        self._process = self._buffer_only  # type: ignore[method-assign]
        self.table.loop.call_later(action.seconds, self._release, frame)
        raise _Held

    def _buffer_only(self, data: bytes, member: "Member") -> None:
        try:
            self.frames.feed(data)  # not iterated: nothing is handed out
        except BufferLimitError:
            self.close()

    def _release(self, frame: bytearray) -> None:
        del self._process  # the class's own again
        if self.closed:
            return
        member = self.member
        member.refresh_clock()
        self._in_batch = True
        try:
            self._request(frame, 0, len(frame), member, True)
        finally:
            self._in_batch = False
        if not self.closed:
            self.data_received(b"")  # what arrived while it was held; writes the answers

    # ------------------------------------------------------------ events and output

    def notify(self, event_type: int, path: str) -> None:
        """A watch of this connection fired (the member passes on the events DataTree.apply returns)."""
        frame = jute.encode_event(event_type, State.SYNC_CONNECTED, path)
        self.out.append(frame)
        self.packets_sent += 1  # ZooKeeper counts a notification as a packet sent
        self.table.stats.watch_bytes += len(frame) - 4
        self._kick()

    def _kick(self) -> None:
        if self._in_batch or self._flush_scheduled or self.closed:
            return
        self._flush_scheduled = True
        self.table.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._out_bytes = 0
        out = self.out
        if out and self.transport is not None and not self.closed and not self.transport.is_closing():
            data = b"".join(out) if len(out) > 1 else out[0]
            self.transport.write(data)
            self.table.stats.sent(out, len(data))
        out.clear()

    def close(self) -> None:
        if self.out:
            self._flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
