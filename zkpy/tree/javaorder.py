"""Java's hash-table iteration orders, where ZooKeeper lets them show.

ZooKeeper deletes a closed session's ephemerals in the order of a java.util.HashSet and
lists a connection's auth ids in the order of a ConcurrentHashMap; clients see both (the
order of watch events, whoAmI, expanded `auth` ACLs).  Reproducing them keeps zkpy's
answers identical to ZooKeeper's, not merely equivalent.
"""

from __future__ import annotations

from typing import Iterable, TypeVar

T = TypeVar("T")


def string_hash(s: str) -> int:
    """java.lang.String.hashCode (over UTF-16 code units), as an unsigned 32-bit value."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h


def table_capacity(max_size: int) -> int:
    """Table size of a HashMap/ConcurrentHashMap that has held `max_size` entries (load factor 0.75)."""
    cap = 16
    while max_size > cap * 3 // 4:
        cap *= 2
    return cap


def clone_capacity(size: int) -> int:
    """Table size of a HashMap copied from one with `size` entries (HashMap.putMapEntries)."""
    wanted = int(size / 0.75 + 1.0)
    cap = 1
    while cap < wanted:
        cap *= 2
    return cap


def iteration_order(items: Iterable[T], hash_of, capacity: int) -> list[T]:
    """`items` (in insertion order) in a Java hash table's iteration order: by bucket, then insertion."""

    def bucket(item: T) -> int:
        h = hash_of(item)
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(items, key=bucket)
