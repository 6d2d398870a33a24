"""The official Java client (Apache ZooKeeper 3.8) against a `zkpy serve` process.

1. The zkCli shell (ZooKeeperMain) runs one scripted session, reading its commands from
   stdin; the same script runs against Apache ZooKeeper, and the output of every command
   must be what ZooKeeper prints (after normalising times and session ids).  The test also
   states the important lines outright (node names, Stat fields, NoAuth, NoNode).
2. A small Java program, compiled with javac at test time, uses the sync and async API
   (create/getData/setData/exists/getChildren with watchers, addWatch, multi, ACLs) and
   prints `ok NAME` or `FAIL NAME: why` per check.  It also runs against Apache ZooKeeper,
   which proves that the program's expectations are ZooKeeper's.

Every JVM start costs about a second, so each server gets one shell run and one program
run, zkpy's and ZooKeeper's side by side.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from zkpy.testing.external import ApacheZooKeeper, ZkpyProcess

from java_support import MARK, classpath, java_missing, javac, program_checks, zkcli_script

JVM = ["java", "-XX:-UsePerfData", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]

pytestmark = pytest.mark.timeout(180)

BOB_DIGEST = base64.b64encode(hashlib.sha1(b"bob:pw").digest()).decode()

# One zkCli session.  zkCli does not echo commands, so a marker command (a NoNode `ls`)
# follows each one and the output is cut into one piece per command.
COMMANDS = [
    "ls /",
    "create /j hello",
    "create -e -s /j/e- data",
    "create -s /j/p- ",
    "ls /j",
    "ls -s /j",
    "get /j",
    "get -s /j",
    "set /j world",
    "stat /j",
    "get -s /j/e-0000000000",
    "stat /j/e-0000000000",
    "set -v 7 /j again",
    "create /j/e-0000000000/child",
    "create /j",
    "delete /j",
    "delete -v 3 /j/p-0000000001",
    "create /j/sub x",
    "delete /j/sub",
    "get /j/sub",
    "stat /nope",
    "delete /nope",
    "set /nope x",
    "ls /nope",
    "getAcl /j",
    "getAllChildrenNumber /j",
    "getEphemerals /j",
    "sync /j",
    "create /k",
    "setAcl /k world:anyone:rw",
    "getAcl /k",
    "setAcl /k world:anyone:cdrwa",
    "delete /k",
    # a digest ACL for someone this session is not: NoAuth, then addauth lets it in
    "create /locked original",
    f"setAcl /locked digest:bob:{BOB_DIGEST}:cdrwa",
    "get /locked",
    "set /locked changed",
    "getAcl /locked",
    "addauth digest bob:pw",
    "get /locked",
    "getAcl /locked",
    "set /locked changed",
    "setAcl /locked world:anyone:r",
    "set /locked again",
    "get -s /locked",
    "delete /locked",
    # auth: the creator's own digest
    "create /sec secret",
    "addauth digest alice:pw",
    "setAcl /sec auth:alice:pw:cdrwa",
    "getAcl /sec",
    "get /sec",
    "deleteall /j",
    "ls /j",
    "whoami",
    "create -t 1000 /ttl",
    "create -c /cont",
    "stat /cont",
    "ls /",
    # a node created without data has null data; `get` prints "null"
    "create /nodata",
    "get /nodata",
    "set /nodata x",
    "get /nodata",
    "delete /nodata",
]






def _normalise(text: str) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith(("log4j:", "SLF4J", "Connecting to ", "Welcome to ZooKeeper", "JLine support")):
            continue
        # Connection-state events are printed by the client's event thread, racing the main thread.
        if line.startswith("WATCHER::") or re.match(r"WatchedEvent state:\w+ type:None path:null", line):
            continue
        line = re.sub(r"^(ctime|mtime) = .*$", r"\1 = <time>", line)
        line = re.sub(r"^ephemeralOwner = 0x(?!0$)[0-9a-f]+$", "ephemeralOwner = <session>", line)
        out.append(line)
    return "\n".join(out)


class Transcript:
    """What zkCli printed for each command: `t["cmd"]`, or `t["cmd", 1]` for its second run."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def __getitem__(self, key) -> str:
        cmd, n = key if isinstance(key, tuple) else (key, 0)
        return self.pieces[[i for i, c in enumerate(COMMANDS) if c == cmd][n]]


def _split(output: str) -> Transcript:
    pieces = []
    rest = _normalise(output)
    for i, cmd in enumerate(COMMANDS):
        marker = f"Node does not exist: {MARK.format(i)}"
        if marker not in rest:
            raise AssertionError(f"no output boundary after {cmd!r} (zkCli died?):\n{output[-3000:]}")
        piece, rest = rest.split(marker, 1)
        pieces.append(piece.strip("\n"))
    return Transcript(pieces)


# ---------------------------------------------------------------------------- the Java program

PROGRAM = r"""
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.zookeeper.*;
import org.apache.zookeeper.data.*;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;

/** Sync and async API, watches, multi, ACLs.  Prints "ok NAME" or "FAIL NAME: why" per check. */
public class ClientCheck {
    static int failures = 0;
    static void check(boolean ok, String name, Object detail) {
        if (ok) System.out.println("ok " + name);
        else { failures++; System.out.println("FAIL " + name + ": " + detail); }
    }
    static boolean await(CountDownLatch l) throws InterruptedException { return l.await(10, TimeUnit.SECONDS); }
    static final List<ACL> OPEN = ZooDefs.Ids.OPEN_ACL_UNSAFE;

    static ZooKeeper connect(String hosts) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, 10000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown();
        });
        if (!await(connected)) throw new RuntimeException("not connected");
        return zk;
    }

    public static void main(String[] args) throws Exception {
        ZooKeeper zk = connect(args[0]);
        ZooKeeper other = connect(args[0]);
        check(zk.getSessionId() != other.getSessionId() && zk.getSessionId() != 0, "two sessions", zk.getSessionId());

        String made = zk.create("/jc", "v1".getBytes(), OPEN, CreateMode.PERSISTENT);
        check(made.equals("/jc"), "sync create", made);

        // async create
        CountDownLatch createdAsync = new CountDownLatch(1);
        AtomicReference<String> asyncName = new AtomicReference<>();
        zk.create("/jc/async-", "a".getBytes(), OPEN, CreateMode.PERSISTENT_SEQUENTIAL, (rc, path, ctx, name) -> {
            if (rc == 0 && "ctx".equals(ctx)) { asyncName.set(name); createdAsync.countDown(); }
        }, "ctx");
        check(await(createdAsync) && "/jc/async-0000000000".equals(asyncName.get()), "async create (sequential)", asyncName.get());

        // getData with a watcher, then an async setData fires it
        LinkedBlockingQueue<WatchedEvent> dataEvents = new LinkedBlockingQueue<>();
        Stat st = new Stat();
        byte[] data = zk.getData("/jc", dataEvents::add, st);
        check(new String(data).equals("v1") && st.getVersion() == 0 && st.getDataLength() == 2 && st.getNumChildren() == 1,
              "getData with watcher", st);
        CountDownLatch setDone = new CountDownLatch(1);
        AtomicInteger setVersion = new AtomicInteger(-99);
        zk.setData("/jc", "v2".getBytes(), 0, (rc, path, ctx, stat) -> {
            if (rc == 0) { setVersion.set(stat.getVersion()); setDone.countDown(); }
        }, null);
        check(await(setDone) && setVersion.get() == 1, "async setData", setVersion.get());
        WatchedEvent ev = dataEvents.poll(10, TimeUnit.SECONDS);
        check(ev != null && ev.getType() == Watcher.Event.EventType.NodeDataChanged && "/jc".equals(ev.getPath()),
              "data watch fired", ev);
        zk.setData("/jc", "v2b".getBytes(), -1);
        check(dataEvents.poll(300, TimeUnit.MILLISECONDS) == null, "data watch fired once only", dataEvents);

        // async getData with a watcher
        CountDownLatch gotAsync = new CountDownLatch(1);
        AtomicReference<String> asyncData = new AtomicReference<>();
        LinkedBlockingQueue<WatchedEvent> asyncWatch = new LinkedBlockingQueue<>();
        zk.getData("/jc", asyncWatch::add, (rc, path, ctx, d, stat) -> {
            if (rc == 0 && stat.getVersion() == 2) { asyncData.set(new String(d)); gotAsync.countDown(); }
        }, null);
        check(await(gotAsync) && "v2b".equals(asyncData.get()), "async getData", asyncData.get());

        // exists watch on a missing node, child watch, persistent recursive watch
        LinkedBlockingQueue<WatchedEvent> existsEvents = new LinkedBlockingQueue<>();
        check(zk.exists("/jc/a", existsEvents::add) == null, "exists of a missing node is null", null);
        LinkedBlockingQueue<WatchedEvent> childEvents = new LinkedBlockingQueue<>();
        List<String> kids = zk.getChildren("/jc", childEvents::add);
        check(kids.equals(Arrays.asList("async-0000000000")), "getChildren with watcher", kids);
        // (on the other session: one connection has one watch mode per path, and a persistent
        // recursive watch would replace this session's child watch on /jc, as in ZooKeeper)
        CountDownLatch recursive = new CountDownLatch(2);
        other.addWatch("/jc", e -> {
            if (e.getType() == Watcher.Event.EventType.NodeCreated) recursive.countDown();
        }, AddWatchMode.PERSISTENT_RECURSIVE);

        List<OpResult> results = zk.multi(Arrays.asList(
            Op.create("/jc/a", new byte[0], OPEN, CreateMode.PERSISTENT),
            Op.create("/jc/a/b", "eph".getBytes(), OPEN, CreateMode.EPHEMERAL),
            Op.setData("/jc", "v3".getBytes(), 2),
            Op.check("/jc", 3)));
        check(results.size() == 4 && results.get(0) instanceof OpResult.CreateResult
              && ((OpResult.CreateResult) results.get(1)).getPath().equals("/jc/a/b")
              && ((OpResult.SetDataResult) results.get(2)).getStat().getVersion() == 3
              && results.get(3) instanceof OpResult.CheckResult, "multi committed", results);
        ev = existsEvents.poll(10, TimeUnit.SECONDS);
        check(ev != null && ev.getType() == Watcher.Event.EventType.NodeCreated && "/jc/a".equals(ev.getPath()),
              "exists watch fired NodeCreated", ev);
        ev = childEvents.poll(10, TimeUnit.SECONDS);
        check(ev != null && ev.getType() == Watcher.Event.EventType.NodeChildrenChanged && "/jc".equals(ev.getPath()),
              "child watch fired", ev);
        ev = asyncWatch.poll(10, TimeUnit.SECONDS);
        check(ev != null && ev.getType() == Watcher.Event.EventType.NodeDataChanged, "async getData's watch fired", ev);
        check(await(recursive), "persistent recursive watch fired twice", recursive.getCount());

        try {
            zk.multi(Arrays.asList(Op.delete("/jc/a/b", -1), Op.delete("/jc", 99)));
            check(false, "failing multi raises BadVersion", "no exception");
        } catch (KeeperException.BadVersionException e) {
            List<OpResult> rs = e.getResults();
            check(rs.size() == 2 && ((OpResult.ErrorResult) rs.get(0)).getErr() == 0
                  && ((OpResult.ErrorResult) rs.get(1)).getErr() == KeeperException.Code.BADVERSION.intValue(),
                  "failing multi raises BadVersion with per-op errors", rs);
        }
        check(zk.exists("/jc/a/b", false) != null, "rolled-back delete left the node", null);

        // async multi
        CountDownLatch multiDone = new CountDownLatch(1);
        AtomicInteger multiRc = new AtomicInteger(-99);
        zk.multi(Arrays.asList(Op.create("/jc/m", new byte[0], OPEN, CreateMode.PERSISTENT), Op.delete("/jc/m", 0)),
                 (rc, path, ctx, opResults) -> { multiRc.set(rc); multiDone.countDown(); }, null);
        check(await(multiDone) && multiRc.get() == 0 && zk.exists("/jc/m", false) == null, "async multi", multiRc.get());

        Stat eph = zk.exists("/jc/a/b", false);
        check(eph.getEphemeralOwner() == zk.getSessionId() && eph.getDataLength() == 3, "ephemeralOwner is the session", eph);
        check(zk.getAllChildrenNumber("/jc") == 3, "getAllChildrenNumber", zk.getAllChildrenNumber("/jc"));
        check(zk.getEphemerals("/jc").equals(Arrays.asList("/jc/a/b")), "getEphemerals", zk.getEphemerals("/jc"));

        // errors
        try { zk.getData("/jc/missing", false, null); check(false, "NoNode", "no exception"); }
        catch (KeeperException.NoNodeException e) { check("/jc/missing".equals(e.getPath()), "NoNode", e.getPath()); }
        try { zk.create("/jc", new byte[0], OPEN, CreateMode.PERSISTENT); check(false, "NodeExists", "no exception"); }
        catch (KeeperException.NodeExistsException e) { check(true, "NodeExists", null); }
        try { zk.delete("/jc", -1); check(false, "NotEmpty", "no exception"); }
        catch (KeeperException.NotEmptyException e) { check(true, "NotEmpty", null); }
        try { zk.create("/jc/a/b/c", new byte[0], OPEN, CreateMode.PERSISTENT); check(false, "NoChildrenForEphemerals", "no exception"); }
        catch (KeeperException.NoChildrenForEphemeralsException e) { check(true, "NoChildrenForEphemerals", null); }

        // ACLs: a digest id the session does not hold, then addAuthInfo
        String bob = DigestAuthenticationProvider.generateDigest("bob:pw");
        List<ACL> bobOnly = Collections.singletonList(new ACL(ZooDefs.Perms.ALL, new Id("digest", bob)));
        zk.create("/jc/bob", "bob's".getBytes(), bobOnly, CreateMode.PERSISTENT);
        try { zk.getData("/jc/bob", false, null); check(false, "NoAuth without the digest", "no exception"); }
        catch (KeeperException.NoAuthException e) { check(true, "NoAuth without the digest", null); }
        try { zk.setData("/jc/bob", new byte[0], -1); check(false, "NoAuth on setData", "no exception"); }
        catch (KeeperException.NoAuthException e) { check(true, "NoAuth on setData", null); }
        zk.addAuthInfo("digest", "bob:pw".getBytes());
        check(new String(zk.getData("/jc/bob", false, null)).equals("bob's"), "getData after addAuthInfo", null);
        List<ACL> acl = zk.getACL("/jc/bob", new Stat());
        check(acl.equals(bobOnly), "getACL", acl);
        check(zk.whoAmI().size() == 2, "whoAmI lists ip and digest", zk.whoAmI());
        Stat aclStat = zk.setACL("/jc/bob", ZooDefs.Ids.READ_ACL_UNSAFE, 0);
        check(aclStat.getAversion() == 1, "setACL world:anyone:r", aclStat);
        try { other.setData("/jc/bob", new byte[0], -1); check(false, "NoAuth after setACL to read-only", "no exception"); }
        catch (KeeperException.NoAuthException e) { check(true, "NoAuth after setACL to read-only", null); }
        check(new String(other.getData("/jc/bob", false, null)).equals("bob's"), "world can read", null);
        try { zk.setACL("/jc/bob", OPEN, 0); check(false, "setACL with a stale aversion", "no exception"); }
        catch (KeeperException.NoAuthException | KeeperException.BadVersionException e) {
            check(e instanceof KeeperException.NoAuthException, "setACL without ADMIN is NoAuth", e);
        }

        // null data (Java's create(path, null, ...)) stays null
        zk.create("/jc/null", null, OPEN, CreateMode.PERSISTENT);
        byte[] nd = zk.getData("/jc/null", false, null);
        check(nd == null, "null data reads back as null", nd == null ? "null" : "byte[" + nd.length + "]");

        // closing a session deletes its ephemerals; another session's watch sees it
        LinkedBlockingQueue<WatchedEvent> gone = new LinkedBlockingQueue<>();
        check(other.exists("/jc/a/b", gone::add) != null, "other session sees the ephemeral", null);
        zk.close();
        ev = gone.poll(10, TimeUnit.SECONDS);
        check(ev != null && ev.getType() == Watcher.Event.EventType.NodeDeleted && "/jc/a/b".equals(ev.getPath()),
              "ephemeral deleted on close, watcher fired", ev);
        check(other.exists("/jc/a/b", false) == null, "ephemeral gone", null);
        other.close();
        System.out.println(failures == 0 ? "ALL OK" : "FAILURES " + failures);
    }
}
"""


# ---------------------------------------------------------------------------- fixtures








def _run_all(pool, jobs):
    futures = [pool.submit(j) for j in jobs]
    return [f.result() for f in futures]


@pytest.fixture(scope="module")
def java_runs(tmp_path_factory):
    """zkCli output and program output, from zkpy and from Apache ZooKeeper."""
    missing = java_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI: the Java client tests need {missing} (Debian's zookeeper package)")
        pytest.skip(f"needs {missing} (Debian's zookeeper package, which brings a Java runtime)")
    build = tmp_path_factory.mktemp("javacheck")
    src = build / "ClientCheck.java"
    src.write_text(PROGRAM)
    cp = classpath()
    compiler = subprocess.Popen(javac() + ["-cp", cp, "-d", str(build), str(src)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ours, theirs = ZkpyProcess(), ApacheZooKeeper()
    try:
        with ThreadPoolExecutor(2) as pool:
            _run_all(pool, [ours.start, theirs.start])

            def shell(server):
                r = subprocess.run(JVM + ["-cp", cp, "org.apache.zookeeper.ZooKeeperMain", "-server",
                                          server.connect_string], input=zkcli_script(COMMANDS), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, timeout=90)
                return r.stdout

            shell_out = _run_all(pool, [lambda: shell(ours), lambda: shell(theirs)])
            out, _ = compiler.communicate(timeout=120)
            assert compiler.returncode == 0, out

            def program(server):
                r = subprocess.run(JVM + ["-cp", cp + ":" + str(build), "ClientCheck", server.connect_string],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=90)
                return r.stdout

            prog_out = _run_all(pool, [lambda: program(ours), lambda: program(theirs)])
    finally:
        if compiler.poll() is None:
            compiler.kill()
            compiler.wait()
        ours.stop()
        theirs.stop()
    return {"shell": {"zkpy": shell_out[0], "zookeeper": shell_out[1]},
            "program": {"zkpy": prog_out[0], "zookeeper": prog_out[1]}}


@pytest.fixture(scope="module")
def shell(java_runs):
    theirs = _split(java_runs["shell"]["zookeeper"])
    ours = _split(java_runs["shell"]["zkpy"])
    return ours, theirs




# ---------------------------------------------------------------------------- zkCli


def test_zkcli_prints_what_zookeeper_prints(shell):
    ours, theirs = shell
    differ = [f"$ {cmd}\n--- zookeeper:\n{b}\n--- zkpy:\n{a}"
              for cmd, a, b in zip(COMMANDS, ours.pieces, theirs.pieces) if a != b]
    assert not differ, "\n\n".join(differ)


def test_zkcli_transcript_content(shell):
    """What a ZooKeeper user would look for, stated outright (and checked on ZooKeeper too)."""
    for out in shell:
        assert out["ls /"] == "[zookeeper]"
        assert out["create /j hello"] == "Created /j"
        assert out["create -e -s /j/e- data"] == "Created /j/e-0000000000"
        assert out["create -s /j/p- "] == "Created /j/p-0000000001"
        assert out["ls /j"] == "[e-0000000000, p-0000000001]"
        assert out["get /j"] == "hello"
        get_s = out["get -s /j"].splitlines()
        assert get_s[0] == "hello" and "dataVersion = 0" in get_s and "numChildren = 2" in get_s
        assert "ephemeralOwner = 0x0" in get_s and "dataLength = 5" in get_s and "cversion = 2" in get_s
        stat = out["stat /j"].splitlines()
        assert "dataVersion = 1" in stat and "dataLength = 5" in stat and "numChildren = 2" in stat
        assert stat[0] == "cZxid = 0x2" and "mZxid = 0x5" in stat and "pZxid = 0x4" in stat
        eph = out["stat /j/e-0000000000"].splitlines()
        assert "ephemeralOwner = <session>" in eph and "numChildren = 0" in eph and "dataLength = 4" in eph
        assert out["get -s /j/e-0000000000"].splitlines()[0] == "data"
        assert out["set -v 7 /j again"] == "version No is not valid : /j"
        assert out["create /j/e-0000000000/child"] == "Ephemerals cannot have children: /j/e-0000000000/child"
        assert out["create /j"] == "Node already exists: /j"
        assert out["delete /j"] == "Node not empty: /j"
        assert out["delete -v 3 /j/p-0000000001"] == "version No is not valid : /j/p-0000000001"
        assert out["delete /j/sub"] == ""
        for cmd in ("get /j/sub", "stat /nope", "delete /nope", "set /nope x", "ls /nope"):
            assert out[cmd] == "Node does not exist: " + cmd.split()[1], cmd
        assert out["getAcl /j"] == "'world,'anyone\n: cdrwa"
        assert out["getAcl /k"] == "'world,'anyone\n: rw"
        assert out["getAllChildrenNumber /j"] == "2"
        assert out["getEphemerals /j"] == "[/j/e-0000000000]"
        # NoAuth for a digest id the session does not hold, until addauth
        for cmd in ("get /locked", "set /locked changed", "getAcl /locked"):
            assert out[cmd] == "Insufficient permission : /locked", cmd
        assert out["addauth digest bob:pw"] == ""
        assert out["get /locked", 1] == "original"
        assert out["getAcl /locked", 1] == f"'digest,'bob:{BOB_DIGEST}\n: cdrwa"
        assert out["set /locked changed", 1] == ""
        assert out["set /locked again"] == "Insufficient permission : /locked"
        assert out["get -s /locked"].splitlines()[0] == "changed"
        assert "dataVersion = 1" in out["get -s /locked"] and "aclVersion = 2" in out["get -s /locked"]
        # auth: grants every digest id the session holds
        assert out["getAcl /sec"].splitlines() == [f"'digest,'bob:{BOB_DIGEST}", ": cdrwa",
                                                   "'digest,'alice:V55/p2T0OpjQ+low3NVAH4aLvm0=", ": cdrwa"]
        assert out["get /sec"] == "secret"
        assert out["ls /j", 1] == "Node does not exist: /j"  # deleteall
        assert out["whoami"] == "Auth scheme: User\ndigest: bob\nip: 127.0.0.1\ndigest: alice"
        assert out["create -t 1000 /ttl"] == "KeeperErrorCode = Unimplemented for /ttl"  # extendedTypes off
        assert out["create -c /cont"] == "Created /cont"
        assert out["ls /", 1] == "[cont, sec, zookeeper]"


def test_zkcli_get_of_a_node_created_without_data(shell):
    for out in shell:
        assert out["get /nodata"] == "null" and out["get /nodata", 1] == "x"


# ---------------------------------------------------------------------------- the Java API program


def test_java_api_program(java_runs):
    theirs = program_checks(java_runs["program"]["zookeeper"])
    ours = program_checks(java_runs["program"]["zkpy"])
    assert len(theirs) >= 35 and all(v == "ok" for v in theirs.values()), \
        "the program's expectations do not hold on Apache ZooKeeper:\n" + java_runs["program"]["zookeeper"]
    assert set(ours) == set(theirs), java_runs["program"]["zkpy"]
    failed = {k: v for k, v in ours.items() if v != "ok"}
    assert not failed, java_runs["program"]["zkpy"]
    assert "watch fired" in " ".join(k for k, v in ours.items() if v == "ok")


def test_java_api_null_data(java_runs):
    for server in ("zookeeper", "zkpy"):
        assert program_checks(java_runs["program"][server])["null data reads back as null"] == "ok", server
