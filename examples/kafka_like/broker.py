"""A Kafka-like broker's ZooKeeper side: registration, the controller it may become, ISR changes.

A broker holds one ZooKeeper session.  It registers itself with an ephemeral
/brokers/ids/<id>, so that the controller learns of its death when the session ends, and
registers again whenever kazoo gives it a new session after an expiry (as Kafka does).  Every
broker runs a Controller that competes for /controller.  As a partition's leader it shrinks
the ISR with a conditional write and tells the controller through /isr_change_notification.
"""

from __future__ import annotations

import logging
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NodeExistsError
from kazoo.retry import KazooRetry

from . import zkdata
from .admin import cluster_id
from .controller import Controller
from .events import EventQueue
from .zkdata import LeaderAndIsr

log = logging.getLogger(__name__)


class Broker:
    def __init__(self, broker_id: int, hosts: str, session_timeout: float = 4.0,
                 controller_class: type[Controller] = Controller, port: int | None = None) -> None:
        self.broker_id = broker_id
        self.host, self.port = "127.0.0.1", port or 9092 + broker_id  # advertised only: nothing listens
        retry = {"max_tries": -1, "delay": 0.05, "max_delay": 0.5, "deadline": 60}
        self.zk = KazooClient(hosts=hosts, timeout=session_timeout, connection_retry=KazooRetry(**retry),
                              command_retry=KazooRetry(**retry))
        self.events = EventQueue(f"broker-{broker_id}")
        self.controller = controller_class(self.zk, broker_id, self.events)
        self._session_lost = False
        self.cluster_id: str | None = None

    def start(self, timeout: float = 30.0) -> Broker:
        self.zk.add_listener(self._on_session_state)
        self.zk.start(timeout)
        for path in zkdata.PERSISTENT_PATHS:
            self.zk.retry(self.zk.ensure_path, path)
        self.cluster_id = self.zk.retry(cluster_id, self.zk)
        self.events.put(self.register)
        self.controller.submit(self.controller.elect)
        return self

    def stop(self) -> None:
        """A clean shutdown: the session closes, so its ephemerals go at once."""
        self.events.stop()
        self.zk.stop()
        self.zk.close()

    def register(self) -> None:
        path = zkdata.broker_path(self.broker_id)
        data = zkdata.encode_broker(self.host, self.port, int(time.time() * 1000))
        try:
            self.zk.retry(self.zk.create, path, data, ephemeral=True)
        except NodeExistsError:
            # Ours from a retry whose first reply was lost, or a previous session's not yet expired.
            _, stat = self.zk.retry(self.zk.get, path)
            if stat.ephemeralOwner != self.zk.client_id[0]:
                raise

    def _on_session_state(self, state: str) -> None:
        """kazoo's thread: only queue work.  LOST is an expired session; kazoo then makes a new one."""
        if state == KazooState.LOST:
            self._session_lost = True
            self.events.put(self.controller.resign)
        elif state == KazooState.CONNECTED and self._session_lost:
            self._session_lost = False
            self.events.put(self.register)
            self.controller.submit(self.controller.elect)

    # ------------------------------------------------------------ as a partition leader

    def shrink_isr(self, topic: str, partition: int, isr: list[int]) -> LeaderAndIsr:
        """Drop followers that fell behind from the ISR (we must lead the partition), then notify
        the controller.  The conditional write fails with BadVersion if the controller changed
        the state since we read it; Kafka's leader then re-reads it, as a caller here would."""
        path = zkdata.state_path(topic, partition)
        data, stat = self.zk.retry(self.zk.get, path)
        current = LeaderAndIsr.decode(data)
        if current.leader != self.broker_id:
            raise ValueError(f"broker {self.broker_id} does not lead {topic}-{partition}")
        state = LeaderAndIsr(current.leader, current.leader_epoch, tuple(isr), current.controller_epoch)
        self.zk.set(path, state.encode(), version=stat.version)
        self.zk.retry(self.zk.create, zkdata.ISR_CHANGE_PREFIX, zkdata.encode_isr_change([(topic, partition)]),
                      sequence=True)
        return state
