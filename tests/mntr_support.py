"""Comparing zkpy's monitor keys (`mntr`, the AdminServer's `monitor`) with Apache ZooKeeper 3.8's,
for the differential tests (test_fourletter_differential.py, test_admin.py).

After the same workload on both, zkpy must print at least `COVERAGE` of ZooKeeper's keys, no
key ZooKeeper lacks, each with ZooKeeper's value type (integer, float, string), and the
values in `AGREE` equal.  The remaining keys are times, sizes of the JVM or process, and
counts of mechanisms the two do differently (zkpy/server/metrics.py: CONSTANT, DERIVED).
"""

from __future__ import annotations

import re
from typing import Any

COVERAGE = 0.90

# Values that must agree after the same operations: the tree, sessions, watches, roles.
AGREE = ("server_state", "num_alive_connections", "outstanding_requests", "znode_count", "watch_count",
         "ephemerals_count", "approximate_data_size", "global_sessions", "local_sessions", "quorum_size",
         "learners", "synced_followers", "synced_non_voting_followers", "synced_observers", "pending_syncs",
         # the watches the writes triggered (WatchManager's counts: the same txns, the same samples)
         "cnt_node_changed_watch_count", "sum_node_changed_watch_count",
         "cnt_node_created_watch_count", "cnt_node_deleted_watch_count", "cnt_node_children_watch_count")

_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?(\d+\.\d+(E-?\d+)?|NaN|Infinity)")


def kind(value: Any) -> str:
    """A value's type as ZooKeeper prints it: mntr's text, or the AdminServer's JSON value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        if _INT.fullmatch(value):
            return "int"
        if _FLOAT.fullmatch(value):
            return "float"
        return "str"
    return type(value).__name__


def strip(key: str) -> str:
    return key[3:] if key.startswith("zk_") else key


def monitor_problems(theirs: dict[str, Any], ours: dict[str, Any], where: str) -> list[str]:
    """What is wrong with zkpy's monitor values `ours` against ZooKeeper's `theirs` (keys with
    or without mntr's `zk_` prefix)."""
    a = {strip(k): v for k, v in theirs.items()}
    b = {strip(k): v for k, v in ours.items()}
    problems = []
    covered = len(a.keys() & b.keys())
    if covered < COVERAGE * len(a):
        problems.append(f"{where}: zkpy has {covered} of ZooKeeper's {len(a)} monitor keys "
                        f"({100 * covered / len(a):.1f}% < {100 * COVERAGE:.0f}%); missing: {sorted(a.keys() - b.keys())}")
    extra = sorted(b.keys() - a.keys())
    if extra:
        problems.append(f"{where}: monitor keys ZooKeeper does not have: {extra}")
    wrong = {k: (a[k], b[k]) for k in a.keys() & b.keys() if kind(a[k]) != kind(b[k])}
    if wrong:
        problems.append(f"{where}: monitor values of another type (ZooKeeper's, zkpy's): {wrong}")
    differ = {k: (a.get(k), b.get(k)) for k in AGREE if (k in a or k in b) and str(a.get(k)) != str(b.get(k))}
    if differ:
        problems.append(f"{where}: monitor values that must agree differ (ZooKeeper's, zkpy's): {differ}")
    return problems


def coverage(theirs: dict[str, Any], ours: dict[str, Any]) -> tuple[int, int]:
    a = {strip(k) for k in theirs}
    return len(a & {strip(k) for k in ours}), len(a)
