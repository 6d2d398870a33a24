"""Faults on demand for tests: `zk.faults`, `ens.faults`, one API for every kind of server.

    from zkpy.testing.faults import drop_reply

    with zk.faults.inject(drop_reply(), op="setData", path="/controller_epoch", count=1) as fault:
        ...                          # the first matching setData is applied, its client never hears
    assert fault.fired == 1          # the rule is gone once the block ends

`inject(action, *, session=, op=, path=, member=, count=, probability=, seed=)`: see
zkpy/server/faults.py for what matches and the actions (re-exported here).  Each member
counts its own matches: with `count=1` and no `member`, every member fires once.

`ZkpyServer.faults` and `InProcessEnsemble.faults` install rules on the servers' event loops
(in force when `inject` returns; a member started later has none).  `Ensemble.faults` writes
the members' faults file (`zkpy serve --faults FILE`) and waits until every live member
reports it loaded; a member restarted later reads it again, with fresh counts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, Protocol, Self

from ..server.faults import (
    Rule,
    close_before_commit,
    delay,
    drop_reply,
    error,
    fail_append,
    fail_fsync,
    slow_fsync,
)
from ..server.faultsfile import status_path
from ..server.node import ZkServer

__all__ = ["Faults", "Injection", "close_before_commit", "delay", "drop_reply", "error", "fail_append",
           "fail_fsync", "slow_fsync"]


class Injection:
    """An installed rule: `fired` counts its firings (over all members); `remove()`, or leave the `with`."""

    def __init__(self, faults: Faults, rule: Rule) -> None:
        self.faults = faults
        self.rule = rule

    @property
    def fired(self) -> int:
        return self.faults._fired(self.rule)

    def remove(self) -> None:
        self.faults._remove(self.rule)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Faults:
    """The rules of a server or an ensemble; subclasses say where rules go."""

    def inject(self, action: Any, *, session: int | None = None, op: Any = None, path: str | None = None,
               member: int | None = None, count: int | None = None, probability: float | None = None,
               seed: int = 0) -> Injection:
        rule = Rule(action, session=session, op=op, path=path, member=member, count=count,
                    probability=probability, seed=seed)
        self._install(rule)
        return Injection(self, rule)

    def clear(self) -> None:
        raise NotImplementedError

    def _install(self, rule: Rule) -> None:
        raise NotImplementedError

    def _remove(self, rule: Rule) -> None:
        raise NotImplementedError

    def _fired(self, rule: Rule) -> int:
        raise NotImplementedError


class InProcessServer(Protocol):
    """What ServerFaults needs of a ZkpyServer."""

    server: ZkServer | None

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any: ...


class ServerFaults(Faults):
    """In-process servers (ZkpyServer, InProcessEnsemble's members): each gets its own copy of a rule."""

    def __init__(self, servers: Callable[[], dict[int, InProcessServer]]) -> None:
        self.servers = servers
        self.copies: dict[str, list[Rule]] = {}

    def _install(self, rule: Rule) -> None:
        copies = self.copies.setdefault(rule.id, [])
        for sid, server in self.servers().items():
            if rule.member is None or rule.member == sid:
                copy = Rule.from_json(rule.to_json())
                table = server.server.fault_table  # type: ignore[union-attr]
                if server.call(lambda table=table, copy=copy: table.add(copy)):
                    copies.append(copy)
        if rule.member is not None and not copies:
            raise ValueError(f"no running member {rule.member}")

    def _remove(self, rule: Rule) -> None:
        copies = self.copies.get(rule.id, [])
        for server in self.servers().values():
            table = server.server.fault_table  # type: ignore[union-attr]
            server.call(lambda table=table: [table.remove(c) for c in copies])

    def _fired(self, rule: Rule) -> int:
        return sum(c.fired for c in self.copies.get(rule.id, []))

    def clear(self) -> None:
        for server in self.servers().values():
            server.call(server.server.fault_table.clear)  # type: ignore[union-attr]


class FileFaults(Faults):
    """Server processes reading `path` (`zkpy serve --faults path`): the rules are written there."""

    def __init__(self, path: str, live: Callable[[], list[int]], timeout: float = 10.0) -> None:
        self.path = path
        self.live = live
        self.timeout = timeout
        self.rules: dict[str, Rule] = {}
        self.generation = 0

    def _install(self, rule: Rule) -> None:
        self.rules[rule.id] = rule
        self._write()

    def _remove(self, rule: Rule) -> None:
        if self.rules.pop(rule.id, None) is not None:
            self._write()

    def clear(self) -> None:
        self.rules.clear()
        self._write()

    def _fired(self, rule: Rule) -> int:
        return sum(status.get("fired", {}).get(rule.id, 0) for status in self._statuses().values())

    def _statuses(self) -> dict[int, dict]:
        out = {}
        for sid in self.live():
            try:
                with open(status_path(self.path, sid)) as f:
                    out[sid] = json.load(f)
            except (OSError, ValueError):
                continue
        return out

    def _write(self) -> None:
        self.generation += 1
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"generation": self.generation, "rules": [r.to_json() for r in self.rules.values()]}, f)
        os.replace(tmp, self.path)
        deadline = time.monotonic() + self.timeout
        while True:
            statuses = self._statuses()
            behind = [sid for sid in self.live() if statuses.get(sid, {}).get("generation", -1) < self.generation]
            if not behind:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"members {behind} did not load faults file {self.path}")
            time.sleep(0.02)
