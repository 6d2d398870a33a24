"""`ReferenceMachine`: a hypothesis RuleBasedStateMachine that runs random ops on the reference
model and on a system under test, and fails at the first result, Stat, error code or watch
event that differs.

Zxids cannot be predicted across systems (an ensemble's carry its epoch; sessions and failed
writes take some too), so they are compared by order: every zxid a system reports is paired
with the model's for the same field, and the pairing must stay one-to-one and increasing.  A
czxid, mzxid or pzxid that a system forgot to move shows as two model zxids for one system zxid.

Run it as a test:

    from zkpy.verify import ReferenceMachine
    TestTree = ReferenceMachine.TestCase          # zkpy's pure Prep + tree, 2 sessions

Extend it: subclass, give `make_system` another system, `operations` another strategy, or
`model_class` a subclass of ReferenceTree, and add rules and invariants of your own:

    class StrictExists(ReferenceTree):        # Apache ZooKeeper 3.8.4+: exists() needs READ
        EXISTS_CHECKS_READ = True

    class MyMachine(ReferenceMachine):
        model_class = StrictExists

        def operations(self):                 # my recipe's paths
            return zkpy_operations(sessions=self.sessions, paths=("/locks", "/locks/a"))

        @rule(slot=st.integers(0, 1))
        def lock(self, slot):                 # a step of my own, compared like any op
            self.run(Create(slot, "/locks/a", mode="ephemeral"))

        @invariant()
        def children_agree(self):             # after every step
            self.run(GetChildren(0, "/locks"))
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from . import ops as o
from .reference import ReferenceTree
from .strategies import zkpy_node_operations, zkpy_operations
from .systems import PureSystem, System


@dataclass(frozen=True)
class OnExisting:
    """`op` on the `index`-th node the model holds (modulo their number), whatever its path says.

    Reaches the sequential nodes, which the path alphabet misses, and keeps ops from mostly
    meeting NONODE while the tree is small."""

    op: o.Operation
    index: int

    def resolve(self, model: ReferenceTree) -> list[o.Operation]:
        """The op on its node; deletes and ACL changes leave the test's root alone (no ZooKeeper
        deletes "/", and a root nobody may write to ends the exploration)."""
        paths = sorted(p for p in model.nodes if p != "/" or not isinstance(self.op, (o.Delete, o.SetAcl)))
        return [dataclasses.replace(self.op, path=paths[self.index % len(paths)])] if paths else []


@dataclass(frozen=True)
class WatchThenChange:
    """A watch set on the `index`-th node the model holds, then a change to it: a setData, a
    delete, or a create of a child ("<node>/w"); often another session's.  Random ops alone
    seldom change a node that a live session watches."""

    watch: o.Operation  # GetData, Exists or GetChildren with watch=True
    change: o.Operation  # SetData, Delete or Create
    index: int

    def resolve(self, model: ReferenceTree) -> list[o.Operation]:
        paths = sorted(model.nodes)
        path = paths[self.index % len(paths)]
        if isinstance(self.change, o.Create):
            change = dataclasses.replace(self.change, path=path.rstrip("/") + "/w")
        elif isinstance(self.change, o.Delete) and path == "/":
            return [dataclasses.replace(self.watch, path=path)]
        else:
            change = dataclasses.replace(self.change, path=path)
        return [dataclasses.replace(self.watch, path=path), change]


def watches_then_changes(sessions: int) -> st.SearchStrategy[WatchThenChange]:
    slots = range(sessions)
    watches = [kind(s, "/", True) for kind in (o.GetData, o.Exists, o.GetChildren) for s in slots]
    changes = [change for s in slots for change in (
        o.SetData(s, "/", b"z"), o.Delete(s, "/"), o.Create(s, "/", mode="persistent"),
        o.Create(s, "/", mode="ephemeral_sequential"))]
    return st.builds(WatchThenChange, st.sampled_from(watches), st.sampled_from(changes), st.integers(0, 15))


class Mismatch(AssertionError):
    """The system under test answered an op differently from ZooKeeper's reference model."""


_BATCHES: dict[type, st.SearchStrategy[list]] = {}


class ZxidOrder:
    """Pairs model zxids with a system's; the pairing must be one-to-one and order-preserving."""

    def __init__(self) -> None:
        self.model_keys: list[int] = []
        self.system_of: dict[int, int] = {}
        self.model_of: dict[int, int] = {}

    def pair(self, model: int, system: int, what: str) -> None:
        known = self.system_of.get(model)
        if known is not None:
            if known != system:
                raise Mismatch(f"{what}: the model's zxid #{model} was {known:#x} before, now {system:#x}")
            return
        other = self.model_of.get(system)
        if other is not None:
            raise Mismatch(f"{what}: zxid {system:#x} stands for the model's #{other} and #{model}")
        i = bisect.bisect(self.model_keys, model)
        if i > 0 and self.system_of[self.model_keys[i - 1]] > system:
            raise Mismatch(f"{what}: zxid {system:#x} is older than {self.system_of[self.model_keys[i - 1]]:#x}"
                           f" though the model's #{model} comes after #{self.model_keys[i - 1]}")
        if i < len(self.model_keys) and self.system_of[self.model_keys[i]] < system:
            raise Mismatch(f"{what}: zxid {system:#x} is newer than {self.system_of[self.model_keys[i]]:#x}"
                           f" though the model's #{model} comes before #{self.model_keys[i]}")
        self.model_keys.insert(i, model)
        self.system_of[model] = system
        self.model_of[system] = model


def _same(expected: Any, actual: Any, zxids: ZxidOrder, what: str) -> None:
    """Compare outcomes, recursing through tuples and lists; Stat zxids go through `zxids`."""
    if isinstance(expected, o.Stat) and isinstance(actual, o.Stat):
        for name in ("czxid", "mzxid", "pzxid"):
            zxids.pair(getattr(expected, name), getattr(actual, name), f"{what} {name}")
        for name in ("version", "cversion", "aversion", "ephemeral_owner", "data_length", "num_children"):
            if getattr(expected, name) != getattr(actual, name):
                raise Mismatch(f"{what}: {name} {getattr(actual, name)!r}, ZooKeeper's {getattr(expected, name)!r}"
                               f"\n  model:  {expected}\n  system: {actual}")
        return
    if isinstance(expected, (tuple, list)) and isinstance(actual, (tuple, list)) and len(expected) == len(actual):
        for i, (e, a) in enumerate(zip(expected, actual)):
            _same(e, a, zxids, f"{what}[{i}]")
        return
    if expected != actual:
        raise Mismatch(f"{what}: {actual!r}, ZooKeeper's {expected!r}")


class ReferenceMachine(RuleBasedStateMachine):
    """Random ops on ReferenceTree and on `make_system()`, compared op by op.

    To override: `sessions` (slots), `model_class`, `expire_sessions` (whether the system
    can expire a session), `operations()` (the strategy of ops, see zkpy.verify.strategies)
    and `make_system()`.
    """

    sessions = 2
    model_class: type[ReferenceTree] = ReferenceTree
    expire_sessions = True
    batch = 10  # most ops per step
    bad_paths = True  # ops on paths a client library would refuse: for systems taking raw requests
    persistent_watches = True  # AddWatch ops (kazoo 2.11 has no addWatch)

    def __init__(self) -> None:
        super().__init__()
        self.model = self.model_class(self.sessions)
        self.system = self.make_system()
        self.zxids = ZxidOrder()
        self.history: list[o.Operation] = []  # the ops run so far, for a Mismatch to show
        self._batches = self._batch_strategy()

    def _batch_strategy(self) -> st.SearchStrategy[list]:
        """The strategy of a step's ops, built once per machine class (building it costs more than
        a short example)."""
        cls = type(self)
        cached = _BATCHES.get(cls)
        if cached is None:
            slots = range(self.sessions)
            ends = [o.CloseSession(s) for s in slots] + \
                ([o.ExpireSession(s) for s in slots] if self.expire_sessions else [])
            on_existing = st.builds(OnExisting, self.operations_on_a_node(), st.integers(0, 15))
            watched = watches_then_changes(self.sessions)
            one = st.one_of(self.operations(), on_existing, on_existing, watched, watched, st.sampled_from(ends))
            cached = _BATCHES[cls] = st.lists(one, min_size=1, max_size=self.batch)
        return cached

    def make_system(self) -> System:
        return PureSystem(self.sessions)

    def operations(self) -> st.SearchStrategy[o.Operation]:
        """The ops the `run_ops` rule draws: override to change paths, modes, ACLs."""
        return zkpy_operations(sessions=self.sessions, bad_paths=self.bad_paths,
                               persistent_watches=self.persistent_watches)

    def operations_on_a_node(self) -> st.SearchStrategy[o.Operation]:
        """Ops that `OnExisting` points at a node the model holds (any path will do here)."""
        return zkpy_node_operations(sessions=self.sessions)

    def run(self, op: o.Operation) -> o.Outcome:
        """Run `op` on both sides and compare outcome and events; returns the outcome."""
        self.history.append(op)
        expected, expected_events = self.model.apply(op)
        counts: dict[int, int] = {}
        for slot, _, _ in expected_events:
            counts[slot] = counts.get(slot, 0) + 1
        actual = self.system.run(op)
        try:
            _same(expected, actual, self.zxids, repr(op))
            self._compare_events(op, expected_events, self.system.events(counts))
        except Mismatch as e:
            e.history = list(self.history)  # type: ignore[attr-defined]
            e.add_note("ops run: " + "; ".join(map(repr, self.history)))
            raise
        return actual

    def _compare_events(self, op: o.Operation, expected: list, actual: dict[int, list]) -> None:
        by_slot: dict[int, list] = {}
        for slot, event_type, path in expected:
            by_slot.setdefault(slot, []).append((event_type, path))
        if isinstance(op, (o.CloseSession, o.ExpireSession)):  # ephemerals go in the server's hash order
            by_slot = {s: sorted(e) for s, e in by_slot.items()}
            actual = {s: sorted(e) for s, e in actual.items()}
        for slot in sorted(set(by_slot) | set(actual)):
            if by_slot.get(slot, []) != actual.get(slot, []):
                raise Mismatch(f"{op!r}: session slot {slot} got watch events {actual.get(slot, [])}, "
                               f"ZooKeeper sends {by_slot.get(slot, [])}")

    @rule(data=st.data())
    def run_ops(self, data: st.DataObject) -> None:
        """A batch of ops per step: hypothesis's cost per step is far above an op's."""
        for op in data.draw(self._batches, label="ops"):
            for one in op.resolve(self.model) if isinstance(op, (OnExisting, WatchThenChange)) else [op]:
                self.run(one)

    def teardown(self) -> None:
        self.system.close()
