"""Regression tests for ZooKeeper's published vulnerabilities that apply to zkpy, over real sockets.

- CVE-2019-0201 (ZOOKEEPER-1392): getACL needs READ or ADMIN on the node, and shows a digest
  ACL's hash only to a client with ADMIN; others see `user:x` (FinalRequestProcessor).
- CVE-2024-23944 (ZOOKEEPER-4799): a persistent recursive watch must not deliver events (and
  with them the paths) of descendants whose ACL the watcher may not READ.
- CVE-2023-44981 (quorum SASL ids not bound to server ids): tests/test_quorum_security.py.
"""

from __future__ import annotations

import pytest
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, Permissions, make_acl, make_digest_acl, make_digest_acl_credential

from zkpy.protocol.codes import Event, Op
from zkpy.testing.client import RawClient

pytestmark = pytest.mark.timeout(60)

RECURSIVE = 1  # addWatch mode PERSISTENT_RECURSIVE


def test_cve_2019_0201_get_acl_hides_digests_without_admin(make_client):
    owner, stranger = make_client(), make_client()
    owner.add_auth("digest", "alice:secret")
    hashed = make_digest_acl_credential("alice", "secret")
    owner.create("/readable", acl=[make_acl("world", "anyone", read=True), make_digest_acl("alice", "secret", all=True)])
    owner.create("/unreadable", acl=[make_acl("world", "anyone", write=True),
                                     make_digest_acl("alice", "secret", all=True)])
    acl, _ = stranger.get_acls("/readable")  # READ: the ACL, the digest masked
    assert acl == [ACL(Permissions.READ, Id("world", "anyone")), ACL(Permissions.ALL, Id("digest", "alice:x"))]
    with pytest.raises(NoAuthError):  # neither READ nor ADMIN: nothing
        stranger.get_acls("/unreadable")
    acl, _ = owner.get_acls("/unreadable")  # ADMIN (through the digest): the hash itself
    assert acl[1] == ACL(Permissions.ALL, Id("digest", hashed))


def test_cve_2024_23944_recursive_watch_does_not_reveal_unreadable_children():
    from zkpy.testing import ZkpyServer

    with ZkpyServer(tick_time=200) as server:
        watcher = RawClient(server.host, server.port)
        insider = RawClient(server.host, server.port)  # has the secret's credentials: a control
        owner = RawClient(server.host, server.port)
        try:
            for c in (insider, owner):
                c.call(Op.AUTH, (0, "digest", b"owner:pw"), xid=-4)
            owner.create("/tree")
            for c in (watcher, insider):
                assert c.call(Op.ADD_WATCH, ("/tree", RECURSIVE))[0] == 0
            owner.create("/tree/secret", acl=[(31, "auth", "")])
            owner.call(Op.SET_DATA, ("/tree/secret", b"x", -1))
            owner.create("/tree/secret/deeper", acl=[(31, "auth", "")])
            owner.call(Op.DELETE, ("/tree/secret/deeper", -1))
            owner.call(Op.DELETE, ("/tree/secret", -1))
            owner.create("/tree/public")  # the last change: once its event is in, every earlier one is too
            assert [p for _, _, p in insider.wait_events(6)] == [
                "/tree/secret", "/tree/secret", "/tree/secret/deeper", "/tree/secret/deeper", "/tree/secret",
                "/tree/public"]
            watcher.wait_events(1)
            watcher.call(Op.PING, (), xid=-2)
            assert [(t, p) for t, _, p in watcher.events] == [(Event.NODE_CREATED, "/tree/public")]
        finally:
            for c in (watcher, insider, owner):
                c.close()
