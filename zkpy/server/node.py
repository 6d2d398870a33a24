"""A server process's node: built from a Config, it wires the member to files, sockets and time.

    clients (asyncio Protocol per connection) --> Member <--> Peers (ensembles only)
                                                    |
                                   DataDir (log writer thread, snapshots) or Memory

The member decides; the node only moves bytes and time in and results out: it runs the
member's Ready loop once per event-loop turn in which something happened, ticks it, and
sends what it hands out.  Standalone and ensemble members are built the same way.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Callable, Protocol

from ..logs import get_logger
from ..storage.datadir import DataDir, Memory, read_myid
from ..storage.recovery import recover_with_log
from ..tree.datatree import DataTree
from . import fourletter
from .clients import ClientTable
from .config import ALL_INTERFACES, Config
from .endpoints import HttpEndpoints
from .connection import ClientConnection
from .faults import FaultTable
from .member import Member
from .ratelimit import RateLimitedLog
from .peers import Peers
from .peers import encode as encode_frame
from .tls import TlsListener, peer_contexts, server_context, tls_connection_class
from .wiretrace import connection_class

log = get_logger("zkpy.server")
bad_input = RateLimitedLog(log)  # dropped peer messages: at most one line a second


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Ticker(Protocol):
    """What calls a started server's `tick()` instead of the event loop's timers (a test's
    virtual clock: zkpy.testing.clock); it must call it on the server's own loop thread."""

    def attach(self, server: "ZkServer") -> None: ...
    def detach(self, server: "ZkServer") -> None: ...


class ZkServer:
    """`await ZkServer(config).start()`: listens, serves, and (in an ensemble) joins its peers.

    Time comes in through `clock_ms` (the member reads it) and the ticks; by default the wall
    clock and the event loop's timers, every `member.tick_interval_ms`.  With a `ticker`, the
    loop schedules no tick: the ticker calls `tick()` (tests move time by hand this way).
    """

    def __init__(self, config: Config, clock_ms: Callable[[], int] = wall_clock_ms,
                 ticker: Ticker | None = None) -> None:
        self.config = config
        self.ticker = ticker
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        participants = [s for s in config.servers.values() if s.role == "participant"]
        self.ensemble = len(participants) > 1
        sid = read_myid(config.data_dir) if self.ensemble else 0  # type: ignore[arg-type]
        self.storage: DataDir | Memory
        epochs = (0, 0)
        recovery: dict[str, int] = {}
        if config.data_dir:
            started = time.monotonic()
            tree, log_tail = recover_with_log(config.data_dir, config.data_log_dir, recovery)
            recovery["ms"] = int((time.monotonic() - started) * 1000)
            self.storage = DataDir(config.data_dir, config.data_log_dir, config.force_sync, config.snap_count,
                                   config.purge_retain, self._post)
            if self.ensemble:
                epochs = self.storage.read_epochs()
        else:
            tree, log_tail = DataTree(), []
            self.storage = Memory()
        self.clients = ClientTable(config, lambda word, arg=b"": fourletter.run(self, word, arg))
        self.peers: Peers | None = None
        if self.ensemble:
            addresses = {s: (spec.host, spec.peer_port) for s, spec in config.servers.items()}
            # The peer listener: on this member's own server-line host (resolved), or on every
            # interface with quorumListenOnAllIPs (behind NAT, the line's name is not local).
            listen = ALL_INTERFACES if config.quorum_listen_on_all_ips else None
            self.peers = Peers(sid, addresses, self._on_peer_message, self._on_peer_down, self._on_peer_up,
                               listen_host=listen, link_timeout_ms=config.sync_limit * config.tick_time,
                               auth=config.quorum_auth, tls=peer_contexts(config) if config.ssl_quorum else None)
        self.member = Member(config, sid, tree, log_tail, self.storage, self._send, self.clients, clock_ms,
                             self._wake, epochs=epochs)
        if recovery:  # ZooKeeper's dbinittime and startup_* summaries: one sample each, at start
            m = self.member.metrics
            m.dbinit_time.add(recovery["ms"])
            m.snap_load_time.add(recovery["snap_ms"])
            if recovery["txns"]:
                m.txns_loaded.add(recovery["txns"])
                m.txns_load_time.add(recovery["txns_ms"])
        self.member.on_new_tree = self._init_config_node  # type: ignore[method-assign]
        self.member.on_role_change = self._role_changed  # type: ignore[method-assign]
        self._served = False
        # Faults on demand (faults.py): empty, so the member and the log hold None until a rule comes.
        self.fault_table = FaultTable(sid, self.member, self.storage.log if isinstance(self.storage, DataDir) else None)
        self.clients.member = self.member
        if self.ensemble:
            self._init_config_node(tree)
        self._server: asyncio.AbstractServer | None = None
        self.http = HttpEndpoints(self)  # AdminServer and Prometheus, when the config enables them
        self._tick_handle: asyncio.TimerHandle | None = None
        self.host = config.client_port_address
        self.port = config.client_port or 0
        self.tls: TlsListener | None = None
        self._tls_class: type[ClientConnection] | None = None
        if config.secure_client_port is not None:
            self.tls = TlsListener(server_context(config), config.ssl.handshake_timeout_ms / 1000.0, self._tls_connection)
        self.secure_port: int | None = config.secure_client_port

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.loop = loop = asyncio.get_running_loop()
        self.clients.loop = loop
        await self.http.start()  # first: a missing library or a taken port leaves nothing else open
        self.member.refresh_clock()
        if self.config.client_port is not None:
            connection = connection_class(self.clients)
            self._server = await loop.create_server(lambda: connection(self.clients), self.config.client_port_address,
                                                    self.config.client_port, reuse_address=True, backlog=1024)
            sock = self._server.sockets[0]
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.host, self.port = sock.getsockname()[:2]
        if self.tls is not None:
            host = self.config.secure_client_port_address or self.config.client_port_address
            secure_host, self.secure_port = await self.tls.start(host, self.config.secure_client_port or 0)
            if self._server is None:  # TLS only: the server's address is the secure one
                self.host, self.port = secure_host, self.secure_port
        if self.ticker is None:
            self._schedule_tick()
        else:
            self.ticker.attach(self)
        if self.peers is not None:
            await self.peers.start()
        self.member.process()
        if self.ensemble:  # clients are served once an election is won (_role_changed)
            log.info("listening", host=self.host, port=self.port, sid=self.member.sid)
        else:
            self._log_serving()

    def _role_changed(self, role: str) -> None:
        if not self._served and role in ("leader", "follower", "observer"):
            self._log_serving(sid=self.member.sid, role=role)

    def _log_serving(self, **role: object) -> None:
        self._served = True
        if self.secure_port is not None:
            role = {"secure_port": self.secure_port, **role}
        log.info("serving", host=self.host, port=self.port, tick_time=self.config.tick_time, **role)

    async def stop(self) -> None:
        await self.http.stop()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self.ticker is not None:
            self.ticker.detach(self)
        if self.peers is not None:
            await self.peers.stop()
        if self._server is not None:
            self._server.close()
        if self.tls is not None:
            await self.tls.close()
        self.clients.drop_all()
        if self._server is not None:
            await self._server.wait_closed()
        await self.loop.run_in_executor(None, self.storage.close)
        writer = self.member.writer
        log.info("stopped", port=self.port, log_batches=writer.batches, log_records=writer.records)

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    def _tls_connection(self) -> ClientConnection:
        """A connection of the secure port, once its handshake is done: the plaintext port's
        class, with the client certificate's x509 ids."""
        if self._tls_class is None:
            self._tls_class = tls_connection_class(connection_class(self.clients), self.config.ssl.x509_super_user)
        return self._tls_class(self.clients)

    # ------------------------------------------------------------ what the member hands out

    def _post(self, fn: Callable[[], None]) -> None:
        """From the log writer thread: run `fn` on the event loop."""
        self.loop.call_soon_threadsafe(fn)

    def _wake(self) -> None:
        """The member has work: one Ready pass at the end of this loop turn, however many
        requests or messages arrived in it."""
        self.loop.call_soon(self.member.process)

    def _send(self, messages: list[tuple[int, Any]]) -> None:
        peers = self.peers
        if peers is None:
            return
        encoded: dict[int, bytes] = {}  # a proposal to n followers is encoded once
        for to, msg in messages:
            frame = encoded.get(id(msg))
            if frame is None:
                frame = encoded[id(msg)] = encode_frame(msg)
            peers.send_frame(to, frame)

    def _on_peer_message(self, sender: int, msg: Any) -> None:
        reason = self.member.receive(sender, msg)
        if reason is not None:
            bad_input.warning("peer message dropped", sender=sender, reason=reason,
                              dropped_total=self.member.core.dropped)

    def _on_peer_up(self, sid: int) -> None:
        self.member.peer_connected(sid)

    def _on_peer_down(self, sid: int) -> None:
        self.member.peer_disconnected(sid)

    # ------------------------------------------------------------ time

    def _schedule_tick(self) -> None:
        self._tick_handle = self.loop.call_later(self.member.tick_interval_ms / 1000.0, self._tick)

    def _tick(self) -> None:
        try:
            self.member.tick()
        finally:
            self._schedule_tick()

    def tick(self) -> None:
        """One tick from a `ticker`, and the Ready pass it calls for (on the server's loop)."""
        self.member.tick()
        self.member.process()

    # ------------------------------------------------------------ /zookeeper/config

    def _init_config_node(self, tree: DataTree) -> None:
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
        node = tree.nodes["/zookeeper/config"]
        node.data = "\n".join(lines).encode()
        node.version = -1
        node.mtime = self.member.clock()

    # ------------------------------------------------------------ the status four-letter words read

    @property
    def state(self) -> str:
        return self.member.role

    @property
    def tree(self) -> DataTree:
        return self.member.tree

    @property
    def sessions(self):  # noqa: ANN201 - the member's SessionTracker
        return self.member.sessions

    @property
    def connections(self) -> set:
        return self.clients.connections

    @property
    def stats(self):  # noqa: ANN201
        return self.clients.stats

    @property
    def throttled(self) -> set:
        return self.clients.throttled

    def server_id(self) -> int:
        return self.member.sid if self.ensemble else 0

    def is_leader(self) -> bool:
        return self.ensemble and self.member.leads

    def check_containers(self) -> int:
        return self.member.check_containers()
