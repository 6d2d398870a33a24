"""A seeded, deterministic simulator for the ZAB core (TigerBeetle's VOPR idea).

Several `Zab` cores exchange messages through a network that loses, delays, duplicates
and reorders them and cuts partitions; servers crash (losing everything not yet durable,
so unsynced log tails are torn off) and restart from their durable state; serving servers
take snapshots of their applied state and purge the log before it.  After every
step the invariants are checked:

- at most one established leader per epoch;
- every server applies txns in zxid order, and what any server applies at a position is
  what every other server applies there (prefix property);
- every txn committed by a leader (acknowledged to a client) is applied by every server
  that is synced afterwards, and is never lost;
- once faults stop and all servers are up, a leader is elected and commits new txns, and
  every server is serving again.

A failing seed replays exactly: every choice comes from `random.Random(seed)`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import msgpack

from .zab import LEADING, Entry, Timing, Zab, epoch_of, make_zxid


class InvariantBroken(AssertionError):
    pass


@dataclass
class Disk:
    """What survives a crash."""

    accepted_epoch: int = 0
    current_epoch: int = 0
    snapshot_zxid: int = 0
    snapshot: list = field(default_factory=list)  # applied entries as of snapshot_zxid
    log: list[Entry] = field(default_factory=list)


@dataclass
class Node:
    sid: int
    disk: Disk
    core: Zab | None = None
    pending: list[Entry] = field(default_factory=list)  # handed out, not yet durable
    applied: list[Entry] = field(default_factory=list)  # the state machine
    up: bool = True


@dataclass
class Faults:
    drop: float = 0.05
    duplicate: float = 0.02
    max_delay: int = 3  # in steps; random delays reorder messages
    crash: float = 0.02
    restart: float = 0.2
    partition: float = 0.01
    heal: float = 0.1
    propose: float = 0.5
    snapshot: float = 0.03  # a serving server snapshots its applied state and purges its log


class Simulator:
    def __init__(self, seed: int, voters: int = 3, observers: int = 0, faults: Faults | None = None) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.faults = faults or Faults()
        self.voter_ids = set(range(1, voters + 1))
        self.observer_ids = set(range(voters + 1, voters + observers + 1))
        self.nodes = {sid: Node(sid, Disk()) for sid in sorted(self.voter_ids | self.observer_ids)}
        self.step_no = 0
        self.in_flight: list[tuple[int, int, int, int, tuple]] = []  # (deliver_at, order, src, dst, msg)
        self.order = 0
        self.blocked: set[tuple[int, int]] = set()
        self.history: dict[int, bytes] = {}  # zxid -> record, of everything any server applied as committed
        self.acked: list[int] = []  # zxids committed by a leader
        self.leaders: dict[int, int] = {}  # epoch -> sid established
        self.counter: dict[int, int] = {}
        self.faulty = True
        self.boots = 0
        for node in self.nodes.values():
            self._boot(node)

    # ------------------------------------------------------------ servers

    def _boot(self, node: Node) -> None:
        d = node.disk
        node.core = Zab(node.sid, self.voter_ids, self.observer_ids, accepted_epoch=d.accepted_epoch,
                        current_epoch=d.current_epoch, log=list(d.log), snapshot_zxid=d.snapshot_zxid,
                        snapshot_provider=lambda n=node: self._snapshot_of(n),
                        timing=Timing(init_limit=10, sync_limit=5, finalize_wait=1), log_window=50,
                        incarnation=self.boots)
        self.boots += 1
        node.pending = []
        # A restarted server's state is its snapshot plus its whole log (as ZooKeeper loads it).
        node.applied = list(d.snapshot) + [e for e in d.log if e[0] > d.snapshot_zxid]
        node.up = True
        self._drain(node)
        for other in self.nodes.values():  # the TCP connections between them come up
            if other is not node and other.up and other.core is not None:
                for a, b in ((other, node), (node, other)):
                    if (a.sid, b.sid) not in self.blocked:
                        a.core.peer_connected(b.sid)
                        self._drain(a)

    def _snapshot_of(self, node: Node) -> tuple[int, bytes]:
        zxid = node.applied[-1][0] if node.applied else 0
        return zxid, msgpack.packb(node.applied, use_bin_type=True)

    def _local_snapshot(self, node: Node) -> None:
        """As the snapshotter and autopurge do: the applied state to disk, older log entries gone."""
        if not node.applied:
            return
        d = node.disk
        d.snapshot = list(node.applied)
        d.snapshot_zxid = node.applied[-1][0]
        d.log = [e for e in d.log if e[0] > d.snapshot_zxid]

    def _crash(self, node: Node) -> None:
        node.up = False
        node.core = None
        node.pending = []  # never reached the disk: a torn tail
        self.in_flight = [m for m in self.in_flight if m[3] != node.sid and m[2] != node.sid]
        for other in self.nodes.values():  # their TCP connections to it close (unless cut off)
            if other.up and other.core is not None and (other.sid, node.sid) not in self.blocked:
                other.core.peer_disconnected(node.sid)
                self._drain(other)

    # ------------------------------------------------------------ the Ready loop

    def _drain(self, node: Node) -> None:
        core = node.core
        assert core is not None
        while True:
            r = core.ready()
            if r.empty():
                return
            d = node.disk
            if r.snapshot is not None:
                zxid, state = r.snapshot
                entries = [tuple(e) for e in msgpack.unpackb(state, raw=False)]
                d.snapshot_zxid, d.snapshot, d.log = zxid, entries, []
                node.pending = []
                node.applied = list(entries)
            if r.truncate is not None:
                d.log = [e for e in d.log if e[0] <= r.truncate]
                node.pending = [e for e in node.pending if e[0] <= r.truncate]
                # rebuild the state machine from the snapshot and the truncated log
                node.applied = list(d.snapshot) + [e for e in d.log if e[0] > d.snapshot_zxid]
            if r.epochs is not None:
                d.accepted_epoch, d.current_epoch = r.epochs
            node.pending.extend(r.entries)
            for entry in r.commits:
                self._apply(node, entry)
            for to, msg in r.messages:
                self._send(node.sid, to, msg)
            if core.state == LEADING and core.established:
                leader = self.leaders.setdefault(core.epoch, node.sid)
                if leader != node.sid:
                    self._fail(f"two leaders established in epoch {core.epoch}: {leader} and {node.sid}")
                if r.commits:
                    self.acked.extend(e[0] for e in r.commits)


    def _apply(self, node: Node, entry: Entry) -> None:
        zxid, record = entry
        if node.applied and zxid <= node.applied[-1][0]:
            self._fail(f"server {node.sid} applied {zxid:#x} after {node.applied[-1][0]:#x}")
        known = self.history.get(zxid)
        if known is not None and known != record:
            self._fail(f"server {node.sid} applied {record!r} at {zxid:#x}, others applied {known!r}")
        # No committed txn may be skipped: everything committed before zxid must be applied already.
        have = {z for z, _ in node.applied}
        missing = [z for z in self.history if z < zxid and z not in have]
        if missing:
            self._fail(f"server {node.sid} applied {zxid:#x} but skipped committed {missing[0]:#x}")
        self.history[zxid] = record
        node.applied.append(entry)

    def _fail(self, what: str) -> None:
        raise InvariantBroken(f"seed {self.seed}, step {self.step_no}: {what}")

    def _send(self, src: int, dst: int, msg: tuple) -> None:
        f = self.faults
        # msgpack round trip: the cores must cope with lists where they sent tuples
        wire = msgpack.unpackb(msgpack.packb(msg, use_bin_type=True), raw=False)
        if not self.faulty:
            self.order += 1
            self.in_flight.append((self.step_no + 1, self.order, src, dst, wire))
            return
        if (src, dst) in self.blocked or self.rng.random() < f.drop:
            return
        copies = 2 if self.rng.random() < f.duplicate else 1
        for _ in range(copies):
            self.order += 1
            self.in_flight.append((self.step_no + self.rng.randint(0, f.max_delay), self.order, src, dst, wire))

    # ------------------------------------------------------------ one step

    def step(self, faults: bool = True) -> None:
        self.step_no += 1
        self.faulty = faults
        rng, f = self.rng, self.faults
        if faults:
            for node in self.nodes.values():
                if node.up and rng.random() < f.crash:
                    self._crash(node)
                elif not node.up and rng.random() < f.restart:
                    self._boot(node)
                elif node.up and node.core.serving and rng.random() < f.snapshot:
                    self._local_snapshot(node)
            if rng.random() < f.partition:
                a, b = rng.sample(sorted(self.nodes), 2)
                self.blocked |= {(a, b), (b, a)}
            if self.blocked and rng.random() < f.heal:
                self.blocked.clear()
        # deliver due messages
        due = sorted(m for m in self.in_flight if m[0] <= self.step_no)
        self.in_flight = [m for m in self.in_flight if m[0] > self.step_no]
        for _, _, src, dst, msg in due:
            node = self.nodes[dst]
            if node.up and node.core is not None:
                node.core.receive(src, msg)
                self._drain(node)
        # the disks catch up (group commit) at random moments
        for node in self.nodes.values():
            if node.up and node.pending and (not faults or rng.random() < 0.7):
                node.disk.log.extend(node.pending)
                last = node.pending[-1][0]
                node.pending = []
                node.core.persisted(last)
                self._drain(node)
        # clients write through the leader
        for node in self.nodes.values():
            core = node.core
            if node.up and core is not None and core.state == LEADING and core.established and rng.random() < f.propose:
                epoch = core.epoch
                last = core.last_zxid
                counter = (last & 0xFFFFFFFF) + 1 if epoch_of(last) == epoch else 1
                zxid = make_zxid(epoch, counter)
                core.propose(zxid, f"txn {epoch}.{counter} by {node.sid}".encode())
                self._drain(node)
        # time passes
        if self.step_no % 2 == 0:
            for node in self.nodes.values():
                if node.up and node.core is not None:
                    node.core.tick()
                    self._drain(node)
        self.check_durable()

    def check_durable(self) -> None:
        """Every acknowledged txn is on the disks of a quorum of voters, at every moment."""
        if not self.acked:
            return
        quorum = len(self.voter_ids) // 2 + 1
        durable = []
        for sid in self.voter_ids:
            d = self.nodes[sid].disk
            durable.append({z for z, _ in d.snapshot} | {z for z, _ in d.log})
        for zxid in self.acked:
            if sum(1 for have in durable if zxid in have) < quorum:
                self._fail(f"acknowledged txn {zxid:#x} is durable on fewer than a quorum")

    def run(self, steps: int, settle: int = 400) -> None:
        """`steps` with faults, then heal everything and check the ensemble makes progress."""
        for _ in range(steps):
            self.step()
        self.blocked.clear()
        for node in self.nodes.values():
            if not node.up:
                self._boot(node)
        acked_before = set(self.acked)
        for _ in range(settle):
            self.step(faults=False)
        self.check_converged(acked_before)

    def check_converged(self, acked_before: set[int]) -> None:
        leaders = [n for n in self.nodes.values() if n.core.state == LEADING and n.core.established]
        if len(leaders) != 1:
            self._fail(f"no single leader after healing: {[(n.sid, n.core.state) for n in self.nodes.values()]}")
        progressed = [z for z in self.acked if z not in acked_before]
        if not progressed:
            self._fail("no txn committed after healing")
        # everyone synced has applied every acknowledged txn, in the same order
        reference = [e for e in leaders[0].applied]
        ref_zxids = {z for z, _ in reference}
        lost = [z for z in acked_before if z not in ref_zxids]
        if lost:
            self._fail(f"acknowledged txn {lost[0]:#x} lost")
        stuck = [n.sid for n in self.nodes.values() if not n.core.serving]
        if stuck:
            self._fail(f"servers {stuck} are not serving long after every fault healed")
        for node in self.nodes.values():
            if node.core.serving:
                n = min(len(node.applied), len(reference))
                if node.applied[:n] != reference[:n]:
                    self._fail(f"server {node.sid} diverges from the leader")
