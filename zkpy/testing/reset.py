"""Return a running server or ensemble to a fresh state, so that tests can share one.

Everything goes through the write pipeline as ordinary txns (closeSession per live session,
then a delete per znode, deepest first), so every replica applies the same log, stays
identical to the others and zxids keep increasing, as they would on a server the tests
had used; it takes milliseconds where a restart takes tenths of seconds.

- In-process servers (`reset_inprocess`): on the leader's event loop, the member expires
  every session and deletes every znode outside the system ones (/zookeeper, its quota and
  config nodes); then every member is waited for until it has applied the last of it (so
  members must be running, not paused).  The wire traces are cleared: a test sharing the
  server sees only its own traffic.
- Process servers, zkpy or Apache ZooKeeper (`reset_through_client`): a kazoo client deletes
  the znodes.  ZooKeeper has no request that closes another client's session, so sessions a
  test left open stay (their ephemerals are deleted); close your clients.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..protocol.codes import Op
from ..tree.acl import SUPER
from ..tree.datatree import DataTree

if TYPE_CHECKING:
    from ..server.member import Member

# The servers reset_inprocess takes are ZkpyServers (inprocess.py, which imports this module):
# objects with call(fn) running fn on the server's loop, and .server, its ZkServer.
InProcess = Any

SYSTEM_NODES = frozenset(DataTree().nodes)  # what a fresh tree holds: /, /zookeeper, quota, config
_DELETE = int(Op.DELETE)


class _Entry:
    """What the member answers a write through (a connection's pending request, in connection.py)."""

    __slots__ = ("conn", "op", "with_read_only", "xid")

    def __init__(self, conn: "_Origin", xid: int, op: int) -> None:
        self.conn, self.xid, self.op, self.with_read_only = conn, xid, op, False


class _Origin:
    """The 'client' of the reset's deletes: the super user, session 0, errors kept."""

    def __init__(self) -> None:
        self.session_id = 0
        self.identities = [SUPER]
        self.closed = False
        self.peer = ("zkpy.testing.reset", 0)
        self.errors: list[tuple[int, int]] = []  # (xid, error code) of deletes that failed

    def write_done(self, entry: _Entry, zxid: int, err: int, body: bytes) -> None:
        if err:
            self.errors.append((entry.xid, err))

    def close(self) -> None:
        """What the member does to a connection whose write cannot go on (the next round retries)."""


def _propose_reset(member: "Member") -> int:
    """On the leader's loop: close every session and delete every znode; returns the last zxid proposed."""
    member.refresh_clock()
    closing = [s for s in sorted(member.sessions.timeouts) if member.sessions.is_alive(s)]
    for session in closing:
        member.expire(session)  # a closeSession txn: its ephemerals go with it
    tree = member.tree
    gone_with_sessions = set(closing)
    doomed = [path for path, node in tree.nodes.items()
              if path not in SYSTEM_NODES and node.owner not in gone_with_sessions]
    doomed.sort(key=lambda p: p.count("/"), reverse=True)  # children before their parents
    origin = _Origin()
    for xid, path in enumerate(doomed, 1):
        member.write(origin, _Entry(origin, xid, _DELETE), _DELETE, (path, -1), bytearray(), 0, 0)  # type: ignore[arg-type]
    return member.prep.zxid if closing or doomed else tree.last_zxid


def _is_fresh(member: "Member") -> bool:
    return not member.tree.sessions and set(member.tree.nodes) <= SYSTEM_NODES


def reset_inprocess(members: dict[int, InProcess], timeout: float = 10.0) -> None:
    """Reset the in-process servers `members` (one standalone server, or an ensemble's live members)."""
    deadline = time.monotonic() + timeout
    while True:
        leader = _leader(members, deadline)
        target = leader.call(lambda m=leader: _propose_reset(m.server.member))
        while not all(m.call(lambda m=m: m.server.member.tree.last_zxid) >= target for m in members.values()):
            _wait(deadline, "members to apply the reset")
        if all(m.call(lambda m=m: _is_fresh(m.server.member)) for m in members.values()):
            break
        _wait(deadline, "a fresh tree (a client still creating znodes or sessions?)")
    for m in members.values():
        ring = m.server.clients.trace  # type: ignore[union-attr]
        if ring is not None:
            m.call(ring.clear)


def _leader(members: dict[int, InProcess], deadline: float) -> InProcess:
    while True:
        for m in members.values():
            if m.call(lambda m=m: m.server.member.leads):
                return m
        _wait(deadline, "a leader")


def _wait(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"reset: timed out waiting for {what}")
    time.sleep(0.002)


def reset_through_client(connect_string: str, timeout: float = 10.0, client: Any = None) -> None:
    """Delete every znode outside the system ones through a kazoo client (process servers)."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoNodeError, NotEmptyError

    own = client is None
    if own:
        client = KazooClient(connect_string, timeout=10)
        client.start(timeout)
    deadline = time.monotonic() + timeout
    try:
        while True:
            doomed = _walk(client, "/")
            if not doomed:
                break
            doomed.sort(key=lambda p: p.count("/"), reverse=True)
            for path in doomed:
                try:
                    client.delete(path)
                except (NoNodeError, NotEmptyError):
                    pass  # gone with its session, or a child appeared: the next round sees it
            if time.monotonic() > deadline:
                raise TimeoutError(f"reset: znodes keep appearing: {doomed[:5]}")
        client.sync("/")
    finally:
        if own:
            client.stop()
            client.close()


def _walk(client: Any, root: str) -> list[str]:
    from kazoo.exceptions import NoNodeError

    out, todo = [], [root]
    while todo:
        path = todo.pop()
        try:
            children = client.get_children(path)
        except NoNodeError:
            continue
        for child in children:
            full = path.rstrip("/") + "/" + child
            todo.append(full)
            if full not in SYSTEM_NODES:
                out.append(full)
    return out


def reset_process_ensemble(addresses: dict[int, tuple[str, int]], timeout: float = 10.0) -> None:
    """Reset a process ensemble through a client, then wait until every member has applied it
    (srvr's Zxid equal everywhere), so that a test reading from any member sees the empty tree."""
    from .external import four_letter_word

    reset_through_client(",".join(f"{h}:{p}" for h, p in addresses.values()), timeout)
    deadline = time.monotonic() + timeout
    while True:
        zxids = set()
        for host, port in addresses.values():
            for line in four_letter_word(host, port, "srvr", timeout=2).splitlines():
                if line.startswith("Zxid: "):
                    zxids.add(int(line[6:], 16))
        if len(zxids) == 1:
            return
        _wait(deadline, f"members to agree on the last zxid ({sorted(map(hex, zxids))})")
