"""One `zkpy verify` run: start (or connect to) an ensemble, run the workload's clients while the
nemesis plays its schedule, heal, check the history and what every member kept, write the report.

The clients are threads of this process, each a kazoo client over the whole connect string
(client i starting at member i mod n, moving on along it when one fails), recording into one
History.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable

from .durability import lost_writes
from .history import History, Recorder
from .linearizability import check
from .members import finish, members_dir
from .models import MODELS
from .nemesis import Cluster, CommandCluster, LocalCluster, Nemesis, schedule
from .reportfiles import write_report
from .runconfig import RunConfig, RunResult
from .stats import summarize
from .workloads import make

SESSION_TIMEOUT = 4.0  # the most a tickTime of 200 ms allows (20 ticks): expiry within a short run
# Per object, the checker's memory on a shared machine: ~80 B a hashed state (4M: ~330 MB peak),
# ~175 B an exact one, searched only to confirm a violation the hashed search reports.
MAX_STATES = 4_000_000
MAX_EXACT_STATES = 2_000_000
SHRINK_SECONDS = 2.0  # per anomaly: a broken build's history can take minutes to shrink fully


class RunLog:
    """Lines with the time they were logged; printed as they come unless quiet."""

    def __init__(self, quiet: bool) -> None:
        self.lines: list[str] = []
        self.quiet = quiet
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
        if not self.quiet:
            print(line, flush=True)


def _client_loop(rec: Recorder, workload, rng: random.Random, stop: threading.Event,
                 harness_errors: list[str]) -> None:
    from kazoo.exceptions import KazooException
    from kazoo.handlers.threading import KazooTimeoutError

    while not stop.is_set():
        try:
            workload.step(rec, rng)
        except (KazooException, KazooTimeoutError):
            time.sleep(0.05)  # recorded already; the member may be down: do not spin
        except Exception as exc:  # noqa: BLE001 - a bug of the harness, reported with the run
            harness_errors.append(f"{rec.name}: {type(exc).__name__}: {exc}")
            time.sleep(0.2)


@contextlib.contextmanager
def _cluster(config: RunConfig, log: RunLog, out: str):
    """The ensemble under test, stopped however the run ends; a local one keeps its members'
    dirs (logs, data) in OUT/members/, which `members.finish` trims once the verdict is known."""
    if config.connect:
        yield CommandCluster(config.connect, config.commands, log)
        return
    from ..testing.ensemble import Ensemble

    ens = Ensemble(config.size, apache=config.apache, proxied=True, startup_timeout=60, keep=members_dir(out))
    if config.broken:
        from .broken import member_env

        env = member_env(config.broken, ens.base)
        ens.member_env = {sid: dict(env) for sid in ens.ids}
    try:
        started = time.monotonic()
        ens.start()
        kind = "Apache ZooKeeper 3.8" if config.apache else "zkpy" + (f" (broken: {config.broken})" if config.broken else "")
        log(f"started a {config.size}-member {kind} ensemble in {time.monotonic() - started:.1f}s: {ens.connect_string}")
        yield LocalCluster(ens)
    finally:
        ens.stop()


def run(config: RunConfig) -> RunResult:
    from kazoo.client import KazooClient

    began = time.monotonic()
    logging.getLogger("kazoo").setLevel(logging.ERROR)  # its connection warnings (expected under a nemesis) would bury the fault log
    log = RunLog(config.quiet)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = config.out or os.path.abspath(f"verify-{config.seed}-{stamp}")
    os.makedirs(out, exist_ok=True)
    faults = schedule(config.seed, config.nemesis, config.seconds, len(config.connect or []) or config.size)
    log(f"zkpy verify: workload {config.workload}, {config.clients} clients, {config.seconds:g}s, seed {config.seed}")
    log(f"nemesis schedule ({len(faults)} faults, from random.Random({config.seed})):")
    for fault in faults:
        log(f"  {fault}")
    workload = make(config.workload, f"/zkpy-verify/{config.seed}-{stamp}-{os.getpid()}")
    history = History()
    harness_errors: list[str] = []
    with _cluster(config, log, out) as cluster:
        clients = [KazooClient(hosts=_hosts(cluster, i), randomize_hosts=False, timeout=SESSION_TIMEOUT,
                               connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.5})
                   for i in range(config.clients)]
        recorders = [Recorder(c, history, f"c{i}") for i, c in enumerate(clients)]
        for c in clients:
            c.start(30)
        workload.setup(recorders[0])
        stop = threading.Event()
        threads = [threading.Thread(target=_client_loop, name=f"verify-{rec.name}", daemon=True,
                                    args=(rec, workload, random.Random(f"{config.seed}-{i}"), stop, harness_errors))
                   for i, rec in enumerate(recorders)]
        nemesis = Nemesis(cluster, faults, log)
        started = time.monotonic()
        for t in threads:
            t.start()
        try:
            nemesis.play(started, lambda: time.monotonic() - started >= config.seconds)
            while time.monotonic() - started < config.seconds:
                time.sleep(0.05)
        finally:
            stop.set()
            nemesis.heal_all(started)
        ran = time.monotonic() - started
        log(f"[{ran:7.2f}s] workload stopped; every member up and healed")
        _settle(cluster, threads, log, started)
        for rec in recorders:
            with contextlib.suppress(Exception):
                rec.stop()
        for c in clients:
            c.close()
        addresses = {m: cluster.address(m) for m in cluster.members}
        lost, _ = lost_writes(workload, history, addresses, log, cluster.describe)
    history.save(os.path.join(out, "history.jsonl"))  # first: a check that fails still leaves it
    report = check(history, models={**MODELS, **workload.models}, shrink_seconds=SHRINK_SECONDS,
                   max_states=MAX_STATES, max_exact_states=MAX_EXACT_STATES)
    stats = summarize(history, ran)
    lost += [f"harness error (not a finding about the servers): {e}" for e in harness_errors[:5]]
    result = RunResult(config, report, lost, stats, nemesis.windows, log.lines, out, 0.0)
    if not config.connect:
        result.members = finish(os.path.join(out, "members"), cluster.members, failed=not result.ok)
    result.seconds = time.monotonic() - began
    write_report(result, history, started)
    result.seconds = time.monotonic() - began
    return result


def _hosts(cluster: Cluster, i: int) -> str:
    """Client i's connect string starts at member i mod n: every member has clients, so the one
    the nemesis isolates or pauses always has some (kazoo's shuffle left the leader without any
    in 2 of 6 short runs), and they move on along the list when it fails."""
    members = cluster.members[i % len(cluster.members):] + cluster.members[:i % len(cluster.members)]
    return ",".join(cluster.address(m) for m in members)


def _settle(cluster: Cluster, threads: list[threading.Thread], log: Callable[[str], None], started: float) -> None:
    """Wait for the ensemble to serve again and for the clients' last ops to come back."""
    try:
        cluster.wait_serving(60)
    except RuntimeError as exc:
        log(f"ensemble not serving after healing: {str(exc).splitlines()[0]}")
    for t in threads:
        t.join(30)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        print(f"zkpy verify: clients still blocked after 30 s: {', '.join(stuck)}", file=sys.stderr)
    log(f"[{time.monotonic() - started:7.2f}s] ensemble serving; clients done")
