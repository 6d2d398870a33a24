"""Servers in separate processes, for integration, differential and crash tests and benchmarks.

`ZkpyProcess` runs `python -m zkpy serve zoo.cfg`; `ApacheZooKeeper` runs Debian's Apache
ZooKeeper 3.8 (`QuorumPeerMain zoo.cfg`).  Both listen on 127.0.0.1 on a free port, keep
their data in a temp dir (or the one given), serve sessions before `start` returns, and
clean up on `stop`.  Ready means `srvr` reports a mode: the server takes sessions.  Both are context managers.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def apache_zookeeper_available() -> bool:
    return os.path.exists(ZOOKEEPER_JAR) and shutil.which("java") is not None


def apache_zookeeper_classpath() -> str:
    jars = ["/etc/zookeeper/conf", ZOOKEEPER_JAR] + sorted(glob.glob("/usr/share/java/netty-*.jar"))
    jars += [j for j in ("/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar") if os.path.exists(j)]
    return ":".join(jars)


def four_letter_word(host: str, port: int, word: str, timeout: float = 5.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


class _ServerProcess:
    name = "server"

    def __init__(self, tick_time: int = 2000, config: dict[str, str] | None = None,
                 java_props: dict[str, str] | None = None, startup_timeout: float = 30.0,
                 data_dir: str | None = None, port: int | None = None) -> None:
        self.tick_time = tick_time
        self.config = dict(config or {})
        self.java_props = dict(java_props or {})
        self.startup_timeout = startup_timeout
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = tempfile.mkdtemp(prefix=f"zkpy-{self.name}-")
        self.own_data_dir = data_dir is None
        self.data_dir = data_dir or os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.workdir, "server.log")

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _write_cfg(self) -> str:
        settings = {
            "tickTime": str(self.tick_time),
            "dataDir": self.data_dir,
            "clientPort": str(self.port),
            "clientPortAddress": self.host,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
        }
        settings.update(self.config)
        path = os.path.join(self.workdir, "zoo.cfg")
        with open(path, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in settings.items())
        return path

    def _command(self, cfg: str) -> list[str]:
        raise NotImplementedError

    def start(self) -> "_ServerProcess":
        cfg = self._write_cfg()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._command(cfg), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True)
        log.close()
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                # `ruok` answers before ZooKeeper serves sessions; `srvr` reports a mode only then.
                if "Mode:" in four_letter_word(self.host, self.port, "srvr", timeout=1):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not start in {self.startup_timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self, cleanup: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        if cleanup:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ZkpyProcess(_ServerProcess):
    name = "zkpy"

    def _command(self, cfg: str) -> list[str]:
        return [sys.executable, "-m", "zkpy", "serve", cfg] + [f"-D{k}={v}" for k, v in self.java_props.items()]


class ApacheZooKeeper(_ServerProcess):
    name = "zookeeper"

    def _command(self, cfg: str) -> list[str]:
        props = {"zookeeper.log.dir": self.workdir, "zookeeper.root.logger": "INFO,CONSOLE",
                 "zookeeper.admin.enableServer": "false"}
        props.update(self.java_props)
        return (["java", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", apache_zookeeper_classpath()]
                + [f"-D{k}={v}" for k, v in props.items()]
                + ["org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg])
