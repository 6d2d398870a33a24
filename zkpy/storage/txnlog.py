"""The transaction log: segment files of framed msgpack txn records.

Files are `version-2/log.<first zxid in hex>` in dataLogDir, preallocated in large steps
so that appends rarely change the file size (fdatasync then flushes data only).  A
segment ends where its records end: the preallocated tail reads as zeros.

Blocking I/O: the server calls `append`/`sync` from one writer thread.

Recovery rules: a bad record at the end of the newest segment, with nothing but zeros
after it (or a part of a record header, when the file ends there), is a torn write of a
batch that was never acknowledged: it is cut off with a log line.  A bad record anywhere else is corruption: `LogCorrupt` names file and offset
and nothing is changed.
"""

from __future__ import annotations

import os
import re
from zlib import crc32
from typing import Iterator

from ..logs import get_logger
from ..tree.datatree import Txn
from . import faults
from .records import FRAME, check, decode_txn

log = get_logger("zkpy.txnlog")

MAGIC = b"ZKPYLOG1"
PREALLOC = 64 * 1024 * 1024
_NAME = re.compile(r"^log\.([0-9a-f]+)$")


def _grow(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError:
        os.ftruncate(fd, size)  # filesystems without fallocate


# The calls a test can make fail (zkpy/storage/faults.py); the os functions themselves
# unless ZKPY_TEST_DISK_FAULTS is set.
_pwrite = os.pwrite
_fdatasync = os.fdatasync
if faults.ACTIVE is not None:
    _grow = faults.ACTIVE.hooked("prealloc", _grow)
    _pwrite = faults.ACTIVE.hooked("append", _pwrite)
    _fdatasync = faults.ACTIVE.hooked("fsync", _fdatasync)


class LogCorrupt(Exception):
    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt transaction log {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset


def segments(log_dir: str) -> list[tuple[int, str]]:
    """(first zxid, path) of every segment, oldest first."""
    out = []
    if os.path.isdir(log_dir):
        for name in os.listdir(log_dir):
            m = _NAME.match(name)
            if m:
                out.append((int(m.group(1), 16), os.path.join(log_dir, name)))
    return sorted(out)


class TxnLog:
    def __init__(self, log_dir: str, force_sync: bool = True, prealloc: int = PREALLOC) -> None:
        self.dir = log_dir
        os.makedirs(log_dir, exist_ok=True)
        self.force_sync = force_sync
        self.prealloc = prealloc
        self.fd: int | None = None
        self.path: str | None = None
        self.pos = 0
        self.allocated = 0

    # ------------------------------------------------------------ writing

    def _open_segment(self, first_zxid: int) -> None:
        self.close()
        path = os.path.join(self.dir, f"log.{first_zxid:x}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, MAGIC)
        self.fd, self.path, self.pos, self.allocated = fd, path, len(MAGIC), len(MAGIC)
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def append(self, data: bytes, first_zxid: int) -> None:
        """Write already framed records; a new segment starts at `first_zxid` if none is open."""
        if self.fd is None:
            self._open_segment(first_zxid)
        end = self.pos + len(data)
        if end > self.allocated:
            size = ((end // self.prealloc) + 1) * self.prealloc
            _grow(self.fd, size)
            self.allocated = size
        written = _pwrite(self.fd, data, self.pos)
        while written < len(data):  # short writes are rare but legal
            written += os.pwrite(self.fd, data[written:], self.pos + written)
        self.pos = end

    def sync(self) -> None:
        if self.fd is not None and self.force_sync:
            _fdatasync(self.fd)

    def roll(self) -> None:
        """Close the current segment: the next append starts a new one (after a snapshot)."""
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                if self.force_sync:
                    os.fdatasync(fd)
                os.close(fd)
            except OSError as e:
                log.warning("closing the transaction log failed", file=self.path, error=str(e))


# ---------------------------------------------------------------- reading


def _all_zero(f, start: int, size: int) -> bool:
    f.seek(start)
    remaining = size - start
    while remaining > 0:
        chunk = f.read(min(remaining, 1 << 20))
        if not chunk or chunk.count(0) != len(chunk):
            return False
        remaining -= len(chunk)
    return True


def _last_nonzero(f, start: int, size: int) -> int:
    """The offset just past the last non-zero byte in [start, size) (start if none)."""
    end = size
    while end > start:
        lo = max(start, end - (1 << 20))
        f.seek(lo)
        chunk = f.read(end - lo).rstrip(b"\0")
        if chunk:
            return lo + len(chunk)
        end = lo
    return start


def _valid_record_after(f, offset: int, size: int) -> bool:
    """Does a record whose checksum holds start anywhere after the bad one at `offset`?

    A torn write is the log's last batch: nothing valid can follow it.  A bad record with
    valid ones after it is corruption (a flipped bit in a length field makes a record claim
    the zeros past the real end), and cutting there would drop acknowledged txns."""
    end = _last_nonzero(f, offset + 1, size)
    f.seek(offset + 1)
    data = f.read(end - offset - 1)
    unpack = FRAME.unpack_from
    limit = len(data) - FRAME.size
    for p in range(limit + 1):
        length, crc = unpack(data, p)
        if 0 < length <= limit - p and crc32(data[p + FRAME.size:p + FRAME.size + length]) == crc:
            return True
    return False


def read_segment(path: str, is_last: bool, repair: bool = False) -> Iterator[Txn]:
    """Yield the txns of one segment, applying the torn-tail and corruption rules."""
    for txn, _ in segment_records(path, is_last, repair):
        yield txn


def segment_records(path: str, is_last: bool, repair: bool = False) -> Iterator[tuple[Txn, bytes]]:
    """(txn, its record as logged) for each record of one segment: recovery applies the txn
    and hands the record to ZAB as it is, reading the log once."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            if size == 0 and is_last:
                return
            if magic.startswith(b"ZKLG"):
                raise LogCorrupt(path, 0, "bad magic: this is Apache ZooKeeper's log, not zkpy's; convert the "
                                          "dataDir with `zkpy import ZK_DATADIR NEW_DATADIR`")
            raise LogCorrupt(path, 0, "bad magic")
        offset = len(MAGIC)
        while offset + FRAME.size <= size:
            f.seek(offset)
            header = f.read(FRAME.size)
            length, crc = FRAME.unpack(header)
            if length == 0 and crc == 0:
                if _all_zero(f, offset, size):
                    return  # preallocated tail
                reason = "zero record before data"
            else:
                payload = f.read(length) if offset + FRAME.size + length <= size else b""
                if len(payload) == length and check(payload, crc):
                    try:
                        txn = decode_txn(payload)
                    except Exception as e:  # noqa: BLE001 - any decode failure is corruption
                        raise LogCorrupt(path, offset, f"undecodable record: {e}") from None
                    yield txn, payload
                    offset += FRAME.size + length
                    continue
                reason = "checksum mismatch" if len(payload) == length else "record past end of file"
            end_of_claim = min(size, offset + FRAME.size + max(length, 0))
            if is_last and _all_zero(f, end_of_claim, size) and not _valid_record_after(f, offset, size):
                _torn_tail(path, offset, end_of_claim, reason, repair)
                return
            raise LogCorrupt(path, offset, reason)
        if offset < size and not _all_zero(f, offset, size):
            # Fewer bytes than a record header after the last whole record: the start of a
            # write that went no further, the same torn write as a cut payload when this is
            # the newest segment (an older one was closed after whole records).
            if not is_last:
                raise LogCorrupt(path, offset, "truncated record header")
            _torn_tail(path, offset, size, "truncated record header", repair)


def _torn_tail(path: str, offset: int, end: int, reason: str, repair: bool) -> None:
    """A write torn at the end of the newest segment: logged, and with `repair` zeroed from
    `offset` to `end`, so that the segment reads as whole records and preallocated zeros."""
    log.warning("cutting off torn tail of the transaction log" if repair else
                "torn tail of the transaction log (a server cuts it when it starts)",
                file=path, offset=offset, reason=reason)
    if repair:
        with open(path, "r+b") as w:
            w.seek(offset)
            w.write(b"\0" * (end - offset))
            w.flush()
            os.fsync(w.fileno())


def read_log(log_dir: str, after_zxid: int, repair: bool = False) -> Iterator[Txn]:
    """Every logged txn with zxid > after_zxid, in order, across segments."""
    for txn, _ in log_records(log_dir, after_zxid, repair):
        yield txn


def log_records(log_dir: str, after_zxid: int, repair: bool = False) -> Iterator[tuple[Txn, bytes]]:
    """(txn, record) of every logged txn with zxid > after_zxid, in order, across segments."""
    segs = segments(log_dir)
    # Start from the last segment that begins at or before after_zxid + 1.
    start = 0
    for i, (first, _) in enumerate(segs):
        if first <= after_zxid + 1:
            start = i
    last_zxid = after_zxid
    for i in range(start, len(segs)):
        _, path = segs[i]
        for txn, payload in segment_records(path, i == len(segs) - 1, repair):
            if txn.zxid <= after_zxid:
                continue
            if txn.zxid <= last_zxid:
                raise LogCorrupt(path, -1, f"zxid {txn.zxid:#x} out of order after {last_zxid:#x}")
            if txn.zxid != last_zxid + 1 and (txn.zxid & 0xFFFFFFFF) != 1:
                # zxids are contiguous within an epoch: a hole means lost txns (a purged
                # log behind an invalid snapshot, or a deleted segment).
                raise LogCorrupt(path, -1, f"gap in the log: zxid {txn.zxid:#x} follows {last_zxid:#x}")
            last_zxid = txn.zxid
            yield txn, payload


def truncate_log(log_dir: str, after_zxid: int) -> None:
    """Drop every logged txn with zxid > after_zxid (a TRUNC from a new leader)."""
    from .files import durable_writer, fsync_dir
    from .records import encode_txn, frame

    segs = segments(log_dir)
    unlinked = False
    for i, (first, path) in enumerate(segs):
        if first > after_zxid:
            os.unlink(path)
            unlinked = True
            continue
        nxt = segs[i + 1][0] if i + 1 < len(segs) else None
        if nxt is not None and nxt <= after_zxid + 1:
            continue  # wholly before the point
        kept = [t for t in read_segment(path, i == len(segs) - 1) if t.zxid <= after_zxid]
        with durable_writer(path) as f:
            f.write(MAGIC)
            f.write(b"".join(frame(encode_txn(t)) for t in kept))
    if unlinked:
        fsync_dir(log_dir)  # a removed segment must not come back after a crash
