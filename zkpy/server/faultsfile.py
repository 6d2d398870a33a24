"""A server process's faults from a JSON file (`zkpy serve --faults FILE`), re-read when it changes.

    {"generation": 1,
     "rules": [{"id": "lost-epoch-reply", "op": "setData", "path": "/controller_epoch",
                "action": {"kind": "drop_reply"}, "count": 1}]}

Rules are server/faults.py's `Rule.to_json()`; actions are {"kind": ..., "code": ..., "seconds": ...}
("error" with a ZooKeeper error code, "delay" and "slow_fsync" with seconds, "drop_reply",
"close_before_commit", "fail_fsync" and "fail_append" with an errno).  The file is looked at
once per tick (its inode, mtime and size); a file that does not parse is logged and ignored (the
rules before it stay).  A rule keeps its count of firings across re-reads (by id).

After each load, and whenever a rule fires, the server writes `FILE.<sid>.status`
(`{"generation": n, "fired": {id: count}}`; sid 0 when standalone), so that whoever wrote
the file (Ensemble.faults) knows when its rules are in force and what they did.
"""

from __future__ import annotations

import asyncio
import json
import os

from .faults import FaultTable, Rule
from ..logs import get_logger

log = get_logger("zkpy.faults")


def status_path(path: str, sid: int) -> str:
    return f"{path}.{sid}.status"


class FaultsFile:
    def __init__(self, table: FaultTable, path: str) -> None:
        self.table = table
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._generation = -1
        self._reported: tuple[int, dict[str, int]] | None = None
        self._handle: asyncio.TimerHandle | None = None

    def check(self) -> None:
        """Load the file if it changed; report what is loaded and what fired."""
        try:
            st = os.stat(self.path)
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)  # a replaced file is a new inode
        except FileNotFoundError:
            seen = (0, 0, 0)
        if seen != self._seen:
            self._seen = seen
            self._load(seen != (0, 0, 0))
        state = (self._generation, self.table.fired)
        if state != self._reported:
            self._reported = state
            self._report(*state)

    def _load(self, exists: bool) -> None:
        try:
            if exists:
                with open(self.path) as f:
                    spec = json.load(f)
                rules = [Rule.from_json(r) for r in spec.get("rules", [])]
                generation = int(spec.get("generation", 0))
            else:
                rules, generation = [], 0
            self.table.replace(rules)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            log.warning("faults file ignored", path=self.path, error=str(e))
            return
        self._generation = generation
        log.info("faults file loaded", path=self.path, generation=generation, rules=len(self.table.rules))

    def _report(self, generation: int, fired: dict[str, int]) -> None:
        path = status_path(self.path, self.table.sid)
        try:
            with open(path + ".tmp", "w") as f:
                json.dump({"generation": generation, "fired": fired}, f)
            os.replace(path + ".tmp", path)
        except OSError as e:
            log.warning("faults status not written", path=path, error=str(e))

    def start(self, loop: asyncio.AbstractEventLoop, interval_s: float) -> None:
        def tick() -> None:
            self.check()
            self._handle = loop.call_later(interval_s, tick)

        self.check()
        self._handle = loop.call_later(interval_s, tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
