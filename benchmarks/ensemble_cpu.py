"""CPU per write of a 3-member ensemble in one process: no client sockets, no other process.

    PYTHONPATH=. python benchmarks/ensemble_cpu.py [--n 30000] [--batch 100] [--repeat 5] [--warmup 10]
    PYTHONPATH=. python benchmarks/ensemble_cpu.py --callgrind [--n 6000] [--warmup 50]

Three ZkServers share one event loop (uvloop) and talk over loopback peer sockets, with
their data dirs on /dev/shm (so an fsync costs little and the same each time).  One
ClientConnection with a do-nothing transport per member gets `--batch` pipelined setData
frames; the next batch goes in once every connection's writes are answered, and the
members' clock moves one millisecond (SteppedClock).  Prints the
best of `--repeat` runs of `--n` writes in microseconds of process CPU (every thread:
the three members and their log writers) per write.

With `--callgrind` it runs itself under valgrind's callgrind with instrumentation off,
turns it on (callgrind_control) for one measured run only, and prints instructions per
write: a count that the machine's load does not move, for before/after figures of a few
percent.  The warm-up matters: the metrics' reservoirs (4096 samples) replace samples at
a rate that falls as 1/count, so a server that has taken few writes pays more per write
than one that has served for a while; `--warmup` runs (of `--n` writes) come first.

Why: `ensemble.py` measures ops/s of three `zkpy serve` processes under a load generator,
which on this 2-core VM drifts by 10-20 % between runs.  This measures the same member,
ZAB, peer and log-writer code with the wall clock, the scheduler and the client sockets
out of the way, so that a change on the ensemble write path shows as a few percent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from zkpy.protocol import jute
from zkpy.protocol.codes import Op
from zkpy.server.config import load
from zkpy.server.connection import ClientConnection
from zkpy.server.node import ZkServer, wall_clock_ms
from zkpy.testing.external import free_port

from request_cpu import OPEN_ACL, NullTransport  # the same do-nothing transport

NODES = 100


class SteppedClock:
    """The members' clock (ms): the wall clock until `freeze`, then that time plus one ms
    per round of writes.  The metrics keep a sample per distinct latency and prep time, so
    their cost depends on how many writes share a millisecond; a stepped clock gives every
    run, under callgrind (about 50 times slower) or not, the same pattern of times."""

    def __init__(self) -> None:
        self.fixed: int | None = None

    def __call__(self) -> int:
        return wall_clock_ms() if self.fixed is None else self.fixed

    def freeze(self) -> None:
        self.fixed = wall_clock_ms()

    def step(self) -> None:
        self.fixed += 1  # type: ignore[operator]


def write_configs(base: str, size: int) -> list[str]:
    ports = {sid: (free_port(), free_port(), free_port()) for sid in range(1, size + 1)}
    paths = []
    for sid, (client, _, _) in ports.items():
        d = os.path.join(base, f"server{sid}")
        os.makedirs(d)
        with open(os.path.join(d, "myid"), "w") as f:
            f.write(str(sid))
        lines = ["tickTime=2000", "initLimit=10", "syncLimit=5", f"dataDir={d}", f"clientPort={client}",
                 "clientPortAddress=127.0.0.1", "admin.enableServer=false"]
        lines += [f"server.{i}=127.0.0.1:{peer}:{election}" for i, (_, peer, election) in ports.items()]
        path = os.path.join(d, "zoo.cfg")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        paths.append(path)
    return paths


async def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the ensemble did not get there in time")
        await asyncio.sleep(0.001)


def answered(conns: list[ClientConnection]) -> bool:
    return all(not c.pending for c in conns)


def _handshake(sync: str | None, name: str) -> None:
    """With --sync-dir (the --callgrind parent's): say `name` and wait for its go-ahead.  The
    loop blocks meanwhile; syncLimit (10 s at tickTime 2000) is far longer than that takes."""
    if sync is None:
        return
    open(os.path.join(sync, name), "w").close()
    go = os.path.join(sync, "go-" + name)
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no go-ahead for {name}")
        time.sleep(0.01)


async def run(n: int, batch: int, repeat: int, warmup: int, base: str, sync: str | None = None) -> float:
    clock = SteppedClock()
    servers = [ZkServer(load(path), clock_ms=clock) for path in write_configs(base, 3)]
    for server in servers:
        await server.start()
    try:
        await until(lambda: all(s.member.soft.serving for s in servers))
        conns = []
        for server in servers:
            conn = ClientConnection(server.clients)
            conn.connection_made(NullTransport())  # type: ignore[arg-type]
            conn.data_received(jute.encode_connect_request(30000, 0, b"\0" * 16, 0))
            conns.append(conn)
        await until(lambda: all(c.session_id for c in conns) and answered(conns))
        for i in range(NODES):
            conns[0].data_received(jute.encode_request(i + 1, Op.CREATE, (f"/n{i}", b"x" * 100, OPEN_ACL, 0, -1)))
        await until(lambda: answered(conns) and all(s.member.tree.last_zxid == servers[0].member.tree.last_zxid
                                                    for s in servers))
        per_round = batch * len(conns)
        rounds = max(1, n // per_round)
        xid = 1000
        batches = []
        for _ in range(rounds):
            frames = []
            for k in range(batch):
                xid += 1
                frames.append(jute.encode_request(xid, Op.SET_DATA, (f"/n{xid % NODES}", b"y" * 100, -1)))
            batches.append(b"".join(frames))

        clock.freeze()

        async def one_pass() -> None:
            for data in batches:
                clock.step()
                for conn in conns:
                    conn.data_received(data)
                await until(lambda: answered(conns))

        for _ in range(warmup):
            await one_pass()
        best = float("inf")
        for _ in range(repeat):
            _handshake(sync, "before")
            started = time.process_time()
            await one_pass()
            best = min(best, (time.process_time() - started) / (rounds * per_round) * 1e6)
            _handshake(sync, "after")
        return best
    finally:
        for server in servers:
            await server.stop()


def _wait_for(path: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"ensemble_cpu.py under callgrind stopped before {os.path.basename(path)}")
        time.sleep(0.05)


def under_callgrind(args: argparse.Namespace) -> None:
    """Run this script under callgrind with instrumentation on for one measured run only."""
    sync = tempfile.mkdtemp(prefix="zkpy-ensemble-cpu-sync-")
    out = os.path.join(sync, "callgrind.out")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           os.path.realpath(sys.executable), os.path.abspath(__file__), "--n", str(args.n), "--batch", str(args.batch),
           "--repeat", "1", "--warmup", str(args.warmup), "--sync-dir", sync]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for step, switch in (("before", "on"), ("after", "off")):
            _wait_for(os.path.join(sync, step), proc, timeout=3600)
            subprocess.run(["callgrind_control", f"--instr={switch}", str(proc.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            open(os.path.join(sync, "go-" + step), "w").close()
        output, _ = proc.communicate(timeout=600)
        with open(out) as f:
            totals = re.search(r"^totals: (\d+)", f.read(), re.M)
        if proc.returncode or totals is None:
            raise SystemExit(f"callgrind run failed (exit {proc.returncode}):\n{output[-2000:]}")
        writes = max(1, args.n // (args.batch * 3)) * args.batch * 3
        print(f"set: {int(totals.group(1)) / writes / 1000:.1f}k instructions per write "
              f"(callgrind, {writes} writes after {args.warmup} warm-up runs, 3 members in one process)")
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(sync, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="writes per run (default 30000; 6000 with --callgrind)")
    p.add_argument("--batch", type=int, default=100, help="pipelined writes per connection at a time (default 100)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=None,
                   help="unmeasured runs first (default 10; 50 with --callgrind)")
    p.add_argument("--callgrind", action="store_true", help="count instructions per write under callgrind")
    p.add_argument("--sync-dir", help=argparse.SUPPRESS)  # the --callgrind parent's handshake
    a = p.parse_args()
    if a.n is None:
        a.n = 6000 if a.callgrind else 30_000
    if a.warmup is None:
        a.warmup = 50 if a.callgrind else 10
    if a.callgrind:
        under_callgrind(a)
        return
    base = tempfile.mkdtemp(prefix="zkpy-ensemble-cpu-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        import uvloop
        best = uvloop.run(run(a.n, a.batch, a.repeat, a.warmup, base, a.sync_dir))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"set: {best:.2f} us of CPU per write (best of {a.repeat}, 3 members in one process)")


if __name__ == "__main__":
    main()
