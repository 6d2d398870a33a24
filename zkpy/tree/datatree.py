"""The znode tree and the deterministic application of transactions (DataTree).

`apply(txn)` depends only on the tree and the txn: zxid, time, session ids, sequence
numbers and ACL expansion were all decided in Prep and travel in the txn, so every
replica applying the same log holds the same tree.  It calls nothing outside: it returns
the watch events the txn fired, `(watcher, event_type, path)` in the order ZooKeeper sends
them, for whichever watchers are registered on this replica, and the caller delivers them.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Sequence

from ..protocol.codes import CONTAINER_OWNER, Err, Event, Op, owner_kind
from ..protocol.jute import STAT
from . import javaorder
from .acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from .watches import WatchTable


class Znode:
    __slots__ = ("data", "acl", "czxid", "mzxid", "ctime", "mtime", "version", "cversion",
                 "aversion", "owner", "pzxid", "children")

    def __init__(self, data: bytes | None, acl: tuple, zxid: int, time: int, owner: int) -> None:
        self.data = data
        self.acl = acl
        self.czxid = zxid
        self.mzxid = zxid
        self.ctime = time
        self.mtime = time
        self.version = 0
        self.cversion = 0
        self.aversion = 0
        self.owner = owner
        self.pzxid = zxid
        self.children: set[str] = set()

    def stat(self) -> bytes:
        """The Stat record as clients see it (DataNode.copyStat).

        `cversion` is kept as ZooKeeper keeps it, a count of child creations (it numbers
        sequential nodes); clients see creations plus deletions, 2 * cversion - children.
        Containers and TTL nodes show ephemeralOwner 0.
        """
        n = len(self.children)
        owner = self.owner
        if owner < 0:
            owner = 0
        data = self.data
        return STAT.pack(self.czxid, self.mzxid, self.ctime, self.mtime, self.version, 2 * self.cversion - n,
                         self.aversion, owner, len(data) if data is not None else 0, n, self.pzxid)

    def stat_tuple(self) -> tuple:
        return STAT.unpack(self.stat())


class Txn:
    """One transaction: header fields plus the op's arguments (a tuple, msgpack-friendly).

    args by type:
      CREATE/CREATE2/CREATE_CONTAINER/CREATE_TTL: (path, data, acl, owner, parent_cversion)
      DELETE/DELETE_CONTAINER: (path,)
      SET_DATA: (path, data, new_version)      SET_ACL: (path, acl, new_aversion)
      CHECK: (path, version)                   ERROR: (err,)
      MULTI: ([(type, args), ...],)            CREATE_SESSION: (timeout,)
      CLOSE_SESSION: (paths_to_delete,)
    """

    __slots__ = ("zxid", "time", "session", "cxid", "type", "args")

    def __init__(self, zxid: int, time: int, session: int, cxid: int, type: int, args: tuple) -> None:
        self.zxid = zxid
        self.time = time
        self.session = session
        self.cxid = cxid
        self.type = type
        self.args = args

    def to_record(self) -> list:
        return [self.zxid, self.time, self.session, self.cxid, self.type, self.args]

    @classmethod
    def from_record(cls, rec: list) -> "Txn":
        return cls(*rec)

    def __repr__(self) -> str:
        return f"Txn(zxid={self.zxid:#x}, type={self.type}, session={self.session:#x}, args={self.args!r})"


CREATE_OPS = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL})
_NO_EVENTS: tuple = ()  # apply's events when nothing fired: shared, no allocation per txn
# The event types as module globals: an IntEnum member lookup (Event.X) costs ~100 ns on 3.11.
_CREATED = Event.NODE_CREATED
_DELETED = Event.NODE_DELETED
_DATA_CHANGED = Event.NODE_DATA_CHANGED
_CHILDREN_CHANGED = Event.NODE_CHILDREN_CHANGED


class DataTree:
    """All znodes by path, the ephemeral and container indexes, sessions and watches."""

    def __init__(self) -> None:
        self.nodes: dict[str, Znode] = {}
        # session -> its ephemeral paths in insertion order (dict keys), and the largest
        # number it held (for ZooKeeper's deletion order on close, see ephemerals_in_java_order)
        self.ephemerals: dict[int, dict[str, None]] = {}
        self.ephemeral_peak: dict[int, int] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.sessions: dict[int, int] = {}  # session id -> negotiated timeout (ms)
        self.last_zxid = 0
        self.data_watches = WatchTable()
        self.child_watches = WatchTable()
        self._events: list = []  # what the txn being applied fired; handed out by apply
        root = Znode(b"", OPEN_ACL_UNSAFE, 0, 0, 0)
        self.nodes["/"] = root
        self._add_system_node("/zookeeper", OPEN_ACL_UNSAFE)
        self._add_system_node("/zookeeper/quota", OPEN_ACL_UNSAFE)
        self._add_system_node("/zookeeper/config", READ_ACL_UNSAFE)
        self.nodes["/zookeeper/config"].aversion = -1  # ZooKeeper sets its ACL with version -1

    def _add_system_node(self, path: str, acl: tuple) -> None:
        node = Znode(b"", acl, 0, 0, 0)
        self.nodes[path] = node
        parent, _, name = path.rpartition("/")
        self.nodes[parent or "/"].children.add(name)

    # ------------------------------------------------------------ apply

    def apply(self, txn: Txn) -> tuple[tuple, Sequence[tuple[Any, int, str]]]:
        """Apply one txn; returns (result, events).

        result is (type, err, payload) as FinalRequestProcessor needs it; events are the
        watch notifications to send, (watcher, event_type, path), in ZooKeeper's order (for
        a delete: NodeDeleted to data watchers, then to child watchers not told already,
        then NodeChildrenChanged on the parent; a multi's and a closed session's in the
        order of their deletions).  No watcher is called.  When nothing fired, events is a
        shared empty tuple.
        """
        t = txn.type
        try:
            if t == Op.MULTI:
                result = self._apply_multi(txn)
            else:
                result = self._apply_one(t, txn.args, txn)
        except BaseException:
            self._events = []
            raise
        if txn.zxid > self.last_zxid:
            self.last_zxid = txn.zxid
        events = self._events
        if events:
            self._events = []
            return result, events
        return result, _NO_EVENTS

    def _apply_one(self, t: int, args: tuple, txn: Txn) -> tuple:
        try:
            if t == Op.SET_DATA:
                return (t, 0, self._set_data(args[0], args[1], args[2], txn.zxid, txn.time))
            if t in CREATE_OPS:
                path, data, acl, owner, parent_cversion = args
                return (t, 0, self._create(path, data, acl, owner, parent_cversion, txn.zxid, txn.time))
            if t == Op.DELETE or t == Op.DELETE_CONTAINER:
                self._delete(args[0], txn.zxid)
                return (t, 0, None)
            if t == Op.SET_ACL:
                return (t, 0, self._set_acl(args[0], args[1], args[2]))
            if t == Op.CHECK:
                return (t, 0, None)
            if t == Op.ERROR:
                return (t, args[0], None)
            if t == Op.CREATE_SESSION:
                self.sessions[txn.session] = args[0]
                return (t, 0, None)
            if t == Op.CLOSE_SESSION:
                self._kill_session(txn.session, args[0], txn.zxid)
                return (t, 0, None)
        except _NoNode:
            return (t, Err.NONODE, None)
        except _NodeExists:
            return (t, Err.NODEEXISTS, None)
        raise ValueError(f"unknown txn type {t}")

    def _apply_multi(self, txn: Txn) -> tuple:
        subs = txn.args[0]
        failed = any(sub_type == Op.ERROR for sub_type, _ in subs)
        results = []
        post_failed = False
        for sub_type, sub_args in subs:
            if sub_type == Op.ERROR:
                post_failed = True
                results.append((Op.ERROR, sub_args[0], None))
            elif failed:
                code = Err.RUNTIMEINCONSISTENCY if post_failed else Err.OK
                results.append((Op.ERROR, code, None))
            else:
                results.append(self._apply_one(sub_type, sub_args, txn))
        return (Op.MULTI, 0, results)

    def _create(self, path: str, data: bytes, acl: tuple, owner: int, parent_cversion: int,
                zxid: int, time: int) -> tuple[str, bytes]:
        i = path.rfind("/")
        parent_path = path[:i] if i > 0 else "/"
        name = path[i + 1 :]
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise _NoNode
        if path in self.nodes:
            raise _NodeExists
        if parent_cversion > parent.cversion:
            parent.cversion = parent_cversion
            parent.pzxid = zxid
        node = Znode(data, acl, zxid, time, owner)  # None stays None: clients read null back
        parent.children.add(name)
        self.nodes[path] = node
        if owner:
            kind = owner_kind(owner)
            if kind == "container":
                self.containers.add(path)
            elif kind == "ttl":
                self.ttls.add(path)
            else:
                paths = self.ephemerals.setdefault(owner, {})
                paths[path] = None
                if len(paths) > self.ephemeral_peak.get(owner, 0):
                    self.ephemeral_peak[owner] = len(paths)
        told = self.data_watches.trigger(path, _CREATED, acl)
        if told:
            self._events.extend([(w, _CREATED, path) for w in told])
        told = self.child_watches.trigger(parent_path, _CHILDREN_CHANGED, parent.acl)
        if told:
            self._events.extend([(w, _CHILDREN_CHANGED, parent_path) for w in told])
        return (path, node.stat())

    def _delete(self, path: str, zxid: int) -> None:
        i = path.rfind("/")
        parent_path = path[:i] if i > 0 else "/"
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise _NoNode
        node = self.nodes.get(path)
        if node is None:
            raise _NoNode
        parent.children.discard(path[i + 1 :])
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        del self.nodes[path]
        owner = node.owner
        if owner:
            if owner == CONTAINER_OWNER:
                self.containers.discard(path)
            elif owner_kind(owner) == "ttl":
                self.ttls.discard(path)
            else:
                paths = self.ephemerals.get(owner)
                if paths is not None:
                    paths.pop(path, None)
                    if not paths:
                        del self.ephemerals[owner]
        events = self._events
        told_data = self.data_watches.trigger(path, _DELETED, node.acl)
        if told_data:
            events.extend([(w, _DELETED, path) for w in told_data])
        told = self.child_watches.trigger(path, _DELETED, node.acl, told_data)
        if told:
            events.extend([(w, _DELETED, path) for w in told])
        told = self.child_watches.trigger(parent_path, _CHILDREN_CHANGED, parent.acl)
        if told:
            events.extend([(w, _CHILDREN_CHANGED, parent_path) for w in told])

    def _set_data(self, path: str, data: bytes, version: int, zxid: int, time: int) -> bytes:
        node = self.nodes.get(path)
        if node is None:
            raise _NoNode
        node.data = data
        node.mtime = time
        node.mzxid = zxid
        node.version = version
        told = self.data_watches.trigger(path, _DATA_CHANGED, node.acl)
        if told:
            self._events.extend([(w, _DATA_CHANGED, path) for w in told])
        return node.stat()

    def _set_acl(self, path: str, acl: tuple, aversion: int) -> bytes:
        node = self.nodes.get(path)
        if node is None:
            raise _NoNode
        node.aversion = aversion
        node.acl = acl
        return node.stat()

    def _kill_session(self, session: int, paths: list[str] | tuple, zxid: int) -> None:
        self.sessions.pop(session, None)
        self.ephemeral_peak.pop(session, None)
        for path in paths:
            try:
                self._delete(path, zxid)
            except _NoNode:
                pass
        for path in list(self.ephemerals.pop(session, ())):
            try:
                self._delete(path, zxid)
            except _NoNode:
                pass

    # ------------------------------------------------------------ queries

    def count_descendants(self, path: str) -> int:
        node = self.nodes.get(path)
        if node is None:
            return 0
        total = 0
        stack = [(path, node)]
        while stack:
            p, n = stack.pop()
            prefix = p if p == "/" else p + "/"
            for name in n.children:
                child_path = prefix + name
                child = self.nodes.get(child_path)
                if child is not None:
                    total += 1
                    stack.append((child_path, child))
        return total

    def ephemerals_of(self, session: int) -> dict[str, None]:
        return self.ephemerals.get(session, {})

    def ephemerals_in_java_order(self, paths: list[str], session: int) -> list[str]:
        """The order in which ZooKeeper deletes a closed session's ephemerals (a HashSet's)."""
        # ZooKeeper iterates a clone of the session's HashSet: the clone is sized for its
        # current entries and filled in the original's order.
        capacity = javaorder.table_capacity(max(self.ephemeral_peak.get(session, 0), len(paths)))
        original = javaorder.iteration_order(paths, javaorder.string_hash, capacity)
        return javaorder.iteration_order(original, javaorder.string_hash, javaorder.clone_capacity(len(paths)))

    def remove_watcher(self, watcher: Any) -> None:
        self.data_watches.remove_watcher(watcher)
        self.child_watches.remove_watcher(watcher)

    def digest(self) -> str:
        """A hash of every node's path, data, ACL and Stat (times included), for comparing replicas."""
        h = hashlib.sha256()
        for path in sorted(self.nodes):
            n = self.nodes[path]
            h.update(path.encode())
            h.update(b"\0")
            data = n.data if n.data is not None else b""
            h.update(struct.pack(">i", len(data) if n.data is not None else -1))
            h.update(data)
            h.update(repr(n.acl).encode())
            h.update(n.stat())
            h.update(struct.pack(">qi", n.owner, n.cversion))
        h.update(repr(sorted(self.sessions.items())).encode())
        return h.hexdigest()

    def node_count(self) -> int:
        return len(self.nodes)

    def approximate_data_size(self) -> int:
        return sum(len(p) + len(n.data or b"") for p, n in self.nodes.items())


class _NoNode(Exception):
    pass


class _NodeExists(Exception):
    pass
