"""The client connections of a server: limits per address, connections by session, throttling.

(ZooKeeper's ServerCnxnFactory bookkeeping.)  The member tells the table to bind a session
to a connection, to close a session's connections and to drop every client; connections
register and unregister themselves.  `globalOutstandingLimit` is enforced here for every
mode: a connection whose requests wait while the log has that many records outstanding
stops being read until the log catches up.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from ..logs import get_logger
from ..summary import Quantiles, Runs, buffer_sizes
from ..tree import acl as acls
from .config import Config
from .ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from .member import Member

log = get_logger("zkpy.clients")
bad_input = RateLimitedLog(log)  # every line here is about bad input: at most one a second each


class ServerStats:
    """ZooKeeper's ServerStats and the client side of its ServerMetrics, counted by the
    connections: per batch (bytes in, answers out and their sizes), per write answered (its
    latency, into `writes`: a comparison and an add), per watch event (its bytes).  A read
    is answered in its batch: 0 ms."""

    __slots__ = ("started", "packets_received", "packets_sent", "outstanding", "min_latency", "count",
                 "connections_total", "connections_rejected", "auth_failed", "bytes_received", "sent_bytes",
                 "watch_bytes", "response_sizes", "writes")

    def __init__(self) -> None:
        self.started = time.time()
        self.writes = Runs(Quantiles())  # update latencies (ms): srvr's avg and max, mntr's updatelatency
        self.auth_failed = 0  # auth packets and SASL exchanges that failed (ServerStats': srst leaves it)
        self.reset()

    def reset(self) -> None:
        """srst: ServerStats.reset, which resets ZooKeeper's ServerMetrics too."""
        self.packets_received = 0
        self.packets_sent = 0
        self.outstanding = 0
        self.min_latency = 0  # over every request, reads (0 ms) included
        self.count = 0
        self.connections_total = 0  # connection_request_count: ConnectRequests (not four-letter words)
        self.connections_rejected = 0  # over maxClientCnxns (per address) or maxCnxns
        self.bytes_received = 0  # bytes_received_count: everything read from clients
        self.sent_bytes = 0  # the frames written to clients, without their length prefixes
        self.watch_bytes = 0  # watch_bytes: those of watch events
        self.response_sizes = [-1, -1, -1]  # last, min, max frame (BufferStats; -1 before the first)
        self.writes.reset()

    def latencies(self) -> "Quantiles":
        """updatelatency: every answered write's latency."""
        return self.writes.folded()  # type: ignore[return-value]

    @property
    def total_latency(self) -> int:
        return self.latencies().total

    @property
    def max_latency(self) -> int:
        return self.latencies().max

    def sent(self, frames: list[bytes], total: int) -> None:
        """A batch of frames (`total` bytes with their prefixes) written to one connection."""
        n = len(frames)
        self.sent_bytes += total - 4 * n
        if n == 1:
            buffer_sizes(self.response_sizes, total - 4, total - 4, total - 4)
        else:
            lengths = list(map(len, frames))
            buffer_sizes(self.response_sizes, lengths[-1] - 4, min(lengths) - 4, max(lengths) - 4)


class ClientTable:
    def __init__(self, config: Config, four_letter_word: Callable[..., str]) -> None:
        self.config = config
        self.four_letter_word = four_letter_word
        self.member: "Member" = None  # type: ignore[assignment]  # set once the member exists
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.connections: set[Any] = set()
        self.by_session: dict[int, set[Any]] = {}
        self.per_ip: dict[str, int] = {}
        self.throttled: set[Any] = set()
        self.throttles = 0  # times a connection was paused for globalOutstandingLimit
        self.stats = ServerStats()
        # Recent client traffic when config.wire_trace > 0 (see wiretrace.py): one ring per server.
        self.trace: deque | None = deque(maxlen=config.wire_trace) if config.wire_trace > 0 else None

    # ------------------------------------------------------------ connections

    def register(self, conn: Any) -> bool:
        total = self.config.max_cnxns
        if total and len(self.connections) >= total:
            bad_input.warning("too many connections; closing", max_allowed=total)
            self.stats.connections_rejected += 1
            return False
        ip = conn.peer[0]
        count = self.per_ip.get(ip, 0)
        limit = self.config.max_client_cnxns
        if limit and count >= limit:
            bad_input.warning("too many connections from one address; closing", ip=ip, limit=limit)
            self.stats.connections_rejected += 1
            return False
        self.per_ip[ip] = count + 1
        self.connections.add(conn)
        return True

    def unregister(self, conn: Any) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            # The server's packet counts are since its start (or srst), not per open connection.
            self.stats.packets_received += conn.packets_received
            self.stats.packets_sent += conn.packets_sent
            ip = conn.peer[0]
            n = self.per_ip.get(ip, 1) - 1
            if n <= 0:
                self.per_ip.pop(ip, None)
            else:
                self.per_ip[ip] = n
        self.throttled.discard(conn)
        self.member.tree.remove_watcher(conn)
        conns = self.by_session.get(conn.session_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.by_session[conn.session_id]

    # ------------------------------------------------------------ sessions (called by the member)

    def bind(self, conn: Any, session: int) -> None:
        conn.session_id = session
        self.by_session.setdefault(session, set()).add(conn)

    def reattached(self, conn: Any, session: int) -> None:
        for old in list(self.by_session.get(session, ())):
            if old is not conn:
                old.close()  # ZooKeeper closes the session's previous connection (CLIENT_RECONNECT)

    def close_session(self, session: int) -> None:
        for conn in list(self.by_session.pop(session, ())):
            conn.close()

    def drop_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    # ------------------------------------------------------------ back-pressure

    def throttle(self, conn: Any) -> None:
        """Stop reading from `conn` until the log catches up (globalOutstandingLimit)."""
        if conn.transport is not None and conn not in self.throttled:
            self.throttled.add(conn)
            self.throttles += 1
            conn.transport.pause_reading()

    def unthrottle(self) -> None:
        if self.throttled and self.member.outstanding < self.config.global_outstanding_limit:
            for conn in self.throttled:
                if not conn.closed and not conn._reading_paused:
                    conn.transport.resume_reading()
            self.throttled.clear()

    def authenticate(self, scheme: str, auth: bytes) -> list[tuple[str, str]] | None:
        """Identities an AuthPacket grants, or None when the scheme or credentials fail."""
        if scheme != "digest":
            return None
        try:
            text = auth.decode("utf-8")
        except UnicodeDecodeError:
            return None
        ident = acls.digest(text)
        ids = [("digest", ident)]
        if self.config.super_digest is not None and ident == self.config.super_digest:
            ids.append(acls.SUPER)
        return ids
