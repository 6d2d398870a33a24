"""What must hold after every step of a simulation, and once every fault has healed.

The committed history H (zxid -> record) is what every member applies, in zxid order.  It
grows from two sources: commits handed out in a Ready (`rd.commits`), and a leader's whole
log when it establishes (ZAB makes the new leader's history the truth).  Checked:

- at most one established leader per epoch (each establishment takes a new epoch);
- a member applies each zxid once, in increasing order, with the record H holds for it, and
  skips no committed zxid (so every member's applied sequence is a prefix of every other's);
- a member whose log failed never reports anything durable again;
- each member's tree is as far as ZAB says it applied (a rebuilt tree reaches its TRUNC point);
- a new leader's log holds every committed txn after its snapshot (nothing committed is lost),
  and its tree has applied all of its log from earlier epochs before it serves;
- every committed txn is durable on a quorum of voters' simulated disks, at every moment;
- a write a client was told succeeded is in H under its (session, xid);
- replies to a session come in xid order and never carry an older zxid (clients.py);
- after healing: one leader, every member serving, progress, and identical trees
  (`DataTree.digest`), equal to H applied to an empty tree.

A record of None in H marks a zxid whose txns only a snapshot knows (a leader that was
synchronised by SNAP): it is committed, but its content cannot be compared.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from typing import Any

from ..consensus.zab import LEADING, Ready
from ..storage.records import decode_txn
from ..tree.datatree import DataTree


class InvariantBroken(AssertionError):
    pass


class Checker:
    def __init__(self, seed: int, voters: list[int]) -> None:
        self.seed = seed
        self.voters = voters
        self.quorum = len(voters) // 2 + 1
        self.history: dict[int, bytes | None] = {}
        self.order: list[int] = []  # the keys of history, sorted
        self.leaders: dict[int, int] = {}  # epoch -> sid
        self.applied: dict[int, int] = {}  # sid -> last zxid applied
        self.leading: dict[int, bool] = {}  # sid -> established leader as of its last Ready
        self.unchecked = 0  # index in order from which durability is not yet checked
        self.removals = -1
        self.step = 0
        self.acked: list[int] = []
        self.failed_logs: dict[int, tuple[Any, tuple[int, int]]] = {}  # sid -> (member, what was durable)
        self.syncs = {"snap": 0, "trunc": 0}  # synchronisations seen, to show schedules reach them

    def fail(self, what: str) -> None:
        raise InvariantBroken(f"seed {self.seed}, step {self.step}: {what}")

    # ------------------------------------------------------------ members

    def booted(self, sid: int, member: Any) -> None:
        self.applied[sid] = member.tree.last_zxid
        self.leading[sid] = False
        self._soft(sid, member, member.soft)

    def on_ready(self, sid: int, member: Any, rd: Ready) -> None:
        if rd.snapshot is not None:
            self.applied[sid] = rd.snapshot[0]
            self.syncs["snap"] += 1
        if rd.truncate is not None:
            self.applied[sid] = rd.truncate
            self.syncs["trunc"] += 1
        for zxid, record in rd.commits:
            self._apply(sid, zxid, record)
        if rd.soft is not None:
            self._soft(sid, member, rd.soft)

    def _commit(self, zxid: int, record: bytes | None) -> None:
        if zxid not in self.history:
            self.history[zxid] = record
            insort(self.order, zxid)
        elif self.history[zxid] is None:
            self.history[zxid] = record

    def _apply(self, sid: int, zxid: int, record: bytes) -> None:
        prev = self.applied[sid]
        if zxid <= prev:
            self.fail(f"member {sid} applied {zxid:#x} after {prev:#x}")
        known = self.history.get(zxid)
        if known is not None and known != record:
            self.fail(f"member {sid} applied {decode_txn(record)!r} at {zxid:#x}; others applied "
                      f"{decode_txn(known)!r}")
        i = bisect_right(self.order, prev)
        if i < len(self.order) and self.order[i] < zxid:
            self.fail(f"member {sid} applied {zxid:#x} after {prev:#x}, skipping committed {self.order[i]:#x}")
        self._commit(zxid, record)
        self.applied[sid] = zxid

    def _soft(self, sid: int, member: Any, soft: Any) -> None:
        leads = soft.state == LEADING and soft.established
        if leads and not self.leading[sid]:
            # Each establishment takes a new epoch (standalone alone keeps epoch 0 for ever).
            leader = self.leaders.get(soft.epoch)
            if leader is not None and not member.standalone:
                self.fail(f"epoch {soft.epoch} established twice: by {leader} and by {sid}")
            self.leaders[soft.epoch] = sid
            self._established(sid, member.core)
            self._caught_up(sid, member.core, soft.epoch)
        self.leading[sid] = leads

    def _established(self, sid: int, core: Any) -> None:
        """The new leader's history becomes the committed one: it must hold all of it."""
        base = core.base_zxid
        log = dict(core.log)
        for zxid in self.order[bisect_right(self.order, base):]:
            record = self.history[zxid]
            mine = log.get(zxid)
            if mine is None:
                self.fail(f"leader {sid} established without committed txn {zxid:#x}")
            if record is not None and mine != record:
                self.fail(f"leader {sid} holds another txn at committed {zxid:#x}")
        if base & 0xFFFFFFFF:  # (epoch, 0) is no txn: only the start of a log that begins an epoch
            self._commit(base, self.history.get(base))
        for zxid, record in core.log:
            self._commit(zxid, record)

    def _caught_up(self, sid: int, core: Any, epoch: int) -> None:
        """A new leader preps requests against its tree: it must have applied its whole history
        from earlier epochs first (a learner whose sync was cut before UPTODATE, then elected,
        once established with its tree an epoch behind its log)."""
        prior = [zxid for zxid, _ in core.log if zxid >> 32 < epoch]
        if prior and self.applied[sid] < prior[-1]:
            self.fail(f"leader {sid} established epoch {epoch} with its tree at {self.applied[sid]:#x}, "
                      f"behind its own history up to {prior[-1]:#x}")

    def trees(self, members: dict[int, Any]) -> None:
        """Each member's tree is exactly as far as ZAB says it applied (after a TRUNC too: the
        rebuilt tree must reach the truncation point)."""
        for sid, member in members.items():
            if member.writer.failed is not None:
                # A failed log is final: nothing is reported durable after it (acks are cumulative).
                seen = self.failed_logs.get(sid)
                now = (member.writer.durable_zxid, member.core.persisted_zxid)
                if seen is None or seen[0] is not member:
                    self.failed_logs[sid] = (member, now)
                elif seen[1] != now:
                    self.fail(f"member {sid} reported {now} durable after its log failed at {seen[1]}")
            if member.tree.last_zxid != self.applied[sid]:
                self.fail(f"member {sid}'s tree is at {member.tree.last_zxid:#x}, but it applied up to "
                          f"{self.applied[sid]:#x}")

    # ------------------------------------------------------------ disks

    def durability(self, disks: dict[int, Any]) -> None:
        """Every committed txn is on a quorum of voters' disks (checked again whenever a disk
        lost records; otherwise only what was committed since the last check)."""
        removals = sum(disks[s].removals for s in self.voters)
        start = 0 if removals != self.removals else self.unchecked
        self.removals = removals
        voters = [disks[s] for s in self.voters]
        for zxid in self.order[start:]:
            have = 0
            for d in voters:
                if d.durable(zxid):
                    have += 1
            if have < self.quorum:
                self.fail(f"committed txn {zxid:#x} is durable on {have} voters' disks, fewer than a quorum")
        self.unchecked = len(self.order)

    # ------------------------------------------------------------ clients

    def reply(self, session: int, frame: tuple) -> None:
        _, xid, op, zxid, err = frame
        from ..requests.final import WRITES

        if op not in WRITES or err != 0:
            return
        record = self.history.get(zxid)
        if zxid not in self.history:
            self.fail(f"session {session:#x} xid {xid}: write acknowledged at {zxid:#x}, which is not committed")
        if record is not None:
            txn = decode_txn(record)
            if (txn.session, txn.cxid) != (session, xid):
                self.fail(f"session {session:#x} xid {xid}: acknowledged with the zxid of {txn!r}")
        self.acked.append(zxid)

    # ------------------------------------------------------------ after healing

    def converged(self, members: dict[int, Any], committed_before: int, acked_before: int) -> None:
        leaders = [s for s, m in members.items() if m.leads]
        if len(leaders) != 1:
            self.fail(f"no single leader after healing: {[(s, m.role, m.failed) for s, m in members.items()]}")
        stuck = [s for s, m in members.items() if not m.serving]
        if stuck:
            self.fail(f"members {stuck} not serving long after every fault healed: "
                      f"{[(s, members[s].role, members[s].soft) for s in stuck]}")
        if len(self.order) <= committed_before or len(self.acked) <= acked_before:
            self.fail("no progress after healing: nothing committed or acknowledged")
        digests = {s: (m.tree.last_zxid, m.tree.digest()) for s, m in members.items()}
        if len(set(digests.values())) != 1:
            self.fail(f"replicas differ after healing: {[(s, hex(z), d[:12]) for s, (z, d) in digests.items()]}")
        last, digest = next(iter(digests.values()))
        if self.order and last != self.order[-1]:
            self.fail(f"replicas are at {last:#x}, the last committed txn is {self.order[-1]:#x}")
        if all(r is not None for r in self.history.values()):
            tree = DataTree()
            for zxid in self.order:
                tree.apply(decode_txn(self.history[zxid]))  # type: ignore[arg-type]
            if tree.digest() != digest:
                self.fail("replicas' tree is not the committed history applied in order")
