"""Randomized operation sequences, run against two servers and compared op by op.

The driver is sequential and uses raw protocol clients, so every response and every
watch event arrives in a deterministic order: for the same seed, a correct server
produces exactly the same normalised transcript as Apache ZooKeeper.  Normalisation keeps
everything but times and session ids (ephemeralOwner is mapped to the session's label).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from zkpy.protocol.codes import Op
from zkpy.protocol.jute import Reader, decode_stat
from zkpy.testing.client import RawClient
from zkpy.tree.acl import digest

OPEN = [(31, "world", "anyone")]
ACLS = [
    OPEN,
    [(1, "world", "anyone")],
    [(31, "auth", "")],
    [(31, "digest", digest("u1:p1"))],
    [(1, "digest", digest("u2:p2")), (1, "world", "anyone")],
    [(31, "ip", "127.0.0.1")],
    [(17, "world", "anyone")],  # READ|ADMIN
    [(31, "world", "everyone")],  # invalid
    [],  # invalid
]
NAMES = ["a", "b", "c"]
CONTAINER_OWNER = -0x8000000000000000


class Transcript(list):
    pass


@dataclass
class Session:
    label: str
    client: RawClient
    events: list = field(default_factory=list)
    closed: bool = False


class Driver:
    """Runs ops on one server, producing a transcript of normalised results."""

    def __init__(self, host: str, port: int, sessions: int) -> None:
        self.host, self.port = host, port
        self.owner_labels: dict[int, str] = {}
        self.sessions: list[Session] = []
        self.generation = 0
        for i in range(sessions):
            self.sessions.append(self._open(i))

    def _open(self, i: int) -> Session:
        self.generation += 1
        label = f"s{i}.{self.generation}"
        c = RawClient(self.host, self.port, timeout_ms=30000)
        self.owner_labels[c.session_id] = label
        return Session(label, c)

    def owner(self, value: int) -> str | int:
        if value == 0 or value == CONTAINER_OWNER or value < 0:
            return value
        return self.owner_labels.get(value, "unknown-session")

    def stat(self, r: Reader) -> tuple:
        czxid, mzxid, _ct, _mt, version, cversion, aversion, owner, dlen, nkids, pzxid = decode_stat(r)
        return (czxid, mzxid, version, cversion, aversion, self.owner(owner), dlen, nkids, pzxid)

    def call(self, i: int, op: int, args: tuple, xid: int | None = None) -> tuple:
        s = self.sessions[i]
        c = s.client
        before = len(c.events)
        err, r, _zxid = c.call(op, args, xid=xid)
        s.events.extend(c.events[before:])
        return err, r

    def drain_events(self) -> list:
        """Round-trip every session so that events caused by earlier ops have arrived."""
        out = []
        for i, s in enumerate(self.sessions):
            self.call(i, Op.PING, (), xid=-2)
            out.append((s.label, list(s.events)))
            s.events.clear()
        return out

    def close_session(self, i: int, via_other_connection: bool) -> None:
        s = self.sessions[i]
        if via_other_connection:
            # As kazoo's harness expires a session: a second connection closes it.
            other = RawClient(self.host, self.port, session_id=s.client.session_id, passwd=s.client.passwd)
            other.close()
            s.client.sock.close()
        else:
            s.client.close()
        self.sessions[i] = self._open(i)


def _parse(driver: Driver, op: int, err: int, r: Reader):
    if err:
        return ("err", err)
    if op in (Op.CREATE,):
        return r.ustring()
    if op in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        return (r.ustring(), driver.stat(r))
    if op == Op.GET_DATA:
        return (r.buffer(), driver.stat(r))
    if op in (Op.EXISTS, Op.SET_DATA, Op.SET_ACL):
        return driver.stat(r)
    if op == Op.GET_CHILDREN:
        return sorted(r.strings())
    if op == Op.GET_CHILDREN2:
        return (sorted(r.strings()), driver.stat(r))
    if op == Op.GET_ACL:
        return (r.acls(), driver.stat(r))
    if op == Op.GET_ALL_CHILDREN_NUMBER:
        return r.int()
    if op == Op.GET_EPHEMERALS:
        return sorted(r.strings())
    if op == Op.SYNC:
        return r.ustring()
    if op == Op.WHO_AM_I:
        return [(r.ustring(), r.ustring()) for _ in range(r.int())]
    if op in (Op.MULTI, Op.MULTI_READ):
        out = []
        while True:
            t, done, _err = r.int(), r.bool(), r.int()
            if done:
                break
            if t == -1:
                out.append(("err", r.int()))
            elif t == Op.CREATE:
                out.append(("create", r.ustring()))
            elif t == Op.CREATE2:
                out.append(("create2", r.ustring(), driver.stat(r)))
            elif t == Op.SET_DATA:
                out.append(("set", driver.stat(r)))
            elif t == Op.GET_DATA:
                out.append(("get", r.buffer(), driver.stat(r)))
            elif t == Op.GET_CHILDREN:
                out.append(("children", sorted(r.strings())))
            else:
                out.append((t,))
        return out
    return None


class Workload:
    """Generates the op sequence from a seed; `known` paths feed later ops."""

    def __init__(self, seed: int, sessions: int) -> None:
        self.rng = random.Random(seed)
        self.n = sessions
        self.known = ["/d", "/d/a", "/d/b"]

    def path(self) -> str:
        rng = self.rng
        if self.known and rng.random() < 0.6:
            p = rng.choice(self.known)
            if rng.random() < 0.3:
                p = p + "/" + rng.choice(NAMES)
            return p
        depth = rng.randint(1, 3)
        return "/d/" + "/".join(rng.choice(NAMES) for _ in range(depth))

    def bad_path(self) -> str:
        return self.rng.choice(["d", "/d/", "/d//a", "/d/./a", "/d/../a", "/d/\u0001", ""])

    def version(self) -> int:
        return self.rng.choice([-1, -1, 0, 1, 2, 5])

    def data(self) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(self.rng.choice([0, 1, 5, 20])))

    def create_args(self) -> tuple[int, tuple]:
        rng = self.rng
        flags = rng.choice([0, 0, 1, 2, 3, 4, 5, 6])
        path = self.path() if rng.random() > 0.05 else self.bad_path()
        if flags in (2, 3, 6) and rng.random() < 0.3:
            path = path + "/"  # sequential children of a parent: "/p/" + 0000000001
        acl = rng.choice(ACLS) if rng.random() < 0.3 else OPEN
        if flags in (5, 6):
            ttl = rng.choice([1000000, 1000000, 0, -5])
            return Op.CREATE_TTL, (path, self.data(), acl, flags, ttl)
        op = Op.CREATE_CONTAINER if flags == 4 else rng.choice([Op.CREATE, Op.CREATE2])
        return op, (path, self.data(), acl, flags, -1)

    def sub_op(self) -> tuple[int, tuple]:
        rng = self.rng
        k = rng.random()
        if k < 0.4:
            op, args = self.create_args()
            if op == Op.CREATE_TTL:
                op, args = Op.CREATE, (args[0], args[1], args[2], 0, -1)
            return op, args
        if k < 0.6:
            return Op.DELETE, (self.path(), self.version())
        if k < 0.8:
            return Op.SET_DATA, (self.path(), self.data(), self.version())
        return Op.CHECK, (self.path(), self.version())

    def next(self) -> tuple:
        """(kind, session, op, args)"""
        rng = self.rng
        i = rng.randrange(self.n)
        k = rng.random()
        if k < 0.22:
            op, args = self.create_args()
            return ("op", i, op, args)
        if k < 0.30:
            return ("op", i, Op.DELETE, (self.path(), self.version()))
        if k < 0.40:
            return ("op", i, Op.SET_DATA, (self.path(), self.data(), self.version()))
        if k < 0.50:
            return ("op", i, Op.GET_DATA, (self.path(), rng.random() < 0.5))
        if k < 0.57:
            return ("op", i, Op.EXISTS, (self.path(), rng.random() < 0.5))
        if k < 0.64:
            return ("op", i, rng.choice([Op.GET_CHILDREN, Op.GET_CHILDREN2]), (self.path(), rng.random() < 0.5))
        if k < 0.67:
            return ("op", i, Op.GET_ACL, (self.path(),))
        if k < 0.70:
            return ("op", i, Op.SET_ACL, (self.path(), rng.choice(ACLS), self.version()))
        if k < 0.76:
            return ("op", i, Op.MULTI, ([self.sub_op() for _ in range(rng.randint(0, 4))],))
        if k < 0.78:
            ops = [(rng.choice([Op.GET_DATA, Op.GET_CHILDREN]), (self.path(), False)) for _ in range(rng.randint(1, 3))]
            return ("op", i, Op.MULTI_READ, (ops,))
        if k < 0.80:
            return ("op", i, Op.SYNC, (self.path(),))
        if k < 0.82:
            return ("op", i, Op.ADD_WATCH, (self.path(), rng.choice([0, 1])))
        if k < 0.84:
            return ("op", i, rng.choice([Op.REMOVE_WATCHES, Op.CHECK_WATCHES]), (self.path(), rng.choice([1, 2, 3, 4, 5])))
        if k < 0.86:
            return ("op", i, Op.GET_EPHEMERALS, (rng.choice(["/", "/d", "/d/a", ""]),))
        if k < 0.88:
            return ("op", i, Op.GET_ALL_CHILDREN_NUMBER, (self.path(),))
        if k < 0.89:
            return ("op", i, Op.WHO_AM_I, ())
        if k < 0.93:
            return ("auth", i, rng.choice(["u1:p1", "u2:p2"]))
        if k < 0.96:
            return ("op", i, Op.DELETE, (rng.choice(self.known), -1))
        return ("close", i, rng.random() < 0.5)


def run(driver: Driver, workload_seed: int, ops: int, sessions: int, on_result=None) -> Transcript:
    """Run `ops` operations; returns the transcript [(step, what, normalised result or events)]."""
    w = Workload(workload_seed, sessions)
    out = Transcript()
    for step in range(ops):
        item = w.next()
        kind = item[0]
        if kind == "op":
            _, i, op, args = item
            xid = -8 if op in (Op.SET_WATCHES, Op.SET_WATCHES2) else None
            err, r = driver.call(i, op, args, xid)
            result = _parse(driver, op, err, r)
            if op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL) and not err:
                created = result if isinstance(result, str) else result[0]
                if created not in w.known:
                    w.known.append(created)
            out.append((step, (i, Op(op).name, args), result))
        elif kind == "auth":
            _, i, cred = item
            err, _ = driver.call(i, Op.AUTH, (0, "digest", cred.encode()), xid=-4)
            out.append((step, (i, "auth", cred), err))
        else:
            _, i, other = item
            driver.close_session(i, other)
            out.append((step, (i, "close", other), None))
        if step % 25 == 24 or kind == "close":
            out.append((step, "events", driver.drain_events()))
    out.append((ops, "events", driver.drain_events()))
    return out
