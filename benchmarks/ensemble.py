"""Side-by-side benchmark of 3-node ensembles: zkpy vs Apache ZooKeeper 3.8, same machine, one run.

    python benchmarks/ensemble.py [--ops get,set,mixed] [--duration S] [--warmup S] [--prewarm S]
                                  [--clients N] [--window W] [--loadgen raw|java] [--tick-time MS]
                                  [--repeat N] [--rounds N] [--failover-tick-times MS,...]
                                  [--only zkpy|zookeeper] [--name NAME]

For each server in turn (Apache ZooKeeper, then zkpy) it starts a 3-node ensemble on free
127.0.0.1 ports (`zkpy.testing.ensemble.Ensemble`, fresh temp data dirs, the same zoo.cfg
values for both, default durability: every txn fsynced by a quorum before it is answered), and

1. throughput: drives each op with the raw wire-protocol generator (benchmarks/loadgen.py),
   connection i on member i mod 3, and reports ops/s, p50/p99/p99.9 latency, errors, and the
   CPU of the three server processes together, as benchmarks/run.py does;
2. leader failover: on a fresh ensemble, one writer does sequential creates through a
   follower; the leader is SIGKILLed and the time from the kill to the first acknowledged
   create sent after it is measured; the killed member is restarted and the ensemble waits
   until it serves again; `--rounds` times (default 5).

Prints markdown tables with zkpy/ZooKeeper ratios and writes them, with the machine's details,
to benchmarks/results/<date>-<name>.md (default name: ensemble). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import run  # noqa: E402  (benchmarks/run.py: generator plumbing, table, machine details)
from zkpy.testing.ensemble import Ensemble  # noqa: E402
from zkpy.testing.external import four_letter_word  # noqa: E402

OPS = ("get", "set", "create", "mixed")
INIT_LIMIT, SYNC_LIMIT = 10, 5  # what Ensemble writes into every zoo.cfg (ZooKeeper's sample values)


class BenchEnsemble(Ensemble):
    """`Ensemble` (Apache ZooKeeper members run with zkServer.sh's heap and a console log),
    with what the benchmark reads off it."""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def log_tail(self, sid: int, lines: int = 15) -> str:
        return run_tail(os.path.join(self.base, f"server{sid}", "server.log"), lines)


def run_tail(path: str, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""


# ---------------------------------------------------------------- throughput


def throughput(ens: BenchEnsemble, ops: list[str], args: argparse.Namespace, build: str) -> dict[str, dict]:
    """Each op through run.drive(): connections spread over the members; CPU summed over the members."""
    addresses = [ens.address(sid) for sid in ens.ids]
    target = types.SimpleNamespace(pids=ens.pids, pid=None,
                                   connect_string=(",".join(addresses) if args.loadgen == "raw" else ";".join(addresses)))
    if args.loadgen == "raw" and args.prewarm > 0:  # unmeasured mixed load first, for the JVM's JIT (both servers get it)
        warm = argparse.Namespace(**{**vars(args), "warmup": 0.0, "duration": args.prewarm})
        run.drive(build, target, ["mixed"], warm)
    return run.drive(build, target, ops, args)


# ---------------------------------------------------------------- leader failover

_REPLY = struct.Struct(">iqi")  # xid, zxid, err (after the length)


class Writer(threading.Thread):
    """Sequential creates over the raw wire protocol, reconnecting (same session) when a server drops it.

    Like the official client it keeps its session across servers (session id, password, last zxid
    seen), gives up on a server after 2/3 of the session timeout without a reply, and after
    trying every server in turn pauses (here `pause` s, 20 ms: the measurement is of the servers,
    not of a client's back-off). Each create has a new path, so a create whose fate is unknown is
    never retried. `acks` holds (sent, acknowledged) monotonic times of every create answered OK.
    """

    def __init__(self, addresses: list[str], session_timeout_ms: int = 30000, pause: float = 0.02) -> None:
        super().__init__(daemon=True, name="failover-writer")
        self.addresses = addresses
        self.session_timeout_ms = session_timeout_ms
        self.pause = pause
        self.index = 0
        self.prefer: int | None = None  # index to (re)connect to next
        self.connected_to: int | None = None
        self.sock: socket.socket | None = None
        self.session, self.passwd, self.last_zxid = 0, b"\0" * 16, 0
        self.read_timeout = session_timeout_ms * 2 / 3000
        self.acks: list[tuple[float, float]] = []
        self.errors: list[str] = []
        self.reconnects = self.expiries = 0
        self.halt = threading.Event()
        self.failure: BaseException | None = None
        self.seq = 0

    # --- wire helpers
    def _recv_frame(self, s: socket.socket) -> bytes:
        hdr = self._recv_exact(s, 4)
        return self._recv_exact(s, struct.unpack(">i", hdr)[0])

    @staticmethod
    def _recv_exact(s: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the server")
            buf += chunk
        return bytes(buf)

    def _handshake(self, index: int) -> bool:
        host, port = self.addresses[index].rsplit(":", 1)
        try:
            s = socket.create_connection((host, int(port)), timeout=self.read_timeout)
        except OSError:
            return False
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            body = (struct.pack(">iqiq", 0, self.last_zxid, self.session_timeout_ms, self.session)
                    + struct.pack(">i", 16) + self.passwd + b"\0")
            s.sendall(struct.pack(">i", len(body)) + body)
            resp = self._recv_frame(s)
            _proto, timeout, session = struct.unpack_from(">iiq", resp)
            if timeout <= 0:  # the session expired: start a new one (next attempt)
                self.expiries += 1
                self.session, self.passwd = 0, b"\0" * 16
                s.close()
                return False
            (n,) = struct.unpack_from(">i", resp, 16)
            self.session, self.passwd = session, resp[20:20 + n]
            self.read_timeout = timeout * 2 / 3000
            s.settimeout(self.read_timeout)
        except (OSError, struct.error):
            s.close()
            return False
        self.sock, self.connected_to = s, index
        return True

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.connected_to = None, None

    def _connect(self) -> None:
        self.reconnects += 1
        while not self.halt.is_set():
            start = self.prefer if self.prefer is not None else self.index
            self.prefer = None
            for k in range(len(self.addresses)):
                i = (start + k) % len(self.addresses)
                if self._handshake(i):
                    self.index = (i + 1) % len(self.addresses)  # next time, start after this one
                    return
            time.sleep(self.pause)

    def _create(self, path: str) -> int:
        self.seq += 1
        xid = self.seq
        acl = struct.pack(">ii", 1, 31) + struct.pack(">i", 5) + b"world" + struct.pack(">i", 6) + b"anyone"
        p = path.encode()
        body = struct.pack(">ii", xid, 1) + struct.pack(">i", len(p)) + p + struct.pack(">i", 1) + b"w" + acl + struct.pack(">i", 0)
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        while True:
            frame = self._recv_frame(self.sock)
            rxid, zxid, err = _REPLY.unpack_from(frame)
            if zxid > 0:
                self.last_zxid = max(self.last_zxid, zxid)
            if rxid == xid:
                return err

    def run(self) -> None:
        try:
            self._connect()
            if self.sock is not None:
                try:
                    self._create("/failover")
                except OSError:
                    self._disconnect()
            n = 0
            while not self.halt.is_set():
                if self.sock is None or (self.prefer is not None and self.prefer != self.connected_to):
                    self._disconnect()
                    self._connect()
                    continue
                n += 1
                sent = time.monotonic()
                try:
                    err = self._create(f"/failover/w{n}")
                except OSError:  # dropped (the server left the quorum, or died), or timed out: next server
                    self._disconnect()
                    continue
                if err == 0:
                    self.acks.append((sent, time.monotonic()))
                elif err != -110:  # NODEEXISTS cannot happen (new path each time); anything else is noted
                    self.errors.append(f"create error {err}")
        except BaseException as e:  # reported by the main thread
            self.failure = e
        finally:
            self._disconnect()

    def first_ack_after(self, t0: float, timeout: float) -> float | None:
        """Monotonic time of the first acknowledgement of a create sent at or after `t0`."""
        deadline = time.monotonic() + timeout
        k = 0
        while time.monotonic() < deadline and self.failure is None:
            acks = self.acks
            while k < len(acks):
                if acks[k][0] >= t0:
                    return acks[k][1]
                k += 1
            time.sleep(0.002)
        return None


def _mode(address: str) -> str | None:
    host, port = address.rsplit(":", 1)
    try:
        for line in four_letter_word(host, int(port), "srvr", timeout=1).splitlines():
            if line.startswith("Mode: "):
                return line[6:]
    except OSError:
        return None
    return None


def failover(ens: BenchEnsemble, rounds: int, timeout: float, log) -> list[dict]:
    """`rounds` times: move the writer to a follower, SIGKILL the leader, time the next acknowledged write."""
    addresses = [ens.address(sid) for sid in ens.ids]
    writer = Writer(addresses)
    writer.start()
    out = []
    try:
        for rnd in range(rounds):
            leader = ens.leader()
            if leader is None:
                raise RuntimeError(f"no leader before round {rnd + 1}: { {s: ens.mode(s) for s in ens.ids} }")
            follower = next(s for s in ens.ids if s != leader)
            # Move the writer to the follower. ZooKeeper refuses a session whose client has seen a later
            # zxid than the server has (a follower a few txns behind), and the writer then goes on to
            # another member, as the official client does: try again until it sticks.
            deadline = time.monotonic() + 30
            while True:
                writer.prefer = ens.ids.index(follower)
                t = time.monotonic()
                acked = writer.first_ack_after(t, max(0.1, deadline - t))
                if acked is not None and writer.connected_to == ens.ids.index(follower):
                    break
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"the writer made no progress through server {follower} before round "
                                       f"{rnd + 1} (errors {writer.errors[-3:]}, failure {writer.failure!r})")
                time.sleep(0.1)
            time.sleep(0.5)  # steady writes
            before = len(writer.acks)
            survivors = [s for s in ens.ids if s != leader]
            t0 = time.monotonic()
            ens.kill(leader)
            # a new leader: the first survivor whose srvr says so (polled every 20 ms)
            elected = None
            while elected is None and time.monotonic() - t0 < timeout:
                for s in survivors:
                    if _mode(ens.address(s)) == "leader":
                        elected = time.monotonic() - t0
                        break
                else:
                    time.sleep(0.02)
            acked = writer.first_ack_after(t0, max(1.0, timeout - (time.monotonic() - t0)))
            res = {"round": rnd + 1, "killed": leader, "new_leader": ens.leader(),
                   "elected": elected, "failover": None if acked is None else acked - t0,
                   "writes_before": before}
            # bring the killed member back, and wait until all three serve
            t1 = time.monotonic()
            ens.start_server(leader)
            ens.wait_serving(timeout=timeout)
            res["rejoin"] = time.monotonic() - t1
            out.append(res)
            log(res)
            if acked is None:
                raise RuntimeError(f"no write acknowledged within {timeout:.0f} s of killing the leader "
                                   f"(errors {writer.errors[-3:]}, failure {writer.failure!r})")
        return out
    finally:
        writer.halt.set()
        writer.join(writer.read_timeout + 5)
        if out:
            out[-1]["writer"] = {"acks": len(writer.acks), "errors": len(writer.errors),
                                 "reconnects": writer.reconnects, "expiries": writer.expiries}


# ---------------------------------------------------------------- report

_LEVEL = re.compile(r"^\S+ \S+ - (WARN|ERROR|FATAL) +\[.*?\] - (.*)$|^\S+ \[(warning|error|critical) *\] (.*)$"
                    r"|^(Traceback)( .*)$")


def collect_warnings(ens: BenchEnsemble, name: str, phase: str, out: list[str], limit: int = 4) -> None:
    """Count the WARN/ERROR lines (ZooKeeper) or warning/error events (zkpy) of the members' logs,
    by message (numbers and addresses folded), into markdown table rows."""
    counts: dict[str, int] = {}
    for sid in ens.ids:
        try:
            with open(os.path.join(ens.base, f"server{sid}", "server.log"), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        for line in text.splitlines():
            m = _LEVEL.match(line)
            if m:
                level, msg = next((m.group(i), m.group(i + 1)) for i in (1, 3, 5) if m.group(i))
                msg = re.sub(r"0x[0-9a-f]+|\d+", "N", msg.strip())[:160].replace("|", "/")
                key = f"{level.upper()}: {msg}"
                counts[key] = counts.get(key, 0) + 1
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]:
        out.append(f"| {name} | {phase} | {n} | `{key}` |")
    if len(counts) > limit:
        out.append(f"| {name} | {phase} | {sum(sorted(counts.values())[:-limit])} | ({len(counts) - limit} other messages) |")



def _fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def failover_tables(fo: dict[str, list[dict]]) -> list[str]:
    lines = [("| server | rounds | failover median s | failover max s | new leader serving, median s "
              "| killed member serving again, median s | writer reconnects | session expiries | write errors "
              "| median zkpy/zk | max zkpy/zk |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for name in ("zookeeper", "zkpy"):
        rs = fo.get(name)
        if not rs:
            continue
        times = [r["failover"] for r in rs if r["failover"] is not None]
        elected = [r["elected"] for r in rs if r["elected"] is not None]
        summary[name] = (statistics.median(times) if times else None, max(times) if times else None)
        w = rs[-1].get("writer", {})
        med_r = max_r = ""
        if name == "zkpy" and "zookeeper" in summary and summary["zkpy"][0] and summary["zookeeper"][0]:
            med_r = run._ratio(summary["zkpy"][0], summary["zookeeper"][0])
            max_r = run._ratio(summary["zkpy"][1], summary["zookeeper"][1])
        lines.append(f"| {name} | {len(rs)} | {_fmt(summary[name][0])} | {_fmt(summary[name][1])} | "
                     f"{_fmt(statistics.median(elected) if elected else None)} | "
                     f"{_fmt(statistics.median(r['rejoin'] for r in rs))} | {w.get('reconnects', '?')} | "
                     f"{w.get('expiries', '?')} | {w.get('errors', '?')} | {med_r} | {max_r} |")
    lines += ["", "Each round (seconds after the SIGKILL of the leader):", "",
              ("| server | round | killed | new leader | new leader serving | first acknowledged write | "
               "killed member serving again (after its restart) |"), "|---|---:|---:|---:|---:|---:|---:|"]
    for name in ("zookeeper", "zkpy"):
        for r in fo.get(name, []):
            lines.append(f"| {name} | {r['round']} | {r['killed']} | {r['new_leader']} | {_fmt(r['elected'])} | "
                         f"{_fmt(r['failover'])} | {_fmt(r['rejoin'])} |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", default="get,set,mixed", help=f"comma-separated, from {','.join(OPS)} (default get,set,mixed)")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per op and server (default 8)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each measurement (default 3)")
    p.add_argument("--prewarm", type=float, default=10.0,
                   help="seconds of unmeasured mixed load before the first op, for the JITs of three JVMs (default 10)")
    p.add_argument("--clients", type=int, default=6, help="client connections, spread over the members (default 6)")
    p.add_argument("--window", type=int, default=50, help="outstanding requests per connection (default 50)")
    p.add_argument("--nodes", type=int, default=1000, help="znodes read/written (default 1000)")
    p.add_argument("--size", type=int, default=100, help="bytes of data per znode (default 100)")
    p.add_argument("--loadgen", choices=["raw", "java"], default="raw",
                   help="raw: benchmarks/loadgen.py, pre-encoded wire protocol (default); java: the official client")
    p.add_argument("--tick-time", type=int, default=2000,
                   help=f"tickTime of both ensembles in ms (default 2000; initLimit={INIT_LIMIT}, syncLimit={SYNC_LIMIT})")
    p.add_argument("--repeat", type=int, default=2,
                   help="alternate the servers' throughput tests this many times; each cell is the repeat with the "
                        "median ops/s, the upper one of an even count (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="leader kills per server and tick time (default 5; 0: no failover test)")
    p.add_argument("--failover-tick-times", default="2000,200",
                   help="run the failover test once per tickTime in this list (default 2000,200: ZooKeeper's "
                        "default, and the tick of zkpy's tests)")
    p.add_argument("--failover-timeout", type=float, default=60.0,
                   help="seconds a round may take to elect, to acknowledge a write, and to bring the killed member back")
    p.add_argument("--zk-heap", default="1000m", help="each Apache ZooKeeper member's -Xmx (default 1000m, as zkServer.sh)")
    p.add_argument("--only", choices=["zookeeper", "zkpy"], help="benchmark one server only")
    p.add_argument("--name", default="ensemble", help="results file: benchmarks/results/<date>-<name>.md")
    args = p.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    bad = [o for o in ops if o not in OPS]
    if bad:
        p.error(f"unknown op(s) {bad}; choose from {','.join(OPS)}")
    # `python -m zkpy serve` must find this checkout's package whatever the cwd
    os.environ["PYTHONPATH"] = ROOT + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")

    def _terminate(signum, frame):  # unwind like Ctrl-C, so that the finally clauses stop the servers
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)

    build = run.build_loadgen() if args.loadgen == "java" else ""
    servers = [args.only] if args.only else ["zookeeper", "zkpy"]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    started, load_before = time.monotonic(), os.getloadavg()[0]
    fo: dict[int, dict[str, list[dict]]] = {}
    startup: dict[tuple[str, int], list[float]] = {}
    warnings: list[str] = []
    try:
        tick_times = [int(t) for t in args.failover_tick_times.split(",") if t]
    except ValueError:
        p.error("--failover-tick-times: a comma-separated list of milliseconds")

    def new_ensemble(name: str, tick: int) -> BenchEnsemble:
        t = time.monotonic()
        ens = BenchEnsemble(3, tick_time=tick, apache=(name == "zookeeper"), startup_timeout=120,
                            apache_heap=args.zk_heap).start()
        startup.setdefault((name, tick), []).append(time.monotonic() - t)
        print(f"{name:9} ensemble (tickTime {tick}) serving after {startup[(name, tick)][-1]:.1f} s "
              f"(leader: server {ens.leader()})", flush=True)
        return ens

    phase_loads: list[str] = []

    def phase(label: str) -> None:
        phase_loads.append(f"{label} {os.getloadavg()[0]:.1f}")

    runs: dict[tuple[str, str], list[dict]] = {}
    for rep in range(args.repeat if ops else 0):  # throughput: the servers alternate `--repeat` times
        for name in servers:
            phase(f"{name} throughput{f' {rep + 1}' if args.repeat > 1 else ''}")
            ens = new_ensemble(name, args.tick_time)
            try:
                for op, res in throughput(ens, ops, args, build).items():
                    runs.setdefault((op, name), []).append(res)
                    print(f"{name:9} {op:6} {res['ops_per_sec']:>9.0f} ops/s  p50 {res['p50_ms']:7.2f} ms  "
                          f"p99 {res['p99_ms']:7.2f} ms  p99.9 {res['p999_ms']:7.2f} ms  errors {res['errors']}  "
                          f"CPU servers {res['server_cpu_pct']:.0f}% loadgen {res['loadgen_cpu_pct']:.0f}%"
                          + (f"  (repeat {rep + 1})" if args.repeat > 1 else ""), flush=True)
            finally:
                collect_warnings(ens, name, f"throughput {rep + 1}, tickTime {args.tick_time}", warnings)
                ens.stop()
    # per op and server, the repeat with the median throughput (the upper one of an even count), as run.py
    results = {k: sorted(v, key=lambda r: r["ops_per_sec"])[len(v) // 2] for k, v in runs.items()}
    for name in servers:
        for tick in (tick_times if args.rounds else []):
            phase(f"{name} failover {tick}")
            ens = new_ensemble(name, tick)
            try:
                fo.setdefault(tick, {})[name] = failover(ens, args.rounds, args.failover_timeout, lambda r, n=name, t=tick: print(
                    f"{n:9} failover (tickTime {t}) round {r['round']}: killed {r['killed']}, new leader "
                    f"{r['new_leader']} serving after {_fmt(r['elected'])} s, first write after {_fmt(r['failover'])} s; "
                    f"member {r['killed']} serving again {_fmt(r['rejoin'])} s after its restart", flush=True))
            except BaseException:
                for sid in ens.ids:
                    print(f"--- {name} server {sid} log (tail) ---\n{ens.log_tail(sid)}", file=sys.stderr)
                raise
            finally:
                collect_warnings(ens, name, f"failover, tickTime {tick}", warnings)
                ens.stop()

    lines = []
    if ops:
        lines += ["## Throughput and latency", ""] + run.table(results, ops)
    for tick, by_server in fo.items():
        lines += ["", f"## Leader failover, tickTime={tick} (initLimit={INIT_LIMIT}, syncLimit={SYNC_LIMIT})", ""]
        lines += failover_tables(by_server)
    if warnings:
        lines += ["", "## Warnings and errors in the servers' logs", "", "| server | phase | count | message |",
                  "|---|---|---:|---|"] + warnings
    gen = ("benchmarks/loadgen.py (Python, pre-encoded wire protocol)" if args.loadgen == "raw"
           else "official Java client (ZooKeeper 3.8), async API (benchmarks/java/ZkBench.java)")
    cfg = (f"zoo.cfg the same for both: tickTime={args.tick_time} for the throughput test"
           + (f", {'/'.join(map(str, tick_times))} for the failover tests" if args.rounds else "")
           + f", initLimit={INIT_LIMIT}, syncLimit={SYNC_LIMIT}, forceSync default (yes), snapCount default, "
           "4lw.commands.whitelist=*, admin.enableServer=false, server.1-3 on 127.0.0.1")
    header = ["# zkpy vs Apache ZooKeeper 3.8: 3-node ensembles, throughput, latency and leader failover", ""]
    header += run.machine_info() + [
        f"- command: `python benchmarks/ensemble.py {' '.join(sys.argv[1:])}`".rstrip(" `") + "`",
        f"- `uptime` before the run: {uptime}",
        (f"- ensembles: 3 members each on 127.0.0.1, all on this machine's {os.cpu_count()} cores, one server at a "
         "time, fresh data dirs on the same disk, default durability (forceSync: each txn fsynced by a quorum before "
         f"it is answered); {cfg}; Apache ZooKeeper with -Xmx{args.zk_heap}, default JIT and GC"),
        "- ensemble start until one leader and two followers serve, seconds: "
        + "; ".join(f"{n} (tickTime {tick}) {', '.join(f'{t:.1f}' for t in ts)}" for (n, tick), ts in startup.items()),
    ]
    if ops:
        header.append(
            f"- load: {gen}; {args.clients} connections x {args.window} requests in flight, connection i on member "
            f"i mod 3 (the leader has a third of them); {args.prewarm:g} s of unmeasured mixed load, then per op "
            f"{args.warmup:g} s warm-up and {args.duration:g} s measured; {args.nodes} znodes of {args.size} bytes; "
            + (f"{args.repeat} repeats alternating the servers (a fresh ensemble each), each cell is the repeat "
               "with the median ops/s (the upper one of an even count); " if args.repeat > 1 else "") +
            "'server CPU' is the sum over the three members (100% = one core), measured like 'loadgen CPU' "
            "over the measured interval")
    if fo:
        header.append(
            f"- failover: a fresh ensemble per server; one writer (raw wire protocol, sequential creates, one "
            f"session of 30 s moved between members as the official client does, 20 ms pause after trying every "
            f"member) connected to a follower; per round the leader is SIGKILLed and 'first acknowledged write' is "
            f"the time from the kill to the acknowledgement of the first create sent after it; the killed member "
            f"is then restarted and the next round waits until all three serve; {args.rounds} rounds per tickTime; "
            "'new leader serving' is when a survivor's srvr first says 'Mode: leader' (polled every 20 ms)")
    header += [
        f"- wall time: {time.monotonic() - started:.0f} s; 1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (the 'before' is other work: well above 0.5, the machine was shared "
        "and the numbers are noisy); at the start of each phase (the benchmark's own previous phase included): "
        + ", ".join(phase_loads),
        ""]
    run.write_results("\n".join(header + lines) + "\n", args.name)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
