import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

/** The official Java client against a server: sync and async API, watches, multi. Exit 0 = all good. */
public class ClientCheck {
    static void check(boolean ok, String what) {
        if (!ok) { System.out.println("FAIL " + what); System.exit(1); }
        System.out.println("ok " + what);
    }

    public static void main(String[] args) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(args[0], 10000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown();
        });
        check(connected.await(10, TimeUnit.SECONDS), "connected");
        zk.create("/jc", "v1".getBytes(), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);

        CountDownLatch changed = new CountDownLatch(1);
        Stat st = new Stat();
        byte[] data = zk.getData("/jc", e -> {
            if (e.getType() == Watcher.Event.EventType.NodeDataChanged) changed.countDown();
        }, st);
        check(new String(data).equals("v1") && st.getVersion() == 0, "getData with watcher");

        CountDownLatch setDone = new CountDownLatch(1);
        zk.setData("/jc", "v2".getBytes(), 0, (rc, path, ctx, stat) -> {
            if (rc == 0 && stat.getVersion() == 1) setDone.countDown();
        }, null);
        check(setDone.await(10, TimeUnit.SECONDS), "async setData");
        check(changed.await(10, TimeUnit.SECONDS), "data watch fired");

        CountDownLatch created = new CountDownLatch(2);
        zk.addWatch("/jc", e -> {
            if (e.getType() == Watcher.Event.EventType.NodeCreated) created.countDown();
        }, AddWatchMode.PERSISTENT_RECURSIVE);
        List<OpResult> results = zk.multi(Arrays.asList(
            Op.create("/jc/a", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
            Op.create("/jc/a/b", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL),
            Op.setData("/jc", "v3".getBytes(), 1),
            Op.check("/jc", 2)));
        check(results.size() == 4, "multi committed");
        check(created.await(10, TimeUnit.SECONDS), "persistent recursive watch fired twice");
        try {
            zk.multi(Arrays.asList(Op.delete("/jc/a/b", -1), Op.delete("/jc", 99)));
            check(false, "failing multi raised");
        } catch (KeeperException.BadVersionException e) {
            List<OpResult> rs = e.getResults();
            check(rs.get(0) instanceof OpResult.ErrorResult && rs.get(1) instanceof OpResult.ErrorResult,
                  "failing multi rolled back with per-op errors");
        }
        check(zk.exists("/jc/a/b", false) != null, "rolled-back delete left the node");
        check(zk.getChildren("/jc", false).equals(Arrays.asList("a")), "getChildren");
        check(zk.getAllChildrenNumber("/jc") == 2, "getAllChildrenNumber");
        check(zk.getEphemerals("/jc").equals(Arrays.asList("/jc/a/b")), "getEphemerals");
        zk.addAuthInfo("digest", "u:p".getBytes());
        check(zk.whoAmI().size() == 2, "whoAmI lists ip and digest");
        String seq = zk.create("/jc/s-", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL);
        check(seq.equals("/jc/s-0000000001"), "sequential name " + seq);
        try {
            zk.create("/jc", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            check(false, "NodeExists raised");
        } catch (KeeperException.NodeExistsException e) {
            check(true, "NodeExists raised");
        }
        zk.close();
        System.out.println("ALL OK");
    }
}
