"""ACL schemes (world, auth, digest, ip), the super user, and permission checks."""

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, InvalidACLError, NoAuthError
from kazoo.security import ACL, Id, Permissions, make_acl, make_digest_acl, make_digest_acl_credential

from zkpy.protocol.codes import Err, Op
from zkpy.testing import ZkpyServer

from zkpy.testing.client import RawClient


def test_digest_acl(make_client):
    owner, stranger = make_client(), make_client()
    owner.add_auth("digest", "alice:secret")
    owner.create("/d", b"x", acl=[make_digest_acl("alice", "secret", all=True)])
    assert owner.get("/d")[0] == b"x"
    for call in (lambda: stranger.get("/d"), lambda: stranger.set("/d", b"y"),
                 lambda: stranger.create("/d/c"), lambda: stranger.get_children("/d"), lambda: stranger.get_acls("/d")):
        with pytest.raises(NoAuthError):
            call()
    assert stranger.exists("/d") is not None  # exists needs no permission
    stranger.add_auth("digest", "alice:secret")
    assert stranger.get("/d")[0] == b"x"
    acl, _ = owner.get_acls("/d")
    assert acl == [ACL(31, Id("digest", make_digest_acl_credential("alice", "secret")))]


def test_auth_scheme_expands_to_session_identities(make_client):
    c = make_client()
    with pytest.raises(InvalidACLError):
        c.create("/noauth", acl=[make_acl("auth", "", all=True)])
    c.add_auth("digest", "bob:pw")
    c.create("/a", acl=[make_acl("auth", "", read=True, write=True)])
    c.create("/b", acl=[make_acl("auth", "", all=True)])
    acl, _ = c.get_acls("/b")
    assert acl == [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("bob", "pw")))]
    acl, _ = c.get_acls("/a")  # without ADMIN the digest is masked
    assert acl == [ACL(Permissions.READ | Permissions.WRITE, Id("digest", "bob:x"))]


def test_invalid_acls(make_client):
    c = make_client()
    for bad in ([make_acl("world", "everyone", all=True)], [make_acl("digest", "no-colon", all=True)],
                [make_acl("ip", "not-an-ip", all=True)], [make_acl("unknown", "x", all=True)]):
        with pytest.raises(InvalidACLError):
            c.create("/bad", acl=bad)


def test_ip_acl(make_client):
    c = make_client()
    c.create("/ip-ok", acl=[make_acl("ip", "127.0.0.0/8", all=True)])
    assert c.get("/ip-ok")[0] == b""
    c.create("/ip-no", acl=[make_acl("ip", "10.1.2.3", all=True), make_acl("world", "anyone", read=True)])
    with pytest.raises(NoAuthError):
        c.set("/ip-no", b"x")


def test_set_acl_needs_admin_and_bumps_aversion(make_client):
    c = make_client()
    c.create("/s")
    st = c.set_acls("/s", [make_acl("world", "anyone", read=True)])
    assert st.aversion == 1 and st.version == 0
    with pytest.raises(NoAuthError):
        c.set_acls("/s", [make_acl("world", "anyone", all=True)])
    c.create("/ro", acl=[make_acl("world", "anyone", read=True)])
    assert c.get_acls("/ro")[0][0].perms == Permissions.READ  # READ suffices for getACL
    c.create("/hidden", acl=[make_acl("world", "anyone", read=True), make_digest_acl("u", "p", all=True)])
    assert c.get_acls("/hidden")[0][1].id == Id("digest", "u:x")  # no digest without ADMIN
    c.create("/adm", acl=[make_acl("world", "anyone", admin=True)])
    assert c.get_acls("/adm")[1].aversion == 0  # ADMIN suffices too
    c.create("/none", acl=[make_acl("world", "anyone", write=True)])
    with pytest.raises(NoAuthError):
        c.get_acls("/none")


def test_super_user():
    digest = make_digest_acl_credential("super", "boss")
    with ZkpyServer(super_digest=digest) as s:
        c = KazooClient(s.connect_string)
        c.start(10)
        c.create("/locked", b"x", acl=[make_digest_acl("someone", "else", all=True)])
        with pytest.raises(NoAuthError):
            c.get("/locked")
        c.add_auth("digest", "super:boss")
        assert c.get("/locked")[0] == b"x"
        c.stop()
        c.close()


def test_unknown_auth_scheme_fails_and_closes(server):
    r = RawClient(server.host, server.port)
    err, _, _ = r.call(Op.AUTH, (0, "kerberos", b"x"), xid=-4)
    assert err == Err.AUTHFAILED
    with pytest.raises((ConnectionError, OSError)):
        r.call(Op.PING, (), xid=-2)


def test_kazoo_auth_failure(make_client):
    c = make_client()
    with pytest.raises(AuthFailedError):
        c.add_auth("nosuch", "x")


def test_empty_acl_is_invalid(server):
    r = RawClient(server.host, server.port)
    err, _, _ = r.call(Op.CREATE, ("/empty-acl", b"", [], 0, -1))
    assert err == Err.INVALIDACL
    r.close()
