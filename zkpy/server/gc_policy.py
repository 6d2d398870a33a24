"""Keep CPython's cyclic garbage collector off the znode tree in a `zkpy serve` process.

Why: a full (generation 2) collection walks every tracked object, and each znode is two
(the node and its children set).  With 500k znodes one pass takes ~180 ms on these
machines, and while writes are in flight CPython starts one every second or two (the
objects of in-flight requests survive the young collections and count as "long-lived
growth"): measured in `zkpy serve` under 8 s of pipelined creates, 11 pauses of 23-153 ms.
Znodes hold no reference cycles -- refcounting frees them -- so those passes find nothing.

The policy: every `freeze_every` seconds, a young collection, then `gc.freeze()`, which
moves every live object into the permanent generation that collections skip (O(1)).
Objects younger than that are collected as usual.  Every `full_every` seconds everything
is unfrozen, collected once and frozen again, so that cyclic garbage among older objects
(closed connections, say) is still reclaimed, only later.

Only the server process uses it: an in-process server shares its process with the user's
code, whose collector is not ours to change.
"""

from __future__ import annotations

import asyncio
import gc
import time


class FreezeOldObjects:
    def __init__(self, freeze_every: float = 1.0, full_every: float = 600.0) -> None:
        self.freeze_every = freeze_every
        self.full_every = full_every
        self.last_full = time.monotonic()
        self.handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """After recovery: the recovered tree goes straight to the permanent generation."""
        self.full_pass()
        self.handle = loop.call_later(self.freeze_every, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if time.monotonic() - self.last_full >= self.full_every:
            self.full_pass()
        else:
            gc.collect(1)
            gc.freeze()
        self.handle = loop.call_later(self.freeze_every, self._tick, loop)

    def full_pass(self) -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.last_full = time.monotonic()

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        gc.unfreeze()
