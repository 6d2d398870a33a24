"""Durability for the server: recovery, group commit on a writer thread, snapshots, purge.

Group commit (like ZooKeeper's SyncRequestProcessor): txns committed while a write+fsync
is running wait in a queue and go to disk together in the next batch (at most
`MAX_BATCH`).  Only after a batch's fsync returns are its txns applied and answered, so
no response ever leaves for a write that is not on disk.

Snapshots: see snapshotter.py.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import structlog

from ..consensus import snapshot as snapshots
from ..consensus.records import encode_txn, frame
from ..consensus.txnlog import TxnLog, read_log, read_segment, segments
from ..tree.datatree import DataTree, Txn
from .snapshotter import Snapshotter

log = structlog.get_logger("zkpy.persistence")

MAX_BATCH = 1000


def data_paths(data_dir: str, data_log_dir: str | None) -> tuple[str, str]:
    """(snapshot dir, log dir): ZooKeeper's version-2 sub-directories."""
    return os.path.join(data_dir, "version-2"), os.path.join(data_log_dir or data_dir, "version-2")


def recover(data_dir: str, data_log_dir: str | None) -> DataTree:
    """Newest valid snapshot + every logged txn after it.  Cuts a torn tail; raises LogCorrupt."""
    with snapshots.collector_paused():
        return _recover(data_dir, data_log_dir)


def _recover(data_dir: str, data_log_dir: str | None) -> DataTree:
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
                 apply: Callable[[Txn, Any], None], fail: Callable[[Txn, Any], None],
                 purge_retain: int | None = None) -> None:
        self.snap_dir, self.log_dir = data_paths(data_dir, data_log_dir)
        self.log = TxnLog(self.log_dir, force_sync=force_sync)
        self._apply = apply
        self._fail = fail
        self.queue: list[tuple[Txn, Any]] = []
        self.inflight: list[tuple[Txn, Any]] = []
        self.failed: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zkpy-log")
        self._scheduled = False
        # The roll is queued behind the batch being written, if any: the new segment starts
        # after the snapshot's zxid.
        self.snapshotter = Snapshotter(
            self.snap_dir, snap_count, lambda: self._writer.submit(self.log.roll),
            (lambda: purge(data_dir, data_log_dir, purge_retain)) if purge_retain else None)
        self.batches = 0
        self.txns_logged = 0
        self.after_batch: Callable[[], None] = lambda: None

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
        self.snapshotter.applied(len(batch))
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
        if self.failed:
            return False
        return self.snapshotter.maybe(tree)

    def close(self) -> None:
        self.snapshotter.reap(block=True)
        self._writer.submit(self.log.close).result()
        self._writer.shutdown(wait=True)
