"""Fuzz cases for zkpy's client and peer ports, pure: (seed, index) -> the bytes of one case.

A case is what one fuzzing connection sends: a list of chunks, each written with its own
`send` (so frames also arrive split and spliced across reads).  Every case is a function of
`(seed, index)` alone, whatever the number of parallel connections, so a failing case
replays from its two numbers, or from the bytes saved with them (zkpy/testing/fuzz.py).

Client cases start from valid frames (a connect request, then request records of every op
in zkpy/protocol/jute.py: multi, auth, setWatches, sasl 102, ...; or a four-letter word)
and lie in their structure: string and buffer lengths negative, -1, off by one or huge,
vector counts that do not match, ints at their bounds, a different op code, then bit flips,
truncations, splices of two frames, repeats, frame lengths that lie, and frames at and just
over jute.maxbuffer.  Peer cases send a hello (a member's id, an unknown one, a mangled
one) and then ZAB and forwarding messages (zkpy/consensus/zab.py, zkpy/server/member.py)
with fields of the wrong type, bounds or count, broken msgpack and lying frame lengths.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

import msgpack

from ..protocol import jute
from ..protocol.codes import Op
from ..server.fourletter import COMMANDS

_I = struct.Struct(">i").pack
_Q = struct.Struct(">q").pack

# Paths the fuzzer writes under are cleaned by the runner's janitor; /canary is the canary's.
PATHS = ["/", "/fuzz", "/fuzz/a", "/fuzz/b/c", "/fuzz/", "/fuzz//x", "/fuzz/./x", "/fuzz/\u2603", "/zookeeper",
         "/zookeeper/quota", "/zookeeper/config", "/canary", "/canary/w", "", "fuzz", "/fuzz/\x00x",
         "/fuzz/" + "x" * 300]
INTS = [0, 1, -1, 2, 0x7FFFFFFF, -0x80000000, 0xFFFFF, 0x100000, 255, 256, 65535, -2]
LONGS = [0, 1, -1, 2**63 - 1, -(2**63), 2**32, 0xFFFFFFFF]
SCHEMES = ["world", "digest", "ip", "auth", "super", "sasl", "x509", "", "\u2603"]

# The fields of each request record, in order (zookeeper.jute), as zkpy's decoders read them.
_CREATE = ("path", "buf", "acls", "flags")
RECORDS: dict[int, tuple[str, ...]] = {
    Op.CREATE: _CREATE, Op.CREATE2: _CREATE, Op.CREATE_CONTAINER: _CREATE, Op.CREATE_TTL: _CREATE + ("long",),
    Op.DELETE: ("path", "int"), Op.CHECK: ("path", "int"), Op.EXISTS: ("path", "bool"),
    Op.GET_DATA: ("path", "bool"), Op.GET_CHILDREN: ("path", "bool"), Op.GET_CHILDREN2: ("path", "bool"),
    Op.SET_DATA: ("path", "buf", "int"), Op.GET_ACL: ("path",), Op.SET_ACL: ("path", "acls", "int"),
    Op.SYNC: ("path",), Op.GET_ALL_CHILDREN_NUMBER: ("path",), Op.GET_EPHEMERALS: ("path",),
    Op.AUTH: ("int", "scheme", "buf"), Op.SASL: ("buf",),
    Op.SET_WATCHES: ("long", "strings", "strings", "strings"),
    Op.SET_WATCHES2: ("long", "strings", "strings", "strings", "strings", "strings"),
    Op.ADD_WATCH: ("path", "mode"), Op.REMOVE_WATCHES: ("path", "int"), Op.CHECK_WATCHES: ("path", "int"),
    Op.RECONFIG: ("str", "str", "str", "long"), Op.PING: (), Op.WHO_AM_I: (), Op.CLOSE_SESSION: (),
    Op.MULTI: ("multi",), Op.MULTI_READ: ("multiread",),
}
_MULTI_SUBOPS = [Op.CREATE, Op.CREATE2, Op.DELETE, Op.SET_DATA, Op.CHECK, Op.CREATE_TTL, Op.CREATE_CONTAINER]
_MULTIREAD_SUBOPS = [Op.GET_DATA, Op.GET_CHILDREN]
_OPS = sorted(RECORDS)
_XIDS = [1, 2, 3, 0, -1, -2, -4, -8, 0x7FFFFFFF, -0x80000000]

# ZAB and forwarding messages: kind -> field kinds (zkpy/consensus/zab.py _SCHEMA, forwarding.schema).
PEER_MESSAGES: dict[str, tuple[str, ...]] = {
    "vote": ("state", "int", "int", "epoch", "int", "epoch"), "followerinfo": ("epoch", "int", "join"),
    "ackepoch": ("epoch", "epoch", "int", "join", "lasts", "int"), "ack": ("epoch", "int", "bool"),
    "pong": ("epoch",), "leaderinfo": ("epoch", "join?"),
    "sync": ("epoch", "synckind", "int?", "bytes?", "entries", "int", "join?"),
    "uptodate": ("epoch", "int"), "proposal": ("epoch", "int", "bytes"), "commit": ("epoch", "int"),
    "ping": ("epoch", "int"),
}
APP_MESSAGES: dict[str, tuple[str, ...]] = {
    "request": ("int", "int", "op", "body", "identities"), "createsession": ("int", "int"),
    "closesession": ("int", "int"), "touch": ("intlist",), "revalidate": ("int", "int"),
    "revalidated": ("int", "bool"), "sync": ("int",), "synced": ("int", "int"),
}
# Ints in peer messages are beyond any epoch a zxid can carry (2**31 and up, or below -1), so
# a member must drop every message that carries one as an epoch.  A well-formed message with
# a plausible epoch from a claimed member id is a forgery, which no unauthenticated ZAB
# withstands (nor ZooKeeper's quorum port without quorum SASL): out of this fuzzer's scope.
FAR_EPOCHS = [2**31, 2**40, 2**62, -(2**63), 2**64 - 1, -2]


@dataclass
class Case:
    """One connection's worth of fuzz: the chunks to send and how many frames they hold."""

    seed: int
    index: int
    port: str  # "client" or "peer"
    kind: str  # what made it, for the report
    chunks: list[bytes] = field(default_factory=list)
    frames: int = 0
    member: int = 1  # for peer cases: which member's quorum port (1-based position in the ensemble)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def rng_for(seed: int, index: int) -> random.Random:
    return random.Random(seed * 1_000_003 + index)


# ---------------------------------------------------------------- client port


class _RecordWriter:
    """Encodes request fields, telling a lie in some of them (a length, a count, a bound)."""

    def __init__(self, rng: random.Random, lie: float) -> None:
        self.rng = rng
        self.lie = lie  # the chance that one field lies

    def _lying(self) -> bool:
        return self.rng.random() < self.lie

    def _length(self, n: int) -> int:
        rng = self.rng
        if not self._lying():
            return n
        return rng.choice([-1, -2, -(2**31), n + 1, n - 1, 2**31 - 1, 0xFFFFF, n * 2 + 7])

    def raw(self, b: bytes) -> bytes:
        return _I(self._length(len(b))) + b

    def string(self, s: str) -> bytes:
        b = s.encode("utf-8", "surrogatepass")
        if self._lying():
            b = self.rng.choice([b"\xff\xfe", b + b"\xc3", b"\xed\xa0\x80", b"\x00"])  # invalid UTF-8, NUL
        return self.raw(b)

    def int(self, v: int | None = None) -> bytes:
        rng = self.rng
        if v is None or self._lying():
            v = rng.choice(INTS) if rng.random() < 0.7 else rng.randint(-(2**31), 2**31 - 1)
        return _I(v)

    def long(self) -> bytes:
        rng = self.rng
        return _Q(rng.choice(LONGS) if rng.random() < 0.7 else rng.randint(-(2**63), 2**63 - 1))

    def count(self, n: int) -> bytes:
        return _I(self._length(n))

    def field(self, kind: str) -> bytes:
        rng = self.rng
        if kind == "path":
            return self.string(rng.choice(PATHS))
        if kind == "str":
            return self.string(rng.choice(["", "server.1=127.0.0.1:1:2", "x" * 50])) if rng.random() < 0.8 \
                else _I(-1)
        if kind == "scheme":
            return self.string(rng.choice(SCHEMES))
        if kind == "buf":
            size = rng.choice([0, 1, 5, 64, 1024]) if rng.random() < 0.95 else rng.randint(0, 100_000)
            return _I(-1) if rng.random() < 0.05 else self.raw(rng.randbytes(size))
        if kind == "int":
            return self.int()
        if kind == "flags":
            return self.int(rng.choice([0, 1, 2, 3, 4, 5, 6, -1, 7, 0x7FFFFFFF]))
        if kind == "mode":
            return self.int(rng.choice([0, 1, 2, -1]))
        if kind == "long":
            return self.long()
        if kind == "bool":
            return bytes([rng.choice([0, 1, 2, 255])])
        if kind == "acls":
            n = rng.choice([0, 1, 1, 2, 3])
            out = [self.count(n)]
            for _ in range(n):
                out += [self.int(rng.choice([31, 1, 0, -1, 32])), self.string(rng.choice(SCHEMES)),
                        self.string(rng.choice(["anyone", "u:p", "127.0.0.1", "10.0.0.0/8", "", "x:y:z"]))]
            return b"".join(out)
        if kind == "strings":
            n = rng.choice([0, 1, 2, 5])
            return self.count(n) + b"".join(self.string(rng.choice(PATHS)) for _ in range(n))
        if kind in ("multi", "multiread"):
            subs = _MULTI_SUBOPS if kind == "multi" else _MULTIREAD_SUBOPS
            parts = []
            for _ in range(rng.choice([0, 1, 2, 3, 8])):
                op = rng.choice(subs) if rng.random() < 0.9 else rng.choice(_OPS)
                parts.append(_I(op) + bytes([0 if rng.random() < 0.95 else rng.randint(1, 255)]) + self.int(-1))
                parts.append(self.body(op))
            if rng.random() < 0.9:
                parts.append(_I(-1) + b"\x01" + _I(-1))
            return b"".join(parts)
        raise ValueError(kind)

    def body(self, op: int) -> bytes:
        return b"".join(self.field(kind) for kind in RECORDS.get(op, ()))


def request_frame(rng: random.Random, lie: float, max_frame: int) -> bytes:
    """One request frame, structure-aware: a real op's record with some fields lying."""
    op = rng.choice(_OPS) if rng.random() < 0.95 else rng.choice([10, 23, 99, 108, 999, -10, -11, -1, 0, 2**31 - 1])
    body = _RecordWriter(rng, lie).body(op)
    payload = _I(rng.choice(_XIDS) if rng.random() < 0.3 else rng.randint(1, 10**6)) + _I(op) + body
    return _I(len(payload)) + payload


def _mutate(rng: random.Random, frame: bytes, max_frame: int) -> bytes:
    """Byte-level damage to one frame: flips, a cut, a lying length, an insertion."""
    f = bytearray(frame)
    how = rng.choice(["flip", "flip", "cut", "cut_fixed", "length", "insert", "zero"])
    if how == "flip" and f:
        for _ in range(rng.randint(1, 8)):
            f[rng.randrange(len(f))] ^= 1 << rng.randrange(8)
    elif how in ("cut", "cut_fixed") and len(f) > 4:
        f = f[: rng.randrange(4, len(f))]
        if how == "cut_fixed":
            f[:4] = _I(len(f) - 4)  # a shorter record with an honest frame length
    elif how == "length":
        n = len(f) - 4
        f[:4] = _I(rng.choice([-1, -(2**31), 0, 1, n - 1, n + 1, max_frame, max_frame + 1, 2**31 - 1]))
    elif how == "insert":
        pos = rng.randrange(4, len(f) + 1)
        f[pos:pos] = rng.randbytes(rng.randint(1, 16))
        if rng.random() < 0.5:
            f[:4] = _I(len(f) - 4)
    elif f:
        pos = rng.randrange(4, max(5, len(f)))
        f[pos : pos + 4] = b"\x00\x00\x00\x00"
    return bytes(f)


def connect_frame(rng: random.Random, lie: float) -> bytes:
    """A connect request (ConnectRequest), valid or lying in a field."""
    if rng.random() >= lie:
        return jute.encode_connect_request(timeout=rng.choice([400, 2000, 4000]), read_only=rng.choice([False, None]))
    w = _RecordWriter(rng, 0.5)
    body = (w.int(rng.choice([0, 0, 1, -1])) + w.long() + w.int(rng.choice([0, 1, -1, 4000, 2**31 - 1]))
            + w.long() + w.raw(rng.randbytes(rng.choice([16, 0, 15, 17, 300])))
            + rng.choice([b"", b"\x00", b"\x01", b"\x02\x03"]))
    return _I(len(body)) + body


def _four_letter(rng: random.Random) -> bytes:
    word = rng.choice(COMMANDS).encode()
    how = rng.random()
    if how < 0.5:
        return word
    if how < 0.7:
        return word.upper() if rng.random() < 0.5 else word[: rng.randint(1, 3)]
    return word + rng.randbytes(rng.randint(1, 64))


def client_case(seed: int, index: int, max_frame: int) -> Case:
    """One client-port connection's worth of fuzz."""
    rng = rng_for(seed, index)
    roll = rng.random()
    if roll < 0.03:
        case = Case(seed, index, "client", "fourletter", [_four_letter(rng)], 1)
    elif roll < 0.08:
        data = rng.randbytes(rng.choice([1, 3, 4, 5, 40, 300, 4096]))
        case = Case(seed, index, "client", "raw", [data], 1)
    elif roll < 0.15:
        frames = [connect_frame(rng, 0.9)]
        if rng.random() < 0.5:
            frames.append(_mutate(rng, frames[0], max_frame))
        frames += [request_frame(rng, 0.0, max_frame) for _ in range(rng.randint(0, 3))]
        case = Case(seed, index, "client", "connect", frames, len(frames))
    else:
        case = _session_case(rng, Case(seed, index, "client", "session"), max_frame)
    return _split(rng, case)


def _session_case(rng: random.Random, case: Case, max_frame: int) -> Case:
    """A valid handshake, then a batch of requests: valid, lying in a field, or damaged."""
    frames = [connect_frame(rng, 0.0)]
    lie = rng.choice([0.0, 0.05, 0.2, 0.5])
    for _ in range(rng.choice([1, 4, 16, 40, 80])):
        f = request_frame(rng, lie, max_frame)
        roll = rng.random()
        if roll < 0.15:
            f = _mutate(rng, f, max_frame)
        elif roll < 0.18 and frames:
            f = frames[-1] * rng.randint(2, 5)  # the same frame again (counted once per copy below)
            case.frames += f.count(frames[-1]) - 1
        elif roll < 0.2:
            a, b = f, request_frame(rng, lie, max_frame)
            cut = rng.randrange(1, len(a) + 1)
            f = a[:cut] + b[rng.randrange(len(b)):]  # a splice: one frame's head, another's tail
        frames.append(f)
    if rng.random() < 0.02:
        frames.append(big_frame(rng, max_frame))
    frames.append(jute.encode_request(-2, Op.PING, ()))
    case.chunks = frames
    case.frames += len(frames)
    return case


def big_frame(rng: random.Random, max_frame: int) -> bytes:
    """A setData or create at (or just past) jute.maxbuffer: the frame as the length says, or a lie."""
    size = rng.choice([max_frame, max_frame + 1, max_frame - 1, max_frame + 4])
    header = _I(rng.randint(1, 10**6)) + _I(rng.choice([Op.SET_DATA, Op.CREATE, Op.MULTI]))
    path = jute.enc_string("/fuzz/big")
    filler = max(0, size - len(header) - len(path) - 8)
    payload = (header + path + _I(filler) + bytes(filler) + _I(-1))[:size]
    return _I(size) + payload.ljust(size, b"\x00")


def _split(rng: random.Random, case: Case) -> Case:
    """Resend the same bytes in other pieces: whole frames, one piece, or random cuts."""
    how = rng.random()
    if how < 0.6:
        return case
    data = case.data
    if how < 0.8 or len(data) < 2:
        case.chunks = [data]
    else:
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
        case.chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    return case


# ---------------------------------------------------------------- peer ports


def _peer_value(rng: random.Random, kind: str, good: float):
    """A value of a ZAB field kind, usually of the right type (`good`), else anything."""
    if kind == "epoch":  # anything but an epoch a zxid can carry (see FAR_EPOCHS)
        v = _any_value(rng) if rng.random() >= good else rng.choice(FAR_EPOCHS)
        return 2**31 if type(v) is int and -1 <= v < 2**31 else v
    if rng.random() >= good:
        return _any_value(rng)
    if kind == "int":
        return rng.choice(FAR_EPOCHS) if rng.random() < 0.8 else rng.randint(2**33, 2**62)
    if kind == "int?":
        return None if rng.random() < 0.3 else _peer_value(rng, "int", 1)
    if kind == "state":
        return rng.choice(["looking", "leading", "following", "observing"])
    if kind == "bool":
        return rng.random() < 0.5
    if kind in ("join", "join?"):
        return None if kind == "join?" and rng.random() < 0.3 else [_peer_value(rng, "int", 1),
                                                                     _peer_value(rng, "int", 1)]
    if kind == "lasts":
        return [[_peer_value(rng, "int", 1), _peer_value(rng, "int", 1)] for _ in range(rng.randint(0, 3))]
    if kind in ("bytes", "bytes?", "body"):
        return None if kind == "bytes?" and rng.random() < 0.3 else rng.randbytes(rng.choice([0, 8, 40, 300]))
    if kind == "entries":
        return [[_peer_value(rng, "int", 1), rng.randbytes(rng.randint(0, 40))] for _ in range(rng.randint(0, 3))]
    if kind == "synckind":
        return rng.choice(["diff", "trunc", "snap"])
    if kind == "op":
        return rng.choice(_OPS + [999, -1])
    if kind == "identities":
        return [[rng.choice(SCHEMES), rng.choice(["anyone", "x"])] for _ in range(rng.randint(0, 2))]
    if kind == "intlist":
        return [_peer_value(rng, "int", 1) for _ in range(rng.randint(0, 4))]
    raise ValueError(kind)


def _any_value(rng: random.Random, depth: int = 0):
    roll = rng.randrange(9 if depth < 2 else 7)
    if roll == 0:
        return rng.choice([0, -1, 1, 2**63, 2**64 - 1, -(2**63), 2**32])
    if roll == 1:
        return rng.choice(["", "vote", "app", "hello", "\u2603", "x" * 1000])
    if roll == 2:
        return rng.randbytes(rng.randint(0, 30))
    if roll == 3:
        return None
    if roll == 4:
        return rng.random() < 0.5
    if roll == 5:
        return rng.choice([0.5, float("nan"), float("inf"), -0.0])
    if roll == 6:
        return msgpack.ExtType(rng.randint(0, 127), rng.randbytes(4))
    if roll == 7:
        return [_any_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {str(i): _any_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def peer_message(rng: random.Random) -> bytes:
    """One peer frame (4-byte length, msgpack body), structure-aware with damage."""
    good = rng.choice([1.0, 0.9, 0.6])
    roll = rng.random()
    if roll < 0.5:
        kind = rng.choice(sorted(PEER_MESSAGES))
        fields = PEER_MESSAGES[kind]
        msg: object = [kind] + [_peer_value(rng, f, good) for f in fields]
    elif roll < 0.85:
        kind = rng.choice(sorted(APP_MESSAGES))
        msg = ["app", kind] + [_peer_value(rng, f, good) for f in APP_MESSAGES[kind]]
    else:
        msg = _any_value(rng)
    if type(msg) is list and rng.random() < 0.15:  # a field too many or too few
        msg = msg[:-1] if msg and rng.random() < 0.5 else msg + [_any_value(rng)]
    body = msgpack.packb(msg, use_bin_type=True)
    roll = rng.random()
    if roll < 0.05:
        body = body[: rng.randrange(len(body) + 1)]  # broken msgpack
    elif roll < 0.1 and body:
        b = bytearray(body)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        body = bytes(b)
    elif roll < 0.12:
        body = rng.randbytes(rng.randint(0, 64))
    frame = struct.pack(">I", len(body)) + body
    if rng.random() < 0.01:  # a lying length: more than follows, past MAX_FRAME, or "negative"
        frame = struct.pack(">I", rng.choice([len(body) + 1, 2**28 + 1, 2**31, 2**32 - 1])) + body
    return frame


def peer_case(seed: int, index: int, member_ids: list[int]) -> Case:
    """One impostor connection to a member's quorum port."""
    rng = rng_for(seed, index)
    member = rng.choice(member_ids)
    others = [s for s in member_ids if s != member]
    roll = rng.random()
    case = Case(seed, index, "peer", "raw", member=member)
    if roll < 0.05:
        case.chunks = [rng.randbytes(rng.choice([1, 3, 4, 9, 100, 2000]))]
        case.frames = 1
        return _split(rng, case)
    if roll < 0.15:
        hello = rng.choice([["hello", 99], ["hello", -1], ["hello"], ["hello", "1"], ["hello", member], "hello",
                            ["hello", 2**64 - 1], ["HELLO", others[0]], ["hello", others[0], 1]])
        case.kind = "bad-hello"
    else:
        hello = ["hello", rng.choice(others)]
        case.kind = "impostor"
    frames = [struct.pack(">I", len(b)) + b for b in [msgpack.packb(hello, use_bin_type=True)]]
    frames += [peer_message(rng) for _ in range(rng.choice([1, 5, 20, 60]))]
    case.chunks = frames
    case.frames = len(frames)
    return _split(rng, case)
