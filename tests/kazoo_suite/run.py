"""Run kazoo's own test suite (`kazoo.tests`, kazoo 2.11) against a 3-node zkpy ensemble.

    python tests/kazoo_suite/run.py [pytest options, e.g. -x -k test_lock]

kazoo's harness starts each ensemble member as `java ... QuorumPeerMain zoo.cfg`; a java shim
(`zkpy java-shim`) first in PATH turns that into `python -m zkpy serve zoo.cfg -D...`. The
tests listed in deselected.txt wait for zkpy features and are deselected by name; an entry
that matches no test is an error, so the list cannot go stale silently.

Environment (each has a default; kazoo's harness reads them):
  ZOOKEEPER_VERSION      the version zkpy reports (kazoo picks its 3.5+ settings from it, and
                         test_build checks the server against it when CI is set)
  ZOOKEEPER_CLASSPATH    passed to java as -cp; the shim ignores it (default "zkpy-java-shim",
                         a classpath with no ZooKeeper in it: should a command ever miss the
                         shim and reach the real java, it fails instead of testing ZooKeeper)
  ZOOKEEPER_PORT_OFFSET  first port of the ensemble (member n uses offset+10(n-1) .. +4, on
                         127.0.0.1/localhost); default: the first of 20000, 20100, ... whose
                         ports are all free, so that two runs on one machine do not collide
  ZOOKEEPER_CLUSTER_SIZE members (default 3)
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def read_deselected(path: str) -> list[str]:
    """`module::Class` / `module` entries of the list, comments and blank lines dropped."""
    with open(path, encoding="utf-8") as f:
        return [line.partition("#")[0].strip() for line in f if line.partition("#")[0].strip()]


class Deselect:
    """Deselects kazoo tests by name, before -k/-m filtering; fails on an entry matching nothing."""

    def __init__(self, entries: list[str]) -> None:
        self.entries = entries

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        matched: set[str] = set()
        keep, drop = [], []
        for item in items:
            name = item.nodeid.rpartition("kazoo/tests/")[2]
            entry = next((e for e in self.entries if name == e or name.startswith(e + "::")), None)
            (keep if entry is None else drop).append(item)
            if entry is not None:
                matched.add(entry)
        stale = [e for e in self.entries if e not in matched]
        if stale:
            raise pytest.UsageError(f"deselected.txt names tests kazoo does not have: {stale}")
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def free_port_offset(size: int) -> int:
    """The first offset from 20000 (in steps of 100, below the ephemeral ports) at which every
    port kazoo's harness gives the ensemble's members can be bound on 127.0.0.1 now."""
    for offset in range(20000, 32000, 100):
        try:
            for port in (offset + 10 * n + k for n in range(size) for k in range(5)):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return offset
    raise RuntimeError("no free ports for kazoo's ensemble between 20000 and 32000")


def main(argv: list[str]) -> int:
    import kazoo

    from zkpy.server.fourletter import VERSION
    from zkpy.testing.java_shim import write_shim

    shim_dir = tempfile.mkdtemp(prefix="zkpy-java-shim-")
    try:
        write_shim(shim_dir)
        os.environ["PATH"] = shim_dir + os.pathsep + os.environ.get("PATH", "")
        os.environ.setdefault("ZOOKEEPER_VERSION", VERSION.split("-")[0])
        os.environ.setdefault("ZOOKEEPER_CLASSPATH", "zkpy-java-shim")
        if "ZOOKEEPER_PORT_OFFSET" not in os.environ:
            size = int(os.environ.get("ZOOKEEPER_CLUSTER_SIZE", "3"))
            os.environ["ZOOKEEPER_PORT_OFFSET"] = str(free_port_offset(size))
        kazoo_parent = os.path.dirname(os.path.dirname(os.path.abspath(kazoo.__file__)))
        args = ["-c", os.path.join(HERE, "pytest.ini"), "--rootdir", kazoo_parent, "-p", "no:cacheprovider",
                "--pyargs", "kazoo.tests", *argv]
        return int(pytest.main(args, plugins=[Deselect(read_deselected(os.path.join(HERE, "deselected.txt")))]))
    finally:
        shutil.rmtree(shim_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
