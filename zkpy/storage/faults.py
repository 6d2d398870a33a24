"""Injected disk faults, for tests only: make the n-th log write, preallocation, fsync or
snapshot write of a server process fail once, as a full or broken disk would.

    ZKPY_TEST_DISK_FAULTS=append:300:ENOSPC,fsync:2:EIO zkpy serve zoo.cfg

A comma-separated list of `<point>:<n>:<ERRNO>`; the points are

- `append`:   the pwrite of a batch of log records (TxnLog.append),
- `prealloc`: growing a log segment (posix_fallocate, or ftruncate where that is missing),
- `fsync`:    the fdatasync of a batch (TxnLog.sync),
- `snapshot`: writing a snapshot file (write_snapshot; in the forked snapshot child).

The n-th call at that point (1-based) raises `OSError(errno.<ERRNO>)` instead of doing
anything: nothing is written.  Calls at a point with a planned fault are counted per
server process, its forked snapshot children included (the counters live in shared memory, so the second snapshot is the
second call, whichever child writes it).  Each fault that fires logs one warning
"disk fault injected" (tests look for it, so that they cannot pass without the fault).

The variable is read once, when this module is imported.  When it is unset, `ACTIVE` is
None and the storage modules bind the plain os functions: the hot path pays nothing.

Faults installed while a server runs (slow or failing log writes of one member, from a test
or a faults file: zkpy/server/faults.py) are carried out by `log_write`, on the writer
thread, and fire with the same warning.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from ..logs import get_logger

ENV = "ZKPY_TEST_DISK_FAULTS"
POINTS = ("append", "prealloc", "fsync", "snapshot")

log = get_logger("zkpy.faults")

F = TypeVar("F", bound=Callable[..., object])
_COUNTER = struct.Struct("<Q")


class FaultSpecError(ValueError):
    pass


def parse(spec: str) -> dict[str, dict[int, int]]:
    """`append:300:ENOSPC,fsync:2:EIO` -> {"append": {300: 28}, "fsync": {2: 5}}."""
    plan: dict[str, dict[int, int]] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 3:
            raise FaultSpecError(f"{ENV}: {item!r} is not <point>:<n>:<ERRNO>")
        point, n, name = parts
        if point not in POINTS:
            raise FaultSpecError(f"{ENV}: unknown point {point!r} (one of {', '.join(POINTS)})")
        if not n.isdigit() or int(n) < 1:
            raise FaultSpecError(f"{ENV}: {item!r}: n must be a positive integer")
        code = getattr(errno, name, None)
        if not isinstance(code, int) or not name.isupper():
            raise FaultSpecError(f"{ENV}: {item!r}: {name!r} is not an errno name")
        plan.setdefault(point, {})[int(n)] = code
    return plan


class DiskFaults:
    """The faults planned for this process, and how many calls each point has seen."""

    def __init__(self, plan: dict[str, dict[int, int]]) -> None:
        self.plan = plan
        # Anonymous MAP_SHARED memory: a forked snapshot child counts into the parent's counters.
        self._counts = mmap.mmap(-1, _COUNTER.size * len(POINTS))

    def calls(self, point: str) -> int:
        return _COUNTER.unpack_from(self._counts, _COUNTER.size * POINTS.index(point))[0]

    def check(self, point: str) -> None:
        """Count a call at `point`; raise the planned OSError if this is the one."""
        slot = _COUNTER.size * POINTS.index(point)
        n = _COUNTER.unpack_from(self._counts, slot)[0] + 1
        _COUNTER.pack_into(self._counts, slot, n)
        code = self.plan.get(point, {}).get(n)
        if code is not None:
            fail(point, code, call=n)

    def hooked(self, point: str, fn: F) -> F:
        """`fn`, preceded by `check(point)`; `fn` itself when no fault is planned there."""
        if point not in self.plan:
            return fn

        def hook(*args: object, **kwargs: object) -> object:
            self.check(point)
            return fn(*args, **kwargs)

        hook.__name__ = getattr(fn, "__name__", point)
        return hook  # type: ignore[return-value]


def fail(point: str, code: int, **context: object) -> NoReturn:
    log.warning("disk fault injected", point=point, errno=errno.errorcode.get(code, code), pid=os.getpid(), **context)
    raise OSError(code, os.strerror(code))


def log_write(fault: Any, append: Callable[[], None], sync: Callable[[], None]) -> None:
    """One batch's `append()` then `sync()`, with a runtime fault (server/faults.py's Action:
    slow_fsync, fail_fsync or fail_append) carried out where it belongs."""
    kind = fault.kind
    if kind == "fail_append":
        fail("append", fault.code)
    append()
    if kind == "slow_fsync":
        time.sleep(fault.seconds)
    elif kind == "fail_fsync":
        fail("fsync", fault.code)
    sync()


def from_env() -> DiskFaults | None:
    spec = os.environ.get(ENV, "").strip()
    return DiskFaults(parse(spec)) if spec else None


ACTIVE: DiskFaults | None = from_env()
