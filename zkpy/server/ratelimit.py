"""Log lines about bad input, at most one a second per kind of line.

Every malformed frame, refused hello or closed connection deserves a line, but a client or
peer that sends them by the thousand must not turn the log into a flood (or spend the
server's time formatting it).  Lines with the same event text share one budget: the first
in a second is logged, the rest are counted, and the next line that gets through says how
many were left out (`suppressed=N`).  Only the bad-input paths call it: it costs nothing
while the input is good.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class RateLimitedLog:
    __slots__ = ("_clock", "_interval", "_last", "_logger", "_suppressed")

    def __init__(self, logger: Any, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}  # event -> when it was last logged
        self._suppressed: dict[str, int] = {}  # event -> lines left out since

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        now = self._clock()
        last = self._last.get(event)
        if last is not None and now - last < self._interval:
            self._suppressed[event] = self._suppressed.get(event, 0) + 1
            return
        self._last[event] = now
        skipped = self._suppressed.pop(event, 0)
        if skipped:
            fields["suppressed"] = skipped
        getattr(self._logger, method)(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)
