"""The shell's connection: a KazooClient that reports every watch event it receives, as
zkCli's default watcher does.

zkCli sets all its watches with the session's default watcher, which prints each event; kazoo
dispatches events only to per-path callbacks it knows (and knows nothing of persistent
watches).  So the shell taps kazoo's event reader: each notification is printed (in the
reader thread, before the reply that follows it on the wire, so output keeps the server's
order) and then handed to kazoo as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Watch
from kazoo.protocol.states import KazooState

EVENT_TYPES = {-1: "None", 1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged", 4: "NodeChildrenChanged",
               5: "DataWatchRemoved", 6: "ChildWatchRemoved", 7: "PersistentWatchRemoved"}
KEEPER_STATES = {0: "Disconnected", 3: "SyncConnected", 4: "AuthFailed", 5: "ConnectedReadOnly",
                 6: "SaslAuthenticated", -112: "Expired", 7: "Closed"}


class ShellSession:
    """One ZooKeeper session, with the watches zkCli's client-side watch manager would know
    (needed to answer `removewatches` as the Java client does: locally first)."""

    def __init__(self, hosts: str, timeout_ms: int, on_event: Callable[[str, str, str | None], None],
                 read_only: bool = False) -> None:
        logging.getLogger("kazoo").setLevel(logging.CRITICAL)  # zkCli's log goes to a file, not the terminal
        self.hosts = hosts
        self.on_event = on_event
        self.persistent: dict[str, set[int]] = {}  # path -> {0 PERSISTENT, 1 PERSISTENT_RECURSIVE}
        self.closed = False
        self._connected = threading.Event()  # set after the connection event is printed
        self.client = KazooClient(hosts=hosts, timeout=timeout_ms / 1000, read_only=read_only,
                                  connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1})
        self.client.add_listener(self._state_changed)
        connection = self.client._connection
        read_watch_event = connection._read_watch_event

        def tap(buffer: bytes, offset: int) -> None:
            watch, _ = Watch.deserialize(buffer, offset)
            self.on_event(KEEPER_STATES.get(watch.state, str(watch.state)), EVENT_TYPES.get(watch.type, str(watch.type)),
                          watch.path)
            read_watch_event(buffer, offset)

        connection._read_watch_event = tap

    def start(self) -> None:
        """Start connecting (kazoo keeps trying, as the Java client does)."""
        self.client.start_async()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _state_changed(self, state: str) -> None:
        if self.closed:
            return
        if state == KazooState.CONNECTED:
            self.on_event("SyncConnected", "None", None)
            self._connected.set()
        elif state == KazooState.SUSPENDED:
            self.on_event("Disconnected", "None", None)
        elif state == KazooState.LOST:
            self.on_event("Expired", "None", None)

    @property
    def alive(self) -> bool:
        return not self.closed

    @property
    def state_name(self) -> str:
        """The Java client's States name, for the prompt."""
        if self.closed:
            return "CLOSED"
        return "CONNECTED" if self.client.connected else "CONNECTING"

    def call(self, request: Any) -> Any:
        """Send a request kazoo has no method for and wait for its reply (or raise its error)."""
        result = self.client.handler.async_result()
        self.client._call(request, result)
        return result.get()

    def close(self, report: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.client.stop()
            self.client.close()
        finally:
            if report:
                self.on_event("Closed", "None", None)

    def watch(self, event: Any) -> None:
        """The callback given to kazoo for a one-shot watch (`get -w`): kazoo asks the server for
        a watch only with one; the event itself was printed by the tap."""
