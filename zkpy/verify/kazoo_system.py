"""A system under test over real sockets: kazoo clients of any ZooKeeper-compatible server.

Each session slot is a KazooClient chrooted at a fresh node of its own test (`/refmodel-<id>`),
so the model's "/" is that node and nothing else on the server shows.  Give one connect
string for all slots, or one per slot (an ensemble's members, so that watch events and reads
cross servers).  Reads go behind a `sync` when `sync_reads` is set: ZooKeeper promises a
client its own order, not other clients' latest writes, unless it syncs first.

Watch events are collected per slot.  After each op `events` waits for the ones the model
expects, then for every slot makes a round trip (sync) and drains kazoo's callback queue, so
that an event the model does not expect is seen at the op that caused it.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable, Sequence

from kazoo.client import KazooClient
from kazoo.exceptions import EXCEPTIONS, ZookeeperError
from kazoo.protocol.states import Callback, ZnodeStat
from kazoo.security import ACL, Id

from . import ops as o
from .ops import Outcome, error, ok

_CODE_OF = {cls: code for code, cls in EXCEPTIONS.items()}
_EVENT_NAMES = {"CREATED": o.NODE_CREATED, "DELETED": o.NODE_DELETED, "CHANGED": o.NODE_DATA_CHANGED,
                "CHILD": o.NODE_CHILDREN_CHANGED}
_READS = (o.GetData, o.Exists, o.GetChildren, o.GetAcl)
_KAZOO_MODES = ("persistent", "ephemeral", "persistent_sequential", "ephemeral_sequential")


class KazooSystem:
    """Runs ops through kazoo against `hosts` (one connect string, or one per slot).

    `expire(session_id)` expires a session on the server (ZkpyServer.expire_session, or an
    ensemble leader's); without it ExpireSession is refused.
    """

    def __init__(self, hosts: str | Sequence[str], slots: int, expire: Callable[[int], None] | None = None,
                 sync_reads: bool = False, timeout: float = 10.0) -> None:
        self.hosts = [hosts] * slots if isinstance(hosts, str) else list(hosts)
        self.expire = expire
        self.sync_reads = sync_reads
        self.timeout = timeout
        self.base = f"/refmodel-{uuid.uuid4().hex[:12]}"
        self.owners: dict[int, int] = {}  # session id -> the session's number, in opening order
        self._lock = threading.Lock()
        self._received: list[list[Any]] = [[] for _ in range(slots)]
        setup = KazooClient(self.hosts[0], timeout=timeout)
        setup.start(timeout)
        try:
            setup.create(self.base)
        finally:
            setup.stop()
            setup.close()
        self.clients: list[KazooClient] = []
        for slot in range(slots):
            self.clients.append(self._connect(slot))

    # ------------------------------------------------------------ sessions and events

    def _connect(self, slot: int) -> KazooClient:
        client = KazooClient(self.hosts[slot] + self.base, timeout=self.timeout)
        client.start(self.timeout)
        self.owners[client.client_id[0]] = len(self.owners) + 1
        received = self._received[slot] = []

        def watcher(event: Any) -> None:
            # kazoo calls a data watcher and a child watcher of one path for the same NodeDeleted:
            # one event on the wire, one WatchedEvent object
            with self._lock:
                if not any(e is event for e in received):
                    received.append(event)

        client._refmodel_watcher = watcher  # type: ignore[attr-defined]
        return client

    def _end(self, slot: int, expire: bool) -> None:
        client = self.clients[slot]
        if expire:
            if self.expire is None:
                raise RuntimeError("this KazooSystem was given no way to expire sessions")
            self.expire(client.client_id[0])
        self._received[slot] = []  # a session that ends hears nothing more
        client.stop()
        client.close()
        self.clients[slot] = self._connect(slot)

    def events(self, expected: dict[int, int]) -> dict[int, list[tuple[str, str]]]:
        deadline = time.monotonic() + self.timeout
        for slot, count in expected.items():
            while len(self._received[slot]) < count and time.monotonic() < deadline:
                time.sleep(0.001)
        for client in self.clients:
            client.sync_async("/").get(timeout=self.timeout)
            drained = threading.Event()
            client.handler.dispatch_callback(Callback("watch", drained.set, ()))
            drained.wait(self.timeout)
        out: dict[int, list[tuple[str, str]]] = {}
        with self._lock:
            for slot, received in enumerate(self._received):
                if received:
                    out[slot] = [(_EVENT_NAMES[e.type], e.path) for e in received]
                    received.clear()
        return out

    def close(self) -> None:
        for client in self.clients:
            try:
                client.stop()
                client.close()
            except Exception:  # a client of a server already gone: nothing to clean
                pass

    # ------------------------------------------------------------ ops

    def run(self, op: o.Operation) -> Outcome:
        if isinstance(op, (o.CloseSession, o.ExpireSession)):
            self._end(op.session, isinstance(op, o.ExpireSession))
            return ok()
        client = self.clients[op.session]
        path = getattr(op, "path", "/")
        if path != "/" and (path.endswith("/") or "//" in path or "/." in path):
            raise ValueError(f"kazoo normalises or refuses {path!r}: draw ops without bad paths")
        try:
            if self.sync_reads and isinstance(op, _READS):
                client.sync_async("/").get(timeout=self.timeout)
            return self._run(client, op)
        except ZookeeperError as e:
            return error(o.ERROR_NAMES.get(_CODE_OF.get(type(e), 1), type(e).__name__))

    def _run(self, client: KazooClient, op: o.Operation) -> Outcome:
        t = self.timeout
        watch = getattr(op, "watch", False) and client._refmodel_watcher or None
        if isinstance(op, o.Create):
            if op.mode not in _KAZOO_MODES or op.ttl != -1:
                raise ValueError(f"kazoo cannot send a {op.mode} create (use strategies.SOCKET_MODES)")
            path, stat = client.create_async(op.path, op.data, _acl(op.acl), "ephemeral" in op.mode,
                                             "sequential" in op.mode, include_data=True).get(timeout=t)
            return ok((path, self._stat(stat)))
        if isinstance(op, o.Delete):
            client.delete_async(op.path, op.version).get(timeout=t)
            return ok()
        if isinstance(op, o.SetData):
            return ok(self._stat(client.set_async(op.path, op.data, op.version).get(timeout=t)))
        if isinstance(op, o.SetAcl):
            return ok(self._stat(client.set_acls_async(op.path, _acl(op.acl), op.version).get(timeout=t)))
        if isinstance(op, o.GetData):
            data, stat = client.get_async(op.path, watch).get(timeout=t)
            return ok((data, self._stat(stat)))
        if isinstance(op, o.Exists):
            stat = client.exists_async(op.path, watch).get(timeout=t)
            return ok(self._stat(stat) if stat is not None else None)
        if isinstance(op, o.GetChildren):
            children, stat = client.get_children_async(op.path, watch, include_data=True).get(timeout=t)
            return ok((sorted(children), self._stat(stat)))
        if isinstance(op, o.GetAcl):
            acls, stat = client.get_acls_async(op.path).get(timeout=t)
            return ok((sorted((a.perms, a.id.scheme, a.id.id) for a in acls), self._stat(stat)))
        if isinstance(op, o.Sync):
            client.sync_async(op.path).get(timeout=t)
            return ok()
        if isinstance(op, o.AddAuth):
            client.add_auth_async("digest", o.USERS[op.user]).get(timeout=t)
            return ok()
        if isinstance(op, o.Multi):
            return self._multi(client, op)
        if isinstance(op, o.AddWatch):
            raise TypeError("kazoo 2.11 cannot send addWatch: give the machine persistent_watches = False")
        raise TypeError(f"not an op KazooSystem runs: {op!r}")

    def _multi(self, client: KazooClient, op: o.Multi) -> Outcome:
        tx = client.transaction()
        for sub in op.ops:
            if isinstance(sub, o.Create):
                tx.create(sub.path, sub.data, _acl(sub.acl), "ephemeral" in sub.mode, "sequential" in sub.mode)
            elif isinstance(sub, o.Delete):
                tx.delete(sub.path, sub.version)
            elif isinstance(sub, o.SetData):
                tx.set_data(sub.path, sub.data, sub.version)
            else:
                tx.check(sub.path, sub.version)
        out: list[Outcome] = []
        for result in tx.commit_async().get(timeout=self.timeout):
            if isinstance(result, ZookeeperError):
                out.append(error(o.ERROR_NAMES.get(_CODE_OF.get(type(result), 1), type(result).__name__)))
            elif isinstance(result, str):
                out.append(ok(self._relative(result)))
            elif isinstance(result, ZnodeStat):
                out.append(ok(self._stat(result)))
            else:
                out.append(ok())
        return ok(out)

    def _relative(self, path: str) -> str:
        """Kazoo removes the chroot from most paths it returns; this covers those it may not."""
        if path == self.base or path.startswith(self.base + "/"):
            return path[len(self.base):] or "/"
        return path

    def _stat(self, s: ZnodeStat) -> o.Stat:
        return o.Stat(s.czxid, s.mzxid, s.pzxid, s.version, s.cversion, s.aversion,
                      self.owners.get(s.ephemeralOwner, s.ephemeralOwner), s.dataLength, s.numChildren)


def _acl(acl: tuple[o.AclEntry, ...]) -> list[ACL]:
    return [ACL(perms, Id(scheme, ident)) for perms, scheme, ident in acl]
