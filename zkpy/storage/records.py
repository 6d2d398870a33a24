"""msgpack encoding of txns for the log, snapshots and (later) the peer protocol.

Every record is framed as [u32 length][u32 crc32(payload)][payload] so that a reader can
tell a torn or corrupt record from a good one.
"""

from __future__ import annotations

import struct
import zlib

import msgpack

from ..protocol.codes import Op
from ..tree.acl import OPEN_ACL_UNSAFE
from ..tree.datatree import Txn

FRAME = struct.Struct(">II")  # length, crc32
_ACL_OPS = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL})

_packer = msgpack.Packer(use_bin_type=True)


def intern_acl(acl) -> tuple:
    """ACL lists from msgpack back to the tuples the tree uses (sharing the open ACL)."""
    t = tuple(tuple(a) for a in acl)
    return OPEN_ACL_UNSAFE if t == OPEN_ACL_UNSAFE else t


def _fix_args(op: int, args: list) -> tuple:
    if op in _ACL_OPS:
        path, data, acl, owner, cversion = args
        return (path, data, intern_acl(acl), owner, cversion)
    if op == Op.SET_ACL:
        return (args[0], intern_acl(args[1]), args[2])
    if op == Op.MULTI:
        return ([(sub_op, _fix_args(sub_op, sub_args)) for sub_op, sub_args in args[0]],)
    return tuple(args)


def encode_txn(txn: Txn) -> bytes:
    return _packer.pack((txn.zxid, txn.time, txn.session, txn.cxid, txn.type, txn.args))


def decode_txn(payload: bytes) -> Txn:
    zxid, time, session, cxid, op, args = msgpack.unpackb(payload, raw=False, use_list=True)
    return Txn(zxid, time, session, cxid, op, _fix_args(op, args))


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def check(payload: bytes, crc: int) -> bool:
    return zlib.crc32(payload) == crc
