"""A member killed in the middle of a record header rejoins its ensemble.

Found by `zkpy verify --seed 305 --workload register` (nemesis torn-tail): the cut left 4 of a
record header's 8 bytes at the end of member 3's newest log, `zkpy serve` refused to start
("corrupt transaction log ... truncated record header"), and member 3 stayed down to the end
of the run, unreadable in the lost-write check.  A cut inside a payload was already a torn
write, cut off at start; a cut inside the header is the same torn write and is cut too.
"""

from __future__ import annotations

import os

import pytest
from kazoo.client import KazooClient

from zkpy.storage.records import FRAME
from zkpy.storage.txnlog import MAGIC, read_log, segment_records, segments
from zkpy.testing.ensemble import Ensemble


def _newest_segment(ens: Ensemble, sid: int) -> str:
    return segments(os.path.join(ens.base, f"server{sid}", "version-2"))[-1][1]


def _record_offsets(path: str) -> list[int]:
    """Where each whole record of the segment starts."""
    offsets, at = [], len(MAGIC)
    for _, payload in segment_records(path, is_last=True):
        offsets.append(at)
        at += FRAME.size + len(payload)
    return offsets


def _read(ens: Ensemble, sid: int, paths: list[str]) -> list[bytes]:
    client = KazooClient(ens.address(sid), timeout=4)
    client.start(10)
    try:
        client.sync("/")
        return [client.get(p)[0] for p in paths]
    finally:
        client.stop()
        client.close()


def test_a_member_whose_log_ends_inside_a_record_header_rejoins_and_serves():
    with Ensemble(3, startup_timeout=30) as ens:
        client = KazooClient(ens.connect_string, timeout=4)
        client.start(10)
        paths = [client.create(f"/torn-{i}", str(i).encode()) for i in range(30)]
        client.stop()
        client.close()
        victim = next(sid for sid in ens.ids if sid != ens.leader())
        ens.kill(victim)
        newest = _newest_segment(ens, victim)
        last = _record_offsets(newest)[-1]
        with open(newest, "r+b") as f:
            f.truncate(last + FRAME.size // 2)  # half of the last record's header is left
        ens.start_server(victim)
        ens.wait_serving(timeout=20, fail_on_exit=True)
        assert _read(ens, victim, paths) == [str(i).encode() for i in range(30)]
        with open(newest, "rb") as f:
            after = f.read()[last:]
        assert after.strip(b"\0") == b""  # the half header was zeroed (the whole records kept), as a torn payload is
        # Restarted again, the cut segment is no longer the newest one and still reads.
        ens.kill(victim)
        ens.start_server(victim)
        ens.wait_serving(timeout=20, fail_on_exit=True)
        assert _read(ens, victim, paths) == [str(i).encode() for i in range(30)]


def test_half_a_header_at_the_end_of_an_older_segment_is_still_corruption(tmp_path):
    """Only the newest segment can end in a torn write: an older one was closed after whole
    records, so bytes of a header there mean something else went wrong."""
    from zkpy.storage.records import encode_txn, frame
    from zkpy.storage.txnlog import LogCorrupt, TxnLog
    from zkpy.tree.datatree import Txn

    log = TxnLog(str(tmp_path), force_sync=False, prealloc=4096)
    for zxid in (1, 2):
        log.append(frame(encode_txn(Txn(zxid, 0, 1, zxid, 1, (f"/n{zxid}", b"x", (), 0, zxid - 1)))), zxid)
        log.roll()  # each txn its own segment
    older = segments(str(tmp_path))[0][1]
    end = _record_offsets(older)[-1] + FRAME.size + len(next(segment_records(older, True))[1])
    with open(older, "r+b") as f:
        f.truncate(end)
        f.seek(end)
        f.write(b"\x00\x00\x01")
    with pytest.raises(LogCorrupt, match="truncated record header"):
        list(read_log(str(tmp_path), 0))
