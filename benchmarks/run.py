"""Side-by-side benchmark: zkpy vs Apache ZooKeeper 3.8, same machine, same load, one run.

    python benchmarks/run.py [--duration S] [--warmup S] [--clients N] [--window W]
                             [--ops get,set,create,mixed] [--only zkpy|zookeeper]
                             [--loadgen java|raw] [--rounds N] [--recovery N] [--zk-heap SIZE] [--name NAME]

Starts Apache ZooKeeper standalone, then zkpy standalone (one at a time, each on a free
127.0.0.1 port with a fresh temp data dir, both with their default durability: fsync
before answering a write), pre-creates the benchmark znodes, and drives each op against
each server with the same load generator (benchmarks/java/ZkBench.java: the official
Java client's async API, compiled here with javac into a temp dir cached by source hash).
Prints a markdown table with ops/s, latency percentiles and the zkpy/ZooKeeper ratios,
and writes it with the machine's details to benchmarks/results/<date>-<name>.md.
See benchmarks/README.md for how to read it.

`--recovery N` adds a table: for each server, a fresh data dir gets exactly N creates (raw
wire protocol, benchmarks/loadgen.py `fill`), the server is stopped, and a restart on that
data dir is timed until it serves again (its znode count is checked against the one before).
3-node ensembles: benchmarks/ensemble.py.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from zkpy.testing.external import ApacheZooKeeper, ZkpyProcess, apache_zookeeper_classpath  # noqa: E402

OPS = ("get", "set", "create", "mixed")


class BenchZooKeeper(ApacheZooKeeper):
    """Apache ZooKeeper as zkServer.sh runs it: full JIT (C2) and the default collector.

    The test launcher stops at C1 (`-XX:TieredStopAtLevel=1`) and uses SerialGC, which
    starts faster but runs slower: not a fair opponent for a throughput comparison.
    """

    heap = "1000m"  # zkServer.sh's default; --zk-heap changes it

    def _command(self, cfg: str) -> list[str]:
        cmd = super()._command(cfg)
        drop = {"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"}
        return [(f"-Xmx{self.heap}" if c.startswith("-Xmx") else c) for c in cmd if c not in drop]


SERVERS = {"zookeeper": BenchZooKeeper, "zkpy": ZkpyProcess}


def _classpath() -> str:
    extra = [j for j in ("/usr/share/java/slf4j-api.jar",) if os.path.exists(j)]
    return ":".join([apache_zookeeper_classpath()] + extra)


def build_loadgen() -> str:
    """javac ZkBench.java into a temp dir keyed by the source's hash; returns the class dir."""
    src = os.path.join(HERE, "java", "ZkBench.java")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    out = os.path.join(tempfile.gettempdir(), f"zkpy-bench-{digest}")
    if os.path.exists(os.path.join(out, "ZkBench.class")):
        return out
    tmp = tempfile.mkdtemp(prefix="zkpy-bench-build-")
    try:
        subprocess.run(["javac", "-nowarn", "-cp", _classpath(), "-d", tmp, src], check=True, timeout=180)
        try:
            os.rename(tmp, out)
        except OSError:  # built concurrently by another run
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _java_cmd(build: str, *args: object) -> list[str]:
    return (["java", "-XX:-UsePerfData", "-Xms512m", "-Xmx1g", "-XX:+UseParallelGC", "-cp", f"{_classpath()}:{build}",
             "-Dlog4j.configuration=file:/dev/null", "ZkBench"] + [str(a) for a in args])


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _server_cpu_seconds(server) -> float:
    """CPU seconds of the server: one process (`server.pid`), or the sum over `server.pids`
    (an ensemble's members)."""
    pids = getattr(server, "pids", None) or [server.pid]
    return sum(_cpu_seconds(pid) for pid in pids)


def _generate(cmd: list[str], server, timeout: float) -> list[dict]:
    """Run a load generator; returns its JSON results, each with the server's and the generator's
    CPU use (% of one core) between the generator's "#start OP" and "#end OP" lines, or over the
    whole run."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
    drain.start()
    results, cpu = [], {}

    def sample() -> tuple[float, float, float]:
        return _server_cpu_seconds(server), _cpu_seconds(proc.pid), time.monotonic()

    def usage(mark: tuple[float, float, float]) -> tuple[float, float]:
        now = sample()
        return 100.0 * (now[0] - mark[0]) / (now[2] - mark[2]), 100.0 * (now[1] - mark[1]) / (now[2] - mark[2])

    mark = sample()
    try:
        for line in proc.stdout:
            if line.startswith("#start "):
                mark = sample()
            elif line.startswith("#end "):
                cpu[line.split()[1]] = usage(mark)
            elif line.startswith("{"):
                res = json.loads(line)
                res["server_cpu_pct"], res["loadgen_cpu_pct"] = cpu.get(res["op"]) or usage(mark)
                results.append(res)
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drain.join(5)
    if proc.returncode != 0:
        why = "timed out" if proc.returncode == -signal.SIGKILL else f"exit code {proc.returncode}"
        raise RuntimeError(f"load generator failed ({why}): {''.join(stderr)[-2000:]}")
    return results


def drive(build: str, server, ops: list[str], args: argparse.Namespace) -> dict[str, dict]:
    """Pre-create the znodes and run each op against `server`; returns {op: result}."""
    per_op = args.warmup + args.duration
    if args.loadgen == "raw":  # one process per op; each creates the znodes itself
        out = {}
        for op in ops:
            cmd = [sys.executable, os.path.join(HERE, "loadgen.py"), server.connect_string, op, str(args.clients),
                   str(args.window), str(args.warmup), str(args.duration), str(args.nodes), str(args.size)]
            out[op] = _generate(cmd, server, per_op + 60)[0]
        return out
    cmd = _java_cmd(build, server.connect_string, ",".join(ops), args.clients, args.window, args.warmup,
                    args.duration, args.nodes, args.size, args.prewarm)
    return {r["op"]: r for r in _generate(cmd, server, args.prewarm + per_op * len(ops) + 30 * (len(ops) + 1))}


def fill(server, txns: int, size: int, timeout: float) -> dict:
    """Exactly `txns` creates through benchmarks/loadgen.py (raw wire protocol, 200 in flight)."""
    cmd = [sys.executable, os.path.join(HERE, "loadgen.py"), server.connect_string, "fill", str(txns), "200", str(size)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"writing {txns} creates took more than {timeout:.0f} s") from None
    if out.returncode != 0:
        raise RuntimeError(f"writing {txns} creates failed: {out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["ops"] != txns or res["errors"]:
        raise RuntimeError(f"writing {txns} creates: {res}")
    return res


def _node_count(server) -> int:
    from zkpy.testing.external import four_letter_word
    for line in four_letter_word(server.host, server.port, "srvr", timeout=10).splitlines():
        if line.startswith("Node count:"):
            return int(line.split(":", 1)[1])
    return -1


def recovery_time(cls, txns: int, args: argparse.Namespace) -> dict:
    """Write exactly `txns` creates (no snapshot: snapCount is far above), stop the server (SIGTERM),
    and time a restart on the same data dir until it serves again; checks the node count after."""
    with tempfile.TemporaryDirectory(prefix="zkpy-recovery-") as data_dir:
        config = {"snapCount": str(max(txns * 10, 100_000))}
        server = cls(data_dir=data_dir, config=config, startup_timeout=60).start()
        try:
            written = fill(server, txns, args.size, timeout=args.recovery_timeout)
            before = _node_count(server)
        finally:
            server.stop(cleanup=False)
            shutil.rmtree(server.workdir, ignore_errors=True)
        t = time.monotonic()
        again = cls(data_dir=data_dir, config=config, startup_timeout=args.recovery_timeout)
        try:
            again.start()
            secs = time.monotonic() - t
            after = _node_count(again)
        finally:
            again.stop()
        if after != before:
            raise RuntimeError(f"{cls.name}: {before} znodes before the restart, {after} after")
        return {"txns": txns, "write_rate": written["ops_per_sec"], "seconds": secs, "nodes": after}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else ""


def table(results: dict, ops: list[str]) -> list[str]:
    lines = ["| op | server | ops/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU | loadgen CPU "
             "| ops/s zkpy/zk | p99 zkpy/zk |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for op in ops:
        zk, py = results.get((op, "zookeeper")), results.get((op, "zkpy"))
        for name, res in (("zookeeper", zk), ("zkpy", py)):
            if res is None:
                continue
            ratio = p99r = ""
            if name == "zkpy" and zk and py:
                ratio, p99r = _ratio(py["ops_per_sec"], zk["ops_per_sec"]), _ratio(py["p99_ms"], zk["p99_ms"])
            lines.append(f"| {op} | {name} | {res['ops_per_sec']:.0f} | {res['p50_ms']:.2f} | {res['p99_ms']:.2f} | "
                         f"{res['p999_ms']:.2f} | {res['errors']} | {res['server_cpu_pct']:.0f}% | {res['loadgen_cpu_pct']:.0f}% "
                         f"| {ratio} | {p99r} |")
    return lines


def machine_info() -> list[str]:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    try:
        commit = subprocess.run(["git", "-C", os.path.dirname(HERE), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        commit = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        cpu = "?"
    return [f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"- machine: nproc {os.cpu_count()} ({cpu}), {platform.system()} {platform.release()}",
            f"- Python {platform.python_version()} (zkpy at commit {commit or '?'}); {java}; Apache ZooKeeper 3.8 (Debian)"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per op and server (default 8)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each measurement (default 3)")
    p.add_argument("--prewarm", type=float, default=5.0,
                   help="seconds of unmeasured mixed load before the first op, for the JITs (default 5)")
    p.add_argument("--clients", type=int, default=4, help="client connections (default 4)")
    p.add_argument("--window", type=int, default=100, help="outstanding requests per connection (default 100)")
    p.add_argument("--nodes", type=int, default=1000, help="znodes read/written (default 1000)")
    p.add_argument("--size", type=int, default=100, help="bytes of data per znode (default 100)")
    p.add_argument("--ops", default="get,set,create", help=f"comma-separated, from {','.join(OPS)} (default get,set,create)")
    p.add_argument("--only", choices=sorted(SERVERS), help="benchmark one server only")
    p.add_argument("--loadgen", choices=["java", "raw"], default="java",
                   help="java: official Java client, async (default); raw: benchmarks/loadgen.py, pre-encoded wire protocol")
    p.add_argument("--rounds", type=int, default=1,
                   help="alternate the servers this many times and report each op's median round (default 1)")
    p.add_argument("--recovery", type=int, default=0, metavar="N",
                   help="also time a restart that replays a log of exactly N creates (raw generator)")
    p.add_argument("--recovery-timeout", type=float, default=300.0,
                   help="seconds allowed for writing the N creates, and for the restart (default 300)")
    p.add_argument("--zk-heap", default="1000m",
                   help="Apache ZooKeeper's -Xmx (default 1000m, as zkServer.sh; a recovery of millions of "
                        "znodes needs more)")
    p.add_argument("--name", default="standalone", help="results file: benchmarks/results/<date>-<name>.md")
    args = p.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    bad = [o for o in ops if o not in OPS]
    if bad:
        p.error(f"unknown op(s) {bad}; choose from {','.join(OPS)}")

    # SIGTERM/SIGHUP unwind like Ctrl-C, so the servers' context managers stop them and remove their dirs.
    def _terminate(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)

    BenchZooKeeper.heap = args.zk_heap
    build = build_loadgen() if args.loadgen == "java" else ""
    servers = [args.only] if args.only else ["zookeeper", "zkpy"]
    runs: dict[tuple[str, str], list[dict]] = {}
    started, load_before = time.monotonic(), os.getloadavg()[0]
    for rnd in range(args.rounds if ops else 0):  # --ops '' with --recovery N: the recovery table only
        for name in servers:
            with SERVERS[name]() as server:
                for op, res in drive(build, server, ops, args).items():
                    runs.setdefault((op, name), []).append(res)
                    print(f"{name:9} {op:6} {res['ops_per_sec']:>9.0f} ops/s  p50 {res['p50_ms']:7.2f} ms  "
                          f"p99 {res['p99_ms']:7.2f} ms  p99.9 {res['p999_ms']:7.2f} ms  errors {res['errors']}  "
                          f"CPU server {res['server_cpu_pct']:.0f}% loadgen {res['loadgen_cpu_pct']:.0f}%"
                          + (f"  (round {rnd + 1})" if args.rounds > 1 else ""), flush=True)
    # per op and server, the round with the median throughput (the upper one of an even count)
    results = {k: sorted(v, key=lambda r: r["ops_per_sec"])[len(v) // 2] for k, v in runs.items()}
    lines = table(results, ops) if ops else []
    if args.recovery:
        lines += ["", "| restart after a log of N creates | txns | write rate (creates/s) | znodes after restart "
                  "| seconds until serving | seconds zkpy/zk |", "|---|---:|---:|---:|---:|---:|"]
        rec = {}
        for name in servers:
            rec[name] = r = recovery_time(SERVERS[name], args.recovery, args)
            ratio = _ratio(r["seconds"], rec["zookeeper"]["seconds"]) if name == "zkpy" and "zookeeper" in rec else ""
            lines.append(f"| {name} | {r['txns']} | {r['write_rate']:.0f} | {r['nodes']} | {r['seconds']:.2f} | {ratio} |")
            print(lines[-1], flush=True)
    gen = ("official Java client (ZooKeeper 3.8), async API" if args.loadgen == "java"
           else "benchmarks/loadgen.py (Python, pre-encoded wire protocol)")
    header = ["# zkpy vs Apache ZooKeeper 3.8: standalone throughput and latency", ""] + machine_info() + [
        f"- command: `python benchmarks/run.py {' '.join(sys.argv[1:])}`".rstrip(" `") + "`",
        f"- load: {gen}; {args.clients} connections x {args.window} requests in flight; "
        f"per server one generator process runs {args.prewarm:g} s of unmeasured mixed load (JIT warm-up), then per op "
        f"{args.warmup:g} s warm-up and {args.duration:g} s measured; "
        f"{args.nodes} znodes of {args.size} bytes"
        + (f"; {args.rounds} rounds alternating the servers, each cell is the round with the median ops/s"
           if args.rounds > 1 else ""),
        "- servers: standalone, one at a time, fresh data dir on the same disk, default durability "
        f"(each write fsynced before it is answered); Apache ZooKeeper with -Xmx{args.zk_heap}, default JIT and GC",
        f"- the load generator runs on the same {os.cpu_count()} cores as the server and competes with it for CPU; "
        "'server CPU' and 'loadgen CPU' are each process's CPU use during the measured interval "
        "(100% = one core, 200% = the whole machine)",
        f"- wall time: {time.monotonic() - started:.0f} s; 1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (the 'before' is other work: well above 0.5, the machine was shared "
        "and the numbers are noisy)",
        ""]
    write_results("\n".join(header + lines) + "\n", args.name)
    return 0



def write_results(text: str, name: str) -> None:
    """Print the report and keep it as results/<date>-<name>.md."""
    print()
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"{datetime.date.today()}-{name}.md")
    with open(path, "w") as f:
        f.write(text)
    print(f"written to {os.path.relpath(path)}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
