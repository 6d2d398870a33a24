"""Quorum peer authentication between real `zkpy serve` processes (quorum.auth.enableSasl).

Each member has its own credential `zkquorum/<id>` (the JAAS QuorumLearner section) and every
member's QuorumServer section lists all three.  A process without the password, or with
another member's password claiming a different id (CVE-2023-44981), gets no link into the
ensemble, and the ensemble keeps its leader and goes on serving.  The raw impostor speaks
zkpy's peer handshake itself; the same code with the right credentials is welcomed, so its
refusals are the server's doing, not a broken test client's.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import msgpack
import pytest
from kazoo.client import KazooClient

from zkpy.server import quorum_auth
from zkpy.testing.ensemble import Ensemble

pytestmark = pytest.mark.timeout(180)

LEN = struct.Struct(">I")
PASSWORDS = {1: "secret-one", 2: "secret-two", 3: "secret-three"}
SASL_SETTINGS = {"quorum.auth.enableSasl": "true", "quorum.auth.learnerRequireSasl": "true",
                 "quorum.auth.serverRequireSasl": "true"}


def _jaas(path, learner: int, password: str) -> str:
    users = "\n".join(f'    user_zkquorum/{sid}="{pw}"' for sid, pw in PASSWORDS.items())
    path.write_text(
        "QuorumServer {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n" + users + ";\n};\n"
        "QuorumLearner {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        f'    username="zkquorum/{learner}"\n    password="{password}";\n}};\n')
    return str(path)


def _member_properties(tmp_path, passwords=PASSWORDS) -> dict[int, dict[str, str]]:
    return {sid: {"java.security.auth.login.config": _jaas(tmp_path / f"jaas{sid}.conf", sid, pw)}
            for sid, pw in passwords.items()}


def _send(sock: socket.socket, msg) -> None:
    body = msgpack.packb(msg, use_bin_type=True)
    sock.sendall(LEN.pack(len(body)) + body)


def _recv(sock: socket.socket):
    """The next frame, or None once the server has closed the link (a reset is a close with our
    unread frames still in its buffer)."""
    try:
        return _recv_frame(sock)
    except ConnectionResetError:
        return None


def _recv_frame(sock: socket.socket):
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = LEN.unpack(head)
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return msgpack.unpackb(body, raw=False)


def _authenticate(port: int, acceptor: int, claimed: int, user: str, password: str) -> str:
    """Speak the dialer's side of the handshake; what the server did: 'welcome' or 'closed'."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        mine = quorum_auth.nonce()
        _send(sock, ["hello", claimed, user, mine])
        challenge = _recv(sock)
        if challenge is None:
            return "closed"
        assert challenge[0] == "challenge" and challenge[1] == acceptor, challenge
        _send(sock, ["proof", quorum_auth.proof(password, b"learner", claimed, acceptor, user, mine, challenge[2])])
        answer = _recv(sock)
        if answer is None:
            return "closed"
        expected = quorum_auth.proof(password, b"server", claimed, acceptor, user, mine, challenge[2])
        assert answer == ["welcome", expected], answer
        return "welcome"


def _unauthenticated_injection(port: int) -> bool:
    """An old-style hello followed by a ZAB-looking frame; True when the server closed the link."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        _send(sock, ["hello", 3])
        _send(sock, ["vote", 3, 99, 2**40, 2**40])
        return _recv(sock) is None


def _client(ens: Ensemble, sid: int) -> KazooClient:
    c = KazooClient(hosts=ens.address(sid), timeout=5)
    c.start(20)
    return c


def _assert_serving_with_leader(ens: Ensemble, leader: int, path: str, sids=(1, 2, 3)) -> None:
    assert ens.leader() == leader
    for sid in sids:
        c = _client(ens, sid)
        try:
            c.create(f"{path}{sid}", b"x")
            c.sync("/")
            assert c.exists(f"{path}{sid}") is not None
        finally:
            c.stop()
            c.close()


def test_authenticated_ensemble_serves_and_refuses_impostors(tmp_path):
    with Ensemble(3, settings=SASL_SETTINGS, member_properties=_member_properties(tmp_path)) as ens:
        leader = ens.leader()
        assert leader is not None
        _assert_serving_with_leader(ens, leader, "/before")
        port = ens.peer_ports[leader]
        other = next(s for s in ens.ids if s != leader)
        # Control: the handshake as this test speaks it is the server's (the right credentials are welcomed).
        assert _authenticate(port, leader, other, f"zkquorum/{other}", PASSWORDS[other]) == "welcome"
        # A wrong password, an unknown user, and no authentication at all: refused.
        assert _authenticate(port, leader, other, f"zkquorum/{other}", "guess") == "closed"
        assert _authenticate(port, leader, other, "mallory", "guess") == "closed"
        assert _unauthenticated_injection(port)
        # CVE-2023-44981: another member's valid credentials cannot claim this id.
        liar = next(s for s in ens.ids if s not in (leader, other))
        assert _authenticate(port, leader, other, f"zkquorum/{liar}", PASSWORDS[liar]) == "closed"
        time.sleep(1)
        _assert_serving_with_leader(ens, leader, "/after")


def test_a_member_with_a_wrong_password_cannot_join(tmp_path):
    props = _member_properties(tmp_path)
    ens = Ensemble(3, settings=SASL_SETTINGS, member_properties=props, startup_timeout=40)
    try:
        for sid in (1, 2):
            ens.start_server(sid)
        ens.wait_serving(sids=[1, 2])
        leader = ens.leader()
        ens.member_properties[3] = {"java.security.auth.login.config": _jaas(tmp_path / "bad3.conf", 3, "guess")}
        ens.start_server(3)
        deadline = time.time() + 8  # many election rounds at tickTime 200 ms
        while time.time() < deadline:
            assert ens.mode(3) not in ("leader", "follower"), "a member with a wrong password joined"
            time.sleep(0.5)
        assert ens.alive(3)
        _assert_serving_with_leader(ens, leader, "/still", sids=(1, 2))
    finally:
        ens.stop()



def _fake_acceptor(listener: socket.socket, dialer: int, acceptor: int, password: str) -> tuple[object, bool]:
    """Take the dial of member `dialer` on `listener`, challenge it, answer its proof with a
    welcome computed from `password`; (the proof's check, whether frames followed the welcome)."""
    while True:  # the other members dial too: take `dialer`'s link
        conn, _ = listener.accept()
        conn.settimeout(10)
        hello = _recv(conn)
        if hello is not None and hello[1] == dialer:
            break
        conn.close()
    with conn:
        assert hello[0] == "hello" and hello[2] == f"zkquorum/{dialer}", hello
        ours = quorum_auth.nonce()
        _send(conn, ["challenge", acceptor, ours])
        proof = _recv(conn)
        genuine = proof[1] == quorum_auth.proof(PASSWORDS[dialer], b"learner", dialer, acceptor, hello[2], hello[3], ours)
        _send(conn, ["welcome", quorum_auth.proof(password, b"server", dialer, acceptor, hello[2], hello[3], ours)])
        try:
            return genuine, _recv(conn) is not None  # a member that trusts us sends ZAB messages
        except (socket.timeout, ConnectionResetError):
            return genuine, False


def test_a_member_does_not_talk_to_a_peer_that_cannot_prove_the_password(tmp_path):
    with Ensemble(3, settings=SASL_SETTINGS, member_properties=_member_properties(tmp_path)) as ens:
        leader = ens.leader()
        victim = next(s for s in ens.ids if s != leader)
        ens.kill(victim)
        with socket.socket() as listener:  # an impostor on the stopped member's quorum port
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", ens.peer_ports[victim]))
            listener.listen(8)
            listener.settimeout(20)
            # Control: knowing the leader's password, the impostor is trusted and gets messages.
            assert _fake_acceptor(listener, leader, victim, PASSWORDS[leader]) == (True, True)
            assert _fake_acceptor(listener, leader, victim, "guess") == (True, False)


def test_rolling_upgrade_mode_accepts_unauthenticated_learners(tmp_path):
    settings = {"quorum.auth.enableSasl": "true", "quorum.auth.learnerRequireSasl": "false",
                "quorum.auth.serverRequireSasl": "false"}
    with Ensemble(3, settings=settings, member_properties=_member_properties(tmp_path)) as ens:
        leader = ens.leader()
        _assert_serving_with_leader(ens, leader, "/rolling")
        with socket.create_connection(("127.0.0.1", ens.peer_ports[leader]), timeout=3) as sock:
            _send(sock, ["hello", 3])  # an old member's hello: accepted (serverRequireSasl=false)
            with pytest.raises(socket.timeout):
                sock.recv(1)
        # Those that authenticate are still checked.
        assert _authenticate(ens.peer_ports[leader], leader, 3, "zkquorum/3", "guess") == "closed"


# ------------------------------------------------------------ TLS on peer links (sslQuorum)


def _quorum_tls_settings(directory: str, kind: str = "PKCS12") -> dict[str, str]:
    import tls_support as certs  # needs the tls extra (cryptography, pyjks)

    authority = certs.ca()
    keystore, truststore = certs.write_stores(directory, kind, certs.server(authority), [], [authority])
    return {"sslQuorum": "true", "ssl.quorum.keyStore.location": keystore,
            "ssl.quorum.keyStore.password": certs.PASSWORD, "ssl.quorum.trustStore.location": truststore,
            "ssl.quorum.trustStore.password": certs.PASSWORD}


def _tls_dial(port: int, directory: str) -> str:
    """A TLS client on a peer port presenting a certificate of its own CA; what happened."""
    import ssl

    import tls_support as certs

    stranger_ca = certs.ca("stranger CA")
    me = certs.server(stranger_ca)
    cert, key = me.write_pem(directory, "stranger")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the stranger does not care who answers: the server must refuse it
    ctx.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
        try:
            with ctx.wrap_socket(raw) as sock:
                _send(sock, ["hello", 3])
                sock.settimeout(5)
                return "closed" if _recv(sock) is None else "open"
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return "closed"
        except socket.timeout:
            return "open"  # the link stayed up: the server took the stranger for a peer


def test_tls_quorum_serves_and_refuses_plaintext_and_unknown_certificates(tmp_path):
    with Ensemble(3, settings=_quorum_tls_settings(str(tmp_path))) as ens:
        leader = ens.leader()
        assert leader is not None
        _assert_serving_with_leader(ens, leader, "/tls")
        port = ens.peer_ports[leader]
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:  # plaintext peer
            _send(sock, ["hello", 3])
            _send(sock, ["vote", 3, 99, 2**40, 2**40])
            try:
                assert sock.recv(1) == b"", "a plaintext peer got an answer"
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise AssertionError("the link of a plaintext peer stayed up") from None
        assert _tls_dial(port, str(tmp_path)) == "closed"
        # Each refusal is one line in the refusing member's log, naming the port and the reason.
        log = os.path.join(ens.base, f"server{leader}", "server.log")
        deadline = time.monotonic() + 10
        while True:
            with open(log, errors="replace") as f:
                refusals = [line for line in f if "TLS handshake failed" in line and "quorum port" in line]
            if len(refusals) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(refusals) >= 2, ens.log_tails(sids=[leader])
        assert any("certificate" in line.lower() for line in refusals), refusals
        time.sleep(1)
        _assert_serving_with_leader(ens, leader, "/tls-after")


def test_tls_and_authentication_together(tmp_path):
    settings = {**SASL_SETTINGS, **_quorum_tls_settings(str(tmp_path), "JKS")}
    with Ensemble(3, settings=settings, member_properties=_member_properties(tmp_path)) as ens:
        leader = ens.leader()
        _assert_serving_with_leader(ens, leader, "/both")
