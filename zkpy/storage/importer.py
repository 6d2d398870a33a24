"""`zkpy import`: an Apache ZooKeeper 3.x dataDir converted into a zkpy dataDir.

ZooKeeper's own recovery (FileTxnSnapLog.restore), replayed into zkpy's DataTree: the newest
snapshot that verifies, then every logged txn after its zxid.  ZooKeeper's snapshots are
fuzzy (written while txns are applied), so replay meets nodes that already exist or are
already gone; DataTree.apply ignores those as ZooKeeper's processTxn does, and one fix-up of
processTxn is repeated here.  The result is written as a zkpy snapshot (no log), re-read and
compared by digest; an ensemble member's epoch files and myid come along, so the converted
member keeps its zxids and identity.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from ..logs import get_logger
from ..protocol.codes import Err, Op
from ..tree.datatree import DataTree, Txn, Znode
from .files import durable_replace, fsync_dir
from .recovery import data_paths, recover
from .snapshot import collector_paused, link_nodes, write_snapshot
from .zookeeper_format import ZkSnapshot, ZooKeeperFormatError, log_files, read_log, read_snapshot, snapshot_files

log = get_logger("zkpy.import")

EPOCH_FILES = ("acceptedEpoch", "currentEpoch")


class CannotImport(Exception):
    """The input or output directory is not what `zkpy import` needs (one line, exit code 2)."""


@dataclass
class Imported:
    """What a conversion read and wrote."""

    tree: DataTree
    snapshot: str | None  # the ZooKeeper snapshot replay started from
    replayed: int  # txns applied after it
    written: str  # the zkpy snapshot
    digest: str  # DataTree.digest() of the tree, as `zkpy check` prints it


def load_zookeeper(zk_data_dir: str, zk_log_dir: str | None = None) -> tuple[DataTree, str | None, int]:
    """(tree, snapshot used, txns replayed) of a ZooKeeper dataDir, as ZooKeeper would recover it."""
    snap_dir, log_dir = data_paths(zk_data_dir, zk_log_dir)
    if not os.path.isdir(snap_dir):
        raise CannotImport(f"{zk_data_dir} has no version-2 directory: give the dataDir of an Apache ZooKeeper "
                           "server (its zoo.cfg's dataDir)")
    with collector_paused():
        snap, snap_path = _newest_valid_snapshot(snap_dir)
        if snap is None and not log_files(log_dir):
            raise CannotImport(f"{snap_dir} holds no ZooKeeper snapshot or transaction log")
        tree = tree_from_snapshot(snap) if snap is not None else DataTree()
        replayed = _replay(tree, log_dir)
    return tree, snap_path, replayed


def _newest_valid_snapshot(snap_dir: str) -> tuple[ZkSnapshot | None, str | None]:
    """As FileSnap.deserialize: an invalid snapshot is skipped (with a log line) for an older
    one; the log after it must then reach back further, which replay checks."""
    first_error: ZooKeeperFormatError | None = None
    for _, path in snapshot_files(snap_dir):
        try:
            return read_snapshot(path), path
        except ZooKeeperFormatError as e:
            log.warning("skipping invalid ZooKeeper snapshot", error=str(e))
            first_error = first_error or e
    if first_error is not None:
        raise first_error
    return None, None


def tree_from_snapshot(snap: ZkSnapshot) -> DataTree:
    tree = DataTree()
    tree.nodes.clear()
    nodes = tree.nodes
    for path, data, acl, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid in snap.nodes:
        z = Znode(data, acl, czxid, ctime, owner)
        z.mzxid, z.mtime, z.version, z.cversion, z.aversion, z.pzxid = mzxid, mtime, version, cversion, aversion, pzxid
        nodes[path or "/"] = z  # ZooKeeper serializes the root as ""
    link_nodes(tree, f"snapshot.{snap.zxid:x}")
    tree.sessions = dict(snap.sessions)
    tree.last_zxid = snap.zxid
    return tree


def _replay(tree: DataTree, log_dir: str) -> int:
    """Apply every logged txn after tree.last_zxid; zxids must follow on without a hole."""
    after = last = tree.last_zxid
    logs = log_files(log_dir)
    start = max([i for i, (first, _) in enumerate(logs) if first <= after + 1], default=0)
    count = 0
    for i in range(start, len(logs)):
        path = logs[i][1]
        for offset, txn in read_log(path, newest=i == len(logs) - 1):
            if txn.zxid <= after:
                continue
            if txn.zxid <= last:
                raise ZooKeeperFormatError(path, offset, f"zxid {txn.zxid:#x} out of order after {last:#x}")
            if txn.zxid != last + 1 and txn.zxid & 0xFFFFFFFF != 1:  # a new epoch starts at counter 1
                raise ZooKeeperFormatError(path, offset, f"gap in the log: zxid {txn.zxid:#x} follows {last:#x} "
                                                         "(a log segment is missing)")
            apply_zookeeper_txn(tree, txn)
            last = txn.zxid
            count += 1
    return count


def apply_zookeeper_txn(tree: DataTree, txn: Txn) -> None:
    """tree.apply, plus what ZooKeeper's DataTree.processTxn does beyond it on replay: a `create`
    (type 1, not create2) whose node exists still raises the parent's cversion and pzxid
    (setCversionPzxid), and a parentCVersion of -1 (a pre-3.3 log) means the parent's + 1."""
    if txn.type == Op.CREATE and txn.args[4] == -1:
        parent = tree.nodes.get(_parent(txn.args[0]))
        if parent is not None:
            txn.args = txn.args[:4] + (parent.cversion + 1,)
    result, _ = tree.apply(txn)
    if txn.type == Op.MULTI:
        pairs = zip(txn.args[0], result[2])
    else:
        pairs = (((txn.type, txn.args), result),)
    for (_, args), (sub_type, err, _) in pairs:
        if sub_type == Op.CREATE and err == Err.NODEEXISTS:
            parent = tree.nodes.get(_parent(args[0]))
            if parent is not None and args[4] > parent.cversion:
                parent.cversion = args[4]
                parent.pzxid = txn.zxid


def _parent(path: str) -> str:
    i = path.rfind("/")
    return path[:i] if i > 0 else "/"


def import_data_dir(zk_data_dir: str, zkpy_data_dir: str, zk_log_dir: str | None = None) -> Imported:
    """Convert; the zkpy dataDir must not hold a zkpy server's files already."""
    out_snap_dir = data_paths(zkpy_data_dir, None)[0]
    if os.path.isdir(out_snap_dir) and any(n.startswith(("snapshot.", "log.")) for n in os.listdir(out_snap_dir)):
        raise CannotImport(f"{zkpy_data_dir} already holds a data dir ({out_snap_dir} has snapshots or logs): "
                           "give a new or empty directory")
    tree, snap_path, replayed = load_zookeeper(zk_data_dir, zk_log_dir)
    os.makedirs(out_snap_dir, exist_ok=True)
    written = write_snapshot(tree, out_snap_dir)
    _carry_identity(zk_data_dir, zkpy_data_dir, tree.last_zxid)
    digest = tree.digest()
    if recover(zkpy_data_dir, None).digest() != digest:  # pragma: no cover - a snapshot writer or reader bug
        raise RuntimeError(f"{written} does not read back as the tree it was written from")
    return Imported(tree, snap_path, replayed, written, digest)


def _carry_identity(zk_data_dir: str, zkpy_data_dir: str, last_zxid: int) -> None:
    """An ensemble member's epochs (as QuorumPeer keeps them, in version-2/) and myid.  Epoch
    files that are missing are derived from the last zxid, as QuorumPeer.loadDataBase does."""
    src, dst = os.path.join(zk_data_dir, "version-2"), os.path.join(zkpy_data_dir, "version-2")
    for name in EPOCH_FILES:
        path = os.path.join(src, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                durable_replace(os.path.join(dst, name), f.read().strip())
        elif last_zxid >> 32:
            durable_replace(os.path.join(dst, name), str(last_zxid >> 32).encode())
    myid = os.path.join(zk_data_dir, "myid")
    if os.path.exists(myid):
        shutil.copyfile(myid, os.path.join(zkpy_data_dir, "myid"))
        fsync_dir(zkpy_data_dir)
