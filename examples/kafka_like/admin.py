"""What Kafka's admin tools write to ZooKeeper: topics, entity configs, ACLs, the cluster id.

None of it needs the controller: an admin writes the topic's assignment and the controller,
watching /brokers/topics, creates the partitions' states.
"""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from . import zkdata
from .zkdata import Acl


def create_topic(zk: KazooClient, topic: str, partitions: int = 1, replication_factor: int = 1,
                 config: dict[str, str] | None = None,
                 assignment: dict[int, list[int]] | None = None) -> dict[int, list[int]]:
    """Create a topic's config and assignment together.  Without an explicit assignment (Kafka's
    --replica-assignment), replicas go round-robin over the registered brokers (as Kafka
    without racks, minus its random start)."""
    if assignment is None:
        brokers = sorted(int(b) for b in zk.get_children(zkdata.BROKER_IDS))
        if len(brokers) < replication_factor:
            raise ValueError(f"replication factor {replication_factor} > {len(brokers)} brokers")
        assignment = {p: [brokers[(p + r) % len(brokers)] for r in range(replication_factor)]
                      for p in range(partitions)}
    t = zk.transaction()
    t.create(zkdata.config_path("topics", topic), zkdata.encode_config(config or {}))
    t.create(zkdata.topic_path(topic), zkdata.encode_assignment(assignment))
    failed = [r for r in t.commit() if isinstance(r, Exception)]
    if failed:
        raise failed[0] if isinstance(failed[0], NodeExistsError) else failed[-1]
    return assignment


def set_config(zk: KazooClient, entity_type: str, name: str, config: dict[str, str]) -> None:
    """Write an entity's config (topics, clients, users, brokers), then the change notification."""
    path = zkdata.config_path(entity_type, name)
    try:
        zk.set(path, zkdata.encode_config(config))
    except NoNodeError:
        zk.create(path, zkdata.encode_config(config), makepath=True)
    zk.create(zkdata.CONFIG_CHANGE_PREFIX, zkdata.encode_config_change(entity_type, name), sequence=True)


def add_acls(zk: KazooClient, resource_type: str, name: str, acls: list[Acl]) -> list[Acl]:
    """Add ACLs to a resource with a conditional update (concurrent admins do not lose each
    other's entries), then notify the brokers' authorizers."""
    path = zkdata.acl_path(resource_type, name)
    while True:
        try:
            data, stat = zk.get(path)
            current, version = zkdata.decode_acls(data), stat.version
        except NoNodeError:
            current, version = [], None
        merged = current + [a for a in acls if a not in current]
        try:
            if version is None:
                zk.create(path, zkdata.encode_acls(merged), makepath=True)
            else:
                zk.set(path, zkdata.encode_acls(merged), version=version)
            break
        except (NodeExistsError, BadVersionError):
            continue  # another admin changed them meanwhile: merge again
    zk.create(zkdata.ACL_CHANGE_PREFIX, f"{resource_type}:{name}".encode(), sequence=True, makepath=True)
    return merged


def cluster_id(zk: KazooClient) -> str:
    """The cluster id, created by whoever asks first (Kafka's getOrGenerateClusterId)."""
    try:
        zk.create(zkdata.CLUSTER_ID, zkdata.encode_cluster_id(zkdata.new_cluster_id()), makepath=True)
    except NodeExistsError:
        pass
    return zkdata.decode_cluster_id(zk.get(zkdata.CLUSTER_ID)[0])
