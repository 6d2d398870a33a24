"""The reference model of ZooKeeper's tree (zkpy.verify.reference) against zkpy.

In process: zkpy's pure Prep + DataTree + Final reads, many examples (the rate is printed).
Over sockets: a standalone server and a 3-member in-process ensemble through kazoo, fewer;
and Apache ZooKeeper 3.8.0 when it is installed, which checks the model itself.
And the machine must be able to fail: against trees broken on purpose it finds the bug and
shrinks it to a few ops.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from zkpy.protocol.codes import Event
from zkpy.tree import datatree
from zkpy.tree.datatree import DataTree
from zkpy.testing import InProcessEnsemble, ZkpyServer
from zkpy.testing.external import ApacheZooKeeper, apache_zookeeper_available
from zkpy.verify import (SOCKET_MODES, Mismatch, PureSystem, ReferenceMachine, ReferenceTree, ZxidOrder,
                         zkpy_operations)
from zkpy.verify import ops as o
from zkpy.verify.kazoo_system import KazooSystem

QUIET = list(HealthCheck)


def run_machine(machine: type[ReferenceMachine], examples: int, steps: int = 20, **options) -> tuple[int, float]:
    """Run `machine` for `examples` examples; returns (ops run, seconds)."""
    ops = [0]

    class Counted(machine):  # type: ignore[valid-type, misc]
        def teardown(self) -> None:
            ops[0] += len(self.history)
            super().teardown()

    start = time.perf_counter()
    run_state_machine_as_test(Counted, settings=settings(max_examples=examples, stateful_step_count=steps,
                                                         deadline=None, suppress_health_check=QUIET,
                                                         database=None, **options))
    return ops[0], time.perf_counter() - start


def test_the_pure_pipeline_agrees_with_the_model(capsys):
    examples = 150
    ops, seconds = run_machine(ReferenceMachine, examples)
    with capsys.disabled():
        print(f"\n  pure Prep + tree: {examples} examples, {ops} ops in {seconds:.1f} s: "
              f"{examples / seconds:.0f} examples/s, {ops / seconds:.0f} ops/s")
    assert ops > examples * 20  # batches of ops ran, not empty examples


# ---------------------------------------------------------------- the machine can fail


class NoNodeDeletedEvent(DataTree):
    """A tree that forgets to tell a deleted node's watchers."""

    def _delete(self, path: str, zxid: int) -> None:
        before = len(self._events)
        super()._delete(path, zxid)
        self._events[before:] = [e for e in self._events[before:] if e[1] != Event.NODE_DELETED]


def _stat_without_deletions(node: datatree.Znode) -> bytes:
    """Znode.stat reporting the stored count of child creations as cversion: deletes not counted."""
    owner = max(node.owner, 0)
    return datatree.STAT.pack(node.czxid, node.mzxid, node.ctime, node.mtime, node.version, node.cversion,
                              node.aversion, owner, len(node.data or b""), len(node.children), node.pzxid)


def _expect_mismatch(machine: type[ReferenceMachine]) -> list[o.Operation]:
    class Short(machine):  # type: ignore[valid-type, misc]
        batch = 6  # shorter examples shrink in fewer runs (derandomized: 265 and 270 runs, 3 ops each)

    with pytest.raises(Mismatch) as caught:
        run_machine(Short, examples=300, steps=10, phases=(Phase.generate, Phase.shrink), derandomize=True)
    return caught.value.history  # the shrunk counterexample's ops


def test_a_tree_that_fires_no_node_deleted_is_caught():
    class Machine(ReferenceMachine):
        def make_system(self):
            return PureSystem(self.sessions, tree_class=NoNodeDeletedEvent)

    history = _expect_mismatch(Machine)
    # the least there is: a node, a watch on it, its delete (a session end deletes an ephemeral too)
    assert len(history) <= 4, history
    assert any(getattr(op, "watch", False) for op in history), history
    assert isinstance(history[-1], (o.Delete, o.CloseSession, o.ExpireSession, o.Multi)), history


def test_a_tree_whose_cversion_ignores_deletes_is_caught(monkeypatch):
    monkeypatch.setattr(datatree.Znode, "stat", _stat_without_deletions)
    history = _expect_mismatch(ReferenceMachine)
    assert len(history) <= 4, history
    assert any(isinstance(op, (o.Delete, o.CloseSession, o.ExpireSession, o.Multi)) for op in history), history


# ---------------------------------------------------------------- the model's own facts


def test_sequential_suffixes_count_creations_and_cversion_counts_deletions_too():
    model = ReferenceTree(1)
    assert model.apply(o.Create(0, "/q/n", mode="persistent_sequential"))[0] == ("error", "NONODE")
    model.apply(o.Create(0, "/q"))
    first = model.apply(o.Create(0, "/q/n", mode="persistent_sequential"))[0][1][0]
    model.apply(o.Delete(0, first))
    (status, (second, _)) = model.apply(o.Create(0, "/q/n", mode="ephemeral_sequential"))[0]
    assert (first, second) == ("/q/n0000000000", "/q/n0000000001")
    stat = model.apply(o.Exists(0, "/q"))[0][1]
    assert (stat.cversion, stat.num_children) == (3, 1)  # two creates, one delete


def test_a_failed_multi_rolls_back_and_answers_ok_error_then_runtime_inconsistency():
    model = ReferenceTree(1)
    outcome, events = model.apply(o.Multi(0, (o.Create(0, "/x"), o.Delete(0, "/missing"), o.SetData(0, "/x"))))
    assert outcome == ("ok", [("error", "OK"), ("error", "NONODE"), ("error", "RUNTIMEINCONSISTENCY")])
    assert "/x" not in model.nodes and events == []


def test_watch_events_are_filtered_by_read_permission_and_used_up():
    model = ReferenceTree(2)
    model.apply(o.Create(0, "/p"))
    model.apply(o.Exists(1, "/p", watch=True))
    model.apply(o.SetAcl(0, "/p", o.ALICE_ONLY_ACL))
    assert model.apply(o.SetData(0, "/p", b"x"))[0] == ("error", "NOAUTH")
    model.apply(o.AddAuth(0, "alice"))
    outcome, events = model.apply(o.SetData(0, "/p", b"x"))
    assert outcome[0] == "ok" and events == []  # slot 1 may not read /p: not told
    assert "/p" not in model.data_watches  # ... and its watch is gone


# ---------------------------------------------------------------- over sockets


class OverSockets(ReferenceMachine):
    """The model against kazoo clients of a real server: creates only in the modes kazoo sends."""

    hosts: str | list[str] = ""
    expire = None
    sync_reads = False

    def operations(self):
        return zkpy_operations(sessions=self.sessions, modes=SOCKET_MODES, bad_paths=False)

    def make_system(self):
        return KazooSystem(self.hosts, self.sessions, expire=type(self).expire, sync_reads=self.sync_reads)


@pytest.fixture(scope="module")
def standalone():
    with ZkpyServer() as server:
        yield server


def test_a_standalone_server_agrees_with_the_model_over_sockets(standalone, capsys):
    class Machine(OverSockets):
        hosts = standalone.connect_string
        expire = staticmethod(standalone.expire_session)

    examples = 15
    ops, seconds = run_machine(Machine, examples, steps=8)
    with capsys.disabled():
        print(f"\n  standalone over kazoo: {examples} examples, {ops} ops in {seconds:.1f} s: {ops / seconds:.0f} ops/s")
    assert ops > examples * 5


@pytest.fixture(scope="module")
def ensemble():
    with InProcessEnsemble(3) as ens:
        ens.wait_serving()
        yield ens


def test_a_three_member_ensemble_agrees_with_the_model_over_sockets(ensemble, capsys):
    """Each session on its own member: watch events and reads cross servers (reads sync first)."""

    def expire_on_the_leader(session_id: int) -> None:
        ensemble.members[ensemble.leader()].expire_session(session_id)

    class Machine(OverSockets):
        hosts = [ensemble.address(1), ensemble.address(2)]
        expire = staticmethod(expire_on_the_leader)
        sync_reads = True

    examples = 8
    ops, seconds = run_machine(Machine, examples, steps=8)
    with capsys.disabled():
        print(f"\n  3-member ensemble over kazoo: {examples} examples, {ops} ops in {seconds:.1f} s: "
              f"{ops / seconds:.0f} ops/s")
    assert ops > examples * 5


def _run_in_order(ops: list[o.Operation], machine_class: type[ReferenceMachine] = ReferenceMachine) -> list[o.Outcome]:
    """Run `ops` on the model and zkpy's pure pipeline, compared op by op; the outcomes."""
    machine = machine_class()
    try:
        return [machine.run(op) for op in ops]
    finally:
        machine.teardown()


def test_paths_a_client_would_refuse_get_the_servers_own_answers():
    outcomes = _run_in_order([
        o.Create(0, "/a/", mode="persistent"),              # the parent /a is missing: that comes first
        o.Create(0, "/a"),
        o.Create(0, "/a/", mode="persistent"),              # now the path itself
        o.Create(0, "/a/", mode="persistent_sequential"),   # "/a/" + suffix is a good path
        o.Delete(0, "/a/."),                                # delete looks it up
        o.Exists(0, "/a//a", watch=True),                   # exists too (and watches it)
        o.SetData(0, "/a/."),                               # setData validates first
    ])
    assert [outcomes[0], outcomes[1][1][0], outcomes[2]] == [("error", "NONODE"), "/a", ("error", "BADARGUMENTS")]
    assert outcomes[3][1][0] == "/a/0000000000"
    assert outcomes[4:] == [("error", "NONODE"), ("ok", None), ("error", "BADARGUMENTS")]


def test_zxids_are_compared_by_order():
    order = ZxidOrder()
    order.pair(3, 0x100000005, "czxid")
    order.pair(7, 0x200000001, "mzxid")  # a new epoch: any larger zxid will do
    order.pair(3, 0x100000005, "pzxid")
    with pytest.raises(Mismatch, match="was 0x100000005 before"):
        order.pair(3, 0x100000006, "mzxid")  # one model zxid, two system zxids
    with pytest.raises(Mismatch, match="stands for the model's"):
        order.pair(5, 0x200000001, "pzxid")  # a zxid that did not move
    with pytest.raises(Mismatch, match="is newer than"):
        order.pair(5, 0x200000002, "mzxid")  # out of order


class StrictExists(ReferenceTree):
    """Apache ZooKeeper 3.8.4 and later: exists() on a node needs READ (ZOOKEEPER-2590)."""

    EXISTS_CHECKS_READ = True


@pytest.mark.xfail(strict=True, raises=Mismatch, reason="zkpy answers exists() as ZooKeeper 3.8.0-3.8.3 do "
                   "(and as the 3.8.0 of the differential suite): no READ check (ZOOKEEPER-2590, 3.8.4)")
def test_exists_on_an_unreadable_node_as_zookeeper_3_8_4_answers_it():
    class Machine(ReferenceMachine):
        model_class = StrictExists

    _run_in_order([o.Create(0, "/p", acl=o.ALICE_ONLY_ACL), o.Exists(1, "/p")], Machine)


def test_no_event_reaches_a_watcher_that_may_not_read_the_node():
    """Directed: random ops seldom watch a node through exists() that they may not read."""
    outcomes = _run_in_order([
        o.AddAuth(0, "alice"),
        o.Exists(1, "/p", watch=True),               # slot 1 watches a node to come...
        o.Create(0, "/p", acl=o.ALICE_ONLY_ACL),     # ...that only alice may read: no NodeCreated
        o.Exists(1, "/p", watch=True),
        o.SetData(0, "/p", b"x"),                    # no NodeDataChanged either
        o.GetChildren(1, "/", watch=True),
        o.Create(0, "/q"),                           # but the root is open: NodeChildrenChanged
    ])
    assert [kind for kind, _ in outcomes] == ["ok"] * 7


# ---------------------------------------------------------------- the model against Apache ZooKeeper


class ZooKeeper380(ReferenceTree):
    """Apache ZooKeeper 3.8.0, the one this machine has: events are not filtered by ACL yet."""

    EVENTS_NEED_READ = False


@pytest.mark.skipif(not apache_zookeeper_available(), reason="needs Debian's zookeeper.jar and java")
def test_the_model_agrees_with_apache_zookeeper(capsys):
    """The oracle checked against the reference itself, on what kazoo can send."""
    with ApacheZooKeeper() as zookeeper:
        class Machine(OverSockets):
            hosts = zookeeper.connect_string
            expire_sessions = False  # no way to expire a session of another process on demand
            model_class = ZooKeeper380

        examples = 15
        ops, seconds = run_machine(Machine, examples, steps=8)
    with capsys.disabled():
        print(f"\n  Apache ZooKeeper 3.8.0 over kazoo: {examples} examples, {ops} ops in {seconds:.1f} s")
    assert ops > examples * 5
