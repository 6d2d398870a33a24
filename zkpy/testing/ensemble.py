"""A local ensemble of `zkpy serve` processes (or Apache ZooKeeper ones) on free loopback ports.

    with Ensemble(3) as ens:
        KazooClient(ens.connect_string)
        ens.kill(ens.leader())          # SIGKILL; ens.start_server(sid) brings it back

    with Ensemble(3, proxied=True) as ens:  # peer traffic through a loopback proxy
        ens.isolate(ens.leader())       # a network partition; ens.heal() ends it

Ports: every member's zoo.cfg names every member's ports, so they are chosen before any
member starts, as a block held against other allocations (zkpy.testing.ports explains why
that is race-free); `base_port=` takes fixed ones instead: client ports base_port + 0..n-1,
quorum ports base_port + n.., election ports base_port + 2n.. (n members, observers included).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import introspect
from .external import _LOG4J_PROPERTIES, apache_zookeeper_classpath, four_letter_word
from .faults import FileFaults
from .ports import PortBlock
from .proxy import Proxy
from .reaper import Reaper
from .reset import reset_process_ensemble


class Ensemble:
    def __init__(self, size: int = 3, tick_time: int = 200, observers: int = 0, apache: bool = False,
                 startup_timeout: float = 30.0, proxied: bool = False,
                 settings: dict[str, str] | None = None, apache_heap: str = "1000m",
                 member_env: dict[int, dict[str, str]] | None = None, base_port: int | None = None,
                 keep: str | None = None, serve_options: tuple[str, ...] = (),
                 member_properties: dict[int, dict[str, str]] | None = None) -> None:
        self.size = size
        self.tick_time = tick_time
        self.apache = apache
        self.startup_timeout = startup_timeout
        if keep is not None:  # data and logs go to `keep`, and stay there
            os.makedirs(keep, exist_ok=True)
        self.base = keep or tempfile.mkdtemp(prefix="zkpy-ensemble-")
        self.ids = list(range(1, size + observers + 1))
        self.observers = set(self.ids[size:])
        n = len(self.ids)
        self.port_block: PortBlock | None = None
        if base_port is None:
            self.port_block = PortBlock(3 * n)
            base_port = self.port_block.ports[0]
        self.client_ports = {sid: base_port + k for k, sid in enumerate(self.ids)}
        self.peer_ports = {sid: base_port + n + k for k, sid in enumerate(self.ids)}
        self.election_ports = {sid: base_port + 2 * n + k for k, sid in enumerate(self.ids)}
        self.procs: dict[int, subprocess.Popen] = {}
        self._reaper: Reaper | None = None  # from the first start: the members die with this process
        self._faults: FileFaults | None = None
        self.keep_dir = keep is not None  # stop() leaves self.base (logs, data) in place, e.g. after a failed test
        self.settings = dict(settings or {})
        self.apache_heap = apache_heap  # -Xmx of each Apache ZooKeeper member (zkServer.sh's default)
        # Extra environment variables of some members, for their next starts (e.g. a test's
        # ZKPY_TEST_DISK_FAULTS for one member); change or clear it between starts.
        self.member_env = {sid: dict(env) for sid, env in (member_env or {}).items()}
        self.serve_options = tuple(serve_options)  # more `zkpy serve` options, e.g. ("--log-format", "json")
        # -Dkey=value system properties of some zkpy members (e.g. each its own JAAS file).
        self.member_properties = {sid: dict(p) for sid, p in (member_properties or {}).items()}
        # proxied: server a reaches server b's quorum and election ports through links named
        # "a->b:peer" and "a->b:election", so that a test can cut them (see proxy.py).
        self.proxy: Proxy | None = None
        self.proxy_ports: dict[tuple[int, int], tuple[int, int]] = {}
        if proxied:
            self.proxy = Proxy()
            for a in self.ids:
                for b in self.ids:
                    if a != b:
                        self.proxy_ports[(a, b)] = (
                            self.proxy.link(f"{a}->{b}:peer", "127.0.0.1", self.peer_ports[b]),
                            self.proxy.link(f"{a}->{b}:election", "127.0.0.1", self.election_ports[b]))

    @property
    def connect_string(self) -> str:
        return ",".join(f"127.0.0.1:{self.client_ports[i]}" for i in self.ids)

    def address(self, sid: int) -> str:
        return f"127.0.0.1:{self.client_ports[sid]}"

    def _config(self, sid: int) -> str:
        d = os.path.join(self.base, f"server{sid}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "myid"), "w") as f:
            f.write(str(sid))
        cfg = os.path.join(d, "zoo.cfg")
        lines = [f"tickTime={self.tick_time}", "initLimit=10", "syncLimit=5", f"dataDir={d}",
                 f"clientPort={self.client_ports[sid]}", "clientPortAddress=127.0.0.1", "4lw.commands.whitelist=*",
                 "admin.enableServer=false"]
        lines += [f"{k}={v}" for k, v in self.settings.items()]
        if self.observers and sid in self.observers:
            lines.append("peerType=observer")
        for i in self.ids:
            role = ":observer" if i in self.observers else ""
            peer, election = self.proxy_ports.get((sid, i), (self.peer_ports[i], self.election_ports[i]))
            lines.append(f"server.{i}=127.0.0.1:{peer}:{election}{role}")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        return cfg

    def command(self, sid: int) -> list[str]:
        """Member `sid`'s command line (its zoo.cfg written first): what start_server runs, and
        what a script of one's own runs to start the member outside this object (e.g. the
        --restart-cmd of `zkpy verify --connect`)."""
        cfg = self._config(sid)
        if self.apache:
            log4j = os.path.join(self.base, f"server{sid}", "log4j.properties")
            with open(log4j, "w") as f:
                f.write(_LOG4J_PROPERTIES)
            return ["java", f"-Xmx{self.apache_heap}", "-Djava.net.preferIPv4Stack=true", "-cp",
                    apache_zookeeper_classpath(), f"-Dzookeeper.log.dir={self.base}",
                    "-Dzookeeper.root.logger=INFO,CONSOLE", f"-Dlog4j.configuration=file:{log4j}",
                    "-Dzookeeper.jmx.log4j.disable=true", "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        cmd = [sys.executable, "-m", "zkpy", "serve", cfg, "--faults", os.path.join(self.base, "faults.json"),
               *self.serve_options]
        return cmd + [f"-D{k}={v}" for k, v in self.member_properties.get(sid, {}).items()]

    def start_server(self, sid: int) -> None:
        cmd = self.command(sid)
        log = open(os.path.join(self.base, f"server{sid}", "server.log"), "ab")
        env = {**os.environ, **self.member_env[sid]} if self.member_env.get(sid) else None
        self.procs[sid] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, env=env)
        log.close()
        if self._reaper is None:
            self._reaper = Reaper(None if self.keep_dir else self.base)
        self._reaper.watch(self.procs[sid].pid)

    def start(self) -> "Ensemble":
        """Start every member and wait until they serve; on failure nothing is left behind
        (`with Ensemble(...)` never reaches __exit__ when __enter__ raises)."""
        try:
            for sid in self.ids:
                self.start_server(sid)
            self.wait_serving(fail_on_exit=True)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def faults(self) -> FileFaults:
        """Faults on demand in the members (`member=` picks one), through their faults file
        (`zkpy serve --faults`): testing/faults.py."""
        if self.apache:
            raise RuntimeError("faults on demand are zkpy's: Apache ZooKeeper members have none")
        if self._faults is None:
            self._faults = FileFaults(os.path.join(self.base, "faults.json"),
                                      lambda: [s for s in self.ids if self.alive(s)])
        return self._faults

    def mode(self, sid: int) -> str | None:
        try:
            for line in four_letter_word("127.0.0.1", self.client_ports[sid], "srvr", timeout=1).splitlines():
                if line.startswith("Mode: "):
                    return line[6:]
        except OSError:
            return None
        return None

    def alive(self, sid: int) -> bool:
        """Started and not killed (a paused member is alive)."""
        p = self.procs.get(sid)
        return p is not None and p.poll() is None

    def leader(self) -> int | None:
        for sid in self.ids:
            if self.alive(sid) and self.mode(sid) == "leader":
                return sid
        return None

    def wait_serving(self, sids=None, timeout: float | None = None, fail_on_exit: bool = False) -> float:
        """Wait until one leader and every other live server follows it; returns the seconds waited.

        With `fail_on_exit` (at start), a member that exits fails the wait at once, with its
        exit code and the end of its log (a bad setting stops every member in a moment)."""
        start = time.time()
        deadline = start + (timeout or self.startup_timeout)
        while time.time() < deadline:
            if fail_on_exit:
                self._raise_if_exited(sids or self.ids)
            live = [s for s in (sids or self.ids) if self.alive(s)]
            modes = [self.mode(s) for s in live]
            if modes.count("leader") == 1 and all(m in ("leader", "follower", "observer") for m in modes):
                return time.time() - start
            if len(self.ids) == 1 and modes == ["standalone"]:  # one server line: a standalone server
                return time.time() - start
            self._pass_time(0.05)
        raise RuntimeError(f"ensemble not serving: { {s: self.mode(s) for s in self.ids} }\n" + self.log_tails())

    def _pass_time(self, seconds: float) -> None:
        """What waiting does between polls (an ensemble on a virtual clock moves it)."""
        time.sleep(seconds)

    def _raise_if_exited(self, sids) -> None:
        codes = {sid: self.procs[sid].poll() for sid in sids if sid in self.procs}
        exited = {sid: code for sid, code in codes.items() if code is not None}
        if exited:
            raise RuntimeError(f"ensemble members exited while it waited for them to serve (exit codes { exited })\n"
                               + self.log_tails(sids=sorted(exited)))

    def log_tails(self, lines: int = 12, sids=None) -> str:
        """The end of every server's log, for failure messages."""
        out = []
        for sid in sids or self.ids:
            path = os.path.join(self.base, f"server{sid}", "server.log")
            try:
                with open(path, errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- server {sid} ({path}):\n" + "\n".join(tail))
        return "\n".join(out)

    def kill(self, sid: int) -> None:
        p = self.procs.get(sid)
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
            if self._reaper is not None:
                self._reaper.forget(p.pid)

    def pause(self, sid: int) -> None:
        os.killpg(self.procs[sid].pid, signal.SIGSTOP)

    def resume(self, sid: int) -> None:
        os.killpg(self.procs[sid].pid, signal.SIGCONT)

    def trees(self, sids=None) -> dict[int, dict[str, tuple]]:
        """Each server's whole tree as {path: (data, Stat tuple)}, read after a sync (needs kazoo).

        Replicas that applied the same txns hold equal trees, times and zxids included."""
        from kazoo.client import KazooClient
        from kazoo.exceptions import NoNodeError

        out = {}
        for sid in sids or [s for s in self.ids if self.alive(s)]:
            client = KazooClient(self.address(sid), timeout=10)
            client.start(20)
            try:
                client.sync("/")
                tree: dict[str, tuple] = {}
                todo = ["/"]
                while todo:
                    path = todo.pop()
                    try:
                        data, stat = client.get(path)
                        children = client.get_children(path)
                    except NoNodeError:
                        continue  # deleted while we walked (an ephemeral of an expiring session)
                    tree[path] = (data, tuple(stat))
                    todo.extend(path.rstrip("/") + "/" + child for child in children)
                out[sid] = tree
            finally:
                client.stop()
                client.close()
        return out

    def assert_replicas_identical(self, sids=None) -> dict[str, tuple]:
        """Every (live) server holds the same tree; returns it.  /zookeeper/config is left out:
        each server writes it from its own configuration (ZooKeeper does the same)."""
        trees = self.trees(sids)
        for tree in trees.values():
            tree.pop("/zookeeper/config", None)
        first_sid, first = next(iter(trees.items()))
        for sid, tree in trees.items():
            diff = sorted(set(tree.items()) ^ set(first.items()))
            assert not diff, f"server {sid} differs from server {first_sid}: {diff[:4]}"
        return first

    # ------------------------------------------------------------ introspection (plain values)
    # Read through four-letter words (zkpy's formats): no expiry times, no watch kinds.

    def sessions(self, sid: int) -> dict[int, introspect.Session]:
        """Every global session with its timeout, and member `sid`'s connections to each.
        The sessions are the leader's `dump` (it tracks them; a follower's lists only those
        it recovered at start)."""
        expiries, _ = introspect.parse_dump(self._word(self.leader() or sid, "dump"))
        connections = introspect.parse_cons(self._word(sid, "cons"))
        # dump (ZooKeeper's layout) has no timeouts: cons has them for the connected sessions.
        timeouts: dict[int, int] = {}
        for member in self.ids:
            try:
                timeouts.update(introspect.parse_cons_timeouts(self._word(member, "cons")))
            except OSError:
                pass  # a member that is down has no connections
        return {s: introspect.Session(s, timeouts.get(s, 0), None, connections.get(s, 0)) for s in sorted(expiries)}

    def ephemerals(self, session_id: int, sid: int) -> list[str]:
        return sorted(introspect.parse_dump(self._word(sid, "dump"))[1].get(session_id, []))

    def watches(self, sid: int) -> list[introspect.Watch]:
        return introspect.parse_wchc(self._word(sid, "wchc"))

    def tree(self, sid: int) -> introspect.Tree:
        return self.trees([sid])[sid]

    def last_zxid(self, sid: int) -> int:
        return introspect.parse_zxid(self._word(sid, "srvr"))

    def _word(self, sid: int, word: str) -> str:
        return four_letter_word("127.0.0.1", self.client_ports[sid], word)

    def partition(self, *groups: list[int]) -> None:
        """Cut every link between servers of different groups (a server in no group is alone)."""
        assert self.proxy is not None, "partitions need Ensemble(proxied=True)"
        group_of = {sid: i for i, g in enumerate(groups) for sid in g}
        cut = [f"{a}->{b}:{kind}" for (a, b) in self.proxy_ports for kind in ("peer", "election")
               if group_of.get(a, -a) != group_of.get(b, -b)]
        self.proxy.cut(cut)

    def isolate(self, sid: int) -> None:
        self.partition([sid], [s for s in self.ids if s != sid])

    def heal(self) -> None:
        assert self.proxy is not None
        self.proxy.heal()

    def stop(self) -> None:
        """Stop every member, then the proxy; remove the temp dirs (unless `keep_dir`)."""
        self.stop_members()
        if self.proxy is not None:
            self.proxy.close()
        if self.port_block is not None:
            self.port_block.release()
        if not self.keep_dir:
            shutil.rmtree(self.base, ignore_errors=True)
        if self._reaper is not None:
            self._reaper.release()
            self._reaper = None

    def reset(self, timeout: float = 10.0) -> None:
        """Back to an empty tree, through a client (see zkpy.testing.reset for what stays)."""
        reset_process_ensemble({sid: ("127.0.0.1", self.client_ports[sid]) for sid in self.ids if self.alive(sid)},
                               timeout)

    def stop_members(self) -> None:
        for sid, p in self.procs.items():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGCONT)
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    def __enter__(self) -> "Ensemble":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
