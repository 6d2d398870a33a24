"""The server's monitor values (ZooKeeper's `mntr`/`monitor` keys), and the other status values
the four-letter words and the AdminServer share.

Every value is read from counters the server keeps anyway, at the moment it is asked for: the
four-letter `mntr`, the AdminServer's `monitor` and a Prometheus scrape cost the request path
nothing.  Names are ZooKeeper 3.8's (ServerMetrics, ZooKeeperServer.registerMetrics, Leader),
so dashboards built for ZooKeeper read zkpy unchanged:

- `mntr` prints `zk_<key>`, the AdminServer's `monitor` gives `<key>`;
- Prometheus (endpoints.py) exposes each numeric key as a metric of the same name (no prefix): ZooKeeper's
  gauges as gauges, its counters (`*_count`, `snap_count`, ...) as untyped samples of exactly
  that name (prometheus-client would rename a counter `<name>_total`, ZooKeeper 3.8's
  simpleclient 0.9 does not), and `sync_processor_batch_size` as a summary (`_count`, `_sum`).

What zkpy does not measure (read/update latency split, fsync and election durations, the
commit processor's queues, ...) is left out rather than reported as a made-up 0.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from .. import __version__


class ZkServer(Protocol):
    """What the values are read from (node.ZkServer provides it; named here, not imported, so
    that node can import this module)."""

    config: Any
    host: str
    port: int
    ensemble: bool
    member: Any
    storage: Any
    clients: Any
    loop: Any
    state: str
    tree: Any
    sessions: Any
    connections: set
    stats: Any

    def server_id(self) -> int: ...
    def is_leader(self) -> bool: ...

VERSION = f"3.8.4-zkpy-{__version__}, built on 1970-01-01 00:00 UTC"

# ZooKeeper's counters (ServerMetrics' Counter metrics): monotonic, exposed untyped under their own name.
COUNTERS = frozenset({"connection_request_count", "snap_count", "proposal_count", "commit_count"})
STRINGS = frozenset({"version", "server_state", "peer_state"})


def node_count(server: ZkServer) -> int:
    """As ZooKeeper reports it: its node table holds the root twice, as "" and as "/"."""
    return server.tree.node_count() + 1


def packets(server: ZkServer) -> tuple[int, int]:
    """(received, sent) since the server started (or the last `srst`): the closed connections'
    counts live in the stats, the open ones' on each connection."""
    st = server.stats
    received, sent = st.packets_received, st.packets_sent
    for c in server.connections:
        received += c.packets_received
        sent += c.packets_sent
    return received, sent


def reset_connection_stats(server: ZkServer) -> None:
    """crst: the open connections' counts start again; the server's totals keep them."""
    st = server.stats
    for c in server.connections:
        st.packets_received += c.packets_received
        st.packets_sent += c.packets_sent
        c.packets_received = c.packets_sent = 0
        # ServerCnxn.resetStats: as if nothing had been answered yet.
        c.last_cxid = c.last_zxid = -1
        c.last_op = c.last_response_ms = 0
        c.write_latencies = None


# ZooKeeper's names for the last operation of a connection (FinalRequestProcessor's lastOp).
OP_NAMES = {0: "NA", 1: "CREA", 2: "DELE", 3: "EXIS", 4: "GETD", 5: "SETD", 6: "GETA", 7: "SETA", 8: "GETC",
            9: "SYNC", 11: "PING", 12: "GETC", 13: "CHEC", 14: "MULT", 15: "CREA", 16: "RECO", 17: "CHKW",
            18: "REMW", 19: "CREA", 20: "DELE", 21: "CREA", 22: "MLTR", 101: "SETW", 103: "GETE", 104: "GETACN",
            105: "SETW", 106: "ADDW", 107: "HOMI", -10: "SESS", -11: "CLOS"}
DEFAULT_TRACE_MASK = 306  # ZooTrace's default: client requests, pings and sessions


def trace_mask(server: ZkServer) -> int:
    return getattr(server, "trace_mask", DEFAULT_TRACE_MASK)


def monotonic_to_epoch_ms(server: ZkServer) -> int:
    """What to add to a time of the member's clock (monotonic ms) to make it epoch ms."""
    return int(time.time() * 1000) - server.member.clock()


def established_ms(server: ZkServer, conn: Any) -> int:
    """When `conn` was accepted, in epoch ms (cons' `est`); connections keep the loop's time."""
    return int(time.time() * 1000 - (server.loop.time() - conn.connected_at) * 1000)


def connection_stats(conn: Any) -> dict[str, Any]:
    """A connection's cons stats (ServerCnxn's): reads are answered in their batch, so their
    latency is 0 ms; writes carry what the connection measured when it answered them."""
    answered = conn.packets_sent
    w = conn.write_latencies
    if w is None:
        return {"last_operation": OP_NAMES.get(conn.last_op, "NA"), "last_latency": 0, "min_latency": 0,
                "avg_latency": 0, "max_latency": 0}
    return {
        "last_operation": OP_NAMES.get(conn.last_op, "NA"),
        "last_latency": w.last if conn.last_cxid == w.cxid >= 0 else 0,
        "min_latency": 0 if answered > w.count else w.min,
        "avg_latency": w.total // answered if answered else 0,
        "max_latency": w.max,
    }


def reset_server_stats(server: ZkServer) -> None:
    """srst: the server's totals start again from 0, the open connections' own counts stay
    (the totals hold minus what the open connections have counted so far)."""
    st = server.stats
    st.reset()
    for c in server.connections:
        st.packets_received -= c.packets_received
        st.packets_sent -= c.packets_sent


def avg_latency(server: ZkServer) -> float:
    st = server.stats
    return round(st.total_latency / st.count, 4) if st.count else 0.0


def watch_count(server: ZkServer) -> int:
    t = server.tree
    return t.data_watches.count() + t.child_watches.count()


# ZooKeeper's watch commands (wchs/wchc/wchp, watch_summary/watches/watches_by_path) report its data
# watch table only (DataTree.getWatches & co.): a getChildren watch is in watch_count, not in these.

def watches_by_session(server: ZkServer) -> dict[int, list[str]]:
    by_session: dict[int, set[str]] = {}
    for conn, paths in server.tree.data_watches.by_watcher.items():
        if paths:
            by_session.setdefault(getattr(conn, "session_id", 0), set()).update(paths)
    return {sid: sorted(paths) for sid, paths in sorted(by_session.items())}


def watches_by_path(server: ZkServer) -> dict[str, list[int]]:
    return {path: sorted({getattr(w, "session_id", 0) for w in watchers})
            for path, watchers in sorted(server.tree.data_watches.by_path.items()) if watchers}


def watch_summary(server: ZkServer) -> tuple[int, int, int]:
    """(connections, paths, watches)."""
    table = server.tree.data_watches
    return (sum(1 for paths in table.by_watcher.values() if paths),
            sum(1 for watchers in table.by_path.values() if watchers), table.count())


def dir_size(path: str | None) -> int:
    """Bytes in the regular files of `path` (not recursive), as ZooKeeper's FileTxnSnapLog sums them."""
    if not path:
        return 0
    total = 0
    try:
        with os.scandir(path) as entries:
            for e in entries:
                if e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
    except OSError:
        return 0
    return total


def data_dirs(server: ZkServer) -> tuple[str | None, str | None]:
    """(snapshot dir, log dir): dataDir/version-2 and dataLogDir/version-2, as ZooKeeper names them."""
    storage = server.storage
    snap_dir = getattr(storage, "snap_dir", None)
    log = getattr(storage, "log", None)
    return snap_dir, getattr(log, "log_dir", snap_dir)


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def max_fds() -> int:
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError):
        return -1


def monitor(server: ZkServer) -> dict[str, Any]:
    """ZooKeeper's monitor values for this server, in ZooKeeper's order where it has one."""
    t = server.tree
    st = server.stats
    received, sent = packets(server)
    values: dict[str, Any] = {
        "version": VERSION,
        "server_state": server.state,
        "avg_latency": avg_latency(server),
        "max_latency": st.max_latency,
        "min_latency": st.min_latency,
        "packets_received": received,
        "packets_sent": sent,
        "num_alive_connections": len(server.connections),
        "outstanding_requests": server.member.outstanding,
        "znode_count": node_count(server),
        "watch_count": watch_count(server),
        "ephemerals_count": sum(len(v) for v in t.ephemerals.values()),
        "approximate_data_size": t.approximate_data_size(),
        "open_file_descriptor_count": open_fds(),
        "max_file_descriptor_count": max_fds(),
        "uptime": int((time.time() - st.started) * 1000),
        "global_sessions": len(t.sessions),  # every member applies the session txns, as ZooKeeper's learners
        "local_sessions": len(server.member.local_sessions),
        "connection_request_count": st.connections_total,
        "connection_rejected": st.connections_rejected,
        "auth_failed_count": st.auth_failed,
    }
    snapshotter = getattr(server.storage, "snapshotter", None)
    if snapshotter is not None:
        values["snap_count"] = snapshotter.taken
    writer = server.member.writer
    values["cnt_sync_processor_batch_size"] = writer.batches
    values["sum_sync_processor_batch_size"] = writer.records
    values["avg_sync_processor_batch_size"] = round(writer.records / writer.batches, 4) if writer.batches else 0.0
    values.update(_quorum_values(server))
    return values


def _quorum_values(server: ZkServer) -> dict[str, Any]:
    """The keys ZooKeeper adds on ensemble members (quorum_size) and on the leader (Leader's gauges)."""
    if not server.ensemble:
        return {}
    m = server.member
    core = m.core
    values: dict[str, Any] = {"quorum_size": len(core.voters)}
    if server.is_leader():
        values.update({
            "learners": len(core.forwarding),
            "synced_followers": len(core.synced & core.voters),
            "synced_non_voting_followers": 0,
            "synced_observers": len(core.synced & core.observers),
            "pending_syncs": 0,  # a follower's sync is answered at once on the leader
            "leader_uptime": max(0, m.clock() - m.leader_since_ms),
            # zkpy does not size its proposals: ZooKeeper's BufferStats before the first one.
            "last_proposal_size": -1, "min_proposal_size": -1, "max_proposal_size": -1,
        })
    values["peer_state"] = f"{m.soft.state} - {'broadcast' if m.serving else 'election'}"
    return values
