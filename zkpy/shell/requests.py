"""ZooKeeper requests kazoo 2.x lacks, in kazoo's request shape (namedtuple + `type`,
`serialize()`, `deserialize(bytes, offset)`), so `KazooClient._call` sends them like its own:
containers, TTL nodes, persistent watches, watch removal, getEphemerals,
getAllChildrenNumber and whoAmI (ZooKeeper 3.5-3.7 additions)."""

from __future__ import annotations

import struct
from collections import namedtuple

from kazoo.protocol.serialization import (
    int_struct,
    read_string,
    write_buffer,
    write_string,
)

_long = struct.Struct("!q")


def _acl_bytes(acl: list) -> bytes:
    b = bytearray(int_struct.pack(len(acl)))
    for a in acl:
        b.extend(int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id))
    return bytes(b)


def _strings(buf: bytes, offset: int) -> list[str]:
    count = int_struct.unpack_from(buf, offset)[0]
    offset += int_struct.size
    out = []
    for _ in range(max(count, 0)):
        s, offset = read_string(buf, offset)
        out.append(s)
    return out


class CreateContainer(namedtuple("CreateContainer", "path data acl flags")):
    type = 19

    def serialize(self) -> bytes:
        return write_string(self.path) + write_buffer(self.data) + _acl_bytes(self.acl) + int_struct.pack(self.flags)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> str:
        return read_string(buf, offset)[0]


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self) -> bytes:
        return (write_string(self.path) + write_buffer(self.data) + _acl_bytes(self.acl)
                + int_struct.pack(self.flags) + _long.pack(self.ttl))

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> str:
        return read_string(buf, offset)[0]


class AddWatch(namedtuple("AddWatch", "path mode")):
    """mode: 0 PERSISTENT, 1 PERSISTENT_RECURSIVE."""

    type = 106

    def serialize(self) -> bytes:
        return write_string(self.path) + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> None:
        return None


class RemoveWatches(namedtuple("RemoveWatches", "path watcher_type")):
    """watcher_type: 1 Children, 2 Data, 3 Any."""

    type = 18

    def serialize(self) -> bytes:
        return write_string(self.path) + int_struct.pack(self.watcher_type)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> None:
        return None


class GetEphemerals(namedtuple("GetEphemerals", "prefix")):
    type = 103

    def serialize(self) -> bytes:
        return write_string(self.prefix)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> list[str]:
        return _strings(buf, offset)


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104

    def serialize(self) -> bytes:
        return write_string(self.path)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> int:
        return int_struct.unpack_from(buf, offset)[0]


class WhoAmI(namedtuple("WhoAmI", "")):
    type = 107

    def __bool__(self) -> bool:
        """kazoo hands a reply only to a truthy request; an empty namedtuple is falsy."""
        return True

    def serialize(self) -> bytes:
        return b""

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> list[tuple[str, str]]:
        """(authScheme, user) pairs: ClientInfo records."""
        count = int_struct.unpack_from(buf, offset)[0]
        offset += int_struct.size
        out = []
        for _ in range(max(count, 0)):
            scheme, offset = read_string(buf, offset)
            user, offset = read_string(buf, offset)
            out.append((scheme, user))
        return out
