"""Real three-process ensembles: writes through any server, and leader failover under load
without losing an acknowledged write.  ZKPY_FAILOVER_ROUNDS=20 for the long run."""

import os
import threading
import time
import pytest

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError
from kazoo.retry import KazooRetry

from zkpy.testing.ensemble import Ensemble

ROUNDS = int(os.environ.get("ZKPY_FAILOVER_ROUNDS", "2"))


def _client(hosts: str) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=4, connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5))
    c.start(20)
    return c


def test_writes_through_every_server_are_seen_everywhere():
    with Ensemble(3) as ens:
        clients = [_client(ens.address(sid)) for sid in ens.ids]
        try:
            for i, c in enumerate(clients):
                c.create(f"/via{i}", str(i).encode())
                c.create(f"/eph{i}", ephemeral=True)
            for c in clients:
                c.sync("/")
                assert sorted(c.get_children("/")) == sorted(
                    [f"via{i}" for i in range(3)] + [f"eph{i}" for i in range(3)] + ["zookeeper"])
                assert c.get("/via2")[0] == b"2"
            clients[1].stop()
            clients[0].sync("/")
            assert clients[0].exists("/eph1") is None  # the ephemeral went with its session
        finally:
            for c in clients:
                c.stop()
                c.close()


def test_leader_failover_keeps_acknowledged_writes():
    with Ensemble(3) as ens:
        acked: list[str] = []
        stop = threading.Event()
        client = _client(ens.connect_string)

        def writer():
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    client.create(f"/w{i:06d}", b"x")
                    acked.append(f"/w{i:06d}")
                except KazooException:
                    time.sleep(0.05)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        failovers = []
        try:
            for _ in range(ROUNDS):
                time.sleep(0.5)
                leader = ens.leader()
                assert leader is not None
                before = len(acked)
                ens.kill(leader)
                killed_at = time.time()
                ens.wait_serving(timeout=20)
                while len(acked) <= before and time.time() - killed_at < 20:
                    time.sleep(0.01)
                failovers.append(time.time() - killed_at)
                ens.start_server(leader)
                ens.wait_serving(timeout=30)
        finally:
            stop.set()
            t.join(10)
        assert len(acked) > 0
        client.stop()
        client.close()
        # every acknowledged write is on every server, and the replicas are identical
        tree = ens.assert_replicas_identical()
        missing = [p for p in acked if p not in tree]
        assert not missing, f"acknowledged writes lost: {missing[:5]}"
        print("failover seconds (kill to next acknowledged write):", [round(f, 2) for f in failovers])


def test_four_letter_words_show_roles():
    from zkpy.testing.external import four_letter_word

    with Ensemble(3) as ens:
        leader = ens.leader()
        mntr = dict(l.split("\t", 1) for l in four_letter_word("127.0.0.1", ens.client_ports[leader], "mntr").splitlines())
        assert mntr["zk_server_state"] == "leader" and mntr["zk_synced_followers"] == "2"
        assert mntr["zk_learners"] == "2" and mntr["zk_quorum_size"] == "3" and mntr["zk_synced_observers"] == "0"
        assert mntr["zk_peer_state"] == "leading - broadcast" and int(mntr["zk_leader_uptime"]) >= 0
        follower = next(s for s in ens.ids if s != leader)
        assert "Mode: follower" in four_letter_word("127.0.0.1", ens.client_ports[follower], "srvr")


def test_paused_leader_is_replaced_and_rejoins():
    with Ensemble(3) as ens:
        c = _client(ens.connect_string)
        c.create("/before", b"1")
        old = ens.leader()
        ens.pause(old)  # SIGSTOP: alive but silent
        try:
            ens.wait_serving(sids=[s for s in ens.ids if s != old], timeout=20)
            try:  # the client may have been on the paused server: it moves on (CONNECTIONLOSS, retry)
                c.retry(c.create, "/during", b"2")
            except NodeExistsError:
                pass  # the first attempt went through before the connection was lost
        finally:
            ens.resume(old)
        ens.wait_serving(timeout=20)
        assert ens.leader() != old or ens.mode(old) == "leader"
        back = _client(ens.address(old))
        back.sync("/")
        assert back.get("/during")[0] == b"2" and back.get("/before")[0] == b"1"
        back.stop()
        ens.assert_replicas_identical()
        c.stop()


def test_a_server_without_a_quorum_stops_serving():
    from zkpy.testing.external import four_letter_word

    with Ensemble(3) as ens:
        leader = ens.leader()
        others = [s for s in ens.ids if s != leader]
        ens.kill(others[0])
        ens.kill(others[1])
        deadline = time.time() + 15
        while time.time() < deadline and ens.mode(leader) == "leader":
            time.sleep(0.1)
        assert ens.mode(leader) is None
        assert four_letter_word("127.0.0.1", ens.client_ports[leader], "srvr") == \
            "This ZooKeeper instance is not currently serving requests\n"
        # and it does not take sessions
        from kazoo.client import KazooClient
        from kazoo.handlers.threading import KazooTimeoutError

        c = KazooClient(ens.address(leader), timeout=2)
        try:
            c.start(3)
            raise AssertionError("a server without a quorum accepted a session")
        except KazooTimeoutError:
            pass
        finally:
            c.stop()
            c.close()


def test_observer_learns_commits_without_voting():
    with Ensemble(3, observers=1) as ens:
        observer = max(ens.ids)
        assert ens.mode(observer) == "observer"
        c = _client(ens.address(observer))
        c.create("/via-observer", b"o")  # forwarded to the leader
        leader_client = _client(ens.address(ens.leader()))
        assert leader_client.get("/via-observer")[0] == b"o"
        leader_client.create("/via-leader", b"l")
        c.sync("/")
        assert c.get("/via-leader")[0] == b"l"
        c.stop()
        leader_client.stop()


def test_a_session_moves_between_servers_with_its_ephemerals():
    with Ensemble(3) as ens:
        a, b = ens.ids[0], ens.ids[1]
        first = _client(ens.address(a))
        first.create("/mine", b"e", ephemeral=True)
        session = first.client_id
        moved = KazooClient(hosts=ens.address(b), client_id=session, timeout=4)
        moved.start(20)
        assert moved.client_id[0] == session[0]
        moved.sync("/")
        assert moved.exists("/mine").ephemeralOwner == session[0]
        moved.set("/mine", b"still mine")
        moved.stop()  # closing the session from server b removes its ephemeral everywhere
        other = _client(ens.address(ens.ids[2]))
        other.sync("/")
        assert other.exists("/mine") is None
        other.stop()
        first.stop()


def test_members_snapshot_purge_and_recover_from_snapshots():
    """Every member snapshots every ~snapCount txns and purges old files; a restarted member
    recovers from its snapshot and log, and one whose disk was wiped gets the leader's SNAP."""
    import glob
    import shutil

    settings = {"snapCount": "40", "autopurge.purgeInterval": "1", "autopurge.snapRetainCount": "3"}
    with Ensemble(3, settings=settings) as ens:
        c = _client(ens.connect_string)
        for i in range(400):
            c.create(f"/n{i:04d}", str(i).encode())
        c.stop()
        deadline = time.time() + 20
        dirs = {sid: os.path.join(ens.base, f"server{sid}", "version-2") for sid in ens.ids}
        while time.time() < deadline:
            snaps = {sid: glob.glob(os.path.join(d, "snapshot.*[0-9a-f]")) for sid, d in dirs.items()}
            if all(len(s) == 3 for s in snaps.values()):
                break
            time.sleep(0.2)
        assert all(len(s) == 3 for s in snaps.values()), f"snapshots kept (want 3 each): {snaps}"
        for sid, d in dirs.items():
            logs = glob.glob(os.path.join(d, "log.*"))
            assert 0 < len(logs) < 10, f"server {sid} kept {len(logs)} log segments: purge does not run"
        # Whole ensemble down; one member loses its disk.  The other two recover from their
        # snapshots and logs, elect a leader, and that leader SNAPs the wiped one.
        wiped = ens.ids[0]
        for sid in ens.ids:
            ens.kill(sid)
        shutil.rmtree(dirs[wiped])
        survivors = [s for s in ens.ids if s != wiped]
        for sid in survivors:
            ens.start_server(sid)
        ens.wait_serving(sids=survivors, timeout=30)
        c = _client(",".join(ens.address(s) for s in survivors))
        for i in range(400, 450):
            c.create(f"/n{i:04d}", str(i).encode())
        ens.start_server(wiped)
        ens.wait_serving(timeout=30)
        c.stop()
        tree = ens.assert_replicas_identical()
        assert all(f"/n{i:04d}" in tree for i in range(450))


def test_pipelined_writes_that_reuse_an_xid_are_all_answered():
    """A client that reuses an xid while the first write is in flight gets both answers, in
    order, through the leader and through a follower (as from ZooKeeper)."""
    from zkpy.protocol import jute
    from zkpy.protocol.codes import Op
    from zkpy.testing.client import RawClient

    with Ensemble(3) as ens:
        for sid in ens.ids:
            c = RawClient("127.0.0.1", ens.client_ports[sid])
            reqs = [jute.encode_request(7, Op.CREATE, (f"/dup{sid}-{i}", b"", [(31, "world", "anyone")], 0, -1))
                    for i in range(2)]
            c.sock.sendall(b"".join(reqs))
            answers = []
            for _ in range(2):
                frame = c._frame()
                xid, _zxid, err = jute.decode_reply_header(frame)
                answers.append((xid, err, jute.Reader(frame, 16).ustring()))
            assert answers == [(7, 0, f"/dup{sid}-0"), (7, 0, f"/dup{sid}-1")], (sid, answers)
            c.sock.settimeout(10)
            assert c.call(Op.EXISTS, (f"/dup{sid}-1", False))[0] == 0
            c.close()


def test_zkpy_ensemble_command_starts_serves_and_cleans_up():
    """`zkpy ensemble -n 3`: prints a connect string that works, and Ctrl-C stops every
    member and removes the temp dirs."""
    import re
    import signal
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "zkpy", "ensemble", "-n", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        hosts = proc.stdout.readline().strip()
        assert re.fullmatch(r"127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){2}", hosts), hosts
        base = re.search(r"data and logs in (\S+);", proc.stderr.readline()).group(1)
        c = _client(hosts)
        c.create("/from-cli", b"ok")
        assert c.get("/from-cli")[0] == b"ok"
        c.stop()
        c.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not os.path.exists(base)
        for port in (int(h.split(":")[1]) for h in hosts.split(",")):
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_a_silent_client_of_a_follower_expires_and_its_ephemerals_go_everywhere():
    """The leader owns expiry: a session whose client vanished from a follower (no closeSession)
    expires after its timeout, its ephemerals are deleted on every member, and it cannot be
    resumed; a session that keeps pinging through another follower lives on."""
    from zkpy.protocol.codes import CreateMode
    from zkpy.testing.client import RawClient

    with Ensemble(3) as ens:
        leader = ens.leader()
        f1, f2 = [s for s in ens.ids if s != leader]
        gone = RawClient("127.0.0.1", ens.client_ports[f1], timeout_ms=1500)
        assert gone.create("/gone", flags=CreateMode.EPHEMERAL)[0] == 0
        alive = KazooClient(ens.address(f2), timeout=1.5)
        alive.start(10)
        alive.create("/alive", ephemeral=True)
        session, passwd = gone.session_id, gone.passwd
        gone.sock.close()  # vanishes: no closeSession
        deadline = time.time() + 15
        while time.time() < deadline and any("/gone" in t for t in ens.trees().values()):
            time.sleep(0.2)
        trees = ens.trees()
        assert all("/gone" not in t and "/alive" in t for t in trees.values()), trees
        back = RawClient("127.0.0.1", ens.client_ports[f1], timeout_ms=1500, session_id=session, passwd=passwd)
        assert back.timeout == 0 and back.session_id == 0  # expired
        back.close()
        assert alive.exists("/alive").ephemeralOwner == alive.client_id[0]
        alive.stop()
        alive.close()


def test_members_die_with_the_process_that_ran_the_ensemble_however_it_dies(tmp_path):
    """A test run or `zkpy verify` killed with SIGKILL (no finally, no atexit) leaves no member
    running and no temp dir: each Ensemble's reaper outlives it and cleans up."""
    import signal
    import subprocess
    import sys

    script = ("from zkpy.testing.ensemble import Ensemble\n"
              "import time\n"
              "ens = Ensemble(3).start()\n"
              "ens.kill(2); ens.start_server(2)\n"  # a restarted member is watched too
              "print(ens.base, *[p.pid for p in ens.procs.values()], flush=True)\n"
              "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        base, *pids = proc.stdout.readline().split()
        assert len(pids) == 3 and os.path.isdir(base)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alive = []
            for pid in map(int, pids):
                try:
                    os.kill(pid, 0)
                    alive.append(pid)
                except ProcessLookupError:
                    pass
            if not alive and not os.path.exists(base):
                break
            time.sleep(0.1)
        assert not alive, f"members {alive} outlived the process that ran them"
        assert not os.path.exists(base)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in map(int, pids if "pids" in dir() else []):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
