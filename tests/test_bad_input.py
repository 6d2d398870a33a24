"""Malformed and hostile input: ZooKeeper's error code or the connection closed as
ZooKeeper closes it — and the server alive, other sessions undisturbed."""

import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient

from zkpy.protocol import jute
from zkpy.protocol.codes import Err, Op
from zkpy.testing import ZkpyServer
from zkpy.testing.client import RawClient


@pytest.fixture(scope="module")
def srv():
    with ZkpyServer(jute_max_buffer=64 * 1024, max_client_cnxns=40) as s:
        yield s


@pytest.fixture(scope="module")
def bystander(srv):
    """A session that must not notice anything of the abuse."""
    c = KazooClient(srv.connect_string, timeout=10)
    c.start(10)
    c.create("/bystander", b"alive", ephemeral=True)
    yield c
    c.stop()
    c.close()


def _assert_healthy(srv, bystander):
    assert srv.four_letter_word("ruok") == "imok"
    assert bystander.get("/bystander")[0] == b"alive"
    assert bystander.exists("/bystander").ephemeralOwner == bystander.client_id[0]


def _closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _connected(srv) -> socket.socket:
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.sendall(jute.encode_connect_request(10000))
    n = struct.unpack(">i", s.recv(4))[0]
    while n > 0:
        n -= len(s.recv(n))
    return s


@pytest.mark.parametrize("payload", [
    b"\xff\xff\xff\xff",                      # negative length
    struct.pack(">i", 10**9),                 # far over jute.maxbuffer
    struct.pack(">i", 64 * 1024 + 1) + b"x",  # just over the configured maxbuffer
    b"\x00\x00\x00\x03abc",                   # a connect record too short to parse
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",      # something else entirely
])
def test_garbage_before_handshake_closes_the_connection(srv, bystander, payload):
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.sendall(payload)
    assert _closed(s)
    _assert_healthy(srv, bystander)


def test_truncated_frame_then_close(srv, bystander):
    s = _connected(srv)
    s.sendall(struct.pack(">i", 100) + b"\x00" * 10)
    s.close()
    _assert_healthy(srv, bystander)


def test_unknown_op_code_gets_unimplemented_and_close(srv, bystander):
    s = _connected(srv)
    s.sendall(jute.INT.pack(8) + jute.INT_INT.pack(7, 9999))
    frame = s.recv(100)
    assert jute.decode_reply_header(frame[4:]) [2] == Err.UNIMPLEMENTED
    assert _closed(s)
    _assert_healthy(srv, bystander)


def test_truncated_request_body_gets_marshalling_error(srv, bystander):
    c = RawClient(srv.host, srv.port)
    body = jute.INT_INT.pack(1, Op.GET_DATA) + struct.pack(">i", 50) + b"/short"
    c.sock.sendall(jute.INT.pack(len(body)) + body)
    frame = c._frame()
    xid, _zxid, err = jute.decode_reply_header(frame)
    assert (xid, err) == (1, Err.MARSHALLINGERROR)
    body = jute.INT_INT.pack(2, Op.CREATE) + struct.pack(">i", 2) + b"/x"  # no data, acl or flags
    c.sock.sendall(jute.INT.pack(len(body)) + body)
    assert jute.decode_reply_header(c._frame())[2] == Err.MARSHALLINGERROR
    assert c.call(Op.EXISTS, ("/", False))[0] == 0  # the connection is still usable
    c.close()
    _assert_healthy(srv, bystander)


def test_wrong_password_is_refused_with_timeout_zero(srv, bystander):
    sid, _ = bystander.client_id
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.sendall(jute.encode_connect_request(10000, sid, b"\x01" * 16))
    data = s.recv(100)
    r = jute.Reader(data, 4)
    r.int()
    assert r.int() == 0 and r.long() == 0  # timeOut 0, sessionId 0: expired
    assert _closed(s)
    _assert_healthy(srv, bystander)


@pytest.mark.parametrize("op,args,code", [
    (Op.CREATE, ("no-slash", b"", [(31, "world", "anyone")], 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("//b", b"", [(31, "world", "anyone")], 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/zookeeper/", b"", [(31, "world", "anyone")], 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/missing/", b"", [(31, "world", "anyone")], 0, -1), Err.NONODE),  # parent first, as ZooKeeper
    (Op.CREATE, ("/flags", b"", [(31, "world", "anyone")], 99, -1), Err.BADARGUMENTS),
    (Op.SET_DATA, ("/a/../b", b"", -1), Err.BADARGUMENTS),
    (Op.DELETE, ("/", -1), Err.BADARGUMENTS),
    (Op.DELETE, ("/zookeeper/quota", -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/acl", b"", [(31, "digest", "nocolon")], 0, -1), Err.INVALIDACL),
    (Op.CREATE, ("/acl", b"", [(31, "nosuchscheme", "x")], 0, -1), Err.INVALIDACL),
    (Op.SET_ACL, ("/", [], -1), Err.INVALIDACL),
    (Op.SET_DATA, ("/", b"", 42), Err.BADVERSION),
    (Op.SET_ACL, ("/zookeeper", [(31, "world", "anyone")], 7), Err.BADVERSION),
])
def test_invalid_requests_get_zookeeper_error_codes(srv, bystander, op, args, code):
    c = RawClient(srv.host, srv.port)
    assert c.call(op, args)[0] == code
    c.close()
    _assert_healthy(srv, bystander)


def test_too_many_connections_from_one_address(srv, bystander):
    socks = []
    try:
        for _ in range(45):
            socks.append(socket.create_connection((srv.host, srv.port), timeout=5))
        time.sleep(0.3)
        refused = sum(1 for s in socks if _closed(s, timeout=0.2))
        assert refused >= 45 - 40 + 1  # the bystander holds one of the 40
    finally:
        for s in socks:
            s.close()
    time.sleep(0.2)
    _assert_healthy(srv, bystander)


def test_flood_without_reading_stays_bounded(srv, bystander):
    """A client pipelining reads it never collects: the server stops reading from it."""
    s = _connected(srv)
    s.setblocking(False)
    frame = jute.encode_request(1, Op.GET_DATA, ("/zookeeper", False))
    sent = 0
    deadline = time.time() + 5
    while time.time() < deadline and sent < 200_000:
        try:
            s.send(frame * 500)
            sent += 500
        except BlockingIOError:
            time.sleep(0.01)
    _assert_healthy(srv, bystander)
    pending = srv.call(lambda: max((len(c.buf) for c in srv.server.connections), default=0))
    assert pending < 8 * 1024 * 1024
    s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(min_size=0, max_size=300), after_handshake=st.booleans())
def test_fuzzed_bytes_never_hurt_the_server(srv, bystander, data, after_handshake):
    s = _connected(srv) if after_handshake else socket.create_connection((srv.host, srv.port), timeout=5)
    try:
        s.sendall(data)
    except OSError:
        pass
    s.close()
    assert srv.four_letter_word("ruok") == "imok"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(op=st.sampled_from(sorted(jute.DECODERS)), flip=st.integers(0, 400), value=st.integers(0, 255))
def test_mutated_valid_frames(srv, bystander, op, flip, value):
    c = RawClient(srv.host, srv.port)
    try:
        frame = bytearray(jute.encode_request(5, Op.CREATE, ("/m", b"data", [(31, "world", "anyone")], 0, -1)))
        frame[8:12] = struct.pack(">i", op)
        if 12 <= flip < len(frame):
            frame[flip] = value
        c.sock.sendall(bytes(frame))
        c.sock.settimeout(2)
        try:
            c._frame()
        except (ConnectionError, OSError):
            pass
    finally:
        c.sock.close()
    assert srv.four_letter_word("ruok") == "imok"
    assert bystander.get("/bystander")[0] == b"alive"
