"""zkpy/storage/files.py: durable atomic replacement, and the writers that use it."""

from __future__ import annotations

import os
import stat

import pytest

from zkpy.protocol.codes import Op
from zkpy.storage import files
from zkpy.storage.files import durable_replace, durable_writer
from zkpy.storage.records import encode_txn, frame
from zkpy.storage.snapshot import load_snapshot, write_snapshot
from zkpy.storage.txnlog import MAGIC, read_log, truncate_log
from zkpy.tree.datatree import DataTree, Txn


def test_durable_replace_replaces_the_content_and_leaves_no_tmp(tmp_path):
    path = str(tmp_path / "currentEpoch")
    durable_replace(path, b"1")  # no file before
    assert open(path, "rb").read() == b"1"
    durable_replace(path, b"22")
    assert open(path, "rb").read() == b"22"
    assert os.listdir(tmp_path) == ["currentEpoch"]


def test_a_streamed_write_replaces_the_file(tmp_path):
    path = str(tmp_path / "snapshot.1")
    durable_replace(path, b"old")
    with durable_writer(path) as f:
        for i in range(100):
            f.write(b"%d," % i)
        assert open(path, "rb").read() == b"old"  # untouched until the block ends
    assert open(path, "rb").read() == b"".join(b"%d," % i for i in range(100))
    assert os.listdir(tmp_path) == ["snapshot.1"]


def test_an_exception_during_the_write_leaves_the_old_file_intact(tmp_path):
    path = str(tmp_path / "f")
    durable_replace(path, b"old")
    with pytest.raises(RuntimeError), durable_writer(path) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk full, say")
    assert open(path, "rb").read() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_a_failing_fsync_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = str(tmp_path / "f")
    durable_replace(path, b"old")

    def fail(fd):
        raise OSError(5, "EIO")

    monkeypatch.setattr(files.os, "fsync", fail)
    with pytest.raises(OSError):
        durable_replace(path, b"new")
    monkeypatch.undo()
    assert open(path, "rb").read() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_the_file_is_fsynced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    path = str(tmp_path / "f")
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        calls.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    durable_replace(path, b"x")
    assert calls == ["fsync file", "replace", "fsync dir"]


def test_truncate_log_keeps_the_txns_up_to_the_point_and_drops_later_segments(tmp_path):
    log_dir = str(tmp_path)
    for first, zxids in ((1, [1, 2, 3]), (4, [4, 5])):
        with open(os.path.join(log_dir, f"log.{first:x}"), "wb") as f:
            f.write(MAGIC + b"".join(frame(encode_txn(Txn(z, 0, 1, z, Op.DELETE, (f"/n{z}",)))) for z in zxids))
    truncate_log(log_dir, 2)
    assert [t.zxid for t in read_log(log_dir, 0)] == [1, 2]
    assert sorted(os.listdir(log_dir)) == ["log.1"]


def test_write_snapshot_leaves_one_file_and_no_tmp(tmp_path):
    tree = DataTree()
    path = write_snapshot(tree, str(tmp_path))
    assert os.listdir(tmp_path) == [os.path.basename(path)]
    assert load_snapshot(path).last_zxid == tree.last_zxid
