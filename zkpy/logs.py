"""zkpy's log: structlog events carried by the stdlib `logging` tree under `zkpy`.

As a library (zkpy.testing, a server embedded in an application) zkpy configures nothing:
neither structlog's global defaults nor any logging handler.  Each module's logger
(`get_logger("zkpy.member")`) is a structlog BoundLogger with zkpy's own short processor
chain around `logging.getLogger("zkpy.member")`, so the application's logging set-up decides
what is shown and where; pytest's `caplog` and `--log-level` see in-process servers' lines.
A record's `msg` is the event dict (an `Event`, whose str() is "event key=value ..."): a plain
`logging.Formatter` prints a readable line, and structlog's `ProcessorFormatter` gets the fields.

`zkpy serve` (and the other commands) call `configure`: one handler on the root logger that
renders with structlog, to the console (ConsoleRenderer) or as JSON (JSONRenderer), on stderr
or into a file.  Lines from other libraries (asyncio, kazoo) go through it too.

An in-process server runs on a thread of its own; `capture_thread(ring)` makes every line that
thread logs also land, rendered, in `ring` (a bounded deque) whatever the level, so a failing
test can show the server's recent log next to its wire trace (zkpy/testing/plugin.py).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import structlog

FORMATS = ("console", "json")

_rings: dict[int, deque[str]] = {}  # thread ident -> that thread's ring


class Event(dict):
    """An event dict as a log record's `msg`: str() (what `record.getMessage()` returns) is one line."""

    __slots__ = ()

    def __str__(self) -> str:
        return " ".join([str(self.get("event", "")), *(f"{k}={v}" for k, v in self.items() if k != "event")])


def render_line(level: str, event_dict: dict[str, Any]) -> str:
    fields = " ".join(f"{k}={v}" for k, v in event_dict.items() if k not in ("event", "timestamp", "level"))
    clock = datetime.now().strftime("%H:%M:%S.%f")
    return f"{clock} {level:<7} {event_dict.get('event', '')} {fields}".rstrip()


def _to_ring(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    if _rings:
        ring = _rings.get(threading.get_ident())
        if ring is not None:
            ring.append(render_line(method_name, event_dict))
    return event_dict


# Frames between a `log.info(...)` call and `logging.Logger.info`: BoundLogger.info and its two
# _proxy_to_logger.  With this stacklevel a record names the zkpy file and line that logged it.
_CALLER = 4


def _to_stdlib(logger: Any, method_name: str, event_dict: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """structlog's ProcessorFormatter.wrap_for_formatter, with an `Event` as the message."""
    return (Event(event_dict),), {"extra": {"_logger": logger, "_name": method_name}, "stacklevel": _CALLER}


_PROCESSORS = [_to_ring, structlog.stdlib.filter_by_level, _to_stdlib]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """The logger of a zkpy module; `name` is its place in the logging tree ("zkpy.member")."""
    return structlog.stdlib.BoundLogger(logging.getLogger(name), _PROCESSORS, {})


def capture_thread(ring: deque[str]) -> None:
    """From now on, this thread's log lines also go to `ring` (until `release_thread`)."""
    _rings[threading.get_ident()] = ring


def release_thread() -> None:
    _rings.pop(threading.get_ident(), None)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No zkpy line below CRITICAL while inside (the simulator's thousands of schedules)."""
    root = logging.getLogger("zkpy")
    saved = root.level
    root.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(saved)


_installed: logging.Handler | None = None  # the handler `configure` put on the root logger


def configure(level: str = "INFO", fmt: str = "console", file: str | None = None) -> None:
    """What `zkpy` commands log: every logger's lines at `level` and above, rendered by structlog
    (console: `timestamp [level] event key=value`, as before; json: one object a line with
    `event`, `level`, `timestamp`, `logger` and the fields), to stderr or appended to `file`.
    Replaces only the handler an earlier call installed (a test's capture handlers stay)."""
    global _installed
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    named = [structlog.stdlib.add_logger_name, structlog.processors.format_exc_info] if fmt == "json" else []
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.add_log_level, structlog.processors.TimeStamper(fmt="iso"), *named,
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer])
    handler = logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.close()
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    _installed = handler
