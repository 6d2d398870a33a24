"""Session tracker: ids, passwords, timeouts and expiry in tick buckets (SessionTrackerImpl).

Pure: time comes in as `now_ms` arguments.  Expiry times are rounded up to the next
tick, as ZooKeeper does, so that expiry is checked once per tick for a whole bucket.
"""

from __future__ import annotations

# Passwords derive from the session id and a fixed secret, so that every server of an
# ensemble can check a reconnecting client's password without replicating it.  They are
# ZooKeeper's own (ZooKeeperServer.generatePasswd: 16 bytes of java.util.Random seeded with
# id ^ 0xB3415C00), so a client of an Apache ZooKeeper server that moves to zkpy
# (`zkpy import`) reconnects with the password it holds and keeps its session.
_SECRET = 0xB3415C00
_MULTIPLIER = 0x5DEECE66D
_MASK = (1 << 48) - 1


def session_password(session_id: int) -> bytes:
    seed = ((session_id ^ _SECRET) ^ _MULTIPLIER) & _MASK  # new Random(seed)
    out = bytearray()
    for _ in range(4):  # nextBytes(16): four nextInt()s, each low byte first
        seed = (seed * _MULTIPLIER + 0xB) & _MASK
        out += (seed >> 16).to_bytes(4, "little")
    return bytes(out)


class SessionTracker:
    def __init__(self, tick_ms: int, server_id: int, now_ms: int) -> None:
        self.tick_ms = tick_ms
        # ZooKeeper's initializeNextSessionId: server id in the top byte, time below.
        base = ((now_ms << 24) & 0xFFFFFFFFFFFFFFFF) >> 8
        self._next_id = (base | (server_id << 56)) & 0x7FFFFFFFFFFFFFFF
        self.timeouts: dict[int, int] = {}
        self.expire_at: dict[int, int] = {}
        self.buckets: dict[int, set[int]] = {}
        self.closing: set[int] = set()

    def new_session_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _round(self, t: int) -> int:
        tick = self.tick_ms
        return (t // tick + 1) * tick

    def add(self, session_id: int, timeout_ms: int, now_ms: int) -> None:
        self.timeouts[session_id] = timeout_ms
        self.touch(session_id, now_ms)

    def touch(self, session_id: int, now_ms: int) -> bool:
        """Push back the expiry of a live session; False if it is unknown or closing."""
        timeout = self.timeouts.get(session_id)
        if timeout is None or session_id in self.closing:
            return False
        new = self._round(now_ms + timeout)
        old = self.expire_at.get(session_id)
        if old == new:
            return True
        if old is not None:
            bucket = self.buckets.get(old)
            if bucket is not None:
                bucket.discard(session_id)
                if not bucket:
                    del self.buckets[old]
        self.expire_at[session_id] = new
        self.buckets.setdefault(new, set()).add(session_id)
        return True

    def is_alive(self, session_id: int) -> bool:
        return session_id in self.timeouts and session_id not in self.closing

    def tracks(self, session_id: int) -> bool:
        """Known to this table, closing or not."""
        return session_id in self.timeouts

    def set_closing(self, session_id: int) -> None:
        if session_id in self.timeouts:
            self.closing.add(session_id)

    def remove(self, session_id: int) -> None:
        self.timeouts.pop(session_id, None)
        self.closing.discard(session_id)
        t = self.expire_at.pop(session_id, None)
        if t is not None:
            bucket = self.buckets.get(t)
            if bucket is not None:
                bucket.discard(session_id)
                if not bucket:
                    del self.buckets[t]

    def expired(self, now_ms: int) -> list[int]:
        """Sessions whose expiry time has come; they are marked closing."""
        out: list[int] = []
        for t in sorted(t for t in self.buckets if t <= now_ms):
            for sid in sorted(self.buckets.pop(t)):
                self.expire_at.pop(sid, None)
                if sid not in self.closing:
                    self.closing.add(sid)
                    out.append(sid)
        return out
