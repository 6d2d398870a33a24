"""ZooKeeper 3.8's AdminServer: `GET <admin.commandURL>/<command>` answers JSON.

The commands, their names and short names, their keys and JSON types are those of
`org.apache.zookeeper.server.admin.Commands` in 3.8 (compared key by key against Debian's
Apache ZooKeeper by tests/test_admin.py).  Every answer carries `"command"` (the primary
name) and `"error"` (null, or why the command did not run), with HTTP 200 as in ZooKeeper;
`<commandURL>` alone lists the primary names as links.  ZooKeeper 3.8 authenticates no
admin command (its auth and the snapshot/restore commands came with 3.9), so neither does zkpy.
The commands only read (and, for the resets, zero) the server's state: endpoints.py serves
them over HTTP.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from . import metrics
from .metrics import ZkServer

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
DEFAULT_TRACE_MASK = 306  # ZooTrace's default: client ping, request and server traces
Handler = Callable[["ZkServer", dict[str, str]], dict[str, Any]]


class Command:
    __slots__ = ("handler", "names", "server_required")

    def __init__(self, names: tuple[str, ...], handler: Handler, server_required: bool = True) -> None:
        self.names = names
        self.handler = handler
        self.server_required = server_required

    @property
    def primary(self) -> str:
        return self.names[0]


COMMANDS: dict[str, Command] = {}  # every name and alias -> its command


def command(*names: str, server_required: bool = True) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        cmd = Command(names, handler, server_required)
        for name in names:
            COMMANDS[name] = cmd
        return handler
    return register


def primary_names() -> list[str]:
    return sorted({c.primary for c in COMMANDS.values()})


def run(server: ZkServer, name: str, kwargs: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON object ZooKeeper's Commands.runCommand answers for `name`."""
    cmd = COMMANDS.get(name)
    if cmd is None:
        return {"command": name, "error": f"Unknown command: {name}"}
    if cmd.server_required and server.state in ("looking", "error"):
        return {"command": cmd.primary, "error": NOT_SERVING}
    body = cmd.handler(server, kwargs or {})
    response = {**body, "command": cmd.primary}
    response.setdefault("error", None)
    return response


# ---------------------------------------------------------------- the commands


@command("connection_stat_reset", "crst")
def _crst(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    metrics.reset_connection_stats(s)
    return {}


@command("configuration", "conf", "config")
def _conf(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    c = s.config
    snap_dir, log_dir = metrics.data_dirs(s)
    return {"client_port": s.port, "data_dir": snap_dir or "", "data_log_dir": log_dir or "",
            "tick_time": c.tick_time, "max_client_cnxns": c.max_client_cnxns,
            "min_session_timeout": c.min_timeout, "max_session_timeout": c.max_timeout,
            "server_id": s.server_id(), "client_port_listen_backlog": -1}


def connection_info(s: ZkServer, conn: Any, brief: bool) -> dict[str, Any]:
    """ServerCnxn.getConnectionInfo: the per-connection stats cons prints (metrics.connection_stats)."""
    info: dict[str, Any] = {"remote_socket_address": f"{conn.peer[0]}:{conn.peer[1]}", "interest_ops": conn.interest,
                            "outstanding_requests": len(conn.pending), "packets_received": conn.packets_received,
                            "packets_sent": conn.packets_sent}
    if brief:
        return info
    st = metrics.connection_stats(conn)
    info.update({"session_id": conn.session_id, "last_operation": st["last_operation"],
                 "established": metrics.established_ms(s, conn), "session_timeout": conn.timeout,
                 "last_cxid": conn.last_cxid, "last_zxid": conn.last_zxid,
                 "last_response_time": conn.last_response_ms, "last_latency": st["last_latency"],
                 "min_latency": st["min_latency"], "avg_latency": st["avg_latency"], "max_latency": st["max_latency"]})
    return info


def _sorted_connections(s: ZkServer) -> list[Any]:
    return sorted(s.connections, key=lambda c: c.peer)


@command("connections", "cons")
def _cons(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    return {"connections": [connection_info(s, c, False) for c in _sorted_connections(s)], "secure_connections": []}


@command("hash")
def _hash(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    """ZooKeeper's digest log (digest.enabled); zkpy's tree digests are not kept per zxid: empty,
    as ZooKeeper's is until its first digest interval."""
    return {"digests": []}


@command("dirs")
def _dirs(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    snap_dir, log_dir = metrics.data_dirs(s)
    return {"datadir_size": metrics.dir_size(snap_dir), "logdir_size": metrics.dir_size(log_dir)}


@command("dump")
def _dump(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    by_expiry: dict[str, list[int]] = {}
    for sid, at in sorted(s.sessions.expire_at.items()):
        by_expiry.setdefault(str(at), []).append(sid)
    ephemerals = {str(sid): sorted(paths) for sid, paths in sorted(s.tree.ephemerals.items())}
    return {"expiry_time_to_session_ids": by_expiry, "session_id_to_ephemeral_paths": ephemerals}


@command("environment", "env", "envi", server_required=False)
def _envi(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    return {"zookeeper.version": metrics.VERSION, "host.name": platform.node(),
            "python.version": sys.version.split()[0], "python.implementation": platform.python_implementation(),
            "os.name": platform.system(), "os.arch": platform.machine(), "os.version": platform.release(),
            "user.name": _user(), "user.home": os.path.expanduser("~"), "user.dir": os.getcwd(),
            "process.id": str(os.getpid())}


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (ImportError, KeyError, OSError):
        return ""


@command("get_trace_mask", "gtmk", server_required=False)
def _gtmk(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    return {"tracemask": getattr(s, "trace_mask", DEFAULT_TRACE_MASK)}


@command("set_trace_mask", "stmk", server_required=False)
def _stmk(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    """Kept and reported, as ZooKeeper's; zkpy writes no per-request trace whatever the mask."""
    value = kw.get("traceMask")
    if value is None:
        return {"error": "setTraceMask requires long traceMask argument"}
    try:
        mask = int(value)
    except ValueError:
        return {"error": f"setTraceMask requires long traceMask argument, got {value}"}
    s.trace_mask = mask  # type: ignore[attr-defined]
    return {"tracemask": mask}


@command("initial_configuration", "icfg")
def _icfg(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    """The zoo.cfg as read at start; null on ensemble members, as ZooKeeper 3.8's QuorumPeer
    never sets it."""
    if s.ensemble:
        return {"initial_configuration": None}
    text = ""
    if s.config.source:
        try:
            with open(s.config.source, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            pass
    return {"initial_configuration": text}


@command("is_read_only", "isro")
def _isro(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    return {"read_only": s.state == "read-only"}


@command("last_snapshot", "lsnp")
def _lsnp(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    """The newest snapshot file's zxid (hex, no 0x) and modification time in seconds; -1 and -1
    when there is none (no dataDir), as ZooKeeper's."""
    snap_dir, _ = metrics.data_dirs(s)
    best = (-1, -1)
    if snap_dir:
        try:
            with os.scandir(snap_dir) as entries:
                for e in entries:
                    if e.name.startswith("snapshot.") and e.is_file():
                        try:
                            zxid = int(e.name[len("snapshot."):], 16)
                        except ValueError:
                            continue
                        best = max(best, (zxid, int(e.stat().st_mtime)))
        except OSError:
            pass
    return {"zxid": f"{best[0]:x}" if best[0] >= 0 else "ffffffffffffffff", "timestamp": best[1]}


@command("leader", "lead")
def _leader(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    if not s.ensemble:
        return {"error": "server is not initialized"}
    leader = s.member.soft.leader
    spec = s.config.servers.get(leader) if leader is not None else None
    return {"is_leader": s.is_leader(), "leader_id": leader if leader is not None else -1,
            "leader_ip": spec.host if spec is not None else ""}


@command("monitor", "mntr", server_required=False)
def _monitor(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    if s.state in ("looking", "error"):
        return {"error": NOT_SERVING}
    return metrics.monitor(s)


@command("observer_connection_stat_reset", "orst")
def _orst(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    return {}  # zkpy's observers keep no per-connection stats to reset


@command("observers", "obsr")
def _obsr(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    observers: list[dict[str, Any]] = []
    if s.is_leader():
        core = s.member.core
        observers = [{"learner_master_id": s.server_id(), "learner_id": sid}
                     for sid in sorted(core.synced & core.observers)]
    return {"synced_observers": len(observers), "observers": observers}


@command("ruok")
def _ruok(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    return {}


def _server_stats(s: ZkServer) -> dict[str, Any]:
    """ServerStats as ZooKeeper's Jackson serialises it."""
    st = s.stats
    received, sent = metrics.packets(s)
    snap_dir, log_dir = metrics.data_dirs(s)
    last, low, high = st.response_sizes
    responses = {"last_buffer_size": last, "min_buffer_size": low, "max_buffer_size": high}
    return {"packets_sent": sent, "packets_received": received, "fsync_threshold_exceed_count": 0,
            "client_response_stats": responses, "data_dir_size": metrics.dir_size(snap_dir),
            "log_dir_size": metrics.dir_size(log_dir), "provider_null": False, "server_state": s.state,
            "last_processed_zxid": s.tree.last_zxid, "outstanding_requests": s.member.outstanding,
            "avg_latency": metrics.avg_latency(s), "max_latency": st.max_latency, "min_latency": st.min_latency,
            "num_alive_client_connections": len(s.connections), "uptime": int((time.time() - st.started) * 1000),
            "auth_failed_count": st.auth_failed, "non_mtlsremote_conn_count": 0, "non_mtlslocal_conn_count": 0}


def _srvr_body(s: ZkServer) -> dict[str, Any]:
    server_stats = _server_stats(s)
    body = {"version": metrics.VERSION, "read_only": s.state == "read-only", "server_stats": server_stats,
            "client_response": server_stats["client_response_stats"]}
    if s.is_leader():  # zkpy does not size its proposals: ZooKeeper's 'none yet'
        body["proposal_stats"] = {"last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1}
    body["node_count"] = metrics.node_count(s)
    return body


@command("server_stats", "srvr")
def _srvr(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    return _srvr_body(s)


@command("stats", "stat")
def _stat(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    body = _srvr_body(s)
    body["connections"] = [connection_info(s, c, True) for c in _sorted_connections(s)]
    body["secure_connections"] = []
    return body


@command("stat_reset", "srst")
def _srst(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    metrics.reset_server_stats(s)
    return {}


@command("system_properties", "sysp", server_required=False)
def _sysp(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    """zkpy's system properties: the -D properties it was given (ZooKeeper's JVM has its own)."""
    return dict(sorted(s.config.properties.items()))


@command("voting_view")
def _voting_view(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    if not s.ensemble:
        return {"current_config": {}}
    view = {}
    for sid, spec in sorted(s.config.servers.items()):
        if spec.role != "participant":
            continue
        if sid == s.server_id():  # as ZooKeeper's, a member knows its own client address
            client = f"{s.host}:{s.port}"
        else:
            client = f"{spec.client_host or '0.0.0.0'}:{spec.client_port}" if spec.client_port else ""
        view[str(sid)] = {"server_addresses": [f"{spec.host}:{spec.peer_port}"],
                          "election_addresses": [f"{spec.host}:{spec.election_port}"],
                          "client_address": client, "learner_type": spec.role}
    return {"current_config": view}


@command("watches", "wchc")
def _wchc(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    return {"session_id_to_watched_paths": {str(sid): p for sid, p in metrics.watches_by_session(s).items()}}


@command("watches_by_path", "wchp")
def _wchp(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    return {"path_to_session_ids": metrics.watches_by_path(s)}


@command("watch_summary", "wchs")
def _wchs(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    connections, paths, total = metrics.watch_summary(s)
    return {"num_connections": connections, "num_paths": paths, "num_total_watches": total}


@command("zabstate", server_required=False)
def _zabstate(s: ZkServer, kw: dict[str, str]) -> dict[str, Any]:
    if not s.ensemble:
        return {"voting": False, "zabstate": ""}
    m = s.member
    spec = s.config.servers[m.sid]
    zxid = s.tree.last_zxid
    if m.soft.state == "looking":
        phase = "election"
    elif m.serving:
        phase = "broadcast"
    else:
        phase = "synchronization"
    client = f"{s.host}:{s.port}"
    return {"myid": m.sid, "is_leader": s.is_leader(), "quorum_address": _addresses(spec.host, spec.peer_port),
            "election_address": _addresses(spec.host, spec.election_port), "client_address": client,
            "voting": spec.role == "participant", "last_zxid": f"0x{zxid:x}", "zab_epoch": zxid >> 32,
            "zab_counter": zxid & 0xFFFFFFFF, "zabstate": phase}


def _addresses(host: str, port: int) -> dict[str, Any]:
    """A MultipleAddresses of one address, as ZooKeeper's Jackson writes its getters."""
    address = f"{host}:{port}"
    return {"empty": False, "all_addresses": [address], "all_reachable_addresses": [address], "one": address,
            "reachable_address": address, "wildcard_addresses": [f"0.0.0.0:{port}"], "all_ports": [port],
            "all_host_strings": [host], "all_reachable_addresses_or_all": [address], "reachable_or_one": address}
