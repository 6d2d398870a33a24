"""Four-letter words on the client port (FourLetterCommands), honouring the whitelist.

The values are metrics.py's, which the AdminServer and Prometheus read too."""

from __future__ import annotations

import os
import platform
import struct
import sys
import time
from decimal import Decimal

from . import metrics
from .metrics import VERSION, ZkServer

COMMANDS = ("ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "envi", "mntr", "wchs", "wchc", "wchp",
            "dump", "isro", "dirs", "gtmk", "stmk", "hash")


NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


def run(server: ZkServer, word: str, arg: bytes = b"") -> str:
    """The answer to `word`; `arg` is what follows it on the wire (stmk's 8-byte mask)."""
    if word not in server.config.four_letter_words:
        return f"{word} is not executed because it is not in the whitelist.\n"
    if server.state in ("looking", "error") and word in ("srvr", "stat", "mntr", "cons", "wchs", "wchc", "wchp", "dump"):
        return NOT_SERVING
    if word == "stmk":
        return _stmk(server, arg)
    return _HANDLERS[word](server)


def _ruok(s: ZkServer) -> str:
    return "imok"


def _srvr(s: ZkServer) -> str:
    st = s.stats
    received, sent = metrics.packets(s)
    return (f"Zookeeper version: {VERSION}\n"
            f"Latency min/avg/max: {st.min_latency}/{metrics.avg_latency(s)}/{st.max_latency}\n"
            f"Received: {received}\n"
            f"Sent: {sent}\n"
            f"Connections: {len(s.connections)}\n"
            f"Outstanding: {s.member.outstanding}\n"
            f"Zxid: 0x{s.tree.last_zxid:x}\n"
            f"Mode: {s.state}\n"
            f"Node count: {metrics.node_count(s)}\n"
            + (_proposal_sizes(s) if s.is_leader() else ""))


def _proposal_sizes(s: ZkServer) -> str:
    v = metrics.monitor(s)
    return f"Proposal sizes last/min/max: {v['last_proposal_size']}/{v['min_proposal_size']}/{v['max_proposal_size']}\n"


def _connection_line(s: ZkServer, c: object, brief: bool) -> str:
    """ServerCnxn.dumpConnectionInfo: `stat` gives the brief form; a connection without a
    session (a four-letter word's) has only the brief part in either."""
    head = (f" /{c.peer[0]}:{c.peer[1]}[{c.interest}](queued={len(c.pending)},recved={c.packets_received},"
            f"sent={c.packets_sent}")
    if brief or not c.session_id:
        return head + ")\n"
    st = metrics.connection_stats(c)
    lcxid = f",lcxid=0x{c.last_cxid:x}" if c.last_cxid >= 0 else ""
    return (f"{head},sid=0x{c.session_id:x},lop={st['last_operation']},est={metrics.established_ms(s, c)},"
            f"to={c.timeout}{lcxid},lzxid=0x{c.last_zxid & 0xFFFFFFFFFFFFFFFF:x},lresp={c.last_response_ms},"
            f"llat={st['last_latency']},minlat={st['min_latency']},avglat={st['avg_latency']},"
            f"maxlat={st['max_latency']})\n")


def _connections(s: ZkServer, brief: bool) -> str:
    return "".join(_connection_line(s, c, brief) for c in s.connections) + "\n"


def _cons_all(s: ZkServer) -> str:
    return _connections(s, brief=False)


def _stat(s: ZkServer) -> str:
    text = _srvr(s)
    head, _, rest = text.partition("Latency")
    return head + "Clients:\n" + _connections(s, brief=True) + "Latency" + rest


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
            f"serverId={s.server_id()}\n" + (_quorum_conf(s) if s.ensemble else ""))


def _quorum_conf(s: ZkServer) -> str:
    """What ZooKeeper's conf adds on an ensemble member (QuorumPeerConfig), the dynamic
    configuration last (zkpy has no reconfig: version 0)."""
    c = s.config
    me = c.servers[s.server_id()]
    members = "".join(f"server.{sid}={spec.host}:{spec.peer_port}:{spec.election_port}:{spec.role}"
                      + (f";{spec.client_host or '0.0.0.0'}:{spec.client_port}" if spec.client_port else "") + "\n"
                      for sid, spec in sorted(c.servers.items()))
    return (f"initLimit={c.init_limit}\nsyncLimit={c.sync_limit}\nelectionAlg=3\n"
            f"electionPort={me.election_port}\nquorumPort={me.peer_port}\n"
            f"peerType={1 if me.role == 'observer' else 0}\nmembership: \n{members}version=0\n")


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
        ("user.name", _user()),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
        ("process.id", str(os.getpid())),
    ]
    return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in env)


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (ImportError, KeyError, OSError):
        return ""


def _mntr(s: ZkServer) -> str:
    """ZooKeeper's layout: the AdminServer's monitor keys with a zk_ prefix, tab, value."""
    return "".join(f"zk_{k}\t{java_double(v) if type(v) is float else v}\n" for k, v in metrics.monitor(s).items())


def java_double(v: float) -> str:
    """Double.toString: decimal from 10^-3 to 10^7, else "d.dddE<n>" (an average of 0.0002 is
    "2.0E-4" in ZooKeeper's mntr)."""
    if v != v or v in (float("inf"), float("-inf")):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if v == 0 or 1e-3 <= abs(v) < 1e7:
        return repr(v)
    sign, digits, exponent = Decimal(repr(v)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{exponent + len(digits) - 1}"


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


def _java_date(epoch_ms: int) -> str:
    """java.util.Date.toString() in UTC, as ZooKeeper's dump prints expiry times."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch_ms / 1000))


def _expiry_sets(buckets: dict[int, list[str]]) -> list[str]:
    out = []
    for at in sorted(buckets):
        out.append(f"{len(buckets[at])} expire at {_java_date(at)}:\n")
        out.extend(f"\t{line}\n" for line in buckets[at])
    return out


def _dump(s: ZkServer) -> str:
    """ZooKeeper's layout: sessions and connections by the tick bucket they expire in
    (ExpiryQueue), then the ephemerals by session."""
    t = s.tree
    to_epoch = metrics.monotonic_to_epoch_ms(s)
    expire_at = getattr(s.sessions, "expire_at", {})
    sessions: dict[int, list[str]] = {}
    for sid in sorted(expire_at):
        sessions.setdefault(expire_at[sid] + to_epoch, []).append(f"0x{sid:x}")
    out = ["SessionTracker dump:\n"]
    if s.ensemble and not s.is_leader():
        # A learner's tracker (LearnerSessionTracker) lists the global sessions with their timeouts.
        out.append(f"Global Sessions({len(t.sessions)}):\n")
        out.extend(f"0x{sid:x}\t{t.sessions[sid]}ms\n" for sid in sorted(t.sessions))
    else:
        out.append(f"Session Sets ({len(sessions)})/({len(expire_at)}):\n")
        out += _expiry_sets(sessions)
    out.append("ephemeral nodes dump:\n")
    out.append(f"Sessions with Ephemerals ({len(t.ephemerals)}):\n")
    for sid in sorted(t.ephemerals):
        out.append(f"0x{sid:x}:\n")
        out.extend(f"\t{p}\n" for p in sorted(t.ephemerals[sid]))
    tick = s.config.tick_time
    idle = s.member.clock() + s.config.min_timeout
    connections: dict[int, list[str]] = {}
    for c in s.connections:
        at = expire_at.get(c.session_id) or (idle // tick + 1) * tick
        connections.setdefault(at + to_epoch, []).append(f"ip: /{c.peer[0]}:{c.peer[1]} sessionId: 0x{c.session_id:x}")
    out.append("Connections dump:\n")
    out.append(f"Connections Sets ({len(connections)})/({len(s.connections)}):\n")
    out += _expiry_sets(connections)
    return "".join(out)


def _gtmk(s: ZkServer) -> str:
    return str(metrics.trace_mask(s))


def _stmk(s: ZkServer, arg: bytes) -> str:
    """Kept and reported, as ZooKeeper's; zkpy writes no per-request trace whatever the mask."""
    (mask,) = struct.unpack(">q", arg[:8])
    s.trace_mask = mask  # type: ignore[attr-defined]
    return str(mask)


def _hash(s: ZkServer) -> str:
    """ZooKeeper's digest log, one `zxid: digest` line per digest interval; zkpy keeps no
    digest per zxid, so none (as ZooKeeper's before its first interval)."""
    return ""


def _isro(s: ZkServer) -> str:
    if s.state == "looking":
        return "null"
    return "ro" if s.state == "read-only" else "rw"


def _dirs(s: ZkServer) -> str:
    snap_dir, log_dir = metrics.data_dirs(s)
    return f"datadir_size: {metrics.dir_size(snap_dir)}\nlogdir_size: {metrics.dir_size(log_dir)}\n"


_HANDLERS = {
    "ruok": _ruok, "srvr": _srvr, "stat": _stat, "conf": _conf, "cons": _cons_all, "crst": _crst,
    "srst": _srst, "envi": _envi, "mntr": _mntr, "wchs": _wchs, "wchc": _wchc, "wchp": _wchp,
    "dump": _dump, "isro": _isro, "dirs": _dirs,
    "gtmk": _gtmk, "hash": _hash,
}
