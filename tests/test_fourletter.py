"""Four-letter words on the client port, and the whitelist."""

import socket
import time

from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError

from zkpy.testing import ZkpyServer


def test_words(zk, server):
    zk.create("/w", b"x")
    zk.get("/w", watch=lambda e: None)
    assert server.four_letter_word("ruok") == "imok"
    srvr = server.four_letter_word("srvr")
    assert "Mode: standalone" in srvr and "Zxid: 0x" in srvr and "Node count: 6" in srvr
    assert "Clients:" in server.four_letter_word("stat")
    assert f"clientPort={server.port}" in server.four_letter_word("conf")
    assert "sid=0x" in server.four_letter_word("cons")
    mntr = dict(line.split("\t", 1) for line in server.four_letter_word("mntr").splitlines())
    assert mntr["zk_server_state"] == "standalone" and mntr["zk_znode_count"] == "6" and mntr["zk_watch_count"] == "1"
    assert "Total watches:1" in server.four_letter_word("wchs")
    assert "/w" in server.four_letter_word("wchc") and "/w" in server.four_letter_word("wchp")
    assert "Session Sets (1)/(1):" in server.four_letter_word("dump")
    assert server.four_letter_word("isro") == "rw"
    assert "zookeeper.version" in server.four_letter_word("envi")
    assert "datadir_size" in server.four_letter_word("dirs")
    latency = mntr["zk_avg_latency"], mntr["zk_max_latency"], mntr["zk_min_latency"]
    assert float(latency[0]) >= 0 and int(latency[1]) >= int(latency[2]) == 0
    assert server.four_letter_word("srst").startswith("Server stats reset")
    assert "Latency min/avg/max: 0/0.0/0" in server.four_letter_word("srvr")  # counted afresh
    assert server.four_letter_word("crst").startswith("Connection stats reset")


def test_whitelist():
    with ZkpyServer(four_letter_words=frozenset({"srvr"})) as s:
        assert s.four_letter_word("ruok") == "ruok is not executed because it is not in the whitelist.\n"
        assert "Zookeeper version" in s.four_letter_word("srvr")


def test_watch_words_list_data_watches_only(zk, server):
    """As ZooKeeper 3.8's (DataTree.getWatches & co.): a getChildren watch counts in mntr's
    zk_watch_count but not in wchs, wchc, wchp, whose lists end with a blank line."""
    zk.create("/c")
    zk.get_children("/c", watch=lambda e: None)
    assert server.four_letter_word("wchs") == "0 connections watching 0 paths\nTotal watches:0\n"
    assert server.four_letter_word("wchc") == server.four_letter_word("wchp") == "\n"
    zk.exists("/c", watch=lambda e: None)
    sid = f"0x{zk.client_id[0]:x}"
    assert server.four_letter_word("wchc") == f"{sid}\n\t/c\n\n"
    assert server.four_letter_word("wchp") == f"/c\n\t{sid}\n\n"
    mntr = dict(line.split("\t", 1) for line in server.four_letter_word("mntr").splitlines())
    assert mntr["zk_watch_count"] == "2"


def test_mntr_counts_rejected_connections_and_failed_auth():
    """zk_connection_rejected (maxClientCnxns) and zk_auth_failed_count, as ZooKeeper's counters."""
    with ZkpyServer(four_letter_words=frozenset({"mntr"}), max_client_cnxns=2) as s:
        def mntr():
            return dict(line.split("\t", 1) for line in s.four_letter_word("mntr").splitlines())
        assert mntr()["zk_connection_rejected"] == "0" and mntr()["zk_auth_failed_count"] == "0"
        c = KazooClient(hosts=s.connect_string, timeout=10)
        c.start(timeout=10)
        try:
            c.add_auth("nosuchscheme", "x")
        except AuthFailedError:
            pass
        c.stop()
        c.close()
        assert mntr()["zk_auth_failed_count"] == "1"
        held = [socket.create_connection((s.host, s.port)) for _ in range(2)]
        try:
            with socket.create_connection((s.host, s.port)) as third:
                third.settimeout(10)
                assert third.recv(1) == b""  # closed at once
        finally:
            for h in held:
                h.close()
        deadline = time.monotonic() + 10
        while mntr()["zk_connection_rejected"] == "0" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(mntr()["zk_connection_rejected"]) >= 1


def test_mntr_constants_are_listed_and_idle():
    """Each key metrics.CONSTANT lists is one mntr prints, and stays at ZooKeeper's idle value
    through a workload (the mechanism is absent); the ones measured are not listed."""
    from zkpy.server import metrics

    with ZkpyServer(four_letter_words=frozenset({"mntr"})) as s:
        c = KazooClient(hosts=s.connect_string, timeout=10)
        c.start(timeout=10)
        try:
            for i in range(5):
                c.create(f"/c{i}", b"x")
                c.get(f"/c{i}", watch=lambda e: None)
                c.set(f"/c{i}", b"y")
            mntr = dict(line.split("\t", 1) for line in s.four_letter_word("mntr").splitlines())
        finally:
            c.stop()
            c.close()
    for name in metrics.CONSTANT:
        if name in metrics.SUMMARY_NAMES:
            assert mntr[f"zk_cnt_{name}"] == "0" and mntr[f"zk_sum_{name}"] == "0", name
        elif name in metrics.COUNTERS or f"zk_{name}" in mntr:
            assert mntr[f"zk_{name}"] in ("0", "0.0"), name
        else:
            assert name in ("synced_non_voting_followers", "pending_syncs"), f"{name}: not a key zkpy prints"
    for name in ("updatelatency", "readlatency", "propagation_latency", "sync_processor_batch_size",
                 "node_changed_watch_count"):
        assert name not in metrics.CONSTANT and int(mntr[f"zk_cnt_{name}"]) > 0, name
    assert set(metrics.DERIVED).isdisjoint(metrics.CONSTANT)
