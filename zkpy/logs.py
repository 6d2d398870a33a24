"""structlog set-up shared by the CLI and embedded servers, and the log rings of in-process servers.

An in-process server (zkpy.testing) runs on a thread of its own; `capture_thread(ring)` makes
every log line that thread emits also land, rendered, in `ring` (a bounded deque), so that a
failing test can show the server's recent log next to its wire trace.  The capturing
processor is put first in structlog's chain once a ring exists; lines from other threads
cost it one dict lookup.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from datetime import datetime
from typing import Any

import structlog

_rings: dict[int, deque[str]] = {}  # thread ident -> that thread's ring
_installing = threading.Lock()  # members of an ensemble start side by side


def configure(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def render_line(level: str, event_dict: dict[str, Any]) -> str:
    fields = " ".join(f"{k}={v}" for k, v in event_dict.items() if k not in ("event", "timestamp", "level"))
    clock = datetime.now().strftime("%H:%M:%S.%f")
    return f"{clock} {level:<7} {event_dict.get('event', '')} {fields}".rstrip()


def _to_ring(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    ring = _rings.get(threading.get_ident())
    if ring is not None:
        ring.append(render_line(method_name, event_dict))
    return event_dict


def capture_thread(ring: deque[str]) -> None:
    """From now on, this thread's log lines also go to `ring` (until `release_thread`)."""
    with _installing:
        processors = structlog.get_config()["processors"]
        if _to_ring not in processors:
            structlog.configure(processors=[_to_ring, *processors])
    _rings[threading.get_ident()] = ring


def release_thread() -> None:
    _rings.pop(threading.get_ident(), None)
