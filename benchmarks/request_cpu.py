"""CPU per request of the standalone pipeline in-process: no sockets, no client, no kernel.

    PYTHONPATH=. python benchmarks/request_cpu.py [--op set|get] [--n 100000] [--repeat 5] [--warmup 0]

A ZkServer (in-memory storage) gets batches of 100 pipelined getData or setData frames
through a ClientConnection with a do-nothing transport; each batch is followed by the loop
turns that commit and answer it.  Prints the best of `--repeat` runs in microseconds of
process CPU per request.  Load on the machine moves it less than the ops/s of run.py; for a
count that load does not move at all, run it under `valgrind --tool=callgrind` with
`--repeat 1` and subtract a `--repeat 0` run (the setup): instructions per request.
`--warmup N` sends N requests first, unmeasured: the metrics' reservoirs (4096 samples each)
replace samples at a rate that falls as 1/count, so the first ~100k requests of a server
cost more than those of one that has served for a while, which is what a benchmark of
seconds measures.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from zkpy.protocol import jute
from zkpy.protocol.codes import Op
from zkpy.server.config import Config
from zkpy.server.connection import ClientConnection
from zkpy.server.node import ZkServer

OPEN_ACL = [(31, "world", "anyone")]


class NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def get_extra_info(self, key: str, default: object = None) -> object:
        return ("127.0.0.1", 5555) if key == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


async def run(op: str, n: int, repeat: int, batch: int = 100, warmup: int = 0) -> float | None:
    server = ZkServer(Config(client_port=None, client_port_address="127.0.0.1"))
    await server.start()
    conn = ClientConnection(server.clients)
    conn.connection_made(NullTransport())  # type: ignore[arg-type]
    conn.data_received(jute.encode_connect_request(30000, 0, b"\0" * 16, 0))
    for i in range(100):
        conn.data_received(jute.encode_request(i + 1, Op.CREATE, (f"/n{i}", b"x" * 100, OPEN_ACL, 0, -1)))
        await asyncio.sleep(0)
    if op == "set":
        frames = [jute.encode_request(i, Op.SET_DATA, (f"/n{i % 100}", b"y" * 100, -1)) for i in range(1000, 1000 + n)]
    else:
        frames = [jute.encode_request(i, Op.GET_DATA, (f"/n{i % 100}", False)) for i in range(1000, 1000 + n)]
    batches = [b"".join(frames[j:j + batch]) for j in range(0, n, batch)]
    for _ in range(warmup // n if warmup else 0):
        for b in batches:
            conn.data_received(b)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
    best = None
    for _ in range(repeat):
        started = time.process_time()
        for b in batches:
            conn.data_received(b)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        took = (time.process_time() - started) / n * 1e6
        best = took if best is None else min(best, took)
    await server.stop()
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--op", choices=("set", "get"), default="set")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=0, help="unmeasured requests first (in multiples of --n)")
    a = p.parse_args()
    best = asyncio.run(run(a.op, a.n, a.repeat, warmup=a.warmup))
    if best is not None:
        print(f"{a.op}: {best:.2f} us of CPU per request (best of {a.repeat})")


if __name__ == "__main__":
    main()
