"""Server-side watch tables with ZooKeeper's triggering rules (WatchManager).

A watcher is any hashable object with an `identities` list (events are filtered by READ
permission on the node's ACL, as in ZooKeeper).  The tables never call a watcher: `trigger`
returns whom to tell and the caller delivers.  The server's client connections are the
watchers; tests may use plain objects.

Two tables exist, as in ZooKeeper: data watches (getData, exists, persistent and
persistent-recursive watches) and child watches (getChildren, persistent watches).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from . import acl as acls
from ..protocol.codes import Perm
from .paths import ancestors

STANDARD = 1
PERSISTENT = 2
RECURSIVE = 4

_NONE: tuple = ()  # trigger's answer when nobody is to be told (no allocation)


class WatchTable:
    """path -> {watcher: mode bits}, plus the reverse index for removal on disconnect."""

    __slots__ = ("by_path", "by_watcher", "recursive_count")

    def __init__(self) -> None:
        self.by_path: dict[str, dict[Any, int]] = {}
        self.by_watcher: dict[Any, set[str]] = {}
        self.recursive_count = 0

    def add(self, path: str, watcher: Any, mode: int = STANDARD) -> None:
        """Watch `path`. As in ZooKeeper 3.8, one watcher has one mode per path: the last set wins
        (a getData watch on a path with a persistent watch turns it into a one-shot watch)."""
        entry = self.by_path.get(path)
        if entry is None:
            entry = self.by_path[path] = {}
        old = entry.get(watcher, 0)
        if mode & RECURSIVE and not old & RECURSIVE:
            self.recursive_count += 1
        elif old & RECURSIVE and not mode & RECURSIVE:
            self.recursive_count -= 1
        entry[watcher] = mode
        paths = self.by_watcher.get(watcher)
        if paths is None:
            paths = self.by_watcher[watcher] = set()
        paths.add(path)

    def _drop(self, path: str, watcher: Any) -> None:
        entry = self.by_path.get(path)
        if entry is None:
            return
        mode = entry.pop(watcher, 0)
        if mode & RECURSIVE:
            self.recursive_count -= 1
        if not entry:
            del self.by_path[path]
        paths = self.by_watcher.get(watcher)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self.by_watcher[watcher]

    def remove(self, path: str, watcher: Any, modes: int) -> bool:
        """Remove the given mode bits of `watcher` at `path`; True if any was there."""
        entry = self.by_path.get(path)
        if entry is None or watcher not in entry:
            return False
        old = entry[watcher]
        if not old & modes:
            return False
        new = old & ~modes
        if new:
            if old & RECURSIVE and not new & RECURSIVE:
                self.recursive_count -= 1
            entry[watcher] = new
        else:
            self._drop(path, watcher)
        return True

    def has(self, path: str, watcher: Any, modes: int) -> bool:
        entry = self.by_path.get(path)
        return bool(entry and entry.get(watcher, 0) & modes)

    def remove_watcher(self, watcher: Any) -> None:
        for path in list(self.by_watcher.get(watcher, ())):
            self._drop(path, watcher)

    def count(self) -> int:
        return sum(len(e) for e in self.by_path.values())

    def trigger(self, path: str, event_type: int, node_acl: tuple | None,
                suppress: Sequence | None = None) -> Sequence:
        """Fire `event_type` at `path`: use up the one-shot watches it hits and return the
        watchers to tell, in a deterministic order (those registered at `path` in registration
        order, then the recursive ones of its ancestors, nearest first; each at most once).

        Calls no watcher.  Watchers in `suppress` (those already told of this change by the
        other table) and those that may not read the node are left out, but their one-shot
        watches are used up all the same.  Returns a shared empty tuple when nothing fired.
        """
        entry = self.by_path.get(path)
        if not entry and not self.recursive_count:
            return _NONE
        fired: dict = {}  # an ordered set
        # Recursive watches (registered in both tables) never see NodeChildrenChanged.
        child_event = event_type == 4
        if entry:
            for watcher, mode in list(entry.items()):
                if child_event and not mode & (STANDARD | PERSISTENT):
                    continue
                if mode & STANDARD:
                    rest = mode & ~STANDARD
                    if rest:
                        entry[watcher] = rest
                    else:
                        self._drop(path, watcher)
                fired[watcher] = None
        if self.recursive_count and not child_event:
            by_path = self.by_path
            for parent in ancestors(path):
                pentry = by_path.get(parent)
                if pentry:
                    for watcher, mode in pentry.items():
                        if mode & RECURSIVE:
                            fired[watcher] = None
        if not fired:
            return _NONE
        check_acl = node_acl is not None and node_acl is not acls.OPEN_ACL_UNSAFE
        if not check_acl and not suppress:
            return list(fired)
        if suppress:
            suppress = set(suppress)
        # No watcher learns of a change to a node it may not read (ZooKeeper filters every
        # event by the node's ACL, the parent's for child events); the watch is used up.
        told = []
        for watcher in fired:
            if suppress and watcher in suppress:
                continue
            if check_acl and not acls.allowed(node_acl, Perm.READ, watcher.identities):
                continue
            told.append(watcher)
        return told

    def paths_of(self, watcher: Any) -> Iterable[str]:
        return self.by_watcher.get(watcher, ())
