"""The official Java client (Apache ZooKeeper 3.8) against a 3-node ensemble of `zkpy serve` processes.

1. A small Java program (compiled with javac at test time) runs once per member, the three
   runs in parallel, each with the connect string of that member alone.  It creates
   persistent, ephemeral and sequential znodes, sets and gets data, has a data, child and
   exists watch on its member fired by writes made through the OTHER members (and the other
   way round), runs multi (committed and rolled back) and sync, and checks that its writes
   are visible, with identical Stats, through every member after a sync; closing its session
   removes its ephemerals everywhere.  It prints `ok NAME` / `FAIL NAME: why` per check.
2. zkCli (ZooKeeperMain) against a follower: create, get -s, ls, set, delete; a node it
   leaves behind is then read (kazoo) through the other members.
3. Failover: one JVM, two clients with a fixed server order (a HostProvider that does not
   shuffle), A on a follower first, B on the leader first.  The follower is killed: A must
   reconnect to another member with the same session (SyncConnected, never Expired), its
   ephemeral intact, and write.  The follower comes back, then the leader is killed: both
   clients must get through the election the same way (once the test has seen a new leader,
   both must be connected, with their sessions, ephemerals and each other's writes).
4. A kazoo probe, right after the leader is killed, reattaches a session through a follower:
   it must be connected only when it can stay connected, and a sync through a follower of the
   new leader must be answered before any txn of the new epoch.  (Both found zkpy bugs,
   fixed in 557670c; the failover in 3 hit the first in about half the runs.)

Everything runs against a 3-node Apache ZooKeeper ensemble too, which proves that the
expectations are ZooKeeper's.  About 20-30 s in all on two cores.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from zkpy.testing.ensemble import Ensemble

from java_support import MARK, classpath, java_missing, javac, program_checks, zkcli_script

JVM = ["java", "-XX:-UsePerfData", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]

pytestmark = pytest.mark.timeout(90)

PROGRAM = r"""
import java.net.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.zookeeper.*;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.client.HostProvider;
import org.apache.zookeeper.data.*;

/**
 * member TAG MINE OTHER1 OTHER2   the API through MINE, cross-checked through the others
 * failover F1 F2 L                 reconnect with the same session when F1, then L, dies
 * Prints "ok NAME" or "FAIL NAME: why" per check, and "ALL OK" or "FAILURES n" at the end.
 */
public class EnsembleCheck {
    static int failures = 0;
    static synchronized void check(boolean ok, String name, Object detail) {
        if (ok) System.out.println("ok " + name);
        else { failures++; System.out.println("FAIL " + name + ": " + detail); }
        System.out.flush();
    }
    static final List<ACL> OPEN = ZooDefs.Ids.OPEN_ACL_UNSAFE;
    static final long T0 = System.currentTimeMillis();

    /** The servers in the given order, no shuffling; otherwise as StaticHostProvider. */
    static class Ordered implements HostProvider {
        final List<InetSocketAddress> addrs = new ArrayList<>();
        int current = -1, last = -1;
        Ordered(String hosts) {
            for (String h : hosts.split(",")) {
                String[] hp = h.split(":");
                addrs.add(new InetSocketAddress(hp[0], Integer.parseInt(hp[1])));
            }
        }
        public int size() { return addrs.size(); }
        public synchronized InetSocketAddress next(long spinDelay) {
            current = (current + 1) % addrs.size();
            if (current == last && spinDelay > 0) {
                try { Thread.sleep(spinDelay); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
            } else if (last == -1) {
                last = 0;
            }
            return addrs.get(current);
        }
        public synchronized void onConnected() { last = current; }
        public boolean updateServerList(Collection<InetSocketAddress> a, InetSocketAddress c) { return false; }
    }

    /** A client that records its connection states and can tell which server it is on. */
    static class Client extends ZooKeeper {
        final LinkedBlockingQueue<KeeperState> states;
        final AtomicBoolean expired;
        final AtomicInteger disconnects;
        Client(String hosts, LinkedBlockingQueue<KeeperState> states, AtomicBoolean expired, AtomicInteger disconnects)
                throws Exception {
            super(hosts, 4000, e -> {
                if (e.getType() == EventType.None) {
                    System.out.println("state " + hosts.split(",")[0] + " " + e.getState() + " at ms " + (System.currentTimeMillis() - T0));
                    if (e.getState() == KeeperState.Expired) expired.set(true);
                    if (e.getState() == KeeperState.Disconnected) disconnects.incrementAndGet();
                    states.add(e.getState());
                }
            }, false, new Ordered(hosts));
            this.states = states;
            this.expired = expired;
            this.disconnects = disconnects;
        }
        int remotePort() {
            SocketAddress a = testableRemoteSocketAddress();
            return a instanceof InetSocketAddress ? ((InetSocketAddress) a).getPort() : -1;
        }
        static Client open(String hosts) throws Exception {
            Client c = new Client(hosts, new LinkedBlockingQueue<>(), new AtomicBoolean(), new AtomicInteger());
            KeeperState s = c.states.poll(15, TimeUnit.SECONDS);
            if (s != KeeperState.SyncConnected) throw new RuntimeException("not connected to " + hosts + ": " + s);
            return c;
        }
    }

    static ZooKeeper connect(String host) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(host, 4000, e -> {
            if (e.getState() == KeeperState.SyncConnected) connected.countDown();
        });
        if (!connected.await(15, TimeUnit.SECONDS)) throw new RuntimeException("not connected to " + host);
        return zk;
    }

    static int sync(ZooKeeper zk, String path) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        AtomicInteger rc = new AtomicInteger(-999);
        zk.sync(path, (r, p, ctx) -> { if (path.equals(p) && "ctx".equals(ctx)) rc.set(r); done.countDown(); }, "ctx");
        done.await(10, TimeUnit.SECONDS);
        return rc.get();
    }

    static WatchedEvent poll(LinkedBlockingQueue<WatchedEvent> q) throws InterruptedException {
        return q.poll(10, TimeUnit.SECONDS);
    }

    static boolean is(WatchedEvent ev, EventType type, String path) {
        return ev != null && ev.getType() == type && path.equals(ev.getPath());
    }

    public static void main(String[] args) throws Exception {
        if (args[0].equals("member")) member(args[1], args[2], new String[] {args[3], args[4]});
        else failover(args[1], args[2], args[3]);
        System.out.println(failures == 0 ? "ALL OK" : "FAILURES " + failures);
        System.exit(failures == 0 ? 0 : 1);
    }

    // ------------------------------------------------------------------ one member

    static void member(String tag, String mine, String[] otherHosts) throws Exception {
        ZooKeeper zk = connect(mine);
        ZooKeeper[] others = {connect(otherHosts[0]), connect(otherHosts[1])};
        String base = "/m" + tag;

        Stat created = new Stat();
        String made = zk.create(base, "v0".getBytes(), OPEN, CreateMode.PERSISTENT, created);
        check(made.equals(base) && created.getVersion() == 0 && created.getCzxid() == created.getMzxid(), "create persistent", made);
        made = zk.create(base + "/eph", "e".getBytes(), OPEN, CreateMode.EPHEMERAL);
        check(made.equals(base + "/eph"), "create ephemeral", made);
        made = zk.create(base + "/seq-", new byte[0], OPEN, CreateMode.PERSISTENT_SEQUENTIAL);
        check(made.equals(base + "/seq-0000000001"), "create sequential", made);
        made = zk.create(base + "/eseq-", new byte[0], OPEN, CreateMode.EPHEMERAL_SEQUENTIAL);
        check(made.equals(base + "/eseq-0000000002"), "create ephemeral sequential", made);

        Stat set = zk.setData(base, "v1".getBytes(), 0);
        Stat got = new Stat();
        byte[] data = zk.getData(base, false, got);
        check(set.getVersion() == 1 && "v1".equals(new String(data)) && got.equals(set) && got.getNumChildren() == 3
              && got.getCversion() == 3, "setData then getData through this member", got);
        try { zk.setData(base, "x".getBytes(), 0); check(false, "stale setData is BadVersion", "no exception"); }
        catch (KeeperException.BadVersionException e) { check(true, "stale setData is BadVersion", null); }

        // this member's writes through the other members, after a sync
        List<String> expect = Arrays.asList("eph", "eseq-0000000002", "seq-0000000001");
        for (int i = 0; i < 2; i++) {
            String who = "via other " + i;
            check(sync(others[i], base) == 0, "sync " + who, null);
            Stat s = new Stat();
            byte[] d = others[i].getData(base, false, s);
            check("v1".equals(new String(d)) && s.equals(got), "data and Stat " + who, s);
            List<String> kids = others[i].getChildren(base, false);
            Collections.sort(kids);
            check(kids.equals(expect), "children " + who, kids);
            Stat e = others[i].exists(base + "/eph", false);
            check(e != null && e.getEphemeralOwner() == zk.getSessionId(), "ephemeralOwner " + who, e);
        }

        // a data watch on this member, fired by a write through another member
        LinkedBlockingQueue<WatchedEvent> dataEvents = new LinkedBlockingQueue<>();
        zk.getData(base, dataEvents::add, null);
        Stat s2 = others[0].setData(base, "v2".getBytes(), 1);
        WatchedEvent ev = poll(dataEvents);
        check(is(ev, EventType.NodeDataChanged, base), "data watch fired by a write through another member", ev);
        Stat s = new Stat();
        data = zk.getData(base, false, s);
        check("v2".equals(new String(data)) && s.equals(s2), "the other member's write read here after the event", s);

        // a child watch on this member, fired by a create through another member
        LinkedBlockingQueue<WatchedEvent> childEvents = new LinkedBlockingQueue<>();
        zk.getChildren(base, childEvents::add);
        others[1].create(base + "/from-other", "o".getBytes(), OPEN, CreateMode.PERSISTENT);
        ev = poll(childEvents);
        check(is(ev, EventType.NodeChildrenChanged, base), "child watch fired by a create through another member", ev);
        check(zk.getChildren(base, false).contains("from-other"), "the other member's child read here", null);

        // an exists watch on this member, fired by a delete through another member
        LinkedBlockingQueue<WatchedEvent> existsEvents = new LinkedBlockingQueue<>();
        check(zk.exists(base + "/from-other", existsEvents::add) != null, "exists with watcher", null);
        others[0].delete(base + "/from-other", 0);
        ev = poll(existsEvents);
        check(is(ev, EventType.NodeDeleted, base + "/from-other"), "exists watch fired by a delete through another member", ev);

        // watches on the other members, fired by a write through this one
        LinkedBlockingQueue<WatchedEvent> remoteData = new LinkedBlockingQueue<>();
        LinkedBlockingQueue<WatchedEvent> remoteChild = new LinkedBlockingQueue<>();
        others[0].getData(base, remoteData::add, null);
        others[1].getChildren(base, remoteChild::add);

        // multi through this member
        List<OpResult> results = zk.multi(Arrays.asList(
            Op.create(base + "/multi", "m".getBytes(), OPEN, CreateMode.PERSISTENT),
            Op.create(base + "/multi/e", new byte[0], OPEN, CreateMode.EPHEMERAL),
            Op.setData(base, "v3".getBytes(), 2),
            Op.check(base, 3)));
        check(results.size() == 4 && ((OpResult.CreateResult) results.get(1)).getPath().equals(base + "/multi/e")
              && ((OpResult.SetDataResult) results.get(2)).getStat().getVersion() == 3
              && results.get(3) instanceof OpResult.CheckResult, "multi committed", results);
        ev = poll(remoteData);
        check(is(ev, EventType.NodeDataChanged, base), "data watch on another member fired by multi through this one", ev);
        ev = poll(remoteChild);
        check(is(ev, EventType.NodeChildrenChanged, base), "child watch on another member fired by multi through this one", ev);

        try {
            zk.multi(Arrays.asList(Op.delete(base + "/multi/e", -1), Op.setData(base, "no".getBytes(), 99)));
            check(false, "failing multi is BadVersion", "no exception");
        } catch (KeeperException.BadVersionException e) {
            List<OpResult> rs = e.getResults();
            check(rs.size() == 2 && ((OpResult.ErrorResult) rs.get(0)).getErr() == 0
                  && ((OpResult.ErrorResult) rs.get(1)).getErr() == KeeperException.Code.BADVERSION.intValue(),
                  "failing multi is BadVersion with per-op results", rs);
        }

        // sync through this member, then everything is the same through every member
        check(sync(zk, base) == 0, "sync through this member", null);
        Stat here = zk.exists(base, false);
        Stat ephHere = zk.exists(base + "/multi/e", false);
        check(here.getVersion() == 3 && ephHere != null && ephHere.getEphemeralOwner() == zk.getSessionId(),
              "multi's writes read through this member; rolled-back delete left the node", ephHere);
        for (int i = 0; i < 2; i++) {
            String who = "via other " + i;
            check(sync(others[i], base) == 0, "sync again " + who, null);
            Stat there = new Stat();
            byte[] d = others[i].getData(base, false, there);
            check("v3".equals(new String(d)) && there.equals(here), "multi's data and Stat " + who, there);
            check(ephHere.equals(others[i].exists(base + "/multi/e", false)), "multi's ephemeral " + who, null);
            check(others[i].getAllChildrenNumber(base) == 5, "getAllChildrenNumber " + who, others[i].getAllChildrenNumber(base));
        }
        List<String> ephemerals = zk.getEphemerals(base);
        Collections.sort(ephemerals);
        check(ephemerals.equals(Arrays.asList(base + "/eph", base + "/eseq-0000000002", base + "/multi/e")),
              "getEphemerals", ephemerals);

        // closing the session removes its ephemerals everywhere; another member's watch sees it
        LinkedBlockingQueue<WatchedEvent> gone = new LinkedBlockingQueue<>();
        check(others[0].exists(base + "/eph", gone::add) != null, "ephemeral seen through another member", null);
        zk.close();
        ev = poll(gone);
        check(is(ev, EventType.NodeDeleted, base + "/eph"), "ephemeral deleted on close, watch on another member fired", ev);
        for (int i = 0; i < 2; i++) {
            sync(others[i], base);
            List<String> kids = others[i].getChildren(base, false);
            Collections.sort(kids);
            check(kids.equals(Arrays.asList("multi", "seq-0000000001")) && others[i].getChildren(base + "/multi", false).isEmpty(),
                  "no ephemerals left via other " + i, kids);
        }
        others[0].close();
        others[1].close();
    }

    // ------------------------------------------------------------------ failover

    /** Waits for Disconnected, then SyncConnected; returns ms to reconnect, or -1. */
    static long reconnect(Client c, String name) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 30000;
        long disconnectedAt = -1;
        while (System.currentTimeMillis() < deadline) {
            KeeperState s = c.states.poll(deadline - System.currentTimeMillis(), TimeUnit.MILLISECONDS);
            if (s == null) break;
            if (s == KeeperState.Disconnected && disconnectedAt < 0) disconnectedAt = System.currentTimeMillis();
            else if (s == KeeperState.SyncConnected && disconnectedAt >= 0) return System.currentTimeMillis() - disconnectedAt;
            else if (s == KeeperState.Expired || s == KeeperState.Closed || s == KeeperState.AuthFailed) {
                check(false, name + " reconnects", "got " + s);
                return -1;
            }
        }
        check(false, name + " reconnects", "no Disconnected/SyncConnected within 30 s");
        return -1;
    }

    static void failover(String f1, String f2, String leader) throws Exception {
        String port1 = f1.split(":")[1], portL = leader.split(":")[1];
        System.out.println("T0 epoch ms " + T0);
        Client a = Client.open(f1 + "," + f2 + "," + leader);
        Client b = Client.open(leader + "," + f1 + "," + f2);
        long sa = a.getSessionId(), sb = b.getSessionId();
        check(String.valueOf(a.remotePort()).equals(port1) && String.valueOf(b.remotePort()).equals(portL),
              "A on the follower, B on the leader", a.remotePort() + " " + b.remotePort());
        System.out.println("timeouts " + a.getSessionTimeout() + " " + b.getSessionTimeout());
        a.create("/fo", new byte[0], OPEN, CreateMode.PERSISTENT);
        a.create("/fo/a", "a".getBytes(), OPEN, CreateMode.EPHEMERAL);
        b.create("/fo/b", "b".getBytes(), OPEN, CreateMode.EPHEMERAL);
        System.out.println("phase1 at ms " + (System.currentTimeMillis() - T0));
        System.out.println("phase1 ready");  // the test kills f1 now
        System.out.flush();

        long ms = reconnect(a, "A after its follower died");
        System.out.println("A reconnected in ms " + ms + " to " + a.remotePort());
        check(ms >= 0 && a.getSessionId() == sa && !a.expired.get(), "A kept its session", Long.toHexString(a.getSessionId()));
        check(a.remotePort() > 0 && !String.valueOf(a.remotePort()).equals(port1), "A on another member", a.remotePort());
        Stat e = a.exists("/fo/a", false);
        check(e != null && e.getEphemeralOwner() == sa, "A's ephemeral survived", e);
        check(a.create("/fo/a-after-1", new byte[0], OPEN, CreateMode.PERSISTENT).equals("/fo/a-after-1"), "A writes after reconnecting", null);
        check(b.states.isEmpty() && b.getState() == ZooKeeper.States.CONNECTED, "B, on the leader, was not disturbed", b.states);
        check(sync(b, "/fo") == 0 && b.exists("/fo/a-after-1", false) != null && b.exists("/fo/a", false).getEphemeralOwner() == sa,
              "B sees A's writes", null);
        System.out.println("phase2 at ms " + (System.currentTimeMillis() - T0));
        int disconnectsA = a.disconnects.get(), disconnectsB = b.disconnects.get();
        System.out.println("phase2 ready");  // the test restarts f1, then kills the leader
        System.out.flush();

        ms = reconnect(b, "B after the leader died");
        System.out.println("B reconnected in ms " + ms + " to " + b.remotePort());
        check(ms >= 0 && b.getSessionId() == sb && !b.expired.get(), "B kept its session across the election", Long.toHexString(b.getSessionId()));
        check(b.remotePort() > 0 && !String.valueOf(b.remotePort()).equals(portL), "B on another member", b.remotePort());
        // A's follower lost its leader too: A reconnects as well (it may have done so already)
        ms = reconnect(a, "A after the leader died");
        System.out.println("A reconnected in ms " + ms + " to " + a.remotePort());
        check(ms >= 0 && a.getSessionId() == sa && !a.expired.get(), "A kept its session across the election", Long.toHexString(a.getSessionId()));

        // The test says when the ensemble has a new leader; both clients must then be connected,
        // each having been disconnected once only: no member may reattach a session and drop it
        // again (as a zkpy follower did that had not yet noticed that its leader was gone).
        String said = new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
        check("serving".equals(said), "the test reports a new leader", said);
        for (Client c : new Client[] {a, b}) {
            String n = c == a ? "A" : "B";
            long deadline = System.currentTimeMillis() + 20000;
            while (c.getState() != ZooKeeper.States.CONNECTED && !c.expired.get() && System.currentTimeMillis() < deadline) {
                Thread.sleep(20);
            }
            check(c.getState() == ZooKeeper.States.CONNECTED && !c.expired.get(), n + " connected after the election", c.getState());
        }
        int lostA = a.disconnects.get() - disconnectsA, lostB = b.disconnects.get() - disconnectsB;
        check(lostA == 1 && lostB == 1, "one disconnect each through the election", "A " + lostA + " B " + lostB);
        System.out.println("sessions after the election: A " + Long.toHexString(a.getSessionId()) + " on " + a.remotePort()
                           + ", B " + Long.toHexString(b.getSessionId()) + " on " + b.remotePort());
        for (Client c : new Client[] {a, b}) {
            String n = c == a ? "A" : "B";
            String p = c.create("/fo/" + n + "-after-2", new byte[0], OPEN, CreateMode.PERSISTENT);
            check(p.equals("/fo/" + n + "-after-2"), n + " writes after the election", p);
        }
        for (Client c : new Client[] {a, b}) {
            String n = c == a ? "A" : "B";
            sync(c, "/fo");
            Stat ea = c.exists("/fo/a", false), eb = c.exists("/fo/b", false);
            check(ea != null && ea.getEphemeralOwner() == sa && eb != null && eb.getEphemeralOwner() == sb,
                  n + " sees both ephemerals after the election", ea + " " + eb);
            List<String> kids = c.getChildren("/fo", false);
            Collections.sort(kids);
            check(kids.equals(Arrays.asList("A-after-2", "B-after-2", "a", "a-after-1", "b")), n + " sees every write", kids);
        }
        check(!a.expired.get() && !b.expired.get(), "no Expired event", null);
        a.close();
        b.close();
    }
}
"""








# ---------------------------------------------------------------------------- zkCli

CLI_COMMANDS = [
    "create /cli hello",
    "get -s /cli",
    "set /cli world",
    "get /cli",
    "create -e /cli/eph x",
    "create -s /cli/seq- y",
    "ls /cli",
    "ls -s /cli",
    "delete /cli",
    "delete /cli/seq-0000000001",
    "sync /cli",
    "create /cli-kept via-follower",
    "delete /cli/eph",
    "delete /cli",
    "get /cli",
]




def _cli_pieces(output: str) -> dict:
    """What zkCli printed for each command: `out["cmd"]`, or `out["cmd", 1]` for its second run."""
    kept = [line for line in output.splitlines()
            if not line.startswith(("log4j:", "SLF4J", "Connecting to ", "Welcome to ZooKeeper", "JLine support",
                                    "WATCHER::"))
            and not re.match(r"WatchedEvent state:\w+ type:None path:null", line)]
    rest = "\n".join(kept)
    pieces = {}
    for i, cmd in enumerate(CLI_COMMANDS):
        key = cmd if cmd not in pieces else (cmd, 1)
        marker = f"Node does not exist: {MARK.format(i)}"
        if marker not in rest:
            raise AssertionError(f"no output boundary after {cmd!r} (zkCli died?):\n{output[-3000:]}")
        piece, rest = rest.split(marker, 1)
        pieces[key] = piece.strip("\n")
    return pieces


# ---------------------------------------------------------------------------- running it all


def _kazoo_view(ens: Ensemble) -> dict[int, dict]:
    """Through each member alone, after a sync: the root's children and the Stats of the nodes left behind."""
    view = {}
    for sid in ens.ids:
        c = KazooClient(hosts=ens.address(sid), timeout=4)
        c.start(15)
        try:
            c.sync("/")
            kids = sorted(c.get_children("/"))
            nodes = {}
            for path in ["/m1", "/m2", "/m3", "/m1/multi", "/m2/seq-0000000001", "/cli-kept"]:
                got = c.exists(path)
                nodes[path] = None if got is None else (c.get(path)[0], tuple(got))
            view[sid] = {"children": kids, "nodes": nodes}
        finally:
            c.stop()
            c.close()
    return view


def _failover(ens: Ensemble, cp: str) -> dict:
    leader = ens.leader()
    f1, f2 = [s for s in ens.ids if s != leader]
    proc = subprocess.Popen(JVM + ["-cp", cp, "EnsembleCheck", "failover", ens.address(f1), ens.address(f2),
                                   ens.address(leader)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    out: list[str] = []

    def reader():
        for line in proc.stdout:
            out.append(line)
            lines.put(line.rstrip("\n"))
        lines.put(None)

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    def wait_for(text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"the failover program did not print {text!r}:\n{''.join(out)}")
            if line == text:
                return

    timings = {}
    try:
        wait_for("phase1 ready", 30)
        t0 = time.monotonic()
        ens.kill(f1)
        wait_for("phase2 ready", 40)
        timings["follower_kill_to_phase2"] = time.monotonic() - t0
        ens.start_server(f1)
        ens.wait_serving(timeout=30)
        t0 = time.monotonic()
        ens.kill(leader)
        ens.wait_serving(timeout=30)
        timings["leader_kill_to_new_leader"] = time.monotonic() - t0
        try:
            proc.stdin.write("serving\n")
            proc.stdin.close()
        except OSError:
            pass  # the program died; its output says why
        proc.wait(60)
        timings["leader_kill_to_exit"] = time.monotonic() - t0
        t.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"output": "".join(out), "rc": proc.returncode, "timings": timings}


def _reattach_probe(ens: Ensemble) -> dict:
    """Kill the leader, and at once reattach a session it held through a follower (kazoo, no
    random back-off, unlike the Java client).

    ZooKeeper's follower asks its leader to revalidate a reattaching session
    (LearnerZooKeeperServer.revalidateSession) and sees its leader's connection close at once,
    so the client gets connected only once a new leader leads, and then stays connected.

    The follower is the one with the lower id: with equal last zxids, the election picks the
    higher id, so it stays a follower.  Before any txn of the new epoch (a reattached session
    writes none), a sync through it must be answered.

    Returns the client's state changes (seconds after the kill) and the sync's outcome."""
    leader = ens.leader()
    follower = min(s for s in ens.ids if s != leader)
    owner = KazooClient(hosts=ens.address(leader), timeout=4)
    owner.start(15)
    owner.create("/probe", ephemeral=True)
    session = owner.client_id
    states: list[tuple[float, str]] = []
    ens.kill(leader)
    t0 = time.monotonic()
    probe = KazooClient(hosts=ens.address(follower), client_id=session, timeout=4,
                        connection_retry=KazooRetry(max_tries=-1, delay=0.02, max_delay=0.1))
    probe.add_listener(lambda state: states.append((round(time.monotonic() - t0, 3), str(state))))
    try:
        probe.start(15)
        connected = time.monotonic() - t0
        time.sleep(2.0)  # longer than zkpy's syncLimit (5 ticks of 200 ms)
        ens.wait_serving(timeout=20)
        deadline = time.monotonic() + 10
        while not probe.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        result = {"connected_after": round(connected, 3), "states": list(states),
                  "follower_mode": ens.mode(follower)}
        got = probe.exists_async("/probe").get(timeout=10)
        result["same_session"] = probe.client_id == session
        result["ephemeral_kept"] = got is not None and got.ephemeralOwner == session[0]
        try:  # last: a session's requests are answered in order, so a hung sync holds up the rest
            result["sync"] = probe.sync_async("/").get(timeout=3)
        except Exception as e:  # noqa: BLE001 - the outcome is the result
            result["sync"] = f"{type(e).__name__}: {e}"
    finally:
        probe.stop()
        probe.close()
        owner.stop()  # it only knows the dead leader: nothing to close
        owner.close()
    return result


def _run(flavour: str, build: str, cp_build: str) -> dict:
    apache = flavour == "zookeeper"
    res: dict = {"timings": {}}
    t0 = time.monotonic()
    with Ensemble(3, apache=apache) as ens:
        res["timings"]["start"] = time.monotonic() - t0
        leader = ens.leader()
        follower = next(s for s in ens.ids if s != leader)
        res["modes"] = {sid: ens.mode(sid) for sid in ens.ids}

        def member(sid):
            others = [ens.address(s) for s in ens.ids if s != sid]
            r = subprocess.run(JVM + ["-cp", cp_build, "EnsembleCheck", "member", str(sid), ens.address(sid)] + others,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
            return r.stdout

        def cli():
            r = subprocess.run(JVM + ["-cp", cp_build, "org.apache.zookeeper.ZooKeeperMain", "-server",
                                      ens.address(follower)], input=zkcli_script(CLI_COMMANDS), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
            return r.stdout

        t1 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            futures = {sid: pool.submit(member, sid) for sid in ens.ids}
            cli_future = pool.submit(cli)
            res["member"] = {sid: f.result() for sid, f in futures.items()}
            res["cli"] = cli_future.result()
        res["timings"]["clients"] = time.monotonic() - t1
        res["cli_server"] = (follower, res["modes"][follower])
        res["kazoo"] = _kazoo_view(ens)
        t1 = time.monotonic()
        try:
            res["failover"] = _failover(ens, cp_build)
        except Exception as e:  # noqa: BLE001 - only the failover test fails
            res["failover"] = {"output": f"{type(e).__name__}: {e}", "rc": None, "timings": {}}
        res["timings"]["failover"] = time.monotonic() - t1
        t1 = time.monotonic()
        for sid in ens.ids:
            if ens.procs[sid].poll() is not None:
                ens.start_server(sid)
        ens.wait_serving(timeout=30)
        try:
            res["probe"] = _reattach_probe(ens)
        except Exception as e:  # noqa: BLE001 - only the probe's tests fail
            res["probe"] = {"error": f"{type(e).__name__}: {e}"}
        res["timings"]["probe"] = time.monotonic() - t1
    res["timings"]["total"] = time.monotonic() - t0
    # seen with `pytest -s`
    print(f"\n{flavour}: seconds {({k: round(v, 2) for k, v in res['timings'].items()})}, failover "
          f"{({k: round(v, 2) for k, v in res['failover']['timings'].items()})}, "
          f"{[line for line in res['failover']['output'].splitlines() if 'reconnected' in line]}")
    return res


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    missing = java_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI: the Java ensemble tests need {missing} (Debian's zookeeper package)")
        pytest.skip(f"needs {missing} (Debian's zookeeper package, which brings a Java runtime)")
    build = tmp_path_factory.mktemp("javaensemble")
    src = build / "EnsembleCheck.java"
    src.write_text(PROGRAM)
    cp = classpath()
    r = subprocess.run(javac() + ["-cp", cp, "-d", str(build), str(src)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout
    return str(build), cp + ":" + str(build)


@pytest.fixture(scope="module", params=["zkpy", "zookeeper"])
def runs(request, compiled):
    return request.param, _run(request.param, *compiled)


# ---------------------------------------------------------------------------- the checks


def test_java_client_against_each_member(runs):
    flavour, res = runs
    outputs = res["member"]
    all_checks = {sid: program_checks(out) for sid, out in outputs.items()}
    for sid, checks in all_checks.items():
        role = res["modes"][sid]
        failed = {k: v for k, v in checks.items() if v != "ok"}
        assert not failed and "ALL OK" in outputs[sid], f"{flavour} member {sid} ({role}):\n{outputs[sid]}"
        assert len(checks) >= 39, f"{flavour} member {sid} ({role}) ran too few checks:\n{outputs[sid]}"
    assert all_checks[1].keys() == all_checks[2].keys() == all_checks[3].keys()
    assert sorted(res["modes"].values()) == ["follower", "follower", "leader"]


def test_every_member_has_the_same_tree(runs):
    flavour, res = runs
    view = res["kazoo"]
    first = view[1]
    assert first["children"] == ["cli-kept", "m1", "m2", "m3", "zookeeper"], first
    assert all(v is not None for v in first["nodes"].values()), first
    assert first["nodes"]["/cli-kept"][0] == b"via-follower"
    for sid in (2, 3):
        assert view[sid] == first, f"{flavour}: member {sid} differs from member 1:\n{view[sid]}\n{first}"


def test_zkcli_through_a_follower(runs):
    flavour, res = runs
    assert res["cli_server"][1] == "follower", (flavour, res["cli_server"])
    out = _cli_pieces(res["cli"])
    assert out["create /cli hello"] == "Created /cli"
    get_s = out["get -s /cli"].splitlines()
    assert get_s[0] == "hello", get_s
    for line in ("dataVersion = 0", "dataLength = 5", "numChildren = 0", "ephemeralOwner = 0x0", "cversion = 0"):
        assert line in get_s, (line, get_s)
    assert re.match(r"cZxid = 0x[0-9a-f]+$", get_s[1]) and get_s[1].replace("cZxid", "mZxid") in get_s
    assert out["set /cli world"] == ""
    assert out["get /cli"] == "world"
    assert out["create -e /cli/eph x"] == "Created /cli/eph"
    assert out["create -s /cli/seq- y"] == "Created /cli/seq-0000000001"
    assert out["ls /cli"] == "[eph, seq-0000000001]"
    ls_s = out["ls -s /cli"].splitlines()
    assert ls_s[0] == "[eph, seq-0000000001]" and "numChildren = 2" in ls_s and "dataVersion = 1" in ls_s
    assert "cversion = 2" in ls_s
    assert out["delete /cli"] == "Node not empty: /cli"
    assert out["delete /cli/seq-0000000001"] == ""
    assert out["sync /cli"] == "Sync is OK"
    assert out["create /cli-kept via-follower"] == "Created /cli-kept"
    assert out["delete /cli/eph"] == "" and out["delete /cli", 1] == ""
    assert out["get /cli", 1] == "Node does not exist: /cli"


def test_java_client_failover_keeps_the_session(runs):
    flavour, res = runs
    fo = res["failover"]
    checks = program_checks(fo["output"])
    failed = {k: v for k, v in checks.items() if v != "ok"}
    assert not failed and fo["rc"] == 0 and "ALL OK" in fo["output"], f"{flavour}:\n{fo['output']}"
    assert len(checks) >= 21, fo["output"]


def test_no_member_reattaches_a_session_while_its_leader_is_gone(runs):
    flavour, res = runs
    probe = res["probe"]
    assert "error" not in probe, probe
    assert probe["same_session"] and probe["ephemeral_kept"], probe
    assert probe["states"] and probe["states"][0][1] == "CONNECTED", probe
    # zkpy once reattached the session at a follower on its own (no revalidation by the leader)
    # and noticed the dead leader only syncLimit ticks later: connected, then dropped.
    dropped = [s for s in probe["states"][1:] if s[1] != "CONNECTED"]
    assert not dropped, f"{flavour}: the reattached connection was lost again: {probe}"


def test_sync_through_a_follower_right_after_an_election(runs):
    flavour, res = runs
    probe = res["probe"]
    assert "error" not in probe, probe
    assert probe["follower_mode"] == "follower", probe
    # zkpy's new leader once answered a follower's sync with (epoch, 0), a zxid no txn has, so
    # the sync waited for the first write of the new epoch.
    assert probe["sync"] == "/", f"{flavour}: {probe}"
