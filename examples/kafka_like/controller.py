"""Kafka's (pre-KRaft) controller on ZooKeeper: election, epoch fencing, partition leadership.

- Election: the broker that creates the ephemeral /controller wins, and in the same multi bumps
  /controller_epoch with its expected version (Kafka's
  registerControllerAndIncrementControllerEpoch).  The epoch znode's new version is the
  controller's fence: **every** later write is a multi that first checks it, so a controller
  that was replaced (its session expired during a pause or a partition) has nothing land.
- Leadership: a partition's leader is the first live member of its ISR; when a broker dies
  its partitions get a leader from the remaining ISR with leader_epoch + 1, or NO_LEADER when
  none of the ISR is alive (no unclean election), until one comes back.
- Partition state znodes are written with the version last read (conditional setData).  A write
  whose reply is lost (ConnectionLoss) may or may not have happened: the controller reads the
  znode back and compares the data with what it wrote before it decides (as Kafka's
  `checkLeaderAndIsrZkData` does); a BadVersion after such a retry is usually its own write.
- ISR changes made by partition leaders and config changes reach it as sequential
  notification znodes, which it reads and deletes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kazoo.client import KazooClient, TransactionRequest
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
)

from . import zkdata
from .events import EventQueue
from .zkdata import LeaderAndIsr

log = logging.getLogger(__name__)

Partition = tuple[str, int]
MAX_ATTEMPTS = 10


class ControllerMoved(Exception):
    """A newer controller exists: this one's epoch check failed and nothing it wrote landed."""


class StateChanged(Exception):
    """A partition's state is not what this controller last read; re-read and decide again."""


class Controller:
    def __init__(self, zk: KazooClient, broker_id: int, events: EventQueue) -> None:
        self.zk = zk
        self.broker_id = broker_id
        self.events = events
        self.epoch: int | None = None  # set while this broker is the active controller
        self.epoch_zk_version: int | None = None
        self.live: set[int] = set()
        self.assignments: dict[str, dict[int, list[int]]] = {}
        self.states: dict[Partition, tuple[LeaderAndIsr, int]] = {}  # with the znode version
        self.configs: dict[tuple[str, str], dict[str, str]] = {}
        self.landed: list[tuple[int, str]] = []  # (epoch, path) of each write that landed, for tests

    @property
    def active(self) -> bool:
        return self.epoch is not None

    # ------------------------------------------------------------ election

    def elect(self) -> None:
        """Become the controller if there is none; watch /controller in any case."""
        if self.active:
            return
        if self.zk.retry(self.zk.exists, zkdata.CONTROLLER, watch=self._on_controller_event) is not None:
            return  # someone leads; the watch brings us back when /controller goes
        epoch, version = self._read_epoch()
        t = self.zk.transaction()
        t.create(zkdata.CONTROLLER, zkdata.encode_controller(self.broker_id, _now_ms()), ephemeral=True)
        t.set_data(zkdata.CONTROLLER_EPOCH, zkdata.encode_epoch(epoch + 1), version)
        try:
            results = t.commit()
        except (ConnectionLoss, SessionExpiredError):
            results = None  # lost reply: find out below whether it happened
        if results is not None and not any(isinstance(r, Exception) for r in results):
            self._take_over(epoch + 1, results[1].version)
        else:
            self._check_elected(epoch + 1)

    def _read_epoch(self) -> tuple[int, int]:
        try:
            data, stat = self.zk.retry(self.zk.get, zkdata.CONTROLLER_EPOCH)
            return zkdata.decode_epoch(data), stat.version
        except NoNodeError:
            try:
                self.zk.retry(self.zk.create, zkdata.CONTROLLER_EPOCH, zkdata.encode_epoch(0))
            except NodeExistsError:
                pass
            return self._read_epoch()

    def _check_elected(self, epoch: int) -> None:
        """Our election multi failed or lost its reply: did we win anyway (Kafka's checkControllerAndEpoch)?"""
        try:
            data, stat = self.zk.retry(self.zk.get, zkdata.CONTROLLER)
        except NoNodeError:
            self.submit(self.elect)  # nobody leads: try again
            return
        if zkdata.decode_controller(data) != self.broker_id or stat.ephemeralOwner != self.zk.client_id[0]:
            return  # another broker won; our watch on /controller is set
        data, stat = self.zk.retry(self.zk.get, zkdata.CONTROLLER_EPOCH)
        if zkdata.decode_epoch(data) == epoch:
            self._take_over(epoch, stat.version)

    def _on_controller_event(self, _event: object) -> None:
        self.submit(self.elect)

    def submit(self, handler: Callable[[], None]) -> None:
        """Queue a handler on the broker's event thread."""
        self.events.put(self._guarded, handler)

    def _guarded(self, handler: Callable[[], None]) -> None:
        """Run an event's handler; a fenced write means a newer controller: step down."""
        try:
            handler()
        except ControllerMoved as e:
            log.info("%s", e)
            self.resign()
            self.submit(self.elect)

    def _take_over(self, epoch: int, epoch_zk_version: int) -> None:
        """Kafka's onControllerFailover: load the cluster, then repair every partition."""
        log.info("broker %d is the controller, epoch %d", self.broker_id, epoch)
        self.epoch, self.epoch_zk_version = epoch, epoch_zk_version
        self.assignments.clear()
        self.states.clear()
        self._read_brokers()
        self._read_topics()
        self.on_isr_change()
        self.on_config_change()
        self._repair(list(self.states) + self._partitions_without_state())

    def resign(self) -> None:
        """Forget the controller role (our session is gone, or a newer controller fenced us)."""
        if self.active:
            log.info("broker %d resigns as controller of epoch %s", self.broker_id, self.epoch)
        self.epoch = self.epoch_zk_version = None

    # ------------------------------------------------------------ fenced writes

    @property
    def fence_version(self) -> int:
        """The /controller_epoch version every write of ours checks."""
        assert self.epoch_zk_version is not None
        return self.epoch_zk_version

    def fenced(self, add_ops: Callable[[TransactionRequest], None], what: str) -> list:
        """Run add_ops' writes in one multi behind a check of our epoch's znode version."""
        if not self.active:
            raise ControllerMoved(f"broker {self.broker_id} is not the controller")
        t = self.zk.transaction()
        t.check(zkdata.CONTROLLER_EPOCH, self.fence_version)
        add_ops(t)
        results = t.commit()
        failed = [(i, r) for i, r in enumerate(results)
                  if isinstance(r, Exception) and not isinstance(r, (RolledBackError, RuntimeInconsistency))]
        if failed and failed[0][0] == 0:
            raise ControllerMoved(f"epoch {self.epoch} of broker {self.broker_id} is stale: {failed[0][1]!r}")
        if failed:
            raise failed[0][1]
        self.landed.append((self.epoch, what))
        return results[1:]

    def write_state(self, partition: Partition, state: LeaderAndIsr, expected_version: int) -> int:
        """Write a partition's state if its znode still has expected_version (-1: create it);
        returns the new version.  Raises StateChanged when someone else changed it."""
        topic, p = partition
        path = zkdata.state_path(topic, p)

        def ops(t: TransactionRequest) -> None:
            if expected_version < 0:
                if not self.zk.retry(self.zk.exists, zkdata.partitions_path(topic)):
                    t.create(zkdata.partitions_path(topic))
                if not self.zk.retry(self.zk.exists, zkdata.partition_path(topic, p)):
                    t.create(zkdata.partition_path(topic, p))
                t.create(path, state.encode())
            else:
                t.set_data(path, state.encode(), expected_version)

        try:
            self.fenced(ops, path)
            return expected_version + 1  # a created znode has version 0
        except (ConnectionLoss, SessionExpiredError, BadVersionError, NodeExistsError):
            # The write may have landed (a lost reply, or a retry of one): look before deciding.
            return self._read_back(partition, state)

    def _read_back(self, partition: Partition, state: LeaderAndIsr) -> int:
        try:
            data, stat = self.zk.retry(self.zk.get, zkdata.state_path(*partition))
        except NoNodeError:
            raise StateChanged(partition) from None
        if LeaderAndIsr.decode(data) == state:
            self.landed.append((state.controller_epoch, zkdata.state_path(*partition)))
            return stat.version  # ours: the reply was lost, the write was not
        raise StateChanged(partition)

    # ------------------------------------------------------------ reading the cluster

    def _read_brokers(self) -> None:
        ids = self.zk.retry(self.zk.get_children, zkdata.BROKER_IDS, watch=self._on_brokers_event)
        self.live = {int(i) for i in ids}

    def _read_topics(self) -> list[str]:
        """Load topics we have not seen; returns them."""
        topics = self.zk.retry(self.zk.get_children, zkdata.BROKER_TOPICS, watch=self._on_topics_event)
        new = [t for t in topics if t not in self.assignments]
        for topic in new:
            data, _ = self.zk.retry(self.zk.get, zkdata.topic_path(topic))
            self.assignments[topic] = zkdata.decode_assignment(data)
            for p in self.assignments[topic]:
                self._refresh(topic, p)
        return new

    def _refresh(self, topic: str, p: int) -> None:
        try:
            data, stat = self.zk.retry(self.zk.get, zkdata.state_path(topic, p))
            self.states[(topic, p)] = (LeaderAndIsr.decode(data), stat.version)
        except NoNodeError:
            self.states.pop((topic, p), None)

    def _partitions_without_state(self) -> list[Partition]:
        return [(t, p) for t, a in self.assignments.items() for p in a if (t, p) not in self.states]

    # ------------------------------------------------------------ reacting to changes

    def _on_brokers_event(self, _event: object) -> None:
        self.submit(self.on_broker_change)

    def _on_topics_event(self, _event: object) -> None:
        self.submit(self.on_topic_change)

    def _on_isr_event(self, _event: object) -> None:
        self.submit(self.on_isr_change)

    def _on_config_event(self, _event: object) -> None:
        self.submit(self.on_config_change)

    def on_broker_change(self) -> None:
        if self.active:
            self._read_brokers()
            self._repair(list(self.states) + self._partitions_without_state())

    def on_topic_change(self) -> None:
        if self.active:
            new = self._read_topics()
            self._repair([(t, p) for t in new for p in self.assignments[t]])

    def on_isr_change(self) -> None:
        """Partition leaders changed ISRs: re-read those states, then drop the notifications."""
        if not self.active:
            return
        for child in sorted(self.zk.retry(self.zk.get_children, zkdata.ISR_CHANGES, watch=self._on_isr_event)):
            path = f"{zkdata.ISR_CHANGES}/{child}"
            try:
                data, _ = self.zk.retry(self.zk.get, path)
            except NoNodeError:
                continue
            for topic, p in zkdata.decode_isr_change(data):
                self._refresh(topic, p)
            self._delete(path)

    def on_config_change(self) -> None:
        """Apply entity config changes (topics, clients, users), then drop the notifications."""
        if not self.active:
            return
        for child in sorted(self.zk.retry(self.zk.get_children, zkdata.CONFIG_CHANGES, watch=self._on_config_event)):
            path = f"{zkdata.CONFIG_CHANGES}/{child}"
            try:
                data, _ = self.zk.retry(self.zk.get, path)
                entity = zkdata.decode_config_change(data)
                config, _ = self.zk.retry(self.zk.get, zkdata.config_path(*entity))
                self.configs[entity] = zkdata.decode_config(config)
            except NoNodeError:
                pass
            self._delete(path)

    def _delete(self, path: str) -> None:
        try:
            self.fenced(lambda t: t.delete(path), path)
        except NoNodeError:
            pass

    # ------------------------------------------------------------ leadership

    def move_leader(self, partition: Partition, leader: int) -> LeaderAndIsr:
        """Make an in-sync replica the partition's leader (Kafka's preferred-replica election)."""

        def decide(current: LeaderAndIsr | None) -> LeaderAndIsr | None:
            if current is None or leader not in current.isr or leader not in self.live:
                raise ValueError(f"{leader} is not a live in-sync replica of {partition}: {current}")
            if current.leader == leader:
                return None
            return LeaderAndIsr(leader, current.leader_epoch + 1, current.isr, self.epoch)

        self._settle(partition, decide)
        return self.states[partition][0]

    def _repair(self, partitions: list[Partition]) -> None:
        for partition in partitions:
            self._settle(partition, lambda current, p=partition: self.desired(p, current))

    def _settle(self, partition: Partition, decide: Callable[[LeaderAndIsr | None], LeaderAndIsr | None]) -> None:
        """Write the state `decide` wants from the one we know; if the znode changed meanwhile,
        re-read it and decide again."""
        for _ in range(MAX_ATTEMPTS):
            current, version = self.states.get(partition, (None, -1))
            state = decide(current)
            if state is None:
                return
            try:
                self.states[partition] = (state, self.write_state(partition, state, version))
                return
            except StateChanged:
                self._refresh(*partition)
        raise RuntimeError(f"partition {partition} kept changing under the controller")

    def desired(self, partition: Partition, current: LeaderAndIsr | None) -> LeaderAndIsr | None:
        """The state this controller wants for a partition given the live brokers; None: leave it."""
        assert self.epoch is not None
        live = self.live
        if current is None:  # a new partition: every live replica is in sync
            in_sync = tuple(r for r in self.assignments[partition[0]][partition[1]] if r in live)
            return LeaderAndIsr(in_sync[0], 0, in_sync, self.epoch) if in_sync else None
        live_isr = tuple(r for r in current.isr if r in live)
        if current.leader in live:
            if live_isr == current.isr:
                return None
            return LeaderAndIsr(current.leader, current.leader_epoch + 1, live_isr, self.epoch)
        if live_isr:
            return LeaderAndIsr(live_isr[0], current.leader_epoch + 1, live_isr, self.epoch)
        if current.leader == zkdata.NO_LEADER:
            return None  # offline until a member of its ISR returns
        return LeaderAndIsr(zkdata.NO_LEADER, current.leader_epoch + 1, current.isr, self.epoch)


def _now_ms() -> int:
    return int(time.time() * 1000)
