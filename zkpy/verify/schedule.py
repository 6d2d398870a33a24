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
    """Carry out `fault` on `target`: an Ensemble/InProcessEnsemble, or a ZkpyServer (member 1).

    `clients` are the kazoo clients that ExpireClient indexes.  A fault aimed at a member
    that is down (or up, for Restart) does nothing: schedules stay valid when shrunk.
    """
    members = getattr(target, "ids", [1])
    if isinstance(fault, Kill) and _alive(target, fault.member):
        target.kill(fault.member)
    elif isinstance(fault, Restart) and hasattr(target, "start_server") and not _alive(target, fault.member):
        target.start_server(fault.member)
    elif isinstance(fault, Pause) and _alive(target, fault.member):
        _pause(target, fault.member, fault.seconds)
    elif isinstance(fault, Partition) and hasattr(target, "partition"):
        rest = [m for m in members if m not in fault.members]
        target.partition(list(fault.members), rest)
    elif isinstance(fault, Heal) and getattr(target, "proxy", None) is not None:
        target.heal()
    elif isinstance(fault, ExpireClient) and fault.client < len(clients):
        _expire(target, clients[fault.client])
    elif isinstance(fault, Advance):
        if getattr(target, "clock", None) is not None:
            target.advance(fault.seconds)
        else:
            time.sleep(fault.seconds)


def _alive(target: Any, member: int) -> bool:
    if hasattr(target, "alive"):
        return target.alive(member)
    return member == 1 and target.server is not None


def _pause(target: Any, member: int, seconds: float) -> None:
    if hasattr(target, "members") or hasattr(target, "procs"):
        target.pause(member)
        time.sleep(seconds)
        target.resume(member)
    else:
        target.pause()
        time.sleep(seconds)
        target.resume()


def _expire(target: Any, client: Any) -> None:
    """Expire `client`'s session where sessions are tracked: the leader, or the one server."""
    session_id = client.client_id[0] if client.client_id else None
    if session_id is None:
        return
    if hasattr(target, "expire_session"):
        target.expire_session(session_id)
        return
    leader = target.leader() if hasattr(target, "leader") else None
    member = getattr(target, "members", {}).get(leader)
    if member is not None:
        member.expire_session(session_id)
