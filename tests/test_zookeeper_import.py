"""`zkpy import`: Apache ZooKeeper 3.8 writes a dataDir, zkpy serves what ZooKeeper served.

Apache ZooKeeper (snapCount small, so snapshots and logs are both present and txns follow
the last snapshot) runs a mixed workload from kazoo; it is stopped (SIGTERM, or SIGKILL with
the newest log's last record torn as a crash leaves it); `python -m zkpy import` converts
the dir; a zkpy server on the result must serve every znode with the data, ACL and Stat that
ZooKeeper served (after a SIGKILL: what ZooKeeper itself recovers from the same files), the
last zxid must be ZooKeeper's, and a session alive at the stop must go on under zkpy with
its ephemerals.  The readers are also given corrupt, torn and truncated files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import namedtuple

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.protocol.serialization import Create2
from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl

from zkpy.storage.zookeeper_format import ZooKeeperFormatError, log_files, read_log, read_snapshot, snapshot_files
from zkpy.testing.ensemble import Ensemble
from zkpy.testing.external import ApacheZooKeeper, ZkpyProcess, apache_zookeeper_available, four_letter_word

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = {"snapCount": "40", "maxSessionTimeout": "60000"}
PROPS = {"zookeeper.extendedTypesEnabled": "true", "znode.container.checkIntervalMs": "3600000"}
SESSION_TIMEOUT = 40.0  # seconds: the surviving session must outlive the stop, import and start


def _need_zookeeper() -> None:
    if not apache_zookeeper_available():
        message = "Apache ZooKeeper 3.8 is not installed: apt-get install zookeeper zookeeper-bin"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def _require_zookeeper() -> None:
    _need_zookeeper()


# ---------------------------------------------------------------- kazoo requests it lacks


class _CreateContainer(Create2):
    type = 19  # createContainer: the Create2 body with flags CONTAINER (4); answered as Create2


class _CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21  # createTTL: the Create2 body, then the TTL in ms

    def serialize(self) -> bytearray:
        return Create2.serialize(self) + self.ttl.to_bytes(8, "big")

    deserialize = Create2.deserialize


def _send(client: KazooClient, request) -> object:
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=20)


# ---------------------------------------------------------------- workload and comparison

ALICE = ("alice", "alice-secret")
BOB = ("bob", "bob-secret")


def _client(connect: str, auth: list[tuple[str, str]] = (), timeout: float = 10.0) -> KazooClient:
    c = KazooClient(connect, timeout=timeout, auth_data=[("digest", f"{u}:{p}") for u, p in auth])
    c.start(timeout=30)
    return c


def _workload(connect: str, data_dir: str) -> KazooClient:
    """A mixed workload; returns a client whose session (with ephemerals) is alive at the stop."""
    alice = _client(connect, [ALICE], timeout=SESSION_TIMEOUT)
    closed = _client(connect)  # a session closed early (in a snapshot): its ephemerals go
    closed_late = _client(connect)  # one closed after the newest snapshot (in the log alone)
    survivor = _client(connect, [ALICE], timeout=SESSION_TIMEOUT)
    alice.create("/app/config", b"v0", makepath=True)
    for i in range(30):
        alice.create(f"/app/items/item{i:03}", b"x" * i, makepath=True, include_data=i % 2 == 0)
        alice.set("/app/config", f"v{i + 1}".encode())
        if i % 3 == 0:
            alice.delete(f"/app/items/item{i:03}")
    for _ in range(5):
        alice.create("/app/queue/job-", b"job", sequence=True, makepath=True)
    alice.delete("/app/queue/job-0000000001")
    closed.create("/app/locks/closed-", ephemeral=True, sequence=True, makepath=True)
    closed.create("/app/closed-ephemeral", b"gone", ephemeral=True)
    closed_late.create("/app/locks/closed-late-", ephemeral=True, sequence=True)
    closed_late.create("/app/closed-late-ephemeral", b"gone", ephemeral=True)
    survivor.create("/app/locks/survivor-", b"held", ephemeral=True, sequence=True, makepath=True)
    survivor.create("/app/survivor", b"alive", ephemeral=True)
    _send(alice, _CreateContainer("/app/container", b"c", OPEN_ACL_UNSAFE, 4))
    alice.create("/app/container/child", b"in a container")
    _send(alice, _CreateTTL("/app/ttl", b"t", OPEN_ACL_UNSAFE, 5, 3_600_000))
    _send(alice, _CreateTTL("/app/ttl-seq-", b"t", OPEN_ACL_UNSAFE, 6, 3_600_000))
    alice_acl = make_digest_acl(*ALICE, all=True)
    alice.create("/secure", b"only alice", acl=[alice_acl])
    alice.create("/secure/shared", b"read all", acl=[alice_acl, make_acl("world", "anyone", read=True)])
    for version in range(3):  # aversion 3
        alice.set_acls("/secure/shared", [alice_acl, make_digest_acl(*BOB, read=True, write=version % 2 == 0),
                                          make_acl("world", "anyone", read=True)], version=version)
    tx = alice.transaction()
    tx.create("/app/multi", b"m")
    tx.set_data("/app/config", b"from multi")
    tx.delete("/app/items/item001")
    tx.check("/app/queue", 0)
    assert not any(isinstance(r, Exception) for r in tx.commit())
    failed = alice.transaction()  # an error txn: nothing of it applies
    failed.create("/app/never")
    failed.check("/app/config", 999)
    assert any(isinstance(r, Exception) for r in failed.commit())
    closed.stop()
    closed.close()
    alice.stop()
    alice.close()
    _write_until_newest_log_is_short(survivor, "/app/survivor", data_dir, int(CONFIG["snapCount"]))
    closed_late.stop()
    closed_late.close()
    return survivor


def _write_until_newest_log_is_short(client: KazooClient, path: str, data_dir: str, snap_count: int) -> None:
    """setData until ZooKeeper has rolled its log once more and the new one holds a few txns.
    It rolls the log as it starts a snapshot, and starts the next one only after snapCount / 2
    more txns: so everything before is in the newest snapshot, and txns follow it that only
    the log holds."""
    before = _newest_log(data_dir)
    for i in range(4 * snap_count):
        client.set(path, f"late {i}".encode())
        newest = _newest_log(data_dir)
        if newest != before and 3 <= len(list(read_log(newest, newest=True))) < snap_count // 2 - 2:
            time.sleep(0.5)  # the snapshot the roll started is written by then
            return
    raise AssertionError("ZooKeeper's log did not roll")


def _newest_log(data_dir: str) -> str | None:
    logs = log_files(os.path.join(data_dir, "version-2"))
    return logs[-1][1] if logs else None


def _walk(connect: str) -> dict[str, tuple]:
    """Every znode: (data, Stat, ACLs), read through kazoo as alice (who may read them all)."""
    c = _client(connect, [ALICE])
    try:
        out = {}
        stack = ["/"]
        while stack:
            path = stack.pop()
            data, stat = c.get(path)
            acls, acl_stat = c.get_acls(path)
            assert acl_stat == stat
            out[path] = (data, tuple(stat), tuple((a.perms, a.id.scheme, a.id.id) for a in acls))
            prefix = path.rstrip("/") + "/"
            stack.extend(prefix + child for child in c.get_children(path))
        return out
    finally:
        c.stop()
        c.close()


def _last_zxid(server) -> int:
    for line in four_letter_word(server.host, server.port, "srvr").splitlines():
        if line.startswith("Zxid:"):
            return int(line.split(":")[1], 16)
    raise AssertionError("srvr has no Zxid line")


def _zkpy(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "zkpy", *args], capture_output=True, text=True, env=env, check=False,
                          timeout=120)


def _import(zk_data: str, out: str) -> str:
    done = _zkpy("import", zk_data, out)
    assert done.returncode == 0, done.stderr
    checked = _zkpy("check", out)
    assert checked.returncode == 0, checked.stderr
    return checked.stdout


def _digest(check_report: str) -> str:
    return check_report.split("digest ")[1].split()[0]


def _assert_same(expected: dict, got: dict) -> None:
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    assert not missing and not extra, f"missing under zkpy: {missing}; only under zkpy: {extra}"
    differ = [(p, expected[p], got[p]) for p in sorted(expected) if expected[p] != got[p]]
    assert not differ, "differ (path, ZooKeeper, zkpy): " + "; ".join(map(repr, differ[:5]))


def _assert_txns_after_last_snapshot(data_dir: str) -> None:
    """The run's premise: several snapshots, and logged txns newer than the newest one."""
    v2 = os.path.join(data_dir, "version-2")
    snaps = snapshot_files(v2)
    assert len(snaps) >= 3, snaps
    newest = max(txn.zxid for _, path in log_files(v2) for _, txn in read_log(path, True))
    assert newest > snaps[0][0], (hex(newest), snaps[0])


# ---------------------------------------------------------------- the differential tests


def test_import_after_a_clean_stop_serves_the_same_tree_and_keeps_sessions(_require_zookeeper, tmp_path) -> None:
    zk = ApacheZooKeeper(config=CONFIG, java_props=PROPS, startup_timeout=60)
    zkpy = None
    survivor = None
    try:
        zk.start()
        survivor = _workload(zk.connect_string, zk.data_dir)
        session_id, _ = survivor.client_id
        expected = _walk(zk.connect_string)
        last_zxid = _last_zxid(zk)
        states: list[str] = []
        survivor.add_listener(states.append)
        zk.stop(cleanup=False)  # SIGTERM
        _assert_txns_after_last_snapshot(zk.data_dir)

        out = str(tmp_path / "zkpy-data")
        report = _import(zk.data_dir, out)
        assert f"last zxid 0x{last_zxid:x}," in report
        # Every txn of the workload, replayed from the log onto ZooKeeper's first (empty)
        # snapshot, gives the same tree and sessions (the digest covers both).
        from_logs = str(tmp_path / "from-logs")
        _copytree(zk.data_dir, from_logs)
        _only_the_first_snapshot(os.path.join(from_logs, "version-2"))
        assert _digest(_import(from_logs, str(tmp_path / "zkpy-from-logs"))) == _digest(report)
        zkpy = ZkpyProcess(data_dir=out, port=zk.port, config={"maxSessionTimeout": "60000"}, java_props=PROPS)
        zkpy.start()
        _assert_same(expected, _walk(zkpy.connect_string))

        # The session ZooKeeper gave out goes on under zkpy: the client reconnects with its id
        # and password, its ephemerals stay, and it can write.
        deadline = time.monotonic() + 30
        while survivor.state != KazooState.CONNECTED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert survivor.state == KazooState.CONNECTED and survivor.client_id[0] == session_id
        assert KazooState.LOST not in states
        stat = survivor.set("/app/survivor", b"under zkpy")
        assert stat.ephemeralOwner == session_id and stat.mzxid > last_zxid
    finally:
        if survivor is not None:
            survivor.stop()
            survivor.close()
        if zkpy is not None:
            zkpy.stop()
        zk.stop()


def _tear_last_record(data_dir: str) -> int:
    """Make the newest log's last record look like a write cut by a crash: its second half and
    its 'B' marker never reached the disk (zeros, as preallocation left them).  Returns its zxid."""
    path = log_files(os.path.join(data_dir, "version-2"))[-1][1]
    records = list(read_log(path, True))
    offset, txn = records[-1]
    with open(path, "r+b") as f:
        f.seek(offset + 8)
        length = int.from_bytes(f.read(4), "big")
        half = offset + 12 + length // 2
        f.seek(half)
        f.write(b"\0" * (offset + 12 + length + 1 - half))
    return txn.zxid


def test_import_after_sigkill_with_a_torn_tail_matches_zookeepers_own_recovery(_require_zookeeper, tmp_path) -> None:
    zk = ApacheZooKeeper(config=CONFIG, java_props=PROPS, startup_timeout=60)
    servers = [zk]
    survivor = None
    try:
        zk.start()
        survivor = _workload(zk.connect_string, zk.data_dir)
        zk.kill()  # the survivor's session is open in the files, its last txn possibly torn
        survivor.stop()
        torn_zxid = _tear_last_record(zk.data_dir)
        _assert_txns_after_last_snapshot(zk.data_dir)
        original = str(tmp_path / "zookeeper-data")
        _copytree(zk.data_dir, original)  # ZooKeeper's recovery below writes into its copy

        restarted = ApacheZooKeeper(config=CONFIG, java_props=PROPS, startup_timeout=60, data_dir=zk.data_dir)
        servers.append(restarted)
        restarted.start()
        last_zxid = _last_zxid(restarted)  # before the walk: its session is a txn too
        assert last_zxid == torn_zxid - 1  # ZooKeeper cut the torn record
        expected = _walk(restarted.connect_string)
        restarted.stop()

        out = str(tmp_path / "zkpy-data")
        report = _import(original, out)
        assert f"last zxid 0x{last_zxid:x}," in report
        zkpy = ZkpyProcess(data_dir=out, config={"maxSessionTimeout": "60000"}, java_props=PROPS)
        servers.append(zkpy)
        zkpy.start()
        _assert_same(expected, _walk(zkpy.connect_string))
    finally:
        if survivor is not None:
            survivor.close()
        for server in reversed(servers):
            server.stop()


def test_an_imported_ensemble_keeps_its_tree_epochs_and_zxids(_require_zookeeper) -> None:
    """Each member of an Apache ZooKeeper ensemble imported (myid and epoch files come along):
    the zkpy ensemble on the results serves the same tree, and its zxids go on after ZooKeeper's."""
    apache = Ensemble(3, apache=True, apache_heap="256m", settings={"snapCount": "40"}, startup_timeout=90)
    zkpy = Ensemble(3, startup_timeout=60)
    try:
        apache.start()
        c = _client(apache.connect_string, [ALICE])
        for i in range(60):
            c.create(f"/ens/n{i:02}", b"%d" % i, makepath=True, acl=[make_digest_acl(*ALICE, all=True)] if i % 7 == 0
                     else None)
            c.set(f"/ens/n{i // 2:02}", b"again")
        c.stop()
        c.close()
        expected = _walk(apache.connect_string)
        last_zxid = max(stat[1] for _, stat, _ in expected.values())  # the newest mzxid: a setData
        apache.stop_members()
        epochs = {}
        for sid in apache.ids:
            src = os.path.join(apache.base, f"server{sid}")
            with open(os.path.join(src, "version-2", "currentEpoch")) as f:
                epochs[sid] = int(f.read())
            done = _zkpy("import", src, os.path.join(zkpy.base, f"server{sid}"))
            assert done.returncode == 0, done.stderr
            with open(os.path.join(zkpy.base, f"server{sid}", "myid")) as f:
                assert f.read().strip() == str(sid)
        assert min(epochs.values()) >= 1 and last_zxid >> 32 >= 1
        zkpy.start()
        for sid in zkpy.ids:  # every member serves it (/zookeeper/config lists other ports)
            got = _walk(zkpy.address(sid))
            _assert_same({p: v for p, v in expected.items() if p != "/zookeeper/config"},
                         {p: v for p, v in got.items() if p != "/zookeeper/config"})
        c = _client(zkpy.connect_string, [ALICE])
        stat = c.set("/ens/n01", b"under zkpy")
        c.stop()
        c.close()
        assert stat.mzxid >> 32 > max(epochs.values()) and stat.mzxid > last_zxid
    finally:
        apache.stop()
        zkpy.stop()


# ---------------------------------------------------------------- the readers on bad input


@pytest.fixture(scope="module")
def zookeeper_dir(tmp_path_factory) -> str:
    """A dataDir Apache ZooKeeper wrote (several snapshots and logs), shared read-only."""
    _need_zookeeper()
    zk = ApacheZooKeeper(config={"snapCount": "20"}, startup_timeout=60)
    try:
        zk.start()
        c = _client(zk.connect_string)
        for i in range(60):
            c.create(f"/n{i}", b"data %d" % i)
        _write_until_newest_log_is_short(c, "/n1", zk.data_dir, 20)
        c.stop()
        c.close()
        zk.stop(cleanup=False)
        out = str(tmp_path_factory.mktemp("zk") / "data")
        _copytree(zk.data_dir, out)
        return out
    finally:
        zk.stop()


def _sparse_copy(src: str, dst: str) -> None:
    """Copy a file, leaving its trailing zeros a hole (ZooKeeper's logs are 64 MB, mostly holes)."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data.rstrip(b"\0"))
        f.truncate(len(data))


def _copytree(src: str, dst: str) -> None:
    shutil.copytree(src, dst, copy_function=_sparse_copy)


def _copy(zookeeper_dir: str, tmp_path) -> tuple[str, str]:
    data = str(tmp_path / "zk")
    _copytree(zookeeper_dir, data)
    return data, os.path.join(data, "version-2")


def _only_the_first_snapshot(v2: str) -> None:
    """Leave snapshot.0 alone: the import then needs every log segment."""
    for _, path in snapshot_files(v2)[:-1]:
        os.unlink(path)


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x20]))


def _refused(data: str, tmp_path) -> str:
    """`zkpy import` refuses: exit code 2 and one line, no traceback.  Returns the line."""
    done = _zkpy("import", data, str(tmp_path / "out"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_flipped_byte_in_an_older_log_names_file_and_offset(zookeeper_dir, tmp_path) -> None:
    data, v2 = _copy(zookeeper_dir, tmp_path)
    _only_the_first_snapshot(v2)
    path = log_files(v2)[0][1]
    offset = list(read_log(path, False))[3][0]
    _flip(path, offset + 12 + 30)  # inside the fourth txn record: the Adler32 no longer matches
    assert f"{path} at offset {offset}: checksum mismatch" in _refused(data, tmp_path)
    with pytest.raises(ZooKeeperFormatError) as e:
        list(read_log(path, True))
    assert (e.value.path, e.value.offset) == (path, offset)


def test_bad_magic_and_truncated_log_are_refused(zookeeper_dir, tmp_path) -> None:
    data, v2 = _copy(zookeeper_dir, tmp_path)
    _only_the_first_snapshot(v2)
    first, second = [p for _, p in log_files(v2)][-2:]
    records = list(read_log(first, False))
    with open(first, "r+b") as f:  # an older segment cut inside its last record
        f.truncate(records[-1][0] + 20)
    assert f"{first} at offset {records[-1][0]}: record cut short in a log segment that is not the newest" \
        in _refused(data, tmp_path)
    with open(second, "r+b") as f:
        f.write(b"ZKLX")
    with pytest.raises(ZooKeeperFormatError, match="at offset 0: bad magic"):
        list(read_log(second, True))


def test_torn_newest_log_is_cut_and_the_rest_imported(zookeeper_dir, tmp_path) -> None:
    data, v2 = _copy(zookeeper_dir, tmp_path)
    newest = log_files(v2)[-1][1]
    records = list(read_log(newest, True))
    with open(newest, "r+b") as f:  # the file ends inside its last record (no preallocated zeros)
        f.truncate(records[-1][0] + 15)
    assert [t.zxid for _, t in read_log(newest, True)] == [t.zxid for _, t in records[:-1]]
    report = _import(data, str(tmp_path / "out"))
    assert f"last zxid 0x{records[-1][1].zxid - 1:x}," in report


def test_corrupt_newest_snapshot_falls_back_and_truncated_snapshot_names_offset(zookeeper_dir, tmp_path) -> None:
    data, v2 = _copy(zookeeper_dir, tmp_path)
    (_, newest), (older_zxid, _) = snapshot_files(v2)[:2]
    size = os.path.getsize(newest)
    with open(newest, "rb") as f:
        inside_data = f.read().index(b"data 1")  # a node's data: only the checksum can tell
    _flip(newest, inside_data)
    with pytest.raises(ZooKeeperFormatError, match="checksum mismatch") as e:
        read_snapshot(newest)
    assert e.value.path == newest and 0 < e.value.offset < size
    # As ZooKeeper: the older snapshot plus the logs after it give the same tree.
    intact = _import(zookeeper_dir, str(tmp_path / "intact"))
    done = _zkpy("import", data, str(tmp_path / "out"))
    assert done.returncode == 0 and f"snapshot.{older_zxid:x} and" in done.stdout, done.stdout + done.stderr
    assert _zkpy("check", str(tmp_path / "out")).stdout == intact.replace(str(tmp_path / "intact"),
                                                                          str(tmp_path / "out"))
    with open(newest, "r+b") as f:
        f.truncate(size - 40)
    with pytest.raises(ZooKeeperFormatError, match="truncated or corrupt snapshot") as e:
        read_snapshot(newest)
    assert e.value.offset > 0


def test_missing_log_segment_is_a_gap(zookeeper_dir, tmp_path) -> None:
    data, v2 = _copy(zookeeper_dir, tmp_path)
    _only_the_first_snapshot(v2)
    logs = log_files(v2)
    os.unlink(logs[1][1])
    assert f"gap in the log: zxid {logs[2][0]:#x} follows {logs[1][0] - 1:#x}" in _refused(data, tmp_path)


def test_a_separate_data_log_dir(zookeeper_dir, tmp_path) -> None:
    """dataLogDir apart from dataDir: the logs are read from --zk-data-log-dir/version-2."""
    data, v2 = _copy(zookeeper_dir, tmp_path)
    logs = tmp_path / "zk-logs" / "version-2"
    logs.mkdir(parents=True)
    for _, path in log_files(v2):
        shutil.move(path, logs / os.path.basename(path))
    intact = _digest(_import(zookeeper_dir, str(tmp_path / "intact")))
    done = _zkpy("import", data, str(tmp_path / "out"), "--zk-data-log-dir", str(logs.parent))
    assert done.returncode == 0, done.stderr
    assert _digest(_zkpy("check", str(tmp_path / "out")).stdout) == intact


def test_zkpy_on_a_zookeeper_dir_points_to_import(zookeeper_dir) -> None:
    done = _zkpy("check", zookeeper_dir)
    assert done.returncode == 1 and "Apache ZooKeeper's log" in done.stderr and "zkpy import" in done.stderr


def test_gzip_snapshots_are_read(_require_zookeeper, tmp_path) -> None:
    """zookeeper.snapshot.compression.method=gz: snapshot.<zxid>.gz files."""
    zk = ApacheZooKeeper(config={"snapCount": "20"}, startup_timeout=60,
                         java_props={"zookeeper.snapshot.compression.method": "gz"})
    try:
        zk.start()
        c = _client(zk.connect_string)
        for i in range(40):
            c.create(f"/gz{i}", b"compressed %d" % i)
        _write_until_newest_log_is_short(c, "/gz1", zk.data_dir, 20)
        c.stop()
        c.close()
        expected = _walk(zk.connect_string)
        zk.stop(cleanup=False)
        assert snapshot_files(os.path.join(zk.data_dir, "version-2"))[0][1].endswith(".gz")
        out = str(tmp_path / "out")
        assert f"{len(expected)} nodes" in _import(zk.data_dir, out)
        with ZkpyProcess(data_dir=out) as zkpy:
            _assert_same(expected, _walk(zkpy.connect_string))
    finally:
        zk.stop()


def test_not_a_zookeeper_dir_or_an_occupied_output_is_refused(zookeeper_dir, tmp_path) -> None:
    assert "has no version-2 directory" in _refused(str(tmp_path), tmp_path)
    os.makedirs(tmp_path / "out" / "version-2")
    (tmp_path / "out" / "version-2" / "snapshot.5").write_bytes(b"zkpy's")
    assert "already holds a data dir" in _refused(zookeeper_dir, tmp_path)


def test_every_flipped_byte_is_caught(zookeeper_dir) -> None:
    """A byte flipped anywhere in a snapshot or an older log (but the dbid, which nothing
    checks) is refused with the file and an offset in it: never accepted, never another error."""
    v2 = os.path.join(zookeeper_dir, "version-2")
    # A log's records have their own checksums: the error is at or before the flipped byte.
    # A snapshot's one checksum comes at its end.
    targets = [(snapshot_files(v2)[0][1], read_snapshot, False),
               (log_files(v2)[0][1], lambda p: list(read_log(p, False)), True)]
    for path, read, per_record in targets:
        with open(path, "rb") as f:
            original = f.read()
        end = min(len(original), len(original.rstrip(b"\0")) + 16)  # into a log's preallocated zeros too
        for offset in [o for o in range(0, end, max(1, end // 150)) if not 8 <= o < 16]:
            corrupt = bytearray(original[:end + 4096])
            corrupt[offset] ^= 0x20
            copy = path + ".flipped"
            with open(copy, "wb") as f:
                f.write(corrupt)
            try:
                with pytest.raises(ZooKeeperFormatError) as e:
                    read(copy)
                limit = offset if per_record else len(original)
                assert e.value.path.startswith(copy) and 0 <= e.value.offset <= limit, (offset, str(e.value))
            finally:
                os.unlink(copy)


def test_replay_over_a_fuzzy_snapshot_raises_the_parents_cversion_as_zookeeper() -> None:
    """A snapshot written while txns were applied may hold a node whose `create` comes after it
    in the log, with its parent's cversion not yet raised: replaying that create finds the node
    (NODEEXISTS) and, as DataTree.processTxn does for type create, still sets the parent's
    cversion and pzxid from the txn.  create2 is left alone, as ZooKeeper leaves it."""
    from zkpy.protocol.codes import Op
    from zkpy.storage.importer import apply_zookeeper_txn
    from zkpy.tree.acl import OPEN_ACL_UNSAFE
    from zkpy.tree.datatree import DataTree, Txn

    tree = DataTree()
    tree.apply(Txn(1, 1000, 5, 1, Op.CREATE, ("/a", b"", OPEN_ACL_UNSAFE, 0, 1)))
    tree.apply(Txn(2, 1000, 5, 2, Op.CREATE, ("/a/b", b"", OPEN_ACL_UNSAFE, 0, 1)))
    tree.nodes["/a"].cversion, tree.nodes["/a"].pzxid = 0, 1  # as the fuzzy snapshot caught /a
    apply_zookeeper_txn(tree, Txn(2, 1000, 5, 2, Op.CREATE2, ("/a/b", b"", OPEN_ACL_UNSAFE, 0, 1)))
    assert (tree.nodes["/a"].cversion, tree.nodes["/a"].pzxid) == (0, 1)
    apply_zookeeper_txn(tree, Txn(2, 1000, 5, 2, Op.CREATE, ("/a/b", b"", OPEN_ACL_UNSAFE, 0, 1)))
    assert (tree.nodes["/a"].cversion, tree.nodes["/a"].pzxid) == (1, 2)
    multi = [(Op.CREATE, ("/a/c", b"", OPEN_ACL_UNSAFE, 0, 2)), (Op.CREATE, ("/a/b", b"", OPEN_ACL_UNSAFE, 0, 3))]
    tree.apply(Txn(3, 1000, 5, 3, Op.CREATE, multi[0][1]))
    tree.nodes["/a"].cversion = 1
    apply_zookeeper_txn(tree, Txn(4, 1000, 5, 4, Op.MULTI, (multi,)))  # both exist now
    assert (tree.nodes["/a"].cversion, tree.nodes["/a"].pzxid) == (3, 4)
