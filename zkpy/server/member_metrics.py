"""ZooKeeper's ServerMetrics that a member measures (server/metrics.py reads them, srst resets
them): timed on role changes and counted on batches (a Ready pass, a batch of commits), never
per request, so that the write path pays for them once a batch."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, deque
from operator import itemgetter

from ..consensus.zab import FOLLOWING, LEADING, LOOKING, OBSERVING, SoftState
from ..summary import Quantiles, Summary, buffer_sizes, reset_all

_zxid = itemgetter(0)
_record = itemgetter(1)


class MemberMetrics:
    __slots__ = ("looking_count", "election_time", "follower_sync_time", "observer_sync_time", "unavailable_time",
                 "leader_unavailable_time", "proposal_count", "commit_count", "commits_queued",
                 "proposals_received", "propagation", "proposal_latency", "watch_triggers",
                 "revalidate_count", "connection_revalidate_count", "proposal_sizes",
                 "dbinit_time", "snap_load_time", "txns_loaded", "txns_load_time", "base",
                 "_looking_since", "_decided", "_unavailable_since")

    def __init__(self, now_ms: int, ensemble: bool) -> None:
        self.looking_count = 1 if ensemble else 0  # times this member went LOOKING (its start included)
        self.election_time = Summary()  # LOOKING -> the election decided (ms)
        self.follower_sync_time = Summary()  # decided -> synced with the leader (UPTODATE)
        self.observer_sync_time = Summary()
        self.unavailable_time = Summary()  # LOOKING -> broadcast
        self.leader_unavailable_time = Summary()  # the same, for a member that then leads
        self.proposal_count = 0  # proposals of a leader of an ensemble
        self.commit_count = 0  # txns it committed
        self.commits_queued = 0  # request_commit_queued: commits an ensemble member applied
        self.proposals_received = 0  # learner_proposal_received_count: entries received while broadcasting
        self.propagation = Quantiles()  # applied-at - txn time (the leader's clock when it prepped the txn)
        self.proposal_latency = Quantiles()  # learner: received-at - txn time
        # node_{created,deleted,changed,children}_watch_count: watchers triggered by one path's event
        self.watch_triggers = {1: Summary(), 2: Summary(), 3: Summary(), 4: Summary()}
        self.revalidate_count = 0  # leader: sessions a learner asked it to revalidate
        self.connection_revalidate_count = 0  # learner: reattaches it asked the leader about
        self.proposal_sizes = [-1, -1, -1]  # last, min, max record bytes (ZooKeeper's BufferStats; -1 before any)
        self.dbinit_time = Summary()  # recovery at start: snapshot + log replay
        self.snap_load_time = Summary()
        self.txns_loaded = Summary()
        self.txns_load_time = Summary()
        # The counters Prep and ZAB keep themselves, as they were at the last srst.
        self.base: dict[str, int] = {}
        self._looking_since = now_ms  # when this member last went LOOKING
        self._decided = now_ms  # when the last election was decided
        self._unavailable_since: int | None = now_ms if ensemble else None

    def reset(self, counters: dict[str, int]) -> None:
        """srst: everything starts again; `counters` are Prep's and ZAB's now."""
        times = self._looking_since, self._decided, self._unavailable_since
        reset_all(self)
        self._looking_since, self._decided, self._unavailable_since = times  # where the member is, not a count
        for summary in self.watch_triggers.values():
            summary.reset()
        self.proposal_sizes = [-1, -1, -1]
        self.base = counters

    def proposed(self, entries: list[tuple[int, bytes]]) -> None:
        """An ensemble leader's batch of proposals: counted and sized (ZooKeeper's BufferStats)."""
        self.proposal_count += len(entries)
        lengths = list(map(len, map(_record, entries)))
        buffer_sizes(self.proposal_sizes, lengths[-1], min(lengths), max(lengths))

    def committed(self, commits: list[tuple[int, bytes]], times: list[int], now: int, leading: bool | None,
                  arrivals: deque[tuple[int, int]]) -> None:
        """A batch of commits applied at `now` (`times`: their txns' prep times, on the leader's
        clock; `leading` None when standalone): counted, and timed.  propagation_latency runs
        from a txn's prep to its apply here; a learner's proposal_latency from its prep to the
        arrival of the batch of proposals that brought it (`arrivals`: the last zxid and time
        of each, oldest first; used up here).  Txns prepped in one pass share a time, so each
        distinct time is one add_many, counted by Counter in C: no Python step per txn."""
        if leading is not None:
            self.commits_queued += len(commits)
            if leading:
                self.commit_count += len(commits)
        _add_latencies(self.propagation, now, times)
        if not arrivals or leading:
            return
        start, n, newest = 0, len(commits), commits[-1][0]
        while arrivals and start < n:
            last, arrived = arrivals[0]
            end = bisect_right(commits, last, start, n, key=_zxid)
            if end > start:
                _add_latencies(self.proposal_latency, arrived, times[start:end])
                start = end
            if last > newest:
                break  # that batch of proposals also brought txns not yet committed
            arrivals.popleft()

    def triggered(self, events: list) -> None:
        """node_*_watch_count: one sample per path and event type that triggered watchers, the
        number of watchers it triggered."""
        by_path: dict[tuple[int, str], int] = {}
        for _, event_type, path in events:
            key = (event_type, path)
            by_path[key] = by_path.get(key, 0) + 1
        for (event_type, _), n in by_path.items():
            summary = self.watch_triggers.get(event_type)
            if summary is not None:
                summary.add(n)

    def roles_changed(self, previous: SoftState, soft: SoftState, now: int) -> None:
        """election_time, follower/observer_sync_time, (leader_)unavailable_time, looking_count."""
        if soft.state == LOOKING:
            if previous.state != LOOKING:
                self.looking_count += 1
                self._looking_since = now
                if self._unavailable_since is None:
                    self._unavailable_since = now
            return
        if previous.state == LOOKING or soft.leader != previous.leader:
            self.election_time.add(now - self._looking_since)
            self._decided = now
        if soft.serving and not previous.serving:
            if soft.state == FOLLOWING:
                self.follower_sync_time.add(now - self._decided)
            elif soft.state == OBSERVING:
                self.observer_sync_time.add(now - self._decided)
            if self._unavailable_since is not None:
                self.unavailable_time.add(now - self._unavailable_since)
                if soft.state == LEADING:
                    self.leader_unavailable_time.add(now - self._unavailable_since)
                self._unavailable_since = None


def _add_latencies(summary: Quantiles, now: int, times: list[int]) -> None:
    """`now` minus each of `times`, one add_many per distinct time (a clock that went back
    gives no sample).  Mostly the txns of a batch were prepped in one millisecond: then
    list.count (C) tells, and Counter (whose constructor is Python) is not needed."""
    t = times[0]
    if times.count(t) == len(times):
        if now >= t:
            summary.add_many(now - t, len(times))
        return
    for t, k in Counter(times).items():
        if now >= t:
            summary.add_many(now - t, k)
