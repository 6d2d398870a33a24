"""An in-process zkpy server on a background event-loop thread.

Synchronous test code (kazoo, the Java client in a subprocess, anything) talks to it over
a real loopback socket; fault injection and introspection run on the server's loop via `call`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from typing import Any, Callable, TypeVar

from .. import logs
from ..server.config import Config
from ..server.node import ZkServer
from . import introspect
from .clock import VirtualClock
from .external import four_letter_word
from .faults import ServerFaults
from .reset import reset_inprocess
from .trace import DEFAULT_SIZE, TraceEntry, entries, snapshot

T = TypeVar("T")


class ZkpyServer:
    """`with ZkpyServer() as zk: KazooClient(zk.connect_string)`.

    Listens on 127.0.0.1 on a port the kernel picks (it binds port 0) unless `port` (or
    `base_port`, the same for symmetry with the ensembles) is given.  Options are zoo.cfg
    settings by their Config field names (tick_time, extended_types, super_digest, ...);
    or a whole `config` (an ensemble member's, say: see InProcessEnsemble).  The wire trace
    is on (`trace()`; `wire_trace=0` turns it off) and the server's log lines are kept in
    `log_lines` (the last 500), for the pytest plugin's failure reports.

    `clock="virtual"` (or a shared `VirtualClock`) stops time for the server: it moves only
    in `advance(seconds)` (see zkpy.testing.clock).
    """

    def __init__(self, port: int = 0, config: Config | None = None, clock: str | VirtualClock = "real",
                 base_port: int | None = None, **options: Any) -> None:
        if base_port is not None:
            port = base_port
        if clock == "virtual":
            clock = VirtualClock()
        elif clock != "real" and not isinstance(clock, VirtualClock):
            raise ValueError(f"clock is 'real', 'virtual' or a VirtualClock, not {clock!r}")
        self.clock: VirtualClock | None = clock if isinstance(clock, VirtualClock) else None
        self.config = config or Config(client_port=port, client_port_address="127.0.0.1",
                                       four_letter_words=frozenset({"ruok", "srvr", "stat", "conf", "cons", "mntr",
                                                                    "wchs", "wchc", "wchp", "dump", "isro", "envi",
                                                                    "dirs", "crst", "srst"}))
        for key, value in options.items():
            if not hasattr(self.config, key):
                raise TypeError(f"unknown server option {key!r}")
            setattr(self.config, key, value)
        if "wire_trace" not in options and not self.config.wire_trace:
            self.config.wire_trace = DEFAULT_SIZE
        self.log_lines: deque[str] = deque(maxlen=500)
        self._resume: threading.Event | None = None
        self.server: ZkServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> "ZkpyServer":
        ready: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            logs.capture_thread(self.log_lines)
            try:
                import uvloop

                loop = uvloop.new_event_loop()
            except ImportError:  # pragma: no cover
                loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                server = ZkServer(self.config) if self.clock is None else \
                    ZkServer(self.config, clock_ms=self.clock, ticker=self.clock)
                loop.run_until_complete(server.start())
                self.server = server
                ready.set_result(None)
            except BaseException as e:  # noqa: BLE001 - report start-up failure to the caller
                ready.set_exception(e)
                loop.close()
                logs.release_thread()
                return
            loop.run_forever()
            loop.run_until_complete(server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            logs.release_thread()

        self._thread = threading.Thread(target=run, name="zkpy-server", daemon=True)
        self._thread.start()
        ready.result(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.resume()
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> "ZkpyServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        assert self.server is not None
        return self.server.host

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------ access to the server's loop

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run `fn()` on the server's loop, then one pass of the member's Ready loop, and return fn's result."""
        assert self._loop is not None
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def wrapper() -> None:
            try:
                result = fn()
                if self.server is not None:
                    self.server.member.process()  # what fn proposed is acted on before we return
                fut.set_result(result)
            except BaseException as e:  # noqa: BLE001
                fut.set_exception(e)

        self._loop.call_soon_threadsafe(wrapper)
        return fut.result(timeout)

    # ------------------------------------------------------------ fault injection

    def pause(self) -> None:
        """Freeze the server's event loop (a hung server, as under SIGSTOP): its sockets stay
        open but nothing is read, answered or timed out until `resume()`."""
        if self._resume is not None or self._loop is None:
            return
        self._resume = threading.Event()
        frozen = threading.Event()

        def freeze(resume: threading.Event = self._resume) -> None:
            frozen.set()
            resume.wait()

        if self.clock is not None and self.server is not None:
            self.clock.detach(self.server)  # a frozen loop cannot tick
        self._loop.call_soon_threadsafe(freeze)
        frozen.wait(10)

    def resume(self) -> None:
        if self._resume is not None:
            self._resume.set()
            self._resume = None
            if self.clock is not None and self.server is not None:
                self.clock.attach(self.server)

    def expire_session(self, session_id: int) -> None:
        """Expire a session now, as if its timeout had passed: ephemerals go, watches fire."""

        def expire() -> None:
            assert self.server is not None
            self.server.member.refresh_clock()
            self.server.member.expire(session_id)

        self.call(expire)

    def drop_connections(self, session_id: int | None = None) -> int:
        """Close every client connection, or those of one session (clients see CONNECTIONLOSS
        and reconnect; sessions live).  Under virtual time a session with no connection stops
        counting as pinging, so `advance` can expire it."""

        def drop() -> int:
            assert self.server is not None
            conns = [c for c in self.server.connections if session_id in (None, c.session_id)]
            for c in conns:
                c.close()
            return len(conns)

        return self.call(drop)

    @property
    def faults(self) -> "ServerFaults":
        """Faults on demand: `with zk.faults.inject(drop_reply(), op="setData"): ...` (testing/faults.py)."""
        return ServerFaults(lambda: {self.server.member.sid: self})  # type: ignore[union-attr]

    def digest(self) -> str:
        return self.call(lambda: self.server.tree.digest())  # type: ignore[union-attr]

    def four_letter_word(self, word: str) -> str:
        return four_letter_word(self.host, self.port, word)

    # ------------------------------------------------------------ virtual time

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass for a server on a virtual clock (every server on that clock)."""
        if self.clock is None:
            raise RuntimeError("advance needs ZkpyServer(clock='virtual')")
        self.clock.advance(seconds)

    # ------------------------------------------------------------ introspection (plain values)

    def sessions(self) -> dict[int, introspect.Session]:
        return self.call(lambda: introspect.read_sessions(self.server))  # type: ignore[arg-type]

    def ephemerals(self, session_id: int) -> list[str]:
        return self.call(lambda: introspect.read_ephemerals(self.server, session_id))  # type: ignore[arg-type]

    def watches(self) -> list[introspect.Watch]:
        return self.call(lambda: introspect.read_watches(self.server))  # type: ignore[arg-type]

    def tree(self) -> introspect.Tree:
        return self.call(lambda: introspect.read_tree(self.server))  # type: ignore[arg-type]

    def last_zxid(self) -> int:
        return self.call(lambda: self.server.tree.last_zxid)  # type: ignore[union-attr]

    # ------------------------------------------------------------ test support (trace.py, reset.py)

    def trace(self) -> list[TraceEntry]:
        """The recent requests, replies and events of this server's clients, oldest first."""
        ring = self.server.clients.trace if self.server is not None else None
        return entries(snapshot(ring)) if ring is not None else []

    def reset(self, timeout: float = 10.0) -> None:
        """Back to an empty tree and no sessions, through the pipeline (see zkpy.testing.reset)."""
        reset_inprocess({0: self}, timeout)
