"""Faults on demand: rules that make chosen requests, replies or log writes of a server misbehave.

The faults that break applications are narrow: a reply lost after its write committed, one
error on exactly one znode, one slow disk.  A rule says which requests (or log writes) it
matches and what happens to them:

    Rule(drop_reply(), op="setData", path="/controller_epoch", count=1)

- match: `session` (id), `op` (an op code's name, "setData", "getData", "create" (op 1;
  kazoo's create with include_data and zkCli send "create2"), "multi", ...: case and
  underscores ignored; or a code; or a tuple of them), `path` (an
  fnmatch glob; a multi matches when any of its sub-ops' paths does), `member` (sid; 0 is a
  standalone server).  Log-write faults match by member only: a batch of txns is written
  at once, whoever sent them.
- act: see the action constructors below.
- fire: every match, the first `count` matches, or each match with `probability`
  (seeded with `seed`, so a run replays); `fired` counts what fired.

Pure: no sockets, clocks, files or threads.  The client connection asks `on_request`
per request, the log device `on_log_write` per batch, and they carry out the action; when
no rule of theirs is installed the objects they ask hold `faults = None`, so a server without
faults pays one attribute test per request (and one per log write).  Rules are added and removed on the server's
event loop (ZkpyServer.call; the faults-file watcher runs there too).
"""

from __future__ import annotations

import errno as errnos
import random
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..logs import get_logger
from ..protocol.codes import Err, Op

log = get_logger("zkpy.faults")

_OPS = {name.replace("_", "").lower(): int(op) for name, op in Op.__members__.items()}
_MULTI = (int(Op.MULTI), int(Op.MULTI_READ))

REQUEST_KINDS = ("error", "delay", "drop_reply", "close_before_commit")
LOG_KINDS = ("slow_fsync", "fail_fsync", "fail_append")


@dataclass(frozen=True)
class Action:
    """What a rule does; build one with the functions below."""

    kind: str
    code: int = 0  # error: the ZooKeeper error code; fail_*: the errno
    seconds: float = 0.0  # delay, slow_fsync


def error(code: int) -> Action:
    """Answer with `code` instead of processing the request.  `Err.CONNECTIONLOSS` closes
    the connection without an answer, before the request is processed (nothing is applied)."""
    return Action("error", code=int(code))


def delay(seconds: float) -> Action:
    """Hold the request, and every later one of its connection (TCP keeps them in order),
    for `seconds` before it is processed."""
    return Action("delay", seconds=float(seconds))


def drop_reply() -> Action:
    """The write is processed and applied, but when it is answered the connection closes
    instead: the client never hears, as when its server dies just after the commit.  (A
    read is not answered either: its connection closes after it was processed.)"""
    return Action("drop_reply")


def close_before_commit() -> Action:
    """The request goes into the pipeline and the connection closes at once: the client
    sees CONNECTIONLOSS while its write may still commit."""
    return Action("close_before_commit")


def slow_fsync(seconds: float) -> Action:
    """Each matched log write takes `seconds` longer between the write and the fsync."""
    return Action("slow_fsync", seconds=float(seconds))


def fail_fsync(code: int = errnos.EIO) -> Action:
    """The batch is written but its fsync fails with `code`: what reached the disk is
    unknown, so the member leaves the ensemble (standalone: refuses writes)."""
    return Action("fail_fsync", code=int(code))


def fail_append(code: int = errnos.ENOSPC) -> Action:
    """The batch's write fails with `code` before anything is written."""
    return Action("fail_append", code=int(code))


def op_code(op: int | str) -> int:
    if isinstance(op, str):
        try:
            return _OPS[op.replace("_", "").lower()]
        except KeyError:
            raise ValueError(f"unknown op {op!r}") from None
    return int(op)


class Rule:
    """One fault: what it matches, what it does, how often it fires."""

    def __init__(self, action: Action, *, session: int | None = None, op: Any = None, path: str | None = None,
                 member: int | None = None, count: int | None = None, probability: float | None = None,
                 seed: int = 0, id: str | None = None) -> None:
        if action.kind not in REQUEST_KINDS + LOG_KINDS:
            raise ValueError(f"unknown fault action {action.kind!r}")
        if action.kind in LOG_KINDS and (session is not None or op is not None or path is not None):
            raise ValueError(f"{action.kind} matches log writes: by member only, not session, op or path")
        if count is not None and count < 1:
            raise ValueError("count must be >= 1")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within 0..1")
        self.action = action
        self.session = session
        self.op = op
        self.ops: frozenset[int] | None = None if op is None else frozenset(
            op_code(o) for o in (op if isinstance(op, (tuple, list, set, frozenset)) else (op,)))
        self.path = path
        self.member = member
        self.count = count
        self.probability = probability
        self.seed = seed
        self.id = id or f"rule-{random.getrandbits(48):012x}"
        self.fired = 0
        self._rng = random.Random(seed)

    @property
    def on_log(self) -> bool:
        return self.action.kind in LOG_KINDS

    @property
    def spent(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def matches(self, session: int, op: int, paths: list[str] | None) -> bool:
        if self.session is not None and session != self.session:
            return False
        if self.ops is not None and op not in self.ops:
            return False
        if self.path is not None:
            return paths is not None and any(fnmatchcase(p, self.path) for p in paths)
        return True

    def fire(self) -> bool:
        """A match: does the fault happen this time?  (Counts it if so.)"""
        if self.spent:
            return False
        if self.probability is not None and self._rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    # ------------------------------------------------------------ the faults file (JSON)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "action": {"kind": self.action.kind}}
        if self.action.code:
            out["action"]["code"] = self.action.code
        if self.action.seconds:
            out["action"]["seconds"] = self.action.seconds
        for key in ("session", "op", "path", "member", "count", "probability"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, (tuple, set, frozenset)) else value
        if self.seed:
            out["seed"] = self.seed
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Rule:
        spec = dict(obj)
        act = spec.pop("action")
        action = Action(act["kind"], code=int(act.get("code", 0)), seconds=float(act.get("seconds", 0.0)))
        known = {"id", "session", "op", "path", "member", "count", "probability", "seed"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown rule fields {sorted(unknown)}")
        return cls(action, **spec)

    def __repr__(self) -> str:
        return f"Rule({self.to_json()})"


def paths_of(op: int, args: tuple | None) -> list[str] | None:
    """The znode paths a decoded request names: its own, or each sub-op's for a multi."""
    if not args:
        return None
    if op in _MULTI:
        return [sub[0] for _, sub in args[0] if sub and isinstance(sub[0], str)]
    return [args[0]] if isinstance(args[0], str) else None


class FaultTable:
    """The rules of one server (member `sid`).  `requests` (the member, for its client
    connections) holds `faults`, this table, while there are request rules, else None;
    `log_device` (None without a transaction log) likewise for log-write rules."""

    def __init__(self, sid: int, requests: Any, log_device: Any | None) -> None:
        self.sid = sid
        self.requests = requests
        self.log_device = log_device
        self.has_log = log_device is not None
        self.rules: list[Rule] = []
        self.retired: dict[str, Rule] = {}  # spent or removed, by id: a re-read file must not revive them

    def add(self, rule: Rule) -> bool:
        """Install `rule` if it is meant for this member; returns whether it was."""
        if rule.member is not None and rule.member != self.sid:
            return False
        if rule.on_log and not self.has_log:
            raise ValueError(f"{rule.action.kind}: this server has no transaction log (no dataDir)")
        self.rules.append(rule)
        self._arm()
        return True

    def remove(self, rule: Rule) -> None:
        if rule in self.rules:
            self.rules.remove(rule)
            self._arm()

    def clear(self) -> None:
        self.rules.clear()
        self._arm()

    def replace(self, rules: list[Rule]) -> None:
        """Install exactly `rules` (a re-read faults file).  A rule already seen (by id) keeps
        its count of firings, so a count=1 rule still fires once however often the file is read."""
        known = {r.id: r for r in self.rules}
        known.update(self.retired)
        self.rules = []
        for rule in rules:
            rule = known.get(rule.id, rule)
            if not rule.spent:
                self.add(rule)
        self._arm()

    @property
    def fired(self) -> dict[str, int]:
        counts = {r.id: r.fired for r in self.retired.values()}
        counts.update((r.id, r.fired) for r in self.rules)
        return counts

    def _arm(self) -> None:
        on_log = [r.on_log for r in self.rules]
        self.requests.faults = self if not all(on_log) else None
        if self.log_device is not None:
            self.log_device.faults = self if any(on_log) else None

    def _fired(self, rule: Rule, **what: Any) -> None:
        log.info("fault injected", sid=self.sid, rule=rule.id, action=rule.action.kind, fired=rule.fired, **what)
        if rule.spent:
            self.retired[rule.id] = rule
            self.remove(rule)  # the last one gone: back to the one attribute test

    # ------------------------------------------------------------ asked by the server

    def on_request(self, session: int, op: int, args: tuple | None) -> Action | None:
        """A client request of `session` (args decoded, or None): the action to carry out, if any."""
        paths: list[str] | None = None
        looked = False
        for rule in self.rules:
            if rule.on_log:
                continue
            if rule.path is not None and not looked:
                paths, looked = paths_of(op, args), True
            if rule.matches(session, op, paths) and rule.fire():
                self._fired(rule, session=hex(session), op=op, paths=paths)
                return rule.action
        return None

    def on_log_write(self) -> Action | None:
        """A batch about to be written to the log: the disk fault to carry out, if any."""
        for rule in self.rules:
            if rule.on_log and rule.fire():
                self._fired(rule)
                return rule.action
        return None


def is_connection_loss(action: Action) -> bool:
    return action.kind == "error" and action.code == Err.CONNECTIONLOSS
