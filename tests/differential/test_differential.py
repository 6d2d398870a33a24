"""Differential tests: the same randomized operation sequences against zkpy and Apache ZooKeeper 3.8.

Each seed starts both servers fresh (own temp dirs, free loopback ports), opens 8 kazoo
sessions on each and runs the seed's operations in lockstep: results, error classes,
reply zxids, Stats (but times; ephemeralOwner as the session's label), children, ACLs,
and every session's watch events and connection states must be identical.  See
workload.py for the operations and the normalisation.

    ZKPY_DIFF_SEEDS=4 ZKPY_DIFF_OPS=2500   the default: 10,000 operations over 4 fresh server pairs
    ZKPY_DIFF_SEED=17                      run only seed 17 (replaying a failure)
    ZKPY_DIFF_SESSIONS=8                   kazoo sessions per server
    ZKPY_DIFF_TRACE=/tmp/trace.txt         write every step (op, reference result, events) to a file
    ZKPY_DIFF_SELFCHECK_OPS=600            size of the Apache-vs-Apache determinism check

Without Apache ZooKeeper (apt-get install zookeeper zookeeper-bin) the tests skip, or fail
when CI is set.
"""

from __future__ import annotations

import contextlib
import logging
import os

import pytest

from zkpy.testing.external import ApacheZooKeeper, ZkpyProcess, apache_zookeeper_available

from .workload import DiffError, Driver, run_lockstep

SEEDS = int(os.environ.get("ZKPY_DIFF_SEEDS", "4"))
OPS = int(os.environ.get("ZKPY_DIFF_OPS", "2500"))
ONLY_SEED = os.environ.get("ZKPY_DIFF_SEED")
SESSIONS = int(os.environ.get("ZKPY_DIFF_SESSIONS", "8"))
SELFCHECK_OPS = int(os.environ.get("ZKPY_DIFF_SELFCHECK_OPS", "600"))
TRACE = os.environ.get("ZKPY_DIFF_TRACE")

# tickTime 200 ms makes server-side session expiry quick (minSessionTimeout 400 ms); regular
# sessions ask for 30 s, so maxSessionTimeout is raised.  Containers and TTLs are never
# reaped during a run (the check interval is an hour): reaping is timer-driven.
TICK_TIME = 200
CONFIG = {"maxSessionTimeout": "60000", "forceSync": "no"}
JAVA_PROPS = {"zookeeper.extendedTypesEnabled": "true", "znode.container.checkIntervalMs": "3600000"}

seeds = [int(ONLY_SEED)] if ONLY_SEED else list(range(SEEDS))


@pytest.fixture(autouse=True)
def _quiet_kazoo():
    """The workload drops and expires sessions on purpose: kazoo's warnings about it are noise."""
    logger = logging.getLogger("kazoo")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _require_zookeeper() -> None:
    if not apache_zookeeper_available():
        message = ("Apache ZooKeeper 3.8 is not installed (/usr/share/java/zookeeper.jar and java): "
                   "apt-get install zookeeper zookeeper-bin")
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def _compare(server_classes: list, seed: int, ops: int) -> None:
    """Start the servers, run the seed in lockstep, fail with the first difference."""
    servers = [cls(tick_time=TICK_TIME, config=CONFIG, java_props=JAVA_PROPS, startup_timeout=60)
               for cls in server_classes]
    drivers: list[Driver] = []
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
        trace_file = stack.enter_context(open(TRACE, "a")) if TRACE else None
        try:
            for server in servers:
                server.start()
            for i, server in enumerate(servers):
                name = server.name if [s.name for s in servers].count(server.name) == 1 else f"{server.name}{i + 1}"
                drivers.append(Driver(name, server.host, server.port, SESSIONS))
            trace = (lambda line: trace_file.write(line + "\n")) if trace_file else None
            mismatches = run_lockstep(drivers, seed, ops, trace=trace)
        except DiffError as e:
            logs = "\n".join(s.diagnostics(15) for s in servers)
            pytest.fail(f"seed {seed}: {e}\n{logs}", pytrace=False)
        finally:
            for d in drivers:
                d.close()
        if mismatches:
            pytest.fail(f"{mismatches[0]}", pytrace=False)


@pytest.mark.timeout(180 + OPS // 10)
@pytest.mark.parametrize("seed", seeds)
def test_same_results_as_apache_zookeeper(seed):
    _require_zookeeper()
    _compare([ApacheZooKeeper, ZkpyProcess], seed, OPS)


@pytest.mark.timeout(180 + SELFCHECK_OPS // 10)
def test_workload_is_deterministic_on_apache_zookeeper():
    """Two fresh Apache ZooKeeper servers give the same transcript: the normalisation leaves
    nothing timing- or session-id-dependent, so any difference above is zkpy's."""
    _require_zookeeper()
    _compare([ApacheZooKeeper, ApacheZooKeeper], 1_000_003, SELFCHECK_OPS)
