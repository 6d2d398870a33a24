"""The server's log: ZooKeeper's lifecycle lines, once each, and never a line per request.

Through real clients (kazoo) and real `zkpy serve` processes, in both output forms: the
console's `timestamp [level   ] event  key=value ...` and `--log-format json`'s one object a
line with `event`, `level` and `timestamp`; `--log-file` (or ZooKeeper's ROLLINGFILE
properties) puts the lines in a file; an in-process server's lines reach pytest's `caplog`
through the stdlib `logging` tree under `zkpy`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from zkpy.testing import ZkpyServer
from zkpy.testing.ensemble import Ensemble
from zkpy.testing.proxy import Proxy

ROOT = Path(__file__).resolve().parent.parent
_CONSOLE = re.compile(r"^(?P<timestamp>\S+) \[(?P<level>\w+)\s*\] (?P<rest>.*)$")
_FIELD = re.compile(r"(?:^|\s)(\w+)=(\S*)")


def parse_line(line: str, fmt: str) -> dict:
    """One log line as a dict (`event`, `level`, `timestamp` and the fields, as text for console)."""
    if fmt == "json":
        return json.loads(line)
    m = _CONSOLE.match(line)
    assert m, f"not a console log line: {line!r}"
    rest = m["rest"]
    first = _FIELD.search(rest)
    event = (rest[: first.start()] if first else rest).strip()
    return {"timestamp": m["timestamp"], "level": m["level"], "event": event, **dict(_FIELD.findall(rest))}


def read_events(path: Path, fmt: str) -> list[dict]:
    if not path.exists():
        return []
    return [parse_line(line, fmt) for line in path.read_text().splitlines() if line.strip()]


def wait_for(what: Callable[[], object], timeout: float = 30.0, message: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {message}")
        time.sleep(0.05)


def named(events: list[dict], event: str, **fields: object) -> list[dict]:
    return [e for e in events if e["event"] == event and all(str(e.get(k)) == str(v) for k, v in fields.items())]


class Served:
    """A `zkpy serve` process on a free port; its log is `log` (stderr unless --log-file)."""

    def __init__(self, proc: subprocess.Popen, log: Path, fmt: str) -> None:
        self.proc, self.log, self.fmt = proc, log, fmt
        serving = wait_for(lambda: self.named("serving") or self.proc.poll() is not None, message="serving line")
        assert isinstance(serving, list), f"zkpy serve exited with {self.proc.returncode}: {self.log.read_text()}"
        self.port = int(serving[0]["port"])

    def events(self) -> list[dict]:
        return read_events(self.log, self.fmt)

    def named(self, event: str, **fields: object) -> list[dict]:
        return named(self.events(), event, **fields)

    def wait(self, event: str, **fields: object) -> list[dict]:
        found = wait_for(lambda: self.named(event, **fields), message=f"{event} {fields} in {self.log}")
        return found  # type: ignore[return-value]


@contextmanager
def serve(tmp_path: Path, *options: str, fmt: str = "console", log: Path | None = None,
          settings: str = "") -> Iterator[Served]:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"tickTime=200\ndataDir={tmp_path / 'data'}\nclientPort=0\nclientPortAddress=127.0.0.1\n{settings}")
    stderr = tmp_path / "stderr.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "zkpy", "serve", str(cfg), *options], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=tmp_path, start_new_session=True)
    try:
        yield Served(proc, log or stderr, fmt)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(port: int, timeout: float = 10.0) -> KazooClient:
    c = KazooClient(f"127.0.0.1:{port}", timeout=timeout)
    c.start(timeout=15)
    return c


def session_hex(c: KazooClient) -> str:
    return f"0x{c.client_id[0]:x}"


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_sessions_life_is_logged_once_each_and_requests_are_not(tmp_path: Path, fmt: str) -> None:
    """Established (negotiated timeout, client address), closed, expired: one line each at
    INFO, even with DEBUG on; 1000 requests add no line."""
    with serve(tmp_path, "--log-level", "DEBUG", "--log-format", fmt, fmt=fmt) as server:
        assert all({"event", "level", "timestamp"} <= e.keys() for e in server.events())
        closing = client(server.port)
        sid = session_hex(closing)
        [established] = server.wait("session established", session=sid)
        # kazoo asks for 10 s; maxSessionTimeout is 20 ticks of 200 ms
        assert established["level"] == "info" and int(established["negotiated_timeout"]) == 4000
        assert established["client"] == f"127.0.0.1:{closing._connection._socket.getsockname()[1]}"
        before = len(server.events())
        for i in range(250):
            closing.create(f"/n{i}", b"x")
            closing.set(f"/n{i}", b"y")
            closing.get(f"/n{i}")
            closing.exists(f"/n{i}")
        time.sleep(0.5)  # a line logged on the way would be on disk by now
        assert server.events()[before:] == []
        closing.stop()
        closing.close()
        server.wait("session closed", session=sid)

        # A client cut off by a partition (bytes stop, the connection stays up) has its session
        # expired by the server after the negotiated timeout.
        proxy = Proxy()
        try:
            expiring = KazooClient(f"127.0.0.1:{proxy.link('c', '127.0.0.1', server.port)}", timeout=1.0)
            expiring.start(timeout=15)
            lost = session_hex(expiring)
            server.wait("session established", session=lost)
            proxy.cut(["c"])
            [expired] = server.wait("session expired", session=lost)
            assert int(expired["timeout_ms"]) == 1000 and expired["level"] == "info"
            proxy.heal()
            wait_for(lambda: expiring.state == KazooState.LOST, message="kazoo told that its session expired")
            expiring.stop()
            expiring.close()
        finally:
            proxy.close()
        server.wait("client disconnected", session=lost)
        events = server.events()
    for session in (sid, lost):
        assert len(named(events, "session established", session=session)) == 1, session
    assert len(named(events, "session closed", session=sid)) == 1
    assert named(events, "session closed", session=lost) == []  # it expired: no client closed it
    assert len(named(events, "session expired", session=lost)) == 1
    assert len(named(events, "invalid session", session=lost)) == 1  # kazoo came back after the heal, too late
    assert named(events, "session expired", session=sid) == []
    assert len(named(events, "serving")) == 1


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_an_election_is_logged_once_per_member_and_serving_only_after_it(fmt: str) -> None:
    """A member alone logs that it listens, not that it serves; once a quorum elects a leader,
    each member logs its role (leader, epoch) once and then `serving`; a new election after the
    leader dies is one more role line on each survivor."""
    ens = Ensemble(3, serve_options=("--log-format", fmt))
    logs = {sid: Path(ens.base) / f"server{sid}" / "server.log" for sid in ens.ids}
    try:
        ens.start_server(1)
        wait_for(lambda: named(read_events(logs[1], fmt), "listening"), message="member 1 listening")
        time.sleep(1.5)  # several election rounds with no quorum
        assert named(read_events(logs[1], fmt), "serving") == []
        assert named(read_events(logs[1], fmt), "role") == []
        ens.start_server(2)
        ens.start_server(3)
        ens.wait_serving()
        leader = ens.leader()
        for sid in ens.ids:  # the role line comes a moment before srvr reports the mode
            wait_for(lambda sid=sid: named(read_events(logs[sid], fmt), "serving"), message=f"member {sid} serving")
        first = {}
        for sid in ens.ids:
            events = read_events(logs[sid], fmt)
            roles = named(events, "role")
            assert len(roles) == 1, (sid, roles)
            [role] = roles
            assert role["role"] == ("leader" if sid == leader else "follower")
            assert int(role["leader"]) == leader
            first[sid] = int(role["epoch"])
            [serving] = named(events, "serving")
            assert events.index(role) < events.index(serving)
        assert len(set(first.values())) == 1

        ens.kill(leader)
        survivors = [sid for sid in ens.ids if sid != leader]
        ens.wait_serving(sids=survivors)
        new_leader = ens.leader()
        for sid in survivors:
            def elected(sid: int = sid) -> list[dict]:
                return [r for r in named(read_events(logs[sid], fmt), "role") if r["role"] != "looking"]

            wait_for(lambda: elected()[1:], message=f"member {sid} elected again")
            [_, again] = elected()
            assert again["role"] == ("leader" if sid == new_leader else "follower")
            assert int(again["leader"]) == new_leader and int(again["epoch"]) > first[sid]
            assert len(named(read_events(logs[sid], fmt), "serving")) == 1
    finally:
        ens.stop()


def test_an_in_process_server_logs_into_the_logging_tree(caplog: pytest.LogCaptureFixture) -> None:
    """pytest's caplog sees ZkpyServer's lines as records of zkpy.* loggers carrying the fields,
    with the zkpy file that logged them; nothing is printed to stdout."""
    caplog.set_level(logging.INFO, logger="zkpy")
    with ZkpyServer(tick_time=2000) as zk:  # a 10 s session timeout is within its bounds
        c = client(zk.port)
        sid = c.client_id[0]
        c.stop()
        c.close()
        wait_for(lambda: [r for r in caplog.records if r.name == "zkpy.connection"
                          and r.msg["event"] == "client disconnected"], message="disconnected record")
    records = {r.msg["event"]: r for r in caplog.records if r.name.startswith("zkpy.")}
    lifecycle = {"serving", "client connected", "session established", "session closed", "client disconnected"}
    assert lifecycle <= set(records)
    established = records["session established"]
    assert established.name == "zkpy.connection" and established.levelno == logging.INFO
    assert established.msg["session"] == f"0x{sid:x}" and established.msg["negotiated_timeout"] == 10000
    assert established.filename == "connection.py"
    assert established.getMessage().startswith(f"session established session=0x{sid:x} negotiated_timeout=10000")
    assert records["session closed"].name == "zkpy.member"


def test_in_process_server_prints_nothing(tmp_path: Path) -> None:
    """A library configures no output: a script that runs a ZkpyServer without configuring
    logging prints no log line to stdout or stderr."""
    script = ("from kazoo.client import KazooClient\nfrom zkpy.testing import ZkpyServer\n"
              "with ZkpyServer() as zk:\n"
              "    c = KazooClient(zk.connect_string); c.start(15); c.create('/x'); c.stop(); c.close()\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "session established" not in done.stdout + done.stderr and "serving" not in done.stdout + done.stderr


@pytest.mark.parametrize("how", ["--log-file", "zookeeper.log.dir"])
def test_log_file(tmp_path: Path, how: str) -> None:
    """`--log-file PATH`, or ZooKeeper's -Dzookeeper.root.logger=INFO,ROLLINGFILE with
    zookeeper.log.dir and zookeeper.log.file, sends the log there instead of stderr."""
    path = tmp_path / "logs" / "zk.log"
    path.parent.mkdir()
    options = (["--log-file", str(path)] if how == "--log-file" else
               [f"-Dzookeeper.log.dir={path.parent}", "-Dzookeeper.log.file=zk.log",
                "-Dzookeeper.root.logger=INFO,ROLLINGFILE"])
    with serve(tmp_path, *options, log=path) as server:
        c = client(server.port)
        server.wait("session established", session=session_hex(c))
        c.stop()
        c.close()
    assert not [line for line in (tmp_path / "stderr.log").read_text().splitlines() if line.strip()]


def test_unwritable_log_file_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "zkpy", "serve", "--log-file", str(tmp_path / "no" / "such.log")],
                          capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "cannot write the log file" in done.stderr


def test_snapshots_log_rolls_and_purges_are_logged(tmp_path: Path) -> None:
    """Each snapshot: started and taken (zxid, file on disk), the log segment it closed; with
    autopurge, the files removed (gone from disk)."""
    with serve(tmp_path, "--log-format", "json", fmt="json",
               settings="snapCount=40\nautopurge.snapRetainCount=3\nautopurge.purgeInterval=1\n") as server:
        c = client(server.port)
        # A snapshot starts on a tick (200 ms) once 20-40 txns went by: 50 creates, then the
        # wait for its "taken", make one snapshot per round however fast the machine is.
        for round in range(6):
            for i in range(50):
                c.create(f"/n{round}-{i}", b"x")
            wait_for(lambda: len(server.named("snapshot taken")) > round, message=f"snapshot {round + 1}")
        c.stop()
        c.close()
        purged = server.wait("purged old snapshots and logs")
        events = server.events()
    taken = named(events, "snapshot taken")
    assert len(taken) >= 4
    for snap in taken:
        [started] = named(events, "snapshot started", zxid=snap["zxid"])
        assert started["file"] == snap["file"] and os.path.basename(snap["file"]) == f"snapshot.{snap['zxid'][2:]}"
    rolled = [e["file"] for e in named(events, "log rolled")]
    assert len(rolled) >= len(taken) and len(set(rolled)) == len(rolled)
    version2 = tmp_path / "data" / "version-2"
    removed = [name for e in purged for name in e["removed"]]
    assert removed and not any((version2 / name).exists() for name in removed)
    assert any(name.startswith("snapshot.") for name in removed) and any(name.startswith("log.") for name in removed)
    assert os.path.exists(taken[-1]["file"])


def test_every_module_logs_through_zkpy_logs() -> None:
    """A module with `structlog.get_logger` would use structlog's global defaults: printed to
    stdout by an in-process server, past caplog, the level and --log-format/--log-file."""
    package = ROOT / "zkpy"
    stray = [str(path.relative_to(ROOT)) for path in sorted(package.rglob("*.py"))
             if "structlog.get_logger(" in path.read_text()]
    assert stray == [], "use `log = zkpy.logs.get_logger(name)` in " + ", ".join(stray)
