"""The member: one pipeline for standalone servers and every ensemble role.

    request -> Prep (txn) -> ZAB (propose; a learner forwards to the leader) -> LogWriter
            -> durable -> ZAB commit -> DataTree.apply -> the waiting request is answered

Standalone is a quorum of one: a single-voter ZAB that leads from boot with ZooKeeper
standalone's zxids.  Leading, following, observing, looking, read-only and failed are roles
that decide where a request goes (`leads`, `_refuse_write`), not separate pipelines.

No sockets, threads or clocks of its own: storage, the network to peers, the client table and
the clock are injected, so the simulator drives this very object with a simulated disk,
network and clock.  Client connections are handles with `write_done`, `send_connect_response`,
`notify` and `close` (see connection.py); the member answers a committed txn's request by
its (session, cxid), whichever member prepped it, as ZooKeeper's CommitProcessor does.
"""

from __future__ import annotations

import math
import random
from collections import deque
from operator import attrgetter, itemgetter
from typing import Any, Callable, Protocol

from ..consensus import forwarding
from ..consensus.zab import FOLLOWING, LEADING, LOOKING, OBSERVING, Ready, SoftState, Timing, Zab, make_zxid
from ..logs import get_logger
from ..protocol.codes import Err, Op, owner_kind, owner_ttl
from ..protocol.jute import DECODE, ConnectRequest, JuteError, enc_string
from ..requests.final import WRITES, write_response
from ..requests.prep import Prep
from ..requests.sessions import SessionTracker, session_password
from ..storage import snapshot as snapshots
from ..storage.logwriter import LogDevice, LogWriter
from ..storage.records import decode_txn, encode_txn
from ..tree.datatree import DataTree, Txn
from .config import Config
from .faults import FaultTable
from .member_metrics import MemberMetrics
from .ratelimit import RateLimitedLog

log = get_logger("zkpy.member")
bad_input = RateLimitedLog(log)  # refused connect requests: a client may send them by the thousand

_APP_SCHEMA = forwarding.schema(WRITES)
_CREATE_SESSION = int(Op.CREATE_SESSION)  # plain ints: an IntEnum member lookup costs ~100 ns
_CLOSE_SESSION = int(Op.CLOSE_SESSION)
_RECORD = itemgetter(1)  # of a (zxid, record) entry
_TIME = attrgetter("time")  # of a Txn
_ROLES = {LEADING: "leader", FOLLOWING: "follower", OBSERVING: "observer", LOOKING: "looking"}


class Storage(Protocol):
    """What a member keeps on disk (zkpy/storage/datadir.py; the simulator's SimStorage)."""

    log: LogDevice

    def write_epochs(self, accepted: int, current: int) -> None: ...
    def install_snapshot(self, tree: DataTree) -> None: ...
    def rebuild(self, zxid: int) -> DataTree: ...
    def applied(self, count: int) -> None: ...
    def maybe_snapshot(self, tree: DataTree) -> None: ...


class Clients(Protocol):
    """The member's view of the client connections (clients.py; the simulator's own)."""

    def bind(self, conn: Any, session: int) -> None: ...
    def reattached(self, conn: Any, session: int) -> None: ...
    def close_session(self, session: int) -> None: ...
    def drop_all(self) -> None: ...
    def unthrottle(self) -> None: ...


class Member:
    def __init__(self, config: Config, sid: int, tree: DataTree, log_tail: list[tuple[int, bytes]],
                 storage: Storage, send: Callable[[list[tuple[int, Any]]], None], clients: Clients,
                 clock: Callable[[], int], wake: Callable[[], None], *, epochs: tuple[int, int] = (0, 0),
                 incarnation: int | None = None) -> None:
        self.config = config
        self.sid = sid
        self.tree = tree
        self.storage = storage
        self._send = send
        self.clients = clients
        self.clock = clock
        self._wake = wake
        self.now_ms = clock()
        servers = config.servers
        voters = {s for s, spec in servers.items() if spec.role == "participant"}
        observers = {s for s, spec in servers.items() if spec.role == "observer"}
        if len(voters) <= 1:  # no server lines, or one (ZooKeeper runs that standalone): a voter of one
            voters, observers = {sid}, set()
        self.tick_ms = min(config.tick_time, 100)
        self.core = Zab(sid, voters, observers, accepted_epoch=epochs[0], current_epoch=epochs[1],
                        log=log_tail, snapshot_zxid=tree.last_zxid if not log_tail else log_tail[0][0] - 1,
                        applied_zxid=tree.last_zxid, snapshot_provider=self._snapshot, timing=self._timing(),
                        incarnation=random.getrandbits(48) if incarnation is None else incarnation)
        self.standalone = self.core.alone
        self.writer = LogWriter(storage.log, self._durable, self._write_failed, clock)
        self.metrics = MemberMetrics(self.now_ms, ensemble=not self.core.alone)
        self._arrivals: deque[tuple[int, int]] = deque()  # learner: (last zxid, ms) of each batch of proposals
        self.prep = Prep(tree, extended_types=config.extended_types)
        self.sessions = SessionTracker(config.tick_time, 0 if self.standalone else sid, self.now_ms)
        for session, timeout in tree.sessions.items():
            # Sessions outlive a restart: their clients have a timeout's worth of time to come back.
            self.sessions.add(session, timeout, self.now_ms)
        self.waiting: dict[tuple[int, int], Any] = {}  # (session, cxid) -> request entry (or a deque)
        self.local_txns: dict[int, Txn] = {}  # zxid -> txn prepped here: applied without decoding
        self.sync_tokens: dict[int, tuple] = {}  # token -> (conn, entry, path)
        self.sync_waiters: list[tuple[int, tuple]] = []  # (zxid to reach, (conn, entry, path))
        self.revalidations: dict[int, tuple] = {}  # token -> (conn, entry, session, timeout, with_read_only)
        self.touched: set[int] = set()
        self.local_sessions: set[int] = set()  # read-only mode's sessions: never in the tree
        self.role = "standalone" if self.standalone else "looking"
        self.soft = self.core.soft_state()
        self._leading = self.soft.established and self.soft.state == LEADING
        self.failed: str | None = None
        # Faults on demand (server/faults.py): the rule table while it has request rules, else None;
        # the client connections test it once per request.
        self.faults: FaultTable | None = None
        self.leader_since_ms = 0
        self.looking_since_ms = self.now_ms
        self._last_core_tick = self.now_ms
        self._last_container_check = self.now_ms
        self._woken = False
        self._processing = False
        self._phase: tuple = ()

    def _timing(self) -> Timing:
        """The core counts in ticks of at most 100 ms, whatever tickTime is: initLimit and
        syncLimit keep their length in time, and the election waits ZooKeeper's fixed 200 ms
        (finalizeWait) for a better vote rather than a whole tickTime (2 s by default)."""
        per_tick = self.config.tick_time / self.tick_ms
        return Timing(init_limit=math.ceil(self.config.init_limit * per_tick),
                      sync_limit=math.ceil(self.config.sync_limit * per_tick),
                      finalize_wait=max(1, math.ceil(200 / self.tick_ms)))

    def _snapshot(self) -> tuple[int, bytes]:
        return self.tree.last_zxid, snapshots.snapshot_bytes(self.tree)

    # ------------------------------------------------------------ roles

    @property
    def leads(self) -> bool:
        """Prep runs here: standalone, or the established leader (as of the last Ready;
        `_propose` checks the core itself)."""
        return self._leading and self.failed is None

    @property
    def serving(self) -> bool:
        return self.failed is None and self.soft.serving

    @property
    def read_only(self) -> bool:
        return self.role == "read-only"

    @property
    def outstanding(self) -> int:
        """Requests in the pipeline (globalOutstandingLimit): this member's clients' requests
        waiting for their txns, or the records its log writer has yet to make durable."""
        return max(len(self.waiting), self.writer.outstanding)

    def refresh_clock(self) -> None:
        self.now_ms = self.clock()

    # ------------------------------------------------------------ the Ready loop

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._wake()

    def process(self) -> None:
        """Carry out what ZAB decided: the one Ready loop of every mode."""
        self._woken = False
        if self._processing:
            return  # called from inside a pass (an in-memory log is durable at once): the loop goes on
        self._processing = True
        core = self.core
        try:
            while self.failed is None and core.has_ready():
                self._carry_out(core.ready())
        except OSError as e:
            # Epochs, a truncation or a leader's snapshot could not be made durable: as for a
            # failed log write, this member must not take part until it restarts from its disk.
            self._write_failed(e)
        finally:
            self._processing = False

    def _carry_out(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self._install_snapshot(*rd.snapshot)
        if rd.truncate is not None:
            self._truncate(rd.truncate)
        if rd.epochs is not None:
            self.storage.write_epochs(*rd.epochs)
        if rd.entries:
            self.writer.append(rd.entries)
            if not self.standalone:
                if self._leading:
                    self.metrics.proposed(rd.entries)
                elif self.soft.serving:
                    self._received(rd.entries)
        if rd.commits:
            self._apply_commits(rd.commits)
        if rd.messages and self.failed is None:
            self._send(rd.messages)
        if rd.soft != self.soft:
            self._soft_changed(rd.soft)  # type: ignore[arg-type]

    def counters(self) -> dict[str, int]:
        """Prep's and ZAB's own counters since the last srst (ZooKeeper's names)."""
        prep, core, base = self.prep, self.core, self.metrics.base
        now = {"prep_processor_request_queued": prep.prepped, "outstanding_changes_queued": prep.changes_added,
               "outstanding_changes_removed": prep.changes_removed, "close_session_prepped": prep.closes,
               "diff_count": core.diff_syncs, "snap_count": core.snap_syncs,
               "learner_commit_received_count": core.commits_received}
        return {k: v - base.get(k, 0) for k, v in now.items()}

    def reset_metrics(self) -> None:
        """srst: ZooKeeper's ServerMetrics.resetAll, for what the member and its log writer keep."""
        self.metrics.reset({k: v + self.metrics.base.get(k, 0) for k, v in self.counters().items()})
        self.writer.reset_metrics()

    def _received(self, entries: list[tuple[int, bytes]]) -> None:
        """A learner's batch of proposals: counted, and timed when each is applied."""
        self.metrics.proposals_received += len(entries)
        self._arrivals.append((entries[-1][0], self.clock()))

    def _apply_commits(self, commits: list[tuple[int, bytes]]) -> None:
        local = self.local_txns
        # One clock read per batch: the answers' latencies (connection.write_done) use it too.
        now = self.now_ms = self.clock()
        if local:  # leading: the txns it prepped (or, after a change of leader, decoded)
            txns = [local.pop(zxid, None) or decode_txn(record) for zxid, record in commits]
        else:
            txns = list(map(decode_txn, map(_RECORD, commits)))
        for txn in txns:
            self._apply(txn)
            if self.sync_waiters:
                # At once, not after the batch: a read queued behind the sync must not see a
                # later write of its own session applied in the same batch.
                self._wake_syncs()
        # The txns' prep times (the leader's clock) for the latency metrics, gathered in C.
        self.metrics.committed(commits, list(map(_TIME, txns)), now, None if self.standalone else self._leading,
                               self._arrivals)
        self.storage.applied(len(commits))
        self.clients.unthrottle()

    def _apply(self, txn: Txn) -> None:
        result, events = self.tree.apply(txn)
        for watcher, event_type, path in events:  # queued before the write's own reply, as in ZooKeeper
            watcher.notify(event_type, path)
        if events:
            self.metrics.triggered(events)
        self.prep.committed(txn.zxid)
        entry = self._take_waiter((txn.session, txn.cxid)) if self.waiting else None
        if entry is not None:
            conn = entry.conn
            if not conn.closed:
                if entry.op == _CREATE_SESSION:
                    conn.send_connect_response(conn.timeout, txn.session, session_password(txn.session),
                                               entry.with_read_only, entry)
                else:
                    err, body = write_response(entry.op, result)
                    conn.write_done(entry, txn.zxid, err, body)
        if txn.type == _CLOSE_SESSION:
            if entry is not None:  # the client's own close, on the server it talks to (not an expiry)
                peer = entry.conn.peer
                log.info("session closed", session=f"0x{txn.session:x}", client=f"{peer[0]}:{peer[1]}")
            self._session_closed(txn.session)  # after the answer: the client reads it, then EOF

    def _durable(self, zxid: int) -> None:
        """A batch is on disk: its acks (or, leading, its commits) go out now, not a loop turn
        later, since every read queued behind a write of its session waits for them."""
        self.core.persisted(zxid)
        self.process()
        self.clients.unthrottle()

    def _write_failed(self, error: BaseException) -> None:
        """The log lost a batch: nothing from it or after it may ever be acknowledged."""
        if self.standalone:
            # Standalone goes on serving reads; writes get NOTREADONLY, as from a server that
            # cannot accept them (ZooKeeper's read-only mode).
            log.error("transaction log write failed; refusing writes until restarted", error=str(error))
            self.failed = str(error)
            waiting, self.waiting = self.waiting, {}
            unknown = self._zxids_of_failed_write(waiting)
            self.local_txns.clear()
            self.prep.reset()
            for key, item in waiting.items():
                for entry in (item if type(item) is deque else (item,)):
                    if entry.conn.closed:
                        continue
                    if entry.op == Op.CREATE_SESSION or key in unknown:
                        # It may be on disk (a failed fsync): neither success nor NOTREADONLY
                        # would be true, so the client is told nothing (CONNECTIONLOSS).
                        entry.conn.close()
                    else:
                        entry.conn.write_done(entry, self.tree.last_zxid, Err.NOTREADONLY, b"")
            return
        log.error("transaction log write failed; this member leaves the ensemble until it is restarted",
                  sid=self.sid, error=str(error))
        self.failed = str(error)
        self.role = "error"
        self._forget_requests()
        self.clients.drop_all()

    def _zxids_of_failed_write(self, waiting: dict) -> set[tuple[int, int]]:
        """(session, cxid) of the waiting requests whose txns were in the write that failed."""
        lo, hi = self.writer.unknown_from, self.writer.unknown_to
        return {(txn.session, txn.cxid) for zxid, txn in self.local_txns.items()
                if lo <= zxid <= hi and (txn.session, txn.cxid) in waiting}

    # ------------------------------------------------------------ role changes

    def _soft_changed(self, soft: SoftState) -> None:
        previous_soft, self.soft = self.soft, soft
        if not self.standalone:
            self.metrics.roles_changed(previous_soft, soft, self.clock())
        self._leading = soft.established and soft.state == LEADING
        phase = (soft.state, soft.leader)
        if phase != self._phase:  # rare: each election and each (re)join, for post-mortems
            self._phase = phase
            log.info("zab", sid=self.sid, state=soft.state, leader=soft.leader, epoch=soft.epoch,
                     last_zxid=hex(self.core.last_zxid))
        if self.standalone:
            return
        role = _ROLES[soft.state] if soft.serving else "looking"
        previous = self.role
        if role != previous and not (role == "looking" and previous == "read-only"):
            # The election's result, once per change (ZooKeeper's LEADING / FOLLOWING / LOOKING).
            took = {} if role == "looking" else {"election_ms": self.now_ms - self.looking_since_ms}
            log.info("role", sid=self.sid, role=role, leader=soft.leader, epoch=soft.epoch, **took)
        if role == "looking" and previous == "read-only":
            return  # still without a quorum
        if previous == "read-only":
            self._leave_read_only()
        self.role = role
        if role != previous:
            self.on_role_change(role)
        if role == "leader" and not (previous_soft.established and previous_soft.state == LEADING):
            self.leader_since_ms = self.now_ms
            self.prep.reset()
            self.local_txns.clear()
            self.prep.zxid = make_zxid(soft.epoch, 0)
            self._sessions_take_over()
        if role == "looking" and previous != "looking":
            # As ZooKeeper does when it loses its leader: clients move on (CONNECTIONLOSS).
            self.looking_since_ms = self.now_ms
            self._forget_requests()
            self.clients.drop_all()

    def _forget_requests(self) -> None:
        self._arrivals.clear()
        self.waiting.clear()
        self.local_txns.clear()
        self.sync_tokens.clear()
        self.sync_waiters.clear()
        self.revalidations.clear()

    def _sessions_take_over(self) -> None:
        """A new leader expires sessions from now on: each gets a fresh timeout."""
        for session in list(self.sessions.timeouts):
            if session not in self.tree.sessions:
                self.sessions.remove(session)
        for session, timeout in self.tree.sessions.items():
            self.sessions.add(session, timeout, self.now_ms)

    def _enter_read_only(self) -> None:
        """No quorum for a while: serve our tree, read-only (ReadOnlyZooKeeperServer)."""
        log.info("no quorum; serving reads in read-only mode", zxid=hex(self.tree.last_zxid))
        self.role = "read-only"
        for session in list(self.sessions.timeouts):
            self.sessions.remove(session)
        for session, timeout in self.tree.sessions.items():
            self.sessions.add(session, timeout, self.now_ms)

    def _leave_read_only(self) -> None:
        """A quorum again: read-only clients reconnect, to find a read-write server."""
        for session in self.local_sessions:
            self.sessions.remove(session)
        self.local_sessions.clear()
        self.clients.drop_all()

    def replace_tree(self, tree: DataTree) -> None:
        """After a SNAP or TRUNC from a leader: a new tree; clients reconnect."""
        self.tree = tree
        self._arrivals.clear()  # a TRUNC or SNAP: zxids may go back
        self.prep.tree = tree
        self.prep.reset()
        self.clients.drop_all()
        self.on_new_tree(tree)

    def on_new_tree(self, tree: DataTree) -> None:
        """Hook for the node (it writes /zookeeper/config into every tree it loads)."""

    def on_role_change(self, role: str) -> None:
        """Hook for the node (an ensemble member logs `serving` when it first leads, follows or observes)."""

    def _truncate(self, zxid: int) -> None:
        """TRUNC from the leader: forget our txns after `zxid`; the tree is rebuilt from the
        disk plus the records up to `zxid` still queued for it (ZAB counts them applied)."""
        self.writer.truncate(zxid)
        self.local_txns.clear()
        tree = self.storage.rebuild(zxid)
        for entry_zxid, record in self.writer.queue:
            if entry_zxid > tree.last_zxid:
                tree.apply(decode_txn(record))
        self.replace_tree(tree)

    def _install_snapshot(self, zxid: int, state: bytes) -> None:
        """SNAP from the leader: its state replaces ours, log and all."""
        tree = snapshots.load_snapshot("<leader>", state)
        self.writer.reset(zxid)
        self.local_txns.clear()
        self.storage.install_snapshot(tree)
        self.replace_tree(tree)

    # ------------------------------------------------------------ waiting requests

    def _add_waiter(self, key: tuple[int, int], entry: Any) -> None:
        """Who answers the txn of (session, cxid).  A client that reuses an xid while the
        first request is in flight gets both answered, in order (a deque for that key)."""
        previous = self.waiting.get(key)
        if previous is None:
            self.waiting[key] = entry
        elif type(previous) is deque:
            previous.append(entry)
        else:
            self.waiting[key] = deque((previous, entry))

    def _take_waiter(self, key: tuple[int, int]) -> Any:
        entry = self.waiting.pop(key, None)
        if type(entry) is deque:
            first = entry.popleft()
            if entry:
                self.waiting[key] = entry
            return first
        return entry

    def _propose(self, txn: Txn, entry: Any) -> None:
        core = self.core
        if not core.established or core.state != LEADING or core.epoch != self.soft.epoch:
            # The core stepped down since the last Ready (a tick or peer message earlier in
            # this loop turn): carry that out now; the request goes with its clients.
            self.process()
            return
        if entry is not None:
            self._add_waiter((txn.session, txn.cxid), entry)
        self.local_txns[txn.zxid] = txn
        core.propose(txn.zxid, encode_txn(txn))
        self.wake()

    def _forward(self, kind: str, key: tuple[int, int], entry: Any, *fields: Any) -> None:
        """Learner: send a client's change to the leader; it is answered when its txn is applied here."""
        if entry is not None:
            self._add_waiter(key, entry)
        self._send([(self.soft.leader, ("app", kind) + fields)])

    # ------------------------------------------------------------ client requests

    def connect(self, conn: Any, req: ConnectRequest) -> None:
        """A ConnectRequest: new session, or reattach to a live one (processConnectRequest)."""
        if req.last_zxid_seen > self.tree.last_zxid:
            bad_input.info("refusing session: client has seen a newer zxid than ours", peer=conn.peer,
                           client_zxid=hex(req.last_zxid_seen), our_zxid=hex(self.tree.last_zxid))
            conn.close()
            return
        timeout = min(max(req.timeout, self.config.min_timeout), self.config.max_timeout)
        conn.old_client = not req.has_read_only
        conn.timeout = timeout
        if self.read_only:
            self._connect_read_only(conn, req, timeout)
            return
        if self.failed is not None:
            if not self.standalone or req.session_id == 0:  # a new session is a write
                log.info("log failed; closing client connection", peer=conn.peer, role=self.role)
                conn.close()
                return
        elif not self.serving:
            log.info("not serving; closing client connection", peer=conn.peer, role=self.role)
            conn.close()
            return
        if req.session_id == 0:
            session = self.sessions.new_session_id()
            self.clients.bind(conn, session)
            entry = conn.expect_connect_response(req.has_read_only)
            entry.received_ms = self.now_ms  # its createSession txn is timed as an update
            if not self.leads:
                self._forward("createsession", (session, 0), entry, session, timeout)
                return
            self.sessions.add(session, timeout, self.now_ms)
            self._propose(self.prep.create_session(session, timeout, self.now_ms), entry)
            return
        session = req.session_id
        if req.passwd != session_password(session):
            self.finish_reattach(conn, None, session, timeout, req.has_read_only, False)
            return
        self.clients.bind(conn, session)
        if not self.standalone and not self.leads:
            # The leader owns sessions: it says whether this one lives (ZooKeeper's REVALIDATE).
            token = random.getrandbits(62)
            entry = conn.expect_connect_response(req.has_read_only)
            self.metrics.connection_revalidate_count += 1
            self.revalidations[token] = (conn, entry, session, timeout, req.has_read_only)
            self._send([(self.soft.leader, ("app", "revalidate", token, session))])
            return
        self.finish_reattach(conn, None, session, timeout, req.has_read_only, self.sessions.is_alive(session))

    def finish_reattach(self, conn: Any, entry: Any, session: int, timeout: int, with_read_only: bool,
                        alive: bool, read_only: bool = False) -> None:
        if conn.closed:
            return
        if not alive:
            # ZooKeeper's "Invalid session 0x... for client ..., probably expired".
            bad_input.info("invalid session", session=f"0x{session:x}", client=f"{conn.peer[0]}:{conn.peer[1]}")
            conn.send_connect_response(0, 0, b"\x00" * 16, with_read_only, entry)
            conn.close()
            return
        self.sessions.touch(session, self.now_ms)
        self.clients.reattached(conn, session)
        conn.send_connect_response(timeout, session, session_password(session), with_read_only, entry, read_only)

    def _connect_read_only(self, conn: Any, req: ConnectRequest, timeout: int) -> None:
        """Sessions of a read-only server are local: nothing is logged, the tree does not change.

        A known session (in the tree, or opened here) reattaches; a new one gets an id the
        quorum never hears of, so a client that later reaches a read-write server with it is
        told that it expired (the Java client sends 0 there instead)."""
        if not req.read_only:
            bad_input.info("refusing session request for not-read-only client", peer=conn.peer)
            conn.close()
            return
        session = req.session_id
        known = True
        if session == 0:
            session = self.sessions.new_session_id()
            self.local_sessions.add(session)
            self.sessions.add(session, timeout, self.now_ms)
        else:
            known = req.passwd == session_password(session) and (
                session in self.tree.sessions or session in self.local_sessions)
            if known and not self.sessions.is_alive(session):
                self.sessions.add(session, timeout, self.now_ms)
        self.clients.bind(conn, session)
        self.finish_reattach(conn, None, session, timeout, req.has_read_only, known, read_only=True)

    def _refuse_write(self, conn: Any, entry: Any) -> bool:
        """Writes that cannot go anywhere: NOTREADONLY (read-only, or standalone with a failed
        log) or the connection closed (an ensemble member that is not serving)."""
        if self.read_only or (self.failed is not None and self.standalone):
            conn.write_done(entry, self.tree.last_zxid, Err.NOTREADONLY, b"")
            return True
        if not self.serving:
            conn.close()
            return True
        return False

    def write(self, conn: Any, entry: Any, op: int, args: tuple, buf: bytearray, start: int, end: int) -> None:
        """A decoded write; buf[start:end] is its request body, which a learner forwards as is
        (the leader decodes it as it decodes its own clients' requests)."""
        if not self._leading or self.failed is not None:
            if self._refuse_write(conn, entry):
                return
            session = conn.session_id
            self._forward("request", (session, entry.xid), entry, session, entry.xid, op, bytes(buf[start:end]),
                          conn.identities)
            return
        txn = self.prep.prepare(conn.session_id, entry.xid, op, args, conn.identities, self.now_ms)
        self._propose(txn, entry)

    def write_error(self, conn: Any, entry: Any, op: int, err: int) -> None:
        """ZooKeeper gives an undecodable multi a zxid and logs it as an error txn."""
        if not self.leads:
            if not self._refuse_write(conn, entry):
                conn.write_done(entry, self.tree.last_zxid, err, b"")
            return
        self._propose(self.prep.error(conn.session_id, entry.xid, op, err, self.now_ms), entry)

    def sync(self, conn: Any, entry: Any, path: str) -> None:
        """A leader answers once it has applied all it proposed; a learner asks the leader
        how far to catch up and answers once it has applied that far.  A server that takes
        no writes (read-only, or standalone with a failed log) refuses it, as ZooKeeper's
        ReadOnlyRequestProcessor does."""
        if self.read_only or (self.failed is not None and self.standalone):
            conn.write_done(entry, self.tree.last_zxid, Err.NOTREADONLY, b"")
            return
        if self.leads:
            # Answered once all proposed so far is applied: after this session's earlier
            # writes, with a zxid no older than theirs (the client keeps the last one).
            self.sync_waiters.append((self.core.last_zxid, (conn, entry, path)))
            self._wake_syncs()
            return
        if not self.serving:
            conn.close()
            return
        token = random.getrandbits(62)
        self.sync_tokens[token] = (conn, entry, path)
        self._send([(self.soft.leader, ("app", "sync", token))])

    def close_session(self, conn: Any, entry: Any) -> None:
        session = conn.session_id
        if self.read_only:
            # No txn: a global session's ephemerals stay until the quorum expires it.
            conn.write_done(entry, self.tree.last_zxid, 0, b"")
            log.info("session closed", session=f"0x{session:x}", client=f"{conn.peer[0]}:{conn.peer[1]}",
                     read_only=True)
            self.local_sessions.discard(session)
            self._session_closed(session)
            return
        if not self.leads:
            if not self._refuse_write(conn, entry):
                self._forward("closesession", (session, entry.xid), entry, session, entry.xid)
            return
        self.sessions.set_closing(session)
        self._propose(self.prep.close_session(session, entry.xid, self.now_ms), entry)

    def touch(self, session: int) -> None:
        self.sessions.touch(session, self.now_ms)
        if not self.standalone and not self.leads:
            self.touched.add(session)

    def expire(self, session: int) -> bool:
        """Expire a session now, as if its timeout had passed (the leader's or standalone's)."""
        if not self.leads or not self.sessions.is_alive(session):
            return False
        log.info("session expired", session=f"0x{session:x}", forced=True)
        self.sessions.set_closing(session)
        self._propose(self.prep.close_session(session, 0, self.now_ms), None)
        return True

    def _session_closed(self, session: int) -> None:
        self.sessions.remove(session)
        self.touched.discard(session)
        self.clients.close_session(session)

    def _wake_syncs(self) -> None:
        applied = self.tree.last_zxid
        waiting = []
        for zxid, (conn, entry, path) in self.sync_waiters:
            if zxid <= applied:
                if not conn.closed:
                    conn.write_done(entry, applied, 0, enc_string(path))
            else:
                waiting.append((zxid, (conn, entry, path)))
        self.sync_waiters = waiting

    # ------------------------------------------------------------ peers

    def receive(self, sender: int, msg: Any) -> str | None:
        """A message from a peer; returns why it was dropped, for the caller to log (rate-limited)."""
        if self.failed is not None:
            return None
        reason = None
        if forwarding.is_app(msg):
            try:
                self._on_app(sender, msg)
            except (ValueError, TypeError, IndexError, KeyError, JuteError) as e:
                reason = f"malformed app message: {e}"
        else:
            core = self.core
            dropped = core.dropped
            core.receive(sender, msg)
            if core.dropped != dropped and core.drop_reason in ("malformed", "unknown server id"):
                reason = core.drop_reason
        self.wake()
        return reason

    def peer_connected(self, sid: int) -> None:
        if self.failed is None:
            self.core.peer_connected(sid)
            self.wake()

    def peer_disconnected(self, sid: int) -> None:
        if self.failed is None:
            self.core.peer_disconnected(sid)
            self.wake()

    def _on_app(self, sender: int, msg: list) -> None:
        """Client traffic between members; fields are checked before anything acts on them."""
        if sender not in self.core.voters and sender not in self.core.observers:
            raise ValueError("from an unknown server")
        if not forwarding.well_formed(_APP_SCHEMA, msg):
            raise ValueError(f"bad {str(msg[1])[:20]!r} message")
        kind = msg[1]
        if kind == "synced":
            waiter = self.sync_tokens.pop(msg[2], None)
            if waiter is not None:
                self.sync_waiters.append((msg[3], waiter))
                self._wake_syncs()
            return
        if kind == "revalidated":
            waiter = self.revalidations.pop(msg[2], None)
            if waiter is not None:
                conn, entry, session, timeout, with_read_only = waiter
                self.finish_reattach(conn, entry, session, timeout, with_read_only, msg[3])
            return
        if not self.leads:
            return  # a learner got it, or we lost leadership: the client will retry
        now = self.now_ms = self.clock()
        if kind == "request":
            _, _, session, cxid, op, body, identities = msg
            args = DECODE[op](body, 0, len(body))
            self._propose(self.prep.prepare(session, cxid, op, args, [tuple(i) for i in identities], now), None)
        elif kind == "createsession":
            _, _, session, timeout = msg
            self.sessions.add(session, timeout, now)
            self._propose(self.prep.create_session(session, timeout, now), None)
        elif kind == "closesession":
            _, _, session, cxid = msg
            if not self.sessions.tracks(session):
                # As ZooKeeper's session check: no session, nothing to close (a learner only
                # forwards its clients' own sessions, which it created through the leader).
                bad_input.warning("closesession for an unknown session dropped", sender=sender,
                                  session=f"0x{session:x}")
                return
            self.sessions.set_closing(session)
            self._propose(self.prep.close_session(session, cxid, now), None)
        elif kind == "touch":
            for session in msg[2]:
                self.sessions.touch(session, now)
        elif kind == "revalidate":
            _, _, token, session = msg
            self.metrics.revalidate_count += 1
            alive = self.sessions.is_alive(session)
            if alive:
                self.sessions.touch(session, now)
            self._send([(sender, ("app", "revalidated", token, alive))])
        elif kind == "sync":
            # Everything proposed so far (the history we established on included): the
            # learner answers once it has applied up to here.
            self._send([(sender, ("app", "synced", msg[2], self.core.last_zxid))])

    # ------------------------------------------------------------ time

    def tick(self) -> None:
        """Called every `tick_interval_ms`: ZAB's ticks, session expiry, containers, snapshots."""
        if self.failed is not None and not self.standalone:
            return
        now = self.now_ms = self.clock()
        core = self.core
        if now - self._last_core_tick >= self.tick_ms:
            self._last_core_tick = now
            if self.failed is None:
                core.tick()
            if self.serving:
                self.storage.maybe_snapshot(self.tree)
            if self.touched and self.serving and self.soft.state in (FOLLOWING, OBSERVING):
                self._send([(self.soft.leader, ("app", "touch", sorted(self.touched)))])
                self.touched.clear()
        if self.read_only:
            for session in self.sessions.expired(now):
                log.info("session expired", session=f"0x{session:x}", timeout_ms=self.sessions.timeouts.get(session),
                         read_only=True)
                self.local_sessions.discard(session)
                self._session_closed(session)
        elif (self.role == "looking" and self.config.read_only_mode
              and now - self.looking_since_ms >= max(2000, self.config.tick_time)):
            # ZooKeeper's QuorumPeer starts its ReadOnlyZooKeeperServer after that delay.
            self._enter_read_only()
        if self.leads:
            for session in self.sessions.expired(now):
                # ZooKeeper's "Expiring session 0x..., timeout of ...ms exceeded".
                log.info("session expired", session=f"0x{session:x}", timeout_ms=self.sessions.timeouts.get(session))
                self._propose(self.prep.close_session(session, 0, now), None)
            if now - self._last_container_check >= self.config.container_check_interval_ms:
                self._last_container_check = now
                self.check_containers()
        self.wake()

    @property
    def tick_interval_ms(self) -> float:
        return min(self.tick_ms, max(self.config.tick_time / 2, 10))

    def check_containers(self) -> int:
        """Delete empty containers that once had children and expired empty TTL nodes (ContainerManager)."""
        if not self.leads:
            return 0
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
            self._propose(self.prep.delete_container(path, self.now_ms), None)
        return len(candidates)
