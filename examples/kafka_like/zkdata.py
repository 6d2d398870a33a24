"""Where Kafka (before KRaft) keeps its metadata in ZooKeeper, and the JSON it writes there.

The paths and shapes follow Kafka's `kafka.zk.ZkData` (facts taken from it, code our own), so
that a tool that reads a Kafka cluster's ZooKeeper data would read ours.  Everything here is
pure: paths in, bytes out, and back.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

BROKER_IDS = "/brokers/ids"
BROKER_TOPICS = "/brokers/topics"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
ISR_CHANGES = "/isr_change_notification"
ISR_CHANGE_PREFIX = ISR_CHANGES + "/isr_change_"
CONFIG = "/config"
CONFIG_CHANGES = "/config/changes"
CONFIG_CHANGE_PREFIX = CONFIG_CHANGES + "/config_change_"
ACLS = "/kafka-acl"
ACL_CHANGES = "/kafka-acl-changes"
ACL_CHANGE_PREFIX = ACL_CHANGES + "/acl_changes_"
CLUSTER_ID = "/cluster/id"

# What a broker makes sure exists when it starts (Kafka's ZkData.PersistentZkPaths, abridged).
PERSISTENT_PATHS = (BROKER_IDS, BROKER_TOPICS, ISR_CHANGES, CONFIG_CHANGES, "/config/topics",
                    "/config/clients", "/config/users", "/config/brokers", "/admin/delete_topics", ACLS,
                    ACL_CHANGES)

NO_LEADER = -1  # Kafka's LeaderAndIsr.NoLeader: every replica of the ISR is down


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _decode(data: bytes) -> Any:
    return json.loads(data.decode())


# ------------------------------------------------------------------ brokers and the controller

def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def encode_broker(host: str, port: int, timestamp_ms: int) -> bytes:
    """/brokers/ids/<id>, version 5 of Kafka's BrokerIdZNode (one PLAINTEXT listener)."""
    return _encode({"listener_security_protocol_map": {"PLAINTEXT": "PLAINTEXT"},
                    "endpoints": [f"PLAINTEXT://{host}:{port}"], "jmx_port": -1, "features": {},
                    "host": host, "timestamp": str(timestamp_ms), "port": port, "version": 5})


def decode_broker(data: bytes) -> dict:
    return _decode(data)


def encode_controller(broker_id: int, timestamp_ms: int) -> bytes:
    return _encode({"version": 1, "brokerid": broker_id, "timestamp": str(timestamp_ms)})


def decode_controller(data: bytes) -> int:
    """The broker id in /controller."""
    return int(_decode(data)["brokerid"])


def encode_epoch(epoch: int) -> bytes:
    return str(epoch).encode()  # /controller_epoch holds the bare number


def decode_epoch(data: bytes) -> int:
    return int(data.decode())


# ------------------------------------------------------------------ topics and partitions

def topic_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions"


def partition_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}"


def state_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}/state"


def encode_assignment(assignment: dict[int, list[int]]) -> bytes:
    """/brokers/topics/<t>: each partition's replicas (Kafka's TopicZNode, version 2)."""
    return _encode({"version": 2, "partitions": {str(p): r for p, r in sorted(assignment.items())},
                    "adding_replicas": {}, "removing_replicas": {}})


def decode_assignment(data: bytes) -> dict[int, list[int]]:
    return {int(p): list(r) for p, r in _decode(data)["partitions"].items()}


@dataclass(frozen=True)
class LeaderAndIsr:
    """A partition's state znode: who leads, in which leader epoch, which replicas are in sync,
    and the epoch of the controller that wrote it."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int

    def encode(self) -> bytes:
        return _encode({"controller_epoch": self.controller_epoch, "leader": self.leader, "version": 1,
                        "leader_epoch": self.leader_epoch, "isr": list(self.isr)})

    @staticmethod
    def decode(data: bytes) -> LeaderAndIsr:
        d = _decode(data)
        return LeaderAndIsr(d["leader"], d["leader_epoch"], tuple(d["isr"]), d["controller_epoch"])


# ------------------------------------------------------------------ notifications

def encode_isr_change(partitions: list[tuple[str, int]]) -> bytes:
    return _encode({"version": 1, "partitions": [{"topic": t, "partition": p} for t, p in partitions]})


def decode_isr_change(data: bytes) -> list[tuple[str, int]]:
    return [(e["topic"], int(e["partition"])) for e in _decode(data)["partitions"]]


def config_path(entity_type: str, name: str) -> str:
    """entity_type is Kafka's: topics, clients, users or brokers."""
    return f"{CONFIG}/{entity_type}/{name}"


def encode_config(config: dict[str, str]) -> bytes:
    return _encode({"version": 1, "config": config})


def decode_config(data: bytes) -> dict[str, str]:
    return dict(_decode(data)["config"])


def encode_config_change(entity_type: str, name: str) -> bytes:
    return _encode({"version": 2, "entity_path": f"{entity_type}/{name}"})


def decode_config_change(data: bytes) -> tuple[str, str]:
    entity_type, _, name = _decode(data)["entity_path"].partition("/")
    return entity_type, name


# ------------------------------------------------------------------ ACLs and the cluster id

@dataclass(frozen=True)
class Acl:
    principal: str  # "User:alice"
    operation: str  # "Read", "Write", "All", ...
    permission: str = "Allow"
    host: str = "*"


def acl_path(resource_type: str, name: str) -> str:
    """resource_type is Kafka's: Topic, Group, Cluster, TransactionalId, DelegationToken."""
    return f"{ACLS}/{resource_type}/{name}"


def encode_acls(acls: list[Acl]) -> bytes:
    return _encode({"version": 1, "acls": [{"principal": a.principal, "permissionType": a.permission,
                                            "operation": a.operation, "host": a.host} for a in acls]})


def decode_acls(data: bytes) -> list[Acl]:
    return [Acl(e["principal"], e["operation"], e["permissionType"], e["host"]) for e in _decode(data)["acls"]]


def new_cluster_id() -> str:
    """Kafka's cluster id: a random UUID in URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def encode_cluster_id(cluster_id: str) -> bytes:
    return _encode({"version": "1", "id": cluster_id})


def decode_cluster_id(data: bytes) -> str:
    return _decode(data)["id"]

