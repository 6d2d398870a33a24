"""The Kafka-like control plane of examples/kafka_like on zkpy, through kazoo, under faults.

Each scenario runs against a standalone in-process server, an in-process 3-member ensemble, a
3-process ensemble and Apache ZooKeeper standalone, and checks what a Kafka user relies on: one
controller acting per epoch, a leader from the ISR for every partition that has a live in-sync
replica, and nothing landing from a controller that a newer one replaced.  Broker i's session
lives on member i of an ensemble, so that cutting member i off partitions broker i alone.

Lost replies are zkpy's server-side `drop_reply()` fault (a client-side stand-in for Apache
ZooKeeper, which has no faults API).  The in-process servers run on virtual time, so a session
expiry takes no waiting and is checked against ZooKeeper's bound; the process ensemble and
Apache ZooKeeper run on real time.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.connection import ConnectionDropped
from kazoo.protocol.serialization import SetData, Transaction
from kazoo.retry import KazooRetry

from examples.kafka_like import (
    Acl,
    Broker,
    Controller,
    ControllerMoved,
    LeaderAndIsr,
    add_acls,
    create_topic,
    set_config,
    zkdata,
)
from zkpy.testing import Ensemble, InProcessEnsemble, ZkpyServer
from zkpy.testing.external import ApacheZooKeeper, apache_zookeeper_available
from zkpy.testing.faults import Injection, drop_reply
from zkpy.testing.proxy import Proxy

pytestmark = pytest.mark.timeout(120)

SESSION = 4.0  # seconds: the most tickTime=200 allows (20 ticks)
SHORT_SESSION = 2.0  # for a broker whose session a test lets expire (a wait on real time)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------- the backends


class Standalone:
    """One server (zkpy in-process on virtual time, or Apache ZooKeeper on real time); each
    broker reaches it through a proxy link of its own, which `cut` freezes (a partition between
    that broker and ZooKeeper)."""

    def __init__(self, apache: bool = False) -> None:
        self.server: ZkpyServer | ApacheZooKeeper = (ApacheZooKeeper(tick_time=200) if apache
                                                     else ZkpyServer(tick_time=200, clock="virtual")).start()
        self.virtual = isinstance(self.server, ZkpyServer)
        self.expiry_bound = 0.2  # a session ends within its timeout + 1 tickTime of its last ping
        self.proxy = Proxy()
        self.links: dict[int, int] = {}

    @property
    def connect_string(self) -> str:
        return self.server.connect_string

    def hosts(self, broker_id: int) -> str:
        if broker_id not in self.links:
            self.links[broker_id] = self.proxy.link(f"broker-{broker_id}", self.server.host, self.server.port)
        return f"127.0.0.1:{self.links[broker_id]}"

    def cut(self, broker: Broker) -> None:
        self.proxy.cut([f"broker-{broker.broker_id}"])
        if isinstance(self.server, ZkpyServer):
            # A frozen link leaves the server's end of the connection open, which virtual time
            # counts as pinging (a real server would hear no ping): close that end.  The broker
            # reconnects into the cut link and waits there.
            self.server.drop_connections(broker.zk.client_id[0])

    def heal(self) -> None:
        self.proxy.heal()

    def hosts_apart_from(self, broker: Broker) -> str:
        return self.server.connect_string  # the observer's way in is never cut

    def session_timeout(self, broker: Broker) -> float:
        return self.server.sessions()[broker.zk.client_id[0]].timeout_ms / 1000  # type: ignore[union-attr]

    def advance(self, seconds: float) -> None:
        self.server.advance(seconds)  # type: ignore[union-attr]

    @contextlib.contextmanager
    def lose_reply(self, path: str, client: KazooClient) -> Iterator[Injection | LostReplies]:
        if isinstance(self.server, ZkpyServer):
            with self.server.faults.inject(drop_reply(), op="multi", path=path, count=1) as fault:
                yield fault
        else:
            with lost_reply_on_the_client(client, path) as lost:
                yield lost

    def close(self) -> None:
        self.proxy.close()
        self.server.stop()


class Members:
    """A proxied 3-member ensemble (in-process on virtual time, or processes on real time);
    broker i talks to member i, and `cut` isolates that member from the other two."""

    def __init__(self, ensemble: Ensemble) -> None:
        self.ensemble = ensemble.start()
        self.virtual = getattr(ensemble, "clock", None) is not None
        # The leader hears of a follower's sessions on the follower's next tick: + 2 tickTimes.
        self.expiry_bound = 2 * ensemble.tick_time / 1000

    @property
    def connect_string(self) -> str:
        return self.ensemble.connect_string

    def hosts(self, broker_id: int) -> str:
        return self.ensemble.address(broker_id)

    def cut(self, broker: Broker) -> None:
        if self.virtual:
            # Isolating the leader would start with an election, whose time the bound leaves out.
            assert self.ensemble.leader() != broker.broker_id, "the scenario isolates a follower"
        self.ensemble.isolate(broker.broker_id)

    def heal(self) -> None:
        self.ensemble.heal()
        if self.virtual:
            self.ensemble.wait_serving()  # the isolated member rejoins on the clock

    def hosts_apart_from(self, broker: Broker) -> str:
        return ",".join(self.ensemble.address(sid) for sid in self.ensemble.ids if sid != broker.broker_id)

    def session_timeout(self, broker: Broker) -> float:
        leader = self.ensemble.leader()
        return self.ensemble.sessions(leader)[broker.zk.client_id[0]].timeout_ms / 1000  # type: ignore[attr-defined]

    def advance(self, seconds: float) -> None:
        self.ensemble.advance(seconds)  # type: ignore[attr-defined]

    def lose_reply(self, path: str, client: KazooClient) -> Injection:
        """Broker i's requests reach member i only, so only that member's copy of the rule fires."""
        return self.ensemble.faults.inject(drop_reply(), op="multi", path=path, count=1)

    def close(self) -> None:
        self.ensemble.stop()


def registrations(observer: Observer) -> dict[int, int]:
    """Broker id -> the session that owns its registration."""
    owners = {b: observer.exists(zkdata.broker_path(b)) for b in live_brokers(observer)}
    return {b: stat.ephemeralOwner for b, stat in owners.items() if stat is not None}


def expire(cluster: Standalone | Members, broker: Broker, observer: Observer) -> None:
    """End the broker's session the way ZooKeeper does: cut it off until its timeout passes.

    On virtual time the servers' clock moves while the brokers' kazoo stays in real time: the
    session must outlive half its timeout and be gone within ZooKeeper's bound, and the
    other brokers, whose connections stay open, keep their sessions.  On
    real time (Apache ZooKeeper, server processes) the test waits one session timeout."""
    if not cluster.virtual:
        cluster.cut(broker)
        try:
            wait_for(lambda: observer.exists(zkdata.broker_path(broker.broker_id)) is None,
                     f"broker {broker.broker_id}'s session to expire")
        finally:
            cluster.heal()
        return
    before = registrations(observer)
    assert broker.broker_id in before
    timeout = cluster.session_timeout(broker)
    # Read on the majority side: a cut-off member still answers reads (its state is stale), and
    # a sync through it would wait for a leader it hears of only once the clock moves.
    with observing(cluster.hosts_apart_from(broker)) as majority:
        cluster.cut(broker)
        try:
            cluster.advance(timeout / 2)
            assert registrations(majority) == before, f"broker {broker.broker_id} expired before its timeout"
            cluster.advance(timeout / 2 + cluster.expiry_bound)
            assert registrations(majority) == {b: s for b, s in before.items() if b != broker.broker_id}, \
                f"broker {broker.broker_id} not expired within {timeout} s + {cluster.expiry_bound} s, or another was"
        finally:
            cluster.heal()


@pytest.fixture(params=["standalone", "inprocess-3", "processes-3", "apache-standalone"])
def cluster(request) -> Iterator[Standalone | Members]:
    """The scenarios against Apache ZooKeeper show that what they expect is ZooKeeper's."""
    if request.param == "apache-standalone" and not apache_zookeeper_available():
        message = "Apache ZooKeeper 3.8 is not installed: apt-get install zookeeper zookeeper-bin"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if request.param.endswith("standalone"):
        c: Standalone | Members = Standalone(apache=request.param.startswith("apache"))
    elif request.param == "inprocess-3":
        c = Members(InProcessEnsemble(3, proxied=True, clock="virtual"))
    else:
        c = Members(Ensemble(3, proxied=True))
    try:
        yield c
    finally:
        c.close()


class Observer:
    """What an operator (or a Kafka tool) sees: a client whose every call is retried across
    connection losses, since the member it is on may be the one a test cuts off."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable:
        method = getattr(self.client, name)
        return lambda *args, **kwargs: self.client.retry(method, *args, **kwargs)

    def synced_children(self, path: str) -> list[str]:
        """The children as of now: a read alone may come from a member that has not applied a
        write another client was just told succeeded (ZooKeeper's reads are only sequentially
        consistent); a sync first makes it linearizable."""
        self.client.retry(self.client.sync, path)
        return self.client.retry(self.client.get_children, path)


@contextlib.contextmanager
def observing(hosts: str) -> Iterator[Observer]:
    retry = {"max_tries": -1, "delay": 0.05, "max_delay": 0.5, "deadline": 30}
    client = KazooClient(hosts=hosts, timeout=SESSION, connection_retry=KazooRetry(**retry),
                         command_retry=KazooRetry(**retry))
    client.start(30)
    try:
        yield Observer(client)
    finally:
        client.stop()
        client.close()


@pytest.fixture
def observer(cluster) -> Iterator[Observer]:
    with observing(cluster.connect_string) as observer:
        yield observer


@pytest.fixture
def start_broker(cluster) -> Iterator[Callable[..., Broker]]:
    brokers: list[Broker] = []

    def start(broker_id: int, start: bool = True, **options) -> Broker:
        options.setdefault("session_timeout", SESSION)
        broker = Broker(broker_id, cluster.hosts(broker_id), **options)
        brokers.append(broker)
        return broker.start() if start else broker

    yield start
    for broker in brokers:
        broker.stop()


# ---------------------------------------------------------------- reading the cluster


def controller(observer: Observer) -> tuple[int, int] | None:
    """(broker id, epoch) of the registered controller, or None."""
    try:
        data, _ = observer.get(zkdata.CONTROLLER)
    except NoNodeError:
        return None
    return zkdata.decode_controller(data), zkdata.decode_epoch(observer.get(zkdata.CONTROLLER_EPOCH)[0])


def states(observer: Observer, topic: str) -> dict[int, tuple[LeaderAndIsr, int]]:
    out = {}
    for p in zkdata.decode_assignment(observer.get(zkdata.topic_path(topic))[0]):
        try:
            data, stat = observer.get(zkdata.state_path(topic, p))
        except NoNodeError:
            continue
        out[p] = (LeaderAndIsr.decode(data), stat.version)
    return out


def live_brokers(observer: Observer) -> set[int]:
    return {int(b) for b in observer.get_children(zkdata.BROKER_IDS)}


def start_cluster(start_broker, observer: Observer, ids=(1, 2, 3),
                  options: dict[int, dict] | None = None) -> dict[int, Broker]:
    """Broker ids[0] first, so that it is the controller (epoch 1), then the others."""
    options = options or {}
    first = start_broker(ids[0], **options.get(ids[0], {}))
    wait_for(lambda: first.controller.active, f"broker {ids[0]} to become the controller")
    brokers = {ids[0]: first}
    for i in ids[1:]:
        brokers[i] = start_broker(i, **options.get(i, {}))
    wait_for(lambda: live_brokers(observer) == set(ids), f"brokers {ids} registered")
    return brokers


def create_and_wait(observer: Observer, topic: str, partitions: int = 1, replication: int = 1,
                    assignment: dict[int, list[int]] | None = None) -> dict[int, list[int]]:
    assignment = create_topic(observer.client, topic, partitions, replication, assignment=assignment)
    wait_for(lambda: len(states(observer, topic)) == len(assignment), f"{topic}'s partition states")
    return assignment


def assert_invariants(observer: Observer, brokers: dict[int, Broker], topics: list[str]) -> None:
    """What Kafka users rely on, read from ZooKeeper and from the controllers' own records."""
    acting: dict[int, set[int]] = {}
    for broker in brokers.values():
        for epoch, _ in broker.controller.landed:
            acting.setdefault(epoch, set()).add(broker.broker_id)
    assert all(len(ids) == 1 for ids in acting.values()), f"several controllers acted in one epoch: {acting}"
    current = controller(observer)
    assert current is not None
    live = live_brokers(observer)
    for topic in topics:
        for p, (state, _) in states(observer, topic).items():
            assert state.controller_epoch <= current[1]
            if set(state.isr) & live:
                assert state.leader in state.isr and state.leader in live, \
                    f"{topic}-{p} has no live leader from its ISR: {state}, live {live}"


def settled(observer: Observer, topic: str, want: Callable[[dict], bool]) -> Callable[[], bool]:
    return lambda: want(states(observer, topic))


# ---------------------------------------------------------------- 1. election and topics


def test_brokers_register_elect_a_controller_and_topics_get_leaders(cluster, observer, start_broker):
    brokers = start_cluster(start_broker, observer)
    assert controller(observer) == (1, 1)
    registration = zkdata.decode_broker(observer.get(zkdata.broker_path(2))[0])
    assert registration["endpoints"] == ["PLAINTEXT://127.0.0.1:9094"]
    assert (registration["host"], registration["port"], registration["version"]) == ("127.0.0.1", 9094, 5)
    assert observer.exists(zkdata.broker_path(2)).ephemeralOwner == brokers[2].zk.client_id[0]
    assert len({b.cluster_id for b in brokers.values()}) == 1
    assert zkdata.decode_cluster_id(observer.get(zkdata.CLUSTER_ID)[0]) == brokers[1].cluster_id

    assignment = create_and_wait(observer, "orders", 6, 3)
    for p, (state, version) in states(observer, "orders").items():
        # Every replica is alive: the first (preferred) one leads and all are in sync.
        assert state == LeaderAndIsr(assignment[p][0], 0, tuple(assignment[p]), 1)
        assert version == 0
    assert {p: r[0] for p, r in assignment.items()} == {0: 1, 1: 2, 2: 3, 3: 1, 4: 2, 5: 3}
    assert_invariants(observer, brokers, ["orders"])


def test_isr_config_and_acl_changes_reach_the_controller(cluster, observer, start_broker):
    brokers = start_cluster(start_broker, observer)
    create_and_wait(observer, "orders", 3, 3)
    ctl = brokers[1].controller

    # The leader of orders-1 (broker 2) drops broker 1 from its ISR and notifies the controller.
    brokers[2].shrink_isr("orders", 1, [2, 3])
    wait_for(lambda: not observer.synced_children(zkdata.ISR_CHANGES), "the ISR change to be consumed")
    brokers[1].events.drain()
    assert ctl.states[("orders", 1)] == (LeaderAndIsr(2, 0, (2, 3), 1), 1)

    set_config(observer.client, "topics", "orders", {"retention.ms": "60000"})
    set_config(observer.client, "clients", "app", {"producer_byte_rate": "1024"})
    wait_for(lambda: not observer.synced_children(zkdata.CONFIG_CHANGES), "the config changes to be consumed")
    brokers[1].events.drain()
    assert ctl.configs[("topics", "orders")] == {"retention.ms": "60000"}
    assert ctl.configs[("clients", "app")] == {"producer_byte_rate": "1024"}

    add_acls(observer.client, "Topic", "orders", [Acl("User:alice", "Read")])
    merged = add_acls(observer.client, "Topic", "orders", [Acl("User:bob", "Write"), Acl("User:alice", "Read")])
    assert merged == [Acl("User:alice", "Read"), Acl("User:bob", "Write")]
    assert zkdata.decode_acls(observer.get(zkdata.acl_path("Topic", "orders"))[0]) == merged
    assert observer.get(zkdata.ACL_CHANGES + "/" + observer.get_children(zkdata.ACL_CHANGES)[0])[0] == b"Topic:orders"
    assert_invariants(observer, brokers, ["orders"])


# ---------------------------------------------------------------- 2. a broker dies


def assert_left_the_isrs(before: dict, after: dict, dead: int) -> None:
    """The dead broker's partitions: a new leader from the rest of the ISR (or none left), the
    leader epoch up by exactly one; every other partition as it was."""
    for p, (old, _) in before.items():
        new, _ = after[p]
        if dead not in old.isr:
            assert new == old
            continue
        rest = tuple(r for r in old.isr if r != dead)
        if old.leader != dead:
            assert new == LeaderAndIsr(old.leader, old.leader_epoch + 1, rest, old.controller_epoch)
        elif rest:
            assert new == LeaderAndIsr(rest[0], old.leader_epoch + 1, rest, old.controller_epoch)
        else:  # no unclean election: offline until its last in-sync replica returns
            assert new == LeaderAndIsr(zkdata.NO_LEADER, old.leader_epoch + 1, old.isr, old.controller_epoch)


def test_dead_brokers_partitions_get_leaders_from_the_isr(cluster, observer, start_broker):
    brokers = start_cluster(start_broker, observer)
    create_and_wait(observer, "orders", 6, 2)  # broker 2 is in orders-0, 1, 4 and 5
    before = states(observer, "orders")
    brokers[2].stop()
    wait_for(settled(observer, "orders", lambda now: all(2 not in s.isr for s, _ in now.values())),
             "broker 2 to leave every ISR")
    assert_left_the_isrs(before, states(observer, "orders"), 2)
    assert_invariants(observer, brokers, ["orders"])


# ---------------------------------------------------------------- 3 and 4. fencing


def zombie_write_is_rejected(observer: Observer, old: Controller, partition: tuple[str, int], leader: int) -> None:
    """The replaced controller, still believing it leads (its event thread was stalled), acts on
    its cached state: nothing it writes may land."""
    path = zkdata.state_path(*partition)
    before = observer.get(path)
    assert old.active and old.states[partition][1] == before[1].version, "the zombie's cache is current"
    try:
        old.move_leader(partition, leader)
        fenced = False
    except ControllerMoved:
        fenced = True
    observer.sync(path)
    assert observer.get(path) == before, "a write of a replaced controller landed"
    assert fenced, "the replaced controller was not told that it is fenced"


def replaced_controller(cluster, observer, start_broker, controller_class: type[Controller] = Controller) -> None:
    brokers = start_cluster(start_broker, observer, options={
        i: {"session_timeout": SHORT_SESSION, "controller_class": controller_class} for i in (1, 2, 3)})
    create_and_wait(observer, "orders", 3, 3)
    create_and_wait(observer, "quiet", assignment={0: [2, 3]})  # the takeover leaves it alone
    old, session = brokers[1], brokers[1].zk.client_id[0]
    old.events.pause()  # a long GC pause: its session ends before it acts again
    expire(cluster, old, observer)
    wait_for(lambda: (controller(observer) or (0, 0))[1] == 2, "a new controller with epoch 2")
    new_id, _ = controller(observer)
    assert new_id in (2, 3)
    # The znode is visible before the winner has read its own election's reply.
    wait_for(lambda: brokers[new_id].controller.epoch == 2, f"broker {new_id} to know it won epoch 2")
    wait_for(lambda: old.zk.connected and old.zk.client_id[0] != session, "the old controller's new session")
    zombie_write_is_rejected(observer, old.controller, ("quiet", 0), 3)

    old.events.resume()  # it learns of its lost session, resigns and registers again
    wait_for(lambda: 1 in live_brokers(observer), "broker 1 to register again")
    old.events.drain()
    assert not old.controller.active and controller(observer) == (new_id, 2)
    assert_invariants(observer, brokers, ["orders", "quiet"])


def test_new_controller_fences_the_old_one(cluster, observer, start_broker):
    replaced_controller(cluster, observer, start_broker)


def test_partitioned_controller_is_fenced(cluster, observer, start_broker):
    brokers = start_cluster(start_broker, observer, options={1: {"session_timeout": SHORT_SESSION}})
    create_and_wait(observer, "quiet", assignment={0: [2, 3]})
    old, session = brokers[1], brokers[1].zk.client_id[0]
    old.events.pause()  # it still believes it leads when it comes back
    timeout = cluster.session_timeout(old) if cluster.virtual else None
    cluster.cut(old)
    try:
        if timeout is not None:  # on real time, it passes in the wait below
            cluster.advance(timeout + cluster.expiry_bound)
        wait_for(lambda: (controller(observer) or (0, 0))[1] == 2, "a controller with epoch 2 on the majority side")
    finally:
        cluster.heal()
    wait_for(lambda: old.zk.connected and old.zk.client_id[0] != session, "the old controller's new session")
    zombie_write_is_rejected(observer, old.controller, ("quiet", 0), 3)
    old.events.resume()
    wait_for(lambda: 1 in live_brokers(observer), "broker 1 to register again")
    old.events.drain()
    assert not old.controller.active
    assert_invariants(observer, brokers, ["quiet"])


# ---------------------------------------------------------------- 5. a lost reply


class LostReplies:
    """The client-side stand-in's count of replies it lost (an Injection's `fired`)."""

    fired = 0


def _writes(request: object, path: str) -> bool:
    if isinstance(request, SetData):
        return request.path == path
    return isinstance(request, Transaction) and any(
        isinstance(op, SetData) and op.path == path for op in request.operations)


@contextlib.contextmanager
def lost_reply_on_the_client(client: KazooClient, path: str) -> Iterator[LostReplies]:
    """For Apache ZooKeeper, which has no faults on demand: the client loses the reply to the
    next successful write it makes to `path` (a setData, or a multi holding one), as zkpy's
    drop_reply() does on the server: the write committed, the connection drops before the
    answer is read, the caller gets ConnectionLoss and kazoo reconnects with the same session."""
    handler = client._connection
    read_response = handler._read_response
    lost = LostReplies()

    def drop_after_commit(header, buffer, offset):
        request = client._pending[0][0] if client._pending else None
        if not lost.fired and header.err == 0 and _writes(request, path) and not (
                isinstance(request, Transaction)
                and any(isinstance(r, Exception) for r in request.deserialize(buffer, offset))):
            lost.fired += 1
            raise ConnectionDropped("test fault: the reply to a committed write is lost")
        return read_response(header, buffer, offset)

    handler._read_response = drop_after_commit
    try:
        yield lost
    finally:
        del handler._read_response  # the class's method again


def lost_reply_retried(cluster, observer, start_broker, controller_class: type[Controller] = Controller) -> None:
    brokers = start_cluster(start_broker, observer, options={1: {"controller_class": controller_class}})
    create_and_wait(observer, "orders", 3, 3)
    ctl = brokers[1].controller
    path = zkdata.state_path("orders", 1)
    before, version = states(observer, "orders")[1]
    assert before == LeaderAndIsr(2, 0, (2, 3, 1), 1)
    # The controller's write of orders-1 is a multi of check /controller_epoch + setData.
    with cluster.lose_reply(path, brokers[1].zk) as lost:
        brokers[2].stop()  # the controller moves orders-1 to broker 3: that write's reply is lost
        wait_for(lambda: lost.fired, "the reply to the write of orders-1 to be lost")
        brokers[1].events.drain()  # the controller is done with broker 2's death
    assert ctl.active and controller(observer) == (1, 1), "the controller took its own write for a rival's"
    wait_for(settled(observer, "orders", lambda now: all(2 not in s.isr for s, _ in now.values())),
             "broker 2 to leave every ISR")
    after, new_version = states(observer, "orders")[1]
    assert after == LeaderAndIsr(3, 1, (3, 1), 1)
    assert new_version == version + 1, "written more than once"
    assert ctl.states[("orders", 1)] == (after, new_version)

    before = states(observer, "orders")
    brokers[3].stop()  # still in charge: the next death is handled too
    wait_for(settled(observer, "orders", lambda now: all(3 not in s.isr for s, _ in now.values())),
             "broker 3 to leave every ISR", timeout=15)
    assert_left_the_isrs(before, states(observer, "orders"), 3)
    assert_invariants(observer, brokers, ["orders"])


def test_lost_reply_to_a_state_write_is_retried(cluster, observer, start_broker):
    lost_reply_retried(cluster, observer, start_broker)


def test_lost_reply_to_the_election_is_checked(cluster, observer, start_broker):
    """The winner whose election reply was lost finds out that it won (Kafka's
    checkControllerAndEpoch) rather than waiting forever behind its own /controller."""
    first = start_broker(1, start=False)
    # The election is a multi of create /controller + setData /controller_epoch.
    with cluster.lose_reply(zkdata.CONTROLLER_EPOCH, first.zk) as lost:
        first.start()
        wait_for(lambda: first.controller.active, "broker 1 to learn that it won")
    assert lost.fired == 1 and controller(observer) == (1, 1) and first.controller.epoch == 1
    brokers = {1: first, 2: start_broker(2), 3: start_broker(3)}
    wait_for(lambda: live_brokers(observer) == {1, 2, 3}, "three brokers")
    create_and_wait(observer, "orders", 3, 3)
    assert_invariants(observer, brokers, ["orders"])


# ---------------------------------------------------------------- 6. session expiry


def test_expired_broker_loses_leadership_until_it_returns(cluster, observer, start_broker):
    brokers = start_cluster(start_broker, observer, options={2: {"session_timeout": SHORT_SESSION}})
    create_and_wait(observer, "orders", 3, 2)  # [1, 2], [2, 3], [3, 1]
    create_and_wait(observer, "solo", assignment={0: [2]})
    before = {**states(observer, "orders"), "solo": states(observer, "solo")[0]}
    hung, session = brokers[2], brokers[2].zk.client_id[0]
    hung.events.pause()  # hung: it neither acts nor registers again until resumed
    expire(cluster, hung, observer)
    wait_for(lambda: states(observer, "solo")[0][0].leader == zkdata.NO_LEADER, "solo-0 to go offline")
    wait_for(settled(observer, "orders", lambda now: all(2 not in s.isr for s, _ in now.values())),
             "broker 2 to leave every ISR")
    after = {**states(observer, "orders"), "solo": states(observer, "solo")[0]}
    assert_left_the_isrs(before, after, 2)
    assert_invariants(observer, brokers, ["orders", "solo"])

    hung.events.resume()  # back, with a new session: it registers again
    wait_for(lambda: 2 in live_brokers(observer), "broker 2 to register again")
    assert observer.exists(zkdata.broker_path(2)).ephemeralOwner == hung.zk.client_id[0] != session
    wait_for(lambda: states(observer, "solo")[0][0].leader == 2, "solo-0 back online")
    assert states(observer, "solo")[0][0] == LeaderAndIsr(2, 2, (2,), 1)
    # orders: broker 2 rejoins an ISR only when a leader adds it back (once it has caught up).
    assert all(2 not in s.isr for s, _ in states(observer, "orders").values())
    assert_invariants(observer, brokers, ["orders", "solo"])


# ---------------------------------------------------------------- the checks catch broken controllers


class UnfencedController(Controller):
    """Broken on purpose: its writes check /controller_epoch at version -1, which matches any."""

    @property
    def fence_version(self) -> int:
        return -1


class CredulousController(Controller):
    """Broken on purpose: after a lost reply it takes the state it reads back for a newer
    controller's write, without comparing it with its own, and steps down."""

    def _read_back(self, partition, state):
        raise ControllerMoved(f"someone else wrote {partition}")


@pytest.mark.parametrize("cluster", ["standalone"], indirect=True)
@pytest.mark.parametrize("scenario, broken, failure", [
    (replaced_controller, UnfencedController, "a write of a replaced controller landed"),
    (lost_reply_retried, CredulousController, "the controller took its own write for a rival's"),
], ids=["unfenced", "credulous"])
def test_the_scenarios_catch_a_broken_controller(cluster, observer, start_broker, scenario, broken, failure):
    with pytest.raises(AssertionError, match=failure):
        scenario(cluster, observer, start_broker, broken)
