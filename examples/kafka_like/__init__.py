"""A Kafka-like control plane on ZooKeeper (pre-KRaft Kafka's znode layout), built on kazoo.

See README.md here: brokers (broker.py), the controller (controller.py), admin writes
(admin.py) and the znode paths and JSON shapes (zkdata.py).
"""

from .admin import add_acls, cluster_id, create_topic, set_config
from .broker import Broker
from .controller import Controller, ControllerMoved, StateChanged
from .zkdata import Acl, LeaderAndIsr

__all__ = ["Acl", "Broker", "Controller", "ControllerMoved", "LeaderAndIsr", "StateChanged", "add_acls",
           "cluster_id", "create_topic", "set_config"]
