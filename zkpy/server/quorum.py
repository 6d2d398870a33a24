"""An ensemble member: the ZAB core wired to the peer transport, the log and the server.

The core (zkpy/consensus/zab.py) decides; this module carries out its `Ready`s: it writes
log entries (group commit on a writer thread, then `persisted`), epochs, truncations and
snapshots, applies committed txns to the tree (answering local clients), and sends messages.

Clients of a follower are served reads locally; their writes, session creations and
closes go to the leader, which preps them into txns; every server answers its own
clients when it applies the txn (matched by session and cxid), as ZooKeeper's
CommitProcessor does.  The leader owns session expiry; followers report session activity
and ask the leader before letting a client reattach a session (REVALIDATE).  Members
snapshot every ~snapCount applied txns; without a quorum and with readonlymode.enabled a
member serves reads to read-only clients (server.py).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import structlog

from ..storage import snapshot as snapshots
from ..storage.records import decode_txn, encode_txn, frame
from ..storage.txnlog import TxnLog, read_log, segments, truncate_log
from ..consensus.zab import FOLLOWING, LEADING, LOOKING, OBSERVING, Timing, Zab, fields_match, make_zxid
from ..protocol.jute import DECODE, JuteError
from ..tree.datatree import Txn
from .config import Config
from ..requests.final import WRITES
from .peers import Peers
from .peers import encode as encode_frame
from ..storage.recovery import data_paths, purge, recover
from .snapshotter import Snapshotter

if TYPE_CHECKING:
    from .server import ZkServer

log = structlog.get_logger("zkpy.quorum")


def read_myid(data_dir: str) -> int:
    with open(os.path.join(data_dir, "myid")) as f:
        return int(f.read().strip())


def _read_epoch(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        return 0


def _write_durably(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


class QuorumPeer:
    def __init__(self, server: "ZkServer", config: Config) -> None:
        assert config.data_dir, "an ensemble member needs a dataDir"
        self.server = server
        self.config = config
        self.sid = read_myid(config.data_dir)
        self.voters = {sid for sid, s in config.servers.items() if s.role == "participant"}
        self.observers = {sid for sid, s in config.servers.items() if s.role == "observer"}
        self.snap_dir, self.log_dir = data_paths(config.data_dir, config.data_log_dir)
        os.makedirs(self.snap_dir, exist_ok=True)
        self.epoch_dir = os.path.join(config.data_dir, "version-2")
        accepted = _read_epoch(os.path.join(self.epoch_dir, "acceptedEpoch"))
        current = _read_epoch(os.path.join(self.epoch_dir, "currentEpoch"))
        tree = server.tree
        snaps = snapshots.snapshots(self.snap_dir)
        snap_zxid = snaps[0][0] if snaps else 0
        entries = [(t.zxid, encode_txn(t)) for t in read_log(self.log_dir, snap_zxid)]
        self.core = Zab(self.sid, self.voters, self.observers, accepted_epoch=accepted, current_epoch=current,
                        log=entries, snapshot_zxid=snap_zxid,
                        applied_zxid=tree.last_zxid, snapshot_provider=self._snapshot,
                        timing=self._timing(config),
                        incarnation=random.getrandbits(48))
        addresses = {sid: (s.host, s.peer_port) for sid, s in config.servers.items()}
        self._phase: tuple = ()
        self.peers = Peers(self.sid, addresses, self._on_message, self._on_disconnect, self._on_connect)
        self.txlog = TxnLog(self.log_dir, force_sync=config.force_sync)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zkpy-quorum-log")
        retain = config.purge_retain
        self.snapshotter = Snapshotter(
            self.snap_dir, config.snap_count, lambda: self._writer.submit(self.txlog.roll),
            (lambda: purge(config.data_dir, config.data_log_dir, retain)) if retain else None)
        self._to_write: list[tuple[int, bytes]] = []
        self._writing = False
        self.origins: dict[tuple[int, int], Any] = {}
        self.sync_tokens: dict[int, tuple] = {}  # token -> (conn, entry, path)
        self.sync_waiters: list[tuple[int, tuple]] = []  # (zxid to reach, (conn, entry, path))
        self.revalidations: dict[int, tuple] = {}  # token -> (conn, entry, session, timeout, with_read_only)
        self.touched: set[int] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._read_only_timer: asyncio.TimerHandle | None = None
        self._kicked = False
        self.leader_since = 0.0
        self._last_drop_log = -1.0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.peers.start()
        self._schedule_tick()
        self._schedule_read_only()
        self._process()

    async def stop(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if self._read_only_timer is not None:
            self._read_only_timer.cancel()
        await self.peers.stop()
        self.snapshotter.reap(block=True)
        self._writer.submit(self.txlog.close).result()
        self._writer.shutdown(wait=True)

    def _timing(self, config: Config) -> Timing:
        """The core counts in ticks of at most 100 ms, whatever tickTime is: initLimit and
        syncLimit keep their length in time, and the election waits ZooKeeper's fixed 200 ms
        (finalizeWait) for a better vote rather than a whole tickTime (2 s by default)."""
        self.tick_ms = min(config.tick_time, 100)
        per_tick = config.tick_time / self.tick_ms
        return Timing(init_limit=math.ceil(config.init_limit * per_tick),
                      sync_limit=math.ceil(config.sync_limit * per_tick),
                      finalize_wait=max(1, math.ceil(200 / self.tick_ms)))

    def _schedule_tick(self) -> None:
        self._tick_handle = self.loop.call_later(self.tick_ms / 1000.0, self._tick)

    def _tick(self) -> None:
        try:
            self.core.tick()
            if self.core.serving:
                self.snapshotter.maybe(self.server.tree)
            if self.core.state in (FOLLOWING, OBSERVING) and self.core.serving and self.touched:
                self.peers.send(self.core.leader, ("app", "touch", sorted(self.touched)))
                self.touched.clear()
            self._process()
        finally:
            self._schedule_tick()

    @property
    def role(self) -> str:
        return self.core.state

    @property
    def serving(self) -> bool:
        return self.core.serving

    @property
    def is_leader(self) -> bool:
        return self.core.state == LEADING and self.core.established

    # ------------------------------------------------------------ the Ready loop

    def _process(self) -> None:
        core = self.core
        while True:
            r = core.ready()
            if r.empty():
                return
            if r.snapshot is not None:
                self._install_snapshot(*r.snapshot)
            if r.truncate is not None:
                self._truncate(r.truncate)
            if r.epochs is not None:
                _write_durably(os.path.join(self.epoch_dir, "acceptedEpoch"), str(r.epochs[0]))
                _write_durably(os.path.join(self.epoch_dir, "currentEpoch"), str(r.epochs[1]))
            if r.entries:
                self._to_write.extend(r.entries)
                self._start_write()
            for zxid, record in r.commits:
                txn = decode_txn(record)
                self.server.apply(txn, self._take_origin((txn.session, txn.cxid)))
            if r.commits:
                self.snapshotter.applied(len(r.commits))
                self._wake_syncs()
            encoded: dict[int, bytes] = {}  # a proposal to n followers is encoded once
            for to, msg in r.messages:
                frame = encoded.get(id(msg))
                if frame is None:
                    frame = encoded[id(msg)] = encode_frame(msg)
                self.peers.send_frame(to, frame)
            if r.role_changed:
                self._role_changed()
            core.advance()

    def _start_write(self) -> None:
        if self._writing or not self._to_write:
            return
        batch, self._to_write = self._to_write, []
        self._writing = True
        data = b"".join(frame(record) for _, record in batch)
        fut = self.loop.run_in_executor(self._writer, self._write, data, batch[0][0])
        fut.add_done_callback(lambda f, last=batch[-1][0]: self._written(f, last))

    def _write(self, data: bytes, first_zxid: int) -> None:
        self.txlog.append(data, first_zxid)
        self.txlog.sync()

    def _written(self, fut: asyncio.Future, last: int) -> None:
        self._writing = False
        if fut.exception() is not None:
            log.error("transaction log write failed; leaving the ensemble", error=str(fut.exception()))
            self.server.state = "error"
            return
        self.core.persisted(last)
        self._start_write()
        self._process()

    def _snapshot(self) -> tuple[int, bytes]:
        tree = self.server.tree
        return tree.last_zxid, snapshots.snapshot_bytes(tree)

    def _install_snapshot(self, zxid: int, state: bytes) -> None:
        """SNAP from the leader: its state replaces ours, log and all."""
        tree = snapshots.load_snapshot("<leader>", state)
        self.snapshotter.reap(block=True)  # no older snapshot may land after ours
        self._writer.submit(self.txlog.roll).result()
        for _, path in segments(self.log_dir):
            os.unlink(path)
        for _, path in snapshots.snapshots(self.snap_dir):
            os.unlink(path)
        snapshots.write_snapshot(tree, self.snap_dir)
        self._to_write = []
        self.server.replace_tree(tree)

    def _truncate(self, zxid: int) -> None:
        """TRUNC from the leader: forget our txns after `zxid` and rebuild the tree."""
        self.snapshotter.reap(block=True)
        self._writer.submit(self.txlog.roll).result()
        self._to_write = [e for e in self._to_write if e[0] <= zxid]
        truncate_log(self.log_dir, zxid)
        for snap_zxid, path in snapshots.snapshots(self.snap_dir):
            if snap_zxid > zxid:
                os.unlink(path)
        self.server.replace_tree(recover(self.config.data_dir, self.config.data_log_dir))

    def _role_changed(self) -> None:
        core = self.core
        state = {LEADING: "leader", FOLLOWING: "follower", OBSERVING: "observer", LOOKING: "looking"}[core.state]
        if not core.serving:
            state = "looking"
        if state != self.server.state:
            log.info("role", sid=self.sid, role=state, epoch=core.epoch, leader=core.leader)
        phase = (core.state, core.leader)
        if phase != self._phase:  # rare: each election and each (re)join, for post-mortems
            self._phase = phase
            log.info("zab", sid=self.sid, state=core.state, leader=core.leader, epoch=core.epoch,
                     last_zxid=hex(core.last_zxid))
        previous = self.server.state
        if state == "looking" and previous == "read-only":
            return  # still without a quorum
        if previous == "read-only":
            self.server.leave_read_only()
        self.server.state = state
        if state == "leader" and previous != "leader":
            self.leader_since = time.time()
            self.server.prep.reset()
            self.server.prep.zxid = make_zxid(core.epoch, 0)
            self.server.sessions_take_over()
        if state == "looking" and previous != "looking":
            # As ZooKeeper does when it loses its leader: clients move on (CONNECTIONLOSS).
            self.origins.clear()
            self.sync_tokens.clear()
            self.sync_waiters.clear()
            self.revalidations.clear()
            self.server.drop_clients()
            self._schedule_read_only()

    def _schedule_read_only(self) -> None:
        """With readonlymode.enabled, a server still looking after max(2 s, tickTime) serves
        reads (ZooKeeper's QuorumPeer starts its ReadOnlyZooKeeperServer after that delay)."""
        if not self.config.read_only_mode:
            return
        if self._read_only_timer is not None:
            self._read_only_timer.cancel()
        delay = max(2000, self.config.tick_time) / 1000.0
        self._read_only_timer = self.loop.call_later(delay, self._maybe_read_only)

    def _maybe_read_only(self) -> None:
        self._read_only_timer = None
        if self.server.state == "looking" and self.server.quorum is self:
            self.server.enter_read_only()

    # ------------------------------------------------------------ client requests

    def propose(self, txn: Txn, origin: Any) -> None:
        """Leader: replicate a txn prepped here; `origin` answers when it is applied."""
        if origin is not None:
            self._add_origin((txn.session, txn.cxid), origin)
        self.core.propose(txn.zxid, encode_txn(txn))
        self._kick()

    def _add_origin(self, key: tuple[int, int], origin: Any) -> None:
        """Who answers the txn of (session, cxid).  A client that reuses an xid while the
        first request is in flight gets both answered, in order (a deque for that key)."""
        previous = self.origins.get(key)
        if previous is None:
            self.origins[key] = origin
        elif type(previous) is deque:
            previous.append(origin)
        else:
            self.origins[key] = deque((previous, origin))

    def _take_origin(self, key: tuple[int, int]) -> Any:
        origin = self.origins.pop(key, None)
        if type(origin) is deque:
            first = origin.popleft()
            if origin:
                self.origins[key] = origin
            return first
        return origin

    def forward(self, kind: str, origin: Any, *fields: Any) -> None:
        """Follower: send a write to the leader and wait for its txn to be applied here."""
        session, cxid = fields[0], fields[1] if kind != "createsession" else 0
        if origin is not None:
            self._add_origin((session, cxid), origin)
        self.peers.send(self.core.leader, ("app", kind) + tuple(fields))

    def sync(self, conn: Any, entry: Any, path: str) -> None:
        """Follower: a client's sync waits until we have applied what the leader had proposed."""
        token = random.getrandbits(62)
        self.sync_tokens[token] = (conn, entry, path)
        self.peers.send(self.core.leader, ("app", "sync", token))

    def revalidate(self, conn: Any, entry: Any, session: int, timeout: int, with_read_only: bool) -> None:
        """Follower: a client reattaches a session here; the leader says whether it lives."""
        token = random.getrandbits(62)
        self.revalidations[token] = (conn, entry, session, timeout, with_read_only)
        self.peers.send(self.core.leader, ("app", "revalidate", token, session))

    def _revalidated(self, token: int, alive: bool) -> None:
        waiter = self.revalidations.pop(token, None)
        if waiter is not None:
            conn, entry, session, timeout, with_read_only = waiter
            self.server.finish_reattach(conn, entry, session, timeout, with_read_only, alive)

    def _synced(self, token: int, zxid: int) -> None:
        waiter = self.sync_tokens.pop(token, None)
        if waiter is not None:
            self.sync_waiters.append((zxid, waiter))
            self._wake_syncs()

    def _wake_syncs(self) -> None:
        from ..protocol.jute import enc_string

        applied = self.server.tree.last_zxid
        waiting = []
        for zxid, (conn, entry, path) in self.sync_waiters:
            if zxid <= applied:
                if not conn.closed:
                    conn.write_done(entry, applied, 0, enc_string(path))
            else:
                waiting.append((zxid, (conn, entry, path)))
        self.sync_waiters = waiting

    def _on_message(self, sender: int, msg: Any) -> None:
        if isinstance(msg, list) and msg and msg[0] == "app":
            try:
                self._on_app(sender, msg)
            except (ValueError, TypeError, IndexError, KeyError, JuteError) as e:
                self._log_drop(sender, f"malformed app message: {e}")
        else:
            core = self.core
            dropped = core.dropped
            core.receive(sender, msg)
            if core.dropped != dropped and core.drop_reason in ("malformed", "unknown server id"):
                self._log_drop(sender, core.drop_reason)
        self._kick()

    def _on_disconnect(self, sid: int) -> None:
        self.core.peer_disconnected(sid)
        self._kick()

    def _on_connect(self, sid: int) -> None:
        self.core.peer_connected(sid)
        self._kick()

    def _log_drop(self, sender: int, reason: str) -> None:
        """At most one line a second: a peer that floods garbage must not flood the log too."""
        now = self.loop.time()
        if now - self._last_drop_log >= 1.0:
            self._last_drop_log = now
            log.warning("peer message dropped", sender=sender, reason=reason, dropped_total=self.core.dropped)

    def _kick(self) -> None:
        """Run the Ready loop once at the end of this loop turn: a batch of client requests
        or peer messages becomes one pass, and its messages one write per peer."""
        if not self._kicked:
            self._kicked = True
            self.loop.call_soon(self._kicked_process)

    def _kicked_process(self) -> None:
        self._kicked = False
        self._process()

    def _on_app(self, sender: int, msg: list) -> None:
        """Client traffic between members; fields are checked before anything acts on them."""
        if not _app_well_formed(msg):
            raise ValueError(f"bad {str(msg[1])[:20]!r} message")
        kind = msg[1]
        server = self.server
        if kind == "synced":
            self._synced(msg[2], msg[3])
            return
        if kind == "revalidated":
            self._revalidated(msg[2], msg[3])
            return
        if not self.is_leader:
            return  # a follower got it, or we lost leadership: the client will retry
        now = server.clock_ms()
        if kind == "request":
            _, _, session, cxid, op, body, identities = msg
            args = DECODE[op](body, 0, len(body))
            txn = server.prep.prepare(session, cxid, op, args, [tuple(i) for i in identities], now)
            self.propose(txn, None)
        elif kind == "createsession":
            _, _, session, timeout = msg
            server.sessions.add(session, timeout, now)
            self.propose(server.prep.create_session(session, timeout, now), None)
        elif kind == "closesession":
            _, _, session, cxid = msg
            server.sessions.set_closing(session)
            self.propose(server.prep.close_session(session, cxid, now), None)
        elif kind == "touch":
            for session in msg[2]:
                server.sessions.touch(session, now)
        elif kind == "revalidate":
            _, _, token, session = msg
            alive = server.sessions.is_alive(session)
            if alive:
                server.sessions.touch(session, now)
            self.peers.send(sender, ("app", "revalidated", token, alive))
        elif kind == "sync":
            # Everything proposed so far (the history we established on included): the
            # follower answers once it has applied up to here.
            self.peers.send(sender, ("app", "synced", msg[2], self.core.last_zxid))


def _i64(x: object) -> bool:
    return type(x) is int and -(1 << 63) <= x < (1 << 63)


def _identities(x: object) -> bool:
    return type(x) is list and all(type(i) is list and len(i) == 2 and type(i[0]) is str and type(i[1]) is str
                                   for i in x)


_APP_SCHEMA: dict[str, tuple] = {
    "request": (_i64, _i64, (lambda x: x in WRITES), (lambda x: type(x) is bytes), _identities),
    "createsession": (_i64, (lambda x: _i64(x) and x >= 0)),
    "closesession": (_i64, _i64),
    "touch": ((lambda x: type(x) is list and all(_i64(s) for s in x)),),
    "sync": (_i64,),
    "synced": (_i64, _i64),
    "revalidate": (_i64, _i64),
    "revalidated": (_i64, (lambda x: type(x) is bool)),
}


def _app_well_formed(msg: list) -> bool:
    checks = _APP_SCHEMA.get(msg[1]) if len(msg) > 1 and type(msg[1]) is str else None
    return checks is not None and fields_match(checks, msg[2:])
