"""Hypothesis strategies for ZooKeeper operation sequences and fault schedules.

Paths come from a small alphabet (by default /a, /b and their children) so that ops collide:
creates meet existing nodes, deletes meet children, versions are often right and often wrong.

    @given(st.lists(zkpy_operations(sessions=2), max_size=30))
    def test_my_recipe(ops): ...

    @given(fault_schedules(members=3))
    def test_my_app_survives(schedule):
        with InProcessEnsemble(3, proxied=True, clock="virtual") as ens:
            for fault in schedule:
                apply_fault(ens, fault)        # zkpy.verify.schedule
"""

from __future__ import annotations

import itertools
from typing import Sequence

from hypothesis import strategies as st

from . import ops as o
from .schedule import Advance, ExpireClient, Fault, Heal, Kill, Partition, Pause, Restart

PATHS = ("/a", "/b", "/a/a", "/a/b", "/b/a", "/a/a/a")
# Paths no client library sends (kazoo and the Java client refuse or normalise them), for
# systems that take raw requests: the server looks them up, or refuses them, in its own order.
BAD_PATHS = ("/a/", "/a//a", "/a/.")
DATA = (b"", b"x", b"yy")
VERSIONS = (-1, 0, 1, 2)  # -1 matches any; small numbers are right as often as wrong
SOCKET_MODES = ("persistent", "ephemeral", "persistent_sequential", "ephemeral_sequential")
ALL_MODES = tuple(o.MODES)
_TTL_MODES = ("ttl", "persistent_sequential_ttl")


def _each(cls: type, *fields: Sequence) -> st.SearchStrategy:
    """Every `cls(*combination)` of the fields' values, drawn in one choice.

    One draw per op instead of one per field: hypothesis's cost per draw is what bounds how
    many ops a second a property-based test runs.  Combinations are ordered by their fields'
    order, so shrinking moves towards the first value of each (session 0, the first path...).
    """
    return st.sampled_from([cls(*combination) for combination in itertools.product(*fields)])


def _creates(sessions: range, paths: Sequence[str], modes: Sequence[str], acls: Sequence[tuple]) -> list[o.Create]:
    # (mode, ttl) go together: a TTL only with a TTL mode, 0 being a bad one (BADARGUMENTS)
    kinds = [(mode, -1) for mode in modes if mode not in _TTL_MODES]
    kinds += [(mode, 60_000) for mode in modes if mode in _TTL_MODES]
    kinds += [(mode, 0) for mode in modes if mode == "ttl"]
    return [o.Create(s, path, data, mode, acl, ttl)
            for s, path, (mode, ttl), acl, data in itertools.product(sessions, paths, kinds, acls, DATA)]


def _multi_op(paths: Sequence[str]) -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(_creates(range(1), paths, ("persistent", "ephemeral", "persistent_sequential"), (o.OPEN_ACL,))),
        _each(o.Delete, (0,), paths, VERSIONS),
        _each(o.SetData, (0,), paths, DATA, VERSIONS),
        _each(o.Check, (0,), paths, VERSIONS))


def zkpy_operations(sessions: int = 2, paths: Sequence[str] = PATHS, modes: Sequence[str] = ALL_MODES,
                    acls: Sequence[tuple] = o.ACLS, multi: bool = True,
                    sessions_end: bool = False, bad_paths: bool = False,
                    persistent_watches: bool = False) -> st.SearchStrategy[o.Operation]:
    """One op of any kind for one of `sessions` slots.

    `modes`: the create modes to draw (SOCKET_MODES for clients such as kazoo that cannot send
    container or TTL creates).  `sessions_end`: also draw CloseSession (the machine draws
    session ends of its own, so it is off by default).  `bad_paths`: add BAD_PATHS, for
    systems that take raw requests (not through kazoo).  `persistent_watches`: draw AddWatch
    (kazoo 2.11 cannot send it).
    """
    if bad_paths:
        paths = tuple(paths) + BAD_PATHS
    slots = range(sessions)
    read_paths = ("/",) + tuple(paths)
    watch = (False, True)
    # most nodes open, or few ops get past NOAUTH and INVALIDACL
    create_acls = tuple(acls) + ((o.OPEN_ACL,) * 3 if o.OPEN_ACL in acls else ())
    creates = st.sampled_from(_creates(slots, paths, modes, create_acls))
    # one_of picks its branches evenly: creates and writes get more of them, or the tree stays
    # nearly empty and most ops answer NONODE
    choices = [
        creates, creates, creates, creates,
        _each(o.Delete, slots, paths, VERSIONS),
        _each(o.SetData, slots, paths, DATA, VERSIONS),
        _each(o.SetData, slots, paths, DATA, VERSIONS),
        _each(o.GetData, slots, read_paths, watch),
        _each(o.Exists, slots, read_paths, watch),
        _each(o.GetChildren, slots, read_paths, watch),
        _each(o.GetChildren, slots, read_paths, watch),
        _each(o.SetAcl, slots, paths, acls, (-1, 0, 1)),
        _each(o.GetAcl, slots, read_paths),
        _each(o.Sync, slots, read_paths),
        _each(o.AddAuth, slots, sorted(o.USERS)),
    ]
    if multi:
        subs = st.lists(_multi_op(paths), min_size=1, max_size=3).map(tuple)
        choices.append(st.builds(o.Multi, st.sampled_from(slots), subs))
    if sessions_end:
        choices.append(_each(o.CloseSession, slots))
    if persistent_watches:
        choices.append(_each(o.AddWatch, slots, read_paths, (False, True)))
    return st.one_of(choices)


def zkpy_node_operations(sessions: int = 2, acls: Sequence[tuple] = o.ACLS) -> st.SearchStrategy[o.Operation]:
    """Ops on one node, for a caller that points them at nodes that exist (their path is "/")."""
    slots, at, watch = range(sessions), ("/",), (False, True)
    return st.one_of(
        _each(o.Delete, slots, at, VERSIONS),
        _each(o.SetData, slots, at, DATA, VERSIONS),
        _each(o.GetData, slots, at, watch),
        _each(o.Exists, slots, at, watch),
        _each(o.GetChildren, slots, at, watch),
        _each(o.SetAcl, slots, at, acls, (-1, 0, 1)),
        _each(o.GetAcl, slots, at))


def fault_schedules(members: int = 3, clients: int = 2, max_faults: int = 6,
                    virtual_time: bool = True) -> st.SearchStrategy[list[Fault]]:
    """A list of faults for an ensemble of `members` (ids 1..members) with `clients` clients.

    Each fault is data (zkpy.verify.schedule); `apply_fault` carries it out on a zkpy.testing
    ensemble.  A majority is never killed at once (partitions may still leave no quorum for a
    while); schedules end healed, with every killed member restarted.
    """
    member = st.integers(1, members)
    minority = st.lists(member, min_size=1, max_size=max(1, (members - 1) // 2), unique=True)
    fault = st.one_of(
        st.builds(Kill, member),
        st.builds(Pause, member, st.sampled_from((0.2, 0.5, 1.0))),
        minority.map(lambda group: Partition(tuple(sorted(group)))),
        st.just(Heal()),
        st.builds(ExpireClient, st.integers(0, clients - 1)),
        *([st.builds(Advance, st.sampled_from((0.5, 2.0, 10.0)))] if virtual_time else []),
    )
    return st.lists(fault, max_size=max_faults).map(lambda faults: _healed(faults, (members - 1) // 2))


def _healed(faults: list[Fault], most_down: int) -> list[Fault]:
    """Keep a quorum up (a kill beyond `most_down` restarts an earlier victim first), restart
    what is still down at the end, and heal."""
    out: list[Fault] = []
    down: list[int] = []
    for fault in faults:
        if isinstance(fault, Kill):
            if fault.member in down or most_down == 0:
                continue
            if len(down) >= most_down:
                out.append(Restart(down.pop(0)))
            down.append(fault.member)
        out.append(fault)
    out.extend(Restart(m) for m in sorted(down))
    out.append(Heal())
    return out
