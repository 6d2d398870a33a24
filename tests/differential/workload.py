"""Randomized operation sequences, run in lockstep against two servers through kazoo.

A seeded `Generator` produces operations; each step runs on every server (the first one,
Apache ZooKeeper, is the reference whose results feed the generator) and the normalised
results must be equal.  Everything a client can observe is compared:

- the result, or the exception class (kazoo maps error codes to classes);
- the zxid of every reply header the op received;
- Stats without ctime/mtime, ephemeralOwner as the owning session's label
  ("s3#2": slot 3, second session in that slot) or the container/TTL marker;
- children sorted, ACL lists, created paths;
- every session's watch events (type, state, path) in arrival order, as read off the
  socket, and its kazoo connection-state changes.  Events a session triggers itself
  arrive before its own reply; after a write or a session operation every other session
  makes a round trip (`sync`) first, so events are attributed to the step that caused them.

Both servers start from an empty data dir and see the same ops in the same order, so
zxids match exactly (session creation/close and failed writes consume zxids too).
Sessions are expired deterministically: either another connection takes the session
over and closes it (as ZooKeeper's and kazoo's test harnesses do), or a short-timeout
session stops talking and the server's session tracker expires it (the run waits for it).

kazoo 2.11 has no client API for persistent watches (addWatch), setWatches, container/TTL
nodes, multi with create2/container/TTL sub-ops, removeWatches/checkWatches, getEphemerals,
getAllChildrenNumber, whoAmI and multiRead: those go through kazoo's own request pipeline
(`KazooClient._call`) with the small request classes below.  Paths kazoo refuses itself
("/d/./a", "d") still reach the server through those.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any, Callable

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionDropped, ConnectionLoss, KazooException
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.serialization import (
    CheckVersion,
    Close,
    Delete,
    GetChildren,
    GetData,
    MultiHeader,
    SetData,
    Watch,
    int_struct,
    long_struct,
    multiheader_struct,
    read_buffer,
    read_string,
    reply_header_struct,
    stat_struct,
    write_buffer,
    write_string,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.retry import KazooRetry
from kazoo.security import ACL, Id, make_digest_acl_credential

OP_TIMEOUT = 15.0  # seconds: any single request; a server that does not answer fails the run
SESSION_TIMEOUT = 30.0  # seconds: regular sessions (the suite raises maxSessionTimeout to allow it)
SHORT_TIMEOUT_MS = 800  # sessions the server is to expire
TIMEOUT_EXPIRIES = 2  # at most this many per run: each waits ~1 s per server
EXPIRY_WAIT = 30.0  # seconds: bound on waiting for the server to expire a silent session

EVENT_TYPES = {1: "Created", 2: "Deleted", 3: "DataChanged", 4: "ChildrenChanged", 5: "DataWatchRemoved",
               6: "ChildWatchRemoved", 7: "PersistentWatchRemoved", -1: "None"}
KEEPER_STATES = {3: "SyncConnected", 0: "Disconnected", -112: "Expired", 4: "AuthFailed", 5: "ReadOnly"}
CONTAINER_OWNER = -(1 << 63)


class DiffError(AssertionError):
    pass


# --------------------------------------------------------------------------- requests kazoo lacks


class RawCreate(namedtuple("RawCreate", "type path data acl flags ttl")):
    """create (1), create2 (15), createContainer (19), createTTL (21) with any flags."""

    def serialize(self) -> bytes:
        b = bytearray(write_string(self.path))
        b += write_buffer(self.data)
        b += int_struct.pack(len(self.acl))
        for a in self.acl:
            b += int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id)
        b += int_struct.pack(self.flags)
        if self.type == 21:
            b += long_struct.pack(self.ttl)
        return bytes(b)

    def deserialize(self, buf: bytes, offset: int):
        path, offset = read_string(buf, offset)
        if self.type == 1:
            return path
        return path, ZnodeStat._make(stat_struct.unpack_from(buf, offset))


class RawMulti(namedtuple("RawMulti", "operations")):
    """multi (14) with any create variant (kazoo's transactions only send plain creates)."""

    type = 14

    def serialize(self) -> bytes:
        b = bytearray()
        for op in self.operations:
            b += MultiHeader(op.type, False, -1).serialize() + op.serialize()
        return bytes(b + multiheader_struct.pack(-1, True, -1))

    @classmethod
    def deserialize(cls, buf: bytes, offset: int):
        out = []
        while True:
            header, offset = MultiHeader.deserialize(buf, offset)
            if header.done:
                return out
            if header.type == 1:
                path, offset = read_string(buf, offset)
                out.append(("create", path))
            elif header.type in (15, 19, 21):
                path, offset = read_string(buf, offset)
                out.append((f"create{header.type}", path, ZnodeStat._make(stat_struct.unpack_from(buf, offset))))
                offset += stat_struct.size
            elif header.type == 5:
                out.append(("set", ZnodeStat._make(stat_struct.unpack_from(buf, offset))))
                offset += stat_struct.size
            elif header.type in (2, 13):
                out.append(("delete" if header.type == 2 else "check",))
            elif header.type == -1:
                out.append(("err", int_struct.unpack_from(buf, offset)[0]))
                offset += 4
            else:
                out.append(("type", header.type))
                return out


class AddWatch(namedtuple("AddWatch", "path mode")):
    type = 106

    def serialize(self) -> bytes:
        return write_string(self.path) + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int):
        return True


class RemoveWatches(namedtuple("RemoveWatches", "type path watcher_type")):
    """checkWatches (17) / removeWatches (18)."""

    def serialize(self) -> bytes:
        return write_string(self.path) + int_struct.pack(self.watcher_type)

    def deserialize(self, buf: bytes, offset: int):
        return True


def _write_strings(items: list) -> bytes:
    return int_struct.pack(len(items)) + b"".join(write_string(p) for p in items)


class SetWatches(namedtuple("SetWatches", "type relative_zxid data exist child persistent recursive")):
    """setWatches (101) / setWatches2 (105), as clients send them on reconnect: the server
    sets the watches and fires at once for what changed since relative_zxid."""

    def serialize(self) -> bytes:
        b = long_struct.pack(self.relative_zxid) + _write_strings(self.data) + _write_strings(self.exist)
        b += _write_strings(self.child)
        if self.type == 105:
            b += _write_strings(self.persistent) + _write_strings(self.recursive)
        return b

    def deserialize(self, buf: bytes, offset: int):
        return True


def _read_strings(buf: bytes, offset: int) -> tuple[list, int]:
    n = int_struct.unpack_from(buf, offset)[0]
    offset += 4
    out = []
    for _ in range(max(n, 0)):
        s, offset = read_string(buf, offset)
        out.append(s)
    return out, offset


class GetEphemerals(namedtuple("GetEphemerals", "path")):
    type = 103

    def serialize(self) -> bytes:
        return write_string(self.path)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int):
        return sorted(_read_strings(buf, offset)[0])


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104

    def serialize(self) -> bytes:
        return write_string(self.path)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int):
        return int_struct.unpack_from(buf, offset)[0]


class WhoAmI:
    type = 107  # (not an empty namedtuple: kazoo ignores replies to falsy requests)

    def __repr__(self) -> str:
        return "WhoAmI()"

    def serialize(self) -> bytes:
        return b""

    @classmethod
    def deserialize(cls, buf: bytes, offset: int):
        n = int_struct.unpack_from(buf, offset)[0]
        offset += 4
        out = []
        for _ in range(max(n, 0)):
            scheme, offset = read_string(buf, offset)
            user, offset = read_string(buf, offset)
            out.append((scheme, user))
        return out


class MultiRead(namedtuple("MultiRead", "operations")):
    type = 22

    def serialize(self) -> bytes:
        b = bytearray()
        for op in self.operations:
            b += MultiHeader(op.type, False, -1).serialize() + op.serialize()
        return bytes(b + multiheader_struct.pack(-1, True, -1))

    @classmethod
    def deserialize(cls, buf: bytes, offset: int):
        out = []
        while True:
            header, offset = MultiHeader.deserialize(buf, offset)
            if header.done:
                return out
            if header.type == GetData.type:
                data, offset = read_buffer(buf, offset)
                out.append(("data", data, ZnodeStat._make(stat_struct.unpack_from(buf, offset))))
                offset += stat_struct.size
            elif header.type == GetChildren.type:
                kids, offset = _read_strings(buf, offset)
                out.append(("children", sorted(kids)))
            elif header.type == -1:
                out.append(("err", int_struct.unpack_from(buf, offset)[0]))
                offset += 4
            else:
                out.append(("type", header.type))
                return out


# --------------------------------------------------------------------------- ops


def acl_text(acl) -> str:
    if acl is None:
        return "None"
    return "[" + ", ".join(f"{a.perms} {a.id.scheme}:{a.id.id}" for a in acl) + "]"


OPEN = [ACL(31, Id("world", "anyone"))]
ACLS = {
    "OPEN": OPEN,
    "READ": [ACL(1, Id("world", "anyone"))],
    "READ_ADMIN": [ACL(17, Id("world", "anyone"))],
    "CREATE_DELETE": [ACL(12, Id("world", "anyone")), ACL(1, Id("world", "anyone"))],
    "CREATOR": [ACL(31, Id("auth", ""))],
    "U1": [ACL(31, Id("digest", make_digest_acl_credential("u1", "p1")))],
    "U2_RW_WORLD_R": [ACL(3, Id("digest", make_digest_acl_credential("u2", "p2"))), ACL(1, Id("world", "anyone"))],
    "U1_ADMIN_ONLY": [ACL(16, Id("digest", make_digest_acl_credential("u1", "p1")))],
    "IP": [ACL(31, Id("ip", "127.0.0.1"))],
    "IP_NET": [ACL(31, Id("ip", "127.0.0.0/8")), ACL(1, Id("world", "anyone"))],
    "OTHER_IP": [ACL(31, Id("ip", "10.1.2.3"))],
    "DUP": [ACL(31, Id("world", "anyone")), ACL(31, Id("world", "anyone"))],
    "BAD_WORLD": [ACL(31, Id("world", "everyone"))],
    "BAD_SCHEME": [ACL(31, Id("nosuchscheme", "x"))],
    "BAD_DIGEST": [ACL(31, Id("digest", "u1"))],
    "BAD_IP": [ACL(31, Id("ip", "not-an-ip"))],
    "BAD_PERMS": [ACL(0, Id("world", "anyone"))],
    "EMPTY": [],
}
GOOD_ACLS = ["OPEN"] * 6 + ["READ", "READ_ADMIN", "CREATE_DELETE", "CREATOR", "U1", "U2_RW_WORLD_R", "U1_ADMIN_ONLY",
                             "IP", "IP_NET", "OTHER_IP", "DUP"]
BAD_ACLS = ["BAD_WORLD", "BAD_SCHEME", "BAD_DIGEST", "BAD_IP", "BAD_PERMS", "EMPTY"]
NAMES = ["a", "b", "c"]
BAD_PATHS = ["d", "/d/", "/d//a", "/d/./a", "/d/../a", "/d/.", "/d/\u0001x", "/d/a\u0000", "/d/\ufffe", "//"]
SPECIAL_PATHS = ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota", "/zookeeper/x", "/m"]


@dataclass
class Op:
    name: str
    slot: int
    args: dict

    def __str__(self) -> str:
        def fmt(v: Any) -> str:
            if isinstance(v, list) and v and isinstance(v[0], ACL):
                return acl_text(v)
            if isinstance(v, list) and v and isinstance(v[0], tuple):
                return "[" + ", ".join(f"{o[0]}{fmt(tuple(o[1:]))}" for o in v) + "]"
            if isinstance(v, tuple):
                return "(" + ", ".join(fmt(x) for x in v) + ")"
            return repr(v)

        return f"s{self.slot} {self.name}(" + ", ".join(f"{k}={fmt(v)}" for k, v in self.args.items()) + ")"


class Generator:
    """Ops from a seed.  `observe` feeds it the reference server's results (created paths)."""

    def __init__(self, seed: int, sessions: int) -> None:
        self.rng = random.Random(seed)
        self.n = sessions
        self.known: list[str] = ["/d", "/d/a", "/d/b"]
        self.expiries = 0
        self.last_zxid = 0

    # -- arguments
    def path(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.02:
            return rng.choice(BAD_PATHS)
        if r < 0.04:
            return rng.choice(SPECIAL_PATHS)
        if r < 0.62:
            p = rng.choice(self.known[-60:] if rng.random() < 0.5 else self.known)
            if rng.random() < 0.3:
                p = p + "/" + rng.choice(NAMES)
            return p
        depth = rng.randint(1, 3)
        return "/d/" + "/".join(rng.choice(NAMES) for _ in range(depth))

    def watch_path(self) -> str:
        rng = self.rng
        if rng.random() < 0.1:
            return rng.choice(["/", "/d", "/zookeeper"])
        return self.path()

    def version(self) -> int:
        return self.rng.choice([-1, -1, -1, 0, 0, 1, 2, 3, 7, -2])

    def data(self) -> bytes | None:
        rng = self.rng
        if rng.random() < 0.03:
            return None
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 8, 40])))

    def acl(self) -> list:
        rng = self.rng
        if rng.random() < 0.75:
            return OPEN
        if rng.random() < 0.1:
            return ACLS[rng.choice(BAD_ACLS)]
        return ACLS[rng.choice(GOOD_ACLS)]

    def create_args(self) -> dict:
        rng = self.rng
        seq = rng.random() < 0.3
        path = self.path()
        if seq and rng.random() < 0.3:
            path += "/"  # sequential children of a parent: "/p/0000000001"
        return dict(path=path, value=self.data(), acl=self.acl(), ephemeral=rng.random() < 0.3, sequence=seq,
                    makepath=rng.random() < 0.1, include_data=rng.random() < 0.5)

    def raw_create_args(self) -> dict:
        rng = self.rng
        kind = rng.random()
        if kind < 0.5:
            optype, flags = 19, 4  # createContainer
        elif kind < 0.8:
            optype, flags = 21, rng.choice([5, 5, 6])  # createTTL
        else:  # unusual combinations: container/TTL flags on plain create ops, TTL op with other flags, bad flags
            optype = rng.choice([1, 15, 19, 21])
            flags = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, -1])
        if optype != 21:
            ttl = -1
        elif flags in (5, 6):
            ttl = rng.choice([1_000_000, 1_000_000, 1, 0, -5, 1 << 45])
        else:
            # not a negative TTL with non-TTL flags: Apache ZooKeeper 3.8 accepts that request and then
            # dies applying it (SyncThread: "ttl must be positive"), exiting the JVM
            ttl = rng.choice([0, 1_000_000, 1 << 45])
        path = self.path()
        if flags in (2, 3, 6) and rng.random() < 0.3:
            path += "/"
        return dict(type=optype, path=path, value=self.data(), acl=self.acl(), flags=flags, ttl=ttl)

    def raw_multi_ops(self) -> list:
        rng = self.rng
        ops = []
        for _ in range(rng.choice([1, 2, 3, 4])):
            k = rng.random()
            if k < 0.55:
                a = self.raw_create_args()
                if rng.random() < 0.3:
                    a["type"], a["flags"], a["ttl"] = rng.choice([1, 15]), rng.choice([0, 1, 2, 3]), -1
                ops.append(("create", a["type"], a["path"], a["value"], a["acl"], a["flags"], a["ttl"]))
            elif k < 0.7:
                ops.append(("delete", self.path(), self.version()))
            elif k < 0.85:
                ops.append(("set_data", self.path(), self.data(), self.version()))
            else:
                ops.append(("check", self.path(), self.version()))
        return ops

    def txn_ops(self) -> list:
        rng = self.rng
        ops = []
        for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4, 5])):
            k = rng.random()
            if k < 0.4:
                a = self.create_args()  # (kazoo's transactions take no null data)
                ops.append(("create", a["path"], a["value"] or b"", a["acl"], a["ephemeral"], a["sequence"]))
            elif k < 0.6:
                ops.append(("delete", self.path(), self.version()))
            elif k < 0.8:
                ops.append(("set_data", self.path(), self.data() or b"", self.version()))
            else:
                ops.append(("check", self.path(), self.version()))
        return ops

    # -- ops
    def next(self) -> Op:
        rng = self.rng
        i = rng.randrange(self.n)
        k = rng.random() * 100
        w = rng.random() < 0.5
        if k < 18:
            return Op("create", i, self.create_args())
        if k < 21:
            return Op("raw_create", i, self.raw_create_args())
        if k < 29:
            return Op("delete", i, dict(path=self.path(), version=self.version()))
        if k < 33:
            return Op("delete", i, dict(path=rng.choice(self.known), version=-1))
        if k < 42:
            return Op("set", i, dict(path=self.path(), value=self.data(), version=self.version()))
        if k < 51:
            return Op("get", i, dict(path=self.path(), watch=w))
        if k < 57:
            return Op("exists", i, dict(path=self.path(), watch=w))
        if k < 64:
            return Op("get_children", i, dict(path=self.path(), watch=w, include_data=rng.random() < 0.5))
        if k < 67:
            return Op("get_acls", i, dict(path=self.path()))
        if k < 70:
            acl = ACLS[rng.choice(GOOD_ACLS + BAD_ACLS[:3])] if rng.random() < 0.8 else OPEN
            return Op("set_acls", i, dict(path=self.path(), acls=acl, version=self.version()))
        if k < 74.5:
            return Op("transaction", i, dict(ops=self.txn_ops()))
        if k < 76:
            return Op("raw_multi", i, dict(ops=self.raw_multi_ops()))
        if k < 77.5:
            reads = [(rng.choice(["get", "get_children"]), self.path()) for _ in range(rng.randint(1, 3))]
            return Op("multi_read", i, dict(ops=reads))
        if k < 79.5:
            return Op("sync", i, dict(path=self.path()))
        if k < 83:
            return Op("add_watch", i, dict(path=self.watch_path(), mode=rng.choice([0, 1])))
        if k < 84.5:
            return Op("remove_watches", i, dict(path=self.watch_path(), watcher_type=rng.choice([1, 2, 3, 4, 5]),
                                                check=rng.random() < 0.3))
        if k < 86:
            return self.set_watches(i)
        if k < 86.5:
            return Op("get_ephemerals", i, dict(prefix=rng.choice(["/", "/d", "/d/a", "/m", "/x"])))
        if k < 87:
            return Op("get_all_children_number", i, dict(path=self.path()))
        if k < 88:
            return Op("whoami", i, {})
        if k < 90.5:
            return Op("add_auth", i, dict(credential=rng.choice(["u1:p1", "u2:p2", "u1:p1", "u3:p3"])))
        if k < 98.3:
            return Op("get", i, dict(path=rng.choice(self.known), watch=True))
        if k < 98.8:
            return Op("close", i, {})
        if k < 99.3:
            return Op("expire", i, {})
        if k < 99.8:
            return Op("reconnect", i, {})
        if self.expiries < TIMEOUT_EXPIRIES:
            self.expiries += 1
            a = self.create_args()
            if rng.random() < 0.6:
                a["path"], a["sequence"] = rng.choice(["/d/", "/d/e-", "/d/a/"]), True
            return Op("timeout_expire", i, dict(path=a["path"], value=a["value"], sequence=a["sequence"]))
        return Op("exists", i, dict(path=self.path(), watch=True))

    def set_watches(self, i: int) -> Op:
        rng = self.rng

        def paths() -> list:
            return [self.watch_path() for _ in range(rng.choice([0, 0, 1, 2, 3]))]

        optype = rng.choice([101, 105, 105])
        relative = rng.choice([0, max(0, self.last_zxid - rng.randint(0, 30)), self.last_zxid])
        return Op("set_watches", i, dict(type=optype, relative_zxid=relative, data=paths(), exist=paths(),
                                         child=paths(), persistent=paths() if optype == 105 else [],
                                         recursive=paths() if optype == 105 else []))

    def observe(self, op: Op, result: Any, zxids: list = ()) -> None:
        """Learn created paths and the last zxid from the reference result."""
        if zxids:
            self.last_zxid = max(self.last_zxid, max(zxids))
        def learn(p: Any) -> None:
            if isinstance(p, str) and p.startswith("/d") and p not in self.known:
                self.known.append(p)

        if op.name in ("create", "raw_create") and not _is_error(result):
            learn(result[0] if isinstance(result, tuple) else result)
        elif op.name == "transaction" and isinstance(result, list):
            for r in result:
                learn(r)
        elif op.name == "timeout_expire" and isinstance(result, dict):
            learn(result.get("created"))


def _is_error(result: Any) -> bool:
    return isinstance(result, str) and result.startswith("!")


# --------------------------------------------------------------------------- one server


Stat = namedtuple("Stat", "czxid mzxid pzxid version cversion aversion owner dataLength numChildren")


@dataclass
class Session:
    slot: int
    label: str
    client: KazooClient
    events: list = field(default_factory=list)  # (type, state, path) as read off the socket, and
    # kazoo's connection-state changes ("SUSPENDED", ...), in the order they happened
    states: list = field(default_factory=list)  # the state changes alone
    replies: list = field(default_factory=list)  # reply-header zxids
    gate: threading.Event = field(default_factory=threading.Event)  # closed: the client may not (re)connect
    refuse: bool = False  # gate open, but connecting fails (a client we are done with)
    connects_left: int = -1  # >= 0: connection attempts allowed before `refuse` (-1: any number)
    session_id: int = 0


class Driver:
    """N kazoo sessions on one server; runs `Op`s and returns normalised results."""

    def __init__(self, name: str, host: str, port: int, sessions: int) -> None:
        self.name = name
        self.host, self.port = host, port
        self.labels: dict[int, str] = {}
        self.generations: dict[int, int] = {}
        self.sessions: list[Session] = []
        self.retired: list[Session] = []
        self.expiry_count = 0
        try:
            for i in range(sessions):
                self.sessions.append(self._open(i))
        except BaseException:
            self.close()
            raise

    # -- sessions
    def _open(self, slot: int | str, timeout: float = SESSION_TIMEOUT) -> Session:
        gen = self.generations[slot] = self.generations.get(slot, 0) + 1
        label = f"s{slot}#{gen}" if isinstance(slot, int) else f"{slot}#{gen}"
        client = KazooClient(hosts=f"{self.host}:{self.port}", timeout=timeout,
                             connection_retry=KazooRetry(max_tries=-1, delay=0.01, backoff=1, max_jitter=0.01),
                             command_retry=None)
        s = Session(slot if isinstance(slot, int) else -1, label, client)
        s.gate.set()
        conn = client._connection
        real_event, real_response, real_connect = conn._read_watch_event, conn._read_response, conn._connect

        def read_watch_event(buffer, offset):
            w, _ = Watch.deserialize(buffer, offset)
            s.events.append((EVENT_TYPES.get(w.type, w.type), KEEPER_STATES.get(w.state, w.state), w.path))
            return real_event(buffer, offset)

        def read_response(header, buffer, offset):
            s.replies.append(header.zxid)
            return real_response(header, buffer, offset)

        def connect(*args):
            if not s.gate.wait(EXPIRY_WAIT * 2) or s.refuse:
                raise ConnectionDropped("test: reconnect refused")
            if s.connects_left >= 0:
                if s.connects_left == 0:
                    s.refuse = True
                    raise ConnectionDropped("test: reconnect refused")
                s.connects_left -= 1
            return real_connect(*args)

        conn._read_watch_event, conn._read_response, conn._connect = read_watch_event, read_response, connect
        def listener(state) -> None:
            s.states.append(str(state))
            s.events.append(str(state))

        client.add_listener(listener)
        try:
            client.start(timeout=OP_TIMEOUT)
        except BaseException:
            self._stop_client(s)
            raise
        s.states.clear()
        s.events.clear()
        s.session_id = client._session_id
        self.labels[s.session_id] = label
        return s

    def _new_session_in(self, slot: int) -> Session:
        old = self.sessions[slot]
        self.retired.append(old)
        self.sessions[slot] = self._open(slot)
        return self.sessions[slot]

    @staticmethod
    def _stop_client(s: Session) -> None:
        s.refuse = True
        s.gate.set()
        try:
            s.client.stop()
        except Exception:
            pass
        try:
            s.client.close()
        except Exception:
            pass

    def close(self) -> None:
        for s in self.sessions + self.retired:
            self._stop_client(s)

    def _wait_state(self, s: Session, state: str, what: str, start: int = 0) -> None:
        deadline = time.monotonic() + OP_TIMEOUT
        while state not in s.states[start:]:
            if time.monotonic() > deadline:
                raise DiffError(f"{self.name}: {s.label}: no {state} within {OP_TIMEOUT}s after {what} "
                                f"(states {s.states})")
            time.sleep(0.002)

    # -- normalisation
    def owner(self, value: int) -> Any:
        if value == 0:
            return 0
        if value == CONTAINER_OWNER:
            return "container"
        if value in self.labels:
            return self.labels[value]
        if (value & 0xFF00000000000000) == 0xFF00000000000000 and value < 0:
            return f"ttl:{value & 0x00FFFFFFFFFFFFFF}"
        return f"unknown:{value & 0xFFFFFFFFFFFFFFFF:#x}"

    def stat(self, st: Any) -> Any:
        if st is None:
            return None
        return Stat(st.czxid, st.mzxid, st.pzxid, st.version, st.cversion, st.aversion, self.owner(st.ephemeralOwner),
                    st.dataLength, st.numChildren)

    def norm(self, value: Any) -> Any:
        if isinstance(value, ZnodeStat):
            return self.stat(value)
        if isinstance(value, BaseException):
            return "!" + type(value).__name__
        if isinstance(value, ACL):
            return (value.perms, value.id.scheme, value.id.id)
        if isinstance(value, tuple):
            return tuple(self.norm(v) for v in value)
        if isinstance(value, list):
            return [self.norm(v) for v in value]
        return value

    # -- running ops
    def _wait(self, async_result) -> Any:
        try:
            return async_result.get(timeout=OP_TIMEOUT)
        except KazooTimeoutError:
            raise DiffError(f"{self.name}: no reply within {OP_TIMEOUT}s") from None

    def _call(self, s: Session, request) -> Any:
        ar = s.client.handler.async_result()
        s.client._call(request, ar)
        return self._wait(ar)

    def apply(self, op: Op) -> dict:
        """Run `op`; returns {"result": ..., "zxids": [...], "events": {label: [...]}}."""
        s = self.sessions[op.slot]
        before, mark = len(s.replies), len(s.states)
        try:
            result = self.norm(getattr(self, "op_" + op.name)(s, **op.args))
        except DiffError:
            raise
        except OSError as e:  # our own sockets (session takeover)
            raise DiffError(f"{self.name}: {op}: {type(e).__name__}: {e}") from None
        except (KazooException, TypeError, ValueError) as e:
            result = "!" + type(e).__name__
            if isinstance(e, ConnectionLoss):
                # the server dropped the connection: let kazoo reconnect before going on
                self._wait_state(s, "SUSPENDED", f"{result} in {op}", mark)
                self._wait_state(s, "CONNECTED", f"{result} in {op}", mark)
        out = {"result": result, "zxids": s.replies[before:]}
        return out

    def settle(self, everyone: bool, slot: int) -> dict:
        """Events and state changes since the last settle.  `everyone`: round-trip every
        session first (after writes); else only `slot`'s own, which precede its reply."""
        out = {}
        for s in self.sessions:
            if everyone:
                before = len(s.replies)
                self._wait(s.client.sync_async("/"))
                del s.replies[before:]
            if s.events:
                out[s.label] = s.events[:]
                s.events.clear()
        for s in self.retired:
            if s.events:
                out[s.label] = s.events[:]
                s.events.clear()
        return out

    # -- the ops
    def op_create(self, s, path, value, acl, ephemeral, sequence, makepath, include_data):
        return self._wait(s.client.create_async(path, value, acl=acl, ephemeral=ephemeral, sequence=sequence,
                                                makepath=makepath, include_data=include_data))

    def op_raw_create(self, s, type, path, value, acl, flags, ttl):
        return self._call(s, RawCreate(type, path, value, acl, flags, ttl))

    def op_delete(self, s, path, version):
        return self._wait(s.client.delete_async(path, version))

    def op_set(self, s, path, value, version):
        return self._wait(s.client.set_async(path, value, version))

    def _watcher(self, s: Session) -> Callable:
        # one function per session (kazoo keeps watchers in sets); the events compared are
        # the ones read off the socket
        if not hasattr(s, "watcher"):
            s.watcher = lambda event: None
        return s.watcher

    def op_get(self, s, path, watch):
        return self._wait(s.client.get_async(path, watch=self._watcher(s) if watch else None))

    def op_exists(self, s, path, watch):
        return self._wait(s.client.exists_async(path, watch=self._watcher(s) if watch else None))

    def op_get_children(self, s, path, watch, include_data):
        r = self._wait(s.client.get_children_async(path, watch=self._watcher(s) if watch else None,
                                                   include_data=include_data))
        if include_data:
            return sorted(r[0]), r[1]
        return sorted(r)

    def op_get_acls(self, s, path):
        return self._wait(s.client.get_acls_async(path))

    def op_set_acls(self, s, path, acls, version):
        return self._wait(s.client.set_acls_async(path, acls, version))

    def op_transaction(self, s, ops):
        t = s.client.transaction()
        for o in ops:
            if o[0] == "create":
                t.create(o[1], o[2], acl=o[3], ephemeral=o[4], sequence=o[5])
            elif o[0] == "delete":
                t.delete(o[1], o[2])
            elif o[0] == "set_data":
                t.set_data(o[1], o[2], o[3])
            else:
                t.check(o[1], o[2])
        return self._wait(t.commit_async())

    def op_raw_multi(self, s, ops):
        reqs = []
        for o in ops:
            if o[0] == "create":
                reqs.append(RawCreate(*o[1:]))
            elif o[0] == "delete":
                reqs.append(Delete(o[1], o[2]))
            elif o[0] == "set_data":
                reqs.append(SetData(o[1], o[2], o[3]))
            else:
                reqs.append(CheckVersion(o[1], o[2]))
        return self._call(s, RawMulti(reqs))

    def op_multi_read(self, s, ops):
        reqs = [GetData(p, None) if kind == "get" else GetChildren(p, None) for kind, p in ops]
        return self._call(s, MultiRead(reqs))

    def op_sync(self, s, path):
        return self._wait(s.client.sync_async(path))

    def op_set_watches(self, s, type, relative_zxid, data, exist, child, persistent, recursive):
        return self._call(s, SetWatches(type, relative_zxid, data, exist, child, persistent, recursive))

    def op_add_watch(self, s, path, mode):
        return self._call(s, AddWatch(path, mode))

    def op_remove_watches(self, s, path, watcher_type, check):
        return self._call(s, RemoveWatches(17 if check else 18, path, watcher_type))

    def op_get_ephemerals(self, s, prefix):
        return self._call(s, GetEphemerals(prefix))

    def op_get_all_children_number(self, s, path):
        return self._call(s, GetAllChildrenNumber(path))

    def op_whoami(self, s):
        return self._call(s, WhoAmI())

    def op_add_auth(self, s, credential):
        return self._wait(s.client.add_auth_async("digest", credential))

    def op_close(self, s):
        """kazoo's stop(): closeSession on the session's own connection."""
        s.client.stop()
        s.client.close()
        s.refuse = True
        new = self._new_session_in(s.slot)
        return {"new": new.label}

    def op_reconnect(self, s):
        """The connection drops; kazoo reconnects to the same session (which keeps its
        ephemerals but, with kazoo, not its watches)."""
        mark = len(s.states)
        sock = s.client._connection._socket
        sock.shutdown(socket.SHUT_RDWR)
        self._wait_state(s, "SUSPENDED", "connection drop", mark)
        self._wait_state(s, "CONNECTED", "reconnect", mark)
        return {"same_session": s.client._session_id == s.session_id}

    def op_expire(self, s):
        """Another connection takes the session over (the server drops the first one) and
        closes it; the original client's reconnect is then told the session expired."""
        s.gate.clear()
        mark = len(s.states)
        try:
            with socket.create_connection((self.host, self.port), timeout=OP_TIMEOUT) as raw:
                raw.sendall(_connect_request(int(SESSION_TIMEOUT * 1000), s.session_id, s.client._session_passwd))
                body = _read_frame(raw)
                _proto, timeout, session_id = struct.unpack_from("!iiq", body)
                taken = {"timeout": timeout, "same_session": session_id == s.session_id}
                raw.sendall(struct.pack("!iii", 8, 1, Close.type))
                while True:
                    xid, zxid, err = reply_header_struct.unpack_from(_read_frame(raw))
                    if xid == 1:
                        break
                taken.update(close_err=err, close_zxid=zxid)
        finally:
            s.gate.set()
        self._wait_state(s, "LOST", "session takeover and close", mark)
        self._wait_state(s, "CONNECTED", "new session after expiry", mark)
        # kazoo carries on with a new session (keeping its auth data): a new label
        s.session_id = s.client._session_id
        gen = self.generations[s.slot] = self.generations[s.slot] + 1
        s.label = f"s{s.slot}#{gen}"
        self.labels[s.session_id] = s.label
        taken["new"] = s.label
        return taken

    def op_timeout_expire(self, s, path, value, sequence):
        """A short-timeout session creates a marker and an ephemeral, then goes silent; the
        server's session tracker expires it (we wait until the marker is gone)."""
        self.expiry_count += 1
        x = self._open("x", timeout=SHORT_TIMEOUT_MS / 1000)
        self.retired.append(x)
        out: dict[str, Any] = {"session": x.label}
        out["marker"] = self.norm(self._wait_or_error(x.client.create_async(f"/m/{x.label}", ephemeral=True)))
        created = self.norm(self._wait_or_error(x.client.create_async(path, value, ephemeral=True, sequence=sequence)))
        out["created"] = created
        x.gate.clear()
        mark = len(x.states)
        x.client._connection._socket.shutdown(socket.SHUT_RDWR)
        self._wait_state(x, "SUSPENDED", "connection drop", mark)
        deadline = time.monotonic() + EXPIRY_WAIT
        polled = len(s.replies)
        while self._wait(s.client.exists_async(f"/m/{x.label}")) is not None:
            if time.monotonic() > deadline:
                x.refuse = True
                x.gate.set()
                raise DiffError(f"{self.name}: session {x.label} not expired within {EXPIRY_WAIT}s")
            time.sleep(0.02)
        del s.replies[polled:]  # how often we polled is not part of the comparison
        x.connects_left = 1  # one reconnect, to hear "expired"; not a new session after that
        x.gate.set()
        self._wait_state(x, "LOST", "reconnect to an expired session", mark)
        self._stop_client(x)
        return out

    def _wait_or_error(self, ar) -> Any:
        try:
            return self._wait(ar)
        except KazooException as e:
            return e


def _connect_request(timeout_ms: int, session_id: int, passwd: bytes) -> bytes:
    body = struct.pack("!iqiq", 0, 0, timeout_ms, session_id) + struct.pack("!i", len(passwd)) + passwd + b"\x00"
    return struct.pack("!i", len(body)) + body


def _read_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise DiffError("server closed the connection")
            buf += chunk
        return buf

    (n,) = struct.unpack("!i", exactly(4))
    return exactly(n)


# --------------------------------------------------------------------------- lockstep


WRITES = {"create", "raw_create", "raw_multi", "delete", "set", "set_acls", "transaction", "close", "expire", "reconnect",
          "timeout_expire"}


@dataclass
class Mismatch:
    seed: int
    step: int
    op: str
    what: str
    expected: Any
    got: Any
    names: tuple
    recent: list

    def __str__(self) -> str:
        recent = "".join(f"\n    {line}" for line in self.recent)
        return (f"seed {self.seed}, step {self.step}: {self.what} differ\n"
                f"  op:        {self.op}\n"
                f"  {self.names[0] + ':':<10} {self.expected!r}\n"
                f"  {self.names[1] + ':':<10} {self.got!r}\n"
                f"  previous steps (reference results):{recent}\n"
                f"  replay: ZKPY_DIFF_SEED={self.seed} ZKPY_DIFF_OPS={self.step + 1} "
                f"pytest tests/differential -k same_results")


def setup_ops() -> list[Op]:
    return [Op("create", 0, dict(path="/d", value=b"", acl=OPEN, ephemeral=False, sequence=False, makepath=False,
                                 include_data=True)),
            Op("create", 0, dict(path="/m", value=b"", acl=OPEN, ephemeral=False, sequence=False, makepath=False,
                                 include_data=True))]


def run_lockstep(drivers: list[Driver], seed: int, ops: int, max_mismatches: int = 1,
                 trace: Callable[[str], None] | None = None) -> list[Mismatch]:
    """Run `ops` generated ops (after the set-up ops) on every driver; compare each with
    the first.  Returns the mismatches (stops after `max_mismatches`)."""
    gen = Generator(seed, len(drivers[0].sessions))
    mismatches: list[Mismatch] = []
    recent: list[str] = []
    names = tuple(d.name for d in drivers)
    step = -len(setup_ops())
    todo = iter(setup_ops())

    def compare(what: str, values: list, op: Op) -> bool:
        for d, v in zip(drivers[1:], values[1:]):
            if v != values[0]:
                mismatches.append(Mismatch(seed, step, str(op), what, values[0], v, (names[0], d.name), recent[-6:]))
                return False
        return True

    while step < ops:
        op = next(todo, None) or gen.next()
        results = [d.apply(op) for d in drivers]
        ref = results[0]["result"]
        gen.observe(op, ref, results[0]["zxids"])
        failed = _is_error(ref) or (op.name == "transaction" and ref and _is_error(ref[0])) or (
            op.name == "raw_multi" and ref and ref[0][0] == "err")
        # (create with makepath may have created parents before failing)
        everyone = op.name in WRITES and (not failed or op.args.get("makepath"))
        events = [d.settle(everyone, op.slot) for d in drivers]
        line = f"{step}: {op} -> {ref!r} zxids={results[0]['zxids']}" + (f" events={events[0]}" if events[0] else "")
        if trace:
            trace(line)
        ok = (compare("results", [r["result"] for r in results], op)
              and compare("reply zxids", [r["zxids"] for r in results], op)
              and compare("watch events / session states", events, op))
        recent.append(line if len(line) < 400 else line[:400] + "...")
        if not ok and len(mismatches) >= max_mismatches:
            break
        step += 1
    return mismatches
