"""Every client operation end to end over a real socket (kazoo, plus a raw client for
operations kazoo 2.11 lacks), with ZooKeeper's results, Stat fields and error codes."""

import pytest
from kazoo.exceptions import (BadArgumentsError, BadVersionError, NoChildrenForEphemeralsError, NodeExistsError,
                              NoNodeError, NotEmptyError, RolledBackError)

from zkpy.protocol.codes import Err, Op
from zkpy.protocol.jute import decode_stat

from zkpy.testing.client import RawClient


def test_create_get_set_delete_and_stat_fields(zk):
    assert zk.create("/a", b"hello") == "/a"
    data, st = zk.get("/a")
    assert data == b"hello"
    assert (st.version, st.cversion, st.aversion, st.dataLength, st.numChildren, st.ephemeralOwner) == (0, 0, 0, 5, 0, 0)
    assert st.czxid == st.mzxid == st.pzxid
    st2 = zk.set("/a", b"bye!")
    assert st2.version == 1 and st2.mzxid > st.mzxid and st2.czxid == st.czxid and st2.dataLength == 4
    zk.create("/a/b")
    parent = zk.exists("/a")
    assert parent.numChildren == 1 and parent.cversion == 1 and parent.pzxid > st2.mzxid
    assert parent.mzxid == st2.mzxid  # children do not change the parent's mzxid
    zk.delete("/a/b")
    parent2 = zk.exists("/a")
    assert parent2.numChildren == 0 and parent2.pzxid > parent.pzxid and parent2.cversion == 2
    zk.delete("/a")
    assert zk.exists("/a") is None


def test_errors(zk):
    zk.create("/e", b"")
    with pytest.raises(NodeExistsError):
        zk.create("/e")
    with pytest.raises(NoNodeError):
        zk.create("/missing/child")
    with pytest.raises(NoNodeError):
        zk.get("/missing")
    with pytest.raises(NoNodeError):
        zk.set("/missing", b"")
    with pytest.raises(NoNodeError):
        zk.delete("/missing")
    with pytest.raises(BadVersionError):
        zk.set("/e", b"x", version=7)
    with pytest.raises(BadVersionError):
        zk.delete("/e", version=3)
    zk.create("/e/c")
    with pytest.raises(NotEmptyError):
        zk.delete("/e")
    zk.create("/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/eph/child")
    with pytest.raises(BadArgumentsError):
        zk.delete("/zookeeper")


def test_sequential_nodes_use_parent_cversion(zk):
    zk.create("/q")
    first = zk.create("/q/n-", sequence=True)
    assert first == "/q/n-0000000000"
    zk.create("/q/other")
    zk.delete("/q/other")
    second = zk.create("/q/n-", sequence=True, ephemeral=True)
    # Sequence numbers count creations; the Stat's cversion counts deletions too.
    assert second == "/q/n-0000000002"
    assert zk.exists("/q").cversion == 4
    assert sorted(zk.get_children("/q")) == ["n-0000000000", "n-0000000002"]
    assert zk.exists(second).ephemeralOwner == zk.client_id[0]


def test_children_and_root(zk):
    assert "zookeeper" in zk.get_children("/")
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    zk.create("/p/a", makepath=True)
    zk.create("/p/b")
    children, st = zk.get_children("/p", include_data=True)
    assert sorted(children) == ["a", "b"] and st.numChildren == 2


def test_ensure_path_and_recursive_delete(zk):
    zk.ensure_path("/x/y/z")
    assert zk.exists("/x/y/z")
    zk.delete("/x", recursive=True)
    assert zk.exists("/x") is None


def test_multi_success_and_rollback(zk):
    zk.create("/m")
    t = zk.transaction()
    t.create("/m/1", b"a")
    t.set_data("/m", b"b")
    t.check("/m", 1)
    t.delete("/m/1")
    results = t.commit()
    assert results[0] == "/m/1" and results[1].version == 1 and results[2] is True and results[3] is True
    t = zk.transaction()
    t.create("/m/2")
    t.create("/m/2")
    t.create("/m/3")
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NodeExistsError)
    assert type(results[2]).__name__ == "RuntimeInconsistency"
    assert zk.exists("/m/2") is None and zk.exists("/m/3") is None


def test_multi_sequential_numbers_within_one_transaction(zk):
    zk.create("/ms")
    t = zk.transaction()
    t.create("/ms/s-", sequence=True)
    t.create("/ms/s-", sequence=True)
    assert t.commit() == ["/ms/s-0000000000", "/ms/s-0000000001"]


def test_sync(zk):
    assert zk.sync("/") == "/"


def test_raw_ops(server):
    c = RawClient(server.host, server.port)
    try:
        err, r, _ = c.create("/r", b"d")
        assert err == 0 and r.ustring() == "/r"
        c.create("/r/e1", flags=1)
        c.create("/r/e2", flags=1)
        c.create("/r/p")
        err, r, _ = c.call(Op.GET_ALL_CHILDREN_NUMBER, ("/r",))
        assert err == 0 and r.int() == 3
        err, r, _ = c.call(Op.GET_EPHEMERALS, ("/r/",))
        assert err == 0 and sorted(r.strings()) == ["/r/e1", "/r/e2"]
        err, r, _ = c.call(Op.GET_EPHEMERALS, ("/nothing",))
        assert err == 0 and r.strings() == []
        err, r, _ = c.call(Op.WHO_AM_I)
        assert err == 0 and r.int() == 1 and (r.ustring(), r.ustring()) == ("ip", "127.0.0.1")
        err, _, _ = c.call(Op.CHECK, ("/r", 0))
        assert err == 0
        err, _, _ = c.call(Op.CHECK, ("/r", 5))
        assert err == Err.BADVERSION
        # multiRead: per-op results, errors in place
        err, r, _ = c.call(Op.MULTI_READ, ([(Op.GET_DATA, ("/r", False)), (Op.GET_CHILDREN, ("/nope", False)),
                                            (Op.GET_CHILDREN, ("/r", False))],))
        assert err == 0
        t, done, e = r.int(), r.bool(), r.int()
        assert (t, done, e) == (Op.GET_DATA, False, 0) and r.buffer() == b"d"
        decode_stat(r)
        t, done, e = r.int(), r.bool(), r.int()
        assert (t, e) == (-1, Err.NONODE) and r.int() == Err.NONODE
        t, done, e = r.int(), r.bool(), r.int()
        assert t == Op.GET_CHILDREN and sorted(r.strings()) == ["e1", "e2", "p"]
        assert (r.int(), r.bool(), r.int()) == (-1, True, -1)
    finally:
        c.close()


def test_container_removed_after_last_child(server):
    c = RawClient(server.host, server.port)
    try:
        err, _, _ = c.create("/cont", flags=4, op=Op.CREATE_CONTAINER)
        assert err == 0
        err, r, _ = c.call(Op.EXISTS, ("/cont", False))
        assert decode_stat(r)[7] == 0  # containers show no owner, as in ZooKeeper
        assert server.call(server.server.check_containers) == 0  # never had children: kept
        c.create("/cont/child")
        c.call(Op.DELETE, ("/cont/child", -1))
        assert server.call(server.server.check_containers) == 1
        err, _, _ = c.call(Op.EXISTS, ("/cont", False))
        assert err == Err.NONODE
    finally:
        c.close()


def test_ttl_nodes(server):
    c = RawClient(server.host, server.port)
    try:
        err, _, _ = c.create("/ttl", flags=5, ttl=50, op=Op.CREATE_TTL)
        assert err == 0
        err, r, _ = c.call(Op.EXISTS, ("/ttl", False))
        assert decode_stat(r)[7] == 0  # TTL nodes show no owner, as in ZooKeeper
        err, _, _ = c.create("/ttl2", flags=5, ttl=0, op=Op.CREATE_TTL)
        assert err == Err.BADARGUMENTS
        err, _, _ = c.create("/ttl3", flags=0, ttl=100, op=Op.CREATE_TTL)
        assert err == Err.BADARGUMENTS
        import time

        time.sleep(0.1)
        assert server.call(server.server.check_containers) == 1
        err, _, _ = c.call(Op.EXISTS, ("/ttl", False))
        assert err == Err.NONODE
    finally:
        c.close()


def test_ttl_needs_extended_types():
    from zkpy.testing import ZkpyServer

    with ZkpyServer() as s:
        c = RawClient(s.host, s.port)
        err, _, _ = c.create("/ttl", flags=5, ttl=1000, op=Op.CREATE_TTL)
        assert err == Err.UNIMPLEMENTED
        c.close()


def test_failed_writes_consume_a_zxid(zk):
    before = zk.create("/z") and zk.exists("/z").czxid
    with pytest.raises(NodeExistsError):
        zk.create("/z")
    zk.create("/z2")
    assert zk.exists("/z2").czxid == before + 2
