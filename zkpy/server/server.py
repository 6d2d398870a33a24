"""The standalone server: wires connections, Prep, the commit pipeline and the tree.

client bytes -> ClientConnection -> Prep (txn) -> commit -> DataTree.apply -> Final -> client

Standalone is a quorum of one: a write is committed by `self.commit`, the one place where
txns become applied state (durable logging and replication hook in there).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Callable

import structlog

from ..protocol.codes import Err, Op, owner_kind, owner_ttl
from ..protocol.jute import ConnectRequest
from ..tree import acl as acls
from ..tree.datatree import DataTree, Txn
from .config import Config
from ..requests.final import write_response
from .persistence import Persistence
from ..storage.recovery import recover
from ..requests.prep import Prep
from ..requests.sessions import SessionTracker, session_password

log = structlog.get_logger("zkpy.server")

# What a committed txn answers (the first field of an origin tuple).
_REQUEST = "request"
_CONNECT = "connect"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class ServerStats:
    __slots__ = ("started", "packets_received", "packets_sent", "outstanding", "min_latency", "max_latency",
                 "total_latency", "count", "connections_total")

    def __init__(self) -> None:
        self.started = time.time()
        self.reset()
        self.connections_total = 0

    def reset(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.outstanding = 0
        self.min_latency = 0
        self.max_latency = 0
        self.total_latency = 0
        self.count = 0


class ZkServer:
    def __init__(self, config: Config, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self.clock_ms = clock_ms
        self.now_ms = clock_ms()
        self.persistence: Persistence | None = None
        self.quorum = None
        participants = [x for x in config.servers.values() if x.role == "participant"]
        if len(participants) > 1:
            from .quorum import read_myid

            self.tree = recover(config.data_dir, config.data_log_dir)  # type: ignore[arg-type]
            server_id = read_myid(config.data_dir)  # type: ignore[arg-type]
        elif config.data_dir:
            self.tree = recover(config.data_dir, config.data_log_dir)
            self.persistence = Persistence(config.data_dir, config.data_log_dir, config.force_sync,
                                           config.snap_count, self.apply, self._write_failed, config.purge_retain)
            server_id = 0
        else:
            self.tree = DataTree()
            server_id = 0
        self.prep = Prep(self.tree, extended_types=config.extended_types)
        self.sessions = SessionTracker(config.tick_time, server_id, self.now_ms)
        for sid, timeout in self.tree.sessions.items():
            # Sessions outlive a restart: their clients have a timeout's worth of time to come back.
            self.sessions.add(sid, timeout, self.now_ms)
        self.connections: set[Any] = set()
        self.by_session: dict[int, set[Any]] = {}
        self.per_ip: dict[str, int] = {}
        self.stats = ServerStats()
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._server: asyncio.AbstractServer | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._last_container_check = 0
        self.throttled: set[Any] = set()
        if self.persistence is not None:
            self.persistence.after_batch = self._unthrottle
        self.host = config.client_port_address
        self.port = config.client_port
        self.state = "standalone"
        # Without a quorum and with readonlymode.enabled: reads for clients that ask for them.
        self.read_only = False
        self.local_sessions: set[int] = set()  # sessions opened in read-only mode: never in the tree
        if len(participants) > 1:
            from .quorum import QuorumPeer

            self.state = "looking"
            self.quorum = QuorumPeer(self, config)
            self._init_config_node()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from .connection import ClientConnection

        self.loop = asyncio.get_running_loop()
        if self.persistence is not None:
            self.persistence.loop = self.loop
        self.now_ms = self.clock_ms()
        self._last_container_check = self.now_ms
        self._server = await self.loop.create_server(
            lambda: ClientConnection(self), self.config.client_port_address, self.config.client_port,
            reuse_address=True, backlog=1024)
        sock = self._server.sockets[0]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if sock.family != socket.AF_UNIX else None
        self.host, self.port = sock.getsockname()[:2]
        self._schedule_tick()
        if self.quorum is not None:
            await self.quorum.start()
        log.info("serving", host=self.host, port=self.port, tick_time=self.config.tick_time)

    async def stop(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self.quorum is not None:
            await self.quorum.stop()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
        if self.persistence is not None:
            await self.loop.run_in_executor(None, self.persistence.close)
        log.info("stopped", port=self.port)

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------ connections

    def register(self, conn: Any) -> bool:
        ip = conn.peer[0]
        count = self.per_ip.get(ip, 0)
        limit = self.config.max_client_cnxns
        if limit and count >= limit:
            log.warning("too many connections from one address; closing", ip=ip, limit=limit)
            return False
        self.per_ip[ip] = count + 1
        self.connections.add(conn)
        self.stats.connections_total += 1
        return True

    def unregister(self, conn: Any) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            ip = conn.peer[0]
            n = self.per_ip.get(ip, 1) - 1
            if n <= 0:
                self.per_ip.pop(ip, None)
            else:
                self.per_ip[ip] = n
        self.tree.remove_watcher(conn)
        conns = self.by_session.get(conn.session_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.by_session[conn.session_id]

    def connect(self, conn: Any, req: ConnectRequest) -> None:
        """A ConnectRequest: new session, or reattach to a live one (processConnectRequest)."""
        if req.last_zxid_seen > self.tree.last_zxid:
            log.info("refusing session: client has seen a newer zxid than ours", peer=conn.peer,
                     client_zxid=hex(req.last_zxid_seen), our_zxid=hex(self.tree.last_zxid))
            conn.close()
            return
        timeout = min(max(req.timeout, self.config.min_timeout), self.config.max_timeout)
        conn.old_client = not req.has_read_only
        quorum = self.quorum
        if self.read_only:
            self._connect_read_only(conn, req, timeout)
            return
        if quorum is not None and not quorum.serving:
            log.info("not serving: no quorum; closing client connection", peer=conn.peer)
            conn.close()
            return
        if req.session_id == 0:
            sid = self.sessions.new_session_id()
            self._bind(conn, sid, timeout)
            entry = conn.expect_connect_response()
            origin = (_CONNECT, conn, entry, req.has_read_only)
            if quorum is not None and not quorum.is_leader:
                quorum.forward("createsession", origin, sid, timeout)
                return
            self.sessions.add(sid, timeout, self.now_ms)
            txn = self.prep.create_session(sid, timeout, self.now_ms)
            self.commit(txn, origin)
            return
        sid = req.session_id
        if req.passwd != session_password(sid):
            self.finish_reattach(conn, None, sid, timeout, req.has_read_only, False)
            return
        self._bind(conn, sid, timeout)
        if quorum is not None and not quorum.is_leader:
            # The leader owns sessions: it says whether this one lives (ZooKeeper's REVALIDATE).
            quorum.revalidate(conn, conn.expect_connect_response(), sid, timeout, req.has_read_only)
            return
        self.finish_reattach(conn, None, sid, timeout, req.has_read_only, self.sessions.is_alive(sid))

    def finish_reattach(self, conn: Any, entry: Any, sid: int, timeout: int, with_read_only: bool,
                        alive: bool, read_only: bool = False) -> None:
        if conn.closed:
            return
        if not alive:
            log.info("session expired or invalid on reconnect", session=hex(sid), peer=conn.peer)
            conn.send_connect_response(0, 0, b"\x00" * 16, with_read_only, entry)
            conn.close()
            return
        self.sessions.touch(sid, self.now_ms)
        for old in list(self.by_session.get(sid, ())):
            if old is not conn:
                old.close()  # ZooKeeper closes the session's previous connection (CLIENT_RECONNECT)
        conn.send_connect_response(timeout, sid, session_password(sid), with_read_only, entry, read_only)

    def _connect_read_only(self, conn: Any, req: ConnectRequest, timeout: int) -> None:
        """Sessions of a read-only server are local: nothing is logged, the tree does not change.

        A known session (in the tree, or opened here) reattaches; a new one gets an id the
        quorum never hears of, so a client that later reaches a read-write server with it is
        told that it expired (the Java client sends 0 there instead)."""
        if not req.read_only:
            log.info("refusing session request for not-read-only client", peer=conn.peer)
            conn.close()
            return
        sid = req.session_id
        known = True
        if sid == 0:
            sid = self.sessions.new_session_id()
            self.local_sessions.add(sid)
            self.sessions.add(sid, timeout, self.now_ms)
        else:
            known = req.passwd == session_password(sid) and (sid in self.tree.sessions or sid in self.local_sessions)
            if known and not self.sessions.is_alive(sid):
                self.sessions.add(sid, timeout, self.now_ms)
        self._bind(conn, sid, timeout)
        self.finish_reattach(conn, None, sid, timeout, req.has_read_only, known, read_only=True)

    def enter_read_only(self) -> None:
        """No quorum for a while: serve our tree, read-only (ReadOnlyZooKeeperServer)."""
        log.info("no quorum; serving reads in read-only mode", zxid=hex(self.tree.last_zxid))
        self.read_only = True
        self.state = "read-only"
        now = self.clock_ms()
        for sid in list(self.sessions.timeouts):
            self.sessions.remove(sid)
        for sid, timeout in self.tree.sessions.items():
            self.sessions.add(sid, timeout, now)

    def leave_read_only(self) -> None:
        """A quorum again: read-only clients reconnect, to find a read-write server."""
        self.read_only = False
        for sid in self.local_sessions:
            self.sessions.remove(sid)
        self.local_sessions.clear()
        self.drop_clients()

    def _refuse_write(self, conn: Any, entry: Any) -> None:
        conn.write_done(entry, self.tree.last_zxid, Err.NOTREADONLY, b"")

    def _bind(self, conn: Any, sid: int, timeout: int) -> None:
        conn.session_id = sid
        conn.timeout = timeout
        self.by_session.setdefault(sid, set()).add(conn)

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

    # ------------------------------------------------------------ the write pipeline

    def submit_write(self, conn: Any, entry: Any, op: int, args: tuple, buf: bytearray, start: int, end: int) -> None:
        """A decoded write; buf[start:end] is its request body, which a follower forwards as is
        (the leader decodes it as it decodes its own clients' requests)."""
        if self.read_only:
            self._refuse_write(conn, entry)
            return
        quorum = self.quorum
        if quorum is not None and not quorum.is_leader:
            quorum.forward("request", (_REQUEST, conn, entry, op), conn.session_id, entry.xid, op,
                           bytes(buf[start:end]), conn.identities)
            return
        txn = self.prep.prepare(conn.session_id, entry.xid, op, args, conn.identities, self.now_ms)
        self.commit(txn, (_REQUEST, conn, entry, op))

    def submit_error(self, conn: Any, entry: Any, op: int, err: int) -> None:
        if self.read_only:
            self._refuse_write(conn, entry)
            return
        if self.quorum is not None and not self.quorum.is_leader:
            conn.write_done(entry, self.tree.last_zxid, err, b"")
            return
        self.commit(self.prep.error(conn.session_id, entry.xid, op, err, self.now_ms), (_REQUEST, conn, entry, op))

    def sync_request(self, conn: Any, entry: Any, path: str) -> None:
        """A follower's sync: answered once it has applied all the leader had proposed."""
        if self.read_only:
            self._refuse_write(conn, entry)
            return
        self.quorum.sync(conn, entry, path)  # type: ignore[union-attr]

    def touch(self, session: int) -> None:
        self.sessions.touch(session, self.now_ms)
        if self.quorum is not None and not self.quorum.is_leader:
            self.quorum.touched.add(session)

    def sessions_take_over(self) -> None:
        """A new leader expires sessions from now on: each gets a fresh timeout."""
        now = self.clock_ms()
        for sid in list(self.sessions.timeouts):
            if sid not in self.tree.sessions:
                self.sessions.remove(sid)
        for sid, timeout in self.tree.sessions.items():
            self.sessions.add(sid, timeout, now)

    def replace_tree(self, tree: DataTree) -> None:
        """After a SNAP or TRUNC from a leader: a new tree; clients reconnect."""
        self.tree = tree
        self.prep.tree = tree
        self.prep.reset()
        self._init_config_node()
        self.drop_clients()

    def _init_config_node(self) -> None:
        """/zookeeper/config lists the ensemble as ZooKeeper's does.  Like ZooKeeper, each
        member writes it from its own configuration whenever it loads a tree (not a txn:
        version -1, its own mtime), so it is the one znode that may differ between members."""
        lines = []
        for sid, spec in sorted(self.config.servers.items()):
            line = f"server.{sid}={spec.host}:{spec.peer_port}:{spec.election_port}:{spec.role}"
            if spec.client_port is not None:
                line += f";{spec.client_host or '0.0.0.0'}:{spec.client_port}"
            lines.append(line)
        lines.append("version=0")
        node = self.tree.nodes["/zookeeper/config"]
        node.data = "\n".join(lines).encode()
        node.version = -1
        node.mtime = self.clock_ms()

    def drop_clients(self) -> None:
        for conn in list(self.connections):
            conn.close()

    def outstanding(self) -> int:
        return self.persistence.outstanding if self.persistence is not None else 0

    def throttle(self, conn: Any) -> None:
        """Stop reading from `conn` until the log catches up (globalOutstandingLimit)."""
        if conn.transport is not None and conn not in self.throttled:
            self.throttled.add(conn)
            conn.transport.pause_reading()

    def _unthrottle(self) -> None:
        if self.throttled and self.outstanding() < self.config.global_outstanding_limit:
            for conn in self.throttled:
                if not conn.closed and not conn._reading_paused:
                    conn.transport.resume_reading()
            self.throttled.clear()

    def close_session_request(self, conn: Any, entry: Any) -> None:
        sid = conn.session_id
        origin = (_REQUEST, conn, entry, Op.CLOSE_SESSION)
        if self.read_only:
            # No txn: a global session's ephemerals stay until the quorum expires it.
            conn.write_done(entry, self.tree.last_zxid, 0, b"")
            self.local_sessions.discard(sid)
            self._session_closed(sid)
            return
        if self.quorum is not None and not self.quorum.is_leader:
            self.quorum.forward("closesession", origin, sid, entry.xid)
            return
        self.sessions.set_closing(sid)
        txn = self.prep.close_session(sid, entry.xid, self.now_ms)
        self.commit(txn, origin)

    def commit(self, txn: Txn, origin: tuple | None) -> None:
        """Make `txn` durable and applied, then answer its origin."""
        if self.quorum is not None:
            self.quorum.propose(txn, origin)
        elif self.persistence is None:
            self.apply(txn, origin)
        else:
            self.persistence.append(txn, origin)

    def apply(self, txn: Txn, origin: tuple | None) -> None:
        result, events = self.tree.apply(txn)
        for watcher, event_type, path in events:  # queued before the write's own reply, as in ZooKeeper
            watcher.notify(event_type, path)
        self.prep.committed(txn.zxid)
        if origin is not None:
            kind, conn, entry, extra = origin
            if not conn.closed:
                if kind is _REQUEST:
                    err, body = write_response(extra, result)
                    conn.write_done(entry, txn.zxid, err, body)
                else:
                    conn.send_connect_response(conn.timeout, txn.session, session_password(txn.session), extra, entry)
        if txn.type == Op.CLOSE_SESSION:
            self._session_closed(txn.session)  # after the answer: the client reads it, then EOF

    def _write_failed(self, txn: Txn, origin: tuple | None) -> None:
        """The log could not take `txn`: it is not applied and never acknowledged.

        The server goes on serving reads; writes get NOTREADONLY, as from a server that
        cannot accept them (ZooKeeper's read-only mode)."""
        self.prep.reset()
        if origin is None:
            return
        kind, conn, entry, extra = origin
        if kind is _REQUEST and not conn.closed:
            conn.write_done(entry, self.tree.last_zxid, Err.NOTREADONLY, b"")
        else:
            conn.close()

    def _session_closed(self, sid: int) -> None:
        self.sessions.remove(sid)
        if self.quorum is not None:
            self.quorum.touched.discard(sid)
        for conn in list(self.by_session.pop(sid, ())):
            conn.close()

    # ------------------------------------------------------------ time

    def _schedule_tick(self) -> None:
        interval = max(self.config.tick_time / 2, 10) / 1000.0
        self._tick_handle = self.loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        try:
            self.now_ms = self.clock_ms()
            leads = self.quorum is None or self.quorum.is_leader
            if self.read_only:
                for sid in self.sessions.expired(self.now_ms):
                    log.info("read-only session expired", session=hex(sid))
                    self.local_sessions.discard(sid)
                    self._session_closed(sid)
            for sid in self.sessions.expired(self.now_ms) if leads else ():
                log.info("session expired", session=hex(sid))
                self.commit(self.prep.close_session(sid, 0, self.now_ms), None)
            if self.persistence is not None:
                self.persistence.maybe_snapshot(self.tree)
            if leads and self.now_ms - self._last_container_check >= self.config.container_check_interval_ms:
                self._last_container_check = self.now_ms
                self.check_containers()
        finally:
            self._schedule_tick()

    def check_containers(self) -> int:
        """Delete empty containers that once had children and expired empty TTL nodes (ContainerManager)."""
        tree = self.tree
        candidates = []
        for path in sorted(tree.containers):
            node = tree.nodes.get(path)
            if node is not None and not node.children and node.cversion > 0:
                candidates.append(path)
        for path in sorted(tree.ttls):
            node = tree.nodes.get(path)
            if node is not None and not node.children and owner_kind(node.owner) == "ttl":
                ttl = owner_ttl(node.owner)
                if ttl and self.now_ms - node.mtime > ttl:
                    candidates.append(path)
        for path in candidates[: self.config.container_max_per_minute]:
            self.commit(self.prep.delete_container(path, self.now_ms), None)
        return len(candidates)

    # ------------------------------------------------------------ introspection

    def server_id(self) -> int:
        return 0
