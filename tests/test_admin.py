"""The AdminServer (`admin.enableServer`): ZooKeeper 3.8's /commands JSON over real HTTP.

In-process and `zkpy serve` servers, standalone and a 3-node ensemble, driven by kazoo; and a
differential test that runs every command against Debian's Apache ZooKeeper 3.8 (its own
Jetty AdminServer, once the jetty, servlet-api and jackson jars are on its classpath) and a
zkpy process after the same operations, comparing each answer's keys and JSON types and the
values that must agree.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.request

import pytest
from kazoo.client import KazooClient

from mntr_support import monitor_problems
from zkpy.server import admin
from zkpy.server.config import load
from zkpy.testing import ZkpyServer
from zkpy.testing import ensemble as ensemble_module
from zkpy.testing.ensemble import Ensemble
from zkpy.testing.external import (
    ApacheZooKeeper,
    ZkpyProcess,
    apache_zookeeper_available,
)
from zkpy.testing.ports import PortBlock

# ZooKeeper 3.8's commands (Commands.java): primary name first, then its short names.
ZK38_COMMANDS = {
    "configuration": ("conf", "config"), "connection_stat_reset": ("crst",), "connections": ("cons",),
    "dirs": (), "dump": (), "environment": ("env", "envi"), "get_trace_mask": ("gtmk",), "hash": (),
    "initial_configuration": ("icfg",), "is_read_only": ("isro",), "last_snapshot": ("lsnp",),
    "leader": ("lead",), "monitor": ("mntr",), "observer_connection_stat_reset": ("orst",),
    "observers": ("obsr",), "ruok": (), "server_stats": ("srvr",), "set_trace_mask": ("stmk",),
    "stat_reset": ("srst",), "stats": ("stat",), "system_properties": ("sysp",), "voting_view": (),
    "watch_summary": ("wchs",), "watches": ("wchc",), "watches_by_path": ("wchp",), "zabstate": (),
}
# The jars Debian's ZooKeeper needs for its JettyAdminServer (libjetty9-java, libservlet-api-java,
# libjackson2-*: dependencies of libzookeeper-java).
ADMIN_JARS = [f"/usr/share/java/{j}.jar" for j in (
    "jetty9-server", "jetty9-http", "jetty9-io", "jetty9-util", "jetty9-util-ajax", "jetty9-servlet",
    "jetty9-security", "servlet-api", "jackson-databind", "jackson-core", "jackson-annotations")]


def get(port: int, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET on 127.0.0.1:port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.status, r.headers.get_content_type(), r.read().decode()


def command(port: int, name: str, query: str = "") -> dict:
    status, ctype, body = get(port, f"/commands/{name}{query}")
    assert status == 200 and ctype == "application/json", (status, ctype, body)
    return json.loads(body)


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def admin_server():
    with ZkpyServer(tick_time=200, admin_enable_server=True, admin_server_port=0) as s:
        yield s


@pytest.fixture
def client(admin_server):
    c = KazooClient(hosts=admin_server.connect_string, timeout=10)
    c.start(timeout=10)
    yield c
    c.stop()
    c.close()


# ---------------------------------------------------------------- in-process


def test_disabled_by_default():
    with ZkpyServer() as s:
        assert s.server.http.admin_port is None and s.server.http.runners == []


def test_a_taken_admin_port_fails_the_start():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="address already in use"):
            ZkpyServer(admin_enable_server=True, admin_server_port=port).start()


def test_command_list_names_and_aliases(admin_server):
    port = admin_server.server.http.admin_port
    status, ctype, body = get(port, "/commands")
    assert status == 200 and ctype == "text/html"
    assert re.findall(r'<a href="/commands/(\w+)">\1</a>', body) == sorted(ZK38_COMMANDS)
    for primary, aliases in ZK38_COMMANDS.items():
        for name in (primary, *aliases):
            answer = command(port, name)
            assert answer["command"] == primary, name
            assert "error" in answer, name
    assert command(port, "nosuch") == {"command": "nosuch", "error": "Unknown command: nosuch"}


def test_values_follow_the_clients_operations(admin_server, client):
    port = admin_server.server.http.admin_port
    session = client.client_id[0]
    client.create("/a", b"xyz")
    client.create("/a/e", ephemeral=True)
    client.get("/a", watch=lambda e: None)
    mntr = command(port, "mntr")
    assert mntr["error"] is None and mntr["server_state"] == "standalone"
    assert (mntr["znode_count"], mntr["ephemerals_count"], mntr["watch_count"], mntr["global_sessions"]) == (7, 1, 1, 1)
    assert mntr["packets_received"] >= 4 and mntr["num_alive_connections"] == 1
    assert command(port, "dump")["session_id_to_ephemeral_paths"] == {str(session): ["/a/e"]}
    assert command(port, "wchc")["session_id_to_watched_paths"] == {str(session): ["/a"]}
    assert command(port, "wchp")["path_to_session_ids"] == {"/a": [session]}
    assert command(port, "wchs") == {"num_connections": 1, "num_paths": 1, "num_total_watches": 1,
                                     "command": "watch_summary", "error": None}
    [conn] = command(port, "cons")["connections"]
    assert conn["session_id"] == session and conn["packets_received"] >= 4
    assert abs(conn["established"] - time.time() * 1000) < 60_000  # epoch milliseconds
    # The per-connection stats cons prints: the last answer (the exists, xid 4), the latencies.
    zxid = client.exists("/a/e").czxid
    [conn] = command(port, "cons")["connections"]
    assert (conn["last_operation"], conn["last_cxid"], conn["last_zxid"]) == ("EXIS", 4, zxid)
    assert conn["min_latency"] <= conn["avg_latency"] <= conn["max_latency"] and conn["last_response_time"] > 0
    stats = command(port, "srvr")["server_stats"]["client_response_stats"]
    assert 0 < stats["min_buffer_size"] <= stats["last_buffer_size"] <= stats["max_buffer_size"]
    srvr = command(port, "srvr")
    assert srvr["node_count"] == 7 and srvr["server_stats"]["last_processed_zxid"] == client.exists("/a/e").czxid
    assert command(port, "isro")["read_only"] is False
    assert command(port, "conf")["client_port"] == admin_server.port

    client.set("/a", b"1")  # fires the watch
    assert command(port, "wchs")["num_total_watches"] == 0
    total = command(port, "srvr")["server_stats"]["packets_received"]
    command(port, "crst")  # the connection's counts start again, the server's totals keep them
    assert command(port, "cons")["connections"][0]["packets_received"] == 0
    assert command(port, "srvr")["server_stats"]["packets_received"] >= total
    for _ in range(5):
        client.exists("/a")
    assert command(port, "cons")["connections"][0]["packets_received"] >= 5
    command(port, "srst")  # the server's totals start again, the connection's counts stay
    stats = command(port, "srvr")["server_stats"]
    assert stats["max_latency"] == 0 and stats["packets_received"] <= 2  # a ping or two at most
    assert command(port, "cons")["connections"][0]["packets_received"] >= 5


def test_trace_mask_is_kept(admin_server):
    port = admin_server.server.http.admin_port
    assert command(port, "gtmk")["tracemask"] == 306
    assert command(port, "stmk")["error"] == "setTraceMask requires long traceMask argument"
    assert command(port, "stmk", "?traceMask=x")["error"] == "setTraceMask requires long traceMask argument, got x"
    assert command(port, "stmk", "?traceMask=0")["tracemask"] == 0
    assert command(port, "gtmk")["tracemask"] == 0


def test_command_url_setting():
    with ZkpyServer(admin_enable_server=True, admin_server_port=0, admin_command_url="/zk/cmds") as s:
        port = s.server.http.admin_port
        assert command_at(port, "/zk/cmds/ruok") == {"command": "ruok", "error": None}
        with pytest.raises(urllib.error.HTTPError):
            get(port, "/commands/ruok")


def test_admin_settings_from_zoo_cfg(tmp_path):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("admin.enableServer=true\nadmin.serverPort=9181\nadmin.serverAddress=127.0.0.2\n"
                   "admin.commandURL=/zk/cmds/\n")
    c = load(str(cfg))
    assert (c.admin_enable_server, c.admin_server_port, c.admin_server_address, c.admin_command_url) == (
        True, 9181, "127.0.0.2", "/zk/cmds")
    # -Dzookeeper.admin.* says the same, and zoo.cfg wins (ZooKeeper turns admin.X into that property).
    c = load(str(cfg), {"zookeeper.admin.serverPort": "9999", "zookeeper.admin.commandURL": "/c"})
    assert (c.admin_server_port, c.admin_command_url) == (9181, "/zk/cmds")
    c = load(None, {"zookeeper.admin.serverPort": "9999", "zookeeper.admin.commandURL": "/c"})
    assert (c.admin_server_port, c.admin_command_url) == (9999, "/c")


def command_at(port: int, path: str) -> dict:
    return json.loads(get(port, path)[2])


# ---------------------------------------------------------------- processes


def serving_ports(log_text: str) -> dict[str, int]:
    """The HTTP ports a zkpy process logged: "admin server started ... admin_port=N" and the like."""
    return {k: int(v) for k, v in re.findall(r"server started\s.*\b(admin_port|metrics_port)=(\d+)", log_text)}


def test_zkpy_serve_process():
    with ZkpyProcess(config={"admin.enableServer": "true", "admin.serverPort": "0"}) as zk:
        def admin_port() -> int | None:
            with open(zk.stderr_path) as f:
                return serving_ports(f.read()).get("admin_port")
        port = wait_for(admin_port, what="admin port")
        c = KazooClient(hosts=zk.connect_string, timeout=10)
        c.start(timeout=10)
        try:
            c.create("/p", b"")
            assert command(port, "monitor")["znode_count"] == 6
            with open(os.path.join(zk.workdir, "zoo.cfg")) as f:
                assert command(port, "icfg")["initial_configuration"] == f.read()
            assert command(port, "conf")["data_dir"].endswith("version-2")
            assert command(port, "dirs")["logdir_size"] > 0
        finally:
            c.stop()
            c.close()


def test_three_node_ensemble():
    settings = {"admin.enableServer": "true", "admin.serverPort": "0"}
    with Ensemble(3, settings=settings) as ens:
        def admin_ports():
            ports = {}
            for sid in ens.ids:
                with open(os.path.join(ens.base, f"server{sid}", "server.log")) as f:
                    ports[sid] = serving_ports(f.read()).get("admin_port")
            return ports if all(ports.values()) else None
        ports = wait_for(admin_ports, what="three admin ports")
        c = KazooClient(hosts=ens.connect_string, timeout=10)
        c.start(timeout=10)
        try:
            c.create("/q", b"", ephemeral=True)
            leads = {sid: command(p, "leader") for sid, p in ports.items()}
            leader = ens.leader()
            assert [sid for sid, a in leads.items() if a["is_leader"]] == [leader]
            assert {a["leader_id"] for a in leads.values()} == {leader}
            for sid, p in ports.items():
                zab = command(p, "zabstate")
                assert (zab["myid"], zab["zabstate"], zab["voting"], zab["is_leader"]) == (sid, "broadcast", True,
                                                                                          sid == leader)
                assert sorted(command(p, "voting_view")["current_config"]) == ["1", "2", "3"]
                assert command(p, "conf")["server_id"] == sid
                mntr = wait_for(lambda p=p: (m := command(p, "mntr"))["ephemerals_count"] == 1 and m,
                                what=f"the ephemeral on member {sid}")
                assert mntr["quorum_size"] == 3
                assert mntr["server_state"] == ("leader" if sid == leader else "follower")
            assert command(ports[leader], "mntr")["learners"] == 2
        finally:
            c.stop()
            c.close()


def test_a_member_without_a_quorum_is_not_serving():
    """One member of three, alone: it looks for a leader, and the commands that need a serving
    server say so (ZooKeeper's runCommand), while those that do not still answer."""
    ens = Ensemble(3, settings={"admin.enableServer": "true", "admin.serverPort": "0"})
    try:
        ens.start_server(1)
        port = wait_for(lambda: ensemble_admin_ports(ens, [1]), what="the admin port")[1]
        assert command(port, "srvr") == {"command": "server_stats", "error": admin.NOT_SERVING}
        assert command(port, "mntr")["error"] == admin.NOT_SERVING
        assert command(port, "zabstate")["zabstate"] == "election"
        assert command(port, "envi")["error"] is None
    finally:
        ens.stop()


# ---------------------------------------------------------------- differential against Apache ZooKeeper 3.8


class ApacheWithAdmin(ApacheZooKeeper):
    """Debian's ZooKeeper with its Jetty AdminServer on `admin_port`."""

    def __init__(self, admin_port: int, **kw) -> None:
        config = {"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1", "admin.serverPort": str(admin_port)}
        super().__init__(config=config, java_props={"zookeeper.admin.enableServer": "true"}, **kw)

    def _command(self, cfg: str) -> list[str]:
        cmd = super()._command(cfg)
        cmd[cmd.index("-cp") + 1] += ":" + ":".join(ADMIN_JARS)
        return cmd


def _require_admin_zookeeper() -> None:
    missing = [j for j in ADMIN_JARS if not os.path.exists(j)]
    if not apache_zookeeper_available() or missing:
        message = f"Apache ZooKeeper 3.8 with its AdminServer jars is not installed (missing: {missing})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def shape(value):
    """A JSON value's layout: dicts by key, lists by their first element, scalars by type."""
    if isinstance(value, dict):
        if value and all(k == "S" or k.isdigit() or k.startswith("/") for k in value):
            return {"<id or path>": shape(next(iter(value.values())))}  # a map keyed by data
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


# Keys that name the platform, not the server: the JVM's in ZooKeeper, Python's in zkpy.
PLATFORM_KEY = re.compile(r"^(java|sun|jdk|jetty|file|line|path|native|os\.memory|log4j)\.|^java\.")


def workload(connect_string: str) -> KazooClient:
    c = KazooClient(hosts=connect_string, timeout=10)
    c.start(timeout=10)
    c.create("/d", b"data")
    c.create("/d/e1", ephemeral=True)
    c.create("/d/e2", b"x", ephemeral=True)
    c.set("/d", b"more")
    c.get("/d", watch=lambda e: None)
    c.exists("/d/e1", watch=lambda e: None)
    c.get_children("/d", watch=lambda e: None)  # a child watch: ZooKeeper's watch commands leave it out
    return c


def normalise_sessions(answer, session: int):
    """Session ids differ between servers: name the workload's session "S"."""
    if isinstance(answer, dict):
        return {("S" if k == str(session) else k): normalise_sessions(v, session) for k, v in answer.items()}
    if isinstance(answer, list):
        return [normalise_sessions(v, session) for v in answer]
    return "S" if answer == session and type(answer) is int else answer


def test_differential_against_apache_zookeeper():
    _require_admin_zookeeper()
    ports = PortBlock(2)
    zk = ApacheWithAdmin(ports.ports[0])
    ours = ZkpyProcess(config={"admin.enableServer": "true", "admin.serverPort": str(ports.ports[1])})
    clients = []
    try:
        zk.start()
        ours.start()
        answers = {}
        for name, server, port in (("zk", zk, ports.ports[0]), ("zkpy", ours, ports.ports[1])):
            c = workload(server.connect_string)
            clients.append(c)
            # stat_reset and crst go last: they change what the others report.
            order = sorted(ZK38_COMMANDS, key=lambda n: n in ("stat_reset", "connection_stat_reset"))
            answers[name] = {n: normalise_sessions(command(port, n), c.client_id[0]) for n in order}
        compare(answers["zk"], answers["zkpy"])
    finally:
        for c in clients:
            c.stop()
            c.close()
        ours.stop()
        zk.stop()
        ports.release()


# The values that must be the same on both after the same operations.
AGREE = {
    "monitor": ("server_state", "znode_count", "ephemerals_count", "watch_count", "global_sessions",
                "num_alive_connections", "outstanding_requests", "approximate_data_size", "local_sessions"),
    "server_stats": ("read_only", "node_count"),
    "stats": ("read_only", "node_count"),
    "configuration": ("tick_time", "max_client_cnxns", "min_session_timeout", "max_session_timeout", "server_id",
                      "client_port_listen_backlog"),
    "is_read_only": ("read_only",), "watch_summary": ("num_connections", "num_paths", "num_total_watches"),
    "watches": ("session_id_to_watched_paths",), "watches_by_path": ("path_to_session_ids",),
    "leader": ("error", "is_leader", "leader_id"), "zabstate": ("voting", "zabstate", "is_leader", "zab_epoch"),

    "observers": ("synced_observers", "observers"), "get_trace_mask": ("tracemask",), "hash": ("digests",),
    "set_trace_mask": ("error",),
}


def canonical(value):
    """Sets are sets: ZooKeeper lists a set in hash order."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((canonical(v) for v in value), key=json.dumps)
    return value


def same_layout(a, b) -> bool:
    """Equal shapes, an empty list matching any list (ZooKeeper keeps empty expiry buckets)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_layout(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return not a or not b or same_layout(a[0], b[0])
    return a == b


def voting_view(answer: dict) -> tuple:
    """Members and roles, and how many show a client address (the answering one): ports differ."""
    view = answer["current_config"]
    return [(sid, v["learner_type"]) for sid, v in sorted(view.items())], sum(bool(v["client_address"]) for v in view.values())


def compare(theirs: dict, ours: dict) -> None:
    problems = []
    for name in ZK38_COMMANDS:
        a, b = theirs[name], ours[name]
        if name in ("environment", "system_properties"):
            # Platform keys aside, ZooKeeper's keys are zkpy's, every value a string.
            missing = {k for k in a if not PLATFORM_KEY.match(k)} - set(b)
            if name == "system_properties":
                missing = set()  # the JVM's own properties; zkpy lists its -D properties
            if missing:
                problems.append(f"{name}: keys missing {sorted(missing)}")
            wrong = {k for k, v in b.items() if k not in ("command", "error") and not isinstance(v, str)}
            if wrong:
                problems.append(f"{name}: values not strings: {sorted(wrong)}")
            continue
        if name == "monitor":
            # At least 90% of ZooKeeper's ~500 keys, none it lacks, its types (tests/mntr_support.py).
            problems += monitor_problems({k: v for k, v in a.items() if k not in ("command", "error")},
                                         {k: v for k, v in b.items() if k not in ("command", "error")}, "monitor")
        elif not same_layout(shape(a), shape(b)):
            problems.append(f"{name}: layout differs\n  zk:   {shape(a)}\n  zkpy: {shape(b)}")
        for key in AGREE.get(name, ()):
            if canonical(a.get(key)) != canonical(b.get(key)):
                problems.append(f"{name}.{key}: zk {a.get(key)!r} != zkpy {b.get(key)!r}")
        if name == "voting_view" and voting_view(a) != voting_view(b):
            problems.append(f"voting_view: {voting_view(a)} != {voting_view(b)}")
        ephemerals = "session_id_to_ephemeral_paths"
        if name == "dump" and canonical(a[ephemerals]) != canonical(b[ephemerals]):
            problems.append(f"dump: ephemerals {a} != {b}")
    assert not problems, "\n".join(problems)


def test_differential_three_node_ensembles(monkeypatch):
    """The same on a 3-node Apache ZooKeeper ensemble and a 3-node zkpy one: the leader's and a
    follower's answers, layouts and the values that must agree (modes, ids, counts)."""
    _require_admin_zookeeper()
    classpath = ensemble_module.apache_zookeeper_classpath
    monkeypatch.setattr(ensemble_module, "apache_zookeeper_classpath",
                        lambda: classpath() + ":" + ":".join(ADMIN_JARS))
    ports = PortBlock(3)
    answers = {}
    try:
        theirs = Ensemble(3, apache=True, settings={"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1"},
                          member_env={sid: {"JAVA_TOOL_OPTIONS": f"-Dzookeeper.admin.serverPort={ports.ports[sid - 1]}"}
                                      for sid in (1, 2, 3)})
        with theirs:
            answers["zk"] = ensemble_answers(theirs, {sid: ports.ports[sid - 1] for sid in (1, 2, 3)})
        with Ensemble(3, settings={"admin.enableServer": "true", "admin.serverPort": "0"}) as ours:
            answers["zkpy"] = ensemble_answers(ours, wait_for(lambda: ensemble_admin_ports(ours), what="admin ports"))
    finally:
        ports.release()
    if os.environ.get("ZKPY_ADMIN_DUMP"):  # both sides' answers, to read when this fails
        with open(os.environ["ZKPY_ADMIN_DUMP"], "w") as f:
            json.dump(answers, f, indent=1)
    for role in ("leader", "follower"):
        compare(answers["zk"][role], answers["zkpy"][role])


def ensemble_admin_ports(ens: Ensemble, sids: list[int] | None = None) -> dict[int, int] | None:
    """The members' admin ports from their "serving" lines, once every one has logged it."""
    ports = {}
    for sid in sids or ens.ids:
        with open(os.path.join(ens.base, f"server{sid}", "server.log")) as f:
            ports[sid] = serving_ports(f.read()).get("admin_port")
    return ports if all(ports.values()) else None


def ensemble_answers(ens: Ensemble, ports: dict[int, int]) -> dict[str, dict]:
    """Every command's answer on the leader and on one follower, after the workload through the
    follower (its session is "S"), with ids named by role: the leader's sid is "L"."""
    leader = ens.leader()
    follower = min(sid for sid in ens.ids if sid != leader)
    c = workload(ens.address(follower))
    try:
        c.sync("/")
        wait_for(lambda: command(ports[leader], "mntr").get("ephemerals_count") == 2, what="the leader's tree")
        order = sorted(ZK38_COMMANDS, key=lambda n: n in ("stat_reset", "connection_stat_reset"))
        out = {}
        for role, sid in (("leader", leader), ("follower", follower)):
            out[role] = {n: normalise_sessions(command(ports[sid], n), c.client_id[0]) for n in order}
            out[role]["leader"]["leader_id"] = "L" if out[role]["leader"]["leader_id"] == leader else "?"
            out[role]["configuration"]["server_id"] = role
        return out
    finally:
        c.stop()
        c.close()
