"""The server's monitor values (ZooKeeper's `mntr`/`monitor` keys), and the other status values
the four-letter words and the AdminServer share.

Names, kinds and meanings are ZooKeeper 3.8's (ServerMetrics, ZooKeeperServer.registerMetrics,
Leader, QuorumPeer), so dashboards built for ZooKeeper read zkpy unchanged:

- gauges are read from the server's state when asked for;
- counters and summaries are kept where the work is done -- ServerStats (clients.py: per batch
  of client bytes, per write answered), the member (role changes, batches of commits), the
  log writer (per batch), the log device (per fsync), the snapshotter, Prep and ZAB (plain
  ints) -- and read here; `srst` resets them all, as ZooKeeper's ServerMetrics.resetAll;
- a summary prints as ZooKeeper's default provider prints it (zkpy/summary.py): `avg_`,
  `min_`, `max_`, `cnt_`, `sum_` and, for its DetailLevel.ADVANCED ones, `p50_` ... `p999_`.

`mntr` prints `zk_<key>`, the AdminServer's `monitor` gives `<key>`; Prometheus (endpoints.py)
exposes each numeric key under its own name: gauges as gauges, counters as untyped samples of
exactly that name (prometheus-client would rename a counter `<name>_total`, ZooKeeper 3.8's
simpleclient 0.9 does not), summaries as summaries (`_count`, `_sum`; the ADVANCED ones also
their 0.5/0.9/0.99 quantiles, from the same reservoir).

What ZooKeeper measures of a mechanism zkpy has not is printed under ZooKeeper's key with
the value ZooKeeper shows while that mechanism is idle (counters 0, summaries with no
sample); `CONSTANT` below says why for each.  What zkpy does differently but measurably is
measured on zkpy's own mechanism (`DERIVED`).
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator, Protocol

from .. import __version__
from ..summary import QUANTILES, Quantiles, Summary


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
    s = w.folded()
    return {
        "last_operation": OP_NAMES.get(conn.last_op, "NA"),
        "last_latency": w.value if conn.last_cxid == w.cxid >= 0 else 0,
        "min_latency": 0 if answered > s.count else s.min,
        "avg_latency": s.total // answered if answered else 0,
        "max_latency": s.max,
    }


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


_IDLE = Summary()  # a summary of a mechanism zkpy has not: never added to
_IDLE_ADVANCED = Quantiles()

# Keys ZooKeeper 3.8 prints that zkpy reports as constants, and why (the value is ZooKeeper's
# while the mechanism is idle or absent: 0 for counters and gauges, no sample for summaries).
CONSTANT = {
    # --- gauges
    "connection_drop_probability": "connection throttling by drop chance (BlueThrottle): zkpy has none",
    "non_mtls_remote_conn_count": "counted by ZooKeeper's Netty X509 checks when client certs are optional",
    "non_mtls_local_conn_count": "as non_mtls_remote_conn_count",
    "synced_non_voting_followers": "zkpy has no non-voting followers (reconfig)",
    "pending_syncs": "a learner's sync is answered at once by zkpy's leader: none ever waits",
    # --- counters
    "add_dead_watcher_stall_time": "WatchManagerOptimized's dead watcher cleaner: zkpy drops a closed "
                                   "connection's watches at once",
    "dead_watchers_queued": "as add_dead_watcher_stall_time",
    "dead_watchers_cleared": "as add_dead_watcher_stall_time",
    "response_packet_cache_hits": "ZooKeeper's serialized-response cache: zkpy has none",
    "response_packet_cache_misses": "as response_packet_cache_hits",
    "response_packet_get_children_cache_hits": "as response_packet_cache_hits",
    "response_packet_get_children_cache_misses": "as response_packet_cache_hits",
    "ensemble_auth_success": "ensemble name checks (zookeeper.ensembleAuthName): zkpy has none",
    "ensemble_auth_fail": "as ensemble_auth_success",
    "ensemble_auth_skip": "as ensemble_auth_success",
    "connection_drop_count": "as connection_drop_probability",
    "sessionless_connections_expired": "NIOServerCnxnFactory's idle connection expirer: zkpy has none",
    "stale_sessions_expired": "as sessionless_connections_expired",
    "throttled_ops": "RequestThrottler (zookeeper.request_throttle_*): zkpy throttles by "
                     "globalOutstandingLimit, which ZooKeeper does not count here",
    "quit_leading_due_to_disloyal_voter": "a leader that counts disloyal pings: zkpy's leader steps "
                                          "down on a missed quorum of acks/pongs, not this check",
    "stale_requests": "request staleness checks (zookeeper.request_stale_*): zkpy has none",
    "stale_requests_dropped": "as stale_requests",
    "stale_replies": "as stale_requests",
    "request_throttle_wait_count": "as throttled_ops",
    "large_requests_rejected": "zookeeper.largeRequestMaxBytes: zkpy has no such limit",
    "digest_mismatches_count": "zkpy's txns carry no tree digest to check (zookeeper.digest.enabled)",
    "insecure_admin_count": "the AdminServer's insecure-port counting: zkpy's has no TLS port",
    "tls_handshake_exceeded": "Netty's outstanding handshake limit: zkpy has none",
    "cnxn_closed_without_zk_server_running": "Netty's check: zkpy accepts clients only while serving",
    "skip_learner_request_to_next_processor_count": "the learner's local-session request skipping: "
                                                    "zkpy has no local sessions on learners",
    "requests_not_forwarded_to_commit_processor": "zkpy has no CommitProcessor",
    # --- summaries
    "dead_watchers_cleaner_latency": "as add_dead_watcher_stall_time",
    "requests_in_session_queue": "zkpy has no CommitProcessor: a session's reads wait behind its "
                                 "writes in the connection's own queue, and commits apply in the Ready pass",
    "pending_session_queue_size": "as requests_in_session_queue",
    "reads_after_write_in_session_queue": "as requests_in_session_queue",
    "reads_issued_from_session_queue": "as requests_in_session_queue",
    "session_queues_drained": "as requests_in_session_queue",
    "time_waiting_empty_pool_in_commit_processor_read_ms": "as requests_in_session_queue",
    "write_batch_time_in_commit_processor": "as requests_in_session_queue",
    "concurrent_request_processing_in_commit_processor": "as requests_in_session_queue",
    "read_commit_proc_req_queued": "as requests_in_session_queue",
    "write_commit_proc_req_queued": "as requests_in_session_queue",
    "commit_commit_proc_req_queued": "as requests_in_session_queue",
    "read_commit_proc_issued": "as requests_in_session_queue",
    "write_commit_proc_issued": "as requests_in_session_queue",
    "read_commitproc_time_ms": "as requests_in_session_queue",
    "write_commitproc_time_ms": "as requests_in_session_queue",
    "local_write_committed_time_ms": "as requests_in_session_queue",
    "server_write_committed_time_ms": "as requests_in_session_queue",
    "commit_process_time": "as requests_in_session_queue",
    "read_final_proc_time_ms": "timed by ZooKeeper's CommitProcessor: as requests_in_session_queue",
    "write_final_proc_time_ms": "as read_final_proc_time_ms",
    "om_proposal_process_time_ms": "zkpy has no observer masters (observers learn from the leader)",
    "om_commit_process_time_ms": "as om_proposal_process_time_ms",
    "netty_queued_buffer_capacity": "Netty's queued buffers: zkpy writes with asyncio",
    "learner_request_processor_queue_size": "a zkpy learner forwards a request to the leader as it "
                                            "arrives: there is no queue",
    "socket_closing_time": "Netty's: zkpy's connections close with asyncio",
    "request_throttle_queue_time_ms": "as throttled_ops",
    "jvm_pause_time_ms": "a JVM's pauses (JvmPauseMonitor): zkpy is not a JVM",
}

# Keys measured on zkpy's own mechanism where it differs from ZooKeeper's, and how.
DERIVED = {
    "readlatency": "a read is answered in its batch: every read request counts, at 0 ms",
    "connection_token_deficit": "one sample per connection, 0: no token bucket, nothing is ever short",
    "prep_processor_queue_size": "Prep runs as each write arrives: every prepped txn finds an empty queue",
    "prep_processor_queue_time_ms": "as prep_processor_queue_size: 0 ms each",
    "prep_process_time": "Prep takes microseconds within one Ready pass: 0 ms each (the member's ms clock)",
    "proposal_process_time": "as prep_process_time: handing the txn to ZAB is 0 ms",
    "close_session_prep_time": "as prep_process_time, per closeSession",
    "inflight_diff_count": "a zkpy sync is one message: 1 in flight as it starts, 0 after",
    "inflight_snap_count": "as inflight_diff_count",
    "sync_process_time": "the batch's write+sync (sync_processor_queue_flush_time_ms's samples)",
    "proposal_ack_creation_latency": "a zkpy member acks when its batch is durable: "
                                     "sync_processor_queue_and_flush_time_ms's samples, on ensemble members",
    "quorum_ack_latency": "zkpy's leader commits as the quorum's ack arrives and applies in that pass: "
                          "propagation_latency's samples, on a leader",
    "commit_propagation_latency": "a zkpy learner applies a COMMIT in the pass it arrives: "
                                  "propagation_latency's samples, on learners",
    "response_bytes": "bytes of every answer written, watch events left out (connect responses included)",
    "last_client_response_size": "the frames written to clients, sized per batch written; the connect "
                                 "response is one of them (ZooKeeper sizes only what ServerCnxn.serialize sends)",
    "min_client_response_size": "as last_client_response_size",
    "max_client_response_size": "as last_client_response_size",
    "sync_processor_queue_size": "the records waiting for the log writer, once per append (a Ready pass), "
                                 "not once per request taken",
}

# Not printed (ZooKeeper's summary sets, a group of keys per namespace or learner):
# - write_per_namespace / read_per_namespace (DataTree.updateWriteStat/updateReadStat: path length
#   + bytes by top-level znode): a string slice, a dict lookup and a summary update on every write
#   and every getData of the hot path; measured on setData, in-process: +0.5 us of ~10 us.
# - learner_handler_qp_size / learner_handler_qp_time_ms: the LearnerHandler's packet queue; a
#   zkpy leader writes to its learners' sockets directly.


class Values:
    """One reading of every metric, by kind (what mntr and Prometheus render)."""

    __slots__ = ("gauges", "counters", "summaries")

    def __init__(self) -> None:
        self.gauges: dict[str, Any] = {}
        self.counters: dict[str, int] = {}
        self.summaries: dict[str, tuple[Summary, bool]] = {}  # name -> (summary, advanced)


def _zeros(count: int, total: int = 0, high: int = 0) -> Summary:
    """A summary of `count` samples of 0 (or of 0s and 1s summing to `total`)."""
    s = Summary()
    s.count, s.total, s.max = count, total, high
    return s


def _gauges(server: ZkServer) -> dict[str, Any]:
    t = server.tree
    st = server.stats
    received, sent = packets(server)
    tls = getattr(server, "tls", None)
    sizes = st.response_sizes
    return {
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
        "connection_drop_probability": 0.0,
        "last_client_response_size": sizes[0],
        "max_client_response_size": sizes[2],
        "min_client_response_size": sizes[1],
        "outstanding_tls_handshake": len(tls.handshakes) if tls is not None else 0,
        "auth_failed_count": st.auth_failed,
        "non_mtls_remote_conn_count": 0,
        "non_mtls_local_conn_count": 0,
    }


def _counters(server: ZkServer) -> dict[str, int]:
    m = server.member
    mm = m.metrics
    st = server.stats
    own = m.counters()
    tls = getattr(server, "tls", None)
    measured = {
        "looking_count": mm.looking_count,
        "diff_count": own["diff_count"],
        "snap_count": own["snap_count"],
        "commit_count": mm.commit_count,
        "connection_request_count": st.connections_total,
        "connection_rejected": st.connections_rejected,
        "bytes_received_count": st.bytes_received,
        "unrecoverable_error_count": 1 if m.failed is not None else 0,
        "prep_processor_request_queued": own["prep_processor_request_queued"],
        "outstanding_changes_queued": own["outstanding_changes_queued"],
        "outstanding_changes_removed": own["outstanding_changes_removed"],
        "revalidate_count": mm.revalidate_count,
        "connection_revalidate_count": mm.connection_revalidate_count,
        "request_commit_queued": mm.commits_queued,
        "learner_proposal_received_count": mm.proposals_received,
        "learner_commit_received_count": own["learner_commit_received_count"],
        "proposal_count": mm.proposal_count,
        "unsuccessful_handshake": tls.failed_handshakes if tls is not None else 0,
        "response_bytes": st.sent_bytes - st.watch_bytes,
        "watch_bytes": st.watch_bytes,
        "sync_processor_request_queued": m.writer.queued,
    }
    return {name: measured.get(name, 0) for name in COUNTER_NAMES}


# ServerMetrics' counters, in its order; those not in _counters' `measured` are CONSTANT.
COUNTER_NAMES = (
    "looking_count", "diff_count", "snap_count", "commit_count", "connection_request_count", "connection_rejected",
    "bytes_received_count", "unrecoverable_error_count", "add_dead_watcher_stall_time", "dead_watchers_queued",
    "dead_watchers_cleared", "response_packet_cache_hits", "response_packet_cache_misses",
    "response_packet_get_children_cache_hits", "response_packet_get_children_cache_misses", "ensemble_auth_success",
    "ensemble_auth_fail", "ensemble_auth_skip", "prep_processor_request_queued", "outstanding_changes_queued",
    "outstanding_changes_removed", "revalidate_count", "connection_drop_count", "connection_revalidate_count",
    "sessionless_connections_expired", "stale_sessions_expired", "request_commit_queued", "throttled_ops",
    "learner_proposal_received_count", "learner_commit_received_count", "proposal_count",
    "quit_leading_due_to_disloyal_voter", "stale_requests", "stale_requests_dropped", "stale_replies",
    "request_throttle_wait_count", "large_requests_rejected", "digest_mismatches_count", "unsuccessful_handshake",
    "insecure_admin_count", "tls_handshake_exceeded", "cnxn_closed_without_zk_server_running",
    "skip_learner_request_to_next_processor_count", "requests_not_forwarded_to_commit_processor",
    "response_bytes", "watch_bytes", "sync_processor_request_queued",
)
COUNTERS = frozenset(COUNTER_NAMES)
STRINGS = frozenset({"version", "server_state", "peer_state"})

# ServerMetrics' summaries in its order: name -> DetailLevel.ADVANCED (quantiles) or BASIC.
SUMMARY_NAMES = {
    "fsynctime": False, "snapshottime": False, "dbinittime": False, "readlatency": True, "updatelatency": True,
    "propagation_latency": True, "follower_sync_time": False, "observer_sync_time": False, "election_time": False,
    "connection_token_deficit": False, "inflight_snap_count": False, "inflight_diff_count": False,
    "node_created_watch_count": False, "node_deleted_watch_count": False, "node_changed_watch_count": False,
    "node_children_watch_count": False, "dead_watchers_cleaner_latency": True, "prep_processor_queue_time_ms": True,
    "prep_processor_queue_size": False, "prep_process_time": False, "proposal_process_time": False,
    "close_session_prep_time": True, "unavailable_time": False, "leader_unavailable_time": False,
    "requests_in_session_queue": False, "pending_session_queue_size": False,
    "reads_after_write_in_session_queue": False, "reads_issued_from_session_queue": False,
    "session_queues_drained": False, "time_waiting_empty_pool_in_commit_processor_read_ms": False,
    "write_batch_time_in_commit_processor": False, "concurrent_request_processing_in_commit_processor": False,
    "read_commit_proc_req_queued": False, "write_commit_proc_req_queued": False,
    "commit_commit_proc_req_queued": False, "read_commit_proc_issued": False, "write_commit_proc_issued": False,
    "read_commitproc_time_ms": True, "write_commitproc_time_ms": True, "local_write_committed_time_ms": True,
    "server_write_committed_time_ms": True, "commit_process_time": False, "om_proposal_process_time_ms": True,
    "om_commit_process_time_ms": True, "read_final_proc_time_ms": True, "write_final_proc_time_ms": True,
    "proposal_latency": True, "proposal_ack_creation_latency": True, "commit_propagation_latency": True,
    "startup_txns_loaded": False, "startup_txns_load_time": False, "startup_snap_load_time": False,
    "sync_processor_queue_and_flush_time_ms": True, "sync_processor_queue_size": False,
    "sync_processor_queue_time_ms": True, "sync_processor_queue_flush_time_ms": True, "sync_process_time": False,
    "sync_processor_batch_size": False, "quorum_ack_latency": True, "netty_queued_buffer_capacity": False,
    "learner_request_processor_queue_size": False, "socket_closing_time": False,
    "request_throttle_queue_time_ms": True, "jvm_pause_time_ms": True,
}


def _summaries(server: ZkServer) -> dict[str, Summary]:
    m = server.member
    mm = m.metrics
    st = server.stats
    w = m.writer
    own = m.counters()
    storage = server.storage
    log = getattr(storage, "log", None)
    snapshotter = getattr(storage, "snapshotter", None)
    ensemble = server.ensemble
    leading = ensemble and server.is_leader()
    learning = ensemble and not leading
    prepped = own["prep_processor_request_queued"]
    diffs, snaps = own["diff_count"], own["snap_count"]
    measured: dict[str, Summary] = {
        "fsynctime": getattr(log, "fsync_time", _IDLE),
        "snapshottime": snapshotter.snapshot_time if snapshotter is not None else _IDLE,
        "dbinittime": mm.dbinit_time,
        "readlatency": _zeros(max(0, st.count - st.latencies().count)),
        "updatelatency": st.latencies(),
        "propagation_latency": mm.propagation,
        "follower_sync_time": mm.follower_sync_time,
        "observer_sync_time": mm.observer_sync_time,
        "election_time": mm.election_time,
        "connection_token_deficit": _zeros(st.connections_total),
        "inflight_snap_count": _zeros(2 * snaps, snaps, 1 if snaps else 0),
        "inflight_diff_count": _zeros(2 * diffs, diffs, 1 if diffs else 0),
        "node_created_watch_count": mm.watch_triggers[1],
        "node_deleted_watch_count": mm.watch_triggers[2],
        "node_changed_watch_count": mm.watch_triggers[3],
        "node_children_watch_count": mm.watch_triggers[4],
        "prep_processor_queue_time_ms": _zeros(prepped),
        "prep_processor_queue_size": _zeros(prepped),
        "prep_process_time": _zeros(prepped),
        "proposal_process_time": _zeros(prepped),
        "close_session_prep_time": _zeros(own["close_session_prepped"]),
        "unavailable_time": mm.unavailable_time,
        "leader_unavailable_time": mm.leader_unavailable_time,
        "proposal_latency": mm.proposal_latency,
        "proposal_ack_creation_latency": w.queue_and_flush if ensemble else _IDLE,
        "commit_propagation_latency": mm.propagation if learning else _IDLE,
        "startup_txns_loaded": mm.txns_loaded,
        "startup_txns_load_time": mm.txns_load_time,
        "startup_snap_load_time": mm.snap_load_time,
        "sync_processor_queue_and_flush_time_ms": w.queue_and_flush,
        "sync_processor_queue_size": w.queue_size,
        "sync_processor_queue_time_ms": w.queue_time,
        "sync_processor_queue_flush_time_ms": w.flush_time,
        "sync_process_time": w.flush_time,
        "sync_processor_batch_size": w.batch_size,
        "quorum_ack_latency": mm.propagation if leading else _IDLE,
    }
    return {name: measured.get(name, _IDLE) for name in SUMMARY_NAMES}


def collect(server: ZkServer) -> Values:
    """Every metric of `server` now, by kind."""
    v = Values()
    v.gauges = _gauges(server)
    v.gauges.update(_quorum_values(server))
    v.counters = _counters(server)
    v.summaries = {name: (s, SUMMARY_NAMES[name]) for name, s in _summaries(server).items()}
    return v


def summary_rows(summary: Summary, name: str, advanced: bool) -> Iterator[tuple[str, int | float]]:
    """A summary's mntr keys; an ADVANCED one with no reservoir (a constant or a derived run of
    0s) prints its quantiles as 0, as ZooKeeper's before its first sample."""
    yield from Summary.rows(summary, name)
    if advanced:
        if isinstance(summary, Quantiles):
            ordered = sorted(summary.samples)
            for prefix, q in QUANTILES:
                yield f"{prefix}_{name}", summary.quantile(q, ordered)
        else:
            for prefix, _ in QUANTILES:
                yield f"{prefix}_{name}", 0


def monitor(server: ZkServer) -> dict[str, Any]:
    """ZooKeeper's monitor values for this server: gauges, counters, summaries."""
    v = collect(server)
    values: dict[str, Any] = dict(v.gauges)
    values.update(v.counters)
    for name, (summary, advanced) in v.summaries.items():
        values.update(summary_rows(summary, name, advanced))
    return values


def _quorum_values(server: ZkServer) -> dict[str, Any]:
    """The keys ZooKeeper adds on ensemble members (quorum_size) and on the leader (Leader's gauges)."""
    if not server.ensemble:
        return {}
    m = server.member
    core = m.core
    values: dict[str, Any] = {"quorum_size": len(core.voters)}
    if server.is_leader():
        last, low, high = m.metrics.proposal_sizes
        values.update({
            "learners": len(core.forwarding),
            "synced_followers": len(core.synced & core.voters),
            "synced_non_voting_followers": 0,
            "synced_observers": len(core.synced & core.observers),
            "pending_syncs": 0,
            "leader_uptime": max(0, m.clock() - m.leader_since_ms),
            "last_proposal_size": last, "min_proposal_size": low, "max_proposal_size": high,
        })
    values["peer_state"] = f"{m.soft.state} - {'broadcast' if m.serving else 'election'}"
    return values


def reset_server_stats(server: ZkServer) -> None:
    """srst: ServerStats.reset, and with it ZooKeeper's ServerMetrics.resetAll (and the leader's
    proposal sizes): the server's totals and every counter and summary start again from 0,
    the open connections' own counts stay (the totals hold minus what they have counted so far)."""
    st = server.stats
    st.reset()
    for c in server.connections:
        st.packets_received -= c.packets_received
        st.packets_sent -= c.packets_sent
    server.member.reset_metrics()
    storage = server.storage
    log = getattr(storage, "log", None)
    if getattr(log, "fsync_time", None) is not None:
        log.fsync_time.reset()
    snapshotter = getattr(storage, "snapshotter", None)
    if snapshotter is not None:
        snapshotter.snapshot_time.reset()
