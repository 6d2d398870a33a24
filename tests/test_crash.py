"""Crash tests: `zkpy serve` under concurrent writes is killed with SIGKILL at random moments;
after each restart every acknowledged write is there with the Stat it was acknowledged
with, and no txn is half-applied.  ZKPY_CRASH_ROUNDS=50 for the long run."""

import os
import random
import threading
import time

from zkpy.protocol.codes import Op
from zkpy.protocol.jute import decode_stat
from zkpy.testing.client import RawClient
from zkpy.testing.external import ZkpyProcess

ROUNDS = int(os.environ.get("ZKPY_CRASH_ROUNDS", "6"))
WRITERS = 4
OPEN = [(31, "world", "anyone")]


class Writer(threading.Thread):
    def __init__(self, server, round_no: int, wid: int, counter_version: int) -> None:
        super().__init__(daemon=True)
        self.server, self.round_no, self.wid = server, round_no, wid
        self.acked_creates: dict[str, int] = {}  # path -> czxid
        self.multis: list[str] = []  # attempted (acked or not)
        self.acked_version = counter_version
        self.counter = f"/crash/counter-{wid}"

    def run(self) -> None:
        try:
            c = RawClient(self.server.host, self.server.port, io_timeout=5)
            k = 0
            while True:
                k += 1
                path = f"/crash/r{self.round_no}-w{self.wid}-{k}"
                if k % 5 == 0:
                    self.multis.append(path)
                    ops = [(Op.CREATE, (path + "-a", b"a", OPEN, 0, -1)), (Op.CREATE, (path + "-b", b"b", OPEN, 0, -1))]
                    err, _, _ = c.call(Op.MULTI, (ops,))
                elif k % 3 == 0:
                    err, r, _ = c.call(Op.SET_DATA, (self.counter, str(k).encode(), self.acked_version))
                    assert err == 0, err
                    self.acked_version = decode_stat(r)[4]
                else:
                    err, r, _ = c.call(Op.CREATE2, (path, str(k).encode(), OPEN, 0, -1))
                    assert err == 0, err
                    r.ustring()
                    self.acked_creates[path] = decode_stat(r)[0]
        except (ConnectionError, OSError):
            return  # the server died under us


def test_sigkill_loses_no_acknowledged_write(tmp_path):
    data_dir = str(tmp_path / "data")
    rng = random.Random(int(os.environ.get("ZKPY_CRASH_SEED", "7")))
    acked: dict[str, int] = {}
    multis: list[str] = []
    versions = {w: 0 for w in range(WRITERS)}
    with ZkpyProcess(data_dir=data_dir) as first:
        c = RawClient(first.host, first.port)
        c.create("/crash")
        for w in range(WRITERS):
            c.create(f"/crash/counter-{w}")
        c.close()
    for round_no in range(ROUNDS):
        server = ZkpyProcess(data_dir=data_dir).start()
        try:
            writers = [Writer(server, round_no, w, versions[w]) for w in range(WRITERS)]
            for w in writers:
                w.start()
            time.sleep(rng.uniform(0.05, 0.8))
            server.kill()  # SIGKILL, mid-write
            for w in writers:
                w.join(10)
                acked.update(w.acked_creates)
                multis.extend(w.multis)
                versions[w.wid] = w.acked_version
        finally:
            server.stop(cleanup=True)
        with ZkpyProcess(data_dir=data_dir) as again:
            check = RawClient(again.host, again.port)
            for path, czxid in acked.items():
                err, r, _ = check.call(Op.EXISTS, (path, False))
                assert err == 0, f"round {round_no}: acknowledged create {path} lost"
                assert decode_stat(r)[0] == czxid, f"round {round_no}: {path} has another czxid"
            for path in multis:
                a = check.call(Op.EXISTS, (path + "-a", False))[0]
                b = check.call(Op.EXISTS, (path + "-b", False))[0]
                assert a == b, f"round {round_no}: multi {path} half applied"
            for w, version in versions.items():
                err, r, _ = check.call(Op.EXISTS, (f"/crash/counter-{w}", False))
                have = decode_stat(r)[4]
                # the acknowledged version, or one more if an unacknowledged set reached the disk
                assert have in (version, version + 1), f"round {round_no}: counter {w} at {have}, acked {version}"
                versions[w] = have
            check.close()
    assert len(acked) > ROUNDS * 10  # the test did write under load
