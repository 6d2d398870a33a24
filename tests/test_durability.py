"""Durability: the log and snapshots bring back the exact tree after a restart; torn
tails are cut, corruption stops the start with file and offset."""

import os
import time

import pytest
from kazoo.client import KazooClient

from zkpy.storage.txnlog import LogCorrupt, segments
from zkpy.storage.snapshot import snapshots
from zkpy.storage.recovery import data_paths, purge
from zkpy.testing import ZkpyServer


def _write_some(cs: str, n: int = 50, ephemeral_client: bool = False) -> KazooClient:
    c = KazooClient(cs, timeout=10)
    c.start(10)
    c.create("/d", b"root")
    for i in range(n):
        c.create(f"/d/n{i}", str(i).encode())
        if i % 3 == 0:
            c.set(f"/d/n{i}", b"changed")
        if i % 7 == 0:
            c.delete(f"/d/n{i}")
    c.create("/d/eph", b"e", ephemeral=True)
    c.create("/d/seq-", b"s", sequence=True)
    return c


def test_restart_recovers_exact_tree_with_live_ephemerals(tmp_path):
    with ZkpyServer(data_dir=str(tmp_path)) as s:
        c = _write_some(s.connect_string)
        sid, passwd = c.client_id
        before = s.digest()
    # the client's session is still within its timeout when the server comes back
    with ZkpyServer(data_dir=str(tmp_path)) as s2:
        assert s2.digest() == before
        c2 = KazooClient(s2.connect_string, client_id=(sid, passwd), timeout=10)
        c2.start(10)
        assert c2.exists("/d/eph").ephemeralOwner == sid
        c2.stop()
    c.stop()


def test_snapshot_plus_log_equals_live_tree(tmp_path):
    with ZkpyServer(data_dir=str(tmp_path), snap_count=20, tick_time=100) as s:
        c = _write_some(s.connect_string, n=120)
        time.sleep(0.5)  # ticks start snapshots; wait for the children to finish
        c.create("/after", b"x")
        c.stop()
        before = s.digest()
    snap_dir, log_dir = data_paths(str(tmp_path), None)
    assert len(snapshots(snap_dir)) >= 1
    assert len(segments(log_dir)) >= 2
    with ZkpyServer(data_dir=str(tmp_path)) as s2:
        assert s2.digest() == before


def _last_segment(tmp_path) -> str:
    _, log_dir = data_paths(str(tmp_path), None)
    return segments(log_dir)[-1][1]


def _end_of_records(path: str) -> int:
    data = open(path, "rb").read()
    return len(data.rstrip(b"\0"))


def test_torn_tail_is_cut(tmp_path):
    with ZkpyServer(data_dir=str(tmp_path)) as s:
        c = KazooClient(s.connect_string)
        c.start(10)
        c.create("/kept", b"1")
        c.stop()
        before = s.digest()
    seg = _last_segment(tmp_path)
    end = _end_of_records(seg)
    with open(seg, "r+b") as f:  # half a record: a length and crc, part of a payload
        f.seek(end)
        f.write(b"\x00\x00\x00\x40\x12\x34\x56\x78partial")
    with ZkpyServer(data_dir=str(tmp_path)) as s2:
        assert s2.digest() == before
        c = KazooClient(s2.connect_string)
        c.start(10)
        c.create("/more")  # the log goes on after the cut
        c.stop()
        after = s2.digest()
    with ZkpyServer(data_dir=str(tmp_path)) as s3:
        assert s3.digest() == after


def test_zkpy_check_reports_a_torn_tail_and_leaves_the_files_as_they_are(tmp_path):
    """`zkpy check` is read-only: an operator runs it on a copy or a stopped member's data dir
    to see what a start would do, and the start (not the check) cuts the tail."""
    import subprocess
    import sys

    with ZkpyServer(data_dir=str(tmp_path)) as s:
        c = KazooClient(s.connect_string)
        c.start(10)
        c.create("/kept", b"1")
        c.stop()
        before = s.digest()
    seg = _last_segment(tmp_path)
    end = _end_of_records(seg)
    with open(seg, "r+b") as f:
        f.seek(end)
        f.write(b"\x00\x00\x00\x40\x12\x34\x56\x78partial")
    torn = open(seg, "rb").read()
    done = subprocess.run([sys.executable, "-m", "zkpy", "check", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "torn tail" in done.stderr and f"offset={end}" in done.stderr and "cutting" not in done.stderr
    assert open(seg, "rb").read() == torn
    with ZkpyServer(data_dir=str(tmp_path)) as s2:  # the start cuts it
        assert s2.digest() == before
    assert open(seg, "rb").read() != torn


def test_corrupt_record_in_the_middle_stops_the_start(tmp_path):
    with ZkpyServer(data_dir=str(tmp_path)) as s:
        c = KazooClient(s.connect_string)
        c.start(10)
        for i in range(20):
            c.create(f"/n{i}", b"x" * 10)
        c.stop()
    seg = _last_segment(tmp_path)
    with open(seg, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    copy = open(seg, "rb").read()
    with pytest.raises(LogCorrupt) as info:
        ZkpyServer(data_dir=str(tmp_path)).start()
    assert seg in str(info.value) and "offset" in str(info.value)
    assert open(seg, "rb").read() == copy  # nothing overwritten


def test_purge_keeps_what_recovery_needs(tmp_path):
    with ZkpyServer(data_dir=str(tmp_path), snap_count=10, tick_time=50) as s:
        c = KazooClient(s.connect_string)
        c.start(10)
        for i in range(8):
            for j in range(15):
                c.create(f"/p{i}-{j}")
            time.sleep(0.15)
        c.stop()
        before = s.digest()
    snap_dir, log_dir = data_paths(str(tmp_path), None)
    assert len(snapshots(snap_dir)) > 3
    removed = purge(str(tmp_path), None, retain=3)
    assert removed and len(snapshots(snap_dir)) == 3
    with ZkpyServer(data_dir=str(tmp_path)) as s2:
        assert s2.digest() == before


def test_unwritable_log_stops_writes_but_not_reads(tmp_path):
    from kazoo.exceptions import ConnectionLoss, NotReadOnlyCallError

    with ZkpyServer(data_dir=str(tmp_path)) as s:
        c = KazooClient(s.connect_string)
        c.start(10)
        c.create("/r", b"readable")
        session = c.client_id[0]

        def break_log():
            os.close(s.server.storage.log.txlog.fd)  # the next write fails with EBADF, as a dead disk would

        s.call(break_log)
        # The write that fails may or may not be on disk: its client is told nothing
        # (CONNECTIONLOSS; kazoo reconnects to the same session); later writes are refused.
        with pytest.raises(ConnectionLoss):
            c.create("/w")
        with pytest.raises(NotReadOnlyCallError):
            c.set("/r", b"x")
        with pytest.raises(NotReadOnlyCallError):
            c.create("/w2")
        # Its session survives a lost connection: the client comes back and reads on.
        assert s.drop_connections() >= 1
        assert c.retry(c.get, "/r")[0] == b"readable"
        assert c.client_id[0] == session
        assert c.get("/r")[0] == b"readable"
        c.stop()


def test_global_outstanding_limit_throttles_without_losing_writes(tmp_path):
    with ZkpyServer(data_dir=str(tmp_path), global_outstanding_limit=5) as s:
        c = KazooClient(s.connect_string)
        c.start(10)
        results = [c.create_async(f"/t{i}", b"x") for i in range(300)]
        assert [r.get(timeout=30) for r in results] == [f"/t{i}" for i in range(300)]
        assert len(c.get_children("/")) == 301
        assert s.call(lambda: len(s.server.throttled)) == 0
        c.stop()


def _logged(tmp_path, n: int) -> tuple[str, list[int]]:
    """A segment of n create txns written by the TxnLog, and each record's offset."""
    from zkpy.storage.records import encode_txn, frame
    from zkpy.storage.txnlog import MAGIC, TxnLog
    from zkpy.tree.datatree import Txn

    log = TxnLog(str(tmp_path), prealloc=1 << 16)
    offsets, pos = [], len(MAGIC)
    for i in range(1, n + 1):
        rec = frame(encode_txn(Txn(i, 0, 1, i, 1, (f"/n{i}", b"x" * 40, (), 0, i - 1))))
        log.append(rec, i)
        offsets.append(pos)
        pos += len(rec)
    log.sync()
    log.close()
    return segments(str(tmp_path))[0][1], offsets


def test_a_flipped_length_bit_with_records_after_it_is_corruption_not_a_torn_tail(tmp_path):
    """A length that now claims the zeros past the log's end looks like a torn write; but
    valid records follow it, so cutting there would drop them (acknowledged txns)."""
    from zkpy.storage.txnlog import read_log

    path, offsets = _logged(tmp_path, 5)
    with open(path, "r+b") as f:
        f.seek(offsets[1])
        length = int.from_bytes(f.read(4), "big")
        f.seek(offsets[1])
        f.write((length | 1 << 14).to_bytes(4, "big"))  # now it ends in the preallocated zeros
    with pytest.raises(LogCorrupt) as e:
        list(read_log(str(tmp_path), 0, repair=True))
    assert e.value.offset == offsets[1]


def test_a_torn_last_record_is_still_cut(tmp_path):
    from zkpy.storage.txnlog import read_log

    path, offsets = _logged(tmp_path, 5)
    with open(path, "r+b") as f:
        f.seek(offsets[4] + 20)
        f.write(b"\0" * 40)  # the last batch reached the disk only in part
    assert [t.zxid for t in read_log(str(tmp_path), 0, repair=True)] == [1, 2, 3, 4]
