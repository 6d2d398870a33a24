"""One thread that runs a broker's events in order, as Kafka's ControllerEventManager does.

ZooKeeper watches and session changes arrive on kazoo's threads; they only enqueue.  Running
every reaction on one thread means the controller never races itself, and lets a test freeze a
broker (a long GC pause) with `pause()` while its session expires.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class EventQueue:
    def __init__(self, name: str) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._gate: threading.Event | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:
                log.exception("event %s failed", getattr(fn, "__name__", fn))

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every event queued so far has run."""
        done = threading.Event()
        self.put(done.set)
        if not done.wait(timeout):
            raise TimeoutError("events did not drain")

    def pause(self, timeout: float = 30.0) -> None:
        """Stop running events (after the current one) until `resume()`: a stalled broker."""
        gate, reached = threading.Event(), threading.Event()

        def hold() -> None:
            reached.set()
            gate.wait()

        self._gate = gate
        self.put(hold)
        if not reached.wait(timeout):
            raise TimeoutError("event thread did not pause")

    def resume(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def stop(self, timeout: float = 10.0) -> None:
        self.resume()
        self._queue.put(None)
        self._thread.join(timeout)
