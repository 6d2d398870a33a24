"""An ensemble whose members run in this process, each on an event-loop thread of its own.

    with InProcessEnsemble(3) as ens:            # free loopback ports, temp dirs
        KazooClient(ens.connect_string)
        ens.kill(ens.leader()); ens.start_server(1)
        ens.pause(2); ens.resume(2)

    with InProcessEnsemble(3, proxied=True) as ens:
        ens.isolate(ens.leader()); ens.heal()

The same API as `Ensemble` (the members are the same servers, with the same zoo.cfg, over
the same sockets), without an interpreter to start per member: it serves in a fraction of
the time.  What differs is how a member dies: `kill` stops it at once (its client and peer
connections close, as when a process dies), but what it had written is on disk, where a
SIGKILL can tear a log tail; use `Ensemble` for crash tests.  `pause` freezes a member's
event loop as SIGSTOP freezes a process.

    with InProcessEnsemble(3, clock="virtual") as ens:   # one VirtualClock for every member
        ens.advance(30)                                   # see zkpy.testing.clock

Under virtual time the ensemble's election runs on the clock too: `start` (and
`wait_serving`) move it a tick at a time until the ensemble serves.  The introspection
methods (`sessions(sid)`, `ephemerals(session, sid)`, `watches(sid)`, `tree(sid)`,
`last_zxid(sid)`) read the member itself, with expiry times and watch kinds.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import introspect
from ..server.config import load
from .clock import VirtualClock
from .ensemble import Ensemble
from .faults import ServerFaults
from .inprocess import ZkpyServer
from .reset import reset_inprocess
from .trace import TraceEntry, merge


class InProcessEnsemble(Ensemble):
    def __init__(self, size: int = 3, clock: str | VirtualClock = "real", **options: Any) -> None:
        if options.get("apache"):
            raise ValueError("Apache ZooKeeper runs in processes: use Ensemble(apache=True)")
        if clock == "virtual":
            clock = VirtualClock()
        elif clock != "real" and not isinstance(clock, VirtualClock):
            raise ValueError(f"clock is 'real', 'virtual' or a VirtualClock, not {clock!r}")
        self.clock: VirtualClock | None = clock if isinstance(clock, VirtualClock) else None
        super().__init__(size, **options)
        if self.clock is not None and self.proxy is not None:
            self.clock.settle = max(self.clock.settle, 0.002)  # the quiet check cannot see into the proxy
        self.members: dict[int, ZkpyServer] = {}
        self.killed: dict[int, ZkpyServer] = {}  # the last stopped instance of each member: its trace and log

    def start_server(self, sid: int) -> None:
        member = ZkpyServer(config=load(self._config(sid)), clock=self.clock or "real")
        member.start()
        self.members[sid] = member

    def _pass_time(self, seconds: float) -> None:
        if self.clock is None:
            super()._pass_time(seconds)
        else:
            self.clock.step()

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass for every member (InProcessEnsemble(clock="virtual"))."""
        if self.clock is None:
            raise RuntimeError("advance needs InProcessEnsemble(clock='virtual')")
        self.clock.advance(seconds)

    def sessions(self, sid: int) -> dict[int, introspect.Session]:
        return self.members[sid].sessions()

    def ephemerals(self, session_id: int, sid: int) -> list[str]:
        return self.members[sid].ephemerals(session_id)

    def watches(self, sid: int) -> list[introspect.Watch]:
        return self.members[sid].watches()

    def tree(self, sid: int) -> introspect.Tree:
        return self.members[sid].tree()

    def last_zxid(self, sid: int) -> int:
        return self.members[sid].last_zxid()

    def alive(self, sid: int) -> bool:
        return sid in self.members

    def kill(self, sid: int) -> None:
        member = self.members.pop(sid, None)
        if member is not None:
            member.stop()
            self.killed[sid] = member

    @property
    def faults(self) -> ServerFaults:  # type: ignore[override]
        """Faults on demand in the running members (`member=` picks one): testing/faults.py."""
        return ServerFaults(lambda: dict(self.members))

    def pause(self, sid: int) -> None:
        self.members[sid].pause()

    def resume(self, sid: int) -> None:
        self.members[sid].resume()

    def stop_members(self) -> None:
        members, self.members = list(self.members.values()), {}
        if members:
            with ThreadPoolExecutor(len(members)) as pool:  # they stop side by side
                list(pool.map(ZkpyServer.stop, members))

    def trace(self) -> list[TraceEntry]:
        """Every member's wire trace in one, in time order (`TraceEntry.server` is the sid); a
        killed member's up to its kill, merged with its restarted instance's."""
        traces: dict[int, list[TraceEntry]] = {}
        for group in (self.killed, self.members):
            for sid, member in group.items():
                traces.setdefault(sid, []).extend(member.trace())
        return merge(traces)

    def log_tails(self, lines: int = 12) -> str:
        """The end of every member's log (kept in memory: in-process members write no files)."""
        out = []
        for sid in self.ids:
            kept = [*(self.killed[sid].log_lines if sid in self.killed else ()),
                    *(self.members[sid].log_lines if sid in self.members else ())]
            state = "" if sid in self.members else " (killed)"
            out.append(f"--- server {sid}{state}:\n" + "\n".join(kept[-lines:]))
        return "\n".join(out)

    def reset(self, timeout: float = 10.0) -> None:
        """Back to an empty tree and no sessions, through the pipeline (see zkpy.testing.reset)."""
        reset_inprocess(self.members, timeout)
        self.killed.clear()  # their traces are of earlier tests
