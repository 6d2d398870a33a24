"""Start-up time: from nothing to a client's first successful create.

    python benchmarks/startup.py [--repeat N] [--only NAME,...] [--name NAME]

For each set-up (zkpy in-process standalone and 3-node, zkpy processes standalone and
3-node, Apache ZooKeeper 3.8 standalone and 3-node), N times: the clock starts before the
server object is made (temp dirs and zoo.cfg included) and stops when a client's create of
/probe succeeds.  The client is the raw wire-protocol one (zkpy.testing.client.RawClient),
which dials every member in turn every 5 ms until one takes a session and the create, so the
time is not rounded to a harness's polling interval.  Prints and keeps a markdown table of
median, min and max seconds in benchmarks/results/<date>-<name>.md (see run.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from run import machine_info, write_results  # noqa: E402

from zkpy.testing import Ensemble, InProcessEnsemble, ZkpyServer  # noqa: E402
from zkpy.testing.client import RawClient  # noqa: E402
from zkpy.testing.external import ApacheZooKeeper, ZkpyProcess, apache_zookeeper_available  # noqa: E402


def probe(addresses: Callable[[], list[tuple[str, int]]], timeout: float = 120.0) -> None:
    """Until a create succeeds on one of the addresses (they may be unknown at first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for host, port in addresses():
            try:
                client = RawClient(host, port, io_timeout=2)
            except OSError:
                continue
            try:
                if client.create("/probe")[0] == 0:
                    return
            except OSError:
                pass
            finally:
                client.close()
        time.sleep(0.005)
    raise TimeoutError("no member took a create")


class _Unwaited:
    """A process server started without its harness's readiness polling: only the port."""

    def _wait_ready(self) -> None:
        pass


class _ZkpyProcess(_Unwaited, ZkpyProcess):
    pass


class _ApacheZooKeeper(_Unwaited, ApacheZooKeeper):
    pass


def _process(cls) -> Iterator[None]:
    server = cls()
    try:
        server.start()

        def addresses() -> list[tuple[str, int]]:
            if not server.port:
                server.port = server._reported_port()
            return [(server.host, server.port)] if server.port else []

        probe(addresses)
        yield
    finally:
        server.stop()


def _ensemble(make: Callable[[], Ensemble]) -> Iterator[None]:
    ens = make()
    try:
        for sid in ens.ids:
            ens.start_server(sid)
        probe(lambda: [("127.0.0.1", ens.client_ports[sid]) for sid in ens.ids])
        yield
    finally:
        ens.stop()


def _inprocess() -> Iterator[None]:
    with ZkpyServer() as zk:
        probe(lambda: [(zk.host, zk.port)])
        yield


SETUPS: dict[str, Callable[[], Iterator[None]]] = {
    "zkpy in-process standalone": _inprocess,
    "zkpy in-process 3-node": lambda: _ensemble(lambda: InProcessEnsemble(3)),
    "zkpy process standalone": lambda: _process(_ZkpyProcess),
    "zkpy process 3-node": lambda: _ensemble(lambda: Ensemble(3)),
    "zookeeper process standalone": lambda: _process(_ApacheZooKeeper),
    "zookeeper process 3-node": lambda: _ensemble(lambda: Ensemble(3, apache=True)),
}


def time_once(setup: Callable[[], Iterator[None]]) -> float:
    started = time.perf_counter()
    run = setup()
    next(run)  # serving, and a create went through
    elapsed = time.perf_counter() - started
    run.close()  # stop and clean up (not timed)
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="runs per set-up (default 5)")
    p.add_argument("--only", default="", help="comma-separated words a set-up's name must contain, e.g. in-process")
    p.add_argument("--name", default="startup", help="results file: benchmarks/results/<date>-<name>.md")
    args = p.parse_args()
    names = [n for n in SETUPS if all(w in n for w in args.only.split(",") if w)]
    if not apache_zookeeper_available():
        names = [n for n in names if not n.startswith("zookeeper")]
    load_before, started = os.getloadavg()[0], time.monotonic()
    runs: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.repeat):  # set-ups alternate, so that a busy moment does not hit one alone
        for name in names:
            runs[name].append(time_once(SETUPS[name]))
            print(f"{name:30} run {i + 1}: {runs[name][-1]:.3f} s", flush=True)
    zk = {n.split(" process ")[1]: statistics.median(v) for n, v in runs.items() if n.startswith("zookeeper")}
    lines = ["| set-up | median s | min s | max s | median / ZooKeeper's |", "|---|---:|---:|---:|---:|"]
    for name, times in runs.items():
        median = statistics.median(times)
        size = name.rsplit(" ", 1)[1]
        ratio = f"{median / zk[size]:.3f}" if size in zk and not name.startswith("zookeeper") else ""
        lines.append(f"| {name} | {median:.3f} | {min(times):.3f} | {max(times):.3f} | {ratio} |")
    header = ["# Start-up time: until a client's first create succeeds", ""] + machine_info() + [
        f"- command: `python benchmarks/startup.py {' '.join(sys.argv[1:])}`".rstrip(" `") + "`",
        f"- {args.repeat} runs per set-up, the set-ups alternating; from before the server object is made (temp "
        "dirs, zoo.cfg) to the first successful create of a raw client that retries every 5 ms on every member",
        "- zkpy in-process: servers on threads of the benchmark's process; process: `python -m zkpy serve` per "
        "member; Apache ZooKeeper: `java ... QuorumPeerMain` (standalone with zkpy.testing's JVM options: C1, "
        "SerialGC, -Xmx256m; 3-node as zkpy.testing.Ensemble runs it, -Xmx1000m); ensembles with tickTime=200",
        f"- wall time: {time.monotonic() - started:.0f} s; 1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (the machine is shared with other engineers' test runs: few runs, "
        "noisy numbers; compare within one file)",
        ""]
    write_results("\n".join(header + lines) + "\n", args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
