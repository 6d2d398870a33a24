"""Periodic snapshots by a forked child, shared by the standalone server and ensemble members.

After about snapCount applied txns (randomised between half and all of it, as in ZooKeeper,
so that the servers of an ensemble do not all snapshot at once) the log is rolled and a
child process writes the copy-on-write image of the tree, exact as of its last applied
zxid; service goes on meanwhile.  After each snapshot, files older than the newest
`retain` snapshots need are purged when autopurge is on.
"""

from __future__ import annotations

import os
import random
import resource
import time
from typing import Callable

from . import snapshot as snapshots
from ..logs import get_logger
from ..summary import Summary
from ..tree.datatree import DataTree

log = get_logger("zkpy.snapshots")


class Snapshotter:
    def __init__(self, snap_dir: str, snap_count: int, roll_log: Callable[[], None],
                 purge: Callable[[], list[str]] | None = None) -> None:
        self.snap_dir = snap_dir
        self.snap_count = snap_count
        self.roll_log = roll_log  # must close the log segment in order with the log writes
        self.purge = purge
        self.since = 0
        self.threshold = self._next_threshold()
        self.pid: int | None = None
        self.taken = 0
        self.snapshot_time = Summary()  # ZooKeeper's snapshottime: ms from the start to the child's exit
        self._writing: tuple[str, str, float] = ("", "", 0.0)  # (zxid, file, start) of the child's snapshot

    def _next_threshold(self) -> int:
        half = max(self.snap_count // 2, 1)
        return half + random.randint(0, half)

    def applied(self, count: int) -> None:
        self.since += count

    def maybe(self, tree: DataTree) -> bool:
        """Start a snapshot if enough txns went by and none is being written."""
        self.reap()
        if self.since < self.threshold or self.pid is not None:
            return False
        self.take(tree)
        return True

    def take(self, tree: DataTree) -> None:
        self.since = 0
        self.threshold = self._next_threshold()
        self.roll_log()
        pid = os.fork()
        if pid == 0:  # child: a frozen copy of the tree; write it and leave
            code = 1
            try:
                os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
                snapshots.write_snapshot(tree, self.snap_dir)
                code = 0
            except BaseException as e:  # noqa: BLE001 - the parent only sees the exit status
                log.error("writing the snapshot failed", zxid=hex(tree.last_zxid), error=str(e))
            finally:
                os._exit(code)
        self.pid = pid
        self._writing = (hex(tree.last_zxid), snapshots.snapshot_path(self.snap_dir, tree.last_zxid), time.monotonic())
        log.info("snapshot started", zxid=self._writing[0], file=self._writing[1], pid=pid)

    def reap(self, block: bool = False) -> None:
        """Collect a finished snapshot child (or wait for it); purge after a good one."""
        if self.pid is None:
            return
        pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return
        self.pid = None
        if os.waitstatus_to_exitcode(status) != 0:
            log.error("snapshot child failed", status=status)
            return
        self.taken += 1
        zxid, path, started = self._writing
        took = round((time.monotonic() - started) * 1000)
        self.snapshot_time.add(took)
        log.info("snapshot taken", zxid=zxid, file=path, ms=took)
        if self.purge is not None:
            removed = self.purge()
            if removed:  # ZooKeeper's PurgeTxnLog: "Removing file: ..." for each
                log.info("purged old snapshots and logs", removed=[os.path.basename(p) for p in removed])
