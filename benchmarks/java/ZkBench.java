import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

/**
 * Load generator for benchmarks/run.py, built on the official ZooKeeper Java client's async API.
 *
 *   java ZkBench CONNECT OPS CLIENTS WINDOW WARMUP_S MEASURE_S NODES DATA_SIZE [PREWARM_S]
 *
 * CONNECT may be several connect strings separated by ';' (an ensemble's members): connection i
 * then uses the (i mod their number)-th, and after the set-up each connection syncs /bench, so that
 * its server has the znodes before the load starts.
 *
 * OPS is a comma-separated list run one after the other on the same connections:
 *   get    - getData on /bench/n{k % NODES}
 *   set    - setData (version -1) on /bench/n{k % NODES}
 *   create - create persistent /bench/c{client}-{k} with DATA_SIZE bytes
 *   mixed  - 90% get, 10% set
 *
 * First /bench and /bench/n0 .. /bench/n{NODES-1} (DATA_SIZE bytes each) are created if missing,
 * then PREWARM_S seconds (default 0) of mixed load let both JITs (server's and client's) compile
 * the hot paths.  Each op then runs WARMUP_S seconds unmeasured and MEASURE_S seconds measured.
 *
 * Each of the CLIENTS connections (one ZooKeeper handle each) keeps WINDOW requests outstanding:
 * WINDOW are issued at the start of a phase and each completion callback issues the next one,
 * until the phase ends.  Requests completing inside the measurement interval are counted and their
 * latency (issue to callback) recorded.  Between phases the window drains completely.
 *
 * Output lines: "#start OP" and "#end OP" around each measurement interval (so the caller can
 * sample the server's CPU time), then one JSON line per op:
 *   {op, clients, window, ops, seconds, ops_per_sec, p50_ms, p99_ms, p999_ms, errors}
 * Exit code 2 when it cannot connect, 3 when requests stay unanswered 15 s after a phase.
 */
public class ZkBench {
    static byte[] data;
    static int nodes;

    /** One connection and its state; its callbacks all run on its client's event thread. */
    static final class Conn {
        final ZooKeeper zk;
        final int id;
        final AtomicLong seq = new AtomicLong();
        final AtomicInteger outstanding = new AtomicInteger();
        long[] lat = new long[1 << 16];
        int n;
        long errors;
        // current phase (published to the event thread by the volatile write of `end`)
        String op;
        long warmEnd;
        volatile long end;
        CountDownLatch drained;

        Conn(ZooKeeper zk, int id) {
            this.zk = zk;
            this.id = id;
        }

        void record(long v) {
            if (n == lat.length) lat = Arrays.copyOf(lat, lat.length * 2);
            lat[n++] = v;
        }

        void issue() {
            final long k = seq.incrementAndGet() + id * 7919L;  // spread the connections over the nodes
            final long start = System.nanoTime();
            String o = op;
            if (o.equals("mixed")) o = k % 10 == 0 ? "set" : "get";
            switch (o) {
                case "get":
                    zk.getData("/bench/n" + (k % nodes), false,
                               (AsyncCallback.DataCallback) (rc, p, x, d, s) -> done(rc, start), null);
                    break;
                case "set":
                    zk.setData("/bench/n" + (k % nodes), data, -1,
                               (AsyncCallback.StatCallback) (rc, p, x, s) -> done(rc, start), null);
                    break;
                default:
                    zk.create("/bench/c" + id + "-" + k, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
                              (AsyncCallback.StringCallback) (rc, p, x, name) -> done(rc, start), null);
            }
        }

        void done(int rc, long start) {
            long now = System.nanoTime();
            long e = end;
            if (now >= warmEnd && now <= e) {
                if (rc != 0) errors++;
                else record(now - start);
            }
            if (now < e) {
                issue();
            } else if (outstanding.decrementAndGet() == 0) {
                drained.countDown();
            }
        }
    }

    public static void main(String[] a) throws Exception {
        if (a.length != 8 && a.length != 9) {
            System.err.println("usage: ZkBench CONNECT OPS CLIENTS WINDOW WARMUP_S MEASURE_S NODES DATA_SIZE [PREWARM_S]");
            System.exit(64);
        }
        final String connect = a[0];
        final String[] ops = a[1].split(",");
        final int clients = Integer.parseInt(a[2]);
        final int window = Integer.parseInt(a[3]);
        final double warmup = Double.parseDouble(a[4]);
        final double measure = Double.parseDouble(a[5]);
        nodes = Integer.parseInt(a[6]);
        data = new byte[Integer.parseInt(a[7])];
        final double prewarm = a.length > 8 ? Double.parseDouble(a[8]) : 0;
        Arrays.fill(data, (byte) 'x');
        for (String op : ops) {
            if (!Arrays.asList("get", "set", "create", "mixed").contains(op)) {
                System.err.println("unknown op " + op);
                System.exit(64);
            }
        }

        final String[] targets = connect.split(";");
        List<Conn> conns = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            CountDownLatch up = new CountDownLatch(1);
            ZooKeeper zk = new ZooKeeper(targets[i % targets.length], 30000, e -> {
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) up.countDown();
            });
            if (!up.await(20, TimeUnit.SECONDS)) {
                System.err.println("could not connect to " + connect);
                System.exit(2);
            }
            conns.add(new Conn(zk, i));
        }
        if (!setup(conns.get(0).zk)) System.exit(1);
        if (targets.length > 1) {
            CountDownLatch synced = new CountDownLatch(conns.size());
            for (Conn c : conns) c.zk.sync("/bench", (rc, p, x) -> synced.countDown(), null);
            if (!synced.await(60, TimeUnit.SECONDS)) {
                System.err.println("sync after set-up timed out");
                System.exit(1);
            }
        }

        if (prewarm > 0 && !phase(conns, "mixed", window, prewarm, 0, false)) System.exit(3);
        for (String op : ops) {
            if (!phase(conns, op, window, warmup, measure, true)) System.exit(3);
        }
        for (Conn c : conns) c.zk.close(2000);
        System.exit(0);
    }

    /** Run one op for warmup + measure seconds on all connections; print its result when `report`. */
    static boolean phase(List<Conn> conns, String op, int window, double warmup, double measure, boolean report)
            throws InterruptedException {
        final long t0 = System.nanoTime();
        final long warmEnd = t0 + (long) (warmup * 1e9);
        final long end = warmEnd + (long) (measure * 1e9);
        CountDownLatch drained = new CountDownLatch(conns.size());
        for (Conn c : conns) {
            c.op = op;
            c.n = 0;
            c.errors = 0;
            c.warmEnd = warmEnd;
            c.drained = drained;
            c.outstanding.set(window);
            c.end = end;  // volatile write: publishes the fields above
        }
        for (Conn c : conns) {
            for (int i = 0; i < window; i++) c.issue();
        }
        if (report) {
            sleepUntil(warmEnd);
            System.out.println("#start " + op);
            System.out.flush();
            sleepUntil(end);
            System.out.println("#end " + op);
            System.out.flush();
        }
        long wait = Math.max(0, end - System.nanoTime()) + 15_000_000_000L;
        if (!drained.await(wait, TimeUnit.NANOSECONDS)) {
            System.err.println("requests still outstanding 15 s after the end of " + op);
            return false;
        }
        if (!report) return true;
        int total = 0;
        long errors = 0;
        for (Conn c : conns) {
            total += c.n;
            errors += c.errors;
        }
        long[] all = new long[total];
        int pos = 0;
        for (Conn c : conns) {
            System.arraycopy(c.lat, 0, all, pos, c.n);
            pos += c.n;
        }
        Arrays.sort(all);
        System.out.printf(Locale.ROOT,
                "{\"op\": \"%s\", \"clients\": %d, \"window\": %d, \"ops\": %d, \"seconds\": %.3f, "
                + "\"ops_per_sec\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"errors\": %d}%n",
                op, conns.size(), window, total, measure, total / measure,
                pct(all, 0.50), pct(all, 0.99), pct(all, 0.999), errors);
        System.out.flush();
        return true;
    }

    static void sleepUntil(long deadline) throws InterruptedException {
        long left;
        while ((left = deadline - System.nanoTime()) > 0) {
            TimeUnit.NANOSECONDS.sleep(left);
        }
    }

    static double pct(long[] sorted, double q) {
        if (sorted.length == 0) return 0;
        int i = (int) Math.ceil(q * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, i))] / 1e6;
    }

    /** Create /bench and the data nodes if missing, pipelined. */
    static boolean setup(ZooKeeper zk) throws Exception {
        try {
            zk.create("/bench", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        } catch (KeeperException.NodeExistsException e) {
            // fine
        }
        final CountDownLatch made = new CountDownLatch(nodes);
        final AtomicLong bad = new AtomicLong();
        final Semaphore sem = new Semaphore(500);
        for (int i = 0; i < nodes; i++) {
            sem.acquire();
            zk.create("/bench/n" + i, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
                      (AsyncCallback.StringCallback) (rc, p, x, name) -> {
                          if (rc != 0 && rc != KeeperException.Code.NODEEXISTS.intValue()) bad.incrementAndGet();
                          sem.release();
                          made.countDown();
                      }, null);
        }
        boolean ok = made.await(60, TimeUnit.SECONDS);
        int children = ok ? zk.getChildren("/bench", false).size() : -1;
        if (!ok || bad.get() != 0 || children < nodes) {
            System.err.printf("setup failed: %d errors, /bench has %d children%n", bad.get(), children);
            return false;
        }
        return true;
    }
}
