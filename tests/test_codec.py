"""Jute codec: round trips of every request type, connect records, replies and Stat; bad
input raises JuteError and nothing else."""

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkpy.protocol import jute
from zkpy.protocol.codes import Op

paths = st.text(min_size=1, max_size=40).map(lambda s: "/" + s)
buffers = st.one_of(st.none(), st.binary(max_size=64))
acl = st.tuples(st.integers(0, 31), st.sampled_from(["world", "digest", "ip", "auth"]), st.text(max_size=20))
acls = st.lists(acl, max_size=4)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)

ARGS = {
    Op.CREATE: st.tuples(paths, buffers, acls, int32, st.just(-1)),
    Op.CREATE2: st.tuples(paths, buffers, acls, int32, st.just(-1)),
    Op.CREATE_CONTAINER: st.tuples(paths, buffers, acls, int32, st.just(-1)),
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
    Op.SET_WATCHES: st.tuples(int64, st.lists(paths, max_size=3), st.lists(paths, max_size=3), st.lists(paths, max_size=3), st.just([]), st.just([])),
    Op.SET_WATCHES2: st.tuples(int64, *[st.lists(paths, max_size=3)] * 5),
    Op.ADD_WATCH: st.tuples(paths, st.integers(0, 1)),
    Op.REMOVE_WATCHES: st.tuples(paths, st.integers(1, 5)),
    Op.CHECK_WATCHES: st.tuples(paths, st.integers(1, 5)),
    Op.WHO_AM_I: st.just(()),
    Op.CLOSE_SESSION: st.just(()),
}
sub_ops = st.one_of(*[st.tuples(st.just(op), ARGS[op]) for op in (Op.CREATE, Op.CREATE2, Op.DELETE, Op.SET_DATA, Op.CHECK)])
ARGS[Op.MULTI] = st.tuples(st.lists(sub_ops, max_size=5))
ARGS[Op.MULTI_READ] = st.tuples(st.lists(st.tuples(st.sampled_from([Op.GET_DATA, Op.GET_CHILDREN]), st.tuples(paths, st.booleans())), max_size=5))


def _normal(op, args):
    """What a decode gives back for what was encoded (null buffers stay null; kazoo's null ACL ids read as '')."""
    args = tuple(args)
    if op in (Op.MULTI, Op.MULTI_READ):
        return ([(o, _normal(o, a)) for o, a in args[0]],)
    if op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        return (args[0], args[1], list(args[2]), args[3], args[4])
    if op == Op.SET_ACL:
        return (args[0], list(args[1]), args[2])
    if op == Op.AUTH:
        return args
    return args


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), xid=int32)
def test_request_round_trip(data, xid):
    op = data.draw(st.sampled_from(sorted(ARGS)))
    args = data.draw(ARGS[op])
    frame = jute.encode_request(xid, op, args)
    (n,) = struct.unpack(">i", frame[:4])
    assert n == len(frame) - 4
    got_xid, got_op, got_args = jute.decode_request(frame[4:])
    assert (got_xid, got_op) == (xid, op)
    assert got_args == _normal(op, args)


@given(timeout=int32, sid=int64, passwd=st.binary(max_size=16), zxid=int64, ro=st.one_of(st.none(), st.booleans()))
def test_connect_round_trip(timeout, sid, passwd, zxid, ro):
    frame = jute.encode_connect_request(timeout, sid, passwd, zxid, ro)
    req = jute.decode_connect(frame[4:])
    assert (req.timeout, req.session_id, req.passwd, req.last_zxid_seen) == (timeout, sid, passwd, zxid)
    assert req.has_read_only == (ro is not None) and req.read_only == bool(ro)
    resp = jute.encode_connect_response(timeout, sid, passwd, False, ro is not None)
    r = jute.Reader(resp, 4)
    assert (r.int(), r.int(), r.long(), r.buffer()) == (0, timeout, sid, passwd)


@given(fields=st.tuples(int64, int64, int64, int64, int32, int32, int32, int64, int32, int32, int64))
def test_stat_round_trip(fields):
    assert jute.decode_stat(jute.Reader(jute.STAT.pack(*fields))) == fields


@given(xid=int32, zxid=int64, err=int32, body=st.binary(max_size=50))
def test_reply_header(xid, zxid, err, body):
    frame = jute.reply(xid, zxid, err, body)
    assert jute.decode_reply_header(frame[4:]) == (xid, zxid, err) and frame[20:] == body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_truncated_or_corrupt_requests_raise_jute_error_only(data):
    op = data.draw(st.sampled_from(sorted(ARGS)))
    frame = bytearray(jute.encode_request(1, op, data.draw(ARGS[op]))[4:])
    if data.draw(st.booleans()) and len(frame) > 8:
        del frame[data.draw(st.integers(8, len(frame) - 1)):]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    try:
        jute.decode_request(bytes(frame))
    except jute.JuteError:
        pass
