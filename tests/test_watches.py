"""Watch semantics: one-shot data/exist/child watches, persistent and persistent-recursive
watches, removeWatches/checkWatches, setWatches on reconnect, events from other sessions."""

import threading
import time

from kazoo.protocol.states import EventType

from zkpy.protocol.codes import Err, Event, Op, WatcherType

from zkpy.testing.client import RawClient


def _collector():
    events = []
    cond = threading.Condition()

    def watch(ev):
        with cond:
            events.append((ev.type, ev.path))
            cond.notify_all()

    def wait(n, timeout=5.0):
        deadline = time.time() + timeout
        with cond:
            while len(events) < n and time.time() < deadline:
                cond.wait(deadline - time.time())
        return list(events)

    return watch, wait, events


def test_one_shot_data_watch_fires_once(make_client):
    a, b = make_client(), make_client()
    a.create("/w", b"1")
    watch, wait, events = _collector()
    a.get("/w", watch=watch)
    b.set("/w", b"2")
    b.set("/w", b"3")
    assert wait(1) == [(EventType.CHANGED, "/w")]
    b.sync("/")
    a.sync("/")
    time.sleep(0.1)
    assert len(events) == 1


def test_exists_watch_on_missing_node_fires_on_create(make_client):
    a, b = make_client(), make_client()
    watch, wait, _ = _collector()
    assert a.exists("/later", watch=watch) is None
    b.create("/later")
    assert wait(1) == [(EventType.CREATED, "/later")]


def test_child_watch_and_delete_events(make_client):
    a, b = make_client(), make_client()
    a.create("/c")
    child_watch, wait_child, _ = _collector()
    data_watch, wait_data, _ = _collector()
    a.get_children("/c", watch=child_watch)
    b.create("/c/x")
    assert wait_child(1) == [(EventType.CHILD, "/c")]
    a.get("/c/x", watch=data_watch)
    b.delete("/c/x")
    assert wait_data(1) == [(EventType.DELETED, "/c/x")]


def test_no_watch_left_on_missing_node_after_get(make_client, server):
    a = make_client()
    watch, _, events = _collector()
    try:
        a.get("/none", watch=watch)
    except Exception:
        pass
    assert server.call(lambda: server.server.tree.data_watches.count()) == 0


def test_ephemeral_delete_on_session_close_fires_watch(make_client):
    a, b = make_client(), make_client()
    b.create("/eph", ephemeral=True)
    watch, wait, _ = _collector()
    a.exists("/eph", watch=watch)
    b.stop()
    assert wait(1) == [(EventType.DELETED, "/eph")]
    assert a.exists("/eph") is None


def test_persistent_watch(server):
    a = RawClient(server.host, server.port)
    b = RawClient(server.host, server.port)
    a.create("/pw")
    assert a.call(Op.ADD_WATCH, ("/pw", 0))[0] == 0
    b.call(Op.SET_DATA, ("/pw", b"1", -1))
    b.create("/pw/kid")
    b.call(Op.SET_DATA, ("/pw", b"2", -1))
    b.create("/pw/kid/grandkid")  # not seen by a non-recursive watch
    b.call(Op.DELETE, ("/pw/kid/grandkid", -1))
    b.call(Op.DELETE, ("/pw/kid", -1))
    evs = a.wait_events(4)
    assert [(t, p) for t, _, p in evs] == [
        (Event.NODE_DATA_CHANGED, "/pw"), (Event.NODE_CHILDREN_CHANGED, "/pw"),
        (Event.NODE_DATA_CHANGED, "/pw"), (Event.NODE_CHILDREN_CHANGED, "/pw")]
    assert a.call(Op.CHECK_WATCHES, ("/pw", WatcherType.ANY))[0] == 0
    # ZooKeeper 3.8 cannot decode the Persistent watcher type in removeWatches
    assert a.call(Op.REMOVE_WATCHES, ("/pw", WatcherType.PERSISTENT))[0] == Err.MARSHALLINGERROR
    assert a.call(Op.REMOVE_WATCHES, ("/pw", WatcherType.ANY))[0] == 0
    assert a.call(Op.REMOVE_WATCHES, ("/pw", WatcherType.ANY))[0] == Err.NOWATCHER
    b.call(Op.SET_DATA, ("/pw", b"3", -1))
    a.call(Op.PING, (), xid=-2)
    assert len(a.events) == 4
    a.close()
    b.close()


def test_persistent_recursive_watch(server):
    a = RawClient(server.host, server.port)
    b = RawClient(server.host, server.port)
    a.create("/rw")
    assert a.call(Op.ADD_WATCH, ("/rw", 1))[0] == 0
    b.create("/rw/a")
    b.create("/rw/a/b")
    b.call(Op.SET_DATA, ("/rw/a/b", b"x", -1))
    b.call(Op.DELETE, ("/rw/a/b", -1))
    b.create("/other")
    evs = a.wait_events(4)
    assert [(t, p) for t, _, p in evs] == [
        (Event.NODE_CREATED, "/rw/a"), (Event.NODE_CREATED, "/rw/a/b"),
        (Event.NODE_DATA_CHANGED, "/rw/a/b"), (Event.NODE_DELETED, "/rw/a/b")]
    a.close()
    b.close()


def test_recursive_watcher_gets_no_event_for_unreadable_node(server):
    a = RawClient(server.host, server.port)
    b = RawClient(server.host, server.port)
    b.call(Op.AUTH, (0, "digest", b"owner:pw"), xid=-4)
    a.create("/acl")
    a.call(Op.ADD_WATCH, ("/acl", 1))
    b.create("/acl/secret", acl=[(31, "auth", "")])
    b.create("/acl/public")
    a.wait_events(1)
    a.call(Op.PING, (), xid=-2)
    assert [(t, p) for t, _, p in a.events] == [(Event.NODE_CREATED, "/acl/public")]
    a.close()
    b.close()


def test_remove_and_check_standard_watches(server):
    a = RawClient(server.host, server.port)
    a.create("/rm")
    a.call(Op.GET_DATA, ("/rm", True))
    assert a.call(Op.CHECK_WATCHES, ("/rm", WatcherType.DATA))[0] == 0
    assert a.call(Op.CHECK_WATCHES, ("/rm", WatcherType.CHILDREN))[0] == Err.NOWATCHER
    assert a.call(Op.REMOVE_WATCHES, ("/rm", WatcherType.ANY))[0] == 0
    assert a.call(Op.CHECK_WATCHES, ("/rm", WatcherType.DATA))[0] == Err.NOWATCHER
    a.close()


def test_set_watches_fires_missed_events(server):
    a = RawClient(server.host, server.port)
    a.create("/sw1")
    a.create("/sw2")
    err, _, zxid = a.call(Op.PING, (), xid=-2)
    a.call(Op.SET_DATA, ("/sw1", b"changed", -1))
    a.create("/sw2/kid")
    a.create("/sw3")
    b = RawClient(server.host, server.port)
    # b pretends it had watches as of `zxid` and missed everything since.
    b.call(Op.SET_WATCHES2, (zxid, ["/sw1", "/gone"], ["/sw3", "/absent"], ["/sw2"], ["/p"], ["/r"]), xid=-8)
    got = sorted((t, p) for t, _, p in b.wait_events(4))
    assert got == sorted([(Event.NODE_DATA_CHANGED, "/sw1"), (Event.NODE_DELETED, "/gone"),
                          (Event.NODE_CREATED, "/sw3"), (Event.NODE_CHILDREN_CHANGED, "/sw2")])
    # /absent's exist watch and the persistent ones were registered
    a.create("/absent")
    a.create("/r")
    a.create("/r/deep")
    evs = b.wait_events(7)
    assert [(t, p) for t, _, p in evs[4:7]] == [(Event.NODE_CREATED, "/absent"), (Event.NODE_CREATED, "/r"),
                                                 (Event.NODE_CREATED, "/r/deep")]
    a.close()
    b.close()


def test_watch_event_comes_before_the_reply_to_the_write_that_fired_it(server):
    """As in ZooKeeper (FinalRequestProcessor applies the txn, which queues the events, then
    answers): on the writer's own connection the event precedes the write's reply."""
    a = RawClient(server.host, server.port)
    a.create("/order")
    a.call(Op.GET_DATA, ("/order", True))
    a.call(Op.GET_CHILDREN2, ("/order", True))
    a.call(Op.SET_DATA, ("/order", b"1", -1))
    assert [(t, p) for t, _, p in a.events] == [(Event.NODE_DATA_CHANGED, "/order")]
    a.create("/order/kid")
    assert [(t, p) for t, _, p in a.events][1:] == [(Event.NODE_CHILDREN_CHANGED, "/order")]
    b = RawClient(server.host, server.port)
    b.create("/order/eph", flags=1)
    b.call(Op.EXISTS, ("/order/eph", True))
    b.call(Op.CLOSE_SESSION, ())  # its own ephemeral's deletion, told before the close reply
    assert [(t, p) for t, _, p in b.events] == [(Event.NODE_DELETED, "/order/eph")]
    a.close()
    b.close()
