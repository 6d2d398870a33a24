"""Final: answers reads from the tree and turns applied txn results into response bodies.

(FinalRequestProcessor.)  Reads run against the local tree with the connection as the
watcher; write results come from DataTree.apply.  Every function returns (err, body).
"""

from __future__ import annotations

from typing import Any

from ..protocol.codes import Err, Op, Perm, WatcherType, ZkError
from ..protocol.jute import INT, MULTI_HEADER, enc_acls, enc_string, enc_strings
from ..tree import acl as acls
from ..tree.datatree import DataTree
from ..tree.watches import PERSISTENT, RECURSIVE, STANDARD

_NONODE = (int(Err.NONODE), b"")
_NOAUTH = (int(Err.NOAUTH), b"")
_MULTI_END = MULTI_HEADER.pack(-1, True, -1)
_ERROR_RESPONSE_OK = INT.pack(0)


def _readable(node_acl: tuple, ids: list) -> bool:
    return node_acl is acls.OPEN_ACL_UNSAFE or acls.allowed(node_acl, Perm.READ, ids)


def get_data(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    path, watch = args
    node = tree.nodes.get(path)
    if node is None:
        return _NONODE
    if not _readable(node.acl, conn.identities):
        return _NOAUTH
    if watch:
        tree.data_watches.add(path, conn)
    data = node.data
    if data is None:
        return 0, b"\xff\xff\xff\xff" + node.stat()
    return 0, INT.pack(len(data)) + data + node.stat()


def exists(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    path, watch = args
    if "\0" in path:
        return int(Err.BADARGUMENTS), b""
    if watch:
        tree.data_watches.add(path, conn)
    node = tree.nodes.get(path)
    if node is None:
        return _NONODE
    return 0, node.stat()


def _children(tree: DataTree, conn: Any, path: str, watch: bool):
    node = tree.nodes.get(path)
    if node is None:
        raise ZkError(Err.NONODE)
    if not _readable(node.acl, conn.identities):
        raise ZkError(Err.NOAUTH)
    if watch:
        tree.child_watches.add(path, conn)
    return node, sorted(node.children)


def get_children(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    try:
        _, children = _children(tree, conn, args[0], args[1])
    except ZkError as e:
        return int(e.code), b""
    return 0, enc_strings(children)


def get_children2(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    try:
        node, children = _children(tree, conn, args[0], args[1])
    except ZkError as e:
        return int(e.code), b""
    return 0, enc_strings(children) + node.stat()


def get_acl(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    node = tree.nodes.get(args[0])
    if node is None:
        return _NONODE
    ids = conn.identities
    if not acls.allowed(node.acl, Perm.READ | Perm.ADMIN, ids):
        return _NOAUTH
    acl = node.acl
    if not acls.allowed(acl, Perm.ADMIN, ids):
        # Without ADMIN, digests are not shown (they could be brute-forced offline).
        acl = tuple((p, s, i.split(":", 1)[0] + ":x" if s == "digest" else i) for p, s, i in acl)
    return 0, enc_acls(acl) + node.stat()


def get_all_children_number(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    path = args[0]
    node = tree.nodes.get(path)
    if node is None:
        return _NONODE
    if not _readable(node.acl, conn.identities):
        return _NOAUTH
    return 0, INT.pack(tree.count_descendants(path))


def get_ephemerals(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    prefix = args[0].strip() if args[0] else ""
    paths = tree.ephemerals_of(conn.session_id)
    if prefix and prefix != "/":
        paths = [p for p in paths if p.startswith(args[0])]
    return 0, enc_strings(sorted(paths))


def sync(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    return 0, enc_string(args[0])


def add_watch(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    path, mode = args
    if mode == 0:
        tree.data_watches.add(path, conn, PERSISTENT)
        tree.child_watches.add(path, conn, PERSISTENT)
    elif mode == 1:
        # ZooKeeper 3.8 registers a recursive watch in both tables; the child table
        # never fires NodeChildrenChanged at it (see WatchTable.trigger).
        tree.data_watches.add(path, conn, RECURSIVE)
        tree.child_watches.add(path, conn, RECURSIVE)
    else:
        return int(Err.BADARGUMENTS), b""
    return 0, _ERROR_RESPONSE_OK  # ZooKeeper answers addWatch with an ErrorResponse(0)


def _watch_tables(tree: DataTree, kind: int) -> list:
    if kind == WatcherType.CHILDREN:
        return [tree.child_watches]
    if kind == WatcherType.DATA:
        return [tree.data_watches]
    return [tree.child_watches, tree.data_watches]


# ZooKeeper 3.8 knows only the Children, Data and Any types here; others fail to decode.
_WATCHER_TYPES = (WatcherType.CHILDREN, WatcherType.DATA, WatcherType.ANY)
_ALL_MODES = STANDARD | PERSISTENT | RECURSIVE


def remove_watches(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    """Remove this connection's watches (of every mode) at `path` from the tables of `kind`."""
    path, kind = args
    if kind not in _WATCHER_TYPES:
        return int(Err.MARSHALLINGERROR), b""
    removed = False
    for table in _watch_tables(tree, kind):
        if table.remove(path, conn, _ALL_MODES):
            removed = True
    return (0, b"") if removed else (int(Err.NOWATCHER), b"")


def check_watches(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    """As ZooKeeper 3.8 answers it: is there any watcher, of any connection, at `path`?"""
    path, kind = args
    if kind not in _WATCHER_TYPES or not path.startswith("/"):
        return int(Err.MARSHALLINGERROR), b""
    found = any(table.by_path.get(path) for table in _watch_tables(tree, kind))
    return (0, b"") if found else (int(Err.NOWATCHER), b"")


def set_watches(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    """Re-register a reconnecting client's watches; fire at once what it missed (DataTree.setWatches)."""
    from ..protocol.codes import Event

    rel_zxid, data_w, exist_w, child_w, persistent_w, recursive_w = args
    nodes = tree.nodes
    for path in data_w:
        node = nodes.get(path)
        if node is None:
            conn.notify(Event.NODE_DELETED, path)
        elif node.mzxid > rel_zxid:
            conn.notify(Event.NODE_DATA_CHANGED, path)
        else:
            tree.data_watches.add(path, conn)
    for path in exist_w:
        if path in nodes:
            conn.notify(Event.NODE_CREATED, path)
        else:
            tree.data_watches.add(path, conn)
    for path in child_w:
        node = nodes.get(path)
        if node is None:
            conn.notify(Event.NODE_DELETED, path)
        elif node.pzxid > rel_zxid:
            conn.notify(Event.NODE_CHILDREN_CHANGED, path)
        else:
            tree.child_watches.add(path, conn)
    for path in persistent_w:
        tree.child_watches.add(path, conn, PERSISTENT)
        tree.data_watches.add(path, conn, PERSISTENT)
    for path in recursive_w:
        tree.data_watches.add(path, conn, RECURSIVE)
        tree.child_watches.add(path, conn, RECURSIVE)
    return 0, b""


def who_am_i(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    parts = [INT.pack(len(conn.identities))]
    for scheme, ident in acls.java_order(conn.identities):
        user = ident.split(":", 1)[0] if scheme == "digest" else ident
        parts.append(enc_string(scheme) + enc_string(user))
    return 0, b"".join(parts)


def multi_read(tree: DataTree, conn: Any, args: tuple) -> tuple[int, bytes]:
    parts = []
    for op, sub in args[0]:
        if op == Op.GET_DATA:
            err, body = get_data(tree, conn, sub)
        elif op == Op.GET_CHILDREN:
            err, body = get_children(tree, conn, sub)
        else:
            err, body = int(Err.MARSHALLINGERROR), b""
        if err:
            parts.append(MULTI_HEADER.pack(-1, False, err) + INT.pack(err))
        else:
            parts.append(MULTI_HEADER.pack(op, False, 0) + body)
    parts.append(_MULTI_END)
    return 0, b"".join(parts)


READS = {
    Op.GET_DATA: get_data,
    Op.EXISTS: exists,
    Op.GET_CHILDREN: get_children,
    Op.GET_CHILDREN2: get_children2,
    Op.GET_ACL: get_acl,
    Op.GET_ALL_CHILDREN_NUMBER: get_all_children_number,
    Op.GET_EPHEMERALS: get_ephemerals,
    Op.SYNC: sync,
    Op.ADD_WATCH: add_watch,
    Op.REMOVE_WATCHES: remove_watches,
    Op.CHECK_WATCHES: check_watches,
    Op.SET_WATCHES: set_watches,
    Op.SET_WATCHES2: set_watches,
    Op.WHO_AM_I: who_am_i,
    Op.MULTI_READ: multi_read,
}

# Op.SASL is the connection's (server/connection.py): a SASL exchange belongs to one connection.

WRITES = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.DELETE, Op.SET_DATA,
                    Op.SET_ACL, Op.CHECK, Op.MULTI, Op.RECONFIG})


def _sub_result(result: tuple) -> bytes:
    t, err, payload = result
    if t == Op.ERROR:
        return MULTI_HEADER.pack(-1, False, err) + INT.pack(err)
    if t == Op.CREATE or t == Op.CREATE2:
        # ZooKeeper 3.8 answers a create2 inside multi as a plain create: the path, no Stat.
        return MULTI_HEADER.pack(Op.CREATE, False, 0) + enc_string(payload[0])
    if t in (Op.CREATE_CONTAINER, Op.CREATE_TTL):
        return MULTI_HEADER.pack(Op.CREATE2, False, 0) + enc_string(payload[0]) + payload[1]
    if t == Op.SET_DATA:
        return MULTI_HEADER.pack(Op.SET_DATA, False, 0) + payload
    return MULTI_HEADER.pack(t, False, 0)  # delete, check


def write_response(op: int, result: tuple) -> tuple[int, bytes]:
    """(err, body) for the client whose write produced `result` (DataTree.apply's value)."""
    t, err, payload = result
    if t == Op.MULTI:
        return 0, b"".join([_sub_result(r) for r in payload]) + _MULTI_END
    if err:
        return err, b""
    if t == Op.CREATE:
        return 0, enc_string(payload[0])
    if t in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        return 0, enc_string(payload[0]) + payload[1]
    if t in (Op.SET_DATA, Op.SET_ACL):
        return 0, payload
    if t == Op.CHECK:
        return 0, b""
    return 0, b""


