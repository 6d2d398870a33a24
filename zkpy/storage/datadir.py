"""A member's dataDir: the log device on a writer thread, epochs, snapshots, truncation.

ZooKeeper's layout: `version-2/` under dataDir holds snapshots and the epoch files
(`acceptedEpoch`, `currentEpoch`), and under dataLogDir (default: dataDir) the log segments.
The blocking file I/O of the log runs on one writer thread, in order; its outcome is handed
back through `post` (the event loop's call_soon_threadsafe), never on the writer thread.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from ..logs import get_logger
from . import faults as disk_faults
from . import snapshot as snapshots
from .files import durable_replace, fsync_dir
from .logwriter import Done
from .recovery import data_paths, purge, recover
from .snapshotter import Snapshotter
from .txnlog import TxnLog, segments, truncate_log
from ..summary import Summary
from ..tree.datatree import DataTree

log = get_logger("zkpy.datadir")


def read_myid(data_dir: str) -> int:
    with open(os.path.join(data_dir, "myid")) as f:
        return int(f.read().strip())


class ThreadedLog:
    """The transaction log as a LogDevice: append + sync on a writer thread."""

    def __init__(self, log_dir: str, force_sync: bool, post: Callable[[Callable[[], None]], None]) -> None:
        self.txlog = TxnLog(log_dir, force_sync=force_sync)
        self.log_dir = log_dir
        self.post = post
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zkpy-log")
        self.faults = None  # a server/faults.py FaultTable while it has rules: asked once a batch
        self.fsync_time = Summary()  # ZooKeeper's fsynctime: ms of each batch's fsync (forceSync only)

    def write(self, data: bytes, first_zxid: int, done: Done) -> None:
        fault = self.faults.on_log_write() if self.faults is not None else None  # decided on the loop
        fut = self.thread.submit(self._write, data, first_zxid, fault)
        fut.add_done_callback(lambda f: self.post(lambda: done(f.exception())))

    def _write(self, data: bytes, first_zxid: int, fault: object = None) -> None:
        if fault is not None:
            disk_faults.log_write(fault, lambda: self.txlog.append(data, first_zxid), self.txlog.sync)
            return
        txlog = self.txlog
        txlog.append(data, first_zxid)
        if txlog.force_sync:
            started = time.monotonic()
            txlog.sync()
            self.fsync_time.add(int((time.monotonic() - started) * 1000))  # on the writer thread only
        else:
            txlog.sync()

    def run(self, fn: Callable[[], object]) -> Future:
        """Run `fn` on the writer thread, after every write handed out before it."""
        return self.thread.submit(fn)

    def roll(self) -> None:
        """On the writer thread, after the writes before it: the next append opens a new segment."""
        txlog = self.txlog
        if txlog.fd is not None:
            txlog.roll()
            log.info("log rolled", file=txlog.path)  # the segment just closed

    def truncate(self, zxid: int) -> None:
        self.run(self.txlog.roll).result()
        truncate_log(self.log_dir, zxid)

    def reset(self) -> None:
        self.run(self.txlog.roll).result()
        for _, path in segments(self.log_dir):
            os.unlink(path)
        fsync_dir(self.log_dir)

    def close(self) -> None:
        self.run(self.txlog.close).result()
        self.thread.shutdown(wait=True)


class DataDir:
    """What a member keeps on disk, for `Member` (see member.Storage)."""

    def __init__(self, data_dir: str, data_log_dir: str | None, force_sync: bool, snap_count: int,
                 purge_retain: int | None, post: Callable[[Callable[[], None]], None]) -> None:
        self.data_dir = data_dir
        self.data_log_dir = data_log_dir
        self.snap_dir, log_dir = data_paths(data_dir, data_log_dir)
        os.makedirs(self.snap_dir, exist_ok=True)
        self.log = ThreadedLog(log_dir, force_sync, post)
        # The roll is queued behind the batch being written, if any: the new segment starts
        # after the snapshot's zxid.
        self.snapshotter = Snapshotter(
            self.snap_dir, snap_count, lambda: self.log.run(self.log.roll),
            (lambda: purge(data_dir, data_log_dir, purge_retain)) if purge_retain else None)

    # ------------------------------------------------------------ epochs

    def read_epochs(self) -> tuple[int, int]:
        return self._read_epoch("acceptedEpoch"), self._read_epoch("currentEpoch")

    def _read_epoch(self, name: str) -> int:
        try:
            with open(os.path.join(self.snap_dir, name)) as f:
                return int(f.read().strip())
        except FileNotFoundError:
            return 0

    def write_epochs(self, accepted: int, current: int) -> None:
        durable_replace(os.path.join(self.snap_dir, "acceptedEpoch"), str(accepted).encode())
        durable_replace(os.path.join(self.snap_dir, "currentEpoch"), str(current).encode())

    # ------------------------------------------------------------ snapshots

    def applied(self, count: int) -> None:
        self.snapshotter.applied(count)

    def maybe_snapshot(self, tree: DataTree) -> None:
        self.snapshotter.maybe(tree)

    def install_snapshot(self, tree: DataTree) -> None:
        """A leader's SNAP (the log is already reset): its state is our only snapshot."""
        self.snapshotter.reap(block=True)  # no older snapshot may land after ours
        for _, path in snapshots.snapshots(self.snap_dir):
            os.unlink(path)
        path = snapshots.write_snapshot(tree, self.snap_dir)  # its directory fsync covers the removals too
        log.info("snapshot taken", zxid=hex(tree.last_zxid), file=path, source="leader")

    def rebuild(self, zxid: int) -> DataTree:
        """After a TRUNC to `zxid` (the log is already cut): the tree from what is on disk."""
        self.snapshotter.reap(block=True)
        for snap_zxid, path in snapshots.snapshots(self.snap_dir):
            if snap_zxid > zxid:
                os.unlink(path)
        fsync_dir(self.snap_dir)  # a removed snapshot must not come back with the txns TRUNC dropped
        return recover(self.data_dir, self.data_log_dir)

    def close(self) -> None:
        self.snapshotter.reap(block=True)
        self.log.close()


class MemoryLog:
    """No dataDir (`zkpy serve` alone): every write is durable at once."""

    def write(self, data: bytes, first_zxid: int, done: Done) -> None:
        done(None)

    def truncate(self, zxid: int) -> None:
        raise RuntimeError("an in-memory server is standalone: nothing truncates its log")

    def reset(self) -> None:
        raise RuntimeError("an in-memory server is standalone: no leader sends it a snapshot")


class Memory:
    """A standalone server's storage without a dataDir: the tree lives in memory only."""

    def __init__(self) -> None:
        self.log = MemoryLog()

    def write_epochs(self, accepted: int, current: int) -> None:
        pass

    def install_snapshot(self, tree: DataTree) -> None:
        raise RuntimeError("an in-memory server is standalone")

    def rebuild(self, zxid: int) -> DataTree:
        raise RuntimeError("an in-memory server is standalone")

    def applied(self, count: int) -> None:
        pass

    def maybe_snapshot(self, tree: DataTree) -> None:
        pass

    def close(self) -> None:
        pass
