"""Malformed and hostile input over raw sockets.

Every expectation here is what Apache ZooKeeper 3.8 does with the same bytes (each case
was run against it): an error code, or the connection closed.  After each case the server
must be alive and a bystander kazoo session, connected all along, must not have noticed:
same connection, its ephemeral node still there.

`ZKPY_TEST_AGAINST=zookeeper python -m pytest tests/test_bad_input.py` runs the same cases
against Apache ZooKeeper 3.8 (the tests that look inside zkpy are skipped there), which is
how the expectations were checked.
"""

from __future__ import annotations

import os
import select
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
from zkpy.testing.external import ApacheZooKeeper, four_letter_word

AGAINST_ZOOKEEPER = os.environ.get("ZKPY_TEST_AGAINST") == "zookeeper"

pytestmark = pytest.mark.timeout(120)

MAX_BUFFER = 64 * 1024
OPEN = [(31, "world", "anyone")]
S, B, I, L = jute.enc_string, jute.enc_buffer, jute.INT.pack, jute.LONG.pack


def frame(xid: int, op: int, body: bytes) -> bytes:
    """A request frame with a hand-made body."""
    payload = jute.INT_INT.pack(xid, op) + body
    return I(len(payload)) + payload


class _Apache(ApacheZooKeeper):
    """Apache ZooKeeper with ZkpyServer's test surface."""

    def four_letter_word(self, word: str) -> str:
        return four_letter_word(self.host, self.port, word)


def _server(max_buffer: int = 0xFFFFF, max_cnxns: int = 60):
    if AGAINST_ZOOKEEPER:
        return _Apache(tick_time=500, config={"maxClientCnxns": str(max_cnxns)},
                       java_props={"jute.maxbuffer": str(max_buffer)})
    return ZkpyServer(jute_max_buffer=max_buffer, max_client_cnxns=max_cnxns, tick_time=500)


def zkpy_only(test):
    return pytest.mark.skipif(AGAINST_ZOOKEEPER, reason="looks inside zkpy")(test)


@pytest.fixture(scope="module")
def srv():
    with _server(MAX_BUFFER) as s:
        yield s


@pytest.fixture(scope="module")
def bystander(srv):
    """A session that must not notice anything of the abuse."""
    c = KazooClient(srv.connect_string, timeout=10)
    c.start(10)
    c.create("/bystander", b"alive", ephemeral=True)
    c.state_changes = []
    c.add_listener(c.state_changes.append)
    c.first_session = c.client_id
    yield c
    c.stop()
    c.close()


@pytest.fixture
def healthy(srv, bystander):
    """Checked after the test: server alive, the bystander undisturbed."""
    yield
    _assert_healthy(srv, bystander)


def _assert_healthy(srv, bystander):
    assert srv.four_letter_word("ruok") == "imok"
    assert bystander.get("/bystander")[0] == b"alive"
    assert bystander.exists("/bystander").ephemeralOwner == bystander.first_session[0]
    assert bystander.client_id == bystander.first_session
    assert bystander.state_changes == [], "the bystander's connection was disturbed"


def _read_all(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or goes quiet for `timeout` (False)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except ConnectionResetError:
        return data, True
    except socket.timeout:
        return data, False


def _frames(data: bytes) -> list[bytes]:
    out = []
    while len(data) >= 4:
        (n,) = struct.unpack(">i", data[:4])
        out.append(data[4 : 4 + n])
        data = data[4 + n :]
    return out


def _connect(srv, **kw) -> tuple[socket.socket, int, bytes]:
    """A raw socket with a session: (socket, session id, password)."""
    s = socket.create_connection((srv.host, srv.port), timeout=5, **kw)
    s.sendall(jute.encode_connect_request(10000))
    body = _recv_frame(s)
    r = jute.Reader(body)
    r.int()
    assert r.int() > 0
    return s, r.long(), r.buffer()


def _recv_frame(s: socket.socket) -> bytes:
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    (n,) = struct.unpack(">i", exactly(4))
    return exactly(n)


def _reply(s: socket.socket) -> tuple[int, int, bytes]:
    """(xid, err, body) of the next reply."""
    f = _recv_frame(s)
    xid, _zxid, err = jute.decode_reply_header(f)
    return xid, err, f[16:]


def _still_open(s: socket.socket) -> bool:
    """The connection answers a ping."""
    s.sendall(frame(-2, Op.PING, b""))
    return _reply(s)[:2] == (-2, 0)


# ---------------------------------------------------------------------------- before the handshake


@pytest.mark.parametrize("payload", [
    pytest.param(b"\xff\xff\xff\xff", id="negative-length"),
    pytest.param(b"\x80\x00\x00\x00", id="most-negative-length"),
    pytest.param(struct.pack(">i", 10**9), id="length-1e9"),
    pytest.param(struct.pack(">i", MAX_BUFFER + 1) + b"x", id="length-maxbuffer+1"),
    pytest.param(b"\x00\x00\x00\x00", id="zero-length"),
    pytest.param(b"\x00\x00\x00\x03abc", id="connect-record-too-short"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
    pytest.param(b"xxxx", id="not-a-four-letter-word"),
    pytest.param(jute.encode_request(1, Op.GET_DATA, ("/", False)), id="getData-before-handshake"),
    pytest.param(frame(-2, Op.PING, b""), id="ping-before-handshake"),
    pytest.param(jute.encode_request(1, Op.CREATE, ("/pre", b"", OPEN, 0, -1)), id="create-before-handshake"),
    pytest.param(jute.encode_connect_request(10000, last_zxid=1 << 40), id="client-has-seen-a-newer-zxid"),
])
def test_bad_first_frame_closes_without_reply(srv, healthy, payload):
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.sendall(payload)
    assert _read_all(s) == (b"", True)


def test_request_before_handshake_does_nothing(srv, bystander, healthy):
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.sendall(jute.encode_request(1, Op.CREATE, ("/pre", b"", OPEN, 0, -1)))
    _read_all(s)
    assert bystander.exists("/pre") is None


def test_truncated_connect_then_close(srv, healthy):
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.sendall(jute.encode_connect_request(10000)[:20])
    s.close()


def test_connect_sent_byte_by_byte(srv, healthy):
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in jute.encode_connect_request(10000) + jute.encode_request(1, Op.EXISTS, ("/", False)):
        s.send(bytes([b]))
        time.sleep(0.001)
    _recv_frame(s)
    assert _reply(s)[:2] == (1, 0)


# ---------------------------------------------------------------------------- sessions and passwords


def _expired_reply(read_only_byte: bool) -> bytes:
    body = I(0) + I(0) + L(0) + B(b"\x00" * 16) + (b"\x00" if read_only_byte else b"")
    return I(len(body)) + body


@pytest.mark.parametrize("read_only", [False, None], ids=["client-with-readOnly-flag", "old-client"])
def test_wrong_password_gets_timeout_zero_and_close(srv, healthy, read_only):
    # (Not the bystander's session: ZooKeeper drops a session's connection on any reconnect attempt.)
    owner, sid, passwd = _connect(srv)
    wrong = bytes(b ^ 0xFF for b in passwd)
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.sendall(jute.encode_connect_request(10000, sid, wrong, read_only=read_only))
    # ConnectResponse(protocolVersion 0, timeOut 0, sessionId 0, passwd 16 zero bytes[, readOnly])
    assert _read_all(s) == (_expired_reply(read_only is not None), True)
    owner.close()


def test_unknown_session_gets_timeout_zero_and_close(srv, healthy):
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.sendall(jute.encode_connect_request(10000, 0x7EADBEEF00000001, b"\x01" * 16))
    assert _read_all(s) == (_expired_reply(True), True)


def test_reattach_with_the_right_password_works(srv, healthy):
    s, sid, passwd = _connect(srv)
    s.close()
    c = RawClient(srv.host, srv.port, session_id=sid, passwd=passwd)
    assert c.session_id == sid and c.timeout > 0
    c.close()


def test_reattach_closes_the_previous_connection(srv, healthy):
    """ZooKeeper closes a session's connection when a ConnectRequest for the session arrives
    (DisconnectReason.CLIENT_RECONNECT)."""
    old, sid, passwd = _connect(srv)
    c = RawClient(srv.host, srv.port, session_id=sid, passwd=passwd)
    assert c.session_id == sid
    old.sendall(frame(-2, Op.PING, b""))
    assert _read_all(old, timeout=1.5) == (b"", True)
    c.close()


# ---------------------------------------------------------------------------- framing after the handshake


@pytest.mark.parametrize("payload", [
    pytest.param(b"\xff\xff\xff\xff", id="negative-length"),
    pytest.param(struct.pack(">i", MAX_BUFFER + 1) + b"x" * 100, id="length-maxbuffer+1"),
    pytest.param(struct.pack(">i", 2**31 - 1), id="length-int-max"),
    pytest.param(b"\x00\x00\x00\x00", id="zero-length"),
    pytest.param(struct.pack(">i", 4) + b"\x00\x00\x00\x01", id="request-header-truncated"),
])
def test_bad_frame_after_handshake_closes(srv, healthy, payload):
    s, _, _ = _connect(srv)
    s.sendall(payload)
    assert _read_all(s) == (b"", True)


def test_frame_of_exactly_maxbuffer_is_accepted(srv, healthy):
    """jute.maxbuffer is inclusive; bytes after a record in its frame are ignored."""
    s, _, _ = _connect(srv)
    body = jute.INT_INT.pack(1, Op.EXISTS) + S("/") + b"\x00"
    s.sendall(I(MAX_BUFFER) + body + b"\x00" * (MAX_BUFFER - len(body)))
    assert _reply(s)[:2] == (1, 0)
    assert _still_open(s)


def test_truncated_frame_then_close(srv, healthy):
    s, _, _ = _connect(srv)
    s.sendall(struct.pack(">i", 100) + b"\x00" * 10)
    s.close()


def test_frame_split_across_writes(srv, healthy):
    s, _, _ = _connect(srv)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = jute.encode_request(1, Op.GET_DATA, ("/bystander", False)) + jute.encode_request(2, Op.EXISTS, ("/", False))
    for i in range(0, len(data), 3):
        s.send(data[i : i + 3])
        time.sleep(0.002)
    xid, err, body = _reply(s)
    assert (xid, err) == (1, 0) and body[:9] == B(b"alive")
    assert _reply(s)[:2] == (2, 0)


# ---------------------------------------------------------------------------- unknown op codes


@pytest.mark.parametrize("op", [9999, 0, -1, 108, 999, -12], ids=lambda op: f"op{op}")
def test_unknown_op_gets_unimplemented_and_close(srv, healthy, op):
    """UnimplementedRequestProcessor: reply -6, close the connection — not the session."""
    s, sid, passwd = _connect(srv)
    s.sendall(frame(7, op, b"\x00" * 12))
    data, closed = _read_all(s)
    assert closed
    [reply] = _frames(data)
    assert jute.decode_reply_header(reply)[::2] == (7, Err.UNIMPLEMENTED) and len(reply) == 16
    c = RawClient(srv.host, srv.port, session_id=sid, passwd=passwd)
    assert c.session_id == sid and c.timeout > 0
    c.close()


# ---------------------------------------------------------------------------- truncated / malformed bodies

MULTI_END = jute.MULTI_HEADER.pack(-1, True, -1)


@pytest.mark.parametrize("op,body", [
    pytest.param(Op.GET_DATA, b"", id="getData-empty"),
    pytest.param(Op.GET_DATA, I(50) + b"/short", id="getData-path-length-past-end"),
    pytest.param(Op.GET_DATA, S("/"), id="getData-no-watch-flag"),
    pytest.param(Op.EXISTS, I(-1) + b"\x00", id="exists-null-path"),
    pytest.param(Op.EXISTS, I(-2) + b"\x00", id="exists-path-length-minus-2"),
    pytest.param(Op.GET_CHILDREN2, I(3) + b"/a", id="getChildren2-truncated"),
    pytest.param(Op.GET_ACL, b"\x00\x00", id="getACL-truncated"),
    pytest.param(Op.CREATE, S("/x"), id="create-no-data-acl-flags"),
    pytest.param(Op.CREATE, S("/x") + B(b"") + I(5), id="create-acl-vector-past-end"),
    pytest.param(Op.CREATE, S("/x") + B(b"") + jute.enc_acls(OPEN), id="create-no-flags"),
    pytest.param(Op.CREATE_TTL, S("/x") + B(b"") + jute.enc_acls(OPEN) + I(5), id="createTTL-no-ttl"),
    pytest.param(Op.SET_DATA, S("/"), id="setData-truncated"),
    pytest.param(Op.SET_DATA, S("/") + I(1000) + b"abc", id="setData-data-past-end"),
    pytest.param(Op.DELETE, S("/x"), id="delete-no-version"),
    pytest.param(Op.SET_ACL, S("/") + I(1), id="setACL-truncated"),
    pytest.param(Op.MULTI, jute.MULTI_HEADER.pack(Op.CHECK, False, -1) + S("/") + I(-1), id="multi-no-terminator"),
    pytest.param(Op.MULTI, jute.MULTI_HEADER.pack(Op.MULTI, False, -1) + MULTI_END + MULTI_END, id="multi-nested"),
    pytest.param(Op.MULTI, jute.MULTI_HEADER.pack(Op.GET_ACL, False, -1) + S("/") + MULTI_END, id="multi-with-getACL"),
    pytest.param(Op.MULTI_READ, jute.MULTI_HEADER.pack(Op.GET_DATA, False, -1) + S("/"), id="multiRead-truncated"),
    pytest.param(Op.SET_WATCHES, L(0) + I(3) + S("/"), id="setWatches-truncated"),
    pytest.param(Op.CHECK_WATCHES, S("/") + I(9), id="checkWatches-bad-type"),
    pytest.param(Op.REMOVE_WATCHES, S("/") + I(9), id="removeWatches-bad-type"),
])
def test_malformed_body_gets_marshalling_error(srv, healthy, op, body):
    """ZooKeeper answers MARSHALLINGERROR with an empty body and keeps the connection."""
    s, _, _ = _connect(srv)
    s.sendall(frame(11, op, body) + jute.encode_request(12, Op.EXISTS, ("/", False)))
    assert _reply(s) == (11, Err.MARSHALLINGERROR, b"")
    assert _reply(s)[:2] == (12, 0)  # in order, and the connection still serves


# ---------------------------------------------------------------------------- invalid paths, ACLs, versions


@pytest.fixture(scope="module")
def raw(srv):
    c = RawClient(srv.host, srv.port)
    assert c.create("/seqparent")[0] == 0
    yield c
    c.close()


@pytest.mark.parametrize("op,args,code", [
    # paths (ZooKeeper checks the parent before the full path on create, and delete only
    # checks for a slash, a NUL and the special nodes)
    (Op.CREATE, ("no-slash", b"", OPEN, 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("//b", b"", OPEN, 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/.", b"", OPEN, 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/x\x00y", b"", OPEN, 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/x\x01", b"", OPEN, 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/x\ufff5", b"", OPEN, 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/x\U0001f600", b"", OPEN, 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/zookeeper/", b"", OPEN, 0, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/missing/", b"", OPEN, 0, -1), Err.NONODE),
    (Op.CREATE, ("/a/../b", b"", OPEN, 0, -1), Err.NONODE),
    (Op.CREATE, ("/", b"", OPEN, 0, -1), Err.NODEEXISTS),
    (Op.CREATE, ("/flags", b"", OPEN, 99, -1), Err.BADARGUMENTS),
    (Op.CREATE, ("/flags", b"", OPEN, -1, -1), Err.BADARGUMENTS),
    (Op.CREATE_TTL, ("/ttl", b"", OPEN, 5, 1000), Err.UNIMPLEMENTED),  # extendedTypesEnabled is off
    (Op.SET_DATA, ("/a/../b", b"", -1), Err.BADARGUMENTS),
    (Op.SET_DATA, ("//", b"", -1), Err.BADARGUMENTS),
    (Op.SET_DATA, ("/nope", b"", -1), Err.NONODE),
    (Op.DELETE, ("/", -1), Err.BADARGUMENTS),
    (Op.DELETE, ("no-slash", -1), Err.BADARGUMENTS),
    (Op.DELETE, ("//", -1), Err.NONODE),
    (Op.DELETE, ("/a/../b", -1), Err.NONODE),
    (Op.DELETE, ("/zookeeper", -1), Err.BADARGUMENTS),
    (Op.DELETE, ("/zookeeper/quota", -1), Err.BADARGUMENTS),
    (Op.DELETE, ("/zookeeper/config", 42), Err.BADARGUMENTS),
    (Op.GET_DATA, ("//", False), Err.NONODE),  # reads do not validate paths
    (Op.EXISTS, ("relative", False), Err.NONODE),
    (Op.GET_ACL, ("//",), Err.NONODE),
    # ACLs
    (Op.CREATE, ("/acl", b"", [], 0, -1), Err.INVALIDACL),
    (Op.CREATE, ("/acl", b"", [(31, "digest", "nocolon")], 0, -1), Err.INVALIDACL),
    (Op.CREATE, ("/acl", b"", [(31, "nosuchscheme", "x")], 0, -1), Err.INVALIDACL),
    (Op.CREATE, ("/acl", b"", [(31, "ip", "999.1.1.1")], 0, -1), Err.INVALIDACL),
    (Op.CREATE, ("/acl", b"", [(31, "world", "someone")], 0, -1), Err.INVALIDACL),
    (Op.CREATE, ("/acl", b"", [(31, "auth", "")], 0, -1), Err.INVALIDACL),  # no authenticated id
    (Op.SET_ACL, ("/", [], -1), Err.INVALIDACL),
    # versions
    (Op.SET_DATA, ("/", b"", 42), Err.BADVERSION),
    (Op.SET_ACL, ("/zookeeper", OPEN, 7), Err.BADVERSION),
    (Op.CHECK, ("/", 42), Err.BADVERSION),
    (Op.DELETE, ("/seqparent", 3), Err.BADVERSION),
], ids=lambda v: repr(v)[:40] if isinstance(v, tuple) else None)
def test_invalid_requests_get_zookeeper_error_codes(raw, healthy, op, args, code):
    err, body, _ = raw.call(op, args)
    assert (err, body.remaining()) == (code, 0)


def test_invalid_acl_with_null_scheme_and_id(raw, healthy):
    body = S("/acl") + B(b"") + I(1) + I(31) + I(-1) + I(-1) + I(0)
    raw.sock.sendall(frame(50, Op.CREATE, body))
    assert jute.decode_reply_header(raw._frame())[::2] == (50, Err.INVALIDACL)


def test_null_acl_vector(raw, healthy):
    for count in (-1, -5):
        raw.sock.sendall(frame(51, Op.CREATE, S("/acl") + B(b"") + I(count) + I(0)))
        assert jute.decode_reply_header(raw._frame())[::2] == (51, Err.INVALIDACL)


def test_sequential_create_of_a_trailing_slash_path(raw, healthy):
    """ZooKeeper validates the path after appending the sequence number."""
    err, r, _ = raw.call(Op.CREATE, ("/seqparent/", b"", OPEN, 2, -1))
    assert (err, r.ustring()) == (0, "/seqparent/0000000000")


def test_auth_failure_closes_connection(srv, healthy):
    s, _, _ = _connect(srv)
    s.sendall(frame(-4, Op.AUTH, I(0) + S("nosuchscheme") + B(b"x")))
    data, closed = _read_all(s)
    assert closed and [jute.decode_reply_header(f)[::2] for f in _frames(data)] == [(-4, Err.AUTHFAILED)]


# ---------------------------------------------------------------------------- corners (zkpy differed from ZooKeeper here)


CORNERS = {
    "negative-buffer-length": (
        "a buffer length below -1: BinaryInputArchive refuses it ('Unreasonable length'): MARSHALLINGERROR",
        frame(21, Op.SET_DATA, S("/zookeeper") + I(-2) + I(-1)), [(21, Err.MARSHALLINGERROR)], False),
    "create-path-invalid-utf8": (
        "a path with invalid UTF-8: Java decodes it with U+FFFD replacement characters, validatePath "
        "answers BADARGUMENTS",
        frame(22, Op.CREATE, I(2) + b"/\xff" + B(b"") + jute.enc_acls(OPEN) + I(0)), [(22, Err.BADARGUMENTS)], False),
    "getData-path-invalid-utf8": (
        "a read of a path with invalid UTF-8 looks up the U+FFFD-decoded path: NONODE",
        frame(23, Op.GET_DATA, I(2) + b"/\xff" + b"\x00"), [(23, Err.NONODE)], False),
    "reconfig-disabled": (
        "reconfig (op 16) with reconfigEnabled=false: RECONFIGDISABLED (-123), the connection stays",
        frame(24, Op.RECONFIG, S("") + S("") + S("server.1=127.0.0.1:2888:3888") + L(-1)),
        [(24, Err.RECONFIGDISABLED)], False),
    "multi-with-a-read-op": (
        "MultiOperationRecord refuses to mix reads and writes: MARSHALLINGERROR for the whole request",
        jute.encode_request(25, Op.MULTI, ([(Op.CHECK, ("/", -1)), (Op.GET_DATA, ("/", False))],)),
        [(25, Err.MARSHALLINGERROR)], False),
    "multiRead-with-a-write-op": (
        "multiRead (22) with a write sub-op: MARSHALLINGERROR",
        jute.encode_request(26, Op.MULTI_READ, ([(Op.CHECK, ("/", -1))],)), [(26, Err.MARSHALLINGERROR)], False),
    "addWatch-bad-mode": (
        "addWatch with an unknown mode: WatcherMode.fromZooKeeperMode throws: MARSHALLINGERROR",
        jute.encode_request(27, Op.ADD_WATCH, ("/", 7)), [(27, Err.MARSHALLINGERROR)], False),
    "sasl-without-sasl": (
        "a SASL packet (op 102) without a SASL login configured: OK with a null token, the connection stays",
        frame(28, 102, B(b"token")), [(28, 0)], False),
    "auth-truncated": (
        "a truncated AuthPacket: the connection is closed, no answer",
        frame(-4, Op.AUTH, I(0)), [], True),
}


@pytest.mark.parametrize("name", list(CORNERS))
def test_corners_answered_as_zookeeper_does(srv, healthy, name):
    _what, payload, replies, closes = CORNERS[name]
    s, _, _ = _connect(srv)
    s.sendall(payload)
    got = []
    try:
        for _ in replies:
            got.append(_reply(s))
    except (ConnectionError, OSError):
        pass
    assert [g[:2] for g in got] == replies
    if closes:
        assert _read_all(s, timeout=1.5) == (b"", True)
    else:
        assert _still_open(s)


# ---------------------------------------------------------------------------- connection limit


def test_too_many_connections_from_one_address():
    """maxClientCnxns counts per client address; the extra connections are closed at once."""
    with _server(max_cnxns=5) as limited:
        kept = [_connect(limited)[0] for _ in range(5)]
        extra = [socket.create_connection((limited.host, limited.port), timeout=5) for _ in range(3)]
        for s in extra:
            try:
                s.sendall(jute.encode_connect_request(10000))
            except OSError:
                pass  # already closed
            assert _read_all(s) == (b"", True)
        assert all(_still_open(s) for s in kept)
        other, _, _ = _connect(limited, source_address=("127.0.0.2", 0))  # another address has its own quota
        assert _still_open(other)
        kept.pop().close()
        deadline = time.time() + 5
        while True:  # the server notices the close asynchronously
            try:
                s, _, _ = _connect(limited)
                break
            except (ConnectionError, struct.error, OSError):
                assert time.time() < deadline
                time.sleep(0.05)
        assert _still_open(s)
        for s in kept + [other, s]:
            s.close()


# ---------------------------------------------------------------------------- a client that does not read


def _flood(srv, path: str, max_frames: int, seconds: float = 6.0, watch=None):
    """Pipeline getData(path) without reading (calling `watch()` as it goes); returns
    (socket, bytes sent, frame size, all the frames)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    s.settimeout(5)
    s.connect((srv.host, srv.port))
    s.sendall(jute.encode_connect_request(10000))
    _recv_frame(s)
    template = jute.encode_request(0, Op.GET_DATA, (path, False))
    one = len(template)
    data = bytearray(template * max_frames)
    for i in range(max_frames):
        jute.INT.pack_into(data, i * one + 4, i + 1)  # xids 1, 2, ...
    s.setblocking(False)
    off, deadline, last_progress = 0, time.time() + seconds, time.time()
    while off < len(data) and time.time() < deadline and time.time() - last_progress < 0.5:
        try:
            off += s.send(data[off : off + 256 * 1024])
            last_progress = time.time()
        except BlockingIOError:
            time.sleep(0.005)
        if watch is not None:
            watch()
    return s, off, one, data


def _buffered(srv):
    """Bytes the server holds for its busiest connection: output not yet written, input not yet parsed."""
    return srv.call(lambda: max(((c.transport.get_write_buffer_size(), c.frames.buffered, c.transport.is_reading())
                                 for c in srv.server.connections if c.transport is not None), default=(0, 0, True)))


def test_flood_without_reading_is_paused_and_bounded(srv, bystander, healthy):
    """The server stops reading from a client that does not read its answers; others are served."""
    peak = [0, 0]

    def watch():
        if not AGAINST_ZOOKEEPER:
            out, inp, _ = _buffered(srv)
            peak[:] = max(peak[0], out), max(peak[1], inp)

    s, sent, one, data = _flood(srv, "/zookeeper", 600_000, watch=watch)
    try:
        assert sent < len(data), "the server never stopped reading"
        if not AGAINST_ZOOKEEPER:
            out, inp, reading = _buffered(srv)
            assert not reading, "the server still reads from a client that does not read"
            assert peak[0] < 16 * 1024 * 1024 and peak[1] < 2 * 1024 * 1024, peak
        t = time.time()
        assert bystander.get("/bystander")[0] == b"alive"
        assert time.time() - t < 1.0
        # Read everything: the server resumes and answers every request, in order.
        complete = sent // one
        s.setblocking(True)
        s.settimeout(10)
        tail = data[sent : (complete + 1) * one] if sent % one else b""
        buf, got, expect_xid = bytearray(), 0, 1
        total = complete + (1 if tail else 0)
        while got < total:
            readable, writable, _ = select.select([s], [s] if tail else [], [], 10)
            assert readable or writable, f"stalled after {got} of {total} answers"
            if writable and tail:
                tail = tail[s.send(tail):]
            if readable:
                chunk = s.recv(1 << 20)
                assert chunk, "closed"
                buf += chunk
                pos = 0
                while len(buf) - pos >= 4:
                    (n,) = struct.unpack_from(">i", buf, pos)
                    if len(buf) - pos - 4 < n:
                        break
                    xid, _zxid, err = jute.REPLY_HEADER.unpack_from(buf, pos + 4)
                    assert (xid, err) == (expect_xid, 0)
                    expect_xid += 1
                    got += 1
                    pos += 4 + n
                del buf[:pos]
    finally:
        s.close()


@zkpy_only
def test_flood_of_big_answers_stays_bounded(srv, raw, healthy):
    """Small requests with big answers: the server must not answer a whole received chunk
    (thousands of 21-byte getData requests of a 60 KB node: ~180 MB) before it looks at its
    write buffer."""
    assert raw.create("/big", b"x" * 60_000)[0] == 0
    peak = [0]

    def watch():
        out, inp, _ = _buffered(srv)
        peak[0] = max(peak[0], out + inp)

    try:
        s, sent, _one, _data = _flood(srv, "/big", 3000, seconds=3, watch=watch)
        try:
            watch()
            assert peak[0] < 16 * 1024 * 1024, f"{peak[0]} bytes buffered for one client"
        finally:
            s.close()
    finally:
        time.sleep(0.2)
        raw.call(Op.DELETE, ("/big", -1))


# ---------------------------------------------------------------------------- fuzzing

VALID_FRAMES = [
    jute.encode_request(5, Op.CREATE, ("/m", b"data", OPEN, 0, -1)),
    jute.encode_request(5, Op.SET_DATA, ("/m", b"data", -1)),
    jute.encode_request(5, Op.GET_DATA, ("/bystander", True)),
    jute.encode_request(5, Op.GET_CHILDREN2, ("/", True)),
    jute.encode_request(5, Op.DELETE, ("/m", -1)),
    jute.encode_request(5, Op.SET_ACL, ("/m", OPEN, -1)),
    jute.encode_request(5, Op.MULTI, ([(Op.CREATE, ("/m", b"", OPEN, 1, -1)), (Op.CHECK, ("/m", 0))],)),
    jute.encode_request(5, Op.MULTI_READ, ([(Op.GET_DATA, ("/", False)), (Op.GET_CHILDREN, ("/", False))],)),
    jute.encode_request(5, Op.SET_WATCHES2, (0, ["/a"], ["/b"], ["/c"], ["/d"], ["/e"])),
    jute.encode_request(5, Op.ADD_WATCH, ("/m", 1)),
    frame(-4, Op.AUTH, I(0) + S("digest") + B(b"u:p")),
]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(min_size=0, max_size=300), after_handshake=st.booleans())
def test_fuzzed_bytes_never_hurt_the_server(srv, bystander, data, after_handshake):
    s = _connect(srv)[0] if after_handshake else socket.create_connection((srv.host, srv.port), timeout=5)
    try:
        s.sendall(data)
    except OSError:
        pass
    s.close()
    assert srv.four_letter_word("ruok") == "imok"


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(base=st.sampled_from(VALID_FRAMES), op=st.one_of(st.none(), st.sampled_from(sorted(jute.DECODERS))),
       flips=st.lists(st.tuples(st.integers(4, 400), st.integers(0, 255)), max_size=4),
       cut=st.one_of(st.none(), st.integers(4, 400)))
def test_mutated_valid_frames(srv, bystander, base, op, flips, cut):
    """Valid frames with another op code, flipped bytes or a cut: an answer or a close, and nothing else hurt."""
    f = bytearray(base)
    if op is not None:
        f[8:12] = I(op)
    for pos, value in flips:
        if pos < len(f):
            f[pos] = value
    if cut is not None and cut < len(f):
        f = f[:cut]
        f[:4] = I(cut - 4)
    s, _, _ = _connect(srv)
    try:
        s.sendall(bytes(f) + frame(-2, Op.PING, b""))
        s.settimeout(3)
        try:
            while _reply(s)[0] != -2:  # answers (or events), then the ping's; or a close
                pass
        except (ConnectionError, OSError):
            pass
    finally:
        s.close()
    assert srv.four_letter_word("ruok") == "imok"
    assert bystander.get("/bystander")[0] == b"alive"


def test_bystander_survived_the_fuzzing(srv, bystander, healthy):
    pass
