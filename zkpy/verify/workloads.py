"""The client workloads of `zkpy verify`: what each client does, and what must survive.

Each workload owns a fresh subtree under its run's root (so a run against a long-lived
ensemble never meets an earlier run's znodes, and a sequence parent starts at cversion 0, as
the model assumes).  `step` is one short burst of recorded operations; it may raise any kazoo
error, which the runner swallows (the Recorder has already recorded the outcome).

`lost_writes` is the durability check, separate from linearizability: given what one member
holds once the ensemble has healed (read there directly after a sync), every acknowledged
write must have left its trace.  Version counters make the traces countable: a znode's version
is the number of sets applied to it, so it must be at least the number of acknowledged sets
and at most that plus the number whose outcome is unknown.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .history import ERROR, OK, UNKNOWN, History, Op, Recorder
from .models import Model

WORKLOADS = ("register", "counter", "queue", "lock", "fencing")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One znode as one member holds it: None fields when it does not exist."""

    data: str | None
    version: int | None
    children: tuple[str, ...] | None


class Fencing(Model):
    """Kafka's controller epoch: state is the version of the epoch znode.  A controller bumps
    it with a version-checked set ("bump", arg: the version it read) and then writes with a
    multi that checks that version ("write", arg: [epoch version, partition, value]): a write
    from a controller whose epoch was bumped since (a deposed controller) must fail."""

    name = "fencing"
    reads = frozenset({"read"})

    def init(self) -> int:
        return 0

    def step(self, state: Any, op: Op) -> tuple[bool, Any]:
        if op.kind == "read":
            return op.status != OK or op.result == state, state
        if op.kind == "bump":
            if op.status == ERROR:
                return op.result != "BADVERSION" or state != op.arg, state
            if state != op.arg:
                return op.status == UNKNOWN, state
            return op.status == UNKNOWN or op.result == state + 1, state + 1
        if op.kind == "write":
            if op.status == ERROR:
                return op.result != "BADVERSION" or state != op.arg[0], state
            return op.status == UNKNOWN or state == op.arg[0], state
        raise ValueError(f"fencing has no {op.kind!r}")


def _count(ops: Iterable[Op], kind: str, key: str, model: str) -> tuple[int, int]:
    """(acknowledged, unknown) ops of this kind on this key."""
    ok = unknown = 0
    for op in ops:
        if op.kind == kind and op.key == key and op.model == model:
            ok += op.status == OK
            unknown += op.status == UNKNOWN
    return ok, unknown


def _version_problems(path: str, snap: Snapshot | None, acked: int, unknown: int, what: str) -> list[str]:
    if snap is None or snap.version is None:
        return [f"{path} is missing ({acked} acknowledged {what})"] if acked else []
    if snap.version < acked:
        return [f"{path} has version {snap.version} but {acked} {what} were acknowledged: "
                f"{acked - snap.version} acknowledged writes lost"]
    if snap.version > acked + unknown:
        return [f"{path} has version {snap.version} but only {acked} acknowledged and {unknown} unknown {what}"]
    return []


class Workload:
    """Base: `root` is the run's own subtree."""

    name = ""
    models: dict[str, Model] = {}

    def __init__(self, root: str) -> None:
        self.root = root

    def setup(self, rec: Recorder) -> None:
        raise NotImplementedError

    def step(self, rec: Recorder, rng: random.Random) -> None:
        raise NotImplementedError

    def final_paths(self) -> list[str]:
        raise NotImplementedError

    def lost_writes(self, history: History, state: dict[str, Snapshot | None]) -> list[str]:
        raise NotImplementedError

    def value(self, rec: Recorder, rng: random.Random) -> bytes:
        """A value no other write writes: the checks can tell where a read's value came from."""
        return f"{rec.name}-{rng.getrandbits(40):010x}".encode()


class RegisterWorkload(Workload):
    """Version-checked read-modify-write, blind sets, synced and unsynced reads on 3 znodes."""

    name = "register"

    def keys(self) -> list[str]:
        return [f"{self.root}/reg/{i}" for i in range(3)]

    def setup(self, rec: Recorder) -> None:
        for key in self.keys():
            rec.create(key, b"", makepath=True)

    def step(self, rec: Recorder, rng: random.Random) -> None:
        key, roll = rng.choice(self.keys()), rng.random()
        if roll < 0.3:
            rec.sync(key)
            _, stat = rec.get(key)
            rec.set(key, self.value(rec, rng), version=stat.version)
        elif roll < 0.55:
            rec.set(key, self.value(rec, rng))
        elif roll < 0.75:
            rec.get(key)
        elif roll < 0.85:
            rec.exists(key)
        else:
            rec.sync(key)
            rec.get(key)

    def final_paths(self) -> list[str]:
        return self.keys()

    def lost_writes(self, history: History, state: dict[str, Snapshot | None]) -> list[str]:
        out = []
        for key in self.keys():
            acked, unknown = _count(history, "set", key, "register")
            out += _version_problems(key, state.get(key), acked, unknown, "sets")
            snap = state.get(key)
            if snap is not None and snap.data:
                written = {op.arg[0] for op in history if op.kind == "set" and op.key == key and op.status != ERROR}
                if snap.data not in written:
                    out.append(f"{key} holds {snap.data!r}, which no write wrote")
        return out


class CounterWorkload(Workload):
    """Increments by version-checked set retries (kazoo's Counter), and synced reads."""

    name = "counter"

    def keys(self) -> list[str]:
        return [f"{self.root}/counter/{i}" for i in range(2)]

    def setup(self, rec: Recorder) -> None:
        for key in self.keys():
            rec.client.ensure_path(key.rpartition("/")[0])
            rec.counter_add(key, 0)

    def step(self, rec: Recorder, rng: random.Random) -> None:
        key = rng.choice(self.keys())
        if rng.random() < 0.6:
            rec.counter_add(key, rng.randint(1, 3))
        else:
            rec.sync(key)
            rec.counter_get(key)

    def final_paths(self) -> list[str]:
        return self.keys()

    def lost_writes(self, history: History, state: dict[str, Snapshot | None]) -> list[str]:
        return [p for key in self.keys() for p in _counter_problems(key, history, state.get(key))]


def _counter_problems(key: str, history: History, snap: Snapshot | None) -> list[str]:
    acked = sum(op.arg for op in history if op.kind == "add" and op.key == key and op.status == OK)
    maybe = sum(op.arg for op in history if op.kind == "add" and op.key == key and op.status == UNKNOWN)
    value = int(snap.data or 0) if snap is not None and snap.data is not None else None
    if value is None:
        return [f"{key} is missing (acknowledged adds sum to {acked})"] if acked else []
    if value < acked:
        return [f"{key} holds {value} but acknowledged adds sum to {acked}: acknowledged increments lost"]
    if value > acked + maybe:
        return [f"{key} holds {value} but acknowledged and unknown adds sum to only {acked + maybe}"]
    return []


class QueueWorkload(Workload):
    """A queue of sequential znodes: enqueue (create), dequeue (list, delete the first)."""

    name = "queue"

    @property
    def parent(self) -> str:
        return f"{self.root}/queue"

    def setup(self, rec: Recorder) -> None:
        rec.client.ensure_path(self.root)
        rec.create(self.parent, b"", model="none")

    def step(self, rec: Recorder, rng: random.Random) -> None:
        roll = rng.random()  # more dequeues than enqueues: the queue stays short, and so do the model's states
        if roll < 0.4:
            rec.create(f"{self.parent}/item-", self.value(rec, rng), sequence=True)
        elif roll < 0.85:
            # synced: a listing after an older sync counts from that sync's call, and such wide
            # intervals multiply the orders the checker must try (a 30-s run passed 200k states)
            rec.sync(self.parent)
            children = rec.get_children(self.parent)
            if children:
                rec.delete(f"{self.parent}/{min(children)}", model="sequence")
        else:
            rec.sync(self.parent)
            rec.get_children(self.parent)

    def final_paths(self) -> list[str]:
        return [self.parent]

    def lost_writes(self, history: History, state: dict[str, Snapshot | None]) -> list[str]:
        snap = state.get(self.parent)
        present = set(snap.children or ()) if snap is not None else set()
        maybe_deleted = {op.arg for op in history if op.model == "sequence" and op.kind == "delete"
                         and op.status in (OK, UNKNOWN)}
        deleted = {op.arg for op in history if op.model == "sequence" and op.kind == "delete" and op.status == OK}
        out = []
        for op in history:
            if op.model == "sequence" and op.kind == "create" and op.status == OK:
                if op.result not in present and op.result not in maybe_deleted:
                    out.append(f"{self.parent}/{op.result} was created (acknowledged, op #{op.id}), never deleted, "
                               "and is gone")
        out += [f"{self.parent}/{name} was deleted (acknowledged) and is back" for name in sorted(deleted & present)]
        return out


class LockWorkload(Workload):
    """kazoo's Lock recipe; the critical section increments a counter (recorded too)."""

    name = "lock"

    def setup(self, rec: Recorder) -> None:
        rec.client.ensure_path(f"{self.root}/lock")
        rec.counter_add(f"{self.root}/held", 0)

    def step(self, rec: Recorder, rng: random.Random) -> None:
        lock = rec.lock(f"{self.root}/lock", rec.name)
        if lock.acquire(timeout=3.0):
            try:
                rec.counter_add(f"{self.root}/held")
                time.sleep(rng.random() * 0.02)
            finally:
                lock.release()

    def final_paths(self) -> list[str]:
        return [f"{self.root}/held"]

    def lost_writes(self, history: History, state: dict[str, Snapshot | None]) -> list[str]:
        key = f"{self.root}/held"
        return _counter_problems(key, history, state.get(key))


class FencingWorkload(Workload):
    """Kafka-like controllers: elected by an ephemeral /controller znode, each takes an epoch by
    a version-checked set of /controller_epoch and writes partition states with a multi that
    checks the epoch's version; after resigning, a controller sometimes writes once more with
    its old epoch, as a deposed controller that has not noticed would (it must fail once
    another has taken the epoch)."""

    name = "fencing"
    models = {"fencing": Fencing()}
    PARTITIONS = 4

    @property
    def controller(self) -> str:
        return f"{self.root}/controller"

    @property
    def epoch(self) -> str:
        return f"{self.root}/controller_epoch"

    def state(self, p: int) -> str:
        return f"{self.root}/state/{p}"

    def setup(self, rec: Recorder) -> None:
        rec.client.ensure_path(self.root)
        rec.client.create(self.epoch, b"")
        for p in range(self.PARTITIONS):
            rec.client.create(self.state(p), b"", makepath=True)

    def step(self, rec: Recorder, rng: random.Random) -> None:
        from kazoo.exceptions import NodeExistsError

        try:  # recorded, not checked: a register of thousands of racing creates, deletes and
            # session ends passed 1M states in a 30-s run; the epoch model checks what fencing is for
            rec.create(self.controller, rec.name.encode(), ephemeral=True, model="none")
        except NodeExistsError:
            if self._still_mine(rec):
                # Our resignation's delete came back unknown and did not happen: the znode is
                # ours for as long as our session lives, and nobody could be elected again
                # (one lost reply ended elections for the rest of an Apache run: 11 terms in 30 s).
                rec.delete(self.controller, model="none")
                return
            time.sleep(0.02)
            if rng.random() < 0.3:  # a stale controller from an old epoch tries its luck
                self.fenced_write(rec, rng, rng.randint(0, 3))
            return
        rec.sync(self.epoch)
        seen = rec.record("fencing", "read", self.root, lambda: rec.client.get(self.epoch)[1].version)
        mine = rec.record("fencing", "bump", self.root, lambda: rec.client.set(self.epoch, b"", version=seen).version,
                          arg=seen)
        for _ in range(rng.randint(3, 8)):
            self.fenced_write(rec, rng, mine)
        rec.delete(self.controller, model="none")
        if rng.random() < 0.5:  # deposed, and not yet aware of it
            time.sleep(rng.random() * 0.05)
            self.fenced_write(rec, rng, mine)

    def _still_mine(self, rec: Recorder) -> bool:
        """Is the controller znode owned by this client's session?  (Not recorded: it decides
        only what the client does next, and the znode's ops are not checked.)"""
        from kazoo.exceptions import KazooException

        try:
            stat = rec.client.exists(self.controller)
        except KazooException:
            return False
        session = rec.client.client_id  # None between sessions
        return stat is not None and session is not None and stat.ephemeralOwner == session[0]

    def fenced_write(self, rec: Recorder, rng: random.Random, epoch: int) -> None:
        p, value = rng.randrange(self.PARTITIONS), self.value(rec, rng)

        def multi() -> bool:
            from kazoo.exceptions import RolledBackError, RuntimeInconsistency

            txn = rec.client.transaction()
            txn.check(self.epoch, epoch)
            txn.set_data(self.state(p), value)
            for result in txn.commit():
                if isinstance(result, Exception) and not isinstance(result, (RolledBackError, RuntimeInconsistency)):
                    raise result
            return True

        rec.record("fencing", "write", self.root, multi, arg=[epoch, p, value.decode()])

    def final_paths(self) -> list[str]:
        return [self.epoch] + [self.state(p) for p in range(self.PARTITIONS)]

    def lost_writes(self, history: History, state: dict[str, Snapshot | None]) -> list[str]:
        ops = [op for op in history if op.model == "fencing"]
        acked, unknown = _count(ops, "bump", self.root, "fencing")
        out = _version_problems(self.epoch, state.get(self.epoch), acked, unknown, "epoch bumps")
        for p in range(self.PARTITIONS):
            writes = [op for op in ops if op.kind == "write" and op.arg[1] == p]
            ok = sum(op.status == OK for op in writes)
            maybe = sum(op.status == UNKNOWN for op in writes)
            out += _version_problems(self.state(p), state.get(self.state(p)), ok, maybe, "fenced writes")
        return out


def make(name: str, root: str) -> Workload:
    classes = {c.name: c for c in (RegisterWorkload, CounterWorkload, QueueWorkload, LockWorkload, FencingWorkload)}
    return classes[name](root)
