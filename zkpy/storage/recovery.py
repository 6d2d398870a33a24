"""Recovery and purging of a data dir: the newest valid snapshot plus the log after it."""

from __future__ import annotations

import os
import time

from . import snapshot as snapshots
from .txnlog import log_records, read_segment, segments
from ..logs import get_logger
from ..tree.datatree import DataTree

log = get_logger("zkpy.recovery")


def data_paths(data_dir: str, data_log_dir: str | None) -> tuple[str, str]:
    """(snapshot dir, log dir): ZooKeeper's version-2 sub-directories."""
    return os.path.join(data_dir, "version-2"), os.path.join(data_log_dir or data_dir, "version-2")


def recover(data_dir: str, data_log_dir: str | None, repair: bool = True) -> DataTree:
    """Newest valid snapshot + every logged txn after it; raises LogCorrupt.  Cuts a torn tail
    unless `repair` is off (`zkpy check` reads and reports, and leaves the files as they are)."""
    return recover_with_log(data_dir, data_log_dir, repair=repair)[0]


def recover_with_log(data_dir: str, data_log_dir: str | None, timings: dict[str, int] | None = None,
                     repair: bool = True) -> tuple[DataTree, list[tuple[int, bytes]]]:
    """The recovered tree and the (zxid, record) entries replayed into it, for ZAB: the log
    is read once.  `timings` gets ZooKeeper's startup measures: `snap_ms` (loading the
    snapshot), `txns` and `txns_ms` (replaying the log after it)."""
    with snapshots.collector_paused():
        return _recover(data_dir, data_log_dir, {} if timings is None else timings, repair)


def _recover(data_dir: str, data_log_dir: str | None, timings: dict[str, int],
             repair: bool) -> tuple[DataTree, list[tuple[int, bytes]]]:
    snap_dir, log_dir = data_paths(data_dir, data_log_dir)
    started = time.monotonic()
    tree = snapshots.load_latest(snap_dir) or DataTree()
    loaded = time.monotonic()
    snap_zxid = tree.last_zxid
    entries = []
    for txn, record in log_records(log_dir, tree.last_zxid, repair=repair):
        tree.apply(txn)  # (result, events): no watcher exists yet, so there are no events
        entries.append((txn.zxid, record))
    count = len(entries)
    timings.update(snap_ms=int((loaded - started) * 1000), txns=count,
                   txns_ms=int((time.monotonic() - loaded) * 1000))
    segs = segments(log_dir)
    if repair and segs and not any(True for _ in read_segment(segs[-1][1], True)):
        os.unlink(segs[-1][1])  # the newest segment held nothing but a torn write
    log.info("recovered", snapshot_zxid=hex(snap_zxid), replayed=count, last_zxid=hex(tree.last_zxid),
             nodes=len(tree.nodes), sessions=len(tree.sessions))
    return tree, entries


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
