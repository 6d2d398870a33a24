"""What the tests that run the official Java client share: its classpath, a compiler, zkCli
scripts with markers between commands, and the `ok NAME` / `FAIL NAME: why` check lines
that the test programs print."""

from __future__ import annotations

import os
import re
import shutil

from zkpy.testing.external import apache_zookeeper_classpath

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
EXTRA_JARS = ["/usr/share/java/commons-cli.jar", "/usr/share/java/slf4j-api.jar"]

# zkCli does not echo commands, so a marker command (a NoNode `ls`) follows each one and the
# output is cut into one piece per command.
MARK = "/__zkpy_marker_{}"


def classpath() -> str:
    return ":".join([apache_zookeeper_classpath()] + [j for j in EXTRA_JARS if os.path.exists(j)])


def java_missing() -> str | None:
    missing = [what for what, ok in (("java", shutil.which("java")),
                                     (ZOOKEEPER_JAR, os.path.exists(ZOOKEEPER_JAR))) if not ok]
    return ", ".join(missing) or None


def javac() -> list[str]:
    """javac; with only a JRE (Debian's zookeeper depends on default-jre), the same compiler
    through `java`: its module image carries jdk.compiler."""
    if shutil.which("javac"):
        return ["javac", "-J-XX:TieredStopAtLevel=1"]
    return ["java", "-XX:TieredStopAtLevel=1", "-m", "jdk.compiler/com.sun.tools.javac.Main"]


def zkcli_script(commands: list[str]) -> str:
    lines = []
    for i, cmd in enumerate(commands):
        lines += [cmd, "ls " + MARK.format(i)]
    return "\n".join(lines + ["quit", ""])


def program_checks(output: str) -> dict[str, str]:
    """{check name: "ok" or "FAIL: why"} from a test program's output."""
    res = {}
    for line in output.splitlines():
        m = re.match(r"(ok|FAIL) ([^:]+)(?:: (.*))?$", line)
        if m:
            res[m.group(2)] = "ok" if m.group(1) == "ok" else "FAIL: " + (m.group(3) or "")
    return res
