"""A member's simulated disk: the log as framed bytes, snapshots, epochs, and the faults of real disks.

Why bytes and not a list of entries: recovery here parses the log with the production
framing (`records.frame` / `records.check`), so a torn tail is cut where a real one would be
and a flipped bit is caught by the CRC, or the simulation says it was applied silently.

- A write (the LogWriter's batch: write + fsync) completes a few simulated steps after it was
  handed out, so batches queue behind it and group commit forms.
- Only synced bytes survive a crash; the batch in flight (or one whose write/sync failed)
  leaves a random prefix of its bytes: a torn tail, possibly with whole records in it.
- ENOSPC (on write) and EIO (on fsync) fail a batch at random; the member must stop acking.
- A bit flips in an old record's payload at random moments.  `pristine` keeps what was
  written, so recovery can tell a detected corruption (it then restores the record, as an
  operator restoring from backup would, and counts it) from one applied silently (a failure).
- Epochs and snapshots are durable when written (the real `snapshot_bytes` / `load_snapshot`).
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass
from typing import Callable

import msgpack

from ..storage import snapshot as snapshots
from ..storage.logwriter import Done
from ..storage.records import FRAME, check, decode_txn
from ..tree.datatree import DataTree


class StorageBroken(AssertionError):
    """Recovery applied a record that is not what was written, or found a hole in the log."""


@dataclass
class DiskFaults:
    delay: int = 3  # a batch completes 1..delay steps after it was handed out
    enospc: float = 0.0  # per batch
    eio: float = 0.0  # per batch (the fsync fails: the bytes may or may not be on disk)
    keep_snapshots: int = 2


@dataclass
class Stats:
    batches: int = 0
    records: int = 0
    failures: int = 0
    torn: int = 0
    flips: int = 0
    detected: int = 0


class SimDisk:
    """What survives a crash of one member."""

    def __init__(self) -> None:
        self.log = bytearray()  # framed records as on disk (flipped bits included)
        self.pristine = bytearray()  # the same bytes as they were written
        self.index: list[tuple[int, int, int]] = []  # (zxid, start, end) of each whole record
        self.zxids: set[int] = set()
        self.snapshots: list[tuple[int, bytes]] = []  # oldest first
        self.epochs = (0, 0)
        self.limbo = b""  # bytes of a failed batch: written perhaps, never synced
        self.removals = 0  # bumped whenever records leave the disk (truncation, reset, purge)
        self.stats = Stats()

    @property
    def snapshot_zxid(self) -> int:
        return self.snapshots[-1][0] if self.snapshots else 0

    def durable(self, zxid: int) -> bool:
        return zxid in self.zxids or zxid <= self.snapshot_zxid

    def append(self, data: bytes) -> None:
        """Bytes reach the platter; whole records among them are indexed."""
        base = len(self.log)
        self.log += data
        self.pristine += data
        pos = 0
        while pos + FRAME.size <= len(data):
            length, _ = FRAME.unpack_from(data, pos)
            end = pos + FRAME.size + length
            if end > len(data):
                break
            zxid = msgpack.unpackb(data[pos + FRAME.size:end], raw=False)[0]
            self.index.append((zxid, base + pos, base + end))
            self.zxids.add(zxid)
            pos = end

    def _cut(self, keep: int, start: int) -> None:
        """Keep index[:keep]; the bytes from `start` on go."""
        del self.log[start:]
        del self.pristine[start:]
        gone = self.index[keep:]
        del self.index[keep:]
        for zxid, _, _ in gone:
            self.zxids.discard(zxid)
        self.removals += 1

    def truncate(self, zxid: int) -> None:
        """Every record after `zxid` goes (rewritten durably, as txnlog.truncate_log does)."""
        self.limbo = b""
        for i, (z, start, _) in enumerate(self.index):
            if z > zxid:
                self._cut(i, start)
                return
        if len(self.log) > (self.index[-1][2] if self.index else 0):
            self._cut(len(self.index), self.index[-1][2] if self.index else 0)

    def clear_log(self) -> None:
        self.limbo = b""
        self._cut(0, 0)

    def purge(self, zxid: int) -> None:
        """Records up to `zxid` (all in a kept snapshot) go, as autopurge deletes old segments."""
        n = 0
        while n < len(self.index) and self.index[n][0] <= zxid:
            n += 1
        if not n:
            return
        cut = self.index[n][1] if n < len(self.index) else len(self.log)
        del self.log[:cut]
        del self.pristine[:cut]
        for z, _, _ in self.index[:n]:
            self.zxids.discard(z)
        self.index = [(z, s - cut, e - cut) for z, s, e in self.index[n:]]
        self.removals += 1

    def crash(self, rng: random.Random, in_flight: bytes) -> None:
        """Power is cut: of the unsynced bytes a random prefix made it (a torn tail)."""
        tail = self.limbo or in_flight
        self.limbo = b""
        if tail:
            keep = rng.randint(0, len(tail))
            if keep:
                self.append(tail[:keep])
                self.stats.torn += keep < len(tail)

    def flip_bit(self, rng: random.Random) -> bool:
        """One bit of an old record's payload flips (never the last record: a bad last record
        is what a torn write looks like, and recovery rightly cuts it)."""
        if len(self.index) < 2:
            return False
        _, start, end = self.index[rng.randrange(len(self.index) - 1)]
        if end - start <= FRAME.size:
            return False
        pos = rng.randrange(start + FRAME.size, end)
        self.log[pos] ^= 1 << rng.randrange(8)
        self.stats.flips += 1
        return True


def parse_log(data: bytes | bytearray) -> tuple[list[tuple[bytes, int, int]], int | None, tuple[int, int] | None]:
    """(whole good records (payload, start, end), offset of a torn tail, (start, end) of the first
    record whose CRC fails).  A record that does not fit in the file is a torn tail."""
    records = []
    pos = 0
    size = len(data)
    while pos < size:
        if pos + FRAME.size > size:
            return records, pos, None
        length, crc = FRAME.unpack_from(data, pos)
        end = pos + FRAME.size + length
        if end > size:
            return records, pos, None
        payload = bytes(data[pos + FRAME.size:end])
        if not check(payload, crc):
            return records, None, (pos, end)
        records.append((payload, pos, end))
        pos = end
    return records, None, None


def recover(disk: SimDisk, upto: int | None = None) -> tuple[DataTree, list[tuple[int, bytes]]]:
    """The newest snapshot (at most `upto`) plus the log after it, as recovery.recover_with_log:
    a torn tail is cut, a corrupt record is caught by its CRC and restored from backup."""
    while True:
        records, torn, corrupt = parse_log(disk.log)
        if corrupt is None:
            break
        start, end = corrupt
        if disk.log[start:end] == disk.pristine[start:end]:
            raise StorageBroken(f"a record written intact fails its CRC at offset {start}")
        disk.log[start:end] = disk.pristine[start:end]  # the operator restores it from a backup
        disk.stats.detected += 1
    if torn is not None:
        whole = sum(1 for _, _, end in disk.index if end <= torn)
        disk._cut(whole, torn)
    if [(s, e) for _, s, e in records] != [(s, e) for _, s, e in disk.index]:
        raise StorageBroken("the records recovery found are not the records written")
    for payload, start, end in records:
        if payload != disk.pristine[start + FRAME.size:end]:
            raise StorageBroken(f"a corrupt record at offset {start} was applied silently")
    snaps = [s for s in disk.snapshots if upto is None or s[0] <= upto]
    tree = snapshots.load_snapshot("<sim>", snaps[-1][1]) if snaps else DataTree()
    tail: list[tuple[int, bytes]] = []
    last = tree.last_zxid
    for payload, _, _ in records:
        txn = decode_txn(payload)
        if txn.zxid <= tree.last_zxid or (upto is not None and txn.zxid > upto):
            continue
        if txn.zxid != last + 1 and txn.zxid & 0xFFFFFFFF != 1:
            raise StorageBroken(f"gap in the log: {txn.zxid:#x} follows {last:#x}")
        last = txn.zxid
        tree.apply(txn)
        tail.append((txn.zxid, payload))
    return tree, tail


class _Write:
    __slots__ = ("data", "done", "due", "outcome", "landed")

    def __init__(self, data: bytes, done: Done, due: int) -> None:
        self.data = data
        self.done = done
        self.due = due
        self.outcome: BaseException | None = None
        self.landed = False


class SimLogDevice:
    """A LogDevice whose batches complete at a later simulated step, or fail."""

    def __init__(self, disk: SimDisk, rng: random.Random, faults: DiskFaults, step: Callable[[], int]) -> None:
        self.disk = disk
        self.rng = rng
        self.faults = faults
        self.step = step
        self.in_flight: _Write | None = None
        self.orphans: list[_Write] = []  # writes of a log a snapshot replaced: they report, uselessly

    def write(self, data: bytes, first_zxid: int, done: Done) -> None:
        assert self.in_flight is None, "the LogWriter never has two writes outstanding"
        self.in_flight = _Write(data, done, self.step() + self.rng.randint(1, self.faults.delay))

    def _land(self, w: _Write) -> None:
        """Decide how the write ends; good bytes reach the disk now."""
        if w.landed:
            return
        w.landed = True
        f, r = self.faults, self.rng.random()
        disk = self.disk
        if r < f.enospc:
            w.outcome = OSError(errno.ENOSPC, "No space left on device (simulated write)")
            disk.limbo = w.data[: self.rng.randint(0, len(w.data))]
        elif r < f.enospc + f.eio:
            w.outcome = OSError(errno.EIO, "Input/output error (simulated fsync)")
            disk.limbo = w.data
        else:
            disk.append(w.data)
            disk.stats.batches += 1
        if w.outcome is not None:
            disk.stats.failures += 1

    def due(self, step: int) -> bool:
        return bool(self.orphans) or (self.in_flight is not None and self.in_flight.due <= step)

    def complete(self, step: int) -> None:
        """Report every write whose moment has come (the member's loop runs the callbacks)."""
        orphans, self.orphans = self.orphans, []
        for w in orphans:
            w.done(None)
        w = self.in_flight
        if w is not None and w.due <= step:
            self._land(w)
            self.in_flight = None
            w.done(w.outcome)

    def truncate(self, zxid: int) -> None:
        # As ThreadedLog.truncate: the outstanding write ends first, then the file is cut.
        if self.in_flight is not None:
            self._land(self.in_flight)
        self.disk.truncate(zxid)

    def reset(self) -> None:
        if self.in_flight is not None:
            self.orphans.append(self.in_flight)  # its bytes are unlinked with the log
            self.in_flight.landed = True
            self.in_flight = None
        self.disk.clear_log()

    def crash(self) -> None:
        w = self.in_flight
        self.disk.crash(self.rng, w.data if w is not None and not w.landed else b"")
        self.in_flight = None
        self.orphans = []


@dataclass
class SnapshotPolicy:
    every: tuple[int, int] = (20, 80)  # applied txns between snapshots (random in the range)
    since: int = 0
    threshold: int = 50
    taken: int = 0


class SimStorage:
    """member.Storage over a SimDisk: what DataDir does, at simulated moments."""

    def __init__(self, disk: SimDisk, rng: random.Random, faults: DiskFaults, step: Callable[[], int]) -> None:
        self.disk = disk
        self.rng = rng
        self.faults = faults
        self.log = SimLogDevice(disk, rng, faults, step)
        self.policy = SnapshotPolicy(threshold=rng.randint(*SnapshotPolicy.every))

    def write_epochs(self, accepted: int, current: int) -> None:
        self.disk.epochs = (accepted, current)

    def applied(self, count: int) -> None:
        self.policy.since += count

    def maybe_snapshot(self, tree: DataTree) -> None:
        p = self.policy
        if p.since < p.threshold:
            return
        p.since = 0
        p.threshold = self.rng.randint(*p.every)
        p.taken += 1
        self._add_snapshot(tree)
        keep = self.faults.keep_snapshots
        if len(self.disk.snapshots) >= keep and self.rng.random() < 0.5:
            self.disk.purge(self.disk.snapshots[-keep][0])  # autopurge

    def _add_snapshot(self, tree: DataTree) -> None:
        disk = self.disk
        disk.snapshots = [s for s in disk.snapshots if s[0] < tree.last_zxid]
        disk.snapshots.append((tree.last_zxid, snapshots.snapshot_bytes(tree)))
        del disk.snapshots[: -self.faults.keep_snapshots]

    def install_snapshot(self, tree: DataTree) -> None:
        self.disk.snapshots = [(tree.last_zxid, snapshots.snapshot_bytes(tree))]

    def rebuild(self, zxid: int) -> DataTree:
        self.disk.snapshots = [s for s in self.disk.snapshots if s[0] <= zxid]
        return recover(self.disk, zxid)[0]
