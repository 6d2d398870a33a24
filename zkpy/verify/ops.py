"""ZooKeeper operations and their outcomes as plain data, shared by the reference model and the adapters.

An operation names the session slot that issues it (0, 1, ...) and ZooKeeper-level arguments
(paths relative to the test's own root, versions, ACLs as tuples).  An outcome is what a client
sees: `("ok", value)` or `("error", "NONODE")`, where values hold `Stat`s whose zxids are the
system's own (compared by order, see zkpy.verify.machine) and whose ephemeral owner is the
number of the session that owns the node (1 for the first session opened, 2 for the next...).

Written from ZooKeeper's documented client API, not from zkpy's tree, so that the model and the
systems under test share only this vocabulary.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Union

# ZooKeeper's permission bits (ZooDefs.Perms) and the error codes the model can produce.
READ, WRITE, CREATE, DELETE, ADMIN = 1, 2, 4, 8, 16
ALL = READ | WRITE | CREATE | DELETE | ADMIN
ERROR_CODES = {
    "OK": 0, "RUNTIMEINCONSISTENCY": -2, "UNIMPLEMENTED": -6, "BADARGUMENTS": -8, "NONODE": -101,
    "NOAUTH": -102, "BADVERSION": -103, "NOCHILDRENFOREPHEMERALS": -108, "NODEEXISTS": -110,
    "NOTEMPTY": -111, "INVALIDACL": -114,
}
ERROR_NAMES = {code: name for name, code in ERROR_CODES.items()}

# Watch event types (Watcher.Event.EventType), by name.
NODE_CREATED, NODE_DELETED, NODE_DATA_CHANGED, NODE_CHILDREN_CHANGED = (
    "NodeCreated", "NodeDeleted", "NodeDataChanged", "NodeChildrenChanged")

# Create modes by name, with ZooKeeper's flag values (CreateMode.toFlag).
MODES = {"persistent": 0, "ephemeral": 1, "persistent_sequential": 2, "ephemeral_sequential": 3,
         "container": 4, "ttl": 5, "persistent_sequential_ttl": 6}

AclEntry = tuple[int, str, str]  # (perms, scheme, id)

# Users that sessions can authenticate as with addAuth("digest", "user:password").
USERS = {"alice": "alice:secret-a", "bob": "bob:secret-b"}


def digest_id(user_password: str) -> str:
    """'user:password' -> 'user:base64(sha1(user:password))', the id of a digest ACL."""
    sha = hashlib.sha1(user_password.encode()).digest()
    return user_password.split(":", 1)[0] + ":" + base64.b64encode(sha).decode()


# The ACLs the strategies pick from: open, world-readable only, the creator's own ('auth',
# which fails with INVALIDACL for a session that has not authenticated), and alice's.
OPEN_ACL: tuple[AclEntry, ...] = ((ALL, "world", "anyone"),)
READ_ONLY_ACL: tuple[AclEntry, ...] = ((READ, "world", "anyone"),)
CREATOR_ALL_ACL: tuple[AclEntry, ...] = ((ALL, "auth", ""),)
ALICE_ONLY_ACL: tuple[AclEntry, ...] = ((ALL, "digest", digest_id(USERS["alice"])),)
ACLS = (OPEN_ACL, READ_ONLY_ACL, CREATOR_ALL_ACL, ALICE_ONLY_ACL)


@dataclass(frozen=True)
class Stat:
    """The Stat fields that every ZooKeeper must agree on (times are left out)."""

    czxid: int
    mzxid: int
    pzxid: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int  # the owning session's number, 0 when no session owns the node
    data_length: int
    num_children: int


@dataclass(frozen=True)
class Create:
    session: int
    path: str
    data: bytes = b""
    mode: str = "persistent"
    acl: tuple[AclEntry, ...] = OPEN_ACL
    ttl: int = -1  # milliseconds, for the TTL modes; -1 otherwise


@dataclass(frozen=True)
class Delete:
    session: int
    path: str
    version: int = -1


@dataclass(frozen=True)
class SetData:
    session: int
    path: str
    data: bytes = b""
    version: int = -1


@dataclass(frozen=True)
class Check:
    """Only inside a Multi: succeeds when the node's version is `version` (-1: any)."""

    session: int
    path: str
    version: int = -1


@dataclass(frozen=True)
class GetData:
    session: int
    path: str
    watch: bool = False


@dataclass(frozen=True)
class Exists:
    session: int
    path: str
    watch: bool = False


@dataclass(frozen=True)
class GetChildren:
    session: int
    path: str
    watch: bool = False


@dataclass(frozen=True)
class SetAcl:
    session: int
    path: str
    acl: tuple[AclEntry, ...] = OPEN_ACL
    version: int = -1


@dataclass(frozen=True)
class GetAcl:
    session: int
    path: str


@dataclass(frozen=True)
class Multi:
    """A transaction of Create, Delete, SetData and Check ops (their own `session` is ignored)."""

    session: int
    ops: tuple[Union[Create, Delete, SetData, Check], ...]


@dataclass(frozen=True)
class Sync:
    session: int
    path: str = "/"


@dataclass(frozen=True)
class AddWatch:
    """A persistent watch (ZooKeeper 3.6+), recursive or not: it fires until its session ends."""

    session: int
    path: str
    recursive: bool = False


@dataclass(frozen=True)
class AddAuth:
    session: int
    user: str  # a key of USERS


@dataclass(frozen=True)
class CloseSession:
    """Close the slot's session (its ephemerals go, its watches are dropped) and open a new one."""

    session: int


@dataclass(frozen=True)
class ExpireSession:
    """Expire the slot's session on the server's side, then open a new one in the slot."""

    session: int


Operation = Union[Create, Delete, SetData, Check, GetData, Exists, GetChildren, SetAcl, GetAcl, Multi, Sync,
                  AddWatch, AddAuth, CloseSession, ExpireSession]
Outcome = tuple[str, Any]  # ("ok", value) or ("error", code name)
WRITES = (Create, Delete, SetData, SetAcl, Multi)


def ok(value: Any = None) -> Outcome:
    return ("ok", value)


def error(name: str) -> Outcome:
    return ("error", name)
