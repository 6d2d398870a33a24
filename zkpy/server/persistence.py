"""Durability for the server: recovery, group commit on a writer thread, snapshots, purge.

Group commit (like ZooKeeper's SyncRequestProcessor): txns committed while a write+fsync
is running wait in a queue and go to disk together in the next batch (at most
`MAX_BATCH`).  Only after a batch's fsync returns are its txns applied and answered, so
no response ever leaves for a write that is not on disk.

Snapshots: see snapshotter.py.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import structlog

from ..storage.records import encode_txn, frame
from ..storage.txnlog import TxnLog
from ..storage.recovery import data_paths, purge
from ..tree.datatree import DataTree, Txn
from .snapshotter import Snapshotter

log = structlog.get_logger("zkpy.persistence")

MAX_BATCH = 1000


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
