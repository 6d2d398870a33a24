"""A reference model of ZooKeeper 3.8's znode tree, sessions, ACLs and one-shot watches: the oracle.

`ReferenceTree.apply(op)` returns the outcome a client of Apache ZooKeeper 3.8 would see and
the watch events the op fires, `[(slot, event_type, path), ...]` in the order each session
receives them.  It is written from ZooKeeper's semantics (PrepRequestProcessor's checks and
their order, DataTree's Stat updates, WatchManager's triggering), independently of zkpy's own
tree, so that a bug shared by both cannot hide.  Facts it relies on, checked in the Apache
sources (release-3.8.x):

- checks run in PrepRequestProcessor's order: create: TTL, a '/' and no NUL (BADARGUMENTS),
  ACL well-formed (INVALIDACL), parent exists (NONODE), CREATE on the parent (NOAUTH), the
  path with its sequential suffix (BADARGUMENTS), the name (NODEEXISTS), an ephemeral parent
  (NOCHILDRENFOREPHEMERALS); delete: a '/', no NUL, not "/" (BADARGUMENTS), parent, DELETE on
  the parent, node, version (BADVERSION), children (NOTEMPTY); setData: path, node, WRITE,
  version; setACL: path, ACL well-formed, node, ADMIN, aversion; check (in multi): path,
  node, READ, version.  Reads (FinalRequestProcessor) validate no path, exists only NUL.
- a sequential suffix is the parent's count of child creations (its stored cversion), "%010d";
  the Stat a client sees has cversion = creations + deletions of children (DataNode.copyStat
  reports 2 * stored - numChildren).  A create sets the parent's pzxid; a delete sets it
  when larger (it always is here).  setData bumps version and mzxid; setACL bumps aversion
  only.  Versions are checked unless -1.
- a multi applies all or nothing; a failed one answers OK for the ops before the failing one,
  its error for it, RUNTIMEINCONSISTENCY for those after; every write, failed or not, takes a
  zxid (the model counts them, the comparison only needs their order).
- getData/exists set data watches, getChildren child watches; NONODE and NOAUTH set none, but
  exists on a missing node does.  addWatch sets a persistent or persistent-recursive watch in
  both tables, on any path; a recursive one also fires for descendants, never with
  NodeChildrenChanged; one mode per session, path and table, the last set winning.  create fires NodeCreated (data watches of the path) and
  NodeChildrenChanged (child watches of the parent); delete NodeDeleted to the path's data
  watchers, then to its child watchers not told already, then NodeChildrenChanged on the
  parent; setData NodeDataChanged.  Watches are one-shot; an event is delivered only to a
  session that may READ the node (the parent, for NodeChildrenChanged), and the watch is used
  up either way (3.8.4's ACL filter, CVE-2024-23944).
- a closed or expired session's ephemerals are deleted (firing their watches) and its own
  watches go.  Containers and TTL nodes show ephemeralOwner 0; TTL modes need extended types.

Extend it by subclassing: override a handler (`create`, `delete`, ...), or add state and
invariants, and point a ReferenceMachine subclass at it (see zkpy.verify.machine).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from . import ops as o
from .ops import Outcome, error, ok

Event = tuple[int, str, str]  # (slot, event type, path)
SEQUENTIAL = frozenset({"persistent_sequential", "ephemeral_sequential", "persistent_sequential_ttl"})
TTL_MODES = frozenset({"ttl", "persistent_sequential_ttl"})
EPHEMERAL = frozenset({"ephemeral", "ephemeral_sequential"})
MAX_TTL = (1 << 40) - 1  # EphemeralType.TTL's largest value


class Refused(Exception):
    """An op fails with ZooKeeper error `code` (a name of ops.ERROR_CODES)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Node:
    data: bytes
    acl: tuple[o.AclEntry, ...]
    czxid: int
    owner: int = 0  # the owning session's number (ephemerals)
    kind: str = "persistent"  # persistent, ephemeral, container, ttl
    mzxid: int = 0
    pzxid: int = 0
    version: int = 0
    aversion: int = 0
    child_creations: int = 0  # numbers sequential children
    child_deletions: int = 0
    children: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.mzxid = self.pzxid = self.czxid

    def stat(self) -> o.Stat:
        owner = self.owner if self.kind == "ephemeral" else 0
        return o.Stat(self.czxid, self.mzxid, self.pzxid, self.version, self.child_creations + self.child_deletions,
                      self.aversion, owner, len(self.data), len(self.children))


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def valid_path(path: str) -> bool:
    """PathUtils.validatePath, for the paths the strategies make (no unicode subtleties)."""
    if not path.startswith("/") or "\0" in path:
        return False
    if path == "/":
        return True
    return not path.endswith("/") and all(part not in ("", ".", "..") for part in path[1:].split("/"))


class ReferenceTree:
    """The znode tree under the test's root "/", the sessions in their slots and their watches."""

    EXTENDED_TYPES = True  # the system runs with zookeeper.extendedTypesEnabled (TTL nodes)
    # ZOOKEEPER-2590 (3.8.4) makes exists() check READ; zkpy, like 3.8.0–3.8.3, does not.
    EXISTS_CHECKS_READ = False
    # CVE-2024-23944's fix (3.8.4): no event about a node the watcher may not read.  zkpy has it;
    # False models 3.8.0–3.8.3.
    EVENTS_NEED_READ = True

    def __init__(self, slots: int) -> None:
        self.zxid = 1
        self.nodes: dict[str, Node] = {"/": Node(b"", o.OPEN_ACL, self.zxid)}
        self.session_numbers: list[int] = [0] * slots  # slot -> the number of its current session
        self.identities: list[set[tuple[str, str]]] = [set() for _ in range(slots)]  # (scheme, id)s it added
        self.sessions_opened = 0
        # path -> {slot: "standard" | "persistent" | "recursive"}: one mode per session, path and
        # table, the last set winning (WatcherModeManager): getData on a persistently watched
        # path makes its data watch one-shot again
        self.data_watches: dict[str, dict[int, str]] = {}
        self.child_watches: dict[str, dict[int, str]] = {}
        self.events: list[Event] = []
        for slot in range(slots):
            self._open(slot)

    # ------------------------------------------------------------ entry point

    def apply(self, op: o.Operation) -> tuple[Outcome, list[Event]]:
        """Run one op: its outcome and the events it fired (each session's in delivery order)."""
        self.events = []
        handler: Callable[[o.Operation], Outcome] = getattr(self, _HANDLERS[type(op)])
        if isinstance(op, o.WRITES):
            self.zxid += 1
        try:
            outcome = handler(op)
        except Refused as e:
            outcome = error(e.code)
        return outcome, self.events

    # ------------------------------------------------------------ helpers

    def _open(self, slot: int) -> None:
        self.zxid += 1  # createSession is a txn
        self.sessions_opened += 1
        self.session_numbers[slot] = self.sessions_opened
        self.identities[slot] = set()

    def allowed(self, acl: tuple[o.AclEntry, ...], perm: int, slot: int) -> bool:
        ids = self.identities[slot]
        for perms, scheme, ident in acl:
            if perms & perm and ((scheme == "world" and ident == "anyone") or (scheme, ident) in ids):
                return True
        return False

    def _require(self, acl: tuple[o.AclEntry, ...], perm: int, slot: int) -> None:
        if not self.allowed(acl, perm, slot):
            raise Refused("NOAUTH")

    def node(self, path: str) -> Node:
        """The node at `path`, NONODE if there is none.  Reads do not validate paths: the server
        looks them up as they come (a client library normally refuses bad ones first)."""
        n = self.nodes.get(path)
        if n is None:
            raise Refused("NONODE")
        return n

    def validate(self, path: str) -> None:
        if not valid_path(path):
            raise Refused("BADARGUMENTS")

    def fixup_acl(self, acl: tuple[o.AclEntry, ...], slot: int) -> tuple[o.AclEntry, ...]:
        """Validate an ACL and expand 'auth' to the session's authenticated ids (fixupACL)."""
        unique = tuple(dict.fromkeys(acl))
        if not unique:
            raise Refused("INVALIDACL")
        out: list[o.AclEntry] = []
        for perms, scheme, ident in unique:
            if scheme == "world" and ident == "anyone":
                out.append((perms, scheme, ident))
            elif scheme == "auth":
                authenticated = sorted(i for i in self.identities[slot] if i[0] == "digest")
                if not authenticated:
                    raise Refused("INVALIDACL")
                out.extend((perms, s, i) for s, i in authenticated)
            elif scheme == "digest" and len(ident.split(":")) == 2:
                out.append((perms, scheme, ident))
            else:
                raise Refused("INVALIDACL")
        return tuple(out)

    def _fire(self, table: dict[str, dict[int, str]], path: str, event: str, acl: tuple[o.AclEntry, ...],
              skip: frozenset[int] = frozenset()) -> set[int]:
        """Trigger `event` at `path` in `table` (WatchManager.triggerWatch): the path's watchers
        (one-shot ones used up), and the recursive watchers of it and its ancestors except for
        NodeChildrenChanged.  Tells those not in `skip` that may read; returns whom it hit."""
        hit: set[int] = set()
        entry = table.get(path, {})
        for slot, mode in list(entry.items()):
            if mode != "recursive" or event != o.NODE_CHILDREN_CHANGED:
                hit.add(slot)
            if mode == "standard":
                del entry[slot]
        if not entry:
            table.pop(path, None)
        if event != o.NODE_CHILDREN_CHANGED:
            ancestor = path
            while ancestor != "/":
                ancestor = parent_of(ancestor)
                hit.update(slot for slot, mode in table.get(ancestor, {}).items() if mode == "recursive")
        for slot in sorted(hit - skip):
            if not self.EVENTS_NEED_READ or self.allowed(acl, o.READ, slot):
                self.events.append((slot, event, path))
        return hit

    def _version(self, current: int, expected: int) -> int:
        if expected != -1 and expected != current:
            raise Refused("BADVERSION")
        return current + 1

    # ------------------------------------------------------------ writes

    def create(self, op: o.Create) -> Outcome:
        path = self._create(op)
        return ok((path, self.nodes[path].stat()))

    def _create(self, op: o.Create) -> str:
        mode = op.mode
        if mode not in o.MODES:
            raise Refused("BADARGUMENTS")
        if mode in TTL_MODES:
            if not self.EXTENDED_TYPES:
                raise Refused("UNIMPLEMENTED")
            if not 0 < op.ttl <= MAX_TTL:
                raise Refused("BADARGUMENTS")
        elif op.ttl >= 0:
            raise Refused("BADARGUMENTS")
        if "/" not in op.path or "\0" in op.path or op.path == "/":
            raise Refused("BADARGUMENTS")
        acl = self.fixup_acl(op.acl, op.session)
        parent_path = parent_of(op.path)
        parent = self.node(parent_path)
        self._require(parent.acl, o.CREATE, op.session)
        path = op.path + ("%010d" % parent.child_creations if mode in SEQUENTIAL else "")
        self.validate(path)  # only now: "/a/" is a good sequential prefix, and NONODE/NOAUTH come first
        if path in self.nodes:
            raise Refused("NODEEXISTS")
        if parent.kind == "ephemeral":
            raise Refused("NOCHILDRENFOREPHEMERALS")
        kind = "ephemeral" if mode in EPHEMERAL else "container" if mode == "container" else \
            "ttl" if mode in TTL_MODES else "persistent"
        owner = self.session_numbers[op.session] if kind == "ephemeral" else 0
        self.nodes[path] = Node(op.data, acl, self.zxid, owner, kind)
        parent.children.add(path.rsplit("/", 1)[1])
        parent.child_creations += 1
        parent.pzxid = self.zxid
        self._fire(self.data_watches, path, o.NODE_CREATED, acl)
        self._fire(self.child_watches, parent_path, o.NODE_CHILDREN_CHANGED, parent.acl)
        return path

    def delete(self, op: o.Delete) -> Outcome:
        # only these checks of the path (getParentPathAndValidate): "/a/." is looked up, NONODE
        if op.path == "/" or "/" not in op.path or "\0" in op.path:
            raise Refused("BADARGUMENTS")
        parent = self.node(parent_of(op.path))
        self._require(parent.acl, o.DELETE, op.session)
        node = self.node(op.path)
        self._version(node.version, op.version)
        if node.children:
            raise Refused("NOTEMPTY")
        self._remove(op.path)
        return ok()

    def _remove(self, path: str) -> None:
        node = self.nodes.pop(path)
        parent_path = parent_of(path)
        parent = self.nodes[parent_path]
        parent.children.discard(path.rsplit("/", 1)[1])
        parent.child_deletions += 1
        parent.pzxid = max(parent.pzxid, self.zxid)
        told = self._fire(self.data_watches, path, o.NODE_DELETED, node.acl)
        self._fire(self.child_watches, path, o.NODE_DELETED, node.acl, frozenset(told))
        self._fire(self.child_watches, parent_path, o.NODE_CHILDREN_CHANGED, parent.acl)

    def set_data(self, op: o.SetData) -> Outcome:
        self.validate(op.path)
        node = self.node(op.path)
        self._require(node.acl, o.WRITE, op.session)
        node.version = self._version(node.version, op.version)
        node.data = op.data
        node.mzxid = self.zxid
        self._fire(self.data_watches, op.path, o.NODE_DATA_CHANGED, node.acl)
        return ok(node.stat())

    def set_acl(self, op: o.SetAcl) -> Outcome:
        self.validate(op.path)
        acl = self.fixup_acl(op.acl, op.session)
        node = self.node(op.path)
        self._require(node.acl, o.ADMIN, op.session)
        node.aversion = self._version(node.aversion, op.version)
        node.acl = acl
        return ok(node.stat())

    def check(self, op: o.Check) -> Outcome:
        self.validate(op.path)
        node = self.node(op.path)
        self._require(node.acl, o.READ, op.session)
        self._version(node.version, op.version)
        return ok()

    def multi(self, op: o.Multi) -> Outcome:
        saved = copy.deepcopy((self.nodes, self.data_watches, self.child_watches))
        results: list[Outcome] = []
        for sub in op.ops:
            sub = _as_session(sub, op.session)
            try:
                if isinstance(sub, o.Create):
                    results.append(ok(self._create(sub)))  # a create in a multi answers its path only
                elif isinstance(sub, o.SetData):
                    results.append(self.set_data(sub))
                else:
                    results.append(self.delete(sub) if isinstance(sub, o.Delete) else self.check(sub))
            except Refused as e:
                self.nodes, self.data_watches, self.child_watches = saved
                self.events = []
                failed = len(results)
                return ok([error("OK")] * failed + [error(e.code)]
                          + [error("RUNTIMEINCONSISTENCY")] * (len(op.ops) - failed - 1))
        return ok(results)

    # ------------------------------------------------------------ reads

    def get_data(self, op: o.GetData) -> Outcome:
        node = self.node(op.path)
        self._require(node.acl, o.READ, op.session)
        if op.watch:
            self.data_watches.setdefault(op.path, {})[op.session] = "standard"
        return ok((node.data, node.stat()))

    def exists(self, op: o.Exists) -> Outcome:
        if "\0" in op.path:  # the one check exists makes of its path
            raise Refused("BADARGUMENTS")
        node = self.nodes.get(op.path)
        if node is not None and self.EXISTS_CHECKS_READ:
            self._require(node.acl, o.READ, op.session)
        if op.watch:
            self.data_watches.setdefault(op.path, {})[op.session] = "standard"
        return ok(node.stat() if node is not None else None)

    def get_children(self, op: o.GetChildren) -> Outcome:
        node = self.node(op.path)
        self._require(node.acl, o.READ, op.session)
        if op.watch:
            self.child_watches.setdefault(op.path, {})[op.session] = "standard"
        return ok((sorted(node.children), node.stat()))

    def get_acl(self, op: o.GetAcl) -> Outcome:
        node = self.node(op.path)
        if not self.allowed(node.acl, o.READ | o.ADMIN, op.session):
            raise Refused("NOAUTH")
        acl = node.acl
        if not self.allowed(acl, o.ADMIN, op.session):  # CVE-2019-0201: digests masked without ADMIN
            acl = tuple((p, s, i.split(":", 1)[0] + ":x" if s == "digest" else i) for p, s, i in acl)
        return ok((sorted(acl), node.stat()))

    def sync(self, op: o.Sync) -> Outcome:
        return ok()

    def add_watch(self, op: o.AddWatch) -> Outcome:
        """A persistent (or persistent recursive) watch in both tables, whatever the path."""
        mode = "recursive" if op.recursive else "persistent"
        for table in (self.data_watches, self.child_watches):
            table.setdefault(op.path, {})[op.session] = mode
        return ok()

    # ------------------------------------------------------------ sessions

    def add_auth(self, op: o.AddAuth) -> Outcome:
        self.identities[op.session].add(("digest", o.digest_id(o.USERS[op.user])))
        return ok()

    def close_session(self, op: o.CloseSession | o.ExpireSession) -> Outcome:
        """The session's watches go, then its ephemerals (their watchers are told), then a new session."""
        slot = op.session
        for table in (self.data_watches, self.child_watches):
            for path in list(table):
                table[path].pop(slot, None)
                if not table[path]:
                    del table[path]
        number = self.session_numbers[slot]
        self.zxid += 1
        for path in sorted((p for p, n in self.nodes.items() if n.kind == "ephemeral" and n.owner == number),
                           reverse=True):
            self._remove(path)
        self._open(slot)
        return ok()

    expire_session = close_session


def _as_session(sub: o.Operation, session: int) -> o.Operation:
    return dataclasses.replace(sub, session=session)


_HANDLERS: dict[type, str] = {
    o.Create: "create", o.Delete: "delete", o.SetData: "set_data", o.Check: "check", o.GetData: "get_data",
    o.Exists: "exists", o.GetChildren: "get_children", o.SetAcl: "set_acl", o.GetAcl: "get_acl",
    o.Multi: "multi", o.Sync: "sync", o.AddWatch: "add_watch", o.AddAuth: "add_auth", o.CloseSession: "close_session",
    o.ExpireSession: "expire_session",
}
