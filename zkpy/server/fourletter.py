"""Four-letter words on the client port (FourLetterCommands), honouring the whitelist."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any, Protocol

from .. import __version__


class ZkServer(Protocol):
    """The status the words read (node.ZkServer provides it; nothing here changes the server
    but the stats resets)."""

    config: Any
    port: int
    ensemble: bool
    member: Any
    state: str
    tree: Any
    sessions: Any
    connections: set
    stats: Any

    def server_id(self) -> int: ...
    def is_leader(self) -> bool: ...

COMMANDS = ("ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "envi", "mntr", "wchs", "wchc", "wchp",
            "dump", "isro", "dirs")
VERSION = f"3.8.4-zkpy-{__version__}, built on 1970-01-01 00:00 UTC"


NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


def run(server: "ZkServer", word: str) -> str:
    if word not in server.config.four_letter_words:
        return f"{word} is not executed because it is not in the whitelist.\n"
    if server.state in ("looking", "error") and word in ("srvr", "stat", "mntr", "cons", "wchs", "wchc", "wchp", "dump"):
        return NOT_SERVING
    return _HANDLERS[word](server)


def _ruok(s: "ZkServer") -> str:
    return "imok"


def _srvr(s: "ZkServer") -> str:
    st = s.stats
    avg = st.total_latency / st.count if st.count else 0
    return (f"Zookeeper version: {VERSION}\n"
            f"Latency min/avg/max: {st.min_latency}/{avg:.4f}/{st.max_latency}\n"
            f"Received: {sum(c.packets_received for c in s.connections) + st.packets_received}\n"
            f"Sent: {sum(c.packets_sent for c in s.connections) + st.packets_sent}\n"
            f"Connections: {len(s.connections)}\n"
            f"Outstanding: {s.member.outstanding}\n"
            f"Zxid: 0x{s.tree.last_zxid:x}\n"
            f"Mode: {s.state}\n"
            f"Node count: {_node_count(s)}\n")


def _cons_lines(s: "ZkServer") -> str:
    lines = []
    for c in sorted(s.connections, key=lambda c: c.peer):
        lines.append(f" /{c.peer[0]}:{c.peer[1]}[1](queued={len(c.pending)},recved={c.packets_received},"
                     f"sent={c.packets_sent},sid=0x{c.session_id:x},lop=NA,est={int(c.connected_at * 1000)},"
                     f"to={c.timeout},lzxid=0x{c.last_zxid:x})\n")
    return "".join(lines) + "\n"


def _stat(s: "ZkServer") -> str:
    text = _srvr(s)
    head, _, rest = text.partition("Latency")
    return head + "Clients:\n" + _cons_lines(s) + "Latency" + rest


def _conf(s: "ZkServer") -> str:
    c = s.config
    return (f"clientPort={s.port}\n"
            f"secureClientPort={s.secure_port if s.secure_port is not None else -1}\n"
            f"dataDir={c.data_dir or ''}\n"
            f"dataDirSize=0\n"
            f"dataLogDir={c.data_log_dir or ''}\n"
            f"dataLogSize=0\n"
            f"tickTime={c.tick_time}\n"
            f"maxClientCnxns={c.max_client_cnxns}\n"
            f"minSessionTimeout={c.min_timeout}\n"
            f"maxSessionTimeout={c.max_timeout}\n"
            f"clientPortListenBacklog=-1\n"
            f"serverId={s.server_id()}\n")


def _crst(s: "ZkServer") -> str:
    for c in s.connections:
        c.packets_received = 0
        c.packets_sent = 0
    return "Connection stats reset.\n"


def _srst(s: "ZkServer") -> str:
    s.stats.reset()
    return "Server stats reset.\n"


def _envi(s: "ZkServer") -> str:
    env = [
        ("zookeeper.version", VERSION),
        ("host.name", platform.node()),
        ("python.version", sys.version.split()[0]),
        ("python.implementation", platform.python_implementation()),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.dir", os.getcwd()),
        ("process.id", str(os.getpid())),
    ]
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in env)


def _mntr(s: "ZkServer") -> str:
    t = s.tree
    st = s.stats
    watches = t.data_watches.count() + t.child_watches.count()
    rows = [
        ("zk_version", VERSION),
        ("zk_server_state", s.state),
        ("zk_avg_latency", f"{st.total_latency / st.count if st.count else 0:.4f}"),
        ("zk_max_latency", st.max_latency),
        ("zk_min_latency", st.min_latency),
        ("zk_packets_received", sum(c.packets_received for c in s.connections) + st.packets_received),
        ("zk_packets_sent", sum(c.packets_sent for c in s.connections) + st.packets_sent),
        ("zk_num_alive_connections", len(s.connections)),
        ("zk_outstanding_requests", s.member.outstanding),
        ("zk_znode_count", _node_count(s)),
        ("zk_watch_count", watches),
        ("zk_ephemerals_count", sum(len(v) for v in t.ephemerals.values())),
        ("zk_approximate_data_size", t.approximate_data_size()),
        ("zk_open_file_descriptor_count", _open_fds()),
        ("zk_max_file_descriptor_count", _max_fds()),
        ("zk_uptime", int((time.time() - st.started) * 1000)),
        ("zk_last_zxid", f"0x{t.last_zxid:x}"),
        ("zk_global_sessions", len(s.sessions.timeouts)),
        ("zk_local_sessions", 0),
    ]
    m = s.member
    if s.ensemble:
        rows.append(("zk_quorum_size", len(m.core.voters)))
    if s.is_leader():
        core = m.core
        rows += [("zk_learners", len(core.forwarding)),
                 ("zk_synced_followers", len(core.synced & core.voters)),
                 ("zk_synced_non_voting_followers", 0),
                 ("zk_synced_observers", len(core.synced & core.observers)),
                 ("zk_pending_syncs", 0),  # a follower's sync is answered at once on the leader
                 ("zk_leader_uptime", max(0, m.clock() - m.leader_since_ms)),
                 ("zk_last_proposal_size", 0)]
    if s.ensemble:
        rows.append(("zk_peer_state", f"{m.soft.state} - {'broadcast' if m.serving else 'election'}"))
    return "".join(f"{k}\t{v}\n" for k, v in rows)


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _max_fds() -> int:
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError):
        return -1


def _wchs(s: "ZkServer") -> str:
    t = s.tree
    conns = set(t.data_watches.by_watcher) | set(t.child_watches.by_watcher)
    paths = set(t.data_watches.by_path) | set(t.child_watches.by_path)
    total = t.data_watches.count() + t.child_watches.count()
    return f"{len(conns)} connections watching {len(paths)} paths\nTotal watches:{total}\n"


def _wchc(s: "ZkServer") -> str:
    t = s.tree
    by_session: dict[int, set[str]] = {}
    for table in (t.data_watches, t.child_watches):
        for conn, paths in table.by_watcher.items():
            by_session.setdefault(getattr(conn, "session_id", 0), set()).update(paths)
    out = []
    for sid in sorted(by_session):
        out.append(f"0x{sid:x}\n")
        out.extend(f"\t{p}\n" for p in sorted(by_session[sid]))
    return "".join(out)


def _wchp(s: "ZkServer") -> str:
    t = s.tree
    by_path: dict[str, set[int]] = {}
    for table in (t.data_watches, t.child_watches):
        for path, watchers in table.by_path.items():
            by_path.setdefault(path, set()).update(getattr(w, "session_id", 0) for w in watchers)
    out = []
    for path in sorted(by_path):
        out.append(f"{path}\n")
        out.extend(f"\t0x{sid:x}\n" for sid in sorted(by_path[path]))
    return "".join(out)


def _dump(s: "ZkServer") -> str:
    t = s.tree
    out = ["SessionTracker dump:\n", f"Global Sessions({len(s.sessions.timeouts)}):\n"]
    for sid in sorted(s.sessions.timeouts):
        out.append(f"0x{sid:x}\t{s.sessions.timeouts[sid]}ms\n")
    out.append("ephemeral nodes dump:\n")
    out.append(f"Sessions with Ephemerals ({len(t.ephemerals)}):\n")
    for sid in sorted(t.ephemerals):
        out.append(f"0x{sid:x}:\n")
        out.extend(f"\t{p}\n" for p in sorted(t.ephemerals[sid]))
    out.append("Connections dump:\n")
    out.append(f"Connections Sets ({len(s.connections)}):\n")
    return "".join(out)


def _node_count(s: "ZkServer") -> int:
    """As ZooKeeper reports it: its node table holds the root twice, as "" and as "/"."""
    return s.tree.node_count() + 1


def _isro(s: "ZkServer") -> str:
    if s.state == "looking":
        return "null"
    return "ro" if s.state == "read-only" else "rw"


def _dirs(s: "ZkServer") -> str:
    return "datadir_size: 0\nlogdir_size: 0\n"


_HANDLERS = {
    "ruok": _ruok, "srvr": _srvr, "stat": _stat, "conf": _conf, "cons": _cons_lines, "crst": _crst,
    "srst": _srst, "envi": _envi, "mntr": _mntr, "wchs": _wchs, "wchc": _wchc, "wchp": _wchp,
    "dump": _dump, "isro": _isro, "dirs": _dirs,
}
