"""The jute codec (zkpy.protocol.jute).

- Round trips: `encode_request` -> `decode_request` for every op in `jute.DECODERS`
  (multi with nested ops, ACL lists, unicode, null buffers), the connect request and
  response, reply headers, watch events, Stat.
- Against an independent implementation: kazoo's serializers must produce the same bytes
  as `encode_request`, our decoders must read kazoo's bytes, and kazoo must read our
  responses.
- Bad input: truncated or corrupted frames raise `JuteError` — never another exception,
  never a hang (every decode runs under an alarm).
"""

from __future__ import annotations

import signal
import struct
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.protocol import serialization as kz
from kazoo.security import ACL as KazooACL
from kazoo.security import Id as KazooId

from zkpy.protocol import jute
from zkpy.protocol.codes import Op

pytestmark = pytest.mark.timeout(60)

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
text = st.text(max_size=30)  # any unicode but lone surrogates (which UTF-8 cannot carry)
paths = st.one_of(text.map(lambda s: "/" + s), text)  # the codec does not judge paths
buffers = st.one_of(st.none(), st.binary(max_size=64))
schemes = st.one_of(st.sampled_from(["world", "digest", "ip", "auth", "sasl", "x509"]), text)
acl = st.tuples(int32, schemes, text)
acls = st.lists(acl, max_size=5)
create = st.tuples(paths, buffers, acls, int32, st.just(-1))

ARGS = {
    Op.CREATE: create,
    Op.CREATE2: create,
    Op.CREATE_CONTAINER: create,
    Op.CREATE_TTL: st.tuples(paths, buffers, acls, int32, int64),
    Op.DELETE: st.tuples(paths, int32),
    Op.EXISTS: st.tuples(paths, st.booleans()),
    Op.GET_DATA: st.tuples(paths, st.booleans()),
    Op.SET_DATA: st.tuples(paths, buffers, int32),
    Op.GET_ACL: st.tuples(paths),
    Op.SET_ACL: st.tuples(paths, acls, int32),
    Op.GET_CHILDREN: st.tuples(paths, st.booleans()),
    Op.GET_CHILDREN2: st.tuples(paths, st.booleans()),
    Op.GET_ALL_CHILDREN_NUMBER: st.tuples(paths),
    Op.GET_EPHEMERALS: st.tuples(paths),
    Op.CHECK: st.tuples(paths, int32),
    Op.SYNC: st.tuples(paths),
    Op.PING: st.just(()),
    Op.AUTH: st.tuples(int32, st.text(min_size=1, max_size=10), st.binary(max_size=30)),
    Op.SET_WATCHES: st.tuples(int64, *[st.lists(paths, max_size=4)] * 3, st.just([]), st.just([])),
    Op.SET_WATCHES2: st.tuples(int64, *[st.lists(paths, max_size=4)] * 5),
    Op.ADD_WATCH: st.tuples(paths, st.integers(0, 1)),  # AddWatchMode: PERSISTENT, PERSISTENT_RECURSIVE
    Op.REMOVE_WATCHES: st.tuples(paths, int32),
    Op.CHECK_WATCHES: st.tuples(paths, int32),
    Op.WHO_AM_I: st.just(()),
    Op.CLOSE_SESSION: st.just(()),
    Op.RECONFIG: st.tuples(*[st.one_of(st.none(), text)] * 3, int64),
    Op.SASL: st.tuples(buffers),
}
WRITE_SUB_OPS = [Op.CREATE, Op.CREATE2, Op.CREATE_TTL, Op.CREATE_CONTAINER, Op.DELETE, Op.SET_DATA, Op.CHECK]
READ_SUB_OPS = [Op.GET_DATA, Op.GET_CHILDREN]
ARGS[Op.MULTI] = st.tuples(st.lists(st.one_of(*[st.tuples(st.just(op), ARGS[op]) for op in WRITE_SUB_OPS]), max_size=6))
ARGS[Op.MULTI_READ] = st.tuples(st.lists(st.one_of(*[st.tuples(st.just(op), ARGS[op]) for op in READ_SUB_OPS]),
                                         max_size=6))


def test_every_decoder_has_a_strategy():
    assert set(jute.DECODERS) <= set(ARGS), set(jute.DECODERS) - set(ARGS)


@contextmanager
def alarm(seconds: float = 2.0):
    """Fail instead of hanging."""
    def timeout(*_):
        raise TimeoutError("decoder hung")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _normal(op, args):
    """What decoding gives back for what was encoded."""
    if op in (Op.MULTI, Op.MULTI_READ):
        return ([(o, _normal(o, a)) for o, a in args[0]],)
    if op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        return (args[0], args[1], [tuple(a) for a in args[2]], args[3], args[4])
    if op == Op.SET_ACL:
        return (args[0], [tuple(a) for a in args[1]], args[2])
    if op in (Op.SET_WATCHES, Op.SET_WATCHES2):
        return (args[0], *[list(x) for x in args[1:]])
    return tuple(args)


# ---------------------------------------------------------------------------- round trips


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), xid=int32)
def test_request_round_trip(data, xid):
    op = data.draw(st.sampled_from(sorted(set(jute.DECODERS) - CLIENT_UNUSED)))
    _round_trip(xid, op, data.draw(ARGS[op]))


# Decoded by the server (to answer them as ZooKeeper does), sent by no client of ours.
CLIENT_UNUSED = {Op.RECONFIG, Op.SASL}


@pytest.mark.parametrize("op,args", [
    (Op.RECONFIG, ("server.1=127.0.0.1:2888:3888", None, "", -1)),
    (Op.SASL, (b"token",)),
    (Op.SASL, (None,)),
])
def test_request_round_trip_reconfig_and_sasl(op, args):
    _round_trip(7, op, args)


def _round_trip(xid, op, args):
    frame = jute.encode_request(xid, op, args)
    (n,) = struct.unpack(">i", frame[:4])
    assert n == len(frame) - 4
    with alarm():
        got = jute.decode_request(frame[4:])
    assert got == (xid, op, _normal(op, args))


@settings(max_examples=50, deadline=None)
@given(op=st.sampled_from([Op.CREATE, Op.SET_ACL]), perms=int32)
def test_null_acl_scheme_and_id_read_as_empty(op, perms):
    """Some clients send null strings in ACL ids; ZooKeeper's records take them."""
    body = jute.enc_string("/p") + (jute.enc_buffer(b"") if op == Op.CREATE else b"")
    body += jute.INT.pack(1) + jute.INT.pack(perms) + jute.enc_string(None) + jute.enc_string(None) + jute.INT.pack(0)
    _, _, args = jute.decode_request(jute.INT_INT.pack(1, op) + body)
    acl = args[2] if op == Op.CREATE else args[1]
    assert acl == [(perms, "", "")]


def test_multi_with_every_write_sub_op():
    ops = [(Op.CREATE, ("/a", None, [(31, "world", "anyone")], 0, -1)),
           (Op.CREATE2, ("/b", b"", [(1, "digest", "u:x"), (31, "ip", "10.0.0.0/8")], 3, -1)),
           (Op.CREATE_TTL, ("/c", b"\x00", [(31, "world", "anyone")], 5, 60_000)),
           (Op.CREATE_CONTAINER, ("/d", "ü".encode(), [(31, "world", "anyone")], 4, -1)),
           (Op.DELETE, ("/a", -1)), (Op.SET_DATA, ("/b", None, 3)), (Op.CHECK, ("/日本", 0))]
    frame = jute.encode_request(9, Op.MULTI, (ops,))
    assert jute.decode_request(frame[4:]) == (9, Op.MULTI, ([(o, tuple(a)) for o, a in ops],))


def test_unknown_op_decodes_to_none():
    assert jute.decode_request(jute.INT_INT.pack(3, 9999) + b"anything") == (3, 9999, None)


@settings(max_examples=50, deadline=None)
@given(timeout=int32, sid=int64, passwd=st.binary(max_size=40), zxid=int64, ro=st.one_of(st.none(), st.booleans()))
def test_connect_round_trip(timeout, sid, passwd, zxid, ro):
    frame = jute.encode_connect_request(timeout, sid, passwd, zxid, ro)
    req = jute.decode_connect(frame[4:])
    assert (req.protocol_version, req.timeout, req.session_id, req.passwd, req.last_zxid_seen) == \
        (0, timeout, sid, passwd, zxid)
    assert req.has_read_only == (ro is not None) and req.read_only == bool(ro)


@settings(max_examples=50, deadline=None)
@given(timeout=int32, sid=int64, passwd=st.binary(max_size=40), ro=st.booleans(), with_ro=st.booleans())
def test_connect_response(timeout, sid, passwd, ro, with_ro):
    resp = jute.encode_connect_response(timeout, sid, passwd, ro, with_ro)
    (n,) = struct.unpack(">i", resp[:4])
    assert n == len(resp) - 4 == 4 + 4 + 8 + 4 + len(passwd) + (1 if with_ro else 0)
    r = jute.Reader(resp, 4)
    assert (r.int(), r.int(), r.long(), r.buffer()) == (0, timeout, sid, passwd)
    assert r.remaining() == (1 if with_ro else 0)
    if with_ro:
        assert r.bool() == ro
    # kazoo reads it the same way
    theirs, end = kz.Connect.deserialize(resp[4:], 0)
    assert (theirs.protocol_version, theirs.time_out, theirs.session_id, theirs.passwd) == (0, timeout, sid, passwd)
    assert theirs.read_only == (ro if with_ro else False) and end == len(resp) - 4


@settings(max_examples=50, deadline=None)
@given(fields=st.tuples(int64, int64, int64, int64, int32, int32, int32, int64, int32, int32, int64))
def test_stat_round_trip(fields):
    packed = jute.STAT.pack(*fields)
    assert len(packed) == 68
    assert jute.decode_stat(jute.Reader(packed)) == fields
    assert tuple(kz.ZnodeStat._make(kz.stat_struct.unpack_from(packed, 0))) == fields


def test_stat_truncated():
    with pytest.raises(jute.JuteError):
        jute.decode_stat(jute.Reader(b"\x00" * 67))


@settings(max_examples=50, deadline=None)
@given(xid=int32, zxid=int64, err=int32, body=st.binary(max_size=50))
def test_reply_header(xid, zxid, err, body):
    frame = jute.reply(xid, zxid, err, body)
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4 == 16 + len(body)
    assert jute.decode_reply_header(frame[4:]) == (xid, zxid, err) and frame[20:] == body
    assert tuple(kz.ReplyHeader.deserialize(frame[4:], 0)[0]) == (xid, zxid, err)


@settings(max_examples=50, deadline=None)
@given(event_type=st.integers(-1, 7), state=st.integers(-112, 6), path=text)
def test_watch_event(event_type, state, path):
    frame = jute.encode_event(event_type, state, path)
    header, offset = kz.ReplyHeader.deserialize(frame[4:], 0)
    assert (header.xid, header.zxid, header.err) == (-1, -1, 0)
    watch, end = kz.Watch.deserialize(frame[4:], offset)
    assert (watch.type, watch.state, watch.path) == (event_type, state, path) and end == len(frame) - 4


# ---------------------------------------------------------------------------- against kazoo's serializers


def _kazoo_acls(items):
    return [KazooACL(p, KazooId(s, i)) for p, s, i in items]


def _kazoo_request(op, args):
    """The same request as kazoo's serializer builds it, or None where kazoo has none."""
    if op in (Op.CREATE, Op.CREATE2):
        cls = kz.Create if op == Op.CREATE else kz.Create2
        return cls(args[0], args[1], _kazoo_acls(args[2]), args[3])
    simple = {Op.DELETE: kz.Delete, Op.EXISTS: kz.Exists, Op.GET_DATA: kz.GetData, Op.SET_DATA: kz.SetData,
              Op.GET_ACL: kz.GetACL, Op.GET_CHILDREN: kz.GetChildren, Op.GET_CHILDREN2: kz.GetChildren2,
              Op.SYNC: kz.Sync, Op.CHECK: kz.CheckVersion}
    if op in simple:
        return simple[op](*args)
    if op == Op.SET_ACL:
        return kz.SetACL(args[0], _kazoo_acls(args[1]), args[2])
    if op == Op.MULTI:
        subs = [_kazoo_request(o, a) for o, a in args[0]]
        return None if any(s is None for s in subs) else kz.Transaction(subs)
    return None


# kazoo writes an empty string as null (-1): its strings here are never empty
kz_text = st.text(min_size=1, max_size=30)
kz_paths = kz_text.map(lambda s: "/" + s)
kz_acls = st.lists(st.tuples(int32, st.sampled_from(["world", "digest", "ip"]), kz_text), max_size=5)
kz_create = st.tuples(kz_paths, buffers, kz_acls, int32, st.just(-1))
KAZOO_ARGS = {
    Op.CREATE: kz_create, Op.CREATE2: kz_create,
    Op.DELETE: st.tuples(kz_paths, int32), Op.CHECK: st.tuples(kz_paths, int32),
    Op.SET_DATA: st.tuples(kz_paths, buffers, int32), Op.SET_ACL: st.tuples(kz_paths, kz_acls, int32),
    Op.GET_ACL: st.tuples(kz_paths), Op.SYNC: st.tuples(kz_paths),
    **{op: st.tuples(kz_paths, st.booleans())
       for op in (Op.EXISTS, Op.GET_DATA, Op.GET_CHILDREN, Op.GET_CHILDREN2)},
}
KAZOO_ARGS[Op.MULTI] = st.tuples(st.lists(st.one_of(*[st.tuples(st.just(op), KAZOO_ARGS[op])
                                                      for op in (Op.CREATE, Op.DELETE, Op.SET_DATA, Op.CHECK)]),
                                          max_size=5))
KAZOO_OPS = [Op.CREATE, Op.CREATE2, Op.DELETE, Op.EXISTS, Op.GET_DATA, Op.SET_DATA, Op.GET_ACL, Op.SET_ACL,
             Op.GET_CHILDREN, Op.GET_CHILDREN2, Op.SYNC, Op.CHECK, Op.MULTI]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), xid=int32)
def test_same_bytes_as_kazoo(data, xid):
    op = data.draw(st.sampled_from(KAZOO_OPS))
    args = data.draw(KAZOO_ARGS[op])
    theirs = bytes(_kazoo_request(op, args).serialize())
    ours = jute.encode_request(xid, op, args)
    assert ours[12:] == theirs
    assert jute.decode_request(jute.INT_INT.pack(xid, op) + theirs) == (xid, op, _normal(op, args))


@settings(max_examples=50, deadline=None)
@given(auth_type=int32, scheme=st.text(min_size=1, max_size=10), auth=st.text(min_size=1, max_size=20))
def test_auth_packet_like_kazoo(auth_type, scheme, auth):
    theirs = bytes(kz.Auth(auth_type, scheme, auth).serialize())
    assert jute.encode_request(-4, Op.AUTH, (auth_type, scheme, auth.encode()))[12:] == theirs
    assert jute.decode_request(jute.INT_INT.pack(-4, Op.AUTH) + theirs)[2] == (auth_type, scheme, auth.encode())


@settings(max_examples=50, deadline=None)
@given(timeout=int32, sid=int64, passwd=st.binary(min_size=16, max_size=16), zxid=int64, ro=st.booleans())
def test_connect_request_like_kazoo(timeout, sid, passwd, zxid, ro):
    theirs = bytes(kz.Connect(0, zxid, timeout, sid, passwd, ro).serialize())
    assert jute.encode_connect_request(timeout, sid, passwd, zxid, ro)[4:] == theirs


# ---------------------------------------------------------------------------- bad input

S, B, I, L = jute.enc_string, jute.enc_buffer, jute.INT.pack, jute.LONG.pack
HDR = jute.MULTI_HEADER.pack
END = HDR(-1, True, -1)
OPEN = jute.enc_acls([(31, "world", "anyone")])


def _req(op, body, xid=1):
    return jute.INT_INT.pack(xid, op) + body


BAD_REQUESTS = {
    "empty": b"",
    "header-7-bytes": b"\x00" * 7,
    "getData-no-body": _req(Op.GET_DATA, b""),
    "getData-no-watch-byte": _req(Op.GET_DATA, S("/a")),
    "getData-path-len-past-end": _req(Op.GET_DATA, I(100) + b"/a\x00"),
    "getData-path-len-int-max": _req(Op.GET_DATA, I(2**31 - 1) + b"/a\x00"),
    "getData-null-path": _req(Op.GET_DATA, I(-1) + b"\x00"),
    "exists-null-path": _req(Op.EXISTS, I(-1) + b"\x00"),
    "setData-truncated": _req(Op.SET_DATA, S("/a") + I(10) + b"abc"),
    "setData-no-version": _req(Op.SET_DATA, S("/a") + B(b"abc")),
    "setData-null-path": _req(Op.SET_DATA, I(-1) + B(b"") + I(0)),
    "create-acl-count-int-max": _req(Op.CREATE, S("/a") + B(b"") + I(2**31 - 1) + I(0)),
    "create-acl-truncated": _req(Op.CREATE, S("/a") + B(b"") + I(2) + I(31) + S("world")),
    "create-no-flags": _req(Op.CREATE, S("/a") + B(b"") + OPEN),
    "createTTL-no-ttl": _req(Op.CREATE_TTL, S("/a") + B(b"") + OPEN + I(5)),
    "delete-no-version": _req(Op.DELETE, S("/a")),
    "setACL-truncated": _req(Op.SET_ACL, S("/a") + I(1)),
    "setWatches-count-int-max": _req(Op.SET_WATCHES, L(0) + I(2**31 - 1)),
    "setWatches-null-path": _req(Op.SET_WATCHES, L(0) + I(1) + I(-1) + I(0) + I(0)),
    "setWatches2-missing-lists": _req(Op.SET_WATCHES2, L(0) + I(0) + I(0) + I(0)),
    "auth-no-scheme": _req(Op.AUTH, I(0)),
    "addWatch-no-mode": _req(Op.ADD_WATCH, S("/a")),
    "multi-empty-body": _req(Op.MULTI, b""),
    "multi-no-terminator": _req(Op.MULTI, HDR(Op.CHECK, False, -1) + S("/a") + I(-1)),
    "multi-header-truncated": _req(Op.MULTI, HDR(Op.CHECK, False, -1)[:6]),
    "multi-nested-multi": _req(Op.MULTI, HDR(Op.MULTI, False, -1) + END + END),
    "multi-getACL": _req(Op.MULTI, HDR(Op.GET_ACL, False, -1) + S("/a") + END),
    "multi-ping": _req(Op.MULTI, HDR(Op.PING, False, -1) + END),
    "multi-unknown-op": _req(Op.MULTI, HDR(9999, False, -1) + END),
    "multi-sub-op-truncated": _req(Op.MULTI, HDR(Op.CREATE, False, -1) + S("/a") + END),
    "multiRead-nested": _req(Op.MULTI_READ, HDR(Op.MULTI_READ, False, -1) + END + END),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_raises_jute_error(name):
    with alarm(), pytest.raises(jute.JuteError):
        jute.decode_request(BAD_REQUESTS[name])


@pytest.mark.parametrize("request_", [
    pytest.param(_req(Op.SET_DATA, S("/a") + I(-2) + I(0)), id="setData-buffer-length-minus-2"),
    pytest.param(_req(Op.SET_DATA, S("/a") + I(-(2**31)) + I(0)), id="setData-buffer-length-int-min"),
    pytest.param(_req(Op.CREATE, S("/a") + I(-2) + OPEN + I(0)), id="create-buffer-length-minus-2"),
    pytest.param(_req(Op.CREATE, S("/a") + B(b"") + I(1) + I(31) + I(-2) + S("x") + I(0)), id="acl-scheme-length-minus-2"),
    pytest.param(_req(Op.SET_ACL, S("/a") + I(1) + I(31) + S("world") + I(-7) + I(0)), id="acl-id-length-minus-7"),
    pytest.param(_req(Op.AUTH, I(0) + S("digest") + I(-2)), id="auth-length-minus-2"),
])
def test_negative_lengths_other_than_minus_one_are_refused(request_):
    """BinaryInputArchive takes -1 as null and refuses other negative lengths ('Unreasonable length')."""
    with alarm(), pytest.raises(jute.JuteError):
        jute.decode_request(request_)


@pytest.mark.parametrize("raw,decoded", [
    (b"/\xff", "/\ufffd"),
    (b"/a\xc3", "/a\ufffd"),
    (b"/\xed\xa0\x80", "/\ufffd\ufffd\ufffd"),  # an encoded surrogate is not UTF-8
    (b"/\xf0\x9f\x98\x80", "/\U0001f600"),
])
@pytest.mark.parametrize("op", [Op.GET_DATA, Op.EXISTS, Op.SET_DATA, Op.DELETE, Op.CREATE], ids=lambda op: op.name)
def test_invalid_utf8_decodes_as_java_does(op, raw, decoded):
    """Java's new String(bytes, UTF_8) replaces malformed input with U+FFFD; the path rules then refuse it."""
    rest = {Op.GET_DATA: b"\x00", Op.EXISTS: b"\x01", Op.SET_DATA: B(b"d") + I(-1), Op.DELETE: I(-1),
            Op.CREATE: B(b"") + OPEN + I(0)}[op]
    with alarm():
        _, _, args = jute.decode_request(_req(op, I(len(raw)) + raw + rest))
    assert args[0] == decoded


# ConnectRequest: protocolVersion int, lastZxidSeen long, timeOut int, sessionId long, passwd buffer[, readOnly]
@pytest.mark.parametrize("payload", [b"", b"\x00" * 19, b"\x00" * 24, b"\x00" * 27, b"\x00" * 24 + I(16) + b"\x00" * 15,
                                     b"\x00" * 24 + I(2**31 - 1), b"\x00" * 24 + I(-2)])
def test_bad_connect_raises_jute_error(payload):
    with alarm(), pytest.raises(jute.JuteError):
        jute.decode_connect(payload)


def test_connect_with_null_password_and_without_read_only_flag():
    req = jute.decode_connect(b"\x00" * 24 + I(-1))
    assert (req.passwd, req.has_read_only, req.read_only) == (b"", False, False)


def _decode_or_jute_error(fn, payload):
    with alarm():
        try:
            return fn(payload)
        except jute.JuteError:
            return None


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_truncated_or_corrupt_requests_raise_jute_error_only(data):
    op = data.draw(st.sampled_from(sorted(ARGS)))
    frame = bytearray(jute.encode_request(1, op, data.draw(ARGS[op]))[4:])
    how = data.draw(st.sampled_from(["cut", "flip", "splice"]))
    if how == "cut":
        del frame[data.draw(st.integers(0, len(frame))):]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 6))):
            frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    else:  # a length or count field replaced by something hostile
        pos = data.draw(st.integers(8, max(8, len(frame) - 4)))
        frame[pos : pos + 4] = I(data.draw(st.sampled_from([-1, -2, 2**31 - 1, -(2**31), 65536, 0])))
    _decode_or_jute_error(jute.decode_request, bytes(frame))


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200))
def test_random_bytes_raise_jute_error_only(payload):
    _decode_or_jute_error(jute.decode_request, payload)
    _decode_or_jute_error(jute.decode_connect, payload)


@settings(max_examples=200, deadline=None)
@given(op=st.sampled_from(sorted(jute.DECODERS)), body=st.binary(max_size=120))
def test_random_bodies_for_every_op_raise_jute_error_only(op, body):
    _decode_or_jute_error(jute.decode_request, jute.INT_INT.pack(1, op) + body)
