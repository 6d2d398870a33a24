"""The official Java client against `zkpy serve`: the zkCli shell (ZooKeeperMain) and a
program using the Java API.  The shell transcript must read as Apache ZooKeeper's does."""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from zkpy.testing.external import ApacheZooKeeper, ZkpyProcess, apache_zookeeper_available, apache_zookeeper_classpath

EXTRA_JARS = ["/usr/share/java/commons-cli.jar", "/usr/share/java/slf4j-api.jar"]
SCRIPT = """\
ls /
create /j hello
create -e -s /j/e- data
ls /j
get /j
get -s /j
set /j world
stat /j
create /j/sub
delete /j/sub
getAcl /j
create /k
setAcl /k world:anyone:rw
getAcl /k
setAcl /k world:anyone:cdrwa
delete /k
create /sec secret
addauth digest alice:pw
setAcl /sec auth:alice:pw:cdrwa
getAcl /sec
get /sec
delete /nope
create /j
deleteall /j
ls /
quit
"""


def _classpath() -> str:
    return ":".join([apache_zookeeper_classpath()] + [j for j in EXTRA_JARS if os.path.exists(j)])


@pytest.fixture(scope="module")
def java_ready():
    if not (apache_zookeeper_available() and shutil.which("javac")):
        if os.environ.get("CI"):
            pytest.fail("Java or Apache ZooKeeper's client is not installed")
        pytest.skip("Java or Apache ZooKeeper's client is not installed")


def _shell(connect: str, script: str) -> str:
    r = subprocess.run(["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", _classpath(),
                        "org.apache.zookeeper.ZooKeeperMain", "-server", connect],
                       input=script, capture_output=True, text=True, timeout=120)
    out = r.stdout + "\n" + "\n".join(l for l in r.stderr.splitlines() if not l.startswith(("SLF4J", "log4j")))
    # times and session ids differ between any two runs
    out = re.sub(r"^(ctime|mtime) = .*$", r"\1 = <time>", out, flags=re.M)
    out = re.sub(r"^ephemeralOwner = 0x[0-9a-f]+$", lambda m: "ephemeralOwner = " + ("0x0" if m.group(0).endswith(" 0x0") else "<session>"), out, flags=re.M)
    out = re.sub(r"^Connecting to .*$", "Connecting", out, flags=re.M)
    # Connection-state events are printed by the client's event thread, racing its exit.
    out = re.sub(r"WATCHER::\s*WatchedEvent state:\w+ type:None path:null\s*", "", out)
    return out


def test_zkcli_session_reads_like_apache_zookeeper(java_ready):
    with ZkpyProcess() as ours:
        got = _shell(ours.connect_string, SCRIPT)
    with ApacheZooKeeper() as theirs:
        want = _shell(theirs.connect_string, SCRIPT)
    assert "Created /j/e-0000000000" in got and "[e-0000000000]" in got
    assert "Node does not exist: /nope" in got and "Node already exists: /j" in got
    assert "ephemeralOwner = <session>" not in got.split("get -s")[0]  # sanity of the normaliser
    assert "'digest,'alice:" in got and "secret" in got
    assert got == want


def test_java_api_program(java_ready):
    src = os.path.join(os.path.dirname(__file__), "java", "ClientCheck.java")
    digest = hashlib.sha256(open(src, "rb").read()).hexdigest()[:16]
    build = os.path.join(tempfile.gettempdir(), f"zkpy-javacheck-{digest}")
    if not os.path.exists(os.path.join(build, "ClientCheck.class")):
        os.makedirs(build, exist_ok=True)
        subprocess.run(["javac", "-cp", _classpath(), "-d", build, src], check=True, timeout=120)
    with ZkpyProcess() as server:
        r = subprocess.run(["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", _classpath() + ":" + build,
                            "ClientCheck", server.connect_string], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ALL OK" in r.stdout, r.stdout + r.stderr[-2000:]
