"""Peer transport for an ensemble: msgpack frames over asyncio TCP.

Each server listens on its quorum port and dials every other server; it sends on the
connection it dialled and receives on the ones it accepted, so no tie-breaking is needed.
Frames sent during one turn of the event loop go out together, one write per peer
(proposals, acks and commits of a whole batch of client requests share a syscall).
A connection starts with a hello frame naming the sender's server id; frames from an
unknown id, malformed frames, and peers that flood past a bound are dropped with a log line.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Callable

import msgpack
import structlog

from ..protocol.framing import BufferLimitError, FrameLengthError, Frames
from .ratelimit import RateLimitedLog

log = structlog.get_logger("zkpy.peers")
bad_input = RateLimitedLog(log)  # every line here is about bad input: at most one a second each

LEN = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024  # a SNAP of a large tree fits; anything larger is an attack
MAX_BUFFERED = 512 * 1024 * 1024


def encode(msg) -> bytes:
    body = msgpack.packb(msg, use_bin_type=True)
    return LEN.pack(len(body)) + body


class _Inbound(asyncio.Protocol):
    def __init__(self, peers: "Peers") -> None:
        self.peers = peers
        self.frames = Frames(MAX_FRAME, MAX_BUFFERED)
        self.sid: int | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        frames = self.frames
        buf = frames.buf
        try:
            for start, end in frames.feed(data):
                try:
                    msg = msgpack.unpackb(buf[start:end], raw=False)  # one copy (a memoryview would pin buf)
                except Exception:  # noqa: BLE001 - any undecodable frame is dropped
                    bad_input.warning("malformed peer frame dropped", sid=self.sid)
                    continue
                if self.sid is None:
                    if not (isinstance(msg, list) and len(msg) == 2 and msg[0] == "hello"
                            and msg[1] in self.peers.known):
                        bad_input.warning("peer connection from an unknown server; closing", hello=str(msg)[:100])
                        self.transport.close()
                        return
                    self.sid = msg[1]
                    continue
                self.peers.on_message(self.sid, msg)
        except BufferLimitError:
            bad_input.warning("peer floods; disconnecting", sid=self.sid)
            self.transport.close()
        except FrameLengthError as e:
            # The sender's length is unsigned (LEN): a negative one here is 2**31 or more.
            bad_input.warning("oversized peer frame; disconnecting", sid=self.sid, length=e.length & 0xFFFFFFFF)
            self.transport.close()


class _Outbound:
    """The connection we dial to one peer, re-dialled while it is down; sends are queued."""

    def __init__(self, peers: "Peers", sid: int, host: str, port: int) -> None:
        self.peers = peers
        self.sid = sid
        self.host = host
        self.port = port
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task | None = None
        self.queue: list[bytes] = []

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        backoff = 0.01  # members of an ensemble start together: the first dials come early
        while True:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 2)
                writer.write(encode(["hello", self.peers.my_sid]))
                self.writer = writer
                backoff = 0.01
                self.peers.on_connect(self.sid)
                await reader.read()  # returns at EOF: the peer went away
            except (OSError, asyncio.TimeoutError, RuntimeError):
                # A failed dial or a lost connection.  RuntimeError is uvloop's "the handler is
                # closed" from the hello's write on a connection reset while it was set up:
                # were it to escape, this task would end and the peer be cut off for good.
                pass
            finally:
                if self.writer is not None:
                    self.writer.close()
                    self.writer = None
                    self.peers.on_disconnect(self.sid)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.1)

    def flush(self) -> None:
        frames, self.queue = self.queue, []
        w = self.writer
        if w is None or not frames or w.is_closing():
            return  # lost, as on a broken TCP connection; the protocol retransmits
        if w.transport.get_write_buffer_size() > MAX_BUFFERED:
            w.close()  # the peer does not keep up: reset the connection
            return
        w.write(b"".join(frames) if len(frames) > 1 else frames[0])

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


class Peers:
    def __init__(self, my_sid: int, addresses: dict[int, tuple[str, int]], on_message: Callable[[int, object], None],
                 on_disconnect: Callable[[int], None] = lambda sid: None,
                 on_connect: Callable[[int], None] = lambda sid: None) -> None:
        self.my_sid = my_sid
        self.addresses = addresses
        self.known = set(addresses)
        self.on_message = on_message
        self.on_disconnect = on_disconnect  # an established connection we dialled closed
        self.on_connect = on_connect  # a connection we dialled is up (the hello is queued)
        self.out: dict[int, _Outbound] = {}
        self.server: asyncio.AbstractServer | None = None
        self._flush_scheduled = False

    async def start(self) -> None:
        host, port = self.addresses[self.my_sid]
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Inbound(self), host, port, reuse_address=True)
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
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
