"""Peer transport for an ensemble: msgpack frames over asyncio TCP.

Each server listens on its quorum port and dials every other server; it sends on the
connection it dialled and receives on the ones it accepted, so no tie-breaking is needed.
Frames sent during one turn of the event loop go out together, one write per peer
(proposals, acks and commits of a whole batch of client requests share a syscall).
A connection starts with a hello frame naming the sender's server id; frames from an
unknown id, malformed frames, and peers that flood past a bound are dropped with a log line.
With quorum authentication (quorum_auth.py) the hello opens a challenge–response, and the
acceptor reads no message from a link until the dialer has proved its credentials and that
they may claim its server id.  With sslQuorum the links are mutual TLS (tls.peer_contexts);
the accepting side handshakes through tls.TlsListener, so a member without the ensemble's
certificate is refused with a log line on both sides.

Server lines may name hosts by DNS name.  A link resolves its peer's name each time it dials
(the event loop's getaddrinfo, off the loop thread), so a member that comes back on another
address is found again once its old link has died; a link whose sent bytes go unacknowledged
for `link_timeout_ms` (syncLimit ticks, as ZooKeeper's learner socket timeout) is dropped by
the kernel (TCP_USER_TIMEOUT) rather than waiting minutes for TCP to give up on a vanished peer.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from typing import Callable

import msgpack

from ..logs import get_logger
from ..protocol.framing import BufferLimitError, FrameLengthError, Frames
from . import quorum_auth
from .quorum_auth import QuorumAuth
from .ratelimit import RateLimitedLog
from .tls import TlsListener

log = get_logger("zkpy.peers")
bad_input = RateLimitedLog(log)  # every line here is about bad input: at most one a second each

LEN = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024  # a SNAP of a large tree fits; anything larger is an attack
MAX_BUFFERED = 512 * 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0  # seconds an authenticating link may take before it is closed
MAX_HANDSHAKE_FRAME = 4096


class PeerAuthError(Exception):
    """The peer we dialled did not complete quorum authentication."""


def encode(msg) -> bytes:
    body = msgpack.packb(msg, use_bin_type=True)
    return LEN.pack(len(body)) + body


class _Inbound(asyncio.Protocol):
    def __init__(self, peers: "Peers") -> None:
        self.peers = peers
        self.frames = Frames(MAX_FRAME, MAX_BUFFERED)
        self.sid: int | None = None  # set once the hello (and with quorum auth, the proof) is accepted
        self.transport: asyncio.Transport | None = None
        self.pending: tuple | None = None  # (sid, user, password, dialer nonce, our nonce) while authenticating
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.peers.auth is not None:
            self.timer = asyncio.get_running_loop().call_later(
                HANDSHAKE_TIMEOUT, self._refuse, "peer did not authenticate in time; closing")

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        frames = self.frames
        buf = frames.buf
        try:
            for start, end in frames.feed(data):
                try:
                    msg = msgpack.unpackb(buf[start:end], raw=False)  # one copy (a memoryview would pin buf)
                except Exception:  # noqa: BLE001 - any undecodable frame is dropped
                    if self.sid is None:
                        return self._refuse("malformed peer hello; closing")
                    bad_input.warning("malformed peer frame dropped", sid=self.sid)
                    continue
                if self.sid is None:
                    if not self._handshake(msg):
                        return
                    continue
                self.peers.on_message(self.sid, msg)
        except BufferLimitError:
            bad_input.warning("peer floods; disconnecting", sid=self.sid)
            self.transport.close()
        except FrameLengthError as e:
            # The sender's length is unsigned (LEN): a negative one here is 2**31 or more.
            bad_input.warning("oversized peer frame; disconnecting", sid=self.sid, length=e.length & 0xFFFFFFFF)
            self.transport.close()

    def _refuse(self, why: str, **fields) -> bool:
        bad_input.warning(why, **fields)
        self.pending = None
        self.transport.close()
        return False

    def _accept(self, sid: int) -> bool:
        self.sid = sid
        self.pending = None
        if self.timer is not None:
            self.timer.cancel()
        return True

    def _handshake(self, msg) -> bool:
        """One frame of a link's set-up; False when the link was refused (and closed)."""
        auth = self.peers.auth
        if self.pending is not None:
            return self._check_proof(auth, msg)
        if not (isinstance(msg, list) and len(msg) in (2, 4) and msg[0] == "hello" and msg[1] in self.peers.known):
            return self._refuse("peer connection from an unknown server; closing", hello=str(msg)[:100])
        sid = msg[1]
        if len(msg) == 2:
            if auth is None:
                return self._accept(sid)
            if auth.server_require:
                return self._refuse("peer did not authenticate (quorum.auth.serverRequireSasl); closing", sid=sid)
            log.warning("peer accepted without authentication (quorum.auth.serverRequireSasl=false)", sid=sid)
            return self._accept(sid)
        if auth is None:
            return self._refuse("peer offers quorum authentication but quorum.auth.enableSasl is off here; closing",
                                sid=sid)
        user, dialer_nonce = msg[2], msg[3]
        password = auth.password_of(user) if isinstance(user, str) else None
        if password is None or not isinstance(dialer_nonce, bytes) or len(dialer_nonce) != quorum_auth.NONCE_BYTES:
            return self._refuse("peer presents a user not in QuorumServer; closing", sid=sid, user=str(user)[:100])
        our_nonce = quorum_auth.nonce()
        self.pending = (sid, user, password, dialer_nonce, our_nonce)
        self.transport.write(encode(["challenge", self.peers.my_sid, our_nonce]))
        return True

    def _check_proof(self, auth: QuorumAuth, msg) -> bool:
        sid, user, password, dialer_nonce, our_nonce = self.pending
        me = self.peers.my_sid
        expected = quorum_auth.proof(password, b"learner", sid, me, user, dialer_nonce, our_nonce)
        if not (isinstance(msg, list) and len(msg) == 2 and msg[0] == "proof" and quorum_auth.check(expected, msg[1])):
            return self._refuse("peer failed quorum authentication (wrong password); closing", sid=sid, user=user)
        if not auth.may_claim(user, sid):
            return self._refuse("peer authenticated as a user that may not claim its server id; closing",
                                sid=sid, user=user)
        self.transport.write(encode(["welcome", quorum_auth.proof(password, b"server", sid, me, user,
                                                                  dialer_nonce, our_nonce)]))
        return self._accept(sid)


class _Outbound:
    """The connection we dial to one peer, re-dialled while it is down; sends are queued."""

    def __init__(self, peers: "Peers", sid: int, host: str, port: int) -> None:
        self.peers = peers
        self.sid = sid
        self.host = host
        self.port = port
        self.address: str | None = None  # where the last link went: a change is logged
        self.unresolved = False  # a failed lookup is logged once per outage, not per retry
        self.refused = False  # so is a failed authentication
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task | None = None
        self.queue: list[bytes] = []
        self.lost: str | None = None  # why we closed the link ourselves, for its log line

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        backoff = 0.01  # members of an ensemble start together: the first dials come early
        while True:
            why = "the member stops"
            try:
                reader, writer = await self._dial()
                try:
                    await self._hello(reader, writer)
                except BaseException as e:
                    writer.close()
                    if not isinstance(e, (PeerAuthError, EOFError, OSError, asyncio.TimeoutError, RuntimeError)):
                        raise  # cancelled: the member stops
                    if self.peers.auth is not None and not self.refused:
                        self.refused = True
                        log.warning("quorum authentication with a peer failed; retrying", sid=self.sid,
                                    error=str(e) or type(e).__name__)
                    raise OSError("link set-up failed") from None
                self.refused = False
                self.writer = writer
                backoff = 0.01
                self.peers.on_connect(self.sid)
                await reader.read()  # returns at EOF: the peer went away
                why = "closed by the peer"
            except (OSError, asyncio.TimeoutError, RuntimeError) as e:
                # A failed dial or a lost connection.  RuntimeError is uvloop's "the handler is
                # closed" from the hello's write on a connection reset while it was set up:
                # were it to escape, this task would end and the peer be cut off for good.
                why = str(e) or type(e).__name__
            finally:
                if self.writer is not None:
                    self.writer.close()
                    self.writer = None
                    # ZooKeeper's "Connection broken for id ...": the peer's process died, or
                    # the link was reset; the member re-dials at once.
                    log.info("peer link lost", sid=self.sid, reason=self.lost or why)
                    self.lost = None
                    self.peers.on_disconnect(self.sid)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.1)

    async def _hello(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Name ourselves; with quorum auth, prove our credentials and check the peer's proof."""
        auth = self.peers.auth
        me = self.peers.my_sid
        if auth is None:
            writer.write(encode(["hello", me]))
            return
        ours = quorum_auth.nonce()
        user, password = auth.learner_user, auth.learner_password
        writer.write(encode(["hello", me, user, ours]))
        msg = await asyncio.wait_for(_read_handshake_frame(reader), HANDSHAKE_TIMEOUT)
        if not (isinstance(msg, list) and len(msg) == 3 and msg[0] == "challenge" and msg[1] == self.sid
                and isinstance(msg[2], bytes) and len(msg[2]) == quorum_auth.NONCE_BYTES):
            raise PeerAuthError("the peer sent no valid challenge")
        theirs = msg[2]
        writer.write(encode(["proof", quorum_auth.proof(password, b"learner", me, self.sid, user, ours, theirs)]))
        msg = await asyncio.wait_for(_read_handshake_frame(reader), HANDSHAKE_TIMEOUT)
        expected = quorum_auth.proof(password, b"server", me, self.sid, user, ours, theirs)
        if not (isinstance(msg, list) and len(msg) == 2 and msg[0] == "welcome" and quorum_auth.check(expected, msg[1])):
            raise PeerAuthError("the peer did not prove it knows our password")

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve the peer's host now, not once at start (its address may have changed since
        the last link), then connect to the first address that answers."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            if not self.unresolved:
                self.unresolved = True
                log.warning("cannot resolve a peer's host; retrying", sid=self.sid, host=self.host, error=e.strerror)
            raise
        self.unresolved = False
        failure: BaseException = OSError(f"{self.host} has no address")
        for *_, sockaddr in infos:
            try:
                tls = self.peers.tls
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    sockaddr[0], sockaddr[1], ssl=tls[1] if tls else None,
                    server_hostname=self.host if tls else None), 2 if tls is None else HANDSHAKE_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:  # ssl.SSLError is an OSError: a refused certificate
                if isinstance(e, ssl.SSLError) and not self.refused:
                    self.refused = True
                    log.warning("TLS with a peer failed; retrying", sid=self.sid, error=str(e))
                failure = e
                continue
            self._linked(sockaddr[0], writer)
            return reader, writer
        raise failure

    def _linked(self, address: str, writer: asyncio.StreamWriter) -> None:
        timeout = self.peers.link_timeout_ms
        sock = writer.get_extra_info("socket")
        if timeout and sock is not None and hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, timeout)
        if address != self.address:
            if self.address is not None:
                log.info("peer found at a new address", sid=self.sid, host=self.host, old=self.address, new=address)
            self.address = address

    def flush(self) -> None:
        frames, self.queue = self.queue, []
        w = self.writer
        if w is None or not frames or w.is_closing():
            return  # lost, as on a broken TCP connection; the protocol retransmits
        if w.transport.get_write_buffer_size() > MAX_BUFFERED:
            self.lost = "the peer does not keep up (write buffer full)"
            w.close()  # reset the connection
            return
        w.write(b"".join(frames) if len(frames) > 1 else frames[0])

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


async def _read_handshake_frame(reader: asyncio.StreamReader) -> object:
    (length,) = LEN.unpack(await reader.readexactly(LEN.size))
    if length > MAX_HANDSHAKE_FRAME:
        raise PeerAuthError(f"oversized handshake frame ({length} bytes)")
    try:
        return msgpack.unpackb(await reader.readexactly(length), raw=False)
    except (ValueError, msgpack.UnpackException) as e:
        raise PeerAuthError(f"malformed handshake frame: {e}") from None


class Peers:
    def __init__(self, my_sid: int, addresses: dict[int, tuple[str, int]], on_message: Callable[[int, object], None],
                 on_disconnect: Callable[[int], None] = lambda sid: None,
                 on_connect: Callable[[int], None] = lambda sid: None, listen_host: str | None = None,
                 link_timeout_ms: int = 0, auth: QuorumAuth | None = None,
                 tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None) -> None:
        self.my_sid = my_sid
        self.tls = tls  # sslQuorum: (accepting, dialling) contexts; None: plaintext links
        self.auth = auth  # None: no quorum authentication (quorum.auth.enableSasl=false)
        self.addresses = addresses  # sid -> (host as its server line names it, quorum port)
        self.listen_host = listen_host if listen_host is not None else addresses[my_sid][0]
        self.link_timeout_ms = link_timeout_ms  # 0: TCP's own (minutes) for a peer that vanished
        self.known = set(addresses)
        self.on_message = on_message
        self.on_disconnect = on_disconnect  # an established connection we dialled closed
        self.on_connect = on_connect  # a connection we dialled is up (the hello is queued)
        self.out: dict[int, _Outbound] = {}
        self.server: asyncio.AbstractServer | None = None
        self.tls_listener: TlsListener | None = None  # the quorum port with sslQuorum
        self._flush_scheduled = False

    async def start(self) -> None:
        port = self.addresses[self.my_sid][1]
        loop = asyncio.get_running_loop()
        # Both resolve a host name off the loop; create_server binds each of its addresses.
        try:
            if self.tls is not None:
                self.tls_listener = TlsListener(self.tls[0], HANDSHAKE_TIMEOUT, lambda: _Inbound(self), "quorum port")
                await self.tls_listener.start(self.listen_host, port)
            else:
                self.server = await loop.create_server(lambda: _Inbound(self), self.listen_host, port,
                                                       reuse_address=True)
        except OSError as e:  # the usual cause across hosts: this member's line names another host
            reason = e.strerror or str(e)
            raise OSError(e.errno, f"{reason.rstrip('.')}: the quorum port {self.listen_host}:{port} of this member "
                          f"(server.{self.my_sid}): its server line must name this host, or set "
                          "quorumListenOnAllIPs=true") from None
        for sid, (h, p) in sorted(self.addresses.items()):
            if sid != self.my_sid:
                conn = _Outbound(self, sid, h, p)
                conn.start()
                self.out[sid] = conn

    def send(self, sid: int, msg) -> None:
        self.send_frame(sid, encode(msg))

    def send_frame(self, sid: int, frame: bytes) -> None:
        """Queue an encoded message; everything queued in this loop turn leaves together."""
        conn = self.out.get(sid)
        if conn is None:
            return
        conn.queue.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        for conn in self.out.values():
            if conn.queue:
                conn.flush()

    async def stop(self) -> None:
        for conn in self.out.values():
            conn.stop()
        if self.tls_listener is not None:
            await self.tls_listener.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
