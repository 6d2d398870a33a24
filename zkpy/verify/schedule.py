"""Fault schedules as data, and `apply_fault`, which carries one out on a zkpy.testing target.

Faults are plain frozen dataclasses so that hypothesis can draw, shrink and print them
(zkpy.verify.strategies.fault_schedules) and a failing schedule reads as what happened:
`[Partition(members=(1,)), Kill(member=2), Restart(member=2), Heal()]`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence, Union


@dataclass(frozen=True)
class Kill:
    member: int


@dataclass(frozen=True)
class Restart:
    member: int


@dataclass(frozen=True)
class Pause:
    """Freeze a member (SIGSTOP, or its event loop in process) for `seconds` of real time."""

    member: int
    seconds: float


@dataclass(frozen=True)
class Partition:
    """Cut `members` off from the rest of the ensemble (needs a proxied ensemble)."""

    members: tuple[int, ...]


@dataclass(frozen=True)
class Heal:
    pass


@dataclass(frozen=True)
class ExpireClient:
    """Expire the session of the `client`-th client (an index into apply_fault's `clients`)."""

    client: int


@dataclass(frozen=True)
class Advance:
    """Let `seconds` pass: on a virtual clock at once, else by sleeping."""

    seconds: float


Fault = Union[Kill, Restart, Pause, Partition, Heal, ExpireClient, Advance]


def apply_fault(target: Any, fault: Fault, clients: Sequence[Any] = ()) -> None:
    """Carry out `fault` on `target`: an Ensemble or InProcessEnsemble (members 1..n), or a
    ZkpyServer (member 1: it can pause, expire sessions and advance, not die or split).

    `clients` are the kazoo clients that ExpireClient indexes.  A fault aimed at a member
    that is down (or up, for Restart) does nothing, so that schedules stay valid when shrunk;
    one the target cannot do raises TypeError.
    """
    if isinstance(fault, (Kill, Restart, Partition)) and not hasattr(target, "partition"):
        raise TypeError(f"{type(target).__name__} cannot {fault}: use an ensemble")
    if isinstance(fault, Kill):
        if target.alive(fault.member):
            target.kill(fault.member)
    elif isinstance(fault, Restart):
        if not target.alive(fault.member):
            target.start_server(fault.member)
    elif isinstance(fault, Pause):
        _pause(target, fault.member, fault.seconds)
    elif isinstance(fault, Partition):
        target.partition(list(fault.members), [m for m in target.ids if m not in fault.members])
    elif isinstance(fault, Heal):
        if getattr(target, "proxy", None) is not None:
            target.heal()
    elif isinstance(fault, ExpireClient):
        if fault.client < len(clients):
            _expire(target, clients[fault.client])
    elif getattr(target, "clock", None) is not None:  # Advance
        target.advance(fault.seconds)
    else:
        time.sleep(fault.seconds)


def _pause(target: Any, member: int, seconds: float) -> None:
    if hasattr(target, "partition"):  # an ensemble
        if not target.alive(member):
            return
        target.pause(member)
        time.sleep(seconds)
        target.resume(member)
    else:
        target.pause()
        time.sleep(seconds)
        target.resume()


def _expire(target: Any, client: Any) -> None:
    """Expire `client`'s session where sessions are tracked: the one server, or the leader."""
    session_id = client.client_id[0] if client.client_id else None
    if session_id is None:
        return
    if hasattr(target, "expire_session"):
        target.expire_session(session_id)
        return
    member = getattr(target, "members", {}).get(target.leader())
    if member is None:
        raise TypeError(f"{type(target).__name__} cannot expire a session (an InProcessEnsemble can)")
    member.expire_session(session_id)
