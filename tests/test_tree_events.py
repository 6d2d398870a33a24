"""DataTree.apply is pure: it returns (result, events) and calls no watcher.

Events are (watcher, event_type, path) in the order ZooKeeper sends them; the watch
tables are updated on the way (one-shot watches used up), and events are filtered by
READ permission on the node (its parent, for NodeChildrenChanged)."""

import pytest

from zkpy.protocol.codes import Err, Event, Op
from zkpy.tree.acl import OPEN_ACL_UNSAFE
from zkpy.tree.datatree import DataTree, Txn
from zkpy.tree.watches import PERSISTENT, RECURSIVE

CREATED, DELETED, CHANGED, CHILD = (Event.NODE_CREATED, Event.NODE_DELETED,
                                    Event.NODE_DATA_CHANGED, Event.NODE_CHILDREN_CHANGED)
SECRET = ((31, "digest", "alice:x"),)
SESSION = 0x1234


class Watcher:
    """A watcher that fails the test if anything calls it."""

    def __init__(self, name, identities=()):
        self.name = name
        self.identities = list(identities)

    def notify(self, event_type, path):
        raise AssertionError(f"{self.name} was called: the tree must not call watchers")

    def __repr__(self):
        return self.name


class Tree:
    """A DataTree and a zxid counter; each helper applies one txn and returns (result, events)."""

    def __init__(self):
        self.tree = DataTree()
        self.zxid = 0

    def txn(self, type, args, session=SESSION):
        self.zxid += 1
        return Txn(self.zxid, 1000 + self.zxid, session, self.zxid, type, args)

    def apply(self, type, args, session=SESSION):
        return self.tree.apply(self.txn(type, args, session))

    def create(self, path, data=b"", acl=OPEN_ACL_UNSAFE, owner=0):
        return self.apply(Op.CREATE, self.create_args(path, data, acl, owner))

    def create_args(self, path, data=b"", acl=OPEN_ACL_UNSAFE, owner=0):
        parent = self.tree.nodes.get(path.rpartition("/")[0] or "/")
        return (path, data, acl, owner, (parent.cversion if parent else 0) + 1)

    def set(self, path, data=b"x"):
        node = self.tree.nodes.get(path)
        return self.apply(Op.SET_DATA, (path, data, (node.version if node else 0) + 1))

    def delete(self, path):
        return self.apply(Op.DELETE, (path,))

    def data_watch(self, path, w, mode=1):
        self.tree.data_watches.add(path, w, mode)

    def child_watch(self, path, w, mode=1):
        self.tree.child_watches.add(path, w, mode)

    def persistent(self, path, w, mode=PERSISTENT):
        self.tree.data_watches.add(path, w, mode)
        self.tree.child_watches.add(path, w, mode)


@pytest.fixture
def t():
    return Tree()


def test_apply_returns_events_and_calls_no_watcher(t):
    t.create("/a")
    w = Watcher("w")
    t.data_watch("/a", w)
    result, events = t.set("/a", b"new")
    assert result[:2] == (Op.SET_DATA, 0)
    assert events == [(w, CHANGED, "/a")]
    assert type(events[0][1]) is Event  # the same values notify received before
    assert t.tree.nodes["/a"].data == b"new"


def test_no_events_is_a_shared_empty_tuple(t):
    t.create("/a")
    t.create("/b")
    t.data_watch("/b", Watcher("elsewhere"))
    _, e1 = t.set("/a")
    _, e2 = t.set("/a")
    _, e3 = t.create("/c")
    assert e1 == () and e1 is e2 is e3
    assert t.apply(Op.SET_DATA, ("/missing", b"", 1)) == ((Op.SET_DATA, Err.NONODE, None), ())


def test_one_shot_watch_fires_once(t):
    t.create("/a")
    w = Watcher("w")
    t.data_watch("/a", w)
    assert t.set("/a")[1] == [(w, CHANGED, "/a")]
    assert t.set("/a")[1] == ()
    assert t.tree.data_watches.count() == 0
    assert t.tree.data_watches.by_watcher == {}


def test_exists_watch_fires_on_create_and_child_watch_on_parent(t):
    t.create("/p")
    ex, kids = Watcher("exists"), Watcher("children")
    t.data_watch("/p/n", ex)
    t.child_watch("/p", kids)
    assert t.create("/p/n")[1] == [(ex, CREATED, "/p/n"), (kids, CHILD, "/p")]
    assert t.create("/p/m")[1] == ()


def test_acl_filters_events_but_uses_up_the_watch(t):
    reader, stranger = Watcher("reader", [("digest", "alice:x")]), Watcher("stranger")
    t.create("/s", acl=SECRET)
    t.data_watch("/s", stranger)
    t.data_watch("/s", reader)
    assert t.set("/s")[1] == [(reader, CHANGED, "/s")]
    assert t.tree.data_watches.count() == 0  # the stranger's watch is gone all the same
    assert t.set("/s")[1] == ()


def test_acl_of_parent_filters_child_events_and_node_acl_recursive_ones(t):
    stranger = Watcher("stranger")
    t.create("/p", acl=SECRET)
    t.child_watch("/p", stranger)
    assert t.create("/p/kid")[1] == ()
    t.create("/r")
    t.persistent("/r", stranger, RECURSIVE)
    assert t.create("/r/secret", acl=SECRET)[1] == ()
    assert t.create("/r/open")[1] == [(stranger, CREATED, "/r/open")]


def test_delete_order(t):
    t.create("/p")
    t.create("/p/c")
    data, both, kids, parent = Watcher("data"), Watcher("both"), Watcher("kids"), Watcher("parent")
    t.data_watch("/p/c", data)
    t.data_watch("/p/c", both)
    t.child_watch("/p/c", kids)
    t.child_watch("/p/c", both)  # told once, by the data table
    t.child_watch("/p", parent)
    _, events = t.delete("/p/c")
    assert events == [(data, DELETED, "/p/c"), (both, DELETED, "/p/c"), (kids, DELETED, "/p/c"),
                      (parent, CHILD, "/p")]
    assert t.tree.data_watches.count() == t.tree.child_watches.count() == 0


def test_order_among_watchers_is_registration_order(t):
    t.create("/a")
    ws = [Watcher(f"w{i}") for i in range(50)]
    for w in ws:
        t.data_watch("/a", w)
    assert [e[0] for e in t.set("/a")[1]] == ws


def test_multi_events_in_op_order(t):
    t.create("/m")
    t.create("/m/b")
    w = Watcher("w")
    t.persistent("/m", w)
    t.data_watch("/m/b", w)
    subs = [(Op.CREATE, t.create_args("/m/a")), (Op.SET_DATA, ("/m", b"d", 1)), (Op.DELETE, ("/m/b",))]
    result, events = t.apply(Op.MULTI, (subs,))
    assert [r[:2] for r in result[2]] == [(Op.CREATE, 0), (Op.SET_DATA, 0), (Op.DELETE, 0)]
    assert events == [(w, CHILD, "/m"), (w, CHANGED, "/m"), (w, DELETED, "/m/b"), (w, CHILD, "/m")]


def test_failed_multi_fires_nothing(t):
    t.create("/m")
    w = Watcher("w")
    t.persistent("/m", w)
    subs = [(Op.SET_DATA, ("/m", b"d", 1)), (Op.ERROR, (Err.BADVERSION,))]
    result, events = t.apply(Op.MULTI, (subs,))
    assert [r[1] for r in result[2]] == [Err.OK, Err.BADVERSION]
    assert events == ()


def test_a_raising_apply_leaks_no_events_into_the_next(t):
    t.create("/m")
    w = Watcher("w")
    t.persistent("/m", w)
    with pytest.raises(ValueError):
        t.apply(Op.MULTI, ([(Op.SET_DATA, ("/m", b"d", 1)), (9999, ())],))
    assert t.create("/other")[1] == ()


def test_session_close_deletes_ephemerals_in_order(t):
    t.apply(Op.CREATE_SESSION, (30000,))
    t.create("/e")
    for name in ("x", "y", "z"):
        t.create(f"/e/{name}", owner=SESSION)
    w, parent = Watcher("w"), Watcher("parent")
    for name in ("x", "y", "z"):
        t.data_watch(f"/e/{name}", w)
    t.persistent("/e", parent)
    # Prep hands the paths in ZooKeeper's order; the tree deletes them in that order.
    _, events = t.apply(Op.CLOSE_SESSION, (["/e/z", "/e/x", "/e/y"],))
    assert events == [(w, DELETED, "/e/z"), (parent, CHILD, "/e"),
                      (w, DELETED, "/e/x"), (parent, CHILD, "/e"),
                      (w, DELETED, "/e/y"), (parent, CHILD, "/e")]
    assert SESSION not in t.tree.sessions and not t.tree.ephemerals


def test_persistent_watch(t):
    t.create("/pw")
    w = Watcher("w")
    t.persistent("/pw", w)
    assert t.set("/pw")[1] == [(w, CHANGED, "/pw")]
    assert t.set("/pw")[1] == [(w, CHANGED, "/pw")]
    assert t.create("/pw/kid")[1] == [(w, CHILD, "/pw")]
    assert t.create("/pw/kid/grandkid")[1] == ()
    assert t.set("/pw/kid")[1] == ()
    assert t.delete("/pw/kid/grandkid")[1] == ()
    assert t.delete("/pw/kid")[1] == [(w, CHILD, "/pw")]
    assert t.delete("/pw")[1] == [(w, DELETED, "/pw")]  # told once though in both tables
    assert t.tree.data_watches.count() == t.tree.child_watches.count() == 1  # they outlive the node


def test_persistent_recursive_watch(t):
    t.create("/rw")
    w, one_shot = Watcher("w"), Watcher("one-shot")
    t.persistent("/rw", w, RECURSIVE)
    assert t.create("/rw/a")[1] == [(w, CREATED, "/rw/a")]
    t.data_watch("/rw/a/b", one_shot)
    assert t.create("/rw/a/b")[1] == [(one_shot, CREATED, "/rw/a/b"), (w, CREATED, "/rw/a/b")]
    assert t.set("/rw/a/b")[1] == [(w, CHANGED, "/rw/a/b")]
    assert t.set("/rw")[1] == [(w, CHANGED, "/rw")]
    assert t.delete("/rw/a/b")[1] == [(w, DELETED, "/rw/a/b")]  # no NodeChildrenChanged
    assert t.create("/other")[1] == ()
    t.data_watch("/rw/a", w)  # the last mode set wins for one watcher at one path
    assert t.set("/rw/a")[1] == [(w, CHANGED, "/rw/a")]
    assert t.set("/rw/a")[1] == [(w, CHANGED, "/rw/a")]  # still told, by the recursive watch on /rw
