"""Servers in separate processes, for integration, differential and crash tests and benchmarks.

`ZkpyProcess` runs `python -m zkpy serve zoo.cfg -Dk=v ...`; `ApacheZooKeeper` runs Debian's
Apache ZooKeeper 3.8 (`java ... QuorumPeerMain zoo.cfg`).  Both:

- listen on 127.0.0.1 only (nothing else: no AdminServer, no JMX port, no election ports);
  zkpy binds port 0 and reports the port it got in its "serving" log line, read at start
  (a restart reuses it); Apache ZooKeeper, which does not report one, gets a port held
  against other allocations (zkpy.testing.ports); `port=` fixes it;
- write their zoo.cfg, data and logs into a fresh `tempfile.mkdtemp()` dir (`workdir`),
  which `stop()` removes (unless `cleanup=False`, or a caller-owned `data_dir` was given:
  that one is left alone);
- are ready when a TCP connect succeeds, `ruok` answers `imok` and `srvr` reports a mode
  (only then does ZooKeeper take sessions), polled within `startup_timeout`; on failure
  the error carries the tail of the process's stderr and log, and everything is cleaned up;
- stop with SIGTERM, then SIGKILL after `stop_timeout` seconds; always reaped.

    with ApacheZooKeeper(config={"maxSessionTimeout": "60000"}) as zk:
        KazooClient(hosts=zk.connect_string)
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from .ports import PortBlock

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
HOST = "127.0.0.1"
_SERVING = re.compile(rb"\] serving\s.*\bport=(\d+)")

_LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Threshold=INFO
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (another process may take it before
    it is bound again: prefer binding port 0, or zkpy.testing.ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def apache_zookeeper_available() -> bool:
    """Debian's zookeeper.jar and a `java` on PATH."""
    return os.path.exists(ZOOKEEPER_JAR) and shutil.which("java") is not None


def apache_zookeeper_classpath() -> str:
    """zookeeper.jar (its manifest's Class-Path brings jute, netty, jetty, slf4j-api, ...),
    netty, and the slf4j -> log4j 1.2 binding."""
    jars = ["/etc/zookeeper/conf", ZOOKEEPER_JAR] + sorted(glob.glob("/usr/share/java/netty-*.jar"))
    jars += [j for j in ("/usr/share/java/slf4j-api.jar", "/usr/share/java/slf4j-log4j12.jar",
                         "/usr/share/java/log4j-1.2.jar") if os.path.exists(j)]
    return ":".join(jars)


def four_letter_word(host: str, port: int, word: str, timeout: float = 5.0) -> str:
    """Send a four-letter word, read until the server closes the connection."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def _tail(path: str, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""


class _ServerProcess:
    name = "server"
    reports_port = False  # binds clientPort=0 and logs the port it got

    def __init__(self, tick_time: int = 2000, config: dict[str, str] | None = None,
                 java_props: dict[str, str] | None = None, startup_timeout: float = 30.0,
                 data_dir: str | None = None, port: int | None = None, stop_timeout: float = 5.0,
                 env: dict[str, str] | None = None) -> None:
        self.tick_time = tick_time
        self.config = {k: str(v) for k, v in (config or {}).items()}
        self.java_props = {k: str(v) for k, v in (java_props or {}).items()}
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_env = {k: str(v) for k, v in (env or {}).items()}  # on top of _env(), for every start
        self.host = HOST
        self._port_block: PortBlock | None = None
        if port:
            self.port = port
        elif self.reports_port:
            self.port = 0  # known once it serves
        else:
            self._port_block = PortBlock(1)
            self.port = self._port_block.ports[0]
        self.workdir = tempfile.mkdtemp(prefix=f"zkpy-{self.name}-")
        self.own_data_dir = data_dir is None
        self.data_dir = data_dir or os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.workdir, "server.log")  # stdout (ZooKeeper's console log)
        self.stderr_path = os.path.join(self.workdir, "stderr.log")

    # ------------------------------------------------------------------ properties

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------------ set-up

    def _settings(self) -> dict[str, str]:
        settings = {
            "tickTime": str(self.tick_time),
            "dataDir": self.data_dir,
            "clientPort": str(self.port),
            "clientPortAddress": self.host,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
        }
        settings.update(self.config)
        return settings

    def _write_cfg(self) -> str:
        path = os.path.join(self.workdir, "zoo.cfg")
        with open(path, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in self._settings().items())
        return path

    def _command(self, cfg: str) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "_ServerProcess":
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        try:
            cfg = self._write_cfg()
            with open(self.log_path, "ab") as out, open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen(self._command(cfg), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                             cwd=self.workdir, env={**self._env(), **self.extra_env},
                                             start_new_session=True)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _reported_port(self) -> int:
        """The port in the "serving" line zkpy logs (to stderr) once it listens; 0 before."""
        try:
            with open(self.stderr_path, "rb") as f:
                m = _SERVING.search(f.read())
        except OSError:
            return 0
        return int(m.group(1)) if m else 0

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode} during start-up\n"
                                   f"{self.diagnostics()}")
            if not self.port:
                self.port = self._reported_port()
            try:
                if not self.port:
                    raise OSError("no port reported yet")
                last = four_letter_word(self.host, self.port, "ruok", timeout=2).strip() or "(empty ruok answer)"
                if last == "imok":
                    # ZooKeeper answers ruok a moment before it takes sessions; srvr has a Mode only then.
                    srvr = four_letter_word(self.host, self.port, "srvr", timeout=2)
                    if "Mode:" in srvr:
                        return
                    last = srvr.strip() or "(empty srvr answer)"
            except OSError as e:
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.name} did not become ready on {self.connect_string} within "
                                   f"{self.startup_timeout}s (last: {last})\n{self.diagnostics()}")
            time.sleep(0.05)

    def diagnostics(self, lines: int = 30) -> str:
        return (f"--- {self.name} stderr (tail) ---\n{_tail(self.stderr_path, lines)}\n"
                f"--- {self.name} log (tail) ---\n{_tail(self.log_path, lines)}")

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def stderr_tail(self, lines: int = 30) -> str:
        return _tail(self.stderr_path, lines)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL (a crash), and reap.  Files stay until `stop()`."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self._signal(signal.SIGKILL)
            self.proc.wait()

    def pause(self) -> None:
        if self.running:
            self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            self._signal(signal.SIGCONT)

    def stop(self, cleanup: bool = True) -> None:
        """SIGTERM, SIGKILL after `stop_timeout`s; reap; remove the temp dir."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self._signal(signal.SIGCONT)
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.kill()
            if self.proc is not None:
                self.proc.wait()
        finally:
            if cleanup:
                shutil.rmtree(self.workdir, ignore_errors=True)
                if self._port_block is not None:
                    self._port_block.release()
                    self._port_block = None

    def __enter__(self) -> "_ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.connect_string} pid={self.pid} workdir={self.workdir}>"


class ZkpyProcess(_ServerProcess):
    """`python -m zkpy serve zoo.cfg -Dkey=value ...`."""

    name = "zkpy"
    reports_port = True

    def _command(self, cfg: str) -> list[str]:
        return [sys.executable, "-m", "zkpy", "serve", cfg] + [f"-D{k}={v}" for k, v in self.java_props.items()]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # `python -m zkpy` must find this checkout's package whatever the cwd (the temp dir).
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env


class ApacheZooKeeper(_ServerProcess):
    """Apache ZooKeeper 3.8 standalone: `java ... QuorumPeerMain zoo.cfg`, small and quick to start."""

    name = "zookeeper"
    jvm_options = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                   "-Djava.net.preferIPv4Stack=true", "-Djava.awt.headless=true"]

    def _command(self, cfg: str) -> list[str]:
        log4j = os.path.join(self.workdir, "log4j.properties")
        with open(log4j, "w") as f:
            f.write(_LOG4J_PROPERTIES)
        props = {
            "zookeeper.log.dir": self.workdir,
            "zookeeper.log.file": "zookeeper.log",
            "zookeeper.root.logger": "INFO,CONSOLE",
            "log4j.configuration": "file:" + log4j,
            "zookeeper.admin.enableServer": "false",
            "zookeeper.jmx.log4j.disable": "true",
        }
        props.update(self.java_props)
        return (["java"] + self.jvm_options + ["-cp", apache_zookeeper_classpath()]
                + [f"-D{k}={v}" for k, v in props.items()]
                + ["org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg])

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ZOO_LOG_DIR"] = self.workdir
        return env
