"""A server's state as plain Python values, for assertions in tests.

The `read_*` functions read a live `ZkServer` and must run on its loop thread
(`ZkpyServer.call` does that); the `parse_*` functions read the same facts from the
four-letter words of a server in another process (`Ensemble`), where fewer are known:
`dump` has no expiry times and `wchc` no watch kinds (they come back as None).
"""

from __future__ import annotations

import calendar
import re
import time
from typing import TYPE_CHECKING, NamedTuple

from ..tree.watches import PERSISTENT, RECURSIVE

if TYPE_CHECKING:
    from ..server.node import ZkServer


class Session(NamedTuple):
    id: int
    timeout_ms: int
    expires_at_ms: int | None  # in this member's tracker (standalone, the leader); else None
    connections: int | None  # client connections to this member


class Watch(NamedTuple):
    session: int
    path: str
    kind: str | None  # data, exist, child, persistent, persistent-recursive


Tree = dict[str, tuple]  # path -> (data, Stat tuple as kazoo's ZnodeStat orders it)


def read_sessions(server: "ZkServer") -> dict[int, Session]:
    """Every session of the (replicated) tree, with this member's expiry time and connections."""
    tracker = server.member.sessions
    by_session = server.clients.by_session
    return {sid: Session(sid, timeout, tracker.expire_at.get(sid), len(by_session.get(sid, ())))
            for sid, timeout in sorted(server.tree.sessions.items())}


def read_ephemerals(server: "ZkServer", session_id: int) -> list[str]:
    return sorted(server.tree.ephemerals.get(session_id, ()))


def read_watches(server: "ZkServer") -> list[Watch]:
    """Watches by session and path.  A data watch on a missing node is an exist watch (exists
    set it); a persistent watch sits in both tables and is listed once."""
    tree = server.tree
    found: set[Watch] = set()
    for table, one_shot in ((tree.data_watches, "data"), (tree.child_watches, "child")):
        for path, watchers in table.by_path.items():
            for watcher, mode in watchers.items():
                if mode & RECURSIVE:
                    kind = "persistent-recursive"
                elif mode & PERSISTENT:
                    kind = "persistent"
                elif one_shot == "data" and path not in tree.nodes:
                    kind = "exist"
                else:
                    kind = one_shot
                found.add(Watch(getattr(watcher, "session_id", 0), path, kind))
    return sorted(found)


def read_tree(server: "ZkServer") -> Tree:
    """{path: (data, Stat)} for every znode: what a client walking the tree reads."""
    return {path: (node.data, node.stat_tuple()) for path, node in server.tree.nodes.items()}


# ------------------------------------------------------------ four-letter words

_EXPIRE_LINE = re.compile(r"^\d+ expire at (.+):$")
_HEX_LINE = re.compile(r"^\t?0x([0-9a-f]+)(?:\t\d+ms)?:?$")


def parse_dump(text: str) -> tuple[dict[int, int], dict[int, list[str]]]:
    """`dump` (ZooKeeper 3.8's layout): ({session: expiry time, epoch ms (0 on a learner, whose
    dump has none)}, {session: ephemeral paths})."""
    sessions: dict[int, int] = {}
    ephemerals: dict[int, list[str]] = {}
    section = None
    current: int | None = None
    expires = 0
    for line in text.splitlines():
        if line.startswith(("Session Sets", "Global Sessions")):  # a leader's or standalone's, a learner's
            section = "sessions"
        elif line.startswith("Sessions with Ephemerals"):
            section = "ephemerals"
        elif line.startswith("Connections"):
            section = None
        elif section == "sessions" and (e := _EXPIRE_LINE.match(line)):
            expires = int(calendar.timegm(time.strptime(e.group(1), "%a %b %d %H:%M:%S UTC %Y")) * 1000)
        elif line.startswith("\t/") and section == "ephemerals" and current is not None:
            ephemerals.setdefault(current, []).append(line[1:])
        elif m := _HEX_LINE.match(line):
            if section == "sessions":
                sessions[int(m.group(1), 16)] = expires
            elif section == "ephemerals":
                current = int(m.group(1), 16)
    return sessions, ephemerals


def parse_wchc(text: str) -> list[Watch]:
    """`wchc`: sessions, each followed by the paths it watches (tab-indented)."""
    out = []
    session = None
    for line in text.splitlines():
        if line.startswith("0x"):
            session = int(line[2:], 16)
        elif line.startswith("\t") and session is not None:
            out.append(Watch(session, line[1:], None))
    return sorted(out)


def parse_cons(text: str) -> dict[int, int]:
    """`cons`: {session: connections to this server}."""
    counts: dict[int, int] = {}
    for m in re.finditer(r"sid=0x([0-9a-f]+)", text):
        sid = int(m.group(1), 16)
        if sid:
            counts[sid] = counts.get(sid, 0) + 1
    return counts


def parse_cons_timeouts(text: str) -> dict[int, int]:
    """`cons`: {session: negotiated timeout ms} of the sessions connected to this server."""
    return {int(m.group(1), 16): int(m.group(2)) for m in re.finditer(r"sid=0x([0-9a-f]+),.*?,to=(\d+)", text)}


def parse_zxid(srvr: str) -> int:
    m = re.search(r"^Zxid: 0x([0-9a-f]+)$", srvr, re.M)
    if m is None:
        raise ValueError(f"no Zxid in srvr's answer: {srvr[:200]!r}")
    return int(m.group(1), 16)
