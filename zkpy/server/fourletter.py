"""Four-letter words on the client port (FourLetterCommands), honouring the whitelist.

The values are metrics.py's, which the AdminServer and Prometheus read too."""

from __future__ import annotations

import os
import platform
import sys

from . import metrics
from .metrics import VERSION, ZkServer

COMMANDS = ("ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "envi", "mntr", "wchs", "wchc", "wchp",
            "dump", "isro", "dirs")


NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


def run(server: ZkServer, word: str) -> str:
    if word not in server.config.four_letter_words:
        return f"{word} is not executed because it is not in the whitelist.\n"
    if server.state in ("looking", "error") and word in ("srvr", "stat", "mntr", "cons", "wchs", "wchc", "wchp", "dump"):
        return NOT_SERVING
    return _HANDLERS[word](server)


def _ruok(s: ZkServer) -> str:
    return "imok"


def _srvr(s: ZkServer) -> str:
    st = s.stats
    received, sent = metrics.packets(s)
    return (f"Zookeeper version: {VERSION}\n"
            f"Latency min/avg/max: {st.min_latency}/{metrics.avg_latency(s):.4f}/{st.max_latency}\n"
            f"Received: {received}\n"
            f"Sent: {sent}\n"
            f"Connections: {len(s.connections)}\n"
            f"Outstanding: {s.member.outstanding}\n"
            f"Zxid: 0x{s.tree.last_zxid:x}\n"
            f"Mode: {s.state}\n"
            f"Node count: {metrics.node_count(s)}\n")


def _cons_lines(s: ZkServer) -> str:
    lines = []
    for c in sorted(s.connections, key=lambda c: c.peer):
        lines.append(f" /{c.peer[0]}:{c.peer[1]}[1](queued={len(c.pending)},recved={c.packets_received},"
                     f"sent={c.packets_sent},sid=0x{c.session_id:x},lop=NA,est={int(c.connected_at * 1000)},"
                     f"to={c.timeout},lzxid=0x{c.last_zxid:x})\n")
    return "".join(lines) + "\n"


def _stat(s: ZkServer) -> str:
    text = _srvr(s)
    head, _, rest = text.partition("Latency")
    return head + "Clients:\n" + _cons_lines(s) + "Latency" + rest


def _conf(s: ZkServer) -> str:
    c = s.config
    snap_dir, log_dir = metrics.data_dirs(s)
    return (f"clientPort={s.port}\n"
            f"secureClientPort={s.secure_port if s.secure_port is not None else -1}\n"
            f"dataDir={snap_dir or ''}\n"
            f"dataDirSize={metrics.dir_size(snap_dir)}\n"
            f"dataLogDir={log_dir or ''}\n"
            f"dataLogSize={metrics.dir_size(log_dir)}\n"
            f"tickTime={c.tick_time}\n"
            f"maxClientCnxns={c.max_client_cnxns}\n"
            f"minSessionTimeout={c.min_timeout}\n"
            f"maxSessionTimeout={c.max_timeout}\n"
            f"clientPortListenBacklog=-1\n"
            f"serverId={s.server_id()}\n")


def _crst(s: ZkServer) -> str:
    metrics.reset_connection_stats(s)
    return "Connection stats reset.\n"


def _srst(s: ZkServer) -> str:
    metrics.reset_server_stats(s)
    return "Server stats reset.\n"


def _envi(s: ZkServer) -> str:
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


def _mntr(s: ZkServer) -> str:
    """ZooKeeper's layout: the AdminServer's monitor keys with a zk_ prefix, tab, value."""
    return "".join(f"zk_{k}\t{v}\n" for k, v in metrics.monitor(s).items())


def _wchs(s: ZkServer) -> str:
    connections, paths, total = metrics.watch_summary(s)
    return f"{connections} connections watching {paths} paths\nTotal watches:{total}\n"


def _wchc(s: ZkServer) -> str:
    out = []
    for sid, paths in metrics.watches_by_session(s).items():
        out.append(f"0x{sid:x}\n")
        out.extend(f"\t{p}\n" for p in paths)
    return "".join(out) + "\n"


def _wchp(s: ZkServer) -> str:
    out = []
    for path, sessions in metrics.watches_by_path(s).items():
        out.append(f"{path}\n")
        out.extend(f"\t0x{sid:x}\n" for sid in sessions)
    return "".join(out) + "\n"


def _dump(s: ZkServer) -> str:
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


def _isro(s: ZkServer) -> str:
    if s.state == "looking":
        return "null"
    return "ro" if s.state == "read-only" else "rw"


def _dirs(s: ZkServer) -> str:
    snap_dir, log_dir = metrics.data_dirs(s)
    return f"datadir_size: {metrics.dir_size(snap_dir)}\nlogdir_size: {metrics.dir_size(log_dir)}\n"


_HANDLERS = {
    "ruok": _ruok, "srvr": _srvr, "stat": _stat, "conf": _conf, "cons": _cons_lines, "crst": _crst,
    "srst": _srst, "envi": _envi, "mntr": _mntr, "wchs": _wchs, "wchc": _wchc, "wchp": _wchp,
    "dump": _dump, "isro": _isro, "dirs": _dirs,
}
