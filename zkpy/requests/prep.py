"""Prep: turns a write request into a transaction (PrepRequestProcessor).

Checks paths, versions and ACLs against the tree as it will be once every transaction
already handed out is applied (ZooKeeper's outstanding change records), assigns the
zxid and wall time, and fixes everything that must be identical on every replica:
sequence suffixes, expanded ACLs, ephemeral owners, the new versions.  A request that
fails still consumes a zxid and becomes an ERROR txn, as in ZooKeeper.

Pure: no I/O, no clock (the caller passes `now_ms`).
"""

from __future__ import annotations

from ..protocol.codes import (CONTAINER_OWNER, EPHEMERAL_MODES, MAX_TTL, SEQUENTIAL_MODES, TTL_MODES, CreateMode,
                              Err, Op, Perm, ZkError, owner_kind, ttl_owner)
from ..tree import acl as acls
from ..tree.datatree import DataTree, Txn
from ..tree.paths import is_valid_path

SPECIAL_PATHS = frozenset({"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"})
_MULTI_CREATES = frozenset({Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL})


class Change:
    """What Prep knows of a node once outstanding txns apply (ChangeRecord); stat None = deleted."""

    __slots__ = ("zxid", "path", "exists", "version", "cversion", "aversion", "owner", "child_count", "acl")

    def __init__(self, zxid: int, path: str, exists: bool, version: int = 0, cversion: int = 0,
                 aversion: int = 0, owner: int = 0, child_count: int = 0, acl: tuple = ()) -> None:
        self.zxid = zxid
        self.path = path
        self.exists = exists
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.owner = owner
        self.child_count = child_count
        self.acl = acl

    def copy(self, zxid: int) -> "Change":
        return Change(zxid, self.path, self.exists, self.version, self.cversion, self.aversion, self.owner,
                      self.child_count, self.acl)


def _next_version(current: int, expected: int) -> int:
    if expected != -1 and expected != current:
        raise ZkError(Err.BADVERSION)
    nxt = current + 1
    return 0 if nxt == -1 else nxt


class Prep:
    def __init__(self, tree: DataTree, extended_types: bool = False) -> None:
        self.tree = tree
        self.extended_types = extended_types
        self.zxid = tree.last_zxid  # the last zxid handed out
        self.changes: list[Change] = []
        self.by_path: dict[str, Change] = {}
        self._undo: list[tuple[str, Change | None]] | None = None
        # ZooKeeper's PrepRequestProcessor counters: txns prepared (prep_processor_request_queued),
        # change records retired (outstanding_changes_removed) and rolled back with a failed multi.
        self.prepped = 0
        self.changes_removed = 0
        self.changes_rolled_back = 0
        self.closes = 0  # closeSession txns

    # ------------------------------------------------------------ change records

    def _record(self, path: str) -> Change:
        c = self.by_path.get(path)
        if c is None:
            n = self.tree.nodes.get(path)
            if n is None:
                raise ZkError(Err.NONODE)
            return Change(-1, path, True, n.version, n.cversion, n.aversion, n.owner, len(n.children), n.acl)
        if not c.exists:
            raise ZkError(Err.NONODE)
        return c

    def _add(self, c: Change) -> None:
        if self._undo is not None:
            self._undo.append((c.path, self.by_path.get(c.path)))
        self.changes.append(c)
        self.by_path[c.path] = c

    def committed(self, zxid: int) -> None:
        """Forget the change records of txns up to `zxid`, now applied to the tree."""
        changes = self.changes
        if not changes:
            return
        i = 0
        while i < len(changes) and changes[i].zxid <= zxid:
            c = changes[i]
            if self.by_path.get(c.path) is c:
                del self.by_path[c.path]
            i += 1
        del changes[:i]
        self.changes_removed += i

    @property
    def changes_added(self) -> int:
        """outstanding_changes_queued: every change record added, without a count on the write path."""
        return self.changes_removed + self.changes_rolled_back + len(self.changes)

    def reset(self) -> None:
        """Drop every outstanding change (e.g. after a leader change); zxid follows the tree."""
        self.changes_removed += len(self.changes)
        self.changes.clear()
        self.by_path.clear()
        self.zxid = self.tree.last_zxid

    # ------------------------------------------------------------ entry points

    def next_zxid(self) -> int:
        self.prepped += 1
        self.zxid += 1
        return self.zxid

    def prepare(self, session: int, cxid: int, op: int, args: tuple, identities: list, now_ms: int) -> Txn:
        """One write request -> one txn (an ERROR txn when a check fails)."""
        zxid = self.next_zxid()
        if op == Op.MULTI:
            try:
                subs = self._multi(zxid, session, args[0], identities, now_ms)
            except _WholeMultiFails:
                return Txn(zxid, now_ms, session, cxid, Op.ERROR, (int(Err.MARSHALLINGERROR),))
            return Txn(zxid, now_ms, session, cxid, Op.MULTI, (subs,))
        try:
            t, targs = self._one(zxid, session, op, args, identities)
        except ZkError as e:
            return Txn(zxid, now_ms, session, cxid, Op.ERROR, (int(e.code),))
        return Txn(zxid, now_ms, session, cxid, t, targs)

    def error(self, session: int, cxid: int, op: int, err: int, now_ms: int) -> Txn:
        """A request that failed before any check (an undecodable multi): an ERROR txn."""
        return Txn(self.next_zxid(), now_ms, session, cxid, Op.ERROR, (int(err),))

    def create_session(self, session: int, timeout: int, now_ms: int) -> Txn:
        return Txn(self.next_zxid(), now_ms, session, 0, Op.CREATE_SESSION, (timeout,))

    def close_session(self, session: int, cxid: int, now_ms: int) -> Txn:
        self.closes += 1
        zxid = self.next_zxid()
        paths = dict(self.tree.ephemerals_of(session))
        for c in self.changes:
            if not c.exists:
                paths.pop(c.path, None)
            elif session and c.owner == session:  # owner 0: a persistent node, no session's
                paths[c.path] = None
        ordered = self.tree.ephemerals_in_java_order(list(paths), session)
        for p in ordered:
            self._add(Change(zxid, p, False))
        return Txn(zxid, now_ms, session, cxid, Op.CLOSE_SESSION, (ordered,))

    def delete_container(self, path: str, now_ms: int) -> Txn:
        zxid = self.next_zxid()
        try:
            t, targs = self._delete_container(zxid, path)
        except ZkError as e:
            return Txn(zxid, now_ms, 0, 0, Op.ERROR, (int(e.code),))
        return Txn(zxid, now_ms, 0, 0, t, targs)

    # ------------------------------------------------------------ ops

    def _multi(self, zxid: int, session: int, ops: list, identities: list, now_ms: int) -> list:
        self._undo = []
        subs: list[tuple[int, tuple]] = []
        failed = False
        try:
            for op, args in ops:
                if op in _MULTI_CREATES:
                    op, args = _multi_create(op, args)
                if failed:
                    subs.append((Op.ERROR, (int(Err.RUNTIMEINCONSISTENCY),)))
                    continue
                if op == Op.CREATE_TTL and args[4] is None:
                    self._rollback(zxid)  # TTL flags on a create without a TTL: the request is bad
                    raise _WholeMultiFails
                try:
                    subs.append(self._one(zxid, session, op, args, identities))
                except ZkError as e:
                    failed = True
                    subs.append((Op.ERROR, (int(e.code),)))
                    self._rollback(zxid)
        finally:
            self._undo = None
        return subs

    def _rollback(self, zxid: int) -> None:
        while self.changes and self.changes[-1].zxid == zxid:
            self.changes.pop()
            self.changes_rolled_back += 1
        for path, previous in reversed(self._undo or []):
            if previous is None:
                self.by_path.pop(path, None)
            else:
                self.by_path[path] = previous
        self._undo = []

    def _one(self, zxid: int, session: int, op: int, args: tuple, ids: list) -> tuple[int, tuple]:
        if op in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
            return self._create(zxid, session, op, args, ids)
        if op == Op.DELETE:
            return self._delete(zxid, args, ids)
        if op == Op.SET_DATA:
            return self._set_data(zxid, args, ids)
        if op == Op.SET_ACL:
            return self._set_acl(zxid, args, ids)
        if op == Op.RECONFIG:
            raise ZkError(Err.RECONFIGDISABLED)  # reconfigEnabled=false, ZooKeeper's default
        if op == Op.CHECK:
            path, version = args
            _check_path(path)
            rec = self._record(path)
            acls.check(rec.acl, Perm.READ, ids)
            return Op.CHECK, (path, _next_version(rec.version, version))
        raise ZkError(Err.MARSHALLINGERROR)

    def _create(self, zxid: int, session: int, op: int, args: tuple, ids: list) -> tuple[int, tuple]:
        path, data, acl, flags, ttl = args
        try:
            mode = CreateMode(flags)
        except ValueError:
            raise ZkError(Err.BADARGUMENTS) from None
        is_ttl = mode in TTL_MODES
        if is_ttl:
            if not self.extended_types:
                raise ZkError(Err.UNIMPLEMENTED)
            if not 0 < ttl <= MAX_TTL:
                raise ZkError(Err.BADARGUMENTS)
        elif ttl >= 0:
            raise ZkError(Err.BADARGUMENTS)
        slash = path.rfind("/")
        if slash == -1 or "\0" in path:
            raise ZkError(Err.BADARGUMENTS)
        parent_path = path[:slash] if slash > 0 else "/"
        if path == "/":
            parent_path = ""
        fixed_acl = acls.fixup(acl, ids)
        if parent_path == "":
            # Creating "/": its "parent" is the root itself in ZooKeeper, which exists.
            parent = self._record("/")
        else:
            parent = self._record(parent_path)
        acls.check(parent.acl, Perm.CREATE, ids)
        if mode in SEQUENTIAL_MODES:
            path = "%s%010d" % (path, parent.cversion)
        _check_path(path)
        existing = self.by_path.get(path)
        if (existing is not None and existing.exists) or (existing is None and path in self.tree.nodes):
            raise ZkError(Err.NODEEXISTS)
        if owner_kind(parent.owner) == "session":
            raise ZkError(Err.NOCHILDRENFOREPHEMERALS)
        new_cversion = parent.cversion + 1
        if op == Op.CREATE_CONTAINER or mode == CreateMode.CONTAINER:
            owner = CONTAINER_OWNER
        elif is_ttl:
            owner = ttl_owner(ttl)
        elif mode in EPHEMERAL_MODES:
            owner = session
        else:
            owner = 0
        p = parent.copy(zxid)
        p.child_count += 1
        p.cversion = new_cversion
        self._add(p)
        self._add(Change(zxid, path, True, 0, 0, 0, owner, 0, fixed_acl))
        return op, (path, data, fixed_acl, owner, new_cversion)

    def _delete(self, zxid: int, args: tuple, ids: list) -> tuple[int, tuple]:
        path, version = args
        parent_path = _parent_for_delete(path)
        parent = self._record(parent_path)
        acls.check(parent.acl, Perm.DELETE, ids)
        rec = self._record(path)
        _next_version(rec.version, version)
        if rec.child_count > 0:
            raise ZkError(Err.NOTEMPTY)
        p = parent.copy(zxid)
        p.child_count -= 1
        self._add(p)
        self._add(Change(zxid, path, False))
        return Op.DELETE, (path,)

    def _delete_container(self, zxid: int, path: str) -> tuple[int, tuple]:
        parent_path = _parent_for_delete(path)
        rec = self._record(path)
        if rec.child_count > 0:
            raise ZkError(Err.NOTEMPTY)
        if owner_kind(rec.owner) not in ("container", "ttl"):
            raise ZkError(Err.BADVERSION)
        parent = self._record(parent_path)
        p = parent.copy(zxid)
        p.child_count -= 1
        self._add(p)
        self._add(Change(zxid, path, False))
        return Op.DELETE_CONTAINER, (path,)

    def _set_data(self, zxid: int, args: tuple, ids: list) -> tuple[int, tuple]:
        path, data, version = args
        _check_path(path)
        rec = self.by_path.get(path)
        if rec is None:
            n = self.tree.nodes.get(path)
            if n is None:
                raise ZkError(Err.NONODE)
            acl, current = n.acl, n.version
        elif not rec.exists:
            raise ZkError(Err.NONODE)
        else:
            acl, current = rec.acl, rec.version
        if acl is not acls.OPEN_ACL_UNSAFE:
            acls.check(acl, Perm.WRITE, ids)
        new_version = _next_version(current, version)
        if rec is None:
            n = self.tree.nodes[path]
            c = Change(zxid, path, True, new_version, n.cversion, n.aversion, n.owner, len(n.children), n.acl)
        else:
            c = rec.copy(zxid)
            c.version = new_version
        self._add(c)
        return Op.SET_DATA, (path, data, new_version)

    def _set_acl(self, zxid: int, args: tuple, ids: list) -> tuple[int, tuple]:
        path, acl, version = args
        _check_path(path)
        fixed_acl = acls.fixup(acl, ids)
        rec = self._record(path)
        acls.check(rec.acl, Perm.ADMIN, ids)
        new_aversion = _next_version(rec.aversion, version)
        c = rec.copy(zxid)
        c.aversion = new_aversion
        c.acl = fixed_acl
        self._add(c)
        return Op.SET_ACL, (path, fixed_acl, new_aversion)


def _multi_create(op: int, args: tuple) -> tuple[int, tuple]:
    """A create inside multi is what its flags say, whatever its op code (ZooKeeper's Op.create).

    Flags 4 make a container (answered with path and Stat), TTL flags a TTL node, anything
    else a plain create (answered with the path only; Prep refuses invalid flags).  A
    createTTL record with other flags drops its TTL; TTL flags on a record without a TTL
    get ttl None, which fails the whole multi when Prep reaches it, as in ZooKeeper.
    """
    path, data, acl, flags, ttl = args
    if flags in (5, 6):
        return Op.CREATE_TTL, (path, data, acl, flags, ttl if op == Op.CREATE_TTL else None)
    if flags == 4:
        return Op.CREATE_CONTAINER, (path, data, acl, flags, -1)
    return Op.CREATE, (path, data, acl, flags, -1)


class _WholeMultiFails(Exception):
    pass


def _check_path(path: str) -> None:
    if not is_valid_path(path):
        raise ZkError(Err.BADARGUMENTS)


def _parent_for_delete(path: str) -> str:
    slash = path.rfind("/")
    if slash == -1 or "\0" in path or path in SPECIAL_PATHS:
        raise ZkError(Err.BADARGUMENTS)
    return path[:slash] if slash > 0 else "/"
