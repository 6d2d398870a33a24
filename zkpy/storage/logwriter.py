"""The one group commit (ZooKeeper's SyncRequestProcessor), for every mode and the simulator.

Entries handed out by ZAB queue here; while one batch is being written and synced the next
ones wait, and go to disk together (at most `MAX_BATCH` records a batch).  Only when a
batch's write and sync have returned is `on_durable(last zxid)` called, in order, so ZAB
acks (and the leader commits) nothing that is not on disk.

A failed write or sync is final: the batch and everything queued behind it are dropped,
`on_failed(error)` is called once, and nothing is ever reported durable again.  Reporting a
later batch durable would claim the failed one too (acks are cumulative): the member must
leave the ensemble (or, standalone, refuse writes) and recover from its disk on restart.

Pure logic: the bytes go to a `LogDevice`, which runs the write wherever it likes (a
writer thread in production, at once in memory, at a simulated moment in the simulator)
and calls back with the outcome.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Protocol

from ..summary import Quantiles, Summary
from .records import frame

MAX_BATCH = 1000

# Test-only broken build (the simulator must catch it): report each batch durable as soon as it
# is handed to the device, before it was written.  Off in every real build; read once a batch.
BROKEN_DURABLE_BEFORE_WRITE = False

Done = Callable[[BaseException | None], None]


class LogDevice(Protocol):
    def write(self, data: bytes, first_zxid: int, done: Done) -> None:
        """Append framed records and make them durable; then `done(None)` or `done(error)`.
        The writer never has two writes outstanding."""

    def truncate(self, zxid: int) -> None:
        """Forget every record after `zxid` (after the outstanding write, if any, ended)."""

    def reset(self) -> None:
        """Forget the whole log (a leader's snapshot replaces it)."""


class LogWriter:
    """ZooKeeper's SyncRequestProcessor metrics are kept here, on batches: with a `clock` (ms),
    each append (one per Ready pass) is timed, so a record's queue time and its queue-and-flush
    time are those of its append, counted once per record; without one (the simulator) only
    the counts are kept."""

    def __init__(self, device: LogDevice, on_durable: Callable[[int], None],
                 on_failed: Callable[[BaseException], None], clock: Callable[[], int] | None = None) -> None:
        self.device = device
        self.on_durable = on_durable
        self.on_failed = on_failed
        self.queue: list[tuple[int, bytes]] = []
        self.writing = 0  # records in the outstanding write
        self.failed: BaseException | None = None
        self.generation = 0  # bumped by reset: a write of an older log reports nothing
        self.cap = 1 << 64  # a truncation point that fell inside the outstanding write
        self.durable_zxid = 0
        self.unknown_from = self.unknown_to = 0  # after a failure: zxids whose fate is unknown
        self.clock = clock
        self.queued = 0  # sync_processor_request_queued: records handed to the writer
        self.batch_size = Summary()  # sync_processor_batch_size: records per write+sync
        self.queue_size = Summary()  # sync_processor_queue_size: records waiting, at each append
        self.queue_time = Quantiles()  # sync_processor_queue_time_ms: append -> its batch starts (per record)
        self.flush_time = Quantiles()  # sync_processor_queue_flush_time_ms: a batch's write+sync
        self.queue_and_flush = Quantiles()  # sync_processor_queue_and_flush_time_ms: append -> durable (per record)
        self._marks: deque[list[int]] = deque()  # [records, append ms] of the queue, oldest first
        self._batch_marks: list[list[int]] = []  # those of the outstanding write
        self._started_ms = 0

    def reset_metrics(self) -> None:
        """srst: the SyncRequestProcessor metrics start again (the log's state is untouched)."""
        self.queued = 0
        for s in (self.batch_size, self.queue_size, self.queue_time, self.flush_time, self.queue_and_flush):
            s.reset()

    @property
    def batches(self) -> int:
        return self.batch_size.count

    @property
    def records(self) -> int:
        return self.batch_size.total

    @property
    def outstanding(self) -> int:
        """Records handed to the writer and not yet durable (globalOutstandingLimit counts them)."""
        return len(self.queue) + self.writing

    def append(self, entries: list[tuple[int, bytes]]) -> None:
        if self.failed is not None:
            return
        self.queue.extend(entries)
        self.queued += len(entries)
        self.queue_size.add(len(self.queue))
        if self.clock is not None:
            self._marks.append([len(entries), self.clock()])
        if not self.writing:
            self._start()

    def _start(self) -> None:
        queue = self.queue
        if not queue or self.failed is not None:
            return
        if len(queue) > MAX_BATCH:
            batch = queue[:MAX_BATCH]
            del queue[:MAX_BATCH]
        else:
            batch, self.queue = queue, []
        self.writing = len(batch)
        if self.clock is not None:
            self._time_start(len(batch))
        last = batch[-1][0]
        generation = self.generation
        data = b"".join([frame(record) for _, record in batch])
        if BROKEN_DURABLE_BEFORE_WRITE and last > self.durable_zxid:
            self.durable_zxid = last
            self.on_durable(last)
        self.device.write(data, batch[0][0], lambda error: self._done(error, last, generation))

    def _done(self, error: BaseException | None, last: int, generation: int) -> None:
        if generation != self.generation:
            return  # its log was replaced by a snapshot while it was written: it proves nothing
        written, self.writing = self.writing, 0
        if self.failed is not None:
            return
        if error is not None:
            # The records of this write may or may not be on disk (a failed fsync says
            # nothing of what reached it); those queued behind it never went anywhere.
            self.failed = error
            self.queue = []
            self.unknown_from = self.durable_zxid + 1
            self.unknown_to = last
            self.on_failed(error)
            return
        # A truncation while it was written cut its tail: only what is left below the cut is
        # durable (what ZAB appended after the cut at the same zxids is not in this write).
        last, self.cap = min(last, self.cap), 1 << 64
        self.batch_size.add(written)
        if self.clock is not None:
            self._time_done()
        if last > self.durable_zxid:
            self.durable_zxid = last
            self.on_durable(last)
        self._start()

    def _time_start(self, n: int) -> None:
        """The marks of the batch's `n` records move to the outstanding write (a mark split
        between two batches is split with them); their queue time is counted."""
        now = self._started_ms = self.clock()  # type: ignore[misc]
        marks, taken = self._marks, []
        while n > 0 and marks:
            mark = marks[0]
            k = min(n, mark[0])
            taken.append([k, mark[1]])
            self.queue_time.add_many(now - mark[1], k)
            n -= k
            mark[0] -= k
            if not mark[0]:
                marks.popleft()
        self._batch_marks = taken

    def _time_done(self) -> None:
        now = self.clock()  # type: ignore[misc]
        self.flush_time.add(now - self._started_ms)
        for k, t in self._batch_marks:
            self.queue_and_flush.add_many(now - t, k)
        self._batch_marks = []

    def truncate(self, zxid: int) -> None:
        """A TRUNC from a new leader: queued records after `zxid` go, and so does the file tail
        (the device waits for the outstanding write first)."""
        self.queue = [e for e in self.queue if e[0] <= zxid]
        self._marks.clear()  # which records went is not worth tracking: the rest go untimed
        if self.writing:
            self.cap = min(self.cap, zxid)
        self.device.truncate(zxid)
        self.durable_zxid = min(self.durable_zxid, zxid)
        if not self.writing:
            self._start()

    def reset(self, zxid: int) -> None:
        """A SNAP from a leader up to `zxid`: the whole log is replaced by the snapshot."""
        self.generation += 1
        self.writing = 0
        self.cap = 1 << 64
        self.queue = []
        self._marks.clear()
        self._batch_marks = []
        self.device.reset()
        self.durable_zxid = zxid
