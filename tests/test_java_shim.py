"""`zkpy java-shim DIR`: the `java` that makes harnesses which start ZooKeeper start zkpy.

The end-to-end tests run the shim as a harness does (kazoo's `ManagedZooKeeper` command line,
PATH with the shim first) and use the server through kazoo."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

from zkpy.testing.external import free_port
from zkpy.testing.java_shim import ShimError, log4j_file, translate

QPM = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# "super:test", the super user kazoo's harness configures.
SUPER_DIGEST = "-Dzookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU="


def kazoo_harness_command(workdir: str, log4j: str) -> list[str]:
    """The command line kazoo 2.11's ManagedZooKeeper.run builds (after its `java`)."""
    return ["-cp", "/x/zookeeper.jar:/x/lib/netty.jar", "-Dfile.encoding=UTF-8", "-Dreadonlymode.enabled=true",
            f"-Dzookeeper.log.dir={workdir}/log", "-Dzookeeper.root.logger=INFO,CONSOLE",
            f"-Dlog4j.configuration=file:{log4j}", "-Djava.awt.headless=true",
            f"-Djava.security.auth.login.config={workdir}/jaas.conf", SUPER_DIGEST, QPM, f"{workdir}/zoo.cfg"]


def test_translate_kazoo_harness_command():
    # JVM-only properties (file.encoding, java.awt.headless, log4j.configuration) are dropped;
    # the classpath is not zkpy's business; ZooKeeper's own properties go through in order.
    assert translate(kazoo_harness_command("/w", "/w/log4j.properties")) == [
        "serve", "/w/zoo.cfg", "-Dreadonlymode.enabled=true", "-Dzookeeper.log.dir=/w/log",
        "-Dzookeeper.root.logger=INFO,CONSOLE", "-Djava.security.auth.login.config=/w/jaas.conf", SUPER_DIGEST]


def test_translate_jvm_options_and_value_options():
    args = ["-Xmx256m", "-XX:+UseSerialGC", "-server", "-classpath", "a.jar", "--add-opens", "java.base/x=ALL",
            "-Dflag", "-Dk=v=w", "org.apache.zookeeper.server.ZooKeeperServerMain", "zoo.cfg"]
    assert translate(args) == ["serve", "zoo.cfg", "-Dflag=", "-Dk=v=w"]


@pytest.mark.parametrize("args", [
    ["-version"],
    [],
    ["-cp", "zookeeper.jar", "org.apache.zookeeper.ZooKeeperMain", "-server", "127.0.0.1:2181"],
    ["-jar", "app.jar", QPM, "zoo.cfg"],  # -jar: the program is the jar's, whatever follows
    ["-cp", QPM, "Main"],  # QuorumPeerMain as the value of -cp is no main class
    ["@argfile"],
])
def test_other_java_commands_are_not_translated(args):
    assert translate(args) is None


def test_quorum_peer_main_without_a_zoo_cfg_is_refused():
    with pytest.raises(ShimError, match="only the zoo.cfg form"):
        translate(["-cp", "x", QPM, "2181", "/data"])


def test_log4j_file(tmp_path):
    log4j = tmp_path / "log4j.properties"
    log4j.write_text("log4j.rootLogger=INFO, ROLLINGFILE\nlog4j.appender.ROLLINGFILE.File=/w/zookeeper.log\n")
    assert log4j_file([f"-Dlog4j.configuration=file:{log4j}", QPM, "zoo.cfg"]) == "/w/zookeeper.log"
    assert log4j_file([QPM, "zoo.cfg"]) is None
    assert log4j_file([f"-Dlog4j.configuration=file:{tmp_path}/missing", QPM, "zoo.cfg"]) is None


@pytest.fixture
def shim_dir(tmp_path):
    out = subprocess.run([sys.executable, "-m", "zkpy", "java-shim", str(tmp_path / "bin")], capture_output=True,
                         text=True, timeout=60, env=_env(os.environ.get("PATH", "")))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "bin" / "java")
    return tmp_path / "bin"


def _env(path: str) -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {**os.environ, "PATH": path, "PYTHONPATH": root}


def test_shim_starts_zkpy_that_kazoo_uses(shim_dir, tmp_path):
    """kazoo's command line through the shim: a zkpy server whose pid is the one the harness
    started (SIGTERM stops it with exit code 0, as kazoo's harness expects), that has the
    super user of the -D property, and logs where log4j would have.  kazoo's zoo.cfg has no
    clientPortAddress: the shim pins it to loopback (a zoo.cfg without it serves everywhere)."""
    port = free_port()
    (tmp_path / "data").mkdir()
    (tmp_path / "zoo.cfg").write_text(f"tickTime=500\ndataDir={tmp_path}/data\nclientPort={port}\n"
                                      "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n")
    log = tmp_path / "zookeeper.log"
    (tmp_path / "log4j.properties").write_text(f"log4j.appender.ROLLINGFILE.File={log}\n")
    (tmp_path / "jaas.conf").write_text("")
    proc = subprocess.Popen(["java", *kazoo_harness_command(str(tmp_path), str(tmp_path / "log4j.properties"))],
                            env=_env(f"{shim_dir}{os.pathsep}{os.environ.get('PATH', '')}"))
    client = KazooClient(f"127.0.0.1:{port}", timeout=10)
    try:
        client.start(timeout=30)
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[1:5] == [b"-m", b"zkpy", b"serve", str(tmp_path / "zoo.cfg").encode()]
        client.create("/private", b"secret", acl=[make_digest_acl("someone", "pw", all=True)])
        with pytest.raises(NoAuthError):
            client.get("/private")
        client.add_auth("digest", "super:test")
        assert client.get("/private")[0] == b"secret"
    finally:
        client.stop()
        client.close()
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    serving = [line for line in log.read_text().splitlines() if "serving" in line]
    assert serving and "host=127.0.0.1" in serving[0], serving


def test_other_java_commands_reach_the_real_java(shim_dir, tmp_path):
    real = tmp_path / "jdk"
    real.mkdir()
    (real / "java").write_text('#!/bin/sh\necho "real java: $*"\n')
    (real / "java").chmod(0o755)
    out = subprocess.run(["java", "-cp", "x.jar", "org.example.Main", "a b"], capture_output=True, text=True,
                         timeout=60, env=_env(f"{shim_dir}{os.pathsep}{real}"))
    assert (out.returncode, out.stdout) == (0, "real java: -cp x.jar org.example.Main a b\n")


def test_no_real_java(shim_dir):
    out = subprocess.run([str(shim_dir / "java"), "-version"], capture_output=True, text=True, timeout=60,
                         env=_env(str(shim_dir)))
    assert out.returncode == 127 and "no java in PATH" in out.stderr
