"""Durability for the server: recovery, group commit on a writer thread, snapshots, purge.

Group commit (like ZooKeeper's SyncRequestProcessor): txns committed while a write+fsync
is running wait in a queue and go to disk together in the next batch (at most
`MAX_BATCH`).  Only after a batch's fsync returns are its txns applied and answered, so
no response ever leaves for a write that is not on disk.

Snapshots are written by a forked child from a copy-on-write image of the tree, exact as
of the last applied zxid; the log is rolled at the same point.  Service goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import structlog

from ..consensus import snapshot as snapshots
from ..consensus.records import encode_txn, frame
from ..consensus.txnlog import TxnLog, read_log, read_segment, segments
from ..tree.datatree import DataTree, Txn

log = structlog.get_logger("zkpy.persistence")

MAX_BATCH = 1000


def data_paths(data_dir: str, data_log_dir: str | None) -> tuple[str, str]:
    """(snapshot dir, log dir): ZooKeeper's version-2 sub-directories."""
    return os.path.join(data_dir, "version-2"), os.path.join(data_log_dir or data_dir, "version-2")


def recover(data_dir: str, data_log_dir: str | None) -> DataTree:
    """Newest valid snapshot + every logged txn after it.  Cuts a torn tail; raises LogCorrupt."""
    snap_dir, log_dir = data_paths(data_dir, data_log_dir)
    tree = snapshots.load_latest(snap_dir) or DataTree()
    snap_zxid = tree.last_zxid
    count = 0
    for txn in read_log(log_dir, tree.last_zxid, repair=True):
        tree.apply(txn)
        count += 1
    segs = segments(log_dir)
    if segs and not any(True for _ in read_segment(segs[-1][1], True)):
        os.unlink(segs[-1][1])  # the newest segment held nothing but a torn write
    log.info("recovered", snapshot_zxid=hex(snap_zxid), replayed=count, last_zxid=hex(tree.last_zxid),
             nodes=len(tree.nodes), sessions=len(tree.sessions))
    return tree


def purge(data_dir: str, data_log_dir: str | None, retain: int = 3) -> list[str]:
    """Delete all but the newest `retain` snapshots and the log segments only they needed."""
    snap_dir, log_dir = data_paths(data_dir, data_log_dir)
    snaps = snapshots.snapshots(snap_dir)
    if len(snaps) <= retain:
        return []
    keep = snaps[:retain]
    oldest_kept = keep[-1][0]
    removed = []
    for _, path in snaps[retain:]:
        os.unlink(path)
        removed.append(path)
    segs = segments(log_dir)
    for i, (first, path) in enumerate(segs[:-1]):
        next_first = segs[i + 1][0]
        if next_first <= oldest_kept + 1:  # every txn of this segment is in the kept snapshots
            os.unlink(path)
            removed.append(path)
    return removed


class Persistence:
    """Queues committed txns, writes and syncs them in batches, then hands them back applied."""

    def __init__(self, data_dir: str, data_log_dir: str | None, force_sync: bool, snap_count: int,
                 apply: Callable[[Txn, Any], None], fail: Callable[[Txn, Any], None]) -> None:
        self.snap_dir, self.log_dir = data_paths(data_dir, data_log_dir)
        self.log = TxnLog(self.log_dir, force_sync=force_sync)
        self.snap_count = snap_count
        self._apply = apply
        self._fail = fail
        self.queue: list[tuple[Txn, Any]] = []
        self.inflight: list[tuple[Txn, Any]] = []
        self.failed: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zkpy-log")
        self._scheduled = False
        self._since_snapshot = 0
        self._snap_threshold = self._next_threshold()
        self.snapshot_pid: int | None = None
        self.batches = 0
        self.txns_logged = 0
        self.after_batch: Callable[[], None] = lambda: None

    def _next_threshold(self) -> int:
        # Randomised as in ZooKeeper so that the servers of an ensemble do not all snapshot at once.
        half = max(self.snap_count // 2, 1)
        return half + random.randint(0, half)

    @property
    def outstanding(self) -> int:
        return len(self.queue) + len(self.inflight)

    def append(self, txn: Txn, origin: Any) -> None:
        if self.failed is not None:
            self._fail(txn, origin)
            return
        self.queue.append((txn, origin))
        if not self.inflight and not self._scheduled:
            self._scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self._start_batch)

    def _start_batch(self) -> None:
        self._scheduled = False
        if self.inflight or not self.queue:
            return
        batch = self.queue[:MAX_BATCH]
        del self.queue[:MAX_BATCH]
        self.inflight = batch
        data = b"".join([frame(encode_txn(t)) for t, _ in batch])
        fut = self.loop.run_in_executor(self._writer, self._write, data, batch[0][0].zxid)
        fut.add_done_callback(self._batch_done)

    def _write(self, data: bytes, first_zxid: int) -> None:
        self.log.append(data, first_zxid)
        self.log.sync()

    def _batch_done(self, fut: asyncio.Future) -> None:
        batch, self.inflight = self.inflight, []
        exc = fut.exception()
        if exc is not None:
            self._enter_failed(f"transaction log write failed: {exc}", batch)
            return
        self.batches += 1
        self.txns_logged += len(batch)
        for txn, origin in batch:
            self._apply(txn, origin)
        self._since_snapshot += len(batch)
        if self.queue:
            self._start_batch()
        self.after_batch()

    def _enter_failed(self, reason: str, batch: list) -> None:
        self.failed = reason
        log.error("no longer accepting writes", reason=reason)
        pending, self.queue = batch + self.queue, []
        for txn, origin in pending:
            self._fail(txn, origin)

    # ------------------------------------------------------------ snapshots

    def maybe_snapshot(self, tree: DataTree) -> bool:
        """Start a snapshot if enough txns went by and none is being written."""
        self.reap()
        if self._since_snapshot < self._snap_threshold or self.snapshot_pid is not None or self.failed:
            return False
        self.snapshot(tree)
        return True

    def snapshot(self, tree: DataTree) -> None:
        self._since_snapshot = 0
        self._snap_threshold = self._next_threshold()
        self._writer.submit(self.log.roll)  # ordered after the batch being written, if any
        pid = os.fork()
        if pid == 0:  # child: a frozen copy of the tree; write it and leave
            code = 1
            try:
                os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
                snapshots.write_snapshot(tree, self.snap_dir)
                code = 0
            finally:
                os._exit(code)
        self.snapshot_pid = pid
        log.info("snapshot started", zxid=hex(tree.last_zxid), pid=pid)

    def reap(self, block: bool = False) -> None:
        if self.snapshot_pid is None:
            return
        pid, status = os.waitpid(self.snapshot_pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return
        self.snapshot_pid = None
        if os.waitstatus_to_exitcode(status) != 0:
            log.error("snapshot child failed", status=status)

    def close(self) -> None:
        self.reap(block=True)
        self._writer.submit(self.log.close).result()
        self._writer.shutdown(wait=True)
