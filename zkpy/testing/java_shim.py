"""A `java` for test harnesses that start Apache ZooKeeper, so that they start zkpy instead.

Harnesses such as kazoo's (`kazoo.testing.common.ManagedZooKeeper`) and zkServer.sh run
`java [JVM options] -cp CLASSPATH [-Dkey=value ...] org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg`.
`zkpy java-shim DIR` writes `DIR/java`; with DIR first in PATH, that command becomes
`python -m zkpy serve zoo.cfg -Dkey=value ...` (by exec: the harness's pid and signals reach
zkpy), and every other java command (other main classes, `-jar`, `-version`) goes to the
real `java` later in PATH, so the JDK stays usable for whatever else the harness runs.

This file is run as a script by `DIR/java` (`python -P java_shim.py ...`): it imports only the
standard library, so a shimmed start costs one small interpreter start before zkpy's own.
"""

from __future__ import annotations

import os
import shlex
import sys

SERVER_MAIN_CLASSES = frozenset({
    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
    "org.apache.zookeeper.server.ZooKeeperServerMain",
})

# java options whose value is the next argument; any other "-..." before the main class stands alone.
_OPTIONS_WITH_VALUE = frozenset({
    "-cp", "-classpath", "--class-path", "-p", "--module-path", "--upgrade-module-path", "--add-modules",
    "--limit-modules", "--add-reads", "--add-exports", "--add-opens", "--patch-module",
})
# Options that name the program some other way than by a main class: not a ZooKeeper start.
_OTHER_PROGRAM_OPTIONS = frozenset({"-jar", "-m", "--module", "--source"})
# Properties only the JVM or log4j read; zkpy would warn about each as unknown.
_JVM_PROPERTY_PREFIXES = ("file.", "java.awt.", "sun.", "jdk.", "log4j.", "com.sun.management.")

# The zkpy checkout or site-packages this file belongs to, for the server it starts.
ZKPY_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ShimError(Exception):
    """A ZooKeeper start the shim cannot translate (exit code 2, as a bad zoo.cfg)."""


def translate(java_args: list[str]) -> list[str] | None:
    """`java`'s arguments -> `zkpy serve`'s (config path, then -D properties), or None when
    the command does not start a ZooKeeper server and belongs to the real java."""
    properties: list[str] = []
    i = 0
    while i < len(java_args):
        arg = java_args[i]
        if arg in _OTHER_PROGRAM_OPTIONS or arg.startswith("@"):
            return None
        if arg in _OPTIONS_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-D"):
            key, _, value = arg[2:].partition("=")
            if not key.startswith(_JVM_PROPERTY_PREFIXES):
                properties.append(f"-D{key}={value}")
        elif not arg.startswith("-"):
            break
        i += 1
    else:
        return None  # no main class: -version, -help, ...
    main_class, program_args = java_args[i], java_args[i + 1:]
    if main_class not in SERVER_MAIN_CLASSES:
        return None
    if len(program_args) != 1:
        raise ShimError(f"{main_class}: only the zoo.cfg form is supported, got arguments {program_args}")
    return ["serve", program_args[0], *properties]


def log4j_file(java_args: list[str]) -> str | None:
    """The file a `-Dlog4j.configuration=file:...` sends the server's log to, if it names one:
    harnesses read their servers' logs there (kazoo's `ManagedZooKeeper.get_logs`)."""
    for arg in java_args:
        if arg.startswith("-Dlog4j.configuration="):
            path = arg.partition("=")[2].removeprefix("file:")
            try:
                with open(path, encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except OSError:
                return None
            for line in lines:
                key, sep, value = line.partition("=")
                if sep and key.strip().startswith("log4j.appender.") and key.strip().endswith(".File"):
                    return value.strip()
    return None


def pin_loopback(cfg_path: str) -> None:
    """Add `clientPortAddress=127.0.0.1` to a harness's zoo.cfg that has none (kazoo's has
    none): without it a zoo.cfg serves on every interface, and test servers stay on loopback."""
    try:
        with open(cfg_path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return  # zkpy serve reports it
    if not any(line.strip().startswith("clientPortAddress") for line in text.splitlines()):
        with open(cfg_path, "a", encoding="utf-8") as f:
            f.write(("" if text.endswith("\n") or not text else "\n") + "clientPortAddress=127.0.0.1\n")


def real_java(shim_path: str) -> str | None:
    """The first `java` in PATH that is not this shim."""
    shim = os.path.realpath(shim_path)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory or ".", "java")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and os.path.realpath(candidate) != shim:
            return candidate
    return None


def run(shim_path: str, java_args: list[str]) -> int:
    """Exec zkpy or the real java; returns only with an exit code when neither can start."""
    try:
        zkpy_args = translate(java_args)
    except ShimError as e:
        print(f"zkpy java-shim: {e}", file=sys.stderr)
        return 2
    if zkpy_args is None:
        java = real_java(shim_path)
        if java is None:
            print(f"zkpy java-shim: no java in PATH besides {shim_path}", file=sys.stderr)
            return 127
        os.execv(java, [java, *java_args])
    pin_loopback(zkpy_args[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ZKPY_ROOT, env.get("PYTHONPATH")) if p)
    log_path = log4j_file(java_args)
    if log_path is not None:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    os.execve(sys.executable, [sys.executable, "-m", "zkpy", *zkpy_args], env)
    return 1  # not reached


def write_shim(directory: str) -> str:
    """Write `directory/java` (creating the directory) and return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "java")
    script = (
        "#!/bin/sh\n"
        "# Written by `zkpy java-shim`: ZooKeeper's QuorumPeerMain runs zkpy; other java commands\n"
        "# go to the real java later in PATH.\n"
        f"exec {shlex.quote(sys.executable)} -P {shlex.quote(os.path.abspath(__file__))} \"$0\" \"$@\"\n"
    )
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(script)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
