"""Fuzzing live zkpy servers over real sockets, with oracles that say whether it hurt.

    with Ensemble(1, settings=fuzz.SETTINGS) as ens:
        report = fuzz.run(ens, frames=20_000, seed=1)     # client port of a standalone server
    with Ensemble(3, settings=fuzz.SETTINGS) as ens:
        report = fuzz.run(ens, frames=20_000, seed=1, port="peer")   # impostors on quorum ports
    assert report.ok, report.text()

`zkpy fuzz --frames 1000000` does the same from the command line (both ports).

Cases come from zkpy/testing/fuzzcases.py, a pure function of (seed, index): many
connections run in parallel, and a failure saves the cases that were in flight (bytes,
seed, index) so they can be replayed (`zkpy fuzz --replay DIR`).  While the fuzz runs:

- a canary kazoo session (authenticated, owner of /canary, which the fuzzers may only read)
  sets a znode, sees its watch fire and reads the value back, over and over; its session
  must never change or be suspended, and its ephemeral must stay;
- a janitor (the super user) deletes what fuzzed writes leave outside /canary, so that the
  tree, and with it memory, stays bounded by what is live;
- the RSS of every server process is sampled from /proc: the maximum must stay under a bound
  and the second half of the run must not grow past the first half's peak by more than a
  margin (a plateau, not a slope);
- at the end: every member alive, ensembles still led by the same leader and applying
  writes with identical replicas, no connection left hanging after the fuzzer's EOF, and no
  traceback, "Exception in callback" or flood of lines (a bound per second) in the logs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from kazoo.client import KazooClient
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from .fuzzcases import Case, client_case, peer_case

SUPER_PASSWORD = "fuzz-super"
CANARY_USER = ("canary", "canary-secret")
SETTINGS = {  # what a fuzzed server needs: the janitor's super user, room for the fuzzers' connections
    "DigestAuthenticationProvider.superDigest":
        "super:" + base64.b64encode(hashlib.sha1(f"super:{SUPER_PASSWORD}".encode()).digest()).decode(),
    "maxClientCnxns": "200",
}
DEFAULT_MAX_FRAME = 0xFFFFF  # jute.maxbuffer's default, which Ensemble's members keep
EOF_TIMEOUT = 20.0  # a server must close a connection this long after the fuzzer's EOF
LOG_LINES_PER_SECOND = 50  # more is a log flood
# Lifecycle lines (zkpy/logs.py): one per connection or session, as ZooKeeper logs them, not one
# per bad frame, so not counted as a flood (a fuzzer opens hundreds of connections a second).
_LIFECYCLE = ("] session expired ", "] client connected ", "] client disconnected ", "] session established ",
              "] session closed ", "] invalid session ")


@dataclass
class Report:
    port: str
    seed: int
    frames: int = 0
    connections: int = 0
    kinds: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    canary_rounds: int = 0
    canary_max_latency: float = 0.0
    rss_samples: dict[int, list[tuple[float, int]]] = field(default_factory=dict)  # sid -> [(t, bytes)]
    failures: list[str] = field(default_factory=list)
    saved: str | None = None
    log_lines: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def max_rss(self) -> int:
        return max((b for s in self.rss_samples.values() for _, b in s), default=0)

    def text(self) -> str:
        rss = ", ".join(f"{sid}: {_rss_profile(s)}" for sid, s in sorted(self.rss_samples.items()))
        lines = [(f"fuzz {self.port} port, seed {self.seed}: {self.frames} frames in {self.connections} connections, "
                  f"{self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.0f} frames/s)"),
                 f"  cases: {dict(sorted(self.kinds.items()))}",
                 f"  canary: {self.canary_rounds} rounds of set/watch/get, max {self.canary_max_latency * 1000:.0f} ms",
                 f"  RSS (MB at 0/25/50/75/100 % of the run, max) by member: {rss}",
                 f"  server log lines: {self.log_lines}",
                 f"  failures: {len(self.failures)}"] + [f"    {f}" for f in self.failures[:20]]
        if self.saved:
            lines.append(f"  cases in flight saved to {self.saved} (replay: zkpy fuzz --replay {self.saved})")
        return "\n".join(lines)


def _rss_profile(samples: list[tuple[float, int]]) -> str:
    if not samples:
        return "-"
    picks = [samples[min(len(samples) - 1, int(q * (len(samples) - 1)))][1] for q in (0, 0.25, 0.5, 0.75, 1)]
    return "/".join(f"{b / 2**20:.0f}" for b in picks) + f" max {max(b for _, b in samples) / 2**20:.0f}"


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process, from /proc (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# ------------------------------------------------------------ sending cases


async def _send_case(host: str, port: int, case: Case, report: Report) -> None:
    """Send a case's chunks, then EOF; read (and drop) what the server answers until it closes."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except (TimeoutError, OSError) as e:
        report.failures.append(f"case {case.index}: cannot connect to {host}:{port}: {e!r}")
        return
    drained = asyncio.ensure_future(_read_to_eof(reader))
    try:
        for chunk in case.chunks:
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
    except (OSError, RuntimeError):
        pass  # the server closed first: it may
    try:
        await asyncio.wait_for(drained, EOF_TIMEOUT)
    except TimeoutError:
        report.failures.append(f"case {case.index} ({case.kind}): connection still open {EOF_TIMEOUT:.0f} s "
                               "after the fuzzer's EOF")
    finally:
        writer.close()


async def _read_to_eof(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(1 << 16):
            pass
    except OSError:
        pass


async def _drive(cases: Iterator[Case], address: dict[int, tuple[str, int]], workers: int, report: Report,
                 in_flight: deque, stop: threading.Event, progress: bool) -> None:
    shown = [time.monotonic()]

    async def worker() -> None:
        for case in cases:
            if stop.is_set():
                return
            in_flight.append(case)
            report.frames += case.frames
            report.connections += 1
            report.kinds[case.kind] += 1
            await _send_case(*address[case.member], case, report)
            if progress and time.monotonic() - shown[0] >= 10:
                shown[0] = time.monotonic()
                print(f"  {report.frames} frames, {report.connections} connections, "
                      f"{len(report.failures)} failures", flush=True)

    await asyncio.gather(*(worker() for _ in range(workers)))


# ------------------------------------------------------------ the canary and the janitor


class _Canary(threading.Thread):
    """A session that must not notice the fuzz: set, watch fires, read back the same, forever."""

    def __init__(self, hosts: str, report: Report) -> None:
        super().__init__(daemon=True, name="fuzz-canary")
        self.report = report
        self.stopping = threading.Event()
        self.client = KazooClient(hosts, timeout=15, auth_data=[("digest", ":".join(CANARY_USER))])
        self.states: list[str] = []

    def setup(self) -> None:
        c = self.client
        c.start(30)
        c.add_listener(lambda state: self.states.append(str(state)))
        acl = [make_digest_acl(*CANARY_USER, all=True), ACL(Permissions.READ, Id("world", "anyone"))]
        c.ensure_path("/fuzz")
        if not c.exists("/canary"):
            c.create("/canary", b"", acl=acl)
            c.create("/canary/w", b"0", acl=acl)
        c.create("/canary/eph", b"", acl=acl, ephemeral=True)
        self.session = c.client_id

    def run(self) -> None:
        c, n = self.client, 0
        while not self.stopping.is_set():
            n += 1
            try:
                fired: list = []
                seen = threading.Event()
                _wait(c.get_async("/canary/w", watch=lambda event, fired=fired, seen=seen: (fired.append(event),
                                                                                            seen.set())))
                t = time.monotonic()
                _wait(c.set_async("/canary/w", str(n).encode()))
                if not seen.wait(15):
                    self._fail(f"round {n}: the canary's data watch did not fire in 15 s")
                elif (fired[0].type, fired[0].path) != ("CHANGED", "/canary/w"):
                    self._fail(f"round {n}: the canary's watch fired with {fired[0]}")
                elif _wait(c.get_async("/canary/w"))[0] != str(n).encode():
                    self._fail(f"round {n}: the canary read back another value")
                elif _wait(c.exists_async("/canary/eph")) is None:
                    self._fail(f"round {n}: the canary's ephemeral is gone")
                self.report.canary_max_latency = max(self.report.canary_max_latency, time.monotonic() - t)
            except Exception as e:  # kazoo's timeouts are not KazooExceptions
                if not self.stopping.is_set():  # else close() cut the round short
                    self._fail(f"round {n}: canary request failed: {e!r}")
            if c.client_id != self.session or self.states:
                self._fail(f"round {n}: the canary's session was disturbed: {self.states}")
            self.report.canary_rounds = n
            self.stopping.wait(0.1)

    def _fail(self, message: str) -> None:
        self.report.failures.append(message)
        self.stopping.set()

    def close(self) -> None:
        """Let a round in progress finish (or, with a dead server, cut it short: stopping the
        client fails its waiting request at once)."""
        self.stopping.set()
        self.join(2)
        self.client.stop()
        self.join(30)
        self.client.close()


_KEEP = {"/": {"zookeeper", "fuzz", "canary"}, "/zookeeper": {"quota", "config"}}  # what the janitor leaves


class _Janitor(threading.Thread):
    """Deletes what the fuzzers' writes leave behind, as the super user, every second."""

    def __init__(self, hosts: str, stopping: threading.Event) -> None:
        super().__init__(daemon=True, name="fuzz-janitor")
        self.stopping = stopping  # set at the end of the run, or when a member died
        self.client = KazooClient(hosts, timeout=15, auth_data=[("digest", f"super:{SUPER_PASSWORD}")])
        self.client.start(30)
        self.states: list[tuple[float, str]] = []  # the janitor is a bystander session too
        self.client.add_listener(lambda state: self.states.append((time.time(), str(state))))

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            self.sweep()

    def sweep(self) -> None:
        c = self.client
        for parent in ("/", "/zookeeper", "/fuzz", "/zookeeper/quota"):
            try:
                children = _wait(c.get_children_async(parent))
            except Exception:  # not there, or no server: nothing to sweep
                continue
            for child in children:
                if child in _KEEP.get(parent, ()):
                    continue
                self._remove(parent.rstrip("/") + "/" + child)

    def _remove(self, path: str) -> None:
        """Depth first, each call bounded in time (kazoo's own recursive delete may wait forever)."""
        c = self.client
        try:
            for child in _wait(c.get_children_async(path)):
                self._remove(f"{path}/{child}")
            _wait(c.delete_async(path))
        except Exception:  # a fuzzer creates under it, or it is gone: next sweep
            pass

    def close(self) -> None:
        """Let a round in progress finish (or, with a dead server, cut it short: stopping the
        client fails its waiting request at once)."""
        self.stopping.set()
        self.join(2)
        self.client.stop()
        self.join(30)
        self.client.close()


def _wait(result, timeout: float = 15.0):
    """A kazoo call that gives up: the blocking calls wait forever for a server that died."""
    return result.get(timeout=timeout)


# ------------------------------------------------------------ a run


def run(ens, frames: int, seed: int = 1, port: str = "client", workers: int = 8, save_dir: str | None = None,
        rss_limit: int = 512 * 2**20, max_frame: int = DEFAULT_MAX_FRAME, first_index: int = 0, progress: bool = False) -> Report:
    """Fuzz `ens` (a zkpy.testing.Ensemble) until `frames` frames are sent; check the oracles."""
    report = Report(port, seed)
    ids = list(ens.ids)
    if port == "client":
        address = {sid: ("127.0.0.1", ens.client_ports[sid]) for sid in ids}

        def make(i: int) -> Case:
            case = client_case(seed, i, max_frame)
            case.member = ids[i % len(ids)]
            return case
    else:
        address = {sid: ("127.0.0.1", ens.peer_ports[sid]) for sid in ids}

        def make(i: int) -> Case:
            return peer_case(seed, i, ids)

    leader = ens.leader() if len(ids) > 1 else None
    canary = _Canary(ens.connect_string, report)
    canary.setup()
    stop = threading.Event()
    janitor = _Janitor(ens.connect_string, stop)
    sampler = threading.Thread(target=_sample_rss, args=(ens, report, stop), daemon=True)
    in_flight: deque[Case] = deque(maxlen=8 * workers)
    started = time.monotonic()
    sampler.start()
    canary.start()
    janitor.start()

    def cases() -> Iterator[Case]:
        i = first_index
        while report.frames < frames and not report.failures:
            yield make(i)
            i += 1

    try:
        asyncio.run(_drive(cases(), address, workers, report, in_flight, stop, progress))
        report.seconds = time.monotonic() - started
        time.sleep(1.0)  # a last canary round after the last case
    finally:
        stop.set()
        canary.close()
        sampler.join(10)
    if janitor.states:
        report.failures.append(f"the janitor's session was disturbed: {janitor.states[:5]}")
    try:
        if not report.failures:
            janitor.sweep()
        _check_members(ens, report, leader)
    finally:
        janitor.close()
    _check_rss(report, rss_limit)
    _check_logs(ens, report)
    if report.failures and save_dir:
        report.saved = save_cases(save_dir, list(in_flight), report)
    return report


def _sample_rss(ens, report: Report, stop: threading.Event) -> None:
    t0 = time.monotonic()
    while True:
        for sid, proc in ens.procs.items():
            rss = rss_bytes(proc.pid)
            if rss is None or proc.poll() is not None:
                report.failures.append(f"member {sid} died (exit code {proc.poll()})")
                stop.set()
                return
            report.rss_samples.setdefault(sid, []).append((time.monotonic() - t0, rss))
        if stop.wait(0.05):  # a 30k-frame run can take under a second: enough samples for halves
            return


# What a closed connection may leave behind in RSS, on average (allocator slack, interned
# names): a well-behaved member stays far below it (1M frames, ~37k connections: +23 MB).
PER_CONNECTION_SLACK = 16 * 2**10


def _check_rss(report: Report, limit: int) -> None:
    for sid, samples in report.rss_samples.items():
        peak = max(b for _, b in samples)
        if peak > limit:
            report.failures.append(f"member {sid}: RSS {peak / 2**20:.0f} MB, over the bound of {limit / 2**20:.0f} MB")
        grown = samples[-1][1] - samples[0][1]
        if grown > 16 * 2**20 + PER_CONNECTION_SLACK * report.connections:
            report.failures.append(f"member {sid}: RSS grew {grown / 2**20:.0f} MB over {report.connections} "
                                   f"connections ({grown / 2**10 / max(1, report.connections):.0f} KiB each)")
        half = len(samples) // 2
        if half >= 4:
            first, second = max(b for _, b in samples[:half]), max(b for _, b in samples[half:])
            if second > first * 1.25 + 16 * 2**20:
                report.failures.append(f"member {sid}: RSS still growing: {first / 2**20:.0f} MB peak in the first "
                                       f"half of the run, {second / 2**20:.0f} MB in the second")


def _check_members(ens, report: Report, leader: int | None) -> None:
    dead = [sid for sid in ens.ids if not ens.alive(sid)]
    if dead:
        report.failures.append(f"members not running at the end: {dead}")
        return
    if leader is not None:
        now = ens.leader()
        if now != leader:
            report.failures.append(f"the leader changed during the fuzz: {leader} -> {now}")
        c = KazooClient(ens.connect_string, timeout=15)
        try:
            c.start(30)
            _wait(c.create_async("/fuzz/after", b"ok"))  # the ensemble still applies writes
            _wait(c.sync_async("/"))
            _wait(c.delete_async("/fuzz/after"))
            _wait(c.sync_async("/"))
            c.stop()
            ens.assert_replicas_identical()
        except Exception as e:  # kazoo's timeouts are not KazooExceptions: all is a failure
            report.failures.append(f"the ensemble after the fuzz: {e!r}"[:500])
        finally:
            c.close()


def _check_logs(ens, report: Report) -> None:
    """No traceback in any member's log, and no second with more than LOG_LINES_PER_SECOND lines."""
    for sid in ens.ids:
        path = os.path.join(ens.base, f"server{sid}", "server.log")
        try:
            with open(path, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            continue
        report.log_lines += len(lines)
        bad = [line for line in lines if "Traceback" in line or "Exception in callback" in line
               or "Fatal error" in line]
        if bad:
            report.failures.append(f"member {sid} logged {len(bad)} errors, the first: {bad[0].strip()[:300]}")
        per_second = Counter(line[:19] for line in lines
                             if line[:2] == "20" and not any(event in line for event in _LIFECYCLE))
        second, most = per_second.most_common(1)[0] if per_second else ("", 0)
        if most > LOG_LINES_PER_SECOND:
            report.failures.append(f"member {sid} logged {most} lines in the second {second}: a log flood")


# ------------------------------------------------------------ saving and replaying failures


def save_cases(directory: str, cases: list[Case], report: Report) -> str:
    """Write each case's bytes and a JSON index (seed, index, port, member, chunk sizes, failures)."""
    os.makedirs(directory, exist_ok=True)
    index = {"seed": report.seed, "port": report.port, "failures": report.failures, "cases": []}
    for case in cases:
        name = f"{case.port}-{case.seed}-{case.index}.bin"
        with open(os.path.join(directory, name), "wb") as f:
            f.write(case.data)
        index["cases"].append({"file": name, "index": case.index, "kind": case.kind, "member": case.member,
                               "chunks": [len(c) for c in case.chunks], "frames": case.frames})
    with open(os.path.join(directory, "failure.json"), "w") as f:
        json.dump(index, f, indent=1)
    return directory


def load_cases(directory: str) -> tuple[str, list[Case]]:
    with open(os.path.join(directory, "failure.json")) as f:
        index = json.load(f)
    cases = []
    for item in index["cases"]:
        with open(os.path.join(directory, item["file"]), "rb") as f:
            data = f.read()
        chunks, pos = [], 0
        for n in item["chunks"]:
            chunks.append(data[pos : pos + n])
            pos += n
        cases.append(Case(index["seed"], item["index"], index["port"], item["kind"], chunks, item["frames"],
                          item["member"]))
    return index["port"], cases


def replay(ens, directory: str) -> Report:
    """Send saved cases one at a time, in their order, with the same oracles.  Client cases
    replay exactly; peer cases depend on the ensemble's state (who leads, its epoch), so a
    peer failure may need the same seed run again rather than its saved cases."""
    port, saved = load_cases(directory)
    report = Report(port, saved[0].seed if saved else 0)
    ports = ens.client_ports if port == "client" else ens.peer_ports
    ids = list(ens.ids)
    address = {sid: ("127.0.0.1", ports[sid]) for sid in ids}
    leader = ens.leader() if len(ids) > 1 else None
    canary = _Canary(ens.connect_string, report)
    canary.setup()
    canary.start()
    started = time.monotonic()
    for case in saved:
        case.member = case.member if case.member in address else ids[0]
        report.frames += case.frames
        report.connections += 1
        report.kinds[case.kind] += 1
        asyncio.run(_send_case(*address[case.member], case, report))
    report.seconds = time.monotonic() - started
    time.sleep(1.0)
    canary.close()
    _check_members(ens, report, leader)
    _check_logs(ens, report)
    return report


# ------------------------------------------------------------ the command line (zkpy fuzz)


def target(port: str, broken: str | None = None, keep: str | None = None):
    """The servers a fuzz of `port` runs against: a standalone server for the client port, a
    3-member ensemble for the peer ports (zkpy.testing.Ensemble: real processes, temp dirs)."""
    from .ensemble import Ensemble
    from .fuzzbroken import member_env

    ens = Ensemble(1 if port == "client" else 3, settings=SETTINGS, keep=keep)
    if broken:
        ens.member_env = {sid: member_env(broken, ens.base) for sid in ens.ids}
    return ens


def command(frames: int, ports: list[str], seed: int, workers: int, save_dir: str | None, replay_dir: str | None,
            broken: str | None) -> int:
    """`zkpy fuzz`: 0 when every oracle held, 1 otherwise (the report says which and why)."""
    if replay_dir is not None:
        port, _ = load_cases(replay_dir)
        with target(port, broken) as ens:
            report = replay(ens, replay_dir)
        print(report.text(), flush=True)
        return 0 if report.ok else 1
    logging.getLogger("kazoo").setLevel(logging.WARNING)  # the canary's reconnects are in the report
    failed = False
    share = frames // len(ports)
    for port in ports:
        with target(port, broken) as ens:
            report = run(ens, share, seed=seed, port=port, workers=workers,
                         save_dir=os.path.join(save_dir or ".", f"zkpy-fuzz-{port}-{seed}"), progress=True)
        print(report.text(), flush=True)
        failed = failed or not report.ok
    return 1 if failed else 0
