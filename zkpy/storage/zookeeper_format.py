"""Apache ZooKeeper 3.x's own data files, read: `version-2/snapshot.<zxid>` and `log.<zxid>`.

The formats (FileSnap, FileTxnLog, SerializeUtils, DataTree.serialize, ReferenceCountedACLCache
in ZooKeeper 3.8), all big-endian jute:

snapshot: FileHeader(magic "ZKSN", version 2, dbid) · sessions: int count, (long id, int
    timeout)* · ACL cache: int count, (long key, vector<ACL>)* · nodes: (ustring path, buffer
    data, long acl key, StatPersisted)* in pre-order, the root's path "", ended by the path "/" ·
    seal: long Adler32 of every byte before it, ustring "/" · 3.6+: ZxidDigest (long zxid, int
    version, long digest, or a hex ustring if version < 2) and a second seal · 3.9+: the last
    processed zxid and a third seal.  ACL key -1 is OPEN_ACL_UNSAFE.  `.gz` files are gzip.
log: FileHeader(magic "ZKLG", 2, dbid) · records: long Adler32(entry), buffer entry, byte 'B';
    entry = TxnHeader(long session, int cxid, long zxid, long time, int type) + the txn record
    (+ TxnDigest in 3.6+, ignored) · the preallocated tail of zeros.

The readers yield what ZooKeeper's DataTree would apply, as zkpy `Txn`s; torn and corrupt input
raises `ZooKeeperFormatError` naming the file and byte offset.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..logs import get_logger
from ..protocol.codes import CONTAINER_OWNER, Op, ttl_owner
from ..protocol.jute import JuteError, Reader
from .records import intern_acl

log = get_logger("zkpy.import")
from ..tree.acl import OPEN_ACL_UNSAFE
from ..tree.datatree import Txn

SNAP_MAGIC = b"ZKSN"
LOG_MAGIC = b"ZKLG"
_FILE_HEADER = struct.Struct(">4siq")  # magic, version, dbid
_RECORD_HEAD = struct.Struct(">qi")  # Adler32 of the entry, entry length
_TXN_HEADER = struct.Struct(">qiqqi")  # session, cxid, zxid, time, type
_INT = struct.Struct(">i")
# a node's ACL key, then its StatPersisted: czxid mzxid ctime mtime version cversion aversion owner pzxid
_KEY_STAT = struct.Struct(">qqqqqiiiqq")
_OPEN_ACL_KEY = -1
_SNAP_NAME = re.compile(r"^snapshot\.([0-9a-fA-F]+)(\.gz|\.snappy)?$")
_LOG_NAME = re.compile(r"^log\.([0-9a-fA-F]+)$")


class ZooKeeperFormatError(Exception):
    """A ZooKeeper file that cannot be read: one line, naming the file and the byte offset."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


# A znode as the snapshot holds it: (path, data, acl, czxid, mzxid, ctime, mtime, version,
# cversion, aversion, ephemeralOwner, pzxid); the root's path is "", cversion counts child
# creations (clients see 2 * cversion - children).
ZkNode = tuple


@dataclass
class ZkSnapshot:
    zxid: int  # from the file name: the zxid ZooKeeper replays the log after
    dbid: int
    sessions: dict[int, int]
    nodes: list[ZkNode] = field(default_factory=list)


def snapshot_files(snap_dir: str) -> list[tuple[int, str]]:
    """(zxid, path) of ZooKeeper's snapshots in `snap_dir`, newest first."""
    return sorted(_named(snap_dir, _SNAP_NAME), reverse=True)


def log_files(log_dir: str) -> list[tuple[int, str]]:
    """(first zxid, path) of ZooKeeper's log segments in `log_dir`, oldest first."""
    return sorted(_named(log_dir, _LOG_NAME))


def _named(directory: str, pattern: re.Pattern) -> list[tuple[int, str]]:
    if not os.path.isdir(directory):
        return []
    out = []
    for name in os.listdir(directory):
        m = pattern.match(name)
        if m:
            out.append((int(m.group(1), 16), os.path.join(directory, name)))
    return out


def _check_header(path: str, data: bytes, magic: bytes) -> int:
    """The dbid, after the magic and version are checked."""
    if len(data) < _FILE_HEADER.size:
        raise ZooKeeperFormatError(path, 0, f"truncated file header ({len(data)} bytes)")
    found, version, dbid = _FILE_HEADER.unpack_from(data)
    if found != magic:
        raise ZooKeeperFormatError(path, 0, f"bad magic {found!r}, expected {magic!r}: not a ZooKeeper "
                                            f"{'snapshot' if magic == SNAP_MAGIC else 'transaction log'}")
    if version != 2:
        raise ZooKeeperFormatError(path, 4, f"unsupported format version {version} (ZooKeeper 3.x writes 2)")
    return dbid


# ---------------------------------------------------------------- snapshots


def read_snapshot(path: str) -> ZkSnapshot:
    """Parse and verify one snapshot file (every seal's Adler32 is checked)."""
    m = _SNAP_NAME.match(os.path.basename(path))
    zxid = int(m.group(1), 16) if m else -1
    if path.endswith(".snappy"):
        raise ZooKeeperFormatError(path, 0, "snappy-compressed snapshots are not supported: restart ZooKeeper "
                                            "once with zookeeper.snapshot.compression.method=gz or none")
    with open(path, "rb") as f:
        data = f.read()
    where = path
    if path.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ZooKeeperFormatError(path, 0, f"bad gzip stream: {e}") from None
        where = f"{path} (offsets after decompression)"
    dbid = _check_header(where, data, SNAP_MAGIC)
    r = Reader(data, _FILE_HEADER.size)
    try:
        snap = ZkSnapshot(zxid, dbid, _read_sessions(r))
        acls = _read_acl_cache(r)
        _read_nodes(r, acls, snap.nodes, where)
        _check_seal(r, data, where)
        # The 3.6+ digest and the 3.9+ last processed zxid follow, each with its own seal.
        while r.remaining():
            _skip_trailer(r)
            _check_seal(r, data, where)
    except JuteError as e:
        raise ZooKeeperFormatError(where, r.pos, f"{e}: truncated or corrupt snapshot") from None
    except UnicodeDecodeError as e:  # pragma: no cover - Reader decodes with replacement
        raise ZooKeeperFormatError(where, r.pos, f"{e}: corrupt snapshot") from None
    if not snap.nodes or snap.nodes[0][0] != "":
        raise ZooKeeperFormatError(where, _FILE_HEADER.size, "snapshot has no root node")
    return snap


def _read_sessions(r: Reader) -> dict[int, int]:
    count = r.int()
    if count < 0 or count * 12 > r.remaining():
        r.pos -= 4  # the error is the count's
        raise JuteError(f"bad session count {count}")
    sessions = {}
    for _ in range(count):
        sid = r.long()
        sessions[sid] = r.int()
    return sessions


def _read_acl_cache(r: Reader) -> dict[int, tuple]:
    count = r.int()
    if count < 0 or count * 12 > r.remaining():
        r.pos -= 4
        raise JuteError(f"bad ACL cache size {count}")
    acls: dict[int, tuple] = {_OPEN_ACL_KEY: OPEN_ACL_UNSAFE}
    for _ in range(count):
        key = r.long()
        acl = r.acls()
        if acl is None:
            raise JuteError("null ACL list in the ACL cache")
        acls[key] = intern_acl(acl)
    return acls


def _read_nodes(r: Reader, acls: dict[int, tuple], out: list[ZkNode], path: str) -> None:
    """The nodes, in pre-order, up to the "/" that ends them: struct calls inline rather than
    Reader's, which is 4x slower per node (a snapshot of millions of nodes)."""
    buf, pos, end = r.buf, r.pos, r.end
    length_at, key_stat_at = _INT.unpack_from, _KEY_STAT.unpack_from
    seen: set[str] = set()
    append = out.append
    try:
        while True:
            at = pos
            (n,) = length_at(buf, pos)
            if not 0 <= n <= end - pos - 4:
                raise JuteError(f"bad path length {n}")
            node_path = bytes(buf[pos + 4:pos + 4 + n]).decode("utf-8", "replace")
            pos += 4 + n
            if node_path == "/":
                r.pos = pos
                return
            if node_path == "":  # the root, first and once
                in_order = not out
            else:
                in_order = node_path.startswith("/") and node_path[: node_path.rfind("/")] in seen
            if not in_order:
                raise ZooKeeperFormatError(path, at, f"node {node_path!r} comes before its parent: corrupt snapshot")
            seen.add(node_path)
            (n,) = length_at(buf, pos)
            if not -1 <= n <= end - pos - 4:
                raise JuteError(f"bad data length {n}")
            data = bytes(buf[pos + 4:pos + 4 + n]) if n >= 0 else None
            pos += 4 + max(n, 0)
            key, *stat = key_stat_at(buf, pos)
            pos += _KEY_STAT.size
            acl = acls.get(key)
            if acl is None:
                raise ZooKeeperFormatError(path, at, f"node {node_path!r} refers to ACL {key}, not in the ACL cache: "
                                                     "corrupt snapshot")
            append((node_path, data, acl, *stat))
    except (JuteError, struct.error) as e:
        r.pos = at
        raise JuteError(str(e)) from None


def _check_seal(r: Reader, data: bytes, path: str) -> None:
    at = r.pos
    expected = zlib.adler32(data[:at])
    found = r.long()
    if r.ustring() != "/" or found != expected:
        raise ZooKeeperFormatError(path, at, f"checksum mismatch (Adler32 {found & 0xFFFFFFFFFFFFFFFF:#x} stored, "
                                             f"{expected:#x} computed): corrupt snapshot")


_SEAL_SIZE = 8 + 4 + 1  # long checksum, ustring "/"


def _skip_trailer(r: Reader) -> None:
    """A ZxidDigest (long zxid, int version, long digest or a hex ustring before version 2),
    or 3.9's last processed zxid (a long alone, the file's last trailer)."""
    if r.remaining() == 8 + _SEAL_SIZE:
        r.long()
        return
    r.long()
    if r.int() < 2:
        r.ustring()
    else:
        r.long()


# ---------------------------------------------------------------- transaction logs


def read_log(path: str, newest: bool) -> Iterator[tuple[int, Txn]]:
    """(offset, txn) of each record of one log segment, in order.

    As FileTxnLog: a zero length (the preallocated tail) ends the segment; so does, in the
    newest segment, a last record cut short (past the end of the file, or without its 'B'
    end marker, with only zeros after it): a write torn by a crash, never acknowledged.  A
    short record followed by a valid one, a short record in an older segment, and any
    checksum mismatch are corruption: `ZooKeeperFormatError` names the file and offset."""
    data = _without_zero_tail(path)
    if not data and newest:
        return  # created (and preallocated), not yet written to
    _check_header(path, data, LOG_MAGIC)
    pos, size = _FILE_HEADER.size, len(data)
    while pos < size:  # past `size` there are only zeros, or nothing
        if pos + _RECORD_HEAD.size > size:
            _torn(data, path, pos, newest, "truncated record header")
            return
        crc, length = _RECORD_HEAD.unpack_from(data, pos)
        end = pos + _RECORD_HEAD.size + length  # where the 'B' marker belongs
        if length <= 0 or end >= size or data[end] != 0x42:
            _torn(data, path, pos, newest, "record cut short" if length > 0 else f"record length {length}")
            return
        entry = data[pos + _RECORD_HEAD.size:end]
        if crc != zlib.adler32(entry):
            raise ZooKeeperFormatError(path, pos, "checksum mismatch: corrupt record")
        try:
            txn = decode_entry(entry)
        except JuteError as e:
            raise ZooKeeperFormatError(path, pos, f"undecodable txn: {e}") from None
        yield pos, txn
        pos = end + 1


def _without_zero_tail(path: str) -> bytes:
    """The file's bytes up to its last non-zero one: ZooKeeper preallocates logs in 64 MB steps."""
    with open(path, "rb") as f:
        end = size = f.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - (1 << 20))
            f.seek(start)
            chunk = f.read(end - start).rstrip(b"\0")
            if chunk:
                end = start + len(chunk)
                break
            end = start
        f.seek(0)
        return f.read(max(end, min(size, _FILE_HEADER.size)))  # the header's dbid may end in zeros


def _torn(data: bytes, path: str, offset: int, newest: bool, reason: str) -> None:
    """Accept a short record at `offset` as the torn end of the log, or raise."""
    if not newest:
        raise ZooKeeperFormatError(path, offset, f"{reason} in a log segment that is not the newest: corrupt")
    if _valid_record_after(data, offset):
        raise ZooKeeperFormatError(path, offset, f"{reason}, with valid records after it: corrupt")
    log.warning("cutting off the torn last record of ZooKeeper's log",
                                                file=path, offset=offset, reason=reason)


def _valid_record_after(data: bytes, offset: int) -> bool:
    """Does a whole record (length, 'B' marker and checksum right) start after `offset`?  A
    torn write is the log's last: a flipped bit in a length field is not (and cutting there
    would drop acknowledged txns)."""
    unpack = _RECORD_HEAD.unpack_from
    for p in range(offset + 1, len(data) - _RECORD_HEAD.size):
        crc, length = unpack(data, p)
        end = p + _RECORD_HEAD.size + length
        if 0 < length and end < len(data) and data[end] == 0x42 and crc == zlib.adler32(data[p + 12:end]):
            return True
    return False


def decode_entry(entry: bytes) -> Txn:
    """TxnHeader + txn record (SerializeUtils.deserializeTxn) as the zkpy Txn DataTree applies."""
    r = Reader(entry)
    r._need(_TXN_HEADER.size)
    session, cxid, zxid, time, op = _TXN_HEADER.unpack_from(entry)
    r.pos = _TXN_HEADER.size
    op, args = _decode_txn(op, r, session, top=True)
    return Txn(zxid, time, session, cxid, op, args)


def _decode_txn(op: int, r: Reader, session: int, top: bool = False) -> tuple[int, tuple]:
    if op in (Op.CREATE, Op.CREATE2):
        path, data, acl = r.path(), r.buffer(), _acl(r)
        ephemeral = r.bool()
        # A V0 create (no parentCVersion) is -1: the parent's cversion + 1, see importer.
        parent_cversion = r.int() if r.remaining() >= 4 else -1
        return op, (path, data, acl, session if ephemeral else 0, parent_cversion)
    if op == Op.CREATE_TTL:
        path, data, acl, parent_cversion = r.path(), r.buffer(), _acl(r), r.int()
        return op, (path, data, acl, ttl_owner(r.long()), parent_cversion)
    if op == Op.CREATE_CONTAINER:
        path, data, acl, parent_cversion = r.path(), r.buffer(), _acl(r), r.int()
        return op, (path, data, acl, CONTAINER_OWNER, parent_cversion)
    if op in (Op.DELETE, Op.DELETE_CONTAINER):
        return op, (r.path(),)
    if op in (Op.SET_DATA, Op.RECONFIG):  # a reconfig is a setData of /zookeeper/config
        return Op.SET_DATA, (r.path(), r.buffer(), r.int())
    if op == Op.SET_ACL:
        return op, (r.path(), _acl(r), r.int())
    if op == Op.CHECK:
        return op, (r.path(), r.int())
    if op == Op.ERROR:
        return op, (r.int(),)
    if op == Op.CREATE_SESSION and top:
        return op, (r.int(),)
    if op == Op.CLOSE_SESSION and top:
        # Before 3.6 the txn had no body: the session's ephemerals are deleted all the same.
        return op, (r.strings() if r.remaining() else [],)
    if op == Op.MULTI and top:
        count = r._count()
        subs = []
        for _ in range(max(count, 0)):
            sub_op = r.int()
            body = r.buffer() or b""
            subs.append(_decode_txn(sub_op, Reader(body), session))
        return op, (subs,)
    raise JuteError(f"unsupported txn type {op}")


def _acl(r: Reader) -> tuple:
    acl = r.acls()
    return intern_acl(acl or ())
