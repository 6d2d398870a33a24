"""A seeded, deterministic simulation of real `Member`s (TigerBeetle's VOPR, FoundationDB's simulator).

Each member is the production `zkpy.server.member.Member`, driven as node.py drives it — its
Ready loop run once something woke it, ticked on its own clock, fed peer messages and client
requests — but over a simulated disk (disk.py), network (network.py) and clock (clock.py),
with simulated clients (clients.py).  Restart recovers a member from its simulated disk as
production does (snapshot + log, torn tail cut) and builds a new Member with the log tail.

A schedule: `steps` with faults (crashes, restarts, disk errors, flipped bits, pauses, clock
jumps, partitions, lost/delayed/duplicated/reordered messages), then everything heals and the
ensemble must elect a leader, serve, make progress and converge.  Invariants (invariants.py)
are checked after every step.  Every choice comes from `random.Random(seed)`: no wall clock,
no iteration over sets or ids, so a failing seed replays exactly.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

from .. import logs
from ..server.config import Config, ServerSpec
from ..server.member import Member
from .clients import SimClient, SimClientTable
from .clock import SimClock
from .disk import DiskFaults, SimDisk, SimStorage, StorageBroken, recover
from .invariants import Checker, InvariantBroken
from .network import NetFaults, SimNetwork

CONFIGS = ("3+1", "5", "standalone")
STEP_MS = 10
TICK_STEPS = 5  # member.tick_interval_ms (50 ms at tickTime 100)


@dataclass
class Faults:
    crash: float = 0.003  # per member per step
    restart: float = 0.04  # per step, for a member that is down (or whose log failed)
    pause: float = 0.002
    pause_steps: tuple[int, int] = (5, 120)
    jump: float = 0.002
    jump_ms: tuple[int, int] = (50, 3000)
    flip: float = 0.003
    net: NetFaults = field(default_factory=NetFaults)
    disk: DiskFaults = field(default_factory=lambda: DiskFaults(enospc=0.004, eio=0.004))

    @classmethod
    def random(cls, rng: random.Random) -> "Faults":
        """A schedule's own mix: some are calm, some are storms."""
        return cls(crash=rng.uniform(0, 0.006), restart=rng.uniform(0.01, 0.08), pause=rng.uniform(0, 0.004),
                   jump=rng.uniform(0, 0.004), flip=rng.uniform(0, 0.006),
                   net=NetFaults(drop=rng.uniform(0, 0.15), duplicate=rng.uniform(0, 0.08),
                                 max_delay=rng.randint(0, 4), partition=rng.uniform(0, 0.02),
                                 heal=rng.uniform(0.01, 0.1), kind_cut=rng.uniform(0, 0.02)),
                   disk=DiskFaults(delay=rng.randint(1, 4), enospc=rng.uniform(0, 0.01), eio=rng.uniform(0, 0.01)))


class Node:
    """One server: its disk survives crashes; the member, storage and client table do not."""

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.disk = SimDisk()
        self.member: Member = None  # type: ignore[assignment]
        self.storage: SimStorage = None  # type: ignore[assignment]
        self.table = SimClientTable()
        self.up = False
        self.woken = False
        self.next_tick = 0


def make_config(kind: str) -> tuple[Config, list[int], list[int]]:
    """(config, voters, observers) of a named configuration."""
    if kind == "standalone":
        return Config(tick_time=100), [0], []
    voters, observers = {"3+1": (3, 1), "5": (5, 0)}[kind]
    servers = {}
    for sid in range(1, voters + observers + 1):
        role = "participant" if sid <= voters else "observer"
        servers[sid] = ServerSpec(sid, f"10.0.1.{sid}", 2888, 3888, role)
    return (Config(tick_time=100, init_limit=10, sync_limit=5, servers=servers),
            list(range(1, voters + 1)), list(range(voters + 1, voters + observers + 1)))


class Simulator:
    def __init__(self, seed: int, config: str = "3+1", faults: Faults | None = None, clients: int | None = None) -> None:
        self.seed = seed
        self.kind = config
        self.rng = rng = random.Random(seed)
        self.faults = faults or Faults.random(rng)
        self.config, voters, observers = make_config(config)
        self.standalone = config == "standalone"
        self.sids = voters + observers
        self.clock = SimClock(self.sids, rng, STEP_MS, 200)
        self.net = SimNetwork(self.sids, rng, self.faults.net)
        self.checker = Checker(seed, voters)
        self.nodes = {sid: Node(sid) for sid in self.sids}
        self.links: set[tuple[int, int]] = set()  # (a, b): a's connection to b is up
        self.boots = 0
        self.crashes = 0
        self.turns = rng.choice((0.0, 0.3, 0.7))  # chance that an event's Ready waits for the turn's end
        n = clients if clients is not None else (3 if self.standalone else 5)
        self.clients = [SimClient(c, random.Random(rng.getrandbits(64)), self._on_reply, self._report)
                        for c in range(1, n + 1)]
        for sid in self.sids:
            self._boot(self.nodes[sid])

    # ------------------------------------------------------------ servers

    def _boot(self, node: Node) -> None:
        sid = node.sid
        tree, tail = recover(node.disk)
        node.table = table = SimClientTable()
        node.storage = storage = SimStorage(node.disk, random.Random(self.rng.getrandbits(64)), self.faults.disk,
                                            lambda: self.clock.step)

        def wake() -> None:
            node.woken = True

        member = Member(self.config, sid, tree, tail, storage, lambda msgs: self.net.send(self.clock.step, sid, msgs),
                        table, self.clock.of(sid), wake, epochs=node.disk.epochs, incarnation=self.boots)
        self.boots += 1
        table.member = member
        node.member = member
        self._capture(sid, member)
        self.checker.booted(sid, member)
        node.up = True
        node.next_tick = self.clock.step + self.rng.randint(1, TICK_STEPS)
        self._run(node)
        for other in self.sids:
            if other != sid and self.nodes[other].up and not self.net.severed(sid, other):
                self._link_up(other, sid)
                self._link_up(sid, other)

    def _capture(self, sid: int, member: Member) -> None:
        """Every Ready the member carries out passes the checker first."""
        core = member.core
        hand_out = core.ready
        checker = self.checker

        def ready():  # noqa: ANN202
            rd = hand_out()
            checker.on_ready(sid, member, rd)
            return rd

        core.ready = ready  # type: ignore[method-assign]

    def _crash(self, node: Node) -> None:
        self.crashes += 1
        node.up = False
        node.woken = False
        for conn in list(node.table.connections):
            conn.close()  # connection reset
        node.storage.log.crash()
        self.net.forget(node.sid)
        self.clock.paused_until.pop(node.sid, None)
        for other in self.sids:
            self.links.discard((node.sid, other))
            if (other, node.sid) in self.links:
                self._link_down(other, node.sid)

    def _link_up(self, a: int, b: int) -> None:
        if (a, b) not in self.links:
            self.links.add((a, b))
            node = self.nodes[a]
            node.member.peer_connected(b)
            self._run(node)

    def _link_down(self, a: int, b: int) -> None:
        if (a, b) in self.links:
            self.links.discard((a, b))
            node = self.nodes[a]
            if node.up:
                node.member.peer_disconnected(b)
                self._run(node)

    def _run(self, node: Node, end_of_turn: bool = False) -> None:
        """The member's Ready loop.  Production runs it once per event-loop turn, after every
        event of the turn; here some events of a step share one run (`turns`)."""
        if not end_of_turn and node.woken and self.rng.random() < self.turns:
            return  # later in this step: more events first, as in one loop turn
        while node.woken and node.up:
            node.woken = False
            node.member.process()

    def _reachable(self, sid: int | None) -> bool:
        return sid is not None and self.nodes[sid].up and not self.clock.paused(sid)

    # ------------------------------------------------------------ clients

    def _on_reply(self, client: SimClient, frame: tuple) -> None:
        self.checker.reply(client.session, frame)

    def _report(self, what: str) -> None:
        self.checker.fail(what)

    # ------------------------------------------------------------ one step

    def step(self, faults: bool = True, writes: bool = True) -> None:
        clock = self.clock
        clock.step += 1
        step = self.checker.step = clock.step
        if faults:
            self._faults()
        for sid in clock.resumed():
            self._run(self.nodes[sid])
        held = set(clock.paused_until)
        for src, dst, msg in self.net.due(step, held):
            node = self.nodes[dst]
            if node.up:
                node.member.receive(src, msg)
                self._run(node)
        for sid in self.sids:
            node = self.nodes[sid]
            if node.up and sid not in held and node.storage.log.due(step):
                node.storage.log.complete(step)
                self._run(node)
        now = clock.now_ms
        up = [s for s in self.sids if self._reachable(s)]
        members = {s: self.nodes[s].member for s in up}
        tables = {s: self.nodes[s].table for s in up}
        for client in self.clients:
            client.act(now, members, tables, up, self._reachable, writes)
            for sid in up:
                self._run(self.nodes[sid])
        for sid in self.sids:
            node = self.nodes[sid]
            if node.up and sid not in held and step >= node.next_tick:
                node.next_tick = step + TICK_STEPS
                node.member.tick()
                self._run(node)
        for sid in self.sids:
            self._run(self.nodes[sid], end_of_turn=True)
        self.checker.trees({s: self.nodes[s].member for s in self.sids if self.nodes[s].up})
        self.checker.durability({s: self.nodes[s].disk for s in self.sids})

    def _faults(self) -> None:
        f, rng = self.faults, self.rng
        for sid in self.sids:
            node = self.nodes[sid]
            if not node.up:
                if rng.random() < f.restart:
                    self._boot(node)
                continue
            if node.member.failed is not None:
                if rng.random() < f.restart:  # the operator restarts it
                    self._crash(node)
                    self._boot(node)
                continue
            if rng.random() < f.crash:
                self._crash(node)
                continue
            if rng.random() < f.flip:
                node.disk.flip_bit(rng)
            if self.standalone:
                continue
            if rng.random() < f.pause and not self.clock.paused(sid):
                self.clock.pause(sid, rng.randint(*f.pause_steps))
            if rng.random() < f.jump:
                self.clock.jump(sid, rng.randint(*f.jump_ms))
        if self.standalone:
            return
        if rng.random() < f.net.partition:
            a, b, both = self.net.cut()
            if both and rng.random() < 0.7:  # the keepalive notices on both ends
                self._link_down(a, b)
                self._link_down(b, a)
        if rng.random() < f.net.kind_cut:
            self.net.cut_kind()
        if (self.net.blocked or self.net.blocked_kinds) and rng.random() < f.net.heal:
            self._heal_network()

    def _heal_network(self) -> None:
        self.net.blocked.clear()
        self.net.blocked_kinds.clear()
        for a in self.sids:
            for b in self.sids:
                if a != b and self.nodes[a].up and self.nodes[b].up:
                    self._link_up(a, b)

    # ------------------------------------------------------------ a schedule

    def run(self, steps: int = 300, settle: int = 400, quiet: int = 300) -> None:
        """`steps` with faults, then heal everything and check the ensemble recovers."""
        try:
            for _ in range(steps):
                self.step()
            self._heal_all()
            committed, acked = len(self.checker.order), len(self.checker.acked)
            for _ in range(settle):
                self.step(faults=False)
            for _ in range(quiet):
                self.step(faults=False, writes=False)
                if self._quiescent():
                    break
            self.checker.converged({s: self.nodes[s].member for s in self.sids}, committed, acked)
        except InvariantBroken:
            raise
        except StorageBroken as e:
            raise InvariantBroken(f"seed {self.seed}, step {self.clock.step}: {e}") from e
        except Exception as e:  # the member's own code failed: as much a finding as a broken invariant
            raise InvariantBroken(f"seed {self.seed}, step {self.clock.step}: {type(e).__name__}: {e}") from e

    def _heal_all(self) -> None:
        self.net.faulty = False
        self.faults.disk.enospc = self.faults.disk.eio = 0.0
        self.clock.paused_until.clear()
        for sid in self.sids:
            node = self.nodes[sid]
            if node.up and node.member.failed is not None:
                self._crash(node)
            if not node.up:
                self._boot(node)
        self._heal_network()

    def _quiescent(self) -> bool:
        if self.net.in_flight:
            return False
        zxids = {self.nodes[s].member.tree.last_zxid for s in self.sids}
        return len(zxids) == 1 and all(self.nodes[s].member.serving for s in self.sids)

    def fingerprint(self) -> tuple:
        """What a replay must reproduce exactly."""
        c = self.checker
        return (tuple(c.order), tuple(c.acked), tuple(sorted(c.leaders.items())), self.net.sent, self.boots,
                tuple(self.nodes[s].member.tree.digest() for s in self.sids))


def quiet_logs() -> contextlib.AbstractContextManager[None]:
    """Members log each election and failure; thousands of schedules need none of it."""
    return logs.quiet()


def run_schedule(seed: int, config: str = "3+1", steps: int = 300) -> Simulator:
    sim = Simulator(seed, config)
    sim.run(steps)
    return sim


def summary(sims: list[Any]) -> dict[str, int]:
    """Totals over schedules, for progress lines and commit messages."""
    out = {"committed": 0, "acked": 0, "epochs": 0, "snap": 0, "trunc": 0, "crashes": 0, "torn": 0,
           "disk_failures": 0, "flips": 0, "detected": 0}
    for sim in sims:
        out["committed"] += len(sim.checker.order)
        out["acked"] += len(sim.checker.acked)
        out["epochs"] += len(sim.checker.leaders)
        out["snap"] += sim.checker.syncs["snap"]
        out["trunc"] += sim.checker.syncs["trunc"]
        out["crashes"] += sim.crashes
        for node in sim.nodes.values():
            st = node.disk.stats
            out["torn"] += st.torn
            out["disk_failures"] += st.failures
            out["flips"] += st.flips
            out["detected"] += st.detected
    return out
