"""ZAB as a pure, deterministic state machine (the etcd-io/raft `Ready` idea).

Inputs: `tick()`, `receive(sender, message)`, `propose(zxid, record)` (leader),
`persisted(zxid)` (the caller's log is durable up to zxid).
Outputs: `ready()` hands out a `Ready` — messages to send, log entries to persist, a
truncation or snapshot to install, epochs to persist, entries to apply, and the `SoftState`
(role, leader, epoch, serving) as of the hand-out.  A Ready is a value: once handed out the
core never touches it again; what happens later goes into the next one.

Contract for the caller, per Ready, in this order: install `snapshot`, apply `truncate`,
persist `epochs` durably, start persisting `entries` (report with `persisted`), apply
`commits` to the state machine, send `messages`.  Messages never carry an ack for data that
is not durable: acks are produced only from `persisted`.

Phases (ZooKeeper's): fast leader election (votes ordered by (epoch, zxid, sid)),
discovery (FOLLOWERINFO / LEADERINFO / ACKEPOCH: a new epoch above every accepted one),
synchronisation (DIFF, TRUNC or SNAP, then NEWLEADER acked by a quorum), broadcast
(PROPOSAL, ACK, COMMIT in zxid order).  A zxid names one txn: the high 32 bits are the
epoch of the only leader that could assign it.

Messages are tuples whose first item is the type; they are msgpack-friendly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

LOOKING = "looking"
FOLLOWING = "following"
LEADING = "leading"
OBSERVING = "observing"

Entry = tuple[int, bytes]  # (zxid, record)

# Test-only broken build (the simulator must catch it): a new leader takes the highest accepted
# epoch again instead of one above every accepted epoch.  Off in every real build; read once
# an election.
BROKEN_REUSE_EPOCH = False
# Test-only broken build (`zkpy verify --broken ack-before-quorum` must catch it): the leader
# commits, and so acknowledges, what it alone has logged, without waiting for a quorum's acks.
# Off in every real build; read once per commit attempt (a batch), not per txn.
BROKEN_COMMIT_WITHOUT_QUORUM = False
# Test-only broken build (the simulator must catch it): the bug zkpy verify found — commits are
# handed out only when the commit point advances, so a learner elected before its sync finished
# (its point already past its DIFF) leads with its tree behind its own log.  Off in every real build.
BROKEN_APPLY_ONLY_ON_ADVANCE = False


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def make_zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


class SoftState(NamedTuple):
    """What the caller routes requests by; it changes only at elections and (re)joins."""

    state: str
    leader: int | None
    epoch: int
    serving: bool
    established: bool


class Ready:
    """What the caller acts on, in this order: snapshot, truncate, epochs, entries, commits,
    messages; `soft` is the SoftState as of the hand-out.  (A __slots__ class: one is made
    per pass of the caller's loop, on the hot path.)"""

    __slots__ = ("messages", "entries", "truncate", "snapshot", "epochs", "commits", "role_changed", "soft")

    def __init__(self) -> None:
        self.messages: list[tuple[int, tuple]] = []
        self.entries: list[Entry] = []
        self.truncate: int | None = None
        self.snapshot: tuple[int, bytes] | None = None
        self.epochs: tuple[int, int] | None = None
        self.commits: list[Entry] = []
        self.role_changed = False
        self.soft: SoftState | None = None

    def empty(self) -> bool:
        return not (self.messages or self.entries or self.commits or self.role_changed
                    or self.truncate is not None or self.snapshot is not None or self.epochs is not None)


@dataclass
class Timing:
    """Timeouts in ticks (tickTime units), as in zoo.cfg."""

    init_limit: int = 10
    sync_limit: int = 5
    finalize_wait: int = 1  # ticks a decided vote waits for a better one


class Zab:
    def __init__(self, sid: int, voters: set[int], observers: set[int], *, accepted_epoch: int = 0,
                 current_epoch: int = 0, log: list[Entry] | None = None, applied_zxid: int | None = None,
                 snapshot_zxid: int = 0, snapshot_provider: Callable[[], tuple[int, bytes]] | None = None,
                 timing: Timing | None = None, log_window: int = 100_000, incarnation: int = 0) -> None:
        self.sid = sid
        self.incarnation = incarnation  # distinguishes this boot's join attempts from older ones
        self.voters = set(voters)
        self.observers = set(observers)
        self.is_observer = sid in observers
        self.quorum = len(self.voters) // 2 + 1
        self.timing = timing or Timing()
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        # In-memory window of the log (for DIFF); base_zxid is the zxid just before log[0].
        self.log: list[Entry] = list(log or [])
        self.base_zxid = snapshot_zxid if not self.log else min(snapshot_zxid, self.log[0][0] - 1)
        # A quorum of one has no learner to send a DIFF: its window only feeds its own commits.
        self.alone = self.voters == {sid} and not self.observers
        self.log_window = min(log_window, 1024) if self.alone else log_window
        self._trim_at = self.log_window + self.log_window // 16
        self.persisted_zxid = self.last_zxid
        last = self.last_zxid
        self.applied_zxid = last if applied_zxid is None else applied_zxid
        self.commit_zxid = self.applied_zxid
        self.snapshot_provider = snapshot_provider
        self.state = LOOKING
        self.leader: int | None = None
        self.epoch = 0  # the epoch being established or led
        self._ready = Ready()
        self._soft = SoftState(LOOKING, None, 0, False, False)  # the last one handed out
        # election
        self.logical_clock = 0
        self.vote: tuple[int, int, int] = (0, 0, 0)  # (peer_epoch, zxid, sid)
        self.recv_votes: dict[int, tuple] = {}
        self.out_of_election: dict[int, tuple] = {}
        self.finalize_at: int | None = None
        self.finalize_vote: tuple = ()
        self.now = 0
        # leader
        self.followerinfo: dict[int, int] = {}  # sid -> accepted epoch
        self.newleader_acks: set[int] = set()
        self.forwarding: set[int] = set()  # learners that get proposals
        self.synced: set[int] = set()  # learners that got UPTODATE
        self.sync_points: dict[int, int] = {}  # learner -> zxid its NEWLEADER ack must reach
        self.sync_joins: dict[int, list | None] = {}  # learner -> the join its SYNC answered
        self.match: dict[int, int] = {}  # learner -> highest zxid it acked
        self.last_heard: dict[int, int] = {}
        self.leader_start_zxid = 0
        self.epoch_acks: dict[int, tuple] = {}
        self.discovered = False
        self.established = False
        self.deadline = 0
        self.joins: dict[int, list] = {}  # learner -> its current join id
        # learner
        self.newleader_zxid: int | None = None
        self.synced_epoch = 0
        self.serving = False
        self.join_seq = 0
        self.dropped = 0
        self.drop_reason = ""
        # Counted for ZooKeeper's metrics (the caller reads them): SYNCs sent as DIFF (or
        # TRUNC+DIFF) and as SNAP (LearnerHandler's diff_count, snap_count), COMMITs received.
        self.diff_syncs = 0
        self.snap_syncs = 0
        self.commits_received = 0
        # A quorum of one (standalone) leads from boot: no election, no epochs to persist, and
        # zxids go on from the last one (0x1, 0x2, ... as ZooKeeper standalone assigns them).
        if self.alone:
            self._lead_alone()
        else:
            self._start_election()

    def _lead_alone(self) -> None:
        self._set_state(LEADING, self.sid)
        self.epoch = epoch_of(self.last_zxid)
        self.established = True
        self.serving = True
        self.match = {}
        self.commit_zxid = max(self.commit_zxid, self.applied_zxid)

    # ------------------------------------------------------------ helpers

    @property
    def last_zxid(self) -> int:
        return self.log[-1][0] if self.log else self.base_zxid

    def _send(self, to: int, msg: tuple) -> None:
        self._ready.messages.append((to, msg))

    def _broadcast(self, msg: tuple, targets=None) -> None:
        for sid in sorted(targets if targets is not None else (self.voters | self.observers)):
            if sid != self.sid:
                self._send(sid, msg)

    def _set_state(self, state: str, leader: int | None) -> None:
        self.state = state
        self.leader = leader
        self.serving = False
        self._ready.role_changed = True

    def _persist_epochs(self) -> None:
        self._ready.epochs = (self.accepted_epoch, self.current_epoch)

    def _append(self, zxid: int, record: bytes) -> None:
        entry = (zxid, record)
        log = self.log
        log.append(entry)
        self._ready.entries.append(entry)
        if len(log) > self._trim_at:
            self._trim()

    def _trim(self) -> None:
        """Trim the window's front in steps of a sixteenth: `del log[:1]` on every append
        moved the whole 100k-entry list each time (13-22% of a member's time under writes)."""
        excess = len(self.log) - self.log_window
        if self.log[excess - 1][0] <= self.applied_zxid:
            self.base_zxid = self.log[excess - 1][0]
            del self.log[:excess]

    def _index_after(self, zxid: int) -> int | None:
        """Index in self.log of the first entry after `zxid`, or None if zxid is not in the window."""
        if zxid == self.base_zxid:
            return 0
        log = self.log
        if log:
            # Within an epoch zxids are consecutive: where it would be if the window held one
            # epoch is nearly always where it is (a member commits every txn it appends).
            guess = zxid - log[0][0]
            if 0 <= guess < len(log) and log[guess][0] == zxid:
                return guess + 1
        lo, hi = 0, len(log)
        while lo < hi:
            mid = (lo + hi) // 2
            if log[mid][0] < zxid:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(log) and log[lo][0] == zxid:
            return lo + 1
        return None

    def _epoch_lasts(self) -> dict[int, int]:
        """The last zxid of each epoch in our log (the snapshot base counts for its epoch)."""
        lasts: dict[int, int] = {}
        if self.base_zxid:
            lasts[epoch_of(self.base_zxid)] = self.base_zxid
        for zxid, _ in self.log:
            lasts[epoch_of(zxid)] = zxid
        return lasts

    def _commit_to(self, zxid: int) -> None:
        """Advance the commit point and hand out the committed entries not yet applied.  A
        learner that is not synced only records the point (COMMITs of proposals forwarded to
        it while it syncs); what it recorded goes out as soon as it may apply: at UPTODATE, or
        when it leads first (its leader stopped before UPTODATE and it won the election).  A
        new leader must not prep a single request against a tree that lacks its own history."""
        if zxid > self.commit_zxid:
            self.commit_zxid = min(zxid, self.last_zxid)
        elif BROKEN_APPLY_ONLY_ON_ADVANCE:
            return
        if not self.serving and self.state != LEADING:
            return  # a learner applies only once synced
        if self.applied_zxid < self.commit_zxid:
            self._emit_commits()

    def _emit_commits(self) -> None:
        start = self._index_after(self.applied_zxid)
        if start is None:
            start = 0
        for entry in self.log[start:]:
            if entry[0] > self.commit_zxid:
                break
            if entry[0] > self.applied_zxid:
                self._ready.commits.append(entry)
                self.applied_zxid = entry[0]

    # ------------------------------------------------------------ outputs

    def ready(self) -> Ready:
        """Everything to act on since the last call; the core starts a fresh one."""
        rd, self._ready = self._ready, Ready()
        soft = self._soft
        if (soft.state is not self.state or soft.leader != self.leader or soft.epoch != self.epoch
                or soft.serving != self.serving or soft.established != self.established):
            soft = self._soft = self.soft_state()
        rd.soft = soft
        return rd

    def has_ready(self) -> bool:
        return not self._ready.empty()

    def soft_state(self) -> SoftState:
        return SoftState(self.state, self.leader, self.epoch, self.serving, self.established)

    # ------------------------------------------------------------ election

    def _start_election(self) -> None:
        self._set_state(LOOKING, None)
        self.established = False
        self.logical_clock += 1
        self.vote = (self.current_epoch, self.last_zxid, self.sid)
        self.recv_votes = {}
        self.out_of_election = {}
        self.finalize_at = None
        self.forwarding.clear()
        self.synced.clear()
        self.newleader_zxid = None
        if not self.is_observer:
            self.recv_votes[self.sid] = self.vote
        self._broadcast_vote()

    def _vote_msg(self) -> tuple:
        leader_vote = self.vote if self.state == LOOKING else (self.current_epoch, self.last_zxid, self.leader or 0)
        return ("vote", self.state, leader_vote[2], leader_vote[1], leader_vote[0], self.logical_clock,
                self.epoch if self.state != LOOKING else 0)

    def _observer_vote_msg(self) -> tuple:
        """An observer's notification: it asks who leads and proposes no one."""
        return ("vote", LOOKING, -1, -1, -1, self.logical_clock, 0)

    def _broadcast_vote(self) -> None:
        if self.is_observer:
            self._broadcast(self._observer_vote_msg(), self.voters)
        else:
            self._broadcast(self._vote_msg())

    def _on_vote(self, sender: int, msg: tuple) -> None:
        _, state, leader, zxid, peer_epoch, clock, epoch = msg
        vote = (peer_epoch, zxid, leader)
        if self.state != LOOKING:
            if state == LOOKING and sender != self.sid:
                self._send(sender, self._vote_msg())  # tell the looker who leads
            elif state == LEADING and sender == self.leader and not self.epoch:
                # Our leader says it leads now: the FOLLOWERINFO we sent while it was still
                # looking was dropped, so it goes again at once rather than at the next tick.
                self._retransmit()
            return
        if state == LOOKING:
            if sender in self.observers or leader < 0:
                if not self.is_observer:
                    self._send(sender, self._vote_msg())
                return
            if self.is_observer:
                return
            if clock > self.logical_clock:
                self.logical_clock = clock
                self.recv_votes = {}
                self.finalize_at = None
                own = (self.current_epoch, self.last_zxid, self.sid)
                self.vote = max(vote, own)
                self._broadcast_vote()
            elif clock < self.logical_clock:
                self._send(sender, self._vote_msg())
                return
            elif vote > self.vote:
                self.vote = vote
                self._broadcast_vote()
            self.recv_votes[sender] = vote
            self._tally()
            return
        if (sender in self.voters and not self.is_observer and clock == self.logical_clock
                and leader == self.vote[2]):
            # It decided in this round for the leader we vote for: its vote counts with the
            # lookers' (as ZooKeeper's FLE counts FOLLOWING/LEADING notifications of the round).
            self.recv_votes[sender] = self.vote
            self._tally()
            if self.state != LOOKING:
                return
        # A vote from a server that is following or leading: join an established leader.
        if sender in self.voters:
            self.out_of_election[sender] = (leader, epoch, state)
        backers = [s for s, (ld, ep, _) in self.out_of_election.items() if ld == leader and ep == epoch]
        leader_says = self.out_of_election.get(leader, (None, None, None))
        if len(backers) >= self.quorum and (leader_says[2] == LEADING or leader == self.sid):
            self._decide(leader)

    def _tally(self) -> None:
        """Decide once every voter agrees with our vote; with only a quorum, after the
        finalize wait (a better vote may still come from a voter not heard yet)."""
        self.recv_votes[self.sid] = self.vote
        agree = sum(1 for s, v in self.recv_votes.items() if v == self.vote and s in self.voters)
        if agree == len(self.voters):
            # Each voter voted for a vote at least as good as its own state: none better exists.
            self._decide(self.vote[2])
        elif agree >= self.quorum:
            if self.finalize_at is None or self.finalize_vote != self.vote:
                self.finalize_at = self.now + self.timing.finalize_wait
                self.finalize_vote = self.vote
        else:
            self.finalize_at = None

    def _decide(self, leader: int) -> None:
        self.finalize_at = None
        if self.is_observer:
            self._become_learner(leader, OBSERVING)
        elif leader == self.sid:
            self._become_leader()
        else:
            self._become_learner(leader, FOLLOWING)

    # ------------------------------------------------------------ leader

    def _become_leader(self) -> None:
        self._set_state(LEADING, self.sid)
        self.followerinfo = {self.sid: self.accepted_epoch}
        self.epoch = 0
        self.established = False
        self.deadline = self.now + self.timing.init_limit
        self.last_heard = {}
        self.match: dict[int, int] = {}
        self.sync_points: dict[int, int] = {}
        self.sync_joins: dict[int, list | None] = {}  # learner -> the join its SYNC answered
        self.newleader_acks: set[int] = set()
        self.leader_start_zxid = self.last_zxid
        self.epoch_acks: dict[int, tuple] = {}
        self.discovered = False
        self._broadcast_vote()  # lookers learn that we lead

    def _on_followerinfo(self, sender: int, msg: tuple) -> None:
        _, accepted_epoch, _last, join = msg
        self.last_heard[sender] = self.now
        if self.joins.get(sender) == list(join):
            if self.epoch:  # a retransmission: our LEADERINFO may have been lost
                self._send(sender, ("leaderinfo", self.epoch, list(join)))
            return
        if self.epoch and accepted_epoch > self.epoch and sender in self.voters:
            # The voter promised a later epoch (to a leader that never established): it can
            # never follow us.  Step down; the next leader's epoch will exceed every promise.
            self._start_election()
            return
        self.joins[sender] = list(join)
        self.followerinfo[sender] = accepted_epoch
        self.epoch_acks.pop(sender, None)
        # A learner we synchronised that joins afresh (it restarted, or missed a proposal), or a
        # peer that claims its id: the link we have keeps being served (forwarding, synced and
        # match only ever hold learners with a sync point) until the new join is acknowledged
        # (_on_ackepoch), which only the learner itself can do, since our LEADERINFO goes to its
        # own address.  ZooKeeper's old LearnerHandler likewise serves on until the
        # new one is synced; resetting here let a forged FOLLOWERINFO cut a follower off for a
        # syncLimit (found by the peer-port fuzzer).
        if self.epoch:
            self._send(sender, ("leaderinfo", self.epoch, list(join)))
            return
        voters_in = [s for s in self.followerinfo if s in self.voters]
        if len(voters_in) >= self.quorum:
            self.epoch = max(self.followerinfo.values()) + 1
            if BROKEN_REUSE_EPOCH:
                self.epoch = max(self.epoch - 1, 1)
            self.accepted_epoch = self.epoch
            self._persist_epochs()
            for sid in sorted(self.followerinfo):
                if sid != self.sid:
                    self._send(sid, ("leaderinfo", self.epoch, self.joins.get(sid)))

    def _on_ackepoch(self, sender: int, msg: tuple) -> None:
        _, epoch, current_epoch, last_zxid, join, their_lasts, their_floor = msg
        if epoch != self.epoch or list(join) != self.joins.get(sender):
            return  # stale: from an earlier join of this learner
        if self.sync_joins.get(sender) == list(join):
            return  # a retransmission; the SYNC for this join is on its way
        # A learner that (re)joins is synchronised afresh.
        self.forwarding.discard(sender)
        self.synced.discard(sender)
        self.sync_points.pop(sender, None)
        self.match.pop(sender, None)
        self.last_heard[sender] = self.now
        if (current_epoch, last_zxid) > (self.current_epoch, self.last_zxid) and sender in self.voters:
            # A follower knows more than we do: we should not have been elected.
            self._start_election()
            return
        lasts = {int(e): int(z) for e, z in their_lasts}
        if self.discovered:
            self._sync_learner(sender, last_zxid, lasts, their_floor)
            return
        # Discovery ends only when a quorum has acknowledged the epoch and none of them knows
        # more than we do (ZooKeeper's waitForEpochAck): only then may our history, with the
        # new epoch on it, go out to anyone.
        self.epoch_acks[sender] = (last_zxid, lasts, their_floor)
        if len([s for s in self.epoch_acks if s in self.voters]) + 1 >= self.quorum:
            self.discovered = True
            for sid in sorted(self.epoch_acks):
                self._sync_learner(sid, *self.epoch_acks[sid])

    def _common_point(self, their_zxid: int, their_lasts: dict[int, int]) -> int | None:
        """The last zxid our history and the learner's share, or None if we cannot tell.

        Within one epoch both logs hold a prefix of what that epoch's leader proposed, and
        before it both hold that leader's history: so the common point is the smaller of the
        two last zxids in the highest epoch both have entries of.
        """
        if their_zxid == 0:
            return 0
        mine = self._epoch_lasts()
        common = [e for e in their_lasts if e in mine]
        if not common:
            return None
        e = max(common)
        return min(their_lasts[e], mine[e])

    def _sync_learner(self, sid: int, their_zxid: int, their_lasts: dict[int, int], their_floor: int) -> None:
        """One SYNC message (DIFF, TRUNC+DIFF or SNAP+DIFF, then NEWLEADER); then proposals follow.

        A learner cannot truncate below its floor (its snapshot: state it holds without the
        txns that built it, perhaps from a SNAP of a leader that never established), so a
        common point below the floor means SNAP."""
        last = self.last_zxid
        point = self._common_point(their_zxid, their_lasts)
        idx = self._index_after(point) if point is not None else None
        if idx is not None and point == their_zxid:
            msg = ("sync", self.epoch, "diff", None, None, self.log[idx:], last)
            self.diff_syncs += 1
        else:
            if idx is not None and point >= their_floor:
                msg = ("sync", self.epoch, "trunc", point, None, self.log[idx:], last)
                self.diff_syncs += 1
            else:
                self.snap_syncs += 1
                assert self.snapshot_provider is not None, "SNAP sync needs a snapshot provider"
                snap_zxid, state = self.snapshot_provider()
                start = self._index_after(snap_zxid)
                entries = self.log[start:] if start is not None else []
                msg = ("sync", self.epoch, "snap", snap_zxid, state, entries, last)
        self._send(sid, msg + (self.joins.get(sid),))
        self.sync_points[sid] = last
        self.sync_joins[sid] = self.joins.get(sid)
        self.forwarding.add(sid)

    def _on_ack(self, sender: int, msg: tuple) -> None:
        _, epoch, zxid, serving = msg
        if epoch != self.epoch or sender not in self.sync_points:
            return
        self.last_heard[sender] = self.now
        if zxid > self.match.get(sender, -1):
            self.match[sender] = zxid  # acks are cumulative: the log is durable in order
        if not serving and zxid >= self.sync_points[sender]:
            if not self.established:
                self.newleader_acks.add(sender)
                self._try_establish()
            else:
                self.synced.add(sender)  # (again, if our UPTODATE was lost)
                self._send(sender, ("uptodate", self.epoch, self.commit_zxid))
        if self.established:
            self._try_commit()

    def _try_establish(self) -> None:
        if self.established or self.persisted_zxid < self.leader_start_zxid or not self.epoch:
            return
        acked = {s for s in self.newleader_acks if s in self.voters} | {self.sid}
        if len(acked) < self.quorum:
            return
        self.established = True
        self.current_epoch = self.epoch
        self._persist_epochs()
        self.serving = True
        self._ready.role_changed = True
        self._commit_to(self.last_zxid)  # the new leader's history is the truth
        for sid in sorted(self.newleader_acks):
            self.synced.add(sid)
            self._send(sid, ("uptodate", self.epoch, self.commit_zxid))

    def propose(self, zxid: int, record: bytes) -> None:
        """Leader: replicate one txn. `zxid` must follow the last one in this epoch."""
        log = self.log
        if (not self.established or self.state != LEADING or zxid <= (log[-1][0] if log else self.base_zxid)
                or not (self.alone or zxid >> 32 == self.epoch)):
            raise AssertionError(f"only an established leader proposes, zxids in order: {zxid:#x} after "
                                 f"{self.last_zxid:#x}, {self.state}, established={self.established}")
        self._append(zxid, record)
        if self.forwarding:
            msg = ("proposal", self.epoch, zxid, record)
            for sid in sorted(self.forwarding):
                self._send(sid, msg)

    def _try_commit(self) -> None:
        """Commit up to the highest zxid a quorum of voters has durable.  Acks are cumulative
        (each log is durable in order), so that is the quorum-th highest of their acks; what
        lies between the commit point and it was all proposed in this epoch (the history
        before it was committed when the epoch was established)."""
        if self.commit_zxid >= self.last_zxid:
            return
        if self.alone or BROKEN_COMMIT_WITHOUT_QUORUM:
            point = self.persisted_zxid
        else:
            acked = [self.match.get(s, -1) for s in self.voters if s != self.sid]
            acked.append(self.persisted_zxid)
            acked.sort(reverse=True)
            point = acked[self.quorum - 1]
        if point > self.commit_zxid:
            self._commit_to(point)
            msg = ("commit", self.epoch, self.commit_zxid)
            for sid in sorted(self.forwarding):
                self._send(sid, msg)

    # ------------------------------------------------------------ learner

    def _become_learner(self, leader: int, role: str) -> None:
        self._set_state(role, leader)
        self._join()

    def _join(self) -> None:
        """(Re)start discovery with the leader under a new join id."""
        self.epoch = 0
        self.synced_epoch = 0
        self.newleader_zxid = None
        self.serving = False
        self.join_seq += 1
        self.deadline = self.now + self.timing.init_limit
        self._send_followerinfo()

    def _send_followerinfo(self) -> None:
        join = self._join_id()
        self._send(self.leader, ("followerinfo", self.accepted_epoch, self.last_zxid, join))  # type: ignore[arg-type]

    def _retransmit(self) -> None:
        """Learner handshake messages are repeated each tick until the next step arrives."""
        if not self.epoch:
            self._send_followerinfo()
        elif self.newleader_zxid is None:
            self._send_ackepoch()
        elif not self.serving:
            self._maybe_ack_newleader()

    def _join_id(self) -> list:
        return [self.incarnation, self.join_seq]

    def _on_leaderinfo(self, msg: tuple) -> None:
        _, epoch, join = msg
        if list(join or []) != self._join_id():
            return  # meant for an earlier join
        if epoch < self.accepted_epoch and not self.is_observer:
            self._start_election()
            return
        if self.epoch and epoch != self.epoch:
            return
        self.epoch = epoch
        if epoch > self.accepted_epoch:
            self.accepted_epoch = epoch
            self._persist_epochs()
        self._send_ackepoch()

    def _send_ackepoch(self) -> None:
        lasts = sorted(self._epoch_lasts().items())
        self._send(self.leader, ("ackepoch", self.epoch, self.current_epoch, self.last_zxid, self._join_id(),  # type: ignore[arg-type]
                                 [list(x) for x in lasts], self.base_zxid))

    def _on_sync(self, msg: tuple) -> None:
        _, epoch, mode, point, state, entries, newleader_zxid, join = msg
        if self.synced_epoch == epoch or list(join or []) != self._join_id():
            return  # a duplicate, or meant for an earlier join
        self.synced_epoch = epoch
        if mode == "trunc":
            idx = self._index_after(point)
            del self.log[idx if idx is not None else 0:]
            self.persisted_zxid = min(self.persisted_zxid, point)
            # The caller rebuilds its state from its snapshot and the whole truncated log
            # (as after a restart), so everything up to `point` counts as applied.
            self.applied_zxid = point
            self.commit_zxid = min(self.commit_zxid, point)
            self._ready.truncate = point
            self._ready.entries = [e for e in self._ready.entries if e[0] <= point]
        elif mode == "snap":
            self.log = []
            self.base_zxid = self.persisted_zxid = self.applied_zxid = self.commit_zxid = point
            self._ready.snapshot = (point, state)
            self._ready.entries = []
            self._ready.truncate = None
        for zxid, record in entries:
            if zxid > self.last_zxid:
                self._append(zxid, record)
        self.newleader_zxid = newleader_zxid
        self._maybe_ack_newleader()

    def _maybe_ack_newleader(self) -> None:
        if self.newleader_zxid is not None and not self.serving and self.persisted_zxid >= self.newleader_zxid:
            if self.current_epoch != self.epoch:
                # Only now that the leader's history is durable here may we take its epoch
                # as ours: a vote must never claim an epoch whose txns we could lose.
                self.current_epoch = self.epoch
                self._persist_epochs()
            self._send(self.leader, ("ack", self.epoch, self.persisted_zxid, False))  # type: ignore[arg-type]

    def _on_uptodate(self, msg: tuple) -> None:
        _, epoch, commit = msg
        if self.newleader_zxid is None or self.serving:
            return
        self.serving = True
        self._ready.role_changed = True
        self.commit_zxid = max(self.commit_zxid, min(commit, self.last_zxid))
        self._emit_commits()
        self.deadline = self.now + self.timing.sync_limit
        if self.state == FOLLOWING and self.persisted_zxid > self.newleader_zxid:
            self._send(self.leader, ("ack", self.epoch, self.persisted_zxid, True))  # type: ignore[arg-type]

    def _on_proposal(self, msg: tuple) -> None:
        _, epoch, zxid, record = msg
        if self.newleader_zxid is None or zxid <= self.last_zxid:
            return  # not synced yet, or a duplicate
        last = self.last_zxid
        if zxid != last + 1 and not (epoch_of(zxid) > epoch_of(last) and zxid & 0xFFFFFFFF == 1):
            self._join()  # a gap: we missed a proposal; resynchronise with the same leader
            return
        self._append(zxid, record)

    def _on_commit(self, msg: tuple) -> None:
        self.commits_received += 1
        self._commit_to(msg[2])

    def _on_ping(self, msg: tuple) -> None:
        if self.serving:
            self._commit_to(msg[2])
        self._send(self.leader, ("pong", self.epoch))  # type: ignore[arg-type]

    # ------------------------------------------------------------ inputs

    def persisted(self, zxid: int) -> None:
        """The caller's log is durable up to `zxid` (inclusive)."""
        if zxid <= self.persisted_zxid:
            return
        self.persisted_zxid = min(zxid, self.last_zxid)
        if self.state == LEADING:
            if not self.established:
                self._try_establish()
            else:
                self._try_commit()
        elif self.state in (FOLLOWING, OBSERVING) and self.leader is not None:
            if self.serving:
                if self.state == FOLLOWING:
                    self._send(self.leader, ("ack", self.epoch, self.persisted_zxid, True))
            else:
                self._maybe_ack_newleader()

    def tick(self) -> None:
        self.now += 1
        if self.state == LOOKING:
            if self.finalize_at is not None and self.now >= self.finalize_at:
                self._decide(self.vote[2])
            elif self.now % 2 == 0:
                self._broadcast_vote()  # resend: votes may have been lost
            return
        if self.state == LEADING:
            if not self.established:
                if self.now > self.deadline:
                    self._start_election()
                return
            for sid in sorted(self.forwarding):
                self._send(sid, ("ping", self.epoch, self.commit_zxid))
            live = {s for s in self.synced
                    if s in self.voters and self.now - self.last_heard.get(s, -10**9) <= self.timing.sync_limit}
            if len(live) + 1 < self.quorum:
                self._start_election()  # lost the quorum: step down
            return
        if self.now > self.deadline:
            self._start_election()  # the leader went quiet
        else:
            self._retransmit()

    def receive(self, sender: int, msg: tuple) -> None:
        """A message from peer `sender`. Malformed, stale or misdirected messages are dropped
        (and counted in `dropped`, the last reason in `drop_reason`, for the caller to log)."""
        if sender not in self.voters and sender not in self.observers:
            self._drop("unknown server id")
            return
        if not well_formed(msg):
            self._drop("malformed")
            return
        msg = tuple(msg)
        kind = msg[0]
        if kind == "vote":
            self._on_vote(sender, msg)
        elif self.state == LEADING:
            if kind == "followerinfo":
                self._on_followerinfo(sender, msg)
            elif kind == "ackepoch":
                self._on_ackepoch(sender, msg)
            elif kind == "ack":
                self._on_ack(sender, msg)
            elif kind == "pong" and msg[1] == self.epoch:
                self.last_heard[sender] = self.now
            else:
                self._drop("stale or not for a leader")
        elif self.state in (FOLLOWING, OBSERVING) and sender == self.leader:
            handler = _LEARNER_HANDLERS.get(kind)
            if handler is None or (kind != "leaderinfo" and msg[1] != self.epoch):
                self._drop("stale or not for a learner")
                return
            if self.serving:
                self.deadline = self.now + self.timing.sync_limit
            elif kind in ("leaderinfo", "sync", "uptodate"):
                # Only progress of the handshake counts: a learner whose SYNC was lost must
                # time out and join afresh, not be kept waiting by the leader's pings.
                self.deadline = self.now + self.timing.init_limit
            handler(self, msg)
        else:
            self._drop(f"not for a server {self.state}")

    def peer_connected(self, sid: int) -> None:
        """Our connection to `sid` came up.  What we sent it before was lost (there was no
        connection to carry it), so the step it waits for goes again now rather than at the
        next retransmission tick, as ZooKeeper's QuorumCnxManager sends its queued vote."""
        if self.state != LOOKING or not self.is_observer:
            self._send(sid, self._vote_msg())  # a looker may have asked while we could not answer
        elif sid in self.voters:
            self._send(sid, self._observer_vote_msg())
        if self.state in (FOLLOWING, OBSERVING) and sid == self.leader and not self.serving:
            self._retransmit()

    def peer_disconnected(self, sid: int) -> None:
        """Our connection to `sid` closed (its process died or restarted).  A learner whose
        leader it was looks for a new one at once, as ZooKeeper's Follower does when its
        socket to the leader fails, instead of serving on for syncLimit ticks."""
        if self.state in (FOLLOWING, OBSERVING) and sid == self.leader:
            self._start_election()

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        self.drop_reason = reason


def _int(x: object) -> bool:
    return type(x) is int and -(1 << 63) <= x < (1 << 64)


def _epoch(x: object) -> bool:
    """An epoch a zxid can carry: the high 32 bits of a signed 64-bit zxid (ZooKeeper's long),
    or -1 (an observer's vote names none).  A larger one, once accepted, would make every later
    zxid too big to encode, and the member fail at its next proposal."""
    return type(x) is int and -1 <= x < (1 << 31)


def _join(x: object) -> bool:
    return type(x) is list and len(x) == 2 and _int(x[0]) and _int(x[1])


def _entries(x: object) -> bool:
    return type(x) is list and all(type(e) is list and len(e) == 2 and _int(e[0]) and type(e[1]) is bytes
                                   for e in x)


def _lasts(x: object) -> bool:
    return type(x) is list and all(type(e) is list and len(e) == 2 and _int(e[0]) and _int(e[1]) for e in x)


# Each message kind: a check per field after the kind (msgpack gives lists, ints, bytes, str).
_SCHEMA: dict[str, tuple] = {
    "vote": ((lambda x: x in (LOOKING, LEADING, FOLLOWING, OBSERVING)), _int, _int, _epoch, _int, _epoch),
    "followerinfo": (_epoch, _int, _join),
    "ackepoch": (_epoch, _epoch, _int, _join, _lasts, _int),
    "ack": (_epoch, _int, (lambda x: type(x) is bool)),
    "pong": (_epoch,),
    "leaderinfo": (_epoch, (lambda x: x is None or _join(x))),
    "sync": (_epoch, (lambda x: x in ("diff", "trunc", "snap")), (lambda x: x is None or _int(x)),
             (lambda x: x is None or type(x) is bytes), _entries, _int, (lambda x: x is None or _join(x))),
    "uptodate": (_epoch, _int),
    "proposal": (_epoch, _int, (lambda x: type(x) is bytes)),
    "commit": (_epoch, _int),
    "ping": (_epoch, _int),
}


def well_formed(msg: object) -> bool:
    """Is `msg` a peer message of a known kind with fields of the right types?"""
    if type(msg) not in (list, tuple) or not msg:
        return False
    checks = _SCHEMA.get(msg[0]) if type(msg[0]) is str else None  # type: ignore[index]
    return checks is not None and fields_match(checks, msg[1:])  # type: ignore[index]


def fields_match(checks: tuple, fields) -> bool:
    """One check per field, and exactly as many fields as checks (messages of a schema)."""
    return len(fields) == len(checks) and all(check(field) for check, field in zip(checks, fields))


_LEARNER_HANDLERS = {
    "leaderinfo": Zab._on_leaderinfo,
    "sync": Zab._on_sync,
    "uptodate": Zab._on_uptodate,
    "proposal": Zab._on_proposal,
    "commit": Zab._on_commit,
    "ping": Zab._on_ping,
}
