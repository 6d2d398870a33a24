"""Simulated time: one global clock in steps, and each member's own wall clock.

A member's clock is the global time plus its skew plus the jumps it took (NTP steps, a VM
resumed): members never agree on the time, as in production where `clock_ms` is the wall
clock.  A paused member (SIGSTOP) receives nothing and does not tick; when it resumes its
clock has jumped by the pause, and whatever waited for it arrives at once.
"""

from __future__ import annotations

import random
from typing import Callable


class SimClock:
    def __init__(self, sids: list[int], rng: random.Random, step_ms: int, max_skew_ms: int) -> None:
        self.step_ms = step_ms
        self.step = 0
        self.skew = {sid: rng.randint(0, max_skew_ms) for sid in sids}
        self.paused_until: dict[int, int] = {}  # sid -> step it resumes at

    @property
    def now_ms(self) -> int:
        """Global time (clients use it)."""
        return self.step * self.step_ms

    def of(self, sid: int) -> Callable[[], int]:
        return lambda: self.step * self.step_ms + self.skew[sid]

    def jump(self, sid: int, ms: int) -> None:
        self.skew[sid] += ms

    def pause(self, sid: int, steps: int) -> None:
        self.paused_until[sid] = self.step + steps

    def paused(self, sid: int) -> bool:
        return sid in self.paused_until

    def resumed(self) -> list[int]:
        """Members whose pause ends now."""
        done = sorted(s for s, until in self.paused_until.items() if until <= self.step)
        for sid in done:
            del self.paused_until[sid]
        return done
