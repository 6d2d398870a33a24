"""SASL DIGEST-MD5 as clients use it: kazoo (pure-sasl) and the official Java client (zkCli with a
JAAS `Client` section), against zkpy and, for the Java client, Apache ZooKeeper 3.8 side by side.

Plus the bad input of issue 12: a wrong password, an exchange cut in the middle or left
hanging, a garbage token: each ends only that connection, with a log line, in bounded time,
and the server holds nothing of it afterwards; a bystander session does not notice.
"""

from __future__ import annotations

import os
import subprocess
import time

import puresasl.client
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState
from kazoo.security import make_acl, make_digest_acl

from zkpy.protocol.codes import Err, Op
from zkpy.server.sasl import SaslSettings
from zkpy.testing import ZkpyServer
from zkpy.testing.client import RawClient
from zkpy.testing.external import ApacheZooKeeper, ZkpyProcess

from java_support import MARK, classpath, java_missing, zkcli_script

pytestmark = pytest.mark.timeout(120)

USERS = {"alice": "alice-pw", "admin": "admin-pw", "carol": "carol-pw"}
SERVER_JAAS = """
/* ZooKeeper's DigestLoginModule users, as zookeeperAdmin shows them */
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_alice="alice-pw"   // alice
    user_admin="admin-pw";
};
"""


def sasl(user: str, password: str) -> dict:
    return {"mechanism": "DIGEST-MD5", "username": user, "password": password}


def _server(**options) -> ZkpyServer:
    return ZkpyServer(tick_time=500, sasl=SaslSettings(users=dict(USERS), super_users=frozenset({"admin"})),
                      auth_providers=frozenset({"sasl"}), **options)


@pytest.fixture(scope="module")
def srv():
    with _server() as s:
        yield s


@pytest.fixture
def client_of(srv):
    clients = []

    def make(**kwargs) -> KazooClient:
        c = KazooClient(srv.connect_string, timeout=10, **kwargs)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.stop()
        c.close()


@pytest.fixture
def bystander(srv):
    c = KazooClient(srv.connect_string, timeout=10)
    c.start(10)
    c.create("/bystander", b"alive", ephemeral=True)
    session = c.client_id
    states = []
    c.add_listener(states.append)
    yield c
    assert c.client_id == session and states == [], "the bystander session noticed"
    assert c.get("/bystander")[0] == b"alive"
    c.stop()
    c.close()


def _connections(srv) -> int:
    return len(srv.server.clients.connections)


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _log_has(srv, text: str) -> bool:
    return any(text in line for line in list(srv.log_lines))


# ---------------------------------------------------------------------------- kazoo (pure-sasl)

def test_digest_md5_login_owns_a_sasl_acl_node(client_of):
    alice = client_of(sasl_options=sasl("alice", "alice-pw"))
    alice.start(10)
    alice.create("/alice-only", b"secret", acl=[make_acl("sasl", "alice", all=True)])
    try:
        assert alice.get("/alice-only")[0] == b"secret"
        acl = alice.get_acls("/alice-only")[0]
        assert [(a.id.scheme, a.id.id, a.perms) for a in acl] == [("sasl", "alice", 31)]
        anonymous = client_of()
        anonymous.start(10)
        carol = client_of(sasl_options=sasl("carol", "carol-pw"))  # another SASL user
        carol.start(10)
        for other in (anonymous, carol):
            with pytest.raises(NoAuthError):
                other.get("/alice-only")
    finally:
        alice.delete("/alice-only")


def test_legacy_sasl_auth_data_is_digest_md5(client_of):
    """kazoo's auth_data=[("sasl", "user:password")] runs the same DIGEST-MD5 exchange."""
    alice = client_of(auth_data=[("sasl", "alice:alice-pw")])
    alice.start(10)
    alice.create("/legacy", b"x", acl=[make_acl("sasl", "alice", read=True, delete=True)])
    assert alice.get("/legacy")[0] == b"x"
    alice.delete("/legacy")


def test_auth_acl_expands_to_the_sasl_id(client_of):
    alice = client_of(sasl_options=sasl("alice", "alice-pw"))
    alice.start(10)
    alice.create("/mine", b"", acl=[make_acl("auth", "", all=True)])
    try:
        assert [(a.id.scheme, a.id.id) for a in alice.get_acls("/mine")[0]] == [("sasl", "alice")]
    finally:
        alice.delete("/mine")


def test_super_user_reads_what_others_locked(client_of):
    owner = client_of()
    owner.start(10)
    owner.create("/locked", b"private", acl=[make_digest_acl("bob", "bob-pw", all=True)])
    admin = client_of(sasl_options=sasl("admin", "admin-pw"))
    admin.start(10)
    assert admin.get("/locked")[0] == b"private"
    admin.delete("/locked")
    alice = client_of(sasl_options=sasl("alice", "alice-pw"))  # authenticated, but not a super user
    alice.start(10)
    owner.create("/locked2", b"", acl=[make_digest_acl("bob", "bob-pw", all=True)])
    with pytest.raises(NoAuthError):
        alice.get("/locked2")
    admin.delete("/locked2")


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("mallory", "alice-pw")])
def test_wrong_credentials_fail_and_close_only_that_connection(srv, client_of, bystander, user, password):
    """kazoo marks the session CONNECTED before its SASL exchange, so start() either raises or
    returns just before the failure: either way the session is lost and no request goes through."""
    before = _connections(srv)
    bad = client_of(sasl_options=sasl(user, password))
    states = []
    bad.add_listener(states.append)
    try:
        bad.start(10)
    except (AuthFailedError, KazooTimeoutError):
        pass
    _wait_for(lambda: KazooState.LOST in states and not bad.connected)
    with pytest.raises((AuthFailedError, ConnectionClosedError)):
        bad.get("/")
    _wait_for(lambda: _connections(srv) == before)
    assert _log_has(srv, "SASL authentication failed")


# ---------------------------------------------------------------------------- enforcement

@pytest.fixture(scope="module")
def required():
    """sessionRequireClientSASLAuth=true (enforce.auth with the sasl scheme)."""
    with _server(enforce_auth_schemes=frozenset({"sasl"})) as s:
        yield s


def test_required_sasl_refuses_an_unauthenticated_client(required):
    c = KazooClient(required.connect_string, timeout=10)
    try:
        c.start(10)  # the session is created; its first request is refused
        with pytest.raises(SessionClosedRequireSaslError):
            c.get("/")
    finally:
        c.stop()
        c.close()
    _wait_for(lambda: _log_has(required, "has not authenticated as enforce.auth requires"))


def test_required_sasl_refuses_every_request_but_sasl_over_the_wire(required):
    """A raw client: the ping and exists it sends get SESSIONCLOSEDREQUIRESASLAUTH (-124) with
    their own xid, and the server closes the connection, as ZooKeeper 3.8's AuthenticationHelper."""
    for op, args in ((Op.PING, ()), (Op.EXISTS, ("/", False))):
        raw = RawClient(required.host, required.port, timeout_ms=4000, io_timeout=10)
        try:
            err, _, _ = raw.call(op, args, xid=7)
            assert err == Err.SESSIONCLOSEDREQUIRESASLAUTH
            assert raw.sock.recv(1) == b""  # closed
        finally:
            raw.sock.close()


def test_required_sasl_lets_the_authenticated_client_work(required):
    c = KazooClient(required.connect_string, timeout=10, sasl_options=sasl("alice", "alice-pw"))
    try:
        c.start(10)
        c.create("/required-ok", b"1")
        assert c.get("/required-ok")[0] == b"1"
        c.delete("/required-ok")
    finally:
        c.stop()
        c.close()


def test_required_sasl_wrong_password_gets_the_require_error(required):
    c = KazooClient(required.connect_string, timeout=10, sasl_options=sasl("alice", "nope"))
    try:
        try:
            c.start(10)  # as above: raises, or returns just before the failure
        except (SessionClosedRequireSaslError, KazooTimeoutError):
            pass
        _wait_for(lambda: not c.connected)
        raw = RawClient(required.host, required.port, io_timeout=10)
        try:
            assert _sasl(raw, b"")[0] == 0
            assert _sasl(raw, b'username="alice",response=0')[0] == Err.SESSIONCLOSEDREQUIRESASLAUTH
            assert _closed(raw, 10)
        finally:
            raw.sock.close()
    finally:
        c.stop()
        c.close()


# ---------------------------------------------------------------------------- bad input over a raw socket

def _sasl(raw: RawClient, token: bytes) -> tuple[int, bytes | None]:
    err, r, _ = raw.call(Op.SASL, (token,))
    return err, r.buffer() if err == 0 else None


def _closed(raw: RawClient, timeout: float) -> bool:
    raw.sock.settimeout(timeout)
    try:
        return raw.sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


@pytest.mark.parametrize("second", [
    b"\xff\xfe garbage \x00",
    (b'username="alice",nonce="not-ours",cnonce="x",nc=00000001,qop=auth,digest-uri="zookeeper/zk-sasl-md5",'
     b'response=00000000000000000000000000000000'),
    b"username=" + b"a" * 5000,
    b'username="alice",username="alice"',
])
def test_garbage_second_token_closes_with_authfailed(srv, bystander, second):
    before = _connections(srv)
    raw = RawClient(srv.host, srv.port, io_timeout=10)
    try:
        err, challenge = _sasl(raw, b"")
        assert err == 0 and b'realm="zk-sasl-md5"' in challenge and b'qop="auth"' in challenge
        err, _ = _sasl(raw, second)
        assert err == Err.AUTHFAILED
        assert _closed(raw, 10)
    finally:
        raw.sock.close()
    _wait_for(lambda: _connections(srv) == before)


def _who_am_i(raw: RawClient) -> list[tuple[str, str]]:
    err, r, _ = raw.call(Op.WHO_AM_I)
    assert err == 0
    return sorted((r.ustring(), r.ustring()) for _ in range(r.int()))


@pytest.mark.parametrize("password,granted", [("alice-pw", True), ("wrong", False)])
def test_the_server_itself_checks_the_response(srv, bystander, password, granted):
    """pure-sasl's exchange by hand: the server grants sasl:alice for the right password only
    (kazoo would also notice a wrong password in the server's rspauth; the server must not need it)."""
    raw = RawClient(srv.host, srv.port, io_timeout=10)
    mech = puresasl.client.SASLClient("zk-sasl-md5", "zookeeper", mechanism="DIGEST-MD5", username="alice",
                                      password=password)
    try:
        err, challenge = _sasl(raw, b"")
        assert err == 0
        err, rspauth = _sasl(raw, mech.process(challenge))
        if granted:
            assert err == 0 and mech.process(rspauth) is None and mech.complete
            assert _who_am_i(raw) == [("ip", "127.0.0.1"), ("sasl", "alice")]
            assert _sasl(raw, b"")[0] == Err.AUTHFAILED  # the exchange is over: a fourth step fails
        else:
            assert err == Err.AUTHFAILED
        assert _closed(raw, 10)
    finally:
        raw.sock.close()


def test_initial_token_and_a_third_step_are_refused(srv, bystander):
    raw = RawClient(srv.host, srv.port, io_timeout=10)
    try:
        assert _sasl(raw, b"an initial response")[0] == Err.AUTHFAILED  # DIGEST-MD5 has none
        assert _closed(raw, 10)
    finally:
        raw.sock.close()


def test_exchange_cut_in_the_middle_leaves_nothing(srv, bystander):
    before = _connections(srv)
    for _ in range(20):
        raw = RawClient(srv.host, srv.port, io_timeout=10)
        assert _sasl(raw, b"")[0] == 0
        raw.sock.close()  # gone after the challenge
    _wait_for(lambda: _connections(srv) == before)
    assert not any(c.sasl is not None for c in list(srv.server.clients.connections))


def test_exchange_left_hanging_ends_with_the_session(srv, bystander):
    """A client that takes the challenge and never answers holds its connection only until its
    session expires (the shortest timeout here: 2 ticks of 500 ms)."""
    raw = RawClient(srv.host, srv.port, timeout_ms=1000, io_timeout=10)
    try:
        assert _sasl(raw, b"")[0] == 0
        assert _closed(raw, 15)
    finally:
        raw.sock.close()


# ---------------------------------------------------------------------------- zkpy serve with a JAAS file

def test_zkpy_serve_reads_the_jaas_file_and_requires_sasl(tmp_path):
    """The configuration as ZooKeeper's documentation gives it, through `zkpy serve`."""
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(SERVER_JAAS)
    with ZkpyProcess(config={"authProvider.1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
                             "sessionRequireClientSASLAuth": "true"},
                     java_props={"java.security.auth.login.config": str(jaas), "zookeeper.superUser": "admin"}) as zk:
        alice = KazooClient(zk.connect_string, timeout=10, sasl_options=sasl("alice", "alice-pw"))
        anonymous = KazooClient(zk.connect_string, timeout=10)
        try:
            alice.start(10)
            alice.create("/a", b"1", acl=[make_acl("sasl", "alice", all=True)])
            anonymous.start(10)
            with pytest.raises(SessionClosedRequireSaslError):
                anonymous.get("/a")
        finally:
            for c in (alice, anonymous):
                c.stop()
                c.close()


# ---------------------------------------------------------------------------- the Java client

CLIENT_JAAS = """
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="alice"
    password="alice-pw";
};
"""
JAVA_COMMANDS = [
    "whoami",
    "create /js data",
    "setAcl /js sasl:alice:cdrwa",
    "getAcl /js",
    "get /js",
    "create /js/child",
    "delete /js/child",
    "delete /js",
]


def _zkcli(server, jaas_path: str) -> list[str]:
    r = subprocess.run(["java", "-XX:-UsePerfData", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                        f"-Djava.security.auth.login.config={jaas_path}", "-cp", classpath(),
                        "org.apache.zookeeper.ZooKeeperMain", "-server", server.connect_string],
                       input=zkcli_script(JAVA_COMMANDS), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=90)
    pieces, rest = [], r.stdout
    for i, cmd in enumerate(JAVA_COMMANDS):
        marker = f"Node does not exist: {MARK.format(i)}"
        assert marker in rest, f"no output after {cmd!r}:\n{r.stdout[-3000:]}"
        piece, rest = rest.split(marker, 1)
        pieces.append("\n".join(line for line in piece.splitlines()
                                if line and not line.startswith(("WATCHER::", "WatchedEvent", "log4j:", "SLF4J", "Connecting to "))))
    return pieces


def test_java_client_digest_md5_as_against_zookeeper(tmp_path):
    missing = java_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI: the Java client tests need {missing}")
        pytest.skip(f"needs {missing}")
    server_jaas, client_jaas = tmp_path / "server.jaas", tmp_path / "client.jaas"
    server_jaas.write_text(SERVER_JAAS)
    client_jaas.write_text(CLIENT_JAAS)
    cfg = {"authProvider.1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
           "sessionRequireClientSASLAuth": "true"}
    props = {"java.security.auth.login.config": str(server_jaas)}
    outputs = []
    for server in (ZkpyProcess(config=cfg, java_props=props), ApacheZooKeeper(config=cfg, java_props=props)):
        with server:
            outputs.append(_zkcli(server, str(client_jaas)))
    ours, theirs = outputs
    assert "sasl" in ours[0] and "alice" in ours[0], ours[0]  # whoami
    assert "'sasl,'alice" in ours[3] and ": cdrwa" in ours[3], ours[3]  # getAcl
    assert ours[4].splitlines()[-1] == "data", ours[4]
    assert ours == theirs


def test_java_client_wrong_password_is_auth_failed_as_against_zookeeper(tmp_path):
    """The Java client with a wrong password: an AuthFailed event and AuthFailed for its request."""
    missing = java_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI: the Java client tests need {missing}")
        pytest.skip(f"needs {missing}")
    server_jaas, client_jaas = tmp_path / "server.jaas", tmp_path / "client.jaas"
    server_jaas.write_text(SERVER_JAAS)
    client_jaas.write_text(CLIENT_JAAS.replace('password="alice-pw"', 'password="not-alices"'))
    cfg = {"authProvider.1": "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"}
    props = {"java.security.auth.login.config": str(server_jaas)}
    outputs = []
    for server in (ZkpyProcess(config=cfg, java_props=props), ApacheZooKeeper(config=cfg, java_props=props)):
        with server:
            r = subprocess.run(["java", "-XX:-UsePerfData", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                                f"-Djava.security.auth.login.config={client_jaas}", "-cp", classpath(),
                                "org.apache.zookeeper.ZooKeeperMain", "-server", server.connect_string, "ls", "/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=90)
            outputs.append((r.returncode, [line for line in r.stdout.splitlines()
                                           if line.strip() and not line.startswith(("Connecting to ", "log4j:"))]))
    ours, theirs = outputs
    assert "WatchedEvent state:AuthFailed type:None path:null" in ours[1], ours
    assert "KeeperErrorCode = AuthFailed for /" in ours[1], ours
    assert ours == theirs
