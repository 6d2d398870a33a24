"""Virtual time for in-process servers: time moves only when the test says so.

    clock = VirtualClock()
    with ZkpyServer(clock=clock) as zk:       # or ZkpyServer(clock="virtual"); zk.advance(...)
        ...
        clock.advance(30)                      # 30 s pass at once: sessions expire, TTLs run out

A server started with a virtual clock reads its time from it and schedules no tick of its
own (`ZkServer(ticker=...)`); `advance(seconds)` moves the time tick by tick (each member's
`tick_interval_ms`) and at each step runs every member's tick and Ready pass on that
member's own loop thread, waiting for them before the next step.  So what falls due in that
time happens, in order, without sleeping: session expiry with its ephemerals, TTL and
container clean-up, learner pings, election and sync timeouts.

Clients stay in real time.  A session with a client connection open to a member counts as
pinging (its client would have pinged in that time): `advance` keeps it alive, so the test's
own kazoo client survives a long advance.  To expire a session, take its connection away
(close the client's socket without closing the session, or drop the connection and keep the
client from coming back).

Ensembles share one clock.  Their messages still travel over real sockets, so after each
step `advance` waits (at most `quiet_timeout`) until the members' peer links are quiet: no
frame queued, none in a transport's buffer, no byte the receiving kernel has not taken
(SIOCOUTQ), no Ready pass pending, for three rounds of every member's loop in a row.  A
message sent at a step is thus handled at that step's time, whatever the machine's load,
and a session expires at the same step in every run.  (A proxied link hides the bytes the
proxy holds: `settle` seconds of real time per step stand in; InProcessEnsemble(proxied=True)
sets 2 ms.)  At the end `advance` waits
(at most `drain_timeout`) until every serving member has applied all it logged and they
agree on the last zxid.  Under virtual time a member ticks only in `advance` (and while an
ensemble waits to serve at start); a paused member (`pause()`) does not tick, and its clock
has jumped when it resumes, as a stopped process's does.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import math
import struct
import threading
import time
from typing import TYPE_CHECKING, Callable, TypeVar

if TYPE_CHECKING:
    from ..server.node import ZkServer

T = TypeVar("T")


class VirtualClock:
    def __init__(self, start_ms: int | None = None, settle: float = 0.0, quiet_timeout: float = 1.0,
                 drain_timeout: float = 5.0) -> None:
        # A whole minute: session expiry buckets (multiples of tickTime) then line up with it.
        self.now_ms = start_ms if start_ms is not None else time.time_ns() // 60_000_000_000 * 60_000
        self.settle = settle
        self.quiet_timeout = quiet_timeout
        self.drain_timeout = drain_timeout
        self._servers: list["ZkServer"] = []
        self._lock = threading.Lock()

    def __call__(self) -> int:
        """The time, in ms (a server's `clock_ms`)."""
        return self.now_ms

    # ------------------------------------------------------------ the ticker servers call

    def attach(self, server: "ZkServer") -> None:
        with self._lock:
            if server not in self._servers:
                self._servers.append(server)

    def detach(self, server: "ZkServer") -> None:
        with self._lock:
            if server in self._servers:
                self._servers.remove(server)

    @property
    def servers(self) -> list["ZkServer"]:
        with self._lock:
            return list(self._servers)

    # ------------------------------------------------------------ moving time

    def advance(self, seconds: float) -> None:
        """Let `seconds` of time pass for every attached server, one tick at a time."""
        if seconds < 0:
            raise ValueError("time does not go back")
        target = self.now_ms + round(seconds * 1000)
        while self.now_ms < target:
            self.step(target - self.now_ms)
        self.drain()

    def step(self, most_ms: int | None = None) -> None:
        """One tick (the shortest tick interval of the servers, at most `most_ms`)."""
        servers = self.servers
        interval = min((math.ceil(s.member.tick_interval_ms) for s in servers), default=100)
        self.now_ms += max(1, min(interval, most_ms if most_ms is not None else interval))
        on_loops(servers, _tick)
        if len(servers) > 1:
            self.wait_quiet(servers)

    def wait_quiet(self, servers: list["ZkServer"]) -> bool:
        """Until nothing is on its way between the members (see the module's docstring)."""
        if self.settle:
            time.sleep(self.settle)
        deadline = time.monotonic() + self.quiet_timeout
        quiet_rounds = 0
        while quiet_rounds < 3:
            if time.monotonic() > deadline:
                return False
            if any(on_loops(servers, _in_flight)):
                quiet_rounds = 0
                time.sleep(0.0005)
            else:
                quiet_rounds += 1
        return True

    def drain(self) -> None:
        """Wait until each serving member has carried out what it logged (acks and commits
        between members travel in real time) and they agree on the last zxid."""
        deadline = time.monotonic() + self.drain_timeout
        while time.monotonic() < deadline:
            states = on_loops(self.servers, _progress)
            serving = [(logged, applied) for idle, serving, logged, applied in states if serving]
            if all(idle for idle, *_ in states) and len(set(serving)) <= 1 and all(a == b for a, b in serving):
                return
            time.sleep(0.001)


def _tick(server: "ZkServer") -> None:
    member = server.member
    member.refresh_clock()
    for session in list(server.clients.by_session):
        member.touch(session)  # its client is connected: it would have pinged
    server.tick()


_SIOCOUTQ = 0x5411  # bytes sent on a socket that its peer's kernel has not acknowledged


def _in_flight(server: "ZkServer") -> int:
    """What this member has yet to do or to get across to its peers (0: nothing).  Reads the
    peer links' internals (zkpy.server.peers): a test-only view, off the serving path."""
    member = server.member
    pending = int(member._woken or member.core.has_ready())
    peers = server.peers
    if peers is None:
        return pending
    pending += peers._flush_scheduled
    for link in peers.out.values():
        pending += len(link.queue)
        writer = link.writer
        if writer is None or writer.is_closing():
            continue
        pending += writer.transport.get_write_buffer_size()
        sock = writer.transport.get_extra_info("socket")
        try:
            pending += struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]
        except (OSError, ValueError, AttributeError):
            pass
    return pending


def _progress(server: "ZkServer") -> tuple[bool, bool, int, int]:
    member = server.member
    idle = member.writer.outstanding == 0 and not member.core.has_ready()
    return idle, member.serving, member.core.last_zxid, member.tree.last_zxid


def on_loops(servers: list["ZkServer"], fn: Callable[["ZkServer"], T], timeout: float = 10.0) -> list[T]:
    """Run `fn(server)` on each server's own loop thread (all at once); return the results."""
    futures = []
    for server in servers:
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run(server: "ZkServer" = server, fut: concurrent.futures.Future = fut) -> None:
            try:
                fut.set_result(fn(server))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

        server.loop.call_soon_threadsafe(run)
        futures.append(fut)
    return [f.result(timeout) for f in futures]
