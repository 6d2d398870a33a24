"""The simulated peer network: loss, delay, duplication, reordering and partitions.

Every message is msgpack round-tripped as peers.py does (tuples arrive as lists).  ZAB's own
messages suffer every fault: the core is built to survive them.  Forwarded client traffic
("app" messages: requests, sessions, syncs) is never duplicated and never reordered with
anything else on its link (nothing sent before it arrives after it, nothing sent after it
arrives before it), because one TCP connection carries both and does neither; it may still be
lost (the client times out and reconnects), since a connection that breaks loses what was in it.

Connections are reported as peers.py reports them: `peer_connected(sid)` when one comes up,
`peer_disconnected(sid)` when it goes down (the other end crashed, or a partition cut both
directions and the keepalive noticed).  A one-way partition drops messages silently in one
direction: only timeouts can find it.  A kind cut loses every message of one ZAB kind on one
link until the network heals (an UPTODATE lost while the COMMITs after it arrive): the
schedules that random loss of single messages almost never makes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import msgpack


@dataclass
class NetFaults:
    drop: float = 0.03
    duplicate: float = 0.02
    max_delay: int = 3  # steps; random delays reorder ZAB messages
    partition: float = 0.01  # per step: cut a link (both ways, or one way)
    one_way: float = 0.3  # of partitions
    heal: float = 0.05  # per step: heal every cut
    kind_cut: float = 0.0  # per step: lose one ZAB message kind on one link (until healed)


ZAB_KINDS = ("followerinfo", "leaderinfo", "ackepoch", "sync", "ack", "uptodate", "proposal", "commit", "ping")


class SimNetwork:
    def __init__(self, sids: list[int], rng: random.Random, faults: NetFaults) -> None:
        self.sids = sids
        self.rng = rng
        self.faults = faults
        self.faulty = True
        self.in_flight: list[tuple[int, int, int, int, Any]] = []  # (deliver_at, order, src, dst, msg)
        self.order = 0
        self.blocked: set[tuple[int, int]] = set()  # (src, dst) pairs whose messages are dropped
        self.blocked_kinds: set[tuple[int, int, str]] = set()  # (src, dst, ZAB kind) dropped
        self.app_last: dict[tuple[int, int], int] = {}  # link -> delivery step of its last app message
        self.latest: dict[tuple[int, int], int] = {}  # link -> latest delivery step of any message
        self.sent = 0
        self.dropped = 0

    def send(self, step: int, src: int, messages: list[tuple[int, Any]]) -> None:
        f, rng = self.faults, self.rng
        for dst, msg in messages:
            self.sent += 1
            wire = msgpack.unpackb(msgpack.packb(msg, use_bin_type=True), raw=False)
            if (src, dst) in self.blocked or (self.blocked_kinds and (src, dst, msg[0]) in self.blocked_kinds):
                self.dropped += 1
                continue
            faulty = self.faulty
            if faulty and rng.random() < f.drop:
                self.dropped += 1
                continue
            app = msg[0] == "app"
            link = (src, dst)
            barrier = self.app_last.get(link, 0)
            at = max(step + (rng.randint(0, f.max_delay) if faulty else 1), barrier)
            if app:  # a barrier: it overtakes nothing sent before it, nothing sent after overtakes it
                at = max(at, self.latest.get(link, 0))
                self.app_last[link] = at
            self.latest[link] = max(at, self.latest.get(link, 0))
            self._queue(at, src, dst, wire)
            if faulty and not app and rng.random() < f.duplicate:
                self._queue(max(step + rng.randint(0, f.max_delay), barrier), src, dst, wire)

    def _queue(self, at: int, src: int, dst: int, wire: Any) -> None:
        self.order += 1
        self.in_flight.append((at, self.order, src, dst, wire))

    def due(self, step: int, held: set[int]) -> list[tuple[int, int, Any]]:
        """Messages to deliver now, in order; those to a held (paused) member wait."""
        ready = [m for m in self.in_flight if m[0] <= step and m[3] not in held]
        if not ready:
            return []
        ready.sort()
        taken = {m[1] for m in ready}
        self.in_flight = [m for m in self.in_flight if m[1] not in taken]
        return [(src, dst, msg) for _, _, src, dst, msg in ready]

    def forget(self, sid: int) -> None:
        """A member crashed: what was on its connections is gone."""
        self.in_flight = [m for m in self.in_flight if m[2] != sid and m[3] != sid]
        for table in (self.app_last, self.latest):
            for link in [k for k in table if sid in k]:
                del table[link]

    def cut(self) -> tuple[int, int, bool]:
        """Cut a random link; (a, b, both ways)."""
        a, b = self.rng.sample(self.sids, 2)
        both = self.rng.random() >= self.faults.one_way
        self.blocked.add((a, b))
        if both:
            self.blocked.add((b, a))
        return a, b, both

    def cut_kind(self) -> None:
        """Lose one ZAB message kind on a random link, one way."""
        a, b = self.rng.sample(self.sids, 2)
        self.blocked_kinds.add((a, b, self.rng.choice(ZAB_KINDS)))

    def severed(self, a: int, b: int) -> bool:
        """No connection can exist between a and b (both directions cut)."""
        return (a, b) in self.blocked and (b, a) in self.blocked
