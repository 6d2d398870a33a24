"""The nemesis of `zkpy verify`: a seeded fault schedule, and the clusters it is played on.

The schedule is a plain list made from `random.Random(seed)` before the run starts, so the same
seed (with the same kinds, length and size) replays the same schedule; only "leader" targets
are resolved when a fault starts (which member leads then is the ensemble's business).  One
fault at a time, each healed before the next, so a majority always survives.

Kinds:
- kill:      SIGKILL a member, restart it after the fault's duration.
- pause:     SIGSTOP a member for 0.5–2 s (below the 4 s session timeout), then SIGCONT.
- partition: cut a member (the leader in 3 of 5 faults) off from every other member through
             the peer-link proxy (5 members: two of them, minority from majority); clients
             still reach every member.  Heal after 2–4 s.
- skew:      a process's clock cannot be set without root or libfaketime, so this is what a
             clock jump does to a process that keeps time with a monotonic clock: the leader is
             stopped (SIGSTOP) for 5–7 s, longer than the session timeout and syncLimit, and
             when it resumes every timer it holds (session expiry, learner timeouts, pings) is
             due at once, while the rest of the ensemble has moved on to a new epoch.
- torn-tail: SIGKILL a member, cut 1–64 bytes off the end of the records of its newest
             transaction log file (its preallocated zero tail goes with them), restart it.
             zkpy only: Apache ZooKeeper's log recovery is not what this tool tests.
"""

from __future__ import annotations

import glob
import os
import random
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

KINDS = ("kill", "pause", "partition", "skew", "torn-tail")
COMMAND_TIMEOUT = 60.0  # seconds for one --*-cmd command (an ssh to a slow host)


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned fault: starts `at` seconds into the run and lasts `duration`."""

    at: float
    kind: str
    target: str  # "leader", "member N", or "members N,M" (a minority, 5 members)
    duration: float
    cut: int = 0  # torn-tail: bytes to cut

    def __str__(self) -> str:
        extra = f", cut {self.cut} bytes" if self.kind == "torn-tail" else ""
        return f"{self.at:6.2f}s  {self.kind:<9} {self.target:<11} for {self.duration:.2f}s{extra}"


@dataclass(slots=True)
class FaultWindow:
    """A fault as it happened: seconds since the run's start, and whom it hit."""

    kind: str
    label: str
    start: float
    end: float | None = None


def schedule(seed: int, kinds: tuple[str, ...], seconds: float, size: int) -> list[Fault]:
    """Faults from 1–2 s into the run until 0.5 s before its end, with 0.5–1.5 s quiet between."""
    rng = random.Random(seed)
    out: list[Fault] = []
    at = 1.0 + rng.random()
    while kinds:
        kind = rng.choice(kinds)
        duration = {"kill": rng.uniform(1.5, 3.0), "pause": rng.uniform(0.5, 2.0), "partition": rng.uniform(2.0, 4.0),
                    "skew": rng.uniform(5.0, 7.0), "torn-tail": rng.uniform(1.0, 2.0)}[kind]
        leader = rng.random() < 0.6 or kind == "skew"
        member = rng.randint(1, size)
        if kind == "partition" and size >= 5 and not leader:
            second = rng.choice([m for m in range(1, size + 1) if m != member])
            target = f"members {min(member, second)},{max(member, second)}"
        else:
            target = "leader" if leader else f"member {member}"
        if at + duration > seconds - 0.5:
            break
        out.append(Fault(round(at, 2), kind, target, round(duration, 2), rng.randint(1, 64)))
        at += duration + rng.uniform(0.5, 1.5)
    return out


class Cluster:
    """What the nemesis needs of an ensemble; members are numbered from 1."""

    members: list[int]
    kinds: tuple[str, ...] = KINDS

    def address(self, member: int) -> str:
        raise NotImplementedError

    def leader(self) -> int | None:
        raise NotImplementedError

    def kill(self, member: int) -> None: ...
    def restart(self, member: int) -> None: ...
    def pause(self, member: int) -> None: ...
    def resume(self, member: int) -> None: ...
    def isolate(self, members: list[int]) -> None: ...
    def heal(self) -> None: ...

    def tear_tail(self, member: int, cut: int) -> str:
        raise NotImplementedError

    def wait_serving(self, timeout: float) -> None: ...

    def describe(self, member: int) -> str:
        """More about a member that does not serve than `srvr` can say ("" when nothing)."""
        return ""


class LocalCluster(Cluster):
    """An `Ensemble` this process started (zkpy or Apache ZooKeeper members)."""

    def __init__(self, ensemble) -> None:
        self.ens = ensemble
        self.members = list(ensemble.ids)
        self.kinds = tuple(k for k in KINDS if not (ensemble.apache and k == "torn-tail"))

    def address(self, member: int) -> str:
        return self.ens.address(member)

    def leader(self) -> int | None:
        return self.ens.leader()

    def kill(self, member: int) -> None:
        self.ens.kill(member)

    def restart(self, member: int) -> None:
        if not self.ens.alive(member):
            self.ens.start_server(member)

    def pause(self, member: int) -> None:
        self.ens.pause(member)

    def resume(self, member: int) -> None:
        if self.ens.alive(member):
            self.ens.resume(member)

    def isolate(self, members: list[int]) -> None:
        self.ens.partition(members, [m for m in self.members if m not in members])

    def heal(self) -> None:
        self.ens.heal()

    def tear_tail(self, member: int, cut: int) -> str:
        """Cut `cut` bytes off the end of the records of the newest log segment (the member is dead)."""
        logs = glob.glob(os.path.join(self.ens.base, f"server{member}", "version-2", "log.*"))
        if not logs:
            return "no log file yet"
        newest = max(logs, key=lambda p: int(p.rpartition(".")[2], 16))
        with open(newest, "rb") as f:
            data = f.read()
        end = len(data.rstrip(b"\0"))
        keep = max(0, end - cut)
        with open(newest, "r+b") as f:
            f.truncate(keep)
        return f"cut {end - keep} bytes off the {end} bytes of records in {os.path.basename(newest)}"

    def wait_serving(self, timeout: float) -> None:
        """Every member, not only the live ones: heal_all restarted each, so one that is not
        alive now exited on its own (a member that cannot start), and fails the wait at once."""
        self.ens.wait_serving(timeout=timeout, fail_on_exit=True)

    def describe(self, member: int) -> str:
        proc = self.ens.procs.get(member)
        if proc is None or proc.poll() is None:
            return ""
        tail = self.ens.log_tails(lines=1, sids=[member]).splitlines()[1:]
        return f"; its process exited with code {proc.returncode}" + (f": {tail[0][:300]}" if tail else "")


class CommandCluster(Cluster):
    """Any ensemble, with the faults as the user's shell commands; {member} (1-based, in
    --connect order), {host} and {port} are substituted.  Leader: `srvr` where it answers."""

    COMMANDS = {"kill": ("kill", "restart"), "pause": ("pause", "resume"), "partition": ("isolate", "heal"),
                "skew": ("pause", "resume")}

    def __init__(self, addresses: list[str], commands: dict[str, str], log: Callable[[str], None]) -> None:
        self.addresses = addresses
        self.members = list(range(1, len(addresses) + 1))
        self.commands = commands
        self.log = log
        self.kinds = tuple(k for k, needs in self.COMMANDS.items() if all(commands.get(n) for n in needs))
        self.down: set[int] = set()  # killed or paused by us: only these are restarted or resumed
        self.paused: set[int] = set()

    def address(self, member: int) -> str:
        return self.addresses[member - 1]

    def leader(self) -> int | None:
        from ..testing.external import four_letter_word

        for m in self.members:
            host, _, port = self.address(m).rpartition(":")
            try:
                if "Mode: leader" in four_letter_word(host, int(port), "srvr", timeout=1):
                    return m
            except (OSError, ValueError):
                continue
        return None

    def _run(self, name: str, members: list[int] | None) -> None:
        template = self.commands.get(name)
        if not template:
            return
        for m in members or [0]:
            host, _, port = self.address(m).rpartition(":") if m else ("", "", "")
            cmd = template.format(member=m, host=host, port=port,
                                  members=",".join(map(str, members or [])))
            self._shell(cmd)

    def _shell(self, cmd: str) -> None:
        """Run one command, logging a failure.  Its output goes to a file, not a pipe: a restart
        command that leaves a server running in the background (`... &`) would hold a pipe
        open, and the run would wait on it until the timeout."""
        with tempfile.TemporaryFile() as err:
            try:
                done = subprocess.run(cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=err, timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.log(f"command {shlex.quote(cmd)} still running after {COMMAND_TIMEOUT:.0f}s: left to itself")
                return
            if done.returncode:
                err.seek(0)
                text = err.read(400).decode("utf-8", "replace").strip()
                self.log(f"command {shlex.quote(cmd)} exited {done.returncode}: {text[:200]}")

    def kill(self, member: int) -> None:
        self.down.add(member)
        self._run("kill", [member])

    def restart(self, member: int) -> None:
        if member in self.down:
            self.down.discard(member)
            self._run("restart", [member])

    def pause(self, member: int) -> None:
        self.paused.add(member)
        self._run("pause", [member])

    def resume(self, member: int) -> None:
        if member in self.paused:
            self.paused.discard(member)
            self._run("resume", [member])

    def isolate(self, members: list[int]) -> None:
        self._run("isolate", members)

    def heal(self) -> None:
        self._run("heal", None)

    def wait_serving(self, timeout: float) -> None:
        """Until every member says (`srvr`) that it leads, follows, observes or stands alone;
        RuntimeError naming each member's state if some never do within `timeout`."""
        from .durability import SERVING_MODES, UNKNOWN, member_state

        deadline = time.monotonic() + timeout
        while True:
            states = {m: member_state(self.address(m)) for m in self.members}
            if all(s in SERVING_MODES or s == UNKNOWN for s in states.values()):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"not every member serves after {timeout:.0f}s: "
                                   + ", ".join(f"member {m} {s}" for m, s in states.items()))
            time.sleep(0.2)


@dataclass
class Nemesis:
    """Plays a schedule on a cluster (on the runner's nemesis thread), logging each step."""

    cluster: Cluster
    faults: list[Fault]
    log: Callable[[str], None]
    windows: list[FaultWindow] = field(default_factory=list)
    _undo: list[tuple[str, list[int]]] = field(default_factory=list)

    def play(self, started: float, stop: Callable[[], bool]) -> None:
        for fault in self.faults:
            if not self._sleep_until(started + fault.at, stop):
                return
            window = self.inject(fault, started)
            if not self._sleep_until(started + fault.at + fault.duration, stop):
                return
            self.undo(started, window)

    @staticmethod
    def _sleep_until(when: float, stop: Callable[[], bool]) -> bool:
        while time.monotonic() < when:
            if stop():
                return False
            time.sleep(min(0.05, max(0.0, when - time.monotonic())))
        return not stop()

    def _targets(self, fault: Fault) -> tuple[list[int], str]:
        if fault.target == "leader":
            leader = self.cluster.leader()
            if leader is not None:
                return [leader], f"member {leader} (leader)"
            member = self.cluster.members[int(fault.at * 100) % len(self.cluster.members)]
            return [member], f"member {member} (no leader found)"
        ids = [int(x) for x in fault.target.split(" ", 1)[1].split(",")]
        return ids, fault.target

    def inject(self, fault: Fault, started: float) -> FaultWindow:
        targets, label = self._targets(fault)
        now = time.monotonic() - started
        c, m = self.cluster, targets[0]
        if fault.kind == "kill":
            c.kill(m)
            what, undo = f"SIGKILL {label}", ("restart", targets)
        elif fault.kind in ("pause", "skew"):
            c.pause(m)
            what = f"SIGSTOP {label}" + (" (its clock will jump when it resumes)" if fault.kind == "skew" else "")
            undo = ("resume", targets)
        elif fault.kind == "partition":
            c.isolate(targets)
            what, undo = f"isolate {label} from the other members", ("heal", targets)
        else:
            c.kill(m)
            what = f"SIGKILL {label}, {c.tear_tail(m, fault.cut)}"
            undo = ("restart", targets)
        self._undo.append(undo)
        self.log(f"[{now:7.2f}s] {fault.kind}: {what}")
        window = FaultWindow(fault.kind, f"{fault.kind} {label.split(' (')[0]}", now)
        self.windows.append(window)
        return window

    def undo(self, started: float, window: FaultWindow | None = None) -> None:
        while self._undo:
            action, targets = self._undo.pop()
            getattr(self.cluster, action)(*([] if action == "heal" else targets[:1]))
            now = time.monotonic() - started
            self.log(f"[{now:7.2f}s] {action} {' '.join(f'member {t}' for t in targets)}")
        if window is not None and window.end is None:
            window.end = time.monotonic() - started

    def heal_all(self, started: float) -> None:
        """At the end of the run, whatever the schedule left: every member up, no partition."""
        self.undo(started, self.windows[-1] if self.windows else None)
        for m in self.cluster.members:
            self.cluster.resume(m)
            self.cluster.restart(m)
        self.cluster.heal()
