"""Test-only broken builds: bugs put in on purpose, to show the simulation catches them.

Each is a module-level flag, off in every real build, read once per batch or election (no
measurable cost).  `with broken_build("early-durable"): ...` turns one on and restores it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from ..consensus import zab
from ..storage import logwriter

BUILDS = {
    # LogWriter reports a batch durable when it hands it to the device, before it is written.
    "early-durable": (logwriter, "BROKEN_DURABLE_BEFORE_WRITE"),
    # A new leader reuses the highest accepted epoch instead of taking one above all of them.
    "reuse-epoch": (zab, "BROKEN_REUSE_EPOCH"),
    # The leader commits (acknowledges) what it alone has logged, before a quorum has it.
    "ack-before-quorum": (zab, "BROKEN_COMMIT_WITHOUT_QUORUM"),
    # A learner elected before its sync finished leads without applying its own history.
    "lose-history": (zab, "BROKEN_APPLY_ONLY_ON_ADVANCE"),
}


@contextlib.contextmanager
def broken_build(name: str) -> Iterator[None]:
    module, flag = BUILDS[name]
    saved = getattr(module, flag)
    setattr(module, flag, True)
    try:
        yield
    finally:
        setattr(module, flag, saved)
